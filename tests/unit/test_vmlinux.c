/* Booting the vmlinux inside a bzImage: finding and unpacking the payload (the installed
 * Debian kernel, and small synthetic images built here with liblzma), the on-disk cache,
 * and loading the ELF into guest memory, including ELF files crafted to lie. */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <asm/bootparam.h>

#include "vmm/memory.h"
#include "vmm/vmlinux.h"

#define MiB (1ULL << 20)

/* ---- files and directories ---- */

static uint8_t *read_kernel(size_t *size)
{
	glob_t g;
	if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0)
		return NULL;
	FILE *f = fopen(g.gl_pathv[g.gl_pathc - 1], "rb");
	globfree(&g);
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*size = ftell(f);
	rewind(f);
	uint8_t *buf = malloc(*size);
	cr_assert(buf);
	cr_assert_eq(fread(buf, 1, *size, f), *size);
	fclose(f);
	return buf;
}

#define KERNEL_OR_SKIP(buf, size)						\
	size_t size;								\
	uint8_t *buf = read_kernel(&size);					\
	if (!buf)								\
		cr_skip_test("no readable /boot/vmlinuz-*")

/* A fresh directory per test under build/ (tests run from the top of the tree; /tmp is
 * cleaned by other jobs), so parallel tests and runs never share cache entries. */
static char *scratch_dir(void)
{
	mkdir("build", 0755);
	char *d = strdup("build/vmlinux-test-XXXXXX");
	cr_assert(d && mkdtemp(d), "mkdtemp: %s", strerror(errno));
	return d;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void scratch_free(char *d)
{
	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
}

static char *path_join(const char *a, const char *b)
{
	char *p;
	cr_assert(asprintf(&p, "%s/%s", a, b) > 0);
	return p;
}

/* The single cache entry in `dir` (its path, to free), or NULL; asserts there is no other
 * file, temporary ones included. */
static char *only_entry(const char *dir)
{
	char *pat = path_join(dir, "*");
	glob_t g;
	int r = glob(pat, 0, NULL, &g);
	free(pat);
	if (r == GLOB_NOMATCH || r == GLOB_ABORTED)
		return NULL;
	cr_assert_eq(r, 0);
	cr_assert_eq(g.gl_pathc, 1, "%zu files in the cache, expected one", g.gl_pathc);
	char *p = strdup(g.gl_pathv[0]);
	globfree(&g);
	size_t n = strlen(p);
	cr_assert(n > 4 && !strcmp(p + n - 4, ".elf"), "cache entry '%s'", p);
	return p;
}

/* ---- synthetic images ---- */

#define SYN_SETUP_SECTS 4
#define SYN_PM_OFF      ((SYN_SETUP_SECTS + 1) * 512)
#define SYN_PAYLOAD_OFF 0x100

/* xz (CRC32, no BCJ) of `n` bytes, then 4 bytes of stream padding the decoder must stop
 * before, then, when `trailer`, the 32-bit size word Kbuild appends. */
static uint8_t *xz_pack(const uint8_t *data, size_t n, bool trailer, size_t *out_len)
{
	size_t cap = lzma_stream_buffer_bound(n) + 8, pos = 0;
	uint8_t *out = malloc(cap);
	cr_assert(out);
	cr_assert_eq(lzma_easy_buffer_encode(0, LZMA_CHECK_CRC32, NULL, data, n, out, &pos, cap),
		     LZMA_OK);
	memset(out + pos, 0, 4);
	pos += 4;
	if (trailer) {
		uint32_t sz = n;
		memcpy(out + pos, &sz, 4);
		pos += 4;
	}
	*out_len = pos;
	return out;
}

/* A bzImage of exactly the right size (ASan catches any read past it) around `payload`. */
static uint8_t *bz_wrap(const uint8_t *payload, size_t len, size_t *size)
{
	*size = SYN_PM_OFF + SYN_PAYLOAD_OFF + len;
	uint8_t *bz = calloc(1, *size);
	cr_assert(bz);
	struct setup_header h = { 0 };
	h.setup_sects = SYN_SETUP_SECTS;
	h.boot_flag = 0xAA55;
	h.header = 0x53726448;
	h.version = 0x020f;
	h.payload_offset = SYN_PAYLOAD_OFF;
	h.payload_length = len;
	memcpy(bz + 0x1f1, &h, sizeof(h));
	memcpy(bz + SYN_PM_OFF + SYN_PAYLOAD_OFF, payload, len);
	return bz;
}

static struct setup_header *hdr_of(uint8_t *bz)
{
	return (struct setup_header *)(bz + 0x1f1);
}

/* A tiny vmlinux: two PT_LOADs at 16 MiB (code) and 18 MiB (data + bss), a PT_NOTE that
 * must be ignored, 0x100 bytes of data per segment after the headers. */
#define ELF_NPH    3
#define ELF_DATA   (sizeof(Elf64_Ehdr) + ELF_NPH * sizeof(Elf64_Phdr))
#define ELF_SIZE   (ELF_DATA + 0x200)
#define ELF_ENTRY  0x1000000ULL

struct elf_img {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[ELF_NPH];
	uint8_t data[0x200];
};

static struct elf_img good_elf(void)
{
	struct elf_img e;
	memset(&e, 0, sizeof(e));
	memcpy(e.eh.e_ident, ELFMAG, SELFMAG);
	e.eh.e_ident[EI_CLASS] = ELFCLASS64;
	e.eh.e_ident[EI_DATA] = ELFDATA2LSB;
	e.eh.e_ident[EI_VERSION] = EV_CURRENT;
	e.eh.e_type = ET_EXEC;
	e.eh.e_machine = EM_X86_64;
	e.eh.e_version = EV_CURRENT;
	e.eh.e_entry = ELF_ENTRY + 0x10;
	e.eh.e_phoff = sizeof(Elf64_Ehdr);
	e.eh.e_ehsize = sizeof(Elf64_Ehdr);
	e.eh.e_phentsize = sizeof(Elf64_Phdr);
	e.eh.e_phnum = ELF_NPH;
	e.ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = ELF_DATA, .p_vaddr = 0xffffffff81000000,
				.p_paddr = ELF_ENTRY, .p_filesz = 0x100, .p_memsz = 0x100 };
	e.ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = 1ULL << 40, .p_paddr = 0xdeadbeef000,
				.p_filesz = 0x10, .p_memsz = 0x10 };
	e.ph[2] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = ELF_DATA + 0x100, .p_vaddr = 0,
				.p_paddr = 18 * MiB, .p_filesz = 0x100, .p_memsz = 0x3000 };
	for (int i = 0; i < 0x200; i++)
		e.data[i] = (uint8_t)(i * 13 + 1);
	return e;
}

