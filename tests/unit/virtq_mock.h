/* A mock virtio driver for unit tests: builds split rings (VIRTIO 1.2 §2.7) inside a plain
 * struct gmem, the way a guest driver would, and reads back what the device wrote.  Every
 * guest address goes through gmem_ptr, like the device side. */
#ifndef MINIVMM_TESTS_VIRTQ_MOCK_H
#define MINIVMM_TESTS_VIRTQ_MOCK_H
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "virtio/queue.h"
#include "vmm/memory.h"

#define MOCK_RAM       (16ULL << 20)
/* Fixed areas, big enough for a 32768-entry queue: desc 512 KiB, avail ~64 KiB, used ~256 KiB. */
#define MOCK_DESC_GPA  0x10000ULL
#define MOCK_AVAIL_GPA 0x90000ULL
#define MOCK_USED_GPA  0xA0000ULL
#define MOCK_HEAP_GPA  0x100000ULL

#define D_NEXT     1
#define D_WRITE    2
#define D_INDIRECT 4

struct mock {
	struct gmem m;
	uint16_t size;
	uint16_t avail_idx;    /* the driver's shadow of avail->idx */
	uint16_t next_desc;    /* round-robin descriptor allocator */
	uint64_t heap;         /* bump allocator for buffers and indirect tables */
};

/* One buffer of a chain as the driver describes it. */
struct mseg {
	uint64_t addr;
	uint32_t len;
	bool write;
};

static inline void *mock_ptr(struct mock *mk, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(&mk->m, gpa, len);
	cr_assert_not_null(p, "mock: gpa %#llx+%llu outside RAM", (unsigned long long)gpa,
			   (unsigned long long)len);
	return p;
}

static inline void mock_setup(struct mock *mk)
{
	memset(mk, 0, sizeof(*mk));
	cr_assert_eq(gmem_init(&mk->m, MOCK_RAM), 0);
	mk->heap = MOCK_HEAP_GPA;
}

static inline void mock_teardown(struct mock *mk)
{
	gmem_free(&mk->m);
}

/* Set up rings of `size` entries at the fixed areas and bind q to them. */
static inline void mock_queue(struct mock *mk, struct virtq *q, uint16_t size, bool event_idx,
			      bool indirect)
{
	mk->size = size;
	mk->avail_idx = 0;
	mk->next_desc = 0;
	memset(mock_ptr(mk, MOCK_DESC_GPA, MOCK_HEAP_GPA - MOCK_DESC_GPA), 0,
	       MOCK_HEAP_GPA - MOCK_DESC_GPA);
	cr_assert_eq(virtq_init(q, &mk->m, size, MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA,
				event_idx, indirect), 0);
}

static inline uint64_t mock_alloc(struct mock *mk, uint64_t len)
{
	uint64_t gpa = mk->heap;
	mk->heap += (len + 15) & ~15ULL;
	cr_assert_leq(mk->heap, MOCK_RAM, "mock heap exhausted");
	return gpa;
}

