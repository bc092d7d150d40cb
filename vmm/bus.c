/* Address-range dispatch for port I/O and MMIO exits.  The table is tiny and fixed after
 * start-up, so a linear scan without locking is both fast enough and race-free. */
#include <errno.h>
#include <string.h>

#include "vmm/bus.h"

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn, void *opaque,
		 const char *name)
{
	if (!len || base + len < base)
		return -EINVAL;
	for (int i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->r[i];
		if (base < r->base + r->len && r->base < base + len)
			return -EEXIST;
	}
	if (b->n == BUS_MAX_RANGES)
		return -ENOSPC;
	b->r[b->n++] = (struct bus_range){ base, len, fn, opaque, name };
	return 0;
}

bool bus_dispatch(const struct bus *b, uint64_t addr, void *data, unsigned len, bool is_write)
{
	for (int i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->r[i];
		/* The whole access must fall inside the range: a 4-byte read straddling two
		 * devices belongs to neither. */
		if (addr >= r->base && addr - r->base < r->len && len <= r->len - (addr - r->base)) {
			r->fn(r->opaque, addr - r->base, data, len, is_write);
			return true;
		}
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
