/* Host mount points inside a share (fs/mounts.c), issue 9 finding 5: kernel pseudo file
 * systems (proc, sysfs, devtmpfs, ...) are never entered, their mount points are sealed
 * directories the guest can stat and mount over; other mounts are announced as submounts
 * (FUSE_ATTR_SUBMOUNT), or sealed too with submounts=off.
 *
 * Real mounts: each test runs in its own process (Criterion forks), which first moves to
 * a private mount namespace (unshare + rprivate), so the mounts it makes inside its share
 * vanish with it and no other process sees them.  The unit tests run as root. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/loop.h>

#include "tests/unit/fuse_util.h"

static const char *const mounted[] = { "proc", "sys", "dev", "tmp", "bindproc", "environ",
				       "tmp/deeper", "disk" };

static void ns_private(void)
{
	cr_assert_eq(geteuid(), 0, "these tests mount file systems: run the unit tests as root");
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare(CLONE_NEWNS): %s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "rprivate: %s",
		     strerror(errno));
}

static void mnt(const char *src, const char *rel, const char *type, unsigned long flags)
{
	cr_assert_eq(mount(src, fx_path(rel), type, flags, NULL), 0, "mount %s on %s: %s",
		     type ? type : src, rel, strerror(errno));
}

/* The share holds: proc (procfs), sys (sysfs), dev (devtmpfs), tmp (a tmpfs with a file
 * and, in tmp/deeper, another tmpfs), bindproc (a bind mount of /proc/self) and environ
 * (a file with /proc/self/environ bind-mounted over it), plus plain/f. */
static void make_mounts(void)
{
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(mkdir(fx_path(mounted[i]), 0755), 0);
	fx_write_file("environ", "", 0);
	cr_assert_eq(mkdir(fx_path("plain"), 0755), 0);
	fx_write_file("plain/f", "plain", 5);
	mnt("proc", "proc", "proc", 0);
	mnt("sysfs", "sys", "sysfs", 0);
	mnt("devtmpfs", "dev", "devtmpfs", 0);
	mnt("tmpfs", "tmp", "tmpfs", 0);
	fx_write_file("tmp/inner", "inner", 5);
	cr_assert_eq(mkdir(fx_path("tmp/deeper"), 0755), 0);
	mnt("tmpfs", "tmp/deeper", "tmpfs", 0);
	mnt("/proc/self", "bindproc", NULL, MS_BIND);
	mnt("/proc/self/environ", "environ", NULL, MS_BIND);
}

static void setup_on(void)
{
	ns_private();
	fx_setup();
	make_mounts();
}

static void setup_off(void)
{
	ns_private();
	fx_setup();
	make_mounts();
	/* The same share again, with submounts=off. */
	struct fuse_config cfg = { .path = fx.share, .cache = FUSE_CACHE_AUTO, .xattr = true,
				   .no_submounts = true };
	char err[256];
	fuse_server_destroy(fx.s);
	fx.s = fuse_server_create(&cfg, err, sizeof(err));
	cr_assert_not_null(fx.s, "%s", err);
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, NULL), 0);
}

/* Unmounted before the share is removed, so the removal never walks into /proc. */
static void teardown(void)
{
	if (fx.s) {
		fuse_server_destroy(fx.s);
		fx.s = NULL;
	}
	for (int i = (int)(sizeof(mounted) / sizeof(mounted[0])) - 1; i >= 0; i--)
		umount2(fx_path(mounted[i]), MNT_DETACH);
	fx_teardown();
}

TestSuite(fuse_mounts, .init = setup_on, .fini = teardown);
TestSuite(fuse_mounts_off, .init = setup_off, .fini = teardown);

static uint64_t node_of(uint64_t parent, const char *name, struct fuse_entry_out *e)
{
	int ret = fx_lookup(parent, name, e);
	cr_assert_eq(ret, 0, "lookup %s: %s", name, strerror(-ret));
	return e->nodeid;
}

