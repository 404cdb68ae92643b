/*
 * lun_int.h - the mp_lun object, shared by the files that implement it:
 *
 *   lun.c        submission, completion, open/close, synchronous helpers
 *   lunq.c       the device queue: FIFO, or start-time fair queuing by
 *                shares once an opener asked for shares; adaptive queue
 *                depth
 *   mpath.c      multipath devices: paths, policies, failover, APD/PDL,
 *                the path checker
 *   mpath_mgmt.c status, management, the registry of open LUNs, json
 *
 * Single-path LUNs (lun->mp == NULL) take exactly the path they always
 * took: one branch in lun_submit_path() and the FIFO; nothing else of
 * multipath or shares runs unless asked for.  Adaptive depth (on by
 * default) adds a few counter updates per completion under the lock
 * lun_done() holds anyway, and work only when QUEUE FULL / BUSY come back.
 */
#ifndef LUN_INT_H
#define LUN_INT_H

#include "mp_int.h"

struct mpath;
struct deferred;

/* An opener with shares (mp.h, disk shares).  Fields under lun->lock. */
struct mp_share {
	struct mp_lun *lun;
	unsigned shares;
	uint64_t finish;            /* finish tag of its last queued I/O */
	struct mp_io *head, *tail;  /* queued I/O, FIFO */
	unsigned pending;           /* queued + in flight */
	struct mp_share *next;      /* lun->shares */
};

struct mp_lun {
	char *spec;
	struct mp_path *path;       /* the only path, or path 0 of lun->mp */
	struct mpath *mp;           /* NULL: single path */
	unsigned flags;
	unsigned resconflict_ms;
	bool fenced;                /* atomic: read on every submit */
	uint64_t wait_ns;           /* atomic: recent mp_io_wait latency
				     * (moving average), for spinning */

	pthread_mutex_t lock;
	pthread_cond_t idle;        /* inflight + queued == 0 */
	unsigned inflight;          /* at the path, or deferred for retry */
	unsigned queued;
	unsigned qdepth;            /* current depth (adaptive may lower it) */
	unsigned max_qdepth;        /* configured depth */
	struct mp_io *qhead, *qtail; /* FIFO, while no share handle exists */
	struct mp_lun_stats st;

	/* adaptive queue depth (on unless MP_OPEN_FIXED_QD) */
	bool adaptive;
	unsigned qfull_sample, qfull_threshold;
	unsigned qfull_count, good_count;
	unsigned epoch;             /* bumped at each decrease */
	unsigned round_left;        /* completions before the next increase */
	uint64_t qfull_total;

	/* shares: once sfq is set it stays, and every queued I/O is in the
	 * queue of its share (the default one for I/O without a handle) */
	bool sfq;
	uint64_t vtime;             /* start tag of the last dispatched I/O */
	struct mp_share dflt;
	struct mp_share *shares;

	/* retry timer */
	pthread_t timer;
	bool timer_started, timer_stop;
	pthread_cond_t timer_cond;
	struct deferred *dlist;     /* sorted by due_ns */

	struct mp_lun *reg_next;    /* registry of open LUNs (mpath_mgmt.c) */
};

/* lun.c */
/* Hand io to a path: the only one, or the multipath device's choice. */
void lun_submit_path(struct mp_lun *lun, struct mp_io *io);
/* Where every path reports completions (single path) and where the
 * multipath layer delivers what it does not retry. */
void lun_done(void *arg, struct mp_io *io, int result);

/* lun_bounce.c */
/* Give io an aligned copy of its buffers when the path needs one. */
int bounce_setup(struct mp_lun *lun, struct mp_io *io);
/* Copy back (reads, miscompare data) and free; restores io's vector. */
void bounce_finish(struct mp_io *io, int result);

/* lunq.c (all with lun->lock held) */
/* Queue io behind the others of its share (or the FIFO). */
void lunq_push(struct mp_lun *lun, struct mp_io *io);
/* Queue io to go next (a QUEUE FULL requeue). */
void lunq_push_front(struct mp_lun *lun, struct mp_io *io);
/* Take the next I/O to dispatch, NULL when none. */
struct mp_io *lunq_pop(struct mp_lun *lun);
/* Adaptive depth: account the completion of io (qfull: QUEUE FULL or
 * BUSY). */
void lunq_adapt(struct mp_lun *lun, const struct mp_io *io, bool qfull);
/* Pop what fits under the depth into a list (linked by next_) to
 * submit after unlocking; counts them in flight. */
struct mp_io *lunq_take_ready(struct mp_lun *lun);
/* An I/O of s left the device (completed for good). */
void lunq_share_done(struct mp_lun *lun, struct mp_io *io);

/* mpath.c */
int mpath_open(struct mp_lun *lun, const char *const specs[], unsigned n,
	       const struct mp_open_opts *o);
void mpath_close(struct mpath *m);
/* Route io to a path of the device (or the APD wait, or a failure
 * delivered from the checker thread: never on this stack). */
void mpath_submit(struct mpath *m, struct mp_io *io);

/* mpath_pr.c: mp_lun_pr on a multipath device */
int mpath_pr(struct mp_lun *lun, struct mp_pr *pr);

/* mpath_mgmt.c */
void mp_registry_add(struct mp_lun *lun);
void mp_registry_del(struct mp_lun *lun);
int mpath_status(struct mpath *m, struct mp_lun_status *st,
		 struct mp_path_status *paths, unsigned max);
struct mp_path *mpath_path(struct mpath *m, unsigned idx);

#endif /* LUN_INT_H */
