/*
 * lun.c - the device callers see.
 *
 * Every I/O passes here on its way to the path and back:
 *   submit: validate -> bounce if the backend needs aligned memory -> take a
 *           queue slot (or wait in the software queue) -> path submit
 *   done:   retry what deserves a retry (RESERVATION CONFLICT when asked,
 *           UNIT ATTENTION) -> copy back the bounce -> release the slot and
 *           start the next queued I/O -> deliver (callback or waiter).
 *
 * Locks: lun->lock protects the queue, counters and statistics; it is never
 * held while calling into a backend or a user callback.  The waiter stripes
 * (wait_stripes) are leaves.  The queue itself, shares and adaptive depth
 * are in lunq.c, multipath devices in mpath.c (see lun_int.h).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lun_int.h"

enum { IO_IDLE = 0, IO_SUBMITTED = 1, IO_DONE = 2 };

#define DEFAULT_QDEPTH 64
#define DEFAULT_RESCONFLICT_MS 10000
#define MAX_EAGAIN_RETRIES 5
#define DEFAULT_QFULL_SAMPLE 32   /* VMware's QFullSampleSize */
#define DEFAULT_QFULL_THRESHOLD 4 /* VMware's QFullThreshold */
#define QFULL_GIVEUP_NS (30ull * 1000000000ull) /* requeue QUEUE FULL this long */


/* Deferred resubmissions (retry backoff), run by a lazily started thread. */
struct deferred {
	struct mp_io *io;
	uint64_t due_ns;
	struct deferred *next;
};

/* Waiters of mp_io_wait() sleep on a stripe chosen by the io's address, so a
 * completion wakes only the few threads hashed to the same stripe. */
#define WAIT_STRIPES 64
static struct {
	pthread_mutex_t m;
	pthread_cond_t c;
} wait_stripes[WAIT_STRIPES];
static pthread_once_t wait_once = PTHREAD_ONCE_INIT;

static void wait_init(void)
{
	for (int i = 0; i < WAIT_STRIPES; i++) {
		pthread_mutex_init(&wait_stripes[i].m, NULL);
		pthread_cond_init(&wait_stripes[i].c, NULL);
	}
}

static unsigned stripe_of(const struct mp_io *io)
{
	uintptr_t a = (uintptr_t)io;

	return (unsigned)((a >> 6) ^ (a >> 12)) % WAIT_STRIPES;
}

/* Set while a thread runs completions: a synchronous wait there would wait
 * for the very thread that must deliver it. */
static __thread int in_completion;

static int lun_defer(struct mp_lun *lun, struct mp_io *io, uint64_t delay_ns);
static __thread bool in_timer;

/* The handle is fenced and io may not bypass it. */
static bool io_fenced(struct mp_lun *lun, const struct mp_io *io)
{
	return __atomic_load_n(&lun->fenced, __ATOMIC_ACQUIRE) &&
	       !(io->flags & MP_IO_FENCE_BYPASS);
}

void lun_submit_path(struct mp_lun *lun, struct mp_io *io)
{
	if (!lun->mp && io_fenced(lun, io)) {
		/* Fenced while it waited (queued behind a full device, a
		 * retry after QUEUE FULL, BUSY or UNIT ATTENTION, which the
		 * adaptive depth keeps up to 30 s): never sent now, when other
		 * hosts may have broken our locks.  Failed on the timer's
		 * thread, never inside a submission or a completion.
		 * (Multipath devices: mpath.c's route().) */
		if (in_timer || lun_defer(lun, io, 0))
			lun_done(lun, io, -MP_E_FENCED);
		return;
	}
	if (lun->mp)
		mpath_submit(lun->mp, io);
	else
		lun->path->ops->submit(lun->path, io);
}

/* ---- retry timer --------------------------------------------------------- */

