/* fuse_bench [-n N] [-r RUNS] [DIR]: what one request costs through minivmm's
 * virtio-fs device path (queue -> worker -> pool thread -> fuse_handle() -> host syscalls
 * -> used ring -> interrupt) against the same host syscalls made directly, for GETATTR,
 * LOOKUP, 4 KiB READ and CREATE, in ns/op: the median of RUNS runs of N ops (N/4 creates),
 * in a fresh directory under DIR (default build).  No KVM: a fake struct vm, rings built
 * with tests/unit/virtq_mock.h, the device on virtio-mmio without a VM, brought up through
 * its registers.  The driver sleeps in poll() on the interrupt eventfd like a halted vCPU
 * (spinning starves the device's threads on a 2-CPU host).  Also shown: fuse_handle()
 * called directly ("fuse": no queue, no threads) and an eventfd ping-pong between two
 * threads (the floor of handing a request to another thread and back). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* virtq_mock.h is written for Criterion; outside a test its asserts simply exit. */
#define CRITERION_H_
#define cr_assert(c, ...) do { if (!(c)) { fprintf(stderr, "fuse_bench: %s:%d: %s failed\n", \
	__FILE__, __LINE__, #c); exit(1); } } while (0)
#define cr_assert_eq(a, b, ...)     cr_assert((a) == (b))
#define cr_assert_lt(a, b, ...)     cr_assert((a) < (b))
#define cr_assert_leq(a, b, ...)    cr_assert((a) <= (b))
#define cr_assert_not_null(p, ...)  cr_assert((p) != NULL)
#include "tests/unit/virtq_mock.h"

#include "fs/fuse.h"
#include "fs/share.h"
#include "fs/virtio_fs.h"
#include "virtio/core.h"
#include "virtio/mmio.h"
#include "vmm/vm.h"

#define RAM        (64ULL << 20)
#define HP_RING    0x1000000ULL   /* hiprio queue 0: live (as a guest's), never used here */
#define RQ_SIZE    1024
#define FILE_SIZE  (1 << 20)
#define R_STATUS   0x070

static struct vm vm;
static struct mock mk;
static struct virtio_dev *dev;
static int irq_fd, dirfd_, file_fd, file_opath;
static bool event_idx;
static struct mseg req_buf, hdr_buf, data_buf;
static uint64_t unique;
/* Where requests go: the device (direct == NULL) or straight into fuse_handle(); each
 * target has its own nodeid and open handle for the test file. */
static struct fuse_server *direct, *fuse_srv;
static struct target { uint64_t node, fh; } targets[2], *cur;

static void fail(const char *what, const char *why)
{
	fprintf(stderr, "fuse_bench: %s: %s\n", what, why);
	exit(1);
}

static void must(int err, const char *what)
{
	if (err)
		fail(what, strerror(-err));
}

static void wr(uint64_t off, uint32_t v) { virtio_mmio_io(dev, off, &v, 4, true); }
static void wr64(uint64_t off, uint64_t v) { wr(off, (uint32_t)v); wr(off + 4, (uint32_t)(v >> 32)); }
static uint32_t rd(uint64_t off) { uint32_t v; virtio_mmio_io(dev, off, &v, 4, false); return v; }

static void queue_setup(uint32_t q, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	wr(0x030, q);
	cr_assert(rd(0x034) >= size);
	wr(0x038, size);
	wr64(0x080, desc);
	wr64(0x090, avail);
	wr64(0x0a0, used);
	wr(0x044, 1);
}

/* The device on a fake VM, and the driver's side of bring-up: features, both queues,
 * DRIVER_OK. */
static struct share *device_up(const char *dir)
{
	char err[256], arg[4200];
	static struct share sh;
	struct virtq scratch;

