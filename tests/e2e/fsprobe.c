/* fsprobe: POSIX file-system checks run inside a minivmm guest on a virtio-fs share.
 *
 *   fsprobe WORKDIR            run every check in WORKDIR (created if missing); one line
 *                              per check, "ok - NAME" or "not ok - NAME: detail"; exit 0
 *                              iff all passed.  Leaves files behind for the host to verify
 *                              (listed in WORKDIR/MANIFEST).
 *   fsprobe --pattern SEED N   write N bytes of pattern SEED to stdout (the host builds the
 *                              expected content of big.bin and mmap.bin with it).
 *
 * Built static on the host (the guest image is busybox only):
 *   gcc -static -O2 -Wall -Wextra -Werror -o DIR/fsprobe tests/e2e/fsprobe.c
 * The guest runs it as root. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* What the host checks (tests/e2e/fs.sh knows the same values). */
#define DATA_TEXT    "hello from the minivmm guest\n"
#define RENAMED_TEXT "renamed by the guest\n"
#define BIG_SIZE     (8u << 20)
#define BIG_SEED     1
#define MMAP_SIZE    (2 * 4096 + 100)
#define MMAP_SEED    2
#define MANY         10000
#define OWNER_UID    1234
#define OWNER_GID    5678
#define MTIME        1000000000
#define ATIME        999999999
#define CHECK_TIMEOUT 600        /* seconds per check */

static char msg[2048];   /* a failing check's detail */
static char note[512];   /* a passing check's remark */
static const char *current;
static int failed, passed;

#define FAIL(...) do { snprintf(msg, sizeof(msg), __VA_ARGS__); return msg; } while (0)
/* Run a system call; on -1 fail the check naming the call and errno. */
#define SYS(call) ({ \
	long r_ = (long)(call); \
	if (r_ == -1) \
		FAIL("%s: %s", #call, strerror(errno)); \
	r_; \
})
/* A call that must fail with errno E. */
#define SYSERR(call, E) do { errno = 0; long r_ = (long)(call); \
	if (r_ != -1) FAIL("%s succeeded (returned %ld), expected %s", #call, r_, #E); \
	if (errno != (E)) FAIL("%s: %s, expected %s", #call, strerror(errno), #E); } while (0)
/* Create a file with the given content, failing the check on error. */
#define PUT(path, text, len) do { int e_ = put(path, text, len, 0644); \
	if (e_ < 0) FAIL("create %s: %s", path, strerror(-e_)); } while (0)
/* Fail with a prefix before the detail r of a failed sub-step (which lives in msg). */
#define FAIL_AFTER(prefix, r) do { char t_[1024]; snprintf(t_, sizeof(t_), "%s", r); \
	FAIL("%s: %s", prefix, t_); } while (0)
#define NOTE(...) snprintf(note, sizeof(note), __VA_ARGS__)

static void on_alarm(int sig)
{
	(void)sig;
	char line[256];
	int n = snprintf(line, sizeof(line), "not ok - %s: still running after %d s\n", current,
			 CHECK_TIMEOUT);
	if (write(1, line, n) < 0) { /* nothing to do */ }
	_exit(3);
}

static void run(const char *name, const char *(*fn)(void))
{
	current = name;
	note[0] = '\0';
	alarm(CHECK_TIMEOUT);
	const char *err = fn();
	alarm(0);
	if (err) {
		failed++;
		printf("not ok - %s: %s\n", name, err);
	} else {
		passed++;
		printf(note[0] ? "ok - %s (%s)\n" : "ok - %s\n", name, note);
	}
	fflush(stdout);
}

/* The pattern: every aligned 8-byte word differs, so a misplaced, repeated or lost page
 * shows. */
static uint64_t pat_word(uint64_t i, unsigned seed)
{
	uint64_t x = i * 0x9E3779B97F4A7C15ull + (seed + 1) * 0xD1B54A32D192ED03ull;
	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return x;
}

static void pattern(unsigned char *buf, uint64_t off, size_t len, unsigned seed)
{
	uint64_t word = pat_word(off >> 3, seed);
	for (size_t k = 0; k < len; k++) {
		uint64_t o = off + k;
		if (k && !(o & 7))
			word = pat_word(o >> 3, seed);
		buf[k] = (unsigned char)(word >> ((o & 7) * 8));
	}
}

static size_t first_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
	size_t i = 0;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* Write a whole file; 0 or -errno. */
static int put(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < len) {
		ssize_t r = write(fd, (const char *)buf + done, len - done);
		if (r <= 0) {
			int e = r < 0 ? errno : EIO;
			close(fd);
			return -e;
		}
		done += r;
	}
	if (close(fd) < 0)
		return -errno;
	return 0;
}

/* Read up to cap bytes of a file; length or -errno. */
static long get(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	for (;;) {
		ssize_t r = read(fd, (char *)buf + done, cap - done);
		if (r < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (r == 0 || done + r == cap) {
			done += r;
			break;
		}
		done += r;
	}
	close(fd);
	return (long)done;
}

/* Forget the guest's cached pages and dentries so the next access asks the host. */
static int drop_caches(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0)
		return -1;
	int r = write(fd, "3", 1) == 1 ? 0 : -1;
	close(fd);
	return r;
}

static const char *expect_content(const char *path, const char *want)
{
	char buf[4096];
	long n = get(path, buf, sizeof(buf) - 1);
	if (n < 0)
		FAIL("read %s: %s", path, strerror(-n));
	buf[n] = '\0';
	if ((size_t)n != strlen(want) || memcmp(buf, want, n))
		FAIL("%s holds %ld bytes [%.300s], expected [%.300s]", path, n, buf, want);
	return NULL;
}

/* Fork; the child runs fn and sends back its verdict (NULL = ok). */
static const char *in_child(const char *(*fn)(void *), void *arg)
{
	int p[2];
	SYS(pipe(p));
	pid_t pid = SYS(fork());
	if (pid == 0) {
		close(p[0]);
		const char *r = fn(arg);
		if (r && write(p[1], r, strlen(r)) < 0)
			_exit(2);
		_exit(r ? 1 : 0);
	}
	close(p[1]);
	static char child_msg[1024];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(child_msg) - 1 && (r = read(p[0], child_msg + n, sizeof(child_msg) - 1 - n)) > 0)
		n += r;
	child_msg[n] = '\0';
	close(p[0]);
	int st;
	SYS(waitpid(pid, &st, 0));
	if (!WIFEXITED(st))
		FAIL("child killed by signal %d", WTERMSIG(st));
	if (WEXITSTATUS(st))
		FAIL("in a child process: %s", n ? child_msg : "(no detail)");
	return NULL;
}

/* ---- the checks ---- */

