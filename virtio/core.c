/* The virtio device model: one status state machine, feature negotiation, queue
 * configuration windows and activation, shared by the MMIO and PCI transports. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "virtio/core.h"
#include "vmm/thread.h"
#include "vmm/vm.h"

#define CORE_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_RING_EVENT_IDX) | \
		       (1ULL << VIRTIO_F_RING_INDIRECT_DESC))

int virtio_dev_init(struct virtio_dev *d, struct vm *vm, const struct virtio_dev_ops *ops,
		    void *priv, uint16_t nqueues, uint16_t max_size)
{
	if (nqueues == 0 || nqueues > VIRTIO_MAX_QUEUES || !max_size || (max_size & (max_size - 1)) ||
	    max_size > VIRTIO_QUEUE_SIZE_MAX)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->priv = priv;
	d->vm = vm;
	d->mem = &vm->mem;
	d->nqueues = nqueues;
	d->config_vector = VIRTIO_NO_VECTOR;
	for (int i = 0; i < VIRTIO_MAX_SHM; i++)
		d->shm[i].slot = -1;
	pthread_mutex_init(&d->lock, NULL);
	for (int i = 0; i < nqueues; i++) {
		struct virtio_queue *q = &d->q[i];
		q->max_size = q->size = max_size;
		q->msix_vector = VIRTIO_NO_VECTOR;
		pthread_mutex_init(&q->push_lock, NULL);
		q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->kick_fd < 0) {
			int ret = -errno;
			while (--i >= 0)
				close(d->q[i].kick_fd);
			return ret;
		}
	}
	return 0;
}

uint64_t virtio_offered_features(const struct virtio_dev *d)
{
	return d->ops->features | CORE_FEATURES;
}

uint32_t virtio_features_read(struct virtio_dev *d, uint32_t sel)
{
	uint64_t f = virtio_offered_features(d);
	return sel == 0 ? (uint32_t)f : sel == 1 ? (uint32_t)(f >> 32) : 0;
}

void virtio_driver_features_write(struct virtio_dev *d, uint32_t sel, uint32_t val)
{
	pthread_mutex_lock(&d->lock);
	/* Features are the driver's to choose only until it sets FEATURES_OK. */
	if (!(d->status & VIRTIO_STATUS_FEATURES_OK) && sel < 2) {
		unsigned shift = sel * 32;
		d->driver_features = (d->driver_features & ~(0xffffffffULL << shift)) |
				     ((uint64_t)val << shift);
	}
	pthread_mutex_unlock(&d->lock);
}

uint32_t virtio_driver_features_read(struct virtio_dev *d, uint32_t sel)
{
	pthread_mutex_lock(&d->lock);
	uint64_t f = d->driver_features;
	pthread_mutex_unlock(&d->lock);
	return sel == 0 ? (uint32_t)f : sel == 1 ? (uint32_t)(f >> 32) : 0;
}

uint8_t virtio_status_read(struct virtio_dev *d)
{
	return __atomic_load_n(&d->status, __ATOMIC_ACQUIRE);
}

