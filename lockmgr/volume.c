/*
 * volume.c - formatting, opening, joining and leaving a heartbeat region.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockmgr/lk_int.h"

#define DEFAULT_SLOTS 64
#define DEFAULT_INTERVAL_MS 3000
#define DEFAULT_DEAD_MS 16000

static const char *const lk_errs[LK_E_END - LK_E_BASE] = {
	[LK_E_BADMAGIC - LK_E_BASE] = "not a lock manager record (bad magic)",
	[LK_E_CHECKSUM - LK_E_BASE] = "lock manager record checksum mismatch",
	[LK_E_VERSION - LK_E_BASE] = "unsupported lock manager format version",
	[LK_E_CORRUPT - LK_E_BASE] = "corrupt lock manager record",
	[LK_E_NOSLOT - LK_E_BASE] = "no free heartbeat slot",
	[LK_E_FENCED - LK_E_BASE] = "heartbeat stalled: host fenced from the volume",
	[LK_E_LOST - LK_E_BASE] = "lost access: our heartbeat slot was recovered "
				  "by another host, locks are lost",
	[LK_E_NOTJOINED - LK_E_BASE] = "host has not joined the volume",
	[LK_E_RECOVERY - LK_E_BASE] = "recovery of a dead host failed",
	[LK_E_TOOMANY - LK_E_BASE] = "too many holders of a shared lock",
	[LK_E_NOTHELD - LK_E_BASE] = "lock not held",
};

const char *lk_strerror(int err)
{
	int e = err < 0 ? -err : err;

	if (e > LK_E_BASE && e < LK_E_END && lk_errs[e - LK_E_BASE])
		return lk_errs[e - LK_E_BASE];
	return mp_strerror(err);
}

const char *lk_method_name(enum lk_method m)
{
	switch (m) {
	case LK_METHOD_ATS: return "ats";
	case LK_METHOD_RESERVE: return "reservation";
	case LK_METHOD_EMULATED: return "emulated (one machine only)";
	default: return "auto";
	}
}

const char *lk_mode_name(enum lk_mode m)
{
	switch (m) {
	case LK_FREE: return "free";
	case LK_EXCL: return "exclusive";
	case LK_SHARED: return "read-only shared";
	case LK_MULTIWRITER: return "multi-writer";
	default: return "?";
	}
}

const char *lk_host_status_name(int s)
{
	switch (s) {
	case LK_HOST_LIVE: return "live";
	case LK_HOST_DEAD: return "dead";
	case LK_HOST_RECOVERING: return "being recovered";
	case LK_HOST_STALE: return "stale";
	default: return "?";
	}
}

uint64_t lk_region_size(mp_lun *lun, uint32_t slots)
{
	struct mp_lun_info in;

	mp_lun_get_info(lun, &in);
	if (!slots)
		slots = DEFAULT_SLOTS;
	return (uint64_t)(slots + 1) * in.logical_sector;
}

int lk_format(mp_lun *lun, uint64_t region_off,
	      const struct lk_format_params *p)
{
	struct mp_lun_info in;
	struct lk_hdr h = { 0 };
	unsigned char *buf = NULL;
	size_t len;
	ssize_t n;
	int ret = 0;

	mp_lun_get_info(lun, &in);
	h.slots = p->slots ? p->slots : DEFAULT_SLOTS;
	h.interval_ms = p->interval_ms ? p->interval_ms : DEFAULT_INTERVAL_MS;
	h.dead_ms = p->dead_ms ? p->dead_ms : DEFAULT_DEAD_MS;
	h.slot_size = in.logical_sector;
	h.self_off = region_off;
	memcpy(h.uuid, p->uuid, 16);
	if (h.slots > LK_MAX_SLOTS || h.dead_ms < 2 * h.interval_ms ||
	    region_off % in.logical_sector)
		return -EINVAL;
	len = (size_t)(h.slots + 1) * h.slot_size;
	if (region_off + len > in.capacity)
		return -ENOSPC;
	buf = mp_alloc_aligned(4096, len);
	if (!buf)
		return -ENOMEM;
	lk_hdr_out(&h, buf, h.slot_size);
	for (uint32_t i = 0; i < h.slots; i++) {
		struct lk_slot s = { .state = LK_SLOT_FREE, .index = i };

		lk_slot_out(&s, buf + (size_t)(i + 1) * h.slot_size, h.slot_size);
	}
	n = mp_lun_pwrite(lun, buf, len, region_off, 0);
	if (n < 0)
		ret = (int)n;
	else
		ret = mp_lun_flush(lun);
	free(buf);
	return ret;
}

int lk_lock_format(mp_lun *lun, uint64_t off, const uint8_t uuid[16])
{
	struct mp_lun_info in;
	struct lk_lockrec r = { .mode = LK_FREE, .self_off = off, .version = 1 };
	unsigned char *buf;
	ssize_t n;

	mp_lun_get_info(lun, &in);
	if (off % in.logical_sector)
		return -EINVAL;
	buf = mp_alloc_aligned(4096, in.logical_sector);
	if (!buf)
		return -ENOMEM;
	memcpy(r.uuid, uuid, 16);
	lk_lockrec_out(&r, buf, in.logical_sector);
	n = mp_lun_pwrite(lun, buf, in.logical_sector, off, 0);
	free(buf);
	return n < 0 ? (int)n : 0;
}

int lk_open(mp_lun *lun, uint64_t region_off, lk_volume **out)
{
	struct mp_lun_info in;
	lk_volume *v;
	unsigned char *buf;
	int ret;

	mp_lun_get_info(lun, &in);
	if (region_off % in.logical_sector)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->lun = lun;
	v->region_off = region_off;
	v->ss = in.logical_sector;
	buf = lk_buf(v);
	if (!buf) {
		ret = -ENOMEM;
		goto free_v;
	}
	ret = lk_read(v, region_off, buf, v->ss, 0);
	if (!ret)
		ret = lk_hdr_in(buf, &v->hdr);
	free(buf);
	if (ret)
		goto free_v;
	v->interval_ms = v->hdr.interval_ms;
	v->dead_ms = v->hdr.dead_ms;
	if (v->hdr.self_off != region_off || v->hdr.slot_size != v->ss) {
		/* a region copied elsewhere, or a LUN whose sector size changed */
		ret = -LK_E_CORRUPT;
		goto free_v;
	}
	if (region_off + (uint64_t)(v->hdr.slots + 1) * v->ss > in.capacity) {
		ret = -LK_E_CORRUPT;
		goto free_v;
	}
	v->seen = calloc(v->hdr.slots, sizeof(*v->seen));
	v->seen_raw = mp_alloc_aligned(4096, (size_t)v->hdr.slots * v->ss);
	if (!v->seen || !v->seen_raw) {
		ret = -ENOMEM;
		goto free_seen;
	}
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->beat_lock, NULL);
	pthread_mutex_init(&v->resv_lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	*out = v;
	return 0;

free_seen:
	free(v->seen);
	free(v->seen_raw);
free_v:
	free(v);
	return ret;
}

