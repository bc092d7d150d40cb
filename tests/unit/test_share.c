/* --share parsing: every user mistake is one message naming it, before the guest starts. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#include "fs/share.h"

static char err[256];

static void bad(const char *arg, const char *want)
{
	struct share sh;
	err[0] = '\0';
	cr_assert_eq(share_parse(arg, &sh, err, sizeof(err)), -EINVAL, "'%s' accepted", arg);
	cr_assert(strstr(err, want), "'%s': message [%s] lacks [%s]", arg, err, want);
	cr_assert_null(sh.path, "nothing left allocated after an error");
}

Test(share, defaults)
{
	struct share sh;
	cr_assert_eq(share_parse("tag=t,path=/tmp", &sh, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(sh.tag, "t");
	cr_assert_str_eq(sh.path, "/tmp");
	cr_assert_str_eq(sh.fuse.path, "/tmp");
	cr_assert_not(sh.fuse.readonly);
	cr_assert_eq(sh.fuse.cache, FUSE_CACHE_AUTO);
	cr_assert(sh.fuse.xattr);
	cr_assert_not(sh.fuse.suid, "a guest plants no setuid files unless allowed");
	cr_assert_eq(sh.fuse.devices, FUSE_DEVICES_MAPPED);
	cr_assert_not(sh.fuse.owner_mapped);
	cr_assert_eq(sh.queues, 1);
	cr_assert_eq(sh.threads, 4);
	share_free(&sh);
}

Test(share, every_option)
{
	struct share sh;
	cr_assert_eq(share_parse("path=/tmp,tag=data,ro,cache=never,queues=4,threads=16,xattr=off", &sh,
				 err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(sh.tag, "data");
	cr_assert(sh.fuse.readonly);
	cr_assert_eq(sh.fuse.cache, FUSE_CACHE_NEVER);
	cr_assert_eq(sh.queues, 4);
	cr_assert_eq(sh.threads, 16);
	cr_assert_eq(sh.fuse.threads, 16);
	cr_assert_not(sh.fuse.xattr);
	share_free(&sh);
	cr_assert_eq(share_parse("tag=a,path=/tmp,cache=always", &sh, err, sizeof(err)), 0);
	cr_assert_eq(sh.fuse.cache, FUSE_CACHE_ALWAYS);
	share_free(&sh);
	cr_assert_eq(share_parse("tag=a,path=/tmp,suid=on", &sh, err, sizeof(err)), 0, "%s", err);
	cr_assert(sh.fuse.suid);
	share_free(&sh);
	cr_assert_eq(share_parse("tag=a,path=/tmp,suid=on,suid=off", &sh, err, sizeof(err)), 0);
	cr_assert_not(sh.fuse.suid);
	share_free(&sh);
	cr_assert_eq(share_parse("tag=a,path=/tmp,owner=mapped", &sh, err, sizeof(err)), 0, "%s", err);
	cr_assert(sh.fuse.owner_mapped);
	share_free(&sh);
	cr_assert_eq(share_parse("tag=a,path=/tmp,owner=mapped,owner=host", &sh, err, sizeof(err)), 0);
	cr_assert_not(sh.fuse.owner_mapped);
	share_free(&sh);
}

Test(share, tag_of_36_bytes_is_the_limit)
{
	struct share sh;
	char arg[128];
	snprintf(arg, sizeof(arg), "tag=%s,path=/tmp", "abcdefghijklmnopqrstuvwxyz0123456789");
	cr_assert_eq(share_parse(arg, &sh, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strlen(sh.tag), 36);
	share_free(&sh);
	snprintf(arg, sizeof(arg), "tag=%s,path=/tmp", "abcdefghijklmnopqrstuvwxyz0123456789X");
	bad(arg, "tag must be 1 to 36 bytes");
}

Test(share, mistakes)
{
	bad("path=/tmp", "no tag= given");
	bad("tag=t", "no path= given");
	bad("tag=,path=/tmp", "tag must be 1 to 36 bytes");
	bad("tag=a:b,path=/tmp", "may not contain");
	bad("tag=t,path=/nonexistent-minivmm", "No such file or directory");
	bad("tag=t,path=/etc/passwd", "is not a directory");
	bad("tag=t,path=/tmp,cache=sometimes", "cache must be never, auto or always");
	bad("tag=t,path=/tmp,queues=0", "queues must be 1 to 16");
	bad("tag=t,path=/tmp,queues=17", "queues must be 1 to 16");
	bad("tag=t,path=/tmp,queues=-1", "queues must be 1 to 16");
	bad("tag=t,path=/tmp,queues=2x", "queues must be 1 to 16");
	bad("tag=t,path=/tmp,threads=65", "threads must be 1 to 64");
	bad("tag=t,path=/tmp,xattr=maybe", "xattr must be on or off");
	bad("tag=t,path=/tmp,suid=yes", "suid must be on or off");
	bad("tag=t,path=/tmp,devices=yes", "devices must be mapped, host or deny");
	bad("tag=t,path=/tmp,devices=", "devices must be mapped, host or deny");
	bad("tag=t,path=/tmp,owner=root", "owner must be host or mapped");
	bad("tag=t,path=/tmp,colour=blue", "unknown key 'colour'");
	bad("tag=t,path=/tmp,rw", "'rw' needs a value");
	bad("tag=t,path", "'path' needs a value");
}

Test(share, dax_window_sizes)
{
	static const struct { const char *v; uint64_t bytes; } ok[] = {
		{ "8M", 8ULL << 20 }, { "64M", 64ULL << 20 }, { "1G", 1ULL << 30 },
		{ "16G", 16ULL << 30 }, { "10", 10ULL << 20 }, { "8192K", 8ULL << 20 },
	};
	struct share sh;
	char arg[64];
	cr_assert_eq(share_parse("tag=t,path=/tmp", &sh, err, sizeof(err)), 0);
	cr_assert_eq(sh.dax, 0, "no DAX unless asked");
	share_free(&sh);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(arg, sizeof(arg), "tag=t,path=/tmp,dax=%s", ok[i].v);
		cr_assert_eq(share_parse(arg, &sh, err, sizeof(err)), 0, "%s: %s", arg, err);
		cr_assert_eq(sh.dax, ok[i].bytes, "%s", arg);
		share_free(&sh);
	}
	bad("tag=t,path=/tmp,dax=1M", "dax must be a multiple of 2M from 8M to 16G");
	bad("tag=t,path=/tmp,dax=6M", "dax must be a multiple of 2M from 8M to 16G");
	bad("tag=t,path=/tmp,dax=3M", "dax must be a multiple of 2M");
	bad("tag=t,path=/tmp,dax=0", "dax must be a multiple of 2M");
	bad("tag=t,path=/tmp,dax=17G", "dax must be a multiple of 2M from 8M to 16G");
	bad("tag=t,path=/tmp,dax=2097153B", "dax must be a multiple of 2M");
	bad("tag=t,path=/tmp,dax=lots", "dax must be a size");
	bad("tag=t,path=/tmp,dax=-2M", "dax must be a size");
	bad("tag=t,path=/tmp,dax=99999999999999999999G", "dax must be a size");
}

Test(share, devices_modes)
{
	static const struct { const char *arg; enum fuse_devices want; } ok[] = {
		{ "tag=a,path=/tmp,devices=mapped", FUSE_DEVICES_MAPPED },
		{ "tag=a,path=/tmp,devices=deny", FUSE_DEVICES_DENY },
		{ "tag=a,path=/tmp,devices=deny,devices=mapped", FUSE_DEVICES_MAPPED },
	};
	struct share sh;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(share_parse(ok[i].arg, &sh, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(sh.fuse.devices, ok[i].want, "%s", ok[i].arg);
		share_free(&sh);
	}
	if (geteuid() != 0)
		return;
	/* root has CAP_MKNOD (and /tmp is no nodev mount here: a warning line, no error) */
	cr_assert_eq(share_parse("tag=a,path=/tmp,devices=host", &sh, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sh.fuse.devices, FUSE_DEVICES_HOST);
	share_free(&sh);
}