/* ---- the real kernel ---- */

static void check_elf(const struct vmlinux *v)
{
	cr_assert_geq(v->size, sizeof(Elf64_Ehdr));
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)v->elf;
	cr_assert_eq(memcmp(eh->e_ident, ELFMAG, SELFMAG), 0, "not an ELF");
	cr_assert_eq(eh->e_ident[EI_CLASS], ELFCLASS64);
	cr_assert_eq(eh->e_type, ET_EXEC);
	cr_assert_eq(eh->e_machine, EM_X86_64);
}

/* First call unpacks and fills the cache (creating the directory, 0700); the second maps
 * the cached file and must give the very same bytes. */
Test(vmlinux, real_kernel_unpacked_then_cached, .timeout = 60)
{
	KERNEL_OR_SKIP(bz, size);
	char *tmp = scratch_dir();
	char *cache = path_join(tmp, "a/b/kernels");
	struct vmlinux v1, v2;
	cr_assert_eq(vmlinux_get(bz, size, cache, false, &v1), 0);
	cr_assert_not(v1.mapped);
	check_elf(&v1);

	struct stat st;
	cr_assert_eq(stat(cache, &st), 0, "cache directory not created");
	cr_assert_eq(st.st_mode & 0777, 0700);
	char *entry = only_entry(cache);
	cr_assert(entry, "no cache file written");
	cr_assert_eq(stat(entry, &st), 0);
	cr_assert_eq((size_t)st.st_size, v1.size);

	cr_assert_eq(vmlinux_get(bz, size, cache, false, &v2), 0);
	cr_assert(v2.mapped, "second call did not use the cache");
	cr_assert_eq(v2.size, v1.size);
	cr_assert_eq(memcmp(v1.elf, v2.elf, v1.size), 0, "cached vmlinux differs");
	vmlinux_free(&v1);
	vmlinux_free(&v2);
	vmlinux_free(&v2);  /* twice is harmless */
	free(entry);
	free(cache);
	scratch_free(tmp);
	free(bz);
}

