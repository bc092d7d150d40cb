/* fsbench: the shared-directory workload, run inside a guest on a mount point (virtio-fs
 * under minivmm or QEMU + virtiofsd, virtio-9p), printing one "name value" line per figure
 * (tests/bench/fs.sh reads them).  Built static: the guest image has no C library.
 *
 *   fsbench DIR        (DIR is created; everything in it is removed at the end)
 *
 * "Cold" figures drop the guest's page, dentry and inode caches first (sync, then
 * /proc/sys/vm/drop_caches = 3), so each operation has to reach the host; the host's own
 * caches stay warm in every configuration alike.  Rates are per second of
 * CLOCK_MONOTONIC; MB is 2^20 bytes.  Each figure also gets a "NAME_irqs N" line: the
 * virtio interrupts the guest took meanwhile (every device's, from /proc/interrupts). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NFILES      300
#define SMALL       100
#define BIG_MB      16
#define BLOCK       (1 << 20)
#define NPREAD      2000
#define NMMAP       20000
#define READDIR_REP 10

static char dir[4096];

static void die(const char *fmt, ...)
{
	va_list ap;
	int e = errno;
	fprintf(stderr, "fsbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(e));
	exit(1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void drop_caches(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0 || write(fd, "3\n", 2) != 2)
		die("drop_caches (run as root)");
	close(fd);
}

static void path_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "%s/f%04d", dir, i);
}

/* Interrupts on the lines of /proc/interrupts that name a virtio device. */
static long virtio_irqs(void)
{
	char line[512];
	long sum = 0;
	FILE *f = fopen("/proc/interrupts", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':'), *end;
		if (!p || !strstr(line, "virtio"))
			continue;
		/* the per-CPU counts, up to the chip's name */
		for (p++;; p = end) {
			long v = strtol(p, &end, 10);
			if (end == p)
				break;
			sum += v;
		}
	}
	if (f)
		fclose(f);
	return sum;
}

static double t_start;
static long irq_start;
static void start(void)
{
	irq_start = virtio_irqs();
	t_start = now();
}

static void report(const char *name, double count)
{
	double secs = now() - t_start;
	printf("%s %.1f\n%s_irqs %ld\n", name, secs > 0 ? count / secs : 0, name,
	       virtio_irqs() - irq_start);
	fflush(stdout);
}

/* xorshift64: the same offsets in every configuration. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void small_files(void)
{
	char p[4200], buf[SMALL];
	struct stat st;

	memset(buf, 'x', sizeof(buf));
	start();
	for (int i = 0; i < NFILES; i++) {
		path_of(p, sizeof(p), i);
		int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
		if (fd < 0)
			die("create %s", p);
		if (write(fd, buf, SMALL) != SMALL)
			die("write %s", p);
		if (close(fd))
			die("close %s", p);
	}
	report("create_write_files_per_s", NFILES);

	drop_caches();
	start();
	for (int i = 0; i < NFILES; i++) {
		path_of(p, sizeof(p), i);
		if (stat(p, &st) || st.st_size != SMALL)
			die("stat %s", p);
	}
	report("stat_cold_ops_per_s", NFILES);

	drop_caches();
	start();
	for (int i = 0; i < NFILES; i++) {
		path_of(p, sizeof(p), i);
		int fd = open(p, O_RDONLY);
		if (fd < 0)
			die("open %s", p);
		if (read(fd, buf, SMALL) != SMALL)
			die("read %s", p);
		close(fd);
	}
	report("open_read_cold_ops_per_s", NFILES);

	drop_caches();
	long entries = 0;
	start();
	for (int r = 0; r < READDIR_REP; r++) {
		DIR *d = opendir(dir);
		if (!d)
			die("opendir %s", dir);
		errno = 0;
		while (readdir(d))
			entries++;
		if (errno)
			die("readdir %s", dir);
		closedir(d);
	}
	if (entries < (long)READDIR_REP * NFILES) {
		errno = 0;
		die("readdir saw %ld entries in %d passes, want %d each", entries, READDIR_REP,
		    NFILES + 2);
	}
	report("readdir_entries_per_s", entries);

	start();
	for (int i = 0; i < NFILES; i++) {
		path_of(p, sizeof(p), i);
		if (unlink(p))
			die("unlink %s", p);
	}
	report("unlink_ops_per_s", NFILES);
}

static void big_file(void)
{
	char p[4200];
	char *buf = malloc(BLOCK);
	int fd;

	if (!buf)
		die("malloc");
	for (int i = 0; i < BLOCK; i++)
		buf[i] = (char)(i * 7 + 1);
	snprintf(p, sizeof(p), "%s/big", dir);

	start();
	fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0)
		die("create %s", p);
	for (int i = 0; i < BIG_MB; i++)
		if (write(fd, buf, BLOCK) != BLOCK)
			die("write %s", p);
	if (fsync(fd))
		die("fsync %s", p);
	close(fd);
	report("seqwrite_fsync_MB_per_s", BIG_MB);

	drop_caches();
	start();
	fd = open(p, O_RDONLY);
	if (fd < 0)
		die("open %s", p);
	for (int i = 0; i < BIG_MB; i++) {
		ssize_t n = read(fd, buf, BLOCK);
		if (n != BLOCK)
			die("read %s (block %d: %zd)", p, i, n);
	}
	close(fd);
	report("seqread_cold_MB_per_s", BIG_MB);

	drop_caches();
	fd = open(p, O_RDONLY);
	if (fd < 0)
		die("open %s", p);
	start();
	for (int i = 0; i < NPREAD; i++) {
		off_t off = (off_t)(rnd() % (BIG_MB * (BLOCK / 4096))) * 4096;
		if (pread(fd, buf, 4096, off) != 4096)
			die("pread %s at %lld", p, (long long)off);
	}
	report("randread_4k_cold_ops_per_s", NPREAD);
	close(fd);

	drop_caches();
	fd = open(p, O_RDONLY);
	if (fd < 0)
		die("open %s", p);
	size_t len = (size_t)BIG_MB * BLOCK;
	volatile unsigned char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		die("mmap %s", p);
	unsigned sum = 0;
	start();
	for (int i = 0; i < NMMAP; i++)
		sum += m[rnd() % len];
	report("mmap_rand_byte_ops_per_s", NMMAP);
	if (sum == 0xffffffffu)   /* keep the reads */
		printf("#\n");
	munmap((void *)m, len);
	close(fd);
	if (unlink(p))
		die("unlink %s", p);
	free(buf);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fsbench DIR\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	if (mkdir(dir, 0755) && errno != EEXIST)
		die("mkdir %s", dir);
	small_files();
	big_file();
	if (rmdir(dir))
		die("rmdir %s", dir);
	printf("fsbench_done 1\n");
	return 0;
}
