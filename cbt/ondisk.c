/*
 * ondisk.c - encode and decode the change tracking file's pages.  All byte
 * swapping lives here.
 */
#include <endian.h>
#include <stddef.h>
#include <string.h>

#include "cbt/cbt.h"
#include "cbt/ondisk.h"
#include "multipath/mp.h"

static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static void put16(unsigned char *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

#define H(f) offsetof(struct cbt_hdr_disk, f)
#define L(f) offsetof(struct cbt_leaf_disk, f)

int cbt_hdr_in(const void *page, struct cbt_hdr *h)
{
	const unsigned char *b = page;

	if (get32(b + H(magic)) != CBT_MAGIC)
		return -CBT_E_BADMAGIC;
	if (mp_crc32c(0, b, CBT_CRC_OFF) != get32(b + CBT_CRC_OFF))
		return -CBT_E_CHECKSUM;
	memset(h, 0, sizeof(*h));
	h->major = get16(b + H(major));
	h->minor = get16(b + H(minor));
	h->compat = get32(b + H(compat));
	h->ro_compat = get32(b + H(ro_compat));
	h->incompat = get32(b + H(incompat));
	if (h->major != CBT_MAJOR || h->incompat)
		return -CBT_E_VERSION;
	h->state = get32(b + H(state));
	memcpy(h->uuid, b + H(uuid), 16);
	h->block_shift = get32(b + H(block_shift));
	h->seq = get32(b + H(seq));
	h->reset_seq = get32(b + H(reset_seq));
	h->epoch = get32(b + H(epoch));
	h->disk_size = get64(b + H(disk_size));
	h->gen = get64(b + H(gen));
	h->reset_ns = get64(b + H(reset_ns));
	h->reset_reason = get32(b + H(reset_reason));
	if ((h->state != CBT_STATE_CLEAN && h->state != CBT_STATE_DIRTY) ||
	    h->block_shift < CBT_SHIFT_MIN || h->block_shift > CBT_SHIFT_MAX ||
	    !h->reset_seq || h->reset_seq > h->seq ||
	    h->reset_reason > CBT_REASON_DAMAGED || h->disk_size > (1ull << 62))
		return -CBT_E_CORRUPT;
	return 0;
}

void cbt_hdr_out(const struct cbt_hdr *h, void *page)
{
	unsigned char *b = page;

	memset(b, 0, CBT_PAGE);
	put32(b + H(magic), CBT_MAGIC);
	put16(b + H(major), CBT_MAJOR);
	put16(b + H(minor), CBT_MINOR);
	put32(b + H(compat), h->compat);
	put32(b + H(ro_compat), h->ro_compat);
	put32(b + H(incompat), h->incompat);
	put32(b + H(state), h->state);
	memcpy(b + H(uuid), h->uuid, 16);
	put32(b + H(block_shift), h->block_shift);
	put32(b + H(seq), h->seq);
	put32(b + H(reset_seq), h->reset_seq);
	put32(b + H(epoch), h->epoch);
	put64(b + H(disk_size), h->disk_size);
	put64(b + H(gen), h->gen);
	put64(b + H(reset_ns), h->reset_ns);
	put32(b + H(reset_reason), h->reset_reason);
	put32(b + CBT_CRC_OFF, mp_crc32c(0, b, CBT_CRC_OFF));
}

int cbt_leaf_in(const void *page, uint64_t index, uint32_t epoch,
		uint32_t max_seq, uint32_t *seq, bool *empty)
{
	const unsigned char *b = page;

	*empty = false;
	if (!b[0] && !memcmp(b, b + 1, CBT_PAGE - 1)) {
		/* a hole, or a page never written: no change */
		memset(seq, 0, CBT_LEAF_BLOCKS * sizeof(*seq));
		*empty = true;
		return 0;
	}
	if (mp_crc32c(0, b, CBT_CRC_OFF) != get32(b + CBT_CRC_OFF))
		return -CBT_E_CHECKSUM;
	if (get64(b + L(index)) != index || get32(b + L(epoch)) != epoch)
		return -CBT_E_CORRUPT;
	for (unsigned i = 0; i < CBT_LEAF_BLOCKS; i++) {
		seq[i] = get32(b + 4 * i);
		if (seq[i] > max_seq)
			return -CBT_E_CORRUPT;
	}
	return 0;
}

void cbt_leaf_out(const uint32_t *seq, uint64_t index, uint32_t epoch,
		  void *page)
{
	unsigned char *b = page;

	for (unsigned i = 0; i < CBT_LEAF_BLOCKS; i++)
		put32(b + 4 * i, seq[i]);
	put64(b + L(index), index);
	put32(b + L(epoch), epoch);
	put32(b + CBT_CRC_OFF, mp_crc32c(0, b, CBT_CRC_OFF));
}
