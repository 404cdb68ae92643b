/*
 * test_readahead.c - vmfsd's sequential read-ahead (vmfsd/readahead.c) on
 * a real volume: a sequential reader is answered from windows read ahead,
 * and no window outlives a change of the file made on this host (write,
 * asynchronous write, truncate, fallocate, punch) or a write that bypassed
 * the library while a disk was attached (ra_bump); windows in flight at
 * ra_destroy; readers and a writer at once (a read never returns data
 * older than a write that finished before the read began).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fs/fs.h"
#include "multipath/mp.h"
#include "tests/unit/testutil.h"
#include "vmfsd/readahead.h"

#define MB (1u << 20)
#define NBLK 24                 /* the file: 24 MiB */

static char path[256];
static fs_vol *vol;
static uint64_t ino;
static fs_file *w;              /* read-write handle: the writer */
static bool attached;           /* what vmfsd_disk_attached says */

/* vmfsd's (attach_cmds.c): a disk of a running VM */
bool vmfsd_disk_attached(uint64_t i);
bool vmfsd_disk_attached(uint64_t i)
{
	return __atomic_load_n(&attached, __ATOMIC_ACQUIRE) && i == ino;
}

/* Block b at version v: each 4 KiB starts with (b, v), then a pattern. */
static void fill(unsigned char *p, uint32_t b, uint32_t v)
{
	for (size_t o = 0; o < MB; o += 4096) {
		uint32_t h[2] = { b, v };

		tu_fill(p + o, 4096, b * 7919u + v * 104729u + (uint32_t)(o >> 12));
		memcpy(p + o, h, sizeof(h));
	}
}

/* The version of each 4 KiB of [p, p+len) at file offset off: -1 for
 * garbage (not a block's pattern). */
static int64_t chunk_version(const unsigned char *p, uint64_t off)
{
	unsigned char want[4096];
	uint32_t h[2];

	memcpy(h, p, sizeof(h));
	if (h[0] != off / MB)
		return -1;
	tu_fill(want, 4096, h[0] * 7919u + h[1] * 104729u +
		(uint32_t)((off % MB) >> 12));
	memcpy(want, h, sizeof(h));
	return memcmp(want, p, 4096) ? -1 : (int64_t)h[1];
}

static void write_block(uint32_t b, uint32_t v)
{
	unsigned char *p = mp_alloc_io(MB, 0);

	assert_non_null(p);
	fill(p, b, v);
	assert_int_equal(fs_pwrite(w, p, MB, (uint64_t)b * MB), (ssize_t)MB);
	mp_free_io(p, MB);
}