	memset(&mk, 0, sizeof(mk));
	cr_assert_eq(gmem_init(&mk.m, RAM), 0);
	mk.heap = MOCK_HEAP_GPA;
	vm.mem = mk.m;
	snprintf(arg, sizeof(arg), "tag=bench,path=%s", dir);
	if (share_parse(arg, &sh, err, sizeof(err)) ||
	    !(dev = virtio_fs_create(&vm, &sh, err, sizeof(err))))
		fail("device", err);
	cr_assert((irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0);
	cr_assert_eq(virtio_mmio_setup(dev, 0xd0000000, irq_fd), 0);
	cr_assert_eq(rd(0x008), 26);

	wr(R_STATUS, 1);
	wr(R_STATUS, 1 | 2);
	wr(0x014, 0);
	uint64_t feat = rd(0x010);
	wr(0x014, 1);
	feat |= (uint64_t)rd(0x010) << 32;
	feat &= (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_RING_EVENT_IDX) |
		(1ULL << VIRTIO_F_RING_INDIRECT_DESC);
	event_idx = feat & (1ULL << VIRTIO_F_RING_EVENT_IDX);
	wr(0x024, 0); wr(0x020, (uint32_t)feat);
	wr(0x024, 1); wr(0x020, (uint32_t)(feat >> 32));
	wr(R_STATUS, 1 | 2 | 8);
	cr_assert(rd(R_STATUS) & 8);

	memset(mock_ptr(&mk, HP_RING, 0x3000), 0, 0x3000);
	queue_setup(0, 64, HP_RING, HP_RING + 0x1000, HP_RING + 0x2000);
	mock_queue(&mk, &scratch, RQ_SIZE, event_idx, feat & (1ULL << VIRTIO_F_RING_INDIRECT_DESC));
	queue_setup(1, RQ_SIZE, MOCK_DESC_GPA, MOCK_AVAIL_GPA, MOCK_USED_GPA);
	wr(R_STATUS, 1 | 2 | 8 | 4);
	cr_assert_eq(rd(R_STATUS), 1 | 2 | 8 | 4);

	req_buf = mock_buf(&mk, 8192, false);
	hdr_buf = mock_buf(&mk, sizeof(struct fuse_out_header), true);
	data_buf = mock_buf(&mk, 8192, true);
	return &sh;
}

/* The driver waiting for an interrupt. */
static void wait_fd(int fd)
{
	poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 1000);
}

static void *data(void) { return mock_ptr(&mk, data_buf.addr, data_buf.len); }

/* One request as the chain [request] [out header] [outlen bytes, if any] on queue 1 (or
 * the same buffers handed to fuse_handle).  Returns the reply's error (0 or -errno). */
static int request(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arglen,
		   const char *name, size_t outlen)
{
	static uid_t uid = (uid_t)-1;
	static gid_t gid;
	if (uid == (uid_t)-1) {     /* two syscalls per request would be timed as FUSE cost */
		uid = getuid();
		gid = getgid();
	}
	struct fuse_in_header h = { .opcode = opcode, .unique = ++unique, .nodeid = nodeid,
				    .uid = uid, .gid = gid, .pid = 1 };
	size_t nlen = name ? strlen(name) + 1 : 0;
	uint8_t *p = mock_ptr(&mk, req_buf.addr, req_buf.len);
	struct fuse_out_header *oh = mock_ptr(&mk, hdr_buf.addr, hdr_buf.len);
	bool noreply = opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET;

	h.len = (uint32_t)(sizeof(h) + arglen + nlen);
	memcpy(p, &h, sizeof(h));
	memcpy(p + sizeof(h), arg, arglen);
	memcpy(p + sizeof(h) + arglen, name ? name : "", nlen);
	if (direct) {
		struct iovec in = { p, h.len }, out[2] = { { oh, hdr_buf.len }, { data(), outlen } };
		size_t w = fuse_handle(direct, &in, 1, out, outlen ? 2 : 1);
		cr_assert(noreply || w >= sizeof(*oh));
	} else {
		struct mseg s[3] = { { req_buf.addr, h.len, false }, hdr_buf,
				     { data_buf.addr, (uint32_t)outlen, true } };
		uint16_t used = mock_used_idx(&mk), old = mk.avail_idx;
		uint64_t v;
		if (event_idx)
			mock_set_used_event(&mk, used);   /* interrupt me when this one is done */
		mock_add_chain(&mk, s, noreply ? 1 : outlen ? 3 : 2);
		if (!event_idx || mock_driver_would_notify(&mk, old, mk.avail_idx))
			virtio_queue_kick(dev, 1);
		while (mock_used_idx(&mk) == used)
			wait_fd(irq_fd);
		if (read(irq_fd, &v, sizeof(v)) < 0) {
			/* nothing pending: the interrupt was suppressed */
		}
	}
	if (noreply)
		return 0;
	cr_assert_eq(oh->unique, unique);
	return oh->error;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	return (*(const double *)a > *(const double *)b) - (*(const double *)a < *(const double *)b);
}
static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the figures, in ns/op -------------------------------------------------------------- */

