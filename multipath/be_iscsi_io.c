/*
 * be_iscsi_io.c - iSCSI path backend: requests and SCSI commands.
 *
 * One mp_io is one request (struct isc_req) worked on by a few parts
 * (slots), each carrying one SCSI command at a time.  READ and WRITE are
 * cut at the target's MAXIMUM TRANSFER LENGTH and DISCARD at its UNMAP (or
 * WRITE SAME) limits; a part that finishes its range takes the next one, so
 * a huge request never has more than REQ_SLOTS commands in flight.  The
 * request completes once, when no part is busy, with the first error.
 *
 * A part is PT_READY (to be sent), PT_INFLIGHT (libiscsi has its task) or
 * PT_IDLE (done).  Everything here runs on the reactor thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "be_iscsi_int.h"

#define PART_RETRIES 3           /* UNIT ATTENTION etc., per command */
#define RETRY_DELAY_NS 100000000ull
#define MAX_CMD_BYTES (1u << 30) /* libiscsi keeps expxferlen in an int */
#define REQ_SLOTS 16             /* commands in flight per request */
#define UNMAP_DESC_MAX 64        /* descriptors per UNMAP we send */
#define WS_DEFAULT_BLOCKS 0x400000u
#define PR_IN_LEN (8 + 8 * 256)

/* ---- parts and requests ---------------------------------------------------- */

/* Whether resending after a lost connection is safe whatever the first
 * attempt did on the target. */
static bool req_idempotent(const struct isc_req *r)
{
	switch (r->io->op) {
	case MP_OP_CAW:
		return r->stage == 1;
	case MP_OP_RESERVE:
	case MP_OP_PR_OUT:
		return false;
	default:
		return true;
	}
}

static void part_ready(struct isc_part *pt, uint64_t delay_ns)
{
	struct isc_req *r = pt->req;

	if (pt->state == PT_IDLE)
		r->nbusy++;
	if (pt->state != PT_READY)
		r->ip->nready++;
	pt->state = PT_READY;
	pt->not_before = mp_now_ns() + delay_ns;
}

/* Give pt the next range of a ranged request; false when none is left. */
static bool part_fill(struct isc_req *r, struct isc_part *pt)
{
	const struct mp_io *io = r->io;
	uint32_t bs = r->ip->lim.block;
	uint64_t n;

	if (r->next_lba >= r->end_lba)
		return false;
	n = min_u64(r->per, r->end_lba - r->next_lba);
	pt->lba = r->next_lba;
	pt->nblocks = (uint32_t)n;
	pt->tries = 0;
	r->next_lba += n;
	if (io->op == MP_OP_READ || io->op == MP_OP_WRITE) {
		size_t want = (size_t)n * bs;

		pt->niov = 0;
		while (want) {
			const struct iovec *v = &io->iov[r->iov_idx];
			size_t take = v->iov_len - r->iov_off;

			if (take > want)
				take = want;
			if (take) {
				pt->iov[pt->niov].iov_base =
					(char *)v->iov_base + r->iov_off;
				pt->iov[pt->niov].iov_len = take;
				pt->niov++;
			}
			want -= take;
			r->iov_off += take;
			if (r->iov_off == v->iov_len) {
				r->iov_idx++;
				r->iov_off = 0;
			}
		}
	} else if (io->op == MP_OP_DISCARD && r->ip->lim.lbpu) {
		pt->nul = 0;
		for (uint64_t o = 0; o < n; o += r->desc_blocks) {
			pt->ul[pt->nul].lba = pt->lba + o;
			pt->ul[pt->nul].num = (uint32_t)min_u64(r->desc_blocks,
								n - o);
			pt->nul++;
		}
	}
	return true;
}

/* The part's command is over with err (0 = success).  On success a ranged
 * request hands the part its next range. */
static void part_done(struct isc_part *pt, int err)
{
	struct isc_req *r = pt->req;

	if (pt->state == PT_READY)
		r->ip->nready--;
	if (err && !r->result)
		r->result = err;
	if (!r->result && part_fill(r, pt)) {
		pt->state = PT_IDLE;   /* part_ready() counts it busy again */
		r->nbusy--;
		part_ready(pt, 0);
		return;
	}
	if (pt->state != PT_IDLE)
		r->nbusy--;
	pt->state = PT_IDLE;
}

