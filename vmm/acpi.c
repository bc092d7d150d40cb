/* ACPI 6 tables for a PC-compatible machine.  Not "hardware-reduced": on x86 that makes
 * Linux drop the legacy PIC and with it ISA IRQs 0-15, so the UART on IRQ 4 and the PIT
 * would be unusable.  The price is small: a PM1a event and control block (no SMI port:
 * the machine is always in ACPI mode), and power-off is SLP_TYP|SLP_EN in PM1a_CNT. */
#include <errno.h>
#include <string.h>

#include "devices/power.h"
#include "vmm/acpi.h"
#include "vmm/vm.h"

struct __attribute__((packed)) acpi_header {
	char sig[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_rsdp {
	char sig[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
	uint32_t length;
	uint64_t xsdt;
	uint8_t ext_checksum;
	uint8_t reserved[3];
};

struct __attribute__((packed)) acpi_gas {
	uint8_t space;       /* 1 = system I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size; /* 1 = byte */
	uint64_t address;
};

struct __attribute__((packed)) acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl, dsdt;
	uint8_t reserved0, pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt, pm1b_evt, pm1a_cnt, pm1b_cnt, pm2_cnt, pm_tmr, gpe0, gpe1;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_len, gpe1_len, gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl, x_dsdt;
	struct acpi_gas x_pm1a_evt, x_pm1b_evt, x_pm1a_cnt, x_pm1b_cnt, x_pm2_cnt, x_pm_tmr;
	struct acpi_gas x_gpe0, x_gpe1;
	struct acpi_gas sleep_control, sleep_status;
	uint64_t hypervisor_id;
};

#define FADT_F_WBINVD          (1u << 0)
#define FADT_F_PWR_BUTTON      (1u << 4)   /* no fixed power button */
#define FADT_F_SLP_BUTTON      (1u << 5)   /* no fixed sleep button */
#define FADT_F_RESET_REG_SUP   (1u << 10)
#define BOOT_ARCH_VGA_ABSENT   (1u << 2)
#define BOOT_ARCH_NO_CMOS_RTC  (1u << 5)   /* kvmclock gives the wall clock */

struct __attribute__((packed)) madt_lapic { uint8_t type, len, uid, apic_id; uint32_t flags; };
struct __attribute__((packed)) madt_ioapic {
	uint8_t type, len, id, reserved;
	uint32_t addr, gsi_base;
};
struct __attribute__((packed)) madt_nmi { uint8_t type, len, uid; uint16_t flags; uint8_t lint; };

uint8_t acpi_checksum(const void *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += ((const uint8_t *)p)[i];
	return sum;
}

/* A bump allocator over the caller's buffer: every table 16-byte aligned. */
struct area {
	uint8_t *buf;
	size_t len, used;
	uint64_t gpa;
};

static void *area_get(struct area *a, size_t n, uint64_t *gpa)
{
	size_t off = (a->used + 15) & ~(size_t)15;
	if (off > a->len || n > a->len - off)
		return NULL;
	a->used = off + n;
	*gpa = a->gpa + off;
	memset(a->buf + off, 0, n);
	return a->buf + off;
}

static void header_init(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(h->sig, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, "MINVMM", 6);
	memcpy(h->oem_table_id, "MINIVMM ", 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "MVMM", 4);
	h->creator_revision = 1;
}

static void header_seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = -acpi_checksum(h, h->length);
}

/* Name (_S5, Package () { 5, 0 }): the sleep type the kernel writes to power off. */
static const uint8_t aml_s5[] = {
	0x08, '_', 'S', '5', '_',         /* NameOp "_S5_" */
	0x12, 0x05, 0x02,                 /* PackageOp, PkgLength 5, NumElements 2 */
	0x0A, POWER_S5_TYPE,              /* BytePrefix 5 */
	0x00,                             /* ZeroOp */
};

/* A register block of `len` bytes in I/O space, accessed bytewise. */
static struct acpi_gas gas_io(uint16_t port, uint8_t len)
{
	return (struct acpi_gas){ .space = 1, .bit_width = len * 8, .access_size = 1, .address = port };
}

long acpi_build(uint8_t *buf, size_t len, uint64_t gpa, const struct acpi_config *cfg)
{
	struct area a = { buf, len, 0, gpa };
	uint64_t rsdp_gpa = 0, xsdt_gpa = 0, fadt_gpa = 0, madt_gpa = 0, dsdt_gpa = 0;

	struct acpi_rsdp *rsdp = area_get(&a, sizeof(*rsdp), &rsdp_gpa);
	struct acpi_header *xsdt = area_get(&a, sizeof(*xsdt) + 2 * 8, &xsdt_gpa);
	struct acpi_fadt *fadt = area_get(&a, sizeof(*fadt), &fadt_gpa);
	size_t madt_len = sizeof(struct acpi_header) + 8 + cfg->ncpus * sizeof(struct madt_lapic) +
			  sizeof(struct madt_ioapic) + sizeof(struct madt_nmi);
	struct acpi_header *madt = area_get(&a, madt_len, &madt_gpa);
	size_t dsdt_len = sizeof(struct acpi_header) + sizeof(aml_s5) + cfg->dsdt_aml_len;
	struct acpi_header *dsdt = area_get(&a, dsdt_len, &dsdt_gpa);
	if (!rsdp || !xsdt || !fadt || !madt || !dsdt)
		return -ENOSPC;

	/* DSDT */
	header_init(dsdt, "DSDT", dsdt_len, 2);
	uint8_t *aml = (uint8_t *)(dsdt + 1);
	memcpy(aml, aml_s5, sizeof(aml_s5));
	if (cfg->dsdt_aml_len)
		memcpy(aml + sizeof(aml_s5), cfg->dsdt_aml, cfg->dsdt_aml_len);
	header_seal(dsdt);

	/* MADT: one local APIC per vCPU, the IOAPIC, LINT1 = NMI on every CPU. */
	header_init(madt, "APIC", madt_len, 5);
	uint8_t *p = (uint8_t *)(madt + 1);
	uint32_t lapic_addr = LAPIC_ADDR, madt_flags = 1; /* PCAT_COMPAT: there are 8259s */
	memcpy(p, &lapic_addr, 4);
	memcpy(p + 4, &madt_flags, 4);
	p += 8;
	for (int i = 0; i < cfg->ncpus; i++, p += sizeof(struct madt_lapic))
		*(struct madt_lapic *)p = (struct madt_lapic){ 0, sizeof(struct madt_lapic), i, i, 1 };
	*(struct madt_ioapic *)p = (struct madt_ioapic){ 1, sizeof(struct madt_ioapic),
							  cfg->ncpus, 0, IOAPIC_ADDR, 0 };
	p += sizeof(struct madt_ioapic);
	*(struct madt_nmi *)p = (struct madt_nmi){ 4, sizeof(struct madt_nmi), 0xff, 0, 1 };
	header_seal(madt);

	/* FADT */
	header_init(&fadt->h, "FACP", sizeof(*fadt), 6);
	fadt->minor_version = 0;
	fadt->dsdt = dsdt_gpa;
	fadt->x_dsdt = dsdt_gpa;
	/* The SCI is wired but never raised (no ACPI events); 9 is the conventional pin and
	 * no device of ours uses it. */
	fadt->sci_int = 9;
	fadt->pm1a_evt = POWER_PM1A_EVT_PORT;
	fadt->pm1_evt_len = POWER_PM1_EVT_LEN;
	fadt->x_pm1a_evt = gas_io(POWER_PM1A_EVT_PORT, POWER_PM1_EVT_LEN);
	fadt->pm1a_cnt = POWER_PM1A_CNT_PORT;
	fadt->pm1_cnt_len = POWER_PM1_CNT_LEN;
	fadt->x_pm1a_cnt = gas_io(POWER_PM1A_CNT_PORT, POWER_PM1_CNT_LEN);
	fadt->flags = FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP;
	fadt->iapc_boot_arch = BOOT_ARCH_VGA_ABSENT | BOOT_ARCH_NO_CMOS_RTC;
	fadt->reset_reg = gas_io(POWER_RESET_PORT, 1);
	fadt->reset_value = POWER_RESET_VALUE;
	memcpy(&fadt->hypervisor_id, "MINIVMM", 8);
	header_seal(&fadt->h);

	/* XSDT */
	header_init(xsdt, "XSDT", sizeof(*xsdt) + 2 * 8, 1);
	uint64_t entries[2] = { fadt_gpa, madt_gpa };
	memcpy(xsdt + 1, entries, sizeof(entries));
	header_seal(xsdt);

	/* RSDP (ACPI 2.0+: the XSDT, no RSDT) */
	memcpy(rsdp->sig, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, "MINVMM", 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt = xsdt_gpa;
	rsdp->checksum = -acpi_checksum(rsdp, 20);
	rsdp->ext_checksum = -acpi_checksum(rsdp, sizeof(*rsdp));
	return a.used;
}
