/* DAX (fs/dax.c) against a plain mmap'd window, no KVM: what FUSE_SETUPMAPPING and
 * FUSE_REMOVEMAPPING accept and refuse, what the window then holds (file bytes, zeros
 * again after removal), writes through a mapping reaching the file, re-mapping a range,
 * and the rule that keeps a truncated file from killing the VMM: request headers never
 * come from the window, and data moved through it fails with EFAULT instead of SIGBUS. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

#define MiB (1ULL << 20)
#define WIN (8 * MiB)
#define RD FUSE_SETUPMAPPING_FLAG_READ
#define WR FUSE_SETUPMAPPING_FLAG_WRITE
#define NOFH UINT64_MAX

static uint64_t page;

static void dax_setup(void)
{
	page = (uint64_t)sysconf(_SC_PAGESIZE);
	fx_start_dax(false, WIN);
}
static void dax_setup_ro(void)
{
	page = (uint64_t)sysconf(_SC_PAGESIZE);
	fx_start_dax(true, WIN);
}

TestSuite(dax, .init = dax_setup, .fini = fx_teardown);
TestSuite(dax_ro, .init = dax_setup_ro, .fini = fx_teardown);
TestSuite(dax_none, .init = fx_setup, .fini = fx_teardown);

static int setup(uint64_t node, uint64_t fh, uint64_t foff, uint64_t len, uint64_t flags,
		 uint64_t moff)
{
	struct fuse_setupmapping_in in = { .fh = fh, .foffset = foff, .len = len,
					   .flags = flags, .moffset = moff };
	return fx_call(FUSE_SETUPMAPPING, node, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

static int removev(uint64_t node, uint32_t count, const struct fuse_removemapping_one *v,
		   size_t nv)
{
	struct fuse_removemapping_in in = { .count = count };
	return fx_call(FUSE_REMOVEMAPPING, node, &in, sizeof(in), v, nv * sizeof(*v), NULL, 0,
		       NULL, 0, NULL);
}

static int remove1(uint64_t moff, uint64_t len)
{
	struct fuse_removemapping_one one = { .moffset = moff, .len = len };
	return removev(1, 1, &one, 1);
}

/* A file of `n` bytes of a pattern depending on `seed`; the pattern in *out (malloc'd). */
static uint64_t pattern_file(const char *name, size_t n, unsigned seed, uint8_t **out)
{
	uint8_t *b = malloc(n);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31 + seed + (i >> 12));
	fx_write_file(name, b, n);
	*out = b;
	return fx_node(name);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

Test(dax, init_advertises_map_alignment)
{
	cr_assert(fx.init_flags & FUSE_MAP_ALIGNMENT);
	cr_assert_eq(1ULL << fx.map_alignment, page);
}

Test(dax_none, no_window_no_alignment_and_enosys)
{
	cr_assert_not(fx.init_flags & FUSE_MAP_ALIGNMENT);
	cr_assert_eq(fx.map_alignment, 0);
	uint8_t *b;
	uint64_t node = pattern_file("f", 4096, 1, &b);
	free(b);
	cr_assert_eq(setup(node, NOFH, 0, 4096, RD, 0), -ENOSYS);
	cr_assert_eq(remove1(0, 4096), -ENOSYS);
}

Test(dax, read_mapping_shows_file_bytes)
{
	uint8_t *b;
	size_t n = 3 * page + 100;
	uint64_t node = pattern_file("f", n, 7, &b);

	cr_assert(all_zero(fx.dax + 2 * MiB, 2 * MiB), "unmapped window reads zeros");
	cr_assert_eq(setup(node, NOFH, 0, 2 * MiB, RD, 2 * MiB), 0);
	cr_assert_eq(memcmp(fx.dax + 2 * MiB, b, n), 0, "the window shows the file");
	/* The rest of the file's last page reads zeros, like any mapping past EOF in-page. */
	cr_assert(all_zero(fx.dax + 2 * MiB + n, 4 * page - n));
	cr_assert_eq(fuse_dax_mapped(fx.s), 2 * MiB);
	/* A mapping at a file offset. */
	cr_assert_eq(setup(node, NOFH, page, page, RD, 0), 0);
	cr_assert_eq(memcmp(fx.dax, b + page, page), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), 2 * MiB + page);
	free(b);
}

