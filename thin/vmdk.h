/*
 * vmdk.h - VMware virtual disk descriptors (the text .vmdk file).
 *
 * A descriptor names the disk's extents (data files or a raw device) and
 * carries its geometry and identity in the "disk database" (ddb.* keys).
 * We write what ESX writes for its disk types, so that VMware tools and
 * qemu-img read ours, and read every descriptor they write: keys we do not
 * know are kept and written back unchanged.
 *
 *   # Disk DescriptorFile
 *   version=1
 *   encoding="UTF-8"
 *   CID=fffffffe
 *   parentCID=ffffffff
 *   createType="vmfs"
 *
 *   # Extent description
 *   RW 20971520 VMFS "disk-flat.vmdk"
 *
 *   # The Disk Data Base
 *   #DDB
 *   ddb.adapterType = "lsilogic"
 *   ...
 */
#ifndef THIN_VMDK_H
#define THIN_VMDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define THIN_MAX_EXTENTS 16
#define THIN_MAX_DDB 64
#define THIN_DESC_MAX 65536        /* bytes of descriptor text we accept */

/* Provisioning of a disk's data (how vmkfstools -d names it). */
enum thin_kind {
	THIN_THIN = 1,             /* blocks allocated on first write */
	THIN_ZEROEDTHICK,          /* reserved at creation, zeroed on first
				    * write (reads of never-written blocks
				    * give zeros) */
	THIN_EAGERZEROEDTHICK,     /* reserved and zeroed at creation */
	THIN_RDM,                  /* raw device mapping, virtual mode */
	THIN_RDMP,                 /* raw device mapping, physical mode */
};
const char *thin_kind_name(enum thin_kind k);
/* "thin", "zeroedthick", "eagerzeroedthick" (also "thick" = zeroedthick):
 * 0 and *k, or -EINVAL. */
int thin_kind_parse(const char *s, enum thin_kind *k);

struct thin_extent {
	char access[8];            /* RW, RDONLY, NOACCESS */
	uint64_t sectors;          /* 512-byte sectors */
	char type[24];             /* VMFS, FLAT, VMFSRDM, VMFSRAW, ZERO, ... */
	char file[256];            /* relative to the descriptor's folder */
	uint64_t offset;           /* sectors into the file (FLAT), 0 else */
	bool has_offset;
};

struct thin_ddb {
	char key[64];
	char value[256];
};

struct thin_desc {
	uint32_t version;
	uint32_t cid, parent_cid;
	char create_type[40];      /* vmfs, vmfsRawDeviceMap,
				    * vmfsPassthroughRawDeviceMap,
				    * monolithicFlat, ... */
	char parent_hint[256];     /* parentFileNameHint (delta disks) */
	char change_track[256];    /* changeTrackPath (cbt), "" = none */
	unsigned nextents;
	struct thin_extent ext[THIN_MAX_EXTENTS];
	unsigned nddb;
	struct thin_ddb ddb[THIN_MAX_DDB];
};

/*
 * Parse descriptor text (not NUL-terminated, at most THIN_DESC_MAX bytes).
 * Returns 0, or -EINVAL with a message naming the line in err.
 */
int thin_desc_parse(const char *text, size_t len, struct thin_desc *d,
		    char *err, size_t errlen);

/* Write d as text into buf; returns its length, or -ENOSPC. */
int thin_desc_format(const struct thin_desc *d, char *buf, size_t len);

/* Virtual size in bytes: the sum of the extents. */
uint64_t thin_desc_size(const struct thin_desc *d);

/* A ddb value ("" when absent) and setting one (added when absent). */
const char *thin_ddb_get(const struct thin_desc *d, const char *key);
int thin_ddb_set(struct thin_desc *d, const char *key, const char *value);

/*
 * A new descriptor for a disk of size bytes (a multiple of 512) with one
 * extent, as ESX writes them: data file "<base>-flat.vmdk" (type VMFS) for
 * the provisioned kinds, or the raw device (type VMFSRDM / VMFSRAW) for
 * mappings.  Geometry as ESX computes it (255 heads, 63 sectors), a new
 * random CID and ddb.uuid.
 */
int thin_desc_new(struct thin_desc *d, enum thin_kind kind, uint64_t size,
		  const char *extent_file);

/* Geometry and size after a resize (extent 0 takes the difference). */
int thin_desc_resize(struct thin_desc *d, uint64_t size);

#ifdef __cplusplus
}
#endif
#endif /* THIN_VMDK_H */