static const char *t_mkdir(void)
{
	SYS(mkdir("dir", 0755));
	struct stat st;
	SYS(stat("dir", &st));
	if (!S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0755)
		FAIL("dir has mode %o, expected a directory with 0755", st.st_mode);
	if (st.st_nlink != 2)
		FAIL("new directory has st_nlink %lu, expected 2", (unsigned long)st.st_nlink);
	SYSERR(mkdir("dir", 0755), EEXIST);
	return NULL;
}

static const char *t_create(void)
{
	int fd = SYS(open("data.txt", O_WRONLY | O_CREAT | O_EXCL, 0644));
	size_t len = strlen(DATA_TEXT);
	long w = SYS(write(fd, DATA_TEXT, len));
	if ((size_t)w != len)
		FAIL("short write: %ld of %zu", w, len);
	struct stat st;
	SYS(fstat(fd, &st));
	if ((size_t)st.st_size != len)
		FAIL("fstat after write: size %lld, expected %zu", (long long)st.st_size, len);
	SYS(close(fd));
	const char *r = expect_content("data.txt", DATA_TEXT);
	if (r)
		return r;
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	r = expect_content("data.txt", DATA_TEXT);
	if (r)
		FAIL_AFTER("after dropping the guest's caches", r);
	SYS(stat("data.txt", &st));
	if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != 0644 || (size_t)st.st_size != len)
		FAIL("data.txt: mode %o size %lld, expected a 0644 regular file of %zu bytes",
		     st.st_mode, (long long)st.st_size, len);
	return NULL;
}

static const char *t_pwrite(void)
{
	int fd = SYS(open("offsets.bin", O_RDWR | O_CREAT | O_TRUNC, 0644));
	SYS(pwrite(fd, "0123456789", 10, 0));
	SYS(pwrite(fd, "abc", 3, 4));
	SYS(pwrite(fd, "Z", 1, 20));  /* a gap: bytes 10..19 read as zeros */
	char buf[32] = {0};
	long n = SYS(pread(fd, buf, sizeof(buf), 0));
	SYS(close(fd));
	if (n != 21 || memcmp(buf, "0123abc789\0\0\0\0\0\0\0\0\0\0Z", 21))
		FAIL("read back %ld bytes [%.*s]", n, (int)n, buf);
	return NULL;
}

static const char *t_append(void)
{
	PUT("append.txt", "abc", 3);
	int fd = SYS(open("append.txt", O_WRONLY | O_APPEND));
	SYS(lseek(fd, 0, SEEK_SET));
	SYS(write(fd, "def", 3));
	off_t pos = SYS(lseek(fd, 0, SEEK_CUR));
	SYS(write(fd, "gh", 2));
	SYS(close(fd));
	if (pos != 6)
		FAIL("file offset after an O_APPEND write is %lld, expected 6", (long long)pos);
	return expect_content("append.txt", "abcdefgh");
}

static const char *t_ftruncate(void)
{
	char buf[100];
	memset(buf, 'x', sizeof(buf));
	int fd = SYS(open("trunc.bin", O_RDWR | O_CREAT | O_TRUNC, 0644));
	SYS(write(fd, buf, sizeof(buf)));
	SYS(ftruncate(fd, 10));
	struct stat st;
	SYS(fstat(fd, &st));
	if (st.st_size != 10)
		FAIL("size after ftruncate(10): %lld", (long long)st.st_size);
	long n = SYS(pread(fd, buf, sizeof(buf), 0));
	SYS(close(fd));
	if (n != 10)
		FAIL("read %ld bytes after ftruncate(10)", n);
	return NULL;
}

static const char *t_truncate_grow(void)
{
	SYS(truncate("trunc.bin", 5000));
	struct stat st;
	SYS(stat("trunc.bin", &st));
	if (st.st_size != 5000)
		FAIL("size after truncate(5000): %lld", (long long)st.st_size);
	static char buf[6000];
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	long n = get("trunc.bin", buf, sizeof(buf));
	if (n != 5000)
		FAIL("read %ld bytes, expected 5000", n);
	for (int i = 0; i < 5000; i++)
		if (buf[i] != (i < 10 ? 'x' : 0))
			FAIL("byte %d is 0x%02x after growing", i, (unsigned char)buf[i]);
	return NULL;
}

static const char *t_truncate_shrink(void)
{
	SYS(truncate("trunc.bin", 3));
	struct stat st;
	SYS(stat("trunc.bin", &st));
	if (st.st_size != 3)
		FAIL("size after truncate(3): %lld", (long long)st.st_size);
	return expect_content("trunc.bin", "xxx");
}

static const char *t_otrunc(void)
{
	int fd = SYS(open("trunc.bin", O_WRONLY | O_TRUNC));
	struct stat st;
	SYS(fstat(fd, &st));
	SYS(close(fd));
	if (st.st_size != 0)
		FAIL("size after open(O_TRUNC): %lld", (long long)st.st_size);
	SYS(stat("trunc.bin", &st));
	if (st.st_size != 0)
		FAIL("stat size after open(O_TRUNC): %lld", (long long)st.st_size);
	return NULL;
}

static const char *t_rename(void)
{
	PUT("to-rename.txt", RENAMED_TEXT, strlen(RENAMED_TEXT));
	struct stat before, after;
	SYS(stat("to-rename.txt", &before));
	SYS(rename("to-rename.txt", "renamed.txt"));
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	SYSERR(stat("to-rename.txt", &after), ENOENT);
	SYS(stat("renamed.txt", &after));
	if (after.st_ino != before.st_ino)
		FAIL("inode changed across rename: %lu -> %lu", (unsigned long)before.st_ino,
		     (unsigned long)after.st_ino);
	return expect_content("renamed.txt", RENAMED_TEXT);
}

static const char *t_rename_replace(void)
{
	PUT("victim.txt", "old", 3);
	PUT("winner.txt", "new", 3);
	SYS(rename("winner.txt", "victim.txt"));
	SYSERR(access("winner.txt", F_OK), ENOENT);
	return expect_content("victim.txt", "new");
}

static const char *t_exchange(void)
{
	PUT("xa", "A", 1);
	PUT("xb", "BB", 2);
	SYS(syscall(SYS_renameat2, AT_FDCWD, "xa", AT_FDCWD, "xb", RENAME_EXCHANGE));
	const char *r = expect_content("xa", "BB");
	if (!r)
		r = expect_content("xb", "A");
	if (r)
		return r;
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	r = expect_content("xa", "BB");
	if (!r)
		r = expect_content("xb", "A");
	if (r)
		FAIL_AFTER("after dropping caches", r);
	SYSERR(syscall(SYS_renameat2, AT_FDCWD, "xa", AT_FDCWD, "nonexistent-x", RENAME_EXCHANGE),
	       ENOENT);
	return NULL;
}

