/* virtio-console (virtio/console.c) without KVM: a mock driver sets up all ten queues in
 * plain memory through the core (as a transport would), speaks the control protocol the
 * way the Linux driver does, and checks what reaches the host's pipes and the guest's
 * receive buffers.  Event numbers and queue indices are spelled out here from the spec. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/virtq_mock.h"
#include "virtio/console.h"
#include "virtio/core.h"
#include "vmm/vm.h"

#define NQ        10
#define QSIZE     16
#define MULTIPORT (1ULL << 1)
#define V1        (1ULL << VIRTIO_F_VERSION_1)
#define OK_STATUS (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | \
		   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)
#define CRXQ 2    /* control receiveq: device to driver */
#define CTXQ 3
#define RXQ(p) ((p) == 0 ? 0 : 2 + 2 * (p))
#define TXQ(p) (RXQ(p) + 1)
enum { DEVICE_READY, DEVICE_ADD, DEVICE_REMOVE, PORT_READY, CONSOLE_PORT, RESIZE, PORT_OPEN,
       PORT_NAME };
#define BAD_ID 0xffffffffu

#define WAIT(cond) ({ for (int w_ = 0; w_ < 3000 && !(cond); w_++) usleep(1000); (cond); })

/* ---- the mock driver: one split ring per queue, buffers from the mock heap ---- */

struct dq {
	uint16_t size, avail_idx, next_desc, used_seen;
	uint64_t desc, avail, used;
};

static struct mock mk;
static struct vm vm;
static struct virtio_dev *D;
static struct dq Q[NQ];
static int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
static int signals;

static void sig(struct virtio_dev *d, enum virtio_irq kind, uint16_t q)
{
	__atomic_add_fetch(&signals, 1, __ATOMIC_SEQ_CST);
}
static const struct virtio_transport_ops tops = { .signal = sig };

static void q_setup(int i, uint16_t size)
{
	struct dq *q = &Q[i];
	*q = (struct dq){ .size = size };
	q->desc = mock_alloc(&mk, 16ULL * size);
	q->avail = mock_alloc(&mk, 6 + 2ULL * size);
	q->used = mock_alloc(&mk, 6 + 8ULL * size);
	struct virtio_queue *vq = virtio_queue_cfg(D, i);
	cr_assert_not_null(vq);
	vq->size = size;
	vq->desc = q->desc;
	vq->driver = q->avail;
	vq->device = q->used;
	vq->enabled = true;
}

/* Publish one chain of n segments (readable ones first); returns its head. */
static uint16_t q_addv(int i, const struct mseg *s, unsigned n, bool kick)
{
	struct dq *q = &Q[i];
	uint16_t head = q->next_desc, k = head;
	for (unsigned j = 0; j < n; j++) {
		uint16_t next = (uint16_t)((k + 1) % q->size);
		uint16_t flags = (uint16_t)((s[j].write ? D_WRITE : 0) | (j + 1 < n ? D_NEXT : 0));
		mock_desc_at(&mk, q->desc, k, s[j].addr, s[j].len, flags, next);
		k = next;
	}
	q->next_desc = k;
	*(volatile uint16_t *)mock_ptr(&mk, q->avail + 4 + 2ULL * (q->avail_idx % q->size), 2) = head;
	q->avail_idx++;
	__atomic_store_n((uint16_t *)mock_ptr(&mk, q->avail + 2, 2), q->avail_idx, __ATOMIC_RELEASE);
	if (kick)
		virtio_queue_kick(D, i);
	return head;
}

static uint16_t q_add(int i, uint64_t addr, uint32_t len, bool write)
{
	struct mseg s = { addr, len, write };
	return q_addv(i, &s, 1, true);
}

static uint16_t used_idx(int i)
{
	return __atomic_load_n((uint16_t *)mock_ptr(&mk, Q[i].used + 2, 2), __ATOMIC_ACQUIRE);
}

