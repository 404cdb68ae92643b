/*
 * journal.c - per-host metadata redo journal and transactions (write-back).
 *
 * A transaction gathers the new images of the 4 KiB metadata blocks an
 * operation changes and the locks it holds while changing them.  Commit
 * (docs/FORMAT.md "Journal"):
 *
 *   1. the transaction joins the queue in memory, its images become what
 *      this host reads for those blocks (the overlay, fs_read), its locks
 *      are noted as pending, the blocks it freed quarantined; acknowledged;
 *   2. the committer thread writes the queued transactions (a batch) to the
 *      log in one write and flushes: durable (fs_journal_wait);
 *   3. it writes the newest image of each block in place, flushes, discards
 *      the file blocks the batch freed, and moves the header's tail past
 *      the batch (the checkpoint, FUA); the batch leaves the overlay, the
 *      pending locks and the quarantine;
 *   4. a lock a pending transaction lists changes hands (release, downgrade)
 *      only after 3: the lock manager asks first (lk_set_handover).
 *
 * A write that fails in 2 or 3 gives the volume up with every lock kept
 * (fs_vol_abandon): another host replays the log.  Every transaction after
 * the checkpoint still has all its locks at the version it was made under
 * (4), so replay applies each that shows them, in order.  A block freed by
 * a transaction after the checkpoint is not allocated again by this host
 * (the quarantine), so no replayed image lands on file data.
 *
 * Locks: j->lock (queue, sequence numbers, durable / checkpoint marks,
 * error) before j->ov_lock (overlay, pending locks, quarantine); neither is
 * held across I/O or while calling out of this file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "fs/fs_int.h"
#include "lockmgr/ondisk.h"

#define J_BUCKETS 1024u
/* A batch is written once no transaction has joined it for J_IDLE_US, or
 * J_DELAY_MS after its first one (a stream of operations shares one log
 * write and flush), and at once when something waits for it (fsync, a
 * lock's hand-over, a full queue, unmount). */
#define J_DELAY_MS 100
#define J_IDLE_US 2000
#define J_RETRY_MS 1000

/* The newest committed image of a block that is not in place yet. */
struct ov {
	struct ov *next;
	unsigned ext;
	uint64_t off;
	uint64_t seq;                /* the transaction it is from */
	const unsigned char *img;    /* that transaction's */
};

/* A lock a transaction not yet in place lists. */
struct pl {
	struct pl *next;
	const mp_lun *lun;
	uint64_t off;
	uint64_t seq;                /* the newest such transaction */
};

/* A file block or sub-block freed by a transaction not yet checkpointed. */
struct qa {
	struct qa *next;
	uint64_t addr;
	uint64_t seq;
};

/* A group being built: the blocks and locks of its record so far. */
struct jgrp {
	unsigned nt, nl;
	struct fs_jtarget t[FS_JD_MAX_BLOCKS];
	struct gl {
		unsigned ext;
		uint64_t off, version;
		bool w;              /* the record's images include its block */
	} l[FS_JD_MAX_LOCKS];
};

struct fs_journal {
	uint32_t slot, nblocks;
	uint64_t base;               /* byte offset of block 0 on extent 0 */
	uint64_t jid;                /* this incarnation's journal id */
	uint32_t head;               /* next free block (committer only) */

	pthread_mutex_t lock;
	pthread_cond_t work;         /* queue not empty, or stop */
	pthread_cond_t done;         /* durable / ckpt moved, queue taken, err */
	uint64_t seq;                /* next transaction's sequence */
	struct fs_tx *q_head, *q_tail;   /* committed, not taken yet */
	unsigned q_blocks;           /* their log blocks */
	unsigned q_max;              /* back-pressure above this */
	uint64_t durable;            /* every seq below is in the log, flushed */
	uint64_t ckpt;               /* every seq below is in place */
	int err;                     /* the committer failed: volume given up */
	/* A batch whose log write failed (nothing of it on disk) stays queued
	 * and is tried again when someone waits, or after J_RETRY_MS; every
	 * waiter of the failed attempt gets its error. */
	unsigned fails;              /* attempts failed so far */
	int fail_err;                /* the last one's error */
	bool stop;
	unsigned urgent;             /* threads waiting for the committer */
	bool busy;                   /* the committer is writing a batch */
	bool paused;                 /* fs_tx_commit_sync at work: no commits */
	uint64_t q_since;            /* monotonic ns the queue became non-empty */
	uint64_t q_last;             /* ... and of the last transaction queued */
	uint64_t delay_ns, idle_ns;  /* J_DELAY_MS, J_IDLE_US (fs_journal_gather) */
	/* The queue's last group (FS_INCOMPAT_JGROUPS): the record the
	 * transactions from its first on will be written as, while g_open
	 * (and every record stands for one transaction without groups). */
	bool groups;
	bool g_open;
	struct jgrp g;
	pthread_t thr;
	bool thr_on;
	uint64_t commits, batches;

	pthread_mutex_t ov_lock;
	struct ov *ov[J_BUCKETS];
	struct pl *pl[J_BUCKETS];
	struct qa *qa[J_BUCKETS];
	size_t nov, nqa;             /* read unlocked as a hint */
};

struct txblk {
	unsigned ext;
	uint64_t off;
	unsigned char *img;
	unsigned gi;              /* its index in the log record (g_add) */
};

struct fs_tx {
	struct fs_vol *v;
	unsigned n;
	struct txblk b[FS_JD_MAX_BLOCKS];
	unsigned nl;
	struct fs_jlock l[FS_JD_MAX_LOCKS];
	unsigned nrel;
	lk_lock *rel[FS_JD_MAX_LOCKS];
	bool rel_close[FS_JD_MAX_LOCKS];  /* the handle is ours to close */
	bool rel_clus[FS_JD_MAX_LOCKS];   /* fs_tx_defer_cluster */
	unsigned rel_ext[FS_JD_MAX_LOCKS];
	bool data;                /* maps file data written before it */
	unsigned ndisc;           /* file blocks it frees (fs_tx_discard) */
	uint64_t disc[FS_TX_DISCARDS];
	unsigned ndfree;          /* fs_tx_defer_free */
	uint64_t dfree[FS_TX_DISCARDS];
	uint64_t *freed;          /* file and sub-blocks it frees (quarantine) */
	unsigned nfreed, capfreed;
	/* committed: */
	uint64_t seq;
	bool gstart;              /* its log record starts with it */
	unsigned glog;            /* log blocks it adds to its record */
	uint8_t gl[FS_JD_MAX_LOCKS];  /* its locks' indices in the record */
	struct fs_tx *next;       /* in the queue, then in its batch */
	unsigned refs;            /* the committing thread and the committer */
};

bool fs_tx_holds_clusters(const struct fs_tx *tx)
{
	for (unsigned i = 0; i < tx->nrel; i++)
		if (tx->rel_clus[i])
			return true;
	return false;
}

int fs_tx_defer_free(struct fs_tx *tx, uint64_t a)
{
	if (tx->ndfree == FS_TX_DISCARDS)
		return -ENOSPC;
	tx->dfree[tx->ndfree++] = a;
	return 0;
}

void fs_tx_mark_data(struct fs_tx *tx)
{
	tx->data = true;
}

