/* Fuzz the FUSE server (fs/fuse.c and the ops behind it) through fuse_handle, as the
 * virtio-fs device calls it: a request split into separately allocated segments (ASan sees
 * any access past one), a reply buffer of a chosen size and split.  The share is a fresh
 * directory on tmpfs made once per process, emptied after every input; a sibling directory
 * with a canary file must stay untouched (no escape from the share).
 *
 * Bounded so it cannot fill the disk or hang: RLIMIT_FSIZE caps every file (EFBIG past
 * it), at most MAX_REQS requests per input, SETLKW is sent as SETLK (two handles of one
 * process would wait for each other forever, as a guest deadlocking itself would), and
 * CAP_MKNOD is dropped so not even a bug could make a device node.
 *
 * Input: u8 flags (bit 0: no automatic INIT), then records: u8 ctl, u16 length, a FUSE
 * request of that length.  ctl bit 0: keep the request's own len field (else it is set to
 * the record length); bits 1-3: segment size 2^(n-1) (0: one segment) for the request and
 * the reply; bits 4-7: reply buffer size class.  Node ids 0x100-0x11f and, at 8-byte
 * aligned argument offsets, values 0x100-0x11f / 0x200-0x21f are replaced by the node ids /
 * file handles this input got back so far (the server's ids carry generations). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <linux/fuse.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#include "fs/fuse.h"
#include "tests/fuzz/fuzz.h"

#define MAX_REQS   64
#define MAX_REQ    (64u << 10)
#define FILE_CAP   (256u << 10)
#define DAX_SIZE   (4u << 20)
#define MAX_SEGS   512
#define NODE_REF   0x100
#define FH_REF     0x200
#define NREF       32

static const size_t reply_class[16] = {
	0, 8, 16, 24, 40, 56, 96, 136, 160, 256, 512, 1024, 4096, 8192, 16384, 36864,
};

static struct fuse_server *srv;
static char base[64], share[96], outside[96], canary[128];
static void *dax;
static bool trace;          /* FUZZ_TRACE=1: one line per request (seed debugging) */

static uint64_t nodes[NREF], fhs[NREF];
static unsigned nnodes, nfhs;

static void cleanup_dirs(void)
{
	char cmd[128];
	if (base[0] && snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base) < (int)sizeof(cmd) &&
	    system(cmd)) {
		/* best effort at exit */
	}
}

static void drop_mknod(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d))
		return;
	d[CAP_MKNOD / 32].effective &= ~(1u << (CAP_MKNOD % 32));
	d[CAP_MKNOD / 32].permitted &= ~(1u << (CAP_MKNOD % 32));
	d[CAP_MKNOD / 32].inheritable &= ~(1u << (CAP_MKNOD % 32));
	if (syscall(SYS_capset, &h, d))
		abort();
}

/* fds of this process open on something inside the share (the share itself, the root
 * inode's anchor, excluded).  Not a plain count: libFuzzer's own threads open files. */
static int share_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t sl = strlen(share);
	char path[64], target[256];
	struct dirent *e;
	int n = 0;
	if (!d)
		abort();
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t k = readlink(path, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		if (!strncmp(target, share, sl) && target[sl] == '/')
			n++;
	}
	closedir(d);
	return n;
}

static void setup(void)
{
	const char *tmp = getenv("FUZZ_TMPDIR");
	struct stat st;
	char err[256];

	if (!tmp || !*tmp)
		tmp = !stat("/dev/shm", &st) && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
	snprintf(base, sizeof(base), "%s/minivmm-fuzz.XXXXXX", tmp);
	if (!mkdtemp(base))
		abort();
	atexit(cleanup_dirs);
	snprintf(share, sizeof(share), "%s/share", base);
	snprintf(outside, sizeof(outside), "%s/outside", base);
	snprintf(canary, sizeof(canary), "%s/canary", outside);
	if (mkdir(share, 0777) || mkdir(outside, 0755) || chmod(share, 0777) || chmod(outside, 0755))
		abort();
	int fd = open(canary, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || write(fd, "canary\n", 7) != 7)
		abort();
	close(fd);

	struct rlimit rl = { FILE_CAP, FILE_CAP };
	if (setrlimit(RLIMIT_FSIZE, &rl))
		abort();
	signal(SIGXFSZ, SIG_IGN);
	drop_mknod();

	dax = fuse_dax_window_create(DAX_SIZE);
	if (!dax)
		abort();
	struct fuse_config cfg = {
		.path = share, .cache = FUSE_CACHE_AUTO, .xattr = true,
		.dax_window = dax, .dax_size = DAX_SIZE,
	};
	srv = fuse_server_create(&cfg, err, sizeof(err));
	if (!srv) {
		fprintf(stderr, "fuse_server_create: %s\n", err);
		abort();
	}
	trace = getenv("FUZZ_TRACE") != NULL;
}

