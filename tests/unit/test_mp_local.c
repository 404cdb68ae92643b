/*
 * test_mp_local.c - the local backend (files) through the public API, run
 * once with io_uring and once with libaio.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "multipath/mp.h"
#include "tests/unit/testutil.h"

static const char *engine;        /* "uring" or "aio" for this group */
static char lunpath[256];

#define LUN_SIZE (16u << 20)

static mp_lun *open_lun(unsigned flags)
{
	char spec[300];
	struct mp_open_opts o = { .flags = flags };
	mp_lun *lun = NULL;

	snprintf(spec, sizeof(spec), "%s?engine=%s", lunpath, engine);
	assert_int_equal(mp_lun_open(spec, &o, &lun), 0);
	return lun;
}

static int setup(void **state)
{
	(void)state;
	tu_make_file(lunpath, sizeof(lunpath), "mp_local", LUN_SIZE);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(lunpath);
	return 0;
}

static void test_info(void **state)
{
	struct mp_lun_info in;
	mp_lun *lun = open_lun(0);

	(void)state;
	mp_lun_get_info(lun, &in);
	assert_int_equal(in.capacity, LUN_SIZE);
	assert_int_equal(in.logical_sector, 512);
	assert_string_equal(in.backend, engine);
	assert_true(in.caps & MP_CAP_ATS_EMULATED);
	assert_true(in.caps & MP_CAP_DISCARD);
	assert_false(in.caps & MP_CAP_ATS);
	assert_true(strncmp(in.id, "file.", 5) == 0);
	/* same file, second handle: same identity */
	{
		mp_lun *l2 = open_lun(MP_OPEN_RDONLY);
		struct mp_lun_info in2;

		mp_lun_get_info(l2, &in2);
		assert_string_equal(in.id, in2.id);
		mp_lun_close(l2);
	}
	assert_int_equal(mp_lun_test_ready(lun), 0);
	mp_lun_close(lun);
}

struct async_ctx {
	pthread_mutex_t m;
	pthread_cond_t c;
	int left, errors;
};

static void async_cb(struct mp_io *io)
{
	struct async_ctx *a = io->priv;

	pthread_mutex_lock(&a->m);
	if (io->result != (int)io->length)
		a->errors++;
	a->left--;
	pthread_cond_signal(&a->c);
	pthread_mutex_unlock(&a->m);
}

/* 256 scatter-gather writes in flight at once (more than the queue depth,
 * so the software queue is used), then read everything back. */
static void test_async_sg(void **state)
{
	enum { N = 256, SEG = 3, SEGLEN = 4096 };
	struct async_ctx a = { .left = N };
	struct mp_io *ios = calloc(N, sizeof(*ios));
	struct iovec *iov = calloc(N * SEG, sizeof(*iov));
	unsigned char *buf = tu_alloc(N * SEG * SEGLEN);
	unsigned char *rd = tu_alloc(N * SEG * SEGLEN);
	struct mp_lun_stats st;
	mp_lun *lun = open_lun(0);

	(void)state;
	pthread_mutex_init(&a.m, NULL);
	pthread_cond_init(&a.c, NULL);
	tu_fill(buf, N * SEG * SEGLEN, 42);
	for (int i = 0; i < N; i++) {
		for (int s = 0; s < SEG; s++) {
			iov[i * SEG + s].iov_base = buf + (i * SEG + s) * SEGLEN;
			iov[i * SEG + s].iov_len = SEGLEN;
		}
		mp_io_prep_write(&ios[i], &iov[i * SEG], SEG,
				 (uint64_t)i * SEG * SEGLEN, 0);
		ios[i].cb = async_cb;
		ios[i].priv = &a;
		assert_int_equal(mp_io_submit(lun, &ios[i]), 0);
	}
	pthread_mutex_lock(&a.m);
	while (a.left)
		pthread_cond_wait(&a.c, &a.m);
	pthread_mutex_unlock(&a.m);
	assert_int_equal(a.errors, 0);

	/* read back with different segmentation through the sync API */
	assert_int_equal(mp_lun_pread(lun, rd, N * SEG * SEGLEN, 0),
			 N * SEG * SEGLEN);
	assert_memory_equal(rd, buf, N * SEG * SEGLEN);
	mp_lun_get_stats(lun, &st);
	assert_int_equal(st.writes, N);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.queued, 0);
	mp_lun_close(lun);
	free(ios);
	free(iov);
	free(buf);
	free(rd);
}

