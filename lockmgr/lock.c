/*
 * lock.c - lock records: acquire, release, convert, and breaking the holds
 * of dead hosts after recovering them.
 *
 * Invariants:
 *  - a record changes only by compare-and-write of the whole sector, and
 *    every change bumps its version;
 *  - a hold (slot, gen) of a live host is never removed by another host;
 *  - a dead host's hold is removed only after its slot went through
 *    "being recovered" (recovery callback run) to free, so whatever it was
 *    doing under the lock has been replayed first;
 *  - we act on a hold only while our own slot generation is the one the
 *    hold carries (lk_check).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockmgr/lk_int.h"

/* ---- liveness --------------------------------------------------------------- */

/* Re-read one slot into the monitor table (when the table is behind). */
static void refresh_slot(lk_volume *v, uint32_t slot)
{
	unsigned char *buf = lk_buf(v);
	uint64_t now;

	if (!buf)
		return;
	if (lk_read(v, lk_slot_off(v, slot), buf, v->ss, MP_IO_FENCE_BYPASS) == 0) {
		struct seen *se = &v->seen[slot];
		unsigned char *old = v->seen_raw + (size_t)slot * v->ss;

		now = lk_now_ns();
		pthread_mutex_lock(&v->lock);
		if (!se->ever || memcmp(old, buf, v->ss)) {
			memcpy(old, buf, v->ss);
			se->ever = true;
			se->last_change_ns = now;
			se->valid = lk_slot_in(buf, &se->s) == 0 &&
				    se->s.index == slot;
		}
		pthread_mutex_unlock(&v->lock);
	}
	free(buf);
}

static int status_locked(lk_volume *v, uint32_t slot, uint64_t gen)
{
	struct seen *se = &v->seen[slot];

	if (!se->valid)
		return LK_HOST_LIVE;    /* unreadable slot: assume the worst */
	if (se->s.gen < gen)
		return -EAGAIN;         /* the table is older than the lock */
	if (se->s.gen == gen) {
		if (se->s.state != LK_SLOT_LIVE)
			return LK_HOST_LIVE;  /* cannot happen; be safe */
		if (slot == v->slot && gen == v->gen && v->joined)
			return LK_HOST_LIVE;  /* ourselves */
		/* the host's own dead timeout: it fences itself by it */
		if (lk_now_ns() - se->last_change_ns >=
		    (uint64_t)(se->s.dead_ms ? se->s.dead_ms : v->hdr.dead_ms) *
		    1000000)
			return LK_HOST_DEAD;
		return LK_HOST_LIVE;
	}
	if (se->s.gen == gen + 1 && se->s.state == LK_SLOT_RECOVERING)
		return LK_HOST_RECOVERING;
	return LK_HOST_STALE;
}

int lk_host_status(lk_volume *v, uint32_t slot, uint64_t gen)
{
	int st;

	if (slot >= v->hdr.slots)
		return LK_HOST_STALE;
	pthread_mutex_lock(&v->lock);
	st = status_locked(v, slot, gen);
	pthread_mutex_unlock(&v->lock);
	if (st == -EAGAIN) {
		refresh_slot(v, slot);
		pthread_mutex_lock(&v->lock);
		st = status_locked(v, slot, gen);
		pthread_mutex_unlock(&v->lock);
		if (st == -EAGAIN)
			st = LK_HOST_LIVE;  /* inconsistent: assume the worst */
	}
	return st;
}

/* ---- recovery ---------------------------------------------------------------- */

static int run_recovery(lk_volume *v, uint32_t slot, const unsigned char *rec_raw)
{
	struct lk_dead_host dh;
	struct lk_slot s;
	unsigned char *nw = lk_buf(v), *cur = lk_buf(v);
	int ret;

	if (!nw || !cur) {
		ret = -ENOMEM;
		goto out;
	}
	lk_slot_in(rec_raw, &s);
	memset(&dh, 0, sizeof(dh));
	dh.slot = slot;
	dh.gen = s.gen - 1;
	memcpy(dh.uuid, s.host_uuid, 16);
	snprintf(dh.name, sizeof(dh.name), "%s", s.host_name);
	dh.journal_off = s.journal_off;
	dh.journal_len = s.journal_len;
	memcpy(dh.data, s.data, sizeof(dh.data));
	lk_log(v, "recovering dead host '%s' (slot %u generation %llu)",
	       dh.name, slot, (unsigned long long)dh.gen);
	if (v->opts.recover) {
		ret = v->opts.recover(v->opts.recover_arg, &dh);
		if (ret) {
			lk_log(v, "recovery of '%s' failed: %s", dh.name,
			       lk_strerror(ret));
			ret = -LK_E_RECOVERY;
			goto out;
		}
	}
	s.state = LK_SLOT_FREE;
	s.gen++;
	s.wall_ns = lk_wall_ns();
	lk_slot_out(&s, nw, v->ss);
	ret = lk_caw(v, lk_slot_off(v, slot), rec_raw, nw, cur, MP_IO_FENCE_BYPASS);
	if (ret == -MP_E_MISCOMPARE)
		ret = -EAGAIN;  /* someone took the recovery over from us */
	if (!ret)
		lk_log(v, "host '%s' recovered, slot %u free (generation %llu)",
		       dh.name, slot, (unsigned long long)s.gen);
	refresh_slot(v, slot);
out:
	free(nw);
	free(cur);
	return ret;
}

