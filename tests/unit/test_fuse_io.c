/* File I/O through the FUSE server (fs/file.c): OPEN/CREATE and the flags they answer
 * with, READ/WRITE straight between the file and split guest buffers, the offset and size
 * checks, handles that are stale or of the wrong kind, FALLOCATE, LSEEK, COPY_FILE_RANGE,
 * FSYNC/FLUSH/SYNCFS, and setuid/setgid removal on write. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

TestSuite(fuse_open, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_rw, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_fileops, .init = fx_setup, .fini = fx_teardown);

static uint64_t open_rel(const char *rel, uint32_t flags)
{
	uint64_t fh;
	int ret = fx_open(fx_node(rel), flags, &fh);

	cr_assert_eq(ret, 0, "open %s: %s", rel, strerror(-ret));
	return fh;
}

static void host_read(const char *rel, void *buf, size_t len)
{
	int fd = open(fx_path(rel), O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(read(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* A guest must never be able to make us block: every test here that could runs under a
 * watchdog that kills the test. */
static void watchdog(unsigned sec)
{
	signal(SIGALRM, SIG_DFL);
	alarm(sec);
}

/* ---- OPEN / CREATE --------------------------------------------------------------------- */

Test(fuse_open, create_write_read_round_trip)
{
	static uint8_t data[100000], back[100000];
	struct fuse_entry_out e;
	uint64_t fh;
	uint32_t w;
	size_t got, done = 0;
	struct stat st;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + (i >> 9));
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "f", O_RDWR, 0640, &e, &fh), 0);
	cr_assert(S_ISREG(e.attr.mode));
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
	cr_assert_eq(e.attr.ino, st.st_ino);
	cr_assert_eq(fx_write(fh, 0, data, sizeof(data), &w), 0);
	cr_assert_eq(w, sizeof(data));
	/* Odd sizes, through every split pattern. */
	while (done < sizeof(data)) {
		uint32_t want = 1 + (uint32_t)((done * 31) % 9000);
		cr_assert_eq(fx_read(fh, done, want, back + done, &got), 0);
		cr_assert_gt(got, 0);
		done += got;
	}
	cr_assert_eq(memcmp(data, back, sizeof(data)), 0);
	memset(back, 0, sizeof(back));
	host_read("f", back, sizeof(back));
	cr_assert_eq(memcmp(data, back, sizeof(data)), 0);
	cr_assert_eq(fx_read(fh, sizeof(data), 100, back, &got), 0);
	cr_assert_eq(got, 0, "read at EOF");
	cr_assert_eq(fx_release(fh), 0);
}

Test(fuse_open, create_exclusive_and_existing)
{
	struct fuse_entry_out e1, e2;
	uint64_t fh1, fh2;
	char buf[4];
	size_t got;

	cr_assert_eq(fx_create(FUSE_ROOT_ID, "f", O_RDWR, 0644, &e1, &fh1), 0);
	cr_assert_eq(fx_write(fh1, 0, "abcd", 4, NULL), 0);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "f", O_RDWR | O_EXCL, 0644, NULL, &fh2), -EEXIST);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "f", O_RDWR, 0644, &e2, &fh2), 0, "opens the existing");
	cr_assert_eq(e2.nodeid, e1.nodeid);
	cr_assert_eq(fx_read(fh2, 0, 4, buf, &got), 0);
	cr_assert_eq(got, 4);
	cr_assert_eq(memcmp(buf, "abcd", 4), 0);
	cr_assert_eq(fx_release(fh2), 0);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "f", O_RDWR | O_TRUNC, 0644, &e2, &fh2), 0);
	cr_assert_eq(e2.attr.size, 0, "O_TRUNC on an existing file");
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "f", O_ACCMODE, 0644, NULL, &fh2), -EINVAL);
	mkdir(fx_path("d"), 0755);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "d", O_RDONLY, 0644, NULL, &fh2), -EISDIR);
}

