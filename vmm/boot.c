/* The Linux/x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry: we load the
 * protected-mode kernel ourselves and jump to startup_64 with boot_params in %rsi, so no
 * real-mode code and no firmware run. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmm/boot.h"

#define SETUP_HDR_OFF   0x1f1
#define E820_RAM        1
#define E820_RESERVED   2
#define PAGE_SIZE       4096ULL
#define GDT_ENTRIES     5

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int boot_parse(const uint8_t *buf, size_t size, struct boot_kernel *k, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	if (size < SETUP_HDR_OFF + sizeof(k->hdr))
		return fail(err, errlen, "not a bzImage: %zu bytes is too short for a setup header", size);
	memcpy(&k->hdr, buf + SETUP_HDR_OFF, sizeof(k->hdr));
	const struct setup_header *h = &k->hdr;

	if (h->boot_flag != 0xAA55 || h->header != 0x53726448 /* "HdrS" */)
		return fail(err, errlen, "not a bzImage: bad magic");
	if (h->version < BOOT_MIN_PROTOCOL)
		return fail(err, errlen, "boot protocol %u.%02u is too old (minivmm needs 2.12 or later)",
			    h->version >> 8, h->version & 0xff);
	if (!(h->xloadflags & XLF_KERNEL_64))
		return fail(err, errlen, "kernel has no 64-bit entry point (not an x86_64 kernel)");
	if (!(h->loadflags & LOADED_HIGH))
		return fail(err, errlen, "not a bzImage: zImage kernels are not supported");

	size_t setup_sects = h->setup_sects ? h->setup_sects : 4;
	size_t setup_size = (setup_sects + 1) * 512;
	/* syssize counts 16-byte paragraphs of the protected-mode part the loader must copy:
	 * a file shorter than that was cut off. */
	uint64_t pm_size = (uint64_t)h->syssize * 16;
	if (setup_size >= size || pm_size == 0 || pm_size > size - setup_size)
		return fail(err, errlen, "truncated bzImage: %zu bytes, the header promises %llu",
			    size, (unsigned long long)(setup_size + pm_size));
	k->pm = buf + setup_size;
	k->pm_size = size - setup_size;

	/* The preferred address is where a relocatable kernel decompresses anyway; loading it
	 * there saves it a copy of itself. */
	k->load_addr = h->pref_address ? h->pref_address : 0x100000;
	if (k->load_addr < BOOT_BIOS_END || (k->load_addr & (PAGE_SIZE - 1)))
		return fail(err, errlen, "bzImage asks to be loaded at 0x%llx, which is not usable",
			    (unsigned long long)k->load_addr);
	k->init_size = h->init_size;
	if (k->init_size < k->pm_size)
		k->init_size = k->pm_size;
	return 0;
}

int boot_e820(const struct gmem *m, struct boot_e820_entry *tab, int max)
{
	uint64_t low_end = gmem_low_end(m);
	struct boot_e820_entry e[] = {
		{ 0, BOOT_EBDA_START, E820_RAM },
		{ BOOT_EBDA_START, 0xA0000 - BOOT_EBDA_START, E820_RESERVED },
		{ BOOT_BIOS_START, BOOT_BIOS_END - BOOT_BIOS_START, E820_RESERVED },
		{ BOOT_BIOS_END, low_end - BOOT_BIOS_END, E820_RAM },
	};
	int n = 0;
	for (size_t i = 0; i < sizeof(e) / sizeof(e[0]) && n < max; i++)
		tab[n++] = e[i];
	for (int i = 1; i < m->n && n < max; i++)
		tab[n++] = (struct boot_e820_entry){ m->r[i].gpa, m->r[i].size, E820_RAM };
	return n;
}

/* The initrd's place for a machine whose low RAM ends at low_end. */
static uint64_t initrd_addr_below(const struct boot_kernel *k, uint64_t low_end, uint64_t size)
{
	uint64_t top = low_end;
	uint64_t max = (uint64_t)k->hdr.initrd_addr_max + 1; /* the last usable byte, inclusive */
	if (max < top)
		top = max;
	uint64_t kernel_end = k->load_addr + k->init_size;
	if (size > top || top - size < kernel_end)
		return 0;
	uint64_t addr = (top - size) & ~(PAGE_SIZE - 1);
	return addr >= kernel_end ? addr : 0;
}

uint64_t boot_initrd_addr(const struct boot_kernel *k, const struct gmem *m, uint64_t size)
{
	return initrd_addr_below(k, gmem_low_end(m), size);
}