void fs_tx_discard(struct fs_tx *tx, uint64_t a)
{
	/* beyond the list the blocks are freed all the same, only not
	 * handed back to the LUN now (the space is not lost to the volume) */
	if (tx->ndisc < FS_TX_DISCARDS)
		tx->disc[tx->ndisc++] = a;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Give the file blocks the transaction freed back to their LUNs, runs of
 * adjacent blocks in one discard.  Called by the committer once the
 * transaction is in place, before its cluster locks can be handed over and
 * before the checkpoint lifts the blocks' quarantine: nobody can have
 * allocated and written them yet.  Advisory: failures are logged once.
 */
static void discard_freed(struct fs_tx *tx)
{
	struct fs_vol *v = tx->v;
	uint64_t bs = v->sb.block_size;

	if (v->no_discard) {
		tx->ndisc = 0;
		return;
	}
	qsort(tx->disc, tx->ndisc, sizeof(tx->disc[0]), cmp_u64);
	for (unsigned i = 0; i < tx->ndisc;) {
		unsigned e = fs_addr_ext(tx->disc[i]), k = i + 1;
		uint64_t off = fs_res_off(v, tx->disc[i]), len = bs;
		int r;

		while (k < tx->ndisc && fs_addr_ext(tx->disc[k]) == e &&
		       fs_res_off(v, tx->disc[k]) == off + len) {
			len += bs;
			k++;
		}
		r = mp_lun_discard(v->ext[e].lun, off, len);
		if (r && r != -EOPNOTSUPP && !v->discard_warned) {
			v->discard_warned = true;
			fs_log(v, "discarding freed blocks on extent %u: %s", e,
			       fs_strerror(r));
		}
		i = k;
	}
	tx->ndisc = 0;
}

/* Whether (ext, off) is the header block of a file block cluster. */
static bool fb_cluster_header(const struct fs_vol *v, unsigned ext, uint64_t off)
{
	const struct fs_area *ar;

	if (ext >= __atomic_load_n(&v->next, __ATOMIC_ACQUIRE))
		return false;
	ar = &v->sb.ext[ext].area[FS_A_FB];
	return off >= ar->meta_off &&
	       off < ar->meta_off + (uint64_t)ar->clusters * FS_SLOT &&
	       (off - ar->meta_off) % FS_SLOT == FS_BLOCK;
}

/*
 * Give every free file block of the cluster whose header is at (ext,
 * off) back to the LUN, runs of free blocks in one discard: a replay does
 * not know which of them the replayed transactions freed (nor whether
 * their host discarded them before it died), and a free block holds
 * nothing anyone may read.  Called once the replayed header is durable,
 * while the dead host still holds the cluster's lock (its recovery is not
 * over): nobody can have allocated and written any of them.  Advisory, as
 * discard_freed.
 */
static void discard_cluster_free(struct fs_vol *v, unsigned ext, uint64_t off)
{
	unsigned char *b;
	uint64_t bs = v->sb.block_size;
	uint32_t pc = v->sb.ext[ext].area[FS_A_FB].per_cluster;
	struct fs_rc rc;
	int r;

	if (v->no_discard)
		return;
	b = fs_balloc(FS_BLOCK);
	r = b ? fs_read(v, ext, off, b, FS_BLOCK) : -ENOMEM;

	if (!r)
		r = fs_rc_in(b, &rc);
	if (!r && (rc.type != FS_R_FB || rc.extent != ext || rc.nres > pc))
		r = -FS_E_CORRUPT;
	for (unsigned i = 0; !r && i < rc.nres;) {
		unsigned k = i;

		while (k < rc.nres && !(rc.bitmap[k / 8] & (1u << (k % 8))))
			k++;
		if (k > i) {
			uint64_t a = fs_addr(FS_R_FB, ext,
					     (uint64_t)rc.cluster * pc + i);

			r = mp_lun_discard(v->ext[ext].lun, fs_res_off(v, a),
					   (k - i) * bs);
			if (r == -EOPNOTSUPP) {
				r = 0;
				break;
			}
		}
		i = k + 1;
	}
	if (r && !v->discard_warned) {
		v->discard_warned = true;
		fs_log(v, "discarding the free blocks of a replayed cluster on "
		       "extent %u: %s", ext, fs_strerror(r));
	}
	free(b);
}

static uint64_t jbase(struct fs_vol *v, uint32_t slot)
{
	return v->sb.journal_off + (uint64_t)slot * v->sb.journal_blocks * FS_BLOCK;
}

static unsigned hash2(uintptr_t a, uint64_t b)
{
	uint64_t h = ((uint64_t)a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;

	return (unsigned)(h >> 40) % J_BUCKETS;
}

static void *committer(void *arg);
static int handover(void *arg, mp_lun *lun, uint64_t off);

/* The header: tail at (seq, block), checkpointed; written with FUA. */
static int write_header(struct fs_vol *v, struct fs_journal *j, uint64_t seq,
			uint32_t block, unsigned char *b)
{
	struct fs_jh h = { .slot = j->slot, .nblocks = j->nblocks,
			   .tail_seq = seq, .tail_block = block, .jid = j->jid,
			   .flags = FS_JH_CKPT };
	ssize_t n;

	fs_jh_out(&h, b);
	n = mp_lun_pwrite(v->ext[0].lun, b, FS_BLOCK, j->base, MP_IO_FUA);
	return n < 0 ? (int)n : 0;
}

int fs_journal_open(struct fs_vol *v)
{
	struct fs_journal *j = calloc(1, sizeof(*j));
	struct lk_vol_info li;
	unsigned char *b = fs_balloc(FS_BLOCK);
	bool mutexes = false;
	int ret = 0;

	if (!j || !b) {
		ret = -ENOMEM;
		goto out;
	}
	lk_get_info(v->lk, &li);
	j->slot = li.slot;
	j->nblocks = v->sb.journal_blocks;
	j->base = jbase(v, j->slot);
	j->seq = (li.gen << 32) | 1;
	j->durable = j->ckpt = j->seq;
	j->head = 1;
	j->delay_ns = J_DELAY_MS * 1000000ull;
	j->idle_ns = J_IDLE_US * 1000ull;
	/* room for the queue to fill while a batch of the same size is
	 * written: a batch takes at most the log less its header */
	j->q_max = (j->nblocks - 1) / 2;
	j->groups = v->sb.incompat & FS_INCOMPAT_JGROUPS;
	/* A new id at every open: blocks left by an earlier owner of the
	 * slot, or by a volume this LUN held before mkfs -f, never pass for
	 * ours, whatever their sequence numbers. */
	if (getrandom(&j->jid, sizeof(j->jid), 0) != sizeof(j->jid)) {
		ret = -errno;
		goto out;
	}
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->ov_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&j->work, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_cond_init(&j->done, NULL);
	mutexes = true;
	/* Safe to overwrite: a slot is free only after its previous owner
	 * left cleanly or was recovered (its journal replayed). */
	ret = write_header(v, j, j->seq, 1, b);
	if (ret)
		goto out;
	v->j = j;
	ret = -pthread_create(&j->thr, NULL, committer, v);
	if (ret) {
		v->j = NULL;
		goto out;
	}
	j->thr_on = true;
	/* before the first lock is taken (the caller has joined only) */
	lk_set_handover(v->lk, handover, v);
	j = NULL;
out:
	if (j && mutexes) {
		pthread_mutex_destroy(&j->lock);
		pthread_mutex_destroy(&j->ov_lock);
		pthread_cond_destroy(&j->work);
		pthread_cond_destroy(&j->done);
	}
	free(j);
	free(b);
	return ret;
}

/* Under j->lock: wake the committer now and wait for its next news. */
static void kick_wait(struct fs_journal *j)
{
	j->urgent++;
	pthread_cond_signal(&j->work);
	pthread_cond_wait(&j->done, &j->lock);
	j->urgent--;
}

/*
 * Under j->lock: wait until every transaction below target is durable (or
 * with in_place, in place and checkpointed).  0, -EIO once the volume was
 * given up, or the error of a log write that failed meanwhile (its batch
 * stays queued for another try).
 */
static int wait_for(struct fs_journal *j, uint64_t target, bool in_place)
{
	unsigned fails = j->fails;
	int ret = 0;

	while (!j->err && (in_place ? j->ckpt : j->durable) < target) {
		if (j->fails != fails) {
			ret = j->fail_err;
			break;
		}
		kick_wait(j);
	}
	return j->err ? -EIO : ret;
}

/* Every transaction committed so far durable (in_place false) or in place
 * and checkpointed. */
int fs_journal_wait(struct fs_vol *v, bool in_place)
{
	struct fs_journal *j = v->j;
	int ret;

	if (!j)
		return 0;
	pthread_mutex_lock(&j->lock);
	ret = wait_for(j, j->seq, in_place);
	pthread_mutex_unlock(&j->lock);
	return ret;
}

void fs_journal_stop(struct fs_vol *v)
{
	struct fs_journal *j = v->j;

	if (!j || !j->thr_on)
		return;
	pthread_mutex_lock(&j->lock);
	j->stop = true;
	pthread_cond_broadcast(&j->work);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->thr, NULL);
	j->thr_on = false;
}

void fs_journal_close(struct fs_vol *v)
{
	struct fs_journal *j = v->j;

	if (!j)
		return;
	fs_journal_stop(v);
	if (v->lk)
		lk_set_handover(v->lk, NULL, NULL);
	/* whatever stayed (the committer failed) */
	for (unsigned i = 0; i < J_BUCKETS; i++) {
		while (j->ov[i]) {
			struct ov *o = j->ov[i];

			j->ov[i] = o->next;
			free(o);
		}
		while (j->pl[i]) {
			struct pl *p = j->pl[i];

			j->pl[i] = p->next;
			free(p);
		}
		while (j->qa[i]) {
			struct qa *q = j->qa[i];

			j->qa[i] = q->next;
			free(q);
		}
	}
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->ov_lock);
	pthread_cond_destroy(&j->work);
	pthread_cond_destroy(&j->done);
	free(j);
	v->j = NULL;
}

void fs_journal_gather(struct fs_vol *v, unsigned delay_ms, unsigned idle_ms)
{
	struct fs_journal *j = v->j;

	pthread_mutex_lock(&j->lock);
	j->delay_ns = delay_ms * 1000000ull;
	j->idle_ns = idle_ms * 1000000ull;
	pthread_cond_broadcast(&j->work);
	pthread_mutex_unlock(&j->lock);
}

void fs_journal_stats(struct fs_vol *v, uint64_t *commits, uint64_t *batches)
{
	struct fs_journal *j = v->j;

	*commits = *batches = 0;
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	*commits = j->commits;
	*batches = j->batches;
	pthread_mutex_unlock(&j->lock);
}

/* ---- the overlay, pending locks, quarantine (under ov_lock) --------------- */

