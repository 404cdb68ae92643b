/*
 * mp_bench.c - device-layer benchmark, the counterpart of one fio job.
 *
 *   mp_bench --spec SPEC --rw randread|randwrite|read|write --bs 4k|1m
 *            --iodepth N --runtime SECONDS [--ramp SECONDS] [--size BYTES]
 *            [--engine uring|aio] [--mem page|huge] [--json]
 *
 * It drives a LUN through the public asynchronous API exactly as a VM's
 * virtqueue would: iodepth requests, each with its own page-aligned buffer,
 * and every completion callback submits that slot's next request.  So the
 * number measured is the whole device layer (validation, queue slot,
 * statistics, engine, reaper thread, callback delivery), not the kernel
 * alone.  Comparing it with fio on the same file, engine and pattern shows
 * what the layer costs.
 *
 * Offsets follow fio's defaults: random offsets are uniform over the
 * bs-aligned blocks of [0, size) (fio draws without replacement inside a
 * pass, which for a 2 GiB file and a few seconds of 4 KiB I/O is the same
 * distribution); sequential offsets go up by bs and wrap at size.
 *
 * Throughput is reported in MiB/s (2^20 bytes per second), like fio's
 * "bw_bytes / 1048576".  Latency is the mean from just before mp_io_submit
 * to the start of the completion callback (fio's "lat", i.e. slat + clat).
 * Only I/O completed between the end of the ramp and the end of the
 * runtime is counted, as fio's ramp_time does.
 *
 * Exit status: 0 when every I/O succeeded, 1 when any failed (the count and
 * the first error are printed), 2 for usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "multipath/mp.h"

#define MAX_IODEPTH 4096
#define PAGE 4096
#define HUGE_PAGE (2u << 20)

enum pattern { PAT_RANDREAD, PAT_RANDWRITE, PAT_READ, PAT_WRITE };

static const char *const pattern_names[] = {
	[PAT_RANDREAD] = "randread",
	[PAT_RANDWRITE] = "randwrite",
	[PAT_READ] = "read",
	[PAT_WRITE] = "write",
};

struct bench_opts {
	const char *spec;
	const char *engine;      /* NULL = whatever the spec selects */
	enum pattern pat;
	uint64_t bs;
	unsigned iodepth;
	double runtime;          /* seconds measured */
	double ramp;             /* seconds run before measuring */
	uint64_t size;           /* 0 = the LUN's capacity */
	bool huge;               /* buffers in hugetlb pages */
	bool json;
};

struct bench;

/*
 * One request slot.  A slot is owned by whichever thread completes its I/O,
 * one at a time, so its counters are written without locks; the main thread
 * reads them with relaxed atomic loads (a slightly stale sum only moves an
 * I/O across the window edge).
 */
struct slot {
	struct mp_io io;
	struct iovec iov;
	struct bench *b;
	uint64_t rng;            /* xorshift64* state, per slot: no sharing */
	uint64_t t_submit;       /* ns */
	uint64_t ios;            /* completed successfully */
	uint64_t lat_ns;         /* sum over ios */
	uint64_t errors;
} __attribute__((aligned(64)));  /* own cache line: no false sharing */

struct bench {
	const struct bench_opts *o;
	mp_lun *lun;
	uint64_t nblocks;        /* size / bs */
	uint64_t seq_next;       /* next sequential block, atomic */
	bool stop;               /* atomic: callbacks stop resubmitting */
	int first_error;         /* atomic: first failure seen */

	pthread_mutex_t lock;    /* protects active, signals idle */
	pthread_cond_t idle;
	unsigned active;         /* slots with an I/O in flight */

	struct slot *slots;
	unsigned char *buf;      /* iodepth * bs, slot i at i * bs */
	size_t buf_len;          /* the length asked for */
};

