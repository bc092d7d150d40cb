/* PCI bus 0 without KVM: the guest is played by port and MMIO accesses through the real
 * buses, interrupts by recording pci_irq_ops, a device by a BAR handler that records. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "devices/pci.h"
#include "vmm/bus.h"

#define MEM32_BASE 0xC0000000ULL
#define MEM32_SIZE 0x10000000ULL
#define MEM64_BASE 0x8000000000ULL
#define MEM64_SIZE 0x40000000ULL
#define ECAM_BASE  0xB0000000ULL
#define GSI_BASE   16

#define BAR0_SIZE  0x4000   /* 64-bit, prefetchable: MSI-X table at 0x2000, PBA at 0x3000 */
#define BAR2_SIZE  0x1000   /* 32-bit */
#define TABLE      0x2000
#define PBA        0x3000
#define NVEC       4
#define KICK_OFF   0x100    /* a write here makes the device notify vector 0 from its handler */

/* ---- fake interrupt plumbing ---- */

static struct {
	int allocs, next_gsi;
	bool fail_alloc;
	int routes, route_gsi;
	uint64_t route_addr;
	uint32_t route_data;
	int fires, fire_gsi;
	int intx_calls, intx_level[64];
} fk;

static int fk_msi_alloc(void *ctx)
{
	if (fk.fail_alloc)
		return -ENOSPC;
	fk.allocs++;
	return fk.next_gsi++;
}

static int fk_msi_route(void *ctx, int gsi, uint64_t addr, uint32_t data)
{
	fk.routes++;
	fk.route_gsi = gsi;
	fk.route_addr = addr;
	fk.route_data = data;
	return 0;
}

static void fk_msi_fire(void *ctx, int gsi)
{
	fk.fires++;
	fk.fire_gsi = gsi;
}

static void fk_intx_set(void *ctx, int gsi, int level)
{
	fk.intx_calls++;
	fk.intx_level[gsi] = level;
}

static const struct pci_irq_ops fk_ops = { fk_msi_alloc, fk_msi_route, fk_msi_fire, fk_intx_set };

/* ---- fake device ---- */

struct rec {
	int calls;
	uint64_t off;
	unsigned len;
	bool is_write;
	uint64_t val;
};

static struct pci_dev dev;
static struct rec bar0_rec, bar2_rec;
static struct {
	int moved, bar;
	uint64_t old_addr, new_addr;
	int mode_changed;
} cb;

static void rec_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct rec *r = opaque;
	r->calls++;
	r->off = off;
	r->len = len;
	r->is_write = is_write;
	if (is_write) {
		r->val = 0;
		memcpy(&r->val, data, len);
		if (r == &bar0_rec && off == KICK_OFF)
			pci_msix_notify(&dev, 0);   /* would deadlock if called under the bus lock */
	} else {
		memset(data, 0xa5, len);
	}
}

static void dev_bar_moved(struct pci_dev *d, int bar, uint64_t old_addr, uint64_t new_addr)
{
	(void)pci_msix_enabled(d);   /* takes the bus lock: proves it was dropped */
	cb.moved++;
	cb.bar = bar;
	cb.old_addr = old_addr;
	cb.new_addr = new_addr;
}

static void dev_irq_mode_changed(struct pci_dev *d)
{
	(void)pci_msix_enabled(d);
	cb.mode_changed++;
}

static const struct pci_dev_ops dev_ops = { dev_bar_moved, dev_irq_mode_changed };

static struct pci_bus pb;
static struct bus pio, mmio;

static void dev_fill(struct pci_dev *d)
{
	static const uint8_t vendor_cap[8] = { 0x09, 0xee, 8, 1, 2, 3, 4, 5 };
	memset(d, 0, sizeof(*d));
	d->cfg[0x00] = 0xf4; d->cfg[0x01] = 0x1a;     /* 1af4 */
	d->cfg[0x02] = 0x41; d->cfg[0x03] = 0x10;     /* 1041 */
	d->cfg[0x0b] = 0x02;                           /* class: network */
	d->cfg[0x100] = 0xab;                          /* extended space, ECAM only */
	d->bars[0] = (struct pci_bar){ .size = BAR0_SIZE, .is64 = true, .prefetch = true,
				       .fn = rec_io, .opaque = &bar0_rec };
	d->bars[2] = (struct pci_bar){ .size = BAR2_SIZE, .fn = rec_io, .opaque = &bar2_rec };
	d->ops = &dev_ops;
	cr_assert_eq(pci_add_cap(d, vendor_cap, sizeof(vendor_cap)), 0x40);
	cr_assert_eq(pci_msix_init(d, NVEC, 0, TABLE, PBA), 0);
}

