/*
 * mp_mpath_stream - a verified I/O stream on a (multipath) LUN, for the
 * failover tests and benchmarks.
 *
 *   mp_mpath_stream SPEC SECONDS [key=value ...]
 *     policy=P     path policy (mp_lun_set_policy syntax)
 *     apd=MS       APD timeout          check=MS   path checker period
 *     timeout=MS   iSCSI command timeout qd=N      I/Os kept in flight
 *     nop=MS       iSCSI NOP-Out interval (0xffffffff: none)
 *     noptimeout=MS  iSCSI NOP-Out timeout
 *     bs=SIZE      I/O size (default 64k)
 *     mode=verify  write a pattern, read it back, compare (default)
 *     mode=read    reads only (throughput)
 *     adaptive=0   MP_OPEN_FIXED_QD: adaptive queue depth off (it is on
 *                  by default; qsample=N / qthresh=N change its sample
 *                  size and threshold)
 *     depth=N      device queue depth (default 64)
 *     pr=KEY       before the stream, register KEY (mp_lun_pr: on every
 *                  path) and reserve with prtype=N (default 5, Write
 *                  Exclusive - Registrants Only); after it, release and
 *                  unregister.  Prints "pr KEYS: keys=N reserved=0|1" after
 *                  reserving, before releasing and after unregistering,
 *                  and "pr error: ..." when a step fails (exit 5)
 *     add=SPEC     at 2 s, add SPEC as a path (mp_lun_path_add) and print
 *                  "path add: INDEX" or "path add failed: ERROR" (may be
 *                  given twice)
 *
 * Prints a line per second (I/Os, MB/s, errors, path states) and at the
 * end: "result ios=N errors=N mismatches=N mbps=X max_latency_ms=N
 * max_gap_ms=N" - max_latency is the longest any I/O took (a failover
 * shows there), max_gap the longest time without a completion.
 * Exit 0 when every I/O succeeded and every read matched, 3 on I/O errors
 * (listed), 1 on a data mismatch, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "multipath/mp.h"

#define MAX_QD 256

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1, *p = buf;

	for (size_t i = 0; i < len / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
}

struct slot {
	struct mp_io io;
	struct iovec iov;
	unsigned char *buf, *want;
	uint64_t off, seq, t0;
	bool reading;
};

static struct {
	pthread_mutex_t m;
	pthread_cond_t c;
	mp_lun *lun;
	bool stopping, verify;
	size_t bs;
	unsigned busy;
	uint64_t ios, bytes, errors, mismatches;
	uint64_t max_lat_us, last_done_us, max_gap_us;
	int errs[8];
	unsigned nerrs;
} st = { .m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER };

static void slot_start(struct slot *s);

static void slot_done(struct mp_io *io)
{
	struct slot *s = io->priv;
	uint64_t t;
	bool go;

	pthread_mutex_lock(&st.m);
	t = now_us();   /* under the lock: completions are ordered */
	st.ios++;
	if (t - s->t0 > st.max_lat_us)
		st.max_lat_us = t - s->t0;
	if (st.last_done_us && t - st.last_done_us > st.max_gap_us)
		st.max_gap_us = t - st.last_done_us;
	st.last_done_us = t;
	if (io->result != (int)st.bs) {
		st.errors++;
		if (st.nerrs < 8)
			st.errs[st.nerrs++] = io->result;
	} else {
		st.bytes += st.bs;
		if (st.verify && s->reading && memcmp(s->buf, s->want, st.bs))
			st.mismatches++;
	}
	go = !st.stopping;
	if (!go && --st.busy == 0)
		pthread_cond_broadcast(&st.c);
	pthread_mutex_unlock(&st.m);
	if (!go)
		return;
	if (!st.verify) {
		s->reading = true;
	} else if (s->reading || io->result != (int)st.bs) {
		/* a failed write is followed by another write */
		s->reading = false;
		s->seq++;
	} else {
		s->reading = true;
	}
	slot_start(s);
}

