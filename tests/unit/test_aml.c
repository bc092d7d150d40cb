/* The AML writer against the byte layouts of ACPI 6.4 (chapter 20 for the encoding,
 * 6.4 for resource descriptors), spelled out here byte by byte rather than through
 * aml.c's helpers, then the DSDT acpi_build makes from it judged by iasl, the reference
 * AML parser. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "vmm/acpi.h"
#include "vmm/aml.h"

#define B(...) ((const uint8_t[]){ __VA_ARGS__ }), sizeof((const uint8_t[]){ __VA_ARGS__ })

static struct aml a;

static void aml_fini(void) { aml_free(&a); }

TestSuite(aml, .fini = aml_fini);

static void hexdump(const char *what, const uint8_t *p, size_t n)
{
	char s[3 * 64 + 1] = "";
	for (size_t i = 0; i < n && i < 64; i++)
		sprintf(s + 3 * i, "%02X ", p[i]);
	cr_log_error("%s (%zu bytes): %s", what, n, s);
}

/* The whole output is exactly `want`. */
static void expect(const uint8_t *want, size_t n)
{
	long len = aml_finish(&a);
	cr_assert_eq(len, (long)n, "length %ld, want %zu", len, n);
	if (memcmp(a.buf, want, n)) {
		hexdump("got ", a.buf, n);
		hexdump("want", want, n);
		cr_assert_fail("bytes differ");
	}
}

static void expect_err(int err)
{
	cr_assert_eq(aml_finish(&a), err, "aml_finish %ld, want %d", aml_finish(&a), err);
}

/* PkgLength counts itself: one byte holds totals up to 63, two up to 4095, three up to
 * 2^20 - 1, four up to 2^28 - 1.  Scope (TEST) { Name (STR_, "xxx...") } has
 * 4 + 1 + 4 + 1 + k + 1 bytes of content for a k-character string. */
static void check_pkglen(size_t content, const uint8_t *want, size_t n)
{
	char *s = malloc(content - 11 + 1);
	memset(s, 'x', content - 11);
	s[content - 11] = '\0';
	aml_scope_begin(&a, "TEST");
	aml_name_string(&a, "STR_", s);
	aml_end(&a);
	free(s);
	long len = aml_finish(&a);
	cr_assert_eq(len, (long)(1 + n + content), "content %zu: total %ld", content, len);
	cr_assert_eq(a.buf[0], 0x10, "ScopeOp");
	if (memcmp(a.buf + 1, want, n)) {
		hexdump("PkgLength", a.buf + 1, n);
		cr_assert_fail("content %zu: wrong PkgLength", content);
	}
	cr_assert_eq(memcmp(a.buf + 1 + n, "TEST\x08STR_\x0dxx", 12), 0, "content moved wrongly");
	cr_assert_eq(a.buf[len - 1], 0, "string NUL last");
	aml_free(&a);
}

Test(aml, pkglen_one_to_two_bytes)
{
	check_pkglen(62, B(0x3F));                 /* total 63 */
	check_pkglen(63, B(0x41, 0x04));           /* total 65 = 0x041 */
	check_pkglen(64, B(0x42, 0x04));
}

Test(aml, pkglen_two_to_three_bytes)
{
	check_pkglen(4093, B(0x4F, 0xFF));         /* total 4095 = 0xFFF */
	check_pkglen(4094, B(0x81, 0x00, 0x01));   /* total 4097 = 0x1001 */
	check_pkglen(4095, B(0x82, 0x00, 0x01));
	check_pkglen(4096, B(0x83, 0x00, 0x01));
}

Test(aml, pkglen_three_to_four_bytes)
{
	check_pkglen(0xFFFFC, B(0x8F, 0xFF, 0xFF));         /* total 0xFFFFF */
	check_pkglen(0xFFFFD, B(0xC1, 0x00, 0x00, 0x01));   /* total 0x100001 */
}

static void check_int(uint64_t v, const uint8_t *want, size_t n)
{
	aml_int(&a, v);
	expect(want, n);
	aml_free(&a);
}

