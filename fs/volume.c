/*
 * volume.c - making, mounting and unmounting a volume.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "fs/fs_int.h"
#include "lockmgr/ondisk.h"

#define MIB (1ull << 20)
#define SB_SLOT_OFF FS_SB_SLOT  /* superblock slot: lock sector, then SB */

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t clampu(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static const uint32_t per_cluster[FS_AREAS] = {
	[FS_A_FD] = 256, [FS_A_PB] = 1024, [FS_A_SB] = 512, [FS_A_FB] = 512,
};

/*
 * Lay out the resource areas of one extent between start and size.
 * Returns -ENOSPC when not even one cluster of file blocks fits.
 */
static int layout(struct fs_extent_geom *g, uint64_t start, uint64_t size,
		  uint64_t nfd, uint32_t bs, uint64_t *nfb_out)
{
	uint64_t off = align_up(start, MIB), avail, nfb;
	uint64_t count[FS_AREAS];
	const uint64_t rsize[FS_AREAS] = { FS_SLOT, FS_BLOCK, 8192, bs };

	memset(g, 0, sizeof(*g));
	g->size = size;
	if (off >= size)
		return -ENOSPC;
	avail = size - off;
	count[FS_A_FD] = align_up(nfd, per_cluster[FS_A_FD]);
	count[FS_A_SB] = align_up(2 * nfd, per_cluster[FS_A_SB]);
	count[FS_A_PB] = align_up(clampu(avail / bs / 64, 1024, UINT32_MAX),
				  per_cluster[FS_A_PB]);
	for (unsigned a = FS_A_FD; a <= FS_A_SB; a++) {
		g->area[a].per_cluster = per_cluster[a];
		g->area[a].clusters = (uint32_t)(count[a] / per_cluster[a]);
		g->area[a].meta_off = off;
		off += (uint64_t)g->area[a].clusters * FS_SLOT;
		g->area[a].res_off = off;
		off += count[a] * rsize[a];
	}
	if (off + MIB >= size)
		return -ENOSPC;
	/* file blocks get the rest: their cluster slots, then the blocks on
	 * a 1 MiB boundary */
	nfb = (size - off - MIB) / (bs + FS_SLOT / per_cluster[FS_A_FB] + 1);
	for (;;) {
		uint64_t clusters = (nfb + per_cluster[FS_A_FB] - 1) / per_cluster[FS_A_FB];
		uint64_t res = align_up(off + clusters * FS_SLOT, MIB);

		if (nfb == 0)
			return -ENOSPC;
		if (res + nfb * bs <= size) {
			g->area[FS_A_FB].per_cluster = per_cluster[FS_A_FB];
			g->area[FS_A_FB].clusters = (uint32_t)clusters;
			g->area[FS_A_FB].meta_off = off;
			g->area[FS_A_FB].res_off = res;
			/* the last cluster may be partial: its header says */
			g->size = size;
			*nfb_out = nfb;
			return 0;
		}
		nfb--;
	}
}

/* Resources in cluster c (the last one of FB areas may be partial). */
static uint32_t cluster_nres(const struct fs_extent_geom *g, unsigned a,
			     uint32_t c, uint64_t nfb)
{
	if (a == FS_A_FB && c == g->area[a].clusters - 1) {
		uint64_t left = nfb - (uint64_t)c * per_cluster[a];

		return (uint32_t)left;
	}
	return g->area[a].per_cluster;
}

/* File descriptors of an extent that is not the head: a quarter of what
 * its space would get on the head, 256 .. 131072. */
static uint64_t further_files(uint64_t avail)
{
	return clampu(clampu(avail / (512 << 10), 256, 131072) / 4, 256, 131072);
}

int fs_layout_further(struct fs_extent_geom *g, uint64_t start, uint64_t size,
		      uint32_t bs, uint64_t *nfb)
{
	return layout(g, start, size, further_files(size > start ? size - start : 0),
		      bs, nfb);
}

/* Write every cluster slot of an area: free lock records, empty headers
 * (with `used` resources of cluster 0 marked in use). */
static int write_clusters(mp_lun *lun, const struct fs_extent_geom *g,
			  unsigned a, unsigned ext, const uint8_t uuid[16],
			  unsigned ss, unsigned used0, uint64_t nfb)
{
	static const enum fs_rtype types[FS_AREAS] = {
		FS_R_FD, FS_R_PB, FS_R_SB, FS_R_FB };
	const struct fs_area *ar = &g->area[a];
	size_t len = (size_t)ar->clusters * FS_SLOT;
	unsigned char *b;
	ssize_t n;
	int ret = 0;

	if (!ar->clusters)
		return 0;
	b = fs_balloc(len);
	if (!b)
		return -ENOMEM;
	for (uint32_t c = 0; c < ar->clusters; c++) {
		struct lk_lockrec lr = { .mode = LK_FREE, .version = 1 };
		struct fs_rc rc;

		lr.self_off = ar->meta_off + (uint64_t)c * FS_SLOT;
		memcpy(lr.uuid, uuid, 16);
		lk_lockrec_out(&lr, b + (size_t)c * FS_SLOT, ss);
		memset(&rc, 0, sizeof(rc));
		rc.type = types[a];
		rc.extent = ext;
		rc.cluster = c;
		rc.nres = cluster_nres(g, a, c, nfb);
		rc.nfree = rc.nres;
		if (c == 0) {
			for (unsigned i = 0; i < used0; i++)
				rc.bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
			rc.nfree -= used0;
		}
		fs_rc_out(&rc, b + (size_t)c * FS_SLOT + FS_BLOCK);
	}
	n = mp_lun_pwrite(lun, b, len, ar->meta_off, 0);
	if (n < 0)
		ret = (int)n;
	free(b);
	return ret;
}

/* The empty root directory: FD 0 and SB 0 of the head extent. */
static int write_root(mp_lun *lun, const struct fs_sb *sb, unsigned ss)
{
	const struct fs_extent_geom *g = &sb->ext[0];
	unsigned char *slot = fs_balloc(FS_SLOT), *data = fs_balloc(8192);
	struct lk_lockrec lr = { .mode = LK_FREE, .version = 1 };
	struct fs_fd fd;
	struct fs_dh dh = { .level = 0, .split = 0, .nbuckets = 1 };
	struct fs_db db;
	uint64_t now = fs_now_ns();
	ssize_t n;
	int ret = 0;

	if (!slot || !data) {
		ret = -ENOMEM;
		goto out;
	}
	lr.self_off = g->area[FS_A_FD].res_off;
	memcpy(lr.uuid, sb->uuid, 16);
	lk_lockrec_out(&lr, slot, ss);
	memset(&fd, 0, sizeof(fd));
	fd.self = sb->root;
	fd.gen = 1;
	fd.type = FS_T_DIR;
	fd.map = FS_MAP_DIRECT;
	fd.unit = FS_UNIT_SB;
	fd.mode = S_IFDIR | 0755;
	fd.nlink = 2;
	fd.size = 8192;
	fd.atime = fd.mtime = fd.ctime = fd.btime = now;
	fd.alloc_bytes = 8192;
	fd.parent = sb->root;
	fd.addr[0] = fs_addr(FS_R_SB, 0, 0);
	fs_fd_out(&fd, slot + FS_BLOCK);
	fs_dh_out(&dh, data);
	memset(&db, 0, sizeof(db));
	fs_db_out(&db, data + FS_BLOCK);
	n = mp_lun_pwrite(lun, slot, FS_SLOT, g->area[FS_A_FD].res_off, 0);
	if (n >= 0)
		n = mp_lun_pwrite(lun, data, 8192, g->area[FS_A_SB].res_off, 0);
	if (n < 0)
		ret = (int)n;
out:
	free(slot);
	free(data);
	return ret;
}

int fs_write_areas(mp_lun *lun, const struct fs_extent_geom *g, unsigned ext,
		   const uint8_t uuid[16], unsigned ss, uint64_t nfb, bool root)
{
	int ret = 0;

	for (unsigned a = 0; a < FS_AREAS && !ret; a++) {
		unsigned used0 = root && (a == FS_A_FD || a == FS_A_SB);

		ret = write_clusters(lun, g, a, ext, uuid, ss, used0, nfb);
	}
	return ret;
}

int fs_mkfs(const char *const *specs, unsigned n, const struct fs_mkfs_opts *o)
{
	struct fs_mkfs_opts dflt = { 0 };
	mp_lun *lun[FS_MAX_EXTENTS] = { 0 };
	struct mp_lun_info in[FS_MAX_EXTENTS];
	struct fs_sb *sb = calloc(1, sizeof(*sb));
	unsigned char *b = fs_balloc(FS_SLOT);
	uint64_t hb_size, jsize, start, nfb[FS_MAX_EXTENTS];
	int ret = 0;

	if (!o)
		o = &dflt;
	if (!sb || !b) {
		ret = -ENOMEM;
		goto out;
	}
	if (n == 0 || n > FS_MAX_EXTENTS) {
		ret = -EINVAL;
		goto out;
	}
	sb->block_size = o->block_size ? o->block_size : (uint32_t)MIB;
	sb->slots = o->max_hosts ? o->max_hosts : 64;
	if (sb->block_size < (64u << 10) || sb->block_size > (8u << 20) ||
	    (sb->block_size & (sb->block_size - 1)) || sb->slots > 2048) {
		fs_log(NULL, "block size must be a power of two from 64 KiB to "
		       "8 MiB, hosts at most 2048");
		ret = -EINVAL;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		struct fs_ext e;

		ret = mp_lun_open(specs[i], NULL, &lun[i]);
		if (ret) {
			fs_log(NULL, "%s: %s", specs[i], fs_strerror(ret));
			goto out;
		}
		mp_lun_get_info(lun[i], &in[i]);
		if (in[i].logical_sector != in[0].logical_sector) {
			fs_log(NULL, "%s: %u-byte sectors, %s has %u: extents of "
			       "one volume need the same sector size", specs[i],
			       in[i].logical_sector, specs[0],
			       in[0].logical_sector);
			ret = -EINVAL;
			goto out;
		}
		ret = fs_read_ext_header(lun[i], &e);
		if (ret == 0 && !o->force) {
			fs_log(NULL, "%s holds extent %u of volume '%s'; use -f "
			       "to overwrite it", specs[i], e.index, e.label);
			ret = -EEXIST;
			goto out;
		}
	}
	if (o->uuid)
		memcpy(sb->uuid, o->uuid, 16);
	else if (getrandom(sb->uuid, 16, 0) != 16) {
		ret = -errno;
		goto out;
	}
	snprintf(sb->label, sizeof(sb->label), "%s", o->label ? o->label : "");
	sb->sector = in[0].logical_sector;
	sb->sb_size = 8192;
	sb->ctime_ns = fs_now_ns();
	sb->nextents = n;
	if (!o->single_records)
		sb->incompat |= FS_INCOMPAT_JGROUPS;
	sb->hb_off = MIB;
	hb_size = align_up(lk_region_size(lun[0], sb->slots), MIB);
	jsize = o->journal_mib ? (uint64_t)o->journal_mib * MIB :
		align_up(clampu(in[0].capacity / sb->slots / 256, MIB, 16 * MIB), MIB);
	sb->journal_blocks = (uint32_t)(jsize / FS_BLOCK);
	sb->journal_off = sb->hb_off + hb_size;
	start = sb->journal_off + (uint64_t)sb->slots * jsize;
	for (unsigned i = 0; i < n; i++) {
		uint64_t s0 = i == 0 ? start : MIB;
		uint64_t avail = in[i].capacity > s0 ? in[i].capacity - s0 : 0;
		uint64_t nfd = i > 0 ? further_files(avail) : o->files ? o->files :
			       clampu(avail / (512 << 10), 256, 131072);

		ret = layout(&sb->ext[i], s0, in[i].capacity, nfd, sb->block_size,
			     &nfb[i]);
		if (ret) {
			fs_log(NULL, "%s: too small for a %s extent (%llu bytes)",
			       specs[i], i ? "further" : "head",
			       (unsigned long long)in[i].capacity);
			goto out;
		}
		/* the header written below carries the same tag */
		ret = fs_ext_tag_new(&sb->ext[i].tag);
		if (ret)
			goto out;
	}
	sb->root = fs_addr(FS_R_FD, 0, 0);

	/* heartbeat region, journal headers cleared (a previous volume's
	 * must never be replayed), cluster slots, the root directory */
	{
		struct lk_format_params p = { .slots = sb->slots,
					      .interval_ms = o->hb_interval_ms,
					      .dead_ms = o->hb_dead_ms };
		unsigned char *z = fs_balloc(FS_BLOCK);

		memcpy(p.uuid, sb->uuid, 16);
		ret = lk_format(lun[0], sb->hb_off, &p);
		for (uint32_t s = 0; !ret && s < sb->slots; s++) {
			ssize_t w = mp_lun_pwrite(lun[0], z, FS_BLOCK,
						  sb->journal_off + s * jsize, 0);
			if (w < 0)
				ret = (int)w;
		}
		free(z);
		if (ret)
			goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		ret = fs_write_areas(lun[i], &sb->ext[i], i, sb->uuid, sb->sector,
				     nfb[i], i == 0);
		if (ret)
			goto out;
	}
	ret = write_root(lun[0], sb, sb->sector);
	if (ret)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		struct fs_ext e = { .index = i, .count = n, .size = in[i].capacity,
				    .tag = sb->ext[i].tag };
		ssize_t w;

		memcpy(e.uuid, sb->uuid, 16);
		snprintf(e.label, sizeof(e.label), "%s", sb->label);
		fs_ext_out(&e, b);
		w = mp_lun_pwrite(lun[i], b, FS_BLOCK, 0, 0);
		if (w < 0) {
			ret = (int)w;
			goto out;
		}
		ret = mp_lun_flush(lun[i]);
		if (ret)
			goto out;
	}
	/* the superblock last: until it is there, this is no volume */
	{
		struct lk_lockrec lr = { .mode = LK_FREE, .version = 1,
					 .self_off = SB_SLOT_OFF };
		ssize_t w;

		memset(b, 0, FS_SLOT);
		memcpy(lr.uuid, sb->uuid, 16);
		lk_lockrec_out(&lr, b, sb->sector);
		fs_sb_out(sb, b + FS_BLOCK);
		w = mp_lun_pwrite(lun[0], b, FS_SLOT, SB_SLOT_OFF, 0);
		ret = w < 0 ? (int)w : mp_lun_flush(lun[0]);
	}
out:
	for (unsigned i = 0; i < n && i < FS_MAX_EXTENTS; i++)
		mp_lun_close(lun[i]);
	free(sb);
	free(b);
	return ret;
}

