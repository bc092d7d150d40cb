/* What the files of the FUSE server share: the server, the request being handled, the
 * inode and handle tables, and the ops the dispatch table points at.  Nothing outside fs/
 * includes this; the public contract is fs/fuse.h.
 *
 * Error convention: every internal function returns a negative errno on failure. */
#ifndef MINIVMM_FS_INTERNAL_H
#define MINIVMM_FS_INTERNAL_H
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fs/fuse.h"

/* ---- inodes (inode.c) ---------------------------------------------------------------- */

/* Identity of a host inode.  The mount id keeps two mounts of the same device (bind
 * mounts inside the share, or btrfs subvolumes) apart when statx can tell us. */
struct fs_key {
	uint64_t dev, ino, mnt;
};

struct fs_plock;                /* one lock owner's open file description, lock.c */

/* What a host mount point inside the share is to the guest (mounts.c). */
enum fs_mnt {
	FS_MNT_PLAIN,           /* not a mount root, or a file bind-mounted over a file */
	FS_MNT_SUBMOUNT,        /* a directory announced with FUSE_ATTR_SUBMOUNT */
	FS_MNT_SEALED,          /* a directory the guest may stat and mount over, not enter */
};

struct fs_inode {
	int fd;                 /* O_PATH|O_NOFOLLOW: never used for I/O, only as an anchor */
	uint32_t idx, gen;      /* nodeid = gen << 32 | idx: a reused slot gets a new id */
	mode_t type;            /* S_IFMT bits; fixed for the life of a host inode */
	uint8_t mnt;            /* enum fs_mnt, fixed when the inode is first looked up */
	struct fs_key key;
	uint64_t nlookup;       /* the guest's lookup count */
	uint32_t refs;          /* 1 while nlookup > 0, + requests and handles using it */
	bool hashed;            /* findable by key (only while nlookup > 0) */
	struct fs_inode *hnext; /* hash chain, or free list */
	pthread_mutex_t plock_mu;
	struct fs_plock *plocks;
};

struct fs_itable {
	pthread_mutex_t mu;
	struct fs_inode **slot; /* index = low 32 bits of a nodeid; 0 is never used */
	uint32_t nslot, cap;
	struct fs_inode *free;  /* released slots, reused LIFO with a bumped generation */
	struct fs_inode **bucket;
	uint32_t nbucket, count;
};

/* ---- open files and directories (inode.c) -------------------------------------------- */

enum fs_handle_kind { FS_HANDLE_FILE = 1, FS_HANDLE_DIR = 2 };

struct fs_handle {
	int fd;
	uint32_t idx, gen;      /* fh = gen << 32 | idx, like nodeids */
	enum fs_handle_kind kind;
	bool live;              /* false once released: lookups fail, the fd closes at refs 0 */
	uint32_t refs;
	struct fs_inode *ino;   /* holds a ref */
	struct fs_handle *fnext;
	/* Directory stream (dir.c): mu serialises the fd's position between READDIRs.  No
	 * buffer lives here: an idle handle costs its fd and this struct only. */
	pthread_mutex_t mu;
};

struct fs_htable {
	pthread_mutex_t mu;
	struct fs_handle **slot;
	uint32_t nslot, cap;
	struct fs_handle *free;
};

/* ---- the server ---------------------------------------------------------------------- */

struct fuse_server {
	struct fuse_config cfg;
	char *path;             /* cfg.path, owned */
	int rootfd;             /* O_PATH of the share */
	int procfd;             /* /proc/self/fd, to reopen O_PATH fds */
	char *rootpath;         /* the share as the kernel names it, to vet ".." */
	size_t rootlen;
	bool switch_creds;      /* running as root: create files as the requesting uid/gid */
	atomic_bool no_openat2; /* the host kernel lacks openat2: O_NOFOLLOW per component */
	uint64_t timeout;       /* entry/attr validity, seconds */

	pthread_mutex_t init_mu;
	atomic_bool inited;
	uint32_t minor;         /* negotiated protocol minor */
	atomic_uint_fast64_t flags; /* negotiated INIT flags */

