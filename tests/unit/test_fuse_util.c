/* The FUSE test harness (see fuse_util.h).  No tests here, only what they share. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

struct fx fx;

/* snprintf that must not truncate (checking the result also quiets -Wformat-truncation). */
#define FX_FMT(buf, ...) \
	cr_assert_lt((size_t)snprintf(buf, sizeof(buf), __VA_ARGS__), sizeof(buf), "path too long")

/* ---- directories --------------------------------------------------------------------- */

static const char *fx_base(void)
{
	struct stat st;
	const char *env = getenv("FUSE_TEST_DIR");

	if (env && *env)
		return env;
	/* Other jobs clean /tmp; build/ of the repository is ours. */
	if (!stat("build", &st) && S_ISDIR(st.st_mode))
		return "build";
	return "/work/main/build";
}

static uint64_t fx_dax_next;    /* window size for the next fx_start */
static fuse_complete_fn fx_complete_next;       /* and its completion callback */
static void *fx_opaque_next;

void fx_start(bool ro, enum fuse_cache cache, bool xattr, bool init)
{
	char base[PATH_MAX], tmpl[600];
	char err[256] = "";
	uint64_t dax_size = fx_dax_next;
	struct fuse_config cfg;
	int fd;

	memset(&fx, 0, sizeof(fx));
	cr_assert_not_null(realpath(fx_base(), base), "no base directory for the share");
	FX_FMT(tmpl, "%s/fusetest.XXXXXX", base);
	cr_assert_not_null(mkdtemp(tmpl));
	FX_FMT(fx.dir, "%s", tmpl);
	chmod(fx.dir, 0755);
	FX_FMT(fx.share, "%s/share", fx.dir);
	FX_FMT(fx.outside, "%s/outside", fx.dir);
	cr_assert_eq(mkdir(fx.share, 0777), 0);
	cr_assert_eq(chmod(fx.share, 0777), 0);    /* other test uids create here too */
	cr_assert_eq(mkdir(fx.outside, 0755), 0);
	FX_FMT(tmpl, "%s/secret", fx.outside);
	fd = open(tmpl, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "secret\n", 7), 7);
	close(fd);

	memset(&cfg, 0, sizeof(cfg));
	cfg.path = fx.share;
	cfg.readonly = ro;
	cfg.cache = cache;
	cfg.xattr = xattr;
	fx_dax_next = 0;
	cfg.complete = fx_complete_next;
	cfg.complete_opaque = fx_opaque_next;
	fx_complete_next = NULL;
	fx_opaque_next = NULL;
	if (dax_size) {
		fx.dax = fuse_dax_window_create(dax_size);
		cr_assert_not_null(fx.dax, "cannot reserve a DAX window");
		fx.dax_size = dax_size;
		cfg.dax_window = fx.dax;
		cfg.dax_size = dax_size;
	}
	fx.s = fuse_server_create(&cfg, err, sizeof(err));
	cr_assert_not_null(fx.s, "fuse_server_create: %s", err);
	if (init) {
		struct fuse_init_out o;
		cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, &o), 0);
		fx.init_flags = o.flags;
		fx.map_alignment = o.map_alignment;
	}
}