static void setup(void)
{
	memset(&fk, 0, sizeof(fk));
	fk.next_gsi = 24;
	memset(&cb, 0, sizeof(cb));
	memset(&bar0_rec, 0, sizeof(bar0_rec));
	memset(&bar2_rec, 0, sizeof(bar2_rec));
	memset(&pio, 0, sizeof(pio));
	memset(&mmio, 0, sizeof(mmio));
	memset(&pb, 0, sizeof(pb));
	pb.mem32_base = MEM32_BASE;
	pb.mem32_size = MEM32_SIZE;
	pb.mem64_base = MEM64_BASE;
	pb.mem64_size = MEM64_SIZE;
	pb.ecam_base = ECAM_BASE;
	pb.intx_gsi_base = GSI_BASE;
	cr_assert_eq(pci_bus_init(&pb, &fk_ops, &fk), 0);
	cr_assert_eq(pci_bus_attach(&pb, &pio, &mmio), 0);
	dev_fill(&dev);
	cr_assert_eq(pci_add(&pb, &dev), 1);
}

TestSuite(pci, .init = setup, .timeout = 10);

/* ---- guest-side accessors ---- */

static uint64_t io_rd(struct bus *b, uint64_t addr, unsigned len)
{
	uint64_t v = 0;
	bus_dispatch(b, addr, &v, len, false);
	return v;
}

static void io_wr(struct bus *b, uint64_t addr, uint64_t v, unsigned len)
{
	bus_dispatch(b, addr, &v, len, true);
}

