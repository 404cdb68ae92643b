/*
 * lunq.c - the device queue of an mp_lun: who goes next when a queue slot
 * frees, how deep the queue may be, and disk shares.
 *
 * Queue: I/O waits here only while every slot (lun->qdepth) is taken.
 * Until an opener creates a share handle it is a plain FIFO.  From then on
 * (lun->sfq, never undone) it is start-time fair queuing (Goyal et al.):
 * each share keeps its own FIFO; an I/O arriving for share s gets the start
 * tag S = max(vtime, s->finish) and moves s->finish to S + cost / shares;
 * the I/O with the smallest start tag goes next and vtime becomes its tag.
 * Over any saturated interval each busy share then gets device time in
 * proportion to its shares; a share that was idle cannot save up credit
 * (its tags restart at vtime), and since nothing is queued while a slot is
 * free, an unsaturated device holds nobody back.
 *
 * Adaptive queue depth (VMware's algorithm; on unless MP_OPEN_FIXED_QD): after
 * qfull_sample QUEUE FULL / BUSY completions the depth halves (at least 1);
 * after qfull_threshold good completions in a row it grows by one, up to the
 * configured depth.  Two refinements keep it from overshooting when
 * completions are fast: QUEUE FULL of I/O issued before the last decrease
 * does not count again, and after a change the depth moves up again only
 * after a round of completions (as many as the depth).  lun.c requeues the
 * QUEUE FULL I/O at the head of the queue.  The depth is per device, as the
 * target's queue is.
 *
 * Every function here runs with lun->lock held.
 */
#include <errno.h>
#include <stdlib.h>

#include "lun_int.h"

/* Cost of an I/O in SFQ tag units: its bytes plus a fixed per-command part
 * (a 4 KiB-equivalent), so small-I/O openers are not free. */
static uint64_t io_cost(const struct mp_io *io)
{
	uint64_t bytes = io->op == MP_OP_READ || io->op == MP_OP_WRITE ||
			 io->op == MP_OP_CAW ? io->length : 0;

	return bytes + 4096;
}

static struct mp_share *share_of(struct mp_lun *lun, const struct mp_io *io)
{
	return io->share_ ? io->share_ : &lun->dflt;
}

static void fifo_push(struct mp_io **head, struct mp_io **tail,
		      struct mp_io *io)
{
	io->next_ = NULL;
	if (*tail)
		(*tail)->next_ = io;
	else
		*head = io;
	*tail = io;
}

void lunq_push(struct mp_lun *lun, struct mp_io *io)
{
	struct mp_share *s;
	uint64_t start;

	if (!lun->sfq) {
		fifo_push(&lun->qhead, &lun->qtail, io);
		return;
	}
	s = share_of(lun, io);
	start = s->finish > lun->vtime ? s->finish : lun->vtime;
	io->tag_ = start;
	s->finish = start + io_cost(io) * 4096 / s->shares;
	fifo_push(&s->head, &s->tail, io);
}

void lunq_push_front(struct mp_lun *lun, struct mp_io *io)
{
	struct mp_share *s;

	if (!lun->sfq) {
		io->next_ = lun->qhead;
		lun->qhead = io;
		if (!lun->qtail)
			lun->qtail = io;
		return;
	}
	/* It keeps its start tag: it was dispatched once already. */
	s = share_of(lun, io);
	io->next_ = s->head;
	s->head = io;
	if (!s->tail)
		s->tail = io;
}

struct mp_io *lunq_pop(struct mp_lun *lun)
{
	struct mp_share *best = NULL;
	struct mp_io *io;

	if (!lun->sfq) {
		io = lun->qhead;
		if (io) {
			lun->qhead = io->next_;
			if (!lun->qhead)
				lun->qtail = NULL;
		}
		return io;
	}
	if (lun->dflt.head)
		best = &lun->dflt;
	for (struct mp_share *s = lun->shares; s; s = s->next)
		if (s->head && (!best || s->head->tag_ < best->head->tag_))
			best = s;
	if (!best)
		return NULL;
	io = best->head;
	best->head = io->next_;
	if (!best->head)
		best->tail = NULL;
	if (io->tag_ > lun->vtime)
		lun->vtime = io->tag_;
	return io;
}

