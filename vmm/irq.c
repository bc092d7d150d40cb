/* KVM's GSI routing table and the irqfds behind MSI.  KVM_SET_GSI_ROUTING replaces the
 * whole table, so the router keeps its own copy (default irqchip pins first, then one MSI
 * entry per routed GSI) and re-issues all of it on every change. */
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/pci.h"
#include "vmm/irq.h"
#include "vmm/vm.h"

/* MSI GSIs are handed out once and never freed: a few per device is plenty. */
#define IRQ_MAX_GSI 1024
/* GSI 0-23 to the IOAPIC, and 0-15 except the cascade (2) to the PICs as well. */
#define IRQ_DEFAULT_ROUTES (IRQ_IOAPIC_PINS + 15)

struct irq_router {
	pthread_mutex_t lock;          /* the table and next_gsi; msi_fd slots are set once */
	struct kvm_irq_routing *table; /* table->nr in use, room for `cap` entries */
	unsigned cap;
	int next_gsi, end_gsi;         /* MSI GSIs: [IRQ_IOAPIC_PINS, next_gsi) are allocated */
	int *msi_fd;                   /* irqfd of GSI IRQ_IOAPIC_PINS + i, or -1 */
};

static void irq_route_chip(struct kvm_irq_routing_entry *e, int gsi, int chip, int pin)
{
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

static void irq_default_routes(struct kvm_irq_routing *t)
{
	unsigned n = 0;
	for (int gsi = 0; gsi < IRQ_IOAPIC_PINS; gsi++)
		irq_route_chip(&t->entries[n++], gsi, KVM_IRQCHIP_IOAPIC, gsi);
	/* PIC pin 2 on the master is the cascade from the slave: nothing may drive it. */
	for (int gsi = 0; gsi < 16; gsi++)
		if (gsi != 2)
			irq_route_chip(&t->entries[n++], gsi,
				       gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
				       gsi % 8);
	t->nr = n;
}

static int irq_commit(struct vm *vm, struct irq_router *r)
{
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, r->table) < 0)
		return -errno;
	return 0;
}

int irq_init(struct vm *vm)
{
	struct irq_router *r;
	int ret;

	/* The value is KVM's limit on routing entries, and GSIs must stay below it. */
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	if (max < IRQ_DEFAULT_ROUTES) {
		vm_log("this KVM lacks KVM_CAP_IRQ_ROUTING");
		return -ENOTSUP;
	}
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) <= 0) {
		vm_log("this KVM lacks KVM_CAP_IRQFD");
		return -ENOTSUP;
	}
	int end_gsi = max < IRQ_MAX_GSI ? max : IRQ_MAX_GSI;
	int nmsi = end_gsi - IRQ_IOAPIC_PINS;
	if (nmsi > max - IRQ_DEFAULT_ROUTES)
		nmsi = max - IRQ_DEFAULT_ROUTES;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cap = IRQ_DEFAULT_ROUTES + nmsi;
	r->end_gsi = IRQ_IOAPIC_PINS + nmsi;
	r->next_gsi = IRQ_IOAPIC_PINS;
	ret = -ENOMEM;
	r->table = calloc(1, sizeof(*r->table) + r->cap * sizeof(r->table->entries[0]));
	if (!r->table)
		goto err_router;
	r->msi_fd = malloc((nmsi ? nmsi : 1) * sizeof(int));
	if (!r->msi_fd)
		goto err_table;
	for (int i = 0; i < nmsi; i++)
		r->msi_fd[i] = -1;
	ret = -pthread_mutex_init(&r->lock, NULL);
	if (ret)
		goto err_fds;

	irq_default_routes(r->table);
	ret = irq_commit(vm, r);
	if (ret) {
		vm_log("KVM_SET_GSI_ROUTING failed: %s", strerror(-ret));
		goto err_lock;
	}
	vm->irq = r;
	return 0;

