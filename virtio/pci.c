/* virtio-pci (modern only).  BAR 0 holds, at fixed offsets, the common configuration,
 * the ISR byte, the device configuration, one notify address per queue and the MSI-X
 * table and PBA; shared-memory regions get BAR 2.  Queue notifications are ioeventfds on
 * the notify addresses (moved with the BAR); interrupts are MSI-X vectors, or INTx with
 * the ISR when the driver does not enable MSI-X. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci.h"
#include "virtio/core.h"
#include "virtio/pci.h"
#include "vmm/vm.h"

#define VIRTIO_PCI_VENDOR     0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040

#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR    3
#define CAP_DEVICE 4
#define CAP_SHM    8

#define BAR0_SIZE      0x8000
#define COMMON_OFF     0x0000
#define COMMON_SIZE    0x40
#define ISR_OFF        0x1000
#define DEVICE_OFF     0x2000
#define DEVICE_SIZE    0x1000
#define NOTIFY_OFF     0x3000
#define NOTIFY_MULT    4
#define MSIX_TABLE_OFF 0x4000
#define MSIX_PBA_OFF   0x5000
#define SHM_BAR        2

/* struct virtio_pci_common_cfg offsets */
#define CC_DFSELECT   0x00
#define CC_DF         0x04
#define CC_GFSELECT   0x08
#define CC_GF         0x0c
#define CC_MSIX       0x10
#define CC_NUMQ       0x12
#define CC_STATUS     0x14
#define CC_CFGGEN     0x15
#define CC_Q_SELECT   0x16
#define CC_Q_SIZE     0x18
#define CC_Q_MSIX     0x1a
#define CC_Q_ENABLE   0x1c
#define CC_Q_NOFF     0x1e
#define CC_Q_DESCLO   0x20
#define CC_Q_DESCHI   0x24
#define CC_Q_AVAILLO  0x28
#define CC_Q_AVAILHI  0x2c
#define CC_Q_USEDLO   0x30
#define CC_Q_USEDHI   0x34
#define CC_Q_NDATA    0x38

struct __attribute__((packed)) virtio_pci_cap {
	uint8_t vndr, next, len, type, bar, id, pad[2];
	uint32_t offset, length;
};

struct virtio_pci {
	struct pci_dev pci;
	struct virtio_dev *d;
	struct vm *vm;
	uint32_t dfselect, gfselect;
	uint16_t qsel;
	uint8_t isr;
	int nvec;
	bool ioeventfds;
	uint64_t shm_off[VIRTIO_MAX_SHM];   /* each region's offset in BAR 2 */
};

static void vpci_signal(struct virtio_dev *d, enum virtio_irq kind, uint16_t q)
{
	struct virtio_pci *p = d->transport;
	if (pci_msix_enabled(&p->pci)) {
		uint16_t vec = kind == VIRTIO_IRQ_QUEUE ? d->q[q].msix_vector : d->config_vector;
		if (vec != VIRTIO_NO_VECTOR)
			pci_msix_notify(&p->pci, vec);
		return;
	}
	__atomic_or_fetch(&p->isr, kind == VIRTIO_IRQ_QUEUE ? 1 : 2, __ATOMIC_RELEASE);
	pci_intx(&p->pci, 1);
}

static void vpci_reset(struct virtio_dev *d)
{
	struct virtio_pci *p = d->transport;
	__atomic_store_n(&p->isr, 0, __ATOMIC_RELEASE);
	pci_intx(&p->pci, 0);
}

static const struct virtio_transport_ops vpci_ops = { .signal = vpci_signal, .reset = vpci_reset };

/* Bind (or unbind) each queue's kick eventfd to its notify address in BAR 0. */
static void notify_bind(struct virtio_pci *p, uint64_t bar_addr, bool assign)
{
	if (!p->vm || !bar_addr)
		return;
	for (int q = 0; q < p->d->nqueues; q++) {
		uint64_t a = bar_addr + NOTIFY_OFF + (uint64_t)q * NOTIFY_MULT;
		/* The guest moves BAR 0 at will: rate-limited. */
		if (vm_ioeventfd(p->vm, a, 2, false, -1, p->d->q[q].kick_fd, assign) && assign)
			virtio_log(p->d, "no ioeventfd for queue %d: notifications take the slow path",
				   q);
	}
}

