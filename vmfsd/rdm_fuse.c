/*
 * rdm_fuse.c - FUSE requests on raw device mapping files (rdm_fuse.h).
 *
 * An open mapping file's handle is a thin_rdm with the low bit set (it is
 * malloc'ed, so at least 8-byte aligned); vmfsd's own handles (fs_file)
 * never have it.  Requests on other handles pass to vmfsd's operations.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmfsd/cbt_hook.h"
#include "vmfsd/rdm_fuse.h"

static struct fuse_lowlevel_ops base;   /* vmfsd's own operations */
static struct vmfsd_ctx *ctx;

static bool is_rdm(const struct fuse_file_info *fi)
{
	return fi && (fi->fh & 1);
}

static thin_rdm *rdm_of(const struct fuse_file_info *fi)
{
	return (thin_rdm *)(uintptr_t)(fi->fh & ~(uint64_t)1);
}

static int pos_err(int ret)
{
	if (ret >= 0)
		return 0;
	if (ret < -1000)
		fprintf(stderr, "vmfsd: raw device mapping: %s\n", fs_strerror(ret));
	return -vmfsd_errno(ret);
}

/* Open mapping file ino into fi (0 or a positive errno). */
static int open_mapping(uint64_t ino, struct fuse_file_info *fi)
{
	thin_rdm *r;
	char msg[512];
	int ret;

	/* O_TRUNC means nothing to a device */
	ret = thin_rdm_open(ctx->vol, ctx->luns, ino,
			    (fi->flags & O_ACCMODE) != O_RDONLY, &r, msg,
			    sizeof(msg));
	if (ret) {
		fprintf(stderr, "vmfsd: opening a raw device mapping: %s\n", msg);
		return pos_err(ret);
	}
	/* a virtual-mode mapping of a tracked disk: its writes are marked
	 * (changed-block tracking, cbt_hook.h), the tracking file dirty
	 * before any is made */
	if ((fi->flags & O_ACCMODE) != O_RDONLY &&
	    (ret = vmfsd_cbt_open(r, ino))) {
		thin_rdm_close(r);
		return pos_err(ret);
	}
	fi->fh = (uint64_t)(uintptr_t)r | 1;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

static void rdm_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_stat st;
	int e;

	/* the root (FUSE_ROOT_ID) is a directory, never a mapping */
	if (ino == FUSE_ROOT_ID || fs_getattr(ctx->vol, (uint64_t)ino, &st) ||
	    st.type != FS_TYPE_RDM) {
		base.open(req, ino, fi);
		return;
	}
	e = open_mapping((uint64_t)ino, fi);
	if (e)
		fuse_reply_err(req, e);
	else
		fuse_reply_open(req, fi);
}

/* open(O_CREAT) of a name that exists may arrive as a create: a mapping
 * must still open as one.  With O_EXCL any existing name is EEXIST, which
 * the plain create says without a lookup first. */
static void rdm_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct fs_stat st;
	uint64_t dir = parent == FUSE_ROOT_ID ? fs_root(ctx->vol) : (uint64_t)parent;
	int err;

	if ((fi->flags & O_EXCL) || fs_lookup(ctx->vol, dir, name, &st) ||
	    st.type != FS_TYPE_RDM) {
		base.create(req, parent, name, mode, fi);
		return;
	}
	err = open_mapping(st.ino, fi);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = (fuse_ino_t)st.ino;
	e.generation = st.gen;
	vmfsd_fill_stat(&st, &e.attr);
	fuse_reply_create(req, &e, fi);
}

static void rdm_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_stat s;
	struct stat st;
	int e;

	if (!is_rdm(fi)) {
		base.getattr(req, ino, fi);
		return;
	}
	e = thin_rdm_fstat(rdm_of(fi), &s);
	if (e) {
		fuse_reply_err(req, pos_err(e));
		return;
	}
	vmfsd_fill_stat(&s, &st);
	fuse_reply_attr(req, &st, 0);
}

static void rdm_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	if (!is_rdm(fi)) {
		base.setattr(req, ino, attr, to_set, fi);
		return;
	}
	/* a mapping's size is its LUN's; mode, owner and times are the
	 * mapping file's, changed by name */
	if (to_set & FUSE_SET_ATTR_SIZE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	base.setattr(req, ino, attr, to_set, NULL);
}

static void rdm_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	void *buf;
	ssize_t n;

	if (!is_rdm(fi)) {
		base.read(req, ino, size, off, fi);
		return;
	}
	buf = vmfsd_thread_buf(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = thin_rdm_pread(rdm_of(fi), buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, pos_err((int)n));
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void rdm_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
			  off_t off, struct fuse_file_info *fi)
{
	void *buf;
	ssize_t n;

	if (!is_rdm(fi)) {
		base.write_buf(req, ino, in, off, fi);
		return;
	}
	n = vmfsd_buf_in(in, &buf);
	if (n >= 0)
		n = thin_rdm_pwrite(rdm_of(fi), buf, (size_t)n, (uint64_t)off);
	/* marked after it reached the LUN, before it is acknowledged */
	if (n > 0 && vmfsd_cbt_write(rdm_of(fi), (uint64_t)off, (uint64_t)n))
		n = -EIO;
	if (n < 0)
		fuse_reply_err(req, pos_err((int)n));
	else
		fuse_reply_write(req, (size_t)n);
}

static void rdm_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	if (!is_rdm(fi))
		base.fsync(req, ino, datasync, fi);
	else
		fuse_reply_err(req, pos_err(vmfsd_cbt_fsync(rdm_of(fi),
					thin_rdm_flush(rdm_of(fi)))));
}

static void rdm_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!is_rdm(fi)) {
		base.release(req, ino, fi);
		return;
	}
	/* every write reached the LUN: the last writer makes tracking clean */
	vmfsd_cbt_release(rdm_of(fi));
	fuse_reply_err(req, pos_err(thin_rdm_close(rdm_of(fi))));
}

static void rdm_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			  off_t len, struct fuse_file_info *fi)
{
	if (!is_rdm(fi))
		base.fallocate(req, ino, mode, off, len, fi);
	else
		fuse_reply_err(req, EOPNOTSUPP);
}

static void rdm_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	struct fs_stat s;
	int e;

	if (!is_rdm(fi)) {
		base.lseek(req, ino, off, whence, fi);
		return;
	}
	/* a LUN is all data */
	e = thin_rdm_fstat(rdm_of(fi), &s);
	if (e)
		fuse_reply_err(req, pos_err(e));
	else if (whence != SEEK_DATA && whence != SEEK_HOLE)
		fuse_reply_err(req, EINVAL);
	else if (off < 0 || (uint64_t)off >= s.size)
		fuse_reply_err(req, ENXIO);
	else
		fuse_reply_lseek(req, whence == SEEK_DATA ? off : (off_t)s.size);
}

void vmfsd_rdm_fuse_ops(struct vmfsd_ctx *c, const struct fuse_lowlevel_ops *ops,
			struct fuse_lowlevel_ops *out)
{
	ctx = c;
	base = *ops;
	*out = *ops;
	out->open = rdm_open;
	out->create = rdm_create;
	out->getattr = rdm_getattr;
	out->setattr = rdm_setattr;
	out->read = rdm_read;
	out->write_buf = rdm_write_buf;
	out->fsync = rdm_fsync;
	out->release = rdm_release;
	out->fallocate = rdm_fallocate;
	out->lseek = rdm_lseek;
}