err_lock:
	pthread_mutex_destroy(&r->lock);
err_fds:
	free(r->msi_fd);
err_table:
	free(r->table);
err_router:
	free(r);
	return ret;
}

int irq_irqfd(struct vm *vm, int gsi)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct kvm_irqfd req = { .fd = (uint32_t)fd, .gsi = (uint32_t)gsi };
	if (ioctl(vm->vm_fd, KVM_IRQFD, &req) < 0) {
		int ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int irq_msi_alloc(struct vm *vm)
{
	struct irq_router *r = vm->irq;
	int ret;

	pthread_mutex_lock(&r->lock);
	if (r->next_gsi >= r->end_gsi) {
		ret = -ENOSPC;
		goto out;
	}
	/* Until irq_msi_route gives the GSI an entry, a write to its irqfd injects nothing. */
	ret = irq_irqfd(vm, r->next_gsi);
	if (ret < 0)
		goto out;
	__atomic_store_n(&r->msi_fd[r->next_gsi - IRQ_IOAPIC_PINS], ret, __ATOMIC_RELEASE);
	ret = r->next_gsi++;
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static struct kvm_irq_routing_entry *irq_msi_entry(struct irq_router *r, int gsi)
{
	for (unsigned i = IRQ_DEFAULT_ROUTES; i < r->table->nr; i++)
		if (r->table->entries[i].gsi == (uint32_t)gsi)
			return &r->table->entries[i];
	return NULL;
}

int irq_msi_route(struct vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	struct irq_router *r = vm->irq;
	struct kvm_irq_routing_entry *e, saved;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (gsi < IRQ_IOAPIC_PINS || gsi >= r->next_gsi) {
		ret = -EINVAL;
		goto out;
	}
	e = irq_msi_entry(r, gsi);
	bool added = !e;
	if (added) {
		/* cap counts one entry per allocatable GSI, so there is always room. */
		e = &r->table->entries[r->table->nr++];
	}
	saved = *e;
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	e->u.msi.address_lo = (uint32_t)addr;
	e->u.msi.address_hi = (uint32_t)(addr >> 32);
	e->u.msi.data = data;
	ret = irq_commit(vm, r);
	if (ret) {
		VM_LOG_LIMITED("KVM_SET_GSI_ROUTING (MSI GSI %d) failed: %s", gsi, strerror(-ret));
		/* KVM kept the old table: make ours match it again. */
		if (added)
			r->table->nr--;
		else
			*e = saved;
	}
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void irq_msi_fire(struct vm *vm, int gsi)
{
	struct irq_router *r = vm->irq;
	if (gsi < IRQ_IOAPIC_PINS || gsi >= r->end_gsi)
		return;
	int fd = __atomic_load_n(&r->msi_fd[gsi - IRQ_IOAPIC_PINS], __ATOMIC_ACQUIRE);
	if (fd < 0)
		return;
	uint64_t one = 1;
	/* EAGAIN: the counter is saturated, so an injection is already pending; MSIs are
	 * edges, and one pending edge is all the guest can see anyway. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		VM_LOG_LIMITED("irqfd write for GSI %d failed: %s", gsi, strerror(errno));
}

static int ops_msi_alloc(void *ctx)
{
	return irq_msi_alloc(ctx);
}

static int ops_msi_route(void *ctx, int gsi, uint64_t addr, uint32_t data)
{
	return irq_msi_route(ctx, gsi, addr, data);
}

static void ops_msi_fire(void *ctx, int gsi)
{
	irq_msi_fire(ctx, gsi);
}

static void ops_intx_set(void *ctx, int gsi, int level)
{
	vm_irq_line(ctx, gsi, level);
}

const struct pci_irq_ops irq_pci_ops = {
	.msi_alloc = ops_msi_alloc,
	.msi_route = ops_msi_route,
	.msi_fire = ops_msi_fire,
	.intx_set = ops_intx_set,
};
