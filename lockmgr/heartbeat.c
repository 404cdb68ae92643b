/*
 * heartbeat.c - our heartbeat, the liveness monitor, and self-fencing.
 *
 * Two threads per joined volume:
 *
 *  beat thread   every interval/2: read every slot (the monitor), and every
 *                other time compare-and-write our own slot with counter+1.
 *  fence thread  every min(interval/4, 100 ms): if our last successful beat
 *                was *submitted* more than fence_ms ago, fence the LUN handle.
 *
 * Why fencing is safe: another host declares us dead only after our slot
 * has not changed for dead_ms on its clock, counted from when it saw the
 * last change, which is after that write landed, which is after we
 * submitted it.  We fence at submission + fence_ms < submission + dead_ms,
 * so we stop first; the margin (2 intervals by default) covers I/O already
 * in flight and the difference in clock rates.  The beat thread does I/O
 * that can stall; the fence thread does none, so a stall cannot stop it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lockmgr/lk_int.h"

int lk_monitor_pass(lk_volume *v)
{
	size_t len = (size_t)v->hdr.slots * v->ss;
	unsigned char *buf = mp_alloc_aligned(4096, len);
	uint64_t now;
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = lk_read(v, v->region_off + v->ss, buf, len, MP_IO_FENCE_BYPASS);
	if (ret)
		goto out;
	now = lk_now_ns();
	pthread_mutex_lock(&v->lock);
	for (uint32_t i = 0; i < v->hdr.slots; i++) {
		unsigned char *raw = buf + (size_t)i * v->ss;
		unsigned char *old = v->seen_raw + (size_t)i * v->ss;
		struct seen *se = &v->seen[i];

		if (se->ever && !memcmp(raw, old, v->ss))
			continue;
		memcpy(old, raw, v->ss);
		se->ever = true;
		se->last_change_ns = now;
		se->valid = lk_slot_in(raw, &se->s) == 0 && se->s.index == i;
	}
	pthread_mutex_unlock(&v->lock);
out:
	free(buf);
	return ret;
}

int lk_claim_slot(lk_volume *v)
{
	unsigned char *nw = lk_buf(v), *cur = lk_buf(v), *old = lk_buf(v);
	int ret = -LK_E_NOSLOT;

	if (!nw || !cur || !old) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < v->hdr.slots; i++) {
		struct lk_slot s;
		uint64_t start;
		int r;

		pthread_mutex_lock(&v->lock);
		if (!v->seen[i].valid || v->seen[i].s.state != LK_SLOT_FREE) {
			pthread_mutex_unlock(&v->lock);
			continue;
		}
		s = v->seen[i].s;
		memcpy(old, v->seen_raw + (size_t)i * v->ss, v->ss);
		pthread_mutex_unlock(&v->lock);

		s.state = LK_SLOT_LIVE;
		s.gen++;
		s.counter = 0;
		memcpy(s.host_uuid, v->opts.host_uuid, 16);
		snprintf(s.host_name, sizeof(s.host_name), "%s", v->host_name);
		s.journal_off = v->opts.journal_off;
		s.journal_len = v->opts.journal_len;
		memset(s.rec_uuid, 0, 16);
		s.rec_slot = 0;
		s.rec_gen = 0;
		s.wall_ns = lk_wall_ns();
		s.interval_ms = v->interval_ms;
		s.dead_ms = v->dead_ms;
		memset(s.data, 0, sizeof(s.data));
		lk_slot_out(&s, nw, v->ss);
		start = lk_now_ns();
		r = lk_caw(v, lk_slot_off(v, i), old, nw, cur,
			   MP_IO_FENCE_BYPASS);
		if (r == -MP_E_MISCOMPARE)
			continue;        /* another host took it first */
		if (r) {
			ret = r;
			goto out;
		}
		pthread_mutex_lock(&v->lock);
		if (!v->my_raw)
			v->my_raw = lk_buf(v);
		memcpy(v->my_raw, nw, v->ss);
		v->slot = i;
		v->gen = s.gen;
		v->last_ok_ns = start;
		v->joined = true;
		v->fenced = v->abandoned;   /* a rejoin never undoes lk_abandon */
		v->lost = false;
		pthread_mutex_unlock(&v->lock);
		ret = 0;
		break;
	}
out:
	free(nw);
	free(cur);
	free(old);
	return ret;
}

static void emit(lk_volume *v, enum lk_event ev)
{
	if (v->opts.event)
		v->opts.event(v->opts.event_arg, ev);
}

