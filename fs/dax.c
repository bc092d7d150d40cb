/* DAX: FUSE_SETUPMAPPING and FUSE_REMOVEMAPPING over the device's window.
 *
 * The window is host memory the device reserved once and the VMM registered once as a KVM
 * memory slot (the virtio shared-memory region "cache").  A mapping is an
 * mmap(MAP_SHARED | MAP_FIXED) of a file range into the window: the guest then reads and
 * writes the host page cache itself, and KVM follows the host page tables through its MMU
 * notifier, so no ioctl is needed per mapping.  Removing a mapping maps anonymous memory
 * back, so what the guest sees there is zeros again and the file is let go.
 *
 * What a mapping costs the VMM's safety: its pages belong to a host file that may shrink
 * under it, after which a load or store by this process raises SIGBUS.  The VMM therefore
 * never copies to or from the window with memcpy: the queues accept window addresses for
 * request buffers (virtio/queue.c), fs/fuse.c refuses to copy headers or arguments out of
 * or replies into them (fs_dax_overlaps), and data moves only through preadv/pwritev,
 * which return EFAULT instead.  The guest touching such a page makes KVM_RUN fail, which
 * vmm/vcpu.c reports. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fs/internal.h"

#define DAX_REMOVE_MAX 1024     /* entries in one REMOVEMAPPING (Linux sends at most 256) */

/* Every mapping is a VMA of this process, and a process has at most vm.max_map_count of
 * them (65530): a guest mapping single pages used them all up, and then the VMM's
 * pthread_create failed.  So live mappings are counted (as the VMAs that begin in the
 * window: each SETUPMAPPING starts one, and cutting a mapping in two starts another) and
 * capped, per window at what Linux needs (one per 2 MiB range it maps, at least
 * DAX_MAPS_MIN) and for the process at half of max_map_count less a reserve (the gaps
 * between mappings are VMAs too).  Beyond the cap SETUPMAPPING fails with ENOSPC, which
 * Linux never sees: it maps whole 2 MiB ranges, one mapping each. */
#define DAX_RANGE       (2ULL << 20)
#define DAX_MAPS_MIN    16
#define DAX_VMA_RESERVE 8192        /* the VMM's own mappings: RAM, stacks, libraries */

struct fs_dax {
	uint8_t *base;
	uint64_t size;
	uint64_t page;              /* host page size: the mapping granularity */
	unsigned shift;             /* log2(page) */
	/* The bitmaps and count, held across the mmap too so the count stays exact. */
	pthread_mutex_t mu;
	uint64_t *mapped;           /* one bit per window page that holds a file */
	uint64_t *starts;           /* one bit per page where a file mapping (VMA) begins */
	uint64_t npages;
	uint64_t nmaps, maxmaps;    /* bits in starts, and the window's cap */
};

static atomic_uint_fast64_t dax_maps_total;    /* every window's nmaps */
static uint64_t dax_maps_cap;                   /* for the process, set once */
static pthread_once_t dax_cap_once = PTHREAD_ONCE_INIT;

static void dax_cap_init(void)
{
	unsigned long n = 65530;        /* the kernel's default */
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%lu", &n) != 1)
			n = 65530;
		fclose(f);
	}
	dax_maps_cap = n > 2 * DAX_VMA_RESERVE ? (n - DAX_VMA_RESERVE) / 2 : n / 4;
}

/* Every window of the process, whichever server maps into it: a request to one share
 * may carry a buffer in another share's window, and no server may copy through any. */
#define DAX_MAX_WINDOWS 64
static pthread_mutex_t windows_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { uintptr_t base; uint64_t size; } windows[DAX_MAX_WINDOWS];
static unsigned nwindows;

