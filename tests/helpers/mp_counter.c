/*
 * mp_counter - a shared counter in sector 0 of a LUN, incremented by many
 * threads of many processes; the final value shows whether the device
 * layer's mutual exclusion holds.
 *
 *   mp_counter SPEC init                   write a zero counter
 *   mp_counter SPEC get                    print the counter
 *   mp_counter SPEC caw THREADS ITERS      read, +1, compare-and-write;
 *                                          retry on miscompare
 *   mp_counter SPEC reserve THREADS ITERS  SCSI-2 RESERVE, read, +1, write,
 *                                          RELEASE
 *
 * In reserve mode the threads of one process share one I_T nexus, and a
 * SCSI reservation does not exclude a nexus from itself, so they also
 * serialise on a mutex; the reservation excludes the other processes.
 *
 * Sector 0: "VMFSCNT1" then the count, 64-bit little-endian.
 * Exit status: 0 ok, 1 error, 2 usage, 77 the LUN lacks what MODE needs.
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

#define MAGIC "VMFSCNT1"

static mp_lun *lun;
static uint32_t sector;
static unsigned iters;
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t conflicts, miscompares;   /* under reserve_lock / atomics */

static void die(const char *what, int err)
{
	fprintf(stderr, "mp_counter: %s: %s\n", what, mp_strerror(err));
	exit(1);
}

static uint64_t get_count(const unsigned char *s)
{
	uint64_t v = 0;

	if (memcmp(s, MAGIC, 8)) {
		fprintf(stderr, "mp_counter: sector 0 holds no counter "
				"(run init first)\n");
		exit(1);
	}
	for (int i = 7; i >= 0; i--)
		v = v << 8 | s[8 + i];
	return v;
}

static void put_count(unsigned char *s, uint64_t v)
{
	memset(s, 0, sector);
	memcpy(s, MAGIC, 8);
	for (int i = 0; i < 8; i++)
		s[8 + i] = (unsigned char)(v >> (8 * i));
}

static void read0(unsigned char *buf)
{
	ssize_t r = mp_lun_pread(lun, buf, sector, 0);

	if (r != (ssize_t)sector)
		die("read sector 0", r < 0 ? (int)r : -EIO);
}

static void pause_us(unsigned max_us)
{
	struct timespec ts = { 0, (long)(200 + (unsigned)rand() % max_us) * 1000L };

	nanosleep(&ts, NULL);
}

static void *caw_thread(void *arg)
{
	unsigned char *cur = malloc(sector), *next = malloc(sector);

	if (!cur || !next)
		die("malloc", -ENOMEM);
	read0(cur);
	for (unsigned i = 0; i < iters; i++) {
		for (;;) {
			int r;

			put_count(next, get_count(cur) + 1);
			r = mp_lun_caw(lun, 0, cur, next, sector, cur);
			if (r == 0) {
				memcpy(cur, next, sector);
				break;
			}
			if (r != -MP_E_MISCOMPARE)
				die("compare-and-write", r);
			/* cur now holds what another writer put there */
			__atomic_add_fetch(&miscompares, 1, __ATOMIC_RELAXED);
		}
	}
	free(cur);
	free(next);
	return NULL;
}

static void *reserve_thread(void *arg)
{
	unsigned char *buf = malloc(sector);
	ssize_t w;

	if (!buf)
		die("malloc", -ENOMEM);
	for (unsigned i = 0; i < iters; i++) {
		int r;

		pthread_mutex_lock(&reserve_lock);
		while ((r = mp_lun_reserve(lun)) == -MP_E_RESCONFLICT) {
			/* Another process holds it for one read-modify-write. */
			conflicts++;
			pause_us(800);
		}
		if (r)
			die("reserve", r);
		read0(buf);
		put_count(buf, get_count(buf) + 1);
		w = mp_lun_pwrite(lun, buf, sector, 0, 0);
		if (w != (ssize_t)sector)
			die("write sector 0", w < 0 ? (int)w : -EIO);
		r = mp_lun_release(lun);
		if (r)
			die("release", r);
		pthread_mutex_unlock(&reserve_lock);
	}
	free(buf);
	return NULL;
}

static int run(const char *mode, unsigned nthreads)
{
	struct mp_lun_info info;
	void *(*fn)(void *);
	pthread_t *t;

	mp_lun_get_info(lun, &info);
	if (!strcmp(mode, "caw")) {
		if (!(info.caps & (MP_CAP_ATS | MP_CAP_ATS_EMULATED))) {
			fprintf(stderr, "mp_counter: %s has no compare-and-write\n",
				mp_lun_spec(lun));
			return 77;
		}
		fn = caw_thread;
	} else {
		if (!(info.caps & MP_CAP_RESERVE6)) {
			fprintf(stderr, "mp_counter: %s has no SCSI-2 "
				"reservations\n", mp_lun_spec(lun));
			return 77;
		}
		fn = reserve_thread;
	}
	t = calloc(nthreads, sizeof(*t));
	if (!t)
		die("calloc", -ENOMEM);
	for (unsigned i = 0; i < nthreads; i++) {
		int r = pthread_create(&t[i], NULL, fn, NULL);

		if (r)
			die("pthread_create", -r);
	}
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	free(t);
	printf("mp_counter: %u x %u increments done (%" PRIu64 " miscompares, %"
	       PRIu64 " reservation conflicts)\n", nthreads, iters,
	       miscompares, conflicts);
	return 0;
}

int main(int argc, char **argv)
{
	struct mp_open_opts o = { .timeout_ms = 10000 };
	struct mp_lun_info info;
	unsigned char *buf;
	int ret = 0;

	if (argc < 3 || (strcmp(argv[2], "init") && strcmp(argv[2], "get") &&
			 ((strcmp(argv[2], "caw") && strcmp(argv[2], "reserve")) ||
			  argc < 5))) {
		fprintf(stderr, "usage: mp_counter SPEC init|get\n"
				"       mp_counter SPEC caw|reserve THREADS ITERS\n");
		return 2;
	}
	srand((unsigned)getpid());
	ret = mp_lun_open(argv[1], &o, &lun);
	if (ret)
		die(argv[1], ret);
	mp_lun_get_info(lun, &info);
	sector = info.logical_sector;
	buf = malloc(sector);
	if (!buf)
		die("malloc", -ENOMEM);
	if (!strcmp(argv[2], "init")) {
		ssize_t w;

		put_count(buf, 0);
		w = mp_lun_pwrite(lun, buf, sector, 0, MP_IO_FUA);
		if (w != (ssize_t)sector)
			die("write sector 0", w < 0 ? (int)w : -EIO);
	} else if (!strcmp(argv[2], "get")) {
		read0(buf);
		printf("%" PRIu64 "\n", get_count(buf));
	} else {
		iters = (unsigned)strtoul(argv[4], NULL, 0);
		ret = run(argv[2], (unsigned)strtoul(argv[3], NULL, 0));
	}
	free(buf);
	mp_lun_close(lun);
	return ret;
}
