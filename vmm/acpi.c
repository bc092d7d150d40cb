/* ACPI 6 tables for a PC-compatible machine.  Not "hardware-reduced": on x86 that makes
 * Linux drop the legacy PIC and with it ISA IRQs 0-15, so the UART on IRQ 4 and the PIT
 * would be unusable.  The price is small: a PM1a event and control block (no SMI port:
 * the machine is always in ACPI mode), and power-off is SLP_TYP|SLP_EN in PM1a_CNT. */
#include <errno.h>
#include <string.h>

#include "devices/power.h"
#include "vmm/acpi.h"
#include "vmm/aml.h"
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

/* MCFG: header, 8 reserved bytes, then one of these per ECAM region (PCI Firmware 3.2). */
struct __attribute__((packed)) mcfg_alloc {
	uint64_t base;
	uint16_t segment;
	uint8_t start_bus, end_bus;
	uint32_t reserved;
};
#define MCFG_LEN       (sizeof(struct acpi_header) + 8 + sizeof(struct mcfg_alloc))
#define ECAM_BUS_SIZE  (1u << 20)   /* 32 devices x 8 functions x 4 KiB */
#define GIB4           (1ULL << 32)

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

/* A register block of `len` bytes in I/O space, accessed bytewise. */
static struct acpi_gas gas_io(uint16_t port, uint8_t len)
{
	return (struct acpi_gas){ .space = 1, .bit_width = len * 8, .access_size = 1, .address = port };
}

/* Name (_S5, Package () { 5, 0 }): the sleep type the kernel writes to power off. */
static void dsdt_s5(struct aml *a)
{
	aml_name(a, "_S5_");
	aml_package_begin(a);
	aml_int(a, POWER_S5_TYPE);
	aml_int(a, 0);
	aml_end(a);
}

/* The ACPI id drivers/virtio/virtio_mmio.c matches: distro kernels lack
 * VIRTIO_MMIO_CMDLINE_DEVICES, so this is the only way to announce the devices. */
static void dsdt_virtio_mmio(struct aml *a, int i, const struct acpi_mmio_dev *d)
{
	static const char hex[] = "0123456789ABCDEF";
	char name[] = { 'V', 'R', hex[i >> 4 & 15], hex[i & 15], 0 };
	aml_device_begin(a, name);
	aml_name_string(a, "_HID", "LNRO0005");
	aml_name_int(a, "_UID", i);
	aml_name_int(a, "_CCA", 1);    /* DMA is cache-coherent */
	aml_name(a, "_CRS");
	aml_res_begin(a);
	aml_res_mem32(a, true, d->base, d->size);
	/* Edge: the VMM injects through an irqfd, a pulse, not a level it holds. */
	aml_res_interrupt(a, AML_IRQ_EDGE | AML_IRQ_ACTIVE_HIGH | AML_IRQ_EXCLUSIVE, d->gsi);
	aml_res_end(a);
	aml_end(a);
}

/* _PRT: every slot but the bridge's (0), every pin, to a GSI (Source Zero), so by ACPI's
 * default level, active-low and shareable.  The swizzle spreads the four lines over the
 * slots the way boards wire them. */
static void dsdt_pci_prt(struct aml *a, uint32_t gsi_base)
{
	aml_name(a, "_PRT");
	aml_package_begin(a);
	for (uint32_t slot = 1; slot < 32; slot++) {
		for (uint32_t pin = 0; pin < 4; pin++) {
			aml_package_begin(a);
			aml_int(a, slot << 16 | 0xFFFF);    /* any function */
			aml_int(a, pin);
			aml_int(a, 0);
			aml_int(a, gsi_base + (slot + pin) % 4);
			aml_end(a);
		}
	}
	aml_end(a);
}

