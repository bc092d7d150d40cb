/* Split virtqueues (virtio/queue.c) against a mock driver (virtq_mock.h) in plain memory.
 * The driver is hostile, so every check in virtq_pop has a test here that would fail if the
 * check were removed; the rest pins index wrap, notification suppression and the copy
 * helpers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "tests/unit/virtq_mock.h"
#include "virtio/queue.h"

static struct mock mk;
static struct virtq q;
static struct virtq_chain c;   /* 32 KiB: static, not on the stack */

static void vq_init(void) { mock_setup(&mk); }
static void vq_fini(void) { mock_teardown(&mk); }
TestSuite(virtq_init, .init = vq_init, .fini = vq_fini);
TestSuite(virtq_pop, .init = vq_init, .fini = vq_fini);
TestSuite(virtq_chain, .init = vq_init, .fini = vq_fini);
TestSuite(virtq_ring, .init = vq_init, .fini = vq_fini);
TestSuite(virtq_notify, .init = vq_init, .fini = vq_fini);
TestSuite(virtq_copy, .init = vq_init, .fini = vq_fini);

static int init_at(uint16_t size, uint64_t d, uint64_t a, uint64_t u)
{
	return virtq_init(&q, &mk.m, size, d, a, u, false, false);
}

/* Pop exactly one chain and return its error (the head must always be the one published). */
static enum virtq_chain_err pop_err(uint16_t head)
{
	cr_assert_eq(virtq_pop(&q, &c), 1);
	cr_assert_eq(c.head, head);
	return c.err;
}

#define assert_chain_err(head, e) do {                                              \
	enum virtq_chain_err got_ = pop_err(head);                                  \
	cr_assert_eq(got_, (e), "got %s, want %s", virtq_strerror(got_),           \
		     virtq_strerror(e));                                           \
	cr_assert_eq(c.nr_out + c.nr_in, 0, "a failed chain exposes no segments"); \
} while (0)

/* ---- virtq_init ---------------------------------------------------------------------- */

Test(virtq_init, valid_sets_pointers_and_resets_state)
{
	memset(&q, 0xa5, sizeof(q));
	cr_assert_eq(virtq_init(&q, &mk.m, 256, MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA,
				true, true), 0);
	cr_assert_eq(q.size, 256);
	cr_assert(q.event_idx && q.indirect);
	cr_assert_eq((void *)q.desc, gmem_ptr(&mk.m, MOCK_DESC_GPA, 1));
	cr_assert_eq((void *)q.avail, gmem_ptr(&mk.m, MOCK_AVAIL_GPA, 1));
	cr_assert_eq((void *)q.used, gmem_ptr(&mk.m, MOCK_USED_GPA, 1));
	cr_assert_eq(q.last_avail, 0);
	cr_assert_eq(q.used_idx, 0);
	cr_assert_eq(q.signalled_used, 0);
	cr_assert(!q.signalled_valid);
}

/* A freshly enabled queue starts at 0 whatever stale indices the driver's memory holds. */
Test(virtq_init, does_not_read_indices_from_guest)
{
	*mock_u16(&mk, MOCK_AVAIL_GPA + 2) = 77;
	*mock_u16(&mk, MOCK_USED_GPA + 2) = 99;
	cr_assert_eq(init_at(8, MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA), 0);
	cr_assert_eq(q.last_avail, 0);
	cr_assert_eq(q.used_idx, 0);
}