static struct ov *ov_find(struct fs_journal *j, unsigned ext, uint64_t off)
{
	for (struct ov *o = j->ov[hash2(ext, off)]; o; o = o->next)
		if (o->ext == ext && o->off == off)
			return o;
	return NULL;
}

/*
 * Copy into buf the parts of [off, off+len) on extent ext that the overlay
 * holds; mark[] (one per 4 KiB block from off rounded down) says which.
 * Returns how many blocks it found.
 */
static size_t ov_patch(struct fs_journal *j, unsigned ext, uint64_t off,
		       unsigned char *buf, size_t len, bool *mark, bool only_unmarked)
{
	uint64_t first = off - off % FS_BLOCK, end = off + len;
	size_t found = 0, k = 0;

	for (uint64_t blk = first; blk < end; blk += FS_BLOCK, k++) {
		struct ov *o;
		uint64_t a, z;

		if (only_unmarked && mark[k])
			continue;
		o = ov_find(j, ext, blk);
		if (!o)
			continue;
		a = blk > off ? blk : off;
		z = blk + FS_BLOCK < end ? blk + FS_BLOCK : end;
		memcpy(buf + (a - off), o->img + (a - blk), z - a);
		mark[k] = true;
		found++;
	}
	return found;
}

int fs_journal_read(struct fs_vol *v, unsigned ext, uint64_t off, void *buf,
		    size_t len, int (*dev)(struct fs_vol *, unsigned, uint64_t,
					   void *, size_t))
{
	struct fs_journal *j = v->j;
	uint64_t first, nblk;
	bool small[16] = { false }, *mark = small;
	unsigned char *tmp = NULL;
	size_t found;
	int ret;

	if (!j || !__atomic_load_n(&j->nov, __ATOMIC_ACQUIRE))
		return dev(v, ext, off, buf, len);
	first = off - off % FS_BLOCK;
	nblk = (off + len - first + FS_BLOCK - 1) / FS_BLOCK;
	if (nblk > 16 && !(mark = calloc(nblk, sizeof(*mark))))
		return -ENOMEM;
	/*
	 * What is pending when the read begins is the answer for those
	 * blocks (the device may still have older contents); what is pending
	 * when it ends, newer still.  A block pending at neither time was in
	 * place when the read began, or changed while it ran.
	 */
	pthread_mutex_lock(&j->ov_lock);
	found = ov_patch(j, ext, off, buf, len, mark, false);
	pthread_mutex_unlock(&j->ov_lock);
	if (!found) {
		ret = dev(v, ext, off, buf, len);
		goto out;
	}
	if (found == nblk) {
		ret = 0;
		goto out;
	}
	tmp = malloc(len);
	if (!tmp) {
		ret = -ENOMEM;
		goto out;
	}
	ret = dev(v, ext, off, tmp, len);
	if (ret)
		goto out;
	for (uint64_t k = 0; k < nblk; k++) {
		uint64_t blk = first + k * FS_BLOCK;
		uint64_t a = blk > off ? blk : off;
		uint64_t z = blk + FS_BLOCK < off + len ? blk + FS_BLOCK : off + len;

		if (!mark[k])
			memcpy((unsigned char *)buf + (a - off), tmp + (a - off),
			       z - a);
	}
	pthread_mutex_lock(&j->ov_lock);
	memset(mark, 0, nblk * sizeof(*mark));
	ov_patch(j, ext, off, buf, len, mark, false);
	pthread_mutex_unlock(&j->ov_lock);
out:
	free(tmp);
	if (mark != small)
		free(mark);
	return ret;
}

