/* What a guest may plant on the host when minivmm runs as root (fs/creds.c): with the
 * default suid=off no setuid or setgid-executable file and no file capability comes out
 * of CREATE, MKNOD, MKDIR or SETATTR; and creating ops run with the requester's
 * supplementary groups (the FUSE_CREATE_SUPP_GROUP extension, or none), never with
 * minivmm's own, on this thread only, restored afterwards. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

#ifndef FUSE_CREATE_SUPP_GROUP
#define FUSE_CREATE_SUPP_GROUP (1ULL << 34)
#endif
#define EXT_GROUPS 32           /* fuse_ext_type FUSE_EXT_GROUPS */

TestSuite(fuse_suid, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_suid_on, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_groups, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_suppext, .init = fx_setup_noinit, .fini = fx_teardown);

/* The same share served again with suid=on (a trusted guest). */
static void serve_suid_on(void)
{
	struct fuse_config cfg;
	char err[256] = "";

	fuse_server_destroy(fx.s);
	memset(&cfg, 0, sizeof(cfg));
	cfg.path = fx.share;
	cfg.cache = FUSE_CACHE_AUTO;
	cfg.xattr = true;
	cfg.suid = true;
	fx.s = fuse_server_create(&cfg, err, sizeof(err));
	cr_assert_not_null(fx.s, "%s", err);
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, NULL), 0);
}

static mode_t host_mode(const char *rel)
{
	struct stat st;

	cr_assert_eq(lstat(fx_path(rel), &st), 0, "%s: %s", rel, strerror(errno));
	return st.st_mode & 07777;
}

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root");
}

/* This thread's supplementary groups, set with the raw syscall (glibc's would set every
 * thread's). */
static void thread_groups(const gid_t *g, size_t n)
{
	cr_assert_eq(syscall(SYS_setgroups, n, g), 0, "setgroups: %s", strerror(errno));
}

static void groups_are(const gid_t *want, int n, const char *when)
{
	gid_t g[16];
	int got = getgroups(16, g);

	cr_assert_eq(got, n, "%s: %d groups, want %d", when, got, n);
	for (int i = 0; i < n; i++)
		cr_assert_eq(g[i], want[i], "%s: group %d is %u, want %u", when, i, g[i], want[i]);
}

static int setattr_mode(uint64_t n, uint32_t mode, struct fuse_attr_out *o)
{
	struct fuse_setattr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.valid = FATTR_MODE;
	sa.mode = mode;
	return fx_setattr(n, &sa, o);
}

static int setx(uint64_t n, const char *name, const void *v, uint32_t size)
{
	struct fuse_setxattr_in in = { .size = size };

	return fx_call(FUSE_SETXATTR, n, &in, FUSE_COMPAT_SETXATTR_IN_SIZE, name,
		       strlen(name) + 1, v, size, NULL, 0, NULL);
}

/* vfs_cap_data revision 2, effective, CAP_NET_RAW permitted */
static const uint32_t cap_net_raw[5] = { 0x02000001, 1u << 13, 0, 0, 0 };

/* ---- suid=off (the default) ------------------------------------------------------------ */

Test(fuse_suid, create_mknod_mkdir_plant_no_setuid)
{
	struct fuse_entry_out e;
	uint64_t fh;

	/* A guest root asks; the host kernel would keep every bit for it. */
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "c", O_RDWR, 04755, &e, &fh), 0);
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(host_mode("c"), 0755, "CREATE left %o", host_mode("c"));
	cr_assert_eq(e.attr.mode & 07777, 0755, "the reply shows what the host has");
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "g", O_RDWR, 06775, NULL, &fh), 0);
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(host_mode("g"), 0775, "CREATE left %o", host_mode("g"));
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "n", S_IFREG | 04711, 0, &e), 0);
	cr_assert_eq(host_mode("n"), 0711, "MKNOD left %o", host_mode("n"));
	cr_assert_eq(e.attr.mode & 07777, 0711);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "m", 02750, 0, NULL), 0);
	cr_assert_eq(host_mode("m"), 0750, "MKNOD left %o", host_mode("m"));
	/* setgid without group-exec marks mandatory locking, not a privilege: kept. */
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "l", S_IFREG | 02644, 0, NULL), 0);
	cr_assert_eq(host_mode("l"), 02644);
	/* Directories: setuid means nothing, setgid is the inheritance mark. */
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 06755, NULL), 0);
	cr_assert_eq(host_mode("d") & S_ISUID, 0);
}

