/* Directory streams through the FUSE server (fs/dir.c): every entry exactly once, offsets
 * that are the host's cookies (so seeking back works), buffers too small for an entry,
 * READDIRPLUS lookups counted only for entries returned, and handle checks. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

#if defined(__SANITIZE_ADDRESS__)
/* ASan's allocator (its header is not installed here); glibc's mallinfo2 does not see it. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

TestSuite(fuse_readdir, .init = fx_setup, .fini = fx_teardown);

#define NFILES 60

struct seen {
	char name[NFILES + 2][300];
	uint64_t off[NFILES + 2], nodeid[NFILES + 2];
	uint32_t type[NFILES + 2];
	int n;
};

/* Names of varying length, so entries straddle buffer boundaries differently. */
static void make_files(void)
{
	char rel[300];

	for (int i = 0; i < NFILES; i++) {
		int len = 1 + (i * 37) % 200;
		memset(rel, 'a' + i % 26, (size_t)len);
		snprintf(rel + len, sizeof(rel) - (size_t)len, "%d", i);
		fx_write_file(rel, "x", 1);
	}
}

/* Read the whole directory in `size`-byte replies, continuing from each reply's last
 * offset. */
static void read_all(uint32_t op, uint64_t dh, uint32_t size, struct seen *s)
{
	static uint8_t buf[65536];
	uint64_t off = 0;
	size_t got, pos;

	memset(s, 0, sizeof(*s));
	for (int rounds = 0; rounds < 1000; rounds++) {
		const struct fuse_dirent *d;
		const struct fuse_entry_out *eo;
		cr_assert_eq(fx_readdir(op, dh, off, size, buf, &got), 0);
		cr_assert_leq(got, size);
		if (got == 0)
			return;
		pos = 0;
		while ((d = fx_dirent_next(buf, got, &pos, op == FUSE_READDIRPLUS, &eo))) {
			cr_assert_lt(s->n, NFILES + 2, "more entries than the directory has");
			cr_assert_leq(d->namelen, 255);
			memcpy(s->name[s->n], d->name, d->namelen);
			s->off[s->n] = d->off;
			s->type[s->n] = d->type;
			s->nodeid[s->n] = eo ? eo->nodeid : 0;
			s->n++;
			off = d->off;
		}
	}
	cr_assert_fail("READDIR never ended");
}

static int find(const struct seen *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->name[i], name))
			return i;
	return -1;
}

/* What the host lists, and with which cookies. */
static void host_list(struct seen *s)
{
	DIR *d = opendir(fx.share);
	struct dirent *de;

	memset(s, 0, sizeof(*s));
	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		cr_assert_lt(s->n, NFILES + 2);
		snprintf(s->name[s->n], sizeof(s->name[0]), "%s", de->d_name);
		s->off[s->n] = (uint64_t)telldir(d);
		s->n++;
	}
	closedir(d);
}

Test(fuse_readdir, every_entry_once_with_host_cookies)
{
	static struct seen got, host;
	static const uint32_t sizes[] = { 4096, 333, 100000, 1 << 16 };
	uint64_t dh;

	make_files();
	host_list(&host);
	cr_assert_eq(host.n, NFILES + 2);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		read_all(FUSE_READDIR, dh, sizes[k], &got);
		cr_assert_eq(got.n, host.n, "size %u: %d entries, host has %d", sizes[k], got.n,
			     host.n);
		for (int i = 0; i < host.n; i++) {
			int j = find(&got, host.name[i]);
			cr_assert_geq(j, 0, "%s missing", host.name[i]);
			cr_assert_eq(got.off[j], host.off[i], "%s: offset is not the host cookie",
				     host.name[i]);
			cr_assert_eq(find(&got, host.name[i]), j);
		}
		cr_assert_eq(got.type[find(&got, ".")], DT_DIR);
		cr_assert_eq(got.type[find(&got, host.name[2][0] == '.' ? host.name[3] : host.name[2])],
			     DT_REG);
	}
	cr_assert_eq(fx_releasedir(dh), 0);
}

