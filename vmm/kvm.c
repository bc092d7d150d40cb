/* The VM itself: /dev/kvm, the in-kernel interrupt controllers and timer, RAM slots, and
 * the stop protocol every thread uses to end the run. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "vmm/vm.h"

/* Below the hole's top, out of RAM and out of the way of the APICs. */
#define KVM_TSS_ADDR      0xFFFBD000ULL
#define KVM_IDENTITY_ADDR 0xFFFBC000ULL

void vm_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* One write so lines from several threads never interleave.  When the terminal is
	 * raw, a bare \n would leave the cursor mid-line: callers log after term_restore()
	 * or accept that. */
	ssize_t w = write(STDERR_FILENO, "minivmm: ", 9);
	w = write(STDERR_FILENO, buf, n);
	(void)w;
}

void vm_nofile_raise(void)
{
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");
	unsigned long nr = 0;
	if (f) {
		if (fscanf(f, "%lu", &nr) != 1)
			nr = 0;
		fclose(f);
	}
	struct rlimit rl;
	if (nr && getrlimit(RLIMIT_NOFILE, &rl) == 0 && nr > rl.rlim_max) {
		struct rlimit up = { nr, nr };
		setrlimit(RLIMIT_NOFILE, &up);
	}
}

void vm_log_limited(struct vm_ratelimit *rl, const char *fmt, ...)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&mu);
	bool say = now.tv_sec != rl->last_sec;
	unsigned dropped = rl->dropped;
	if (say) {
		rl->last_sec = now.tv_sec;
		rl->dropped = 0;
	} else {
		rl->dropped++;
	}
	pthread_mutex_unlock(&mu);
	if (!say)
		return;
	char buf[448];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (dropped)
		vm_log("%s (%u similar lines dropped)", buf, dropped);
	else
		vm_log("%s", buf);
}

static struct kvm_cpuid2 *get_supported_cpuid(int kvm_fd)
{
	for (int nent = 64; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return NULL;
		c->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return NULL;
}

int vm_open_kvm(struct vm *vm)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;
		if (e == ENOENT)
			vm_log("cannot open /dev/kvm: no such device (is KVM enabled? try tools/emuhost)");
		else if (e == EACCES || e == EPERM)
			vm_log("cannot open /dev/kvm: permission denied (add yourself to the kvm group)");
		else
			vm_log("cannot open /dev/kvm: %s", strerror(e));
		return -e;
	}
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		vm_log("/dev/kvm speaks KVM API %d, minivmm needs %d", api, KVM_API_VERSION);
		return -ENOTSUP;
	}
	static const struct { int cap; const char *name; } need[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
		{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			vm_log("this KVM lacks %s", need[i].name);
			return -ENOTSUP;
		}
	}
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 4; /* the documented floor when neither capability is reported */
	/* APIC ids are 8 bits in the MADT entries we write; 255 is the broadcast id. */
	vm->max_cpus = max < 254 ? max : 254;
	vm->tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	vm->cpuid = get_supported_cpuid(vm->kvm_fd);
	if (!vm->cpuid) {
		vm_log("KVM_GET_SUPPORTED_CPUID failed: %s", strerror(errno));
		return -EIO;
	}
	return 0;
}