Test(fuse_suid, chmod_strips_setuid_and_setgid_exec)
{
	struct fuse_attr_out o;
	uint64_t f, d;

	fx_write_file("f", "x", 1);
	f = fx_node("f");
	cr_assert_eq(setattr_mode(f, 04755, &o), 0, "stripped, not refused");
	cr_assert_eq(host_mode("f"), 0755, "chmod left %o", host_mode("f"));
	cr_assert_eq(o.attr.mode & 07777, 0755, "the reply shows what the host has");
	cr_assert_eq(setattr_mode(f, 06711, &o), 0);
	cr_assert_eq(host_mode("f"), 0711, "chmod left %o", host_mode("f"));
	cr_assert_eq(setattr_mode(f, 02640, &o), 0);
	cr_assert_eq(host_mode("f"), 02640, "no group-exec: no privilege, kept");
	cr_assert_eq(setattr_mode(f, 02650, &o), 0, "then g+x");
	cr_assert_eq(host_mode("f"), 0650, "chmod left %o", host_mode("f"));
	/* A bit the host put there goes with the guest's next chmod too. */
	cr_assert_eq(chmod(fx_path("f"), 04755), 0);
	cr_assert_eq(setattr_mode(f, 04700, &o), 0);
	cr_assert_eq(host_mode("f"), 0700);

	cr_assert_eq(mkdir(fx_path("d"), 0755), 0);
	d = fx_node("d");
	cr_assert_eq(setattr_mode(d, 02775, &o), 0);
	cr_assert_eq(host_mode("d"), 02775, "setgid directories stay");
	cr_assert_eq(setattr_mode(d, 04775, &o), 0);
	cr_assert_eq(host_mode("d") & S_ISUID, 0);
}

/* chown by a guest root of a setuid file, alone and with a chmod in the same SETATTR. */
Test(fuse_suid, chown_keeps_no_setuid)
{
	struct fuse_setattr_in sa;
	struct fuse_attr_out o;
	struct stat st;
	uint64_t f;

	need_root();
	fx_write_file("f", "x", 1);
	cr_assert_eq(chown(fx_path("f"), 1000, 1000), 0);
	cr_assert_eq(chmod(fx_path("f"), 06755), 0);
	f = fx_node("f");
	memset(&sa, 0, sizeof(sa));
	sa.valid = FATTR_UID | FATTR_GID;
	sa.uid = 0;
	sa.gid = 0;
	cr_assert_eq(fx_setattr(f, &sa, &o), 0);
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(st.st_uid, 0);
	cr_assert_eq(st.st_mode & (S_ISUID | S_ISGID), 0, "chown left %o", st.st_mode & 07777);
	cr_assert_eq(chown(fx_path("f"), 1000, 1000), 0);
	sa.valid = FATTR_MODE | FATTR_UID | FATTR_GID;
	sa.mode = 06755;
	cr_assert_eq(fx_setattr(f, &sa, &o), 0);
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(st.st_uid, 0);
	cr_assert_eq(st.st_mode & 07777, 0755, "chmod+chown left %o", st.st_mode & 07777);
}

