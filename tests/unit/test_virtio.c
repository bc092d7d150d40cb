/* The virtio device model (virtio/core.c) and its two transports (virtio/mmio.c,
 * virtio/pci.c) without KVM: the guest driver is played by register accesses, the device
 * by a fake ops table with counters (or the real rng over virtq_mock.h rings), interrupts
 * by an eventfd (MMIO), a recording transport (core) or recording pci_irq_ops (PCI).
 * Register offsets are spelled out here from the spec rather than taken from the sources,
 * so a layout change is caught. */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/pci.h"
#include "tests/unit/virtq_mock.h"
#include "virtio/core.h"
#include "virtio/mmio.h"
#include "virtio/pci.h"
#include "virtio/rng.h"
#include "vmm/bus.h"
#include "vmm/vm.h"

#define NQ   2
#define QMAX 8
#define ACK  VIRTIO_STATUS_ACKNOWLEDGE
#define DRV  VIRTIO_STATUS_DRIVER
#define FOK  VIRTIO_STATUS_FEATURES_OK
#define DOK  VIRTIO_STATUS_DRIVER_OK
#define NRS  VIRTIO_STATUS_NEEDS_RESET
#define FAIL VIRTIO_STATUS_FAILED
#define V1   (1ULL << VIRTIO_F_VERSION_1)
/* Device-specific bits of the fake: one on each feature page, so paging is visible. */
#define FAKE_FEATURES ((1ULL << 0) | (1ULL << 33))
#define OFFER (FAKE_FEATURES | V1 | (1ULL << VIRTIO_F_RING_EVENT_IDX) | \
	       (1ULL << VIRTIO_F_RING_INDIRECT_DESC))

/* Poll for up to 2 s: workers run on their own threads. */
#define WAIT(cond) ({ for (int w_ = 0; w_ < 2000 && !(cond); w_++) usleep(1000); (cond); })
#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)

/* ---- the fake device: counters, an 8-byte config space, an optional worker ---- */

enum fake_mode { FAKE_PLAIN, FAKE_BLOCKING, FAKE_BREAKS, FAKE_REFILL };
static struct {
	int activates, resets, activate_ret, cfg_writes;
	uint8_t cfg[8];
	enum fake_mode mode;
	struct virtio_worker w;
	int runs;                         /* worker-side flags: accessed with LOAD/STORE */
	bool blocked, release, done, flagged;
	int sig[2];                       /* fake transport: signals per enum virtio_irq */
} fk;

/* The first run is a request "in flight": it holds on until the test releases it. */
static void fake_block(struct virtio_dev *d, uint16_t q)
{
	if (__atomic_add_fetch(&fk.runs, 1, __ATOMIC_SEQ_CST) != 1)
		return;
	STORE(fk.blocked, true);
	while (!LOAD(fk.release))
		usleep(1000);
	usleep(20000);   /* still busy: a reset that did not join would overtake this */
	STORE(fk.done, true);
}

/* A worker that finds a broken ring on its first look, as rng's would. */
static void fake_breaks(struct virtio_dev *d, uint16_t q)
{
	if (!LOAD(fk.flagged)) {
		virtio_needs_reset(d, "fake: broken ring");
		STORE(fk.flagged, true);
	}
}

static void fake_refill(struct virtio_dev *d, uint16_t q);

static int fake_activate(struct virtio_dev *d)
{
	fk.activates++;
	if (fk.activate_ret || fk.mode == FAKE_PLAIN)
		return fk.activate_ret;
	int r = virtio_worker_start(&fk.w, d, 0, fk.mode == FAKE_BLOCKING ? fake_block :
					      fk.mode == FAKE_REFILL ? fake_refill : fake_breaks);
	/* FAKE_BREAKS pins the interleaving where the new worker beats the vCPU. */
	if (!r && fk.mode == FAKE_BREAKS && !WAIT(LOAD(fk.flagged)))
		return -ETIMEDOUT;
	return r;
}

static void fake_reset(struct virtio_dev *d) { fk.resets++; virtio_worker_stop(&fk.w); }
static void fake_cfg_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, fk.cfg + off, len);
}
static void fake_cfg_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
	fk.cfg_writes++;
	memcpy(fk.cfg + off, data, len);
}

static const struct virtio_dev_ops fake_ops = {
	.name = "fake", .device_id = 42, .features = FAKE_FEATURES, .config_size = sizeof(fk.cfg),
	.config_read = fake_cfg_read, .config_write = fake_cfg_write,
	.activate = fake_activate, .reset = fake_reset,
};

static void fake_signal(struct virtio_dev *d, enum virtio_irq kind, uint16_t q) { fk.sig[kind]++; }
static const struct virtio_transport_ops fake_tops = { .signal = fake_signal };

/* ---- fixtures ---- */

static struct vm vm;
static struct virtio_dev dev;
static struct virtio_dev *D = &dev;    /* the device under test (the rng in e2e) */
static int irq_fd = -1;

static void dev_up(void)
{
	memset(&vm, 0, sizeof(vm));
	memset(&fk, 0, sizeof(fk));
	memcpy(fk.cfg, "\x10\x11\x12\x13\x14\x15\x16\x17", 8);
	cr_assert_eq(gmem_init(&vm.mem, 16 << 20), 0);
	cr_assert_eq(virtio_dev_init(&dev, &vm, &fake_ops, &fk, NQ, QMAX), 0);
	D = &dev;
}

/* There is no teardown API for a device or a transport: reset (joins workers), then free
 * by hand so ASan's leak check sees only what the code under test loses. */
static void dev_down(void)
{
	virtio_status_write(D, 0);
	for (int i = 0; i < D->nqueues; i++)
		close(D->q[i].kick_fd);
	if (D->tops != &fake_tops)
		free(D->transport);
	if (irq_fd >= 0)
		close(irq_fd);
	irq_fd = -1;
}

static void core_init(void) { dev_up(); dev.tops = &fake_tops; }
static void core_fini(void) { dev_down(); gmem_free(&vm.mem); }
static void mmio_init(void)
{
	dev_up();
	irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_eq(virtio_mmio_setup(&dev, 0xd0000000, irq_fd), 0);
}

TestSuite(virtio_status, .init = core_init, .fini = core_fini);
TestSuite(virtio_mmio, .init = mmio_init, .fini = core_fini);

/* Write the status register, then check what reads back. */
#define STATUS(w, want) do {                                                             \
	virtio_status_write(D, (w));                                                       \
	unsigned s_ = virtio_status_read(D);                                               \
	cr_assert_eq(s_, (want), "wrote %#x: status %#x, want %#x", (w), s_, (want));       \
} while (0)

