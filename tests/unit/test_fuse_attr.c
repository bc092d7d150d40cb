/* Attribute ops through the FUSE server (fs/attr.c): GETATTR, SETATTR in all its parts,
 * STATFS, ACCESS, and the extended attributes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

TestSuite(fuse_attr, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_xattr, .init = fx_setup, .fini = fx_teardown);

static struct stat host_stat(const char *rel)
{
	struct stat st;

	cr_assert_eq(lstat(fx_path(rel), &st), 0, "%s", rel);
	return st;
}

Test(fuse_attr, getattr_root_and_file)
{
	struct fuse_attr_out o;
	struct stat st;
	uint64_t n;

	cr_assert_eq(stat(fx.share, &st), 0);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, &o), 0);
	cr_assert_eq(o.attr.ino, st.st_ino);
	cr_assert(S_ISDIR(o.attr.mode));
	cr_assert_eq(o.attr_valid, 1);
	fx_write_file("f", "12345", 5);
	n = fx_node("f");
	st = host_stat("f");
	cr_assert_eq(fx_getattr(n, &o), 0);
	cr_assert_eq(o.attr.size, 5);
	cr_assert_eq(o.attr.ino, st.st_ino);
	cr_assert_eq(o.attr.uid, st.st_uid);
	cr_assert_eq(o.attr.blksize, (uint32_t)st.st_blksize);
	cr_assert_eq(o.attr.ctime, (uint64_t)st.st_ctim.tv_sec);
}

Test(fuse_attr, timeouts_follow_cache_mode)
{
	struct fuse_attr_out o;
	struct fuse_entry_out e;

	fx_teardown();
	fx_start(false, FUSE_CACHE_NEVER, true, true);
	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, &o), 0);
	cr_assert_eq(o.attr_valid, 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(e.entry_valid, 0);
	fx_teardown();
	fx_start(false, FUSE_CACHE_ALWAYS, true, true);
	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, &o), 0);
	cr_assert_eq(o.attr_valid, 86400);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(e.entry_valid, 86400);
}

Test(fuse_attr, setattr_mode_owner_size_times)
{
	struct fuse_setattr_in in;
	struct fuse_attr_out o;
	struct stat st;
	uint64_t n;

	fx_write_file("f", "0123456789", 10);
	n = fx_node("f");
	memset(&in, 0, sizeof(in));
	in.valid = FATTR_MODE;
	in.mode = S_IFREG | 0604;
	cr_assert_eq(fx_setattr(n, &in, &o), 0);
	cr_assert_eq(o.attr.mode & 07777, 0604);
	cr_assert_eq(host_stat("f").st_mode & 07777, 0604);

	if (geteuid() == 0) {
		in.valid = FATTR_UID | FATTR_GID;
		in.uid = 1234;
		in.gid = 5678;
		cr_assert_eq(fx_setattr(n, &in, &o), 0);
		st = host_stat("f");
		cr_assert_eq(st.st_uid, 1234);
		cr_assert_eq(st.st_gid, 5678);
		in.valid = FATTR_GID;
		in.gid = 42;
		cr_assert_eq(fx_setattr(n, &in, &o), 0);
		cr_assert_eq(host_stat("f").st_uid, 1234, "uid left alone");
		cr_assert_eq(o.attr.gid, 42);
	}

	in.valid = FATTR_SIZE;
	in.size = 3;
	cr_assert_eq(fx_setattr(n, &in, &o), 0);
	cr_assert_eq(o.attr.size, 3);
	cr_assert_eq(host_stat("f").st_size, 3);
	in.size = 1ULL << 63;
	cr_assert_eq(fx_setattr(n, &in, &o), -EINVAL);

	in.valid = FATTR_ATIME | FATTR_MTIME;
	in.atime = 1000000000;
	in.atimensec = 5;
	in.mtime = 1200000000;
	in.mtimensec = 999999999;
	cr_assert_eq(fx_setattr(n, &in, &o), 0);
	st = host_stat("f");
	cr_assert_eq(st.st_atim.tv_sec, 1000000000);
	cr_assert_eq(st.st_atim.tv_nsec, 5);
	cr_assert_eq(st.st_mtim.tv_sec, 1200000000);
	cr_assert_eq(st.st_mtim.tv_nsec, 999999999);
	cr_assert_eq(o.attr.mtime, 1200000000);
	/* Only mtime, to now: atime stays. */
	in.valid = FATTR_MTIME | FATTR_MTIME_NOW;
	cr_assert_eq(fx_setattr(n, &in, &o), 0);
	st = host_stat("f");
	cr_assert_eq(st.st_atim.tv_sec, 1000000000);
	cr_assert_gt(st.st_mtim.tv_sec, 1600000000);
	in.valid = FATTR_ATIME;
	in.atimensec = 1000000000;
	cr_assert_eq(fx_setattr(n, &in, &o), -EINVAL, "nanoseconds out of range");
}

