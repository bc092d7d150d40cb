/* Fuzz the split-virtqueue walker (virtio/queue.c): the input is the queue's placement and
 * the contents of guest memory (rings, descriptor tables, indirect tables), then patches
 * the "driver" applies between rounds of popping.  Every chain the device accepts must name
 * only guest RAM (or a data window, when allowed) with consistent counts; a broken ring
 * must be reported, not walked.
 *
 * Input: u8 cfg (bits 0-2 log2 queue size, 3 EVENT_IDX, 4 INDIRECT, 5 data windows, 6 rings
 * in high RAM), u16 desc/avail/used offsets, u16 image length, the image (copied to both
 * RAM regions at their start), then patches: u16 offset, u8 length, bytes (low RAM). */
#include <errno.h>

#include "tests/fuzz/fuzz.h"
#include "virtio/queue.h"

#define RAM_LOW   (64u << 10)
#define RAM_HIGH  (64u << 10)
#define WIN_GPA   0x200000000ULL
#define WIN_SIZE  4096u
#define COPY_MAX  4096u

static struct virtq_chain chain;    /* 32 KiB: not on the stack */
static uint8_t scratch[COPY_MAX];

static bool seg_ok(const struct gmem *m, const struct gmem_window *w, const struct iovec *v)
{
	if (fz_in_ram(m, v->iov_base, v->iov_len))
		return true;
	const uint8_t *b = v->iov_base;
	return w && b >= w->hva && (size_t)(b - w->hva) <= w->size &&
	       v->iov_len <= w->size - (size_t)(b - w->hva);
}

/* Everything an accepted chain claims must hold; touch each segment's ends for ASan. */
static void chain_check(struct virtq *q, const struct gmem *m, const struct gmem_window *w,
			struct virtq_chain *c)
{
	FZ_CHECK(c->head < q->size, "head %u of a %u-entry queue", c->head, q->size);
	if (c->err != VIRTQ_OK) {
		FZ_CHECK(!c->nr_out && !c->nr_in && !c->out_len && !c->in_len,
			 "a failed chain (%s) kept its segments", virtq_strerror(c->err));
		return;
	}
	FZ_CHECK(c->nr_out + c->nr_in <= VIRTQ_MAX_SEGS, "%u segments", c->nr_out + c->nr_in);
	FZ_CHECK(c->out_len + c->in_len > 0, "empty chain accepted");
	uint64_t out = 0, in = 0;
	for (int i = 0; i < c->nr_out; i++) {
		FZ_CHECK(seg_ok(m, q->data_windows ? w : NULL, &c->out[i]), "out segment %d outside RAM", i);
		out += c->out[i].iov_len;
		if (c->out[i].iov_len) {
			volatile uint8_t *p = c->out[i].iov_base;
			(void)p[0];
			(void)p[c->out[i].iov_len - 1];
		}
	}
	for (int i = 0; i < c->nr_in; i++) {
		FZ_CHECK(seg_ok(m, q->data_windows ? w : NULL, &c->in[i]), "in segment %d outside RAM", i);
		in += c->in[i].iov_len;
		if (c->in[i].iov_len) {
			volatile uint8_t *p = c->in[i].iov_base;
			p[0] = 0xa5;
			p[c->in[i].iov_len - 1] = 0x5a;
		}
	}
	FZ_CHECK(out == c->out_len && in == c->in_len, "lengths %llu/%llu, segments say %llu/%llu",
		 (unsigned long long)c->out_len, (unsigned long long)c->in_len,
		 (unsigned long long)out, (unsigned long long)in);
	/* The copy helpers, from an offset, never more than they were asked for. */
	uint64_t off = c->out_len ? (c->out_len * 7 / 13) : 0;
	size_t got = virtq_copy_from(c, off, scratch, sizeof(scratch));
	FZ_CHECK(got <= sizeof(scratch) && got <= c->out_len - (off < c->out_len ? off : c->out_len),
		 "copy_from returned %zu", got);
	got = virtq_copy_to(c, c->in_len / 3, scratch, sizeof(scratch));
	FZ_CHECK(got <= sizeof(scratch) && got <= c->in_len, "copy_to returned %zu", got);
}

/* Pop until the ring is empty or broken.  Not "at most `size` chains": the rings may
 * overlap the buffers and each other, so what the device writes (used elements, buffer
 * contents) can move avail->idx, as a driver on another CPU could; hence only a bound. */
static void drain(struct virtq *q, const struct gmem *m, const struct gmem_window *w)
{
	for (unsigned k = 0; k < 4u * q->size + 4; k++) {
		int r = virtq_pop(q, &chain);
		FZ_CHECK(r == 0 || r == 1 || r == -EIO, "virtq_pop returned %d", r);
		if (r != 1)
			break;
		chain_check(q, m, w, &chain);
		virtq_push(q, chain.head, (uint32_t)(chain.in_len > UINT32_MAX ? UINT32_MAX : chain.in_len));
		(void)virtq_should_signal(q);
	}
	virtq_disable_notify(q);
	(void)virtq_enable_notify(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	struct gmem m;
	struct virtq q;

	if (size > 2 * RAM_LOW)
		return 0;
	uint8_t cfg = fz_u8(&f);
	uint16_t size_q = (uint16_t)(1u << (cfg & 7));
	uint64_t base = (cfg & 0x40) ? GMEM_HIGH_START : 0;
	uint64_t desc = base + fz_u16(&f), avail = base + fz_u16(&f), used = base + fz_u16(&f);
	uint16_t img = fz_u16(&f);

	fz_gmem(&m, RAM_LOW, RAM_HIGH);
	struct gmem_window w = { .gpa = WIN_GPA, .size = WIN_SIZE, .hva = calloc(1, WIN_SIZE) };
	if (!w.hva)
		abort();
	m.win[m.nwin++] = &w;
	size_t k = img < f.n ? img : f.n;
	memcpy(m.r[0].hva, f.p, k);
	memcpy(m.r[1].hva, f.p, k);
	f.p += k;
	f.n -= k;

	if (virtq_init(&q, &m, size_q, desc, avail, used, cfg & 0x08, cfg & 0x10) == 0) {
		q.data_windows = cfg & 0x20;
		drain(&q, &m, &w);
		/* The driver moves on: patch low RAM, pop again. */
		for (int round = 0; round < 64 && !fz_empty(&f); round++) {
			uint16_t off = fz_u16(&f);
			uint8_t len = fz_u8(&f);
			if ((size_t)off + len > RAM_LOW)
				len = (uint8_t)(RAM_LOW - off);
			fz_bytes(&f, m.r[0].hva + off, len);
			drain(&q, &m, &w);
		}
	}
	free(w.hva);
	fz_gmem_free(&m);
	return 0;
}
