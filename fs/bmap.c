/*
 * bmap.c - file offset to block address: inline data, direct addresses in
 * the FD, and up to three levels of pointer blocks (docs/FORMAT.md).
 *
 * Pointer blocks read for a file are cached in its inode: valid while this
 * host holds the file's lock (nobody else can change them then), and for
 * a directory read without its lock while its lock record shows the
 * version the cache was sealed at (dir.c); an acquire that finds the
 * record moved forgets them.  Changes made inside a transaction update the
 * cache too, and an aborted transaction must call fs_bmap_forget().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_int.h"

static uint64_t pow503(unsigned k)
{
	uint64_t r = 1;

	while (k--)
		r *= FS_PB_ADDRS;
	return r;
}

static unsigned levels(const struct fs_fd *fd)
{
	return fd->map >= FS_MAP_DIRECT ? fd->map - FS_MAP_DIRECT : 0;
}

uint64_t fs_bmap_capacity(const struct fs_fd *fd)
{
	if (fd->map == FS_MAP_INLINE)
		return 0;
	if (fd->unit == FS_UNIT_SB)
		return FS_SB_DIRECT_MAX;
	return FS_FD_ADDRS * pow503(levels(fd));
}

/*
 * The cache.  Several readers of a file (rw shared: FUSE workers, fs_aio)
 * look up and fill it at once, so an entry is copied out under pbc_m and
 * never pointed to: another reader may reuse the way meanwhile.  Changes
 * to pointer blocks happen in transactions with rw held exclusively (no
 * reader then), and go into the cache as they are put; an aborted
 * transaction forgets the cache.
 */
static struct fs_pbc_ent *pbc_set(struct fs_inode *ino, uint64_t a)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull;

	return ino->pbc[(h >> 32) % FS_PBC_SETS];
}

void fs_bmap_forget(struct fs_inode *ino)
{
	pthread_mutex_lock(&ino->pbc_m);
	for (unsigned s = 0; s < FS_PBC_SETS; s++)
		for (unsigned w = 0; w < FS_PBC_WAYS; w++)
			ino->pbc[s][w].addr = 0;
	ino->cache_epoch++;         /* reads begun before stay out */
	pthread_mutex_unlock(&ino->pbc_m);
}

void fs_bmap_release(struct fs_inode *ino)
{
	for (unsigned s = 0; s < FS_PBC_SETS; s++)
		for (unsigned w = 0; w < FS_PBC_WAYS; w++) {
			free(ino->pbc[s][w].pb);
			ino->pbc[s][w].pb = NULL;
			ino->pbc[s][w].addr = 0;
		}
}

/* The entry of PB a, under pbc_m; NULL if not cached. */
static struct fs_pbc_ent *cache_find(struct fs_inode *ino, uint64_t a)
{
	struct fs_pbc_ent *set = pbc_set(ino, a);

	for (unsigned w = 0; w < FS_PBC_WAYS; w++)
		if (set[w].addr == a) {
			set[w].used = ++ino->pbc_tick;
			return &set[w];
		}
	return NULL;
}

/* Copy PB a out of the cache: 0, or -ENOENT if it is not there (then
 * *epoch is what a fill with the block read from disk now must find). */
static int cache_get(struct fs_inode *ino, uint64_t a, struct fs_pb *out,
		     uint64_t *epoch)
{
	struct fs_pbc_ent *e;

	pthread_mutex_lock(&ino->pbc_m);
	*epoch = ino->cache_epoch;
	e = cache_find(ino, a);
	if (e)
		*out = *e->pb;
	pthread_mutex_unlock(&ino->pbc_m);
	return e ? 0 : -ENOENT;
}

/* Entry idx of PB a from the cache: 0, or -ENOENT if it is not there. */
static int cache_get_addr(struct fs_inode *ino, uint64_t a, unsigned idx,
			  uint64_t *val)
{
	struct fs_pbc_ent *e;

	pthread_mutex_lock(&ino->pbc_m);
	e = cache_find(ino, a);
	if (e)
		*val = e->pb->addr[idx];
	pthread_mutex_unlock(&ino->pbc_m);
	return e ? 0 : -ENOENT;
}

/* Put PB a into the cache, replacing the set's least recently used way.
 * A failed allocation only leaves it uncached.  epoch (NULL for what a
 * transaction puts): as cache_get gave it before the block was read; a
 * forget since (another thread found the map stale) keeps it out. */
