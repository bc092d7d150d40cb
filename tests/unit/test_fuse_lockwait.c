/* Blocking locks (SETLKW, blocking flock) under a busy or hostile guest: waiting for a lock
 * must never hold the transport's threads, INTERRUPT cancels a wait (EINTR), and DESTROY
 * or a device reset (the server going away) ends every wait at once.  The transport is
 * played by a small pool of threads, like fs/virtio_fs.c's, fed requests in order. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

#define EOF_ (uint64_t)INT64_MAX

/* ---- a transport: requests, a pool, completions -------------------------------------- */

struct preq {
	struct {
		struct fuse_in_header h;
		struct fuse_lk_in lk;
	} in;
	struct fuse_out_header out;
	struct iovec iin, iout;
	atomic_int done;
	int error;
	bool abandoned;
	struct preq *next;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct preq *head, *tail;
	pthread_t t[8];
	unsigned n;
	bool stop;
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void req_finish(struct preq *q, size_t written)
{
	q->error = written == sizeof(q->out) ? q->out.error : -1000;
	atomic_store(&q->done, 1);
}

static void *pool_main(void *arg)
{
	for (;;) {
		pthread_mutex_lock(&pool.mu);
		while (!pool.head && !pool.stop)
			pthread_cond_wait(&pool.cv, &pool.mu);
		struct preq *q = pool.head;
		if (q) {
			pool.head = q->next;
			if (!pool.head)
				pool.tail = NULL;
		}
		pthread_mutex_unlock(&pool.mu);
		if (!q)
			return NULL;
		size_t n = fuse_handle_async(fx.s, &q->iin, 1, &q->iout, 1, q);
		if (n != FUSE_DEFERRED)
			req_finish(q, n);
	}
}

/* cfg.complete: a parked request is answered (or given back after a reset). */
static void req_complete(void *opaque, void *cookie, size_t written)
{
	struct preq *q = cookie;

	cr_assert_eq(opaque, &pool);
	if (written == FUSE_ABANDONED) {
		q->abandoned = true;
		atomic_store(&q->done, 1);
	} else {
		req_finish(q, written);
	}
}

static void pool_start(unsigned n)
{
	pool.n = n;
	pool.stop = false;
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(pthread_create(&pool.t[i], NULL, pool_main, NULL), 0);
}

static void pool_stop(void)
{
	pthread_mutex_lock(&pool.mu);
	pool.stop = true;
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	for (unsigned i = 0; i < pool.n; i++)
		pthread_join(pool.t[i], NULL);
	pool.n = 0;
}

static uint64_t next_unique = 1000;

/* A lock request (SETLK or SETLKW), queued to the pool. */
static struct preq *lk_submit(uint32_t op, uint64_t fh, uint64_t owner, uint32_t type,
			      uint64_t start, uint64_t end, uint32_t flags)
{
	struct preq *q = calloc(1, sizeof(*q));

	cr_assert_not_null(q);
	q->in.h = (struct fuse_in_header){ .len = sizeof(q->in), .opcode = op,
					   .unique = next_unique++, .nodeid = 2 };
	q->in.lk = (struct fuse_lk_in){ .fh = fh, .owner = owner, .lk_flags = flags,
					.lk = { .start = start, .end = end, .type = type } };
	memset(&q->out, 0xAA, sizeof(q->out));
	q->iin = (struct iovec){ &q->in, sizeof(q->in) };
	q->iout = (struct iovec){ &q->out, sizeof(q->out) };
	pthread_mutex_lock(&pool.mu);
	if (pool.tail)
		pool.tail->next = q;
	else
		pool.head = q;
	pool.tail = q;
	pthread_cond_signal(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	return q;
}

/* Poll up to `ms` for the request to be answered. */
static bool req_wait(struct preq *q, int ms)
{
	struct timespec t = { 0, 1000 * 1000 };

	for (int i = 0; i < ms && !atomic_load(&q->done); i++)
		nanosleep(&t, NULL);
	return atomic_load(&q->done);
}

static void ms_sleep(int ms)
{
	struct timespec t = { 0, ms * 1000L * 1000 };
	nanosleep(&t, NULL);
}

/* Wait (up to 3 s) until `n` waiters are blocked on "f", then a little more. */
static void wait_parked(int n)
{
	for (int t = 0; t < 3000 && fx_lock_waiters("f") < n; t++)
		ms_sleep(1);
	cr_assert_geq(fx_lock_waiters("f"), n, "only %d of %d waiters blocked", fx_lock_waiters("f"), n);
	ms_sleep(20);
}

static int lk_now(uint32_t op, uint64_t fh, uint64_t owner, uint32_t type, uint64_t start,
		  uint64_t end, uint32_t flags)
{
	struct fuse_lk_in in = { .fh = fh, .owner = owner, .lk_flags = flags,
				 .lk = { .start = start, .end = end, .type = type } };

	return fx_call(op, 2, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

static uint64_t open_f(uint32_t flags)
{
	uint64_t fh;

	cr_assert_eq(fx_open(fx_node("f"), flags, &fh), 0);
	return fh;
}

static void lw_setup(void)
{
	fx_setup_async(req_complete, &pool);
	fx_write_file("f", "0123456789", 10);
}

static void lw_teardown(void)
{
	fx_teardown();          /* ends every wait: the pool's threads are free again */
	pool_stop();
}

TestSuite(fuse_lockwait, .init = lw_setup, .fini = lw_teardown, .timeout = 30);

/* `make -j` on lock files: more waiters than threads, and the holder's unlock (queued
 * behind them) must still run. */
Test(fuse_lockwait, more_waiters_than_threads)
{
	struct preq *w[6], *unlock;
	uint64_t a = open_f(O_RDWR), b = open_f(O_RDWR);

	pool_start(4);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0), 0);
	for (int i = 0; i < 6; i++)
		w[i] = lk_submit(FUSE_SETLKW, b, 2 + i, F_RDLCK, 0, 9, 0);
	ms_sleep(100);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(atomic_load(&w[i]->done), 0, "waiter %d did not wait", i);
	unlock = lk_submit(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_, 0);
	cr_assert(req_wait(unlock, 3000), "the holder's unlock never ran: waiters hold every thread");
	cr_assert_eq(unlock->error, 0);
	for (int i = 0; i < 6; i++) {
		cr_assert(req_wait(w[i], 3000), "waiter %d never got its lock", i);
		cr_assert_eq(w[i]->error, 0);
	}
	/* They hold their read locks now. */
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 5, 5, 0), -EAGAIN);
	for (int i = 0; i < 6; i++)
		free(w[i]);
	free(unlock);
}