/* The driver's steps straight through the core. */
static void negotiate(uint64_t feat)
{
	virtio_status_write(D, ACK);
	virtio_status_write(D, ACK | DRV);
	virtio_driver_features_write(D, 0, (uint32_t)feat);
	virtio_driver_features_write(D, 1, (uint32_t)(feat >> 32));
	virtio_status_write(D, ACK | DRV | FOK);
}

/* Queue 0 made ready (a valid 4-entry ring in RAM): workers run only on ready queues. */
static void ready_queue0(void)
{
	struct virtio_queue *q = virtio_queue_cfg(D, 0);
	cr_assert_not_null(q);
	q->size = 4;
	q->desc = 0x1000;
	q->driver = 0x2000;
	q->device = 0x3000;
	q->enabled = true;
}

/* ---- status state machine and features, straight through the core ---- */

Test(virtio_status, normal_sequence_and_clearing_ignored)
{
	STATUS(ACK | DRV, ACK | DRV);
	STATUS(ACK, ACK | DRV);                /* clearing a bit: ignored */
	negotiate(V1);
	cr_assert_eq(virtio_status_read(D), ACK | DRV | FOK);
	STATUS(ACK | FOK | DOK, ACK | DRV | FOK);   /* adds DRIVER_OK but drops DRIVER */
	cr_assert_eq(fk.activates, 0);
	STATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
	cr_assert_eq(fk.activates, 1);
	cr_assert(D->active);
	STATUS(ACK | DRV | FOK, ACK | DRV | FOK | DOK);
	STATUS(DOK, ACK | DRV | FOK | DOK);
	cr_assert_eq(fk.activates, 1);
	cr_assert_eq(fk.resets, 0);
}

Test(virtio_status, driver_ok_needs_features_ok)
{
	STATUS(ACK | DRV, ACK | DRV);
	virtio_driver_features_write(D, 1, 1);
	STATUS(ACK | DRV | DOK, ACK | DRV);
	cr_assert_eq(fk.activates, 0);
	STATUS(ACK | DRV | NRS, ACK | DRV);     /* NEEDS_RESET is the device's to set */
}

Test(virtio_status, features_ok_needs_subset_with_version_1)
{
	negotiate(V1 | (1ULL << 40));          /* bit 40 was never offered */
	cr_assert_eq(virtio_status_read(D), ACK | DRV);
	negotiate(1ULL << 0);                  /* offered, but no VERSION_1 */
	cr_assert_eq(virtio_status_read(D), ACK | DRV);
	negotiate(V1 | FAKE_FEATURES);         /* a valid subset sticks */
	cr_assert_eq(virtio_status_read(D), ACK | DRV | FOK);
}

Test(virtio_status, features_offer_pages_and_lock)
{
	cr_assert_eq(virtio_offered_features(D), OFFER);
	virtio_driver_features_write(D, 0, 0x10000001);
	virtio_driver_features_write(D, 1, 0x3);
	virtio_driver_features_write(D, 2, 0xffffffff);   /* no such page: dropped */
	cr_assert_eq(virtio_driver_features_read(D, 0), 0x10000001);
	cr_assert_eq(virtio_driver_features_read(D, 1), 0x3);
	cr_assert_eq(virtio_driver_features_read(D, 2), 0);
	negotiate(V1 | 1);
	virtio_driver_features_write(D, 0, 0);            /* after FEATURES_OK: ignored */
	virtio_driver_features_write(D, 1, 0);
	cr_assert_eq(virtio_driver_features_read(D, 0), 1);
	cr_assert_eq(virtio_driver_features_read(D, 1), 1);
}

Test(virtio_status, reset_restores_power_on_state)
{
	STATUS(ACK, ACK);
	STATUS(0, 0);
	cr_assert_eq(fk.resets, 0, "reset() is owed only after activate()");
	negotiate(V1 | (1ULL << 0));
	struct virtio_queue *q = virtio_queue_cfg(D, 1);
	cr_assert_not_null(q);
	*q = (struct virtio_queue){ .max_size = q->max_size, .size = 4, .enabled = true, .desc = 0x1000,
				    .driver = 0x2000, .device = 0x3000, .msix_vector = 1, .kick_fd = q->kick_fd };
	STATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
	virtio_queue_kick(D, 1);               /* a kick still pending at reset */
	STATUS(0, 0);
	cr_assert_eq(fk.activates, 1);
	cr_assert_eq(fk.resets, 1);
	cr_assert(!D->active);
	cr_assert_eq(virtio_driver_features_read(D, 0) | virtio_driver_features_read(D, 1), 0);
	cr_assert(!q->enabled);
	cr_assert_eq(q->desc | q->driver | q->device, 0);
	cr_assert_eq(q->size, QMAX);
	cr_assert_eq(q->msix_vector, VIRTIO_NO_VECTOR);
	uint64_t n;
	cr_assert_lt(read(q->kick_fd, &n, sizeof(n)), 0, "a stale kick must not wake the next activation");
	STATUS(0, 0);                          /* a second reset owes the device nothing */
	cr_assert_eq(fk.resets, 1);
}

Test(virtio_status, activate_failure_sets_needs_reset)
{
	fk.activate_ret = -EIO;
	negotiate(V1);
	STATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | NRS);
	cr_assert(!D->active);
	STATUS(0, 0);
	cr_assert_eq(fk.resets, 0, "reset() after a failed activate()");
}

static bool reset_returned;
static void *reset_thread(void *arg)
{
	virtio_status_write(D, 0);
	STORE(reset_returned, true);
	return NULL;
}

Test(virtio_status, reset_waits_for_in_flight_request)
{
	fk.mode = FAKE_BLOCKING;
	negotiate(V1);
	ready_queue0();
	STATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
	cr_assert(WAIT(LOAD(fk.blocked)), "worker never ran");
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, reset_thread, NULL), 0);
	usleep(100000);
	cr_assert(!LOAD(reset_returned), "reset returned while a request was still being handled");
	STORE(fk.release, true);
	pthread_join(t, NULL);
	cr_assert(LOAD(fk.done), "handler still running after reset returned");
	int runs = LOAD(fk.runs);
	virtio_queue_kick(D, 0);
	usleep(50000);
	cr_assert_eq(LOAD(fk.runs), runs, "handler ran after reset");
	cr_assert_eq(fk.resets, 1);
}

