/*
 * test_lk_ondisk.c - the lock manager's record codecs: round trips, and
 * every kind of damage gives an error, never garbage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lockmgr/lk.h"
#include "lockmgr/ondisk.h"
#include "tests/unit/testutil.h"

static void test_slot_roundtrip(void **state)
{
	unsigned char buf[4096];
	struct lk_slot s = { 0 }, t;

	(void)state;
	s.state = LK_SLOT_RECOVERING;
	s.index = 17;
	s.gen = 0x1122334455667788ull;
	s.counter = 99;
	memset(s.host_uuid, 0xab, 16);
	strcpy(s.host_name, "esx-01.example");
	s.journal_off = 1 << 20;
	s.journal_len = 16 << 20;
	memset(s.rec_uuid, 0xcd, 16);
	s.rec_slot = 3;
	s.rec_gen = 5;
	s.wall_ns = 123456789;
	lk_slot_out(&s, buf, sizeof(buf));
	assert_int_equal(lk_slot_in(buf, &t), 0);
	assert_int_equal(t.state, s.state);
	assert_int_equal(t.index, s.index);
	assert_true(t.gen == s.gen);
	assert_true(t.counter == s.counter);
	assert_memory_equal(t.host_uuid, s.host_uuid, 16);
	assert_string_equal(t.host_name, s.host_name);
	assert_true(t.journal_off == s.journal_off);
	assert_true(t.journal_len == s.journal_len);
	assert_int_equal(t.rec_slot, 3);
	assert_true(t.rec_gen == 5);
	/* little-endian on disk */
	assert_int_equal(buf[0x10], 0x88);
	assert_int_equal(buf[0x17], 0x11);
	/* the tail of a 4K sector is zero */
	for (size_t i = 512; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);

	/* a 64-character name is kept whole, without its NUL on disk */
	memset(s.host_name, 'x', 64);
	s.host_name[64] = 0;
	lk_slot_out(&s, buf, 512);
	assert_int_equal(lk_slot_in(buf, &t), 0);
	assert_int_equal(strlen(t.host_name), 64);
}

static void test_lock_roundtrip(void **state)
{
	unsigned char buf[512];
	struct lk_lockrec r = { 0 }, t;

	(void)state;
	r.mode = LK_SHARED;
	r.nholders = 24;
	r.version = 7;
	r.self_off = 8192;
	for (unsigned i = 0; i < 24; i++) {
		r.holders[i].slot = i * 3;
		r.holders[i].gen = 1000 + i;
	}
	lk_lockrec_out(&r, buf, sizeof(buf));
	assert_int_equal(lk_lockrec_in(buf, &t), 0);
	assert_int_equal(t.mode, LK_SHARED);
	assert_int_equal(t.nholders, 24);
	assert_true(t.version == 7);
	assert_true(t.self_off == 8192);
	for (unsigned i = 0; i < 24; i++) {
		assert_int_equal(t.holders[i].slot, i * 3);
		assert_true(t.holders[i].gen == 1000 + i);
	}
	assert_int_equal(t.waiter_mode, LK_FREE);
	/* the waiter (minor version 1) at 0x1c0 */
	r.waiter_mode = LK_EXCL;
	r.waiter.slot = 77;
	r.waiter.gen = 4242;
	lk_lockrec_out(&r, buf, sizeof(buf));
	assert_int_equal(buf[0x1c0], 77);
	assert_int_equal(buf[0x1c4], LK_EXCL);
	assert_int_equal(buf[0x1c8], 4242 & 0xff);
	assert_int_equal(lk_lockrec_in(buf, &t), 0);
	assert_int_equal(t.waiter_mode, LK_EXCL);
	assert_int_equal(t.waiter.slot, 77);
	assert_true(t.waiter.gen == 4242);
	/* a waiter mode out of range is damage */
	r.waiter_mode = 9;
	lk_lockrec_out(&r, buf, sizeof(buf));
	assert_int_equal(lk_lockrec_in(buf, &t), -LK_E_CORRUPT);
}

static void test_damage(void **state)
{
	unsigned char buf[512], bad[512];
	struct lk_lockrec r = { .mode = LK_EXCL, .nholders = 1, .version = 1 };
	struct lk_lockrec t;
	struct lk_slot s;
	struct lk_hdr h = { .slots = 64, .slot_size = 512, .interval_ms = 100,
			    .dead_ms = 1000 }, ht;

	(void)state;
	lk_lockrec_out(&r, buf, sizeof(buf));
	/* every single-bit flip anywhere is caught */
	for (int byte = 0; byte < 512; byte++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(bad, buf, 512);
			bad[byte] ^= (unsigned char)(1u << bit);
			assert_int_not_equal(lk_lockrec_in(bad, &t), 0);
		}
	}
	memset(bad, 0, 512);
	assert_int_equal(lk_lockrec_in(bad, &t), -LK_E_BADMAGIC);
	/* a slot is not a lock */
	lk_slot_out(&(struct lk_slot){ .index = 1 }, bad, 512);
	assert_int_equal(lk_lockrec_in(bad, &t), -LK_E_BADMAGIC);
	assert_int_equal(lk_slot_in(bad, &s), 0);
	/* right crc, impossible contents */
	r.mode = LK_EXCL;
	r.nholders = 2;
	lk_lockrec_out(&r, bad, 512);
	assert_int_equal(lk_lockrec_in(bad, &t), -LK_E_CORRUPT);
	r.mode = 9;
	r.nholders = 1;
	lk_lockrec_out(&r, bad, 512);
	assert_int_equal(lk_lockrec_in(bad, &t), -LK_E_CORRUPT);
	r.mode = LK_FREE;
	lk_lockrec_out(&r, bad, 512);
	assert_int_equal(lk_lockrec_in(bad, &t), -LK_E_CORRUPT);
	/* a newer major version is refused, with a valid crc */
	lk_lockrec_out(&(struct lk_lockrec){ .mode = LK_FREE }, bad, 512);
	bad[4] = 2;
	{
		uint32_t crc = mp_crc32c(0, bad, 0x1fc);

		memcpy(bad + 0x1fc, &crc, 4);
	}
	assert_int_equal(lk_lockrec_in(bad, &t), -LK_E_VERSION);
	/* header sanity */
	lk_hdr_out(&h, bad, 512);
	assert_int_equal(lk_hdr_in(bad, &ht), 0);
	assert_int_equal(ht.slots, 64);
	h.dead_ms = 50;
	lk_hdr_out(&h, bad, 512);
	assert_int_equal(lk_hdr_in(bad, &ht), -LK_E_CORRUPT);
	h.dead_ms = 1000;
	h.slots = 5000;
	lk_hdr_out(&h, bad, 512);
	assert_int_equal(lk_hdr_in(bad, &ht), -LK_E_CORRUPT);
}

/* Random sectors never decode (and never crash the decoder). */
static void test_random(void **state)
{
	unsigned char buf[512];
	struct lk_lockrec t;
	struct lk_slot s;
	struct lk_hdr h;

	(void)state;
	for (uint32_t i = 0; i < 20000; i++) {
		tu_fill(buf, sizeof(buf), i);
		assert_int_not_equal(lk_lockrec_in(buf, &t), 0);
		assert_int_not_equal(lk_slot_in(buf, &s), 0);
		assert_int_not_equal(lk_hdr_in(buf, &h), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_roundtrip),
		cmocka_unit_test(test_lock_roundtrip),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests_name("lk_ondisk", tests, NULL, NULL);
}
