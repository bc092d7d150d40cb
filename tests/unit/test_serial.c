/* 16550A UART and host terminal, without KVM: the guest is played by register accesses in
 * the order Linux's 8250 driver makes them, the IRQ line by a recording callback. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "devices/serial.h"
#include "devices/term.h"

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4,
       LSR = 5, MSR = 6, SCR = 7 };

static struct serial *s;
static int out[2];		/* guest output: serial writes out[1], tests read out[0] */
static int irq_level, irq_calls, quits;

static void fake_irq(void *ctx, int level)
{
	(void)ctx;
	__atomic_store_n(&irq_level, level, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&irq_calls, 1, __ATOMIC_SEQ_CST);
}

static uint8_t rd(unsigned off);

/* Also notes whether input typed before the escape had already reached the guest. */
static int quit_saw_data;
static void fake_quit(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&quit_saw_data, rd(LSR) & 0x01, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&quits, 1, __ATOMIC_SEQ_CST);
}

static int level(void) { return __atomic_load_n(&irq_level, __ATOMIC_SEQ_CST); }
static int nquits(void) { return __atomic_load_n(&quits, __ATOMIC_SEQ_CST); }

static uint8_t rd(unsigned off)
{
	uint8_t v = 0;

	serial_io(s, off, &v, 1, false);
	return v;
}

static void wr(unsigned off, uint8_t v)
{
	serial_io(s, off, &v, 1, true);
}

static void setup(void)
{
	cr_assert_eq(pipe2(out, O_NONBLOCK), 0);
	irq_level = irq_calls = quits = 0;
	s = serial_create(out[1], fake_irq, NULL);
	cr_assert_not_null(s);
}

static void teardown(void)
{
	serial_destroy(s);
	close(out[0]);
	close(out[1]);
}

TestSuite(serial, .init = setup, .fini = teardown, .timeout = 20);

/* What drivers/tty/serial/8250 autoconfig() does before it believes in a 16550A. */
Test(serial, linux_autoconfig_16550a)
{
	/* IER probe: bits 0-3 stick, nothing else is there. */
	uint8_t save_ier = rd(IER);
	wr(IER, 0);
	cr_assert_eq(rd(IER) & 0x0f, 0);
	wr(IER, 0x0f);
	cr_assert_eq(rd(IER) & 0x0f, 0x0f);
	wr(IER, 0xff);
	cr_assert_eq(rd(IER), 0x0f, "IER bits 4-7 (e.g. XScale UUE) must read 0");
	wr(IER, save_ier);

	/* Loopback test: MCR = LOOP|OUT2|RTS must show DCD|CTS only. */
	uint8_t save_mcr = rd(MCR);
	wr(MCR, 0x10 | 0x0a);
	cr_assert_eq(rd(MSR) & 0xf0, 0x90);
	wr(MCR, save_mcr);
	cr_assert_eq(rd(MSR) & 0xf0, 0xb0, "out of loopback the console must look connected");

	/* FIFO type from IIR bits 6-7. */
	wr(LCR, 0xbf);
	wr(FCR, 0);		/* the EFR write of the probe lands in FCR */
	wr(LCR, 0);
	wr(FCR, 0x01);
	cr_assert_eq(rd(IIR) >> 6, 3, "FIFO enabled must read as 16550A");

	/* autoconfig_16550a: no EFR (IIR reads non-zero with DLAB or LCR=0xbf)... */
	wr(LCR, 0x80);
	cr_assert_neq(rd(IIR), 0);
	wr(LCR, 0xbf);
	cr_assert_neq(rd(IIR), 0);
	/* ...no NatSemi EXCR1 mirroring MCR.LOOP... */
	wr(LCR, 0);
	uint8_t mcr = rd(MCR);
	wr(LCR, 0xe0);
	uint8_t excr = rd(IIR);
	wr(LCR, 0);
	wr(MCR, mcr ^ 0x10);
	wr(LCR, 0xe0);
	uint8_t excr2 = rd(IIR);
	wr(LCR, 0);
	wr(MCR, mcr);
	cr_assert_eq((excr ^ mcr) & 0x10, 0);
	cr_assert_eq((excr2 ^ mcr) & 0x10, 0);
	/* ...and no 64-byte TI16C750 FIFO (IIR bit 5 ignores FCR bit 5). */
	wr(FCR, 0x21);
	cr_assert_eq(rd(IIR) >> 5, 6);
	wr(FCR, 0x01);

	/* Scratch register. */
	wr(SCR, 0xa5);
	cr_assert_eq(rd(SCR), 0xa5);
	wr(SCR, 0x5a);
	cr_assert_eq(rd(SCR), 0x5a);

	/* Divisor latch round trip; it must not alias RBR/IER once DLAB is off. */
	wr(LCR, 0x83);
	cr_assert_eq(rd(LCR), 0x83);
	wr(DLL, 0x0c);
	wr(DLM, 0x34);
	cr_assert_eq(rd(DLL), 0x0c);
	cr_assert_eq(rd(DLM), 0x34);
	wr(LCR, 0x03);
	wr(IER, 0x00);
	cr_assert_eq(rd(IER), 0x00);
	wr(LCR, 0x83);
	cr_assert_eq(rd(DLM), 0x34);
	cr_assert_eq(rd(DLL), 0x0c);
	wr(LCR, 0x03);

	/* FIFO off reads as a plain 8250/16450. */
	wr(FCR, 0);
	cr_assert_eq(rd(IIR) & 0xc0, 0);
	cr_assert_neq(rd(LSR), 0xff);
	cr_assert_eq(rd(LSR) & 0x60, 0x60, "THRE and TEMT: transmitter idle");
	cr_assert_eq(level(), 0, "no interrupt enabled, the line must be low");
}

