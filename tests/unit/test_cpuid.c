/* cpuid_patch: the topology and APIC ids a guest reads.  The input is built by hand the
 * way KVM_GET_SUPPORTED_CPUID lays it out (one entry per leaf/subleaf), with junk in the
 * fields the patch owns so that "left as it was" and "set correctly" differ. */
#include <criterion/criterion.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vm.h"

#define HYPERVISOR   (1u << 31)
#define TSC_DEADLINE (1u << 24)
#define HTT          (1u << 28)

/* Leaf 4 subleaf: cache type (bits 4:0) and level (bits 7:5), with garbage above. */
#define L4(type, level) (0xfc000000u | (0x3ffu << 14) | ((level) << 5) | (type))

static const struct kvm_cpuid_entry2 template[] = {
	{ .function = 0, .eax = 0x1f, .ebx = 0x756e6547 },
	{ .function = 1, .eax = 0x000906ea, .ebx = 0xffff0834, .ecx = 0x7ffafbff & ~TSC_DEADLINE,
	  .edx = 0xbfebfbff },
	{ .function = 4, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = L4(1, 1) },
	{ .function = 4, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = L4(2, 1) },
	{ .function = 4, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = L4(3, 2) },
	{ .function = 4, .index = 3, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = L4(3, 3) },
	{ .function = 4, .index = 4, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0 },
	{ .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	  .eax = 7, .ebx = 7, .ecx = 0x777, .edx = 0x77 },
	{ .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	  .eax = 7, .ebx = 7, .ecx = 0x777, .edx = 0x77 },
	{ .function = 0xb, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	  .eax = 7, .ebx = 7, .ecx = 0x777, .edx = 0x77 },
	{ .function = 0x80000008, .eax = 0x3030, .ecx = 0xabcdffff },
	{ .function = 0x8000001e, .eax = 0x55, .ebx = 0x1234, .ecx = 0x777 },
};
#define NENT (sizeof(template) / sizeof(template[0]))

static struct kvm_cpuid2 *patched(int id, int ncpus, bool tsc_deadline)
{
	struct kvm_cpuid2 *c = malloc(sizeof(*c) + sizeof(template));
	cr_assert(c);
	c->nent = NENT;
	memcpy(c->entries, template, sizeof(template));
	cpuid_patch(c, id, ncpus, tsc_deadline);
	return c;
}

static const struct kvm_cpuid_entry2 *leaf(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	cr_assert_fail("leaf 0x%x.%u missing", fn, idx);
	return NULL;
}

