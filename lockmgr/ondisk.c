/*
 * ondisk.c - encode and decode the lock manager's records.  All byte
 * swapping lives here.
 */
#include <endian.h>
#include <stddef.h>
#include <string.h>

#include "lockmgr/lk.h"
#include "lockmgr/ondisk.h"
#include "multipath/mp.h"

static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static void put16(unsigned char *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

/* Common checks: magic, crc, major version. */
static int check(const unsigned char *b, uint32_t magic)
{
	uint32_t crc;

	if (get32(b) != magic)
		return -LK_E_BADMAGIC;
	crc = mp_crc32c(0, b, LK_CRC_OFF);
	if (crc != get32(b + LK_CRC_OFF))
		return -LK_E_CHECKSUM;
	if (get16(b + 4) != LK_MAJOR)
		return -LK_E_VERSION;
	return 0;
}

static void seal(unsigned char *b, uint32_t magic)
{
	put32(b, magic);
	put16(b + 4, LK_MAJOR);
	put16(b + 6, LK_MINOR);
	put32(b + LK_CRC_OFF, mp_crc32c(0, b, LK_CRC_OFF));
}

int lk_hdr_in(const void *buf, struct lk_hdr *h)
{
	const unsigned char *b = buf;
	int ret = check(b, LK_HDR_MAGIC);

	if (ret)
		return ret;
	memset(h, 0, sizeof(*h));
	h->minor = get16(b + offsetof(struct lk_hdr_disk, minor));
	h->slots = get32(b + offsetof(struct lk_hdr_disk, slots));
	h->slot_size = get32(b + offsetof(struct lk_hdr_disk, slot_size));
	h->interval_ms = get32(b + offsetof(struct lk_hdr_disk, interval_ms));
	h->dead_ms = get32(b + offsetof(struct lk_hdr_disk, dead_ms));
	h->self_off = get64(b + offsetof(struct lk_hdr_disk, self_off));
	memcpy(h->uuid, b + offsetof(struct lk_hdr_disk, uuid), 16);
	if (h->slots == 0 || h->slots > LK_MAX_SLOTS ||
	    (h->slot_size != 512 && h->slot_size != 4096) ||
	    h->interval_ms == 0 || h->dead_ms <= h->interval_ms)
		return -LK_E_CORRUPT;
	return 0;
}

void lk_hdr_out(const struct lk_hdr *h, void *buf, size_t len)
{
	unsigned char *b = buf;

	memset(b, 0, len);
	put32(b + offsetof(struct lk_hdr_disk, slots), h->slots);
	put32(b + offsetof(struct lk_hdr_disk, slot_size), h->slot_size);
	put32(b + offsetof(struct lk_hdr_disk, interval_ms), h->interval_ms);
	put32(b + offsetof(struct lk_hdr_disk, dead_ms), h->dead_ms);
	put64(b + offsetof(struct lk_hdr_disk, self_off), h->self_off);
	memcpy(b + offsetof(struct lk_hdr_disk, uuid), h->uuid, 16);
	seal(b, LK_HDR_MAGIC);
}

int lk_slot_in(const void *buf, struct lk_slot *s)
{
	const unsigned char *b = buf;
	int ret = check(b, LK_SLOT_MAGIC);

	if (ret)
		return ret;
	memset(s, 0, sizeof(*s));
	s->minor = get16(b + offsetof(struct lk_slot_disk, minor));
	s->state = get32(b + offsetof(struct lk_slot_disk, state));
	s->index = get32(b + offsetof(struct lk_slot_disk, index));
	s->gen = get64(b + offsetof(struct lk_slot_disk, gen));
	s->counter = get64(b + offsetof(struct lk_slot_disk, counter));
	memcpy(s->host_uuid, b + offsetof(struct lk_slot_disk, host_uuid), 16);
	memcpy(s->host_name, b + offsetof(struct lk_slot_disk, host_name),
	       LK_NAME_LEN);
	s->host_name[LK_NAME_LEN] = 0;
	/* a C string: nothing after its end survives a re-encode */
	{
		size_t n = strlen(s->host_name);

		memset(s->host_name + n, 0, sizeof(s->host_name) - n);
	}
	s->journal_off = get64(b + offsetof(struct lk_slot_disk, journal_off));
	s->journal_len = get64(b + offsetof(struct lk_slot_disk, journal_len));
	memcpy(s->rec_uuid, b + offsetof(struct lk_slot_disk, rec_uuid), 16);
	s->rec_slot = get32(b + offsetof(struct lk_slot_disk, rec_slot));
	s->rec_gen = get64(b + offsetof(struct lk_slot_disk, rec_gen));
	s->wall_ns = get64(b + offsetof(struct lk_slot_disk, wall_ns));
	s->interval_ms = get32(b + offsetof(struct lk_slot_disk, interval_ms));
	s->dead_ms = get32(b + offsetof(struct lk_slot_disk, dead_ms));
	memcpy(s->data, b + offsetof(struct lk_slot_disk, data), LK_SLOT_DATA);
	if (s->state > LK_SLOT_RECOVERING || s->index >= LK_MAX_SLOTS)
		return -LK_E_CORRUPT;
	return 0;
}

void lk_slot_out(const struct lk_slot *s, void *buf, size_t len)
{
	unsigned char *b = buf;

	memset(b, 0, len);
	put32(b + offsetof(struct lk_slot_disk, state), s->state);
	put32(b + offsetof(struct lk_slot_disk, index), s->index);
	put64(b + offsetof(struct lk_slot_disk, gen), s->gen);
	put64(b + offsetof(struct lk_slot_disk, counter), s->counter);
	memcpy(b + offsetof(struct lk_slot_disk, host_uuid), s->host_uuid, 16);
	memcpy(b + offsetof(struct lk_slot_disk, host_name), s->host_name,
	       strnlen(s->host_name, LK_NAME_LEN));
	put64(b + offsetof(struct lk_slot_disk, journal_off), s->journal_off);
	put64(b + offsetof(struct lk_slot_disk, journal_len), s->journal_len);
	memcpy(b + offsetof(struct lk_slot_disk, rec_uuid), s->rec_uuid, 16);
	put32(b + offsetof(struct lk_slot_disk, rec_slot), s->rec_slot);
	put64(b + offsetof(struct lk_slot_disk, rec_gen), s->rec_gen);
	put64(b + offsetof(struct lk_slot_disk, wall_ns), s->wall_ns);
	put32(b + offsetof(struct lk_slot_disk, interval_ms), s->interval_ms);
	put32(b + offsetof(struct lk_slot_disk, dead_ms), s->dead_ms);
	memcpy(b + offsetof(struct lk_slot_disk, data), s->data, LK_SLOT_DATA);
	seal(b, LK_SLOT_MAGIC);
}

int lk_lockrec_in(const void *buf, struct lk_lockrec *l)
{
	const unsigned char *b = buf;
	const unsigned char *h;
	int ret = check(b, LK_LOCK_MAGIC);

	if (ret)
		return ret;
	memset(l, 0, sizeof(*l));
	l->minor = get16(b + offsetof(struct lk_lock_disk, minor));
	l->mode = get32(b + offsetof(struct lk_lock_disk, mode));
	l->nholders = get32(b + offsetof(struct lk_lock_disk, nholders));
	l->version = get64(b + offsetof(struct lk_lock_disk, version));
	l->self_off = get64(b + offsetof(struct lk_lock_disk, self_off));
	l->wall_ns = get64(b + offsetof(struct lk_lock_disk, wall_ns));
	memcpy(l->uuid, b + offsetof(struct lk_lock_disk, uuid), 16);
	if (l->mode > LK_MULTIWRITER || l->nholders > LK_MAX_HOLDERS ||
	    (l->mode == LK_FREE) != (l->nholders == 0) ||
	    (l->mode == LK_EXCL && l->nholders != 1))
		return -LK_E_CORRUPT;
	h = b + offsetof(struct lk_lock_disk, holders);
	for (uint32_t i = 0; i < l->nholders; i++) {
		l->holders[i].slot = get32(h + i * 16);
		l->holders[i].gen = get64(h + i * 16 + 8);
		if (l->holders[i].slot >= LK_MAX_SLOTS)
			return -LK_E_CORRUPT;
	}
	h = b + offsetof(struct lk_lock_disk, waiter);
	l->waiter.slot = get32(h);
	l->waiter_mode = get32(h + 4);
	l->waiter.gen = get64(h + 8);
	if (l->waiter_mode > LK_MULTIWRITER || l->waiter.slot >= LK_MAX_SLOTS)
		return -LK_E_CORRUPT;
	if (l->waiter_mode == LK_FREE)
		memset(&l->waiter, 0, sizeof(l->waiter));   /* no waiter */
	return 0;
}

void lk_lockrec_out(const struct lk_lockrec *l, void *buf, size_t len)
{
	unsigned char *b = buf, *h;

	memset(b, 0, len);
	put32(b + offsetof(struct lk_lock_disk, mode), l->mode);
	put32(b + offsetof(struct lk_lock_disk, nholders), l->nholders);
	put64(b + offsetof(struct lk_lock_disk, version), l->version);
	put64(b + offsetof(struct lk_lock_disk, self_off), l->self_off);
	put64(b + offsetof(struct lk_lock_disk, wall_ns), l->wall_ns);
	memcpy(b + offsetof(struct lk_lock_disk, uuid), l->uuid, 16);
	h = b + offsetof(struct lk_lock_disk, holders);
	for (uint32_t i = 0; i < l->nholders && i < LK_MAX_HOLDERS; i++) {
		put32(h + i * 16, l->holders[i].slot);
		put64(h + i * 16 + 8, l->holders[i].gen);
	}
	if (l->waiter_mode != LK_FREE) {
		h = b + offsetof(struct lk_lock_disk, waiter);
		put32(h, l->waiter.slot);
		put32(h + 4, l->waiter_mode);
		put64(h + 8, l->waiter.gen);
	}
	seal(b, LK_LOCK_MAGIC);
}