static uint32_t cf8(int bus, int slot, int fn, int reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cfg1_rd(int bus, int slot, int fn, int reg, unsigned len)
{
	io_wr(&pio, 0xcf8, cf8(bus, slot, fn, reg), 4);
	return (uint32_t)io_rd(&pio, 0xcfc + (reg & 3), len);
}

static void cfg1_wr(int slot, int reg, uint32_t v, unsigned len)
{
	io_wr(&pio, 0xcf8, cf8(0, slot, 0, reg), 4);
	io_wr(&pio, 0xcfc + (reg & 3), v, len);
}

static uint64_t ecam(int slot, int fn, int reg)
{
	return ECAM_BASE + ((uint64_t)slot << 15 | fn << 12 | reg);
}

static uint32_t cfg_rd(int slot, int reg, unsigned len)
{
	return (uint32_t)io_rd(&mmio, ecam(slot, 0, reg), len);
}

static void cfg_wr(int slot, int reg, uint32_t v, unsigned len)
{
	io_wr(&mmio, ecam(slot, 0, reg), v, len);
}

static void bar0_program(uint64_t addr)
{
	cfg_wr(1, 0x10, (uint32_t)addr, 4);
	cfg_wr(1, 0x14, (uint32_t)(addr >> 32), 4);
}

static void mem_on(void)
{
	cfg_wr(1, 0x04, 0x0006, 2);
}

static uint64_t tbl(int vec, int field)
{
	return dev.bars[0].addr + TABLE + 16 * vec + field;
}

static void msix_control(uint16_t v)
{
	cfg_wr(1, dev.msix.cap + 2, v, 2);
}

/* Entry `vec` gets a message and is unmasked: what Linux does after enabling MSI-X. */
static void msix_program(int vec, uint64_t addr, uint32_t data)
{
	io_wr(&mmio, tbl(vec, 0), (uint32_t)addr, 4);
	io_wr(&mmio, tbl(vec, 4), (uint32_t)(addr >> 32), 4);
	io_wr(&mmio, tbl(vec, 8), data, 4);
	io_wr(&mmio, tbl(vec, 12), 0, 4);
}

static uint64_t pba(void)
{
	return io_rd(&mmio, dev.bars[0].addr + PBA, 8);
}

/* ---- config mechanisms ---- */

Test(pci, cfg1_decode)
{
	io_wr(&pio, 0xcf8, 0x80000000u, 4);
	cr_assert_eq(io_rd(&pio, 0xcf8, 4), 0x80000000u);
	io_wr(&pio, 0xcf8, 0xffffffffu, 4);
	cr_assert_eq(io_rd(&pio, 0xcf8, 4), 0x80fffffcu, "reserved latch bits read as zero");

	cr_assert_eq(cfg1_rd(0, 1, 0, 0, 4), 0x10411af4);
	cr_assert_eq(cfg1_rd(0, 1, 0, 2, 2), 0x1041, "word at 0xCFE is the device ID");
	cr_assert_eq(cfg1_rd(0, 1, 0, 3, 1), 0x10);
	cr_assert_eq(cfg1_rd(0, 1, 0, 1, 1), 0x1a);
	cr_assert_eq(cfg1_rd(0, 1, 0, 0x3d, 1), 1);

	/* Enable bit clear: nothing decodes, writes go nowhere. */
	io_wr(&pio, 0xcf8, cf8(0, 1, 0, 0) & ~0x80000000u, 4);
	cr_assert_eq(io_rd(&pio, 0xcfc, 4), 0xffffffffu);
	io_wr(&pio, 0xcf8, cf8(0, 1, 0, 0x3c) & ~0x80000000u, 4);
	io_wr(&pio, 0xcfc, 0x55, 1);
	cr_assert_eq(cfg_rd(1, 0x3c, 1), GSI_BASE + 1);

	cr_assert_eq(cfg1_rd(1, 1, 0, 0, 4), 0xffffffffu, "bus 1 does not exist");
	cr_assert_eq(cfg1_rd(0, 1, 1, 0, 4), 0xffffffffu, "function 1 does not exist");
	cr_assert_eq(cfg1_rd(0, 7, 0, 0, 2), 0xffff, "empty slot");
	cr_assert_eq(cfg1_rd(0, 1, 1, 2, 1), 0xff);

	/* Only dword accesses reach the latch: byte writes at 0xCF9/0xCFB change nothing. */
	io_wr(&pio, 0xcf8, cf8(0, 1, 0, 0), 4);
	io_wr(&pio, 0xcf9, 0x06, 1);
	io_wr(&pio, 0xcfb, 0x00, 1);
	io_wr(&pio, 0xcfa, 0x0000, 2);
	cr_assert_eq(io_rd(&pio, 0xcf8, 4), cf8(0, 1, 0, 0));
	cr_assert_eq(io_rd(&pio, 0xcf9, 1), 0xff);
	cr_assert_eq(io_rd(&pio, 0xcfc, 4), 0x10411af4);

	cfg1_wr(1, 0x3c, 0x0b, 1);
	cr_assert_eq(cfg_rd(1, 0x3c, 1), 0x0b);
}

Test(pci, ecam_matches_cfg1)
{
	for (int slot = 0; slot < 3; slot++)
		for (int reg = 0; reg < 0x100; reg += 4)
			cr_assert_eq(cfg_rd(slot, reg, 4), cfg1_rd(0, slot, 0, reg, 4),
				     "slot %d reg %#x", slot, reg);
	cr_assert_eq(cfg_rd(1, 0x02, 2), 0x1041);
	cr_assert_eq(cfg_rd(1, 0x03, 1), 0x10);
	cr_assert_eq(io_rd(&mmio, ecam(1, 1, 0), 4), 0xffffffffu, "function 1");
	cr_assert_eq(io_rd(&mmio, ecam(31, 0, 0), 4), 0xffffffffu, "empty slot");
	cr_assert_eq(cfg_rd(1, 0x100, 1), 0xab, "ECAM reaches the extended space");
	cr_assert_eq(cfg_rd(1, 0xffc, 4), 0);
	cfg_wr(1, 0x3c, 0x0c, 1);
	cr_assert_eq(cfg1_rd(0, 1, 0, 0x3c, 1), 0x0c);
	io_wr(&mmio, ecam(1, 1, 0x3c), 0x0d, 1);
	cr_assert_eq(cfg_rd(1, 0x3c, 1), 0x0c, "a write to function 1 landed on function 0");
}

Test(pci, host_bridge)
{
	cr_assert_eq(cfg_rd(0, 0x00, 2), 0x8086);
	cr_assert_eq(cfg_rd(0, 0x02, 2), 0x29c0);
	cr_assert_eq(cfg_rd(0, 0x08, 4) >> 8, 0x060000);
	cr_assert_eq(cfg_rd(0, 0x0e, 1), 0);
	cfg_wr(0, 0x04, 0xffff, 2);
	cfg_wr(0, 0x00, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(0, 0x04, 2), 0);
	cr_assert_eq(cfg_rd(0, 0x00, 4), 0x29c08086);
}

Test(pci, device_header)
{
	cr_assert_eq(dev.slot, 1);
	cr_assert_eq(dev.intx_gsi, GSI_BASE + 1);
	cr_assert_eq(cfg_rd(1, 0x00, 4), 0x10411af4);
	cr_assert_eq(cfg_rd(1, 0x0b, 1), 0x02);
	cr_assert_eq(cfg_rd(1, 0x0e, 1), 0, "header type 0");
	cr_assert_eq(cfg_rd(1, 0x04, 2), 0, "decoding starts off");
	cr_assert(cfg_rd(1, 0x06, 2) & 0x10, "capabilities list bit");
	cr_assert_eq(cfg_rd(1, 0x3d, 1), 1, "INTA");
	cr_assert_eq(cfg_rd(1, 0x3c, 1), GSI_BASE + 1);

	int cap = cfg_rd(1, 0x34, 1);
	cr_assert_eq(cap, 0x40);
	cr_assert_eq(cfg_rd(1, cap, 1), 0x09);
	cr_assert_eq(cfg_rd(1, cap + 2, 1), 8, "vendor capability body kept");
	cap = cfg_rd(1, cap + 1, 1);
	cr_assert_eq(cap, 0x48, "next capability 4-byte aligned after the first");
	cr_assert_eq(cfg_rd(1, cap, 1), 0x11);
	cr_assert_eq(cfg_rd(1, cap + 1, 1), 0, "end of list");
	cr_assert_eq(cfg_rd(1, cap + 2, 2), NVEC - 1);
	cr_assert_eq(cfg_rd(1, cap + 4, 4), TABLE | 0);
	cr_assert_eq(cfg_rd(1, cap + 8, 4), PBA | 0);

	cr_assert_eq(dev.bars[0].addr, MEM64_BASE);
	cr_assert_eq(dev.bars[2].addr, MEM32_BASE);
	cr_assert_eq(cfg_rd(1, 0x10, 4), (uint32_t)MEM64_BASE | 0xc);
	cr_assert_eq(cfg_rd(1, 0x14, 4), MEM64_BASE >> 32);
	cr_assert_eq(cfg_rd(1, 0x18, 4), (uint32_t)MEM32_BASE);
}

/* IDs, class, pin, status and the capability chain are read-only; command takes only
 * memory, bus master and INTx-disable. */
Test(pci, write_mask)
{
	for (int reg = 0; reg < 0x40; reg += 4)
		if (reg < 0x10 || reg >= 0x28)
			cfg_wr(1, reg, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, 0x00, 4), 0x10411af4);
	cr_assert_eq(cfg_rd(1, 0x04, 2), 0x0406);
	cr_assert_eq(cfg_rd(1, 0x06, 2), 0x0010);
	cr_assert_eq(cfg_rd(1, 0x08, 4), 0x02000000);
	cr_assert_eq(cfg_rd(1, 0x0c, 4), 0);
	cr_assert_eq(cfg_rd(1, 0x30, 4), 0, "no expansion ROM");
	cr_assert_eq(cfg_rd(1, 0x34, 1), 0x40);
	cr_assert_eq(cfg_rd(1, 0x3c, 2), 0x01ff, "line writable, pin not");
	cfg_wr(1, 0x40, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, 0x40, 4), 0x01084809, "capability header and link");
}

