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

#endif /* VMFSD_CMDS_H */
