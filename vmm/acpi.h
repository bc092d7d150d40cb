/* ACPI tables: how a stock distro kernel learns the CPUs (MADT), power-off (FADT + DSDT
 * \_S5) and, later, the devices (DSDT). */
#ifndef MINIVMM_ACPI_H
#define MINIVMM_ACPI_H
#include <stddef.h>
#include <stdint.h>

struct acpi_config {
	int ncpus;
	/* Extra AML appended to the DSDT's body (device objects); may be NULL. */
	const uint8_t *dsdt_aml;
	size_t dsdt_aml_len;
};

/* Build RSDP, XSDT, FADT, MADT and DSDT into `buf`, which will live at guest address
 * `gpa` (16-byte aligned, below 1 MiB so Linux finds the RSDP by scanning).  Returns the
 * number of bytes used, or -ENOSPC.  The RSDP is at offset 0. */
long acpi_build(uint8_t *buf, size_t len, uint64_t gpa, const struct acpi_config *cfg);

/* 8-bit checksum over `len` bytes: a valid table sums to 0. */
uint8_t acpi_checksum(const void *p, size_t len);

#endif
