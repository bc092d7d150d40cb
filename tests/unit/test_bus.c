/* The I/O and MMIO bus: which device gets an access, at what offset, and what the guest
 * sees when nobody claims it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/bus.h"
#include "vmm/vm.h"

/* A device that records its last access and answers reads with 0x11, 0x22, ... */
struct rec {
	int calls;
	uint64_t off;
	unsigned len;
	bool is_write;
	uint8_t data[8];
};

static void rec_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct rec *r = opaque;
	r->calls++;
	r->off = off;
	r->len = len;
	r->is_write = is_write;
	if (is_write) {
		memcpy(r->data, data, len);
	} else {
		for (unsigned i = 0; i < len; i++)
			((uint8_t *)data)[i] = (uint8_t)(0x11 * (i + 1));
	}
}

static struct bus b;
static struct rec a, d;

static void two_devices(void)
{
	memset(&b, 0, sizeof(b));
	memset(&a, 0, sizeof(a));
	memset(&d, 0, sizeof(d));
	cr_assert_eq(bus_register(&b, 0x3f8, 8, rec_io, &a, "a"), 0);
	cr_assert_eq(bus_register(&b, 0xFEC00000ULL, 0x1000, rec_io, &d, "d"), 0);
}

TestSuite(bus, .init = two_devices);

/* Offsets are relative to the device's base; the right device, once. */
Test(bus, dispatch_read_and_write)
{
	uint32_t v = 0x12345678;
	cr_assert(bus_dispatch(&b, 0xFEC00010ULL, &v, 4, true));
	cr_assert_eq(d.calls, 1);
	cr_assert_eq(a.calls, 0);
	cr_assert_eq(d.off, 0x10);
	cr_assert_eq(d.len, 4);
	cr_assert(d.is_write);
	cr_assert_eq(memcmp(d.data, &v, 4), 0);

	uint8_t r[2] = { 0 };
	cr_assert(bus_dispatch(&b, 0x3fd, r, 2, false));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.off, 5);
	cr_assert(!a.is_write);
	cr_assert_eq(r[0], 0x11);
	cr_assert_eq(r[1], 0x22);
}

/* First and last byte of a range both belong to it. */
Test(bus, range_edges)
{
	uint8_t v = 0;
	cr_assert(bus_dispatch(&b, 0x3f8, &v, 1, false));
	cr_assert_eq(a.off, 0);
	cr_assert(bus_dispatch(&b, 0x3ff, &v, 1, false));
	cr_assert_eq(a.off, 7);
	cr_assert_eq(a.calls, 2);
	uint64_t q = 0;
	cr_assert(bus_dispatch(&b, 0xFEC00FF8ULL, &q, 8, false));
	cr_assert_eq(d.off, 0xFF8);
}

/* Unclaimed reads float high (all ones, exactly `len` bytes); unclaimed writes vanish. */
Test(bus, unclaimed)
{
	uint8_t r[8];
	memset(r, 0, sizeof(r));
	cr_assert_not(bus_dispatch(&b, 0x3f7, r, 4, false));
	for (int i = 0; i < 4; i++)
		cr_assert_eq(r[i], 0xff, "byte %d", i);
	cr_assert_eq(r[4], 0, "filled past len");
	uint32_t w = 0x5a5a5a5a;
	cr_assert_not(bus_dispatch(&b, 0x400, &w, 4, true));
	cr_assert_eq(w, 0x5a5a5a5a, "write buffer changed");
	cr_assert_eq(a.calls + d.calls, 0);
}

/* An access running past the end of a range belongs to no device. */
Test(bus, straddling_not_dispatched)
{
	uint32_t v = 0;
	cr_assert_not(bus_dispatch(&b, 0x3fe, &v, 4, false));
	cr_assert_eq(v, 0xffffffff);
	cr_assert_not(bus_dispatch(&b, 0x3f6, &v, 4, true));	/* starts before the base */
	uint64_t q = 0;
	cr_assert_not(bus_dispatch(&b, 0xFEC00FFCULL, &q, 8, false));
	cr_assert_not(bus_dispatch(&b, UINT64_MAX - 1, &q, 8, false));
	cr_assert_eq(a.calls + d.calls, 0);
}

Test(bus, overlap_refused)
{
	struct rec x = { 0 };
	cr_assert_eq(bus_register(&b, 0x3f8, 8, rec_io, &x, "same"), -EEXIST);
	cr_assert_eq(bus_register(&b, 0x3f0, 9, rec_io, &x, "tail"), -EEXIST);
	cr_assert_eq(bus_register(&b, 0x3ff, 4, rec_io, &x, "head"), -EEXIST);
	cr_assert_eq(bus_register(&b, 0x3fa, 1, rec_io, &x, "inside"), -EEXIST);
	cr_assert_eq(bus_register(&b, 0x300, 0x200, rec_io, &x, "around"), -EEXIST);
	cr_assert_eq(b.n, 2);
	/* Adjacent on both sides is fine. */
	cr_assert_eq(bus_register(&b, 0x3f0, 8, rec_io, &x, "below"), 0);
	cr_assert_eq(bus_register(&b, 0x400, 8, rec_io, &x, "above"), 0);
	uint8_t v;
	cr_assert(bus_dispatch(&b, 0x3f7, &v, 1, false));
	cr_assert_eq(x.calls, 1);
	cr_assert_eq(x.off, 7);
	cr_assert_eq(a.calls, 0);
}

Test(bus, bad_length_refused)
{
	struct rec x = { 0 };
	cr_assert_eq(bus_register(&b, 0x1000, 0, rec_io, &x, "empty"), -EINVAL);
	cr_assert_eq(bus_register(&b, UINT64_MAX - 3, 8, rec_io, &x, "wraps"), -EINVAL);
	cr_assert_eq(b.n, 2);
	uint8_t v;
	cr_assert_not(bus_dispatch(&b, 0x1000, &v, 1, false));
}

Test(bus, table_full)
{
	struct rec x = { 0 };
	for (int i = b.n; i < BUS_MAX_RANGES; i++)
		cr_assert_eq(bus_register(&b, 0x10000 + 16 * i, 16, rec_io, &x, "n"), 0);
	cr_assert_eq(bus_register(&b, 0x90000, 16, rec_io, &x, "one too many"), -ENOSPC);
	cr_assert_eq(b.n, BUS_MAX_RANGES);
}

/* A guest-provoked line repeated 500 times in a burst: one line, not 500. */
Test(vm_log, limited_lines_per_call_site)
{
	char path[] = "/tmp/minivmm-log.XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	for (int i = 0; i < 500; i++)
		VM_LOG_LIMITED("guest did thing %d", i);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char buf[4096] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	cr_assert_gt(n, 0);
	int lines = 0;
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	/* The burst may straddle one second boundary: two lines at most. */
	cr_assert(lines >= 1 && lines <= 2, "%d lines: %s", lines, buf);
	cr_assert(strstr(buf, "guest did thing 0"), "%s", buf);
}