Test(aml, integers_smallest_encoding)
{
	check_int(0, B(0x00));                                   /* ZeroOp */
	check_int(1, B(0x01));                                   /* OneOp */
	check_int(2, B(0x0A, 0x02));
	check_int(0xFF, B(0x0A, 0xFF));                          /* BytePrefix */
	check_int(0x100, B(0x0B, 0x00, 0x01));                   /* WordPrefix */
	check_int(0xFFFF, B(0x0B, 0xFF, 0xFF));
	check_int(0x10000, B(0x0C, 0x00, 0x00, 0x01, 0x00));     /* DWordPrefix */
	check_int(0xFFFFFFFF, B(0x0C, 0xFF, 0xFF, 0xFF, 0xFF));
	check_int(1ULL << 32, B(0x0E, 0, 0, 0, 0, 0x01, 0, 0, 0)); /* QWordPrefix */
	check_int(1ULL << 63, B(0x0E, 0, 0, 0, 0, 0, 0, 0, 0x80));
}

Test(aml, eisaid)
{
	cr_assert_eq(aml_eisaid_value("PNP0A03"), 0x030AD041);
	cr_assert_eq(aml_eisaid_value("PNP0C02"), 0x020CD041);
	aml_name_eisaid(&a, "_HID", "PNP0A03");
	expect(B(0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0A, 0x03));
}

Test(aml, eisaid_rejects_malformed)
{
	const char *bad[] = { "pnp0a03", "PNP0A0", "PNP0A033", "PNP0G03", "P1P0A03", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(aml_eisaid_value(bad[i]), 0, "\"%s\" accepted", bad[i]);
		aml_name_eisaid(&a, "_HID", bad[i]);
		expect_err(-EINVAL);
		aml_free(&a);
	}
}

Test(aml, name_string)
{
	aml_name_string(&a, "_HID", "LNRO0005");
	expect(B(0x08, '_', 'H', 'I', 'D', 0x0D, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0));
}

/* Short names padded with '_'; root and parent prefixes; dual and multi name paths. */
Test(aml, name_paths)
{
	aml_name_int(&a, "A", 0);
	aml_name_int(&a, "_SB", 0);
	aml_name_int(&a, "\\_SB_", 0);
	aml_name_int(&a, "^FOO", 0);
	aml_name_int(&a, "\\_SB_.PCI0", 0);
	aml_name_int(&a, "_SB_.PCI0.VR0", 0);
	expect(B(0x08, 'A', '_', '_', '_', 0,
		 0x08, '_', 'S', 'B', '_', 0,
		 0x08, '\\', '_', 'S', 'B', '_', 0,
		 0x08, '^', 'F', 'O', 'O', '_', 0,
		 0x08, '\\', 0x2E, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 0,
		 0x08, 0x2F, 3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'V', 'R', '0', '_', 0));
}

Test(aml, name_validation)
{
	const char *bad[] = { "", "abcd", "ABCDE", "1ABC", "A-B", "A B", "_SB_.", ".ABC", "A..B",
			      "\\_SB_.pci0", "\\^A", "A.B.C.D.E.F.G.H.I" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_name_int(&a, bad[i], 1);
		expect_err(-EINVAL);
		cr_assert_eq(aml_finish(&a), -EINVAL, "\"%s\" accepted", bad[i]);
		aml_free(&a);
	}
	/* A bare root prefix is a valid path: Scope (\) { } is root prefix + NullName. */
	aml_scope_begin(&a, "\\");
	aml_end(&a);
	expect(B(0x10, 0x03, '\\', 0x00));
}

/* The first error sticks: later, valid calls neither clear it nor write. */
Test(aml, error_is_sticky)
{
	aml_name_int(&a, "GOOD", 1);
	aml_name_int(&a, "bad", 1);
	size_t len = a.len;
	aml_name_int(&a, "MORE", 1);
	aml_device_begin(&a, "DEV0");
	aml_end(&a);
	cr_assert_eq(a.len, len);
	expect_err(-EINVAL);
	expect_err(-EINVAL);
}

