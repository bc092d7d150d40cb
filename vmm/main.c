/* minivmm: command line, then machine assembly in start-up order.  Everything that can be
 * wrong with the user's input is checked before /dev/kvm is opened. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/share.h"
#include "vmm/cpio.h"
#include "vmm/launch.h"
#include "vmm/machine.h"
#include "vmm/vm.h"
#include "vmm/run.h"
#include "vmm/sandbox.h"

#define DEFAULT_MEM     (512ULL << 20)
#define MIN_MEM         (32ULL << 20)
#define DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=-1"
/* With a command, the guest's own output is the command's: keep the kernel quiet.  A later
 * loglevel= in --cmdline wins. */
#define CMD_CMDLINE     " quiet loglevel=1"

struct opts {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	const char *mem_str;
	uint64_t mem;
	long cpus;
	enum machine_transport transport;
	bool rng;
	bool kernel_cache;
	enum sandbox_mode sandbox;
	struct share shares[MACHINE_MAX_VIRTIO];
	int nshares;
	char **cmd;
	int ncmd;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: minivmm --kernel BZIMAGE [options] [-- CMD [ARG...]]\n"
		"       minivmm run [options] -- CMD [ARG...]   (see minivmm run --help)\n"
		"Boot a Linux guest on KVM. With -- CMD, run CMD in the guest image and exit with its status.\n"
		"\n"
		"  --kernel FILE   Linux bzImage (x86_64, boot protocol 2.12+)\n"
		"  --initrd FILE   initramfs; with -- CMD defaults to the guest image next to minivmm\n"
		"                  (build/guest/initrd.img)\n"
		"  --cmdline STR   extra kernel parameters, appended to \"" DEFAULT_CMDLINE "\"\n"
		"  --mem SIZE      guest memory, e.g. 512M, 2G (default 512M; a bare number is MiB)\n"
		"  --cpus N        vCPUs (default 1)\n"
		"  --transport T   virtio transport: pci (default) or mmio\n"
		"  --rng, --no-rng virtio-rng entropy device (default on)\n"
		"  --no-kernel-cache  boot the bzImage as is (default: its kernel is decompressed once\n"
		"                  on the host, cached in ~/.cache/minivmm/kernels and loaded directly)\n"
		"  --share tag=NAME,path=DIR[,ro][,cache=never|auto|always][,queues=N][,threads=N][,xattr=on|off]\n"
		"          [,dax=SIZE][,suid=on|off][,devices=mapped|host|deny][,owner=host|mapped]\n"
		"                  share DIR with the guest over virtio-fs (repeatable); the guest\n"
		"                  image mounts it at /mnt/NAME.  dax=SIZE (a multiple of 2M, 8M-16G):\n"
		"                  a window of SIZE through which file data is mapped into the guest\n"
		"                  (mounted -o dax; no guest page cache for file data).  devices=: what\n"
		"                  a guest's mknod of a device makes: an inert host file the guest sees\n"
		"                  as the node (mapped, the default), a real node (host), EPERM (deny).\n"
		"                  owner=mapped: run unprivileged, chowns the host refuses are kept\n"
		"                  in an attribute and shown to the guest\n"
		"  --sandbox on|none  confine minivmm (default on: per-thread seccomp filters, and as\n"
		"                  root a mount namespace holding only the shares and fewer\n"
		"                  capabilities); none turns it off, with a warning\n"
		"  --help          this text;  --version  the version\n"
		"\n"
		"Exit status: the command's (0-255) or 0 when the guest powers off; 1 bad input or\n"
		"start-up failure; 122 the guest touched a DAX mapping of a host file past its end (the\n"
		"file was truncated on the host); 123 guest reboot/reset (incl. panic); 125 guest crash\n"
		"(triple fault, KVM error); 130 Ctrl-A x typed on the console.\n");
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_KERNEL = 256, O_INITRD, O_CMDLINE, O_MEM, O_CPUS, O_TRANSPORT, O_RNG, O_NO_RNG,
	       O_SHARE, O_NO_KCACHE, O_SANDBOX, O_HELP, O_VERSION };
	static const struct option lopts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "cmdline", required_argument, NULL, O_CMDLINE },
		{ "mem", required_argument, NULL, O_MEM },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "transport", required_argument, NULL, O_TRANSPORT },
		{ "rng", no_argument, NULL, O_RNG },
		{ "no-rng", no_argument, NULL, O_NO_RNG },
		{ "share", required_argument, NULL, O_SHARE },
		{ "no-kernel-cache", no_argument, NULL, O_NO_KCACHE },
		{ "sandbox", required_argument, NULL, O_SANDBOX },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ 0 },
	};
	*o = (struct opts){ .mem = DEFAULT_MEM, .cpus = 1, .transport = TRANSPORT_PCI, .rng = true,
			    .kernel_cache = true };
	opterr = 0;
	int c;
	/* '+': stop at the first non-option, so CMD's own options are never ours. */
	while ((c = getopt_long(argc, argv, "+:hV", lopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case O_KERNEL: o->kernel = optarg; break;
		case O_INITRD: o->initrd = optarg; break;
		case O_CMDLINE: o->cmdline = optarg; break;
		case O_MEM:
			o->mem_str = optarg;
			if (gmem_parse_size(optarg, &o->mem))
				die("--mem '%s' is not a size (use e.g. 512M or 2G)", optarg);
			break;
		case O_CPUS:
			errno = 0;
			o->cpus = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || o->cpus < 1)
				die("--cpus '%s' must be a whole number of at least 1", optarg);
			break;
		case O_TRANSPORT:
			if (!strcmp(optarg, "pci"))
				o->transport = TRANSPORT_PCI;
			else if (!strcmp(optarg, "mmio"))
				o->transport = TRANSPORT_MMIO;
			else
				die("--transport '%s' is not a transport (pci or mmio)", optarg);
			break;
		case O_SHARE: {
			char err[256];
			if (o->nshares == MACHINE_MAX_VIRTIO - 1)
				die("too many --share options (at most %d)", MACHINE_MAX_VIRTIO - 1);
			struct share *sh = &o->shares[o->nshares];
			if (share_parse(optarg, sh, err, sizeof(err)))
				die("%s", err);
			for (int i = 0; i < o->nshares; i++)
				if (!strcmp(o->shares[i].tag, sh->tag))
					die("--share: tag '%s' is used twice", sh->tag);
			o->nshares++;
			break;
		}
		case O_NO_KCACHE: o->kernel_cache = false; break;
		case O_SANDBOX:
			if (sandbox_parse(optarg, &o->sandbox))
				die("--sandbox '%s' is not a sandbox mode (on or none)", optarg);
			break;
		case O_RNG: o->rng = true; break;
		case O_NO_RNG: o->rng = false; break;
		case 'h': case O_HELP: usage(stdout); exit(0);
		case 'V': case O_VERSION: printf("minivmm %s\n", MINIVMM_VERSION); exit(0);
		case ':': die("option '%s' needs a value", argv[optind - 1]);
		default: die("unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc) {
		if (strcmp(argv[optind - 1], "--") != 0)
			die("unexpected argument '%s' (a guest command goes after --)", argv[optind]);
		o->cmd = argv + optind;
		o->ncmd = argc - optind;
	} else if (optind > 0 && strcmp(argv[optind - 1], "--") == 0) {
		die("nothing after -- (give the command to run in the guest)");
	}
	if (!o->kernel)
		die("no kernel given (--kernel BZIMAGE)");
	if (o->mem < MIN_MEM)
		die("--mem %s is too small (at least %llu MiB)", o->mem_str, MIN_MEM >> 20);
	uint64_t host = (uint64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
	if (o->mem > host)
		die("--mem %s is more than this host's %llu MiB of memory", o->mem_str,
		    (unsigned long long)(host >> 20));
}

/* The guest image built next to the binary (build/minivmm -> build/guest/initrd.img), or
 * installed beside it (PREFIX/bin/minivmm -> PREFIX/libexec/minivmm/guest/initrd.img). */
static const char *default_guest_image(void)
{
	static char path[PATH_MAX];
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	const char *dir = dirname(exe);
	static const char *const where[] = { "%s/guest/initrd.img",
					     "%s/../libexec/minivmm/guest/initrd.img" };
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		if (snprintf(path, sizeof(path), where[i], dir) >= (int)sizeof(path))
			continue;
		if (access(path, R_OK) == 0)
			return path;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	/* Guest output to a closed pipe must fail the write (EPIPE), not kill the VMM. */
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "run"))
		return run_main(argc - 1, argv + 1);
	struct opts o;
	parse_args(argc, argv, &o);

	/* Input files first: a bad kernel is reported before anything touches KVM. */
	struct launch_kernel lk;
	launch_kernel_load(&lk, o.kernel, o.kernel_cache, isatty(STDERR_FILENO));
	if (o.cmd && !o.initrd) {
		o.initrd = default_guest_image();
		if (!o.initrd)
			die("-- CMD needs the guest image: run 'make guest' or give --initrd");
	}
	size_t isize = 0;
	uint8_t *ibuf = o.initrd ? launch_read_file("initrd", o.initrd, &isize) : NULL;
	bool raw = !isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO);
	if (o.cmd) {
		struct cpio c = { 0 };
		if (cpio_guest_cmd(&c, o.cmd, o.ncmd, raw))
			die("out of memory building the guest command");
		ibuf = cpio_append(ibuf, &isize, &c);
		cpio_free(&c);
		if (!ibuf)
			die("out of memory building the initrd");
	}

	char cmdline[4096];
	int n = snprintf(cmdline, sizeof(cmdline), "%s%s", DEFAULT_CMDLINE, o.cmd ? CMD_CMDLINE : "");
	/* The guest image mounts each share at /mnt/TAG. */
	for (int i = 0; i < o.nshares && n < (int)sizeof(cmdline); i++)
		n += snprintf(cmdline + n, sizeof(cmdline) - n, " minivmm.share=%s%s", o.shares[i].tag,
			      o.shares[i].dax ? ":dax" : "");
	if (o.cmdline && n < (int)sizeof(cmdline))
		n += snprintf(cmdline + n, sizeof(cmdline) - n, " %s", o.cmdline);
	if (n >= (int)sizeof(cmdline))
		die("--cmdline is too long");

	struct launch l = {
		.kernel = &lk, .initrd = ibuf, .initrd_size = isize, .cmdline = cmdline,
		.mem = o.mem, .mem_str = o.mem_str, .mem_default = "512M", .cpus = o.cpus,
		.transport = o.transport, .rng = o.rng, .shares = o.shares, .nshares = o.nshares,
		.serial_out = STDOUT_FILENO, .serial_in = STDIN_FILENO, .epipe_fd = -1,
		.sandbox = o.sandbox,
	};
	exit(launch_run(&l));
}