enum { GETATTR, LOOKUP, LOOKUP_ST, READ, CREATE, CYCLE, NFIG };
#define DEPTH 64
static const char *fig_name[NFIG] = {
	"GETATTR vs statx", "LOOKUP vs openat+close", "LOOKUP vs openat+fstatat+close",
	"READ 4 KiB vs pread", "CREATE vs openat O_CREAT",
	"CREATE+RELEASE+UNLINK vs openat O_CREAT+close+unlink",
};

/* GETATTR, LOOKUP or READ as requests (to the device or to fuse_handle). */
static double req_op(int op, int n)
{
	struct fuse_getattr_in g = { 0 };
	struct fuse_read_in r = { .fh = cur->fh, .size = 4096 };
	double t = now_ns();
	for (int i = 0; i < n; i++) {
		r.offset = (uint64_t)(i % (FILE_SIZE / 4096)) * 4096;
		if (op == GETATTR)
			must(request(FUSE_GETATTR, cur->node, &g, sizeof(g), NULL,
				     sizeof(struct fuse_attr_out)), "GETATTR");
		else if (op == LOOKUP)
			must(request(FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, "file",
				     sizeof(struct fuse_entry_out)), "LOOKUP");
		else
			must(request(FUSE_READ, cur->node, &r, sizeof(r), NULL, 4096), "READ");
	}
	t = (now_ns() - t) / n;
	if (op == LOOKUP) {     /* give the n lookups back, as the guest's FORGET would */
		struct fuse_forget_in f = { .nlookup = (uint64_t)n };
		request(FUSE_FORGET, cur->node, &f, sizeof(f), NULL, 0);
	}
	return t;
}

/* GETATTR, LOOKUP or READ kept `depth` deep on the device's queue, as a guest with many
 * requests in flight does: `depth` chains published, one kick, one interrupt when all are
 * done.  The chains share their buffers: only the cost is measured here. */
static double batch_op(int op, int n, int depth)
{
	struct fuse_getattr_in g = { 0 };
	struct fuse_read_in rd = { .fh = targets[0].fh, .size = 4096 };
	uint8_t *p = mock_ptr(&mk, req_buf.addr, req_buf.len);
	struct fuse_in_header h = { .opcode = op == GETATTR ? FUSE_GETATTR : op == LOOKUP ?
				    FUSE_LOOKUP : FUSE_READ, .unique = ++unique,
				    .nodeid = op == LOOKUP ? FUSE_ROOT_ID : targets[0].node,
				    .uid = getuid(), .gid = getgid(), .pid = 1 };
	size_t arglen = op == GETATTR ? sizeof(g) : op == LOOKUP ? 5 : sizeof(rd);
	size_t outlen = op == GETATTR ? sizeof(struct fuse_attr_out) : op == LOOKUP ?
			sizeof(struct fuse_entry_out) : 4096;
	struct fuse_out_header *oh = mock_ptr(&mk, hdr_buf.addr, hdr_buf.len);
	uint64_t v;

	h.len = (uint32_t)(sizeof(h) + arglen);
	memcpy(p, &h, sizeof(h));
	memcpy(p + sizeof(h), op == GETATTR ? (void *)&g : op == LOOKUP ? (void *)"file" :
	       (void *)&rd, arglen);
	struct mseg s[3] = { { req_buf.addr, h.len, false }, hdr_buf,
			     { data_buf.addr, (uint32_t)outlen, true } };
	int rounds = n / depth;
	double t = now_ns();
	for (int k = 0; k < rounds; k++) {
		uint16_t used = mock_used_idx(&mk), old = mk.avail_idx;
		if (event_idx)
			mock_set_used_event(&mk, (uint16_t)(used + depth - 1));
		for (int i = 0; i < depth; i++)
			mock_add_chain(&mk, s, 3);
		if (!event_idx || mock_driver_would_notify(&mk, old, mk.avail_idx))
			virtio_queue_kick(dev, 1);
		while ((uint16_t)(mock_used_idx(&mk) - used) < depth)
			wait_fd(irq_fd);
		if (read(irq_fd, &v, sizeof(v)) < 0) {
			/* nothing pending */
		}
		must(oh->error, "batched request");
	}
	t = (now_ns() - t) / ((double)rounds * depth);
	if (op == LOOKUP) {
		struct fuse_forget_in f = { .nlookup = (uint64_t)rounds * depth };
		cur = &targets[0];
		direct = NULL;
		request(FUSE_FORGET, targets[0].node, &f, sizeof(f), NULL, 0);
	}
	return t;
}

