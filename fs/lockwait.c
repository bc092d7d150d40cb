/* Blocking locks, waited for off the transport's threads.
 *
 * A SETLKW (POSIX or flock) that cannot be granted at once is parked: a thread of the
 * server's own does the blocking F_OFD_SETLKW or flock() on a dup of the lock's file,
 * writes the reply and hands the request back through cfg.complete.  So a guest with many
 * waiters (make -j on lock files) costs us threads of our own, at most FUSE_LOCK_WAITERS
 * per server, never the pool that serves everything else (the holder's unlock included).
 *
 * A wait ends early when its thread is signalled (LW_SIGNAL, a no-op handler installed
 * without SA_RESTART, so the call returns EINTR) after its `cancel` is set: INTERRUPT for
 * one request, DESTROY or a reset for all.  A signal can land just before the thread
 * enters the call, where it changes nothing, so cancelling re-signals every millisecond
 * until the thread is done; the thread checks `cancel` before every call.  Waiter
 * threads block every other signal (terminal signals go to the VMM's other threads).
 *
 * An INTERRUPT that finds no waiter is remembered (the last few): its request may still
 * be on its way through another queue, and is then answered EINTR instead of parked.
 *
 * Lifetime: a waiter is on lw_live from park until it has called complete(); then on
 * lw_dead until someone joins it (the next park, a cancel-all, or lockwait_fini). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "fs/internal.h"
#include "vmm/thread.h"

#define LW_SIGNAL       (SIGRTMIN + 5)
#define LW_RETRY_NS     (1000 * 1000)
#define LW_INTR_TRIES   200     /* an INTERRUPT re-signals for at most ~200 ms */
#define LW_EARLY        (sizeof(((struct fuse_server *)0)->lw_early) / sizeof(uint64_t))

enum { LW_WAIT, LW_INTR, LW_ABANDON };

struct fs_waiter {
	struct fs_waiter *next;
	struct fuse_server *s;
	pthread_t thread;
	uint64_t unique;
	void *cookie;
	const struct iovec *out;
	int nout;
	int fd;
	int how;                /* flock() operation, or 0: F_OFD_SETLKW with fl */
	struct flock fl;
	_Atomic int cancel;     /* LW_WAIT, or why the wait ends */
	atomic_bool stopped;    /* out of the blocking call for good: no more signals (RT
				 * signals queue, so they are not sent for nothing) */
};

static void lw_nop(int sig)
{
	(void)sig;
}

static void lw_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = lw_nop;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;        /* no SA_RESTART: the blocked call must return EINTR */
	sigaction(LW_SIGNAL, &sa, NULL);
}

void lockwait_init(struct fuse_server *s)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, lw_install);
	pthread_mutex_init(&s->lw_mu, NULL);
	pthread_cond_init(&s->lw_cv, NULL);
}

static void lw_unlink(struct fs_waiter **list, struct fs_waiter *w)
{
	for (struct fs_waiter **pp = list; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			return;
		}
	}
}

/* Join and free every finished waiter. */
static void lw_reap(struct fuse_server *s)
{
	struct fs_waiter *w, *next;

	pthread_mutex_lock(&s->lw_mu);
	w = s->lw_dead;
	s->lw_dead = NULL;
	pthread_mutex_unlock(&s->lw_mu);
	for (; w; w = next) {
		next = w->next;
		pthread_join(w->thread, NULL);
		pthread_mutex_lock(&s->lw_mu);
		s->nlw--;
		pthread_mutex_unlock(&s->lw_mu);
		free(w);
	}
}

static void *lw_main(void *arg)
{
	struct fs_waiter *w = arg;
	struct fuse_server *s = w->s;
	sigset_t set;
	size_t n;
	int ret;

	/* Every signal blocked but LW_SIGNAL (and SIGSYS, which the sandbox's handler needs). */
	sigfillset(&set);
	sigdelset(&set, LW_SIGNAL);
	sigdelset(&set, SIGSYS);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	sigemptyset(&set);
	sigaddset(&set, LW_SIGNAL);
	for (;;) {
		if (atomic_load(&w->cancel) != LW_WAIT) {
			ret = -EINTR;
			break;
		}
		ret = w->how ? flock(w->fd, w->how) : fcntl(w->fd, F_OFD_SETLKW, &w->fl);
		if (!ret)
			break;
		ret = -errno;
		if (ret != -EINTR)
			break;
	}
	/* From here no signal may interrupt anything (the completion may write). */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	atomic_store(&w->stopped, true);
	close(w->fd);
	/* Granted but abandoned: the lock sits on a file of the server being destroyed. */
	if (atomic_load(&w->cancel) == LW_ABANDON)
		n = FUSE_ABANDONED;
	else
		n = fuse_reply_err(s, w->out, w->nout, w->unique, ret);
	s->cfg.complete(s->cfg.complete_opaque, w->cookie, n);

	pthread_mutex_lock(&s->lw_mu);
	lw_unlink(&s->lw_live, w);
	w->next = s->lw_dead;
	s->lw_dead = w;
	pthread_cond_broadcast(&s->lw_cv);
	pthread_mutex_unlock(&s->lw_mu);
	return NULL;
}

