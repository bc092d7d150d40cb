/* Machine assembly: where devices sit in the guest's address space, which interrupts they
 * use, and the ACPI description that tells an unmodified kernel about them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci.h"
#include "virtio/core.h"
#include "virtio/mmio.h"
#include "virtio/pci.h"
#include "vmm/acpi.h"
#include "vmm/boot.h"
#include "vmm/irq.h"
#include "vmm/machine.h"
#include "vmm/vm.h"

/* Edge-triggered GSIs for virtio-mmio devices: the IOAPIC's PCI-free upper pins first,
 * then ISA IRQs nothing else uses (0-4 timer/keyboard/cascade/COM, 8 RTC, 9 SCI, 13 FPU). */
static const int mmio_gsi[MACHINE_MAX_VIRTIO] = { 16, 17, 18, 19, 5, 6, 7, 10, 11, 12, 14, 15 };

static uint64_t mem64_base(const struct vm *vm)
{
	uint64_t end = vm->mem.r[vm->mem.n - 1].gpa + vm->mem.r[vm->mem.n - 1].size;
	uint64_t base = (end + (1ULL << 30) - 1) & ~((1ULL << 30) - 1);
	return base > MACHINE_PCI_MEM64_MIN ? base : MACHINE_PCI_MEM64_MIN;
}

int machine_init(struct machine *m, struct vm *vm, enum machine_transport t)
{
	memset(m, 0, sizeof(*m));
	m->vm = vm;
	m->transport = t;
	int ret = irq_init(vm);
	if (ret) {
		vm_log("cannot set up interrupt routing: %s", strerror(-ret));
		return ret;
	}
	/* The host bridge exists with either transport: a PC without PCI config space makes
	 * Linux log a fatal-sounding error, and an empty bus costs nothing. */
	m->pci = calloc(1, sizeof(*m->pci));
	if (!m->pci)
		return -ENOMEM;
	ret = pci_bus_init(m->pci, &irq_pci_ops, vm);
	if (ret)
		return ret;
	m->pci->mem32_base = m->pci->mem32_next = MACHINE_PCI_MEM32_BASE;
	m->pci->mem32_size = MACHINE_PCI_MEM32_SIZE;
	m->pci->mem64_base = m->pci->mem64_next = mem64_base(vm);
	m->pci->mem64_size = MACHINE_PCI_MEM64_SIZE;
	m->pci->ecam_base = MACHINE_PCI_ECAM_BASE;
	m->pci->intx_gsi_base = MACHINE_PCI_INTX_GSI;
	m->shm_next = m->pci->mem64_base + m->pci->mem64_size;
	ret = pci_bus_attach(m->pci, &vm->pio, &vm->mmio);
	if (ret)
		vm_log("cannot attach the PCI host bridge: %s", strerror(-ret));
	return ret;
}

int machine_add_virtio(struct machine *m, struct virtio_dev *d)
{
	if (m->nvirtio == MACHINE_MAX_VIRTIO) {
		vm_log("too many virtio devices (at most %d)", MACHINE_MAX_VIRTIO);
		return -ENOSPC;
	}
	int i = m->nvirtio, ret;
	if (m->transport == TRANSPORT_PCI) {
		ret = virtio_pci_attach(m->vm, m->pci, d);
	} else {
		ret = virtio_mmio_attach(m->vm, d, MACHINE_VIRTIO_MMIO_BASE + i * MACHINE_VIRTIO_MMIO_STEP,
					 mmio_gsi[i]);
		/* Shared memory at fixed addresses past the PCI window; the SHM registers tell
		 * the driver where. */
		for (int s = 0; !ret && s < d->nshm; s++) {
			ret = virtio_shm_place(d, s, m->shm_next);
			m->shm_next += (d->shm[s].w.size + MACHINE_SHM_ALIGN - 1) & ~(MACHINE_SHM_ALIGN - 1);
		}
	}
	if (ret) {
		vm_log("cannot attach %s: %s", d->ops->name, strerror(-ret));
		return ret;
	}
	m->virtio[m->nvirtio++] = d;
	return 0;
}

int machine_finish(struct machine *m, char *cmdline, size_t cap)
{
	struct acpi_mmio_dev mmio[MACHINE_MAX_VIRTIO];
	struct acpi_config cfg = { .ncpus = m->vm->ncpus };
	if (m->transport == TRANSPORT_MMIO) {
		for (int i = 0; i < m->nvirtio; i++) {
			mmio[i] = (struct acpi_mmio_dev){
				MACHINE_VIRTIO_MMIO_BASE + i * MACHINE_VIRTIO_MMIO_STEP,
				VIRTIO_MMIO_SIZE, mmio_gsi[i] };
			/* For kernels built with VIRTIO_MMIO_CMDLINE_DEVICES (no ACPI needed);
			 * ignored as an unknown parameter by those without. */
			size_t n = strlen(cmdline);
			if (snprintf(cmdline + n, cap - n, " virtio_mmio.device=0x%x@0x%llx:%d",
				     VIRTIO_MMIO_SIZE, (unsigned long long)mmio[i].base,
				     mmio_gsi[i]) >= (int)(cap - n))
				return -E2BIG;
		}
		cfg.mmio = mmio;
		cfg.nmmio = m->nvirtio;
	}
	cfg.pci = (struct acpi_pci_host){
		.present = true,
		.ecam_base = m->pci->ecam_base,
		.mem32_base = m->pci->mem32_base, .mem32_size = m->pci->mem32_size,
		.mem64_base = m->pci->mem64_base, .mem64_size = m->pci->mem64_size,
		.intx_gsi_base = m->pci->intx_gsi_base,
	};
	uint8_t *p = gmem_ptr(&m->vm->mem, BOOT_BIOS_START, BOOT_BIOS_END - BOOT_BIOS_START);
	if (!p || acpi_build(p, BOOT_BIOS_END - BOOT_BIOS_START, BOOT_BIOS_START, &cfg) < 0) {
		vm_log("cannot build the ACPI tables");
		return -ENOSPC;
	}
	return 0;
}
