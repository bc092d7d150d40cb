/* The FUSE front end: decode one request out of guest memory, dispatch it through a
 * constant opcode table, and write the reply back.  Guest memory is hostile and may change
 * while we look at it, so the header, the op's fixed arguments and any names are copied
 * into local memory exactly once, and every length is checked before anything runs.  Only
 * bulk data (WRITE payload, READ results) stays in guest memory, for zero copy. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <linux/limits.h>

#include "fs/internal.h"
#include "vmm/vm.h"

#define FUSE_OUR_MINOR  38      /* what <linux/fuse.h> on Debian 12 describes */
#define FUSE_MAX_PAGES_ 256

/* What follows an op's fixed arguments, and how it is checked. */
enum tail_kind {
	TAIL_NONE,      /* nothing we use (extra bytes ignored) */
	TAIL_RAW,       /* the op reads it itself: WRITE payload, BATCH_FORGET entries */
	TAIL_NAME,      /* one directory entry name */
	TAIL_NAME2,     /* two entry names (RENAME) */
	TAIL_SYMLINK,   /* entry name, then the link's target */
	TAIL_XNAME,     /* an xattr name */
	TAIL_XSET,      /* an xattr name, then its value */
};

enum {
	OP_NODE    = 1 << 0,    /* h.nodeid must be a live inode (ESTALE) */
	OP_MODIFY  = 1 << 1,    /* changes the share: EROFS when read-only */
	OP_DOTS    = 1 << 2,    /* "." and ".." are acceptable names (LOOKUP) */
	OP_NOREPLY = 1 << 3,    /* never answered, not even with an error */
	OP_XATTR   = 1 << 4,    /* ENOSYS unless xattrs are enabled (the guest then stops asking) */
	OP_SEALED  = 1 << 5,    /* allowed on a sealed mount point (mounts.c); else EACCES */
};

struct fuse_opdesc {
	fuse_op_fn fn;
	uint8_t argmin, argmax; /* fixed argument bytes required / copied */
	uint8_t outmin;         /* success reply payload, checked against the buffer up front */
	uint8_t tail;
	uint8_t flags;
};

static int fsop_init(struct fuse_req *r);
static int fsop_destroy(struct fuse_req *r);
static int fsop_interrupt(struct fuse_req *r);

#define ARG(t) sizeof(struct t), sizeof(struct t)
#define ENTRY sizeof(struct fuse_entry_out)

