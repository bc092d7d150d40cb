/* virtio-rng (device id 4): entropy from getrandom(2). */
#ifndef MINIVMM_VIRTIO_RNG_H
#define MINIVMM_VIRTIO_RNG_H
struct virtio_dev;
struct vm;
/* A ready-to-attach rng device (any transport). */
struct virtio_dev *virtio_rng_create(struct vm *vm);
#endif