	struct fs_itable it;
	struct fs_htable ht;
	struct fs_inode *root;

	atomic_uint nfds;       /* fds held for the guest (inodes, handles, lock owners) */

	struct fs_dax *dax;     /* the DAX window's state, NULL without one (dax.c) */

	/* Parked blocking locks (lockwait.c), all under lw_mu: waiting (or answering), and
	 * finished but not yet joined; nlw counts both (the FUSE_LOCK_WAITERS bound). */
	pthread_mutex_t lw_mu;
	pthread_cond_t lw_cv;
	struct fs_waiter *lw_live, *lw_dead;
	unsigned nlw;
	bool lw_closed;         /* fuse_abandon_waiters ran: park nothing more */
	/* INTERRUPTs that found nothing to interrupt: hiprio is a queue of its own, so one
	 * can overtake its request, which then is not parked but answered EINTR. */
	uint64_t lw_early[16];
	unsigned lw_nearly;
};

/* ---- one request (fuse.c) ------------------------------------------------------------ */

/* INIT's max_write; a WRITE carrying more is refused (EINVAL). */
#define FUSE_MAX_WRITE  (1u << 20)
/* No request a kernel sends is longer (a WRITE's headers and payload, or a SETXATTR's
 * 64 KiB value); anything longer is refused before it is read. */
#define FUSE_MAX_REQ    (FUSE_MAX_WRITE + 4096)

union fuse_args {
	struct fuse_forget_in forget;
	struct fuse_getattr_in getattr;
	struct fuse_setattr_in setattr;
	struct fuse_mknod_in mknod;
	struct fuse_mkdir_in mkdir;
	struct fuse_rename_in rename;
	struct fuse_rename2_in rename2;
	struct fuse_link_in link;
	struct fuse_open_in open;
	struct fuse_create_in create;
	struct fuse_read_in read;
	struct fuse_write_in write;
	struct fuse_release_in release;
	struct fuse_flush_in flush;
	struct fuse_fsync_in fsync;
	struct fuse_setxattr_in setxattr;
	struct fuse_getxattr_in getxattr;
	struct fuse_lk_in lk;
	struct fuse_access_in access;
	struct fuse_init_in init;
	struct fuse_interrupt_in interrupt;
	struct fuse_batch_forget_in batch_forget;
	struct fuse_fallocate_in fallocate;
	struct fuse_lseek_in lseek;
	struct fuse_copy_file_range_in copy;
	struct fuse_syncfs_in syncfs;
	struct fuse_setupmapping_in setupmapping;
	struct fuse_removemapping_in removemapping;
	uint8_t raw[96];
};

struct fuse_req {
	struct fuse_server *s;
	struct fuse_in_header h;    /* copied once; never re-read from the guest */
	union fuse_args arg;        /* the op's fixed arguments, copied once */
	const struct iovec *in, *out;
	int nin, nout;
	size_t out_cap;             /* writable bytes in `out` */
	size_t tailoff, taillen;    /* what follows the fixed arguments, in the request */
	struct fs_inode *ino;       /* h.nodeid, resolved and referenced for OP_NODE ops */
	const char *name, *name2;   /* validated, in local memory */
	const char *value;          /* SETXATTR value, in local memory */
	size_t valuelen;
	size_t extoff, extlen;      /* request extensions (h.total_extlen), after the tail */
	bool ro;
	/* What a lock that would wait may do: block this thread (fuse_handle), be parked
	 * with this cookie (fuse_handle_async), or neither (EAGAIN). */
	enum { REQ_BLOCK, REQ_PARK, REQ_NOWAIT } wait;
	void *cookie;
};

/* A handler's result: bytes of reply payload it wrote, a negative errno, or one of these
 * (FUSE_PARKED: answered later, through cfg.complete). */
#define FUSE_NOREPLY 0x7fffffff
#define FUSE_PARKED  0x7ffffffe

/* Write a reply header (no payload) with `err` for `unique`; the bytes written (0 when the
 * buffer cannot take it). */
