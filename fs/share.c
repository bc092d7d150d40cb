/* --share option parsing.  Everything the user can get wrong is reported here, before the
 * guest starts, as one line naming the problem. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "fs/share.h"
#include "vmm/memory.h"
#include "vmm/vm.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* CAP_MKNOD in this process's effective set (root usually has it; a container may not). */
static bool have_cap_mknod(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d))
		return false;
	return d[CAP_MKNOD / 32].effective & (1u << (CAP_MKNOD % 32));
}

/* devices=host puts guest-made device nodes on the host for real: it needs CAP_MKNOD, and
 * such a node opens the host's device for any host user its mode lets in, unless the
 * host mounted the share nodev.  Refused without the capability, warned about once
 * otherwise (this runs at start-up only). */
static int share_check_devices(const char *arg, const struct share *sh, char *err,
			       size_t errlen)
{
	struct statvfs sv;

	if (sh->fuse.devices != FUSE_DEVICES_HOST)
		return 0;
	if (!have_cap_mknod())
		return fail(err, errlen, "--share '%s': devices=host needs CAP_MKNOD (run as root), "
			    "or use devices=mapped", arg);
	if (statvfs(sh->path, &sv) || !(sv.f_flag & ST_NODEV))
		vm_log("warning: share %s: devices=host: device nodes the guest makes are real on "
		       "the host, and %s is not on a nodev mount", sh->tag, sh->path);
	return 0;
}

static void share_defaults(struct share *sh)
{
	memset(sh, 0, sizeof(*sh));
	sh->queues = 1;
	sh->threads = 4;
	sh->fuse.cache = FUSE_CACHE_AUTO;
	sh->fuse.xattr = true;
	sh->fuse.threads = sh->threads;
}

int share_init(struct share *sh, const char *tag, const char *path, bool readonly)
{
	share_defaults(sh);
	if (!*tag || strlen(tag) > SHARE_TAG_MAX)
		return -EINVAL;
	strcpy(sh->tag, tag);
	sh->path = strdup(path);
	if (!sh->path)
		return -ENOMEM;
	sh->fuse.path = sh->path;
	sh->fuse.readonly = readonly;
	return 0;
}