/* CREATE over a FIFO, a device or a symlink someone planted: refused, never blocking. */
Test(fuse_open, create_over_special_files_refused)
{
	uint64_t fh;
	struct fuse_entry_out e;

	watchdog(10);
	cr_assert_eq(mkfifo(fx_path("fifo"), 0666), 0);
	cr_assert_eq(symlink("/etc/passwd", fx_path("lnk")), 0);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "fifo", O_WRONLY, 0644, NULL, &fh), -ENXIO);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "fifo", O_RDONLY, 0644, NULL, &fh), -ENXIO);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "lnk", O_RDWR | O_TRUNC, 0644, NULL, &fh), -ELOOP);
	if (geteuid() == 0 && mknod(fx_path("null"), S_IFCHR | 0666, makedev(1, 3)) == 0)
		cr_assert_eq(fx_create(FUSE_ROOT_ID, "null", O_WRONLY, 0644, NULL, &fh), -ENXIO);
	/* The refused CREATE gave back the lookup it took: one lookup, one forget. */
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "fifo", &e), 0);
	cr_assert_eq(fx_forget(e.nodeid, 1), FX_NOREPLY);
	cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE, "CREATE leaked a lookup");
}

Test(fuse_open, only_regular_files_open)
{
	uint64_t fh;

	watchdog(10);
	mkdir(fx_path("d"), 0755);
	cr_assert_eq(mkfifo(fx_path("fifo"), 0666), 0);
	cr_assert_eq(symlink("d", fx_path("lnk")), 0);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "sock", S_IFSOCK | 0644, 0, NULL), 0);
	cr_assert_eq(fx_open(fx_node("d"), O_RDONLY, &fh), -EISDIR);
	cr_assert_eq(fx_open(fx_node("fifo"), O_RDONLY, &fh), -ENXIO);
	cr_assert_eq(fx_open(fx_node("fifo"), O_WRONLY, &fh), -ENXIO);
	cr_assert_eq(fx_open(fx_node("sock"), O_RDWR, &fh), -ENXIO);
	cr_assert_eq(fx_open(fx_node("lnk"), O_RDONLY, &fh), -ELOOP);
	if (geteuid() == 0 && mknod(fx_path("zero"), S_IFCHR | 0666, makedev(1, 5)) == 0)
		cr_assert_eq(fx_open(fx_node("zero"), O_RDONLY, &fh), -ENXIO);
	cr_assert_eq(fx_opendir(fx_node("fifo"), &fh), -ENOTDIR);
}

static uint32_t open_flags_with(enum fuse_cache cache)
{
	struct fuse_open_in in = { .flags = O_RDONLY };
	struct fuse_open_out o;

	fx_teardown();
	fx_start(false, cache, true, true);
	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_call(FUSE_OPEN, fx_node("f"), &in, sizeof(in), NULL, 0, NULL, 0, &o,
			     sizeof(o), NULL), 0);
	return o.open_flags;
}

Test(fuse_open, cache_mode_sets_open_flags)
{
	cr_assert_eq(open_flags_with(FUSE_CACHE_NEVER), FOPEN_DIRECT_IO);
	cr_assert_eq(open_flags_with(FUSE_CACHE_AUTO), 0);
	cr_assert_eq(open_flags_with(FUSE_CACHE_ALWAYS), FOPEN_KEEP_CACHE);
}

Test(fuse_open, truncate_and_append)
{
	uint64_t fh;
	char buf[16] = { 0 };

	fx_write_file("f", "0123456789", 10);
	fh = open_rel("f", O_WRONLY | O_APPEND);
	cr_assert_eq(fx_write(fh, 0, "AB", 2, NULL), 0);
	cr_assert_eq(fx_release(fh), 0);
	host_read("f", buf, 12);
	cr_assert_str_eq(buf, "0123456789AB", "O_APPEND");
	fh = open_rel("f", O_WRONLY | O_TRUNC);
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(open(fx_path("f"), O_RDONLY) >= 0, 1);
	struct stat st;
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(st.st_size, 0, "O_TRUNC");
}

