/* Thread start-up with a role: naming, confinement (vmm/sandbox.c) before the thread's
 * own code, and the spawner that creates threads for threads that may not clone. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/sandbox.h"
#include "vmm/thread.h"
#include "vmm/vm.h"

struct thread_start_req {
	enum thread_role role;
	char name[16];
	void *(*fn)(void *);
	void *arg;
};

static __thread enum thread_role t_role = THREAD_MAIN;
static __thread char t_name[16] = "main";
static __thread bool t_confined;

enum thread_role thread_role_self(void)
{
	return t_role;
}

const char *thread_name_self(void)
{
	return t_name;
}

void thread_self_confined(void)
{
	t_confined = true;
}

static void *trampoline(void *p)
{
	struct thread_start_req s = *(struct thread_start_req *)p;
	free(p);
	t_role = s.role;
	memcpy(t_name, s.name, sizeof(t_name));
	pthread_setname_np(pthread_self(), s.name);
	if (sandbox_armed()) {
		/* SIGSYS must reach the handler: a blocked forced signal kills silently. */
		sigset_t sys;
		sigemptyset(&sys);
		sigaddset(&sys, SIGSYS);
		pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
		int r = sandbox_thread_enter(s.role);
		if (r) {
			vm_log("sandbox: cannot confine thread %s (%s): %s", s.name,
			       thread_role_name(s.role), strerror(-r));
			_exit(VM_EXIT_CRASH);
		}
		t_confined = true;
	}
	return s.fn(s.arg);
}

static int create(struct thread_start_req *s, pthread_t *out)
{
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	if (!out)
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int r = pthread_create(&t, &attr, trampoline, s);
	pthread_attr_destroy(&attr);
	if (r) {
		free(s);
		return r;
	}
	if (out)
		*out = t;
	return 0;
}

/* ---- the spawner: clone on behalf of confined threads -------------------------------- */

struct spawn_req {
	struct thread_start_req *s;
	pthread_t *out;
	int ret;
	bool done;
	struct spawn_req *next;
};

static pthread_mutex_t sp_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sp_cond = PTHREAD_COND_INITIALIZER;
static struct spawn_req *sp_head;
static bool sp_running;

static void *spawner_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&sp_lock);
	for (;;) {
		while (!sp_head)
			pthread_cond_wait(&sp_cond, &sp_lock);
		struct spawn_req *r = sp_head;
		sp_head = r->next;
		pthread_mutex_unlock(&sp_lock);
		pthread_t t;
		int ret = create(r->s, r->out ? &t : NULL);
		pthread_mutex_lock(&sp_lock);
		if (!ret && r->out)
			*r->out = t;
		r->ret = ret;
		r->done = true;
		pthread_cond_broadcast(&sp_cond);
	}
	return NULL;
}

static int spawn(struct thread_start_req *s, pthread_t *out)
{
	struct spawn_req r = { .s = s, .out = out };
	pthread_mutex_lock(&sp_lock);
	if (!sp_running) {
		pthread_mutex_unlock(&sp_lock);
		free(s);
		return EPERM;
	}
	struct spawn_req **tail = &sp_head;
	while (*tail)
		tail = &(*tail)->next;
	*tail = &r;
	pthread_cond_broadcast(&sp_cond);
	while (!r.done)
		pthread_cond_wait(&sp_cond, &sp_lock);
	pthread_mutex_unlock(&sp_lock);
	return r.ret;
}

int thread_start(enum thread_role role, const char *name, void *(*fn)(void *), void *arg,
		 pthread_t *out)
{
	static unsigned counters[THREAD_NR_ROLES];
	if ((unsigned)role >= THREAD_NR_ROLES)
		return EINVAL;
	struct thread_start_req *s = malloc(sizeof(*s));
	if (!s)
		return ENOMEM;
	unsigned n = __atomic_fetch_add(&counters[role], 1, __ATOMIC_RELAXED);
	*s = (struct thread_start_req){ .role = role, .fn = fn, .arg = arg };
	snprintf(s->name, sizeof(s->name), "%.10s%u", name, n);
	return t_confined ? spawn(s, out) : create(s, out);
}

int thread_spawner_start(void)
{
	pthread_mutex_lock(&sp_lock);
	bool running = sp_running;
	sp_running = true;
	pthread_mutex_unlock(&sp_lock);
	if (running)
		return 0;
	int r = thread_start(THREAD_SPAWNER, "spawner", spawner_main, NULL, NULL);
	if (r) {
		pthread_mutex_lock(&sp_lock);
		sp_running = false;
		pthread_mutex_unlock(&sp_lock);
	}
	return r;
}