/* A cache entry that is not an ELF (a crash, a stray file) is ignored and rewritten. */
Test(vmlinux, bad_cache_entry_replaced, .timeout = 60)
{
	KERNEL_OR_SKIP(bz, size);
	char *cache = scratch_dir();
	struct vmlinux v;
	cr_assert_eq(vmlinux_get(bz, size, cache, false, &v), 0);
	size_t good_size = v.size;
	vmlinux_free(&v);
	char *entry = only_entry(cache);
	FILE *f = fopen(entry, "wb");
	cr_assert(f);
	fputs("not a kernel, but long enough to hold an ELF header......................", f);
	fclose(f);

	cr_assert_eq(vmlinux_get(bz, size, cache, false, &v), 0);
	cr_assert_not(v.mapped, "garbage cache entry was used");
	check_elf(&v);
	vmlinux_free(&v);
	cr_assert_eq(vmlinux_get(bz, size, cache, false, &v), 0);
	cr_assert(v.mapped);
	cr_assert_eq(v.size, good_size);
	vmlinux_free(&v);
	free(entry);
	scratch_free(cache);
	free(bz);
}

/* Every PT_LOAD lands at its p_paddr; bss is zeroed over whatever RAM held. */
Test(vmlinux, real_kernel_loads_at_paddr, .timeout = 60)
{
	KERNEL_OR_SKIP(bz, size);
	char *cache = scratch_dir();
	struct vmlinux v;
	cr_assert_eq(vmlinux_get(bz, size, cache, false, &v), 0);
	struct gmem m;
	cr_assert_eq(gmem_init(&m, 256 * MiB), 0);
	memset(gmem_ptr(&m, 16 * MiB, 128 * MiB), 0xAA, 128 * MiB);
	uint64_t entry = 0, end = 0;
	char err[256] = "";
	cr_assert_eq(vmlinux_load(&m, &v, &entry, &end, err, sizeof(err)), 0, "%s", err);

	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)v.elf;
	cr_assert_eq(entry, eh->e_entry);
	cr_assert_eq(entry, 16 * MiB, "Debian's startup_64 is at 16 MiB, got 0x%llx",
		     (unsigned long long)entry);
	uint64_t top = 0;
	int loads = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(v.elf + eh->e_phoff) + i;
		if (ph->p_type != PT_LOAD)
			continue;
		loads++;
		const uint8_t *g = gmem_ptr(&m, ph->p_paddr, ph->p_memsz);
		const uint8_t *f = v.elf + ph->p_offset;
		cr_assert(g);
		uint64_t n = ph->p_filesz < 64 ? ph->p_filesz : 64;
		cr_assert_eq(memcmp(g, f, n), 0, "segment %d head", i);
		cr_assert_eq(memcmp(g + ph->p_filesz / 2, f + ph->p_filesz / 2, n / 2), 0, "segment %d middle", i);
		cr_assert_eq(memcmp(g + ph->p_filesz - n, f + ph->p_filesz - n, n), 0, "segment %d tail", i);
		if (ph->p_memsz > ph->p_filesz) {
			cr_assert_eq(g[ph->p_filesz], 0, "segment %d bss not zeroed", i);
			cr_assert_eq(g[ph->p_memsz - 1], 0, "segment %d bss end not zeroed", i);
		}
		if (ph->p_paddr + ph->p_memsz > top)
			top = ph->p_paddr + ph->p_memsz;
	}
	cr_assert_geq(loads, 2);
	cr_assert_eq(end, top);
	gmem_free(&m);

	/* The same kernel in too little RAM: refused, telling the user to raise --mem. */
	cr_assert_eq(gmem_init(&m, 32 * MiB), 0);
	cr_assert_eq(vmlinux_load(&m, &v, &entry, &end, err, sizeof(err)), -ENOMEM);
	cr_assert(strstr(err, "--mem"), "%s", err);
	gmem_free(&m);
	vmlinux_free(&v);
	scratch_free(cache);
	free(bz);
}

/* Damage in the middle of the stream: refused, nothing cached, no crash. */
Test(vmlinux, corrupt_payload_rejected, .timeout = 60)
{
	KERNEL_OR_SKIP(bz, size);
	struct setup_header *h = hdr_of(bz);
	size_t off = (h->setup_sects + 1) * 512 + h->payload_offset + h->payload_length / 2;
	for (size_t i = 0; i < 64; i++)
		bz[off + i] ^= 0x5a;
	char *cache = scratch_dir();
	struct vmlinux v;
	cr_assert_eq(vmlinux_get(bz, size, cache, false, &v), -EINVAL);
	cr_assert_null(v.elf);
	cr_assert_null(only_entry(cache), "a corrupt kernel was cached");
	scratch_free(cache);
	free(bz);
}

