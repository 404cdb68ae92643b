/*
 * mp_iscsi_check - exercise an iSCSI LUN through the device layer.
 *
 *   mp_iscsi_check URL basic CAPACITY
 *       identity, geometry and capabilities (as stock tgt with
 *       thin_provisioning=1 offers them), scatter-gather I/O with many
 *       requests in flight, FUA, flush, discard, compare-and-write refusal,
 *       SCSI-2 reservations between two I_T nexuses, persistent
 *       reservations.  Writes all over the LUN.
 *   mp_iscsi_check URL info
 *       open and print identity and capabilities; when the open fails,
 *       print "open failed: <error>" and exit 4.
 *   mp_iscsi_check URL stream SECONDS [TIMEOUT_MS]
 *       keeps QD writes + verifying reads in flight for SECONDS, printing
 *       progress each second.  Exit 0 when every I/O succeeded and every
 *       read matched; 3 when I/O failed (the errors are listed; data
 *       mismatches are always exit 1).  For reconnect tests.
 *
 * Exit status: 0 pass, 1 check failed, 2 usage, 3 (stream) I/O errors,
 * 4 (info) open failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "multipath/mp.h"

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, \
				#cond);                                      \
			fprintf(stderr, __VA_ARGS__);                        \
			fprintf(stderr, "\n");                               \
			exit(1);                                             \
		}                                                            \
	} while (0)

#define CHECK_RET(expr, want)                                                \
	do {                                                                 \
		long long r_ = (long long)(expr);                            \
		CHECK(r_ == (long long)(want), "got %lld (%s), want %lld",   \
		      r_, r_ < 0 ? mp_strerror((int)r_) : "ok",              \
		      (long long)(want));                                    \
	} while (0)

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

static void *xmalloc(size_t len)
{
	void *p = malloc(len ? len : 1);

	if (!p)
		abort();
	return p;
}

static mp_lun *open_lun(const char *url, unsigned timeout_ms)
{
	struct mp_open_opts o = { .timeout_ms = timeout_ms, .queue_depth = 128 };
	mp_lun *lun = NULL;
	int ret = mp_lun_open(url, &o, &lun);

	CHECK(ret == 0, "mp_lun_open(%s): %s", url, mp_strerror(ret));
	return lun;
}

/* ---- basic ------------------------------------------------------------------ */

static void check_info(mp_lun *a, mp_lun *b, uint64_t capacity)
{
	struct mp_lun_info ia, ib;

	mp_lun_get_info(a, &ia);
	mp_lun_get_info(b, &ib);
	say("id=%s serial=%s vendor=%s product=%s caps=0x%x sectors=%u/%u "
	    "capacity=%" PRIu64 " max_caw=%u", ia.id, ia.serial, ia.vendor,
	    ia.product, ia.caps, ia.logical_sector, ia.physical_sector,
	    ia.capacity, ia.max_caw_sectors);
	CHECK(ia.capacity == capacity, "capacity %" PRIu64, ia.capacity);
	CHECK(ia.logical_sector == 512, "sector %u", ia.logical_sector);
	CHECK(ia.physical_sector >= ia.logical_sector, "physical %u",
	      ia.physical_sector);
	CHECK(ia.id[0] != '\0', "empty id");
	CHECK(!strcmp(ia.id, ib.id), "ids differ: %s vs %s", ia.id, ib.id);
	CHECK(!strcmp(ia.serial, ib.serial), "serials differ");
	CHECK(!strcmp(ia.vendor, "IET"), "vendor '%s'", ia.vendor);
	CHECK(!strcmp(ia.backend, "iscsi"), "backend '%s'", ia.backend);
	CHECK(ia.caps & MP_CAP_FUA, "no FUA");
	CHECK(!(ia.caps & MP_CAP_ATS), "ATS reported (tgt refuses COMPARE "
	      "AND WRITE)");
	CHECK(!(ia.caps & MP_CAP_ATS_EMULATED), "emulated ATS on iSCSI");
	CHECK(ia.caps & MP_CAP_RESERVE6, "no RESERVE6");
	CHECK(ia.caps & MP_CAP_DISCARD, "no DISCARD (thin_provisioning=1)");
	CHECK(ia.caps & MP_CAP_PR, "no persistent reservations");
	CHECK_RET(mp_lun_test_ready(a), 0);
}