struct snapshot {
	uint64_t ns, ios, lat_ns, errors;
	double cpu_user, cpu_sys;   /* seconds, whole process */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift64s(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n) without a division: the high half of r * n. */
static uint64_t below(uint64_t r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

static uint64_t next_offset(struct slot *s)
{
	struct bench *b = s->b;
	uint64_t blk;

	switch (b->o->pat) {
	case PAT_RANDREAD:
	case PAT_RANDWRITE:
		blk = below(xorshift64s(&s->rng), b->nblocks);
		break;
	default:
		blk = __atomic_fetch_add(&b->seq_next, 1, __ATOMIC_RELAXED) %
		      b->nblocks;
		break;
	}
	return blk * b->o->bs;
}

static void slot_retire(struct bench *b)
{
	pthread_mutex_lock(&b->lock);
	if (--b->active == 0)
		pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->lock);
}

static void record_error(struct bench *b, int err)
{
	int zero = 0;

	__atomic_compare_exchange_n(&b->first_error, &zero, err, false,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static void io_done(struct mp_io *io);

/*
 * Start the slot's next I/O.  Runs on the main thread for the first round
 * and on the device layer's completion thread afterwards, so it must not
 * block: mp_io_submit() only queues.  On refusal the slot retires.
 */
static void slot_start(struct slot *s)
{
	struct bench *b = s->b;
	uint64_t off = next_offset(s);
	int ret;

	if (b->o->pat == PAT_RANDREAD || b->o->pat == PAT_READ)
		mp_io_prep_read(&s->io, &s->iov, 1, off);
	else
		mp_io_prep_write(&s->io, &s->iov, 1, off, 0);
	s->io.cb = io_done;
	s->io.priv = s;
	s->t_submit = now_ns();
	ret = mp_io_submit(b->lun, &s->io);
	if (ret) {
		__atomic_store_n(&s->errors, s->errors + 1, __ATOMIC_RELAXED);
		record_error(b, ret);
		slot_retire(b);
	}
}

static void io_done(struct mp_io *io)
{
	struct slot *s = io->priv;
	struct bench *b = s->b;
	uint64_t lat = now_ns() - s->t_submit;

	if (io->result == (int)b->o->bs) {
		__atomic_store_n(&s->ios, s->ios + 1, __ATOMIC_RELAXED);
		__atomic_store_n(&s->lat_ns, s->lat_ns + lat, __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(&s->errors, s->errors + 1, __ATOMIC_RELAXED);
		record_error(b, io->result < 0 ? io->result : -EIO);
	}
	if (__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE))
		slot_retire(b);
	else
		slot_start(s);
}

static void take_snapshot(struct bench *b, struct snapshot *sn)
{
	struct rusage ru;

	memset(sn, 0, sizeof(*sn));
	sn->ns = now_ns();
	for (unsigned i = 0; i < b->o->iodepth; i++) {
		struct slot *s = &b->slots[i];

		sn->ios += __atomic_load_n(&s->ios, __ATOMIC_RELAXED);
		sn->lat_ns += __atomic_load_n(&s->lat_ns, __ATOMIC_RELAXED);
		sn->errors += __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
	}
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		sn->cpu_user = (double)ru.ru_utime.tv_sec +
			       (double)ru.ru_utime.tv_usec / 1e6;
		sn->cpu_sys = (double)ru.ru_stime.tv_sec +
			      (double)ru.ru_stime.tv_usec / 1e6;
	}
}

/* Sleep for secs, returning early when every slot has retired (errors). */
static void run_for(struct bench *b, double secs)
{
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);

	for (;;) {
		uint64_t t = now_ns(), step;
		struct timespec ts;
		unsigned active;

		if (t >= end)
			break;
		pthread_mutex_lock(&b->lock);
		active = b->active;
		pthread_mutex_unlock(&b->lock);
		if (!active)
			break;
		/* 100 ms steps: the poll itself must not steal the CPU the
		 * completion thread needs on a 2-core machine. */
		step = end - t < 100000000ull ? end - t : 100000000ull;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)step;
		nanosleep(&ts, NULL);
	}
}