/* Buffers at odd addresses go through a bounce buffer transparently. */
static void test_unaligned_buffers(void **state)
{
	unsigned char *raw = malloc(8192 + 3), *b = raw + 3;
	unsigned char *r = malloc(8192 + 7), *rb = r + 7;
	struct iovec iov[2] = {
		{ .iov_base = rb, .iov_len = 1024 },
		{ .iov_base = rb + 1024, .iov_len = 7168 },
	};
	mp_lun *lun = open_lun(0);

	(void)state;
	tu_fill(b, 8192, 7);
	assert_int_equal(mp_lun_pwrite(lun, b, 8192, 65536, 0), 8192);
	memset(rb, 0, 8192);
	assert_int_equal(mp_lun_preadv(lun, iov, 2, 65536), 8192);
	assert_memory_equal(rb, b, 8192);
	mp_lun_close(lun);
	free(raw);
	free(r);
}

static void test_bad_requests(void **state)
{
	unsigned char *b = tu_alloc(4096);
	mp_lun *lun = open_lun(0), *ro = open_lun(MP_OPEN_RDONLY);

	(void)state;
	assert_int_equal(mp_lun_pwrite(lun, b, 4096, 100, 0), -EINVAL);
	assert_int_equal(mp_lun_pwrite(lun, b, 100, 0, 0), -EINVAL);
	assert_int_equal(mp_lun_pread(lun, b, 4096, LUN_SIZE), -ERANGE);
	assert_int_equal(mp_lun_pread(lun, b, 4096, LUN_SIZE - 512), -ERANGE);
	assert_int_equal(mp_lun_pread(lun, b, 0, 0), -EINVAL);
	assert_int_equal(mp_lun_pwrite(ro, b, 4096, 0, 0), -EROFS);
	assert_int_equal(mp_lun_discard(ro, 0, 4096), -EROFS);
	assert_int_equal(mp_lun_reserve(lun), -EOPNOTSUPP);
	assert_int_equal(mp_lun_pread(ro, b, 4096, 0), 4096);
	mp_lun_close(ro);
	mp_lun_close(lun);
	free(b);
}

static void test_open_errors(void **state)
{
	mp_lun *lun = NULL;
	char spec[300];

	(void)state;
	assert_int_equal(mp_lun_open("/nonexistent/lun.img", NULL, &lun),
			 -ENOENT);
	assert_int_equal(mp_lun_open("", NULL, &lun), -MP_E_SPEC);
	assert_int_equal(mp_lun_open("nfs://x/y", NULL, &lun), -MP_E_SPEC);
	snprintf(spec, sizeof(spec), "%s?engine=spdk", lunpath);
	assert_int_equal(mp_lun_open(spec, NULL, &lun), -MP_E_SPEC);
	snprintf(spec, sizeof(spec), "%s?sector=1000", lunpath);
	assert_int_equal(mp_lun_open(spec, NULL, &lun), -MP_E_SPEC);
	assert_int_equal(mp_lun_open("/dev/null", NULL, &lun), -ENOTBLK);
	assert_null(lun);
	assert_string_equal(mp_strerror(-MP_E_MISCOMPARE),
			    "compare-and-write miscompare");
	assert_string_equal(mp_strerror(-ENOENT), strerror(ENOENT));
}

static void test_sector_4k(void **state)
{
	char spec[300];
	struct mp_lun_info in;
	unsigned char *b = tu_alloc(4096);
	mp_lun *lun = NULL;

	(void)state;
	snprintf(spec, sizeof(spec), "%s?sector=4096&engine=%s", lunpath, engine);
	assert_int_equal(mp_lun_open(spec, NULL, &lun), 0);
	mp_lun_get_info(lun, &in);
	assert_int_equal(in.logical_sector, 4096);
	assert_int_equal(mp_lun_pread(lun, b, 512, 0), -EINVAL);
	assert_int_equal(mp_lun_pread(lun, b, 4096, 4096), 4096);
	mp_lun_close(lun);
	free(b);
}

