/* The vmlinux inside a bzImage.  A bzImage's protected-mode part is a small decompressor plus
 * the real kernel, an ELF file compressed with xz; the boot protocol (2.08+) says where it
 * is.  Unpacking it in the guest costs 6-10 s under emulation and a few hundred ms on
 * hardware, every boot; unpacking it once on the host, caching the result and entering the
 * ELF at startup_64 (as Firecracker does with a vmlinux) skips that.  KASLR, which only the
 * decompressor applies, is then not applied. */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lzma.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <asm/bootparam.h>

#include "vmm/boot.h"
#include "vmm/vmlinux.h"

#define SETUP_HDR_OFF     0x1f1
#define PAYLOAD_PROTOCOL  0x0208   /* first protocol with payload_offset/payload_length */
/* The decoder needs about the dictionary size; the kernel is packed with a 32 MiB one. */
#define XZ_MEMLIMIT       (128ULL << 20)

static const uint8_t xz_magic[6] = { 0xfd, '7', 'z', 'X', 'Z', 0x00 };

/* Find the compressed payload.  Its offset is relative to the protected-mode part, which
 * starts after the (setup_sects + 1) sectors of real-mode code. */
static int payload_find(const uint8_t *bz, size_t size, const uint8_t **p, size_t *len)
{
	struct setup_header h;
	if (size < SETUP_HDR_OFF + sizeof(h))
		return -EINVAL;
	memcpy(&h, bz + SETUP_HDR_OFF, sizeof(h));
	if (h.boot_flag != 0xAA55 || h.header != 0x53726448 /* "HdrS" */)
		return -EINVAL;
	if (h.version < PAYLOAD_PROTOCOL || h.payload_length == 0)
		return -ENOTSUP;
	uint64_t off = ((uint64_t)(h.setup_sects ? h.setup_sects : 4) + 1) * 512 + h.payload_offset;
	if (off > size || h.payload_length > size - off)
		return -EINVAL;
	*p = bz + off;
	*len = h.payload_length;
	return 0;
}

static uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* The cache key.  Four independent multiply-rotate lanes over 8-byte words (the shape of
 * xxHash64) hash the ~8 MiB payload in about a millisecond on every boot, where byte-wise
 * FNV-1a would take ~10 ms; a final avalanche spreads every input bit over the result. */
static uint64_t hash64(const uint8_t *p, size_t n)
{
	const uint64_t k1 = 0x9E3779B185EBCA87ULL, k2 = 0xC2B2AE3D27D4EB4FULL;
	uint64_t lane[4] = { k1, k2, ~k1, ~k2 };
	size_t i = 0;
	for (; n - i >= 32; i += 32)
		for (int l = 0; l < 4; l++) {
			uint64_t w;
			memcpy(&w, p + i + 8 * l, 8);
			lane[l] = rotl64(lane[l] + w * k2, 31) * k1;
		}
	uint64_t h = n;
	for (int l = 0; l < 4; l++)
		h = rotl64(h ^ lane[l], 27) * k1 + k2;
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001B3ULL;  /* FNV-1a for the tail */
	h ^= h >> 33;
	h *= 0xFF51AFD7ED558CCDULL;
	h ^= h >> 33;
	h *= 0xC4CEB9FE1A85EC53ULL;
	return h ^ (h >> 33);
}

