/*
 * ondisk.h - the file system's on-disk structures (docs/FORMAT.md).
 *
 * The *_disk structs document the byte layout and are size-checked; code
 * never casts an I/O buffer to them.  All conversion is in *_in() (decode
 * and verify: magic, major version, crc32c, field ranges) and *_out()
 * (encode and seal) in ondisk.c.
 */
#ifndef FS_ONDISK_H
#define FS_ONDISK_H

#include <stddef.h>
#include <stdint.h>

#define FS_BLOCK 4096u            /* metadata block */
#define FS_SLOT 8192u             /* lock sector + 4 KiB block */
#define FS_CRC_OFF 0xffcu
#define FS_MAJOR 1
#define FS_MINOR 0

#define FS_EXT_MAGIC 0x58454656u  /* "VFEX" */
#define FS_SB_MAGIC 0x42534656u   /* "VFSB" */
#define FS_RC_MAGIC 0x43524656u   /* "VFRC" */
#define FS_FD_MAGIC 0x44464656u   /* "VFFD" */
#define FS_PB_MAGIC 0x42504656u   /* "VFPB" */
#define FS_DH_MAGIC 0x48444656u   /* "VFDH" */
#define FS_DB_MAGIC 0x42444656u   /* "VFDB" */
#define FS_JH_MAGIC 0x484a4656u   /* "VFJH" */
#define FS_JD_MAGIC 0x444a4656u   /* "VFJD" */
#define FS_JC_MAGIC 0x434a4656u   /* "VFJC" */
#define FS_RDM_MAGIC 0x4d524656u  /* "VFRM" */

#define FS_SB_SLOT 4096ull        /* head extent: volume lock + superblock */
#define FS_MAX_EXTENTS 32u
#define FS_LABEL_LEN 64u
#define FS_NAME_MAX 255u

/* ---- addresses ------------------------------------------------------------ */

enum fs_rtype { FS_R_NONE = 0, FS_R_FB = 1, FS_R_SB = 2, FS_R_PB = 3,
		FS_R_FD = 4, FS_R_TYPES = 5 };

#define FS_ADDR_TBZ (1ull << 59)
#define FS_ADDR_INDEX_MASK ((1ull << 54) - 1)

static inline uint64_t fs_addr(enum fs_rtype t, unsigned ext, uint64_t idx)
{
	return ((uint64_t)t << 60) | ((uint64_t)ext << 54) |
	       (idx & FS_ADDR_INDEX_MASK);
}
static inline enum fs_rtype fs_addr_type(uint64_t a)
{
	return (enum fs_rtype)(a >> 60);
}
static inline unsigned fs_addr_ext(uint64_t a)
{
	return (unsigned)((a >> 54) & 31);
}
static inline uint64_t fs_addr_index(uint64_t a)
{
	return a & FS_ADDR_INDEX_MASK;
}

/* ---- extent header --------------------------------------------------------- */

struct fs_ext_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint8_t uuid[16];             /* 0x008 volume UUID */
	uint32_t index;               /* 0x018 */
	uint32_t count;               /* 0x01c extents when written */
	uint64_t size;                /* 0x020 bytes */
	char label[FS_LABEL_LEN];     /* 0x028 */
	uint32_t tag;                 /* 0x068 extent tag, 0 = untagged */
	uint8_t reserved[0xf90];      /* 0x06c */
	uint32_t crc;                 /* 0xffc */
};
_Static_assert(sizeof(struct fs_ext_disk) == FS_BLOCK, "ext size");
_Static_assert(offsetof(struct fs_ext_disk, tag) == 0x68, "ext tag off");

struct fs_ext {
	uint8_t uuid[16];
	uint32_t index, count;
	uint64_t size;
	uint32_t tag;
	char label[FS_LABEL_LEN + 1];
};

/* ---- superblock ------------------------------------------------------------- */

/* Geometry of one resource type on one extent. */
struct fs_area_disk {
	uint32_t clusters;            /* 0x00 */
	uint32_t per_cluster;         /* 0x04 */
	uint64_t meta_off;            /* 0x08 first cluster slot */
	uint64_t res_off;             /* 0x10 first resource */
};
_Static_assert(sizeof(struct fs_area_disk) == 24, "area size");