/* ---- BARs ---- */

Test(pci, bar_sizing)
{
	cfg_wr(1, 0x10, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, 0x10, 4), 0xffffc00c, "~(16K-1), prefetchable, 64-bit");
	cfg_wr(1, 0x14, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, 0x14, 4), 0xffffffff);
	cfg_wr(1, 0x18, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, 0x18, 4), 0xfffff000, "32-bit, not prefetchable");
	cfg_wr(1, 0x20, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, 0x20, 4), 0, "unused BAR");
	cfg_wr(1, 0x1c, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, 0x1c, 4), 0);

	/* Addresses are stored aligned down to the size; the type bits stay. */
	cfg_wr(1, 0x10, (uint32_t)MEM64_BASE + 0x8000 + 0x1234, 4);
	cfg_wr(1, 0x14, MEM64_BASE >> 32, 4);
	cr_assert_eq(cfg_rd(1, 0x10, 4), (uint32_t)MEM64_BASE + 0x8000 + 0xc);
	cr_assert_eq(cfg_rd(1, 0x14, 4), MEM64_BASE >> 32);
	cr_assert_eq(cb.moved, 0, "decoding is off: nothing moved yet");
}

Test(pci, bar_dispatch_follows_move)
{
	uint64_t old = MEM64_BASE, new = MEM64_BASE + 0x100000;
	mem_on();
	cr_assert_eq(io_rd(&mmio, old + 0x10, 4), 0xa5a5a5a5);
	cr_assert_eq(bar0_rec.calls, 1);
	cr_assert_eq(bar0_rec.off, 0x10);
	io_wr(&mmio, old + 0x20, 0x1122334455667788ULL, 8);
	cr_assert_eq(bar0_rec.off, 0x20);
	cr_assert_eq(bar0_rec.len, 8);
	cr_assert_eq(bar0_rec.val, 0x1122334455667788ULL);

	cfg_wr(1, 0x10, (uint32_t)new, 4);
	cr_assert_eq(cb.moved, 0, "half a 64-bit BAR is not a move");
	cfg_wr(1, 0x14, new >> 32, 4);
	cr_assert_eq(cb.moved, 1);
	cr_assert_eq(cb.bar, 0);
	cr_assert_eq(cb.old_addr, old);
	cr_assert_eq(cb.new_addr, new);
	cr_assert_eq(dev.bars[0].addr, new);

	int calls = bar0_rec.calls;
	cr_assert_eq(io_rd(&mmio, old + 0x10, 4), 0xffffffffu);
	cr_assert_eq(bar0_rec.calls, calls, "old address still decodes");
	cr_assert_eq(io_rd(&mmio, new + 0x30, 2), 0xa5a5);
	cr_assert_eq(bar0_rec.off, 0x30);
	cr_assert_eq(io_rd(&mmio, new + TABLE + 12, 4), 1, "MSI-X table moved along");

	/* Sizing in place with decoding on: no move, no decoding until restored. */
	bar0_program(~0ULL);
	cr_assert_eq(cb.moved, 1);
	cr_assert_eq(io_rd(&mmio, new + 0x30, 4), 0xffffffffu);
	bar0_program(new);
	cr_assert_eq(cb.moved, 1);
	cr_assert_eq(io_rd(&mmio, new + 0x30, 4), 0xa5a5a5a5);

	/* Moved while decoding is off: reported when decoding comes back. */
	cfg_wr(1, 0x04, 0, 2);
	bar0_program(MEM64_BASE + 0x200000);
	cr_assert_eq(cb.moved, 1);
	mem_on();
	cr_assert_eq(cb.moved, 2);
	cr_assert_eq(cb.old_addr, new);
	cr_assert_eq(cb.new_addr, MEM64_BASE + 0x200000);

	/* A 32-bit BAR moves on its single dword. */
	cfg_wr(1, 0x18, (uint32_t)MEM32_BASE + 0x10000, 4);
	cr_assert_eq(cb.moved, 3);
	cr_assert_eq(cb.bar, 2);
	cr_assert_eq(cb.new_addr, MEM32_BASE + 0x10000);
	cr_assert_eq(io_rd(&mmio, MEM32_BASE + 0x10004, 4), 0xa5a5a5a5);
	cr_assert_eq(bar2_rec.off, 4);
}

