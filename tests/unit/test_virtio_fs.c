/* The virtio-fs device (fs/virtio_fs.c) driven as a guest would: over virtio-mmio registers,
 * with split rings (indirect descriptors) built in the VM's memory by a small multi-queue
 * driver here, FUSE requests in them, and a share in a fresh directory under build/.
 * What is under test is the device: which queues get workers, the pool and its
 * back-pressure, resets with requests in flight, and what a reset does to the share and to
 * the FUSE session. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/share.h"
#include "fs/virtio_fs.h"
#include "virtio/core.h"
#include "virtio/mmio.h"
#include "vmm/vm.h"

#define ACK  VIRTIO_STATUS_ACKNOWLEDGE
#define DRV  VIRTIO_STATUS_DRIVER
#define FOK  VIRTIO_STATUS_FEATURES_OK
#define DOK  VIRTIO_STATUS_DRIVER_OK
#define NRS  VIRTIO_STATUS_NEEDS_RESET
#define FEAT ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_RING_INDIRECT_DESC))
#define RAM  (64ULL << 20)
#define MAXQ 5

#define WAITMS(ms, cond) ({ for (int w_ = 0; w_ < (ms) && !(cond); w_++) usleep(1000); (cond); })
#define WAIT(cond) WAITMS(5000, cond)

/* ---- the machine: RAM, the device, MMIO registers ---- */

static struct vm vm;
static struct virtio_dev *D;
static struct share sh;
static int irq_fd = -1;
static char dir[PATH_MAX + 32], share_dir[PATH_MAX + 64], other_dir[PATH_MAX + 64];
static uint64_t heap;

enum {
	R_QSEL = 0x030, R_QNUM = 0x038, R_QREADY = 0x044, R_NOTIFY = 0x050, R_STATUS = 0x070,
	R_GF = 0x020, R_GFSEL = 0x024, R_DESC = 0x080, R_DRIVER = 0x090, R_DEVICE = 0x0a0,
};

static uint32_t rd(uint64_t off)
{
	uint32_t v = 0;
	virtio_mmio_io(D, off, &v, 4, false);
	return v;
}
static void wr(uint64_t off, uint32_t v) { virtio_mmio_io(D, off, &v, 4, true); }
static void wr64(uint64_t off, uint64_t v) { wr(off, (uint32_t)v); wr(off + 4, (uint32_t)(v >> 32)); }

static void *gp(uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(&vm.mem, gpa, len);
	cr_assert_not_null(p, "gpa %#llx+%llu outside RAM", (unsigned long long)gpa,
			   (unsigned long long)len);
	return p;
}

static uint64_t galloc(uint64_t len)
{
	uint64_t a = heap;
	heap += (len + 63) & ~63ULL;
	cr_assert_leq(heap, RAM, "guest heap exhausted");
	memset(gp(a, len), 0, len);
	return a;
}

static void mkdir_p(const char *p) { cr_assert_eq(mkdir(p, 0755), 0, "mkdir %s: %m", p); }

/* A share of dir/share (holding "mark"), with dir/other (holding "secret") beside it. */
static void vfs_start(unsigned queues, unsigned threads)
{
	char base[PATH_MAX];
	memset(&vm, 0, sizeof(vm));
	cr_assert_eq(gmem_init(&vm.mem, RAM), 0);
	heap = 0x100000;
	cr_assert_not_null(realpath(access("build", F_OK) ? "/tmp" : "build", base));
	snprintf(dir, sizeof(dir), "%s/vfstest.XXXXXX", base);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(share_dir, sizeof(share_dir), "%s/share", dir);
	snprintf(other_dir, sizeof(other_dir), "%s/other", dir);
	mkdir_p(share_dir);
	mkdir_p(other_dir);
	char p[PATH_MAX + 128];
	snprintf(p, sizeof(p), "%s/mark", share_dir);
	int fd = open(p, O_CREAT | O_RDWR, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "0123456789", 10), 10);
	close(fd);
	snprintf(p, sizeof(p), "%s/secret", other_dir);
	fd = open(p, O_CREAT | O_RDWR, 0644);
	cr_assert_geq(fd, 0);
	close(fd);

	cr_assert_eq(share_init(&sh, "vfs", share_dir, false), 0);
	sh.queues = queues;
	sh.threads = threads;
	char err[256] = "";
	D = virtio_fs_create(&vm, &sh, err, sizeof(err));
	cr_assert_not_null(D, "virtio_fs_create: %s", err);
	irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_eq(virtio_mmio_setup(D, 0xd0000000, irq_fd), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* The device has no teardown (the VMM exits with it): its pool threads stay, blocked. */
static void vfs_fini(void)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	dir[0] = '\0';
}