bool fs_quarantined(struct fs_vol *v, uint64_t addr)
{
	struct fs_journal *j = v->j;
	bool q = false;

	if (!j || !__atomic_load_n(&j->nqa, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&j->ov_lock);
	for (struct qa *p = j->qa[hash2(0, addr)]; p && !q; p = p->next)
		q = p->addr == addr;
	pthread_mutex_unlock(&j->ov_lock);
	return q;
}

bool fs_quarantine_any(struct fs_vol *v)
{
	return v->j && __atomic_load_n(&v->j->nqa, __ATOMIC_ACQUIRE);
}

/* Whether a pending transaction lists the lock at (lun, off); *seq: the
 * newest that does. */
static bool pending_seq(struct fs_journal *j, const mp_lun *lun, uint64_t off,
			uint64_t *seq)
{
	bool pending = false;

	pthread_mutex_lock(&j->ov_lock);
	for (struct pl *p = j->pl[hash2((uintptr_t)lun, off)]; p; p = p->next) {
		if (p->lun == lun && p->off == off) {
			*seq = p->seq;
			pending = true;
			break;
		}
	}
	pthread_mutex_unlock(&j->ov_lock);
	return pending;
}

/* lk_set_handover: a lock a pending transaction lists waits for it. */
static int handover(void *arg, mp_lun *lun, uint64_t off)
{
	struct fs_vol *v = arg;
	struct fs_journal *j = v->j;
	uint64_t seq;
	int ret;

	if (!j || !pending_seq(j, lun, off, &seq))
		return 0;
	pthread_mutex_lock(&j->lock);
	ret = wait_for(j, seq + 1, true);
	pthread_mutex_unlock(&j->lock);
	return ret;
}

bool fs_journal_lock_pending(struct fs_vol *v, unsigned ext, uint64_t off)
{
	uint64_t seq;

	return v->j && pending_seq(v->j, v->ext[ext].lun, off, &seq);
}

/* ---- transactions ---------------------------------------------------------- */

struct fs_tx *fs_tx_begin(struct fs_vol *v)
{
	struct fs_tx *tx = calloc(1, sizeof(*tx));

	if (tx)
		tx->v = v;
	return tx;
}

struct fs_vol *fs_tx_vol(struct fs_tx *tx)
{
	return tx->v;
}

unsigned fs_tx_blocks(const struct fs_tx *tx)
{
	return tx->n;
}

int fs_tx_lock(struct fs_tx *tx, unsigned ext, lk_lock *l)
{
	uint64_t ver = lk_lock_version(l);

	if (!ver)
		return -LK_E_NOTHELD;
	return fs_tx_lock_at(tx, ext, lk_lock_offset(l), ver);
}

int fs_tx_lock_at(struct fs_tx *tx, unsigned ext, uint64_t off, uint64_t ver)
{
	for (unsigned i = 0; i < tx->nl; i++) {
		if (tx->l[i].off == off && tx->l[i].extent == ext) {
			tx->l[i].version = ver;
			return 0;
		}
	}
	if (tx->nl >= FS_JD_MAX_LOCKS)
		return -FS_E_JOURNAL;
	tx->l[tx->nl].extent = ext;
	tx->l[tx->nl].off = off;
	tx->l[tx->nl].version = ver;
	tx->nl++;
	return 0;
}

int fs_tx_defer_release(struct fs_tx *tx, unsigned ext, lk_lock *l,
			bool close)
{
	if (tx->nrel >= FS_JD_MAX_LOCKS)
		return -FS_E_JOURNAL;
	int ret = fs_tx_lock(tx, ext, l);

	/* recorded first: on failure the caller still owns the handle */
	if (ret)
		return ret;
	tx->rel[tx->nrel] = l;
	tx->rel_close[tx->nrel] = close;
	tx->rel_clus[tx->nrel] = false;
	tx->rel_ext[tx->nrel] = ext;
	tx->nrel++;
	return 0;
}

int fs_tx_defer_cluster(struct fs_tx *tx, unsigned ext, lk_lock *l, bool close)
{
	int ret = fs_tx_defer_release(tx, ext, l, close);

	if (!ret)
		tx->rel_clus[tx->nrel - 1] = true;
	return ret;
}

bool fs_tx_has_lock(struct fs_tx *tx, unsigned ext, uint64_t off)
{
	for (unsigned i = 0; i < tx->nl; i++)
		if (tx->l[i].extent == ext && tx->l[i].off == off)
			return true;
	return false;
}

static struct txblk *find(struct fs_tx *tx, unsigned ext, uint64_t off)
{
	for (unsigned i = 0; i < tx->n; i++)
		if (tx->b[i].ext == ext && tx->b[i].off == off)
			return &tx->b[i];
	return NULL;
}

int fs_tx_put(struct fs_tx *tx, unsigned ext, uint64_t off, const void *blk)
{
	struct txblk *b = find(tx, ext, off);

	if (off % FS_BLOCK)
		return -EINVAL;     /* the overlay is by 4 KiB block */
	if (!b) {
		if (tx->n >= FS_JD_MAX_BLOCKS)
			return -FS_E_JOURNAL;
		b = &tx->b[tx->n];
		b->img = fs_balloc(FS_BLOCK);
		if (!b->img)
			return -ENOMEM;
		b->ext = ext;
		b->off = off;
		tx->n++;
	}
	memcpy(b->img, blk, FS_BLOCK);
	return 0;
}

bool fs_tx_peek(struct fs_tx *tx, unsigned ext, uint64_t off, void *blk)
{
	struct txblk *b = find(tx, ext, off);

	if (b)
		memcpy(blk, b->img, FS_BLOCK);
	return b != NULL;
}

int fs_tx_get(struct fs_tx *tx, unsigned ext, uint64_t off, void *blk)
{
	struct txblk *b = find(tx, ext, off);

	if (b) {
		memcpy(blk, b->img, FS_BLOCK);
		return 0;
	}
	return fs_read(tx->v, ext, off, blk, FS_BLOCK);
}

static void tx_free(struct fs_tx *tx)
{
	for (unsigned i = 0; i < tx->n; i++)
		free(tx->b[i].img);
	free(tx->freed);
	free(tx);
}

int fs_tx_note_free(struct fs_tx *tx, uint64_t a)
{
	if (tx->nfreed == tx->capfreed) {
		unsigned cap = tx->capfreed ? tx->capfreed * 2 : 16;
		uint64_t *n = realloc(tx->freed, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		tx->freed = n;
		tx->capfreed = cap;
	}
	tx->freed[tx->nfreed++] = a;
	return 0;
}

bool fs_tx_freed(const struct fs_tx *tx, uint64_t a)
{
	for (unsigned i = 0; i < tx->nfreed; i++)
		if (tx->freed[i] == a)
			return true;
	return false;
}

/* in_place: the transaction committed (it may still be only in memory:
 * the hand-over of each lock waits for it, lk_set_handover) */
static void release_deferred(struct fs_tx *tx, bool keep, bool in_place)
{
	for (unsigned i = 0; i < tx->nrel; i++) {
		/* a cached cluster lock may stay held for our next
		 * transaction (keep.c) */
		bool kept = !keep && in_place && tx->rel_clus[i] &&
			    !tx->rel_close[i] && fs_cluster_keep(tx->v, tx->rel[i]);
		int r = keep || kept ? 0 : lk_release(tx->rel[i]);

		if (!keep && !kept && tx->rel_clus[i] && !tx->rel_close[i])
			fs_cluster_unkeep(tx->v, tx->rel[i]);
		if (r)
			fs_log(tx->v, "releasing a lock after a transaction: %s",
			       fs_strerror(r));
		if (!keep && tx->rel_clus[i]) {
			struct txblk *h = find(tx, tx->rel_ext[i],
					       lk_lock_offset(tx->rel[i]) + FS_BLOCK);

			/* the header as this host now reads it, for our next
			 * transaction under this lock (or forgotten) */
			fs_cluster_done(tx->v, tx->rel[i], h ? h->img : NULL,
					in_place && !r);
			/* after the record is free (or kept held): the next
			 * transaction of ours may take it (abandoned: nobody
			 * here may touch the cluster before a replay) */
			fs_cluster_drop(tx->v, tx->rel_ext[i],
					lk_lock_offset(tx->rel[i]));
		}
		/* kept (not in place): the handle goes, the hold stays on
		 * disk for the recovering host to see */
		if (keep && tx->rel_clus[i] && !tx->rel_close[i]) {
			fs_cluster_forget(tx->v, tx->rel[i]);
			lk_lock_close_keep(tx->rel[i]);
		} else if (tx->rel_close[i]) {
			lk_lock_close_keep(tx->rel[i]);
		}
	}
	tx->nrel = 0;
}

void fs_tx_abort(struct fs_tx *tx)
{
	if (!tx)
		return;
	release_deferred(tx, false, false);
	tx_free(tx);
}

static void tx_put(struct fs_tx *tx)
{
	if (!__atomic_sub_fetch(&tx->refs, 1, __ATOMIC_ACQ_REL))
		tx_free(tx);
}

/*
 * Publish a queued transaction (j->lock held): its images are what this
 * host reads, its locks pending, its freed blocks quarantined.  Every
 * node is allocated first: nothing is published unless all is.
 */
static int publish(struct fs_vol *v, struct fs_journal *j, struct fs_tx *tx)
{
	struct ov **ovs = calloc(tx->n + 1, sizeof(*ovs));
	struct pl **pls = calloc(tx->nl + 1, sizeof(*pls));
	struct qa **qas = calloc(tx->nfreed + 1, sizeof(*qas));
	int ret = ovs && pls && qas ? 0 : -ENOMEM;

	for (unsigned i = 0; !ret && i < tx->n; i++)
		if (!(ovs[i] = malloc(sizeof(**ovs))))
			ret = -ENOMEM;
	for (unsigned i = 0; !ret && i < tx->nl; i++)
		if (!(pls[i] = malloc(sizeof(**pls))))
			ret = -ENOMEM;
	for (unsigned i = 0; !ret && i < tx->nfreed; i++)
		if (!(qas[i] = malloc(sizeof(**qas))))
			ret = -ENOMEM;
	if (ret)
		goto out;
	pthread_mutex_lock(&j->ov_lock);
	for (unsigned i = 0; i < tx->n; i++) {
		struct ov *o = ov_find(j, tx->b[i].ext, tx->b[i].off);

		if (!o) {
			unsigned h = hash2(tx->b[i].ext, tx->b[i].off);

			o = ovs[i];
			ovs[i] = NULL;
			o->ext = tx->b[i].ext;
			o->off = tx->b[i].off;
			o->next = j->ov[h];
			j->ov[h] = o;
			__atomic_add_fetch(&j->nov, 1, __ATOMIC_RELEASE);
		}
		o->seq = tx->seq;
		o->img = tx->b[i].img;
	}
	for (unsigned i = 0; i < tx->nl; i++) {
		const mp_lun *lun = v->ext[tx->l[i].extent].lun;
		unsigned h = hash2((uintptr_t)lun, tx->l[i].off);
		struct pl *p;

		for (p = j->pl[h]; p; p = p->next)
			if (p->lun == lun && p->off == tx->l[i].off)
				break;
		if (!p) {
			p = pls[i];
			pls[i] = NULL;
			p->lun = lun;
			p->off = tx->l[i].off;
			p->next = j->pl[h];
			j->pl[h] = p;
		}
		p->seq = tx->seq;
	}
	for (unsigned i = 0; i < tx->nfreed; i++) {
		unsigned h = hash2(0, tx->freed[i]);
		struct qa *q = qas[i];

		qas[i] = NULL;
		q->addr = tx->freed[i];
		q->seq = tx->seq;
		q->next = j->qa[h];
		j->qa[h] = q;
		__atomic_add_fetch(&j->nqa, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&j->ov_lock);
out:
	for (unsigned i = 0; ovs && i < tx->n; i++)
		free(ovs[i]);
	for (unsigned i = 0; pls && i < tx->nl; i++)
		free(pls[i]);
	for (unsigned i = 0; qas && i < tx->nfreed; i++)
		free(qas[i]);
	free(ovs);
	free(pls);
	free(qas);
	return ret;
}

/* A checkpointed batch leaves the overlay, pending locks and quarantine:
 * the entries its transactions made and no newer one took over. */
static void unpublish(struct fs_vol *v, struct fs_journal *j,
		      struct fs_tx *batch, uint64_t last)
{
	pthread_mutex_lock(&j->ov_lock);
	for (struct fs_tx *tx = batch; tx; tx = tx->next) {
		for (unsigned i = 0; i < tx->n; i++) {
			struct ov **pp = &j->ov[hash2(tx->b[i].ext, tx->b[i].off)];

			for (; *pp; pp = &(*pp)->next) {
				struct ov *o = *pp;

				if (o->ext != tx->b[i].ext || o->off != tx->b[i].off)
					continue;
				if (o->seq <= last) {
					*pp = o->next;
					free(o);
					__atomic_sub_fetch(&j->nov, 1, __ATOMIC_RELEASE);
				}
				break;
			}
		}
		for (unsigned i = 0; i < tx->nl; i++) {
			const mp_lun *lun = v->ext[tx->l[i].extent].lun;
			struct pl **pp = &j->pl[hash2((uintptr_t)lun, tx->l[i].off)];

			for (; *pp; pp = &(*pp)->next) {
				struct pl *p = *pp;

				if (p->lun != lun || p->off != tx->l[i].off)
					continue;
				if (p->seq <= last) {
					*pp = p->next;
					free(p);
				}
				break;
			}
		}
		for (unsigned i = 0; i < tx->nfreed; i++) {
			struct qa **pp = &j->qa[hash2(0, tx->freed[i])];

			for (; *pp; pp = &(*pp)->next) {
				struct qa *q = *pp;

				if (q->addr == tx->freed[i] && q->seq == tx->seq) {
					*pp = q->next;
					free(q);
					__atomic_sub_fetch(&j->nqa, 1, __ATOMIC_RELEASE);
					break;
				}
			}
		}
	}
	pthread_mutex_unlock(&j->ov_lock);
}

/* The end of a commit (ret 0: committed) or of its failure: the deferred
 * locks released (or kept), and once committed what it unmapped in
 * clusters it could not wait for freed. */
static void tx_finish(struct fs_tx *tx, int ret, bool keep)
{
	release_deferred(tx, keep, !ret);
	if (!ret && tx->ndfree)
		fs_free_deferred(tx->v, tx->dfree, tx->ndfree);
}

/* The index of a block in the group's record (nt: not in it). */
static unsigned g_block(const struct jgrp *g, unsigned ext, uint64_t off)
{
	unsigned i = 0;

	while (i < g->nt && (g->t[i].extent != ext || g->t[i].off != off))
		i++;
	return i;
}

static struct gl *g_lock(struct jgrp *g, unsigned ext, uint64_t off)
{
	for (unsigned i = 0; i < g->nl; i++)
		if (g->l[i].ext == ext && g->l[i].off == off)
			return &g->l[i];
	return NULL;
}

/*
 * Whether tx may join the queue's last group (docs/FORMAT.md "Journal",
 * groups): the record stays within its limits and the log, and the
 * replay rule judges the record as it would judge tx and each transaction
 * already in it: the locks they share have one version, and a lock's
 * record block is among the record's images exactly when every
 * transaction listing it wrote it.  *newb: the blocks tx adds.
 */
static bool g_fits(struct fs_journal *j, struct fs_tx *tx, unsigned *newb)
{
	struct jgrp *g = &j->g;
	unsigned newl = 0, nb = 0;

	for (unsigned i = 0; i < tx->nl; i++) {
		const struct fs_jlock *l = &tx->l[i];
		bool w = find(tx, l->extent, l->off) != NULL;
		struct gl *e = g_lock(g, l->extent, l->off);

		if (e) {
			if (e->version != l->version || e->w != w)
				return false;
		} else {
			/* written by an earlier one that did not list it */
			if (!w && g_block(g, l->extent, l->off) < g->nt)
				return false;
			newl++;
		}
	}
	for (unsigned i = 0; i < tx->n; i++) {
		const struct gl *e = g_lock(g, tx->b[i].ext, tx->b[i].off);

		/* the block of a lock listed without it */
		if (e && !e->w)
			return false;
		if (g_block(g, tx->b[i].ext, tx->b[i].off) == g->nt)
			nb++;
	}
	if (g->nl + newl > FS_JD_MAX_LOCKS || g->nt + nb > FS_JD_MAX_BLOCKS ||
	    g->nt + nb + 3 > j->nblocks)
		return false;
	*newb = nb;
	return true;
}

/* Add tx to the queue's last group, or start a new one with it (always
 * without groups); the log blocks it adds. j->lock held. */
static unsigned g_add(struct fs_journal *j, struct fs_tx *tx)
{
	struct jgrp *g = &j->g;
	unsigned nb = 0;

	tx->gstart = !(j->groups && j->g_open && g_fits(j, tx, &nb));
	if (tx->gstart) {
		g->nt = g->nl = 0;
		nb = tx->n;
	}
	/* where each lock and block goes in the record (write_batch) */
	for (unsigned i = 0; i < tx->nl; i++) {
		const struct fs_jlock *l = &tx->l[i];
		struct gl *e = g_lock(g, l->extent, l->off);

		if (!e) {
			e = &g->l[g->nl++];
			*e = (struct gl){ l->extent, l->off, l->version,
					  find(tx, l->extent, l->off) != NULL };
		}
		tx->gl[i] = (uint8_t)(e - g->l);
	}
	for (unsigned i = 0; i < tx->n; i++) {
		unsigned k = g_block(g, tx->b[i].ext, tx->b[i].off);

		if (k == g->nt)
			g->t[g->nt++] = (struct fs_jtarget){ tx->b[i].ext,
							     tx->b[i].off };
		tx->b[i].gi = k;
	}
	j->g_open = j->groups;
	tx->glog = nb + (tx->gstart ? 2 : 0);
	return tx->glog;
}

/* The last transaction of the record tx starts, and the record's log
 * blocks. */
static struct fs_tx *g_end(struct fs_tx *tx, unsigned *len)
{
	*len = tx->glog;
	while (tx->next && !tx->next->gstart) {
		tx = tx->next;
		*len += tx->glog;
	}
	return tx;
}

int fs_tx_commit(struct fs_tx *tx)
{
	struct fs_vol *v = tx->v;
	struct fs_journal *j = v->j;
	bool keep = false;
	int ret;

	/* Data the transaction maps (a new or no longer to-be-zeroed block)
	 * was written before it, possibly on any extent: durable first, so
	 * that no crash leaves a committed map pointing at old contents. */
	ret = tx->data ? fs_flush_all(v) : 0;
	if (ret) {
		fs_tx_abort(tx);
		return ret;
	}
	if (tx->n == 0)
		goto done;
	if (!j) {
		ret = -EROFS;
		goto done;
	}
	if (__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE)) {
		ret = -EIO;
		goto done;
	}
	if (tx->n + 3 > j->nblocks) {
		ret = -FS_E_JOURNAL;
		goto done;
	}
	pthread_mutex_lock(&j->lock);
	/* the committer is behind: wait for it to take what is queued */
	{
		unsigned fails = j->fails;

		while (!j->err && j->fails == fails &&
		       (j->paused || (j->q_blocks &&
				      j->q_blocks + tx->n + 2 > j->q_max))) {
			kick_wait(j);
		}
		if (!j->err && j->fails != fails) {
			/* the log cannot be written: not this one too */
			ret = j->fail_err;
			pthread_mutex_unlock(&j->lock);
			goto done;
		}
	}
	if (j->err) {
		pthread_mutex_unlock(&j->lock);
		ret = -EIO;
		keep = true;
		goto done;
	}
	tx->seq = j->seq;
	ret = publish(v, j, tx);
	if (ret) {
		pthread_mutex_unlock(&j->lock);
		goto done;
	}
	j->seq++;
	j->commits++;
	tx->refs = 2;
	tx->next = NULL;
	j->q_last = fs_mono_ns();
	if (j->q_tail) {
		j->q_tail->next = tx;
	} else {
		j->q_head = tx;
		j->q_since = j->q_last;
		/* the committer's clock starts (it checks the rest itself) */
		pthread_cond_signal(&j->work);
	}
	j->q_tail = tx;
	j->q_blocks += g_add(j, tx);
	pthread_mutex_unlock(&j->lock);
	/* committed: locks it lists change hands after it is in place */
	tx_finish(tx, 0, false);
	tx_put(tx);
	return 0;
done:
	tx_finish(tx, ret, keep);
	tx_free(tx);
	return ret;
}

/* ---- the committer ---------------------------------------------------------- */

struct ipw {                     /* an in-place write */
	unsigned ext;
	uint64_t off;
	uint64_t order;
	const unsigned char *img;
};

static int cmp_ipw(const void *x, const void *y)
{
	const struct ipw *a = x, *b = y;

	if (a->ext != b->ext)
		return a->ext < b->ext ? -1 : 1;
	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	/* newest first */
	return a->order > b->order ? -1 : a->order < b->order;
}

/*
 * Whether the in-place write w goes first: a lock record block of an FD
 * slot, or the FD of anything but a directory.  Nothing written first
 * makes a file reachable (a directory's blocks do; its FD goes with them
 * too), so another host finds a new file only once its lock record is in
 * place.
 */
static bool goes_first(const struct fs_vol *v, const struct ipw *w)
{
	const struct fs_area *ar = &v->sb.ext[w->ext].area[FS_A_FD];
	uint64_t rel;

	if (w->off < ar->res_off ||
	    w->off >= ar->res_off + (uint64_t)ar->clusters * ar->per_cluster *
				    FS_SLOT)
		return false;
	rel = (w->off - ar->res_off) % FS_SLOT;
	return rel == 0 ||
	       (rel == FS_BLOCK &&
		w->img[offsetof(struct fs_fd_disk, type)] != FS_T_DIR);
}

/* Blocks written in place by one I/O at most (adjacent blocks join). */
#define IPW_RUN 32u

/*
 * Write the blocks w[0..n) (sorted, one image per block) in runs of
 * adjacent blocks, all in flight at once; the first error.
 */
static int write_runs(struct fs_vol *v, const struct ipw *w, unsigned n,
		      struct mp_io *ios, struct iovec *iov, uint32_t *mask)
{
	unsigned k = 0;
	int ret = 0;

	for (unsigned i = 0; i < n;) {
		unsigned m = 1;

		while (i + m < n && m < IPW_RUN && w[i + m].ext == w[i].ext &&
		       w[i + m].off == w[i].off + (uint64_t)m * FS_BLOCK)
			m++;
		for (unsigned j = 0; j < m; j++) {
			iov[i + j].iov_base = (void *)w[i + j].img;
			iov[i + j].iov_len = FS_BLOCK;
		}
		mp_io_prep_write(&ios[k], &iov[i], (int)m, w[i].off, 0);
		/* a refused submit completes at once with its error */
		mp_io_submit(v->ext[w[i].ext].lun, &ios[k]);
		*mask |= 1u << w[i].ext;
		k++;
		i += m;
	}
	for (unsigned i = 0; i < k; i++) {
		int r = mp_io_wait(&ios[i]);

		if (r < 0 && !ret)
			ret = r;
	}
	return ret;
}

/*
 * The newest image of each block of the batch in place, then a flush of
 * the extents written.  Lock records and the FDs of files first, and only
 * once those are written the rest (goes_first): a new file's lock record
 * comes with the transaction that makes the file (fs_inode_alloc), and
 * another host that finds the file through a directory (read without our
 * lock) must find the record that says it is ours.
 */
static int write_in_place(struct fs_vol *v, struct fs_tx *batch, unsigned nimg)
{
	struct ipw *w = calloc(nimg ? nimg : 1, sizeof(*w));
	struct ipw *o = calloc(nimg ? nimg : 1, sizeof(*o));
	struct mp_io *ios = calloc(nimg ? nimg : 1, sizeof(*ios));
	struct iovec *iov = calloc(nimg ? nimg : 1, sizeof(*iov));
	unsigned n = 0, k = 0, nfd = 0;
	uint32_t mask = 0;
	uint64_t order = 0;
	int ret = 0;

	if (!w || !o || !ios || !iov) {
		ret = -ENOMEM;
		goto out;
	}
	for (struct fs_tx *tx = batch; tx; tx = tx->next)
		for (unsigned i = 0; i < tx->n; i++, order++)
			w[n++] = (struct ipw){ tx->b[i].ext, tx->b[i].off, order,
					       tx->b[i].img };
	qsort(w, n, sizeof(*w), cmp_ipw);
	/* the newest image of each block; those in FD areas first */
	for (unsigned i = 0; i < n; i++) {
		if (i && w[i].ext == w[i - 1].ext && w[i].off == w[i - 1].off)
			continue;
		w[k++] = w[i];
	}
	for (unsigned i = 0; i < k; i++)
		if (goes_first(v, &w[i]))
			o[nfd++] = w[i];
	for (unsigned i = 0, m = nfd; i < k; i++)
		if (!goes_first(v, &w[i]))
			o[m++] = w[i];
	ret = write_runs(v, o, nfd, ios, iov, &mask);
	if (!ret)
		ret = write_runs(v, o + nfd, k - nfd, ios, iov + nfd, &mask);
	if (!ret)
		ret = fs_flush_mask(v, mask);
out:
	free(w);
	free(o);
	free(ios);
	free(iov);
	return ret;
}

/*
 * Write one batch (the transactions from batch on, in sequence, starting
 * at log block *head; wrap: the header must first point at block 1) to the
 * log, make it durable, put it in place, move the checkpoint past it.
 */
static int write_batch(struct fs_vol *v, struct fs_journal *j,
		       struct fs_tx *batch, unsigned nblk, bool wrap,
		       const char **stage, bool *durable)
{
	unsigned char *buf = fs_balloc((size_t)nblk * FS_BLOCK);
	unsigned char *hb = fs_balloc(FS_BLOCK);
	struct fs_jd *d = malloc(sizeof(*d));
	uint64_t last = 0, first = batch->seq;
	unsigned nimg = 0;
	size_t pos = 0;
	ssize_t n;
	int ret;

	*stage = "writing the log";
	if (!buf || !hb || !d) {
		ret = -ENOMEM;
		goto out;
	}
	if (__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE)) {
		ret = -EIO;
		goto out;
	}
	/* fenced or taken for dead: another host may be replaying us */
	ret = v->lk ? lk_state(v->lk) : 0;
	if (ret)
		goto out;
	if (wrap) {
		/* everything before is in place */
		ret = write_header(v, j, first, 1, hb);
		if (ret)
			goto out;
		j->head = 1;
	}
	for (struct fs_tx *tx = batch, *e; tx; tx = e->next) {
		struct fs_jc c = { 0 };
		unsigned char *rec = buf + pos * FS_BLOCK;
		unsigned len;

		e = g_end(tx, &len);
		memset(d, 0, sizeof(*d));
		d->seq = tx->seq;
		d->jid = j->jid;
		d->ntx = (uint32_t)(e->seq - tx->seq + 1);
		/* each block once, the newest image (the group's last
		 * transaction that wrote it); every lock listed: where
		 * g_add put them */
		for (struct fs_tx *m = tx;; m = m->next) {
			for (unsigned i = 0; i < m->n; i++) {
				unsigned k = m->b[i].gi;

				d->t[k].extent = m->b[i].ext;
				d->t[k].off = m->b[i].off;
				if (k >= d->nblocks)
					d->nblocks = k + 1;
				memcpy(rec + (size_t)(k + 1) * FS_BLOCK,
				       m->b[i].img, FS_BLOCK);
			}
			for (unsigned i = 0; i < m->nl; i++) {
				d->l[m->gl[i]] = m->l[i];
				if (m->gl[i] >= d->nlocks)
					d->nlocks = m->gl[i] + 1u;
			}
			nimg += m->n;
			if (m == e)
				break;
		}
		fs_jd_out(d, rec);
		c.seq = tx->seq;
		c.jid = j->jid;
		c.nblocks = d->nblocks;
		c.data_crc = mp_crc32c(0, rec, (size_t)(d->nblocks + 1) * FS_BLOCK);
		fs_jc_out(&c, rec + (size_t)(d->nblocks + 1) * FS_BLOCK);
		pos += d->nblocks + 2;
		last = e->seq;
	}
	n = mp_lun_pwrite(v->ext[0].lun, buf, pos * FS_BLOCK,
			  j->base + (uint64_t)j->head * FS_BLOCK, 0);
	ret = n < 0 ? (int)n : 0;
	if (!ret)
		ret = mp_lun_flush(v->ext[0].lun);
	if (ret)
		goto out;
	j->head += (uint32_t)pos;
	*durable = true;
	pthread_mutex_lock(&j->lock);
	j->durable = last + 1;
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);

	/* durable: from here a crash is repaired by replay */
	*stage = "writing it in place";
	ret = lk_state(v->lk);
	if (!ret)
		ret = write_in_place(v, batch, nimg);
	if (ret)
		goto out;
	/* what it freed goes back to the LUN before anyone, this host
	 * included (quarantine), can allocate it again */
	for (struct fs_tx *tx = batch; tx; tx = tx->next)
		if (tx->ndisc)
			discard_freed(tx);
	*stage = "moving the checkpoint";
	if (j->head + 2 > j->nblocks)
		j->head = 1;
	ret = write_header(v, j, last + 1, j->head, hb);
out:
	free(buf);
	free(hb);
	free(d);
	return ret;
}

