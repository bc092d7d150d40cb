/* 16550A UART.  The transmitter is infinitely fast (each THR write goes straight to the
 * host), so THR/TEMT always read as empty; the receiver is a 16-byte FIFO whose backing
 * store is a large ring, so pasted input waits for the guest instead of overrunning. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/serial.h"
#include "vmm/thread.h"

enum { RBR_THR, IER, IIR_FCR, LCR, MCR, LSR, MSR, SCR };	/* register offsets */

enum { IER_ERBFI = 0x01, IER_ETBEI = 0x02, IER_ELSI = 0x04, IER_EDSSI = 0x08 };
/* IIR causes; IIR_FIFO (both bits) is what the 8250 probe takes for a working 16550A */
enum { IIR_MSR = 0x00, IIR_NONE = 0x01, IIR_THRE = 0x02, IIR_RDA = 0x04, IIR_LSR = 0x06,
       IIR_FIFO = 0xc0 };
/* FCR_KEEP: enable, DMA mode and RX trigger are state; the clear bits are commands */
enum { FCR_ENABLE = 0x01, FCR_CLR_RX = 0x02, FCR_KEEP = 0xc9 };
enum { LCR_DLAB = 0x80, MCR_LOOP = 0x10, MCR_MASK = 0x1f };
enum { LSR_DR = 0x01, LSR_OE = 0x02, LSR_THRE = 0x20, LSR_TEMT = 0x40 };
enum { MSR_DCTS = 0x01, MSR_DDSR = 0x02, MSR_TERI = 0x04, MSR_DDCD = 0x08,
       MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80 };

#define FIFO_DEPTH 16

struct serial {
	pthread_mutex_t lock;	/* all register state; taken by vCPUs and the input thread */
	pthread_mutex_t out_lock; /* orders THR bytes on out_fd without holding `lock` in write() */
	int out_fd;
	serial_irq_fn irq;
	void *irq_ctx;
	bool irq_level;

	uint8_t ier, fcr, lcr, mcr, scr, dll, dlm;
	uint8_t lsr_err;	/* sticky LSR error bits (only OE here), cleared by reading LSR */
	uint8_t msr_delta;	/* MSR bits 0-3, cleared by reading MSR */
	uint8_t rbr;		/* last byte read: an empty FIFO keeps returning it */
	bool thre_pending;	/* THRE interrupt latched (counts only while ETBEI is set) */

	size_t rx_head, rx_count;
	uint8_t rx[SERIAL_RX_BUF];

	/* Input thread; the escape state is touched only by that thread. */
	pthread_t thread;
	bool thread_started;
	int in_fd, wake_fd;
	bool escape, esc_pending;
	void (*quit)(void *ctx);
	void *quit_ctx;
};

static unsigned serial_fifo_depth(const struct serial *s)
{
	return (s->fcr & FCR_ENABLE) ? FIFO_DEPTH : 1;
}

/* Modem input lines.  Outside loopback there is no real modem, so report one that is
 * always connected and ready (DCD, DSR, CTS); in loopback they mirror MCR as the chip
 * wires them: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
static uint8_t serial_lines(const struct serial *s)
{
	uint8_t m = s->mcr;

	if (!(m & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	return (m & 0x01) << 5 | (m & 0x02) << 3 | (m & 0x04) << 4 | (m & 0x08) << 4;
}

/* Host input is shown to the guest only while it has receive interrupts on (or loops back
 * to itself).  Linux clears the FIFO and reads RBR several times while opening the port
 * with interrupts off: on a real line those bytes would be lost, but piped input must not
 * depend on how fast the guest boots, so until then it waits in the host buffer. */
static bool serial_rx_visible(const struct serial *s)
{
	return (s->ier & IER_ERBFI) || (s->mcr & MCR_LOOP);
}

static size_t serial_rx_avail(const struct serial *s)
{
	return serial_rx_visible(s) ? s->rx_count : 0;
}

/* Highest-priority pending cause, as the IIR reports it. */
static uint8_t serial_iir_cause(const struct serial *s)
{
	if ((s->ier & IER_ELSI) && s->lsr_err)
		return IIR_LSR;
	if ((s->ier & IER_ERBFI) && s->rx_count)
		return IIR_RDA;
	if ((s->ier & IER_ETBEI) && s->thre_pending)
		return IIR_THRE;
	if ((s->ier & IER_EDSSI) && s->msr_delta)
		return IIR_MSR;
	return IIR_NONE;
}

/* Called with the lock held after every state change: the line is level-triggered, so it
 * simply follows "is any enabled cause pending". */
static void serial_update_irq(struct serial *s)
{
	bool level = serial_iir_cause(s) != IIR_NONE;

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (s->irq)
		s->irq(s->irq_ctx, level);
}

static void serial_rx_push(struct serial *s, uint8_t c, size_t limit)
{
	if (s->rx_count >= limit) {
		s->lsr_err |= LSR_OE;
		return;
	}
	s->rx[(s->rx_head + s->rx_count++) % SERIAL_RX_BUF] = c;
}