/* Starting from any entry's offset continues right after it. */
Test(fuse_readdir, seek_to_any_offset)
{
	static struct seen all;
	static uint8_t buf[4096];
	const struct fuse_dirent *d;
	uint64_t dh;
	size_t got, pos;

	make_files();
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	read_all(FUSE_READDIR, dh, 4096, &all);
	for (int i = all.n - 2; i >= 0; i -= 7) {
		cr_assert_eq(fx_readdir(FUSE_READDIR, dh, all.off[i], sizeof(buf), buf, &got), 0);
		pos = 0;
		d = fx_dirent_next(buf, got, &pos, false, NULL);
		cr_assert_not_null(d);
		cr_assert_eq(d->namelen, strlen(all.name[i + 1]));
		cr_assert_eq(memcmp(d->name, all.name[i + 1], d->namelen), 0,
			     "after entry %d came the wrong one", i);
	}
	/* Past the last entry: nothing, successfully. */
	cr_assert_eq(fx_readdir(FUSE_READDIR, dh, all.off[all.n - 1], sizeof(buf), buf, &got), 0);
	cr_assert_eq(got, 0);
	cr_assert_eq(fx_readdir(FUSE_READDIR, dh, 1ULL << 63, sizeof(buf), buf, &got), -EINVAL);
}

/* A buffer smaller than the next entry: an empty reply, not an error, and the entry is
 * still there for a bigger buffer. */
Test(fuse_readdir, buffer_smaller_than_one_entry)
{
	static uint8_t buf[4096];
	const struct fuse_dirent *d;
	uint64_t dh;
	size_t got, pos = 0;

	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	for (uint32_t size = 0; size < FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + 1); size++) {
		cr_assert_eq(fx_readdir(FUSE_READDIR, dh, 0, size, buf, &got), 0, "size %u", size);
		cr_assert_eq(got, 0, "size %u returned %zu bytes", size, got);
	}
	cr_assert_eq(fx_readdir(FUSE_READDIRPLUS, dh, 0, 100, buf, &got), 0);
	cr_assert_eq(got, 0);
	/* Exactly one entry's worth. */
	cr_assert_eq(fx_readdir(FUSE_READDIR, dh, 0, FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + 2), buf,
				&got), 0);
	d = fx_dirent_next(buf, got, &pos, false, NULL);
	cr_assert_not_null(d);
	cr_assert_eq(pos, got, "one entry only");
	cr_assert_eq(fx_releasedir(dh), 0);
}

Test(fuse_readdir, plus_looks_up_returned_entries_only)
{
	static uint8_t buf[8192];
	const struct fuse_entry_out *eo;
	const struct fuse_dirent *d;
	struct fuse_entry_out e;
	struct stat st;
	uint64_t dh;
	size_t got, pos = 0;
	int files = 0, dots = 0;
	char name[300];

	fx_write_file("f1", "x", 1);
	fx_write_file("f2", "yy", 2);
	mkdir(fx_path("sub"), 0755);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	cr_assert_eq(fx_readdir(FUSE_READDIRPLUS, dh, 0, sizeof(buf), buf, &got), 0);
	while ((d = fx_dirent_next(buf, got, &pos, true, &eo))) {
		memcpy(name, d->name, d->namelen);
		name[d->namelen] = '\0';
		if (!strcmp(name, ".") || !strcmp(name, "..")) {
			cr_assert_eq(eo->nodeid, 0, "'%s' must carry no lookup", name);
			dots++;
			continue;
		}
		files++;
		cr_assert_neq(eo->nodeid, 0, "%s has no nodeid", name);
		cr_assert_eq(stat(fx_path(name), &st), 0);
		cr_assert_eq(eo->attr.ino, st.st_ino);
		cr_assert_eq(eo->attr.size, (uint64_t)st.st_size);
		cr_assert_eq(d->ino, st.st_ino);
		cr_assert_eq(eo->entry_valid, 1);
		/* Exactly one lookup taken: one FORGET ends it. */
		cr_assert_eq(fx_forget(eo->nodeid, 1), FX_NOREPLY);
		cr_assert_eq(fx_getattr(eo->nodeid, NULL), -ESTALE, "%s: lookup count != 1", name);
	}
	cr_assert_eq(dots, 2);
	cr_assert_eq(files, 3);

	/* A buffer with room for a single entry: only that entry is looked up. */
	for (uint64_t off = 0;;) {
		pos = 0;
		cr_assert_eq(fx_readdir(FUSE_READDIRPLUS, dh, off, FUSE_NAME_OFFSET_DIRENTPLUS + 8, buf,
					&got), 0);
		if (!got)
			break;
		d = fx_dirent_next(buf, got, &pos, true, &eo);
		cr_assert_eq(pos, got);
		off = d->off;
		if (d->namelen == 2 && d->name[0] == 'f') {
			/* Its neighbour was not looked up by this call: a fresh lookup is the
			 * only one, so forgetting it once frees it. */
			const char *other = d->name[1] == '1' ? "f2" : "f1";
			cr_assert_eq(fx_lookup(FUSE_ROOT_ID, other, &e), 0);
			cr_assert_eq(fx_forget(e.nodeid, 1), FX_NOREPLY);
			cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE, "%s looked up unreturned",
				     other);
			cr_assert_eq(fx_forget(eo->nodeid, 1), FX_NOREPLY);
		} else if (eo->nodeid) {
			cr_assert_eq(fx_forget(eo->nodeid, 1), FX_NOREPLY);
		}
	}
	cr_assert_eq(fx_releasedir(dh), 0);
}

