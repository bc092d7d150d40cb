/* The process sandbox: mount namespace and new root, capabilities, no_new_privs, file
 * limit; the per-role seccomp lists live in vmm/seccomp_policy.c.  See vmm/sandbox.h and
 * README "Security". */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs/share.h"
#include "vmm/launch.h"
#include "vmm/sandbox.h"
#include "vmm/seccomp_policy.h"
#include "vmm/vm.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE   1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

/* Where the new root is assembled: any directory of the private namespace will do, as
 * the shares are cloned mount trees taken before it is covered. */
#define NEWROOT "/tmp"

static bool armed;
static bool as_root;
static bool in_ns;
static char share_paths[MACHINE_MAX_VIRTIO][16];

bool sandbox_armed(void)
{
	return armed;
}

int sandbox_parse(const char *s, enum sandbox_mode *mode)
{
	if (!strcmp(s, "on"))
		*mode = SANDBOX_ON;
	else if (!strcmp(s, "none"))
		*mode = SANDBOX_NONE;
	else
		return -EINVAL;
	return 0;
}

const char *sandbox_share_path(int i, const char *path)
{
	return in_ns && i >= 0 && i < MACHINE_MAX_VIRTIO ? share_paths[i] : path;
}

/* What creating files as the guest's users needs (fs/creds.c switches fsuid/fsgid and
 * groups per request), and CAP_SYS_ADMIN for the one trusted.* attribute the server
 * keeps on the host (fs/node.c: mapped device nodes; the guest can neither see nor set
 * it, and its own trusted.* requests are refused); only threads that run FUSE requests
 * keep them, only as root, and their filter allows no mount, ioctl or other
 * administration call. */
#define SHARE_CAPS ((1u << CAP_CHOWN) | (1u << CAP_DAC_OVERRIDE) | (1u << CAP_FOWNER) | \
		    (1u << CAP_FSETID) | (1u << CAP_SETGID) | (1u << CAP_SETUID) | \
		    (1u << CAP_MKNOD) | (1u << CAP_SETFCAP) | (1u << CAP_SYS_ADMIN))

static int caps_set(uint32_t caps)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { { .effective = caps, .permitted = caps } };
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

static uint32_t role_caps(enum thread_role role)
{
	if (!as_root)
		return 0;
	switch (role) {
	case THREAD_FS: case THREAD_QUEUE: case THREAD_LOCK: case THREAD_SPAWNER:
		return SHARE_CAPS;
	default:
		return 0;
	}
}

int sandbox_thread_enter(enum thread_role role)
{
	int r = caps_set(role_caps(role));
	if (r)
		return r;
	return seccomp_policy_load(role);
}

/* The new root: an empty tmpfs with each share's (recursively cloned) tree at /sN and our
 * own /proc/self/fd (the FUSE server reopens O_PATH fds through it) and mountinfo (to tell
 * pseudo file systems apart).  Nothing else of the
 * host is reachable by path, and ".." at a share's root stays there. */
