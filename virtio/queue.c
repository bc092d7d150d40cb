/* Split virtqueues (VIRTIO 1.2 §2.7), device side.  The driver runs on another CPU and may
 * be hostile: ring fields it owns are read once, with the ordering the spec requires, and
 * every descriptor is copied to a local before it is checked and used.  Guest addresses
 * only become host pointers through gmem_ptr(). */
#include <errno.h>
#include <string.h>

#include "virtio/queue.h"

#define VIRTQ_DESC_F_NEXT      1
#define VIRTQ_DESC_F_WRITE     2
#define VIRTQ_DESC_F_INDIRECT  4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

#define DESC_SIZE 16u

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct desc) == DESC_SIZE, "descriptor layout");

/* Byte offsets inside the avail and used areas (§2.7.6, §2.7.8). */
#define AVAIL_FLAGS 0
#define AVAIL_IDX   2
#define AVAIL_RING  4
#define USED_FLAGS  0
#define USED_IDX    2
#define USED_RING   4
#define USED_ELEM   8u

static inline volatile uint16_t *u16_at(volatile uint8_t *base, size_t off)
{
	return (volatile uint16_t *)(base + off);
}

/* used_event lives just after the avail ring, avail_event just after the used ring. */
static inline volatile uint16_t *used_event(const struct virtq *q)
{
	return u16_at(q->avail, AVAIL_RING + 2u * q->size);
}

static inline volatile uint16_t *avail_event(const struct virtq *q)
{
	return u16_at(q->used, USED_RING + USED_ELEM * q->size);
}

/* Acquire: the ring entries below avail->idx were written before the driver published it. */
static inline uint16_t avail_idx(const struct virtq *q)
{
	return __atomic_load_n(u16_at(q->avail, AVAIL_IDX), __ATOMIC_ACQUIRE);
}

int virtq_init(struct virtq *q, const struct gmem *mem, uint16_t size, uint64_t desc_gpa,
	       uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect)
{
	/* size is a uint16_t, so the spec's 32768 maximum is the only upper bound left to test
	 * once it is a power of two: 65536 cannot be expressed. */
	if (size == 0 || (size & (size - 1)) || size > VIRTQ_MAX_SIZE)
		return -EINVAL;
	if (desc_gpa % 16 || avail_gpa % 2 || used_gpa % 4)
		return -EINVAL;
	/* The areas include the event fields whether or not EVENT_IDX is negotiated, so a later
	 * feature change can never make us touch memory that was not checked here. */
	uint64_t desc_len = (uint64_t)DESC_SIZE * size;
	uint64_t avail_len = AVAIL_RING + 2ull * size + 2;
	uint64_t used_len = USED_RING + (uint64_t)USED_ELEM * size + 2;
	void *d = gmem_ptr(mem, desc_gpa, desc_len);
	void *a = gmem_ptr(mem, avail_gpa, avail_len);
	void *u = gmem_ptr(mem, used_gpa, used_len);
	if (!d || !a || !u)
		return -EINVAL;

	*q = (struct virtq){
		.mem = mem, .size = size, .event_idx = event_idx, .indirect = indirect,
		.desc = d, .avail = a, .used = u,
	};
	return 0;
}

/* One copy of a descriptor; the compiler barrier stops it from re-reading guest memory in
 * place of the local (a second fetch could see different values after the check). */
static inline void read_desc(const volatile uint8_t *table, uint32_t i, struct desc *d)
{
	memcpy(d, (const void *)(table + (size_t)i * DESC_SIZE), sizeof(*d));
	__asm__ __volatile__("" ::: "memory");
}

/* Walk and check the chain starting at c->head.  Segments are recorded as they are found,
 * but the caller discards them all if anything is wrong. */
static enum virtq_chain_err walk_chain(const struct virtq *q, struct virtq_chain *c)
{
	const volatile uint8_t *table = q->desc;
	uint32_t table_len = q->size;
	bool in_indirect = false;
	uint32_t direct = 0;         /* descriptors read from the main table */
	uint16_t i = c->head;