static enum lk_method pick_method_lun(mp_lun *lun, enum lk_method want)
{
	struct mp_lun_info in;

	mp_lun_get_info(lun, &in);
	switch (want) {
	case LK_METHOD_ATS:
		return in.caps & MP_CAP_ATS ? want : LK_METHOD_AUTO;
	case LK_METHOD_RESERVE:
		return in.caps & MP_CAP_RESERVE6 ? want : LK_METHOD_AUTO;
	case LK_METHOD_EMULATED:
		return in.caps & MP_CAP_ATS_EMULATED ? want : LK_METHOD_AUTO;
	default:
		break;
	}
	if (in.caps & MP_CAP_ATS)
		return LK_METHOD_ATS;
	if (in.caps & MP_CAP_RESERVE6)
		return LK_METHOD_RESERVE;
	if (in.caps & MP_CAP_ATS_EMULATED)
		return LK_METHOD_EMULATED;
	return LK_METHOD_AUTO;
}

static enum lk_method pick_method(lk_volume *v, enum lk_method want)
{
	return pick_method_lun(v->lun, want);
}

enum lk_method lk_method_for(lk_volume *v, mp_lun *lun)
{
	enum lk_method m;

	if (lun == v->lun)
		return v->method;
	m = pick_method_lun(lun, v->method);
	return m != LK_METHOD_AUTO ? m : pick_method_lun(lun, LK_METHOD_AUTO);
}

int lk_join(lk_volume *v, const struct lk_join_opts *o)
{
	unsigned dflt_fence;
	int ret;

	if (v->joined)
		return -EALREADY;
	v->method = pick_method(v, o->method);
	if (v->method == LK_METHOD_AUTO) {
		lk_log(v, "the LUN offers no atomic primitive (ATS, reservations "
		       "or the one-machine emulation)%s",
		       o->method ? " of the kind asked for" : "");
		return -EOPNOTSUPP;
	}
	v->opts = *o;
	snprintf(v->host_name, sizeof(v->host_name), "%s",
		 o->host_name ? o->host_name : "");
	v->opts.host_name = v->host_name;
	/* Our own timing, declared in our slot: others call us dead by our
	 * dead timeout, never by a shorter one of theirs. */
	v->interval_ms = o->interval_ms ? o->interval_ms : v->hdr.interval_ms;
	v->dead_ms = o->dead_ms ? o->dead_ms : v->hdr.dead_ms;
	if (v->interval_ms < 20 || v->dead_ms < 2 * v->interval_ms) {
		lk_log(v, "heartbeat interval %u ms and dead timeout %u ms: the "
		       "interval must be at least 20 ms and the timeout at "
		       "least twice the interval", v->interval_ms, v->dead_ms);
		return -EINVAL;
	}
	/* Fence well before anyone may call us dead: the margin covers I/O we
	 * already issued and the observers' polling. */
	dflt_fence = v->dead_ms - 2 * v->interval_ms;
	if (dflt_fence < v->dead_ms / 2)
		dflt_fence = v->dead_ms / 2;
	v->fence_ms = o->fence_ms ? o->fence_ms : dflt_fence;
	if (v->fence_ms >= v->dead_ms) {
		lk_log(v, "fence deadline %u ms must be below the dead timeout "
		       "%u ms", v->fence_ms, v->dead_ms);
		return -EINVAL;
	}
	ret = lk_monitor_pass(v);
	if (ret)
		return ret;
	ret = lk_claim_slot(v);
	if (ret)
		return ret;
	lk_log(v, "joined: slot %u generation %llu, method %s, interval %u ms, "
	       "dead timeout %u ms, fence %u ms", v->slot,
	       (unsigned long long)v->gen, lk_method_name(v->method),
	       v->interval_ms, v->dead_ms, v->fence_ms);
	ret = lk_threads_start(v);
	return ret;
}

