/* I/O and MMIO dispatch: devices register address ranges once, vCPU threads look them up. */
#ifndef MINIVMM_BUS_H
#define MINIVMM_BUS_H
#include <stdbool.h>
#include <stdint.h>

/* One access from the guest. `off` is relative to the registered base; `data` holds `len`
 * bytes (1, 2, 4 or 8): the value written, or the buffer to fill for a read. */
typedef void (*bus_io_fn)(void *opaque, uint64_t off, void *data, unsigned len, bool is_write);

#define BUS_MAX_RANGES 64

struct bus_range {
	uint64_t base, len;
	bus_io_fn fn;
	void *opaque;
	const char *name;
};

struct bus {
	struct bus_range r[BUS_MAX_RANGES];
	int n;
};

/* Ranges are registered before vCPUs start; overlapping ranges are refused (-EEXIST). */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
		 const char *name) __attribute__((warn_unused_result));
/* Returns false when no device claims the access: reads then see all ones. */
bool bus_dispatch(const struct bus *b, uint64_t addr, void *data, unsigned len, bool is_write);

#endif
