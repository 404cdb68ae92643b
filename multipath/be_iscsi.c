/*
 * be_iscsi.c - iSCSI path backend (libiscsi): ops and the reactor.
 *
 * Threads: libiscsi is not thread-safe, so after open (be_iscsi_open.c) one
 * reactor thread per path owns the iscsi_context.  submit() runs on any
 * thread, also inside completion callbacks on the reactor itself: it only
 * links the mp_io into a mutex-protected list and pokes an eventfd.  The
 * reactor turns requests into SCSI tasks (be_iscsi_io.c), services the
 * socket, and reports each completion with mp_path_done() from its own top
 * level or from a libiscsi callback - never from inside submit().
 *
 * Connection loss: libiscsi's automatic reconnect is off (isc_ctx_new()
 * says why).  When the connection dies libiscsi cancels every task; parts
 * whose command is idempotent become ready again and are reissued after a
 * fresh login (same initiator name and ISID, so the same I_T nexus).  Parts
 * whose command may have changed state on the target - COMPARE AND WRITE,
 * RESERVE(6), PERSISTENT RESERVE OUT - fail with -MP_E_TRANSPORT because
 * they may or may not have been applied.  Reconnect attempts go on with
 * backoff for as long as the path is open.  Time limits, so nothing waits
 * forever:
 *   - a task in flight times out in libiscsi (iscsi_set_timeout) ->
 *     -ETIMEDOUT; iscsi_service(ctx, 0) runs at least every TICK_MS for it;
 *   - a part waiting for the connection fails with -MP_E_TRANSPORT once
 *     its request is older than the timeout, and at once when the path has
 *     been down for longer than the timeout (a dead path fails fast, so the
 *     layer above can fail over instead of stalling on every I/O).
 *
 * Keepalive: a target that stops answering without closing the connection
 * (packets dropped somewhere) leaves an idle connection looking up for as
 * long as TCP sees nothing to retransmit.  So while up, a NOP-Out goes out
 * every nop_interval (one at a time); when one stays unanswered for
 * nop_timeout the connection counts as lost: torn down, reconnected with a
 * fresh login as above.  TCP_USER_TIMEOUT (the command timeout) may give up
 * on the unacknowledged NOP-Out first; either way an idle connection to a
 * silent target is found within nop_interval + min(nop_timeout, timeout).  The owner hears of both through mp_path_event()
 * (a multipath device marks the path dead, and runs its checker when the
 * path is logged in again).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "be_iscsi_int.h"

#define TICK_MS 250              /* poll timeout: libiscsi's timeout scan */
#define NO_EVENTS_MS 100         /* which_events() == 0: wait >= 100 ms */
#define RECONNECT_MIN_NS 100000000ull
#define RECONNECT_MAX_NS 1000000000ull

/* The path whose reactor runs on this thread (submit() from a callback). */
static __thread struct isc_path *isc_self;

/* ---- submissions ----------------------------------------------------------- */

static bool take_submissions(struct isc_path *ip, struct mp_io **list)
{
	bool stop;

	pthread_mutex_lock(&ip->lock);
	*list = ip->subq_head;
	ip->subq_head = ip->subq_tail = NULL;
	stop = ip->stop;
	pthread_mutex_unlock(&ip->lock);
	ip->self_submitted = false;
	return stop;
}

static void start_submissions(struct isc_path *ip, struct mp_io *io)
{
	while (io) {
		struct mp_io *next = io->next_;
		int ret;

		io->next_ = NULL;
		ret = isc_req_start(ip, io);
		if (ret)
			mp_path_done(ip->p, io, ret);
		io = next;
	}
}

/* ---- connection ------------------------------------------------------------ */

