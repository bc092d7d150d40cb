/* virtio-fs: queue 0 is hiprio (FORGET, BATCH_FORGET, INTERRUPT: quick, handled inline by
 * its worker), queues 1..N carry requests.  A request queue's worker only pops chains and
 * hands them to a pool of threads, so a request that blocks (fsync, SETLKW, a slow disk)
 * holds one pool thread and never the queue.  (Answering quick requests on the queue
 * worker saves a third of the latency, but a guest hung once in three runs with it; until
 * that is understood every request goes to the pool.)  The device meets only the core and
 * fs/fuse.h: no transport, no FUSE decoding here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fuse.h"
#include "fs/share.h"
#include "fs/virtio_fs.h"
#include "virtio/core.h"
#include "vmm/thread.h"
#include "vmm/vm.h"

#define VFS_DEVICE_ID   26
#define VFS_QUEUE_SIZE  1024
#define VFS_MAX_QUEUES  (1 + SHARE_QUEUES_MAX)
#define VFS_SHM_CACHE   0       /* the DAX window's shared-memory region id */

struct __attribute__((packed)) vfs_config {
	char tag[36];
	uint32_t num_request_queues;
};

struct vfs_job {
	struct vfs_job *next;
	uint16_t q;
	struct virtq_chain chain;
};

struct vfs {
	struct virtio_dev dev;
	struct vfs_config config;
	struct fuse_config fuse_cfg;
	char *path;
	struct fuse_server *srv;
	unsigned nreq;                        /* request queues */
	struct virtio_worker workers[VFS_MAX_QUEUES];

	/* The pool: jobs waiting (queue), jobs free for reuse, and how many are out. */
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct vfs_job *head, *tail, *free;
	unsigned inflight, max_inflight, allocated;
	unsigned nthreads;
	pthread_t *threads;
};

static void vfs_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	struct vfs *fs = d->priv;
	memcpy(data, (uint8_t *)&fs->config + off, len);
}

/* A free job, waiting while max_inflight are out: back-pressure on the queue worker, so a
 * guest that floods the queue costs bounded host memory (each job holds 32 KiB). */
static struct vfs_job *job_get(struct vfs *fs)
{
	pthread_mutex_lock(&fs->lock);
	while (fs->inflight >= fs->max_inflight)
		pthread_cond_wait(&fs->done, &fs->lock);
	struct vfs_job *j = fs->free;
	if (j) {
		fs->free = j->next;
	} else if ((j = malloc(sizeof(*j)))) {
		fs->allocated++;
	}
	if (j)
		fs->inflight++;
	pthread_mutex_unlock(&fs->lock);
	return j;
}

static void job_put(struct vfs *fs, struct vfs_job *j)
{
	pthread_mutex_lock(&fs->lock);
	j->next = fs->free;
	fs->free = j;
	fs->inflight--;
	if (fs->inflight + 1 >= fs->max_inflight || !fs->inflight)   /* someone may wait */
		pthread_cond_broadcast(&fs->done);
	pthread_mutex_unlock(&fs->lock);
}

static uint32_t vfs_run(struct vfs *fs, struct virtq_chain *c)
{
	/* The chain's device-readable part is the request, the writable part the reply. */
	return fuse_handle(fs->srv, c->out, c->nr_out, c->in, c->nr_in);
}

static void *pool_main(void *arg)
{
	struct vfs *fs = arg;
	for (;;) {
		pthread_mutex_lock(&fs->lock);
		while (!fs->head)
			pthread_cond_wait(&fs->work, &fs->lock);
		struct vfs_job *j = fs->head;
		fs->head = j->next;
		if (!fs->head)
			fs->tail = NULL;
		pthread_mutex_unlock(&fs->lock);

		uint32_t written = vfs_run(fs, &j->chain);
		virtio_queue_complete(&fs->dev, j->q, j->chain.head, written);
		job_put(fs, j);
	}
	return NULL;
}

static void submit(struct vfs *fs, struct vfs_job *j)
{
	pthread_mutex_lock(&fs->lock);
	j->next = NULL;
	if (fs->tail)
		fs->tail->next = j;
	else
		fs->head = j;
	fs->tail = j;
	pthread_cond_signal(&fs->work);
	pthread_mutex_unlock(&fs->lock);
}

static void request_queue(struct virtio_dev *d, uint16_t q)
{
	struct vfs *fs = d->priv;
	struct virtq *vq = &d->q[q].vq;
	if (virtio_status_read(d) & VIRTIO_STATUS_NEEDS_RESET)
		return;
	for (;;) {
		virtq_disable_notify(vq);
		for (;;) {
			/* Popped straight into a pool job: a chain is 32 KiB of iovecs, copied
			 * nowhere on the way to its thread. */
			struct vfs_job *j = job_get(fs);
			if (!j)
				return;   /* out of memory: the kick will be retried on the next one */
			int r = virtq_pop(vq, &j->chain);
			if (r <= 0) {
				job_put(fs, j);
				if (r < 0) {
					virtio_needs_reset(d, "queue %u: broken ring", q);
					return;
				}
				break;
			}
			if (j->chain.err != VIRTQ_OK) {
				virtio_log(d, "queue %u: descriptor chain %u failed: %s", q, j->chain.head,
					   virtq_strerror(j->chain.err));
				virtio_queue_complete(d, q, j->chain.head, 0);
				job_put(fs, j);
				continue;
			}
			j->q = q;
			submit(fs, j);
		}
		if (!virtq_enable_notify(vq))
			break;
	}
}