static void slot_start(struct slot *s)
{
	int ret;

	if (s->reading) {
		s->iov = (struct iovec){ s->buf, st.bs };
		mp_io_prep_read(&s->io, &s->iov, 1, s->off);
	} else {
		fill(s->want, st.bs, s->off ^ (s->seq << 32));
		s->iov = (struct iovec){ s->want, st.bs };
		mp_io_prep_write(&s->io, &s->iov, 1, s->off, 0);
	}
	s->io.cb = slot_done;
	s->io.priv = s;
	s->t0 = now_us();
	ret = mp_io_submit(st.lun, &s->io);
	if (ret) {
		fprintf(stderr, "submit refused: %s\n", mp_strerror(ret));
		exit(1);
	}
}

/* One persistent reservation step; "pr error" and false when it fails. */
static bool pr_step(mp_lun *lun, enum mp_pr_action a, uint64_t key,
		    uint64_t sa_key, unsigned type, const char *what)
{
	struct mp_pr pr = { .action = a, .key = key, .sa_key = sa_key,
			    .type = (enum mp_pr_type)type };
	int ret = mp_lun_pr(lun, &pr);

	if (ret)
		printf("pr error: %s: %s\n", what, mp_strerror(ret));
	return ret == 0;
}

/* "pr LABEL: keys=N reserved=R key=K" from READ KEYS / RESERVATION. */
static bool pr_report(mp_lun *lun, uint64_t key, const char *label)
{
	struct mp_pr k = { .action = MP_PR_READ_KEYS };
	struct mp_pr r = { .action = MP_PR_READ_RESERVATION };
	unsigned ours = 0;
	int ret = mp_lun_pr(lun, &k);

	if (!ret)
		ret = mp_lun_pr(lun, &r);
	if (ret) {
		printf("pr error: read %s: %s\n", label, mp_strerror(ret));
		return false;
	}
	for (unsigned i = 0; i < k.nkeys; i++)
		ours += k.keys[i] == key;
	printf("pr %s: keys=%u ours=%u reserved=%d holder=0x%llx type=%d\n",
	       label, k.nkeys, ours, r.reserved,
	       (unsigned long long)r.holder_key, (int)r.holder_type);
	fflush(stdout);
	return true;
}

static void print_paths(mp_lun *lun, char *buf, size_t len)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status ls;
	int n = mp_lun_get_status(lun, &ls, ps, MP_MAX_PATHS);
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "",
				      mp_path_state_name(ps[i].state));
	if (o < len)
		snprintf(buf + o, len - o, " qd=%u", ls.queue_depth);
}