/* Nothing the host listed is kept between calls: an entry removed after one READDIR is
 * not listed (nor looked up) by the next, which reads the directory again from its offset.
 * (An entry whose lookup fails is listed without a nodeid: test_fuse_mounts.c.) */
Test(fuse_readdir, plus_rereads_the_host_between_calls)
{
	static uint8_t buf[8192];
	const struct fuse_entry_out *eo;
	const struct fuse_dirent *d;
	uint64_t dh;
	size_t got, pos = 0;
	bool first_stays, stays = false;

	fx_write_file("gone", "x", 1);
	fx_write_file("stays", "x", 1);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	cr_assert_eq(fx_readdir(FUSE_READDIR, dh, 0, FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + 1), buf,
				&got), 0);
	pos = 0;
	d = fx_dirent_next(buf, got, &pos, false, NULL);
	cr_assert_not_null(d);
	first_stays = d->namelen == 5 && !memcmp(d->name, "stays", 5);
	cr_assert_eq(unlink(fx_path("gone")), 0);
	cr_assert_eq(fx_readdir(FUSE_READDIRPLUS, dh, d->off, sizeof(buf), buf, &got), 0);
	pos = 0;
	while ((d = fx_dirent_next(buf, got, &pos, true, &eo))) {
		cr_assert_not(d->namelen == 4 && !memcmp(d->name, "gone", 4), "a removed entry listed");
		if (d->namelen == 5 && !memcmp(d->name, "stays", 5)) {
			cr_assert_neq(eo->nodeid, 0);
			cr_assert_eq(fx_forget(eo->nodeid, 1), FX_NOREPLY);
			stays = true;
		}
	}
	cr_assert(stays || first_stays, "stays not listed");
	cr_assert_eq(fx_releasedir(dh), 0);
}

Test(fuse_readdir, subdirectory_and_removed_directory)
{
	static struct seen s;
	struct fuse_entry_out d;
	uint64_t dh;

	mkdir(fx_path("d"), 0755);
	fx_write_file("d/inner", "x", 1);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "d", &d), 0);
	cr_assert_eq(fx_opendir(d.nodeid, &dh), 0);
	read_all(FUSE_READDIRPLUS, dh, 4096, &s);
	cr_assert_eq(s.n, 3);
	cr_assert_geq(find(&s, "inner"), 0);
	cr_assert_eq(fx_releasedir(dh), 0);
	cr_assert_eq(unlink(fx_path("d/inner")), 0);
	cr_assert_eq(rmdir(fx_path("d")), 0);
	cr_assert_eq(fx_opendir(d.nodeid, &dh), 0);
	/* What Linux says of a directory that is gone. */
	cr_assert_eq(fx_readdir(FUSE_READDIR, dh, 0, sizeof(s.name), s.name, NULL), -ENOENT);
	cr_assert_eq(fx_releasedir(dh), 0);
}

