/* CPUID as the guest sees it: what KVM supports, with the topology of this VM and the
 * per-vCPU APIC id filled in.  Pure function of its inputs, so it is unit-tested. */
#include <linux/kvm.h>

#include "vmm/vm.h"

#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR   (1u << 31)
#define CPUID_1_EDX_HTT          (1u << 28)
#define KVM_CPUID_FEATURES       0x40000001
/* KVM_FEATURE_ASYNC_PF, _ASYNC_PF_VMEXIT, _ASYNC_PF_INT */
#define KVM_FEATURES_ASYNC_PF    ((1u << 4) | (1u << 10) | (1u << 14))

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

/* One core per vCPU, one thread per core, one package: the simplest topology that every
 * guest scheduler understands, and what `--cpus N` means. */
void cpuid_patch(struct kvm_cpuid2 *c, int id, int ncpus, bool tsc_deadline)
{
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 0x1:
			e->ebx = (e->ebx & 0xff) | (8u << 8) | ((unsigned)ncpus << 16) | ((unsigned)id << 24);
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			if (tsc_deadline)
				e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
			if (ncpus > 1)
				e->edx |= CPUID_1_EDX_HTT;
			else
				e->edx &= ~CPUID_1_EDX_HTT;
			break;
		case 0x4: {
			/* Intel deterministic cache parameters: cores per package, and how many
			 * logical CPUs share each cache (the last level: all of them). */
			unsigned level = (e->eax >> 5) & 7;
			unsigned share = level >= 3 ? (unsigned)ncpus - 1 : 0;
			e->eax &= 0x3ff;
			if (e->eax & 0x1f) /* a valid cache type */
				e->eax |= (share << 14) | (((unsigned)ncpus - 1) << 26);
			break;
		}
		case 0xb:
		case 0x1f:
			/* Extended topology: level 0 = SMT (1 thread), level 1 = core (ncpus). */
			e->edx = id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0;
			} else if (e->index == 1) {
				e->eax = bits_for(ncpus);
				e->ebx = ncpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x80000008:
			/* AMD: number of cores - 1, and the APIC id width that holds them. */
			e->ecx = (e->ecx & ~0xf0ffu) | (bits_for(ncpus) << 12) | ((unsigned)ncpus - 1);
			break;
		case 0x8000001e:
			/* AMD extended APIC id: core id = vCPU id, one thread per core, node 0. */
			e->eax = id;
			e->ebx = id & 0xff;
			e->ecx = 0;
			break;
		}
	}
}

/* A guest that enabled paravirtual async page faults would make KVM queue a fault it
 * cannot serve, report it "ready", and take it again, forever. */
void cpuid_no_async_pf(struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == KVM_CPUID_FEATURES)
			c->entries[i].eax &= ~KVM_FEATURES_ASYNC_PF;
}