/* Wait for the next used element of queue i; its buffer address comes from the descriptor. */
static void q_next_used(int i, uint64_t *addr, uint32_t *len)
{
	struct dq *q = &Q[i];
	cr_assert(WAIT(used_idx(i) != q->used_seen), "queue %d: nothing completed", i);
	uint8_t *e = mock_ptr(&mk, q->used + 4 + 8ULL * (q->used_seen % q->size), 8);
	uint32_t id;
	memcpy(&id, e, 4);
	memcpy(len, e + 4, 4);
	cr_assert_lt(id, q->size);
	memcpy(addr, mock_ptr(&mk, q->desc + 16ULL * id, 8), 8);
	q->used_seen++;
}

/* Nothing more completes on queue i within a while. */
static void q_quiet(int i)
{
	usleep(50000);
	cr_assert_eq(used_idx(i), Q[i].used_seen, "queue %d: unexpected completion", i);
}

static void drv_start(uint64_t features)
{
	virtio_status_write(D, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_status_write(D, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	virtio_driver_features_write(D, 0, (uint32_t)features);
	virtio_driver_features_write(D, 1, (uint32_t)(features >> 32));
	virtio_status_write(D, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			       VIRTIO_STATUS_FEATURES_OK);
	for (int i = 0; i < NQ; i++)
		q_setup(i, QSIZE);
	virtio_status_write(D, OK_STATUS);
	cr_assert_eq(virtio_status_read(D), OK_STATUS);
}

/* ---- control messages ---- */

struct msg {
	uint32_t id;
	uint16_t event, value;
	char name[64];
};

static void ctl_post(unsigned n, uint32_t len)
{
	for (unsigned k = 0; k < n; k++)
		q_add(CRXQ, mock_alloc(&mk, len), len, true);
}

static void ctl_send_raw(const void *m, uint32_t len)
{
	uint64_t a = mock_alloc(&mk, len);
	memcpy(mock_ptr(&mk, a, len), m, len);
	q_add(CTXQ, a, len, false);
	uint64_t got;
	uint32_t used;
	q_next_used(CTXQ, &got, &used);
	cr_assert_eq(got, a);
	cr_assert_eq(used, 0);
}

static void ctl_send(uint32_t id, uint16_t event, uint16_t value)
{
	uint8_t m[8];
	memcpy(m, &id, 4);
	memcpy(m + 4, &event, 2);
	memcpy(m + 6, &value, 2);
	ctl_send_raw(m, 8);
}

/* The next message from the device. */
static struct msg ctl_take(void)
{
	uint64_t a;
	uint32_t len;
	q_next_used(CRXQ, &a, &len);
	cr_assert_geq(len, 8, "control message of %u bytes", len);
	cr_assert_lt(len, 8 + 64);
	struct msg m = { 0 };
	uint8_t *p = mock_ptr(&mk, a, len);
	memcpy(&m.id, p, 4);
	memcpy(&m.event, p + 4, 2);
	memcpy(&m.value, p + 6, 2);
	memcpy(m.name, p + 8, len - 8);
	return m;
}

static void check(struct msg m, uint32_t id, uint16_t event, uint16_t value, const char *name)
{
	cr_assert(m.id == id && m.event == event && m.value == value,
		  "got (port %u, event %u, value %u), want (%u, %u, %u)", m.id, m.event, m.value,
		  id, event, value);
	if (name)
		cr_assert_str_eq(m.name, name);
}

/* The next message, its buffer replaced as the driver does. */
static void expect(uint32_t id, uint16_t event, uint16_t value, const char *name)
{
	check(ctl_take(), id, event, value, name);
	ctl_post(1, 256);
}

static const char *const names[4] = { NULL, "minivmm.stdin", "minivmm.stdout", "minivmm.stderr" };

/* The Linux driver's side of the handshake; stdin_open: whether the host side of the stdin
 * port is expected open. */
static void handshake(bool stdin_open)
{
	ctl_post(8, 256);
	ctl_send(BAD_ID, DEVICE_READY, 1);
	for (uint32_t p = 0; p < 4; p++)
		expect(p, DEVICE_ADD, 1, NULL);
	ctl_send(0, PORT_READY, 1);
	expect(0, CONSOLE_PORT, 1, NULL);
	expect(0, PORT_OPEN, 1, NULL);
	ctl_send(0, PORT_OPEN, 1);                 /* hvc opens the console port */
	for (uint32_t p = 1; p < 4; p++) {
		ctl_send(p, PORT_READY, 1);
		expect(p, PORT_NAME, 1, names[p]);
		if (p != 1 || stdin_open)
			expect(p, PORT_OPEN, 1, NULL);
	}
	q_quiet(CRXQ);
}

/* ---- fixtures ---- */

static void make_pipe(int p[2])
{
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
}

static void create(bool with_stdin)
{
	signal(SIGPIPE, SIG_IGN);                  /* as minivmm does */
	memset(&vm, 0, sizeof(vm));
	memset(Q, 0, sizeof(Q));
	mock_setup(&mk);
	vm.mem = mk.m;
	make_pipe(out_pipe);
	make_pipe(err_pipe);
	if (with_stdin)
		make_pipe(in_pipe);
	struct virtio_console_io io = { with_stdin ? in_pipe[0] : -1, out_pipe[1], err_pipe[1] };
	D = virtio_console_create(&vm, &io);
	cr_assert_not_null(D);
	D->tops = &tops;
}

static void setup(void) { create(true); }
static void setup_no_stdin(void) { create(false); }

static void closep(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	p[0] = p[1] = -1;
}

static void teardown(void)
{
	virtio_status_write(D, 0);               /* joins every thread */
	for (int i = 0; i < D->nqueues; i++)
		close(D->q[i].kick_fd);
	free(D);                                 /* struct console starts with its virtio_dev */
	closep(in_pipe);
	closep(out_pipe);
	closep(err_pipe);
	mock_teardown(&mk);
}

TestSuite(console, .init = setup, .fini = teardown);
TestSuite(console_nostdin, .init = setup_no_stdin, .fini = teardown);

/* ---- identity and handshake ---- */

Test(console, identity_config_and_features)
{
	cr_assert_eq(D->ops->device_id, 3);
	cr_assert(virtio_offered_features(D) & MULTIPORT);
	cr_assert_eq(D->nqueues, NQ);
	uint8_t cfg[12];
	memset(cfg, 0xee, sizeof(cfg));
	virtio_config_rw(D, 0, cfg, sizeof(cfg), false);
	uint16_t cols, rows;
	uint32_t max_ports, emerg;
	memcpy(&cols, cfg, 2);
	memcpy(&rows, cfg + 2, 2);
	memcpy(&max_ports, cfg + 4, 4);
	memcpy(&emerg, cfg + 8, 4);
	cr_assert_eq(max_ports, 4);
	cr_assert_eq(cols | rows | emerg, 0);
	uint32_t beyond = 0x12345678;
	virtio_config_rw(D, 12, &beyond, 4, false);
	cr_assert_eq(beyond, 0);
}

Test(console, handshake_names_ports_and_opens_host_side)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
}

Test(console_nostdin, stdin_port_never_opened_without_in_fd)
{
	drv_start(V1 | MULTIPORT);
	handshake(false);                        /* PORT_NAME for port 1, no PORT_OPEN */
}

/* ---- output ---- */

/* Read exactly len bytes from fd (with a deadline). */
static void read_exact(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		cr_assert_eq(poll(&p, 1, 5000), 1, "only %zu of %zu bytes arrived", got, len);
		ssize_t n = read(fd, buf + got, len - got);
		cr_assert_gt(n, 0);
		got += (size_t)n;
	}
}