/* Without CAP_MKNOD devices=host is refused at start-up (in a child that drops it). */
Test(share, devices_host_needs_cap_mknod)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	int st;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct share sh;
		if (syscall(SYS_capget, &h, d))
			_exit(2);
		d[CAP_MKNOD / 32].effective &= ~(1u << (CAP_MKNOD % 32));
		if (syscall(SYS_capset, &h, d))
			_exit(3);
		if (share_parse("tag=a,path=/tmp,devices=host", &sh, err, sizeof(err)) != -EINVAL)
			_exit(4);
		_exit(strstr(err, "devices=host needs CAP_MKNOD") ? 0 : 5);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}

Test(share, submounts_on_or_off)
{
	struct share sh;
	cr_assert_eq(share_parse("tag=t,path=/tmp", &sh, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(sh.fuse.no_submounts, "announced by default");
	share_free(&sh);
	cr_assert_eq(share_parse("tag=t,path=/tmp,submounts=off", &sh, err, sizeof(err)), 0);
	cr_assert(sh.fuse.no_submounts);
	share_free(&sh);
	cr_assert_eq(share_parse("tag=t,path=/tmp,submounts=on", &sh, err, sizeof(err)), 0);
	cr_assert_not(sh.fuse.no_submounts);
	share_free(&sh);
	bad("tag=t,path=/tmp,submounts=yes", "submounts must be on or off");
}