Test(serial, thr_reaches_out_fd)
{
	static const uint8_t msg[] = "Linux version\r\n\x00\xff\x1b[0m";
	uint8_t got[64];

	for (size_t i = 0; i < sizeof(msg); i++) {
		cr_assert_eq(rd(LSR) & 0x20, 0x20);
		wr(THR, msg[i]);
	}
	ssize_t n = read(out[0], got, sizeof(got));
	cr_assert_eq(n, (ssize_t)sizeof(msg));
	cr_assert_arr_eq(got, msg, sizeof(msg));
	cr_assert_eq(read(out[0], got, sizeof(got)), -1, "no extra bytes");

	/* With DLAB set offset 0 is DLL, not THR. */
	wr(LCR, 0x80);
	wr(THR, 'X');
	wr(LCR, 0x03);
	cr_assert_eq(read(out[0], got, sizeof(got)), -1);
}

Test(serial, thre_interrupt)
{
	wr(FCR, 0x01);
	cr_assert_eq(rd(IIR), 0xc1);
	cr_assert_eq(level(), 0);

	/* Setting ETBEI with THR empty raises THRE at once. */
	wr(IER, 0x02);
	cr_assert_eq(level(), 1);
	cr_assert_eq(rd(LSR) & 0x60, 0x60);
	cr_assert_eq(level(), 1, "reading LSR must not acknowledge THRE");
	/* Reading IIR acknowledges it. */
	cr_assert_eq(rd(IIR), 0xc2);
	cr_assert_eq(level(), 0);
	cr_assert_eq(rd(IIR), 0xc1);

	/* Linux's "does THRE re-assert" test: IER off and on again. */
	wr(IER, 0);
	wr(IER, 0x02);
	cr_assert_eq(rd(IIR), 0xc2);
	cr_assert_eq(level(), 0);

	/* A byte sent with ETBEI on: THR drains at once, so THRE is pending again. */
	wr(THR, 'a');
	cr_assert_eq(level(), 1);
	/* ...and every further byte must make a new edge: IRQ 4 is edge-triggered, and a
	 * line that merely stays high never interrupts again (the TX path would stall). */
	int calls = irq_calls;
	wr(THR, 'b');
	cr_assert_eq(level(), 1);
	cr_assert_eq(irq_calls, calls + 2, "THR write must pulse the line low then high");
	/* Disabling ETBEI (Linux's stop_tx) drops the line. */
	wr(IER, 0);
	cr_assert_eq(level(), 0);
	cr_assert_eq(rd(IIR), 0xc1);
}