static void vpci_bar_moved(struct pci_dev *pd, int bar, uint64_t old_addr, uint64_t new_addr)
{
	struct virtio_pci *p = pd->priv;
	if (bar == SHM_BAR) {
		/* The regions' memory slots move with the BAR. */
		for (int i = 0; i < p->d->nshm; i++)
			(void)virtio_shm_place(p->d, i, new_addr + p->shm_off[i]);  /* logs */
		return;
	}
	if (bar != 0)
		return;
	notify_bind(p, old_addr, false);
	notify_bind(p, new_addr, true);
}

static const struct pci_dev_ops vpci_dev_ops = { .bar_moved = vpci_bar_moved };

static uint16_t vector_ok(struct virtio_pci *p, uint16_t v)
{
	return v < p->nvec ? v : VIRTIO_NO_VECTOR;
}

static uint32_t common_read(struct virtio_pci *p, uint32_t off)
{
	struct virtio_dev *d = p->d;
	struct virtio_queue *q = virtio_queue_get(d, p->qsel);
	switch (off) {
	case CC_DFSELECT: return p->dfselect;
	case CC_DF: return virtio_features_read(d, p->dfselect);
	case CC_GFSELECT: return p->gfselect;
	case CC_GF: return virtio_driver_features_read(d, p->gfselect);
	case CC_MSIX: return d->config_vector;
	case CC_NUMQ: return d->nqueues;
	case CC_STATUS: return virtio_status_read(d);
	case CC_CFGGEN: return __atomic_load_n(&d->config_generation, __ATOMIC_ACQUIRE);
	case CC_Q_SELECT: return p->qsel;
	/* A queue that does not exist reads size 0: how the driver learns the count too. */
	case CC_Q_SIZE: return q ? q->size : 0;
	case CC_Q_MSIX: return q ? q->msix_vector : VIRTIO_NO_VECTOR;
	case CC_Q_ENABLE: return q ? q->enabled : 0;
	case CC_Q_NOFF: return q ? p->qsel : 0;
	case CC_Q_DESCLO: return q ? (uint32_t)q->desc : 0;
	case CC_Q_DESCHI: return q ? (uint32_t)(q->desc >> 32) : 0;
	case CC_Q_AVAILLO: return q ? (uint32_t)q->driver : 0;
	case CC_Q_AVAILHI: return q ? (uint32_t)(q->driver >> 32) : 0;
	case CC_Q_USEDLO: return q ? (uint32_t)q->device : 0;
	case CC_Q_USEDHI: return q ? (uint32_t)(q->device >> 32) : 0;
	case CC_Q_NDATA: return q ? p->qsel : 0;
	}
	return 0;
}

static void set_half(uint64_t *v, bool hi, uint32_t x)
{
	*v = hi ? (*v & 0xffffffffULL) | ((uint64_t)x << 32) : (*v & ~0xffffffffULL) | x;
}

static void common_write(struct virtio_pci *p, uint32_t off, uint32_t v)
{
	struct virtio_dev *d = p->d;
	switch (off) {
	case CC_DFSELECT: p->dfselect = v; return;
	case CC_GFSELECT: p->gfselect = v; return;
	case CC_GF: virtio_driver_features_write(d, p->gfselect, v); return;
	case CC_MSIX:
		pthread_mutex_lock(&d->lock);
		d->config_vector = vector_ok(p, v);
		pthread_mutex_unlock(&d->lock);
		return;
	case CC_STATUS:
		virtio_status_write(d, v);
		return;
	case CC_Q_SELECT: p->qsel = v; return;
	}
	pthread_mutex_lock(&d->lock);
	struct virtio_queue *q = virtio_queue_cfg(d, p->qsel);
	if (q) {
		switch (off) {
		case CC_Q_SIZE: q->size = v <= q->max_size ? v : 0; break;
		case CC_Q_MSIX: q->msix_vector = vector_ok(p, v); break;
		case CC_Q_ENABLE: q->enabled = v == 1; break;
		case CC_Q_DESCLO: case CC_Q_DESCHI: set_half(&q->desc, off == CC_Q_DESCHI, v); break;
		case CC_Q_AVAILLO: case CC_Q_AVAILHI: set_half(&q->driver, off == CC_Q_AVAILHI, v); break;
		case CC_Q_USEDLO: case CC_Q_USEDHI: set_half(&q->device, off == CC_Q_USEDHI, v); break;
		}
	}
	pthread_mutex_unlock(&d->lock);
}