struct sg_ctx {
	pthread_mutex_t m;
	pthread_cond_t c;
	unsigned left;
	int first_err;
};

static void sg_done(struct mp_io *io)
{
	struct sg_ctx *s = io->priv;
	int want = (int)io->length;

	pthread_mutex_lock(&s->m);
	if (io->result != want && !s->first_err)
		s->first_err = io->result < 0 ? io->result : -EIO;
	if (--s->left == 0)
		pthread_cond_signal(&s->c);
	pthread_mutex_unlock(&s->m);
}

static void sg_wait(struct sg_ctx *s)
{
	pthread_mutex_lock(&s->m);
	while (s->left)
		pthread_cond_wait(&s->c, &s->m);
	pthread_mutex_unlock(&s->m);
}

/* NIO requests of 3 iovecs each (odd lengths, unaligned addresses), all
 * in flight at once; then read back with a different split and compare. */
#define NIO 256
#define IOSZ 8192
static void check_sg_io(mp_lun *lun)
{
	static struct mp_io ios[NIO];
	static struct iovec iov[NIO][3];
	unsigned char *wbuf = xmalloc((size_t)NIO * IOSZ + 64);
	unsigned char *rbuf = xmalloc((size_t)NIO * IOSZ + 64);
	unsigned char *w = wbuf + 3, *r = rbuf + 5;   /* unaligned on purpose */
	struct sg_ctx s = { .m = PTHREAD_MUTEX_INITIALIZER,
			    .c = PTHREAD_COND_INITIALIZER, .left = NIO };
	uint64_t t0 = now_ms();

	for (int i = 0; i < NIO; i++) {
		unsigned char *p = w + (size_t)i * IOSZ;

		fill(p, IOSZ, 1000 + (uint64_t)i);
		iov[i][0] = (struct iovec){ p, 100 };
		iov[i][1] = (struct iovec){ p + 100, 3000 };
		iov[i][2] = (struct iovec){ p + 3100, IOSZ - 3100 };
		/* every other request lands in reverse order on the disk */
		mp_io_prep_write(&ios[i], iov[i], 3,
				 (uint64_t)(i % 2 ? NIO - i : i) * IOSZ + 1048576,
				 0);
		ios[i].cb = sg_done;
		ios[i].priv = &s;
	}
	for (int i = 0; i < NIO; i++)
		CHECK_RET(mp_io_submit(lun, &ios[i]), 0);
	sg_wait(&s);
	CHECK(s.first_err == 0, "async write: %s", mp_strerror(s.first_err));

	s.left = NIO;
	for (int i = 0; i < NIO; i++) {
		unsigned char *p = r + (size_t)i * IOSZ;

		memset(p, 0xee, IOSZ);
		iov[i][0] = (struct iovec){ p, 4096 };
		iov[i][1] = (struct iovec){ p + 4096, 1 };
		iov[i][2] = (struct iovec){ p + 4097, IOSZ - 4097 };
		mp_io_prep_read(&ios[i], iov[i], 3,
				(uint64_t)(i % 2 ? NIO - i : i) * IOSZ + 1048576);
		ios[i].cb = sg_done;
		ios[i].priv = &s;
	}
	for (int i = 0; i < NIO; i++)
		CHECK_RET(mp_io_submit(lun, &ios[i]), 0);
	sg_wait(&s);
	CHECK(s.first_err == 0, "async read: %s", mp_strerror(s.first_err));
	for (int i = 0; i < NIO; i++)
		CHECK(!memcmp(r + (size_t)i * IOSZ, w + (size_t)i * IOSZ, IOSZ),
		      "request %d read back different data", i);
	say("sg: %d x %d bytes written and verified, %d in flight, %" PRIu64
	    " ms", NIO, IOSZ, NIO, now_ms() - t0);
	free(wbuf);
	free(rbuf);
}

