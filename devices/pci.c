/* PCI bus 0: config mechanism #1 and ECAM decode to one type-0 config space per slot; BARs
 * decode inside two MMIO windows owned by the bus; MSI-X table/PBA and INTx are emulated
 * here so devices only ever see "notify vector n" and "raise INTA".
 *
 * Locking: b->lock guards every device's config space, BAR and MSI-X state.  Interrupt ops
 * (ioctls/eventfd writes) run under it; device code (BAR handlers, bar_moved,
 * irq_mode_changed) never does, because devices call pci_msix_notify/pci_intx, which take
 * the lock themselves. */
#include <errno.h>
#include <string.h>

#include "devices/pci.h"

enum {
	CFG_VENDOR = 0x00, CFG_DEVICE = 0x02, CFG_COMMAND = 0x04, CFG_STATUS = 0x06,
	CFG_REVISION = 0x08, CFG_HEADER_TYPE = 0x0e, CFG_BAR0 = 0x10, CFG_CAP_PTR = 0x34,
	CFG_INT_LINE = 0x3c, CFG_INT_PIN = 0x3d, CFG_HEADER_END = 0x40, CFG_STD_END = 0x100,
};
enum { CMD_MEMORY = 0x0002, CMD_MASTER = 0x0004, CMD_INTX_DISABLE = 0x0400 };
enum { STATUS_INTX = 0x0008, STATUS_CAP_LIST = 0x0010 };
enum { BAR_MEM64 = 0x4, BAR_PREFETCH = 0x8, BAR_FLAGS = 0xf };

enum { MSIX_CAP_ID = 0x11, MSIX_CAP_LEN = 12 };
enum { MSIX_CTRL_MASK = 0x4000, MSIX_CTRL_ENABLE = 0x8000 };   /* bits 10:0: size - 1 */
enum { MSIX_ENTRY_SIZE = 16, MSIX_VEC_MASKED = 0x1 };

#define CF8_ENABLE   0x80000000u
#define CF8_MASK     0x80fffffcu  /* bits 30:24 and 1:0 are reserved: read as zero */
#define ECAM_SIZE    (1u << 20)
#define FOUR_GIB     (1ULL << 32)

/* Device callbacks noted under the lock and made after it is dropped. */
struct pci_deferred {
	unsigned moved;                 /* bit per BAR */
	uint64_t old_addr[PCI_MAX_BARS], new_addr[PCI_MAX_BARS];
	bool mode_changed;
};

