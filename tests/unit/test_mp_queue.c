/*
 * test_mp_queue.c - the device queue: adaptive queue depth against a target
 * with K queue slots (fault qslots=K), and disk shares on a
 * bandwidth-limited device (fault bw=RATE).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "multipath/mp.h"
#include "tests/unit/testutil.h"

#define LUN_SIZE (16u << 20)
static char lunpath[256];

static int setup(void **state)
{
	(void)state;
	tu_make_file(lunpath, sizeof(lunpath), "mp_queue", LUN_SIZE);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(lunpath);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A closed-loop load: each completion resubmits until stop is set. */
struct load {
	mp_lun *lun;
	mp_share *share;           /* NULL: plain mp_io_submit */
	unsigned n;                /* I/Os kept in flight */
	size_t bs;
	struct mp_io *ios;
	struct iovec *iov;
	void *buf;
	pthread_mutex_t m;
	pthread_cond_t c;
	bool stop;
	unsigned live;
	uint64_t done, bytes, errors;
	int first_err;
};

static void load_cb(struct mp_io *io);

static void load_submit(struct load *l, struct mp_io *io, unsigned i)
{
	uint64_t off = (uint64_t)(i % 64) * l->bs;
	int ret;

	mp_io_prep_read(io, &l->iov[i], 1, off);
	io->cb = load_cb;
	io->priv = l;
	ret = l->share ? mp_io_submit_share(l->share, io) :
			 mp_io_submit(l->lun, io);
	assert_int_equal(ret, 0);
}

static void load_start(struct load *l, mp_lun *lun, mp_share *s, unsigned n,
		       size_t bs)
{
	memset(l, 0, sizeof(*l));
	l->lun = lun;
	l->share = s;
	l->n = n;
	l->bs = bs;
	l->ios = calloc(n, sizeof(*l->ios));
	l->iov = calloc(n, sizeof(*l->iov));
	l->buf = tu_alloc(n * bs);
	pthread_mutex_init(&l->m, NULL);
	pthread_cond_init(&l->c, NULL);
	l->live = n;
	for (unsigned i = 0; i < n; i++) {
		l->iov[i].iov_base = (char *)l->buf + i * bs;
		l->iov[i].iov_len = bs;
		load_submit(l, &l->ios[i], i);
	}
}

static void load_cb(struct mp_io *io)
{
	struct load *l = io->priv;
	unsigned i = (unsigned)(io - l->ios);
	bool stop;

	pthread_mutex_lock(&l->m);
	if (io->result == (int)l->bs) {
		l->done++;
		l->bytes += l->bs;
	} else {
		l->errors++;
		if (!l->first_err)
			l->first_err = io->result;
	}
	stop = l->stop;
	if (stop && --l->live == 0)
		pthread_cond_broadcast(&l->c);
	pthread_mutex_unlock(&l->m);
	if (!stop)
		load_submit(l, io, i);
}

static void load_stop(struct load *l)
{
	pthread_mutex_lock(&l->m);
	l->stop = true;
	while (l->live)
		pthread_cond_wait(&l->c, &l->m);
	pthread_mutex_unlock(&l->m);
	free(l->ios);
	free(l->iov);
	free(l->buf);
	pthread_cond_destroy(&l->c);
	pthread_mutex_destroy(&l->m);
}

static uint64_t load_bytes(struct load *l)
{
	uint64_t b;

	pthread_mutex_lock(&l->m);
	b = l->bytes;
	pthread_mutex_unlock(&l->m);
	return b;
}

static mp_lun *open_opts(const char *fault, unsigned flags, unsigned qd,
			 unsigned sample, unsigned threshold)
{
	struct mp_open_opts o = { .flags = flags, .queue_depth = qd,
				  .qfull_sample = sample,
				  .qfull_threshold = threshold };
	char spec[512];
	mp_lun *lun = NULL;
	int ret;

	snprintf(spec, sizeof(spec), "fault:%s:%s", fault, lunpath);
	ret = mp_lun_open(spec, &o, &lun);
	if (ret)
		fail_msg("open %s: %s", spec, mp_strerror(ret));
	return lun;
}