Test(fuse_suid, setxattr_security_capability_refused)
{
	char buf[32];
	uint64_t f;

	need_root();
	fx_write_file("f", "x", 1);
	f = fx_node("f");
	cr_assert_eq(setx(f, "security.capability", cap_net_raw, sizeof(cap_net_raw)), -EPERM);
	cr_assert_eq(getxattr(fx_path("f"), "security.capability", buf, sizeof(buf)), -1,
		     "a file capability reached the host");
	/* Dropping one is always fine. */
	if (setxattr(fx_path("f"), "security.capability", cap_net_raw, sizeof(cap_net_raw), 0))
		cr_skip_test("no file capabilities here: %s", strerror(errno));
	cr_assert_eq(fx_call(FUSE_REMOVEXATTR, f, NULL, 0, "security.capability", 20, NULL, 0,
			     NULL, 0, NULL), 0);
	cr_assert_eq(getxattr(fx_path("f"), "security.capability", buf, sizeof(buf)), -1);
}

/* ---- suid=on: what a trusted guest asks for, it gets ----------------------------------- */

Test(fuse_suid_on, bits_and_capabilities_kept)
{
	struct fuse_attr_out o;
	char buf[32];
	uint64_t fh, f;

	serve_suid_on();
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "c", O_RDWR, 04755, NULL, &fh), 0);
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(host_mode("c"), 04755);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "n", S_IFREG | 06755, 0, NULL), 0);
	cr_assert_eq(host_mode("n"), 06755);
	fx_write_file("f", "x", 1);
	f = fx_node("f");
	cr_assert_eq(setattr_mode(f, 04711, &o), 0);
	cr_assert_eq(host_mode("f"), 04711);
	if (geteuid() != 0)
		return;
	if (setxattr(fx_path("c"), "security.capability", cap_net_raw, sizeof(cap_net_raw), 0))
		cr_skip_test("no file capabilities here: %s", strerror(errno));
	cr_assert_eq(setx(f, "security.capability", cap_net_raw, sizeof(cap_net_raw)), 0);
	cr_assert_eq(getxattr(fx_path("f"), "security.capability", buf, sizeof(buf)),
		     (ssize_t)sizeof(cap_net_raw));
}

/* ---- supplementary groups -------------------------------------------------------------- */

/* CVE-2022-0358's pattern: a setgid directory of a group minivmm is in but the requester
 * is not.  The host kernel keeps setgid-exec on the new file only for members of the
 * group, so minivmm's groups must not count.  (suid=on: this is about the groups, not
 * about the mode filter.) */
Test(fuse_groups, setgid_inheritance_uses_the_requesters_groups)
{
	static const gid_t mine[] = { 4242 };
	struct stat st;
	uint64_t fh, d;

	need_root();
	serve_suid_on();
	thread_groups(mine, 1);
	cr_assert_eq(mkdir(fx_path("sg"), 0777), 0);
	cr_assert_eq(chown(fx_path("sg"), 0, 4242), 0);
	cr_assert_eq(chmod(fx_path("sg"), 02777), 0);
	d = fx_node("sg");
	fx.uid = 1000;
	fx.gid = 1000;
	cr_assert_eq(fx_create(d, "f", O_RDWR, 02755, NULL, &fh), 0);
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(stat(fx_path("sg/f"), &st), 0);
	cr_assert_eq(st.st_gid, 4242, "inherits the directory's group");
	cr_assert_eq(st.st_mode & S_ISGID, 0, "setgid-exec kept for a non-member");
	cr_assert_eq(fx_mknod(d, "n", S_IFREG | 02711, 0, NULL), 0);
	cr_assert_eq(stat(fx_path("sg/n"), &st), 0);
	cr_assert_eq(st.st_mode & S_ISGID, 0, "setgid-exec kept for a non-member");
	cr_assert_eq(fx_mkdir(d, "sub", 0755, NULL), 0);
	cr_assert_eq(stat(fx_path("sg/sub"), &st), 0);
	cr_assert_neq(st.st_mode & S_ISGID, 0, "a subdirectory inherits the mark");
	groups_are(mine, 1, "after the requests");
}

