/*
 * be_fault.c - fault injection around any other path.
 *
 * Spec: fault:OPTIONS:INNER-SPEC, OPTIONS a ';'-separated list of
 *   wcache              volatile write cache (see below)
 *   seed=N              random seed for prob= rules and random power cuts
 *   qslots=K            emulate a target with K queue slots: I/O beyond K in
 *                       flight completes with TASK SET FULL
 *   bw=RATE             a device that moves RATE bytes per second (k/m/g):
 *                       each READ and WRITE is held until the device has
 *                       had the time to move the bytes before it
 *   qfull_us=N          with bw and qslots: turning a command away with
 *                       TASK SET FULL costs the device N us (a target
 *                       spends time on commands it rejects, which is what
 *                       makes a QUEUE FULL storm expensive)
 *   OP,ACTION[,k=v...]  a rule: OP read|write|flush|discard|caw|tur|any,
 *                       ACTION fail|delay|hang|busy|qfull|tear|drop|powercut|
 *                       failafter,
 *                       keys off, len, after, every, count, prob, err, ms,
 *                       keep (see struct mp_fault_rule in mp.h)
 * e.g. "fault:wcache;write,hang,off=4096,len=512,after=10:/tmp/lun.img"
 *
 * Volatile write cache: a plain WRITE completes once its sectors are in this
 * process's cache; reads see the cache over the inner LUN; FLUSH writes the
 * dirty sectors to the inner LUN, flushes it, and only then marks them clean.
 * A FUA write goes to the inner LUN before it completes.  Compare-and-write
 * first writes back the dirty sectors it covers, so its comparison is made
 * against what this host has written.  A power cut (mp_fault_power_cut, a
 * powercut rule, or the process dying) loses the dirty sectors.  The cache is
 * per process: other processes see cached writes only after a flush, so it
 * models one host's unflushed writes, which is what crash tests drop.
 *
 * Entries stay in the cache after they are clean (they always hold the
 * newest data of their sector) and are only freed when no read is in flight,
 * so a read that raced with a write-back can always overlay them.
 *
 * Locks: f->lock protects rules, the cache, held I/O and counters.  It is
 * never held while calling into the inner path or completing an I/O.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp_int.h"

#define HASH_BITS 16
#define HASH_SIZE (1u << HASH_BITS)

struct frule {
	struct mp_fault_rule r;
	unsigned matches, fired;
	struct frule *next;
};

struct centry {
	uint64_t sector;
	uint64_t seq;
	bool dirty;
	struct centry *hnext;
	unsigned char data[];
};

/* I/O held by the timer thread: issued or completed at due_ns. */
struct held {
	struct mp_io *io;
	uint64_t due_ns;         /* UINT64_MAX = until mp_fault_clear */
	bool complete;           /* complete with result instead of issuing */
	int result;
	struct held *next;
};

struct fault {
	struct mp_path *self;
	struct mp_path *inner;
	unsigned ls;             /* logical sector */

	pthread_mutex_t lock;
	struct frule *rules;
	uint64_t rng;
	unsigned qslots, inflight;
	uint64_t bw;             /* bytes per second, 0 = unlimited */
	uint64_t bw_next;        /* ns: when the device is free again */
	uint64_t qfull_ns;       /* device time a TASK SET FULL costs */
	bool powered_off;

	bool wcache;
	struct centry **hash;
	uint64_t seq;
	uint64_t ndirty, nclean;
	unsigned reads_inflight;

	pthread_t timer;
	pthread_cond_t tcond;
	struct held *held;       /* sorted by due_ns */
	bool tstop;

	/* I/O whose success is reported as an error (FAIL_AFTER) */
	struct override {
		struct mp_io *io;
		int err;
		struct override *next;
	} *overrides;

	struct mp_fault_stats st;
};

/* Internal I/O the fault layer issues to the inner path on its own behalf. */
enum sub_kind { SUB_TEAR, SUB_WB_WRITE, SUB_WB_FLUSH };

struct wb;  /* a write-back batch */

struct fsub {
	struct mp_io io;
	struct iovec iov;
	void *buf;
	enum sub_kind kind;
	struct mp_io *parent;
	struct wb *wb;
};

/* Write-back of a set of dirty sectors, then optionally an inner FLUSH, then
 * the parent I/O continues (FLUSH completes, CAW is issued). */
struct wb {
	struct mp_io *parent;
	bool flush;
	unsigned pending;
	int err;
	size_t n;
	uint64_t *sectors, *seqs;
};

static char sub_marker;
#define SUB_LUN ((struct mp_lun *)&sub_marker)

static void fault_issue(struct fault *f, struct mp_io *io);

/* ---- helpers --------------------------------------------------------------- */

