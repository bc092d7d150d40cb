/* The virtio device model shared by every transport (VIRTIO 1.2 §2, §3): feature
 * negotiation, the device-status state machine, queue configuration, shared-memory
 * regions, and the seam between a device and its transport.
 *
 * Two const ops tables meet here and neither writes into the other:
 *   - virtio_dev_ops: what a device does (features, config space, activate, reset);
 *   - virtio_transport_ops: how a transport delivers interrupts.
 * Transports decode registers and call the virtio_* functions below; devices call
 * virtio_signal_used() and virtio_needs_reset() and never see a register. */
#ifndef MINIVMM_VIRTIO_CORE_H
#define MINIVMM_VIRTIO_CORE_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/queue.h"

#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX     29
#define VIRTIO_F_VERSION_1          32

#define VIRTIO_STATUS_ACKNOWLEDGE   1
#define VIRTIO_STATUS_DRIVER        2
#define VIRTIO_STATUS_DRIVER_OK     4
#define VIRTIO_STATUS_FEATURES_OK   8
#define VIRTIO_STATUS_NEEDS_RESET   64
#define VIRTIO_STATUS_FAILED        128

#define VIRTIO_MAX_QUEUES 64
/* The largest queue a device may offer (max_size): bounds the in-flight bitmap. */
#define VIRTIO_QUEUE_SIZE_MAX 1024
#define VIRTIO_MAX_SHM    4
#define VIRTIO_NO_VECTOR  0xffff

struct virtio_dev;
struct vm;

struct virtio_dev_ops {
	const char *name;
	uint32_t device_id;
	/* Device-specific feature bits offered (the core adds VERSION_1, EVENT_IDX and
	 * INDIRECT_DESC). */
	uint64_t features;
	uint32_t config_size;
	/* Request buffers may lie in the VM's device-memory windows (DAX), which the device
	 * promises never to load or store itself, only to pass to syscalls. */
	bool data_in_windows;
	/* Device config space; the core has checked off + len <= config_size. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, void *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len);
	/* DRIVER_OK: every enabled queue is validated (q->vq ready).  Start workers, for the
	 * queues the driver enabled only (virtio_worker_start skips the others): a driver
	 * may leave queues it does not use unready (Linux does with more request queues than
	 * CPUs), and a device with no usable queue must simply do nothing. */
	int (*activate)(struct virtio_dev *d);
	/* Stop and join every worker; afterwards nothing of the device touches the queues
	 * or guest memory.  Called on guest reset and at teardown, only after activate. */
	void (*reset)(struct virtio_dev *d);
};

enum virtio_irq { VIRTIO_IRQ_QUEUE, VIRTIO_IRQ_CONFIG };

struct virtio_transport_ops {
	/* Interrupt the driver for queue `q` (VIRTIO_IRQ_QUEUE) or a config change. */
	void (*signal)(struct virtio_dev *d, enum virtio_irq kind, uint16_t q);
	/* Device reset: drop the transport's interrupt state (status bits, INTx level).
	 * Called with d->lock held, after the device's workers have stopped. */
	void (*reset)(struct virtio_dev *d);
};

struct virtio_queue {
	/* driver-programmed configuration (through the transport, under d->lock) */
	uint16_t max_size;         /* device limit, power of two */
	uint16_t size;             /* driver's choice (defaults to max_size) */
	bool enabled;
	uint64_t desc, driver, device;
	uint16_t msix_vector;      /* PCI only */
	/* eventfd the guest's notifications arrive on (an ioeventfd when KVM has it) */
	int kick_fd;
	/* the validated ring, owned by the device's worker between activate and reset */
	struct virtq vq;
	/* serialises completions (used ring + interrupt decision) from several threads */
	pthread_mutex_t push_lock;
	/* heads popped and not yet completed (vq.inflight points here while active) */
	uint64_t inflight[VIRTIO_QUEUE_SIZE_MAX / 64];
};

/* A shared-memory region (§2.10): host memory the device owns, shown to the guest at an
 * address the transport chooses, through one KVM memory slot. */
struct virtio_shm {
	uint8_t id;
	/* w.size and w.hva set by the device; w.gpa by the transport (virtio_shm_place) */
	struct gmem_window w;
	int slot;                  /* KVM memory slot, -1 before the first placement */
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	void *priv;                          /* the device's own state */
	const struct virtio_transport_ops *tops;
	void *transport;                     /* the transport's own state */
	struct vm *vm;
	const struct gmem *mem;

	pthread_mutex_t lock;                /* status, features, queue configuration */
	uint8_t status;
	bool active;                         /* activate() succeeded, reset() owed */
	uint64_t driver_features;
	uint8_t config_generation;
	uint16_t config_vector;              /* PCI only */
	uint16_t nqueues;
	struct virtio_queue q[VIRTIO_MAX_QUEUES];
	int nshm;
	struct virtio_shm shm[VIRTIO_MAX_SHM];
	long last_log;                       /* rate limit for guest-caused messages */
};

