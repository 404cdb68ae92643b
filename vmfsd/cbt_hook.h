/*
 * cbt_hook.h - changed-block tracking inside vmfsd (cbt_cmds.c): the FUSE
 * write path's hooks and the control commands cbt_enable, cbt_disable,
 * cbt_checkpoint, cbt_query and cbt_mark.
 *
 * A FUSE handle opened for writing on the data file (DISK-flat.vmdk, or
 * the mapping file DISK-rdm.vmdk of a virtual-mode raw device mapping) of
 * a disk whose descriptor names a tracking file marks every change it makes
 * before the change is acknowledged; the tracking file says dirty while
 * such a handle (or a cbt_mark session) is open, and clean again after
 * the last one closed (cbt.h: complete or reset).
 */
#ifndef VMFSD_CBT_HOOK_H
#define VMFSD_CBT_HOOK_H

#include <stdint.h>

#include "fs/fs.h"

/* The volume the commands work on (before serving). */
void vmfsd_cbt_init(fs_vol *v);
/* After the FUSE loop ended: every tracked disk written back and clean. */
void vmfsd_cbt_stop(void);

/* A lookup found name in dir (remembers data file names). */
void vmfsd_cbt_lookup(uint64_t dir, const char *name, uint64_t ino);
/* Handle f (an fs_file, or the thin_rdm of a raw device mapping: only a
 * key here) was opened read-write on ino: starts tracking its writes when
 * ino is a tracked disk's data file (or a virtual-mode mapping file).  0,
 * or an error: the open must fail. */
int vmfsd_cbt_open(const void *f, uint64_t ino);
/* f changed [off, off + len) (a write or a punched hole); 0 or -EIO when
 * the change could not be recorded (tracking is then reset). */
int vmfsd_cbt_write(const void *f, uint64_t off, uint64_t len);
/* f was cut or grown to size: everything from size on changed. */
int vmfsd_cbt_resized(const void *f, uint64_t size);
/* ino is about to be cut or grown to size by a path (no handle): the
 * blocks it changes are held until vmfsd_cbt_resize_done(*tok), which
 * the caller calls after the change (made or failed) in any case. */
int vmfsd_cbt_resize_ino(uint64_t ino, uint64_t size, void **tok);
void vmfsd_cbt_resize_done(void *tok);
/* After fs_fsync(f) returned ret: marks durable too; the first error. */
int vmfsd_cbt_fsync(const void *f, int ret);
/* Before fs_close(f). */
void vmfsd_cbt_release(const void *f);
/*
 * The writer that reported its writes with cbt_mark for data file ino is
 * gone without saying "close" (vmrun died: its disk's connection ended).
 * Its session ends; the blocks it held stay held (a write it had in
 * flight may still land) until CBT_DEAD_GRACE_NS later.
 */
void vmfsd_cbt_writer_gone(uint64_t ino);

#endif /* VMFSD_CBT_HOOK_H */