/* One large request (split into several commands under
 * MP_ISCSI_TEST_LIMIT), FUA, flush. */
static void check_big_fua_flush(mp_lun *lun)
{
	size_t len = 4u << 20;
	unsigned char *w = xmalloc(len), *r = xmalloc(len);
	struct iovec wv[2] = { { w, 512 * 3 }, { w + 512 * 3, len - 512 * 3 } };

	fill(w, len, 77);
	CHECK_RET(mp_lun_pwritev(lun, wv, 2, 8u << 20, 0), (long long)len);
	CHECK_RET(mp_lun_pread(lun, r, len, 8u << 20), (long long)len);
	CHECK(!memcmp(w, r, len), "4 MiB request read back different data");

	fill(w, 4096, 78);
	CHECK_RET(mp_lun_pwrite(lun, w, 4096, 4096, MP_IO_FUA), 4096);
	CHECK_RET(mp_lun_pread(lun, r, 4096, 4096), 4096);
	CHECK(!memcmp(w, r, 4096), "FUA write read back different data");
	CHECK_RET(mp_lun_flush(lun), 0);
	say("big/fua/flush: ok");
	free(w);
	free(r);
}

static void check_discard(mp_lun *lun)
{
	size_t len = 1u << 20;
	uint64_t off = 16u << 20;
	unsigned char *w = xmalloc(len), *r = xmalloc(len), *z = calloc(1, len);
	struct mp_lun_info info;

	mp_lun_get_info(lun, &info);
	fill(w, len, 99);
	CHECK_RET(mp_lun_pwrite(lun, w, len, off, 0), (long long)len);
	CHECK_RET(mp_lun_discard(lun, off + 4096, len / 2), 0);
	CHECK_RET(mp_lun_pread(lun, r, len, off), (long long)len);
	CHECK(!memcmp(r, w, 4096), "data before the discarded range changed");
	CHECK(!memcmp(r + 4096 + len / 2, w + 4096 + len / 2, len / 2 - 4096),
	      "data after the discarded range changed");
	if (info.caps & MP_CAP_DISCARD_ZEROES)
		CHECK(!memcmp(r + 4096, z, len / 2),
		      "discarded range does not read back as zeros");
	say("discard: ok (reads back %s)",
	    !memcmp(r + 4096, z, len / 2) ? "zeros" : "old data");
	free(w);
	free(r);
	free(z);
}

static void check_caw(mp_lun *lun)
{
	unsigned char a[512] = { 0 }, b[512] = { 1 };

	CHECK_RET(mp_lun_caw(lun, 0, a, b, 512, NULL), -EOPNOTSUPP);
	say("caw: refused with EOPNOTSUPP as it should be");
}

static void check_reserve6(mp_lun *a, mp_lun *b)
{
	unsigned char buf[512];

	fill(buf, sizeof(buf), 5);
	CHECK_RET(mp_lun_reserve(a), 0);
	CHECK_RET(mp_lun_pwrite(a, buf, 512, 0, 0), 512);
	CHECK_RET(mp_lun_pwrite(b, buf, 512, 0, 0), -MP_E_RESCONFLICT);
	CHECK_RET(mp_lun_pread(b, buf, 512, 0), -MP_E_RESCONFLICT);
	CHECK_RET(mp_lun_reserve(b), -MP_E_RESCONFLICT);
	CHECK_RET(mp_lun_reserve(a), 0);   /* again: the holder may */
	CHECK_RET(mp_lun_release(a), 0);
	CHECK_RET(mp_lun_pwrite(b, buf, 512, 0, 0), 512);
	CHECK_RET(mp_lun_reserve(b), 0);
	CHECK_RET(mp_lun_pwrite(a, buf, 512, 0, 0), -MP_E_RESCONFLICT);
	CHECK_RET(mp_lun_release(b), 0);
	CHECK_RET(mp_lun_release(b), 0);   /* releasing nothing is fine */
	CHECK_RET(mp_lun_pwrite(a, buf, 512, 0, 0), 512);
	say("reserve6: second nexus blocked while reserved, free after release");
}

