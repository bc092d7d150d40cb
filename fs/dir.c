/* Directory streams: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR.
 *
 * Entries come from getdents64 on the directory's own open fd, and the offset we give the
 * guest for each is the host's cookie for the position after it (d_off), so a guest that
 * seeks back (telldir/seekdir, or a READDIR restarted after a short buffer) lands exactly
 * where the host would.  Each READDIR seeks there and reads about what its reply can hold
 * into a buffer of its own (struct dir_stream). */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs/internal.h"

#define DIRBUF_MIN 1024u        /* more than one entry of any name length */
#define DIRBUF_MAX (32u << 10)
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

/* What one READDIR call read from the host: allocated per call and freed before the
 * reply, so open handles hold no buffer (a guest keeping a million directories open must
 * not pin a million buffers).  Entries left over are read again by the next call, which
 * seeks to the cookie of the first one the guest did not get. */
struct dir_stream {
	char *buf;
	size_t size, len, pos;
};

/* The stream's position is the guest's offset: the host cookie of the entry before. */
static int dir_seek(struct fs_handle *h, uint64_t off)
{
	if (off > INT64_MAX)
		return -EINVAL;
	if (lseek(h->fd, (off_t)off, SEEK_SET) < 0)
		return -errno;
	return 0;
}

/* The next unread entry, reading more when the buffer is used up: 1, 0 at the end, or a
 * negative errno. */
static int dir_next(struct fs_handle *h, struct dir_stream *ds, struct host_dirent **de)
{
	if (ds->pos >= ds->len) {
		long n = syscall(SYS_getdents64, h->fd, ds->buf, ds->size);
		if (n < 0)
			return -errno;
		ds->len = (size_t)n;
		ds->pos = 0;
		if (n == 0)
			return 0;
	}
	*de = (struct host_dirent *)(ds->buf + ds->pos);
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

/* getdents64 bytes to read for a reply of `cap` bytes: about what fills it (host entries
 * are about as large as FUSE's, a quarter of READDIRPLUS's), so little is read twice. */
static size_t dir_bufsize(size_t cap, bool plus)
{
	size_t n = plus ? cap / 4 : cap;

	if (n < DIRBUF_MIN)
		n = DIRBUF_MIN;
	return n > DIRBUF_MAX ? DIRBUF_MAX : n;
}

static int dir_read(struct fuse_req *r, bool plus)
{
	const struct fuse_read_in *a = &r->arg.read;
	char buf[FUSE_NAME_OFFSET_DIRENTPLUS + NAME_MAX + 8];
	struct dir_stream ds = { 0 };
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
	ds.size = dir_bufsize(cap, plus);
	ds.buf = malloc(ds.size);
	if (!ds.buf) {
		handle_put(r->s, h);
		return -ENOMEM;
	}
	pthread_mutex_lock(&h->mu);
	ret = dir_seek(h, a->offset);
	while (!ret) {
		size_t namelen, need;
		ret = dir_next(h, &ds, &de);
		if (ret <= 0)
			break;
		ret = 0;
		namelen = strnlen(de->d_name, NAME_MAX + 1);
		if (namelen > NAME_MAX) {       /* cannot happen on Linux; never overflow buf */
			ds.pos += de->d_reclen;
			continue;
		}
		/* Doesn't fit: leave it for the next call, which starts at this entry's cookie
		 * (a buffer too small for even one entry gets an empty, successful reply). */
		need = plus ? FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + namelen)
			    : FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
		if (need > cap - used)
			break;
		dir_entry(r->s, h, de, namelen, plus, buf);
		ret = req_put(r, used, buf, need);
		if (ret) {
			/* The guest never sees this entry, so it must not own its lookup. */
			uint64_t nodeid = ((struct fuse_direntplus *)buf)->entry_out.nodeid;
			if (plus && nodeid)
				inode_forget(r->s, nodeid, 1);
			break;
		}
		used += need;
		ds.pos += de->d_reclen;
	}
	/* An error after some entries: return those; the guest asks again and sees it. */
	if (ret < 0 && used)
		ret = 0;
	pthread_mutex_unlock(&h->mu);
	free(ds.buf);
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