static void dsdt_pci(struct aml *a, const struct acpi_pci_host *p)
{
	aml_device_begin(a, "PCI0");
	aml_name_eisaid(a, "_HID", "PNP0A03");
	aml_name_int(a, "_UID", 0);
	aml_name_int(a, "_SEG", 0);
	aml_name_int(a, "_BBN", 0);
	aml_name(a, "_CRS");
	aml_res_begin(a);
	aml_res_word_bus(a, 0, 0);
	/* Config mechanism #1 (0xCF8-0xCFF) is the bridge's own register, so the I/O
	 * windows it forwards to the bus go around it. */
	aml_res_io(a, 0xCF8, 0xCF8, 1, 8);
	aml_res_word_io(a, 0x0000, 0x0CF7);
	aml_res_word_io(a, 0x0D00, 0xFFFF);
	if (p->mem32_size)
		aml_res_dword_mem(a, false, p->mem32_base, p->mem32_base + p->mem32_size - 1);
	if (p->mem64_size)
		aml_res_qword_mem(a, true, p->mem64_base, p->mem64_base + p->mem64_size - 1);
	aml_res_end(a);
	dsdt_pci_prt(a, p->intx_gsi_base);
	aml_end(a);
}

/* Linux ignores an MCFG region that no motherboard device (PNP0C01/PNP0C02) reserves. */
static void dsdt_mres(struct aml *a, const struct acpi_pci_host *p)
{
	aml_device_begin(a, "MRES");
	aml_name_eisaid(a, "_HID", "PNP0C02");
	aml_name_int(a, "_UID", 1);
	aml_name(a, "_CRS");
	aml_res_begin(a);
	aml_res_mem32(a, true, p->ecam_base, ECAM_BUS_SIZE);
	aml_res_end(a);
	aml_end(a);
}

/* The DSDT body.  With no devices it is \_S5 alone, byte for byte what it always was. */
static long dsdt_build(struct aml *a, const struct acpi_config *cfg)
{
	dsdt_s5(a);
	if (cfg->nmmio || cfg->pci.present) {
		/* At the root _SB_ is \_SB_; the short form is what iasl compiles it to, so a
		 * disassemble-and-recompile check gives the same bytes. */
		aml_scope_begin(a, "_SB_");
		for (int i = 0; i < cfg->nmmio; i++)
			dsdt_virtio_mmio(a, i, &cfg->mmio[i]);
		if (cfg->pci.present) {
			dsdt_pci(a, &cfg->pci);
			dsdt_mres(a, &cfg->pci);
		}
		aml_end(a);
	}
	return aml_finish(a);
}

static bool below_4g(uint64_t base, uint64_t size)
{
	return base <= GIB4 && size <= GIB4 - base;
}

/* What the descriptors can express: Memory32Fixed is 32-bit, device names VR00-VRFF. */
static int config_check(const struct acpi_config *cfg)
{
	if (cfg->nmmio < 0 || cfg->nmmio > 256 || (cfg->nmmio && !cfg->mmio))
		return -EINVAL;
	for (int i = 0; i < cfg->nmmio; i++)
		if (!cfg->mmio[i].size || !below_4g(cfg->mmio[i].base, cfg->mmio[i].size))
			return -EINVAL;
	const struct acpi_pci_host *p = &cfg->pci;
	if (!p->present)
		return 0;
	if (p->ecam_base % ECAM_BUS_SIZE || !below_4g(p->ecam_base, ECAM_BUS_SIZE) ||
	    !below_4g(p->mem32_base, p->mem32_size) ||
	    (p->mem64_size && p->mem64_size - 1 > UINT64_MAX - p->mem64_base))
		return -EINVAL;
	return 0;
}

/* MADT: one local APIC per vCPU, the IOAPIC, LINT1 = NMI on every CPU. */
static void madt_fill(struct acpi_header *madt, size_t len, int ncpus)
{
	header_init(madt, "APIC", len, 5);
	uint8_t *p = (uint8_t *)(madt + 1);
	uint32_t lapic_addr = LAPIC_ADDR, madt_flags = 1; /* PCAT_COMPAT: there are 8259s */
	memcpy(p, &lapic_addr, 4);
	memcpy(p + 4, &madt_flags, 4);
	p += 8;
	for (int i = 0; i < ncpus; i++, p += sizeof(struct madt_lapic))
		*(struct madt_lapic *)p = (struct madt_lapic){ 0, sizeof(struct madt_lapic), i, i, 1 };
	*(struct madt_ioapic *)p = (struct madt_ioapic){ 1, sizeof(struct madt_ioapic),
							  ncpus, 0, IOAPIC_ADDR, 0 };
	p += sizeof(struct madt_ioapic);
	*(struct madt_nmi *)p = (struct madt_nmi){ 4, sizeof(struct madt_nmi), 0xff, 0, 1 };
	header_seal(madt);
}