/* The same with flock. */
Test(fuse_lockwait, blocking_flock_holds_no_thread)
{
	struct preq *w[5], *unlock;
	uint64_t a = open_f(O_RDONLY), b[5];

	pool_start(2);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, EOF_, FUSE_LK_FLOCK), 0);
	for (int i = 0; i < 5; i++) {
		b[i] = open_f(O_RDONLY);
		w[i] = lk_submit(FUSE_SETLKW, b[i], 1, F_RDLCK, 0, EOF_, FUSE_LK_FLOCK);
	}
	ms_sleep(100);
	unlock = lk_submit(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_, FUSE_LK_FLOCK);
	cr_assert(req_wait(unlock, 3000), "the holder's unlock never ran");
	for (int i = 0; i < 5; i++) {
		cr_assert(req_wait(w[i], 3000), "flock waiter %d never got its lock", i);
		cr_assert_eq(w[i]->error, 0);
		free(w[i]);
	}
	free(unlock);
}

/* INTERRUPT (hiprio, carrying the unique) ends a wait with EINTR; the lock is not taken. */
Test(fuse_lockwait, interrupt_cancels_a_wait)
{
	struct fuse_interrupt_in in;
	struct preq *w, *f;
	uint64_t a = open_f(O_RDWR), b = open_f(O_RDWR), c = open_f(O_RDONLY);

	pool_start(2);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0), 0);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, EOF_, FUSE_LK_FLOCK), 0);
	w = lk_submit(FUSE_SETLKW, b, 2, F_WRLCK, 0, 9, 0);
	f = lk_submit(FUSE_SETLKW, c, 3, F_RDLCK, 0, EOF_, FUSE_LK_FLOCK);
	wait_parked(2);
	cr_assert_eq(atomic_load(&w->done), 0);
	cr_assert_eq(atomic_load(&f->done), 0);
	in = (struct fuse_interrupt_in){ .unique = w->in.h.unique };
	cr_assert_eq(fx_call(FUSE_INTERRUPT, 0, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL),
		     FX_NOREPLY);
	cr_assert(req_wait(w, 2000), "INTERRUPT did not end the wait");
	cr_assert_eq(w->error, -EINTR);
	cr_assert_eq(atomic_load(&f->done), 0, "INTERRUPT ended another request's wait");
	in.unique = f->in.h.unique;
	cr_assert_eq(fx_call(FUSE_INTERRUPT, 0, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL),
		     FX_NOREPLY);
	cr_assert(req_wait(f, 2000), "INTERRUPT did not end the flock wait");
	cr_assert_eq(f->error, -EINTR);
	/* Neither took its lock once the holder let go. */
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_, 0), 0);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_, FUSE_LK_FLOCK), 0);
	ms_sleep(50);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 4, F_WRLCK, 0, 9, 0), 0);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 4, F_WRLCK, 0, EOF_, FUSE_LK_FLOCK), 0);
	/* An unknown unique is ignored. */
	in.unique = 424242;
	cr_assert_eq(fx_call(FUSE_INTERRUPT, 0, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL),
		     FX_NOREPLY);
	free(w);
	free(f);
}

