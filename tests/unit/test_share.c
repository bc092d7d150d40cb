/* --share parsing: every user mistake is one message naming it, before the guest starts. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