Test(serial, rx_data_and_irq)
{
	wr(FCR, 0x01);
	cr_assert_eq(rd(LSR) & 0x01, 0);
	serial_feed(s, (const uint8_t *)"a", 1);
	cr_assert_eq(rd(LSR) & 0x01, 0, "ERBFI off: host input waits, not shown");
	cr_assert_eq(level(), 0, "ERBFI off: no interrupt");
	serial_feed(s, (const uint8_t *)"bc", 2);

	wr(IER, 0x01);
	cr_assert_eq(rd(LSR) & 0x01, 0x01);
	cr_assert_eq(level(), 1);
	cr_assert_eq(irq_calls, 1);
	cr_assert_eq(rd(IIR), 0xc4);
	cr_assert_eq(rd(IIR), 0xc4, "RX data is not acknowledged by IIR, only by draining");
	serial_feed(s, (const uint8_t *)"d", 1);
	cr_assert_eq(irq_calls, 1, "irq() is called on level changes only");

	cr_assert_eq(rd(RBR), 'a');
	cr_assert_eq(rd(RBR), 'b');
	cr_assert_eq(rd(RBR), 'c');
	cr_assert_eq(level(), 1);
	cr_assert_eq(rd(RBR), 'd');
	cr_assert_eq(level(), 0);
	cr_assert_eq(irq_calls, 2);
	cr_assert_eq(rd(LSR) & 0x03, 0, "drained, no overrun");
	cr_assert_eq(rd(IIR), 0xc1);
}

Test(serial, rx_more_than_fifo_in_order)
{
	enum { N = 5000 };
	static uint8_t buf[N];

	for (int i = 0; i < N; i++)
		buf[i] = (uint8_t)(i * 7 + i / 256);
	wr(FCR, 0x01);
	wr(IER, 0x01);
	serial_feed(s, buf, 100);
	serial_feed(s, buf + 100, N - 100);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(rd(LSR) & 0x03, 0x01, "byte %d: DR without overrun", i);
		cr_assert_eq(level(), 1);
		cr_assert_eq(rd(RBR), buf[i], "byte %d", i);
	}
	cr_assert_eq(rd(LSR) & 0x01, 0);
	cr_assert_eq(level(), 0);
}

Test(serial, rx_overrun_beyond_buffer)
{
	static uint8_t buf[SERIAL_RX_BUF + 10];

	memset(buf, 'q', sizeof(buf));
	wr(IER, 0x05);		/* RX data and line status */
	serial_feed(s, buf, sizeof(buf));
	cr_assert_eq(rd(IIR) & 0x0f, 0x06, "overrun is the top-priority cause");
	cr_assert_eq(rd(LSR) & 0x03, 0x03);
	cr_assert_eq(rd(LSR) & 0x03, 0x01, "reading LSR clears OE");
	cr_assert_eq(rd(IIR) & 0x0f, 0x04);
}