Test(virtq_init, size_must_be_power_of_two_up_to_32768)
{
	static const uint16_t bad[] = { 0, 3, 6, 100, 32767, 32769, 49152, 65535 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(init_at(bad[i], MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA),
			     -EINVAL, "size %u", bad[i]);
	static const uint16_t good[] = { 1, 2, 256, 32768 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(init_at(good[i], MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA),
			     0, "size %u", good[i]);
}

Test(virtq_init, alignment)
{
	cr_assert_eq(init_at(8, MOCK_DESC_GPA + 8, MOCK_AVAIL_GPA, MOCK_USED_GPA), -EINVAL);
	cr_assert_eq(init_at(8, MOCK_DESC_GPA + 1, MOCK_AVAIL_GPA, MOCK_USED_GPA), -EINVAL);
	cr_assert_eq(init_at(8, MOCK_DESC_GPA, MOCK_AVAIL_GPA + 1, MOCK_USED_GPA), -EINVAL);
	cr_assert_eq(init_at(8, MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA + 2), -EINVAL);
	cr_assert_eq(init_at(8, MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA + 1), -EINVAL);
	/* The minimum alignments are enough. */
	cr_assert_eq(init_at(8, MOCK_DESC_GPA + 16, MOCK_AVAIL_GPA + 2, MOCK_USED_GPA + 4), 0);
}

Test(virtq_init, areas_outside_ram)
{
	const uint64_t end = MOCK_RAM;
	const uint16_t n = 8;
	/* Wholly outside: past the end of RAM, in the 32-bit hole, above 4 GiB. */
	cr_assert_eq(init_at(n, end, MOCK_AVAIL_GPA, MOCK_USED_GPA), -EINVAL);
	cr_assert_eq(init_at(n, MOCK_DESC_GPA, GMEM_HOLE_START, MOCK_USED_GPA), -EINVAL);
	cr_assert_eq(init_at(n, MOCK_DESC_GPA, MOCK_AVAIL_GPA, GMEM_HIGH_START), -EINVAL);
	/* Straddling the end: the table's last descriptor is one slot short. */
	cr_assert_eq(init_at(n, end - 16 * (n - 1), MOCK_AVAIL_GPA, MOCK_USED_GPA), -EINVAL);
	cr_assert_eq(init_at(n, end - 16 * n, MOCK_AVAIL_GPA, MOCK_USED_GPA), 0);
	/* avail: the ring fits but used_event (2 bytes after it) would not. */
	cr_assert_eq(init_at(n, MOCK_DESC_GPA, end - (4 + 2 * n), MOCK_USED_GPA), -EINVAL);
	cr_assert_eq(init_at(n, MOCK_DESC_GPA, end - (6 + 2 * n), MOCK_USED_GPA), 0);
	/* used: the ring fits but avail_event would not. */
	cr_assert_eq(init_at(n, MOCK_DESC_GPA, MOCK_AVAIL_GPA, end - (4 + 8 * n)), -EINVAL);
	cr_assert_eq(init_at(n, MOCK_DESC_GPA, MOCK_AVAIL_GPA, end - (8 + 8 * n)), 0);
	/* A size whose areas can't fit where small ones do. */
	cr_assert_eq(init_at(32768, end - 16 * 16, MOCK_AVAIL_GPA, MOCK_USED_GPA), -EINVAL);
	/* Addresses near 2^64: the end must not wrap around into RAM. */
	cr_assert_eq(init_at(n, UINT64_MAX - 15, MOCK_AVAIL_GPA, MOCK_USED_GPA), -EINVAL);
}

/* ---- well-formed chains ---------------------------------------------------------------- */

Test(virtq_pop, empty_ring_returns_0)
{
	mock_queue(&mk, &q, 8, false, false);
	cr_assert_eq(virtq_pop(&q, &c), 0);
	cr_assert_eq(q.last_avail, 0);
}

Test(virtq_pop, single_segment)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s = mock_buf(&mk, 123, false);
	uint16_t head = mock_add_chain(&mk, &s, 1);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	cr_assert_eq(c.nr_out, 1);
	cr_assert_eq(c.nr_in, 0);
	cr_assert_eq(c.out_len, 123);
	cr_assert_eq(c.in_len, 0);
	cr_assert_eq(c.out[0].iov_base, gmem_ptr(&mk.m, s.addr, 1));
	cr_assert_eq(c.out[0].iov_len, 123);
	cr_assert_eq(q.last_avail, 1);
	cr_assert_eq(virtq_pop(&q, &c), 0);
}

static void check_segs(const struct mseg *s, unsigned n_out, unsigned n_in)
{
	uint64_t out_len = 0, in_len = 0;
	cr_assert_eq(c.nr_out, n_out);
	cr_assert_eq(c.nr_in, n_in);
	for (unsigned k = 0; k < n_out; k++) {
		cr_assert_eq(c.out[k].iov_base, gmem_ptr(&mk.m, s[k].addr, 1));
		cr_assert_eq(c.out[k].iov_len, s[k].len);
		out_len += s[k].len;
	}
	for (unsigned k = 0; k < n_in; k++) {
		cr_assert_eq(c.in[k].iov_base, gmem_ptr(&mk.m, s[n_out + k].addr, 1));
		cr_assert_eq(c.in[k].iov_len, s[n_out + k].len);
		in_len += s[n_out + k].len;
	}
	cr_assert_eq(c.out_len, out_len);
	cr_assert_eq(c.in_len, in_len);
}

/* Three readable then four writable, including a zero-length one (allowed on its own). */
Test(virtq_pop, many_segments_split_out_in)
{
	mock_queue(&mk, &q, 16, false, false);
	struct mseg s[7] = {
		mock_buf(&mk, 16, false), mock_buf(&mk, 0, false), mock_buf(&mk, 4096, false),
		mock_buf(&mk, 1, true), mock_buf(&mk, 512, true), mock_buf(&mk, 7, true),
		mock_buf(&mk, 65536, true),
	};
	mk.next_desc = 13;   /* 13, 14, 15, 0, 1, 2, 3: chains may wrap around the table */
	uint16_t head = mock_add_chain(&mk, s, 7);
	cr_assert_eq(head, 13);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	check_segs(s, 3, 4);
}

Test(virtq_pop, only_writable)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s[2] = { mock_buf(&mk, 100, true), mock_buf(&mk, 200, true) };
	uint16_t head = mock_add_chain(&mk, s, 2);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	check_segs(s, 0, 2);
}

Test(virtq_pop, indirect_chain)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg s[5] = {
		mock_buf(&mk, 10, false), mock_buf(&mk, 20, false),
		mock_buf(&mk, 30, true), mock_buf(&mk, 0, true), mock_buf(&mk, 50, true),
	};
	mk.next_desc = 5;
	uint16_t head = mock_add_indirect(&mk, s, 5);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	check_segs(s, 2, 3);
}

/* §2.7.5.3.1: the device ignores WRITE on the descriptor that points at a table. */
Test(virtq_pop, indirect_pointer_write_flag_ignored)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg s[2] = { mock_buf(&mk, 10, false), mock_buf(&mk, 20, true) };
	uint64_t t = mock_table(&mk, s, 2);
	mock_desc(&mk, 0, t, 32, D_INDIRECT | D_WRITE, 0);
	mock_publish(&mk, 0);
	cr_assert_eq(pop_err(0), VIRTQ_OK);
	check_segs(s, 1, 1);
}