/* With the writeback cache the guest reads pages of files it opened write-only. */
Test(fuse_open, writeback_cache_widens_write_only)
{
	uint64_t fh;
	char buf[4];
	size_t got;

	fx_teardown();
	fx_start(false, FUSE_CACHE_ALWAYS, true, true);
	cr_assert(fx.init_flags & FUSE_WRITEBACK_CACHE);
	fx_write_file("f", "abcd", 4);
	fh = open_rel("f", O_WRONLY | O_APPEND);
	cr_assert_eq(fx_read(fh, 0, 4, buf, &got), 0);
	cr_assert_eq(got, 4);
	/* and O_APPEND is the guest's job: this write lands at offset 0 */
	cr_assert_eq(fx_write(fh, 0, "X", 1, NULL), 0);
	host_read("f", buf, 4);
	cr_assert_eq(memcmp(buf, "Xbcd", 4), 0);
}

/* ---- READ / WRITE ---------------------------------------------------------------------- */

Test(fuse_rw, offsets_and_sizes_checked)
{
	uint64_t fh;
	char buf[64];

	fx_write_file("f", "0123456789", 10);
	fh = open_rel("f", O_RDWR);
	cr_assert_eq(fx_read(fh, 1ULL << 63, 10, buf, NULL), -EINVAL);
	cr_assert_eq(fx_read(fh, INT64_MAX - 5, 10, buf, NULL), -EINVAL, "offset+size wraps");
	cr_assert_eq(fx_read(fh, UINT64_MAX, 1, buf, NULL), -EINVAL);
	cr_assert_eq(fx_write(fh, 1ULL << 63, "x", 1, NULL), -EINVAL);
	cr_assert_eq(fx_write(fh, INT64_MAX, "xy", 2, NULL), -EFBIG, "offset+size wraps");
	cr_assert_eq(fx_write(fh, UINT64_MAX - 1, "xy", 2, NULL), -EINVAL);
	cr_assert_eq(fx_read(fh, 0, 10, buf, NULL), 0, "the good case works");
}

Test(fuse_rw, write_size_must_match_payload)
{
	struct fuse_write_in in = { .offset = 0, .size = 10 };
	struct fuse_write_out o;

	fx_write_file("f", "", 0);
	in.fh = open_rel("f", O_RDWR);
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), "abc", 3, NULL, 0, &o, sizeof(o),
			     NULL), -EINVAL, "size larger than the payload");
	in.size = 2;
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), "abc", 3, NULL, 0, &o, sizeof(o),
			     NULL), -EINVAL, "size smaller than the payload");
	in.size = 3;
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), "abc", 3, NULL, 0, &o, sizeof(o),
			     NULL), 0);
	cr_assert_eq(o.size, 3);
	in.size = 0;
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), NULL, 0, NULL, 0, &o, sizeof(o),
			     NULL), 0);
	cr_assert_eq(o.size, 0);
}

/* The reply buffer bounds a READ, whatever size the guest claims. */
Test(fuse_rw, read_bounded_by_reply_buffer)
{
	struct fuse_read_in in = { .offset = 0, .size = 1u << 20 };
	char buf[5];
	size_t got;

	fx_write_file("f", "0123456789", 10);
	in.fh = open_rel("f", O_RDONLY);
	cr_assert_eq(fx_call(FUSE_READ, 2, &in, sizeof(in), NULL, 0, NULL, 0, buf, sizeof(buf),
			     &got), 0);
	cr_assert_eq(got, 5);
	cr_assert_eq(memcmp(buf, "01234", 5), 0);
}

Test(fuse_rw, write_to_read_only_handle_ebadf)
{
	uint64_t fh;

	fx_write_file("f", "x", 1);
	fh = open_rel("f", O_RDONLY);
	cr_assert_eq(fx_write(fh, 0, "y", 1, NULL), -EBADF);
}