/* Creating in a directory only minivmm's group may write to. */
Test(fuse_groups, no_write_access_through_minivmms_groups)
{
	static const gid_t mine[] = { 4242, 4343 };
	uint64_t d;

	need_root();
	thread_groups(mine, 2);
	cr_assert_eq(mkdir(fx_path("g"), 0770), 0);
	cr_assert_eq(chown(fx_path("g"), 0, 4343), 0);
	cr_assert_eq(chmod(fx_path("g"), 0770), 0);
	d = fx_node("g");
	fx.uid = 1000;
	fx.gid = 1000;
	cr_assert_eq(fx_mkdir(d, "x", 0755, NULL), -EACCES);
	cr_assert_eq(fx_create(d, "y", O_RDWR, 0644, NULL, NULL), -EACCES);
	cr_assert_eq(fx_mknod(d, "z", S_IFREG | 0644, 0, NULL), -EACCES);
	cr_assert_eq(fx_symlink(d, "s", "t", NULL), -EACCES);
	cr_assert_eq(access(fx_path("g/x"), F_OK), -1);
	groups_are(mine, 2, "after failed requests");
	/* The requester's own group still works. */
	fx.gid = 4343;
	cr_assert_eq(fx_mkdir(d, "x", 0755, NULL), 0);
	groups_are(mine, 2, "after a request");
	/* A guest root is not switched at all. */
	fx.uid = fx.gid = 0;
	cr_assert_eq(fx_mkdir(d, "r", 0755, NULL), 0);
	groups_are(mine, 2, "after a root request");
	cr_assert_eq(syscall(SYS_setfsuid, -1), 0);
	cr_assert_eq(syscall(SYS_setfsgid, -1), 0);
}

/* More groups than creds.c keeps on the stack: saved on the heap, restored all the same. */
Test(fuse_groups, many_groups_restored)
{
	gid_t mine[40];

	need_root();
	for (int i = 0; i < 40; i++)
		mine[i] = 5000 + (gid_t)i;
	thread_groups(mine, 40);
	fx.uid = 1000;
	fx.gid = 1000;
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, NULL), 0);
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, NULL), -EEXIST);
	{
		gid_t g[64];
		int n = getgroups(64, g);
		cr_assert_eq(n, 40, "%d groups after the requests", n);
		cr_assert_eq(memcmp(g, mine, sizeof(mine)), 0);
	}
}

struct watcher {
	atomic_bool stop, ready;
	atomic_int changed;
};

/* Another thread's groups must not move while this one handles requests. */
static void *watch_groups(void *arg)
{
	struct watcher *w = arg;
	static const gid_t theirs[] = { 777, 778 };
	gid_t g[8];

	if (syscall(SYS_setgroups, 2, theirs))
		atomic_store(&w->changed, -1);
	atomic_store(&w->ready, true);
	while (!atomic_load(&w->stop)) {
		int n = getgroups(8, g);
		if (n != 2 || g[0] != 777 || g[1] != 778)
			atomic_fetch_add(&w->changed, 1);
	}
	return NULL;
}

Test(fuse_groups, other_threads_untouched)
{
	static const gid_t mine[] = { 4242 };
	struct watcher w = { 0 };
	pthread_t t;
	char name[32];

	need_root();
	thread_groups(mine, 1);
	cr_assert_eq(pthread_create(&t, NULL, watch_groups, &w), 0);
	while (!atomic_load(&w.ready))
		sched_yield();
	fx.uid = 1000;
	fx.gid = 1000;
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "d%d", i);
		cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, name, 0755, NULL), 0);
	}
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&w.changed), 0, "the other thread's groups changed %d times",
		     atomic_load(&w.changed));
	groups_are(mine, 1, "after the requests");
}

/* ---- FUSE_CREATE_SUPP_GROUP ------------------------------------------------------------ */

