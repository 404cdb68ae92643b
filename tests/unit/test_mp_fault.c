/*
 * test_mp_fault.c - the fault-injection backend: every action, the volatile
 * write cache and power cuts, observed through the public API and through a
 * second, clean handle on the same file.
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

#define LUN_SIZE (8u << 20)
static char lunpath[256];

static mp_lun *open_spec(const char *opts)
{
	/* Fixed depth: these tests see what the fault layer reports, also
	 * BUSY and QUEUE FULL, which adaptive depth would requeue. */
	struct mp_open_opts o = { .flags = MP_OPEN_FIXED_QD };
	char spec[512];
	mp_lun *lun = NULL;
	int ret;

	snprintf(spec, sizeof(spec), "fault:%s:%s", opts, lunpath);
	ret = mp_lun_open(spec, &o, &lun);
	if (ret)
		fail_msg("open %s: %s", spec, mp_strerror(ret));
	return lun;
}

static mp_lun *open_clean(void)
{
	mp_lun *lun = NULL;

	assert_int_equal(mp_lun_open(lunpath, NULL, &lun), 0);
	return lun;
}

static int setup(void **state)
{
	(void)state;
	tu_make_file(lunpath, sizeof(lunpath), "mp_fault", LUN_SIZE);
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

static void test_spec_errors(void **state)
{
	const char *bad[] = {
		"fault:", "fault:wcache", "fault:bogus:/x", "fault:write:/x",
		"fault:write,explode:/x", "fault:write,fail,prob=2:/x",
		"fault:read,delay,ms=abc:/x", "fault:qslots=0:/x",
		"fault:write,fail,err=ENOTANERR:/x",
	};
	mp_lun *lun = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mp_lun_open(bad[i], NULL, &lun), -MP_E_SPEC);
	assert_null(lun);
}

static void test_passthrough(void **state)
{
	unsigned char *b = tu_alloc(65536), *r = tu_alloc(65536);
	struct mp_lun_info in;
	mp_lun *lun = open_spec("");

	(void)state;
	mp_lun_get_info(lun, &in);
	assert_true(in.caps & MP_CAP_FAULT);
	assert_int_equal(in.capacity, LUN_SIZE);
	tu_fill(b, 65536, 1);
	assert_int_equal(mp_lun_pwrite(lun, b, 65536, 0, 0), 65536);
	assert_int_equal(mp_lun_pread(lun, r, 65536, 0), 65536);
	assert_memory_equal(b, r, 65536);
	assert_int_equal(mp_lun_flush(lun), 0);
	mp_lun_close(lun);
	free(b);
	free(r);
}

static void test_fail_rules(void **state)
{
	unsigned char *b = tu_alloc(4096);
	struct mp_fault_stats fs;
	mp_lun *lun = open_spec("read,fail,off=8192,len=512,after=1,count=2;"
				"write,fail,err=ENOSPC;flush,fail,err=MEDIUM");

	(void)state;
	/* after=1: the first overlapping read passes */
	assert_int_equal(mp_lun_pread(lun, b, 4096, 8192), 4096);
	assert_int_equal(mp_lun_pread(lun, b, 4096, 8192), -EIO);
	assert_int_equal(mp_lun_pread(lun, b, 4096, 4096 + 4096), -EIO);
	/* count=2 used up */
	assert_int_equal(mp_lun_pread(lun, b, 4096, 8192), 4096);
	/* not overlapping */
	assert_int_equal(mp_lun_pread(lun, b, 4096, 0), 4096);
	assert_int_equal(mp_lun_pwrite(lun, b, 4096, 0, 0), -ENOSPC);
	assert_int_equal(mp_lun_flush(lun), -MP_E_MEDIUM);
	assert_int_equal(mp_fault_get_stats(lun, &fs), 0);
	assert_int_equal(fs.fired, 4);
	/* rules added through the API; clear removes them all */
	assert_int_equal(mp_fault_clear(lun), 0);
	assert_int_equal(mp_lun_pwrite(lun, b, 4096, 0, 0), 4096);
	{
		struct mp_fault_rule r = { .op = MP_OP_READ,
					   .action = MP_FAULT_BUSY };

		assert_true(mp_fault_add(lun, &r) >= 0);
		assert_int_equal(mp_lun_pread(lun, b, 4096, 0), -MP_E_BUSY);
		r.action = MP_FAULT_QFULL;
		mp_fault_clear(lun);
		assert_true(mp_fault_add(lun, &r) >= 0);
		assert_int_equal(mp_lun_pread(lun, b, 4096, 0), -MP_E_QFULL);
	}
	mp_lun_close(lun);
	/* not a fault LUN */
	lun = open_clean();
	assert_int_equal(mp_fault_clear(lun), -EINVAL);
	mp_lun_close(lun);
	free(b);
}

