/* virtio-rng: one request queue; each chain's writable part is filled from getrandom(2).
 * The device knows nothing of transports: it only meets the core. */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "virtio/core.h"
#include "virtio/rng.h"

#define RNG_QUEUE_SIZE 256
/* Per request: Linux asks for at most a page or so; a hostile driver asking for a
 * gigabyte gets this much and is told so through the used length. */
#define RNG_MAX_PER_REQUEST (64 * 1024)

struct rng {
	struct virtio_dev dev;
	struct virtio_worker worker;
};

static uint32_t rng_handle(struct virtio_dev *d, struct virtq_chain *c)
{
	uint32_t done = 0;
	for (int i = 0; i < c->nr_in && done < RNG_MAX_PER_REQUEST; i++) {
		size_t want = c->in[i].iov_len;
		if (want > RNG_MAX_PER_REQUEST - done)
			want = RNG_MAX_PER_REQUEST - done;
		uint8_t *p = c->in[i].iov_base;
		size_t got = 0;
		while (got < want) {
			ssize_t n = getrandom(p + got, want - got, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return done + got;
			got += n;
		}
		done += got;
	}
	return done;
}

static void rng_process(struct virtio_dev *d, uint16_t q)
{
	virtio_queue_process(d, q, rng_handle);
}

static int rng_activate(struct virtio_dev *d)
{
	struct rng *r = d->priv;
	return virtio_worker_start(&r->worker, d, 0, rng_process);
}

static void rng_reset(struct virtio_dev *d)
{
	struct rng *r = d->priv;
	virtio_worker_stop(&r->worker);
}

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = 4,
	.features = 0,
	.config_size = 0,
	.activate = rng_activate,
	.reset = rng_reset,
};

struct virtio_dev *virtio_rng_create(struct vm *vm)
{
	struct rng *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	if (virtio_dev_init(&r->dev, vm, &rng_ops, r, 1, RNG_QUEUE_SIZE)) {
		free(r);
		return NULL;
	}
	return &r->dev;
}