/* Device set-up (before a transport attaches): `nqueues` queues of `max_size` each
 * (a power of two, at most VIRTIO_QUEUE_SIZE_MAX). */
int virtio_dev_init(struct virtio_dev *d, struct vm *vm, const struct virtio_dev_ops *ops,
		    void *priv, uint16_t nqueues, uint16_t max_size)
	__attribute__((warn_unused_result));

/* Transport: shared-memory region `i` now sits at guest address `gpa` (0: nowhere).  Its
 * KVM memory slot follows (deleted and re-added: one slot for the whole region, whatever
 * the device maps inside it).  Returns 0 or -errno, logged. */
int virtio_shm_place(struct virtio_dev *d, int i, uint64_t gpa);

/* Feature words as the transports expose them (32 bits at a time). */
uint64_t virtio_offered_features(const struct virtio_dev *d);
uint32_t virtio_features_read(struct virtio_dev *d, uint32_t sel);
void virtio_driver_features_write(struct virtio_dev *d, uint32_t sel, uint32_t val);
uint32_t virtio_driver_features_read(struct virtio_dev *d, uint32_t sel);

/* The status register: the one state machine.  Writing 0 resets the device (workers are
 * quiesced before any state is freed); FEATURES_OK sticks only if the driver accepted a
 * subset of the offer including VERSION_1; DRIVER_OK only after FEATURES_OK, and only if
 * every enabled queue validates (otherwise NEEDS_RESET). */
uint8_t virtio_status_read(struct virtio_dev *d);
void virtio_status_write(struct virtio_dev *d, uint8_t val);

/* Queue configuration is accepted only between FEATURES_OK and DRIVER_OK (the spec's
 * window); returns NULL for an out-of-range index or outside that window. */
struct virtio_queue *virtio_queue_cfg(struct virtio_dev *d, uint32_t idx);
/* For reads: any valid index, any time; NULL if out of range. */
struct virtio_queue *virtio_queue_get(struct virtio_dev *d, uint32_t idx);
/* Between activate and reset: did the driver enable queue `idx` (so its rings are
 * validated and a worker may touch them)?  False for a queue left unready or out of range. */
bool virtio_queue_ready(const struct virtio_dev *d, uint32_t idx);

/* Device config space with bounds checked (out of range: reads zero, writes dropped). */
void virtio_config_rw(struct virtio_dev *d, uint32_t off, void *data, uint32_t len, bool is_write);

/* A notification that did not come through an ioeventfd (e.g. an MMIO exit). */
void virtio_queue_kick(struct virtio_dev *d, uint32_t idx);

/* From the device: completed buffers on queue q (interrupts only if the driver wants one). */
void virtio_signal_used(struct virtio_dev *d, uint16_t q);
/* Complete one chain from any thread: push it and interrupt the driver if it wants one.
 * For devices that finish requests on threads other than the queue's worker. */
void virtio_queue_complete(struct virtio_dev *d, uint16_t q, uint16_t head, uint32_t written);
/* From the device: the driver broke the rules (broken ring): NEEDS_RESET, one rate-limited
 * log line, a config interrupt. */
void virtio_needs_reset(struct virtio_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One log line about guest-caused trouble, rate-limited per device (a hostile guest must
 * not flood the host's logs): at most one a second, from any thread.  Every message a
 * guest can provoke goes through here, never straight to vm_log. */
void virtio_log(struct virtio_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A worker thread per queue that sleeps on the queue's kick eventfd and calls `fn` for
 * each notification; the common loop every device uses.  A queue the driver did not
 * enable gets no thread: virtio_worker_start returns 0 and leaves `running` false. */
struct virtio_worker {
	struct virtio_dev *d;
	uint16_t q;
	void (*fn)(struct virtio_dev *d, uint16_t q);
	int stop_fd;
	pthread_t thread;
	bool running;
	bool stopping;                       /* set by virtio_worker_stop, read by the thread */
};
int virtio_worker_start(struct virtio_worker *w, struct virtio_dev *d, uint16_t q,
			void (*fn)(struct virtio_dev *d, uint16_t q)) __attribute__((warn_unused_result));
/* Ends and joins the thread.  `fn` must return promptly once virtio_worker_stopping() is
 * true, however fast the guest refills its ring (virtio_queue_process does). */
void virtio_worker_stop(struct virtio_worker *w);
/* On a worker thread: has virtio_worker_stop been called for it?  (False elsewhere.) */
bool virtio_worker_stopping(void);

/* Drain queue q with `handle` for each chain: disables notifications while it works,
 * re-checks before sleeping, completes bad chains with length 0, marks a broken ring
 * NEEDS_RESET, and signals the driver as EVENT_IDX allows; returns early when its worker
 * is being stopped, and at once for a queue that is not ready.  `handle` returns the
 * number of bytes it wrote into the chain. */
void virtio_queue_process(struct virtio_dev *d, uint16_t q,
			  uint32_t (*handle)(struct virtio_dev *d, struct virtq_chain *c));

#endif