/* Not xz (gzip, zstd, ...): the caller falls back to the bzImage's own decompressor. */
Test(vmlinux, non_xz_payload_not_supported)
{
	KERNEL_OR_SKIP(bz, size);
	struct setup_header *h = hdr_of(bz);
	bz[(h->setup_sects + 1) * 512 + h->payload_offset] = 0x1f;  /* gzip's first byte */
	struct vmlinux v;
	cr_assert_eq(vmlinux_get(bz, size, NULL, false, &v), -ENOTSUP);
	cr_assert_null(v.elf);
	free(bz);
}

/* Cut inside the payload: the header promises bytes the file does not have. */
Test(vmlinux, truncated_bzimage_rejected)
{
	KERNEL_OR_SKIP(bz, size);
	struct setup_header *h = hdr_of(bz);
	size_t cut = (h->setup_sects + 1) * 512 + h->payload_offset + h->payload_length / 2;
	uint8_t *head = malloc(cut);
	cr_assert(head);
	memcpy(head, bz, cut);
	struct vmlinux v;
	cr_assert_eq(vmlinux_get(head, cut, NULL, false, &v), -EINVAL);
	/* One byte short is as truncated as half. */
	cr_assert_eq(vmlinux_get(bz, cut + h->payload_length / 2 - 1 + (h->payload_length & 1), NULL, false, &v),
		     -EINVAL);
	cr_assert_eq(vmlinux_get(bz, 0x1f1 + 8, NULL, false, &v), -EINVAL);
	free(head);
	free(bz);
}

/* ---- synthetic payloads ---- */

/* A well-formed image: the ELF comes back byte for byte; the padding and size word after
 * the stream are not taken for part of it. */
Test(vmlinux, synthetic_roundtrip)
{
	struct elf_img e = good_elf();
	for (int trailer = 0; trailer < 2; trailer++) {
		size_t plen, bsize;
		uint8_t *p = xz_pack((uint8_t *)&e, sizeof(e), trailer, &plen);
		uint8_t *bz = bz_wrap(p, plen, &bsize);
		struct vmlinux v;
		cr_assert_eq(vmlinux_get(bz, bsize, NULL, false, &v), 0);
		cr_assert_eq(v.size, sizeof(e));
		cr_assert_eq(memcmp(v.elf, &e, sizeof(e)), 0);
		vmlinux_free(&v);
		free(bz);
		free(p);
	}
}

Test(vmlinux, header_checks)
{
	struct elf_img e = good_elf();
	size_t plen, bsize;
	uint8_t *p = xz_pack((uint8_t *)&e, sizeof(e), true, &plen);
	uint8_t *bz = bz_wrap(p, plen, &bsize);
	struct setup_header *h = hdr_of(bz);
	struct vmlinux v;

	h->version = 0x0207;     /* before payload_offset existed */
	cr_assert_eq(vmlinux_get(bz, bsize, NULL, false, &v), -ENOTSUP);
	h->version = 0x020f;
	h->payload_length = 0;
	cr_assert_eq(vmlinux_get(bz, bsize, NULL, false, &v), -ENOTSUP);
	h->payload_length = plen + 1;
	cr_assert_eq(vmlinux_get(bz, bsize, NULL, false, &v), -EINVAL);
	h->payload_length = plen;
	h->payload_offset = 0xfffffff0;
	cr_assert_eq(vmlinux_get(bz, bsize, NULL, false, &v), -EINVAL);
	h->payload_offset = SYN_PAYLOAD_OFF;
	h->header = 0;
	cr_assert_eq(vmlinux_get(bz, bsize, NULL, false, &v), -EINVAL);
	free(bz);
	free(p);
}

/* xz that unpacks to something other than an ELF is not a vmlinux we can boot. */
Test(vmlinux, non_elf_xz_not_supported)
{
	static const char text[] = "just some text, certainly not an ELF file header at all";
	size_t plen, bsize;
	uint8_t *p = xz_pack((const uint8_t *)text, sizeof(text), true, &plen);
	uint8_t *bz = bz_wrap(p, plen, &bsize);
	struct vmlinux v;
	cr_assert_eq(vmlinux_get(bz, bsize, NULL, false, &v), -ENOTSUP);
	free(bz);
	free(p);
}

/* The output limit: exactly at it is fine, one byte over is refused, whether the buffer
 * starts from the size word or has to grow. */
