/*
 * alloc.c - resource allocation in resource clusters.
 *
 * Each resource type (FD, PB, SB, FB) on each extent is divided into
 * clusters with their own lock and bitmap.  A host allocates under one
 * cluster's lock, starting from a cluster derived from its heartbeat slot
 * (affinity), so hosts allocating at the same time work in different
 * clusters instead of queueing on one lock.  The bitmap change joins the
 * caller's transaction; the cluster lock is released once it is in place.
 *
 * A cluster header read without its lock only steers the search (is there
 * anything free?); the decision is made on the header re-read under the
 * lock.
 *
 * The handles of the cluster locks used last stay open (v->ccache) with
 * the header as our last transaction under the lock left it.  Taking the
 * lock again is then one compare-and-write (the lock manager compares
 * against the record as it left it), and when nobody else held the lock
 * in between (lk_cache_valid) the cached header is the one on disk: the
 * re-read under the lock is skipped.  A cached header also steers without
 * a read when it shows room; one that shows none is read again (another
 * host may have freed there).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/fs_int.h"
#include "lockmgr/ondisk.h"

/* Clusters of `area` over all extents, numbered globally. */
static uint64_t total_clusters(struct fs_vol *v, unsigned area)
{
	uint64_t n = 0;

	for (unsigned e = 0; e < v->sb.nextents; e++)
		n += v->sb.ext[e].area[area].clusters;
	return n;
}

static void split_global(struct fs_vol *v, unsigned area, uint64_t g,
			 unsigned *ext, uint32_t *c)
{
	for (unsigned e = 0; e < v->sb.nextents; e++) {
		if (g < v->sb.ext[e].area[area].clusters) {
			*ext = e;
			*c = (uint32_t)g;
			return;
		}
		g -= v->sb.ext[e].area[area].clusters;
	}
	*ext = 0;
	*c = 0;
}

/* under v->lock */
static struct fs_ccache *cc_find(struct fs_vol *v, unsigned ext, uint64_t off)
{
	for (unsigned i = 0; i < FS_CCACHE; i++)
		if (v->ccache[i].l && v->ccache[i].ext == ext &&
		    v->ccache[i].off == off)
			return &v->ccache[i];
	return NULL;
}

/* under v->lock: a transaction of ours has the cluster (fs_cluster_take) */
static bool cc_busy(struct fs_vol *v, unsigned ext, uint64_t off)
{
	for (unsigned i = 0; i < v->nclus; i++)
		if (v->clus[i].ext == ext && v->clus[i].off == off)
			return true;
	return false;
}

/*
 * The handle of cluster lock (ext, off), which the caller has taken
 * (fs_cluster_take): 0 cached (kept open after the transaction), 1 opened
 * for this transaction only (every entry busy: the caller closes it), or
 * an error.  An entry evicted for it is one no transaction of ours holds.
 */