/*
 * Make sure holder (slot, gen) is recovered.  0 when its hold may be removed
 * (recovered now or earlier), -EAGAIN when that cannot be decided yet (alive
 * after all, or recovery running on a live host), other errors as such.
 */
static int recover_host(lk_volume *v, uint32_t slot, uint64_t gen)
{
	unsigned char *raw = lk_buf(v), *nw = lk_buf(v), *cur = lk_buf(v);
	int ret;

	if (!raw || !nw || !cur) {
		ret = -ENOMEM;
		goto out;
	}
	if (__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE)) {
		ret = -LK_E_FENCED;     /* we are about to be recovered too */
		goto out;
	}
	for (int tries = 0; tries < 8; tries++) {
		struct lk_slot s;
		bool takeover = false;

		ret = lk_read(v, lk_slot_off(v, slot), raw, v->ss,
			      MP_IO_FENCE_BYPASS);
		if (ret)
			goto out;
		ret = lk_slot_in(raw, &s);
		if (ret)
			goto out;
		if (s.gen >= gen + 2 || (s.gen == gen + 1 && s.state == LK_SLOT_FREE)) {
			ret = 0;     /* already recovered, or left */
			goto out;
		}
		if (s.gen == gen && s.state == LK_SLOT_LIVE) {
			/* Dead only if it still shows exactly what the monitor
			 * watched stand still for the dead timeout. */
			pthread_mutex_lock(&v->lock);
			bool same = !memcmp(raw, v->seen_raw + (size_t)slot * v->ss,
					    v->ss);
			int st = status_locked(v, slot, gen);
			pthread_mutex_unlock(&v->lock);

			if (!same || st != LK_HOST_DEAD) {
				ret = -EAGAIN;
				goto out;
			}
		} else if (s.gen == gen + 1 && s.state == LK_SLOT_RECOVERING) {
			int rst;

			if (s.rec_slot == v->slot && s.rec_gen == v->gen) {
				ret = -EAGAIN;  /* another thread of ours */
				goto out;
			}
			rst = lk_host_status(v, s.rec_slot, s.rec_gen);
			if (rst == LK_HOST_LIVE || rst == LK_HOST_RECOVERING) {
				ret = -EAGAIN;
				goto out;
			}
			takeover = true;  /* the recoverer died too */
		} else {
			ret = -EAGAIN;    /* the table is behind: look again */
			goto out;
		}
		if (!takeover) {
			s.state = LK_SLOT_RECOVERING;
			s.gen++;
		}
		memcpy(s.rec_uuid, v->opts.host_uuid, 16);
		s.rec_slot = v->slot;
		s.rec_gen = v->gen;
		s.wall_ns = lk_wall_ns();
		lk_slot_out(&s, nw, v->ss);
		ret = lk_caw(v, lk_slot_off(v, slot), raw, nw, cur,
			     MP_IO_FENCE_BYPASS);
		if (ret == -MP_E_MISCOMPARE)
			continue;   /* it beat, or another breaker won: re-check */
		if (ret)
			goto out;
		/* We alone own the recovery of this host now. */
		ret = run_recovery(v, slot, nw);
		goto out;
	}
	ret = -EAGAIN;
out:
	free(raw);
	free(nw);
	free(cur);
	return ret;
}

/* ---- handles ---------------------------------------------------------------- */

int lk_lock_open(lk_volume *v, uint64_t off, lk_lock **out)
{
	return lk_lock_open_on(v, v->lun, off, out);
}