/* Hundreds of segments on both sides: more than fit the on-stack iovec array. */
Test(fuse_rw, many_segment_chains)
{
	enum { SEGS = 300, SEG = 97 };
	struct fuse_in_header h;
	struct fuse_write_in win = { .offset = 5, .size = SEGS * SEG };
	struct fuse_read_in rin = { .offset = 5, .size = SEGS * SEG };
	static uint8_t payload[SEGS * SEG], seg[SEGS][SEG];
	struct iovec in[SEGS + 2], out[SEGS + 1];
	struct fuse_out_header oh;
	struct fuse_write_out wo;
	size_t n;

	fx_write_file("f", "", 0);
	win.fh = rin.fh = open_rel("f", O_RDWR);
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 13);
	fx_hdr(&h, FUSE_WRITE, 2, sizeof(h) + sizeof(win) + sizeof(payload));
	in[0] = (struct iovec){ &h, sizeof(h) };
	in[1] = (struct iovec){ &win, sizeof(win) };
	for (int i = 0; i < SEGS; i++)
		in[2 + i] = (struct iovec){ payload + i * SEG, SEG };
	out[0] = (struct iovec){ &oh, sizeof(oh) };
	out[1] = (struct iovec){ &wo, sizeof(wo) };
	n = fuse_handle(fx.s, in, SEGS + 2, out, 2);
	cr_assert_eq(n, sizeof(oh) + sizeof(wo));
	cr_assert_eq(oh.error, 0);
	cr_assert_eq(wo.size, sizeof(payload));

	fx_hdr(&h, FUSE_READ, 2, sizeof(h) + sizeof(rin));
	in[1] = (struct iovec){ &rin, sizeof(rin) };
	for (int i = 0; i < SEGS; i++)
		out[1 + i] = (struct iovec){ seg[i], SEG };
	n = fuse_handle(fx.s, in, 2, out, SEGS + 1);
	cr_assert_eq(oh.error, 0);
	cr_assert_eq(n, sizeof(oh) + sizeof(payload));
	cr_assert_eq(memcmp(seg, payload, sizeof(payload)), 0);
}

/* Handles are numbers we validate: invented, released, or of the other kind. */
Test(fuse_rw, stale_and_wrong_kind_handles_ebadf)
{
	static const uint64_t bad[] = { 0, 1, 2, 77, 0x100000001ULL, 0xffffffff00000001ULL,
					UINT64_MAX };
	struct fuse_fsync_in fs = { 0 };
	struct fuse_flush_in fl = { 0 };
	uint64_t fh, dh;
	char buf[8];
	size_t got;

	fx_write_file("f", "x", 1);
	fh = open_rel("f", O_RDWR);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i] == fh || bad[i] == dh)
			continue;
		cr_assert_eq(fx_read(bad[i], 0, 1, buf, NULL), -EBADF);
		cr_assert_eq(fx_write(bad[i], 0, "x", 1, NULL), -EBADF);
		cr_assert_eq(fx_release(bad[i]), -EBADF);
		fs.fh = fl.fh = bad[i];
		cr_assert_eq(fx_call(FUSE_FSYNC, 2, &fs, sizeof(fs), NULL, 0, NULL, 0, NULL, 0,
				     NULL), -EBADF);
		cr_assert_eq(fx_call(FUSE_FLUSH, 2, &fl, sizeof(fl), NULL, 0, NULL, 0, NULL, 0,
				     NULL), -EBADF);
	}
	cr_assert_eq(fx_read(dh, 0, 1, buf, NULL), -EBADF, "a directory handle READ");
	cr_assert_eq(fx_release(dh), -EBADF, "RELEASE of a directory handle");
	cr_assert_eq(fx_readdir(FUSE_READDIR, fh, 0, 4096, buf, &got), -EBADF);
	cr_assert_eq(fx_releasedir(fh), -EBADF);
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(fx_release(fh), -EBADF, "double release");
	cr_assert_eq(fx_read(fh, 0, 1, buf, NULL), -EBADF, "read after release");
	/* A new handle in the recycled slot does not revive the old number. */
	uint64_t fh2 = open_rel("f", O_RDWR);
	cr_assert_neq(fh2, fh);
	cr_assert_eq(fx_read(fh, 0, 1, buf, NULL), -EBADF);
	cr_assert_eq(fx_read(fh2, 0, 1, buf, NULL), 0);
	cr_assert_eq(fx_releasedir(dh), 0);
}

/* ---- kill suid/sgid -------------------------------------------------------------------- */