static void cache_put(struct fs_inode *ino, uint64_t a, const struct fs_pb *pb,
		      const uint64_t *epoch)
{
	struct fs_pbc_ent *set, *e;

	pthread_mutex_lock(&ino->pbc_m);
	if (epoch && *epoch != ino->cache_epoch)
		goto out;
	e = cache_find(ino, a);
	if (!e) {
		set = pbc_set(ino, a);
		e = &set[0];
		for (unsigned w = 1; w < FS_PBC_WAYS && e->addr; w++)
			if (!set[w].addr || set[w].used < e->used)
				e = &set[w];
		if (!e->pb)
			e->pb = malloc(sizeof(*e->pb));
		if (!e->pb) {
			e->addr = 0;
			goto out;
		}
		e->addr = a;
		e->used = ++ino->pbc_tick;
	}
	*e->pb = *pb;
out:
	pthread_mutex_unlock(&ino->pbc_m);
}

/* Read pointer block a of this file into *out (through the cache, or the
 * tx). */
static int pb_get(struct fs_inode *ino, struct fs_tx *tx, uint64_t a,
		  unsigned level, struct fs_pb *out)
{
	struct fs_vol *v = ino->v;
	unsigned char *b;
	uint64_t off, epoch;
	int ret;

	if (!cache_get(ino, a, out, &epoch))
		return 0;
	if (!fs_addr_valid(v, a, FS_R_PB))
		return fs_bad_meta(v, -FS_E_CORRUPT, "pointer block address",
				   ino->ext, ino->slot_off + FS_BLOCK);
	b = fs_balloc(FS_BLOCK);
	if (!b)
		return -ENOMEM;
	off = fs_res_off(v, a);
	/* without the file's lock (a read-only host) another host may be
	 * rewriting the block in place: read again before calling it bad */
	for (unsigned try = 0; ; try++) {
		ret = tx ? fs_tx_get(tx, fs_addr_ext(a), off, b) :
			   fs_read(v, fs_addr_ext(a), off, b, FS_BLOCK);
		if (ret)
			break;
		ret = fs_pb_in(b, out);
		if (!ret && (out->owner != ino->addr ||
			     out->owner_gen != ino->fd.gen || out->level != level))
			ret = -FS_E_CORRUPT;
		if (!ret || tx || try == 4 ||
		    __atomic_load_n(&ino->held, __ATOMIC_ACQUIRE) != LK_FREE)
			break;
		usleep(1000u << try);
	}
	if (ret <= -FS_E_BASE)     /* a bad block, not an I/O error */
		ret = fs_bad_meta(v, ret, "pointer block", fs_addr_ext(a), off);
	/* blocks on an extent another host added since we last looked */
	if (!ret)
		ret = fs_geom_see(v, out->addr, FS_PB_ADDRS);
	free(b);
	if (!ret)
		cache_put(ino, a, out, &epoch);
	return ret;
}

static int pb_put(struct fs_tx *tx, struct fs_inode *ino, uint64_t a,
		  const struct fs_pb *pb)
{
	struct fs_vol *v = ino->v;
	unsigned char *b = fs_balloc(FS_BLOCK);
	int ret;

	if (!b)
		return -ENOMEM;
	fs_pb_out(pb, b);
	ret = fs_tx_put(tx, fs_addr_ext(a), fs_res_off(v, a), b);
	free(b);
	if (!ret)
		cache_put(ino, a, pb, NULL);
	return ret;
}

static int lookup(struct fs_inode *ino, uint64_t b, uint64_t *addr, bool peek)
{
	const struct fs_fd *fd = &ino->fd;
	unsigned lv = levels(fd);
	uint64_t span, a, rem;

	*addr = 0;
	pthread_mutex_lock(&ino->m);
	for (unsigned i = 0; i < ino->npend; i++)
		if (ino->pend[i].b == b) {
			/* written (TBZ cleared in memory), or being written:
			 * still zeros to everyone else */
			*addr = ino->pend[i].a | (ino->pend[i].busy ? FS_ADDR_TBZ : 0);
			pthread_mutex_unlock(&ino->m);
			return 0;
		}
	pthread_mutex_unlock(&ino->m);
	if (b >= fs_bmap_capacity(fd))
		return 0;
	span = pow503(lv);
	a = fd->addr[b / span];
	rem = b % span;
	for (unsigned l = lv; l > 0 && a; l--) {
		unsigned idx;

		span /= FS_PB_ADDRS;
		idx = (unsigned)(rem / span);
		rem %= span;
		if (cache_get_addr(ino, a, idx, &a)) {
			struct fs_pb *pb;
			int ret;

			if (peek)
				return -EWOULDBLOCK;
			pb = malloc(sizeof(*pb));
			ret = pb ? pb_get(ino, NULL, a, l, pb) : -ENOMEM;

			if (!ret)
				a = pb->addr[idx];
			free(pb);
			if (ret)
				return ret;
		}
	}
	*addr = a;
	return 0;
}