static void init_ext(uint64_t flags, struct fuse_init_out *o)
{
	struct fuse_init_in in;

	memset(&in, 0, sizeof(in));
	in.major = 7;
	in.minor = 38;
	in.max_readahead = 65536;
	in.flags = (uint32_t)flags | FUSE_INIT_EXT;
	in.flags2 = (uint32_t)(flags >> 32);
	memset(o, 0, sizeof(*o));
	cr_assert_eq(fx_call(FUSE_INIT, 0, &in, sizeof(in), NULL, 0, NULL, 0, o, sizeof(*o),
			     NULL), 0);
}

/* MKDIR `name` in `dir` with a groups extension of `n` groups; `size`: the extension
 * header's claim (0: the true size). */
static int mkdir_ext(uint64_t dir, const char *name, const uint32_t *groups, uint32_t n,
		     uint32_t size)
{
	uint8_t req[256], out[sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out)];
	struct fuse_mkdir_in in = { .mode = 0755, .umask = 0 };
	struct fuse_ext_header xh;
	struct fuse_in_header h;
	struct fuse_out_header oh;
	size_t pos = sizeof(h), xlen = (sizeof(xh) + 4 + 4 * (size_t)n + 7) & ~(size_t)7;
	size_t got;

	memset(req, 0, sizeof(req));
	memcpy(req + pos, &in, sizeof(in));
	pos += sizeof(in);
	memcpy(req + pos, name, strlen(name) + 1);
	pos += strlen(name) + 1;
	xh.size = size ? size : (uint32_t)xlen;
	xh.type = EXT_GROUPS;
	memcpy(req + pos, &xh, sizeof(xh));
	memcpy(req + pos + sizeof(xh), &n, 4);
	memcpy(req + pos + sizeof(xh) + 4, groups, 4 * (size_t)n);
	pos += xlen;
	cr_assert_leq(pos, sizeof(req));
	fx_hdr(&h, FUSE_MKDIR, dir, (uint32_t)pos);
	h.total_extlen = (uint16_t)(xlen / 8);
	memcpy(req, &h, sizeof(h));
	got = fx_raw(req, pos, out, sizeof(out));
	cr_assert_geq(got, sizeof(oh));
	memcpy(&oh, out, sizeof(oh));
	return oh.error;
}

Test(fuse_suppext, negotiated_and_honoured)
{
	static const uint32_t member[] = { 4343 }, other[] = { 4242 };
	struct fuse_init_out o;
	uint64_t d;

	need_root();
	init_ext(FUSE_CREATE_SUPP_GROUP, &o);
	cr_assert(o.flags & FUSE_INIT_EXT, "flags2 must be announced");
	cr_assert(o.flags2 & (uint32_t)(FUSE_CREATE_SUPP_GROUP >> 32), "not granted");
	thread_groups(NULL, 0);
	cr_assert_eq(mkdir(fx_path("g"), 0770), 0);
	cr_assert_eq(chown(fx_path("g"), 0, 4343), 0);
	cr_assert_eq(chmod(fx_path("g"), 0770), 0);
	d = fx_node("g");
	fx.uid = 1000;
	fx.gid = 1000;
	cr_assert_eq(mkdir_ext(d, "a", member, 1, 0), 0, "the guest says the caller is in 4343");
	cr_assert_eq(access(fx_path("g/a"), F_OK), 0);
	cr_assert_eq(mkdir_ext(d, "b", other, 1, 0), -EACCES);
	cr_assert_eq(mkdir_ext(d, "c", member, 0, 0), -EACCES, "no group given");
	groups_are(NULL, 0, "after the requests");
	/* Malformed: an extension claiming more than the request has, or less than its
	 * groups need. */
	cr_assert_eq(mkdir_ext(d, "e", member, 1, 64), -EINVAL);
	cr_assert_eq(mkdir_ext(d, "e", member, 1, 4), -EINVAL);
	cr_assert_eq(access(fx_path("g/e"), F_OK), -1);
}

Test(fuse_suppext, not_offered_not_granted)
{
	struct fuse_init_out o;

	init_ext(0, &o);
	cr_assert_eq(o.flags2 & (uint32_t)(FUSE_CREATE_SUPP_GROUP >> 32), 0);
}