static mode_t host_mode(const char *rel)
{
	struct stat st;

	cr_assert_eq(stat(fx_path(rel), &st), 0);
	return st.st_mode & 07777;
}

Test(fuse_rw, write_kills_suid_when_asked)
{
	struct fuse_write_in in = { .offset = 0, .size = 1 };
	struct fuse_write_out o;

	fx_write_file("f", "x", 1);
	cr_assert_eq(chmod(fx_path("f"), 06755), 0);
	in.fh = open_rel("f", O_RDWR);
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), "y", 1, NULL, 0, &o, sizeof(o), NULL), 0);
	cr_assert_eq(host_mode("f"), 06755, "no flag, no change (guest root writes)");
	in.write_flags = FUSE_WRITE_KILL_SUIDGID;
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), "z", 1, NULL, 0, &o, sizeof(o), NULL), 0);
	cr_assert_eq(host_mode("f"), 0755);
	/* setgid without group-exec is a locking mark, not a privilege: kept. */
	cr_assert_eq(chmod(fx_path("f"), 06745), 0);
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), "z", 1, NULL, 0, &o, sizeof(o), NULL), 0);
	cr_assert_eq(host_mode("f"), 02745);
}

/* File capabilities go on any write, as on Linux (the host kernel does it for us even
 * though we write as root; this pins that). */
Test(fuse_rw, write_drops_file_capabilities)
{
	/* vfs_cap_data revision 2, effective, CAP_NET_RAW permitted */
	static const uint32_t cap[5] = { 0x02000001, 1u << 13, 0, 0, 0 };
	char buf[32];
	uint64_t fh;

	if (geteuid() != 0)
		cr_skip_test("needs root to set security.capability");
	fx_write_file("f", "x", 1);
	if (setxattr(fx_path("f"), "security.capability", cap, sizeof(cap), 0))
		cr_skip_test("no file capabilities here: %s", strerror(errno));
	fh = open_rel("f", O_RDWR);
	cr_assert_eq(fx_write(fh, 0, "y", 1, NULL), 0);
	cr_assert_eq(getxattr(fx_path("f"), "security.capability", buf, sizeof(buf)), -1);
	cr_assert_eq(errno, ENODATA);
}

Test(fuse_rw, open_trunc_kills_suid_when_asked)
{
	struct fuse_open_in in = { .flags = O_WRONLY | O_TRUNC, .open_flags = FUSE_OPEN_KILL_SUIDGID };
	struct fuse_open_out o;

	fx_write_file("f", "xyz", 3);
	cr_assert_eq(chmod(fx_path("f"), 04755), 0);
	cr_assert_eq(fx_call(FUSE_OPEN, fx_node("f"), &in, sizeof(in), NULL, 0, NULL, 0, &o,
			     sizeof(o), NULL), 0);
	cr_assert_eq(host_mode("f"), 0755);
}

/* ---- the other file ops ---------------------------------------------------------------- */

