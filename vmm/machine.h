/* The x86 machine minivmm builds: its address map and the devices on it. */
#ifndef MINIVMM_MACHINE_H
#define MINIVMM_MACHINE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct virtio_dev;

/* Guest-physical map of the 32-bit hole (RAM ends at GMEM_HOLE_START = 3 GiB):
 *   0xC000_0000  256 MiB  PCI 32-bit memory window
 *   0xD000_0000           virtio-mmio devices, one 4 KiB page each
 *   0xE000_0000    1 MiB  PCI ECAM (bus 0)
 *   0xFEC0_0000           IOAPIC;  0xFEE0_0000 local APICs
 * and above RAM, from 64 GiB (or the next GiB past RAM), the 64-bit PCI window; right
 * after it, on the MMIO transport, the devices' shared-memory regions (virtio-fs DAX
 * windows), each 1 GiB-aligned.  Neither is RAM: the e820 map and ACPI leave the
 * regions out (the PCI window is the host bridge's _CRS, so they stay out of it). */
#define MACHINE_PCI_MEM32_BASE   0xC0000000ULL
#define MACHINE_PCI_MEM32_SIZE   0x10000000ULL
#define MACHINE_VIRTIO_MMIO_BASE 0xD0000000ULL
#define MACHINE_VIRTIO_MMIO_STEP 0x1000ULL
#define MACHINE_PCI_ECAM_BASE    0xE0000000ULL
#define MACHINE_PCI_MEM64_MIN    (64ULL << 30)
#define MACHINE_PCI_MEM64_SIZE   (64ULL << 30)
/* PCI INTx: slot s, pin p -> GSI 20 + (s + p) % 4, level-triggered. */
#define MACHINE_PCI_INTX_GSI     20
#define MACHINE_MAX_VIRTIO       12
#define MACHINE_SHM_ALIGN        (1ULL << 30)

enum machine_transport { TRANSPORT_PCI, TRANSPORT_MMIO };

struct machine {
	struct vm *vm;
	enum machine_transport transport;
	struct pci_bus *pci;
	int nvirtio;
	struct virtio_dev *virtio[MACHINE_MAX_VIRTIO];
	uint64_t shm_next;          /* MMIO: where the next shared-memory region goes */
};

/* Interrupt routing and, for TRANSPORT_PCI, the host bridge. */
int machine_init(struct machine *m, struct vm *vm, enum machine_transport t)
	__attribute__((warn_unused_result));
/* Put a virtio device on the chosen transport. */
int machine_add_virtio(struct machine *m, struct virtio_dev *d) __attribute__((warn_unused_result));
/* ACPI tables describing CPUs, power, the PCI host bridge and virtio-mmio devices, at the
 * BIOS area where Linux finds them; plus virtio_mmio.device= words for kernels built with
 * VIRTIO_MMIO_CMDLINE_DEVICES, appended to `cmdline` (size `cap`). */
int machine_finish(struct machine *m, char *cmdline, size_t cap) __attribute__((warn_unused_result));

#endif
