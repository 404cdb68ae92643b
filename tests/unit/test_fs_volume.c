/*
 * test_fs_volume.c - making and mounting volumes, finding extents by their
 * headers, allocation in resource clusters by several hosts, journal
 * replay of a host that died between commit and in-place write, and the
 * write-back journal's overlay, quarantine and hand-over.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fs/fs_int.h"
#include "lockmgr/ondisk.h"
#include "tests/unit/testutil.h"

static char p0[256], p1[256], p2[256], px[256];

static int setup(void **state)
{
	(void)state;
	tu_make_file(p0, sizeof(p0), "fsv0", 512ull << 20);
	tu_make_file(p1, sizeof(p1), "fsv1", 256ull << 20);
	tu_make_file(p2, sizeof(p2), "fsv2", 256ull << 20);
	tu_make_file(px, sizeof(px), "fsvx", 256ull << 20);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(p0);
	unlink(p1);
	unlink(p2);
	unlink(px);
	return 0;
}

static struct fs_mkfs_opts mk = {
	.label = "test", .max_hosts = 8, .hb_interval_ms = 250,
	.hb_dead_ms = 2500, .force = true,
};

static fs_vol *mount1(const char *spec, const char *host, bool ro)
{
	struct fs_mount_opts mo = { .host = host, .read_only = ro };
	const char *specs[1] = { spec };
	fs_vol *v = NULL;
	int ret = fs_mount(specs, 1, &mo, &v);

	if (ret)
		fail_msg("mount %s: %s", spec, fs_strerror(ret));
	return v;
}

static void test_mkfs_mount(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mkfs_opts o = mk;
	struct fs_vol_info in;
	fs_vol *v;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &o), 0);
	o.force = false;
	assert_int_equal(fs_mkfs(specs, 1, &o), -EEXIST);
	v = mount1(p0, "alpha", false);
	assert_int_equal(fs_vol_info(v, &in), 0);
	assert_string_equal(in.label, "test");
	assert_int_equal(in.block_size, 1 << 20);
	assert_int_equal(in.nextents, 1);
	assert_true(in.capacity > (300ull << 20));
	assert_true(in.capacity < (512ull << 20));
	assert_true(in.free == in.capacity);
	assert_int_equal(in.files_free, in.files - 1);   /* the root */
	assert_int_equal(in.method, LK_METHOD_EMULATED);
	fs_umount(v);
	/* read-only mounts need no heartbeat */
	v = mount1(p0, "ro", true);
	assert_int_equal(fs_vol_info(v, &in), 0);
	assert_true(in.read_only);
	fs_umount(v);
}

static void test_bad_options(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mkfs_opts o = mk;

	(void)state;
	o.block_size = 3000;
	assert_int_equal(fs_mkfs(specs, 1, &o), -EINVAL);
	o.block_size = 16 << 20;
	assert_int_equal(fs_mkfs(specs, 1, &o), -EINVAL);
	o.block_size = 0;
	o.max_hosts = 5000;
	assert_int_equal(fs_mkfs(specs, 1, &o), -EINVAL);
}

static void test_spanned(void **state)
{
	const char *specs[3] = { p0, p1, p2 };
	const char *shuffled[3] = { p2, p0, p1 };
	const char *partial[2] = { p2, p0 };
	const char *other[1] = { px };
	const char *mixed[4] = { p0, p1, p2, px };
	struct fs_mount_opts mo = { .host = "span" };
	struct fs_vol_info in;
	fs_vol *v = NULL;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 3, &mk), 0);
	assert_int_equal(fs_mkfs(other, 1, &mk), 0);
	/* any order: the headers say which is which */
	assert_int_equal(fs_mount(shuffled, 3, &mo, &v), 0);
	assert_int_equal(fs_vol_info(v, &in), 0);
	assert_int_equal(in.nextents, 3);
	assert_string_equal(in.extent_spec[0], p0);
	assert_string_equal(in.extent_spec[2], p2);
	assert_true(in.capacity > (800ull << 20));
	fs_umount(v);
	v = NULL;
	assert_int_equal(fs_mount(partial, 2, &mo, &v), -FS_E_EXTENTS);
	assert_int_equal(fs_mount(mixed, 4, &mo, &v), -FS_E_EXTENTS);
	assert_null(v);
}

/* Allocations of several resource types; freeing gives everything back. */
static void test_alloc_free(void **state)
{
	const char *specs[1] = { p0 };
	uint64_t a[64], fr0[FS_R_TYPES], tot[FS_R_TYPES], fr1[FS_R_TYPES];
	struct fs_tx *tx;
	fs_vol *v;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	v = mount1(p0, "alpha", false);
	assert_int_equal(fs_count(v, fr0, tot), 0);
	tx = fs_tx_begin(v);
	assert_int_equal(fs_alloc(tx, FS_R_FB, 40, a), 0);
	assert_int_equal(fs_alloc(tx, FS_R_FD, 3, a + 40), 0);
	assert_int_equal(fs_alloc(tx, FS_R_PB, 2, a + 43), 0);
	for (int i = 0; i < 45; i++)
		for (int k = 0; k < i; k++)
			assert_true(a[i] != a[k]);
	for (int i = 0; i < 40; i++)
		assert_true(fs_addr_valid(v, a[i], FS_R_FB));
	assert_int_equal(fs_tx_commit(tx), 0);
	assert_int_equal(fs_count(v, fr1, tot), 0);
	assert_true(fr1[FS_R_FB] == fr0[FS_R_FB] - 40);
	assert_true(fr1[FS_R_FD] == fr0[FS_R_FD] - 3);
	assert_true(fr1[FS_R_PB] == fr0[FS_R_PB] - 2);
	tx = fs_tx_begin(v);
	for (int i = 0; i < 45; i++)
		assert_int_equal(fs_free(tx, a[i]), 0);
	assert_int_equal(fs_tx_commit(tx), 0);
	assert_int_equal(fs_count(v, fr1, tot), 0);
	assert_memory_equal(fr1, fr0, sizeof(fr0));
	/* double free is caught */
	tx = fs_tx_begin(v);
	assert_int_equal(fs_free(tx, a[0]), -FS_E_CORRUPT);
	fs_tx_abort(tx);
	fs_umount(v);
}

/* One host, two transactions at once: the second takes from the next
 * cluster while the first has the cursor's, but the cursor stays where
 * the free space is (a third allocation comes back to it). */
static void test_alloc_own_busy(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mkfs_opts o = mk;
	uint64_t a[4], b[4], c[4];
	struct fs_tx *t1, *t2, *t3;
	fs_vol *v;

	(void)state;
	o.block_size = 64 << 10;   /* many clusters on a small volume */
	assert_int_equal(fs_mkfs(specs, 1, &o), 0);
	v = mount1(p0, "alpha", false);
	t1 = fs_tx_begin(v);
	assert_int_equal(fs_alloc(t1, FS_R_FB, 4, a), 0);
	t2 = fs_tx_begin(v);
	assert_int_equal(fs_alloc(t2, FS_R_FB, 4, b), 0);
	assert_int_not_equal(fs_addr_index(b[0]) / 512, fs_addr_index(a[0]) / 512);
	assert_int_equal(fs_tx_commit(t2), 0);
	assert_int_equal(fs_tx_commit(t1), 0);
	/* in place: t1's cluster is no transaction's any more (a slow
	 * build may otherwise still have it when t3 looks) */
	assert_int_equal(fs_sync(v), 0);
	t3 = fs_tx_begin(v);
	assert_int_equal(fs_alloc(t3, FS_R_FB, 4, c), 0);
	assert_int_equal(fs_tx_commit(t3), 0);
	assert_int_equal(fs_addr_index(c[0]) / 512, fs_addr_index(a[0]) / 512);
	assert_int_equal(fs_addr_index(c[0]), fs_addr_index(a[3]) + 1);
	fs_umount(v);
}