/* Width of the common-config field at `off` (0: no field starts there). */
static unsigned common_width(uint32_t off)
{
	if (off >= CC_Q_DESCLO && off < CC_Q_NDATA)
		return 4;   /* the 64-bit addresses, taken as 32-bit halves */
	switch (off) {
	case CC_DFSELECT: case CC_DF: case CC_GFSELECT: case CC_GF: return 4;
	case CC_STATUS: case CC_CFGGEN: return 1;
	case CC_MSIX: case CC_NUMQ: case CC_Q_SELECT: case CC_Q_SIZE: case CC_Q_MSIX:
	case CC_Q_ENABLE: case CC_Q_NOFF: case CC_Q_NDATA: return 2;
	}
	return 0;
}

static void common_io(struct virtio_pci *p, uint32_t off, void *data, unsigned len, bool is_write)
{
	unsigned w = common_width(off);
	uint32_t v = 0;
	/* 8-byte accesses to a 64-bit address are split into its halves. */
	if (len == 8 && w == 4 && !(off & 4) && off >= CC_Q_DESCLO) {
		common_io(p, off, data, 4, is_write);
		common_io(p, off + 4, (uint8_t *)data + 4, 4, is_write);
		return;
	}
	if (w == 0 || len != w) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	if (is_write) {
		memcpy(&v, data, len);
		common_write(p, off, v);
	} else {
		v = common_read(p, off);
		memcpy(data, &v, len);
	}
}

static void bar0_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct virtio_pci *p = opaque;
	if (off < COMMON_SIZE) {
		common_io(p, off, data, len, is_write);
	} else if (off == ISR_OFF && len == 1 && !is_write) {
		/* Reading the ISR acknowledges it and lowers INTx (§4.1.4.5).  A worker may
		 * set the ISR and raise the line between our exchange and our lowering; the
		 * re-check puts the line back up so that interrupt is not lost. */
		*(uint8_t *)data = __atomic_exchange_n(&p->isr, 0, __ATOMIC_ACQ_REL);
		pci_intx(&p->pci, 0);
		if (__atomic_load_n(&p->isr, __ATOMIC_ACQUIRE))
			pci_intx(&p->pci, 1);
	} else if (off >= DEVICE_OFF && off < DEVICE_OFF + DEVICE_SIZE) {
		virtio_config_rw(p->d, off - DEVICE_OFF, data, len, is_write);
	} else if (off >= NOTIFY_OFF && off < NOTIFY_OFF + (uint64_t)p->d->nqueues * NOTIFY_MULT) {
		/* Only reached without an ioeventfd. */
		if (is_write)
			virtio_queue_kick(p->d, (off - NOTIFY_OFF) / NOTIFY_MULT);
		else
			memset(data, 0, len);
	} else if (!is_write) {
		memset(data, 0, len);
	}
}

static int add_cap(struct pci_dev *pd, uint8_t type, uint8_t bar, uint8_t id, uint64_t off,
		   uint64_t len, const void *extra, uint8_t extra_len)
{
	uint8_t buf[32] = { 0 };
	struct virtio_pci_cap c = {
		.vndr = 0x09, .len = sizeof(c) + extra_len, .type = type, .bar = bar, .id = id,
		.offset = (uint32_t)off, .length = (uint32_t)len,
	};
	memcpy(buf, &c, sizeof(c));
	if (extra_len)
		memcpy(buf + sizeof(c), extra, extra_len);
	return pci_add_cap(pd, buf, c.len) < 0 ? -ENOSPC : 0;
}