/* The command was lost with the connection. */
static void part_cancelled(struct isc_part *pt)
{
	if (req_idempotent(pt->req))
		part_ready(pt, 0);
	else
		part_done(pt, -MP_E_TRANSPORT);
}

/* Complete r if no part is busy any more.  r may be freed. */
static void req_check(struct isc_req *r)
{
	struct isc_path *ip = r->ip;
	struct mp_io *io = r->io;
	int result = r->result;

	if (r->nbusy)
		return;
	if (!result) {
		if (io->op == MP_OP_READ || io->op == MP_OP_WRITE)
			result = (int)io->length;
		else if (io->op == MP_OP_CAW && r->stage == 1)
			result = -MP_E_MISCOMPARE; /* iov[0] holds the disk */
	}
	if (r->prev)
		r->prev->next = r->next;
	else
		ip->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	free(r);
	mp_path_done(ip->p, io, result);
}

int isc_req_start(struct isc_path *ip, struct mp_io *io)
{
	const struct isc_limits *lim = &ip->lim;
	uint32_t bs = lim->block;
	uint64_t nblocks = io->length / bs, per = 1, ncmds = 1;
	size_t niov = 0, ndesc = 0, sz;
	uint32_t desc_blocks = 0;
	unsigned nslots;
	struct isc_req *r;
	char *tail;

	switch (io->op) {
	case MP_OP_READ:
	case MP_OP_WRITE:
		per = MAX_CMD_BYTES / bs;
		if (lim->max_xfer_blocks && lim->max_xfer_blocks < per)
			per = lim->max_xfer_blocks;
		niov = (size_t)io->iovcnt;
		break;
	case MP_OP_CAW:
		/* NUMBER OF LOGICAL BLOCKS is one byte */
		if (io->iovcnt != 2 || nblocks == 0 || nblocks > 255)
			return -EINVAL;
		niov = 2;
		break;
	case MP_OP_DISCARD:
		if (lim->lbpu) {
			/* MAXIMUM UNMAP LBA COUNT bounds a command, hence
			 * also a descriptor; 0 and ~0 mean no limit. */
			uint64_t cmd = lim->max_unmap && lim->max_unmap != UINT32_MAX ?
				       lim->max_unmap : UINT64_MAX;
			uint32_t nd = lim->max_unmap_desc &&
				      lim->max_unmap_desc < UNMAP_DESC_MAX ?
				      lim->max_unmap_desc : UNMAP_DESC_MAX;

			desc_blocks = (uint32_t)min_u64(cmd, UINT32_MAX);
			per = min_u64(cmd, (uint64_t)desc_blocks * nd);
			ndesc = (size_t)((min_u64(per, nblocks) + desc_blocks - 1) /
					 desc_blocks);
		} else if (lim->lbpws) {
			per = lim->max_ws && lim->max_ws < UINT32_MAX ?
			      lim->max_ws : WS_DEFAULT_BLOCKS;
		} else {
			return -EOPNOTSUPP;
		}
		break;
	default:
		break;
	}
	if (io->op == MP_OP_READ || io->op == MP_OP_WRITE ||
	    io->op == MP_OP_DISCARD) {
		if (nblocks == 0)
			return -EINVAL;   /* no part would ever complete it */
		ncmds = (nblocks + per - 1) / per;
	}
	nslots = (unsigned)min_u64(ncmds, REQ_SLOTS);

	sz = sizeof(*r) + nslots * (sizeof(struct isc_part) +
				    niov * sizeof(struct scsi_iovec) +
				    ndesc * sizeof(struct unmap_list));
	r = calloc(1, sz);
	if (!r)
		return -ENOMEM;
	r->ip = ip;
	r->io = io;
	r->deadline = mp_now_ns() + ip->timeout_ns;
	r->nslots = nslots;
	r->per = per;
	r->desc_blocks = desc_blocks;
	r->next_lba = io->offset / bs;
	r->end_lba = r->next_lba;
	tail = (char *)&r->parts[nslots];
	for (unsigned i = 0; i < nslots; i++) {
		struct isc_part *pt = &r->parts[i];

		pt->req = r;
		pt->iov = (struct scsi_iovec *)tail;
		tail += niov * sizeof(struct scsi_iovec);
		pt->ul = (struct unmap_list *)tail;
		tail += ndesc * sizeof(struct unmap_list);
	}
	if (io->op == MP_OP_READ || io->op == MP_OP_WRITE ||
	    io->op == MP_OP_DISCARD) {
		r->end_lba += nblocks;
		for (unsigned i = 0; i < nslots; i++) {
			part_fill(r, &r->parts[i]);
			part_ready(&r->parts[i], 0);
		}
	} else {
		struct isc_part *pt = &r->parts[0];

		pt->lba = io->offset / bs;
		pt->nblocks = (uint32_t)nblocks;
		if (io->op == MP_OP_CAW) {
			for (int i = 0; i < 2; i++) {
				pt->iov[i].iov_base = io->iov[i].iov_base;
				pt->iov[i].iov_len = io->length;
			}
			pt->niov = 2;
		}
		part_ready(pt, 0);
	}
	r->next = ip->reqs;
	if (ip->reqs)
		ip->reqs->prev = r;
	ip->reqs = r;
	return 0;
}