int lk_lock_open_on(lk_volume *v, mp_lun *lun, uint64_t off, lk_lock **out)
{
	struct mp_lun_info in;
	lk_lock *l;

	mp_lun_get_info(lun, &in);
	if (off % in.logical_sector)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->v = v;
	l->lun = lun;
	l->ss = in.logical_sector;
	l->method = v->joined ? lk_method_for(v, lun) : LK_METHOD_AUTO;
	l->off = off;
	l->epoch = __atomic_load_n(&v->lost_epoch, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&v->lock);
	l->next = v->locks;
	if (l->next)
		l->next->pprev = &l->next;
	l->pprev = &v->locks;
	v->locks = l;
	pthread_mutex_unlock(&v->lock);
	*out = l;
	return 0;
}

static int read_rec(lk_lock *l, unsigned char *raw, struct lk_lockrec *r);
static void catch_up(lk_lock *l);
static int find_holder(const struct lk_lockrec *r, uint32_t slot, uint64_t gen);

/*
 * An acquire that failed after marking us as the waiter may have left the
 * mark, or a holder may have handed the lock over to us by it since: take
 * the mark away, or release the hold nobody here knows of.  Best effort
 * (the handle is being closed).
 */
static void settle_mark(lk_lock *l)
{
	unsigned char *raw = lk_buf_n(l->ss), *nw = lk_buf_n(l->ss);
	unsigned char *cur = lk_buf_n(l->ss);
	struct lk_lockrec r;

	l->mark_left = false;
	if (!raw || !nw || !cur || read_rec(l, raw, &r))
		goto out;
	if (find_holder(&r, l->mark_slot, l->mark_gen) >= 0) {
		l->held = (enum lk_mode)r.mode;
		l->held_slot = l->mark_slot;
		l->held_gen = l->mark_gen;
		l->img_ok = false;
		lk_release(l);
	} else if (r.waiter_mode != LK_FREE && r.waiter.slot == l->mark_slot &&
		   r.waiter.gen == l->mark_gen) {
		r.waiter_mode = LK_FREE;
		memset(&r.waiter, 0, sizeof(r.waiter));
		lk_lockrec_out(&r, nw, l->ss);
		if (l->method == LK_METHOD_AUTO)
			l->method = lk_method_for(l->v, l->lun);
		lk_caw_on(l->v, l->lun, l->method, l->ss, l->off, raw, nw, cur, 0);
	}
out:
	free(raw);
	free(nw);
	free(cur);
}

static void lock_close(lk_lock *l, bool release)
{
	lk_volume *v;

	if (!l)
		return;
	catch_up(l);
	v = l->v;
	if (release && l->held == LK_FREE && l->mark_left)
		settle_mark(l);
	if (release && l->held != LK_FREE)
		lk_release(l);
	pthread_mutex_lock(&v->lock);
	*l->pprev = l->next;
	if (l->next)
		l->next->pprev = l->pprev;
	pthread_mutex_unlock(&v->lock);
	free(l->img);
	free(l);
}

void lk_lock_close(lk_lock *l)
{
	lock_close(l, true);
}

void lk_lock_close_keep(lk_lock *l)
{
	lock_close(l, false);
}

/*
 * Every hold is lost (the heartbeat thread, or leaving after giving up):
 * a handle's fields are its user's (one thread at a time), so each
 * forgets its hold itself at its next call (catch_up), not here.
 */
void lk_locks_lost(lk_volume *v)
{
	__atomic_add_fetch(&v->lost_epoch, 1, __ATOMIC_ACQ_REL);
}

/* At the start of every call on a handle: a loss since its last call. */
static void catch_up(lk_lock *l)
{
	uint64_t e = __atomic_load_n(&l->v->lost_epoch, __ATOMIC_ACQUIRE);

	if (e == l->epoch)
		return;
	l->epoch = e;
	l->held = LK_FREE;
	l->released_version = 0;
	l->img_ok = false;
	l->cache_valid = false;
}

int lk_release_all(lk_volume *v)
{
	int ret = 0;

	for (;;) {
		lk_lock *l = NULL;
		int r;

		pthread_mutex_lock(&v->lock);
		for (lk_lock *p = v->locks; p; p = p->next) {
			catch_up(p);        /* leaving: no user of it now */
			if (p->held != LK_FREE) {
				l = p;
				break;
			}
		}
		pthread_mutex_unlock(&v->lock);
		if (!l)
			break;
		r = lk_release(l);
		if (r && !ret)
			ret = r;
		l->held = LK_FREE;   /* do not try it again */
	}
	return ret;
}

enum lk_mode lk_held_mode(lk_lock *l)
{
	catch_up(l);
	return l->held;
}

uint64_t lk_lock_version(lk_lock *l)
{
	catch_up(l);
	return l->held != LK_FREE ? l->version : 0;
}

uint64_t lk_lock_offset(lk_lock *l)
{
	return l->off;
}

bool lk_cache_valid(lk_lock *l)
{
	catch_up(l);
	return l->held != LK_FREE && l->cache_valid;
}

