/*
 * journal.c - per-host metadata redo journal and transactions.
 *
 * A transaction gathers the new images of the 4 KiB metadata blocks an
 * operation changes and the locks it holds while changing them.  Commit:
 *
 *   1. write descriptor + images + commit block to our journal, flush;
 *   2. write the images in place, flush;
 *   3. release the locks the transaction was asked to release.
 *
 * Step 1 is one write: if it tears, the commit block's crc over descriptor
 * and images does not match and replay ignores the transaction.  Commits are
 * serialised (journal mutex held through step 2), so every transaction
 * before the current one is in place: the log needs no checkpointing, and
 * when it wraps the header is moved to the start of the log before the
 * transaction is written there.
 *
 * Replay (docs/FORMAT.md): in sequence from the header's position, each
 * complete transaction whose lock records all still show the version it
 * was made under is written in place again.  Sequence numbers start at
 * (slot generation << 32), so a new owner of the slot never runs into the
 * previous owner's transactions.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "fs/fs_int.h"
#include "lockmgr/ondisk.h"

struct fs_journal {
	uint32_t slot, nblocks;
	uint64_t base;               /* byte offset of block 0 on extent 0 */
	uint64_t seq;                /* next transaction's sequence */
	uint64_t jid;                /* this incarnation's journal id */
	uint32_t head;               /* next free block */
	pthread_mutex_t lock;
	uint64_t commits;
};

