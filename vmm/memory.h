/* Guest RAM: where it lives on the host, and the one check every guest address goes through. */
#ifndef MINIVMM_MEMORY_H
#define MINIVMM_MEMORY_H
#include <stddef.h>
#include <stdint.h>

/* x86 layout: RAM from 0 up to the 32-bit hole, the rest above 4 GiB.  The hole holds the
 * IOAPIC, the local APIC and (later) PCI BARs. */
#define GMEM_HOLE_START  0xC0000000ULL
#define GMEM_HIGH_START  0x100000000ULL
#define GMEM_MAX_REGIONS 4
#define GMEM_MAX_WINDOWS 16

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct gmem_window;

struct gmem {
	struct gmem_region r[GMEM_MAX_REGIONS];
	int n;
	uint64_t ram_size;   /* total bytes of RAM */
	uint8_t *base;       /* the one host mapping behind all RAM regions */
	/* device memory request data may live in (gmem_add_window, at start-up only) */
	const struct gmem_window *win[GMEM_MAX_WINDOWS];
	int nwin;
};

/* Reserve `ram_size` bytes of guest RAM (lazily backed). */
int gmem_init(struct gmem *m, uint64_t ram_size) __attribute__((warn_unused_result));
void gmem_free(struct gmem *m);

/* Host pointer for [gpa, gpa+len), or NULL unless the whole range, computed without
 * overflow, lies inside one RAM region.  len 0 is treated as 1 byte. */
void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len);

/* Device memory the guest may name as a request's data buffer: a virtio shared-memory
 * window (virtio-fs DAX).  Deliberately not a gmem region: gmem_ptr() never returns a
 * pointer into it, so rings, descriptor tables and anything the VMM memcpy's stay in RAM.
 * Pages of a window may be backed by a host file that shrank, where a load or store by
 * the VMM raises SIGBUS; its users only hand window pointers to syscalls (EFAULT).
 * `gpa` moves with a PCI BAR while other threads translate: read and written atomically,
 * 0 while the window is nowhere. */
struct gmem_window {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

/* Host pointer for [gpa, gpa+len) inside window `w` (NULL if `w` is NULL, not placed, or
 * the range is not wholly inside it; len 0 is treated as 1 byte, like gmem_ptr). */
void *gmem_window_ptr(const struct gmem_window *w, uint64_t gpa, uint64_t len);
/* Register a window of the VM (before any device runs; `w` outlives the VM).  A request
 * buffer of any device that allows it may lie in any window: a guest reads a file of one
 * share into a DAX mapping of another.  -ENOSPC beyond GMEM_MAX_WINDOWS. */
int gmem_add_window(struct gmem *m, const struct gmem_window *w)
	__attribute__((warn_unused_result));
/* gmem_window_ptr over every registered window. */
void *gmem_windows_ptr(const struct gmem *m, uint64_t gpa, uint64_t len);

/* End of RAM below the 32-bit hole (the highest usable low address + 1). */
uint64_t gmem_low_end(const struct gmem *m);

/* Parse "512M", "2G", "1048576K", "512" (MiB) into bytes; -EINVAL when unparsable. */
int gmem_parse_size(const char *s, uint64_t *out) __attribute__((warn_unused_result));

#endif
