/* Attribute ops: GETATTR, SETATTR, STATFS, ACCESS and the extended attributes.  They act on
 * inodes through the O_PATH fds we hold: directly where the kernel accepts an O_PATH fd
 * (fchownat, fstatfs, statx), through /proc/self/fd where it needs a path (chmod, xattrs),
 * and through a real open file only where the data is touched (truncate). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/limits.h>

#include "fs/internal.h"

static int attr_reply(struct fuse_req *r)
{
	struct fuse_attr_out o;
	struct statx stx;
	int ret = node_inode_statx(r->s, r->ino, &stx);

	if (ret)
		return ret;
	memset(&o, 0, sizeof(o));
	o.attr_valid = r->s->timeout;
	fs_fill_attr(&o.attr, &stx);
	req_put(r, 0, &o, sizeof(o));
	return sizeof(o);
}

/* The kernel checked the guest's permissions (virtio-fs mounts with default_permissions);
 * attributes are read the same whatever handle the guest names, so the fh is not needed. */
int fsop_getattr(struct fuse_req *r)
{
	return attr_reply(r);
}

static int attr_time(struct timespec *ts, uint32_t valid, uint32_t set, uint32_t now,
		     uint64_t sec, uint32_t nsec)
{
	if (!(valid & set)) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_OMIT;
	} else if (valid & now) {
		ts->tv_sec = 0;
		ts->tv_nsec = UTIME_NOW;
	} else {
		if (nsec >= 1000000000u)
			return -EINVAL;
		ts->tv_sec = (time_t)sec;
		ts->tv_nsec = nsec;
	}
	return 0;
}

static int attr_truncate(struct fuse_req *r, struct fs_handle *h, uint64_t size, bool kill)
{
	int fd, ret = 0;

	if (size > INT64_MAX)
		return -EINVAL;
	if (h) {
		fd = h->fd;
	} else {
		if (S_ISDIR(r->ino->type))
			return -EISDIR;
		if (!S_ISREG(r->ino->type))
			return -EINVAL;
		fd = fs_reopen(r->s, r->ino, O_WRONLY);
		if (fd < 0)
			return fd;
	}
	if (kill)
		ret = fs_kill_suidgid(fd);
	if (!ret && ftruncate(fd, (off_t)size))
		ret = -errno;
	if (!h)
		close(fd);
	return ret;
}