int lk_leave(lk_volume *v)
{
	struct lk_slot s;
	unsigned char *nw, *cur;
	int ret;

	if (!v->joined)
		return -LK_E_NOTJOINED;
	if (__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE)) {
		/* the slot and the holds stay for the host that recovers us:
		 * freeing the slot would let it break them without replay */
		lk_threads_stop(v);
		lk_locks_lost(v);
		v->joined = false;
		lk_log(v, "left after giving up: slot %u and its locks left "
		       "for recovery by another host", v->slot);
		return -LK_E_FENCED;
	}
	ret = lk_release_all(v);
	lk_threads_stop(v);
	nw = lk_buf(v);
	cur = lk_buf(v);
	if (!nw || !cur) {
		ret = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&v->lock);
	if (v->lost) {
		/* not ours any more: nothing to free */
		pthread_mutex_unlock(&v->lock);
		goto out;
	}
	lk_slot_in(v->my_raw, &s);
	s.state = LK_SLOT_FREE;
	s.gen++;
	s.wall_ns = lk_wall_ns();
	lk_slot_out(&s, nw, v->ss);
	pthread_mutex_unlock(&v->lock);
	{
		int r = lk_caw(v, lk_slot_off(v, v->slot), v->my_raw, nw, cur,
			       MP_IO_FENCE_BYPASS);

		if (r && !ret)
			ret = r;
	}
	lk_log(v, "left: slot %u freed (%s)", v->slot, lk_strerror(ret));
out:
	lk_fence_all(v, false);
	v->joined = false;
	free(nw);
	free(cur);
	return ret;
}

void lk_close(lk_volume *v)
{
	if (!v)
		return;
	if (v->joined)
		lk_leave(v);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->resv_lock);
	pthread_mutex_destroy(&v->lock);
	pthread_mutex_destroy(&v->beat_lock);
	free(v->my_raw);
	free(v->seen);
	free(v->seen_raw);
	free(v);
}

void lk_fence_all(lk_volume *v, bool on)
{
	mp_lun_fence(v->lun, on);
	for (unsigned i = 0; i < v->nfence; i++)
		mp_lun_fence(v->fence_luns[i], on);
}

int lk_fence_lun_add(lk_volume *v, mp_lun *lun)
{
	if (v->nfence >= sizeof(v->fence_luns) / sizeof(v->fence_luns[0]))
		return -ENOSPC;
	pthread_mutex_lock(&v->lock);
	v->fence_luns[v->nfence++] = lun;
	if (v->fenced)
		mp_lun_fence(lun, true);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

void lk_get_info(lk_volume *v, struct lk_vol_info *info)
{
	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&v->lock);
	info->slots = v->hdr.slots;
	info->slot_size = v->ss;
	info->interval_ms = v->interval_ms;
	info->dead_ms = v->dead_ms;
	info->fence_ms = v->fence_ms;
	memcpy(info->uuid, v->hdr.uuid, 16);
	info->joined = v->joined;
	info->fenced = v->fenced;
	info->lost = v->lost;
	info->abandoned = v->abandoned;
	info->slot = v->slot;
	info->gen = v->gen;
	info->beats = v->beats;
	if (v->joined)
		info->beat_age_ms = (lk_now_ns() - v->last_ok_ns) / 1000000;
	info->method = v->method;
	pthread_mutex_unlock(&v->lock);
}

int lk_state(lk_volume *v)
{
	int ret = 0;

	pthread_mutex_lock(&v->lock);
	if (!v->joined)
		ret = -LK_E_NOTJOINED;
	else if (v->lost)
		ret = -LK_E_LOST;
	else if (v->fenced)
		ret = -LK_E_FENCED;
	pthread_mutex_unlock(&v->lock);
	return ret;
}
