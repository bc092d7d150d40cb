/* Namespace ops of the FUSE server (fs/entry.c, fs/inode.c, fs/creds.c): LOOKUP with
 * every kind of bad name, lookup counting and FORGET, creating, linking, removing and
 * renaming, and files created as the requesting user. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

TestSuite(fuse_lookup, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_forget, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_make, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_remove, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_creds, .init = fx_setup, .fini = fx_teardown);

static int lookup_raw(uint64_t parent, const void *name, size_t len)
{
	struct fuse_entry_out e;

	return fx_call(FUSE_LOOKUP, parent, NULL, 0, name, len, NULL, 0, &e, sizeof(e), NULL);
}

/* ---- LOOKUP ---------------------------------------------------------------------------- */

Test(fuse_lookup, file_attributes)
{
	struct fuse_entry_out e;
	struct stat st;

	fx_write_file("f", "hello", 5);
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_neq(e.nodeid, 0);
	cr_assert_neq(e.nodeid, FUSE_ROOT_ID);
	cr_assert_eq(e.attr.ino, st.st_ino);
	cr_assert_eq(e.attr.size, 5);
	cr_assert_eq(e.attr.mode, st.st_mode);
	cr_assert_eq(e.attr.nlink, 1);
	cr_assert_eq(e.attr.mtime, (uint64_t)st.st_mtim.tv_sec);
	cr_assert_eq(e.attr.mtimensec, (uint32_t)st.st_mtim.tv_nsec);
	cr_assert_eq(e.entry_valid, 1, "cache=auto is 1 s");
	cr_assert_eq(e.attr_valid, 1);
}

Test(fuse_lookup, same_inode_same_nodeid)
{
	struct fuse_entry_out a, b, c;

	fx_write_file("f", "x", 1);
	cr_assert_eq(link(fx_path("f"), fx_path("g")), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &a), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &b), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "g", &c), 0);
	cr_assert_eq(a.nodeid, b.nodeid);
	cr_assert_eq(a.nodeid, c.nodeid, "a hard link is the same inode");
}

Test(fuse_lookup, missing_enoent)
{
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "nothere", NULL), -ENOENT);
}

Test(fuse_lookup, hostile_names)
{
	char longname[300];

	mkdir(fx_path("a"), 0755);
	fx_write_file("a/b", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "a/b", NULL), -EINVAL, "'/' in a name");
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "/", NULL), -EINVAL);
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, "", 1), -EINVAL, "empty name");
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, "", 0), -EINVAL, "no name at all");
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, "a", 1), -EINVAL, "not NUL-terminated");
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, "a\0b", 4), 0, "bytes after the NUL are ignored");
	memset(longname, 'n', sizeof(longname));
	longname[256] = '\0';
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, longname, 257), -ENAMETOOLONG, "256 bytes");
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, longname, 256), -EINVAL, "256, no NUL");
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, longname, 300), -ENAMETOOLONG, "300, no NUL");
	longname[255] = '\0';
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, longname, 256), -ENOENT, "255 bytes is legal");
	cr_assert_eq(lookup_raw(FUSE_ROOT_ID, longname, 255), -EINVAL, "255 without its NUL");
}

Test(fuse_lookup, dot_and_dotdot)
{
	struct fuse_entry_out e, sub, sub2;

	mkdir(fx_path("sub"), 0755);
	mkdir(fx_path("sub/sub2"), 0755);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, ".", &e), 0);
	cr_assert_eq(e.nodeid, FUSE_ROOT_ID);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "..", &e), 0);
	cr_assert_eq(e.nodeid, FUSE_ROOT_ID, "'..' of the root stays at the root");
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "sub", &sub), 0);
	cr_assert_eq(fx_lookup(sub.nodeid, "sub2", &sub2), 0);
	cr_assert_eq(fx_lookup(sub.nodeid, ".", &e), 0);
	cr_assert_eq(e.nodeid, sub.nodeid);
	cr_assert_eq(fx_lookup(sub.nodeid, "..", &e), 0);
	cr_assert_eq(e.nodeid, FUSE_ROOT_ID);
	cr_assert_eq(fx_lookup(sub2.nodeid, "..", &e), 0);
	cr_assert_eq(e.nodeid, sub.nodeid);
	cr_assert_eq(fx_lookup(sub2.nodeid, "..", &e), 0);
	cr_assert_eq(fx_lookup(e.nodeid, "..", &e), 0);
	cr_assert_eq(fx_lookup(e.nodeid, "..", &e), 0);
	cr_assert_eq(e.nodeid, FUSE_ROOT_ID, "walking up stops at the root");
}

