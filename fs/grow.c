/*
 * grow.c - growing and spanning a mounted volume (vmkfstools --growfs and
 * -Z), and other hosts taking the new extents in (docs/FORMAT.md, "Growing
 * and spanning a mounted volume").
 *
 * Extent table entries are only ever added: one change = one new entry,
 * published in the superblock by one journal transaction under the volume
 * lock.  In memory, v->ext[n] and v->sb.ext[n] are filled before v->next
 * and v->sb.nextents move past n (release order), so every reader bounded
 * by those sees whole entries without a lock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"

#define MIB (1ull << 20)
#define GEOM_LOCK_MS 15000u

static int fail(char *err, size_t len, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return ret;
}

int fs_candidate_add(struct fs_vol *v, const char *spec)
{
	char **c;

	for (unsigned i = 0; i < v->ncand; i++)
		if (!strcmp(v->cand[i], spec))
			return 0;
	c = realloc(v->cand, (v->ncand + 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	v->cand = c;
	c[v->ncand] = strdup(spec);
	if (!c[v->ncand])
		return -ENOMEM;
	v->ncand++;
	return 0;
}

static int retire(struct fs_vol *v, mp_lun *old)
{
	if (v->nretired == sizeof(v->retired) / sizeof(v->retired[0]))
		return -EMFILE;
	v->retired[v->nretired++] = old;
	return 0;
}

int fs_extent_reopen(struct fs_vol *v, unsigned e)
{
	struct mp_open_opts mo = { .flags = v->open_flags };
	mp_lun *old = v->ext[e].lun, *nl;
	int ret;

	if (v->nretired == sizeof(v->retired) / sizeof(v->retired[0]))
		return -EMFILE;
	ret = mp_lun_open(v->ext[e].spec, &mo, &nl);
	if (ret) {
		fs_log(v, "%s: opening again: %s", v->ext[e].spec, fs_strerror(ret));
		return ret;
	}
	{
		struct mp_lun_info oi, ni;

		mp_lun_get_info(old, &oi);
		mp_lun_get_info(nl, &ni);
		if (ni.capacity <= oi.capacity) {
			/* not grown (yet) as seen from here: keep the handle
			 * we have, so that a refresh asking every interval
			 * does not pile up open handles (iSCSI sessions) */
			mp_lun_close(nl);
			return 0;
		}
	}
	if (v->lk)
		lk_fence_lun_add(v->lk, nl);
	/* I/O in flight on the old handle completes there: it stays open
	 * (same LUN, so both see the same data) until the unmount */
	for (unsigned i = 0; i < FS_MAX_EXTENTS; i++)
		if (v->ext[i].lun == old)
			__atomic_store_n(&v->ext[i].lun, nl, __ATOMIC_RELEASE);
	return retire(v, old);
}

/* Publish entry n (v->ext[n] filled) with geometry g. */
static void publish(struct fs_vol *v, unsigned n, const struct fs_extent_geom *g)
{
	v->sb.ext[n] = *g;
	/* next first: the allocator, bounded by nextents, must not pick a
	 * cluster on n before fs_read / fs_write (bounded by next) take it */
	__atomic_store_n(&v->next, n + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&v->sb.nextents, n + 1, __ATOMIC_RELEASE);
}

/* The capacity of extent e's LUN now (opening it again if it grew past
 * what the handle knows, which is what an open learns). */
static uint64_t lun_capacity(struct fs_vol *v, unsigned e, uint64_t need)
{
	struct mp_lun_info in;

	mp_lun_get_info(v->ext[e].lun, &in);
	if (in.capacity < need && fs_extent_reopen(v, e) == 0)
		mp_lun_get_info(v->ext[e].lun, &in);
	return in.capacity;
}

/* Find extent n among the candidates by its header (tag included: a LUN
 * an interrupted span left behind may carry the same index and size). */
static int find_candidate(struct fs_vol *v, unsigned n, const struct fs_extent_geom *g)
{
	struct mp_open_opts mo = { .flags = v->open_flags };

	for (unsigned i = 0; i < v->ncand; i++) {
		struct fs_ext e;
		mp_lun *lun;

		if (mp_lun_open(v->cand[i], &mo, &lun))
			continue;
		if (fs_read_ext_header(lun, &e) == 0 &&
		    fs_ext_matches(&e, v->sb.uuid, n, g)) {
			v->ext[n].spec = strdup(v->cand[i]);
			v->ext[n].lun = lun;
			v->ext[n].capacity = e.size;
			if (v->lk)
				lk_fence_lun_add(v->lk, lun);
			return 0;
		}
		mp_lun_close(lun);
	}
	return -ENODEV;
}

