/* File ops: OPEN, CREATE, READ, WRITE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK,
 * COPY_FILE_RANGE, SYNCFS.  Data moves between the host file and guest memory directly
 * (preadv into the reply buffers, pwritev from the request's), never through a copy. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fs/internal.h"

#define IOV_STACK 64
#define COPY_MAX  (1u << 30)    /* COPY_FILE_RANGE answers in 32 bits */

/* OPEN and OPENDIR end alike: `fd` (already counted by fd_reserve) becomes a handle of
 * `kind` on the request's node, and the reply carries it.  On failure the fd and its
 * reservation are given back. */
int fs_reply_open(struct fuse_req *r, enum fs_handle_kind kind, int fd)
{
	struct fuse_open_out o;
	uint64_t fh;
	int ret = handle_new(r->s, kind, fd, r->ino, &fh);

	if (ret) {
		close(fd);
		fd_unreserve(r->s);
		return ret;
	}
	memset(&o, 0, sizeof(o));
	o.fh = fh;
	o.open_flags = fs_fopen_flags(r->s, kind == FS_HANDLE_DIR);
	req_put(r, 0, &o, sizeof(o));
	return sizeof(o);
}

int fsop_open(struct fuse_req *r)
{
	struct fuse_server *s = r->s;
	const struct fuse_open_in *a = &r->arg.open;
	int flags, fd, ret;

	if (S_ISDIR(r->ino->type))
		return -EISDIR;
	flags = fs_open_flags(r, a->flags, false);
	if (flags < 0)
		return flags;
	ret = fd_reserve(s);
	if (ret)
		return ret;
	fd = fs_reopen(s, r->ino, flags);
	if (fd < 0) {
		fd_unreserve(s);
		return fd;
	}
	/* O_TRUNC by a guest user without CAP_FSETID (HANDLE_KILLPRIV_V2). */
	if ((a->open_flags & FUSE_OPEN_KILL_SUIDGID) && (flags & O_TRUNC))
		fs_kill_suidgid(fd);
	return fs_reply_open(r, FS_HANDLE_FILE, fd);
}

/* A new file: created exclusively as the requester, so we know it is the regular file we
 * just made; its O_PATH twin comes from the open fd, not from the name again. */
static int create_new(struct fuse_req *r, int flags, mode_t mode, struct fuse_entry_out *e,
		      int *fdp)
{
	struct fuse_server *s = r->s;
	struct fs_inode *ino;
	struct statx stx;
	struct fs_key key;
	struct fs_creds c;
	char name[16];
	int fd, pfd, ret;

	ret = fd_reserve(s);
	if (ret)
		return ret;
	ret = creds_enter(r, &c, r->arg.create.umask, &mode);
	if (ret) {
		fd_unreserve(s);
		return ret;
	}
	fd = fs_openat(s, r->ino->fd, r->name, flags | O_CREAT | O_EXCL, mode);
	creds_leave(&c);
	if (fd < 0) {
		fd_unreserve(s);
		return fd;
	}
	fs_procname(name, sizeof(name), fd);
	pfd = openat(s->procfd, name, O_PATH | O_CLOEXEC);
	ret = pfd < 0 ? -errno : fs_statx(pfd, &stx);
	if (ret) {
		if (pfd >= 0)
			close(pfd);
		close(fd);
		fd_unreserve(s);
		return ret;
	}
	fs_key_of(&stx, &key);
	/* From here the O_PATH fd and its reservation belong to the inode table. */
	ret = inode_intern(s, pfd, &key, stx.stx_mode, FS_MNT_PLAIN, &ino);
	if (ret) {
		close(fd);
		return ret;
	}
	fs_fill_entry(s, e, ino, &stx);
	inode_put(s, ino);
	*fdp = fd;
	return 0;
}

/* The name exists and the guest did not ask for O_EXCL: open what is there like OPEN
 * would, which refuses FIFOs, devices and symlinks instead of blocking on or following
 * them. */
