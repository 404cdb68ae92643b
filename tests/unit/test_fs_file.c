/*
 * test_fs_file.c - file data: inline, sub-blocks, file blocks, pointer
 * block levels, sparse files, truncate, and the open lock between hosts.
 * Files are made with the internal FD allocator (directories are tested on
 * their own).
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

#include "fs/fs_int.h"
#include "tests/unit/testutil.h"

static char path[256];
static fs_vol *va, *vb;

static struct fs_mkfs_opts mk = {
	.label = "files", .max_hosts = 8, .hb_interval_ms = 250,
	.hb_dead_ms = 2500, .force = true, .block_size = 1 << 20,
};

static fs_vol *mount1(const char *host)
{
	struct fs_mount_opts mo = { .host = host };
	const char *specs[1] = { path };
	fs_vol *v = NULL;

	assert_int_equal(fs_mount(specs, 1, &mo, &v), 0);
	return v;
}

static int setup(void **state)
{
	const char *specs[1];

	(void)state;
	tu_make_file(path, sizeof(path), "fsfile", 2ull << 30);
	specs[0] = path;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	va = mount1("alpha");
	vb = mount1("bravo");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fs_umount(va);
	fs_umount(vb);
	unlink(path);
	return 0;
}

static uint64_t new_file(fs_vol *v)
{
	struct fs_tx *tx = fs_tx_begin(v);
	struct fs_fd fd;

	assert_int_equal(fs_inode_alloc(tx, FS_T_FILE, S_IFREG | 0644, 0, 0,
					fs_root(v), &fd, NULL, LK_FREE), 0);
	assert_int_equal(fs_tx_commit(tx), 0);
	return fd.self;
}

static void check_pattern(fs_file *f, uint64_t off, size_t len, uint32_t seed)
{
	unsigned char *want = malloc(len), *got = malloc(len);

	tu_fill(want, len, seed);
	assert_int_equal(fs_pread(f, got, len, off), (ssize_t)len);
	assert_memory_equal(got, want, len);
	free(want);
	free(got);
}

static void write_pattern(fs_file *f, uint64_t off, size_t len, uint32_t seed)
{
	unsigned char *b = malloc(len);

	tu_fill(b, len, seed);
	assert_int_equal(fs_pwrite(f, b, len, off), (ssize_t)len);
	free(b);
}

/* A file grows from inline data to sub-blocks to file blocks to indirect
 * maps; every byte written reads back, holes read as zeros. */
static void test_growth(void **state)
{
	uint64_t ino = new_file(va);
	struct fs_stat st;
	unsigned char z[4096];
	fs_file *f;

	(void)state;
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	write_pattern(f, 0, 700, 1);                     /* inline */
	assert_int_equal(fs_fstat(f, &st), 0);
	assert_int_equal(st.size, 700);
	assert_int_equal(st.alloc, 0);
	write_pattern(f, 700, 3000, 2);                  /* -> sub-blocks */
	check_pattern(f, 0, 700, 1);
	check_pattern(f, 700, 3000, 2);
	write_pattern(f, 100000, 5000, 3);               /* still SB (<=128K) */
	check_pattern(f, 700, 3000, 2);
	assert_int_equal(fs_pread(f, z, sizeof(z), 20000), sizeof(z));
	for (size_t i = 0; i < sizeof(z); i++)
		assert_int_equal(z[i], 0);
	write_pattern(f, 300000, 1000, 4);               /* -> file blocks */
	check_pattern(f, 0, 700, 1);
	check_pattern(f, 100000, 5000, 3);
	check_pattern(f, 300000, 1000, 4);
	/* beyond 256 direct blocks: one level of pointer blocks */
	write_pattern(f, 300ull << 20, 8192, 5);
	/* beyond 256*503 blocks (125 GiB): two levels, sparse */
	write_pattern(f, 200ull << 30, 4096, 6);
	check_pattern(f, 300000, 1000, 4);
	check_pattern(f, 300ull << 20, 8192, 5);
	check_pattern(f, 200ull << 30, 4096, 6);
	assert_int_equal(fs_fstat(f, &st), 0);
	assert_true(st.size == (200ull << 30) + 4096);
	/* 1 + 1 + 1 data blocks (the first holds 0..~1M), plus map blocks */
	assert_true(st.alloc >= 3ull << 20 && st.alloc < (3ull << 20) + 65536);
	assert_int_equal(fs_fsync(f), 0);
	assert_int_equal(fs_close(f), 0);
	/* the other host sees all of it */
	assert_int_equal(fs_open(vb, ino, FS_O_RDONLY, &f), 0);
	check_pattern(f, 0, 700, 1);
	check_pattern(f, 300ull << 20, 8192, 5);
	check_pattern(f, 200ull << 30, 4096, 6);
	assert_int_equal(fs_close(f), 0);
}

/* Unaligned writes and reads across unit boundaries. */
static void test_unaligned(void **state)
{
	uint64_t ino = new_file(va);
	fs_file *f;

	(void)state;
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	write_pattern(f, 0, 3 << 20, 10);
	write_pattern(f, (1 << 20) - 333, 777, 11);      /* across a block end */
	check_pattern(f, (1 << 20) - 333, 777, 11);
	check_pattern(f, 0, 1000, 10);
	write_pattern(f, 5, 3, 12);
	check_pattern(f, 5, 3, 12);
	assert_int_equal(fs_close(f), 0);
}

