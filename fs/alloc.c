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
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/fs_int.h"

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

static int read_header(struct fs_tx *tx, unsigned ext, unsigned area,
		       uint32_t c, struct fs_rc *rc, bool via_tx)
{
	struct fs_vol *v = fs_tx_vol(tx);
	unsigned char *b = fs_balloc(FS_BLOCK);
	uint64_t off;
	int ret;

	if (!b)
		return -ENOMEM;
	off = fs_cluster_off(v, ext, area, c) + FS_BLOCK;
	ret = via_tx ? fs_tx_get(tx, ext, off, b) : fs_read(v, ext, off, b, FS_BLOCK);
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
	lk_lock *l;
	int ret;

	if (fs_tx_has_lock(tx, ext, off))
		return 0;
	ret = fs_cluster_take(v, ext, off, local_ms);
	if (ret)
		return ret;
	ret = lk_lock_open_on(v->lk, v->ext[ext].lun, off, &l);
	if (ret)
		goto drop;
	ret = lk_acquire(l, LK_EXCL, timeout_ms);
	if (ret) {
		lk_lock_close(l);
		goto drop;
	}
	ret = fs_tx_defer_cluster(tx, ext, l);
	if (ret) {
		lk_lock_close(l);
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
			r = read_header(tx, ext, area, c, &rc, true);
			if (r) {
				ret = r;
				goto out;
			}
			if (rc.nfree < (spare ? 2u : 1u))
				continue;
			r = lock_cluster(tx, v, ext, area, c,
					 pass ? wait_ms : 0);
			if (r == -EBUSY || r == -ETIMEDOUT)
				continue;
			if (r) {
				ret = r;
				goto out;
			}
			/* fresh, under the lock */
			r = read_header(tx, ext, area, c, &rc, true);
			if (r) {
				ret = r;
				goto out;
			}
			if (spare && n > rc.nfree / 2)
				n = rc.nfree / 2;
			for (unsigned bit = 0; bit < rc.nres && got < n; bit++) {
				if (rc.bitmap[bit / 8] & (1u << (bit % 8)))
					continue;
				rc.bitmap[bit / 8] |= (uint8_t)(1u << (bit % 8));
				rc.nfree--;
				out[got] = type_addr(v, t, ext, &rc, bit);
				/* freed earlier in this transaction: in use
				 * again, not to be discarded */
				if (t == FS_R_FB)
					fs_tx_undiscard(tx, out[got]);
				got++;
			}
			r = put_header(tx, v, ext, area, &rc);
			if (r) {
				ret = r;
				goto out;
			}
			if (rc.nfree) {
				pthread_mutex_lock(&v->lock);
				v->alloc_cursor[t] = (uint32_t)g;
				pthread_mutex_unlock(&v->lock);
			} else {
				pthread_mutex_lock(&v->lock);
				v->alloc_cursor[t] = (uint32_t)((g + 1) % total);
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

int fs_alloc(struct fs_tx *tx, enum fs_rtype t, unsigned n, uint64_t *out)
{
	unsigned got;
	int ret = alloc_res(tx, t, n, out, 2, &got);

	if (!ret && got < n && t != FS_R_SB)
		log_enospc(fs_tx_vol(tx), t);
	return ret ? ret : got == n ? 0 : -ENOSPC;
}

int fs_alloc_upto(struct fs_tx *tx, enum fs_rtype t, unsigned n,
		  uint64_t *out, unsigned *got)
{
	return alloc_res(tx, t, n, out, 0, got);
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
	ret = read_header(tx, ext, area, c, &rc, true);
	if (ret)
		return ret;
	if (!(rc.bitmap[bit / 8] & (1u << (bit % 8)))) {
		fs_log(v, "freeing a free resource %llx (cluster %u bit %u)",
		       (unsigned long long)a, c, bit);
		return -FS_E_CORRUPT;
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
