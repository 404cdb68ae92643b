/*
 * test_fs_corrupt.c - flipped bytes in metadata give clean errors (EIO,
 * logged with what and where), never a crash or garbage data, and fsck
 * reports them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "fs/fs_int.h"
#include "tests/unit/testutil.h"

static char path[256];

static struct fs_mkfs_opts mk = {
	.max_hosts = 4, .hb_interval_ms = 250, .hb_dead_ms = 2500,
	.force = true, .files = 1024,
};

static fs_vol *mount1(void)
{
	struct fs_mount_opts mo = { .host = "c" };
	const char *specs[1] = { path };
	fs_vol *v = NULL;

	assert_int_equal(fs_mount(specs, 1, &mo, &v), 0);
	return v;
}

/* A volume with /d (a directory of 200 files) and /big (300 MiB sparse:
 * pointer blocks). */
static void make_tree(uint64_t *dir, uint64_t *big, uint64_t *small)
{
	const char *specs[1] = { path };
	struct fs_create_args a = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_stat st;
	char name[32];
	fs_file *f;
	fs_vol *v;

	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	v = mount1();
	assert_int_equal(fs_create(v, fs_root(v), "d", &a, &st), 0);
	*dir = st.ino;
	a.type = FS_TYPE_FILE;
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "file-%03d", i);
		assert_int_equal(fs_create(v, *dir, name, &a, &st), 0);
		if (i == 7)
			*small = st.ino;
	}
	assert_int_equal(fs_open(v, *small, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_pwrite(f, "hello, world", 12, 0), 12);
	assert_int_equal(fs_close(f), 0);
	assert_int_equal(fs_create(v, fs_root(v), "big", &a, &st), 0);
	*big = st.ino;
	assert_int_equal(fs_open(v, *big, FS_O_RDWR, &f), 0);
	assert_int_equal(fs_pwrite(f, "x", 1, 300ull << 20), 1);
	assert_int_equal(fs_close(f), 0);
	fs_umount(v);
}

static void flip(uint64_t off)
{
	mp_lun *lun;
	unsigned char *b = tu_alloc(512);

	assert_int_equal(mp_lun_open(path, NULL, &lun), 0);
	assert_int_equal(mp_lun_pread(lun, b, 512, off & ~511ull), 512);
	b[off & 511] ^= 0x10;
	assert_int_equal(mp_lun_pwrite(lun, b, 512, off & ~511ull, 0), 512);
	mp_lun_close(lun);
	free(b);
}

static int fsck_n(void)
{
	const char *specs[1] = { path };
	struct fs_check_opts o = { .watch_ms = 10 };
	struct fs_check_result r;

	assert_int_equal(fs_check(specs, 1, &o, &r), 0);
	return (int)r.errors;
}

static int setup(void **state)
{
	(void)state;
	tu_make_file(path, sizeof(path), "fscorrupt", 1ull << 30);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void test_fd(void **state)
{
	uint64_t dir, big, small;
	struct fs_stat st;
	fs_vol *v;
	fs_file *f;

	(void)state;
	make_tree(&dir, &big, &small);
	assert_int_equal(fsck_n(), 0);
	v = mount1();
	flip(fs_res_off(v, small) + FS_BLOCK + 0x30);   /* size field */
	assert_int_equal(fs_getattr(v, small, &st), -EIO);
	assert_int_equal(fs_lookup(v, dir, "file-007", &st), -EIO);
	assert_int_equal(fs_open(v, small, FS_O_RDONLY, &f), -EIO);
	/* the rest still works */
	assert_int_equal(fs_lookup(v, dir, "file-008", &st), 0);
	fs_umount(v);
	assert_true(fsck_n() > 0);
}

/* Free file blocks as the volume counts them. */
static uint64_t free_blocks(void)
{
	struct fs_vol_info in;
	fs_vol *v = mount1();
	uint64_t n;

	assert_int_equal(fs_vol_info(v, &in), 0);
	n = in.free;
	fs_umount(v);
	return n;
}

/* An FD whose checksum is good but one address names an extent the volume
 * does not have: fsck reports the address and keeps the file's other
 * blocks (it once failed the whole FD, and fsck -y freed the blocks the
 * file still maps as leaked). */
static void test_fd_unknown_extent(void **state)
{
	const char *specs[1] = { path };
	struct fs_check_opts o = { .watch_ms = 10, .repair = true };
	struct fs_check_result r;
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0644 };
	unsigned char *b = tu_alloc(FS_BLOCK), *data = tu_alloc(4 << 20);
	uint64_t dir, big, small, off, before;
	struct fs_stat st;
	struct fs_fd fd;
	mp_lun *lun;
	fs_file *f;
	fs_vol *v;

	(void)state;
	make_tree(&dir, &big, &small);
	v = mount1();
	assert_int_equal(fs_create(v, fs_root(v), "four", &a, &st), 0);
	assert_int_equal(fs_open(v, st.ino, FS_O_RDWR, &f), 0);
	memset(data, 0x5a, 4 << 20);
	assert_int_equal(fs_pwrite(f, data, 4 << 20, 0), 4 << 20);
	assert_int_equal(fs_close(f), 0);
	assert_int_equal(fs_fd_read(v, st.ino, &fd), 0);
	assert_int_equal(fd.map, FS_MAP_DIRECT);
	assert_true(fd.addr[3] != 0);
	fd.addr[3] = fs_addr(FS_R_FB, 7, 0);
	off = fs_res_off(v, st.ino) + FS_BLOCK;
	fs_umount(v);
	before = free_blocks();
	assert_int_equal(mp_lun_open(path, NULL, &lun), 0);
	assert_int_equal(mp_lun_pread(lun, b, FS_BLOCK, off), FS_BLOCK);
	fs_fd_out(&fd, b);
	assert_int_equal(mp_lun_pwrite(lun, b, FS_BLOCK, off, 0), FS_BLOCK);
	mp_lun_close(lun);
	assert_int_equal(fs_check(specs, 1, &o, &r), 0);
	assert_true(r.errors > 0);
	/* the three good blocks stay the file's: only the one on no extent
	 * (never counted) may be gone from it */
	assert_true(free_blocks() <= before + (1 << 20));
	free(b);
	free(data);
}

