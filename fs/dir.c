/*
 * dir.c - directories as linear hash tables of 4 KiB blocks
 * (docs/FORMAT.md), so that lookup, insert and remove touch one bucket
 * however many entries a directory holds.
 *
 * Block 0 of the directory file is the header; bucket b's primary block is
 * block 1+b; overflow blocks live from FS_DIR_OVERFLOW_BASE.  Every block is
 * metadata: changes go through the caller's transaction, and reads inside a
 * modifying operation read through it.  Callers hold the directory's lock
 * exclusively to modify, and its rw lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"
#include "lockmgr/ondisk.h"

#define SPLIT_LOAD 48u      /* average entries per bucket before a split */

static uint32_t name_hash(const char *name, size_t len)
{
	return mp_crc32c(0x5bd1e995u, name, len);
}

static uint64_t bucket_of(const struct fs_dh *h, uint32_t hash)
{
	uint64_t b = hash & ((1ull << h->level) - 1);

	if (b < h->split)
		b = hash & ((1ull << (h->level + 1)) - 1);
	return b;
}

/* ---- the block cache -----------------------------------------------------------
 *
 * A host that looks names up in a directory reads its FD and one or two
 * blocks each time, because another host may have changed it.  Every
 * change takes the directory's lock, which moves its record's version
 * (acquire and release both do), so one read of the lock record tells
 * whether what this host saw at version V is still the directory: the
 * record still at V and not held exclusively.  Blocks are cached per
 * directory as read or put into a transaction; the cache is current at
 * dc_ver (0: not known), set when this host releases the lock after its
 * own changes or when an unlocked reader saw the same version before and
 * after reading (fs_dir_cache_seal).  Entries are copied in and out under
 * pbc_m.
 */

static void dc_drop_locked(struct fs_inode *dir)
{
	if (dir->dc) {
		for (unsigned i = 0; i < FS_DC_BUCKETS; i++) {
			while (dir->dc[i]) {
				struct fs_dcent *e = dir->dc[i];

				dir->dc[i] = e->next;
				free(e);
			}
		}
		__atomic_sub_fetch(&dir->v->dc_blocks, dir->dc_n, __ATOMIC_RELAXED);
	}
	dir->dc_n = 0;
	dir->dc_ver = 0;
	dir->cache_epoch++;             /* reads begun before stay out */
}

void fs_dir_cache_drop(struct fs_inode *dir)
{
	pthread_mutex_lock(&dir->pbc_m);
	dc_drop_locked(dir);
	pthread_mutex_unlock(&dir->pbc_m);
}

void fs_dir_cache_release(struct fs_inode *dir)
{
	dc_drop_locked(dir);
	free(dir->dc);
	dir->dc = NULL;
}

static struct fs_dcent **dc_chain(struct fs_inode *dir, uint64_t foff)
{
	return &dir->dc[(foff / FS_BLOCK) % FS_DC_BUCKETS];
}

/* The cached image of block foff into b: true if there was one; else
 * *epoch is what a fill of the block read from disk now must find. */
static bool dc_get(struct fs_inode *dir, uint64_t foff, unsigned char *b,
		   uint64_t *epoch)
{
	bool hit = false;

	pthread_mutex_lock(&dir->pbc_m);
	*epoch = dir->cache_epoch;
	if (dir->dc && dir->dc_n && dir->dc_gen == dir->fd.gen) {
		for (struct fs_dcent *e = *dc_chain(dir, foff); e; e = e->next) {
			if (e->foff == foff) {
				memcpy(b, e->img, FS_BLOCK);
				hit = true;
				break;
			}
		}
	}
	pthread_mutex_unlock(&dir->pbc_m);
	return hit;
}

/* Block foff is b now (put into the caller's transaction, or read from
 * disk after dc_get gave epoch: kept only if nothing emptied the cache
 * since, so a block read before another thread found the directory
 * changed never comes back after it refilled the cache; epoch NULL for
 * transactions, whose writer holds rw exclusively). */
