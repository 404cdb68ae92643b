/*
 * test_fs_grow.c - online span and grow with two hosts in one process:
 * host a spans the volume onto a new LUN and grows it into its enlarged
 * head LUN; host b takes both in on its next refresh (finding the new LUN
 * among its candidates, reopening the grown one) and allocates there;
 * refusals (a LUN that is an extent already, a LUN that did not grow, a
 * read-only host); fsck is clean on the result.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fs/fs_int.h"
#include "tests/unit/testutil.h"

static char p0[256], p1[256];

static uint64_t capacity(fs_vol *v, unsigned *next)
{
	struct fs_vol_info in;

	assert_int_equal(fs_vol_info(v, &in), 0);
	*next = in.nextents;
	return in.capacity;
}

/* Whether some of ino's blocks lie on extent e. */
static bool on_extent(fs_vol *v, uint64_t ino, unsigned e)
{
	struct fs_map_ext m[64];
	unsigned n;
	fs_file *f;
	bool found = false;

	assert_int_equal(fs_open(v, ino, FS_O_RDONLY, &f), 0);
	assert_true(fs_map(f, 0, 1ull << 40, m, 64, &n) == 0 ||
		    n == 64);
	for (unsigned i = 0; i < n; i++)
		if (m[i].state != FS_MAP_EXT_HOLE && m[i].ext == e)
			found = true;
	fs_close(f);
	return found;
}

static void test_span_grow(void **state)
{
	struct fs_mkfs_opts mk = { .max_hosts = 4, .hb_interval_ms = 250,
				   .hb_dead_ms = 2500, .force = true };
	const char *cand[1] = { p1 };
	struct fs_mount_opts ma = { .host = "a", .no_janitor = true };
	struct fs_mount_opts mb = { .host = "b", .no_janitor = true,
				    .candidates = cand, .ncandidates = 1 };
	struct fs_create_args fa = { .type = FS_TYPE_FILE, .mode = 0644 };
	const char *specs[1] = { p0 }, *both[2] = { p0, p1 };
	struct fs_check_opts co = { .watch_ms = 10 };
	struct fs_check_result res;
	uint64_t c0, c1, c2, cb;
	unsigned na, nb;
	struct fs_stat st;
	char err[256];
	fs_vol *a, *b;
	fs_file *f;

	(void)state;
	tu_make_file(p0, sizeof(p0), "grow0", 96ull << 20);
	tu_make_file(p1, sizeof(p1), "grow1", 96ull << 20);
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	assert_int_equal(fs_mount(specs, 1, &ma, &a), 0);
	assert_int_equal(fs_mount(specs, 1, &mb, &b), 0);
	c0 = capacity(a, &na);
	assert_int_equal(na, 1);

	/* span: a at once, b on its refresh (the candidate's header) */
	assert_int_equal(fs_vol_span(a, p1, err, sizeof(err)), 0);
	c1 = capacity(a, &na);
	assert_int_equal(na, 2);
	assert_true(c1 > c0 + (64ull << 20));
	cb = capacity(b, &nb);
	assert_int_equal(nb, 1);
	assert_true(cb == c0);
	assert_int_equal(fs_geom_refresh(b), 1);
	cb = capacity(b, &nb);
	assert_int_equal(nb, 2);
	assert_true(cb == c1);
	assert_int_equal(fs_geom_refresh(b), 0);
	assert_int_equal(fs_vol_span(a, p1, err, sizeof(err)), -EEXIST);

	/* grow: nothing to add yet; then the head LUN is enlarged */
	assert_int_equal(fs_vol_grow(a, NULL, err, sizeof(err)), -ENOSPC);
	/* asking again and again opens the LUN again each time, but keeps
	 * no handle of a LUN that did not grow (a refresh asks every
	 * interval while a host sees a LUN smaller than another does) */
	for (int i = 0; i < 3; i++)
		assert_int_equal(fs_vol_grow(a, NULL, err, sizeof(err)), -ENOSPC);
	assert_int_equal(a->nretired, 0);
	assert_int_equal(truncate(p0, 192ull << 20), 0);
	assert_int_equal(fs_vol_grow(a, NULL, err, sizeof(err)), 0);
	assert_int_equal(a->nretired, 1);
	c2 = capacity(a, &na);
	assert_int_equal(na, 3);
	assert_true(c2 > c1 + (64ull << 20));

	/* b meets an address on the grown space before any refresh: a file
	 * a wrote there */
	assert_int_equal(fs_create(a, fs_root(a), "big", &fa, &st), 0);
	assert_int_equal(fs_open(a, st.ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_fallocate(f, 0, c1 + (16ull << 20), false), 0);
	assert_int_equal(fs_close(f), 0);
	assert_true(on_extent(a, st.ino, 2));
	assert_true(on_extent(b, st.ino, 2));
	cb = capacity(b, &nb);
	assert_int_equal(nb, 3);
	assert_true(cb == c2);
	assert_int_equal(fs_unlink(b, fs_root(b), "big"), 0);
	fs_umount(b);
	fs_umount(a);

	/* the grown and spanned volume is clean; a read-only host cannot
	 * change it */
	assert_int_equal(fs_check(both, 2, &co, &res), 0);
	assert_int_equal(res.errors, 0);
	mb.read_only = true;
	assert_int_equal(fs_mount(both, 2, &mb, &b), 0);
	assert_int_equal(fs_vol_grow(b, NULL, err, sizeof(err)), -EROFS);
	cb = capacity(b, &nb);
	assert_int_equal(nb, 3);
	fs_umount(b);
	unlink(p0);
	unlink(p1);
}

/* Make every write of host v to its journal (past the journal header)
 * fail: a commit then fails with nothing in place, which is what a crash
 * between a span's extent header and its superblock commit leaves. */
static void fail_journal(fs_vol *v)
{
	uint64_t jsz = (uint64_t)v->sb.journal_blocks * FS_BLOCK;
	struct mp_fault_rule r = { .op = MP_OP_WRITE, .action = MP_FAULT_FAIL,
				   .err = EIO };

	r.off = v->sb.journal_off + (uint64_t)v->slot * jsz + FS_BLOCK;
	r.len = jsz - FS_BLOCK;
	assert_true(mp_fault_add(v->ext[0].lun, &r) >= 0);
}

/* Read extent i's header and the superblock's entry i from the files. */
static void read_tags(const char *head, const char *lun, unsigned i,
		      uint32_t *hdr_tag, uint32_t *sb_tag)
{
	unsigned char *b = tu_alloc(FS_BLOCK);
	struct fs_sb sb;
	struct fs_ext e;
	int fd = open(head, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, FS_BLOCK, FS_SB_SLOT + FS_BLOCK), FS_BLOCK);
	assert_int_equal(fs_sb_in(b, &sb), 0);
	close(fd);
	fd = open(lun, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, FS_BLOCK, 0), FS_BLOCK);
	assert_int_equal(fs_ext_in(b, &e), 0);
	assert_int_equal(e.index, i);
	close(fd);
	*hdr_tag = e.tag;
	*sb_tag = sb.ext[i].tag;
	free(b);
}