/* FIFO clears (FCR, or toggling the FIFO on/off) discard only what the UART looped back to
 * itself, i.e. the driver's own probe bytes.  Host input is never in flight on a wire:
 * Linux clears the FIFOs right after enabling receive interrupts when it (re)opens the
 * port, and dropping the user's piped input there would depend on boot timing. */
static void serial_rx_clear(struct serial *s)
{
	size_t n = s->rx_count < serial_fifo_depth(s) ? s->rx_count : serial_fifo_depth(s);

	if (!(s->mcr & MCR_LOOP))
		return;
	s->rx_head = (s->rx_head + n) % SERIAL_RX_BUF;
	s->rx_count -= n;
}
/* Blocking write of one byte; gives up on errors so a vanished terminal cannot stall the
 * vCPU.  EAGAIN (non-blocking fd) waits a bounded time for room, then drops. */
static void serial_out_byte(struct serial *s, uint8_t c)
{
	for (;;) {
		ssize_t r = write(s->out_fd, &c, 1);

		if (r == 1)
			return;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = s->out_fd, .events = POLLOUT };

			if (poll(&p, 1, 1000) > 0)
				continue;
		}
		return;
	}
}

static uint8_t serial_read(struct serial *s, unsigned off)
{
	uint8_t v;

	switch (off) {
	case RBR_THR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (serial_rx_avail(s)) {
			s->rbr = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_RX_BUF;
			s->rx_count--;
		}
		return s->rbr;
	case IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case IIR_FCR:
		v = serial_iir_cause(s);
		/* Reading IIR is what acknowledges a THRE interrupt (the other causes clear
		 * when their condition goes away). */
		if (v == IIR_THRE)
			s->thre_pending = false;
		return v | ((s->fcr & FCR_ENABLE) ? IIR_FIFO : 0);
	case LCR:
		return s->lcr;
	case MCR:
		return s->mcr;
	case LSR:
		v = (serial_rx_avail(s) ? LSR_DR : 0) | s->lsr_err | LSR_THRE | LSR_TEMT;
		s->lsr_err = 0;
		return v;
	case MSR:
		v = serial_lines(s) | s->msr_delta;
		s->msr_delta = 0;
		return v;
	case SCR:
		return s->scr;
	}
	return 0xff;
}

static void serial_write(struct serial *s, unsigned off, uint8_t v)
{
	uint8_t old;

	switch (off) {
	case RBR_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			break;
		}
		/* A THR write clears THRE and the (instant) transmission sets it again: drop
		 * the line so raising it below is an edge.  IRQ 4 is edge-triggered on the
		 * IOAPIC; a line that stayed high would never interrupt again. */
		s->thre_pending = false;
		serial_update_irq(s);
		/* Loopback: the byte comes back into our own receiver, which, like the chip's,
		 * holds one FIFO; Linux's size_fifo() probe counts on that. */
		if (s->mcr & MCR_LOOP)
			serial_rx_push(s, v, serial_fifo_depth(s));
		else if (s->out_fd >= 0) {
			/* Hand over to out_lock before unlocking so bytes keep their order but
			 * a slow terminal does not hold up the register state. */
			pthread_mutex_lock(&s->out_lock);
			pthread_mutex_unlock(&s->lock);
			serial_out_byte(s, v);
			pthread_mutex_unlock(&s->out_lock);
			pthread_mutex_lock(&s->lock);
		}
		/* Transmission is instant, so THR is empty again at once: latch THRE so the
		 * guest's TX interrupt handler is called back for the next batch. */
		s->thre_pending = true;
		break;
	case IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			break;
		}
		old = s->ier;
		s->ier = v & 0x0f;	/* the 8250 probe checks that bits 4-7 read back 0 */
		/* Enabling ETBEI while THR is empty raises THRE at once.  Linux's TX path (and
		 * its THRE re-assert test) depend on it: it only ever sets ETBEI to start TX. */
		if ((s->ier & IER_ETBEI) && !(old & IER_ETBEI))
			s->thre_pending = true;
		break;
	case IIR_FCR:
		/* Toggling the enable clears the FIFOs; the other bits, the clear command
		 * included, only take effect together with FCR_ENABLE. */
		if (((v ^ s->fcr) & FCR_ENABLE) || ((v & FCR_ENABLE) && (v & FCR_CLR_RX)))
			serial_rx_clear(s);
		s->fcr = (v & FCR_ENABLE) ? v & FCR_KEEP : 0;
		break;
	case LCR:
		s->lcr = v;
		break;
	case MCR:
		old = serial_lines(s);
		s->mcr = v & MCR_MASK;
		old ^= serial_lines(s);
		/* RI reports only its trailing edge, the others any change */
		s->msr_delta |= (old & MSR_CTS ? MSR_DCTS : 0) | (old & MSR_DSR ? MSR_DDSR : 0) |
				((old & MSR_RI) && !(serial_lines(s) & MSR_RI) ? MSR_TERI : 0) |
				(old & MSR_DCD ? MSR_DDCD : 0);
		break;
	case SCR:
		s->scr = v;
		break;
	}	/* LSR and MSR writes are factory-test only: ignored */
}