struct allocer {
	fs_vol *v;
	uint64_t a[160];
	int n, err;
};

static void *alloc_thread(void *p)
{
	struct allocer *al = p;

	for (int i = 0; i < 8 && !al->err; i++) {
		struct fs_tx *tx = fs_tx_begin(al->v);

		al->err = fs_alloc(tx, FS_R_FB, 20, al->a + al->n);
		if (!al->err)
			al->err = fs_tx_commit(tx);
		else
			fs_tx_abort(tx);
		if (!al->err)
			al->n += 20;
	}
	return NULL;
}

/* Two hosts allocate at once: never the same block twice, and (affinity)
 * from different clusters. */
static void test_two_hosts_alloc(void **state)
{
	const char *specs[1] = { p0 };
	struct allocer x = { 0 }, y = { 0 };
	struct fs_mkfs_opts o = mk;
	pthread_t tx, ty;
	unsigned same_cluster = 0;

	(void)state;
	o.block_size = 64 << 10;   /* many clusters on a small volume */
	assert_int_equal(fs_mkfs(specs, 1, &o), 0);
	x.v = mount1(p0, "alpha", false);
	y.v = mount1(p0, "bravo", false);
	pthread_create(&tx, NULL, alloc_thread, &x);
	pthread_create(&ty, NULL, alloc_thread, &y);
	pthread_join(tx, NULL);
	pthread_join(ty, NULL);
	assert_int_equal(x.err, 0);
	assert_int_equal(y.err, 0);
	assert_int_equal(x.n, 160);
	assert_int_equal(y.n, 160);
	for (int i = 0; i < 160; i++)
		for (int k = 0; k < 160; k++) {
			assert_true(x.a[i] != y.a[k]);
			if (fs_addr_index(x.a[i]) / 512 == fs_addr_index(y.a[k]) / 512)
				same_cluster++;
		}
	assert_int_equal(same_cluster, 0);
	fs_umount(x.v);
	fs_umount(y.v);
}

/*
 * Alpha commits an allocation to its journal, but its in-place writes fail
 * (alpha gives the volume up) and then its LUN dies altogether.  Bravo, needing that cluster, waits for
 * alpha to be dead, replays alpha's journal (the cluster lock still shows
 * the version alpha made the transaction under), and finds the allocation.
 */
static void test_replay_after_death(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mount_opts mo = { .host = "alpha" };
	char spec[600];
	const char *fspecs[1] = { spec };
	uint64_t a[8], b[600];
	struct fs_tx *tx;
	fs_vol *va = NULL, *vb;
	struct fs_rc rc;
	unsigned char *blk = tu_alloc(FS_BLOCK);
	unsigned area_fb;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	snprintf(spec, sizeof(spec), "fault::%s", p0);
	assert_int_equal(fs_mount(fspecs, 1, &mo, &va), 0);
	area_fb = FS_A_FB;
	/* in-place writes to the resource areas fail from now on (the
	 * journal, below them on the LUN, still works) */
	{
		struct mp_fault_rule r = {
			.op = MP_OP_WRITE, .action = MP_FAULT_FAIL,
			.off = va->sb.ext[0].area[FS_A_FD].meta_off,
			.len = 1ull << 40,
		};

		assert_true(mp_fault_add(va->ext[0].lun, &r) >= 0);
	}
	tx = fs_tx_begin(va);
	assert_int_equal(fs_alloc(tx, FS_R_FB, 8, a), 0);
	/* committed (write-back); the sync that puts it in place fails
	 * after the journal has it */
	assert_int_equal(fs_tx_commit(tx), 0);
	assert_int_not_equal(fs_sync(va), 0);
	/* the header on disk does not show it yet (alpha has fenced itself:
	 * read the file) */
	{
		int fd = open(p0, O_RDONLY);

		assert_true(fd >= 0);
		assert_int_equal(pread(fd, blk, FS_BLOCK,
				       (off_t)fs_cluster_off(va, 0, area_fb, 0) +
				       FS_BLOCK), FS_BLOCK);
		close(fd);
	}
	assert_int_equal(fs_rc_in(blk, &rc), 0);
	assert_int_equal(rc.nfree, rc.nres);
	/* now alpha's LUN dies */
	{
		struct mp_fault_rule r = { .op = MP_FAULT_ANY_OP,
					   .action = MP_FAULT_FAIL };

		assert_true(mp_fault_add(va->ext[0].lun, &r) >= 0);
	}
	vb = mount1(p0, "bravo", false);
	/* bravo allocates the whole volume's worth from cluster 0 onwards:
	 * it must get past alpha's lock on cluster 0 */
	vb->alloc_cursor[FS_R_FB] = 0;
	tx = fs_tx_begin(vb);
	assert_int_equal(fs_alloc(tx, FS_R_FB, 60, b), 0);
	assert_int_equal(fs_tx_commit(tx), 0);
	assert_int_equal(fs_read(vb, 0, fs_cluster_off(vb, 0, area_fb, 0) +
				 FS_BLOCK, blk, FS_BLOCK), 0);
	assert_int_equal(fs_rc_in(blk, &rc), 0);
	/* alpha's 8 blocks are allocated (replayed), bravo's are others */
	for (int i = 0; i < 8; i++) {
		unsigned bit = (unsigned)fs_addr_index(a[i]);

		assert_true(rc.bitmap[bit / 8] & (1u << (bit % 8)));
		for (int k = 0; k < 60; k++)
			assert_true(b[k] != a[i]);
	}
	fs_umount(vb);
	fs_umount(va);
	free(blk);
}

/* In-place writes of v fail from the pointer block area on: directories
 * in sub-blocks and file blocks (FDs and their locks are still written). */
static void fail_in_place_dirs(fs_vol *v)
{
	struct mp_fault_rule r = {
		.op = MP_OP_WRITE, .action = MP_FAULT_FAIL,
		.off = v->sb.ext[0].area[FS_A_PB].meta_off,
		.len = 1ull << 40,
	};

	assert_true(mp_fault_add(v->ext[0].lun, &r) >= 0);
}

/* v gives the volume up once a batch is durable but not in place: the
 * waiters hear of the failure first (they may hold what giving up
 * takes), so it may take a moment. */
static void wait_abandoned(fs_vol *v, struct lk_vol_info *li)
{
	for (unsigned i = 0; i < 200; i++) {
		lk_get_info(fs_lk(v), li);
		if (li->abandoned)
			break;
		usleep(10000);
	}
	assert_true(li->abandoned);
}

