/* Confinement of the FUSE server: host symlinks (to "/", out of the share, as a parent)
 * are objects handed to the guest, never paths we follow; directories swapped under us
 * do not redirect creation; a read-only share refuses every modifying op; and several
 * threads can drive one server at once. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/fuse_util.h"

TestSuite(fuse_symlink, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_ro, .init = fx_setup_ro, .fini = fx_teardown);
TestSuite(fuse_threads, .init = fx_setup, .fini = fx_teardown);

static const char *outside(const char *rel)
{
	static char buf[4][1200];
	static unsigned n;
	char *p = buf[n++ % 4];

	cr_assert_lt((size_t)snprintf(p, sizeof(buf[0]), "%s/%s", fx.outside, rel), sizeof(buf[0]));
	return p;
}

static void secret_intact(void)
{
	char buf[16] = { 0 };
	struct stat st;
	int fd = open(outside("secret"), O_RDONLY);

	cr_assert_geq(fd, 0, "the outside file is gone");
	cr_assert_eq(read(fd, buf, sizeof(buf)), 7);
	close(fd);
	cr_assert_str_eq(buf, "secret\n", "the outside file changed");
	cr_assert_eq(stat(outside("secret"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0644);
	cr_assert_eq(st.st_uid, 0);
	cr_assert_eq(stat(outside("new"), &st), -1, "something was created outside");
}

/* Everything a guest could try through a symlink's node. */
static void cannot_pass(uint64_t l)
{
	struct fuse_setattr_in sa;
	struct fuse_attr_out ao;
	uint64_t fh;

	cr_assert_eq(fx_lookup(l, "secret", NULL), -ENOTDIR);
	cr_assert_eq(fx_lookup(l, "..", NULL), -ENOTDIR);
	cr_assert_eq(fx_lookup(l, ".", NULL), -ENOTDIR);
	cr_assert_eq(fx_create(l, "new", O_RDWR, 0644, NULL, &fh), -ENOTDIR);
	cr_assert_eq(fx_mkdir(l, "new", 0755, NULL), -ENOTDIR);
	cr_assert_eq(fx_mknod(l, "new", S_IFREG | 0644, 0, NULL), -ENOTDIR);
	cr_assert_eq(fx_symlink(l, "new", "x", NULL), -ENOTDIR);
	cr_assert_neq(fx_unlink(l, "secret"), 0);
	cr_assert_neq(fx_rename(l, "secret", FUSE_ROOT_ID, "stolen"), 0);
	cr_assert_eq(fx_open(l, O_RDONLY, &fh), -ELOOP);
	cr_assert_eq(fx_open(l, O_RDWR | O_TRUNC, &fh), -ELOOP);
	cr_assert_eq(fx_opendir(l, &fh), -ENOTDIR);
	memset(&sa, 0, sizeof(sa));
	sa.valid = FATTR_MODE;
	sa.mode = 0777;
	cr_assert_eq(fx_setattr(l, &sa, &ao), -EOPNOTSUPP);
	sa.valid = FATTR_SIZE;
	sa.size = 0;
	cr_assert_eq(fx_setattr(l, &sa, &ao), -EINVAL);
	if (geteuid() == 0) {
		/* chown of the link itself (lchown), not what it points at */
		sa.valid = FATTR_UID;
		sa.uid = 4321;
		cr_assert_eq(fx_setattr(l, &sa, &ao), 0);
		cr_assert_eq(ao.attr.uid, 4321);
		cr_assert(S_ISLNK(ao.attr.mode));
	}
}

Test(fuse_symlink, to_the_host_root)
{
	struct fuse_entry_out e;
	char buf[64];

	cr_assert_eq(symlink("/", fx_path("rootlink")), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "rootlink", &e), 0);
	cr_assert(S_ISLNK(e.attr.mode), "LOOKUP followed the link");
	cr_assert_eq(fx_readlink(e.nodeid, buf, sizeof(buf)), 1);
	cr_assert_eq(buf[0], '/');
	cr_assert_eq(fx_lookup(e.nodeid, "etc", NULL), -ENOTDIR);
	cannot_pass(e.nodeid);
	secret_intact();
}