static int cc_get(struct fs_vol *v, unsigned ext, uint64_t off, lk_lock **out)
{
	struct fs_ccache *e, *victim = NULL;
	lk_lock *l, *old;
	int ret;

	pthread_mutex_lock(&v->lock);
	e = cc_find(v, ext, off);
	if (e) {
		e->used = ++v->ccache_tick;
		*out = e->l;
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
	pthread_mutex_unlock(&v->lock);
	ret = lk_lock_open_on(v->lk, v->ext[ext].lun, off, &l);
	if (ret)
		return ret;
	*out = l;
	pthread_mutex_lock(&v->lock);
	for (unsigned i = 0; i < FS_CCACHE; i++) {
		e = &v->ccache[i];
		if (!e->l) {
			victim = e;
			break;
		}
		/* not one a transaction of ours has; one we keep held
		 * only if every other is (closing it releases it) */
		if (!cc_busy(v, e->ext, e->off) &&
		    (!victim || (victim->keep.kept && !e->keep.kept) ||
		     (victim->keep.kept == e->keep.kept &&
		      e->used < victim->used)))
			victim = e;
	}
	if (!victim) {
		pthread_mutex_unlock(&v->lock);
		return 1;
	}
	old = victim->l;
	victim->l = l;
	victim->ext = ext;
	victim->off = off;
	victim->used = ++v->ccache_tick;
	victim->hdr_ok = victim->fresh = false;
	victim->pf_bits = 0;
	victim->keep = (struct fs_keep){ 0 };
	pthread_mutex_unlock(&v->lock);
	lk_lock_close(old);           /* no transaction has it; a kept hold
				       * (every transaction under it in
				       * place) is released */
	return 0;
}

/* under v->lock: the entry of handle l, if cached */
static struct fs_ccache *cc_of(struct fs_vol *v, const lk_lock *l)
{
	for (unsigned i = 0; i < FS_CCACHE; i++)
		if (v->ccache[i].l == l)
			return &v->ccache[i];
	return NULL;
}

/* Right after our acquire of a cached cluster lock. */
static void cc_acquired(struct fs_vol *v, lk_lock *l)
{
	bool valid = lk_cache_valid(l), waited = lk_waited(l);
	struct fs_ccache *e;

	pthread_mutex_lock(&v->lock);
	if ((e = cc_of(v, l))) {
		e->fresh = valid && e->hdr_ok;
		if (!valid)
			e->pf_bits = 0;   /* another host may have allocated */
		fs_keep_acquired(&e->keep, waited, valid, fs_mono_ns(), false);
	}
	pthread_mutex_unlock(&v->lock);
}

/*
 * A cached cluster lock our transaction just took (fs_cluster_take): true
 * if we kept it held since our last transaction under it and the lock
 * manager still has it; the cached header is then the one on disk.
 */
static bool cc_kept_reuse(struct fs_vol *v, lk_lock *l)
{
	struct fs_ccache *e;
	bool kept;

	pthread_mutex_lock(&v->lock);
	kept = (e = cc_of(v, l)) && e->keep.kept;
	pthread_mutex_unlock(&v->lock);
	if (!kept)
		return false;
	/* the entry is ours (taken): the keeper leaves it alone */
	kept = lk_check(l) == 0;
	pthread_mutex_lock(&v->lock);
	if ((e = cc_of(v, l))) {
		e->fresh = kept && e->hdr_ok;
		if (!kept) {
			e->keep.kept = false;   /* lost: acquire afresh */
			e->pf_bits = 0;
		}
	}
	pthread_mutex_unlock(&v->lock);
	return kept;
}

bool fs_cluster_keep(struct fs_vol *v, lk_lock *l)
{
	struct fs_ccache *e;
	bool keep = false;

	pthread_mutex_lock(&v->lock);
	if ((e = cc_of(v, l))) {
		keep = fs_keep_policy(v, &e->keep, fs_mono_ns(), false);
		e->keep.kept = keep;
		if (keep)
			pthread_cond_signal(&v->keep_cond);
	}
	pthread_mutex_unlock(&v->lock);
	return keep;
}

void fs_cluster_unkeep(struct fs_vol *v, lk_lock *l)
{
	struct fs_ccache *e;

	pthread_mutex_lock(&v->lock);
	if ((e = cc_of(v, l))) {
		e->keep.kept = false;
		e->keep.released = fs_mono_ns();
	}
	pthread_mutex_unlock(&v->lock);
}

bool fs_cluster_keep_any(struct fs_vol *v)
{
	for (unsigned i = 0; i < FS_CCACHE; i++)
		if (v->ccache[i].l && v->ccache[i].keep.kept)
			return true;
	return false;
}

void fs_cluster_keep_expire(struct fs_vol *v, uint64_t now, bool force)
{
	for (unsigned i = 0; i < FS_CCACHE; i++) {
		struct fs_ccache *e = &v->ccache[i];
		struct fs_keep k;
		unsigned ext;
		uint64_t off;
		lk_lock *l;
		int r;

		pthread_mutex_lock(&v->lock);
		l = e->l;
		ext = e->ext;
		off = e->off;
		r = l && e->keep.kept && !cc_busy(v, ext, off);
		pthread_mutex_unlock(&v->lock);
		/* as a transaction would take it: none of ours uses it
		 * while we release it */
		if (!r || fs_cluster_take(v, ext, off, 0))
			continue;
		/* ours now (taken): keep changes only under v->lock, and
		 * the record is read outside it */
		pthread_mutex_lock(&v->lock);
		r = e->l == l && e->keep.kept;
		k = e->keep;
		pthread_mutex_unlock(&v->lock);
		if (r && fs_keep_due(&k, l, now, force, false)) {
			pthread_mutex_lock(&v->lock);
			if (e->l == l) {
				e->keep = k;
				e->keep.kept = false;
				e->keep.released = now;
			}
			pthread_mutex_unlock(&v->lock);
		} else {
			if (r) {
				pthread_mutex_lock(&v->lock);
				if (e->l == l)
					e->keep.checked = k.checked;
				pthread_mutex_unlock(&v->lock);
			}
			r = 0;
		}
		if (r) {
			/* every transaction under it is in place; the cached
			 * header stays (judged at our next acquire) */
			r = lk_release(l);
			if (r && r != -LK_E_NOTHELD &&
			    !__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE))
				fs_log(v, "releasing cluster lock at %llu: %s",
				       (unsigned long long)off, fs_strerror(r));
			/* another host waited for it: not kept a while */
			if (!r && lk_release_wanted(l)) {
				pthread_mutex_lock(&v->lock);
				if (e->l == l)
					fs_keep_contended(&e->keep, now, false);
				pthread_mutex_unlock(&v->lock);
			}
		}
		fs_cluster_drop(v, ext, off);
	}
}