/* A sealed directory: its attributes can be read, nothing in it can be reached. */
static void assert_sealed(uint64_t parent, const char *name)
{
	struct fuse_entry_out e, e2;
	struct fuse_mkdir_in mk = { .mode = 0755 };
	struct fuse_setattr_in sa = { .valid = FATTR_MODE, .mode = 0777 };
	struct fuse_setxattr_in sx = { .size = 1 };
	struct fuse_getxattr_in gxi = { .size = 0 };
	char gxo[64];
	uint64_t n = node_of(parent, name, &e), dh;

	cr_assert(S_ISDIR(e.attr.mode), "%s: a directory", name);
	cr_assert_not(e.attr.flags & FUSE_ATTR_SUBMOUNT, "%s: sealed, not announced", name);
	cr_assert_eq(fx_getattr(n, NULL), 0, "%s: attributes readable", name);
	cr_assert_eq(fx_lookup(n, "self", &e2), -EACCES, "%s: looked into", name);
	cr_assert_eq(fx_lookup(n, "1", &e2), -EACCES, "%s: looked into", name);
	cr_assert_eq(fx_lookup(n, ".", &e2), -EACCES, "%s: looked into", name);
	cr_assert_eq(fx_lookup(n, "..", &e2), -EACCES, "%s: looked into", name);
	cr_assert_eq(fx_opendir(n, &dh), -EACCES, "%s: listed", name);
	cr_assert_eq(fx_call(FUSE_MKDIR, n, &mk, sizeof(mk), "x", 2, NULL, 0, &e2, sizeof(e2),
			     NULL), -EACCES, "%s: created in", name);
	cr_assert_eq(fx_setattr(n, &sa, NULL), -EACCES, "%s: changed", name);
	cr_assert_eq(fx_call(FUSE_SETXATTR, n, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE, "user.x", 7, "v", 1,
			     NULL, 0, NULL), -EACCES, "%s: xattr set", name);
	/* Reading its xattrs is like reading its attributes (ls -l asks for ACLs). */
	int gx = fx_call(FUSE_GETXATTR, n, &gxi, sizeof(gxi), "system.posix_acl_access", 24,
			 NULL, 0, gxo, sizeof(gxo), NULL);
	cr_assert(gx == -ENODATA || gx == -EOPNOTSUPP || gx == 0, "%s: getxattr %d", name, gx);
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, "plain", n, "moved"), -EACCES, "%s: renamed into",
		     name);
}

Test(fuse_mounts, pseudo_file_systems_are_sealed)
{
	assert_sealed(FUSE_ROOT_ID, "proc");
	assert_sealed(FUSE_ROOT_ID, "sys");
	assert_sealed(FUSE_ROOT_ID, "dev");
	assert_sealed(FUSE_ROOT_ID, "bindproc");
}

Test(fuse_mounts, pseudo_file_over_a_file_refused)
{
	struct fuse_entry_out e;

	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "environ", &e), -EACCES);
}

Test(fuse_mounts, other_mounts_announced_as_submounts)
{
	struct fuse_entry_out e;
	char buf[16];
	size_t got;
	uint64_t fh;
	uint64_t tmp = node_of(FUSE_ROOT_ID, "tmp", &e);

	cr_assert(e.attr.flags & FUSE_ATTR_SUBMOUNT, "tmp not announced");
	node_of(tmp, "deeper", &e);
	cr_assert(e.attr.flags & FUSE_ATTR_SUBMOUNT, "tmp/deeper not announced");
	uint64_t inner = node_of(tmp, "inner", &e);
	cr_assert_not(e.attr.flags & FUSE_ATTR_SUBMOUNT, "a file is no submount");
	cr_assert_eq(fx_open(inner, O_RDONLY, &fh), 0);
	cr_assert_eq(fx_read(fh, 0, sizeof(buf), buf, &got), 0);
	cr_assert_eq(got, 5);
	cr_assert_eq(memcmp(buf, "inner", 5), 0);
	cr_assert_eq(fx_release(fh), 0);
	/* Back up through "..": the share's root, plain. */
	cr_assert_eq(node_of(tmp, "..", &e), FUSE_ROOT_ID);
	node_of(FUSE_ROOT_ID, "plain", &e);
	cr_assert_not(e.attr.flags & FUSE_ATTR_SUBMOUNT, "plain directory announced");
}

