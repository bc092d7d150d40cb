/* --share tag=NAME,path=DIR[,ro][,cache=never|auto|always][,queues=N][,threads=N][,xattr=on|off]
 *         [,dax=SIZE][,suid=on|off][,submounts=on|off][,devices=mapped|host|deny]
 *         [,owner=host|mapped]
 * parsed into a FUSE server configuration plus the virtio-fs device's own settings. */
#ifndef MINIVMM_FS_SHARE_H
#define MINIVMM_FS_SHARE_H
#include <stdbool.h>
#include <stddef.h>

#include "fs/fuse.h"

#define SHARE_TAG_MAX    36     /* virtio-fs config tag[36]: not NUL-terminated when full */
#define SHARE_QUEUES_MAX 16
#define SHARE_THREADS_MAX 64
/* DAX window sizes: whole 2 MiB ranges (what Linux maps at a time), and small enough that
 * a few fit the 64 GiB PCI window as 64-bit BARs. */
#define SHARE_DAX_ALIGN  (2ULL << 20)
#define SHARE_DAX_MIN    (8ULL << 20)
#define SHARE_DAX_MAX    (16ULL << 30)

struct share {
	char tag[SHARE_TAG_MAX + 1];
	char *path;                 /* malloc'd */
	struct fuse_config fuse;    /* fuse.path points at `path` */
	unsigned queues;            /* request queues (default 1) */
	unsigned threads;           /* worker threads (default 4) */
	uint64_t dax;               /* DAX window bytes (0: no DAX) */
};

/* Parse one --share argument; on error returns -EINVAL with one line in err naming the
 * problem (unknown key, bad value, missing tag or path, tag over 36 bytes, path not a
 * directory, a DAX window that is not whole 2 MiB ranges, devices=host without CAP_MKNOD).
 * devices=host on a share whose mount is not nodev logs one warning line. */
int share_parse(const char *arg, struct share *sh, char *err, size_t errlen);
/* A share of `path` (already checked by the caller) with the defaults above. */
int share_init(struct share *sh, const char *tag, const char *path, bool readonly)
	__attribute__((warn_unused_result));
void share_free(struct share *sh);

#endif