struct fs_extent_geom_disk {
	uint64_t size;                /* 0x00 */
	uint32_t lun_of;              /* 0x08 0: own LUN; k+1: on extent k's */
	uint32_t tag;                 /* 0x0c its extent header's, 0 untagged */
	struct fs_area_disk area[4];  /* 0x10 FD, PB, SB, FB */
};
_Static_assert(sizeof(struct fs_extent_geom_disk) == 112, "geom size");

struct fs_sb_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint32_t compat, ro_compat, incompat; /* 0x008 */
	uint32_t sector;              /* 0x014 */
	uint8_t uuid[16];             /* 0x018 */
	char label[FS_LABEL_LEN];     /* 0x028 */
	uint64_t ctime_ns;            /* 0x068 */
	uint32_t block_size;          /* 0x070 */
	uint32_t sb_size;             /* 0x074 */
	uint32_t slots;               /* 0x078 */
	uint32_t journal_blocks;      /* 0x07c */
	uint64_t hb_off;              /* 0x080 */
	uint64_t journal_off;         /* 0x088 */
	uint64_t root;                /* 0x090 */
	uint32_t nextents;            /* 0x098 */
	uint32_t reserved0;           /* 0x09c */
	uint64_t geom_gen;            /* 0x0a0 */
	uint8_t reserved1[0x58];      /* 0x0a8 */
	struct fs_extent_geom_disk ext[FS_MAX_EXTENTS]; /* 0x100 .. 0xf00 */
	uint8_t reserved2[0xfc];      /* 0xf00 */
	uint32_t crc;                 /* 0xffc */
};
_Static_assert(sizeof(struct fs_sb_disk) == FS_BLOCK, "sb size");
_Static_assert(offsetof(struct fs_sb_disk, ext) == 0x100, "sb ext off");

/* Area index in the extent table (not the address type numbers). */
enum fs_area_idx { FS_A_FD = 0, FS_A_PB = 1, FS_A_SB = 2, FS_A_FB = 3, FS_AREAS = 4 };

struct fs_area {
	uint32_t clusters, per_cluster;
	uint64_t meta_off, res_off;
};

struct fs_extent_geom {
	uint64_t size;
	uint32_t lun_of;              /* 0: its own LUN; k + 1: extent k's LUN */
	uint32_t tag;                 /* extent tag (own LUN only), 0 untagged */
	struct fs_area area[FS_AREAS];
};

/*
 * Whether extent header e (of the volume with this UUID) is the LUN of
 * extent table entry g at index i: index, size and, for a tagged entry,
 * tag (docs/FORMAT.md "Extents": a header an interrupted span left has a
 * tag no entry recorded).
 */
static inline int fs_ext_matches(const struct fs_ext *e, const uint8_t uuid[16],
				 unsigned i, const struct fs_extent_geom *g)
{
	for (unsigned k = 0; k < 16; k++)
		if (e->uuid[k] != uuid[k])
			return 0;
	return e->index == i && !g->lun_of && e->size == g->size &&
	       (!g->tag || e->tag == g->tag);
}

struct fs_sb {
	uint16_t minor;
	uint32_t compat, ro_compat, incompat;
	uint32_t sector;
	uint8_t uuid[16];
	char label[FS_LABEL_LEN + 1];
	uint64_t ctime_ns;
	uint32_t block_size, sb_size, slots, journal_blocks;
	uint64_t hb_off, journal_off, root;
	uint32_t nextents;
	uint64_t geom_gen;
	struct fs_extent_geom ext[FS_MAX_EXTENTS];
};

/* Feature bits. */
#define FS_INCOMPAT_LUN_SHARED 0x1u  /* an extent lives on another's LUN */
#define FS_INCOMPAT_JGROUPS 0x2u     /* a journal record may be a group */
#define FS_COMPAT_KNOWN 0u
#define FS_RO_COMPAT_KNOWN 0u
#define FS_INCOMPAT_KNOWN (FS_INCOMPAT_LUN_SHARED | FS_INCOMPAT_JGROUPS)

/* ---- resource cluster header --------------------------------------------- */

#define FS_RC_HDR 0x40u
#define FS_RC_MAX_BITS ((FS_CRC_OFF - FS_RC_HDR) * 8u)