/* Direct descriptors may lead into one indirect table (the pointer itself ends the chain). */
Test(virtq_pop, direct_then_indirect)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg s[3] = { mock_buf(&mk, 8, false), mock_buf(&mk, 9, false),
			     mock_buf(&mk, 10, true) };
	uint64_t t = mock_table(&mk, s + 1, 2);
	mock_desc(&mk, 2, s[0].addr, s[0].len, D_NEXT, 6);
	mock_desc(&mk, 6, t, 32, D_INDIRECT, 0);
	mock_publish(&mk, 2);
	cr_assert_eq(pop_err(2), VIRTQ_OK);
	check_segs(s, 2, 1);
}

/* Exactly VIRTQ_MAX_SEGS segments, in one full-size indirect table, is fine. */
Test(virtq_pop, indirect_table_of_max_segs)
{
	mock_queue(&mk, &q, 8, false, true);
	static struct mseg s[VIRTQ_MAX_SEGS];
	for (unsigned k = 0; k < VIRTQ_MAX_SEGS; k++)
		s[k] = mock_buf(&mk, 1, k >= 600);
	uint16_t head = mock_add_indirect(&mk, s, VIRTQ_MAX_SEGS);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	check_segs(s, 600, VIRTQ_MAX_SEGS - 600);
}

/* A buffer ending exactly at the end of RAM is inside it. */
Test(virtq_pop, buffer_at_end_of_ram)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s = { MOCK_RAM - 16, 16, true };
	uint16_t head = mock_add_chain(&mk, &s, 1);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
}

/* ---- chain errors: each consumes its avail entry and keeps the head ------------------ */

Test(virtq_chain, error_consumes_entry_and_queue_continues)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg bad = { MOCK_RAM, 1, false };
	struct mseg good = mock_buf(&mk, 5, false);
	uint16_t h1 = mock_add_chain(&mk, &bad, 1);
	uint16_t h2 = mock_add_chain(&mk, &good, 1);
	assert_chain_err(h1, VIRTQ_ERR_RANGE);
	cr_assert_eq(q.last_avail, 1);
	virtq_push(&q, c.head, 0);
	cr_assert_eq(pop_err(h2), VIRTQ_OK);
	cr_assert_eq(c.out_len, 5);
	virtq_push(&q, c.head, 0);
	uint32_t id, len;
	mock_used_elem(&mk, 0, &id, &len);
	cr_assert_eq(id, h1);
	cr_assert_eq(len, 0);
	mock_used_elem(&mk, 1, &id, &len);
	cr_assert_eq(id, h2);
	cr_assert_eq(mock_used_idx(&mk), 2);
}

Test(virtq_chain, direct_loop_a_b_a)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg b = mock_buf(&mk, 4, false);
	mock_desc(&mk, 3, b.addr, 4, D_NEXT, 5);
	mock_desc(&mk, 5, b.addr, 4, D_NEXT, 3);
	mock_publish(&mk, 3);
	assert_chain_err(3, VIRTQ_ERR_LOOP);
}

Test(virtq_chain, direct_self_loop)
{
	mock_queue(&mk, &q, 32768, false, false);
	struct mseg b = mock_buf(&mk, 4, true);
	mock_desc(&mk, 7, b.addr, 4, D_NEXT | D_WRITE, 7);
	mock_publish(&mk, 7);
	assert_chain_err(7, VIRTQ_ERR_LOOP);
}

Test(virtq_chain, loop_inside_indirect_table)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg b = mock_buf(&mk, 4, false);
	uint64_t t = mock_alloc(&mk, 32);
	mock_desc_at(&mk, t, 0, b.addr, 4, D_NEXT, 1);
	mock_desc_at(&mk, t, 1, b.addr, 4, D_NEXT, 0);
	mock_desc(&mk, 0, t, 32, D_INDIRECT, 0);
	mock_publish(&mk, 0);
	assert_chain_err(0, VIRTQ_ERR_LOOP);
}

/* Loop-free but over budget: one direct segment plus a full VIRTQ_MAX_SEGS-entry table. */
Test(virtq_chain, budget_exceeded_without_loop)
{
	mock_queue(&mk, &q, 8, false, true);
	static struct mseg s[VIRTQ_MAX_SEGS];
	for (unsigned k = 0; k < VIRTQ_MAX_SEGS; k++)
		s[k] = mock_buf(&mk, 1, false);
	uint64_t t = mock_table(&mk, s, VIRTQ_MAX_SEGS);
	struct mseg first = mock_buf(&mk, 1, false);
	mock_desc(&mk, 0, first.addr, 1, D_NEXT, 1);
	mock_desc(&mk, 1, t, 16 * VIRTQ_MAX_SEGS, D_INDIRECT, 0);
	mock_publish(&mk, 0);
	assert_chain_err(0, VIRTQ_ERR_LOOP);
}

/* A table bigger than VIRTQ_MAX_SEGS is refused as a table, before walking it. */
Test(virtq_chain, indirect_table_too_big)
{
	mock_queue(&mk, &q, 8, false, true);
	static struct mseg s[VIRTQ_MAX_SEGS + 1];
	for (unsigned k = 0; k <= VIRTQ_MAX_SEGS; k++)
		s[k] = mock_buf(&mk, 1, false);
	uint16_t head = mock_add_indirect(&mk, s, VIRTQ_MAX_SEGS + 1);
	assert_chain_err(head, VIRTQ_ERR_INDIRECT);
}

Test(virtq_chain, next_out_of_range_direct)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg b = mock_buf(&mk, 4, false);
	mock_desc(&mk, 0, b.addr, 4, D_NEXT, 8);
	mock_desc(&mk, 1, b.addr, 4, D_NEXT, 0xffff);
	mock_publish(&mk, 0);
	mock_publish(&mk, 1);
	assert_chain_err(0, VIRTQ_ERR_NEXT);
	assert_chain_err(1, VIRTQ_ERR_NEXT);
}

