/* daxprobe: what tests/e2e/dax.sh needs a guest to do that busybox cannot.
 *
 *   daxprobe mmapwrite FILE OFF TEXT       write TEXT at OFF through a shared mapping, msync
 *   daxprobe readinto SRC DAXFILE N        read(O_DIRECT) N bytes of SRC into a shared
 *                                          writable mapping of DAXFILE, msync: the request's
 *                                          reply buffer is DAX window memory
 *   daxprobe writefrom DAXFILE DST N       write(O_DIRECT) N bytes to DST straight from a
 *                                          mapping of DAXFILE: the request's payload is window
 *                                          memory
 *   daxprobe touch FILE OFF READY GO       map FILE, read the byte at OFF, create READY, wait
 *                                          (up to 120 s) for GO to exist, read it again
 *
 * One "daxprobe: ..." line per step; exit 0 on success.
 * Built static on the host: gcc -static -O2 -o DIR/daxprobe tests/e2e/daxprobe.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what)
{
	printf("daxprobe: %s failed: %s\n", what, strerror(errno));
	exit(1);
}

static void *map(const char *path, size_t n, int prot, int *fdp)
{
	int fd = open(path, (prot & PROT_WRITE) ? O_RDWR : O_RDONLY);
	if (fd < 0)
		die("open");
	void *p = mmap(NULL, n, prot, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	*fdp = fd;
	return p;
}

int main(int argc, char **argv)
{
	int fd, fd2;

	if (argc == 5 && !strcmp(argv[1], "mmapwrite")) {
		size_t off = strtoul(argv[3], NULL, 0), len = strlen(argv[4]);
		char *p = map(argv[2], off + len, PROT_READ | PROT_WRITE, &fd);
		memcpy(p + off, argv[4], len);
		if (msync(p, off + len, MS_SYNC))
			die("msync");
		printf("daxprobe: mmapwrite ok\n");
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "readinto")) {
		size_t n = strtoul(argv[4], NULL, 0);
		char *p = map(argv[3], n, PROT_READ | PROT_WRITE, &fd);
		fd2 = open(argv[2], O_RDONLY | O_DIRECT);
		if (fd2 < 0)
			die("open O_DIRECT");
		ssize_t got = read(fd2, p, n);
		if (got < 0)
			die("read into the mapping");
		if (msync(p, n, MS_SYNC))
			die("msync");
		printf("daxprobe: readinto %zd\n", got);
		return got == (ssize_t)n ? 0 : 1;
	}
	if (argc == 5 && !strcmp(argv[1], "writefrom")) {
		size_t n = strtoul(argv[4], NULL, 0);
		char *p = map(argv[2], n, PROT_READ, &fd);
		fd2 = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
		if (fd2 < 0)
			die("open O_DIRECT");
		ssize_t put = write(fd2, p, n);
		if (put < 0)
			die("write from the mapping");
		if (close(fd2))
			die("close");
		printf("daxprobe: writefrom %zd\n", put);
		return put == (ssize_t)n ? 0 : 1;
	}
	if (argc == 6 && !strcmp(argv[1], "touch")) {
		size_t off = strtoul(argv[3], NULL, 0);
		struct stat st;
		volatile char *p = map(argv[2], off + 1, PROT_READ, &fd);
		printf("daxprobe: byte 0x%02x\n", (unsigned char)p[off]);
		fflush(stdout);
		fd2 = open(argv[4], O_WRONLY | O_CREAT, 0644);
		if (fd2 < 0)
			die("create READY");
		close(fd2);
		for (int i = 0; i < 1200 && stat(argv[5], &st); i++)
			usleep(100000);
		printf("daxprobe: touching again\n");
		fflush(stdout);
		printf("daxprobe: byte 0x%02x\n", (unsigned char)p[off]);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of daxprobe.c\n");
	return 2;
}
