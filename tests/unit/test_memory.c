/* Guest RAM: gmem_ptr is the one range check between a guest-supplied address and a host
 * pointer, so its edges (region ends, the 32-bit hole, wrap-around) are each pinned here;
 * gmem_parse_size, which turns --mem into bytes; and the e820 map (boot.c), which is how
 * the guest learns this layout. */
#include <criterion/criterion.h>
#include <errno.h>

#include "vmm/boot.h"
#include "vmm/memory.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* 5 GiB: region 0 is [0, 3 GiB), region 1 is [4 GiB, 6 GiB), backed by base + 3 GiB.
 * MAP_NORESERVE makes this cheap; nothing here touches the pages. */
static struct gmem m;
static void big_init(void) { cr_assert_eq(gmem_init(&m, 5 * GiB), 0); }
static void big_fini(void) { gmem_free(&m); }
TestSuite(gmem_ptr, .init = big_init, .fini = big_fini);

Test(gmem_ptr, layout_split_around_hole)
{
	cr_assert_eq(m.n, 2);
	cr_assert_eq(m.r[0].gpa, 0);
	cr_assert_eq(m.r[0].size, 3 * GiB);
	cr_assert_eq(m.r[1].gpa, 4 * GiB);
	cr_assert_eq(m.r[1].size, 2 * GiB);
	cr_assert_eq(gmem_low_end(&m), 3 * GiB);
}

Test(gmem_ptr, inside)
{
	cr_assert_eq(gmem_ptr(&m, 0, 1), m.base);
	cr_assert_eq(gmem_ptr(&m, 0x1000, 16), m.base + 0x1000);
	cr_assert_eq(gmem_ptr(&m, 0, 3 * GiB), m.base, "all of region 0 at once");
}

/* The last bytes of a region are fine; one more is not. */
Test(gmem_ptr, exactly_at_end)
{
	cr_assert_eq(gmem_ptr(&m, 3 * GiB - 16, 16), m.base + 3 * GiB - 16);
	cr_assert_eq(gmem_ptr(&m, 3 * GiB - 1, 1), m.base + 3 * GiB - 1);
	cr_assert_null(gmem_ptr(&m, 3 * GiB, 1));
	cr_assert_eq(gmem_ptr(&m, 6 * GiB - 8, 8), m.base + 5 * GiB - 8);
	cr_assert_null(gmem_ptr(&m, 6 * GiB, 1));
}

Test(gmem_ptr, straddling_end_of_region0)
{
	cr_assert_null(gmem_ptr(&m, 3 * GiB - 8, 16));
	cr_assert_null(gmem_ptr(&m, 3 * GiB - 1, 2));
	cr_assert_null(gmem_ptr(&m, 0, 3 * GiB + 1));
}

/* Region 0's host memory continues straight into region 1's: a range running across the
 * hole would be contiguous on the host yet wrong for the guest. */
Test(gmem_ptr, straddling_the_hole)
{
	cr_assert_null(gmem_ptr(&m, 3 * GiB - 4096, GiB + 8192));
	cr_assert_null(gmem_ptr(&m, 4 * GiB - 8, 16));
}

Test(gmem_ptr, in_the_hole)
{
	cr_assert_null(gmem_ptr(&m, 3 * GiB, 8));
	cr_assert_null(gmem_ptr(&m, 0xFEC00000ULL, 4));	/* IOAPIC */
	cr_assert_null(gmem_ptr(&m, 0xFEE00000ULL, 4));	/* local APIC */
	cr_assert_null(gmem_ptr(&m, 4 * GiB - 1, 1));
}

Test(gmem_ptr, above_4g)
{
	cr_assert_eq(gmem_ptr(&m, 4 * GiB, 8), m.base + 3 * GiB);
	cr_assert_eq(gmem_ptr(&m, 5 * GiB + 123, 1), m.base + 4 * GiB + 123);
	cr_assert_null(gmem_ptr(&m, 6 * GiB - 4, 8));
	cr_assert_null(gmem_ptr(&m, 7 * GiB, 1));
}