/* Inside a table the bound is the table's length, not the queue size. */
Test(virtq_chain, next_out_of_range_indirect)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg b = mock_buf(&mk, 4, false);
	uint64_t t = mock_alloc(&mk, 32);
	mock_desc_at(&mk, t, 0, b.addr, 4, D_NEXT, 1);
	mock_desc_at(&mk, t, 1, b.addr, 4, D_NEXT, 2);
	mock_desc(&mk, 0, t, 32, D_INDIRECT, 0);
	mock_publish(&mk, 0);
	assert_chain_err(0, VIRTQ_ERR_NEXT);
}

Test(virtq_chain, address_plus_len_overflows)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s1 = { UINT64_MAX - 7, 16, false };
	struct mseg s2 = { UINT64_MAX, 1, true };
	uint16_t h1 = mock_add_chain(&mk, &s1, 1);
	uint16_t h2 = mock_add_chain(&mk, &s2, 1);
	assert_chain_err(h1, VIRTQ_ERR_RANGE);
	assert_chain_err(h2, VIRTQ_ERR_RANGE);
}

Test(virtq_chain, buffer_straddles_end_of_ram)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s[2] = { mock_buf(&mk, 4, false), { MOCK_RAM - 8, 16, true } };
	uint16_t head = mock_add_chain(&mk, s, 2);
	assert_chain_err(head, VIRTQ_ERR_RANGE);
}

Test(virtq_chain, buffer_in_no_ram_region)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg hole = { GMEM_HOLE_START + 0x1000, 64, false };
	struct mseg high = { GMEM_HIGH_START, 64, true };
	struct mseg past = { MOCK_RAM + 4096, 0, false };   /* even with length 0 */
	uint16_t h1 = mock_add_chain(&mk, &hole, 1);
	uint16_t h2 = mock_add_indirect(&mk, &high, 1);
	struct mseg s[2] = { mock_buf(&mk, 4, false), past };
	uint16_t h3 = mock_add_chain(&mk, s, 2);
	assert_chain_err(h1, VIRTQ_ERR_RANGE);
	assert_chain_err(h2, VIRTQ_ERR_RANGE);
	assert_chain_err(h3, VIRTQ_ERR_RANGE);
}

Test(virtq_chain, readable_after_writable)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s[3] = { mock_buf(&mk, 4, false), mock_buf(&mk, 4, true),
			     mock_buf(&mk, 4, false) };
	uint16_t head = mock_add_chain(&mk, s, 3);
	assert_chain_err(head, VIRTQ_ERR_ORDER);
}

/* The order rule spans the step from the main table into an indirect one. */
Test(virtq_chain, readable_after_writable_across_indirect)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg w = mock_buf(&mk, 4, true), r = mock_buf(&mk, 4, false);
	uint64_t t = mock_table(&mk, &r, 1);
	mock_desc(&mk, 0, w.addr, 4, D_NEXT | D_WRITE, 1);
	mock_desc(&mk, 1, t, 16, D_INDIRECT, 0);
	mock_publish(&mk, 0);
	assert_chain_err(0, VIRTQ_ERR_ORDER);
}

Test(virtq_chain, zero_length_chain)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg one = mock_buf(&mk, 0, false);
	struct mseg two[2] = { mock_buf(&mk, 0, false), mock_buf(&mk, 0, true) };
	uint16_t h1 = mock_add_chain(&mk, &one, 1);
	uint16_t h2 = mock_add_chain(&mk, two, 2);
	uint16_t h3 = mock_add_indirect(&mk, two, 2);
	assert_chain_err(h1, VIRTQ_ERR_EMPTY);
	assert_chain_err(h2, VIRTQ_ERR_EMPTY);
	assert_chain_err(h3, VIRTQ_ERR_EMPTY);
}

Test(virtq_chain, indirect_not_negotiated)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s = mock_buf(&mk, 4, false);
	uint16_t head = mock_add_indirect(&mk, &s, 1);
	assert_chain_err(head, VIRTQ_ERR_INDIRECT);
}

Test(virtq_chain, indirect_nested)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg s = mock_buf(&mk, 4, false);
	uint64_t inner = mock_table(&mk, &s, 1);
	uint64_t outer = mock_alloc(&mk, 16);
	mock_desc_at(&mk, outer, 0, inner, 16, D_INDIRECT, 0);
	mock_desc(&mk, 0, outer, 16, D_INDIRECT, 0);
	mock_publish(&mk, 0);
	assert_chain_err(0, VIRTQ_ERR_INDIRECT);
}

Test(virtq_chain, indirect_with_next)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg s = mock_buf(&mk, 4, false);
	uint64_t t = mock_table(&mk, &s, 1);
	mock_desc(&mk, 0, t, 16, D_INDIRECT | D_NEXT, 1);
	mock_desc(&mk, 1, s.addr, 4, 0, 0);
	mock_publish(&mk, 0);
	assert_chain_err(0, VIRTQ_ERR_INDIRECT);
}

Test(virtq_chain, indirect_bad_length)
{
	mock_queue(&mk, &q, 8, false, true);
	struct mseg s[2] = { mock_buf(&mk, 4, false), mock_buf(&mk, 4, false) };
	uint64_t t = mock_table(&mk, s, 2);
	static const uint32_t bad[] = { 0, 8, 24, 33 };
	for (unsigned k = 0; k < 4; k++) {
		mock_desc(&mk, (uint16_t)k, t, bad[k], D_INDIRECT, 0);
		mock_publish(&mk, (uint16_t)k);
	}
	for (unsigned k = 0; k < 4; k++)
		assert_chain_err(k, VIRTQ_ERR_INDIRECT);
}

