/* Device nodes (fs/node.c, devices=): with devices=mapped (the default) a guest's MKNOD
 * of a character or block device leaves an inert 0600 regular file on the host whose
 * attribute says what node it is, and every op shows and treats it as that node; the
 * guest can neither see nor forge the attribute.  devices=host makes real nodes,
 * devices=deny refuses them.  Run as root (the unit tests are): the attribute is
 * trusted.minivmm.node. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/internal.h"
#include "tests/unit/fuse_util.h"

TestSuite(node_codec);
TestSuite(fuse_node, .init = fx_setup, .fini = fx_teardown);
TestSuite(fuse_devices, .init = fx_setup, .fini = fx_teardown);

/* FUSE's (the kernel's new_encode_dev) device number encoding. */
static uint32_t enc(uint32_t maj, uint32_t min)
{
	return (min & 0xff) | ((maj & 0xfff) << 8) | ((min & ~0xffu) << 12);
}

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root (trusted.* attribute, real device nodes)");
}

/* The same share served again with another devices= mode. */
static void serve_devices(enum fuse_devices mode)
{
	struct fuse_config cfg;
	char err[256] = "";

	fuse_server_destroy(fx.s);
	memset(&cfg, 0, sizeof(cfg));
	cfg.path = fx.share;
	cfg.cache = FUSE_CACHE_AUTO;
	cfg.xattr = true;
	cfg.devices = mode;
	fx.s = fuse_server_create(&cfg, err, sizeof(err));
	cr_assert_not_null(fx.s, "%s", err);
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, NULL), 0);
}

static int setx(uint64_t n, const char *name, const void *val, uint32_t size, uint32_t flags)
{
	struct fuse_setxattr_in in = { .size = size, .flags = flags };

	return fx_call(FUSE_SETXATTR, n, &in, 8, name, strlen(name) + 1, val, size, NULL, 0, NULL);
}

static int getx(uint64_t n, const char *name, uint32_t size, void *buf, size_t *got)
{
	struct fuse_getxattr_in in = { .size = size };

	return fx_call(name ? FUSE_GETXATTR : FUSE_LISTXATTR, n, &in, sizeof(in), name,
		       name ? strlen(name) + 1 : 0, NULL, 0, buf, size ? size : 8, got);
}

static int removex(uint64_t n, const char *name)
{
	return fx_call(FUSE_REMOVEXATTR, n, NULL, 0, name, strlen(name) + 1, NULL, 0, NULL, 0,
		       NULL);
}

static int setattr(uint64_t n, uint32_t valid, uint32_t mode, uint32_t uid, uint32_t gid,
		   struct fuse_attr_out *o)
{
	struct fuse_setattr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.valid = valid;
	sa.mode = mode;
	sa.uid = uid;
	sa.gid = gid;
	return fx_setattr(n, &sa, o);
}

/* The host's view of a name: a 0600 (or less) empty regular file holding `want` in
 * trusted.minivmm.node. */
static void host_is_placeholder(const char *rel, const char *want)
{
	struct stat st;
	char buf[64];
	ssize_t n;

	cr_assert_eq(lstat(fx_path(rel), &st), 0, "%s: %s", rel, strerror(errno));
	cr_assert(S_ISREG(st.st_mode), "%s is %o on the host, not a regular file", rel, st.st_mode);
	cr_assert_eq(st.st_mode & 07777, 0600, "%s has host mode %o", rel, st.st_mode & 07777);
	cr_assert_eq(st.st_size, 0);
	n = getxattr(fx_path(rel), NODE_XATTR_ROOT, buf, sizeof(buf) - 1);
	cr_assert_geq(n, 0, "%s: no %s: %s", rel, NODE_XATTR_ROOT, strerror(errno));
	buf[n] = '\0';
	cr_assert_str_eq(buf, want);
}

static void attr_is(const struct fuse_attr *a, mode_t mode, uint32_t maj, uint32_t min)
{
	cr_assert_eq(a->mode, mode, "mode %o, want %o", a->mode, mode);
	cr_assert_eq(a->rdev, enc(maj, min), "rdev %#x, want %#x", a->rdev, enc(maj, min));
}

/* ---- the encoding ---------------------------------------------------------------------- */