Test(fuse_symlink, to_a_directory_outside)
{
	struct fuse_entry_out abs_, rel;
	char buf[1200];
	int n;

	cr_assert_eq(symlink(fx.outside, fx_path("abs")), 0);
	cr_assert_eq(symlink("../outside", fx_path("rel")), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "abs", &abs_), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "rel", &rel), 0);
	cr_assert(S_ISLNK(abs_.attr.mode) && S_ISLNK(rel.attr.mode));
	n = fx_readlink(abs_.nodeid, buf, sizeof(buf));
	cr_assert_eq(n, (int)strlen(fx.outside));
	cr_assert_eq(memcmp(buf, fx.outside, (size_t)n), 0, "READLINK returns the target text");
	cr_assert_eq(fx_readlink(rel.nodeid, buf, sizeof(buf)), 10);
	cr_assert_eq(memcmp(buf, "../outside", 10), 0);
	cannot_pass(abs_.nodeid);
	cannot_pass(rel.nodeid);
	secret_intact();
}

/* A symlink to a file outside: OPEN/CREATE/SETATTR never reach the file. */
Test(fuse_symlink, to_a_file_outside)
{
	struct fuse_entry_out e;
	uint64_t fh;

	cr_assert_eq(symlink(outside("secret"), fx_path("evil")), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "evil", &e), 0);
	cr_assert(S_ISLNK(e.attr.mode));
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "evil", O_RDWR | O_TRUNC, 0644, NULL, &fh), -ELOOP);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "evil", O_WRONLY, 0644, NULL, &fh), -ELOOP);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "evil", S_IFREG | 0644, 0, NULL), -EEXIST);
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "evil", 0755, NULL), -EEXIST);
	cannot_pass(e.nodeid);
	/* A hard link of the symlink is another symlink, not a link to the secret. */
	cr_assert_eq(fx_link(e.nodeid, FUSE_ROOT_ID, "evil2", NULL), 0);
	struct stat st;
	cr_assert_eq(lstat(fx_path("evil2"), &st), 0);
	cr_assert(S_ISLNK(st.st_mode));
	/* Removing or renaming the link leaves the target alone. */
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, "evil", FUSE_ROOT_ID, "moved"), 0);
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, "moved"), 0);
	secret_intact();
}

/* share/dirlink -> share/real: a symlinked parent is a symlink, not a directory. */
Test(fuse_symlink, symlinked_parent_directory)
{
	struct fuse_entry_out e, real;

	mkdir(fx_path("real"), 0755);
	fx_write_file("real/file", "x", 1);
	cr_assert_eq(symlink("real", fx_path("dirlink")), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "dirlink", &e), 0);
	cr_assert(S_ISLNK(e.attr.mode));
	cr_assert_eq(fx_lookup(e.nodeid, "file", NULL), -ENOTDIR);
	cr_assert_eq(fx_create(e.nodeid, "new", O_RDWR, 0644, NULL, NULL), -ENOTDIR);
	cr_assert_eq(access(fx_path("real/new"), F_OK), -1);
	/* The guest resolves it itself, to the real directory. */
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "real", &real), 0);
	cr_assert_eq(fx_lookup(real.nodeid, "file", NULL), 0);
}

/* The host swaps a looked-up directory for a symlink to the outside: the node still is
 * the directory we hold, wherever it went, so nothing lands outside. */