/* len 0 is checked as 1 byte: the address itself must be RAM. */
Test(gmem_ptr, len_zero)
{
	cr_assert_eq(gmem_ptr(&m, 0x1000, 0), m.base + 0x1000);
	cr_assert_eq(gmem_ptr(&m, 3 * GiB - 1, 0), m.base + 3 * GiB - 1);
	cr_assert_null(gmem_ptr(&m, 3 * GiB, 0));
	cr_assert_null(gmem_ptr(&m, 6 * GiB, 0));
}

Test(gmem_ptr, huge_len)
{
	cr_assert_null(gmem_ptr(&m, 0, UINT64_MAX));
	cr_assert_null(gmem_ptr(&m, 0x1000, 1ULL << 63));
	cr_assert_null(gmem_ptr(&m, 4 * GiB, 2 * GiB + 1));
	cr_assert_null(gmem_ptr(&m, 4 * GiB, UINT64_MAX));
}

/* gpa + len past 2^64: a naive "gpa + len <= end" check wraps and passes. */
Test(gmem_ptr, wraparound)
{
	cr_assert_null(gmem_ptr(&m, UINT64_MAX - 1, 4));
	cr_assert_null(gmem_ptr(&m, UINT64_MAX, 1));
	cr_assert_null(gmem_ptr(&m, UINT64_MAX, 0));
	cr_assert_null(gmem_ptr(&m, 0x1000, UINT64_MAX - 0xfff));	/* sum is exactly 2^64 */
	cr_assert_null(gmem_ptr(&m, 4 * GiB + 8, UINT64_MAX - 4));
}