static const struct fuse_opdesc fuse_ops[] = {
	[FUSE_LOOKUP]      = { fsop_lookup, 0, 0, ENTRY, TAIL_NAME, OP_NODE | OP_DOTS },
	[FUSE_FORGET]      = { fsop_forget, ARG(fuse_forget_in), 0, TAIL_NONE, OP_NOREPLY },
	[FUSE_GETATTR]     = { fsop_getattr, ARG(fuse_getattr_in), sizeof(struct fuse_attr_out),
			       TAIL_NONE, OP_NODE | OP_SEALED },
	[FUSE_SETATTR]     = { fsop_setattr, ARG(fuse_setattr_in), sizeof(struct fuse_attr_out),
			       TAIL_NONE, OP_NODE | OP_MODIFY },
	[FUSE_READLINK]    = { fsop_readlink, 0, 0, 0, TAIL_NONE, OP_NODE },
	[FUSE_SYMLINK]     = { fsop_symlink, 0, 0, ENTRY, TAIL_SYMLINK, OP_NODE | OP_MODIFY },
	[FUSE_MKNOD]       = { fsop_mknod, ARG(fuse_mknod_in), ENTRY, TAIL_NAME, OP_NODE | OP_MODIFY },
	[FUSE_MKDIR]       = { fsop_mkdir, ARG(fuse_mkdir_in), ENTRY, TAIL_NAME, OP_NODE | OP_MODIFY },
	[FUSE_UNLINK]      = { fsop_unlink, 0, 0, 0, TAIL_NAME, OP_NODE | OP_MODIFY },
	[FUSE_RMDIR]       = { fsop_rmdir, 0, 0, 0, TAIL_NAME, OP_NODE | OP_MODIFY },
	[FUSE_RENAME]      = { fsop_rename, ARG(fuse_rename_in), 0, TAIL_NAME2, OP_NODE | OP_MODIFY },
	[FUSE_LINK]        = { fsop_link, ARG(fuse_link_in), ENTRY, TAIL_NAME, OP_NODE | OP_MODIFY },
	[FUSE_OPEN]        = { fsop_open, ARG(fuse_open_in), sizeof(struct fuse_open_out),
			       TAIL_NONE, OP_NODE },
	[FUSE_READ]        = { fsop_read, ARG(fuse_read_in), 0, TAIL_NONE, 0 },
	[FUSE_WRITE]       = { fsop_write, ARG(fuse_write_in), sizeof(struct fuse_write_out),
			       TAIL_RAW, OP_MODIFY },
	[FUSE_STATFS]      = { fsop_statfs, 0, 0, sizeof(struct fuse_statfs_out), TAIL_NONE,
			       OP_NODE | OP_SEALED },
	[FUSE_RELEASE]     = { fsop_release, ARG(fuse_release_in), 0, TAIL_NONE, 0 },
	[FUSE_FSYNC]       = { fsop_fsync, ARG(fuse_fsync_in), 0, TAIL_NONE, 0 },
	/* Without FUSE_SETXATTR_EXT (not offered) the kernel sends the 8-byte compat form. */
	[FUSE_SETXATTR]    = { fsop_setxattr, FUSE_COMPAT_SETXATTR_IN_SIZE,
			       FUSE_COMPAT_SETXATTR_IN_SIZE, 0, TAIL_XSET,
			       OP_NODE | OP_MODIFY | OP_XATTR },
	/* Readable on a sealed mount point like its attributes (ls -l asks for ACLs). */
	[FUSE_GETXATTR]    = { fsop_getxattr, ARG(fuse_getxattr_in), 0, TAIL_XNAME,
			       OP_NODE | OP_XATTR | OP_SEALED },
	[FUSE_LISTXATTR]   = { fsop_listxattr, ARG(fuse_getxattr_in), 0, TAIL_NONE,
			       OP_NODE | OP_XATTR | OP_SEALED },
	[FUSE_REMOVEXATTR] = { fsop_removexattr, 0, 0, 0, TAIL_XNAME,
			       OP_NODE | OP_MODIFY | OP_XATTR },
	[FUSE_FLUSH]       = { fsop_flush, ARG(fuse_flush_in), 0, TAIL_NONE, 0 },
	/* Kernels before 7.36 send only the first four fields. */
	[FUSE_INIT]        = { fsop_init, 16, sizeof(struct fuse_init_in), FUSE_COMPAT_INIT_OUT_SIZE,
			       TAIL_NONE, 0 },
	[FUSE_OPENDIR]     = { fsop_opendir, ARG(fuse_open_in), sizeof(struct fuse_open_out),
			       TAIL_NONE, OP_NODE },
	[FUSE_READDIR]     = { fsop_readdir, ARG(fuse_read_in), 0, TAIL_NONE, 0 },
	[FUSE_RELEASEDIR]  = { fsop_releasedir, ARG(fuse_release_in), 0, TAIL_NONE, 0 },
	[FUSE_FSYNCDIR]    = { fsop_fsyncdir, ARG(fuse_fsync_in), 0, TAIL_NONE, 0 },
	[FUSE_GETLK]       = { fsop_getlk, ARG(fuse_lk_in), sizeof(struct fuse_lk_out), TAIL_NONE, 0 },
	[FUSE_SETLK]       = { fsop_setlk, ARG(fuse_lk_in), 0, TAIL_NONE, 0 },
	[FUSE_SETLKW]      = { fsop_setlkw, ARG(fuse_lk_in), 0, TAIL_NONE, 0 },
	[FUSE_ACCESS]      = { fsop_access, ARG(fuse_access_in), 0, TAIL_NONE, OP_NODE | OP_SEALED },
	[FUSE_CREATE]      = { fsop_create, ARG(fuse_create_in),
			       ENTRY + sizeof(struct fuse_open_out), TAIL_NAME, OP_NODE | OP_MODIFY },
	[FUSE_INTERRUPT]   = { fsop_interrupt, ARG(fuse_interrupt_in), 0, TAIL_NONE, OP_NOREPLY },
	[FUSE_DESTROY]     = { fsop_destroy, 0, 0, 0, TAIL_NONE, 0 },
	[FUSE_BATCH_FORGET] = { fsop_batch_forget, ARG(fuse_batch_forget_in), 0, TAIL_RAW,
				OP_NOREPLY },
	[FUSE_FALLOCATE]   = { fsop_fallocate, ARG(fuse_fallocate_in), 0, TAIL_NONE, OP_MODIFY },
	[FUSE_READDIRPLUS] = { fsop_readdirplus, ARG(fuse_read_in), 0, TAIL_NONE, 0 },
	[FUSE_RENAME2]     = { fsop_rename2, ARG(fuse_rename2_in), 0, TAIL_NAME2,
			       OP_NODE | OP_MODIFY },
	[FUSE_LSEEK]       = { fsop_lseek, ARG(fuse_lseek_in), sizeof(struct fuse_lseek_out),
			       TAIL_NONE, 0 },
	[FUSE_COPY_FILE_RANGE] = { fsop_copy_file_range, ARG(fuse_copy_file_range_in),
				   sizeof(struct fuse_write_out), TAIL_NONE, OP_MODIFY },
	[FUSE_SYNCFS]      = { fsop_syncfs, ARG(fuse_syncfs_in), 0, TAIL_NONE, 0 },
	/* Not OP_MODIFY: a read-only share maps read-only (dax.c refuses write mappings). */
	[FUSE_SETUPMAPPING] = { fsop_setupmapping, ARG(fuse_setupmapping_in), 0, TAIL_NONE,
				OP_NODE },
	[FUSE_REMOVEMAPPING] = { fsop_removemapping, ARG(fuse_removemapping_in), 0, TAIL_RAW, 0 },
};