void fs_cluster_done(struct fs_vol *v, lk_lock *l, const void *hdr, bool ok)
{
	struct fs_ccache *e;

	pthread_mutex_lock(&v->lock);
	if ((e = cc_of(v, l))) {
		if (ok && hdr) {
			memcpy(e->hdr, hdr, FS_BLOCK);
			e->hdr_ok = true;
		} else {
			/* unchanged by us: still current only if it was at
			 * our acquire */
			e->hdr_ok = ok && e->fresh;
		}
		e->fresh = false;
	}
	pthread_mutex_unlock(&v->lock);
}

void fs_cluster_forget(struct fs_vol *v, lk_lock *l)
{
	struct fs_ccache *e;

	pthread_mutex_lock(&v->lock);
	if ((e = cc_of(v, l))) {
		e->l = NULL;
		e->hdr_ok = e->fresh = false;
		e->keep = (struct fs_keep){ 0 };
		e->pf_bits = 0;
	}
	pthread_mutex_unlock(&v->lock);
}

void fs_ccache_clear(struct fs_vol *v)
{
	for (unsigned i = 0; i < FS_CCACHE; i++) {
		lk_lock *l;

		pthread_mutex_lock(&v->lock);
		l = v->ccache[i].l;
		v->ccache[i].l = NULL;
		v->ccache[i].hdr_ok = v->ccache[i].fresh = false;
		v->ccache[i].keep = (struct fs_keep){ 0 };
		free(v->ccache[i].pf);
		v->ccache[i].pf = NULL;
		v->ccache[i].pf_bits = 0;
		pthread_mutex_unlock(&v->lock);
		lk_lock_close(l);
	}
}

/*
 * Read the header of cluster c: as the transaction leaves it if it has it;
 * else how = RH_LOCKED (under the cluster lock): the cached copy if nobody
 * else held the lock since our last transaction under it, else the disk;
 * RH_STEER (no lock): the cached copy if it shows at least need free,
 * else the disk.
 */
enum rh_how { RH_STEER, RH_LOCKED };

static bool cc_header(struct fs_vol *v, unsigned ext, uint64_t slot,
		      enum rh_how how, unsigned need, unsigned char *b)
{
	struct fs_ccache *e;
	bool use = false;

	pthread_mutex_lock(&v->lock);
	e = cc_find(v, ext, slot);
	if (e && (how == RH_LOCKED ? e->fresh : e->hdr_ok)) {
		struct fs_rc rc;

		use = how == RH_LOCKED ||
		      (fs_rc_in(e->hdr, &rc) == 0 && rc.nfree >= need);
		if (use)
			memcpy(b, e->hdr, FS_BLOCK);
	}
	pthread_mutex_unlock(&v->lock);
	return use;
}

