/* Blocking locks through the virtio-fs device itself (fs/virtio_fs.c), the guest driver
 * played by virtq_mock.h rings on request queue 1: lock waiters must not hold the device's
 * pool threads (default 4), and a device reset with waiters must return at once and
 * publish nothing for them.  The transport is a stub that counts interrupts. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "fs/share.h"
#include "fs/virtio_fs.h"
#include "tests/unit/fuse_util.h"
#include "tests/unit/virtq_mock.h"
#include "virtio/core.h"
#include "vmm/vm.h"

#define QSIZE 256
#define EOF_  (uint64_t)INT64_MAX
#define V1    (1ULL << VIRTIO_F_VERSION_1)
#define ALL_OK (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | \
		VIRTIO_STATUS_DRIVER_OK)

static struct vm vm;
static struct mock mk;
static struct virtq scratch;
static struct virtio_dev *D;
static atomic_int irqs;
static uint64_t unique = 1;

static void stub_signal(struct virtio_dev *d, enum virtio_irq kind, uint16_t q)
{
	atomic_fetch_add(&irqs, 1);
}
static const struct virtio_transport_ops stub_tops = { .signal = stub_signal };

/* The driver's bring-up: VERSION_1, request queue 1 on the mock's rings, DRIVER_OK. */
static void dev_start(void)
{
	struct virtio_queue *q;

	virtio_status_write(D, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_status_write(D, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	virtio_driver_features_write(D, 0, (uint32_t)V1);
	virtio_driver_features_write(D, 1, (uint32_t)(V1 >> 32));
	virtio_status_write(D, ALL_OK & ~VIRTIO_STATUS_DRIVER_OK);
	mock_queue(&mk, &scratch, QSIZE, false, false);
	/* hiprio: an empty ring of 8 in the mock's heap (its worker looks at it at once) */
	q = virtio_queue_cfg(D, 0);
	cr_assert_not_null(q);
	q->size = 8;
	q->desc = mock_alloc(&mk, 16 * 8);
	q->driver = mock_alloc(&mk, 6 + 2 * 8);
	q->device = mock_alloc(&mk, 6 + 8 * 8);
	memset(mock_ptr(&mk, q->desc, 16 * 8), 0, 16 * 8);
	memset(mock_ptr(&mk, q->driver, 6 + 2 * 8), 0, 6 + 2 * 8);
	memset(mock_ptr(&mk, q->device, 6 + 8 * 8), 0, 6 + 8 * 8);
	q->enabled = true;
	q = virtio_queue_cfg(D, 1);
	cr_assert_not_null(q);
	q->size = QSIZE;
	q->desc = MOCK_DESC_GPA;
	q->driver = MOCK_AVAIL_GPA;
	q->device = MOCK_USED_GPA;
	q->enabled = true;
	virtio_status_write(D, ALL_OK);
	cr_assert_eq(virtio_status_read(D), ALL_OK);
}

static void dev_setup(void)
{
	struct share sh;
	char err[256];

	fx_setup_noinit();      /* for the directories only */
	fx_write_file("f", "0123456789", 10);
	memset(&vm, 0, sizeof(vm));
	mock_setup(&mk);
	vm.mem = mk.m;
	cr_assert_eq(share_init(&sh, "t", fx.share, false), 0);
	D = virtio_fs_create(&vm, &sh, err, sizeof(err));
	share_free(&sh);
	cr_assert_not_null(D, "virtio_fs_create: %s", err);
	D->tops = &stub_tops;
	dev_start();
}

/* No teardown API for the device: reset (joins its queue workers, ends lock waits); its
 * pool threads stay, as in the VMM, which keeps a device for its whole life. */
static void dev_teardown(void)
{
	virtio_status_write(D, 0);
	for (int i = 0; i < D->nqueues; i++)
		close(D->q[i].kick_fd);
	fx_teardown();
}

TestSuite(virtio_fs_lock, .init = dev_setup, .fini = dev_teardown, .timeout = 30);

struct dreq {
	uint16_t head;
	uint64_t reply;         /* gpa of the reply buffer (header + payload) */
	uint32_t replysz;
};

/* Publish one request (header + arg + tail) with a reply buffer of `payload` bytes, filled
 * with 0xAA, and kick queue 1. */
static struct dreq dev_submit(uint32_t op, uint64_t nodeid, const void *arg, size_t argsz,
			      const void *tail, size_t tailsz, uint32_t payload)
{
	struct fuse_in_header h = { .len = (uint32_t)(sizeof(h) + argsz + tailsz), .opcode = op,
				    .unique = unique++, .nodeid = nodeid };
	struct mseg s[2];
	struct dreq r;
	uint8_t *p;

	s[0] = mock_buf(&mk, h.len, false);
	p = mock_ptr(&mk, s[0].addr, h.len);
	memcpy(p, &h, sizeof(h));
	if (argsz)
		memcpy(p + sizeof(h), arg, argsz);
	if (tailsz)
		memcpy(p + sizeof(h) + argsz, tail, tailsz);
	r.replysz = (uint32_t)sizeof(struct fuse_out_header) + payload;
	s[1] = mock_buf(&mk, r.replysz, true);
	memset(mock_ptr(&mk, s[1].addr, r.replysz), 0xAA, r.replysz);
	r.reply = s[1].addr;
	r.head = mock_add_chain(&mk, s, 2);
	virtio_queue_kick(D, 1);
	return r;
}

/* The used length for r's chain, once published; -1 if it was not within `ms`. */
static int dev_wait(const struct dreq *r, int ms)
{
	for (int t = 0; t <= ms; t++) {
		uint16_t n = mock_used_idx(&mk);
		for (uint16_t i = 0; i < n; i++) {
			uint32_t id, len;
			mock_used_elem(&mk, i, &id, &len);
			if (id == r->head)
				return (int)len;
		}
		if (t < ms)
			usleep(1000);
	}
	return -1;
}

static int dev_error(const struct dreq *r)
{
	struct fuse_out_header oh;

	memcpy(&oh, mock_ptr(&mk, r->reply, sizeof(oh)), sizeof(oh));
	return oh.error;
}

/* One request, answered: its error, payload copied to `out`. */
static int dev_call(uint32_t op, uint64_t nodeid, const void *arg, size_t argsz,
		    const void *tail, size_t tailsz, void *out, uint32_t outsz)
{
	struct dreq r = dev_submit(op, nodeid, arg, argsz, tail, tailsz, outsz);
	int len = dev_wait(&r, 3000);

	cr_assert_geq(len, (int)sizeof(struct fuse_out_header), "opcode %u not answered", op);
	if (out && !dev_error(&r))
		memcpy(out, mock_ptr(&mk, r.reply + sizeof(struct fuse_out_header), outsz), outsz);
	return dev_error(&r);
}

static struct dreq lk_submit(uint32_t op, uint64_t fh, uint64_t owner, uint32_t type,
			     uint64_t start, uint64_t end)
{
	struct fuse_lk_in in = { .fh = fh, .owner = owner,
				 .lk = { .start = start, .end = end, .type = type } };

	return dev_submit(op, 2, &in, sizeof(in), NULL, 0, 0);
}

static int lk_call(uint32_t op, uint64_t fh, uint64_t owner, uint32_t type, uint64_t start,
		   uint64_t end)
{
	struct dreq r = lk_submit(op, fh, owner, type, start, end);

	cr_assert_eq(dev_wait(&r, 3000), (int)sizeof(struct fuse_out_header), "lock not answered");
	return dev_error(&r);
}

/* INIT, LOOKUP "f", two OPENs (read-write). */
static void dev_open2(uint64_t *a, uint64_t *b)
{
	struct fuse_init_in init = { .major = 7, .minor = 38, .flags = FUSE_POSIX_LOCKS };
	struct fuse_init_out io;
	struct fuse_entry_out e;
	struct fuse_open_in oi = { .flags = O_RDWR };
	struct fuse_open_out oo;

	cr_assert_eq(dev_call(FUSE_INIT, 0, &init, sizeof(init), NULL, 0, &io, sizeof(io)), 0);
	cr_assert_eq(dev_call(FUSE_LOOKUP, 1, NULL, 0, "f", 2, &e, sizeof(e)), 0);
	cr_assert_eq(dev_call(FUSE_OPEN, e.nodeid, &oi, sizeof(oi), NULL, 0, &oo, sizeof(oo)), 0);
	*a = oo.fh;
	cr_assert_eq(dev_call(FUSE_OPEN, e.nodeid, &oi, sizeof(oi), NULL, 0, &oo, sizeof(oo)), 0);
	*b = oo.fh;
}

/* More waiters than the pool has threads; the holder's unlock comes after them. */
Test(virtio_fs_lock, waiters_hold_no_pool_thread)
{
	struct dreq w[6], unlock;
	uint64_t a, b;

	dev_open2(&a, &b);
	cr_assert_eq(lk_call(FUSE_SETLK, a, 1, F_WRLCK, 0, 99), 0);
	for (int i = 0; i < 6; i++)
		w[i] = lk_submit(FUSE_SETLKW, b, 2 + i, F_RDLCK, 0, 9);
	usleep(100 * 1000);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(dev_wait(&w[i], 0), -1, "waiter %d did not wait", i);
	unlock = lk_submit(FUSE_SETLK, a, 1, F_UNLCK, 0, EOF_);
	cr_assert_eq(dev_wait(&unlock, 3000), (int)sizeof(struct fuse_out_header),
		     "the holder's unlock never ran: lock waiters hold every pool thread");
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(dev_wait(&w[i], 3000), (int)sizeof(struct fuse_out_header),
			     "waiter %d never answered", i);
		cr_assert_eq(dev_error(&w[i]), 0);
	}
}

static void *reset_main(void *arg)
{
	atomic_int *done = arg;

	virtio_status_write(D, 0);
	atomic_store(done, 1);
	return NULL;
}

/* A reset (from a vCPU thread, holding the device lock) with lock waiters returns at once;
 * nothing is published or written for them; the device works again afterwards, and the
 * old session's locks are gone. */
Test(virtio_fs_lock, reset_with_waiters)
{
	struct dreq w[6];
	atomic_int done = 0;
	pthread_t t;
	uint64_t a, b;
	uint16_t used;

	dev_open2(&a, &b);
	cr_assert_eq(lk_call(FUSE_SETLK, a, 1, F_WRLCK, 0, 99), 0);
	for (int i = 0; i < 6; i++)
		w[i] = lk_submit(FUSE_SETLKW, b, 2 + i, F_WRLCK, 0, 9);
	/* All six blocked (before the fix, only as many as the pool has threads). */
	for (int t = 0; t < 1000 && fx_lock_waiters("f") < 6; t++)
		usleep(1000);
	usleep(20 * 1000);
	used = mock_used_idx(&mk);
	cr_assert_eq(pthread_create(&t, NULL, reset_main, &done), 0);
	for (int i = 0; i < 3000 && !atomic_load(&done); i++)
		usleep(1000);
	cr_assert(atomic_load(&done), "reset hangs on lock waiters");
	pthread_join(t, NULL);
	cr_assert_eq(mock_used_idx(&mk), used, "completions published into a reset device's ring");
	for (int i = 0; i < 6; i++) {
		uint8_t *p = mock_ptr(&mk, w[i].reply, w[i].replysz);
		for (uint32_t k = 0; k < w[i].replysz; k++)
			cr_assert_eq(p[k], 0xAA, "waiter %d's reply written after the reset", i);
	}
	dev_start();
	dev_open2(&a, &b);
	cr_assert_eq(lk_call(FUSE_SETLK, b, 2, F_WRLCK, 0, 9), 0,
		     "the reset session's lock outlived it");
}
