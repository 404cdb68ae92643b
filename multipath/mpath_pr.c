/*
 * mpath_pr.c - SCSI-3 persistent reservations on a multipath device.
 *
 * A registration belongs to an I_T nexus, and every path of a device is
 * one (on iSCSI its own session with its own ISID).  A registration made
 * down one path only would not survive a failover: I/O moved to another
 * path of a LUN reserved "registrants only" or "all registrants" would meet
 * RESERVATION CONFLICT there.  So, as a multipathing plugin does,
 * mp_lun_pr() on a multipath device works on every path:
 *
 *   REGISTER, REGISTER AND IGNORE EXISTING KEY: the caller's command down
 *       one working path, then REGISTER AND IGNORE with the same new key
 *       down every other working path.  The key is remembered: a path that
 *       was dead or disabled then, or is added later, is registered when
 *       its check passes and only then returns to service
 *       (mpath_pr_ready(), on the checker's completion).  A path that
 *       refuses the registration is taken out of service until it takes it.
 *   RESERVE: down the path that holds our reservation, else one working
 *       path; the holder path and type are remembered.  Write Exclusive and
 *       Exclusive Access give access to the holder's nexus alone, so the
 *       device is pinned to that path (as for a SCSI-2 RESERVE), and when
 *       it dies the reservation is moved (move_start(): I/O waits for it);
 *       with the registrants-only and all-registrants types every
 *       registered nexus has access and I/O fails over with the
 *       reservation kept.
 *   RELEASE: down the holder's path (from another nexus the standard makes
 *       it a no-op that still answers GOOD).  When that path is dead the
 *       reservation is first moved to a working path by a PREEMPT of our
 *       own key (SPC-4: the preempting nexus takes the reservation, the
 *       other nexuses of that key lose their registrations), the other
 *       working paths are registered again, then it is released.
 *   CLEAR, PREEMPT, PREEMPT AND ABORT: down one working path (the holder's
 *       if it works).  CLEAR forgets every registration; after a PREEMPT
 *       the reservation is read back to learn whether we hold it.
 *   READ KEYS, READ RESERVATION: down any working path.
 *
 * A PERSISTENT RESERVE OUT that fails for a path reason surfaces (it may
 * have been applied), as on any path; READ KEYS shows what happened.  The
 * commands here go to one named path each (MP_IO_ON_PATH_) and the caller
 * waits for each: mp_lun_pr() is synchronous, and must not be called from
 * a completion callback.  mp_io_submit() of MP_OP_PR_OUT works on one path
 * as on a single-path LUN and none of this applies.
 */
#include <errno.h>
#include <string.h>

#include "mpath_int.h"

static bool holder_only(enum mp_pr_type t)
{
	return t == MP_PR_WRITE_EXCLUSIVE || t == MP_PR_EXCLUSIVE_ACCESS;
}

/* Send pr down path p alone and wait for it. */
static int pr_on(struct mp_lun *lun, struct mpp *p, struct mp_pr *pr)
{
	struct mp_io io;
	int ret;

	memset(&io, 0, sizeof(io));
	io.op = pr->action >= MP_PR_READ_KEYS ? MP_OP_PR_IN : MP_OP_PR_OUT;
	io.arg = pr;
	io.flags = MP_IO_ON_PATH_;
	io.mpath_ = p;
	ret = mp_io_submit(lun, &io);
	return ret ? ret : mp_io_wait(&io);
}

/* The working paths, first (when it works) ahead of the others. */
static unsigned usable_paths(struct mpath *m, struct mpp **out,
			     const struct mpp *first)
{
	unsigned n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->npaths; i++)
		if (m->paths[i] == first && mpp_usable(first))
			out[n++] = m->paths[i];
	for (unsigned i = 0; i < m->npaths; i++)
		if (m->paths[i] != first && mpp_usable(m->paths[i]))
			out[n++] = m->paths[i];
	pthread_mutex_unlock(&m->lock);
	return n;
}

static struct mpp *holder_of(struct mpath *m)
{
	struct mpp *h;

	pthread_mutex_lock(&m->lock);
	h = m->pr_holder;
	pthread_mutex_unlock(&m->lock);
	return h;
}