int boot_check_fit(const struct boot_kernel *k, uint64_t low_end, uint64_t initrd_size,
		   char *err, size_t errlen)
{
	if (k->load_addr + k->init_size > low_end)
		return fail(err, errlen, "the kernel needs %llu MiB of memory to boot; --mem is too small",
			    (unsigned long long)((k->load_addr + k->init_size + (1 << 20) - 1) >> 20));
	if (initrd_size && !initrd_addr_below(k, low_end, initrd_size))
		return fail(err, errlen,
			    "initrd of %llu MiB does not fit between the kernel and the %s",
			    (unsigned long long)(initrd_size >> 20),
			    (uint64_t)k->hdr.initrd_addr_max + 1 < low_end
				    ? "kernel's initrd_addr_max" : "end of memory (raise --mem)");
	return 0;
}

/* Identity-map the first 4 GiB with 2 MiB pages: kernel, initrd and boot_params all sit
 * below 4 GiB, and the kernel replaces these tables early on. */
static int write_page_tables(struct gmem *m)
{
	uint64_t *pml4 = gmem_ptr(m, BOOT_PML4_ADDR, PAGE_SIZE * 6);
	if (!pml4)
		return -ENOMEM;
	memset(pml4, 0, PAGE_SIZE * 6);
	uint64_t *pdpt = pml4 + 512;
	pml4[0] = (BOOT_PML4_ADDR + PAGE_SIZE) | 0x3;          /* present, writable */
	for (uint64_t i = 0; i < 4; i++) {
		uint64_t pd_addr = BOOT_PML4_ADDR + PAGE_SIZE * (2 + i);
		uint64_t *pd = pml4 + 512 * (2 + i);
		pdpt[i] = pd_addr | 0x3;
		for (uint64_t j = 0; j < 512; j++)
			pd[j] = ((i << 30) | (j << 21)) | 0x83;  /* present, writable, 2 MiB */
	}
	return 0;
}

/* __BOOT_CS = 0x10 and __BOOT_DS = 0x18, as the boot protocol requires; 0x20 a TSS slot. */
static int write_gdt(struct gmem *m)
{
	static const uint64_t gdt[GDT_ENTRIES] = {
		0, 0,
		0x00af9b000000ffffULL,   /* 64-bit code, present, DPL 0 */
		0x00cf93000000ffffULL,   /* data, 4 GiB flat */
		0x00808b0000000067ULL,   /* TSS, busy */
	};
	void *p = gmem_ptr(m, BOOT_GDT_ADDR, sizeof(gdt));
	if (!p)
		return -ENOMEM;
	memcpy(p, gdt, sizeof(gdt));
	return 0;
}

int boot_load(struct gmem *m, const struct boot_kernel *k, const uint8_t *initrd,
	      size_t initrd_size, const char *cmdline, uint64_t rsdp, struct boot_info *out,
	      char *err, size_t errlen)
{
	int r = boot_check_fit(k, gmem_low_end(m), initrd_size, err, errlen);
	if (r)
		return r;
	void *dst = gmem_ptr(m, k->load_addr, k->pm_size);
	if (!dst)
		return fail(err, errlen, "kernel does not fit in guest memory");
	memcpy(dst, k->pm, k->pm_size);

	size_t cmdlen = strlen(cmdline);
	/* cmdline_size excludes the terminating NUL. */
	if (cmdlen > k->hdr.cmdline_size || cmdlen >= BOOT_CMDLINE_MAX)
		return fail(err, errlen, "kernel command line is %zu bytes; this kernel takes at most %u",
			    cmdlen, k->hdr.cmdline_size);
	memcpy(gmem_ptr(m, BOOT_CMDLINE_ADDR, cmdlen + 1), cmdline, cmdlen + 1);

	uint64_t initrd_addr = 0;
	if (initrd_size) {
		initrd_addr = boot_initrd_addr(k, m, initrd_size);
		memcpy(gmem_ptr(m, initrd_addr, initrd_size), initrd, initrd_size);
	}

	struct boot_params *bp = gmem_ptr(m, BOOT_PARAMS_ADDR, sizeof(*bp));
	memset(bp, 0, sizeof(*bp));
	bp->hdr = k->hdr;
	bp->hdr.type_of_loader = 0xff;           /* "undefined" boot loader */
	bp->hdr.loadflags |= CAN_USE_HEAP;
	bp->hdr.loadflags &= ~KEEP_SEGMENTS;
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.vid_mode = 0xffff;               /* "normal": no video mode switch */
	bp->hdr.code32_start = k->load_addr;
	bp->hdr.cmd_line_ptr = BOOT_CMDLINE_ADDR;
	bp->hdr.ramdisk_image = initrd_addr;
	bp->hdr.ramdisk_size = initrd_size;
	bp->acpi_rsdp_addr = rsdp;
	bp->e820_entries = boot_e820(m, bp->e820_table, E820_MAX_ENTRIES_ZEROPAGE);

	int ret = write_page_tables(m);
	if (!ret)
		ret = write_gdt(m);
	if (ret)
		return fail(err, errlen, "guest memory too small for boot structures");

	out->entry = k->load_addr + 0x200;       /* startup_64 */
	out->initrd_addr = initrd_addr;
	out->kernel_end = k->load_addr + k->init_size;
	return 0;
}