Test(serial, fifo_clear_keeps_host_input)
{
	uint8_t buf[40];

	for (int i = 0; i < 40; i++)
		buf[i] = i;
	wr(IER, 0x01);
	serial_feed(s, buf, sizeof(buf));
	wr(FCR, 0x01);		/* enabling the FIFO would clear a chip's */
	wr(FCR, 0x07);		/* explicit clear */
	wr(FCR, 0x00);
	for (int i = 0; i < 40; i++)
		cr_assert_eq(rd(RBR), i, "host byte %d survives FIFO clears", i);
	cr_assert_eq(rd(LSR) & 0x01, 0);

	/* Looped-back bytes are the chip's own and a clear drops them (Linux's probe). */
	wr(MCR, 0x10);
	wr(FCR, 0x01);
	wr(THR, 'a');
	wr(THR, 'b');
	cr_assert_eq(rd(LSR) & 0x01, 0x01);
	wr(FCR, 0x03);
	cr_assert_eq(rd(LSR) & 0x01, 0, "loopback bytes cleared");
}

/* Linux opens the port with interrupts off: it clears the FIFOs and reads LSR, RBR, IIR
 * and MSR to reset them.  Input piped in before that must all survive. */
Test(serial, port_open_keeps_early_input)
{
	serial_feed(s, (const uint8_t *)"echo hi\n", 8);
	for (int i = 0; i < 4; i++) {
		wr(FCR, 0x01);
		wr(FCR, 0x07);
		rd(LSR);
		rd(RBR);
		rd(IIR);
		rd(MSR);
	}
	wr(IER, 0x05);
	cr_assert_eq(level(), 1);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(rd(RBR), (uint8_t)"echo hi\n"[i], "byte %d", i);
	cr_assert_eq(rd(LSR) & 0x01, 0);
}

Test(serial, iir_priority)
{
	wr(FCR, 0x01);
	wr(IER, 0x0f);
	cr_assert_eq(level(), 1);
	serial_feed(s, (const uint8_t *)"x", 1);
	cr_assert_eq(rd(IIR), 0xc4, "RX data beats THRE");
	cr_assert_eq(rd(IIR), 0xc4, "and reading IIR then must not eat the THRE latch");
	cr_assert_eq(rd(RBR), 'x');
	cr_assert_eq(rd(IIR), 0xc2, "THRE still pending after RX drained");
	cr_assert_eq(rd(IIR), 0xc1);
	cr_assert_eq(level(), 0);

	/* Modem status is the lowest: make a delta via loopback, with THRE pending too. */
	wr(MCR, 0x10);		/* loopback, all lines drop: DCD/DSR/CTS deltas */
	wr(THR, 0);		/* re-arm THRE (the byte loops back into RX) */
	cr_assert_eq(rd(IIR), 0xc4);
	rd(RBR);
	cr_assert_eq(rd(IIR), 0xc2);
	cr_assert_eq(rd(IIR), 0xc0, "modem status last");
	cr_assert_eq(level(), 1);
	cr_assert_eq(rd(MSR), 0x0b, "DDCD|DDSR|DCTS, lines low");
	cr_assert_eq(rd(IIR), 0xc1);
	cr_assert_eq(level(), 0);
}

Test(serial, loopback)
{
	uint8_t got[8];

	wr(FCR, 0x01);
	wr(MCR, 0x1f);
	cr_assert_eq(rd(MSR) & 0xf0, 0xf0);
	wr(MCR, 0x11);		/* DTR only -> DSR only; RI fell: TERI */
	cr_assert_eq(rd(MSR), 0x20 | 0x08 | 0x04 | 0x01);
	wr(MCR, 0x12);		/* RTS only -> CTS only */
	cr_assert_eq(rd(MSR), 0x10 | 0x02 | 0x01);

	/* Transmitted bytes come back in, not out. */
	wr(THR, 'Z');
	cr_assert_eq(rd(LSR) & 0x01, 0x01);
	cr_assert_eq(rd(RBR), 'Z');
	cr_assert_eq(read(out[0], got, sizeof(got)), -1);

	/* Linux's size_fifo(): 256 bytes into the loop, count what is received; the answer
	 * must not be 64 (that would be a U6 16550A). */
	for (int i = 0; i < 256; i++)
		wr(THR, i);
	int count = 0;
	while ((rd(LSR) & 0x01) && count < 256)
		cr_assert_eq(rd(RBR), count++);
	cr_assert_eq(count, 16);

	wr(MCR, 0x0b);
	cr_assert_eq(rd(MSR) & 0xf0, 0xb0);
	wr(THR, '!');
	cr_assert_eq(read(out[0], got, sizeof(got)), 1);
	cr_assert_eq(got[0], '!');
	cr_assert_eq(rd(LSR) & 0x01, 0);
}