static void test_truncate(void **state)
{
	uint64_t ino = new_file(va);
	unsigned char b[8192];
	struct fs_stat st;
	uint64_t fr0[FS_R_TYPES], fr1[FS_R_TYPES], tot[FS_R_TYPES];
	fs_file *f;

	(void)state;
	assert_int_equal(fs_count(va, fr0, tot), 0);
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	write_pattern(f, 0, 5 << 20, 20);
	assert_int_equal(fs_ftruncate(f, (2 << 20) + 100), 0);
	assert_int_equal(fs_fstat(f, &st), 0);
	assert_true(st.size == (2 << 20) + 100);
	check_pattern(f, 0, 4096, 20);
	/* growing again reads zeros past the old end */
	assert_int_equal(fs_ftruncate(f, 4 << 20), 0);
	assert_int_equal(fs_pread(f, b, sizeof(b), (2 << 20) + 100), sizeof(b));
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(fs_ftruncate(f, 0), 0);
	assert_int_equal(fs_count(va, fr1, tot), 0);
	assert_true(fr1[FS_R_FB] == fr0[FS_R_FB]);
	assert_int_equal(fs_pread(f, b, 10, 0), 0);
	assert_int_equal(fs_close(f), 0);

	/* shrinking a sparse file whose only data lies in the last unit kept
	 * (nothing to free): the size still changes, on disk too (found by
	 * the model-based test) */
	ino = new_file(va);
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	write_pattern(f, 456179, 1000, 21);
	assert_int_equal(fs_ftruncate(f, 1), 0);
	assert_int_equal(fs_fstat(f, &st), 0);
	assert_int_equal(st.size, 1);
	assert_int_equal(fs_close(f), 0);
	/* bravo reads the FD without its lock: as it is in place */
	assert_int_equal(fs_sync(va), 0);
	assert_int_equal(fs_getattr(vb, ino, &st), 0);
	assert_int_equal(st.size, 1);
}

/* Read-write opens exclude other hosts; read-only ones share. */
static void test_open_lock(void **state)
{
	uint64_t ino = new_file(va);
	fs_file *fa, *fb, *fc;

	(void)state;
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &fa), 0);
	assert_int_equal(fs_open(vb, ino, FS_O_RDWR, &fb), -EBUSY);
	assert_int_equal(fs_open(vb, ino, FS_O_RDONLY, &fb), -EBUSY);
	/* same host: a second open shares the hold */
	assert_int_equal(fs_open(va, ino, FS_O_RDONLY, &fc), 0);
	write_pattern(fa, 0, 4096, 30);
	assert_int_equal(fs_pwrite(fc, "x", 1, 0), -EBADF);
	assert_int_equal(fs_close(fa), 0);
	assert_int_equal(fs_close(fc), 0);
	assert_int_equal(fs_open(vb, ino, FS_O_RDONLY, &fb), 0);
	assert_int_equal(fs_open(va, ino, FS_O_RDONLY, &fa), 0);
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &fc), -EBUSY);
	check_pattern(fb, 0, 4096, 30);
	assert_int_equal(fs_close(fa), 0);
	assert_int_equal(fs_close(fb), 0);
	assert_int_equal(fs_open(vb, ino, FS_O_RDWR, &fb), 0);
	assert_int_equal(fs_close(fb), 0);
}

/* A new named file in the root (fsck finds it), its address. */
static uint64_t named_file(fs_vol *v)
{
	static unsigned n;
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_stat st;
	char name[32];

	snprintf(name, sizeof(name), "sb%u", n++);
	assert_int_equal(fs_create(v, fs_root(v), name, &a, &st), 0);
	return st.ino;
}

/* 8 KiB files until one takes a file block: no sub-block is left */
static void use_up_sub_blocks(fs_vol *vs, const unsigned char *b)
{
	struct fs_stat st;
	fs_file *f;

	for (unsigned i = 0; ; i++) {
		assert_true(i < 20);
		assert_int_equal(fs_open(vs, named_file(vs), FS_O_RDWR, &f), 0);
		assert_int_equal(fs_pwrite(f, b, 8 << 10, 0), 8 << 10);
		assert_int_equal(fs_fstat(f, &st), 0);
		assert_int_equal(fs_close(f), 0);
		if (st.alloc >= mk.block_size)
			break;
	}
}

/*
 * Sub-blocks (the small files' units) run out before file blocks: small
 * files then take file blocks, and nothing a writer was told is written
 * goes (a file's size grown in memory, not yet committed, included).
 */