Test(vmlinux, output_limit)
{
	size_t n = 3 * MiB + 123;
	uint8_t *data = calloc(1, n);
	cr_assert(data);
	memcpy(data, ELFMAG, SELFMAG);
	for (int trailer = 0; trailer < 2; trailer++) {
		size_t plen;
		uint8_t *p = xz_pack(data, n, trailer, &plen);
		struct vmlinux v;
		cr_assert_eq(vmlinux_decompress(p, plen, n, &v), 0);
		cr_assert_eq(v.size, n);
		cr_assert_eq(memcmp(v.elf, data, n), 0);
		vmlinux_free(&v);
		cr_assert_eq(vmlinux_decompress(p, plen, n - 1, &v), -EINVAL);
		cr_assert_null(v.elf);
		cr_assert_eq(vmlinux_decompress(p, plen, MiB, &v), -EINVAL);
		/* A lying size word only changes the first guess. */
		if (trailer) {
			uint32_t lie = 5000;
			memcpy(p + plen - 4, &lie, 4);
			cr_assert_eq(vmlinux_decompress(p, plen, n, &v), 0);
			cr_assert_eq(v.size, n);
			vmlinux_free(&v);
		}
		/* Cut short: the stream never ends. */
		cr_assert_eq(vmlinux_decompress(p, plen / 2, n, &v), -EINVAL);
		free(p);
	}
	free(data);
}

/* ---- vmlinux_load on crafted ELF files ---- */

static int load(struct elf_img *e, size_t size, uint64_t *entry, uint64_t *end, char *err)
{
	/* Exactly `size` bytes on the heap, so a read past the file is an ASan error. */
	uint8_t *buf = malloc(size);
	cr_assert(buf);
	memcpy(buf, e, size < sizeof(*e) ? size : sizeof(*e));
	struct vmlinux v = { .elf = buf, .size = size };
	struct gmem m;
	cr_assert_eq(gmem_init(&m, 256 * MiB), 0);
	memset(gmem_ptr(&m, 16 * MiB, 4 * MiB), 0xAA, 4 * MiB);
	int ret = vmlinux_load(&m, &v, entry, end, err, 256);
	if (ret == 0) {
		cr_assert_eq(memcmp(gmem_ptr(&m, 16 * MiB, 0x100), e->data, 0x100), 0);
		const uint8_t *d = gmem_ptr(&m, 18 * MiB, 0x3000);
		cr_assert_eq(memcmp(d, e->data + 0x100, 0x100), 0);
		for (int i = 0x100; i < 0x3000; i++)
			cr_assert_eq(d[i], 0, "bss byte 0x%x not zeroed", i);
	} else {
		/* Refused: nothing was written. */
		cr_assert_eq(*(uint8_t *)gmem_ptr(&m, 16 * MiB, 1), 0xAA);
	}
	gmem_free(&m);
	free(buf);
	return ret;
}

Test(vmlinux, crafted_good_elf)
{
	struct elf_img e = good_elf();
	uint64_t entry, end;
	char err[256] = "";
	cr_assert_eq(load(&e, sizeof(e), &entry, &end, err), 0, "%s", err);
	cr_assert_eq(entry, ELF_ENTRY + 0x10);
	cr_assert_eq(end, 18 * MiB + 0x3000);
}

