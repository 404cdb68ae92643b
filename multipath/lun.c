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
 * (wait_stripes) are leaves.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mp_int.h"

enum { IO_IDLE = 0, IO_SUBMITTED = 1, IO_DONE = 2 };

#define DEFAULT_QDEPTH 64
#define DEFAULT_RESCONFLICT_MS 10000
#define MAX_EAGAIN_RETRIES 5

struct mp_bounce {
	const struct iovec *uiov;   /* the caller's vector, restored at done */
	int uiovcnt;
	struct iovec iov[2];
	void *data;
};

/* Deferred resubmissions (retry backoff), run by a lazily started thread. */
struct deferred {
	struct mp_io *io;
	uint64_t due_ns;
	struct deferred *next;
};

struct mp_lun {
	char *spec;
	struct mp_path *path;
	unsigned flags;
	unsigned resconflict_ms;
	bool fenced;                /* atomic: read on every submit */

	pthread_mutex_t lock;
	pthread_cond_t idle;        /* inflight + queued + deferred == 0 */
	unsigned inflight;          /* at the path, or deferred for retry */
	unsigned queued;
	unsigned qdepth;
	struct mp_io *qhead, *qtail;
	struct mp_lun_stats st;

	/* retry timer */
	pthread_t timer;
	bool timer_started, timer_stop;
	pthread_cond_t timer_cond;
	struct deferred *dlist;     /* sorted by due_ns */
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

static void lun_submit_path(struct mp_lun *lun, struct mp_io *io)
{
	lun->path->ops->submit(lun->path, io);
}

/* ---- bounce buffers ------------------------------------------------------ */

static bool iov_aligned(const struct iovec *iov, int iovcnt, unsigned align)
{
	if (align <= 1)
		return true;
	for (int i = 0; i < iovcnt; i++) {
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (align - 1))
			return false;
	}
	return true;
}

static int bounce_setup(struct mp_lun *lun, struct mp_io *io)
{
	unsigned align = lun->path->mem_align;
	struct mp_bounce *b;
	size_t total;

	if (io->op != MP_OP_READ && io->op != MP_OP_WRITE && io->op != MP_OP_CAW)
		return 0;
	if (iov_aligned(io->iov, io->iovcnt, align))
		return 0;

	total = io->op == MP_OP_CAW ? 2 * io->length : io->length;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->data = mp_alloc_aligned(align, total);
	if (!b->data) {
		free(b);
		return -ENOMEM;
	}
	b->uiov = io->iov;
	b->uiovcnt = io->iovcnt;
	if (io->op == MP_OP_CAW) {
		memcpy(b->data, io->iov[0].iov_base, io->length);
		memcpy((char *)b->data + io->length, io->iov[1].iov_base,
		       io->length);
		b->iov[0].iov_base = b->data;
		b->iov[0].iov_len = io->length;
		b->iov[1].iov_base = (char *)b->data + io->length;
		b->iov[1].iov_len = io->length;
		io->iovcnt = 2;
	} else {
		if (io->op == MP_OP_WRITE)
			mp_iov_to_buf(b->data, io->iov, io->iovcnt, 0, total);
		b->iov[0].iov_base = b->data;
		b->iov[0].iov_len = total;
		io->iovcnt = 1;
	}
	io->iov = b->iov;
	io->bounce_ = b;
	return 0;
}

