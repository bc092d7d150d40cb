/* The sandbox's policy table and per-thread filters.  Each confined case runs in a forked
 * child (a loaded filter cannot be taken back), whose stderr and exit status say whether
 * the SIGSYS handler stopped it and what it named. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/fuse.h"
#include "fs/share.h"
#include "vmm/sandbox.h"
#include "vmm/seccomp_policy.h"
#include "vmm/thread.h"
#include "vmm/vm.h"

Test(sandbox, every_role_builds)
{
	char err[128];
	for (int r = 0; r < THREAD_NR_ROLES; r++) {
		cr_assert_eq(seccomp_policy_check(r, err, sizeof(err)), 0, "role %s: %s",
			     thread_role_name(r), err);
		cr_assert_gt(seccomp_policy_count(r), 20, "role %s", thread_role_name(r));
	}
	cr_assert_neq(seccomp_policy_check(THREAD_NR_ROLES, err, sizeof(err)), 0);
}

/* Threads inherit their creator's filter: the spawner must allow all a role does. */
Test(sandbox, spawner_covers_every_role)
{
	int sp = seccomp_policy_count(THREAD_SPAWNER);
	for (int r = 0; r < THREAD_NR_ROLES; r++)
		if (r != THREAD_MAIN && r != THREAD_SPAWNER)
			cr_assert_gt(sp, seccomp_policy_count(r), "role %s", thread_role_name(r));
	/* Roles are not all the same list. */
	cr_assert_lt(seccomp_policy_count(THREAD_STDIO), seccomp_policy_count(THREAD_FS));
	cr_assert_lt(seccomp_policy_count(THREAD_MAIN), seccomp_policy_count(THREAD_FS));
}

enum probe { P_PTRACE, P_SOCKET, P_OPEN, P_UNLINK, P_IOCTL, P_EXEC_MAP, P_FS_WORK, P_SPAWN_FS,
	      P_FS_RESET };

/* What start-up made before the sandbox was armed, for P_FS_RESET: the share's
 * descriptor and the first session's server (created on the main thread, unconfined). */
static struct share reset_share;
static int reset_rootfd = -1;
static struct fuse_server *reset_srv;

static void reset_setup(void)
{
	char err[256];
	if (share_init(&reset_share, "t", "/tmp", false))
		_exit(93);
	reset_rootfd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
	reset_srv = fuse_server_create_fd(&reset_share.fuse, reset_rootfd, err, sizeof(err));
	if (reset_rootfd < 0 || !reset_srv)
		_exit(94);
}

static long probe_run(enum probe p)
{
	switch (p) {
	case P_PTRACE: return syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
	case P_SOCKET: return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	case P_OPEN: return syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
	case P_UNLINK: return syscall(SYS_unlinkat, AT_FDCWD, "/nonexistent-minivmm", 0);
	case P_IOCTL: { int n; return ioctl(0, FIONREAD, &n); }
	case P_EXEC_MAP:
		return (long)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);
	case P_FS_WORK: {
		/* What an fs worker does: open, stat, xattr read, close; and, as root, the
		 * trusted.* attribute of a mapped device node (fs/node.c), which needs the
		 * capabilities the fs roles keep. */
		int fd = openat(AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
		char v[8];
		if (fd < 0)
			return -1;
		fgetxattr(fd, "user.x", v, sizeof(v));
		close(fd);
		if (geteuid() == 0) {
			char path[] = "/tmp/minivmm-sandbox-node.XXXXXX";
			fd = mkstemp(path);
			if (fd < 0)
				return -1;
			long r = fsetxattr(fd, "trusted.minivmm.node", "1 c 666 1 3", 11, 0);
			close(fd);
			unlinkat(AT_FDCWD, path, 0);
			if (r < 0) {
				perror("sandbox probe: trusted.* attribute of a mapped node");
				return -1;
			}
		}
		return 0;
	}
	case P_FS_RESET: {
		/* A virtio-fs device reset, on the vCPU thread that wrote the status (as
		 * fs/virtio_fs.c does it): the old session's lock waits ended, the old server
		 * destroyed, a fresh one made over the share's descriptor. */
		char err[256];
		fuse_abandon_waiters(reset_srv);
		fuse_server_destroy(reset_srv);
		reset_srv = fuse_server_create_fd(&reset_share.fuse, reset_rootfd, err, sizeof(err));
		if (!reset_srv)
			return -1;
		fuse_server_destroy(reset_srv);
		return 0;
	}
	default: return -1;
	}
}

