/*
 * rdm.h - raw device mappings (vmkfstools -r / -z): a descriptor NAME.vmdk
 * (createType vmfsRawDeviceMap or vmfsPassthroughRawDeviceMap, one VMFSRDM
 * extent) and a mapping file NAME-rdm.vmdk / NAME-rdmp.vmdk whose record
 * names a whole LUN by its identity (docs/FORMAT.md), never by a path.
 *
 * Each host knows the LUNs it can see (a thin_luns set: vmfsd --lun SPEC),
 * opens each once and computes its identity as the device layer does for
 * multipath (VPD 0x83 designator, VPD 0x80 serial, device and inode of a
 * file).  A mapping resolves to the LUN of the same identity, whatever the
 * device is called on that host.
 *
 * Compatibility modes: both give reads, writes and flushes of the whole
 * LUN.  Physical mode (passthrough) additionally promises that SCSI
 * commands of the guest reach the LUN (reservations for clustered guests,
 * vendor pages); whoever presents the disk to a guest checks
 * thin_rdm_info.rec.mode and does so (the executor's virtio-blk has no
 * SCSI to pass; it presents both modes as a block device today).
 */
#ifndef THIN_RDM_H
#define THIN_RDM_H

#include "fs/fs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the LUNs a host sees ---------------------------------------------- */

typedef struct thin_luns thin_luns;

int thin_luns_create(thin_luns **out);
/* Closes every LUN (no mapping may be open any more). */
void thin_luns_destroy(thin_luns *l);
/* Open spec (read-write) and add it; a second spec of an identity already
 * listed is refused (-EEXIST).  err says why. */
int thin_luns_add(thin_luns *l, const char *spec, char *err, size_t errlen);
/* The LUN whose identity (fs_rdm.id) is id, or whose spec is id; NULL. */
mp_lun *thin_luns_find(thin_luns *l, const char *id);

/* What an RDM would record about lun: identity (kind, id), serial,
 * vendor, product, capacity, sector.  -EINVAL with a message when the LUN
 * has no identity that other hosts could find it by. */
int thin_rdm_identify(mp_lun *lun, struct fs_rdm *r, char *err, size_t errlen);

/* ---- mappings ------------------------------------------------------------ */

/*
 * Map device (a spec or identity among l's LUNs) as path (DIR/NAME.vmdk):
 * the mapping file first, the descriptor last.  Refused: a LUN that holds
 * an extent of a volume (ours or another), one already mapped by a mapping
 * file on this volume, a device not among l.
 */
int thin_rdm_create(fs_vol *v, thin_luns *l, const char *path,
		    const char *device, enum fs_rdm_mode mode, const char *host,
		    char *err, size_t errlen);

/*
 * Whether a mapping file of this volume maps the LUN device (a spec, opened
 * here to learn its identity): 1 with its name in name, 0 when none does (or
 * the LUN has no identity a mapping could record), or an error.  For
 * vmkfstools -Z, which must not make a mapped LUN an extent.
 */
int thin_rdm_mapping_of(fs_vol *v, const char *device, char *name,
			size_t len);

struct thin_rdm_info {
	struct fs_rdm rec;          /* the mapping record */
	char file[4096];            /* the mapping file, relative to the root */
	uint64_t ino;               /* its FD */
	const char *spec;           /* the LUN's spec on this host (valid
				     * while l lives), NULL if it has none */
	mp_lun *lun;                /* NULL when this host does not see it */
};
/*
 * Resolve path (the descriptor NAME.vmdk or the mapping file itself):
 * the record and this host's LUN.  -ENODEV (message naming the identity)
 * when no LUN of l has it; -EINVAL when path maps no device.
 */
int thin_rdm_resolve(fs_vol *v, thin_luns *l, const char *path,
		     struct thin_rdm_info *in, char *err, size_t errlen);

/* ---- I/O through a mapping -------------------------------------------------- */

typedef struct thin_rdm thin_rdm;

/*
 * Open mapping file ino for I/O: takes the file's lock (read-write: held
 * exclusively while open, as any file: a second host's read-write open
 * fails with -EBUSY), resolves the LUN.  Any offset and length; the size
 * is the record's capacity.
 */
int thin_rdm_open(fs_vol *v, thin_luns *l, uint64_t ino, bool rw,
		  thin_rdm **out, char *err, size_t errlen);
ssize_t thin_rdm_pread(thin_rdm *r, void *buf, size_t len, uint64_t off);
/* -EBADF on a read-only open; -ENOSPC past the end. */
ssize_t thin_rdm_pwrite(thin_rdm *r, const void *buf, size_t len, uint64_t off);
/* Writes durable on the LUN (SYNCHRONIZE CACHE / fdatasync). */
int thin_rdm_flush(thin_rdm *r);
int thin_rdm_fstat(thin_rdm *r, struct fs_stat *st);
int thin_rdm_close(thin_rdm *r);

#ifdef __cplusplus
}
#endif
#endif /* THIN_RDM_H */
