/* Fuzz the virtio transports and the device model behind them (virtio/mmio.c, virtio/pci.c,
 * virtio/core.c): a sequence of register reads and writes from the input, as a driver
 * would issue them, against a fake device with two queues, an 8-byte config space and a
 * shared-memory region, plus guest-memory patches and queue processing on the fuzzing
 * thread (no KVM, no workers: the fake's activate starts none).
 *
 * What must hold: DRIVER_OK only with FEATURES_OK and a successful activation; accepted
 * features a subset of the offer with VERSION_1; the config callbacks only see accesses
 * inside the config space; every chain a queue hands out lies in guest RAM.
 *
 * Input: u8 (bit 0: PCI, else MMIO), then operations: u8 opcode and its arguments. */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/pci.h"
#include "tests/fuzz/fuzz.h"
#include "virtio/core.h"
#include "virtio/mmio.h"
#include "virtio/pci.h"
#include "vmm/bus.h"
#include "vmm/vm.h"

#define NQ        2
#define QMAX      8
#define CFG_SIZE  8
#define RAM       (64u << 10)
#define SHM_SIZE  (64u << 10)
#define MAX_OPS   512
#define MEM32_BASE 0xC0000000ULL
#define MEM64_BASE 0x8000000000ULL

static struct vm vm;
static struct virtio_dev dev;
static uint8_t cfg[CFG_SIZE];
static uint8_t *shm_mem;
static int irq_fd = -1;
static struct pci_bus pb;
static struct bus pio, mmio;
static int next_gsi;
static bool active;

static void cfg_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	FZ_CHECK(off <= CFG_SIZE && len <= CFG_SIZE - off, "config read %u+%u", off, len);
	memcpy(data, cfg + off, len);
}
static void cfg_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
	FZ_CHECK(off <= CFG_SIZE && len <= CFG_SIZE - off, "config write %u+%u", off, len);
	memcpy(cfg + off, data, len);
}
static int fake_activate(struct virtio_dev *d)
{
	FZ_CHECK(!active, "activated twice without a reset");
	if (cfg[0] == 0xee)
		return -EIO;                /* the device may refuse too */
	active = true;
	return 0;
}
static void fake_reset(struct virtio_dev *d)
{
	FZ_CHECK(active, "reset without an activation");
	active = false;
}

static const struct virtio_dev_ops fake_ops = {
	.name = "fuzz", .device_id = 42, .features = (1ULL << 0) | (1ULL << 33),
	.config_size = CFG_SIZE, .config_read = cfg_read, .config_write = cfg_write,
	.activate = fake_activate, .reset = fake_reset,
};

static int fk_alloc(void *ctx) { return next_gsi++; }
static int fk_route(void *ctx, int gsi, uint64_t a, uint32_t d)
{
	FZ_CHECK(gsi >= 32 && gsi < next_gsi, "route gsi %d", gsi);
	return 0;
}
static void fk_fire(void *ctx, int gsi) { FZ_CHECK(gsi >= 32 && gsi < next_gsi, "fire gsi %d", gsi); }
static void fk_intx(void *ctx, int gsi, int level) { FZ_CHECK(gsi >= 16 && gsi < 20, "intx %d", gsi); }
static const struct pci_irq_ops fk_irq = { fk_alloc, fk_route, fk_fire, fk_intx };

static uint8_t scratch[256];

static uint32_t handle(struct virtio_dev *d, struct virtq_chain *c)
{
	for (int i = 0; i < c->nr_out; i++)
		FZ_CHECK(fz_in_ram(&vm.mem, c->out[i].iov_base, c->out[i].iov_len), "out segment");
	for (int i = 0; i < c->nr_in; i++)
		FZ_CHECK(fz_in_ram(&vm.mem, c->in[i].iov_base, c->in[i].iov_len), "in segment");
	virtq_copy_from(c, 0, scratch, sizeof(scratch));
	return (uint32_t)virtq_copy_to(c, 0, scratch, sizeof(scratch));
}

static void check_state(void)
{
	uint8_t s = virtio_status_read(&dev);
	if (s & VIRTIO_STATUS_FEATURES_OK) {
		uint64_t f = dev.driver_features;
		FZ_CHECK(!(f & ~virtio_offered_features(&dev)) && (f & (1ULL << VIRTIO_F_VERSION_1)),
			 "FEATURES_OK with features 0x%llx", (unsigned long long)f);
	}
	if (s & VIRTIO_STATUS_DRIVER_OK) {
		FZ_CHECK(s & VIRTIO_STATUS_FEATURES_OK, "DRIVER_OK without FEATURES_OK");
		FZ_CHECK(dev.active && active, "DRIVER_OK but not active");
		for (int i = 0; i < NQ; i++)
			FZ_CHECK(!dev.q[i].enabled || dev.q[i].vq.size == dev.q[i].size,
				 "queue %d enabled but not set up", i);
	}
	FZ_CHECK(dev.active == active, "core and device disagree on activation");
}