/*
 * Alpha creates d/h1..h5 and renames d/g to d/f, all in one batch of its
 * write-back journal (gathering until the sync asks for it): the
 * batch reaches the journal, but its writes in place fail (the directory's
 * sub-block).  Alpha must give the volume up with the directory's lock
 * still held, so that the journal copy is replayed when bravo recovers
 * it: every transaction of the batch, in order: bravo then finds h1..h5
 * and d/f, not d/g.  (Before, alpha released the directory's lock after
 * the failed commit, its version moved on, and replay skipped the
 * transaction as superseded: the rename was lost, or half in place.)
 */
static void test_commit_not_in_place(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mount_opts mo = { .host = "alpha", .no_janitor = true };
	struct fs_create_args dir = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_create_args file = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_check_opts co = { 0 };
	struct fs_check_result res;
	struct fs_stat st, sd;
	struct lk_vol_info li;
	char spec[600];
	const char *fspecs[1] = { spec };
	fs_vol *va = NULL, *vb;
	uint64_t c0, b0, c1, b1;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	snprintf(spec, sizeof(spec), "fault::%s", p0);
	assert_int_equal(fs_mount(fspecs, 1, &mo, &va), 0);
	assert_int_equal(fs_create(va, fs_root(va), "d", &dir, &sd), 0);
	assert_int_equal(fs_create(va, sd.ino, "g", &file, &st), 0);
	assert_int_equal(fs_sync(va), 0);
	fail_in_place_dirs(va);
	/* the six transactions below go in one batch however slow the
	 * machine (ThreadSanitizer): it gathers until the sync waits */
	fs_journal_gather(va, 60000, 60000);
	fs_journal_stats(va, &c0, &b0);
	for (unsigned i = 1; i <= 5; i++) {
		char nm[16];

		snprintf(nm, sizeof(nm), "h%u", i);
		assert_int_equal(fs_create(va, sd.ino, nm, &file, &st), 0);
	}
	assert_int_equal(fs_rename(va, sd.ino, "g", sd.ino, "f", 0), 0);
	fs_journal_stats(va, &c1, &b1);
	assert_int_equal(c1, c0 + 6);
	assert_int_equal(b1, b0);
	assert_int_not_equal(fs_sync(va), 0);
	wait_abandoned(va, &li);
	assert_true(li.fenced);
	/* the LUN works again, alpha stays out: nothing more is written */
	assert_int_equal(mp_fault_clear(va->ext[0].lun), 0);
	assert_int_not_equal(fs_create(va, sd.ino, "h", &file, &st), 0);
	assert_int_equal(lk_state(fs_lk(va)), -LK_E_FENCED);

	/* alpha unmounts: its slot and locks stay for recovery (a freed
	 * slot would let bravo break the locks without replay) */
	fs_umount(va);
	/* bravo, changing the directory, waits for alpha to be dead and
	 * replays its journal (a lookup reads without the lock: what is in
	 * place, the rename not acknowledged) */
	vb = mount1(p0, "bravo", false);
	assert_int_equal(fs_create(vb, sd.ino, "h", &file, &st), 0);
	assert_int_equal(fs_lookup(vb, sd.ino, "f", &st), 0);
	assert_int_equal(fs_lookup(vb, sd.ino, "g", &st), -ENOENT);
	for (unsigned i = 1; i <= 5; i++) {
		char nm[16];

		snprintf(nm, sizeof(nm), "h%u", i);
		assert_int_equal(fs_lookup(vb, sd.ino, nm, &st), 0);
	}
	fs_umount(vb);
	assert_int_equal(fs_check(specs, 1, &co, &res), 0);
	assert_int_equal(res.errors, 0);
}

/* The records of slot's journal from its checkpoint on (as replay finds
 * them): how many, the transactions they stand for, the most in one, and
 * how many have an image of block off of extent 0. */
static void log_records(fs_vol *v, uint32_t slot, uint64_t off,
			unsigned *nrec, uint64_t *ntx, unsigned *most,
			unsigned *with)
{
	int fd = open(p0, O_RDONLY);
	uint64_t base = v->sb.journal_off +
			(uint64_t)slot * v->sb.journal_blocks * FS_BLOCK;
	unsigned char *b = fs_balloc((size_t)(FS_JD_MAX_BLOCKS + 2) * FS_BLOCK);
	struct fs_jd *d = malloc(sizeof(*d));
	struct fs_jh h;
	struct fs_jc c;
	uint64_t expect;
	uint32_t pos;

	assert_true(fd >= 0);
	assert_non_null(b);
	assert_non_null(d);
	*nrec = 0;
	*ntx = 0;
	*most = 0;
	/* the LUN itself (the volume is given up: it reads nothing) */
	assert_int_equal(pread(fd, b, FS_BLOCK, (off_t)base), FS_BLOCK);
	assert_int_equal(fs_jh_in(b, &h), 0);
	pos = (uint32_t)h.tail_block;
	expect = h.tail_seq;
	while (pos + 2 <= h.nblocks) {
		assert_int_equal(pread(fd, b, FS_BLOCK,
				       (off_t)(base + (uint64_t)pos * FS_BLOCK)),
				 FS_BLOCK);
		if (fs_jd_in(b, d) || d->jid != h.jid || d->seq != expect)
			break;
		assert_int_equal(pread(fd, b, (size_t)(d->nblocks + 2) * FS_BLOCK,
				       (off_t)(base + (uint64_t)pos * FS_BLOCK)),
				 (ssize_t)(d->nblocks + 2) * FS_BLOCK);
		assert_int_equal(fs_jc_in(b + (size_t)(d->nblocks + 1) * FS_BLOCK,
					  &c), 0);
		assert_true(c.seq == d->seq && c.nblocks == d->nblocks);
		(*nrec)++;
		*ntx += d->ntx;
		if (d->ntx > *most)
			*most = d->ntx;
		for (unsigned i = 0; i < d->nblocks; i++)
			if (d->t[i].extent == 0 && d->t[i].off == off)
				(*with)++;
		pos += d->nblocks + 2;
		expect += d->ntx;
	}
	close(fd);
	free(d);
	free(b);
}

/*
 * Journal groups (docs/FORMAT.md "Journal"): the transactions of a batch
 * go to the log as few records, each block once.  Alpha makes 20 files in
 * d (it stays in sub-blocks, whose writes fail), a file w it writes to (the write lists w's lock without writing its
 * record, which the create wrote: it must start a record of its own),
 * another file and a rename, all in one batch whose in-place writes fail
 * (directory blocks): the log must hold every transaction in fewer
 * records than transactions, and bravo, recovering alpha, must replay all
 * of them (every name, w's data, the rename), fsck clean.  Again on a
 * volume made without groups (a record per transaction, as volumes made
 * before them): the same outcome, a record each.
 */