static void bounce_finish(struct mp_io *io, int result)
{
	struct mp_bounce *b = io->bounce_;

	if (!b)
		return;
	if (io->op == MP_OP_READ && result > 0)
		mp_buf_to_iov(b->uiov, b->uiovcnt, 0, b->data, (size_t)result);
	if (io->op == MP_OP_CAW && result == -MP_E_MISCOMPARE)
		memcpy(b->uiov[0].iov_base, b->data, io->length);
	io->iov = b->uiov;
	io->iovcnt = b->uiovcnt;
	io->bounce_ = NULL;
	free(b->data);
	free(b);
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
		lun_submit_path(lun, d->io);
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

static void lun_done(void *arg, struct mp_io *io, int result)
{
	struct mp_lun *lun = arg;
	struct mp_io *next = NULL;
	uint64_t delay;

	if (result < 0 && want_retry(lun, io, result, &delay)) {
		io->retries_++;
		pthread_mutex_lock(&lun->lock);
		lun->st.retries++;
		pthread_mutex_unlock(&lun->lock);
		if (lun_defer(lun, io, delay) == 0)
			return;
	}
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
	if (lun->qhead) {
		next = lun->qhead;
		lun->qhead = next->next_;
		if (!lun->qhead)
			lun->qtail = NULL;
		lun->queued--;
	} else {
		lun->inflight--;
	}
	if (lun->inflight == 0 && lun->queued == 0)
		pthread_cond_broadcast(&lun->idle);
	pthread_mutex_unlock(&lun->lock);

	if (next)
		lun_submit_path(lun, next);
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

int mp_io_submit(mp_lun *lun, struct mp_io *io)
{
	bool go;
	int ret;

	ret = validate(lun, io);
	if (ret)
		goto refuse;
	if (__atomic_load_n(&lun->fenced, __ATOMIC_ACQUIRE) &&
	    !(io->flags & MP_IO_FENCE_BYPASS)) {
		ret = -MP_E_FENCED;
		goto refuse;
	}
	io->lun_ = lun;
	io->bounce_ = NULL;
	io->retries_ = 0;
	io->next_ = NULL;
	io->start_ns_ = mp_now_ns();
	io->result = 0;
	ret = bounce_setup(lun, io);
	if (ret)
		goto refuse;
	__atomic_store_n(&io->state_, IO_SUBMITTED, __ATOMIC_RELAXED);

	pthread_mutex_lock(&lun->lock);
	go = lun->inflight < lun->qdepth;
	if (go) {
		lun->inflight++;
	} else {
		if (lun->qtail)
			lun->qtail->next_ = io;
		else
			lun->qhead = io;
		lun->qtail = io;
		lun->queued++;
	}
	pthread_mutex_unlock(&lun->lock);
	if (go)
		lun_submit_path(lun, io);
	return 0;

refuse:
	io->result = ret;
	__atomic_store_n(&io->state_, IO_DONE, __ATOMIC_RELEASE);
	return ret;
}

int mp_io_wait(struct mp_io *io)
{
	unsigned s = stripe_of(io);

	int st = __atomic_load_n(&io->state_, __ATOMIC_ACQUIRE);

	if (st == IO_IDLE)
		return -EINVAL;
	if (in_completion && st != IO_DONE)
		return -EDEADLK;
	pthread_mutex_lock(&wait_stripes[s].m);
	while (__atomic_load_n(&io->state_, __ATOMIC_ACQUIRE) != IO_DONE)
		pthread_cond_wait(&wait_stripes[s].c, &wait_stripes[s].m);
	pthread_mutex_unlock(&wait_stripes[s].m);
	return io->result;
}

static int submit_wait(mp_lun *lun, struct mp_io *io)
{
	int ret = mp_io_submit(lun, io);

	return ret ? ret : mp_io_wait(io);
}

/* ---- open / close ------------------------------------------------------- */

int mp_lun_open(const char *spec, const struct mp_open_opts *opts,
		mp_lun **out)
{
	struct mp_open_opts dflt = { 0 };
	struct mp_lun *lun;
	int ret;

	pthread_once(&wait_once, wait_init);
	if (!spec || !*spec || !out)
		return -MP_E_SPEC;
	if (!opts)
		opts = &dflt;
	lun = calloc(1, sizeof(*lun));
	if (!lun)
		return -ENOMEM;
	lun->spec = strdup(spec);
	if (!lun->spec) {
		ret = -ENOMEM;
		goto free_lun;
	}
	lun->flags = opts->flags;
	lun->resconflict_ms = opts->resconflict_ms ? opts->resconflict_ms :
						    DEFAULT_RESCONFLICT_MS;
	pthread_mutex_init(&lun->lock, NULL);
	pthread_cond_init(&lun->idle, NULL);
	pthread_cond_init(&lun->timer_cond, NULL);

	ret = mp_path_open(spec, opts, lun_done, lun, &lun->path);
	if (ret)
		goto free_sync;
	lun->qdepth = opts->queue_depth ? opts->queue_depth : DEFAULT_QDEPTH;
	if (lun->path->max_inflight && lun->qdepth > lun->path->max_inflight)
		lun->qdepth = lun->path->max_inflight;
	*out = lun;
	return 0;

free_sync:
	pthread_cond_destroy(&lun->timer_cond);
	pthread_cond_destroy(&lun->idle);
	pthread_mutex_destroy(&lun->lock);
	free(lun->spec);
free_lun:
	free(lun);
	return ret;
}

void mp_lun_close(mp_lun *lun)
{
	if (!lun)
		return;
	pthread_mutex_lock(&lun->lock);
	while (lun->inflight || lun->queued)
		pthread_cond_wait(&lun->idle, &lun->lock);
	lun->timer_stop = true;
	pthread_cond_signal(&lun->timer_cond);
	pthread_mutex_unlock(&lun->lock);
	if (lun->timer_started)
		pthread_join(lun->timer, NULL);
	/* Joins the backend's threads, so every callback has returned. */
	mp_path_close(lun->path);
	pthread_cond_destroy(&lun->timer_cond);
	pthread_cond_destroy(&lun->idle);
	pthread_mutex_destroy(&lun->lock);
	free(lun->spec);
	free(lun);
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

/* ---- synchronous helpers ------------------------------------------------- */

void mp_io_prep_read(struct mp_io *io, const struct iovec *iov, int iovcnt,
		     uint64_t off)
{
	memset(io, 0, sizeof(*io));
	io->op = MP_OP_READ;
	io->iov = iov;
	io->iovcnt = iovcnt;
	io->offset = off;
}

void mp_io_prep_write(struct mp_io *io, const struct iovec *iov, int iovcnt,
		      uint64_t off, unsigned flags)
{
	memset(io, 0, sizeof(*io));
	io->op = MP_OP_WRITE;
	io->flags = flags;
	io->iov = iov;
	io->iovcnt = iovcnt;
	io->offset = off;
}

ssize_t mp_lun_preadv(mp_lun *lun, const struct iovec *iov, int iovcnt,
		      uint64_t off)
{
	struct mp_io io;

	mp_io_prep_read(&io, iov, iovcnt, off);
	return submit_wait(lun, &io);
}

ssize_t mp_lun_pwritev(mp_lun *lun, const struct iovec *iov, int iovcnt,
		       uint64_t off, unsigned io_flags)
{
	struct mp_io io;

	mp_io_prep_write(&io, iov, iovcnt, off, io_flags);
	return submit_wait(lun, &io);
}

ssize_t mp_lun_pread(mp_lun *lun, void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return mp_lun_preadv(lun, &iov, 1, off);
}

ssize_t mp_lun_pwrite(mp_lun *lun, const void *buf, size_t len, uint64_t off,
		      unsigned io_flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return mp_lun_pwritev(lun, &iov, 1, off, io_flags);
}

static int simple_op(mp_lun *lun, enum mp_op op, uint64_t off, uint64_t len,
		     void *arg)
{
	struct mp_io io;

	memset(&io, 0, sizeof(io));
	io.op = op;
	io.offset = off;
	io.length = len;
	io.arg = arg;
	return submit_wait(lun, &io);
}

int mp_lun_flush(mp_lun *lun)
{
	return simple_op(lun, MP_OP_FLUSH, 0, 0, NULL);
}

int mp_lun_discard(mp_lun *lun, uint64_t off, uint64_t len)
{
	return simple_op(lun, MP_OP_DISCARD, off, len, NULL);
}

int mp_lun_reserve(mp_lun *lun)
{
	return simple_op(lun, MP_OP_RESERVE, 0, 0, NULL);
}

int mp_lun_release(mp_lun *lun)
{
	return simple_op(lun, MP_OP_RELEASE, 0, 0, NULL);
}

int mp_lun_pr(mp_lun *lun, struct mp_pr *pr)
{
	enum mp_op op = pr->action >= MP_PR_READ_KEYS ? MP_OP_PR_IN : MP_OP_PR_OUT;

	return simple_op(lun, op, 0, 0, pr);
}

int mp_lun_test_ready(mp_lun *lun)
{
	return simple_op(lun, MP_OP_TUR, 0, 0, NULL);
}

int mp_lun_caw(mp_lun *lun, uint64_t off, const void *cmp, const void *data,
	       size_t len, void *cur)
{
	struct iovec iov[2];
	struct mp_io io;
	void *c;
	int ret;

	/* The layer writes the current contents into iov[0] on miscompare,
	 * so compare against a private copy and hand it out through cur. */
	c = malloc(len ? len : 1);
	if (!c)
		return -ENOMEM;
	memcpy(c, cmp, len);
	iov[0].iov_base = c;
	iov[0].iov_len = len;
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = len;
	memset(&io, 0, sizeof(io));
	io.op = MP_OP_CAW;
	io.offset = off;
	io.length = len;
	io.iov = iov;
	io.iovcnt = 2;
	ret = submit_wait(lun, &io);
	if (ret == -MP_E_MISCOMPARE && cur)
		memcpy(cur, c, len);
	free(c);
	return ret;
}

/* ---- fault injection passthrough ------------------------------------------ */

int mp_fault_add(mp_lun *lun, const struct mp_fault_rule *rule)
{
	struct mp_path *p = lun->path;

	return p->ops->fault_add ? p->ops->fault_add(p, rule) : -EINVAL;
}

int mp_fault_clear(mp_lun *lun)
{
	struct mp_path *p = lun->path;

	return p->ops->fault_clear ? p->ops->fault_clear(p) : -EINVAL;
}

int mp_fault_power_cut(mp_lun *lun, enum mp_powercut_mode mode)
{
	struct mp_path *p = lun->path;

	return p->ops->power_cut ? p->ops->power_cut(p, mode) : -EINVAL;
}

int mp_fault_get_stats(mp_lun *lun, struct mp_fault_stats *st)
{
	struct mp_path *p = lun->path;

	return p->ops->fault_stats ? p->ops->fault_stats(p, st) : -EINVAL;
}
