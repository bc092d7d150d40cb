/* Mapped device nodes (devices=mapped, the default): a guest's character or block device
 * is stored on the host as an inert regular file (mode at most 0600, empty, never
 * executable) and shown to the guest as the node it made.  What the node is lives in one
 * extended attribute of minivmm's own, `trusted.minivmm.node` when minivmm runs as root
 * (only CAP_SYS_ADMIN can read or write it on the host) and `user.minivmm.node`
 * otherwise (trusted.* is out of reach).  The guest never sees, sets or removes either
 * name (attr.c asks node_xattr_hidden), so it cannot turn a file into a node, and the host
 * never holds a device the guest chose: opening the placeholder on the host reads an
 * empty file.
 *
 * owner=mapped (minivmm not root) keeps in the same attribute what the host refuses an
 * unprivileged user: a chown to another uid/gid, and setuid/setgid bits (which suid=off
 * keeps off the host file), for regular files, directories and mapped nodes (Linux allows
 * user.* attributes on nothing else).
 *
 * The encoding, version 1: ASCII, fields separated by one space, no terminator:
 *
 *     1 TYPE PERM MAJOR MINOR [UID GID]        e.g. "1 c 620 4 1", "1 - 4000 0 0 0 0"
 *
 * TYPE is `c` (S_IFCHR) or `b` (S_IFBLK), PERM then the node's permission bits in octal
 * (<= 7777); or `-`: no device, the host file's own type and bits, PERM then only setuid
 * and setgid (<= 6000) shown on top of them, MAJOR and MINOR 0.  MAJOR (< 4096) and MINOR
 * (< 2^20) in decimal, the ranges of a Linux dev_t.  UID and GID (decimal, < 2^32 - 1),
 * both or neither: the owner shown instead of the host file's (owner=mapped only).  No
 * sign, no leading or trailing blanks, nothing else.  A reader refuses any version it does
 * not know.
 *
 * Cost: only a file that can be a placeholder (regular, size 0, no mode bits beyond 0600)
 * has its attribute read, on LOOKUP, READDIR and on GETATTR/SETATTR of an inode the guest
 * knows as a device; with owner=mapped, every regular file and directory.  A placeholder
 * whose attribute is missing or malformed (edited on the host) is shown as the plain file
 * it is, with one rate-limited log line. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fs/internal.h"
#include "vmm/vm.h"

#define NODE_MAJOR_MAX 0xfffu
#define NODE_MINOR_MAX 0xfffffu

/* Host-caused trouble (an edited attribute) or a share without xattrs: at most one line a
 * second for the whole process, as a guest can make us look at such files at will. */
static void node_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void node_log(const char *fmt, ...)
{
	static atomic_long last;
	struct timespec ts;
	char buf[256];
	va_list ap;
	long prev;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	prev = atomic_load(&last);
	if (prev && ts.tv_sec - prev < 1)
		return;
	if (!atomic_compare_exchange_strong(&last, &prev, ts.tv_sec ? ts.tv_sec : 1))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	vm_log("virtio-fs: %s", buf);
}

/* ---- the encoding -------------------------------------------------------------------- */

int node_encode(const struct node_meta *m, char *buf, size_t len)
{
	char type;
	int n;

	if (S_ISCHR(m->mode))
		type = 'c';
	else if (S_ISBLK(m->mode))
		type = 'b';
	else if (!(m->mode & ~(mode_t)06000) && !m->major && !m->minor)
		type = '-';
	else
		return -EINVAL;
	if (m->major > NODE_MAJOR_MAX || m->minor > NODE_MINOR_MAX)
		return -EINVAL;
	if (m->owner && (m->uid == UINT32_MAX || m->gid == UINT32_MAX))
		return -EINVAL;
	if (m->owner)
		n = snprintf(buf, len, "1 %c %o %u %u %u %u", type, (unsigned)(m->mode & 07777),
			     m->major, m->minor, m->uid, m->gid);
	else
		n = snprintf(buf, len, "1 %c %o %u %u", type, (unsigned)(m->mode & 07777),
			     m->major, m->minor);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return n;
}