_Static_assert(sizeof(struct fuse_init_in) <= sizeof(union fuse_args), "args too small");
_Static_assert(sizeof(struct fuse_setattr_in) <= sizeof(union fuse_args), "args too small");

static const struct fuse_opdesc *opdesc_of(uint32_t opcode)
{
	if (opcode >= sizeof(fuse_ops) / sizeof(fuse_ops[0]) || !fuse_ops[opcode].fn)
		return NULL;
	return &fuse_ops[opcode];
}

/* ---- scatter/gather over iovecs ------------------------------------------------------ */

/* Saturating: a hostile chain cannot wrap the sum into something small. */
static size_t iov_total(const struct iovec *v, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++) {
		if (v[i].iov_len > SIZE_MAX - t)
			return SIZE_MAX;
		t += v[i].iov_len;
	}
	return t;
}

/* Copy between a flat buffer and the bytes [off, off+len) of an iovec list, in either
 * direction (to_iov: buffer -> iovecs).  Returns how many bytes the iovecs held.
 *
 * The one place the server loads or stores guest memory itself: a segment in the DAX
 * window ends the copy (a short count, so the request fails), because a window page whose
 * host file shrank raises SIGBUS here.  Only bulk data may live there, and that moves
 * through preadv/pwritev (iov_slice), which return EFAULT instead. */
static size_t iov_copy(const struct fuse_server *s, const struct iovec *v, int n, size_t off,
		       void *buf, size_t len, bool to_iov)
{
	size_t done = 0;

	for (int i = 0; i < n && done < len; i++) {
		if (off >= v[i].iov_len) {
			off -= v[i].iov_len;
			continue;
		}
		size_t k = v[i].iov_len - off;
		if (k > len - done)
			k = len - done;
		if (fs_dax_overlaps(s, v[i].iov_base, v[i].iov_len))
			break;
		if (to_iov)
			memcpy((char *)v[i].iov_base + off, (char *)buf + done, k);
		else
			memcpy((char *)buf + done, (const char *)v[i].iov_base + off, k);
		done += k;
		off = 0;
	}
	return done;
}

static size_t iov_gather(const struct fuse_server *s, const struct iovec *v, int n, size_t off,
			 void *dst, size_t len)
{
	return iov_copy(s, v, n, off, dst, len, false);
}

static size_t iov_scatter(const struct fuse_server *s, const struct iovec *v, int n, size_t off,
			  const void *src, size_t len)
{
	return iov_copy(s, v, n, off, (void *)src, len, true);
}

/* The segments covering [off, off+len), at most `max` of them: a chain with more segments
 * than preadv/pwritev take simply yields a short transfer, which FUSE allows. */
static int iov_slice(const struct iovec *v, int n, size_t off, size_t len, struct iovec *dst,
		     int max)
{
	int k = 0;

	for (int i = 0; i < n && len && k < max; i++) {
		if (off >= v[i].iov_len) {
			off -= v[i].iov_len;
			continue;
		}
		size_t m = v[i].iov_len - off;
		if (m > len)
			m = len;
		dst[k].iov_base = (char *)v[i].iov_base + off;
		dst[k].iov_len = m;
		k++;
		len -= m;
		off = 0;
	}
	return k;
}