static int create_existing(struct fuse_req *r, int flags, struct fuse_entry_out *e, int *fdp)
{
	struct fuse_server *s = r->s;
	struct fs_inode *ino;
	int ret, fd;

	ret = fs_lookup(s, r->ino, r->name, e);
	if (ret)
		return ret;
	ino = inode_get(s, e->nodeid);
	if (!ino)
		return -ESTALE;
	fd = S_ISDIR(ino->type) ? -EISDIR : fs_reopen(s, ino, flags);
	inode_put(s, ino);
	if (fd < 0) {
		inode_forget(s, e->nodeid, 1);
		return fd;
	}
	if ((r->arg.create.open_flags & FUSE_OPEN_KILL_SUIDGID) && (flags & O_TRUNC))
		fs_kill_suidgid(fd);
	/* The lookup's attributes predate O_TRUNC. */
	if (flags & O_TRUNC) {
		struct statx stx;
		if (!fs_statx(fd, &stx))
			fs_fill_attr(&e->attr, &stx);
	}
	*fdp = fd;
	return 0;
}

int fsop_create(struct fuse_req *r)
{
	struct fuse_server *s = r->s;
	const struct fuse_create_in *a = &r->arg.create;
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} out;
	struct fs_inode *ino;
	uint64_t fh;
	int flags, fd = -1, ret;

	_Static_assert(sizeof(out) == sizeof(out.e) + sizeof(out.o), "packed reply");
	if (!S_ISDIR(r->ino->type))
		return -ENOTDIR;
	flags = fs_open_flags(r, a->flags, true);
	if (flags < 0)
		return flags;
	memset(&out, 0, sizeof(out));
	ret = fd_reserve(s);    /* the open file's; the inode's O_PATH fd reserves its own */
	if (ret)
		return ret;
	ret = create_new(r, flags, creds_safe_mode(s, S_IFREG | (a->mode & 07777)) & 07777, &out.e,
			 &fd);
	if (ret == -EEXIST && !(flags & O_EXCL))
		ret = create_existing(r, flags, &out.e, &fd);
	if (ret) {
		fd_unreserve(s);
		return ret;
	}
	ino = inode_get(s, out.e.nodeid);
	ret = ino ? handle_new(s, FS_HANDLE_FILE, fd, ino, &fh) : -ESTALE;
	if (ino)
		inode_put(s, ino);
	if (ret) {
		close(fd);
		fd_unreserve(s);
		inode_forget(s, out.e.nodeid, 1);
		return ret;
	}
	out.o.fh = fh;
	out.o.open_flags = fs_fopen_flags(s, false);
	req_put(r, 0, &out, sizeof(out));
	return sizeof(out);
}

/* iovecs for a transfer: on the stack for ordinary chains, bounded by IOV_MAX. */
static struct iovec *iov_alloc(int n, struct iovec *stack, int *max)
{
	if (n <= IOV_STACK) {
		*max = IOV_STACK;
		return stack;
	}
	*max = n < IOV_MAX ? n : IOV_MAX;
	return malloc((size_t)*max * sizeof(struct iovec));
}

int fsop_read(struct fuse_req *r)
{
	const struct fuse_read_in *a = &r->arg.read;
	struct iovec stack[IOV_STACK], *iov;
	struct fs_handle *h;
	size_t len;
	ssize_t n;
	int max, cnt;

	if (a->offset > INT64_MAX || a->size > INT64_MAX - a->offset)
		return -EINVAL;
	h = handle_get(r->s, a->fh, FS_HANDLE_FILE);
	if (!h)
		return -EBADF;
	len = a->size < req_room(r) ? a->size : req_room(r);
	iov = iov_alloc(r->nout, stack, &max);
	if (!iov) {
		handle_put(r->s, h);
		return -ENOMEM;
	}
	cnt = req_out_iov(r, 0, len, iov, max);
	n = cnt > 0 ? preadv(h->fd, iov, cnt, (off_t)a->offset) : 0;
	if (n < 0)
		n = -errno;
	if (iov != stack)
		free(iov);
	handle_put(r->s, h);
	return (int)n;
}

