/* The Linux/x86 boot protocol side of minivmm, without KVM: bzImage validation on a
 * synthetic image (and the installed kernel), initrd placement, and what
 * boot_load leaves in guest memory — read back the way the kernel and the CPU read it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/boot.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* The synthetic bzImage: 4 setup sectors + boot sector, then 4 KiB of "kernel". */
#define SETUP_SECTS  4
#define SETUP_SIZE   ((SETUP_SECTS + 1) * 512)
#define SYSSIZE      0x100
#define PM_SIZE      (SYSSIZE * 16)
#define IMG_SIZE     (SETUP_SIZE + PM_SIZE)
#define PREF_ADDR    0x1000000ULL
#define INIT_SIZE    0x800000ULL
#define CMDLINE_SIZE 2047

static struct setup_header good_hdr(void)
{
	struct setup_header h;
	memset(&h, 0, sizeof(h));
	h.setup_sects = SETUP_SECTS;
	h.syssize = SYSSIZE;
	h.boot_flag = 0xAA55;
	h.jump = 0x66eb;
	h.header = 0x53726448;		/* "HdrS" */
	h.version = 0x020f;
	h.loadflags = LOADED_HIGH;
	h.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	h.pref_address = PREF_ADDR;
	h.init_size = INIT_SIZE;
	h.cmdline_size = CMDLINE_SIZE;
	h.initrd_addr_max = 0x7fffffff;
	h.kernel_alignment = 0x200000;
	h.relocatable_kernel = 1;
	return h;
}

/* A heap buffer of exactly `size` bytes, so ASan catches any read past the file. */
static uint8_t *build(const struct setup_header *h, size_t size)
{
	uint8_t *buf = malloc(size);
	cr_assert(buf);
	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	if (size >= 0x1f1 + sizeof(*h))
		memcpy(buf + 0x1f1, h, sizeof(*h));
	return buf;
}

/* Expect boot_parse to reject `h` in a `size`-byte file with a reason containing `why`. */
static void expect_reject(const struct setup_header *h, size_t size, const char *why)
{
	uint8_t *buf = build(h, size);
	struct boot_kernel k;
	char err[256] = "";
	cr_assert_eq(boot_parse(buf, size, &k, err, sizeof(err)), -EINVAL, "accepted; wanted '%s'", why);
	cr_assert(strstr(err, why), "reason '%s' does not mention '%s'", err, why);
	free(buf);
}