/* Try pr down each working path in turn (first one first) until one
 * answers for the LUN rather than failing as a path; *on = that path. */
static int pr_any(struct mp_lun *lun, struct mp_pr *pr, const struct mpp *first,
		  struct mpp **on)
{
	struct mpp *ps[MP_MAX_PATHS];
	unsigned n = usable_paths(lun->mp, ps, first);
	int ret = -ENOTCONN;

	for (unsigned i = 0; i < n; i++) {
		ret = pr_on(lun, ps[i], pr);
		if (!mpath_path_error(ret) && ret != -ENOTCONN) {
			*on = ps[i];
			break;
		}
	}
	return ret;
}

/* Our reservation is gone (released, cleared, preempted, unregistered). */
static void forget_reservation(struct mpath *m)
{
	if (m->pr_holder && m->pin == m->pr_holder && holder_only(m->pr_type))
		m->pin = NULL;
	m->pr_holder = NULL;
	m->holder_lost = false;      /* settle() lets waiting I/O go */
}

/* Register key on every working path except skip (REGISTER AND IGNORE:
 * right whatever the nexus had).  A path that refuses is dead until its
 * check passes and the registration is made then. */
static void register_others(struct mp_lun *lun, const struct mpp *skip,
			    uint64_t key)
{
	struct mpath *m = lun->mp;
	struct mpp *ps[MP_MAX_PATHS];
	unsigned n = usable_paths(m, ps, NULL);

	for (unsigned i = 0; i < n; i++) {
		struct mp_pr r = { .action = MP_PR_REGISTER_IGNORE,
				   .sa_key = key };
		struct mp_io *run = NULL;
		int ret;

		if (ps[i] == skip)
			continue;
		ret = pr_on(lun, ps[i], &r);
		pthread_mutex_lock(&m->lock);
		if (!ret) {
			ps[i]->pr_key = key;
		} else {
			mp_log("%s: path %u: PR registration failed: %s; out of "
			       "service until registered", lun->spec, ps[i]->idx,
			       mp_strerror(ret));
			mpath_path_dead(m, ps[i], ret, &run);
		}
		pthread_mutex_unlock(&m->lock);
		mpath_run(m, run);
	}
}

static int pr_take(struct mp_lun *lun, enum mp_pr_type type, struct mpp **on,
		   const char *why);

static int pr_register(struct mp_lun *lun, struct mp_pr *pr)
{
	struct mpath *m = lun->mp;
	enum mp_pr_type type;
	struct mpp *on = NULL;
	uint64_t old;
	int ret;

	pthread_mutex_lock(&m->lock);
	old = m->pr_key;
	type = m->pr_holder ? m->pr_type : MP_PR_WRITE_EXCLUSIVE_REGS_ONLY;
	pthread_mutex_unlock(&m->lock);
	/* Unregistering: first make one nexus the only one with our key, so
	 * that no stale nexus (see pr_take) keeps it registered; if that
	 * fails, the unregistering below still does what it can. */
	if (!pr->sa_key && old)
		pr_take(lun, type, &on, "unregistering");
	/* A registration that failed as a path failure may or may not have
	 * been applied to that nexus; either way the next path is another
	 * nexus, and every path ends up with the new key. */
	ret = pr_any(lun, pr, on ? on : holder_of(m), &on);
	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	m->pr_key = pr->sa_key;
	on->pr_key = pr->sa_key;
	if (!pr->sa_key)
		forget_reservation(m);   /* unregistering releases it */
	pthread_mutex_unlock(&m->lock);
	register_others(lun, on, pr->sa_key);
	return 0;
}

static void set_holder(struct mpath *m, struct mpp *p, enum mp_pr_type type)
{
	forget_reservation(m);
	m->pr_holder = p;
	m->pr_type = type;
	if (holder_only(type))
		m->pin = p;
}