static void test_flush_fua_discard(void **state)
{
	unsigned char *b = tu_alloc(1 << 20), *z = tu_alloc(1 << 20);
	struct stat st1, st2;
	mp_lun *lun = open_lun(0);

	(void)state;
	tu_fill(b, 1 << 20, 3);
	assert_int_equal(mp_lun_pwrite(lun, b, 1 << 20, 4 << 20, MP_IO_FUA),
			 1 << 20);
	assert_int_equal(mp_lun_flush(lun), 0);
	assert_int_equal(stat(lunpath, &st1), 0);
	assert_int_equal(mp_lun_discard(lun, 4 << 20, 1 << 20), 0);
	assert_int_equal(stat(lunpath, &st2), 0);
	/* the hole was punched: fewer blocks allocated, reads give zeros */
	assert_true(st2.st_blocks < st1.st_blocks);
	memset(z, 0xff, 1 << 20);
	assert_int_equal(mp_lun_pread(lun, z, 1 << 20, 4 << 20), 1 << 20);
	memset(b, 0, 1 << 20);
	assert_memory_equal(z, b, 1 << 20);
	assert_int_equal(mp_lun_discard(lun, 100, 512), -EINVAL);
	mp_lun_close(lun);
	free(b);
	free(z);
}

static void test_caw(void **state)
{
	unsigned char *cmp = tu_alloc(512), *nw = tu_alloc(512);
	unsigned char *cur = tu_alloc(512), *rd = tu_alloc(512);
	mp_lun *lun = open_lun(0);

	(void)state;
	assert_int_equal(mp_lun_pread(lun, cmp, 512, 8192), 512);
	tu_fill(nw, 512, 9);
	assert_int_equal(mp_lun_caw(lun, 8192, cmp, nw, 512, cur), 0);
	assert_int_equal(mp_lun_pread(lun, rd, 512, 8192), 512);
	assert_memory_equal(rd, nw, 512);
	/* stale compare: fails, reports current contents, writes nothing */
	tu_fill(cur, 512, 0);
	assert_int_equal(mp_lun_caw(lun, 8192, cmp, cmp, 512, cur),
			 -MP_E_MISCOMPARE);
	assert_memory_equal(cur, nw, 512);
	assert_int_equal(mp_lun_pread(lun, rd, 512, 8192), 512);
	assert_memory_equal(rd, nw, 512);
	/* too long for one CAW */
	{
		unsigned char *big = tu_alloc(64 << 10);

		assert_int_equal(mp_lun_caw(lun, 0, big, big, 64 << 10, NULL),
				 -EINVAL);
		free(big);
	}
	mp_lun_close(lun);
	free(cmp);
	free(nw);
	free(cur);
	free(rd);
}

/* Threads of one process and two handles race CAW increments. */
struct inc_arg {
	mp_lun *lun;
	int iters;
};

static void *inc_thread(void *p)
{
	struct inc_arg *a = p;
	unsigned char *cur = tu_alloc(512), *nw = tu_alloc(512);

	assert_int_equal(mp_lun_pread(a->lun, cur, 512, 0), 512);
	for (int i = 0; i < a->iters;) {
		uint64_t v;
		int ret;

		memcpy(nw, cur, 512);
		memcpy(&v, nw, 8);
		v++;
		memcpy(nw, &v, 8);
		ret = mp_lun_caw(a->lun, 0, cur, nw, 512, cur);
		if (ret == 0) {
			memcpy(cur, nw, 512);
			i++;
		} else if (ret != -MP_E_MISCOMPARE) {
			fail_msg("caw: %s", mp_strerror(ret));
		}
	}
	free(cur);
	free(nw);
	return NULL;
}

static void test_caw_threads(void **state)
{
	enum { T = 4, ITERS = 300 };
	pthread_t th[T];
	struct inc_arg a[T];
	unsigned char *z = tu_alloc(512);
	mp_lun *l1 = open_lun(0), *l2 = open_lun(0);
	uint64_t v;

	(void)state;
	memset(z, 0, 512);
	assert_int_equal(mp_lun_pwrite(l1, z, 512, 0, 0), 512);
	for (int i = 0; i < T; i++) {
		a[i].lun = i & 1 ? l2 : l1;
		a[i].iters = ITERS;
		pthread_create(&th[i], NULL, inc_thread, &a[i]);
	}
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(mp_lun_pread(l1, z, 512, 0), 512);
	memcpy(&v, z, 8);
	assert_int_equal(v, T * ITERS);
	mp_lun_close(l1);
	mp_lun_close(l2);
	free(z);
}

/* A synchronous call from a completion callback would wait for its own
 * thread: refused with -EDEADLK instead of hanging. */
static int deadlk_result;

