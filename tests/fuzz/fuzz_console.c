/* Fuzz virtio-console's control protocol and the queues around it (virtio/console.c): a
 * hostile driver sends control messages, posts control and stdin receive buffers of any
 * size, writes output, and scribbles over the rings, while the host side feeds stdin.
 *
 * Deterministic and single-threaded: console.c is included so the harness can call the
 * functions its worker threads run (ctl_tx_process, ctl_rx_process, stdin_deliver,
 * tx_process) directly, after setting the device up as console_activate does minus the
 * threads.  Guest RAM is a heap block: ASan sees any access outside it.
 *
 * Input: u8 setup (bit 0: MULTIPORT negotiated, bit 1: no stdin), then operations: u8
 * opcode and its arguments (see run_op). */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>

#include "tests/fuzz/fuzz.h"
#include "virtio/console.c"

#define RAM      (64u << 10)
#define QS       16                 /* every queue: 16 entries */
#define QAREA    0x1000             /* desc at +0, avail at +0x400, used at +0x800 */
#define HEAP     (CONSOLE_NQUEUES * QAREA)
#define MAX_OPS  256

static struct vm vm;
static int devnull = -1;
static uint64_t heap;
static uint16_t avail_idx[CONSOLE_NQUEUES], next_desc[CONSOLE_NQUEUES];
static int signals;

static void sig(struct virtio_dev *d, enum virtio_irq kind, uint16_t q)
{
	FZ_CHECK(kind == VIRTIO_IRQ_CONFIG || q < CONSOLE_NQUEUES, "signal for queue %u", q);
	signals++;
}
static const struct virtio_transport_ops tops = { .signal = sig };

static uint8_t *ram(uint64_t gpa) { return vm.mem.r[0].hva + gpa; }

static uint64_t alloc(uint32_t len)
{
	if (heap + len + 16 > RAM)
		heap = HEAP;                /* wrap: reuse old buffers, as a driver might */
	uint64_t a = heap;
	heap += (len + 15) & ~15u;
	return a;
}