Test(aml, device_in_scope)
{
	aml_scope_begin(&a, "\\_SB_");
	aml_device_begin(&a, "VR00");
	aml_name_int(&a, "_UID", 0);
	aml_end(&a);
	aml_end(&a);
	expect(B(0x10, 0x13, '\\', '_', 'S', 'B', '_',
		 0x5B, 0x82, 0x0B, 'V', 'R', '0', '0', 0x08, '_', 'U', 'I', 'D', 0x00));
}

/* A _PRT entry: nested packages, NumElements counted per package. */
Test(aml, nested_packages)
{
	aml_name(&a, "_PRT");
	aml_package_begin(&a);
	aml_package_begin(&a);
	aml_int(&a, 0x1FFFF);
	aml_int(&a, 0);
	aml_int(&a, 0);
	aml_int(&a, 0x10);
	aml_end(&a);
	aml_package_begin(&a);
	aml_end(&a);
	aml_end(&a);
	expect(B(0x08, '_', 'P', 'R', 'T',
		 0x12, 0x11, 0x02,
		 0x12, 0x0B, 0x04, 0x0C, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 0x0A, 0x10,
		 0x12, 0x02, 0x00));
}

Test(aml, package_too_many_elements)
{
	aml_package_begin(&a);
	for (int i = 0; i < 256; i++)
		aml_int(&a, 0);
	aml_end(&a);
	expect_err(-E2BIG);
}

Test(aml, method_returning_constant)
{
	aml_method_begin(&a, "_STA", 0, false);
	aml_return(&a);
	aml_int(&a, 0x0F);
	aml_end(&a);
	aml_method_begin(&a, "M1", 1, true);
	aml_end(&a);
	expect(B(0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xA4, 0x0A, 0x0F,
		 0x14, 0x06, 'M', '1', '_', '_', 0x09));
}

Test(aml, unbalanced_scopes)
{
	aml_end(&a);
	expect_err(-EINVAL);
	aml_free(&a);
	aml_device_begin(&a, "DEV0");
	expect_err(-EINVAL);
	aml_free(&a);
	for (int i = 0; i <= AML_MAX_DEPTH; i++)
		aml_scope_begin(&a, "S");
	expect_err(-E2BIG);
}

Test(aml, misplaced_objects)
{
	aml_res_mem32(&a, true, 0, 0x1000);        /* descriptor outside a template */
	expect_err(-EINVAL);
	aml_free(&a);
	aml_package_begin(&a);
	aml_name_int(&a, "X", 1);                  /* a Name as a package element */
	expect_err(-EINVAL);
	aml_free(&a);
	aml_res_begin(&a);
	aml_int(&a, 1);                            /* a data object inside a template */
	expect_err(-EINVAL);
	aml_free(&a);
	aml_res_begin(&a);
	aml_end(&a);                               /* a template closed without End Tag */
	expect_err(-EINVAL);
}

/* ResourceTemplate () { <one descriptor> }: BufferOp, PkgLength, BufferSize (BytePrefix),
 * the descriptor, End Tag 0x79 with checksum 0. */
static void check_desc(const uint8_t *want, size_t n)
{
	cr_assert_eq(aml_finish(&a), (long)(n + 6), "len %ld", aml_finish(&a));
	const uint8_t head[] = { 0x11, n + 5, 0x0A, n + 2 };
	cr_assert_eq(memcmp(a.buf, head, 4), 0, "buffer header");
	if (memcmp(a.buf + 4, want, n)) {
		hexdump("got ", a.buf + 4, n);
		hexdump("want", want, n);
		cr_assert_fail("descriptor differs");
	}
	cr_assert_eq(a.buf[4 + n], 0x79, "End Tag");
	cr_assert_eq(a.buf[5 + n], 0x00, "End Tag checksum");
	aml_free(&a);
}

Test(aml, end_tag_only)
{
	aml_res_begin(&a);
	aml_res_end(&a);
	expect(B(0x11, 0x05, 0x0A, 0x02, 0x79, 0x00));
}