bool lk_waited(lk_lock *l)
{
	catch_up(l);
	return l->held != LK_FREE && l->waited;
}

bool lk_release_wanted(lk_lock *l)
{
	catch_up(l);
	return l->held == LK_FREE && l->wanted;
}

uint64_t lk_released_version(lk_lock *l)
{
	catch_up(l);
	return l->held == LK_FREE ? l->released_version : 0;
}

int lk_check(lk_lock *l)
{
	int ret = lk_state(l->v);

	catch_up(l);
	if (ret)
		return ret;
	if (l->held == LK_FREE)
		return -LK_E_NOTHELD;
	if (l->held_gen != l->v->gen || l->held_slot != l->v->slot)
		return -LK_E_LOST;
	return 0;
}

/* ---- record I/O ------------------------------------------------------------- */

static int read_rec(lk_lock *l, unsigned char *raw, struct lk_lockrec *r)
{
	int ret = lk_read_on(l->lun, l->off, raw, l->ss, 0);

	if (ret)
		return ret;
	ret = lk_lockrec_in(raw, r);
	if (ret) {
		lk_log(l->v, "lock record at %llu: %s",
		       (unsigned long long)l->off, lk_strerror(ret));
		return ret;
	}
	if (r->self_off != l->off) {
		lk_log(l->v, "lock record at %llu says it lives at %llu",
		       (unsigned long long)l->off,
		       (unsigned long long)r->self_off);
		return -LK_E_CORRUPT;
	}
	return 0;
}

int lk_lock_wanted(lk_lock *l)
{
	unsigned char *raw = lk_buf_n(l->ss);
	struct lk_lockrec r;
	int ret;

	catch_up(l);
	if (!raw)
		return -ENOMEM;
	ret = read_rec(l, raw, &r);
	if (!ret)
		ret = r.waiter_mode != LK_FREE &&
		      !(r.waiter.slot == l->held_slot &&
			r.waiter.gen == l->held_gen) &&
		      lk_host_status(l->v, r.waiter.slot, r.waiter.gen) ==
			      LK_HOST_LIVE;
	free(raw);
	return ret;
}

/*
 * Where the record judged next comes from: a read of the sector, the image
 * our last compare-and-write left (unverified: only ever used as the
 * compare data of a compare-and-write, or read again), or the current
 * contents a failed compare-and-write handed back (as good as a read).
 */
enum rec_src { REC_READ, REC_IMAGE, REC_CURRENT };

static enum rec_src take_img(lk_lock *l, unsigned char *raw)
{
	if (!l->img_ok)
		return REC_READ;
	memcpy(raw, l->img, l->ss);
	return REC_IMAGE;
}

static void keep_img(lk_lock *l, const unsigned char *nw)
{
	if (!l->img)
		l->img = malloc(l->ss);
	if (l->img)
		memcpy(l->img, nw, l->ss);
	l->img_ok = l->img != NULL;
}

/* A compare-and-write failed: cur holds what is there now. */
static enum rec_src caw_lost(lk_lock *l, unsigned char *raw,
			     const unsigned char *cur)
{
	l->img_ok = false;
	memcpy(raw, cur, l->ss);
	return REC_CURRENT;
}

/* The record to judge into raw/r: read it unless *src says raw holds one. */
static int get_rec(lk_lock *l, unsigned char *raw, struct lk_lockrec *r,
		   enum rec_src *src)
{
	int ret;

	if (*src != REC_READ) {
		ret = lk_lockrec_in(raw, r);
		if (!ret && r->self_off == l->off)
			return 0;
		*src = REC_READ;   /* not a record of this lock: read it */
	}
	return read_rec(l, raw, r);
}

static int find_holder(const struct lk_lockrec *r, uint32_t slot, uint64_t gen)
{
	for (uint32_t i = 0; i < r->nholders; i++)
		if (r->holders[i].slot == slot && r->holders[i].gen == gen)
			return (int)i;
	return -1;
}

static void remove_holder(struct lk_lockrec *r, uint32_t i)
{
	memmove(&r->holders[i], &r->holders[i + 1],
		(r->nholders - i - 1) * sizeof(r->holders[0]));
	r->nholders--;
	if (r->nholders == 0)
		r->mode = LK_FREE;
}

/* This host's identity in holder lists: its slot and generation now. */
static void self_id(lk_volume *v, uint32_t *slot, uint64_t *gen)
{
	pthread_mutex_lock(&v->lock);
	*slot = v->slot;
	*gen = v->gen;
	pthread_mutex_unlock(&v->lock);
}