/* Below the hole there is one region and no empty high one; at exactly 3 GiB, too. */
Test(gmem_init, small_and_exact_hole)
{
	struct gmem s;
	cr_assert_eq(gmem_init(&s, 512 * MiB), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.ram_size, 512 * MiB);
	cr_assert_eq(gmem_low_end(&s), 512 * MiB);
	cr_assert_eq(gmem_ptr(&s, 512 * MiB - 8, 8), s.base + 512 * MiB - 8);
	cr_assert_null(gmem_ptr(&s, 512 * MiB - 8, 16));
	cr_assert_null(gmem_ptr(&s, 512 * MiB, 1));
	cr_assert_null(gmem_ptr(&s, 4 * GiB, 1));
	gmem_free(&s);
	cr_assert_null(s.base);

	cr_assert_eq(gmem_init(&s, 3 * GiB), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_null(gmem_ptr(&s, 4 * GiB, 1));
	gmem_free(&s);
}

static void expect_size(const char *s, uint64_t want)
{
	uint64_t v = 0xdeadbeef;
	int r = gmem_parse_size(s, &v);
	cr_assert_eq(r, 0, "'%s' rejected (%d)", s, r);
	cr_assert_eq(v, want, "'%s' = %llu, want %llu", s, (unsigned long long)v,
		     (unsigned long long)want);
}

static void expect_bad(const char *s)
{
	uint64_t v = 0;
	int r = gmem_parse_size(s, &v);
	cr_assert(r == -EINVAL || r == -ERANGE, "'%s' accepted as %llu (r=%d)", s,
		  (unsigned long long)v, r);
}

Test(gmem_parse_size, valid)
{
	expect_size("512", 512 * MiB);		/* bare number = MiB, as QEMU -m */
	expect_size("512M", 512 * MiB);
	expect_size("512m", 512 * MiB);
	expect_size("2G", 2 * GiB);
	expect_size("2g", 2 * GiB);
	expect_size("1048576K", GiB);
	expect_size("4096B", 4096);
	expect_size("1GiB", GiB);
	expect_size("1MiB", MiB);
	expect_size("1Gb", GiB);			/* a trailing B/b after a unit is tolerated */
	expect_size("1GB", GiB);
	expect_size("1T", 1ULL << 40);
	expect_size("16777215T", 16777215ULL << 40);	/* the largest whole number of TiB */
	expect_size("18446744073709551615B", UINT64_MAX);
}

Test(gmem_parse_size, invalid)
{
	expect_bad("");
	expect_bad("abc");
	expect_bad("-1");
	expect_bad("+1");
	expect_bad(" 1");
	expect_bad("1X");
	expect_bad("1 G");
	expect_bad("1Gx");
	expect_bad("1iB");
	expect_bad("1BB");
	expect_bad("1BiB");
	expect_bad("1GiBB");
	expect_bad("M");
	cr_assert_eq(gmem_parse_size(NULL, &(uint64_t){ 0 }), -EINVAL);
}

/* Out of range: strtoull itself, and the shift by the unit. */
Test(gmem_parse_size, overflow)
{
	expect_bad("99999999999999999999");
	expect_bad("18446744073709551616B");
	uint64_t v;
	cr_assert_eq(gmem_parse_size("17179869184G", &v), -ERANGE);	/* exactly 2^64 */
	cr_assert_eq(gmem_parse_size("16777216T", &v), -ERANGE);
	cr_assert_eq(gmem_parse_size("18446744073709551615K", &v), -ERANGE);
	cr_assert_eq(gmem_parse_size("17592186044416", &v), -ERANGE);	/* 2^44 MiB */
}

/* e820 as Linux wants it: sorted, disjoint, legacy holes reserved, nothing in the
 * 32-bit MMIO hole, and every RAM byte backed by gmem. */
static void check_e820(uint64_t ram)
{
	struct gmem m;
	cr_assert_eq(gmem_init(&m, ram), 0);
	struct boot_e820_entry t[E820_MAX_ENTRIES_ZEROPAGE];
	int n = boot_e820(&m, t, E820_MAX_ENTRIES_ZEROPAGE);
	uint64_t low = ram < GMEM_HOLE_START ? ram : GMEM_HOLE_START;
	cr_assert_eq(n, ram > GMEM_HOLE_START ? 5 : 4);

	bool base = false, bios = false, low_ram = false, high = false;
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		cr_assert_gt(t[i].size, 0);
		if (i)
			cr_assert_leq(t[i - 1].addr + t[i - 1].size, t[i].addr, "entry %d unsorted/overlaps", i);
		if (t[i].type == 1) {
			total += t[i].size;
			cr_assert(t[i].addr + t[i].size <= GMEM_HOLE_START || t[i].addr >= GMEM_HIGH_START,
				  "RAM entry %d overlaps the MMIO hole", i);
			cr_assert(gmem_ptr(&m, t[i].addr, t[i].size), "RAM entry %d is not backed", i);
		}
		base |= t[i].type == 1 && t[i].addr == 0 && t[i].size == BOOT_EBDA_START;
		bios |= t[i].type == 2 && t[i].addr <= 0xE0000 && t[i].addr + t[i].size >= 0x100000;
		low_ram |= t[i].type == 1 && t[i].addr == MiB && t[i].size == low - MiB;
		high |= t[i].type == 1 && t[i].addr == GMEM_HIGH_START && t[i].size == ram - low;
	}
	cr_assert(base, "no RAM 0-0x9fc00");
	cr_assert(bios, "0xe0000-0x100000 not reserved");
	cr_assert(low_ram, "no RAM 1 MiB-0x%llx", (unsigned long long)low);
	cr_assert_eq(high, ram > GMEM_HOLE_START, "high RAM region wrong");
	cr_assert_leq(total, ram);
	/* A short table is filled up to its size, never past it. */
	cr_assert_eq(boot_e820(&m, t, 2), 2);
	gmem_free(&m);
}

Test(boot_e820, ram_512m) { check_e820(512 * MiB); }
Test(boot_e820, ram_5g) { check_e820(5 * GiB); }