static const char *t_noreplace(void)
{
	PUT("na", "A", 1);
	PUT("nb", "BB", 2);
	SYSERR(syscall(SYS_renameat2, AT_FDCWD, "na", AT_FDCWD, "nb", RENAME_NOREPLACE), EEXIST);
	const char *r = expect_content("na", "A");
	if (!r)
		r = expect_content("nb", "BB");
	if (r)
		FAIL_AFTER("after a refused RENAME_NOREPLACE", r);
	SYS(syscall(SYS_renameat2, AT_FDCWD, "na", AT_FDCWD, "nc", RENAME_NOREPLACE));
	SYSERR(access("na", F_OK), ENOENT);
	return expect_content("nc", "A");
}

static const char *t_link(void)
{
	SYS(link("data.txt", "linked.txt"));
	struct stat a, b;
	SYS(stat("data.txt", &a));
	SYS(stat("linked.txt", &b));
	if (a.st_ino != b.st_ino)
		FAIL("different inodes %lu and %lu", (unsigned long)a.st_ino, (unsigned long)b.st_ino);
	if (a.st_nlink != 2 || b.st_nlink != 2)
		FAIL("st_nlink %lu / %lu, expected 2", (unsigned long)a.st_nlink, (unsigned long)b.st_nlink);
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	SYS(stat("linked.txt", &b));
	if (b.st_nlink != 2)
		FAIL("after dropping caches, st_nlink %lu", (unsigned long)b.st_nlink);
	SYSERR(link("data.txt", "linked.txt"), EEXIST);
	return expect_content("linked.txt", DATA_TEXT);
}

static const char *t_unlink_link(void)
{
	PUT("l1", "x", 1);
	SYS(link("l1", "l2"));
	SYS(unlink("l1"));
	struct stat st;
	SYS(stat("l2", &st));
	if (st.st_nlink != 1)
		FAIL("st_nlink %lu after unlinking the other name, expected 1", (unsigned long)st.st_nlink);
	SYS(unlink("l2"));
	return NULL;
}

static const char *t_symlink(void)
{
	SYS(symlink("data.txt", "sym"));
	char buf[PATH_MAX];
	long n = SYS(readlink("sym", buf, sizeof(buf) - 1));
	buf[n] = '\0';
	if (strcmp(buf, "data.txt"))
		FAIL("readlink gives [%.300s]", buf);
	struct stat l, t, d;
	SYS(lstat("sym", &l));
	if (!S_ISLNK(l.st_mode) || l.st_size != 8)
		FAIL("lstat: mode %o size %lld, expected a symlink of size 8", l.st_mode,
		     (long long)l.st_size);
	SYS(stat("sym", &t));
	SYS(stat("data.txt", &d));
	if (t.st_ino != d.st_ino)
		FAIL("stat through the link gives inode %lu, data.txt is %lu", (unsigned long)t.st_ino,
		     (unsigned long)d.st_ino);
	SYSERR(symlink("x", "sym"), EEXIST);
	return expect_content("sym", DATA_TEXT);
}

static const char *t_chmod(void)
{
	PUT("mode4755", "#!/bin/sh\n", 10);
	struct stat st;
	SYS(chmod("mode4755", 0600));
	SYS(stat("mode4755", &st));
	if ((st.st_mode & 07777) != 0600)
		FAIL("mode %o after chmod 0600", st.st_mode & 07777);
	int fd = SYS(open("mode4755", O_RDONLY));
	SYS(fchmod(fd, 0640));
	SYS(fstat(fd, &st));
	SYS(close(fd));
	if ((st.st_mode & 07777) != 0640)
		FAIL("mode %o after fchmod 0640", st.st_mode & 07777);
	return NULL;
}

/* The share is suid=off (the default): the chmod succeeds, the host stores no setuid bit,
 * and the guest is told so at once. */
static const char *t_chmod_suid(void)
{
	struct stat st;
	SYS(chmod("mode4755", 04755));
	SYS(stat("mode4755", &st));
	if ((st.st_mode & 07777) != 0755)
		FAIL("mode %o after chmod 04755 (want 0755: suid=off)", st.st_mode & 07777);
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	SYS(stat("mode4755", &st));
	if ((st.st_mode & 07777) != 0755)
		FAIL("after dropping caches, mode %o", st.st_mode & 07777);
	return NULL;
}

static const char *t_chown(void)
{
	PUT("owned", "owned\n", 6);
	SYS(chown("owned", OWNER_UID, OWNER_GID));
	struct stat st;
	SYS(stat("owned", &st));
	if (st.st_uid != OWNER_UID || st.st_gid != OWNER_GID)
		FAIL("owner %u:%u after chown %u:%u", st.st_uid, st.st_gid, OWNER_UID, OWNER_GID);
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	SYS(stat("owned", &st));
	if (st.st_uid != OWNER_UID || st.st_gid != OWNER_GID)
		FAIL("after dropping caches, owner %u:%u", st.st_uid, st.st_gid);
	/* -1 leaves that id alone. */
	SYS(chown("owned", -1, OWNER_GID));
	SYS(stat("owned", &st));
	if (st.st_uid != OWNER_UID || st.st_gid != OWNER_GID)
		FAIL("owner %u:%u after chown -1:%u", st.st_uid, st.st_gid, OWNER_GID);
	return NULL;
}

static const char *t_utimens(void)
{
	PUT("times", "times\n", 6);
	struct timespec ts[2] = { { ATIME, 0 }, { MTIME, 0 } };
	SYS(utimensat(AT_FDCWD, "times", ts, 0));
	struct stat st;
	SYS(stat("times", &st));
	if (st.st_atime != ATIME || st.st_mtime != MTIME)
		FAIL("atime %lld mtime %lld, expected %d and %d", (long long)st.st_atime,
		     (long long)st.st_mtime, ATIME, MTIME);
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	SYS(stat("times", &st));
	if (st.st_mtime != MTIME)
		FAIL("after dropping caches, mtime %lld", (long long)st.st_mtime);
	return NULL;
}

static const char *t_utime_now(void)
{
	PUT("times-now", "x", 1);
	struct timespec old[2] = { { MTIME, 0 }, { MTIME, 0 } };
	SYS(utimensat(AT_FDCWD, "times-now", old, 0));
	struct timespec now[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };
	SYS(utimensat(AT_FDCWD, "times-now", now, 0));
	time_t t = time(NULL);
	struct stat st;
	SYS(stat("times-now", &st));
	/* The host's clock set the times: allow for skew between it and the guest's clock. */
	if (llabs((long long)(st.st_mtime - t)) > 3600 || llabs((long long)(st.st_atime - t)) > 3600)
		FAIL("after UTIME_NOW: atime %lld mtime %lld, guest time %lld", (long long)st.st_atime,
		     (long long)st.st_mtime, (long long)t);
	/* UTIME_OMIT leaves one time alone. */
	struct timespec omit[2] = { { 0, UTIME_OMIT }, { MTIME + 5, 0 } };
	time_t atime = st.st_atime;
	SYS(utimensat(AT_FDCWD, "times-now", omit, 0));
	SYS(stat("times-now", &st));
	if (st.st_mtime != MTIME + 5 || st.st_atime != atime)
		FAIL("after UTIME_OMIT atime, mtime %d: atime %lld mtime %lld", MTIME + 5,
		     (long long)st.st_atime, (long long)st.st_mtime);
	return NULL;
}

