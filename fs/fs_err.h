/*
 * fs_err.h - the file system's private error range (returned negated),
 * shared by ondisk.c and the public header fs.h.
 */
#ifndef FS_ERR_H
#define FS_ERR_H

enum fs_error {
	FS_E_BASE = 6000,
	FS_E_BADMAGIC,     /* not the structure expected here */
	FS_E_CHECKSUM,     /* metadata checksum mismatch */
	FS_E_VERSION,      /* unsupported major version or incompat feature */
	FS_E_CORRUPT,      /* fields out of range / inconsistent */
	FS_E_NOVOLUME,     /* no extent of this volume found */
	FS_E_EXTENTS,      /* extents missing or duplicated */
	FS_E_JOURNAL,      /* journal full or damaged */
	FS_E_END
};

/* Describe 0, -errno, -MP_E_*, -LK_E_* or -FS_E_*. */
const char *fs_strerror(int err);

#endif