Test(virtio_status, failed_sticks_and_blocks_driver_ok)
{
	STATUS(ACK | FAIL, ACK | FAIL);
	STATUS(ACK, ACK | FAIL);
	virtio_driver_features_write(D, 1, 1);
	STATUS(ACK | DRV | FOK | DOK | FAIL, ACK | DRV | FOK | FAIL);
	cr_assert_eq(fk.activates, 0);
}

Test(virtio_status, needs_reset_visible_until_reset)
{
	negotiate(V1);
	STATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
	virtio_needs_reset(D, "test %d", 1);
	cr_assert_eq(virtio_status_read(D), ACK | DRV | FOK | DOK | NRS);
	cr_assert_eq(fk.sig[VIRTIO_IRQ_CONFIG], 1, "no config interrupt");
	/* The driver rewrites the bits it knows: NEEDS_RESET stays. */
	STATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK | NRS);
	STATUS(0, 0);
}

/* A worker started by activate() may flag a broken ring (an atomic OR, without d->lock)
 * before virtio_status_write stores the new status computed from the old one: the store
 * must merge, not overwrite (it once did: status read back 0x0f). */
Test(virtio_status, needs_reset_from_worker_during_activation_kept)
{
	fk.mode = FAKE_BREAKS;
	negotiate(V1);
	ready_queue0();
	virtio_status_write(D, ACK | DRV | FOK | DOK);
	cr_assert_eq(fk.sig[VIRTIO_IRQ_CONFIG], 1);
	cr_assert_eq(virtio_status_read(D), ACK | DRV | FOK | DOK | NRS, "NEEDS_RESET lost: %#x",
		     virtio_status_read(D));
}

/* ---- virtio-mmio registers ---- */

enum {
	R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVID = 0x008, R_VENDOR = 0x00c, R_DF = 0x010,
	R_DFSEL = 0x014, R_GF = 0x020, R_GFSEL = 0x024, R_QSEL = 0x030, R_QMAX = 0x034,
	R_QNUM = 0x038, R_QREADY = 0x044, R_NOTIFY = 0x050, R_ISR = 0x060, R_ACK = 0x064,
	R_STATUS = 0x070, R_DESC = 0x080, R_DRIVER = 0x090, R_DEVICE = 0x0a0, R_SHMSEL = 0x0ac,
	R_SHMLEN = 0x0b0, R_SHMBASE = 0x0b8, R_CONFIG = 0x100,
};

static uint64_t rdn(uint64_t off, unsigned len)
{
	uint64_t v = 0xaaaaaaaaaaaaaaaaULL;   /* so "reads 0" is not the buffer's old value */
	virtio_mmio_io(D, off, &v, len, false);
	return len == 8 ? v : v & ((1ULL << (8 * len)) - 1);
}
static uint32_t rd(uint64_t off) { return (uint32_t)rdn(off, 4); }
static void wrn(uint64_t off, uint64_t v, unsigned len) { virtio_mmio_io(D, off, &v, len, true); }
static void wr(uint64_t off, uint32_t v) { wrn(off, v, 4); }
static void wr64(uint64_t off, uint64_t v) { wr(off, (uint32_t)v); wr(off + 4, (uint32_t)(v >> 32)); }

#define MSTATUS(w, want) do {                                                            \
	wr(R_STATUS, (w));                                                                 \
	cr_assert_eq(rd(R_STATUS), (want), "wrote %#x: status %#x, want %#x", (w),          \
		     rd(R_STATUS), (want));                                                \
} while (0)

static void mmio_negotiate(uint64_t feat)
{
	wr(R_STATUS, ACK);
	wr(R_STATUS, ACK | DRV);
	for (uint32_t page = 0; page < 2; page++) {
		wr(R_GFSEL, page);
		wr(R_GF, (uint32_t)(feat >> 32 * page));
	}
	wr(R_STATUS, ACK | DRV | FOK);
}

static void mmio_queue(uint32_t q, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
	wr(R_QSEL, q);
	wr(R_QNUM, num);
	wr64(R_DESC, desc);
	wr64(R_DRIVER, avail);
	wr64(R_DEVICE, used);
	wr(R_QREADY, 1);
}

Test(virtio_mmio, identity_features_and_bad_accesses)
{
	cr_assert_eq(rd(R_MAGIC), 0x74726976);
	cr_assert_eq(rd(R_VERSION), 2);
	cr_assert_eq(rd(R_DEVID), 42);
	cr_assert_eq(rd(R_VENDOR), 0x4d564d4d);
	uint32_t page[3] = { (uint32_t)OFFER, (uint32_t)(OFFER >> 32), 0 };
	for (uint32_t s = 0; s < 3; s++) {
		wr(R_DFSEL, s);
		cr_assert_eq(rd(R_DF), page[s], "DeviceFeatures page %u", s);
	}
	/* Registers take aligned 32-bit accesses only: others read 0 and are dropped. */
	cr_assert_eq(rdn(R_MAGIC, 1), 0);
	cr_assert_eq(rdn(R_MAGIC, 2), 0);
	cr_assert_eq(rdn(R_MAGIC, 8), 0);
	cr_assert_eq(rdn(R_MAGIC + 2, 4), 0);
	wrn(R_STATUS, ACK, 1);
	wrn(R_STATUS, ACK, 2);
	wrn(R_STATUS + 1, ACK << 8, 4);
	wrn(R_STATUS, ACK, 8);
	cr_assert_eq(virtio_status_read(D), 0, "a non-32-bit status write landed");
}

Test(virtio_mmio, status_machine_through_registers)
{
	MSTATUS(ACK | DRV, ACK | DRV);
	MSTATUS(ACK | DRV | DOK, ACK | DRV);   /* before FEATURES_OK */
	wr(R_GFSEL, 1);
	wr(R_GF, 1 << 8);                      /* bit 40: not offered */
	MSTATUS(ACK | DRV | FOK, ACK | DRV);
	mmio_negotiate(V1 | 1);
	cr_assert_eq(rd(R_STATUS), ACK | DRV | FOK);
	wr(R_GFSEL, 0);
	wr(R_GF, 0);                           /* after FEATURES_OK: ignored */
	cr_assert_eq(virtio_driver_features_read(D, 0), 1);
	MSTATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
	MSTATUS(ACK, ACK | DRV | FOK | DOK);
	cr_assert_eq(fk.activates, 1);
	MSTATUS(0, 0);
	cr_assert_eq(fk.resets, 1);
}

