/* Namespace ops: looking names up and forgetting them, creating, linking, removing and
 * renaming entries.  Every one works on a single validated name relative to the O_PATH fd
 * of a directory we hold, so none can reach outside the share or through a symlink. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs/internal.h"

int fsop_lookup(struct fuse_req *r)
{
	struct fuse_entry_out e;
	int ret = fs_lookup(r->s, r->ino, r->name, &e);

	if (ret)
		return ret;
	req_put(r, 0, &e, sizeof(e));
	return sizeof(e);
}

int fsop_forget(struct fuse_req *r)
{
	inode_forget(r->s, r->h.nodeid, r->arg.forget.nlookup);
	return FUSE_NOREPLY;
}

int fsop_batch_forget(struct fuse_req *r)
{
	struct fuse_forget_one one[64];
	uint32_t count = r->arg.batch_forget.count;
	size_t done = 0;

	/* A count the request does not hold is malformed: forget nothing. */
	if (count > r->taillen / sizeof(one[0]))
		return FUSE_NOREPLY;
	while (done < count) {
		size_t n = count - done;
		if (n > 64)
			n = 64;
		if (req_get_tail(r, done * sizeof(one[0]), one, n * sizeof(one[0])))
			break;
		for (size_t i = 0; i < n; i++)
			inode_forget(r->s, one[i].nodeid, one[i].nlookup);
		done += n;
	}
	return FUSE_NOREPLY;
}

int fsop_readlink(struct fuse_req *r)
{
	char buf[PATH_MAX];
	ssize_t n;

	if (!S_ISLNK(r->ino->type))
		return -EINVAL;
	n = readlinkat(r->ino->fd, "", buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	if ((size_t)n > req_room(r))
		return -ERANGE;
	req_put(r, 0, buf, (size_t)n);
	return (int)n;
}

/* MAKE_MAPPED: a device node as its placeholder (devices=mapped, node.c). */
enum make_kind { MAKE_NODE, MAKE_DIR, MAKE_SYMLINK, MAKE_MAPPED };

/* Create one entry as the requesting user, then answer with its lookup.  `rdev` (FUSE's
 * encoding) is a device node's number. */
static int entry_make(struct fuse_req *r, enum make_kind kind, mode_t mode, uint32_t umask_,
		      uint32_t rdev)
{
	uint32_t major, minor;

	struct fs_inode *dir = r->ino;
	struct fuse_entry_out e;
	struct fs_creds c;
	int ret;

	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	/* A mapped node's bits are only ever in its attribute, never a host privilege. */
	if (kind != MAKE_SYMLINK && kind != MAKE_MAPPED)
		mode = creds_safe_mode(r->s, mode) & (S_IFMT | 07777);
	ret = creds_enter(r, &c, umask_, &mode);
	if (ret)
		return ret;
	switch (kind) {
	case MAKE_DIR:
		ret = mkdirat(dir->fd, r->name, mode & 07777);
		break;
	case MAKE_SYMLINK:
		ret = symlinkat(r->name2, dir->fd, r->name);
		break;
	case MAKE_MAPPED:
		/* The guest's umask is ours to apply: the placeholder is made 0600 whatever. */
		ret = node_create(r->s, dir->fd, r->name, mode & ~(mode_t)(umask_ & 0777), rdev);
		break;
	default:
		node_dev_decode(rdev, &major, &minor);
		ret = mknodat(dir->fd, r->name, mode, makedev(major, minor));
		break;
	}
	ret = ret ? -errno : 0;
	creds_leave(&c);
	if (ret)
		return ret;
	ret = fs_lookup(r->s, dir, r->name, &e);
	if (ret)
		return ret;
	req_put(r, 0, &e, sizeof(e));
	return sizeof(e);
}

int fsop_mknod(struct fuse_req *r)
{
	mode_t mode = r->arg.mknod.mode;

	switch (mode & S_IFMT) {
	case 0:
		mode |= S_IFREG;
		break;
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	case S_IFCHR:
	case S_IFBLK:
		/* A real node would hand the guest a host device (README, devices=). */
		if (r->s->cfg.devices == FUSE_DEVICES_MAPPED)
			return entry_make(r, MAKE_MAPPED, mode & (S_IFMT | 07777),
					  r->arg.mknod.umask, r->arg.mknod.rdev);
		if (r->s->cfg.devices != FUSE_DEVICES_HOST)
			return -EPERM;
		break;
	default:
		return -EINVAL;
	}
	return entry_make(r, MAKE_NODE, mode & (S_IFMT | 07777), r->arg.mknod.umask,
			  r->arg.mknod.rdev);
}

int fsop_mkdir(struct fuse_req *r)
{
	return entry_make(r, MAKE_DIR, S_IFDIR | (r->arg.mkdir.mode & 07777), r->arg.mkdir.umask,
			  0);
}

int fsop_symlink(struct fuse_req *r)
{
	return entry_make(r, MAKE_SYMLINK, 0777, 0, 0);
}

/* The share's root has no name inside the share (names are single components, never
 * "." or ".."), so it cannot come up here; should a bind mount make it appear under
 * another name, it still must not go (the host would refuse a mount point too). */
static int entry_not_root(struct fuse_server *s, int dirfd, const char *name)
{
	struct statx stx;
	struct fs_key key;

	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT,
		  STATX_INO | STATX_MNT_ID, &stx))
		return 0;       /* the op itself will report it */
	/* Any mount of the root directory counts, so the mount id is left out. */
	fs_key_of(&stx, &key);
	if (key.dev == s->root->key.dev && key.ino == s->root->key.ino)
		return -EBUSY;
	return 0;
}