static int pr_reserve(struct mp_lun *lun, struct mp_pr *pr)
{
	struct mpath *m = lun->mp;
	struct mpp *ps[MP_MAX_PATHS];
	int ret;

	/* Not tried on another path after a path failure: the first may
	 * have taken the reservation for its own nexus. */
	if (!usable_paths(m, ps, holder_of(m)))
		return -ENOTCONN;
	ret = pr_on(lun, ps[0], pr);
	if (!ret) {
		pthread_mutex_lock(&m->lock);
		set_holder(m, ps[0], pr->type);
		pthread_mutex_unlock(&m->lock);
	}
	return ret;
}

/*
 * PREEMPT our own key from a working path: that nexus keeps its
 * registration and, if we hold a reservation (m->pr_holder), takes it as
 * type; every other nexus registered with our key loses its registration:
 * the dead holder path's, and the stale ones a target keeps for sessions
 * that a reconnect replaced (tgt names a nexus by session, so a path's
 * reconnect is a new nexus to it while the old one lingers, registered,
 * maybe holding the reservation).  The caller registers the other paths
 * again if it wants them.  *on = the path that preempted.
 */
static int pr_take(struct mp_lun *lun, enum mp_pr_type type, struct mpp **on,
		   const char *why)
{
	struct mpath *m = lun->mp;
	struct mpp *ps[MP_MAX_PATHS];
	struct mp_pr r = { .action = MP_PR_PREEMPT, .type = type };
	int ret;

	pthread_mutex_lock(&m->lock);
	r.key = r.sa_key = m->pr_key;
	pthread_mutex_unlock(&m->lock);
	if (!usable_paths(m, ps, NULL))
		return -ENOTCONN;
	ret = pr_on(lun, ps[0], &r);
	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->npaths; i++)
		if (m->paths[i] != ps[0])
			m->paths[i]->pr_key = 0;
	/* Our key held the reservation: the preempting nexus holds it now.
	 * Otherwise only registrations went. */
	if (m->pr_holder)
		set_holder(m, ps[0], type);
	pthread_mutex_unlock(&m->lock);
	mp_log("%s: %s: our key preempted from path %u, the only nexus "
	       "registered with it now", lun->spec, why, ps[0]->idx);
	*on = ps[0];
	return 0;
}

static int pr_release(struct mp_lun *lun, struct mp_pr *pr)
{
	struct mpath *m = lun->mp;
	struct mp_pr rr = { .action = MP_PR_READ_RESERVATION };
	struct mpp *ps[MP_MAX_PATHS], *holder;
	enum mp_pr_type type;
	bool dead;
	int ret;

	pthread_mutex_lock(&m->lock);
	holder = m->pr_holder;
	type = m->pr_type;
	dead = holder && !mpp_usable(holder) &&
	       type != MP_PR_WRITE_EXCLUSIVE_ALL_REGS &&
	       type != MP_PR_EXCLUSIVE_ACCESS_ALL_REGS;
	pthread_mutex_unlock(&m->lock);
	if (dead) {
		unsigned from = holder->idx;

		ret = pr_take(lun, type, &holder, "releasing");
		if (ret)
			return ret;
		mp_log("%s: reservation moved from path %u (dead) to path %u",
		       lun->spec, from, holder->idx);
		register_others(lun, holder, pr->key);
	}
	if (!usable_paths(m, ps, holder))
		return -ENOTCONN;
	ret = pr_on(lun, ps[0], pr);
	/* From a nexus that does not hold it, RELEASE answers GOOD and does
	 * nothing: the holder may be a stale nexus of a path that
	 * reconnected.  Take it from there, then release it. */
	if (!ret && pr_on(lun, ps[0], &rr) == 0 && rr.reserved &&
	    rr.holder_key == pr->key) {
		ret = pr_take(lun, rr.holder_type, &holder,
			      "reservation held by a nexus we no longer have");
		if (!ret) {
			register_others(lun, holder, pr->key);
			ret = pr_on(lun, holder, pr);
		}
	}
	if (!ret) {
		pthread_mutex_lock(&m->lock);
		forget_reservation(m);
		pthread_mutex_unlock(&m->lock);
	}
	return ret;
}