Test(virtq_chain, indirect_table_outside_ram)
{
	mock_queue(&mk, &q, 8, false, true);
	/* Straddling the end, in no region, and wrapping past 2^64. */
	mock_desc(&mk, 0, MOCK_RAM - 16, 32, D_INDIRECT, 0);
	mock_desc(&mk, 1, GMEM_HOLE_START, 16, D_INDIRECT, 0);
	mock_desc(&mk, 2, UINT64_MAX - 15, 32, D_INDIRECT, 0);
	for (uint16_t k = 0; k < 3; k++)
		mock_publish(&mk, k);
	for (uint16_t k = 0; k < 3; k++)
		assert_chain_err(k, VIRTQ_ERR_INDIRECT);
}

/* ---- ring-level errors ---------------------------------------------------------------- */

/* The driver can have at most `size` buffers outstanding; one more means a broken ring. */
Test(virtq_ring, avail_idx_ahead_by_size_plus_one)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s = mock_buf(&mk, 4, false);
	mock_desc(&mk, 0, s.addr, 4, 0, 0);   /* every ring slot names this valid chain */
	mock_set_avail_idx(&mk, 9);
	cr_assert_eq(virtq_pop(&q, &c), -EIO);
	cr_assert_eq(q.last_avail, 0);
	/* Exactly `size` outstanding is fine. */
	mock_set_avail_idx(&mk, 8);
	for (int k = 0; k < 8; k++)
		cr_assert_eq(pop_err(0), VIRTQ_OK);
	cr_assert_eq(virtq_pop(&q, &c), 0);
}

/* Same with last_avail near the wrap: the distance is taken mod 2^16. */
Test(virtq_ring, avail_idx_ahead_across_wrap)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s = mock_buf(&mk, 4, false);
	mock_desc(&mk, 0, s.addr, 4, 0, 0);
	q.last_avail = 65533;
	mock_set_avail_idx(&mk, 6);        /* 9 ahead */
	cr_assert_eq(virtq_pop(&q, &c), -EIO);
	mock_set_avail_idx(&mk, 5);        /* 8 ahead */
	cr_assert_eq(pop_err(0), VIRTQ_OK);
	/* Behind (the driver moved idx backwards) looks like far ahead: broken. */
	mock_set_avail_idx(&mk, 65530);
	cr_assert_eq(virtq_pop(&q, &c), -EIO);
}

Test(virtq_ring, head_out_of_range)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s = mock_buf(&mk, 4, false);
	for (uint16_t k = 0; k < 8; k++)
		mock_desc(&mk, k, s.addr, 4, 0, 0);
	mock_publish(&mk, 8);
	cr_assert_eq(virtq_pop(&q, &c), -EIO);
	cr_assert_eq(q.last_avail, 0);
	*mock_u16(&mk, MOCK_AVAIL_GPA + 4) = 0xffff;
	cr_assert_eq(virtq_pop(&q, &c), -EIO);
	*mock_u16(&mk, MOCK_AVAIL_GPA + 4) = 7;
	cr_assert_eq(pop_err(7), VIRTQ_OK);
}

/* A head made available again while the device still works on it (popped, not pushed) is a
 * broken ring when heads in flight are tracked; once pushed, the driver may reuse it. */
Test(virtq_ring, head_in_flight_twice)
{
	static uint64_t busy[1];
	mock_queue(&mk, &q, 8, false, false);
	q.inflight = busy;
	struct mseg s = mock_buf(&mk, 4, false);
	mock_desc(&mk, 3, s.addr, 4, 0, 0);
	mock_desc(&mk, 5, s.addr, 4, 0, 0);
	mock_publish(&mk, 3);
	mock_publish(&mk, 5);
	mock_publish(&mk, 3);                  /* 3 again, still in flight */
	cr_assert_eq(pop_err(3), VIRTQ_OK);
	cr_assert_eq(pop_err(5), VIRTQ_OK);
	cr_assert_eq(virtq_pop(&q, &c), -EIO, "head 3 popped twice while in flight");
	/* Completed, then made available again: fine. */
	virtq_push(&q, 3, 0);                  /* the refused slot is still next */
	cr_assert_eq(pop_err(3), VIRTQ_OK);
	virtq_push(&q, 5, 0);
	virtq_push(&q, 3, 0);
	cr_assert_eq(busy[0], 0, "every pushed head cleared");
}

/* Avail and used slots are taken modulo the queue size, not the 16-bit index. */
Test(virtq_ring, slots_cycle_through_small_ring)
{
	mock_queue(&mk, &q, 2, false, false);
	for (uint32_t k = 0; k < 7; k++) {
		struct mseg s = mock_buf(&mk, k + 1, false);
		uint16_t head = mock_add_chain(&mk, &s, 1);
		cr_assert_eq(pop_err(head), VIRTQ_OK);
		cr_assert_eq(c.out_len, k + 1);
		virtq_push(&q, head, k);
		uint32_t id, len;
		mock_used_elem(&mk, (uint16_t)k, &id, &len);
		cr_assert_eq(id, head);
		cr_assert_eq(len, k);
	}
	cr_assert_eq(mock_used_idx(&mk), 7);
}