Test(dax, read_mapping_through_an_open_handle)
{
	uint8_t *b;
	uint64_t fh, node = pattern_file("f", 2 * page, 3, &b);

	cr_assert_eq(fx_open(node, O_RDONLY, &fh), 0);
	cr_assert_eq(setup(node, fh, 0, 2 * page, RD, 4 * MiB), 0);
	cr_assert_eq(memcmp(fx.dax + 4 * MiB, b, 2 * page), 0);
	/* A read-only handle cannot back a writable mapping. */
	cr_assert_eq(setup(node, fh, 0, 2 * page, RD | WR, 4 * MiB), -EACCES);
	cr_assert_eq(fx_release(fh), 0);
	free(b);
}

Test(dax, write_mapping_reaches_the_file)
{
	uint8_t *b, got[64];
	uint64_t fh, node = pattern_file("f", 4 * page, 5, &b);

	cr_assert_eq(setup(node, NOFH, 0, 2 * MiB, RD | WR, 0), 0);
	memcpy(fx.dax + page + 10, "written through the window", 26);
	cr_assert_eq(msync(fx.dax, 2 * MiB, MS_SYNC), 0);
	int fd = open(fx_path("f"), O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, got, 26, (off_t)page + 10), 26);
	cr_assert_eq(memcmp(got, "written through the window", 26), 0);
	close(fd);
	/* And through a read-write handle of the node. */
	cr_assert_eq(fx_open(node, O_RDWR, &fh), 0);
	cr_assert_eq(setup(node, fh, page, page, RD | WR, 2 * MiB), 0);
	fx.dax[2 * MiB] = 'Z';
	cr_assert_eq(msync(fx.dax + 2 * MiB, page, MS_SYNC), 0);
	fd = open(fx_path("f"), O_RDONLY);
	cr_assert_eq(pread(fd, got, 1, (off_t)page), 1);
	cr_assert_eq(got[0], 'Z');
	close(fd);
	cr_assert_eq(fx_release(fh), 0);
	free(b);
}

Test(dax, setup_validation)
{
	uint8_t *b;
	uint64_t node = pattern_file("f", 2 * page, 1, &b);
	uint64_t dir = fx_node(".");
	free(b);

	cr_assert_eq(setup(node, NOFH, 0, 0, RD, 0), -EINVAL, "zero length");
	cr_assert_eq(setup(node, NOFH, 0, page, RD, 1), -EINVAL, "moffset misaligned");
	cr_assert_eq(setup(node, NOFH, 0, page, RD, page / 2), -EINVAL, "moffset misaligned");
	cr_assert_eq(setup(node, NOFH, 1, page, RD, 0), -EINVAL, "foffset misaligned");
	cr_assert_eq(setup(node, NOFH, 0, page + 1, RD, 0), -EINVAL, "length misaligned");
	cr_assert_eq(setup(node, NOFH, 0, page, RD, WIN), -EINVAL, "at the window's end");
	cr_assert_eq(setup(node, NOFH, 0, 2 * page, RD, WIN - page), -EINVAL, "past the end");
	cr_assert_eq(setup(node, NOFH, 0, WIN + page, RD, 0), -EINVAL, "longer than the window");
	/* moffset + len wraps to something small. */
	cr_assert_eq(setup(node, NOFH, 0, (uint64_t)0 - page, RD, 2 * page), -EINVAL, "wrap");
	cr_assert_eq(setup(node, NOFH, (uint64_t)0 - page, page, RD, 0), -EINVAL, "foffset wrap");
	cr_assert_eq(setup(node, NOFH, 1ULL << 63, page, RD, 0), -EINVAL, "foffset > off_t");
	cr_assert_eq(setup(node, NOFH, 0, page, 0, 0), -EINVAL, "no flags");
	cr_assert_eq(setup(node, NOFH, 0, page, WR, 0), -EINVAL, "write without read");
	cr_assert_eq(setup(node, NOFH, 0, page, RD | 4, 0), -EINVAL, "unknown flag");
	cr_assert_eq(setup(dir, NOFH, 0, page, RD, 0), -EINVAL, "a directory");
	cr_assert_eq(setup(node, 12345, 0, page, RD, 0), -EBADF, "no such handle");
	cr_assert_eq(setup(0x7777, NOFH, 0, page, RD, 0), -ESTALE, "no such node");
	cr_assert_eq(fuse_dax_mapped(fx.s), 0, "nothing was mapped");
	/* The window's last page is fine. */
	cr_assert_eq(setup(node, NOFH, 0, page, RD, WIN - page), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), page);
}