struct txblk {
	unsigned ext;
	uint64_t off;
	unsigned char *img;
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

void fs_tx_undiscard(struct fs_tx *tx, uint64_t a)
{
	for (unsigned i = 0; i < tx->ndisc; i++)
		if (tx->disc[i] == a)
			tx->disc[i] = tx->disc[--tx->ndisc];
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Give the file blocks the transaction freed back to their LUNs, runs of
 * adjacent blocks in one discard.  Called after the transaction is in
 * place and before its cluster locks are released: nobody can have
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

int fs_journal_open(struct fs_vol *v)
{
	struct fs_journal *j = calloc(1, sizeof(*j));
	struct lk_vol_info li;
	struct fs_jh h = { 0 };
	unsigned char *b = fs_balloc(FS_BLOCK);
	ssize_t n;
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
	j->head = 1;
	/* A new id at every open: blocks left by an earlier owner of the
	 * slot, or by a volume this LUN held before mkfs -f, never pass for
	 * ours, whatever their sequence numbers. */
	if (getrandom(&j->jid, sizeof(j->jid), 0) != sizeof(j->jid)) {
		ret = -errno;
		goto out;
	}
	pthread_mutex_init(&j->lock, NULL);
	h.slot = j->slot;
	h.nblocks = j->nblocks;
	h.tail_seq = j->seq;
	h.tail_block = 1;
	h.jid = j->jid;
	fs_jh_out(&h, b);
	/* Safe to overwrite: a slot is free only after its previous owner
	 * left cleanly or was recovered (its journal replayed). */
	n = mp_lun_pwrite(v->ext[0].lun, b, FS_BLOCK, j->base, MP_IO_FUA);
	if (n < 0) {
		ret = (int)n;
		goto out;
	}
	v->j = j;
	j = NULL;
out:
	if (j)
		pthread_mutex_destroy(&j->lock);
	free(j);
	free(b);
	return ret;
}

void fs_journal_close(struct fs_vol *v)
{
	if (!v->j)
		return;
	pthread_mutex_destroy(&v->j->lock);
	free(v->j);
	v->j = NULL;
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
	uint64_t off = lk_lock_offset(l), ver = lk_lock_version(l);

	if (!ver)
		return -LK_E_NOTHELD;
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
	free(tx);
}

/* in_place: the transaction committed and is written in place */
static void release_deferred(struct fs_tx *tx, bool keep, bool in_place)
{
	for (unsigned i = 0; i < tx->nrel; i++) {
		/* a cached cluster lock may stay held for our next
		 * transaction (keep.c): this one is in place */
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

			/* the header as it now is on disk, for our next
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

/* Write every image in place, all in flight at once. */
static int write_in_place(struct fs_tx *tx)
{
	struct fs_vol *v = tx->v;
	struct mp_io *ios = calloc(tx->n, sizeof(*ios));
	struct iovec *iov = calloc(tx->n, sizeof(*iov));
	int ret = 0;

	if (!ios || !iov) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < tx->n; i++) {
		iov[i].iov_base = tx->b[i].img;
		iov[i].iov_len = FS_BLOCK;
		mp_io_prep_write(&ios[i], &iov[i], 1, tx->b[i].off, 0);
		/* a refused submit completes at once with its error */
		mp_io_submit(v->ext[tx->b[i].ext].lun, &ios[i]);
	}
	for (unsigned i = 0; i < tx->n; i++) {
		int r = mp_io_wait(&ios[i]);

		if (r < 0 && !ret)
			ret = r;
	}
out:
	free(ios);
	free(iov);
	return ret;
}

int fs_tx_commit(struct fs_tx *tx)
{
	struct fs_vol *v = tx->v;
	struct fs_journal *j = v->j;
	unsigned char *buf = NULL;
	struct fs_jd d;
	struct fs_jc c = { 0 };
	bool keep = false;
	size_t len;
	ssize_t n;
	int ret;

	/* Data the transaction maps (a new or no longer to-be-zeroed block)
	 * was written before it, possibly on any extent: durable first, so
	 * that no crash leaves a committed map pointing at old contents. */
	ret = tx->data ? fs_flush_all(v) : 0;
	if (ret) {
		fs_tx_abort(tx);
		return ret;
	}

	if (tx->n == 0) {
		ret = 0;
		goto done;
	}
	if (!j) {
		ret = -EROFS;
		goto done;
	}
	if (__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE)) {
		ret = -EIO;
		goto done;
	}
	len = (size_t)(tx->n + 2) * FS_BLOCK;
	if (tx->n + 3 > j->nblocks) {
		ret = -FS_E_JOURNAL;
		goto done;
	}
	buf = fs_balloc(len);
	if (!buf) {
		ret = -ENOMEM;
		goto done;
	}
	pthread_mutex_lock(&j->lock);
	if (j->head + tx->n + 2 > j->nblocks) {
		/* wrap: the header must point at where this transaction will
		 * be before anything is written there */
		struct fs_jh h = { .slot = j->slot, .nblocks = j->nblocks,
				   .tail_seq = j->seq, .tail_block = 1,
				   .jid = j->jid };

		fs_jh_out(&h, buf);
		n = mp_lun_pwrite(v->ext[0].lun, buf, FS_BLOCK, j->base, MP_IO_FUA);
		if (n < 0) {
			ret = (int)n;
			goto unlock;
		}
		j->head = 1;
	}
	memset(&d, 0, sizeof(d));
	d.seq = j->seq;
	d.jid = j->jid;
	d.nblocks = tx->n;
	d.nlocks = tx->nl;
	for (unsigned i = 0; i < tx->n; i++) {
		d.t[i].extent = tx->b[i].ext;
		d.t[i].off = tx->b[i].off;
		memcpy(buf + (size_t)(i + 1) * FS_BLOCK, tx->b[i].img, FS_BLOCK);
	}
	memcpy(d.l, tx->l, tx->nl * sizeof(tx->l[0]));
	fs_jd_out(&d, buf);
	c.seq = j->seq;
	c.jid = j->jid;
	c.nblocks = tx->n;
	c.data_crc = mp_crc32c(0, buf, (size_t)(tx->n + 1) * FS_BLOCK);
	fs_jc_out(&c, buf + (size_t)(tx->n + 1) * FS_BLOCK);

	n = mp_lun_pwrite(v->ext[0].lun, buf, len,
			  j->base + (uint64_t)j->head * FS_BLOCK, 0);
	ret = n < 0 ? (int)n : 0;
	if (!ret)
		ret = mp_lun_flush(v->ext[0].lun);
	if (ret)
		goto unlock;
	/* committed: from here a crash is repaired by replay */
	ret = write_in_place(tx);
	if (!ret) {
		/* only the extents this transaction wrote to */
		uint32_t mask = 0;

		for (unsigned i = 0; i < tx->n; i++)
			mask |= 1u << tx->b[i].ext;
		ret = fs_flush_mask(v, mask);
	}
	if (ret) {
		/* The journal holds it; the in-place copy may be partial.  No
		 * lock it was made under may move on before a replay: not the
		 * deferred ones released below, nor the directory and file
		 * locks the caller releases after us.  Give the volume up with
		 * every lock kept; another host replays (the versions still
		 * match). */
		char why[160];

		snprintf(why, sizeof(why), "transaction %llu committed but "
			 "not written in place (%s)", (unsigned long long)j->seq,
			 fs_strerror(ret));
		keep = true;
		j->head += tx->n + 2;
		j->seq++;
		pthread_mutex_unlock(&j->lock);
		fs_vol_abandon(v, why);
		goto done;
	}
	j->head += tx->n + 2;
	j->seq++;
	j->commits++;
unlock:
	pthread_mutex_unlock(&j->lock);
done:
	/* outside the journal lock, inside the cluster locks */
	if (!ret && tx->ndisc)
		discard_freed(tx);
	release_deferred(tx, keep, !ret);
	/* committed: what it unmapped in clusters it could not wait for */
	if (!ret && tx->ndfree)
		fs_free_deferred(v, tx->dfree, tx->ndfree);
	free(buf);
	tx_free(tx);
	return ret;
}

/* ---- replay ------------------------------------------------------------------- */

static int lock_version_matches(struct fs_vol *v, const struct fs_jlock *l,
				bool *match)
{
	unsigned char *b = fs_balloc(v->ss);
	struct lk_lockrec r;
	int ret;

	*match = false;
	if (!b)
		return -ENOMEM;
	ret = fs_read(v, l->extent, l->off, b, v->ss);
	if (!ret) {
		if (lk_lockrec_in(b, &r) == 0 && r.version == l->version)
			*match = true;
	}
	free(b);
	return ret;
}

/* A transaction found in a journal being replayed. */
struct rtx {
	uint32_t pos, nblocks;
	uint64_t seq;
	bool replay;
	unsigned nl;
	struct fs_jlock l[FS_JD_MAX_LOCKS];
};

/* Whether every lock tx was made under still shows its version. */
static int may_replay(struct fs_vol *v, const struct rtx *tx, bool *all)
{
	int ret = 0;

	*all = true;
	for (unsigned i = 0; i < tx->nl && *all && !ret; i++)
		ret = lock_version_matches(v, &tx->l[i], all);
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
		ret = may_replay(v, sb_tx, &all);
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
	struct fs_jd last;           /* the newest transaction's descriptor */
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
		txs[ntx].nl = d.nlocks;
		memcpy(txs[ntx].l, d.l, d.nlocks * sizeof(d.l[0]));
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
		expect++;
	}
	if (max_ext >= __atomic_load_n(&v->next, __ATOMIC_ACQUIRE)) {
		/* the superblock first only if the newest transaction writes
		 * it: an older one's is in place */
		ret = replay_geometry(v, slot, base,
				      sb_tx != SIZE_MAX && sb_tx + 1 == ntx ?
				      &txs[sb_tx] : NULL, max_ext, data, dry);
		if (ret)
			goto out;
	}
	/*
	 * Only the newest transaction can be incomplete in place: commits
	 * are serialised per host, and each one's images are written in
	 * place and flushed before the next is written to the journal.
	 * Every older one is in place, and writing its images again could
	 * take a block back in time: one it freed, or wrote before another
	 * freed it, may hold file data since (the journal never sees data
	 * writes), under locks it still lists at the same version (a
	 * directory or cluster lock kept held, a file held open for long).
	 * The newest is replayed if every lock it lists still shows its
	 * version (otherwise its owner released one, which it does only
	 * once the transaction is in place).
	 */
	for (size_t k = 0; k < ntx; k++) {
		if (k + 1 == ntx) {
			ret = may_replay(v, &txs[k], &txs[k].replay);
			if (ret)
				goto out;
		} else {
			txs[k].replay = false;
		}
		if (txs[k].replay)
			n_applied++;
		else
			n_skipped++;
	}
	/* pass 2: the newest transaction's images, if it may be replayed */
	if (ntx && !dry && txs[ntx - 1].replay) {
		ret = fs_read(v, 0, base + (uint64_t)txs[ntx - 1].pos * FS_BLOCK,
			      data, (size_t)(txs[ntx - 1].nblocks + 1) * FS_BLOCK);
		if (!ret)
			ret = fs_jd_in(data, &last);
		for (unsigned i = 0; !ret && i < last.nblocks; i++)
			ret = fs_write(v, last.t[i].extent, last.t[i].off,
				       data + (size_t)(i + 1) * FS_BLOCK, FS_BLOCK);
		if (!ret)
			ret = fs_flush_all(v);
		/* what it freed goes back to the LUN, as a live host's
		 * commit would have done (docs/FORMAT.md "Journal") */
		for (unsigned i = 0; !ret && i < last.nblocks; i++)
			if (fb_cluster_header(v, last.t[i].extent, last.t[i].off))
				discard_cluster_free(v, last.t[i].extent,
						     last.t[i].off);
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
	free(b);
	free(data);
	return ret;
}