void *fuse_dax_window_create(uint64_t size)
{
	pthread_mutex_lock(&windows_mu);
	if (nwindows == DAX_MAX_WINDOWS) {
		pthread_mutex_unlock(&windows_mu);
		errno = ENOSPC;
		return NULL;
	}
	/* Private anonymous and unreserved: a guest read of an unmapped part sees zeros and
	 * costs nothing; a guest write there costs one page of host memory. */
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p != MAP_FAILED) {
		windows[nwindows].base = (uintptr_t)p;
		windows[nwindows].size = size;
		__atomic_store_n(&nwindows, nwindows + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&windows_mu);
	return p == MAP_FAILED ? NULL : p;
}

void fuse_dax_window_destroy(void *base, uint64_t size)
{
	if (!base)
		return;
	pthread_mutex_lock(&windows_mu);
	for (unsigned i = 0; i < nwindows; i++) {
		if (windows[i].base == (uintptr_t)base) {
			windows[i] = windows[nwindows - 1];
			__atomic_store_n(&nwindows, nwindows - 1, __ATOMIC_RELEASE);
			break;
		}
	}
	munmap(base, size);
	pthread_mutex_unlock(&windows_mu);
}

/* Anonymous memory back over [off, off+len): the file mapping, if any, is gone. */
static int dax_unmap_range(struct fs_dax *d, uint64_t off, uint64_t len)
{
	void *p = mmap(d->base + off, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return p == MAP_FAILED ? -errno : 0;
}

static bool bit_get(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i & 63) & 1;
}

static void bit_put(uint64_t *b, uint64_t i, bool v)
{
	if (v)
		b[i / 64] |= 1ULL << (i & 63);
	else
		b[i / 64] &= ~(1ULL << (i & 63));
}

/* How the mapping count changes when [off, off+len) becomes one new mapping (map) or
 * anonymous memory again: the VMAs beginning inside go, one begins at off when mapping,
 * and a mapping running on past the end is cut there, so its rest begins anew. */
static int64_t dax_maps_delta(const struct fs_dax *d, uint64_t off, uint64_t len, bool map)
{
	uint64_t first = off >> d->shift, end = first + (len >> d->shift);
	int64_t delta = map ? 1 : 0;

	for (uint64_t i = first; i < end; i++)
		delta -= bit_get(d->starts, i);
	if (end < d->npages && bit_get(d->mapped, end) && !bit_get(d->starts, end))
		delta++;
	return delta;
}

/* Record [off, off+len) as mapped to a file, or not; d->mu held. */
static void dax_mark(struct fs_dax *d, uint64_t off, uint64_t len, bool map)
{
	uint64_t first = off >> d->shift, end = first + (len >> d->shift);
	int64_t delta = dax_maps_delta(d, off, len, map);

	if (end < d->npages && bit_get(d->mapped, end))
		bit_put(d->starts, end, true);
	for (uint64_t i = first; i < end; i++) {
		bit_put(d->mapped, i, map);
		bit_put(d->starts, i, map && i == first);
	}
	d->nmaps += (uint64_t)delta;
	atomic_fetch_add(&dax_maps_total, (uint64_t)delta);
}

/* May [off, off+len) change so (d->mu held)?  ENOSPC when it would take more mappings
 * than the window's or the process's cap; what frees mappings always may. */
static int dax_maps_check(const struct fs_dax *d, uint64_t off, uint64_t len, bool map)
{
	int64_t delta = dax_maps_delta(d, off, len, map);

	if (delta <= 0)
		return 0;
	if (d->nmaps + (uint64_t)delta > d->maxmaps ||
	    atomic_load(&dax_maps_total) + (uint64_t)delta > dax_maps_cap)
		return -ENOSPC;
	return 0;
}