int vm_create(struct vm *vm, int ncpus, uint64_t ram)
{
	int ret;
	vm->ncpus = ncpus;
	pthread_mutex_init(&vm->lock, NULL);
	/* Monotonic: a --timeout must not stretch or shrink when the wall clock is set. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->stopped_cond, &ca);
	pthread_condattr_destroy(&ca);

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		vm_log("KVM_CREATE_VM failed: %s", strerror(errno));
		return ret;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0) {
		ret = -errno;
		vm_log("KVM_SET_TSS_ADDR failed: %s", strerror(errno));
		return ret;
	}
	/* Only VMX needs the identity map; elsewhere the ioctl may be missing: not an error. */
	uint64_t ident = KVM_IDENTITY_ADDR;
	ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident);

	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		vm_log("KVM_CREATE_IRQCHIP failed: %s", strerror(errno));
		return ret;
	}
	/* The speaker port (0x61) stays in the kernel too: Linux reads it while calibrating. */
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		vm_log("KVM_CREATE_PIT2 failed: %s", strerror(errno));
		return ret;
	}

	if (vm->sync_faults) {
		/* kvm_can_do_async_pf() declines when HLT is not intercepted and the guest
		 * takes no paravirtual async faults (cpuid_no_async_pf): every fault is then
		 * served, or failed, on the spot.  Must precede the vCPUs. */
		struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_DISABLE_EXITS,
					      .args[0] = KVM_X86_DISABLE_EXITS_HLT };
		int have = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_DISABLE_EXITS);
		if (have < 0 || !(have & KVM_X86_DISABLE_EXITS_HLT) ||
		    ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			vm_log("this KVM keeps HLT exits: a guest touching a DAX mapping of a "
			       "truncated host file will hang instead of stopping");
	}

	ret = gmem_init(&vm->mem, ram);
	if (ret) {
		vm_log("cannot reserve %llu MiB of guest memory: %s",
		       (unsigned long long)(ram >> 20), strerror(-ret));
		return ret;
	}
	for (int i = 0; i < vm->mem.n; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.guest_phys_addr = vm->mem.r[i].gpa,
			.memory_size = vm->mem.r[i].size,
			.userspace_addr = (uintptr_t)vm->mem.r[i].hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			ret = -errno;
			vm_log("KVM_SET_USER_MEMORY_REGION failed: %s", strerror(errno));
			return ret;
		}
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		vm_log("KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
		return -EIO;
	}
	return vcpu_create_all(vm);
}

int vm_device_slot(struct vm *vm, int *slot, uint64_t gpa, uint64_t size, void *hva)
{
	if (*slot < 0) {
		if (!gpa)
			return 0;
		/* Above every RAM slot vm_create used. */
		if (vm->next_slot < GMEM_MAX_REGIONS)
			vm->next_slot = GMEM_MAX_REGIONS;
		*slot = vm->next_slot++;
	} else {
		struct kvm_userspace_memory_region del = { .slot = *slot };
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &del) < 0)
			return -errno;
	}
	if (!gpa)
		return 0;
	struct kvm_userspace_memory_region r = {
		.slot = *slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	__atomic_store_n(&vm->device_memory, true, __ATOMIC_RELEASE);
	return 0;
}

void vm_irq_line(struct vm *vm, int gsi, int level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = level };
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		vm_log("KVM_IRQ_LINE %d failed: %s", gsi, strerror(errno));
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, unsigned len, bool pio, int64_t datamatch, int fd,
		 bool assign)
{
	struct kvm_ioeventfd e = { .addr = addr, .len = len, .fd = fd };
	if (pio)
		e.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (datamatch >= 0) {
		e.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
		e.datamatch = datamatch;
	}
	if (!assign)
		e.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &e) < 0 ? -errno : 0;
}

void vm_stop(struct vm *vm, int status)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->stopped) {
		__atomic_store_n(&vm->stopped, true, __ATOMIC_RELEASE);
		vm->status = status;
		pthread_cond_broadcast(&vm->stopped_cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

bool vm_stopping(struct vm *vm)
{
	return __atomic_load_n(&vm->stopped, __ATOMIC_ACQUIRE);
}

int vm_wait_timeout(struct vm *vm, unsigned secs)
{
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += secs;
	pthread_mutex_lock(&vm->lock);
	while (!vm->stopped)
		if (pthread_cond_timedwait(&vm->stopped_cond, &vm->lock, &end) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&vm->lock);
	vm_stop(vm, VM_EXIT_TIMEOUT);   /* no-op when the guest stopped first */
	return vm_wait(vm);
}

int vm_wait(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	while (!vm->stopped)
		pthread_cond_wait(&vm->stopped_cond, &vm->lock);
	int s = vm->status;
	pthread_mutex_unlock(&vm->lock);
	return s;
}