struct fs_rc_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint32_t type;                /* 0x008 enum fs_rtype */
	uint32_t extent;              /* 0x00c */
	uint32_t cluster;             /* 0x010 */
	uint32_t nres;                /* 0x014 */
	uint32_t nfree;               /* 0x018 */
	uint8_t reserved[0x24];       /* 0x01c */
	uint8_t bitmap[FS_CRC_OFF - FS_RC_HDR]; /* 0x040: 1 = in use */
	uint32_t crc;                 /* 0xffc */
};
_Static_assert(sizeof(struct fs_rc_disk) == FS_BLOCK, "rc size");

struct fs_rc {
	uint32_t type, extent, cluster, nres, nfree;
	uint8_t bitmap[FS_CRC_OFF - FS_RC_HDR];
};

/* ---- file descriptor -------------------------------------------------------- */

enum fs_ftype { FS_T_FREE = 0, FS_T_FILE = 1, FS_T_DIR = 2, FS_T_SYMLINK = 3,
		FS_T_RDM = 4 };
enum fs_map { FS_MAP_INLINE = 0, FS_MAP_DIRECT = 1, FS_MAP_IND1 = 2,
	      FS_MAP_IND2 = 3, FS_MAP_IND3 = 4 };
enum fs_unit { FS_UNIT_SB = 0, FS_UNIT_FB = 1 };

#define FS_FD_ADDRS 256u
#define FS_RDM_LEN 1024u          /* mapping record in an RDM's FD */
#define FS_INLINE_MAX 1024u
#define FS_SB_DIRECT_MAX 16u

struct fs_fd_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint64_t self;                /* 0x008 */
	uint64_t gen;                 /* 0x010 */
	uint8_t type, map, unit, flags; /* 0x018 */
	uint32_t mode;                /* 0x01c */
	uint32_t nlink, uid, gid, reserved0; /* 0x020 */
	uint64_t size;                /* 0x030 */
	uint64_t atime, mtime, ctime, btime; /* 0x038 */
	uint64_t alloc_bytes;         /* 0x058 */
	uint64_t parent;              /* 0x060 */
	uint8_t reserved1[0x98];      /* 0x068 */
	uint64_t addr[FS_FD_ADDRS];   /* 0x100 (or inline data) */
	uint8_t rdm[0x400];           /* 0x900 mapping record (type RDM) */
	uint8_t reserved2[0x2fc];     /* 0xd00 */
	uint32_t crc;                 /* 0xffc */
};
_Static_assert(sizeof(struct fs_fd_disk) == FS_BLOCK, "fd size");
_Static_assert(offsetof(struct fs_fd_disk, rdm) == 0x900, "fd rdm off");
_Static_assert(offsetof(struct fs_fd_disk, addr) == 0x100, "fd addr off");

struct fs_fd {
	uint16_t minor;
	uint64_t self, gen;
	uint8_t type, map, unit, flags;
	uint32_t mode, nlink, uid, gid;
	uint64_t size, atime, mtime, ctime, btime, alloc_bytes, parent;
	union {
		uint64_t addr[FS_FD_ADDRS];
		uint8_t inline_data[FS_FD_ADDRS * 8];
	};
	/* the raw mapping record of an RDM (fs_rdm_in/out), kept as it is
	 * through every rewrite of the FD; zero for other types */
	uint8_t rdm[FS_RDM_LEN];
};

/* ---- raw device mapping record (in the FD at 0x900) ---------------------- */

#define FS_RDM_CRC_OFF (FS_RDM_LEN - 4u)

struct fs_rdm_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint32_t mode;                /* 0x008 enum fs_rdm_mode */
	uint32_t id_kind;             /* 0x00c enum fs_rdm_idkind */
	uint64_t capacity;            /* 0x010 bytes when mapped */
	uint32_t sector;              /* 0x018 */
	uint32_t reserved0;           /* 0x01c */
	uint64_t mtime_ns;            /* 0x020 when mapped */
	char id[96];                  /* 0x028 */
	char serial[64];              /* 0x088 */
	char vendor[8];               /* 0x0c8 */
	char product[16];             /* 0x0d0 */
	char host[64];                /* 0x0e0 */
	char spec[256];               /* 0x120 */
	uint8_t reserved1[0x1dc];     /* 0x220 */
	uint32_t crc;                 /* 0x3fc */
};
_Static_assert(sizeof(struct fs_rdm_disk) == FS_RDM_LEN, "rdm size");
_Static_assert(offsetof(struct fs_rdm_disk, reserved1) == 0x220, "rdm layout");

