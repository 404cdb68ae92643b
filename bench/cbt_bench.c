/*
 * cbt_bench - the change tracking library alone (no FUSE, no daemon), for
 * bench/bench-cbt.sh: what a mark costs the write path, and what a query
 * costs, on a 1 TiB disk.  The tracking file is memory (writes dropped).
 *
 *   cbt_bench        prints "name value" lines:
 *     mark_random_ns      one 4 KiB mark at a random place of 1 TiB
 *     mark_seq_ns         one 4 KiB mark, sequential
 *     query_1pct_ms       query since an ID, 1% of the 64 KiB blocks
 *                         changed at random (median of 5)
 *     query_1pct_extents  extents it returned
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbt/cbt.h"

static int m_pread(void *a, void *b, size_t l, uint64_t o)
{
	(void)a;
	(void)o;
	memset(b, 0, l);
	return 0;
}

static int m_pwrite(void *a, const void *b, size_t l, uint64_t o)
{
	(void)a;
	(void)b;
	(void)l;
	(void)o;
	return 0;
}

static int m_sync(void *a)
{
	(void)a;
	return 0;
}

static int m_truncate(void *a, uint64_t s)
{
	(void)a;
	(void)s;
	return 0;
}

static int64_t m_next_data(void *a, uint64_t o)
{
	(void)a;
	(void)o;
	return -ENXIO;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int count(void *arg, uint64_t off, uint64_t len)
{
	(void)off;
	(void)len;
	(*(uint64_t *)arg)++;
	return 0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	const uint64_t T = 1ull << 40, blocks = T >> 16;
	const unsigned N = 4000000;
	struct cbt_io io = { m_pread, m_pwrite, m_sync, m_truncate,
			     m_next_data, NULL };
	struct cbt_id id;
	double t0, q[5];
	uint64_t x = 88172645463325252ull, n = 0;
	cbt_disk *d;

	if (cbt_create(&io, T, 0, &d) || cbt_begin_writes(d))
		return 1;
	t0 = now();
	for (unsigned i = 0; i < N; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		cbt_mark(d, (x % (T >> 12)) << 12, 4096);
	}
	printf("mark_random_ns %.0f\n", (now() - t0) * 1e9 / N);
	t0 = now();
	for (unsigned i = 0; i < N; i++)
		cbt_mark(d, (uint64_t)i << 12, 4096);
	printf("mark_seq_ns %.0f\n", (now() - t0) * 1e9 / N);
	cbt_close(d);

	/* 1% of the blocks, each once, at random */
	if (cbt_create(&io, T, 0, &d) || cbt_checkpoint(d, &id))
		return 1;
	for (uint64_t b = 0; b < blocks; b++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (x % 100 == 0)
			cbt_mark(d, b << 16, 4096);
	}
	for (int r = 0; r < 5; r++) {
		n = 0;
		t0 = now();
		if (cbt_query(d, &id, 0, T, count, &n))
			return 1;
		q[r] = (now() - t0) * 1e3;
	}
	qsort(q, 5, sizeof(q[0]), cmp);
	printf("query_1pct_ms %.2f\nquery_1pct_extents %llu\n", q[2],
	       (unsigned long long)n);
	cbt_close(d);
	return 0;
}
