/* The sandbox's seccomp policy, kept as data: one allow-list per thread role (found by
 * reading the code each role runs and by strace of real guest boots and the virtio-fs
 * workload, see tests/e2e/sandbox.sh), plus a few argument checks that cost little: no
 * executable mappings anywhere, ioctl only with the requests a role issues, clone only for
 * threads, unshare only of the fs context.  Anything else traps: the SIGSYS handler names
 * the call and the role on stderr and ends the process with status 125.
 *
 * Filters stack: a thread inherits its creator's filter and adds its own, and only what
 * both allow passes.  Threads are started before their creator's filter exists (main,
 * before the sandbox is sealed) or by the spawner, whose list is the union of the roles it
 * starts; so every thread ends up with exactly its own list. */
#include <errno.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

#include "devices/term.h"
#include "vmm/seccomp_policy.h"
#include "vmm/vm.h"

#define END NULL

/* glibc's own needs (allocation, locks, thread exit, abort) and logging to stderr. */
static const char *const base_calls[] = {
	"write", "futex", "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
	"rt_sigprocmask", "rt_sigreturn", "sigaltstack", "exit", "exit_group", "restart_syscall",
	"clock_gettime", "clock_nanosleep", "nanosleep", "sched_yield", "gettid", "getpid",
	"tgkill", "close", "getrandom", "ioctl", END
};

/* The terminal is put back on every fatal path (term_restore), from any thread. */
static const unsigned long base_ioctls[] = { TCGETS, TCSETS, TCSETSW, TCSETSF, 0 };

/* Waiting for the guest, then the console drain (virtio/console.c runs the tx rings one
 * last time on this thread) and exit. */
static const char *const main_calls[] = {
	"read", "writev", "poll", "ppoll", "lseek", "fstat", "newfstatat", "eventfd2", END
};

/* KVM_RUN and device emulation on exits: eventfds (kicks, irqfds), MSI-X routes, DAX BAR
 * moves.  A device reset also runs here: it joins workers and, for virtio-fs, starts a
 * fresh FUSE server on the share (open, stat, statfs for the pseudo-file-system check, name
 * it through /proc/self/fd). */
static const char *const vcpu_calls[] = {
	"read", "poll", "ppoll", "eventfd2", "openat", "openat2", "fstat", "newfstatat", "statx",
	"readlinkat", "fcntl", "prlimit64", "getdents64", "lseek", "geteuid", "umask", "fstatfs", END
};
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN, KVM_GET_REGS, KVM_IRQ_LINE, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING,
	KVM_SET_USER_MEMORY_REGION, KVM_SIGNAL_MSI, 0
};

/* Raising a legacy interrupt line (INTx, the serial port) from a device thread. */
static const unsigned long irq_ioctls[] = { KVM_IRQ_LINE, 0 };

/* Every host call the FUSE server makes (the fs/ sources): O_PATH inodes reopened through
 * /proc/self/fd, *at() names, per-request fsuid/fsgid and groups, OFD and flock locks,
 * DAX (mmap MAP_FIXED of file ranges into the window), and completing the request
 * (eventfd write, or the INTx line).  unshare: CLONE_FS only (a private umask). */
static const char *const fs_calls[] = {
	"read", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "readv",
	"writev", "lseek", "getdents64", "open", "openat", "openat2", "fstat", "newfstatat",
	"statx", "fstatfs", "statfs", "readlinkat", "mkdirat", "mknodat", "symlinkat", "linkat",
	"unlinkat", "renameat", "renameat2", "fchownat", "fchown", "fchmodat", "fchmod",
	"utimensat", "ftruncate", "fallocate", "fsync", "fdatasync", "syncfs", "fcntl", "flock",
	"getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
	"llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
	"copy_file_range", "setfsuid", "setfsgid", "setgroups", "setresuid", "setresgid",
	"unshare", "umask", "getuid", "geteuid", "getgid", "getegid", "dup", "prlimit64", END
};

