/*
 * test_cbt - changed-block tracking (cbt/): change IDs, the tracking
 * file's pages, and the tracker against a shadow model of what was really
 * written (every query a superset of the truth, within a block of it),
 * through close and reopen, unclean stops, damaged pages and a disk grown
 * past 128 GiB.  The tracking file is a plain sparse file here.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cbt/cbt.h"
#include "cbt/ondisk.h"
#include "testutil.h"

/* ---- a tracking file on a plain fd ---------------------------------------- */

static int fd_pread(void *arg, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(*(int *)arg, buf, len, (off_t)off);

	if (n < 0)
		return -errno;
	memset((char *)buf + n, 0, len - (size_t)n);
	return 0;
}

static int fd_pwrite(void *arg, const void *buf, size_t len, uint64_t off)
{
	return pwrite(*(int *)arg, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
}

static int fd_sync(void *arg)
{
	return fsync(*(int *)arg) ? -errno : 0;
}

static int fd_truncate(void *arg, uint64_t size)
{
	return ftruncate(*(int *)arg, (off_t)size) ? -errno : 0;
}

static int64_t fd_next_data(void *arg, uint64_t off)
{
	off_t r = lseek(*(int *)arg, (off_t)off, SEEK_DATA);

	return r < 0 ? -errno : r;
}

static int ctk_fd = -1;
static char ctk_path[512];
static struct cbt_io io = { fd_pread, fd_pwrite, fd_sync, fd_truncate,
			    fd_next_data, &ctk_fd };

static int setup(void **state)
{
	(void)state;
	tu_make_file(ctk_path, sizeof(ctk_path), "test_cbt_ctk", 0);
	ctk_fd = open(ctk_path, O_RDWR);
	return ctk_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	close(ctk_fd);
	unlink(ctk_path);
	return 0;
}

/* a writer that dies: the memory goes, nothing is written */
static void crash(cbt_disk *d)
{
	cbt_set_io(d, NULL);
	cbt_close(d);
}

/* ---- change IDs ------------------------------------------------------------ */

static void test_id(void **state)
{
	struct cbt_id id, back;
	char s[CBT_ID_LEN];
	static const char *const bad[] = {
		"", "*", "52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08",
		"52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/",
		"52 de c0 38 6a 25 9e 60 3c 8a 8c 1b 8e 90 67 08/4",
		"52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 0/4",
		"52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 0g/4",
		"52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/-4",
		"52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/4x",
		"52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/04",
		"52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/4294967296",
		"52  de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/4",
	};

	(void)state;
	assert_int_equal(cbt_id_parse("52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e "
				      "90 67 08/4", &id), 0);
	assert_int_equal(id.uuid[0], 0x52);
	assert_int_equal(id.uuid[8], 0x3c);
	assert_int_equal(id.uuid[15], 0x08);
	assert_int_equal(id.seq, 4);
	cbt_id_format(&id, s);
	assert_string_equal(s, "52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/4");
	assert_int_equal(cbt_id_parse("52 DE C0 38 6A 25 9E 60-3C 8A 8C 1B 8E "
				      "90 67 08/4294967295", &back), 0);
	assert_memory_equal(back.uuid, id.uuid, 16);
	assert_int_equal(back.seq, 4294967295u);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cbt_id_parse(bad[i], &back), -CBT_E_BADID);
	for (int i = 0; i < 1000; i++) {
		tu_fill(id.uuid, 16, (uint32_t)i);
		id.seq = (uint32_t)i * 4294967u;
		cbt_id_format(&id, s);
		assert_int_equal(cbt_id_parse(s, &back), 0);
		assert_memory_equal(&back, &id, sizeof(id));
	}
}

/* ---- pages ----------------------------------------------------------------- */