/* Split `buf` into separately allocated segments of `seg` bytes (0: one), at most MAX_SEGS. */
static int split(struct iovec *v, const uint8_t *buf, size_t len, unsigned seg)
{
	int n = 0;
	size_t off = 0;
	do {
		size_t k = len - off;
		if (seg && k > seg && n < MAX_SEGS - 1)
			k = seg;
		v[n].iov_base = malloc(k ? k : 1);
		if (!v[n].iov_base)
			abort();
		v[n].iov_len = k;
		if (buf)
			memcpy(v[n].iov_base, buf + off, k);   /* reply buffers: left as malloc has them */
		off += k;
		n++;
	} while (off < len);
	return n;
}

static size_t gather(const struct iovec *v, int n, uint8_t *dst, size_t len)
{
	size_t done = 0;
	for (int i = 0; i < n && done < len; i++) {
		size_t k = v[i].iov_len < len - done ? v[i].iov_len : len - done;
		memcpy(dst + done, v[i].iov_base, k);
		done += k;
	}
	return done;
}

static void remember(uint64_t *tab, unsigned *n, uint64_t v)
{
	tab[*n % NREF] = v;
	(*n)++;
}

static uint64_t subst(uint64_t v)
{
	if (v >= NODE_REF && v < NODE_REF + NREF && nnodes)
		return nodes[(v - NODE_REF) % (nnodes < NREF ? nnodes : NREF)];
	if (v >= FH_REF && v < FH_REF + NREF && nfhs)
		return fhs[(v - FH_REF) % (nfhs < NREF ? nfhs : NREF)];
	return v;
}

static uint8_t req[MAX_REQ], reply[36864];
static struct iovec in[MAX_SEGS], out[MAX_SEGS];

/* One request; returns the reply length. */
static size_t call(uint8_t ctl, uint8_t *r, size_t len)
{
	struct fuse_in_header h;
	unsigned seg = (ctl >> 1) & 7 ? 1u << (((ctl >> 1) & 7) - 1) : 0;
	size_t room = reply_class[ctl >> 4];

	if (len >= sizeof(h)) {
		memcpy(&h, r, sizeof(h));
		if (!(ctl & 1))
			h.len = (uint32_t)len;
		if (h.opcode == FUSE_SETLKW)
			h.opcode = FUSE_SETLK;
		h.nodeid = subst(h.nodeid);
		memcpy(r, &h, sizeof(h));
		for (size_t off = sizeof(h); off + 8 <= len && off < sizeof(h) + 64; off += 8) {
			uint64_t v;
			memcpy(&v, r + off, 8);
			v = subst(v);
			memcpy(r + off, &v, 8);
		}
	}
	int nin = split(in, r, len, seg);
	int nout = room || (ctl & 0xf0) ? split(out, NULL, room, seg) : 0;
	size_t got = fuse_handle(srv, in, nin, out, nout);
	FZ_CHECK(got <= room, "reply of %zu bytes in a %zu-byte buffer", got, room);
	size_t have = gather(out, nout, reply, got);
	FZ_CHECK(have == got, "gather");
	for (int i = 0; i < nin; i++)
		free(in[i].iov_base);
	for (int i = 0; i < nout; i++)
		free(out[i].iov_base);

	if (got == 0 || len < sizeof(h))
		return got;
	struct fuse_out_header oh;
	FZ_CHECK(got >= sizeof(oh), "reply of %zu bytes: shorter than a header", got);
	memcpy(&oh, reply, sizeof(oh));
	FZ_CHECK(oh.len == got, "reply header says %u bytes, %zu written", oh.len, got);
	FZ_CHECK(oh.error <= 0 && oh.error > -4096, "error %d", oh.error);
	FZ_CHECK(oh.error == 0 || got == sizeof(oh), "error reply with payload");
	if (trace)
		fprintf(stderr, "fuse: op %u node 0x%llx -> error %d, %zu bytes\n", h.opcode,
			(unsigned long long)h.nodeid, oh.error, got);
	const uint8_t *pl = reply + sizeof(oh);
	size_t pn = got - sizeof(oh);
	if (oh.error)
		return got;
	switch (h.opcode) {
	case FUSE_LOOKUP: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_SYMLINK: case FUSE_LINK:
	case FUSE_CREATE:
		FZ_CHECK(pn >= sizeof(struct fuse_entry_out), "entry reply of %zu bytes", pn);
		struct fuse_entry_out e;
		memcpy(&e, pl, sizeof(e));
		if (e.nodeid)
			remember(nodes, &nnodes, e.nodeid);
		if (h.opcode == FUSE_CREATE) {
			struct fuse_open_out o;
			FZ_CHECK(pn >= sizeof(e) + sizeof(o), "create reply of %zu bytes", pn);
			memcpy(&o, pl + sizeof(e), sizeof(o));
			remember(fhs, &nfhs, o.fh);
		}
		break;
	case FUSE_OPEN: case FUSE_OPENDIR: {
		struct fuse_open_out o;
		FZ_CHECK(pn >= sizeof(o), "open reply of %zu bytes", pn);
		memcpy(&o, pl, sizeof(o));
		remember(fhs, &nfhs, o.fh);
		break;
	}
	}
	return got;
}

