/* virtio-console with VIRTIO_CONSOLE_F_MULTIPORT (VIRTIO 1.2 §5.3): the guest command's
 * stdin, stdout and stderr as three named generic ports, plus console port 0.
 *
 * Queues: port 0 receiveq/transmitq are 0/1, the control receiveq/transmitq 2/3, port p ≥ 1
 * has 2 + 2p and 3 + 2p.  ("Receive" is the driver's view: the device fills receiveqs.)
 *
 * The handshake, as the Linux driver runs it: the driver sends DEVICE_READY; the device
 * answers DEVICE_ADD for each port; the driver sets each port up and answers PORT_READY;
 * the device then describes the port (CONSOLE_PORT for port 0, PORT_NAME for the others)
 * and says whether the host side is open (PORT_OPEN).  The driver sends PORT_OPEN when a
 * guest process opens or closes a port.  What this means for the guest's file operations:
 *   - a write() blocks while the host side is closed, so the output ports are always open
 *     (with no host fd their data is discarded);
 *   - a read() returns 0 once the queued data is consumed and the host side is closed: the
 *     stdin port is closed when in_fd reaches end of file (or there is no in_fd);
 *   - data arriving while no guest process has the port open is thrown away by the driver,
 *     so stdin bytes are held until the guest has opened the stdin port.
 *
 * Threads (per activation): a worker per transmitq (writes chains to out_fd/err_fd or
 * discards them), one for the control transmitq (the guest's messages) and one for the
 * control receiveq (flushes our messages when the guest adds buffers), and a stdin thread
 * that owns port 1's receiveq and reads in_fd.  Our control messages wait in a small backlog
 * until the guest has receive buffers: a guest that spins on its control transmitq while
 * holding the only path that refills the receiveq must never be waited for. */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "virtio/console.h"
#include "virtio/core.h"
#include "vmm/thread.h"
#include "vmm/vm.h"

#define CONSOLE_F_MULTIPORT 1
#define CONSOLE_NR_PORTS    4
#define CONSOLE_NQUEUES     (2 * (CONSOLE_NR_PORTS + 1))
/* The driver fills every receiveq with page-sized buffers: 128 of them per queue is half a
 * MiB of guest memory each, and 4 MiB of output in flight per port. */
#define CONSOLE_QUEUE_SIZE  128
#define CONSOLE_CONFIG_SIZE 12     /* cols, rows (le16), max_nr_ports, emerg_wr (le32) */

#define CTRL_RXQ 2
#define CTRL_TXQ 3

enum { PORT_CONSOLE, PORT_STDIN, PORT_STDOUT, PORT_STDERR };

enum ctl_event {
	EV_DEVICE_READY = 0, EV_DEVICE_ADD = 1, EV_DEVICE_REMOVE = 2, EV_PORT_READY = 3,
	EV_CONSOLE_PORT = 4, EV_RESIZE = 5, EV_PORT_OPEN = 6, EV_PORT_NAME = 7,
};
#define CTL_HDR 8                  /* le32 id, le16 event, le16 value */

static const char *const port_names[CONSOLE_NR_PORTS] = {
	NULL, "minivmm.stdin", "minivmm.stdout", "minivmm.stderr",
};

/* A hostile driver may provoke replies faster than it takes them; the handshake needs 16. */
#define CTL_BACKLOG 64
struct ctl_msg {
	uint32_t id;
	uint16_t event, value;
};

/* Workers: the transmitq of each port, then the two control queues. */
#define W_CTRL_RX CONSOLE_NR_PORTS
#define W_CTRL_TX (CONSOLE_NR_PORTS + 1)
#define NR_WORKERS (CONSOLE_NR_PORTS + 2)

struct console {
	struct virtio_dev dev;             /* first: the device is freed through it */
	struct virtio_console_io io;
	bool multiport;                    /* negotiated; set by activate */
	struct virtio_worker w[NR_WORKERS];
	int stop_fd;                       /* eventfd: reset wakes the stdin thread and writers */
	pthread_t stdin_thread;
	bool stdin_running;