static void test_pages(void **state)
{
	unsigned char *p = tu_alloc(CBT_PAGE);
	struct cbt_hdr h = { .state = CBT_STATE_DIRTY, .block_shift = 16,
			     .seq = 9, .reset_seq = 3, .epoch = 2,
			     .disk_size = 1ull << 40, .gen = 77,
			     .reset_reason = CBT_REASON_UNCLEAN };
	struct cbt_hdr back;
	uint32_t seq[CBT_LEAF_BLOCKS], got[CBT_LEAF_BLOCKS];
	bool empty;

	(void)state;
	tu_fill(h.uuid, 16, 5);
	cbt_hdr_out(&h, p);
	assert_int_equal(cbt_hdr_in(p, &back), 0);
	assert_memory_equal(back.uuid, h.uuid, 16);
	assert_int_equal(back.seq, 9);
	assert_int_equal(back.reset_seq, 3);
	assert_int_equal(back.disk_size, 1ull << 40);
	assert_int_equal(back.gen, 77);
	p[0x30] ^= 1;                                   /* any bit */
	assert_int_equal(cbt_hdr_in(p, &back), -CBT_E_CHECKSUM);
	p[0x30] ^= 1;
	p[0] = 'X';
	assert_int_equal(cbt_hdr_in(p, &back), -CBT_E_BADMAGIC);
	h.reset_seq = 10;                               /* above seq */
	cbt_hdr_out(&h, p);
	assert_int_equal(cbt_hdr_in(p, &back), -CBT_E_CORRUPT);
	h.reset_seq = 3;
	h.incompat = 1;                                 /* unknown feature */
	cbt_hdr_out(&h, p);
	assert_int_equal(cbt_hdr_in(p, &back), -CBT_E_VERSION);

	memset(p, 0, CBT_PAGE);
	assert_int_equal(cbt_leaf_in(p, 3, 2, 9, got, &empty), 0);
	assert_true(empty);
	for (unsigned i = 0; i < CBT_LEAF_BLOCKS; i++)
		seq[i] = i % 10;
	cbt_leaf_out(seq, 3, 2, p);
	assert_int_equal(cbt_leaf_in(p, 3, 2, 9, got, &empty), 0);
	assert_false(empty);
	assert_memory_equal(got, seq, sizeof(seq));
	assert_int_equal(cbt_leaf_in(p, 4, 2, 9, got, &empty), -CBT_E_CORRUPT);
	assert_int_equal(cbt_leaf_in(p, 3, 1, 9, got, &empty), -CBT_E_CORRUPT);
	assert_int_equal(cbt_leaf_in(p, 3, 2, 8, got, &empty), -CBT_E_CORRUPT);
	p[100] ^= 0x40;
	assert_int_equal(cbt_leaf_in(p, 3, 2, 9, got, &empty), -CBT_E_CHECKSUM);
	free(p);
}

/* ---- the tracker against a shadow model ------------------------------------ */

#define DISK (1ull << 30)
#define BS (64u << 10)
#define NBLK (DISK / BS)
#define MAXCP 12

/* shadow: per 4 KiB of the disk, the checkpoint count when last written */
static uint16_t shadow[DISK / 4096];

struct got {
	uint64_t off[20000], len[20000];
	unsigned n;
};
static struct got g;

static int collect(void *arg, uint64_t off, uint64_t len)
{
	struct got *x = arg;

	assert_true(x->n < 20000);
	x->off[x->n] = off;
	x->len[x->n] = len;
	x->n++;
	return 0;
}

/*
 * Query since ids[k] over [lo, hi) and compare with the shadow: every 4 KiB
 * written after checkpoint k is covered; extents are in order, merged,
 * inside the range; anything reported lies in a block written after k.
 */
