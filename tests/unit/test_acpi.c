/* ACPI tables as a kernel finds them: follow RSDP -> XSDT -> FADT/MADT -> DSDT by guest
 * address, reading fields at their ACPI 6 spec offsets (not through acpi.c's structs, so
 * a layout mistake there shows up here), and let iasl judge the AML.  FADT expectations
 * follow devices/power.h, the ports the power device really listens on. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devices/power.h"
#include "vmm/acpi.h"
#include "vmm/vm.h"

#define GPA     0xE0000ULL	/* where minivmm puts them */
#define BUFLEN  0x20000

static uint8_t buf[BUFLEN];
static long used;

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

/* The table at guest address `gpa`: inside what acpi_build used, checksummed, with `sig`. */
static const uint8_t *table(uint64_t gpa, const char *sig)
{
	cr_assert(gpa >= GPA && gpa - GPA + 36 <= (uint64_t)used, "%s at 0x%llx outside the tables",
		  sig, (unsigned long long)gpa);
	const uint8_t *t = buf + (gpa - GPA);
	cr_assert_eq(memcmp(t, sig, 4), 0, "want %s, found %.4s", sig, (const char *)t);
	uint32_t len = rd32(t + 4);
	cr_assert_geq(len, 36);
	cr_assert_leq(gpa - GPA + len, (uint64_t)used, "%s runs past the end", sig);
	cr_assert_eq(sum(t, len), 0, "%s checksum", sig);
	return t;
}

static const uint8_t *rsdp(void)
{
	cr_assert_eq(memcmp(buf, "RSD PTR ", 8), 0);
	cr_assert_eq(sum(buf, 20), 0, "RSDP v1 checksum");
	cr_assert_eq(buf[15], 2, "revision 2: has an XSDT");
	cr_assert_eq(rd32(buf + 20), 36);
	cr_assert_eq(sum(buf, 36), 0, "RSDP extended checksum");
	return buf;
}

/* XSDT entries by signature. */
static const uint8_t *find(const char *sig)
{
	const uint8_t *x = table(rd64(rsdp() + 24), "XSDT");
	uint32_t n = (rd32(x + 4) - 36) / 8;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = rd64(x + 36 + 8 * i);
		if (a >= GPA && a - GPA + 4 <= (uint64_t)used && !memcmp(buf + (a - GPA), sig, 4))
			return table(a, sig);
	}
	cr_assert_fail("%s not in the XSDT", sig);
	return NULL;
}

static void build(int ncpus)
{
	memset(buf, 0xa5, sizeof(buf));		/* no accidental zero checksums */
	struct acpi_config cfg = { .ncpus = ncpus };
	used = acpi_build(buf, BUFLEN, GPA, &cfg);
	cr_assert_gt(used, 0, "acpi_build: %ld", used);
	cr_assert_leq(used, BUFLEN);
}

static void check_all(int ncpus)
{
	build(ncpus);
	const uint8_t *x = table(rd64(rsdp() + 24), "XSDT");
	cr_assert_eq(rd32(x + 4), 36 + 2 * 8, "XSDT lists FACP and APIC");
	find("FACP");

	/* MADT: local APIC address, then entries up to the table's length. */
	const uint8_t *madt = find("APIC");
	cr_assert_eq(rd32(madt + 36), LAPIC_ADDR);
	uint32_t len = rd32(madt + 4);
	int lapics = 0, ioapics = 0;
	bool *seen = calloc(256, 1);
	for (uint32_t off = 44; off < len;) {
		uint8_t type = madt[off], elen = madt[off + 1];
		cr_assert_geq(elen, 2);
		cr_assert_leq(off + elen, len, "MADT entry runs past the table");
		if (type == 0) {
			cr_assert_eq(elen, 8);
			uint8_t id = madt[off + 3];
			cr_assert(rd32(madt + off + 4) & 1, "CPU %u not enabled", id);
			cr_assert_lt(id, ncpus);
			cr_assert(!seen[id], "APIC id %u twice", id);
			seen[id] = true;
			lapics++;
		} else if (type == 1) {
			cr_assert_eq(elen, 12);
			cr_assert_eq(rd32(madt + off + 4), IOAPIC_ADDR);
			cr_assert_eq(rd32(madt + off + 8), 0, "GSI base");
			ioapics++;
		}
		off += elen;
	}
	free(seen);
	cr_assert_eq(lapics, ncpus);
	cr_assert_eq(ioapics, 1);
}

Test(acpi, one_cpu) { check_all(1); }
Test(acpi, four_cpus) { check_all(4); }
Test(acpi, many_cpus) { check_all(254); }