	/* The control state, the backlog and the control receiveq. */
	pthread_mutex_t ctl_lock;
	bool device_ready;
	bool ctl_rx_live;                  /* the control receiveq is enabled and not broken */
	struct {
		bool ready;                /* the driver answered PORT_READY(1) */
		bool guest_open;           /* a guest process has it open */
		bool host_open;            /* what we tell (or will tell) the driver */
	} port[CONSOLE_NR_PORTS];
	struct ctl_msg backlog[CTL_BACKLOG];
	unsigned bl_head, bl_len;
	struct virtq_chain ctl_chain;

	/* stdin: owned by the stdin thread while it runs.  Kept across resets, so bytes read
	 * from in_fd but not yet delivered are not lost when the guest reboots. */
	int wake_fd;                       /* eventfd: the guest opened or closed the port */
	bool rx_broken;
	uint8_t in_buf[64 * 1024];
	size_t in_off, in_len;
	bool in_eof;
	struct virtq_chain in_chain;
};

static uint16_t port_rxq(unsigned p) { return p == 0 ? 0 : (uint16_t)(2 + 2 * p); }
static uint16_t port_txq(unsigned p) { return (uint16_t)(port_rxq(p) + 1); }

static void eventfd_clear(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) > 0)
		;
}

static void eventfd_poke(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, a wake-up is already pending */
	}
}

/* ---- output: transmitq chains to a host fd ---- */

/* Wait until fd takes more data; false if the device is being reset meanwhile. */
static bool wait_writable(struct console *c, int fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLOUT }, { .fd = c->stop_fd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (p[1].revents)
			return false;
		/* POLLERR/POLLHUP too: the next write reports what went wrong. */
		return !(p[0].revents & POLLNVAL);
	}
}

/* All of the chain's readable part, in order, to fd.  A blocking fd may stall here while
 * its reader is slow: that is the backpressure the guest's writers see.  Errors (EPIPE: the
 * reader left) drop the data; the guest's command goes on as it would with a closed pipe
 * that it does not notice. */
static void write_chain(struct console *c, int fd, struct virtq_chain *ch)
{
	struct iovec *iov = ch->out;
	int n = ch->nr_out;
	while (n > 0 && iov->iov_len == 0) {
		iov++;
		n--;
	}
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (wait_writable(c, fd))
				continue;
			return;
		}
		if (w <= 0) {
			if (w == 0 || errno != EPIPE)
				virtio_log(&c->dev, "guest output to fd %d dropped: %s", fd,
					   w ? strerror(errno) : "nothing written");
			return;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= w;
		}
	}
}

static uint32_t tx_discard(struct virtio_dev *d, struct virtq_chain *ch) { return 0; }

static uint32_t tx_stdout(struct virtio_dev *d, struct virtq_chain *ch)
{
	struct console *c = d->priv;
	if (c->io.out_fd >= 0)
		write_chain(c, c->io.out_fd, ch);
	return 0;
}

static uint32_t tx_stderr(struct virtio_dev *d, struct virtq_chain *ch)
{
	struct console *c = d->priv;
	if (c->io.err_fd >= 0)
		write_chain(c, c->io.err_fd, ch);
	return 0;
}

static void tx_process(struct virtio_dev *d, uint16_t q)
{
	virtio_queue_process(d, q, q == port_txq(PORT_STDOUT) ? tx_stdout :
				   q == port_txq(PORT_STDERR) ? tx_stderr : tx_discard);
}

/* ---- control messages ---- */

/* Under ctl_lock. */
static void ctl_send(struct console *c, uint32_t id, uint16_t event, uint16_t value)
{
	if (c->bl_len == CTL_BACKLOG) {
		virtio_log(&c->dev, "control receive queue starved: message %u for port %u dropped",
			   event, id);
		return;
	}
	c->backlog[(c->bl_head + c->bl_len++) % CTL_BACKLOG] = (struct ctl_msg){ id, event, value };
}

static size_t ctl_encode(const struct ctl_msg *m, uint8_t *buf, size_t cap)
{
	uint32_t id = htole32(m->id);
	uint16_t ev = htole16(m->event), val = htole16(m->value);
	memcpy(buf, &id, 4);
	memcpy(buf + 4, &ev, 2);
	memcpy(buf + 6, &val, 2);
	size_t len = CTL_HDR;
	/* The name follows the header, its length is the buffer's (no NUL). */
	if (m->event == EV_PORT_NAME && m->id < CONSOLE_NR_PORTS && port_names[m->id]) {
		size_t n = strlen(port_names[m->id]);
		if (n > cap - CTL_HDR)
			n = cap - CTL_HDR;
		memcpy(buf + CTL_HDR, port_names[m->id], n);
		len += n;
	}
	return len;
}