/* What an older binary made: extent i untagged in its header and in the
 * superblock. */
static void untag(const char *head, const char *lun, unsigned i)
{
	unsigned char *b = tu_alloc(FS_BLOCK);
	struct fs_sb sb;
	struct fs_ext e;
	int fd = open(head, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, FS_BLOCK, FS_SB_SLOT + FS_BLOCK), FS_BLOCK);
	assert_int_equal(fs_sb_in(b, &sb), 0);
	sb.ext[i].tag = 0;
	fs_sb_out(&sb, b);
	assert_int_equal(pwrite(fd, b, FS_BLOCK, FS_SB_SLOT + FS_BLOCK), FS_BLOCK);
	close(fd);
	fd = open(lun, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, FS_BLOCK, 0), FS_BLOCK);
	assert_int_equal(fs_ext_in(b, &e), 0);
	e.tag = 0;
	fs_ext_out(&e, b);
	assert_int_equal(pwrite(fd, b, FS_BLOCK, 0), FS_BLOCK);
	close(fd);
	free(b);
}

/*
 * A span onto p1 is interrupted after p1's extent header was written
 * (its superblock commit fails); a later span onto p2, a LUN of the same
 * size, commits extent 1.  p1 must never be taken for extent 1: not by a
 * host looking among its candidates (p1 listed first), not by a mount
 * given both or only p1, not by fsck; p1 can be spanned onto later.
 */
