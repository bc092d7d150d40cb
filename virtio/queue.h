/* Split virtqueues (VIRTIO 1.2 §2.7): the device side.  Pure code over guest memory — no KVM,
 * no threads — so every rule is unit-tested with rings built in plain memory.
 *
 * Trust model: the driver is hostile.  Every index, length, address and flag read from the
 * rings is read once into a local copy, checked, and only then used; a chain is validated
 * completely before the device sees any of it. */
#ifndef MINIVMM_VIRTIO_QUEUE_H
#define MINIVMM_VIRTIO_QUEUE_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/memory.h"

#define VIRTQ_MAX_SIZE   32768   /* the spec's limit for split queues */
/* Segments one chain may have after indirect expansion; also the chain length budget, so a
 * descriptor loop ends here.  1 MiB FUSE requests of 4 KiB pages need ~260. */
#define VIRTQ_MAX_SEGS   1024

/* Errors a chain can have; the head was valid, so the request can be failed on its own. */
enum virtq_chain_err {
	VIRTQ_OK = 0,
	VIRTQ_ERR_RANGE,      /* an address range not wholly inside guest RAM, or overflowing */
	VIRTQ_ERR_NEXT,       /* `next` >= queue size (or >= indirect table length) */
	VIRTQ_ERR_LOOP,       /* more descriptors than the budget: a loop */
	VIRTQ_ERR_ORDER,      /* a device-readable descriptor after a device-writable one */
	VIRTQ_ERR_INDIRECT,   /* indirect not negotiated, nested, combined with NEXT, length
	                       * not a non-zero multiple of 16, or table outside RAM */
	VIRTQ_ERR_EMPTY,      /* zero total length */
};

struct virtq_chain {
	uint16_t head;                 /* what goes back into the used ring */
	enum virtq_chain_err err;      /* VIRTQ_OK, or why the chain must be failed */
	uint16_t nr_out, nr_in;        /* device-readable segments, then device-writable ones */
	uint64_t out_len, in_len;      /* their total byte counts */
	struct iovec out[VIRTQ_MAX_SEGS];
	struct iovec in[VIRTQ_MAX_SEGS];
};

struct virtq {
	/* set by virtq_init */
	const struct gmem *mem;
	uint16_t size;                 /* power of two, 1..VIRTQ_MAX_SIZE */
	bool event_idx;                /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;                 /* VIRTIO_F_RING_INDIRECT_DESC negotiated */
	/* Chain segments (never rings or indirect tables) may also point into mem's windows;
	 * the device must then never memcpy such a segment (see struct gmem_window).  Set by
	 * the caller after virtq_init. */
	bool data_windows;
	/* Heads popped and not yet pushed, `size` bits, or NULL (not tracked).  Set (zeroed) by
	 * the caller after virtq_init.  With it, a head the driver makes available again while
	 * the device still works on it is a broken ring: two threads would write the same
	 * buffers and the used ring would get the head twice.  Bits are set by virtq_pop and
	 * cleared by virtq_push (atomically: the two may run on different threads). */
	uint64_t *inflight;
	/* host views of the three areas, validated once by virtq_init */
	volatile uint8_t *desc, *avail, *used;
	/* device-private state: never read back from guest memory */
	uint16_t last_avail;           /* next avail ring slot to consume */
	uint16_t used_idx;             /* our copy of used->idx */
	uint16_t signalled_used;       /* used_idx at the last interrupt (EVENT_IDX) */
	bool signalled_valid;
};

/* Validate a queue the driver set up (size a power of two ≤ max; desc 16-, avail 2-, used
 * 4-byte aligned; each area, with the event fields, wholly in RAM) and reset its state.
 * Returns 0 or -EINVAL. */
int virtq_init(struct virtq *q, const struct gmem *mem, uint16_t size, uint64_t desc_gpa,
	       uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect)
	__attribute__((warn_unused_result));

/* Take the next available chain.  Returns 1 with *c filled (check c->err: a bad chain must
 * be completed with virtq_push(q, c->head, 0) and nothing else done with it), 0 when the
 * ring is empty, or -EIO when the ring itself is broken (avail->idx ran ahead of
 * last_avail by more than the queue size, a head index >= size, or, when `inflight` is
 * tracked, a head still in flight): the device must stop using the queue and signal
 * NEEDS_RESET. */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/* Return a chain to the driver with `written` bytes written into its writable part. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/* After one or more pushes: does the driver want an interrupt now?  Honours EVENT_IDX
 * (used_event) or, without it, VIRTQ_AVAIL_F_NO_INTERRUPT.  Records the decision. */
bool virtq_should_signal(struct virtq *q);

/* Ask the driver not to notify us (processing) or to notify again (about to sleep).
 * With EVENT_IDX this writes avail_event; otherwise the used ring's NO_NOTIFY flag.
 * virtq_enable_notify returns true if buffers arrived meanwhile (re-check before sleeping). */
void virtq_disable_notify(struct virtq *q);
bool virtq_enable_notify(struct virtq *q);

/* Copy helpers over a chain's segments: gather from `out`, scatter into `in`.
 * They copy at most `len` bytes starting `off` bytes in; return bytes copied. */
size_t virtq_copy_from(const struct virtq_chain *c, uint64_t off, void *dst, size_t len);
size_t virtq_copy_to(const struct virtq_chain *c, uint64_t off, const void *src, size_t len);

const char *virtq_strerror(enum virtq_chain_err e);

#endif
