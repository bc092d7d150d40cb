/* Per-request credentials for the ops that create inodes (MKNOD, MKDIR, SYMLINK, CREATE),
 * so a new file belongs to the guest user who made it and the host's permission checks
 * on the parent directory are that user's.
 *
 * fsuid/fsgid are per-thread in the kernel, but glibc's setfsuid()/setfsgid() wrappers
 * broadcast to every thread of the process (as POSIX wants for set*id); the raw syscalls
 * do not, which is what several worker threads creating files for different guest users
 * at once need.  Likewise the umask lives in the fs_struct shared by all threads: a worker
 * unshares it (CLONE_FS) once, after which its umask is its own and the guest's umask can
 * be applied by the host kernel itself (so a default ACL on the parent still wins over
 * the umask, as POSIX ACLs require).
 *
 * The supplementary groups are per-thread too (and glibc's setgroups() broadcasts like
 * setfsuid()).  A worker keeps minivmm's own (root's) between requests; a request from a
 * non-root guest user runs with the groups the guest sent (FUSE_CREATE_SUPP_GROUP), or
 * with none.  Keeping minivmm's would let the requester write where only minivmm's groups
 * may, and keep a setgid-exec bit in a setgid directory of one of those groups (the
 * kernel keeps it for members): CVE-2022-0358's pattern.
 *
 * Only when running as root: a non-root VMM cannot take other users' ids, and then files
 * are created as the invoking user (documented behaviour).
 *
 * Also here: what the guest may plant on the host (share option suid=, off by default).
 * A setuid file, a setgid one with group-exec, or a file capability in the share is a
 * privilege for whoever runs it on the host, granted by a guest we do not trust that
 * far.  Such mode bits are stripped, silently: a chmod u+s or `tar x` of a setuid binary
 * succeeds without the bit, and the reply carries the mode the host really has. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs/internal.h"

static __thread bool t_fs_tried;
static __thread bool t_fs_private;
/* This thread's umask once private: only creating ops use it and each sets its own, so it
 * is left as the last one set, and set again only when a request wants another (two
 * syscalls saved per create). */
static __thread mode_t t_umask;
/* setfsuid/setfsgid report only the previous id; asking again with an invalid id (-1)
 * changes nothing and tells whether the switch took. */
static long fsid_set(long nr, uint32_t id)
{
	long prev = syscall(nr, id);

	if ((uint32_t)syscall(nr, -1) != id) {
		syscall(nr, prev);
		return -1;
	}
	return prev;
}

/* The groups the guest sent with this request (FUSE_EXT_GROUPS), if it negotiated them;
 * *n = 0 without.  A malformed extension list is EINVAL. */
static int creds_ext_groups(const struct fuse_req *r, gid_t *g, int max, int *n)
{
	struct fuse_ext_header xh;
	uint32_t nr, id;
	size_t off = 0;

	*n = 0;
	if (!(req_flags(r) & FUSE_CREATE_SUPP_GROUP))
		return 0;
	while (off < r->extlen) {
		if (req_get_ext(r, off, &xh, sizeof(xh)))
			return -EINVAL;
		/* Each extension is whole 8-byte units, as total_extlen counts them. */
		if (xh.size < sizeof(xh) || xh.size % 8 || xh.size > r->extlen - off)
			return -EINVAL;
		if (xh.type == FUSE_EXT_GROUPS) {
			if (xh.size < sizeof(xh) + sizeof(nr) ||
			    req_get_ext(r, off + sizeof(xh), &nr, sizeof(nr)))
				return -EINVAL;
			if (nr > (uint32_t)max ||
			    nr > (xh.size - sizeof(xh) - sizeof(nr)) / sizeof(id))
				return -EINVAL;
			for (uint32_t i = 0; i < nr; i++) {
				if (req_get_ext(r, off + sizeof(xh) + sizeof(nr) + i * sizeof(id),
						&id, sizeof(id)))
					return -EINVAL;
				if (id == (uint32_t)-1)
					return -EINVAL;
				g[i] = id;
			}
			*n = (int)nr;
		}
		off += xh.size;
	}
	return 0;
}

/* This thread's supplementary groups become want[0..n): saved in `c` first.  Nothing to
 * do (and nothing saved) when the thread has none and none are wanted, the usual case. */