Test(dax, handle_of_another_node_or_write_only)
{
	uint8_t *b;
	uint64_t fh, a = pattern_file("a", page, 1, &b);
	free(b);
	uint64_t other = pattern_file("b", page, 2, &b);
	free(b);

	cr_assert_eq(fx_open(other, O_RDWR, &fh), 0);
	cr_assert_eq(setup(a, fh, 0, page, RD, 0), -EBADF, "fh of another node");
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(fx_open(a, O_WRONLY, &fh), 0);
	cr_assert_eq(setup(a, fh, 0, page, RD, 0), -EACCES, "write-only handle");
	cr_assert_eq(fx_release(fh), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), 0);
}

Test(dax_ro, read_only_share_maps_read_only)
{
	uint8_t *b;
	uint64_t node = pattern_file("f", page, 9, &b);

	cr_assert_eq(setup(node, NOFH, 0, page, RD | WR, 0), -EROFS);
	cr_assert_eq(setup(node, NOFH, 0, page, RD, 0), 0);
	cr_assert_eq(memcmp(fx.dax, b, page), 0);
	cr_assert_eq(remove1(0, page), 0, "removing is no modification");
	free(b);
}

Test(dax, remove_evict_and_remap)
{
	uint8_t *a, *b;
	uint64_t na = pattern_file("a", 2 * MiB, 1, &a);
	uint64_t nb = pattern_file("b", 2 * MiB, 2, &b);

	cr_assert_eq(setup(na, NOFH, 0, 2 * MiB, RD, 2 * MiB), 0);
	cr_assert_eq(memcmp(fx.dax + 2 * MiB, a, 2 * MiB), 0);
	/* Upgrade in place (what Linux does on a write fault): same range, writable. */
	cr_assert_eq(setup(na, NOFH, 0, 2 * MiB, RD | WR, 2 * MiB), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), 2 * MiB);
	/* Evict: zeros again, the file untouched. */
	cr_assert_eq(remove1(2 * MiB, 2 * MiB), 0);
	cr_assert(all_zero(fx.dax + 2 * MiB, 2 * MiB));
	cr_assert_eq(fuse_dax_mapped(fx.s), 0);
	/* The same range now holds another file. */
	cr_assert_eq(setup(nb, NOFH, 0, 2 * MiB, RD, 2 * MiB), 0);
	cr_assert_eq(memcmp(fx.dax + 2 * MiB, b, 2 * MiB), 0);
	/* Re-mapping over a live mapping without removing it first replaces it. */
	cr_assert_eq(setup(na, NOFH, MiB, MiB, RD, 2 * MiB), 0);
	cr_assert_eq(memcmp(fx.dax + 2 * MiB, a + MiB, MiB), 0);
	cr_assert_eq(memcmp(fx.dax + 3 * MiB, b + MiB, MiB), 0);
	/* Removing an unmapped range is harmless. */
	cr_assert_eq(remove1(6 * MiB, 2 * MiB), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), 2 * MiB);
	free(a);
	free(b);
}

Test(dax, remove_several_at_once)
{
	uint8_t *a;
	uint64_t na = pattern_file("a", 2 * MiB, 1, &a);
	struct fuse_removemapping_one v[3] = {
		{ 0, 2 * MiB }, { 4 * MiB, 2 * MiB }, { 6 * MiB, page },
	};

	for (int i = 0; i < 4; i++)
		cr_assert_eq(setup(na, NOFH, 0, 2 * MiB, RD, (uint64_t)i * 2 * MiB), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), 8 * MiB);
	cr_assert_eq(removev(na, 3, v, 3), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), 4 * MiB - page);
	cr_assert(all_zero(fx.dax, 2 * MiB));
	cr_assert_eq(memcmp(fx.dax + 2 * MiB, a, 2 * MiB), 0, "untouched");
	cr_assert(all_zero(fx.dax + 6 * MiB, page));
	cr_assert_eq(memcmp(fx.dax + 6 * MiB + page, a + page, 2 * MiB - page), 0);
	free(a);
}