int fs_read_ext_header(mp_lun *lun, struct fs_ext *e)
{
	unsigned char *b = fs_balloc(FS_BLOCK);
	ssize_t n;
	int ret;

	if (!b)
		return -ENOMEM;
	n = mp_lun_pread(lun, b, FS_BLOCK, 0);
	ret = n < 0 ? (int)n : fs_ext_in(b, e);
	free(b);
	return ret;
}

/* ---- mount ------------------------------------------------------------------ */

static int recover_cb(void *arg, const struct lk_dead_host *h)
{
	struct fs_vol *v = arg;
	int ret = fs_journal_replay(v, h->slot, NULL, false);

	/* its orphans are freed once the recovery is over and their locks
	 * (held by it) can be broken: by our janitor */
	if (!ret)
		fs_orphan_recovered(v, h->data);
	return ret;
}

int fs_read_sb(struct fs_vol *v, struct fs_sb *sb)
{
	unsigned char *b = fs_balloc(FS_BLOCK);
	int ret;

	if (!b)
		return -ENOMEM;
	ret = fs_read(v, 0, SB_SLOT_OFF + FS_BLOCK, b, FS_BLOCK);
	if (!ret) {
		ret = fs_sb_in(b, sb);
		if (ret)
			ret = fs_bad_meta(v, ret, "superblock", 0,
					  SB_SLOT_OFF + FS_BLOCK);
	}
	free(b);
	return ret;
}