static void check_since(cbt_disk *d, const struct cbt_id *id, unsigned k,
			uint64_t lo, uint64_t hi, uint64_t *fp, uint64_t *tot)
{
	static uint8_t cov[DISK / 4096];

	memset(cov, 0, sizeof(cov));
	g.n = 0;
	assert_int_equal(cbt_query(d, id, lo, hi - lo, collect, &g), 0);
	for (unsigned i = 0; i < g.n; i++) {
		assert_true(g.off[i] >= lo && g.off[i] + g.len[i] <= hi);
		assert_true(g.len[i] > 0);
		if (i)
			assert_true(g.off[i] > g.off[i - 1] + g.len[i - 1]);
		for (uint64_t o = g.off[i] / 4096; o < (g.off[i] + g.len[i] + 4095) / 4096; o++)
			cov[o] = 1;
	}
	for (uint64_t o = lo / 4096; o < (hi + 4095) / 4096; o++) {
		if (shadow[o] > k)
			assert_true(cov[o]);          /* never a miss */
		if (cov[o]) {
			/* reported: some 4 KiB of its block was written */
			uint64_t b = o * 4096 / BS * (BS / 4096), w = 0;

			for (uint64_t q = b; q < b + BS / 4096; q++)
				w |= shadow[q] > k;
			assert_true(w);
			(*tot)++;
			*fp += shadow[o] <= k;
		}
	}
}

static void test_model(void **state)
{
	struct cbt_id ids[MAXCP];
	enum cbt_open_event ev;
	uint64_t fp = 0, tot = 0;
	uint32_t x = 12345;
	cbt_disk *d;

	(void)state;
	memset(shadow, 0, sizeof(shadow));
	assert_int_equal(cbt_create(&io, DISK, 0, &d), 0);
	for (unsigned cp = 0; cp < MAXCP; cp++) {
		assert_int_equal(cbt_checkpoint(d, &ids[cp]), 0);
		if (cp)
			assert_int_equal(ids[cp].seq, ids[cp - 1].seq + 1);
		for (int w = 0; w < 300; w++) {
			uint64_t off, len;

			x = x * 1103515245u + 12345u;
			off = (uint64_t)(x >> 4) % (DISK / 4096) * 4096;
			x = x * 1103515245u + 12345u;
			len = ((x >> 8) % 64 + 1) * 4096;
			if (off + len > DISK)
				len = DISK - off;
			assert_int_equal(cbt_mark(d, off, len), 0);
			for (uint64_t o = off / 4096; o < (off + len) / 4096; o++)
				shadow[o] = (uint16_t)(cp + 1);
		}
		if (cp == MAXCP / 2) {
			/* clean close and reopen: everything comes back */
			assert_int_equal(cbt_close(d), 0);
			assert_int_equal(cbt_open(&io, DISK, &d, &ev), 0);
			assert_int_equal(ev, CBT_OPENED);
		} else if (cp % 3 == 1) {
			assert_int_equal(cbt_flush(d), 0);
		}
		for (unsigned k = 0; k <= cp; k++) {
			check_since(d, &ids[k], k, 0, DISK, &fp, &tot);
			check_since(d, &ids[k], k, 3 * BS + 4096, DISK / 3 + 512, &fp, &tot);
		}
	}
	print_message("model: %llu of %llu reported 4 KiB false positives "
		      "(block rounding only)\n", (unsigned long long)fp,
		      (unsigned long long)tot);
	assert_int_equal(cbt_close(d), 0);
}

static int count(void *arg, uint64_t off, uint64_t len)
{
	(void)off;
	*(uint64_t *)arg += len;
	return 0;
}

/* Bytes changed since id over the whole disk, or the query's error. */
static int64_t changed(cbt_disk *d, const struct cbt_id *id)
{
	uint64_t n = 0;
	int ret = cbt_query(d, id, 0, DISK, count, &n);

	return ret ? ret : (int64_t)n;
}