Test(dax, remove_validation_is_all_or_nothing)
{
	uint8_t *a;
	uint64_t na = pattern_file("a", 2 * MiB, 1, &a);
	struct fuse_removemapping_one v[2] = { { 0, 2 * MiB }, { 0, 0 } };
	static struct fuse_removemapping_one many[1025];

	cr_assert_eq(setup(na, NOFH, 0, 2 * MiB, RD, 0), 0);
	cr_assert_eq(removev(na, 0, NULL, 0), -EINVAL, "count 0");
	cr_assert_eq(removev(na, 2, v, 1), -EINVAL, "count beyond the payload");
	cr_assert_eq(removev(na, 1025, many, 1025), -EINVAL, "count beyond the maximum");
	cr_assert_eq(removev(na, 2, v, 2), -EINVAL, "a zero-length entry");
	v[1] = (struct fuse_removemapping_one){ WIN, page };
	cr_assert_eq(removev(na, 2, v, 2), -EINVAL, "an entry outside the window");
	v[1] = (struct fuse_removemapping_one){ page, UINT64_MAX - page + 1 };
	cr_assert_eq(removev(na, 2, v, 2), -EINVAL, "an entry that wraps");
	v[1] = (struct fuse_removemapping_one){ 1, page };
	cr_assert_eq(removev(na, 2, v, 2), -EINVAL, "a misaligned entry");
	/* The valid first entry was not applied by any of them. */
	cr_assert_eq(fuse_dax_mapped(fx.s), 2 * MiB);
	cr_assert_eq(memcmp(fx.dax, a, 2 * MiB), 0);
	free(a);
}

Test(dax, destroy_clears_the_window)
{
	uint8_t *a;
	uint64_t na = pattern_file("a", page, 1, &a);

	cr_assert_eq(setup(na, NOFH, 0, page, RD, 0), 0);
	cr_assert_eq(fx_call(FUSE_DESTROY, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), 0);
	cr_assert(all_zero(fx.dax, page));
	free(a);
}

/* ---- window memory as request buffers ------------------------------------------------ */

/* A READ of `size` bytes at `off` with the reply header in `hdr` and the data in `data`.
 * Returns fuse_handle's count; the header is copied to *oh. */
static size_t read_into(uint64_t fh, uint64_t off, uint32_t size, struct fuse_out_header *hdr,
			void *data)
{
	struct {
		struct fuse_in_header h;
		struct fuse_read_in r;
	} req;
	fx_hdr(&req.h, FUSE_READ, 0, sizeof(req));
	memset(&req.r, 0, sizeof(req.r));
	req.r.fh = fh;
	req.r.offset = off;
	req.r.size = size;
	struct iovec in = { &req, sizeof(req) };
	struct iovec out[2] = { { hdr, sizeof(*hdr) }, { data, size } };
	return fuse_handle(fx.s, &in, 1, out, 2);
}

Test(dax, read_reply_data_may_live_in_the_window)
{
	uint8_t *a, *b;
	uint64_t fh, na = pattern_file("a", 2 * page, 1, &a);
	uint64_t nb = pattern_file("b", 2 * page, 2, &b);
	struct fuse_out_header oh;

	/* Like a guest read() of b into a buffer that is a's DAX mapping, writable. */
	cr_assert_eq(setup(na, NOFH, 0, 2 * page, RD | WR, 0), 0);
	cr_assert_eq(fx_open(nb, O_RDONLY, &fh), 0);
	cr_assert_eq(read_into(fh, 0, (uint32_t)page, &oh, fx.dax), sizeof(oh) + page);
	cr_assert_eq(oh.error, 0);
	cr_assert_eq(memcmp(fx.dax, b, page), 0, "the data landed in the window");
	cr_assert_eq(msync(fx.dax, page, MS_SYNC), 0);
	int fd = open(fx_path("a"), O_RDONLY);
	uint8_t got[16];
	cr_assert_eq(pread(fd, got, 16, 0), 16);
	cr_assert_eq(memcmp(got, b, 16), 0, "and in a, through the mapping");
	close(fd);
	/* The reply header never goes into the window: no reply at all. */
	cr_assert_eq(read_into(fh, 0, 16, (struct fuse_out_header *)(fx.dax + page), got), 0);
	cr_assert_eq(fx_release(fh), 0);
	free(a);
	free(b);
}