TestSuite(virtio_fs, .fini = vfs_fini);

/* ---- the driver: one ring per queue, every chain one indirect descriptor ---- */

struct ring {
	uint16_t qi, size, avail_idx, next, used_seen;
	uint64_t desc, avail, used;
	uint64_t reply[VIRTIO_QUEUE_SIZE_MAX];     /* each head's reply buffer */
};
static struct ring rings[MAXQ];

static void negotiate(void)
{
	wr(R_STATUS, 0);
	wr(R_STATUS, ACK);
	wr(R_STATUS, ACK | DRV);
	wr(R_GFSEL, 0);
	wr(R_GF, (uint32_t)FEAT);
	wr(R_GFSEL, 1);
	wr(R_GF, (uint32_t)(FEAT >> 32));
	wr(R_STATUS, ACK | DRV | FOK);
	cr_assert_eq(rd(R_STATUS), ACK | DRV | FOK);
}

static void ring_program(const struct ring *r)
{
	wr(R_QSEL, r->qi);
	wr(R_QNUM, r->size);
	wr64(R_DESC, r->desc);
	wr64(R_DRIVER, r->avail);
	wr64(R_DEVICE, r->used);
	wr(R_QREADY, 1);
}

/* Lay out queue qi's rings and tell the device (QueueReady 1). */
static struct ring *ring_setup(uint16_t qi, uint16_t size)
{
	struct ring *r = &rings[qi];
	memset(r, 0, sizeof(*r));
	r->qi = qi;
	r->size = size;
	r->desc = galloc(16ULL * size);
	r->avail = galloc(6 + 2ULL * size);
	r->used = galloc(6 + 8ULL * size);
	ring_program(r);
	return r;
}

static void driver_ok(uint32_t want)
{
	wr(R_STATUS, ACK | DRV | FOK | DOK);
	cr_assert_eq(rd(R_STATUS), want, "status %#x, want %#x", rd(R_STATUS), want);
}