int fs_dax_init(struct fuse_server *s)
{
	struct fs_dax *d;
	long page = sysconf(_SC_PAGESIZE);

	if (!s->cfg.dax_window)
		return 0;
	if (page <= 0 || (page & (page - 1)) || s->cfg.dax_size % (uint64_t)page)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->base = s->cfg.dax_window;
	d->size = s->cfg.dax_size;
	d->page = (uint64_t)page;
	d->shift = (unsigned)__builtin_ctzl((unsigned long)page);
	d->npages = d->size >> d->shift;
	d->mapped = calloc((d->npages + 63) / 64, sizeof(uint64_t));
	d->starts = calloc((d->npages + 63) / 64, sizeof(uint64_t));
	if (!d->mapped || !d->starts) {
		free(d->mapped);
		free(d->starts);
		free(d);
		return -ENOMEM;
	}
	pthread_once(&dax_cap_once, dax_cap_init);
	d->maxmaps = d->size / DAX_RANGE;
	if (d->maxmaps < DAX_MAPS_MIN)
		d->maxmaps = DAX_MAPS_MIN;
	pthread_mutex_init(&d->mu, NULL);
	s->dax = d;
	/* A new session (device reset) starts with an empty window, whatever the last one
	 * left mapped. */
	fs_dax_clear(s);
	return 0;
}

void fs_dax_fini(struct fuse_server *s)
{
	if (!s->dax)
		return;
	/* The window's mappings stay until it is destroyed or the next server clears it;
	 * they no longer count against the cap, which is per server session. */
	atomic_fetch_sub(&dax_maps_total, s->dax->nmaps);
	pthread_mutex_destroy(&s->dax->mu);
	free(s->dax->mapped);
	free(s->dax->starts);
	free(s->dax);
	s->dax = NULL;
}

void fs_dax_clear(struct fuse_server *s)
{
	struct fs_dax *d = s->dax;

	if (!d)
		return;
	/* One mmap over the whole window; if even that fails the old mappings stay, which
	 * only keeps files open on the host. */
	pthread_mutex_lock(&d->mu);
	if (!dax_unmap_range(d, 0, d->size)) {
		memset(d->mapped, 0, ((d->npages + 63) / 64) * sizeof(uint64_t));
		memset(d->starts, 0, ((d->npages + 63) / 64) * sizeof(uint64_t));
		atomic_fetch_sub(&dax_maps_total, d->nmaps);
		d->nmaps = 0;
	}
	pthread_mutex_unlock(&d->mu);
}