Test(fuse_symlink, directory_swapped_for_a_symlink)
{
	struct fuse_entry_out d, f;
	uint64_t fh;

	mkdir(fx_path("d"), 0755);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "d", &d), 0);
	cr_assert_eq(rename(fx_path("d"), fx_path("d.old")), 0);
	cr_assert_eq(symlink(fx.outside, fx_path("d")), 0);
	cr_assert_eq(fx_create(d.nodeid, "new", O_RDWR, 0644, &f, &fh), 0);
	cr_assert_eq(fx_mkdir(d.nodeid, "newdir", 0755, NULL), 0);
	cr_assert_eq(access(fx_path("d.old/new"), F_OK), 0);
	cr_assert_eq(access(fx_path("d.old/newdir"), F_OK), 0);
	cr_assert_eq(access(outside("newdir"), F_OK), -1);
	cr_assert_eq(fx_lookup(d.nodeid, "secret", NULL), -ENOENT);
	secret_intact();
}

/* A dangling link and links to special files: no blocking, no following. */
Test(fuse_symlink, dangling_and_special_targets)
{
	struct fuse_entry_out e;
	uint64_t fh;

	alarm(10);
	cr_assert_eq(mkfifo(fx_path("fifo"), 0644), 0);
	cr_assert_eq(symlink("fifo", fx_path("tofifo")), 0);
	cr_assert_eq(symlink("/dev/zero", fx_path("tozero")), 0);
	cr_assert_eq(symlink("nowhere", fx_path("dangling")), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "dangling", &e), 0);
	cr_assert(S_ISLNK(e.attr.mode));
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "dangling", O_RDWR, 0644, NULL, &fh), -ELOOP);
	cr_assert_eq(access(fx_path("nowhere"), F_OK), -1, "CREATE followed a dangling link");
	cr_assert_eq(fx_open(fx_node("tofifo"), O_RDONLY, &fh), -ELOOP);
	cr_assert_eq(fx_open(fx_node("tozero"), O_RDONLY, &fh), -ELOOP);
}

/* ---- read-only share ------------------------------------------------------------------- */

Test(fuse_ro, every_modifying_op_erofs)
{
	struct fuse_setattr_in sa = { .valid = FATTR_MODE, .mode = 0777 };
	struct fuse_fallocate_in fa = { .length = 10 };
	struct fuse_copy_file_range_in cp = { .len = 1 };
	struct fuse_setxattr_in sx = { .size = 1 };
	struct fuse_access_in ac = { .mask = W_OK };
	struct fuse_attr_out ao;
	uint64_t f, d, fh;
	char buf[8];
	size_t got;

	fx_write_file("f", "data", 4);
	mkdir(fx_path("d"), 0755);
	f = fx_node("f");
	d = fx_node("d");
	cr_assert_eq(fx_setattr(f, &sa, &ao), -EROFS);
	cr_assert_eq(fx_symlink(FUSE_ROOT_ID, "l", "t", NULL), -EROFS);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "n", S_IFREG | 0644, 0, NULL), -EROFS);
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "m", 0755, NULL), -EROFS);
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, "f"), -EROFS);
	cr_assert_eq(fx_rmdir(FUSE_ROOT_ID, "d"), -EROFS);
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, "f", d, "g"), -EROFS);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "f", d, "g", RENAME_NOREPLACE), -EROFS);
	cr_assert_eq(fx_link(f, d, "h", NULL), -EROFS);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "c", O_RDWR, 0644, NULL, &fh), -EROFS);
	cr_assert_eq(fx_open(f, O_WRONLY, &fh), -EROFS);
	cr_assert_eq(fx_open(f, O_RDWR, &fh), -EROFS);
	cr_assert_eq(fx_open(f, O_RDONLY | O_TRUNC, &fh), -EROFS);
	cr_assert_eq(fx_call(FUSE_SETXATTR, f, &sx, 8, "user.a", 7, "v", 1, NULL, 0, NULL), -EROFS);
	cr_assert_eq(fx_call(FUSE_REMOVEXATTR, f, NULL, 0, "user.a", 7, NULL, 0, NULL, 0, NULL),
		     -EROFS);
	cr_assert_eq(fx_call(FUSE_ACCESS, f, &ac, sizeof(ac), NULL, 0, NULL, 0, NULL, 0, NULL),
		     -EROFS);
	/* Reading is fine, and a read-only handle still cannot write. */
	cr_assert_eq(fx_open(f, O_RDONLY, &fh), 0);
	cr_assert_eq(fx_read(fh, 0, 4, buf, &got), 0);
	cr_assert_eq(got, 4);
	cr_assert_eq(fx_write(fh, 0, "XXXX", 4, NULL), -EROFS);
	fa.fh = fh;
	cr_assert_eq(fx_call(FUSE_FALLOCATE, f, &fa, sizeof(fa), NULL, 0, NULL, 0, NULL, 0, NULL),
		     -EROFS);
	cp.fh_in = cp.fh_out = fh;
	cr_assert_eq(fx_call(FUSE_COPY_FILE_RANGE, f, &cp, sizeof(cp), NULL, 0, NULL, 0, buf, 8,
			     NULL), -EROFS);
	cr_assert_eq(fx_release(fh), 0);
	/* Nothing changed on the host. */
	cr_assert_eq(access(fx_path("f"), F_OK), 0);
	cr_assert_eq(access(fx_path("d"), F_OK), 0);
	cr_assert_eq(access(fx_path("l"), F_OK), -1);
	cr_assert_eq(access(fx_path("c"), F_OK), -1);
	struct stat st;
	cr_assert_eq(stat(fx_path("f"), &st), 0);
	cr_assert_eq(st.st_size, 4);
	cr_assert_eq(st.st_mode & 0777, 0644);
	/* The reading side works. */
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &fh), 0);
	cr_assert_eq(fx_readdir(FUSE_READDIRPLUS, fh, 0, sizeof(buf), buf, &got), 0);
	cr_assert_eq(fx_getattr(f, NULL), 0);
}