static void desc_write(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		       uint16_t next)
{
	uint8_t *d = gp(table + 16ULL * i, 16);
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* Put `head` in the next avail slot and publish it (no kick). */
static void ring_publish(struct ring *r, uint16_t head)
{
	uint16_t *slot = gp(r->avail + 4 + 2ULL * (r->avail_idx % r->size), 2);
	*slot = head;
	r->avail_idx++;
	__atomic_store_n((uint16_t *)gp(r->avail + 2, 2), r->avail_idx, __ATOMIC_RELEASE);
}

static void kick(struct ring *r) { wr(R_NOTIFY, r->qi); }

static uint16_t used_idx(struct ring *r)
{
	return __atomic_load_n((uint16_t *)gp(r->used + 2, 2), __ATOMIC_ACQUIRE);
}

static void used_elem(struct ring *r, uint16_t slot, uint32_t *id, uint32_t *len)
{
	uint8_t *e = gp(r->used + 4 + 8ULL * (slot % r->size), 8);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

/* A FUSE request as one chain at descriptor `head`: an indirect table of two, the request
 * (header, argument, name) and room for the reply.  Published, not kicked. */
static void request_at(struct ring *r, uint16_t head, uint32_t op, uint64_t nodeid,
		       const void *arg, size_t argsz, const char *name, uint32_t replysz)
{
	size_t namesz = name ? strlen(name) + 1 : 0;
	size_t len = sizeof(struct fuse_in_header) + argsz + namesz;
	uint64_t req = galloc(len);
	struct fuse_in_header h = { .len = (uint32_t)len, .opcode = op, .unique = 2 + heap,
				    .nodeid = nodeid };
	uint8_t *p = gp(req, len);
	memcpy(p, &h, sizeof(h));
	if (argsz)
		memcpy(p + sizeof(h), arg, argsz);
	if (namesz)
		memcpy(p + sizeof(h) + argsz, name, namesz);
	uint32_t outsz = (uint32_t)sizeof(struct fuse_out_header) + replysz;
	r->reply[head] = galloc(outsz);
	uint64_t table = galloc(32);
	desc_write(table, 0, req, (uint32_t)len, 1 /* NEXT */, 1);
	desc_write(table, 1, r->reply[head], outsz, 2 /* WRITE */, 0);
	desc_write(r->desc, head, table, 32, 4 /* INDIRECT */, 0);
	ring_publish(r, head);
}

static uint16_t request(struct ring *r, uint32_t op, uint64_t nodeid, const void *arg,
			size_t argsz, const char *name, uint32_t replysz)
{
	uint16_t head = r->next;
	r->next = (uint16_t)((r->next + 1) % r->size);
	request_at(r, head, op, nodeid, arg, argsz, name, replysz);
	return head;
}

/* The reply to `head`: its error (0 or -errno), payload copied to `out`. */
static int reply(struct ring *r, uint16_t head, void *out, size_t outsz)
{
	struct fuse_out_header oh;
	memcpy(&oh, gp(r->reply[head], sizeof(oh)), sizeof(oh));
	if (out && !oh.error)
		memcpy(out, gp(r->reply[head] + sizeof(oh), outsz), outsz);
	return oh.error;
}

/* One request, kicked and waited for (it must be the next completion on the ring). */
static int call(struct ring *r, uint32_t op, uint64_t nodeid, const void *arg, size_t argsz,
		const char *name, void *out, uint32_t outsz)
{
	uint16_t head = request(r, op, nodeid, arg, argsz, name, outsz);
	kick(r);
	cr_assert(WAIT(used_idx(r) != r->used_seen), "request %u (op %u) not completed", head, op);
	uint32_t id, len;
	used_elem(r, r->used_seen++, &id, &len);
	cr_assert_eq(id, head);
	return reply(r, head, out, outsz);
}

static void fuse_init(struct ring *r)
{
	struct fuse_init_in in = { .major = FUSE_KERNEL_VERSION, .minor = 31 };
	struct fuse_init_out o;
	cr_assert_eq(call(r, FUSE_INIT, 0, &in, sizeof(in), NULL, &o, sizeof(o)), 0);
}

static int lookup(struct ring *r, uint64_t parent, const char *name, struct fuse_entry_out *e)
{
	return call(r, FUSE_LOOKUP, parent, NULL, 0, name, e, sizeof(*e));
}

static int getattr(struct ring *r, uint64_t node, struct fuse_attr_out *a)
{
	struct fuse_getattr_in in = { 0 };
	return call(r, FUSE_GETATTR, node, &in, sizeof(in), NULL, a, sizeof(*a));
}

/* The whole driver start: queues `ready` (bit i: queue i) of 8 entries, DRIVER_OK. */
static void start_queues(uint32_t ready, uint32_t want_status)
{
	negotiate();
	for (uint16_t q = 0; q < D->nqueues; q++)
		if (ready & (1u << q))
			ring_setup(q, 8);
	driver_ok(want_status);
}

/* ---- which queues get workers ---- */

/* Linux 6.11+ with more request queues than CPUs sets DRIVER_OK with the extra queues never
 * made ready.  Their workers once ran anyway on zeroed rings (SIGSEGV). */
Test(virtio_fs, unready_request_queues_stay_inert)
{
	vfs_start(4, 2);
	start_queues(0x3, ACK | DRV | FOK | DOK);       /* hiprio and request queue 1 */
	fuse_init(&rings[1]);
	struct fuse_entry_out e;
	cr_assert_eq(lookup(&rings[1], FUSE_ROOT_ID, "mark", &e), 0);
	for (uint32_t q = 2; q <= 4; q++)
		wr(R_NOTIFY, q);                        /* kicks on queues never set up */
	usleep(50000);
	cr_assert_eq(rd(R_STATUS), ACK | DRV | FOK | DOK);
	cr_assert_eq(lookup(&rings[1], FUSE_ROOT_ID, "mark", &e), 0, "the device still works");
	wr(R_STATUS, 0);
	cr_assert_eq(rd(R_STATUS), 0);
}

Test(virtio_fs, no_queue_ready_is_inert)
{
	vfs_start(2, 2);
	start_queues(0, ACK | DRV | FOK | DOK);
	for (uint32_t q = 0; q <= 2; q++)
		wr(R_NOTIFY, q);
	usleep(50000);
	cr_assert_eq(rd(R_STATUS), ACK | DRV | FOK | DOK);
	wr(R_STATUS, 0);
	/* And a full start afterwards works. */
	start_queues(0x7, ACK | DRV | FOK | DOK);
	fuse_init(&rings[2]);
}

Test(virtio_fs, only_hiprio_unready)
{
	vfs_start(1, 2);
	start_queues(0x2, ACK | DRV | FOK | DOK);
	wr(R_NOTIFY, 0);
	fuse_init(&rings[1]);
	cr_assert_eq(rd(R_STATUS), ACK | DRV | FOK | DOK);
}

/* ---- what a reset does to the share and the session ---- */

static ino_t ino_of(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s: %m", path);
	return st.st_ino;
}

/* The share's directory, renamed and replaced by a symlink to somewhere else (a guest can
 * do that when another share contains this one), then a device reset: the new session
 * still serves the directory the VM started with. */
Test(virtio_fs, reset_serves_the_original_directory_not_a_symlink)
{
	vfs_start(1, 2);
	ino_t share_ino = ino_of(share_dir);
	char moved[PATH_MAX + 64];
	snprintf(moved, sizeof(moved), "%s/moved", dir);
	start_queues(0x3, ACK | DRV | FOK | DOK);
	fuse_init(&rings[1]);
	cr_assert_eq(rename(share_dir, moved), 0);
	cr_assert_eq(symlink(other_dir, share_dir), 0);
	wr(R_STATUS, 0);
	start_queues(0x3, ACK | DRV | FOK | DOK);
	fuse_init(&rings[1]);
	struct fuse_attr_out a;
	cr_assert_eq(getattr(&rings[1], FUSE_ROOT_ID, &a), 0);
	cr_assert_eq(a.attr.ino, share_ino, "the root is inode %llu, the share was %llu",
		     (unsigned long long)a.attr.ino, (unsigned long long)share_ino);
	struct fuse_entry_out e;
	cr_assert_eq(lookup(&rings[1], FUSE_ROOT_ID, "secret", &e), -ENOENT,
		     "the symlink's target is served");
	cr_assert_eq(lookup(&rings[1], FUSE_ROOT_ID, "mark", &e), 0);
}

/* No new FUSE server can be made on this thread (the one that writes the registers, so
 * the one that resets and activates the device) while /proc is hidden: the server reopens
 * inodes through /proc/self/fd.  Only this thread's mount namespace is touched. */
static void proc_hide(void)
{
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare: %m");
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "mount: %m");
	cr_assert_eq(mount("none", "/proc", "tmpfs", 0, NULL), 0, "mount: %m");
}

static void proc_show(void)
{
	cr_assert_eq(umount2("/proc", MNT_DETACH), 0, "umount: %m");
	cr_assert_eq(access("/proc/self/fd", F_OK), 0);
}

/* A reset always ends the old session, even when no new one can be made at that moment:
 * node ids and file handles of before the reset never work after it. */
Test(virtio_fs, failed_new_session_at_reset_drops_the_old_one)
{
	vfs_start(1, 2);
	start_queues(0x3, ACK | DRV | FOK | DOK);
	fuse_init(&rings[1]);
	struct fuse_entry_out e;
	cr_assert_eq(lookup(&rings[1], FUSE_ROOT_ID, "mark", &e), 0);
	struct fuse_open_in oi = { .flags = O_RDONLY };
	struct fuse_open_out oo;
	cr_assert_eq(call(&rings[1], FUSE_OPEN, e.nodeid, &oi, sizeof(oi), NULL, &oo, sizeof(oo)), 0);

	proc_hide();
	wr(R_STATUS, 0);                        /* no new server can be made now */
	proc_show();
	cr_assert_eq(rd(R_STATUS), 0);

	start_queues(0x3, ACK | DRV | FOK | DOK);
	fuse_init(&rings[1]);
	struct fuse_attr_out a;
	cr_assert_lt(getattr(&rings[1], e.nodeid, &a), 0, "a node id of the old session works");
	struct fuse_read_in ri = { .fh = oo.fh, .size = 4 };
	char buf[4];
	cr_assert_lt(call(&rings[1], FUSE_READ, e.nodeid, &ri, sizeof(ri), NULL, buf, sizeof(buf)), 0,
		     "a file handle of the old session works");
}

/* No server can be made at reset nor at the next DRIVER_OK: the device refuses it
 * (NEEDS_RESET) rather than run without a session, and recovers at a later reset. */
Test(virtio_fs, no_session_refuses_driver_ok_then_recovers)
{
	vfs_start(1, 2);
	start_queues(0x3, ACK | DRV | FOK | DOK);
	proc_hide();
	wr(R_STATUS, 0);
	negotiate();
	ring_setup(0, 8);
	ring_setup(1, 8);
	wr(R_STATUS, ACK | DRV | FOK | DOK);
	uint32_t s = rd(R_STATUS);
	proc_show();
	cr_assert_eq(s, ACK | DRV | FOK | NRS, "status %#x", s);
	start_queues(0x3, ACK | DRV | FOK | DOK);
	fuse_init(&rings[1]);
}

/* ---- requests in flight: a SETLKW the host keeps waiting ---- */

static int host_fd = -1;

/* Open "mark" in the guest and have the host hold a write lock on it. */
static uint64_t open_mark_locked(struct ring *r, uint64_t *node)
{
	struct fuse_entry_out e;
	cr_assert_eq(lookup(r, FUSE_ROOT_ID, "mark", &e), 0);
	struct fuse_open_in oi = { .flags = O_RDWR };
	struct fuse_open_out oo;
	cr_assert_eq(call(r, FUSE_OPEN, e.nodeid, &oi, sizeof(oi), NULL, &oo, sizeof(oo)), 0);
	char p[PATH_MAX + 128];
	snprintf(p, sizeof(p), "%s/mark", share_dir);
	host_fd = open(p, O_RDWR);
	cr_assert_geq(host_fd, 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	cr_assert_eq(fcntl(host_fd, F_OFD_SETLK, &fl), 0);
	*node = e.nodeid;
	return oo.fh;
}

static void host_unlock(void)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };
	cr_assert_eq(fcntl(host_fd, F_OFD_SETLK, &fl), 0);
}