/* ---- what ops use -------------------------------------------------------------------- */

size_t req_room(const struct fuse_req *r)
{
	return r->out_cap - sizeof(struct fuse_out_header);
}

int req_put(struct fuse_req *r, size_t off, const void *src, size_t n)
{
	if (off > req_room(r) || n > req_room(r) - off)
		return -EINVAL;
	if (iov_scatter(r->s, r->out, r->nout, sizeof(struct fuse_out_header) + off, src, n) != n)
		return -EFAULT;
	return 0;
}

int req_get_tail(struct fuse_req *r, size_t off, void *dst, size_t n)
{
	if (off > r->taillen || n > r->taillen - off)
		return -EINVAL;
	return iov_gather(r->s, r->in, r->nin, r->tailoff + off, dst, n) == n ? 0 : -EINVAL;
}

int req_tail_iov(const struct fuse_req *r, size_t off, size_t len, struct iovec *dst, int max)
{
	if (off > r->taillen || len > r->taillen - off)
		return -EINVAL;
	return iov_slice(r->in, r->nin, r->tailoff + off, len, dst, max);
}

int req_out_iov(const struct fuse_req *r, size_t off, size_t len, struct iovec *dst, int max)
{
	if (off > req_room(r) || len > req_room(r) - off)
		return -EINVAL;
	return iov_slice(r->out, r->nout, sizeof(struct fuse_out_header) + off, len, dst, max);
}

int req_get_ext(const struct fuse_req *r, size_t off, void *dst, size_t n)
{
	if (off > r->extlen || n > r->extlen - off)
		return -EINVAL;
	return iov_gather(r->s, r->in, r->nin, r->extoff + off, dst, n) == n ? 0 : -EINVAL;
}

uint64_t req_flags(const struct fuse_req *r)
{
	return atomic_load(&r->s->flags);
}

/* ---- decoding ------------------------------------------------------------------------ */

/* Next NUL-terminated string of the local tail copy at *pos: not empty, at most `max`
 * bytes. */
static int tail_str(const char *buf, size_t len, size_t *pos, const char **out, size_t max)
{
	const char *p = buf + *pos;
	const char *nul = memchr(p, '\0', len - *pos);

	if (!nul)
		return -EINVAL;
	if (nul == p)
		return -EINVAL;
	if ((size_t)(nul - p) > max)
		return -ENAMETOOLONG;
	*out = p;
	*pos += (size_t)(nul - p) + 1;
	return 0;
}

/* A directory entry name: one component, and "." / ".." only where the op allows them
 * (they would otherwise create, remove or rename something outside the entry's parent). */
static int name_check(const char *name, bool dots)
{
	if (strchr(name, '/'))
		return -EINVAL;
	if (!dots && (!strcmp(name, ".") || !strcmp(name, "..")))
		return -EINVAL;
	return 0;
}

static int req_decode_tail(struct fuse_req *r, const struct fuse_opdesc *d, char *buf,
			   size_t bufsz, char **heap)
{
	size_t cap, pos = 0;
	int ret;

	switch (d->tail) {
	case TAIL_NONE:
	case TAIL_RAW:
		return 0;
	case TAIL_NAME:  cap = NAME_MAX + 1; break;
	case TAIL_NAME2: cap = 2 * (NAME_MAX + 1); break;
	case TAIL_SYMLINK: cap = NAME_MAX + 1 + PATH_MAX; break;
	case TAIL_XNAME: cap = XATTR_NAME_MAX + 1; break;
	default:         cap = XATTR_NAME_MAX + 1 + XATTR_SIZE_MAX; break;
	}
	if (r->taillen > cap)
		return d->tail == TAIL_XSET ? -E2BIG : -ENAMETOOLONG;
	if (r->taillen > bufsz) {
		*heap = malloc(r->taillen);
		if (!*heap)
			return -ENOMEM;
		buf = *heap;
	}
	if (iov_gather(r->s, r->in, r->nin, r->tailoff, buf, r->taillen) != r->taillen)
		return -EINVAL;

	switch (d->tail) {
	case TAIL_NAME:
	case TAIL_NAME2:
	case TAIL_SYMLINK:
		ret = tail_str(buf, r->taillen, &pos, &r->name, NAME_MAX);
		if (!ret)
			ret = name_check(r->name, d->flags & OP_DOTS);
		if (ret || d->tail == TAIL_NAME)
			return ret;
		if (pos >= r->taillen)
			return -EINVAL;
		if (d->tail == TAIL_SYMLINK)
			return tail_str(buf, r->taillen, &pos, &r->name2, PATH_MAX - 1);
		ret = tail_str(buf, r->taillen, &pos, &r->name2, NAME_MAX);
		return ret ? ret : name_check(r->name2, false);
	case TAIL_XNAME:
		return tail_str(buf, r->taillen, &pos, &r->name, XATTR_NAME_MAX);
	default:
		ret = tail_str(buf, r->taillen, &pos, &r->name, XATTR_NAME_MAX);
		if (ret)
			return ret;
		/* The value is exactly what the header says follows the name. */
		if (r->arg.setxattr.size != r->taillen - pos)
			return -EINVAL;
		r->value = buf + pos;
		r->valuelen = r->taillen - pos;
		return 0;
	}
}