static void test_sub_blocks_run_out(void **state)
{
	struct fs_mkfs_opts m = mk;
	unsigned char *b = malloc(128 << 10), *r = malloc(128 << 10);
	const char *specs[1];
	struct fs_mount_opts mo = { .host = "sbfull" };
	struct fs_stat st;
	struct fs_create_args da = { .type = FS_TYPE_DIR, .mode = 0755 };
	uint64_t inos[100], y, z, d1;
	char small[256];
	unsigned in_fb = 0;
	fs_vol *vs;
	fs_file *f, *fy, *fz;

	(void)state;
	/* 256 descriptors: 512 sub-blocks of 8 KiB (60 files of 13 use
	 * them up) */
	m.files = 256;
	tu_make_file(small, sizeof(small), "fssb", 160ull << 20);
	specs[0] = small;
	assert_int_equal(fs_mkfs(specs, 1, &m), 0);
	assert_int_equal(fs_mount(specs, 1, &mo, &vs), 0);
	/* y: 10 KiB in sub-blocks, its second one mapped past its size */
	y = named_file(vs);
	assert_int_equal(fs_open(vs, y, FS_O_RDWR, &fy), 0);
	tu_fill(b, 20 << 10, 7);
	assert_int_equal(fs_pwrite(fy, b, 10 << 10, 0), 10 << 10);
	assert_int_equal(fs_fsync(fy), 0);
	/* d1: a directory in sub-blocks */
	assert_int_equal(fs_create(vs, fs_root(vs), "d1", &da, &st), 0);
	d1 = st.ino;
	/* z: 500 bytes, inline in its descriptor */
	z = named_file(vs);
	assert_int_equal(fs_open(vs, z, FS_O_RDWR, &fz), 0);
	assert_int_equal(fs_pwrite(fz, b, 500, 0), 500);
	assert_int_equal(fs_fsync(fz), 0);
	/* 60 files of 100 KiB (13 sub-blocks each): the sub-blocks run out
	 * on the way, every write still succeeds */
	for (unsigned i = 0; i < 60; i++) {
		inos[i] = named_file(vs);
		assert_int_equal(fs_open(vs, inos[i], FS_O_RDWR, &f), 0);
		tu_fill(b, 100 << 10, 100 + i);
		assert_int_equal(fs_pwrite(f, b, 100 << 10, 0), 100 << 10);
		assert_int_equal(fs_fstat(f, &st), 0);
		if (st.alloc >= mk.block_size)
			in_fb++;
		assert_int_equal(fs_close(f), 0);
	}
	assert_true(in_fb > 0 && in_fb < 60);
	/* the last few sub-blocks */
	use_up_sub_blocks(vs, b);
	/* z outgrows its descriptor: its 500 bytes move to a file block */
	tu_fill(b, 20 << 10, 7);
	assert_int_equal(fs_pwrite(fz, b + 500, 3000, 500), 3000);
	assert_int_equal(fs_fstat(fz, &st), 0);
	assert_true(st.alloc >= mk.block_size);
	assert_int_equal(fs_pread(fz, r, 3500, 0), 3500);
	assert_memory_equal(r, b, 3500);
	assert_int_equal(fs_close(fz), 0);
	/* y grows inside its mapped sub-block (in memory only), then past
	 * it, where it needs a unit the volume has no sub-block for */
	assert_int_equal(fs_pwrite(fy, b + (10 << 10), 4 << 10, 10 << 10), 4 << 10);
	assert_int_equal(fs_pwrite(fy, b + (16 << 10), 4 << 10, 16 << 10), 4 << 10);
	assert_int_equal(fs_fstat(fy, &st), 0);
	assert_int_equal(st.size, 20 << 10);
	assert_true(st.alloc >= mk.block_size);
	memset(r, 0xee, 20 << 10);
	assert_int_equal(fs_pread(fy, r, 20 << 10, 0), 20 << 10);
	assert_memory_equal(r, b, 14 << 10);
	for (unsigned i = 14 << 10; i < 16 << 10; i++)
		assert_int_equal(r[i], 0);
	assert_memory_equal(r + (16 << 10), b + (16 << 10), 4 << 10);
	assert_int_equal(fs_close(fy), 0);
	/* a new directory starts in a file block, and d1 grows into file
	 * blocks: every name can be looked up */
	use_up_sub_blocks(vs, b);
	assert_int_equal(fs_create(vs, fs_root(vs), "d2", &da, &st), 0);
	for (unsigned i = 0; i < 80; i++) {
		char name[256];
		struct fs_create_args fa = { .type = FS_TYPE_FILE, .mode = 0644 };

		/* 200 characters: a few blocks' worth of names each */
		snprintf(name, sizeof(name), "%0196u", i);
		assert_int_equal(fs_create(vs, i % 2 ? d1 : st.ino, name, &fa,
					   &(struct fs_stat){ 0 }), 0);
	}
	for (unsigned i = 0; i < 80; i++) {
		char name[256];
		struct fs_stat s2;

		snprintf(name, sizeof(name), "%0196u", i);
		assert_int_equal(fs_lookup(vs, i % 2 ? d1 : st.ino, name, &s2), 0);
	}
	{
		struct fs_stat s1, s2;

		assert_int_equal(fs_getattr(vs, d1, &s1), 0);
		assert_int_equal(fs_getattr(vs, st.ino, &s2), 0);
		assert_true(s1.alloc >= mk.block_size);
		assert_true(s2.alloc >= mk.block_size);
		/* in a parent already in file blocks (nothing to free by
		 * moving it) */
		use_up_sub_blocks(vs, b);
		assert_int_equal(fs_create(vs, d1, "d3", &da, &s1), 0);
		assert_int_equal(fs_getattr(vs, s1.ino, &s2), 0);
		assert_true(s2.alloc >= mk.block_size);
	}
	/* and everything reads back, after a remount */
	fs_umount(vs);
	assert_int_equal(fs_mount(specs, 1, &mo, &vs), 0);
	for (unsigned i = 0; i < 60; i++) {
		assert_int_equal(fs_open(vs, inos[i], FS_O_RDONLY, &f), 0);
		tu_fill(b, 100 << 10, 100 + i);
		assert_int_equal(fs_pread(f, r, 100 << 10, 0), 100 << 10);
		assert_memory_equal(r, b, 100 << 10);
		assert_int_equal(fs_close(f), 0);
	}
	fs_umount(vs);
	/* and the volume is clean */
	{
		struct fs_check_opts co = { 0 };
		struct fs_check_result res;

		assert_int_equal(fs_check(specs, 1, &co, &res), 0);
		assert_int_equal(res.errors, 0);
	}
	unlink(small);
	free(b);
	free(r);
}

static void test_enospc(void **state)
{
	unsigned char *b = malloc(1 << 20);
	struct fs_vol_info in;
	char small[256];
	const char *specs[1] = { small };
	struct fs_mount_opts mo = { .host = "full" };
	uint64_t off = 0, ino;
	ssize_t n = 0;
	fs_vol *vs;
	fs_file *f;

	(void)state;
	/* a small volume of its own, to fill quickly */
	tu_make_file(small, sizeof(small), "fsfull", 160ull << 20);
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	assert_int_equal(fs_mount(specs, 1, &mo, &vs), 0);
	ino = new_file(vs);
	assert_int_equal(fs_vol_info(vs, &in), 0);
	assert_int_equal(fs_open(vs, ino, FS_O_RDWR, &f), 0);
	tu_fill(b, 1 << 20, 40);
	for (;;) {
		n = fs_pwrite(f, b, 1 << 20, off);
		if (n < 0)
			break;
		off += (uint64_t)n;
		assert_true(off <= in.free);
	}
	assert_int_equal(n, -ENOSPC);
	/* everything acknowledged is there */
	check_pattern(f, 0, 1 << 20, 40);
	check_pattern(f, off - (1 << 20), 1 << 20, 40);
	assert_int_equal(fs_ftruncate(f, 0), 0);
	assert_int_equal(fs_close(f), 0);
	fs_umount(vs);
	unlink(small);
	free(b);
}

/* fallocate reserves "to be zeroed" blocks; the first write zeroes the
 * rest of its block; SEEK_DATA/HOLE see written blocks only; punch gives
 * blocks back. */