/* ---- commands ----------------------------------------------------------------- */

static int pr_in_parse(struct mp_pr *pr, struct scsi_task *task)
{
	if (pr->action == MP_PR_READ_KEYS) {
		struct scsi_persistent_reserve_in_read_keys *rk =
			scsi_datain_unmarshall(task);

		if (!rk)
			return -EIO;
		pr->generation = rk->prgeneration;
		pr->nkeys = 0;
		for (int i = 0; i < rk->num_keys && i < MP_PR_MAX_KEYS; i++)
			pr->keys[pr->nkeys++] = rk->keys[i];
	} else {
		struct scsi_persistent_reserve_in_read_reservation *rr =
			scsi_datain_unmarshall(task);

		if (!rr)
			return -EIO;
		pr->generation = rr->prgeneration;
		pr->reserved = rr->reserved;
		pr->holder_key = rr->reserved ? rr->reservation_key : 0;
		pr->holder_type = rr->reserved ? (enum mp_pr_type)rr->pr_type : 0;
	}
	return 0;
}

static void isc_task_cb(struct iscsi_context *ctx, int status, void *data,
			void *priv)
{
	struct isc_part *pt = priv;
	struct isc_req *r = pt->req;
	struct scsi_task *task = pt->task;
	int res;

	if (r->ip->issuing == pt) {
		/* Called from inside the *_task() call that is sending pt
		 * (libiscsi does that when it cannot queue the data-out);
		 * issue_part() sorts it out when that call returns. */
		r->ip->issue_failed = true;
		return;
	}
	pt->task = NULL;
	if (status == SCSI_STATUS_CANCELLED || status == SCSI_STATUS_ERROR) {
		/* We never cancel tasks ourselves: the connection is gone, or
		 * about to be torn down after a protocol error. */
		r->ip->lost = true;
		part_cancelled(pt);
		goto free_task;
	}
	if (task && isc_task_retryable(task) && pt->tries < PART_RETRIES) {
		/* UNIT ATTENTION (the command was not executed) goes again at
		 * once; NOT READY / ABORTED COMMAND after a pause. */
		uint64_t delay = task->sense.key == SCSI_SENSE_UNIT_ATTENTION ?
				 0 : RETRY_DELAY_NS * (pt->tries + 1);

		if (mp_now_ns() + delay < r->deadline) {
			pt->tries++;
			part_ready(pt, delay);
			goto free_task;
		}
	}
	res = isc_task_result(status, task);
	if (res == 0 && task && task->xfer_dir == SCSI_XFER_READ &&
	    (r->io->op == MP_OP_READ || r->io->op == MP_OP_CAW) &&
	    task->residual_status == SCSI_RESIDUAL_UNDERFLOW && task->residual)
		res = -EIO;   /* short read: the caller would get stale bytes */
	if (r->io->op == MP_OP_CAW && r->stage == 0 &&
	    res == -MP_E_MISCOMPARE) {
		/* Fetch what the disk holds into iov[0], then report. */
		r->stage = 1;
		pt->tries = 0;
		part_ready(pt, 0);
		goto free_task;
	}
	if (r->io->op == MP_OP_PR_IN && res == 0)
		res = pr_in_parse(r->io->arg, task);
	part_done(pt, res);
free_task:
	if (task)
		scsi_free_scsi_task(task);
	req_check(r);
}