static int setup(void **state)
{
	struct fs_mkfs_opts mk = {
		.label = "ra", .max_hosts = 4, .hb_interval_ms = 250,
		.hb_dead_ms = 2500, .force = true, .block_size = MB,
	};
	struct fs_mount_opts mo = { .host = "alpha" };
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_stat st;
	const char *specs[1];

	(void)state;
	tu_make_file(path, sizeof(path), "readahead", 512ull << 20);
	specs[0] = path;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	assert_int_equal(fs_mount(specs, 1, &mo, &vol), 0);
	assert_int_equal(fs_create_open(vol, fs_root(vol), "disk", &a, FS_O_RDWR,
					&st, &w), 0);
	ino = st.ino;
	assert_int_equal(ra_start(), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ra_stop();
	fs_close(w);
	fs_umount(vol);
	unlink(path);
	return 0;
}

/* Every block at version v. */
static void write_all(uint32_t v)
{
	assert_int_equal(fs_ftruncate(w, 0), 0);
	for (uint32_t b = 0; b < NBLK; b++)
		write_block(b, v);
}

/* ra_read [off, off+len) and check every 4 KiB is at version v. */
static void read_check(struct ra *ra, void *buf, uint64_t off, size_t len,
		       uint32_t v)
{
	struct ra_ref ref;
	ssize_t n = ra_read(ra, buf, len, off, &ref);

	assert_int_equal(n, (ssize_t)len);
	for (size_t o = 0; o < len; o += 4096) {
		int64_t got = chunk_version((const unsigned char *)ref.data + o,
					    off + o);

		if (got != (int64_t)v)
			fail_msg("offset %llu: version %lld, want %u",
				 (unsigned long long)(off + o), (long long)got, v);
	}
	ra_put(ra, &ref);
}

/* Wait until no window of ra is being read. */
static void settle(struct ra *ra)
{
	pthread_mutex_lock(&ra->m);
	for (unsigned i = 0; i < RA_BUFS; i++)
		while (ra->b[i].state == RA_FILLING)
			pthread_cond_wait(&ra->c, &ra->m);
	pthread_mutex_unlock(&ra->m);
}

/* Windows of ra that hold data (filled and current or not). */
static unsigned ready(struct ra *ra)
{
	unsigned n = 0;

	pthread_mutex_lock(&ra->m);
	for (unsigned i = 0; i < RA_BUFS; i++)
		n += ra->b[i].state == RA_READY;
	pthread_mutex_unlock(&ra->m);
	return n;
}

static fs_file *open_ro(void)
{
	fs_file *f = NULL;

	assert_int_equal(fs_open(vol, ino, FS_O_RDONLY, &f), 0);
	return f;
}

/* 1 MiB reads in sequence come from windows; so do 64 KiB ones once a
 * window's worth was read in sequence; a seek back reads again. */
static void test_sequential(void **state)
{
	void *buf = mp_alloc_io(MB, 0);
	fs_file *r = open_ro();
	struct ra ra;
	uint64_t h0, w0;

	(void)state;
	write_all(1);
	ra_init(&ra, r, ino, true);
	h0 = ra_hits;
	w0 = ra_windows;
	for (uint32_t b = 0; b < NBLK; b++)
		read_check(&ra, buf, (uint64_t)b * MB, MB, 1);
	/* all but the first came from windows; at most the windows after
	 * the last read went past the end */
	assert_int_equal(ra_hits - h0, NBLK - 1);
	settle(&ra);
	assert_true(ra_windows - w0 <= NBLK - 1 + RA_BUFS - 1);
	/* back to the start in 64 KiB requests */
	h0 = ra_hits;
	for (uint64_t off = 0; off < 8ull * MB; off += 65536)
		read_check(&ra, buf, off, 65536, 1);
	/* the first 16 (1 MiB) read by themselves, the rest from windows */
	assert_int_equal(ra_hits - h0, 8 * 16 - 16);
	ra_destroy(&ra);
	/* a read-only host's handle: never */
	ra_init(&ra, r, ino, false);
	w0 = ra_windows;
	for (uint32_t b = 0; b < 8; b++)
		read_check(&ra, buf, (uint64_t)b * MB, MB, 1);
	settle(&ra);
	assert_int_equal(ra_windows, w0);
	ra_destroy(&ra);
	fs_close(r);
	mp_free_io(buf, MB);
}

/* Whether a window of ra holds off, filled. */
static bool holds(struct ra *ra, uint64_t off)
{
	bool yes = false;

	pthread_mutex_lock(&ra->m);
	for (unsigned i = 0; i < RA_BUFS; i++)
		yes |= ra->b[i].state == RA_READY && ra->b[i].off <= off &&
		       off < ra->b[i].off + RA_WINDOW;
	pthread_mutex_unlock(&ra->m);
	return yes;
}

/* A new handle read from block `from` to `to - 1` at version 1, 1 MiB at
 * a time, until its windows hold `next`. */
static struct ra *reader_at(fs_file *r, uint32_t from, uint32_t to, void *buf)
{
	struct ra *ra = malloc(sizeof(*ra));

	ra_init(ra, r, ino, true);
	for (uint32_t b = from; b < to; b++)
		read_check(ra, buf, (uint64_t)b * MB, MB, 1);
	settle(ra);
	assert_true(holds(ra, (uint64_t)to * MB));
	return ra;
}

static void reader_done(struct ra *ra)
{
	ra_destroy(ra);
	free(ra);
}

static pthread_mutex_t aio_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t aio_c = PTHREAD_COND_INITIALIZER;

static void aio_cb(struct fs_aio *a)
{
	pthread_mutex_lock(&aio_m);
	*(bool *)a->priv = true;
	pthread_cond_broadcast(&aio_c);
	pthread_mutex_unlock(&aio_m);
}

/* A reader one request at a time has the next blocks in windows; the
 * file changes through another handle; the next read sees the change. */
static void test_changes(void **state)
{
	void *buf = mp_alloc_io(MB, 0);
	unsigned char *z = calloc(1, MB), *p;
	fs_file *r = open_ro();
	struct ra_ref ref;
	struct fs_aio a;
	bool done = false;
	struct ra *ra;

	(void)state;
	write_all(1);

	/* write */
	ra = reader_at(r, 0, 3, buf);
	write_block(3, 2);
	read_check(ra, buf, 3ull * MB, MB, 2);
	reader_done(ra);

	/* asynchronous write (straight to the LUN: the block is written) */
	ra = reader_at(r, 4, 6, buf);
	p = mp_alloc_io(MB, 0);
	fill(p, 6, 3);
	memset(&a, 0, sizeof(a));
	a.write = true;
	a.buf = p;
	a.len = MB;
	a.off = 6ull * MB;
	a.priv = &done;
	a.cb = aio_cb;
	assert_int_equal(fs_aio_submit(w, &a), 0);
	pthread_mutex_lock(&aio_m);
	while (!done)
		pthread_cond_wait(&aio_c, &aio_m);
	pthread_mutex_unlock(&aio_m);
	assert_int_equal(a.result, (ssize_t)MB);
	mp_free_io(p, MB);
	read_check(ra, buf, 6ull * MB, MB, 3);
	reader_done(ra);

	/* truncate: the windows past the new end hold nothing now */
	ra = reader_at(r, 7, 10, buf);
	assert_int_equal(fs_ftruncate(w, 10ull * MB + 4096), 0);
	assert_int_equal(ra_read(ra, buf, MB, 10ull * MB, &ref), 4096);
	ra_put(ra, &ref);
	assert_int_equal(ra_read(ra, buf, MB, 11ull * MB, &ref), 0);
	ra_put(ra, &ref);
	reader_done(ra);

	/* fallocate past the end: zeros where the end was */
	write_all(1);
	assert_int_equal(fs_ftruncate(w, 12ull * MB), 0);
	ra = reader_at(r, 9, 12, buf);      /* a window found the end */
	assert_int_equal(fs_fallocate(w, 12ull * MB, 2ull * MB, false), 0);
	assert_int_equal(ra_read(ra, buf, MB, 12ull * MB, &ref), (ssize_t)MB);
	assert_memory_equal(ref.data, z, MB);
	ra_put(ra, &ref);
	reader_done(ra);

	/* punch */
	write_all(1);
	ra = reader_at(r, 13, 16, buf);
	assert_int_equal(fs_punch(w, 16ull * MB, MB), 0);
	assert_int_equal(ra_read(ra, buf, MB, 16ull * MB, &ref), (ssize_t)MB);
	assert_memory_equal(ref.data, z, MB);
	ra_put(ra, &ref);
	reader_done(ra);

	free(z);
	fs_close(r);
	mp_free_io(buf, MB);
}

/* A running VM writes its disk on the LUN, not through the library: no
 * window is read while the disk is attached, and attaching (ra_bump)
 * makes the windows read before stale. */
static void test_attached(void **state)
{
	void *buf = mp_alloc_io(MB, 0);
	fs_file *r = open_ro();
	struct fs_map_ext e;
	unsigned char *p;
	struct ra ra;
	unsigned n;
	uint64_t w0;
	int fd;

	(void)state;
	write_all(1);
	ra_init(&ra, r, ino, true);
	for (uint32_t b = 0; b < 3; b++)
		read_check(&ra, buf, (uint64_t)b * MB, MB, 1);
	settle(&ra);
	assert_true(ready(&ra) >= RA_BUFS - 1);
	/* vmrun's write: straight to block 3's place on the LUN file */
	__atomic_store_n(&attached, true, __ATOMIC_RELEASE);
	ra_bump();
	assert_int_equal(fs_map(w, 3ull * MB, MB, &e, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(e.state, FS_MAP_EXT_DATA);
	p = mp_alloc_io(MB, 0);
	fill(p, 3, 5);
	fd = open(path, O_RDWR | O_DIRECT);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, p, MB, (off_t)e.lun_off), (ssize_t)MB);
	close(fd);
	mp_free_io(p, MB);
	w0 = ra_windows;
	read_check(&ra, buf, 3ull * MB, MB, 5);
	read_check(&ra, buf, 4ull * MB, MB, 1);
	settle(&ra);
	assert_int_equal(ra_windows, w0);       /* none while attached */
	__atomic_store_n(&attached, false, __ATOMIC_RELEASE);
	ra_bump();
	/* again after (it backed off for RA_DEEP_HOLD requests when it found
	 * windows stale) */
	for (uint32_t b = 5; b < 6 + RA_DEEP_HOLD; b++)
		read_check(&ra, buf, (uint64_t)b * MB, MB, 1);
	settle(&ra);
	assert_true(ra_windows > w0);
	ra_destroy(&ra);
	fs_close(r);
	mp_free_io(buf, MB);
}

/* ra_destroy right after a read that queued windows: it waits for them
 * (the handle's memory goes with it). */
static void test_destroy_in_flight(void **state)
{
	void *buf = mp_alloc_io(MB, 0);

	(void)state;
	write_all(1);
	for (int i = 0; i < 50; i++) {
		fs_file *r = open_ro();
		struct ra *ra = malloc(sizeof(*ra));

		ra_init(ra, r, ino, true);
		read_check(ra, buf, (uint64_t)(i % 8) * MB, MB, 1);
		ra_destroy(ra);
		memset(ra, 0x5a, sizeof(*ra));
		free(ra);
		fs_close(r);
	}
	mp_free_io(buf, MB);
}

/* Readers and a writer at once on one handle, as FUSE workers: a read
 * never returns a 4 KiB older than a write of it that had finished
 * before the read began (nor garbage). */
static uint32_t done_ver[NBLK];     /* written and acknowledged, atomic */
static bool stop;
static struct ra shared;

static void *writer(void *arg)
{
	unsigned seed = 1;
	uint32_t v = 2;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		uint32_t b = (uint32_t)(rand_r(&seed) % NBLK);

		write_block(b, v);
		__atomic_store_n(&done_ver[b], v, __ATOMIC_RELEASE);
		v++;
		usleep(2000);
	}
	return NULL;
}