static unsigned poll_ms(lk_volume *v)
{
	unsigned ms = v->hdr.interval_ms / 4;

	return ms > 250 ? 250 : ms < 10 ? 10 : ms;
}

/* A waiter's pause before its nth look at a busy record: 2 ms doubling up
 * to poll_ms.  Most holds are short (a directory kept for a few ms after
 * its last use, a cluster for one transaction) and a release hands the
 * lock to the marked waiter, so the first looks find it ours soon; a long
 * hold costs a handful of extra reads before the steady rate. */
static unsigned wait_ms(lk_volume *v, unsigned n)
{
	unsigned ms = n < 8 ? 2u << n : ~0u, cap = poll_ms(v);

	return ms < cap ? ms : cap;
}

/*
 * Bring the record to "we hold it in mode" (acquire and convert).  Other
 * holders must be compatible: none for exclusive, the same shared mode
 * otherwise; dead and stale ones are removed on the way.
 */
static int change(lk_lock *l, enum lk_mode mode, unsigned timeout_ms)
{
	lk_volume *v = l->v;
	unsigned char *raw = lk_buf_n(l->ss), *nw = lk_buf_n(l->ss);
	unsigned char *cur = lk_buf_n(l->ss);
	uint64_t deadline = lk_now_ns() + (uint64_t)timeout_ms * 1000000;
	enum rec_src src;
	bool waited = false, marked = false;
	unsigned naps = 0;
	uint32_t myslot = 0;
	uint64_t mygen = 0;
	int ret;

	if (!raw || !nw || !cur) {
		ret = -ENOMEM;
		goto out;
	}
	src = take_img(l, raw);
	for (;;) {
		struct lk_lockrec r, n;
		bool blocked = false, recovering = false;
		int me;

		ret = lk_state(v);
		if (ret)
			goto out;
		self_id(v, &myslot, &mygen);

		ret = get_rec(l, raw, &r, &src);
		if (ret)
			goto out;
		if (src == REC_IMAGE && r.nholders) {
			/* held by someone as we last saw it: judge what is
			 * there now, not a memory */
			src = REC_READ;
			continue;
		}
		n = r;
		me = find_holder(&n, myslot, mygen);
		if (me >= 0)
			remove_holder(&n, (uint32_t)me);
		if (me >= 0 && r.mode == (uint32_t)mode) {
			/* already held so: ours from before, or handed over
			 * to us as the waiter while we polled */
			ret = 0;
			if (waited) {
				keep_img(l, raw);   /* read, or handed back */
				l->cache_valid = false;
			}
			l->waited = waited;
			l->version = r.version;
			l->held = mode;
			l->held_slot = myslot;
			l->held_gen = mygen;
			goto out;
		}
		/* A try for a shared hold (timeout 0) does not join holders
		 * that another live host is marked waiting behind: that host
		 * waits for them to go, and a stream of such tries (a host
		 * keeping the directories it reads, fs/keep.c) would keep it
		 * waiting.  A blocking acquire joins (it would wait anyway,
		 * and a shared hold taken to read is short). */
		if (timeout_ms == 0 && mode == LK_SHARED && n.nholders &&
		    r.waiter_mode != LK_FREE &&
		    !(r.waiter.slot == myslot && r.waiter.gen == mygen) &&
		    lk_host_status(v, r.waiter.slot, r.waiter.gen) == LK_HOST_LIVE) {
			ret = -EBUSY;
			goto out;
		}
		/* Judge the other holders: those in our way must go, stale
		 * ones of compatible holds are pruned on the way. */
		for (uint32_t i = 0; i < n.nholders;) {
			bool conflict = mode == LK_EXCL || n.mode != (uint32_t)mode;
			int st = lk_host_status(v, n.holders[i].slot,
						n.holders[i].gen);

			if (st == LK_HOST_STALE) {
				remove_holder(&n, i);
				continue;
			}
			if ((st == LK_HOST_DEAD || st == LK_HOST_RECOVERING) &&
			    conflict) {
				/* recover it, or let its recoverer finish (or
				 * take over once that one is dead too:
				 * recover_host decides) */
				int rr = recover_host(v, n.holders[i].slot,
						      n.holders[i].gen);

				if (rr == 0) {
					remove_holder(&n, i);
					continue;
				}
				if (rr != -EAGAIN) {
					ret = rr;
					goto out;
				}
				recovering = true;
				blocked = true;
			} else if (conflict) {
				blocked = true;
			}
			i++;
		}
		if (blocked) {
			bool mine = r.waiter_mode != LK_FREE &&
				    r.waiter.slot == myslot &&
				    r.waiter.gen == mygen;
			bool give_up = lk_now_ns() >= deadline, mark = false;
			struct lk_lockrec w = r;

			/* Mark ourselves as the waiter (the holder hands the
			 * lock over to us at its release) unless another
			 * live host is marked; giving up, take our mark
			 * away.  Holders and version stay as they are. */
			if (give_up && mine) {
				w.waiter_mode = LK_FREE;
				memset(&w.waiter, 0, sizeof(w.waiter));
				mark = true;
			} else if (!give_up && !mine && !recovering &&
				   (r.waiter_mode == LK_FREE ||
				    lk_host_status(v, r.waiter.slot,
						   r.waiter.gen) != LK_HOST_LIVE)) {
				w.waiter_mode = mode;
				w.waiter.slot = myslot;
				w.waiter.gen = mygen;
				mark = true;
			}
			if (mark) {
				if (l->method == LK_METHOD_AUTO)
					l->method = lk_method_for(v, l->lun);
				lk_lockrec_out(&w, nw, l->ss);
				ret = lk_caw_on(v, l->lun, l->method, l->ss,
						l->off, raw, nw, cur, 0);
				if (ret == -MP_E_MISCOMPARE) {
					/* changed meanwhile (handed to us,
					 * perhaps): judge it again */
					src = caw_lost(l, raw, cur);
					waited = true;
					continue;
				}
				if (ret) {
					l->img_ok = false;
					goto out;
				}
				keep_img(l, nw);
				marked = !give_up;
			}
			if (give_up) {
				ret = recovering ? -ETIMEDOUT : -EBUSY;
				goto out;
			}
			lk_sleep_ms(wait_ms(v, naps++));
			waited = true;
			src = REC_READ;
			continue;
		}
		if (n.nholders >= LK_MAX_HOLDERS) {
			ret = -LK_E_TOOMANY;
			goto out;
		}
		if (n.waiter_mode != LK_FREE && n.waiter.slot == myslot &&
		    n.waiter.gen == mygen) {
			/* our mark: we have it now (another's stays, for
			 * the next release to hand over or clear) */
			n.waiter_mode = LK_FREE;
			memset(&n.waiter, 0, sizeof(n.waiter));
		}
		n.mode = mode;
		n.holders[n.nholders].slot = myslot;
		n.holders[n.nholders].gen = mygen;
		n.nholders++;
		n.version = r.version + 1;
		n.wall_ns = lk_wall_ns();
		memcpy(n.uuid, v->hdr.uuid, 16);
		lk_lockrec_out(&n, nw, l->ss);
		if (l->method == LK_METHOD_AUTO)
			l->method = lk_method_for(v, l->lun);
		ret = lk_caw_on(v, l->lun, l->method, l->ss, l->off, raw, nw,
				cur, 0);
		if (ret == -MP_E_MISCOMPARE) {
			/* it changed under us: judge again what is there */
			src = caw_lost(l, raw, cur);
			continue;
		}
		if (ret) {
			l->img_ok = false;
			goto out;
		}
		keep_img(l, nw);
		l->cache_valid = l->released_version &&
				 r.version == l->released_version;
		l->waited = waited;
		l->version = n.version;
		l->held = mode;
		l->held_slot = myslot;
		l->held_gen = mygen;
		goto out;
	}
out:
	/* failed after marking ourselves as the waiter (fenced, I/O): the
	 * mark may still be there, or a holder may hand the lock over to us
	 * by it; settled when the handle is closed (settle_mark) or used */
	if (ret && marked) {
		l->mark_slot = myslot;
		l->mark_gen = mygen;
		l->mark_left = true;
	} else if (!ret) {
		l->mark_left = false;
	}
	if (ret == -MP_E_FENCED)
		ret = -LK_E_FENCED;
	free(raw);
	free(nw);
	free(cur);
	return ret;
}