static void test_every_prob(void **state)
{
	unsigned char *b = tu_alloc(512);
	int fails = 0;
	mp_lun *lun = open_spec("seed=7;read,fail,every=3");

	(void)state;
	for (int i = 0; i < 30; i++)
		if (mp_lun_pread(lun, b, 512, 0) < 0)
			fails++;
	assert_int_equal(fails, 10);
	mp_lun_close(lun);

	lun = open_spec("seed=7;read,fail,prob=0.5");
	fails = 0;
	for (int i = 0; i < 400; i++)
		if (mp_lun_pread(lun, b, 512, 0) < 0)
			fails++;
	assert_in_range(fails, 140, 260);
	mp_lun_close(lun);
	free(b);
}

static void test_delay(void **state)
{
	unsigned char *b = tu_alloc(512);
	uint64_t t0;
	mp_lun *lun = open_spec("read,delay,ms=300");

	(void)state;
	t0 = now_ms();
	assert_int_equal(mp_lun_pread(lun, b, 512, 0), 512);
	assert_true(now_ms() - t0 >= 290);
	mp_lun_close(lun);
	free(b);
}

struct hang_ctx {
	mp_lun *lun;
	unsigned char *buf;
	volatile int done;
	int result;
};

static void *hang_writer(void *p)
{
	struct hang_ctx *h = p;

	h->result = (int)mp_lun_pwrite(h->lun, h->buf, 4096, 1 << 20, 0);
	h->done = 1;
	return NULL;
}

/* A hung write is not on disk while it hangs, and goes through once the
 * rules are cleared. */
static void test_hang(void **state)
{
	struct hang_ctx h = { 0 };
	unsigned char *r = tu_alloc(4096);
	struct mp_fault_stats fs;
	mp_lun *clean = open_clean();
	pthread_t th;

	(void)state;
	h.lun = open_spec("write,hang");
	h.buf = tu_alloc(4096);
	tu_fill(h.buf, 4096, 5);
	pthread_create(&th, NULL, hang_writer, &h);
	usleep(200000);
	assert_int_equal(h.done, 0);
	assert_int_equal(mp_fault_get_stats(h.lun, &fs), 0);
	assert_int_equal(fs.held, 1);
	assert_int_equal(mp_lun_pread(clean, r, 4096, 1 << 20), 4096);
	assert_memory_not_equal(r, h.buf, 4096);
	mp_fault_clear(h.lun);
	pthread_join(th, NULL);
	assert_int_equal(h.result, 4096);
	assert_int_equal(mp_lun_pread(clean, r, 4096, 1 << 20), 4096);
	assert_memory_equal(r, h.buf, 4096);
	mp_lun_close(h.lun);
	mp_lun_close(clean);
	free(h.buf);
	free(r);
}

/* failafter: the write lands, yet the caller hears it timed out; a
 * compare-and-write likewise (the VMFS "ATS miscompare" situation). */
static void test_fail_after(void **state)
{
	unsigned char *b = tu_alloc(512), *r = tu_alloc(512), *o = tu_alloc(512);
	mp_lun *clean = open_clean(), *lun = open_spec("write,failafter;caw,failafter");

	(void)state;
	tu_fill(b, 512, 51);
	assert_int_equal(mp_lun_pwrite(lun, b, 512, 40960, 0), -ETIMEDOUT);
	assert_int_equal(mp_lun_pread(clean, r, 512, 40960), 512);
	assert_memory_equal(r, b, 512);
	tu_fill(o, 512, 52);
	assert_int_equal(mp_lun_caw(lun, 40960, b, o, 512, NULL), -ETIMEDOUT);
	assert_int_equal(mp_lun_pread(clean, r, 512, 40960), 512);
	assert_memory_equal(r, o, 512);
	mp_lun_close(lun);
	mp_lun_close(clean);
	free(b);
	free(r);
	free(o);
}

