/* The process sandbox (--sandbox on, the default): a private mount namespace whose root is
 * an empty tmpfs holding only the shares (root only), per-thread seccomp filters and
 * capabilities by role (vmm/thread.h, vmm/seccomp_policy.c), no_new_privs, and a file
 * limit nobody can raise.  Order in launch: sandbox_enter while the process still has one
 * thread and before any share is opened; then every thread started confines itself;
 * sandbox_seal on the main thread right before the vCPUs start. */
#ifndef MINIVMM_SANDBOX_H
#define MINIVMM_SANDBOX_H
#include <stdbool.h>

#include "vmm/thread.h"

struct share;

enum sandbox_mode { SANDBOX_ON, SANDBOX_NONE };

/* Parse "on" or "none"; -EINVAL otherwise. */
int sandbox_parse(const char *s, enum sandbox_mode *mode);

/* Arm the sandbox (SANDBOX_NONE: one warning line, nothing else).  As root, moves the
 * process into a new mount namespace holding only the shares; unprivileged, says in one
 * line (unless quiet) that only the filters apply.  Dies on a failure that would leave the
 * process half-confined. */
void sandbox_enter(enum sandbox_mode mode, const struct share *shares, int nshares, bool quiet);

/* Arm the per-thread filters only (no namespace, no file limit): unit tests. */
int sandbox_arm_filters(void);

/* Where the FUSE server finds share i: its place in the new root, or `path` outside one. */
const char *sandbox_share_path(int i, const char *path);

/* The main thread: file limit fixed, capabilities dropped, its own filter loaded.  Threads
 * it starts afterwards come from the spawner. */
void sandbox_seal(void);

bool sandbox_armed(void);

/* The calling thread drops to ROLE's capabilities and loads ROLE's filter. 0 or -errno. */
int sandbox_thread_enter(enum thread_role role);

#endif
