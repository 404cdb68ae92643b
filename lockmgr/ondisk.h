/*
 * ondisk.h - the lock manager's on-disk records (docs/FORMAT.md).
 *
 * Each record is a 512-byte little-endian structure at the start of one
 * logical sector, crc32c last.  Logic never touches raw buffers: *_in()
 * decodes and verifies a sector into the host struct, *_out() encodes one.
 */
#ifndef LK_ONDISK_H
#define LK_ONDISK_H

#include <stdint.h>

#define LK_REC_SIZE 512u
#define LK_CRC_OFF 0x1fcu

#define LK_HDR_MAGIC 0x42484c56u   /* "VLHB" */
#define LK_SLOT_MAGIC 0x4c534c56u  /* "VLSL" */
#define LK_LOCK_MAGIC 0x4b4c4c56u  /* "VLLK" */
#define LK_MAJOR 1
#define LK_MINOR 1                 /* 1: lock records have a waiter */

#define LK_MAX_SLOTS 2048u
#define LK_MAX_HOLDERS 24u
#define LK_NAME_LEN 64u

enum lk_slot_state { LK_SLOT_FREE = 0, LK_SLOT_LIVE = 1, LK_SLOT_RECOVERING = 2 };

/* on-disk images: documentation of the layout and size checks */
struct lk_hdr_disk {
	uint32_t magic;            /* 0x000 */
	uint16_t major, minor;     /* 0x004 */
	uint32_t slots;            /* 0x008 */
	uint32_t slot_size;        /* 0x00c */
	uint32_t interval_ms;      /* 0x010 */
	uint32_t dead_ms;          /* 0x014 */
	uint64_t self_off;         /* 0x018 */
	uint8_t uuid[16];          /* 0x020 */
	uint8_t reserved[0x1cc];   /* 0x030 */
	uint32_t crc;              /* 0x1fc */
};
_Static_assert(sizeof(struct lk_hdr_disk) == LK_REC_SIZE, "hdr size");

struct lk_slot_disk {
	uint32_t magic;            /* 0x000 */
	uint16_t major, minor;     /* 0x004 */
	uint32_t state;            /* 0x008 */
	uint32_t index;            /* 0x00c */
	uint64_t gen;              /* 0x010 */
	uint64_t counter;          /* 0x018 */
	uint8_t host_uuid[16];     /* 0x020 */
	char host_name[64];        /* 0x030 */
	uint64_t journal_off;      /* 0x070 */
	uint64_t journal_len;      /* 0x078 */
	uint8_t rec_uuid[16];      /* 0x080 */
	uint32_t rec_slot;         /* 0x090 */
	uint32_t reserved0;        /* 0x094 */
	uint64_t rec_gen;          /* 0x098 */
	uint64_t wall_ns;          /* 0x0a0 */
	uint32_t interval_ms;      /* 0x0a8: this host's beat interval (0 = the
				    * region's) */
	uint32_t dead_ms;          /* 0x0ac: others call it dead after this
				    * (0 = the region's) */
	uint8_t data[0x140];       /* 0x0b0: the user's (lk_set_slot_data) */
	uint8_t reserved[0xc];     /* 0x1f0 */
	uint32_t crc;              /* 0x1fc */
};
_Static_assert(sizeof(struct lk_slot_disk) == LK_REC_SIZE, "slot size");

struct lk_holder_disk {
	uint32_t slot;
	uint32_t reserved;
	uint64_t gen;
};
_Static_assert(sizeof(struct lk_holder_disk) == 16, "holder size");

struct lk_lock_disk {
	uint32_t magic;            /* 0x000 */
	uint16_t major, minor;     /* 0x004 */
	uint32_t mode;             /* 0x008 */
	uint32_t nholders;         /* 0x00c */
	uint64_t version;          /* 0x010 */
	uint64_t self_off;         /* 0x018 */
	uint64_t wall_ns;          /* 0x020 */
	uint8_t uuid[16];          /* 0x028 */
	uint64_t reserved0;        /* 0x038 */
	struct lk_holder_disk holders[LK_MAX_HOLDERS]; /* 0x040 */
	struct lk_holder_disk waiter; /* 0x1c0: slot, mode (0 none), gen */
	uint8_t reserved[0x2c];    /* 0x1d0 */
	uint32_t crc;              /* 0x1fc */
};
_Static_assert(sizeof(struct lk_lock_disk) == LK_REC_SIZE, "lock size");

/* host-side forms */
struct lk_hdr {
	uint16_t minor;
	uint32_t slots, slot_size, interval_ms, dead_ms;
	uint64_t self_off;
	uint8_t uuid[16];
};

struct lk_slot {
	uint16_t minor;
	uint32_t state, index;
	uint64_t gen, counter;
	uint8_t host_uuid[16];
	char host_name[LK_NAME_LEN + 1];
	uint64_t journal_off, journal_len;
	uint8_t rec_uuid[16];
	uint32_t rec_slot;
	uint64_t rec_gen;
	uint64_t wall_ns;
	uint32_t interval_ms, dead_ms;
	uint8_t data[LK_SLOT_DATA];
};

struct lk_holder {
	uint32_t slot;
	uint64_t gen;
};

struct lk_lockrec {
	uint16_t minor;
	uint32_t mode, nholders;
	uint64_t version, self_off, wall_ns;
	uint8_t uuid[16];
	struct lk_holder holders[LK_MAX_HOLDERS];
	/* the host waiting for it (docs/FORMAT.md "Waiter and hand-over"):
	 * waiter_mode LK_FREE = none */
	uint32_t waiter_mode;
	struct lk_holder waiter;
};

/*
 * Decode and verify one record from buf (LK_REC_SIZE bytes).  Return 0,
 * -LK_E_BADMAGIC (wrong magic: not this record, or never written),
 * -LK_E_CHECKSUM, -LK_E_VERSION, or -LK_E_CORRUPT (a field out of range).
 * self_off / index are checked by the callers who know where they read.
 */
int lk_hdr_in(const void *buf, struct lk_hdr *h);
int lk_slot_in(const void *buf, struct lk_slot *s);
int lk_lockrec_in(const void *buf, struct lk_lockrec *l);

/* Encode into buf (len bytes, >= LK_REC_SIZE; the rest is zeroed). */
void lk_hdr_out(const struct lk_hdr *h, void *buf, size_t len);
void lk_slot_out(const struct lk_slot *s, void *buf, size_t len);
void lk_lockrec_out(const struct lk_lockrec *l, void *buf, size_t len);

#endif
