/*
 * test_fs_rdm.c - raw device mapping files: the record survives every
 * rewrite of its FD (mode, rename), the file owns no blocks, its size is
 * the LUN's and cannot be changed, unlink frees it; a damaged record is
 * told apart from a damaged FD and fsck reports it; the record codec
 * refuses out-of-range fields.
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

static char path[256];

static void sample(struct fs_rdm *r)
{
	memset(r, 0, sizeof(*r));
	r->mode = FS_RDM_PHYSICAL;
	r->id_kind = FS_RDM_ID_SCSI;
	r->capacity = 64ull << 20;
	r->sector = 512;
	r->mtime_ns = 1234567890123ull;
	strcpy(r->id, "naa.60000000000000001234567890abcdef");
	strcpy(r->serial, "1234567890abcdef");
	strcpy(r->vendor, "IET");
	strcpy(r->product, "VIRTUAL-DISK");
	strcpy(r->host, "esx1");
	strcpy(r->spec, "iscsi://10.0.0.1/iqn.x:y/1");
}

static void test_codec(void **state)
{
	unsigned char b[FS_RDM_LEN];
	struct fs_rdm r, o;

	(void)state;
	sample(&r);
	fs_rdm_out(&r, b);
	assert_int_equal(fs_rdm_in(b, &o), 0);
	assert_memory_equal(&r, &o, sizeof(r));
	b[0x30] ^= 1;
	assert_int_equal(fs_rdm_in(b, &o), -FS_E_CHECKSUM);
	memset(b, 0, sizeof(b));
	assert_int_equal(fs_rdm_in(b, &o), -FS_E_BADMAGIC);
	r.sector = 1000;      /* sealed, but out of range */
	fs_rdm_out(&r, b);
	assert_int_equal(fs_rdm_in(b, &o), -FS_E_CORRUPT);
	sample(&r);
	r.id[0] = 0;          /* names nothing */
	fs_rdm_out(&r, b);
	assert_int_equal(fs_rdm_in(b, &o), -FS_E_CORRUPT);
}

static int fsck_errors(void)
{
	const char *specs[1] = { path };
	struct fs_check_opts o = { .watch_ms = 10 };
	struct fs_check_result res;

	assert_int_equal(fs_check(specs, 1, &o, &res), 0);
	return (int)res.errors;
}

static void test_file(void **state)
{
	struct fs_mkfs_opts mk = { .max_hosts = 4, .hb_interval_ms = 250,
				   .hb_dead_ms = 2500, .force = true };
	struct fs_mount_opts mo = { .host = "t" };
	const char *specs[1] = { path };
	struct fs_create_args a = { .type = FS_TYPE_RDM, .mode = 0600 };
	struct fs_setattr sa = { .mask = FS_SET_MODE, .mode = 0644 };
	struct fs_rdm r, got;
	struct fs_stat st, st2;
	struct fs_fd fd;
	unsigned char *blk;
	fs_vol *v;

	(void)state;
	tu_make_file(path, sizeof(path), "fsrdm", 512ull << 20);
	assert_int_equal(fs_mkfs(specs, 1, &mk), 0);
	assert_int_equal(fs_mount(specs, 1, &mo, &v), 0);
	sample(&r);
	a.rdm = NULL;
	assert_int_equal(fs_create(v, fs_root(v), "x-rdmp.vmdk", &a, &st), -EINVAL);
	a.rdm = &r;
	assert_int_equal(fs_create(v, fs_root(v), "x-rdmp.vmdk", &a, &st), 0);
	assert_int_equal(st.type, FS_TYPE_RDM);
	assert_true(st.size == r.capacity);
	assert_true(st.alloc == 0);
	/* rewrites of the FD keep the record */
	assert_int_equal(fs_setattr(v, st.ino, &sa, &st2), 0);
	assert_int_equal(fs_rename(v, fs_root(v), "x-rdmp.vmdk", fs_root(v),
				   "y-rdmp.vmdk", 0), 0);
	assert_int_equal(fs_rdm_get(v, st.ino, &got), 0);
	assert_memory_equal(&r, &got, sizeof(r));
	/* the size is the LUN's */
	sa.mask = FS_SET_SIZE;
	sa.size = 1 << 20;
	assert_int_equal(fs_setattr(v, st.ino, &sa, &st2), -EINVAL);
	assert_int_equal(fs_rdm_get(v, fs_root(v), &got), -EINVAL);
	fs_umount(v);
	assert_int_equal(fsck_errors(), 0);

	/* a damaged record inside an intact FD */
	assert_int_equal(fs_mount(specs, 1, &mo, &v), 0);
	assert_int_equal(fs_fd_read(v, st.ino, &fd), 0);
	fd.rdm[0x40] ^= 0x20;
	blk = tu_alloc(FS_BLOCK);
	fs_fd_out(&fd, blk);
	assert_int_equal(fs_write(v, fs_addr_ext(st.ino),
				  fs_res_off(v, st.ino) + FS_BLOCK, blk, FS_BLOCK), 0);
	free(blk);
	assert_int_equal(fs_rdm_get(v, st.ino, &got), -EIO);   /* logged */
	fs_umount(v);
	assert_int_equal(fsck_errors(), 1);

	/* unlink frees it: the volume is clean again */
	assert_int_equal(fs_mount(specs, 1, &mo, &v), 0);
	assert_int_equal(fs_unlink(v, fs_root(v), "y-rdmp.vmdk"), 0);
	assert_int_equal(fs_rdm_get(v, st.ino, &got), -ENOENT);
	fs_umount(v);
	assert_int_equal(fsck_errors(), 0);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codec),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