/* The host is out of the cluster for good (its slot taken over: its
 * journal replayed, its locks broken; or the volume given up): nothing
 * queued can be written any more.  Fenced is not gone: it may beat again
 * with every lock still its own. */
static bool gone(struct fs_vol *v)
{
	int st = v->lk ? lk_state(v->lk) : 0;

	return st && st != -LK_E_FENCED;
}

static void *committer(void *arg)
{
	struct fs_vol *v = arg;
	struct fs_journal *j = v->j;

	pthread_mutex_lock(&j->lock);
	for (;;) {
		struct fs_tx *batch, *tail, *tx;
		unsigned nblk = 0;
		uint64_t last;
		const char *stage = "";
		bool wrap = false, durable = false;
		int ret;

		while (!j->q_head && !j->stop)
			pthread_cond_wait(&j->work, &j->lock);
		if (!j->q_head)
			break;
		/* gather more, unless someone waits */
		while (j->q_head && !j->stop && !j->urgent && !j->err) {
			uint64_t now = fs_mono_ns(),
				 due = j->q_since + j->delay_ns,
				 idle = j->q_last + j->idle_ns;
			struct timespec ts;

			if (idle < due)
				due = idle;
			if (now >= due)
				break;
			ts.tv_sec = (time_t)(due / 1000000000ull);
			ts.tv_nsec = (long)(due % 1000000000ull);
			pthread_cond_timedwait(&j->work, &j->lock, &ts);
		}
		if (j->err) {
			/* given up: nothing more is written */
			while ((tx = j->q_head)) {
				j->q_head = tx->next;
				unpublish(v, j, tx, tx->seq);
				tx->next = NULL;
				tx_put(tx);
			}
			j->q_tail = NULL;
			j->q_blocks = 0;
			j->g_open = false;
			pthread_cond_broadcast(&j->done);
			continue;
		}
		/* the queued transactions that fit before the log's end */
		batch = tail = j->q_head;
		{
			unsigned len;
			uint32_t at;

			g_end(batch, &len);
			wrap = j->head + len > j->nblocks;
			at = wrap ? 1 : j->head;
			/* whole records (groups) */
			for (tx = batch; tx; tx = tx->next) {
				struct fs_tx *e = g_end(tx, &len);

				if (at + nblk + len > j->nblocks)
					break;
				nblk += len;
				tail = tx = e;
			}
		}
		j->q_head = tail->next;
		if (!j->q_head) {
			j->q_tail = NULL;
			j->g_open = false;  /* its last group is taken */
		} else
			j->q_since = fs_mono_ns();
		tail->next = NULL;
		j->q_blocks -= nblk;
		last = tail->seq;
		j->busy = true;
		pthread_cond_broadcast(&j->done);   /* room in the queue */
		pthread_mutex_unlock(&j->lock);

		ret = write_batch(v, j, batch, nblk, wrap, &stage, &durable);
		if (!ret)
			unpublish(v, j, batch, last);

		pthread_mutex_lock(&j->lock);
		j->busy = false;
		if (ret && !durable && !j->stop && !gone(v) &&
		    !__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE)) {
			/* nothing of it on disk, the host still in the
			 * cluster (fenced perhaps, for a while): queued
			 * again, tried again when someone waits for it or
			 * after J_RETRY_MS */
			uint64_t due = fs_mono_ns() + J_RETRY_MS * 1000000ull;
			struct timespec ts = {
				.tv_sec = (time_t)(due / 1000000000ull),
				.tv_nsec = (long)(due % 1000000000ull) };

			if (!j->fails++ || j->fail_err != ret)
				fs_log(v, "writing transactions %llu-%llu to the "
				       "journal: %s (kept, tried again)",
				       (unsigned long long)batch->seq,
				       (unsigned long long)last, fs_strerror(ret));
			j->fail_err = ret;
			tail->next = j->q_head;
			j->q_head = batch;
			if (!j->q_tail)
				j->q_tail = tail;
			j->q_blocks += nblk;
			pthread_cond_broadcast(&j->done);
			pthread_cond_timedwait(&j->work, &j->lock, &ts);
			continue;
		}
		if (ret) {
			j->err = ret;
		} else {
			j->ckpt = last + 1;
			j->batches++;
		}
		pthread_cond_broadcast(&j->done);
		pthread_mutex_unlock(&j->lock);
		/* holds kept until their transactions were in place may go */
		if (!ret)
			fs_keep_kick(v);
		if (ret) {
			char why[200];

			snprintf(why, sizeof(why), "transactions %llu-%llu "
				 "committed but %s failed (%s)",
				 (unsigned long long)batch->seq,
				 (unsigned long long)last, stage,
				 fs_strerror(ret));
			/* after the waiters were told: they may hold what
			 * giving up takes */
			fs_vol_abandon(v, why);
			unpublish(v, j, batch, last);
		}
		while ((tx = batch)) {
			batch = tx->next;
			tx_put(tx);
		}
		pthread_mutex_lock(&j->lock);
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

int fs_tx_commit_sync(struct fs_tx *tx)
{
	struct fs_vol *v = tx->v;
	struct fs_journal *j = v->j;
	const char *stage = "";
	bool wrap, durable = false, keep = false;
	int ret;

	ret = tx->data ? fs_flush_all(v) : 0;
	if (!ret && tx->n && !j)
		ret = -EROFS;
	if (!ret && tx->n && __atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE))
		ret = -EIO;
	if (!ret && tx->n + 3 > (j ? j->nblocks : 0))
		ret = tx->n ? -FS_E_JOURNAL : 0;
	if (ret || !tx->n)
		goto done;
	/* everything before it in place, and nothing more queued meanwhile */
	pthread_mutex_lock(&j->lock);
	while (!j->err && j->paused)
		pthread_cond_wait(&j->done, &j->lock);
	j->paused = true;
	{
		unsigned fails = j->fails;

		while (!j->err && j->fails == fails &&
		       (j->q_head || j->busy || j->ckpt < j->seq)) {
			kick_wait(j);
		}
		ret = j->err ? -EIO : j->fails != fails ? j->fail_err : 0;
	}
	tx->seq = j->seq;
	pthread_mutex_unlock(&j->lock);
	if (!ret) {
		/* the committer is idle and stays so: its log is ours */
		tx->next = NULL;
		tx->gstart = true;      /* a record of its own */
		tx->glog = tx->n + 2;
		for (unsigned i = 0; i < tx->n; i++)
			tx->b[i].gi = i;
		for (unsigned i = 0; i < tx->nl; i++)
			tx->gl[i] = (uint8_t)i;
		wrap = j->head + tx->n + 2 > j->nblocks;
		ret = write_batch(v, j, tx, tx->n + 2, wrap, &stage, &durable);
	}
	pthread_mutex_lock(&j->lock);
	if (!ret) {
		j->seq++;
		j->commits++;
		j->batches++;
		j->ckpt = j->seq;
	}
	j->paused = false;
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	if (ret && durable) {
		char why[160];

		snprintf(why, sizeof(why), "transaction %llu committed but %s "
			 "failed (%s)", (unsigned long long)tx->seq, stage,
			 fs_strerror(ret));
		keep = true;
		fs_vol_abandon(v, why);
	}
done:
	tx_finish(tx, ret, keep);
	tx_free(tx);
	return ret;
}