/* CLEAR, PREEMPT, PREEMPT AND ABORT. */
static int pr_other(struct mp_lun *lun, struct mp_pr *pr)
{
	struct mpath *m = lun->mp;
	struct mp_pr rr = { .action = MP_PR_READ_RESERVATION };
	struct mpp *ps[MP_MAX_PATHS];
	bool own;
	int ret;

	if (!usable_paths(m, ps, holder_of(m)))
		return -ENOTCONN;
	ret = pr_on(lun, ps[0], pr);
	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	if (pr->action == MP_PR_CLEAR) {
		m->pr_key = 0;
		for (unsigned i = 0; i < m->npaths; i++)
			m->paths[i]->pr_key = 0;
		forget_reservation(m);
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	own = m->pr_key && pr->sa_key == m->pr_key;
	if (own)
		for (unsigned i = 0; i < m->npaths; i++)
			if (m->paths[i] != ps[0])
				m->paths[i]->pr_key = 0;
	pthread_mutex_unlock(&m->lock);
	if (own)
		register_others(lun, ps[0], pr->sa_key);
	/* Whoever held it, the preempting nexus holds it now if anyone of
	 * our key does. */
	if (pr_on(lun, ps[0], &rr) == 0) {
		pthread_mutex_lock(&m->lock);
		if (rr.reserved && m->pr_key && rr.holder_key == m->pr_key)
			set_holder(m, ps[0], rr.holder_type);
		else
			forget_reservation(m);
		pthread_mutex_unlock(&m->lock);
	}
	return 0;
}

/* After a change of holder: I/O that waited for a move goes now. */
static void settle(struct mpath *m)
{
	struct mp_io *run = NULL;

	pthread_mutex_lock(&m->lock);
	if (!m->holder_lost)
		mpath_paths_changed(m, &run);
	pthread_mutex_unlock(&m->lock);
	mpath_run(m, run);
}

int mpath_pr(struct mp_lun *lun, struct mp_pr *pr)
{
	struct mpath *m = lun->mp;
	struct mpp *on;
	int ret = -EINVAL;

	/* Not while the checker's side moves our reservation. */
	pthread_mutex_lock(&m->lock);
	while (m->moving)
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
	switch (pr->action) {
	case MP_PR_READ_KEYS:
	case MP_PR_READ_RESERVATION:
		return pr_any(lun, pr, NULL, &on);
	case MP_PR_REGISTER:
	case MP_PR_REGISTER_IGNORE:
		ret = pr_register(lun, pr);
		break;
	case MP_PR_RESERVE:
		ret = pr_reserve(lun, pr);
		break;
	case MP_PR_RELEASE:
		ret = pr_release(lun, pr);
		break;
	case MP_PR_CLEAR:
	case MP_PR_PREEMPT:
	case MP_PR_PREEMPT_ABORT:
		ret = pr_other(lun, pr);
		break;
	}
	settle(m);
	return ret;
}

/* ---- paths returning to service, holders moving ------------------------------ */

/*
 * Write Exclusive / Exclusive Access give access to the holder's nexus
 * alone.  When the holder path dies, I/O waits (pick() gives no path)
 * while a PREEMPT of our own key from a working registered path moves the
 * reservation there; then the device is pinned to that path and the others
 * (whose registrations the PREEMPT removed) go through the checker to be
 * registered again.  If no path can take it now, the first one to come
 * back does - also the old holder itself, which on a target that makes
 * every session a new nexus no longer holds it after its reconnect.
 * m->lock held.
 */
static struct mp_io *move_start(struct mpath *m)
{
	struct mpp *q = NULL;

	if (!m->holder_lost || m->moving)
		return NULL;
	for (unsigned i = 0; i < m->npaths && !q; i++) {
		struct mpp *p = m->paths[i];

		if (mpp_usable(p) && !p->registering && p->pr_key == m->pr_key)
			q = p;
	}
	if (!q)
		return NULL;
	m->moving = true;
	q->registering = true;
	q->preg_move = true;
	m->checks_out++;             /* mpath_close waits for it */
	memset(&q->preg, 0, sizeof(q->preg));
	memset(&q->preg_pr, 0, sizeof(q->preg_pr));
	q->preg_pr.action = MP_PR_PREEMPT;
	q->preg_pr.type = m->pr_type;
	q->preg_pr.key = q->preg_pr.sa_key = m->pr_key;
	q->preg.op = MP_OP_PR_OUT;
	q->preg.arg = &q->preg_pr;
	q->preg.mpath_ = q;
	return &q->preg;
}

void mpath_pr_path_dead(struct mpath *m, struct mpp *p, struct mp_io **run)
{
	struct mp_io *io;

	if (p == m->pr_holder && m->pr_key && holder_only(m->pr_type) &&
	    !m->holder_lost) {
		mp_log("%s: path %u held our reservation: I/O waits while it "
		       "moves", m->lun->spec, p->idx);
		m->holder_lost = true;
		m->holder_lost_ns = mp_now_ns();
	}
	/* Also when the path a move was trying died: another one. */
	io = move_start(m);
	if (io) {
		io->next_ = *run;
		*run = io;
	}
}

/* The PREEMPT of a move completed on p (m->lock held). */
static void move_done(struct mpath *m, struct mpp *p, int result,
		      struct mp_io **run)
{
	m->moving = false;
	if (result) {
		mp_log("%s: moving our reservation to path %u failed: %s",
		       m->lun->spec, p->idx, mp_strerror(result));
		if (mpath_path_error(result)) {
			/* Dead, so the next try goes to another path. */
			mpath_path_dead(m, p, result, run);
		} else {
			/* Refused by the LUN (another host preempted us?):
			 * stop waiting; I/O meets what the LUN says. */
			forget_reservation(m);
			mpath_paths_changed(m, run);
		}
		return;
	}
	for (unsigned i = 0; i < m->npaths; i++) {
		struct mpp *o = m->paths[i];

		if (o == p)
			continue;
		o->pr_key = 0;
		if (o->state == MP_PATH_ACTIVE) {
			/* Unregistered by the PREEMPT: back after the
			 * checker registered it again, right now. */
			o->state = MP_PATH_DEAD;
			m->check_now = true;
		}
	}
	set_holder(m, p, m->pr_type);
	mp_log("%s: reservation moved to path %u", m->lun->spec, p->idx);
	mpath_paths_changed(m, run);
}

bool mpath_pr_ready(struct mpath *m, struct mpp *p, struct mp_io **reg)
{
	/* Registered again even when it should still hold our key: a target
	 * restarted meanwhile has forgotten it, and REGISTER AND IGNORE is
	 * harmless when it has not. */
	if (!m->pr_key && !p->pr_key)
		return true;
	if (p->registering)
		return false;
	p->registering = true;
	m->checks_out++;             /* mpath_close waits for it */
	memset(&p->preg, 0, sizeof(p->preg));
	memset(&p->preg_pr, 0, sizeof(p->preg_pr));
	p->preg_pr.action = MP_PR_REGISTER_IGNORE;
	p->preg_pr.sa_key = m->pr_key;
	p->preg.op = MP_OP_PR_OUT;
	p->preg.arg = &p->preg_pr;
	p->preg.mpath_ = p;
	*reg = &p->preg;
	return false;
}

void mpath_pr_reg_done(struct mpath *m, struct mpp *p, int result)
{
	struct mp_io *run = NULL, *reg;

	pthread_mutex_lock(&m->lock);
	p->registering = false;
	m->checks_out--;
	if (p->preg_move) {
		p->preg_move = false;
		move_done(m, p, result, &run);
	} else if (result == 0) {
		p->pr_key = p->preg_pr.sa_key;
		mp_log("%s: path %u registered with key 0x%llx", m->lun->spec,
		       p->idx, (unsigned long long)p->pr_key);
		if (p->state == MP_PATH_DEAD && p->pr_key == m->pr_key)
			mpath_path_back(m, p, &run);
	} else {
		p->last_err = result;
		mp_log("%s: path %u: PR registration failed: %s; out of service "
		       "until registered", m->lun->spec, p->idx,
		       mp_strerror(result));
	}
	/* A move waiting for a registered path may start now. */
	reg = move_start(m);
	if (reg) {
		reg->next_ = run;
		run = reg;
	}
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	mpath_run(m, run);
}
