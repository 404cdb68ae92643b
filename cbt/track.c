/*
 * track.c - a disk's change tracking in memory and its write-back to the
 * tracking file (cbt.h; format: ondisk.h, docs/FORMAT.md).
 *
 * Memory: one array of CBT_LEAF_BLOCKS sequences per leaf page that holds
 * a mark (allocated on the first mark in its range), and per leaf its
 * highest sequence (the summary a query skips whole leaves with) and
 * whether it must be written back.  A 1 TiB disk has 16448 leaves; a
 * query since N looks only into leaves whose highest sequence is above N.
 *
 * Holds: a writer that marks before it writes (the executor) holds the
 * blocks of every write it has not seen complete.  A held block carries
 * the next sequence, and every checkpoint stamps it again with the one
 * after: however many checkpoints pass before the write lands, every ID
 * issued meanwhile is below its stamp.  Hold counts live in memory only
 * (a writer that dies leaves them to its caller; a crash of this process
 * resets tracking anyway).
 *
 * Ordering (the complete-or-reset rule): the header goes dirty, durably,
 * before the first mark of a session returns; leaf pages are synced
 * before the header says clean again.  Sequences only grow: a reset
 * starts the next one, so a mark from before it can never look newer than
 * an ID issued after it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cbt/cbt.h"
#include "cbt/ondisk.h"
#include "multipath/mp.h"

#define BATCH 256u                 /* leaf pages per write-back I/O */

struct cbt_disk {
	pthread_mutex_t lock;
	struct cbt_io io;
	bool has_io;
	struct cbt_hdr h;
	uint64_t cap;                  /* leaves the arrays hold */
	uint32_t **leaf;               /* NULL: no mark in that leaf */
	uint32_t *lmax;                /* highest sequence per leaf */
	uint8_t *ldirty;               /* to be written back */
	uint32_t **hold;               /* per leaf: holds per block, or NULL */
	uint32_t *lheld;               /* per leaf: blocks held */
	uint64_t nheld;                /* blocks held, all leaves */
	bool writing;                  /* the header is durable as dirty */
	bool lost;                     /* a mark could not be kept: reset */
	bool hdr_dirty;                /* the header changed (size) */
	unsigned char *buf;            /* BATCH pages, aligned */
};

