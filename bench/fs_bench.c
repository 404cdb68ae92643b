/*
 * fs_bench.c - file system benchmark drivers (bench/bench-fs.sh runs them
 * side by side with fio).
 *
 *   fs_bench prep --host H --file NAME --size BYTES LUN...
 *       create NAME in the root and write it in full (1 MiB writes of
 *       non-zero data), fsync: a preallocated, written file.
 *   fs_bench io --host H --file NAME --rw randread|randwrite|read|write
 *            --bs BYTES --jobs J --runtime S [--ramp S] [--json] LUN...
 *       J threads, each one synchronous fs_pread/fs_pwrite after another
 *       through the library (fio's psync with numjobs=J): random offsets
 *       uniform over the file, sequential ones in each job's own 1/J of the
 *       file (fio's offset_increment).  Counts what completes between the
 *       end of the ramp and the end of the runtime.
 *   fs_bench io ... --depth D
 *       D requests in flight with fs_aio_submit (fio's libaio with
 *       iodepth=D), each completion callback submitting the next: random
 *       offsets, or one sequential stream.
 *   --mem huge: the I/O buffers in reserved hugetlb pages (mp_alloc_io
 *       with MP_MEM_HUGETLB; fio's --iomem=shmhuge), one region for all
 *       of a job's requests as fio allocates them; default: ordinary
 *       pages (fio's malloc).  On a virtual disk every physically
 *       contiguous run of a buffer is one descriptor, so page memory
 *       makes 1 MiB results depend on where the kernel put the pages.
 *   fs_bench creates --dir DIR --seconds S | --count N [--json]
 *       create empty files DIR/fNNNNNNN with open(O_CREAT|O_EXCL) + close
 *       (POSIX: through a vmfsd mount), for S seconds or N files.
 *
 * JSON output has the fields of mp_bench (iops, mib_s, lat_mean_us,
 * usr_cpu, sys_cpu, errors, first_error) so bench/benchtool.py reads both.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"

#define MAX_JOBS 64

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(int who, bool user)
{
	struct rusage ru;

	getrusage(who, &ru);
	return user ? (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 :
		      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static struct {
	const char *host, *file, *rw, *dir;
	uint64_t size, bs;
	unsigned jobs, depth, runtime, ramp, count;
	bool json, huge;
	const char **luns;
	unsigned nluns;
} o = { .host = "fs-bench", .jobs = 1, .depth = 1, .runtime = 5, .bs = 4096 };

static fs_vol *vol;
static fs_file *file;
static uint64_t fsize;
static bool is_read, is_rand;
static volatile int phase;            /* 0 ramp, 1 measure, 2 stop */

struct job {
	pthread_t t;
	unsigned id;
	uint64_t ops, lat_ns, errors;
	int first_error;
	uint64_t rng;
};

static struct job jobs[MAX_JOBS];