/* Fencing refuses new I/O except heartbeat I/O. */
static void test_fence(void **state)
{
	unsigned char *b = tu_alloc(512);
	struct iovec iov = { .iov_base = b, .iov_len = 512 };
	struct mp_io io;
	mp_lun *lun = open_clean();

	(void)state;
	mp_lun_fence(lun, true);
	assert_true(mp_lun_fenced(lun));
	assert_int_equal(mp_lun_pread(lun, b, 512, 0), -MP_E_FENCED);
	assert_int_equal(mp_lun_flush(lun), -MP_E_FENCED);
	mp_io_prep_write(&io, &iov, 1, 0, MP_IO_FENCE_BYPASS);
	assert_int_equal(mp_io_submit(lun, &io), 0);
	assert_int_equal(mp_io_wait(&io), 512);
	mp_lun_fence(lun, false);
	assert_int_equal(mp_lun_pread(lun, b, 512, 0), 512);
	mp_lun_close(lun);
	free(b);
}

/* A torn write leaves its first `keep` bytes new and the rest old. */
static void test_tear(void **state)
{
	unsigned char *old = tu_alloc(8192), *nw = tu_alloc(8192);
	unsigned char *r = tu_alloc(8192);
	mp_lun *clean = open_clean(), *lun;

	(void)state;
	tu_fill(old, 8192, 11);
	tu_fill(nw, 8192, 12);
	assert_int_equal(mp_lun_pwrite(clean, old, 8192, 0, 0), 8192);
	lun = open_spec("write,tear,keep=1536");
	assert_int_equal(mp_lun_pwrite(lun, nw, 8192, 0, 0), -EIO);
	assert_int_equal(mp_lun_pread(clean, r, 8192, 0), 8192);
	assert_memory_equal(r, nw, 1536);
	assert_memory_equal(r + 1536, old + 1536, 8192 - 1536);
	mp_lun_close(lun);
	mp_lun_close(clean);
	free(old);
	free(nw);
	free(r);
}

/* A dropped write is acknowledged but never written. */
static void test_drop(void **state)
{
	unsigned char *b = tu_alloc(4096), *r = tu_alloc(4096);
	mp_lun *clean = open_clean(), *lun = open_spec("write,drop,count=1");

	(void)state;
	memset(b, 0, 4096);
	assert_int_equal(mp_lun_pwrite(clean, b, 4096, 16384, 0), 4096);
	tu_fill(b, 4096, 13);
	assert_int_equal(mp_lun_pwrite(lun, b, 4096, 16384, 0), 4096);
	assert_int_equal(mp_lun_pread(lun, r, 4096, 16384), 4096);
	assert_memory_not_equal(r, b, 4096);
	assert_int_equal(mp_lun_pwrite(lun, b, 4096, 16384, 0), 4096);
	assert_int_equal(mp_lun_pread(clean, r, 4096, 16384), 4096);
	assert_memory_equal(r, b, 4096);
	mp_lun_close(lun);
	mp_lun_close(clean);
	free(b);
	free(r);
}

/* The volatile write cache: flushed writes survive a power cut, unflushed
 * ones do not; the host reads its own unflushed writes meanwhile. */