Test(node_codec, round_trip)
{
	static const struct node_meta cases[] = {
		{ S_IFCHR | 0666, 1, 3, false, 0, 0 }, { S_IFBLK | 0660, 8, 0, false, 0, 0 },
		{ S_IFCHR | 07777, 4095, 1048575, false, 0, 0 },
		{ S_IFBLK, 0, 0, false, 0, 0 }, { S_IFCHR | 04620, 136, 300, false, 0, 0 },
	};
	char buf[NODE_XATTR_MAX];
	struct node_meta m;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = node_encode(&cases[i], buf, sizeof(buf));
		cr_assert_gt(n, 0);
		cr_assert_eq(node_decode(buf, (size_t)n, &m), 0, "[%.*s]", n, buf);
		cr_assert_eq(m.mode, cases[i].mode);
		cr_assert_eq(m.major, cases[i].major);
		cr_assert_eq(m.minor, cases[i].minor);
	}
	cr_assert_eq(node_encode(&cases[0], buf, sizeof(buf)), 11);
	cr_assert_eq(memcmp(buf, "1 c 666 1 3", 11), 0);
	/* not a device, or numbers a dev_t cannot hold */
	cr_assert_eq(node_encode(&(struct node_meta){ .mode = S_IFREG | 0644 }, buf, sizeof(buf)),
		     -EINVAL);
	cr_assert_eq(node_encode(&(struct node_meta){ .mode = S_IFCHR, .major = 4096 }, buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(node_encode(&(struct node_meta){ .mode = S_IFCHR, .minor = 1u << 20 }, buf, sizeof(buf)),
		     -EINVAL);
}

Test(node_codec, malformed_values_refused)
{
	static const char *bad[] = {
		"", "1", "1 c 666 1", "1 c 666 1 3 ", " 1 c 666 1 3", "2 c 666 1 3", "1 p 666 1 3",
		"1 s 666 1 3", "1 C 666 1 3", "1 c 668 1 3", "1 c 17777 1 3", "1 c 666 4096 3",
		"1 c 666 1 1048576", "1 c 666 -1 3", "1 c 666 +1 3", "1 c 666 1  3", "1 c  666 1 3",
		"1 c 666 1 3\n", "1 c 666 1 x", "1 c 666 99999999999 3", "1 cc 666 1 3",
		"1\tc 666 1 3", "1 c 666 1 3 1000", "1 c 666 1 3 1000 ", "1 c 666 1 3 1000 1000 7",
		"1 c 666 1 3 4294967295 0", "1 c 666 1 3 0 -1", "1 - 644 0 0", "1 - 4000 1 0",
		"1 - 4000 0 1", "1 - 1000 0 0 5 5",
	};
	struct node_meta m = { .major = 77, .minor = 77 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(node_decode(bad[i], strlen(bad[i]), &m), -EINVAL, "[%s] accepted", bad[i]);
	/* an embedded NUL: the length says more than the string */
	cr_assert_eq(node_decode("1 c 666 1 3\0", 12, &m), -EINVAL);
	cr_assert_eq(m.mode, 0, "a refused value wrote the result");
	cr_assert_eq(node_decode("1 b 0 0 0", 9, &m), 0);
	cr_assert_eq(m.mode, S_IFBLK);
	cr_assert_not(m.owner);
}

/* owner=mapped's forms: an owner after a node, or no node (`-`) with setuid/setgid. */
Test(node_codec, owner_forms)
{
	static const struct node_meta cases[] = {
		{ S_IFCHR | 0620, 4, 1, true, 0, 5 }, { 06000, 0, 0, true, 4294967294u, 0 },
		{ 04000, 0, 0, false, 0, 0 }, { 0, 0, 0, true, 1234, 5678 },
	};
	char buf[NODE_XATTR_MAX];
	struct node_meta m;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = node_encode(&cases[i], buf, sizeof(buf));
		cr_assert_gt(n, 0);
		memset(&m, 0, sizeof(m));
		cr_assert_eq(node_decode(buf, (size_t)n, &m), 0, "[%.*s]", n, buf);
		cr_assert(m.mode == cases[i].mode && m.owner == cases[i].owner, "[%.*s]", n, buf);
		cr_assert(!m.owner || (m.uid == cases[i].uid && m.gid == cases[i].gid), "[%.*s]", n, buf);
	}
	cr_assert_eq(node_encode(&cases[1], buf, sizeof(buf)), 25);
	cr_assert_eq(memcmp(buf, "1 - 6000 0 0 4294967294 0", 25), 0);
	/* no device: only setuid/setgid; no id -1 */
	cr_assert_eq(node_encode(&(struct node_meta){ 0644, 0, 0, false, 0, 0 }, buf, sizeof(buf)),
		     -EINVAL);
	cr_assert_eq(node_encode(&(struct node_meta){ 0, 0, 0, true, UINT32_MAX, 0 }, buf,
				 sizeof(buf)), -EINVAL);
}

Test(node_codec, list_filter)
{
	char list[] = "user.a\0trusted.minivmm.node\0user.minivmm.node\0security.selinux\0";
	size_t n = node_xattr_filter(list, sizeof(list) - 1);

	cr_assert_eq(n, sizeof("user.a") + sizeof("security.selinux"));
	cr_assert_eq(memcmp(list, "user.a\0security.selinux\0", n), 0);
	cr_assert_eq(node_xattr_filter(list, 0), 0);
}

/* ---- devices=mapped -------------------------------------------------------------------- */

Test(fuse_node, mknod_char_and_block_are_placeholders)
{
	struct fuse_entry_out e;
	struct fuse_attr_out o;

	need_root();
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "null", S_IFCHR | 0666, enc(1, 3), &e), 0);
	attr_is(&e.attr, S_IFCHR | 0666, 1, 3);
	cr_assert_eq(e.attr.size, 0);
	host_is_placeholder("null", "1 c 666 1 3");
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "sda", S_IFBLK | 0660, enc(8, 0), &e), 0);
	attr_is(&e.attr, S_IFBLK | 0660, 8, 0);
	host_is_placeholder("sda", "1 b 660 8 0");
	/* large numbers survive the trip through FUSE's encoding */
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "big", S_IFCHR | 0600, enc(4095, 0xfffff), &e), 0);
	attr_is(&e.attr, S_IFCHR | 0600, 4095, 0xfffff);
	/* lookup and getattr show the node, also to a new lookup after a forget */
	cr_assert_eq(fx_forget(e.nodeid, 1), FX_NOREPLY);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "sda", &e), 0);
	attr_is(&e.attr, S_IFBLK | 0660, 8, 0);
	cr_assert_eq(fx_getattr(e.nodeid, &o), 0);
	attr_is(&o.attr, S_IFBLK | 0660, 8, 0);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "sda", S_IFBLK | 0660, enc(8, 0), NULL), -EEXIST);
}

