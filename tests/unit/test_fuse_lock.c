/* File locks through the FUSE server (fs/lock.c): POSIX locks per guest lock owner as
 * host OFD locks (so they conflict between owners, and with host processes), released by
 * FLUSH; flock() on the handle; SETLKW blocking without stalling other requests. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

TestSuite(fuse_lock, .init = fx_setup, .fini = fx_teardown);

#define EOF_ (uint64_t)INT64_MAX      /* OFFSET_MAX: "to the end of the file" */

static int lk_op(uint32_t op, uint64_t fh, uint64_t owner, uint32_t type, uint64_t start,
		 uint64_t end, uint32_t flags, struct fuse_lk_out *o)
{
	struct fuse_lk_in in = { .fh = fh, .owner = owner,
				 .lk = { .start = start, .end = end, .type = type, .pid = 77 },
				 .lk_flags = flags };
	struct fuse_lk_out tmp;

	return fx_call(op, 2, &in, sizeof(in), NULL, 0, NULL, 0, o ? o : &tmp,
		       op == FUSE_GETLK ? sizeof(tmp) : 0, NULL);
}

static uint64_t open_f(uint32_t flags)
{
	uint64_t fh;

	cr_assert_eq(fx_open(fx_node("f"), flags, &fh), 0);
	return fh;
}

Test(fuse_lock, owners_conflict)
{
	struct fuse_lk_out o;
	uint64_t a, b;

	fx_write_file("f", "0123456789", 10);
	a = open_f(O_RDWR);
	b = open_f(O_RDWR);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0, NULL), 0);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 2, F_WRLCK, 50, 60, 0, NULL), -EAGAIN);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 2, F_RDLCK, 99, 99, 0, NULL), -EAGAIN);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 2, F_RDLCK, 100, 200, 0, NULL), 0, "no overlap");
	cr_assert_eq(lk_op(FUSE_GETLK, b, 2, F_WRLCK, 0, EOF_, 0, &o), 0);
	cr_assert_eq(o.lk.type, F_WRLCK);
	cr_assert_eq(o.lk.start, 0);
	cr_assert_eq(o.lk.end, 99);
	cr_assert_eq(o.lk.pid, 0);
	/* The same owner through another handle is not in conflict with itself. */
	cr_assert_eq(lk_op(FUSE_SETLK, b, 1, F_WRLCK, 10, 20, 0, NULL), 0);
	cr_assert_eq(lk_op(FUSE_GETLK, a, 1, F_WRLCK, 0, 99, 0, &o), 0);
	cr_assert_eq(o.lk.type, F_UNLCK, "own locks never conflict");
	/* Unlock, and the other owner gets it. */
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_, 0, NULL), 0);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 2, F_WRLCK, 50, 60, 0, NULL), 0);
	cr_assert_eq(lk_op(FUSE_GETLK, a, 1, F_RDLCK, 55, 55, 0, &o), 0);
	cr_assert_eq(o.lk.type, F_WRLCK);
}

/* Another guest (another server on the same directory) and host processes see them. */
Test(fuse_lock, visible_on_the_host)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	uint64_t a;
	int fd;

	fx_write_file("f", "0123456789", 10);
	a = open_f(O_RDWR);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_RDLCK, 5, EOF_, 0, NULL), 0);
	fd = open(fx_path("f"), O_RDWR);
	cr_assert_eq(fcntl(fd, F_OFD_GETLK, &fl), 0);
	cr_assert_eq(fl.l_type, F_RDLCK);
	cr_assert_eq(fl.l_start, 5);
	cr_assert_eq(fl.l_len, 0);
	/* And the other way round. */
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 2 };
	cr_assert_eq(fcntl(fd, F_OFD_SETLK, &fl), 0);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 9, F_RDLCK, 0, 0, 0, NULL), -EAGAIN);
	close(fd);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 9, F_RDLCK, 0, 0, 0, NULL), 0);
}