/* An INTERRUPT that overtakes its request (hiprio is another queue): the request, when it
 * would wait, is answered EINTR instead of parked; other requests are not affected. */
Test(fuse_lockwait, interrupt_before_its_request)
{
	struct fuse_interrupt_in in = { .unique = next_unique };
	struct preq *w, *other;
	uint64_t a = open_f(O_RDWR), b = open_f(O_RDWR);

	pool_start(2);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0), 0);
	cr_assert_eq(fx_call(FUSE_INTERRUPT, 0, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL),
		     FX_NOREPLY);
	w = lk_submit(FUSE_SETLKW, b, 2, F_WRLCK, 0, 9, 0);
	cr_assert_eq(w->in.h.unique, in.unique);
	cr_assert(req_wait(w, 2000), "an interrupted request was parked");
	cr_assert_eq(w->error, -EINTR);
	other = lk_submit(FUSE_SETLKW, b, 3, F_WRLCK, 0, 9, 0);
	wait_parked(1);
	cr_assert_eq(atomic_load(&other->done), 0);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_, 0), 0);
	cr_assert(req_wait(other, 2000));
	cr_assert_eq(other->error, 0);
	free(w);
	free(other);
}

/* DESTROY (the guest unmounts) does not wait for lock waiters: each is answered EINTR. */
Test(fuse_lockwait, destroy_ends_waits)
{
	struct preq *w[3];
	uint64_t a = open_f(O_RDWR), b = open_f(O_RDWR);

	pool_start(2);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0), 0);
	for (int i = 0; i < 3; i++)
		w[i] = lk_submit(FUSE_SETLKW, b, 2 + i, F_WRLCK, 0, 9, 0);
	wait_parked(3);
	cr_assert_eq(fx_call(FUSE_DESTROY, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	for (int i = 0; i < 3; i++) {
		cr_assert(req_wait(w[i], 2000), "waiter %d outlived DESTROY", i);
		cr_assert_eq(w[i]->error, -EINTR);
		free(w[i]);
	}
}

/* The server going away (a device reset) with waiters: it returns at once and every
 * waiter is given back to the transport; nothing is written into their buffers (their
 * rings belong to a reset device). */
Test(fuse_lockwait, server_destroy_abandons_waits)
{
	struct preq *w[5];
	uint64_t a = open_f(O_RDWR), b = open_f(O_RDWR), c = open_f(O_RDONLY);

	pool_start(4);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0), 0);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, EOF_, FUSE_LK_FLOCK), 0);
	for (int i = 0; i < 4; i++)
		w[i] = lk_submit(FUSE_SETLKW, b, 2 + i, F_WRLCK, 0, 9, 0);
	w[4] = lk_submit(FUSE_SETLKW, c, 9, F_RDLCK, 0, EOF_, FUSE_LK_FLOCK);
	wait_parked(5);
	fuse_server_destroy(fx.s);
	fx.s = NULL;
	for (int i = 0; i < 5; i++) {
		cr_assert(req_wait(w[i], 2000), "waiter %d outlived its server", i);
		cr_assert(w[i]->abandoned, "waiter %d was answered after the reset", i);
		cr_assert_eq(w[i]->out.unique, 0xAAAAAAAAAAAAAAAAull, "reply written after reset");
		free(w[i]);
	}
}