static int read_header(struct fs_tx *tx, unsigned ext, unsigned area,
		       uint32_t c, struct fs_rc *rc, enum rh_how how,
		       unsigned need)
{
	struct fs_vol *v = fs_tx_vol(tx);
	unsigned char *b = fs_balloc(FS_BLOCK);
	uint64_t slot = fs_cluster_off(v, ext, area, c), off = slot + FS_BLOCK;
	int ret = 0;

	if (!b)
		return -ENOMEM;
	if (!fs_tx_peek(tx, ext, off, b) && !cc_header(v, ext, slot, how, need, b))
		ret = fs_read(v, ext, off, b, FS_BLOCK);
	if (!ret) {
		ret = fs_rc_in(b, rc);
		if (ret)
			ret = fs_bad_meta(v, ret, "resource cluster header", ext, off);
		else if (rc->cluster != c || rc->extent != ext)
			ret = fs_bad_meta(v, -FS_E_CORRUPT,
					  "misplaced resource cluster header", ext, off);
	}
	free(b);
	return ret;
}

static int put_header(struct fs_tx *tx, struct fs_vol *v, unsigned ext,
		      unsigned area, const struct fs_rc *rc)
{
	unsigned char *b = fs_balloc(FS_BLOCK);
	int ret;

	if (!b)
		return -ENOMEM;
	fs_rc_out(rc, b);
	ret = fs_tx_put(tx, ext, fs_cluster_off(v, ext, area, rc->cluster) + FS_BLOCK, b);
	free(b);
	return ret;
}

int fs_cluster_take(struct fs_vol *v, unsigned ext, uint64_t off,
		    unsigned timeout_ms)
{
	struct timespec dl;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&v->lock);
	for (;;) {
		bool busy = false;

		for (unsigned i = 0; i < v->nclus && !busy; i++)
			busy = v->clus[i].ext == ext && v->clus[i].off == off;
		if (!busy)
			break;
		if (!timeout_ms) {
			ret = -EBUSY;
			goto unlock;
		}
		if (pthread_cond_timedwait(&v->clus_cond, &v->lock, &dl) ==
		    ETIMEDOUT) {
			ret = -ETIMEDOUT;
			goto unlock;
		}
	}
	if (v->nclus == v->capclus) {
		unsigned cap = v->capclus ? 2 * v->capclus : 16;
		struct fs_clus *c = realloc(v->clus, cap * sizeof(*c));

		if (!c) {
			ret = -ENOMEM;
			goto unlock;
		}
		v->clus = c;
		v->capclus = cap;
	}
	v->clus[v->nclus].ext = ext;
	v->clus[v->nclus].off = off;
	v->nclus++;
unlock:
	pthread_mutex_unlock(&v->lock);
	return ret;
}

void fs_cluster_drop(struct fs_vol *v, unsigned ext, uint64_t off)
{
	pthread_mutex_lock(&v->lock);
	for (unsigned i = 0; i < v->nclus; i++) {
		if (v->clus[i].ext == ext && v->clus[i].off == off) {
			v->clus[i] = v->clus[--v->nclus];
			pthread_cond_broadcast(&v->clus_cond);
			break;
		}
	}
	pthread_mutex_unlock(&v->lock);
}

/* Lock cluster c of area on ext for the transaction (once per tx): first
 * among this host's transactions, then on disk. */
static int lock_cluster_wait(struct fs_tx *tx, struct fs_vol *v, unsigned ext,
			     unsigned area, uint32_t c, unsigned local_ms,
			     unsigned timeout_ms)
{
	uint64_t off = fs_cluster_off(v, ext, area, c);
	lk_lock *l = NULL;
	int ret, own;

	if (fs_tx_has_lock(tx, ext, off))
		return 0;
	ret = fs_cluster_take(v, ext, off, local_ms);
	if (ret)
		return ret;
	own = cc_get(v, ext, off, &l);
	if (own < 0) {
		ret = own;
		goto drop;
	}
	if (!own && cc_kept_reuse(v, l)) {
		ret = 0;                /* held since our last transaction */
	} else {
		ret = lk_acquire(l, LK_EXCL, timeout_ms);
		if (ret) {
			if (own)
				lk_lock_close(l);
			goto drop;
		}
		if (!own)
			cc_acquired(v, l);
	}
	ret = fs_tx_defer_cluster(tx, ext, l, own);
	if (ret) {
		if (own) {
			lk_lock_close(l);    /* releases it */
		} else {
			int r = lk_release(l);

			fs_cluster_done(v, l, NULL, false);
			fs_cluster_unkeep(v, l);
			if (r)
				fs_log(v, "releasing cluster lock at %llu: %s",
				       (unsigned long long)off, fs_strerror(r));
		}
		goto drop;
	}
	return 0;
drop:
	fs_cluster_drop(v, ext, off);
	return ret;
}