Test(fuse_attr, setattr_through_a_handle)
{
	struct fuse_setattr_in in;
	struct fuse_attr_out o;
	uint64_t n, fh;

	fx_write_file("f", "0123456789", 10);
	n = fx_node("f");
	cr_assert_eq(fx_open(n, O_RDWR, &fh), 0);
	memset(&in, 0, sizeof(in));
	in.valid = FATTR_SIZE | FATTR_FH;
	in.fh = fh;
	in.size = 4;
	cr_assert_eq(fx_setattr(n, &in, &o), 0);
	cr_assert_eq(host_stat("f").st_size, 4);
	in.valid = FATTR_MTIME | FATTR_FH;
	in.mtime = 1300000000;
	cr_assert_eq(fx_setattr(n, &in, &o), 0);
	cr_assert_eq(host_stat("f").st_mtim.tv_sec, 1300000000);
	in.fh = fh + 1;
	cr_assert_eq(fx_setattr(n, &in, &o), -EBADF);
	cr_assert_eq(fx_release(fh), 0);
	in.fh = fh;
	cr_assert_eq(fx_setattr(n, &in, &o), -EBADF, "released handle");
}

Test(fuse_attr, setattr_on_special_files)
{
	struct fuse_setattr_in in;
	struct fuse_attr_out o;
	uint64_t l, d, p;

	cr_assert_eq(symlink("f", fx_path("l")), 0);
	cr_assert_eq(mkfifo(fx_path("p"), 0644), 0);
	mkdir(fx_path("d"), 0755);
	l = fx_node("l");
	d = fx_node("d");
	p = fx_node("p");
	memset(&in, 0, sizeof(in));
	in.valid = FATTR_MODE;
	in.mode = 0600;
	cr_assert_eq(fx_setattr(l, &in, &o), -EOPNOTSUPP, "symlinks have no mode");
	cr_assert_eq(fx_setattr(p, &in, &o), 0, "chmod of a FIFO does not open it");
	cr_assert_eq(host_stat("p").st_mode & 0777, 0600);
	in.valid = FATTR_SIZE;
	in.size = 0;
	cr_assert_eq(fx_setattr(d, &in, &o), -EISDIR);
	cr_assert_eq(fx_setattr(p, &in, &o), -EINVAL);
	cr_assert_eq(fx_setattr(l, &in, &o), -EINVAL);
	/* The symlink's own times, not its (missing) target's. */
	in.valid = FATTR_MTIME;
	in.mtime = 1100000000;
	cr_assert_eq(fx_setattr(l, &in, &o), 0);
	cr_assert_eq(host_stat("l").st_mtim.tv_sec, 1100000000);
	cr_assert(S_ISLNK(o.attr.mode));
}

Test(fuse_attr, truncate_kills_suid_when_asked)
{
	struct fuse_setattr_in in;
	struct fuse_attr_out o;
	uint64_t n;

	fx_write_file("f", "0123456789", 10);
	cr_assert_eq(chmod(fx_path("f"), 06755), 0);
	n = fx_node("f");
	memset(&in, 0, sizeof(in));
	in.valid = FATTR_SIZE;
	in.size = 5;
	cr_assert_eq(fx_setattr(n, &in, &o), 0);
	cr_assert_eq(host_stat("f").st_mode & 07777, 06755);
	in.valid = FATTR_SIZE | FATTR_KILL_SUIDGID;
	in.size = 2;
	cr_assert_eq(fx_setattr(n, &in, &o), 0);
	cr_assert_eq(host_stat("f").st_mode & 07777, 0755);
	cr_assert_eq(o.attr.mode & 07777, 0755);
}

Test(fuse_attr, statfs)
{
	struct fuse_statfs_out o;
	struct statvfs v;

	cr_assert_eq(statvfs(fx.share, &v), 0);
	cr_assert_eq(fx_call(FUSE_STATFS, FUSE_ROOT_ID, NULL, 0, NULL, 0, NULL, 0, &o, sizeof(o),
			     NULL), 0);
	cr_assert_eq(o.st.bsize, v.f_bsize);
	cr_assert_eq(o.st.namelen, v.f_namemax);
	cr_assert_eq(o.st.blocks, v.f_blocks);
	cr_assert_eq(o.st.files, v.f_files);
	cr_assert_eq(fx_call(FUSE_STATFS, 0x4444, NULL, 0, NULL, 0, NULL, 0, &o, sizeof(o), NULL),
		     -ESTALE);
}

