/*
 * rdm_fuse.h - raw device mapping files through FUSE: reads and writes of
 * NAME-rdm.vmdk reach the mapped LUN (thin/rdm.h), not the volume.
 */
#ifndef VMFSD_RDM_FUSE_H
#define VMFSD_RDM_FUSE_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 35
#endif
#include <fuse_lowlevel.h>

#include "vmfsd/cmds.h"

/*
 * out = ops, with the file operations wrapped: a mapping file opens as a
 * thin_rdm (its handle tagged), whose requests are served here; every
 * other file goes to ops unchanged.  c->vol and c->luns must be set.
 */
void vmfsd_rdm_fuse_ops(struct vmfsd_ctx *c, const struct fuse_lowlevel_ops *ops,
			struct fuse_lowlevel_ops *out);

/* A file's attributes as FUSE reports them (vmfsd.c). */
void vmfsd_fill_stat(const struct fs_stat *s, struct stat *st);
/* The FUSE worker's page-aligned data buffer, at least size bytes
 * (vmfsd.c; valid until the thread's next request). */
void *vmfsd_thread_buf(size_t size);
/* A write request's data where it is if it is one sector-aligned piece in
 * memory (fuse_loop.c's receive buffers place it so), else copied into
 * that buffer: *buf, and its length or -ENOMEM. */
ssize_t vmfsd_buf_in(struct fuse_bufvec *in, void **buf);

/* The FUSE request loop (fuse_loop.c): until the session exits (unmount,
 * or a signal through fuse_set_signal_handlers).  0, or the negative errno
 * reading /dev/fuse failed with. */
int vmfsd_fuse_loop(struct fuse_session *se);

#endif /* VMFSD_RDM_FUSE_H */