Test(virtio_mmio, config_space)
{
	cr_assert_eq(rdn(R_CONFIG + 1, 1), 0x11);
	cr_assert_eq(rdn(R_CONFIG + 2, 2), 0x1312);
	cr_assert_eq(rdn(R_CONFIG + 4, 4), 0x17161514);
	cr_assert_eq(rdn(R_CONFIG, 8), 0x1716151413121110ULL);
	cr_assert_eq(rdn(R_CONFIG + 6, 4), 0, "read across the end");
	cr_assert_eq(rdn(R_CONFIG + 8, 1), 0);
	cr_assert_eq(rdn(R_CONFIG + 0xf0, 4), 0);
	wrn(R_CONFIG, 0xbeef, 2);
	cr_assert_eq(rdn(R_CONFIG, 2), 0xbeef);
	wrn(R_CONFIG + 7, 0xffff, 2);          /* across the end: dropped whole */
	wrn(R_CONFIG + 0x10, 0xff, 1);
	cr_assert_eq(fk.cfg_writes, 1);
	cr_assert_eq(fk.cfg[7], 0x17);
}

Test(virtio_mmio, interrupt_status_and_ack)
{
	cr_assert_eq(rd(R_ISR), 0);
	D->tops->signal(D, VIRTIO_IRQ_QUEUE, 0);
	cr_assert_eq(rd(R_ISR), 1);
	virtio_needs_reset(D, "test");         /* a config change: bit 1, and an interrupt */
	cr_assert_eq(rd(R_STATUS), NRS);
	cr_assert_eq(rd(R_ISR), 3);
	uint64_t n = 0;
	cr_assert_eq(read(irq_fd, &n, sizeof(n)), sizeof(n));
	cr_assert_eq(n, 2, "irq eventfd written %llu times", (unsigned long long)n);
	wr(R_ACK, 1);
	cr_assert_eq(rd(R_ISR), 2);
	wr(R_ACK, 2);
	cr_assert_eq(rd(R_ISR), 0);
}

/* VIRTIO 1.2 §4.2.2.1: "Upon reset, the device MUST clear all bits in InterruptStatus". */
Test(virtio_mmio, reset_clears_interrupt_status)
{
	D->tops->signal(D, VIRTIO_IRQ_QUEUE, 0);
	wr(R_STATUS, 0);
	cr_assert_eq(rd(R_ISR), 0);
}

Test(virtio_mmio, shm_regions)
{
	wr(R_SHMSEL, 0);                       /* no regions at all */
	cr_assert_eq(rd(R_SHMLEN), 0xffffffff);
	cr_assert_eq(rd(R_SHMLEN + 4), 0xffffffff);
	dev.nshm = 2;
	dev.shm[0] = (struct virtio_shm){ .id = 1, .w = { .size = 0x200000000ULL, .gpa = 0x4000000000ULL } };
	dev.shm[1] = (struct virtio_shm){ .id = 5, .w = { .size = 0x1000, .gpa = 0x123456789000ULL } };
	wr(R_SHMSEL, 5);
	cr_assert_eq(rd(R_SHMLEN), 0x1000);
	cr_assert_eq(rd(R_SHMLEN + 4), 0);
	cr_assert_eq(rd(R_SHMBASE), 0x56789000);
	cr_assert_eq(rd(R_SHMBASE + 4), 0x1234);
	wr(R_SHMSEL, 1);
	cr_assert_eq(rd(R_SHMLEN + 4), 2);
	cr_assert_eq(rd(R_SHMBASE + 4), 0x40);
	wr(R_SHMSEL, 3);                       /* between the two ids: absent */
	cr_assert_eq(rd(R_SHMLEN), 0xffffffff);
	cr_assert_eq(rd(R_SHMLEN + 4), 0xffffffff);
}

Test(virtio_mmio, queue_registers_only_in_window)
{
	struct virtio_queue *q = &dev.q[0];
	mmio_queue(0, 4, 0x1000, 0x2000, 0x3000);   /* before FEATURES_OK: ignored */
	cr_assert_eq(q->size, QMAX);
	cr_assert(!q->enabled);
	cr_assert_eq(q->desc | q->driver | q->device, 0);
	cr_assert_eq(rd(R_QMAX), QMAX);
	mmio_negotiate(V1);
	mmio_queue(0, 4, 0x100001000ULL, 0x2000, 0x3000);
	cr_assert_eq(q->size, 4);
	cr_assert_eq(q->desc, 0x100001000ULL, "64-bit address from two halves");
	cr_assert_eq(rd(R_QREADY), 1);
	wr(R_QREADY, 0);
	cr_assert_eq(rd(R_QREADY), 0);
	mmio_queue(0, 4, 0x1000, 0x2000, 0x3000);
	MSTATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
	mmio_queue(0, 2, 0x5000, 0x6000, 0x7000);   /* after DRIVER_OK: ignored */
	wr(R_QREADY, 0);
	cr_assert_eq(q->size, 4);
	cr_assert_eq(q->desc, 0x1000);
	cr_assert(q->enabled);
}

Test(virtio_mmio, queue_select_out_of_range)
{
	mmio_negotiate(V1);
	mmio_queue(NQ, 4, 0x1000, 0x2000, 0x3000);
	cr_assert_eq(rd(R_QMAX), 0);
	cr_assert_eq(rd(R_QREADY), 0);
	wr(R_NOTIFY, NQ);
	wr(R_NOTIFY, 0xffffffff);
	uint64_t n = 0;
	for (int i = 0; i < NQ; i++) {
		cr_assert(!dev.q[i].enabled && dev.q[i].desc == 0 && dev.q[i].size == QMAX);
		cr_assert_lt(read(dev.q[i].kick_fd, &n, sizeof(n)), 0);
	}
	wr(R_NOTIFY, 1);                       /* in range: kicks queue 1 */
	cr_assert_eq(read(dev.q[1].kick_fd, &n, sizeof(n)), sizeof(n));
}

/* Each bad queue set-up: DRIVER_OK refused with NEEDS_RESET, activate() not called. */
static void activation_refused(uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
	mmio_negotiate(V1);
	mmio_queue(1, num, desc, avail, used);
	MSTATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | NRS);
	cr_assert_eq(fk.activates, 0);
}

Test(virtio_mmio, queue_num_above_max_refused) { activation_refused(QMAX * 2, 0x1000, 0x2000, 0x3000); }
Test(virtio_mmio, queue_num_not_power_of_two_refused) { activation_refused(3, 0x1000, 0x2000, 0x3000); }
Test(virtio_mmio, queue_num_zero_refused) { activation_refused(0, 0x1000, 0x2000, 0x3000); }
Test(virtio_mmio, desc_outside_ram_refused) { activation_refused(4, (16 << 20) - 16, 0x2000, 0x3000); }
Test(virtio_mmio, used_outside_ram_refused) { activation_refused(4, 0x1000, 0x2000, 1ULL << 40); }

