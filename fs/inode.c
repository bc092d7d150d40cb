/* The inode and handle tables.  The guest names inodes and open files by 64-bit numbers
 * it got from us; they are table indices with a generation in the high half, so a number
 * is checked on every use and a stale or invented one can never reach freed memory or
 * somebody else's fd.
 *
 * Lifetimes: an inode lives while the guest's lookup count is non-zero, or while a request
 * or an open handle still uses it (refs); its O_PATH fd closes when both are gone.  A
 * handle lives until RELEASE, and its fd until the last request using it finishes, so a
 * release racing a read on another thread cannot close the fd under it.
 *
 * Locking: one mutex per table, never held across a host syscall that can block.  The
 * handle table's mutex is never held while taking the inode table's. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/internal.h"

#define IDX(id) ((uint32_t)(id))
#define GEN(id) ((uint32_t)((id) >> 32))
#define TABLE_MAX (1u << 24)    /* far beyond any fd budget; keeps indices sane */

/* One budget for every server of the process: each share sizing its own from the whole
 * RLIMIT_NOFILE let two busy guests exhaust the process's fds, and then the VMM's own
 * eventfd() or pthread_create() failed.  The budget leaves the VMM a reserve. */
static atomic_uint fds_used;    /* guest-held fds, all servers */
static atomic_uint fds_max = 1024;

void fd_budget_set(unsigned max)
{
	atomic_store(&fds_max, max);
}

int fd_reserve(struct fuse_server *s)
{
	if (atomic_fetch_add(&fds_used, 1) >= atomic_load(&fds_max)) {
		atomic_fetch_sub(&fds_used, 1);
		return -ENFILE;
	}
	atomic_fetch_add(&s->nfds, 1);
	return 0;
}

void fd_unreserve(struct fuse_server *s)
{
	atomic_fetch_sub(&s->nfds, 1);
	atomic_fetch_sub(&fds_used, 1);
}

void fd_unreserve_all(struct fuse_server *s)
{
	atomic_fetch_sub(&fds_used, atomic_exchange(&s->nfds, 0));
}

/* ---- inode table ------------------------------------------------------------------- */

static uint32_t key_hash(const struct fs_key *k)
{
	uint64_t h = k->ino * 0x9E3779B97F4A7C15ULL;

	h ^= k->dev * 0xC2B2AE3D27D4EB4FULL + (h >> 31);
	h ^= k->mnt * 0x165667B19E3779F9ULL + (h >> 27);
	return (uint32_t)(h ^ (h >> 32));
}

static bool key_eq(const struct fs_key *a, const struct fs_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->mnt == b->mnt;
}

static void hash_insert(struct fs_itable *t, struct fs_inode *ino)
{
	uint32_t b = key_hash(&ino->key) & (t->nbucket - 1);

	ino->hnext = t->bucket[b];
	t->bucket[b] = ino;
	ino->hashed = true;
	t->count++;
}

static void hash_remove(struct fs_itable *t, struct fs_inode *ino)
{
	struct fs_inode **pp = &t->bucket[key_hash(&ino->key) & (t->nbucket - 1)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == ino) {
			*pp = ino->hnext;
			ino->hnext = NULL;
			ino->hashed = false;
			t->count--;
			return;
		}
	}
}

static struct fs_inode *hash_find(struct fs_itable *t, const struct fs_key *key)
{
	struct fs_inode *ino = t->bucket[key_hash(key) & (t->nbucket - 1)];

	for (; ino; ino = ino->hnext)
		if (key_eq(&ino->key, key))
			return ino;
	return NULL;
}

/* Doubling keeps chains short; failure to grow only costs speed. */
static void hash_grow(struct fs_itable *t)
{
	uint32_t nb = t->nbucket * 2;
	struct fs_inode **nbk;

	if (t->count < t->nbucket || nb > TABLE_MAX)
		return;
	nbk = calloc(nb, sizeof(*nbk));
	if (!nbk)
		return;
	for (uint32_t i = 0; i < t->nbucket; i++) {
		struct fs_inode *ino = t->bucket[i], *next;
		for (; ino; ino = next) {
			uint32_t b = key_hash(&ino->key) & (nb - 1);
			next = ino->hnext;
			ino->hnext = nbk[b];
			nbk[b] = ino;
		}
	}
	free(t->bucket);
	t->bucket = nbk;
	t->nbucket = nb;
}

/* Room for one more entry in a table's slot array (of pointers): the array, doubled when
 * full but never past TABLE_MAX (node ids and handles are indices into it), or NULL. */