Test(virtq_ring, push_writes_elem_then_idx)
{
	mock_queue(&mk, &q, 4, false, false);
	for (uint32_t k = 0; k < 6; k++) {
		virtq_push(&q, (uint16_t)(k % 4), 1000 + k);
		cr_assert_eq(mock_used_idx(&mk), k + 1);
		uint32_t id, len;
		mock_used_elem(&mk, (uint16_t)k, &id, &len);
		cr_assert_eq(id, k % 4);
		cr_assert_eq(len, 1000 + k);
	}
}

/* 20 requests starting 6 short of the 16-bit wrap: slots, indices and events all wrap. */
static void run_wrap(bool event_idx)
{
	mock_queue(&mk, &q, 8, event_idx, false);
	const uint16_t start = 65530;
	q.last_avail = q.used_idx = start;
	mock_set_avail_idx(&mk, start);
	*mock_u16(&mk, MOCK_USED_GPA + 2) = start;
	mk.next_desc = 3;
	bool signalled_once = false;

	for (unsigned k = 0; k < 20; k++) {
		uint16_t idx = (uint16_t)(start + k);
		struct mseg s[2] = { mock_buf(&mk, 8, false), mock_buf(&mk, 8, true) };
		memcpy(mock_ptr(&mk, s[0].addr, 8), &k, sizeof(k));
		uint16_t head = mock_add_chain(&mk, s, 2);
		cr_assert_eq(pop_err(head), VIRTQ_OK);
		cr_assert_eq(q.last_avail, (uint16_t)(idx + 1));
		unsigned got;
		cr_assert_eq(virtq_copy_from(&c, 0, &got, sizeof(got)), sizeof(got));
		cr_assert_eq(got, k);
		cr_assert_eq(virtq_copy_to(&c, 0, &got, sizeof(got)), sizeof(got));

		/* Ask for an interrupt on even requests only. */
		bool want = k % 2 == 0;
		if (event_idx)
			mock_set_used_event(&mk, want ? idx : (uint16_t)(idx + 1));
		else
			mock_set_avail_flags(&mk, want ? 0 : 1);
		virtq_push(&q, head, 4);
		cr_assert_eq(mock_used_idx(&mk), (uint16_t)(idx + 1));
		uint32_t id, len;
		mock_used_elem(&mk, idx, &id, &len);
		cr_assert_eq(id, head);
		cr_assert_eq(len, 4);
		cr_assert_eq(*(unsigned *)mock_ptr(&mk, s[1].addr, 4), k);
		bool sig = virtq_should_signal(&q);
		/* With EVENT_IDX the very first decision always signals. */
		cr_assert_eq(sig, want || (event_idx && !signalled_once), "request %u", k);
		signalled_once = true;

		cr_assert(!virtq_enable_notify(&q));
		if (event_idx)
			cr_assert_eq(mock_avail_event(&mk), q.last_avail);
	}
	cr_assert_eq(q.used_idx, (uint16_t)(start + 20));
	cr_assert_eq(mock_used_idx(&mk), 14);
}

Test(virtq_ring, wrap_past_65535_without_event_idx) { run_wrap(false); }
Test(virtq_ring, wrap_past_65535_with_event_idx) { run_wrap(true); }

/* ---- notification suppression -------------------------------------------------------- */

Test(virtq_notify, should_signal_no_interrupt_flag)
{
	mock_queue(&mk, &q, 8, false, false);
	virtq_push(&q, 0, 0);
	cr_assert(virtq_should_signal(&q));
	mock_set_avail_flags(&mk, 1);
	virtq_push(&q, 1, 0);
	cr_assert(!virtq_should_signal(&q));
	mock_set_avail_flags(&mk, 0);
	virtq_push(&q, 2, 0);
	cr_assert(virtq_should_signal(&q));
	/* used_event means nothing without EVENT_IDX. */
	mock_set_used_event(&mk, 1000);
	virtq_push(&q, 3, 0);
	cr_assert(virtq_should_signal(&q));
}

Test(virtq_notify, should_signal_event_idx)
{
	mock_queue(&mk, &q, 8, true, false);
	/* First call signals even though used_event (100) was not reached. */
	mock_set_used_event(&mk, 100);
	virtq_push(&q, 0, 0);                  /* used 1 */
	cr_assert(virtq_should_signal(&q));
	virtq_push(&q, 0, 0);                  /* used 2 */
	cr_assert(!virtq_should_signal(&q), "used_event 100 not reached");

	mock_set_used_event(&mk, 2);           /* wants one when used passes 2 */
	virtq_push(&q, 0, 0);                  /* used 3 */
	cr_assert(virtq_should_signal(&q), "used_event just passed");
	cr_assert(!virtq_should_signal(&q), "nothing new since the last signal");

	mock_set_used_event(&mk, 4);
	virtq_push(&q, 0, 0);                  /* used 4: event 4 not passed yet */
	cr_assert(!virtq_should_signal(&q));
	virtq_push(&q, 0, 0);                  /* used 5 */
	cr_assert(virtq_should_signal(&q));

	/* A batch of pushes covering the event signals once. */
	mock_set_used_event(&mk, 6);
	virtq_push(&q, 0, 0);
	virtq_push(&q, 0, 0);
	virtq_push(&q, 0, 0);                  /* used 8 */
	cr_assert(virtq_should_signal(&q));

	/* An event behind what was already signalled does not trigger again. */
	mock_set_used_event(&mk, 3);
	virtq_push(&q, 0, 0);
	cr_assert(!virtq_should_signal(&q));

	/* With EVENT_IDX the NO_INTERRUPT flag is ignored. */
	mock_set_avail_flags(&mk, 1);
	mock_set_used_event(&mk, 9);
	virtq_push(&q, 0, 0);                  /* used 10 */
	cr_assert(virtq_should_signal(&q));
	cr_assert_eq(q.signalled_used, 10);
}