Test(fuse_fileops, fsync_flush_syncfs)
{
	struct fuse_fsync_in fs = { .fsync_flags = 0 };
	struct fuse_flush_in fl = { .lock_owner = 99 };
	struct fuse_syncfs_in sy = { 0 };

	fx_write_file("f", "x", 1);
	fs.fh = fl.fh = open_rel("f", O_RDWR);
	cr_assert_eq(fx_call(FUSE_FSYNC, 2, &fs, sizeof(fs), NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	fs.fsync_flags = FUSE_FSYNC_FDATASYNC;
	cr_assert_eq(fx_call(FUSE_FSYNC, 2, &fs, sizeof(fs), NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	cr_assert_eq(fx_call(FUSE_FLUSH, 2, &fl, sizeof(fl), NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	cr_assert_eq(fx_call(FUSE_SYNCFS, 1, &sy, sizeof(sy), NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	/* FLUSH closes nothing the guest still uses. */
	cr_assert_eq(fx_write(fl.fh, 1, "y", 1, NULL), 0);
}

static int fallocate_op(uint64_t fh, uint64_t off, uint64_t len, uint32_t mode)
{
	struct fuse_fallocate_in in = { .fh = fh, .offset = off, .length = len, .mode = mode };

	return fx_call(FUSE_FALLOCATE, 2, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

Test(fuse_fileops, fallocate)
{
	struct stat st;
	uint64_t fh;

	fx_write_file("f", "", 0);
	fh = open_rel("f", O_RDWR);
	cr_assert_eq(fallocate_op(fh, 0, 8192, 0), 0);
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(st.st_size, 8192);
	cr_assert_eq(fallocate_op(fh, 8192, 4096, FALLOC_FL_KEEP_SIZE), 0);
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(st.st_size, 8192, "KEEP_SIZE");
	cr_assert_eq(fallocate_op(fh, 0, 4096, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), 0);
	cr_assert_eq(fallocate_op(fh, 0, 0, 0), -EINVAL, "zero length");
	cr_assert_eq(fallocate_op(fh, 1ULL << 63, 10, 0), -EINVAL, "negative offset");
	cr_assert_eq(fallocate_op(fh, INT64_MAX - 10, 100, 0), -EFBIG, "offset+length wraps");
	cr_assert_eq(fallocate_op(fh, 10, UINT64_MAX, 0), -EINVAL);
	cr_assert_eq(fallocate_op(fh, 0, 10, 0x80), -EOPNOTSUPP, "unknown mode");
	cr_assert_eq(fallocate_op(0xabcdef, 0, 10, 0), -EBADF);
}

static int lseek_op(uint64_t fh, uint64_t off, uint32_t whence, uint64_t *res)
{
	struct fuse_lseek_in in = { .fh = fh, .offset = off, .whence = whence };
	struct fuse_lseek_out o = { 0 };
	int ret = fx_call(FUSE_LSEEK, 2, &in, sizeof(in), NULL, 0, NULL, 0, &o, sizeof(o), NULL);

	*res = o.offset;
	return ret;
}

Test(fuse_fileops, lseek_data_and_hole)
{
	uint64_t fh, r;
	int fd;

	fd = open(fx_path("sparse"), O_CREAT | O_RDWR, 0644);
	cr_assert_eq(pwrite(fd, "data", 4, 1 << 20), 4);
	close(fd);
	fh = open_rel("sparse", O_RDONLY);
	cr_assert_eq(lseek_op(fh, 0, SEEK_DATA, &r), 0);
	cr_assert_leq(r, 1 << 20);
	cr_assert_gt(r, 0, "ext4 reports the leading hole");
	cr_assert_eq(lseek_op(fh, 1 << 20, SEEK_HOLE, &r), 0);
	cr_assert_eq(r, (1 << 20) + 4);
	cr_assert_eq(lseek_op(fh, (1 << 20) + 100, SEEK_DATA, &r), -ENXIO);
	cr_assert_eq(lseek_op(fh, 0, SEEK_SET, &r), -EINVAL);
	cr_assert_eq(lseek_op(fh, 0, SEEK_END, &r), -EINVAL);
	cr_assert_eq(lseek_op(fh, 1ULL << 63, SEEK_DATA, &r), -EINVAL);
	cr_assert_eq(lseek_op(fh + 1, 0, SEEK_DATA, &r), -EBADF);
}

static int copy_op(uint64_t fi, uint64_t oi, uint64_t fo, uint64_t oo, uint64_t len,
		   uint64_t flags, uint32_t *copied)
{
	struct fuse_copy_file_range_in in = { .fh_in = fi, .off_in = oi, .nodeid_out = 2,
					      .fh_out = fo, .off_out = oo, .len = len,
					      .flags = flags };
	struct fuse_write_out o = { 0 };
	int ret = fx_call(FUSE_COPY_FILE_RANGE, 2, &in, sizeof(in), NULL, 0, NULL, 0, &o,
			  sizeof(o), NULL);

	if (copied)
		*copied = o.size;
	return ret;
}

Test(fuse_fileops, copy_file_range)
{
	uint64_t a, b;
	uint32_t n;
	char buf[16] = { 0 };

	fx_write_file("a", "0123456789", 10);
	fx_write_file("b", "", 0);
	a = open_rel("a", O_RDONLY);
	b = open_rel("b", O_RDWR);
	cr_assert_eq(copy_op(a, 2, b, 1, 5, 0, &n), 0);
	cr_assert_eq(n, 5);
	host_read("b", buf, 6);
	cr_assert_eq(memcmp(buf, "\0" "23456", 6), 0);
	cr_assert_eq(copy_op(a, 0, b, 0, 5, 1, &n), -EINVAL, "flags");
	cr_assert_eq(copy_op(a, 1ULL << 63, b, 0, 5, 0, &n), -EINVAL);
	cr_assert_eq(copy_op(a, 0, b, 1ULL << 63, 5, 0, &n), -EINVAL);
	cr_assert_eq(copy_op(a, INT64_MAX - 2, b, 0, 5, 0, &n), -EINVAL, "input range wraps");
	cr_assert_eq(copy_op(a, 0, b, INT64_MAX - 2, 5, 0, &n), -EFBIG, "output range wraps");
	cr_assert_eq(copy_op(a, 0, 0x9999, 0, 5, 0, &n), -EBADF);
	cr_assert_eq(copy_op(0x9999, 0, b, 0, 5, 0, &n), -EBADF);
	cr_assert_eq(copy_op(a, 0, b, 0, UINT64_MAX, 0, &n), 0, "huge len is clamped");
	cr_assert_eq(n, 10);
}

Test(fuse_fileops, release_drops_flock_when_asked)
{
	struct fuse_release_in rel = { .release_flags = FUSE_RELEASE_FLOCK_UNLOCK };
	struct fuse_lk_in lk = { .lk = { .type = F_WRLCK, .end = INT64_MAX },
				 .lk_flags = FUSE_LK_FLOCK };
	int fd;

	fx_write_file("f", "x", 1);
	lk.fh = rel.fh = open_rel("f", O_RDWR);
	cr_assert_eq(fx_call(FUSE_SETLK, 2, &lk, sizeof(lk), NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	fd = open(fx_path("f"), O_RDONLY);
	cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), -1, "the guest's flock is visible on the host");
	cr_assert_eq(fx_call(FUSE_RELEASE, 2, &rel, sizeof(rel), NULL, 0, NULL, 0, NULL, 0, NULL),
		     0);
	cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
}

/* Issue 9 finding 11(b): INIT announces max_write = 1 MiB; a WRITE beyond it, and any
 * request longer than the largest a kernel sends, is refused before anything runs. */
Test(fuse_rw, oversized_requests_refused)
{
	struct fuse_write_in in = { .offset = 0 };
	struct fuse_write_out o;
	struct fuse_getattr_in g = { 0 };
	struct fuse_attr_out ao;
	struct stat st;
	size_t big = 4u << 20;
	char *data = malloc(big);

	cr_assert_not_null(data);
	memset(data, 'w', big);
	fx_write_file("f", "", 0);
	in.fh = open_rel("f", O_RDWR);
	in.size = (uint32_t)big;
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), data, big, NULL, 0, &o, sizeof(o),
			     NULL), -EINVAL, "a 4 MiB WRITE");
	in.size = (1u << 20) + 4096;
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), data, in.size, NULL, 0, &o,
			     sizeof(o), NULL), -EINVAL, "max_write + 4 KiB");
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(st.st_size, 0, "nothing written");
	in.size = 1u << 20;
	cr_assert_eq(fx_call(FUSE_WRITE, 2, &in, sizeof(in), data, in.size, NULL, 0, &o,
			     sizeof(o), NULL), 0, "exactly max_write");
	cr_assert_eq(o.size, 1u << 20);
	/* Any op: 2 MiB of trailing bytes make a request no kernel sends. */
	cr_assert_eq(fx_call(FUSE_GETATTR, FUSE_ROOT_ID, &g, sizeof(g), data, 2u << 20, NULL, 0,
			     &ao, sizeof(ao), NULL), -EINVAL);
	cr_assert_eq(fx_call(FUSE_GETATTR, FUSE_ROOT_ID, &g, sizeof(g), data, 100, NULL, 0,
			     &ao, sizeof(ao), NULL), 0, "a little extra is still fine");
	free(data);
}