static void groups_run(bool single)
{
	const char *specs[1] = { p0 };
	struct fs_mkfs_opts o = mk;
	struct fs_mount_opts mo = { .host = "alpha", .no_janitor = true };
	struct fs_create_args dir = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_create_args file = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_check_opts co = { 0 };
	struct fs_check_result res;
	struct fs_stat st, sd, sw;
	struct lk_vol_info li;
	char spec[600], nm[16], buf[32];
	const char *fspecs[1] = { spec };
	fs_vol *va = NULL, *vb;
	fs_file *f;
	uint64_t c0, b0, c1, b1, ntx;
	unsigned nrec = 0, most = 0, with = 0;

	o.single_records = single;
	/* room for the whole batch without groups (a record per create) */
	o.journal_mib = 4;
	assert_int_equal(fs_mkfs(specs, 1, &o), 0);
	snprintf(spec, sizeof(spec), "fault::%s", p0);
	assert_int_equal(fs_mount(fspecs, 1, &mo, &va), 0);
	assert_int_equal(!!(va->sb.incompat & FS_INCOMPAT_JGROUPS), !single);
	assert_int_equal(fs_create(va, fs_root(va), "d", &dir, &sd), 0);
	assert_int_equal(fs_create(va, sd.ino, "g", &file, &st), 0);
	assert_int_equal(fs_sync(va), 0);
	fail_in_place_dirs(va);
	fs_journal_gather(va, 60000, 60000);
	fs_journal_stats(va, &c0, &b0);
	for (int i = 0; i < 20; i++) {
		snprintf(nm, sizeof(nm), "n%d", i);
		assert_int_equal(fs_create(va, sd.ino, nm, &file, &st), 0);
	}
	assert_int_equal(fs_create(va, sd.ino, "w", &file, &sw), 0);
	assert_int_equal(fs_open(va, sw.ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_pwrite(f, "written in the batch", 20, 0), 20);
	assert_int_equal(fs_close(f), 0);
	assert_int_equal(fs_create(va, sd.ino, "y", &file, &st), 0);
	assert_int_equal(fs_rename(va, sd.ino, "g", sd.ino, "f", 0), 0);
	fs_journal_stats(va, &c1, &b1);
	assert_int_equal(b1, b0);
	assert_true(c1 - c0 >= 24);
	assert_int_not_equal(fs_sync(va), 0);
	wait_abandoned(va, &li);
	assert_int_equal(mp_fault_clear(va->ext[0].lun), 0);

	/* the log: every transaction, in records */
	log_records(va, va->slot, fs_res_off(va, sw.ino) + FS_BLOCK, &nrec, &ntx,
		    &most, &with);
	print_message("%s: %llu transactions in %u records (at most %u in "
		      "one)\n", single ? "without groups" : "groups",
		      (unsigned long long)(c1 - c0), nrec, most);
	assert_int_equal(ntx, c1 - c0);
	if (single) {
		assert_int_equal(nrec, ntx);
		assert_int_equal(most, 1);
	} else {
		assert_true(nrec * 4 <= ntx);
		/* the write after w's create starts a record: w's FD in
		 * two (one if the write joined the create's) */
		assert_int_equal(with, 2);
	}
	fs_umount(va);

	/* bravo recovers alpha: all of it replayed */
	vb = mount1(p0, "bravo", false);
	assert_int_equal(fs_create(vb, sd.ino, "h", &file, &st), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(nm, sizeof(nm), "n%d", i);
		assert_int_equal(fs_lookup(vb, sd.ino, nm, &st), 0);
	}
	assert_int_equal(fs_lookup(vb, sd.ino, "y", &st), 0);
	assert_int_equal(fs_lookup(vb, sd.ino, "f", &st), 0);
	assert_int_equal(fs_lookup(vb, sd.ino, "g", &st), -ENOENT);
	assert_int_equal(fs_lookup(vb, sd.ino, "w", &st), 0);
	assert_int_equal(st.size, 20);
	assert_int_equal(fs_open(vb, st.ino, 0, &f), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(fs_pread(f, buf, sizeof(buf), 0), 20);
	assert_memory_equal(buf, "written in the batch", 20);
	assert_int_equal(fs_close(f), 0);
	fs_umount(vb);
	assert_int_equal(fs_check(specs, 1, &co, &res), 0);
	assert_int_equal(res.errors, 0);
}

static void test_journal_groups(void **state)
{
	(void)state;
	groups_run(false);
	groups_run(true);
}

/*
 * Free FD slots are read a run at a time under the cluster lock and handed
 * out from memory while this host keeps the lock (fs_fd_slot_read): 40
 * creates read the FD area a couple of times, not 40.  Once another host
 * held the cluster, what was read is not used: bravo, sent to alpha's
 * cluster, creates a file there and removes it (its FD free again, its
 * generation kept); alpha's next create gets that slot, and must make it
 * the generation after bravo's and its lock record a version above
 * bravo's, not what alpha read before (an old generation again would let
 * a stale handle of bravo's file pass for alpha's).
 */
static void test_fd_prefetch(void **state)
{
	struct fs_create_args file = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct mp_lun_stats io0[32], io1[32];
	struct fs_stat st, sb;
	struct lk_lockrec r0, r1;
	unsigned char *sec;
	fs_vol *va, *vb;
	char nm[16];

	(void)state;
	assert_int_equal(fs_mkfs((const char *[]){ p0 }, 1, &mk), 0);
	va = mount1(p0, "alpha", false);
	vb = mount1(p0, "bravo", false);
	sec = fs_balloc(FS_BLOCK);
	assert_non_null(sec);
	assert_int_equal(fs_create(va, fs_root(va), "first", &file, &st), 0);
	fs_vol_io(va, io0);
	for (int i = 0; i < 40; i++) {
		snprintf(nm, sizeof(nm), "a%d", i);
		assert_int_equal(fs_create(va, fs_root(va), nm, &file, &st), 0);
	}
	fs_vol_io(va, io1);
	print_message("40 creates: %llu reads\n",
		      (unsigned long long)(io1[0].reads - io0[0].reads));
	/* (one each before; 13 here now: directory blocks and headers,
	 * a heartbeat maybe) */
	assert_true(io1[0].reads - io0[0].reads <= 20);
	assert_int_equal(fs_sync(va), 0);

	/* bravo in alpha's cluster, once alpha's keeper let its lock go
	 * (else bravo would allocate elsewhere meanwhile) */
	{
		uint64_t coff = fs_cluster_off(va, 0, FS_A_FD,
					       (uint32_t)(fs_addr_index(st.ino) / 256));
		struct lk_lock_info li;
		lk_lock *cl;

		assert_int_equal(lk_lock_open_on(fs_lk(vb), vb->ext[0].lun, coff,
						 &cl), 0);
		for (int i = 0; ; i++) {
			assert_int_equal(lk_lock_info(cl, &li), 0);
			if (li.mode == LK_FREE)
				break;
			assert_true(i < 1000);
			usleep(10000);
		}
		lk_lock_close_keep(cl);
	}
	vb->alloc_cursor[FS_R_FD] = va->alloc_cursor[FS_R_FD];
	assert_int_equal(fs_create(vb, fs_root(vb), "b", &file, &sb), 0);
	assert_int_equal(fs_addr_index(sb.ino) / 256,
			 fs_addr_index(st.ino) / 256);
	assert_int_equal(fs_unlink(vb, fs_root(vb), "b"), 0);
	assert_int_equal(fs_sync(vb), 0);
	assert_int_equal(fs_read(vb, fs_addr_ext(sb.ino), fs_res_off(vb, sb.ino),
				 sec, FS_BLOCK), 0);
	assert_int_equal(lk_lockrec_in(sec, &r0), 0);
	fs_umount(vb);         /* the cluster free for alpha again */

	assert_int_equal(fs_create(va, fs_root(va), "a", &file, &st), 0);
	assert_true(st.ino == sb.ino);
	assert_true(st.gen == sb.gen + 1);
	assert_int_equal(fs_sync(va), 0);
	assert_int_equal(fs_read(va, fs_addr_ext(st.ino), fs_res_off(va, st.ino),
				 sec, FS_BLOCK), 0);
	assert_int_equal(lk_lockrec_in(sec, &r1), 0);
	assert_true(r1.version > r0.version);
	free(sec);
	fs_umount(va);
}

/*
 * A new file's lock record is written with the transaction that makes the
 * file, not before it (fs_inode_alloc).  Two things must hold for that.
 * Order: another host finds the file (through a directory it reads without
 * our lock) only once the record saying we hold it is in place: with the
 * record's write failing, alpha's new file's name must not reach the disk
 * at all (a raw scan), neither in a small directory (d: sub-blocks) nor in
 * a bigger one (big: file blocks).  Replay: the record was never written, yet
 * the create is in alpha's journal: bravo, recovering alpha, must replay
 * it although the record on disk does not show the version the
 * transaction lists (older, or newer but free: bravo locked the free FD
 * by its address meanwhile); then x is there, and bravo can open it.
 */
/* Whether name is anywhere on the LUN outside the journals (a directory
 * entry in place), read raw. */
static bool name_on_disk(fs_vol *v, const char *name)
{
	uint64_t j0 = v->sb.journal_off,
		 j1 = j0 + (uint64_t)v->sb.slots * v->sb.journal_blocks * FS_BLOCK;
	size_t chunk = 4 << 20, n = strlen(name);
	unsigned char *b = tu_alloc(chunk);
	struct mp_lun_info li;
	bool found = false;
	mp_lun *lun;

	assert_int_equal(mp_lun_open(p0, NULL, &lun), 0);
	mp_lun_get_info(lun, &li);
	/* chunks overlap by a block: a name across two is seen whole */
	for (uint64_t off = 0; off < li.capacity && !found; off += chunk - 4096) {
		size_t len = li.capacity - off < chunk ? li.capacity - off : chunk;
		unsigned char *q = b;

		assert_int_equal(mp_lun_pread(lun, b, len, off), (ssize_t)len);
		while (!found && (q = memmem(q, len - (size_t)(q - b), name, n))) {
			uint64_t at = off + (uint64_t)(q - b);

			found = at < j0 || at >= j1;
			q++;
		}
	}
	mp_lun_close(lun);
	free(b);
	return found;
}

static void test_new_lock_with_tx(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mount_opts mo = { .host = "alpha", .no_janitor = true };
	struct fs_create_args dir = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_create_args file = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_check_opts co = { 0 };
	struct fs_check_result res;
	struct fs_stat st, sd, sb;
	struct lk_lockrec r;
	unsigned char *sec = fs_balloc(FS_BLOCK);
	char spec[600];
	const char *fspecs[1] = { spec };
	fs_vol *va = NULL, *vb;
	fs_file *f = NULL, *f2 = NULL;
	struct lk_lockrec r2;

	(void)state;
	assert_non_null(sec);
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	snprintf(spec, sizeof(spec), "fault::%s", p0);
	assert_int_equal(fs_mount(fspecs, 1, &mo, &va), 0);
	vb = mount1(p0, "bravo", false);
	assert_int_equal(fs_create(va, fs_root(va), "big", &dir, &sb), 0);
	for (int i = 0; i < 100; i++) {
		char nm[16];

		snprintf(nm, sizeof(nm), "f%d", i);
		assert_int_equal(fs_create(va, sb.ino, nm, &file, &st), 0);
	}
	assert_int_equal(fs_create(va, fs_root(va), "d", &dir, &sd), 0);
	/* so that d's FD and the slot x gets are not neighbours */
	assert_int_equal(fs_create(va, fs_root(va), "spacer", &file, &st), 0);
	for (int k = 0; k < 2; k++) {
		uint64_t dino = k ? sb.ino : sd.ino, slot;
		char z[16], x[32];

		snprintf(x, sizeof(x), "xylophone-%d", k);
		/* the slot x will get: one freed, the first free */
		assert_int_equal(fs_create(va, dino, "p", &file, &st), 0);
		slot = st.ino;
		assert_int_equal(fs_unlink(va, dino, "p"), 0);
		/* free in its cluster's bitmap (a free may come in a
		 * transaction of its own after the unlink's) */
		for (int i = 0; ; i++) {
			struct fs_rc rc;
			unsigned bit = (unsigned)(fs_addr_index(slot) % 256);

			assert_int_equal(fs_sync(va), 0);
			assert_int_equal(fs_read(va, 0, fs_cluster_off(va, 0, FS_A_FD,
					(uint32_t)(fs_addr_index(slot) / 256)) +
					FS_BLOCK, sec, FS_BLOCK), 0);
			assert_int_equal(fs_rc_in(sec, &rc), 0);
			if (!(rc.bitmap[bit / 8] & (1u << (bit % 8))))
				break;
			assert_true(i < 200);
			usleep(10000);
		}
		{
			/* the lock record's block cannot be written */
			struct mp_fault_rule fail = {
				.op = MP_OP_WRITE, .action = MP_FAULT_FAIL,
				.off = fs_res_off(va, slot), .len = FS_BLOCK,
			};

			assert_true(mp_fault_add(va->ext[0].lun, &fail) >= 0);
		}
		assert_int_equal(fs_create_open(va, dino, x, &file, FS_O_RDWR,
						&st, &f), 0);
		assert_true(st.ino == slot);
		assert_int_not_equal(fs_sync(va), 0);   /* in place failed */
		/* nothing of it reachable, the record not alpha's (bravo
		 * reads the directory for the first time: nothing cached) */
		assert_false(name_on_disk(va, x));
		assert_int_equal(fs_lookup(vb, dino, x, &st), -ENOENT);
		assert_int_equal(fs_read(vb, fs_addr_ext(slot), fs_res_off(vb, slot),
					 sec, FS_BLOCK), 0);
		assert_true(lk_lockrec_in(sec, &r) == 0 && r.mode == LK_FREE);
		/* bravo opens the slot by its address, as a kernel holding
		 * the slot's earlier file might: it locks the free FD, finds
		 * it free, lets it go, the record's version now past the one
		 * alpha's create lists */
		assert_int_equal(fs_open(vb, slot, FS_O_RDWR, &f2), -ENOENT);
		assert_int_equal(fs_read(vb, fs_addr_ext(slot), fs_res_off(vb, slot),
					 sec, FS_BLOCK), 0);
		assert_int_equal(lk_lockrec_in(sec, &r2), 0);
		assert_true(r2.version > r.version + 1);
		(void)fs_close(f);
		assert_int_equal(mp_fault_clear(va->ext[0].lun), 0);
		fs_umount(va);       /* its slot and locks left for recovery */

		/* bravo changes the directory: waits for alpha to be dead,
		 * replays its journal */
		snprintf(z, sizeof(z), "z%d", k);
		assert_int_equal(fs_create(vb, dino, z, &file, &st), 0);
		assert_int_equal(fs_lookup(vb, dino, x, &st), 0);
		assert_true(st.ino == slot);
		assert_int_equal(fs_open(vb, st.ino, FS_O_RDWR, &f), 0);
		assert_int_equal(fs_close(f), 0);
		assert_int_equal(fs_sync(vb), 0);
		va = NULL;
		assert_int_equal(fs_mount(fspecs, 1, &mo, &va), 0);
	}
	fs_umount(va);
	fs_umount(vb);
	assert_int_equal(fs_check(specs, 1, &co, &res), 0);
	assert_int_equal(res.errors, 0);
	free(sec);
}

/*
 * A file one host created and closed stays its host's until the create is
 * checkpointed.  Alpha creates x (written, closed); its batch is in place
 * but the checkpoint hangs.  Bravo finds x and asks for it read-write:
 * it must not get it (before, a create did not list the new file's lock
 * and the close let it go at once).  Alpha's power goes; bravo recovers
 * it (replay: the create again, its transaction after the checkpoint),
 * then gets x, writes and fsyncs it.  What bravo wrote must stay: had
 * bravo got x before alpha's checkpoint, the replay would have written
 * x's descriptor as created over bravo's.
 */
static void test_create_kept_until_checkpoint(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mount_opts mo = { .host = "alpha", .no_janitor = true };
	struct fs_create_args dir = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_create_args file = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_check_opts co = { 0 };
	struct fs_check_result res;
	struct fs_stat st, sd, sx;
	char spec[600], buf[4096], back[4096];
	const char *fspecs[1] = { spec };
	fs_vol *va = NULL, *vb;
	fs_file *f;
	int r = -1;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	snprintf(spec, sizeof(spec), "fault::%s", p0);
	assert_int_equal(fs_mount(fspecs, 1, &mo, &va), 0);
	vb = mount1(p0, "bravo", false);
	assert_int_equal(fs_create(va, fs_root(va), "d", &dir, &sd), 0);
	assert_int_equal(fs_sync(va), 0);
	{
		/* alpha's journal header: the next checkpoint hangs */
		struct mp_fault_rule hang = {
			.op = MP_OP_WRITE, .action = MP_FAULT_HANG,
			.off = va->sb.journal_off + (uint64_t)va->slot *
			       va->sb.journal_blocks * FS_BLOCK,
			.len = FS_BLOCK,
		};

		assert_true(mp_fault_add(va->ext[0].lun, &hang) >= 0);
	}
	/* created and closed, nothing written: only the create lists x */
	assert_int_equal(fs_create_open(va, sd.ino, "x", &file, FS_O_RDWR,
					&sx, &f), 0);
	assert_int_equal(fs_close(f), 0);
	/* in place: bravo finds it (a lookup of a directory alpha holds
	 * reads it as it is in place) */
	for (unsigned i = 0; i < 300 && r; i++) {
		r = fs_lookup(vb, sd.ino, "x", &st);
		if (r)
			usleep(10000);
	}
	assert_int_equal(r, 0);
	/* alpha keeps x until the checkpoint, which does not come */
	r = fs_open(vb, sx.ino, FS_O_RDWR, &f);
	if (r == 0) {
		/* what the replay below would undo */
		memset(buf, 'b', sizeof(buf));
		assert_int_equal(fs_pwrite(f, buf, sizeof(buf), 0),
				 (ssize_t)sizeof(buf));
		assert_int_equal(fs_fsync(f), 0);
		assert_int_equal(fs_close(f), 0);
		fail_msg("bravo opened a file alpha created before alpha's "
			 "checkpoint");
	}
	assert_int_equal(r, -EBUSY);
	/* alpha dies: its header write fails, so does every later I/O */
	assert_int_equal(mp_fault_power_cut(va->ext[0].lun,
					    MP_POWERCUT_LOSE_ALL), 0);
	fs_umount(va);
	/* bravo gets x once alpha is recovered (dead, replayed, its locks
	 * broken) */
	for (unsigned i = 0; i < 10 && r; i++)
		r = fs_open(vb, sx.ino, FS_O_RDWR, &f);
	assert_int_equal(r, 0);
	assert_int_equal(fs_fstat(f, &st), 0);
	assert_int_equal(st.size, 0);
	memset(buf, 'b', sizeof(buf));
	assert_int_equal(fs_pwrite(f, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	assert_int_equal(fs_fsync(f), 0);
	assert_int_equal(fs_close(f), 0);
	/* and everything alpha held is bravo's to take (a create in d) */
	assert_int_equal(fs_create(vb, sd.ino, "y", &file, &st), 0);
	assert_int_equal(fs_lookup(vb, sd.ino, "x", &st), 0);
	assert_int_equal(st.size, 4096);
	assert_int_equal(fs_open(vb, sx.ino, FS_O_RDONLY, &f), 0);
	assert_int_equal(fs_pread(f, back, sizeof(back), 0), (ssize_t)sizeof(back));
	assert_memory_equal(back, buf, sizeof(buf));
	assert_int_equal(fs_close(f), 0);
	fs_umount(vb);
	assert_int_equal(fs_check(specs, 1, &co, &res), 0);
	assert_int_equal(res.errors, 0);
}

/*
 * Only the transactions after a dead host's checkpoint are replayed.  A
 * directory kept locked by its host grows out of sub-blocks into file
 * blocks (its sub-block freed); a small file then gets that sub-block for
 * its data, fsync'd (the fsync moves the checkpoint past the move).  The
 * host dies with a later transaction under the same directory lock not in
 * place.  The creates before the move were made under that lock's version
 * too: replaying them writes the directory's old blocks over the file's
 * data.
 */
static void test_replay_from_checkpoint(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mount_opts mo = { .host = "alpha", .no_janitor = true };
	struct fs_create_args dir = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_create_args file = { .type = FS_TYPE_FILE, .mode = 0644 };
	enum { XLEN = 32 << 10 };
	unsigned char *pat = malloc(XLEN), *back = malloc(XLEN);
	struct fs_check_opts co = { 0 };
	struct fs_check_result res;
	struct fs_inode *di;
	struct fs_stat st, sd, sx;
	char spec[600], name[256];
	const char *fspecs[1] = { spec };
	fs_vol *va = NULL, *vb;
	fs_file *f;
	unsigned n;

	(void)state;
	assert_non_null(pat);
	assert_non_null(back);
	for (unsigned i = 0; i < XLEN; i++)
		pat[i] = (unsigned char)(i * 7 + i / 4096);
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	snprintf(spec, sizeof(spec), "fault::%s", p0);
	assert_int_equal(fs_mount(fspecs, 1, &mo, &va), 0);
	assert_int_equal(fs_create(va, fs_root(va), "d", &dir, &sd), 0);
	/* the directory leaves its sub-blocks after a few dozen names
	 * (created back to back: its lock stays held) */
	assert_int_equal(fs_inode_get(va, sd.ino, &di), 0);
	for (n = 0; di->fd.unit == FS_UNIT_SB; n++) {
		if (n == 5000)
			fail_msg("directory still in sub-blocks after %u names", n);
		snprintf(name, sizeof(name), "%012u", n);
		assert_int_equal(fs_create(va, sd.ino, name, &file, &st), 0);
	}
	fs_inode_put(di);
	print_message("directory in file blocks after %u names\n", n);
	assert_int_equal(fs_create(va, sd.ino, "x", &file, &sx), 0);
	assert_int_equal(fs_open(va, sx.ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_pwrite(f, pat, XLEN, 0), XLEN);
	assert_int_equal(fs_fsync(f), 0);
	assert_int_equal(fs_close(f), 0);
	/* dies inside a transaction under the directory's lock */
	{
		struct mp_fault_rule r = {
			.op = MP_OP_WRITE, .action = MP_FAULT_FAIL,
			.off = va->sb.ext[0].area[FS_A_FD].meta_off,
			.len = 1ull << 40,
		};

		assert_true(mp_fault_add(va->ext[0].lun, &r) >= 0);
	}
	snprintf(name, sizeof(name), "%012u", 0);
	assert_int_equal(fs_rename(va, sd.ino, name, sd.ino, "y", 0), 0);
	assert_int_not_equal(fs_sync(va), 0);
	assert_int_equal(mp_fault_clear(va->ext[0].lun), 0);
	fs_umount(va);
	/* bravo recovers alpha (replay) to change the directory */
	vb = mount1(p0, "bravo", false);
	assert_int_equal(fs_create(vb, sd.ino, "z", &file, &st), 0);
	assert_int_equal(fs_lookup(vb, sd.ino, "y", &st), 0);
	assert_int_equal(fs_open(vb, sx.ino, FS_O_RDONLY, &f), 0);
	assert_int_equal(fs_pread(f, back, XLEN, 0), XLEN);
	assert_int_equal(fs_close(f), 0);
	if (memcmp(back, pat, XLEN)) {
		unsigned i = 0;

		while (back[i] == pat[i])
			i++;
		fail_msg("x differs from what was fsync'd at byte %u", i);
	}
	fs_umount(vb);
	assert_int_equal(fs_check(specs, 1, &co, &res), 0);
	assert_int_equal(res.errors, 0);
	free(pat);
	free(back);
}

/*
 * Write-back journal: a file block freed by a transaction the checkpoint
 * has not passed is not allocated again (it may hold file data next, and
 * a replay of an earlier transaction that wrote metadata there must never
 * land on it), by this transaction either; after a sync it is.  Commits
 * are acknowledged before they are written: those made while a batch is
 * written share the next.
 */
static void test_writeback_quarantine(void **state)
{
	const char *specs[1] = { p0 };
	uint64_t a, b, c, commits, batches;
	struct fs_tx *tx;
	fs_vol *v;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	v = mount1(p0, "alpha", false);
	v->alloc_cursor[FS_R_FB] = 0;
	tx = fs_tx_begin(v);
	assert_int_equal(fs_alloc(tx, FS_R_FB, 1, &a), 0);
	assert_int_equal(fs_tx_commit(tx), 0);
	assert_int_equal(fs_sync(v), 0);
	/* freed, committed, not synced: quarantined */
	tx = fs_tx_begin(v);
	assert_int_equal(fs_free(tx, a), 0);
	assert_int_equal(fs_tx_commit(tx), 0);
	assert_true(fs_quarantined(v, a));
	v->alloc_cursor[FS_R_FB] = 0;
	tx = fs_tx_begin(v);
	assert_int_equal(fs_alloc(tx, FS_R_FB, 1, &b), 0);
	assert_true(b != a);
	fs_tx_abort(tx);
	/* the first free one again once the checkpoint passed the free */
	assert_int_equal(fs_sync(v), 0);
	assert_false(fs_quarantined(v, a));
	v->alloc_cursor[FS_R_FB] = 0;
	tx = fs_tx_begin(v);
	assert_int_equal(fs_alloc(tx, FS_R_FB, 1, &b), 0);
	assert_true(b == a);
	/* freed by this very transaction: not taken back by it */
	assert_int_equal(fs_free(tx, b), 0);
	v->alloc_cursor[FS_R_FB] = 0;
	assert_int_equal(fs_alloc(tx, FS_R_FB, 1, &c), 0);
	assert_true(c != b);
	assert_int_equal(fs_tx_commit(tx), 0);
	assert_int_equal(fs_sync(v), 0);
	fs_umount(v);
	/* commits made while the committer writes a batch share the next
	 * one (the log write held a second) */
	{
		struct fs_mount_opts mo = { .host = "alpha" };
		char spec[300];
		const char *fspecs[1] = { spec };
		uint64_t c0, b0;
		struct mp_fault_stats fst = { 0 };
		struct mp_fault_rule slow = {
			.op = MP_OP_WRITE, .action = MP_FAULT_DELAY, .ms = 1000,
			.count = 1,
		};

		snprintf(spec, sizeof(spec), "fault::%s", p0);
		v = NULL;
		assert_int_equal(fs_mount(fspecs, 1, &mo, &v), 0);
		slow.off = v->sb.journal_off;
		slow.len = (uint64_t)v->sb.slots * v->sb.journal_blocks * FS_BLOCK;
		fs_journal_stats(v, &c0, &b0);
		assert_true(mp_fault_add(v->ext[0].lun, &slow) >= 0);
		/* 30 of 3 blocks each: less than the queue takes (half
		 * this 256-block journal) */
		for (int i = 0; i < 30; i++) {
			tx = fs_tx_begin(v);
			assert_int_equal(fs_alloc(tx, FS_R_FB, 1, &b), 0);
			assert_int_equal(fs_tx_commit(tx), 0);
			if (i)
				continue;
			/* the first batch on its way: its log write held */
			for (int k = 0; k < 2000; k++) {
				assert_int_equal(mp_fault_get_stats(v->ext[0].lun,
								    &fst), 0);
				if (fst.held)
					break;
				usleep(1000);
			}
			assert_int_equal(fst.held, 1);
			/* the next gathers until the sync waits, however
			 * slow this build (ThreadSanitizer) */
			fs_journal_gather(v, 60000, 60000);
		}
		assert_int_equal(fs_sync(v), 0);
		fs_journal_stats(v, &commits, &batches);
		print_message("%llu commits in %llu batches\n",
			      (unsigned long long)(commits - c0),
			      (unsigned long long)(batches - b0));
		assert_true(commits - c0 == 30);
		assert_true(batches - b0 == 2);
		fs_umount(v);
	}
}

/*
 * Write-back journal: what alpha commits it reads back at once (the
 * overlay), before anything is in place; bravo reads it once alpha syncs,
 * or once bravo takes a lock it was made under (alpha's hand-over puts it
 * in place first), or within the commit delay.
 */
static void test_writeback_visible(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_create_args dir = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_create_args file = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_stat st, sd;
	uint64_t commits, batches;
	fs_vol *va, *vb;
	int tries;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	va = mount1(p0, "alpha", false);
	vb = mount1(p0, "bravo", false);
	assert_int_equal(fs_create(va, fs_root(va), "d", &dir, &sd), 0);
	assert_int_equal(fs_sync(va), 0);
	/* alpha's own reads: the overlay */
	assert_int_equal(fs_create(va, sd.ino, "a1", &file, &st), 0);
	assert_int_equal(fs_lookup(va, sd.ino, "a1", &st), 0);
	assert_int_equal(fs_getattr(va, st.ino, &st), 0);
	/* a hand-over: bravo creates in d, which needs d's lock, which alpha
	 * gives only once a1 is in place */
	assert_int_equal(fs_create(vb, sd.ino, "b1", &file, &st), 0);
	assert_int_equal(fs_lookup(vb, sd.ino, "a1", &st), 0);
	/* and back: alpha takes d again for a2; bravo reads a2 (the lock is
	 * alpha's, kept) once alpha syncs */
	assert_int_equal(fs_create(va, sd.ino, "a2", &file, &st), 0);
	assert_int_equal(fs_lookup(va, sd.ino, "b1", &st), 0);
	assert_int_equal(fs_sync(va), 0);
	assert_int_equal(fs_lookup(vb, sd.ino, "a2", &st), 0);
	/* without a sync: within the commit delay (100 ms; 10 s allowed) */
	assert_int_equal(fs_create(va, sd.ino, "a3", &file, &st), 0);
	for (tries = 0; tries < 1000; tries++) {
		if (fs_lookup(vb, sd.ino, "a3", &st) == 0)
			break;
		usleep(10000);
	}
	print_message("an unsynced create seen by the other host after %d "
		      "polls of 10 ms\n", tries);
	assert_true(tries < 1000);
	fs_journal_stats(va, &commits, &batches);
	assert_true(commits > 0 && batches > 0);
	fs_umount(vb);
	fs_umount(va);
}

/*
 * Write-back journal and a fenced host: alpha's heartbeat I/O hangs, and
 * the log write of a create's batch is held 3 s, by which time alpha has
 * fenced itself: the write fails, nothing of the batch is on disk, and
 * nothing is given up (a fence is not a loss: every lock is still
 * alpha's).  Once the heartbeat goes on (unfenced) the queued batch is
 * written and bravo reads the create.
 */
static void test_writeback_fenced(void **state)
{
	const char *specs[1] = { p0 };
	struct fs_mount_opts mo = { .host = "alpha", .no_janitor = true };
	struct fs_create_args file = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_stat st;
	struct lk_vol_info li;
	char spec[600];
	const char *fspecs[1] = { spec };
	fs_vol *va = NULL, *vb;
	int i;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	snprintf(spec, sizeof(spec), "fault::%s", p0);
	assert_int_equal(fs_mount(fspecs, 1, &mo, &va), 0);
	assert_int_equal(fs_sync(va), 0);
	{
		struct mp_fault_rule hb = {
			.op = MP_FAULT_ANY_OP, .action = MP_FAULT_HANG,
			.off = va->sb.hb_off,
			.len = va->sb.journal_off - va->sb.hb_off,
		};
		struct mp_fault_rule log = {
			.op = MP_OP_WRITE, .action = MP_FAULT_DELAY, .ms = 3000,
			.off = va->sb.journal_off,
			.len = (uint64_t)va->sb.slots * va->sb.journal_blocks *
			       FS_BLOCK,
			.count = 1,
		};

		assert_true(mp_fault_add(va->ext[0].lun, &hb) >= 0);
		assert_true(mp_fault_add(va->ext[0].lun, &log) >= 0);
	}
	assert_int_equal(fs_create(va, fs_root(va), "p1", &file, &st), 0);
	for (i = 0; i < 1000 && lk_state(fs_lk(va)) != -LK_E_FENCED; i++)
		usleep(10000);
	assert_int_equal(lk_state(fs_lk(va)), -LK_E_FENCED);
	/* past the held log write, which failed fenced */
	usleep(2000000);
	assert_int_not_equal(fs_sync(va), 0);
	lk_get_info(fs_lk(va), &li);
	assert_false(li.abandoned);
	/* the heartbeat goes on */
	assert_int_equal(mp_fault_clear(va->ext[0].lun), 0);
	for (i = 0; i < 1000 && lk_state(fs_lk(va)) != 0; i++)
		usleep(10000);
	assert_int_equal(lk_state(fs_lk(va)), 0);
	assert_int_equal(fs_sync(va), 0);
	vb = mount1(p0, "bravo", false);
	assert_int_equal(fs_lookup(vb, fs_root(vb), "p1", &st), 0);
	fs_umount(vb);
	fs_umount(va);
}

/* fs_rc_in: the free count must match the bitmap; no bit beyond nres. */
static void test_rc_decode(void **state)
{
	static const unsigned nres_cases[] = { 1, 8, 13, 64, 1000, FS_RC_MAX_BITS };
	unsigned char *blk = fs_balloc(FS_BLOCK);
	struct fs_rc rc, back;

	(void)state;
	assert_non_null(blk);
	for (size_t k = 0; k < sizeof(nres_cases) / sizeof(nres_cases[0]); k++) {
		unsigned nres = nres_cases[k], used = 0;

		memset(&rc, 0, sizeof(rc));
		rc.type = FS_R_FB;
		rc.cluster = 3;
		rc.nres = nres;
		for (unsigned i = 0; i < nres; i += 1 + i % 5)
			rc.bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
		/* the last bit in use too (the test says so to the compiler:
		 * nres is never 0 here) */
		if (nres - 1 < FS_RC_MAX_BITS)
			rc.bitmap[(nres - 1) / 8] |= (uint8_t)(1u << ((nres - 1) % 8));
		for (unsigned i = 0; i < nres; i++)
			used += (rc.bitmap[i / 8] >> (i % 8)) & 1;
		rc.nfree = nres - used;
		fs_rc_out(&rc, blk);
		assert_int_equal(fs_rc_in(blk, &back), 0);
		assert_int_equal(back.nfree, rc.nfree);
		assert_memory_equal(back.bitmap, rc.bitmap, sizeof(rc.bitmap));
		/* a free count off by one */
		rc.nfree++;
		fs_rc_out(&rc, blk);
		assert_int_equal(fs_rc_in(blk, &back), -FS_E_CORRUPT);
		rc.nfree--;
		/* a bit set just beyond nres, the free count kept consistent */
		if (nres < FS_RC_MAX_BITS) {
			rc.bitmap[nres / 8] |= (uint8_t)(1u << (nres % 8));
			rc.nfree = rc.nfree ? rc.nfree - 1 : 0;
			fs_rc_out(&rc, blk);
			assert_int_equal(fs_rc_in(blk, &back), -FS_E_CORRUPT);
			/* and far beyond it */
			rc.bitmap[nres / 8] &= (uint8_t)~(1u << (nres % 8));
			rc.bitmap[sizeof(rc.bitmap) - 1] |= 0x80;
			fs_rc_out(&rc, blk);
			assert_int_equal(fs_rc_in(blk, &back), -FS_E_CORRUPT);
		}
	}
	free(blk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mkfs_mount),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_spanned),
		cmocka_unit_test(test_alloc_free),
		cmocka_unit_test(test_alloc_own_busy),
		cmocka_unit_test(test_two_hosts_alloc),
		cmocka_unit_test(test_replay_after_death),
		cmocka_unit_test(test_journal_groups),
		cmocka_unit_test(test_commit_not_in_place),
		cmocka_unit_test(test_fd_prefetch),
		cmocka_unit_test(test_new_lock_with_tx),
		cmocka_unit_test(test_create_kept_until_checkpoint),
		cmocka_unit_test(test_replay_from_checkpoint),
		cmocka_unit_test(test_writeback_quarantine),
		cmocka_unit_test(test_writeback_visible),
		cmocka_unit_test(test_writeback_fenced),
		cmocka_unit_test(test_rc_decode),
	};

	return cmocka_run_group_tests_name("fs_volume", tests, setup, teardown);
}
