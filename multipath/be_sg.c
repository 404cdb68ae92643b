/*
 * be_sg.c - SCSI generic path backend (FC / SAS LUNs as /dev/sgN), SG_IO.
 *
 * UNTESTED ON HARDWARE: the machine this was written on has no kernel SCSI
 * subsystem, so no /dev/sg device exists there.  What can be tested without
 * one is: the result mapping (mp_sg_result, host / driver / SCSI status and
 * sense data through sg3_utils' sense normalisation and the shared table in
 * scsi.c) and the refusal to open what is not an sg device.  Both are in
 * tests/unit/test_mp_sg.c.
 *
 * Spec: sg:/dev/sgN.  Each path has SG_WORKERS threads that take requests
 * from a queue and issue them with a blocking SG_IO ioctl (the sg driver
 * queues them in the kernel, so several workers keep several commands in
 * flight).  Ops: READ(16) / WRITE(16) (FUA), SYNCHRONIZE CACHE(16), TEST
 * UNIT READY; everything else is -EOPNOTSUPP (no MP_CAP_* claimed for it).
 * Identity: VPD 0x83 NAA designator, else VPD 0x80 serial, read at open.
 */
#include <errno.h>
#include <fcntl.h>
#include <scsi/sg.h>
#include <scsi/sg_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "mp_int.h"

#define SG_WORKERS 8
#define SG_TIMEOUT_MS 10000u
#define SG_SENSE_LEN 64

/* Linux host_status / driver_status values (include/scsi/scsi.h) */
enum {
	DID_OK = 0x00, DID_NO_CONNECT = 0x01, DID_BUS_BUSY = 0x02,
	DID_TIME_OUT = 0x03, DID_BAD_TARGET = 0x04, DID_ABORT = 0x05,
	DID_PARITY = 0x06, DID_ERROR = 0x07, DID_RESET = 0x08,
	DID_BAD_INTR = 0x09, DID_PASSTHROUGH = 0x0a, DID_SOFT_ERROR = 0x0b,
	DID_IMM_RETRY = 0x0c, DID_REQUEUE = 0x0d,
	DID_TRANSPORT_DISRUPTED = 0x0e, DID_TRANSPORT_FAILFAST = 0x0f,
	DID_TRANSPORT_MARGINAL = 0x14,
};
#define DRIVER_TIMEOUT 0x06

int mp_sg_result(int host_status, int driver_status, int status,
		 const unsigned char *sense, int sense_len)
{
	struct sg_scsi_sense_hdr sh;

	switch (host_status) {
	case DID_OK:
		break;
	case DID_TIME_OUT:
		return -ETIMEDOUT;
	case DID_BUS_BUSY:
	case DID_SOFT_ERROR:
	case DID_IMM_RETRY:
	case DID_REQUEUE:
		return -EAGAIN;            /* retry, maybe down another path */
	case DID_NO_CONNECT:
	case DID_BAD_TARGET:
	case DID_ABORT:
	case DID_RESET:
	case DID_TRANSPORT_DISRUPTED:
	case DID_TRANSPORT_FAILFAST:
	case DID_TRANSPORT_MARGINAL:
	case DID_ERROR:
	case DID_PARITY:
	case DID_BAD_INTR:
		return -MP_E_TRANSPORT;    /* this path failed: fail over */
	default:
		return -EIO;
	}
	if ((driver_status & 0x0f) == DRIVER_TIMEOUT)
		return -ETIMEDOUT;
	if (status == 0x02 && sense && sense_len > 0 &&
	    sg_scsi_normalize_sense(sense, sense_len, &sh))
		return mp_scsi_result(status, sh.sense_key, sh.asc, sh.ascq);
	if (status == 0x02)
		return -MP_E_CHECK;        /* CHECK CONDITION without sense */
	return mp_scsi_result(status, 0, 0, 0);
}

struct sg_path {
	struct mp_path *p;
	int fd;
	uint32_t block;
	pthread_t workers[SG_WORKERS];
	unsigned nworkers;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mp_io *head, *tail;
	bool stop;
};