static struct scsi_task *issue_caw(struct isc_path *ip, struct isc_part *pt)
{
	uint32_t bytes = pt->nblocks * ip->lim.block;
	struct scsi_task *t = isc_caw_task(pt->lba, pt->nblocks, 2 * bytes);

	if (!t)
		return NULL;
	scsi_task_set_iov_out(t, pt->iov, 2);
	if (iscsi_scsi_command_async(ip->ctx, ip->conf.lun, t, isc_task_cb,
				     NULL, pt)) {
		scsi_free_scsi_task(t);
		return NULL;
	}
	return t;
}

static struct scsi_task *issue_pr(struct isc_path *ip, struct isc_part *pt,
				  struct mp_pr *pr, bool out)
{
	struct scsi_persistent_reserve_out_basic b = {
		.reservation_key = pr->key,
		.service_action_reservation_key = pr->sa_key,
	};

	if (!out)
		return iscsi_persistent_reserve_in_task(
			ip->ctx, ip->conf.lun,
			pr->action == MP_PR_READ_KEYS ?
				SCSI_PERSISTENT_RESERVE_READ_KEYS :
				SCSI_PERSISTENT_RESERVE_READ_RESERVATION,
			PR_IN_LEN, isc_task_cb, pt);
	/* The parameter list is marshalled into the task: b may go. */
	return iscsi_persistent_reserve_out_task(ip->ctx, ip->conf.lun,
						 (int)pr->action,
						 SCSI_PERSISTENT_RESERVE_SCOPE_LU,
						 (int)pr->type, &b, isc_task_cb, pt);
}

static int pr_check(const struct mp_io *io)
{
	const struct mp_pr *pr = io->arg;

	if (!pr)
		return -EINVAL;
	if (io->op == MP_OP_PR_IN)
		return pr->action == MP_PR_READ_KEYS ||
		       pr->action == MP_PR_READ_RESERVATION ? 0 : -EINVAL;
	return pr->action >= MP_PR_REGISTER &&
	       pr->action <= MP_PR_REGISTER_IGNORE ? 0 : -EINVAL;
}

/* Send pt's command on the current connection (state ISC_UP). */
static void issue_part(struct isc_path *ip, struct isc_part *pt)
{
	struct isc_req *r = pt->req;
	struct mp_io *io = r->io;
	struct iscsi_context *ctx = ip->ctx;
	int lun = ip->conf.lun, bs = (int)ip->lim.block;
	uint32_t bytes = pt->nblocks * ip->lim.block;
	struct scsi_task *t = NULL;

	if (r->result) {
		part_done(pt, 0);   /* the request has failed already */
		return;
	}
	ip->issuing = pt;
	ip->issue_failed = false;
	switch (io->op) {
	case MP_OP_READ:
		t = iscsi_read16_iov_task(ctx, lun, pt->lba, bytes, bs, 0, 0, 0,
					  0, 0, isc_task_cb, pt, pt->iov,
					  pt->niov);
		break;
	case MP_OP_WRITE:
		t = iscsi_write16_iov_task(ctx, lun, pt->lba, NULL, bytes, bs, 0,
					   0, !!(io->flags & MP_IO_FUA), 0, 0,
					   isc_task_cb, pt, pt->iov, pt->niov);
		break;
	case MP_OP_FLUSH:
		/* LBA 0, 0 blocks: the whole medium. */
		t = iscsi_synchronizecache16_task(ctx, lun, 0, 0, 0, 0,
						  isc_task_cb, pt);
		break;
	case MP_OP_DISCARD:
		if (ip->lim.lbpu)
			t = iscsi_unmap_task(ctx, lun, 0, 0, pt->ul, pt->nul,
					     isc_task_cb, pt);
		else
			t = iscsi_writesame16_task(ctx, lun, pt->lba, ip->zero,
						   ip->lim.block, pt->nblocks,
						   0, 1, 0, 0, isc_task_cb, pt);
		break;
	case MP_OP_CAW:
		if (r->stage == 0)
			t = issue_caw(ip, pt);
		else
			t = iscsi_read16_iov_task(ctx, lun, pt->lba, bytes, bs,
						  0, 0, 0, 0, 0, isc_task_cb, pt,
						  pt->iov, 1);
		break;
	case MP_OP_RESERVE:
		t = iscsi_reserve6_task(ctx, lun, isc_task_cb, pt);
		break;
	case MP_OP_RELEASE:
		t = iscsi_release6_task(ctx, lun, isc_task_cb, pt);
		break;
	case MP_OP_PR_OUT:
	case MP_OP_PR_IN: {
		int err = pr_check(io);

		if (err) {
			ip->issuing = NULL;
			part_done(pt, err);
			return;
		}
		t = issue_pr(ip, pt, io->arg, io->op == MP_OP_PR_OUT);
		break;
	}
	case MP_OP_TUR:
		t = iscsi_testunitready_task(ctx, lun, isc_task_cb, pt);
		break;
	default:
		ip->issuing = NULL;
		part_done(pt, -EINVAL);
		return;
	}
	ip->issuing = NULL;
	if (t && ip->issue_failed) {
		/* libiscsi already dropped its PDU: the task is ours. */
		scsi_free_scsi_task(t);
		t = NULL;
	}
	if (!t) {
		/* Never sent, so safe to keep ready whatever the op.  A context
		 * that refuses commands is not logged in: start over. */
		mp_log("%s: cannot queue a command: %s", ip->conf.url,
		       iscsi_get_error(ctx));
		ip->lost = true;
		return;
	}
	pt->task = t;
	pt->state = PT_INFLIGHT;
	ip->nready--;
}

