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

struct fuse_config {
	const char *path;          /* the shared directory */
	bool readonly;             /* enforced on the host: every modifying op gets EROFS */
	enum fuse_cache cache;     /* entry/attr timeouts and open flags (DIRECT_IO, KEEP_CACHE) */
	bool xattr;                /* extended attributes (and POSIX ACLs) passed through */
	unsigned threads;          /* hint for blocking-op concurrency; 0 = default */
	/* The DAX window (FUSE_SETUPMAPPING maps files into it), from
	 * fuse_dax_window_create and owned by the caller; NULL: no DAX.  dax_size is a
	 * multiple of the host page size. */
	void *dax_window;
	uint64_t dax_size;
};

struct fuse_server;

/* Open the share: one line in `err` and NULL on failure (missing directory, not a
 * directory, no permission, /proc not mounted).  Every inode the guest keeps looked up
 * holds an fd, so this raises the process's soft RLIMIT_NOFILE to its hard limit; the
 * guest may hold at most about three quarters of it (ENFILE beyond), the rest is left to
 * the VMM. */
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
 * the thread's fsuid/fsgid to the requester's and back (raw syscalls, this thread only);
 * the first such op unshares the thread's fs_struct (CLONE_FS) so its umask can be the
 * guest's.  SETLKW blocks the calling thread until the lock is granted (no lock of the
 * server's is held meanwhile), so a transport wants more workers than it expects
 * waiters. */
size_t fuse_handle(struct fuse_server *s, const struct iovec *in, int nin,
		   const struct iovec *out, int nout);


/* DAX windows (fs/dax.c): `size` bytes of host address space, anonymous and private with
 * no swap reserved (unmapped parts read as zeros); NULL with errno on failure. */
void *fuse_dax_window_create(uint64_t size);
void fuse_dax_window_destroy(void *base, uint64_t size);
/* Bytes of the server's window currently mapped to files (tests, diagnostics). */
uint64_t fuse_dax_mapped(struct fuse_server *s);

#endif
