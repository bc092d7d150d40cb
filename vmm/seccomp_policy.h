/* The seccomp allow-list of each thread role, and the SIGSYS handler that turns a refused
 * system call into one line on stderr and exit status 125. */
#ifndef MINIVMM_SECCOMP_POLICY_H
#define MINIVMM_SECCOMP_POLICY_H
#include <stdbool.h>

#include "vmm/thread.h"

/* Build ROLE's filter without loading it: 0, or -EINVAL naming the first syscall this
 * libseccomp does not know in err (the unit tests check every role builds). */
int seccomp_policy_check(enum thread_role role, char *err, size_t errlen);

/* Load ROLE's filter on the calling thread only (no TSYNC; threads it starts later inherit
 * it, which is why the spawner's list is the union of the roles it starts).  Sets
 * no_new_privs on the thread.  0 or -errno. */
int seccomp_policy_load(enum thread_role role);

/* How many system calls ROLE allows (some only with the argument checks in the table). */
int seccomp_policy_count(enum thread_role role);

/* Install the SIGSYS handler and the syscall name table it prints from; idempotent.
 * Must run before the first filter is loaded (it allocates). */
int seccomp_trap_install(void);

#endif