static int cmp_u(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/* With K = 8 target slots (each I/O takes 1 ms there) and 64 I/Os wanted
 * in flight, the adaptive depth (on by default) settles near K and no
 * QUEUE FULL reaches the caller. */
static void test_adaptive_converges(void **state)
{
	mp_lun *lun = open_opts("qslots=8;read,delay,ms=1", 0, 64, 0, 0);
	static unsigned samples[4096];
	unsigned ns = 0, inband = 0;
	struct mp_lun_status st;
	struct mp_path_status ps;
	struct load l;
	uint64_t sum = 0, n = 0, t0;
	unsigned lo = ~0u, hi = 0;

	(void)state;
	load_start(&l, lun, NULL, 64, 4096);
	usleep(500 * 1000);   /* converge */
	t0 = now_ms();
	while (now_ms() - t0 < 1500) {
		mp_lun_get_status(lun, &st, &ps, 1);
		sum += st.queue_depth;
		n++;
		if (ns < 4096)
			samples[ns++] = st.queue_depth;
		if (st.queue_depth < lo)
			lo = st.queue_depth;
		if (st.queue_depth > hi)
			hi = st.queue_depth;
		usleep(2000);
	}
	load_stop(&l);
	mp_lun_get_status(lun, &st, &ps, 1);
	qsort(samples, ns, sizeof(samples[0]), cmp_u);
	for (unsigned i = 0; i < ns; i++)
		inband += samples[i] >= 4 && samples[i] <= 16;
	print_message("adaptive depth with 8 slots: mean %.1f median %u min %u "
		      "max %u, %.0f%% of samples in 4..16, %llu QUEUE FULL, "
		      "%llu I/Os\n", (double)sum / (double)n, samples[ns / 2],
		      lo, hi, 100.0 * inband / ns,
		      (unsigned long long)st.qfull, (unsigned long long)l.done);
	assert_int_equal(l.errors, 0);
	assert_true(st.qfull > 0);
	assert_true(st.adaptive);
	assert_int_equal(st.max_queue_depth, 64);
	assert_true(samples[ns / 2] >= 5 && samples[ns / 2] <= 12);
	assert_true(inband >= ns * 9 / 10);
	mp_lun_close(lun);
}

/* QFullSampleSize and QFullThreshold are the caller's: with a sample
 * nobody reaches the depth never halves (QUEUE FULL is still requeued, not
 * failed); with a threshold nobody reaches it never grows back. */
static void test_adaptive_configured(void **state)
{
	mp_lun *lun = open_opts("qslots=8;read,delay,ms=1", 0, 64,
				1000000000u, 0);
	struct mp_lun_status st;
	struct mp_path_status ps;
	struct load l;
	unsigned low;

	(void)state;
	load_start(&l, lun, NULL, 64, 4096);
	usleep(300 * 1000);
	load_stop(&l);
	mp_lun_get_status(lun, &st, &ps, 1);
	print_message("sample 10^9: depth %u, %llu QUEUE FULL, %llu errors\n",
		      st.queue_depth, (unsigned long long)st.qfull,
		      (unsigned long long)l.errors);
	assert_int_equal(l.errors, 0);
	assert_true(st.qfull > 0);
	assert_int_equal(st.queue_depth, 64);
	mp_lun_close(lun);

	lun = open_opts("qslots=8;read,delay,ms=1", 0, 64, 8, 1000000000u);
	load_start(&l, lun, NULL, 64, 4096);
	usleep(300 * 1000);
	mp_lun_get_status(lun, &st, &ps, 1);
	low = st.queue_depth;
	for (int i = 0; i < 100; i++) {
		usleep(3000);
		mp_lun_get_status(lun, &st, &ps, 1);
		assert_true(st.queue_depth <= low);
		low = st.queue_depth;
	}
	load_stop(&l);
	print_message("threshold 10^9: depth %u (never grew back)\n", low);
	assert_int_equal(l.errors, 0);
	assert_true(low <= 8);
	mp_lun_close(lun);
}

/* With MP_OPEN_FIXED_QD QUEUE FULL surfaces and the depth stays. */
static void test_fixed_depth_surfaces(void **state)
{
	mp_lun *lun = open_opts("qslots=8", MP_OPEN_FIXED_QD, 64, 0, 0);
	struct mp_lun_status st;
	struct mp_path_status ps;
	struct load l;

	(void)state;
	load_start(&l, lun, NULL, 64, 4096);
	usleep(200 * 1000);
	load_stop(&l);
	mp_lun_get_status(lun, &st, &ps, 1);
	assert_true(l.errors > 0);
	assert_int_equal(l.first_err, -MP_E_QFULL);
	assert_int_equal(st.queue_depth, 64);
	mp_lun_close(lun);
}

struct qfull_writer {
	mp_lun *lun;
	void *buf;
	int ret;
};

static void *qfull_write(void *arg)
{
	struct qfull_writer *w = arg;

	__atomic_store_n(&w->ret, (int)mp_lun_pwrite(w->lun, w->buf, 4096,
						     8192, 0), __ATOMIC_RELEASE);
	return NULL;
}

/* A write the target keeps answering QUEUE FULL is retried (adaptive
 * depth, up to 30 s); fenced meanwhile, it fails instead of going out
 * when the target takes it: other hosts may own the blocks by then. */
static void test_qfull_retry_fenced(void **state)
{
	mp_lun *lun = open_opts("", 0, 64, 0, 0);
	struct mp_fault_rule q = { .op = MP_OP_WRITE, .action = MP_FAULT_QFULL };
	unsigned char *b = tu_alloc(4096), *z = tu_alloc(4096), *r = tu_alloc(4096);
	struct qfull_writer w = { .lun = lun, .buf = b, .ret = 1 };
	pthread_t t;

	(void)state;
	memset(z, 0, 4096);
	assert_int_equal(mp_lun_pwrite(lun, z, 4096, 8192, 0), 4096);
	memset(b, 0xc3, 4096);
	assert_true(mp_fault_add(lun, &q) >= 0);
	assert_int_equal(pthread_create(&t, NULL, qfull_write, &w), 0);
	usleep(200 * 1000);
	assert_int_equal(__atomic_load_n(&w.ret, __ATOMIC_ACQUIRE), 1);
	mp_lun_fence(lun, true);
	assert_int_equal(mp_fault_clear(lun), 0);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, -MP_E_FENCED);
	mp_lun_fence(lun, false);
	assert_int_equal(mp_lun_pread(lun, r, 4096, 8192), 4096);
	assert_memory_equal(z, r, 4096);
	free(b);
	free(z);
	free(r);
	mp_lun_close(lun);
}