static uint32_t le_get(const uint8_t *p, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void le_put(uint8_t *space, unsigned off, uint32_t v, unsigned len)
{
	for (unsigned i = 0; i < len; i++)
		space[off + i] = (uint8_t)(v >> (8 * i));
}

static uint32_t cfg_get(const struct pci_dev *d, unsigned off, unsigned len)
{
	return le_get(d->cfg + off, len);
}

static bool range_overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static bool range_inside(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a >= b && a - b <= blen && alen <= blen - (a - b);
}

static uint16_t pci_command(const struct pci_dev *d)
{
	return (uint16_t)cfg_get(d, CFG_COMMAND, 2);
}

static void deferred_run(struct pci_dev *d, const struct pci_deferred *df)
{
	if (!d->ops)
		return;
	for (int i = 0; i < PCI_MAX_BARS; i++)
		if ((df->moved & (1u << i)) && d->ops->bar_moved)
			d->ops->bar_moved(d, i, df->old_addr[i], df->new_addr[i]);
	if (df->mode_changed && d->ops->irq_mode_changed)
		d->ops->irq_mode_changed(d);
}

static uint16_t msix_control(const struct pci_dev *d)
{
	return d->msix.nvec ? (uint16_t)cfg_get(d, d->msix.cap + 2, 2) : 0;
}

/* The spec forbids INTx while INTx-disable is set or MSI-X is enabled. */
static bool intx_asserted(const struct pci_dev *d)
{
	return d->intx_level && !(pci_command(d) & CMD_INTX_DISABLE) &&
	       !(msix_control(d) & MSIX_CTRL_ENABLE);
}

static bool intx_line(const struct pci_bus *b, int gsi)
{
	for (int s = 1; s < PCI_MAX_DEVS; s++)
		if (b->devs[s] && b->devs[s]->intx_gsi == gsi && intx_asserted(b->devs[s]))
			return true;
	return false;
}

/* Call after a change, with the line's level from before it: drives only transitions, so
 * one device lowering its INTA never drops a line another device still holds. */
static void intx_sync(struct pci_bus *b, int gsi, bool before)
{
	if (gsi < 0)
		return;
	bool now = intx_line(b, gsi);
	if (now != before)
		b->irq->intx_set(b->irq_ctx, gsi, now);
}

void pci_intx(struct pci_dev *d, int level)
{
	struct pci_bus *b = d->bus;
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	bool before = intx_line(b, d->intx_gsi);
	d->intx_level = level != 0;
	/* Status bit 3 shows the device's own request, whether or not INTx-disable masks it. */
	uint16_t status = (uint16_t)cfg_get(d, CFG_STATUS, 2) & ~STATUS_INTX;
	le_put(d->cfg, CFG_STATUS, status | (d->intx_level ? STATUS_INTX : 0), 2);
	intx_sync(b, d->intx_gsi, before);
	pthread_mutex_unlock(&b->lock);
}

static bool msix_vec_live(const struct pci_dev *d, int v)
{
	uint16_t ctrl = msix_control(d);
	return (ctrl & MSIX_CTRL_ENABLE) && !(ctrl & MSIX_CTRL_MASK) &&
	       !(d->msix.vec[v].ctrl & MSIX_VEC_MASKED);
}

/* Point the vector's GSI at its current message; a failure leaves it unrouted, so
 * notifications stay pending and the next unmask retries. */
static void msix_route(struct pci_bus *b, struct pci_dev *d, int v)
{
	typeof(d->msix.vec[0]) *e = &d->msix.vec[v];
	if (e->routed)
		return;
	if (e->gsi < 0) {
		int gsi = b->irq->msi_alloc(b->irq_ctx);
		if (gsi < 0)
			return;
		e->gsi = gsi;
	}
	if (b->irq->msi_route(b->irq_ctx, e->gsi, e->addr, e->data) == 0)
		e->routed = true;
}

/* Deliver vector v's pending message if it can go out now. */
static void msix_flush(struct pci_bus *b, struct pci_dev *d, int v)
{
	uint64_t bit = 1ULL << v;
	if (!(d->msix.pending & bit) || !msix_vec_live(d, v))
		return;
	msix_route(b, d, v);
	if (!d->msix.vec[v].routed)
		return;
	d->msix.pending &= ~bit;
	b->irq->msi_fire(b->irq_ctx, d->msix.vec[v].gsi);
}

static void msix_control_changed(struct pci_bus *b, struct pci_dev *d, uint16_t old,
				 struct pci_deferred *df)
{
	uint16_t now = msix_control(d);
	if (!((old ^ now) & (MSIX_CTRL_ENABLE | MSIX_CTRL_MASK)))
		return;
	df->mode_changed = true;
	for (int v = 0; v < d->msix.nvec; v++)
		msix_flush(b, d, v);
}

bool pci_msix_notify(struct pci_dev *d, int vec)
{
	struct pci_bus *b = d->bus;
	if (!b)
		return false;
	pthread_mutex_lock(&b->lock);
	bool enabled = msix_control(d) & MSIX_CTRL_ENABLE;
	/* An out-of-range vector is a device bug: swallow it rather than fall back to INTx. */
	if (enabled && vec >= 0 && vec < d->msix.nvec) {
		if (msix_vec_live(d, vec) && d->msix.vec[vec].routed)
			b->irq->msi_fire(b->irq_ctx, d->msix.vec[vec].gsi);
		else
			d->msix.pending |= 1ULL << vec;
	}
	pthread_mutex_unlock(&b->lock);
	return enabled;
}

bool pci_msix_enabled(struct pci_dev *d)
{
	struct pci_bus *b = d->bus;
	if (!b)
		return false;
	pthread_mutex_lock(&b->lock);
	bool enabled = msix_control(d) & MSIX_CTRL_ENABLE;
	pthread_mutex_unlock(&b->lock);
	return enabled;
}

static void msix_entry_image(const struct pci_dev *d, int v, uint8_t img[MSIX_ENTRY_SIZE])
{
	le_put(img, 0, (uint32_t)d->msix.vec[v].addr, 4);
	le_put(img, 4, (uint32_t)(d->msix.vec[v].addr >> 32), 4);
	le_put(img, 8, d->msix.vec[v].data, 4);
	le_put(img, 12, d->msix.vec[v].ctrl, 4);
}

static void msix_entry_write(struct pci_bus *b, struct pci_dev *d, int v, unsigned field,
			     const void *data, unsigned len)
{
	typeof(d->msix.vec[0]) *e = &d->msix.vec[v];
	uint8_t img[MSIX_ENTRY_SIZE];
	msix_entry_image(d, v, img);
	memcpy(img + field, data, len);
	uint64_t addr = le_get(img + 0, 4) | (uint64_t)le_get(img + 4, 4) << 32;
	uint32_t msg = le_get(img + 8, 4);
	if (addr != e->addr || msg != e->data)
		e->routed = false;
	e->addr = addr;
	e->data = msg;
	e->ctrl = le_get(img + 12, 4) & MSIX_VEC_MASKED;   /* the other bits are reserved */
	/* Routing waits for the unmask: drivers fill masked entries a dword at a time. */
	if (!(e->ctrl & MSIX_VEC_MASKED))
		msix_route(b, d, v);
	msix_flush(b, d, v);
}

static void msix_table_rw(struct pci_bus *b, struct pci_dev *d, uint64_t off, void *data,
			  unsigned len, bool is_write)
{
	int v = (int)(off / MSIX_ENTRY_SIZE);
	unsigned field = off % MSIX_ENTRY_SIZE;
	if (is_write) {
		msix_entry_write(b, d, v, field, data, len);
	} else {
		uint8_t img[MSIX_ENTRY_SIZE];
		msix_entry_image(d, v, img);
		memcpy(data, img + field, len);
	}
}

static void msix_pba_read(const struct pci_dev *d, uint64_t off, void *data, unsigned len)
{
	uint8_t img[8];
	le_put(img, 0, (uint32_t)d->msix.pending, 4);
	le_put(img, 4, (uint32_t)(d->msix.pending >> 32), 4);
	memcpy(data, img + off, len);
}

/* Handles the access and returns true when it touches the MSI-X table or PBA. */
static bool msix_bar_rw(struct pci_bus *b, struct pci_dev *d, int bar, uint64_t off,
			void *data, unsigned len, bool is_write)
{
	const struct pci_msix *m = &d->msix;
	if (!m->nvec || m->bar != bar)
		return false;
	uint64_t table_len = (uint64_t)m->nvec * MSIX_ENTRY_SIZE;
	uint64_t pba_len = 8 * (((uint64_t)m->nvec + 63) / 64);
	bool table = range_overlaps(off, len, m->table_off, table_len);
	if (!table && !range_overlaps(off, len, m->pba_off, pba_len))
		return false;
	uint64_t base = table ? m->table_off : m->pba_off;
	if (!is_write)
		memset(data, 0, len);
	/* Aligned dwords and qwords wholly inside only; the rest is dropped, reads zero. */
	if ((len != 4 && len != 8) || off % len ||
	    !range_inside(off, len, base, table ? table_len : pba_len))
		return true;
	if (table)
		msix_table_rw(b, d, off - base, data, len, is_write);
	else if (!is_write)
		msix_pba_read(d, off - base, data, len);   /* the PBA is read-only */
	return true;
}

int pci_msix_init(struct pci_dev *d, int nvec, int bar, uint32_t table_off, uint32_t pba_off)
{
	if (d->msix.nvec)
		return -EEXIST;
	if (nvec < 1 || nvec > PCI_MSIX_MAX_VEC || bar < 0 || bar >= PCI_MAX_BARS ||
	    table_off % 8 || pba_off % 8)
		return -EINVAL;
	uint64_t size = d->bars[bar].size;
	uint64_t table_len = (uint64_t)nvec * MSIX_ENTRY_SIZE, pba_len = 8 * ((nvec + 63) / 64);
	if (!range_inside(table_off, table_len, 0, size) || !range_inside(pba_off, pba_len, 0, size) ||
	    range_overlaps(table_off, table_len, pba_off, pba_len))
		return -EINVAL;

	uint8_t cap[MSIX_CAP_LEN] = { MSIX_CAP_ID };
	le_put(cap, 2, (uint32_t)(nvec - 1), 2);
	le_put(cap, 4, table_off | (uint32_t)bar, 4);
	le_put(cap, 8, pba_off | (uint32_t)bar, 4);
	int off = pci_add_cap(d, cap, sizeof(cap));
	if (off < 0)
		return off;
	d->wmask[off + 3] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASK) >> 8;

	d->msix.nvec = nvec;
	d->msix.bar = bar;
	d->msix.table_off = table_off;
	d->msix.pba_off = pba_off;
	d->msix.cap = (uint8_t)off;
	d->msix.pending = 0;
	for (int v = 0; v < PCI_MSIX_MAX_VEC; v++) {
		memset(&d->msix.vec[v], 0, sizeof(d->msix.vec[v]));
		d->msix.vec[v].ctrl = MSIX_VEC_MASKED;   /* reset state */
		d->msix.vec[v].gsi = -1;
	}
	return 0;
}

