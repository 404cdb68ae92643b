/*
 * sanlock_bench.c - the sanlock side of the lock manager benchmark
 * (bench/bench-lk.sh; our side is lk_bench.c).
 *
 *   sanlock_bench latency  --res RES [--iters N] [--warmup N]
 *   sanlock_bench contend  --res RES --rundirs DIR[,DIR...] [--seconds T]
 *                          [--retry-ms MS] [--hold-us N]
 *   sanlock_bench takeover --res RES --rundir DIR [--holder-rundir DIR]
 *                          [--kill daemon|client] [--settle-ms MS]
 *                          [--jitter-ms MS] [--max-s S]
 *
 * RES is sanlock's resource string LOCKSPACE:NAME:PATH:OFFSET.  The daemons,
 * the lockspace and the resource lease are set up by bench-lk.sh (sanlock
 * daemon -w 0, sanlock direct init, sanlock client add_lockspace).  A client
 * talks to the daemon whose run directory is in SANLOCK_RUN_DIR, so several
 * daemons with different host_ids can serve one machine: each stands for a
 * host.
 *
 *  latency   one registered process: N sanlock_acquire + sanlock_release of
 *            the resource, uncontended (client -> daemon -> paxos lease ->
 *            daemon -> client).
 *  contend   one process per run directory (= per host), all starting at one
 *            instant, looping acquire, (hold), release for T seconds.
 *            sanlock_acquire never waits for a live owner, so a host that
 *            finds the lease busy (SANLK_ACQUIRE_OWNER_NOWAIT) retries after
 *            2 ms, doubling up to --retry-ms (set by bench-lk.sh to the
 *            poll period lk_acquire settles at): lk_acquire's own schedule,
 *            so both sides wait alike.
 *  takeover  --kill daemon: a process on the daemon of --holder-rundir holds
 *            the lease; a process on the daemon of --rundir has registered.
 *            After settle+random(jitter) ms the holder's daemon and the
 *            holder are SIGKILLed (a host failure with the watchdog off) and
 *            the other host acquires, retrying on "owner alive" answers: the
 *            time from the kill to holding the lease (host_id lease expiry:
 *            8 * io_timeout + 60 s watchdog fire timeout).
 *            --kill client: holder and taker share one daemon and only the
 *            holder process dies; sanlock frees a dead pid's leases at once
 *            (not a host failure; shown for reference).
 *
 * libsanlock is loaded with dlopen(), so the Makefile's common link line
 * for bench/ needs no -lsanlock, and a machine without libsanlock-dev still
 * builds (this program then only says it cannot run).
 *
 * Exit: 0 ok, 1 failure, 2 usage or no libsanlock.
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<sanlock_resource.h>)
#include <sanlock.h>
#include <sanlock_resource.h>
#include <sanlock_rv.h>
#define HAVE_SANLOCK 1
#else
#define HAVE_SANLOCK 0
#endif

#define MAX_HOSTS 16

struct opts {
	const char *mode;
	const char *res;
	const char *rundir, *holder_rundir;
	char *rundirs[MAX_HOSTS];
	unsigned nrundirs;
	unsigned iters, warmup;
	double seconds;
	unsigned retry_ms, hold_us;
	bool kill_daemon;
	int settle_ms, jitter_ms;
	unsigned max_s;
};

#if HAVE_SANLOCK

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- libsanlock through dlopen ------------------------------------------------ */

static struct {
	__typeof__(sanlock_register) *reg;
	__typeof__(sanlock_acquire) *acquire;
	__typeof__(sanlock_release) *release;
	__typeof__(sanlock_str_to_res) *str_to_res;
} sl;

static int sl_load(void)
{
	void *h = dlopen("libsanlock.so.1", RTLD_NOW);

	if (!h)
		h = dlopen("libsanlock.so", RTLD_NOW);
	if (!h) {
		fprintf(stderr, "sanlock_bench: %s (install libsanlock1)\n",
			dlerror());
		return -ENOENT;
	}
	sl.reg = (__typeof__(sl.reg))dlsym(h, "sanlock_register");
	sl.acquire = (__typeof__(sl.acquire))dlsym(h, "sanlock_acquire");
	sl.release = (__typeof__(sl.release))dlsym(h, "sanlock_release");
	sl.str_to_res = (__typeof__(sl.str_to_res))dlsym(h, "sanlock_str_to_res");
	if (!sl.reg || !sl.acquire || !sl.release || !sl.str_to_res) {
		fprintf(stderr, "sanlock_bench: libsanlock lacks a symbol\n");
		return -ENOENT;
	}
	return 0;
}

