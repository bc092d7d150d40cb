/* FUSE protocol plumbing (fs/fuse.c): INIT negotiation and connection state, and the
 * decoder's defences against a hostile request: lengths that disagree with the chain,
 * truncated arguments, reply buffers too small, unknown opcodes.  Every request goes
 * through chains split at awkward offsets (fuse_util.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

TestSuite(fuse_init, .init = fx_setup_noinit, .fini = fx_teardown);
TestSuite(fuse_decode, .init = fx_setup, .fini = fx_teardown);

#define OUR_FLAGS (FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS | FUSE_ATOMIC_O_TRUNC | \
		   FUSE_EXPORT_SUPPORT | FUSE_BIG_WRITES | FUSE_DONT_MASK |                \
		   FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |     \
		   FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV_V2 |        \
		   FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS)

/* ---- INIT ------------------------------------------------------------------------------ */

Test(fuse_init, every_flag_offered_gets_exactly_ours)
{
	struct fuse_init_out o;

	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, &o), 0);
	cr_assert_eq(o.major, 7);
	cr_assert_eq(o.minor, 38);
	/* cache=auto: no writeback cache; xattr on: POSIX ACLs. */
	cr_assert_eq(o.flags, OUR_FLAGS | FUSE_POSIX_ACL, "flags %#x", o.flags);
	cr_assert_eq(o.max_write, 1u << 20);
	cr_assert_eq(o.max_pages, 256);
	cr_assert_eq(o.time_gran, 1);
	cr_assert_eq(o.max_readahead, 131072);
}

Test(fuse_init, only_offered_flags_come_back)
{
	struct fuse_init_out o;
	uint32_t offer = FUSE_ASYNC_READ | FUSE_SPLICE_READ | FUSE_WRITEBACK_CACHE |
			 FUSE_DO_READDIRPLUS | FUSE_NO_OPEN_SUPPORT;

	cr_assert_eq(fx_init(7, 38, offer, &o), 0);
	cr_assert_eq(o.flags, FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS, "flags %#x", o.flags);
}

Test(fuse_init, nothing_offered_nothing_granted)
{
	struct fuse_init_out o;

	cr_assert_eq(fx_init(7, 38, 0, &o), 0);
	cr_assert_eq(o.flags, 0);
}

Test(fuse_init, cache_always_grants_writeback_xattr_off_no_acl)
{
	struct fuse_init_out o;

	fx_teardown();
	fx_start(false, FUSE_CACHE_ALWAYS, false, false);
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, &o), 0);
	cr_assert_eq(o.flags, OUR_FLAGS | FUSE_WRITEBACK_CACHE, "flags %#x", o.flags);
}

Test(fuse_init, minor_is_the_lower_of_both)
{
	struct fuse_init_out o;

	cr_assert_eq(fx_init(7, 31, FX_ALL_FLAGS, &o), 0);
	cr_assert_eq(o.minor, 31);
	fx_teardown();
	fx_setup_noinit();
	cr_assert_eq(fx_init(7, 99, FX_ALL_FLAGS, &o), 0);
	cr_assert_eq(o.minor, 38);
}

/* A 7.22 kernel reads a 24-byte reply. */
Test(fuse_init, old_minor_gets_the_short_reply)
{
	struct fuse_init_in in = { .major = 7, .minor = 22, .flags = FUSE_ASYNC_READ };
	struct fuse_init_out o;
	size_t got;

	cr_assert_eq(fx_call(FUSE_INIT, 0, &in, sizeof(in), NULL, 0, NULL, 0, &o, sizeof(o), &got), 0);
	cr_assert_eq(got, FUSE_COMPAT_22_INIT_OUT_SIZE);
}

/* Kernels before 7.36 send a 16-byte fuse_init_in. */
Test(fuse_init, compat_16_byte_request)
{
	struct fuse_init_in in = { .major = 7, .minor = 31, .max_readahead = 4096,
				   .flags = FUSE_POSIX_LOCKS };
	struct fuse_init_out o;

	cr_assert_eq(fx_call(FUSE_INIT, 0, &in, 16, NULL, 0, NULL, 0, &o, sizeof(o), NULL), 0);
	cr_assert_eq(o.flags, FUSE_POSIX_LOCKS);
	cr_assert_eq(o.max_readahead, 4096);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0);
}

