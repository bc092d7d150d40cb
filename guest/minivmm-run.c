/* minivmm-run: the guest side of `minivmm run`, built static into its guest image and
 * exec'd by guest/init (as PID 1) when the image carries /minivmm/run.
 *
 * It makes the host's own system the command's world: the host's / (virtio-fs tag "root",
 * read-only) at /newroot with fresh /proc /sys /dev, tmpfs on /tmp and /run, /var made
 * writable by a tmpfs overlay (plain tmpfs without overlay), and every other share mounted at
 * its host path.  Then, in a child: chroot, the host user's uid/gid/groups, the given
 * environment, the host's working directory, stdio on the virtio-console ports
 * minivmm.stdin/stdout/stderr, and exec.  The child's status (128+N for signal N) goes to
 * minivmm through I/O port 0xf4.
 *
 * /minivmm/run is a list of NUL-terminated key, value pairs (minivmm writes it; vmm/run.c):
 *   uid N | gid N | group N (each supplementary group) | cwd PATH | stdin port|null |
 *   stderr port|stdout (stdout: the command's stderr goes to the stdout port, in order) |
 *   share MODE:TAG:PATH (MODE ro or rw; parents before children) | env NAME=VALUE | arg WORD
 *
 * Its own problems are reported as one "minivmm run: ..." line on the command's stderr
 * port (or the serial console if the ports never appeared) and status 125. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SPEC        "/minivmm/run"
#define NEWROOT     "/newroot"
#define STATUS_PORT 0xf4
#define SETUP_FAIL  125
#define MAX_LIST    4096
/* Port names arrive in control messages after the driver is up: wait this long for them
 * (generous: a guest under software emulation is slow). */
#define PORT_WAIT_MS 30000

static int err_fd = STDERR_FILENO;   /* the stderr port once found; the console before */

struct spec {
	long uid, gid;
	gid_t groups[MAX_LIST];
	int ngroups;
	const char *cwd;
	bool stdin_port;
	bool stderr_merged;   /* the host's stdout and stderr are one file: use one port */
	const char *shares[MAX_LIST];
	int nshares;
	char *env[MAX_LIST + 1];
	int nenv;
	char *argv[MAX_LIST + 1];
	int nargv;
};

static void say(const char *fmt, ...)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "minivmm run: ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	ssize_t w = write(err_fd, buf, n);
	(void)w;
}