size_t fuse_reply_err(struct fuse_server *s, const struct iovec *out, int nout,
		      uint64_t unique, int err);

typedef int (*fuse_op_fn)(struct fuse_req *r);

/* Reply payload (after the fuse_out_header) at byte `off`; the op's minimum reply size was
 * checked before it ran, so fixed replies always fit. */
int req_put(struct fuse_req *r, size_t off, const void *src, size_t n);
/* Bytes of payload the guest's reply buffer can take. */
size_t req_room(const struct fuse_req *r);
/* Copy `n` request bytes at tail offset `off` into local memory. */
int req_get_tail(struct fuse_req *r, size_t off, void *dst, size_t n);
/* iovecs (at most `max`) covering `len` bytes of the request tail / reply payload from
 * `off`, for zero-copy preadv/pwritev; returns the count or a negative errno. */
int req_tail_iov(const struct fuse_req *r, size_t off, size_t len, struct iovec *dst, int max);
int req_out_iov(const struct fuse_req *r, size_t off, size_t len, struct iovec *dst, int max);
/* Copy `n` bytes of the request's extensions at offset `off` into local memory. */
int req_get_ext(const struct fuse_req *r, size_t off, void *dst, size_t n);
uint64_t req_flags(const struct fuse_req *r);

/* ---- inode and handle tables (inode.c) ----------------------------------------------- */

int itable_init(struct fuse_server *s, int rootfd, const struct fs_key *key);
void itable_fini(struct fuse_server *s);
uint64_t inode_nodeid(const struct fs_inode *ino);
/* Resolve a nodeid the guest sent: a counted reference, or NULL (ESTALE). */
struct fs_inode *inode_get(struct fuse_server *s, uint64_t nodeid);
void inode_ref(struct fuse_server *s, struct fs_inode *ino);
void inode_put(struct fuse_server *s, struct fs_inode *ino);
/* Take one guest lookup of the inode `fd` (O_PATH, consumed) refers to: the existing
 * inode with that key, or a new one.  Returns a counted reference in *out. */
int inode_intern(struct fuse_server *s, int fd, const struct fs_key *key, mode_t type,
		 enum fs_mnt mnt, struct fs_inode **out);
void inode_forget(struct fuse_server *s, uint64_t nodeid, uint64_t n);
/* DESTROY: every inode but the root loses all its lookups, every handle is released. */
void itable_forget_all(struct fuse_server *s);
/* One live inode (referenced, the root first) per host file system (st_dev) the table
 * holds inodes of, a directory where there is one; at most `max` of them. */
#define FS_SYNC_MAX 256
int itable_per_fs(struct fuse_server *s, struct fs_inode **v, int max);

int handle_new(struct fuse_server *s, enum fs_handle_kind kind, int fd, struct fs_inode *ino,
	       uint64_t *fh);
struct fs_handle *handle_get(struct fuse_server *s, uint64_t fh, enum fs_handle_kind kind);
/* fsync/fdatasync (FUSE_FSYNC_FDATASYNC) of a file or directory handle (fs/file.c). */
int handle_fsync(struct fuse_req *r, enum fs_handle_kind kind);
/* The shared end of OPEN and OPENDIR: register `fd` as a handle and reply (fs/file.c). */
int fs_reply_open(struct fuse_req *r, enum fs_handle_kind kind, int fd);
void handle_put(struct fuse_server *s, struct fs_handle *h);
int handle_release(struct fuse_server *s, uint64_t fh, enum fs_handle_kind kind);

/* fds guests can make us hold: one budget shared by every server of the process, so the
 * VMM keeps a reserve whatever the guests do; ENFILE beyond it. */
void fd_budget_set(unsigned max);
int fd_reserve(struct fuse_server *s);
void fd_unreserve(struct fuse_server *s);
/* A server's fds are closed wholesale (itable_fini): give back all it held. */
void fd_unreserve_all(struct fuse_server *s);

/* ---- host access (resolve.c) --------------------------------------------------------- */