/* A virtio queue's worker: waits on its kick eventfd, runs the device's ring code (the
 * console's output to stdout/stderr, the virtio-fs hiprio queue, which answers whatever
 * FUSE request it is sent, hence the fs list too). */
static const char *const queue_calls[] = { "poll", "ppoll", "eventfd2", END };

/* Serial and console input: read stdin, wake, raise the IRQ line; the epipe watch polls. */
static const char *const stdio_calls[] = {
	"read", "readv", "writev", "poll", "ppoll", "pselect6", "select", "fstat", "newfstatat",
	"fcntl", "lseek", END
};

/* Starting threads: clone with CLONE_THREAD (clone3 answers ENOSYS, so glibc falls back
 * to clone, whose flags a filter can see), then the new thread names itself, drops to its
 * capabilities and loads its own filter. */
static const char *const spawner_calls[] = {
	"clone", "set_robust_list", "rseq", "prctl", "seccomp", "capget", "capset",
	"sched_getaffinity", END
};

struct role_policy {
	const char *name;
	const char *const *calls[3];       /* up to three lists, besides the base */
	const unsigned long *ioctls;       /* besides the terminal's */
};

static const struct role_policy policies[THREAD_NR_ROLES] = {
	[THREAD_MAIN]    = { "main", { main_calls }, NULL },
	[THREAD_VCPU]    = { "vCPU", { vcpu_calls }, vcpu_ioctls },
	[THREAD_QUEUE]   = { "virtio queue worker", { queue_calls, fs_calls }, irq_ioctls },
	[THREAD_FS]      = { "fs worker", { fs_calls }, irq_ioctls },
	/* Waits in F_OFD_SETLKW/flock, then answers the request like any fs worker. */
	[THREAD_LOCK]    = { "fs lock waiter", { fs_calls }, irq_ioctls },
	[THREAD_STDIO]   = { "console/stdio", { stdio_calls }, irq_ioctls },
	/* The spawner's own list plus, below, every role it may start (all but main). */
	[THREAD_SPAWNER] = { "thread spawner", { spawner_calls }, NULL },
};

const char *thread_role_name(enum thread_role role)
{
	return (unsigned)role < THREAD_NR_ROLES ? policies[role].name : "unknown";
}

static int add_call(scmp_filter_ctx ctx, const char *name, char *err, size_t errlen)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		snprintf(err, errlen, "unknown system call '%s'", name);
		return -EINVAL;
	}
	/* Argument checks: the cheap ones with a real pay-off. */
	if (!strcmp(name, "mmap") || !strcmp(name, "mprotect"))
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (!strcmp(name, "unshare"))
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, CLONE_FS, 0));
	if (!strcmp(name, "clone"))
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (!strcmp(name, "ioctl"))
		return 0;       /* per request, below */
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *req)
{
	for (; req && *req; req++) {
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					 SCMP_A1(SCMP_CMP_EQ, *req, 0));
		if (r && r != -EEXIST)
			return r;
	}
	return 0;
}

static int add_role(scmp_filter_ctx ctx, enum thread_role role, char *err, size_t errlen)
{
	const struct role_policy *p = &policies[role];
	for (int l = 0; l < 3 && p->calls[l]; l++)
		for (const char *const *c = p->calls[l]; *c; c++) {
			int r = add_call(ctx, *c, err, errlen);
			if (r && r != -EEXIST)
				return r;
		}
	return add_ioctls(ctx, p->ioctls);
}