static void cfg16(uint8_t *cfg, int off, uint16_t v) { memcpy(cfg + off, &v, 2); }

int virtio_pci_attach(struct vm *vm, struct pci_bus *bus, struct virtio_dev *d)
{
	struct virtio_pci *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->d = d;
	p->vm = vm;
	p->nvec = d->nqueues + 1;           /* one per queue and one for config changes */
	struct pci_dev *pd = &p->pci;
	pd->priv = p;
	pd->ops = &vpci_dev_ops;
	cfg16(pd->cfg, 0x00, VIRTIO_PCI_VENDOR);
	cfg16(pd->cfg, 0x02, VIRTIO_PCI_DEVICE_BASE + d->ops->device_id);
	pd->cfg[0x08] = 1;                  /* revision 1: a modern-only device */
	pd->cfg[0x0b] = 0xff;               /* class: unclassified (0xff0000) */
	cfg16(pd->cfg, 0x2c, VIRTIO_PCI_VENDOR);
	cfg16(pd->cfg, 0x2e, VIRTIO_PCI_DEVICE_BASE + d->ops->device_id);
	pd->bars[0] = (struct pci_bar){ .size = BAR0_SIZE, .is64 = true, .fn = bar0_io, .opaque = p };

	uint32_t mult = NOTIFY_MULT;
	int ret = add_cap(pd, CAP_COMMON, 0, 0, COMMON_OFF, COMMON_SIZE, NULL, 0);
	if (!ret)
		ret = add_cap(pd, CAP_NOTIFY, 0, 0, NOTIFY_OFF, (uint64_t)d->nqueues * NOTIFY_MULT,
			      &mult, sizeof(mult));
	if (!ret)
		ret = add_cap(pd, CAP_ISR, 0, 0, ISR_OFF, 1, NULL, 0);
	if (!ret && d->ops->config_size)
		ret = add_cap(pd, CAP_DEVICE, 0, 0, DEVICE_OFF, d->ops->config_size, NULL, 0);
	uint64_t *shm_off = p->shm_off;
	if (!ret && d->nshm) {
		/* All regions share BAR 2, one after another, each aligned to its length rounded
		 * up to a power of two (a DAX window is any multiple of 2 MiB). */
		uint64_t off = 0, total = 0;
		for (int i = 0; i < d->nshm; i++) {
			uint64_t len = d->shm[i].w.size, align = 1;
			while (align < len)
				align <<= 1;
			off = (total + align - 1) & ~(align - 1);
			shm_off[i] = off;
			uint32_t hi[2] = { (uint32_t)(off >> 32), (uint32_t)(len >> 32) };
			ret = ret ? ret : add_cap(pd, CAP_SHM, SHM_BAR, d->shm[i].id, off, len, hi, sizeof(hi));
			total = off + len;
		}
		uint64_t size = 1;
		while (size < total)
			size <<= 1;
		pd->bars[SHM_BAR] = (struct pci_bar){ .size = size, .is64 = true, .prefetch = true };
	}
	if (!ret)
		ret = pci_msix_init(pd, p->nvec, 0, MSIX_TABLE_OFF, MSIX_PBA_OFF);
	if (ret)
		goto fail;
	d->transport = p;
	d->tops = &vpci_ops;
	ret = pci_add(bus, pd);
	if (ret < 0)
		goto fail;
	/* Shared-memory regions live where their BAR landed (and follow it, bar_moved). */
	for (int i = 0; i < d->nshm; i++) {
		ret = virtio_shm_place(d, i, pd->bars[SHM_BAR].addr + shm_off[i]);
		if (ret)
			return ret;
	}
	notify_bind(p, pd->bars[0].addr, true);
	return 0;
fail:
	d->transport = NULL;
	d->tops = NULL;
	free(p);
	return ret;
}