/* One unsigned field of at most `max` in `base` ending at a space or the end: the number
 * of characters taken, 0 if malformed. */
static size_t node_field(const char *p, const char *end, unsigned base, uint32_t max,
			 uint32_t *out)
{
	uint64_t v = 0;
	size_t n = 0;

	while (p + n < end && p[n] != ' ') {
		unsigned d = (unsigned)(p[n] - '0');
		if (d >= base || n >= 10)
			return 0;
		v = v * base + d;
		n++;
	}
	if (!n || v > max)
		return 0;
	*out = (uint32_t)v;
	return n;
}

int node_decode(const char *buf, size_t len, struct node_meta *m)
{
	const char *p = buf, *end = buf + len;
	uint32_t perm, major, minor, uid = 0, gid = 0;
	bool owner = false;
	mode_t type;
	size_t n;

	if (len < 9 || memcmp(p, "1 ", 2))
		return -EINVAL;
	p += 2;
	if (p[0] == 'c')
		type = S_IFCHR;
	else if (p[0] == 'b')
		type = S_IFBLK;
	else if (p[0] == '-')
		type = 0;
	else
		return -EINVAL;
	if (p[1] != ' ')
		return -EINVAL;
	p += 2;
	if (!(n = node_field(p, end, 8, 07777, &perm)) || (p += n) >= end || *p++ != ' ')
		return -EINVAL;
	if (!(n = node_field(p, end, 10, NODE_MAJOR_MAX, &major)) || (p += n) >= end ||
	    *p++ != ' ')
		return -EINVAL;
	if (!(n = node_field(p, end, 10, NODE_MINOR_MAX, &minor)))
		return -EINVAL;
	p += n;
	if (p != end) {
		if (*p++ != ' ' || !(n = node_field(p, end, 10, UINT32_MAX - 1, &uid)) ||
		    (p += n) >= end || *p++ != ' ' ||
		    !(n = node_field(p, end, 10, UINT32_MAX - 1, &gid)) || p + n != end)
			return -EINVAL;
		owner = true;
	}
	if (!type && ((perm & ~06000u) || major || minor))
		return -EINVAL;
	m->mode = type | perm;
	m->major = major;
	m->minor = minor;
	m->owner = owner;
	m->uid = uid;
	m->gid = gid;
	return 0;
}

/* The kernel's new_encode_dev() layout, what FUSE's mknod rdev carries. */
void node_dev_decode(uint32_t rdev, uint32_t *major, uint32_t *minor)
{
	*major = (rdev & 0xfff00) >> 8;
	*minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
}

/* ---- the attribute ------------------------------------------------------------------- */

const char *node_xattr_name(const struct fuse_server *s)
{
	return s->switch_creds ? NODE_XATTR_ROOT : NODE_XATTR_USER;
}

bool node_xattr_hidden(const char *name)
{
	return !strcmp(name, NODE_XATTR_ROOT) || !strcmp(name, NODE_XATTR_USER);
}

bool node_candidate(const struct statx *stx)
{
	return S_ISREG(stx->stx_mode) && stx->stx_size == 0 && !(stx->stx_mode & 07777 & ~0600);
}