/* Move the backlog into the driver's control receive buffers.  Under ctl_lock, which also
 * makes this the only user of the control receiveq. */
static void ctl_flush(struct console *c)
{
	struct virtio_dev *d = &c->dev;
	struct virtq *vq = &d->q[CTRL_RXQ].vq;
	struct virtq_chain *ch = &c->ctl_chain;
	bool pushed = false;
	while (c->ctl_rx_live && c->bl_len) {
		int r = virtq_pop(vq, ch);
		if (r == 0) {
			/* Out of buffers: ask for a kick, unless some came in meanwhile. */
			if (virtq_enable_notify(vq))
				continue;
			break;
		}
		if (r < 0) {
			c->ctl_rx_live = false;
			virtio_needs_reset(d, "control receive queue: broken ring");
			break;
		}
		uint32_t len = 0;
		if (ch->err != VIRTQ_OK) {
			virtio_log(d, "control receive buffer %u failed: %s", ch->head,
				   virtq_strerror(ch->err));
		} else {
			uint8_t buf[CTL_HDR + 32];
			size_t n = ctl_encode(&c->backlog[c->bl_head], buf, sizeof(buf));
			if (ch->in_len < n) {
				/* Returned empty; the message waits for a buffer big enough. */
				virtio_log(d, "control receive buffer of %llu bytes is too small",
					   (unsigned long long)ch->in_len);
			} else {
				len = (uint32_t)virtq_copy_to(ch, 0, buf, n);
				c->bl_head = (c->bl_head + 1) % CTL_BACKLOG;
				c->bl_len--;
			}
		}
		pthread_mutex_lock(&d->q[CTRL_RXQ].push_lock);
		virtq_push(vq, ch->head, len);
		pthread_mutex_unlock(&d->q[CTRL_RXQ].push_lock);
		pushed = true;
	}
	if (pushed)
		virtio_signal_used(d, CTRL_RXQ);
}

/* One message from the driver.  Under ctl_lock.  Every reply depends on state that only
 * moves forward, so a driver repeating itself cannot make us repeat ourselves. */
static void ctl_event(struct console *c, uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_dev *d = &c->dev;
	switch (event) {
	case EV_DEVICE_READY:               /* id is the driver's "no port" value: ignored */
		if (!value) {
			virtio_log(d, "the driver failed to set the device up");
		} else if (!c->device_ready) {
			c->device_ready = true;
			for (uint32_t p = 0; p < CONSOLE_NR_PORTS; p++)
				ctl_send(c, p, EV_DEVICE_ADD, 1);
		}
		return;
	case EV_PORT_READY:
		if (id >= CONSOLE_NR_PORTS || !c->device_ready)
			break;
		if (!value) {
			virtio_log(d, "the driver failed to add port %u", id);
		} else if (!c->port[id].ready) {
			c->port[id].ready = true;
			ctl_send(c, id, id == PORT_CONSOLE ? EV_CONSOLE_PORT : EV_PORT_NAME, 1);
			if (c->port[id].host_open)
				ctl_send(c, id, EV_PORT_OPEN, 1);
		}
		return;
	case EV_PORT_OPEN:
		if (id >= CONSOLE_NR_PORTS || !c->port[id].ready)
			break;
		c->port[id].guest_open = value != 0;
		if (id == PORT_STDIN)
			eventfd_poke(c->wake_fd);
		return;
	default:
		virtio_log(d, "unknown control event %u (port %u) ignored", event, id);
		return;
	}
	virtio_log(d, "control event %u for port %u out of order or out of range, ignored",
		   event, id);
}

static uint32_t ctl_handle(struct virtio_dev *d, struct virtq_chain *ch)
{
	struct console *c = d->priv;
	uint8_t raw[CTL_HDR];
	if (virtq_copy_from(ch, 0, raw, sizeof(raw)) < sizeof(raw)) {
		virtio_log(d, "control message of %llu bytes is too short",
			   (unsigned long long)ch->out_len);
		return 0;
	}
	uint32_t id;
	uint16_t event, value;
	memcpy(&id, raw, 4);
	memcpy(&event, raw + 4, 2);
	memcpy(&value, raw + 6, 2);
	pthread_mutex_lock(&c->ctl_lock);
	ctl_event(c, le32toh(id), le16toh(event), le16toh(value));
	ctl_flush(c);
	pthread_mutex_unlock(&c->ctl_lock);
	return 0;
}