static void test_fallocate_punch_seek(void **state)
{
	uint64_t ino = new_file(va);
	uint64_t fr0[FS_R_TYPES], fr1[FS_R_TYPES], tot[FS_R_TYPES];
	unsigned char *b = malloc(2 << 20);
	struct fs_stat st;
	fs_file *f;

	(void)state;
	assert_int_equal(fs_count(va, fr0, tot), 0);
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_fallocate(f, 0, 8 << 20, false), 0);
	assert_int_equal(fs_fstat(f, &st), 0);
	assert_true(st.size == 8 << 20);
	assert_true(st.alloc >= 8u << 20);
	assert_int_equal(fs_count(va, fr1, tot), 0);
	assert_true(fr1[FS_R_FB] == fr0[FS_R_FB] - 8);
	/* reserved blocks read as zeros */
	memset(b, 0xee, 1 << 20);
	assert_int_equal(fs_pread(f, b, 1 << 20, 3 << 20), 1 << 20);
	for (size_t i = 0; i < (1 << 20); i++)
		assert_int_equal(b[i], 0);
	/* everything reserved is a hole for SEEK_DATA */
	assert_int_equal(fs_seek(f, 0, true), -ENXIO);
	/* first write into a reserved block: the rest of it reads zeros */
	write_pattern(f, (2 << 20) + 4096, 100, 50);
	check_pattern(f, (2 << 20) + 4096, 100, 50);
	assert_int_equal(fs_pread(f, b, 4096, 2 << 20), 4096);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(fs_seek(f, 0, true), 2 << 20);
	assert_int_equal(fs_seek(f, 2 << 20, false), 3 << 20);
	assert_int_equal(fs_seek(f, 9 << 20, true), -ENXIO);
	/* punch: whole blocks freed, the edges zeroed */
	write_pattern(f, 4 << 20, 2 << 20, 51);
	assert_int_equal(fs_punch(f, (4 << 20) + 1000, (1 << 20) + 2000), 0);
	check_pattern(f, 4 << 20, 1000, 51);
	assert_int_equal(fs_pread(f, b, (1 << 20) + 2000, (4 << 20) + 1000),
			 (1 << 20) + 2000);
	for (size_t i = 0; i < (1 << 20) + 2000; i++)
		assert_int_equal(b[i], 0);
	/* past the punched range the data is untouched */
	{
		unsigned char *want = malloc(2 << 20);

		tu_fill(want, 2 << 20, 51);
		assert_int_equal(fs_pread(f, b, 4096, (6 << 20) - 4096), 4096);
		assert_memory_equal(b, want + (2 << 20) - 4096, 4096);
		free(want);
	}
	assert_int_equal(fs_fstat(f, &st), 0);
	assert_true(st.size == 8 << 20);
	assert_int_equal(fs_ftruncate(f, 0), 0);
	assert_int_equal(fs_close(f), 0);
	assert_int_equal(fs_count(va, fr1, tot), 0);
	assert_true(fr1[FS_R_FB] == fr0[FS_R_FB]);
	free(b);
}

/* A sequential writer into a sized, unallocated file (a thin disk): units
 * allocated ahead of it read as zeros and go back at the last close if it
 * did not reach them; "to be zeroed" units written whole or in part read
 * right before and after fsync, and on the other host after close. */
static void test_write_behind(void **state)
{
	uint64_t ino = new_file(va);
	uint64_t fr0[FS_R_TYPES], fr1[FS_R_TYPES], tot[FS_R_TYPES];
	unsigned char *z = malloc(1 << 20);
	struct fs_stat st;
	fs_file *f;

	(void)state;
	assert_int_equal(fs_count(va, fr0, tot), 0);
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_ftruncate(f, 64 << 20), 0);
	assert_int_equal(fs_fallocate(f, 48 << 20, 16 << 20, true), 0);
	for (unsigned i = 1; i < 20; i++)
		write_pattern(f, (uint64_t)i << 20, 1 << 20, 100 + i);
	/* the stream got units ahead of it */
	assert_int_equal(fs_fstat(f, &st), 0);
	assert_true(st.alloc > (19u + 16u + 4u) << 20);
	/* ahead and never written: zeros; so is unit 0 (a hole) */
	assert_int_equal(fs_pread(f, z, 1 << 20, 20 << 20), 1 << 20);
	for (size_t i = 0; i < (1 << 20); i++)
		assert_int_equal(z[i], 0);
	assert_int_equal(fs_seek(f, 0, true), 1 << 20);
	/* into reserved units: whole, and a part of one */
	write_pattern(f, 50 << 20, 1 << 20, 200);
	write_pattern(f, (52 << 20) + 4096, 100, 201);
	check_pattern(f, 50 << 20, 1 << 20, 200);
	check_pattern(f, (52 << 20) + 4096, 100, 201);
	assert_int_equal(fs_fsync(f), 0);
	check_pattern(f, 50 << 20, 1 << 20, 200);
	assert_int_equal(fs_pread(f, z, 4096, 52 << 20), 4096);
	for (size_t i = 0; i < 4096; i++)
		assert_int_equal(z[i], 0);
	assert_int_equal(fs_close(f), 0);
	/* 19 written, 16 reserved: the units ahead went back */
	assert_int_equal(fs_count(va, fr1, tot), 0);
	assert_int_equal(fr0[FS_R_FB] - fr1[FS_R_FB], 19 + 16);
	assert_int_equal(fs_open(vb, ino, FS_O_RDONLY, &f), 0);
	for (unsigned i = 1; i < 20; i++)
		check_pattern(f, (uint64_t)i << 20, 1 << 20, 100 + i);
	check_pattern(f, 50 << 20, 1 << 20, 200);
	check_pattern(f, (52 << 20) + 4096, 100, 201);
	assert_int_equal(fs_pread(f, z, 1 << 20, 30 << 20), 1 << 20);
	for (size_t i = 0; i < (1 << 20); i++)
		assert_int_equal(z[i], 0);
	assert_int_equal(fs_close(f), 0);
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_ftruncate(f, 0), 0);
	assert_int_equal(fs_close(f), 0);
	assert_int_equal(fs_count(va, fr1, tot), 0);
	assert_true(fr1[FS_R_FB] == fr0[FS_R_FB]);
	free(z);
}