static void test_wcache_powercut(void **state)
{
	unsigned char *a = tu_alloc(65536), *b = tu_alloc(65536);
	unsigned char *z = tu_alloc(65536), *r = tu_alloc(65536);
	struct mp_fault_stats fs;
	mp_lun *clean = open_clean(), *lun;

	(void)state;
	assert_int_equal(mp_lun_pwrite(clean, z, 65536, 2 << 20, 0), 65536);
	assert_int_equal(mp_lun_pwrite(clean, z, 65536, 3 << 20, 0), 65536);
	lun = open_spec("wcache");
	tu_fill(a, 65536, 21);
	tu_fill(b, 65536, 22);
	assert_int_equal(mp_lun_pwrite(lun, a, 65536, 2 << 20, 0), 65536);
	assert_int_equal(mp_lun_flush(lun), 0);
	assert_int_equal(mp_lun_pwrite(lun, b, 65536, 3 << 20, 0), 65536);
	/* partially overwrite the flushed range, unflushed */
	assert_int_equal(mp_lun_pwrite(lun, b, 4096, 2 << 20, 0), 4096);

	/* this host sees everything it wrote */
	assert_int_equal(mp_lun_pread(lun, r, 65536, 3 << 20), 65536);
	assert_memory_equal(r, b, 65536);
	assert_int_equal(mp_lun_pread(lun, r, 65536, 2 << 20), 65536);
	assert_memory_equal(r, b, 4096);
	assert_memory_equal(r + 4096, a + 4096, 65536 - 4096);
	/* the LUN itself holds only what was flushed */
	assert_int_equal(mp_lun_pread(clean, r, 65536, 3 << 20), 65536);
	assert_memory_equal(r, z, 65536);
	assert_int_equal(mp_fault_get_stats(lun, &fs), 0);
	assert_int_equal(fs.cached_sectors, (65536 + 4096) / 512);

	assert_int_equal(mp_fault_power_cut(lun, MP_POWERCUT_LOSE_ALL), 0);
	assert_int_equal(mp_fault_get_stats(lun, &fs), 0);
	assert_int_equal(fs.lost_sectors, (65536 + 4096) / 512);
	assert_int_equal(mp_lun_pread(lun, r, 512, 0), -MP_E_POWERCUT);
	assert_int_equal(mp_lun_pwrite(lun, r, 512, 0, 0), -MP_E_POWERCUT);
	mp_lun_close(lun);

	assert_int_equal(mp_lun_pread(clean, r, 65536, 2 << 20), 65536);
	assert_memory_equal(r, a, 65536);
	assert_int_equal(mp_lun_pread(clean, r, 65536, 3 << 20), 65536);
	assert_memory_equal(r, z, 65536);
	mp_lun_close(clean);
	free(a);
	free(b);
	free(z);
	free(r);
}

/* FUA writes reach the LUN before they complete, cache or not. */
static void test_wcache_fua_and_caw(void **state)
{
	unsigned char *a = tu_alloc(4096), *r = tu_alloc(4096);
	unsigned char *c = tu_alloc(512), *n = tu_alloc(512);
	mp_lun *clean = open_clean(), *lun = open_spec("wcache");

	(void)state;
	tu_fill(a, 4096, 31);
	assert_int_equal(mp_lun_pwrite(lun, a, 4096, 1 << 20, MP_IO_FUA), 4096);
	assert_int_equal(mp_lun_pread(clean, r, 4096, 1 << 20), 4096);
	assert_memory_equal(r, a, 4096);

	/* CAW compares against this host's unflushed write */
	tu_fill(c, 512, 32);
	tu_fill(n, 512, 33);
	assert_int_equal(mp_lun_pwrite(lun, c, 512, 5 << 20, 0), 512);
	assert_int_equal(mp_lun_caw(lun, 5 << 20, c, n, 512, NULL), 0);
	assert_int_equal(mp_lun_pread(clean, r, 512, 5 << 20), 512);
	assert_memory_equal(r, n, 512);
	assert_int_equal(mp_lun_pread(lun, r, 512, 5 << 20), 512);
	assert_memory_equal(r, n, 512);
	assert_int_equal(mp_lun_caw(lun, 5 << 20, c, n, 512, r),
			 -MP_E_MISCOMPARE);
	assert_memory_equal(r, n, 512);

	mp_fault_power_cut(lun, MP_POWERCUT_LOSE_ALL);
	mp_lun_close(lun);
	assert_int_equal(mp_lun_pread(clean, r, 4096, 1 << 20), 4096);
	assert_memory_equal(r, a, 4096);
	mp_lun_close(clean);
	free(a);
	free(r);
	free(c);
	free(n);
}

/* A random power cut keeps some unflushed sectors and loses the others;
 * every sector is either entirely old or entirely new. */