/* A read lock request that waits while the host holds its write lock. */
static uint16_t setlkw_at(struct ring *r, int head, uint64_t node, uint64_t fh)
{
	struct fuse_lk_in in = { .fh = fh, .owner = 7,
				 .lk = { .start = 0, .end = (uint64_t)INT64_MAX, .type = F_RDLCK, .pid = 1 },
				 .lk_flags = 0 };
	if (head < 0)
		return request(r, FUSE_SETLKW, node, &in, sizeof(in), NULL, 0);
	request_at(r, (uint16_t)head, FUSE_SETLKW, node, &in, sizeof(in), NULL, 0);
	return (uint16_t)head;
}

/* ---- requests that hold a pool thread: a truncate the host keeps waiting ---- */

/* Lock waits no longer hold pool threads (they are parked, fs/lockwait.c), so requests
 * are kept in the pool another way: the host holds a read lease on "mark", and a truncate
 * of it (SETATTR size) waits in the kernel until the lease is given up (lease-break-time,
 * 45 s by default, is far beyond any test here). */
static int lease_fd = -1;

static uint64_t lease_mark(struct ring *r)
{
	struct fuse_entry_out e;
	cr_assert_eq(lookup(r, FUSE_ROOT_ID, "mark", &e), 0);
	char p[PATH_MAX + 128];
	snprintf(p, sizeof(p), "%s/mark", share_dir);
	signal(SIGIO, SIG_IGN);                 /* the lease-break notice: not needed */
	lease_fd = open(p, O_RDONLY);
	cr_assert_geq(lease_fd, 0);
	cr_assert_eq(fcntl(lease_fd, F_SETLEASE, F_RDLCK), 0, "F_SETLEASE: %m");
	return e.nodeid;
}