/* An fsync whose commit fails keeps what it had to commit: the size grown
 * by writes in place, the TBZ clears of first writes.  Before, a failed
 * commit forgot the size and the next fsync succeeded without it. */
static void fsync_fails(bool tbz)
{
	struct fs_mount_opts mo = { .host = "charlie" };
	char spec[300];
	const char *specs[1] = { spec };
	struct mp_fault_rule r = { .op = MP_OP_WRITE, .action = MP_FAULT_FAIL };
	uint64_t size = tbz ? 3 << 20 : 768 << 10;
	struct fs_stat st;
	fs_vol *vc = NULL;
	fs_file *f;
	uint64_t ino;

	snprintf(spec, sizeof(spec), "fault::%s", path);
	assert_int_equal(fs_mount(specs, 1, &mo, &vc), 0);
	ino = new_file(vc);
	assert_int_equal(fs_open(vc, ino, FS_O_RDWR, &f), 0);
	/* unit 0 allocated with 512 KiB of data, units 1-3 reserved past
	 * the size (to be zeroed) */
	write_pattern(f, 0, 512 << 10, 1);
	assert_int_equal(fs_fallocate(f, 1 << 20, 3 << 20, true), 0);
	assert_int_equal(fs_fsync(f), 0);
	/* in memory only: the size (writes in place), a TBZ clear */
	write_pattern(f, 512 << 10, 256 << 10, 2);
	if (tbz)
		write_pattern(f, 2 << 20, 1 << 20, 3);
	assert_true(mp_fault_add(vc->ext[0].lun, &r) >= 0);
	assert_int_not_equal(fs_fsync(f), 0);
	assert_int_equal(mp_fault_clear(vc->ext[0].lun), 0);
	assert_int_equal(fs_fsync(f), 0);
	/* another host sees it all */
	assert_int_equal(fs_getattr(va, ino, &st), 0);
	assert_int_equal(st.size, size);
	assert_int_equal(fs_close(f), 0);
	assert_int_equal(fs_open(va, ino, FS_O_RDONLY, &f), 0);
	check_pattern(f, 0, 512 << 10, 1);
	check_pattern(f, 512 << 10, 256 << 10, 2);
	if (tbz)
		check_pattern(f, 2 << 20, 1 << 20, 3);
	assert_int_equal(fs_close(f), 0);
	fs_umount(vc);
}

static void test_fsync_fails(void **state)
{
	(void)state;
	fsync_fails(false);
	fsync_fails(true);
}

/* Several threads write parts of the same "to be zeroed" units at once:
 * each unit is zero-filled once, by whichever writer claims it first, and
 * nobody's data is lost. */
struct tbz_writer {
	fs_file *f;
	unsigned t;
};

static void *tbz_write(void *arg)
{
	struct tbz_writer *w = arg;

	for (unsigned u = 0; u < 16; u++)
		write_pattern(w->f, ((uint64_t)u << 20) + w->t * (256u << 10),
			      192u << 10, u * 4 + w->t);
	return NULL;
}

/* Transactions of one host allocating at once: the cluster lock record
 * names only the host, so without the host's own exclusion two of them
 * took the same free bits (blocks shared by two files). */
#define AC_THREADS 4
#define AC_ROUNDS 30
#define AC_N 4
static uint64_t ac_got[AC_THREADS][AC_ROUNDS * AC_N];

static void *alloc_conc(void *arg)
{
	uint64_t *out = arg;

	for (unsigned k = 0; k < AC_ROUNDS; k++) {
		struct fs_tx *tx = fs_tx_begin(va);

		assert_int_equal(fs_alloc(tx, FS_R_FB, AC_N, out + k * AC_N), 0);
		assert_int_equal(fs_tx_commit(tx), 0);
	}
	return NULL;
}

static int cmp_addr(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

static void test_alloc_concurrent(void **state)
{
	pthread_t th[AC_THREADS];
	uint64_t *all = &ac_got[0][0];
	size_t n = AC_THREADS * AC_ROUNDS * AC_N;

	(void)state;
	for (unsigned t = 0; t < AC_THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, alloc_conc,
						ac_got[t]), 0);
	for (unsigned t = 0; t < AC_THREADS; t++)
		pthread_join(th[t], NULL);
	qsort(all, n, sizeof(*all), cmp_addr);
	for (size_t i = 1; i < n; i++)
		assert_true(all[i] != all[i - 1]);
	for (size_t i = 0; i < n; i++) {
		struct fs_tx *tx = fs_tx_begin(va);

		assert_int_equal(fs_free(tx, all[i]), 0);
		assert_int_equal(fs_tx_commit(tx), 0);
	}
}

/* Writers and truncates of their own files at once on one host: a
 * truncate freeing blocks in clusters other transactions of ours hold
 * defers those frees past its commit instead of waiting while holding
 * its own clusters (two such waits in opposite orders ran into their
 * timeouts: ETIMEDOUT, and ENOSPC for the writers behind them). */
static void *churn(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	unsigned char *b = tu_alloc(1 << 20);
	char name[32];

	memset(b, 'a' + (int)t, 1 << 20);
	for (unsigned r = 0; r < 6; r++) {
		struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0644 };
		struct fs_stat st;
		fs_file *f;

		snprintf(name, sizeof(name), "churn%u-%u", t, r);
		assert_int_equal(fs_create(va, fs_root(va), name, &a, &st), 0);
		assert_int_equal(fs_open(va, st.ino, FS_O_RDWR, &f), 0);
		/* out of order: the file's blocks interleave with the others'
		 * across clusters in no common order */
		for (unsigned k = 0; k < 20; k++)
			assert_int_equal(fs_pwrite(f, b, 1 << 20,
						   (uint64_t)((k * 7) % 20) << 20),
					 1 << 20);
		assert_int_equal(fs_ftruncate(f, 3 << 20), 0);
		assert_int_equal(fs_close(f), 0);
		if (r % 2)
			assert_int_equal(fs_unlink(va, fs_root(va), name), 0);
	}
	free(b);
	return NULL;
}