/* Outside both windows a BAR decodes nowhere and the device is not told. */
Test(pci, bar_outside_window_inert)
{
	mem_on();
	bar0_program(0x100000);   /* guest RAM */
	cr_assert_eq(cb.moved, 0);
	cr_assert_eq(dev.bars[0].addr, MEM64_BASE);
	cr_assert_eq(io_rd(&mmio, MEM64_BASE, 4), 0xffffffffu);
	cr_assert_eq(bar0_rec.calls, 0);
	cfg_wr(1, 0x18, 0xfec00000, 4);   /* IOAPIC */
	cr_assert_eq(cb.moved, 0);
	cr_assert_eq(io_rd(&mmio, MEM32_BASE, 4), 0xffffffffu);
	cr_assert_eq(bar2_rec.calls, 0);
	/* Just past the mem64 window's end. */
	bar0_program(MEM64_BASE + MEM64_SIZE);
	cr_assert_eq(cb.moved, 0);
	bar0_program(MEM64_BASE);
	cr_assert_eq(io_rd(&mmio, MEM64_BASE, 4), 0xa5a5a5a5);
}

Test(pci, no_decode_without_memory_enable)
{
	cr_assert_eq(io_rd(&mmio, MEM64_BASE + 0x10, 4), 0xffffffffu);
	io_wr(&mmio, MEM64_BASE + 0x10, 1, 4);
	cr_assert_eq(io_rd(&mmio, MEM32_BASE, 4), 0xffffffffu);
	io_wr(&mmio, tbl(0, 12), 0, 4);
	cr_assert_eq(bar0_rec.calls + bar2_rec.calls, 0);
	cfg_wr(1, 0x04, 0x0004, 2);   /* bus master alone is not memory space */
	cr_assert_eq(io_rd(&mmio, MEM64_BASE + 0x10, 4), 0xffffffffu);
	cr_assert_eq(bar0_rec.calls, 0);
	mem_on();
	cr_assert_eq(io_rd(&mmio, tbl(0, 12), 4), 1, "table write with decoding off landed");
	cr_assert_eq(io_rd(&mmio, MEM64_BASE + 0x10, 4), 0xa5a5a5a5);
}

Test(pci, access_in_no_bar)
{
	mem_on();
	cr_assert_eq(io_rd(&mmio, MEM64_BASE + 0x100000, 4), 0xffffffffu);
	cr_assert_eq(io_rd(&mmio, MEM32_BASE + 0x100000, 1), 0xff);
	io_wr(&mmio, MEM64_BASE + BAR0_SIZE, 1, 4);
	cr_assert_eq(io_rd(&mmio, MEM64_BASE + BAR0_SIZE - 4, 8), ~0ULL, "straddles the BAR's end");
	cr_assert_eq(bar0_rec.calls + bar2_rec.calls, 0);
}

/* Device code called from a BAR handler may notify: the handler runs without the lock. */
Test(pci, bar_handler_may_notify)
{
	mem_on();
	msix_control(0x8000);
	msix_program(0, 0xfee00000, 0x41);
	io_wr(&mmio, MEM64_BASE + KICK_OFF, 1, 4);
	cr_assert_eq(bar0_rec.calls, 1);
	cr_assert_eq(fk.fires, 1);
}

/* ---- MSI-X ---- */

Test(pci, msix_control_bits)
{
	int cap = dev.msix.cap;
	cfg_wr(1, cap, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, cap, 4), 0xc0030011, "only enable and function mask are writable");
	cr_assert_eq(cb.mode_changed, 1);
	cr_assert(pci_msix_enabled(&dev));
	cfg_wr(1, cap + 4, 0xffffffff, 4);
	cfg_wr(1, cap + 8, 0xffffffff, 4);
	cr_assert_eq(cfg_rd(1, cap + 4, 4), TABLE);
	cr_assert_eq(cfg_rd(1, cap + 8, 4), PBA);
	cfg_wr(1, cap + 2, 0, 2);
	cr_assert_eq(cfg_rd(1, cap + 2, 2), NVEC - 1);
	cr_assert_eq(cb.mode_changed, 2);
	cr_assert_not(pci_msix_enabled(&dev));
}

Test(pci, msix_disabled_notify_false)
{
	mem_on();
	msix_program(0, 0xfee00000, 0x41);
	cr_assert_not(pci_msix_notify(&dev, 0));
	cr_assert_eq(fk.fires, 0);
	cr_assert_eq(pba(), 0, "nothing pends while MSI-X is off");
	msix_control(0x8000);
	cr_assert(pci_msix_notify(&dev, 0));
	cr_assert_eq(fk.fires, 1);
}

