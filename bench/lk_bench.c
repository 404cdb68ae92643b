/*
 * lk_bench.c - lock manager benchmark, the counterpart of sanlock_bench.c.
 *
 *   lk_bench latency  --spec SPEC [--iters N] [--warmup N]
 *   lk_bench contend  --spec SPEC --hosts K [--seconds T] [--hold-us N]
 *   lk_bench takeover --spec SPEC [--settle-ms MS] [--jitter-ms MS]
 *   common: [--interval MS] [--dead MS]   (0 = the lock manager's defaults)
 *
 * Every mode formats a heartbeat region at offset 0 of the LUN and one lock
 * record at 1 MiB, then drives the public API (lk_join, lk_acquire with
 * LK_EXCL, lk_release) exactly as the file system will.  Each host is its
 * own process with its own mp_lun and lk_volume (as tests/helpers/lk_host.c),
 * so hosts share nothing but the LUN.  Results: one JSON object on stdout.
 *
 *  latency   one host: N acquire+release pairs, uncontended; mean, median,
 *            p99 in microseconds, and the device I/Os per pair (from the
 *            LUN's counters, so heartbeat I/O in the window is included).
 *  contend   K hosts loop acquire, (hold), release on the same lock for T
 *            seconds, all starting at one instant; total acquisitions per
 *            second and each host's share (lk_acquire waits by polling the
 *            record, so a releasing host tends to win again: the spread
 *            shows how fair that is).
 *  takeover  host A holds the lock, host B has joined and watches A beat;
 *            after settle+random(jitter) ms (default: one interval plus
 *            random(one interval)) A is SIGKILLed and B calls
 *            lk_acquire: the time from the kill to B holding the lock
 *            (dead-host detection, recovery, breaking the hold).  The random
 *            phase spreads the kill over A's beat cycle.  Target: within
 *            dead + interval.
 *
 * Exit: 0 ok, 1 a host failed, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lockmgr/lk.h"

#define LOCK_OFF (1ull << 20)   /* past any region of up to 2047 slots */
#define SLOTS 16
#define MAX_HOSTS 16
#define ACQ_TIMEOUT_MS 60000

struct opts {
	const char *mode;
	const char *spec;
	unsigned iters, warmup;
	unsigned hosts;
	double seconds;
	unsigned hold_us;
	unsigned interval_ms, dead_ms;   /* 0 = defaults */
	int settle_ms, jitter_ms;        /* -1 = from the interval */
};

struct host {
	mp_lun *lun;
	lk_volume *vol;
	lk_lock *lock;
	struct lk_vol_info info;
};

/* Set by the recovery callback: proves a takeover broke a dead host. */
static volatile int recovered;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double pct_us(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1000.0;
}

static int recover_cb(void *arg, const struct lk_dead_host *h)
{
	(void)arg;
	(void)h;
	recovered = 1;
	return 0;
}

/* ---- LUN and hosts ----------------------------------------------------------- */

static int format_lun(const struct opts *o)
{
	struct lk_format_params p = { .slots = SLOTS,
				      .interval_ms = o->interval_ms,
				      .dead_ms = o->dead_ms };
	mp_lun *lun;
	int ret;

	memset(p.uuid, 0xb1, sizeof(p.uuid));
	ret = mp_lun_open(o->spec, NULL, &lun);
	if (ret) {
		fprintf(stderr, "lk_bench: open %s: %s\n", o->spec, mp_strerror(ret));
		return ret;
	}
	ret = lk_format(lun, 0, &p);
	if (!ret)
		ret = lk_lock_format(lun, LOCK_OFF, p.uuid);
	if (!ret)
		ret = mp_lun_flush(lun);
	if (ret)
		fprintf(stderr, "lk_bench: format: %s\n", lk_strerror(ret));
	/* closed before any fork: children must not inherit LUN threads */
	mp_lun_close(lun);
	return ret;
}

static int host_open(const struct opts *o, const char *name, struct host *h)
{
	struct mp_open_opts mo = { .flags = MP_OPEN_RETRY_RESCONFLICT };
	struct lk_join_opts jo = { 0 };
	int ret;

	memset(h, 0, sizeof(*h));
	ret = mp_lun_open(o->spec, &mo, &h->lun);
	if (ret) {
		fprintf(stderr, "lk_bench: %s: open %s: %s\n", name, o->spec,
			mp_strerror(ret));
		goto out;
	}
	ret = lk_open(h->lun, 0, &h->vol);
	if (ret)
		goto close_lun;
	for (size_t i = 0; i < sizeof(jo.host_uuid); i++)
		jo.host_uuid[i] = (uint8_t)(name[i % strlen(name)] + i);
	jo.host_name = name;
	jo.recover = recover_cb;
	jo.no_rejoin = true;
	ret = lk_join(h->vol, &jo);
	if (ret)
		goto close_vol;
	ret = lk_lock_open(h->vol, LOCK_OFF, &h->lock);
	if (ret)
		goto close_vol;
	lk_get_info(h->vol, &h->info);
	return 0;

close_vol:
	lk_close(h->vol);
close_lun:
	mp_lun_close(h->lun);
	fprintf(stderr, "lk_bench: %s: %s\n", name, lk_strerror(ret));
out:
	return ret;
}