static bool fd_empty(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 50) == 0;
}

static uint64_t filled(const void *data, uint32_t len)
{
	uint64_t a = mock_alloc(&mk, len);
	memcpy(mock_ptr(&mk, a, len), data, len);
	return a;
}

Test(console, stdout_and_stderr_separate_and_byte_exact)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	uint8_t all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;                 /* every byte value, \0 \r \n included */
	q_add(TXQ(2), filled(all, 256), 256, false);
	const char e[] = "to stderr\r\n";
	q_add(TXQ(3), filled(e, sizeof(e) - 1), sizeof(e) - 1, false);
	/* A chain of three segments, one of them empty, comes out in order. */
	struct mseg s[3] = { { filled("ab", 2), 2, false }, { filled("x", 1), 0, false },
			     { filled("cd", 2), 2, false } };
	q_addv(TXQ(2), s, 3, true);

	uint8_t got[260];
	read_exact(out_pipe[0], got, 260);
	cr_assert_arr_eq(got, all, 256);
	cr_assert_arr_eq(got + 256, "abcd", 4);
	read_exact(err_pipe[0], got, sizeof(e) - 1);
	cr_assert_arr_eq(got, e, sizeof(e) - 1);
	cr_assert(fd_empty(out_pipe[0]) && fd_empty(err_pipe[0]));
	uint64_t a;
	uint32_t len;
	q_next_used(TXQ(2), &a, &len);
	cr_assert_eq(len, 0);                    /* the device wrote nothing into it */
}