static void log_guest(struct virtio_dev *d, const char *fmt, va_list ap)
{
	/* Guest-caused trouble is logged at most once a second per device: a hostile guest
	 * must not be able to flood the host's logs. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long now = ts.tv_sec ? ts.tv_sec : 1;
	/* Several threads log: one wins the second. */
	long last = __atomic_load_n(&d->last_log, __ATOMIC_RELAXED);
	if ((last && now - last < 1) ||
	    !__atomic_compare_exchange_n(&d->last_log, &last, now, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return;
	char buf[256];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	vm_log("%s: %s", d->ops->name, buf);
}

void virtio_log(struct virtio_dev *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_guest(d, fmt, ap);
	va_end(ap);
}

static void status_set(struct virtio_dev *d, uint8_t v)
{
	__atomic_store_n(&d->status, v, __ATOMIC_RELEASE);
}

/* Back to the power-on state.  Workers are stopped first: reset() joins them, so nothing
 * still holds a ring pointer when the queue state is cleared.  Called with d->lock held;
 * the device's reset must not take it (workers never do). */
static void dev_reset(struct virtio_dev *d)
{
	if (d->active && d->ops->reset)
		d->ops->reset(d);
	d->active = false;
	d->driver_features = 0;
	d->config_vector = VIRTIO_NO_VECTOR;
	for (int i = 0; i < d->nqueues; i++) {
		struct virtio_queue *q = &d->q[i];
		uint64_t drain;
		q->size = q->max_size;
		q->enabled = false;
		q->desc = q->driver = q->device = 0;
		q->msix_vector = VIRTIO_NO_VECTOR;
		memset(&q->vq, 0, sizeof(q->vq));
		/* A kick left over from before the reset must not wake the next activation. */
		while (read(q->kick_fd, &drain, sizeof(drain)) > 0)
			;
	}
	if (d->tops && d->tops->reset)
		d->tops->reset(d);
	status_set(d, 0);
}

static bool features_ok(const struct virtio_dev *d)
{
	uint64_t f = d->driver_features;
	return !(f & ~virtio_offered_features(d)) && (f & (1ULL << VIRTIO_F_VERSION_1));
}

static int activate(struct virtio_dev *d)
{
	bool event_idx = d->driver_features & (1ULL << VIRTIO_F_RING_EVENT_IDX);
	bool indirect = d->driver_features & (1ULL << VIRTIO_F_RING_INDIRECT_DESC);
	for (int i = 0; i < d->nqueues; i++) {
		struct virtio_queue *q = &d->q[i];
		if (!q->enabled)
			continue;
		if (virtq_init(&q->vq, d->mem, q->size, q->desc, q->driver, q->device, event_idx,
			       indirect)) {
			virtio_log(d, "queue %d set up outside guest memory or misaligned (size %u)",
				   i, q->size);
			return -EINVAL;
		}
		memset(q->inflight, 0, sizeof(q->inflight));
		q->vq.inflight = q->inflight;
	}
	/* Request data may live in the VM's DAX windows: only buffers, never rings, which
	 * virtq_init already confined to RAM. */
	for (int i = 0; i < d->nqueues; i++)
		d->q[i].vq.data_windows = d->ops->data_in_windows;
	return d->ops->activate ? d->ops->activate(d) : 0;
}

int virtio_shm_place(struct virtio_dev *d, int i, uint64_t gpa)
{
	struct virtio_shm *shm = &d->shm[i];
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	/* Translations stop first, so no worker resolves the old address while the slot
	 * is gone; a request the guest issues while moving its own BAR may fail. */
	__atomic_store_n(&shm->w.gpa, 0, __ATOMIC_RELEASE);
	if (d->vm && d->vm->vm_fd > 0)
		ret = vm_device_slot(d->vm, &shm->slot, gpa, shm->w.size, shm->w.hva);
	if (ret)   /* the guest moves the BAR: rate-limited */
		virtio_log(d, "cannot map shared memory region %u at 0x%llx: %s", shm->id,
			   (unsigned long long)gpa, strerror(-ret));
	else
		__atomic_store_n(&shm->w.gpa, gpa, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void virtio_status_write(struct virtio_dev *d, uint8_t val)
{
	pthread_mutex_lock(&d->lock);
	uint8_t old = d->status;
	if (val == 0) {
		dev_reset(d);
		goto out;
	}
	/* The driver only ever adds bits (§2.1.2); anything else is ignored, except FAILED,
	 * which may come at any time and simply sticks. */
	if ((old & ~val) & ~VIRTIO_STATUS_NEEDS_RESET)
		goto out;
	uint8_t add = val & ~old & ~VIRTIO_STATUS_NEEDS_RESET;
	uint8_t next = old | add;
	if ((add & VIRTIO_STATUS_FEATURES_OK) && !features_ok(d))
		next &= ~VIRTIO_STATUS_FEATURES_OK;
	if (add & VIRTIO_STATUS_DRIVER_OK) {
		if (!(next & VIRTIO_STATUS_FEATURES_OK) || (next & VIRTIO_STATUS_FAILED)) {
			next &= ~VIRTIO_STATUS_DRIVER_OK;
		} else if (activate(d) == 0) {
			d->active = true;
		} else {
			next = (next & ~VIRTIO_STATUS_DRIVER_OK) | VIRTIO_STATUS_NEEDS_RESET;
		}
	}
	/* A worker started by activate() may already have flagged NEEDS_RESET (it ORs the
	 * bit in without the lock): merge, never overwrite it. */
	uint8_t cur = __atomic_load_n(&d->status, __ATOMIC_ACQUIRE);
	while (!__atomic_compare_exchange_n(&d->status, &cur,
					    next | (cur & VIRTIO_STATUS_NEEDS_RESET), false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
out:
	pthread_mutex_unlock(&d->lock);
}

struct virtio_queue *virtio_queue_get(struct virtio_dev *d, uint32_t idx)
{
	return idx < d->nqueues ? &d->q[idx] : NULL;
}

bool virtio_queue_ready(const struct virtio_dev *d, uint32_t idx)
{
	/* enabled cannot change while DRIVER_OK is set, and activate() validated (virtq_init)
	 * every enabled queue before any worker starts. */
	return idx < d->nqueues && d->q[idx].enabled && d->q[idx].vq.desc;
}

struct virtio_queue *virtio_queue_cfg(struct virtio_dev *d, uint32_t idx)
{
	uint8_t s = virtio_status_read(d);
	if (!(s & VIRTIO_STATUS_FEATURES_OK) || (s & VIRTIO_STATUS_DRIVER_OK))
		return NULL;
	return virtio_queue_get(d, idx);
}

void virtio_config_rw(struct virtio_dev *d, uint32_t off, void *data, uint32_t len, bool is_write)
{
	uint32_t size = d->ops->config_size;
	if (off > size || len > size - off) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	if (is_write) {
		if (d->ops->config_write)
			d->ops->config_write(d, off, data, len);
	} else if (d->ops->config_read) {
		d->ops->config_read(d, off, data, len);
	} else {
		memset(data, 0, len);
	}
}

void virtio_queue_kick(struct virtio_dev *d, uint32_t idx)
{
	uint64_t one = 1;
	if (idx < d->nqueues && write(d->q[idx].kick_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, a wake-up is already pending. */
	}
}

void virtio_signal_used(struct virtio_dev *d, uint16_t q)
{
	pthread_mutex_lock(&d->q[q].push_lock);
	bool sig = virtq_should_signal(&d->q[q].vq);
	pthread_mutex_unlock(&d->q[q].push_lock);
	if (sig)
		d->tops->signal(d, VIRTIO_IRQ_QUEUE, q);
}

void virtio_queue_complete(struct virtio_dev *d, uint16_t q, uint16_t head, uint32_t written)
{
	struct virtio_queue *vq = &d->q[q];
	pthread_mutex_lock(&vq->push_lock);
	virtq_push(&vq->vq, head, written);
	bool sig = virtq_should_signal(&vq->vq);
	pthread_mutex_unlock(&vq->push_lock);
	if (sig)
		d->tops->signal(d, VIRTIO_IRQ_QUEUE, q);
}

void virtio_needs_reset(struct virtio_dev *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_guest(d, fmt, ap);
	va_end(ap);
	/* Set from a worker without d->lock (the vCPU holding it may be joining us in
	 * reset): an atomic OR keeps the driver's bits. */
	__atomic_or_fetch(&d->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_ACQ_REL);
	d->tops->signal(d, VIRTIO_IRQ_CONFIG, 0);
}

/* The chain being processed: 32 KiB of segment arrays, one per worker thread (not on
 * its stack), freed when the worker ends. */
static __thread struct virtq_chain *tls_chain;
/* The worker this thread runs, for virtio_worker_stopping(). */
static __thread struct virtio_worker *tls_worker;

bool virtio_worker_stopping(void)
{
	return tls_worker && __atomic_load_n(&tls_worker->stopping, __ATOMIC_ACQUIRE);
}

static void *worker_main(void *arg)
{
	struct virtio_worker *w = arg;
	tls_worker = w;
	int kick = w->d->q[w->q].kick_fd;
	struct pollfd p[2] = { { .fd = kick, .events = POLLIN }, { .fd = w->stop_fd, .events = POLLIN } };
	/* Buffers made available before DRIVER_OK, without a kick, are seen at once. */
	w->fn(w->d, w->q);
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		uint64_t n;
		if (read(kick, &n, sizeof(n)) < 0)
			continue;
		w->fn(w->d, w->q);
	}
	free(tls_chain);
	tls_chain = NULL;
	return NULL;
}

int virtio_worker_start(struct virtio_worker *w, struct virtio_dev *d, uint16_t q,
			void (*fn)(struct virtio_dev *d, uint16_t q))
{
	*w = (struct virtio_worker){ .d = d, .q = q, .fn = fn };
	if (!virtio_queue_ready(d, q))
		return 0;               /* left unready by the driver: nothing to serve */
	w->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (w->stop_fd < 0)
		return -errno;
	int ret = thread_start(THREAD_QUEUE, "virtq", worker_main, w, &w->thread);
	if (ret) {
		close(w->stop_fd);
		return -ret;
	}
	w->running = true;
	return 0;
}

void virtio_worker_stop(struct virtio_worker *w)
{
	if (!w->running)
		return;
	uint64_t one = 1;
	/* The flag ends a loop the guest keeps busy; the eventfd wakes a sleeping one. */
	__atomic_store_n(&w->stopping, true, __ATOMIC_RELEASE);
	if (write(w->stop_fd, &one, sizeof(one)) < 0) {
		/* cannot fail on a fresh eventfd */
	}
	pthread_join(w->thread, NULL);
	close(w->stop_fd);
	w->running = false;
}

void virtio_queue_process(struct virtio_dev *d, uint16_t qi,
			  uint32_t (*handle)(struct virtio_dev *d, struct virtq_chain *c))
{
	struct virtq *vq = &d->q[qi].vq;
	if (!virtio_queue_ready(d, qi))
		return;
	if (!tls_chain && !(tls_chain = malloc(sizeof(*tls_chain))))
		return;
	struct virtq_chain *c = tls_chain;
	if (virtio_status_read(d) & VIRTIO_STATUS_NEEDS_RESET)
		return;
	bool pushed = false, stop = false;
	for (;;) {
		virtq_disable_notify(vq);
		int r = 0;
		/* A guest that refills the ring as fast as we drain it must not keep a stopping
		 * worker here: checked before every chain. */
		while (!(stop = virtio_worker_stopping()) && (r = virtq_pop(vq, c)) == 1) {
			uint32_t written = 0;
			if (c->err == VIRTQ_OK)
				written = handle(d, c);
			else
				virtio_log(d, "queue %u: descriptor chain %u failed: %s", qi, c->head,
					  virtq_strerror(c->err));
			pthread_mutex_lock(&d->q[qi].push_lock);
			virtq_push(vq, c->head, written);
			pthread_mutex_unlock(&d->q[qi].push_lock);
			pushed = true;
		}
		if (stop)
			break;
		if (r < 0) {
			virtio_needs_reset(d, "queue %u: broken ring (avail index or head out of range, "
					   "or a head already in flight)", qi);
			break;
		}
		if (!virtq_enable_notify(vq))
			break;
	}
	if (pushed)
		virtio_signal_used(d, qi);
}