Test(fuse_init, truncated_request_einval)
{
	struct fuse_init_in in = { .major = 7, .minor = 38 };
	struct fuse_init_out o;

	cr_assert_eq(fx_call(FUSE_INIT, 0, &in, 12, NULL, 0, NULL, 0, &o, sizeof(o), NULL), -EINVAL);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), -EIO, "a failed INIT initialised");
}

Test(fuse_init, major_6_refused)
{
	cr_assert_eq(fx_init(6, 38, FX_ALL_FLAGS, NULL), -EPROTO);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), -EIO);
}

/* A newer major hears ours and may retry; we stay uninitialised until it does. */
Test(fuse_init, major_8_answered_with_ours)
{
	struct fuse_init_out o;

	cr_assert_eq(fx_init(8, 0, FX_ALL_FLAGS, &o), 0);
	cr_assert_eq(o.major, 7);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), -EIO);
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, &o), 0);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0);
}

Test(fuse_init, requests_before_init_get_eio)
{
	struct fuse_entry_out e;

	fx_write_file("f", "x", 1);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), -EIO);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), -EIO);
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, NULL), -EIO);
	cr_assert_eq(access(fx_path("d"), F_OK), -1, "MKDIR ran before INIT");
	/* FORGET never has a reply, not even an error. */
	cr_assert_eq(fx_forget(FUSE_ROOT_ID, 1), FX_NOREPLY);
	/* Unknown opcodes, too, wait for INIT. */
	cr_assert_eq(fx_call(9999, 1, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL), -EIO);
}

Test(fuse_init, second_init_eproto)
{
	struct fuse_init_out o;

	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, &o), 0);
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, &o), -EPROTO);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0, "second INIT broke the session");
}

Test(fuse_init, destroy_resets_and_drops_inodes)
{
	struct fuse_entry_out e;
	uint64_t fh;

	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, NULL), 0);
	fx_write_file("f", "abc", 3);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(fx_open(e.nodeid, O_RDONLY, &fh), 0);
	cr_assert_eq(fx_call(FUSE_DESTROY, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), -EIO, "still initialised after DESTROY");
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, NULL), 0, "no INIT after DESTROY");
	cr_assert_eq(fx_getattr(e.nodeid, NULL), -ESTALE, "inode survived DESTROY");
	cr_assert_eq(fx_read(fh, 0, 3, (char[3]){ 0 }, NULL), -EBADF, "handle survived DESTROY");
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0, "root went with DESTROY");
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", NULL), 0);
}

/* ---- decoding -------------------------------------------------------------------------- */

Test(fuse_decode, unknown_and_unimplemented_opcodes_enosys)
{
	static const uint32_t ops[] = { 0, 7, 19, FUSE_BMAP, FUSE_IOCTL, FUSE_POLL,
		FUSE_NOTIFY_REPLY, FUSE_SETUPMAPPING, FUSE_REMOVEMAPPING, FUSE_TMPFILE, 52,
		CUSE_INIT, FUSE_INIT_BSWAP_RESERVED, 0xffffffffu };
	uint8_t arg[64] = { 0 };

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		cr_assert_eq(fx_call(ops[i], 1, arg, sizeof(arg), NULL, 0, NULL, 0, NULL, 0, NULL),
			     -ENOSYS, "opcode %u", ops[i]);
}

Test(fuse_decode, interrupt_has_no_reply)
{
	struct fuse_interrupt_in in = { .unique = 12345 };

	cr_assert_eq(fx_call(FUSE_INTERRUPT, 0, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL),
		     FX_NOREPLY);
}