int pci_add_cap(struct pci_dev *d, const void *cap, uint8_t len)
{
	if (!cap || len < 2)
		return -EINVAL;
	unsigned off = d->cap_end ? d->cap_end : CFG_HEADER_END;
	if (off + len > CFG_STD_END)   /* capability pointers are 8 bits */
		return -ENOSPC;
	memcpy(d->cfg + off, cap, len);
	d->cfg[off + 1] = 0;
	if (!d->cfg[CFG_CAP_PTR]) {
		d->cfg[CFG_CAP_PTR] = (uint8_t)off;
	} else {
		/* Bounded walk: at most 48 capabilities fit between 0x40 and 0x100. */
		unsigned last = d->cfg[CFG_CAP_PTR];
		for (int n = 0; n < 48 && d->cfg[last + 1]; n++)
			last = d->cfg[last + 1];
		d->cfg[last + 1] = (uint8_t)off;
	}
	d->cap_end = (uint16_t)((off + len + 3) & ~3u);
	return (int)off;
}

static unsigned bar_reg(int i)
{
	return CFG_BAR0 + 4 * (unsigned)i;
}

/* The address the guest has programmed, which may be mid-update or a sizing pattern. */
static uint64_t bar_programmed(const struct pci_dev *d, int i)
{
	uint64_t addr = cfg_get(d, bar_reg(i), 4) & ~(uint32_t)BAR_FLAGS;
	if (d->bars[i].is64)
		addr |= (uint64_t)cfg_get(d, bar_reg(i + 1), 4) << 32;
	return addr;
}