static int req_dispatch(struct fuse_req *r, const struct fuse_opdesc *d, size_t avail,
			char *tailbuf, size_t tailsz, char **heap)
{
	struct fuse_server *s = r->s;
	size_t body, ext, argn;
	int ret;

	/* The header's length must be exactly what the guest made readable. */
	if (r->h.len != avail || r->h.len < sizeof(r->h) || r->h.len > FUSE_MAX_REQ)
		return -EINVAL;
	if (r->h.opcode != FUSE_INIT && !atomic_load(&s->inited))
		return -EIO;
	if (!d)
		return -ENOSYS;
	if ((d->flags & OP_XATTR) && !s->cfg.xattr)
		return -ENOSYS;
	if (!(d->flags & OP_NOREPLY) && req_room(r) < d->outmin)
		return -EINVAL;

	/* Extensions follow everything else; they are never parsed as names.  Only the
	 * supplementary group (FUSE_CREATE_SUPP_GROUP) is negotiated and read, by creds.c. */
	body = r->h.len - sizeof(r->h);
	ext = (size_t)r->h.total_extlen * 8;
	if (ext > body)
		return -EINVAL;
	body -= ext;
	if (body < d->argmin)
		return -EINVAL;
	argn = body < d->argmax ? body : d->argmax;
	if (iov_gather(s, r->in, r->nin, sizeof(r->h), &r->arg, argn) != argn)
		return -EINVAL;
	r->tailoff = sizeof(r->h) + argn;
	r->taillen = body - argn;
	r->extoff = sizeof(r->h) + body;
	r->extlen = ext;

	ret = req_decode_tail(r, d, tailbuf, tailsz, heap);
	if (ret)
		return ret;
	if ((d->flags & OP_MODIFY) && r->ro)
		return -EROFS;
	if (d->flags & OP_NODE) {
		r->ino = inode_get(s, r->h.nodeid);
		if (!r->ino)
			return -ESTALE;
		if (r->ino->mnt == FS_MNT_SEALED && !(d->flags & OP_SEALED))
			return -EACCES;
	}
	return d->fn(r);
}

size_t fuse_reply_err(struct fuse_server *s, const struct iovec *out, int nout,
		      uint64_t unique, int err)
{
	struct fuse_out_header oh = { .len = sizeof(oh), .error = err, .unique = unique };

	/* A reply header that cannot be written (a segment in the DAX window) is no reply. */
	if (iov_scatter(s, out, nout, 0, &oh, sizeof(oh)) != sizeof(oh))
		return 0;
	return oh.len;
}