	for (;;) {
		/* Budget: a chain in the main table can't be longer than the table without
		 * revisiting a descriptor, and VIRTQ_MAX_SEGS bounds segments overall (it also
		 * ends loops inside an indirect table). */
		if (!in_indirect && ++direct > q->size)
			return VIRTQ_ERR_LOOP;
		struct desc d;
		read_desc(table, i, &d);

		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* §2.7.5.3.1: only when negotiated, not nested, not with NEXT.  The
			 * WRITE flag on this descriptor means nothing and is ignored. */
			if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return VIRTQ_ERR_INDIRECT;
			if (d.len == 0 || d.len % DESC_SIZE || d.len / DESC_SIZE > VIRTQ_MAX_SEGS)
				return VIRTQ_ERR_INDIRECT;
			const volatile uint8_t *t = gmem_ptr(q->mem, d.addr, d.len);
			if (!t)
				return VIRTQ_ERR_INDIRECT;
			table = t;
			table_len = d.len / DESC_SIZE;
			in_indirect = true;
			i = 0;   /* an indirect chain starts at entry 0 (§2.7.5.3.2) */
			continue;
		}

		if (c->nr_out + c->nr_in >= VIRTQ_MAX_SEGS)
			return VIRTQ_ERR_LOOP;
		/* len 0 is checked as one byte by gmem_ptr: an empty segment still has to name
		 * guest RAM, so a bogus address is reported rather than silently passed on. */
		void *hva = gmem_ptr(q->mem, d.addr, d.len);
		if (!hva && q->data_windows)
			hva = gmem_windows_ptr(q->mem, d.addr, d.len);
		if (!hva)
			return VIRTQ_ERR_RANGE;
		struct iovec seg = { .iov_base = hva, .iov_len = d.len };
		if (d.flags & VIRTQ_DESC_F_WRITE) {
			c->in[c->nr_in++] = seg;
			c->in_len += d.len;
		} else {
			/* §2.7.4.2: all device-readable descriptors come first. */
			if (c->nr_in)
				return VIRTQ_ERR_ORDER;
			c->out[c->nr_out++] = seg;
			c->out_len += d.len;
		}

		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= table_len)
			return VIRTQ_ERR_NEXT;
		i = d.next;
	}
	/* Sums of at most VIRTQ_MAX_SEGS 32-bit lengths: no overflow in 64 bits. */
	if (c->out_len + c->in_len == 0)
		return VIRTQ_ERR_EMPTY;
	return VIRTQ_OK;
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	uint16_t idx = avail_idx(q);
	uint16_t pending = (uint16_t)(idx - q->last_avail);
	if (pending == 0)
		return 0;
	/* The driver can't have more buffers outstanding than there are ring slots. */
	if (pending > q->size)
		return -EIO;
	uint16_t head = *u16_at(q->avail, AVAIL_RING + 2u * (q->last_avail & (q->size - 1)));
	if (head >= q->size)
		return -EIO;
	if (q->inflight) {
		uint64_t bit = 1ULL << (head % 64);
		if (__atomic_fetch_or(&q->inflight[head / 64], bit, __ATOMIC_ACQ_REL) & bit)
			return -EIO;
	}

	/* From here the slot is consumed even if the chain is bad: its head is valid, so the
	 * request can be completed (with length 0) on its own and the queue keeps going. */
	q->last_avail++;
	c->head = head;
	c->nr_out = c->nr_in = 0;
	c->out_len = c->in_len = 0;
	c->err = walk_chain(q, c);
	if (c->err != VIRTQ_OK) {
		c->nr_out = c->nr_in = 0;
		c->out_len = c->in_len = 0;
	}
	return 1;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	volatile uint8_t *e = q->used + USED_RING + USED_ELEM * (q->used_idx & (q->size - 1));
	/* Cleared before the driver can see the head in the used ring (the idx store below
	 * is a release): a driver that reuses it at once is not mistaken for a duplicate. */
	if (q->inflight && head < q->size)
		__atomic_fetch_and(&q->inflight[head / 64], ~(1ULL << (head % 64)), __ATOMIC_RELEASE);
	*(volatile uint32_t *)e = head;
	*(volatile uint32_t *)(e + 4) = written;
	q->used_idx++;
	/* Release: the element above is visible before the driver can see the new idx. */
	__atomic_store_n(u16_at(q->used, USED_IDX), q->used_idx, __ATOMIC_RELEASE);
}