int vmlinux_decompress(const uint8_t *payload, size_t len, size_t limit, struct vmlinux *out)
{
	*out = (struct vmlinux){ 0 };
	if (len < sizeof(xz_magic) || memcmp(payload, xz_magic, sizeof(xz_magic)))
		return -ENOTSUP;
	if (limit > VMLINUX_MAX_SIZE)
		limit = VMLINUX_MAX_SIZE;

	/* Kbuild appends the uncompressed size (32-bit little-endian) to the payload: a good
	 * first guess for the buffer, but only a guess, as nothing checks it. */
	size_t cap = len < ((size_t)1 << 20) / 4 ? (size_t)1 << 20 : len * 4;
	if (len >= 4) {
		const uint8_t *t = payload + len - 4;
		size_t hint = t[0] | t[1] << 8 | t[2] << 16 | (size_t)t[3] << 24;
		if (hint >= 4096)
			cap = hint + 4096;  /* slack: the decoder reports the end only with room left */
	}
	/* One byte over the limit, so "exactly at the limit" and "too big" differ. */
	if (cap > limit + 1)
		cap = limit + 1;

	lzma_stream s = LZMA_STREAM_INIT;
	/* No LZMA_CONCATENATED: the stream ends at its footer, and the size word and any
	 * relocation data after it are not xz. */
	if (lzma_stream_decoder(&s, XZ_MEMLIMIT, 0) != LZMA_OK)
		return -ENOMEM;
	uint8_t *buf = malloc(cap);
	int ret = buf ? 0 : -ENOMEM;
	s.next_in = payload;
	s.avail_in = len;
	s.next_out = buf;
	s.avail_out = cap;
	while (!ret) {
		lzma_ret r = lzma_code(&s, LZMA_FINISH);
		if (r == LZMA_STREAM_END)
			break;
		if (r == LZMA_OK && s.avail_out == 0) {
			if (cap > limit) {
				ret = -EINVAL;  /* more than `limit` bytes: refuse */
				break;
			}
			size_t ncap = cap > (limit + 1) / 2 ? limit + 1 : cap * 2;
			uint8_t *nbuf = realloc(buf, ncap);
			if (!nbuf) {
				ret = -ENOMEM;
				break;
			}
			buf = nbuf;
			s.next_out = buf + cap;
			s.avail_out = ncap - cap;
			cap = ncap;
		} else if (r != LZMA_OK) {
			/* Filters or a dictionary we will not handle: the in-guest decoder may;
			 * everything else is a damaged stream. */
			ret = r == LZMA_MEM_ERROR ? -ENOMEM
			    : r == LZMA_OPTIONS_ERROR || r == LZMA_MEMLIMIT_ERROR ? -ENOTSUP : -EINVAL;
		}
	}
	size_t total = s.total_out;
	lzma_end(&s);
	if (!ret && total > limit)
		ret = -EINVAL;
	/* Sound xz that is not an ELF: not something we know how to boot. */
	if (!ret && (total < sizeof(Elf64_Ehdr) || memcmp(buf, ELFMAG, SELFMAG)))
		ret = -ENOTSUP;
	if (ret) {
		free(buf);
		return ret;
	}
	*out = (struct vmlinux){ .elf = buf, .size = total, .mapped = false };
	return 0;
}

/* A cached vmlinux is trusted as far as its name (payload hash and length) goes; this only
 * catches files that are plainly not ours.  vmlinux_load validates the ELF either way. */
static int cache_read(const char *path, struct vmlinux *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(Elf64_Ehdr) ||
	    (uint64_t)st.st_size > VMLINUX_MAX_SIZE) {
		close(fd);
		return -EINVAL;
	}
	/* POPULATE: vmlinux_load reads all of it right away; faulting it in as one batch is
	 * cheaper than page by page. */
	void *p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	/* Used now: the newest entries are the ones pruning keeps. */
	futimens(fd, NULL);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	if (memcmp(p, ELFMAG, SELFMAG)) {
		munmap(p, st.st_size);
		return -EINVAL;
	}
	*out = (struct vmlinux){ .elf = p, .size = st.st_size, .mapped = true };
	return 0;
}

/* Our entries: 16 hex digits, '-', a length, ".elf". */
static bool cache_name(const char *n)
{
	size_t len = strlen(n);
	if (len < 22 || strcmp(n + len - 4, ".elf") || n[16] != '-')
		return false;
	for (int i = 0; i < 16; i++)
		if (!strchr("0123456789abcdef", n[i]))
			return false;
	for (size_t i = 17; i < len - 4; i++)
		if (n[i] < '0' || n[i] > '9')
			return false;
	return true;
}