static bool bar_in_window(const struct pci_bus *b, uint64_t addr, uint64_t size)
{
	return (b->mem32_size && range_inside(addr, size, b->mem32_base, b->mem32_size)) ||
	       (b->mem64_size && range_inside(addr, size, b->mem64_base, b->mem64_size));
}

/* A BAR decodes where it was last accepted (bars[i].addr), and only while the programmed
 * value still says so: a half-written 64-bit BAR or one sized in place decodes nowhere. */
static bool bar_decodes(const struct pci_dev *d, int i)
{
	return d->bars[i].size && (pci_command(d) & CMD_MEMORY) &&
	       bar_programmed(d, i) == d->bars[i].addr;
}

/* Accept a newly programmed address if decoding is on and it lies inside a window; one
 * outside stays inert, so it can never shadow another device or RAM. */
static void bar_commit(struct pci_bus *b, struct pci_dev *d, int i, struct pci_deferred *df)
{
	uint64_t addr = bar_programmed(d, i);
	if (!(pci_command(d) & CMD_MEMORY) || addr == d->bars[i].addr ||
	    !bar_in_window(b, addr, d->bars[i].size))
		return;
	if (!(df->moved & (1u << i)))
		df->old_addr[i] = d->bars[i].addr;
	df->moved |= 1u << i;
	df->new_addr[i] = addr;
	d->bars[i].addr = addr;
}