/* Lines written to stderr (where vm_log goes) while `fn` runs. */
static int stderr_lines(void (*fn)(void))
{
	char path[] = "/tmp/minivmm-log-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	cr_assert_geq(saved, 0);
	cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	fn();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char buf[65536];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	int lines = 0;
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

static void refused_500(void)
{
	for (int i = 0; i < 500; i++) {
		mmio_negotiate(V1);
		mmio_queue(1, 4, (16 << 20) - 16, 0x2000, 0x3000);   /* desc outside RAM */
		wr(R_STATUS, ACK | DRV | FOK | DOK);
		wr(R_STATUS, 0);
	}
}

/* A guest that fails activation in a loop must not flood the host's log: the line is
 * rate-limited like every guest-caused message (it once gave 500 lines for 500 tries). */
Test(virtio_mmio, failed_activations_log_rate_limited)
{
	int n = stderr_lines(refused_500);
	cr_assert_geq(n, 1, "nothing logged");
	cr_assert_leq(n, 3, "%d lines for 500 failed activations", n);
}

static void shm_place_500(void)
{
	for (int i = 0; i < 500; i++)
		(void)virtio_shm_place(D, 0, 0x8000000000ULL + ((uint64_t)(i % 8) << 21));
}

/* The guest moves a shared-memory BAR as often as it likes; each failed placement must not
 * cost a log line. */
Test(virtio_mmio, failed_shm_placements_log_rate_limited)
{
	static uint8_t region[4096];
	dev.nshm = 1;
	dev.shm[0] = (struct virtio_shm){ .id = 0, .w = { .size = sizeof(region), .hva = region },
					  .slot = -1 };
	vm.vm_fd = eventfd(0, EFD_CLOEXEC);            /* not KVM: every ioctl fails */
	cr_assert_gt(vm.vm_fd, 0);
	int n = stderr_lines(shm_place_500);
	close(vm.vm_fd);
	vm.vm_fd = 0;
	cr_assert_geq(n, 1, "nothing logged");
	cr_assert_leq(n, 3, "%d lines for 500 failed placements", n);
}

/* ---- virtio-pci ---- */

#define GSI_BASE 16
enum {
	C_DFSEL = 0x00, C_DF = 0x04, C_GFSEL = 0x08, C_GF = 0x0c, C_MSIX = 0x10, C_NUMQ = 0x12,
	C_STATUS = 0x14, C_QSEL = 0x16, C_QSIZE = 0x18, C_QMSIX = 0x1a, C_QENABLE = 0x1c,
	C_QNOFF = 0x1e, C_QDESC = 0x20,
};

static struct pci_bus bus;
static struct bus pio, mmio;
static int slot, intx_level[64], fires;
static int f_alloc(void *ctx) { static int g = 40; return g++; }
static int f_route(void *ctx, int gsi, uint64_t a, uint32_t d) { return 0; }
static void f_fire(void *ctx, int gsi) { fires++; }
static void f_intx(void *ctx, int gsi, int level) { intx_level[gsi] = level; }
static const struct pci_irq_ops f_irq = { f_alloc, f_route, f_fire, f_intx };

/* Where each virtio capability (by cfg_type) points, from walking the list. */
static struct { bool found; uint8_t bar; uint32_t off, len; } cap[9];
static uint32_t notify_mult;
static uint8_t msix_cap;

static uint32_t cfg(uint32_t off, unsigned len)
{
	uint32_t v = 0;
	pci_cfg_rw(&bus, slot, 0, off, &v, len, false);
	return v;
}

/* BAR 0 accesses go the guest's way: the MMIO bus, the PCI window, the BAR decode. */
static uint64_t bar0(void) { return (cfg(0x10, 4) & ~0xfULL) | (uint64_t)cfg(0x14, 4) << 32; }
static uint64_t brd(uint32_t off, unsigned len)
{
	uint64_t v = 0xaaaaaaaaaaaaaaaaULL;
	cr_assert(bus_dispatch(&mmio, bar0() + off, &v, len, false));
	return len == 8 ? v : v & ((1ULL << (8 * len)) - 1);
}
static void bwr(uint32_t off, uint64_t v, unsigned len)
{
	cr_assert(bus_dispatch(&mmio, bar0() + off, &v, len, true));
}
static uint64_t crd(uint32_t off, unsigned len) { return brd(cap[1].off + off, len); }
static void cwr(uint32_t off, uint64_t v, unsigned len) { bwr(cap[1].off + off, v, len); }

static void pci_init(void)
{
	dev_up();
	cr_assert_eq(pci_bus_init(&bus, &f_irq, NULL), 0);
	bus.mem32_base = bus.mem32_next = 0xC0000000ULL;   /* as vmm/machine.c does */
	bus.mem32_size = 0x10000000;
	bus.mem64_base = bus.mem64_next = 0x8000000000ULL;
	bus.mem64_size = 0x40000000;
	bus.ecam_base = 0xB0000000;
	bus.intx_gsi_base = GSI_BASE;
	cr_assert_eq(pci_bus_attach(&bus, &pio, &mmio), 0);
	cr_assert_eq(virtio_pci_attach(NULL, &bus, &dev), 0);
	slot = 1;
	uint16_t cmd = 0x0002;                 /* memory decode on */
	pci_cfg_rw(&bus, slot, 0, 0x04, &cmd, 2, true);
	/* Walk the capability list, bounded: a loop in it would be a bug too. */
	uint8_t p = (uint8_t)cfg(0x34, 1);
	for (int n = 0; p && n < 48; n++, p = (uint8_t)cfg(p + 1, 1)) {
		if (cfg(p, 1) == 0x11)
			msix_cap = p;
		if (cfg(p, 1) != 0x09)
			continue;
		uint8_t type = (uint8_t)cfg(p + 3, 1);
		cr_assert_lt(type, 9);
		cap[type].found = true;
		cap[type].bar = (uint8_t)cfg(p + 4, 1);
		cap[type].off = cfg(p + 8, 4);
		cap[type].len = cfg(p + 12, 4);
		if (type == 2) {
			cr_assert_geq(cfg(p + 2, 1), 20, "notify cap too short for its multiplier");
			notify_mult = cfg(p + 16, 4);
		}
	}
}

TestSuite(virtio_pci, .init = pci_init, .fini = core_fini);

Test(virtio_pci, identity_and_capabilities)
{
	cr_assert_eq(cfg(0x00, 2), 0x1af4);
	cr_assert_eq(cfg(0x02, 2), 0x1040 + 42);
	cr_assert_eq(cfg(0x08, 1), 1, "revision 1: modern only");
	cr_assert_eq(cfg(0x06, 2) & 0x10, 0x10, "capability list bit");
	for (int t = 1; t <= 4; t++) {         /* common, notify, ISR, device */
		cr_assert(cap[t].found, "virtio cap type %d missing", t);
		cr_assert_eq(cap[t].bar, 0);
	}
	cr_assert_geq(cap[1].len, 0x38, "common cfg smaller than the spec's struct");
	cr_assert_geq(cap[3].len, 1);
	cr_assert_eq(cap[4].len, sizeof(fk.cfg));
	cr_assert_neq(notify_mult, 0);
	cr_assert_geq(cap[2].len, (NQ - 1) * notify_mult + 2);
	cr_assert_neq(msix_cap, 0, "no MSI-X capability");
	cr_assert_eq((cfg(msix_cap + 2, 2) & 0x7ff) + 1, NQ + 1, "one vector per queue + config");
	cr_assert_eq(cfg(msix_cap + 4, 4) & 7, 0, "MSI-X table in BAR 0");
	/* The caps point at live regions: device config through cap 4, ISR through cap 3. */
	cr_assert_eq(brd(cap[4].off + 4, 4), 0x17161514);
	cr_assert_eq(brd(cap[4].off + 8, 1), 0, "past config_size");
	cr_assert_eq(brd(cap[3].off, 1), 0);
}

Test(virtio_pci, rng_id_and_no_device_cap)
{
	struct virtio_dev *r = virtio_rng_create(&vm);
	cr_assert_not_null(r);
	cr_assert_eq(virtio_pci_attach(NULL, &bus, r), 0);
	slot = 2;
	cr_assert_eq(cfg(0x02, 2), 0x1044);
	for (uint8_t p = (uint8_t)cfg(0x34, 1); p; p = (uint8_t)cfg(p + 1, 1))
		cr_assert(cfg(p, 1) != 0x09 || cfg(p + 3, 1) != 4, "device cfg cap without config space");
	for (int i = 0; i < r->nqueues; i++)
		close(r->q[i].kick_fd);
	bus.devs[2] = NULL;                    /* no pci_remove: unplug by hand before freeing */
	free(r->transport);
	free(r);                               /* struct rng starts with its virtio_dev */
	slot = 1;
}

Test(virtio_pci, common_config)
{
	cr_assert_eq(crd(C_NUMQ, 2), NQ);
	uint32_t page[3] = { (uint32_t)OFFER, (uint32_t)(OFFER >> 32), 0 };
	for (uint32_t s = 0; s < 3; s++) {
		cwr(C_DFSEL, s, 4);
		cr_assert_eq(crd(C_DF, 4), page[s], "device_feature page %u", s);
	}
	cwr(C_QSEL, NQ, 2);
	cr_assert_eq(crd(C_QSIZE, 2), 0, "a queue that does not exist has size 0");
	cr_assert_eq(crd(C_QMSIX, 2), 0xffff);
	cwr(C_QSEL, 1, 2);
	cr_assert_eq(crd(C_QSIZE, 2), QMAX);
	cr_assert_eq(crd(C_NUMQ, 4), 0);       /* wrong widths read 0 and are dropped */
	cr_assert_eq(crd(C_QSEL, 1), 0);
	cr_assert_eq(crd(C_DF, 2), 0);
	cwr(C_STATUS, ACK, 2);
	cwr(C_STATUS, ACK, 4);
	cr_assert_eq(crd(C_STATUS, 1), 0);
	cwr(C_STATUS, ACK, 1);
	cr_assert_eq(crd(C_STATUS, 1), ACK);
	cwr(C_MSIX, NQ + 1, 2);                /* config vector out of range: NO_VECTOR */
	cr_assert_eq(crd(C_MSIX, 2), 0xffff);
}

Test(virtio_pci, queue_fields)
{
	cwr(C_STATUS, ACK | DRV, 1);
	cwr(C_GFSEL, 1, 4);
	cwr(C_GF, 1, 4);
	cwr(C_QSEL, 1, 2);
	cwr(C_QSIZE, 4, 2);                    /* before FEATURES_OK: ignored */
	cr_assert_eq(crd(C_QSIZE, 2), QMAX);
	cwr(C_STATUS, ACK | DRV | FOK, 1);
	cr_assert_eq(crd(C_STATUS, 1), ACK | DRV | FOK);
	cwr(C_QSIZE, 4, 2);
	cwr(C_QDESC, 0x1000, 4);               /* a 64-bit field as two halves */
	cwr(C_QDESC + 4, 0x2, 4);
	cwr(C_QDESC + 8, 0x300000004000ULL, 8);    /* or as one 8-byte access */
	cr_assert_eq(dev.q[1].desc, 0x200001000ULL);
	cr_assert_eq(dev.q[1].driver, 0x300000004000ULL);
	cr_assert_eq(crd(C_QDESC + 4, 4), 2);
	cr_assert_eq(crd(C_QSIZE, 2), 4);
	cwr(C_QMSIX, NQ, 2);                   /* last valid vector (nvec = NQ + 1) */
	cr_assert_eq(crd(C_QMSIX, 2), NQ);
	cwr(C_QMSIX, NQ + 1, 2);               /* out of range: NO_VECTOR */
	cr_assert_eq(crd(C_QMSIX, 2), 0xffff);
	/* Queue 1's notify address, from queue_notify_off and the multiplier, kicks it. */
	bwr(cap[2].off + (uint32_t)crd(C_QNOFF, 2) * notify_mult, 1, 2);
	uint64_t n = 0;
	cr_assert_eq(read(dev.q[1].kick_fd, &n, sizeof(n)), sizeof(n));
	cr_assert_lt(read(dev.q[0].kick_fd, &n, sizeof(n)), 0);
	cwr(C_QSEL, NQ + 5, 2);                /* fields of a missing queue: harmless */
	cwr(C_QSIZE, 2, 2);
	cwr(C_QENABLE, 1, 2);
	cr_assert(!dev.q[0].enabled && !dev.q[1].enabled);
	cr_assert_eq(dev.q[0].size, QMAX);
}

Test(virtio_pci, isr_read_clears_and_lowers_intx)
{
	int gsi = GSI_BASE + slot % 4;
	D->tops->signal(D, VIRTIO_IRQ_QUEUE, 0);
	cr_assert_eq(intx_level[gsi], 1, "INTx not raised");
	D->tops->signal(D, VIRTIO_IRQ_CONFIG, 0);
	cr_assert_eq(brd(cap[3].off, 1), 3);
	cr_assert_eq(intx_level[gsi], 0, "INTx not lowered by the ISR read");
	cr_assert_eq(brd(cap[3].off, 1), 0);
	cr_assert_eq(fires, 0, "MSI fired while MSI-X is disabled");
}

/* A reset must lower INTA along with the ISR: a level-triggered line left asserted with
 * ISR 0 has the guest's handler find nothing to do while the line keeps firing. */
Test(virtio_pci, reset_lowers_intx)
{
	int gsi = GSI_BASE + slot % 4;
	D->tops->signal(D, VIRTIO_IRQ_QUEUE, 0);
	cr_assert_eq(intx_level[gsi], 1);
	cwr(C_STATUS, 0, 1);
	cr_assert_eq(crd(C_STATUS, 1), 0);
	cr_assert_eq(intx_level[gsi], 0, "INTx still asserted after reset");
}

/* ---- end to end: virtio-rng over MMIO, rings from virtq_mock.h ---- */

static struct mock mk;
static struct virtq scratch;

static void e2e_init(void)
{
	memset(&vm, 0, sizeof(vm));
	mock_setup(&mk);
	vm.mem = mk.m;                         /* one RAM: the mock's is the guest's */
	D = virtio_rng_create(&vm);
	cr_assert_not_null(D);
	irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_eq(virtio_mmio_setup(D, 0xd0000000, irq_fd), 0);
}

static void e2e_fini(void)
{
	dev_down();
	free(D);                               /* struct rng starts with its virtio_dev */
	D = &dev;
	mock_teardown(&mk);
}

TestSuite(virtio_rng, .init = e2e_init, .fini = e2e_fini);

/* Negotiate VERSION_1 only (no EVENT_IDX: every completion interrupts), start queue 0. */
static void rng_start(void)
{
	cr_assert_eq(rd(R_DEVID), 4);
	cr_assert_eq(rd(R_QMAX), 256);
	mmio_negotiate(V1);
	mock_queue(&mk, &scratch, 8, false, false);
	mmio_queue(0, 8, MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA);
	MSTATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
}

/* Publish one chain, kick through QueueNotify, wait for it; returns the used length. */
static uint32_t rng_request(struct mseg s)
{
	uint16_t used = mock_used_idx(&mk);
	uint16_t head = mock_add_chain(&mk, &s, 1);
	wr(R_NOTIFY, 0);
	cr_assert(WAIT(mock_used_idx(&mk) == (uint16_t)(used + 1)), "request not completed");
	uint32_t id, len;
	mock_used_elem(&mk, used, &id, &len);
	cr_assert_eq(id, head);
	return len;
}

/* A device-writable buffer filled with 0xa5, and whether the device changed it. */
static struct mseg filled_buf(uint32_t len)
{
	struct mseg s = mock_buf(&mk, len, true);
	memset(mock_ptr(&mk, s.addr, len), 0xa5, len);
	return s;
}
static bool changed(struct mseg s)
{
	uint8_t pattern[64];
	memset(pattern, 0xa5, sizeof(pattern));
	cr_assert_leq(s.len, sizeof(pattern));
	return memcmp(mock_ptr(&mk, s.addr, s.len), pattern, s.len) != 0;
}

Test(virtio_rng, fills_buffer_and_interrupts)
{
	rng_start();
	struct mseg s = filled_buf(64);
	cr_assert_eq(rng_request(s), 64);
	cr_assert(changed(s), "buffer still holds its fill pattern");
	struct pollfd p = { .fd = irq_fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 2000), 1, "no interrupt");
	cr_assert_eq(rd(R_ISR) & 1, 1);
}

