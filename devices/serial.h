/* 16550A UART emulation: the guest's console (COM1, ttyS0) and its link to the host terminal. */
#ifndef MINIVMM_SERIAL_H
#define MINIVMM_SERIAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ	 4
#define SERIAL_NR_REGS	 8		/* register the device for this many ports */
#define SERIAL_RX_BUF	 65536		/* host input buffered behind the 16-byte RX FIFO */
#define SERIAL_ESCAPE	 0x01		/* Ctrl-A, as in QEMU: Ctrl-A x quits, Ctrl-A Ctrl-A sends one */

struct serial;

/* Raise (1) or lower (0) the interrupt line; called only when the level changes. It runs
 * with the UART's lock held, so it must not call back into the UART. */
typedef void (*serial_irq_fn)(void *ctx, int level);

/* out_fd receives every byte the guest transmits (-1: discard). irq may be NULL (polled
 * guest). Returns NULL with errno set on failure. */
struct serial *serial_create(int out_fd, serial_irq_fn irq, void *irq_ctx);

/* bus_io_fn for SERIAL_NR_REGS ports; opaque is the struct serial. */
void serial_io(void *opaque, uint64_t off, void *data, unsigned len, bool is_write);

/* Queue bytes typed by the user. Never blocks; bytes beyond SERIAL_RX_BUF are dropped and
 * reported to the guest as an overrun, as real hardware would. */
void serial_feed(struct serial *s, const uint8_t *buf, size_t n);

/* Start a thread that reads in_fd and feeds the UART until EOF, error or serial_destroy.
 * The Ctrl-A escapes are active only when in_fd is a terminal; quit (may be NULL) is
 * called from that thread on Ctrl-A x and must not call serial_destroy. */
int serial_input_start(struct serial *s, int in_fd, void (*quit)(void *ctx), void *quit_ctx);
/* Same, with escape handling chosen by the caller instead of by isatty(in_fd). */
int serial_input_start_esc(struct serial *s, int in_fd, bool escape, void (*quit)(void *ctx),
			   void *quit_ctx);

/* Stops the input thread (if any) and frees the UART; the fds stay open (caller owns them). */
void serial_destroy(struct serial *s);

#endif
