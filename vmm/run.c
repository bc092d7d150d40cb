/* minivmm run: options, kernel choice, the guest image for that kernel (built once with
 * guest/mkinitrd and cached), the share list, the spec the guest side (guest/minivmm-run.c)
 * reads, and the detour through the emulated KVM host where this machine's KVM cannot
 * boot Linux.  Every problem with the user's input is one line before any guest starts. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs/share.h"
#include "virtio/console.h"
#include "vmm/cpio.h"
#include "vmm/launch.h"
#include "vmm/run.h"
#include "vmm/vm.h"

#define RUN_DEFAULT_MEM  (1ULL << 30)
#define RUN_MIN_MEM      (64ULL << 20)
/* rng, console: the rest of the virtio slots are shares (the root among them). */
#define RUN_MAX_SHARES   (MACHINE_MAX_VIRTIO - 2)
#define RUN_CMDLINE      "console=ttyS0 reboot=k panic=-1"
#define RUN_QUIET        " quiet loglevel=1"
/* Bump when what the image builder is given changes meaning (it is also keyed on the
 * builder's own files). */
#define RUN_IMAGE_FORMAT "minivmm-run-image-1"
#define RUN_MAX_WORDS    4096
#define DEFAULT_PATH     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct run_share {
	char path[PATH_MAX];
	bool ro;
};

struct run_opts {
	const char *kernel;
	long cpus;
	uint64_t mem;
	const char *mem_str;
	struct run_share shares[RUN_MAX_SHARES];
	int nshares;
	char **env;
	int nenv;
	unsigned timeout;
	bool verbose, quiet;
	enum sandbox_mode sandbox;
	char **cmd;
	int ncmd;
};

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: minivmm run [options] -- CMD [ARG...]\n"
		"Run CMD in a throwaway guest that boots this host's own system: / read-only over\n"
		"virtio-fs, the current directory read-write at its own path, CMD as you, there.\n"
		"\n"
		"  --kernel FILE     bzImage (default /boot/vmlinuz-$(uname -r), else the newest one)\n"
		"  --cpus N          vCPUs (default 1)\n"
		"  --mem SIZE        guest memory (default 1G)\n"
		"  --rw DIR          also share DIR read-write at its own path (repeatable)\n"
		"  --ro DIR          also share DIR read-only at its own path (repeatable)\n"
		"  --env NAME=VALUE  set in CMD's environment (repeatable; PATH, HOME, TERM and\n"
		"                    LANG are passed on from here)\n"
		"  --timeout SECS    stop the guest after SECS seconds (status 124)\n"
		"  --verbose         the guest's kernel and init messages on stderr\n"
		"  -q, --quiet       no notes or progress lines on stderr (kernel fallback,\n"
		"                    emulated host, sandbox, first-run image builds)\n"
		"  --sandbox on|none confine minivmm (default on; see minivmm --help)\n"
		"\n"
		"Exit status: CMD's; 128+N when it was killed by signal N; 127 CMD not found;\n"
		"1 bad input or start-up failure; 123 guest rebooted or panicked; 124 --timeout\n"
		"expired; 125 guest crashed or could not set up CMD's world.\n"
		"Where this machine's KVM cannot boot Linux (PVM, no /dev/kvm), minivmm run runs\n"
		"itself inside the emulated KVM host (tools/with-kvm); MINIVMM_NO_EMUHOST=1 stops it.\n");
}

