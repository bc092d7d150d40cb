/* Directory streams: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR.
 *
 * Entries come from getdents64 on the directory's own open fd, and the offset we give the
 * guest for each is the host's cookie for the position after it (d_off), so a guest that
 * seeks back (telldir/seekdir, or a READDIR restarted after a short buffer) lands exactly
 * where the host would.  A handle keeps what getdents64 returned but the guest has not
 * taken yet, so reading on sequentially never re-reads the directory. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs/internal.h"

#define DIRBUF_SIZE (32u << 10)
#define DIRREPLY_MAX (16u << 20)  /* the guest asks max_pages (1 MiB); keeps counts in int */

struct host_dirent {
	uint64_t d_ino;
	int64_t d_off;
	uint16_t d_reclen;
	uint8_t d_type;
	char d_name[];
};

int fsop_opendir(struct fuse_req *r)
{
	struct fuse_server *s = r->s;
	int fd, ret;

	if (!S_ISDIR(r->ino->type))
		return -ENOTDIR;
	ret = fd_reserve(s);
	if (ret)
		return ret;
	fd = fs_reopen(s, r->ino, O_RDONLY);
	if (fd < 0) {
		fd_unreserve(s);
		return fd;
	}
	return fs_reply_open(r, FS_HANDLE_DIR, fd);
}

/* Position the stream at the guest's offset, unless it already is there. */
static int dir_seek(struct fs_handle *h, uint64_t off)
{
	if (h->dvalid && h->dcookie == off)
		return 0;
	if (off > INT64_MAX)
		return -EINVAL;
	if (lseek(h->fd, (off_t)off, SEEK_SET) < 0)
		return -errno;
	h->dlen = h->dpos = 0;
	h->dcookie = off;
	h->dvalid = true;
	return 0;
}

/* The next unread entry, reading more when the buffer is used up: 1, 0 at the end, or a
 * negative errno. */
static int dir_next(struct fs_handle *h, struct host_dirent **de)
{
	if (h->dpos >= h->dlen) {
		long n = syscall(SYS_getdents64, h->fd, h->dbuf, DIRBUF_SIZE);
		if (n < 0)
			return -errno;
		h->dlen = (size_t)n;
		h->dpos = 0;
		if (n == 0)
			return 0;
	}
	*de = (struct host_dirent *)(h->dbuf + h->dpos);
	return 1;
}

/* One entry as the guest sees it, in `buf` (FUSE_NAME_OFFSET_DIRENTPLUS + NAME_MAX + 8
 * bytes): its size, a lookup taken for READDIRPLUS when it has a nodeid. */
static size_t dir_entry(struct fuse_server *s, struct fs_handle *h, const struct host_dirent *de,
			size_t namelen, bool plus, char *buf)
{
	struct fuse_dirent *d;
	uint32_t pmode = 0;     /* READDIRPLUS: the entry's mode as the lookup shows it */
	size_t size;

	if (plus) {
		struct fuse_direntplus *dp = (struct fuse_direntplus *)buf;
		bool dots = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
		size = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + namelen);
		memset(buf, 0, size);
		/* "." and ".." carry no lookup (nodeid 0: the guest takes the name only), nor
		 * does an entry that vanished or failed since getdents saw it. */
		if (!dots && fs_lookup(s, h->ino, de->d_name, &dp->entry_out))
			memset(&dp->entry_out, 0, sizeof(dp->entry_out));
		pmode = dp->entry_out.attr.mode;
		d = &dp->dirent;
	} else {
		size = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
		memset(buf, 0, size);
		d = (struct fuse_dirent *)buf;
	}
	d->ino = de->d_ino;
	d->off = (uint64_t)de->d_off;
	d->namelen = (uint32_t)namelen;
	/* A mapped device node's host file is regular; the guest is told what it is. */
	d->type = pmode ? (pmode & S_IFMT) >> 12 : node_dtype(s, h->fd, de->d_name, de->d_type);
	memcpy(d->name, de->d_name, namelen);
	return size;
}

static int dir_read(struct fuse_req *r, bool plus)
{
	const struct fuse_read_in *a = &r->arg.read;
	char buf[FUSE_NAME_OFFSET_DIRENTPLUS + NAME_MAX + 8];
	struct fs_handle *h;
	struct host_dirent *de = NULL;
	size_t cap, used = 0;
	int ret;

	h = handle_get(r->s, a->fh, FS_HANDLE_DIR);
	if (!h)
		return -EBADF;
	cap = a->size < req_room(r) ? a->size : req_room(r);
	if (cap > DIRREPLY_MAX)
		cap = DIRREPLY_MAX;
	pthread_mutex_lock(&h->mu);
	if (!h->dbuf && !(h->dbuf = malloc(DIRBUF_SIZE))) {
		ret = -ENOMEM;
		goto out;
	}
	ret = dir_seek(h, a->offset);
	while (!ret) {
		size_t namelen, need;
		ret = dir_next(h, &de);
		if (ret <= 0)
			break;
		ret = 0;
		namelen = strnlen(de->d_name, NAME_MAX + 1);
		if (namelen > NAME_MAX) {       /* cannot happen on Linux; never overflow buf */
			h->dpos += de->d_reclen;
			h->dcookie = (uint64_t)de->d_off;
			continue;
		}
		/* Doesn't fit: leave it for the next call, which starts at this entry's cookie
		 * (a buffer too small for even one entry gets an empty, successful reply). */
		need = plus ? FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + namelen)
			    : FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
		if (need > cap - used)
			break;
		dir_entry(r->s, h, de, namelen, plus, buf);
		req_put(r, used, buf, need);
		used += need;
		h->dpos += de->d_reclen;
		h->dcookie = (uint64_t)de->d_off;
	}
	/* An error after some entries: return those; the guest asks again and sees it. */
	if (ret < 0 && used)
		ret = 0;
out:
	pthread_mutex_unlock(&h->mu);
	handle_put(r->s, h);
	return ret < 0 ? ret : (int)used;
}

int fsop_readdir(struct fuse_req *r)
{
	return dir_read(r, false);
}

int fsop_readdirplus(struct fuse_req *r)
{
	return dir_read(r, true);
}

int fsop_releasedir(struct fuse_req *r)
{
	return handle_release(r->s, r->arg.release.fh, FS_HANDLE_DIR);
}

int fsop_fsyncdir(struct fuse_req *r)
{
	return handle_fsync(r, FS_HANDLE_DIR);
}