static scmp_filter_ctx build(enum thread_role role, char *err, size_t errlen)
{
	if ((unsigned)role >= THREAD_NR_ROLES) {
		snprintf(err, errlen, "no such role %d", (int)role);
		return NULL;
	}
	*err = '\0';
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	int r = 0;
	for (const char *const *c = base_calls; !r && *c; c++)
		r = add_call(ctx, *c, err, errlen);
	if (!r)
		r = add_ioctls(ctx, base_ioctls);
	if (!r)
		r = add_role(ctx, role, err, errlen);
	for (int o = 0; !r && role == THREAD_SPAWNER && o < THREAD_NR_ROLES; o++)
		if (o != THREAD_MAIN && o != THREAD_SPAWNER)
			r = add_role(ctx, o, err, errlen);
	if (!r && role == THREAD_SPAWNER)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r) {
		if (r != -EINVAL || !*err)
			snprintf(err, errlen, "%s filter: %s", thread_role_name(role), strerror(-r));
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

int seccomp_policy_check(enum thread_role role, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = build(role, err, errlen);
	if (!ctx)
		return -EINVAL;
	seccomp_release(ctx);
	return 0;
}

int seccomp_policy_load(enum thread_role role)
{
	char err[128];
	scmp_filter_ctx ctx = build(role, err, sizeof(err));
	if (!ctx) {
		vm_log("sandbox: %s", err);
		return -EINVAL;
	}
	int r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

#define MAX_NR 1024

static void count_list(const char *const *c, bool *seen, int *n)
{
	for (; c && *c; c++) {
		int nr = seccomp_syscall_resolve_name(*c);
		if (nr >= 0 && nr < MAX_NR && !seen[nr]) {
			seen[nr] = true;
			++*n;
		}
	}
}

int seccomp_policy_count(enum thread_role role)
{
	static bool seen[MAX_NR];
	int n = 0;
	if ((unsigned)role >= THREAD_NR_ROLES)
		return -EINVAL;
	memset(seen, 0, sizeof(seen));
	count_list(base_calls, seen, &n);
	for (int o = 0; o < THREAD_NR_ROLES; o++) {
		if (o != (int)role && !(role == THREAD_SPAWNER && o != THREAD_MAIN))
			continue;
		for (int l = 0; l < 3; l++)
			count_list(policies[o].calls[l], seen, &n);
	}
	return n;
}

/* ---- the trap ------------------------------------------------------------------------ */

/* Names resolved up front: libseccomp's resolver allocates, which a signal handler that
 * may have interrupted malloc must not. */
static char *sys_names[MAX_NR];

static size_t put(char *buf, size_t at, size_t len, const char *s)
{
	while (*s && at + 1 < len)
		buf[at++] = *s++;
	buf[at] = '\0';
	return at;
}

static size_t put_num(char *buf, size_t at, size_t len, long v)
{
	char d[24];
	int i = sizeof(d) - 1;
	bool neg = v < 0;
	unsigned long u = neg ? -(unsigned long)v : (unsigned long)v;
	d[i] = '\0';
	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u && i > 1);
	if (neg)
		d[--i] = '-';
	return put(buf, at, len, d + i);
}

static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char buf[256];
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < MAX_NR && sys_names[nr] ? sys_names[nr] : "?";
	size_t at = put(buf, 0, sizeof(buf), "minivmm: sandbox: forbidden system call ");
	at = put(buf, at, sizeof(buf), name);
	at = put(buf, at, sizeof(buf), " (");
	at = put_num(buf, at, sizeof(buf), nr);
	at = put(buf, at, sizeof(buf), ") in thread ");
	at = put(buf, at, sizeof(buf), thread_name_self());
	at = put(buf, at, sizeof(buf), " (role ");
	at = put(buf, at, sizeof(buf), thread_role_name(thread_role_self()));
	at = put(buf, at, sizeof(buf), "); stopping\n");
	term_restore();
	if (write(STDERR_FILENO, buf, at) < 0) {
		/* nothing left to tell */
	}
	_exit(VM_EXIT_CRASH);
}

int seccomp_trap_install(void)
{
	static bool done;
	if (done)
		return 0;
	for (int nr = 0; nr < MAX_NR; nr++)
		sys_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	struct sigaction sa = { .sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO };
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return -errno;
	done = true;
	return 0;
}