static bool bar_lookup(struct pci_bus *b, uint64_t addr, unsigned len, struct pci_dev **dp,
		       int *bar)
{
	for (int s = 1; s < PCI_MAX_DEVS; s++) {
		struct pci_dev *d = b->devs[s];
		if (!d)
			continue;
		for (int i = 0; i < PCI_MAX_BARS; i++) {
			if (bar_decodes(d, i) &&
			    range_inside(addr, len, d->bars[i].addr, d->bars[i].size)) {
				*dp = d;
				*bar = i;
				return true;
			}
		}
	}
	return false;
}

static void window_io(struct pci_bus *b, uint64_t addr, void *data, unsigned len,
		      bool is_write)
{
	bus_io_fn fn = NULL;
	void *opaque = NULL;
	uint64_t off = 0;
	struct pci_dev *d;
	int i;

	pthread_mutex_lock(&b->lock);
	if (bar_lookup(b, addr, len, &d, &i)) {
		off = addr - d->bars[i].addr;
		if (msix_bar_rw(b, d, i, off, data, len, is_write)) {
			pthread_mutex_unlock(&b->lock);
			return;
		}
		fn = d->bars[i].fn;
		opaque = d->bars[i].opaque;
	}
	pthread_mutex_unlock(&b->lock);
	/* Outside the lock: the handler may notify an interrupt, which takes it. */
	if (fn)
		fn(opaque, off, data, len, is_write);
	else if (!is_write)
		memset(data, 0xff, len);
}

static void mem32_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct pci_bus *b = opaque;
	window_io(b, b->mem32_base + off, data, len, is_write);
}

static void mem64_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct pci_bus *b = opaque;
	window_io(b, b->mem64_base + off, data, len, is_write);
}

static void cfg_write(struct pci_bus *b, struct pci_dev *d, unsigned off, const uint8_t *v,
		      unsigned len, struct pci_deferred *df)
{
	uint16_t old_cmd = pci_command(d), old_msix = msix_control(d);
	bool line = intx_line(b, d->intx_gsi);

	for (unsigned i = 0; i < len; i++) {
		uint8_t m = d->wmask[off + i];
		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~m) | (v[i] & m));
	}
	uint16_t cmd = pci_command(d);
	for (int i = 0; i < PCI_MAX_BARS; i++) {
		if (!d->bars[i].size)
			continue;
		/* A BAR is complete once its last dword (the high one of a 64-bit BAR) is
		 * written; re-enabling decode accepts whatever the BARs hold by then. */
		unsigned last = bar_reg(d->bars[i].is64 ? i + 1 : i);
		if ((cmd & ~old_cmd & CMD_MEMORY) || range_overlaps(off, len, last, 4))
			bar_commit(b, d, i, df);
	}
	if ((cmd ^ old_cmd) & CMD_INTX_DISABLE)
		df->mode_changed = true;
	if (d->msix.nvec)
		msix_control_changed(b, d, old_msix, df);
	intx_sync(b, d->intx_gsi, line);
}

void pci_cfg_rw(struct pci_bus *b, int slot, int fn, uint32_t off, void *data, unsigned len,
		bool is_write)
{
	struct pci_deferred df = { 0 };
	struct pci_dev *d = NULL;

	pthread_mutex_lock(&b->lock);
	if (slot >= 0 && slot < PCI_MAX_DEVS && fn == 0 && len <= 8 && off < PCI_CFG_SIZE &&
	    len <= PCI_CFG_SIZE - off)
		d = b->devs[slot];
	if (!d) {
		if (!is_write)
			memset(data, 0xff, len);   /* no device: master abort */
	} else if (is_write) {
		cfg_write(b, d, off, data, len, &df);
	} else {
		memcpy(data, d->cfg + off, len);
	}
	pthread_mutex_unlock(&b->lock);
	if (d)
		deferred_run(d, &df);
}

/* 0xCF8: only a full dword access reaches the address latch; narrower ones (0xCF9's reset
 * control, mechanism #2 probes at 0xCFB) belong to hardware we do not have. */
static void cf8_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct pci_bus *b = opaque;
	if (off != 0 || len != 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write) {
		uint32_t v;
		memcpy(&v, data, 4);
		__atomic_store_n(&b->cf8, v & CF8_MASK, __ATOMIC_RELAXED);
	} else {
		uint32_t v = __atomic_load_n(&b->cf8, __ATOMIC_RELAXED);
		memcpy(data, &v, 4);
	}
}