/*
 * A reconnect is TCP connect, then login, each with a callback that only
 * records the outcome; conn_step() acts on it.  Not iscsi_full_connect_async():
 * it allocates a state block that its login callback frees, and that
 * callback never runs when the login fails on a dropped socket (libiscsi
 * 1.19 cancels "not logged in" PDUs silently), leaking it per attempt.
 * Nor its TEST UNIT READY loop for UNIT ATTENTIONs: the first command of
 * each part retries those anyway (isc_task_cb()).
 */
static void isc_login_cb(struct iscsi_context *ctx, int status, void *data,
			 void *priv)
{
	struct isc_path *ip = priv;

	if (ip->state != ISC_CONNECTING)
		return;
	ip->connect_done = true;
	ip->connect_status = status;
}

static void isc_tcp_cb(struct iscsi_context *ctx, int status, void *data,
		       void *priv)
{
	struct isc_path *ip = priv;

	if (ip->state != ISC_CONNECTING)
		return;
	if (status == SCSI_STATUS_GOOD &&
	    iscsi_login_async(ctx, isc_login_cb, ip) == 0)
		return;
	ip->connect_done = true;
	ip->connect_status = status == SCSI_STATUS_GOOD ? SCSI_STATUS_ERROR :
							  status;
}

/* ---- keepalive ------------------------------------------------------------- */

static void isc_nop_cb(struct iscsi_context *ctx, int status, void *data,
		       void *priv)
{
	struct isc_path *ip = priv;

	/* Only a NOP-In on the live connection counts (a context being
	 * destroyed may cancel its NOP-Out through here). */
	if (status == SCSI_STATUS_GOOD && ctx == ip->ctx)
		ip->nop_out = false;
}

static void nop_reset(struct isc_path *ip, uint64_t now)
{
	ip->nop_out = false;
	ip->nop_next = now + ip->conf.nop_interval_ms * 1000000ull;
}

/* Send the next NOP-Out when due; declare the connection lost when the
 * last one went unanswered for too long.  Connection up. */
static void nop_step(struct isc_path *ip, uint64_t now)
{
	if (ip->conf.nop_interval_ms == MP_NOP_OFF)
		return;
	if (ip->nop_out) {
		if (now - ip->nop_sent >= ip->conf.nop_timeout_ms * 1000000ull) {
			ip->lost = true;
			ip->lost_why = "NOP-Out timed out";
		}
		return;
	}
	if (now < ip->nop_next)
		return;
	if (iscsi_nop_out_async(ip->ctx, isc_nop_cb, NULL, 0, ip)) {
		mp_log("%s: cannot queue a NOP-Out: %s", ip->conf.url,
		       iscsi_get_error(ip->ctx));
		ip->lost = true;
		return;
	}
	ip->nop_out = true;
	ip->nop_sent = now;
	ip->nop_next = now + ip->conf.nop_interval_ms * 1000000ull;
}

/* ---- connection loss ------------------------------------------------------- */

/* Drop the context; every command still on it is lost with it. */
static void conn_teardown(struct isc_path *ip, uint64_t now)
{
	struct iscsi_context *ctx = ip->ctx;
	bool was_up = ip->state == ISC_UP;

	ip->ctx = NULL;
	ip->lost = false;
	ip->connect_done = false;
	if (was_up) {
		ip->down_since = now;
		ip->failed_attempts = 0;
		/* Whoever noticed first (our timer, or TCP giving up on the
		 * unacknowledged NOP-Out after TCP_USER_TIMEOUT), the
		 * keepalive is what found the silence. */
		if (ip->nop_out)
			mp_log("%s: no answer to a NOP-Out for %llu ms",
			       ip->conf.url, (unsigned long long)
			       ((now - ip->nop_sent) / 1000000));
		mp_log("%s: connection lost (%s); reconnecting", ip->conf.url,
		       ip->lost_why ? ip->lost_why :
		       ctx ? iscsi_get_error(ctx) : "no context");
	} else {
		const char *why = isc_errors_end(ctx);

		if (ip->failed_attempts++ % 20 == 0)
			mp_log("%s: reconnect failed (%s); retrying",
			       ip->conf.url, why);
	}
	ip->state = ISC_DOWN;
	/* First try at once, then 0.2, 0.4, 0.8, 1, 1, ... s apart: a
	 * restarting target is back within seconds, a dead one costs a
	 * connection attempt per second. */
	ip->next_attempt = now;
	if (ip->failed_attempts)
		ip->next_attempt += min_u64(RECONNECT_MIN_NS <<
					    min_u64(ip->failed_attempts, 8),
					    RECONNECT_MAX_NS);
	ip->lost_why = NULL;
	if (ctx)
		iscsi_destroy_context(ctx);
	isc_reqs_disowned(ip);
	ip->lost = false;
	if (was_up)
		mp_path_event(ip->p, MP_PATH_EV_DOWN, -MP_E_TRANSPORT);
}