/* Decoded mapping record; the enums are public (fs.h). */
struct fs_rdm;

/* ---- pointer block ---------------------------------------------------------- */

#define FS_PB_ADDRS 503u

struct fs_pb_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint64_t owner;               /* 0x008 owner FD address */
	uint64_t owner_gen;           /* 0x010 */
	uint32_t level;               /* 0x018 1 = points at data */
	uint8_t reserved0[0x24];      /* 0x01c */
	uint64_t addr[FS_PB_ADDRS];   /* 0x040 */
	uint32_t reserved1;           /* 0xff8 */
	uint32_t crc;                 /* 0xffc */
};
_Static_assert(sizeof(struct fs_pb_disk) == FS_BLOCK, "pb size");

struct fs_pb {
	uint64_t owner, owner_gen;
	uint32_t level;
	uint64_t addr[FS_PB_ADDRS];
};

/* ---- directories ------------------------------------------------------------ */

#define FS_DIR_OVERFLOW_BASE (1ull << 32)   /* file offset of overflow blocks */
#define FS_DB_HDR 0x20u
#define FS_DB_SPACE (FS_CRC_OFF - FS_DB_HDR)

struct fs_dh_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint32_t level;               /* 0x008 L */
	uint32_t split;               /* 0x00c p */
	uint64_t nbuckets;            /* 0x010 2^L + p */
	uint64_t nentries;            /* 0x018 */
	uint64_t next_overflow;       /* 0x020 next never-used overflow index */
	uint64_t free_overflow;       /* 0x028 head of freed overflow blocks
				       * (file offset, 0 = none) */
	uint8_t reserved[0xfcc];      /* 0x030 */
	uint32_t crc;                 /* 0xffc */
};
_Static_assert(sizeof(struct fs_dh_disk) == FS_BLOCK, "dh size");

struct fs_dh {
	uint32_t level, split;
	uint64_t nbuckets, nentries, next_overflow, free_overflow;
};

struct fs_db_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint64_t bucket;              /* 0x008 */
	uint64_t next;                /* 0x010 file offset of next overflow, 0 */
	uint16_t nentries;            /* 0x018 */
	uint16_t used;                /* 0x01a bytes of entries */
	uint32_t reserved;            /* 0x01c */
	uint8_t entries[FS_DB_SPACE]; /* 0x020 */
	uint32_t crc;                 /* 0xffc */
};
_Static_assert(sizeof(struct fs_db_disk) == FS_BLOCK, "db size");

/* One directory entry, as decoded. */
struct fs_dirent {
	uint64_t fd, gen;
	uint8_t type;
	uint8_t name_len;
	char name[FS_NAME_MAX + 1];
};

/* Entry header on disk: fd (8), gen (8), rec_len (2), name_len (1), type (1),
 * then the name, padded to 8 bytes. */
#define FS_DE_HDR 20u
static inline unsigned fs_de_len(unsigned name_len)
{
	return (FS_DE_HDR + name_len + 7u) & ~7u;
}

struct fs_db {
	uint64_t bucket, next;
	uint16_t nentries, used;
	uint8_t entries[FS_DB_SPACE];
};

/* ---- journal ------------------------------------------------------------------ */

#define FS_JD_MAX_BLOCKS 200u
#define FS_JD_MAX_LOCKS 16u

struct fs_jh_disk {
	uint32_t magic;               /* 0x000 */
	uint16_t major, minor;        /* 0x004 */
	uint32_t slot;                /* 0x008 */
	uint32_t nblocks;             /* 0x00c journal size in blocks */
	uint64_t tail_seq;            /* 0x010 oldest transaction that may matter */
	uint64_t tail_block;          /* 0x018 where it starts (1..nblocks-1) */
	uint64_t jid;                 /* 0x020 random, new at every open */
	uint32_t flags;               /* 0x028 FS_JH_* */
	uint8_t reserved[0xfd0];      /* 0x02c */
	uint32_t crc;                 /* 0xffc */
};
_Static_assert(sizeof(struct fs_jh_disk) == FS_BLOCK, "jh size");