/* One command, synchronously.  0 or -error. */
static int sg_cmd(int fd, unsigned char *cdb, int cdb_len, int dir,
		  void *buf, unsigned len, const struct iovec *iov, int iovcnt)
{
	unsigned char sense[SG_SENSE_LEN];
	struct sg_io_hdr h;

	memset(&h, 0, sizeof(h));
	h.interface_id = 'S';
	h.cmdp = cdb;
	h.cmd_len = (unsigned char)cdb_len;
	h.dxfer_direction = dir;
	h.dxfer_len = len;
	if (iov) {
		/* sg_iovec has the layout of struct iovec */
		h.dxferp = (void *)iov;
		h.iovec_count = (unsigned short)iovcnt;
	} else {
		h.dxferp = buf;
	}
	h.sbp = sense;
	h.mx_sb_len = sizeof(sense);
	h.timeout = SG_TIMEOUT_MS;
	if (ioctl(fd, SG_IO, &h) < 0)
		return errno == ENODEV || errno == ENXIO ? -MP_E_TRANSPORT : -errno;
	return mp_sg_result(h.host_status, h.driver_status, h.status, sense,
			    h.sb_len_wr);
}

static void put_be64(unsigned char *b, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
}

static void put_be32(unsigned char *b, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
}

static int sg_do(struct sg_path *sp, struct mp_io *io)
{
	unsigned char cdb[16] = { 0 };
	uint64_t lba = io->offset / sp->block;
	uint32_t n = (uint32_t)(io->length / sp->block);
	int ret;

	switch (io->op) {
	case MP_OP_READ:
	case MP_OP_WRITE:
		cdb[0] = io->op == MP_OP_READ ? 0x88 : 0x8a;
		if (io->op == MP_OP_WRITE && (io->flags & MP_IO_FUA))
			cdb[1] = 0x08;
		put_be64(cdb + 2, lba);
		put_be32(cdb + 10, n);
		ret = sg_cmd(sp->fd, cdb, 16, io->op == MP_OP_READ ?
			     SG_DXFER_FROM_DEV : SG_DXFER_TO_DEV, NULL,
			     (unsigned)io->length, io->iov, io->iovcnt);
		return ret ? ret : (int)io->length;
	case MP_OP_FLUSH:
		cdb[0] = 0x91;   /* SYNCHRONIZE CACHE(16), whole medium */
		return sg_cmd(sp->fd, cdb, 16, SG_DXFER_NONE, NULL, 0, NULL, 0);
	case MP_OP_TUR:
		return sg_cmd(sp->fd, cdb, 6, SG_DXFER_NONE, NULL, 0, NULL, 0);
	default:
		return -EOPNOTSUPP;
	}
}