static void *probe_thread(void *arg)
{
	return (void *)probe_run((enum probe)(long)arg);
}

/* A console thread (no open) starting an fs worker (open): through the spawner, the
 * worker gets its own list, not its creator's. */
static void *spawning_thread(void *arg)
{
	(void)arg;
	pthread_t t;
	void *ret;
	if (thread_start(THREAD_FS, "probe-fs", probe_thread, (void *)(long)P_FS_WORK, &t))
		return (void *)1L;
	pthread_join(t, &ret);
	return ret;
}

/* Fork; the child arms the filters, runs probe p on a thread of `role` (main: itself,
 * sealed) and exits 0.  Returns the child's wait status and its stderr in out. */
static int run_confined(enum thread_role role, enum probe p, char *out, size_t len)
{
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], STDERR_FILENO);
		close(pfd[0]);
		if (p == P_FS_RESET)
			reset_setup();
		if (sandbox_arm_filters())
			_exit(90);
		if (role == THREAD_MAIN) {
			sandbox_seal();
			probe_run(p);
			_exit(0);
		}
		pthread_t t;
		void *(*fn)(void *) = p == P_SPAWN_FS ? spawning_thread : probe_thread;
		if (thread_start(role, "probe", fn, (void *)(long)p, &t))
			_exit(91);
		void *ret;
		pthread_join(t, &ret);
		_exit(ret ? 92 : 0);
	}
	close(pfd[1]);
	size_t n = 0;
	ssize_t r;
	while (n < len - 1 && (r = read(pfd[0], out + n, len - 1 - n)) > 0)
		n += r;
	out[n] = '\0';
	close(pfd[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

static void expect_refused(enum thread_role role, enum probe p, const char *call)
{
	char out[512], want[128];
	int st = run_confined(role, p, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == VM_EXIT_CRASH,
		  "role %s, %s: status 0x%x, stderr '%s'", thread_role_name(role), call, st, out);
	snprintf(want, sizeof(want), "forbidden system call %s (", call);
	cr_assert(strstr(out, want), "role %s: stderr '%s'", thread_role_name(role), out);
	snprintf(want, sizeof(want), "(role %s)", thread_role_name(role));
	cr_assert(strstr(out, want), "role %s: stderr '%s'", thread_role_name(role), out);
	cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: '%s'", out);
}

Test(sandbox, ptrace_refused_in_every_role)
{
	for (int r = 0; r < THREAD_NR_ROLES; r++)
		expect_refused(r, P_PTRACE, "ptrace");
}

Test(sandbox, sockets_refused_in_every_role)
{
	for (int r = 0; r < THREAD_NR_ROLES; r++)
		expect_refused(r, P_SOCKET, "socket");
}

Test(sandbox, role_lists_differ)
{
	expect_refused(THREAD_MAIN, P_OPEN, "openat");
	expect_refused(THREAD_STDIO, P_OPEN, "openat");
	expect_refused(THREAD_VCPU, P_UNLINK, "unlinkat");
	/* Argument checks: ioctl requests outside the role's, executable mappings. */
	expect_refused(THREAD_FS, P_IOCTL, "ioctl");
	expect_refused(THREAD_VCPU, P_IOCTL, "ioctl");
	expect_refused(THREAD_FS, P_EXEC_MAP, "mmap");
}

Test(sandbox, allowed_work_passes)
{
	char out[512];
	int st = run_confined(THREAD_FS, P_FS_WORK, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x, stderr '%s'", st, out);
	st = run_confined(THREAD_VCPU, P_FS_RESET, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x, stderr '%s'", st, out);
	st = run_confined(THREAD_STDIO, P_SPAWN_FS, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x, stderr '%s'", st, out);
}

Test(sandbox, parse)
{
	enum sandbox_mode m;
	cr_assert_eq(sandbox_parse("on", &m), 0);
	cr_assert_eq(m, SANDBOX_ON);
	cr_assert_eq(sandbox_parse("none", &m), 0);
	cr_assert_eq(m, SANDBOX_NONE);
	cr_assert_neq(sandbox_parse("off", &m), 0);
	cr_assert_neq(sandbox_parse("", &m), 0);
}