/* §2.7.10: true when event_idx lies in [old, new_idx), modulo 2^16. */
static inline bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

bool virtq_should_signal(struct virtq *q)
{
	/* Full barrier: our used->idx store must be visible before we read the driver's
	 * suppression state, or both sides could decide the other will act (lost interrupt). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	bool sig;
	if (q->event_idx) {
		uint16_t ev = __atomic_load_n(used_event(q), __ATOMIC_RELAXED);
		/* Until something was signalled there is no `old` to compare against. */
		sig = !q->signalled_valid || need_event(ev, q->used_idx, q->signalled_used);
	} else {
		uint16_t flags = __atomic_load_n(u16_at(q->avail, AVAIL_FLAGS), __ATOMIC_RELAXED);
		sig = !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	/* Recorded even when not signalling: the driver's used_event only ever moves forward
	 * past what it has seen, and it re-checks the ring after moving it. */
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	return sig;
}

void virtq_disable_notify(struct virtq *q)
{
	if (q->event_idx)
		/* An index just behind what we will consume next: the driver's window
		 * [old, new) can only contain it again after 2^16 more buffers. */
		__atomic_store_n(avail_event(q), (uint16_t)(q->last_avail - 1), __ATOMIC_RELAXED);
	else
		/* Written whole from our own state; the field is ours, never read back. */
		__atomic_store_n(u16_at(q->used, USED_FLAGS), VIRTQ_USED_F_NO_NOTIFY,
				 __ATOMIC_RELAXED);
}

bool virtq_enable_notify(struct virtq *q)
{
	if (q->event_idx)
		/* Notify us as soon as the driver publishes the slot we'll consume next. */
		__atomic_store_n(avail_event(q), q->last_avail, __ATOMIC_RELAXED);
	else
		__atomic_store_n(u16_at(q->used, USED_FLAGS), 0, __ATOMIC_RELAXED);
	/* Full barrier: the store above must be visible before we re-read avail->idx; else a
	 * buffer added in between is neither seen here nor notified (the device sleeps). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return avail_idx(q) != q->last_avail;
}

/* Shared walk for both copy directions: skip `off` bytes of segments, then hand out pieces. */
static size_t copy_iov(const struct iovec *iov, uint16_t n, uint64_t off, uint8_t *buf,
		       size_t len, bool to_iov)
{
	size_t done = 0;
	for (uint16_t i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t avail = iov[i].iov_len - off;
		size_t k = len - done < avail ? len - done : avail;
		uint8_t *p = (uint8_t *)iov[i].iov_base + off;
		if (to_iov)
			memcpy(p, buf + done, k);
		else
			memcpy(buf + done, p, k);
		done += k;
		off = 0;
	}
	return done;
}

size_t virtq_copy_from(const struct virtq_chain *c, uint64_t off, void *dst, size_t len)
{
	return copy_iov(c->out, c->nr_out, off, dst, len, false);
}

size_t virtq_copy_to(const struct virtq_chain *c, uint64_t off, const void *src, size_t len)
{
	return copy_iov(c->in, c->nr_in, off, (uint8_t *)src, len, true);
}

const char *virtq_strerror(enum virtq_chain_err e)
{
	switch (e) {
	case VIRTQ_OK:           return "ok";
	case VIRTQ_ERR_RANGE:    return "buffer outside guest RAM";
	case VIRTQ_ERR_NEXT:     return "descriptor next out of range";
	case VIRTQ_ERR_LOOP:     return "descriptor chain too long (loop)";
	case VIRTQ_ERR_ORDER:    return "readable descriptor after writable";
	case VIRTQ_ERR_INDIRECT: return "bad indirect descriptor";
	case VIRTQ_ERR_EMPTY:    return "zero-length descriptor chain";
	}
	return "unknown virtqueue error";
}