static void ctl_tx_process(struct virtio_dev *d, uint16_t q)
{
	virtio_queue_process(d, q, ctl_handle);
}

static void ctl_rx_process(struct virtio_dev *d, uint16_t q)
{
	struct console *c = d->priv;
	pthread_mutex_lock(&c->ctl_lock);
	ctl_flush(c);
	pthread_mutex_unlock(&c->ctl_lock);
}

/* ---- input: in_fd to port 1's receiveq ---- */

/* Fill the guest's receive buffers from in_buf while a guest process has the port open;
 * once everything read before end of file is delivered, close the host side. */
static void stdin_deliver(struct console *c)
{
	struct virtio_dev *d = &c->dev;
	pthread_mutex_lock(&c->ctl_lock);
	bool open = c->port[PORT_STDIN].ready && c->port[PORT_STDIN].guest_open;
	if (c->in_len == 0 && c->in_eof && c->port[PORT_STDIN].host_open) {
		c->port[PORT_STDIN].host_open = false;
		if (c->port[PORT_STDIN].ready) {
			ctl_send(c, PORT_STDIN, EV_PORT_OPEN, 0);
			ctl_flush(c);
		}
	}
	pthread_mutex_unlock(&c->ctl_lock);
	if (!open || c->in_len == 0 || c->rx_broken)
		return;

	uint16_t qi = port_rxq(PORT_STDIN);
	struct virtq *vq = &d->q[qi].vq;
	struct virtq_chain *ch = &c->in_chain;
	bool pushed = false;
	while (c->in_len) {
		int r = virtq_pop(vq, ch);
		if (r == 0) {
			if (virtq_enable_notify(vq))
				continue;
			break;
		}
		if (r < 0) {
			c->rx_broken = true;
			virtio_needs_reset(d, "stdin receive queue: broken ring");
			break;
		}
		uint32_t n = 0;
		if (ch->err != VIRTQ_OK) {
			virtio_log(d, "stdin receive buffer %u failed: %s", ch->head,
				   virtq_strerror(ch->err));
		} else {
			n = (uint32_t)virtq_copy_to(ch, 0, c->in_buf + c->in_off, c->in_len);
			c->in_off += n;
			c->in_len -= n;
		}
		pthread_mutex_lock(&d->q[qi].push_lock);
		virtq_push(vq, ch->head, n);
		pthread_mutex_unlock(&d->q[qi].push_lock);
		pushed = true;
	}
	if (pushed)
		virtio_signal_used(d, qi);
}

static void stdin_read(struct console *c)
{
	ssize_t r = read(c->io.in_fd, c->in_buf, sizeof(c->in_buf));
	if (r > 0) {
		c->in_off = 0;
		c->in_len = (size_t)r;
	} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
		if (r < 0)
			vm_log("reading stdin: %s; the guest sees end of file", strerror(errno));
		c->in_eof = true;
	}
}

static void *stdin_main(void *arg)
{
	struct console *c = arg;
	int kick = c->dev.q[port_rxq(PORT_STDIN)].kick_fd;
	for (;;) {
		stdin_deliver(c);
		struct pollfd p[4] = {
			{ .fd = c->stop_fd, .events = POLLIN },
			{ .fd = kick, .events = POLLIN },      /* the guest added receive buffers */
			{ .fd = c->wake_fd, .events = POLLIN },
			{ .fd = c->io.in_fd, .events = POLLIN },
		};
		/* Read more only once the last read is delivered: in_fd's writer sees the
		 * guest's pace. */
		nfds_t n = c->in_len == 0 && !c->in_eof ? 4 : 3;
		if (poll(p, n, -1) < 0)
			continue;
		if (p[0].revents)
			break;
		if (p[1].revents)
			eventfd_clear(kick);
		if (p[2].revents)
			eventfd_clear(c->wake_fd);
		if (n == 4 && p[3].revents)
			stdin_read(c);
	}
	return NULL;
}

/* ---- the device ---- */

static void console_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	uint8_t cfg[CONSOLE_CONFIG_SIZE] = { 0 };
	uint32_t max_ports = htole32(CONSOLE_NR_PORTS);
	memcpy(cfg + 4, &max_ports, 4);
	memcpy(data, cfg + off, len);
}