/* WRITE and COPY_FILE_RANGE answer alike: bytes written, or the error. */
static int write_reply(struct fuse_req *r, ssize_t n)
{
	struct fuse_write_out o;

	if (n < 0)
		return (int)n;
	memset(&o, 0, sizeof(o));
	o.size = (uint32_t)n;
	req_put(r, 0, &o, sizeof(o));
	return sizeof(o);
}

int fsop_write(struct fuse_req *r)
{
	const struct fuse_write_in *a = &r->arg.write;
	struct iovec stack[IOV_STACK], *iov;
	struct fs_handle *h;
	ssize_t n;
	int max, cnt, ret;

	/* The payload is exactly the rest of the request. */
	if (a->size != r->taillen || a->size > FUSE_MAX_WRITE)
		return -EINVAL;
	if (a->offset > INT64_MAX)
		return -EINVAL;
	if (a->size > INT64_MAX - a->offset)
		return -EFBIG;
	h = handle_get(r->s, a->fh, FS_HANDLE_FILE);
	if (!h)
		return -EBADF;
	if (a->write_flags & FUSE_WRITE_KILL_SUIDGID) {
		ret = fs_kill_suidgid(h->fd);
		if (ret) {
			handle_put(r->s, h);
			return ret;
		}
	}
	iov = iov_alloc(r->nin, stack, &max);
	if (!iov) {
		handle_put(r->s, h);
		return -ENOMEM;
	}
	cnt = req_tail_iov(r, 0, a->size, iov, max);
	n = cnt > 0 ? pwritev(h->fd, iov, cnt, (off_t)a->offset) : 0;
	if (n < 0)
		n = -errno;
	if (iov != stack)
		free(iov);
	handle_put(r->s, h);
	return write_reply(r, n);
}

int fsop_release(struct fuse_req *r)
{
	const struct fuse_release_in *a = &r->arg.release;

	if (a->release_flags & FUSE_RELEASE_FLOCK_UNLOCK) {
		struct fs_handle *h = handle_get(r->s, a->fh, FS_HANDLE_FILE);
		if (h) {
			flock(h->fd, LOCK_UN);
			handle_put(r->s, h);
		}
	}
	return handle_release(r->s, a->fh, FS_HANDLE_FILE);
}

/* close(2) in the guest: its POSIX locks go (the owner's lock file closes), and the host
 * file sees a close too (closing a dup), which is when NFS-like filesystems flush. */
int fsop_flush(struct fuse_req *r)
{
	const struct fuse_flush_in *a = &r->arg.flush;
	struct fs_handle *h = handle_get(r->s, a->fh, FS_HANDLE_FILE);
	int fd, ret = 0;

	if (!h)
		return -EBADF;
	plock_drop_owner(r->s, h->ino, a->lock_owner);
	fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || close(fd))
		ret = -errno;
	handle_put(r->s, h);
	return ret;
}

/* FSYNC and FSYNCDIR: the same call on a handle of the given kind. */
int handle_fsync(struct fuse_req *r, enum fs_handle_kind kind)
{
	const struct fuse_fsync_in *a = &r->arg.fsync;
	struct fs_handle *h = handle_get(r->s, a->fh, kind);
	int ret;

	if (!h)
		return -EBADF;
	ret = (a->fsync_flags & FUSE_FSYNC_FDATASYNC) ? fdatasync(h->fd) : fsync(h->fd);
	ret = ret ? -errno : 0;
	handle_put(r->s, h);
	return ret;
}

int fsop_fsync(struct fuse_req *r)
{
	return handle_fsync(r, FS_HANDLE_FILE);
}

int fsop_fallocate(struct fuse_req *r)
{
	const struct fuse_fallocate_in *a = &r->arg.fallocate;
	const uint32_t known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE |
			       FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE |
			       FALLOC_FL_UNSHARE_RANGE;
	struct fs_handle *h;
	int ret;

	if (a->offset > INT64_MAX || a->length == 0 || a->length > INT64_MAX)
		return -EINVAL;
	if (a->length > INT64_MAX - a->offset)
		return -EFBIG;
	if (a->mode & ~known)
		return -EOPNOTSUPP;
	h = handle_get(r->s, a->fh, FS_HANDLE_FILE);
	if (!h)
		return -EBADF;
	ret = fallocate(h->fd, (int)a->mode, (off_t)a->offset, (off_t)a->length) ? -errno : 0;
	handle_put(r->s, h);
	return ret;
}