/* The header's len against what the chain really holds. */
static size_t getattr_with_len(uint32_t len, size_t chain, void *out, size_t outsz)
{
	uint8_t req[256] = { 0 };
	struct fuse_in_header h;

	fx_hdr(&h, FUSE_GETATTR, FUSE_ROOT_ID, len);
	memcpy(req, &h, sizeof(h));
	return fx_raw(req, chain, out, outsz);
}

static int reply_error(const void *out, size_t n)
{
	struct fuse_out_header oh;

	cr_assert_eq(n, sizeof(oh));
	memcpy(&oh, out, sizeof(oh));
	cr_assert_eq(oh.len, sizeof(oh));
	return oh.error;
}

Test(fuse_decode, len_larger_than_chain_einval)
{
	uint8_t out[200];
	size_t need = sizeof(struct fuse_in_header) + sizeof(struct fuse_getattr_in);

	for (unsigned p = 1; p <= 4; p++) {
		fx.split = p;
		cr_assert_eq(reply_error(out, getattr_with_len(need + 1, need, out, sizeof(out))),
			     -EINVAL);
		cr_assert_eq(reply_error(out, getattr_with_len(0xffffffffu, need, out, sizeof(out))),
			     -EINVAL);
	}
}

Test(fuse_decode, len_smaller_than_chain_einval)
{
	uint8_t out[200];
	size_t need = sizeof(struct fuse_in_header) + sizeof(struct fuse_getattr_in);

	cr_assert_eq(reply_error(out, getattr_with_len(need - 1, need, out, sizeof(out))), -EINVAL);
	cr_assert_eq(reply_error(out, getattr_with_len(need, need + 8, out, sizeof(out))), -EINVAL);
	/* Below the header itself. */
	cr_assert_eq(reply_error(out, getattr_with_len(8, need, out, sizeof(out))), -EINVAL);
	cr_assert_eq(reply_error(out, getattr_with_len(0, need, out, sizeof(out))), -EINVAL);
	/* Exactly right works (so the tests above can fail). */
	cr_assert_eq(getattr_with_len(need, need, out, sizeof(out)),
		     sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out));
}

Test(fuse_decode, chain_shorter_than_header_no_reply)
{
	uint8_t out[200];

	for (size_t n = 0; n < sizeof(struct fuse_in_header); n += 7)
		cr_assert_eq(getattr_with_len((uint32_t)n, n, out, sizeof(out)), 0);
	cr_assert_eq(fuse_handle(fx.s, NULL, 0, NULL, 0), 0);
	cr_assert_eq(fuse_handle(fx.s, NULL, -3, NULL, -1), 0);
}

