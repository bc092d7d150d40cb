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
 * Only when running as root: a non-root VMM cannot take other users' ids, and then files
 * are created as the invoking user (documented behaviour). */
#include <errno.h>
#include <sched.h>
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

int creds_enter(const struct fuse_req *r, struct fs_creds *c, uint32_t umask_, mode_t *mode)
{
	long gid_prev, uid_prev;

	c->switched = false;
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
	/* Workers run with fsuid/fsgid 0 between requests: a root guest needs no switch. */
	if (r->h.uid == 0 && r->h.gid == 0)
		return 0;
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
	return -EPERM;
}

void creds_leave(struct fs_creds *c)
{
	int saved = errno;

	if (c->switched) {
		syscall(SYS_setfsuid, c->old_uid);
		syscall(SYS_setfsgid, c->old_gid);
	}
	errno = saved;
}