int fsop_lseek(struct fuse_req *r)
{
	const struct fuse_lseek_in *a = &r->arg.lseek;
	struct fuse_lseek_out o;
	struct fs_handle *h;
	off_t off;

	/* The guest resolves SEEK_SET/CUR/END itself; only data and holes need the host. */
	if ((a->whence != SEEK_DATA && a->whence != SEEK_HOLE) || a->offset > INT64_MAX)
		return -EINVAL;
	h = handle_get(r->s, a->fh, FS_HANDLE_FILE);
	if (!h)
		return -EBADF;
	/* pread/pwrite never use the file position, so moving it is harmless. */
	off = lseek(h->fd, (off_t)a->offset, (int)a->whence);
	handle_put(r->s, h);
	if (off < 0)
		return -errno;
	memset(&o, 0, sizeof(o));
	o.offset = (uint64_t)off;
	req_put(r, 0, &o, sizeof(o));
	return sizeof(o);
}

int fsop_copy_file_range(struct fuse_req *r)
{
	const struct fuse_copy_file_range_in *a = &r->arg.copy;
	struct fs_handle *hi, *ho;
	uint64_t len = a->len < COPY_MAX ? a->len : COPY_MAX;
	loff_t oi = (loff_t)a->off_in, oo = (loff_t)a->off_out;
	ssize_t n;

	if (a->flags)
		return -EINVAL;
	if (a->off_in > INT64_MAX || a->off_out > INT64_MAX || len > INT64_MAX - a->off_in)
		return -EINVAL;
	if (len > INT64_MAX - a->off_out)
		return -EFBIG;
	hi = handle_get(r->s, a->fh_in, FS_HANDLE_FILE);
	if (!hi)
		return -EBADF;
	ho = handle_get(r->s, a->fh_out, FS_HANDLE_FILE);
	if (!ho) {
		handle_put(r->s, hi);
		return -EBADF;
	}
	n = copy_file_range(hi->fd, &oi, ho->fd, &oo, (size_t)len, 0);
	if (n < 0)
		n = -errno;
	handle_put(r->s, ho);
	handle_put(r->s, hi);
	return write_reply(r, n);
}

/* syncfs() of the file system `ino` is on; it refuses O_PATH fds, so through a
 * short-lived real fd of the inode (sealed mount points are never opened: nothing of the
 * guest's lives there). */
static int syncfs_of(struct fuse_server *s, struct fs_inode *ino)
{
	int fd, ret;

	if (ino->mnt == FS_MNT_SEALED)
		return 0;
	fd = fs_reopen(s, ino, O_RDONLY);
	if (fd < 0)
		return fd;
	ret = syncfs(fd) ? -errno : 0;
	close(fd);
	return ret;
}

/* The guest syncs one of its superblocks: a submount's (the node is its root), or the
 * share's (the root), which may hold inodes of other host file systems too (a guest that
 * ignores submounts), so that syncs each file system the share's cached inodes are on. */
int fsop_syncfs(struct fuse_req *r)
{
	struct fs_inode *ino = inode_get(r->s, r->h.nodeid), *v[FS_SYNC_MAX];
	int n, ret = 0;

	if (ino && ino != r->s->root) {
		ret = syncfs_of(r->s, ino);
		inode_put(r->s, ino);
		return ret;
	}
	if (ino)
		inode_put(r->s, ino);
	n = itable_per_fs(r->s, v, FS_SYNC_MAX);
	for (int i = 0; i < n; i++) {
		int err = syncfs_of(r->s, v[i]);
		if (!ret && err && err != -EACCES)      /* a file we may not read: skipped */
			ret = err;
		inode_put(r->s, v[i]);
	}
	return ret;
}
