/* Reaching host files without ever leaving the share.  Everything is resolved one
 * component at a time relative to an O_PATH fd we hold, with openat2's RESOLVE_BENEATH and
 * no symlink following at all: a symlink in the share is an object we hand to the guest,
 * which resolves it in its own namespace, never a path we walk on the host.  Opening for
 * I/O goes through an inode we already hold and whose type we checked, so a FIFO or a
 * device node planted in the share is never opened. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "fs/internal.h"

int fs_openat(struct fuse_server *s, int dirfd, const char *name, int flags, mode_t mode)
{
	int fd;

	flags |= O_CLOEXEC | O_NOFOLLOW;
	if (!atomic_load(&s->no_openat2)) {
		struct open_how how = {
			.flags = (uint64_t)flags,
			.mode = (flags & O_CREAT) ? mode : 0,
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS)
			return -errno;
		atomic_store(&s->no_openat2, true);
	}
	/* Pre-5.6 kernels: names are single components (no '/', never ".."), so O_NOFOLLOW
	 * on the only component is the whole of "no symlinks". */
	fd = openat(dirfd, name, flags, mode);
	return fd < 0 ? -errno : fd;
}

void fs_procname(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "%d", fd);
}

int fs_reopen(struct fuse_server *s, struct fs_inode *ino, int flags)
{
	char name[16];
	int fd;

	flags &= ~(O_CREAT | O_EXCL | O_NOFOLLOW | O_DIRECTORY | O_PATH);
	if (S_ISDIR(ino->type)) {
		fd = openat(ino->fd, ".", flags | O_DIRECTORY | O_CLOEXEC);
	} else if (S_ISREG(ino->type)) {
		/* The magic link reopens exactly the inode we hold, whatever its name is now. */
		fs_procname(name, sizeof(name), ino->fd);
		fd = openat(s->procfd, name, flags | O_CLOEXEC);
	} else {
		return S_ISLNK(ino->type) ? -ELOOP : -ENXIO;
	}
	return fd < 0 ? -errno : fd;
}

int fs_statx(int fd, struct statx *stx)
{
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT,
		  STATX_BASIC_STATS | STATX_MNT_ID, stx))
		return -errno;
	return 0;
}

void fs_key_of(const struct statx *stx, struct fs_key *key)
{
	key->dev = makedev(stx->stx_dev_major, stx->stx_dev_minor);
	key->ino = stx->stx_ino;
	key->mnt = (stx->stx_mask & STATX_MNT_ID) ? stx->stx_mnt_id : 0;
}

/* The kernel's new_encode_dev(), what FUSE's attr.rdev carries. */
static uint32_t dev_encode(uint32_t maj, uint32_t min)
{
	return (min & 0xff) | ((maj & 0xfff) << 8) | ((min & ~0xffu) << 12);
}

void fs_fill_attr(struct fuse_attr *a, const struct statx *stx)
{
	memset(a, 0, sizeof(*a));
	a->ino = stx->stx_ino;
	a->size = stx->stx_size;
	a->blocks = stx->stx_blocks;
	a->atime = (uint64_t)stx->stx_atime.tv_sec;
	a->mtime = (uint64_t)stx->stx_mtime.tv_sec;
	a->ctime = (uint64_t)stx->stx_ctime.tv_sec;
	a->atimensec = stx->stx_atime.tv_nsec;
	a->mtimensec = stx->stx_mtime.tv_nsec;
	a->ctimensec = stx->stx_ctime.tv_nsec;
	a->mode = stx->stx_mode;
	a->nlink = stx->stx_nlink;
	a->uid = stx->stx_uid;
	a->gid = stx->stx_gid;
	a->rdev = dev_encode(stx->stx_rdev_major, stx->stx_rdev_minor);
	a->blksize = stx->stx_blksize;
}

void fs_fill_entry(struct fuse_server *s, struct fuse_entry_out *e, const struct fs_inode *ino,
		   const struct statx *stx)
{
	memset(e, 0, sizeof(*e));
	e->nodeid = inode_nodeid(ino);
	e->generation = ino->gen;
	e->entry_valid = s->timeout;
	e->attr_valid = s->timeout;
	fs_fill_attr(&e->attr, stx);
	if (ino->mnt == FS_MNT_SUBMOUNT)
		e->attr.flags |= FUSE_ATTR_SUBMOUNT;
}