/* ---- for the reactor ---------------------------------------------------------- */

void isc_walk_ready(struct isc_path *ip, uint64_t now)
{
	bool up = ip->state == ISC_UP;
	/* A path of a multipath device is dead as soon as it is down: the
	 * device fails over rather than wait for this path's reconnect. */
	bool dead = !up && (ip->conf.failfast ||
			    now - ip->down_since >= ip->timeout_ns);
	struct isc_req *r, *next;

	for (r = ip->reqs; r && ip->nready; r = next) {
		next = r->next;
		for (unsigned i = 0; i < r->nslots && !ip->lost; i++) {
			struct isc_part *pt = &r->parts[i];

			if (pt->state != PT_READY)
				continue;
			if (mp_path_fenced(ip->p, r->io))
				/* held across a reconnect or for a retry
				 * while the handle was fenced: other hosts
				 * may own the blocks by the time it would go */
				part_done(pt, -MP_E_FENCED);
			else if (up && pt->not_before <= now)
				issue_part(ip, pt);
			else if (!up && (dead || now >= r->deadline))
				part_done(pt, -MP_E_TRANSPORT);
		}
		req_check(r);
		if (ip->lost)
			break;
	}
}

void isc_reqs_disowned(struct isc_path *ip)
{
	struct isc_req *r, *next;

	/* Some libiscsi versions call the callbacks of what is left with
	 * SCSI_STATUS_CANCELLED when the context is destroyed, others
	 * (disconnect first, then cancel while "not logged in") drop them
	 * silently: the tasks still set here are ours to free. */
	for (r = ip->reqs; r; r = next) {
		next = r->next;
		for (unsigned i = 0; i < r->nslots; i++) {
			struct isc_part *pt = &r->parts[i];

			if (pt->state != PT_INFLIGHT || !pt->task)
				continue;
			scsi_free_scsi_task(pt->task);
			pt->task = NULL;
			part_cancelled(pt);
		}
		req_check(r);
	}
}

uint64_t isc_next_retry_ns(struct isc_path *ip, uint64_t now, uint64_t limit)
{
	uint64_t t = limit;

	for (struct isc_req *r = ip->reqs; r && ip->nready; r = r->next) {
		for (unsigned i = 0; i < r->nslots; i++) {
			const struct isc_part *pt = &r->parts[i];

			if (pt->state == PT_READY)
				t = min_u64(t, pt->not_before > now ?
					    pt->not_before - now : 0);
		}
	}
	return t;
}