static void conn_attempt(struct isc_path *ip, uint64_t now)
{
	struct iscsi_context *ctx;

	isc_errors_begin();
	if (isc_ctx_new(&ip->conf, &ctx))
		goto failed;
	ip->ctx = ctx;
	ip->state = ISC_CONNECTING;
	ip->connect_done = false;
	ip->attempt_deadline = now + ip->timeout_ns;
	if (iscsi_connect_async(ctx, ip->conf.portal, isc_tcp_cb, ip))
		goto failed;
	return;
failed:
	conn_teardown(ip, now);
}

/* Connection state machine; runs at the reactor's top level. */
static void conn_step(struct isc_path *ip, uint64_t now)
{
	if (ip->state == ISC_CONNECTING) {
		if (ip->connect_done && ip->connect_status == SCSI_STATUS_GOOD) {
			ip->state = ISC_UP;
			ip->connect_done = false;
			isc_errors_end(ip->ctx);
			nop_reset(ip, now);
			mp_log("%s: reconnected after %llu ms", ip->conf.url,
			       (unsigned long long)((now - ip->down_since) / 1000000));
			mp_path_event(ip->p, MP_PATH_EV_UP, 0);
		} else if (ip->connect_done || ip->lost ||
			   now >= ip->attempt_deadline) {
			conn_teardown(ip, now);
		}
	}
	if (ip->state == ISC_UP && !ip->lost)
		nop_step(ip, now);
	if (ip->state == ISC_UP && ip->lost)
		conn_teardown(ip, now);
	if (ip->state == ISC_DOWN && now >= ip->next_attempt)
		conn_attempt(ip, now);
}

/* ---- reactor ----------------------------------------------------------------- */

/* Poll timeout in ms: the next retry, reconnect attempt or TICK_MS. */
static int next_wakeup(struct isc_path *ip, uint64_t now, int events)
{
	uint64_t t = (events ? TICK_MS : NO_EVENTS_MS) * 1000000ull;

	if (ip->state == ISC_DOWN)
		t = min_u64(t, ip->next_attempt > now ? ip->next_attempt - now : 0);
	if (ip->state == ISC_UP && ip->nready)
		t = isc_next_retry_ns(ip, now, t);
	return (int)((t + 999999) / 1000000);
}

static void *isc_reactor(void *arg)
{
	struct isc_path *ip = arg;

	isc_self = ip;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = ip->efd, .events = POLLIN },
					 { .fd = -1 } };
		struct mp_io *list;
		int events = 0, n;
		uint64_t now;
		bool stop;

		stop = take_submissions(ip, &list);
		start_submissions(ip, list);
		if (stop && !ip->reqs)
			break;
		now = mp_now_ns();
		conn_step(ip, now);
		if (ip->nready)
			isc_walk_ready(ip, now);
		if (ip->lost || ip->self_submitted)
			continue;   /* tear down / take those before sleeping */
		if (ip->ctx) {
			events = iscsi_which_events(ip->ctx);
			if (events) {
				pfd[1].fd = iscsi_get_fd(ip->ctx);
				pfd[1].events = (short)events;
			}
		}
		n = poll(pfd, 2, next_wakeup(ip, now, events || !ip->ctx));
		if (n > 0 && (pfd[0].revents & POLLIN)) {
			uint64_t v;

			if (read(ip->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				mp_log("%s: eventfd read: %s", ip->conf.url,
				       strerror(errno));
		}
		/* Also with no events: libiscsi scans for timed-out PDUs. */
		if (ip->ctx && iscsi_service(ip->ctx, n > 0 ? pfd[1].revents : 0) < 0)
			ip->lost = true;
	}
	return NULL;
}