static void lease_release(void)
{
	if (lease_fd < 0)
		return;
	cr_assert_eq(fcntl(lease_fd, F_SETLEASE, F_UNLCK), 0, "F_SETLEASE: %m");
	close(lease_fd);
	lease_fd = -1;
}

static uint16_t truncate_req(struct ring *r, uint64_t node)
{
	struct fuse_setattr_in in = { .valid = FATTR_SIZE, .size = 0 };
	return request(r, FUSE_SETATTR, node, &in, sizeof(in), NULL, sizeof(struct fuse_attr_out));
}

/* The driver makes a head available again while the device still works on it: two pool
 * threads would write one buffer and the used ring would get the head twice.  The device
 * treats it as a broken ring. */
Test(virtio_fs, duplicate_head_in_flight_needs_reset)
{
	vfs_start(1, 4);
	start_queues(0x3, ACK | DRV | FOK | DOK);
	struct ring *r = &rings[1];
	fuse_init(r);
	uint64_t node, fh = open_mark_locked(r, &node);
	uint16_t head = setlkw_at(r, -1, node, fh);
	kick(r);
	usleep(100000);
	cr_assert_eq(used_idx(r), r->used_seen, "SETLKW completed while the host holds the lock");
	ring_publish(r, head);                  /* the same head again */
	kick(r);
	cr_assert(WAIT(rd(R_STATUS) & NRS), "duplicate head not flagged (status %#x)", rd(R_STATUS));
	host_unlock();
	cr_assert(WAIT(used_idx(r) != r->used_seen), "the first request never completed");
	usleep(100000);
	cr_assert_eq(used_idx(r), (uint16_t)(r->used_seen + 1), "head %u completed %u times", head,
		     (uint16_t)(used_idx(r) - r->used_seen));
	uint32_t id, len;
	used_elem(r, r->used_seen, &id, &len);
	cr_assert_eq(id, head);
	wr(R_STATUS, 0);
	start_queues(0x3, ACK | DRV | FOK | DOK);
	fuse_init(&rings[1]);
}