/* Our slot is not ours any more: drop everything, maybe join again. */
static void lost(lk_volume *v, const struct lk_slot *now)
{
	pthread_mutex_lock(&v->lock);
	v->lost = true;
	v->fenced = true;
	pthread_mutex_unlock(&v->lock);
	lk_fence_all(v, true);
	lk_log(v, "slot %u was taken from us (state %u generation %llu, "
	       "recovered by slot %u): every lock held is lost", v->slot,
	       now->state, (unsigned long long)now->gen, now->rec_slot);
	lk_locks_lost(v);
	emit(v, LK_EV_LOST);
	if (v->opts.no_rejoin || __atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE))
		return;
	if (lk_monitor_pass(v) || lk_claim_slot(v)) {
		lk_log(v, "re-join failed; staying fenced");
		return;
	}
	pthread_mutex_lock(&v->lock);
	if (!v->abandoned)
		lk_fence_all(v, false);
	pthread_mutex_unlock(&v->lock);
	lk_log(v, "re-joined: slot %u generation %llu", v->slot,
	       (unsigned long long)v->gen);
	emit(v, LK_EV_REJOINED);
}

/*
 * One beat.  Returns true when another one should follow at once: a beat
 * that took longer than the fence deadline proves the slot was ours when it
 * landed, but gives no fresh deadline (that counts from submission), so we
 * stay fenced until a beat completes in time.
 */
static bool beat_with(lk_volume *v, const unsigned char *data, int *res)
{
	unsigned char *nw = lk_buf(v), *cur = lk_buf(v), *old = lk_buf(v);
	struct lk_slot s, c;
	uint64_t start;
	uint32_t slot;
	bool unfence = false, again = false;
	int ret = -ENOMEM;

	if (!nw || !cur || !old)
		goto out_free;
	pthread_mutex_lock(&v->beat_lock);
	pthread_mutex_lock(&v->lock);
	if (v->lost || !v->joined || v->abandoned) {
		ret = v->lost ? -LK_E_LOST : !v->joined ? -LK_E_NOTJOINED :
		      -LK_E_FENCED;
		pthread_mutex_unlock(&v->lock);
		goto out;
	}
	memcpy(old, v->my_raw, v->ss);
	slot = v->slot;
	pthread_mutex_unlock(&v->lock);

	lk_slot_in(old, &s);
	s.counter++;
	s.wall_ns = lk_wall_ns();
	if (data)
		memcpy(s.data, data, LK_SLOT_DATA);
	lk_slot_out(&s, nw, v->ss);
	start = lk_now_ns();
	ret = lk_caw(v, lk_slot_off(v, slot), old, nw, cur, MP_IO_FENCE_BYPASS);
	if (ret == 0) {
		pthread_mutex_lock(&v->lock);
		memcpy(v->my_raw, nw, v->ss);
		v->last_ok_ns = start;
		v->beats++;
		if (lk_now_ns() - start > (uint64_t)v->fence_ms * 1000000) {
			again = true;
		} else if (v->fenced && !v->lost && !v->abandoned) {
			/* The slot held our last image, so nobody started
			 * recovering us: our locks are still ours.  (Under the
			 * lock: lk_abandon must not be undone by a beat that
			 * was in flight.) */
			v->fenced = false;
			unfence = true;
			lk_fence_all(v, false);
		}
		pthread_mutex_unlock(&v->lock);
		if (unfence) {
			lk_log(v, "heartbeat resumed, slot still ours: unfenced");
			emit(v, LK_EV_UNFENCED);
		}
		goto out;
	}
	if (ret != -MP_E_MISCOMPARE) {
		/* I/O failed: the fence thread decides when that matters */
		if (getenv("LK_DEBUG"))
			lk_log(v, "beat: %s", lk_strerror(ret));
		goto out;
	}
	if (lk_slot_in(cur, &c) == 0 && c.state == LK_SLOT_LIVE &&
	    c.gen == s.gen && !memcmp(c.host_uuid, s.host_uuid, 16)) {
		/* Still ours, just not the image we remembered (an earlier
		 * beat landed although it reported an error): adopt it. */
		pthread_mutex_lock(&v->lock);
		memcpy(v->my_raw, cur, v->ss);
		pthread_mutex_unlock(&v->lock);
		goto out;
	}
	lost(v, &c);
out:
	pthread_mutex_unlock(&v->beat_lock);
out_free:
	free(nw);
	free(cur);
	free(old);
	if (res)
		*res = ret;
	return again;
}

static bool beat(lk_volume *v)
{
	return beat_with(v, NULL, NULL);
}