static void *timer_main(void *arg)
{
	struct mp_lun *lun = arg;

	pthread_mutex_lock(&lun->lock);
	while (!lun->timer_stop) {
		struct deferred *d = lun->dlist;
		uint64_t now = mp_now_ns();

		if (!d) {
			pthread_cond_wait(&lun->timer_cond, &lun->lock);
			continue;
		}
		if (d->due_ns > now) {
			struct timespec ts;
			uint64_t wake;

			clock_gettime(CLOCK_REALTIME, &ts);
			wake = (uint64_t)ts.tv_sec * 1000000000ull +
			       (uint64_t)ts.tv_nsec + (d->due_ns - now);
			ts.tv_sec = (time_t)(wake / 1000000000ull);
			ts.tv_nsec = (long)(wake % 1000000000ull);
			pthread_cond_timedwait(&lun->timer_cond, &lun->lock, &ts);
			continue;
		}
		lun->dlist = d->next;
		pthread_mutex_unlock(&lun->lock);
		in_timer = true;
		lun_submit_path(lun, d->io);
		in_timer = false;
		free(d);
		pthread_mutex_lock(&lun->lock);
	}
	pthread_mutex_unlock(&lun->lock);
	return NULL;
}

/* Resubmit io to the path after delay_ns.  The io keeps its queue slot. */
static int lun_defer(struct mp_lun *lun, struct mp_io *io, uint64_t delay_ns)
{
	struct deferred *d = malloc(sizeof(*d)), **pp;
	int ret = 0;

	if (!d)
		return -ENOMEM;
	d->io = io;
	d->due_ns = mp_now_ns() + delay_ns;
	pthread_mutex_lock(&lun->lock);
	if (!lun->timer_started) {
		ret = -pthread_create(&lun->timer, NULL, timer_main, lun);
		if (ret) {
			pthread_mutex_unlock(&lun->lock);
			free(d);
			return ret;
		}
		lun->timer_started = true;
	}
	for (pp = &lun->dlist; *pp && (*pp)->due_ns <= d->due_ns; pp = &(*pp)->next)
		;
	d->next = *pp;
	*pp = d;
	pthread_cond_signal(&lun->timer_cond);
	pthread_mutex_unlock(&lun->lock);
	return 0;
}

/* ---- completion ---------------------------------------------------------- */

static void deliver(struct mp_io *io)
{
	if (io->cb) {
		__atomic_store_n(&io->state_, IO_DONE, __ATOMIC_RELEASE);
		in_completion++;
		io->cb(io);
		in_completion--;
	} else {
		unsigned s = stripe_of(io);

		pthread_mutex_lock(&wait_stripes[s].m);
		__atomic_store_n(&io->state_, IO_DONE, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&wait_stripes[s].c);
		pthread_mutex_unlock(&wait_stripes[s].m);
		/* io may be gone now: the waiter owns it again */
	}
}

static bool want_retry(struct mp_lun *lun, struct mp_io *io, int result,
		       uint64_t *delay_ns)
{
	if (result == -MP_E_RESCONFLICT &&
	    (lun->flags & MP_OPEN_RETRY_RESCONFLICT) &&
	    io->op != MP_OP_RESERVE && io->op != MP_OP_PR_OUT &&
	    mp_now_ns() < io->start_ns_ + lun->resconflict_ms * 1000000ull) {
		/* Another host holds a reservation for a short read-modify-
		 * write: back off 1, 2, 4 ... 32 ms and try again. */
		unsigned shift = io->retries_ < 5 ? io->retries_ : 5;

		*delay_ns = 1000000ull << shift;
		return true;
	}
	if (result == -EAGAIN && io->retries_ < MAX_EAGAIN_RETRIES) {
		/* UNIT ATTENTION or becoming ready: retry soon. */
		*delay_ns = 10000000ull * (io->retries_ + 1);
		return true;
	}
	return false;
}

/* A QUEUE FULL / BUSY completion with adaptive depth: the I/O goes back to
 * the head of the queue instead of failing.  false when it must surface. */
static bool requeue_qfull(struct mp_lun *lun, struct mp_io *io, int result)
{
	bool alone;

	if (!lun->adaptive || (result != -MP_E_QFULL && result != -MP_E_BUSY) ||
	    mp_now_ns() - io->start_ns_ > QFULL_GIVEUP_NS)
		return false;
	io->retries_++;
	pthread_mutex_lock(&lun->lock);
	lun->st.retries++;
	lunq_adapt(lun, io, true);
	alone = lun->inflight == 1;
	if (!alone) {
		/* The target is full now: this one goes first once one of
		 * ours completes and frees a slot there (resending at once
		 * would only draw more QUEUE FULL). */
		lun->inflight--;
		lunq_push_front(lun, io);
		lun->queued++;
	}
	pthread_mutex_unlock(&lun->lock);
	/* Nothing else of ours in flight (the target is full of other
	 * hosts' I/O): back off a millisecond; it keeps its slot. */
	if (alone && lun_defer(lun, io, 1000000ull) != 0)
		return false;
	return true;
}