Test(boot_parse, valid_synthetic_image)
{
	struct setup_header h = good_hdr();
	uint8_t *buf = build(&h, IMG_SIZE);
	struct boot_kernel k;
	char err[256] = "";
	cr_assert_eq(boot_parse(buf, IMG_SIZE, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(k.pm, buf + SETUP_SIZE);
	cr_assert_eq(k.pm_size, PM_SIZE);
	cr_assert_eq(k.load_addr, PREF_ADDR);
	cr_assert_eq(k.init_size, INIT_SIZE);
	cr_assert_eq(memcmp(&k.hdr, &h, sizeof(h)), 0, "header not copied out of the file");
	free(buf);
}

/* setup_sects 0 means 4 (boot.rst): the kernel then starts at the same place. */
Test(boot_parse, setup_sects_zero_means_four)
{
	struct setup_header h = good_hdr();
	h.setup_sects = 0;
	uint8_t *buf = build(&h, IMG_SIZE);
	struct boot_kernel k;
	char err[256] = "";
	cr_assert_eq(boot_parse(buf, IMG_SIZE, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(k.pm, buf + SETUP_SIZE);
	free(buf);
}

/* 2.12 is the first protocol with XLF_KERNEL_64: the oldest minivmm accepts. */
Test(boot_parse, protocol_2_12_accepted)
{
	struct setup_header h = good_hdr();
	h.version = 0x020c;
	uint8_t *buf = build(&h, IMG_SIZE);
	struct boot_kernel k;
	char err[256] = "";
	cr_assert_eq(boot_parse(buf, IMG_SIZE, &k, err, sizeof(err)), 0, "%s", err);
	free(buf);
}

Test(boot_parse, rejects_too_short_for_header)
{
	struct setup_header h = good_hdr();
	expect_reject(&h, 0x1f1 + 16, "too short");
	expect_reject(&h, 0, "too short");
}

/* Each rejection changes one thing in an otherwise valid image, so the check named is
 * the only one that can refuse it. */
#define REJECT(name, size, why, change)				\
	Test(boot_parse, name)					\
	{							\
		struct setup_header h = good_hdr();		\
		change;						\
		expect_reject(&h, size, why);			\
	}

REJECT(rejects_bad_boot_flag, IMG_SIZE, "bad magic", h.boot_flag = 0x55AA)
REJECT(rejects_bad_hdrs, IMG_SIZE, "bad magic", h.header = 0x53726449)
REJECT(rejects_old_protocol_naming_it, IMG_SIZE, "2.11", h.version = 0x020b)
REJECT(rejects_no_64bit_entry, IMG_SIZE, "64-bit", h.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G)
REJECT(rejects_zimage, IMG_SIZE, "zImage", h.loadflags = 0)
/* One byte short of setup + syssize*16 is a cut-off file; so is the setup part alone. */
REJECT(rejects_truncated, IMG_SIZE - 1, "truncated", )
REJECT(rejects_truncated_setup_only, SETUP_SIZE, "truncated", )
REJECT(rejects_syssize_zero, IMG_SIZE, "truncated", h.syssize = 0)
/* Below 1 MiB is real-mode memory and the ACPI tables; the kernel is page-granular. */
REJECT(rejects_pref_address_low, IMG_SIZE, "0x80000", h.pref_address = 0x80000)
REJECT(rejects_pref_address_unaligned, IMG_SIZE, "0x1000800", h.pref_address = PREF_ADDR + 0x800)

static uint8_t *read_kernel(size_t *size)
{
	glob_t g;
	if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0)
		return NULL;
	FILE *f = fopen(g.gl_pathv[g.gl_pathc - 1], "rb");
	globfree(&g);
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*size = ftell(f);
	rewind(f);
	uint8_t *buf = malloc(*size);
	cr_assert(buf);
	cr_assert_eq(fread(buf, 1, *size, f), *size);
	fclose(f);
	return buf;
}

/* The kernel minivmm is meant to boot: a distro bzImage must pass, and its head alone
 * (setup code plus a little of the payload) must be caught as truncated. */
Test(boot_parse, real_kernel)
{
	size_t size;
	uint8_t *buf = read_kernel(&size);
	if (!buf)
		cr_skip_test("no readable /boot/vmlinuz-*");
	struct boot_kernel k;
	char err[256] = "";
	cr_assert_eq(boot_parse(buf, size, &k, err, sizeof(err)), 0, "%s", err);
	cr_assert_geq(k.load_addr, MiB);
	cr_assert_geq(k.init_size, k.pm_size);
	cr_assert_gt(k.hdr.cmdline_size, 0);

	uint8_t *head = malloc(30000);
	cr_assert(head);
	memcpy(head, buf, 30000);
	cr_assert_eq(boot_parse(head, 30000, &k, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "truncated"), "%s", err);
	free(head);
	free(buf);
}

static struct boot_kernel kernel_at(uint64_t load, uint64_t init, uint32_t initrd_max)
{
	struct boot_kernel k;
	memset(&k, 0, sizeof(k));
	k.load_addr = load;
	k.init_size = init;
	k.hdr.initrd_addr_max = initrd_max;
	return k;
}

/* Placed as high as allowed, page aligned, entirely above the kernel. */
static void check_initrd(const struct boot_kernel *k, const struct gmem *m, uint64_t size)
{
	uint64_t top = gmem_low_end(m);
	if ((uint64_t)k->hdr.initrd_addr_max + 1 < top)
		top = (uint64_t)k->hdr.initrd_addr_max + 1;
	uint64_t a = boot_initrd_addr(k, m, size);
	cr_assert_neq(a, 0);
	cr_assert_eq(a & 0xfff, 0, "0x%llx not page aligned", (unsigned long long)a);
	cr_assert_leq(a + size, top);
	cr_assert_lt(top - (a + size), 4096, "not the highest place");
	cr_assert_geq(a, k->load_addr + k->init_size);
}

Test(boot_initrd_addr, below_end_of_ram)
{
	struct gmem m;
	cr_assert_eq(gmem_init(&m, 256 * MiB), 0);
	struct boot_kernel k = kernel_at(PREF_ADDR, INIT_SIZE, 0x7fffffff);
	check_initrd(&k, &m, 10 * MiB + 123);
	check_initrd(&k, &m, 1);
	gmem_free(&m);
}

Test(boot_initrd_addr, below_initrd_addr_max)
{
	struct gmem m;
	cr_assert_eq(gmem_init(&m, 2 * GiB), 0);
	struct boot_kernel k = kernel_at(PREF_ADDR, INIT_SIZE, 0x37ffffff);
	check_initrd(&k, &m, 5 * MiB + 1);
	cr_assert_leq(boot_initrd_addr(&k, &m, 4096) + 4096, 0x38000000ULL);
	gmem_free(&m);
}

Test(boot_initrd_addr, does_not_fit)
{
	struct gmem m;
	cr_assert_eq(gmem_init(&m, 256 * MiB), 0);
	struct boot_kernel k = kernel_at(PREF_ADDR, INIT_SIZE, 0x7fffffff);
	uint64_t room = 256 * MiB - (PREF_ADDR + INIT_SIZE);
	cr_assert_eq(boot_initrd_addr(&k, &m, room), PREF_ADDR + INIT_SIZE, "exact fit refused");
	cr_assert_eq(boot_initrd_addr(&k, &m, room + 1), 0);
	cr_assert_eq(boot_initrd_addr(&k, &m, GiB), 0);	/* bigger than all of RAM */
	cr_assert_eq(boot_initrd_addr(&k, &m, UINT64_MAX), 0);
	/* Room from an unaligned kernel end, but rounding down to a page would overlap it. */
	struct boot_kernel odd = kernel_at(PREF_ADDR, INIT_SIZE + 1, 0x7fffffff);
	cr_assert_eq(boot_initrd_addr(&odd, &m, 256 * MiB - (PREF_ADDR + INIT_SIZE + 1)), 0);
	/* initrd_addr_max below the end of the kernel: nowhere to go. */
	k.hdr.initrd_addr_max = 0x00ffffff;
	cr_assert_eq(boot_initrd_addr(&k, &m, 4096), 0);
	gmem_free(&m);
}

/* The check made before any VM exists agrees with where boot_load would put things. */
Test(boot_check_fit, matches_placement_without_memory)
{
	char err[256] = "";
	struct boot_kernel k = kernel_at(PREF_ADDR, INIT_SIZE, 0x7fffffff);
	uint64_t room = 256 * MiB - (PREF_ADDR + INIT_SIZE);
	cr_assert_eq(boot_check_fit(&k, 256 * MiB, 0, err, sizeof(err)), 0);
	cr_assert_eq(boot_check_fit(&k, 256 * MiB, room, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(boot_check_fit(&k, 256 * MiB, room + 1, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "initrd of") && strstr(err, "end of memory (raise --mem)"), "%s", err);
	k.hdr.initrd_addr_max = 0x00ffffff;
	cr_assert_eq(boot_check_fit(&k, 256 * MiB, 4096, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "initrd_addr_max"), "%s", err);
	/* Low RAM smaller than the kernel itself. */
	cr_assert_eq(boot_check_fit(&k, PREF_ADDR + INIT_SIZE - 1, 0, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "--mem is too small"), "%s", err);
}

/* boot_load into a 256 MiB guest. */
static struct gmem mem;
static uint8_t *img;
static struct boot_kernel kern;

static void load_init(void)
{
	cr_assert_eq(gmem_init(&mem, 256 * MiB), 0);
	struct setup_header h = good_hdr();
	img = build(&h, IMG_SIZE);
	char err[256] = "";
	cr_assert_eq(boot_parse(img, IMG_SIZE, &kern, err, sizeof(err)), 0, "%s", err);
}

static void load_fini(void)
{
	gmem_free(&mem);
	free(img);
}

TestSuite(boot_load, .init = load_init, .fini = load_fini);

#define PTE_P   (1ULL << 0)
#define PTE_RW  (1ULL << 1)
#define PTE_PS  (1ULL << 7)
#define PTE_ADDR 0x000ffffffffff000ULL

/* Translate `va` the way the MMU does in 4-level paging, from CR3 = BOOT_PML4_ADDR;
 * expects a 2 MiB page. */
static uint64_t walk(uint64_t va)
{
	uint64_t table = BOOT_PML4_ADDR;
	for (int level = 3; level >= 1; level--) {
		const uint64_t *t = gmem_ptr(&mem, table, 4096);
		cr_assert(t, "table at 0x%llx outside RAM", (unsigned long long)table);
		uint64_t e = t[(va >> (12 + 9 * level)) & 511];
		cr_assert(e & PTE_P, "va 0x%llx not present at level %d", (unsigned long long)va, level);
		cr_assert(e & PTE_RW);
		if (level == 1) {
			cr_assert(e & PTE_PS, "va 0x%llx: not a 2 MiB page", (unsigned long long)va);
			return (e & PTE_ADDR & ~(2 * MiB - 1)) | (va & (2 * MiB - 1));
		}
		cr_assert_eq(e & PTE_PS, 0, "unexpected large page at level %d", level);
		table = e & PTE_ADDR;
	}
	return 0;
}

Test(boot_load, writes_everything)
{
	const size_t isize = MiB + 5;
	uint8_t *initrd = malloc(isize);
	cr_assert(initrd);
	for (size_t i = 0; i < isize; i++)
		initrd[i] = (uint8_t)(i ^ (i >> 8));
	const char *cmdline = "console=ttyS0 quiet";
	memset(gmem_ptr(&mem, BOOT_CMDLINE_ADDR, 4096), 'X', 4096);	/* NUL must be written */
	struct boot_info bi;
	char err[256] = "";
	cr_assert_eq(boot_load(&mem, &kern, initrd, isize, cmdline, 0xE0000, &bi, err,
			       sizeof(err)), 0, "%s", err);

	cr_assert_eq(memcmp(gmem_ptr(&mem, PREF_ADDR, PM_SIZE), img + SETUP_SIZE, PM_SIZE), 0);
	const char *cl = gmem_ptr(&mem, BOOT_CMDLINE_ADDR, strlen(cmdline) + 1);
	cr_assert_str_eq(cl, cmdline);
	cr_assert_eq(cl[strlen(cmdline)], '\0');

	cr_assert_eq(bi.entry, PREF_ADDR + 0x200);
	cr_assert_eq(bi.kernel_end, PREF_ADDR + INIT_SIZE);
	cr_assert_eq(bi.initrd_addr, boot_initrd_addr(&kern, &mem, isize));
	cr_assert_eq(memcmp(gmem_ptr(&mem, bi.initrd_addr, isize), initrd, isize), 0);
	free(initrd);

	const struct boot_params *bp = gmem_ptr(&mem, BOOT_PARAMS_ADDR, sizeof(*bp));
	cr_assert_eq(bp->hdr.header, 0x53726448, "setup header not copied");
	cr_assert_eq(bp->hdr.type_of_loader, 0xff);
	cr_assert_eq(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR);
	cr_assert_eq(bp->hdr.ramdisk_image, bi.initrd_addr);
	cr_assert_eq(bp->hdr.ramdisk_size, isize);
	cr_assert_eq(bp->hdr.code32_start, PREF_ADDR);
	cr_assert_eq(bp->acpi_rsdp_addr, 0xE0000);
	struct boot_e820_entry t[E820_MAX_ENTRIES_ZEROPAGE];
	int n = boot_e820(&mem, t, E820_MAX_ENTRIES_ZEROPAGE);
	cr_assert_eq(bp->e820_entries, n);
	cr_assert_eq(memcmp(bp->e820_table, t, n * sizeof(t[0])), 0);
}

Test(boot_load, no_initrd)
{
	struct boot_info bi;
	char err[256] = "";
	cr_assert_eq(boot_load(&mem, &kern, NULL, 0, "", 0, &bi, err, sizeof(err)), 0, "%s", err);
	const struct boot_params *bp = gmem_ptr(&mem, BOOT_PARAMS_ADDR, sizeof(*bp));
	cr_assert_eq(bp->hdr.ramdisk_image, 0);
	cr_assert_eq(bp->hdr.ramdisk_size, 0);
	cr_assert_eq(bi.initrd_addr, 0);
}

/* The startup_64 contract: everything the kernel touches before its own page tables is
 * identity-mapped, including just above 3 GiB (beyond this guest's RAM, still mapped). */
Test(boot_load, identity_page_tables)
{
	struct boot_info bi;
	char err[256] = "";
	cr_assert_eq(boot_load(&mem, &kern, NULL, 0, "", 0, &bi, err, sizeof(err)), 0, "%s", err);
	const uint64_t va[] = { 0, 0x1234, 16 * MiB, 16 * MiB + 0x1ff123, 3 * GiB + 2 * MiB,
				4 * GiB - 1 };
	for (size_t i = 0; i < sizeof(va) / sizeof(va[0]); i++)
		cr_assert_eq(walk(va[i]), va[i], "va 0x%llx maps elsewhere", (unsigned long long)va[i]);
}

/* __BOOT_CS (0x10) must be a 64-bit code segment, __BOOT_DS (0x18) a writable data one. */
Test(boot_load, gdt)
{
	struct boot_info bi;
	char err[256] = "";
	cr_assert_eq(boot_load(&mem, &kern, NULL, 0, "", 0, &bi, err, sizeof(err)), 0, "%s", err);
	const uint64_t *gdt = gmem_ptr(&mem, BOOT_GDT_ADDR, 5 * 8);
	uint64_t cs = gdt[0x10 / 8], ds = gdt[0x18 / 8];
#define BIT(d, n) (((d) >> (n)) & 1)
	cr_assert(BIT(cs, 47) && BIT(cs, 44) && BIT(cs, 43), "CS not a present code segment");
	cr_assert(BIT(cs, 53), "CS L bit clear: not 64-bit");
	cr_assert(!BIT(cs, 54), "CS has both L and D set");
	cr_assert(BIT(ds, 47) && BIT(ds, 44) && !BIT(ds, 43), "DS not a present data segment");
	cr_assert(BIT(ds, 41), "DS not writable");
	cr_assert_eq(gdt[0], 0, "null descriptor");
}

/* cmdline_size excludes the NUL: exactly that many bytes fit, one more does not. */
Test(boot_load, cmdline_length_limit)
{
	char cl[CMDLINE_SIZE + 2];
	memset(cl, 'x', sizeof(cl));
	cl[CMDLINE_SIZE] = '\0';
	struct boot_info bi;
	char err[256] = "";
	cr_assert_eq(boot_load(&mem, &kern, NULL, 0, cl, 0, &bi, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strlen(gmem_ptr(&mem, BOOT_CMDLINE_ADDR, 1)), CMDLINE_SIZE);
	cl[CMDLINE_SIZE] = 'x';
	cl[CMDLINE_SIZE + 1] = '\0';
	cr_assert_lt(boot_load(&mem, &kern, NULL, 0, cl, 0, &bi, err, sizeof(err)), 0);
	cr_assert(strstr(err, "2047"), "%s", err);
}

Test(boot_load, memory_too_small)
{
	struct gmem small;
	cr_assert_eq(gmem_init(&small, 20 * MiB), 0);	/* kernel needs 16 + 8 MiB */
	struct boot_info bi;
	char err[256] = "";
	cr_assert_lt(boot_load(&small, &kern, NULL, 0, "", 0, &bi, err, sizeof(err)), 0);
	cr_assert(strstr(err, "--mem"), "%s", err);
	gmem_free(&small);
}

Test(boot_load, initrd_does_not_fit)
{
	kern.hdr.initrd_addr_max = 0x00ffffff;		/* below the kernel */
	uint8_t initrd[4096] = { 0 };
	struct boot_info bi;
	char err[256] = "";
	cr_assert_lt(boot_load(&mem, &kern, initrd, sizeof(initrd), "", 0, &bi, err, sizeof(err)), 0);
	cr_assert(strstr(err, "initrd"), "%s", err);
}