static int access_op(uint64_t n, uint32_t mask)
{
	struct fuse_access_in in = { .mask = mask };

	return fx_call(FUSE_ACCESS, n, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

Test(fuse_attr, access)
{
	uint64_t n;

	fx_write_file("f", "x", 1);
	cr_assert_eq(chmod(fx_path("f"), 0640), 0);
	cr_assert_eq(chown(fx_path("f"), 1000, 1000), 0);
	n = fx_node("f");
	cr_assert_eq(access_op(n, F_OK), 0);
	cr_assert_eq(access_op(n, R_OK | W_OK), 0, "root");
	cr_assert_eq(access_op(n, X_OK), -EACCES, "root, but no x bit anywhere");
	fx.uid = 1000;
	fx.gid = 5;
	cr_assert_eq(access_op(n, R_OK | W_OK), 0, "owner");
	cr_assert_eq(access_op(n, X_OK), -EACCES);
	fx.uid = 2000;
	fx.gid = 1000;
	cr_assert_eq(access_op(n, R_OK), 0, "group");
	cr_assert_eq(access_op(n, W_OK), -EACCES);
	fx.gid = 2000;
	cr_assert_eq(access_op(n, R_OK), -EACCES, "other");
	cr_assert_eq(access_op(FUSE_ROOT_ID, X_OK), 0, "the share is 0777");
	cr_assert_eq(access_op(n, 0x100), -EINVAL);
}

/* ---- xattrs ---------------------------------------------------------------------------- */

static int setx(uint64_t n, const char *name, const void *val, uint32_t size, uint32_t flags)
{
	struct fuse_setxattr_in in = { .size = size, .flags = flags };

	/* the 8-byte form: FUSE_SETXATTR_EXT is never negotiated */
	return fx_call(FUSE_SETXATTR, n, &in, 8, name, strlen(name) + 1, val, size, NULL, 0, NULL);
}

static int getx(uint64_t n, const char *name, uint32_t size, void *buf, size_t *got)
{
	struct fuse_getxattr_in in = { .size = size };

	return fx_call(name ? FUSE_GETXATTR : FUSE_LISTXATTR, n, &in, sizeof(in), name,
		       name ? strlen(name) + 1 : 0, NULL, 0, buf, size ? size : 8, got);
}

static int removex(uint64_t n, const char *name)
{
	return fx_call(FUSE_REMOVEXATTR, n, NULL, 0, name, strlen(name) + 1, NULL, 0, NULL, 0,
		       NULL);
}

Test(fuse_xattr, set_get_list_remove)
{
	struct fuse_getxattr_out go;
	char buf[256];
	size_t got;
	uint64_t n;

	fx_write_file("f", "x", 1);
	n = fx_node("f");
	if (setx(n, "user.color", "blue", 4, 0) == -EOPNOTSUPP)
		cr_skip_test("no user xattrs on the build filesystem");
	cr_assert_eq(getxattr(fx_path("f"), "user.color", buf, sizeof(buf)), 4);
	cr_assert_eq(getx(n, "user.color", 0, &go, &got), 0);
	cr_assert_eq(got, sizeof(go));
	cr_assert_eq(go.size, 4);
	cr_assert_eq(getx(n, "user.color", 64, buf, &got), 0);
	cr_assert_eq(got, 4);
	cr_assert_eq(memcmp(buf, "blue", 4), 0);
	cr_assert_eq(getx(n, "user.color", 3, buf, &got), -ERANGE);
	cr_assert_eq(getx(n, "user.none", 64, buf, &got), -ENODATA);
	cr_assert_eq(setx(n, "user.color", "red", 3, XATTR_CREATE), -EEXIST);
	cr_assert_eq(setx(n, "user.other", "1", 1, XATTR_REPLACE), -ENODATA);
	cr_assert_eq(setx(n, "user.empty", "", 0, 0), 0);
	cr_assert_eq(getx(n, NULL, 0, &go, &got), 0);
	cr_assert_eq(go.size, sizeof("user.color") + sizeof("user.empty"));
	cr_assert_eq(getx(n, NULL, sizeof(buf), buf, &got), 0);
	cr_assert_eq(got, sizeof("user.color") + sizeof("user.empty"));
	cr_assert(memmem(buf, got, "user.color", 11) && memmem(buf, got, "user.empty", 11));
	cr_assert_eq(getx(n, NULL, 5, buf, &got), -ERANGE);
	cr_assert_eq(removex(n, "user.color"), 0);
	cr_assert_eq(removex(n, "user.color"), -ENODATA);
	cr_assert_eq(getxattr(fx_path("f"), "user.color", buf, sizeof(buf)), -1);
}

Test(fuse_xattr, bad_requests)
{
	struct fuse_setxattr_in in = { .size = 10 };
	char big[300];
	uint64_t n;

	fx_write_file("f", "x", 1);
	n = fx_node("f");
	cr_assert_eq(setx(n, "trusted.overlay.redirect", "/x", 2, 0), -EPERM);
	cr_assert_eq(removex(n, "trusted.anything"), -EPERM);
	cr_assert_eq(setx(n, "user.a", "v", 1, 0x40), -EINVAL, "unknown flags");
	/* value length disagreeing with the header */
	cr_assert_eq(fx_call(FUSE_SETXATTR, n, &in, 8, "user.a", 7, "short", 5, NULL, 0, NULL),
		     -EINVAL);
	cr_assert_eq(fx_call(FUSE_SETXATTR, n, &in, 8, "user.a", 6, NULL, 0, NULL, 0, NULL),
		     -EINVAL, "name without NUL");
	cr_assert_eq(fx_call(FUSE_SETXATTR, n, &in, 8, "", 1, "0123456789", 10, NULL, 0, NULL),
		     -EINVAL, "empty name");
	memset(big, 'x', sizeof(big));
	memcpy(big, "user.", 5);
	big[299] = '\0';
	cr_assert_eq(removex(n, big), -ENAMETOOLONG);
	{
		/* A value beyond XATTR_SIZE_MAX is refused before being copied. */
		static char huge[70000];
		struct fuse_setxattr_in hin = { .size = sizeof(huge) };
		cr_assert_eq(fx_call(FUSE_SETXATTR, n, &hin, 8, "user.big", 9, huge, sizeof(huge),
				     NULL, 0, NULL), -E2BIG);
	}
	cr_assert_eq(getx(0x777, "user.a", 16, big, NULL), -ESTALE);
}

/* Found by fuzzing: a reply buffer with room for the header only, and a non-zero size.
 * getxattr(2)/listxattr(2) with a zero-length buffer report the size instead of failing,
 * and the reply then claimed payload bytes that were never written, past the buffer. */
Test(fuse_xattr, no_room_for_the_value)
{
	struct fuse_getxattr_in in = { .size = 64 };
	size_t got = 99;
	uint64_t n;

	fx_write_file("f", "x", 1);
	n = fx_node("f");
	if (setx(n, "user.a", "xyz", 3, 0) == -EOPNOTSUPP)
		cr_skip_test("no user xattrs on the build filesystem");
	cr_assert_eq(fx_call(FUSE_GETXATTR, n, &in, sizeof(in), "user.a", 7, NULL, 0, NULL, 0,
			     &got), -ERANGE);
	cr_assert_eq(got, 0);
	cr_assert_eq(fx_call(FUSE_LISTXATTR, n, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, &got),
		     -ERANGE);
	/* An empty value fits in no room at all. */
	cr_assert_eq(setx(n, "user.e", "", 0, 0), 0);
	cr_assert_eq(fx_call(FUSE_GETXATTR, n, &in, sizeof(in), "user.e", 7, NULL, 0, NULL, 0,
			     &got), 0);
	cr_assert_eq(got, 0);
}

/* Through a symlink's node the xattr calls reach the link, never its target. */
Test(fuse_xattr, symlink_target_untouched)
{
	char buf[16];
	uint64_t l;

	fx_write_file("target", "x", 1);
	cr_assert_eq(symlink("target", fx_path("l")), 0);
	l = fx_node("l");
	/* Linux refuses user.* on symlinks: the host saw the link itself. */
	cr_assert_eq(setx(l, "user.x", "1", 1, 0), -EPERM);
	cr_assert_eq(getxattr(fx_path("target"), "user.x", buf, sizeof(buf)), -1);
}

/* Issue 9 finding 11(a): SETATTR's FATTR_FH must be a handle of the node being changed;
 * otherwise a truncate aimed at one file lands on another the guest has open. */
Test(fuse_attr, setattr_handle_of_another_node_refused)
{
	struct fuse_setattr_in in;
	struct fuse_attr_out o;
	uint64_t a, b, fh;

	fx_write_file("a", "0123456789", 10);
	fx_write_file("b", "0123456789", 10);
	a = fx_node("a");
	b = fx_node("b");
	cr_assert_eq(fx_open(a, O_RDWR, &fh), 0);
	memset(&in, 0, sizeof(in));
	in.valid = FATTR_SIZE | FATTR_FH;
	in.fh = fh;
	in.size = 3;
	cr_assert_eq(fx_setattr(b, &in, &o), -EBADF, "a's handle used on b");
	cr_assert_eq(host_stat("a").st_size, 10, "a truncated through b");
	cr_assert_eq(host_stat("b").st_size, 10);
	in.valid = FATTR_MTIME | FATTR_FH;
	in.mtime = 1300000000;
	cr_assert_eq(fx_setattr(FUSE_ROOT_ID, &in, &o), -EBADF);
	cr_assert_neq(host_stat("a").st_mtim.tv_sec, 1300000000);
	cr_assert_eq(fx_release(fh), 0);
}