static void *slots_room(void *slot, uint32_t nslot, uint32_t *cap)
{
	if (nslot < *cap)
		return slot;
	uint32_t ncap = *cap * 2;
	if (ncap > TABLE_MAX)
		return NULL;
	void *ns = realloc(slot, (size_t)ncap * sizeof(void *));
	if (ns)
		*cap = ncap;
	return ns;
}

/* A free slot (recycled, or a new one at the end), or NULL. */
static struct fs_inode *islot_alloc(struct fs_itable *t)
{
	struct fs_inode *ino = t->free;

	if (ino) {
		t->free = ino->hnext;
		ino->hnext = NULL;
		return ino;
	}
	struct fs_inode **islots = slots_room(t->slot, t->nslot, &t->cap);
	if (!islots)
		return NULL;
	t->slot = islots;
	ino = calloc(1, sizeof(*ino));
	if (!ino)
		return NULL;
	ino->idx = t->nslot;
	ino->gen = 1;
	ino->fd = -1;
	pthread_mutex_init(&ino->plock_mu, NULL);
	t->slot[t->nslot++] = ino;
	return ino;
}

/* refs reached 0 (table lock held): close the fd and recycle the slot under a new
 * generation, so the old nodeid is stale from now on. */
static void inode_free_locked(struct fuse_server *s, struct fs_inode *ino)
{
	struct fs_itable *t = &s->it;

	if (ino->hashed)
		hash_remove(t, ino);
	plock_drop_all(s, ino);
	close(ino->fd);
	fd_unreserve(s);
	ino->fd = -1;
	ino->nlookup = 0;
	if (++ino->gen == 0)
		ino->gen = 1;
	ino->hnext = t->free;
	t->free = ino;
}

int itable_init(struct fuse_server *s, int rootfd, const struct fs_key *key)
{
	struct fs_itable *t = &s->it;
	struct fs_htable *h = &s->ht;
	struct fs_inode *root;

	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&h->mu, NULL);
	t->cap = 64;
	t->nbucket = 64;
	t->slot = calloc(t->cap, sizeof(*t->slot));
	t->bucket = calloc(t->nbucket, sizeof(*t->bucket));
	h->cap = 64;
	h->slot = calloc(h->cap, sizeof(*h->slot));
	t->nslot = 1;           /* index 0 is never a nodeid */
	h->nslot = 1;
	root = (t->slot && t->bucket && h->slot) ? islot_alloc(t) : NULL;
	if (!root) {
		free(t->slot);
		free(t->bucket);
		free(h->slot);
		return -ENOMEM;
	}
	/* nodeid 1 is FUSE_ROOT_ID: index 1, generation 0, and never freed. */
	root->gen = 0;
	root->fd = rootfd;
	root->type = S_IFDIR;
	root->key = *key;
	root->refs = 1;
	hash_insert(t, root);
	s->root = root;
	/* The root's fd counts (and may exceed the budget: a share must open); balanced by
	 * fd_unreserve_all after itable_fini. */
	atomic_fetch_add(&s->nfds, 1);
	atomic_fetch_add(&fds_used, 1);
	return 0;
}

void itable_fini(struct fuse_server *s)
{
	struct fs_itable *t = &s->it;
	struct fs_htable *h = &s->ht;

	for (uint32_t i = 1; i < h->nslot; i++) {
		struct fs_handle *hd = h->slot[i];
		if (hd->fd >= 0)
			close(hd->fd);
		pthread_mutex_destroy(&hd->mu);
		free(hd);
	}
	for (uint32_t i = 1; i < t->nslot; i++) {
		struct fs_inode *ino = t->slot[i];
		plock_drop_all(s, ino);
		if (ino->fd >= 0)
			close(ino->fd);
		pthread_mutex_destroy(&ino->plock_mu);
		free(ino);
	}
	free(h->slot);
	free(t->slot);
	free(t->bucket);
	pthread_mutex_destroy(&h->mu);
	pthread_mutex_destroy(&t->mu);
}

uint64_t inode_nodeid(const struct fs_inode *ino)
{
	return (uint64_t)ino->gen << 32 | ino->idx;
}

/* Live for the guest: looked up and not forgotten (the root always). */
static struct fs_inode *inode_find_locked(struct fuse_server *s, uint64_t nodeid)
{
	struct fs_itable *t = &s->it;
	struct fs_inode *ino;

	if (IDX(nodeid) == 0 || IDX(nodeid) >= t->nslot)
		return NULL;
	ino = t->slot[IDX(nodeid)];
	if (ino->gen != GEN(nodeid) || ino->fd < 0 || (ino->nlookup == 0 && ino != s->root))
		return NULL;
	return ino;
}

