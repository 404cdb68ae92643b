/*
 * fuzz_cbt - libFuzzer target: the change tracking file's parsers and the
 * change ID parser on arbitrary bytes.  The first byte picks what:
 *   0: a change ID: what parses formats to text that parses to the same ID
 *   1: a header page: what decodes encodes to a page that decodes the same
 *   2: a leaf page: what decodes encodes to the very same bytes
 *   3: a whole tracking file (in memory) opened, queried, checkpointed,
 *      marked and closed: never a crash, and a reopen of what was written
 *      back succeeds and answers the same
 * The next bits of the first byte seal pages (magic, version, index,
 * epoch, checksum) so that the checks behind the checksum are reached.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbt/cbt.h"
#include "cbt/ondisk.h"
#include "multipath/mp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FILE_MAX (1u << 20)

struct mem {
	unsigned char *b;
	size_t len;
};

static int m_pread(void *arg, void *buf, size_t len, uint64_t off)
{
	struct mem *m = arg;
	size_t n = off < m->len ? m->len - (size_t)off : 0;

	if (n > len)
		n = len;
	if (n)
		memcpy(buf, m->b + off, n);
	memset((char *)buf + n, 0, len - n);
	return 0;
}

static int m_truncate(void *arg, uint64_t size)
{
	struct mem *m = arg;

	if (size > FILE_MAX)
		return -EFBIG;
	if (size > m->len)
		memset(m->b + m->len, 0, (size_t)size - m->len);
	m->len = (size_t)size;
	return 0;
}

static int m_pwrite(void *arg, const void *buf, size_t len, uint64_t off)
{
	struct mem *m = arg;

	if (off + len > FILE_MAX)
		return -EFBIG;
	if (off + len > m->len && m_truncate(m, off + len))
		return -EFBIG;
	memcpy(m->b + off, buf, len);
	return 0;
}

static int m_sync(void *arg)
{
	(void)arg;
	return 0;
}

static int64_t m_next_data(void *arg, uint64_t off)
{
	struct mem *m = arg;

	return off < m->len ? (int64_t)off : -ENXIO;
}

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);     /* little endian machines only: a fuzzer */
}

static void seal_crc(unsigned char *b)
{
	put32(b + CBT_CRC_OFF, mp_crc32c(0, b, CBT_CRC_OFF));
}

static void seal_hdr(unsigned char *b, unsigned sel)
{
	if (sel & 1) {
		put32(b, CBT_MAGIC);
		b[4] = CBT_MAJOR;
		b[5] = 0;
	}
	if (sel & 2)
		seal_crc(b);
}

static int sum(void *arg, uint64_t off, uint64_t len)
{
	*(uint64_t *)arg += off ^ len;
	return 0;
}