static void cfc_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct pci_bus *b = opaque;
	uint32_t a = __atomic_load_n(&b->cf8, __ATOMIC_RELAXED);
	if (!(a & CF8_ENABLE) || ((a >> 16) & 0xff) != 0) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pci_cfg_rw(b, (a >> 11) & 0x1f, (a >> 8) & 0x7, (a & 0xfc) + (uint32_t)off, data, len,
		   is_write);
}

static void ecam_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	pci_cfg_rw(opaque, (off >> 15) & 0x1f, (off >> 12) & 0x7, off & 0xfff, data, len,
		   is_write);
}

static void host_bridge_init(struct pci_bus *b)
{
	struct pci_dev *h = &b->host;
	memset(h, 0, sizeof(*h));
	le_put(h->cfg, CFG_VENDOR, 0x8086, 2);
	le_put(h->cfg, CFG_DEVICE, 0x29c0, 2);
	le_put(h->cfg, CFG_REVISION, 0x06000000, 4);   /* class 06 00 00, revision 0 */
	h->bus = b;
	h->slot = 0;
	h->intx_gsi = -1;   /* no interrupt pin; wmask all zero: read-only */
	b->devs[0] = h;
}

int pci_bus_init(struct pci_bus *b, const struct pci_irq_ops *irq, void *irq_ctx)
{
	if (!irq || !irq->msi_alloc || !irq->msi_route || !irq->msi_fire || !irq->intx_set)
		return -EINVAL;
	int err = pthread_mutex_init(&b->lock, NULL);
	if (err)
		return -err;
	/* The windows, ECAM base and INTx base are the caller's: left alone here, so they may
	 * be set before or after this call. */
	b->irq = irq;
	b->irq_ctx = irq_ctx;
	b->cf8 = 0;
	memset(b->devs, 0, sizeof(b->devs));
	host_bridge_init(b);
	return 0;
}

int pci_bus_attach(struct pci_bus *b, struct bus *pio, struct bus *mmio)
{
	const struct {
		struct bus *bus;
		uint64_t base, len;
		bus_io_fn fn;
		const char *name;
	} r[] = {
		{ pio, 0xcf8, 4, cf8_io, "pci-cf8" },
		{ pio, 0xcfc, 4, cfc_io, "pci-cfc" },
		{ mmio, b->ecam_base, ECAM_SIZE, ecam_io, "pci-ecam" },
		{ mmio, b->mem32_base, b->mem32_size, mem32_io, "pci-mem32" },
		{ mmio, b->mem64_base, b->mem64_size, mem64_io, "pci-mem64" },
	};
	/* bus.c has no unregister: a failure here ends VM set-up, nothing to unwind. */
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		if (!r[i].len)
			continue;   /* an empty window */
		int ret = bus_register(r[i].bus, r[i].base, r[i].len, r[i].fn, b, r[i].name);
		if (ret)
			return ret;
	}
	return 0;
}

static int bars_check(const struct pci_dev *d)
{
	for (int i = 0; i < PCI_MAX_BARS; i++) {
		const struct pci_bar *bar = &d->bars[i];
		if (!bar->size)
			continue;
		if (bar->size < 16 || (bar->size & (bar->size - 1)))
			return -EINVAL;
		if (bar->is64 && (i + 1 >= PCI_MAX_BARS || d->bars[i + 1].size))
			return -EINVAL;
		if (!bar->is64 && bar->size > FOUR_GIB / 2)
			return -EINVAL;
		if (i > 0 && d->bars[i - 1].size && d->bars[i - 1].is64)
			return -EINVAL;   /* this slot is the previous BAR's high half */
	}
	return 0;
}

/* Natural alignment from `*next`; 32-bit BARs must also end below 4 GiB. */
static int window_alloc(uint64_t base, uint64_t wsize, uint64_t *next, uint64_t size,
			bool is64, uint64_t *addr)
{
	uint64_t start = *next;
	if (start < base || start - base > wsize)
		start = base;   /* first use, or the caller left `next` unset */
	uint64_t a = (start + size - 1) & ~(size - 1);
	if (a < start || !range_inside(a, size, base, wsize) || (!is64 && a + size > FOUR_GIB))
		return -ENOSPC;
	*addr = a;
	*next = a + size;
	return 0;
}