/* ---- backend ops ------------------------------------------------------------- */

static void isc_submit(struct mp_path *p, struct mp_io *io)
{
	struct isc_path *ip = p->priv;
	uint64_t one = 1;

	/* io->next_ is ours while the path owns the io (lun.c links only
	 * ios it has not handed to the path). */
	io->next_ = NULL;
	pthread_mutex_lock(&ip->lock);
	if (ip->subq_tail)
		ip->subq_tail->next_ = io;
	else
		ip->subq_head = io;
	ip->subq_tail = io;
	pthread_mutex_unlock(&ip->lock);
	/* On the reactor (a completion callback submitting more) the loop
	 * takes the list before it sleeps again. */
	if (isc_self == ip)
		ip->self_submitted = true;
	else if (write(ip->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		mp_log("%s: eventfd write: %s", ip->conf.url, strerror(errno));
}

static int isc_open(struct mp_path *p, const char *spec,
		    const struct mp_open_opts *o)
{
	struct isc_path *ip;
	int ret;

	ip = calloc(1, sizeof(*ip));
	if (!ip)
		return -ENOMEM;
	ip->p = p;
	ret = isc_conf_init(&ip->conf, spec, o);
	if (ret)
		goto free_ip;
	ip->timeout_ns = ip->conf.timeout_ms * 1000000ull;
	ret = isc_login_probe(&ip->conf, &p->info, &ip->lim, &ip->ctx);
	if (ret)
		goto free_ip;
	ip->zero = calloc(1, ip->lim.block);
	if (!ip->zero) {
		ret = -ENOMEM;
		goto logout;
	}
	ip->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ip->efd < 0) {
		ret = -errno;
		goto free_zero;
	}
	pthread_mutex_init(&ip->lock, NULL);
	ip->state = ISC_UP;
	nop_reset(ip, mp_now_ns());
	p->priv = ip;
	p->mem_align = 0;
	p->max_inflight = ISC_MAX_INFLIGHT;
	ret = -pthread_create(&ip->thread, NULL, isc_reactor, ip);
	if (ret)
		goto destroy_lock;
	return 0;

destroy_lock:
	pthread_mutex_destroy(&ip->lock);
	close(ip->efd);
	p->priv = NULL;
free_zero:
	free(ip->zero);
logout:
	isc_ctx_logout_destroy(ip->ctx);
free_ip:
	free(ip);
	return ret;
}

static void isc_close(struct mp_path *p)
{
	struct isc_path *ip = p->priv;
	uint64_t one = 1;

	pthread_mutex_lock(&ip->lock);
	ip->stop = true;
	pthread_mutex_unlock(&ip->lock);
	if (write(ip->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		mp_log("%s: eventfd write: %s", ip->conf.url, strerror(errno));
	pthread_join(ip->thread, NULL);
	/* The reactor is gone: the context is ours now. */
	if (ip->state == ISC_UP)
		isc_ctx_logout_destroy(ip->ctx);
	else if (ip->ctx)
		iscsi_destroy_context(ip->ctx);
	pthread_mutex_destroy(&ip->lock);
	close(ip->efd);
	free(ip->zero);
	free(ip);
	p->priv = NULL;
}

const struct mp_backend_ops mp_iscsi_ops = {
	.name = "iscsi",
	.open = isc_open,
	.close = isc_close,
	.submit = isc_submit,
};