static int grow(cbt_disk *d, uint64_t need)
{
	uint64_t cap = d->cap ? d->cap : 16;
	void *a, *b, *c, *h, *hn;

	if (need <= d->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	a = realloc(d->leaf, cap * sizeof(*d->leaf));
	if (a)
		d->leaf = a;
	b = realloc(d->lmax, cap * sizeof(*d->lmax));
	if (b)
		d->lmax = b;
	c = realloc(d->ldirty, cap);
	if (c)
		d->ldirty = c;
	h = realloc(d->hold, cap * sizeof(*d->hold));
	if (h)
		d->hold = h;
	hn = realloc(d->lheld, cap * sizeof(*d->lheld));
	if (hn)
		d->lheld = hn;
	if (!a || !b || !c || !h || !hn)
		return -ENOMEM;
	memset(d->leaf + d->cap, 0, (cap - d->cap) * sizeof(*d->leaf));
	memset(d->lmax + d->cap, 0, (cap - d->cap) * sizeof(*d->lmax));
	memset(d->ldirty + d->cap, 0, cap - d->cap);
	memset(d->hold + d->cap, 0, (cap - d->cap) * sizeof(*d->hold));
	memset(d->lheld + d->cap, 0, (cap - d->cap) * sizeof(*d->lheld));
	d->cap = cap;
	return 0;
}

static void drop_leaves(cbt_disk *d)
{
	for (uint64_t i = 0; i < d->cap; i++) {
		free(d->leaf[i]);
		d->leaf[i] = NULL;
		d->lmax[i] = 0;
		d->ldirty[i] = 0;
	}
}

/* The leaf array of li, made when missing; NULL when out of memory. */
static uint32_t *leaf_get(cbt_disk *d, uint64_t li)
{
	if (grow(d, li + 1))
		return NULL;
	if (!d->leaf[li])
		d->leaf[li] = calloc(CBT_LEAF_BLOCKS, sizeof(uint32_t));
	return d->leaf[li];
}

/*
 * Every held block stamped with the next sequence (after a checkpoint or
 * a reset moved the sequence on): its write may still land after any ID
 * issued so far.  A block that cannot be stamped loses the change: reset.
 */
static void restamp_held(cbt_disk *d)
{
	uint32_t seq = d->h.seq + 1;

	if (!d->nheld)
		return;
	for (uint64_t li = 0; li < d->cap; li++) {
		const uint32_t *h = d->hold[li];
		uint32_t *l;

		if (!d->lheld[li])
			continue;
		l = leaf_get(d, li);
		if (!l) {
			d->lost = true;
			continue;
		}
		for (unsigned i = 0; i < CBT_LEAF_BLOCKS; i++)
			if (h[i] && l[i] < seq)
				l[i] = seq;
		if (d->lmax[li] < seq)
			d->lmax[li] = seq;
		d->ldirty[li] = 1;
	}
}

static int write_hdr(cbt_disk *d)
{
	d->h.gen++;
	cbt_hdr_out(&d->h, d->buf);
	return d->io.pwrite(d->io.arg, d->buf, CBT_PAGE, 0);
}

static int write_hdr_sync(cbt_disk *d)
{
	int ret = write_hdr(d);

	if (!ret)
		ret = d->io.sync(d->io.arg);
	if (!ret)
		d->hdr_dirty = false;
	return ret;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/*
 * Forget every mark and start over: the file is cut back to its header
 * first, so no leaf page of the old epoch survives (a crash in between
 * leaves the old header, still dirty, and the next open resets again).
 */
static int reset(cbt_disk *d, uint32_t reason)
{
	int ret;

	if (d->h.seq >= UINT32_MAX - 2)
		return -EOVERFLOW;
	if (d->h.state != CBT_STATE_DIRTY) {
		/* dirty on disk before any leaf goes: a crash in between must
		 * not leave a clean header without its marks (old IDs would
		 * be answered "nothing changed") */
		d->h.state = CBT_STATE_DIRTY;
		ret = write_hdr_sync(d);
		if (ret) {
			d->h.state = CBT_STATE_CLEAN;
			return ret;
		}
	}
	drop_leaves(d);
	d->lost = false;
	ret = d->io.truncate(d->io.arg, CBT_PAGE);
	if (ret)
		return ret;
	d->h.epoch++;
	/* held blocks may carry seq + 1: the new epoch starts above them */
	d->h.seq += 2;
	d->h.reset_seq = d->h.seq;
	d->h.reset_ns = now_ns();
	d->h.reset_reason = reason;
	d->h.state = d->writing ? CBT_STATE_DIRTY : CBT_STATE_CLEAN;
	/* writes still in flight are changes after the reset too */
	restamp_held(d);
	return write_hdr_sync(d);
}

static int alloc_disk(const struct cbt_io *io, cbt_disk **out)
{
	cbt_disk *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->buf = mp_alloc_aligned(4096, (size_t)BATCH * CBT_PAGE);
	if (!d->buf) {
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_init(&d->lock, NULL);
	d->io = *io;
	d->has_io = true;
	*out = d;
	return 0;
}

static void free_disk(cbt_disk *d)
{
	if (d->leaf)
		drop_leaves(d);
	for (uint64_t i = 0; i < d->cap; i++)
		free(d->hold[i]);
	free(d->hold);
	free(d->lheld);
	free(d->leaf);
	free(d->lmax);
	free(d->ldirty);
	free(d->buf);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int cbt_create(const struct cbt_io *io, uint64_t disk_size,
	       uint32_t block_size, cbt_disk **out)
{
	uint32_t shift = CBT_SHIFT_DEFAULT;
	cbt_disk *d;
	int ret;

	if (block_size) {
		if (block_size & (block_size - 1))
			return -EINVAL;
		shift = (uint32_t)__builtin_ctz(block_size);
		if (shift < CBT_SHIFT_MIN || shift > CBT_SHIFT_MAX)
			return -EINVAL;
	}
	if (disk_size > (1ull << 62))
		return -EINVAL;
	ret = alloc_disk(io, &d);
	if (ret)
		return ret;
	d->h.state = CBT_STATE_CLEAN;
	if (getrandom(d->h.uuid, 16, 0) != 16) {
		ret = -EIO;
		goto free_d;
	}
	d->h.uuid[0] = 0x52;      /* as VMware's UUIDs start */
	d->h.block_shift = shift;
	d->h.seq = 1;
	d->h.reset_seq = 1;
	d->h.disk_size = disk_size;
	d->h.reset_ns = now_ns();
	ret = io->truncate(io->arg, 0);
	if (!ret)
		ret = write_hdr_sync(d);
	if (ret)
		goto free_d;
	*out = d;
	return 0;
free_d:
	free_disk(d);
	return ret;
}

/* Read every leaf page the file holds (holes are skipped). */
static int load_leaves(cbt_disk *d)
{
	uint64_t off = CBT_PAGE;
	/* held blocks carry up to seq + 1 */
	uint32_t max_seq = d->h.seq + 1;

	for (;;) {
		int64_t at = d->io.next_data(d->io.arg, off);
		int ret;

		if (at == -ENXIO)
			return 0;
		if (at < 0)
			return (int)at;
		off = (uint64_t)at / CBT_PAGE * CBT_PAGE;
		if (off < CBT_PAGE)
			off = CBT_PAGE;
		ret = d->io.pread(d->io.arg, d->buf, (size_t)BATCH * CBT_PAGE, off);
		if (ret)
			return ret;
		for (unsigned p = 0; p < BATCH; p++) {
			uint64_t li = off / CBT_PAGE - 1 + p;
			uint32_t seq[CBT_LEAF_BLOCKS], m = 0;
			bool empty;

			ret = cbt_leaf_in(d->buf + (size_t)p * CBT_PAGE, li,
					  d->h.epoch, max_seq, seq, &empty);
			if (ret)
				return ret;
			if (empty)
				continue;
			ret = grow(d, li + 1);
			if (ret)
				return ret;
			d->leaf[li] = malloc(sizeof(seq));
			if (!d->leaf[li])
				return -ENOMEM;
			memcpy(d->leaf[li], seq, sizeof(seq));
			for (unsigned i = 0; i < CBT_LEAF_BLOCKS; i++)
				if (seq[i] > m)
					m = seq[i];
			d->lmax[li] = m;
		}
		off += (uint64_t)BATCH * CBT_PAGE;
	}
}

int cbt_open(const struct cbt_io *io, uint64_t disk_size, cbt_disk **out,
	     enum cbt_open_event *ev)
{
	cbt_disk *d;
	int ret = alloc_disk(io, &d);

	*ev = CBT_OPENED;
	if (ret)
		return ret;
	ret = io->pread(io->arg, d->buf, CBT_PAGE, 0);
	if (!ret)
		ret = cbt_hdr_in(d->buf, &d->h);
	if (ret)
		goto free_d;
	if (d->h.state == CBT_STATE_DIRTY) {
		/* a writer stopped without closing: marks may be missing */
		*ev = CBT_OPENED_RESET_UNCLEAN;
		ret = reset(d, CBT_REASON_UNCLEAN);
	} else {
		ret = load_leaves(d);
		if (ret == -CBT_E_CHECKSUM || ret == -CBT_E_CORRUPT) {
			*ev = CBT_OPENED_RESET_DAMAGED;
			ret = reset(d, CBT_REASON_DAMAGED);
		}
	}
	if (ret)
		goto free_d;
	if (disk_size > d->h.disk_size) {
		d->h.disk_size = disk_size;
		d->hdr_dirty = true;
	}
	*out = d;
	return 0;
free_d:
	free_disk(d);
	return ret;
}

int cbt_revalidate(cbt_disk *d)
{
	struct cbt_hdr h;
	int ret;

	pthread_mutex_lock(&d->lock);
	ret = d->io.pread(d->io.arg, d->buf, CBT_PAGE, 0);
	if (!ret)
		ret = cbt_hdr_in(d->buf, &h);
	if (!ret && (h.gen != d->h.gen || memcmp(h.uuid, d->h.uuid, 16)))
		ret = -ESTALE;
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void cbt_set_io(cbt_disk *d, const struct cbt_io *io)
{
	pthread_mutex_lock(&d->lock);
	if (io)
		d->io = *io;
	d->has_io = io != NULL;
	pthread_mutex_unlock(&d->lock);
}

static int begin(cbt_disk *d)
{
	int ret;

	if (d->writing)
		return 0;
	if (!d->has_io)
		return -EBADF;
	d->h.state = CBT_STATE_DIRTY;
	ret = write_hdr_sync(d);
	if (ret) {
		d->h.state = CBT_STATE_CLEAN;
		return ret;
	}
	d->writing = true;
	return 0;
}

int cbt_begin_writes(cbt_disk *d)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	ret = begin(d);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/*
 * Stamp the blocks of [off, off + len): with the current sequence (a
 * write that has landed), or held and with the next one (a write about
 * to be issued).
 */
static int stamp(cbt_disk *d, uint64_t off, uint64_t len, bool hold)
{
	uint64_t b, b1;
	uint32_t seq;
	int ret;

	if (!len)
		return 0;
	if (off + len < off)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	ret = begin(d);
	if (ret)
		goto unlock;
	seq = d->h.seq + (hold ? 1 : 0);
	b = off >> d->h.block_shift;
	b1 = (off + len - 1) >> d->h.block_shift;
	while (b <= b1) {
		uint64_t li = b / CBT_LEAF_BLOCKS;
		unsigned i = (unsigned)(b % CBT_LEAF_BLOCKS);
		uint64_t n = CBT_LEAF_BLOCKS - i;
		uint32_t *l = leaf_get(d, li), *h = NULL;

		if (n > b1 - b + 1)
			n = b1 - b + 1;
		if (l && hold && !d->hold[li])
			d->hold[li] = calloc(CBT_LEAF_BLOCKS, sizeof(uint32_t));
		if (!l || (hold && !(h = d->hold[li]))) {
			/* the change happens and cannot be recorded; a
			 * hold not taken is not released either (a release
			 * of a block not held does nothing) */
			d->lost = true;
			ret = -ENOMEM;
			break;
		}
		for (uint64_t k = 0; k < n; k++) {
			if (l[i + k] < seq)
				l[i + k] = seq;
			if (h && !h[i + k]++) {
				d->lheld[li]++;
				d->nheld++;
			}
		}
		if (d->lmax[li] < seq)
			d->lmax[li] = seq;
		d->ldirty[li] = 1;
		b += n;
	}
unlock:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int cbt_mark(cbt_disk *d, uint64_t off, uint64_t len)
{
	return stamp(d, off, len, false);
}

int cbt_hold(cbt_disk *d, uint64_t off, uint64_t len)
{
	return stamp(d, off, len, true);
}

/*
 * One hold of block li:i goes (under the lock).  The writes into a block
 * no longer held have landed, before the next checkpoint: the current
 * sequence says so, and the next incremental does not report them again.
 * Only holds stamp the next sequence, so lowering it takes nothing else.
 */
static void unhold(cbt_disk *d, uint64_t li, unsigned i)
{
	uint32_t *h = d->hold[li];

	if (!h || !h[i] || --h[i])
		return;
	d->lheld[li]--;
	d->nheld--;
	if (d->leaf[li] && d->leaf[li][i] == d->h.seq + 1) {
		d->leaf[li][i] = d->h.seq;   /* lmax stays an upper bound */
		d->ldirty[li] = 1;
	}
}

void cbt_release(cbt_disk *d, uint64_t off, uint64_t len)
{
	uint64_t b, b1;

	if (!len || off + len < off)
		return;
	pthread_mutex_lock(&d->lock);
	b = off >> d->h.block_shift;
	b1 = (off + len - 1) >> d->h.block_shift;
	for (; b <= b1 && b / CBT_LEAF_BLOCKS < d->cap && d->nheld; b++)
		unhold(d, b / CBT_LEAF_BLOCKS, (unsigned)(b % CBT_LEAF_BLOCKS));
	pthread_mutex_unlock(&d->lock);
}

void cbt_release_all(cbt_disk *d)
{
	pthread_mutex_lock(&d->lock);
	for (uint64_t li = 0; li < d->cap && d->nheld; li++)
		for (unsigned i = 0; i < CBT_LEAF_BLOCKS && d->lheld[li]; i++)
			while (d->hold[li][i])
				unhold(d, li, i);
	pthread_mutex_unlock(&d->lock);
}

uint64_t cbt_held(cbt_disk *d)
{
	uint64_t n;

	pthread_mutex_lock(&d->lock);
	n = d->nheld;
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* Write the dirty leaf pages back, BATCH contiguous ones per I/O. */
static int write_leaves(cbt_disk *d)
{
	uint64_t li = 0;

	while (li < d->cap) {
		uint64_t first;
		unsigned n = 0;
		int ret;

		if (!d->ldirty[li]) {
			li++;
			continue;
		}
		first = li;
		while (li < d->cap && d->ldirty[li] && n < BATCH) {
			cbt_leaf_out(d->leaf[li], li, d->h.epoch,
				     d->buf + (size_t)n * CBT_PAGE);
			n++;
			li++;
		}
		ret = d->io.pwrite(d->io.arg, d->buf, (size_t)n * CBT_PAGE,
				   (first + 1) * CBT_PAGE);
		if (ret)
			return ret;
		memset(d->ldirty + first, 0, n);
	}
	return 0;
}

static int flush_locked(cbt_disk *d, bool end)
{
	int ret;

	if (!d->has_io)
		return -EBADF;
	if (d->lost)
		return reset(d, CBT_REASON_UNCLEAN);
	ret = write_leaves(d);
	if (!ret)
		ret = d->io.sync(d->io.arg);
	if (ret)
		return ret;
	if (end && d->writing) {
		/* every mark is durable: now, and only now, clean */
		d->h.state = CBT_STATE_CLEAN;
		ret = write_hdr_sync(d);
		if (ret) {
			d->h.state = CBT_STATE_DIRTY;
			return ret;
		}
		d->writing = false;
	} else if (d->hdr_dirty) {
		ret = write_hdr_sync(d);
	}
	return ret;
}

int cbt_flush(cbt_disk *d)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	ret = flush_locked(d, false);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int cbt_end_writes(cbt_disk *d)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	ret = flush_locked(d, true);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int cbt_close(cbt_disk *d)
{
	int ret = 0;

	if (d->has_io)
		ret = cbt_end_writes(d);
	free_disk(d);
	return ret;
}

int cbt_checkpoint(cbt_disk *d, struct cbt_id *id)
{
	int ret;

	pthread_mutex_lock(&d->lock);
	if (!d->has_io) {
		ret = -EBADF;
		goto unlock;
	}
	if (d->lost) {
		ret = reset(d, CBT_REASON_UNCLEAN);
		if (ret)
			goto unlock;
	}
	if (d->h.seq >= UINT32_MAX - 2) {
		ret = -EOVERFLOW;
		goto unlock;
	}
	memcpy(id->uuid, d->h.uuid, 16);
	id->seq = d->h.seq;
	/* marks from now on carry seq + 1; the ID is handed out only once
	 * the file says so (a later session must not stamp seq again) */
	d->h.seq++;
	/* a held write may land after this ID and the next: seq + 1 */
	restamp_held(d);
	ret = write_hdr_sync(d);
unlock:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

int cbt_set_size(cbt_disk *d, uint64_t disk_size)
{
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	/* the arrays grow with the marks, not with the size */
	if (disk_size > d->h.disk_size) {
		d->h.disk_size = disk_size;
		d->hdr_dirty = true;
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

struct emit {
	uint64_t start, end;       /* pending extent, bytes; end 0 = none */
	uint64_t lo, hi;           /* the range asked for */
	cbt_extent_fn cb;
	void *arg;
};

static int flush_ext(struct emit *e)
{
	uint64_t s = e->start < e->lo ? e->lo : e->start;
	uint64_t t = e->end > e->hi ? e->hi : e->end;

	if (!e->end || s >= t)
		return 0;
	e->end = 0;
	return e->cb(e->arg, s, t - s);
}

int cbt_query(cbt_disk *d, const struct cbt_id *since, uint64_t off,
	      uint64_t len, cbt_extent_fn cb, void *arg)
{
	struct emit e = { .cb = cb, .arg = arg };
	uint32_t n = since->seq, shift;
	uint64_t b0, b1, end;
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	if (memcmp(since->uuid, d->h.uuid, 16))
		ret = -CBT_E_OTHER;
	else if (d->lost || n < d->h.reset_seq)
		ret = -CBT_E_RESET;
	else if (n >= d->h.seq)
		ret = -CBT_E_FUTURE;
	shift = d->h.block_shift;
	end = off + len < off || off + len > d->h.disk_size ? d->h.disk_size :
	      off + len;
	if (ret || off >= end)
		goto unlock;
	e.lo = off;
	e.hi = end;
	b0 = off >> shift;
	b1 = (end - 1) >> shift;
	for (uint64_t li = b0 / CBT_LEAF_BLOCKS; li <= b1 / CBT_LEAF_BLOCKS &&
	     li < d->cap && !ret; li++) {
		uint64_t first = li * CBT_LEAF_BLOCKS;
		unsigned i0 = 0, i1 = CBT_LEAF_BLOCKS - 1;
		const uint32_t *l = d->leaf[li];

		if (!l || d->lmax[li] <= n)
			continue;
		if (first < b0)
			i0 = (unsigned)(b0 - first);
		if (first + i1 > b1)
			i1 = (unsigned)(b1 - first);
		for (unsigned i = i0; i <= i1 && !ret; i++) {
			uint64_t s;

			if (l[i] <= n)
				continue;
			s = (first + i) << shift;
			if (e.end && e.end == s) {
				e.end = s + (1ull << shift);
				continue;
			}
			ret = flush_ext(&e);
			e.start = s;
			e.end = s + (1ull << shift);
		}
	}
	if (!ret)
		ret = flush_ext(&e);
unlock:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void cbt_info(cbt_disk *d, struct cbt_info *in)
{
	memset(in, 0, sizeof(*in));
	pthread_mutex_lock(&d->lock);
	memcpy(in->current.uuid, d->h.uuid, 16);
	in->current.seq = d->h.seq;
	in->block_size = 1u << d->h.block_shift;
	in->reset_seq = d->h.reset_seq;
	in->epoch = d->h.epoch;
	in->reset_reason = d->h.reset_reason;
	in->reset_ns = d->h.reset_ns;
	in->disk_size = d->h.disk_size;
	for (uint64_t i = 0; i < d->cap; i++)
		in->leaves += d->leaf[i] != NULL;
	in->dirty = d->writing;
	pthread_mutex_unlock(&d->lock);
}