void lun_done(void *arg, struct mp_io *io, int result)
{
	struct mp_lun *lun = arg;
	struct mp_io *ready;
	uint64_t delay;

	if (result < 0 && want_retry(lun, io, result, &delay)) {
		io->retries_++;
		pthread_mutex_lock(&lun->lock);
		lun->st.retries++;
		pthread_mutex_unlock(&lun->lock);
		if (lun_defer(lun, io, delay) == 0)
			return;
	}
	if (result < 0 && requeue_qfull(lun, io, result))
		return;
	if (result == -EAGAIN)
		result = -EIO;  /* retries exhausted: the device stays unready */

	bounce_finish(io, result);
	io->result = result;

	pthread_mutex_lock(&lun->lock);
	switch (io->op) {
	case MP_OP_READ:
		lun->st.reads++;
		if (result > 0)
			lun->st.read_bytes += (uint64_t)result;
		break;
	case MP_OP_WRITE:
		lun->st.writes++;
		if (result > 0)
			lun->st.write_bytes += (uint64_t)result;
		break;
	case MP_OP_FLUSH: lun->st.flushes++; break;
	case MP_OP_DISCARD: lun->st.discards++; break;
	case MP_OP_CAW: lun->st.caws++; break;
	default: break;
	}
	if (result < 0 && result != -MP_E_MISCOMPARE)
		lun->st.errors++;
	if (lun->adaptive)
		lunq_adapt(lun, io, false);
	if (lun->sfq)
		lunq_share_done(lun, io);
	lun->inflight--;
	ready = lunq_take_ready(lun);
	if (lun->inflight == 0 && lun->queued == 0)
		pthread_cond_broadcast(&lun->idle);
	pthread_mutex_unlock(&lun->lock);

	while (ready) {
		struct mp_io *n = ready->next_;

		ready->next_ = NULL;
		lun_submit_path(lun, ready);
		ready = n;
	}
	deliver(io);
}

/* ---- submission ---------------------------------------------------------- */

static int validate(struct mp_lun *lun, struct mp_io *io)
{
	const struct mp_lun_info *in = &lun->path->info;
	uint64_t ls = in->logical_sector;
	bool rdonly = lun->flags & MP_OPEN_RDONLY;

	switch (io->op) {
	case MP_OP_READ:
	case MP_OP_WRITE:
		if (!io->iov || io->iovcnt <= 0 || io->iovcnt > IOV_MAX)
			return -EINVAL;
		io->length = mp_iov_len(io->iov, io->iovcnt);
		if (io->length == 0)
			return -EINVAL;
		if (io->op == MP_OP_WRITE && rdonly)
			return -EROFS;
		break;
	case MP_OP_CAW:
		if (!(in->caps & (MP_CAP_ATS | MP_CAP_ATS_EMULATED)))
			return -EOPNOTSUPP;
		if (rdonly)
			return -EROFS;
		if (!io->iov || io->iovcnt != 2 ||
		    io->iov[0].iov_len != io->length ||
		    io->iov[1].iov_len != io->length || io->length == 0)
			return -EINVAL;
		if (io->length / ls > in->max_caw_sectors)
			return -EINVAL;
		break;
	case MP_OP_DISCARD:
		if (!(in->caps & MP_CAP_DISCARD))
			return -EOPNOTSUPP;
		if (rdonly)
			return -EROFS;
		if (io->length == 0)
			return -EINVAL;
		break;
	case MP_OP_FLUSH:
	case MP_OP_TUR:
		return 0;
	case MP_OP_RESERVE:
	case MP_OP_RELEASE:
		return (in->caps & MP_CAP_RESERVE6) ? 0 : -EOPNOTSUPP;
	case MP_OP_PR_OUT:
	case MP_OP_PR_IN:
		if (!io->arg)
			return -EINVAL;
		return (in->caps & MP_CAP_PR) ? 0 : -EOPNOTSUPP;
	default:
		return -EINVAL;
	}
	if (io->offset % ls || io->length % ls)
		return -EINVAL;
	if (io->offset > in->capacity || io->length > in->capacity - io->offset)
		return -ERANGE;
	return 0;
}