static void host_close(struct host *h)
{
	lk_lock_close(h->lock);
	lk_close(h->vol);
	mp_lun_close(h->lun);
}

/* ---- latency ------------------------------------------------------------------ */

static int run_latency(const struct opts *o)
{
	struct mp_lun_stats s0, s1;
	struct host h;
	uint64_t *lat, acq_sum = 0, rel_sum = 0, total = 0, t_start, t_end;
	int ret;

	lat = calloc(o->iters, sizeof(*lat));
	if (!lat)
		return -ENOMEM;
	ret = format_lun(o);
	if (ret)
		goto free_lat;
	ret = host_open(o, "lat", &h);
	if (ret)
		goto free_lat;
	for (unsigned i = 0; i < o->warmup; i++) {
		ret = lk_acquire(h.lock, LK_EXCL, 0);
		if (!ret)
			ret = lk_release(h.lock);
		if (ret)
			goto fail;
	}
	mp_lun_get_stats(h.lun, &s0);
	t_start = now_ns();
	for (unsigned i = 0; i < o->iters; i++) {
		uint64_t t0 = now_ns(), t1, t2;

		/* timeout 0: try once; uncontended it must succeed */
		ret = lk_acquire(h.lock, LK_EXCL, 0);
		if (ret)
			goto fail;
		t1 = now_ns();
		ret = lk_release(h.lock);
		if (ret)
			goto fail;
		t2 = now_ns();
		lat[i] = t2 - t0;
		acq_sum += t1 - t0;
		rel_sum += t2 - t1;
		total += t2 - t0;
	}
	t_end = now_ns();
	mp_lun_get_stats(h.lun, &s1);
	qsort(lat, o->iters, sizeof(*lat), cmp_u64);
	printf("{\"tool\":\"lk_bench\",\"mode\":\"latency\",\"method\":\"%s\","
	       "\"interval_ms\":%u,\"dead_ms\":%u,\"iters\":%u,"
	       "\"mean_us\":%.2f,\"median_us\":%.2f,\"p99_us\":%.2f,"
	       "\"min_us\":%.2f,\"max_us\":%.2f,"
	       "\"acquire_mean_us\":%.2f,\"release_mean_us\":%.2f,"
	       "\"ops_per_s\":%.1f,"
	       "\"reads_per_op\":%.2f,\"writes_per_op\":%.2f,\"caws_per_op\":%.2f}\n",
	       lk_method_name(h.info.method), h.info.interval_ms, h.info.dead_ms,
	       o->iters, (double)total / o->iters / 1000.0,
	       pct_us(lat, o->iters, 50), pct_us(lat, o->iters, 99),
	       (double)lat[0] / 1000.0, (double)lat[o->iters - 1] / 1000.0,
	       (double)acq_sum / o->iters / 1000.0,
	       (double)rel_sum / o->iters / 1000.0,
	       o->iters / ((double)(t_end - t_start) / 1e9),
	       (double)(s1.reads - s0.reads) / o->iters,
	       (double)(s1.writes - s0.writes) / o->iters,
	       (double)(s1.caws - s0.caws) / o->iters);
	host_close(&h);
	goto free_lat;

fail:
	fprintf(stderr, "lk_bench: latency: %s\n", lk_strerror(ret));
	host_close(&h);
free_lat:
	free(lat);
	return ret;
}

/* ---- contention ---------------------------------------------------------------- */

struct contend_result {
	int idx;
	int err;
	uint64_t count;
	uint64_t wait_sum_ns, wait_max_ns;
};

/* One host process: join, report ready, wait for the common start instant,
 * then loop until the common end.  Only acquisitions that completed before
 * the end count. */
