/* Every thread of the VMM starts here, with a role.  The role names the thread and, once
 * the sandbox is armed (vmm/sandbox.h), decides the capabilities it keeps and the seccomp
 * allow-list (vmm/seccomp_policy.c) it loads as its first act, before it runs any code the
 * guest can influence. */
#ifndef MINIVMM_THREAD_H
#define MINIVMM_THREAD_H
#include <pthread.h>

enum thread_role {
	THREAD_MAIN,        /* the process's first thread: set-up, then waits for the guest */
	THREAD_VCPU,        /* KVM_RUN and the exits it routes to device models */
	THREAD_QUEUE,       /* a virtio queue's worker (virtio/core.c) */
	THREAD_FS,          /* a virtio-fs request thread: the FUSE server's host syscalls */
	THREAD_LOCK,        /* a virtio-fs thread blocked in a lock wait (SETLKW) */
	THREAD_STDIO,       /* serial and console input, the stdout-reader watch */
	THREAD_SPAWNER,     /* starts threads for threads whose filter forbids clone */
	THREAD_NR_ROLES
};

/* "vCPU", "virtio queue worker", ... for messages. */
const char *thread_role_name(enum thread_role role);

/* pthread_create with a role: the thread is named NAME plus a per-role counter ("vcpu0")
 * and, with the sandbox armed, drops to the role's capabilities and loads its filter
 * before fn runs.  A caller whose own filter forbids clone has the spawner thread create
 * it (same result).  out == NULL: detached.  Returns 0 or a positive errno, like
 * pthread_create. */
int thread_start(enum thread_role role, const char *name, void *(*fn)(void *), void *arg,
		 pthread_t *out);

/* The calling thread's role (THREAD_MAIN for the first thread and foreign threads) and
 * name; both readable from a signal handler. */
enum thread_role thread_role_self(void);
const char *thread_name_self(void);

/* The calling thread has loaded a filter: from now on it starts threads through the
 * spawner.  Called by the sandbox for the main thread. */
void thread_self_confined(void);

/* Start the spawner (sandbox start-up, while the process has one thread). */
int thread_spawner_start(void);

#endif