static uint64_t bar0(void)
{
	const struct pci_dev *pd = pb.devs[1];
	return pd ? pd->bars[0].addr : 0;
}

static void reg_io(bool pci, uint32_t off, void *v, unsigned len, bool wr)
{
	if (pci)
		bus_dispatch(&mmio, bar0() + (off & 0x7fff), v, len, wr);
	else
		virtio_mmio_io(&dev, off & 0x1ff, v, len, wr);
}

static void run_op(struct fz *f, bool pci)
{
	uint8_t op = fz_u8(f);
	unsigned len = 1u << (op >> 6);
	uint64_t v = 0;

	switch (op & 7) {
	case 0: case 1: { /* a register, written or read */
		uint32_t off = fz_u16(f);
		v = fz_u64(f);
		reg_io(pci, off, &v, len, (op & 7) == 0);
		break;
	}
	case 2: { /* the status register, the way drivers step through it */
		uint8_t s = fz_u8(f);
		v = s;
		if (pci)
			bus_dispatch(&mmio, bar0() + 0x14, &v, 1, true);
		else
			virtio_mmio_io(&dev, 0x70, &v, 4, true);
		break;
	}
	case 3: { /* PCI config space (the MMIO transport has none) */
		uint32_t off = fz_u16(f) & 0xfff;
		v = fz_u32(f);
		if (pci)
			pci_cfg_rw(&pb, 1, 0, off, &v, len > 4 ? 4 : len, op & 8);
		break;
	}
	case 4: { /* the driver writes guest memory (rings, descriptors, buffers) */
		uint16_t off = fz_u16(f);
		uint8_t n = fz_u8(f);
		if ((size_t)off + n > RAM)
			n = (uint8_t)(RAM - off);
		fz_bytes(f, vm.mem.r[0].hva + off, n);
		break;
	}
	case 5: { /* the device's worker runs (only for what activate validated) */
		uint8_t q = fz_u8(f) % NQ;
		if (dev.active && dev.q[q].enabled)
			virtio_queue_process(&dev, q, handle);
		break;
	}
	case 6: /* the device says its config changed, or that the driver broke the rules */
		if (op & 8)
			virtio_needs_reset(&dev, "fuzz");
		else if (dev.tops)
			dev.tops->signal(&dev, VIRTIO_IRQ_CONFIG, 0);
		break;
	default: /* a notification the slow way */
		v = fz_u16(f);
		if (pci)
			bus_dispatch(&mmio, bar0() + 0x3000 + 4 * (v % (NQ + 1)), &v, 2, true);
		else
			virtio_mmio_io(&dev, 0x50, &v, 4, true);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	if (size > 16384)
		return 0;
	if (!vm.mem.n) {
		fz_gmem(&vm.mem, RAM, 0);
		shm_mem = calloc(1, SHM_SIZE);
		irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (!shm_mem || irq_fd < 0)
			abort();
	}
	memset(vm.mem.r[0].hva, 0, RAM);
	memset(cfg, 0, sizeof(cfg));
	active = false;
	if (virtio_dev_init(&dev, &vm, &fake_ops, NULL, NQ, QMAX))
		abort();
	dev.shm[0] = (struct virtio_shm){ .id = 0, .w = { .size = SHM_SIZE, .hva = shm_mem }, .slot = -1 };
	dev.nshm = 1;

	bool pci = fz_u8(&f) & 1;
	if (pci) {
		memset(&pb, 0, sizeof(pb));
		memset(&pio, 0, sizeof(pio));
		memset(&mmio, 0, sizeof(mmio));
		next_gsi = 32;
		pb.mem32_base = pb.mem32_next = MEM32_BASE;
		pb.mem32_size = 0x10000000;
		pb.mem64_base = pb.mem64_next = MEM64_BASE;
		pb.mem64_size = 0x40000000;
		pb.ecam_base = 0xB0000000;
		pb.intx_gsi_base = 16;
		if (pci_bus_init(&pb, &fk_irq, NULL) || pci_bus_attach(&pb, &pio, &mmio) ||
		    virtio_pci_attach(NULL, &pb, &dev))
			abort();
		uint64_t cmd = 0x0006;    /* memory decode, bus master: as firmware leaves it */
		pci_cfg_rw(&pb, 1, 0, 0x04, &cmd, 2, true);
	} else if (virtio_mmio_setup(&dev, 0xD0000000, irq_fd)) {
		abort();
	}

	for (int n = 0; n < MAX_OPS && !fz_empty(&f); n++) {
		run_op(&f, pci);
		check_state();
	}

	virtio_status_write(&dev, 0);     /* reset: the device lets go */
	FZ_CHECK(!active && !dev.active, "active after reset");
	for (int i = 0; i < NQ; i++)
		close(dev.q[i].kick_fd);
	free(dev.transport);
	if (pci)
		pthread_mutex_destroy(&pb.lock);
	pthread_mutex_destroy(&dev.lock);
	uint64_t drain;
	while (read(irq_fd, &drain, sizeof(drain)) > 0)
		;
	return 0;
}