static void dc_put(struct fs_inode *dir, uint64_t foff, const unsigned char *b,
		   const uint64_t *epoch)
{
	struct fs_dcent *e;

	pthread_mutex_lock(&dir->pbc_m);
	if (epoch && *epoch != dir->cache_epoch)
		goto out;
	if (dir->dc_n && dir->dc_gen != dir->fd.gen)
		dc_drop_locked(dir);        /* the FD was made anew */
	if (!dir->dc)
		dir->dc = calloc(FS_DC_BUCKETS, sizeof(*dir->dc));
	if (!dir->dc)
		goto out;
	dir->dc_gen = dir->fd.gen;
	for (e = *dc_chain(dir, foff); e; e = e->next)
		if (e->foff == foff)
			break;
	if (!e) {
		if (__atomic_load_n(&dir->v->dc_blocks, __ATOMIC_RELAXED) >= FS_DC_MAX)
			goto out;           /* full: read it from disk next time */
		e = malloc(sizeof(*e));
		if (!e)
			goto out;
		e->foff = foff;
		e->next = *dc_chain(dir, foff);
		*dc_chain(dir, foff) = e;
		dir->dc_n++;
		__atomic_add_fetch(&dir->v->dc_blocks, 1, __ATOMIC_RELAXED);
	}
	memcpy(e->img, b, FS_BLOCK);
out:
	pthread_mutex_unlock(&dir->pbc_m);
}

/* The version of dir's lock record if nobody holds it exclusively, else 0. */
static int rec_version(struct fs_inode *dir, uint64_t *ver)
{
	struct fs_vol *v = dir->v;
	unsigned char *b = fs_balloc(v->ss);
	struct lk_lockrec r;
	int ret;

	*ver = 0;
	if (!b)
		return -ENOMEM;
	ret = fs_read(v, dir->ext, dir->slot_off, b, v->ss);
	/* a record that does not decode is not ours to judge here: the
	 * directory is then read afresh, as without a cache */
	if (!ret && lk_lockrec_in(b, &r) == 0 &&
	    (r.mode == LK_FREE || r.mode == LK_SHARED))
		*ver = r.version;
	free(b);
	return ret;
}

int fs_dir_cache_check(struct fs_inode *dir, struct fs_dc_seen *seen)
{
	bool ok;
	int ret = rec_version(dir, &seen->ver);

	if (ret)
		return ret;
	pthread_mutex_lock(&dir->m);
	pthread_mutex_lock(&dir->pbc_m);
	ok = seen->ver && dir->held == LK_FREE && dir->dc_ver == seen->ver;
	pthread_mutex_unlock(&dir->pbc_m);
	pthread_mutex_unlock(&dir->m);
	if (ok) {
		seen->ver = 0;              /* current: nothing to seal */
		return 0;
	}
	return 1;                           /* fs_dir_cache_refresh first */
}

int fs_dir_cache_refresh(struct fs_inode *dir, struct fs_dc_seen *seen)
{
	struct fs_fd fd;
	/* someone else may have changed it: a fresh snapshot, read after
	 * the record showed seen->ver */
	int ret = fs_fd_read(dir->v, dir->addr, &fd);

	if (ret)
		return ret;
	/* other readers use dir->fd (and the caches) with rw shared: it
	 * changes only with rw exclusive; one refresh at a time, and new
	 * unlocked readers wait for it (fs_dir_cache_enter) */
	pthread_mutex_lock(&dir->m);
	while (dir->dc_refreshing)
		pthread_cond_wait(&dir->filled, &dir->m);
	__atomic_store_n(&dir->dc_refreshing, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&dir->m);
	pthread_rwlock_wrlock(&dir->rw);
	pthread_mutex_lock(&dir->m);
	if (dir->held == LK_FREE) {
		dir->fd = fd;
		fs_bmap_forget(dir);
		fs_dir_cache_drop(dir);
	}
	/* another reader that sets an FD it read earlier (older than ours)
	 * empties the cache after this: then we must not seal */
	pthread_mutex_lock(&dir->pbc_m);
	seen->epoch = dir->cache_epoch;
	pthread_mutex_unlock(&dir->pbc_m);
	pthread_mutex_unlock(&dir->m);
	pthread_rwlock_unlock(&dir->rw);
	pthread_mutex_lock(&dir->m);
	__atomic_store_n(&dir->dc_refreshing, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&dir->filled);
	pthread_mutex_unlock(&dir->m);
	return 0;
}

