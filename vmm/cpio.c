/* newc cpio writer.  The kernel unpacks every archive concatenated into the initrd, in
 * order, so appending a small one to the user's image adds files without rebuilding it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cpio.h"

static void put(struct cpio *c, const void *p, size_t n)
{
	if (c->err || n == 0)
		return;
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < c->len + n)
			cap *= 2;
		uint8_t *b = realloc(c->buf, cap);
		if (!b) {
			c->err = -ENOMEM;
			return;
		}
		c->buf = b;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

static void pad4(struct cpio *c)
{
	static const uint8_t zero[4];
	put(c, zero, (4 - (c->len & 3)) & 3);
}

void cpio_add(struct cpio *c, const char *name, uint32_t mode, const void *data, size_t len)
{
	if (len > UINT32_MAX) { /* newc sizes are 32-bit */
		c->err = -EFBIG;
		return;
	}
	char hdr[160];
	size_t namesz = strlen(name) + 1;
	/* newc: magic, then 13 fields of 8 hex digits; the kernel ignores the checksum. */
	snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 ++c->ino, mode, 0, 0, 1, 0, (unsigned)len, 0, 0, 0, 0, (unsigned)namesz, 0);
	/* The archive may start mid-initrd: align to the concatenation boundary first. */
	pad4(c);
	put(c, hdr, 110);
	put(c, name, namesz);
	pad4(c);
	if (len)
		put(c, data, len);
	pad4(c);
}

int cpio_finish(struct cpio *c)
{
	cpio_add(c, "TRAILER!!!", 0, NULL, 0);
	return c->err;
}

void cpio_free(struct cpio *c)
{
	free(c->buf);
	*c = (struct cpio){ 0 };
}

uint8_t *cpio_append(uint8_t *buf, size_t *len, const struct cpio *c)
{
	size_t at = (*len + 3) & ~(size_t)3;
	uint8_t *b = realloc(buf, at + c->len);
	if (!b) {
		free(buf);
		return NULL;
	}
	memset(b + *len, 0, at - *len);
	memcpy(b + at, c->buf, c->len);
	*len = at + c->len;
	return b;
}

char *cpio_shell_quote(char *const argv[], int argc)
{
	size_t n = 1;
	for (int i = 0; i < argc; i++) {
		n += 3;  /* quotes and the separating space */
		for (const char *s = argv[i]; *s; s++)
			n += *s == '\'' ? 4 : 1;
	}
	char *out = malloc(n), *o = out;
	if (!out)
		return NULL;
	for (int i = 0; i < argc; i++) {
		if (i)
			*o++ = ' ';
		*o++ = '\'';
		for (const char *s = argv[i]; *s; s++) {
			if (*s == '\'') {
				memcpy(o, "'\\''", 4);
				o += 4;
			} else {
				*o++ = *s;
			}
		}
		*o++ = '\'';
	}
	*o = '\0';
	return out;
}

int cpio_guest_cmd(struct cpio *c, char *const argv[], int argc, bool raw)
{
	char *q = cpio_shell_quote(argv, argc);
	if (!q)
		return -ENOMEM;
	size_t qlen = strlen(q);
	char *script = malloc(qlen + 8);
	if (!script) {
		free(q);
		return -ENOMEM;
	}
	/* exec: the command's status (or 128+signal) becomes the shell's, with no extra fork. */
	int n = snprintf(script, qlen + 8, "exec %s\n", q);
	free(q);
	cpio_add(c, "minivmm", 0040755, NULL, 0);
	cpio_add(c, "minivmm/cmd", 0100644, script, n);
	if (raw)
		cpio_add(c, "minivmm/raw", 0100644, NULL, 0);
	free(script);
	return cpio_finish(c);
}