/* A reader on the other end of the stdout pipe, as the user's shell would be. */
struct sink {
	int fd;
	uint8_t *buf;
	size_t len, got;
};

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	while (s->got < s->len) {
		ssize_t n = read(s->fd, s->buf + s->got, s->len - s->got);
		if (n <= 0)
			break;
		s->got += (size_t)n;
	}
	return NULL;
}

Test(console, multi_mib_stdout_arrives_intact)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	enum { CHUNK = 32 * 1024, TOTAL = 6 * 1024 * 1024, NBUF = 8 };
	uint8_t *src = malloc(TOTAL);
	cr_assert_not_null(src);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < TOTAL; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		src[i] = (uint8_t)x;
	}
	struct sink s = { .fd = out_pipe[0], .buf = malloc(TOTAL), .len = TOTAL };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, sink_main, &s), 0);
	/* NBUF buffers in flight, each reused once the device returns it, as the driver's
	 * write() does with its (up to 32 KiB) copies. */
	uint64_t buf[NBUF];
	for (int i = 0; i < NBUF; i++)
		buf[i] = mock_alloc(&mk, CHUNK);
	size_t off = 0;
	int inflight = 0;
	for (int i = 0; off < TOTAL; i++) {
		if (inflight == NBUF) {
			uint64_t a;
			uint32_t len;
			q_next_used(TXQ(2), &a, &len);
			inflight--;
		}
		uint64_t b = buf[i % NBUF];
		memcpy(mock_ptr(&mk, b, CHUNK), src + off, CHUNK);
		q_add(TXQ(2), b, CHUNK, false);
		inflight++;
		off += CHUNK;
	}
	pthread_join(t, NULL);
	cr_assert_eq(s.got, TOTAL);
	cr_assert(memcmp(s.buf, src, TOTAL) == 0, "stdout bytes differ");
	free(s.buf);
	free(src);
}

Test(console, closed_reader_drops_output_and_device_goes_on)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	close(out_pipe[0]);
	out_pipe[0] = -1;
	q_add(TXQ(2), filled("lost", 4), 4, false);
	uint64_t a;
	uint32_t len;
	q_next_used(TXQ(2), &a, &len);           /* completed despite EPIPE */
	q_add(TXQ(3), filled("still", 5), 5, false);
	uint8_t got[5];
	read_exact(err_pipe[0], got, 5);
	cr_assert_arr_eq(got, "still", 5);
	cr_assert_eq(virtio_status_read(D), OK_STATUS);
}

/* The Linux driver returns from write() once the buffer is queued: output queued but not
 * yet taken must come out in drain. */