void serial_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write)
{
	struct serial *s = opaque;
	uint8_t *p = data;

	/* Only byte access is defined; wider accesses act on the first byte, the rest of a
	 * read is open bus. */
	if (!len)
		return;
	if (!is_write)
		memset(p, 0xff, len);
	if (off >= SERIAL_NR_REGS)
		return;

	pthread_mutex_lock(&s->lock);
	if (is_write)
		serial_write(s, off, p[0]);
	else
		p[0] = serial_read(s, off);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_feed(struct serial *s, const uint8_t *buf, size_t n)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < n; i++)
		serial_rx_push(s, buf[i], SERIAL_RX_BUF);
	serial_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

/* Apply the Ctrl-A escapes to a chunk of user input and feed the rest.  The pending-escape
 * state survives between chunks, as Ctrl-A and its command may arrive in separate reads. */
static void serial_input_bytes(struct serial *s, const uint8_t *buf, size_t n)
{
	uint8_t out[256];
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = buf[i];

		if (o > sizeof(out) - 2) {
			serial_feed(s, out, o);
			o = 0;
		}
		if (!s->escape || (!s->esc_pending && c != SERIAL_ESCAPE)) {
			out[o++] = c;
			continue;
		}
		if (!s->esc_pending) {
			s->esc_pending = true;
			continue;
		}
		s->esc_pending = false;
		if (c == 'x') {
			/* Deliver what came before, so quitting never reorders input. */
			serial_feed(s, out, o);
			o = 0;
			if (s->quit)
				s->quit(s->quit_ctx);
			continue;
		}
		/* Ctrl-A Ctrl-A is a literal Ctrl-A; an unknown command passes through as typed. */
		if (c != SERIAL_ESCAPE)
			out[o++] = SERIAL_ESCAPE;
		out[o++] = c;
	}
	if (o)
		serial_feed(s, out, o);
}

static void *serial_input_thread(void *arg)
{
	struct serial *s = arg;
	struct pollfd p[2] = {
		{ .fd = s->in_fd, .events = POLLIN },
		{ .fd = s->wake_fd, .events = POLLIN },
	};
	uint8_t buf[256];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		ssize_t r = read(s->in_fd, buf, sizeof(buf));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		/* EOF or error: stop reading but leave the guest running (e.g. stdin from
		 * /dev/null or a finished pipe). */
		if (r <= 0)
			break;
		serial_input_bytes(s, buf, r);
	}
	return NULL;
}

int serial_input_start_esc(struct serial *s, int in_fd, bool escape, void (*quit)(void *ctx),
			   void *quit_ctx)
{
	sigset_t all, old;
	int err;

	if (s->thread_started)
		return -EBUSY;
	s->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (s->wake_fd < 0)
		return -errno;
	s->in_fd = in_fd;
	s->escape = escape;
	s->esc_pending = false;
	s->quit = quit;
	s->quit_ctx = quit_ctx;

	/* The thread inherits a full signal mask so process-directed signals (SIGTERM, the
	 * VMM's vCPU kicks) are delivered to the threads that expect them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -thread_start(THREAD_STDIO, "serial-in", serial_input_thread, s, &s->thread);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto err_close;
	s->thread_started = true;
	return 0;

err_close:
	close(s->wake_fd);
	s->wake_fd = -1;
	return err;
}

int serial_input_start(struct serial *s, int in_fd, void (*quit)(void *ctx), void *quit_ctx)
{
	/* Escapes on a pipe or file would corrupt binary input nobody is typing. */
	return serial_input_start_esc(s, in_fd, isatty(in_fd), quit, quit_ctx);
}

struct serial *serial_create(int out_fd, serial_irq_fn irq, void *irq_ctx)
{
	struct serial *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return NULL;
	err = pthread_mutex_init(&s->lock, NULL);
	if (err)
		goto err_free;
	err = pthread_mutex_init(&s->out_lock, NULL);
	if (err)
		goto err_lock;
	s->out_fd = out_fd;
	s->irq = irq;
	s->irq_ctx = irq_ctx;
	s->in_fd = s->wake_fd = -1;
	s->dll = 1;	/* 115200 baud; firmware would normally have set something */
	return s;

err_lock:
	pthread_mutex_destroy(&s->lock);
err_free:
	free(s);
	errno = err;
	return NULL;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		uint64_t one = 1;

		/* The eventfd wakes the poll() even if in_fd never becomes readable. */
		while (write(s->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		pthread_join(s->thread, NULL);
		close(s->wake_fd);
	}
	pthread_mutex_destroy(&s->out_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