/*
 * The I/O buffers, allocated the way fio allocates them: one block of
 * iodepth * bs, page-aligned, slot i at i * bs; filled with random data for
 * writes and left untouched for reads (the first read faults them in).
 *
 * Why it matters: on a virtual disk each physically contiguous run of a
 * buffer is one descriptor, and a host that handles descriptors one by one
 * moves a 1 MiB request in 256 pieces or in one.  Page memory is therefore a
 * lottery for large sequential I/O (the same lottery for both tools when the
 * allocation is the same); --mem huge takes hugetlb pages (fio: --mem=shmhuge)
 * so every 1 MiB buffer is one contiguous piece.
 */
static int bufs_alloc(struct bench *b)
{
	const struct bench_opts *o = b->o;
	size_t len = (size_t)o->bs * o->iodepth;

	if (o->huge) {
		b->buf = mp_alloc_io(len, MP_MEM_HUGETLB);
		if (!b->buf) {
			int err = -errno;

			fprintf(stderr, "mp_bench: %zu MiB of hugetlb pages: %s "
				"(reserve them: sysctl vm.nr_hugepages=N)\n",
				(len + HUGE_PAGE - 1) / HUGE_PAGE * 2, strerror(errno));
			return err;
		}
	} else {
		int ret = -posix_memalign((void **)&b->buf, PAGE, len);

		if (ret)
			return ret;
	}
	b->buf_len = len;
	if (o->pat == PAT_RANDWRITE || o->pat == PAT_WRITE) {
		uint64_t rng = 0x9E3779B97F4A7C15ull ^ now_ns();

		/* Incompressible data, as fio writes by default. */
		for (size_t k = 0; k + 8 <= len; k += 8) {
			uint64_t r = xorshift64s(&rng);

			memcpy(b->buf + k, &r, 8);
		}
	}
	return 0;
}

static void bufs_free(struct bench *b)
{
	if (b->o->huge)
		mp_free_io(b->buf, b->buf_len);
	else
		free(b->buf);
}

/* s as a JSON string literal (specs are paths: quote what a path may hold). */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_result(const struct bench *b, const struct mp_lun_info *in,
			 const struct snapshot *a, const struct snapshot *z,
			 uint64_t total_errors)
{
	const struct bench_opts *o = b->o;
	double secs = (double)(z->ns - a->ns) / 1e9;
	uint64_t ios = z->ios - a->ios;
	double iops = secs > 0 ? (double)ios / secs : 0;
	double mibs = iops * (double)o->bs / 1048576.0;
	double lat_us = ios ? (double)(z->lat_ns - a->lat_ns) / (double)ios / 1e3 : 0;
	double usr = secs > 0 ? 100.0 * (z->cpu_user - a->cpu_user) / secs : 0;
	double sys = secs > 0 ? 100.0 * (z->cpu_sys - a->cpu_sys) / secs : 0;
	int err = __atomic_load_n(&b->first_error, __ATOMIC_RELAXED);

	if (o->json) {
		printf("{\"tool\":\"mp_bench\",\"spec\":");
		json_str(o->spec);
		printf(",\"backend\":\"%s\","
		       "\"rw\":\"%s\",\"bs\":%" PRIu64 ",\"iodepth\":%u,"
		       "\"size\":%" PRIu64 ",\"runtime_s\":%.3f,\"ios\":%" PRIu64
		       ",\"iops\":%.1f,\"mib_s\":%.2f,\"lat_mean_us\":%.2f,"
		       "\"usr_cpu\":%.1f,\"sys_cpu\":%.1f,\"errors\":%" PRIu64
		       ",\"first_error\":",
		       in->backend, pattern_names[o->pat], o->bs,
		       o->iodepth, b->nblocks * o->bs, secs, ios, iops, mibs,
		       lat_us, usr, sys, total_errors);
		json_str(err ? mp_strerror(err) : "");
		printf("}\n");
		return;
	}
	printf("mp_bench: %s %s bs=%" PRIu64 " iodepth=%u size=%" PRIu64
	       " backend=%s\n", o->spec, pattern_names[o->pat], o->bs,
	       o->iodepth, b->nblocks * o->bs, in->backend);
	printf("  %.3f s: %" PRIu64 " I/Os, %.0f IOPS, %.1f MiB/s, "
	       "mean latency %.1f us, cpu usr %.0f%% sys %.0f%%\n",
	       secs, ios, iops, mibs, lat_us, usr, sys);
	if (total_errors)
		printf("  %" PRIu64 " I/O errors, first: %s\n", total_errors,
		       mp_strerror(err));
}

