/* Host mount points inside a share.
 *
 * Kernel pseudo file systems are interfaces to the host, not files: /proc/PID/mem of
 * minivmm itself, every process's environment, sysfs and cgroup knobs, device nodes.  A
 * guest whose share is the host's "/" (minivmm run) must not enter them, yet it must see
 * their mount points as directories, because it mounts its own /proc, /sys and /dev there.
 * So a name that resolves to the root of such a mount becomes a *sealed* node: a directory
 * whose attributes can be read and over which the guest can mount, but which cannot be
 * listed, looked into, changed or opened (EACCES, fs/fuse.c's dispatcher).  A pseudo file
 * system mounted over a file (a bind mount of /proc/self/environ) is refused outright.
 *
 * Any other mount point is announced to the guest as a submount (FUSE_ATTR_SUBMOUNT: the
 * guest shows a separate mount with its own device number, as the host does) or, with the
 * share's submounts=off, sealed too, so the guest sees only the share's own file system.
 *
 * Only names that resolve to a mount root (or through "..") are checked: getting inside a
 * pseudo file system otherwise means looking up through its root, which is sealed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "fs/internal.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

/* statfs f_type of the pseudo file systems (some are not in <linux/magic.h>). */
static const unsigned long pseudo_magic[] = {
	PROC_SUPER_MAGIC, SYSFS_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC, SECURITYFS_MAGIC,
	CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, BPF_FS_MAGIC, PSTOREFS_MAGIC, EFIVARFS_MAGIC,
	HUGETLBFS_MAGIC, BINFMTFS_MAGIC, SELINUX_MAGIC, SMACK_MAGIC, DEVPTS_SUPER_MAGIC,
	NSFS_MAGIC, AUTOFS_SUPER_MAGIC, RDTGROUP_SUPER_MAGIC, BINDERFS_SUPER_MAGIC, AAFS_MAGIC,
	USBDEVICE_SUPER_MAGIC, OPENPROM_SUPER_MAGIC, XENFS_SUPER_MAGIC,
	0x62656570,     /* configfs */
	0x65735543,     /* fusectl */
	0x19800202,     /* mqueue */
	0x67596969,     /* rpc_pipefs */
	0x6e667364,     /* nfsd */
};

/* The same by mountinfo name: devtmpfs reports tmpfs's magic, so only its name tells. */
static const char *const pseudo_name[] = {
	"proc", "sysfs", "devtmpfs", "debugfs", "tracefs", "securityfs", "cgroup", "cgroup2",
	"bpf", "configfs", "pstore", "efivarfs", "fusectl", "hugetlbfs", "mqueue",
	"binfmt_misc", "selinuxfs", "smackfs", "devpts", "nsfs", "autofs", "rpc_pipefs", "nfsd",
	"resctrl", "binder", "apparmorfs", "usbfs", "openpromfs", "xenfs",
};

static bool magic_is_pseudo(unsigned long type)
{
	for (size_t i = 0; i < sizeof(pseudo_magic) / sizeof(pseudo_magic[0]); i++)
		if (type == pseudo_magic[i])
			return true;
	return false;
}

static bool name_is_pseudo(const char *type)
{
	for (size_t i = 0; i < sizeof(pseudo_name) / sizeof(pseudo_name[0]); i++)
		if (!strcmp(type, pseudo_name[i]))
			return true;
	return false;
}

/* The file system type mountinfo gives mount `mnt`: "ID PARENT MAJ:MIN ROOT POINT OPTS
 * [OPTIONAL...] - TYPE SOURCE SUPEROPTS".  false when the mount is not listed. */
static bool mountinfo_type(uint64_t mnt, char *type, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		char *end, *sep;
		unsigned long long id = strtoull(line, &end, 10);
		if (end == line || id != mnt)
			continue;
		sep = strstr(end, " - ");
		if (!sep)
			break;
		sep += 3;
		end = strchr(sep, ' ');
		if (end)
			*end = '\0';
		snprintf(type, len, "%s", sep);
		found = true;
	}
	free(line);
	fclose(f);
	return found;
}

bool fs_is_pseudo_fs(int fd, const struct statx *stx)
{
	struct statfs st;
	char type[64];

	/* Cannot tell: refuse rather than risk entering one. */
	if (fstatfs(fd, &st))
		return true;
	if (magic_is_pseudo((unsigned long)st.f_type))
		return true;
	return (stx->stx_mask & STATX_MNT_ID) &&
	       mountinfo_type(stx->stx_mnt_id, type, sizeof(type)) && name_is_pseudo(type);
}

/* Is the inode the root of a mount (other than the one `dir` is on)?  The kernel says so
 * since 5.8; before that, a different device or mount id than the parent's gives it away. */
static bool is_mount_root(const struct statx *stx, const struct fs_inode *dir)
{
	struct fs_key key;

	if (stx->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return stx->stx_attributes & STATX_ATTR_MOUNT_ROOT;
	fs_key_of(stx, &key);
	return key.dev != dir->key.dev || (key.mnt && dir->key.mnt && key.mnt != dir->key.mnt);
}

int fs_mount_policy(struct fuse_server *s, int fd, const struct statx *stx,
		    const struct fs_inode *dir, bool dotdot)
{
	bool isdir = S_ISDIR(stx->stx_mode);
	bool root = is_mount_root(stx, dir);

	struct statfs st;

	if (!root) {
		/* ".." stays inside the share (fs_parent_vet), which is inside no pseudo file
		 * system; checked anyway, cheaply (the type, not mountinfo). */
		if (dotdot && (fstatfs(fd, &st) || magic_is_pseudo((unsigned long)st.f_type)))
			return -EACCES;
		return FS_MNT_PLAIN;
	}
	if (fs_is_pseudo_fs(fd, stx))
		return isdir ? FS_MNT_SEALED : -EACCES;
	if (s->cfg.no_submounts)
		return isdir ? FS_MNT_SEALED : -EACCES;
	/* A file bind-mounted over another is just that file to the guest. */
	return isdir ? FS_MNT_SUBMOUNT : FS_MNT_PLAIN;
}