/*
 * mp_io_run's I/O (never on a callback's thread), with its slot taken:
 * done by the path in this thread when the path can (true), and completed
 * here as the path's own completion would be.
 */
static bool run_inline(struct mp_lun *lun, struct mp_io *io)
{
	struct mp_path *p = lun->path;
	int result;

	if (lun->mp || !p->ops->run)
		return false;
	if (io_fenced(lun, io))
		result = -MP_E_FENCED;   /* fenced since the check in submit */
	else if (!p->ops->run(p, io, &result))
		return false;
	lun_done(lun, io, result);
	return true;
}

static int submit(mp_lun *lun, struct mp_share *share, struct mp_io *io,
		  bool wait)
{
	bool go;
	int ret;

	ret = validate(lun, io);
	if (ret)
		goto refuse;
	if (io_fenced(lun, io)) {
		ret = -MP_E_FENCED;
		goto refuse;
	}
	io->lun_ = lun;
	io->bounce_ = NULL;
	io->retries_ = 0;
	io->next_ = NULL;
	io->share_ = share;
	io->start_ns_ = mp_now_ns();
	io->result = 0;
	ret = bounce_setup(lun, io);
	if (ret)
		goto refuse;
	__atomic_store_n(&io->state_, IO_SUBMITTED, __ATOMIC_RELAXED);

	pthread_mutex_lock(&lun->lock);
	if (share)
		share->pending++;
	else if (lun->sfq)
		lun->dflt.pending++;
	/* Unsaturated: straight to the device, whatever the shares. */
	go = lun->inflight < lun->qdepth && !lun->queued;
	if (go) {
		lun->inflight++;
		io->epoch_ = lun->epoch;
	} else {
		lunq_push(lun, io);
		lun->queued++;
	}
	pthread_mutex_unlock(&lun->lock);
	if (go && !(wait && run_inline(lun, io)))
		lun_submit_path(lun, io);
	return 0;

refuse:
	io->result = ret;
	__atomic_store_n(&io->state_, IO_DONE, __ATOMIC_RELEASE);
	return ret;
}

int mp_io_submit(mp_lun *lun, struct mp_io *io)
{
	return submit(lun, NULL, io, false);
}

int mp_io_submit_share(mp_share *s, struct mp_io *io)
{
	return submit(s->lun, s, io, false);
}

int mp_io_run(mp_lun *lun, struct mp_io *io)
{
	int ret;

	if (io->cb)
		return -EINVAL;
	/* a callback's thread cannot wait for it (mp_io_wait would say
	 * -EDEADLK with the I/O still in flight on the caller's memory):
	 * refused before it is sent */
	if (in_completion) {
		io->result = -EDEADLK;
		return -EDEADLK;
	}
	ret = submit(lun, NULL, io, true);
	return ret ? ret : mp_io_wait(io);
}

#define SPIN_LOOKS 2000     /* ~ 20-60 us of pause instructions */
#define SPIN_MAX_NS 60000   /* spin only where waits are about this short */
/* Spinning waiters beyond the CPUs that are free for them only take CPU
 * from the threads that complete their I/O: half the CPUs may spin. */
static int spinners, max_spinners = 1;

static void spin_init(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	max_spinners = n > 2 ? (int)(n / 2) : 1;
}

bool mp_in_completion(void)
{
	return in_completion > 0;
}

/* A synchronous wait took ns: a moving average of 1/8 (races between
 * waiters only blur it). */
static void note_wait(struct mp_lun *lun, uint64_t ns)
{
	uint64_t avg = __atomic_load_n(&lun->wait_ns, __ATOMIC_RELAXED);

	avg = ns > avg ? avg + (ns - avg) / 8 : avg - (avg - ns) / 8;
	__atomic_store_n(&lun->wait_ns, avg, __ATOMIC_RELAXED);
}

