/* Starting a machine: the one path both `minivmm --kernel ...` and `minivmm run` take from
 * a validated configuration to a running guest and its exit status. */
#ifndef MINIVMM_LAUNCH_H
#define MINIVMM_LAUNCH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/boot.h"
#include "vmm/machine.h"
#include "vmm/sandbox.h"
#include "vmm/vmlinux.h"

struct share;
struct virtio_console_io;

/* A kernel read, checked and (when cached) unpacked: everything that can be wrong with it
 * is found before KVM is opened. */
struct launch_kernel {
	const char *path;
	uint8_t *buf;
	size_t size;
	struct boot_kernel k;
	struct vmlinux vl;
	bool direct;             /* load vl's segments instead of running the decompressor */
};

struct launch {
	struct launch_kernel *kernel;
	uint8_t *initrd;          /* malloc'd; freed by launch_run */
	size_t initrd_size;
	const char *cmdline;      /* the whole command line before machine_finish's additions */
	uint64_t mem;
	const char *mem_str;      /* as the user wrote it, for messages; NULL = the default */
	const char *mem_default;  /* how the default reads in messages */
	long cpus;
	enum machine_transport transport;
	bool rng;
	struct share *shares;
	int nshares;
	/* The serial console: guest output to serial_out (-1 discards it), input from
	 * serial_in (-1: none), the host terminal put in raw mode when serial_in is one. */
	int serial_out;
	int serial_in;
	/* A virtio console carrying the command's stdio (NULL: none). */
	const struct virtio_console_io *console;
	unsigned timeout;         /* seconds; 0 = none.  Expiry stops with VM_EXIT_TIMEOUT */
	/* A pipe or socket whose reader going away stops the machine with 128+SIGPIPE, as
	 * a host command writing there would die (-1: none). */
	int epipe_fd;
	enum sandbox_mode sandbox;  /* SANDBOX_ON (0) unless --sandbox none */
	bool quiet;               /* no note when only part of the sandbox is available */
};

/* One line naming the problem ("minivmm: ..."), then exit(VM_EXIT_ERROR): start-up only. */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Read a whole regular, non-empty file or die naming `what`. */
uint8_t *launch_read_file(const char *what, const char *path, size_t *size);

/* Read and validate the bzImage at `path`; with `cache`, unpack its kernel once into the
 * kernel cache and boot that directly (with `progress`, saying so in one line when it
 * unpacks).  Dies on a bad kernel. */
void launch_kernel_load(struct launch_kernel *lk, const char *path, bool cache, bool progress);

/* Build the machine, boot it and wait: returns the exit status (the guest's command's, or
 * one of VM_EXIT_*).  Start-up failures die before the guest runs. */
int launch_run(const struct launch *l);

#endif