#define BAD_ELF(name, want, why, change)					\
Test(vmlinux, crafted_##name)							\
{										\
	struct elf_img e = good_elf();						\
	size_t size = sizeof(e);						\
	change;									\
	uint64_t entry = 0, end = 0;						\
	char err[256] = "";							\
	cr_assert_eq(load(&e, size, &entry, &end, err), want, "got '%s'", err);	\
	cr_assert(strstr(err, why), "reason '%s' does not mention '%s'", err, why); \
}

BAD_ELF(short_file, -EINVAL, "too short", size = 40)
BAD_ELF(elf32, -EINVAL, "64-bit", e.eh.e_ident[EI_CLASS] = ELFCLASS32)
BAD_ELF(big_endian, -EINVAL, "little-endian", e.eh.e_ident[EI_DATA] = ELFDATA2MSB)
BAD_ELF(not_x86_64, -EINVAL, "x86-64", e.eh.e_machine = EM_AARCH64)
BAD_ELF(not_exec, -EINVAL, "x86-64", e.eh.e_type = ET_DYN)
BAD_ELF(phoff_out_of_range, -EINVAL, "program headers", e.eh.e_phoff = sizeof(e) - 8)
BAD_ELF(phoff_huge, -EINVAL, "program headers", e.eh.e_phoff = UINT64_MAX - 8)
BAD_ELF(phentsize_wrong, -EINVAL, "program headers", e.eh.e_phentsize = 32)
BAD_ELF(phnum_zero, -EINVAL, "program headers", e.eh.e_phnum = 0)
BAD_ELF(phdrs_cut_off, -EINVAL, "program headers", size = ELF_DATA - 1)
BAD_ELF(load_beyond_file, -EINVAL, "outside the file", e.ph[2].p_offset = sizeof(e) - 0x80)
BAD_ELF(load_offset_huge, -EINVAL, "outside the file", e.ph[2].p_offset = UINT64_MAX - 0x10)
BAD_ELF(load_filesz_huge, -EINVAL, "outside the file",
	e.ph[2].p_filesz = UINT64_MAX; e.ph[2].p_memsz = UINT64_MAX)
BAD_ELF(filesz_over_memsz, -EINVAL, "outside the file", e.ph[2].p_memsz = 0x80)
BAD_ELF(paddr_in_hole, -EINVAL, "outside guest RAM", e.ph[2].p_paddr = 0xD0000000)
BAD_ELF(paddr_above_4g, -EINVAL, "outside guest RAM", e.ph[2].p_paddr = 0x100000000ULL)
BAD_ELF(paddr_wraps, -EINVAL, "not a usable address", e.ph[2].p_paddr = UINT64_MAX - 0x1000)
BAD_ELF(paddr_below_1m, -EINVAL, "not a usable address", e.ph[2].p_paddr = 0x7000)
BAD_ELF(paddr_past_ram, -ENOMEM, "--mem", e.ph[2].p_paddr = 300 * MiB)
BAD_ELF(straddles_ram_end, -ENOMEM, "--mem",
	e.ph[2].p_paddr = 256 * MiB - 0x1000)
BAD_ELF(entry_outside, -EINVAL, "entry point", e.eh.e_entry = 17 * MiB)
BAD_ELF(entry_in_bss, -EINVAL, "entry point", e.eh.e_entry = 18 * MiB + 0x200)
BAD_ELF(no_load, -EINVAL, "entry point", e.ph[0].p_type = PT_NULL; e.ph[2].p_type = PT_NULL)

/* ---- the default cache directory ---- */

Test(vmlinux, cache_dir_xdg)
{
	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	setenv("HOME", "/home/u", 1);
	cr_assert_str_eq(vmlinux_cache_dir(), "/x/cache/minivmm/kernels");
}

Test(vmlinux, cache_dir_home)
{
	setenv("XDG_CACHE_HOME", "relative/is/invalid", 1);
	setenv("HOME", "/home/u", 1);
	cr_assert_str_eq(vmlinux_cache_dir(), "/home/u/.cache/minivmm/kernels");
	unsetenv("XDG_CACHE_HOME");
	cr_assert_str_eq(vmlinux_cache_dir(), "/home/u/.cache/minivmm/kernels");
}

Test(vmlinux, cache_dir_none)
{
	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	cr_assert_null(vmlinux_cache_dir());
}

/* The cache keeps the most recently used entries and never touches files not its own. */
Test(vmlinux, cache_pruned_to_the_newest)
{
	char *cache = scratch_dir();
	char *names[6];
	for (int i = 0; i < 6; i++) {
		char n[64];
		snprintf(n, sizeof(n), "%016x-%d.elf", 0xabc0 + i, 1000 + i);
		names[i] = path_join(cache, n);
		FILE *f = fopen(names[i], "wb");
		cr_assert(f);
		fclose(f);
		/* Entry i was last used i hours ago. */
		struct timespec t[2] = { { time(NULL) - 3600 * i, 0 }, { time(NULL) - 3600 * i, 0 } };
		cr_assert_eq(utimensat(AT_FDCWD, names[i], t, 0), 0);
	}
	char *other = path_join(cache, "notes.txt");
	FILE *f = fopen(other, "wb");
	cr_assert(f);
	fclose(f);
	cr_assert_eq(vmlinux_cache_prune(cache, 4), 0);
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(access(names[i], F_OK) == 0, i < 4, "entry %d (used %d h ago) %s", i, i,
			     i < 4 ? "pruned" : "kept");
		free(names[i]);
	}
	cr_assert_eq(access(other, F_OK), 0, "a file not of the cache was removed");
	cr_assert_eq(vmlinux_cache_prune("/nonexistent/minivmm", 4), -ENOENT);
	free(other);
	scratch_free(cache);
}