static const char *t_setxattr(void)
{
	PUT("xattr.txt", "xattr\n", 6);
	SYS(setxattr("xattr.txt", "user.minivmm", "hello", 5, 0));
	char buf[64];
	long n = SYS(getxattr("xattr.txt", "user.minivmm", NULL, 0));
	if (n != 5)
		FAIL("getxattr size query gives %ld, expected 5", n);
	n = SYS(getxattr("xattr.txt", "user.minivmm", buf, sizeof(buf)));
	if (n != 5 || memcmp(buf, "hello", 5))
		FAIL("getxattr gives %ld bytes [%.*s]", n, (int)(n > 0 ? n : 0), buf);
	SYSERR(getxattr("xattr.txt", "user.minivmm", buf, 2), ERANGE);
	SYSERR(getxattr("xattr.txt", "user.missing", buf, sizeof(buf)), ENODATA);
	SYSERR(setxattr("xattr.txt", "user.minivmm", "x", 1, XATTR_CREATE), EEXIST);
	SYSERR(setxattr("xattr.txt", "user.missing", "x", 1, XATTR_REPLACE), ENODATA);
	return NULL;
}

/* Does a listxattr buffer hold name? */
static int has_name(const char *list, long len, const char *name)
{
	for (long i = 0; i < len; i += strlen(list + i) + 1)
		if (!strcmp(list + i, name))
			return 1;
	return 0;
}

static const char *t_listxattr(void)
{
	SYS(setxattr("xattr.txt", "user.other", "2", 1, 0));
	char list[4096];
	long size = SYS(listxattr("xattr.txt", NULL, 0));
	long n = SYS(listxattr("xattr.txt", list, sizeof(list)));
	if (n != size)
		FAIL("size query gives %ld, list is %ld bytes", size, n);
	if (n == 0 || list[n - 1] != '\0')
		FAIL("list of %ld bytes is not NUL-terminated", n);
	if (!has_name(list, n, "user.minivmm") || !has_name(list, n, "user.other"))
		FAIL("user.minivmm and user.other not both listed (%ld bytes)", n);
	return NULL;
}

static const char *t_removexattr(void)
{
	SYS(removexattr("xattr.txt", "user.other"));
	char buf[16], list[4096];
	SYSERR(getxattr("xattr.txt", "user.other", buf, sizeof(buf)), ENODATA);
	SYSERR(removexattr("xattr.txt", "user.other"), ENODATA);
	long n = SYS(listxattr("xattr.txt", list, sizeof(list)));
	if (has_name(list, n, "user.other") || !has_name(list, n, "user.minivmm"))
		FAIL("after removexattr the list is wrong");
	return NULL;
}

static const char *t_flock(void)
{
	PUT("flock.txt", "lock", 4);
	int a = SYS(open("flock.txt", O_RDWR));
	int b = SYS(open("flock.txt", O_RDWR));
	SYS(flock(a, LOCK_EX | LOCK_NB));
	SYSERR(flock(b, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	SYSERR(flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK);
	SYS(flock(a, LOCK_UN));
	SYS(flock(b, LOCK_SH | LOCK_NB));
	SYS(flock(a, LOCK_SH | LOCK_NB));  /* shared locks coexist */
	SYSERR(flock(a, LOCK_EX | LOCK_NB), EWOULDBLOCK);
	SYS(close(b));                      /* closing releases b's lock */
	SYS(flock(a, LOCK_EX | LOCK_NB));
	SYS(close(a));
	return NULL;
}

static const char *t_ofd(void)
{
	PUT("ofd.txt", "0123456789", 10);
	int a = SYS(open("ofd.txt", O_RDWR));
	int b = SYS(open("ofd.txt", O_RDWR));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100 };
	SYS(fcntl(a, F_OFD_SETLK, &fl));
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10 };
	errno = 0;
	if (fcntl(b, F_OFD_SETLK, &fl) != -1)
		FAIL("a second fd got an overlapping write lock");
	if (errno != EAGAIN && errno != EACCES)
		FAIL("F_OFD_SETLK on the second fd: %s, expected EAGAIN", strerror(errno));
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10 };
	SYS(fcntl(b, F_OFD_GETLK, &fl));
	if (fl.l_type != F_WRLCK || fl.l_start != 0 || fl.l_len != 100 || fl.l_pid != -1)
		FAIL("F_OFD_GETLK reports type %d start %lld len %lld pid %d, expected F_WRLCK 0 100 -1",
		     fl.l_type, (long long)fl.l_start, (long long)fl.l_len, fl.l_pid);
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 200, .l_len = 10 };
	SYS(fcntl(b, F_OFD_SETLK, &fl));  /* no overlap */
	fl = (struct flock){ .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	SYS(fcntl(a, F_OFD_SETLK, &fl));
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10 };
	SYS(fcntl(b, F_OFD_SETLK, &fl));
	SYS(close(a));
	SYS(close(b));
	return NULL;
}

/* What F_GETLK in another process said about our lock's holder (shared with the child). */
static volatile pid_t *getlk_pid;

static const char *child_getlk(void *arg)
{
	(void)arg;
	int fd = SYS(open("posix.txt", O_RDWR));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100 };
	SYS(fcntl(fd, F_GETLK, &fl));
	if (fl.l_type != F_WRLCK || fl.l_start != 0 || fl.l_len != 10)
		FAIL("F_GETLK reports type %d start %lld len %lld, expected F_WRLCK(%d) 0 10",
		     fl.l_type, (long long)fl.l_start, (long long)fl.l_len, F_WRLCK);
	*getlk_pid = fl.l_pid;
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 1 };
	errno = 0;
	if (fcntl(fd, F_SETLK, &fl) != -1)
		FAIL("F_SETLK got a write lock inside another process's lock");
	if (errno != EAGAIN && errno != EACCES)
		FAIL("conflicting F_SETLK: %s, expected EAGAIN or EACCES", strerror(errno));
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
	errno = 0;
	if (fcntl(fd, F_SETLK, &fl) != -1)
		FAIL("F_SETLK got a read lock inside another process's write lock");
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 20, .l_len = 10 };
	SYS(fcntl(fd, F_SETLK, &fl));  /* no overlap */
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 40, .l_len = 1 };
	SYS(fcntl(fd, F_GETLK, &fl));
	if (fl.l_type != F_UNLCK)
		FAIL("F_GETLK on a free range reports type %d, expected F_UNLCK", fl.l_type);
	return NULL;
}