static void put_desc(int q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = ram((uint64_t)q * QAREA + 16u * (i % QS));
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void publish(int q, uint16_t head)
{
	uint8_t *a = ram((uint64_t)q * QAREA + 0x400);
	memcpy(a + 4 + 2 * (avail_idx[q] % QS), &head, 2);
	avail_idx[q]++;
	__atomic_store_n((uint16_t *)(a + 2), avail_idx[q], __ATOMIC_RELEASE);
}

/* One chain: `nout` readable bytes from `data` (split in two when `split`), then a writable
 * buffer of `nin` bytes when nin >= 0. */
static void add_chain(int q, const uint8_t *data, uint32_t nout, int nin, bool split)
{
	uint16_t head = next_desc[q], i = head;
	uint32_t first = split && nout > 1 ? nout / 2 : nout;
	uint32_t parts[2] = { first, nout - first };
	for (int k = 0; k < (split && nout > 1 ? 2 : 1); k++) {
		uint64_t a = alloc(parts[k]);
		memcpy(ram(a), data + (k ? first : 0), parts[k]);
		bool more = k == 0 && (split && nout > 1 ? true : nin >= 0);
		put_desc(q, i, a, parts[k], more ? 1 : 0, (uint16_t)((i + 1) % QS));
		i = (uint16_t)((i + 1) % QS);
	}
	if (nin >= 0) {
		put_desc(q, i, alloc((uint32_t)nin), (uint32_t)nin, 2, 0);
		i = (uint16_t)((i + 1) % QS);
	}
	next_desc[q] = i;
	publish(q, head);
}

/* A writable-only chain (receive buffer). */
static void add_rx(int q, uint32_t len)
{
	uint16_t head = next_desc[q];
	put_desc(q, head, alloc(len), len, 2, 0);
	next_desc[q] = (uint16_t)((head + 1) % QS);
	publish(q, head);
}

/* console_activate without its threads; keep in step with it.  The device is made once
 * (a fresh one per input costs more than the input) and brought back to the state a reset
 * leaves, plus what the stdin thread keeps across resets cleared. */
static struct console *start(uint8_t setup)
{
	static struct console *c;
	if (!c) {
		struct virtio_console_io io = { devnull, devnull, devnull };
		struct virtio_dev *d = virtio_console_create(&vm, &io);
		if (!d)
			abort();
		c = d->priv;
	}
	struct virtio_dev *d = &c->dev;
	c->io.in_fd = (setup & 2) ? -1 : devnull;
	c->in_off = c->in_len = 0;
	c->in_eof = false;
	eventfd_clear(c->stop_fd);
	eventfd_clear(c->wake_fd);
	d->status = 0;
	d->tops = &tops;
	d->last_log = LONG_MAX;          /* quiet: rate-limited to never */
	d->driver_features = (1ULL << VIRTIO_F_VERSION_1) |
			     ((setup & 1) ? 1ULL << CONSOLE_F_MULTIPORT : 0);
	for (int q = 0; q < CONSOLE_NQUEUES; q++) {
		d->q[q].size = QS;
		d->q[q].enabled = true;
		if (virtq_init(&d->q[q].vq, d->mem, QS, (uint64_t)q * QAREA, q * QAREA + 0x400,
			       q * QAREA + 0x800, setup & 4, setup & 8))
			abort();
	}
	c->multiport = d->driver_features & (1ULL << CONSOLE_F_MULTIPORT);
	bool feed_stdin = c->multiport && c->io.in_fd >= 0;
	c->device_ready = false;
	c->ctl_rx_live = c->multiport;
	c->bl_head = c->bl_len = 0;
	memset(c->port, 0, sizeof(c->port));
	c->port[PORT_CONSOLE].host_open = true;
	c->port[PORT_STDOUT].host_open = true;
	c->port[PORT_STDERR].host_open = true;
	c->port[PORT_STDIN].host_open = feed_stdin;
	c->rx_broken = false;
	return c;
}

static void check(struct console *c)
{
	FZ_CHECK(c->bl_len <= CTL_BACKLOG && c->bl_head < CTL_BACKLOG, "backlog %u at %u",
		 c->bl_len, c->bl_head);
	FZ_CHECK(c->in_len <= sizeof(c->in_buf) && c->in_off <= sizeof(c->in_buf) - c->in_len,
		 "stdin buffer %zu+%zu", c->in_off, c->in_len);
	FZ_CHECK(!c->port[PORT_STDIN].host_open || !c->in_eof || c->in_len ||
		 !c->port[PORT_STDIN].ready, "stdin still open after its end was delivered");
}

static void run_op(struct console *c, struct fz *f)
{
	struct virtio_dev *d = &c->dev;
	uint8_t op = fz_u8(f), buf[64];
	unsigned n;

	/* Without MULTIPORT only port 0's queues run (console_activate starts nothing else). */
	if (!c->multiport && (op & 7) != 5)
		return;

	switch (op & 7) {
	case 0: /* a control message from the driver: id, event, value (+ junk) */
		n = fz_u8(f) % 24;
		fz_bytes(f, buf, n);
		add_chain(CTRL_TXQ, buf, n, (op & 8) ? 8 : -1, op & 16);
		ctl_tx_process(d, CTRL_TXQ);
		break;
	case 1: /* control receive buffers */
		for (n = 1 + (op >> 6); n; n--)
			add_rx(CTRL_RXQ, fz_u8(f) % 48);
		ctl_rx_process(d, CTRL_RXQ);
		break;
	case 2: { /* scribble on a queue's rings, then run whoever owns the queue */
		int q = fz_u8(f) % CONSOLE_NQUEUES;
		uint16_t off = fz_u16(f) % QAREA;
		n = fz_u8(f) % 32;
		if (off + n > QAREA)
			n = QAREA - off;
		fz_bytes(f, ram((uint64_t)q * QAREA + off), n);
		if (q == CTRL_TXQ)
			ctl_tx_process(d, q);
		else if (q == CTRL_RXQ)
			ctl_rx_process(d, q);
		else if (q == port_rxq(PORT_STDIN))
			stdin_deliver(c);
		else if (q & 1)
			tx_process(d, (uint16_t)q);
		break;
	}
	case 3: /* host stdin: data, or its end */
		if (c->io.in_fd < 0)
			break;
		/* As stdin_read: in_fd is only read (and its end only seen) once the last
		 * read is delivered. */
		if (op & 8) {
			if (c->in_len == 0)
				c->in_eof = true;
		} else if (c->in_len == 0 && !c->in_eof) {
			n = 1 + fz_u8(f) % 64;
			fz_bytes(f, c->in_buf, n);
			c->in_off = 0;
			c->in_len = n;
		}
		stdin_deliver(c);
		break;
	case 4: /* stdin receive buffers */
		for (n = 1 + (op >> 6); n; n--)
			add_rx(port_rxq(PORT_STDIN), fz_u8(f) % 40);
		stdin_deliver(c);
		break;
	case 5: { /* output on a port */
		unsigned p = fz_u8(f) % CONSOLE_NR_PORTS;
		n = fz_u8(f) % 64;
		fz_bytes(f, buf, n);
		add_chain(port_txq(p), buf, n, (op & 8) ? 4 : -1, op & 16);
		tx_process(d, port_txq(p));
		break;
	}
	default: /* the driver's stdin open/close as it would arrive, for reachability */
		fz_bytes(f, buf, 2);
		pthread_mutex_lock(&c->ctl_lock);
		ctl_event(c, buf[0] % 5, (uint16_t)(buf[1] & 7), buf[1] >> 7);
		ctl_flush(c);
		pthread_mutex_unlock(&c->ctl_lock);
		stdin_deliver(c);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	if (size > 8192)
		return 0;
	if (!vm.mem.n) {
		signal(SIGPIPE, SIG_IGN);
		fz_gmem(&vm.mem, RAM, 0);
		devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (devnull < 0)
			abort();
	}
	memset(vm.mem.r[0].hva, 0, RAM);
	memset(avail_idx, 0, sizeof(avail_idx));
	memset(next_desc, 0, sizeof(next_desc));
	heap = HEAP;
	struct console *c = start(fz_u8(&f));
	for (int k = 0; k < MAX_OPS && !fz_empty(&f); k++) {
		run_op(c, &f);
		check(c);
	}
	console_stop(c);    /* no threads to join: only pokes stop_fd (start() clears it) */
	return 0;
}