static uint64_t next_rand(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* One region of n bytes for a job's buffers (see --mem); NULL on failure
 * (hugetlb: says how to reserve pages). */
static void *bufs_alloc(size_t n)
{
	void *p;

	if (!o.huge)
		return mp_alloc_aligned(4096, n);
	p = mp_alloc_io(n, MP_MEM_HUGETLB);
	if (!p)
		fprintf(stderr, "fs_bench: %zu MiB of hugetlb pages: %s "
			"(reserve them: sysctl vm.nr_hugepages=N)\n",
			((n + (2u << 20) - 1) >> 21) * 2, strerror(errno));
	return p;
}

static void bufs_free(void *p, size_t n)
{
	if (o.huge)
		mp_free_io(p, n);
	else
		free(p);
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	uint64_t blocks = fsize / o.bs, region = blocks / o.jobs;
	uint64_t first = region * j->id, pos = 0;
	void *buf = bufs_alloc(o.bs);

	if (!buf) {
		j->errors++;
		j->first_error = -ENOMEM;
		return NULL;
	}
	memset(buf, 0x5a + (int)j->id, o.bs);
	while (phase < 2) {
		uint64_t blk, t0, t1;
		ssize_t n;
		int p = phase;

		if (is_rand) {
			blk = next_rand(&j->rng) % blocks;
		} else {
			blk = first + pos;
			pos = pos + 1 < region ? pos + 1 : 0;
		}
		t0 = now_ns();
		n = is_read ? fs_pread(file, buf, o.bs, blk * o.bs) :
			      fs_pwrite(file, buf, o.bs, blk * o.bs);
		t1 = now_ns();
		if (n != (ssize_t)o.bs) {
			if (!j->errors++)
				j->first_error = n < 0 ? (int)n : -EIO;
			if (j->errors > 100)
				break;
			continue;
		}
		if (p == 1 && phase == 1) {
			j->ops++;
			j->lat_ns += t1 - t0;
		}
	}
	bufs_free(buf, o.bs);
	return NULL;
}

/* ---- o.depth requests in flight (fs_aio) ----
 *
 * As a program built on the library would keep a queue full: each
 * completion callback submits the slot's next request itself (one thread
 * wake-up per I/O: the device layer's reaper, as fio's own thread in
 * io_getevents), and hands the slot to the job's thread only for what a
 * callback may not do (fs_aio_submit refused it with -EWOULDBLOCK: a
 * pointer block not cached, the file busy with a metadata change, a
 * request for the synchronous path) or at the end.
 */

#define MAX_DEPTH 64

struct slot {
	struct fs_aio a;
	uint64_t t0, rng;
	uint64_t ops, lat_ns, errors;    /* this slot's, summed at the end */
	int first_error;
	unsigned id;
};

static pthread_mutex_t done_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_c = PTHREAD_COND_INITIALIZER;
static unsigned done_q[MAX_DEPTH], done_n;
static uint64_t seq_pos;              /* the sequential stream (atomic) */

static int issue(struct slot *s)
{
	uint64_t blocks = fsize / o.bs;
	uint64_t blk = is_rand ? next_rand(&s->rng) % blocks :
		       __atomic_fetch_add(&seq_pos, 1, __ATOMIC_RELAXED) % blocks;

	s->a.write = !is_read;
	s->a.len = o.bs;
	s->a.off = blk * o.bs;
	s->t0 = now_ns();
	return fs_aio_submit(file, &s->a);
}

static void slot_error(struct slot *s, int err)
{
	if (!s->errors++)
		s->first_error = err;
}

static void aio_cb(struct fs_aio *a)
{
	struct slot *s = a->priv;
	uint64_t t1 = now_ns();

	if (a->result != (ssize_t)o.bs)
		slot_error(s, a->result < 0 ? (int)a->result : -EIO);
	else if (phase == 1) {
		s->ops++;
		s->lat_ns += t1 - s->t0;
	}
	if (phase < 2 && s->errors <= 100 && issue(s) == 0)
		return;                  /* the next one is in flight */
	pthread_mutex_lock(&done_m);
	done_q[done_n++] = s->id;
	pthread_cond_signal(&done_c);
	pthread_mutex_unlock(&done_m);
}

static void *job_aio(void *arg)
{
	struct job *j = arg;
	struct slot *sl = calloc(o.depth, sizeof(*sl));
	unsigned char *bufs = bufs_alloc(o.bs * o.depth);
	unsigned inflight = 0;

	for (unsigned i = 0; sl && bufs && i < o.depth; i++) {
		sl[i].id = i;
		sl[i].rng = j->rng + 0x9e3779b97f4a7c15ull * (i + 1);
		sl[i].a.cb = aio_cb;
		sl[i].a.priv = &sl[i];
		sl[i].a.buf = bufs + i * o.bs;
		memset(sl[i].a.buf, 0x5a + (int)i, o.bs);
	}
	if (!sl || !bufs) {
		j->errors++;
		j->first_error = -ENOMEM;
		goto out;
	}
	/* every slot counts as in flight until its callback hands it back */
	for (unsigned i = 0; i < o.depth; i++) {
		int ret = issue(&sl[i]);

		if (ret)
			slot_error(&sl[i], ret);
		else
			inflight++;
	}
	while (inflight) {
		unsigned q[MAX_DEPTH], n;

		pthread_mutex_lock(&done_m);
		while (!done_n)
			pthread_cond_wait(&done_c, &done_m);
		n = done_n;
		memcpy(q, done_q, n * sizeof(q[0]));
		done_n = 0;
		pthread_mutex_unlock(&done_m);
		for (unsigned k = 0; k < n; k++) {
			struct slot *s = &sl[q[k]];
			int ret;

			inflight--;
			if (phase == 2 || s->errors > 100)
				continue;
			ret = issue(s);
			if (ret)
				slot_error(s, ret);
			else
				inflight++;
		}
	}
	for (unsigned i = 0; i < o.depth; i++) {
		j->ops += sl[i].ops;
		j->lat_ns += sl[i].lat_ns;
		if (sl[i].errors && !j->errors)
			j->first_error = sl[i].first_error;
		j->errors += sl[i].errors;
	}
out:
	if (bufs)
		bufs_free(bufs, o.bs * o.depth);
	free(sl);
	return NULL;
}

static int mount_vol(void)
{
	struct fs_mount_opts mo = { .host = o.host };
	int ret = fs_mount(o.luns, o.nluns, &mo, &vol);

	if (ret)
		fprintf(stderr, "fs_bench: mount: %s\n", fs_strerror(ret));
	return ret;
}

static int open_file(bool create)
{
	struct fs_create_args ca = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_stat st;
	int ret = fs_lookup(vol, fs_root(vol), o.file, &st);

	if (ret == -ENOENT && create)
		ret = fs_create(vol, fs_root(vol), o.file, &ca, &st);
	if (!ret)
		ret = fs_open(vol, st.ino, FS_O_RDWR, &file);
	if (ret)
		fprintf(stderr, "fs_bench: %s: %s\n", o.file, fs_strerror(ret));
	fsize = st.size;
	return ret;
}

static int do_prep(void)
{
	const uint64_t chunk = 1 << 20;
	unsigned char *buf;
	int ret;

	if (mount_vol())
		return 1;
	if (open_file(true)) {
		fs_umount(vol);
		return 1;
	}
	buf = mp_alloc_aligned(4096, chunk);
	ret = buf ? 0 : -ENOMEM;
	for (uint64_t off = 0; !ret && off < o.size; off += chunk) {
		ssize_t n;

		memset(buf, (int)(off >> 20) | 1, chunk);
		n = fs_pwrite(file, buf, chunk, off);
		if (n != (ssize_t)chunk)
			ret = n < 0 ? (int)n : -EIO;
	}
	if (!ret)
		ret = fs_fsync(file);
	if (ret)
		fprintf(stderr, "fs_bench: writing %s: %s\n", o.file, fs_strerror(ret));
	free(buf);
	fs_close(file);
	fs_umount(vol);
	return ret ? 1 : 0;
}

static int do_io(void)
{
	uint64_t ops = 0, lat = 0, errors = 0, t0, t1;
	double u0, s0, u1, s1, secs;
	int first = 0;

	if (!strcmp(o.rw, "randread") || !strcmp(o.rw, "read"))
		is_read = true;
	else if (strcmp(o.rw, "randwrite") && strcmp(o.rw, "write"))
		return fprintf(stderr, "fs_bench: --rw %s?\n", o.rw), 2;
	is_rand = !strncmp(o.rw, "rand", 4);
	if (mount_vol())
		return 1;
	if (open_file(false)) {
		fs_umount(vol);
		return 1;
	}
	if (fsize < o.bs * o.jobs) {
		fprintf(stderr, "fs_bench: %s is too small (%" PRIu64 " bytes): "
			"run prep first\n", o.file, fsize);
		fs_close(file);
		fs_umount(vol);
		return 1;
	}
	for (unsigned i = 0; i < o.jobs; i++) {
		jobs[i].id = i;
		jobs[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
		pthread_create(&jobs[i].t, NULL, o.depth > 1 ? job_aio : job_main,
			       &jobs[i]);
	}
	usleep(o.ramp * 1000000u);
	u0 = cpu_s(RUSAGE_SELF, true);
	s0 = cpu_s(RUSAGE_SELF, false);
	t0 = now_ns();
	phase = 1;
	usleep(o.runtime * 1000000u);
	phase = 2;
	t1 = now_ns();
	u1 = cpu_s(RUSAGE_SELF, true);
	s1 = cpu_s(RUSAGE_SELF, false);
	for (unsigned i = 0; i < o.jobs; i++) {
		pthread_join(jobs[i].t, NULL);
		ops += jobs[i].ops;
		lat += jobs[i].lat_ns;
		if (jobs[i].errors && !errors)
			first = jobs[i].first_error;
		errors += jobs[i].errors;
	}
	fs_close(file);
	fs_umount(vol);
	secs = (double)(t1 - t0) / 1e9;
	if (o.json)
		printf("{\"tool\":\"fs_bench\",\"rw\":\"%s\",\"bs\":%" PRIu64
		       ",\"jobs\":%u,\"depth\":%u,\"iops\":%.1f,\"mib_s\":%.2f,"
		       "\"lat_mean_us\":%.2f,\"usr_cpu\":%.1f,\"sys_cpu\":%.1f,"
		       "\"errors\":%" PRIu64 ",\"first_error\":\"%s\"}\n",
		       o.rw, o.bs, o.jobs, o.depth, ops / secs,
		       ops * (double)o.bs / secs / 1048576.0,
		       ops ? lat / 1e3 / ops : 0.0, (u1 - u0) / secs * 100,
		       (s1 - s0) / secs * 100, errors,
		       errors ? fs_strerror(first) : "");
	else
		printf("%s bs %" PRIu64 " jobs %u: %.0f IOPS, %.1f MiB/s, %.1f us, "
		       "%" PRIu64 " errors\n", o.rw, o.bs, o.jobs, ops / secs,
		       ops * (double)o.bs / secs / 1048576.0,
		       ops ? lat / 1e3 / ops : 0.0, errors);
	return errors ? 1 : 0;
}

static int do_creates(void)
{
	uint64_t n = 0, t0 = now_ns(), end = t0 + o.runtime * 1000000000ull, t1;
	char path[4096];

	if (mkdir(o.dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "fs_bench: mkdir %s: %s\n", o.dir, strerror(errno));
		return 1;
	}
	for (;;) {
		int fd;

		if (o.count ? n >= o.count : (n % 16 == 0 && now_ns() >= end))
			break;
		snprintf(path, sizeof(path), "%s/f%08" PRIu64, o.dir, n);
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
		if (fd < 0) {
			fprintf(stderr, "fs_bench: create %s: %s\n", path,
				strerror(errno));
			return 1;
		}
		close(fd);
		n++;
	}
	t1 = now_ns();
	if (o.json)
		printf("{\"tool\":\"fs_bench\",\"creates\":%" PRIu64
		       ",\"seconds\":%.3f,\"per_s\":%.1f}\n", n,
		       (double)(t1 - t0) / 1e9, n / ((double)(t1 - t0) / 1e9));
	else
		printf("%" PRIu64 " creates in %.2f s: %.0f/s\n", n,
		       (double)(t1 - t0) / 1e9, n / ((double)(t1 - t0) / 1e9));
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fs_bench prep --file NAME --size BYTES [--host H] LUN...\n"
		"       fs_bench io --file NAME --rw PATTERN --bs BYTES --jobs J "
		"[--depth D] --runtime S [--ramp S] [--mem page|huge] [--json] LUN...\n"
		"       fs_bench creates --dir DIR (--seconds S | --count N) [--json]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "file", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "rw", required_argument, NULL, 'r' },
		{ "bs", required_argument, NULL, 'b' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "depth", required_argument, NULL, 'D' },
		{ "runtime", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 't' },
		{ "ramp", required_argument, NULL, 'R' },
		{ "count", required_argument, NULL, 'c' },
		{ "dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'J' },
		{ "mem", required_argument, NULL, 'M' },
		{ 0 }
	};
	const char *mode;
	int c;

	if (argc < 2) {
		usage();
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'H': o.host = optarg; break;
		case 'f': o.file = optarg; break;
		case 's': case 'b': {
			uint64_t v;

			if (mp_parse_size(optarg, &v) || !v) {
				fprintf(stderr, "fs_bench: bad size %s\n", optarg);
				return 2;
			}
			if (c == 's')
				o.size = v;
			else
				o.bs = v;
			break;
		}
		case 'r': o.rw = optarg; break;
		case 'j': o.jobs = (unsigned)atoi(optarg); break;
		case 'D': o.depth = (unsigned)atoi(optarg); break;
		case 't': o.runtime = (unsigned)atoi(optarg); break;
		case 'R': o.ramp = (unsigned)atoi(optarg); break;
		case 'c': o.count = (unsigned)atoi(optarg); break;
		case 'd': o.dir = optarg; break;
		case 'J': o.json = true; break;
		case 'M':
			if (strcmp(optarg, "page") && strcmp(optarg, "huge"))
				return usage(), 2;
			o.huge = !strcmp(optarg, "huge");
			break;
		default: usage(); return 2;
		}
	}
	o.luns = (const char **)argv + optind;
	o.nluns = (unsigned)(argc - optind);
	if (!strcmp(mode, "creates")) {
		if (!o.dir || (!o.count && !o.runtime)) {
			usage();
			return 2;
		}
		return do_creates();
	}
	if (!o.file || !o.nluns || o.jobs < 1 || o.jobs > MAX_JOBS ||
	    o.depth < 1 || o.depth > MAX_DEPTH || (o.depth > 1 && o.jobs > 1)) {
		usage();
		return 2;
	}
	if (!strcmp(mode, "prep")) {
		if (!o.size)
			return usage(), 2;
		return do_prep();
	}
	if (!strcmp(mode, "io")) {
		if (!o.rw || !o.runtime)
			return usage(), 2;
		return do_io();
	}
	usage();
	return 2;
}
