/* What the libFuzzer targets in tests/fuzz/ share: a cursor that hands out the fuzz input
 * piece by piece (running dry yields zeros, so every input is a complete program), guest
 * RAM backed by heap blocks so ASan sees any access outside it, and a checked abort.
 *
 * Each target defines LLVMFuzzerTestOneInput and bounds its own input size: a target never
 * does work out of proportion to its input (no huge decompression, no unbounded files). */
#ifndef MINIVMM_TESTS_FUZZ_H
#define MINIVMM_TESTS_FUZZ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/memory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test does not hold: report it as a crash. */
#define FZ_CHECK(cond, ...) do {                                                     \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                \
			fputc('\n', stderr);                                         \
			abort();                                                     \
		}                                                                    \
	} while (0)

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_empty(const struct fz *f) { return f->n == 0; }

static inline void fz_bytes(struct fz *f, void *dst, size_t len)
{
	size_t k = len < f->n ? len : f->n;
	memcpy(dst, f->p, k);
	memset((uint8_t *)dst + k, 0, len - k);
	f->p += k;
	f->n -= k;
}

static inline uint8_t fz_u8(struct fz *f) { uint8_t v; fz_bytes(f, &v, 1); return v; }
static inline uint16_t fz_u16(struct fz *f) { uint16_t v; fz_bytes(f, &v, 2); return v; }
static inline uint32_t fz_u32(struct fz *f) { uint32_t v; fz_bytes(f, &v, 4); return v; }
static inline uint64_t fz_u64(struct fz *f) { uint64_t v; fz_bytes(f, &v, 8); return v; }

/* Guest RAM as the VMM sees it (struct gmem), but each region its own malloc'd block
 * instead of one mmap: a host pointer the code under test computes outside a region is an
 * ASan report, not a silent read of a neighbouring page.  `low` bytes at 0 and, when
 * `high` is non-zero, `high` bytes at 4 GiB (the region split of vmm/memory.c). */
static inline void fz_gmem(struct gmem *m, uint64_t low, uint64_t high)
{
	memset(m, 0, sizeof(*m));
	m->r[m->n++] = (struct gmem_region){ 0, low, calloc(1, low) };
	if (high)
		m->r[m->n++] = (struct gmem_region){ GMEM_HIGH_START, high, calloc(1, high) };
	m->ram_size = low + high;
	for (int i = 0; i < m->n; i++)
		if (!m->r[i].hva)
			abort();
	m->base = m->r[0].hva;
}

/* Never gmem_free: that munmaps. */
static inline void fz_gmem_free(struct gmem *m)
{
	for (int i = 0; i < m->n; i++)
		free(m->r[i].hva);
	memset(m, 0, sizeof(*m));
}

/* Is [p, p+len) wholly inside one region of m (or, when `win` is given, inside it)? */
static inline bool fz_in_ram(const struct gmem *m, const void *p, size_t len)
{
	const uint8_t *b = p;
	for (int i = 0; i < m->n; i++)
		if (b >= m->r[i].hva && (size_t)(b - m->r[i].hva) <= m->r[i].size &&
		    len <= m->r[i].size - (size_t)(b - m->r[i].hva))
			return true;
	return false;
}

#endif