int lk_acquire(lk_lock *l, enum lk_mode mode, unsigned timeout_ms)
{
	catch_up(l);
	if (mode < LK_EXCL || mode > LK_MULTIWRITER)
		return -EINVAL;
	if (l->held != LK_FREE && l->held != mode)
		return -EINVAL;   /* use lk_convert */
	return change(l, mode, timeout_ms);
}

void lk_set_handover(lk_volume *v, lk_handover_fn fn, void *arg)
{
	v->handover = fn;
	v->handover_arg = arg;
}

/* Before our hold of l can pass to another host (lk_set_handover). */
static int handover(lk_lock *l)
{
	lk_volume *v = l->v;

	return v->handover ? v->handover(v->handover_arg, l->lun, l->off) : 0;
}

int lk_convert(lk_lock *l, enum lk_mode mode, unsigned timeout_ms)
{
	int ret;

	catch_up(l);
	if (mode < LK_EXCL || mode > LK_MULTIWRITER)
		return -EINVAL;
	if (l->held == LK_FREE)
		return -LK_E_NOTHELD;
	ret = lk_check(l);
	if (ret)
		return ret;
	if (l->held == LK_EXCL && mode != LK_EXCL) {
		ret = handover(l);
		if (ret)
			return ret;
	}
	return change(l, mode, timeout_ms);
}