static size_t handle_req(struct fuse_server *s, const struct iovec *in, int nin,
			 const struct iovec *out, int nout, int wait, void *cookie)
{
	char tail[NAME_MAX + 1 + PATH_MAX];
	char *heap = NULL;
	struct fuse_req r;
	struct fuse_out_header oh;
	const struct fuse_opdesc *d;
	size_t avail;
	int ret;

	memset(&r, 0, sizeof(r));
	if (nin < 0 || (nin && !in))
		nin = 0;
	if (nout < 0 || (nout && !out))
		nout = 0;
	r.s = s;
	r.in = in;
	r.nin = nin;
	r.out = out;
	r.nout = nout;
	r.ro = s->cfg.readonly;
	r.wait = wait;
	r.cookie = cookie;
	avail = iov_total(in, nin);
	if (iov_gather(s, in, nin, 0, &r.h, sizeof(r.h)) != sizeof(r.h))
		return 0;       /* not even a header: nothing to answer to */
	r.out_cap = iov_total(out, nout);
	d = opdesc_of(r.h.opcode);
	/* Nowhere to put even an error: running the op would change the share unseen. */
	if (r.out_cap < sizeof(oh) && !(d && (d->flags & OP_NOREPLY)))
		return 0;
	if (r.out_cap < sizeof(oh))
		r.out_cap = sizeof(oh);
	ret = req_dispatch(&r, d, avail, tail, sizeof(tail), &heap);
	if (r.ino)
		inode_put(s, r.ino);
	free(heap);

	if (ret == FUSE_PARKED)
		return FUSE_DEFERRED;
	if ((d && (d->flags & OP_NOREPLY)) || ret == FUSE_NOREPLY)
		return 0;
	oh.unique = r.h.unique;
	oh.error = ret < 0 ? ret : 0;
	oh.len = (uint32_t)(sizeof(oh) + (ret < 0 ? 0 : (size_t)ret));
	/* A reply header that cannot be written (a segment in the DAX window) is no reply. */
	if (iov_scatter(s, out, nout, 0, &oh, sizeof(oh)) != sizeof(oh))
		return 0;
	return oh.len;
}

size_t fuse_handle(struct fuse_server *s, const struct iovec *in, int nin,
		   const struct iovec *out, int nout)
{
	return handle_req(s, in, nin, out, nout, REQ_BLOCK, NULL);
}

size_t fuse_handle_async(struct fuse_server *s, const struct iovec *in, int nin,
			 const struct iovec *out, int nout, void *cookie)
{
	bool park = cookie && s->cfg.complete;

	return handle_req(s, in, nin, out, nout, park ? REQ_PARK : REQ_NOWAIT, cookie);
}

void fuse_abandon_waiters(struct fuse_server *s)
{
	if (!s)
		return;         /* no session (a reset that could not make one): nothing parked */
	lockwait_cancel_all(s, true);
}

/* ---- connection state: INIT, DESTROY, INTERRUPT -------------------------------------- */

static int fsop_init(struct fuse_req *r)
{
	struct fuse_server *s = r->s;
	const struct fuse_init_in *a = &r->arg.init;
	struct fuse_init_out o;
	uint64_t offered, ours, granted;
	size_t outsize;
	int ret;

	memset(&o, 0, sizeof(o));
	o.major = FUSE_KERNEL_VERSION;
	o.minor = FUSE_OUR_MINOR;
	pthread_mutex_lock(&s->init_mu);
	if (atomic_load(&s->inited)) {
		ret = -EPROTO;
		goto out;
	}
	if (a->major < FUSE_KERNEL_VERSION) {
		ret = -EPROTO;
		goto out;
	}
	if (a->major > FUSE_KERNEL_VERSION) {
		/* Tell a newer kernel our major so it can retry with it; stay uninitialised. */
		ret = req_put(r, 0, &o, FUSE_COMPAT_INIT_OUT_SIZE);
		if (!ret)
			ret = FUSE_COMPAT_INIT_OUT_SIZE;
		goto out;
	}
	o.minor = a->minor < FUSE_OUR_MINOR ? a->minor : FUSE_OUR_MINOR;
	offered = a->flags;
	if ((a->flags & FUSE_INIT_EXT) &&
	    r->tailoff - sizeof(r->h) >= offsetof(struct fuse_init_in, unused))
		offered |= (uint64_t)a->flags2 << 32;
	ours = FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS | FUSE_ATOMIC_O_TRUNC |
	       FUSE_EXPORT_SUPPORT | FUSE_BIG_WRITES | FUSE_DONT_MASK | FUSE_AUTO_INVAL_DATA |
	       FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_ASYNC_DIO |
	       FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2 | FUSE_MAX_PAGES |
	       FUSE_CACHE_SYMLINKS;
	/* Read-only: the guest kernel keeps its locks to itself (see fs/lock.c). */
	if (s->cfg.readonly)
		ours &= ~(uint64_t)(FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS);
	if (s->cfg.cache == FUSE_CACHE_ALWAYS)
		ours |= FUSE_WRITEBACK_CACHE;
	if (s->cfg.xattr)
		ours |= FUSE_POSIX_ACL;
	/* Only with a window: the guest's -o dax needs it, and mappings need it. */
	if (s->dax)
		ours |= FUSE_MAP_ALIGNMENT;
	/* Only a root minivmm switches credentials, and so has a use for the group. */
	if (s->switch_creds)
		ours |= FUSE_CREATE_SUPP_GROUP;
	granted = offered & ours;
	o.flags = (uint32_t)granted;
	/* The kernel reads flags2 only when the reply says INIT_EXT as well. */
	if (granted >> 32) {
		o.flags |= FUSE_INIT_EXT;
		o.flags2 = (uint32_t)(granted >> 32);
	}
	o.max_readahead = a->max_readahead;
	o.max_write = FUSE_MAX_WRITE;
	o.time_gran = 1;
	o.max_pages = FUSE_MAX_PAGES_;
	if (granted & FUSE_MAP_ALIGNMENT)
		o.map_alignment = (uint16_t)fs_dax_page_shift(s);
	/* Older kernels read a shorter reply. */
	outsize = o.minor < 5 ? FUSE_COMPAT_INIT_OUT_SIZE
		: o.minor < 23 ? FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof(o);
	ret = req_put(r, 0, &o, outsize);
	if (ret)
		goto out;
	s->minor = o.minor;
	atomic_store(&s->flags, granted);
	atomic_store(&s->inited, true);
	ret = (int)outsize;
out:
	pthread_mutex_unlock(&s->init_mu);
	return ret;
}