static void simple(uint32_t op, const void *arg, size_t arglen)
{
	struct fuse_in_header h = { .len = (uint32_t)(sizeof(h) + arglen), .opcode = op,
				    .unique = 1, .nodeid = FUSE_ROOT_ID };
	memcpy(req, &h, sizeof(h));
	if (arglen)
		memcpy(req + sizeof(h), arg, arglen);
	call(0x90, req, sizeof(h) + arglen);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0;
	if (remove(path) && errno != ENOENT) {
		/* a directory the guest made unwritable: make it writable and retry */
		chmod(path, 0700);
		return remove(path) && errno != ENOENT ? -1 : 0;
	}
	return 0;
}

/* Back to an empty share owned by root, mode 0777, no xattrs. */
static void reset_share(void)
{
	char names[4096];
	/* Directories the guest made unreadable or unsearchable would stop the walk. */
	for (int pass = 0; pass < 2; pass++) {
		if (!nftw(share, rm_one, 16, FTW_DEPTH | FTW_PHYS))
			break;
		char cmd[160];
		snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s'", share);
		if (system(cmd)) {
			/* the second pass reports */
		}
	}
	if (chown(share, 0, 0) || chmod(share, 0777))
		abort();
	ssize_t n = listxattr(share, names, sizeof(names));
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1)
		removexattr(share, names + i);
}

static void check_outside(void)
{
	struct stat st;
	char buf[16];
	DIR *d = opendir(base);
	struct dirent *e;
	int n = 0;

	FZ_CHECK(d, "the share's parent is gone");
	while ((e = readdir(d)))
		n++;
	closedir(d);
	FZ_CHECK(n == 4, "%d entries next to the share (., .., share, outside expected)", n);
	FZ_CHECK(!stat(outside, &st) && st.st_nlink == 2 && (st.st_mode & 07777) == 0755,
		 "the directory next to the share changed");
	int fd = open(canary, O_RDONLY);
	FZ_CHECK(fd >= 0, "canary gone");
	ssize_t k = read(fd, buf, sizeof(buf));
	close(fd);
	FZ_CHECK(k == 7 && !memcmp(buf, "canary\n", 7), "canary changed");
	FZ_CHECK(!stat(canary, &st) && st.st_nlink == 1 && (st.st_mode & 07777) == 0644 &&
		 st.st_uid == 0, "canary's inode changed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };

	if (size > 256u << 10)
		return 0;
	if (!srv)
		setup();
	nnodes = nfhs = 0;
	uint8_t flags = fz_u8(&f);
	if (!(flags & 1)) {
		struct fuse_init_in init = { .major = 7, .minor = 38, .max_readahead = 1 << 20,
					     .flags = 0xffffffff, .flags2 = 0xffffffff };
		simple(FUSE_INIT, &init, sizeof(init));
	}
	for (int n = 0; n < MAX_REQS && !fz_empty(&f); n++) {
		uint8_t ctl = fz_u8(&f);
		size_t len = fz_u16(&f);
		if (len > f.n)
			len = f.n;
		fz_bytes(&f, req, len);
		call(ctl, req, len);
	}
	/* INIT first in case the input left the server uninitialised (DESTROY would be
	 * refused); an initialised one answers EPROTO. */
	struct fuse_init_in init = { .major = 7, .minor = 38 };
	simple(FUSE_INIT, &init, sizeof(init));
	simple(FUSE_DESTROY, NULL, 0);
	/* DESTROY let go of every inode but the root and every handle: their fds too. */
	int fds = share_fds();
	FZ_CHECK(fds == 0, "%d fds inside the share still open after DESTROY", fds);
	check_outside();
	reset_share();
	return 0;
}
