/*
 * fuzz_lk_records - libFuzzer target: the lock manager's on-disk record
 * decoders (header, slot, lock) on arbitrary sectors, and re-encoding of
 * whatever decodes must give back the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lockmgr/lk.h"
#include "lockmgr/ondisk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char buf[LK_REC_SIZE], out[LK_REC_SIZE];
	struct lk_hdr h, h2;
	struct lk_slot s, s2;
	struct lk_lockrec l, l2;

	memset(buf, 0, sizeof(buf));
	memcpy(buf, data, size < sizeof(buf) ? size : sizeof(buf));
	if (size < sizeof(buf)) {
		/* give short inputs a valid crc now and then, so the decoders'
		 * field checks get exercised too */
		uint32_t crc = mp_crc32c(0, buf, LK_CRC_OFF);

		if (size & 1)
			memcpy(buf + LK_CRC_OFF, &crc, 4);
	}
	/* What decodes re-encodes to a record that decodes the same (the
	 * minor version is ours on output: newer minors are read, not kept). */
	if (lk_hdr_in(buf, &h) == 0) {
		lk_hdr_out(&h, out, sizeof(out));
		if (lk_hdr_in(out, &h2) != 0)
			abort();
		h.minor = h2.minor = 0;
		if (memcmp(&h, &h2, sizeof(h)))
			abort();
	}
	if (lk_slot_in(buf, &s) == 0) {
		lk_slot_out(&s, out, sizeof(out));
		if (lk_slot_in(out, &s2) != 0)
			abort();
		s.minor = s2.minor = 0;
		if (memcmp(&s, &s2, sizeof(s)))
			abort();
	}
	if (lk_lockrec_in(buf, &l) == 0) {
		lk_lockrec_out(&l, out, sizeof(out));
		if (lk_lockrec_in(out, &l2) != 0)
			abort();
		l.minor = l2.minor = 0;
		if (memcmp(&l, &l2, sizeof(l)))
			abort();
	}
	return 0;
}