static void deadlk_cb(struct mp_io *io)
{
	/* static: it is still in flight after this callback returns */
	static struct mp_io inner;
	static unsigned char b[512] __attribute__((aligned(512)));
	struct iovec iov = { .iov_base = b, .iov_len = 512 };

	mp_io_prep_read(&inner, &iov, 1, 0);
	if (mp_io_submit(io->lun_, &inner) == 0) {
		__atomic_store_n(&deadlk_result, mp_io_wait(&inner),
				 __ATOMIC_RELAXED);
		/* it still completes later; close() waits for it */
	}
	__atomic_store_n((int *)io->priv, 1, __ATOMIC_RELEASE);
}

static void test_no_self_deadlock(void **state)
{
	unsigned char *b = tu_alloc(512);
	struct iovec iov = { .iov_base = b, .iov_len = 512 };
	struct mp_io io;
	int flag = 0;
	mp_lun *lun = open_lun(0);

	(void)state;
	mp_io_prep_read(&io, &iov, 1, 0);
	io.cb = deadlk_cb;
	io.priv = &flag;
	assert_int_equal(mp_io_submit(lun, &io), 0);
	while (!__atomic_load_n(&flag, __ATOMIC_ACQUIRE))
		usleep(1000);
	assert_int_equal(__atomic_load_n(&deadlk_result, __ATOMIC_RELAXED),
			 -EDEADLK);
	mp_lun_close(lun);   /* waits for the inner read too */
	free(b);
}

/* mp_io_run (the synchronous helpers): done in the caller's thread on a
 * local LUN, counted as any I/O, refused where it must be. */
static int run_cb_result;

static void run_cb(struct mp_io *io)
{
	static unsigned char b[512] __attribute__((aligned(512)));

	/* a callback's thread cannot wait, not even for I/O it would do
	 * itself */
	__atomic_store_n(&run_cb_result, (int)mp_lun_pread(io->lun_, b, 512, 0),
			 __ATOMIC_RELAXED);
	__atomic_store_n((int *)io->priv, 1, __ATOMIC_RELEASE);
}

static void test_run(void **state)
{
	unsigned char *b = tu_alloc(4096), *c = tu_alloc(4096), *d = tu_alloc(4096);
	struct iovec iov = { .iov_base = b, .iov_len = 4096 };
	struct mp_lun_stats s0, s1;
	struct mp_io io;
	int flag = 0;
	mp_lun *lun = open_lun(0);

	(void)state;
	mp_lun_get_stats(lun, &s0);
	tu_fill(b, 4096, 21);
	mp_io_prep_write(&io, &iov, 1, 65536, MP_IO_FUA);
	assert_int_equal(mp_io_run(lun, &io), 4096);
	assert_int_equal(io.result, 4096);
	memset(c, 0, 4096);
	assert_int_equal(mp_lun_pread(lun, c, 4096, 65536), 4096);
	assert_memory_equal(b, c, 4096);
	assert_int_equal(mp_lun_flush(lun), 0);
	assert_int_equal(mp_lun_caw(lun, 65536, b, c, 512, NULL), 0);
	assert_int_equal(mp_lun_caw(lun, 65536, c + 512, b, 512, NULL),
			 -MP_E_MISCOMPARE);
	/* beyond the end, unaligned: refused before anything runs */
	assert_int_equal(mp_lun_pread(lun, c, 4096, LUN_SIZE), -ERANGE);
	assert_int_equal(mp_lun_pread(lun, c, 100, 0), -EINVAL);
	mp_lun_get_stats(lun, &s1);
	assert_int_equal(s1.writes - s0.writes, 1);
	assert_int_equal(s1.reads - s0.reads, 1);
	assert_int_equal(s1.flushes - s0.flushes, 1);
	assert_int_equal(s1.caws - s0.caws, 2);
	assert_int_equal(s1.write_bytes - s0.write_bytes, 4096);
	assert_int_equal(s1.inflight, 0);
	/* with a callback it is not a synchronous I/O */
	iov.iov_base = d;
	mp_io_prep_read(&io, &iov, 1, 0);
	io.cb = run_cb;
	assert_int_equal(mp_io_run(lun, &io), -EINVAL);
	/* from a callback: -EDEADLK, as mp_io_wait there */
	io.priv = &flag;
	assert_int_equal(mp_io_submit(lun, &io), 0);
	while (!__atomic_load_n(&flag, __ATOMIC_ACQUIRE))
		usleep(1000);
	assert_int_equal(__atomic_load_n(&run_cb_result, __ATOMIC_RELAXED),
			 -EDEADLK);
	/* fenced: nothing reaches the file */
	mp_lun_fence(lun, true);
	assert_int_equal(mp_lun_pwrite(lun, c, 4096, 65536, 0), -MP_E_FENCED);
	assert_int_equal(mp_lun_flush(lun), -MP_E_FENCED);
	mp_lun_fence(lun, false);
	assert_int_equal(mp_lun_pread(lun, c, 4096, 65536), 4096);
	assert_memory_equal(c, b, 4096);
	mp_lun_close(lun);
	free(b);
	free(c);
	free(d);
}