/* READDIRPLUS looks entries up the same way: the sealed ones come with their (sealed)
 * node, the refused file with none, the submount announced. */
Test(fuse_mounts, readdirplus_applies_the_same_policy)
{
	static uint8_t buf[16384];
	const struct fuse_entry_out *eo;
	const struct fuse_dirent *d;
	struct fuse_entry_out e;
	uint64_t dh;
	size_t got, pos = 0;
	int seen = 0;

	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	cr_assert_eq(fx_readdir(FUSE_READDIRPLUS, dh, 0, sizeof(buf), buf, &got), 0);
	while ((d = fx_dirent_next(buf, got, &pos, true, &eo))) {
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)d->namelen, d->name);
		if (!strcmp(name, "environ")) {
			cr_assert_eq(eo->nodeid, 0, "environ looked up");
			seen++;
		} else if (!strcmp(name, "proc")) {
			cr_assert_neq(eo->nodeid, 0);
			cr_assert_eq(fx_lookup(eo->nodeid, "self", &e), -EACCES, "proc entered");
			seen++;
		} else if (!strcmp(name, "tmp")) {
			cr_assert(eo->attr.flags & FUSE_ATTR_SUBMOUNT);
			seen++;
		}
	}
	cr_assert_eq(seen, 3);
	cr_assert_eq(fx_releasedir(dh), 0);
}

Test(fuse_mounts_off, every_mount_point_sealed)
{
	struct fuse_entry_out e;

	assert_sealed(FUSE_ROOT_ID, "tmp");
	assert_sealed(FUSE_ROOT_ID, "proc");
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "environ", &e), -EACCES);
	node_of(FUSE_ROOT_ID, "plain", &e);
	cr_assert_eq(fx_lookup(e.nodeid, "f", &e), 0, "the share's own files are fine");
}

/* minivmm run's root share is the host's "/": its /proc, /sys and /dev are sealed (the
 * guest mounts its own there), and minivmm's own memory stays out of reach. */
Test(fuse_mounts, host_root_share)
{
	/* Read-write only so that modifying ops reach the seal (nothing is created). */
	struct fuse_config cfg = { .path = "/", .cache = FUSE_CACHE_ALWAYS, .xattr = true };
	struct fuse_server *mine = fx.s;
	struct fuse_entry_out e;
	char err[256];

	fx.s = fuse_server_create(&cfg, err, sizeof(err));
	cr_assert_not_null(fx.s, "%s", err);
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, NULL), 0);
	assert_sealed(FUSE_ROOT_ID, "proc");
	assert_sealed(FUSE_ROOT_ID, "sys");
	assert_sealed(FUSE_ROOT_ID, "dev");
	/* The ordinary file system is still served. */
	uint64_t etc = node_of(FUSE_ROOT_ID, "etc", &e);
	cr_assert_eq(fx_lookup(etc, "passwd", &e), 0);
	fuse_server_destroy(fx.s);
	fx.s = mine;
}

/* A share that is itself a pseudo file system is refused when the server starts. */
Test(fuse_mounts, pseudo_share_refused)
{
	static const char *const paths[] = { "/proc", "/proc/self", "/sys/kernel", "/dev" };
	char err[256];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct fuse_config cfg = { .path = paths[i], .cache = FUSE_CACHE_AUTO };
		err[0] = '\0';
		struct fuse_server *s = fuse_server_create(&cfg, err, sizeof(err));
		cr_assert_null(s, "%s shared", paths[i]);
		cr_assert(strstr(err, "pseudo file system"), "%s: %s", paths[i], err);
	}
}

/* ---- SYNCFS reaches every file system (issue 9 finding 11(c)) ------------------------ */

static void setup_plain(void)
{
	ns_private();
	fx_setup();
}

TestSuite(fuse_syncfs, .init = setup_plain, .fini = teardown);

static int loopno;