static void test_ids_checked(void **state)
{
	struct cbt_id a, other;
	cbt_disk *d;

	(void)state;
	assert_int_equal(cbt_create(&io, DISK, 0, &d), 0);
	assert_int_equal(cbt_checkpoint(d, &a), 0);
	other = a;
	other.uuid[3] ^= 1;
	assert_int_equal(changed(d, &other), -CBT_E_OTHER);
	other = a;
	other.seq = a.seq + 1;          /* current: not issued */
	assert_int_equal(changed(d, &other), -CBT_E_FUTURE);
	other.seq = 0;                  /* before tracking began */
	assert_int_equal(changed(d, &other), -CBT_E_RESET);
	/* a held block is reported across the checkpoint after it */
	assert_int_equal(cbt_hold(d, 5 * BS, 1), 0);
	assert_int_equal(cbt_checkpoint(d, &other), 0);
	assert_int_equal(changed(d, &other), BS);
	/* and after the next one, while it is still held */
	assert_int_equal(cbt_hold(d, 9 * BS, 1), 0);
	assert_int_equal(cbt_checkpoint(d, &a), 0);
	assert_int_equal(changed(d, &a), 2 * BS);
	/* released: stamped with the current sequence, not reported again */
	cbt_release(d, 5 * BS, 1);
	cbt_release(d, 9 * BS, BS);
	assert_int_equal(cbt_hold(d, 11 * BS, 1), 0);
	cbt_release(d, 11 * BS, 1);
	assert_int_equal(cbt_held(d), 0);
	assert_int_equal(cbt_checkpoint(d, &a), 0);
	assert_int_equal(changed(d, &a), 0);
	assert_int_equal(changed(d, &other), 3 * BS);
	assert_int_equal(cbt_close(d), 0);
	/* it survives a clean reopen (sequence above the header's) */
	{
		enum cbt_open_event ev;

		assert_int_equal(cbt_open(&io, DISK, &d, &ev), 0);
		assert_int_equal(ev, CBT_OPENED);
		assert_int_equal(changed(d, &other), 3 * BS);
		assert_int_equal(cbt_close(d), 0);
	}
}

/* 1 when block b is reported since id, else 0. */
static uint64_t reported(cbt_disk *d, const struct cbt_id *id, uint64_t b)
{
	uint64_t n = 0;

	assert_int_equal(cbt_query(d, id, b * BS, BS, count, &n), 0);
	return n / BS;
}

/*
 * The executor's case: a write held (marked before it is issued) lands
 * only after two checkpoints; a backup that read the disk at the second
 * did not see it, so the query since the second must report its block.
 * Without the restamp at each checkpoint the block kept the sequence of
 * the first and was missed.
 */
static void test_hold_two_checkpoints(void **state)
{
	struct cbt_id c1, c2, c3, c4;
	cbt_disk *d;

	(void)state;
	assert_int_equal(cbt_create(&io, DISK, 0, &d), 0);
	assert_int_equal(cbt_hold(d, 7 * BS + 100, 10), 0);
	assert_int_equal(cbt_checkpoint(d, &c1), 0);
	assert_int_equal(cbt_checkpoint(d, &c2), 0);
	assert_int_equal(reported(d, &c1, 7), 1);
	assert_int_equal(reported(d, &c2, 7), 1);
	/* counted: two writers' holds on a block, one released */
	assert_int_equal(cbt_hold(d, 8 * BS, BS), 0);
	assert_int_equal(cbt_hold(d, 8 * BS, 1), 0);
	cbt_release(d, 8 * BS, 1);
	assert_int_equal(cbt_held(d), 2);
	assert_int_equal(cbt_checkpoint(d, &c3), 0);
	assert_int_equal(reported(d, &c3, 7), 1);
	assert_int_equal(reported(d, &c3, 8), 1);
	/* the write lands now, the holds go: still reported since c2, c3
	 * (it landed after them), not since the checkpoint after that */
	cbt_release(d, 7 * BS, BS);
	cbt_release(d, 8 * BS, 1);
	assert_int_equal(cbt_held(d), 0);
	assert_int_equal(reported(d, &c2, 7), 1);
	assert_int_equal(reported(d, &c3, 7), 1);
	assert_int_equal(reported(d, &c3, 8), 1);
	assert_int_equal(cbt_checkpoint(d, &c4), 0);
	assert_int_equal(reported(d, &c4, 7), 0);
	assert_int_equal(reported(d, &c4, 8), 0);
	/* a release of a block not held leaves a mark alone */
	assert_int_equal(cbt_mark(d, 3 * BS, 1), 0);
	cbt_release(d, 3 * BS, 1);
	assert_int_equal(reported(d, &c4, 3), 1);
	/* release_all: every hold goes; survives a clean reopen */
	assert_int_equal(cbt_hold(d, 20 * BS, 3 * BS), 0);
	assert_int_equal(cbt_checkpoint(d, &c1), 0);
	assert_int_equal(cbt_checkpoint(d, &c2), 0);
	cbt_release_all(d);
	assert_int_equal(cbt_held(d), 0);
	assert_int_equal(changed(d, &c2), 3 * BS);
	assert_int_equal(cbt_close(d), 0);
	{
		enum cbt_open_event ev;

		assert_int_equal(cbt_open(&io, DISK, &d, &ev), 0);
		assert_int_equal(ev, CBT_OPENED);
		assert_int_equal(changed(d, &c2), 3 * BS);
		assert_int_equal(cbt_checkpoint(d, &c3), 0);
		assert_int_equal(changed(d, &c3), 0);
		assert_int_equal(cbt_close(d), 0);
	}
}