/* 1000 / 2000 / 1000 shares on an 8 MB/s device: 2 : 4 : 2 MB/s. */
static void test_shares_proportional(void **state)
{
	mp_lun *lun = open_opts("bw=8m", 0, 8, 0, 0);
	unsigned want[3] = { MP_SHARES_NORMAL, MP_SHARES_HIGH,
			     MP_SHARES_NORMAL };
	struct load l[3];
	mp_share *s[3];
	uint64_t b0[3], b1[3], t0, t1;
	double r01, r21, total;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(mp_share_create(lun, want[i], &s[i]), 0);
	for (int i = 0; i < 3; i++)
		load_start(&l[i], lun, s[i], 16, 64 << 10);
	usleep(500 * 1000);
	t0 = now_ms();
	for (int i = 0; i < 3; i++)
		b0[i] = load_bytes(&l[i]);
	usleep(3000 * 1000);
	t1 = now_ms();
	for (int i = 0; i < 3; i++)
		b1[i] = load_bytes(&l[i]);
	assert_int_equal(mp_share_destroy(s[0]), -EBUSY);
	for (int i = 0; i < 3; i++)
		load_stop(&l[i]);
	total = (double)(b1[0] - b0[0] + b1[1] - b0[1] + b1[2] - b0[2]) /
		(double)(t1 - t0) * 1000.0;
	r01 = (double)(b1[1] - b0[1]) / (double)(b1[0] - b0[0]);
	r21 = (double)(b1[2] - b0[2]) / (double)(b1[0] - b0[0]);
	print_message("shares 1000/2000/1000: %.2f / %.2f / %.2f MB/s "
		      "(total %.2f MB/s); high/normal %.3f, normal/normal %.3f\n",
		      (double)(b1[0] - b0[0]) / (double)(t1 - t0) / 1000.0,
		      (double)(b1[1] - b0[1]) / (double)(t1 - t0) / 1000.0,
		      (double)(b1[2] - b0[2]) / (double)(t1 - t0) / 1000.0,
		      total / 1e6, r01, r21);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(l[i].errors, 0);
		assert_int_equal(mp_share_destroy(s[i]), 0);
	}
	assert_true(r01 >= 1.8 && r01 <= 2.2);
	assert_true(r21 >= 0.9 && r21 <= 1.1);
	/* the device stayed saturated: nothing was lost to the scheduler */
	assert_true(total >= 0.9 * 8 * 1048576);
	mp_lun_close(lun);
}