static void test_alloc_free_concurrent(void **state)
{
	pthread_t th[6];
	time_t t0 = time(NULL);

	(void)state;
	for (uintptr_t t = 0; t < 6; t++)
		assert_int_equal(pthread_create(&th[t], NULL, churn, (void *)t), 0);
	for (unsigned t = 0; t < 6; t++)
		pthread_join(th[t], NULL);
	/* no lock timeouts (30 s each) on the way */
	assert_true(time(NULL) - t0 < 30);
}

static void test_tbz_concurrent(void **state)
{
	uint64_t ino = new_file(va);
	struct tbz_writer w[4];
	pthread_t th[4];
	unsigned char *z = malloc(64 << 10);
	fs_file *f;

	(void)state;
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_ftruncate(f, 16 << 20), 0);
	assert_int_equal(fs_fallocate(f, 0, 16 << 20, true), 0);
	for (unsigned t = 0; t < 4; t++) {
		w[t] = (struct tbz_writer){ .f = f, .t = t };
		assert_int_equal(pthread_create(&th[t], NULL, tbz_write, &w[t]), 0);
	}
	for (unsigned t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned u = 0; u < 16; u++) {
			for (unsigned t = 0; t < 4; t++) {
				uint64_t o = ((uint64_t)u << 20) + t * (256u << 10);

				check_pattern(f, o, 192u << 10, u * 4 + t);
				assert_int_equal(fs_pread(f, z, 64 << 10, o + (192u << 10)),
						 64 << 10);
				for (size_t i = 0; i < (64 << 10); i++)
					assert_int_equal(z[i], 0);
			}
		}
		assert_int_equal(fs_fsync(f), 0);   /* and once committed */
	}
	assert_int_equal(fs_ftruncate(f, 0), 0);
	assert_int_equal(fs_close(f), 0);
	free(z);
}

/* Readers share a file's pointer block cache (rw held shared): many
 * reader threads over a file with more pointer blocks than a small cache
 * holds, while another thread keeps emptying the cache, each read the
 * block it asked for (the cache once handed out pointers into entries
 * another reader was refilling). */
enum { PBC_PBS = 40, PBC_READS = 1500 };

struct pbc_reader {
	fs_file *f;
	unsigned seed, bad;
	int err;
};

static int pbc_stop;             /* atomic */

static void *pbc_read(void *arg)
{
	struct pbc_reader *r = arg;
	unsigned char want[4096], got[4096];

	for (unsigned i = 0; i < PBC_READS && !r->bad && !r->err; i++) {
		unsigned k = (unsigned)rand_r(&r->seed) % PBC_PBS;
		uint64_t off = (uint64_t)k * FS_PB_ADDRS << 20;
		ssize_t n = fs_pread(r->f, got, sizeof(got), off);

		if (n != (ssize_t)sizeof(got)) {
			r->err = n < 0 ? (int)n : -EIO;
			break;
		}
		tu_fill(want, sizeof(want), 1000 + k);
		if (memcmp(got, want, sizeof(want)))
			r->bad++;
	}
	return NULL;
}

static void *pbc_forget(void *arg)
{
	struct fs_inode *ino = arg;

	while (!__atomic_load_n(&pbc_stop, __ATOMIC_ACQUIRE)) {
		fs_bmap_forget(ino);
		usleep(200);
	}
	return NULL;
}

static void test_pbcache_concurrent(void **state)
{
	uint64_t ino = new_file(va);
	struct pbc_reader r[4];
	pthread_t th[4], fg;
	struct fs_inode *in;
	fs_file *f;

	(void)state;
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_inode_get(va, ino, &in), 0);   /* f's inode */
	/* one written unit at the start of each level-1 pointer block's
	 * range: PBC_PBS pointer blocks, the rest holes */
	for (unsigned k = 0; k < PBC_PBS; k++)
		write_pattern(f, (uint64_t)k * FS_PB_ADDRS << 20, 4096, 1000 + k);
	assert_int_equal(fs_fsync(f), 0);
	__atomic_store_n(&pbc_stop, 0, __ATOMIC_RELEASE);
	assert_int_equal(pthread_create(&fg, NULL, pbc_forget, in), 0);
	for (unsigned t = 0; t < 4; t++) {
		r[t] = (struct pbc_reader){ .f = f, .seed = 77 + t };
		assert_int_equal(pthread_create(&th[t], NULL, pbc_read, &r[t]), 0);
	}
	for (unsigned t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	__atomic_store_n(&pbc_stop, 1, __ATOMIC_RELEASE);
	pthread_join(fg, NULL);
	fs_inode_put(in);
	for (unsigned t = 0; t < 4; t++) {
		assert_int_equal(r[t].err, 0);
		assert_int_equal(r[t].bad, 0);
	}
	assert_int_equal(fs_ftruncate(f, 0), 0);
	assert_int_equal(fs_close(f), 0);
}

/* fs_aio: requests inside written blocks go to the LUN and complete on
 * another thread, the rest are served in the caller; every callback runs
 * once with the right result and data. */
static pthread_mutex_t aio_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t aio_c = PTHREAD_COND_INITIALIZER;
static unsigned aio_done_n;

static void aio_cb(struct fs_aio *a)
{
	pthread_mutex_lock(&aio_m);
	aio_done_n++;
	(*(unsigned *)a->priv)++;
	pthread_cond_signal(&aio_c);
	pthread_mutex_unlock(&aio_m);
}