/* Hand minivmm the status; this ends the machine. */
static void __attribute__((noreturn)) report(int status)
{
	sync();
	/* Through /dev/port (the kernel does the OUT), not ioperm + outb: a user-mode OUT
	 * after ioperm() faulted under QEMU/KVM in the emulated host, killing PID 1. */
	unsigned char b = status;
	int fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, &b, 1, STATUS_PORT) != 1)
		say("cannot report the status through /dev/port: %s", strerror(errno));
	/* minivmm has stopped the machine (the first stop wins, so a power-off racing in
	 * changes nothing); other VMMs ignore the port and get a power-off. */
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (!buf)
			break;
		if (n == cap) {
			char *b = realloc(buf, (cap *= 2) + 1);
			if (!b) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	close(fd);
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

static int spec_parse(struct spec *s)
{
	size_t len;
	char *buf = slurp(SPEC, &len);
	if (!buf)
		return -1;
	*s = (struct spec){ .uid = -1, .gid = -1 };
	char *p = buf, *end = buf + len;
	while (p < end) {
		char *key = p, *val = memchr(p, '\0', end - p);
		if (!val || ++val >= end)
			return -1;
		char *next = memchr(val, '\0', end - val);
		if (!next)
			return -1;
		p = next + 1;
		if (!strcmp(key, "uid"))
			s->uid = atol(val);
		else if (!strcmp(key, "gid"))
			s->gid = atol(val);
		else if (!strcmp(key, "group") && s->ngroups < MAX_LIST)
			s->groups[s->ngroups++] = atol(val);
		else if (!strcmp(key, "cwd"))
			s->cwd = val;
		else if (!strcmp(key, "stdin"))
			s->stdin_port = !strcmp(val, "port");
		else if (!strcmp(key, "stderr"))
			s->stderr_merged = !strcmp(val, "stdout");
		else if (!strcmp(key, "share") && s->nshares < MAX_LIST)
			s->shares[s->nshares++] = val;
		else if (!strcmp(key, "env") && s->nenv < MAX_LIST)
			s->env[s->nenv++] = val;
		else if (!strcmp(key, "arg") && s->nargv < MAX_LIST)
			s->argv[s->nargv++] = val;
	}
	return s->uid >= 0 && s->gid >= 0 && s->cwd && s->nargv > 0 ? 0 : -1;
}

/* The /dev node of the virtio port called `name`, opened with `flags`; -1 if absent. */
static int port_open(const char *name, int flags)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -1;
	int fd = -1;
	struct dirent *e;
	while (fd < 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[512], got[128];
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		int nf = open(path, O_RDONLY | O_CLOEXEC);
		if (nf < 0)
			continue;
		ssize_t n = read(nf, got, sizeof(got) - 1);
		close(nf);
		if (n <= 0)
			continue;
		got[n] = '\0';
		got[strcspn(got, "\n")] = '\0';
		if (strcmp(got, name))
			continue;
		snprintf(path, sizeof(path), "/dev/%s", e->d_name);
		fd = open(path, flags | O_CLOEXEC);
	}
	closedir(d);
	return fd;
}

static int port_wait(const char *name, int flags)
{
	for (int ms = 0; ms < PORT_WAIT_MS; ms += 2) {
		int fd = port_open(name, flags);
		if (fd >= 0)
			return fd;
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
	}
	return -1;
}

static void mkdirs(const char *path, mode_t mode)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, mode);
		*s = '/';
	}
	mkdir(p, mode);
}

static int mnt(const char *src, const char *dst, const char *type, unsigned long flags,
	       const char *data)
{
	if (mount(src, dst, type, flags, data) == 0)
		return 0;
	say("cannot mount %s on %s in the guest: %s", type, dst + strlen(NEWROOT), strerror(errno));
	return -1;
}