/* A GAS at `off` naming `len` bytes of I/O space at `port`. */
static void check_gas_io(const uint8_t *f, unsigned off, uint16_t port, unsigned len)
{
	cr_assert_eq(f[off], 1, "GAS at %u: not system I/O", off);
	cr_assert_eq(f[off + 1], len * 8, "GAS at %u: bit width", off);
	cr_assert_eq(rd64(f + off + 4), port, "GAS at %u: address", off);
}

/* PC-compatible FADT (not hardware-reduced: on x86 that makes Linux drop the 8259 and
 * ISA IRQs 0-15): power-off goes through PM1a_CNT, and the PM1 blocks are exactly where
 * devices/power.c listens, in both the 32-bit and the X_ (GAS) fields, which must agree. */
Test(acpi, fadt)
{
	build(2);
	const uint8_t *f = find("FACP");
	cr_assert_eq(rd32(f + 4), 276, "ACPI 6 FADT length");
	cr_assert_eq(f[8], 6, "revision");
	cr_assert_eq(rd32(f + 112) & (1u << 20), 0, "HW_REDUCED_ACPI set");
	/* DSDT and X_DSDT both lead to the DSDT. */
	table(rd32(f + 40), "DSDT");
	table(rd64(f + 140), "DSDT");
	cr_assert_eq(rd64(f + 140), rd32(f + 40));
	/* No SMI_CMD: always in ACPI mode. */
	cr_assert_eq(rd32(f + 48), 0);
	/* PM1a event block: 32-bit address at 56, length at 88 (at least 4), X_ GAS at 148. */
	cr_assert_eq(rd32(f + 56), POWER_PM1A_EVT_PORT);
	cr_assert_eq(f[88], POWER_PM1_EVT_LEN);
	cr_assert_geq(f[88], 4);
	check_gas_io(f, 148, POWER_PM1A_EVT_PORT, POWER_PM1_EVT_LEN);
	/* PM1a control block: 64 / 89 (at least 2) / X_ GAS at 172. */
	cr_assert_eq(rd32(f + 64), POWER_PM1A_CNT_PORT);
	cr_assert_eq(f[89], POWER_PM1_CNT_LEN);
	cr_assert_geq(f[89], 2);
	check_gas_io(f, 172, POWER_PM1A_CNT_PORT, POWER_PM1_CNT_LEN);
	/* SCI on a legacy pin. */
	cr_assert_lt(rd32(f + 46) & 0xffff, 16);
	/* RESET_REG: the i8042 reset, flagged as supported. */
	cr_assert(rd32(f + 112) & (1u << 10));
	check_gas_io(f, 116, POWER_RESET_PORT, 1);
	cr_assert_eq(f[128], POWER_RESET_VALUE);
}

static const uint8_t *dsdt(void)
{
	return table(rd32(find("FACP") + 40), "DSDT");
}

/* Name (_S5_, Package (2) { 5, 0 }): what the kernel writes to SLP_TYP to power off. */
Test(acpi, dsdt_has_s5)
{
	build(1);
	const uint8_t *d = dsdt();
	uint32_t len = rd32(d + 4);
	const uint8_t want[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0A, POWER_S5_TYPE };
	bool found = false;
	for (uint32_t i = 36; i + sizeof(want) <= len; i++)
		found |= !memcmp(d + i, want, sizeof(want));
	cr_assert(found, "no _S5_ package in the DSDT");
}

/* A machine with devices: two virtio-mmio windows and a PCI host bridge. */
static const struct acpi_mmio_dev mmio[2] = {
	{ 0xD0000000ULL, 0x200, 5 }, { 0xD0001000ULL, 0x200, 6 },
};

static struct acpi_config with_devices(int ncpus)
{
	return (struct acpi_config){
		.ncpus = ncpus, .mmio = mmio, .nmmio = 2,
		.pci = { .present = true, .ecam_base = 0xE0000000ULL,
			 .mem32_base = 0xC0000000ULL, .mem32_size = 0x10000000,
			 .mem64_base = 1ULL << 40, .mem64_size = 1ULL << 32, .intx_gsi_base = 16 },
	};
}

static bool contains(const uint8_t *p, size_t n, const void *needle, size_t len)
{
	for (size_t i = 0; i + len <= n; i++)
		if (!memcmp(p + i, needle, len))
			return true;
	return false;
}

/* Devices go into the DSDT (still checksummed, still with _S5_) and PCI adds an MCFG
 * naming the ECAM window for segment 0, bus 0. */