Test(virtio_rng, bad_chain_completes_empty_and_queue_goes_on)
{
	rng_start();
	struct mseg bad = { .addr = MOCK_RAM + 0x1000, .len = 64, .write = true };
	cr_assert_eq(rng_request(bad), 0);
	struct mseg s = filled_buf(64);
	cr_assert_eq(rng_request(s), 64);
	cr_assert(changed(s));
	cr_assert_eq(rd(R_STATUS) & NRS, 0);
}

Test(virtio_rng, broken_ring_needs_reset_then_reset_joins_worker)
{
	rng_start();
	cr_assert_eq(rng_request(filled_buf(16)), 16);
	mock_set_avail_idx(&mk, (uint16_t)(mk.avail_idx + 9));   /* 9 > queue size 8 */
	wr(R_NOTIFY, 0);
	cr_assert(WAIT(rd(R_STATUS) & NRS), "broken ring not flagged");
	cr_assert_eq(rd(R_STATUS), ACK | DRV | FOK | DOK | NRS);
	cr_assert(WAIT(rd(R_ISR) & 2), "no config interrupt");
	MSTATUS(0, 0);
	/* A live worker would swallow this kick; a joined one leaves it in the eventfd. */
	wr(R_NOTIFY, 0);
	usleep(50000);
	uint64_t n = 0;
	cr_assert_eq(read(D->q[0].kick_fd, &n, sizeof(n)), sizeof(n), "worker alive after reset");
	rng_start();                           /* and the device works again after reset */
	cr_assert_eq(rng_request(filled_buf(32)), 32);
}

