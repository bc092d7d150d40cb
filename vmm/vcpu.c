/* vCPUs: creation (CPUID, MSRs, local APIC), the 64-bit boot state of the first one, and
 * the thread that runs each and routes its exits to devices. */
#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vmm/thread.h"
#include "vmm/vm.h"

#define MSR_IA32_TSC             0x10
#define MSR_IA32_SYSENTER_CS     0x174
#define MSR_IA32_SYSENTER_ESP    0x175
#define MSR_IA32_SYSENTER_EIP    0x176
#define MSR_IA32_MISC_ENABLE     0x1a0
#define MSR_MTRR_DEF_TYPE        0x2ff
#define MSR_STAR                 0xc0000081
#define MSR_LSTAR                0xc0000082
#define MSR_CSTAR                0xc0000083
#define MSR_SYSCALL_MASK         0xc0000084
#define MSR_KERNEL_GS_BASE       0xc0000102

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI    4
#define APIC_MODE_EXTINT 7

static int set_msrs(struct vcpu *v)
{
	static const struct { uint32_t index; uint64_t data; } init[] = {
		{ MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 }, { MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 }, { MSR_LSTAR, 0 }, { MSR_CSTAR, 0 }, { MSR_SYSCALL_MASK, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		/* Fast strings on, as firmware leaves it. */
		{ MSR_IA32_MISC_ENABLE, 1 },
		/* MTRRs enabled with write-back default: without it Linux may map RAM uncached. */
		{ MSR_MTRR_DEF_TYPE, (1u << 11) | 6 },
	};
	enum { N = sizeof(init) / sizeof(init[0]) };
	/* A union, not a struct with the entries after the header: a flexible array member
	 * may not be followed by another field (clang -Wgnu-variable-sized-type-not-at-end). */
	union {
		struct kvm_msrs hdr;
		uint8_t raw[sizeof(struct kvm_msrs) + N * sizeof(struct kvm_msr_entry)];
	} m;
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = N;
	for (int i = 0; i < N; i++) {
		m.hdr.entries[i].index = init[i].index;
		m.hdr.entries[i].data = init[i].data;
	}
	int n = ioctl(v->fd, KVM_SET_MSRS, &m);
	if (n < 0)
		return -errno;
	if (n != N) {
		vm_log("KVM_SET_MSRS: MSR 0x%x refused", m.hdr.entries[n].index);
		return -EINVAL;
	}
	return 0;
}

/* LINT0 = ExtINT (the PIC), LINT1 = NMI: the wiring firmware sets up and the MADT's
 * NMI entry describes. */
static int set_lint(struct vcpu *v)
{
	struct kvm_lapic_state s;
	if (ioctl(v->fd, KVM_GET_LAPIC, &s) < 0)
		return -errno;
	uint32_t *lvt0 = (uint32_t *)&s.regs[APIC_LVT0];
	uint32_t *lvt1 = (uint32_t *)&s.regs[APIC_LVT1];
	*lvt0 = (*lvt0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
	*lvt1 = (*lvt1 & ~0x700u) | (APIC_MODE_NMI << 8);
	if (ioctl(v->fd, KVM_SET_LAPIC, &s) < 0)
		return -errno;
	return 0;
}

static int vcpu_create(struct vm *vm, struct vcpu *v, int id)
{
	int ret;
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		ret = -errno;
		vm_log("KVM_CREATE_VCPU %d failed: %s", id, strerror(errno));
		return ret;
	}
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		ret = -errno;
		vm_log("mmap of vCPU %d state failed: %s", id, strerror(errno));
		return ret;
	}

	size_t sz = sizeof(*vm->cpuid) + vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	if (!c)
		return -ENOMEM;
	memcpy(c, vm->cpuid, sz);
	cpuid_patch(c, id, vm->ncpus, vm->tsc_deadline);
	if (vm->sync_faults)
		cpuid_no_async_pf(c);
	ret = ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	if (ret) {
		vm_log("KVM_SET_CPUID2 on vCPU %d failed: %s", id, strerror(-ret));
		return ret;
	}
	ret = set_msrs(v);
	if (ret) {
		vm_log("KVM_SET_MSRS on vCPU %d failed: %s", id, strerror(-ret));
		return ret;
	}
	ret = set_lint(v);
	if (ret)
		vm_log("local APIC set-up of vCPU %d failed: %s", id, strerror(-ret));
	return ret;
}

int vcpu_create_all(struct vm *vm)
{
	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (int i = 0; i < vm->ncpus; i++) {
		int ret = vcpu_create(vm, &vm->vcpus[i], i);
		if (ret)
			return ret;
	}
	return 0;
}

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = !code64, .s = 1, .l = code64, .g = 1,
	};
}

/* The Linux/x86 64-bit boot protocol: long mode, paging on with an identity map covering
 * what the kernel touches before it builds its own tables, flat __BOOT_CS/__BOOT_DS
 * segments, %rsi = boot_params.  Application processors stay in wait-for-SIPI. */