Test(virtq_notify, flags_without_event_idx)
{
	mock_queue(&mk, &q, 8, false, false);
	virtq_disable_notify(&q);
	cr_assert_eq(mock_used_flags(&mk), 1);
	cr_assert(!virtq_enable_notify(&q));
	cr_assert_eq(mock_used_flags(&mk), 0);
}

/* A buffer added while notifications were off must be noticed when turning them back on. */
static void run_enable_race(bool event_idx)
{
	mock_queue(&mk, &q, 8, event_idx, false);
	virtq_disable_notify(&q);
	struct mseg s = mock_buf(&mk, 4, false);
	uint16_t head = mock_add_chain(&mk, &s, 1);
	cr_assert(virtq_enable_notify(&q));
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	cr_assert(!virtq_enable_notify(&q));
}

Test(virtq_notify, enable_race_without_event_idx) { run_enable_race(false); }
Test(virtq_notify, enable_race_with_event_idx) { run_enable_race(true); }

Test(virtq_notify, avail_event_with_event_idx)
{
	mock_queue(&mk, &q, 8, true, false);
	struct mseg s = mock_buf(&mk, 4, false);
	for (int k = 0; k < 3; k++)
		mock_add_chain(&mk, &s, 1);
	for (int k = 0; k < 3; k++)
		cr_assert_eq(virtq_pop(&q, &c), 1);

	cr_assert(!virtq_enable_notify(&q));
	cr_assert_eq(mock_avail_event(&mk), 3);
	cr_assert_eq(mock_used_flags(&mk), 0, "flags untouched with EVENT_IDX");
	cr_assert(mock_driver_would_notify(&mk, 3, 4), "next buffer must kick us");

	virtq_disable_notify(&q);
	cr_assert_eq(mock_used_flags(&mk), 0);
	cr_assert(!mock_driver_would_notify(&mk, 3, 4), "disabled: no kick");
	cr_assert(!mock_driver_would_notify(&mk, 3, 11));
}

/* ---- copy helpers --------------------------------------------------------------------- */

Test(virtq_copy, copy_from_across_segments)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s[4] = { mock_buf(&mk, 3, false), mock_buf(&mk, 0, false),
			     mock_buf(&mk, 5, false), mock_buf(&mk, 7, false) };
	uint8_t v = 0;
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < s[k].len; b++)
			((uint8_t *)mock_ptr(&mk, s[k].addr, s[k].len))[b] = v++;
	uint16_t head = mock_add_chain(&mk, s, 4);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	cr_assert_eq(c.out_len, 15);

	uint8_t buf[32];
	memset(buf, 0xee, sizeof(buf));
	cr_assert_eq(virtq_copy_from(&c, 0, buf, 15), 15);
	for (int k = 0; k < 15; k++)
		cr_assert_eq(buf[k], k);
	cr_assert_eq(buf[15], 0xee);

	/* Starting inside the first segment, spanning the empty one and into the last. */
	memset(buf, 0xee, sizeof(buf));
	cr_assert_eq(virtq_copy_from(&c, 2, buf, 8), 8);
	for (int k = 0; k < 8; k++)
		cr_assert_eq(buf[k], 2 + k);
	cr_assert_eq(buf[8], 0xee);

	/* Offset exactly at a segment boundary. */
	cr_assert_eq(virtq_copy_from(&c, 8, buf, 3), 3);
	cr_assert_eq(buf[0], 8);
	/* Partial: asks past the end. */
	cr_assert_eq(virtq_copy_from(&c, 13, buf, 10), 2);
	cr_assert_eq(buf[0], 13);
	cr_assert_eq(buf[1], 14);
	/* Nothing left, or nothing asked. */
	cr_assert_eq(virtq_copy_from(&c, 15, buf, 4), 0);
	cr_assert_eq(virtq_copy_from(&c, 1000, buf, 4), 0);
	cr_assert_eq(virtq_copy_from(&c, UINT64_MAX, buf, 4), 0);
	buf[0] = 0x55;
	cr_assert_eq(virtq_copy_from(&c, 0, buf, 0), 0);
	cr_assert_eq(buf[0], 0x55);
	/* copy_to has no writable part here. */
	cr_assert_eq(virtq_copy_to(&c, 0, buf, 4), 0);
}

Test(virtq_copy, copy_to_across_segments)
{
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s[4] = { mock_buf(&mk, 9, false), mock_buf(&mk, 4, true),
			     mock_buf(&mk, 0, true), mock_buf(&mk, 6, true) };
	uint16_t head = mock_add_chain(&mk, s, 4);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	uint8_t *w0 = mock_ptr(&mk, s[1].addr, 4), *w2 = mock_ptr(&mk, s[3].addr, 6);
	uint8_t *r0 = mock_ptr(&mk, s[0].addr, 9);
	memset(w0, 0, 4);
	memset(w2, 0, 6);
	memset(r0, 0, 9);

	static const uint8_t src[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };
	cr_assert_eq(virtq_copy_to(&c, 3, src, 5), 5);
	cr_assert_eq(w0[2], 0);
	cr_assert_eq(w0[3], 1);
	cr_assert_eq(w2[0], 2);
	cr_assert_eq(w2[3], 5);
	cr_assert_eq(w2[4], 0);
	for (int k = 0; k < 9; k++)
		cr_assert_eq(r0[k], 0, "readable part untouched");

	/* Partial: 10 bytes of room for 14. */
	cr_assert_eq(virtq_copy_to(&c, 0, src, sizeof(src)), 10);
	cr_assert_eq(w0[0], 1);
	cr_assert_eq(w2[5], 10);
	cr_assert_eq(virtq_copy_to(&c, 10, src, 1), 0);
	cr_assert_eq(virtq_copy_to(&c, 4, src, 0), 0);
}