static int lock_cluster(struct fs_tx *tx, struct fs_vol *v, unsigned ext,
			unsigned area, uint32_t c, unsigned timeout_ms)
{
	return lock_cluster_wait(tx, v, ext, area, c, timeout_ms, timeout_ms);
}

/* Resources that may hold file data (file blocks, sub-blocks): freed, they
 * wait out the quarantine. */
static bool quarantine(enum fs_rtype t)
{
	return t == FS_R_FB || t == FS_R_SB;
}

static uint64_t type_addr(struct fs_vol *v, enum fs_rtype t, unsigned ext,
			  const struct fs_rc *rc, unsigned bit)
{
	/* per_cluster of the area, not rc->nres: the last cluster of an
	 * area may be partial */
	uint32_t pc = v->sb.ext[ext].area[fs_area_of(t)].per_cluster;

	return fs_addr(t, ext, (uint64_t)rc->cluster * pc + bit);
}

/* Allocate up to n resources of type t into out (*got of them); passes 2
 * waits for clusters other hosts hold, 1 takes only what is free now, 0
 * only from the cluster at the cursor, and at most half of what it has
 * free (so that allocating ahead never takes a volume's last free blocks
 * from other writers). */
static int alloc_res(struct fs_tx *tx, enum fs_rtype t, unsigned n,
		     uint64_t *out, int passes, unsigned *gotp)
{
	bool spare = passes == 0;

	struct fs_vol *v = fs_tx_vol(tx);
	unsigned area = fs_area_of(t);
	uint64_t total = total_clusters(v, area), start;
	struct fs_rc rc;
	struct lk_vol_info li;
	unsigned got = 0, wait_ms;
	bool ours_busy = false;
	int ret = 0;

	*gotp = 0;
	if (n == 0 || n > 64)
		return -EINVAL;
	if (v->rdonly || !v->lk)
		return -EROFS;
	lk_get_info(v->lk, &li);
	wait_ms = li.dead_ms + 2 * li.interval_ms + 1000;
	pthread_mutex_lock(&v->lock);
	start = v->alloc_cursor[t];
	pthread_mutex_unlock(&v->lock);
	/* Two passes: first skip clusters busy with other hosts, then wait
	 * for them if nothing else had room, long enough for a dead holder
	 * to be recovered. */
	if (spare)
		passes = 1;
	for (int pass = 0; pass < passes && got < n; pass++) {
		for (uint64_t k = 0; k < (spare ? 1 : total) && got < n; k++) {
			uint64_t g = (start + k) % total;
			unsigned ext;
			uint32_t c;
			int r;

			split_global(v, area, g, &ext, &c);
			r = read_header(tx, ext, area, c, &rc, RH_STEER,
					spare ? 2u : 1u);
			if (r) {
				ret = r;
				goto out;
			}
			if (rc.nfree < (spare ? 2u : 1u))
				continue;
			r = lock_cluster(tx, v, ext, area, c,
					 pass ? wait_ms : 0);
			if (r == -EBUSY || r == -ETIMEDOUT) {
				/* another transaction of ours has it for a
				 * moment: take from the next cluster now but
				 * leave the cursor here, or one host's
				 * concurrent writers would move every later
				 * allocation past this cluster's free space */
				pthread_mutex_lock(&v->lock);
				ours_busy |= cc_busy(v, ext,
					fs_cluster_off(v, ext, area, c));
				pthread_mutex_unlock(&v->lock);
				continue;
			}
			if (r) {
				ret = r;
				goto out;
			}
			/* fresh, under the lock */
			r = read_header(tx, ext, area, c, &rc, RH_LOCKED, 0);
			if (r) {
				ret = r;
				goto out;
			}
			if (spare && n > rc.nfree / 2)
				n = rc.nfree / 2;
			for (unsigned bit = 0; bit < rc.nres && got < n; bit++) {
				uint64_t a;

				if (rc.bitmap[bit / 8] & (1u << (bit % 8)))
					continue;
				a = type_addr(v, t, ext, &rc, bit);
				/* freed by a transaction not checkpointed yet,
				 * or by this one: not for file data before
				 * (docs/FORMAT.md "Journal", quarantine) */
				if (quarantine(t) && (fs_tx_freed(tx, a) ||
						      fs_quarantined(v, a)))
					continue;
				rc.bitmap[bit / 8] |= (uint8_t)(1u << (bit % 8));
				rc.nfree--;
				out[got] = a;
				got++;
			}
			r = put_header(tx, v, ext, area, &rc);
			if (r) {
				ret = r;
				goto out;
			}
			if (!ours_busy) {
				pthread_mutex_lock(&v->lock);
				v->alloc_cursor[t] = (uint32_t)(rc.nfree ? g
							: (g + 1) % total);
				pthread_mutex_unlock(&v->lock);
			}
		}
	}
out:
	*gotp = got;
	return ret;
}

