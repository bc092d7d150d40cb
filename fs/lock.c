/* File locks: GETLK, SETLK, SETLKW.
 *
 * POSIX locks belong to a lock owner (a guest process's files table), not to an open
 * file, and the host must see them so that two guests sharing a directory, or a guest and
 * a host process, exclude each other.  Classic host POSIX locks belong to the whole VMM
 * process and would merge every guest owner into one; open-file-description (OFD) locks
 * belong to an open file.  So each (inode, lock owner) pair gets its own host open file,
 * and its locks are OFD locks on that: owners exclude each other exactly as processes do.
 * The owner's file closes when the guest closes its descriptor (FLUSH), which drops its
 * locks as close(2) does, or when the inode goes.
 *
 * flock() locks belong to an open file already: they go on the handle's own fd.
 *
 * A SETLKW that cannot be granted at once waits on a thread of the server's own
 * (lockwait.c), never on the transport's, and holds no lock of ours meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fs/internal.h"

struct fs_plock {
	uint64_t owner;
	int fd;
	int accmode;            /* O_RDONLY, O_WRONLY or O_RDWR */
	struct fs_plock *next;
};

void plock_drop_owner(struct fuse_server *s, struct fs_inode *ino, uint64_t owner)
{
	struct fs_plock **pp, *p = NULL;

	pthread_mutex_lock(&ino->plock_mu);
	for (pp = &ino->plocks; *pp; pp = &(*pp)->next) {
		if ((*pp)->owner == owner) {
			p = *pp;
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&ino->plock_mu);
	if (p) {
		close(p->fd);
		fd_unreserve(s);
		free(p);
	}
}

void plock_drop_all(struct fuse_server *s, struct fs_inode *ino)
{
	struct fs_plock *p, *next;

	pthread_mutex_lock(&ino->plock_mu);
	p = ino->plocks;
	ino->plocks = NULL;
	pthread_mutex_unlock(&ino->plock_mu);
	for (; p; p = next) {
		next = p->next;
		close(p->fd);
		fd_unreserve(s);
		free(p);
	}
}

/* Move every lock `from` holds (an OFD's own locks, as /proc/self/fdinfo lists them) to
 * `to`, another open file of the same inode.  Taking a lock on `to` that `from` already
 * holds never conflicts with anyone else, so nothing is lost on the way. */
static int plock_migrate(int from, int to)
{
	char name[48], line[256];
	FILE *f;
	int ret = 0;

	snprintf(name, sizeof(name), "/proc/self/fdinfo/%d", from);
	f = fopen(name, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char kind[16], adv[16], type[16], dev[64], end[32];
		long long start;
		int pid;
		struct flock fl = { .l_whence = SEEK_SET };

		/* "lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:1234 5 14" ("->" lines are
		 * requests waiting, not locks held). */
		if (strncmp(line, "lock:", 5) || strstr(line, "->"))
			continue;
		if (sscanf(line + 5, "%*d: %15s %15s %15s %d %63s %lld %31s", kind, adv, type, &pid,
			   dev, &start, end) != 7 || strcmp(kind, "OFDLCK"))
			continue;
		fl.l_type = !strcmp(type, "WRITE") ? F_WRLCK : F_RDLCK;
		fl.l_start = start;
		fl.l_len = !strcmp(end, "EOF") ? 0 : strtoll(end, NULL, 10) - start + 1;
		if (fcntl(to, F_OFD_SETLK, &fl)) {
			ret = -errno;
			break;
		}
	}
	fclose(f);
	return ret;
}

static bool mode_has(int accmode, bool write)
{
	return write ? accmode != O_RDONLY : accmode != O_WRONLY;
}

/* The owner's open file, opened on first use with the access of the guest handle it came
 * through (which the guest kernel checked the lock type against): a read-only handle
 * must not make the host file open for writing (a host exec would fail with ETXTBSY).
 * When the same owner later needs write access (a write lock through a read-write
 * handle), its file is reopened read-write and its read locks move over.  `need`: 0 for none
 * (unlock, test), else F_RDLCK or F_WRLCK.  Returns a dup the caller closes, so a FLUSH
 * racing a blocked SETLKW cannot close the fd under it. */
static int plock_fd(struct fuse_server *s, struct fs_handle *h, uint64_t owner, int need)
{
	struct fs_inode *ino = h->ino;
	struct fs_plock *p;
	int fd = -1, ret, hmode;

	hmode = fcntl(h->fd, F_GETFL);
	if (hmode < 0)
		return -errno;
	hmode &= O_ACCMODE;
	pthread_mutex_lock(&ino->plock_mu);
	for (p = ino->plocks; p; p = p->next)
		if (p->owner == owner)
			break;
	if (!p) {
		ret = fd_reserve(s);
		if (ret)
			goto out;
		p = malloc(sizeof(*p));
		fd = p ? -EACCES : -ENOMEM;
		/* A writer is made read-write where it may be: write locks could not move to
		 * another open file later (they would conflict with themselves). */
		if (p && hmode == O_WRONLY) {
			fd = fs_reopen(s, ino, O_RDWR);
			if (fd >= 0)
				hmode = O_RDWR;
		}
		if (p && fd < 0)
			fd = fs_reopen(s, ino, hmode);
		if (fd < 0) {
			ret = fd;
			free(p);
			p = NULL;
			fd_unreserve(s);
			goto out;
		}
		p->owner = owner;
		p->fd = fd;
		p->accmode = hmode;
		p->next = ino->plocks;
		ino->plocks = p;
	} else if (need && !mode_has(p->accmode, need == F_WRLCK) &&
		   mode_has(hmode, need == F_WRLCK)) {
		fd = fs_reopen(s, ino, O_RDWR);
		ret = fd < 0 ? fd : plock_migrate(p->fd, fd);
		if (ret) {
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(p->fd);
		p->fd = fd;
		p->accmode = O_RDWR;
	}
	ret = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
	if (ret < 0)
		ret = -errno;
out:
	pthread_mutex_unlock(&ino->plock_mu);
	return ret;
}

/* FUSE ranges are [start, end] with end OFFSET_MAX for "to the end"; struct flock's are
 * start and length, 0 meaning the same. */
static int lk_to_flock(const struct fuse_file_lock *lk, struct flock *fl)
{
	if (lk->type != F_RDLCK && lk->type != F_WRLCK && lk->type != F_UNLCK)
		return -EINVAL;
	if (lk->start > INT64_MAX || lk->end < lk->start)
		return -EINVAL;
	fl->l_type = (short)lk->type;
	fl->l_whence = SEEK_SET;
	fl->l_start = (off_t)lk->start;
	fl->l_len = lk->end >= INT64_MAX ? 0 : (off_t)(lk->end - lk->start + 1);
	fl->l_pid = 0;          /* OFD requests must say 0 */
	return 0;
}

/* The conflicting lock may be another guest's or a host process's: no pid the guest
 * could make sense of, so 0. */
static void flock_to_lk(const struct flock *fl, struct fuse_file_lock *lk)
{
	lk->type = (uint32_t)fl->l_type;
	lk->pid = 0;
	lk->start = (uint64_t)fl->l_start;
	lk->end = fl->l_len == 0 ? INT64_MAX : (uint64_t)(fl->l_start + fl->l_len - 1);
}

int fsop_getlk(struct fuse_req *r)
{
	const struct fuse_lk_in *a = &r->arg.lk;
	struct fuse_lk_out o;
	struct fs_handle *h;
	struct flock fl;
	int fd, ret;

	if (r->ro)
		return -ENOSYS;         /* see lock_set */
	if (a->lk_flags & FUSE_LK_FLOCK)
		return -EINVAL;         /* flock has no "test" */
	ret = lk_to_flock(&a->lk, &fl);
	if (ret)
		return ret;
	h = handle_get(r->s, a->fh, 0);
	if (!h)
		return -EBADF;
	fd = plock_fd(r->s, h, a->owner, 0);
	handle_put(r->s, h);
	if (fd < 0)
		return fd;
	ret = fcntl(fd, F_OFD_GETLK, &fl) ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	memset(&o, 0, sizeof(o));
	flock_to_lk(&fl, &o.lk);
	req_put(r, 0, &o, sizeof(o));
	return sizeof(o);
}

/* The lock could not be granted at once: what the request may do about it (see
 * fuse_req.wait).  Takes `fd`. */
static int lock_wait(struct fuse_req *r, int fd, int how, struct flock *fl)
{
	int ret;

	switch (r->wait) {
	case REQ_PARK:
		return lockwait_park(r, fd, how, fl);
	case REQ_BLOCK:
		ret = (how ? flock(fd, how) : fcntl(fd, F_OFD_SETLKW, fl)) ? -errno : 0;
		break;
	default:
		ret = -EAGAIN;
		break;
	}
	close(fd);
	return ret;
}

/* SETLK tries once; SETLKW tries once too, and only when that would block does it wait
 * (lock_wait), so most blocking requests are answered without ever waiting. */
static int lock_set(struct fuse_req *r, bool wait)
{
	const struct fuse_lk_in *a = &r->arg.lk;
	struct fs_handle *h;
	struct flock fl;
	int fd, ret, how = 0;

	/* A read-only share keeps locks in the guest (INIT does not offer them): through it a
	 * guest could otherwise lock any host file the user can read, and block host
	 * processes that use it. */
	if (r->ro)
		return -ENOSYS;
	ret = lk_to_flock(&a->lk, &fl);
	if (ret)
		return ret;
	h = handle_get(r->s, a->fh, 0);
	if (!h)
		return -EBADF;
	if (a->lk_flags & FUSE_LK_FLOCK) {
		how = fl.l_type == F_RDLCK ? LOCK_SH : fl.l_type == F_WRLCK ? LOCK_EX : LOCK_UN;
		/* A dup shares the open file (and so its flock) and outlives a RELEASE. */
		fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			fd = -errno;
	} else {
		fd = plock_fd(r->s, h, a->owner, fl.l_type == F_UNLCK ? 0 : fl.l_type);
	}
	handle_put(r->s, h);
	if (fd < 0)
		return fd;
	if (how)
		ret = flock(fd, how | LOCK_NB) ? -errno : 0;
	else
		ret = fcntl(fd, F_OFD_SETLK, &fl) ? -errno : 0;
	if (ret == -EWOULDBLOCK || ret == -EACCES) {
		if (wait)
			return lock_wait(r, fd, how, &fl);
		ret = -EAGAIN;
	}
	close(fd);
	return ret;
}

int fsop_setlk(struct fuse_req *r)
{
	return lock_set(r, false);
}

int fsop_setlkw(struct fuse_req *r)
{
	return lock_set(r, true);
}