Test(virtq_copy, strerror_names_every_error)
{
	for (int e = VIRTQ_OK; e <= VIRTQ_ERR_EMPTY; e++) {
		const char *s = virtq_strerror((enum virtq_chain_err)e);
		cr_assert(s && *s);
		for (int f = VIRTQ_OK; f < e; f++)
			cr_assert_str_neq(s, virtq_strerror((enum virtq_chain_err)f));
	}
}

/* ---- a data window (virtio-fs DAX) --------------------------------------------------- */

#define WIN_GPA  0x1000000000ULL
#define WIN_SIZE 0x10000ULL
static uint8_t winmem[WIN_SIZE];
static struct gmem_window win = { WIN_GPA, WIN_SIZE, winmem };

TestSuite(virtq_window, .init = vq_init, .fini = vq_fini);

/* A buffer in the window is a segment like any other when the queue allows it. */
Test(virtq_window, data_segment_in_the_window)
{
	static uint8_t other[0x1000];
	static struct gmem_window win2 = { WIN_GPA + 0x100000, sizeof(other), other };
	cr_assert_eq(gmem_add_window(&mk.m, &win2), 0);
	cr_assert_eq(gmem_add_window(&mk.m, &win), 0);
	mock_queue(&mk, &q, 8, false, true);
	q.data_windows = true;
	struct mseg s[3] = { mock_buf(&mk, 40, false), mock_buf(&mk, 16, true),
			     { WIN_GPA + 0x2000, 0x1000, true } };
	uint16_t head = mock_add_chain(&mk, s, 3);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	cr_assert_eq(c.nr_in, 2);
	cr_assert_eq(c.in[1].iov_base, winmem + 0x2000);
	cr_assert_eq(c.in[1].iov_len, 0x1000);
	/* The same in an indirect table (the table itself in RAM). */
	head = mock_add_indirect(&mk, s, 3);
	cr_assert_eq(pop_err(head), VIRTQ_OK);
	cr_assert_eq(c.in[1].iov_base, winmem + 0x2000);
	/* The window's last byte, and one past it. */
	struct mseg last = { WIN_GPA + WIN_SIZE - 1, 1, true };
	cr_assert_eq(pop_err(mock_add_chain(&mk, &last, 1)), VIRTQ_OK);
	struct mseg over = { WIN_GPA + WIN_SIZE - 1, 2, true };
	assert_chain_err(mock_add_chain(&mk, &over, 1), VIRTQ_ERR_RANGE);
	/* Any registered window: the second one too. */
	struct mseg in2 = { WIN_GPA + 0x100010, 0x10, true };
	cr_assert_eq(pop_err(mock_add_chain(&mk, &in2, 1)), VIRTQ_OK);
	cr_assert_eq(c.in[0].iov_base, other + 0x10);
}

Test(virtq_window, only_when_the_queue_has_one_and_it_is_placed)
{
	cr_assert_eq(gmem_add_window(&mk.m, &win), 0);
	mock_queue(&mk, &q, 8, false, false);
	struct mseg s = { WIN_GPA, 64, true };
	assert_chain_err(mock_add_chain(&mk, &s, 1), VIRTQ_ERR_RANGE);   /* not allowed */
	mock_teardown(&mk);
	mock_setup(&mk);
	static struct gmem_window nowhere = { 0, WIN_SIZE, winmem };
	cr_assert_eq(gmem_add_window(&mk.m, &nowhere), 0);
	mock_queue(&mk, &q, 8, false, false);
	q.data_windows = true;
	struct mseg low = { 0x10, 64, true };   /* would be inside a window at gpa 0 */
	cr_assert_eq(pop_err(mock_add_chain(&mk, &low, 1)), VIRTQ_OK, "RAM as usual");
	cr_assert_neq(c.in[0].iov_base, winmem + 0x10);
	assert_chain_err(mock_add_chain(&mk, &s, 1), VIRTQ_ERR_RANGE);
}

/* Rings and indirect tables are read by the VMM itself: never from the window. */
Test(virtq_window, rings_and_tables_never_in_the_window)
{
	cr_assert_eq(gmem_add_window(&mk.m, &win), 0);
	mock_queue(&mk, &q, 8, false, true);
	q.data_windows = true;
	cr_assert_eq(virtq_init(&q, &mk.m, 8, WIN_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA, false, true),
		     -EINVAL);
	cr_assert_eq(virtq_init(&q, &mk.m, 8, MOCK_DESC_GPA, MOCK_AVAIL_GPA, WIN_GPA, false, true),
		     -EINVAL);
	mock_queue(&mk, &q, 8, false, true);
	q.data_windows = true;
	/* A valid-looking indirect table placed in the window. */
	uint64_t addr = MOCK_HEAP_GPA;
	uint32_t len = 16;
	uint16_t flags = D_WRITE, next = 0;
	memcpy(winmem, &addr, 8);
	memcpy(winmem + 8, &len, 4);
	memcpy(winmem + 12, &flags, 2);
	memcpy(winmem + 14, &next, 2);
	mock_desc(&mk, 0, WIN_GPA, 16, D_INDIRECT, 0);
	mk.next_desc = 1;
	mock_publish(&mk, 0);
	assert_chain_err(0, VIRTQ_ERR_INDIRECT);
}