/* close() in the guest: FLUSH with the owner drops that owner's locks only. */
Test(fuse_lock, flush_releases_the_owner)
{
	struct fuse_flush_in fl = { .lock_owner = 1 };
	struct fuse_lk_out o;
	uint64_t a, b;

	fx_write_file("f", "0123456789", 10);
	a = open_f(O_RDWR);
	b = open_f(O_RDWR);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_WRLCK, 0, 9, 0, NULL), 0);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 3, F_WRLCK, 20, 29, 0, NULL), 0);
	fl.fh = a;
	cr_assert_eq(fx_call(FUSE_FLUSH, 2, &fl, sizeof(fl), NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	cr_assert_eq(lk_op(FUSE_GETLK, b, 2, F_WRLCK, 0, 9, 0, &o), 0);
	cr_assert_eq(o.lk.type, F_UNLCK, "owner 1's lock survived its FLUSH");
	cr_assert_eq(lk_op(FUSE_GETLK, b, 2, F_WRLCK, 20, 29, 0, &o), 0);
	cr_assert_eq(o.lk.type, F_WRLCK, "owner 3's lock went with owner 1's FLUSH");
}

Test(fuse_lock, flock)
{
	uint64_t a, b;
	int fd;

	fx_write_file("f", "x", 1);
	a = open_f(O_RDONLY);
	b = open_f(O_RDONLY);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_WRLCK, 0, EOF_, FUSE_LK_FLOCK, NULL), 0);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 1, F_WRLCK, 0, EOF_, FUSE_LK_FLOCK, NULL), -EAGAIN,
		     "flock belongs to the open file, not the owner");
	cr_assert_eq(lk_op(FUSE_SETLK, b, 1, F_RDLCK, 0, EOF_, FUSE_LK_FLOCK, NULL), -EAGAIN);
	fd = open(fx_path("f"), O_RDONLY);
	cr_assert_eq(flock(fd, LOCK_SH | LOCK_NB), -1);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_, FUSE_LK_FLOCK, NULL), 0);
	cr_assert_eq(flock(fd, LOCK_SH | LOCK_NB), 0);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 1, F_RDLCK, 0, EOF_, FUSE_LK_FLOCK, NULL), 0);
	cr_assert_eq(lk_op(FUSE_SETLKW, a, 1, F_RDLCK, 0, EOF_, FUSE_LK_FLOCK, NULL), 0);
	close(fd);
	cr_assert_eq(lk_op(FUSE_GETLK, a, 1, F_RDLCK, 0, EOF_, FUSE_LK_FLOCK, NULL), -EINVAL);
}

Test(fuse_lock, bad_requests)
{
	uint64_t a;

	fx_write_file("f", "x", 1);
	a = open_f(O_RDWR);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, 7, 0, 9, 0, NULL), -EINVAL, "lock type");
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_WRLCK, 10, 9, 0, NULL), -EINVAL, "end < start");
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_WRLCK, 1ULL << 63, UINT64_MAX, 0, NULL), -EINVAL);
	cr_assert_eq(lk_op(FUSE_SETLK, a + 1, 1, F_WRLCK, 0, 9, 0, NULL), -EBADF);
	cr_assert_eq(lk_op(FUSE_GETLK, 0, 1, F_WRLCK, 0, 9, 0, NULL), -EBADF);
	cr_assert_eq(lk_op(FUSE_SETLKW, 0x55, 1, F_WRLCK, 0, 9, 0, NULL), -EBADF);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_WRLCK, 0, UINT64_MAX, 0, NULL), 0, "end past max");
}

/* A read-only handle still takes read locks (the owner's file falls back to read-only). */
Test(fuse_lock, read_lock_on_read_only_file)
{
	uint64_t a;

	fx_write_file("f", "x", 1);
	cr_assert_eq(chmod(fx_path("f"), 0444), 0);
	a = open_f(O_RDONLY);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_RDLCK, 0, EOF_, 0, NULL), 0);
}

/* A read-only share (minivmm run's `/`) must not let the guest lock host files: a host
 * process could then be blocked by any file the user can read.  Locks stay in the guest's
 * kernel: INIT does not offer lock support, and lock requests sent anyway take no host
 * lock. */
Test(fuse_lock, read_only_share_takes_no_host_locks)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	uint64_t a;
	int fd;

	fx_teardown();
	fx_setup_ro();
	cr_assert_eq(fx.init_flags & FUSE_POSIX_LOCKS, 0, "POSIX locks offered on a ro share");
	cr_assert_eq(fx.init_flags & FUSE_FLOCK_LOCKS, 0, "flock offered on a ro share");
	fx_write_file("f", "x", 1);
	a = open_f(O_RDONLY);
	lk_op(FUSE_SETLK, a, 1, F_RDLCK, 0, EOF_, 0, NULL);
	lk_op(FUSE_SETLK, a, 1, F_WRLCK, 0, EOF_, FUSE_LK_FLOCK, NULL);
	fd = open(fx_path("f"), O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fcntl(fd, F_OFD_GETLK, &fl), 0);
	cr_assert_eq(fl.l_type, F_UNLCK, "the guest holds a host POSIX lock through a ro share");
	cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0, "the guest holds a host flock through a ro share");
	close(fd);
}

