/*
 * lk_int.h - lock manager internals.
 */
#ifndef LK_INT_H
#define LK_INT_H

#include <pthread.h>
#include <stdio.h>

#include "lockmgr/lk.h"
#include "lockmgr/ondisk.h"

/* What the monitor last saw in one heartbeat slot. */
struct seen {
	bool valid;               /* decoded without error */
	bool ever;                /* read at least once */
	uint64_t last_change_ns;  /* our monotonic clock */
	struct lk_slot s;
};

struct lk_volume {
	mp_lun *lun;
	uint64_t region_off;
	struct lk_hdr hdr;
	unsigned ss;              /* slot size = sector size */

	pthread_mutex_t beat_lock; /* one write of our slot at a time (the
				    * beat thread, lk_set_slot_data); taken
				    * before lock */
	pthread_mutex_t lock;     /* everything below */
	pthread_cond_t cond;      /* wakes the threads (stop, state change) */

	bool joined, fenced, lost, stopping;
	bool abandoned;           /* lk_abandon: fenced for good, no beats */
	struct lk_join_opts opts;
	char host_name[LK_NAME_LEN + 1];
	enum lk_method method;
	unsigned fence_ms;
	uint32_t interval_ms;     /* our beat interval and the dead timeout */
	uint32_t dead_ms;         /* we declare in our slot (join options) */
	uint32_t slot;
	uint64_t gen;
	unsigned char *my_raw;    /* the slot image we last wrote */
	uint64_t last_ok_ns;      /* submission time of the last good beat */
	uint64_t beats;

	unsigned char *seen_raw;  /* slots * ss: last image of every slot */
	struct seen *seen;

	pthread_mutex_t resv_lock; /* reservation method: one RMW at a time
				    * per process (threads share the I_T nexus,
				    * so the reservation does not exclude them) */

	pthread_t beat_thread, fence_thread;
	bool threads;

	struct lk_lock *locks;    /* every open handle */

	/* other LUNs of the volume, fenced together with ours */
	mp_lun *fence_luns[32];
	unsigned nfence;

	/* lk_set_handover: asked before a lock of ours changes hands */
	lk_handover_fn handover;
	void *handover_arg;

	/* lk_locks_lost: how many times every hold was lost (atomic); each
	 * handle catches up in its own thread (lock.c catch_up) */
	uint64_t lost_epoch;
};

struct lk_lock {
	lk_volume *v;
	mp_lun *lun;              /* where the record lives (any extent) */
	enum lk_method method;    /* for that LUN */
	unsigned ss;              /* its sector size */
	uint64_t off;
	enum lk_mode held;
	uint32_t held_slot;
	uint64_t held_gen;
	uint64_t version;         /* version of our last change while held */
	uint64_t released_version; /* version we wrote when releasing, 0 none */
	bool cache_valid;
	bool waited;              /* the last acquire waited for another
				   * host's hold */
	bool wanted;              /* our last release found another live
				   * host marked waiting for the lock */
	/* an acquire failed after marking us as the record's waiter as
	 * (mark_slot, mark_gen): settled at close (lock.c settle_mark) */
	bool mark_left;
	uint32_t mark_slot;
	uint64_t mark_gen;
	/* The record as our last successful compare-and-write left it: the
	 * compare image of the next acquire or release, instead of reading
	 * the sector first.  Only ever compared, never trusted: if the
	 * record changed since, the compare-and-write fails and hands back
	 * what is there, and that is judged as a fresh read would be. */
	unsigned char *img;
	bool img_ok;
	uint64_t epoch;           /* v->lost_epoch as this handle last saw it */
	struct lk_lock *next, **pprev;  /* v->locks (unlinked in O(1): a
					 * host streaming creates has
					 * hundreds open) */
};

/* ---- io.c ---------------------------------------------------------------- */
/* Synchronous sector I/O with device-layer flags (MP_IO_FENCE_BYPASS ...). */
int lk_read(lk_volume *v, uint64_t off, void *buf, size_t len, unsigned flags);
int lk_write(lk_volume *v, uint64_t off, const void *buf, size_t len,
	     unsigned flags);
/*
 * Compare-and-write one sector with the volume's method.  0 on success,
 * -MP_E_MISCOMPARE with the current contents in cur, or an error.  An
 * outcome the device could not tell (timeout, lost connection) is settled
 * by re-reading the sector: a compare-and-write that timed out may have been
 * applied (the VMFS "ATS miscompare" outage came from assuming it was not).
 */
int lk_caw(lk_volume *v, uint64_t off, const void *cmp, const void *nw,
	   void *cur, unsigned flags);
/* The same on any LUN, with the method chosen for it. */
int lk_caw_on(lk_volume *v, mp_lun *lun, enum lk_method method, unsigned ss,
	      uint64_t off, const void *cmp, const void *nw, void *cur,
	      unsigned flags);
int lk_read_on(mp_lun *lun, uint64_t off, void *buf, size_t len,
	       unsigned flags);
void *lk_buf(lk_volume *v);   /* one zeroed sector, aligned; free() */
void *lk_buf_n(unsigned ss);
/* The method to use on lun, preferring the volume's. */
enum lk_method lk_method_for(lk_volume *v, mp_lun *lun);

uint64_t lk_now_ns(void);
uint64_t lk_wall_ns(void);
void lk_sleep_ms(unsigned ms);
void lk_log(lk_volume *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline uint64_t lk_slot_off(lk_volume *v, uint32_t slot)
{
	return v->region_off + (uint64_t)(slot + 1) * v->ss;
}

/* Fence or unfence every LUN of the volume. */
void lk_fence_all(lk_volume *v, bool on);

/* ---- heartbeat.c ---------------------------------------------------------- */
int lk_monitor_pass(lk_volume *v);
int lk_threads_start(lk_volume *v);
void lk_threads_stop(lk_volume *v);
/* Claim a free slot (v->lock not held). */
int lk_claim_slot(lk_volume *v);

/* ---- lock.c -------------------------------------------------------------- */
/* Status of holder (slot, gen) from the monitor's table (may refresh it). */
int lk_host_status(lk_volume *v, uint32_t slot, uint64_t gen);
/* Every handle: our hold is gone (slot recovered). */
void lk_locks_lost(lk_volume *v);
int lk_release_all(lk_volume *v);

#endif
