/*
 * cmds.h - vmfsd's control commands (each group registers itself).
 */
#ifndef VMFSD_CMDS_H
#define VMFSD_CMDS_H

#include "fs/fs.h"
#include "thin/rdm.h"
#include "vmfsd/ctl.h"

/* What the command handlers may use. */
struct vmfsd_ctx {
	fs_vol *vol;
	const char *host;
	char mnt[4096];         /* real path of the mount point */
	unsigned alarm_secs;    /* space alarm check period (0 = 10 s) */
	thin_luns *luns;        /* LUNs this host sees for mappings (--lun) */
};

/* The negative errno a client gets for a library error (-errno as it is;
 * the private -FS_E_/-LK_E_/-MP_E_ codes, described in the message, as
 * -EIO). */
int vmfsd_errno(int ret);

/* info, lockinfo (cmds.c), and the others below */
int vmfsd_cmds_register(struct vmfsd_ctx *c);
/* The space alarm thread (read-write hosts): logs when usage crosses 75%
 * and 85% of the capacity, and when it comes back. */
int vmfsd_alarm_start(struct vmfsd_ctx *c);
void vmfsd_alarm_stop(void);
/* disk_create, disk_delete, disk_rename, disk_extend, disk_info, ...,
 * rdm_create, rdm_resolve */
int vmfsd_disk_cmds_register(struct vmfsd_ctx *c);
/* vol_span, vol_grow (vol_cmds.c): online -Z / --growfs */
int vmfsd_vol_cmds_register(struct vmfsd_ctx *c);

/* disk_attach, disk_alloc, disk_sync (attach_cmds.c): vmrun's mapped
 * disks */
int vmfsd_attach_cmds_register(struct vmfsd_ctx *c);
/* True while a disk whose data file or descriptor is ino is attached to a
 * running VM on this host: nothing else may change its block map. */
bool vmfsd_disk_attached(uint64_t ino);
/* Shut every attached disk's connection down (the host was fenced or
 * lost its locks): vmrun stops that disk's I/O.  Returns how many. */
int vmfsd_disks_fence(const char *why);
/* Stopping: end our half of every attached disk's connection and wait (at
 * most a lease) for vmrun to stop its I/O and close, before the files and
 * their locks go. */
void vmfsd_disks_stop(struct vmfsd_ctx *c);

/* Bytes written and read through FUSE (info reports them: the I/O of a
 * mapped disk never passes here). */
extern uint64_t vmfsd_fuse_written, vmfsd_fuse_read;
/* READ requests of regular files */
extern uint64_t vmfsd_fuse_reads;
/* write data copied before it could go to the device (not where the
 * receive buffer puts it: fuse_loop.c) */
extern uint64_t vmfsd_fuse_copied_in;
/* Kernel caching under directory holds (vmfsd.c): on or not, lookups and
 * getattrs served, replies the kernel may keep, invalidations sent. */
extern bool vmfsd_kcache_on;
extern uint64_t vmfsd_fuse_lookups, vmfsd_fuse_getattrs, vmfsd_kcache_replies,
		vmfsd_kcache_drops;

#endif /* VMFSD_CMDS_H */