static int contend_child(const struct opts *o, int idx, int ready_fd,
			 int go_fd, int res_fd)
{
	struct contend_result r = { .idx = idx };
	struct host h;
	char name[32];
	uint64_t start, end;
	ssize_t n;

	snprintf(name, sizeof(name), "host%d", idx);
	r.err = host_open(o, name, &h);
	n = write(ready_fd, "r", 1);
	if (r.err)
		goto report;
	if (n != 1 || read(go_fd, &start, sizeof(start)) != sizeof(start)) {
		r.err = -EPIPE;
		goto close_host;
	}
	end = start + (uint64_t)(o->seconds * 1e9);
	sleep_until(start);
	while (now_ns() < end) {
		uint64_t t0 = now_ns(), w;
		int ret = lk_acquire(h.lock, LK_EXCL, ACQ_TIMEOUT_MS);

		if (ret) {
			r.err = ret;
			break;
		}
		w = now_ns() - t0;
		if (now_ns() <= end) {
			r.count++;
			r.wait_sum_ns += w;
			if (w > r.wait_max_ns)
				r.wait_max_ns = w;
		}
		if (o->hold_us)
			usleep(o->hold_us);
		ret = lk_release(h.lock);
		if (ret) {
			r.err = ret;
			break;
		}
	}
close_host:
	host_close(&h);
report:
	if (write(res_fd, &r, sizeof(r)) != sizeof(r))
		return 1;
	return r.err ? 1 : 0;
}

static int run_contend(const struct opts *o)
{
	struct contend_result res[MAX_HOSTS];
	int ready[2], go[2], out[2], ret = 0;
	pid_t pids[MAX_HOSTS];
	unsigned started = 0;
	uint64_t start, total = 0, min_c = UINT64_MAX, max_c = 0;
	uint64_t wait_sum = 0, wait_max = 0;
	char c;

	memset(res, 0, sizeof(res));
	ret = format_lun(o);
	if (ret)
		return ret;
	if (pipe(ready) || pipe(go) || pipe(out))
		return -errno;
	for (; started < o->hosts; started++) {
		pid_t p = fork();

		if (p < 0) {
			ret = -errno;
			goto reap;
		}
		if (p == 0) {
			close(ready[0]);
			close(go[1]);
			close(out[0]);
			_exit(contend_child(o, (int)started, ready[1], go[0],
					    out[1]));
		}
		pids[started] = p;
	}
	close(ready[1]);
	close(go[0]);
	close(out[1]);
	for (unsigned i = 0; i < o->hosts; i++) {
		if (read(ready[0], &c, 1) != 1) {
			ret = -EPIPE;
			goto reap;
		}
	}
	/* one start instant for everybody, a little ahead so that all are
	 * asleep on it (CLOCK_MONOTONIC is one clock for the machine) */
	start = now_ns() + 100000000ull;
	for (unsigned i = 0; i < o->hosts; i++) {
		if (write(go[1], &start, sizeof(start)) != sizeof(start)) {
			ret = -EPIPE;
			goto reap;
		}
	}
	for (unsigned i = 0; i < o->hosts; i++) {
		struct contend_result r;

		if (read(out[0], &r, sizeof(r)) != sizeof(r) || r.idx < 0 ||
		    r.idx >= (int)o->hosts) {
			ret = -EPIPE;
			goto reap;
		}
		res[r.idx] = r;
		if (r.err && !ret)
			ret = r.err;
	}
reap:
	close(go[1]);
	for (unsigned i = 0; i < started; i++)
		waitpid(pids[i], NULL, 0);
	close(ready[0]);
	close(out[0]);
	if (ret) {
		fprintf(stderr, "lk_bench: contend: %s\n", lk_strerror(ret));
		return ret;
	}
	for (unsigned i = 0; i < o->hosts; i++) {
		total += res[i].count;
		wait_sum += res[i].wait_sum_ns;
		if (res[i].wait_max_ns > wait_max)
			wait_max = res[i].wait_max_ns;
		if (res[i].count < min_c)
			min_c = res[i].count;
		if (res[i].count > max_c)
			max_c = res[i].count;
	}
	printf("{\"tool\":\"lk_bench\",\"mode\":\"contend\",\"hosts\":%u,"
	       "\"seconds\":%.1f,\"hold_us\":%u,\"per_host\":[",
	       o->hosts, o->seconds, o->hold_us);
	for (unsigned i = 0; i < o->hosts; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)res[i].count);
	printf("],\"acq_per_s\":%.1f,\"min_share\":%.3f,\"max_share\":%.3f,"
	       "\"wait_mean_us\":%.1f,\"wait_max_ms\":%.1f}\n",
	       (double)total / o->seconds,
	       total ? (double)min_c / (double)total : 0.0,
	       total ? (double)max_c / (double)total : 0.0,
	       total ? (double)wait_sum / (double)total / 1000.0 : 0.0,
	       (double)wait_max / 1e6);
	return 0;
}

/* ---- takeover ------------------------------------------------------------------ */

/* Host A: take the lock, say so, and hold it until killed. */
static int holder_child(const struct opts *o, int fd)
{
	struct host h;
	int ret = host_open(o, "holder", &h);

	if (!ret)
		ret = lk_acquire(h.lock, LK_EXCL, ACQ_TIMEOUT_MS);
	if (ret) {
		fprintf(stderr, "lk_bench: holder: %s\n", lk_strerror(ret));
		return 1;
	}
	if (write(fd, "H", 1) != 1)
		return 1;
	for (;;)
		pause();
}