static long meminfo(const char *key)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = atol(line + strlen(key));
	if (f)
		fclose(f);
	return v;
}

/* The huge page size (kB) of the mapping at p, from /proc/self/smaps:
 * KernelPageSize for hugetlb, AnonHugePages > 0 counts as 2048 (THP). */
static long page_kb_at(const void *p)
{
	char line[256];
	bool in = false;
	long kb = 0;
	FILE *f = fopen("/proc/self/smaps", "re");

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (!in)
			continue;
		if (!strncmp(line, "KernelPageSize:", 15) && atol(line + 15) > kb)
			kb = atol(line + 15);
		if (!strncmp(line, "AnonHugePages:", 14) && atol(line + 14) > 0)
			kb = 2048;
	}
	if (f)
		fclose(f);
	return kb;
}

/* mp_alloc_io: rounded to 2 MiB, aligned, zeroed, usable for O_DIRECT
 * transfers; MP_MEM_HUGETLB takes hugetlb pages or fails with ENOMEM. */
static void test_io_buffers(void **state)
{
	const size_t len = (1u << 20) + 4096;    /* rounded up to one 2 MiB page */
	mp_lun *lun = open_lun(0);
	unsigned char *p, *q;
	long free_huge;

	(void)state;
	p = mp_alloc_io(len, 0);
	assert_non_null(p);
	assert_int_equal((uintptr_t)p % (2u << 20), 0);
	for (size_t i = 0; i < (2u << 20); i += 4096)
		assert_int_equal(p[i], 0);
	p[(2u << 20) - 1] = 1;                  /* the rounded length is ours */
	printf("mp_alloc_io: %ld kB pages\n", page_kb_at(p));
	q = mp_alloc_io(len, 0);
	assert_non_null(q);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 7 + i / 4096);
	assert_int_equal(mp_lun_pwrite(lun, p, len, 1u << 20, 0), (int)len);
	assert_int_equal(mp_lun_pread(lun, q, len, 1u << 20), (int)len);
	assert_memory_equal(p, q, len);
	mp_free_io(p, len);
	mp_free_io(q, len);
	mp_free_io(NULL, len);
	/* hugetlb only */
	free_huge = meminfo("HugePages_Free:");
	errno = 0;
	p = mp_alloc_io(len, MP_MEM_HUGETLB);
	if (free_huge < 1) {
		assert_null(p);
		assert_int_equal(errno, ENOMEM);
	} else {
		assert_non_null(p);
		assert_int_equal(page_kb_at(p), 2048);
		mp_free_io(p, len);
	}
	/* absurd lengths fail cleanly */
	errno = 0;
	assert_null(mp_alloc_io(SIZE_MAX - 4096, 0));
	assert_int_equal(errno, ENOMEM);
	mp_lun_close(lun);
}

#define TESTS                                                                 \
	cmocka_unit_test(test_info), cmocka_unit_test(test_async_sg),         \
	cmocka_unit_test(test_unaligned_buffers),                             \
	cmocka_unit_test(test_bad_requests), cmocka_unit_test(test_open_errors),\
	cmocka_unit_test(test_sector_4k), cmocka_unit_test(test_flush_fua_discard),\
	cmocka_unit_test(test_caw), cmocka_unit_test(test_caw_threads),       \
	cmocka_unit_test(test_no_self_deadlock), cmocka_unit_test(test_run), \
	cmocka_unit_test(test_io_buffers)


int main(void)
{
	const struct CMUnitTest tests[] = { TESTS };
	int fails = 0;

	setup(NULL);
	engine = "uring";
	fails += _cmocka_run_group_tests("local_uring", tests,
					 sizeof(tests) / sizeof(tests[0]),
					 NULL, NULL);
	engine = "aio";
	fails += _cmocka_run_group_tests("local_aio", tests,
					 sizeof(tests) / sizeof(tests[0]),
					 NULL, NULL);
	teardown(NULL);
	return fails;
}