static uint64_t rng_next(struct fault *f)
{
	/* xorshift64*: good enough for fault choices, reproducible by seed */
	uint64_t x = f->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	f->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static double rng_unit(struct fault *f)
{
	return (double)(rng_next(f) >> 11) / (double)(1ull << 53);
}

static unsigned hash_of(uint64_t sector)
{
	return (unsigned)((sector * 0x9E3779B97F4A7C15ull) >> (64 - HASH_BITS));
}

static struct centry *cache_find(struct fault *f, uint64_t sector)
{
	struct centry *e = f->hash[hash_of(sector)];

	while (e && e->sector != sector)
		e = e->hnext;
	return e;
}

/* Store one sector; returns false on allocation failure. */
static bool cache_put(struct fault *f, uint64_t sector, const void *data,
		      uint64_t seq)
{
	struct centry *e = cache_find(f, sector);

	if (!e) {
		unsigned h = hash_of(sector);

		e = malloc(sizeof(*e) + f->ls);
		if (!e)
			return false;
		e->sector = sector;
		e->dirty = false;
		e->hnext = f->hash[h];
		f->hash[h] = e;
		f->nclean++;
	}
	memcpy(e->data, data, f->ls);
	e->seq = seq;
	if (!e->dirty) {
		e->dirty = true;
		f->nclean--;
		f->ndirty++;
	}
	return true;
}

/* Free clean entries.  Only when no read is in flight (see file comment). */
static void cache_sweep(struct fault *f)
{
	if (f->reads_inflight || !f->nclean)
		return;
	for (unsigned h = 0; h < HASH_SIZE; h++) {
		struct centry **pp = &f->hash[h];

		while (*pp) {
			struct centry *e = *pp;

			if (!e->dirty) {
				*pp = e->hnext;
				free(e);
				f->nclean--;
			} else {
				pp = &e->hnext;
			}
		}
	}
}

static void cache_free_all(struct fault *f)
{
	if (!f->hash)
		return;
	for (unsigned h = 0; h < HASH_SIZE; h++) {
		struct centry *e = f->hash[h];

		while (e) {
			struct centry *n = e->hnext;

			free(e);
			e = n;
		}
		f->hash[h] = NULL;
	}
	f->ndirty = f->nclean = 0;
}

/* ---- timer thread: delayed, hung and asynchronously completed I/O ---------- */

static void held_insert(struct fault *f, struct held *h)
{
	struct held **pp = &f->held;

	while (*pp && (*pp)->due_ns <= h->due_ns)
		pp = &(*pp)->next;
	h->next = *pp;
	*pp = h;
	f->st.held++;
	pthread_cond_signal(&f->tcond);
}

/* Queue io for completion with result on the timer thread (never inline). */
static void complete_async(struct fault *f, struct mp_io *io, int result)
{
	struct held *h = calloc(1, sizeof(*h));

	if (!h)
		abort();  /* tiny allocation; nothing sane left to do */
	h->io = io;
	h->complete = true;
	h->result = result;
	h->due_ns = 0;
	held_insert(f, h);
}

static void *timer_main(void *arg)
{
	struct fault *f = arg;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		struct held *h = f->held;
		uint64_t now = mp_now_ns();

		if (!h || h->due_ns == UINT64_MAX) {
			if (f->tstop && !h)
				break;
			pthread_cond_wait(&f->tcond, &f->lock);
			continue;
		}
		if (h->due_ns > now) {
			struct timespec ts;
			uint64_t wake;

			clock_gettime(CLOCK_REALTIME, &ts);
			wake = (uint64_t)ts.tv_sec * 1000000000ull +
			       (uint64_t)ts.tv_nsec + (h->due_ns - now);
			ts.tv_sec = (time_t)(wake / 1000000000ull);
			ts.tv_nsec = (long)(wake % 1000000000ull);
			pthread_cond_timedwait(&f->tcond, &f->lock, &ts);
			continue;
		}
		f->held = h->next;
		f->st.held--;
		if (!h->complete && f->powered_off) {
			h->complete = true;
			h->result = -MP_E_POWERCUT;
		}
		pthread_mutex_unlock(&f->lock);
		if (h->complete) {
			if (h->io->lun_ == SUB_LUN) {
				h->io->result = h->result;
				h->io->cb(h->io);  /* internal: see sub_done */
			} else
				mp_path_done(f->self, h->io, h->result);
		} else {
			fault_issue(f, h->io);
		}
		free(h);
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* ---- completions from the inner path --------------------------------------- */

static void overlay_read(struct fault *f, struct mp_io *io, int result)
{
	uint64_t first = io->offset / f->ls, n = io->length / f->ls;

	if (result < 0)
		return;
	for (uint64_t s = 0; s < n; s++) {
		struct centry *e = cache_find(f, first + s);

		if (e)
			mp_buf_to_iov(io->iov, io->iovcnt, s * f->ls, e->data,
				      f->ls);
	}
}

static void inner_done(void *arg, struct mp_io *io, int result)
{
	struct fault *f = arg;

	if (io->lun_ == SUB_LUN) {
		io->result = result;
		io->cb(io);
		return;
	}
	pthread_mutex_lock(&f->lock);
	if (f->wcache && io->op == MP_OP_READ) {
		overlay_read(f, io, result);
		f->reads_inflight--;
		if (f->nclean > 4096)
			cache_sweep(f);
	}
	if (f->wcache && io->op == MP_OP_WRITE && result >= 0) {
		/* FUA write-through done: its sectors are clean unless a newer
		 * write replaced them meanwhile (seq differs). */
		uint64_t first = io->offset / f->ls, n = io->length / f->ls;

		for (uint64_t s = 0; s < n; s++) {
			struct centry *e = cache_find(f, first + s);

			if (e && e->dirty && e->seq == io->deadline_ns_) {
				e->dirty = false;
				f->ndirty--;
				f->nclean++;
			}
		}
	}
	if (f->wcache && io->op == MP_OP_CAW && result == 0) {
		uint64_t first = io->offset / f->ls, n = io->length / f->ls;

		/* keep any cached copy current */
		for (uint64_t s = 0; s < n; s++) {
			struct centry *e = cache_find(f, first + s);

			if (e)
				memcpy(e->data, (char *)io->iov[1].iov_base +
					s * f->ls, f->ls);
		}
	}
	if (f->wcache && io->op == MP_OP_DISCARD && result == 0) {
		uint64_t first = io->offset / f->ls, n = io->length / f->ls;

		for (uint64_t s = 0; s < n && (f->ndirty + f->nclean); s++) {
			struct centry *e = cache_find(f, first + s);

			if (e)
				memset(e->data, 0, f->ls);
		}
	}
	for (struct override **pp = &f->overrides; *pp; pp = &(*pp)->next) {
		if ((*pp)->io == io) {
			struct override *o = *pp;

			/* the I/O happened; say it did not */
			result = o->err;
			*pp = o->next;
			free(o);
			break;
		}
	}
	f->inflight--;
	pthread_mutex_unlock(&f->lock);
	mp_path_done(f->self, io, result);
}

/* ---- write-back ------------------------------------------------------------ */

static void wb_finish(struct fault *f, struct wb *wb);

static void sub_free(struct fsub *s)
{
	free(s->buf);
	free(s);
}

static void sub_done(struct mp_io *io)
{
	struct fsub *s = (struct fsub *)io;
	struct fault *f = io->priv;
	struct wb *wb = s->wb;

	switch (s->kind) {
	case SUB_TEAR: {
		struct mp_io *parent = s->parent;

		sub_free(s);
		pthread_mutex_lock(&f->lock);
		f->inflight--;
		pthread_mutex_unlock(&f->lock);
		mp_path_done(f->self, parent, -EIO);
		return;
	}
	case SUB_WB_WRITE:
		pthread_mutex_lock(&f->lock);
		if (io->result < 0 && !wb->err)
			wb->err = io->result;
		if (--wb->pending) {
			pthread_mutex_unlock(&f->lock);
			sub_free(s);
			return;
		}
		pthread_mutex_unlock(&f->lock);
		sub_free(s);
		if (wb->flush && !wb->err) {
			struct fsub *fl = calloc(1, sizeof(*fl));

			if (!fl) {
				wb->err = -ENOMEM;
				wb_finish(f, wb);
				return;
			}
			fl->kind = SUB_WB_FLUSH;
			fl->wb = wb;
			fl->io.op = MP_OP_FLUSH;
			fl->io.cb = sub_done;
			fl->io.priv = f;
			fl->io.lun_ = SUB_LUN;
			f->inner->ops->submit(f->inner, &fl->io);
			return;
		}
		wb_finish(f, wb);
		return;
	case SUB_WB_FLUSH:
		if (io->result < 0)
			wb->err = io->result;
		sub_free(s);
		wb_finish(f, wb);
		return;
	}
}

static struct fsub *sub_write(struct fault *f, uint64_t off, size_t len)
{
	struct fsub *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->buf = mp_alloc_aligned(4096, len);
	if (!s->buf) {
		free(s);
		return NULL;
	}
	s->iov.iov_base = s->buf;
	s->iov.iov_len = len;
	s->io.op = MP_OP_WRITE;
	s->io.offset = off;
	s->io.length = len;
	s->io.iov = &s->iov;
	s->io.iovcnt = 1;
	s->io.cb = sub_done;
	s->io.priv = f;
	s->io.lun_ = SUB_LUN;
	return s;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Write back the dirty sectors in [first, first+count) (count 0 = all), then
 * continue with parent.  Called without f->lock.
 */
static void writeback(struct fault *f, struct mp_io *parent, bool flush,
		      uint64_t first, uint64_t count)
{
	struct wb *wb = calloc(1, sizeof(*wb));
	struct fsub **subs = NULL;
	size_t nsubs = 0, cap;

	if (!wb)
		goto nomem;
	wb->parent = parent;
	wb->flush = flush;

	pthread_mutex_lock(&f->lock);
	cap = count ? count : f->ndirty;
	wb->sectors = calloc(cap + 1, sizeof(uint64_t));
	wb->seqs = calloc(cap + 1, sizeof(uint64_t));
	if (!wb->sectors || !wb->seqs) {
		pthread_mutex_unlock(&f->lock);
		goto nomem;
	}
	if (count) {
		for (uint64_t s = first; s < first + count; s++) {
			struct centry *e = cache_find(f, s);

			if (e && e->dirty)
				wb->sectors[wb->n++] = s;
		}
	} else {
		for (unsigned h = 0; h < HASH_SIZE; h++)
			for (struct centry *e = f->hash[h]; e; e = e->hnext)
				if (e->dirty)
					wb->sectors[wb->n++] = e->sector;
		qsort(wb->sectors, wb->n, sizeof(uint64_t), cmp_u64);
	}
	/* Coalesce runs of consecutive sectors into one inner write each,
	 * at most 1 MiB, copying the data while the lock holds it still. */
	subs = calloc(wb->n + 1, sizeof(*subs));
	if (!subs) {
		pthread_mutex_unlock(&f->lock);
		goto nomem;
	}
	for (size_t i = 0; i < wb->n;) {
		size_t j = i + 1, maxrun = (1u << 20) / f->ls;
		struct fsub *s;

		while (j < wb->n && wb->sectors[j] == wb->sectors[j - 1] + 1 &&
		       j - i < maxrun)
			j++;
		s = sub_write(f, wb->sectors[i] * f->ls, (j - i) * f->ls);
		if (!s) {
			pthread_mutex_unlock(&f->lock);
			goto nomem;
		}
		for (size_t k = i; k < j; k++) {
			struct centry *e = cache_find(f, wb->sectors[k]);

			memcpy((char *)s->buf + (k - i) * f->ls, e->data, f->ls);
			wb->seqs[k] = e->seq;
		}
		s->kind = SUB_WB_WRITE;
		s->wb = wb;
		subs[nsubs++] = s;
		i = j;
	}
	wb->pending = (unsigned)nsubs;
	pthread_mutex_unlock(&f->lock);

	if (nsubs == 0) {
		/* nothing dirty: go straight to the flush or the parent */
		wb->pending = 1;
		struct fsub *dummy = calloc(1, sizeof(*dummy));

		if (!dummy)
			goto nomem;
		dummy->kind = SUB_WB_WRITE;
		dummy->wb = wb;
		dummy->io.cb = sub_done;
		dummy->io.priv = f;
		dummy->io.lun_ = SUB_LUN;
		/* complete it from the timer thread, never inline */
		pthread_mutex_lock(&f->lock);
		complete_async(f, &dummy->io, 0);
		pthread_mutex_unlock(&f->lock);
	}
	for (size_t i = 0; i < nsubs; i++)
		f->inner->ops->submit(f->inner, &subs[i]->io);
	free(subs);
	return;

nomem:
	if (subs) {
		for (size_t i = 0; i < nsubs; i++)
			sub_free(subs[i]);
		free(subs);
	}
	if (wb) {
		free(wb->sectors);
		free(wb->seqs);
		free(wb);
	}
	pthread_mutex_lock(&f->lock);
	f->inflight--;   /* asynchronous completions are not in flight */
	complete_async(f, parent, -ENOMEM);
	pthread_mutex_unlock(&f->lock);
}

static void wb_finish(struct fault *f, struct wb *wb)
{
	struct mp_io *parent = wb->parent;
	int err = wb->err;

	pthread_mutex_lock(&f->lock);
	if (!err && wb->flush) {
		/* durable now: mark clean what was not rewritten meanwhile */
		for (size_t i = 0; i < wb->n; i++) {
			struct centry *e = cache_find(f, wb->sectors[i]);

			if (e && e->dirty && e->seq == wb->seqs[i]) {
				e->dirty = false;
				f->ndirty--;
				f->nclean++;
			}
		}
		cache_sweep(f);
	}
	pthread_mutex_unlock(&f->lock);
	free(wb->sectors);
	free(wb->seqs);
	free(wb);

	if (parent->op == MP_OP_CAW && !err) {
		/* dirty sectors under the CAW are on the inner LUN now */
		f->inner->ops->submit(f->inner, parent);
		return;
	}
	pthread_mutex_lock(&f->lock);
	f->inflight--;
	pthread_mutex_unlock(&f->lock);
	mp_path_done(f->self, parent, err);
}

/* ---- issuing --------------------------------------------------------------- */

/* Issue io (no rule fired, or its delay is over).  Called without the lock;
 * the io already counts in f->inflight. */
static void fault_issue(struct fault *f, struct mp_io *io)
{
	uint64_t first, n;

	pthread_mutex_lock(&f->lock);
	if (f->powered_off) {
		f->inflight--;
		complete_async(f, io, -MP_E_POWERCUT);
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if (!f->wcache) {
		pthread_mutex_unlock(&f->lock);
		f->inner->ops->submit(f->inner, io);
		return;
	}
	first = io->offset / f->ls;
	n = io->length / f->ls;
	switch (io->op) {
	case MP_OP_READ:
		f->reads_inflight++;
		pthread_mutex_unlock(&f->lock);
		f->inner->ops->submit(f->inner, io);
		return;
	case MP_OP_WRITE: {
		uint64_t seq = ++f->seq;
		void *sec = malloc(f->ls);
		bool ok = sec != NULL;

		for (uint64_t s = 0; ok && s < n; s++) {
			mp_iov_to_buf(sec, io->iov, io->iovcnt, s * f->ls, f->ls);
			ok = cache_put(f, first + s, sec, seq);
		}
		free(sec);
		f->st.cached_sectors = f->ndirty;
		if (!ok) {
			f->inflight--;
			complete_async(f, io, -ENOMEM);
			pthread_mutex_unlock(&f->lock);
			return;
		}
		if (io->flags & MP_IO_FUA) {
			io->deadline_ns_ = seq;  /* remembered for inner_done */
			pthread_mutex_unlock(&f->lock);
			f->inner->ops->submit(f->inner, io);
			return;
		}
		f->inflight--;
		complete_async(f, io, (int)io->length);
		pthread_mutex_unlock(&f->lock);
		return;
	}
	case MP_OP_FLUSH:
		pthread_mutex_unlock(&f->lock);
		writeback(f, io, true, 0, 0);
		return;
	case MP_OP_CAW:
		pthread_mutex_unlock(&f->lock);
		writeback(f, io, false, first, n);
		return;
	case MP_OP_DISCARD:
		/* dirty data in the range must not be written back later */
		for (uint64_t s = 0; s < n && f->ndirty; s++) {
			struct centry *e = cache_find(f, first + s);

			if (e && e->dirty) {
				memset(e->data, 0, f->ls);
				e->dirty = false;
				f->ndirty--;
				f->nclean++;
			}
		}
		pthread_mutex_unlock(&f->lock);
		f->inner->ops->submit(f->inner, io);
		return;
	default:
		pthread_mutex_unlock(&f->lock);
		f->inner->ops->submit(f->inner, io);
		return;
	}
}

static bool rule_matches(struct fault *f, struct frule *fr, struct mp_io *io)
{
	const struct mp_fault_rule *r = &fr->r;

	if (r->op != MP_FAULT_ANY_OP && r->op != io->op)
		return false;
	if (r->len) {
		uint64_t end = io->offset + (io->length ? io->length : 1);

		if (io->op == MP_OP_FLUSH || io->op == MP_OP_TUR)
			return false;
		if (end <= r->off || io->offset >= r->off + r->len)
			return false;
	}
	if (r->minlen && io->length < r->minlen)
		return false;
	fr->matches++;
	if (fr->matches <= r->after)
		return false;
	if (r->every > 1 && (fr->matches - r->after) % r->every)
		return false;
	if (r->count && fr->fired >= r->count)
		return false;
	if (r->prob > 0 && rng_unit(f) >= r->prob)
		return false;
	fr->fired++;
	f->st.fired++;
	return true;
}

static int power_cut_locked(struct fault *f, enum mp_powercut_mode m,
			    struct fsub ***keep, size_t *nkeep);

static void submit_keeps(struct fault *f, struct fsub **keep, size_t nkeep);

static void fault_submit(struct mp_path *p, struct mp_io *io)
{
	struct fault *f = p->priv;
	struct frule *fr;
	struct held *h;

	pthread_mutex_lock(&f->lock);
	if (f->powered_off) {
		complete_async(f, io, -MP_E_POWERCUT);
		goto unlock;
	}
	if (f->qslots && f->inflight >= f->qslots) {
		if (f->bw && f->qfull_ns) {
			uint64_t now = mp_now_ns();

			if (f->bw_next < now)
				f->bw_next = now;
			f->bw_next += f->qfull_ns;
		}
		complete_async(f, io, -MP_E_QFULL);
		goto unlock;
	}
	for (fr = f->rules; fr; fr = fr->next)
		if (rule_matches(f, fr, io))
			break;
	f->inflight++;
	if (!fr && f->bw && (io->op == MP_OP_READ || io->op == MP_OP_WRITE)) {
		/* One transfer at a time at bw bytes/s: issue when done. */
		uint64_t now = mp_now_ns();

		if (f->bw_next < now)
			f->bw_next = now;
		f->bw_next += io->length * 1000000000ull / f->bw;
		h = calloc(1, sizeof(*h));
		if (!h)
			abort();
		h->io = io;
		h->due_ns = f->bw_next;
		held_insert(f, h);
		goto unlock;
	}
	if (!fr) {
		pthread_mutex_unlock(&f->lock);
		fault_issue(f, io);
		return;
	}
	switch (fr->r.action) {
	case MP_FAULT_FAIL:
		f->inflight--;
		complete_async(f, io, fr->r.err ? -fr->r.err : -EIO);
		break;
	case MP_FAULT_BUSY:
	case MP_FAULT_QFULL:
		f->inflight--;
		complete_async(f, io, fr->r.action == MP_FAULT_BUSY ?
				      -MP_E_BUSY : -MP_E_QFULL);
		break;
	case MP_FAULT_DELAY:
	case MP_FAULT_HANG:
		h = calloc(1, sizeof(*h));
		if (!h)
			abort();
		h->io = io;
		h->due_ns = fr->r.action == MP_FAULT_HANG ? UINT64_MAX :
			    mp_now_ns() + fr->r.ms * 1000000ull;
		held_insert(f, h);
		break;
	case MP_FAULT_DROP:
		f->inflight--;
		complete_async(f, io, io->op == MP_OP_READ || io->op == MP_OP_WRITE ?
				      (int)io->length : 0);
		break;
	case MP_FAULT_TEAR: {
		uint64_t keep = fr->r.keep - fr->r.keep % f->ls;
		struct fsub *s;

		if (io->op != MP_OP_WRITE || keep == 0 || keep >= io->length) {
			/* nothing to tear: the write is simply lost */
			f->inflight--;
			complete_async(f, io, -EIO);
			break;
		}
		s = sub_write(f, io->offset, keep);
		if (!s) {
			f->inflight--;
			complete_async(f, io, -ENOMEM);
			break;
		}
		mp_iov_to_buf(s->buf, io->iov, io->iovcnt, 0, keep);
		s->kind = SUB_TEAR;
		s->parent = io;
		pthread_mutex_unlock(&f->lock);
		f->inner->ops->submit(f->inner, &s->io);
		return;
	}
	case MP_FAULT_FAIL_AFTER: {
		struct override *o = calloc(1, sizeof(*o));

		if (!o)
			abort();
		o->io = io;
		o->err = fr->r.err ? -fr->r.err : -ETIMEDOUT;
		o->next = f->overrides;
		f->overrides = o;
		pthread_mutex_unlock(&f->lock);
		fault_issue(f, io);
		return;
	}
	case MP_FAULT_POWERCUT: {
		struct fsub **keep = NULL;
		size_t nkeep = 0;

		f->inflight--;
		power_cut_locked(f, MP_POWERCUT_LOSE_ALL, &keep, &nkeep);
		complete_async(f, io, -MP_E_POWERCUT);
		pthread_mutex_unlock(&f->lock);
		submit_keeps(f, keep, nkeep);
		return;
	}
	}
unlock:
	pthread_mutex_unlock(&f->lock);
}

/* ---- power cut ------------------------------------------------------------- */

/*
 * With f->lock held: lose the dirty cache (all, or a random half of the
 * sectors, whose writes are returned in *keep to be issued after unlocking),
 * fail held I/O, and refuse everything from now on.
 */
static int power_cut_locked(struct fault *f, enum mp_powercut_mode m,
			    struct fsub ***keep, size_t *nkeep)
{
	size_t n = 0;
	struct fsub **k = NULL;

	f->powered_off = true;
	*keep = NULL;
	*nkeep = 0;
	if (f->wcache && m == MP_POWERCUT_RANDOM && f->ndirty) {
		k = calloc(f->ndirty, sizeof(*k));
		for (unsigned h = 0; k && h < HASH_SIZE; h++) {
			for (struct centry *e = f->hash[h]; e; e = e->hnext) {
				struct fsub *s;

				if (!e->dirty || (rng_next(f) & 1))
					continue;
				s = sub_write(f, e->sector * f->ls, f->ls);
				if (!s)
					continue;
				memcpy(s->buf, e->data, f->ls);
				s->kind = SUB_TEAR;   /* completion: see submit_keeps */
				k[n++] = s;
			}
		}
	}
	f->st.lost_sectors = f->ndirty - n;
	cache_free_all(f);
	f->st.cached_sectors = 0;
	/* held I/O fails at once */
	for (struct held *h = f->held; h; h = h->next) {
		if (!h->complete) {
			h->complete = true;
			h->result = -MP_E_POWERCUT;
			f->inflight--;
		}
		h->due_ns = 0;
	}
	pthread_cond_signal(&f->tcond);
	*keep = k;
	*nkeep = n;
	return 0;
}

/* Surviving sectors of a random power cut: written synchronously so they
 * are on the inner LUN before mp_fault_power_cut returns. */
struct keep_wait {
	pthread_mutex_t m;
	pthread_cond_t c;
	unsigned left;
};

static void keep_done(struct mp_io *io)
{
	struct keep_wait *kw = io->arg;

	pthread_mutex_lock(&kw->m);
	kw->left--;
	pthread_cond_signal(&kw->c);
	pthread_mutex_unlock(&kw->m);
}

static void submit_keeps(struct fault *f, struct fsub **keep, size_t nkeep)
{
	struct keep_wait kw = { .left = (unsigned)nkeep };

	if (!keep)
		return;
	pthread_mutex_init(&kw.m, NULL);
	pthread_cond_init(&kw.c, NULL);
	for (size_t i = 0; i < nkeep; i++) {
		keep[i]->io.cb = keep_done;
		keep[i]->io.arg = &kw;
		f->inner->ops->submit(f->inner, &keep[i]->io);
	}
	pthread_mutex_lock(&kw.m);
	while (kw.left)
		pthread_cond_wait(&kw.c, &kw.m);
	pthread_mutex_unlock(&kw.m);
	for (size_t i = 0; i < nkeep; i++)
		sub_free(keep[i]);
	free(keep);
	pthread_cond_destroy(&kw.c);
	pthread_mutex_destroy(&kw.m);
}

static int fault_power_cut(struct mp_path *p, enum mp_powercut_mode m)
{
	struct fault *f = p->priv;
	struct fsub **keep;
	size_t nkeep;

	pthread_mutex_lock(&f->lock);
	power_cut_locked(f, m, &keep, &nkeep);
	pthread_mutex_unlock(&f->lock);
	submit_keeps(f, keep, nkeep);
	return 0;
}

/* ---- control --------------------------------------------------------------- */

static int fault_add(struct mp_path *p, const struct mp_fault_rule *r)
{
	struct fault *f = p->priv;
	struct frule *fr, **pp;
	int id = 0;

	if (r->action < MP_FAULT_FAIL || r->action > MP_FAULT_FAIL_AFTER ||
	    r->op < 0 || r->op >= MP_OP_END || r->prob < 0 || r->prob > 1)
		return -EINVAL;
	fr = calloc(1, sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	fr->r = *r;
	pthread_mutex_lock(&f->lock);
	for (pp = &f->rules; *pp; pp = &(*pp)->next)
		id++;
	*pp = fr;
	pthread_mutex_unlock(&f->lock);
	return id;
}

static int fault_clear(struct mp_path *p)
{
	struct fault *f = p->priv;

	pthread_mutex_lock(&f->lock);
	while (f->rules) {
		struct frule *fr = f->rules;

		f->rules = fr->next;
		free(fr);
	}
	/* release held I/O: it is issued now, in order */
	for (struct held *h = f->held; h; h = h->next)
		h->due_ns = 0;
	pthread_cond_signal(&f->tcond);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fault_stats(struct mp_path *p, struct mp_fault_stats *st)
{
	struct fault *f = p->priv;

	pthread_mutex_lock(&f->lock);
	*st = f->st;
	st->cached_sectors = f->ndirty;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* ---- spec parsing ---------------------------------------------------------- */

static const char *const op_names[MP_OP_END] = {
	[MP_FAULT_ANY_OP] = "any", [MP_OP_READ] = "read",
	[MP_OP_WRITE] = "write", [MP_OP_FLUSH] = "flush",
	[MP_OP_DISCARD] = "discard", [MP_OP_CAW] = "caw",
	[MP_OP_RESERVE] = "reserve", [MP_OP_RELEASE] = "release",
	[MP_OP_PR_OUT] = "prout", [MP_OP_PR_IN] = "prin", [MP_OP_TUR] = "tur",
};

static const char *const act_names[] = {
	[MP_FAULT_FAIL] = "fail", [MP_FAULT_DELAY] = "delay",
	[MP_FAULT_HANG] = "hang", [MP_FAULT_BUSY] = "busy",
	[MP_FAULT_QFULL] = "qfull", [MP_FAULT_TEAR] = "tear",
	[MP_FAULT_DROP] = "drop", [MP_FAULT_POWERCUT] = "powercut",
	[MP_FAULT_FAIL_AFTER] = "failafter",
};

static int lookup(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], s))
			return i;
	return -1;
}

static int parse_err(const char *s)
{
	static const struct { const char *n; int e; } names[] = {
		{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "ETIMEDOUT", ETIMEDOUT },
		{ "EAGAIN", EAGAIN }, { "ENXIO", ENXIO },
		{ "MEDIUM", MP_E_MEDIUM }, { "PDL", MP_E_PDL },
		{ "RESCONFLICT", MP_E_RESCONFLICT },
		{ "TRANSPORT", MP_E_TRANSPORT }, { "MISCOMPARE", MP_E_MISCOMPARE },
		{ "BUSY", MP_E_BUSY }, { "QFULL", MP_E_QFULL },
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i].n, s))
			return names[i].e;
	if (mp_parse_size(s, &v) || v == 0 || v >= MP_E_END)
		return -1;
	return (int)v;
}

static int parse_rule(char *item, struct mp_fault_rule *r)
{
	char *save = NULL, *tok;
	int i = 0;

	memset(r, 0, sizeof(*r));
	for (tok = strtok_r(item, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save), i++) {
		char *eq = strchr(tok, '=');
		uint64_t v;
		int x;

		if (i == 0) {
			x = lookup(op_names, MP_OP_END, tok);
			if (x < 0)
				return -1;
			r->op = (enum mp_op)x;
			continue;
		}
		if (i == 1) {
			x = lookup(act_names, MP_FAULT_FAIL_AFTER + 1, tok);
			if (x < 1)
				return -1;
			r->action = (enum mp_fault_action)x;
			continue;
		}
		if (!eq)
			return -1;
		*eq++ = 0;
		if (!strcmp(tok, "prob")) {
			char *end;

			r->prob = strtod(eq, &end);
			if (*end || r->prob < 0 || r->prob > 1)
				return -1;
			continue;
		}
		if (!strcmp(tok, "err")) {
			r->err = parse_err(eq);
			if (r->err < 0)
				return -1;
			continue;
		}
		if (mp_parse_size(eq, &v))
			return -1;
		if (!strcmp(tok, "off"))
			r->off = v;
		else if (!strcmp(tok, "len"))
			r->len = v;
		else if (!strcmp(tok, "after"))
			r->after = (unsigned)v;
		else if (!strcmp(tok, "every"))
			r->every = (unsigned)v;
		else if (!strcmp(tok, "count"))
			r->count = (unsigned)v;
		else if (!strcmp(tok, "ms"))
			r->ms = (unsigned)v;
		else if (!strcmp(tok, "keep"))
			r->keep = v;
		else if (!strcmp(tok, "minlen"))
			r->minlen = v;
		else
			return -1;
	}
	return i >= 2 ? 0 : -1;
}

/* Split "fault:OPTS:INNER" and apply OPTS to f (rules are added later). */
static int parse_spec(struct fault *f, const char *spec, char **inner,
		      struct mp_fault_rule **rules, unsigned *nrules)
{
	const char *o = spec + 6, *colon = strchr(o, ':');
	char *opts, *save = NULL, *item;
	int ret = 0;

	*rules = NULL;
	*nrules = 0;
	if (!colon || !colon[1]) {
		mp_log("fault spec '%s': expected fault:OPTIONS:INNER-SPEC", spec);
		return -MP_E_SPEC;
	}
	*inner = strdup(colon + 1);
	opts = strndup(o, (size_t)(colon - o));
	if (!*inner || !opts) {
		ret = -ENOMEM;
		goto out;
	}
	for (item = strtok_r(opts, ";", &save); item;
	     item = strtok_r(NULL, ";", &save)) {
		uint64_t v;

		if (!strcmp(item, "wcache")) {
			f->wcache = true;
		} else if (!strncmp(item, "seed=", 5)) {
			if (mp_parse_size(item + 5, &v))
				goto bad;
			f->rng = v ? v : 1;
		} else if (!strncmp(item, "qfull_us=", 9)) {
			if (mp_parse_size(item + 9, &v))
				goto bad;
			f->qfull_ns = v * 1000;
		} else if (!strncmp(item, "bw=", 3)) {
			if (mp_parse_size(item + 3, &v) || v == 0)
				goto bad;
			f->bw = v;
		} else if (!strncmp(item, "qslots=", 7)) {
			if (mp_parse_size(item + 7, &v) || v == 0 || v > 65536)
				goto bad;
			f->qslots = (unsigned)v;
		} else {
			struct mp_fault_rule *nr;
			char *copy = strdup(item);

			nr = realloc(*rules, (*nrules + 1) * sizeof(**rules));
			if (!copy || !nr) {
				free(copy);
				ret = -ENOMEM;
				goto out;
			}
			*rules = nr;
			if (parse_rule(copy, &nr[*nrules])) {
				free(copy);
				goto bad;
			}
			free(copy);
			(*nrules)++;
		}
		continue;
bad:
		mp_log("fault spec: bad option '%s' in '%s'", item, spec);
		ret = -MP_E_SPEC;
		goto out;
	}
out:
	free(opts);
	if (ret) {
		free(*inner);
		*inner = NULL;
		free(*rules);
		*rules = NULL;
	}
	return ret;
}

/* ---- open / close ---------------------------------------------------------- */

static int fault_open(struct mp_path *p, const char *spec,
		      const struct mp_open_opts *o)
{
	struct mp_fault_rule *rules = NULL;
	unsigned nrules = 0;
	struct fault *f;
	char *inner = NULL;
	int ret;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->self = p;
	f->rng = 0x9E3779B97F4A7C15ull;
	ret = parse_spec(f, spec, &inner, &rules, &nrules);
	if (ret)
		goto free_f;
	ret = mp_path_open(inner, o, inner_done, f, &f->inner);
	if (ret)
		goto free_spec;
	f->ls = f->inner->info.logical_sector;
	if (f->wcache) {
		f->hash = calloc(HASH_SIZE, sizeof(*f->hash));
		if (!f->hash) {
			ret = -ENOMEM;
			goto close_inner;
		}
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->tcond, NULL);
	p->priv = f;
	for (unsigned i = 0; i < nrules; i++) {
		ret = fault_add(p, &rules[i]);
		if (ret < 0)
			goto destroy;
	}
	ret = -pthread_create(&f->timer, NULL, timer_main, f);
	if (ret)
		goto destroy;
	p->info = f->inner->info;
	p->info.caps |= MP_CAP_FAULT;
	p->mem_align = f->inner->mem_align;
	p->max_inflight = f->inner->max_inflight;
	free(rules);
	free(inner);
	return 0;

destroy:
	while (f->rules) {
		struct frule *fr = f->rules;

		f->rules = fr->next;
		free(fr);
	}
	pthread_cond_destroy(&f->tcond);
	pthread_mutex_destroy(&f->lock);
	free(f->hash);
close_inner:
	mp_path_close(f->inner);
free_spec:
	free(rules);
	free(inner);
free_f:
	free(f);
	p->priv = NULL;
	return ret;
}

static void fault_close(struct mp_path *p)
{
	struct fault *f = p->priv;

	pthread_mutex_lock(&f->lock);
	f->tstop = true;
	pthread_cond_signal(&f->tcond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->timer, NULL);
	mp_path_close(f->inner);
	while (f->rules) {
		struct frule *fr = f->rules;

		f->rules = fr->next;
		free(fr);
	}
	cache_free_all(f);
	free(f->hash);
	pthread_cond_destroy(&f->tcond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

const struct mp_backend_ops mp_fault_ops = {
	.name = "fault",
	.open = fault_open,
	.close = fault_close,
	.submit = fault_submit,
	.fault_add = fault_add,
	.fault_clear = fault_clear,
	.power_cut = fault_power_cut,
	.fault_stats = fault_stats,
};