/* DRIVER_OK with the queue never made ready: the device does nothing (its worker once
 * ran on zeroed rings and crashed), and works after a reset. */
Test(virtio_rng, unready_queue_is_inert)
{
	mmio_negotiate(V1);
	MSTATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
	wr(R_NOTIFY, 0);
	usleep(50000);
	cr_assert_eq(rd(R_STATUS), ACK | DRV | FOK | DOK);
	MSTATUS(0, 0);
	rng_start();
	cr_assert_eq(rng_request(filled_buf(16)), 16);
}

/* ---- a worker's stop against a guest that never lets the ring run empty ---- */

/* Each chain handled makes the other of two chains available again: the device never sees
 * an empty ring, as with a guest refilling as fast as the device drains. */
static uint32_t refill_handle(struct virtio_dev *d, struct virtq_chain *c)
{
	__atomic_add_fetch(&fk.runs, 1, __ATOMIC_SEQ_CST);
	mock_publish(&mk, (uint16_t)(c->head ^ 1));
	return 0;
}

static void fake_refill(struct virtio_dev *d, uint16_t q)
{
	virtio_queue_process(d, q, refill_handle);
}

static void worker_init(void)
{
	memset(&vm, 0, sizeof(vm));
	memset(&fk, 0, sizeof(fk));
	mock_setup(&mk);
	vm.mem = mk.m;
	cr_assert_eq(virtio_dev_init(&dev, &vm, &fake_ops, &fk, NQ, QMAX), 0);
	dev.tops = &fake_tops;
	D = &dev;
}