int mp_io_wait(struct mp_io *io)
{
	unsigned s = stripe_of(io);
	bool spin;

	int st = __atomic_load_n(&io->state_, __ATOMIC_ACQUIRE);

	if (st == IO_IDLE)
		return -EINVAL;
	if (in_completion && st != IO_DONE)
		return -EDEADLK;
	/* Synchronous I/O on a fast LUN completes within tens of
	 * microseconds: look for a while before sleeping, which saves the
	 * waiter a futex sleep and wake-up (about as long as a fast I/O
	 * itself).  Not for a flush, nor on a LUN whose recent waits were
	 * longer than the look: there it only burns the CPU that the
	 * completing threads (and, on a small machine, other hosts) need. */
	spin = io->op != MP_OP_FLUSH &&
	       __atomic_load_n(&io->lun_->wait_ns, __ATOMIC_RELAXED) < SPIN_MAX_NS;
	if (spin) {
		if (__atomic_add_fetch(&spinners, 1, __ATOMIC_ACQ_REL) <= max_spinners) {
			for (unsigned i = 0; i < SPIN_LOOKS && st != IO_DONE; i++) {
				__builtin_ia32_pause();
				st = __atomic_load_n(&io->state_, __ATOMIC_ACQUIRE);
			}
		}
		__atomic_sub_fetch(&spinners, 1, __ATOMIC_ACQ_REL);
	}
	if (st != IO_DONE) {
		pthread_mutex_lock(&wait_stripes[s].m);
		while (__atomic_load_n(&io->state_, __ATOMIC_ACQUIRE) != IO_DONE)
			pthread_cond_wait(&wait_stripes[s].c, &wait_stripes[s].m);
		pthread_mutex_unlock(&wait_stripes[s].m);
	}
	if (io->op != MP_OP_FLUSH)
		note_wait(io->lun_, mp_now_ns() - io->start_ns_);
	return io->result;
}

/* ---- open / close ------------------------------------------------------- */

/* The LUN object without its paths. */
static int lun_new(const char *spec, const struct mp_open_opts *opts,
		   struct mp_lun **out)
{
	static pthread_once_t spin_once = PTHREAD_ONCE_INIT;
	struct mp_lun *lun;

	pthread_once(&wait_once, wait_init);
	pthread_once(&spin_once, spin_init);
	lun = calloc(1, sizeof(*lun));
	if (!lun)
		return -ENOMEM;
	lun->spec = strdup(spec);
	if (!lun->spec) {
		free(lun);
		return -ENOMEM;
	}
	lun->flags = opts->flags;
	lun->resconflict_ms = opts->resconflict_ms ? opts->resconflict_ms :
						    DEFAULT_RESCONFLICT_MS;
	lun->adaptive = !(opts->flags & MP_OPEN_FIXED_QD);
	lun->qfull_sample = opts->qfull_sample ? opts->qfull_sample :
						DEFAULT_QFULL_SAMPLE;
	lun->qfull_threshold = opts->qfull_threshold ? opts->qfull_threshold :
						      DEFAULT_QFULL_THRESHOLD;
	lun->dflt.lun = lun;
	lun->dflt.shares = MP_SHARES_NORMAL;
	pthread_mutex_init(&lun->lock, NULL);
	pthread_cond_init(&lun->idle, NULL);
	pthread_cond_init(&lun->timer_cond, NULL);
	*out = lun;
	return 0;
}

static void lun_free(struct mp_lun *lun)
{
	pthread_cond_destroy(&lun->timer_cond);
	pthread_cond_destroy(&lun->idle);
	pthread_mutex_destroy(&lun->lock);
	free(lun->spec);
	free(lun);
}

/* Depth limits once the paths are open. */
static void lun_ready(struct mp_lun *lun, const struct mp_open_opts *opts)
{
	lun->qdepth = opts->queue_depth ? opts->queue_depth : DEFAULT_QDEPTH;
	if (lun->path->max_inflight && lun->qdepth > lun->path->max_inflight)
		lun->qdepth = lun->path->max_inflight;
	lun->max_qdepth = lun->qdepth;
	mp_registry_add(lun);
}

/* Split "multi:A|B|C" into specs (modifies buf). */
static int split_multi(char *buf, const char **specs, unsigned *n)
{
	char *save = NULL, *tok;

	*n = 0;
	for (tok = strtok_r(buf, "|", &save); tok;
	     tok = strtok_r(NULL, "|", &save)) {
		if (*n == MP_MAX_PATHS)
			return -MP_E_SPEC;
		specs[(*n)++] = tok;
	}
	return *n ? 0 : -MP_E_SPEC;
}