static int pr_do(mp_lun *lun, enum mp_pr_action act, uint64_t key,
		 uint64_t sa_key, enum mp_pr_type type, struct mp_pr *out)
{
	struct mp_pr pr = { .action = act, .key = key, .sa_key = sa_key,
			    .type = type };
	int ret = mp_lun_pr(lun, &pr);

	if (out)
		*out = pr;
	return ret;
}

static bool has_key(const struct mp_pr *pr, uint64_t key)
{
	for (unsigned i = 0; i < pr->nkeys; i++)
		if (pr->keys[i] == key)
			return true;
	return false;
}

static void check_pr(mp_lun *a, mp_lun *b)
{
	const uint64_t ka = 0xa1a1a1a1a1a1a1a1ull, kb = 0xb2b2b2b2b2b2b2b2ull;
	unsigned char buf[512];
	struct mp_pr pr;
	uint32_t gen;
	int ret;

	fill(buf, sizeof(buf), 6);
	/* Leftovers of an earlier run on the same target. */
	pr_do(a, MP_PR_REGISTER_IGNORE, 0, ka, 0, NULL);
	pr_do(a, MP_PR_CLEAR, ka, 0, 0, NULL);

	CHECK_RET(pr_do(a, MP_PR_REGISTER, 0, ka, 0, NULL), 0);
	CHECK_RET(pr_do(b, MP_PR_REGISTER, 0, kb, 0, NULL), 0);
	CHECK_RET(pr_do(a, MP_PR_READ_KEYS, 0, 0, 0, &pr), 0);
	CHECK(pr.nkeys == 2 && has_key(&pr, ka) && has_key(&pr, kb),
	      "READ KEYS: %u keys", pr.nkeys);
	gen = pr.generation;

	CHECK_RET(pr_do(a, MP_PR_RESERVE, ka, 0, MP_PR_WRITE_EXCLUSIVE, NULL), 0);
	CHECK_RET(pr_do(b, MP_PR_READ_RESERVATION, 0, 0, 0, &pr), 0);
	CHECK(pr.reserved && pr.holder_key == ka &&
	      pr.holder_type == MP_PR_WRITE_EXCLUSIVE,
	      "READ RESERVATION: reserved=%d key=%" PRIx64 " type=%d",
	      pr.reserved, pr.holder_key, pr.holder_type);
	CHECK_RET(mp_lun_pwrite(a, buf, 512, 512, 0), 512);
	CHECK_RET(mp_lun_pwrite(b, buf, 512, 512, 0), -MP_E_RESCONFLICT);
	CHECK_RET(mp_lun_pread(b, buf, 512, 512), 512);   /* reads are fine */

	CHECK_RET(pr_do(a, MP_PR_RELEASE, ka, 0, MP_PR_WRITE_EXCLUSIVE, NULL), 0);
	CHECK_RET(pr_do(a, MP_PR_READ_RESERVATION, 0, 0, 0, &pr), 0);
	CHECK(!pr.reserved, "still reserved after RELEASE");
	CHECK_RET(mp_lun_pwrite(b, buf, 512, 512, 0), 512);

	/* b takes over a's registration (what breaking a dead host's
	 * reservation does). */
	CHECK_RET(pr_do(a, MP_PR_RESERVE, ka, 0, MP_PR_WRITE_EXCLUSIVE, NULL), 0);
	CHECK_RET(pr_do(b, MP_PR_PREEMPT, kb, ka, MP_PR_WRITE_EXCLUSIVE, NULL), 0);
	CHECK_RET(pr_do(b, MP_PR_READ_KEYS, 0, 0, 0, &pr), 0);
	CHECK(pr.nkeys == 1 && has_key(&pr, kb), "after PREEMPT: %u keys",
	      pr.nkeys);
	CHECK(pr.generation != gen, "generation did not move");
	CHECK_RET(pr_do(b, MP_PR_READ_RESERVATION, 0, 0, 0, &pr), 0);
	CHECK(pr.reserved && pr.holder_key == kb, "PREEMPT did not move the "
	      "reservation (holder %" PRIx64 ")", pr.holder_key);
	CHECK_RET(mp_lun_pwrite(a, buf, 512, 512, 0), -MP_E_RESCONFLICT);

	ret = pr_do(b, MP_PR_PREEMPT_ABORT, kb, kb, MP_PR_WRITE_EXCLUSIVE, NULL);
	say("pr: PREEMPT AND ABORT answered %d (%s)", ret, mp_strerror(ret));

	CHECK_RET(pr_do(b, MP_PR_CLEAR, kb, 0, 0, NULL), 0);
	CHECK_RET(pr_do(a, MP_PR_READ_KEYS, 0, 0, 0, &pr), 0);
	CHECK(pr.nkeys == 0, "after CLEAR: %u keys", pr.nkeys);
	CHECK_RET(pr_do(a, MP_PR_READ_RESERVATION, 0, 0, 0, &pr), 0);
	CHECK(!pr.reserved, "reserved after CLEAR");
	CHECK_RET(mp_lun_pwrite(a, buf, 512, 512, 0), 512);
	say("pr: register, read keys, reserve, read reservation, release, "
	    "preempt, clear: ok");
}