struct fs_inode *inode_get(struct fuse_server *s, uint64_t nodeid)
{
	struct fs_inode *ino;

	pthread_mutex_lock(&s->it.mu);
	ino = inode_find_locked(s, nodeid);
	if (ino)
		ino->refs++;
	pthread_mutex_unlock(&s->it.mu);
	return ino;
}

void inode_ref(struct fuse_server *s, struct fs_inode *ino)
{
	pthread_mutex_lock(&s->it.mu);
	ino->refs++;
	pthread_mutex_unlock(&s->it.mu);
}

void inode_put(struct fuse_server *s, struct fs_inode *ino)
{
	pthread_mutex_lock(&s->it.mu);
	if (--ino->refs == 0)
		inode_free_locked(s, ino);
	pthread_mutex_unlock(&s->it.mu);
}

int inode_intern(struct fuse_server *s, int fd, const struct fs_key *key, mode_t type,
		 enum fs_mnt mnt, struct fs_inode **out)
{
	struct fs_itable *t = &s->it;
	struct fs_inode *ino;

	pthread_mutex_lock(&t->mu);
	ino = hash_find(t, key);
	if (ino) {
		/* Already known: this fd is a duplicate. */
		ino->nlookup++;
		ino->refs++;
		pthread_mutex_unlock(&t->mu);
		close(fd);
		fd_unreserve(s);
		*out = ino;
		return 0;
	}
	ino = islot_alloc(t);
	if (!ino) {
		pthread_mutex_unlock(&t->mu);
		close(fd);
		fd_unreserve(s);
		return -ENFILE;
	}
	ino->fd = fd;
	ino->key = *key;
	ino->type = type & S_IFMT;
	ino->mnt = (uint8_t)mnt;
	ino->nlookup = 1;
	ino->refs = 2;          /* the lookup's, and the caller's */
	hash_insert(t, ino);
	hash_grow(t);
	pthread_mutex_unlock(&t->mu);
	*out = ino;
	return 0;
}

/* Drop n lookups; more than the inode has is clamped (a confused or hostile guest must not
 * wrap the count and keep a forgotten inode alive forever, nor free one twice). */
static void inode_forget_locked(struct fuse_server *s, struct fs_inode *ino, uint64_t n)
{
	if (n > ino->nlookup)
		n = ino->nlookup;
	ino->nlookup -= n;
	if (ino->nlookup || ino == s->root || !ino->hashed)
		return;
	hash_remove(&s->it, ino);
	if (--ino->refs == 0)
		inode_free_locked(s, ino);
}

void inode_forget(struct fuse_server *s, uint64_t nodeid, uint64_t n)
{
	struct fs_inode *ino;

	pthread_mutex_lock(&s->it.mu);
	ino = inode_find_locked(s, nodeid);
	if (ino)
		inode_forget_locked(s, ino, n);
	pthread_mutex_unlock(&s->it.mu);
}

/* ---- handle table ------------------------------------------------------------------ */

static struct fs_handle *hslot_alloc(struct fs_htable *t)
{
	struct fs_handle *h = t->free;

	if (h) {
		t->free = h->fnext;
		h->fnext = NULL;
		return h;
	}
	struct fs_handle **hslots = slots_room(t->slot, t->nslot, &t->cap);
	if (!hslots)
		return NULL;
	t->slot = hslots;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->idx = t->nslot;
	h->gen = 1;
	h->fd = -1;
	pthread_mutex_init(&h->mu, NULL);
	t->slot[t->nslot++] = h;
	return h;
}

/* What a handle leaves behind once its slot is recycled (table lock held): closed and
 * dropped by handle_cleanup() after the lock is released. */
struct handle_remains {
	int fd;
	struct fs_inode *ino;
};

static void handle_free_locked(struct fs_htable *t, struct fs_handle *h, struct handle_remains *rm)
{
	rm->fd = h->fd;
	rm->ino = h->ino;
	h->fd = -1;
	h->ino = NULL;
	h->live = false;
	if (++h->gen == 0)
		h->gen = 1;
	h->fnext = t->free;
	t->free = h;
}

static void handle_cleanup(struct fuse_server *s, struct handle_remains *rm)
{
	close(rm->fd);
	fd_unreserve(s);
	inode_put(s, rm->ino);
}

