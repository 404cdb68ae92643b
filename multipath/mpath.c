/*
 * mpath.c - multipath devices: several paths to one LUN behind one mp_lun.
 *
 * Between lun.c and the paths.  lun.c hands every I/O (after validation,
 * bounce buffers and the device queue) to mpath_submit(); the policy picks
 * a usable path; the path's completion comes back to mpath_done(), which
 * either delivers it to lun_done() or sends it down another path.
 *
 * Failure classes (classify()):
 *   path    transport failure, connection loss, timeout: the path is marked
 *           dead and the I/O goes down another path - except the commands
 *           that may have been applied before the path failed (COMPARE AND
 *           WRITE, RESERVE, PERSISTENT RESERVE OUT), which surface;
 *   retry   NOT READY / UNIT ATTENTION (-EAGAIN): another path if there is
 *           one, else lun.c's own delayed retries on the same path;
 *   pdl     permanent device loss: surfaces at once; the path is dead, and
 *           when every path said so the device fails all I/O at once;
 *   other   success and device errors (medium, illegal request, miscompare,
 *           reservation conflict, QUEUE FULL ...): delivered as they are.
 *
 * All paths down (APD): I/O waits on m->wait until a path passes a check,
 * or until apd_ns after the last path died; then it fails with -EIO, and so
 * does new I/O until a path returns.  An I/O that keeps failing over for
 * longer than apd_ns in all (paths flapping) fails with -EIO too, so no
 * I/O waits forever.
 *
 * Nothing here completes an I/O on the submitter's stack: I/O that must
 * fail at submission goes to m->fail and the checker thread delivers it.
 *
 * The checker thread sends each enabled path a TEST UNIT READY (a direct
 * read on files) every check_ns - every second while all paths are down -
 * at most one per path at a time; a passing check revives a dead path, a
 * failing one kills an active path.  It also fails I/O whose APD wait
 * expired.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mpath_int.h"

#define DEFAULT_APD_MS 140000u
#define DEFAULT_CHECK_MS 5000u
#define APD_CHECK_NS 1000000000ull
#define DEFAULT_PATH_TIMEOUT_MS 4000u

enum fclass { FC_OTHER, FC_PATH, FC_RETRY, FC_PDL };

static enum fclass classify(int result)
{
	switch (-result) {
	case MP_E_TRANSPORT:
	case ETIMEDOUT:
	case ECONNRESET:
	case ECONNREFUSED:
	case ECONNABORTED:
	case ENOTCONN:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENETDOWN:
	case EPIPE:
		return FC_PATH;
	case EAGAIN:
		return FC_RETRY;
	case MP_E_PDL:
		return FC_PDL;
	default:
		return FC_OTHER;
	}
}

bool mpath_path_error(int result)
{
	return classify(result) == FC_PATH;
}

/* Commands a failed path may have applied: resending could apply them
 * twice (a CAW that succeeded would miscompare against its own data). */
static bool may_have_applied(const struct mp_io *io)
{
	return io->op == MP_OP_CAW || io->op == MP_OP_RESERVE ||
	       io->op == MP_OP_PR_OUT;
}

static void list_push(struct mp_io **head, struct mp_io **tail,
		      struct mp_io *io)
{
	io->next_ = NULL;
	if (*tail)
		(*tail)->next_ = io;
	else
		*head = io;
	*tail = io;
}

static struct mpp *pick(struct mpath *m, const struct mp_io *io,
			const struct mpp *ex)
{
	if (mpath_pr_waiting(m))
		return NULL;    /* until our reservation has moved */
	if (mpp_usable(m->pin) && m->pin != ex)
		return m->pin;
	return m->pol.ops->select(m, io, ex);
}

/*
 * Route io (m->lock held): onto a usable path other than ex (appended to
 * *run with io->mpath_ set), the wait list (APD), or the fail list.
 */
static void route(struct mpath *m, struct mp_io *io, const struct mpp *ex,
		  struct mp_io **run)
{
	uint64_t now = mp_now_ns();
	struct mpp *p;