/* A volume out of a resource says which, once a minute: ENOSPC alone
 * does not tell an admin that a volume with free blocks has no file
 * descriptors left (mkfs.vmfs -i sets how many). */
static void log_enospc(struct fs_vol *v, enum fs_rtype t)
{
	static const char *const what[FS_R_TYPES] = {
		[FS_R_FB] = "file blocks", [FS_R_SB] = "sub-blocks",
		[FS_R_PB] = "pointer blocks", [FS_R_FD] = "file descriptors",
	};
	uint64_t now = fs_now_ns();
	bool say;

	pthread_mutex_lock(&v->lock);
	say = !v->enospc_logged[t] ||
	      now - v->enospc_logged[t] >= 60ull * 1000000000;
	if (say)
		v->enospc_logged[t] = now;
	pthread_mutex_unlock(&v->lock);
	if (say)
		fs_log(v, "out of %s: no free one in any resource cluster%s",
		       what[t] ? what[t] : "resources",
		       t == FS_R_FD ? " (mkfs.vmfs -i sets how many)" : "");
}

/* Whether the lock sector of a slot shows no holder (or was never
 * written): one another host cannot be using. */
static bool slot_lock_free(const unsigned char *slot)
{
	struct lk_lockrec r;

	return lk_lockrec_in(slot, &r) != 0 || r.mode == LK_FREE;
}