Test(fuse_readdir, handles_checked)
{
	struct fuse_fsync_in fs = { 0 };
	uint64_t dh, fh;
	uint8_t buf[256];
	size_t got;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_opendir(fx_node("f"), &dh), -ENOTDIR);
	cr_assert_eq(fx_opendir(0x12345, &dh), -ESTALE);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	fs.fh = dh;
	cr_assert_eq(fx_call(FUSE_FSYNCDIR, 1, &fs, sizeof(fs), NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	fs.fsync_flags = FUSE_FSYNC_FDATASYNC;
	cr_assert_eq(fx_call(FUSE_FSYNCDIR, 1, &fs, sizeof(fs), NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	cr_assert_eq(fx_open(fx_node("f"), O_RDONLY, &fh), 0);
	fs.fh = fh;
	cr_assert_eq(fx_call(FUSE_FSYNCDIR, 1, &fs, sizeof(fs), NULL, 0, NULL, 0, NULL, 0, NULL),
		     -EBADF, "a file handle is not a directory handle");
	cr_assert_eq(fx_readdir(FUSE_READDIRPLUS, fh, 0, sizeof(buf), buf, &got), -EBADF);
	cr_assert_eq(fx_releasedir(dh), 0);
	cr_assert_eq(fx_releasedir(dh), -EBADF);
	cr_assert_eq(fx_readdir(FUSE_READDIR, dh, 0, sizeof(buf), buf, &got), -EBADF);
	cr_assert_eq(fx_readdir(FUSE_READDIR, 0, 0, sizeof(buf), buf, &got), -EBADF);
}

Test(fuse_readdir, cache_always_keeps_directory_pages)
{
	struct fuse_open_in in = { 0 };
	struct fuse_open_out o;

	fx_teardown();
	fx_start(false, FUSE_CACHE_ALWAYS, true, true);
	cr_assert_eq(fx_call(FUSE_OPENDIR, FUSE_ROOT_ID, &in, sizeof(in), NULL, 0, NULL, 0, &o,
			     sizeof(o), NULL), 0);
	cr_assert_eq(o.open_flags, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR);
}

/* Heap bytes in use, as the allocator this build links sees them. */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return __sanitizer_get_current_allocated_bytes();
#else
	return mallinfo2().uordblks;
#endif
}

/* Issue 9 finding 6: every open directory handle kept a 32 KiB getdents buffer, so a guest
 * opening a million directories took 32 GiB of host memory.  A handle that has been read
 * from must cost about its struct, and reading still resumes exactly across calls. */
Test(fuse_readdir, open_handles_hold_no_buffer)
{
	enum { NH = 200 };
	static uint64_t dh[NH];
	static struct seen got, host;
	static uint8_t buf[4096];
	size_t before, after, n;

	make_files();
	host_list(&host);
	/* Grow the handle table first, so its growth is not counted below. */
	for (int i = 0; i < NH; i++)
		cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh[i]), 0);
	for (int i = 0; i < NH; i++)
		cr_assert_eq(fx_releasedir(dh[i]), 0);
	before = heap_in_use();
	for (int i = 0; i < NH; i++) {
		cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh[i]), 0);
		cr_assert_eq(fx_readdir(FUSE_READDIR, dh[i], 0, 600, buf, &n), 0);
		cr_assert_gt(n, 0);
	}
	after = heap_in_use();
	cr_assert_lt(after > before ? after - before : 0, (size_t)NH * 1024,
		     "%zu heap bytes for %d read directory handles", after - before, NH);
	/* Interleaved small reads on two handles still see every entry once each. */
	read_all(FUSE_READDIR, dh[0], 333, &got);
	cr_assert_eq(got.n, host.n);
	for (int i = 0; i < host.n; i++)
		cr_assert_geq(find(&got, host.name[i]), 0, "%s missing", host.name[i]);
	read_all(FUSE_READDIRPLUS, dh[1], 700, &got);
	cr_assert_eq(got.n, host.n);
	for (int i = 0; i < got.n; i++)
		if (got.nodeid[i])
			cr_assert_eq(fx_forget(got.nodeid[i], 1), FX_NOREPLY);
	for (int i = 0; i < NH; i++)
		cr_assert_eq(fx_releasedir(dh[i]), 0);
}