struct cache_ent {
	char name[64];
	struct timespec mtime;
};

static int cache_ent_newer(const void *a, const void *b)
{
	const struct timespec *x = &((const struct cache_ent *)a)->mtime;
	const struct timespec *y = &((const struct cache_ent *)b)->mtime;
	if (x->tv_sec != y->tv_sec)
		return x->tv_sec > y->tv_sec ? -1 : 1;
	return x->tv_nsec > y->tv_nsec ? -1 : x->tv_nsec < y->tv_nsec;
}

int vmlinux_cache_prune(const char *dir, unsigned keep)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct cache_ent *e = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (!cache_name(de->d_name) || strlen(de->d_name) >= sizeof(e->name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			struct cache_ent *g = realloc(e, (cap = cap ? 2 * cap : 16) * sizeof(*e));
			if (!g) {
				ret = -ENOMEM;
				goto out;
			}
			e = g;
		}
		snprintf(e[n].name, sizeof(e[n].name), "%s", de->d_name);
		e[n++].mtime = st.st_mtim;
	}
	qsort(e, n, sizeof(*e), cache_ent_newer);
	for (size_t i = keep; i < n; i++)
		unlinkat(dirfd(d), e[i].name, 0);
out:
	free(e);
	closedir(d);
	return ret;
}

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *s = buf + 1; ; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		if (!c)
			return 0;
		*s = c;
	}
}

/* Write to a private temporary name and rename into place, so a reader never sees a partial
 * file, whether we crash or another minivmm fills the same entry at the same time.  Failure
 * only costs the next boot a decompression. */