/* ---- replay ------------------------------------------------------------------- */

/* A lock record as the replay leaves it so far: the version written by
 * a transaction it replays (before anything is written). */
struct rver {
	unsigned ext;
	uint64_t off, version;
};

struct rvers {
	struct rver *v;
	size_t n, cap;
};

/* A transaction found in a journal being replayed. */
struct rtx {
	uint32_t pos, nblocks;
	uint64_t seq;
	uint32_t ntx;                /* transactions the record stands for */
	bool replay;
	unsigned nl;
	struct fs_jlock l[FS_JD_MAX_LOCKS];
	/* the lock's record is among the transaction's blocks (a new
	 * file's, fs_inode_alloc): the version it writes */
	bool writes[FS_JD_MAX_LOCKS];
	uint64_t wver[FS_JD_MAX_LOCKS];
};

/* The version of lock l's record, and whether nobody holds it: as a
 * replayed transaction writes it (held), else on disk (version 0 and
 * free: no record there yet). */
static int lock_version(struct fs_vol *v, const struct rvers *rv,
			const struct fs_jlock *l, uint64_t *ver, bool *free_)
{
	unsigned char *b;
	struct lk_lockrec r;
	int ret;

	for (size_t i = rv->n; i-- > 0;)
		if (rv->v[i].ext == l->extent && rv->v[i].off == l->off) {
			*ver = rv->v[i].version;
			*free_ = false;
			return 0;
		}
	b = fs_balloc(v->ss);
	if (!b)
		return -ENOMEM;
	ret = fs_read(v, l->extent, l->off, b, v->ss);
	if (!ret && lk_lockrec_in(b, &r) == 0) {
		*ver = r.version;
		*free_ = r.mode == LK_FREE;
	} else {
		*ver = 0;
		*free_ = true;
	}
	free(b);
	return ret;
}