/* A reset stuck joining a worker (the bug under test) holds d->lock: the fixture must not
 * wait for it too, or a failing test hangs instead of failing. */
static bool reset_stuck;

static void worker_fini(void)
{
	if (LOAD(reset_stuck))
		return;
	dev_down();
	mock_teardown(&mk);
}

TestSuite(virtio_worker, .init = worker_init, .fini = worker_fini);

static void *reset_main(void *arg)
{
	virtio_status_write(D, 0);
	__atomic_store_n((bool *)arg, true, __ATOMIC_SEQ_CST);
	return NULL;
}

Test(virtio_worker, stop_while_the_ring_never_empties)
{
	fk.mode = FAKE_REFILL;
	negotiate(V1);
	mock_queue(&mk, &scratch, QMAX, false, false);
	struct virtio_queue *q = virtio_queue_cfg(D, 0);
	q->size = QMAX;
	q->desc = MOCK_DESC_GPA;
	q->driver = MOCK_AVAIL_GPA;
	q->device = MOCK_USED_GPA;
	q->enabled = true;
	struct mseg s = mock_buf(&mk, 8, false);
	mock_desc(&mk, 0, s.addr, s.len, 0, 0);
	mock_desc(&mk, 1, s.addr, s.len, 0, 0);
	STATUS(ACK | DRV | FOK | DOK, ACK | DRV | FOK | DOK);
	mock_publish(&mk, 0);
	virtio_queue_kick(D, 0);
	cr_assert(WAIT(LOAD(fk.runs) > 1000), "the worker is not running");
	bool done = false;
	pthread_t t;
	STORE(reset_stuck, true);
	cr_assert_eq(pthread_create(&t, NULL, reset_main, &done), 0);
	cr_assert(WAIT(LOAD(done)), "reset still joining the worker after 2 s (%d chains)",
		  LOAD(fk.runs));
	pthread_join(t, NULL);
	STORE(reset_stuck, false);
	int runs = LOAD(fk.runs);
	usleep(20000);
	cr_assert_eq(LOAD(fk.runs), runs, "the worker runs on after reset");
}

/* Each worker mallocs a ~32 KiB chain buffer; it must go with the worker, or a guest that
 * resets its device in a loop grows host memory without bound.  Measured by LeakSanitizer
 * in an ASan build, else by mallinfo2 with one arena (so worker threads' mallocs count). */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));
Test(virtio_rng, worker_chain_buffer_freed_on_reset)
{
	if (!__lsan_do_recoverable_leak_check)
		mallopt(M_ARENA_MAX, 1);
	size_t before = mallinfo2().uordblks;
	for (int i = 0; i < 8; i++) {
		rng_start();
		cr_assert_eq(rng_request(filled_buf(16)), 16);
		wr(R_STATUS, 0);
	}
	if (__lsan_do_recoverable_leak_check)
		cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "leak across reset (see LSan report)");
	else
		cr_assert_lt(mallinfo2().uordblks - before, 4 * sizeof(struct virtq_chain),
			     "%zu bytes leaked over 8 resets", mallinfo2().uordblks - before);
}

/* A shared-memory region (a DAX window of 6 MiB: not a power of two) gets BAR 2, 64-bit
 * and prefetchable, a capability naming it, and its guest address follows the BAR when the
 * guest moves it (with a VM, its KVM slot moves along; here there is none). */
Test(virtio_pci, shm_region_follows_bar2)
{
	struct virtio_dev *r = virtio_rng_create(&vm);
	cr_assert_not_null(r);
	r->nshm = 1;
	r->shm[0].id = 0;
	r->shm[0].w.size = 6ULL << 20;
	cr_assert_eq(virtio_pci_attach(NULL, &bus, r), 0);
	slot = 2;
	uint16_t cmd = 0x0002;
	pci_cfg_rw(&bus, slot, 0, 0x04, &cmd, 2, true);
	uint8_t shm_cap = 0;
	for (uint8_t p = (uint8_t)cfg(0x34, 1); p; p = (uint8_t)cfg(p + 1, 1))
		if (cfg(p, 1) == 0x09 && cfg(p + 3, 1) == 8)
			shm_cap = p;
	cr_assert_neq(shm_cap, 0, "no shared-memory capability");
	cr_assert_eq(cfg(shm_cap + 4, 1), 2, "in BAR 2");
	cr_assert_eq(cfg(shm_cap + 5, 1), 0, "region id 0");
	uint64_t off = cfg(shm_cap + 8, 4) | (uint64_t)cfg(shm_cap + 16, 4) << 32;
	uint64_t len = cfg(shm_cap + 12, 4) | (uint64_t)cfg(shm_cap + 20, 4) << 32;
	cr_assert_eq(len, 6ULL << 20);
	cr_assert_eq(cfg(0x18, 4) & 0xf, 0xc, "64-bit prefetchable memory BAR");
	uint64_t bar2 = (cfg(0x18, 4) & ~0xfULL) | (uint64_t)cfg(0x1c, 4) << 32;
	cr_assert_eq(bar2 % (8ULL << 20), 0, "BAR 2 naturally aligned to its 8 MiB size");
	cr_assert_eq(r->shm[0].w.gpa, bar2 + off);
	/* Size it like Linux does: all ones, read back, restore. */
	uint32_t ones = 0xffffffff, lo, hi;
	pci_cfg_rw(&bus, slot, 0, 0x18, &ones, 4, true);
	pci_cfg_rw(&bus, slot, 0, 0x1c, &ones, 4, true);
	lo = cfg(0x18, 4);
	hi = cfg(0x1c, 4);
	cr_assert_eq(~(((uint64_t)hi << 32) | (lo & ~0xfULL)) + 1, 8ULL << 20);
	/* The guest moves the BAR. */
	uint64_t to = bus.mem64_base + 0x20000000ULL;
	lo = (uint32_t)to;
	hi = (uint32_t)(to >> 32);
	pci_cfg_rw(&bus, slot, 0, 0x18, &lo, 4, true);
	pci_cfg_rw(&bus, slot, 0, 0x1c, &hi, 4, true);
	cr_assert_eq(r->shm[0].w.gpa, to + off, "the region moved with BAR 2");
	for (int i = 0; i < r->nqueues; i++)
		close(r->q[i].kick_fd);
	bus.devs[2] = NULL;
	free(r->transport);
	free(r);
	slot = 1;
}