Test(pci, msix_route_and_fire_on_unmask)
{
	mem_on();
	msix_control(0x8000);
	io_wr(&mmio, tbl(1, 0), 0xfee01000, 4);
	io_wr(&mmio, tbl(1, 4), 0, 4);
	io_wr(&mmio, tbl(1, 8), 0x4041, 4);
	cr_assert_eq(fk.routes, 0, "masked entries are routed at unmask");
	cr_assert_eq(io_rd(&mmio, tbl(1, 8), 4), 0x4041);
	cr_assert_eq(io_rd(&mmio, tbl(1, 0), 8), 0xfee01000);

	cr_assert(pci_msix_notify(&dev, 1));
	cr_assert_eq(fk.fires, 0);
	cr_assert_eq(pba(), 0x2);
	io_wr(&mmio, tbl(1, 0), 0xfee01000, 4);   /* still masked: stays pending */
	cr_assert_eq(fk.fires, 0);
	cr_assert_eq(pba(), 0x2);

	io_wr(&mmio, tbl(1, 12), 0, 4);
	cr_assert_eq(fk.allocs, 1);
	cr_assert_eq(fk.routes, 1);
	cr_assert_eq(fk.route_gsi, 24);
	cr_assert_eq(fk.route_addr, 0xfee01000);
	cr_assert_eq(fk.route_data, 0x4041);
	cr_assert_eq(fk.fires, 1, "pending vector fired exactly once");
	cr_assert_eq(fk.fire_gsi, 24);
	cr_assert_eq(pba(), 0);

	io_wr(&mmio, tbl(1, 12), 0, 4);   /* unmasked again: nothing new */
	cr_assert_eq(fk.fires, 1);
	cr_assert_eq(fk.routes, 1);
	cr_assert(pci_msix_notify(&dev, 1));
	cr_assert_eq(fk.fires, 2);

	/* A new message on a live vector re-routes the same GSI. */
	io_wr(&mmio, tbl(1, 8), 0x4042, 4);
	cr_assert_eq(fk.routes, 2);
	cr_assert_eq(fk.allocs, 1);
	cr_assert_eq(fk.route_data, 0x4042);

	/* Masked again: notifications pend, reserved control bits read as zero. */
	io_wr(&mmio, tbl(1, 12), 0xffffffff, 4);
	cr_assert_eq(io_rd(&mmio, tbl(1, 12), 4), 1);
	cr_assert(pci_msix_notify(&dev, 1));
	cr_assert_eq(fk.fires, 2);
	cr_assert_eq(pba(), 0x2);
	/* One qword write of data and control unmasks. */
	io_wr(&mmio, tbl(1, 8), 0x4042, 8);
	cr_assert_eq(fk.fires, 3);
	cr_assert_eq(pba(), 0);
}

Test(pci, msix_function_mask)
{
	mem_on();
	msix_control(0xc000);
	cr_assert_eq(cb.mode_changed, 1);
	msix_program(2, 0xfee00000, 0x51);
	cr_assert_eq(fk.routes, 1);
	cr_assert(pci_msix_notify(&dev, 2));
	cr_assert(pci_msix_notify(&dev, 2));
	cr_assert_eq(fk.fires, 0);
	cr_assert_eq(pba(), 0x4);
	cr_assert_eq(io_rd(&mmio, dev.bars[0].addr + PBA + 4, 4), 0);
	io_wr(&mmio, tbl(2, 8), 0x52, 4);   /* the function is still masked */
	msix_control(0xc000);
	cr_assert_eq(fk.fires, 0);
	cr_assert_eq(pba(), 0x4);

	msix_control(0x8000);
	cr_assert_eq(cb.mode_changed, 2);
	cr_assert_eq(fk.fires, 1, "function unmask delivers the pending vector once");
	cr_assert_eq(pba(), 0);

	/* Disabling and re-enabling keeps pending vectors until they can go. */
	msix_control(0x0000);
	cr_assert_not(pci_msix_notify(&dev, 2));
	msix_control(0xc000);
	cr_assert(pci_msix_notify(&dev, 2));
	cr_assert_eq(fk.fires, 1);
	msix_control(0x8000);
	cr_assert_eq(fk.fires, 2);
}

Test(pci, msix_route_failure_pends)
{
	mem_on();
	msix_control(0x8000);
	fk.fail_alloc = true;
	msix_program(0, 0xfee00000, 0x61);
	cr_assert_eq(fk.routes, 0);
	cr_assert(pci_msix_notify(&dev, 0));
	cr_assert_eq(fk.fires, 0);
	cr_assert_eq(pba(), 1);
	fk.fail_alloc = false;
	io_wr(&mmio, tbl(0, 12), 0, 4);
	cr_assert_eq(fk.routes, 1);
	cr_assert_eq(fk.fires, 1);
	cr_assert_eq(pba(), 0);
}

