/* A newc cpio archive built in memory: how minivmm hands the guest image its command. */
#ifndef MINIVMM_CPIO_H
#define MINIVMM_CPIO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cpio {
	uint8_t *buf;
	size_t len, cap;
	unsigned ino;
	int err;          /* first allocation failure, sticky */
};

void cpio_add(struct cpio *c, const char *name, uint32_t mode, const void *data, size_t len);
/* Append the trailer; returns 0 or -ENOMEM. */
int cpio_finish(struct cpio *c) __attribute__((warn_unused_result));
void cpio_free(struct cpio *c);

/* Append the finished archive `c` to the initrd `buf` of *len bytes, at the 4-byte boundary
 * concatenated newc archives need.  Returns the grown buffer and updates *len; NULL when
 * out of memory (then `buf` is freed). */
uint8_t *cpio_append(uint8_t *buf, size_t *len, const struct cpio *c);

/* Quote argv for /bin/sh: each word in single quotes, embedded ' as '\''.  The result runs
 * exactly argv whatever bytes it holds.  Returns a malloc'd string or NULL. */
char *cpio_shell_quote(char *const argv[], int argc);

/* The archive the guest image reads: /minivmm/cmd (the quoted command) and, when `raw`,
 * /minivmm/raw (the console must not translate line endings). */
int cpio_guest_cmd(struct cpio *c, char *const argv[], int argc, bool raw)
	__attribute__((warn_unused_result));

#endif