static int open_multi(const char *spec, const char *const specs[], unsigned n,
		      const struct mp_open_opts *opts, mp_lun **out)
{
	struct mp_lun *lun;
	int ret;

	ret = lun_new(spec, opts, &lun);
	if (ret)
		return ret;
	ret = mpath_open(lun, specs, n, opts);
	if (ret) {
		lun_free(lun);
		return ret;
	}
	lun_ready(lun, opts);
	*out = lun;
	return 0;
}

int mp_lun_open(const char *spec, const struct mp_open_opts *opts,
		mp_lun **out)
{
	struct mp_open_opts dflt = { 0 };
	struct mp_lun *lun;
	int ret;

	if (!spec || !*spec || !out)
		return -MP_E_SPEC;
	if (!opts)
		opts = &dflt;
	if (!strncmp(spec, "multi:", 6)) {
		const char *specs[MP_MAX_PATHS];
		char *buf = strdup(spec + 6);
		unsigned n;

		if (!buf)
			return -ENOMEM;
		ret = split_multi(buf, specs, &n);
		if (ret)
			mp_log("bad multipath spec '%s': expected "
			       "multi:SPEC1|SPEC2|... (at most %d paths)", spec,
			       MP_MAX_PATHS);
		else
			ret = open_multi(spec, specs, n, opts, out);
		free(buf);
		return ret;
	}
	ret = lun_new(spec, opts, &lun);
	if (ret)
		return ret;
	ret = mp_path_open(spec, opts, lun_done, lun, &lun->path);
	if (ret) {
		lun_free(lun);
		return ret;
	}
	/* (paths of a multipath device fail fast when down; mpath.c's
	 * route() keeps a fenced device's I/O from going out again) */
	__atomic_store_n(&lun->path->fenced, &lun->fenced, __ATOMIC_RELEASE);
	lun_ready(lun, opts);
	*out = lun;
	return 0;
}

int mp_lun_open_paths(const char *const specs[], unsigned n,
		      const struct mp_open_opts *opts, mp_lun **out)
{
	struct mp_open_opts dflt = { 0 };
	size_t len = 7;
	char *spec;
	int ret;

	if (!specs || !n || n > MP_MAX_PATHS || !out)
		return -MP_E_SPEC;
	for (unsigned i = 0; i < n; i++) {
		if (!specs[i] || !*specs[i] || strchr(specs[i], '|'))
			return -MP_E_SPEC;
		len += strlen(specs[i]) + 1;
	}
	spec = malloc(len);
	if (!spec)
		return -ENOMEM;
	strcpy(spec, "multi:");
	for (unsigned i = 0; i < n; i++) {
		if (i)
			strcat(spec, "|");
		strcat(spec, specs[i]);
	}
	ret = open_multi(spec, specs, n, opts ? opts : &dflt, out);
	free(spec);
	return ret;
}

void mp_lun_close(mp_lun *lun)
{
	if (!lun)
		return;
	mp_registry_del(lun);
	pthread_mutex_lock(&lun->lock);
	while (lun->inflight || lun->queued)
		pthread_cond_wait(&lun->idle, &lun->lock);
	lun->timer_stop = true;
	pthread_cond_signal(&lun->timer_cond);
	pthread_mutex_unlock(&lun->lock);
	if (lun->timer_started)
		pthread_join(lun->timer, NULL);
	/* Joins the backend's threads, so every callback has returned. */
	if (lun->mp)
		mpath_close(lun->mp);
	else
		mp_path_close(lun->path);
	lun_free(lun);
}

void mp_lun_fence(mp_lun *lun, bool fenced)
{
	__atomic_store_n(&lun->fenced, fenced, __ATOMIC_RELEASE);
}

bool mp_lun_fenced(mp_lun *lun)
{
	return __atomic_load_n(&lun->fenced, __ATOMIC_ACQUIRE);
}

void mp_lun_get_info(mp_lun *lun, struct mp_lun_info *info)
{
	*info = lun->path->info;
}

const char *mp_lun_spec(mp_lun *lun)
{
	return lun->spec;
}

void mp_lun_get_stats(mp_lun *lun, struct mp_lun_stats *st)
{
	pthread_mutex_lock(&lun->lock);
	*st = lun->st;
	st->inflight = lun->inflight;
	st->queued = lun->queued;
	st->queue_depth = lun->qdepth;
	pthread_mutex_unlock(&lun->lock);
}

bool mp_lun_is_multipath(mp_lun *lun)
{
	return lun->mp != NULL;
}