/* An 8 MiB ext4 on a loop device (detached by itself once unmounted), mounted at
 * share/disk.  Lazy initialisation off and a long journal commit interval: nothing
 * writes to it by itself while the test looks. */
static void mount_disk(void)
{
	char img[700], dev[32], cmd[1024];
	int imgfd, ctl, lfd = -1;

	cr_assert_lt((size_t)snprintf(img, sizeof(img), "%s/disk.img", fx.dir), sizeof(img));
	imgfd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(imgfd, 0);
	cr_assert_eq(ftruncate(imgfd, 8 << 20), 0);
	snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "
		 "'%s' >/dev/null 2>&1", img);
	cr_assert_eq(system(cmd), 0, "mkfs.ext4 failed (e2fsprogs, tools/deps)");
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	cr_assert_geq(ctl, 0, "/dev/loop-control: %s", strerror(errno));
	/* Another process may take the free device first: try again. */
	for (int tries = 0; tries < 20 && lfd < 0; tries++) {
		loopno = ioctl(ctl, LOOP_CTL_GET_FREE);
		cr_assert_geq(loopno, 0, "LOOP_CTL_GET_FREE: %s", strerror(errno));
		snprintf(dev, sizeof(dev), "/dev/loop%d", loopno);
		lfd = open(dev, O_RDWR | O_CLOEXEC);
		if (lfd >= 0 && ioctl(lfd, LOOP_SET_FD, imgfd)) {
			close(lfd);
			lfd = -1;
		}
	}
	cr_assert_geq(lfd, 0, "no loop device");
	struct loop_info64 li = { .lo_flags = LO_FLAGS_AUTOCLEAR };
	cr_assert_eq(ioctl(lfd, LOOP_SET_STATUS64, &li), 0);
	cr_assert_eq(mkdir(fx_path("disk"), 0755), 0);
	cr_assert_eq(mount(dev, fx_path("disk"), "ext4", 0, "commit=600"), 0, "mount %s: %s", dev,
		     strerror(errno));
	close(lfd);
	close(imgfd);
	close(ctl);
}

/* Writes the loop device has completed (/sys/block/loopN/stat, field 5). */
static unsigned long disk_writes(void)
{
	char path[64];
	unsigned long f[5];
	FILE *fp;

	snprintf(path, sizeof(path), "/sys/block/loop%d/stat", loopno);
	fp = fopen(path, "re");
	cr_assert_not_null(fp, "%s: %s", path, strerror(errno));
	cr_assert_eq(fscanf(fp, "%lu %lu %lu %lu %lu", &f[0], &f[1], &f[2], &f[3], &f[4]), 5);
	fclose(fp);
	return f[4];
}

static void dirty(const char *rel, char c)
{
	static char data[256 << 10];

	memset(data, c, sizeof(data));
	fx_write_file(rel, data, sizeof(data));
}

static int syncfs_req(uint64_t node)
{
	struct fuse_syncfs_in in = { 0 };

	return fx_call(FUSE_SYNCFS, node, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

Test(fuse_syncfs, every_file_system_of_the_share)
{
	struct fuse_entry_out e;
	unsigned long w;

	mount_disk();
	dirty("disk/f", 'a');
	uint64_t disk = node_of(FUSE_ROOT_ID, "disk", &e);
	node_of(disk, "f", &e);
	/* The guest syncs its root superblock: the ext4 below is written out too. */
	w = disk_writes();
	cr_assert_eq(syncfs_req(FUSE_ROOT_ID), 0);
	cr_assert_gt(disk_writes(), w, "SYNCFS of the root left the submount's data dirty");
	/* A submount's own superblock: its node comes with the request. */
	dirty("disk/g", 'b');
	w = disk_writes();
	cr_assert_eq(syncfs_req(disk), 0);
	cr_assert_gt(disk_writes(), w, "SYNCFS of the submount left its data dirty");
	/* Nothing dirty: nothing written (so the writes above were the syncs'). */
	w = disk_writes();
	usleep(100 * 1000);
	cr_assert_eq(disk_writes(), w, "the disk writes by itself: the test proves nothing");
}