/* One name (no '/', not "." or ".." unless the caller vetted it) below dirfd, never
 * following a symlink or crossing out of dirfd. */
int fs_openat(struct fuse_server *s, int dirfd, const char *name, int flags, mode_t mode);
/* Open an inode for I/O: regular files and directories only. */
int fs_reopen(struct fuse_server *s, struct fs_inode *ino, int flags);
int fs_statx(int fd, struct statx *stx);
void fs_key_of(const struct statx *stx, struct fs_key *key);
void fs_fill_attr(struct fuse_attr *a, const struct statx *stx);
void fs_fill_entry(struct fuse_server *s, struct fuse_entry_out *e, const struct fs_inode *ino,
		   const struct statx *stx);
void fs_procname(char *buf, size_t len, int fd);
int fs_parent_vet(struct fuse_server *s, int fd);
int fs_open_flags(const struct fuse_req *r, uint32_t flags, bool create);
uint32_t fs_fopen_flags(const struct fuse_server *s, bool dir);
int fs_kill_suidgid(int fd);
/* One lookup of `name` in `dir`: entry reply filled, one guest lookup taken. */
int fs_lookup(struct fuse_server *s, struct fs_inode *dir, const char *name,
	      struct fuse_entry_out *e);

/* ---- mount points (mounts.c) -------------------------------------------------------- */

/* Is `fd` (statx'd into stx) on a kernel pseudo file system (procfs,
 * sysfs, devtmpfs, cgroup, ...)?  Also true when it cannot be told. */
bool fs_is_pseudo_fs(int fd, const struct statx *stx);
/* What the inode `fd` just resolved by name in `dir` (through ".." when dotdot) is to the
 * guest: an enum fs_mnt, or -EACCES when it must not be handed out at all. */
int fs_mount_policy(struct fuse_server *s, int fd, const struct statx *stx,
		    const struct fs_inode *dir, bool dotdot);

/* ---- DAX (dax.c) --------------------------------------------------------------------- */

struct fs_dax;
/* From the config's window (none: nothing to do); the window is cleared of mappings. */
int fs_dax_init(struct fuse_server *s);
void fs_dax_fini(struct fuse_server *s);
/* Every mapping removed (DESTROY: the guest let go of them all). */
void fs_dax_clear(struct fuse_server *s);
/* Does [p, p+len) touch any DAX window of this process (this server's or another's)?
 * Such memory is never memcpy'd (see dax.c). */
bool fs_dax_overlaps(const struct fuse_server *s, const void *p, size_t len);
/* log2 of the mapping granularity (INIT's map_alignment); 0 without a window. */
uint64_t fs_dax_page_shift(const struct fuse_server *s);

/* ---- credentials (creds.c) ----------------------------------------------------------- */

/* FUSE 7.38: the caller's supplementary group (the parent directory's, when the caller is
 * in it) comes with MKNOD, MKDIR, SYMLINK and CREATE.  Debian 12's header predates it. */
#ifndef FUSE_CREATE_SUPP_GROUP
#define FUSE_CREATE_SUPP_GROUP  (1ULL << 34)
#define FUSE_EXT_GROUPS         32
#endif
#define CREDS_GROUPS_SAVED      32      /* this thread's groups kept without malloc */

struct fs_creds {
	bool switched;
	uint32_t old_uid, old_gid;
	bool groups_set;        /* this thread's supplementary groups replaced */
	int ngroups;            /* ... and what they were */
	gid_t *groups;          /* `saved` or malloc'd */
	gid_t saved[CREDS_GROUPS_SAVED];
};

/* Around an op that creates an inode: this thread's fsuid/fsgid become the requester's,
 * its supplementary groups the ones the guest sent (FUSE_CREATE_SUPP_GROUP) or none, and
 * its umask the guest's.  `*mode` is adjusted when the umask cannot be per-thread.  Only
 * this thread's credentials change (raw syscalls), and creds_leave restores them all. */