static int ns_setup(const struct share *sh, int n, char *err, size_t errlen)
{
	int trees[MACHINE_MAX_VIRTIO], i, made = 0;
	char p[64];
	/* Root without CAP_SYS_ADMIN (a container) cannot: carry on with the filters. */
	if (unshare(CLONE_NEWNS) < 0) {
		snprintf(err, errlen, "unshare(CLONE_NEWNS): %s", strerror(errno));
		return 1;
	}
	/* Nothing we mount leaves; the host's later mounts still reach the shares. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
		snprintf(err, errlen, "making / a slave mount: %s", strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++) {
		trees[i] = (int)syscall(SYS_open_tree, AT_FDCWD, sh[i].path,
					OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (trees[i] < 0) {
			snprintf(err, errlen, "cloning share %s: %s", sh[i].path, strerror(errno));
			goto fail;
		}
		made++;
	}
	if (mount("minivmm", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=0755,size=64k") < 0) {
		snprintf(err, errlen, "tmpfs on " NEWROOT ": %s", strerror(errno));
		goto fail;
	}
	for (i = 0; i < n; i++) {
		snprintf(p, sizeof(p), NEWROOT "/s%d", i);
		if (mkdir(p, 0755) < 0 ||
		    syscall(SYS_move_mount, trees[i], "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
			snprintf(err, errlen, "mounting share %s: %s", sh[i].path, strerror(errno));
			goto unmount;
		}
		snprintf(share_paths[i], sizeof(share_paths[i]), "/s%d", i);
	}
	if (mkdir(NEWROOT "/proc", 0755) < 0 || mkdir(NEWROOT "/proc/self", 0755) < 0 ||
	    mkdir(NEWROOT "/proc/self/fd", 0755) < 0 ||
	    mount("/proc/self/fd", NEWROOT "/proc/self/fd", NULL, MS_BIND, NULL) < 0) {
		snprintf(err, errlen, "/proc/self/fd in the new root: %s", strerror(errno));
		goto unmount;
	}
	/* And mountinfo: the only way to tell devtmpfs (tmpfs's magic) from a plain tmpfs,
	 * so that a share never enters the host's /dev (fs/mounts.c). */
	int mi = open(NEWROOT "/proc/self/mountinfo", O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
	if (mi < 0 || close(mi) < 0 ||
	    mount("/proc/self/mountinfo", NEWROOT "/proc/self/mountinfo", NULL, MS_BIND, NULL) < 0) {
		snprintf(err, errlen, "/proc/self/mountinfo in the new root: %s", strerror(errno));
		goto unmount;
	}
	/* Now, while /proc/sys is still in view (fs/fuse.c does the same outside the sandbox). */
	vm_nofile_raise();
	if (chdir(NEWROOT) < 0) {
		snprintf(err, errlen, "chdir: %s", strerror(errno));
		goto unmount;
	}
	/* pivot_root stacks the old root under the new one; detaching it leaves nothing of
	 * the host in this namespace.  Where the root is no mount point pivot_root refuses;
	 * chroot is the fallback (escaping it needs CAP_SYS_CHROOT and chroot(2), both gone
	 * once sealed). */
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0) {
			snprintf(err, errlen, "detaching the old root: %s", strerror(errno));
			return -1;      /* too late to undo; the caller dies */
		}
	} else if (chroot(".") < 0) {
		snprintf(err, errlen, "pivot_root and chroot: %s", strerror(errno));
		return -1;
	}
	if (chdir("/") < 0) {
		snprintf(err, errlen, "chdir: %s", strerror(errno));
		return -1;
	}
	mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	      NULL);
	for (i = 0; i < n; i++)
		close(trees[i]);
	return 0;
unmount:
	umount2(NEWROOT, MNT_DETACH);
fail:
	for (i = 0; i < made; i++)
		close(trees[i]);
	return 1;       /* undone: carry on with the filters only */
}

int sandbox_arm_filters(void)
{
	int r = seccomp_trap_install();
	if (r)
		return r;
	as_root = geteuid() == 0;
	armed = true;
	r = thread_spawner_start();
	return r ? -r : 0;
}

void sandbox_enter(enum sandbox_mode mode, const struct share *shares, int nshares, bool quiet)
{
	if (mode == SANDBOX_NONE) {
		vm_log("warning: --sandbox none: no seccomp filters, no mount namespace, all "
		       "capabilities kept; a guest that compromises minivmm has this user's rights");
		return;
	}
	char err[256];
	if (geteuid() == 0) {
		int r = ns_setup(shares, nshares, err, sizeof(err));
		if (r < 0)
			die("sandbox: %s", err);
		if (r > 0)
			vm_log("sandbox: no mount namespace (%s); seccomp filters only", err);
		in_ns = r == 0;
	} else if (!quiet) {
		vm_log("sandbox: no mount namespace (needs root); seccomp filters only");
	}
	int r = sandbox_arm_filters();
	if (r)
		die("sandbox: cannot start: %s", strerror(-r));
}

void sandbox_seal(void)
{
	if (!armed)
		return;
	/* The FUSE servers took their budget from the current limit: nothing may raise it. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_max = rl.rlim_cur;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("sandbox: no_new_privs: %s", strerror(errno));
	int r = sandbox_thread_enter(THREAD_MAIN);
	if (r)
		die("sandbox: cannot confine the main thread: %s", strerror(-r));
	thread_self_confined();
}
