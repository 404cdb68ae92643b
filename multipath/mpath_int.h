/*
 * mpath_int.h - multipath devices, private to mpath*.c.
 *
 *   mpath.c         paths of a device, submission, failover, APD / PDL, the
 *                   path checker thread
 *   mpath_policy.c  path selection policies (ops tables) and their syntax
 *   mpath_mgmt.c    status, management calls, registry of open LUNs, json
 *   mpath_pr.c      persistent reservations on every path (mp_lun_pr)
 *
 * Locks: mpath.lock protects everything in struct mpath and struct mpp
 * (states, counters, policy, lists).  It is taken after lun->lock is
 * released and never held while calling into a backend or lun_done(): I/O
 * picked under the lock is submitted after unlocking.  Order when both are
 * needed (never today): mp_lun.lock, then mpath.lock.
 */
#ifndef MPATH_INT_H
#define MPATH_INT_H

#include "lun_int.h"

struct mpath;

/* One path of a multipath device. */
struct mpp {
	struct mpath *m;
	struct mp_path *path;
	char *spec;
	unsigned idx;
	enum mp_path_state state;   /* ACTIVE (usable), DEAD or DISABLED;
				     * STANDBY is only reported (status) */
	bool pdl;                   /* its last failure was PDL */
	unsigned inflight;
	uint64_t ios, bytes, errors;
	uint64_t svc_ns;            /* service time, EWMA 1/8 */
	int last_err;
	bool checking;              /* chk is at the path */
	struct mp_io chk;           /* the checker's TEST UNIT READY */
	/* persistent reservations (mpath_pr.c) */
	uint64_t pr_key;            /* registered on this path's I_T nexus */
	bool registering;           /* preg is at the path */
	bool preg_move;             /* ... and it is the PREEMPT of a move */
	struct mp_io preg;          /* registration before it returns, or
				     * the PREEMPT that moves our holder-only
				     * reservation here */
	struct mp_pr preg_pr;
};

/* Private I/O flag: io->mpath_ names the path the I/O must take; it does
 * not fail over (mpath_pr.c addresses each I_T nexus itself). */
#define MP_IO_ON_PATH_ 0x40000000u

struct mp_policy_conf {
	const struct mp_policy_ops *ops;
	unsigned pref;              /* fixed */
	uint64_t iops, bytes;       /* rr: switch after (bytes 0 = by iops) */
};

struct mp_policy_ops {
	const char *name;
	/* Parse "k=v,..." after the name into c; -EINVAL when bad. */
	int (*parse)(struct mp_policy_conf *c, char *args);
	/* Choose a usable path other than ex (may be NULL) for io, NULL when
	 * there is none.  With mpath.lock held. */
	struct mpp *(*select)(struct mpath *m, const struct mp_io *io,
			      const struct mpp *ex);
	/* Whether the non-current usable paths are standby (fixed, mru). */
	bool one_path;
};

struct mpath {
	struct mp_lun *lun;
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* checker wake-up; check completions */
	struct mpp *paths[MP_MAX_PATHS];
	unsigned npaths;
	struct mp_open_opts popts;  /* for paths added later (no initiator) */
	char *initiator;

	struct mp_policy_conf pol;
	unsigned cur;               /* current path of fixed, mru, rr */
	uint64_t rr_count, rr_bytes; /* since rr switched */
	unsigned rot;               /* lqd / st tie breaker */
	struct mpp *pin;            /* holds a reservation that belongs to
				     * its I_T nexus alone (SCSI-2, or PR
				     * Write / Exclusive Access) */
	/* persistent reservations made through mp_lun_pr (mpath_pr.c) */
	uint64_t pr_key;            /* our key on every path; 0 = none */
	struct mpp *pr_holder;      /* reserved through this path, or NULL */
	enum mp_pr_type pr_type;
	bool holder_lost;           /* holder-only type, holder path died:
				     * I/O waits until a PREEMPT moved it,
				     * at most apd_ns after holder_lost_ns */
	uint64_t holder_lost_ns;
	bool moving;                /* that PREEMPT is at a path */

	uint64_t apd_ns, check_ns;
	uint64_t apd_since;         /* all paths down since; 0 = not */
	bool pdl;                   /* every path reported PDL */
	struct mp_io *wait_head, *wait_tail;  /* waiting for a path (APD) */
	struct mp_io *fail_head, *fail_tail;  /* to fail from the checker */
	uint64_t failovers;

	pthread_t checker;
	bool stop, check_now;
	uint64_t next_check;
	unsigned checks_out;        /* chk I/O at paths */
	uint64_t check_rounds;      /* completed check rounds */
};

static inline bool mpp_usable(const struct mpp *p)
{
	return p && p->state == MP_PATH_ACTIVE;
}

/* mpath_policy.c */
/* Parse a policy string ("rr,iops=1") into c. */
int mp_policy_parse(const char *s, struct mp_policy_conf *c);
/* Format c the way mp_policy_parse takes it. */
void mp_policy_format(const struct mp_policy_conf *c, char *buf, size_t len);

/* mpath.c */
/* A path's I/O completions and checks come here. */
void mpath_done(void *arg, struct mp_io *io, int result);
/* Open one more path (identity checked against path 0 when there is one),
 * with m->lock NOT held; the caller links it.  */
int mpath_path_open(struct mpath *m, const char *spec, struct mpp **out);
/* After path states changed: APD bookkeeping and I/O waiting for a path,
 * moved to *run (to submit after unlocking).  With m->lock held. */
void mpath_paths_changed(struct mpath *m, struct mp_io **run);
/* Submit a list made by mpath_paths_changed (m->lock not held). */
void mpath_run(struct mpath *m, struct mp_io *run);
/* Mark p dead for err (m->lock held); I/O to move goes to *run. */
void mpath_path_dead(struct mpath *m, struct mpp *p, int err,
		     struct mp_io **run);
/* A dead path passed its check (and is registered): active again. */
void mpath_path_back(struct mpath *m, struct mpp *p, struct mp_io **run);
/* Whether a result is a path failure (the I_T nexus, not the LUN). */
bool mpath_path_error(int result);

/* mpath_pr.c */
/* Whether dead path p, which just passed its check, may return to
 * service; if not because it lacks our registration, *reg is set to
 * p->preg, prepared for the caller to submit after unlocking (unless one
 * is at the path already).  m->lock held. */
bool mpath_pr_ready(struct mpath *m, struct mpp *p, struct mp_io **reg);
/* The registration io of p completed (mpath_done). */
void mpath_pr_reg_done(struct mpath *m, struct mpp *p, int result);
/* Path p died (m->lock held): if it held our holder-only reservation,
 * start moving it; the PREEMPT to submit goes onto *run. */
void mpath_pr_path_dead(struct mpath *m, struct mpp *p, struct mp_io **run);
/* Whether I/O must wait for a move of our reservation (m->lock held). */
static inline bool mpath_pr_waiting(const struct mpath *m)
{
	return m->holder_lost;
}

#endif /* MPATH_INT_H */
