/*
 * lun_sync.c - synchronous helpers over mp_io_submit/mp_io_wait, and the
 * fault-injection controls (which act on a path of the LUN).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lun_int.h"

static int submit_wait(mp_lun *lun, struct mp_io *io)
{
	return mp_io_run(lun, io);
}

/* ---- synchronous helpers ------------------------------------------------- */

void mp_io_prep_read(struct mp_io *io, const struct iovec *iov, int iovcnt,
		     uint64_t off)
{
	memset(io, 0, sizeof(*io));
	io->op = MP_OP_READ;
	io->iov = iov;
	io->iovcnt = iovcnt;
	io->offset = off;
}

void mp_io_prep_write(struct mp_io *io, const struct iovec *iov, int iovcnt,
		      uint64_t off, unsigned flags)
{
	memset(io, 0, sizeof(*io));
	io->op = MP_OP_WRITE;
	io->flags = flags;
	io->iov = iov;
	io->iovcnt = iovcnt;
	io->offset = off;
}

ssize_t mp_lun_preadv(mp_lun *lun, const struct iovec *iov, int iovcnt,
		      uint64_t off)
{
	struct mp_io io;

	mp_io_prep_read(&io, iov, iovcnt, off);
	return submit_wait(lun, &io);
}

ssize_t mp_lun_pwritev(mp_lun *lun, const struct iovec *iov, int iovcnt,
		       uint64_t off, unsigned io_flags)
{
	struct mp_io io;

	mp_io_prep_write(&io, iov, iovcnt, off, io_flags);
	return submit_wait(lun, &io);
}

ssize_t mp_lun_pread(mp_lun *lun, void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return mp_lun_preadv(lun, &iov, 1, off);
}

ssize_t mp_lun_pwrite(mp_lun *lun, const void *buf, size_t len, uint64_t off,
		      unsigned io_flags)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return mp_lun_pwritev(lun, &iov, 1, off, io_flags);
}

static int simple_op(mp_lun *lun, enum mp_op op, uint64_t off, uint64_t len,
		     void *arg)
{
	struct mp_io io;

	memset(&io, 0, sizeof(io));
	io.op = op;
	io.offset = off;
	io.length = len;
	io.arg = arg;
	return submit_wait(lun, &io);
}

int mp_lun_flush(mp_lun *lun)
{
	return simple_op(lun, MP_OP_FLUSH, 0, 0, NULL);
}

int mp_lun_discard(mp_lun *lun, uint64_t off, uint64_t len)
{
	return simple_op(lun, MP_OP_DISCARD, off, len, NULL);
}

int mp_lun_reserve(mp_lun *lun)
{
	return simple_op(lun, MP_OP_RESERVE, 0, 0, NULL);
}

int mp_lun_release(mp_lun *lun)
{
	return simple_op(lun, MP_OP_RELEASE, 0, 0, NULL);
}

int mp_lun_pr(mp_lun *lun, struct mp_pr *pr)
{
	enum mp_op op = pr->action >= MP_PR_READ_KEYS ? MP_OP_PR_IN : MP_OP_PR_OUT;

	if (lun->mp)
		return mpath_pr(lun, pr);   /* every I_T nexus of the device */
	return simple_op(lun, op, 0, 0, pr);
}

int mp_lun_test_ready(mp_lun *lun)
{
	return simple_op(lun, MP_OP_TUR, 0, 0, NULL);
}

int mp_lun_caw(mp_lun *lun, uint64_t off, const void *cmp, const void *data,
	       size_t len, void *cur)
{
	struct iovec iov[2];
	struct mp_io io;
	void *c;
	int ret;

	/* The layer writes the current contents into iov[0] on miscompare,
	 * so compare against a private copy and hand it out through cur. */
	c = malloc(len ? len : 1);
	if (!c)
		return -ENOMEM;
	memcpy(c, cmp, len);
	iov[0].iov_base = c;
	iov[0].iov_len = len;
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = len;
	memset(&io, 0, sizeof(io));
	io.op = MP_OP_CAW;
	io.offset = off;
	io.length = len;
	io.iov = iov;
	io.iovcnt = 2;
	ret = submit_wait(lun, &io);
	if (ret == -MP_E_MISCOMPARE && cur)
		memcpy(cur, c, len);
	free(c);
	return ret;
}

/* ---- fault injection passthrough ------------------------------------------ */

int mp_fault_add_path(mp_lun *lun, unsigned idx, const struct mp_fault_rule *r)
{
	struct mp_path *p = lun->mp ? mpath_path(lun->mp, idx) :
				      idx ? NULL : lun->path;

	if (!p)
		return -ENOENT;
	return p->ops->fault_add ? p->ops->fault_add(p, r) : -EINVAL;
}

int mp_fault_clear_path(mp_lun *lun, unsigned idx)
{
	struct mp_path *p = lun->mp ? mpath_path(lun->mp, idx) :
				      idx ? NULL : lun->path;

	if (!p)
		return -ENOENT;
	return p->ops->fault_clear ? p->ops->fault_clear(p) : -EINVAL;
}

int mp_fault_add(mp_lun *lun, const struct mp_fault_rule *rule)
{
	struct mp_path *p = lun->path;

	return p->ops->fault_add ? p->ops->fault_add(p, rule) : -EINVAL;
}

int mp_fault_clear(mp_lun *lun)
{
	struct mp_path *p = lun->path;

	return p->ops->fault_clear ? p->ops->fault_clear(p) : -EINVAL;
}

int mp_fault_power_cut(mp_lun *lun, enum mp_powercut_mode mode)
{
	struct mp_path *p = lun->path;

	return p->ops->power_cut ? p->ops->power_cut(p, mode) : -EINVAL;
}

int mp_fault_get_stats(mp_lun *lun, struct mp_fault_stats *st)
{
	struct mp_path *p = lun->path;

	return p->ops->fault_stats ? p->ops->fault_stats(p, st) : -EINVAL;
}