/* Every op with a fixed argument refuses one byte less of it. */
Test(fuse_decode, truncated_arguments_einval)
{
	static const struct { uint32_t op; size_t size; } ops[] = {
		{ FUSE_GETATTR, sizeof(struct fuse_getattr_in) },
		{ FUSE_SETATTR, sizeof(struct fuse_setattr_in) },
		{ FUSE_MKNOD, sizeof(struct fuse_mknod_in) },
		{ FUSE_MKDIR, sizeof(struct fuse_mkdir_in) },
		{ FUSE_RENAME, sizeof(struct fuse_rename_in) },
		{ FUSE_RENAME2, sizeof(struct fuse_rename2_in) },
		{ FUSE_LINK, sizeof(struct fuse_link_in) },
		{ FUSE_OPEN, sizeof(struct fuse_open_in) },
		{ FUSE_READ, sizeof(struct fuse_read_in) },
		{ FUSE_WRITE, sizeof(struct fuse_write_in) },
		{ FUSE_RELEASE, sizeof(struct fuse_release_in) },
		{ FUSE_FSYNC, sizeof(struct fuse_fsync_in) },
		{ FUSE_SETXATTR, 8 },
		{ FUSE_GETXATTR, sizeof(struct fuse_getxattr_in) },
		{ FUSE_LISTXATTR, sizeof(struct fuse_getxattr_in) },
		{ FUSE_FLUSH, sizeof(struct fuse_flush_in) },
		{ FUSE_OPENDIR, sizeof(struct fuse_open_in) },
		{ FUSE_READDIR, sizeof(struct fuse_read_in) },
		{ FUSE_READDIRPLUS, sizeof(struct fuse_read_in) },
		{ FUSE_RELEASEDIR, sizeof(struct fuse_release_in) },
		{ FUSE_FSYNCDIR, sizeof(struct fuse_fsync_in) },
		{ FUSE_GETLK, sizeof(struct fuse_lk_in) },
		{ FUSE_SETLK, sizeof(struct fuse_lk_in) },
		{ FUSE_SETLKW, sizeof(struct fuse_lk_in) },
		{ FUSE_ACCESS, sizeof(struct fuse_access_in) },
		{ FUSE_CREATE, sizeof(struct fuse_create_in) },
		{ FUSE_FALLOCATE, sizeof(struct fuse_fallocate_in) },
		{ FUSE_LSEEK, sizeof(struct fuse_lseek_in) },
		{ FUSE_COPY_FILE_RANGE, sizeof(struct fuse_copy_file_range_in) },
		{ FUSE_SYNCFS, sizeof(struct fuse_syncfs_in) },
	};
	uint8_t arg[128] = { 0 }, reply[512];

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		cr_assert_eq(fx_call(ops[i].op, FUSE_ROOT_ID, arg, ops[i].size - 1, NULL, 0, NULL,
				     0, reply, sizeof(reply), NULL), -EINVAL, "opcode %u", ops[i].op);
		cr_assert_eq(fx_call(ops[i].op, FUSE_ROOT_ID, NULL, 0, NULL, 0, NULL, 0, reply,
				     sizeof(reply), NULL), -EINVAL, "opcode %u, no args", ops[i].op);
	}
	/* Malformed FORGETs are dropped silently. */
	cr_assert_eq(fx_call(FUSE_FORGET, FUSE_ROOT_ID, arg, 7, NULL, 0, NULL, 0, NULL, 0, NULL),
		     FX_NOREPLY);
	cr_assert_eq(fx_call(FUSE_BATCH_FORGET, 0, arg, 7, NULL, 0, NULL, 0, NULL, 0, NULL),
		     FX_NOREPLY);
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0);
}

/* Extensions we never negotiated, claiming more than the request has. */
Test(fuse_decode, extension_length_beyond_request_einval)
{
	uint8_t req[sizeof(struct fuse_in_header) + sizeof(struct fuse_getattr_in)] = { 0 };
	struct fuse_in_header h;
	uint8_t out[200];

	fx_hdr(&h, FUSE_GETATTR, FUSE_ROOT_ID, sizeof(req));
	h.total_extlen = 3;
	memcpy(req, &h, sizeof(h));
	cr_assert_eq(reply_error(out, fx_raw(req, sizeof(req), out, sizeof(out))), -EINVAL);
	h.total_extlen = 0xffff;
	memcpy(req, &h, sizeof(h));
	cr_assert_eq(reply_error(out, fx_raw(req, sizeof(req), out, sizeof(out))), -EINVAL);
}

/* No room for a reply at all: nothing runs (it would change the share unseen). */
Test(fuse_decode, no_reply_buffer_nothing_runs)
{
	const char name[] = "victim";
	uint8_t req[sizeof(struct fuse_in_header) + sizeof(name)];
	struct fuse_in_header h;
	uint8_t out[8];

	fx_write_file("victim", "x", 1);
	fx_hdr(&h, FUSE_UNLINK, FUSE_ROOT_ID, sizeof(req));
	memcpy(req, &h, sizeof(h));
	memcpy(req + sizeof(h), name, sizeof(name));
	cr_assert_eq(fx_raw(req, sizeof(req), NULL, 0), 0);
	cr_assert_eq(fx_raw(req, sizeof(req), out, sizeof(out)), 0);
	cr_assert_eq(access(fx_path("victim"), F_OK), 0, "UNLINK ran without a reply buffer");
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, "victim"), 0);
	cr_assert_eq(access(fx_path("victim"), F_OK), -1);
}

