/* PCI: a host bridge on bus 0 (config mechanism #1 at 0xCF8/0xCFC and ECAM), type-0
 * config space for up to 31 devices, BAR allocation and decoding, MSI-X, INTx.
 * Devices fill their config space and BARs; they never see how accesses arrive. */
#ifndef MINIVMM_PCI_H
#define MINIVMM_PCI_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"

#define PCI_CFG_SIZE     4096   /* ECAM gives the full extended space; #1 the first 256 */
#define PCI_MAX_DEVS     32     /* slot 0 is the host bridge */
#define PCI_MAX_BARS     6
#define PCI_MSIX_MAX_VEC 64

/* Interrupt plumbing, behind ops so unit tests run without KVM (vmm/irq.c in the VMM). */
struct pci_irq_ops {
	/* Allocate a GSI for an MSI route; returns >= 0 or -errno. */
	int (*msi_alloc)(void *ctx);
	/* Point `gsi` at an MSI message (address, data). */
	int (*msi_route)(void *ctx, int gsi, uint64_t addr, uint32_t data);
	/* Inject the interrupt behind `gsi` (an irqfd write in the VMM). */
	void (*msi_fire)(void *ctx, int gsi);
	/* Level of a legacy INTx line (GSI). */
	void (*intx_set)(void *ctx, int gsi, int level);
};

struct pci_dev;

struct pci_bar {
	uint64_t size;            /* power of two >= 16 (0: BAR unused) */
	bool is64, prefetch;      /* always memory BARs; 64-bit ones take two slots */
	uint64_t addr;            /* current guest address, as programmed */
	bus_io_fn fn;             /* accesses inside the BAR; `off` relative to the BAR (called
	                           * without the bus lock: it may call pci_msix_notify) */
	void *opaque;
};

struct pci_dev_ops {
	/* The guest moved BAR `bar` (decoding enabled at the new address). Devices that
	 * registered ioeventfds on it re-register them.  May be NULL. */
	void (*bar_moved)(struct pci_dev *d, int bar, uint64_t old_addr, uint64_t new_addr);
	/* MSI-X enable / function-mask changed, or INTx disable toggled.  May be NULL. */
	void (*irq_mode_changed)(struct pci_dev *d);
};

struct pci_msix {
	int nvec;                 /* 0: no MSI-X capability */
	int bar;                  /* table and PBA live in this BAR */
	uint32_t table_off, pba_off;
	uint8_t cap;              /* config offset of the capability */
	struct {
		uint64_t addr;
		uint32_t data;
		uint32_t ctrl;        /* bit 0: masked */
		int gsi;              /* route, or -1 */
		bool routed;
	} vec[PCI_MSIX_MAX_VEC];
	uint64_t pending;         /* PBA bits */
};

struct pci_dev {
	/* filled by the device before pci_add */
	uint8_t cfg[PCI_CFG_SIZE];   /* IDs, class, capabilities, device-specific fields */
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may write (pci_add sets the standard ones) */
	struct pci_bar bars[PCI_MAX_BARS];
	const struct pci_dev_ops *ops;
	void *priv;
	/* set by pci_add / pci_msix_init */
	struct pci_bus *bus;
	int slot;
	int intx_gsi;                /* INTA of this slot */
	struct pci_msix msix;
	bool intx_level;
	uint16_t cap_end;            /* first free config byte after the capabilities (0: none
	                              * yet); pci_add_cap appends there */
};

struct pci_bus {
	pthread_mutex_t lock;        /* config space, BAR and MSI-X state */
	const struct pci_irq_ops *irq;
	void *irq_ctx;
	uint32_t cf8;                /* config address latch */
	struct pci_dev *devs[PCI_MAX_DEVS];
	struct pci_dev host;         /* slot 0: the host bridge */
	/* windows BARs are allocated from (set by pci_bus_init's caller) */
	uint64_t mem32_base, mem32_size, mem32_next;
	uint64_t mem64_base, mem64_size, mem64_next;
	uint64_t ecam_base;          /* 1 MiB: bus 0 only */
	uint32_t intx_gsi_base;      /* slot s, pin p (0=INTA) -> gsi base + (s + p) % 4 */
};

/* Host bridge at slot 0 (vendor 0x8086 device 0x29c0-like IDs are fine; class 0x0600). */
int pci_bus_init(struct pci_bus *b, const struct pci_irq_ops *irq, void *irq_ctx)
	__attribute__((warn_unused_result));
/* Register the bus's I/O (0xCF8-0xCFF), ECAM and both BAR windows on the VMM's buses. */
int pci_bus_attach(struct pci_bus *b, struct bus *pio, struct bus *mmio)
	__attribute__((warn_unused_result));

/* Add a device in the next free slot: sets header type 0, command/status write masks,
 * interrupt pin INTA and line, allocates its BARs (naturally aligned) from the windows and
 * programs them.  Returns the slot or -errno. */
int pci_add(struct pci_bus *b, struct pci_dev *d) __attribute__((warn_unused_result));

/* Add an MSI-X capability with `nvec` vectors whose table and PBA live in `bar` at the
 * given offsets (call before pci_add; the BAR must exist and hold both). */
int pci_msix_init(struct pci_dev *d, int nvec, int bar, uint32_t table_off, uint32_t pba_off)
	__attribute__((warn_unused_result));
/* Add a vendor-specific or other capability of `len` bytes (cap[0] = ID; pci.c links
 * cap[1] = next).  Returns its config offset or -ENOSPC. */
int pci_add_cap(struct pci_dev *d, const void *cap, uint8_t len);

/* Deliver MSI-X vector `vec`: fired when MSI-X is enabled and neither the function nor the
 * vector is masked, else left pending in the PBA (fired on unmask).  Returns false when
 * MSI-X is not enabled (the caller falls back to INTx). */
bool pci_msix_notify(struct pci_dev *d, int vec);
bool pci_msix_enabled(struct pci_dev *d);
/* INTx: raise or lower INTA (ignored while the command register's INTx-disable is set). */
void pci_intx(struct pci_dev *d, int level);

/* Config space access by (slot, function, offset): what both mechanisms decode to.
 * Non-existent slots/functions read all ones. */
void pci_cfg_rw(struct pci_bus *b, int slot, int fn, uint32_t off, void *data, unsigned len,
		bool is_write);

#endif
