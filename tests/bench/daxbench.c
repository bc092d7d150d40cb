/* daxbench: the DAX workload, run inside a guest on one file of a share (virtio-fs with or
 * without a DAX window under minivmm, or QEMU + virtiofsd), printing one "name value" line
 * per figure (tests/bench/dax.sh reads them).  Built static: the guest image has no C
 * library.
 *
 *   daxbench FILE NREADS
 *
 * Both figures start with cold guest caches (sync, drop_caches = 3); the host's caches are
 * warm alike in every configuration.
 *   seqread_MB_per_s       read(2) of the whole file in 1 MiB blocks
 *   mmap_rand_ops_per_s    NREADS one-byte loads at random offsets of a shared mapping
 * and, for each, how much the guest page cache grew meanwhile (Cached in /proc/meminfo):
 *   seqread_cached_KiB, mmap_cached_KiB.  A checksum of what was read guards against a
 * configuration that is fast because it reads the wrong bytes. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1 << 20)

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long cached_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		die("/proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Cached: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void drop_caches(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0 || write(fd, "3\n", 2) != 2)
		die("drop_caches (run as root)");
	close(fd);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: daxbench FILE NREADS\n");
		return 2;
	}
	long nreads = atol(argv[2]);
	struct stat st;
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		die(argv[1]);
	size_t size = (size_t)st.st_size;
	char *buf = malloc(BLOCK);
	if (!buf)
		die("malloc");

	drop_caches();
	long c0 = cached_kib();
	double t0 = now();
	uint64_t sum = 0, total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, BLOCK);
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i += 4096)
			sum += (unsigned char)buf[i];
		total += (uint64_t)n;
	}
	double t1 = now();
	long c1 = cached_kib();
	if (total != size)
		fprintf(stderr, "daxbench: read %llu of %zu bytes\n", (unsigned long long)total, size);
	printf("seqread_MB_per_s %.1f\n", total / 1048576.0 / (t1 - t0));
	printf("seqread_cached_KiB %ld\n", c1 - c0);
	printf("seqread_sum %llu\n", (unsigned long long)sum);

	drop_caches();
	long c2 = cached_kib();
	volatile unsigned char *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	sum = 0;
	t0 = now();
	for (long i = 0; i < nreads; i++)
		sum += p[rnd() % size];
	t1 = now();
	long c3 = cached_kib();
	printf("mmap_rand_ops_per_s %.0f\n", nreads / (t1 - t0));
	printf("mmap_cached_KiB %ld\n", c3 - c2);
	printf("mmap_sum %llu\n", (unsigned long long)sum);
	printf("daxbench_done 1\n");
	return 0;
}
