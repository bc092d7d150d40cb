/* The virtio-fs device (id 26): a hiprio queue and request queues carrying FUSE. */
#ifndef MINIVMM_FS_VIRTIO_FS_H
#define MINIVMM_FS_VIRTIO_FS_H
#include <stddef.h>

struct share;
struct virtio_dev;
struct vm;

/* A device serving `sh` (ready to attach to a transport); NULL with one line in err. */
struct virtio_dev *virtio_fs_create(struct vm *vm, const struct share *sh, char *err, size_t errlen);
/* Requests handed to the pool and not yet completed (tests, diagnostics): at most the
 * pool's bound, whatever the guest queues. */
unsigned virtio_fs_inflight(struct virtio_dev *d);

#endif