/* fs_geom_refresh with geom_lock held. */
static int refresh_locked(struct fs_vol *v)
{
	struct fs_sb *nsb = malloc(sizeof(*nsb));
	unsigned had = v->next;
	int ret;

	if (!nsb)
		return -ENOMEM;
	ret = fs_read_sb(v, nsb);
	if (ret || nsb->geom_gen == v->sb.geom_gen)
		goto out;
	if (nsb->nextents < v->next || memcmp(nsb->uuid, v->sb.uuid, 16)) {
		ret = fs_bad_meta(v, -FS_E_CORRUPT, "superblock (fewer extents "
				  "than before)", 0, FS_SB_SLOT + FS_BLOCK);
		goto out;
	}
	for (unsigned n = v->next; n < nsb->nextents; n++) {
		const struct fs_extent_geom *g = &nsb->ext[n];

		if (g->lun_of) {
			unsigned b = g->lun_of - 1;

			if (lun_capacity(v, b, g->size) < g->size) {
				fs_log(v, "extent %u lies on %s up to %llu bytes; "
				       "this host sees it smaller", n,
				       v->ext[b].spec, (unsigned long long)g->size);
				break;
			}
			v->ext[n].lun = v->ext[b].lun;
			v->ext[n].shared = true;
			v->ext[n].spec = strdup(v->ext[b].spec);
		} else if (find_candidate(v, n, g)) {
			if (v->geom_missing != n + 1)
				fs_log(v, "extent %u of volume '%s' was added, but "
				       "none of this host's candidate devices "
				       "(vmfsd --candidate) holds it", n,
				       v->sb.label);
			v->geom_missing = n + 1;
			break;
		}
		publish(v, n, g);
	}
	if (v->next == nsb->nextents) {
		v->sb.incompat = nsb->incompat;
		v->sb.geom_gen = nsb->geom_gen;
		v->geom_missing = 0;
	}
	ret = v->next > had;
	if (ret)
		fs_log(v, "the volume now has %u extent%s (geometry generation "
		       "%llu)", v->next, v->next == 1 ? "" : "s",
		       (unsigned long long)nsb->geom_gen);
out:
	free(nsb);
	return ret;
}

/* The volume whose geom_lock this thread holds in change(): a dead host's
 * recovery run by its lock wait (replay, orphans) may meet an address on
 * an extent we do not know, and must not take geom_lock again (it
 * refreshes under the hold it has: change() reads the superblock again
 * after its lock wait anyway). */
static __thread struct fs_vol *geom_held;

int fs_geom_refresh(struct fs_vol *v)
{
	int ret;

	if (geom_held == v)
		return refresh_locked(v);
	pthread_mutex_lock(&v->geom_lock);
	ret = refresh_locked(v);
	pthread_mutex_unlock(&v->geom_lock);
	return ret;
}

int fs_geom_see(struct fs_vol *v, const uint64_t *addr, unsigned n)
{
	unsigned max = 0;

	for (unsigned i = 0; i < n; i++)
		if (addr[i] && fs_addr_ext(addr[i]) > max)
			max = fs_addr_ext(addr[i]);
	if (max < __atomic_load_n(&v->next, __ATOMIC_ACQUIRE))
		return 0;
	fs_geom_refresh(v);
	if (max < __atomic_load_n(&v->next, __ATOMIC_ACQUIRE))
		return 0;
	fs_log(v, "a file maps blocks on extent %u, which this host does not "
	       "see (vmfsd --candidate)", max);
	return -EIO;
}

/* ---- growing and spanning -------------------------------------------------- */

struct change {
	struct fs_extent_geom g;
	mp_lun *lun;                /* span: the new LUN (ours until published) */
	char *spec;
	unsigned base;              /* grow: the extent whose LUN grew */
};

/* Write the superblock with entry n added, in one transaction under the
 * volume lock l (released after it is in place, or on failure). */
static int commit_sb(struct fs_vol *v, lk_lock *l, unsigned n,
		     const struct fs_extent_geom *g)
{
	struct fs_sb *nsb = malloc(sizeof(*nsb));
	unsigned char *b = fs_balloc(FS_BLOCK);
	struct fs_tx *tx = fs_tx_begin(v);
	int ret = nsb && b && tx ? 0 : -ENOMEM;
	int r = tx ? fs_tx_defer_release(tx, 0, l, true) : -ENOMEM;

	if (r) {
		lk_lock_close(l);   /* not the transaction's to release */
		ret = r;
	}
	if (!ret) {
		*nsb = v->sb;
		nsb->ext[n] = *g;
		nsb->nextents = n + 1;
		nsb->geom_gen++;
		if (g->lun_of)
			nsb->incompat |= FS_INCOMPAT_LUN_SHARED;
		fs_sb_out(nsb, b);
		ret = fs_tx_put(tx, 0, FS_SB_SLOT + FS_BLOCK, b);
	}
	if (tx)
		ret = ret ? (fs_tx_abort(tx), ret) : fs_tx_commit_sync(tx);
	if (!ret) {
		v->sb.incompat = nsb->incompat;
		v->sb.geom_gen = nsb->geom_gen;
	}
	free(nsb);
	free(b);
	return ret;
}