Test(serial, odd_offsets_and_lengths)
{
	uint8_t big[8];
	uint8_t got[8];

	for (unsigned off = 0; off < 32; off++) {
		for (unsigned len = 0; len <= 8; len++) {
			memset(big, 0, sizeof(big));
			serial_io(s, off, big, len, false);
			if (off >= 8)
				for (unsigned i = 0; i < len; i++)
					cr_assert_eq(big[i], 0xff);
		}
	}
	for (unsigned off = 8; off < 32; off++)
		serial_io(s, off, big, 4, true);
	serial_io(s, ~0ull, big, 8, true);

	/* A wide access acts on its first byte only. */
	uint32_t w = 0x11223344;
	serial_io(s, SCR, &w, 4, true);
	cr_assert_eq(rd(SCR), 0x44);
	memset(big, 0, sizeof(big));
	serial_io(s, SCR, big, 8, false);
	cr_assert_eq(big[0], 0x44);
	for (int i = 1; i < 8; i++)
		cr_assert_eq(big[i], 0xff);
	serial_io(s, THR, &w, 2, true);
	cr_assert_eq(read(out[0], got, sizeof(got)), 1);
	cr_assert_eq(got[0], 0x44);
}

/* --- input thread ------------------------------------------------------------------- */

static int in[2];

static void wait_until(bool (*cond)(void), const char *what)
{
	for (int i = 0; i < 4000 && !cond(); i++)
		usleep(1000);
	cr_assert(cond(), "timed out waiting for %s", what);
}

static bool quit_seen(void) { return nquits() > 0; }
static bool in_drained(void)
{
	int n = -1;

	return ioctl(in[0], FIONREAD, &n) == 0 && n == 0;
}

/* Read n bytes of guest RX, waiting for the input thread to deliver them. */
static void rx_expect(const char *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (int t = 0; t < 4000 && !(rd(LSR) & 0x01); t++)
			usleep(1000);
		cr_assert_eq(rd(LSR) & 0x01, 0x01, "byte %zu never arrived", i);
		cr_assert_eq(rd(RBR), (uint8_t)want[i], "byte %zu", i);
	}
}

static void type_in(const char *str, size_t n)
{
	cr_assert_eq(write(in[1], str, n), (ssize_t)n);
}

Test(serial, escape_ctrl_a_x_quits)
{
	wr(IER, 0x01);	/* the guest has the port open */
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(serial_input_start_esc(s, in[0], true, fake_quit, NULL), 0);
	type_in("ab\x01x", 4);
	wait_until(quit_seen, "quit");
	cr_assert_eq(quit_saw_data, 1, "bytes before Ctrl-A x must be delivered before quitting");
	rx_expect("ab", 2);
	cr_assert_eq(rd(LSR) & 0x01, 0, "neither Ctrl-A nor x reaches the guest");

	/* Ctrl-A and x in separate reads still quit. */
	type_in("\x01", 1);
	wait_until(in_drained, "the thread to read Ctrl-A");
	usleep(20000);
	type_in("x", 1);
	for (int i = 0; i < 4000 && nquits() < 2; i++)
		usleep(1000);
	cr_assert_eq(nquits(), 2);
	cr_assert_eq(rd(LSR) & 0x01, 0);
	close(in[1]);
	close(in[0]);
}