/* In the order the kernel applies a combined change: mode, owner, size, times. */
int fsop_setattr(struct fuse_req *r)
{
	struct fuse_server *s = r->s;
	const struct fuse_setattr_in *a = &r->arg.setattr;
	uint32_t v = a->valid;
	struct fs_inode *ino = r->ino;
	struct fs_handle *h = NULL;
	struct timespec ts[2];
	char name[16];
	int ret = 0;

	if (v & FATTR_FH) {
		h = handle_get(s, a->fh, 0);
		if (!h)
			return -EBADF;
		/* Another node's handle would truncate or touch that file instead. */
		if (h->ino != ino) {
			handle_put(s, h);
			return -EBADF;
		}
	}
	fs_procname(name, sizeof(name), ino->fd);
	if (v & FATTR_MODE) {
		if (S_ISLNK(ino->type))
			ret = -EOPNOTSUPP;      /* Linux has no symlink modes */
		else if ((ret = node_chmod(s, ino, a->mode & 07777)) != NODE_NOT_MAPPED)
			;                       /* a mapped device node: its stored bits */
		else if (fchmodat(s->procfd, name,
				  creds_safe_mode(s, ino->type | (a->mode & 07777)) & 07777, 0))
			ret = -errno;
		else
			ret = node_owner_chmod(s, ino, a->mode & 07777);   /* (owner=mapped) */
	}
	if (!ret && (v & (FATTR_UID | FATTR_GID))) {
		uid_t uid = (v & FATTR_UID) ? a->uid : (uid_t)-1;
		gid_t gid = (v & FATTR_GID) ? a->gid : (gid_t)-1;
		/* (The host kernel drops setuid/setgid on a chown by itself.) */
		if ((ret = node_owner_chown(s, ino, uid, gid)) != NODE_NOT_MAPPED)
			;                               /* owner=mapped did it */
		else if (fchownat(ino->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
			ret = -errno;
		else
			ret = node_chown(s, ino);       /* (a mapped node's stored bits) */
	}
	if (!ret && (v & FATTR_SIZE))
		ret = attr_truncate(r, h, a->size,
				    (v & FATTR_KILL_SUIDGID) && !(v & FATTR_MODE));
	if (!ret && (v & (FATTR_ATIME | FATTR_MTIME))) {
		ret = attr_time(&ts[0], v, FATTR_ATIME, FATTR_ATIME_NOW, a->atime, a->atimensec);
		if (!ret)
			ret = attr_time(&ts[1], v, FATTR_MTIME, FATTR_MTIME_NOW, a->mtime,
					a->mtimensec);
		if (ret)
			;
		else if (h)
			ret = futimens(h->fd, ts) ? -errno : 0;
		else if (S_ISLNK(ino->type))
			ret = utimensat(ino->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
			      ? -errno : 0;
		else
			ret = utimensat(s->procfd, name, ts, 0) ? -errno : 0;
	}
	if (h)
		handle_put(s, h);
	return ret ? ret : attr_reply(r);
}

int fsop_statfs(struct fuse_req *r)
{
	struct fuse_statfs_out o;
	struct statfs st;

	if (fstatfs(r->ino->fd, &st))
		return -errno;
	memset(&o, 0, sizeof(o));
	o.st.blocks = st.f_blocks;
	o.st.bfree = st.f_bfree;
	o.st.bavail = st.f_bavail;
	o.st.files = st.f_files;
	o.st.ffree = st.f_ffree;
	o.st.bsize = (uint32_t)st.f_bsize;
	o.st.namelen = (uint32_t)st.f_namelen;
	o.st.frsize = (uint32_t)st.f_frsize;
	req_put(r, 0, &o, sizeof(o));
	return sizeof(o);
}

/* Mode bits against the requester's uid and primary gid.  The guest's supplementary
 * groups are not in the request and ACLs are not consulted; guests mount virtio-fs with
 * default_permissions and check access themselves, so ACCESS is advisory. */
int fsop_access(struct fuse_req *r)
{
	uint32_t mask = r->arg.access.mask;
	struct statx stx;
	unsigned bits;
	int ret;

	if (mask & ~(uint32_t)(R_OK | W_OK | X_OK))
		return -EINVAL;
	if ((mask & W_OK) && r->ro)
		return -EROFS;
	ret = fs_statx(r->ino->fd, &stx);
	if (ret || !mask)
		return ret;
	if (r->h.uid == 0) {
		/* root: everything, but executing needs an x bit somewhere */
		if ((mask & X_OK) && !S_ISDIR(stx.stx_mode) && !(stx.stx_mode & 0111))
			return -EACCES;
		return 0;
	}
	if (r->h.uid == stx.stx_uid)
		bits = (stx.stx_mode >> 6) & 7;
	else if (r->h.gid == stx.stx_gid)
		bits = (stx.stx_mode >> 3) & 7;
	else
		bits = stx.stx_mode & 7;
	return (bits & mask) == mask ? 0 : -EACCES;
}

/* ---- extended attributes ------------------------------------------------------------- */

/* The xattr calls take paths; the magic link of the O_PATH fd lands on the inode itself,
 * a symlink included (it is not followed further). */
static void xattr_path(char *buf, size_t len, const struct fs_inode *ino)
{
	snprintf(buf, len, "/proc/self/fd/%d", ino->fd);
}

/* trusted.* needs CAP_SYS_ADMIN on the host and steers host subsystems (overlayfs keeps
 * its metadata there); the guest's root is not the host's. */
static bool xattr_forbidden(const char *name)
{
	return !strncmp(name, "trusted.", 8);
}

int fsop_setxattr(struct fuse_req *r)
{
	char path[40];
	int flags = (int)r->arg.setxattr.flags;

	int ret;

	if (xattr_forbidden(r->name) || !creds_xattr_allowed(r->s, r->name))
		return -EPERM;
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	if ((ret = node_xattr_check(r->s, r->ino, r->name)))
		return ret;
	xattr_path(path, sizeof(path), r->ino);
	return setxattr(path, r->name, r->value, r->valuelen, flags) ? -errno : 0;
}

int fsop_removexattr(struct fuse_req *r)
{
	char path[40];
	int ret;

	if (xattr_forbidden(r->name))
		return -EPERM;
	if ((ret = node_xattr_check(r->s, r->ino, r->name)))
		return ret;
	xattr_path(path, sizeof(path), r->ino);
	return removexattr(path, r->name) ? -errno : 0;
}

/* LISTXATTR without minivmm's own names (node.c): the whole list is read, so that sizes
 * and ERANGE are those of what the guest sees. */
static int xattr_list(struct fuse_req *r, const char *path)
{
	uint32_t size = r->arg.getxattr.size;
	char *buf = malloc(XATTR_LIST_MAX);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = listxattr(path, buf, XATTR_LIST_MAX);
	if (n < 0) {
		n = -errno;
	} else {
		n = (ssize_t)node_xattr_filter(buf, (size_t)n);
		if (size == 0) {
			struct fuse_getxattr_out o = { .size = (uint32_t)n };
			n = req_put(r, 0, &o, sizeof(o)) ? -EINVAL : (ssize_t)sizeof(o);
		} else if ((size_t)n > size || (size_t)n > req_room(r)) {
			n = -ERANGE;
		} else {
			req_put(r, 0, buf, (size_t)n);
		}
	}
	free(buf);
	return (int)n;
}

/* GETXATTR and LISTXATTR: size 0 asks how big; otherwise the data, or ERANGE. */
static int xattr_fetch(struct fuse_req *r, const char *name)
{
	uint32_t size = r->arg.getxattr.size;
	char path[40];
	char *buf = NULL;
	ssize_t n;
	size_t cap;

	xattr_path(path, sizeof(path), r->ino);
	if (!name)
		return xattr_list(r, path);
	if (node_xattr_hidden(name))
		return -ENODATA;        /* as if it were not there: the guest cannot tell */
	if (size == 0) {
		struct fuse_getxattr_out o = { 0 };
		n = name ? getxattr(path, name, NULL, 0) : listxattr(path, NULL, 0);
		if (n < 0)
			return -errno;
		o.size = (uint32_t)n;
		if (req_put(r, 0, &o, sizeof(o)))
			return -EINVAL;
		return sizeof(o);
	}
	cap = size < req_room(r) ? size : req_room(r);
	if (cap > XATTR_SIZE_MAX)
		cap = XATTR_SIZE_MAX;
	/* No room at all: the syscalls would take a zero-length buffer as a size query and
	 * succeed, so only an empty value (or list) fits. */
	if (cap == 0) {
		n = name ? getxattr(path, name, NULL, 0) : listxattr(path, NULL, 0);
		return n < 0 ? -errno : n > 0 ? -ERANGE : 0;
	}
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	n = name ? getxattr(path, name, buf, cap) : listxattr(path, buf, cap);
	if (n < 0)
		n = -errno;
	else if (req_put(r, 0, buf, (size_t)n))
		n = -EFAULT;    /* a reply buffer we may not store to (DAX): no payload */
	free(buf);
	return (int)n;
}

int fsop_getxattr(struct fuse_req *r)
{
	return xattr_fetch(r, r->name);
}

int fsop_listxattr(struct fuse_req *r)
{
	return xattr_fetch(r, NULL);
}