static void console_stop(struct console *c)
{
	eventfd_poke(c->stop_fd);
	if (c->stdin_running) {
		pthread_join(c->stdin_thread, NULL);
		c->stdin_running = false;
	}
	for (int i = 0; i < NR_WORKERS; i++)
		virtio_worker_stop(&c->w[i]);
}

static int console_activate(struct virtio_dev *d)
{
	struct console *c = d->priv;
	c->multiport = d->driver_features & (1ULL << CONSOLE_F_MULTIPORT);
	eventfd_clear(c->stop_fd);
	eventfd_clear(c->wake_fd);
	unsigned nports = c->multiport ? CONSOLE_NR_PORTS : 1;
	bool feed_stdin = c->multiport && c->io.in_fd >= 0 && d->q[port_rxq(PORT_STDIN)].enabled;

	pthread_mutex_lock(&c->ctl_lock);
	c->device_ready = false;
	c->ctl_rx_live = c->multiport && d->q[CTRL_RXQ].enabled;
	c->bl_head = c->bl_len = 0;
	memset(c->port, 0, sizeof(c->port));
	c->port[PORT_CONSOLE].host_open = true;
	c->port[PORT_STDOUT].host_open = true;
	c->port[PORT_STDERR].host_open = true;
	c->port[PORT_STDIN].host_open = feed_stdin && !(c->in_eof && c->in_len == 0);
	pthread_mutex_unlock(&c->ctl_lock);
	c->rx_broken = false;

	int ret = 0;
	for (unsigned p = 0; p < nports && !ret; p++)
		if (d->q[port_txq(p)].enabled)
			ret = virtio_worker_start(&c->w[p], d, port_txq(p), tx_process);
	if (!ret && c->multiport && d->q[CTRL_RXQ].enabled)
		ret = virtio_worker_start(&c->w[W_CTRL_RX], d, CTRL_RXQ, ctl_rx_process);
	if (!ret && c->multiport && d->q[CTRL_TXQ].enabled)
		ret = virtio_worker_start(&c->w[W_CTRL_TX], d, CTRL_TXQ, ctl_tx_process);
	if (!ret && feed_stdin) {
		ret = -thread_start(THREAD_STDIO, "con-stdin", stdin_main, c, &c->stdin_thread);
		c->stdin_running = !ret;
	}
	if (ret)
		console_stop(c);
	return ret;
}

static void console_reset(struct virtio_dev *d)
{
	console_stop(d->priv);
}

static const struct virtio_dev_ops console_ops = {
	.name = "virtio-console",
	.device_id = 3,
	.features = 1ULL << CONSOLE_F_MULTIPORT,
	.config_size = CONSOLE_CONFIG_SIZE,
	.config_read = console_config_read,
	.activate = console_activate,
	.reset = console_reset,
};

struct virtio_dev *virtio_console_create(struct vm *vm, const struct virtio_console_io *io)
{
	int ret;
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->io = *io;
	pthread_mutex_init(&c->ctl_lock, NULL);
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0 || c->wake_fd < 0)
		goto out_fds;
	ret = virtio_dev_init(&c->dev, vm, &console_ops, c, CONSOLE_NQUEUES, CONSOLE_QUEUE_SIZE);
	if (ret) {
		errno = -ret;
		goto out_fds;
	}
	return &c->dev;
out_fds:
	ret = errno;
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	free(c);
	errno = ret;
	return NULL;
}

void virtio_console_drain(struct virtio_dev *d)
{
	struct console *c = d->priv;
	/* d->lock keeps a guest reset out while we use the rings. */
	pthread_mutex_lock(&d->lock);
	if (d->active) {
		unsigned nports = c->multiport ? CONSOLE_NR_PORTS : 1;
		for (unsigned p = 0; p < nports; p++) {
			if (!c->w[p].running)
				continue;
			/* The worker finishes what it is doing; what it left, we write here. */
			virtio_worker_stop(&c->w[p]);
			tx_process(d, port_txq(p));
			if (virtio_worker_start(&c->w[p], d, port_txq(p), tx_process))
				vm_log("virtio-console: cannot restart an output worker");
		}
	}
	pthread_mutex_unlock(&d->lock);
}