/* The guest unmounted: it holds no inodes or handles any more, and may INIT again. */
static int fsop_destroy(struct fuse_req *r)
{
	struct fuse_server *s = r->s;

	/* Parked locks are answered (EINTR) first: the guest is done with them. */
	lockwait_cancel_all(s, false);
	pthread_mutex_lock(&s->init_mu);
	atomic_store(&s->inited, false);
	atomic_store(&s->flags, 0);
	itable_forget_all(s);
	fs_dax_clear(s);
	pthread_mutex_unlock(&s->init_mu);
	return 0;
}

/* Only a blocking lock can be interrupted (it is answered EINTR, also when the INTERRUPT
 * overtook it: hiprio is a queue of its own); anything else runs to its end, which the
 * protocol allows.  Linux's virtio-fs does not send INTERRUPT today. */
static int fsop_interrupt(struct fuse_req *r)
{
	lockwait_interrupt(r->s, r->arg.interrupt.unique);
	return FUSE_NOREPLY;
}

/* ---- the server ---------------------------------------------------------------------- */

/* What the VMM keeps for itself out of RLIMIT_NOFILE, whatever the guests hold: vCPU and
 * VM fds, an ioeventfd and irqfd per queue, the console, and the fds each worker thread
 * opens for the length of one request (a reopen, a dup), for up to 64 threads per share. */
#define FD_RESERVE_MIN  512
#define FD_RESERVE_MAX  16384

/* Every inode the guest keeps looked up holds an fd; give the guests (all shares
 * together) most of what the process may open, leaving the reserve to the VMM. */
static unsigned fd_budget(void)
{
	struct rlimit rl;
	rlim_t cur, reserve;

	/* Every inode the guest holds costs one O_PATH fd, and a guest caching a 10 000-entry
	 * directory holds 10 000: the hard limit goes to the kernel's ceiling first where we
	 * may (root). */
	vm_nofile_raise();
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 256;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };
		if (!setrlimit(RLIMIT_NOFILE, &up))
			rl.rlim_cur = rl.rlim_max;
	}
	cur = rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : rl.rlim_cur;
	if (cur > (1u << 24))
		cur = 1u << 24;
	reserve = cur / 8;
	if (reserve < FD_RESERVE_MIN)
		reserve = FD_RESERVE_MIN;
	if (reserve > FD_RESERVE_MAX)
		reserve = FD_RESERVE_MAX;
	if (reserve > cur / 2)          /* a small limit: still half for the guests */
		reserve = cur / 2;
	return (unsigned)(cur - reserve);
}

struct fuse_server *fuse_server_create(const struct fuse_config *cfg, char *err, size_t errlen)
{
	struct fuse_server *s;
	int fd;