Test(aml, res_memory32_fixed)
{
	/* 0x86, length 9, info (bit 0 = writable), base, length */
	aml_res_begin(&a);
	aml_res_mem32(&a, true, 0xD0000000, 0x200);
	aml_res_end(&a);
	check_desc(B(0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xD0, 0x00, 0x02, 0x00, 0x00));
	aml_res_begin(&a);
	aml_res_mem32(&a, false, 0xB0000000, 0x100000);
	aml_res_end(&a);
	check_desc(B(0x86, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0xB0, 0x00, 0x00, 0x10, 0x00));
}

Test(aml, res_extended_interrupt)
{
	/* 0x89, length 6, flags (0 consumer, 1 edge, 2 active-low, 3 shared), count, GSI */
	aml_res_begin(&a);
	aml_res_interrupt(&a, AML_IRQ_EDGE | AML_IRQ_ACTIVE_HIGH | AML_IRQ_EXCLUSIVE, 5);
	aml_res_end(&a);
	check_desc(B(0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00));
	aml_res_begin(&a);
	aml_res_interrupt(&a, AML_IRQ_LEVEL | AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED, 0x12345678);
	aml_res_end(&a);
	check_desc(B(0x89, 0x06, 0x00, 0x0D, 0x01, 0x78, 0x56, 0x34, 0x12));
	aml_res_begin(&a);
	aml_res_interrupt(&a, 1u << 4, 5);         /* wake-capable: not offered */
	aml_res_end(&a);
	expect_err(-EINVAL);
}

Test(aml, res_io)
{
	/* small item 0x47, Decode16, min, max, alignment, length */
	aml_res_begin(&a);
	aml_res_io(&a, 0xCF8, 0xCF8, 1, 8);
	aml_res_end(&a);
	check_desc(B(0x47, 0x01, 0xF8, 0x0C, 0xF8, 0x0C, 0x01, 0x08));
}

/* Address space descriptors: tag, length, type (0 memory, 1 I/O, 2 bus), general flags
 * 0x0C (MinFixed, MaxFixed, PosDecode, producer), type flags, then granularity, min, max,
 * translation, length. */
Test(aml, res_word_bus_number)
{
	aml_res_begin(&a);
	aml_res_word_bus(&a, 0, 0);
	aml_res_end(&a);
	check_desc(B(0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00,
		     0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00));
}

Test(aml, res_word_io)
{
	aml_res_begin(&a);
	aml_res_word_io(&a, 0x0D00, 0xFFFF);
	aml_res_end(&a);
	check_desc(B(0x88, 0x0D, 0x00, 0x01, 0x0C, 0x03,                /* EntireRange */
		     0x00, 0x00, 0x00, 0x0D, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0xF3));
}

Test(aml, res_dword_memory)
{
	aml_res_begin(&a);
	aml_res_dword_mem(&a, false, 0xC0000000, 0xFEBFFFFF);
	aml_res_end(&a);
	check_desc(B(0x87, 0x17, 0x00, 0x00, 0x0C, 0x01,                /* NonCacheable, RW */
		     0, 0, 0, 0, 0x00, 0x00, 0x00, 0xC0, 0xFF, 0xFF, 0xBF, 0xFE,
		     0, 0, 0, 0, 0x00, 0x00, 0xC0, 0x3E));
}

Test(aml, res_qword_memory)
{
	aml_res_begin(&a);
	aml_res_qword_mem(&a, true, 0x8000000000, 0x8FFFFFFFFF);
	aml_res_end(&a);
	check_desc(B(0x8A, 0x2B, 0x00, 0x00, 0x0C, 0x03,                /* Cacheable, RW */
		     0, 0, 0, 0, 0, 0, 0, 0,
		     0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,
		     0xFF, 0xFF, 0xFF, 0xFF, 0x8F, 0x00, 0x00, 0x00,
		     0, 0, 0, 0, 0, 0, 0, 0,
		     0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00));
}

