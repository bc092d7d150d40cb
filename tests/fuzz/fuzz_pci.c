/* Fuzz PCI bus 0 (devices/pci.c): config space through mechanism #1 (0xCF8/0xCFC) and
 * ECAM, BAR programming and decoding, the MSI-X table and PBA, INTx, as a guest would
 * drive them, through the real I/O and MMIO buses.  Two fake devices: one with a 64-bit
 * prefetchable BAR 0 holding a 4-vector MSI-X table and a 32-bit BAR 2, one with a 32-bit
 * BAR 1 holding 64 vectors.  What must hold: a BAR handler only ever sees accesses inside
 * its BAR, a BAR only decodes inside a window at a naturally aligned address, interrupts
 * only go to GSIs that were allocated or to the slot's INTx line.
 *
 * Input: a list of operations, u8 opcode then its arguments (see run_op). */
#include <errno.h>

#include "devices/pci.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/bus.h"

#define MEM32_BASE 0xC0000000ULL
#define MEM32_SIZE 0x10000000ULL
#define MEM64_BASE 0x8000000000ULL
#define MEM64_SIZE 0x40000000ULL
#define ECAM_BASE  0xB0000000ULL
#define GSI_BASE   16
#define FIRST_MSI  24
#define NDEV       2
#define MAX_OPS    512

static struct pci_bus pb;
static struct bus pio, mmio;
static struct pci_dev dev[NDEV];
static int next_gsi;

static int fk_alloc(void *ctx)
{
	/* Running out is part of the game: every 7th allocation fails. */
	return next_gsi % 7 == 6 ? (next_gsi++, -ENOSPC) : next_gsi++;
}
static int fk_route(void *ctx, int gsi, uint64_t addr, uint32_t data)
{
	FZ_CHECK(gsi >= FIRST_MSI && gsi < next_gsi, "route of gsi %d never allocated", gsi);
	return 0;
}
static void fk_fire(void *ctx, int gsi)
{
	FZ_CHECK(gsi >= FIRST_MSI && gsi < next_gsi, "fired gsi %d never allocated", gsi);
}
static void fk_intx(void *ctx, int gsi, int level)
{
	FZ_CHECK(gsi >= GSI_BASE && gsi < GSI_BASE + 4 && (level == 0 || level == 1),
		 "intx gsi %d level %d", gsi, level);
}
static const struct pci_irq_ops fk_ops = { fk_alloc, fk_route, fk_fire, fk_intx };

/* opaque: (device << 4) | bar, as a pointer-sized integer. */
static void bar_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	uintptr_t tag = (uintptr_t)opaque;
	struct pci_dev *d = &dev[tag >> 4];
	const struct pci_bar *b = &d->bars[tag & 15];
	FZ_CHECK(len >= 1 && len <= 8 && off < b->size && len <= b->size - off,
		 "BAR access at 0x%llx+%u of a 0x%llx-byte BAR", (unsigned long long)off, len,
		 (unsigned long long)b->size);
	if (is_write) {
		if (off == 0x100)
			pci_msix_notify(d, *(uint8_t *)data);   /* from the handler: no deadlock */
	} else {
		memset(data, 0xa5, len);
	}
}

static bool in_window(uint64_t a, uint64_t size)
{
	return (a >= MEM32_BASE && a - MEM32_BASE < MEM32_SIZE && size <= MEM32_SIZE - (a - MEM32_BASE)) ||
	       (a >= MEM64_BASE && a - MEM64_BASE < MEM64_SIZE && size <= MEM64_SIZE - (a - MEM64_BASE));
}

static void bar_moved(struct pci_dev *d, int bar, uint64_t old_addr, uint64_t new_addr)
{
	FZ_CHECK(in_window(new_addr, d->bars[bar].size) && !(new_addr & (d->bars[bar].size - 1)),
		 "BAR %d moved to 0x%llx", bar, (unsigned long long)new_addr);
	(void)pci_msix_enabled(d);   /* takes the bus lock: it must not be held here */
}

static void mode_changed(struct pci_dev *d) { (void)pci_msix_enabled(d); }

static const struct pci_dev_ops dev_ops = { bar_moved, mode_changed };

static void setup(void)
{
	static const uint8_t vendor_cap[8] = { 0x09, 0, 8, 1, 2, 3, 4, 5 };
	memset(&pb, 0, sizeof(pb));
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	next_gsi = FIRST_MSI;
	pb.mem32_base = MEM32_BASE;
	pb.mem32_size = MEM32_SIZE;
	pb.mem64_base = MEM64_BASE;
	pb.mem64_size = MEM64_SIZE;
	pb.ecam_base = ECAM_BASE;
	pb.intx_gsi_base = GSI_BASE;
	if (pci_bus_init(&pb, &fk_ops, NULL) || pci_bus_attach(&pb, &pio, &mmio))
		abort();

	for (int i = 0; i < NDEV; i++) {
		struct pci_dev *d = &dev[i];
		memset(d, 0, sizeof(*d));
		d->cfg[0] = 0xf4;
		d->cfg[1] = 0x1a;
		d->cfg[2] = (uint8_t)(0x41 + i);
		d->cfg[3] = 0x10;
		d->cfg[0x100] = 0xab;
		memset(d->wmask + 0x40, 0xff, 0x10);       /* some device-specific writable bytes */
		memset(d->wmask + 0x100, 0xff, 0x10);
		d->ops = &dev_ops;
		if (i == 0) {
			d->bars[0] = (struct pci_bar){ .size = 0x4000, .is64 = true, .prefetch = true,
						       .fn = bar_io, .opaque = (void *)(uintptr_t)0x00 };
			d->bars[2] = (struct pci_bar){ .size = 0x1000, .fn = bar_io,
						       .opaque = (void *)(uintptr_t)0x02 };
			if (pci_add_cap(d, vendor_cap, sizeof(vendor_cap)) < 0 ||
			    pci_msix_init(d, 4, 0, 0x2000, 0x3000))
				abort();
		} else {
			d->bars[1] = (struct pci_bar){ .size = 0x2000, .fn = bar_io,
						       .opaque = (void *)(uintptr_t)0x11 };
			if (pci_msix_init(d, PCI_MSIX_MAX_VEC, 1, 0x0, 0x1800) ||
			    pci_add_cap(d, vendor_cap, sizeof(vendor_cap)) < 0)
				abort();
		}
		if (pci_add(&pb, d) != i + 1)
			abort();
	}
}