/* A directory the host moved out of the share: its ".." is outside, and refused. */
Test(fuse_lookup, dotdot_of_a_directory_moved_out)
{
	struct fuse_entry_out sub, e;
	char dst[1200];

	mkdir(fx_path("sub"), 0755);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "sub", &sub), 0);
	snprintf(dst, sizeof(dst), "%s/sub", fx.outside);
	cr_assert_eq(rename(fx_path("sub"), dst), 0);
	cr_assert_eq(fx_lookup(sub.nodeid, "..", &e), -EACCES);
}

Test(fuse_lookup, in_a_file_enotdir)
{
	struct fuse_entry_out f;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &f), 0);
	cr_assert_eq(fx_lookup(f.nodeid, "x", NULL), -ENOTDIR);
	cr_assert_eq(fx_lookup(f.nodeid, "..", NULL), -ENOTDIR);
}

Test(fuse_lookup, stale_and_invented_nodeids)
{
	static const uint64_t bad[] = { 0, 2, 3, 0x100000001ULL, 0x200000001ULL, 0xffffffffULL,
					0xdeadbeefcafeULL, UINT64_MAX };
	struct fuse_entry_out e;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i] == e.nodeid)
			continue;
		cr_assert_eq(fx_getattr(bad[i], NULL), -ESTALE, "nodeid %#llx",
			     (unsigned long long)bad[i]);
		cr_assert_eq(fx_lookup(bad[i], "f", NULL), -ESTALE);
		cr_assert_eq(fx_mkdir(bad[i], "d", 0755, NULL), -ESTALE);
	}
	/* The right index with the wrong generation. */
	cr_assert_eq(fx_getattr(e.nodeid + (1ULL << 32), NULL), -ESTALE);
	cr_assert_eq(fx_getattr(e.nodeid ^ (1ULL << 40), NULL), -ESTALE);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), 0);
}

/* ---- FORGET ---------------------------------------------------------------------------- */

Test(fuse_forget, counts_and_clamps)
{
	struct fuse_entry_out e, again;

	fx_write_file("f", "x", 1);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(fx_forget(e.nodeid, 2), FX_NOREPLY);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), 0, "one lookup left, the node must live");
	cr_assert_eq(fx_forget(e.nodeid, 5), FX_NOREPLY);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE, "over-count must free, not wrap");
	cr_assert_eq(fx_forget(e.nodeid, 1), FX_NOREPLY);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &again), 0);
	cr_assert_neq(again.nodeid, e.nodeid, "a reused slot must get a new nodeid");
	cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE);
	cr_assert_eq(fx_getattr(again.nodeid, NULL), 0);
}

Test(fuse_forget, huge_count_clamped)
{
	struct fuse_entry_out e;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(fx_forget(e.nodeid, UINT64_MAX), FX_NOREPLY);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE);
}

Test(fuse_forget, root_is_never_freed)
{
	for (int i = 0; i < 100; i++)
		cr_assert_eq(fx_forget(FUSE_ROOT_ID, UINT64_MAX), FX_NOREPLY);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, ".", NULL), 0);
}

Test(fuse_forget, hundred_thousand)
{
	struct fuse_entry_out e, other;
	struct timespec t0, t1;

	fx_write_file("f", "x", 1);
	fx_write_file("g", "y", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "g", &other), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 100000; i++) {
		uint64_t id = (i % 3 == 0) ? e.nodeid : (i % 3 == 1) ? (uint64_t)i * 2654435761u
								     : FUSE_ROOT_ID;
		cr_assert_eq(fx_forget(id, 1), FX_NOREPLY);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE);
	cr_assert_eq(fx_getattr(other.nodeid, NULL), 0, "somebody else's node went");
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0);
	cr_assert_lt(t1.tv_sec - t0.tv_sec, 30, "100000 FORGETs took too long");
}

static int batch_forget(const struct fuse_forget_one *one, uint32_t count, size_t nbytes)
{
	struct fuse_batch_forget_in in = { .count = count };

	return fx_call(FUSE_BATCH_FORGET, 0, &in, sizeof(in), one, nbytes, NULL, 0, NULL, 0, NULL);
}