	if (!cfg || !cfg->path || !*cfg->path) {
		snprintf(err, errlen, "virtio-fs: no shared directory given");
		return NULL;
	}
	fd = open(cfg->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "virtio-fs: %s: %s", cfg->path,
			 errno == ENOTDIR ? "not a directory" : strerror(errno));
		return NULL;
	}
	s = fuse_server_create_fd(cfg, fd, err, errlen);
	close(fd);
	return s;
}

struct fuse_server *fuse_server_create_fd(const struct fuse_config *cfg, int dirfd, char *err,
					  size_t errlen)
{
	struct fuse_server *s;
	struct statx stx;
	struct fs_key key;
	char name[16], buf[PATH_MAX];
	ssize_t n;
	int fd;

	if (!cfg || !cfg->path || !*cfg->path) {
		snprintf(err, errlen, "virtio-fs: no shared directory given");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "virtio-fs: out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	s->rootfd = s->procfd = -1;
	s->path = strdup(cfg->path);
	s->cfg.path = s->path;
	pthread_mutex_init(&s->init_mu, NULL);
	lockwait_init(s);
	if (!s->path) {
		snprintf(err, errlen, "virtio-fs: out of memory");
		goto fail;
	}
	/* Our own descriptor of the very directory dirfd names: never the path again, which
	 * may have been renamed or swapped for a symlink since. */
	s->rootfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (s->rootfd < 0) {
		snprintf(err, errlen, "virtio-fs: %s: %s", cfg->path, strerror(errno));
		goto fail;
	}
	/* O_PATH needs no permission; make sure we can actually list the share. */
	fd = openat(s->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "virtio-fs: %s: %s", cfg->path, strerror(errno));
		goto fail;
	}
	close(fd);
	if (fs_statx(s->rootfd, &stx)) {
		snprintf(err, errlen, "virtio-fs: %s: %s", cfg->path, strerror(errno));
		goto fail;
	}
	fs_key_of(&stx, &key);
	if (fs_is_pseudo_fs(s->rootfd, &stx)) {
		snprintf(err, errlen, "virtio-fs: %s is a kernel pseudo file system (like /proc or "
			 "/sys); it cannot be shared", cfg->path);
		goto fail;
	}
	/* Reopening an O_PATH fd for I/O goes through its /proc/self/fd magic link. */
	s->procfd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->procfd < 0) {
		snprintf(err, errlen, "virtio-fs: /proc/self/fd: %s (is /proc mounted?)",
			 strerror(errno));
		goto fail;
	}
	snprintf(name, sizeof(name), "%d", s->rootfd);
	n = readlinkat(s->procfd, name, buf, sizeof(buf) - 1);
	if (n <= 0) {
		snprintf(err, errlen, "virtio-fs: %s: cannot name the share: %s", cfg->path,
			 strerror(n < 0 ? errno : ENOENT));
		goto fail;
	}
	buf[n] = '\0';
	s->rootpath = strdup(buf);
	s->rootlen = (size_t)n;
	if (!s->rootpath) {
		snprintf(err, errlen, "virtio-fs: out of memory");
		goto fail;
	}
	s->switch_creds = geteuid() == 0;
	s->timeout = cfg->cache == FUSE_CACHE_NEVER ? 0 : cfg->cache == FUSE_CACHE_ALWAYS ? 86400 : 1;
	fd_budget_set(fd_budget());
	if (fs_dax_init(s)) {
		snprintf(err, errlen, "virtio-fs: cannot set up the DAX window");
		goto fail;
	}
	if (itable_init(s, s->rootfd, &key)) {
		snprintf(err, errlen, "virtio-fs: out of memory");
		goto fail;
	}
	return s;               /* rootfd is the root inode's now, closed with it */
fail:
	lockwait_fini(s);
	fs_dax_fini(s);
	if (s->rootfd >= 0)
		close(s->rootfd);
	if (s->procfd >= 0)
		close(s->procfd);
	pthread_mutex_destroy(&s->init_mu);
	free(s->rootpath);
	free(s->path);
	free(s);
	return NULL;
}

void fuse_server_destroy(struct fuse_server *s)
{
	if (!s)
		return;
	lockwait_fini(s);       /* before any state a waiter's completion could touch goes */
	itable_fini(s);
	fd_unreserve_all(s);
	fs_dax_fini(s);
	close(s->procfd);
	pthread_mutex_destroy(&s->init_mu);
	free(s->rootpath);
	free(s->path);
	free(s);
}