	if (m->pdl) {
		io->result = -MP_E_PDL;
		list_push(&m->fail_head, &m->fail_tail, io);
		pthread_cond_signal(&m->cond);
		return;
	}
	if (__atomic_load_n(&m->lun->fenced, __ATOMIC_ACQUIRE) &&
	    !(io->flags & MP_IO_FENCE_BYPASS)) {
		/* Fenced while it waited for a path (APD, a failover, a
		 * reservation moving): a fenced host must not write now,
		 * when other hosts may have broken its locks. */
		io->result = -MP_E_FENCED;
		list_push(&m->fail_head, &m->fail_tail, io);
		pthread_cond_signal(&m->cond);
		return;
	}
	if (io->flags & MP_IO_ON_PATH_) {
		/* For that I_T nexus alone: no other path, no waiting. */
		p = io->mpath_;
		if (mpp_usable(p)) {
			p->inflight++;
			io->next_ = *run;
			*run = io;
		} else {
			io->result = -ENOTCONN;
			list_push(&m->fail_head, &m->fail_tail, io);
			pthread_cond_signal(&m->cond);
		}
		return;
	}
	if (now - io->start_ns_ > m->apd_ns) {
		/* failed over for longer than an APD timeout: give up */
		io->result = -EIO;
		list_push(&m->fail_head, &m->fail_tail, io);
		pthread_cond_signal(&m->cond);
		return;
	}
	p = pick(m, io, ex);
	if (p) {
		p->inflight++;
		io->mpath_ = p;
		io->next_ = *run;
		*run = io;
		return;
	}
	if (m->apd_since && now - m->apd_since >= m->apd_ns) {
		io->result = -EIO;
		list_push(&m->fail_head, &m->fail_tail, io);
	} else {
		list_push(&m->wait_head, &m->wait_tail, io);
	}
	pthread_cond_signal(&m->cond);
}

void mpath_run(struct mpath *m, struct mp_io *run)
{
	while (run) {
		struct mp_io *n = run->next_;
		struct mpp *p = run->mpath_;

		run->next_ = NULL;
		run->path_ns_ = mp_now_ns();
		p->path->ops->submit(p->path, run);
		run = n;
	}
}

void mpath_submit(struct mpath *m, struct mp_io *io)
{
	struct mp_io *run = NULL;

	pthread_mutex_lock(&m->lock);
	route(m, io, NULL, &run);
	pthread_mutex_unlock(&m->lock);
	mpath_run(m, run);
}

void mpath_paths_changed(struct mpath *m, struct mp_io **run)
{
	unsigned usable = 0, pdl = 0;

	for (unsigned i = 0; i < m->npaths; i++) {
		usable += mpp_usable(m->paths[i]);
		pdl += m->paths[i]->pdl;
	}
	if (!usable && !m->apd_since) {
		m->apd_since = mp_now_ns();
		mp_log("%s: all paths down; I/O waits up to %llu ms for one",
		       m->lun->spec, (unsigned long long)(m->apd_ns / 1000000));
		pthread_cond_signal(&m->cond);   /* check more often */
	} else if (usable && m->apd_since) {
		mp_log("%s: a path is back after %llu ms with all paths down",
		       m->lun->spec, (unsigned long long)
		       ((mp_now_ns() - m->apd_since) / 1000000));
		m->apd_since = 0;
	}
	if (!m->pdl && pdl == m->npaths) {
		mp_log("%s: permanent device loss on every path", m->lun->spec);
		m->pdl = true;
	} else if (m->pdl && pdl < m->npaths) {
		m->pdl = false;   /* a path passed a check again */
	}
	if (usable || m->pdl) {
		struct mp_io *w = m->wait_head;

		m->wait_head = m->wait_tail = NULL;
		while (w) {
			struct mp_io *n = w->next_;

			route(m, w, NULL, run);
			w = n;
		}
	}
}