int fs_fd_slot_read(struct fs_tx *tx, uint64_t a, void *slot)
{
	struct fs_vol *v = fs_tx_vol(tx);
	unsigned ext = fs_addr_ext(a);
	uint32_t pc = v->sb.ext[ext].area[FS_A_FD].per_cluster;
	uint64_t idx = fs_addr_index(a);
	uint32_t c = (uint32_t)(idx / pc), i = (uint32_t)(idx % pc), n;
	uint64_t coff = fs_cluster_off(v, ext, FS_A_FD, c), bits = 0;
	unsigned char *buf;
	struct fs_ccache *e;
	struct fs_rc rc;
	int ret;

	pthread_mutex_lock(&v->lock);
	e = cc_find(v, ext, coff);
	if (e && e->pf && i >= e->pf_first && i < e->pf_first + 64 &&
	    (e->pf_bits >> (i - e->pf_first) & 1)) {
		memcpy(slot, e->pf + (size_t)(i - e->pf_first) * FS_SLOT,
		       FS_SLOT);
		e->pf_bits &= ~(1ull << (i - e->pf_first));
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
	pthread_mutex_unlock(&v->lock);
	/* the slots after it that are free in the cluster as this
	 * transaction sees it (it holds the lock: nobody else allocates
	 * there, and only the holder writes a free slot) */
	n = pc - i < FS_FD_PREFETCH ? pc - i : FS_FD_PREFETCH;
	if (!e || n < 2 || !fs_tx_has_lock(tx, ext, coff) ||
	    read_header(tx, ext, FS_A_FD, c, &rc, RH_LOCKED, 0))
		return fs_read(v, ext, fs_res_off(v, a), slot, FS_SLOT);
	buf = fs_balloc((size_t)n * FS_SLOT);
	if (!buf)
		return fs_read(v, ext, fs_res_off(v, a), slot, FS_SLOT);
	ret = fs_read(v, ext, fs_res_off(v, a), buf, (size_t)n * FS_SLOT);
	if (ret) {
		free(buf);
		return ret;
	}
	memcpy(slot, buf, FS_SLOT);
	for (uint32_t k = 1; k < n && i + k < rc.nres; k++)
		if (!(rc.bitmap[(i + k) / 8] & (1u << ((i + k) % 8))) &&
		    slot_lock_free(buf + (size_t)k * FS_SLOT))
			bits |= 1ull << k;
	pthread_mutex_lock(&v->lock);
	/* the entry is this transaction's (taken): still the cluster's */
	e = cc_find(v, ext, coff);
	if (e) {
		free(e->pf);
		e->pf = buf;
		e->pf_first = i;
		e->pf_bits = bits;
		buf = NULL;
	}
	pthread_mutex_unlock(&v->lock);
	free(buf);
	return 0;
}

int fs_alloc(struct fs_tx *tx, enum fs_rtype t, unsigned n, uint64_t *out)
{
	unsigned got, more;
	int ret = alloc_res(tx, t, n, out, 2, &got);

	/* short only for blocks in quarantine: once the checkpoint passes
	 * them they are free to take */
	if (!ret && got < n && quarantine(t) &&
	    fs_quarantine_any(fs_tx_vol(tx)) &&
	    fs_journal_wait(fs_tx_vol(tx), true) == 0) {
		ret = alloc_res(tx, t, n - got, out + got, 2, &more);
		got += more;
	}

	if (!ret && got < n && t != FS_R_SB)
		log_enospc(fs_tx_vol(tx), t);
	return ret ? ret : got == n ? 0 : -ENOSPC;
}

int fs_alloc_upto(struct fs_tx *tx, enum fs_rtype t, unsigned n,
		  uint64_t *out, unsigned *got)
{
	int ret = alloc_res(tx, t, n, out, 0, got);

	/* none but for the quarantine: as fs_alloc */
	if (!ret && !*got && n && quarantine(t) &&
	    fs_quarantine_any(fs_tx_vol(tx)) &&
	    fs_journal_wait(fs_tx_vol(tx), true) == 0)
		ret = alloc_res(tx, t, n, out, 0, got);
	return ret;
}

static int cmp_cluster(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

void fs_free_deferred(struct fs_vol *v, uint64_t *a, unsigned n)
{
	/* addresses sort by type, extent, index: a cluster's are adjacent */
	qsort(a, n, sizeof(*a), cmp_cluster);
	for (unsigned i = 0; i < n;) {
		enum fs_rtype t = fs_addr_type(a[i]);
		uint32_t pc = v->sb.ext[fs_addr_ext(a[i])].area[fs_area_of(t)].per_cluster;
		uint64_t c = fs_addr_index(a[i]) / pc;
		struct fs_tx *tx = fs_tx_begin(v);
		unsigned k = i;
		int ret = tx ? 0 : -ENOMEM;

		/* one cluster per transaction: it waits holding none */
		while (k < n && fs_addr_type(a[k]) == t &&
		       fs_addr_ext(a[k]) == fs_addr_ext(a[i]) &&
		       fs_addr_index(a[k]) / pc == c) {
			if (!ret)
				ret = fs_free(tx, a[k]);
			k++;
		}
		if (tx)
			ret = ret ? (fs_tx_abort(tx), ret) : fs_tx_commit(tx);
		if (ret)
			fs_log(v, "freeing %u resource(s) of cluster %llu after a "
			       "transaction: %s (left allocated; fsck frees "
			       "them)", k - i, (unsigned long long)c,
			       fs_strerror(ret));
		i = k;
	}
}

int fs_free(struct fs_tx *tx, uint64_t a)
{
	struct fs_vol *v = fs_tx_vol(tx);
	enum fs_rtype t = fs_addr_type(a);
	unsigned area = fs_area_of(t), ext = fs_addr_ext(a), bit;
	const struct fs_area *ar;
	uint64_t idx = fs_addr_index(a);
	struct fs_rc rc;
	uint32_t c;
	int ret;

	if (!fs_addr_valid(v, a, t))
		return -EINVAL;
	ar = &v->sb.ext[ext].area[area];
	c = (uint32_t)(idx / ar->per_cluster);
	bit = (unsigned)(idx % ar->per_cluster);
	/* Holding clusters and waiting for one another transaction of ours
	 * holds could close a cycle (two truncates freeing in opposite
	 * orders): free it after the commit instead. */
	if (!fs_tx_has_lock(tx, ext, fs_cluster_off(v, ext, area, c)) &&
	    fs_tx_holds_clusters(tx)) {
		/* only our own transactions make the cycle: another host's
		 * hold is waited for as always */
		ret = lock_cluster_wait(tx, v, ext, area, c, 0, 30000);
		if (ret == -EBUSY && fs_tx_defer_free(tx, a) == 0)
			return 0;
		if (ret && ret != -EBUSY)
			return ret;
	}
	ret = lock_cluster(tx, v, ext, area, c, 30000);
	if (ret)
		return ret;
	ret = read_header(tx, ext, area, c, &rc, RH_LOCKED, 0);
	if (ret)
		return ret;
	if (!(rc.bitmap[bit / 8] & (1u << (bit % 8)))) {
		fs_log(v, "freeing a free resource %llx (cluster %u bit %u)",
		       (unsigned long long)a, c, bit);
		return -FS_E_CORRUPT;
	}
	if (quarantine(t)) {
		ret = fs_tx_note_free(tx, a);
		if (ret)
			return ret;
	}
	rc.bitmap[bit / 8] &= (uint8_t)~(1u << (bit % 8));
	rc.nfree++;
	/* a freed file block goes back to the LUN (punch hole, UNMAP) once
	 * the transaction is in place, while this cluster's lock is held */
	if (t == FS_R_FB)
		fs_tx_discard(tx, a);
	return put_header(tx, v, ext, area, &rc);
}

int fs_count_ext(struct fs_vol *v, uint64_t freec[FS_R_TYPES],
		 uint64_t totalc[FS_R_TYPES], uint64_t *ext_free_fb)
{
	static const enum fs_rtype types[] = { FS_R_FD, FS_R_PB, FS_R_SB, FS_R_FB };
	int ret = 0;

	memset(freec, 0, sizeof(uint64_t) * FS_R_TYPES);
	memset(totalc, 0, sizeof(uint64_t) * FS_R_TYPES);
	for (unsigned ti = 0; ti < 4; ti++) {
		enum fs_rtype t = types[ti];
		unsigned area = fs_area_of(t);

		for (unsigned e = 0; e < v->sb.nextents; e++) {
			const struct fs_area *ar = &v->sb.ext[e].area[area];
			size_t len = (size_t)ar->clusters * FS_SLOT;
			unsigned char *b;

			if (!ar->clusters)
				continue;
			/* all cluster slots of the area in one read */
			b = fs_balloc(len);
			if (!b)
				return -ENOMEM;
			ret = fs_read(v, e, ar->meta_off, b, len);
			for (uint32_t c = 0; !ret && c < ar->clusters; c++) {
				struct fs_rc rc;
				int r = fs_rc_in(b + (size_t)c * FS_SLOT + FS_BLOCK, &rc);

				if (r) {
					ret = fs_bad_meta(v, r, "resource cluster header",
							  e, fs_cluster_off(v, e, area, c) +
							  FS_BLOCK);
					break;
				}
				freec[t] += rc.nfree;
				totalc[t] += rc.nres;
				if (ext_free_fb && t == FS_R_FB)
					ext_free_fb[e] += rc.nfree;
			}
			free(b);
			if (ret)
				return ret;
		}
	}
	return 0;
}

int fs_count(struct fs_vol *v, uint64_t freec[FS_R_TYPES],
	     uint64_t totalc[FS_R_TYPES])
{
	return fs_count_ext(v, freec, totalc, NULL);
}