Test(console, drain_writes_output_still_in_the_ring)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	q_addv(TXQ(2), &(struct mseg){ filled("last words", 10), 10, false }, 1, false);
	q_addv(TXQ(3), &(struct mseg){ filled("err", 3), 3, false }, 1, false);
	cr_assert(fd_empty(out_pipe[0]), "taken without a notification: the test proves nothing");
	virtio_console_drain(D);
	uint8_t got[10];
	cr_assert(!fd_empty(out_pipe[0]), "drain returned before writing");
	read_exact(out_pipe[0], got, 10);
	cr_assert_arr_eq(got, "last words", 10);
	read_exact(err_pipe[0], got, 3);
	cr_assert_arr_eq(got, "err", 3);
	/* The workers run again afterwards. */
	q_add(TXQ(2), filled("more", 4), 4, false);
	read_exact(out_pipe[0], got, 4);
	cr_assert_arr_eq(got, "more", 4);
}

Test(console, drain_before_activation_is_harmless)
{
	virtio_console_drain(D);
	drv_start(V1 | MULTIPORT);
	handshake(true);
}

/* ---- input ---- */

static void stdin_write(const void *p, size_t len)
{
	cr_assert_eq(write(in_pipe[1], p, len), (ssize_t)len);
}

Test(console, stdin_held_until_guest_opens_then_delivered_then_eof)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	enum { N = 10000, BUF = 4096 };
	uint8_t data[N];
	for (int i = 0; i < N; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	stdin_write(data, N);
	uint64_t rx[4];
	for (int i = 0; i < 4; i++)
		rx[i] = mock_alloc(&mk, BUF);
	for (int i = 0; i < 2; i++)
		q_add(RXQ(1), rx[i], BUF, true);
	/* The driver throws away data for a port nobody has open: nothing is sent yet. */
	q_quiet(RXQ(1));
	ctl_send(1, PORT_OPEN, 1);
	uint8_t got[N];
	size_t have = 0;
	for (int i = 0; have < N; i++) {
		uint64_t a;
		uint32_t len;
		q_next_used(RXQ(1), &a, &len);
		cr_assert(len > 0 && len <= BUF && have + len <= N);
		memcpy(got + have, mock_ptr(&mk, a, len), len);
		have += len;
		if (i == 0) {
			/* More buffers only now: the device waits for them. */
			q_add(RXQ(1), rx[2], BUF, true);
			q_add(RXQ(1), rx[3], BUF, true);
		}
	}
	cr_assert_arr_eq(got, data, N);
	q_quiet(CRXQ);                           /* no end of file while stdin is open */
	close(in_pipe[1]);
	in_pipe[1] = -1;
	expect(1, PORT_OPEN, 0, NULL);
	q_quiet(RXQ(1));
}

Test(console, stdin_eof_waits_for_undelivered_data)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	stdin_write("tail", 4);
	close(in_pipe[1]);
	in_pipe[1] = -1;
	q_quiet(CRXQ);                           /* "tail" still to come: the port stays open */
	ctl_send(1, PORT_OPEN, 1);
	uint64_t rx = mock_alloc(&mk, 64);
	q_add(RXQ(1), rx, 64, true);
	uint64_t a;
	uint32_t len;
	q_next_used(RXQ(1), &a, &len);
	cr_assert_eq(len, 4);
	cr_assert_arr_eq(mock_ptr(&mk, a, 4), "tail", 4);
	expect(1, PORT_OPEN, 0, NULL);
}

Test(console, stdin_eof_before_handshake_leaves_port_closed)
{
	close(in_pipe[1]);
	in_pipe[1] = -1;
	drv_start(V1 | MULTIPORT);
	usleep(50000);                           /* the stdin thread sees end of file */
	handshake(false);
}

/* ---- a hostile driver ---- */