static const char *child_setlk(void *arg)
{
	(void)arg;
	int fd = SYS(open("posix.txt", O_RDWR));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	SYS(fcntl(fd, F_SETLK, &fl));
	return NULL;
}

static const char *t_posix_locks(void)
{
	PUT("posix.txt", "0123456789", 10);
	int fd = SYS(open("posix.txt", O_RDWR));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	SYS(fcntl(fd, F_SETLK, &fl));
	/* Our own lock does not conflict with us. */
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	SYS(fcntl(fd, F_GETLK, &fl));
	if (fl.l_type != F_UNLCK)
		FAIL("F_GETLK on our own lock reports type %d, expected F_UNLCK", fl.l_type);
	getlk_pid = mmap(NULL, sizeof(*getlk_pid), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			 -1, 0);
	if (getlk_pid == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	*getlk_pid = -2;
	const char *r = in_child(child_getlk, NULL);
	if (r)
		return r;
	fl = (struct flock){ .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	SYS(fcntl(fd, F_SETLK, &fl));
	r = in_child(child_setlk, NULL);
	if (r)
		FAIL_AFTER("after unlocking", r);
	SYS(close(fd));
	return NULL;
}

static const char *t_mmap(void)
{
	static unsigned char want[MMAP_SIZE], got[MMAP_SIZE + 16];
	pattern(want, 0, MMAP_SIZE, MMAP_SEED);
	int fd = SYS(open("mmap.bin", O_RDWR | O_CREAT | O_TRUNC, 0644));
	SYS(ftruncate(fd, MMAP_SIZE));
	unsigned char *p = mmap(NULL, MMAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		FAIL("mmap MAP_SHARED: %s", strerror(errno));
	memcpy(p, want, MMAP_SIZE);
	SYS(msync(p, MMAP_SIZE, MS_SYNC));
	SYS(munmap(p, MMAP_SIZE));
	SYS(close(fd));
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	long n = get("mmap.bin", got, sizeof(got));
	if (n < 0)
		FAIL("read back: %s", strerror(-n));
	if (n != MMAP_SIZE)
		FAIL("read back %ld bytes, expected %d", n, MMAP_SIZE);
	if (memcmp(want, got, MMAP_SIZE))
		FAIL("content differs from byte %zu on", first_diff(want, got, MMAP_SIZE));
	/* And a read-only mapping of what is now on the host. */
	fd = SYS(open("mmap.bin", O_RDONLY));
	p = mmap(NULL, MMAP_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		FAIL("mmap read-only: %s", strerror(errno));
	int same = !memcmp(p, want, MMAP_SIZE);
	munmap(p, MMAP_SIZE);
	close(fd);
	if (!same)
		FAIL("read-only mapping differs from the data written");
	return NULL;
}

/* Create many/f00000..f09999 with the guest keeping every new inode cached (as a guest
 * unpacking a big tree does).  If the host runs out of something, say so, then drop the
 * guest's caches and carry on, so that the readdir check still gets its 10000 entries. */
static const char *t_create_many(void)
{
	SYS(mkdir("many", 0755));
	char name[32];
	int first_fail = -1, first_errno = 0;
	for (int i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "many/f%05d", i);
		if (mknod(name, S_IFREG | 0644, 0) == 0)
			continue;
		int e = errno;
		if (first_fail < 0)
			first_fail = i, first_errno = e;
		drop_caches();
		if (mknod(name, S_IFREG | 0644, 0) < 0) {
			e = errno;
			FAIL("create %s: %s (and again after dropping the guest's caches: %s)", name,
			     strerror(first_errno), strerror(e));
		}
	}
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	if (first_fail >= 0)
		FAIL("creating file %d of %d: %s (with %d new inodes cached by the guest); the "
		     "rest were created after dropping the guest's caches", first_fail + 1, MANY,
		     strerror(first_errno), first_fail);
	return NULL;
}

static const char *t_readdir(void)
{
	static unsigned char seen[MANY];
	DIR *d = opendir("many");
	if (!d)
		FAIL("opendir: %s", strerror(errno));
	int count = 0, dots = 0;
	struct dirent *e;
	errno = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
			dots++;
			continue;
		}
		char *end;
		long i = e->d_name[0] == 'f' ? strtol(e->d_name + 1, &end, 10) : -1;
		if (i < 0 || i >= MANY || *end || strlen(e->d_name) != 6) {
			closedir(d);
			FAIL("unexpected entry [%s]", e->d_name);
		}
		if (seen[i]++) {
			closedir(d);
			FAIL("entry %s returned twice", e->d_name);
		}
		if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) {
			closedir(d);
			FAIL("entry %s has d_type %d", e->d_name, e->d_type);
		}
		count++;
	}
	int err = errno;
	closedir(d);
	if (err)
		FAIL("readdir: %s after %d entries", strerror(err), count);
	if (count != MANY)
		for (int i = 0; i < MANY; i++)
			if (!seen[i])
				FAIL("%d entries, expected %d; f%05d missing", count, MANY, i);
	if (count != MANY)
		FAIL("%d entries, expected %d", count, MANY);
	if (dots != 2)
		FAIL("saw %d of . and .., expected 2", dots);
	return NULL;
}

static const char *t_statfs(void)
{
	struct statfs s;
	SYS(statfs(".", &s));
	NOTE("f_bsize %ld f_blocks %llu f_bfree %llu f_files %llu", (long)s.f_bsize,
	     (unsigned long long)s.f_blocks, (unsigned long long)s.f_bfree,
	     (unsigned long long)s.f_files);
	if (s.f_bsize <= 0 || s.f_blocks == 0)
		FAIL("%s", note);
	if (s.f_bfree > s.f_blocks || s.f_bavail > s.f_blocks)
		FAIL("free blocks exceed the total: %s", note);
	if (s.f_namelen <= 0)
		FAIL("f_namelen %ld", (long)s.f_namelen);
	return NULL;
}

static const char *t_unlink(void)
{
	PUT("gone.txt", "x", 1);
	SYS(unlink("gone.txt"));
	struct stat st;
	SYSERR(stat("gone.txt", &st), ENOENT);
	SYSERR(unlink("gone.txt"), ENOENT);
	/* An open file survives its unlinking. */
	int fd = SYS(open("open-unlinked.txt", O_RDWR | O_CREAT | O_TRUNC, 0644));
	SYS(unlink("open-unlinked.txt"));
	SYS(write(fd, "still here", 10));
	char buf[16];
	long n = SYS(pread(fd, buf, sizeof(buf), 0));
	SYS(close(fd));
	if (n != 10 || memcmp(buf, "still here", 10))
		FAIL("an unlinked open file reads back %ld bytes", n);
	return NULL;
}