/* Lay out and write the new entry n: a span on c->lun, a grow past the
 * last entry on extent c->base's LUN. */
static int prepare(struct fs_vol *v, unsigned n, struct change *c, bool span,
		   char *err, size_t len)
{
	mp_lun *lun = span ? c->lun : v->ext[c->base].lun;
	uint64_t start = MIB, cap, nfb;
	int ret;

	if (!span) {
		for (unsigned i = 0; i < n; i++)
			if ((i == c->base || v->sb.ext[i].lun_of == c->base + 1) &&
			    v->sb.ext[i].size > start)
				start = v->sb.ext[i].size;
		start = (start + MIB - 1) / MIB * MIB;
		cap = lun_capacity(v, c->base, start + 4 * MIB);
		lun = v->ext[c->base].lun;
	} else {
		struct mp_lun_info in;

		mp_lun_get_info(lun, &in);
		cap = in.capacity;
	}
	ret = fs_layout_further(&c->g, start, cap, v->sb.block_size, &nfb);
	if (ret)
		return fail(err, len, -ENOSPC, span ?
			    "%s: too small for an extent (%llu bytes)" :
			    "%s has not grown enough to add space (%llu bytes, "
			    "the volume uses it up to %llu)", span ? c->spec :
			    v->ext[c->base].spec, (unsigned long long)cap,
			    (unsigned long long)start);
	c->g.lun_of = span ? 0 : c->base + 1;
	/* a span's header and entry share a new tag: a header this span
	 * leaves behind if it is interrupted matches no entry, ever */
	if (span) {
		ret = fs_ext_tag_new(&c->g.tag);
		if (ret)
			return fail(err, len, ret, "a new extent tag: %s",
				    fs_strerror(ret));
	}
	ret = fs_write_areas(lun, &c->g, n, v->sb.uuid, v->sb.sector, nfb, false);
	if (!ret)
		ret = mp_lun_flush(lun);
	if (!ret && span) {
		/* the header only after the areas: a LUN with our header
		 * has its clusters in place */
		struct fs_ext e = { .index = n, .count = n + 1, .size = cap,
				    .tag = c->g.tag };
		unsigned char *b = fs_balloc(FS_BLOCK);
		ssize_t w;

		if (!b)
			return -ENOMEM;
		memcpy(e.uuid, v->sb.uuid, 16);
		snprintf(e.label, sizeof(e.label), "%s", v->sb.label);
		fs_ext_out(&e, b);
		w = mp_lun_pwrite(lun, b, FS_BLOCK, 0, 0);
		free(b);
		ret = w < 0 ? (int)w : mp_lun_flush(lun);
	}
	return ret ? fail(err, len, ret, "writing the new areas: %s",
			  fs_strerror(ret)) : 0;
}

/* Open the span's new LUN and check it may become extent n. */
static int open_new(struct fs_vol *v, const char *spec, struct change *c,
		    char *err, size_t len)
{
	struct mp_open_opts mo = { .flags = v->open_flags };
	struct mp_lun_info in;
	struct fs_ext e;
	int ret;

	for (unsigned i = 0; i < v->next; i++)
		if (!v->ext[i].shared && v->ext[i].spec && !strcmp(v->ext[i].spec, spec))
			return fail(err, len, -EEXIST, "%s is extent %u already",
				    spec, i);
	ret = mp_lun_open(spec, &mo, &c->lun);
	if (ret)
		return fail(err, len, ret, "%s: %s", spec, fs_strerror(ret));
	mp_lun_get_info(c->lun, &in);
	if (in.logical_sector != v->sb.sector) {
		ret = fail(err, len, -EINVAL, "%s has %u-byte sectors, the volume "
			   "%u", spec, in.logical_sector, v->sb.sector);
		goto close;
	}
	ret = fs_read_ext_header(c->lun, &e);
	if (ret == 0) {
		bool ours = !memcmp(e.uuid, v->sb.uuid, 16);

		/* only a header left by an interrupted span of this volume
		 * may be overwritten */
		if (!ours || (e.index < v->next &&
			      fs_ext_matches(&e, v->sb.uuid, e.index,
					     &v->sb.ext[e.index]))) {
			ret = fail(err, len, -EBUSY, "%s holds extent %u of %s "
				   "volume '%s'", spec, e.index, ours ? "this" :
				   "the", e.label);
			goto close;
		}
	}
	c->spec = strdup(spec);
	if (!c->spec) {
		ret = -ENOMEM;
		goto close;
	}
	return 0;
close:
	mp_lun_close(c->lun);
	c->lun = NULL;
	return ret;
}