static void cache_write(const char *dir, const char *path, const struct vmlinux *v)
{
	char tmp[PATH_MAX];
	if (mkdir_p(dir) || snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return;
	size_t done = 0;
	while (done < v->size) {
		ssize_t n = write(fd, v->elf + done, v->size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += n;
	}
	/* fsync before rename: after a crash the name must not point at unwritten blocks. */
	bool ok = done == v->size && !fsync(fd);
	if (close(fd) || !ok || rename(tmp, path))
		unlink(tmp);
	else
		vmlinux_cache_prune(dir, VMLINUX_CACHE_KEEP);
}

int vmlinux_get(const uint8_t *bz, size_t bz_size, const char *cache_dir, bool progress,
		struct vmlinux *out)
{
	*out = (struct vmlinux){ 0 };
	const uint8_t *p;
	size_t len;
	int ret = payload_find(bz, bz_size, &p, &len);
	if (ret)
		return ret;
	if (len < sizeof(xz_magic) || memcmp(p, xz_magic, sizeof(xz_magic)))
		return -ENOTSUP;

	char path[PATH_MAX];
	bool cache = cache_dir &&
		snprintf(path, sizeof(path), "%s/%016llx-%zu.elf", cache_dir,
			 (unsigned long long)hash64(p, len), len) < (int)sizeof(path);
	if (cache && !cache_read(path, out))
		return 0;
	/* A second or so on hardware, many under emulation: worth one line on a terminal. */
	if (progress)
		fprintf(stderr, "minivmm: unpacking the kernel once%s%s\n",
			cache ? "; cached in " : " (no cache)", cache ? cache_dir : "");
	ret = vmlinux_decompress(p, len, VMLINUX_MAX_SIZE, out);
	if (!ret && cache)
		cache_write(cache_dir, path, out);
	return ret;
}

void vmlinux_free(struct vmlinux *v)
{
	if (v->elf && v->mapped)
		munmap(v->elf, v->size);
	else
		free(v->elf);
	*v = (struct vmlinux){ 0 };
}

static int fail(int ret, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

int vmlinux_load(struct gmem *m, const struct vmlinux *v, uint64_t *entry, uint64_t *end,
		 char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	if (!v->elf || v->size < sizeof(eh))
		return fail(-EINVAL, err, errlen, "vmlinux: %zu bytes is too short for an ELF header",
			    v->size);
	memcpy(&eh, v->elf, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return fail(-EINVAL, err, errlen, "vmlinux: not a 64-bit little-endian ELF file");
	if (eh.e_machine != EM_X86_64 || eh.e_type != ET_EXEC)
		return fail(-EINVAL, err, errlen, "vmlinux: not an x86-64 executable (machine %u, type %u)",
			    eh.e_machine, eh.e_type);
	/* PN_XNUM would mean the count lives in a section header: no kernel needs that many. */
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum >= PN_XNUM ||
	    eh.e_phoff > v->size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > v->size - eh.e_phoff)
		return fail(-EINVAL, err, errlen, "vmlinux: program headers (%u at 0x%llx) outside the file",
			    eh.e_phnum, (unsigned long long)eh.e_phoff);

	/* Check everything before writing anything: a refused kernel leaves RAM untouched. */
	uint64_t top = 0;
	bool entry_ok = false, any = false;
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < eh.e_phnum; i++) {
			Elf64_Phdr ph;
			memcpy(&ph, v->elf + eh.e_phoff + i * sizeof(ph), sizeof(ph));
			if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
				continue;
			uint8_t *dst = gmem_ptr(m, ph.p_paddr, ph.p_memsz);
			if (pass == 1) {
				memcpy(dst, v->elf + ph.p_offset, ph.p_filesz);
				memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
				continue;
			}
			if (ph.p_offset > v->size || ph.p_filesz > v->size - ph.p_offset ||
			    ph.p_filesz > ph.p_memsz)
				return fail(-EINVAL, err, errlen,
					    "vmlinux: segment %u (0x%llx+0x%llx of 0x%llx bytes) lies outside the file",
					    i, (unsigned long long)ph.p_offset,
					    (unsigned long long)ph.p_filesz, (unsigned long long)ph.p_memsz);
			uint64_t seg_end = ph.p_paddr + ph.p_memsz;
			if (seg_end < ph.p_paddr || ph.p_paddr < BOOT_BIOS_END)
				return fail(-EINVAL, err, errlen,
					    "vmlinux: segment %u at 0x%llx+0x%llx is not a usable address",
					    i, (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
			if (!dst && seg_end <= GMEM_HOLE_START)
				return fail(-ENOMEM, err, errlen,
					    "the kernel needs %llu MiB of memory; --mem is too small",
					    (unsigned long long)((seg_end + (1 << 20) - 1) >> 20));
			if (!dst)
				return fail(-EINVAL, err, errlen,
					    "vmlinux: segment %u at 0x%llx+0x%llx is outside guest RAM",
					    i, (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
			if (eh.e_entry >= ph.p_paddr && eh.e_entry - ph.p_paddr < ph.p_filesz)
				entry_ok = true;
			if (seg_end > top)
				top = seg_end;
			any = true;
		}
		if (pass == 0 && (!any || !entry_ok))
			return fail(-EINVAL, err, errlen,
				    "vmlinux: entry point 0x%llx is not in a loaded segment",
				    (unsigned long long)eh.e_entry);
	}
	*entry = eh.e_entry;
	*end = top;
	return 0;
}

const char *vmlinux_cache_dir(void)
{
	static char buf[PATH_MAX];
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int n;
	/* The XDG spec says a relative $XDG_CACHE_HOME is invalid and must be ignored. */
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, sizeof(buf), "%s/minivmm/kernels", xdg);
	else if (home && home[0])
		n = snprintf(buf, sizeof(buf), "%s/.cache/minivmm/kernels", home);
	else
		return NULL;
	return n < (int)sizeof(buf) ? buf : NULL;
}
