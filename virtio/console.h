/* virtio-console (device id 3, VIRTIO 1.2 §5.3) as the guest command's stdio: a multiport
 * device whose generic ports 1..3 are named "minivmm.stdin", "minivmm.stdout" and
 * "minivmm.stderr" (the guest finds them under /sys/class/virtio-ports/vportNpM/name and
 * opens /dev/vportNpM); port 0 is a console port (hvc) whose output is discarded.
 *
 * Host side: bytes read from in_fd go to the stdin port, and its end of file reaches the
 * guest as the host closing the port (the guest's read() then returns 0); whatever the
 * guest writes to the stdout and stderr ports is written to out_fd and err_fd, byte-exact
 * (EPIPE or another write error: the data is dropped, the guest goes on).  The process must
 * ignore SIGPIPE (minivmm does). */
#ifndef MINIVMM_VIRTIO_CONSOLE_H
#define MINIVMM_VIRTIO_CONSOLE_H
struct virtio_dev;
struct vm;

struct virtio_console_io { int in_fd; int out_fd; int err_fd; };   /* -1 = not connected */

/* A multiport virtio-console (device id 3): ports "minivmm.stdin/stdout/stderr" on 1..3. */
struct virtio_dev *virtio_console_create(struct vm *vm, const struct virtio_console_io *io);

/* Write out everything the guest has already queued on the output ports (called once the
 * guest has reported its exit status, vCPUs stopped, before minivmm exits): the Linux driver
 * returns from write() as soon as the buffer is queued, so the last output may still sit in
 * the ring.  Safe to call when the device never became active. */
void virtio_console_drain(struct virtio_dev *d);

#endif
