/* virtio-mmio transport, version 2 (VIRTIO 1.2 §4.2), with the shared-memory registers. */
#ifndef MINIVMM_VIRTIO_MMIO_H
#define MINIVMM_VIRTIO_MMIO_H
#include <stdbool.h>
#include <stdint.h>

struct virtio_dev;
struct vm;

#define VIRTIO_MMIO_SIZE 0x200

/* Put device `d` at guest address `base` (VIRTIO_MMIO_SIZE bytes) with edge interrupt
 * `gsi`; registers its MMIO range and one ioeventfd per queue. */
int virtio_mmio_attach(struct vm *vm, struct virtio_dev *d, uint64_t base, int gsi)
	__attribute__((warn_unused_result));

/* The transport without KVM: registers decoded, interrupts written to `irq_fd` (any
 * eventfd).  virtio_mmio_attach builds on it; unit tests use it alone. */
int virtio_mmio_setup(struct virtio_dev *d, uint64_t base, int irq_fd)
	__attribute__((warn_unused_result));

/* The register handler, exposed for unit tests (opaque = the struct virtio_dev). */
void virtio_mmio_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write);

#endif
