/* Interrupt routing: KVM's GSI table (the irqchip's pins plus MSI routes) and irqfds. */
#ifndef MINIVMM_IRQ_H
#define MINIVMM_IRQ_H
#include <stdint.h>

struct vm;
struct pci_irq_ops;

#define IRQ_IOAPIC_PINS 24

/* Install the default routes (GSI 0-15 to PIC and IOAPIC, 16-23 to the IOAPIC). */
int irq_init(struct vm *vm) __attribute__((warn_unused_result));
/* An eventfd that injects `gsi` (edge) when written: KVM_IRQFD.  Returns fd or -errno. */
int irq_irqfd(struct vm *vm, int gsi);
/* MSI: allocate a GSI >= IRQ_IOAPIC_PINS with its irqfd; point it at a message; fire it. */
int irq_msi_alloc(struct vm *vm);
int irq_msi_route(struct vm *vm, int gsi, uint64_t addr, uint32_t data);
void irq_msi_fire(struct vm *vm, int gsi);

/* pci_irq_ops backed by the functions above (ctx = struct vm *). */
extern const struct pci_irq_ops irq_pci_ops;

#endif