Test(fuse_node, umask_applies_to_the_stored_bits)
{
	struct fuse_mknod_in in = { .mode = S_IFCHR | 0666, .rdev = enc(1, 5), .umask = 027 };
	struct fuse_entry_out e;

	need_root();
	cr_assert_eq(fx_call(FUSE_MKNOD, FUSE_ROOT_ID, &in, sizeof(in), "zero", 5, NULL, 0, &e,
			     sizeof(e), NULL), 0);
	attr_is(&e.attr, S_IFCHR | 0640, 1, 5);
	host_is_placeholder("zero", "1 c 640 1 5");
}

Test(fuse_node, readdir_and_readdirplus_show_the_node)
{
	char buf[4096];
	const struct fuse_dirent *d;
	const struct fuse_entry_out *eo;
	size_t got, pos;
	uint64_t fh;
	int seen;

	need_root();
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "tty", S_IFCHR | 0620, enc(4, 1), NULL), 0);
	fx_write_file("plain", "", 0);
	chmod(fx_path("plain"), 0600);   /* looks like a placeholder, has no attribute */
	for (int plus = 0; plus < 2; plus++) {
		cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &fh), 0);
		cr_assert_eq(fx_readdir(plus ? FUSE_READDIRPLUS : FUSE_READDIR, fh, 0, sizeof(buf),
					buf, &got), 0);
		seen = 0;
		pos = 0;
		while ((d = fx_dirent_next(buf, got, &pos, plus, &eo))) {
			if (d->namelen == 3 && !memcmp(d->name, "tty", 3)) {
				cr_assert_eq(d->type, DT_CHR, "plus=%d: tty has d_type %u", plus, d->type);
				if (plus)
					attr_is(&eo->attr, S_IFCHR | 0620, 4, 1);
				seen |= 1;
			} else if (d->namelen == 5 && !memcmp(d->name, "plain", 5)) {
				cr_assert_eq(d->type, DT_REG);
				if (plus)
					cr_assert_eq(eo->attr.mode, S_IFREG | 0600);
				seen |= 2;
			}
		}
		cr_assert_eq(seen, 3, "plus=%d: entries missing", plus);
		cr_assert_eq(fx_releasedir(fh), 0);
	}
}