static void whole_file(const uint8_t *data, size_t size, unsigned sel)
{
	static unsigned char file[FILE_MAX];
	struct mem m = { file, 0 };
	struct cbt_io io = { m_pread, m_pwrite, m_sync, m_truncate,
			     m_next_data, &m };
	enum cbt_open_event ev;
	struct cbt_info in;
	struct cbt_id id;
	uint64_t a = 0, b = 0;
	cbt_disk *d;

	/* each 256 bytes of input start a page (the rest zeros): small
	 * inputs make files of several pages */
	m.len = (size + 255) / 256 * CBT_PAGE;
	if (m.len > 64 * CBT_PAGE)
		m.len = 64 * CBT_PAGE;
	memset(file, 0, m.len);
	for (size_t p = 0; p * 256 < size && p < 64; p++)
		memcpy(file + p * CBT_PAGE, data + p * 256,
		       size - p * 256 < 256 ? size - p * 256 : 256);
	if (sel & 4) {
		/* leaf pages with the right index and epoch, sealed */
		for (size_t p = CBT_PAGE; p + CBT_PAGE <= m.len; p += CBT_PAGE) {
			uint64_t li = p / CBT_PAGE - 1;

			memcpy(file + p + 0xff0, &li, 8);
			memcpy(file + p + 0xff8, file + 0x34, 4);
			seal_crc(file + p);
		}
	}
	if (m.len >= CBT_PAGE)
		seal_hdr(file, sel);
	if (cbt_open(&io, 1ull << 30, &d, &ev))
		return;
	cbt_info(d, &in);
	id = in.current;
	if (id.seq > in.reset_seq)
		id.seq--;
	cbt_query(d, &id, 0, UINT64_MAX, sum, &a);
	if (cbt_checkpoint(d, &id) == 0) {
		cbt_mark(d, 12345, 70000);
		cbt_query(d, &id, 0, UINT64_MAX, sum, &a);
	}
	if (cbt_close(d))
		return;
	/* what was written back opens clean and answers the same */
	if (cbt_open(&io, 1ull << 30, &d, &ev) || ev != CBT_OPENED)
		abort();
	cbt_info(d, &in);
	if (id.seq >= in.reset_seq && id.seq < in.current.seq) {
		uint64_t c = 0;

		a = 0;
		cbt_close(d);
		if (cbt_open(&io, 1ull << 30, &d, &ev))
			abort();
		cbt_query(d, &id, 0, UINT64_MAX, sum, &b);
		cbt_query(d, &id, 0, UINT64_MAX, sum, &c);
		if (b != c)
			abort();
	}
	cbt_close(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char page[CBT_PAGE], page2[CBT_PAGE];
	static uint32_t seq[CBT_LEAF_BLOCKS], seq2[CBT_LEAF_BLOCKS];
	char text[CBT_ID_LEN + 64];
	struct cbt_id id, id2;
	struct cbt_hdr h, h2;
	bool empty;

	if (!size)
		return 0;
	unsigned sel = data[0] >> 2;

	switch (data[0] % 4) {
	case 0:
		if (size - 1 >= sizeof(text))
			return 0;
		memcpy(text, data + 1, size - 1);
		text[size - 1] = 0;
		if (cbt_id_parse(text, &id))
			return 0;
		cbt_id_format(&id, text);
		if (cbt_id_parse(text, &id2) || memcmp(&id, &id2, sizeof(id)))
			abort();
		break;
	case 1:
		memset(page, 0, sizeof(page));
		memcpy(page, data + 1, size - 1 < CBT_PAGE ? size - 1 : CBT_PAGE);
		seal_hdr(page, sel);
		if (cbt_hdr_in(page, &h))
			return 0;
		cbt_hdr_out(&h, page2);
		/* we write our own minor version */
		h.minor = CBT_MINOR;
		if (cbt_hdr_in(page2, &h2) || memcmp(&h, &h2, sizeof(h)))
			abort();
		break;
	case 2:
		memset(page, 0, sizeof(page));
		memcpy(page, data + 1, size - 1 < CBT_PAGE ? size - 1 : CBT_PAGE);
		if (sel & 1) {
			/* index and epoch as expected below */
			uint64_t li = (uint64_t)(data[0] >> 2);
			uint32_t ep = data[0] >> 4;

			memcpy(page + 0xff0, &li, 8);
			memcpy(page + 0xff8, &ep, 4);
			seal_crc(page);
		}
		if (cbt_leaf_in(page, (uint64_t)(data[0] >> 2), data[0] >> 4,
				UINT32_MAX, seq, &empty) || empty)
			return 0;
		cbt_leaf_out(seq, (uint64_t)(data[0] >> 2), data[0] >> 4, page2);
		if (memcmp(page, page2, CBT_PAGE) ||
		    cbt_leaf_in(page2, (uint64_t)(data[0] >> 2), data[0] >> 4,
				UINT32_MAX, seq2, &empty) ||
		    memcmp(seq, seq2, sizeof(seq)))
			abort();
		break;
	default:
		whole_file(data + 1, size - 1, sel);
	}
	return 0;
}