/* ---- threads --------------------------------------------------------------------------- */

#define THREADS 4
#define FILES 8

struct worker {
	pthread_t t;
	uint64_t unique;
	int id, ops, errors, last_error, last_op;
};

/* One request without the (single-threaded) harness. */
static int w_call(struct worker *w, uint32_t op, uint64_t nodeid, const void *arg, size_t argsz,
		  const char *name, void *reply, size_t replysz)
{
	uint8_t req[512], out[16 + 8192];
	struct fuse_in_header h = { .opcode = op, .nodeid = nodeid,
				    .unique = ((uint64_t)w->id << 48) | ++w->unique };
	size_t nlen = name ? strlen(name) + 1 : 0;
	struct iovec in = { req, sizeof(h) + argsz + nlen }, ov = { out, 16 + replysz };
	struct fuse_out_header oh;
	size_t n;

	h.len = (uint32_t)in.iov_len;
	memcpy(req, &h, sizeof(h));
	if (argsz)
		memcpy(req + sizeof(h), arg, argsz);
	if (nlen)
		memcpy(req + sizeof(h) + argsz, name, nlen);
	n = fuse_handle(fx.s, &in, 1, &ov, 1);
	w->ops++;
	if (n == 0)
		return 1;
	memcpy(&oh, out, sizeof(oh));
	if (oh.len != n || oh.unique != h.unique || (oh.error && n != sizeof(oh)))
		return -1000;   /* a malformed reply */
	if (!oh.error && reply)
		memcpy(reply, out + 16, n - 16);
	return oh.error;
}