/* All BARs or none: the windows' cursors move only when every BAR fits. */
static int bars_alloc(struct pci_bus *b, const struct pci_dev *d, uint64_t addr[PCI_MAX_BARS])
{
	uint64_t next32 = b->mem32_next, next64 = b->mem64_next;
	for (int i = 0; i < PCI_MAX_BARS; i++) {
		const struct pci_bar *bar = &d->bars[i];
		int ret;
		addr[i] = 0;
		if (!bar->size)
			continue;
		if (bar->is64 && b->mem64_size)
			ret = window_alloc(b->mem64_base, b->mem64_size, &next64, bar->size, true,
					   &addr[i]);
		else
			ret = window_alloc(b->mem32_base, b->mem32_size, &next32, bar->size,
					   bar->is64, &addr[i]);
		if (ret)
			return ret;
	}
	b->mem32_next = next32;
	b->mem64_next = next64;
	return 0;
}

static void bar_setup(struct pci_dev *d, int i, uint64_t addr)
{
	struct pci_bar *bar = &d->bars[i];
	uint64_t mask = ~(bar->size - 1);
	uint32_t flags = (bar->is64 ? BAR_MEM64 : 0) | (bar->prefetch ? BAR_PREFETCH : 0);
	bar->addr = addr;
	/* Writable bits are the address bits above the size: all-ones reads back ~(size-1). */
	le_put(d->cfg, bar_reg(i), ((uint32_t)addr & (uint32_t)mask) | flags, 4);
	le_put(d->wmask, bar_reg(i), (uint32_t)mask & ~(uint32_t)BAR_FLAGS, 4);
	if (bar->is64) {
		le_put(d->cfg, bar_reg(i + 1), (uint32_t)(addr >> 32), 4);
		le_put(d->wmask, bar_reg(i + 1), (uint32_t)(mask >> 32), 4);
	}
}

static void header_setup(struct pci_bus *b, struct pci_dev *d, int slot,
			 const uint64_t addr[PCI_MAX_BARS])
{
	d->bus = b;
	d->slot = slot;
	d->intx_gsi = (int)(b->intx_gsi_base + (uint32_t)slot % 4);
	d->intx_level = false;

	memset(d->wmask, 0, CFG_HEADER_END);   /* the header is ours: IDs stay read-only */
	le_put(d->wmask, CFG_COMMAND, CMD_MEMORY | CMD_MASTER | CMD_INTX_DISABLE, 2);
	d->wmask[CFG_INT_LINE] = 0xff;
	le_put(d->cfg, CFG_COMMAND, 0, 2);
	uint16_t status = (uint16_t)cfg_get(d, CFG_STATUS, 2) & ~(STATUS_INTX | STATUS_CAP_LIST);
	le_put(d->cfg, CFG_STATUS, status | (d->cfg[CFG_CAP_PTR] ? STATUS_CAP_LIST : 0), 2);
	d->cfg[CFG_HEADER_TYPE] = 0;
	d->cfg[CFG_INT_LINE] = (uint8_t)d->intx_gsi;
	d->cfg[CFG_INT_PIN] = 1;   /* INTA */
	memset(d->cfg + CFG_BAR0, 0, 4 * PCI_MAX_BARS);
	for (int i = 0; i < PCI_MAX_BARS; i++)
		if (d->bars[i].size)
			bar_setup(d, i, addr[i]);
}

int pci_add(struct pci_bus *b, struct pci_dev *d)
{
	uint64_t addr[PCI_MAX_BARS];
	int slot, ret;

	if (d->bus)
		return -EEXIST;
	ret = bars_check(d);
	if (ret)
		return ret;
	pthread_mutex_lock(&b->lock);
	for (slot = 1; slot < PCI_MAX_DEVS && b->devs[slot]; slot++)
		;
	if (slot == PCI_MAX_DEVS) {
		ret = -ENOSPC;
		goto out;
	}
	ret = bars_alloc(b, d, addr);
	if (ret)
		goto out;
	header_setup(b, d, slot, addr);
	b->devs[slot] = d;
	ret = slot;
out:
	pthread_mutex_unlock(&b->lock);
	return ret;
}