static void *reset_thread(void *arg)
{
	wr(R_STATUS, 0);
	__atomic_store_n((bool *)arg, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* A reset while requests are in flight returns only once every popped request has been
 * completed (granted or failed): after it, nothing of the old activation writes guest
 * memory.  The device works again after it. */
Test(virtio_fs, reset_with_requests_in_flight)
{
	vfs_start(1, 2);
	start_queues(0x3, ACK | DRV | FOK | DOK);
	struct ring *r = &rings[1];
	fuse_init(r);
	uint64_t node = lease_mark(r);
	for (int i = 0; i < 3; i++)             /* more than the pool has threads */
		truncate_req(r, node);
	kick(r);
	usleep(100000);
	cr_assert_eq(used_idx(r), r->used_seen, "a truncate completed under the host's lease");
	bool done = false;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, reset_thread, &done), 0);
	usleep(100000);
	cr_assert(!__atomic_load_n(&done, __ATOMIC_SEQ_CST),
		  "reset returned while requests were still running");
	lease_release();                        /* the requests wait for it: let them finish */
	cr_assert(WAIT(__atomic_load_n(&done, __ATOMIC_SEQ_CST)), "reset never returned");
	pthread_join(t, NULL);
	uint16_t after = used_idx(r);
	cr_assert_eq(after, (uint16_t)(r->used_seen + 3), "%u of 3 in-flight requests completed "
		     "when reset returned", (uint16_t)(after - r->used_seen));
	usleep(50000);
	cr_assert_eq(used_idx(r), after, "the used ring written after reset");
	start_queues(0x3, ACK | DRV | FOK | DOK);
	fuse_init(&rings[1]);
}

/* ---- back-pressure: more requests than the pool takes in flight ---- */

#define BIGQ VIRTIO_QUEUE_SIZE_MAX

/* Two full request queues (2 x 1024 truncates the host keeps waiting) against a pool that holds at most 1024: the
 * rest stay in the rings until jobs come back; then every request completes, each head
 * exactly once. */