Test(pci, msix_bad_accesses_harmless)
{
	mem_on();
	msix_control(0x8000);
	uint64_t t = dev.bars[0].addr + TABLE;
	cr_assert_eq(io_rd(&mmio, t + 2, 4), 0, "misaligned");
	cr_assert_eq(io_rd(&mmio, t + 12, 2), 0, "word");
	cr_assert_eq(io_rd(&mmio, t + 12, 1), 0, "byte");
	cr_assert_eq(io_rd(&mmio, t + 4, 8), 0, "misaligned qword");
	io_wr(&mmio, t + 12, 0, 1);
	io_wr(&mmio, t + 12, 0, 2);
	io_wr(&mmio, t + 10, 0, 4);
	cr_assert_eq(io_rd(&mmio, tbl(0, 12), 4), 1, "a bad write unmasked vector 0");
	cr_assert_eq(fk.routes, 0);

	/* Vector NVEC is past the table: the device's registers, not a fifth entry. */
	io_wr(&mmio, t + 16 * NVEC + 12, 0, 4);
	cr_assert_eq(bar0_rec.calls, 1);
	cr_assert_eq(bar0_rec.off, TABLE + 16 * NVEC + 12);
	cr_assert_eq(fk.routes, 0);
	/* The PBA is read-only and 8 bytes long for 4 vectors. */
	cr_assert(pci_msix_notify(&dev, 3));
	io_wr(&mmio, dev.bars[0].addr + PBA, 0, 8);
	io_wr(&mmio, dev.bars[0].addr + PBA, 0, 4);
	cr_assert_eq(pba(), 0x8);
	cr_assert_eq(io_rd(&mmio, dev.bars[0].addr + PBA + 2, 4), 0);
	cr_assert_eq(io_rd(&mmio, dev.bars[0].addr + PBA + 1, 1), 0);

	/* Out-of-range vectors are swallowed. */
	uint64_t before = pba();
	cr_assert(pci_msix_notify(&dev, -1));
	cr_assert(pci_msix_notify(&dev, NVEC));
	cr_assert(pci_msix_notify(&dev, PCI_MSIX_MAX_VEC));
	cr_assert(pci_msix_notify(&dev, 1 << 20));
	cr_assert_eq(pba(), before);
	cr_assert_eq(fk.fires, 0);
	cr_assert_eq(fk.allocs, 0);
}

static void *notifier(void *arg)
{
	for (int i = 0; i < 20000; i++)
		pci_msix_notify(&dev, i % NVEC);
	return NULL;
}

/* A device thread notifying while a vCPU masks and unmasks: every notification is either
 * fired or left pending, and the final unmask leaves nothing behind. */
Test(pci, msix_notify_races_masking)
{
	mem_on();
	msix_control(0x8000);
	for (int v = 0; v < NVEC; v++)
		msix_program(v, 0xfee00000, 0x40 + v);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, notifier, NULL), 0);
	for (int i = 0; i < 2000; i++) {
		io_wr(&mmio, tbl(i % NVEC, 12), i & 1, 4);
		msix_control(i & 2 ? 0xc000 : 0x8000);
		(void)cfg_rd(1, 0x04, 4);
	}
	pthread_join(t, NULL);
	msix_control(0x8000);
	for (int v = 0; v < NVEC; v++)
		io_wr(&mmio, tbl(v, 12), 0, 4);
	cr_assert_eq(pba(), 0);
	cr_assert_gt(fk.fires, 0);
	cr_assert_eq(fk.allocs, NVEC);
}

Test(pci, msix_init_rejects_bad_layout)
{
	struct pci_dev d;
	memset(&d, 0, sizeof(d));
	d.bars[0].size = 0x1000;
	cr_assert_eq(pci_msix_init(&d, 0, 0, 0, 0x800), -EINVAL);
	cr_assert_eq(pci_msix_init(&d, PCI_MSIX_MAX_VEC + 1, 0, 0, 0x800), -EINVAL);
	cr_assert_eq(pci_msix_init(&d, 4, 1, 0, 0x800), -EINVAL, "empty BAR");
	cr_assert_eq(pci_msix_init(&d, 4, 0, 0xff8, 0x800), -EINVAL, "table past the BAR");
	cr_assert_eq(pci_msix_init(&d, 4, 0, 0, 0x38), -EINVAL, "PBA inside the table");
	cr_assert_eq(pci_msix_init(&d, 4, 0, 4, 0x800), -EINVAL, "misaligned table");
	cr_assert_eq(d.cfg[0x34], 0);
	cr_assert_eq(pci_msix_init(&d, 4, 0, 0, 0x800), 0);
	cr_assert_eq(pci_msix_init(&d, 4, 0, 0, 0x800), -EEXIST);
}

/* ---- INTx ---- */

Test(pci, intx_level_and_disable)
{
	int gsi = dev.intx_gsi;
	pci_intx(&dev, 1);
	cr_assert_eq(fk.intx_level[gsi], 1);
	cr_assert(cfg_rd(1, 0x06, 2) & 0x08, "interrupt status");

	cfg_wr(1, 0x04, 0x0400, 2);
	cr_assert_eq(fk.intx_level[gsi], 0, "INTx-disable drops the line");
	cr_assert_eq(cb.mode_changed, 1);
	cr_assert(cfg_rd(1, 0x06, 2) & 0x08, "status still shows the request");
	pci_intx(&dev, 0);
	pci_intx(&dev, 1);
	cr_assert_eq(fk.intx_level[gsi], 0);

	cfg_wr(1, 0x04, 0x0000, 2);
	cr_assert_eq(fk.intx_level[gsi], 1, "re-enabled with the request still up");
	cr_assert_eq(cb.mode_changed, 2);
	pci_intx(&dev, 0);
	cr_assert_eq(fk.intx_level[gsi], 0);
	cr_assert_not(cfg_rd(1, 0x06, 2) & 0x08);
	int calls = fk.intx_calls;
	pci_intx(&dev, 0);
	cr_assert_eq(fk.intx_calls, calls, "no change, no call");

	/* MSI-X enabled: INTx is not used. */
	pci_intx(&dev, 1);
	msix_control(0x8000);
	cr_assert_eq(fk.intx_level[gsi], 0);
	msix_control(0x0000);
	cr_assert_eq(fk.intx_level[gsi], 1);
}

