/* Linux/x86 boot protocol: check a bzImage, lay out guest memory, build boot_params. */
#ifndef MINIVMM_BOOT_H
#define MINIVMM_BOOT_H
#include <stddef.h>
#include <stdint.h>
#include <asm/bootparam.h>

#include "vmm/memory.h"

/* Guest-physical layout of what the loader writes below 1 MiB. */
#define BOOT_GDT_ADDR      0x500ULL
#define BOOT_PARAMS_ADDR   0x7000ULL
#define BOOT_PML4_ADDR     0x9000ULL   /* then PDPT at +0x1000, 4 PDs at +0x2000 */
#define BOOT_CMDLINE_ADDR  0x20000ULL
#define BOOT_CMDLINE_MAX   0x10000ULL
#define BOOT_EBDA_START    0x9FC00ULL
#define BOOT_BIOS_START    0xE0000ULL  /* ACPI tables live here, where Linux scans for RSDP */
#define BOOT_BIOS_END      0x100000ULL
#define BOOT_MIN_PROTOCOL  0x020c      /* 2.12: XLF_KERNEL_64, the 64-bit entry point */

struct boot_kernel {
	struct setup_header hdr;  /* copied out of the file: never read the file's twice */
	const uint8_t *pm;        /* protected-mode kernel, inside the caller's buffer */
	size_t pm_size;
	uint64_t load_addr;       /* where `pm` goes */
	uint64_t init_size;       /* memory the kernel needs from load_addr while booting */
};

struct boot_info {
	uint64_t entry;           /* 64-bit entry point */
	uint64_t initrd_addr;
	uint64_t kernel_end;
};

/* Validate a bzImage held in memory.  On failure returns -EINVAL and writes a reason
 * ("not a bzImage: bad magic", ...) into err. */
int boot_parse(const uint8_t *buf, size_t size, struct boot_kernel *k, char *err, size_t errlen);

/* Fill the boot_params e820 table for `m`; returns the entry count. */
int boot_e820(const struct gmem *m, struct boot_e820_entry *tab, int max);

/* Where the initrd goes: the highest page-aligned address that ends below both the
 * kernel's initrd_addr_max and low RAM, above the kernel.  0 when it does not fit. */
uint64_t boot_initrd_addr(const struct boot_kernel *k, const struct gmem *m, uint64_t size);

/* Whether the kernel and an initrd of initrd_size fit a machine whose low RAM ends at
 * low_end: what boot_load checks first, callable before any VM exists so that bad input
 * is refused before /dev/kvm is touched.  0, or -EINVAL with a reason in err. */
int boot_check_fit(const struct boot_kernel *k, uint64_t low_end, uint64_t initrd_size,
		   char *err, size_t errlen);

/* Write kernel, initrd, command line, boot_params, page tables and GDT into guest memory.
 * Returns 0, or -errno with a reason in err. */
int boot_load(struct gmem *m, const struct boot_kernel *k, const uint8_t *initrd,
	      size_t initrd_size, const char *cmdline, uint64_t rsdp, struct boot_info *out,
	      char *err, size_t errlen);

#endif