int vcpu_boot_setup(struct vcpu *v, uint64_t entry, uint64_t boot_params, uint64_t cr3,
		    uint64_t gdt, uint16_t gdt_limit)
{
	struct kvm_sregs sregs;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	seg_flat(&sregs.cs, 0x10, 0xb, true);
	seg_flat(&sregs.ds, 0x18, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){ .selector = 0x20, .limit = 0x67, .type = 0xb, .present = 1 };
	sregs.ldt = (struct kvm_segment){ .type = 0x2, .present = 1, .unusable = 1 };
	sregs.gdt.base = gdt;
	sregs.gdt.limit = gdt_limit;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x80000011;      /* PG | ET | PE */
	sregs.cr3 = cr3;
	sregs.cr4 = 0x20;            /* PAE */
	sregs.efer = 0x500;          /* LMA | LME */
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	struct kvm_regs regs = { .rflags = 0x2, .rip = entry, .rsi = boot_params };
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

static uint64_t vcpu_rip(struct vcpu *v)
{
	struct kvm_regs r;
	return ioctl(v->fd, KVM_GET_REGS, &r) == 0 ? r.rip : 0;
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *p = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	/* `count` > 1 is a rep ins/outs: KVM hands all elements over at once. */
	for (uint32_t i = 0; i < run->io.count; i++, p += run->io.size)
		bus_dispatch(&v->vm->pio, run->io.port, p, run->io.size, out);
}

/* Returns false when the vCPU must stop running. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		bus_dispatch(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			     run->mmio.is_write);
		return true;
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_SHUTDOWN: {
		/* On AMD, KVM re-INITs the vCPU on a shutdown intercept (the VMCB is undefined
		 * after one), so the registers read back are the reset state: say so rather
		 * than print the reset vector as if the guest had been there. */
		uint64_t rip = vcpu_rip(v);
		if (rip == 0xfff0)
			vm_log("guest triple fault on vCPU %d (KVM_EXIT_SHUTDOWN); RIP unavailable: "
			       "this KVM resets the vCPU on shutdown", v->id);
		else
			vm_log("guest triple fault on vCPU %d at RIP 0x%llx (KVM_EXIT_SHUTDOWN)", v->id,
			       (unsigned long long)rip);
		vm_stop(vm, VM_EXIT_CRASH);
		return false;
	}
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_stop(vm, 0);
			break;
		case KVM_SYSTEM_EVENT_RESET:
			vm_stop(vm, VM_EXIT_RESET);
			break;
		default:
			vm_log("guest crashed on vCPU %d (system event %u)", v->id, run->system_event.type);
			vm_stop(vm, VM_EXIT_CRASH);
		}
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_log("KVM internal error %u on vCPU %d at RIP 0x%llx", run->internal.suberror, v->id,
		       (unsigned long long)vcpu_rip(v));
		vm_stop(vm, VM_EXIT_CRASH);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		vm_log("VM entry failed on vCPU %d (hardware reason 0x%llx) at RIP 0x%llx", v->id,
		       (unsigned long long)run->fail_entry.hardware_entry_failure_reason,
		       (unsigned long long)vcpu_rip(v));
		vm_stop(vm, VM_EXIT_CRASH);
		return false;
	default:
		vm_log("unexpected KVM exit %u on vCPU %d at RIP 0x%llx", run->exit_reason, v->id,
		       (unsigned long long)vcpu_rip(v));
		vm_stop(vm, VM_EXIT_CRASH);
		return false;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	/* Terminal signals belong to the main thread, which restores the terminal. */
	sigset_t set;
	sigfillset(&set);
	sigdelset(&set, SIGSYS);   /* the sandbox's report of a refused system call */
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	while (!vm_stopping(v->vm)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* KVM could not fault in a page of a memory slot.  RAM is anonymous and
			 * cannot fail this way; a DAX window's file pages can, once the host file
			 * shrank below a live mapping (the fault is SIGBUS for a host process;
			 * Linux 6.1 KVM turns it into -EFAULT without telling where, provided the
			 * fault is handled synchronously: vm->sync_faults). */
			if (errno == EFAULT && __atomic_load_n(&v->vm->device_memory, __ATOMIC_ACQUIRE)) {
				vm_log("guest accessed a DAX mapping of a host file past its end "
				       "(file truncated on the host?); stopping the guest");
				vm_stop(v->vm, VM_EXIT_DAX);
				break;
			}
			vm_log("KVM_RUN on vCPU %d failed: %s", v->id, strerror(errno));
			vm_stop(v->vm, VM_EXIT_CRASH);
			break;
		}
		if (!handle_exit(v))
			break;
	}
	return NULL;
}

int vcpu_start_all(struct vm *vm)
{
	for (int i = 0; i < vm->ncpus; i++) {
		int ret = thread_start(THREAD_VCPU, "vcpu", vcpu_thread, &vm->vcpus[i], &vm->vcpus[i].thread);
		if (ret) {
			vm_log("cannot start vCPU thread %d: %s", i, strerror(ret));
			return -ret;
		}
	}
	return 0;
}