void mpath_path_dead(struct mpath *m, struct mpp *p, int err,
		     struct mp_io **run)
{
	p->last_err = err;
	if (p->state != MP_PATH_ACTIVE)
		return;
	p->state = MP_PATH_DEAD;
	mp_log("%s: path %u (%s) dead: %s", m->lun->spec, p->idx, p->spec,
	       mp_strerror(err));
	mpath_pr_path_dead(m, p, run);
	mpath_paths_changed(m, run);
}

void mpath_path_back(struct mpath *m, struct mpp *p, struct mp_io **run)
{
	p->state = MP_PATH_ACTIVE;
	mp_log("%s: path %u (%s) is back", m->lun->spec, p->idx, p->spec);
	mpath_paths_changed(m, run);
}

/* ---- completions ----------------------------------------------------------- */

static bool check_alive(int result)
{
	/* The path carried the command and the LUN answered. */
	return result >= 0 || result == -MP_E_RESCONFLICT ||
	       result == -EAGAIN || result == -MP_E_BUSY ||
	       result == -MP_E_QFULL;
}

static void check_done(struct mpath *m, struct mpp *p, int result)
{
	struct mp_io *run = NULL, *reg = NULL;

	pthread_mutex_lock(&m->lock);
	p->checking = false;
	m->checks_out--;
	if (check_alive(result)) {
		p->pdl = false;
		/* Back now, or once registered with our PR key (reg). */
		if (p->state == MP_PATH_DEAD && mpath_pr_ready(m, p, &reg))
			mpath_path_back(m, p, &run);
	} else {
		if (result == -MP_E_PDL)
			p->pdl = true;
		mpath_path_dead(m, p, result, &run);
		if (p->pdl)
			mpath_paths_changed(m, &run);
	}
	if (!m->checks_out)
		m->check_rounds++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (reg)
		p->path->ops->submit(p->path, reg);
	mpath_run(m, run);
}

void mpath_done(void *arg, struct mp_io *io, int result)
{
	struct mpp *p = arg;
	struct mpath *m = p->m;
	struct mp_io *run = NULL;
	enum fclass fc = classify(result);
	uint64_t svc;

	if (io == &p->chk) {
		check_done(m, p, result);
		return;
	}
	if (io == &p->preg) {
		mpath_pr_reg_done(m, p, result);
		return;
	}
	svc = mp_now_ns() - io->path_ns_;
	pthread_mutex_lock(&m->lock);
	p->inflight--;
	p->ios++;
	if (result > 0)
		p->bytes += (uint64_t)result;
	p->svc_ns = p->svc_ns ? p->svc_ns - p->svc_ns / 8 + svc / 8 : svc;
	if (result < 0) {
		p->errors++;
		p->last_err = result;
	}
	if (io->op == MP_OP_RESERVE && result == 0)
		m->pin = p;
	else if (io->op == MP_OP_RELEASE && m->pin == p)
		m->pin = NULL;

	switch (fc) {
	case FC_PATH:
		mpath_path_dead(m, p, result, &run);
		if (may_have_applied(io) || (io->flags & MP_IO_ON_PATH_))
			break;
		m->failovers++;
		route(m, io, p, &run);
		pthread_mutex_unlock(&m->lock);
		mpath_run(m, run);
		return;
	case FC_RETRY: {
		struct mpp *q = io->flags & MP_IO_ON_PATH_ ? NULL :
				pick(m, io, p);

		if (!q)
			break;       /* lun.c retries on this path later */
		m->failovers++;
		q->inflight++;
		io->mpath_ = q;
		io->next_ = run;
		run = io;
		pthread_mutex_unlock(&m->lock);
		mpath_run(m, run);
		return;
	}
	case FC_PDL:
		p->pdl = true;
		mpath_path_dead(m, p, result, &run);
		mpath_paths_changed(m, &run);
		break;
	case FC_OTHER:
		break;
	}
	pthread_mutex_unlock(&m->lock);
	mpath_run(m, run);
	lun_done(m->lun, io, result);
}