int lockwait_park(struct fuse_req *r, int fd, int how, const struct flock *fl)
{
	struct fuse_server *s = r->s;
	struct fs_waiter *w;
	sigset_t all, old;
	int ret;

	lw_reap(s);
	w = calloc(1, sizeof(*w));
	if (!w) {
		close(fd);
		return -ENOMEM;
	}
	w->s = s;
	w->unique = r->h.unique;
	w->cookie = r->cookie;
	w->out = r->out;
	w->nout = r->nout;
	w->fd = fd;
	w->how = how;
	if (fl)
		w->fl = *fl;
	pthread_mutex_lock(&s->lw_mu);
	if (s->lw_closed || s->nlw >= FUSE_LOCK_WAITERS) {
		ret = s->lw_closed ? -EINTR : -ENOLCK;
		goto fail;
	}
	for (unsigned i = 0; i < LW_EARLY; i++) {
		if (s->lw_early[i] == w->unique && w->unique) {
			s->lw_early[i] = 0;
			ret = -EINTR;
			goto fail;
		}
	}
	/* Through the thread helper (its role's filter; a confined pool thread may not clone
	 * itself).  lw_main sets its own signal mask: under the sandbox the spawner, not this
	 * thread, is the one whose mask it would inherit. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -thread_start(THREAD_LOCK, "vfs-lock", lw_main, w, &w->thread);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		ret = -ENOLCK;
		goto fail;
	}
	/* Listed before the thread can finish: it takes lw_mu to move itself to lw_dead. */
	w->next = s->lw_live;
	s->lw_live = w;
	s->nlw++;
	pthread_mutex_unlock(&s->lw_mu);
	return FUSE_PARKED;
fail:
	pthread_mutex_unlock(&s->lw_mu);
	close(fd);
	free(w);
	return ret;
}

/* Signal every live waiter being cancelled that is still in its blocking call (under
 * lw_mu); true while any cancelled one has not completed yet. */
static bool lw_kick(struct fuse_server *s, uint64_t unique, bool all)
{
	bool pending = false;

	for (struct fs_waiter *w = s->lw_live; w; w = w->next) {
		if (!all && w->unique != unique)
			continue;
		if (atomic_load(&w->cancel) == LW_WAIT)
			continue;
		pending = true;
		if (!atomic_load(&w->stopped))
			pthread_kill(w->thread, LW_SIGNAL);
	}
	return pending;
}

void lockwait_interrupt(struct fuse_server *s, uint64_t unique)
{
	struct timespec t = { 0, LW_RETRY_NS };
	bool found = false;

	pthread_mutex_lock(&s->lw_mu);
	for (struct fs_waiter *w = s->lw_live; w; w = w->next) {
		int expect = LW_WAIT;
		if (w->unique == unique &&
		    atomic_compare_exchange_strong(&w->cancel, &expect, LW_INTR))
			found = true;
	}
	if (!found)
		s->lw_early[s->lw_nearly++ % LW_EARLY] = unique;
	pthread_mutex_unlock(&s->lw_mu);
	/* The interrupted thread answers on its own; keep kicking only until it has. */
	for (int i = 0; found && i < LW_INTR_TRIES; i++) {
		pthread_mutex_lock(&s->lw_mu);
		found = lw_kick(s, unique, false);
		pthread_mutex_unlock(&s->lw_mu);
		if (found)
			nanosleep(&t, NULL);
	}
}

void lockwait_cancel_all(struct fuse_server *s, bool abandon)
{
	struct timespec t;

	pthread_mutex_lock(&s->lw_mu);
	if (abandon)
		s->lw_closed = true;
	for (struct fs_waiter *w = s->lw_live; w; w = w->next) {
		/* An abandon overrides an earlier INTERRUPT: no reply may be written. */
		if (abandon)
			atomic_store(&w->cancel, LW_ABANDON);
		else {
			int expect = LW_WAIT;
			atomic_compare_exchange_strong(&w->cancel, &expect, LW_INTR);
		}
	}
	while (lw_kick(s, 0, true)) {
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += LW_RETRY_NS;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->lw_cv, &s->lw_mu, &t);
	}
	pthread_mutex_unlock(&s->lw_mu);
	lw_reap(s);
}

void lockwait_fini(struct fuse_server *s)
{
	lockwait_cancel_all(s, true);
	pthread_cond_destroy(&s->lw_cv);
	pthread_mutex_destroy(&s->lw_mu);
}