static int run_basic(const char *url, uint64_t capacity)
{
	mp_lun *a = open_lun(url, 5000), *b = open_lun(url, 5000);

	check_info(a, b, capacity);
	check_sg_io(a);
	check_big_fua_flush(a);
	check_discard(a);
	check_caw(a);
	check_reserve6(a, b);
	check_pr(a, b);
	mp_lun_close(b);
	mp_lun_close(a);
	say("basic: all checks passed");
	return 0;
}

/* ---- stream ------------------------------------------------------------------ */

#define QD 16
#define SLOT_BYTES 65536

struct slot {
	struct mp_io io;
	struct iovec iov;
	unsigned char *buf, *want;
	uint64_t off, seq;
	bool reading;
};

static struct {
	pthread_mutex_t m;
	pthread_cond_t c;
	mp_lun *lun;
	bool stopping;
	unsigned busy;
	uint64_t ios, errors, mismatches;
	int errs[8];
	unsigned nerrs;
} st = { .m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER };

static void slot_start(struct slot *s);

static void slot_done(struct mp_io *io)
{
	struct slot *s = io->priv;
	bool go;

	pthread_mutex_lock(&st.m);
	st.ios++;
	if (io->result != (int)SLOT_BYTES) {
		st.errors++;
		if (st.nerrs < 8)
			st.errs[st.nerrs++] = io->result;
	} else if (s->reading && memcmp(s->buf, s->want, SLOT_BYTES)) {
		st.mismatches++;
	}
	go = !st.stopping;
	if (!go && --st.busy == 0)
		pthread_cond_broadcast(&st.c);
	pthread_mutex_unlock(&st.m);
	if (!go)
		return;
	/* write, read back, write the next pattern, ...  A failed write is
	 * followed by another write (its content is unknown). */
	if (s->reading || io->result != (int)SLOT_BYTES) {
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
		memset(s->buf, 0, SLOT_BYTES);
		s->iov = (struct iovec){ s->buf, SLOT_BYTES };
		mp_io_prep_read(&s->io, &s->iov, 1, s->off);
	} else {
		fill(s->want, SLOT_BYTES, s->off ^ (s->seq << 32));
		s->iov = (struct iovec){ s->want, SLOT_BYTES };
		mp_io_prep_write(&s->io, &s->iov, 1, s->off, 0);
	}
	s->io.cb = slot_done;
	s->io.priv = s;
	ret = mp_io_submit(st.lun, &s->io);
	if (ret) {
		fprintf(stderr, "submit refused: %s\n", mp_strerror(ret));
		exit(1);
	}
}