static int change(struct fs_vol *v, const char *spec, bool span, char *err,
		  size_t len)
{
	struct change c = { 0 };
	lk_lock *l = NULL;
	unsigned n;
	int ret;

	if (v->rdonly || !v->lk)
		return fail(err, len, -EROFS, "a read-only host cannot change "
			    "the volume");
	pthread_mutex_lock(&v->geom_lock);
	geom_held = v;
	/* one change at a time in the cluster: the volume lock, then the
	 * superblock as it is now */
	ret = fs_vol_lock(v, GEOM_LOCK_MS, &l);
	if (ret) {
		l = NULL;
		fail(err, len, ret, "the volume lock: %s", fs_strerror(ret));
		goto unlock;
	}
	ret = refresh_locked(v);
	if (ret < 0) {
		fail(err, len, ret, "reading the superblock: %s", fs_strerror(ret));
		goto release;
	}
	n = v->next;
	if (n != v->sb.nextents) {
		ret = fail(err, len, -ENODEV, "this host does not see every "
			   "extent of the volume yet (%u of %u)", n, v->sb.nextents);
		goto release;
	}
	if (n == FS_MAX_EXTENTS) {
		ret = fail(err, len, -ENOSPC, "the volume has %u extents, the "
			   "most it can", n);
		goto release;
	}
	if (span) {
		ret = open_new(v, spec, &c, err, len);
	} else {
		ret = -ENODEV;
		for (unsigned i = 0; i < n; i++) {
			if (!v->ext[i].shared && (spec ? !strcmp(v->ext[i].spec, spec) : i == 0)) {
				c.base = i;
				ret = 0;
				break;
			}
		}
		if (ret)
			fail(err, len, ret, "%s is no extent of this volume "
			     "(as this host names it)", spec);
	}
	if (!ret)
		ret = prepare(v, n, &c, span, err, len);
	if (ret)
		goto release;
	ret = commit_sb(v, l, n, &c.g);
	l = NULL;                   /* released by the transaction */
	if (ret) {
		fail(err, len, ret, "writing the superblock: %s", fs_strerror(ret));
		goto unlock;
	}
	if (span) {
		v->ext[n].lun = c.lun;
		v->ext[n].spec = c.spec;
		v->ext[n].capacity = c.g.size;
		lk_fence_lun_add(v->lk, c.lun);
		c.lun = NULL;
		c.spec = NULL;
	} else {
		v->ext[n].lun = v->ext[c.base].lun;
		v->ext[n].shared = true;
		v->ext[n].spec = strdup(v->ext[c.base].spec);
	}
	publish(v, n, &c.g);
	fs_log(v, "%s: extent %u added (%llu bytes of file blocks), %u "
	       "extents now", span ? "span" : "grow", n,
	       (unsigned long long)(c.g.area[FS_A_FB].clusters ?
	       (c.g.size - c.g.area[FS_A_FB].res_off) : 0), n + 1);
release:
	if (l)
		fs_vol_unlock(l);
unlock:
	geom_held = NULL;
	pthread_mutex_unlock(&v->geom_lock);
	if (c.lun)
		mp_lun_close(c.lun);
	free(c.spec);
	return ret;
}

int fs_vol_lock(fs_vol *v, unsigned timeout_ms, lk_lock **out)
{
	lk_lock *l;
	int ret;

	if (v->rdonly || !v->lk)
		return -EROFS;
	ret = lk_lock_open_on(v->lk, v->ext[0].lun, FS_SB_SLOT, &l);
	if (ret)
		return ret;
	ret = lk_acquire(l, LK_EXCL, timeout_ms);
	if (ret) {
		lk_lock_close(l);
		return ret;
	}
	*out = l;
	return 0;
}

void fs_vol_unlock(lk_lock *l)
{
	lk_release(l);
	lk_lock_close(l);
}

int fs_vol_span(fs_vol *v, const char *spec, char *err, size_t len)
{
	return change(v, spec, true, err, len);
}

int fs_vol_grow(fs_vol *v, const char *spec, char *err, size_t len)
{
	return change(v, spec, false, err, len);
}