int handle_new(struct fuse_server *s, enum fs_handle_kind kind, int fd, struct fs_inode *ino,
	       uint64_t *fh)
{
	struct fs_htable *t = &s->ht;
	struct fs_handle *h;

	inode_ref(s, ino);
	pthread_mutex_lock(&t->mu);
	h = hslot_alloc(t);
	if (!h) {
		pthread_mutex_unlock(&t->mu);
		inode_put(s, ino);
		return -ENFILE;
	}
	h->fd = fd;
	h->kind = kind;
	h->ino = ino;
	h->live = true;
	h->refs = 1;
	*fh = (uint64_t)h->gen << 32 | h->idx;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

/* kind 0 accepts either kind (SETATTR and locks come with whichever the guest has). */
static struct fs_handle *handle_find_locked(struct fs_htable *t, uint64_t fh,
					    enum fs_handle_kind kind)
{
	struct fs_handle *h;

	if (IDX(fh) == 0 || IDX(fh) >= t->nslot)
		return NULL;
	h = t->slot[IDX(fh)];
	if (!h->live || h->gen != GEN(fh) || (kind && h->kind != kind))
		return NULL;
	return h;
}

struct fs_handle *handle_get(struct fuse_server *s, uint64_t fh, enum fs_handle_kind kind)
{
	struct fs_handle *h;

	pthread_mutex_lock(&s->ht.mu);
	h = handle_find_locked(&s->ht, fh, kind);
	if (h)
		h->refs++;
	pthread_mutex_unlock(&s->ht.mu);
	return h;
}

void handle_put(struct fuse_server *s, struct fs_handle *h)
{
	struct handle_remains rm;
	bool freed = false;

	pthread_mutex_lock(&s->ht.mu);
	if (--h->refs == 0) {
		handle_free_locked(&s->ht, h, &rm);
		freed = true;
	}
	pthread_mutex_unlock(&s->ht.mu);
	if (freed)
		handle_cleanup(s, &rm);
}

int handle_release(struct fuse_server *s, uint64_t fh, enum fs_handle_kind kind)
{
	struct fs_handle *h;

	pthread_mutex_lock(&s->ht.mu);
	h = handle_find_locked(&s->ht, fh, kind);
	if (!h) {
		pthread_mutex_unlock(&s->ht.mu);
		return -EBADF;
	}
	h->live = false;        /* no new users; the table's reference goes below */
	pthread_mutex_unlock(&s->ht.mu);
	handle_put(s, h);
	return 0;
}

int itable_per_fs(struct fuse_server *s, struct fs_inode **v, int max)
{
	struct fs_itable *t = &s->it;
	int n = 0;

	pthread_mutex_lock(&t->mu);
	v[n++] = s->root;
	s->root->refs++;
	for (uint32_t i = 1; i < t->nslot; i++) {
		struct fs_inode *ino = t->slot[i];
		int k;
		if (ino->fd < 0 || !ino->nlookup || ino->mnt == FS_MNT_SEALED ||
		    !(S_ISDIR(ino->type) || S_ISREG(ino->type)))
			continue;
		for (k = 0; k < n && v[k]->key.dev != ino->key.dev; k++)
			;
		if (k < n) {
			/* A directory reopens whatever its mode; prefer one. */
			if (!S_ISDIR(v[k]->type) && S_ISDIR(ino->type)) {
				v[k]->refs--;   /* never the last: a live inode keeps its lookup's */
				v[k] = ino;
				ino->refs++;
			}
			continue;
		}
		if (n == max)
			continue;
		v[n++] = ino;
		ino->refs++;
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}

void itable_forget_all(struct fuse_server *s)
{
	struct fs_htable *ht = &s->ht;
	struct fs_itable *t = &s->it;

	/* Handles first: they hold inode references. */
	pthread_mutex_lock(&ht->mu);
	for (uint32_t i = 1; i < ht->nslot; i++) {
		struct fs_handle *h = ht->slot[i];
		if (!h->live)
			continue;
		/* Not live: nobody takes a new reference, and the table's (dropped here)
		 * keeps the slot from being recycled while the lock is released. */
		h->live = false;
		pthread_mutex_unlock(&ht->mu);
		handle_put(s, h);
		pthread_mutex_lock(&ht->mu);
	}
	pthread_mutex_unlock(&ht->mu);

	pthread_mutex_lock(&t->mu);
	for (uint32_t i = 1; i < t->nslot; i++) {
		struct fs_inode *ino = t->slot[i];
		if (ino == s->root) {
			ino->nlookup = 0;
			continue;
		}
		if (ino->fd >= 0 && ino->nlookup)
			inode_forget_locked(s, ino, ino->nlookup);
	}
	pthread_mutex_unlock(&t->mu);
}