Test(console, hostile_control_messages_ignored)
{
	drv_start(V1 | MULTIPORT);
	ctl_post(8, 256);
	ctl_send_raw("\0\0\0", 3);               /* short */
	ctl_send(2, PORT_READY, 1);              /* before DEVICE_READY */
	ctl_send(1, PORT_OPEN, 1);               /* port not ready */
	ctl_send(BAD_ID, 99, 1);                 /* unknown event */
	ctl_send(1, RESIZE, 1);                  /* device-to-driver events */
	ctl_send(1, PORT_NAME, 1);
	ctl_send(BAD_ID, DEVICE_READY, 0);       /* the driver's failure report */
	q_quiet(CRXQ);
	ctl_send(BAD_ID, DEVICE_READY, 1);
	for (uint32_t p = 0; p < 4; p++)
		expect(p, DEVICE_ADD, 1, NULL);
	ctl_send(BAD_ID, DEVICE_READY, 1);       /* again: no second round */
	ctl_send(4, PORT_READY, 1);              /* id = max_nr_ports */
	ctl_send(BAD_ID, PORT_READY, 1);
	ctl_send(0x80000001u, PORT_OPEN, 1);
	ctl_send(3, PORT_READY, 0);              /* the driver could not add it */
	q_quiet(CRXQ);
	ctl_send(3, PORT_READY, 1);
	expect(3, PORT_NAME, 1, "minivmm.stderr");
	expect(3, PORT_OPEN, 1, NULL);
	ctl_send(3, PORT_READY, 1);              /* repeated: not answered twice */
	q_quiet(CRXQ);
	/* A long message is read for its header only. */
	uint8_t longmsg[100] = { 2, 0, 0, 0, PORT_READY, 0, 1, 0 };
	ctl_send_raw(longmsg, sizeof(longmsg));
	expect(2, PORT_NAME, 1, "minivmm.stdout");
	expect(2, PORT_OPEN, 1, NULL);
	cr_assert_eq(virtio_status_read(D), OK_STATUS);
}

Test(console, small_control_buffer_returned_empty_message_kept)
{
	drv_start(V1 | MULTIPORT);
	ctl_post(1, 4);                          /* too small for a header */
	ctl_send(BAD_ID, DEVICE_READY, 1);
	uint64_t a;
	uint32_t len;
	q_next_used(CRXQ, &a, &len);
	cr_assert_eq(len, 0);
	ctl_post(4, 12);
	for (uint32_t p = 0; p < 4; p++)
		check(ctl_take(), p, DEVICE_ADD, 1, NULL);
	/* A PORT_NAME needs room for the name as well. */
	ctl_send(2, PORT_READY, 1);
	q_quiet(CRXQ);                           /* no buffer left */
	ctl_post(1, 12);
	q_next_used(CRXQ, &a, &len);
	cr_assert_eq(len, 0);
	ctl_post(1, 256);
	expect(2, PORT_NAME, 1, "minivmm.stdout");
}

Test(console, broken_control_ring_needs_reset)
{
	drv_start(V1 | MULTIPORT);
	uint16_t *idx = mock_ptr(&mk, Q[CTXQ].avail + 2, 2);
	__atomic_store_n(idx, (uint16_t)(QSIZE + 3), __ATOMIC_RELEASE);
	virtio_queue_kick(D, CTXQ);
	cr_assert(WAIT(virtio_status_read(D) & VIRTIO_STATUS_NEEDS_RESET));
}

Test(console, bad_stdin_buffer_completed_empty)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	ctl_send(1, PORT_OPEN, 1);
	stdin_write("ok", 2);
	q_add(RXQ(1), MOCK_RAM + 4096, 64, true);  /* outside guest RAM */
	uint64_t a;
	uint32_t len;
	q_next_used(RXQ(1), &a, &len);
	cr_assert_eq(len, 0);
	uint64_t rx = mock_alloc(&mk, 64);
	q_add(RXQ(1), rx, 64, true);
	q_next_used(RXQ(1), &a, &len);
	cr_assert_eq(len, 2);
	cr_assert_arr_eq(mock_ptr(&mk, rx, 2), "ok", 2);
}

/* ---- reset ---- */