/* Parked waits are bounded per server: beyond FUSE_LOCK_WAITERS, ENOLCK at once. */
Test(fuse_lockwait, waiters_are_bounded)
{
	struct preq *w[FUSE_LOCK_WAITERS + 1];
	uint64_t a = open_f(O_RDWR), b = open_f(O_RDWR);
	int refused = -1, n = FUSE_LOCK_WAITERS + 1;

	pool_start(2);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0), 0);
	for (int i = 0; i < n; i++)
		w[i] = lk_submit(FUSE_SETLKW, b, 2 + i, F_WRLCK, 0, 9, 0);
	/* Two pool threads: either of the last two may be the one refused. */
	for (int t = 0; t < 3000 && refused < 0; t++) {
		for (int i = 0; i < n; i++)
			if (atomic_load(&w[i]->done))
				refused = i;
		if (refused < 0)
			ms_sleep(1);
	}
	cr_assert_geq(refused, 0, "every waiter past the bound was parked");
	cr_assert_eq(w[refused]->error, -ENOLCK);
	ms_sleep(50);
	for (int i = 0; i < n; i++)
		cr_assert(i == refused || !atomic_load(&w[i]->done), "waiter %d did not wait", i);
	free(w[refused]);
	w[refused] = NULL;
	/* Unlocking lets them through one at a time, each unlocking for the next. */
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_, 0), 0);
	for (int got = 0; got < FUSE_LOCK_WAITERS; got++) {
		int k = -1;
		for (int t = 0; t < 3000 && k < 0; t++) {
			for (int i = 0; i < n && k < 0; i++)
				if (w[i] && atomic_load(&w[i]->done))
					k = i;
			if (k < 0)
				ms_sleep(1);
		}
		cr_assert_geq(k, 0, "no waiter got the lock after %d did", got);
		cr_assert_eq(w[k]->error, 0);
		cr_assert_eq(lk_now(FUSE_SETLK, b, 2 + k, F_UNLCK, 0, EOF_, 0), 0);
		free(w[k]);
		w[k] = NULL;
	}
}

/* Where nothing can be parked (no cookie: a queue that must never block), a lock that
 * would wait is refused at once; one that is free is granted. */
Test(fuse_lockwait, no_cookie_never_blocks)
{
	struct {
		struct fuse_in_header h;
		struct fuse_lk_in lk;
	} req;
	struct fuse_out_header oh;
	struct iovec in = { &req, sizeof(req) }, out = { &oh, sizeof(oh) };
	uint64_t a = open_f(O_RDWR), b = open_f(O_RDWR);

	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0), 0);
	memset(&req, 0, sizeof(req));
	req.h = (struct fuse_in_header){ .len = sizeof(req), .opcode = FUSE_SETLKW, .unique = 5,
					 .nodeid = 2 };
	req.lk = (struct fuse_lk_in){ .fh = b, .owner = 2,
				      .lk = { .start = 0, .end = 9, .type = F_WRLCK } };
	cr_assert_eq(fuse_handle_async(fx.s, &in, 1, &out, 1, NULL), sizeof(oh));
	cr_assert_eq(oh.error, -EAGAIN);
	req.lk.lk.start = 200;
	req.lk.lk.end = 300;
	cr_assert_eq(fuse_handle_async(fx.s, &in, 1, &out, 1, NULL), sizeof(oh));
	cr_assert_eq(oh.error, 0);
}

/* After fuse_abandon_waiters (a reset under way) nothing more is parked: a lock that
 * would wait is answered EINTR, so the transport's wait for in-flight requests ends. */
Test(fuse_lockwait, abandon_stops_parking)
{
	struct preq *w, *late;
	uint64_t a = open_f(O_RDWR), b = open_f(O_RDWR);

	pool_start(2);
	cr_assert_eq(lk_now(FUSE_SETLK, a, 1, F_WRLCK, 0, 99, 0), 0);
	w = lk_submit(FUSE_SETLKW, b, 2, F_WRLCK, 0, 9, 0);
	wait_parked(1);
	fuse_abandon_waiters(fx.s);
	cr_assert(atomic_load(&w->done), "abandon returned before the waiter was given back");
	cr_assert(w->abandoned);
	late = lk_submit(FUSE_SETLKW, b, 3, F_WRLCK, 0, 9, 0);
	cr_assert(req_wait(late, 2000));
	cr_assert_eq(late->error, -EINTR);
	free(w);
	free(late);
}
