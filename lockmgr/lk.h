/*
 * lk.h - the on-disk lock manager.
 *
 * Hosts that share a LUN coordinate only through it, as VMFS does:
 *
 *  - a heartbeat region: one slot per host; a host claims a free slot and
 *    rewrites it (compare-and-write, counter+1) every interval;
 *  - lock records: one sector each, next to the metadata they protect,
 *    naming their holders by (heartbeat slot, slot generation);
 *  - a host is dead when its slot has not changed for the dead timeout on
 *    the observer's own monotonic clock; its locks may then be broken: the
 *    breaker marks the slot "being recovered" (only one host can), runs the
 *    recovery callback (the file system replays the dead host's journal),
 *    frees the slot with a new generation and takes the lock;
 *  - a host whose own heartbeat stalls past its fence deadline (shorter than
 *    the dead timeout) fences its LUN handle before any other host may
 *    consider it dead, and resumes only if its slot is still its own.
 *
 * On-disk layout: docs/FORMAT.md.  Threads and timing: docs/ARCHITECTURE.md.
 *
 * Functions return 0 or a negative error: -errno or -LK_E_* (lk_strerror).
 */
#ifndef LK_H
#define LK_H

#include <stdbool.h>
#include <stdint.h>

#include "multipath/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of user data a host keeps in its heartbeat slot. */
#define LK_SLOT_DATA 320u

enum lk_error {
	LK_E_BASE = 5000,
	LK_E_BADMAGIC,      /* not a lock-manager record (or never formatted) */
	LK_E_CHECKSUM,      /* record checksum mismatch */
	LK_E_VERSION,       /* unsupported major version */
	LK_E_CORRUPT,       /* record fields out of range or misplaced */
	LK_E_NOSLOT,        /* no free heartbeat slot */
	LK_E_FENCED,        /* our heartbeat stalled: I/O fenced until it beats */
	LK_E_LOST,          /* our slot was recovered by another host: every
			     * lock held before is lost */
	LK_E_NOTJOINED,     /* lk_join() first */
	LK_E_RECOVERY,      /* the recovery callback failed */
	LK_E_TOOMANY,       /* shared lock has no room for another holder */
	LK_E_NOTHELD,       /* release/convert of a lock we do not hold */
	LK_E_END
};

/* Describe 0, -errno, -MP_E_* or -LK_E_*. */
const char *lk_strerror(int err);

typedef struct lk_volume lk_volume;
typedef struct lk_lock lk_lock;

/* ---- formatting (mkfs) ---------------------------------------------------- */

struct lk_format_params {
	uint32_t slots;          /* 0 = 64; at most 2048 */
	uint32_t interval_ms;    /* 0 = 3000 */
	uint32_t dead_ms;        /* 0 = 16000; must exceed 2 intervals */
	uint8_t uuid[16];        /* region (volume) UUID */
};

/* Bytes a heartbeat region of `slots` slots occupies on lun. */
uint64_t lk_region_size(mp_lun *lun, uint32_t slots);

/* Write a region header and free slots at region_off (sector aligned). */
int lk_format(mp_lun *lun, uint64_t region_off,
	      const struct lk_format_params *p);

/* Write a free lock record at off, belonging to the region with uuid. */
int lk_lock_format(mp_lun *lun, uint64_t off, const uint8_t uuid[16]);

/* ---- joining -------------------------------------------------------------- */

enum lk_method { LK_METHOD_AUTO = 0, LK_METHOD_ATS, LK_METHOD_RESERVE,
		 LK_METHOD_EMULATED };
const char *lk_method_name(enum lk_method m);

/* What the recovery callback learns about the dead host. */
struct lk_dead_host {
	uint32_t slot;
	uint64_t gen;             /* the generation its locks carry */
	uint8_t uuid[16];
	char name[65];
	uint64_t journal_off, journal_len;
	uint8_t data[LK_SLOT_DATA];  /* what it last set with lk_set_slot_data */
};

/* Replays the dead host's journal (or whatever the user needs).  Must be
 * idempotent: if the recovering host dies, another one runs it again.
 * Return 0, or a negative error to leave the slot "being recovered". */
typedef int (*lk_recover_fn)(void *arg, const struct lk_dead_host *h);

enum lk_event {
	LK_EV_FENCED,    /* heartbeat stalled past the fence deadline: the LUN
			  * handle refuses I/O */
	LK_EV_UNFENCED,  /* beat again, slot still ours: locks still valid */
	LK_EV_LOST,      /* slot recovered by another host: all locks lost */
	LK_EV_REJOINED,  /* after LOST: joined again under a new generation */
	LK_EV_ABANDONED, /* lk_abandon: fenced for good, others will recover us */
};
/* Called from the heartbeat thread; must not block on volume I/O. */
typedef void (*lk_event_fn)(void *arg, enum lk_event ev);