static void test_unclean(void **state)
{
	struct cbt_id a, b;
	struct cbt_info in;
	enum cbt_open_event ev;
	cbt_disk *d;

	(void)state;
	assert_int_equal(cbt_create(&io, DISK, 0, &d), 0);
	assert_int_equal(cbt_checkpoint(d, &a), 0);
	assert_int_equal(cbt_mark(d, 0, 1), 0);
	assert_int_equal(cbt_flush(d), 0);
	assert_int_equal(cbt_mark(d, 7 * BS, BS), 0);   /* not written back */
	crash(d);
	assert_int_equal(cbt_open(&io, DISK, &d, &ev), 0);
	assert_int_equal(ev, CBT_OPENED_RESET_UNCLEAN);
	assert_int_equal(changed(d, &a), -CBT_E_RESET);
	cbt_info(d, &in);
	assert_int_equal(in.reset_reason, CBT_REASON_UNCLEAN);
	assert_int_equal(in.epoch, 1);
	assert_int_equal(in.leaves, 0);
	/* tracking goes on from a new checkpoint */
	assert_int_equal(cbt_checkpoint(d, &b), 0);
	assert_true(b.seq > a.seq);
	assert_int_equal(cbt_mark(d, 2 * BS, 10), 0);
	assert_int_equal(changed(d, &b), BS);
	assert_int_equal(cbt_close(d), 0);
	/* a clean stop resets nothing */
	assert_int_equal(cbt_open(&io, DISK, &d, &ev), 0);
	assert_int_equal(ev, CBT_OPENED);
	assert_int_equal(changed(d, &b), BS);
	assert_int_equal(cbt_close(d), 0);
}

static void test_damaged(void **state)
{
	struct cbt_id a;
	enum cbt_open_event ev;
	unsigned char c;
	cbt_disk *d;

	(void)state;
	assert_int_equal(cbt_create(&io, DISK, 0, &d), 0);
	assert_int_equal(cbt_checkpoint(d, &a), 0);
	assert_int_equal(cbt_mark(d, 3 * BS, 3 * BS), 0);
	assert_int_equal(cbt_close(d), 0);
	/* one bit of leaf page 0 */
	assert_int_equal(pread(ctk_fd, &c, 1, CBT_PAGE + 13), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(ctk_fd, &c, 1, CBT_PAGE + 13), 1);
	assert_int_equal(cbt_open(&io, DISK, &d, &ev), 0);
	assert_int_equal(ev, CBT_OPENED_RESET_DAMAGED);
	assert_int_equal(changed(d, &a), -CBT_E_RESET);
	assert_int_equal(cbt_close(d), 0);
	/* a damaged header cannot be trusted at all */
	assert_int_equal(pread(ctk_fd, &c, 1, 0x2c), 1);
	c ^= 1;
	assert_int_equal(pwrite(ctk_fd, &c, 1, 0x2c), 1);
	assert_int_equal(cbt_open(&io, DISK, &d, &ev), -CBT_E_CHECKSUM);
	assert_non_null(strstr(cbt_strerror(-CBT_E_RESET), "take a full backup"));
}