Test(fuse_forget, batch)
{
	struct fuse_entry_out a, b;
	struct fuse_forget_one one[3];

	fx_write_file("a", "x", 1);
	fx_write_file("b", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "a", &a), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "a", &a), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "b", &b), 0);
	one[0] = (struct fuse_forget_one){ a.nodeid, 1 };
	one[1] = (struct fuse_forget_one){ b.nodeid, 1 };
	one[2] = (struct fuse_forget_one){ 0xbad0000bad, 7 };
	/* Claims more entries than it carries: malformed, nothing forgotten. */
	cr_assert_eq(batch_forget(one, 1000, sizeof(one)), FX_NOREPLY);
	cr_assert_eq(batch_forget(one, 3, sizeof(one) - 1), FX_NOREPLY);
	cr_assert_eq(fx_getattr(b.nodeid, NULL), 0, "a malformed batch forgot something");
	cr_assert_eq(batch_forget(one, 3, sizeof(one)), FX_NOREPLY);
	cr_assert_eq(fx_getattr(a.nodeid, NULL), 0);
	cr_assert_eq(fx_getattr(b.nodeid, NULL), -ESTALE);
	cr_assert_eq(batch_forget(one, 0, 0), FX_NOREPLY);
}

/* Claiming 100 entries but carrying 70: even the 70 that are there stay untouched. */
Test(fuse_forget, batch_count_beyond_payload_forgets_nothing)
{
	static struct fuse_forget_one one[70];
	struct fuse_entry_out e;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	for (int i = 0; i < 70; i++)
		one[i] = (struct fuse_forget_one){ e.nodeid, 1 };
	cr_assert_eq(batch_forget(one, 100, sizeof(one)), FX_NOREPLY);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), 0, "a malformed batch was partly applied");
	cr_assert_eq(batch_forget(one, 70, sizeof(one)), FX_NOREPLY);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE);
}

Test(fuse_forget, big_batch)
{
	static struct fuse_forget_one one[1000];
	struct fuse_entry_out e;

	fx_write_file("f", "x", 1);
	for (int i = 0; i < 300; i++)
		cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	for (int i = 0; i < 1000; i++)
		one[i] = (struct fuse_forget_one){ (i % 4) ? (uint64_t)i : e.nodeid, 1 };
	cr_assert_eq(batch_forget(one, 1000, sizeof(one)), FX_NOREPLY);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), 0, "250 of 300 lookups forgotten");
	cr_assert_eq(fx_forget(e.nodeid, 50), FX_NOREPLY);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE);
}

/* ---- creating -------------------------------------------------------------------------- */

Test(fuse_make, mkdir)
{
	struct fuse_entry_out e;
	struct stat st;

	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0750, &e), 0);
	cr_assert_eq(stat(fx_path("d"), &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0750);
	cr_assert_eq(e.attr.ino, st.st_ino);
	cr_assert(S_ISDIR(e.attr.mode));
	cr_assert_eq(fx_mkdir(e.nodeid, "inner", 0755, NULL), 0);
	cr_assert_eq(access(fx_path("d/inner"), F_OK), 0);
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0750, NULL), -EEXIST);
}

Test(fuse_make, mkdir_applies_the_umask)
{
	struct fuse_mkdir_in in = { .mode = 0777, .umask = 027 };
	struct fuse_entry_out e;
	struct stat st;

	cr_assert_eq(fx_call(FUSE_MKDIR, FUSE_ROOT_ID, &in, sizeof(in), "d", 2, NULL, 0, &e,
			     sizeof(e), NULL), 0);
	cr_assert_eq(stat(fx_path("d"), &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0750);
}

Test(fuse_make, in_a_file_enotdir)
{
	struct fuse_entry_out f;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &f), 0);
	cr_assert_eq(fx_mkdir(f.nodeid, "d", 0755, NULL), -ENOTDIR);
	cr_assert_eq(fx_symlink(f.nodeid, "l", "t", NULL), -ENOTDIR);
	cr_assert_eq(fx_mknod(f.nodeid, "n", S_IFREG | 0644, 0, NULL), -ENOTDIR);
}