int lk_release(lk_lock *l)
{
	lk_volume *v = l->v;
	unsigned char *raw = lk_buf_n(l->ss), *nw = lk_buf_n(l->ss);
	unsigned char *cur = lk_buf_n(l->ss);
	enum rec_src src;
	int ret;

	catch_up(l);
	if (l->held == LK_FREE) {
		ret = -LK_E_NOTHELD;
		goto out;
	}
	if (!raw || !nw || !cur) {
		ret = -ENOMEM;
		goto out;
	}
	ret = handover(l);
	if (ret)
		goto out;
	src = take_img(l, raw);
	for (;;) {
		struct lk_lockrec r;
		int me;

		ret = get_rec(l, raw, &r, &src);
		if (ret)
			goto out;
		me = find_holder(&r, l->held_slot, l->held_gen);
		if (me < 0 && src == REC_IMAGE) {
			src = REC_READ;   /* not as we left it: look */
			continue;
		}
		if (me < 0) {
			/* broken by another host: we were taken for dead */
			l->held = LK_FREE;
			ret = -LK_E_LOST;
			goto out;
		}
		remove_holder(&r, (uint32_t)me);
		/* another live host marked as waiting wanted it from us */
		l->wanted = r.waiter_mode != LK_FREE &&
			    !(r.waiter.slot == l->held_slot &&
			      r.waiter.gen == l->held_gen) &&
			    lk_host_status(v, r.waiter.slot,
					   r.waiter.gen) == LK_HOST_LIVE;
		if (r.nholders == 0 && r.waiter_mode != LK_FREE) {
			/* the last holder: to the waiter if it is live */
			if (l->wanted) {
				r.mode = r.waiter_mode;
				r.holders[0] = r.waiter;
				r.nholders = 1;
			}
			r.waiter_mode = LK_FREE;
			memset(&r.waiter, 0, sizeof(r.waiter));
		}
		r.version++;
		r.wall_ns = lk_wall_ns();
		lk_lockrec_out(&r, nw, l->ss);
		if (l->method == LK_METHOD_AUTO)
			l->method = lk_method_for(v, l->lun);
		ret = lk_caw_on(v, l->lun, l->method, l->ss, l->off, raw, nw,
				cur, 0);
		if (ret == -MP_E_MISCOMPARE) {
			src = caw_lost(l, raw, cur);
			continue;
		}
		if (ret) {
			l->img_ok = false;
			goto out;
		}
		keep_img(l, nw);
		l->released_version = r.version;
		l->held = LK_FREE;
		goto out;
	}
out:
	if (ret == -MP_E_FENCED)
		ret = -LK_E_FENCED;
	free(raw);
	free(nw);
	free(cur);
	return ret;
}

int lk_lock_seed(lk_lock *l, const void *rec)
{
	struct lk_lockrec r;

	catch_up(l);
	if (l->held != LK_FREE || lk_lockrec_in(rec, &r) || r.self_off != l->off ||
	    r.mode != LK_FREE || r.nholders || !r.version)
		return -EINVAL;
	keep_img(l, rec);
	if (!l->img_ok)
		return -ENOMEM;
	l->released_version = r.version;
	return 0;
}

int lk_lockrec_make_held(lk_volume *v, uint64_t off, enum lk_mode mode,
			 uint64_t version, void *rec, size_t len)
{
	struct lk_lockrec r;
	int ret = lk_state(v);

	if (ret)
		return ret;
	if ((mode != LK_EXCL && mode != LK_SHARED) || !version)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	r.mode = mode;
	r.nholders = 1;
	self_id(v, &r.holders[0].slot, &r.holders[0].gen);
	r.version = version;
	r.self_off = off;
	r.wall_ns = lk_wall_ns();
	memcpy(r.uuid, v->hdr.uuid, 16);
	lk_lockrec_out(&r, rec, len);
	return 0;
}