Test(aml, res_range_backwards)
{
	aml_res_begin(&a);
	aml_res_word_io(&a, 0x100, 0xFF);
	aml_res_end(&a);
	expect_err(-EINVAL);
}

/* ---- acpi_build with devices ---- */

#define GPA     0xE0000ULL
#define BUFLEN  0x20000
#define ECAM    0xB0000000ULL

static uint8_t buf[BUFLEN];
static long used;

static const struct acpi_mmio_dev mmio2[] = {
	{ 0xD0000000, 0x200, 10 },
	{ 0xD0001000, 0x200, 11 },
};

static const struct acpi_config full = {
	.ncpus = 2, .mmio = mmio2, .nmmio = 2,
	.pci = { .present = true, .ecam_base = ECAM,
		 .mem32_base = 0xC0000000, .mem32_size = 0x10000000,
		 .mem64_base = 0x8000000000, .mem64_size = 0x8000000000,
		 .intx_gsi_base = 16 },
};

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void build(const struct acpi_config *cfg)
{
	memset(buf, 0xa5, sizeof(buf));
	used = acpi_build(buf, BUFLEN, GPA, cfg);
	cr_assert_gt(used, 0, "acpi_build: %ld", used);
}

/* A checksummed table at `gpa` inside what acpi_build used. */
static const uint8_t *table(uint64_t gpa)
{
	cr_assert(gpa >= GPA && gpa - GPA + 36 <= (uint64_t)used);
	const uint8_t *t = buf + (gpa - GPA);
	cr_assert_leq(gpa - GPA + rd32(t + 4), (uint64_t)used, "%.4s past the end", t);
	cr_assert_eq(acpi_checksum(t, rd32(t + 4)), 0, "%.4s checksum", t);
	return t;
}

/* The XSDT's entries in order, as 4-char signatures joined: "FACPAPICMCFG". */
static void xsdt_sigs(char *out, size_t n)
{
	cr_assert_eq(acpi_checksum(buf, 36), 0, "RSDP");
	const uint8_t *x = table(rd64(buf + 24));
	out[0] = '\0';
	for (uint32_t off = 36; off < rd32(x + 4); off += 8)
		if (strlen(out) + 4 < n)
			strncat(out, (const char *)table(rd64(x + off)), 4);
}

static const uint8_t *find(const char *sig)
{
	const uint8_t *x = table(rd64(buf + 24));
	for (uint32_t off = 36; off < rd32(x + 4); off += 8) {
		const uint8_t *t = table(rd64(x + off));
		if (!memcmp(t, sig, 4))
			return t;
	}
	cr_assert_fail("no %s", sig);
	return NULL;
}

static const uint8_t *dsdt(void)
{
	return table(rd32(find("FACP") + 40));
}

Test(acpi_dev, xsdt_and_mcfg)
{
	build(&full);
	char sigs[64];
	xsdt_sigs(sigs, sizeof(sigs));
	cr_assert_str_eq(sigs, "FACPAPICMCFG");
	const uint8_t *m = find("MCFG");
	cr_assert_eq(rd32(m + 4), 60, "one allocation");
	cr_assert_eq(m[8], 1, "revision");
	cr_assert_eq(rd64(m + 36), 0, "reserved");
	cr_assert_eq(rd64(m + 44), ECAM, "base");
	cr_assert_eq(m[52] | m[53] << 8, 0, "segment");
	cr_assert_eq(m[54], 0, "start bus");
	cr_assert_eq(m[55], 0, "end bus");
	cr_assert_eq(rd32(m + 56), 0, "reserved");
	table(rd32(find("FACP") + 40));
}

/* Without PCI: no MCFG, and the XSDT is what it was. */
Test(acpi_dev, mmio_only_has_no_mcfg)
{
	struct acpi_config cfg = { .ncpus = 1, .mmio = mmio2, .nmmio = 2 };
	build(&cfg);
	char sigs[64];
	xsdt_sigs(sigs, sizeof(sigs));
	cr_assert_str_eq(sigs, "FACPAPIC");
	const uint8_t *d = dsdt();
	cr_assert(memmem(d, rd32(d + 4), "LNRO0005", 8));
	cr_assert_null(memmem(d, rd32(d + 4), "PCI0", 4));
}

