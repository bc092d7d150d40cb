/* virtio-mmio, version 2.  Registers are 32 bits wide and accessed as such (§4.2.2.2);
 * the device config space from 0x100 takes any width.  Notifications arrive through an
 * ioeventfd per queue (datamatch on the queue index), interrupts leave through an irqfd
 * on an edge-triggered GSI, which the ACPI _CRS describes as such. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtio/core.h"
#include "virtio/mmio.h"
#include "vmm/irq.h"
#include "vmm/vm.h"

#define MMIO_MAGIC          0x000
#define MMIO_VERSION        0x004
#define MMIO_DEVICE_ID      0x008
#define MMIO_VENDOR_ID      0x00c
#define MMIO_DEV_FEATURES   0x010
#define MMIO_DEV_FEAT_SEL   0x014
#define MMIO_DRV_FEATURES   0x020
#define MMIO_DRV_FEAT_SEL   0x024
#define MMIO_QUEUE_SEL      0x030
#define MMIO_QUEUE_NUM_MAX  0x034
#define MMIO_QUEUE_NUM      0x038
#define MMIO_QUEUE_READY    0x044
#define MMIO_QUEUE_NOTIFY   0x050
#define MMIO_INT_STATUS     0x060
#define MMIO_INT_ACK        0x064
#define MMIO_STATUS         0x070
#define MMIO_QUEUE_DESC_LO  0x080
#define MMIO_QUEUE_DESC_HI  0x084
#define MMIO_QUEUE_DRV_LO   0x090
#define MMIO_QUEUE_DRV_HI   0x094
#define MMIO_QUEUE_DEV_LO   0x0a0
#define MMIO_QUEUE_DEV_HI   0x0a4
#define MMIO_SHM_SEL        0x0ac
#define MMIO_SHM_LEN_LO     0x0b0
#define MMIO_SHM_LEN_HI     0x0b4
#define MMIO_SHM_BASE_LO    0x0b8
#define MMIO_SHM_BASE_HI    0x0bc
#define MMIO_CONFIG_GEN     0x0fc
#define MMIO_CONFIG         0x100

#define MMIO_MAGIC_VALUE    0x74726976   /* "virt" */
#define MMIO_VENDOR         0x4d564d4d   /* "MMVM" */
#define INT_USED_BUFFER     1
#define INT_CONFIG_CHANGE   2

struct virtio_mmio {
	uint64_t base;
	int irq_fd;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel, shm_sel;
	uint32_t isr;                /* interrupt status, atomic: workers set, vCPUs ack */
};