static struct pci_dev plain[PCI_MAX_DEVS];

static int add_plain(int i)
{
	memset(&plain[i], 0, sizeof(plain[i]));
	plain[i].cfg[0] = 0x34;
	plain[i].cfg[1] = 0x12;
	return pci_add(&pb, &plain[i]);
}

/* Slots 1 and 5 share a GSI: the line is the OR of both. */
Test(pci, intx_shared_line)
{
	for (int i = 2; i <= 5; i++)
		cr_assert_eq(add_plain(i), i);
	struct pci_dev *other = &plain[5];
	int gsi = dev.intx_gsi;
	cr_assert_eq(other->intx_gsi, gsi);
	cr_assert_eq(plain[2].intx_gsi, GSI_BASE + 2);
	pci_intx(&dev, 1);
	pci_intx(other, 1);
	pci_intx(&dev, 0);
	cr_assert_eq(fk.intx_level[gsi], 1, "one device dropped the other's interrupt");
	pci_intx(other, 0);
	cr_assert_eq(fk.intx_level[gsi], 0);
	cr_assert_eq(fk.intx_calls, 2);
}

/* ---- allocation ---- */

Test(pci, slots_run_out)
{
	for (int i = 2; i < PCI_MAX_DEVS; i++)
		cr_assert_eq(add_plain(i), i);
	struct pci_dev extra;
	memset(&extra, 0, sizeof(extra));
	cr_assert_eq(pci_add(&pb, &extra), -ENOSPC);
	cr_assert_eq(cfg_rd(31, 0, 2), 0x1234);
}

Test(pci, bar_windows_run_out)
{
	/* A bus whose 64-bit window holds two 16 KiB BARs, the 32-bit one 12 KiB. */
	struct pci_bus small;
	memset(&small, 0, sizeof(small));
	small.mem64_base = MEM64_BASE;
	small.mem64_size = 2 * BAR0_SIZE;
	small.mem32_base = MEM32_BASE + 0x1000;
	small.mem32_size = 0x3000;
	cr_assert_eq(pci_bus_init(&small, &fk_ops, &fk), 0);

	static struct pci_dev d[4];
	for (int i = 0; i < 4; i++) {
		memset(&d[i], 0, sizeof(d[i]));
		d[i].bars[0] = (struct pci_bar){ .size = BAR0_SIZE, .is64 = true };
	}
	cr_assert_eq(pci_add(&small, &d[0]), 1);
	cr_assert_eq(pci_add(&small, &d[1]), 2);
	cr_assert_eq(d[1].bars[0].addr, MEM64_BASE + BAR0_SIZE);
	cr_assert_eq(pci_add(&small, &d[2]), -ENOSPC);
	/* A failed add takes no slot and no window space. */
	memset(&d[3], 0, sizeof(d[3]));
	d[3].bars[1] = (struct pci_bar){ .size = 0x2000 };   /* 8K-aligned: skips 0x...1000 */
	cr_assert_eq(pci_add(&small, &d[3]), 3);
	cr_assert_eq(d[3].bars[1].addr, MEM32_BASE + 0x2000);
	memset(&d[2], 0, sizeof(d[2]));
	d[2].bars[0] = (struct pci_bar){ .size = 0x1000 };
	cr_assert_eq(pci_add(&small, &d[2]), -ENOSPC, "32-bit window full");

	struct pci_dev bad;
	memset(&bad, 0, sizeof(bad));
	bad.bars[0] = (struct pci_bar){ .size = 0x3000 };
	cr_assert_eq(pci_add(&small, &bad), -EINVAL, "size not a power of two");
	bad.bars[0] = (struct pci_bar){ .size = 0x1000, .is64 = true };
	bad.bars[1] = (struct pci_bar){ .size = 0x1000 };
	cr_assert_eq(pci_add(&small, &bad), -EINVAL, "64-bit BAR's high half taken");
	memset(&bad, 0, sizeof(bad));
	bad.bars[5] = (struct pci_bar){ .size = 0x1000, .is64 = true };
	cr_assert_eq(pci_add(&small, &bad), -EINVAL, "64-bit BAR in the last slot");
}

Test(pci, capabilities_run_out)
{
	struct pci_dev d;
	uint8_t big[0x60] = { 0x09 };
	memset(&d, 0, sizeof(d));
	cr_assert_eq(pci_add_cap(&d, big, sizeof(big)), 0x40);
	cr_assert_eq(pci_add_cap(&d, big, 0x5d), 0xa0);   /* ends at 0xfd */
	cr_assert_eq(d.cfg[0x41], 0xa0);
	cr_assert_eq(pci_add_cap(&d, big, 2), -ENOSPC);
	cr_assert_eq(pci_add_cap(&d, big, 1), -EINVAL);
}