int fs_bmap_get(struct fs_inode *ino, uint64_t b, uint64_t *addr)
{
	return lookup(ino, b, addr, false);
}

int fs_bmap_peek(struct fs_inode *ino, uint64_t b, uint64_t *addr)
{
	return lookup(ino, b, addr, true);
}

static int new_pb(struct fs_tx *tx, struct fs_inode *ino, unsigned level,
		  uint64_t *a, struct fs_pb *pb)
{
	int ret = fs_alloc(tx, FS_R_PB, 1, a);

	if (ret)
		return ret;
	memset(pb, 0, sizeof(*pb));
	pb->owner = ino->addr;
	pb->owner_gen = ino->fd.gen;
	pb->level = level;
	ino->fd.alloc_bytes += FS_BLOCK;
	return 0;
}

/* One more level: a new top pointer block takes the FD's addresses. */
static int deepen(struct fs_tx *tx, struct fs_inode *ino)
{
	struct fs_fd *fd = &ino->fd;
	struct fs_pb pb;
	uint64_t a;
	int ret;

	if (fd->unit != FS_UNIT_FB || fd->map == FS_MAP_IND3 ||
	    fd->map == FS_MAP_INLINE)
		return -EFBIG;
	ret = new_pb(tx, ino, levels(fd) + 1, &a, &pb);
	if (ret)
		return ret;
	memcpy(pb.addr, fd->addr, sizeof(fd->addr));
	ret = pb_put(tx, ino, a, &pb);
	if (ret)
		return ret;
	memset(fd->addr, 0, sizeof(fd->addr));
	fd->addr[0] = a;
	fd->map++;
	return 0;
}

int fs_bmap_set(struct fs_tx *tx, struct fs_inode *ino, uint64_t b,
		uint64_t addr)
{
	struct fs_fd *fd = &ino->fd;
	struct fs_pb cur;          /* the PB being walked, a copy */
	uint64_t span, rem, *slot, parent = 0;
	unsigned lv;
	int ret;

	if (fd->map == FS_MAP_INLINE)
		return -EINVAL;   /* the caller converts inline data first */
	while (b >= fs_bmap_capacity(fd)) {
		ret = deepen(tx, ino);
		if (ret)
			return ret;
	}
	lv = levels(fd);
	span = pow503(lv);
	slot = &fd->addr[b / span];
	rem = b % span;
	for (unsigned l = lv; l > 0; l--) {
		uint64_t a = *slot;

		if (!a) {
			struct fs_pb fresh;

			if (!addr)
				return 0;   /* clearing a hole: nothing to do */
			ret = new_pb(tx, ino, l, &a, &fresh);
			if (!ret)
				ret = pb_put(tx, ino, a, &fresh);
			if (ret)
				return ret;
			*slot = a;
			if (parent) {
				ret = pb_put(tx, ino, parent, &cur);
				if (ret)
					return ret;
			}
		}
		ret = pb_get(ino, tx, a, l, &cur);
		if (ret)
			return ret;
		parent = a;
		span /= FS_PB_ADDRS;
		slot = &cur.addr[rem / span];
		rem %= span;
	}
	*slot = addr;
	return parent ? pb_put(tx, ino, parent, &cur) : 0;
}

int fs_bmap_free_tree(struct fs_tx *tx, struct fs_inode *ino, uint64_t a,
		      unsigned lv)
{
	struct fs_pb copy;
	int ret;

	if (lv == 0 || !a)
		return 0;
	ret = pb_get(ino, tx, a, lv, &copy);
	if (ret)
		return ret;
	for (unsigned i = 0; lv > 1 && i < FS_PB_ADDRS; i++) {
		ret = fs_bmap_free_tree(tx, ino, copy.addr[i], lv - 1);
		if (ret)
			return ret;
	}
	/* level 1 entries are data, already freed by the truncate */
	ret = fs_free(tx, a);
	if (!ret)
		ino->fd.alloc_bytes -= FS_BLOCK;
	return ret;
}