/* the file cut back, then a crash before the new header is written */
static int cut_then_die(void *arg, uint64_t size)
{
	fd_truncate(arg, size);
	return -EIO;
}

/* A reset of a clean file (a damaged page found at open) that stops after
 * the leaves went: the next open must not find a clean header without
 * its marks (old IDs answered "nothing changed"). */
static void test_reset_interrupted(void **state)
{
	struct cbt_io dying = io;
	struct cbt_id a;
	enum cbt_open_event ev;
	unsigned char c;
	cbt_disk *d;

	(void)state;
	dying.truncate = cut_then_die;
	assert_int_equal(cbt_create(&io, DISK, 0, &d), 0);
	assert_int_equal(cbt_checkpoint(d, &a), 0);
	assert_int_equal(cbt_mark(d, 3 * BS, 3 * BS), 0);
	assert_int_equal(cbt_mark(d, 2000 * BS, BS), 0);
	assert_int_equal(cbt_close(d), 0);
	/* leaf page 1 damaged, page 0 intact */
	assert_int_equal(pread(ctk_fd, &c, 1, 2 * CBT_PAGE + 13), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(ctk_fd, &c, 1, 2 * CBT_PAGE + 13), 1);
	assert_int_equal(cbt_open(&dying, DISK, &d, &ev), -EIO);
	assert_int_equal(cbt_open(&io, DISK, &d, &ev), 0);
	assert_int_not_equal(ev, CBT_OPENED);
	assert_int_equal(changed(d, &a), -CBT_E_RESET);
	assert_int_equal(cbt_close(d), 0);
}

/* VMware's 128 GB bug: tracking must hold across any size */
static void test_grow(void **state)
{
	const uint64_t G = 1ull << 30;
	struct cbt_id a;
	enum cbt_open_event ev;
	struct stat st;
	cbt_disk *d;

	(void)state;
	assert_int_equal(cbt_create(&io, 100 * G, 0, &d), 0);
	assert_int_equal(cbt_checkpoint(d, &a), 0);
	assert_int_equal(cbt_mark(d, 99 * G, 4096), 0);
	assert_int_equal(cbt_set_size(d, 300 * G), 0);
	assert_int_equal(cbt_mark(d, 128 * G - 4096, 8192), 0);  /* across */
	assert_int_equal(cbt_mark(d, 299 * G, G), 0);
	assert_int_equal(cbt_close(d), 0);
	assert_int_equal(cbt_open(&io, 100 * G, &d, &ev), 0);
	assert_int_equal(ev, CBT_OPENED);
	g.n = 0;
	assert_int_equal(cbt_query(d, &a, 0, UINT64_MAX, collect, &g), 0);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.off[0], 99 * G);
	assert_int_equal(g.len[0], BS);
	assert_int_equal(g.off[1], 128 * G - BS);
	assert_int_equal(g.len[1], 2 * BS);
	assert_int_equal(g.off[2], 299 * G);
	assert_int_equal(g.len[2], G);
	assert_int_equal(cbt_close(d), 0);
	/* sparse: a few leaf pages, not 300 GiB worth */
	assert_int_equal(fstat(ctk_fd, &st), 0);
	print_message("ctk of a 300 GiB disk with 3 areas changed: %lld KiB "
		      "allocated\n", (long long)st.st_blocks / 2);
	assert_true(st.st_blocks / 2 < 1200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id),
		cmocka_unit_test(test_pages),
		cmocka_unit_test_setup_teardown(test_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_two_checkpoints, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unclean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_interrupted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_grow, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