int creds_enter(const struct fuse_req *r, struct fs_creds *c, uint32_t umask, mode_t *mode);
void creds_leave(struct fs_creds *c);
/* `mode` (with its S_IFMT type) as the share lets the guest store it: unchanged with
 * suid=on; otherwise without setuid, and without setgid where it is setgid-exec (on a
 * non-directory with group-exec). */
mode_t creds_safe_mode(const struct fuse_server *s, mode_t mode);
/* May the guest set this xattr?  Not security.capability unless suid=on. */
bool creds_xattr_allowed(const struct fuse_server *s, const char *name);

/* ---- mapped device nodes (node.c) --------------------------------------------------- */

/* The attribute that makes an inert regular file stand for a device node (node.c's head
 * comment has the encoding).  The guest can never read, list, set or remove either. */
#define NODE_XATTR_ROOT "trusted.minivmm.node"  /* when minivmm runs as root */
#define NODE_XATTR_USER "user.minivmm.node"     /* otherwise */
#define NODE_XATTR_MAX  64
#define NODE_NOT_MAPPED 1       /* node_chmod: not a mapped node, act on the host file */

struct node_meta {
	mode_t mode;            /* S_IFCHR or S_IFBLK and the permission bits (07777), or no
				 * type and setuid/setgid to show (owner=mapped) */
	uint32_t major, minor;
	bool owner;             /* owner=mapped: uid and gid shown instead of the host's */
	uint32_t uid, gid;
};

/* Version 1 text into buf: its length, or -EINVAL (not a device, numbers out of range). */
int node_encode(const struct node_meta *m, char *buf, size_t len);
/* 0, or -EINVAL for anything but a well-formed version 1 value. */
int node_decode(const char *buf, size_t len, struct node_meta *m);
void node_dev_decode(uint32_t rdev, uint32_t *major, uint32_t *minor);
const char *node_xattr_name(const struct fuse_server *s);
bool node_xattr_hidden(const char *name);
/* Could this host file be a placeholder (regular, empty, no bits beyond 0600)? */
bool node_candidate(const struct statx *stx);
/* Show a placeholder in `stx` (from fd) as its node: 1 if it was one, else 0 (a plain file:
 * logged, rate-limited, if it had a bad attribute or `known_node` says it was a node). */
int node_present(struct fuse_server *s, int fd, struct statx *stx, bool known_node);
/* fs_statx with a placeholder shown as its node (LOOKUP). */
int node_statx(struct fuse_server *s, int fd, struct statx *stx);
/* The same for an inode we hold: the attribute is read only if the guest knows it as a
 * character or block device (GETATTR, SETATTR). */
int node_inode_statx(struct fuse_server *s, const struct fs_inode *ino, struct statx *stx);
/* MKNOD with devices=mapped: a 0600 empty file `name` in dirfd with the attribute for
 * `mode` (type and permission bits) and `rdev` (FUSE's encoding), made as the calling
 * thread's fsuid; like a system call: 0, or -1 with errno (the file is gone on failure). */
int node_create(struct fuse_server *s, int dirfd, const char *name, mode_t mode, uint32_t rdev);
/* SETATTR of a mapped node: chmod changes the stored bits (0 or -errno); NODE_NOT_MAPPED
 * if `ino` is no mapped node.  node_chown drops setuid/setgid-exec from the stored bits
 * after the host file's owner changed (0 for other inodes). */
int node_chmod(struct fuse_server *s, const struct fs_inode *ino, mode_t perm);
int node_chown(struct fuse_server *s, const struct fs_inode *ino);
/* owner=mapped (minivmm not root): a chown the host refuses with EPERM is stored and
 * shown instead; one it takes clears what was stored.  NODE_NOT_MAPPED when owner=mapped
 * is not in force or the inode cannot carry the attribute (the caller chowns the host
 * file), else 0 or -errno.  node_owner_chmod, after the host's chmod: the setuid/setgid
 * bits asked for, kept in the attribute (0 or -errno). */
int node_owner_chown(struct fuse_server *s, const struct fs_inode *ino, uint32_t uid,
		     uint32_t gid);