static void fadt_fill(struct acpi_fadt *fadt, uint64_t dsdt_gpa)
{
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
}

/* One ECAM region: segment 0, bus 0. */
static void mcfg_fill(struct acpi_header *mcfg, uint64_t ecam_base)
{
	header_init(mcfg, "MCFG", MCFG_LEN, 1);
	struct mcfg_alloc m = { .base = ecam_base, .segment = 0, .start_bus = 0, .end_bus = 0 };
	memcpy((uint8_t *)(mcfg + 1) + 8, &m, sizeof(m));
	header_seal(mcfg);
}

/* RSDP (ACPI 2.0+: the XSDT, no RSDT) */
static void rsdp_fill(struct acpi_rsdp *rsdp, uint64_t xsdt_gpa)
{
	memcpy(rsdp->sig, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, "MINVMM", 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt = xsdt_gpa;
	rsdp->checksum = -acpi_checksum(rsdp, 20);
	rsdp->ext_checksum = -acpi_checksum(rsdp, sizeof(*rsdp));
}

/* Lay the tables out in `a` around a finished DSDT body. */
static long tables_build(struct area *a, const struct acpi_config *cfg, const uint8_t *aml,
			 size_t aml_len)
{
	uint64_t rsdp_gpa = 0, xsdt_gpa = 0, fadt_gpa = 0, madt_gpa = 0, dsdt_gpa = 0, mcfg_gpa = 0;
	int nxsdt = cfg->pci.present ? 3 : 2;
	size_t xsdt_len = sizeof(struct acpi_header) + nxsdt * 8;
	size_t madt_len = sizeof(struct acpi_header) + 8 + cfg->ncpus * sizeof(struct madt_lapic) +
			  sizeof(struct madt_ioapic) + sizeof(struct madt_nmi);
	size_t dsdt_len = sizeof(struct acpi_header) + aml_len;

	struct acpi_rsdp *rsdp = area_get(a, sizeof(*rsdp), &rsdp_gpa);
	struct acpi_header *xsdt = area_get(a, xsdt_len, &xsdt_gpa);
	struct acpi_fadt *fadt = area_get(a, sizeof(*fadt), &fadt_gpa);
	struct acpi_header *madt = area_get(a, madt_len, &madt_gpa);
	struct acpi_header *dsdt = area_get(a, dsdt_len, &dsdt_gpa);
	struct acpi_header *mcfg = cfg->pci.present ? area_get(a, MCFG_LEN, &mcfg_gpa) : NULL;
	if (!rsdp || !xsdt || !fadt || !madt || !dsdt || (cfg->pci.present && !mcfg))
		return -ENOSPC;

	header_init(dsdt, "DSDT", dsdt_len, 2);
	memcpy(dsdt + 1, aml, aml_len);
	header_seal(dsdt);
	madt_fill(madt, madt_len, cfg->ncpus);
	fadt_fill(fadt, dsdt_gpa);
	if (mcfg)
		mcfg_fill(mcfg, cfg->pci.ecam_base);

	header_init(xsdt, "XSDT", xsdt_len, 1);
	uint64_t entries[3] = { fadt_gpa, madt_gpa, mcfg_gpa };
	memcpy(xsdt + 1, entries, nxsdt * 8);
	header_seal(xsdt);
	rsdp_fill(rsdp, xsdt_gpa);
	return a->used;
}

long acpi_build(uint8_t *buf, size_t len, uint64_t gpa, const struct acpi_config *cfg)
{
	int err = config_check(cfg);
	if (err)
		return err;
	/* The DSDT body first: its size decides the layout. */
	struct aml body = { 0 };
	long r = dsdt_build(&body, cfg);
	struct area a = { buf, len, 0, gpa };
	if (r >= 0)
		r = tables_build(&a, cfg, body.buf, r);
	aml_free(&body);
	return r;
}
