/* The FUSE server: requests in, replies out, over a host directory.  It knows nothing of
 * virtio: a transport hands it a request as the device-readable segments of a buffer and
 * the device-writable segments for the reply (both in guest memory, i.e. hostile and
 * possibly changing under us), and sends back however many bytes it wrote. */
#ifndef MINIVMM_FS_FUSE_H
#define MINIVMM_FS_FUSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum fuse_cache { FUSE_CACHE_NEVER, FUSE_CACHE_AUTO, FUSE_CACHE_ALWAYS };
/* What a guest's MKNOD of a character or block device makes (fs/node.c): an inert regular
 * host file standing for the node (MAPPED, the default: 0), a real host device node
 * (HOST, needs CAP_MKNOD), or nothing (DENY: EPERM). */
enum fuse_devices { FUSE_DEVICES_MAPPED, FUSE_DEVICES_HOST, FUSE_DEVICES_DENY };

/* A parked request's answer (see fuse_handle_async): `written` bytes of reply are in its
 * `out` buffers, or FUSE_ABANDONED. */
typedef void (*fuse_complete_fn)(void *opaque, void *cookie, size_t written);

struct fuse_config {
	const char *path;          /* the shared directory */
	bool readonly;             /* enforced on the host: every modifying op gets EROFS */
	enum fuse_cache cache;     /* entry/attr timeouts and open flags (DIRECT_IO, KEEP_CACHE) */
	bool xattr;                /* extended attributes (and POSIX ACLs) passed through */
	/* The guest may plant privileges on host files: setuid, setgid with group-exec, and
	 * security.capability.  Off (the default): such mode bits are stripped on create,
	 * mkdir, mknod and chmod, and setting security.capability is refused (creds.c). */
	bool suid;
	enum fuse_devices devices;
	/* owner=mapped: when minivmm does not run as root, a chown the host refuses (EPERM)
	 * and setuid/setgid bits are kept in the file's node attribute and shown to the guest
	 * (regular files, directories and mapped device nodes; fs/node.c).  Off: the host's. */
	bool owner_mapped;
	/* Host mount points inside the share: announced to the guest as submounts (false,
	 * the default), or shown as empty directories it cannot enter (true).  Kernel
	 * pseudo file systems (/proc, /sys, /dev, ...) are never entered either way. */
	bool no_submounts;
	unsigned threads;          /* hint for blocking-op concurrency; 0 = default */
	/* The DAX window (FUSE_SETUPMAPPING maps files into it), from
	 * fuse_dax_window_create and owned by the caller; NULL: no DAX.  dax_size is a
	 * multiple of the host page size. */
	void *dax_window;
	uint64_t dax_size;
	/* Called once for every request fuse_handle_async parked, from a thread of the
	 * server's own; NULL: nothing is ever parked. */
	fuse_complete_fn complete;
	void *complete_opaque;
};

struct fuse_server;

/* Open the share: one line in `err` and NULL on failure (missing directory, not a
 * directory, no permission, /proc not mounted, a pseudo file system).  Every inode the
 * guest keeps looked up holds an fd, so this raises the process's soft RLIMIT_NOFILE to
 * its hard limit (as root, both to fs.nr_open); the guests of all servers together may
 * hold all of it but a reserve for the VMM (1/8, at least 512 and at most 16384, at most
 * half), ENFILE beyond. */
struct fuse_server *fuse_server_create(const struct fuse_config *cfg, char *err, size_t errlen);
/* The same over the directory `dirfd` refers to (O_PATH is enough; the server keeps a dup
 * of it, the caller keeps dirfd).  cfg->path only names the share in messages: a device
 * that opens its share once and re-creates servers from that descriptor serves the same
 * directory for the VM's life, whatever happens to the path. */
struct fuse_server *fuse_server_create_fd(const struct fuse_config *cfg, int dirfd, char *err,
					  size_t errlen);
void fuse_server_destroy(struct fuse_server *s);

/* Handle one request.  `in`/`nin`: the request (fuse_in_header + arguments + payload);
 * `out`/`nout`: where the reply goes (fuse_out_header + payload).  Returns the number of
 * bytes written to `out` (0 for requests that take no reply, e.g. FORGET).  Never fails
 * on bad input: malformed requests get an error reply (or none if even the header is
 * unreadable).  Safe to call from several threads at once.
 *
 * What it does to the calling thread: when running as root, ops that create files switch
 * the thread's fsuid/fsgid and supplementary groups to the requester's and back (raw
 * syscalls, this thread only);
 * the first such op unshares the thread's fs_struct (CLONE_FS) so its umask can be the
 * guest's.  A blocking lock (SETLKW) blocks the calling thread until it is granted (no
 * lock of the server's is held meanwhile); transports use fuse_handle_async instead. */
size_t fuse_handle(struct fuse_server *s, const struct iovec *in, int nin,
		   const struct iovec *out, int nout);

/* ---- requests answered later: blocking locks ----------------------------------------
 *
 * A blocking lock (SETLKW, POSIX or flock) that cannot be granted at once must not hold
 * a transport thread while it waits: a guest with more waiters than the transport has
 * threads would starve every other request, the holder's unlock included.  So
 * fuse_handle_async parks it and returns FUSE_DEFERRED; a thread of the server's own
 * (at most FUSE_LOCK_WAITERS per server; ENOLCK beyond) waits for the lock, writes the
 * reply into `out` and calls cfg.complete(cfg.complete_opaque, cookie, written).
 *
 * Contract for a parked request:
 *  - `in` may be reused as soon as fuse_handle_async returns (the request was copied).
 *  - `out` (the iovec array and the memory it points at) stays the caller's but must stay
 *    valid and untouched until complete() for that cookie has been called; the server
 *    writes the reply there just before calling complete().
 *  - complete() is called exactly once, from a server thread, with no lock of the
 *    server's held; it may call fuse_handle* on the same server.
 *  - FUSE_INTERRUPT (whose argument names the parked request's unique) ends the wait:
 *    the request is answered EINTR (or 0 if the lock came first).  FUSE_DESTROY answers
 *    every parked request EINTR before it returns.
 *  - fuse_abandon_waiters (device reset) and fuse_server_destroy end every wait and call
 *    complete(..., FUSE_ABANDONED) for each before returning: nothing was written to
 *    `out` and nothing must be published (the buffers belong to a reset device).
 *
 * With cookie NULL, or no cfg.complete, nothing is parked: a blocking lock that would wait
 * is answered EAGAIN at once (for queues that must never block, e.g. virtio-fs hiprio). */
#define FUSE_LOCK_WAITERS 64
#define FUSE_DEFERRED  ((size_t)-1)
#define FUSE_ABANDONED ((size_t)-2)
size_t fuse_handle_async(struct fuse_server *s, const struct iovec *in, int nin,
			 const struct iovec *out, int nout, void *cookie);
/* Before a reset: every parked request is completed with FUSE_ABANDONED before this
 * returns, and from then on the server parks nothing (a blocking lock that would wait
 * is answered EINTR), so a transport waiting for its in-flight requests afterwards does
 * not wait on a lock.  Meant to be followed by fuse_server_destroy. */
void fuse_abandon_waiters(struct fuse_server *s);


/* DAX windows (fs/dax.c): `size` bytes of host address space, anonymous and private with
 * no swap reserved (unmapped parts read as zeros); NULL with errno on failure. */
void *fuse_dax_window_create(uint64_t size);
void fuse_dax_window_destroy(void *base, uint64_t size);
/* Bytes of the server's window currently mapped to files (tests, diagnostics). */
uint64_t fuse_dax_mapped(struct fuse_server *s);

#endif