void fs_dir_cache_enter(struct fs_inode *dir)
{
	if (!__atomic_load_n(&dir->dc_refreshing, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&dir->m);
	while (dir->dc_refreshing)
		pthread_cond_wait(&dir->filled, &dir->m);
	pthread_mutex_unlock(&dir->m);
}

void fs_dir_cache_seal(struct fs_inode *dir, const struct fs_dc_seen *seen)
{
	uint64_t now;

	if (!seen->ver || rec_version(dir, &now) || now != seen->ver)
		return;
	pthread_mutex_lock(&dir->m);
	pthread_mutex_lock(&dir->pbc_m);
	if (dir->held == LK_FREE && dir->dc_gen == dir->fd.gen &&
	    dir->cache_epoch == seen->epoch)
		dir->dc_ver = seen->ver;
	pthread_mutex_unlock(&dir->pbc_m);
	pthread_mutex_unlock(&dir->m);
}

void fs_dir_pin(struct fs_inode *dir)
{
	struct fs_vol *v = dir->v;
	struct fs_inode *old = NULL;

	pthread_mutex_lock(&v->lock);
	if (!dir->pinned) {
		old = v->dpin[v->dpin_next];
		v->dpin[v->dpin_next] = dir;
		v->dpin_next = (v->dpin_next + 1) % FS_DIR_PIN;
		dir->pinned = true;
		dir->refs++;
		if (old)
			old->pinned = false;
	}
	pthread_mutex_unlock(&v->lock);
	fs_inode_put(old);
}

void fs_dir_unpin_all(struct fs_vol *v)
{
	for (unsigned i = 0; i < FS_DIR_PIN; i++) {
		struct fs_inode *d;

		pthread_mutex_lock(&v->lock);
		d = v->dpin[i];
		v->dpin[i] = NULL;
		if (d)
			d->pinned = false;
		pthread_mutex_unlock(&v->lock);
		fs_inode_put(d);
	}
}

/* Where directory block at file offset foff lives; -ENOENT for a hole. */
static int dblk_loc(struct fs_inode *dir, uint64_t foff, unsigned *ext,
		    uint64_t *off)
{
	uint64_t unit = fs_unit(dir->v, &dir->fd), a;
	int ret = fs_bmap_get(dir, foff / unit, &a);

	if (ret)
		return ret;
	if (!a || (a & FS_ADDR_TBZ))
		return -ENOENT;
	*ext = fs_addr_ext(a);
	*off = fs_unit_off(dir->v, a) + foff % unit;
	return 0;
}

/*
 * A directory read without its lock (lookups, read-only hosts) can meet a
 * block another host is rewriting in place, or a directory grown past our
 * snapshot of its FD.  That is -EAGAIN, not corruption: the caller takes a
 * fresh snapshot and starts over (fs_dir_retry), and only a mismatch that
 * persists is reported.
 */
static bool unlocked(const struct fs_tx *tx, struct fs_inode *dir)
{
	return !tx && __atomic_load_n(&dir->held, __ATOMIC_ACQUIRE) == LK_FREE;
}

static int dblk_read(struct fs_tx *tx, struct fs_inode *dir, uint64_t foff,
		     unsigned char *b, uint64_t *epoch)
{
	unsigned ext;
	uint64_t off;
	int ret;

	/* the cache holds what a transaction of ours put too */
	if (dc_get(dir, foff, b, epoch))
		return 1;
	ret = dblk_loc(dir, foff, &ext, &off);

	if (ret == -ENOENT && unlocked(tx, dir))
		return -EAGAIN;
	if (ret == -ENOENT)
		return fs_bad_meta(dir->v, -FS_E_CORRUPT, "directory block (hole)",
				   dir->ext, dir->slot_off + FS_BLOCK);
	if (ret)
		return ret;
	return tx ? fs_tx_get(tx, ext, off, b) : fs_read(dir->v, ext, off, b, FS_BLOCK);
}

static int read_dh(struct fs_tx *tx, struct fs_inode *dir, struct fs_dh *h)
{
	unsigned char *b = fs_balloc(FS_BLOCK);
	uint64_t epoch;
	int ret;

	if (!b)
		return -ENOMEM;
	ret = dblk_read(tx, dir, 0, b, &epoch);
	if (ret == 1) {
		ret = fs_dh_in(b, h);          /* cached: decoded before */
	} else if (!ret) {
		ret = fs_dh_in(b, h);
		if (!ret)
			dc_put(dir, 0, b, &epoch);
		if (ret && unlocked(tx, dir))
			ret = -EAGAIN;
		else if (ret)
			ret = fs_bad_meta(dir->v, ret, "directory header", dir->ext,
					  dir->slot_off + FS_BLOCK);
	}
	free(b);
	return ret;
}

static int read_db(struct fs_tx *tx, struct fs_inode *dir, uint64_t foff,
		   struct fs_db *d)
{
	unsigned char *b = fs_balloc(FS_BLOCK);
	uint64_t epoch;
	int ret;

	if (!b)
		return -ENOMEM;
	ret = dblk_read(tx, dir, foff, b, &epoch);
	if (ret == 1) {
		ret = fs_db_in(b, d);          /* cached: decoded before */
	} else if (!ret) {
		ret = fs_db_in(b, d);
		if (!ret)
			dc_put(dir, foff, b, &epoch);
		if (ret && unlocked(tx, dir))
			ret = -EAGAIN;
		else if (ret)
			ret = fs_bad_meta(dir->v, ret, "directory block", dir->ext,
					  dir->slot_off + FS_BLOCK);
	}
	free(b);
	return ret;
}

/* Put a directory block (allocating its unit if it is a hole). */
static int dblk_put(struct fs_tx *tx, struct fs_inode *dir, uint64_t foff,
		    const unsigned char *b)
{
	struct fs_vol *v = dir->v;
	unsigned ext;
	uint64_t off;
	int ret = dblk_loc(dir, foff, &ext, &off);

	if (ret == -ENOENT) {
		uint64_t unit = fs_unit(v, &dir->fd), a;

		if (dir->fd.unit == FS_UNIT_SB &&
		    foff / unit >= FS_SB_DIRECT_MAX)
			return -EFBIG;   /* caller converts to file blocks */
		ret = fs_alloc(tx, dir->fd.unit == FS_UNIT_SB ? FS_R_SB : FS_R_FB,
			       1, &a);
		/* no sub-block left on the volume: file blocks, as a
		 * directory that outgrew sub-blocks */
		if (ret == -ENOSPC && dir->fd.unit == FS_UNIT_SB)
			return -EFBIG;
		if (!ret)
			ret = fs_bmap_set(tx, dir, foff / unit, a);
		if (ret)
			return ret;
		dir->fd.alloc_bytes += unit;
		ret = dblk_loc(dir, foff, &ext, &off);
	}
	if (ret)
		return ret;
	/* the size covers header and buckets (overflow blocks lie beyond) */
	if (foff + FS_BLOCK > dir->fd.size && foff < FS_DIR_OVERFLOW_BASE)
		dir->fd.size = foff + FS_BLOCK;
	ret = fs_tx_put(tx, ext, off, b);
	/* the cache follows the transaction (emptied if it aborts) */
	if (!ret)
		dc_put(dir, foff, b, NULL);
	return ret;
}

static int put_dh(struct fs_tx *tx, struct fs_inode *dir, const struct fs_dh *h)
{
	unsigned char *b = fs_balloc(FS_BLOCK);
	int ret;

	if (!b)
		return -ENOMEM;
	fs_dh_out(h, b);
	ret = dblk_put(tx, dir, 0, b);
	free(b);
	return ret;
}

static int put_db(struct fs_tx *tx, struct fs_inode *dir, uint64_t foff,
		  const struct fs_db *d)
{
	unsigned char *b = fs_balloc(FS_BLOCK);
	int ret;

	if (!b)
		return -ENOMEM;
	fs_db_out(d, b);
	ret = dblk_put(tx, dir, foff, b);
	free(b);
	return ret;
}

static uint64_t primary(uint64_t bucket)
{
	return (bucket + 1) * FS_BLOCK;
}

int fs_dir_init(struct fs_tx *tx, struct fs_inode *dir)
{
	struct fs_dh h = { .level = 0, .split = 0, .nbuckets = 1 };
	struct fs_db d;
	int ret;

	dir->fd.map = FS_MAP_DIRECT;
	dir->fd.unit = FS_UNIT_SB;
	dir->fd.size = 0;
	memset(dir->fd.addr, 0, sizeof(dir->fd.addr));
	memset(&d, 0, sizeof(d));
	ret = put_dh(tx, dir, &h);
	if (ret == -EFBIG) {
		/* no sub-block left (dblk_put): it starts in a file block
		 * (nothing of it is in the transaction yet) */
		dir->fd.unit = FS_UNIT_FB;
		dir->fd.size = 0;
		ret = put_dh(tx, dir, &h);
	}
	if (!ret)
		ret = put_db(tx, dir, primary(0), &d);
	return ret;
}

/* ---- lookup --------------------------------------------------------------- */

static int find_in_chain(struct fs_tx *tx, struct fs_inode *dir, uint64_t bucket,
			 const char *name, size_t len, struct fs_dirent *de,
			 uint64_t *blk, unsigned *pos)
{
	uint64_t foff = primary(bucket);
	struct fs_db *d = malloc(sizeof(*d));
	int ret = -ENOENT;

	if (!d)
		return -ENOMEM;
	for (unsigned hops = 0; foff && hops < 100000; hops++) {
		int p = 0, r = read_db(tx, dir, foff, d);

		if (r) {
			ret = r;
			break;
		}
		while (p < d->used) {
			int next = fs_db_entry(d, (unsigned)p, de);

			if (next < 0)
				break;
			if (de->name_len == len && !memcmp(de->name, name, len)) {
				if (blk)
					*blk = foff;
				if (pos)
					*pos = (unsigned)p;
				ret = 0;
				goto out;
			}
			p = next;
		}
		foff = d->next;
	}
out:
	free(d);
	return ret;
}

int fs_dir_find(struct fs_tx *tx, struct fs_inode *dir, const char *name,
		struct fs_dirent *de)
{
	size_t len = strlen(name);
	struct fs_dh h;
	int ret;

	if (len == 0 || len > FS_NAME_MAX)
		return len ? -ENAMETOOLONG : -ENOENT;
	ret = read_dh(tx, dir, &h);
	if (ret)
		return ret;
	return find_in_chain(tx, dir, bucket_of(&h, name_hash(name, len)), name,
			     len, de, NULL, NULL);
}

/* ---- insert, split, remove --------------------------------------------------- */

/* Where a new overflow block goes. */
static uint64_t overflow_slot(struct fs_dh *h)
{
	return FS_DIR_OVERFLOW_BASE + h->next_overflow++ * FS_BLOCK;
}

/* Add de to the chain of bucket b (h may change: overflow allocation). */
static int chain_add(struct fs_tx *tx, struct fs_inode *dir, struct fs_dh *h,
		     uint64_t b, const struct fs_dirent *de)
{
	struct fs_db *d = malloc(sizeof(*d));
	uint64_t foff = primary(b);
	int ret;

	if (!d)
		return -ENOMEM;
	for (;;) {
		ret = read_db(tx, dir, foff, d);
		if (ret)
			break;
		if (fs_db_add(d, de) == 0) {
			ret = put_db(tx, dir, foff, d);
			break;
		}
		if (d->next) {
			foff = d->next;
			continue;
		}
		/* full chain: link a new overflow block */
		{
			uint64_t nf = overflow_slot(h);
			struct fs_db *o = calloc(1, sizeof(*o));

			if (!o) {
				ret = -ENOMEM;
				break;
			}
			o->bucket = b;
			ret = fs_db_add(o, de);
			if (!ret)
				ret = put_db(tx, dir, nf, o);
			free(o);
			if (ret)
				break;
			d->next = nf;
			ret = put_db(tx, dir, foff, d);
			break;
		}
	}
	free(d);
	return ret;
}

/*
 * Split bucket h->split into itself and split + 2^level: take every entry
 * of the old chain out, empty its blocks (kept linked, for reuse), and
 * add each entry again where the new table shape puts it.
 */
static int split(struct fs_tx *tx, struct fs_inode *dir, struct fs_dh *h)
{
	uint64_t from = h->split, to = from + (1ull << h->level), foff;
	struct fs_db *d = malloc(sizeof(*d)), *empty = calloc(1, sizeof(*empty));
	struct fs_dirent *ents = NULL;
	size_t nents = 0, cap = 0;
	struct fs_dh nh = *h;
	int ret = 0;

	if (!d || !empty) {
		ret = -ENOMEM;
		goto out;
	}
	nh.split++;
	if (nh.split == (1u << nh.level)) {
		nh.level++;
		nh.split = 0;
	}
	nh.nbuckets++;
	for (foff = primary(from); foff && !ret;) {
		int p = 0;

		ret = read_db(tx, dir, foff, d);
		if (ret)
			break;
		while (p < d->used) {
			if (nents == cap) {
				struct fs_dirent *n;

				cap = cap ? cap * 2 : 64;
				n = realloc(ents, cap * sizeof(*ents));
				if (!n) {
					ret = -ENOMEM;
					goto out;
				}
				ents = n;
			}
			p = fs_db_entry(d, (unsigned)p, &ents[nents]);
			if (p < 0) {
				ret = fs_bad_meta(dir->v, -FS_E_CORRUPT,
						  "directory entry", dir->ext,
						  dir->slot_off);
				goto out;
			}
			nents++;
		}
		empty->bucket = from;
		empty->next = d->next;
		ret = put_db(tx, dir, foff, empty);
		foff = d->next;
	}
	if (ret)
		goto out;
	memset(empty, 0, sizeof(*empty));
	empty->bucket = to;
	ret = put_db(tx, dir, primary(to), empty);
	for (size_t i = 0; !ret && i < nents; i++) {
		uint64_t nb = bucket_of(&nh, name_hash(ents[i].name,
						       ents[i].name_len));

		ret = chain_add(tx, dir, &nh, nb, &ents[i]);
	}
out:
	free(d);
	free(empty);
	free(ents);
	if (!ret)
		*h = nh;
	return ret;
}

int fs_dir_add(struct fs_tx *tx, struct fs_inode *dir, const char *name,
	       uint64_t fd, uint64_t gen, uint8_t type)
{
	size_t len = strlen(name);
	struct fs_dirent de;
	struct fs_dh h;
	int ret;

	if (len == 0 || len > FS_NAME_MAX)
		return len ? -ENAMETOOLONG : -EINVAL;
	ret = read_dh(tx, dir, &h);
	if (ret)
		return ret;
	if (find_in_chain(tx, dir, bucket_of(&h, name_hash(name, len)), name, len,
			  &de, NULL, NULL) == 0)
		return -EEXIST;
	memset(&de, 0, sizeof(de));
	de.fd = fd;
	de.gen = gen;
	de.type = type;
	de.name_len = (uint8_t)len;
	memcpy(de.name, name, len);
	ret = chain_add(tx, dir, &h, bucket_of(&h, name_hash(name, len)), &de);
	if (ret)
		return ret;
	h.nentries++;
	return put_dh(tx, dir, &h);
}

/* Whether the next insert should split first (done by the caller before
 * fs_dir_add, in the same transaction, via fs_dir_maybe_split). */
int fs_dir_maybe_split(struct fs_tx *tx, struct fs_inode *dir)
{
	struct fs_dh h;
	int ret = read_dh(tx, dir, &h);

	if (ret)
		return ret;
	if (h.nentries + 1 <= h.nbuckets * SPLIT_LOAD)
		return 0;
	ret = split(tx, dir, &h);
	if (!ret)
		ret = put_dh(tx, dir, &h);
	return ret;
}

/* Whether growing the directory needs file blocks first. */
bool fs_dir_needs_fb(struct fs_tx *tx, struct fs_inode *dir)
{
	struct fs_dh h;

	if (dir->fd.unit == FS_UNIT_FB)
		return false;
	if (read_dh(tx, dir, &h))
		return false;
	/* a split adds a bucket; SBs hold 2 * FS_SB_DIRECT_MAX - 1 buckets and
	 * no overflow blocks at all: go to file blocks early */
	return h.nbuckets + 2 >= 2 * FS_SB_DIRECT_MAX - 1 ||
	       h.nentries + 1 > h.nbuckets * SPLIT_LOAD / 2;
}

int fs_dir_remove(struct fs_tx *tx, struct fs_inode *dir, const char *name,
		  struct fs_dirent *removed)
{
	size_t len = strlen(name);
	struct fs_db *d;
	struct fs_dh h;
	uint64_t blk;
	unsigned pos;
	int ret;

	ret = read_dh(tx, dir, &h);
	if (ret)
		return ret;
	ret = find_in_chain(tx, dir, bucket_of(&h, name_hash(name, len)), name,
			    len, removed, &blk, &pos);
	if (ret)
		return ret;
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	ret = read_db(tx, dir, blk, d);
	if (!ret) {
		fs_db_del(d, pos);
		ret = put_db(tx, dir, blk, d);
	}
	free(d);
	if (ret)
		return ret;
	h.nentries--;
	return put_dh(tx, dir, &h);
}

int fs_dir_count(struct fs_tx *tx, struct fs_inode *dir, uint64_t *n)
{
	struct fs_dh h;
	int ret = read_dh(tx, dir, &h);

	if (!ret)
		*n = h.nentries;
	return ret;
}

int fs_dir_iterate(struct fs_inode *dir,
		   int (*cb)(void *arg, const struct fs_dirent *de), void *arg)
{
	struct fs_db *d = malloc(sizeof(*d));
	struct fs_dirent de;
	struct fs_dh h;
	int ret;

	if (!d)
		return -ENOMEM;
	ret = read_dh(NULL, dir, &h);
	for (uint64_t b = 0; !ret && b < h.nbuckets; b++) {
		uint64_t foff = primary(b);

		for (unsigned hops = 0; foff && !ret && hops < 100000; hops++) {
			int p = 0;

			ret = read_db(NULL, dir, foff, d);
			while (!ret && p < d->used) {
				p = fs_db_entry(d, (unsigned)p, &de);
				if (p < 0) {
					ret = fs_bad_meta(dir->v, -FS_E_CORRUPT,
							  "directory entry", dir->ext,
							  dir->slot_off);
					break;
				}
				ret = cb(arg, &de);
			}
			if (!ret)
				foff = d->next;
		}
	}
	free(d);
	return ret > 0 ? 0 : ret;
}