int lk_lock_seed_held(lk_lock *l, const void *rec)
{
	lk_volume *v = l->v;
	struct lk_lockrec r;
	uint32_t slot;
	uint64_t gen;

	catch_up(l);
	self_id(v, &slot, &gen);
	if (l->held != LK_FREE || lk_lockrec_in(rec, &r) || r.self_off != l->off ||
	    (r.mode != LK_EXCL && r.mode != LK_SHARED) || r.nholders != 1 ||
	    r.holders[0].slot != slot || r.holders[0].gen != gen ||
	    r.waiter_mode != LK_FREE)
		return -EINVAL;
	keep_img(l, rec);
	if (!l->img_ok)
		return -ENOMEM;
	l->held = (enum lk_mode)r.mode;
	l->held_slot = slot;
	l->held_gen = gen;
	l->version = r.version;
	l->waited = false;
	/* we made it: what the caller knows of it is current */
	l->cache_valid = true;
	return 0;
}

static void host_info(lk_volume *v, const struct lk_holder *from,
		      struct lk_holder_info *h)
{
	h->slot = from->slot;
	h->gen = from->gen;
	h->status = lk_host_status(v, h->slot, h->gen);
	if (h->slot < v->hdr.slots) {
		pthread_mutex_lock(&v->lock);
		if (v->seen[h->slot].valid) {
			memcpy(h->uuid, v->seen[h->slot].s.host_uuid, 16);
			snprintf(h->name, sizeof(h->name), "%s",
				 v->seen[h->slot].s.host_name);
		}
		pthread_mutex_unlock(&v->lock);
	}
}

int lk_lock_info(lk_lock *l, struct lk_lock_info *info)
{
	lk_volume *v = l->v;
	unsigned char *raw = lk_buf_n(l->ss);
	struct lk_lockrec r;
	int ret;

	catch_up(l);
	if (!raw)
		return -ENOMEM;
	ret = lk_read_on(l->lun, l->off, raw, l->ss, MP_IO_FENCE_BYPASS);
	if (!ret)
		ret = lk_lockrec_in(raw, &r);
	if (ret)
		goto out;
	memset(info, 0, sizeof(*info));
	info->mode = r.mode;
	info->version = r.version;
	info->nholders = r.nholders;
	for (uint32_t i = 0; i < r.nholders; i++)
		host_info(v, &r.holders[i], &info->holders[i]);
	info->waiter_mode = r.waiter_mode;
	if (r.waiter_mode != LK_FREE)
		host_info(v, &r.waiter, &info->waiter);
out:
	free(raw);
	return ret;
}

static int recover_dead(lk_volume *v, bool wait, unsigned *recovered)
{
	uint32_t dead = v->hdr.dead_ms, ival = v->hdr.interval_ms;
	uint64_t deadline;
	unsigned n = 0;
	int ret = 0;

	/* long enough for the slowest host's declared timing */
	pthread_mutex_lock(&v->lock);
	for (uint32_t i = 0; i < v->hdr.slots; i++) {
		const struct lk_slot *s = &v->seen[i].s;

		if (!v->seen[i].valid || s->state != LK_SLOT_LIVE)
			continue;
		if (s->dead_ms > dead)
			dead = s->dead_ms;
		if (s->interval_ms > ival)
			ival = s->interval_ms;
	}
	pthread_mutex_unlock(&v->lock);
	deadline = lk_now_ns() + (wait ? (uint64_t)(dead + 3 * ival) * 1000000 : 0);

	if (recovered)
		*recovered = 0;
	if (!v->joined)
		return -LK_E_NOTJOINED;
	for (uint32_t i = 0; i < v->hdr.slots && !ret; i++) {
		for (;;) {
			struct lk_slot s;
			int st;

			pthread_mutex_lock(&v->lock);
			s = v->seen[i].s;
			st = v->seen[i].valid && s.state == LK_SLOT_LIVE &&
			     !(i == v->slot && s.gen == v->gen) ?
			     status_locked(v, i, s.gen) : LK_HOST_STALE;
			pthread_mutex_unlock(&v->lock);
			if (st == LK_HOST_DEAD) {
				int r = recover_host(v, i, s.gen);

				if (r == 0) {
					n++;
					break;
				}
				if (r != -EAGAIN) {
					ret = r;
					break;
				}
			} else if (st != LK_HOST_LIVE || lk_now_ns() >= deadline) {
				break;     /* free, ours, or alive after all */
			}
			/* live as far as we know: has it stopped beating? */
			if (lk_now_ns() >= deadline)
				break;
			lk_sleep_ms(poll_ms(v));
		}
	}
	if (recovered)
		*recovered = n;
	return ret;
}

int lk_recover_dead(lk_volume *v, unsigned *recovered)
{
	return recover_dead(v, true, recovered);
}

int lk_recover_dead_now(lk_volume *v, unsigned *recovered)
{
	return recover_dead(v, false, recovered);
}