Test(acpi, with_devices)
{
	struct acpi_config cfg = with_devices(4);
	used = acpi_build(buf, BUFLEN, GPA, &cfg);
	cr_assert_gt(used, 0, "acpi_build: %ld", used);
	const uint8_t *x = table(rd64(rsdp() + 24), "XSDT");
	cr_assert_eq(rd32(x + 4), 36 + 3 * 8, "XSDT lists FACP, APIC and MCFG");
	find("APIC");
	const uint8_t *d = dsdt();
	uint32_t dlen = rd32(d + 4);
	cr_assert(contains(d, dlen, "_S5_", 4));
	cr_assert(contains(d, dlen, "LNRO0005", 8), "no virtio-mmio _HID");
	const uint8_t *m = find("MCFG");
	cr_assert_eq(rd32(m + 4), 36 + 8 + 16);
	cr_assert_eq(rd64(m + 44), 0xE0000000ULL, "ECAM base");
	cr_assert_eq(m[44 + 8] | m[44 + 9] << 8, 0, "segment");
	cr_assert_eq(m[44 + 10], 0, "start bus");
	cr_assert_eq(m[44 + 11], 0, "end bus");
}

/* What the tables cannot express is refused, not truncated. */
Test(acpi, bad_config)
{
	struct acpi_config cfg = with_devices(1);
	struct acpi_mmio_dev high = { 1ULL << 32, 0x200, 5 };
	cfg.mmio = &high;
	cfg.nmmio = 1;
	cr_assert_eq(acpi_build(buf, BUFLEN, GPA, &cfg), -EINVAL, "MMIO window above 4 GiB");
	cfg = with_devices(1);
	cfg.pci.ecam_base += 0x1000;
	cr_assert_eq(acpi_build(buf, BUFLEN, GPA, &cfg), -EINVAL, "unaligned ECAM");
}

/* Exactly the size it reports fits; one byte less, or nothing, does not. */
Test(acpi, too_small)
{
	build(4);
	long need = used;
	static uint8_t small[BUFLEN];
	struct acpi_config cfg = { .ncpus = 4 };
	cr_assert_eq(acpi_build(small, need, GPA, &cfg), need);
	cr_assert_eq(acpi_build(small, need - 1, GPA, &cfg), -ENOSPC);
	cr_assert_eq(acpi_build(small, 36, GPA, &cfg), -ENOSPC);
	cr_assert_eq(acpi_build(small, 0, GPA, &cfg), -ENOSPC);
	cfg.ncpus = 254;
	cr_assert_eq(acpi_build(small, need, GPA, &cfg), -ENOSPC);
}

Test(acpi, checksum)
{
	const uint8_t b[] = { 1, 2, 3, 0xfa };
	cr_assert_eq(acpi_checksum(b, 4), 0);
	cr_assert_eq(acpi_checksum(b, 3), 6);
	cr_assert_eq(acpi_checksum(b, 0), 0);
}

/* Disassemble one table with iasl, then compile the disassembly back: iasl -d alone
 * tolerates a lot (it exits 0 on mangled AML), but the round trip must succeed and give
 * the same body (the header differs: iasl writes its own creator id).  Returns the
 * shell's status, 0 when all of it held. */
static int iasl(const char *dir, const char *name, const uint8_t *t)
{
	char path[256], cmd[1024];
	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	FILE *f = fopen(path, "wb");
	cr_assert(f);
	cr_assert_eq(fwrite(t, 1, rd32(t + 4), f), rd32(t + 4));
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && iasl -d %s.dat >%s.log 2>&1 && ! grep -qi incorrect %s.log %s.dsl &&"
		 " iasl -p %s-re %s.dsl >>%s.log 2>&1 && cmp -i 36 %s-re.aml %s.dat >>%s.log 2>&1",
		 dir, name, name, name, name, name, name, name, name, name, name);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The real AML parser: DSDT (with devices), FADT, MADT and MCFG must survive the round
 * trip, and the disassembled DSDT must declare _S5 as Package { 5, 0 }. */
Test(acpi, iasl_accepts_tables)
{
	if (system("command -v iasl >/dev/null 2>&1") != 0)
		cr_skip_test("iasl not installed (Debian acpica-tools; make deps)");
	struct acpi_config cfg = with_devices(4);
	used = acpi_build(buf, BUFLEN, GPA, &cfg);
	cr_assert_gt(used, 0);
	char dir[] = "/tmp/minivmm-acpi-XXXXXX";
	cr_assert(mkdtemp(dir));
	cr_assert_eq(iasl(dir, "dsdt", dsdt()), 0, "iasl round trip of the DSDT: see %s/dsdt.log", dir);
	cr_assert_eq(iasl(dir, "facp", find("FACP")), 0, "see %s/facp.log", dir);
	cr_assert_eq(iasl(dir, "apic", find("APIC")), 0, "see %s/apic.log", dir);
	cr_assert_eq(iasl(dir, "mcfg", find("MCFG")), 0, "see %s/mcfg.log", dir);

	/* iasl prints names without trailing underscores: _S5_ is "_S5". */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "tr -d ' \\n' < %s/dsdt.dsl | grep -q"
		 " 'Name(_S5,Package(0x02)//_S5_:S5SystemState{0x05,Zero})'", dir);
	cr_assert_eq(system(cmd), 0, "unexpected disassembly: %s/dsdt.dsl", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
