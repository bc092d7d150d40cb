/* virtio-fs: queue 0 is hiprio (FORGET, BATCH_FORGET, INTERRUPT: quick, handled inline by
 * its worker), queues 1..N carry requests.  A request queue's worker only pops chains and
 * hands them to a pool of threads, so a request that blocks (fsync, a slow disk) holds one
 * pool thread and never the queue; a lock wait (SETLKW) holds not even that (it is parked
 * in the FUSE server, see fs/fuse.h, and answered through vfs_complete).  (Answering
 * quick requests on the queue worker saves a third of the latency, but a guest hung once
 * in three runs with it; until that is understood every request goes to the pool.)  The device meets only the core and
 * fs/fuse.h: no transport, no FUSE decoding here. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	int rootfd;                           /* the share, opened once for the VM's life */
	struct fuse_server *srv;              /* NULL after a reset that could not make one */
	unsigned nreq;                        /* request queues */
	struct virtio_worker workers[VFS_MAX_QUEUES];

	/* The pool: jobs waiting (queue), jobs free for reuse, and how many are out. */
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct vfs_job *head, *tail, *free;
	unsigned inflight, max_inflight, allocated;
	bool stopping;                        /* reset: queue workers must not wait for a job */
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
	while (fs->inflight >= fs->max_inflight && !fs->stopping)
		pthread_cond_wait(&fs->done, &fs->lock);
	if (fs->stopping) {
		pthread_mutex_unlock(&fs->lock);
		return NULL;
	}
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

/* The chain's device-readable part is the request, the writable part the reply.  A job
 * given as cookie may be parked (a blocking lock): FUSE_DEFERRED, and the job, its chain
 * included, stays out until vfs_complete.  Without one nothing ever waits. */
static size_t vfs_run(struct vfs *fs, struct virtq_chain *c, struct vfs_job *j)
{
	return fuse_handle_async(fs->srv, c->out, c->nr_out, c->in, c->nr_in, j);
}

/* cfg.complete: a parked request answered, from a server thread.  Abandoned (reset under
 * way): its ring belongs to a reset device, so nothing is published. */
static void vfs_complete(void *opaque, void *cookie, size_t written)
{
	struct vfs *fs = opaque;
	struct vfs_job *j = cookie;

	if (written != FUSE_ABANDONED)
		virtio_queue_complete(&fs->dev, j->q, j->chain.head, (uint32_t)written);
	job_put(fs, j);
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

		size_t written = vfs_run(fs, &j->chain, j);
		if (written == FUSE_DEFERRED)
			continue;
		virtio_queue_complete(&fs->dev, j->q, j->chain.head, (uint32_t)written);
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
			/* Stopping: however fast the guest refills the ring, leave now. */
			if (virtio_worker_stopping())
				return;
			/* Popped straight into a pool job: a chain is 32 KiB of iovecs, copied
			 * nowhere on the way to its thread. */
			struct vfs_job *j = job_get(fs);
			if (!j)
				return;   /* stopping, or out of memory: retried on the next kick */
			int r = virtq_pop(vq, &j->chain);
			if (r <= 0) {
				job_put(fs, j);
				if (r < 0) {
					virtio_needs_reset(d, "queue %u: broken ring (avail index or "
							   "head out of range, or a head already in "
							   "flight)", q);
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
	return (uint32_t)vfs_run(d->priv, c, NULL);
}

static void hiprio_queue(struct virtio_dev *d, uint16_t q)
{
	virtio_queue_process(d, q, hiprio_handle);
}

/* A server for a new session, over the directory opened at start-up (never the path:
 * the guest may have swapped it for a symlink meanwhile). */
static struct fuse_server *vfs_server(struct vfs *fs, char *err, size_t errlen)
{
	return fuse_server_create_fd(&fs->fuse_cfg, fs->rootfd, err, errlen);
}

static void vfs_reset(struct virtio_dev *d)
{
	struct vfs *fs = d->priv;
	/* A queue worker waiting for a free job must not wait for the pool. */
	pthread_mutex_lock(&fs->lock);
	fs->stopping = true;
	pthread_cond_broadcast(&fs->done);
	pthread_mutex_unlock(&fs->lock);
	for (unsigned i = 0; i <= fs->nreq; i++)
		virtio_worker_stop(&fs->workers[i]);
	/* Parked lock waits end now (and nothing more is parked), so the wait below is for
	 * requests that run to their end, not for guest locks. */
	fuse_abandon_waiters(fs->srv);
	/* Requests already handed to the pool finish before the rings go away. */
	pthread_mutex_lock(&fs->lock);
	while (fs->inflight)
		pthread_cond_wait(&fs->done, &fs->lock);
	fs->stopping = false;
	pthread_mutex_unlock(&fs->lock);
	/* A reset guest starts a new FUSE session (INIT again) with no inodes or handles.
	 * The old session goes in every case, so no node id or handle of it outlives the
	 * reset; if no fresh server can be made (out of fds or memory), the device has none
	 * and refuses DRIVER_OK until one can be (vfs_activate tries again). */
	fuse_server_destroy(fs->srv);
	char err[256];
	fs->srv = vfs_server(fs, err, sizeof(err));
	if (!fs->srv)
		virtio_log(d, "cannot start a new session after reset: %s", err);
}

static int vfs_activate(struct virtio_dev *d)
{
	struct vfs *fs = d->priv;
	if (!fs->srv) {
		char err[256];
		fs->srv = vfs_server(fs, err, sizeof(err));
		if (!fs->srv) {
			virtio_log(d, "no session: %s", err);
			return -EIO;
		}
	}
	/* Only queues the driver enabled get a worker (virtio_worker_start skips the rest). */
	int ret = virtio_worker_start(&fs->workers[0], d, 0, hiprio_queue);
	for (unsigned i = 1; !ret && i <= fs->nreq; i++)
		ret = virtio_worker_start(&fs->workers[i], d, i, request_queue);
	if (ret)
		for (unsigned i = 0; i <= fs->nreq; i++)
			virtio_worker_stop(&fs->workers[i]);
	return ret;
}

unsigned virtio_fs_inflight(struct virtio_dev *d)
{
	struct vfs *fs = d->priv;
	pthread_mutex_lock(&fs->lock);
	unsigned n = fs->inflight;
	pthread_mutex_unlock(&fs->lock);
	return n;
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
	if (fs)
		fs->rootfd = -1;
	if (!fs || !(fs->path = strdup(sh->path))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Opened once, here, where the path is the user's word (a symlink the user names is
	 * followed); from now on the share is this directory, whatever the guest renames. */
	fs->rootfd = open(sh->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->rootfd < 0) {
		snprintf(err, errlen, "virtio-fs: %s: %s", sh->path,
			 errno == ENOTDIR ? "not a directory" : strerror(errno));
		goto fail;
	}
	fs->fuse_cfg = sh->fuse;
	fs->fuse_cfg.path = fs->path;
	fs->fuse_cfg.complete = vfs_complete;
	fs->fuse_cfg.complete_opaque = fs;
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
	fs->srv = vfs_server(fs, err, errlen);
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
		if (fs->rootfd >= 0)
			close(fs->rootfd);
		free(fs->path);
		free(fs);
	}
	return NULL;
}
