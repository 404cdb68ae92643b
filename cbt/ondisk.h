/*
 * ondisk.h - the change tracking file DISK-ctk.vmdk (docs/FORMAT.md,
 * "Change tracking file").
 *
 * 4 KiB pages: page 0 the header, page 1 + i leaf page i.  Little endian,
 * crc32c last.  Logic never touches raw pages: *_in() decodes and verifies
 * one into the host struct, *_out() encodes one.
 */
#ifndef CBT_ONDISK_H
#define CBT_ONDISK_H

#include <stdbool.h>
#include <stdint.h>

#define CBT_PAGE 4096u
#define CBT_CRC_OFF 0xffcu
#define CBT_MAGIC 0x4b544356u      /* "VCTK" */
#define CBT_MAJOR 1
#define CBT_MINOR 0
#define CBT_LEAF_BLOCKS 1020u      /* sequences per leaf page */
#define CBT_SHIFT_MIN 12u          /* 4 KiB blocks */
#define CBT_SHIFT_MAX 24u          /* 16 MiB blocks */
#define CBT_SHIFT_DEFAULT 16u      /* 64 KiB, as ESX */

enum cbt_state { CBT_STATE_CLEAN = 1, CBT_STATE_DIRTY = 2 };
enum cbt_reason { CBT_REASON_NONE = 0, CBT_REASON_UNCLEAN = 1,
		  CBT_REASON_DAMAGED = 2 };

/* on-disk images: the layout and its size checks */
struct cbt_hdr_disk {
	uint32_t magic;            /* 0x000 */
	uint16_t major, minor;     /* 0x004 */
	uint32_t compat;           /* 0x008 */
	uint32_t ro_compat;        /* 0x00c */
	uint32_t incompat;         /* 0x010 */
	uint32_t state;            /* 0x014 */
	uint8_t uuid[16];          /* 0x018 */
	uint32_t block_shift;      /* 0x028 */
	uint32_t seq;              /* 0x02c */
	uint32_t reset_seq;        /* 0x030 */
	uint32_t epoch;            /* 0x034 */
	uint64_t disk_size;        /* 0x038 */
	uint64_t gen;              /* 0x040 */
	uint64_t reset_ns;         /* 0x048 */
	uint32_t reset_reason;     /* 0x050 */
	uint8_t reserved[0xfa8];   /* 0x054 */
	uint32_t crc;              /* 0xffc */
};
_Static_assert(sizeof(struct cbt_hdr_disk) == CBT_PAGE, "ctk header size");

struct cbt_leaf_disk {
	uint32_t seq[CBT_LEAF_BLOCKS];  /* 0x000 */
	uint64_t index;                 /* 0xff0 */
	uint32_t epoch;                 /* 0xff8 */
	uint32_t crc;                   /* 0xffc */
};
_Static_assert(sizeof(struct cbt_leaf_disk) == CBT_PAGE, "ctk leaf size");

/* the header in host order */
struct cbt_hdr {
	uint16_t major, minor;
	uint32_t compat, ro_compat, incompat;
	uint32_t state;
	uint8_t uuid[16];
	uint32_t block_shift;
	uint32_t seq, reset_seq, epoch;
	uint64_t disk_size, gen, reset_ns;
	uint32_t reset_reason;
};

/* Decode and verify a header page: 0, -CBT_E_BADMAGIC, -CBT_E_CHECKSUM,
 * -CBT_E_VERSION (newer major or unknown incompat bit), -CBT_E_CORRUPT
 * (fields out of range: state, block shift, sequences). */
int cbt_hdr_in(const void *page, struct cbt_hdr *h);
void cbt_hdr_out(const struct cbt_hdr *h, void *page);

/*
 * Decode and verify leaf page index (expected epoch): seq receives its
 * CBT_LEAF_BLOCKS sequences.  A page of all zeros is a valid empty leaf
 * (*empty = true).  -CBT_E_CHECKSUM for a bad checksum, -CBT_E_CORRUPT for
 * a wrong index or epoch, or a sequence above max_seq.
 */
int cbt_leaf_in(const void *page, uint64_t index, uint32_t epoch,
		uint32_t max_seq, uint32_t *seq, bool *empty);
void cbt_leaf_out(const uint32_t *seq, uint64_t index, uint32_t epoch,
		  void *page);

#endif /* CBT_ONDISK_H */