static void test_span_interrupted(void **state)
{
	struct fs_mkfs_opts mk = { .max_hosts = 4, .hb_interval_ms = 250,
				   .hb_dead_ms = 2500, .force = true };
	char p2[256], fp0[300];
	const char *cand[2] = { p1, p2 };
	struct fs_mount_opts ma = { .host = "a", .no_janitor = true };
	struct fs_mount_opts mb = { .host = "b", .no_janitor = true,
				    .candidates = cand, .ncandidates = 2 };
	struct fs_mount_opts mr = { .host = "r", .read_only = true };
	const char *specs[1] = { p0 }, *fspecs[1] = { fp0 };
	const char *all[3] = { p0, p1, p2 }, *stale[2] = { p0, p1 };
	const char *good[2] = { p0, p2 };
	struct fs_check_opts co = { .watch_ms = 10 };
	struct fs_check_result res;
	uint32_t ht, st;
	unsigned nb;
	char err[256];
	fs_vol *a, *b, *r;

	(void)state;
	tu_make_file(p0, sizeof(p0), "span0", 96ull << 20);
	tu_make_file(p1, sizeof(p1), "span1", 96ull << 20);
	tu_make_file(p2, sizeof(p2), "span2", 96ull << 20);
	snprintf(fp0, sizeof(fp0), "fault::%s", p0);
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	read_tags(p0, p0, 0, &ht, &st);
	assert_true(ht != 0 && ht == st);

	/* the interrupted span: p1 carries a header for extent 1 */
	assert_int_equal(fs_mount(fspecs, 1, &ma, &a), 0);
	fail_journal(a);
	assert_true(fs_vol_span(a, p1, err, sizeof(err)) < 0);
	assert_int_equal(mp_fault_clear(a->ext[0].lun), 0);
	fs_umount(a);

	/* the span that commits, onto p2 */
	assert_int_equal(fs_mount(specs, 1, &ma, &a), 0);
	assert_int_equal(fs_mount(specs, 1, &mb, &b), 0);
	assert_int_equal(a->sb.nextents, 1);
	assert_int_equal(fs_vol_span(a, p2, err, sizeof(err)), 0);
	read_tags(p0, p1, 1, &ht, &st);
	assert_true(st != 0 && ht != st);
	read_tags(p0, p2, 1, &ht, &st);
	assert_true(ht != 0 && ht == st);

	/* b looks among p1, p2 in that order: takes p2 */
	assert_int_equal(fs_geom_refresh(b), 1);
	assert_int_equal(b->next, 2);
	assert_string_equal(b->ext[1].spec, p2);
	(void)capacity(b, &nb);
	assert_int_equal(nb, 2);
	fs_umount(b);
	fs_umount(a);

	/* mounts: both given (p1 ignored), only p1 (extent 1 missing) */
	assert_int_equal(fs_mount(all, 3, &mr, &r), 0);
	assert_string_equal(r->ext[1].spec, p2);
	fs_umount(r);
	assert_int_equal(fs_mount(stale, 2, &mr, &r), -FS_E_EXTENTS);
	assert_int_equal(fs_check(all, 3, &co, &res), 0);
	assert_int_equal(res.errors, 0);
	assert_int_equal(fs_check(stale, 2, &co, &res), -FS_E_EXTENTS);

	/* p1 is free to be spanned onto: extent 2, its own new tag */
	assert_int_equal(fs_mount(good, 2, &ma, &a), 0);
	assert_int_equal(fs_vol_span(a, p1, err, sizeof(err)), 0);
	fs_umount(a);
	read_tags(p0, p1, 2, &ht, &st);
	assert_true(ht != 0 && ht == st);
	assert_int_equal(fs_check(all, 3, &co, &res), 0);
	assert_int_equal(res.errors, 0);

	/* a volume an older binary made (extent 2 untagged) still mounts;
	 * fsck -n finds nothing wrong, fsck -y tags it */
	untag(p0, p1, 2);
	assert_int_equal(fs_mount(all, 3, &mr, &r), 0);
	assert_string_equal(r->ext[2].spec, p1);
	fs_umount(r);
	assert_int_equal(fs_check(all, 3, &co, &res), 0);
	assert_int_equal(res.errors, 0);
	co.repair = true;
	assert_int_equal(fs_check(all, 3, &co, &res), 0);
	assert_int_equal(res.fixed, 1);
	read_tags(p0, p1, 2, &ht, &st);
	assert_true(ht != 0 && ht == st);
	co.repair = false;
	assert_int_equal(fs_check(all, 3, &co, &res), 0);
	assert_int_equal(res.errors, 0);
	unlink(p0);
	unlink(p1);
	unlink(p2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_span_grow),
		cmocka_unit_test(test_span_interrupted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