void lk_abandon(lk_volume *v, const char *why)
{
	pthread_mutex_lock(&v->lock);
	if (v->abandoned || !v->joined) {
		pthread_mutex_unlock(&v->lock);
		return;
	}
	__atomic_store_n(&v->abandoned, true, __ATOMIC_RELEASE);
	v->fenced = true;
	/* fence before anything else: no more I/O but heartbeat reads */
	lk_fence_all(v, true);
	pthread_mutex_unlock(&v->lock);
	/* a beat in flight may still land; none follows it (beat_with) */
	lk_log(v, "giving the volume up: %s; slot %u and every lock kept as "
	       "they are, I/O fenced: another host will recover this one "
	       "once it sees it dead (%u ms)", why ? why : "no reason given",
	       v->slot, v->dead_ms);
	emit(v, LK_EV_ABANDONED);
}

int lk_set_slot_data(lk_volume *v, const void *data, size_t len)
{
	unsigned char d[LK_SLOT_DATA] = { 0 };
	int ret = -EIO;

	if (len > sizeof(d))
		return -EINVAL;
	pthread_mutex_lock(&v->lock);
	if (!v->joined || v->lost || v->fenced)
		ret = !v->joined ? -LK_E_NOTJOINED :
		      v->lost ? -LK_E_LOST : -LK_E_FENCED;
	pthread_mutex_unlock(&v->lock);
	if (ret != -EIO)
		return ret;
	memcpy(d, data, len);
	/* a beat that carries the new data: durable (FUA) when it returns.
	 * A miscompare that left the slot ours (an earlier beat landed
	 * although it reported an error) adopted the image: once more. */
	for (int i = 0; i < 3; i++) {
		beat_with(v, d, &ret);
		if (ret != -MP_E_MISCOMPARE || lk_state(v))
			break;
	}
	return ret;
}

static void timed_wait(lk_volume *v, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&v->cond, &v->lock, &ts);
}

static void *beat_main(void *arg)
{
	lk_volume *v = arg;
	unsigned half = v->interval_ms / 2 ? v->interval_ms / 2 : 1;
	uint64_t next = lk_now_ns();
	unsigned n = 0;
	bool again = false;

	for (;;) {
		uint64_t now;

		pthread_mutex_lock(&v->lock);
		while (!v->stopping && (now = lk_now_ns()) < next)
			timed_wait(v, (unsigned)((next - now) / 1000000) + 1);
		if (v->stopping) {
			pthread_mutex_unlock(&v->lock);
			break;
		}
		pthread_mutex_unlock(&v->lock);
		if (n++ % 2 == 0 || again)
			again = beat(v);
		if (again)
			continue;   /* beat again before anything else */
		lk_monitor_pass(v);
		next += (uint64_t)half * 1000000;
		now = lk_now_ns();
		if (next < now)  /* we stalled: do not try to catch up */
			next = now;
	}
	return NULL;
}

static void *fence_main(void *arg)
{
	lk_volume *v = arg;
	unsigned tick = v->interval_ms / 4;

	if (tick > 100)
		tick = 100;
	if (tick < 5)
		tick = 5;
	pthread_mutex_lock(&v->lock);
	while (!v->stopping) {
		uint64_t now = lk_now_ns();

		if (v->joined && !v->fenced && !v->lost &&
		    now - v->last_ok_ns > (uint64_t)v->fence_ms * 1000000) {
			uint64_t late = (now - v->last_ok_ns) / 1000000;

			v->fenced = true;
			/* fence before anything else: no more writes */
			lk_fence_all(v, true);
			pthread_mutex_unlock(&v->lock);
			lk_log(v, "no heartbeat for %llu ms (fence deadline %u ms): "
			       "lost access, I/O fenced",
			       (unsigned long long)late, v->fence_ms);
			emit(v, LK_EV_FENCED);
			pthread_mutex_lock(&v->lock);
			continue;
		}
		timed_wait(v, tick);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int lk_threads_start(lk_volume *v)
{
	int ret;

	v->stopping = false;
	ret = -pthread_create(&v->beat_thread, NULL, beat_main, v);
	if (ret)
		return ret;
	ret = -pthread_create(&v->fence_thread, NULL, fence_main, v);
	if (ret) {
		pthread_mutex_lock(&v->lock);
		v->stopping = true;
		pthread_cond_broadcast(&v->cond);
		pthread_mutex_unlock(&v->lock);
		pthread_join(v->beat_thread, NULL);
		return ret;
	}
	v->threads = true;
	return 0;
}

void lk_threads_stop(lk_volume *v)
{
	if (!v->threads)
		return;
	pthread_mutex_lock(&v->lock);
	v->stopping = true;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->beat_thread, NULL);
	pthread_join(v->fence_thread, NULL);
	v->threads = false;
}