struct lk_join_opts {
	uint8_t host_uuid[16];
	const char *host_name;
	uint64_t journal_off, journal_len;   /* recorded in the slot */
	lk_recover_fn recover;               /* NULL: nothing to replay */
	void *recover_arg;
	lk_event_fn event;
	void *event_arg;
	enum lk_method method;               /* AUTO: from the LUN's caps */
	unsigned fence_ms;                   /* 0 = max(dead/2, dead - 2*interval) */
	unsigned interval_ms;                /* 0 = the region's; written in our
					      * slot with dead_ms: */
	unsigned dead_ms;                    /* others call us dead by ours */
	bool no_rejoin;                      /* after LOST stay out */
};

/*
 * Open the heartbeat region at region_off on lun (read its header).  The
 * LUN handle stays the caller's; open it with MP_OPEN_RETRY_RESCONFLICT when
 * the reservation method may be used.
 */
int lk_open(mp_lun *lun, uint64_t region_off, lk_volume **out);

/* Another LUN of the same volume (a spanned extent): fenced with the
 * region's own LUN when the heartbeat stalls. */
int lk_fence_lun_add(lk_volume *v, mp_lun *lun);

/* Claim a slot and start heartbeating. */
int lk_join(lk_volume *v, const struct lk_join_opts *o);

/*
 * Recover every host that is dead (its slot live but still for the dead
 * timeout), whether or not we need its locks: waits up to the dead timeout
 * plus three intervals for hosts not yet known to be dead or alive.
 */
int lk_recover_dead(lk_volume *v, unsigned *recovered);
/* The same without waiting: only hosts already seen dead (a janitor). */
int lk_recover_dead_now(lk_volume *v, unsigned *recovered);

/*
 * Keep len bytes (at most LK_SLOT_DATA) of the user's own in our heartbeat
 * slot, durably, before returning; the rest of the area reads as zeros.  A
 * host that recovers us after a crash gets them (lk_dead_host.data): the
 * file system keeps its orphan list there.
 */
int lk_set_slot_data(lk_volume *v, const void *data, size_t len);

/*
 * Give the volume up without leaving it, after a failure that left the
 * on-disk state needing a repair only another host can make (the file
 * system: a transaction committed to the journal but not written in
 * place).  Fences every LUN for good (no reads or writes but heartbeat
 * region reads), stops beating, and keeps the slot and every lock hold as
 * they are on disk: other hosts see this host die, run the recovery
 * callback (replay its journal, the locks still at the versions it was
 * made under) and break the holds.  No rejoin; lk_leave then frees
 * nothing.  Idempotent; callable from any thread but the heartbeat's.
 */
void lk_abandon(lk_volume *v, const char *why);

/* Release every lock still held, free the slot, stop the threads.  After
 * lk_abandon: only stop the threads (-LK_E_FENCED). */
int lk_leave(lk_volume *v);

/* lk_leave() if joined, then free everything.  Lock handles must be closed. */
void lk_close(lk_volume *v);

struct lk_vol_info {
	uint32_t slots, slot_size, interval_ms, dead_ms, fence_ms;
	uint8_t uuid[16];
	bool joined, fenced, lost, abandoned;
	uint32_t slot;            /* ours, when joined */
	uint64_t gen;
	uint64_t beats;           /* successful beats */
	/* ms since our last good beat was submitted (joined only): the
	 * fence thread fences at fence_ms, others break in after dead_ms */
	uint64_t beat_age_ms;
	enum lk_method method;
};
void lk_get_info(lk_volume *v, struct lk_vol_info *info);

/* 0 while joined and neither fenced nor lost; else -LK_E_*. */
int lk_state(lk_volume *v);

/* ---- locks ------------------------------------------------------------------ */

enum lk_mode { LK_FREE = 0, LK_EXCL = 1, LK_SHARED = 2, LK_MULTIWRITER = 3 };
const char *lk_mode_name(enum lk_mode m);

/* A handle on the lock record at byte offset off (no I/O yet). */
int lk_lock_open(lk_volume *v, uint64_t off, lk_lock **out);
/* The same for a record on another LUN of the volume (its holders are
 * this region's slots; its compare-and-write method is that LUN's). */
int lk_lock_open_on(lk_volume *v, mp_lun *lun, uint64_t off, lk_lock **out);
/* Release if held, free the handle. */
void lk_lock_close(lk_lock *l);
/* Free the handle but leave a hold on disk (after a failure that must keep
 * other hosts out until this host is recovered). */
void lk_lock_close_keep(lk_lock *l);

/*
 * Take the lock in mode.  Waits while live hosts hold it in a conflicting
 * mode, up to timeout_ms (0 = try once), breaking the holds of dead hosts
 * after recovering them.  Returns 0, -EBUSY (held by a live host: see
 * lk_lock_holders), -ETIMEDOUT (recovery in progress elsewhere), or another
 * error.  Taking a lock already held by us in the same mode returns 0.
 * A waiting acquire marks its host as the record's waiter, and the last
 * holder's release hands the lock over to it.  A try (timeout 0) for
 * LK_SHARED does not join shared holders while another live host is
 * marked as the waiter (-EBUSY): a stream of tries would keep it out.
 */
