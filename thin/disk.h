/*
 * disk.h - virtual disks on a mounted volume: a descriptor DISK.vmdk and
 * its data file DISK-flat.vmdk, provisioned thin, zeroedthick or
 * eagerzeroedthick (vmkfstools -c, -U, -E, -X through vmfsd).
 *
 * Paths are relative to the volume's root.  Long operations report
 * progress and stop when asked to; a disk whose creation stopped, for
 * whatever reason, is removed again: nothing half-made stays behind.
 */
#ifndef THIN_DISK_H
#define THIN_DISK_H

#include "fs/fs.h"
#include "thin/vmdk.h"

#ifdef __cplusplus
extern "C" {
#endif

struct thin_cb {
	/* what: "Creating disk", "Extending disk"; done/total bytes */
	void (*progress)(void *arg, const char *what, uint64_t done,
			 uint64_t total);
	bool (*cancelled)(void *arg);     /* true: stop (-ECANCELED) */
	void *arg;
};

/* Every function returns 0 or a negative error with a message in err. */
int thin_create(fs_vol *v, const char *path, uint64_t size,
		enum thin_kind kind, const struct thin_cb *cb, char *err,
		size_t errlen);
/* Remove the descriptor and every extent file it names. */
int thin_delete(fs_vol *v, const char *path, char *err, size_t errlen);
/* Rename the descriptor and its extents together (same folder rules as
 * vmkfstools -E: the new name must end in .vmdk). */
int thin_rename(fs_vol *v, const char *path, const char *newpath, char *err,
		size_t errlen);
/* Grow the disk to size bytes, provisioned as it was. */
int thin_extend(fs_vol *v, const char *path, uint64_t size,
		const struct thin_cb *cb, char *err, size_t errlen);

/* Copy a disk into a new one of the given kind (vmkfstools -i): only what
 * the source has written is read; a thin target keeps the holes, and
 * chunks of zeros, unallocated. */
int thin_clone(fs_vol *v, const char *path, const char *newpath,
	       enum thin_kind kind, const struct thin_cb *cb, char *err,
	       size_t errlen);
/* The same, and a raw device mapping as the source too (vmkfstools -i
 * RDM.vmdk DISK.vmdk): the LUN's contents, read through this host's LUN
 * among luns (thin/rdm.h). */
struct thin_luns;
int thin_clone_from(fs_vol *v, struct thin_luns *luns, const char *path,
		    const char *newpath, enum thin_kind kind,
		    const struct thin_cb *cb, char *err, size_t errlen);
/* Thin -> eagerzeroedthick (vmkfstools -j), or with eager_only a
 * zeroedthick disk's never-written blocks zeroed now (vmkfstools -k). */
int thin_inflate(fs_vol *v, const char *path, bool eager_only,
		 const struct thin_cb *cb, char *err, size_t errlen);
/* Give back every file block of a thin disk that holds only zeros
 * (vmkfstools -K); *freed = bytes given back. */
int thin_punch_zeros(fs_vol *v, const char *path, const struct thin_cb *cb,
		     uint64_t *freed, char *err, size_t errlen);
/* Allocate and zero every hole of [0, size) of f. */
int thin_fill_holes(fs_file *f, uint64_t size, const char *what,
		    const struct thin_cb *cb);

/* Name the change tracking file in the descriptor (changeTrackPath, a
 * name in the descriptor's folder), or remove it with ctk NULL.  The file
 * itself is the caller's (cbt/). */
int thin_set_change_track(fs_vol *v, const char *path, const char *ctk,
			  char *err, size_t errlen);

struct thin_info {
	struct thin_desc desc;
	enum thin_kind kind;          /* from the data file's allocation */
	uint64_t size;                /* virtual size */
	uint64_t allocated;           /* bytes of the volume it uses */
};
int thin_info(fs_vol *v, const char *path, struct thin_info *info, char *err,
	      size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* THIN_DISK_H */