static void *sg_worker(void *arg)
{
	struct sg_path *sp = arg;

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		struct mp_io *io = sp->head;

		if (!io) {
			if (sp->stop)
				break;
			pthread_cond_wait(&sp->cond, &sp->lock);
			continue;
		}
		sp->head = io->next_;
		if (!sp->head)
			sp->tail = NULL;
		pthread_mutex_unlock(&sp->lock);
		mp_path_done(sp->p, io, sg_do(sp, io));
		pthread_mutex_lock(&sp->lock);
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

static void sg_submit(struct mp_path *p, struct mp_io *io)
{
	struct sg_path *sp = p->priv;

	io->next_ = NULL;
	pthread_mutex_lock(&sp->lock);
	if (sp->tail)
		sp->tail->next_ = io;
	else
		sp->head = io;
	sp->tail = io;
	pthread_cond_signal(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
}

/* INQUIRY, VPD 0x83 / 0x80 and READ CAPACITY(16) into p->info. */
static int sg_probe(struct sg_path *sp, struct mp_lun_info *in)
{
	unsigned char cdb[16] = { 0 }, buf[256];
	int ret;

	cdb[0] = 0x12;  /* standard INQUIRY */
	cdb[4] = 96;
	ret = sg_cmd(sp->fd, cdb, 6, SG_DXFER_FROM_DEV, buf, 96, NULL, 0);
	if (ret)
		return ret;
	memcpy(in->vendor, buf + 8, 8);
	memcpy(in->product, buf + 16, 16);
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x12;
	cdb[1] = 0x01;  /* EVPD */
	cdb[2] = 0x83;
	cdb[4] = sizeof(buf) - 1;
	memset(buf, 0, sizeof(buf));
	if (!sg_cmd(sp->fd, cdb, 6, SG_DXFER_FROM_DEV, buf, sizeof(buf) - 1,
		    NULL, 0)) {
		unsigned len = (unsigned)(buf[2] << 8 | buf[3]), o = 4;

		while (o + 4 <= len + 4 && o + 4 < sizeof(buf)) {
			unsigned dlen = buf[o + 3];

			/* designator type 3 = NAA, association 0 = the LU */
			if ((buf[o + 1] & 0x0f) == 3 && !(buf[o + 1] & 0x30) &&
			    o + 4 + dlen <= sizeof(buf)) {
				size_t k = (size_t)snprintf(in->id, sizeof(in->id),
							    "naa.");

				for (unsigned i = 0; i < dlen && k + 2 < sizeof(in->id); i++)
					k += (size_t)snprintf(in->id + k,
						sizeof(in->id) - k, "%02x",
						buf[o + 4 + i]);
				break;
			}
			o += 4 + dlen;
		}
	}
	if (!in->id[0])   /* no NAA: never group it with another path */
		snprintf(in->id, sizeof(in->id), "sgdev.%d", sp->fd);
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x9e;  /* SERVICE ACTION IN(16): READ CAPACITY(16) */
	cdb[1] = 0x10;
	put_be32(cdb + 10, 32);
	ret = sg_cmd(sp->fd, cdb, 16, SG_DXFER_FROM_DEV, buf, 32, NULL, 0);
	if (ret)
		return ret;
	sp->block = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 |
		    (uint32_t)buf[10] << 8 | buf[11];
	if (!sp->block || sp->block & 511)
		return -EIO;
	in->logical_sector = sp->block;
	in->physical_sector = sp->block << (buf[13] & 0x0f);
	in->capacity = 0;
	for (int i = 0; i < 8; i++)
		in->capacity = in->capacity << 8 | buf[i];
	in->capacity = (in->capacity + 1) * sp->block;
	in->caps = MP_CAP_FUA;
	snprintf(in->backend, sizeof(in->backend), "sg");
	return 0;
}

static int sg_open(struct mp_path *p, const char *spec,
		   const struct mp_open_opts *o)
{
	const char *dev = spec + 3;   /* "sg:" */
	struct sg_path *sp = calloc(1, sizeof(*sp));
	int ver = 0, ret;

	if (!sp)
		return -ENOMEM;
	sp->p = p;
	sp->fd = open(dev, (o && (o->flags & MP_OPEN_RDONLY) ? O_RDONLY : O_RDWR) |
		      O_CLOEXEC);
	if (sp->fd < 0) {
		ret = -errno;
		mp_log("%s: %s", spec, strerror(errno));
		goto free_sp;
	}
	if (ioctl(sp->fd, SG_GET_VERSION_NUM, &ver) < 0 || ver < 30000) {
		mp_log("%s: not a SCSI generic (sg) device", spec);
		ret = -ENOTTY;
		goto close_fd;
	}
	ret = sg_probe(sp, &p->info);
	if (ret) {
		mp_log("%s: probing the LUN failed: %s", spec, mp_strerror(ret));
		goto close_fd;
	}
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->cond, NULL);
	p->priv = sp;
	p->mem_align = 0;
	p->max_inflight = SG_WORKERS * 4;
	for (; sp->nworkers < SG_WORKERS; sp->nworkers++) {
		ret = -pthread_create(&sp->workers[sp->nworkers], NULL, sg_worker, sp);
		if (ret)
			break;
	}
	if (sp->nworkers)
		return 0;
	pthread_cond_destroy(&sp->cond);
	pthread_mutex_destroy(&sp->lock);
	p->priv = NULL;
close_fd:
	close(sp->fd);
free_sp:
	free(sp);
	return ret;
}

static void sg_close(struct mp_path *p)
{
	struct sg_path *sp = p->priv;

	pthread_mutex_lock(&sp->lock);
	sp->stop = true;
	pthread_cond_broadcast(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
	for (unsigned i = 0; i < sp->nworkers; i++)
		pthread_join(sp->workers[i], NULL);
	pthread_cond_destroy(&sp->cond);
	pthread_mutex_destroy(&sp->lock);
	close(sp->fd);
	free(sp);
	p->priv = NULL;
}

const struct mp_backend_ops mp_sg_ops = {
	.name = "sg",
	.open = sg_open,
	.close = sg_close,
	.submit = sg_submit,
};