Test(fuse_node, chmod_changes_the_stored_bits_not_the_host_mode)
{
	struct fuse_entry_out e;
	struct fuse_attr_out o;

	need_root();
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "c", S_IFCHR | 0644, enc(10, 200), &e), 0);
	cr_assert_eq(setattr(e.nodeid, FATTR_MODE, 0751, 0, 0, &o), 0);
	attr_is(&o.attr, S_IFCHR | 0751, 10, 200);
	host_is_placeholder("c", "1 c 751 10 200");
	/* setuid is the guest's business on a node the host never opens: kept */
	cr_assert_eq(setattr(e.nodeid, FATTR_MODE, 06755, 0, 0, &o), 0);
	attr_is(&o.attr, S_IFCHR | 06755, 10, 200);
	host_is_placeholder("c", "1 c 6755 10 200");
	cr_assert_eq(fx_getattr(e.nodeid, &o), 0);
	attr_is(&o.attr, S_IFCHR | 06755, 10, 200);
}

Test(fuse_node, chown_and_utimes_apply_to_the_host_file)
{
	struct fuse_setattr_in sa;
	struct fuse_entry_out e;
	struct fuse_attr_out o;
	struct stat st;

	need_root();
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "c", S_IFCHR | 06755, enc(1, 7), &e), 0);
	cr_assert_eq(setattr(e.nodeid, FATTR_UID | FATTR_GID, 0, 1234, 5678, &o), 0);
	cr_assert_eq(o.attr.uid, 1234);
	cr_assert_eq(o.attr.gid, 5678);
	/* as Linux does on a chown: setuid and setgid-exec go */
	attr_is(&o.attr, S_IFCHR | 0755, 1, 7);
	cr_assert_eq(lstat(fx_path("c"), &st), 0);
	cr_assert_eq(st.st_uid, 1234);
	cr_assert_eq(st.st_gid, 5678);
	host_is_placeholder("c", "1 c 755 1 7");
	memset(&sa, 0, sizeof(sa));
	sa.valid = FATTR_MTIME | FATTR_ATIME;
	sa.mtime = 1000000000;
	sa.atime = 999999999;
	cr_assert_eq(fx_setattr(e.nodeid, &sa, &o), 0);
	cr_assert_eq(o.attr.mtime, 1000000000);
	attr_is(&o.attr, S_IFCHR | 0755, 1, 7);
	cr_assert_eq(lstat(fx_path("c"), &st), 0);
	cr_assert_eq(st.st_mtime, 1000000000);
	/* no size on a device */
	memset(&sa, 0, sizeof(sa));
	sa.valid = FATTR_SIZE;
	sa.size = 100;
	cr_assert_eq(fx_setattr(e.nodeid, &sa, &o), -EINVAL);
	host_is_placeholder("c", "1 c 755 1 7");
}