static int run(const struct bench_opts *o, const char *spec)
{
	struct mp_open_opts oo = { .queue_depth = o->iodepth };
	struct snapshot a, z, end;
	struct mp_lun_info in;
	struct bench b;
	int ret;

	memset(&b, 0, sizeof(b));
	b.o = o;
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.idle, NULL);

	ret = mp_lun_open(spec, &oo, &b.lun);
	if (ret) {
		fprintf(stderr, "mp_bench: %s: %s\n", spec, mp_strerror(ret));
		goto destroy_sync;
	}
	mp_lun_get_info(b.lun, &in);
	if (o->bs % in.logical_sector) {
		fprintf(stderr, "mp_bench: bs %" PRIu64 " is not a multiple of "
			"the %u-byte sector\n", o->bs, in.logical_sector);
		ret = -EINVAL;
		goto close_lun;
	}
	b.nblocks = (o->size && o->size < in.capacity ? o->size : in.capacity) /
		    o->bs;
	if (b.nblocks == 0) {
		fprintf(stderr, "mp_bench: LUN smaller than one block\n");
		ret = -EINVAL;
		goto close_lun;
	}

	b.slots = aligned_alloc(64, sizeof(*b.slots) * o->iodepth);
	if (!b.slots) {
		ret = -ENOMEM;
		goto close_lun;
	}
	memset(b.slots, 0, sizeof(*b.slots) * o->iodepth);
	ret = bufs_alloc(&b);
	if (ret)
		goto free_slots;
	for (unsigned i = 0; i < o->iodepth; i++) {
		struct slot *s = &b.slots[i];

		s->rng = 0x9E3779B97F4A7C15ull * (i + 1) ^ now_ns();
		s->iov.iov_base = b.buf + (size_t)i * o->bs;
		s->iov.iov_len = o->bs;
		s->b = &b;
	}

	b.active = o->iodepth;
	for (unsigned i = 0; i < o->iodepth; i++)
		slot_start(&b.slots[i]);

	if (o->ramp > 0)
		run_for(&b, o->ramp);
	take_snapshot(&b, &a);
	run_for(&b, o->runtime);
	take_snapshot(&b, &z);

	/* Stop resubmitting and wait until every slot's last callback has
	 * seen the flag: only then may the LUN close (mp_lun_close() would
	 * race with a callback resubmitting after the queue drained). */
	__atomic_store_n(&b.stop, true, __ATOMIC_RELEASE);
	pthread_mutex_lock(&b.lock);
	while (b.active)
		pthread_cond_wait(&b.idle, &b.lock);
	pthread_mutex_unlock(&b.lock);
	take_snapshot(&b, &end);

	print_result(&b, &in, &a, &z, end.errors);
	ret = end.errors ? -EIO : 0;

	bufs_free(&b);
free_slots:
	free(b.slots);
close_lun:
	mp_lun_close(b.lun);
destroy_sync:
	pthread_cond_destroy(&b.idle);
	pthread_mutex_destroy(&b.lock);
	return ret;
}

/* "4k", "1m", "2g", "4096": bytes, or 0 when malformed. */
static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;

	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end == 'i' && shift)
		end++;
	if ((*end == 'b' || *end == 'B') && shift)
		end++;
	if (*end || end == s || v == 0 || v > (UINT64_MAX >> shift))
		return 0;
	return (uint64_t)v << shift;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: mp_bench --spec SPEC --rw randread|randwrite|read|write --bs SIZE\n"