static int run_takeover(const struct opts *o)
{
	struct pollfd pfd;
	struct host h;
	int fds[2], ret, settle;
	pid_t a;
	uint64_t t0, t1;
	char c;

	ret = format_lun(o);
	if (ret)
		return ret;
	if (pipe(fds))
		return -errno;
	a = fork();
	if (a < 0)
		return -errno;
	if (a == 0) {
		close(fds[0]);
		_exit(holder_child(o, fds[1]));
	}
	close(fds[1]);
	ret = host_open(o, "taker", &h);
	if (ret)
		goto kill_a;
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 30000) != 1 || read(fds[0], &c, 1) != 1) {
		fprintf(stderr, "lk_bench: takeover: the holder never held\n");
		ret = -ETIMEDOUT;
		goto close_h;
	}
	/* B watches A beat for at least one interval (a steady cluster, not
	 * one that just formed); the random part spreads the kill over A's
	 * beat cycle. */
	settle = o->settle_ms >= 0 ? o->settle_ms : (int)h.info.interval_ms;
	{
		int jitter = o->jitter_ms >= 0 ? o->jitter_ms : (int)h.info.interval_ms;

		if (jitter > 0)
			settle += rand() % jitter;
	}
	usleep((useconds_t)settle * 1000);
	t0 = now_ns();
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	a = 0;
	ret = lk_acquire(h.lock, LK_EXCL, 4 * h.info.dead_ms + 10000);
	t1 = now_ns();
	if (ret) {
		fprintf(stderr, "lk_bench: takeover: acquire: %s\n", lk_strerror(ret));
		goto close_h;
	}
	printf("{\"tool\":\"lk_bench\",\"mode\":\"takeover\",\"method\":\"%s\","
	       "\"interval_ms\":%u,\"dead_ms\":%u,\"settle_ms\":%d,"
	       "\"takeover_ms\":%.1f,\"bound_ms\":%u,\"within\":%s,"
	       "\"recovered\":%s}\n",
	       lk_method_name(h.info.method), h.info.interval_ms, h.info.dead_ms,
	       settle, (double)(t1 - t0) / 1e6,
	       h.info.dead_ms + h.info.interval_ms,
	       (double)(t1 - t0) / 1e6 <= h.info.dead_ms + h.info.interval_ms ?
	       "true" : "false", recovered ? "true" : "false");
	lk_release(h.lock);
close_h:
	host_close(&h);
kill_a:
	if (a > 0) {
		kill(a, SIGKILL);
		waitpid(a, NULL, 0);
	}
	close(fds[0]);
	return ret;
}

/* ---- main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: lk_bench latency  --spec SPEC [--iters N] [--warmup N]\n"
"       lk_bench contend  --spec SPEC --hosts K [--seconds T] [--hold-us N]\n"
"       lk_bench takeover --spec SPEC [--settle-ms MS] [--jitter-ms MS]\n"
"       common: [--interval MS] [--dead MS] (0 = lock manager defaults)\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "spec", required_argument, NULL, 's' },
		{ "iters", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "hosts", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 't' },
		{ "hold-us", required_argument, NULL, 'H' },
		{ "interval", required_argument, NULL, 'i' },
		{ "dead", required_argument, NULL, 'd' },
		{ "settle-ms", required_argument, NULL, 'S' },
		{ "jitter-ms", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct opts o = { .iters = 1000, .warmup = 50, .hosts = 2,
			  .seconds = 5, .settle_ms = -1, .jitter_ms = -1 };
	int c, ret;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	o.mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 's': o.spec = optarg; break;
		case 'n': o.iters = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'w': o.warmup = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'k': o.hosts = (unsigned)strtoul(optarg, NULL, 0); break;
		case 't': o.seconds = strtod(optarg, NULL); break;
		case 'H': o.hold_us = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'i': o.interval_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'd': o.dead_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'S': o.settle_ms = atoi(optarg); break;
		case 'J': o.jitter_ms = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.spec || o.iters == 0 || o.hosts < 1 || o.hosts > MAX_HOSTS ||
	    o.seconds <= 0) {
		usage(stderr);
		return 2;
	}
	srand((unsigned)(now_ns() ^ (uint64_t)getpid()));
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(o.mode, "latency"))
		ret = run_latency(&o);
	else if (!strcmp(o.mode, "contend"))
		ret = run_contend(&o);
	else if (!strcmp(o.mode, "takeover"))
		ret = run_takeover(&o);
	else {
		usage(stderr);
		return 2;
	}
	return ret ? 1 : 0;
}