void fx_setup(void) { fx_start(false, FUSE_CACHE_AUTO, true, true); }
void fx_start_dax(bool ro, uint64_t size)
{
	fx_dax_next = size;
	fx_start(ro, FUSE_CACHE_AUTO, true, true);
}
void fx_setup_async(fuse_complete_fn fn, void *opaque)
{
	fx_complete_next = fn;
	fx_opaque_next = opaque;
	fx_start(false, FUSE_CACHE_AUTO, true, true);
}
void fx_setup_ro(void) { fx_start(true, FUSE_CACHE_AUTO, true, true); }
void fx_setup_noinit(void) { fx_start(false, FUSE_CACHE_AUTO, true, false); }

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void fx_teardown(void)
{
	if (fx.s)
		fuse_server_destroy(fx.s);
	fx.s = NULL;
	fuse_dax_window_destroy(fx.dax, fx.dax_size);
	fx.dax = NULL;
	if (fx.dir[0])
		nftw(fx.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fx_path(const char *rel)
{
	static char buf[8][1200];
	static unsigned n;
	char *p = buf[n++ % 8];

	cr_assert_lt((size_t)snprintf(p, sizeof(buf[0]), "%s/%s", fx.share, rel), sizeof(buf[0]));
	return p;
}

void fx_write_file(const char *rel, const void *data, size_t len)
{
	int fd = open(fx_path(rel), O_CREAT | O_WRONLY | O_TRUNC, 0644);

	cr_assert_geq(fd, 0, "create %s: %s", rel, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

int fx_lock_waiters(const char *rel)
{
	char line[256], ino[32];
	struct stat st;
	int n = 0;
	FILE *f;

	cr_assert_eq(stat(fx_path(rel), &st), 0);
	snprintf(ino, sizeof(ino), ":%llu ", (unsigned long long)st.st_ino);
	f = fopen("/proc/locks", "re");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "->") && strstr(line, ino))
			n++;
	fclose(f);
	return n;
}

/* ---- chains -------------------------------------------------------------------------- */

/* Segment lengths for each pattern; the last segment takes whatever remains.  Pattern 3
 * has an empty segment and cuts the header one byte short. */
static const size_t split_in[4][12] = {
	{ 0 },
	{ 7, 10, 24, 23, 36, 0 },
	{ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0 },
	{ 39, 1, (size_t)-1, 1, 1, 5, 13, 0 },
};
static const size_t split_out[4][8] = {
	{ 0 },
	{ 5, 11, 3, 100, 0 },
	{ 16, 7, 7, 7, 7, 0 },
	{ 1, 15, (size_t)-1, 9, 0 },
};

/* Copy `buf` into separately allocated segments; returns how many. */
static int chain_make(const size_t *pat, const uint8_t *buf, size_t len, struct iovec *iov,
		      int max)
{
	size_t pos = 0;
	int n = 0;

	for (int i = 0; pat[i] && n < max - 1 && pos < len; i++) {
		size_t k = pat[i] == (size_t)-1 ? 0 : pat[i];
		if (k > len - pos)
			k = len - pos;
		iov[n].iov_base = malloc(k ? k : 1);
		iov[n].iov_len = k;
		if (buf)
			memcpy(iov[n].iov_base, buf + pos, k);
		pos += k;
		n++;
	}
	if (pos < len || n == 0) {
		iov[n].iov_base = malloc(len - pos ? len - pos : 1);
		iov[n].iov_len = len - pos;
		if (buf)
			memcpy(iov[n].iov_base, buf + pos, len - pos);
		n++;
	}
	return n;
}

static void chain_free(struct iovec *iov, int n, uint8_t *gather)
{
	size_t pos = 0;

	for (int i = 0; i < n; i++) {
		if (gather)
			memcpy(gather + pos, iov[i].iov_base, iov[i].iov_len);
		pos += iov[i].iov_len;
		free(iov[i].iov_base);
	}
}

size_t fx_raw(const void *req, size_t reqlen, void *out, size_t outsz)
{
	struct iovec in[16], ov[16];
	unsigned p = fx.split ? fx.split - 1 : fx.calls % 4;
	int nin, nout;
	size_t n;

	fx.calls++;
	nin = chain_make(split_in[p], req, reqlen, in, 16);
	nout = outsz ? chain_make(split_out[p], NULL, outsz, ov, 16) : 0;
	n = fuse_handle(fx.s, in, nin, ov, nout);
	chain_free(in, nin, NULL);
	chain_free(ov, nout, out);
	cr_assert_leq(n, outsz, "reply of %zu bytes overran a %zu-byte buffer", n, outsz);
	return n;
}

void fx_hdr(struct fuse_in_header *h, uint32_t op, uint64_t nodeid, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->len = len;
	h->opcode = op;
	h->unique = ++fx.unique;
	h->nodeid = nodeid;
	h->uid = fx.uid;
	h->gid = fx.gid;
	h->pid = 4242;
}

int fx_call(uint32_t op, uint64_t nodeid, const void *arg, size_t argsz, const void *t1,
	    size_t t1sz, const void *t2, size_t t2sz, void *reply, size_t replysz, size_t *got)
{
	size_t len = sizeof(struct fuse_in_header) + argsz + t1sz + t2sz;
	size_t outsz = sizeof(struct fuse_out_header) + replysz;
	struct fuse_out_header oh;
	struct fuse_in_header h;
	uint8_t *req = malloc(len), *out = malloc(outsz), *p;
	size_t n;

	cr_assert(req && out);
	fx_hdr(&h, op, nodeid, (uint32_t)len);
	memcpy(req, &h, sizeof(h));
	p = req + sizeof(h);
	if (argsz)
		memcpy(p, arg, argsz);
	p += argsz;
	if (t1sz)
		memcpy(p, t1, t1sz);
	p += t1sz;
	if (t2sz)
		memcpy(p, t2, t2sz);
	n = fx_raw(req, len, out, outsz);
	free(req);
	if (got)
		*got = 0;
	if (n == 0) {
		free(out);
		return FX_NOREPLY;
	}
	cr_assert_geq(n, sizeof(oh), "short reply (%zu bytes) to opcode %u", n, op);
	memcpy(&oh, out, sizeof(oh));
	cr_assert_eq(oh.len, n, "reply len %u but %zu bytes written", oh.len, n);
	cr_assert_eq(oh.unique, h.unique, "reply to the wrong request");
	cr_assert(oh.error <= 0 && oh.error > -4096, "bad error %d", oh.error);
	if (oh.error) {
		cr_assert_eq(n, sizeof(oh), "error replies carry no payload");
		free(out);
		return oh.error;
	}
	if (reply && n > sizeof(oh))
		memcpy(reply, out + sizeof(oh), n - sizeof(oh));
	if (got)
		*got = n - sizeof(oh);
	free(out);
	return 0;
}

/* ---- one helper per op --------------------------------------------------------------- */

int fx_init(uint32_t major, uint32_t minor, uint32_t flags, struct fuse_init_out *o)
{
	struct fuse_init_in in = { .major = major, .minor = minor, .max_readahead = 131072,
				   .flags = flags };
	struct fuse_init_out tmp;

	memset(o ? o : &tmp, 0, sizeof(tmp));
	return fx_call(FUSE_INIT, 0, &in, sizeof(in), NULL, 0, NULL, 0, o ? o : &tmp,
		       sizeof(tmp), NULL);
}

int fx_lookup(uint64_t parent, const char *name, struct fuse_entry_out *e)
{
	struct fuse_entry_out tmp;

	return fx_call(FUSE_LOOKUP, parent, NULL, 0, name, strlen(name) + 1, NULL, 0,
		       e ? e : &tmp, sizeof(tmp), NULL);
}

uint64_t fx_node(const char *rel)
{
	char buf[1024], *save = NULL, *c;
	uint64_t node = FUSE_ROOT_ID;
	struct fuse_entry_out e;

	FX_FMT(buf, "%s", rel);
	for (c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int ret = fx_lookup(node, c, &e);
		cr_assert_eq(ret, 0, "lookup %s in %s: %s", c, rel, strerror(-ret));
		node = e.nodeid;
	}
	return node;
}

int fx_forget(uint64_t nodeid, uint64_t n)
{
	struct fuse_forget_in in = { .nlookup = n };

	return fx_call(FUSE_FORGET, nodeid, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

int fx_getattr(uint64_t nodeid, struct fuse_attr_out *o)
{
	struct fuse_getattr_in in = { 0 };
	struct fuse_attr_out tmp;

	return fx_call(FUSE_GETATTR, nodeid, &in, sizeof(in), NULL, 0, NULL, 0, o ? o : &tmp,
		       sizeof(tmp), NULL);
}

int fx_setattr(uint64_t nodeid, const struct fuse_setattr_in *in, struct fuse_attr_out *o)
{
	struct fuse_attr_out tmp;

	return fx_call(FUSE_SETATTR, nodeid, in, sizeof(*in), NULL, 0, NULL, 0, o ? o : &tmp,
		       sizeof(tmp), NULL);
}

int fx_mkdir(uint64_t parent, const char *name, uint32_t mode, struct fuse_entry_out *e)
{
	struct fuse_mkdir_in in = { .mode = mode, .umask = 0 };
	struct fuse_entry_out tmp;

	return fx_call(FUSE_MKDIR, parent, &in, sizeof(in), name, strlen(name) + 1, NULL, 0,
		       e ? e : &tmp, sizeof(tmp), NULL);
}

int fx_mknod(uint64_t parent, const char *name, uint32_t mode, uint32_t rdev,
	     struct fuse_entry_out *e)
{
	struct fuse_mknod_in in = { .mode = mode, .rdev = rdev, .umask = 0 };
	struct fuse_entry_out tmp;

	return fx_call(FUSE_MKNOD, parent, &in, sizeof(in), name, strlen(name) + 1, NULL, 0,
		       e ? e : &tmp, sizeof(tmp), NULL);
}

int fx_symlink(uint64_t parent, const char *name, const char *target, struct fuse_entry_out *e)
{
	struct fuse_entry_out tmp;

	return fx_call(FUSE_SYMLINK, parent, NULL, 0, name, strlen(name) + 1, target,
		       strlen(target) + 1, e ? e : &tmp, sizeof(tmp), NULL);
}

int fx_link(uint64_t oldnode, uint64_t newparent, const char *name, struct fuse_entry_out *e)
{
	struct fuse_link_in in = { .oldnodeid = oldnode };
	struct fuse_entry_out tmp;

	return fx_call(FUSE_LINK, newparent, &in, sizeof(in), name, strlen(name) + 1, NULL, 0,
		       e ? e : &tmp, sizeof(tmp), NULL);
}

int fx_readlink(uint64_t nodeid, char *buf, size_t size)
{
	size_t got;
	int ret = fx_call(FUSE_READLINK, nodeid, NULL, 0, NULL, 0, NULL, 0, buf, size, &got);

	return ret ? ret : (int)got;
}

int fx_unlink(uint64_t parent, const char *name)
{
	return fx_call(FUSE_UNLINK, parent, NULL, 0, name, strlen(name) + 1, NULL, 0, NULL, 0,
		       NULL);
}

int fx_rmdir(uint64_t parent, const char *name)
{
	return fx_call(FUSE_RMDIR, parent, NULL, 0, name, strlen(name) + 1, NULL, 0, NULL, 0,
		       NULL);
}

int fx_rename(uint64_t olddir, const char *oldname, uint64_t newdir, const char *newname)
{
	struct fuse_rename_in in = { .newdir = newdir };

	return fx_call(FUSE_RENAME, olddir, &in, sizeof(in), oldname, strlen(oldname) + 1,
		       newname, strlen(newname) + 1, NULL, 0, NULL);
}

int fx_rename2(uint64_t olddir, const char *oldname, uint64_t newdir, const char *newname,
	       uint32_t flags)
{
	struct fuse_rename2_in in = { .newdir = newdir, .flags = flags };

	return fx_call(FUSE_RENAME2, olddir, &in, sizeof(in), oldname, strlen(oldname) + 1,
		       newname, strlen(newname) + 1, NULL, 0, NULL);
}

int fx_create(uint64_t parent, const char *name, uint32_t flags, uint32_t mode,
	      struct fuse_entry_out *e, uint64_t *fh)
{
	struct fuse_create_in in = { .flags = flags, .mode = mode, .umask = 0 };
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} out;
	int ret;

	memset(&out, 0, sizeof(out));
	ret = fx_call(FUSE_CREATE, parent, &in, sizeof(in), name, strlen(name) + 1, NULL, 0,
		      &out, sizeof(out), NULL);
	if (e)
		*e = out.e;
	if (fh)
		*fh = out.o.fh;
	return ret;
}

int fx_open(uint64_t nodeid, uint32_t flags, uint64_t *fh)
{
	struct fuse_open_in in = { .flags = flags };
	struct fuse_open_out o = { 0 };
	int ret = fx_call(FUSE_OPEN, nodeid, &in, sizeof(in), NULL, 0, NULL, 0, &o, sizeof(o),
			  NULL);

	if (fh)
		*fh = o.fh;
	return ret;
}

int fx_opendir(uint64_t nodeid, uint64_t *fh)
{
	struct fuse_open_in in = { .flags = 0 };
	struct fuse_open_out o = { 0 };
	int ret = fx_call(FUSE_OPENDIR, nodeid, &in, sizeof(in), NULL, 0, NULL, 0, &o, sizeof(o),
			  NULL);

	if (fh)
		*fh = o.fh;
	return ret;
}

int fx_read(uint64_t fh, uint64_t off, uint32_t size, void *buf, size_t *got)
{
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };

	return fx_call(FUSE_READ, 2, &in, sizeof(in), NULL, 0, NULL, 0, buf, size, got);
}

int fx_write(uint64_t fh, uint64_t off, const void *data, uint32_t size, uint32_t *written)
{
	struct fuse_write_in in = { .fh = fh, .offset = off, .size = size };
	struct fuse_write_out o = { 0 };
	int ret = fx_call(FUSE_WRITE, 2, &in, sizeof(in), data, size, NULL, 0, &o, sizeof(o),
			  NULL);

	if (written)
		*written = o.size;
	return ret;
}

int fx_release(uint64_t fh)
{
	struct fuse_release_in in = { .fh = fh };

	return fx_call(FUSE_RELEASE, 2, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

int fx_releasedir(uint64_t fh)
{
	struct fuse_release_in in = { .fh = fh };

	return fx_call(FUSE_RELEASEDIR, 2, &in, sizeof(in), NULL, 0, NULL, 0, NULL, 0, NULL);
}

int fx_readdir(uint32_t op, uint64_t fh, uint64_t off, uint32_t size, void *buf, size_t *got)
{
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };

	return fx_call(op, 2, &in, sizeof(in), NULL, 0, NULL, 0, buf, size, got);
}

const struct fuse_dirent *fx_dirent_next(const void *buf, size_t len, size_t *pos, bool plus,
					 const struct fuse_entry_out **eo)
{
	const uint8_t *p = (const uint8_t *)buf + *pos;
	const struct fuse_dirent *d;
	size_t hdr = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET, size;

	if (*pos >= len)
		return NULL;
	cr_assert_leq(*pos + hdr, len, "truncated dirent");
	d = (const struct fuse_dirent *)(p + (plus ? sizeof(struct fuse_entry_out) : 0));
	size = FUSE_DIRENT_ALIGN(hdr + d->namelen);
	cr_assert_leq(*pos + size, len, "dirent overruns the reply");
	if (eo)
		*eo = plus ? (const struct fuse_entry_out *)p : NULL;
	*pos += size;
	return d;
}