Test(fuse_node, rename_link_unlink)
{
	struct fuse_entry_out e, l;
	struct fuse_attr_out o;
	uint64_t d;

	need_root();
	cr_assert_eq(fx_mkdir(FUSE_ROOT_ID, "d", 0755, &e), 0);
	d = e.nodeid;
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "b", S_IFBLK | 0640, enc(7, 1), &e), 0);
	cr_assert_eq(fx_rename(FUSE_ROOT_ID, "b", d, "b2"), 0);
	host_is_placeholder("d/b2", "1 b 640 7 1");
	cr_assert_eq(fx_getattr(e.nodeid, &o), 0);
	attr_is(&o.attr, S_IFBLK | 0640, 7, 1);
	cr_assert_eq(fx_link(e.nodeid, FUSE_ROOT_ID, "hl", &l), 0);
	cr_assert_eq(l.nodeid, e.nodeid);
	cr_assert_eq(l.attr.nlink, 2);
	attr_is(&l.attr, S_IFBLK | 0640, 7, 1);
	host_is_placeholder("hl", "1 b 640 7 1");
	cr_assert_eq(fx_unlink(d, "b2"), 0);
	cr_assert_eq(fx_getattr(e.nodeid, &o), 0);
	cr_assert_eq(o.attr.nlink, 1);
	attr_is(&o.attr, S_IFBLK | 0640, 7, 1);
	/* exchange with a regular file: each keeps what it is */
	fx_write_file("f", "data", 4);
	cr_assert_eq(fx_rename2(FUSE_ROOT_ID, "hl", FUSE_ROOT_ID, "f", RENAME_EXCHANGE), 0);
	host_is_placeholder("f", "1 b 640 7 1");
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "hl", &l), 0);
	cr_assert_eq(l.attr.mode, S_IFREG | 0644);
	cr_assert_eq(fx_unlink(FUSE_ROOT_ID, "f"), 0);
	cr_assert_eq(access(fx_path("f"), F_OK), -1);
}

Test(fuse_node, open_and_create_refused)
{
	struct fuse_entry_out e;
	uint64_t fh;

	need_root();
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "n", S_IFCHR | 0666, enc(1, 3), &e), 0);
	cr_assert_eq(fx_open(e.nodeid, O_RDONLY, &fh), -ENXIO);
	cr_assert_eq(fx_open(e.nodeid, O_RDWR, &fh), -ENXIO);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "n", O_RDWR | O_CREAT, 0644, NULL, &fh), -ENXIO);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "n", O_RDWR | O_CREAT | O_TRUNC, 0644, NULL, &fh),
		     -ENXIO);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "n", O_RDWR | O_CREAT | O_EXCL, 0644, NULL, &fh),
		     -EEXIST);
	host_is_placeholder("n", "1 c 666 1 3");
}

Test(fuse_node, attribute_hidden_and_unforgeable)
{
	struct fuse_entry_out e;
	char buf[256];
	size_t got;
	uint64_t f;

	need_root();
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "n", S_IFCHR | 0666, enc(1, 3), &e), 0);
	/* not listed, not readable, neither settable nor removable */
	cr_assert_eq(getx(e.nodeid, NULL, 0, buf, &got), 0);
	cr_assert_eq(((struct fuse_getxattr_out *)buf)->size, 0, "the list is not empty");
	cr_assert_eq(getx(e.nodeid, NULL, sizeof(buf), buf, &got), 0);
	cr_assert_eq(got, 0);
	cr_assert_eq(getx(e.nodeid, NODE_XATTR_ROOT, sizeof(buf), buf, &got), -ENODATA);
	cr_assert_eq(getx(e.nodeid, NODE_XATTR_ROOT, 0, buf, &got), -ENODATA);
	cr_assert_eq(getx(e.nodeid, NODE_XATTR_USER, sizeof(buf), buf, &got), -ENODATA);
	cr_assert_eq(setx(e.nodeid, NODE_XATTR_ROOT, "1 c 666 1 5", 11, 0), -EPERM);
	cr_assert_eq(removex(e.nodeid, NODE_XATTR_ROOT), -EPERM);
	cr_assert_eq(removex(e.nodeid, NODE_XATTR_USER), -EPERM);
	/* an ACL would change the placeholder's host mode; user.* is not for devices */
	cr_assert_eq(setx(e.nodeid, "system.posix_acl_access", "x", 1, 0), -EOPNOTSUPP);
	cr_assert_eq(setx(e.nodeid, "user.x", "1", 1, 0), -EPERM);
	host_is_placeholder("n", "1 c 666 1 3");

	/* a plain file cannot be made a node: neither name can be set on it */
	fx_write_file("f", "", 0);
	chmod(fx_path("f"), 0600);
	f = fx_node("f");
	cr_assert_eq(setx(f, NODE_XATTR_ROOT, "1 c 666 1 3", 11, 0), -EPERM);
	cr_assert_eq(setx(f, NODE_XATTR_USER, "1 c 666 1 3", 11, 0), -EPERM);
	cr_assert_eq(getxattr(fx_path("f"), NODE_XATTR_ROOT, buf, sizeof(buf)), -1);
	cr_assert_eq(getxattr(fx_path("f"), NODE_XATTR_USER, buf, sizeof(buf)), -1);
	/* other attributes of a file still list, without ours (set on the host) */
	cr_assert_eq(setx(f, "user.keep", "1", 1, 0), 0);
	cr_assert_eq(setxattr(fx_path("f"), NODE_XATTR_USER, "1 c 1 1 1", 9, 0), 0);
	cr_assert_eq(getx(f, NULL, 0, buf, &got), 0);
	cr_assert_eq(((struct fuse_getxattr_out *)buf)->size, sizeof("user.keep"));
	cr_assert_eq(getx(f, NULL, sizeof(buf), buf, &got), 0);
	cr_assert_eq(got, sizeof("user.keep"));
	cr_assert_eq(memcmp(buf, "user.keep", sizeof("user.keep")), 0);
	cr_assert_eq(getx(f, NULL, 4, buf, &got), -ERANGE);
	/* user.minivmm.node means nothing to a root minivmm: still a plain file */
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(e.attr.mode, S_IFREG | 0600);
}