/* Write one descriptor into a table (the main one or an indirect one) at `table_gpa`. */
static inline void mock_desc_at(struct mock *mk, uint64_t table_gpa, uint32_t i, uint64_t addr,
				uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = mock_ptr(mk, table_gpa + 16ULL * i, 16);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static inline void mock_desc(struct mock *mk, uint16_t i, uint64_t addr, uint32_t len,
			     uint16_t flags, uint16_t next)
{
	cr_assert_lt(i, mk->size);
	mock_desc_at(mk, MOCK_DESC_GPA, i, addr, len, flags, next);
}

static inline volatile uint16_t *mock_u16(struct mock *mk, uint64_t gpa)
{
	return mock_ptr(mk, gpa, 2);
}

static inline void mock_set_avail_idx(struct mock *mk, uint16_t idx)
{
	mk->avail_idx = idx;
	__atomic_store_n(mock_u16(mk, MOCK_AVAIL_GPA + 2), idx, __ATOMIC_RELEASE);
}

/* Put `head` in the next avail slot and publish it. */
static inline void mock_publish(struct mock *mk, uint16_t head)
{
	*mock_u16(mk, MOCK_AVAIL_GPA + 4 + 2ULL * (mk->avail_idx % mk->size)) = head;
	mock_set_avail_idx(mk, (uint16_t)(mk->avail_idx + 1));
}

/* Build a direct chain from the allocator's next descriptors and publish it; returns head. */
static inline uint16_t mock_add_chain(struct mock *mk, const struct mseg *s, unsigned n)
{
	cr_assert(n >= 1 && n <= mk->size);
	uint16_t head = mk->next_desc, i = head;
	for (unsigned k = 0; k < n; k++) {
		uint16_t next = (uint16_t)((i + 1) % mk->size);
		mock_desc(mk, i, s[k].addr, s[k].len,
			  (uint16_t)((s[k].write ? D_WRITE : 0) | (k + 1 < n ? D_NEXT : 0)), next);
		i = next;
	}
	mk->next_desc = i;
	mock_publish(mk, head);
	return head;
}

/* Write an indirect table of n entries chained 0→1→…→n-1; returns its gpa. */
static inline uint64_t mock_table(struct mock *mk, const struct mseg *s, unsigned n)
{
	uint64_t t = mock_alloc(mk, 16ULL * n);
	for (unsigned k = 0; k < n; k++)
		mock_desc_at(mk, t, k, s[k].addr, s[k].len,
			     (uint16_t)((s[k].write ? D_WRITE : 0) | (k + 1 < n ? D_NEXT : 0)),
			     (uint16_t)(k + 1));
	return t;
}

/* One main-table descriptor pointing at an indirect table of the given segments. */
static inline uint16_t mock_add_indirect(struct mock *mk, const struct mseg *s, unsigned n)
{
	uint64_t t = mock_table(mk, s, n);
	uint16_t head = mk->next_desc;
	mock_desc(mk, head, t, (uint32_t)(16 * n), D_INDIRECT, 0);
	mk->next_desc = (uint16_t)((head + 1) % mk->size);
	mock_publish(mk, head);
	return head;
}

/* A fresh data buffer of len bytes (at least 1 so zero-length buffers still name RAM). */
static inline struct mseg mock_buf(struct mock *mk, uint32_t len, bool write)
{
	return (struct mseg){ mock_alloc(mk, len ? len : 1), len, write };
}

static inline uint16_t mock_used_idx(struct mock *mk)
{
	return __atomic_load_n(mock_u16(mk, MOCK_USED_GPA + 2), __ATOMIC_ACQUIRE);
}

static inline uint16_t mock_used_flags(struct mock *mk)
{
	return *mock_u16(mk, MOCK_USED_GPA);
}

static inline void mock_used_elem(struct mock *mk, uint16_t slot, uint32_t *id, uint32_t *len)
{
	uint8_t *e = mock_ptr(mk, MOCK_USED_GPA + 4 + 8ULL * (slot % mk->size), 8);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

static inline uint16_t mock_avail_event(struct mock *mk)
{
	return *mock_u16(mk, MOCK_USED_GPA + 4 + 8ULL * mk->size);
}

static inline void mock_set_used_event(struct mock *mk, uint16_t v)
{
	*mock_u16(mk, MOCK_AVAIL_GPA + 4 + 2ULL * mk->size) = v;
}

static inline void mock_set_avail_flags(struct mock *mk, uint16_t v)
{
	*mock_u16(mk, MOCK_AVAIL_GPA) = v;
}

/* The driver side of §2.7.10: would publishing old→new cross the device's avail_event? */
static inline bool mock_driver_would_notify(struct mock *mk, uint16_t old, uint16_t new_idx)
{
	/* Full barrier, as Linux's virtio_mb(): our avail->idx store must be visible before we
	 * read avail_event, or we and the device (which does the mirror image) can each miss
	 * the other's store and nobody wakes the device. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t ev = mock_avail_event(mk);
	return (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old);
}

#endif