static void *w_main(void *arg)
{
	struct worker *w = arg;
	char name[16], buf[4096], want[4096];

	for (int i = 0; i < 1500; i++) {
		int k = (i * 7 + w->id) % FILES, ret;
		struct fuse_entry_out e;
		struct fuse_open_in oi = { .flags = O_RDONLY };
		struct fuse_open_out oo;
		struct fuse_read_in ri = { .size = sizeof(buf) };
		struct fuse_release_in rl;
		struct fuse_forget_in fo = { .nlookup = 1 };
		struct fuse_getattr_in gi = { 0 };
		struct fuse_attr_out ao;

		snprintf(name, sizeof(name), "f%d", k);
		memset(want, 'A' + k, sizeof(want));
		if ((ret = w_call(w, FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, name, &e, sizeof(e))))
			goto err;
		if ((ret = w_call(w, FUSE_GETATTR, e.nodeid, &gi, sizeof(gi), NULL, &ao, sizeof(ao))))
			goto err;
		if ((ret = w_call(w, FUSE_OPEN, e.nodeid, &oi, sizeof(oi), NULL, &oo, sizeof(oo))))
			goto err;
		ri.fh = oo.fh;
		ret = w_call(w, FUSE_READ, e.nodeid, &ri, sizeof(ri), NULL, buf, sizeof(buf));
		if (!ret && memcmp(buf, want, sizeof(buf)))
			ret = -2000;    /* wrong data */
		rl = (struct fuse_release_in){ .fh = oo.fh };
		if (w_call(w, FUSE_RELEASE, e.nodeid, &rl, sizeof(rl), NULL, NULL, 0) || ret)
			goto err;
		if (w_call(w, FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, "missing", &e, sizeof(e)) != -ENOENT)
			goto err;
		if ((ret = w_call(w, FUSE_FORGET, e.nodeid, &fo, sizeof(fo), NULL, NULL, 0)) != 1)
			goto err;
		continue;
err:
		w->errors++;
		w->last_error = ret;
		w->last_op = i;
	}
	return NULL;
}

Test(fuse_threads, four_threads_lookups_and_reads)
{
	struct worker w[THREADS];
	char name[16], data[4096];

	for (int k = 0; k < FILES; k++) {
		snprintf(name, sizeof(name), "f%d", k);
		memset(data, 'A' + k, sizeof(data));
		fx_write_file(name, data, sizeof(data));
	}
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .id = i + 1 };
		cr_assert_eq(pthread_create(&w[i].t, NULL, w_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(w[i].t, NULL);
		cr_assert_eq(w[i].errors, 0, "thread %d: %d errors, last %d at %d", i, w[i].errors,
			     w[i].last_error, w[i].last_op);
		cr_assert_gt(w[i].ops, 1500 * 6);
	}
	/* Every lookup was forgotten: the files' nodes are all gone, the root stays. */
	cr_assert_eq(fx_getattr(FUSE_ROOT_ID, NULL), 0);
}

/* FORGETs racing lookups and getattrs of the same node: ESTALE is fine, crashes and
 * leaks are not (ASan watches). */
static void *w_forgetter(void *arg)
{
	struct worker *w = arg;
	struct fuse_entry_out e;
	struct fuse_forget_in fo = { .nlookup = 3 };
	struct fuse_getattr_in gi = { 0 };
	struct fuse_attr_out ao;

	for (int i = 0; i < 3000; i++) {
		int ret = w_call(w, FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, "f0", &e, sizeof(e));
		if (ret) {
			w->errors++;
			continue;
		}
		ret = w_call(w, FUSE_GETATTR, e.nodeid, &gi, sizeof(gi), NULL, &ao, sizeof(ao));
		if (ret && ret != -ESTALE)
			w->errors++;
		if (i % 3 == 0)
			w_call(w, FUSE_FORGET, e.nodeid, &fo, sizeof(fo), NULL, NULL, 0);
	}
	return NULL;
}

Test(fuse_threads, forget_races_lookup)
{
	struct worker w[THREADS];

	fx_write_file("f0", "x", 1);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .id = i + 1 };
		cr_assert_eq(pthread_create(&w[i].t, NULL, w_forgetter, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(w[i].t, NULL);
		cr_assert_eq(w[i].errors, 0, "thread %d", i);
	}
}