Test(dax, request_header_in_the_window_is_refused)
{
	/* A GETATTR whose header sits in the (anonymous) window: no reply, nothing read. */
	struct fuse_in_header *h = (struct fuse_in_header *)(fx.dax + 4 * MiB);
	struct fuse_getattr_in *g = (struct fuse_getattr_in *)(h + 1);
	struct fuse_out_header oh;
	uint8_t reply[sizeof(struct fuse_attr_out)];

	fx_hdr(h, FUSE_GETATTR, 1, sizeof(*h) + sizeof(*g));
	memset(g, 0, sizeof(*g));
	struct iovec in = { h, sizeof(*h) + sizeof(*g) };
	struct iovec out[2] = { { &oh, sizeof(oh) }, { reply, sizeof(reply) } };
	cr_assert_eq(fuse_handle(fx.s, &in, 1, out, 2), 0);
	/* Header in RAM but the arguments in the window: an error reply. */
	struct fuse_in_header hr;
	fx_hdr(&hr, FUSE_GETATTR, 1, sizeof(hr) + sizeof(*g));
	struct iovec in2[2] = { { &hr, sizeof(hr) }, { g, sizeof(*g) } };
	cr_assert_eq(fuse_handle(fx.s, in2, 2, out, 2), sizeof(oh));
	cr_assert_eq(oh.error, -EINVAL);
}

Test(dax, truncated_file_under_a_mapping_gives_efault_not_sigbus)
{
	uint8_t *a, *b;
	uint64_t fh, na = pattern_file("a", 4 * page, 1, &a);
	uint64_t nb = pattern_file("b", 4 * page, 2, &b);
	struct fuse_out_header oh;

	cr_assert_eq(setup(na, NOFH, 0, 4 * page, RD | WR, 0), 0);
	/* The host shrinks a: the window's pages past page 1 now raise SIGBUS if touched. */
	cr_assert_eq(truncate(fx_path("a"), (off_t)page), 0);
	cr_assert_eq(fx_open(nb, O_RDWR, &fh), 0);
	/* READ into the dead pages: preadv fails, we reply EFAULT and live. */
	cr_assert_eq(read_into(fh, 0, (uint32_t)page, &oh, fx.dax + 2 * page), sizeof(oh));
	cr_assert_eq(oh.error, -EFAULT);
	/* WRITE from them: the same. */
	struct {
		struct fuse_in_header h;
		struct fuse_write_in w;
	} req;
	fx_hdr(&req.h, FUSE_WRITE, 0, (uint32_t)(sizeof(req) + page));
	memset(&req.w, 0, sizeof(req.w));
	req.w.fh = fh;
	req.w.size = (uint32_t)page;
	struct iovec in[2] = { { &req, sizeof(req) }, { fx.dax + 2 * page, page } };
	uint8_t wout[sizeof(struct fuse_write_out)];
	struct iovec out[2] = { { &oh, sizeof(oh) }, { wout, sizeof(wout) } };
	cr_assert_eq(fuse_handle(fx.s, in, 2, out, 2), sizeof(oh));
	cr_assert_eq(oh.error, -EFAULT);
	/* The page still inside the file works as before. */
	cr_assert_eq(read_into(fh, 0, 16, &oh, fx.dax), sizeof(oh) + 16);
	cr_assert_eq(memcmp(fx.dax, b, 16), 0);
	cr_assert_eq(fx_release(fh), 0);
	free(a);
	free(b);
}

/* A share without a window still never copies through another share's window: a guest
 * buffer there can be a READ's data (preadv), never a header. */
Test(dax_none, another_shares_window_is_data_only)
{
	uint64_t size = 2 * MiB;
	uint8_t *w = fuse_dax_window_create(size), *b;
	cr_assert_not_null(w);
	uint64_t fh, node = pattern_file("f", 4096, 4, &b);
	struct fuse_out_header oh;

	cr_assert_eq(fx_open(node, O_RDONLY, &fh), 0);
	cr_assert_eq(read_into(fh, 0, 4096, &oh, w + 8192), sizeof(oh) + 4096);
	cr_assert_eq(oh.error, 0);
	cr_assert_eq(memcmp(w + 8192, b, 4096), 0);
	cr_assert_eq(read_into(fh, 0, 16, (struct fuse_out_header *)w, b), 0, "header refused");
	cr_assert_eq(fx_release(fh), 0);
	fuse_dax_window_destroy(w, size);
	/* Gone from the registry: the same address range is ordinary memory again. */
	uint8_t *again = malloc(64);
	cr_assert_eq(read_into(fh, 0, 16, &oh, again), sizeof(oh), "stale fh: an error reply");
	free(again);
	free(b);
}

/* Issue 9 finding 11(d): READDIRPLUS entries that could not be written into the reply
 * (here: its payload buffer lies in the window, which the server never copies into) must
 * not keep the lookup taken for them; the guest never saw their node ids. */