Test(fuse_make, mknod_kinds)
{
	struct fuse_entry_out e;
	struct stat st;

	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "reg", S_IFREG | 0640, 0, &e), 0);
	cr_assert_eq(lstat(fx_path("reg"), &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "fifo", S_IFIFO | 0600, 0, &e), 0);
	cr_assert(S_ISFIFO(e.attr.mode));
	cr_assert_eq(lstat(fx_path("fifo"), &st), 0);
	cr_assert(S_ISFIFO(st.st_mode));
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "sock", S_IFSOCK | 0600, 0, &e), 0);
	cr_assert(S_ISSOCK(e.attr.mode));
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "dir", S_IFDIR | 0755, 0, NULL), -EINVAL);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "lnk", S_IFLNK | 0777, 0, NULL), -EINVAL);
	/* Devices (devices=mapped by default, test_fuse_node.c): the guest sees the node,
	 * the host an inert regular file. */
	if (geteuid() != 0)
		return;
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "chr", S_IFCHR | 0600, 259, &e), 0);
	cr_assert(S_ISCHR(e.attr.mode));
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "blk", S_IFBLK | 0600, 2048, &e), 0);
	cr_assert(S_ISBLK(e.attr.mode));
	cr_assert_eq(lstat(fx_path("chr"), &st), 0);
	cr_assert(S_ISREG(st.st_mode), "a device node was made");
	cr_assert_eq(lstat(fx_path("blk"), &st), 0);
	cr_assert(S_ISREG(st.st_mode), "a device node was made");
}

Test(fuse_make, symlink_and_readlink)
{
	struct fuse_entry_out e, f;
	char buf[64], host[64];
	ssize_t n;

	cr_assert_eq(fx_symlink(FUSE_ROOT_ID, "l", "../../some/where", &e), 0);
	cr_assert(S_ISLNK(e.attr.mode));
	n = readlink(fx_path("l"), host, sizeof(host));
	cr_assert_eq(n, 16);
	cr_assert_eq(memcmp(host, "../../some/where", 16), 0);
	cr_assert_eq(fx_readlink(e.nodeid, buf, sizeof(buf)), 16);
	cr_assert_eq(memcmp(buf, "../../some/where", 16), 0);
	cr_assert_eq(fx_readlink(e.nodeid, buf, 4), -ERANGE);
	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &f), 0);
	cr_assert_eq(fx_readlink(f.nodeid, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(fx_readlink(FUSE_ROOT_ID, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(fx_symlink(FUSE_ROOT_ID, "l", "x", NULL), -EEXIST);
}

Test(fuse_make, symlink_bad_targets)
{
	struct fuse_entry_out e;

	cr_assert_eq(fx_call(FUSE_SYMLINK, FUSE_ROOT_ID, NULL, 0, "l", 2, "", 1, &e, sizeof(e),
			     NULL), -EINVAL, "empty target");
	cr_assert_eq(fx_call(FUSE_SYMLINK, FUSE_ROOT_ID, NULL, 0, "l", 2, "abc", 3, &e, sizeof(e),
			     NULL), -EINVAL, "target without NUL");
	cr_assert_eq(fx_call(FUSE_SYMLINK, FUSE_ROOT_ID, NULL, 0, "l", 2, NULL, 0, &e, sizeof(e),
			     NULL), -EINVAL, "no target");
	cr_assert_eq(access(fx_path("l"), F_OK), -1);
}

Test(fuse_make, link)
{
	struct fuse_entry_out f, l, d;
	struct stat st;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &f), 0);
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, &d), 0);
	cr_assert_eq(fx_link(f.nodeid, d.nodeid, "g", &l), 0);
	cr_assert_eq(l.nodeid, f.nodeid);
	cr_assert_eq(l.attr.nlink, 2);
	cr_assert_eq(stat(fx_path("d/g"), &st), 0);
	cr_assert_eq(st.st_ino, f.attr.ino);
	cr_assert_eq(fx_link(d.nodeid, FUSE_ROOT_ID, "d2", NULL), -EPERM, "directory hard link");
	cr_assert_eq(fx_link(0x77700000042ULL, FUSE_ROOT_ID, "x", NULL), -ESTALE);
	cr_assert_eq(fx_link(f.nodeid, FUSE_ROOT_ID, "f", NULL), -EEXIST);
}