/* A reply buffer too small for the op's fixed reply: EINVAL before anything happens. */
Test(fuse_decode, reply_buffer_too_small_einval_before_running)
{
	struct fuse_mkdir_in in = { .mode = 0755 };
	uint8_t small[sizeof(struct fuse_entry_out) - 1];

	cr_assert_eq(fx_call(FUSE_MKDIR, FUSE_ROOT_ID, &in, sizeof(in), "d", 2, NULL, 0, small,
			     sizeof(small), NULL), -EINVAL);
	cr_assert_eq(access(fx_path("d"), F_OK), -1, "MKDIR ran though its reply cannot fit");
	cr_assert_eq(fx_call(FUSE_GETATTR, FUSE_ROOT_ID, &(struct fuse_getattr_in){ 0 },
			     sizeof(struct fuse_getattr_in), NULL, 0, NULL, 0, small, 10, NULL),
		     -EINVAL);
}

/* Every split pattern decodes to the same thing. */
Test(fuse_decode, split_chains_agree)
{
	struct fuse_entry_out e[5];

	fx_write_file("some-file-name", "0123456789", 10);
	for (unsigned p = 1; p <= 4; p++) {
		fx.split = p;
		cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "some-file-name", &e[p]), 0, "pattern %u", p);
		cr_assert_eq(e[p].nodeid, e[1].nodeid);
		cr_assert_eq(e[p].attr.size, 10);
		cr_assert_eq(e[p].attr.ino, e[1].attr.ino);
	}
}

Test(fuse_decode, xattr_ops_enosys_when_disabled)
{
	struct fuse_getxattr_in gin = { .size = 0 };
	struct fuse_getxattr_out gout;

	fx_teardown();
	fx_start(false, FUSE_CACHE_AUTO, false, true);
	cr_assert_eq(fx_call(FUSE_LISTXATTR, FUSE_ROOT_ID, &gin, sizeof(gin), NULL, 0, NULL, 0,
			     &gout, sizeof(gout), NULL), -ENOSYS);
	cr_assert_eq(fx_call(FUSE_GETXATTR, FUSE_ROOT_ID, &gin, sizeof(gin), "user.a", 7, NULL, 0,
			     &gout, sizeof(gout), NULL), -ENOSYS);
	cr_assert_eq(fx_call(FUSE_REMOVEXATTR, FUSE_ROOT_ID, NULL, 0, "user.a", 7, NULL, 0, NULL,
			     0, NULL), -ENOSYS);
}

/* Header fields the guest controls beyond len: a reply always echoes `unique`, even for
 * errors (fx_call checks), and opcode/nodeid garbage never crashes. */
Test(fuse_decode, random_headers_survive)
{
	uint8_t req[256], out[512];
	unsigned seed = 12345;

	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(req));
		for (size_t k = 0; k < len; k++)
			req[k] = (uint8_t)rand_r(&seed);
		if (len >= sizeof(struct fuse_in_header)) {
			struct fuse_in_header h;
			memcpy(&h, req, sizeof(h));
			h.len = (rand_r(&seed) & 1) ? (uint32_t)len : h.len;
			/* Mostly real opcodes, so the decoders behind them get exercised; never
			 * INIT/DESTROY, which would end the session being tested. */
			h.opcode = (rand_r(&seed) & 3) ? 1 + (uint32_t)rand_r(&seed) % 51 : h.opcode;
			if (h.opcode == FUSE_DESTROY || h.opcode == FUSE_INIT || h.opcode == FUSE_SETLKW)
				h.opcode = FUSE_GETATTR;
			h.nodeid = (rand_r(&seed) & 1) ? 1 : h.nodeid;
			memcpy(req, &h, sizeof(h));
		}
		size_t n = fx_raw(req, len, out, sizeof(out));
		if (n) {
			struct fuse_out_header oh;
			cr_assert_geq(n, sizeof(oh));
			memcpy(&oh, out, sizeof(oh));
			cr_assert_eq(oh.len, n);
		}
	}
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0);
}
