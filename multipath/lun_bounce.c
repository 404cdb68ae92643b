/*
 * lun_bounce.c - bounce buffers: an I/O whose memory does not meet the
 * path's alignment (O_DIRECT) goes through an aligned copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lun_int.h"

struct mp_bounce {
	const struct iovec *uiov;   /* the caller's vector, restored at done */
	int uiovcnt;
	struct iovec iov[2];
	void *data;
};

static bool iov_aligned(const struct iovec *iov, int iovcnt, unsigned align)
{
	if (align <= 1)
		return true;
	for (int i = 0; i < iovcnt; i++) {
		if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (align - 1))
			return false;
	}
	return true;
}

int bounce_setup(struct mp_lun *lun, struct mp_io *io)
{
	unsigned align = lun->path->mem_align;
	struct mp_bounce *b;
	size_t total;

	if (io->op != MP_OP_READ && io->op != MP_OP_WRITE && io->op != MP_OP_CAW)
		return 0;
	if (iov_aligned(io->iov, io->iovcnt, align))
		return 0;

	total = io->op == MP_OP_CAW ? 2 * io->length : io->length;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->data = mp_alloc_aligned(align, total);
	if (!b->data) {
		free(b);
		return -ENOMEM;
	}
	b->uiov = io->iov;
	b->uiovcnt = io->iovcnt;
	if (io->op == MP_OP_CAW) {
		memcpy(b->data, io->iov[0].iov_base, io->length);
		memcpy((char *)b->data + io->length, io->iov[1].iov_base,
		       io->length);
		b->iov[0].iov_base = b->data;
		b->iov[0].iov_len = io->length;
		b->iov[1].iov_base = (char *)b->data + io->length;
		b->iov[1].iov_len = io->length;
		io->iovcnt = 2;
	} else {
		if (io->op == MP_OP_WRITE)
			mp_iov_to_buf(b->data, io->iov, io->iovcnt, 0, total);
		b->iov[0].iov_base = b->data;
		b->iov[0].iov_len = total;
		io->iovcnt = 1;
	}
	io->iov = b->iov;
	io->bounce_ = b;
	return 0;
}

void bounce_finish(struct mp_io *io, int result)
{
	struct mp_bounce *b = io->bounce_;

	if (!b)
		return;
	if (io->op == MP_OP_READ && result > 0)
		mp_buf_to_iov(b->uiov, b->uiovcnt, 0, b->data, (size_t)result);
	if (io->op == MP_OP_CAW && result == -MP_E_MISCOMPARE)
		memcpy(b->uiov[0].iov_base, b->data, io->length);
	io->iov = b->uiov;
	io->iovcnt = b->uiovcnt;
	io->bounce_ = NULL;
	free(b->data);
	free(b);
}