/* The host's / as the root, with the writable and per-boot parts of a running system. */
static int root_setup(const struct spec *s)
{
	mkdir(NEWROOT, 0755);
	if (mnt("root", NEWROOT, "virtiofs", MS_RDONLY, NULL) ||
	    mnt("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) ||
	    mnt("sysfs", NEWROOT "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) ||
	    mnt("devtmpfs", NEWROOT "/dev", "devtmpfs", MS_NOSUID, "mode=755"))
		return -1;
	mkdir(NEWROOT "/dev/pts", 0755);
	mkdir(NEWROOT "/dev/shm", 01777);
	if (mnt("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		"gid=5,mode=620,ptmxmode=666") ||
	    mnt("tmpfs", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") ||
	    mnt("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") ||
	    mnt("tmpfs", NEWROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755"))
		return -1;
	/* /var: the host's contents (package databases, caches) stay visible and writes land
	 * in memory.  Without overlay, an empty tmpfs is still better than EROFS. */
	mkdir("/varrw", 0755);
	if (mount("tmpfs", "/varrw", "tmpfs", 0, "mode=755") == 0 &&
	    mkdir("/varrw/upper", 0755) == 0 && mkdir("/varrw/work", 0755) == 0 &&
	    chmod("/varrw/upper", 0755) == 0 &&
	    /* "var/": a host /var of its own is a virtio-fs submount, and overlay refuses
	     * an automount point; the trailing slash mounts it first. */
	    mount("overlay", NEWROOT "/var", "overlay", 0,
		  "lowerdir=" NEWROOT "/var/,upperdir=/varrw/upper,workdir=/varrw/work") == 0) {
		/* overlay copies the lower's mode up on first write; nothing to do */
	} else if (mnt("tmpfs", NEWROOT "/var", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")) {
		return -1;
	} else {
		mkdir(NEWROOT "/var/tmp", 01777);
		chmod(NEWROOT "/var/tmp", 01777);
	}
	for (int i = 0; i < s->nshares; i++) {
		const char *v = s->shares[i];
		bool ro = !strncmp(v, "ro:", 3);
		const char *tag = v + 3, *path = strchr(tag, ':');
		if (!path)
			continue;
		char tagbuf[64], dst[4096];
		snprintf(tagbuf, sizeof(tagbuf), "%.*s", (int)(path - tag), tag);
		path++;
		snprintf(dst, sizeof(dst), NEWROOT "%s", path);
		struct stat st;
		if (stat(dst, &st) < 0)
			mkdirs(dst, 0755);   /* under a tmpfs: /tmp/x, /run/x */
		if (mnt(tagbuf, dst, "virtiofs", ro ? MS_RDONLY : 0, NULL))
			return -1;
	}
	return 0;
}

static void __attribute__((noreturn)) child(struct spec *s, int in, int out, int errp)
{
	setsid();
	if (chroot(NEWROOT) < 0) {
		say("cannot enter the host's root: %s", strerror(errno));
		_exit(SETUP_FAIL);
	}
	if (setgroups(s->ngroups, s->groups) < 0 || setgid(s->gid) < 0 || setuid(s->uid) < 0) {
		say("cannot switch to uid %ld gid %ld: %s", s->uid, s->gid, strerror(errno));
		_exit(SETUP_FAIL);
	}
	/* As the user: a directory only they may enter must still work, one others cannot
	 * enter must fail as it would on the host. */
	if (chdir(s->cwd) < 0) {
		say("cannot enter %s: %s", s->cwd, strerror(errno));
		_exit(SETUP_FAIL);
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errp, 2) < 0)
		_exit(SETUP_FAIL);
	err_fd = 2;
	close_range(3, ~0U, 0);
	signal(SIGPIPE, SIG_DFL);
	/* execvp searches the PATH of the environment it runs in: install it first. */
	s->env[s->nenv] = NULL;
	environ = s->env;
	s->argv[s->nargv] = NULL;
	execvp(s->argv[0], s->argv);
	int e = errno;
	if (e == ENOENT && !strchr(s->argv[0], '/')) {
		say("%s: command not found", s->argv[0]);
		_exit(127);
	}
	say("%s: %s", s->argv[0], strerror(e));
	_exit(e == ENOENT ? 127 : 126);
}

int main(void)
{
	static struct spec s;
	if (spec_parse(&s)) {
		say("%s is missing or malformed", SPEC);
		report(SETUP_FAIL);
	}
	int out = port_wait("minivmm.stdout", O_WRONLY);
	int errp = port_wait("minivmm.stderr", O_WRONLY);
	if (out < 0 || errp < 0) {
		say("the console ports minivmm.stdout/stderr did not appear (virtio_console missing?)");
		report(SETUP_FAIL);
	}
	err_fd = errp;
	int in = s.stdin_port ? port_wait("minivmm.stdin", O_RDONLY)
			      : open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		say("cannot open the command's stdin: %s", strerror(errno));
		report(SETUP_FAIL);
	}
	if (root_setup(&s))
		report(SETUP_FAIL);
	pid_t pid = fork();
	if (pid < 0) {
		say("fork: %s", strerror(errno));
		report(SETUP_FAIL);
	}
	if (pid == 0)
		child(&s, in, out, s.stderr_merged ? out : errp);
	close(in);
	close(out);
	close(errp);
	err_fd = STDERR_FILENO;   /* the console again: errp's number may be reused */
	/* PID 1 adopts every orphan: reap them all, report when the command itself ends. */
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			report(SETUP_FAIL);
		if (w != pid)
			continue;
		report(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
}