/* Leaf 1 EBX: 31:24 initial APIC id, 23:16 logical processors, 15:8 CLFLUSH size. */
Test(cpuid, leaf1_ids_and_flags)
{
	const int cases[][2] = { { 0, 1 }, { 0, 4 }, { 3, 4 }, { 7, 8 }, { 253, 254 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int id = cases[i][0], n = cases[i][1];
		struct kvm_cpuid2 *c = patched(id, n, false);
		const struct kvm_cpuid_entry2 *e = leaf(c, 1, 0);
		cr_assert_eq(e->ebx >> 24, (unsigned)id, "APIC id for vCPU %d", id);
		cr_assert_eq((e->ebx >> 16) & 0xff, (unsigned)n, "count for %d CPUs", n);
		cr_assert_eq(e->ebx & 0xff, 0x34, "brand index kept");
		cr_assert_eq(e->eax, template[1].eax, "signature untouched");
		cr_assert(e->ecx & HYPERVISOR, "hypervisor bit");
		cr_assert_eq(e->ecx & TSC_DEADLINE, 0, "TSC deadline not asked for");
		cr_assert_eq(!!(e->edx & HTT), n > 1, "HTT with %d CPUs", n);
		cr_assert_eq(e->edx | HTT, template[1].edx | HTT, "other EDX bits kept");
		free(c);
	}
}

Test(cpuid, tsc_deadline_when_asked)
{
	struct kvm_cpuid2 *c = patched(0, 2, true);
	cr_assert(leaf(c, 1, 0)->ecx & TSC_DEADLINE);
	cr_assert(leaf(c, 1, 0)->ecx & HYPERVISOR);
	free(c);
}

/* Leaf 0xb: level 0 is SMT with 1 thread (shift 0), level 1 is core with ncpus (shift
 * wide enough to hold them), level 2 terminates; EDX is the x2APIC id on every level. */
Test(cpuid, leaf_b_topology)
{
	const int cases[][3] = { { 0, 1, 0 }, { 1, 2, 1 }, { 3, 4, 2 }, { 4, 5, 3 }, { 6, 8, 3 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int id = cases[i][0], n = cases[i][1], shift = cases[i][2];
		struct kvm_cpuid2 *c = patched(id, n, false);
		const struct kvm_cpuid_entry2 *smt = leaf(c, 0xb, 0), *core = leaf(c, 0xb, 1),
					      *end = leaf(c, 0xb, 2);
		cr_assert_eq(smt->eax & 0x1f, 0);
		cr_assert_eq(smt->ebx & 0xffff, 1);
		cr_assert_eq((smt->ecx >> 8) & 0xff, 1, "level type SMT");
		cr_assert_eq(smt->ecx & 0xff, 0);
		cr_assert_eq(core->eax & 0x1f, (unsigned)shift, "shift for %d CPUs", n);
		cr_assert_eq(core->ebx & 0xffff, (unsigned)n);
		cr_assert_eq((core->ecx >> 8) & 0xff, 2, "level type core");
		cr_assert_eq(core->ecx & 0xff, 1);
		cr_assert_eq(end->ebx & 0xffff, 0);
		cr_assert_eq((end->ecx >> 8) & 0xff, 0, "level type invalid");
		cr_assert_eq(end->ecx & 0xff, 2);
		cr_assert_eq(smt->edx, (unsigned)id);
		cr_assert_eq(core->edx, (unsigned)id);
		cr_assert_eq(end->edx, (unsigned)id);
		free(c);
	}
}

/* Leaf 4: EAX 31:26 cores per package - 1; 25:14 sharing - 1 (all CPUs share L3 only). */
Test(cpuid, leaf4_caches)
{
	struct kvm_cpuid2 *c = patched(1, 4, false);
	for (uint32_t idx = 0; idx < 4; idx++) {
		uint32_t eax = leaf(c, 4, idx)->eax, level = (eax >> 5) & 7;
		cr_assert_eq(eax >> 26, 3, "cores per package, subleaf %u", idx);
		cr_assert_eq((eax >> 14) & 0xfff, level >= 3 ? 3u : 0u, "sharing, subleaf %u", idx);
		cr_assert_eq(eax & 0x3ff, template[2 + idx].eax & 0x3ff, "type/level kept");
	}
	cr_assert_eq(leaf(c, 4, 4)->eax, 0, "null subleaf stays null");
	free(c);
}

/* AMD: 0x80000008 ECX 7:0 = cores - 1, 15:12 = APIC id size; 0x8000001e EAX = APIC id. */
Test(cpuid, amd_leaves)
{
	const int cases[][3] = { { 0, 1, 0 }, { 2, 4, 2 }, { 5, 6, 3 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int id = cases[i][0], n = cases[i][1], bits = cases[i][2];
		struct kvm_cpuid2 *c = patched(id, n, false);
		const struct kvm_cpuid_entry2 *e8 = leaf(c, 0x80000008, 0), *e1e = leaf(c, 0x8000001e, 0);
		cr_assert_eq(e8->ecx & 0xff, (unsigned)n - 1);
		cr_assert_eq((e8->ecx >> 12) & 0xf, (unsigned)bits);
		cr_assert_eq(e8->ecx & 0xffff0000u, 0xabcd0000u, "upper ECX kept");
		cr_assert_eq(e8->eax, 0x3030, "address sizes untouched");
		cr_assert_eq(e1e->eax, (unsigned)id);
		cr_assert_eq(e1e->ebx & 0xff, (unsigned)id, "core id");
		cr_assert_eq((e1e->ebx >> 8) & 0xff, 0, "one thread per core");
		free(c);
	}
}

/* Leaves the patch does not own pass through. */
Test(cpuid, other_leaves_untouched)
{
	struct kvm_cpuid2 *c = patched(3, 4, true);
	cr_assert_eq(c->nent, NENT);
	cr_assert_eq(memcmp(leaf(c, 0, 0), &template[0], sizeof(template[0])), 0);
	free(c);
}

/* With a DAX window the guest must not take async page faults (bits 4, 10, 14 of the KVM
 * features leaf); every other feature bit and leaf stays. */
Test(cpuid, no_async_pf_clears_only_those_bits)
{
	struct kvm_cpuid2 *c = malloc(sizeof(*c) + sizeof(template) + sizeof(c->entries[0]));
	cr_assert(c);
	c->nent = NENT + 1;
	memcpy(c->entries, template, sizeof(template));
	c->entries[NENT] = (struct kvm_cpuid_entry2){ .function = 0x40000001, .eax = 0x01ffffff,
						      .edx = 0x5 };
	cpuid_no_async_pf(c);
	cr_assert_eq(leaf(c, 0x40000001, 0)->eax, 0x01ffffffu & ~((1u << 4) | (1u << 10) | (1u << 14)));
	cr_assert_eq(leaf(c, 0x40000001, 0)->edx, 0x5);
	cr_assert_eq(memcmp(c->entries, template, sizeof(template)), 0, "other leaves untouched");
	free(c);
}