static int run_stream(const char *url, unsigned seconds, unsigned timeout_ms)
{
	static struct slot slots[QD];
	uint64_t t0 = now_ms(), last = 0;
	int rc = 0;

	st.lun = open_lun(url, timeout_ms);
	for (int i = 0; i < QD; i++) {
		slots[i].buf = xmalloc(SLOT_BYTES);
		slots[i].want = xmalloc(SLOT_BYTES);
		slots[i].off = (uint64_t)i * SLOT_BYTES;
	}
	st.busy = QD;
	for (int i = 0; i < QD; i++)
		slot_start(&slots[i]);
	while (now_ms() - t0 < seconds * 1000ull) {
		usleep(100000);
		if (now_ms() - last >= 1000) {
			last = now_ms();
			pthread_mutex_lock(&st.m);
			say("t=%.1fs ios=%" PRIu64 " errors=%" PRIu64
			    " mismatches=%" PRIu64, (last - t0) / 1000.0, st.ios,
			    st.errors, st.mismatches);
			pthread_mutex_unlock(&st.m);
		}
	}
	pthread_mutex_lock(&st.m);
	st.stopping = true;
	while (st.busy)
		pthread_cond_wait(&st.c, &st.m);
	pthread_mutex_unlock(&st.m);
	say("drained after %.1fs", (now_ms() - t0) / 1000.0);
	mp_lun_close(st.lun);
	say("closed after %.1fs: ios=%" PRIu64 " errors=%" PRIu64
	    " mismatches=%" PRIu64, (now_ms() - t0) / 1000.0, st.ios,
	    st.errors, st.mismatches);
	for (unsigned i = 0; i < st.nerrs; i++)
		say("error %u: %d (%s)", i, st.errs[i], mp_strerror(st.errs[i]));
	if (st.mismatches)
		rc = 1;
	else if (st.errors)
		rc = 3;
	for (int i = 0; i < QD; i++) {
		free(slots[i].buf);
		free(slots[i].want);
	}
	return rc;
}

static int run_info(const char *url)
{
	struct mp_open_opts o = { .timeout_ms = 3000 };
	struct mp_lun_info i;
	mp_lun *lun;
	int ret = mp_lun_open(url, &o, &lun);

	if (ret) {
		say("open failed: %s (%d)", mp_strerror(ret), ret);
		return 4;
	}
	mp_lun_get_info(lun, &i);
	say("id=%s serial=%s vendor=%s product=%s capacity=%" PRIu64
	    " sectors=%u/%u max_caw=%u", i.id, i.serial, i.vendor, i.product,
	    i.capacity, i.logical_sector, i.physical_sector, i.max_caw_sectors);
	say("caps:%s%s%s%s%s%s", i.caps & MP_CAP_FUA ? " fua" : "",
	    i.caps & MP_CAP_DISCARD ? " discard" : "",
	    i.caps & MP_CAP_DISCARD_ZEROES ? " discard-zeroes" : "",
	    i.caps & MP_CAP_ATS ? " ats" : "",
	    i.caps & MP_CAP_RESERVE6 ? " reserve6" : "",
	    i.caps & MP_CAP_PR ? " pr" : "");
	mp_lun_close(lun);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[2], "basic"))
		return run_basic(argv[1], strtoull(argv[3], NULL, 0));
	if (argc >= 3 && !strcmp(argv[2], "info"))
		return run_info(argv[1]);
	if (argc >= 4 && !strcmp(argv[2], "stream"))
		return run_stream(argv[1], (unsigned)atoi(argv[3]),
				  argc >= 5 ? (unsigned)atoi(argv[4]) : 10000);
	fprintf(stderr, "usage: mp_iscsi_check URL basic CAPACITY\n"
			"       mp_iscsi_check URL info\n"
			"       mp_iscsi_check URL stream SECONDS [TIMEOUT_MS]\n");
	return 2;
}