Test(virtio_fs, pool_back_pressure)
{
	vfs_start(2, 2);
	negotiate();
	ring_setup(0, 8);
	struct ring *q1 = ring_setup(1, BIGQ), *q2 = ring_setup(2, BIGQ);
	driver_ok(ACK | DRV | FOK | DOK);
	fuse_init(q1);
	uint64_t node = lease_mark(q1);
	uint16_t base1 = q1->used_seen;
	for (int i = 0; i < BIGQ; i++) {
		truncate_req(q1, node);
		truncate_req(q2, node);
	}
	kick(q1);
	kick(q2);
	cr_assert(WAIT(virtio_fs_inflight(D) == BIGQ), "%u in flight", virtio_fs_inflight(D));
	usleep(100000);
	cr_assert_eq(virtio_fs_inflight(D), BIGQ, "the pool took more than its bound");
	cr_assert_eq(used_idx(q1), base1);
	cr_assert_eq(used_idx(q2), 0);
	lease_release();
	cr_assert(WAITMS(30000, used_idx(q1) == (uint16_t)(base1 + BIGQ) && used_idx(q2) == BIGQ),
		  "completed %u + %u of %u", (uint16_t)(used_idx(q1) - base1), used_idx(q2), 2 * BIGQ);
	struct ring *qs[2] = { q1, q2 };
	for (int k = 0; k < 2; k++) {
		static bool seen[BIGQ];
		memset(seen, 0, sizeof(seen));
		uint16_t from = k ? 0 : base1;
		for (int i = 0; i < BIGQ; i++) {
			uint32_t id, len;
			used_elem(qs[k], (uint16_t)(from + i), &id, &len);
			cr_assert_lt(id, BIGQ);
			cr_assert(!seen[id], "queue %d: head %u completed twice", k + 1, id);
			seen[id] = true;
			cr_assert_eq(reply(qs[k], (uint16_t)id, NULL, 0), 0);
		}
	}
	cr_assert(WAIT(virtio_fs_inflight(D) == 0), "%u jobs never returned", virtio_fs_inflight(D));
}

/* ---- stop while the guest keeps the rings full ---- */

static bool refilling;
static unsigned refilled;

/* The guest: every completed head goes straight back into its ring, so the device never
 * finds the rings empty. */
static void *refill_main(void *arg)
{
	while (__atomic_load_n(&refilling, __ATOMIC_SEQ_CST)) {
		for (int q = 1; q <= 2; q++) {
			struct ring *r = &rings[q];
			uint16_t u = used_idx(r);
			bool any = false;
			while (r->used_seen != u) {
				uint32_t id, len;
				used_elem(r, r->used_seen++, &id, &len);
				ring_publish(r, (uint16_t)id);   /* the same request again */
				__atomic_add_fetch(&refilled, 1, __ATOMIC_SEQ_CST);
				any = true;
			}
			if (any)
				kick(r);
		}
		sched_yield();
	}
	return NULL;
}

/* A reset must end the request queues' workers promptly even while the guest refills the
 * rings as fast as the device drains them (they once looped in request_queue forever). */
Test(virtio_fs, reset_while_the_guest_refills)
{
	vfs_start(2, 1);
	negotiate();
	ring_setup(0, 8);
	struct ring *q1 = ring_setup(1, BIGQ), *q2 = ring_setup(2, BIGQ);
	driver_ok(ACK | DRV | FOK | DOK);
	fuse_init(q1);
	/* Quick requests: GETATTR of the root, 1024 on each queue. */
	for (int i = 0; i < BIGQ; i++) {
		struct fuse_getattr_in in = { 0 };
		request(q1, FUSE_GETATTR, FUSE_ROOT_ID, &in, sizeof(in), NULL, sizeof(struct fuse_attr_out));
		request(q2, FUSE_GETATTR, FUSE_ROOT_ID, &in, sizeof(in), NULL, sizeof(struct fuse_attr_out));
	}
	refilling = true;
	pthread_t g, t;
	cr_assert_eq(pthread_create(&g, NULL, refill_main, NULL), 0);
	kick(q1);
	kick(q2);
	cr_assert(WAIT(__atomic_load_n(&refilled, __ATOMIC_SEQ_CST) > 4 * BIGQ),
		  "the device is not serving");
	bool done = false;
	cr_assert_eq(pthread_create(&t, NULL, reset_thread, &done), 0);
	bool ok = WAITMS(5000, __atomic_load_n(&done, __ATOMIC_SEQ_CST));
	__atomic_store_n(&refilling, false, __ATOMIC_SEQ_CST);
	pthread_join(g, NULL);
	cr_assert(ok, "reset still waiting for the queue workers after 5 s");
	pthread_join(t, NULL);
}