/* n creates kept DEPTH deep, each with its own request and reply buffers; the files are
 * released, unlinked and forgotten afterwards, untimed. */
static struct mseg cb_req[DEPTH], cb_hdr[DEPTH], cb_out[DEPTH];
static double batch_create(int n)
{
	int rounds = n / DEPTH;
	double t = 0;
	uint64_t v;
	char name[32];

	if (!cb_req[0].len)
		for (int i = 0; i < DEPTH; i++) {
			cb_req[i] = mock_buf(&mk, 256, false);
			cb_hdr[i] = mock_buf(&mk, sizeof(struct fuse_out_header), true);
			cb_out[i] = mock_buf(&mk, sizeof(struct fuse_entry_out) +
					     sizeof(struct fuse_open_out), true);
		}
	for (int k = 0; k < rounds; k++) {
		for (int i = 0; i < DEPTH; i++) {
			struct fuse_create_in c = { .flags = O_CREAT | O_EXCL | O_WRONLY,
						    .mode = S_IFREG | 0644, .umask = 022 };
			int nl = snprintf(name, sizeof(name), "b%d", i) + 1;
			struct fuse_in_header h = { .opcode = FUSE_CREATE, .unique = ++unique,
						    .nodeid = FUSE_ROOT_ID, .uid = getuid(),
						    .gid = getgid(), .pid = 1 };
			uint8_t *p = mock_ptr(&mk, cb_req[i].addr, cb_req[i].len);
			h.len = (uint32_t)(sizeof(h) + sizeof(c) + nl);
			memcpy(p, &h, sizeof(h));
			memcpy(p + sizeof(h), &c, sizeof(c));
			memcpy(p + sizeof(h) + sizeof(c), name, nl);
			cb_req[i].len = h.len;
		}
		double a = now_ns();
		uint16_t used = mock_used_idx(&mk), old = mk.avail_idx;
		if (event_idx)
			mock_set_used_event(&mk, (uint16_t)(used + DEPTH - 1));
		for (int i = 0; i < DEPTH; i++)
			mock_add_chain(&mk, (struct mseg[]){ cb_req[i], cb_hdr[i], cb_out[i] }, 3);
		if (!event_idx || mock_driver_would_notify(&mk, old, mk.avail_idx))
			virtio_queue_kick(dev, 1);
		while ((uint16_t)(mock_used_idx(&mk) - used) < DEPTH)
			wait_fd(irq_fd);
		t += now_ns() - a;
		if (read(irq_fd, &v, sizeof(v)) < 0) {
			/* nothing pending */
		}
		cur = &targets[0];
		direct = NULL;
		for (int i = 0; i < DEPTH; i++) {
			struct fuse_out_header *oh = mock_ptr(&mk, cb_hdr[i].addr, cb_hdr[i].len);
			struct fuse_entry_out e;
			struct fuse_open_out o;
			must(oh->error, "batched CREATE");
			memcpy(&e, mock_ptr(&mk, cb_out[i].addr, cb_out[i].len), sizeof(e));
			memcpy(&o, (uint8_t *)mock_ptr(&mk, cb_out[i].addr, cb_out[i].len) + sizeof(e),
			       sizeof(o));
			struct fuse_release_in r = { .fh = o.fh, .flags = O_WRONLY };
			must(request(FUSE_RELEASE, e.nodeid, &r, sizeof(r), NULL, 0), "RELEASE");
			snprintf(name, sizeof(name), "b%d", i);
			must(request(FUSE_UNLINK, FUSE_ROOT_ID, NULL, 0, name, 0), "UNLINK");
			struct fuse_forget_in f = { .nlookup = 1 };
			request(FUSE_FORGET, e.nodeid, &f, sizeof(f), NULL, 0);
		}
	}
	return t / ((double)rounds * DEPTH);
}

/* The same with the host syscalls alone. */
static double sys_op(int op, int n)
{
	static char buf[4096];
	struct stat st;
	struct statx stx;
	double t = now_ns();
	for (int i = 0; i < n; i++) {
		if (op == GETATTR) {
			must(statx(file_opath, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW |
				   AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_MNT_ID, &stx) ?
			     -errno : 0, "statx");
		} else if (op == READ) {
			must(pread(file_fd, buf, 4096, (off_t)(i % (FILE_SIZE / 4096)) * 4096) ==
			     4096 ? 0 : -EIO, "pread");
		} else {
			int fd = openat(dirfd_, "file", O_PATH | O_NOFOLLOW | O_CLOEXEC);
			must(fd < 0 ? -errno : 0, "openat");
			if (op == LOOKUP_ST)
				fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
			close(fd);
		}
	}
	return (now_ns() - t) / n;
}