struct mp_io *lunq_take_ready(struct mp_lun *lun)
{
	struct mp_io *head = NULL, *tail = NULL, *io;

	while (lun->queued && lun->inflight < lun->qdepth) {
		io = lunq_pop(lun);
		if (!io)
			break;
		lun->queued--;
		lun->inflight++;
		io->epoch_ = lun->epoch;
		fifo_push(&head, &tail, io);
	}
	return head;
}

void lunq_adapt(struct mp_lun *lun, const struct mp_io *io, bool qfull)
{
	if (qfull) {
		lun->qfull_total++;
		lun->good_count = 0;
		/* Only I/O issued at the current depth says the current depth
		 * is too deep: the stragglers of a deeper epoch that come back
		 * QUEUE FULL after a decrease must not halve it again. */
		if (io->epoch_ != lun->epoch)
			return;
		if (++lun->qfull_count >= lun->qfull_sample) {
			lun->qfull_count = 0;
			lun->qdepth = lun->qdepth > 1 ? lun->qdepth / 2 : 1;
			lun->epoch++;
			lun->round_left = lun->qdepth;
		}
		return;
	}
	if (lun->round_left)
		lun->round_left--;
	/* One step per round of completions at the new depth (additive
	 * increase), so the depth probes upward about as fast as QUEUE FULL
	 * can come back and tell it to stop. */
	if (lun->qdepth < lun->max_qdepth && !lun->round_left &&
	    ++lun->good_count >= lun->qfull_threshold) {
		lun->good_count = 0;
		lun->qdepth++;
		lun->round_left = lun->qdepth;
	}
}

void lunq_share_done(struct mp_lun *lun, struct mp_io *io)
{
	share_of(lun, io)->pending--;
}

/* ---- share handles --------------------------------------------------------- */

/* Switch the queue to SFQ: what waits in the FIFO moves to the default
 * share, in order, with tags from now on. */
static void sfq_start(struct mp_lun *lun)
{
	struct mp_io *io = lun->qhead;

	lun->sfq = true;
	lun->qhead = lun->qtail = NULL;
	lun->dflt.pending = lun->inflight + lun->queued;
	while (io) {
		struct mp_io *n = io->next_;

		lunq_push(lun, io);
		io = n;
	}
}

int mp_share_create(mp_lun *lun, unsigned shares, mp_share **out)
{
	struct mp_share *s;

	if (shares < MP_SHARES_MIN || shares > MP_SHARES_MAX)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->lun = lun;
	s->shares = shares;
	pthread_mutex_lock(&lun->lock);
	if (!lun->sfq)
		sfq_start(lun);
	s->finish = lun->vtime;
	s->next = lun->shares;
	lun->shares = s;
	pthread_mutex_unlock(&lun->lock);
	*out = s;
	return 0;
}

int mp_share_set(mp_share *s, unsigned shares)
{
	if (shares < MP_SHARES_MIN || shares > MP_SHARES_MAX)
		return -EINVAL;
	pthread_mutex_lock(&s->lun->lock);
	s->shares = shares;   /* applies to I/O queued from now on */
	pthread_mutex_unlock(&s->lun->lock);
	return 0;
}

int mp_share_destroy(mp_share *s)
{
	struct mp_lun *lun;
	int ret = 0;

	if (!s)
		return 0;
	lun = s->lun;
	pthread_mutex_lock(&lun->lock);
	if (s->pending) {
		ret = -EBUSY;
	} else {
		struct mp_share **pp = &lun->shares;

		while (*pp != s)
			pp = &(*pp)->next;
		*pp = s->next;
	}
	pthread_mutex_unlock(&lun->lock);
	if (!ret)
		free(s);
	return ret;
}