Test(console, reset_and_reactivation)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	ctl_send(1, PORT_OPEN, 1);
	virtio_status_write(D, 0);
	cr_assert_eq(virtio_status_read(D), 0);
	/* Input that arrives while the device is down waits for the next driver. */
	stdin_write("again", 5);
	drv_start(V1 | MULTIPORT);
	handshake(true);
	q_add(TXQ(2), filled("out", 3), 3, false);
	uint8_t got[5];
	read_exact(out_pipe[0], got, 3);
	cr_assert_arr_eq(got, "out", 3);
	uint64_t rx = mock_alloc(&mk, 64);
	q_add(RXQ(1), rx, 64, true);
	q_quiet(RXQ(1));                         /* the new driver has not opened the port */
	ctl_send(1, PORT_OPEN, 1);
	uint64_t a;
	uint32_t len;
	q_next_used(RXQ(1), &a, &len);
	cr_assert_eq(len, 5);
	cr_assert_arr_eq(mock_ptr(&mk, a, 5), "again", 5);
}

Test(console, reset_while_output_blocked_does_not_hang)
{
	drv_start(V1 | MULTIPORT);
	handshake(true);
	/* A full non-blocking pipe: the writer waits for room, reset must still join it. */
	int fl = fcntl(out_pipe[1], F_GETFL);
	cr_assert_eq(fcntl(out_pipe[1], F_SETFL, fl | O_NONBLOCK), 0);
	cr_assert_eq(fcntl(out_pipe[1], F_SETPIPE_SZ, 4096), 4096);
	uint64_t big = mock_alloc(&mk, 65536);
	q_add(TXQ(2), big, 65536, false);
	usleep(50000);
	virtio_status_write(D, 0);
	cr_assert_eq(virtio_status_read(D), 0);
}

Test(console, without_multiport_only_port0)
{
	drv_start(V1);
	q_add(TXQ(0), filled("hvc", 3), 3, false);
	uint64_t a;
	uint32_t len;
	q_next_used(TXQ(0), &a, &len);           /* port 0 output: taken and discarded */
	cr_assert(fd_empty(out_pipe[0]));
	q_add(CTXQ, filled("\xff\xff\xff\xff\0\0\1\0", 8), 8, false);
	q_quiet(CTXQ);                           /* no control queue without MULTIPORT */
	virtio_console_drain(D);
}

/* A driver that sets DRIVER_OK with some queues, or none, left unready: the device serves
 * what it was given, touches nothing else, and never crashes. */
static void start_with(uint64_t features, uint32_t ready)
{
	virtio_status_write(D, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_status_write(D, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	virtio_driver_features_write(D, 0, (uint32_t)features);
	virtio_driver_features_write(D, 1, (uint32_t)(features >> 32));
	virtio_status_write(D, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			       VIRTIO_STATUS_FEATURES_OK);
	for (int i = 0; i < NQ; i++)
		if (ready & (1u << i))
			q_setup(i, QSIZE);
	virtio_status_write(D, OK_STATUS);
	cr_assert_eq(virtio_status_read(D), OK_STATUS);
}

Test(console, no_queue_ready_is_inert)
{
	start_with(V1 | MULTIPORT, 0);
	cr_assert_eq(write(in_pipe[1], "x", 1), 1);
	for (int i = 0; i < NQ; i++)
		virtio_queue_kick(D, i);
	usleep(50000);
	cr_assert_eq(virtio_status_read(D), OK_STATUS);
	virtio_console_drain(D);
	virtio_status_write(D, 0);
}

/* Only the control queues and stdout's transmitq: stdout still flows, the rest is idle. */
Test(console, some_queues_unready)
{
	start_with(V1 | MULTIPORT, (1u << CRXQ) | (1u << CTXQ) | (1u << TXQ(2)));
	cr_assert_eq(write(in_pipe[1], "x", 1), 1);
	uint64_t a = mock_alloc(&mk, 5);
	memcpy(mock_ptr(&mk, a, 5), "hello", 5);
	q_add(TXQ(2), a, 5, false);
	uint64_t got;
	uint32_t len;
	q_next_used(TXQ(2), &got, &len);
	char buf[8];
	cr_assert_eq(read(out_pipe[0], buf, sizeof(buf)), 5);
	for (int i = 0; i < NQ; i++)
		virtio_queue_kick(D, i);
	usleep(50000);
	cr_assert_eq(virtio_status_read(D), OK_STATUS);
	virtio_status_write(D, 0);
}