static void test_aio(void **state)
{
	enum { N = 24 };
	uint64_t ino = new_file(va);
	struct fs_aio a[N];
	unsigned calls[N] = { 0 };
	unsigned char *buf[N], *want = malloc(1 << 20);
	fs_file *f;

	(void)state;
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_ftruncate(f, 12 << 20), 0);
	write_pattern(f, 0, 8 << 20, 300);          /* units 0-7 data, 8-11 holes */
	aio_done_n = 0;
	for (unsigned i = 0; i < N; i++) {
		buf[i] = fs_balloc(8192);
		memset(&a[i], 0, sizeof(a[i]));
		a[i].buf = buf[i];
		a[i].cb = aio_cb;
		a[i].priv = &calls[i];
		a[i].len = 4096;
		/* reads in data, across a unit edge, unaligned, in a hole;
		 * writes in data and in a hole */
		switch (i % 6) {
		case 0: a[i].off = (uint64_t)i * 300000 / 4096 * 4096 % (8 << 20); break;
		case 1: a[i].off = (2 << 20) - 2048; break;
		case 2: a[i].off = 12345 + i; a[i].len = 1000; break;
		case 3: a[i].off = (9 << 20) + i * 4096; break;
		case 4: a[i].write = true; a[i].off = (5 << 20) + i * 8192;
			tu_fill(buf[i], 4096, 400 + i); break;
		case 5: a[i].write = true; a[i].off = (10 << 20) + i * 8192;
			tu_fill(buf[i], 4096, 400 + i); break;
		}
		assert_int_equal(fs_aio_submit(f, &a[i]), 0);
	}
	pthread_mutex_lock(&aio_m);
	while (aio_done_n < N)
		pthread_cond_wait(&aio_c, &aio_m);
	pthread_mutex_unlock(&aio_m);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(calls[i], 1);
		assert_int_equal(a[i].result, (ssize_t)a[i].len);
		if (!a[i].write && a[i].off < (8 << 20)) {
			/* the pattern is a function of the offset */
			unsigned char *all = malloc(8 << 20);

			tu_fill(all, 8 << 20, 300);
			assert_memory_equal(buf[i], all + a[i].off, a[i].len);
			free(all);
		} else if (!a[i].write) {
			for (size_t k = 0; k < a[i].len; k++)
				assert_int_equal(buf[i][k], 0);
		} else {
			check_pattern(f, a[i].off, 4096, 400 + i);
		}
	}
	/* a read past the end is short */
	memset(&a[0], 0, sizeof(a[0]));
	a[0].buf = buf[0];
	a[0].len = 8192;
	a[0].off = (12 << 20) - 4096;
	a[0].cb = aio_cb;
	a[0].priv = &calls[0];
	assert_int_equal(fs_aio_submit(f, &a[0]), 0);
	assert_int_equal(a[0].result, 4096);
	/* a write on a read-only open is refused without a callback */
	{
		fs_file *ro;

		assert_int_equal(fs_open(va, ino, FS_O_RDONLY, &ro), 0);
		a[1].write = true;
		a[1].cb = aio_cb;
		assert_int_equal(fs_aio_submit(ro, &a[1]), -EBADF);
		assert_int_equal(fs_close(ro), 0);
	}
	/* truncate waits for reads in flight */
	aio_done_n = 0;
	for (unsigned i = 0; i < 8; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].buf = buf[i];
		a[i].len = 8192;
		a[i].off = (uint64_t)i << 20;
		a[i].cb = aio_cb;
		a[i].priv = &calls[i];
		assert_int_equal(fs_aio_submit(f, &a[i]), 0);
	}
	assert_int_equal(fs_ftruncate(f, 0), 0);
	pthread_mutex_lock(&aio_m);
	while (aio_done_n < 8)
		pthread_cond_wait(&aio_c, &aio_m);
	pthread_mutex_unlock(&aio_m);
	{
		unsigned char *all = malloc(8 << 20);

		tu_fill(all, 8 << 20, 300);
		for (unsigned i = 0; i < 8; i++) {
			assert_int_equal(a[i].result, 8192);
			assert_memory_equal(buf[i], all + ((size_t)i << 20), 8192);
		}
		free(all);
	}
	assert_int_equal(fs_close(f), 0);
	for (unsigned i = 0; i < N; i++)
		free(buf[i]);
	free(want);
}

/* A completion callback submits again: a mapped read goes out from the
 * callback; with its pointer block no longer cached, or a request for the
 * synchronous path (unaligned), fs_aio_submit refuses with -EWOULDBLOCK
 * instead of waiting on the completion thread, and the same request then
 * goes through from an ordinary thread. */
struct chain {
	fs_file *f;
	struct fs_inode *ino;
	unsigned step;
	int refused[2];
	bool done;
};

static void chain_cb(struct fs_aio *a)
{
	struct chain *c = a->priv;
	int ret;

	pthread_mutex_lock(&aio_m);
	c->step++;
	pthread_mutex_unlock(&aio_m);
	if (c->step == 1) {                  /* cached: goes out from here */
		ret = fs_aio_submit(c->f, a);
		if (!ret)
			return;
		c->refused[0] = ret;
	} else if (c->step == 2) {           /* not cached, then unaligned */
		fs_bmap_forget(c->ino);
		c->refused[0] = fs_aio_submit(c->f, a);
		a->off += 512;
		a->len = 1000;
		c->refused[1] = fs_aio_submit(c->f, a);
	}
	pthread_mutex_lock(&aio_m);
	c->done = true;
	pthread_cond_signal(&aio_c);
	pthread_mutex_unlock(&aio_m);
}

static void test_aio_from_callback(void **state)
{
	uint64_t ino = new_file(va);
	uint64_t off = (uint64_t)FS_PB_ADDRS << 20;   /* behind a pointer block */
	unsigned char *buf = fs_balloc(4096);
	struct chain c = { 0 };
	struct fs_aio a = { .buf = buf, .len = 4096, .off = off, .cb = chain_cb,
			    .priv = &c };
	fs_file *f;

	(void)state;
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &f), 0);
	write_pattern(f, off, 8192, 500);
	assert_int_equal(fs_inode_get(va, ino, &c.ino), 0);
	c.f = f;
	assert_int_equal(fs_aio_submit(f, &a), 0);
	pthread_mutex_lock(&aio_m);
	while (!c.done)
		pthread_cond_wait(&aio_c, &aio_m);
	pthread_mutex_unlock(&aio_m);
	assert_int_equal(c.step, 2);
	assert_int_equal(c.refused[0], -EWOULDBLOCK);
	assert_int_equal(c.refused[1], -EWOULDBLOCK);
	/* from this thread the unaligned request is served (synchronously) */
	c.done = false;
	assert_int_equal(fs_aio_submit(f, &a), 0);
	assert_int_equal(a.result, 1000);
	{
		unsigned char want[8192];

		tu_fill(want, sizeof(want), 500);
		assert_memory_equal(buf, want + 512, 1000);
	}
	fs_inode_put(c.ino);
	assert_int_equal(fs_ftruncate(f, 0), 0);
	assert_int_equal(fs_close(f), 0);
	free(buf);
}