"                --iodepth N --runtime SECONDS [--ramp SECONDS]\n"
"                [--size BYTES] [--engine uring|aio] [--mem page|huge] [--json]\n"
"  SPEC     LUN spec string (see multipath/mp.h), e.g. /var/tmp/f?engine=aio\n"
"  --bs     block size, e.g. 4k or 1m (a multiple of the logical sector)\n"
"  --size   use only the first BYTES of the LUN (default: all of it)\n"
"  --engine for file and block-device specs: append engine=uring|aio\n"
"           (io_uring and libaio are accepted as well)\n"
"  --mem    I/O buffers in page memory (default) or hugetlb pages\n"
"  --json   print one JSON object instead of text\n"
"Prints IOPS, MiB/s (2^20 bytes) and mean latency; exits 1 if any I/O failed.\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "spec", required_argument, NULL, 's' },
		{ "rw", required_argument, NULL, 'r' },
		{ "bs", required_argument, NULL, 'b' },
		{ "iodepth", required_argument, NULL, 'q' },
		{ "runtime", required_argument, NULL, 't' },
		{ "ramp", required_argument, NULL, 'R' },
		{ "size", required_argument, NULL, 'S' },
		{ "engine", required_argument, NULL, 'e' },
		{ "mem", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_opts o = {
		.pat = PAT_RANDREAD, .bs = 4096, .iodepth = 32, .runtime = 5,
	};
	char *spec = NULL;
	bool have_rw = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "s:r:b:q:t:R:S:e:m:jh", lopts,
				NULL)) != -1) {
		char *end;

		switch (c) {
		case 's':
			o.spec = optarg;
			break;
		case 'r':
			have_rw = false;
			for (int p = PAT_RANDREAD; p <= PAT_WRITE; p++) {
				if (!strcmp(optarg, pattern_names[p])) {
					o.pat = (enum pattern)p;
					have_rw = true;
				}
			}
			if (!have_rw)
				goto bad_usage;
			break;
		case 'b':
			o.bs = parse_size(optarg);
			if (!o.bs || o.bs > (1u << 30))
				goto bad_usage;
			break;
		case 'q': {
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || v == 0 || v > MAX_IODEPTH)
				goto bad_usage;
			o.iodepth = (unsigned)v;
			break;
		}
		case 't':
			o.runtime = strtod(optarg, &end);
			if (*end || !(o.runtime > 0))
				goto bad_usage;
			break;
		case 'R':
			o.ramp = strtod(optarg, &end);
			if (*end || o.ramp < 0)
				goto bad_usage;
			break;
		case 'S':
			o.size = parse_size(optarg);
			if (!o.size)
				goto bad_usage;
			break;
		case 'e':
			/* fio's engine names are accepted too */
			if (!strcmp(optarg, "uring") || !strcmp(optarg, "io_uring"))
				o.engine = "uring";
			else if (!strcmp(optarg, "aio") || !strcmp(optarg, "libaio"))
				o.engine = "aio";
			else
				goto bad_usage;
			break;
		case 'm':
			if (!strcmp(optarg, "huge"))
				o.huge = true;
			else if (strcmp(optarg, "page"))
				goto bad_usage;
			break;
		case 'j':
			o.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad_usage;
		}
	}
	if (optind != argc || !o.spec || !have_rw)
		goto bad_usage;

	if (o.engine) {
		/* The engine is an option of local specs (be_local.c); an
		 * iSCSI LUN has no such choice. */
		if (strstr(o.spec, "iscsi://")) {
			fprintf(stderr, "mp_bench: --engine applies to file and "
				"block-device specs only\n");
			return 2;
		}
		if (asprintf(&spec, "%s%cengine=%s", o.spec,
			     strchr(o.spec, '?') ? '&' : '?', o.engine) < 0) {
			perror("mp_bench");
			return 1;
		}
		o.spec = spec;
	}
	ret = run(&o, o.spec);
	free(spec);
	return ret ? 1 : 0;

bad_usage:
	usage(stderr);
	return 2;
}
