/* ACPI tables: how a stock distro kernel learns the CPUs (MADT), power-off (FADT + DSDT
 * \_S5) and the devices: virtio-mmio and the PCI host bridge (DSDT), ECAM (MCFG). */
#ifndef MINIVMM_ACPI_H
#define MINIVMM_ACPI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A virtio-mmio device: its register window (below 4 GiB) and its edge-triggered GSI. */
struct acpi_mmio_dev { uint64_t base; uint32_t size; uint32_t gsi; };

/* The PCI host bridge: bus 0 only, ECAM and two memory windows for BARs. */
struct acpi_pci_host {
	bool present;
	uint64_t ecam_base;            /* bus 0 only: 1 MiB, 1 MiB aligned, below 4 GiB */
	uint32_t mem32_base, mem32_size;   /* size 0: no such window */
	uint64_t mem64_base, mem64_size;
	uint32_t intx_gsi_base;        /* slot s, pin p (0 = INTA) -> intx_gsi_base + (s + p) % 4 */
};

struct acpi_config {
	int ncpus;
	const struct acpi_mmio_dev *mmio;  /* DSDT devices \_SB_.VR00, VR01, ... */
	int nmmio;                         /* at most 256 */
	struct acpi_pci_host pci;          /* \_SB_.PCI0, \_SB_.MRES and the MCFG */
};

/* Build RSDP, XSDT, FADT, MADT, DSDT and (with PCI) MCFG into `buf`, which will live at
 * guest address `gpa` (16-byte aligned, below 1 MiB so Linux finds the RSDP by
 * scanning).  Returns the number of bytes used, -ENOSPC if they do not fit, -EINVAL for
 * a configuration the tables cannot express, -ENOMEM.  The RSDP is at offset 0. */
long acpi_build(uint8_t *buf, size_t len, uint64_t gpa, const struct acpi_config *cfg);

/* 8-bit checksum over `len` bytes: a valid table sums to 0. */
uint8_t acpi_checksum(const void *p, size_t len);

#endif