static uint32_t hiprio_handle(struct virtio_dev *d, struct virtq_chain *c)
{
	return vfs_run(d->priv, c);
}

static void hiprio_queue(struct virtio_dev *d, uint16_t q)
{
	virtio_queue_process(d, q, hiprio_handle);
}

static void vfs_reset(struct virtio_dev *d)
{
	struct vfs *fs = d->priv;
	for (unsigned i = 0; i <= fs->nreq; i++)
		virtio_worker_stop(&fs->workers[i]);
	/* Requests already handed to the pool finish before the rings go away. */
	pthread_mutex_lock(&fs->lock);
	while (fs->inflight)
		pthread_cond_wait(&fs->done, &fs->lock);
	pthread_mutex_unlock(&fs->lock);
	/* A reset guest starts a new FUSE session (INIT again) with no inodes or handles:
	 * a fresh server is exactly that state. */
	char err[256];
	struct fuse_server *srv = fuse_server_create(&fs->fuse_cfg, err, sizeof(err));
	if (srv) {
		fuse_server_destroy(fs->srv);
		fs->srv = srv;
	} else {
		virtio_log(d, "cannot reopen the share after reset: %s", err);
	}
}

static int vfs_activate(struct virtio_dev *d)
{
	struct vfs *fs = d->priv;
	int ret = virtio_worker_start(&fs->workers[0], d, 0, hiprio_queue);
	for (unsigned i = 1; !ret && i <= fs->nreq; i++)
		ret = virtio_worker_start(&fs->workers[i], d, i, request_queue);
	if (ret)
		for (unsigned i = 0; i <= fs->nreq; i++)
			virtio_worker_stop(&fs->workers[i]);
	return ret;
}

static const struct virtio_dev_ops vfs_ops = {
	.name = "virtio-fs",
	.device_id = VFS_DEVICE_ID,
	.features = 0,
	.config_size = sizeof(struct vfs_config),
	.data_in_windows = true,        /* fs/fuse.c never copies through a DAX window */
	.config_read = vfs_config_read,
	.activate = vfs_activate,
	.reset = vfs_reset,
};

struct virtio_dev *virtio_fs_create(struct vm *vm, const struct share *sh, char *err, size_t errlen)
{
	struct vfs *fs = calloc(1, sizeof(*fs));
	if (!fs || !(fs->path = strdup(sh->path))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	fs->fuse_cfg = sh->fuse;
	fs->fuse_cfg.path = fs->path;
	if (sh->dax) {
		/* Reserved once for the VM's life; the transport gives it a guest address and
		 * one KVM memory slot, and the server maps files into it. */
		fs->fuse_cfg.dax_window = fuse_dax_window_create(sh->dax);
		if (!fs->fuse_cfg.dax_window) {
			snprintf(err, errlen, "cannot reserve a %llu MiB DAX window: %s",
				 (unsigned long long)(sh->dax >> 20), strerror(errno));
			goto fail;
		}
		fs->fuse_cfg.dax_size = sh->dax;
	}
	fs->srv = fuse_server_create(&fs->fuse_cfg, err, errlen);
	if (!fs->srv)
		goto fail;
	/* tag[36] is not NUL-terminated when all 36 bytes are used (the spec allows it). */
	memcpy(fs->config.tag, sh->tag, strnlen(sh->tag, sizeof(fs->config.tag)));
	fs->config.num_request_queues = sh->queues;
	fs->nreq = sh->queues;
	fs->nthreads = sh->threads;
	fs->max_inflight = VFS_QUEUE_SIZE;
	pthread_mutex_init(&fs->lock, NULL);
	pthread_cond_init(&fs->work, NULL);
	pthread_cond_init(&fs->done, NULL);
	if (virtio_dev_init(&fs->dev, vm, &vfs_ops, fs, 1 + sh->queues, VFS_QUEUE_SIZE)) {
		snprintf(err, errlen, "cannot set up the virtio-fs queues");
		goto fail;
	}
	if (sh->dax) {
		struct virtio_shm *shm = &fs->dev.shm[fs->dev.nshm++];
		shm->id = VFS_SHM_CACHE;
		shm->w.size = sh->dax;
		shm->w.hva = fs->fuse_cfg.dax_window;
		/* Guest buffers in DAX-mapped files are request data, for every share. */
		if (gmem_add_window(&vm->mem, &shm->w)) {
			snprintf(err, errlen, "too many DAX windows (at most %d)", GMEM_MAX_WINDOWS);
			goto fail;
		}
	}
	fs->threads = calloc(fs->nthreads, sizeof(*fs->threads));
	if (!fs->threads) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < fs->nthreads; i++) {
		if (thread_start(THREAD_FS, "vfs-pool", pool_main, fs, &fs->threads[i])) {
			/* Threads already started wait on fs: leave it allocated.  This is a
			 * start-up failure; the VMM exits on it. */
			snprintf(err, errlen, "cannot start worker threads");
			return NULL;
		}
	}
	return &fs->dev;
fail:
	if (fs) {
		if (fs->srv)
			fuse_server_destroy(fs->srv);
		free(fs->threads);
		fuse_dax_window_destroy(fs->fuse_cfg.dax_window, fs->fuse_cfg.dax_size);
		free(fs->path);
		free(fs);
	}
	return NULL;
}
