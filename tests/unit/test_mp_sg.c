/*
 * test_mp_sg.c - the SG_IO backend without hardware: how host, driver and
 * SCSI status with fixed- and descriptor-format sense map to errors (and so
 * to failover decisions), and that a non-sg file is refused.  This kernel
 * has no SCSI subsystem; nothing here touches a real /dev/sg device.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "multipath/mp_int.h"
#include "tests/unit/testutil.h"

static int fixed(int key, int asc, int ascq)
{
	unsigned char s[18] = { 0x70, 0, (unsigned char)key, 0, 0, 0, 0, 10,
				0, 0, 0, 0, (unsigned char)asc,
				(unsigned char)ascq };

	return mp_sg_result(0, 0x08, 0x02, s, sizeof(s));
}

static int desc(int key, int asc, int ascq)
{
	unsigned char s[8] = { 0x72, (unsigned char)key, (unsigned char)asc,
			       (unsigned char)ascq, 0, 0, 0, 0 };

	return mp_sg_result(0, 0x08, 0x02, s, sizeof(s));
}

static void test_sense(void **state)
{
	(void)state;
	/* both sense formats decode the same */
	assert_int_equal(fixed(0x3, 0x11, 0x00), -MP_E_MEDIUM);
	assert_int_equal(desc(0x3, 0x11, 0x00), -MP_E_MEDIUM);
	assert_int_equal(fixed(0x5, 0x25, 0x00), -MP_E_PDL);
	assert_int_equal(desc(0x5, 0x25, 0x00), -MP_E_PDL);
	assert_int_equal(fixed(0x2, 0x3a, 0x00), -MP_E_PDL);
	assert_int_equal(fixed(0x5, 0x20, 0x00), -EOPNOTSUPP);
	assert_int_equal(desc(0x5, 0x21, 0x00), -EINVAL);
	assert_int_equal(fixed(0x5, 0x1a, 0x00), -MP_E_ILLEGAL);
	assert_int_equal(fixed(0x6, 0x29, 0x00), -EAGAIN);   /* UA */
	assert_int_equal(desc(0x2, 0x04, 0x01), -EAGAIN);    /* becoming ready */
	assert_int_equal(fixed(0xe, 0x1d, 0x00), -MP_E_MISCOMPARE);
	assert_int_equal(fixed(0x7, 0x27, 0x00), -EROFS);
	assert_int_equal(fixed(0xb, 0x47, 0x00), -MP_E_TRANSPORT);
	/* CHECK CONDITION with no or garbage sense */
	assert_int_equal(mp_sg_result(0, 0, 0x02, NULL, 0), -MP_E_CHECK);
	{
		unsigned char junk[4] = { 0x12, 0x34, 0x56, 0x78 };

		assert_int_equal(mp_sg_result(0, 0, 0x02, junk, 4), -MP_E_CHECK);
	}
}

static void test_status_and_host(void **state)
{
	(void)state;
	assert_int_equal(mp_sg_result(0, 0, 0x00, NULL, 0), 0);
	assert_int_equal(mp_sg_result(0, 0, 0x08, NULL, 0), -MP_E_BUSY);
	assert_int_equal(mp_sg_result(0, 0, 0x28, NULL, 0), -MP_E_QFULL);
	assert_int_equal(mp_sg_result(0, 0, 0x18, NULL, 0), -MP_E_RESCONFLICT);
	/* path failures: failover material */
	assert_int_equal(mp_sg_result(0x01, 0, 0, NULL, 0), -MP_E_TRANSPORT);
	assert_int_equal(mp_sg_result(0x0e, 0, 0, NULL, 0), -MP_E_TRANSPORT);
	assert_int_equal(mp_sg_result(0x0f, 0, 0, NULL, 0), -MP_E_TRANSPORT);
	assert_int_equal(mp_sg_result(0x03, 0, 0, NULL, 0), -ETIMEDOUT);
	assert_int_equal(mp_sg_result(0, 0x06, 0, NULL, 0), -ETIMEDOUT);
	/* retry (elsewhere) */
	assert_int_equal(mp_sg_result(0x0d, 0, 0, NULL, 0), -EAGAIN);
	assert_int_equal(mp_sg_result(0x0c, 0, 0, NULL, 0), -EAGAIN);
	/* a host error wins over whatever status came with it */
	assert_int_equal(mp_sg_result(0x01, 0x08, 0x02, NULL, 0),
			 -MP_E_TRANSPORT);
	assert_int_equal(mp_sg_result(0x7f, 0, 0, NULL, 0), -EIO);
}

static void test_open_refuses(void **state)
{
	char path[256], spec[300];
	mp_lun *lun = NULL;

	(void)state;
	tu_make_file(path, sizeof(path), "mp_sg", 1 << 20);
	snprintf(spec, sizeof(spec), "sg:%s", path);
	assert_int_equal(mp_lun_open(spec, NULL, &lun), -ENOTTY);
	assert_int_equal(mp_lun_open("sg:/nonexistent/sg0", NULL, &lun), -ENOENT);
	assert_null(lun);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sense),
		cmocka_unit_test(test_status_and_host),
		cmocka_unit_test(test_open_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
