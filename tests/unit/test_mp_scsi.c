/*
 * test_mp_scsi.c - SCSI status and sense decoding: the table failover and
 * retry decisions rest on.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "multipath/mp_int.h"

static void test_status(void **state)
{
	(void)state;
	assert_int_equal(mp_scsi_result(0x00, 0, 0, 0), 0);
	assert_int_equal(mp_scsi_result(0x08, 0, 0, 0), -MP_E_BUSY);
	assert_int_equal(mp_scsi_result(0x28, 0, 0, 0), -MP_E_QFULL);
	assert_int_equal(mp_scsi_result(0x18, 0, 0, 0), -MP_E_RESCONFLICT);
	assert_int_equal(mp_scsi_result(0x40, 0, 0, 0), -MP_E_TRANSPORT);
	assert_int_equal(mp_scsi_result(0x7f, 0, 0, 0), -EIO);
}

static void test_sense(void **state)
{
	(void)state;
	/* MISCOMPARE DURING VERIFY OPERATION (COMPARE AND WRITE) */
	assert_int_equal(mp_scsi_result(0x02, 0x0e, 0x1d, 0x00), -MP_E_MISCOMPARE);
	/* PDL: LOGICAL UNIT NOT SUPPORTED */
	assert_int_equal(mp_scsi_result(0x02, 0x05, 0x25, 0x00), -MP_E_PDL);
	/* INVALID COMMAND OPERATION CODE: what tgt says to COMPARE AND WRITE */
	assert_int_equal(mp_scsi_result(0x02, 0x05, 0x20, 0x00), -EOPNOTSUPP);
	assert_int_equal(mp_scsi_result(0x02, 0x05, 0x24, 0x00), -EOPNOTSUPP);
	assert_int_equal(mp_scsi_result(0x02, 0x05, 0x21, 0x00), -EINVAL);
	assert_int_equal(mp_scsi_result(0x02, 0x05, 0x1a, 0x00), -MP_E_ILLEGAL);
	assert_int_equal(mp_scsi_result(0x02, 0x03, 0x11, 0x00), -MP_E_MEDIUM);
	assert_int_equal(mp_scsi_result(0x02, 0x07, 0x27, 0x00), -EROFS);
	assert_int_equal(mp_scsi_result(0x02, 0x06, 0x29, 0x00), -EAGAIN);
	assert_int_equal(mp_scsi_result(0x02, 0x02, 0x04, 0x01), -EAGAIN);
	assert_int_equal(mp_scsi_result(0x02, 0x02, 0x04, 0x03), -MP_E_PDL);
	assert_int_equal(mp_scsi_result(0x02, 0x02, 0x3a, 0x00), -MP_E_PDL);
	assert_int_equal(mp_scsi_result(0x02, 0x01, 0x00, 0x00), 0);
	assert_int_equal(mp_scsi_result(0x02, 0x0b, 0x47, 0x00), -MP_E_TRANSPORT);
	assert_int_equal(mp_scsi_result(0x02, 0x09, 0x00, 0x00), -MP_E_CHECK);
}

static void test_retryable(void **state)
{
	(void)state;
	assert_true(mp_scsi_retryable(0x02, 0x06, 0x29, 0x00));  /* POR UA */
	assert_true(mp_scsi_retryable(0x02, 0x02, 0x04, 0x01));  /* becoming ready */
	assert_false(mp_scsi_retryable(0x02, 0x02, 0x04, 0x03));
	assert_false(mp_scsi_retryable(0x02, 0x03, 0x11, 0x00));
	assert_false(mp_scsi_retryable(0x02, 0x05, 0x25, 0x00));
	assert_false(mp_scsi_retryable(0x00, 0, 0, 0));
	assert_false(mp_scsi_retryable(0x18, 0, 0, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_sense),
		cmocka_unit_test(test_retryable),
	};

	return cmocka_run_group_tests_name("scsi", tests, NULL, NULL);
}