/* No devices: the DSDT body is \_S5 alone, as before devices existed. */
Test(acpi_dev, no_devices_plain_dsdt)
{
	struct acpi_config cfg = { .ncpus = 1 };
	build(&cfg);
	const uint8_t *d = dsdt();
	const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0A, 0x05, 0x00 };
	cr_assert_eq(rd32(d + 4), 36 + sizeof(s5));
	cr_assert_eq(memcmp(d + 36, s5, sizeof(s5)), 0);
}

Test(acpi_dev, all_256_mmio_names)
{
	static struct acpi_mmio_dev many[257];
	for (int i = 0; i < 257; i++)
		many[i] = (struct acpi_mmio_dev){ 0xD0000000 + 0x1000 * i, 0x200, 5 };
	struct acpi_config cfg = { .ncpus = 1, .mmio = many, .nmmio = 256 };
	build(&cfg);
	const uint8_t *d = dsdt();
	cr_assert(memmem(d, rd32(d + 4), "VRFF", 4));
	cfg.nmmio = 257;
	cr_assert_eq(acpi_build(buf, BUFLEN, GPA, &cfg), -EINVAL);
}

Test(acpi_dev, rejects_unexpressible)
{
	struct acpi_mmio_dev high = { 0xFFFFF000, 0x2000, 5 };
	struct acpi_config cfg = { .ncpus = 1, .mmio = &high, .nmmio = 1 };
	cr_assert_eq(acpi_build(buf, BUFLEN, GPA, &cfg), -EINVAL, "mmio above 4 GiB");
	cfg = full;
	cfg.pci.ecam_base = ECAM + 0x1000;
	cr_assert_eq(acpi_build(buf, BUFLEN, GPA, &cfg), -EINVAL, "unaligned ECAM");
	cfg = full;
	cfg.pci.ecam_base = 1ULL << 32;
	cr_assert_eq(acpi_build(buf, BUFLEN, GPA, &cfg), -EINVAL, "ECAM above 4 GiB");
	cfg = full;
	cfg.pci.mem32_size = 0x40000001;
	cr_assert_eq(acpi_build(buf, BUFLEN, GPA, &cfg), -EINVAL, "mem32 window past 4 GiB");
}

Test(acpi_dev, too_small)
{
	build(&full);
	static uint8_t small[BUFLEN];
	cr_assert_eq(acpi_build(small, used, GPA, &full), used);
	cr_assert_eq(acpi_build(small, used - 1, GPA, &full), -ENOSPC);
}

/* Freed by the suite's fini, so a failed assertion does not also report a leak. */
static char *dsl, *raw;

static void dev_fini(void)
{
	free(dsl);
	free(raw);
	dsl = raw = NULL;
}

TestSuite(acpi_dev, .fini = dev_fini);