int lk_acquire(lk_lock *l, enum lk_mode mode, unsigned timeout_ms);

/* Release.  -LK_E_LOST if another host had broken our hold.  An error
 * from the hand-over callback (lk_set_handover) leaves the lock held. */
int lk_release(lk_lock *l);

/*
 * Called before a lock held by this host can pass to another: before every
 * release of a hold, and every downgrade of an exclusive hold.  The user of
 * the locks (the file system's write-back journal) makes durable and puts
 * in place what it changed under the lock at (lun, off), then returns 0; a
 * non-zero return fails the release or downgrade with that error and the
 * hold stays (on disk too).  Called without any lock manager mutex held, on
 * the releasing thread.  Set once, before the first lock is taken.
 */
typedef int (*lk_handover_fn)(void *arg, mp_lun *lun, uint64_t off);
void lk_set_handover(lk_volume *v, lk_handover_fn fn, void *arg);
/*
 * The caller has just written the record of this (free, not held) lock
 * itself, as rec (one sector): the next acquire compares against it
 * instead of reading the sector, and finds its cache valid if nobody else
 * held the lock in between (as after a release of ours).  -EINVAL if rec
 * is not a free record of this lock or the lock is held.
 */
int lk_lock_seed(lk_lock *l, const void *rec);
/*
 * The record (len bytes, one sector) of a lock its caller makes anew, held
 * by this host in mode (exclusive or shared) at version: the caller writes
 * it itself, where no other host can be using the lock yet (a new file's
 * lock, written before the file is known), saving the compare-and-write of
 * a first acquire.  After the write, lk_lock_seed_held gives the lock's
 * handle the hold (-EINVAL if rec is not such a record of this lock, or
 * the handle holds it already).  lk_lockrec_make_held fails as lk_state
 * when not joined or fenced.
 */
int lk_lockrec_make_held(lk_volume *v, uint64_t off, enum lk_mode mode,
			 uint64_t version, void *rec, size_t len);
int lk_lock_seed_held(lk_lock *l, const void *rec);

/* Upgrade (shared -> exclusive, waits for other holders to go) or
 * downgrade (exclusive -> shared / multi-writer). */
int lk_convert(lk_lock *l, enum lk_mode mode, unsigned timeout_ms);

/* 0 if we still hold it and the host is neither fenced nor lost. */
int lk_check(lk_lock *l);

/* The mode we hold it in (LK_FREE if not held). */
enum lk_mode lk_held_mode(lk_lock *l);

/*
 * True when the record's version shows that no other host has held the
 * lock since we released it, so metadata cached under it is still good.
 * Valid right after lk_acquire() returned 0.
 */
bool lk_cache_valid(lk_lock *l);

/*
 * True when the last lk_acquire() (valid right after it returned 0) had to
 * wait for another host's hold.  With lk_cache_valid() false after a
 * release of ours, another host held it in between.  A caller that keeps
 * locks held past their use (fs/keep.c) stops doing so for such a lock.
 */
bool lk_waited(lk_lock *l);

/*
 * Whether another live host waits for a lock we hold (it marked itself as
 * the record's waiter: our release hands the lock over to it).  Reads the
 * record: 1 or 0, or a negative error.
 */
int lk_lock_wanted(lk_lock *l);

/* Whether our last release found another live host marked as the
 * record's waiter (it wanted the lock while we held it; the last holder's
 * release hands the lock over to it).  A caller that keeps locks held past
 * their use stops doing so for a while for such a lock, as for one it had
 * to wait for. */
bool lk_release_wanted(lk_lock *l);

/* The record's version as our last release left it (0: none since the
 * handle was opened, or someone else's change seen since).  A reader that
 * finds the record still at it, and not held exclusively, knows that nobody
 * has changed what the lock covers since that release. */
uint64_t lk_released_version(lk_lock *l);

/*
 * The record's version as our last change left it, while we hold the lock
 * (0 when not held).  A journal transaction made under the lock records it:
 * if the record still shows it after a crash, nobody else has held the lock
 * since, and the transaction may be replayed.
 */
uint64_t lk_lock_version(lk_lock *l);

/* The byte offset of the lock record on its LUN. */
uint64_t lk_lock_offset(lk_lock *l);

/* Who holds a lock (for EBUSY messages and vmkfstools -D). */
struct lk_holder_info {
	uint32_t slot;
	uint64_t gen;
	char name[65];
	uint8_t uuid[16];
	int status;              /* enum lk_host_status */
};
enum lk_host_status { LK_HOST_LIVE, LK_HOST_DEAD, LK_HOST_RECOVERING,
		      LK_HOST_STALE };
const char *lk_host_status_name(int s);
struct lk_lock_info {
	enum lk_mode mode;
	uint64_t version;
	uint32_t nholders;
	struct lk_holder_info holders[24];
	enum lk_mode waiter_mode;   /* LK_FREE: nobody waits */
	struct lk_holder_info waiter;
};
int lk_lock_info(lk_lock *l, struct lk_lock_info *info);

#ifdef __cplusplus
}
#endif
#endif /* LK_H */
