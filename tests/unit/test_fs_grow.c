/*
 * test_fs_grow.c - online span and grow with two hosts in one process:
 * host a spans the volume onto a new LUN and grows it into its enlarged
 * head LUN; host b takes both in on its next refresh (finding the new LUN
 * among its candidates, reopening the grown one) and allocates there;
 * refusals (a LUN that is an extent already, a LUN that did not grow, a
 * read-only host); fsck is clean on the result.
 */
#include <errno.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_span_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
