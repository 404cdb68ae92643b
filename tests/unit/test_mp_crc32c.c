/*
 * test_mp_crc32c.c - CRC-32C against the standard check value and a bitwise
 * reference, over every length and alignment that matters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "multipath/mp.h"
#include "tests/unit/testutil.h"

static uint32_t ref(uint32_t crc, const unsigned char *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

static void test_vectors(void **state)
{
	unsigned char zeros[32] = { 0 }, ones[32];

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(mp_crc32c(0, "123456789", 9), 0xe3069283);
	/* RFC 3720 B.4 */
	assert_int_equal(mp_crc32c(0, zeros, 32), 0x8a9136aa);
	assert_int_equal(mp_crc32c(0, ones, 32), 0x62a8ab43);
	assert_int_equal(mp_crc32c(0, "", 0), 0);
}

static void test_against_reference(void **state)
{
	unsigned char buf[600];

	(void)state;
	tu_fill(buf, sizeof(buf), 99);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 7)
			assert_int_equal(mp_crc32c(0, buf + off, len),
					 ref(0, buf + off, len));
	/* continuation equals one pass */
	assert_int_equal(mp_crc32c(mp_crc32c(0, buf, 100), buf + 100, 500),
			 mp_crc32c(0, buf, 600));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_against_reference),
	};

	return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