/* The node a placeholder stands for: 0, -ENODATA (a plain file), or another -errno. */
static int node_read(struct fuse_server *s, int fd, struct node_meta *m)
{
	char path[40], buf[NODE_XATTR_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = getxattr(path, node_xattr_name(s), buf, sizeof(buf));
	if (n < 0)
		return errno == ERANGE ? -EINVAL : -errno;
	return node_decode(buf, (size_t)n, m);
}

static void node_apply(struct statx *stx, const struct node_meta *m)
{
	stx->stx_mode = (uint16_t)m->mode;
	stx->stx_rdev_major = m->major;
	stx->stx_rdev_minor = m->minor;
}

/* owner=mapped is in force: only an unprivileged minivmm needs it. */
static bool node_owner_on(const struct fuse_server *s)
{
	return s->cfg.owner_mapped && !s->switch_creds;
}

int node_present(struct fuse_server *s, int fd, struct statx *stx, bool known_node)
{
	bool cand = node_candidate(stx);
	bool owner = node_owner_on(s) && (S_ISREG(stx->stx_mode) || S_ISDIR(stx->stx_mode));
	struct node_meta m;
	int ret;

	if (!cand && !owner) {
		if (known_node && S_ISREG(stx->stx_mode))
			node_log("a mapped device node (host inode %llu) is no longer an empty 0600 "
				 "file; shown as the regular file it is",
				 (unsigned long long)stx->stx_ino);
		return 0;
	}
	ret = node_read(s, fd, &m);
	if (ret) {
		/* Most empty 0600 files are just that (no attribute, or one we may not read,
		 * or a file system without them); only a damaged attribute is news. */
		if (ret == -EINVAL || (known_node && cand))
			node_log("host inode %llu: %s %s (%s); shown as the regular file it is",
				 (unsigned long long)stx->stx_ino, node_xattr_name(s),
				 ret == -EINVAL ? "is malformed" : ret == -ENODATA ? "is gone" :
				 "cannot be read", strerror(-ret));
		return 0;
	}
	if (m.mode & S_IFMT) {
		if (!cand) {
			node_log("host inode %llu: a device node's %s on a file that is not an empty "
				 "0600 one; shown as the file it is", (unsigned long long)stx->stx_ino,
				 node_xattr_name(s));
			return 0;
		}
		node_apply(stx, &m);
	} else if (owner) {
		stx->stx_mode |= (uint16_t)(m.mode & 06000);
	}
	if (m.owner && node_owner_on(s)) {
		stx->stx_uid = m.uid;
		stx->stx_gid = m.gid;
	}
	return 1;
}

int node_statx(struct fuse_server *s, int fd, struct statx *stx)
{
	int ret = fs_statx(fd, stx);

	if (!ret)
		node_present(s, fd, stx, false);
	return ret;
}

int node_inode_statx(struct fuse_server *s, const struct fs_inode *ino, struct statx *stx)
{
	bool node = S_ISCHR(ino->type) || S_ISBLK(ino->type);
	int ret = fs_statx(ino->fd, stx);

	if (!ret && (node || (node_owner_on(s) && (S_ISREG(ino->type) || S_ISDIR(ino->type)))))
		node_present(s, ino->fd, stx, node);
	return ret;
}

/* ---- ops on mapped nodes ------------------------------------------------------------- */

int node_create(struct fuse_server *s, int dirfd, const char *name, mode_t mode, uint32_t rdev)
{
	struct node_meta m = { .mode = mode };
	char buf[NODE_XATTR_MAX];
	int fd, len, ret = 0;

	node_dev_decode(rdev, &m.major, &m.minor);
	len = node_encode(&m, buf, sizeof(buf));
	if (len < 0) {
		errno = -len;
		return -1;
	}
	fd = fs_openat(s, dirfd, name, O_RDONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		errno = -fd;
		return -1;
	}
	/* Exactly 0600 whatever the guest's umask or a default ACL took: what node_candidate
	 * looks for, and nothing for any other host user.  Until the attribute is set (just
	 * below) a lookup by another guest would see an empty plain file, nothing more. */
	if (fchmod(fd, 0600) || fsetxattr(fd, node_xattr_name(s), buf, (size_t)len, XATTR_CREATE)) {
		ret = errno;
		if (ret == EOPNOTSUPP || ret == ENOTSUP) {
			node_log("share %s: no extended attributes here, so devices=mapped cannot "
				 "store a device node (EPERM to the guest)", s->path);
			ret = EPERM;
		}
		unlinkat(dirfd, name, 0);
	}
	close(fd);
	if (ret) {
		errno = ret;
		return -1;
	}
	return 0;
}

/* A node the guest knows as a device whose host file is regular: the placeholder, with
 * its attribute read into *m.  0 if mapped, NODE_NOT_MAPPED, or -errno. */
static int node_mapped(struct fuse_server *s, const struct fs_inode *ino, struct node_meta *m)
{
	struct statx stx;
	int ret;

	if (!S_ISCHR(ino->type) && !S_ISBLK(ino->type))
		return NODE_NOT_MAPPED;
	ret = fs_statx(ino->fd, &stx);
	if (ret)
		return ret;
	if (!node_candidate(&stx) || node_read(s, ino->fd, m))
		return NODE_NOT_MAPPED;
	return 0;
}

/* Store *m as the inode's attribute; one that says nothing (no device, no bits, no owner)
 * is removed. */
static int node_write(struct fuse_server *s, const struct fs_inode *ino,
		      const struct node_meta *m)
{
	char path[40], buf[NODE_XATTR_MAX];
	int len;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", ino->fd);
	if (!(m->mode & (S_IFMT | 06000)) && !m->owner)
		return removexattr(path, node_xattr_name(s)) && errno != ENODATA ? -errno : 0;
	len = node_encode(m, buf, sizeof(buf));
	if (len < 0)
		return len;
	return setxattr(path, node_xattr_name(s), buf, (size_t)len, 0) ? -errno : 0;
}

int node_chmod(struct fuse_server *s, const struct fs_inode *ino, mode_t perm)
{
	struct node_meta m;
	int ret = node_mapped(s, ino, &m);

	if (ret)
		return ret;
	m.mode = (m.mode & S_IFMT) | (perm & 07777);
	return node_write(s, ino, &m);
}

/* As Linux does on any chown of a non-directory: setuid goes, and setgid where it is
 * setgid-exec.  The host file has neither; the stored bits do. */
int node_chown(struct fuse_server *s, const struct fs_inode *ino)
{
	struct node_meta m;
	mode_t perm;
	int ret = node_mapped(s, ino, &m);

	if (ret)
		return ret == NODE_NOT_MAPPED ? 0 : ret;
	perm = m.mode & ~(mode_t)S_ISUID;
	if ((perm & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		perm &= ~(mode_t)S_ISGID;
	if (perm == m.mode)
		return 0;
	m.mode = perm;
	return node_write(s, ino, &m);
}

/* ---- owner=mapped -------------------------------------------------------------------- */

/* The attribute owner=mapped may rewrite for `ino` (none yet: all zero): 0, or
 * NODE_NOT_MAPPED when owner=mapped is off or the inode cannot carry user.* (symlinks,
 * FIFOs, sockets, real device nodes), or -errno.  *stx is the host's. */
static int node_owner_meta(struct fuse_server *s, const struct fs_inode *ino, struct statx *stx,
			   struct node_meta *m)
{
	int ret;

	if (!node_owner_on(s) || !(S_ISREG(ino->type) || S_ISDIR(ino->type) ||
				   S_ISCHR(ino->type) || S_ISBLK(ino->type)))
		return NODE_NOT_MAPPED;
	ret = fs_statx(ino->fd, stx);
	if (ret)
		return ret;
	if (!S_ISREG(stx->stx_mode) && !S_ISDIR(stx->stx_mode))
		return NODE_NOT_MAPPED;
	ret = node_read(s, ino->fd, m);
	/* None, or a damaged one (already shown as absent): start afresh. */
	if (ret == -ENODATA || ret == -EINVAL || (!ret && (m->mode & S_IFMT) && !node_candidate(stx))) {
		memset(m, 0, sizeof(*m));
		ret = 0;
	}
	return ret;
}

int node_owner_chown(struct fuse_server *s, const struct fs_inode *ino, uint32_t uid,
		     uint32_t gid)
{
	struct node_meta m;
	struct statx stx;
	uint32_t nuid, ngid;
	bool grp_x;
	int ret = node_owner_meta(s, ino, &stx, &m);

	if (ret)
		return ret;
	nuid = uid != UINT32_MAX ? uid : m.owner ? m.uid : stx.stx_uid;
	ngid = gid != UINT32_MAX ? gid : m.owner ? m.gid : stx.stx_gid;
	if (!fchownat(ino->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		/* The host took it: what it did not change may still be a stored id. */
		ret = fs_statx(ino->fd, &stx);
		if (ret)
			return ret;
		m.owner = nuid != stx.stx_uid || ngid != stx.stx_gid;
	} else if (errno == EPERM) {
		m.owner = true;
	} else {
		return -errno;
	}
	m.uid = nuid;
	m.gid = ngid;
	/* As Linux does on any chown of a non-directory (node_chown). */
	if (!S_ISDIR(stx.stx_mode)) {
		grp_x = (m.mode & S_IFMT) ? m.mode & S_IXGRP : stx.stx_mode & S_IXGRP;
		m.mode &= ~(mode_t)S_ISUID;
		if ((m.mode & S_ISGID) && grp_x)
			m.mode &= ~(mode_t)S_ISGID;
	}
	return node_write(s, ino, &m);
}

int node_owner_chmod(struct fuse_server *s, const struct fs_inode *ino, mode_t perm)
{
	struct node_meta m;
	struct statx stx;
	int ret = node_owner_meta(s, ino, &stx, &m);

	if (ret)
		return ret == NODE_NOT_MAPPED ? 0 : ret;
	if ((m.mode & S_IFMT) || (m.mode & 06000) == (perm & 06000))
		return 0;       /* a mapped node's bits are node_chmod's; nothing new */
	m.mode = perm & 06000;
	return node_write(s, ino, &m);
}

int node_xattr_check(struct fuse_server *s, const struct fs_inode *ino, const char *name)
{
	struct node_meta m;

	if (node_xattr_hidden(name))
		return -EPERM;
	/* An ACL on the placeholder would change its host mode (the mask is the group
	 * bits) and so unmake the node; Linux keeps user.* to files and directories. */
	if (node_mapped(s, ino, &m))
		return 0;
	if (!strncmp(name, "system.posix_acl_", 17))
		return -EOPNOTSUPP;
	if (!strncmp(name, "user.", 5))
		return -EPERM;
	return 0;
}

size_t node_xattr_filter(char *list, size_t len)
{
	size_t in = 0, out = 0;

	while (in < len) {
		size_t n = strnlen(list + in, len - in);
		size_t step = n + (in + n < len);       /* the name and its NUL, if there */
		if (!node_xattr_hidden(list + in) || in + n == len) {
			memmove(list + out, list + in, step);
			out += step;
		}
		in += step;
	}
	return out;
}

uint8_t node_dtype(struct fuse_server *s, int dirfd, const char *name, uint8_t d_type)
{
	char path[40 + NAME_MAX + 1];
	char buf[NODE_XATTR_MAX];
	struct node_meta m;
	struct statx stx;
	ssize_t n;

	if (d_type != DT_REG && d_type != DT_UNKNOWN)
		return d_type;
	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT,
		  STATX_TYPE | STATX_MODE | STATX_SIZE, &stx) || !node_candidate(&stx))
		return d_type;
	/* `name` is one component that statx just found to be a regular file; lgetxattr
	 * would not follow it should the host swap in a symlink meanwhile. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	n = lgetxattr(path, node_xattr_name(s), buf, sizeof(buf));
	if (n < 0 || node_decode(buf, (size_t)n, &m))
		return d_type;
	return S_ISCHR(m.mode) ? DT_CHR : DT_BLK;
}