/* Alone, a low-shares opener gets the whole device. */
static void test_shares_unsaturated(void **state)
{
	mp_lun *lun = open_opts("bw=8m", 0, 8, 0, 0);
	struct load lo, dflt;
	mp_share *s;
	uint64_t b0, b1, t0, t1, d0;

	(void)state;
	assert_int_equal(mp_share_create(lun, 199, &s), -EINVAL);
	assert_int_equal(mp_share_create(lun, 4001, &s), -EINVAL);
	assert_int_equal(mp_share_create(lun, MP_SHARES_LOW, &s), 0);
	load_start(&lo, lun, s, 16, 64 << 10);
	usleep(300 * 1000);
	t0 = now_ms();
	b0 = load_bytes(&lo);
	usleep(2000 * 1000);
	t1 = now_ms();
	b1 = load_bytes(&lo);
	print_message("low shares alone: %.2f MB/s of 8\n",
		      (double)(b1 - b0) / (double)(t1 - t0) / 1048.576);
	assert_true((double)(b1 - b0) / (double)(t1 - t0) * 1000.0 >=
		    0.9 * 8 * 1048576);
	/* plus the default opener (normal shares, no handle): 1 : 2 */
	load_start(&dflt, lun, NULL, 16, 64 << 10);
	usleep(300 * 1000);
	b0 = load_bytes(&lo);
	d0 = load_bytes(&dflt);
	usleep(2000 * 1000);
	b1 = load_bytes(&lo) - b0;
	d0 = load_bytes(&dflt) - d0;
	load_stop(&dflt);
	load_stop(&lo);
	print_message("low vs default: %.3f\n", (double)d0 / (double)b1);
	assert_true((double)d0 / (double)b1 >= 1.8 &&
		    (double)d0 / (double)b1 <= 2.2);
	assert_int_equal(mp_share_set(s, 100), -EINVAL);
	assert_int_equal(mp_share_destroy(s), 0);
	mp_lun_close(lun);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_adaptive_converges),
		cmocka_unit_test(test_adaptive_configured),
		cmocka_unit_test(test_fixed_depth_surfaces),
		cmocka_unit_test(test_qfull_retry_fenced),
		cmocka_unit_test(test_shares_proportional),
		cmocka_unit_test(test_shares_unsaturated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
