/* Fuzz the kernel loaders: bzImage header parsing and loading (vmm/boot.c boot_parse and
 * boot_load), the payload lookup and xz unpacking of vmm/vmlinux.c (with a 1 MiB output
 * limit, so a small input cannot make a huge allocation) and the ELF loader vmlinux_load.
 * Guest RAM is a heap block (ASan sees writes past it).  vmlinux.c is included for its
 * static payload_find; the archive's copy of it is then never linked in.
 *
 * Input: u8 mode (bit 0: the rest is an ELF for vmlinux_load, else a bzImage; bits 1-7 pick
 * the initrd size as a share of the input), then the image. */
#include "tests/fuzz/fuzz.h"
#include "vmm/vmlinux.c"

#define RAM       (8u << 20)
#define IMG_MAX (1u << 20)
#define XZ_LIMIT  (1u << 20)

static struct gmem m;

static void load_elf(const uint8_t *p, size_t n)
{
	struct vmlinux v = { .elf = (uint8_t *)p, .size = n };
	uint64_t entry = 0, end = 0;
	char err[256];
	int r = vmlinux_load(&m, &v, &entry, &end, err, sizeof(err));
	FZ_CHECK(r == 0 || r == -EINVAL || r == -ENOMEM, "vmlinux_load returned %d", r);
	if (r)
		return;
	FZ_CHECK(entry >= BOOT_BIOS_END && end > entry && end <= RAM,
		 "entry 0x%llx, end 0x%llx in %u bytes of RAM", (unsigned long long)entry,
		 (unsigned long long)end, RAM);
}

static void load_bzimage(const uint8_t *p, size_t n, unsigned initrd_share)
{
	struct boot_kernel k;
	struct boot_info bi;
	char err[256];

	if (boot_parse(p, n, &k, err, sizeof(err)) == 0) {
		FZ_CHECK(k.pm >= p && k.pm_size <= n && (size_t)(k.pm - p) <= n - k.pm_size,
			 "protected-mode part outside the image");
		FZ_CHECK(k.load_addr >= BOOT_BIOS_END && k.init_size >= k.pm_size, "layout");
		size_t ilen = n * initrd_share / 128;
		if (boot_load(&m, &k, p + n - ilen, ilen, "console=ttyS0 quiet", 0xe0000, &bi, err,
			      sizeof(err)) == 0) {
			FZ_CHECK(bi.kernel_end <= RAM && bi.entry == k.load_addr + 0x200, "boot_info");
			FZ_CHECK(!ilen || (bi.initrd_addr >= bi.kernel_end &&
					   bi.initrd_addr + ilen <= RAM), "initrd at 0x%llx",
				 (unsigned long long)bi.initrd_addr);
		}
	}

	/* The vmlinux inside, as vmlinux_get finds and unpacks it (no cache). */
	const uint8_t *pl;
	size_t plen;
	if (payload_find(p, n, &pl, &plen))
		return;
	FZ_CHECK(pl >= p && plen <= n && (size_t)(pl - p) <= n - plen, "payload outside the image");
	(void)hash64(pl, plen);
	struct vmlinux v;
	int r = vmlinux_decompress(pl, plen, XZ_LIMIT, &v);
	FZ_CHECK(r == 0 || r == -ENOTSUP || r == -EINVAL || r == -ENOMEM, "decompress: %d", r);
	if (r)
		return;
	FZ_CHECK(v.size <= XZ_LIMIT, "unpacked %zu bytes past the limit", v.size);
	load_elf(v.elf, v.size);
	vmlinux_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > IMG_MAX)
		return 0;
	if (!m.n)
		fz_gmem(&m, RAM, 0);   /* once: what the loaders leave in it does not matter */
	/* Copies, so a read past the image is caught (libFuzzer's buffer is exact too). */
	size_t n = size - 1;
	uint8_t *img = malloc(n ? n : 1);
	if (!img)
		abort();
	memcpy(img, data + 1, n);
	if (data[0] & 1)
		load_elf(img, n);
	else
		load_bzimage(img, n, data[0] >> 1);
	free(img);
	return 0;
}