/*
 * A path's backend lost its connection (iSCSI: reset, or NOP-Out keepalive
 * unanswered) or logged in again.  Down: the path is dead now, not at its
 * next I/O or check.  Up: check it now; a passing TEST UNIT READY returns
 * it to service.  On the backend's thread, which holds none of our locks.
 */
static void mpath_event(void *arg, enum mp_path_event ev, int err)
{
	struct mpp *p = arg;
	struct mpath *m = p->m;
	struct mp_io *run = NULL;

	pthread_mutex_lock(&m->lock);
	/* Not linked yet (mpath_path_open still checking it): its first
	 * check decides. */
	if (p->idx >= m->npaths || m->paths[p->idx] != p) {
		pthread_mutex_unlock(&m->lock);
		return;
	}
	if (ev == MP_PATH_EV_DOWN) {
		mpath_path_dead(m, p, err, &run);
	} else if (p->state == MP_PATH_DEAD) {
		m->check_now = true;
		pthread_cond_signal(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	mpath_run(m, run);
}

/* ---- checker ----------------------------------------------------------------- */

static void *checker_main(void *arg)
{
	struct mpath *m = arg;

	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		uint64_t now = mp_now_ns(), wake, period;
		struct mp_io *fail, *chk = NULL;

		if (m->check_now || now >= m->next_check) {
			m->check_now = false;
			for (unsigned i = 0; i < m->npaths; i++) {
				struct mpp *p = m->paths[i];

				if (p->state == MP_PATH_DISABLED || p->checking)
					continue;
				p->checking = true;
				m->checks_out++;
				memset(&p->chk, 0, sizeof(p->chk));
				p->chk.op = MP_OP_TUR;
				p->chk.mpath_ = p;
				p->chk.next_ = chk;
				chk = &p->chk;
			}
			if (!chk)
				m->check_rounds++;
			period = m->apd_since && m->check_ns > APD_CHECK_NS ?
				 APD_CHECK_NS : m->check_ns;
			m->next_check = now + period;
		}
		if ((m->apd_since && now - m->apd_since >= m->apd_ns) ||
		    (m->holder_lost && now - m->holder_lost_ns >= m->apd_ns)) {
			while (m->wait_head) {
				struct mp_io *w = m->wait_head;

				m->wait_head = w->next_;
				w->result = -EIO;
				list_push(&m->fail_head, &m->fail_tail, w);
			}
			m->wait_tail = NULL;
		}
		fail = m->fail_head;
		m->fail_head = m->fail_tail = NULL;
		if (chk || fail) {
			pthread_mutex_unlock(&m->lock);
			while (chk) {
				struct mp_io *n = chk->next_;
				struct mpp *p = chk->mpath_;

				chk->next_ = NULL;
				p->path->ops->submit(p->path, chk);
				chk = n;
			}
			while (fail) {
				struct mp_io *n = fail->next_;

				fail->next_ = NULL;
				lun_done(m->lun, fail, fail->result);
				fail = n;
			}
			pthread_mutex_lock(&m->lock);
			continue;
		}
		wake = m->next_check;
		if (m->apd_since && m->wait_head &&
		    m->apd_since + m->apd_ns < wake)
			wake = m->apd_since + m->apd_ns;
		{
			struct timespec ts;
			uint64_t abs;

			clock_gettime(CLOCK_REALTIME, &ts);
			abs = (uint64_t)ts.tv_sec * 1000000000ull +
			      (uint64_t)ts.tv_nsec + (wake > now ? wake - now : 0);
			ts.tv_sec = (time_t)(abs / 1000000000ull);
			ts.tv_nsec = (long)(abs % 1000000000ull);
			pthread_cond_timedwait(&m->cond, &m->lock, &ts);
		}
	}
	/* Wait for checks still at the paths: their completions use m. */
	while (m->checks_out)
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ---- open / close ------------------------------------------------------------ */

int mpath_path_open(struct mpath *m, const char *spec, struct mpp **out)
{
	struct mpp *p = calloc(1, sizeof(*p));
	const struct mp_lun_info *a, *b;
	int ret;

	if (!p)
		return -ENOMEM;
	p->m = m;
	p->spec = strdup(spec);
	if (!p->spec) {
		ret = -ENOMEM;
		goto free_p;
	}
	ret = mp_path_open(spec, &m->popts, mpath_done, p, &p->path);
	if (ret)
		goto free_spec;
	if (m->npaths) {
		a = &m->paths[0]->path->info;
		b = &p->path->info;
		if (!a->id[0] || strcmp(a->id, b->id) ||
		    a->capacity != b->capacity ||
		    a->logical_sector != b->logical_sector) {
			mp_log("%s: leads to LUN %s (%llu bytes, %u-byte sectors), "
			       "not %s (%llu bytes, %u-byte sectors) like %s",
			       spec, b->id, (unsigned long long)b->capacity,
			       b->logical_sector, a->id,
			       (unsigned long long)a->capacity, a->logical_sector,
			       m->paths[0]->spec);
			ret = -MP_E_IDMISMATCH;
			goto close_path;
		}
		if (p->path->mem_align > m->paths[0]->path->mem_align) {
			mp_log("%s: needs %u-byte aligned buffers, the device "
			       "%u", spec, p->path->mem_align,
			       m->paths[0]->path->mem_align);
			ret = -EINVAL;
			goto close_path;
		}
	}
	__atomic_store_n(&p->path->event, mpath_event, __ATOMIC_RELEASE);
	*out = p;
	return 0;

close_path:
	mp_path_close(p->path);
free_spec:
	free(p->spec);
free_p:
	free(p);
	return ret;
}

static void mpp_free(struct mpp *p)
{
	mp_path_close(p->path);
	free(p->spec);
	free(p);
}

int mpath_open(struct mp_lun *lun, const char *const specs[], unsigned n,
	       const struct mp_open_opts *o)
{
	struct mpath *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return -ENOMEM;
	m->lun = lun;
	m->popts = *o;
	m->popts.flags |= MP_OPEN_PATH_FAILFAST_;
	if (!m->popts.timeout_ms)
		m->popts.timeout_ms = DEFAULT_PATH_TIMEOUT_MS;
	if (o->initiator) {
		m->initiator = strdup(o->initiator);
		if (!m->initiator) {
			ret = -ENOMEM;
			goto free_m;
		}
	}
	m->popts.initiator = m->initiator;
	m->popts.policy = NULL;
	m->apd_ns = (o->apd_timeout_ms ? o->apd_timeout_ms : DEFAULT_APD_MS) *
		    1000000ull;
	m->check_ns = (o->path_check_ms ? o->path_check_ms : DEFAULT_CHECK_MS) *
		      1000000ull;
	ret = mp_policy_parse(o->policy ? o->policy : "fixed", &m->pol);
	if (ret) {
		mp_log("%s: unknown path policy '%s'", lun->spec, o->policy);
		goto free_init;
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	for (unsigned i = 0; i < n; i++) {
		struct mpp *p;

		ret = mpath_path_open(m, specs[i], &p);
		if (ret)
			goto close_paths;
		p->idx = i;
		m->paths[m->npaths++] = p;
	}
	if (m->pol.pref >= m->npaths)
		m->pol.pref = 0;
	m->next_check = mp_now_ns() + m->check_ns;
	ret = -pthread_create(&m->checker, NULL, checker_main, m);
	if (ret)
		goto close_paths;
	lun->mp = m;
	lun->path = m->paths[0]->path;
	return 0;

close_paths:
	while (m->npaths)
		mpp_free(m->paths[--m->npaths]);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
free_init:
	free(m->initiator);
free_m:
	free(m);
	return ret;
}

/* Called with no I/O of the LUN left anywhere (mp_lun_close waited). */
void mpath_close(struct mpath *m)
{
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->checker, NULL);
	for (unsigned i = 0; i < m->npaths; i++)
		mpp_free(m->paths[i]);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m->initiator);
	free(m);
}