static int sh(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The .dsl with all whitespace removed, so checks do not depend on iasl's layout. */
static char *read_squeezed(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert(f, "no %s", path);
	char *s = malloc(1 << 20);
	size_t n = 0;
	for (int c; (c = fgetc(f)) != EOF && n < (1 << 20) - 1;)
		if (c != ' ' && c != '\n' && c != '\t' && c != '\r')
			s[n++] = c;
	s[n] = '\0';
	fclose(f);
	return s;
}

static void has(const char *squeezed, const char *want, const char *dir)
{
	char *w = strdup(want), *o = w;
	for (const char *p = want; *p; p++)
		if (*p != ' ')
			*o++ = *p;
	*o = '\0';
	bool found = strstr(squeezed, w);
	free(w);
	cr_assert(found, "\"%s\" not in %s/dsdt.dsl", want, dir);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* iasl disassembles the DSDT, and compiling the disassembly gives back the same AML
 * body (so iasl's own encoder agrees with ours on every byte). */
Test(acpi_dev, iasl_reads_dsdt)
{
	if (sh("command -v iasl >/dev/null 2>&1") != 0)
		cr_skip_test("iasl not installed (Debian acpica-tools)");
	build(&full);
	const uint8_t *d = dsdt();
	char dir[] = "/tmp/minivmm-aml-XXXXXX", path[128], cmd[512];
	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	FILE *f = fopen(path, "wb");
	cr_assert(f);
	cr_assert_eq(fwrite(d, 1, rd32(d + 4), f), rd32(d + 4));
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >iasl.log 2>&1", dir);
	cr_assert_eq(sh(cmd), 0, "iasl -d failed: %s/iasl.log", dir);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -p re dsdt.dsl >>iasl.log 2>&1 &&"
		 " cmp -i 36 re.aml dsdt.dat >>iasl.log 2>&1", dir);
	cr_assert_eq(sh(cmd), 0, "recompiled DSDT differs: %s/iasl.log", dir);

	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	dsl = read_squeezed(path);
	has(dsl, "Name (_S5, Package (0x02)", dir);
	has(dsl, "Device (VR00) { Name (_HID, \"LNRO0005\")", dir);
	has(dsl, "Device (VR01) { Name (_HID, \"LNRO0005\")", dir);
	has(dsl, "Memory32Fixed (ReadWrite, 0xD0000000, // Address Base 0x00000200,", dir);
	has(dsl, "Memory32Fixed (ReadWrite, 0xD0001000, // Address Base 0x00000200,", dir);
	has(dsl, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 0x0000000A, }", dir);
	has(dsl, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 0x0000000B, }", dir);
	has(dsl, "Device (PCI0) { Name (_HID, EisaId (\"PNP0A03\")", dir);
	has(dsl, "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,", dir);
	has(dsl, "IO (Decode16, 0x0CF8, // Range Minimum 0x0CF8, // Range Maximum 0x01, //"
		 " Alignment 0x08, // Length", dir);
	has(dsl, "0x0D00, // Range Minimum 0xFFFF, // Range Maximum", dir);
	has(dsl, "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable,"
		 " ReadWrite, 0x00000000, // Granularity 0xC0000000, // Range Minimum"
		 " 0xCFFFFFFF, // Range Maximum", dir);
	has(dsl, "QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable,"
		 " ReadWrite, 0x0000000000000000, // Granularity 0x0000008000000000, // Range"
		 " Minimum 0x000000FFFFFFFFFF, // Range Maximum", dir);
	/* _PRT: 31 slots x 4 pins; slot 1 INTA -> 16 + 1, slot 31 INTD -> 16 + 34 % 4. */
	has(dsl, "Name (_PRT, Package (0x7C)", dir);
	has(dsl, "Package (0x04) { 0x0001FFFF, Zero, Zero, 0x11 }", dir);
	has(dsl, "Package (0x04) { 0x001FFFFF, 0x03, Zero, 0x12 }", dir);
	cr_assert_eq(count(dsl, "Package(0x04)"), 124);
	has(dsl, "Device (MRES) { Name (_HID, EisaId (\"PNP0C02\")", dir);
	has(dsl, "Memory32Fixed (ReadWrite, 0xB0000000, // Address Base 0x00100000,", dir);
	/* The brief's literal strings, in iasl's own spacing. */
	size_t rawlen = 0;
	f = fopen(path, "r");
	cr_assert(f);
	cr_assert_gt(getdelim(&raw, &rawlen, '\0', f), 0);
	fclose(f);
	const char *lit[] = { "LNRO0005", "0xD0000000", "0xD0001000", "PNP0A03", "_PRT",
			      "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive",
			      "WordBusNumber", "QWordMemory", "_S5_" };
	for (size_t i = 0; i < sizeof(lit) / sizeof(lit[0]); i++)
		cr_assert(strstr(raw, lit[i]), "\"%s\" not in %s", lit[i], path);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(sh(cmd), 0);
}
