/* Test harness for the FUSE server (fs/fuse.c and friends): a share in a fresh directory
 * under build/, requests built as the Linux FUSE client would, and handed to fuse_handle
 * as iovec chains split at awkward places (every segment its own heap block, so a read or
 * write past one is caught by ASan).  No VM, no kernel FUSE. */
#ifndef MINIVMM_TESTS_FUSE_UTIL_H
#define MINIVMM_TESTS_FUSE_UTIL_H
#include <criterion/criterion.h>
#include <linux/fuse.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "fs/fuse.h"

#define FX_NOREPLY 1            /* fx_call: fuse_handle wrote nothing */
#define FX_ALL_FLAGS 0xffffffffu

struct fx {
	struct fuse_server *s;
	char dir[512];          /* the test's own directory */
	char share[600];        /* dir/share: what the server serves */
	char outside[600];      /* dir/outside: next to the share, must stay unreachable */
	uint64_t unique;
	unsigned calls;         /* picks the split pattern */
	unsigned split;         /* 0: rotate patterns; n: always pattern n-1 */
	uint32_t uid, gid;      /* put in request headers */
	uint32_t init_flags;    /* what INIT negotiated */
	uint16_t map_alignment; /* INIT's map_alignment */
	uint8_t *dax;           /* the DAX window (fx_start_dax), else NULL */
	uint64_t dax_size;
};

extern struct fx fx;

/* Make the directories and the server; `init` sends INIT offering every flag. */
void fx_start(bool ro, enum fuse_cache cache, bool xattr, bool init);
void fx_setup(void);            /* rw, cache=auto, xattr on, initialised */
/* Like fx_start(ro, auto, xattr on, initialised) with a DAX window of `size` bytes. */
void fx_start_dax(bool ro, uint64_t size);
void fx_setup_ro(void);
/* Like fx_setup, with cfg.complete set (requests may be parked, fuse_handle_async). */
void fx_setup_async(fuse_complete_fn fn, void *opaque);
void fx_setup_noinit(void);
void fx_teardown(void);

/* A path inside the share (rotating static buffers, 8 live at a time). */
const char *fx_path(const char *rel);
void fx_write_file(const char *rel, const void *data, size_t len);
/* Lock requests blocked in the host kernel on the file `rel` (the "->" lines of
 * /proc/locks): lock waiters really waiting. */
int fx_lock_waiters(const char *rel);

/* One request: header + arg + t1 + t2 (t2 may be NULL), reply payload into `reply` (the
 * guest's out buffer has room for exactly `replysz` payload bytes).  Returns 0, a negative
 * errno from the reply, or FX_NOREPLY; the reply header is checked for consistency. */
int fx_call(uint32_t op, uint64_t nodeid, const void *arg, size_t argsz, const void *t1,
	    size_t t1sz, const void *t2, size_t t2sz, void *reply, size_t replysz, size_t *got);
/* Fully raw: the bytes as given (header included, len not fixed up), split like fx_call. */
size_t fx_raw(const void *req, size_t reqlen, void *out, size_t outsz);
/* Build a header for fx_raw. */
void fx_hdr(struct fuse_in_header *h, uint32_t op, uint64_t nodeid, uint32_t len);

int fx_init(uint32_t major, uint32_t minor, uint32_t flags, struct fuse_init_out *o);
int fx_lookup(uint64_t parent, const char *name, struct fuse_entry_out *e);
uint64_t fx_node(const char *rel);      /* lookup along a path from the root; asserts */
int fx_forget(uint64_t nodeid, uint64_t n);
int fx_getattr(uint64_t nodeid, struct fuse_attr_out *o);
int fx_setattr(uint64_t nodeid, const struct fuse_setattr_in *in, struct fuse_attr_out *o);
int fx_mkdir(uint64_t parent, const char *name, uint32_t mode, struct fuse_entry_out *e);
int fx_mknod(uint64_t parent, const char *name, uint32_t mode, uint32_t rdev,
	     struct fuse_entry_out *e);
int fx_symlink(uint64_t parent, const char *name, const char *target, struct fuse_entry_out *e);
int fx_link(uint64_t oldnode, uint64_t newparent, const char *name, struct fuse_entry_out *e);
int fx_readlink(uint64_t nodeid, char *buf, size_t size);      /* length or -errno */
int fx_unlink(uint64_t parent, const char *name);
int fx_rmdir(uint64_t parent, const char *name);
int fx_rename(uint64_t olddir, const char *oldname, uint64_t newdir, const char *newname);
int fx_rename2(uint64_t olddir, const char *oldname, uint64_t newdir, const char *newname,
	       uint32_t flags);
int fx_create(uint64_t parent, const char *name, uint32_t flags, uint32_t mode,
	      struct fuse_entry_out *e, uint64_t *fh);
int fx_open(uint64_t nodeid, uint32_t flags, uint64_t *fh);
int fx_opendir(uint64_t nodeid, uint64_t *fh);
int fx_read(uint64_t fh, uint64_t off, uint32_t size, void *buf, size_t *got);
int fx_write(uint64_t fh, uint64_t off, const void *data, uint32_t size, uint32_t *written);
int fx_release(uint64_t fh);
int fx_releasedir(uint64_t fh);
int fx_readdir(uint32_t op, uint64_t fh, uint64_t off, uint32_t size, void *buf, size_t *got);

/* Walk a READDIR(PLUS) reply: the entry at *pos, or NULL at the end. */
const struct fuse_dirent *fx_dirent_next(const void *buf, size_t len, size_t *pos, bool plus,
					 const struct fuse_entry_out **eo);

#endif