/* Edited on the host: the placeholder shows as the plain file it is. */
Test(fuse_node, damaged_attribute_shows_a_plain_file)
{
	struct fuse_entry_out e;
	struct fuse_attr_out o;
	uint64_t fh;

	need_root();
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "bad", S_IFCHR | 0666, enc(1, 3), &e), 0);
	cr_assert_eq(fx_forget(e.nodeid, 1), FX_NOREPLY);
	cr_assert_eq(setxattr(fx_path("bad"), NODE_XATTR_ROOT, "1 c 666 1", 9, 0), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "bad", &e), 0);
	cr_assert_eq(e.attr.mode, S_IFREG | 0600);
	cr_assert_eq(e.attr.rdev, 0);
	cr_assert_eq(fx_open(e.nodeid, O_RDONLY, &fh), 0, "a plain file opens");
	cr_assert_eq(fx_release(fh), 0);

	/* known to the guest as a node, then the attribute goes: a plain file, never opened */
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "gone", S_IFBLK | 0600, enc(8, 1), &e), 0);
	cr_assert_eq(removexattr(fx_path("gone"), NODE_XATTR_ROOT), 0);
	cr_assert_eq(fx_getattr(e.nodeid, &o), 0);
	cr_assert_eq(o.attr.mode, S_IFREG | 0600);
	cr_assert_eq(fx_open(e.nodeid, O_RDONLY, &fh), -ENXIO);

	/* a node the host made bigger or executable is no placeholder any more */
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "grown", S_IFCHR | 0600, enc(1, 1), NULL), 0);
	fx_write_file("grown", "data", 4);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "grown", &e), 0);
	cr_assert_eq(e.attr.mode & S_IFMT, S_IFREG);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "exec", S_IFCHR | 0600, enc(1, 1), NULL), 0);
	cr_assert_eq(chmod(fx_path("exec"), 0700), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "exec", &e), 0);
	cr_assert_eq(e.attr.mode, S_IFREG | 0700);
}

/* A real device node the host put in the share is shown as it is and never opened. */
Test(fuse_node, host_device_shown_never_opened)
{
	struct fuse_entry_out e;
	uint64_t fh;

	need_root();
	cr_assert_eq(mknod(fx_path("hnull"), S_IFCHR | 0666, makedev(1, 3)), 0);
	cr_assert_eq(chmod(fx_path("hnull"), 0666), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "hnull", &e), 0);
	attr_is(&e.attr, S_IFCHR | 0666, 1, 3);
	cr_assert_eq(fx_open(e.nodeid, O_RDWR, &fh), -ENXIO);
	cr_assert_eq(fx_create(FUSE_ROOT_ID, "hnull", O_RDWR | O_CREAT, 0644, NULL, &fh), -ENXIO);
}