static void test_dir_block(void **state)
{
	uint64_t dir, big, small, a;
	struct fs_inode *ino;
	struct fs_stat st;
	fs_vol *v;
	int found = 0;

	(void)state;
	make_tree(&dir, &big, &small);
	v = mount1();
	/* the directory's block 1: bucket 0 */
	assert_int_equal(fs_inode_get(v, dir, &ino), 0);
	assert_int_equal(fs_fd_read(v, dir, &ino->fd), 0);
	assert_int_equal(fs_bmap_get(ino, FS_BLOCK / fs_unit(v, &ino->fd), &a), 0);
	flip(fs_unit_off(v, a) + FS_BLOCK % fs_unit(v, &ino->fd) + 100);
	fs_inode_put(ino);
	/* some names are in the damaged bucket: their lookups fail cleanly */
	for (int i = 0; i < 200; i++) {
		char name[32];
		int r;

		snprintf(name, sizeof(name), "file-%03d", i);
		r = fs_lookup(v, dir, name, &st);
		assert_true(r == 0 || r == -EIO);
		found += r == 0;
	}
	assert_true(found < 200);
	fs_umount(v);
	assert_true(fsck_n() > 0);
}

static uint64_t restore_off;

static void *restore_later(void *arg)
{
	(void)arg;
	usleep(20000);
	flip(restore_off);        /* the "other host's" write lands */
	return NULL;
}

/* A directory block that fails its checksum for a moment (another host
 * rewriting it in place while we read without the directory's lock: that
 * host holds it, so lookups cannot take it shared) is read again, not
 * reported: every name is found. */
static void test_dir_block_racing(void **state)
{
	struct fs_mount_opts mo = { .host = "writer" };
	const char *specs[1] = { path };
	uint64_t dir, big, small, a;
	struct fs_inode *ino, *wd;
	struct fs_stat st;
	pthread_t t;
	fs_vol *v, *w = NULL;

	(void)state;
	make_tree(&dir, &big, &small);
	v = mount1();
	assert_int_equal(fs_mount(specs, 1, &mo, &w), 0);
	assert_int_equal(fs_inode_get(w, dir, &wd), 0);
	assert_int_equal(fs_inode_lock(wd, LK_EXCL, 0), 0);
	assert_int_equal(fs_inode_get(v, dir, &ino), 0);
	assert_int_equal(fs_fd_read(v, dir, &ino->fd), 0);
	assert_int_equal(fs_bmap_get(ino, FS_BLOCK / fs_unit(v, &ino->fd), &a), 0);
	restore_off = fs_unit_off(v, a) + FS_BLOCK % fs_unit(v, &ino->fd) + 100;
	fs_inode_put(ino);
	flip(restore_off);
	assert_int_equal(pthread_create(&t, NULL, restore_later, NULL), 0);
	for (int i = 0; i < 200; i++) {
		char name[32];

		snprintf(name, sizeof(name), "file-%03d", i);
		assert_int_equal(fs_lookup(v, dir, name, &st), 0);
	}
	pthread_join(t, NULL);
	fs_inode_unlock(wd);
	fs_inode_put(wd);
	fs_umount(w);
	fs_umount(v);
	assert_int_equal(fsck_n(), 0);
}