int fsop_unlink(struct fuse_req *r)
{
	return unlinkat(r->ino->fd, r->name, 0) ? -errno : 0;
}

int fsop_rmdir(struct fuse_req *r)
{
	int ret = entry_not_root(r->s, r->ino->fd, r->name);

	if (ret)
		return ret;
	return unlinkat(r->ino->fd, r->name, AT_REMOVEDIR) ? -errno : 0;
}

static int entry_rename(struct fuse_req *r, uint64_t newdir, uint32_t flags)
{
	struct fs_inode *nd;
	int ret;

	/* Whiteouts are device nodes; exchange and noreplace are all a guest needs. */
	if (flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	nd = inode_get(r->s, newdir);
	if (!nd)
		return -ESTALE;
	if (nd->mnt == FS_MNT_SEALED) {         /* the dispatcher checked only the old dir */
		inode_put(r->s, nd);
		return -EACCES;
	}
	ret = entry_not_root(r->s, r->ino->fd, r->name);
	if (!ret)
		ret = entry_not_root(r->s, nd->fd, r->name2);
	if (!ret && renameat2(r->ino->fd, r->name, nd->fd, r->name2, flags))
		ret = -errno;
	inode_put(r->s, nd);
	return ret;
}

int fsop_rename(struct fuse_req *r)
{
	return entry_rename(r, r->arg.rename.newdir, 0);
}

int fsop_rename2(struct fuse_req *r)
{
	return entry_rename(r, r->arg.rename2.newdir, r->arg.rename2.flags);
}

int fsop_link(struct fuse_req *r)
{
	struct fuse_server *s = r->s;
	struct fs_inode *old;
	struct fuse_entry_out e;
	char name[16];
	int ret = 0;

	old = inode_get(s, r->arg.link.oldnodeid);
	if (!old)
		return -ESTALE;
	if (S_ISDIR(old->type)) {
		ret = -EPERM;
	} else if (linkat(old->fd, "", r->ino->fd, r->name, AT_EMPTY_PATH)) {
		/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the magic link does not. */
		ret = -errno;
		if (ret == -ENOENT || ret == -EPERM) {
			fs_procname(name, sizeof(name), old->fd);
			ret = linkat(s->procfd, name, r->ino->fd, r->name, AT_SYMLINK_FOLLOW)
			      ? -errno : 0;
		}
	}
	inode_put(s, old);
	if (ret)
		return ret;
	ret = fs_lookup(s, r->ino, r->name, &e);
	if (ret)
		return ret;
	req_put(r, 0, &e, sizeof(e));
	return sizeof(e);
}