/* n new files, each closed and unlinked again: v[CREATE] is the create alone, v[CYCLE]
 * the whole; as requests (CREATE, RELEASE, UNLINK) or as syscalls (sys).  The guest
 * evicts an unlinked inode at once and FORGETs it (on the hiprio queue, without waiting):
 * sent here too, untimed, so the host frees each inode as early as a guest makes it. */
static void create_op(int n, bool sys, double *v)
{
	double tc = 0, tf = 0, t0 = now_ns();
	char name[32];
	for (int i = 0; i < n; i++) {
		struct fuse_create_in c = { .flags = O_CREAT | O_EXCL | O_WRONLY,
					    .mode = S_IFREG | 0644, .umask = 022 };
		struct fuse_entry_out e;
		struct fuse_open_out o;
		snprintf(name, sizeof(name), "c%d", i);
		double a = now_ns();
		if (sys) {
			int fd = openat(dirfd_, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
			tc += now_ns() - a;
			must(fd < 0 ? -errno : 0, "openat O_CREAT");
			close(fd);
			must(unlinkat(dirfd_, name, 0) ? -errno : 0, "unlinkat");
			continue;
		}
		must(request(FUSE_CREATE, FUSE_ROOT_ID, &c, sizeof(c), name, sizeof(e) + sizeof(o)),
		     "CREATE");
		tc += now_ns() - a;
		memcpy(&e, data(), sizeof(e));
		memcpy(&o, (char *)data() + sizeof(e), sizeof(o));
		struct fuse_release_in r = { .fh = o.fh, .flags = O_WRONLY };
		must(request(FUSE_RELEASE, e.nodeid, &r, sizeof(r), NULL, 0), "RELEASE");
		must(request(FUSE_UNLINK, FUSE_ROOT_ID, NULL, 0, name, 0), "UNLINK");
		struct fuse_forget_in f = { .nlookup = 1 };
		a = now_ns();
		request(FUSE_FORGET, e.nodeid, &f, sizeof(f), NULL, 0);
		tf += now_ns() - a;
	}
	v[CYCLE] = (now_ns() - t0 - tf) / n;
	v[CREATE] = tc / n;
}

/* Two threads passing a token back and forth through eventfds: ns per round trip. */
struct pp { int give, take; long n; bool lead; };
static void *pp_loop(void *arg)
{
	struct pp *p = arg;
	uint64_t v;
	for (long i = 0; i < 2 * p->n; i++) {
		v = 1;
		if ((i % 2 == 0) == p->lead)
			cr_assert(write(p->give, &v, sizeof(v)) == sizeof(v));
		else
			do
				wait_fd(p->take);
			while (read(p->take, &v, sizeof(v)) < 0);
	}
	return NULL;
}

static double pingpong(int n)
{
	int a = eventfd(0, EFD_NONBLOCK), b = eventfd(0, EFD_NONBLOCK);
	struct pp me = { a, b, n, true }, peer = { b, a, n, false };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, pp_loop, &peer), 0);
	double t0 = now_ns();
	pp_loop(&me);
	t0 = (now_ns() - t0) / n;
	pthread_join(t, NULL);
	close(a);
	close(b);
	return t0;
}