/*
 * Whether every lock tx was made under still shows its version: a lock
 * whose record tx itself writes shows at most that version (the record
 * may not be in place yet: nobody else can have taken it before the
 * transaction was, which is checkpointed after), or no holder (a host
 * that locked the free FD meanwhile, an open by an address that was
 * stale then, found it free and let it go).  If so, the records it writes
 * count for the transactions after it.
 */
static int may_replay(struct fs_vol *v, struct rvers *rv, const struct rtx *tx,
		      bool *all)
{
	int ret = 0;

	*all = true;
	for (unsigned i = 0; i < tx->nl && *all && !ret; i++) {
		uint64_t cur;
		bool nobody;

		ret = lock_version(v, rv, &tx->l[i], &cur, &nobody);
		*all = tx->writes[i] ? cur <= tx->l[i].version || nobody
				     : cur == tx->l[i].version;
	}
	for (unsigned i = 0; i < tx->nl && *all && !ret; i++) {
		if (!tx->writes[i])
			continue;
		if (rv->n == rv->cap) {
			size_t cap = rv->cap ? rv->cap * 2 : 64;
			struct rver *n = realloc(rv->v, cap * sizeof(*n));

			if (!n)
				return -ENOMEM;
			rv->v = n;
			rv->cap = cap;
		}
		rv->v[rv->n++] = (struct rver){ tx->l[i].extent, tx->l[i].off,
						tx->wver[i] };
	}
	return ret;
}

/*
 * The journal changes extent max_ext, which this host does not know: the
 * dead host spanned or grew the volume, or saw another host do it, and we
 * have not read the superblock since.  Read it again; if the superblock
 * the log commits is not in place yet (the dead host's own span), write
 * it first, by the rule of pass 2 (the last transaction that wrote it, if
 * that one may be replayed), and read it again.  An extent still unknown
 * is an error, never skipped: its blocks and locks cannot be replayed.
 */
static int replay_geometry(struct fs_vol *v, uint32_t slot, uint64_t base,
			   const struct rtx *sb_tx, unsigned max_ext,
			   unsigned char *data, bool dry)
{
	struct fs_jd d;
	bool all;
	int ret;

	fs_geom_refresh(v);
	if (max_ext < __atomic_load_n(&v->next, __ATOMIC_ACQUIRE))
		goto known;
	if (sb_tx && !dry) {
		struct rvers none = { 0 };

		ret = may_replay(v, &none, sb_tx, &all);
		free(none.v);
		if (ret)
			return ret;
		ret = fs_read(v, 0, base + (uint64_t)sb_tx->pos * FS_BLOCK, data,
			      (size_t)(sb_tx->nblocks + 1) * FS_BLOCK);
		if (!ret)
			ret = fs_jd_in(data, &d);
		for (unsigned i = 0; !ret && all && i < d.nblocks; i++) {
			if (d.t[i].extent || d.t[i].off != FS_SB_SLOT + FS_BLOCK)
				continue;
			ret = fs_write(v, 0, d.t[i].off,
				       data + (size_t)(i + 1) * FS_BLOCK, FS_BLOCK);
			if (!ret)
				ret = fs_flush_mask(v, 1);
			if (!ret) {
				fs_log(v, "journal of slot %u: the superblock of "
				       "transaction %llu written first (it adds "
				       "extents)", slot,
				       (unsigned long long)sb_tx->seq);
				fs_geom_refresh(v);
			}
		}
		if (ret)
			return ret;
	}
	if (max_ext < __atomic_load_n(&v->next, __ATOMIC_ACQUIRE))
		goto known;
	fs_log(v, "journal of slot %u changes extent %u, which this host does "
	       "not see (it knows %u; vmfsd --candidate): not replayed", slot,
	       max_ext, v->next);
	return -FS_E_EXTENTS;
known:
	fs_log(v, "journal of slot %u changes extent %u: the volume's geometry "
	       "read again first", slot, max_ext);
	return 0;
}