Test(serial, escape_ctrl_a_twice_sends_one)
{
	wr(IER, 0x01);	/* the guest has the port open */
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(serial_input_start_esc(s, in[0], true, fake_quit, NULL), 0);
	type_in("\x01\x01z\x01q", 5);
	rx_expect("\x01z\x01q", 4);
	usleep(20000);
	cr_assert_eq(rd(LSR) & 0x01, 0, "exactly one Ctrl-A");
	cr_assert_eq(nquits(), 0);
	close(in[1]);
	close(in[0]);
}

Test(serial, no_escapes_when_not_a_tty)
{
	wr(IER, 0x01);	/* the guest has the port open */
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(serial_input_start(s, in[0], fake_quit, NULL), 0);
	type_in("\x01x\x01\x01", 4);
	rx_expect("\x01x\x01\x01", 4);
	cr_assert_eq(nquits(), 0);
	cr_assert_eq(serial_input_start(s, in[0], fake_quit, NULL), -EBUSY);
	close(in[1]);
	close(in[0]);
}

Test(serial, input_eof_then_destroy)
{
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(serial_input_start(s, in[0], fake_quit, NULL), 0);
	wr(IER, 0x01);
	type_in("hi", 2);
	close(in[1]);
	rx_expect("hi", 2);
	cr_assert_eq(level(), 0);

	/* After EOF the thread must go quiet, not spin on a hung-up fd. */
	struct rusage a, b;
	usleep(20000);
	getrusage(RUSAGE_SELF, &a);
	usleep(300000);
	getrusage(RUSAGE_SELF, &b);
	long us = (b.ru_utime.tv_sec - a.ru_utime.tv_sec + b.ru_stime.tv_sec - a.ru_stime.tv_sec) *
			  1000000L + (b.ru_utime.tv_usec - a.ru_utime.tv_usec) +
		  (b.ru_stime.tv_usec - a.ru_stime.tv_usec);
	cr_assert_lt(us, 100000, "%ld us of CPU in 300 ms of idling", us);
	close(in[0]);
	/* teardown's serial_destroy joins the already-finished thread */
}

Test(serial, destroy_wakes_blocked_reader)
{
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(serial_input_start(s, in[0], fake_quit, NULL), 0);
	usleep(20000);
	serial_destroy(s);	/* must not hang in poll(): the suite timeout catches that */
	s = NULL;
	close(in[1]);
	close(in[0]);
}

/* --- host terminal ------------------------------------------------------------------ */

static int pty_open(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);

	cr_assert_geq(m, 0);
	cr_assert_eq(grantpt(m), 0);
	cr_assert_eq(unlockpt(m), 0);
	int fd = open(ptsname(m), O_RDWR | O_NOCTTY);
	cr_assert_geq(fd, 0);
	return fd;
}

static bool term_is_raw(int fd)
{
	struct termios t;

	cr_assert_eq(tcgetattr(fd, &t), 0);
	return !(t.c_lflag & (ICANON | ECHO | ISIG)) && !(t.c_oflag & OPOST) &&
	       !(t.c_iflag & (ICRNL | IXON));
}

Test(term, not_a_tty_is_a_no_op)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(term_raw_enter(p[0]), 0);
	term_restore();
	close(p[0]);
	close(p[1]);
}

Test(term, raw_and_restore)
{
	int fd = pty_open();

	cr_assert_not(term_is_raw(fd));
	cr_assert_eq(term_raw_enter(fd), 0);
	cr_assert(term_is_raw(fd));
	term_restore();
	cr_assert_not(term_is_raw(fd));
	cr_assert_eq(term_raw_enter(fd), 0);
	cr_assert(term_is_raw(fd));
	term_restore();
	term_restore();
	cr_assert_not(term_is_raw(fd));
}

Test(term, fatal_signal_restores)
{
	int fd = pty_open();
	int st;

	signal(SIGHUP, SIG_DFL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (term_raw_enter(fd) == 0 && term_is_raw(fd))
			raise(SIGHUP);
		_exit(1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGHUP, "status %#x", st);
	cr_assert_not(term_is_raw(fd), "the dying child left the terminal raw");
}