int fs_mount(const char *const *specs, unsigned n,
	     const struct fs_mount_opts *o, fs_vol **out)
{
	struct fs_mount_opts dflt = { 0 };
	struct fs_vol *v;
	struct fs_ext hdr[FS_MAX_EXTENTS];
	mp_lun *flun[FS_MAX_EXTENTS] = { 0 };  /* opened, not placed yet */
	struct mp_open_opts mo = { .flags = MP_OPEN_RETRY_RESCONFLICT };
	int ret = 0;

	if (!o)
		o = &dflt;
	if (n == 0 || n > FS_MAX_EXTENTS)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->orphan_lock, NULL);
	pthread_mutex_init(&v->geom_lock, NULL);
	pthread_cond_init(&v->clus_cond, NULL);
	v->rdonly = o->read_only && !o->offline;
	v->no_discard = o->no_discard;
	snprintf(v->host, sizeof(v->host), "%s", o->host ? o->host : "host");
	if (o->read_only)
		mo.flags |= MP_OPEN_RDONLY;
	v->open_flags = mo.flags;
	for (unsigned i = 0; i < o->ncandidates; i++) {
		ret = fs_candidate_add(v, o->candidates[i]);
		if (ret)
			goto fail;
	}
	/* find each extent by its header, whatever the device is called:
	 * the head first (it holds the superblock), the others by their
	 * entries in its extent table */
	for (unsigned i = 0; i < n; i++) {
		ret = mp_lun_open(specs[i], &mo, &flun[i]);
		if (ret) {
			flun[i] = NULL;
			fs_log(v, "%s: %s", specs[i], fs_strerror(ret));
			goto fail;
		}
		ret = fs_read_ext_header(flun[i], &hdr[i]);
		if (ret) {
			fs_log(v, "%s: no volume extent header (%s)", specs[i],
			       fs_strerror(ret));
			ret = -FS_E_NOVOLUME;
			goto fail;
		}
		if (i && memcmp(hdr[i].uuid, hdr[0].uuid, 16)) {
			fs_log(v, "%s belongs to another volume ('%s')", specs[i],
			       hdr[i].label);
			ret = -FS_E_EXTENTS;
			goto fail;
		}
		if (hdr[i].index != 0)
			continue;
		if (v->ext[0].lun) {
			fs_log(v, "%s and %s are both extent 0", specs[i],
			       v->ext[0].spec);
			ret = -FS_E_EXTENTS;
			goto fail;
		}
		v->ext[0].lun = flun[i];
		v->ext[0].spec = strdup(specs[i]);
		v->ext[0].capacity = hdr[i].size;
		flun[i] = NULL;
	}
	if (!v->ext[0].lun) {
		fs_log(v, "extent 0 of volume '%s' is missing", hdr[0].label);
		ret = -FS_E_EXTENTS;
		goto fail;
	}
	v->next = 1;                 /* fs_read of the head's superblock */
	ret = fs_read_sb(v, &v->sb);
	if (ret)
		goto fail;
	for (unsigned i = 1; i < v->sb.nextents; i++) {
		int k = -1;

		for (unsigned j = 0; j < n; j++) {
			if (!flun[j] || !fs_ext_matches(&hdr[j], v->sb.uuid, i,
							&v->sb.ext[i]))
				continue;
			if (k >= 0) {
				/* only untagged entries (or a 2^-32 chance) */
				fs_log(v, "%s and %s are both extent %u (untagged: "
				       "fsck.vmfs -y tags the volume's extents)",
				       specs[k], specs[j], i);
				ret = -FS_E_EXTENTS;
				goto fail;
			}
			k = (int)j;
		}
		if (k < 0)
			continue;    /* missing: said below */
		v->ext[i].lun = flun[k];
		v->ext[i].spec = strdup(specs[k]);
		v->ext[i].capacity = hdr[k].size;
		flun[k] = NULL;
	}
	/* A header no entry describes (index, size, tag) is left over from
	 * an interrupted vmkfstools -Z (docs/FORMAT.md): not ours (yet); a
	 * later span may use the LUN. */
	for (unsigned j = 0; j < n; j++) {
		if (!flun[j])
			continue;
		fs_log(v, "%s: stale extent header %u, not part of volume '%s' "
		       "(an interrupted span?): ignored", specs[j], hdr[j].index,
		       v->sb.label);
		mp_lun_close(flun[j]);
		flun[j] = NULL;
		ret = fs_candidate_add(v, specs[j]);
		if (ret)
			goto fail;
	}
	for (unsigned i = 0; i < v->sb.nextents; i++) {
		uint32_t of = v->sb.ext[i].lun_of;

		if (of) {
			v->ext[i].lun = v->ext[of - 1].lun;
			v->ext[i].shared = true;
			v->ext[i].spec = strdup(v->ext[of - 1].spec ?
						v->ext[of - 1].spec : "");
		} else if (!v->ext[i].lun) {
			fs_log(v, "extent %u of volume '%s' is missing", i,
			       v->sb.label);
			ret = -FS_E_EXTENTS;
			goto fail;
		}
	}
	v->next = v->sb.nextents;
	if (v->sb.ro_compat & ~FS_RO_COMPAT_KNOWN && !v->rdonly) {
		fs_log(v, "unknown read-only-compatible features %x: mount "
		       "read-only", v->sb.ro_compat & ~FS_RO_COMPAT_KNOWN);
		ret = -EROFS;
		goto fail;
	}
	for (unsigned i = 0; i < v->next; i++) {
		struct mp_lun_info in;

		mp_lun_get_info(v->ext[i].lun, &in);
		if (in.logical_sector != v->sb.sector ||
		    in.capacity < v->sb.ext[i].size) {
			if (v->sb.ext[i].lun_of)   /* grown since opened? */
				ret = fs_extent_reopen(v, v->sb.ext[i].lun_of - 1);
			mp_lun_get_info(v->ext[i].lun, &in);
		}
		if (in.logical_sector != v->sb.sector ||
		    in.capacity < v->sb.ext[i].size) {
			fs_log(v, "%s: %u-byte sectors, %llu bytes; the volume "
			       "expects %u and %llu", v->ext[i].spec,
			       in.logical_sector, (unsigned long long)in.capacity,
			       v->sb.sector,
			       (unsigned long long)v->sb.ext[i].size);
			ret = -FS_E_EXTENTS;
			goto fail;
		}
	}
	v->ss = v->sb.sector;
	if (!v->rdonly && !o->offline) {
		struct lk_join_opts jo = { 0 };
		struct lk_vol_info li;

		ret = lk_open(v->ext[0].lun, v->sb.hb_off, &v->lk);
		if (ret) {
			fs_log(v, "heartbeat region: %s", fs_strerror(ret));
			goto fail;
		}
		for (unsigned i = 1; i < v->next; i++)
			if (!v->ext[i].shared)
				lk_fence_lun_add(v->lk, v->ext[i].lun);
		if (o->host_uuid)
			memcpy(jo.host_uuid, o->host_uuid, 16);
		else if (getrandom(jo.host_uuid, 16, 0) != 16) {
			ret = -errno;
			goto fail;
		}
		jo.host_name = v->host;
		jo.recover = recover_cb;
		jo.recover_arg = v;
		jo.event = o->event;
		jo.event_arg = o->event_arg;
		jo.interval_ms = o->hb_interval_ms;
		jo.dead_ms = o->hb_dead_ms;
		ret = lk_join(v->lk, &jo);
		if (ret) {
			fs_log(v, "joining the volume: %s", fs_strerror(ret));
			goto fail;
		}
		lk_get_info(v->lk, &li);
		v->slot = li.slot;
		ret = fs_journal_open(v);
		if (ret)
			goto fail;
		for (unsigned t = 0; t < FS_R_TYPES; t++) {
			uint64_t total = 0;

			for (unsigned e = 0; e < v->sb.nextents; e++)
				total += v->sb.ext[e].area[fs_area_of(t)].clusters;
			/* affinity: hosts start in different clusters */
			v->alloc_cursor[t] = total ? (unsigned)((uint64_t)v->slot *
					     total / v->sb.slots % total) : 0;
		}
		if (!o->no_janitor) {
			ret = fs_janitor_start(v);
			if (ret)
				goto fail;
		}
		if (!o->no_keep) {
			ret = fs_keeper_start(v);
			if (ret)
				goto fail;
		}
	}
	*out = v;
	return 0;