/*
 * Lock changes of a file while fs_aio requests on it are in flight: a
 * reader keeps 16 reads at the LUN through a read-only open while this
 * thread opens and closes the file read-write 100 times, each converting
 * the file's lock (shared -> exclusive -> shared: lock-record I/O on the
 * same LUN).  The completions take the inode's mutex; a lock change held
 * it across its I/O, and then both waited for each other (before the
 * lock-transition mutex).  SIGALRM fails a hung run.
 */
enum { STREAM_N = 16 };
struct streamer {
	fs_file *f;
	pthread_mutex_t m;
	pthread_cond_t c;
	struct fs_aio a[STREAM_N];
	unsigned char *buf[STREAM_N];
	bool busy[STREAM_N], stop;
	unsigned long done;
	int err;
};

static void stream_cb(struct fs_aio *a)
{
	struct streamer *s = a->priv;
	unsigned i = (unsigned)(a - s->a);

	pthread_mutex_lock(&s->m);
	if (a->result != (ssize_t)a->len && !s->err)
		s->err = a->result < 0 ? (int)a->result : -EIO;
	s->busy[i] = false;
	s->done++;
	pthread_cond_signal(&s->c);
	pthread_mutex_unlock(&s->m);
}

static void *stream_main(void *arg)
{
	struct streamer *s = arg;
	unsigned seq = 0;

	pthread_mutex_lock(&s->m);
	while (!s->stop && !s->err) {
		bool any = false;

		for (unsigned i = 0; i < STREAM_N; i++) {
			if (s->busy[i])
				continue;
			memset(&s->a[i], 0, sizeof(s->a[i]));
			s->a[i].buf = s->buf[i];
			s->a[i].len = 4096;
			s->a[i].off = (uint64_t)(seq++ * 7919u % 2048u) * 4096;
			s->a[i].cb = stream_cb;
			s->a[i].priv = s;
			s->busy[i] = true;
			any = true;
			pthread_mutex_unlock(&s->m);
			{
				int r = fs_aio_submit(s->f, &s->a[i]);

				pthread_mutex_lock(&s->m);
				if (r) {
					s->busy[i] = false;
					s->err = r;
				}
			}
		}
		if (!any)
			pthread_cond_wait(&s->c, &s->m);
	}
	/* wait for what is still in flight */
	for (;;) {
		bool any = false;

		for (unsigned i = 0; i < STREAM_N; i++)
			any |= s->busy[i];
		if (!any)
			break;
		pthread_cond_wait(&s->c, &s->m);
	}
	pthread_mutex_unlock(&s->m);
	return NULL;
}

static void test_aio_lock_change(void **state)
{
	uint64_t ino = new_file(va);
	struct streamer s = { .m = PTHREAD_MUTEX_INITIALIZER,
			      .c = PTHREAD_COND_INITIALIZER };
	unsigned long before;
	fs_file *w, *ro;
	pthread_t t;

	(void)state;
	assert_int_equal(fs_open(va, ino, FS_O_RDWR, &w), 0);
	write_pattern(w, 0, 8 << 20, 700);
	assert_int_equal(fs_close(w), 0);
	assert_int_equal(fs_open(va, ino, FS_O_RDONLY, &ro), 0);
	s.f = ro;
	for (unsigned i = 0; i < STREAM_N; i++)
		s.buf[i] = fs_balloc(4096);
	alarm(120);
	assert_int_equal(pthread_create(&t, NULL, stream_main, &s), 0);
	for (int k = 0; k < 100; k++) {
		assert_int_equal(fs_open(va, ino, FS_O_RDWR, &w), 0);
		assert_int_equal(fs_close(w), 0);
		pthread_mutex_lock(&s.m);
		before = s.done;
		/* some reads completed around this lock change */
		while (s.done < before + 8 && !s.err)
			pthread_cond_wait(&s.c, &s.m);
		pthread_mutex_unlock(&s.m);
	}
	pthread_mutex_lock(&s.m);
	s.stop = true;
	pthread_cond_signal(&s.c);
	pthread_mutex_unlock(&s.m);
	pthread_join(t, NULL);
	alarm(0);
	assert_int_equal(s.err, 0);
	assert_true(s.done >= 800);
	/* the reads returned the file's data */
	{
		unsigned char *all = malloc(8 << 20);

		tu_fill(all, 8 << 20, 700);
		for (unsigned i = 0; i < STREAM_N; i++)
			assert_memory_equal(s.buf[i], all + s.a[i].off, 4096);
		free(all);
	}
	for (unsigned i = 0; i < STREAM_N; i++)
		free(s.buf[i]);
	assert_int_equal(fs_close(ro), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_unaligned),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_open_lock),
		cmocka_unit_test(test_fallocate_punch_seek),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_write_behind),
		cmocka_unit_test(test_tbz_concurrent),
		cmocka_unit_test(test_alloc_concurrent),
		cmocka_unit_test(test_alloc_free_concurrent),
		cmocka_unit_test(test_aio),
		cmocka_unit_test(test_pbcache_concurrent),
		cmocka_unit_test(test_aio_from_callback),
		cmocka_unit_test(test_aio_lock_change),
		cmocka_unit_test(test_fsync_fails),
		cmocka_unit_test(test_sub_blocks_run_out),
	};

	return cmocka_run_group_tests_name("fs_file", tests, setup, teardown);
}