int node_owner_chmod(struct fuse_server *s, const struct fs_inode *ino, mode_t perm);
/* SETXATTR/REMOVEXATTR: EPERM for minivmm's own names; on a mapped node, no ACL (it would
 * change the host mode) and no user.* (as on any device node). */
int node_xattr_check(struct fuse_server *s, const struct fs_inode *ino, const char *name);
/* A LISTXATTR result without minivmm's names, in place: the new length. */
size_t node_xattr_filter(char *list, size_t len);
/* READDIR's d_type for `name` in the open directory dirfd: DT_CHR/DT_BLK for a placeholder. */
uint8_t node_dtype(struct fuse_server *s, int dirfd, const char *name, uint8_t d_type);

/* ---- ops, one per opcode ------------------------------------------------------------- */

int fsop_lookup(struct fuse_req *r);
int fsop_forget(struct fuse_req *r);
int fsop_batch_forget(struct fuse_req *r);
int fsop_getattr(struct fuse_req *r);
int fsop_setattr(struct fuse_req *r);
int fsop_readlink(struct fuse_req *r);
int fsop_symlink(struct fuse_req *r);
int fsop_mknod(struct fuse_req *r);
int fsop_mkdir(struct fuse_req *r);
int fsop_unlink(struct fuse_req *r);
int fsop_rmdir(struct fuse_req *r);
int fsop_rename(struct fuse_req *r);
int fsop_rename2(struct fuse_req *r);
int fsop_link(struct fuse_req *r);
int fsop_open(struct fuse_req *r);
int fsop_read(struct fuse_req *r);
int fsop_write(struct fuse_req *r);
int fsop_statfs(struct fuse_req *r);
int fsop_release(struct fuse_req *r);
int fsop_fsync(struct fuse_req *r);
int fsop_setxattr(struct fuse_req *r);
int fsop_getxattr(struct fuse_req *r);
int fsop_listxattr(struct fuse_req *r);
int fsop_removexattr(struct fuse_req *r);
int fsop_flush(struct fuse_req *r);
int fsop_opendir(struct fuse_req *r);
int fsop_readdir(struct fuse_req *r);
int fsop_readdirplus(struct fuse_req *r);
int fsop_releasedir(struct fuse_req *r);
int fsop_fsyncdir(struct fuse_req *r);
int fsop_getlk(struct fuse_req *r);
int fsop_setlk(struct fuse_req *r);
int fsop_setlkw(struct fuse_req *r);
int fsop_access(struct fuse_req *r);
int fsop_create(struct fuse_req *r);
int fsop_fallocate(struct fuse_req *r);
int fsop_lseek(struct fuse_req *r);
int fsop_copy_file_range(struct fuse_req *r);
int fsop_syncfs(struct fuse_req *r);
int fsop_setupmapping(struct fuse_req *r);
int fsop_removemapping(struct fuse_req *r);

/* lockwait.c: blocking locks waited for on threads of the server's own.
 * lockwait_park takes `fd` (a dup, closed when the wait ends) and returns FUSE_PARKED or a
 * negative errno.  `how`: a flock() operation, or 0 for F_OFD_SETLKW with `fl`. */
struct fs_waiter;
void lockwait_init(struct fuse_server *s);
int lockwait_park(struct fuse_req *r, int fd, int how, const struct flock *fl);
/* INTERRUPT: end the wait of the parked request `unique` (EINTR), if there is one. */
void lockwait_interrupt(struct fuse_server *s, uint64_t unique);
/* End every wait: answered EINTR, or (abandon) completed FUSE_ABANDONED with nothing
 * written, after which nothing more is parked.  Returns once all have completed. */
void lockwait_cancel_all(struct fuse_server *s, bool abandon);
void lockwait_fini(struct fuse_server *s);

/* lock.c: a lock owner's state goes with FLUSH, or with the inode. */
void plock_drop_owner(struct fuse_server *s, struct fs_inode *ino, uint64_t owner);
void plock_drop_all(struct fuse_server *s, struct fs_inode *ino);

#endif