static const char *t_rmdir(void)
{
	SYS(mkdir("full", 0755));
	PUT("full/f", "x", 1);
	SYSERR(rmdir("full"), ENOTEMPTY);
	SYS(unlink("full/f"));
	SYS(rmdir("full"));
	struct stat st;
	SYSERR(stat("full", &st), ENOENT);
	SYSERR(rmdir("data.txt"), ENOTDIR);
	return NULL;
}

static const char *t_excl(void)
{
	SYSERR(open("data.txt", O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST);
	return expect_content("data.txt", DATA_TEXT);
}

static const char *t_enoent(void)
{
	SYSERR(open("no-such-file", O_RDONLY), ENOENT);
	SYSERR(open("no-such-dir/file", O_WRONLY | O_CREAT, 0644), ENOENT);
	SYSERR(open("data.txt/x", O_RDONLY), ENOTDIR);
	return NULL;
}

static const char *t_fifo(void)
{
	SYS(mknod("fifo", S_IFIFO | 0644, 0));
	struct stat st;
	SYS(lstat("fifo", &st));
	if (!S_ISFIFO(st.st_mode))
		FAIL("fifo has mode %o", st.st_mode);
	/* It is a FIFO to the guest: data goes through the guest kernel. */
	int fd = SYS(open("fifo", O_RDWR | O_NONBLOCK));
	SYS(write(fd, "p", 1));
	char c = 0;
	SYS(read(fd, &c, 1));
	SYS(close(fd));
	if (c != 'p')
		FAIL("read [%c] through the FIFO", c);
	return NULL;
}

/* ---- every file type through every namespace op (pjdfstest's "regular fifo block char
 * socket" cycle, plus directories and symlinks) ---- */

#define NODE_CHR_MAJOR 1         /* the guest's /dev/null: the guest kernel opens it */
#define NODE_CHR_MINOR 3
#define NODE_BLK_MAJOR 7
#define NODE_BLK_MINOR 0

static const char *type_name(mode_t type)
{
	switch (type) {
	case S_IFREG: return "regular file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symlink";
	case S_IFIFO: return "FIFO";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	default: return "block device";
	}
}

static dev_t type_rdev(mode_t type)
{
	if (type == S_IFCHR)
		return makedev(NODE_CHR_MAJOR, NODE_CHR_MINOR);
	return type == S_IFBLK ? makedev(NODE_BLK_MAJOR, NODE_BLK_MINOR) : 0;
}

/* Make one file of `type` at path with permission bits 0644 (symlinks: 0777). */
static int type_make(const char *path, mode_t type)
{
	int fd;

	switch (type) {
	case S_IFREG:
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		return fd < 0 ? -1 : close(fd);
	case S_IFDIR:
		return mkdir(path, 0644);
	case S_IFLNK:
		return symlink("target-of-the-link", path);
	default:
		return mknod(path, type | 0644, type_rdev(type));
	}
}

/* lstat(path) is of `type` with permission bits `perm`, owner uid:gid (-1: any). */
static const char *type_check(const char *path, mode_t type, mode_t perm, uid_t uid, gid_t gid,
			      struct stat *st)
{
	SYS(lstat(path, st));
	if ((st->st_mode & S_IFMT) != type)
		FAIL("%s: mode %o, expected a %s", path, st->st_mode, type_name(type));
	if (type != S_IFLNK && (st->st_mode & 07777) != perm)
		FAIL("%s: permission bits %o, expected %o", path, st->st_mode & 07777, perm);
	if ((type == S_IFCHR || type == S_IFBLK) && st->st_rdev != type_rdev(type))
		FAIL("%s: device %u:%u, expected %u:%u", path, major(st->st_rdev), minor(st->st_rdev),
		     major(type_rdev(type)), minor(type_rdev(type)));
	if (uid != (uid_t)-1 && (st->st_uid != uid || st->st_gid != gid))
		FAIL("%s: owner %u:%u, expected %u:%u", path, st->st_uid, st->st_gid, uid, gid);
	return NULL;
}

/* Create, stat, chown, chmod, rename, link and unlink one file of each type in types/;
 * nothing is left behind. */
static const char *type_cycle(mode_t type)
{
	char a[64], b[64], l[64];
	struct stat st, st2;
	const char *r;
	ino_t ino;

	if (mkdir("types", 0755) < 0 && errno != EEXIST)
		FAIL("mkdir types: %s", strerror(errno));
	snprintf(a, sizeof(a), "types/%o", (unsigned)type);
	snprintf(b, sizeof(b), "types/%o.renamed", (unsigned)type);
	snprintf(l, sizeof(l), "types/%o.link", (unsigned)type);
	if (type_make(a, type) < 0)
		FAIL("create a %s: %s", type_name(type), strerror(errno));
	if ((r = type_check(a, type, 0644, 0, 0, &st)))
		return r;
	ino = st.st_ino;
	SYS(lchown(a, OWNER_UID, OWNER_GID));
	if ((r = type_check(a, type, 0644, OWNER_UID, OWNER_GID, &st)))
		FAIL_AFTER("after lchown", r);
	if (type != S_IFLNK) {
		SYS(chmod(a, 0640));
		if ((r = type_check(a, type, 0640, OWNER_UID, OWNER_GID, &st)))
			FAIL_AFTER("after chmod 0640", r);
	}
	if (drop_caches() < 0)
		NOTE("could not drop caches");
	if ((r = type_check(a, type, type == S_IFLNK ? 0 : 0640, OWNER_UID, OWNER_GID, &st)))
		FAIL_AFTER("after dropping the guest's caches", r);
	SYS(rename(a, b));
	SYSERR(lstat(a, &st2), ENOENT);
	if ((r = type_check(b, type, type == S_IFLNK ? 0 : 0640, OWNER_UID, OWNER_GID, &st)))
		FAIL_AFTER("after rename", r);
	if (st.st_ino != ino)
		FAIL("rename changed the inode number: %lu, was %lu", (unsigned long)st.st_ino,
		     (unsigned long)ino);
	if (type == S_IFDIR) {
		SYSERR(link(b, l), EPERM);
		SYS(rmdir(b));
	} else {
		SYS(link(b, l));
		SYS(lstat(l, &st2));
		if (st2.st_ino != ino || st2.st_nlink != 2 || (st2.st_mode & S_IFMT) != type)
			FAIL("link: inode %lu, %lu links, mode %o; expected inode %lu, 2 links, a %s",
			     (unsigned long)st2.st_ino, (unsigned long)st2.st_nlink, st2.st_mode,
			     (unsigned long)ino, type_name(type));
		SYS(unlink(b));
		if ((r = type_check(l, type, type == S_IFLNK ? 0 : 0640, OWNER_UID, OWNER_GID, &st)))
			FAIL_AFTER("after unlinking the other link", r);
		if (st.st_nlink != 1)
			FAIL("%lu links after unlinking one of two", (unsigned long)st.st_nlink);
		SYS(unlink(l));
		SYSERR(lstat(l, &st2), ENOENT);
	}
	SYSERR(lstat(b, &st2), ENOENT);
	return NULL;
}

static const char *t_type_reg(void) { return type_cycle(S_IFREG); }
static const char *t_type_dir(void) { return type_cycle(S_IFDIR); }
static const char *t_type_lnk(void) { return type_cycle(S_IFLNK); }
static const char *t_type_fifo(void) { return type_cycle(S_IFIFO); }
static const char *t_type_sock(void) { return type_cycle(S_IFSOCK); }
static const char *t_type_chr(void) { return type_cycle(S_IFCHR); }
static const char *t_type_blk(void) { return type_cycle(S_IFBLK); }

/* Device nodes left for the host (devices=mapped: each a 0600 regular file there, the
 * node in its trusted.minivmm.node attribute).  The character device is the guest's own
 * /dev/null to the guest: its kernel opens it, the host file is never touched. */
static const char *t_nodes_left(void)
{
	struct stat st;
	const char *r;
	char c;

	SYS(mkdir("nodes", 0755));
	SYS(mknod("nodes/chr", S_IFCHR | 0620, type_rdev(S_IFCHR)));
	SYS(chown("nodes/chr", OWNER_UID, OWNER_GID));
	SYS(chmod("nodes/chr", 0666));
	SYS(mknod("nodes/blk", S_IFBLK | 0660, type_rdev(S_IFBLK)));   /* umask 022: 0640 */
	if ((r = type_check("nodes/blk", S_IFBLK, 0640, 0, 0, &st)))
		FAIL_AFTER("mknod 0660 with umask 022", r);
	SYS(chmod("nodes/blk", 0660));
	if ((r = type_check("nodes/chr", S_IFCHR, 0666, OWNER_UID, OWNER_GID, &st)))
		return r;
	if ((r = type_check("nodes/blk", S_IFBLK, 0660, 0, 0, &st)))
		return r;
	int fd = SYS(open("nodes/chr", O_RDWR));
	long w = write(fd, "x", 1);
	long n = read(fd, &c, 1);
	close(fd);
	if (w != 1 || n != 0)
		FAIL("nodes/chr (1:3) is not the guest's /dev/null: write %ld, read %ld", w, n);
	SYS(stat("nodes/chr", &st));
	if (st.st_size != 0)
		FAIL("nodes/chr has size %lld after a write", (long long)st.st_size);
	return NULL;
}

static const char *t_big(void)
{
	unsigned char *want = malloc(BIG_SIZE), *got = malloc(BIG_SIZE);
	if (!want || !got)
		FAIL("out of memory");
	pattern(want, 0, BIG_SIZE, BIG_SEED);
	int fd = SYS(open("big.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644));
	size_t done = 0;
	int writes = 0, reads = 0;
	while (done < BIG_SIZE) {
		long w = SYS(write(fd, want + done, BIG_SIZE - done));
		if (w == 0)
			FAIL("write returned 0 at %zu", done);
		done += w;
		writes++;
	}
	SYS(fsync(fd));
	SYS(close(fd));
	struct stat st;
	SYS(stat("big.bin", &st));
	if (st.st_size != BIG_SIZE)
		FAIL("size %lld after writing %u bytes", (long long)st.st_size, BIG_SIZE);
	if (drop_caches() < 0)
		NOTE("could not drop caches; ");
	fd = SYS(open("big.bin", O_RDONLY));
	done = 0;
	for (;;) {
		long r = SYS(read(fd, got + done, BIG_SIZE - done));
		if (r == 0)
			break;
		done += r;
		reads++;
		if (done == BIG_SIZE)
			break;
	}
	if (done != BIG_SIZE)
		FAIL("read back %zu bytes, expected %u", done, BIG_SIZE);
	if (memcmp(want, got, BIG_SIZE))
		FAIL("content differs from byte %zu on", first_diff(want, got, BIG_SIZE));
	/* Unaligned reads across page boundaries. */
	unsigned char small[10000];
	off_t offs[] = { 1, 4095, 123457, BIG_SIZE - 10000 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		long r = SYS(pread(fd, small, sizeof(small), offs[i]));
		if (r != (long)sizeof(small) || memcmp(small, want + offs[i], sizeof(small)))
			FAIL("pread of %zu bytes at %lld: %ld bytes, content %s", sizeof(small),
			     (long long)offs[i], r, memcmp(small, want + offs[i], r) ? "differs" : "ok");
	}
	long r = SYS(pread(fd, small, sizeof(small), BIG_SIZE - 100));
	SYS(close(fd));
	if (r != 100)
		FAIL("pread across EOF gives %ld bytes, expected 100", r);
	free(want);
	free(got);
	size_t l = strlen(note);
	snprintf(note + l, sizeof(note) - l, "%d write call%s, %d read call%s", writes,
		 writes > 1 ? "s" : "", reads, reads > 1 ? "s" : "");
	return NULL;
}

static const char *t_fsync(void)
{
	int fd = SYS(open("data.txt", O_WRONLY));
	SYS(fsync(fd));
	SYS(fdatasync(fd));
	SYS(close(fd));
	return NULL;
}

static const char *t_fsync_dir(void)
{
	int fd = SYS(open(".", O_RDONLY | O_DIRECTORY));
	SYS(fsync(fd));
	SYS(close(fd));
	return NULL;
}

static const char *t_seek_hole(void)
{
	const off_t far = 1 << 20, size = far + 4096;
	static char block[4096];
	memset(block, 'd', sizeof(block));
	int fd = SYS(open("sparse.bin", O_RDWR | O_CREAT | O_TRUNC, 0644));
	SYS(pwrite(fd, block, sizeof(block), 0));
	SYS(pwrite(fd, block, sizeof(block), far));
	SYS(fsync(fd));
	char hole[4096];
	long n = SYS(pread(fd, hole, sizeof(hole), 8192));
	for (long i = 0; i < n; i++)
		if (hole[i])
			FAIL("byte %ld of the hole reads 0x%02x", 8192 + i, (unsigned char)hole[i]);
	off_t d0 = SYS(lseek(fd, 0, SEEK_DATA));
	off_t h0 = SYS(lseek(fd, 0, SEEK_HOLE));
	if (d0 != 0)
		FAIL("SEEK_DATA from 0 gives %lld", (long long)d0);
	if (h0 == size) {
		/* No hole information: the whole file is data (allowed by POSIX). */
		off_t d = SYS(lseek(fd, 8192, SEEK_DATA));
		if (d != 8192)
			FAIL("no holes reported, but SEEK_DATA from 8192 gives %lld", (long long)d);
		NOTE("holes not reported: SEEK_HOLE gives EOF, the host file system or server does "
		     "not support them");
	} else if (h0 >= 4096 && h0 < far) {
		off_t d1 = SYS(lseek(fd, h0, SEEK_DATA));
		off_t h1 = SYS(lseek(fd, far, SEEK_HOLE));
		if (d1 <= h0 || d1 > far || h1 != size)
			FAIL("SEEK_HOLE 0 -> %lld, SEEK_DATA %lld -> %lld, SEEK_HOLE %lld -> %lld "
			     "(file size %lld)", (long long)h0, (long long)h0, (long long)d1,
			     (long long)far, (long long)h1, (long long)size);
		NOTE("hole at %lld, data again at %lld", (long long)h0, (long long)d1);
	} else {
		FAIL("SEEK_HOLE from 0 gives %lld (file size %lld)", (long long)h0, (long long)size);
	}
	SYSERR(lseek(fd, size, SEEK_DATA), ENXIO);
	SYSERR(lseek(fd, size + 10, SEEK_HOLE), ENXIO);
	SYS(close(fd));
	return NULL;
}

static const char *t_manifest(void)
{
	static const char manifest[] =
		"data.txt   regular file 0644, content \"" "hello from the minivmm guest\\n" "\", 2 links\n"
		"linked.txt hard link to data.txt\n"
		"renamed.txt content \"" "renamed by the guest\\n" "\"\n"
		"sym        symlink -> data.txt\n"
		"mode4755   mode 0755 (chmod 04755 on a suid=off share)\n"
		"owned      owner 1234:5678\n"
		"times      mtime 1000000000\n"
		"xattr.txt  user.minivmm=hello\n"
		"mmap.bin   8292 bytes of pattern 2 (fsprobe --pattern 2 8292)\n"
		"big.bin    8388608 bytes of pattern 1 (fsprobe --pattern 1 8388608)\n"
		"fifo       FIFO\n"
		"nodes/chr  character device 1:3, 0666, owner 1234:5678 (host: 0600 file + attribute)\n"
		"nodes/blk  block device 7:0, 0660 (host: 0600 file + attribute)\n"
		"many       directory of 10000 empty files f00000..f09999\n"
		"dir        directory 0755\n";
	PUT("MANIFEST", manifest, sizeof(manifest) - 1);
	return expect_content("MANIFEST", manifest);
}

static int write_pattern(unsigned seed, unsigned long long len)
{
	static unsigned char buf[1 << 16];
	for (unsigned long long off = 0; off < len;) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		pattern(buf, off, n, seed);
		if (fwrite(buf, 1, n, stdout) != n)
			return 1;
		off += n;
	}
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--pattern"))
		return write_pattern(strtoul(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
	if (argc != 2) {
		fprintf(stderr, "usage: fsprobe WORKDIR | fsprobe --pattern SEED BYTES\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	umask(022);
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST) {
		printf("not ok - mkdir %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (chdir(argv[1]) < 0) {
		printf("not ok - chdir %s: %s\n", argv[1], strerror(errno));
		return 1;
	}

	run("mkdir", t_mkdir);
	run("create + write + read back", t_create);
	run("pwrite/pread at offsets", t_pwrite);
	run("O_APPEND writes at the end", t_append);
	run("ftruncate shrinks", t_ftruncate);
	run("truncate grows (zero-filled)", t_truncate_grow);
	run("truncate shrinks", t_truncate_shrink);
	run("open O_TRUNC empties", t_otrunc);
	run("rename", t_rename);
	run("rename over an existing file", t_rename_replace);
	run("renameat2 RENAME_EXCHANGE", t_exchange);
	run("renameat2 RENAME_NOREPLACE: EEXIST on an existing name", t_noreplace);
	run("link: st_nlink 2, same inode", t_link);
	run("unlink one of two links: st_nlink 1", t_unlink_link);
	run("symlink + readlink", t_symlink);
	run("chmod and fchmod", t_chmod);
	run("chmod 04755 succeeds without the setuid bit (suid=off)", t_chmod_suid);
	run("chown 1234:5678", t_chown);
	run("utimensat with explicit times", t_utimens);
	run("utimensat UTIME_NOW and UTIME_OMIT", t_utime_now);
	run("setxattr + getxattr (user.*)", t_setxattr);
	run("listxattr", t_listxattr);
	run("removexattr", t_removexattr);
	run("flock: LOCK_EX conflict between two open file descriptions", t_flock);
	run("fcntl OFD locks: F_OFD_SETLK conflict between two fds, F_OFD_GETLK", t_ofd);
	run("fcntl F_SETLK/F_GETLK between processes", t_posix_locks);
	/* Not checked: F_GETLK's l_pid.  Guest locks are host open-file-description locks
	 * (so guests really exclude each other), and the kernel reports their holder as
	 * pid -1; minivmm answers 0, as virtiofsd does.  A known limitation (README). */
	run("mmap MAP_SHARED write + msync, read back through read()", t_mmap);
	run("create 10000 files in one directory", t_create_many);
	run("readdir of 10000 entries, each seen once", t_readdir);
	run("statfs", t_statfs);
	run("unlink", t_unlink);
	run("rmdir: ENOTEMPTY on a non-empty directory, then removed", t_rmdir);
	run("O_CREAT|O_EXCL on an existing file: EEXIST", t_excl);
	run("open of a missing file: ENOENT", t_enoent);
	run("mknod S_IFIFO", t_fifo);
	run("every type: regular file: create, stat, chown, chmod, rename, link, unlink", t_type_reg);
	run("every type: directory: create, stat, chown, chmod, rename, rmdir", t_type_dir);
	run("every type: symlink: create, stat, lchown, rename, link, unlink", t_type_lnk);
	run("every type: FIFO: create, stat, chown, chmod, rename, link, unlink", t_type_fifo);
	run("every type: socket: create, stat, chown, chmod, rename, link, unlink", t_type_sock);
	run("every type: char device: create, stat, chown, chmod, rename, link, unlink", t_type_chr);
	run("every type: block device: create, stat, chown, chmod, rename, link, unlink", t_type_blk);
	run("device nodes left for the host; the char device is the guest's own", t_nodes_left);
	run("8 MiB write + read back (pattern)", t_big);
	run("fsync, fdatasync", t_fsync);
	run("fsync of a directory", t_fsync_dir);
	run("lseek SEEK_DATA/SEEK_HOLE on a sparse file", t_seek_hole);
	run("MANIFEST of the files left for the host", t_manifest);

	printf("fsprobe: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