/* The owner's lock file has the access of the guest's handle: a read-only handle must not
 * make the host file open for writing (a host exec of it would fail with ETXTBSY). */
Test(fuse_lock, owner_file_is_not_writable_for_read_only_handle)
{
	uint64_t a;
	pid_t pid;
	int st;

	fx_write_file("f", "#!/bin/sh\nexit 7\n", 18);
	cr_assert_eq(chmod(fx_path("f"), 0755), 0);
	a = open_f(O_RDONLY);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_RDLCK, 0, EOF_, 0, NULL), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		execl(fx_path("f"), "f", (char *)NULL);
		_exit(errno == ETXTBSY ? 99 : 98);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_neq(WEXITSTATUS(st), 99, "host exec failed with ETXTBSY: the lock file is writable");
	cr_assert_eq(WEXITSTATUS(st), 7);
	/* The same owner may still write-lock through a writable handle later. */
	uint64_t b = open_f(O_RDWR);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 1, F_WRLCK, 0, 9, 0, NULL), 0);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 2, F_RDLCK, 5, 5, 0, NULL), -EAGAIN);
	cr_assert_eq(lk_op(FUSE_SETLK, b, 2, F_WRLCK, 20, 20, 0, NULL), -EAGAIN,
		     "the owner's read lock was lost on the way");
}

/* ---- SETLKW ---------------------------------------------------------------------------- */

struct waiter {
	pthread_t t;
	uint64_t fh;
	int ret;
	volatile int done;
};

/* The blocking request, from its own thread, without the (single-threaded) harness. */
static void *setlkw_main(void *arg)
{
	struct waiter *w = arg;
	struct {
		struct fuse_in_header h;
		struct fuse_lk_in lk;
	} req;
	struct fuse_out_header oh;
	struct iovec in = { &req, sizeof(req) }, out = { &oh, sizeof(oh) };

	memset(&req, 0, sizeof(req));
	req.h = (struct fuse_in_header){ .len = sizeof(req), .opcode = FUSE_SETLKW,
					 .unique = 1ULL << 60, .nodeid = 2 };
	req.lk = (struct fuse_lk_in){ .fh = w->fh, .owner = 2,
				      .lk = { .start = 0, .end = 9, .type = F_WRLCK } };
	w->ret = fuse_handle(fx.s, &in, 1, &out, 1) == sizeof(oh) ? oh.error : -1000;
	w->done = 1;
	return NULL;
}

Test(fuse_lock, setlkw_waits_without_stalling_others, .timeout = 30)
{
	struct timespec ms100 = { 0, 100 * 1000 * 1000 };
	struct waiter w = { 0 };
	struct fuse_entry_out e;
	uint64_t a, fh;
	char buf[4];
	size_t got;

	fx_write_file("f", "0123456789", 10);
	a = open_f(O_RDWR);
	w.fh = open_f(O_RDWR);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0, NULL), 0);
	cr_assert_eq(pthread_create(&w.t, NULL, setlkw_main, &w), 0);
	nanosleep(&ms100, NULL);
	cr_assert_eq(w.done, 0, "SETLKW did not wait for the conflicting lock");
	/* Everything else still flows, the same file's handles included. */
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), 0);
	cr_assert_eq(fx_read(a, 0, 4, buf, &got), 0);
	cr_assert_eq(fx_open(e.nodeid, O_RDONLY, &fh), 0);
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_RDLCK, 200, 300, 0, NULL), 0);
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "meanwhile", 0755, NULL), 0);
	cr_assert_eq(w.done, 0);
	/* Release the conflicting lock: the waiter gets it. */
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_UNLCK, 0, 99, 0, NULL), 0);
	pthread_join(w.t, NULL);
	cr_assert_eq(w.ret, 0);
	cr_assert_eq(lk_op(FUSE_SETLK, a, 1, F_WRLCK, 5, 5, 0, NULL), -EAGAIN,
		     "the waiter does not hold the lock");
}