fail:
	for (unsigned j = 0; j < n; j++)
		if (flun[j])
			mp_lun_close(flun[j]);
	fs_umount(v);
	return ret;
}

void fs_umount(fs_vol *v)
{
	if (!v)
		return;
	fs_janitor_stop(v);
	fs_keeper_stop(v);          /* releases the locks kept held */
	fs_dir_unpin_all(v);        /* their lock handles close with them */
	fs_ccache_clear(v);         /* cluster lock handles (none held) */
	/* every change in place before the locks go (they would wait) */
	{
		int r = fs_journal_wait(v, true);

		if (r)
			fs_log(v, "unmounting with metadata changes not in place "
			       "(%s): what reached the journal is replayed by "
			       "another host, the rest is lost", fs_strerror(r));
	}
	if (v->lk) {
		fs_flush_all(v);
		lk_close(v->lk);
		v->lk = NULL;
	}
	fs_journal_close(v);
	for (unsigned i = 0; i < FS_MAX_EXTENTS; i++) {
		if (v->ext[i].lun && !v->ext[i].shared)
			mp_lun_close(v->ext[i].lun);
		free(v->ext[i].spec);
	}
	for (unsigned i = 0; i < v->nretired; i++)
		mp_lun_close(v->retired[i]);
	for (unsigned i = 0; i < v->ncand; i++)
		free(v->cand[i]);
	free(v->cand);
	pthread_mutex_destroy(&v->lock);
	pthread_mutex_destroy(&v->orphan_lock);
	pthread_mutex_destroy(&v->geom_lock);
	pthread_cond_destroy(&v->clus_cond);
	free(v->clus);
	free(v->pending);
	free(v);
}