static void *reader(void *arg)
{
	void *buf = mp_alloc_io(MB, 0);
	unsigned seed = (unsigned)(uintptr_t)arg;
	uint64_t off = 0;
	size_t len = (uintptr_t)arg == 1 ? MB : 256 * 1024;

	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		uint32_t before[NBLK];
		struct ra_ref ref;
		ssize_t n;

		for (unsigned b = 0; b < NBLK; b++)
			before[b] = __atomic_load_n(&done_ver[b], __ATOMIC_ACQUIRE);
		n = ra_read(&shared, buf, len, off, &ref);
		assert_int_equal(n, (ssize_t)len);
		for (size_t o = 0; o < len; o += 4096) {
			int64_t got = chunk_version((const unsigned char *)ref.data + o,
						    off + o);

			if (got < (int64_t)before[(off + o) / MB])
				fail_msg("offset %llu: version %lld after %u was "
					 "written", (unsigned long long)(off + o),
					 (long long)got, before[(off + o) / MB]);
		}
		ra_put(&shared, &ref);
		/* mostly in sequence, now and then elsewhere */
		off += len;
		if (off >= (uint64_t)NBLK * MB || rand_r(&seed) % 50 == 0)
			off = (uint64_t)(rand_r(&seed) % (NBLK * 4)) * (MB / 4) / len * len;
	}
	mp_free_io(buf, MB);
	return NULL;
}

static void test_concurrent(void **state)
{
	fs_file *r = open_ro();
	pthread_t tw, tr[2];
	uint64_t h0 = ra_hits;

	(void)state;
	write_all(1);
	for (unsigned b = 0; b < NBLK; b++)
		done_ver[b] = 1;
	ra_init(&shared, r, ino, true);
	stop = false;
	pthread_create(&tr[0], NULL, reader, (void *)(uintptr_t)1);
	sleep(1);                   /* a reader alone: read-ahead */
	pthread_create(&tw, NULL, writer, NULL);
	pthread_create(&tr[1], NULL, reader, (void *)(uintptr_t)2);
	sleep(2);
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	pthread_join(tw, NULL);
	pthread_join(tr[0], NULL);
	pthread_join(tr[1], NULL);
	ra_destroy(&shared);
	fs_close(r);
	assert_true(ra_hits > h0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequential),
		cmocka_unit_test(test_changes),
		cmocka_unit_test(test_attached),
		cmocka_unit_test(test_destroy_in_flight),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