static void mmio_signal(struct virtio_dev *d, enum virtio_irq kind, uint16_t q)
{
	struct virtio_mmio *m = d->transport;
	uint64_t one = 1;
	__atomic_or_fetch(&m->isr, kind == VIRTIO_IRQ_QUEUE ? INT_USED_BUFFER : INT_CONFIG_CHANGE,
			  __ATOMIC_RELEASE);
	if (write(m->irq_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: an injection is already pending, which is all an edge needs. */
	}
}

static void mmio_reset(struct virtio_dev *d)
{
	struct virtio_mmio *m = d->transport;
	__atomic_store_n(&m->isr, 0, __ATOMIC_RELEASE);
}

static const struct virtio_transport_ops mmio_ops = { .signal = mmio_signal, .reset = mmio_reset };

static void set_lo(uint64_t *v, uint32_t lo) { *v = (*v & ~0xffffffffULL) | lo; }
static void set_hi(uint64_t *v, uint32_t hi) { *v = (*v & 0xffffffffULL) | ((uint64_t)hi << 32); }

static uint32_t reg_read(struct virtio_dev *d, struct virtio_mmio *m, uint64_t off)
{
	struct virtio_queue *q = virtio_queue_get(d, m->queue_sel);
	const struct virtio_shm *shm = NULL;
	for (int i = 0; i < d->nshm; i++)
		if (d->shm[i].id == m->shm_sel)
			shm = &d->shm[i];

	switch (off) {
	case MMIO_MAGIC: return MMIO_MAGIC_VALUE;
	case MMIO_VERSION: return 2;
	case MMIO_DEVICE_ID: return d->ops->device_id;
	case MMIO_VENDOR_ID: return MMIO_VENDOR;
	case MMIO_DEV_FEATURES: return virtio_features_read(d, m->dev_feat_sel);
	case MMIO_QUEUE_NUM_MAX: return q ? q->max_size : 0;
	case MMIO_QUEUE_READY: return q ? q->enabled : 0;
	case MMIO_INT_STATUS: return __atomic_load_n(&m->isr, __ATOMIC_ACQUIRE);
	case MMIO_STATUS: return virtio_status_read(d);
	/* "No such region": all ones in both halves of the length (§4.2.2). */
	case MMIO_SHM_LEN_LO: return shm ? (uint32_t)shm->w.size : 0xffffffff;
	case MMIO_SHM_LEN_HI: return shm ? (uint32_t)(shm->w.size >> 32) : 0xffffffff;
	case MMIO_SHM_BASE_LO: return shm ? (uint32_t)shm->w.gpa : 0xffffffff;
	case MMIO_SHM_BASE_HI: return shm ? (uint32_t)(shm->w.gpa >> 32) : 0xffffffff;
	case MMIO_CONFIG_GEN: return __atomic_load_n(&d->config_generation, __ATOMIC_ACQUIRE);
	}
	return 0;  /* write-only or reserved registers read as zero */
}

static void reg_write(struct virtio_dev *d, struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	switch (off) {
	case MMIO_DEV_FEAT_SEL: m->dev_feat_sel = v; return;
	case MMIO_DRV_FEAT_SEL: m->drv_feat_sel = v; return;
	case MMIO_DRV_FEATURES: virtio_driver_features_write(d, m->drv_feat_sel, v); return;
	case MMIO_QUEUE_SEL: m->queue_sel = v; return;
	case MMIO_SHM_SEL: m->shm_sel = v; return;
	case MMIO_QUEUE_NOTIFY: virtio_queue_kick(d, v); return;
	case MMIO_INT_ACK: __atomic_and_fetch(&m->isr, ~v, __ATOMIC_ACQ_REL); return;
	case MMIO_STATUS: virtio_status_write(d, v); return;
	}

	/* Queue registers: only in the configuration window, for a queue that exists. */
	pthread_mutex_lock(&d->lock);
	struct virtio_queue *q = virtio_queue_cfg(d, m->queue_sel);
	if (q) {
		switch (off) {
		case MMIO_QUEUE_NUM:
			/* Kept as written; validated (power of two <= max) at DRIVER_OK. */
			q->size = v <= q->max_size ? v : 0;
			break;
		case MMIO_QUEUE_READY: q->enabled = v == 1; break;
		case MMIO_QUEUE_DESC_LO: set_lo(&q->desc, v); break;
		case MMIO_QUEUE_DESC_HI: set_hi(&q->desc, v); break;
		case MMIO_QUEUE_DRV_LO: set_lo(&q->driver, v); break;
		case MMIO_QUEUE_DRV_HI: set_hi(&q->driver, v); break;
		case MMIO_QUEUE_DEV_LO: set_lo(&q->device, v); break;
		case MMIO_QUEUE_DEV_HI: set_hi(&q->device, v); break;
		}
	}
	pthread_mutex_unlock(&d->lock);
}

void virtio_mmio_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct virtio_dev *d = opaque;
	struct virtio_mmio *m = d->transport;

	if (off >= MMIO_CONFIG) {
		virtio_config_rw(d, off - MMIO_CONFIG, data, len, is_write);
		return;
	}
	/* Registers: aligned 32-bit accesses only; anything else is dropped / reads zero. */
	if (len != 4 || (off & 3)) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	uint32_t v;
	if (is_write) {
		memcpy(&v, data, 4);
		reg_write(d, m, off, v);
	} else {
		v = reg_read(d, m, off);
		memcpy(data, &v, 4);
	}
}

int virtio_mmio_setup(struct virtio_dev *d, uint64_t base, int irq_fd)
{
	struct virtio_mmio *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->base = base;
	m->irq_fd = irq_fd;
	d->transport = m;
	d->tops = &mmio_ops;
	return 0;
}

int virtio_mmio_attach(struct vm *vm, struct virtio_dev *d, uint64_t base, int gsi)
{
	int irq_fd = irq_irqfd(vm, gsi);
	if (irq_fd < 0)
		return irq_fd;
	int ret = virtio_mmio_setup(d, base, irq_fd);
	if (ret)
		return ret;
	for (int i = 0; i < d->nqueues; i++) {
		ret = vm_ioeventfd(vm, base + MMIO_QUEUE_NOTIFY, 4, false, i, d->q[i].kick_fd, true);
		if (ret)
			return ret;
	}
	return bus_register(&vm->mmio, base, VIRTIO_MMIO_SIZE, virtio_mmio_io, d, d->ops->name);
}