lk_volume *fs_lk(fs_vol *v)
{
	return v->lk;
}

void fs_vol_io(fs_vol *v, struct mp_lun_stats io[32])
{
	memset(io, 0, sizeof(*io) * 32);
	for (unsigned i = 0; i < v->sb.nextents && i < 32; i++)
		if (!v->sb.ext[i].lun_of && v->ext[i].lun)
			mp_lun_get_stats(v->ext[i].lun, &io[i]);
}

int fs_vol_info(fs_vol *v, struct fs_vol_info *info)
{
	uint64_t fr[FS_R_TYPES], tot[FS_R_TYPES];
	int ret;

	/* a read-only host has no janitor to notice another host's span or
	 * grow: statfs looks (one superblock read) */
	if (v->rdonly)
		fs_geom_refresh(v);

	memset(info, 0, sizeof(*info));
	memcpy(info->uuid, v->sb.uuid, 16);
	snprintf(info->label, sizeof(info->label), "%s", v->sb.label);
	info->block_size = v->sb.block_size;
	info->sb_size = v->sb.sb_size;
	info->sector = v->sb.sector;
	info->slots = v->sb.slots;
	info->nextents = v->sb.nextents;
	info->slot = v->slot;
	info->read_only = v->rdonly;
	if (v->lk) {
		struct lk_vol_info li;

		lk_get_info(v->lk, &li);
		info->method = li.method;
	}
	for (unsigned i = 0; i < v->sb.nextents; i++) {
		const struct fs_extent_geom *g = &v->sb.ext[i];

		info->extent_size[i] = g->size;
		snprintf(info->extent_spec[i], sizeof(info->extent_spec[i]), "%s",
			 v->ext[i].spec ? v->ext[i].spec : "");
		if (g->lun_of) {
			/* space a grow added at the end of another extent's
			 * LUN: its areas start at the first cluster slot */
			info->extent_size[i] = g->size - g->area[FS_A_FD].meta_off;
			snprintf(info->extent_spec[i], sizeof(info->extent_spec[i]),
				 "%.200s (grown, from byte %llu)",
				 v->ext[i].spec ? v->ext[i].spec : "",
				 (unsigned long long)g->area[FS_A_FD].meta_off);
		}
	}
	{
		uint64_t ef[FS_MAX_EXTENTS] = { 0 };

		ret = fs_count_ext(v, fr, tot, ef);
		if (ret)
			return ret;
		for (unsigned i = 0; i < v->sb.nextents; i++)
			info->extent_free[i] = ef[i] * v->sb.block_size;
	}
	info->capacity = tot[FS_R_FB] * v->sb.block_size;
	info->free = fr[FS_R_FB] * v->sb.block_size;
	info->files = tot[FS_R_FD];
	info->files_free = fr[FS_R_FD];
	return 0;
}
