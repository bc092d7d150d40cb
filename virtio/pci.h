/* virtio-pci, modern (VIRTIO 1.2 §4.1): capabilities in config space, one 64-bit BAR with
 * common/ISR/device/notify regions and the MSI-X table, a second BAR for shared memory. */
#ifndef MINIVMM_VIRTIO_PCI_H
#define MINIVMM_VIRTIO_PCI_H
#include <stdbool.h>
#include <stdint.h>

struct pci_bus;
struct virtio_dev;
struct vm;

/* Plug `d` into `bus` (any free slot).  `vm` may be NULL in unit tests (no ioeventfds). */
int virtio_pci_attach(struct vm *vm, struct pci_bus *bus, struct virtio_dev *d)
	__attribute__((warn_unused_result));

#endif