Test(dax, readdirplus_unwritten_entries_keep_no_lookup)
{
	struct {
		struct fuse_in_header h;
		struct fuse_read_in r;
	} req;
	struct fuse_out_header oh;
	struct fuse_entry_out e;
	uint64_t dh;

	fx_write_file("f1", "x", 1);
	fx_write_file("f2", "y", 1);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh), 0);
	fx_hdr(&req.h, FUSE_READDIRPLUS, 0, sizeof(req));
	memset(&req.r, 0, sizeof(req.r));
	req.r.fh = dh;
	req.r.size = 4096;
	struct iovec in = { &req, sizeof(req) };
	struct iovec out[2] = { { &oh, sizeof(oh) }, { fx.dax + page, 4096 } };
	size_t n = fuse_handle(fx.s, &in, 1, out, 2);
	cr_assert_eq(n, sizeof(oh), "no entry could be written: an error reply, not %zu bytes", n);
	cr_assert_eq(oh.error, -EFAULT);
	/* One fresh lookup each, one FORGET: gone, so READDIRPLUS kept none. */
	for (int i = 1; i <= 2; i++) {
		char name[4];
		snprintf(name, sizeof(name), "f%d", i);
		cr_assert_eq(fx_lookup(FUSE_ROOT_ID, name, &e), 0);
		cr_assert_eq(fx_forget(e.nodeid, 1), FX_NOREPLY);
		cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE, "%s kept a lookup", name);
	}
	cr_assert_eq(fx_releasedir(dh), 0);
}

/* Issue 9 finding 9: every mapping is a VMA of the VMM, and single-page mappings used up
 * vm.max_map_count (then pthread_create failed).  Live mappings are capped per window: an
 * 8 MiB window (four 2 MiB ranges, what Linux maps at a time) takes 16.  Beyond, ENOSPC;
 * re-mapping or removing is always fine, and cutting a mapping in two counts as two. */
Test(dax, mappings_capped_per_window)
{
	uint8_t *a;
	uint64_t na = pattern_file("a", 128 * page, 1, &a);
	int i;

	/* Every other page, so none of them merge. */
	for (i = 0; i < 16; i++)
		cr_assert_eq(setup(na, NOFH, (uint64_t)i * page, page, RD, 2 * (uint64_t)i * page),
			     0, "mapping %d", i);
	cr_assert_eq(setup(na, NOFH, 16 * page, page, RD, 32 * page), -ENOSPC);
	cr_assert(all_zero(fx.dax + 32 * page, page), "the refused mapping is not there");
	cr_assert_eq(setup(na, NOFH, 20 * page, page, RD, 0), 0, "re-mapping a range in place");
	cr_assert_eq(memcmp(fx.dax, a + 20 * page, page), 0);
	cr_assert_eq(remove1(0, page), 0);
	cr_assert_eq(setup(na, NOFH, 16 * page, page, RD, 32 * page), 0, "room again");
	cr_assert_eq(memcmp(fx.dax + 32 * page, a + 16 * page, page), 0);

	/* 15 single pages and one 64-page mapping: cutting out its middle would make 17. */
	cr_assert_eq(remove1(32 * page, page), 0);
	for (i = 0; i < 16; i++)
		cr_assert_eq(remove1(2 * (uint64_t)i * page, page), 0);
	cr_assert_eq(fuse_dax_mapped(fx.s), 0);
	for (i = 0; i < 15; i++)
		cr_assert_eq(setup(na, NOFH, 0, page, RD, 2 * (uint64_t)i * page), 0);
	cr_assert_eq(setup(na, NOFH, 0, 64 * page, RD, 64 * page), 0);
	cr_assert_eq(remove1(80 * page, page), -ENOSPC, "a cut would be the 17th mapping");
	cr_assert_eq(memcmp(fx.dax + 80 * page, a + 16 * page, page), 0, "still mapped");
	cr_assert_eq(setup(na, NOFH, 0, page, RD, 90 * page), -ENOSPC,
		     "a mapping inside another cuts it too");
	/* Its first page goes: still one mapping (the rest), fine. */
	cr_assert_eq(remove1(64 * page, page), 0);
	cr_assert(all_zero(fx.dax + 64 * page, page));
	/* A whole mapping goes: room for one more. */
	cr_assert_eq(remove1(0, page), 0);
	cr_assert_eq(remove1(80 * page, page), 0, "now the cut fits");
	free(a);
}