static void test_pointer_block(void **state)
{
	uint64_t dir, big, small;
	unsigned char buf[16];
	fs_vol *v;
	fs_file *f;

	(void)state;
	make_tree(&dir, &big, &small);
	v = mount1();
	{
		struct fs_fd fd;

		assert_int_equal(fs_fd_read(v, big, &fd), 0);
		assert_int_equal(fd.map, FS_MAP_IND1);
		flip(fs_res_off(v, fd.addr[0]) + 0x100);
	}
	assert_int_equal(fs_open(v, big, FS_O_RDONLY, &f), 0);
	/* reading through the damaged map: an error, not zeros or garbage */
	assert_int_equal(fs_pread(f, buf, 1, 300ull << 20), -EIO);
	assert_int_equal(fs_close(f), 0);
	fs_umount(v);
	assert_true(fsck_n() > 0);
}

static void test_cluster_header(void **state)
{
	uint64_t dir, big, small;
	struct fs_vol_info in;
	fs_vol *v;

	(void)state;
	make_tree(&dir, &big, &small);
	v = mount1();
	flip(fs_cluster_off(v, 0, FS_A_FB, 0) + FS_BLOCK + 0x50);
	assert_int_equal(fs_vol_info(v, &in), -EIO);
	fs_umount(v);
	assert_true(fsck_n() > 0);
}

static void test_superblock(void **state)
{
	uint64_t dir, big, small;
	const char *specs[1] = { path };
	struct fs_mount_opts mo = { .host = "c" };
	fs_vol *v = NULL;

	(void)state;
	make_tree(&dir, &big, &small);
	flip(8192 + 0x70);      /* block size field */
	assert_int_equal(fs_mount(specs, 1, &mo, &v), -EIO);
	assert_null(v);
}

/* fsck -y frees what the namespace walk did not reach, but it must not
 * discard (punch, UNMAP) blocks when the walk was incomplete: a damaged
 * directory hides the files under it, whose data is still there for a
 * later repair to find. */
static void test_fsck_partial_walk_keeps_data(void **state)
{
	const char *specs[1] = { path };
	struct fs_create_args a = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_check_opts o = { .watch_ms = 10, .repair = true };
	struct fs_check_result r;
	struct fs_inode *ino;
	struct fs_stat st;
	uint64_t dir, file, blk, data_off;
	unsigned char *buf = tu_alloc(1 << 20), *back = tu_alloc(4096);
	mp_lun *lun;
	fs_file *f;
	fs_vol *v;

	(void)state;
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	v = mount1();
	assert_int_equal(fs_create(v, fs_root(v), "d", &a, &st), 0);
	dir = st.ino;
	a.type = FS_TYPE_FILE;
	assert_int_equal(fs_create(v, dir, "keep", &a, &st), 0);
	file = st.ino;
	memset(buf, 0x5a, 1 << 20);
	assert_int_equal(fs_open(v, file, FS_O_RDWR, &f), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fs_pwrite(f, buf, 1 << 20, (uint64_t)i << 20),
				 1 << 20);
	assert_int_equal(fs_close(f), 0);
	assert_int_equal(fs_inode_get(v, file, &ino), 0);
	assert_int_equal(fs_fd_read(v, file, &ino->fd), 0);
	assert_int_equal(fs_bmap_get(ino, 0, &blk), 0);
	assert_true(blk && !(blk & FS_ADDR_TBZ));
	data_off = fs_unit_off(v, blk);
	fs_inode_put(ino);
	/* everything in place first: a batch written after the flip would
	 * write the directory's block over it */
	assert_int_equal(fs_sync(v), 0);
	/* the directory's bucket 0, where its one name is */
	assert_int_equal(fs_inode_get(v, dir, &ino), 0);
	assert_int_equal(fs_fd_read(v, dir, &ino->fd), 0);
	assert_int_equal(fs_bmap_get(ino, FS_BLOCK / fs_unit(v, &ino->fd), &blk), 0);
	flip(fs_unit_off(v, blk) + FS_BLOCK % fs_unit(v, &ino->fd) + 100);
	fs_inode_put(ino);
	fs_umount(v);

	assert_int_equal(fs_check(specs, 1, &o, &r), 0);
	assert_true(r.errors > 0);
	assert_int_equal(mp_lun_open(path, NULL, &lun), 0);
	assert_int_equal(mp_lun_pread(lun, back, 4096, data_off), 4096);
	mp_lun_close(lun);
	assert_memory_equal(back, buf, 4096);
	free(buf);
	free(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd),
		cmocka_unit_test(test_fd_unknown_extent),
		cmocka_unit_test(test_dir_block),
		cmocka_unit_test(test_dir_block_racing),
		cmocka_unit_test(test_pointer_block),
		cmocka_unit_test(test_cluster_header),
		cmocka_unit_test(test_superblock),
		cmocka_unit_test(test_fsck_partial_walk_keeps_data),
	};

	return cmocka_run_group_tests_name("fs_corrupt", tests, setup, teardown);
}
