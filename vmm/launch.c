/* From a checked configuration to a running machine: kernel loading, the devices in
 * start-up order, boot, and the wait for the guest to stop.  Shared by the plain CLI
 * (vmm/main.c) and `minivmm run` (vmm/run.c). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/i8042.h"
#include "devices/power.h"
#include "devices/serial.h"
#include "devices/term.h"
#include "fs/share.h"
#include "fs/virtio_fs.h"
#include "virtio/console.h"
#include "virtio/rng.h"
#include "vmm/launch.h"
#include "vmm/sandbox.h"
#include "vmm/thread.h"
#include "vmm/vm.h"

#define QUIT_STATUS 130  /* Ctrl-A x: like an interrupted command */

void die(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	vm_log("%s", buf);
	exit(VM_EXIT_ERROR);
}

uint8_t *launch_read_file(const char *what, const char *path, size_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open %s '%s': %s", what, path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("cannot stat %s '%s': %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		die("%s '%s' is not a regular file", what, path);
	if (st.st_size == 0)
		die("%s '%s' is empty", what, path);
	uint8_t *buf = malloc(st.st_size);
	if (!buf)
		die("%s '%s' is too large to load (%lld bytes)", what, path, (long long)st.st_size);
	size_t done = 0;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("cannot read %s '%s': %s", what, path, n ? strerror(errno) : "file shrank");
		done += n;
	}
	close(fd);
	*size = done;
	return buf;
}

void launch_kernel_load(struct launch_kernel *lk, const char *path, bool cache, bool progress)
{
	char err[256];
	*lk = (struct launch_kernel){ .path = path };
	lk->buf = launch_read_file("kernel", path, &lk->size);
	if (boot_parse(lk->buf, lk->size, &lk->k, err, sizeof(err)))
		die("kernel '%s': %s", path, err);
	/* The kernel's own decompressor is the slowest part of a boot under emulation and
	 * still costs real time on hardware: unpack once on the host, reuse from the cache.
	 * A payload we cannot unpack (-ENOTSUP) boots the classic way; a corrupt one is the
	 * user's file being broken. */
	if (cache) {
		int r = vmlinux_get(lk->buf, lk->size, vmlinux_cache_dir(), progress, &lk->vl);
		if (r == -EINVAL)
			die("kernel '%s': its compressed payload is corrupt", path);
		lk->direct = r == 0;
	}
}

struct epipe_watch {
	struct vm *vm;
	int fd;
};

/* POLLERR on a pipe's write end (POLLHUP on a socket) means no reader is left: nothing the
 * command writes can arrive any more, so end it the way the host would end a writer. */
static void *epipe_thread(void *arg)
{
	struct epipe_watch *w = arg;
	struct pollfd p = { .fd = w->fd, .events = 0 };
	for (;;) {
		int n = poll(&p, 1, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (p.revents & (POLLERR | POLLHUP))) {
			if (n > 0)
				vm_stop(w->vm, 128 + SIGPIPE);
			return NULL;
		}
	}
}

static void epipe_watch_start(struct vm *vm, int fd)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return;
	static struct epipe_watch w;
	w = (struct epipe_watch){ .vm = vm, .fd = fd };
	pthread_t t;
	if (thread_start(THREAD_STDIO, "epipe", epipe_thread, &w, &t) == 0)
		pthread_detach(t);
}

static void serial_irq(void *ctx, int level)
{
	vm_irq_line(ctx, SERIAL_COM1_IRQ, level);
}

static void console_quit(void *ctx)
{
	vm_stop(ctx, QUIT_STATUS);
}