/* ".." is the one name that walks up, so its result must still be inside the share.  It
 * always is unless the host moved a directory out from under us; refuse then. */
int fs_parent_vet(struct fuse_server *s, int fd)
{
	char name[16], path[PATH_MAX];
	ssize_t n;

	if (s->rootlen == 1)    /* the share is "/" */
		return 0;
	fs_procname(name, sizeof(name), fd);
	n = readlinkat(s->procfd, name, path, sizeof(path) - 1);
	if (n < 0)
		return -errno;
	path[n] = '\0';
	if ((size_t)n >= s->rootlen && !memcmp(path, s->rootpath, s->rootlen) &&
	    (path[s->rootlen] == '/' || path[s->rootlen] == '\0'))
		return 0;
	return -EACCES;
}

/* The guest's open flags, reduced to what makes sense on the host file.  O_DIRECT goes
 * (guest buffers have no alignment guarantee; the host page cache is fine), and with
 * writeback caching the guest may read pages of a write-only file and does O_APPEND
 * itself. */
int fs_open_flags(const struct fuse_req *r, uint32_t flags, bool create)
{
	int acc = (int)(flags & O_ACCMODE);
	int keep = O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME;
	int f;

	if (acc == O_ACCMODE)
		return -EINVAL;
	if (create)
		keep |= O_EXCL;
	f = (int)flags & keep;
	if (r->ro && (acc != O_RDONLY || (f & O_TRUNC)))
		return -EROFS;
	if (req_flags(r) & FUSE_WRITEBACK_CACHE) {
		if (acc == O_WRONLY)
			f = (f & ~O_ACCMODE) | O_RDWR;
		f &= ~O_APPEND;
	}
	return f;
}

uint32_t fs_fopen_flags(const struct fuse_server *s, bool dir)
{
	switch (s->cfg.cache) {
	case FUSE_CACHE_NEVER:
		return dir ? 0 : FOPEN_DIRECT_IO;
	case FUSE_CACHE_ALWAYS:
		return dir ? FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR : FOPEN_KEEP_CACHE;
	default:
		return 0;
	}
}

/* What Linux does to a file written or truncated by someone without CAP_FSETID: setuid
 * goes, and setgid when group-executable (without it, setgid marks mandatory locking).
 * We usually run as root, so the host kernel would not do it for us; the guest says when
 * it is due (HANDLE_KILLPRIV_V2).  The host kernel still drops security.capability on
 * every write and truncate by itself. */
int fs_kill_suidgid(int fd)
{
	struct stat st;
	mode_t m;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	m = st.st_mode & ~S_ISUID;
	if ((m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		m &= ~S_ISGID;
	if (m != st.st_mode && fchmod(fd, m & 07777))
		return -errno;
	return 0;
}

int fs_lookup(struct fuse_server *s, struct fs_inode *dir, const char *name,
	      struct fuse_entry_out *e)
{
	struct fs_inode *ino;
	struct statx stx;
	struct fs_key key;
	int fd, ret, mnt;

	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	ret = fd_reserve(s);
	if (ret)
		return ret;
	if (!strcmp(name, ".") || (!strcmp(name, "..") && dir == s->root)) {
		/* ".." of the share's root is the root itself, as at "/" (NFS export asks). */
		fd = openat(dir->fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
	} else if (!strcmp(name, "..")) {
		fd = openat(dir->fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
		if (fd >= 0 && (ret = fs_parent_vet(s, fd))) {
			close(fd);
			fd = ret;
		}
	} else {
		fd = fs_openat(s, dir->fd, name, O_PATH, 0);
	}
	if (fd < 0) {
		fd_unreserve(s);
		return fd;
	}
	ret = node_statx(s, fd, &stx);    /* a mapped device node shows as the node */
	if (ret) {
		close(fd);
		fd_unreserve(s);
		return ret;
	}
	/* Never into /proc and the like; other mount points as the share says. */
	mnt = fs_mount_policy(s, fd, &stx, dir, !strcmp(name, ".."));
	if (mnt < 0) {
		close(fd);
		fd_unreserve(s);
		return mnt;
	}
	fs_key_of(&stx, &key);
	ret = inode_intern(s, fd, &key, stx.stx_mode, (enum fs_mnt)mnt, &ino);
	if (ret)
		return ret;
	fs_fill_entry(s, e, ino, &stx);
	inode_put(s, ino);
	return 0;
}
