/* Boot a bzImage without its in-guest decompressor: unpack the compressed vmlinux it carries
 * once on the host (cached on disk), then load the ELF's segments straight into guest RAM. */
#ifndef MINIVMM_VMLINUX_H
#define MINIVMM_VMLINUX_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/memory.h"

/* The largest vmlinux we unpack: a hostile or corrupt payload must not exhaust host memory
 * (Debian's is ~66 MiB). */
#define VMLINUX_MAX_SIZE (512ULL << 20)

struct vmlinux {
	uint8_t *elf;
	size_t size;
	bool mapped;   /* mmap'd from the cache (munmap) vs malloc'd (free) */
};

/* Get the uncompressed vmlinux of a bzImage: from the cache when present and valid, else by
 * decompressing (and then writing the cache atomically: tmp file + rename; a cache that
 * cannot be written is not an error).  Returns 0; -ENOTSUP when the payload is not xz or
 * does not unpack to an ELF (the caller then boots the bzImage the classic way); -EINVAL
 * for a corrupt or truncated image or payload, or one that unpacks past VMLINUX_MAX_SIZE;
 * -ENOMEM.  `cache_dir` NULL = no cache.  `progress`: say on stderr, in one line, when it
 * has to decompress. */
int vmlinux_get(const uint8_t *bz, size_t bz_size, const char *cache_dir, bool progress,
		struct vmlinux *out)
	__attribute__((warn_unused_result));

/* The decompression step alone, with the size limit a parameter (vmlinux_get passes
 * VMLINUX_MAX_SIZE): `payload` is an xz stream, anything after its end is ignored.  Same
 * return values as vmlinux_get. */
int vmlinux_decompress(const uint8_t *payload, size_t len, size_t limit, struct vmlinux *out)
	__attribute__((warn_unused_result));

/* Release what vmlinux_get/vmlinux_decompress returned; safe on a zeroed struct, twice. */
void vmlinux_free(struct vmlinux *v);

/* Validate the ELF (ELF64 little-endian, x86-64, ET_EXEC, program headers inside the file,
 * every PT_LOAD's file range inside the file, p_filesz <= p_memsz, no overflow, no segment
 * below 1 MiB where the boot structures live, e_entry inside a loaded segment) and copy each
 * PT_LOAD to guest memory at p_paddr, zeroing p_memsz - p_filesz.  Nothing is written unless
 * every segment fits.  *entry = e_entry (the physical address of startup_64), *end = highest
 * p_paddr + p_memsz.  Returns 0; -ENOMEM when a segment lies above the end of RAM but below
 * the 32-bit hole (guest memory too small); -EINVAL otherwise; a reason in err. */
int vmlinux_load(struct gmem *m, const struct vmlinux *v, uint64_t *entry, uint64_t *end,
		 char *err, size_t errlen) __attribute__((warn_unused_result));

/* The default cache directory: $XDG_CACHE_HOME/minivmm/kernels (when set to an absolute
 * path) or ~/.cache/minivmm/kernels; NULL if neither is usable.  Returns a static buffer. */
const char *vmlinux_cache_dir(void);

/* How many unpacked kernels the cache keeps: the most recently used (a hit refreshes an
 * entry's time); older ones go whenever a new one is written. */
#define VMLINUX_CACHE_KEEP 4

/* Delete all but the `keep` most recently used entries of the cache in `dir` (files not
 * named like ours are left alone).  0, or -errno if the directory cannot be read. */
int vmlinux_cache_prune(const char *dir, unsigned keep);

#endif