static void add_share(struct run_opts *o, const char *opt, const char *dir, bool ro)
{
	char real[PATH_MAX];
	struct stat st;
	if (!realpath(dir, real) || stat(real, &st) < 0)
		die("run: %s '%s': %s", opt, dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die("run: %s '%s' is not a directory", opt, dir);
	if (!strcmp(real, "/")) {
		if (ro)
			return;   /* the root is always there, read-only */
		die("run: %s '%s': the host's / is shared read-only; share a subdirectory", opt, dir);
	}
	/* The same directory twice: the later option wins, as on any command line. */
	for (int i = 0; i < o->nshares; i++) {
		if (!strcmp(o->shares[i].path, real)) {
			o->shares[i].ro = ro;
			return;
		}
	}
	if (o->nshares == RUN_MAX_SHARES)
		die("run: too many shares (at most %d with the current directory)", RUN_MAX_SHARES);
	snprintf(o->shares[o->nshares].path, PATH_MAX, "%s", real);
	o->shares[o->nshares++].ro = ro;
}

static void run_parse(int argc, char **argv, struct run_opts *o)
{
	enum { O_KERNEL = 256, O_CPUS, O_MEM, O_RW, O_RO, O_ENV, O_TIMEOUT, O_VERBOSE, O_QUIET,
	       O_SANDBOX, O_HELP };
	static const struct option lopts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "mem", required_argument, NULL, O_MEM },
		{ "rw", required_argument, NULL, O_RW },
		{ "ro", required_argument, NULL, O_RO },
		{ "env", required_argument, NULL, O_ENV },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "sandbox", required_argument, NULL, O_SANDBOX },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	*o = (struct run_opts){ .cpus = 1, .mem = RUN_DEFAULT_MEM };
	o->env = calloc(argc, sizeof(*o->env));
	if (!o->env)
		die("out of memory");
	/* The working directory first: an explicit --ro or --rw of it overrides. */
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		die("run: cannot tell the current directory: %s", strerror(errno));
	if (strcmp(cwd, "/"))
		add_share(o, "the current directory", cwd, false);
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+:hq", lopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case O_KERNEL: o->kernel = optarg; break;
		case O_CPUS:
			errno = 0;
			o->cpus = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || o->cpus < 1)
				die("run: --cpus '%s' must be a whole number of at least 1", optarg);
			break;
		case O_MEM:
			o->mem_str = optarg;
			if (gmem_parse_size(optarg, &o->mem))
				die("run: --mem '%s' is not a size (use e.g. 512M or 2G)", optarg);
			break;
		case O_RW: add_share(o, "--rw", optarg, false); break;
		case O_RO: add_share(o, "--ro", optarg, true); break;
		case O_ENV: {
			const char *eq = strchr(optarg, '=');
			size_t n = eq ? (size_t)(eq - optarg) : 0;
			if (!n || strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					 "0123456789_") != n || (optarg[0] >= '0' && optarg[0] <= '9'))
				die("run: --env '%s' is not NAME=VALUE", optarg);
			o->env[o->nenv++] = optarg;
			break;
		}
		case O_TIMEOUT: {
			errno = 0;
			long t = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || t < 1 || t > 1000000)
				die("run: --timeout '%s' must be a whole number of seconds (1 or more)",
				    optarg);
			o->timeout = t;
			break;
		}
		case O_VERBOSE: o->verbose = true; break;
		case 'q': case O_QUIET: o->quiet = true; break;
		case O_SANDBOX:
			if (sandbox_parse(optarg, &o->sandbox))
				die("run: --sandbox '%s' is not a sandbox mode (on or none)", optarg);
			break;
		case 'h': case O_HELP: run_usage(stdout); exit(0);
		case ':': die("run: option '%s' needs a value", argv[optind - 1]);
		default: die("run: unknown option '%s' (see minivmm run --help)", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		die("run: no command given (minivmm run [options] -- CMD [ARG...])");
	o->cmd = argv + optind;
	o->ncmd = argc - optind;
	/* What guest/minivmm-run.c takes (MAX_LIST there); PATH, HOME, TERM, LANG come on top. */
	if (o->ncmd > RUN_MAX_WORDS || o->nenv > RUN_MAX_WORDS - 4)
		die("run: too many %s (at most %d)", o->ncmd > RUN_MAX_WORDS ? "command words" :
		    "--env options", o->ncmd > RUN_MAX_WORDS ? RUN_MAX_WORDS : RUN_MAX_WORDS - 4);
	if (o->mem < RUN_MIN_MEM)
		die("run: --mem %s is too small (at least %llu MiB)", o->mem_str, RUN_MIN_MEM >> 20);
	uint64_t host = (uint64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
	if (o->mem > host)
		die("run: --mem %s is more than this host's %llu MiB of memory",
		    o->mem_str ? o->mem_str : "1G", (unsigned long long)(host >> 20));
}

/* The running kernel's image, else the newest installed one (with a note). */
static const char *pick_kernel(const struct run_opts *o)
{
	static char path[PATH_MAX];
	if (o->kernel) {
		if (access(o->kernel, R_OK) < 0)
			die("run: cannot read kernel '%s': %s", o->kernel, strerror(errno));
		return o->kernel;
	}
	struct utsname u;
	if (uname(&u) == 0) {
		snprintf(path, sizeof(path), "/boot/vmlinuz-%s", u.release);
		if (access(path, R_OK) == 0)
			return path;
	}
	DIR *d = opendir("/boot");
	char best[NAME_MAX + 1] = "";
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "vmlinuz-", 8) && e->d_name[8] &&
		    (!best[0] || strverscmp(e->d_name, best) > 0))
			snprintf(best, sizeof(best), "%s", e->d_name);
	if (d)
		closedir(d);
	if (!best[0])
		die("run: no kernel: /boot/vmlinuz-%s is missing and no /boot/vmlinuz-* exists "
		    "(give --kernel)", u.release);
	snprintf(path, sizeof(path), "/boot/%s", best);
	if (!o->quiet)
		fprintf(stderr, "minivmm: run: no /boot/vmlinuz-%s for the running kernel; using %s\n",
			u.release, path);
	return path;
}

