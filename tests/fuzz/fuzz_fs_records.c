/*
 * fuzz_fs_records - libFuzzer target: every file system metadata decoder
 * (extent header, superblock, cluster header, FD, pointer block, directory
 * header and block, journal header / descriptor / commit, raw device
 * mapping record) on arbitrary 4 KiB blocks.  What decodes must re-encode to a block that decodes the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"
#include "fs/fs_err.h"
#include "fs/ondisk.h"
#include "multipath/mp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROUNDTRIP(type, in, out, magic)                                     \
	do {                                                                 \
		static type a, b;                                            \
		memcpy(blk, data + 1, size - 1 < FS_BLOCK ? size - 1 : FS_BLOCK); \
		seal_if(blk, magic, data[0]);                                \
		if (in(blk, &a) == 0) {                                      \
			out(&a, out_blk);                                    \
			if (in(out_blk, &b) != 0)                            \
				abort();                                     \
		}                                                            \
	} while (0)

/* The same, and what re-decodes equals what decoded (for decoders that
 * clear the whole struct first, so that padding compares equal): a field
 * the encoder drops (an extent tag, say) is caught. */
#define ROUNDTRIP_EQ(type, in, out, magic)                                  \
	do {                                                                 \
		static type a, b;                                            \
		memcpy(blk, data + 1, size - 1 < FS_BLOCK ? size - 1 : FS_BLOCK); \
		seal_if(blk, magic, data[0]);                                \
		if (in(blk, &a) == 0) {                                      \
			out(&a, out_blk);                                    \
			if (in(out_blk, &b) != 0 || memcmp(&a, &b, sizeof(a))) \
				abort();                                     \
		}                                                            \
	} while (0)

static unsigned char blk[FS_BLOCK] __attribute__((aligned(16)));
static unsigned char out_blk[FS_BLOCK] __attribute__((aligned(16)));

/* Give the fuzzer valid headers often, so field checks are reached. */
static void seal_if(unsigned char *b, uint32_t magic, uint8_t sel)
{
	if (sel & 1) {
		memcpy(b, &magic, 4);
		b[4] = 1;
		b[5] = 0;
	}
	if (sel & 2) {
		uint32_t crc = mp_crc32c(0, b, FS_CRC_OFF);

		memcpy(b + FS_CRC_OFF, &crc, 4);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fs_dirent de;

	if (size < 2)
		return 0;
	memset(blk, 0, sizeof(blk));
	switch (data[0] >> 4) {
	case 0: ROUNDTRIP_EQ(struct fs_ext, fs_ext_in, fs_ext_out, FS_EXT_MAGIC); break;
	case 1: {
		/* as ROUNDTRIP_EQ, but the minor version decoded is the
		 * writer's: the encoder writes this version's own */
		static struct fs_sb a, b;

		memcpy(blk, data + 1, size - 1 < FS_BLOCK ? size - 1 : FS_BLOCK);
		seal_if(blk, FS_SB_MAGIC, data[0]);
		if (fs_sb_in(blk, &a) == 0) {
			fs_sb_out(&a, out_blk);
			if (fs_sb_in(out_blk, &b) != 0 || b.minor != FS_MINOR)
				abort();
			b.minor = a.minor;
			if (memcmp(&a, &b, sizeof(a)))
				abort();
		}
		break;
	}
	case 2: ROUNDTRIP(struct fs_rc, fs_rc_in, fs_rc_out, FS_RC_MAGIC); break;
	case 3: ROUNDTRIP(struct fs_fd, fs_fd_in, fs_fd_out, FS_FD_MAGIC); break;
	case 4: ROUNDTRIP(struct fs_pb, fs_pb_in, fs_pb_out, FS_PB_MAGIC); break;
	case 5: ROUNDTRIP(struct fs_dh, fs_dh_in, fs_dh_out, FS_DH_MAGIC); break;
	case 6: {
		static struct fs_db a;
		int pos = 0;

		memcpy(blk, data + 1, size - 1 < FS_BLOCK ? size - 1 : FS_BLOCK);
		seal_if(blk, FS_DB_MAGIC, data[0]);
		if (fs_db_in(blk, &a) == 0) {
			/* every entry of a valid block parses */
			while (pos >= 0 && pos < a.used)
				pos = fs_db_entry(&a, (unsigned)pos, &de);
			if (pos < 0)
				abort();
		}
		break;
	}
	case 7: ROUNDTRIP(struct fs_jh, fs_jh_in, fs_jh_out, FS_JH_MAGIC); break;
	case 8: ROUNDTRIP(struct fs_jd, fs_jd_in, fs_jd_out, FS_JD_MAGIC); break;
	case 9: ROUNDTRIP(struct fs_jc, fs_jc_in, fs_jc_out, FS_JC_MAGIC); break;
	case 10: {
		/* 1 KiB, its own crc32c at 0x3fc */
		static struct fs_rdm a, b;

		memcpy(blk, data + 1, size - 1 < FS_RDM_LEN ? size - 1 : FS_RDM_LEN);
		if (data[0] & 1) {
			uint32_t m = FS_RDM_MAGIC;

			memcpy(blk, &m, 4);
			blk[4] = 1;
			blk[5] = 0;
		}
		if (data[0] & 2) {
			uint32_t crc = mp_crc32c(0, blk, FS_RDM_CRC_OFF);

			memcpy(blk + FS_RDM_CRC_OFF, &crc, 4);
		}
		if (fs_rdm_in(blk, &a) == 0) {
			fs_rdm_out(&a, out_blk);
			if (fs_rdm_in(out_blk, &b) != 0 || memcmp(&a, &b, sizeof(a)))
				abort();
		}
		break;
	}
	default: break;
	}
	return 0;
}