static void test_powercut_random(void **state)
{
	enum { SZ = 256 * 512 };
	unsigned char *old = tu_alloc(SZ), *nw = tu_alloc(SZ), *r = tu_alloc(SZ);
	struct mp_fault_stats fs;
	mp_lun *clean = open_clean(), *lun;
	int kept = 0, lost = 0;

	(void)state;
	tu_fill(old, SZ, 41);
	tu_fill(nw, SZ, 42);
	assert_int_equal(mp_lun_pwrite(clean, old, SZ, 6 << 20, 0), SZ);
	lun = open_spec("wcache;seed=3");
	assert_int_equal(mp_lun_pwrite(lun, nw, SZ, 6 << 20, 0), SZ);
	mp_fault_power_cut(lun, MP_POWERCUT_RANDOM);
	mp_fault_get_stats(lun, &fs);
	mp_lun_close(lun);
	assert_int_equal(mp_lun_pread(clean, r, SZ, 6 << 20), SZ);
	for (int s = 0; s < SZ / 512; s++) {
		if (!memcmp(r + s * 512, nw + s * 512, 512))
			kept++;
		else if (!memcmp(r + s * 512, old + s * 512, 512))
			lost++;
		else
			fail_msg("sector %d is neither old nor new", s);
	}
	assert_int_equal(kept + lost, SZ / 512);
	assert_int_equal(lost, (int)fs.lost_sectors);
	assert_true(kept > 0 && lost > 0);
	mp_lun_close(clean);
	free(old);
	free(nw);
	free(r);
}

/* A rule that cuts the power on the 3rd write. */
static void test_powercut_rule(void **state)
{
	unsigned char *b = tu_alloc(512);
	mp_lun *lun = open_spec("wcache;write,powercut,after=2");

	(void)state;
	assert_int_equal(mp_lun_pwrite(lun, b, 512, 0, 0), 512);
	assert_int_equal(mp_lun_pwrite(lun, b, 512, 512, 0), 512);
	assert_int_equal(mp_lun_pwrite(lun, b, 512, 1024, 0), -MP_E_POWERCUT);
	assert_int_equal(mp_lun_pread(lun, b, 512, 0), -MP_E_POWERCUT);
	mp_lun_close(lun);
	free(b);
}

/* qslots=K: beyond K I/Os in flight the target answers QUEUE FULL. */
struct qf {
	pthread_mutex_t m;
	pthread_cond_t c;
	int left, qfull, ok;
};

static void qf_cb(struct mp_io *io)
{
	struct qf *q = io->priv;

	pthread_mutex_lock(&q->m);
	if (io->result == -MP_E_QFULL)
		q->qfull++;
	else if (io->result == (int)io->length)
		q->ok++;
	q->left--;
	pthread_cond_signal(&q->c);
	pthread_mutex_unlock(&q->m);
}

static void test_qslots(void **state)
{
	enum { N = 32 };
	struct qf q = { .left = N };
	struct mp_io ios[N];
	struct iovec iov[N];
	unsigned char *b = tu_alloc(N * 4096);
	/* delay every read so that they pile up at the "target" */
	mp_lun *lun = open_spec("qslots=4;read,delay,ms=50");

	(void)state;
	pthread_mutex_init(&q.m, NULL);
	pthread_cond_init(&q.c, NULL);
	for (int i = 0; i < N; i++) {
		iov[i].iov_base = b + i * 4096;
		iov[i].iov_len = 4096;
		mp_io_prep_read(&ios[i], &iov[i], 1, (uint64_t)i * 4096);
		ios[i].cb = qf_cb;
		ios[i].priv = &q;
		assert_int_equal(mp_io_submit(lun, &ios[i]), 0);
	}
	pthread_mutex_lock(&q.m);
	while (q.left)
		pthread_cond_wait(&q.c, &q.m);
	pthread_mutex_unlock(&q.m);
	assert_int_equal(q.ok, 4);
	assert_int_equal(q.qfull, N - 4);
	mp_lun_close(lun);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_passthrough),
		cmocka_unit_test(test_fail_rules),
		cmocka_unit_test(test_every_prob),
		cmocka_unit_test(test_delay),
		cmocka_unit_test(test_hang),
		cmocka_unit_test(test_fail_after),
		cmocka_unit_test(test_fence),
		cmocka_unit_test(test_tear),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_wcache_powercut),
		cmocka_unit_test(test_wcache_fua_and_caw),
		cmocka_unit_test(test_powercut_random),
		cmocka_unit_test(test_powercut_rule),
		cmocka_unit_test(test_qslots),
	};

	return cmocka_run_group_tests_name("fault", tests, setup, teardown);
}