/* The directory of the running binary (build/ in a build tree). */
static const char *exe_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0)
		die("run: cannot find the minivmm binary (/proc/self/exe): %s", strerror(errno));
	dir[n] = '\0';
	return dirname(dir);
}

/* PVM's /dev/kvm speaks the KVM API but cannot run an unmodified kernel; without /dev/kvm
 * there is nothing to run on.  Either way the emulated host can. */
static bool needs_emuhost(void)
{
	const char *no = getenv("MINIVMM_NO_EMUHOST"), *eh = getenv("MINIVMM_EMUHOST");
	if ((no && *no && strcmp(no, "0")) || (eh && !strcmp(eh, "0")))
		return false;
	return access("/sys/module/kvm_pvm", F_OK) == 0 || access("/dev/kvm", F_OK) < 0;
}

/* Where a helper (a repository path such as "guest/mkinitrd" or "tools/with-kvm") lives:
 * PREFIX/libexec/minivmm/REL next to an installed PREFIX/bin/minivmm, else in the
 * repository around a build tree's build/minivmm (whose own build/guest/minivmm-run is
 * the one built file).  Dies with one line naming the path when it is missing. */
static void helper_path(char *out, size_t len, const char *rel, const char *what)
{
	const char *dir = exe_dir();
	char lib[PATH_MAX];
	int n;
	if (snprintf(lib, sizeof(lib), "%s/../libexec/minivmm", dir) < (int)sizeof(lib) &&
	    access(lib, F_OK) == 0)
		n = snprintf(out, len, "%s/%s", lib, rel);
	else if (!strcmp(rel, "guest/minivmm-run"))
		n = snprintf(out, len, "%s/%s", dir, rel);
	else
		n = snprintf(out, len, "%s/../%s", dir, rel);
	if (n < 0 || (size_t)n >= len)
		die("run: the path of %s is too long", what);
	if (access(out, R_OK) < 0)
		die("run: %s '%s' is missing (an incomplete installation? run 'make install' "
		    "again, or minivmm from its build tree)", what, out);
}

static void __attribute__((noreturn)) reexec_emuhost(int argc, char **argv, bool quiet)
{
	char wk[PATH_MAX], exe[PATH_MAX];
	helper_path(wk, sizeof(wk), "tools/with-kvm", "the emulated KVM host (with-kvm)");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		die("run: cannot find the minivmm binary: %s", strerror(errno));
	exe[n] = '\0';
	char **av = calloc(argc + 5, sizeof(*av));
	if (!av)
		die("out of memory");
	int k = 0;
	av[k++] = wk;
	av[k++] = "--";
	av[k++] = exe;
	for (int i = 0; i < argc; i++)
		av[k++] = argv[i];
	av[k] = NULL;
	if (!quiet)
		fprintf(stderr, "minivmm: run: this machine's KVM cannot boot Linux (%s); running "
			"inside the emulated KVM host (tools/with-kvm)\n",
			access("/dev/kvm", F_OK) < 0 ? "no /dev/kvm" : "PVM");
	setenv("MINIVMM_EMUHOST", "1", 1);
	signal(SIGPIPE, SIG_DFL);   /* ignored dispositions survive exec */
	execv(wk, av);
	die("run: cannot run %s: %s", wk, strerror(errno));
}

/* The version a bzImage names: vmlinuz-VERSION, else the boot header's version string
 * (kernel_version at 0x20e points, from 0x200, at "VERSION (builder) #1 ..."). */