bool fs_dax_overlaps(const struct fuse_server *s, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;
	bool hit = false;

	/* Windows come and go only at start-up and in tests; a plain read of the count
	 * skips the lock for the usual process without any. */
	if (!__atomic_load_n(&nwindows, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&windows_mu);
	for (unsigned i = 0; i < nwindows && !hit; i++)
		hit = a < windows[i].base + windows[i].size && windows[i].base < a + len;
	pthread_mutex_unlock(&windows_mu);
	return hit;
}

uint64_t fs_dax_page_shift(const struct fuse_server *s)
{
	return s->dax ? s->dax->shift : 0;
}

uint64_t fuse_dax_mapped(struct fuse_server *s)
{
	struct fs_dax *d = s->dax;
	uint64_t n = 0;

	if (!d)
		return 0;
	pthread_mutex_lock(&d->mu);
	for (uint64_t i = 0; i < (d->npages + 63) / 64; i++)
		n += (uint64_t)__builtin_popcountll(d->mapped[i]);
	pthread_mutex_unlock(&d->mu);
	return n << d->shift;
}

/* A window range: page-aligned, non-empty, wholly inside, computed without overflow. */
static bool dax_range_ok(const struct fs_dax *d, uint64_t off, uint64_t len)
{
	return len && !(off & (d->page - 1)) && !(len & (d->page - 1)) && off < d->size &&
	       len <= d->size - off;
}

/* The fd a mapping is made from: the guest's handle when it names one (it must be this
 * node's, open for what the mapping needs), else the inode reopened for it, as Linux
 * sends fh = -1 and relies on its own open-time permission checks. */
static int dax_fd(struct fuse_req *r, uint64_t fh, bool write, struct fs_handle **hp)
{
	struct fs_handle *h;
	int acc;

	*hp = NULL;
	if (fh == UINT64_MAX)
		return fs_reopen(r->s, r->ino, write ? O_RDWR : O_RDONLY);
	h = handle_get(r->s, fh, FS_HANDLE_FILE);
	if (!h)
		return -EBADF;
	if (h->ino != r->ino) {
		handle_put(r->s, h);
		return -EBADF;
	}
	acc = fcntl(h->fd, F_GETFL);
	acc = acc < 0 ? -1 : (acc & O_ACCMODE);
	/* Any mapping needs a readable fd; a shared writable one needs O_RDWR. */
	if (acc == O_WRONLY || acc < 0 || (write && acc != O_RDWR)) {
		handle_put(r->s, h);
		return -EACCES;
	}
	*hp = h;
	return h->fd;
}

int fsop_setupmapping(struct fuse_req *r)
{
	const struct fuse_setupmapping_in *a = &r->arg.setupmapping;
	const uint64_t known = FUSE_SETUPMAPPING_FLAG_READ | FUSE_SETUPMAPPING_FLAG_WRITE;
	struct fs_dax *d = r->s->dax;
	struct fs_handle *h;
	bool write;
	void *p;
	int fd, ret = 0;

	if (!d)
		return -ENOSYS;
	/* Linux always asks for READ; a mapping the guest cannot read is a broken request. */
	if ((a->flags & ~known) || !(a->flags & FUSE_SETUPMAPPING_FLAG_READ))
		return -EINVAL;
	if (!dax_range_ok(d, a->moffset, a->len) || (a->foffset & (d->page - 1)) ||
	    a->foffset > (uint64_t)INT64_MAX - a->len)
		return -EINVAL;
	if (!S_ISREG(r->ino->type))
		return -EINVAL;
	write = a->flags & FUSE_SETUPMAPPING_FLAG_WRITE;
	if (write && r->ro)
		return -EROFS;
	fd = dax_fd(r, a->fh, write, &h);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&d->mu);
	ret = dax_maps_check(d, a->moffset, a->len, true);
	if (ret)
		goto out;
	p = mmap(d->base + a->moffset, a->len, PROT_READ | (write ? PROT_WRITE : 0),
		 MAP_SHARED | MAP_FIXED, fd, (off_t)a->foffset);
	if (p == MAP_FAILED) {
		ret = -errno;
		/* A failed MAP_FIXED may already have torn down what was there: never leave a
		 * hole in the window (KVM could not back the guest's access). */
		dax_unmap_range(d, a->moffset, a->len);
		dax_mark(d, a->moffset, a->len, false);
	} else {
		dax_mark(d, a->moffset, a->len, true);
	}
out:
	pthread_mutex_unlock(&d->mu);
	if (h)
		handle_put(r->s, h);
	else
		close(fd);
	return ret;
}

int fsop_removemapping(struct fuse_req *r)
{
	struct fs_dax *d = r->s->dax;
	uint32_t count = r->arg.removemapping.count;
	struct fuse_removemapping_one *v;
	int ret = 0;

	if (!d)
		return -ENOSYS;
	if (count == 0 || count > DAX_REMOVE_MAX ||
	    (size_t)count * sizeof(*v) > r->taillen)
		return -EINVAL;
	/* One local copy, checked whole before anything is unmapped. */
	v = malloc((size_t)count * sizeof(*v));
	if (!v)
		return -ENOMEM;
	ret = req_get_tail(r, 0, v, (size_t)count * sizeof(*v));
	for (uint32_t i = 0; !ret && i < count; i++)
		if (!dax_range_ok(d, v[i].moffset, v[i].len))
			ret = -EINVAL;
	/* Removing part of a mapping cuts it in two: refused (ENOSPC) at the cap, checked
	 * one range at a time as each changes the count. */
	pthread_mutex_lock(&d->mu);
	for (uint32_t i = 0; !ret && i < count; i++) {
		ret = dax_maps_check(d, v[i].moffset, v[i].len, false);
		if (!ret)
			ret = dax_unmap_range(d, v[i].moffset, v[i].len);
		if (!ret)
			dax_mark(d, v[i].moffset, v[i].len, false);
	}
	pthread_mutex_unlock(&d->mu);
	free(v);
	return ret;
}