/* The tail is a checkpoint: every complete transaction from it on is
 * replayed in order (write-back journal).  Without it, only the newest. */
#define FS_JH_CKPT 0x1u

struct fs_jh {
	uint32_t slot, nblocks;
	uint64_t tail_seq, tail_block, jid;
	uint32_t flags;
};

struct fs_jtarget {
	uint32_t extent;
	uint64_t off;                 /* byte offset of the 4 KiB block */
};

struct fs_jlock {
	uint32_t extent;
	uint64_t off;                 /* lock record */
	uint64_t version;             /* its version while we held it */
};

/* descriptor: magic/version (8), seq (8), nblocks (4), nlocks (4), jid (8),
 * then targets (16 bytes each: extent u32, pad u32,
 * off u64), then locks (24 bytes: extent u32, pad u32, off u64, version u64),
 * then at FS_JD_NTX_OFF the transactions the record stands for (u32; 0 is
 * one: a group, FS_INCOMPAT_JGROUPS, stands for seq .. seq + ntx - 1) */
#define FS_JD_NTX_OFF (0x20 + FS_JD_MAX_BLOCKS * 16 + FS_JD_MAX_LOCKS * 24)
struct fs_jd {
	uint64_t seq, jid;
	uint32_t nblocks, nlocks;
	uint32_t ntx;                 /* decoded: at least 1 */
	struct fs_jtarget t[FS_JD_MAX_BLOCKS];
	struct fs_jlock l[FS_JD_MAX_LOCKS];
};
_Static_assert(FS_JD_NTX_OFF + 4 <= FS_CRC_OFF, "descriptor fits");

struct fs_jc {
	uint64_t seq, jid;
	uint32_t nblocks;
	uint32_t data_crc;            /* crc32c of descriptor + images */
};

/* ---- codecs ---------------------------------------------------------------------- */
/* Decoders return 0, -FS_E_BADMAGIC, -FS_E_CHECKSUM, -FS_E_VERSION or
 * -FS_E_CORRUPT (see fs.h).  Encoders fill a FS_BLOCK buffer and seal it. */
int fs_ext_in(const void *b, struct fs_ext *e);
void fs_ext_out(const struct fs_ext *e, void *b);
/* A new random non-zero extent tag: 0 or -errno. */
int fs_ext_tag_new(uint32_t *tag);
int fs_sb_in(const void *b, struct fs_sb *s);
void fs_sb_out(const struct fs_sb *s, void *b);
int fs_rc_in(const void *b, struct fs_rc *r);
void fs_rc_out(const struct fs_rc *r, void *b);
int fs_fd_in(const void *b, struct fs_fd *f);
void fs_fd_out(const struct fs_fd *f, void *b);
/* The mapping record (FS_RDM_LEN bytes, e.g. fs_fd.rdm). */
int fs_rdm_in(const void *b, struct fs_rdm *r);
void fs_rdm_out(const struct fs_rdm *r, void *b);
int fs_pb_in(const void *b, struct fs_pb *p);
void fs_pb_out(const struct fs_pb *p, void *b);
int fs_dh_in(const void *b, struct fs_dh *h);
void fs_dh_out(const struct fs_dh *h, void *b);
int fs_db_in(const void *b, struct fs_db *d);
void fs_db_out(const struct fs_db *d, void *b);
int fs_jh_in(const void *b, struct fs_jh *h);
void fs_jh_out(const struct fs_jh *h, void *b);
int fs_jd_in(const void *b, struct fs_jd *d);
void fs_jd_out(const struct fs_jd *d, void *b);
int fs_jc_in(const void *b, struct fs_jc *c);
void fs_jc_out(const struct fs_jc *c, void *b);

/* Iterate the entries of a decoded dir block: returns the offset of the
 * next entry after *pos filled into *de, or -1 at the end / on damage. */
int fs_db_entry(const struct fs_db *d, unsigned pos, struct fs_dirent *de);
/* Append an entry; -ENOSPC when it does not fit. */
int fs_db_add(struct fs_db *d, const struct fs_dirent *de);
/* Remove the entry at pos. */
void fs_db_del(struct fs_db *d, unsigned pos);

#endif