int fs_journal_replay(struct fs_vol *v, uint32_t slot, unsigned *applied,
		      bool dry)
{
	uint64_t base = jbase(v, slot);
	unsigned char *b = fs_balloc(FS_BLOCK), *data = NULL;
	unsigned n_applied = 0, n_skipped = 0, max_ext = 0;
	struct rtx *txs = NULL;
	size_t ntx = 0, txcap = 0, sb_tx = SIZE_MAX;
	struct fs_jd last;           /* a replayed transaction's descriptor */
	struct fs_jtarget hdrs[FS_JD_MAX_BLOCKS * 4];  /* cluster headers replayed */
	unsigned nhdr = 0;
	struct rvers rv = { 0 };     /* lock records the replay writes */
	bool ckpt;
	struct fs_jh h;
	uint64_t expect;
	uint32_t pos;
	int ret;

	if (applied)
		*applied = 0;
	if (!b)
		return -ENOMEM;
	ret = fs_read(v, 0, base, b, FS_BLOCK);
	if (ret)
		goto out;
	ret = fs_jh_in(b, &h);
	if (ret == -FS_E_BADMAGIC) {
		ret = 0;    /* never used */
		goto out;
	}
	if (ret || h.nblocks != v->sb.journal_blocks || h.slot != slot) {
		ret = fs_bad_meta(v, ret ? ret : -FS_E_CORRUPT, "journal header",
				  0, base);
		goto out;
	}
	data = fs_balloc((size_t)(FS_JD_MAX_BLOCKS + 2) * FS_BLOCK);
	if (!data) {
		ret = -ENOMEM;
		goto out;
	}
	/* Pass 1: the complete transactions, in order, the extents they
	 * touch, and the last one that writes the superblock. */
	pos = (uint32_t)h.tail_block;
	expect = h.tail_seq;
	while (pos + 2 <= h.nblocks) {
		struct fs_jd d;
		struct fs_jc c;
		size_t len;

		if (fs_read(v, 0, base + (uint64_t)pos * FS_BLOCK, data, FS_BLOCK) ||
		    fs_jd_in(data, &d) || d.seq != expect || d.jid != h.jid ||
		    pos + d.nblocks + 2 > h.nblocks)
			break;
		len = (size_t)(d.nblocks + 2) * FS_BLOCK;
		if (fs_read(v, 0, base + (uint64_t)pos * FS_BLOCK, data, len))
			break;
		if (fs_jc_in(data + (size_t)(d.nblocks + 1) * FS_BLOCK, &c) ||
		    c.seq != d.seq || c.jid != h.jid || c.nblocks != d.nblocks ||
		    c.data_crc != mp_crc32c(0, data, (size_t)(d.nblocks + 1) * FS_BLOCK))
			break;   /* torn or never completed: the end */
		if (ntx == txcap) {
			struct rtx *n;

			txcap = txcap ? txcap * 2 : 64;
			n = realloc(txs, txcap * sizeof(*txs));
			if (!n) {
				ret = -ENOMEM;
				goto out;
			}
			txs = n;
		}
		txs[ntx].pos = pos;
		txs[ntx].nblocks = d.nblocks;
		txs[ntx].seq = d.seq;
		txs[ntx].ntx = d.ntx;
		txs[ntx].nl = d.nlocks;
		memcpy(txs[ntx].l, d.l, d.nlocks * sizeof(d.l[0]));
		for (unsigned i = 0; i < d.nlocks; i++) {
			struct lk_lockrec r;

			txs[ntx].writes[i] = false;
			txs[ntx].wver[i] = 0;
			for (unsigned k = 0; k < d.nblocks; k++)
				if (d.t[k].extent == d.l[i].extent &&
				    d.t[k].off == d.l[i].off &&
				    lk_lockrec_in(data + (size_t)(k + 1) * FS_BLOCK,
						  &r) == 0) {
					txs[ntx].writes[i] = true;
					txs[ntx].wver[i] = r.version;
				}
		}
		for (unsigned i = 0; i < d.nblocks; i++) {
			if (d.t[i].extent > max_ext)
				max_ext = d.t[i].extent;
			if (!d.t[i].extent && d.t[i].off == FS_SB_SLOT + FS_BLOCK)
				sb_tx = ntx;
		}
		for (unsigned i = 0; i < d.nlocks; i++)
			if (d.l[i].extent > max_ext)
				max_ext = d.l[i].extent;
		ntx++;
		pos += d.nblocks + 2;
		expect += d.ntx;        /* a group stands for several */
	}
	ckpt = h.flags & FS_JH_CKPT;
	if (max_ext >= __atomic_load_n(&v->next, __ATOMIC_ACQUIRE)) {
		/* the superblock first if a transaction that may not be in
		 * place writes it: any after a checkpoint, else the newest
		 * only (an older one's is in place) */
		ret = replay_geometry(v, slot, base,
				      sb_tx != SIZE_MAX && (ckpt || sb_tx + 1 == ntx) ?
				      &txs[sb_tx] : NULL, max_ext, data, dry);
		if (ret)
			goto out;
	}
	/*
	 * Checkpointed (a write-back journal): every transaction from the
	 * tail on may be incomplete in place, and each is replayed, in
	 * order, if every lock it lists still shows its version (its owner
	 * hands a lock over only once the transactions listing it are in
	 * place; blocks they freed were not reused for file data before the
	 * checkpoint passed them).
	 *
	 * Otherwise (a journal of a host that committed one transaction at a
	 * time) only the newest can be incomplete in place: each one's images
	 * were written in place and flushed before the next went to the
	 * journal.  Every older one is in place, and writing its images
	 * again could take a block back in time: one it freed, or wrote
	 * before another freed it, may hold file data since (the journal
	 * never sees data writes), under locks it still lists at the same
	 * version.
	 */
	for (size_t k = 0; k < ntx; k++) {
		if (ckpt || k + 1 == ntx) {
			ret = may_replay(v, &rv, &txs[k], &txs[k].replay);
			if (ret)
				goto out;
		} else {
			txs[k].replay = false;
		}
		if (txs[k].replay)
			n_applied += txs[k].ntx;
		else
			n_skipped += txs[k].ntx;
	}
	/* pass 2: the images of those that may be replayed, in order */
	for (size_t k = 0; !dry && k < ntx; k++) {
		if (!txs[k].replay)
			continue;
		ret = fs_read(v, 0, base + (uint64_t)txs[k].pos * FS_BLOCK,
			      data, (size_t)(txs[k].nblocks + 1) * FS_BLOCK);
		if (!ret)
			ret = fs_jd_in(data, &last);
		for (unsigned i = 0; !ret && i < last.nblocks; i++)
			ret = fs_write(v, last.t[i].extent, last.t[i].off,
				       data + (size_t)(i + 1) * FS_BLOCK, FS_BLOCK);
		if (ret)
			goto out;
		for (unsigned i = 0; i < last.nblocks && nhdr < FS_JD_MAX_BLOCKS * 4; i++)
			if (fb_cluster_header(v, last.t[i].extent, last.t[i].off))
				hdrs[nhdr++] = (struct fs_jtarget){ last.t[i].extent,
								    last.t[i].off };
	}
	if (n_applied && !dry) {
		ret = fs_flush_all(v);
		/* what they freed goes back to the LUN, as a live host's
		 * commit would have done (docs/FORMAT.md "Journal") */
		for (unsigned i = 0; !ret && i < nhdr; i++) {
			bool seen = false;

			for (unsigned k = 0; k < i && !seen; k++)
				seen = hdrs[k].extent == hdrs[i].extent &&
				       hdrs[k].off == hdrs[i].off;
			if (!seen)
				discard_cluster_free(v, hdrs[i].extent, hdrs[i].off);
		}
		if (ret)
			goto out;
	}
	if ((n_applied || n_skipped) && !dry)
		fs_log(v, "journal of slot %u: %u transaction(s) replayed, %u "
		       "already in place", slot, n_applied, n_skipped);
	if (applied)
		*applied = n_applied;
out:
	free(txs);
	free(rv.v);
	free(b);
	free(data);
	return ret;
}