/* "." and ".." never name something to create, remove or rename. */
Test(fuse_make, dots_refused_where_they_would_change_things)
{
	static const char *const dots[] = { ".", ".." };
	struct fuse_entry_out f;
	uint64_t fh;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &f), 0);
	for (int i = 0; i < 2; i++) {
		const char *n = dots[i];
		cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, n, 0755, NULL), -EINVAL);
		cr_assert_eq(fx_mknod(FUSE_ROOT_ID, n, S_IFREG | 0644, 0, NULL), -EINVAL);
		cr_assert_eq(fx_symlink(FUSE_ROOT_ID, n, "t", NULL), -EINVAL);
		cr_assert_eq(fx_link(f.nodeid, FUSE_ROOT_ID, n, NULL), -EINVAL);
		cr_assert_eq(fx_create(FUSE_ROOT_ID, n, O_RDWR, 0644, NULL, &fh), -EINVAL);
		cr_assert_eq(fx_unlink(FUSE_ROOT_ID, n), -EINVAL);
		cr_assert_eq(fx_rmdir(FUSE_ROOT_ID, n), -EINVAL);
		cr_assert_eq(fx_rename(FUSE_ROOT_ID, n, FUSE_ROOT_ID, "x"), -EINVAL);
		cr_assert_eq(fx_rename(FUSE_ROOT_ID, "f", FUSE_ROOT_ID, n), -EINVAL);
	}
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "a/b", 0755, NULL), -EINVAL);
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, "f", FUSE_ROOT_ID, "../f"), -EINVAL);
	cr_assert_eq(access(fx_path("f"), F_OK), 0);
}

/* ---- removing and renaming ------------------------------------------------------------- */

Test(fuse_remove, unlink_and_rmdir)
{
	fx_write_file("f", "x", 1);
	mkdir(fx_path("d"), 0755);
	mkdir(fx_path("full"), 0755);
	fx_write_file("full/x", "x", 1);
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, "f"), 0);
	cr_assert_eq(access(fx_path("f"), F_OK), -1);
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, "f"), -ENOENT);
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, "d"), -EISDIR);
	cr_assert_eq(fx_rmdir(FUSE_ROOT_ID, "full"), -ENOTEMPTY);
	cr_assert_eq(fx_rmdir(FUSE_ROOT_ID, "d"), 0);
	cr_assert_eq(access(fx_path("d"), F_OK), -1);
	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_rmdir(FUSE_ROOT_ID, "f"), -ENOTDIR);
}

/* An unlinked inode the guest still holds stays usable. */
Test(fuse_remove, unlinked_node_still_answers)
{
	struct fuse_entry_out e;
	struct fuse_attr_out a;

	fx_write_file("f", "abc", 3);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, "f"), 0);
	cr_assert_eq(fx_getattr(e.nodeid, &a), 0);
	cr_assert_eq(a.attr.nlink, 0);
	cr_assert_eq(a.attr.size, 3);
}

Test(fuse_remove, root_cannot_be_removed_or_renamed)
{
	struct fuse_entry_out sub;

	mkdir(fx_path("sub"), 0755);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "sub", &sub), 0);
	cr_assert_eq(fx_rmdir(FUSE_ROOT_ID, "."), -EINVAL);
	cr_assert_eq(fx_rmdir(FUSE_ROOT_ID, ".."), -EINVAL);
	cr_assert_eq(fx_rmdir(sub.nodeid, ".."), -EINVAL);
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, ".", sub.nodeid, "moved"), -EINVAL);
	cr_assert_eq(fx_rename(sub.nodeid, "..", sub.nodeid, "moved"), -EINVAL);
	cr_assert_eq(fx_rename2(sub.nodeid, "..", FUSE_ROOT_ID, "x", RENAME_EXCHANGE), -EINVAL);
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, ".."), -EINVAL);
	cr_assert_eq(access(fx.share, F_OK), 0);
	cr_assert_eq(access(fx_path("sub"), F_OK), 0);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0);
}

Test(fuse_remove, rename_moves)
{
	struct fuse_entry_out d, f, e;

	fx_write_file("f", "abc", 3);
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, &d), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &f), 0);
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, "f", d.nodeid, "g"), 0);
	cr_assert_eq(access(fx_path("f"), F_OK), -1);
	cr_assert_eq(access(fx_path("d/g"), F_OK), 0);
	cr_assert_eq(fx_lookup(d.nodeid, "g", &e), 0);
	cr_assert_eq(e.nodeid, f.nodeid, "the renamed inode keeps its nodeid");
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, "nothere", d.nodeid, "x"), -ENOENT);
	cr_assert_eq(fx_rename(d.nodeid, "g", 0x5555000000003ULL, "x"), -ESTALE);
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, "d", d.nodeid, "inside"), -EINVAL,
		     "a directory into itself");
}