int launch_run(const struct launch *l)
{
	struct launch_kernel *lk = l->kernel;
	const struct boot_kernel *k = &lk->k;
	char err[256];
	if (k->load_addr + k->init_size > (l->mem < GMEM_HOLE_START ? l->mem : GMEM_HOLE_START))
		die("--mem %s is too small for this kernel (it needs %llu MiB to boot)",
		    l->mem_str ? l->mem_str : l->mem_default,
		    (unsigned long long)((k->load_addr + k->init_size + l->initrd_size +
					  (1 << 20) - 1) >> 20) + 1);
	char cmdline[4096];
	if (snprintf(cmdline, sizeof(cmdline), "%s", l->cmdline) >= (int)sizeof(cmdline))
		die("the kernel command line is too long");
	/* Everything the user gave is checked before /dev/kvm is opened: a bad --mem/--initrd
	 * pair is the same mistake on any host, with or without KVM. */
	if (boot_check_fit(k, l->mem < GMEM_HOLE_START ? l->mem : GMEM_HOLE_START, l->initrd_size,
			   err, sizeof(err)))
		die("%s", err);

	static struct vm vm;
	if (vm_open_kvm(&vm))
		exit(VM_EXIT_ERROR);
	/* Before any thread exists (a mount namespace is per thread) and any share is opened
	 * (they are opened in the new root). */
	sandbox_enter(l->sandbox, l->shares, l->nshares, l->quiet);
	/* A DAX window's pages can vanish under the guest (host truncation): synchronous
	 * faults make that a failed KVM_RUN instead of an endless async page fault loop. */
	for (int i = 0; i < l->nshares; i++)
		if (l->shares[i].dax)
			vm.sync_faults = true;
	if (l->cpus > vm.max_cpus)
		die("--cpus %ld is more than this KVM allows (%d)", l->cpus, vm.max_cpus);
	if (vm_create(&vm, l->cpus, l->mem))
		exit(VM_EXIT_ERROR);

	struct machine mach;
	if (machine_init(&mach, &vm, l->transport))
		exit(VM_EXIT_ERROR);
	if (l->rng) {
		struct virtio_dev *rng = virtio_rng_create(&vm);
		if (!rng)
			die("cannot create the virtio-rng device: %s", strerror(errno));
		if (machine_add_virtio(&mach, rng))
			exit(VM_EXIT_ERROR);
	}
	/* The console before the shares: the guest finds its ports by name, not by order,
	 * but a fixed device order keeps the PCI layout the same from run to run. */
	struct virtio_dev *con = NULL;
	if (l->console) {
		con = virtio_console_create(&vm, l->console);
		if (!con)
			die("cannot create the virtio console: %s", strerror(errno));
		if (machine_add_virtio(&mach, con))
			exit(VM_EXIT_ERROR);
	}
	for (int i = 0; i < l->nshares; i++) {
		struct share sh = l->shares[i];
		sh.path = (char *)sandbox_share_path(i, sh.path);
		struct virtio_dev *fs = virtio_fs_create(&vm, &sh, err, sizeof(err));
		if (!fs)
			die("share %s (%s): %s", l->shares[i].tag, l->shares[i].path, err);
		if (machine_add_virtio(&mach, fs))
			exit(VM_EXIT_ERROR);
	}
	if (machine_finish(&mach, cmdline, sizeof(cmdline)))
		exit(VM_EXIT_ERROR);
	struct boot_info bi;
	if (boot_load(&vm.mem, k, l->initrd, l->initrd_size, cmdline, BOOT_BIOS_START, &bi, err,
		      sizeof(err)))
		die("%s", err);
	if (lk->direct) {
		/* After boot_load: the segments replace the compressed image it copied to the
		 * load address; boot_params, initrd and command line stay as it wrote them. */
		uint64_t entry, end;
		if (vmlinux_load(&vm.mem, &lk->vl, &entry, &end, err, sizeof(err)))
			die("kernel '%s': %s", lk->path, err);
		if (end > bi.kernel_end)
			die("kernel '%s': its image ends past the memory it declares (init_size)",
			    lk->path);
		bi.entry = entry;
		vmlinux_free(&lk->vl);
	}
	free(lk->buf);
	lk->buf = NULL;
	free(l->initrd);
	if (vcpu_boot_setup(&vm.vcpus[0], bi.entry, BOOT_PARAMS_ADDR, BOOT_PML4_ADDR,
			    BOOT_GDT_ADDR, 5 * 8 - 1))
		die("cannot set up the boot vCPU: %s", strerror(errno));

	struct serial *com1 = serial_create(l->serial_out, serial_irq, &vm);
	if (!com1)
		die("cannot create the serial port: %s", strerror(errno));
	if (bus_register(&vm.pio, SERIAL_COM1_BASE, SERIAL_NR_REGS, serial_io, com1, "com1") ||
	    i8042_init(&vm) || power_init(&vm))
		die("device port ranges overlap");

	if (l->serial_in >= 0) {
		if (term_raw_enter(l->serial_in) < 0)
			die("cannot put the terminal in raw mode: %s", strerror(errno));
		if (serial_input_start(com1, l->serial_in, console_quit, &vm))
			die("cannot start the console input thread");
	}
	epipe_watch_start(&vm, l->epipe_fd);
	sandbox_seal();
	if (vcpu_start_all(&vm))
		exit(VM_EXIT_ERROR);

	int status = l->timeout ? vm_wait_timeout(&vm, l->timeout) : vm_wait(&vm);
	term_restore();
	/* What the guest queued on its console before it reported its status is part of the
	 * command's output. */
	if (con)
		virtio_console_drain(con);
	/* vCPU threads may still be inside KVM_RUN; the caller exits, which ends them and
	 * frees every KVM object at once, the one teardown that cannot hang. */
	return status;
}