static void kernel_version(const struct launch_kernel *lk, char *out, size_t len)
{
	const char *base = strrchr(lk->path, '/');
	base = base ? base + 1 : lk->path;
	if (!strncmp(base, "vmlinuz-", 8) && base[8]) {
		snprintf(out, len, "%s", base + 8);
		return;
	}
	uint16_t off = lk->k.hdr.kernel_version;
	size_t at = 0x200 + (size_t)off;
	if (off && at < lk->size) {
		/* The file's bytes, not a C string: stop at its end whatever it holds. */
		size_t n = 0;
		while (at + n < lk->size && n < len - 1 && lk->buf[at + n] != ' ' && lk->buf[at + n])
			n++;
		if (n && n < len - 1 && at + n < lk->size) {
			memcpy(out, lk->buf + at, n);
			out[n] = '\0';
			return;
		}
	}
	die("run: cannot tell the version of kernel '%s' (name it vmlinuz-VERSION)", lk->path);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t fnv_file(uint64_t h, const char *what, const char *path)
{
	size_t n;
	uint8_t *b = launch_read_file(what, path, &n);
	h = fnv(h, b, n);
	free(b);
	return h;
}

/* Run guest/mkinitrd; on failure die with its last line, which names the problem (no
 * modules for the kernel, a module it lacks, no busybox-static...). */
static void build_image(const char *mkinitrd, const char *kver, const char *helper,
			const char *out)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("run: pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("run: fork: %s", strerror(errno));
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(pfd[1], 2);
		execl("/bin/sh", "sh", mkinitrd, "--kver", kver, "--extra-modules", "virtio_console",
		      "--optional-modules", "overlay", "--run-helper", helper, "-o", out,
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	char msg[4096];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(pfd[0], msg + len, sizeof(msg) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
		if (len == sizeof(msg) - 1) {   /* keep the tail: the last line matters */
			memmove(msg, msg + len / 2, len - len / 2);
			len -= len / 2;
		}
	}
	close(pfd[0]);
	msg[len] = '\0';
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	while (len && msg[len - 1] == '\n')
		msg[--len] = '\0';
	char *line = strrchr(msg, '\n');
	line = line ? line + 1 : msg;
	if (!strncmp(line, "mkinitrd: ", 10))
		line += 10;
	die("run: cannot build the guest image for kernel %s: %s", kver,
	    *line ? line : "guest/mkinitrd failed");
}

/* The guest image for this kernel: $XDG_CACHE_HOME/minivmm/run/KVER-KEY.img, KEY a hash
 * of the kernel file's identity (path, size, mtime) and of everything that makes the image
 * (the builder, the init, the guest helper).  Stale images of the same version go. */
static uint8_t *guest_image(const struct launch_kernel *lk, const char *kver, size_t *size,
			    bool progress)
{
	char mk[PATH_MAX], init[PATH_MAX], lib[PATH_MAX], helper[PATH_MAX];
	helper_path(mk, sizeof(mk), "guest/mkinitrd", "the guest image builder");
	helper_path(init, sizeof(init), "guest/init", "the guest init");
	helper_path(lib, sizeof(lib), "tools/lib/initramfs.sh", "the guest image builder library");
	helper_path(helper, sizeof(helper), "guest/minivmm-run", "the guest helper (build it with make)");

	struct stat ks;
	if (stat(lk->path, &ks) < 0)
		die("run: cannot stat kernel '%s': %s", lk->path, strerror(errno));
	char real[PATH_MAX];
	if (!realpath(lk->path, real))
		snprintf(real, sizeof(real), "%s", lk->path);
	uint64_t h = fnv(0xcbf29ce484222325ULL, RUN_IMAGE_FORMAT, sizeof(RUN_IMAGE_FORMAT));
	h = fnv(h, real, strlen(real) + 1);
	h = fnv(h, kver, strlen(kver) + 1);
	h = fnv(h, &ks.st_size, sizeof(ks.st_size));
	h = fnv(h, &ks.st_mtim, sizeof(ks.st_mtim));
	h = fnv_file(h, "guest image builder", mk);
	h = fnv_file(h, "guest init", init);
	h = fnv_file(h, "guest image builder library", lib);
	h = fnv_file(h, "guest helper (build it with make)", helper);

	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char cache[PATH_MAX] = "", img[PATH_MAX];
	if (xdg && xdg[0] == '/')
		snprintf(cache, sizeof(cache), "%s/minivmm/run", xdg);
	else if (home && home[0])
		snprintf(cache, sizeof(cache), "%s/.cache/minivmm/run", home);
	bool cached = cache[0];
	if (cached) {
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "%s", cache);
		for (char *s = cmd + 1; *s; s++)
			if (*s == '/') {
				*s = '\0';
				mkdir(cmd, 0755);
				*s = '/';
			}
		mkdir(cmd, 0755);
		struct stat cs;
		if (stat(cache, &cs) == 0 && !S_ISDIR(cs.st_mode))
			die("run: cache '%s' is not a directory", cache);
		cached = access(cache, W_OK) == 0;
		if (!cached && progress)
			fprintf(stderr, "minivmm: run: note: cannot write cache '%s'; building the "
				"guest image for this run only\n", cache);
	}
	char tmpdir[] = "/tmp/minivmm-run.XXXXXX";
	if (cached) {
		snprintf(img, sizeof(img), "%s/%s-%016llx.img", cache, kver, (unsigned long long)h);
	} else {
		/* No usable cache: build for this run only. */
		if (!mkdtemp(tmpdir))
			die("run: cannot create a temporary directory: %s", strerror(errno));
		snprintf(img, sizeof(img), "%s/initrd.img", tmpdir);
	}
	if (access(img, R_OK) < 0) {
		if (progress)
			fprintf(stderr, "minivmm: run: building the guest image for kernel %s (once)\n",
				kver);
		build_image(mk, kver, helper, img);
		if (cached) {
			/* Other images of this version are for an older kernel file or builder. */
			DIR *d = opendir(cache);
			struct dirent *e;
			size_t kl = strlen(kver);
			const char *mine = strrchr(img, '/') + 1;
			while (d && (e = readdir(d)))
				if (!strncmp(e->d_name, kver, kl) && e->d_name[kl] == '-' &&
				    strlen(e->d_name) == kl + 21 && strcmp(e->d_name, mine))
					unlinkat(dirfd(d), e->d_name, 0);
			if (d)
				closedir(d);
		}
	}
	uint8_t *buf = launch_read_file("guest image", img, size);
	if (!cached) {
		unlink(img);
		rmdir(tmpdir);
	}
	return buf;
}

static int cmp_share(const void *a, const void *b)
{
	/* Parents before children: a parent's path is a prefix, so shorter. */
	size_t la = strlen(((const struct run_share *)a)->path);
	size_t lb = strlen(((const struct run_share *)b)->path);
	return la < lb ? -1 : la > lb;
}

static void spec_put(char **buf, size_t *len, const char *key, const char *val)
{
	size_t kl = strlen(key) + 1, vl = strlen(val) + 1;
	char *b = realloc(*buf, *len + kl + vl);
	if (!b)
		die("out of memory");
	memcpy(b + *len, key, kl);
	memcpy(b + *len + kl, val, vl);
	*buf = b;
	*len += kl + vl;
}

/* stdin is worth forwarding when it carries something: a terminal, a pipe or socket, a
 * file.  /dev/null, other devices and a closed descriptor give CMD /dev/null. */
static bool stdin_forwarded(void)
{
	struct stat st;
	if (fstat(STDIN_FILENO, &st) < 0)
		return false;
	return isatty(STDIN_FILENO) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
	       S_ISREG(st.st_mode);
}

/* A cache path that exists but is no directory is the user's mistake (XDG_CACHE_HOME
 * pointing at a file): said before anything runs.  One that cannot be written is not:
 * the run goes on without it. */
static void cache_check(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char c[PATH_MAX];
	if (xdg && xdg[0] == '/')
		snprintf(c, sizeof(c), "%s/minivmm", xdg);
	else if (home && home[0])
		snprintf(c, sizeof(c), "%s/.cache/minivmm", home);
	else
		return;
	struct stat st;
	if (stat(c, &st) == 0 && !S_ISDIR(st.st_mode))
		die("run: cache '%s' is not a directory", c);
}

int run_main(int argc, char **argv)
{
	struct run_opts o;
	run_parse(argc, argv, &o);
	cache_check();
	const char *kpath = pick_kernel(&o);
	if (needs_emuhost())
		reexec_emuhost(argc, argv, o.quiet);

	struct launch_kernel lk;
	/* Long first runs say what they do: on a terminal unless -q, always with --verbose. */
	bool progress = o.verbose || (!o.quiet && isatty(STDERR_FILENO));
	launch_kernel_load(&lk, kpath, true, progress);
	char kver[256];
	kernel_version(&lk, kver, sizeof(kver));
	size_t isize;
	uint8_t *ibuf = guest_image(&lk, kver, &isize, progress);

	/* The spec guest/minivmm-run.c reads, and the shares in mount order. */
	qsort(o.shares, o.nshares, sizeof(o.shares[0]), cmp_share);
	static struct share shares[RUN_MAX_SHARES + 1];
	if (share_init(&shares[0], "root", "/", true))
		die("out of memory");
	/* The host's system does not change under a running command: let the guest cache
	 * it for long (fewer LOOKUP/GETATTR round trips at every exec). */
	shares[0].fuse.cache = FUSE_CACHE_ALWAYS;
	char *spec = NULL, num[32], cwd[PATH_MAX];
	size_t slen = 0;
	struct cpio c = { 0 };
	snprintf(num, sizeof(num), "%u", (unsigned)getuid());
	spec_put(&spec, &slen, "uid", num);
	snprintf(num, sizeof(num), "%u", (unsigned)getgid());
	spec_put(&spec, &slen, "gid", num);
	gid_t groups[256];
	int ng = getgroups(256, groups);
	for (int i = 0; i < ng; i++) {
		snprintf(num, sizeof(num), "%u", (unsigned)groups[i]);
		spec_put(&spec, &slen, "group", num);
	}
	if (!getcwd(cwd, sizeof(cwd)))
		die("run: cannot tell the current directory: %s", strerror(errno));
	spec_put(&spec, &slen, "cwd", cwd);
	bool fwd = stdin_forwarded();
	spec_put(&spec, &slen, "stdin", fwd ? "port" : "null");
	/* stdout and stderr on one file (2>&1, one terminal): two ports would lose their
	 * order, one keeps it. */
	struct stat so, se;
	bool merged = fstat(STDOUT_FILENO, &so) == 0 && fstat(STDERR_FILENO, &se) == 0 &&
		      so.st_dev == se.st_dev && so.st_ino == se.st_ino;
	spec_put(&spec, &slen, "stderr", merged ? "stdout" : "port");
	for (int i = 0; i < o.nshares; i++) {
		char tag[16], val[PATH_MAX + 32];
		snprintf(tag, sizeof(tag), "s%d", i);
		if (share_init(&shares[i + 1], tag, o.shares[i].path, o.shares[i].ro))
			die("out of memory");
		snprintf(val, sizeof(val), "%s:%s:%s", o.shares[i].ro ? "ro" : "rw", tag,
			 o.shares[i].path);
		spec_put(&spec, &slen, "share", val);
	}
	static const char *pass[] = { "PATH", "HOME", "TERM", "LANG" };
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
		const char *v = getenv(pass[i]);
		if (!v && !strcmp(pass[i], "PATH"))
			v = DEFAULT_PATH;
		if (!v)
			continue;
		char *kv;
		if (asprintf(&kv, "%s=%s", pass[i], v) < 0)
			die("out of memory");
		spec_put(&spec, &slen, "env", kv);
		free(kv);
	}
	for (int i = 0; i < o.nenv; i++)
		spec_put(&spec, &slen, "env", o.env[i]);
	for (int i = 0; i < o.ncmd; i++)
		spec_put(&spec, &slen, "arg", o.cmd[i]);
	cpio_add(&c, "minivmm", 0040755, NULL, 0);
	cpio_add(&c, "minivmm/run", 0100644, spec, slen);
	free(spec);
	if (cpio_finish(&c))
		die("out of memory building the guest command");
	ibuf = cpio_append(ibuf, &isize, &c);
	cpio_free(&c);
	if (!ibuf)
		die("out of memory building the initrd");

	struct virtio_console_io io = {
		.in_fd = fwd ? STDIN_FILENO : -1, .out_fd = STDOUT_FILENO, .err_fd = STDERR_FILENO,
	};
	struct launch l = {
		.kernel = &lk, .initrd = ibuf, .initrd_size = isize,
		.cmdline = o.verbose ? RUN_CMDLINE : RUN_CMDLINE RUN_QUIET,
		.mem = o.mem, .mem_str = o.mem_str, .mem_default = "1G", .cpus = o.cpus,
		.transport = TRANSPORT_PCI, .rng = true, .shares = shares, .nshares = o.nshares + 1,
		.serial_out = o.verbose ? STDERR_FILENO : -1, .serial_in = -1, .console = &io,
		.timeout = o.timeout, .epipe_fd = STDOUT_FILENO, .sandbox = o.sandbox,
		.quiet = o.quiet,
	};
	int status = launch_run(&l);
	if (status == VM_EXIT_TIMEOUT)
		vm_log("run: %s timed out after %u s (status 124)", o.cmd[0], o.timeout);
	else if (status == VM_EXIT_RESET && !o.verbose)
		vm_log("run: the guest rebooted or panicked (status 123; --verbose shows its console)");
	exit(status);
}