Test(fuse_remove, rename2_noreplace_and_exchange)
{
	char buf[8] = { 0 };
	int fd;

	fx_write_file("a", "AAA", 3);
	fx_write_file("b", "BBB", 3);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "a", FUSE_ROOT_ID, "b", RENAME_NOREPLACE), -EEXIST);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "a", FUSE_ROOT_ID, "c", RENAME_NOREPLACE), 0);
	cr_assert_eq(access(fx_path("c"), F_OK), 0);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "b", RENAME_EXCHANGE), 0);
	fd = open(fx_path("b"), O_RDONLY);
	cr_assert_eq(read(fd, buf, 3), 3);
	close(fd);
	cr_assert_str_eq(buf, "AAA");
	fd = open(fx_path("c"), O_RDONLY);
	cr_assert_eq(read(fd, buf, 3), 3);
	close(fd);
	cr_assert_str_eq(buf, "BBB");
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "zz", RENAME_EXCHANGE), -ENOENT);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "b", RENAME_WHITEOUT), -EINVAL);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "b", 1u << 20), -EINVAL);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "b",
				RENAME_EXCHANGE | RENAME_NOREPLACE), -EINVAL);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "c", FUSE_ROOT_ID, "b", 0), 0);
	cr_assert_eq(access(fx_path("c"), F_OK), -1);
}

/* ---- credentials ----------------------------------------------------------------------- */

static void owned_by(const char *rel, uid_t uid, gid_t gid)
{
	struct stat st;

	cr_assert_eq(lstat(fx_path(rel), &st), 0, "%s missing", rel);
	cr_assert_eq(st.st_uid, uid, "%s: uid %u, want %u", rel, st.st_uid, uid);
	cr_assert_eq(st.st_gid, gid, "%s: gid %u, want %u", rel, st.st_gid, gid);
}

Test(fuse_creds, created_as_the_requester)
{
	uint64_t fh;

	if (geteuid() != 0)
		cr_skip_test("needs root to switch fsuid");
	fx.uid = 1000;
	fx.gid = 1001;
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, NULL), 0);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "n", S_IFREG | 0644, 0, NULL), 0);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "p", S_IFIFO | 0644, 0, NULL), 0);
	cr_assert_eq(fx_symlink(FUSE_ROOT_ID, "l", "target", NULL), 0);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "c", O_RDWR, 0644, NULL, &fh), 0);
	cr_assert_eq(fx_release(fh), 0);
	owned_by("d", 1000, 1001);
	owned_by("n", 1000, 1001);
	owned_by("p", 1000, 1001);
	owned_by("l", 1000, 1001);
	owned_by("c", 1000, 1001);
	/* The worker thread is itself again afterwards. */
	cr_assert_eq(syscall(SYS_setfsuid, -1), 0);
	cr_assert_eq(syscall(SYS_setfsgid, -1), 0);
	fx.uid = fx.gid = 0;
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "r", 0755, NULL), 0);
	owned_by("r", 0, 0);
}

/* The host checks the parent's permissions as the requester. */
Test(fuse_creds, no_write_permission_eacces)
{
	struct fuse_entry_out d;

	if (geteuid() != 0)
		cr_skip_test("needs root to switch fsuid");
	mkdir(fx_path("rootonly"), 0755);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "rootonly", &d), 0);
	fx.uid = 1000;
	fx.gid = 1000;
	cr_assert_eq(fx_mkdir(d.nodeid, "x", 0755, NULL), -EACCES);
	cr_assert_eq(fx_create(d.nodeid, "y", O_RDWR, 0644, NULL, NULL), -EACCES);
	cr_assert_eq(access(fx_path("rootonly/x"), F_OK), -1);
}

/* -1 means "unchanged" to setfsuid: it would create as root. */
Test(fuse_creds, unmapped_ids_refused)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to switch fsuid");
	fx.uid = (uint32_t)-1;
	fx.gid = 100;
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, NULL), -EPERM);
	fx.uid = 100;
	fx.gid = (uint32_t)-1;
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, NULL), -EPERM);
	cr_assert_eq(access(fx_path("d"), F_OK), -1);
}
