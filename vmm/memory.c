/* Guest RAM.  One anonymous mapping backs all of RAM; the guest sees it split around the
 * 32-bit MMIO hole.  gmem_ptr() is the single place guest physical addresses become host
 * pointers, so every range check in the VMM is this one. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "vmm/memory.h"

int gmem_init(struct gmem *m, uint64_t ram_size)
{
	*m = (struct gmem){ 0 };
	/* NORESERVE: a 64 GiB guest on a 24 GiB host is legitimate as long as it does not
	 * touch it all; pages are faulted in as the guest uses them. */
	void *p = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	madvise(p, ram_size, MADV_HUGEPAGE);
	m->base = p;
	m->ram_size = ram_size;

	uint64_t low = ram_size < GMEM_HOLE_START ? ram_size : GMEM_HOLE_START;
	m->r[m->n++] = (struct gmem_region){ 0, low, m->base };
	if (ram_size > low)
		m->r[m->n++] = (struct gmem_region){ GMEM_HIGH_START, ram_size - low, m->base + low };
	return 0;
}

void gmem_free(struct gmem *m)
{
	if (m->base)
		munmap(m->base, m->ram_size);
	*m = (struct gmem){ 0 };
}

void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		len = 1;
	for (int i = 0; i < m->n; i++) {
		const struct gmem_region *r = &m->r[i];
		/* Written so no sum can overflow: gpa - r->gpa is only formed once gpa >= r->gpa. */
		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

void *gmem_window_ptr(const struct gmem_window *w, uint64_t gpa, uint64_t len)
{
	if (!w)
		return NULL;
	uint64_t base = __atomic_load_n(&w->gpa, __ATOMIC_ACQUIRE);
	if (len == 0)
		len = 1;
	if (!base || gpa < base || gpa - base >= w->size || len > w->size - (gpa - base))
		return NULL;
	return w->hva + (gpa - base);
}

int gmem_add_window(struct gmem *m, const struct gmem_window *w)
{
	if (m->nwin == GMEM_MAX_WINDOWS)
		return -ENOSPC;
	m->win[m->nwin++] = w;
	return 0;
}

void *gmem_windows_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < m->nwin; i++) {
		void *p = gmem_window_ptr(m->win[i], gpa, len);
		if (p)
			return p;
	}
	return NULL;
}

uint64_t gmem_low_end(const struct gmem *m)
{
	return m->n ? m->r[0].size : 0;
}

int gmem_parse_size(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 20; /* a bare number is MiB, as with QEMU's -m */
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case 'b': case 'B': shift = 0; end++; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if ((*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b') && shift)
		end += 2;
	else if ((*end == 'B' || *end == 'b') && shift)
		end++;
	if (*end)
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}