/* Answers meaning "someone else has it now": try again later. */
static bool busy(int rv)
{
	switch (rv) {
	case -EAGAIN:
	case -EBUSY:
	case -EEXIST:
	case SANLK_ACQUIRE_IDLIVE:
	case SANLK_ACQUIRE_OWNED:
	case SANLK_ACQUIRE_OTHER:
#ifdef SANLK_ACQUIRE_OWNED_RETRY
	case SANLK_ACQUIRE_OWNED_RETRY:
#endif
		return true;
	default:
		return false;
	}
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

static double pct_us(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1000.0;
}

/*
 * Register this process with the daemon of rundir (NULL: the environment's)
 * and parse the resource.  libsanlock reads SANLOCK_RUN_DIR at each connect.
 */
static int client_open(const struct opts *o, const char *rundir,
		       struct sanlk_resource **res)
{
	char *copy;
	int sock, rv;

	if (rundir && setenv("SANLOCK_RUN_DIR", rundir, 1))
		return -errno;
	copy = strdup(o->res);
	if (!copy)
		return -ENOMEM;
	rv = sl.str_to_res(copy, res);
	free(copy);
	if (rv < 0) {
		fprintf(stderr, "sanlock_bench: bad resource '%s': %d\n", o->res, rv);
		return rv;
	}
	sock = sl.reg();
	if (sock < 0) {
		fprintf(stderr, "sanlock_bench: register with %s: %d\n",
			rundir ? rundir : "$SANLOCK_RUN_DIR", sock);
		free(*res);
		*res = NULL;
	}
	return sock;
}

/* ---- latency ---------------------------------------------------------------------- */

static int run_latency(const struct opts *o)
{
	struct sanlk_resource *res = NULL;
	uint64_t *lat, acq_sum = 0, rel_sum = 0, total = 0, t_start, t_end;
	int sock, rv = 0;

	lat = calloc(o->iters, sizeof(*lat));
	if (!lat)
		return -ENOMEM;
	sock = client_open(o, NULL, &res);
	if (sock < 0) {
		rv = sock;
		goto free_lat;
	}
	for (unsigned i = 0; i < o->warmup; i++) {
		rv = sl.acquire(sock, -1, 0, 1, &res, NULL);
		if (!rv)
			rv = sl.release(sock, -1, 0, 1, &res);
		if (rv)
			goto fail;
	}
	t_start = now_ns();
	for (unsigned i = 0; i < o->iters; i++) {
		uint64_t t0 = now_ns(), t1, t2;

		rv = sl.acquire(sock, -1, 0, 1, &res, NULL);
		if (rv)
			goto fail;
		t1 = now_ns();
		rv = sl.release(sock, -1, 0, 1, &res);
		if (rv)
			goto fail;
		t2 = now_ns();
		lat[i] = t2 - t0;
		acq_sum += t1 - t0;
		rel_sum += t2 - t1;
		total += t2 - t0;
	}
	t_end = now_ns();
	qsort(lat, o->iters, sizeof(*lat), cmp_u64);
	printf("{\"tool\":\"sanlock_bench\",\"mode\":\"latency\",\"iters\":%u,"
	       "\"mean_us\":%.2f,\"median_us\":%.2f,\"p99_us\":%.2f,"
	       "\"min_us\":%.2f,\"max_us\":%.2f,"
	       "\"acquire_mean_us\":%.2f,\"release_mean_us\":%.2f,"
	       "\"ops_per_s\":%.1f}\n",
	       o->iters, (double)total / o->iters / 1000.0,
	       pct_us(lat, o->iters, 50), pct_us(lat, o->iters, 99),
	       (double)lat[0] / 1000.0, (double)lat[o->iters - 1] / 1000.0,
	       (double)acq_sum / o->iters / 1000.0,
	       (double)rel_sum / o->iters / 1000.0,
	       o->iters / ((double)(t_end - t_start) / 1e9));
	goto close_sock;

fail:
	fprintf(stderr, "sanlock_bench: latency: sanlock error %d\n", rv);
close_sock:
	close(sock);
	free(res);
free_lat:
	free(lat);
	return rv;
}

/* ---- contention ---------------------------------------------------------------------- */

struct contend_result {
	int idx;
	int err;
	uint64_t count, busy;
	uint64_t wait_sum_ns, wait_max_ns;
};

static int contend_child(const struct opts *o, int idx, int ready_fd,
			 int go_fd, int res_fd)
{
	struct contend_result r = { .idx = idx };
	struct sanlk_resource *res = NULL;
	uint64_t start, end;
	int sock;
	ssize_t n;

	sock = client_open(o, o->rundirs[idx], &res);
	if (sock < 0)
		r.err = sock;
	n = write(ready_fd, "r", 1);
	if (r.err)
		goto report;
	if (n != 1 || read(go_fd, &start, sizeof(start)) != sizeof(start)) {
		r.err = -EPIPE;
		goto close_sock;
	}
	end = start + (uint64_t)(o->seconds * 1e9);
	sleep_until(start);
	while (now_ns() < end) {
		uint64_t t0 = now_ns(), w;
		unsigned nap = 2;
		int rv;

		/* wait for the lease the way lk_acquire waits for a lock:
		 * try, and look again after 2 ms, doubling up to retry_ms,
		 * while it is busy */
		for (;;) {
			rv = sl.acquire(sock, -1, SANLK_ACQUIRE_OWNER_NOWAIT, 1,
					&res, NULL);
			if (!busy(rv) || now_ns() >= end)
				break;
			r.busy++;
			usleep((nap < o->retry_ms ? nap : o->retry_ms) * 1000);
			if (nap < o->retry_ms)
				nap *= 2;
		}
		if (busy(rv))
			break;   /* the run ended while waiting */
		if (rv) {
			r.err = rv;
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
		rv = sl.release(sock, -1, 0, 1, &res);
		if (rv) {
			r.err = rv;
			break;
		}
	}
close_sock:
	close(sock);
	free(res);
report:
	if (r.err)
		fprintf(stderr, "sanlock_bench: host %d: sanlock error %d\n",
			idx, r.err);
	if (write(res_fd, &r, sizeof(r)) != sizeof(r))
		return 1;
	return r.err ? 1 : 0;
}

static int run_contend(const struct opts *o)
{
	struct contend_result res[MAX_HOSTS];
	int ready[2], go[2], out[2], ret = 0;
	pid_t pids[MAX_HOSTS];
	unsigned started = 0, k = o->nrundirs;
	uint64_t start, total = 0, busy_n = 0, min_c = UINT64_MAX, max_c = 0;
	uint64_t wait_sum = 0, wait_max = 0;
	char c;

	memset(res, 0, sizeof(res));
	if (pipe(ready) || pipe(go) || pipe(out))
		return -errno;
	for (; started < k; started++) {
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
	for (unsigned i = 0; i < k; i++) {
		if (read(ready[0], &c, 1) != 1) {
			ret = -EPIPE;
			goto reap;
		}
	}
	start = now_ns() + 100000000ull;
	for (unsigned i = 0; i < k; i++) {
		if (write(go[1], &start, sizeof(start)) != sizeof(start)) {
			ret = -EPIPE;
			goto reap;
		}
	}
	for (unsigned i = 0; i < k; i++) {
		struct contend_result r;

		if (read(out[0], &r, sizeof(r)) != sizeof(r) || r.idx < 0 ||
		    r.idx >= (int)k) {
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
		fprintf(stderr, "sanlock_bench: contend failed: %d\n", ret);
		return ret;
	}
	for (unsigned i = 0; i < k; i++) {
		total += res[i].count;
		busy_n += res[i].busy;
		wait_sum += res[i].wait_sum_ns;
		if (res[i].wait_max_ns > wait_max)
			wait_max = res[i].wait_max_ns;
		if (res[i].count < min_c)
			min_c = res[i].count;
		if (res[i].count > max_c)
			max_c = res[i].count;
	}
	printf("{\"tool\":\"sanlock_bench\",\"mode\":\"contend\",\"hosts\":%u,"
	       "\"seconds\":%.1f,\"retry_ms\":%u,\"hold_us\":%u,\"per_host\":[",
	       k, o->seconds, o->retry_ms, o->hold_us);
	for (unsigned i = 0; i < k; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)res[i].count);
	printf("],\"acq_per_s\":%.1f,\"busy_answers\":%llu,"
	       "\"min_share\":%.3f,\"max_share\":%.3f,"
	       "\"wait_mean_us\":%.1f,\"wait_max_ms\":%.1f}\n",
	       (double)total / o->seconds, (unsigned long long)busy_n,
	       total ? (double)min_c / (double)total : 0.0,
	       total ? (double)max_c / (double)total : 0.0,
	       total ? (double)wait_sum / (double)total / 1000.0 : 0.0,
	       (double)wait_max / 1e6);
	return 0;
}

/* ---- takeover ---------------------------------------------------------------------- */

static int holder_child(const struct opts *o, const char *rundir, int fd)
{
	struct sanlk_resource *res = NULL;
	int sock = client_open(o, rundir, &res);
	int rv;

	if (sock < 0)
		return 1;
	rv = sl.acquire(sock, -1, 0, 1, &res, NULL);
	if (rv) {
		fprintf(stderr, "sanlock_bench: holder: acquire: %d\n", rv);
		return 1;
	}
	if (write(fd, "H", 1) != 1)
		return 1;
	for (;;)
		pause();
}

static pid_t daemon_pid(const char *rundir)
{
	char path[4096];
	FILE *f;
	long pid = -1;

	snprintf(path, sizeof(path), "%s/sanlock.pid", rundir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = -1;
	fclose(f);
	return (pid_t)pid;
}

static int run_takeover(const struct opts *o)
{
	const char *hdir = o->kill_daemon ? o->holder_rundir : o->rundir;
	struct sanlk_resource *res = NULL;
	struct pollfd pfd;
	pid_t a, d = -1;
	int fds[2], sock, rv, settle = o->settle_ms;
	uint64_t t0, t1, deadline, tries = 0;
	char c;

	if (o->kill_daemon) {
		d = daemon_pid(hdir);
		if (d <= 0) {
			fprintf(stderr, "sanlock_bench: no daemon pid in %s\n", hdir);
			return -ENOENT;
		}
	}
	if (pipe(fds))
		return -errno;
	a = fork();
	if (a < 0)
		return -errno;
	if (a == 0) {
		close(fds[0]);
		_exit(holder_child(o, hdir, fds[1]));
	}
	close(fds[1]);
	sock = client_open(o, o->rundir, &res);
	if (sock < 0) {
		rv = sock;
		goto kill_a;
	}
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 60000) != 1 || read(fds[0], &c, 1) != 1) {
		fprintf(stderr, "sanlock_bench: takeover: the holder never held\n");
		rv = -ETIMEDOUT;
		goto close_sock;
	}
	if (o->jitter_ms > 0)
		settle += rand() % o->jitter_ms;
	usleep((useconds_t)settle * 1000);
	t0 = now_ns();
	if (d > 0)
		kill(d, SIGKILL);
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	a = 0;
	deadline = t0 + (uint64_t)o->max_s * 1000000000ull;
	/* The daemon waits inside one acquire while the owner's host_id lease
	 * stands still; it answers "alive" when it saw a renewal it had not
	 * seen before (the owner's last one), so try again. */
	for (;;) {
		unsigned flags = o->kill_daemon ? 0 : SANLK_ACQUIRE_OWNER_NOWAIT;

		rv = sl.acquire(sock, -1, flags, 1, &res, NULL);
		tries++;
		if (!busy(rv) || now_ns() >= deadline)
			break;
		usleep(o->kill_daemon ? 100000 : 1000);
	}
	t1 = now_ns();
	if (rv) {
		fprintf(stderr, "sanlock_bench: takeover: acquire: %d after %.1f s\n",
			rv, (double)(t1 - t0) / 1e9);
		goto close_sock;
	}
	printf("{\"tool\":\"sanlock_bench\",\"mode\":\"takeover\","
	       "\"kill\":\"%s\",\"settle_ms\":%d,\"takeover_ms\":%.1f,"
	       "\"acquire_calls\":%llu}\n",
	       o->kill_daemon ? "daemon" : "client", settle,
	       (double)(t1 - t0) / 1e6, (unsigned long long)tries);
	sl.release(sock, -1, 0, 1, &res);
close_sock:
	close(sock);
	free(res);
kill_a:
	if (a > 0) {
		kill(a, SIGKILL);
		waitpid(a, NULL, 0);
	}
	close(fds[0]);
	return rv;
}

#endif /* HAVE_SANLOCK */

/* ---- main ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: sanlock_bench latency  --res RES [--iters N] [--warmup N]\n"
"       sanlock_bench contend  --res RES --rundirs DIR[,DIR...] [--seconds T]\n"
"                              [--retry-ms MS] [--hold-us N]\n"
"       sanlock_bench takeover --res RES --rundir DIR [--holder-rundir DIR]\n"
"                              [--kill daemon|client] [--settle-ms MS]\n"
"                              [--jitter-ms MS] [--max-s S]\n"
"RES = LOCKSPACE:NAME:PATH:OFFSET; the daemon is $SANLOCK_RUN_DIR's.\n");
}

static int split_rundirs(struct opts *o, char *list)
{
	char *save = NULL;

	for (char *t = strtok_r(list, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		if (o->nrundirs == MAX_HOSTS)
			return -E2BIG;
		o->rundirs[o->nrundirs++] = t;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "res", required_argument, NULL, 'r' },
		{ "rundir", required_argument, NULL, 'D' },
		{ "holder-rundir", required_argument, NULL, 'A' },
		{ "rundirs", required_argument, NULL, 'R' },
		{ "iters", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 't' },
		{ "retry-ms", required_argument, NULL, 'y' },
		{ "hold-us", required_argument, NULL, 'H' },
		{ "kill", required_argument, NULL, 'K' },
		{ "settle-ms", required_argument, NULL, 'S' },
		{ "jitter-ms", required_argument, NULL, 'J' },
		{ "max-s", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct opts o = { .iters = 1000, .warmup = 50, .seconds = 5,
			  .retry_ms = 250, .kill_daemon = true, .max_s = 600 };
	int c, ret = 2;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	o.mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (c) {
		case 'r': o.res = optarg; break;
		case 'D': o.rundir = optarg; break;
		case 'A': o.holder_rundir = optarg; break;
		case 'R':
			if (split_rundirs(&o, optarg)) {
				usage(stderr);
				return 2;
			}
			break;
		case 'n': o.iters = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'w': o.warmup = (unsigned)strtoul(optarg, NULL, 0); break;
		case 't': o.seconds = strtod(optarg, NULL); break;
		case 'y': o.retry_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'H': o.hold_us = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'K': o.kill_daemon = strcmp(optarg, "client") != 0; break;
		case 'S': o.settle_ms = atoi(optarg); break;
		case 'J': o.jitter_ms = atoi(optarg); break;
		case 'M': o.max_s = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.res || o.iters == 0 || o.seconds <= 0) {
		usage(stderr);
		return 2;
	}
#if HAVE_SANLOCK
	if (sl_load())
		return 2;
	srand((unsigned)(now_ns() ^ (uint64_t)getpid()));
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(o.mode, "latency")) {
		ret = run_latency(&o);
	} else if (!strcmp(o.mode, "contend") && o.nrundirs > 0) {
		ret = run_contend(&o);
	} else if (!strcmp(o.mode, "takeover") && o.rundir &&
		   (!o.kill_daemon || o.holder_rundir)) {
		ret = run_takeover(&o);
	} else {
		usage(stderr);
		return 2;
	}
	ret = ret ? 1 : 0;
#else
	fprintf(stderr, "sanlock_bench: built without sanlock headers "
		"(install libsanlock-dev and rebuild)\n");
#endif
	return ret;
}