static unsigned op_len(uint8_t x) { return 1u << (x & 3); }

static void run_op(struct fz *f)
{
	uint8_t op = fz_u8(f);
	uint64_t v = 0, addr;
	unsigned len;
	bool wr = op & 0x80;

	switch (op & 0x7f) {
	case 0: /* port I/O in 0xCF8-0xCFF, any width */
		addr = 0xcf8 + (fz_u8(f) & 7);
		len = op_len(fz_u8(f));
		if (len == 8)
			len = 4;
		v = fz_u32(f);
		bus_dispatch(&pio, addr, &v, len, wr);
		break;
	case 1: /* a config register through mechanism #1 */
		v = 0x80000000u | fz_u16(f);   /* bus 0: slot, function, register */
		bus_dispatch(&pio, 0xcf8, &v, 4, true);
		addr = 0xcfc + (fz_u8(f) & 3);
		len = op_len(fz_u8(f));
		if (len == 8)
			len = 4;
		v = fz_u32(f);
		bus_dispatch(&pio, addr, &v, len, wr);
		break;
	case 2: /* ECAM */
		addr = ECAM_BASE + (fz_u32(f) & 0xfffff);
		len = op_len(fz_u8(f));
		v = fz_u64(f);
		bus_dispatch(&mmio, addr, &v, len, wr);
		break;
	case 3: { /* a BAR where it decodes now, give or take */
		uint8_t sel = fz_u8(f);
		struct pci_dev *d = &dev[(sel >> 4) % NDEV];
		const struct pci_bar *b = &d->bars[(sel & 15) % PCI_MAX_BARS];
		addr = b->addr + (int16_t)fz_u16(f);
		len = op_len(fz_u8(f));
		v = fz_u64(f);
		bus_dispatch(&mmio, addr, &v, len, wr);
		break;
	}
	case 4: /* anywhere in a window */
		addr = fz_u8(f) & 1 ? MEM64_BASE + (fz_u32(f) % MEM64_SIZE)
				    : MEM32_BASE + (fz_u32(f) % MEM32_SIZE);
		len = op_len(fz_u8(f));
		v = fz_u64(f);
		bus_dispatch(&mmio, addr, &v, len, wr);
		break;
	case 5: /* the device side: notify a vector, raise or lower INTA */
		v = fz_u8(f);
		if (wr)
			pci_intx(&dev[v & 1], (v >> 1) & 1);
		else
			pci_msix_notify(&dev[v & 1], (int)(v >> 1) - 8);
		break;
	case 6: { /* config access as the mechanisms decode it, any slot/function/offset/size */
		int slot = fz_u8(f), fn = fz_u8(f);
		uint32_t off = fz_u16(f);
		len = fz_u8(f) % 9;
		v = fz_u64(f);
		pci_cfg_rw(&pb, slot - 8, fn - 2, off, &v, len, wr);
		break;
	}
	default: {  /* a BAR register: write the sizing pattern, or an address */
		uint8_t sel = fz_u8(f);
		int slot = 1 + (sel >> 4) % NDEV;
		uint32_t reg = 0x10 + 4 * ((sel & 15) % 6);
		v = fz_u8(f) & 1 ? 0xffffffff : fz_u32(f);
		pci_cfg_rw(&pb, slot, 0, reg, &v, 4, true);
		v = 0x0006;   /* memory decode and bus master on */
		pci_cfg_rw(&pb, slot, 0, 0x04, &v, 2, true);
		break;
	}
	}
}

/* Every BAR decodes, if at all, where it was accepted: inside a window, aligned. */
static void check_bars(void)
{
	for (int i = 0; i < NDEV; i++)
		for (int b = 0; b < PCI_MAX_BARS; b++) {
			const struct pci_bar *bar = &dev[i].bars[b];
			if (!bar->size)
				continue;
			FZ_CHECK(in_window(bar->addr, bar->size) && !(bar->addr & (bar->size - 1)),
				 "device %d BAR %d at 0x%llx", i, b, (unsigned long long)bar->addr);
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	if (size > 16384)
		return 0;
	setup();
	for (int n = 0; n < MAX_OPS && !fz_empty(&f); n++) {
		run_op(&f);
		check_bars();
	}
	pthread_mutex_destroy(&pb.lock);
	return 0;
}
