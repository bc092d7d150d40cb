/* The virtual machine: KVM handles, guest RAM, the I/O buses, the vCPUs, and how it stops. */
#ifndef MINIVMM_VM_H
#define MINIVMM_VM_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/memory.h"

struct kvm_run;
struct kvm_cpuid2;
struct irq_router;

/* minivmm's own exit statuses (a guest command's status 0..255 passes through as is). */
#define VM_EXIT_ERROR   1    /* bad input or start-up failure, before the guest runs */
#define VM_EXIT_RESET   123  /* the guest rebooted or reset (also: a panic with panic=-1) */
#define VM_EXIT_TIMEOUT 124  /* minivmm run --timeout expired */
#define VM_EXIT_DAX     122  /* the guest touched a DAX mapping of a host file past its end */
#define VM_EXIT_CRASH   125  /* triple fault, KVM internal error, failed VM entry */

/* Fixed x86 addresses. */
#define IOAPIC_ADDR 0xFEC00000ULL
#define LAPIC_ADDR  0xFEE00000ULL

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	int ncpus;
	int max_cpus;            /* what this KVM allows */
	bool tsc_deadline;
	struct gmem mem;
	struct bus pio;
	struct bus mmio;
	struct vcpu *vcpus;
	long run_size;
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */
	struct irq_router *irq;   /* GSI routing and irqfds (vmm/irq.c) */
	/* Set before vm_create when device memory may fail to fault in (DAX windows): KVM
	 * then handles guest faults synchronously, so KVM_RUN fails with EFAULT where it
	 * would otherwise retry an asynchronous page fault forever (Linux 6.1 does, for a
	 * file page past EOF).  Costs: HLT exits off (an idle vCPU does not leave guest
	 * mode) and no paravirtual async page faults. */
	bool sync_faults;
	int next_slot;            /* next free KVM memory slot for device memory */
	bool device_memory;       /* some device memory slot exists (DAX windows) */

	pthread_mutex_t lock;
	pthread_cond_t stopped_cond;
	bool stopped;
	int status;
};

/* Open KVM and check the API; fills kvm_fd, max_cpus and the supported CPUID.  Prints one
 * line naming the problem on failure. */
int vm_open_kvm(struct vm *vm) __attribute__((warn_unused_result));
/* Create the VM with `ncpus` vCPUs (not yet running) and `ram` bytes of RAM. */
int vm_create(struct vm *vm, int ncpus, uint64_t ram) __attribute__((warn_unused_result));
/* A KVM memory slot for device memory (a virtio shared-memory window): `*slot` < 0
 * allocates a slot number, otherwise the existing slot is deleted first; `gpa` 0 only
 * deletes.  `hva` must stay mapped (its pages may be replaced) for the VM's life. */
int vm_device_slot(struct vm *vm, int *slot, uint64_t gpa, uint64_t size, void *hva)
	__attribute__((warn_unused_result));
/* Level-triggered interrupt line into the in-kernel PIC/IOAPIC. */
void vm_irq_line(struct vm *vm, int gsi, int level);
/* Bind eventfd `fd` to guest writes of `len` bytes at `addr` (MMIO, or port I/O when
 * `pio`), matching `datamatch` when it is >= 0; `assign` false removes the binding. */
int vm_ioeventfd(struct vm *vm, uint64_t addr, unsigned len, bool pio, int64_t datamatch, int fd,
		 bool assign) __attribute__((warn_unused_result));
/* Ask the VM to stop with `status`; the first request wins. Safe from any thread. */
void vm_stop(struct vm *vm, int status);
bool vm_stopping(struct vm *vm);
/* Block until vm_stop(); returns the status. */
int vm_wait(struct vm *vm);
/* The same, but after `secs` seconds stop the VM with VM_EXIT_TIMEOUT; returns the status
 * (VM_EXIT_TIMEOUT unless the guest stopped first). */
int vm_wait_timeout(struct vm *vm, unsigned secs);

/* vcpu.c */
int vcpu_create_all(struct vm *vm) __attribute__((warn_unused_result));
int vcpu_boot_setup(struct vcpu *v, uint64_t entry, uint64_t boot_params, uint64_t cr3,
		    uint64_t gdt, uint16_t gdt_limit) __attribute__((warn_unused_result));
int vcpu_start_all(struct vm *vm) __attribute__((warn_unused_result));

/* cpuid.c: patch `c` (a copy of the supported list) for vCPU `id` of `ncpus`. */
void cpuid_patch(struct kvm_cpuid2 *c, int id, int ncpus, bool tsc_deadline);
/* Hide KVM's asynchronous page faults from the guest (vm->sync_faults). */
void cpuid_no_async_pf(struct kvm_cpuid2 *c);

/* One line on stderr, "minivmm: ...".  For start-up errors and guest-caused events. */
void vm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Every inode a guest holds costs the FUSE server an fd: with the privilege to (root),
 * lift RLIMIT_NOFILE's hard and soft limits to the kernel's ceiling (fs.nr_open), as
 * virtiofsd does; unprivileged, or when /proc/sys is out of view, nothing changes. */
void vm_nofile_raise(void);

/* For lines a guest can provoke at will: at most one a second per call site (a burst
 * costs one line, and the next line says how many were dropped).  `last` is the call
 * site's own state, zero-initialised. */
struct vm_ratelimit {
	int64_t last_sec;
	unsigned dropped;
};
void vm_log_limited(struct vm_ratelimit *rl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define VM_LOG_LIMITED(...) do { \
		static struct vm_ratelimit rl_; \
		vm_log_limited(&rl_, __VA_ARGS__); \
	} while (0)

#endif