int share_parse(const char *arg, struct share *sh, char *err, size_t errlen)
{
	share_defaults(sh);

	char *copy = strdup(arg), *save = NULL;
	if (!copy)
		return -ENOMEM;
	int ret = 0;
	bool have_tag = false;
	for (char *kv = strtok_r(copy, ",", &save); kv && !ret; kv = strtok_r(NULL, ",", &save)) {
		char *val = strchr(kv, '=');
		if (val)
			*val++ = '\0';
		if (!strcmp(kv, "ro") && !val) {
			sh->fuse.readonly = true;
		} else if (!val) {
			ret = fail(err, errlen, "--share '%s': '%s' needs a value", arg, kv);
		} else if (!strcmp(kv, "tag")) {
			if (!*val || strlen(val) > SHARE_TAG_MAX)
				ret = fail(err, errlen, "--share '%s': tag must be 1 to %d bytes", arg,
					   SHARE_TAG_MAX);
			else if (strpbrk(val, " \t\n:"))
				ret = fail(err, errlen, "--share '%s': tag may not contain spaces or ':'", arg);
			else
				strcpy(sh->tag, val), have_tag = true;
		} else if (!strcmp(kv, "path")) {
			free(sh->path);
			sh->path = strdup(val);
			if (!sh->path)
				ret = -ENOMEM;
		} else if (!strcmp(kv, "cache")) {
			if (!strcmp(val, "never"))
				sh->fuse.cache = FUSE_CACHE_NEVER;
			else if (!strcmp(val, "auto"))
				sh->fuse.cache = FUSE_CACHE_AUTO;
			else if (!strcmp(val, "always"))
				sh->fuse.cache = FUSE_CACHE_ALWAYS;
			else
				ret = fail(err, errlen, "--share '%s': cache must be never, auto or always", arg);
		} else if (!strcmp(kv, "queues")) {
			if (!parse_uint(val, 1, SHARE_QUEUES_MAX, &sh->queues))
				ret = fail(err, errlen, "--share '%s': queues must be 1 to %d", arg,
					   SHARE_QUEUES_MAX);
		} else if (!strcmp(kv, "threads")) {
			if (!parse_uint(val, 1, SHARE_THREADS_MAX, &sh->threads))
				ret = fail(err, errlen, "--share '%s': threads must be 1 to %d", arg,
					   SHARE_THREADS_MAX);
		} else if (!strcmp(kv, "dax")) {
			/* Linux maps the window in 2 MiB ranges (FUSE_DAX_SZ).  With only two of
			 * them, 6.1 stalled on random mmap reads of a larger file (no progress in
			 * 5 minutes; three ranges and more were fine): at least four. */
			uint64_t v;
			if (gmem_parse_size(val, &v))
				ret = fail(err, errlen, "--share '%s': dax must be a size, e.g. 64M or 1G",
					   arg);
			else if (v < SHARE_DAX_MIN || v > SHARE_DAX_MAX || v % SHARE_DAX_ALIGN)
				ret = fail(err, errlen, "--share '%s': dax must be a multiple of 2M from 8M "
					   "to %lluG", arg, (unsigned long long)(SHARE_DAX_MAX >> 30));
			else
				sh->dax = v;
		} else if (!strcmp(kv, "submounts")) {
			if (!strcmp(val, "on"))
				sh->fuse.no_submounts = false;
			else if (!strcmp(val, "off"))
				sh->fuse.no_submounts = true;
			else
				ret = fail(err, errlen, "--share '%s': submounts must be on or off", arg);
		} else if (!strcmp(kv, "xattr")) {
			if (!strcmp(val, "on"))
				sh->fuse.xattr = true;
			else if (!strcmp(val, "off"))
				sh->fuse.xattr = false;
			else
				ret = fail(err, errlen, "--share '%s': xattr must be on or off", arg);
		} else if (!strcmp(kv, "suid")) {
			if (!strcmp(val, "on"))
				sh->fuse.suid = true;
			else if (!strcmp(val, "off"))
				sh->fuse.suid = false;
			else
				ret = fail(err, errlen, "--share '%s': suid must be on or off", arg);
		} else if (!strcmp(kv, "devices")) {
			if (!strcmp(val, "mapped"))
				sh->fuse.devices = FUSE_DEVICES_MAPPED;
			else if (!strcmp(val, "host"))
				sh->fuse.devices = FUSE_DEVICES_HOST;
			else if (!strcmp(val, "deny"))
				sh->fuse.devices = FUSE_DEVICES_DENY;
			else
				ret = fail(err, errlen, "--share '%s': devices must be mapped, host or deny",
					   arg);
		} else if (!strcmp(kv, "owner")) {
			if (!strcmp(val, "host"))
				sh->fuse.owner_mapped = false;
			else if (!strcmp(val, "mapped"))
				sh->fuse.owner_mapped = true;
			else
				ret = fail(err, errlen, "--share '%s': owner must be host or mapped", arg);
		} else {
			ret = fail(err, errlen, "--share '%s': unknown key '%s'", arg, kv);
		}
	}
	free(copy);
	if (!ret && !have_tag)
		ret = fail(err, errlen, "--share '%s': no tag= given", arg);
	if (!ret && !sh->path)
		ret = fail(err, errlen, "--share '%s': no path= given", arg);
	if (!ret) {
		struct stat st;
		if (stat(sh->path, &st) < 0)
			ret = fail(err, errlen, "--share path '%s': %s", sh->path, strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			ret = fail(err, errlen, "--share path '%s' is not a directory", sh->path);
	}
	if (!ret)
		ret = share_check_devices(arg, sh, err, errlen);
	if (ret) {
		share_free(sh);
		return ret;
	}
	sh->fuse.path = sh->path;
	sh->fuse.threads = sh->threads;
	return 0;
}

void share_free(struct share *sh)
{
	free(sh->path);
	sh->path = NULL;
	sh->fuse.path = NULL;
}