/* Sockets and FIFOs stay real host nodes in every mode. */
Test(fuse_node, fifo_and_socket_stay_real)
{
	struct stat st;

	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "p", S_IFIFO | 0644, 0, NULL), 0);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "s", S_IFSOCK | 0644, 0, NULL), 0);
	cr_assert_eq(lstat(fx_path("p"), &st), 0);
	cr_assert(S_ISFIFO(st.st_mode));
	cr_assert_eq(lstat(fx_path("s"), &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
}

/* ---- devices=deny and devices=host ----------------------------------------------------- */

Test(fuse_devices, deny_refuses_device_nodes)
{
	struct fuse_entry_out e;

	serve_devices(FUSE_DEVICES_DENY);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "c", S_IFCHR | 0666, enc(1, 3), NULL), -EPERM);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "b", S_IFBLK | 0666, enc(8, 0), NULL), -EPERM);
	cr_assert_eq(access(fx_path("c"), F_OK), -1);
	cr_assert_eq(access(fx_path("b"), F_OK), -1);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "p", S_IFIFO | 0644, 0, &e), 0);
}

Test(fuse_devices, host_makes_real_nodes)
{
	struct fuse_entry_out e;
	struct fuse_attr_out o;
	struct stat st;
	uint64_t fh;

	need_root();
	serve_devices(FUSE_DEVICES_HOST);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "c", S_IFCHR | 0640, enc(1, 3), &e), 0);
	attr_is(&e.attr, S_IFCHR | 0640, 1, 3);
	cr_assert_eq(lstat(fx_path("c"), &st), 0);
	cr_assert(S_ISCHR(st.st_mode));
	cr_assert_eq(st.st_rdev, makedev(1, 3));
	cr_assert_eq(getxattr(fx_path("c"), NODE_XATTR_ROOT, NULL, 0), -1);
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "b", S_IFBLK | 0600, enc(300, 70000), &e), 0);
	attr_is(&e.attr, S_IFBLK | 0600, 300, 70000);
	cr_assert_eq(lstat(fx_path("b"), &st), 0);
	cr_assert(S_ISBLK(st.st_mode));
	cr_assert_eq(st.st_rdev, makedev(300, 70000));
	/* never opened by the server, chmod is the host's */
	cr_assert_eq(fx_open(e.nodeid, O_RDONLY, &fh), -ENXIO);
	cr_assert_eq(setattr(e.nodeid, FATTR_MODE, 0604, 0, 0, &o), 0);
	cr_assert_eq(lstat(fx_path("b"), &st), 0);
	cr_assert_eq(st.st_mode, S_IFBLK | 0604);
	/* suid=off still strips setuid from a real node */
	cr_assert_eq(fx_mknod(FUSE_ROOT_ID, "s", S_IFCHR | 04666, enc(1, 3), &e), 0);
	cr_assert_eq(lstat(fx_path("s"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0666);
}

/* ---- owner=mapped (minivmm unprivileged) ----------------------------------------------- */

#define NOBODY 65534

/* A host attribute's value ("" if none). */
static const char *host_attr(const char *rel, const char *name)
{
	static char buf[64];
	ssize_t n = getxattr(fx_path(rel), name, buf, sizeof(buf) - 1);

	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

/* In a child that is uid/gid NOBODY: serve the share with owner=mapped (or not) and go
 * through chown and chmod.  Returns 0, or the number of the step that went wrong. */
static int owner_steps(bool mapped)
{
	struct fuse_entry_out e, d, c;
	struct fuse_attr_out o;
	struct fuse_config cfg;
	char err[256];
	struct stat st;
	uint64_t fh;

	if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		return 1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.path = fx.share;
	cfg.cache = FUSE_CACHE_AUTO;
	cfg.xattr = true;
	cfg.owner_mapped = mapped;
	fx.s = fuse_server_create(&cfg, err, sizeof(err));
	if (!fx.s || fx_init(7, 38, FX_ALL_FLAGS, NULL))
		return 2;
	if (fx_create(FUSE_ROOT_ID, "f", O_RDWR | O_CREAT, 0755, &e, &fh) || fx_release(fh))
		return 3;
	if (!mapped)    /* owner=host: the host's answer */
		return setattr(e.nodeid, FATTR_UID | FATTR_GID, 0, 0, 0, &o) == -EPERM ? 0 : 4;
	/* a chown the host refuses: kept and shown */
	if (setattr(e.nodeid, FATTR_UID | FATTR_GID, 0, 0, 0, &o) || o.attr.uid || o.attr.gid)
		return 5;
	if (lstat(fx_path("f"), &st) || st.st_uid != NOBODY ||
	    strcmp(host_attr("f", NODE_XATTR_USER), "1 - 0 0 0 0 0"))
		return 6;
	if (fx_forget(e.nodeid, 1) != FX_NOREPLY || fx_lookup(FUSE_ROOT_ID, "f", &e) ||
	    e.attr.uid || e.attr.gid)
		return 7;
	/* setuid: shown, not on the host (suid=off) */
	if (setattr(e.nodeid, FATTR_MODE, 04755, 0, 0, &o) || o.attr.mode != (S_IFREG | 04755))
		return 8;
	if (lstat(fx_path("f"), &st) || (st.st_mode & 07777) != 0755 ||
	    strcmp(host_attr("f", NODE_XATTR_USER), "1 - 4000 0 0 0 0"))
		return 9;
	/* chgrp alone keeps the stored uid; a chown drops setuid as Linux does */
	if (setattr(e.nodeid, FATTR_GID, 0, 0, 1234, &o) || o.attr.uid || o.attr.gid != 1234 ||
	    o.attr.mode != (S_IFREG | 0755))
		return 10;
	/* back to the host's owner: nothing left to store */
	if (setattr(e.nodeid, FATTR_UID | FATTR_GID, 0, NOBODY, NOBODY, &o) ||
	    o.attr.uid != NOBODY || o.attr.gid != NOBODY ||
	    getxattr(fx_path("f"), NODE_XATTR_USER, NULL, 0) != -1 || errno != ENODATA)
		return 11;
	/* directories too; a FIFO cannot carry user.*: the host's EPERM */
	if (fx_mkdir(FUSE_ROOT_ID, "d", 0755, &d) ||
	    setattr(d.nodeid, FATTR_UID | FATTR_GID, 0, 1234, 5678, &o) ||
	    o.attr.uid != 1234 || o.attr.gid != 5678 || !S_ISDIR(o.attr.mode))
		return 12;
	if (fx_mknod(FUSE_ROOT_ID, "p", S_IFIFO | 0644, 0, &e) ||
	    setattr(e.nodeid, FATTR_UID, 0, 0, 0, &o) != -EPERM)
		return 13;
	/* a mapped device node of an unprivileged minivmm: user.minivmm.node, owner kept */
	if (fx_mknod(FUSE_ROOT_ID, "c", S_IFCHR | 0644, enc(1, 3), &c) ||
	    c.attr.mode != (S_IFCHR | 0644) || strcmp(host_attr("c", NODE_XATTR_USER), "1 c 644 1 3"))
		return 14;
	if (setattr(c.nodeid, FATTR_UID | FATTR_GID, 0, 0, 6, &o) || o.attr.uid || o.attr.gid != 6 ||
	    o.attr.mode != (S_IFCHR | 0644) || o.attr.rdev != enc(1, 3) ||
	    strcmp(host_attr("c", NODE_XATTR_USER), "1 c 644 1 3 0 6"))
		return 15;
	/* and the guest still cannot touch the attribute */
	if (setx(c.nodeid, NODE_XATTR_USER, "1 c 644 1 5", 11, 0) != -EPERM ||
	    removex(c.nodeid, NODE_XATTR_USER) != -EPERM)
		return 16;
	return 0;
}

static void owner_run(bool mapped)
{
	int st;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root (to become another user)");
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(owner_steps(mapped));
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child status %#x", st);
	cr_assert_eq(WEXITSTATUS(st), 0, "owner=%s: step %d failed", mapped ? "mapped" : "host",
		     WEXITSTATUS(st));
}

Test(fuse_node, owner_mapped_unprivileged)
{
	owner_run(true);
}

Test(fuse_node, owner_host_unprivileged_chown_refused)
{
	owner_run(false);
}