static void measure(int n, int runs)
{
	double v[4][runs][NFIG], col[runs], pp[runs];
	for (int r = 0; r < runs; r++) {
		for (int k = GETATTR; k <= READ; k++)
			v[3][r][k] = batch_op(k == LOOKUP_ST ? LOOKUP : k, n, DEPTH);
		v[3][r][CREATE] = batch_create(n / 4);
		v[3][r][CYCLE] = 0;
		for (int t = 0; t < 2; t++) {     /* the device, then fuse_handle */
			direct = t ? fuse_srv : NULL;
			cur = &targets[t];
			v[t][r][GETATTR] = req_op(GETATTR, n);
			v[t][r][LOOKUP] = v[t][r][LOOKUP_ST] = req_op(LOOKUP, n);
			v[t][r][READ] = req_op(READ, n);
			create_op(n / 4, false, v[t][r]);
		}
		for (int k = GETATTR; k <= READ; k++)
			v[2][r][k] = sys_op(k, n);
		create_op(n / 4, true, v[2][r]);
		pp[r] = pingpong(n);
	}
	printf("  %-46s %8s %8s %8s %8s %8s %8s %8s\n", "request", "device", "queued", "fuse",
	       "direct", "dev/dir", "que/dir", "fuse/dir");
	for (int k = 0; k < NFIG; k++) {
		double m[4];
		for (int c = 0; c < 4; c++) {
			for (int r = 0; r < runs; r++)
				col[r] = v[c][r][k];
			m[c] = median(col, runs);
		}
		if (k == CYCLE)
			printf("  %-46s %8.0f %8s %8.0f %8.0f %7.2fx %8s %7.2fx\n", fig_name[k], m[0],
			       "-", m[1], m[2], m[0] / m[2], "-", m[1] / m[2]);
		else
			printf("  %-46s %8.0f %8.0f %8.0f %8.0f %7.2fx %7.2fx %7.2fx\n", fig_name[k],
			       m[0], m[3], m[1], m[2], m[0] / m[2], m[3] / m[2], m[1] / m[2]);
	}
	printf("  %-52s %9.0f\n", "(floor) eventfd ping-pong between two threads", median(pp, runs));
}

int main(int argc, char **argv)
{
	static char blk[FILE_SIZE];
	int n = 20000, runs = 5, opt, fd;
	char dir[4096], err[256];

	while ((opt = getopt(argc, argv, "n:r:")) != -1) {
		if (opt == 'n' && atoi(optarg) >= 4)
			n = atoi(optarg);
		else if (opt == 'r' && atoi(optarg) >= 1)
			runs = atoi(optarg);
		else
			fail("usage", "fuse_bench [-n N] [-r RUNS] [DIR]");
	}
	snprintf(dir, sizeof(dir), "%s/fuse_bench.XXXXXX", optind < argc ? argv[optind] : "build");
	memset(blk, 'b', sizeof(blk));
	if (!mkdtemp(dir) || (dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (fd = openat(dirfd_, "file", O_CREAT | O_RDWR | O_CLOEXEC, 0644)) < 0 ||
	    write(fd, blk, sizeof(blk)) != (ssize_t)sizeof(blk))
		fail(dir, strerror(errno));
	close(fd);
	file_fd = openat(dirfd_, "file", O_RDONLY | O_CLOEXEC);
	file_opath = openat(dirfd_, "file", O_PATH | O_NOFOLLOW | O_CLOEXEC);

	struct share *sh = device_up(dir);
	if (!(fuse_srv = fuse_server_create(&sh->fuse, err, sizeof(err))))
		fail("fuse server", err);
	/* On both targets: INIT, then look up and open the test file, and warm up. */
	for (int t = 0; t < 2; t++) {
		direct = t ? fuse_srv : NULL;
		cur = &targets[t];
		struct fuse_init_in init = {
			.major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
			.max_readahead = 128 << 10,
			.flags = FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_EXPORT_SUPPORT |
				 FUSE_DO_READDIRPLUS | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES };
		struct fuse_open_in oi = { .flags = O_RDONLY };
		must(request(FUSE_INIT, 0, &init, sizeof(init), NULL, sizeof(struct fuse_init_out)),
		     "INIT");
		must(request(FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, "file", sizeof(struct fuse_entry_out)),
		     "LOOKUP file");
		cur->node = ((struct fuse_entry_out *)data())->nodeid;
		must(request(FUSE_OPEN, cur->node, &oi, sizeof(oi), NULL, sizeof(struct fuse_open_out)),
		     "OPEN");
		cur->fh = ((struct fuse_open_out *)data())->fh;
		req_op(GETATTR, n / 10);
	}

	printf("virtio-fs request cost in process (no KVM): ns/op, median of %d runs of %d ops "
	       "(creates: %d)\nshare cache=auto, %u pool threads, %s, driver asleep in poll() on the "
	       "interrupt eventfd\n", runs, n, n / 4, sh->threads, event_idx ? "EVENT_IDX" : "no EVENT_IDX");
	printf("  device: queue 1 -> worker -> pool -> fuse_handle -> syscalls -> used ring -> irq\n"
	       "  fuse: fuse_handle() called directly; direct: the host syscalls alone\n");
	measure(n, runs);

	wr(R_STATUS, 0);                           /* reset: stops and joins the workers */
	fuse_server_destroy(fuse_srv);
	unlinkat(dirfd_, "file", 0);
	if (rmdir(dir))
		fail(dir, strerror(errno));
	return 0;
}