static int creds_groups_enter(struct fs_creds *c, const gid_t *want, int n)
{
	int have = getgroups(0, NULL);

	c->groups_set = false;
	if (have < 0)
		return -EPERM;
	if (have == 0 && n == 0)
		return 0;
	c->groups = c->saved;
	if (have > CREDS_GROUPS_SAVED) {
		c->groups = malloc((size_t)have * sizeof(gid_t));
		if (!c->groups)
			return -ENOMEM;
	}
	c->ngroups = getgroups(have, c->groups);
	/* The raw syscall: glibc's setgroups() would change every thread of the process. */
	if (c->ngroups < 0 || syscall(SYS_setgroups, (size_t)n, want)) {
		if (c->groups != c->saved)
			free(c->groups);
		return -EPERM;
	}
	c->groups_set = true;
	return 0;
}

static void creds_groups_leave(struct fs_creds *c)
{
	if (!c->groups_set)
		return;
	syscall(SYS_setgroups, (size_t)c->ngroups, c->groups);
	if (c->groups != c->saved)
		free(c->groups);
	c->groups_set = false;
}

int creds_enter(const struct fuse_req *r, struct fs_creds *c, uint32_t umask_, mode_t *mode)
{
	gid_t want[CREDS_GROUPS_SAVED];
	long gid_prev, uid_prev;
	int nwant, ret;

	c->switched = false;
	c->groups_set = false;
	if (!t_fs_tried) {
		t_fs_tried = true;
		t_fs_private = unshare(CLONE_FS) == 0;
		if (t_fs_private) {
			t_umask = umask(0) & 0777;
			umask(t_umask);
		}
	}
	if (t_fs_private) {
		if (t_umask != (umask_ & 0777)) {
			t_umask = umask_ & 0777;
			umask(t_umask);
		}
	} else {
		/* Shared umask: apply the guest's ourselves; the process's applies on top. */
		*mode &= ~(mode_t)(umask_ & 0777);
	}
	if (!r->s->switch_creds)
		return 0;
	/* -1 is "no change" to the kernel: the file would be created as root. */
	if (r->h.uid == (uint32_t)-1 || r->h.gid == (uint32_t)-1)
		goto fail;
	/* Workers run with fsuid/fsgid 0 between requests: a root guest needs no switch.
	 * Nor groups: with fsuid 0 the thread keeps CAP_DAC_OVERRIDE and CAP_FSETID. */
	if (r->h.uid == 0 && r->h.gid == 0)
		return 0;
	/* Groups first: they need CAP_SETGID, which no fsuid change takes away, and a
	 * failure then leaves nothing else to undo. */
	if (r->h.uid != 0) {
		ret = creds_ext_groups(r, want, CREDS_GROUPS_SAVED, &nwant);
		if (!ret)
			ret = creds_groups_enter(c, want, nwant);
		if (ret)
			return ret;
	}
	/* gid first: once fsuid is not 0 we may lack the capabilities to change it. */
	gid_prev = fsid_set(SYS_setfsgid, r->h.gid);
	if (gid_prev < 0)
		goto fail;
	uid_prev = fsid_set(SYS_setfsuid, r->h.uid);
	if (uid_prev < 0) {
		syscall(SYS_setfsgid, gid_prev);
		goto fail;
	}
	c->switched = true;
	c->old_uid = (uint32_t)uid_prev;
	c->old_gid = (uint32_t)gid_prev;
	return 0;
fail:
	creds_groups_leave(c);
	return -EPERM;
}

void creds_leave(struct fs_creds *c)
{
	int saved = errno;

	if (c->switched) {
		syscall(SYS_setfsuid, c->old_uid);
		syscall(SYS_setfsgid, c->old_gid);
		c->switched = false;
	}
	creds_groups_leave(c);
	errno = saved;
}

/* ---- what the guest may plant (suid=) ------------------------------------------------ */

mode_t creds_safe_mode(const struct fuse_server *s, mode_t mode)
{
	if (s->cfg.suid)
		return mode;
	mode &= ~(mode_t)S_ISUID;
	/* On a directory setgid is the inheritance mark; without group-exec it marks
	 * mandatory locking.  Neither runs anything as the group. */
	if (!S_ISDIR(mode) && (mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		mode &= ~(mode_t)S_ISGID;
	return mode;
}

/* Refused rather than stripped: an xattr cannot be half set, and tools that copy
 * capabilities (cp -a, tar --xattrs) report the failure and go on. */
bool creds_xattr_allowed(const struct fuse_server *s, const char *name)
{
	return s->cfg.suid || strcmp(name, "security.capability");
}