int main(int argc, char **argv)
{
	static struct slot slots[MAX_QD];
	struct mp_open_opts o = { .queue_depth = 64 };
	unsigned seconds, qd = 16, nadd = 0, prtype = MP_PR_WRITE_EXCLUSIVE_REGS_ONLY;
	uint64_t prkey = 0;
	const char *add[2];
	bool added = false;
	uint64_t t0, last = 0, v;
	char paths[256];
	int rc = 0, ret;

	if (argc < 3) {
		fprintf(stderr, "usage: mp_mpath_stream SPEC SECONDS [key=value...]\n");
		return 2;
	}
	seconds = (unsigned)atoi(argv[2]);
	st.bs = 65536;
	st.verify = true;
	for (int i = 3; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq)
			return 2;
		*eq++ = '\0';
		if (!strcmp(argv[i], "policy")) {
			o.policy = eq;
			continue;
		}
		if (!strcmp(argv[i], "add") && nadd < 2) {
			add[nadd++] = eq;
			continue;
		}
		if (!strcmp(argv[i], "mode")) {
			st.verify = strcmp(eq, "read") != 0;
			continue;
		}
		if (mp_parse_size(eq, &v))
			return 2;
		if (!strcmp(argv[i], "apd"))
			o.apd_timeout_ms = (unsigned)v;
		else if (!strcmp(argv[i], "check"))
			o.path_check_ms = (unsigned)v;
		else if (!strcmp(argv[i], "timeout"))
			o.timeout_ms = (unsigned)v;
		else if (!strcmp(argv[i], "nop") && v <= UINT32_MAX)
			o.nop_interval_ms = (unsigned)v;
		else if (!strcmp(argv[i], "noptimeout"))
			o.nop_timeout_ms = (unsigned)v;
		else if (!strcmp(argv[i], "qd") && v && v <= MAX_QD)
			qd = (unsigned)v;
		else if (!strcmp(argv[i], "depth"))
			o.queue_depth = (unsigned)v;
		else if (!strcmp(argv[i], "bs") && v >= 512 && v % 512 == 0)
			st.bs = (size_t)v;
		else if (!strcmp(argv[i], "adaptive"))
			o.flags |= v ? 0 : MP_OPEN_FIXED_QD;
		else if (!strcmp(argv[i], "qsample"))
			o.qfull_sample = (unsigned)v;
		else if (!strcmp(argv[i], "qthresh"))
			o.qfull_threshold = (unsigned)v;
		else if (!strcmp(argv[i], "pr") && v)
			prkey = v;
		else if (!strcmp(argv[i], "prtype") && v >= 1 && v <= 8)
			prtype = (unsigned)v;
		else
			return 2;
	}
	ret = mp_lun_open(argv[1], &o, &st.lun);
	if (ret) {
		printf("open failed: %s\n", mp_strerror(ret));
		return 4;
	}
	if (prkey && (!pr_step(st.lun, MP_PR_REGISTER_IGNORE, 0, prkey, 0,
			       "register") ||
		      !pr_step(st.lun, MP_PR_RESERVE, prkey, 0, prtype, "reserve") ||
		      !pr_report(st.lun, prkey, "reserved"))) {
		mp_lun_close(st.lun);
		return 5;
	}
	for (unsigned i = 0; i < qd; i++) {
		slots[i].buf = malloc(st.bs);
		slots[i].want = malloc(st.bs);
		if (!slots[i].buf || !slots[i].want)
			return 1;
		slots[i].off = (uint64_t)i * st.bs;
		slots[i].reading = !st.verify;
	}
	t0 = now_us();
	st.busy = qd;
	for (unsigned i = 0; i < qd; i++)
		slot_start(&slots[i]);
	while (now_us() - t0 < seconds * 1000000ull) {
		uint64_t ios, bytes, errors;

		usleep(100000);
		if (!added && now_us() - t0 >= 2000000) {
			added = true;
			for (unsigned k = 0; k < nadd; k++) {
				ret = mp_lun_path_add(st.lun, add[k]);
				if (ret >= 0)
					printf("path add: %d\n", ret);
				else
					printf("path add failed: %s\n", mp_strerror(ret));
				fflush(stdout);
			}
		}
		if (now_us() - last < 1000000)
			continue;
		pthread_mutex_lock(&st.m);
		ios = st.ios;
		bytes = st.bytes;
		errors = st.errors;
		pthread_mutex_unlock(&st.m);
		last = now_us();
		print_paths(st.lun, paths, sizeof(paths));
		printf("t=%.1fs ios=%" PRIu64 " MB/s=%.1f errors=%" PRIu64
		       " paths=%s\n", (double)(last - t0) / 1e6, ios,
		       (double)bytes / (double)(last - t0), errors, paths);
		fflush(stdout);
	}
	pthread_mutex_lock(&st.m);
	st.stopping = true;
	while (st.busy)
		pthread_cond_wait(&st.c, &st.m);
	pthread_mutex_unlock(&st.m);
	print_paths(st.lun, paths, sizeof(paths));
	printf("result ios=%" PRIu64 " errors=%" PRIu64 " mismatches=%" PRIu64
	       " mbps=%.1f max_latency_ms=%" PRIu64 " max_gap_ms=%" PRIu64
	       " paths=%s\n", st.ios, st.errors, st.mismatches,
	       (double)st.bytes / (double)(now_us() - t0),
	       st.max_lat_us / 1000, st.max_gap_us / 1000, paths);
	for (unsigned i = 0; i < st.nerrs; i++)
		printf("error %u: %d (%s)\n", i, st.errs[i],
		       mp_strerror(st.errs[i]));
	if (prkey && (!pr_report(st.lun, prkey, "held") ||
		      !pr_step(st.lun, MP_PR_RELEASE, prkey, 0, prtype, "release") ||
		      !pr_step(st.lun, MP_PR_REGISTER_IGNORE, 0, 0, 0,
			       "unregister") ||
		      !pr_report(st.lun, prkey, "released")))
		rc = 5;
	mp_lun_close(st.lun);
	if (st.mismatches)
		rc = 1;
	else if (st.errors)
		rc = 3;
	for (unsigned i = 0; i < qd; i++) {
		free(slots[i].buf);
		free(slots[i].want);
	}
	return rc;
}
