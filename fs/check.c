/*
 * check.c - fsck: check (and repair) a volume no host has mounted.
 *
 *  1. heartbeat slots: a slot still changing means a live host: refuse.
 *     Slots of hosts that did not leave cleanly: replay their journals
 *     (same rule as a recovering host), then free the slots.
 *  2. walk the namespace from the root: every FD, directory block, pointer
 *     block and data unit reachable, with checksums, owners, generations,
 *     types; blocks referenced twice; link counts.
 *  3. compare what is referenced with the cluster bitmaps: leaked resources
 *     and orphan FDs are freed, referenced ones marked in use.
 *  4. lock records held by hosts that are gone are freed.
 *
 * Without repair nothing is written.  Counts go to the caller; every
 * finding is printed on stdout.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_int.h"
#include "lockmgr/ondisk.h"

struct ck {
	struct fs_vol *v;
	bool repair;
	/* the namespace walk could not read something that may reference
	 * more (an FD, a directory, a pointer block): what it did not reach
	 * is freed, but not discarded, so its data is still there */
	bool partial;
	unsigned errors, fixed;
	/* referenced resources: one bitmap per extent and area */
	uint8_t *ref[FS_MAX_EXTENTS][FS_AREAS];
	uint32_t *links;            /* per FD of extent 0..: counted links */
	uint64_t *fd_index_base;    /* per extent: first FD number */
	uint64_t nfds;
	uint64_t *queue;            /* directories to walk */
	size_t qlen, qcap;
};

static void say(struct ck *c, bool error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(struct ck *c, bool error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (error)
		c->errors++;
}

static uint64_t nres(struct fs_vol *v, unsigned e, unsigned a)
{
	return (uint64_t)v->sb.ext[e].area[a].clusters *
	       v->sb.ext[e].area[a].per_cluster;
}

static uint64_t fd_number(struct ck *c, uint64_t a)
{
	return c->fd_index_base[fs_addr_ext(a)] + fs_addr_index(a);
}

/* Mark resource a referenced; false if it already was. */
static bool mark(struct ck *c, uint64_t a)
{
	unsigned e = fs_addr_ext(a), ar = fs_area_of(fs_addr_type(a));
	uint64_t i = fs_addr_index(a);
	uint8_t *b = c->ref[e][ar];

	if (b[i / 8] & (1u << (i % 8)))
		return false;
	b[i / 8] |= (uint8_t)(1u << (i % 8));
	return true;
}

static const char *tname(enum fs_rtype t)
{
	switch (t) {
	case FS_R_FB: return "file block";
	case FS_R_SB: return "sub-block";
	case FS_R_PB: return "pointer block";
	case FS_R_FD: return "file descriptor";
	default: return "?";
	}
}

/* ---- 1. heartbeat slots and journals -------------------------------------- */

static int check_slots(struct ck *c, unsigned watch_ms)
{
	struct fs_vol *v = c->v;
	size_t len = (size_t)v->sb.slots * v->ss;
	unsigned char *a = fs_balloc(len), *b = fs_balloc(len);
	uint64_t off = v->sb.hb_off + v->ss;
	int ret;

	if (!a || !b) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fs_read(v, 0, off, a, len);
	if (ret)
		goto out;
	usleep(watch_ms * 1000);
	ret = fs_read(v, 0, off, b, len);
	if (ret)
		goto out;
	for (uint32_t i = 0; i < v->sb.slots; i++) {
		struct lk_slot s;
		int r = lk_slot_in(b + (size_t)i * v->ss, &s);

		if (r) {
			say(c, true, "heartbeat slot %u: %s", i, lk_strerror(r));
			continue;
		}
		if (s.state == LK_SLOT_FREE)
			continue;
		if (memcmp(a + (size_t)i * v->ss, b + (size_t)i * v->ss, v->ss)) {
			printf("host '%s' (slot %u) is alive: unmount it everywhere "
			       "first\n", s.host_name, i);
			ret = -EBUSY;
			goto out;
		}
	}
	for (uint32_t i = 0; i < v->sb.slots; i++) {
		struct lk_slot s;
		unsigned n = 0;

		if (lk_slot_in(b + (size_t)i * v->ss, &s) || s.state == LK_SLOT_FREE)
			continue;
		say(c, true, "host '%s' (slot %u) did not leave the volume cleanly",
		    s.host_name, i);
		ret = fs_journal_replay(v, i, &n, !c->repair);
		if (ret) {
			say(c, true, "journal of slot %u: %s", i, fs_strerror(ret));
			ret = 0;
			continue;
		}
		if (n)
			say(c, !c->repair, "journal of slot %u: %u transaction(s) %s",
			    i, n, c->repair ? "replayed" : "to replay");
		if (c->repair) {
			unsigned char *blk = fs_balloc(v->ss);

			s.state = LK_SLOT_FREE;
			s.gen += s.state == LK_SLOT_RECOVERING ? 1 : 2;
			lk_slot_out(&s, blk, v->ss);
			if (blk && fs_write(v, 0, off + (uint64_t)i * v->ss, blk, v->ss) == 0)
				c->fixed++;
			free(blk);
		}
	}
out:
	free(a);
	free(b);
	return ret;
}

/* ---- extent tags ------------------------------------------------------------ */

/*
 * An extent made or added by a binary older than extent tags has none
 * (docs/FORMAT.md "Extents"): it is found by UUID, index and size alone,
 * so an interrupted span's left-over header could be taken for it.  -y
 * tags it: the header first, then the superblock, so that a crash in
 * between leaves a tagged header with an untagged entry, which matches.
 */
static int check_tags(struct ck *c)
{
	struct fs_vol *v = c->v;
	unsigned char *b = fs_balloc(FS_BLOCK);
	struct fs_sb *sb = malloc(sizeof(*sb));
	int ret = b && sb ? 0 : -ENOMEM;

	for (unsigned i = 0; !ret && i < v->sb.nextents; i++) {
		struct fs_ext e;
		uint32_t tag;

		if (v->sb.ext[i].lun_of || v->sb.ext[i].tag)
			continue;
		say(c, c->repair, "extent %u (%s) has no extent tag (made by an "
		    "older version)%s", i, v->ext[i].spec, c->repair ?
		    ": tagging it" : ": fsck -y tags it");
		if (!c->repair)
			continue;
		ret = fs_ext_tag_new(&tag);
		if (!ret)
			ret = fs_read(v, i, 0, b, FS_BLOCK);
		if (!ret)
			ret = fs_ext_in(b, &e);
		if (!ret) {
			e.tag = tag;
			fs_ext_out(&e, b);
			ret = fs_write(v, i, 0, b, FS_BLOCK);
		}
		if (!ret)
			ret = mp_lun_flush(v->ext[i].lun);
		/* the superblock as it is on disk now (a replay may have
		 * changed it), with the entry tagged */
		if (!ret)
			ret = fs_read_sb(v, sb);
		if (!ret) {
			sb->ext[i].tag = tag;
			fs_sb_out(sb, b);
			ret = fs_write(v, 0, FS_SB_SLOT + FS_BLOCK, b, FS_BLOCK);
		}
		if (!ret)
			ret = mp_lun_flush(v->ext[0].lun);
		if (ret) {
			say(c, false, "tagging extent %u: %s", i, fs_strerror(ret));
			ret = 0;
			continue;
		}
		v->sb.ext[i].tag = tag;
		c->fixed++;
	}
	free(b);
	free(sb);
	return ret;
}


/*
 * fsck -y changed the FD of a (directory) file in place: move its lock
 * record's version on, as every change under the lock does, so that a
 * read-only host still attached does not keep using its cached copy
 * (dir.c validates that by the version).
 */
static int bump_lock(struct fs_vol *v, uint64_t addr)
{
	unsigned ext = fs_addr_ext(addr);
	uint64_t off = fs_res_off(v, addr);
	unsigned char *b = fs_balloc(v->ss);
	struct lk_lockrec r;
	int ret;

	if (!b)
		return -ENOMEM;
	ret = fs_read(v, ext, off, b, v->ss);
	if (!ret)
		ret = lk_lockrec_in(b, &r);
	if (!ret) {
		r.version++;
		lk_lockrec_out(&r, b, v->ss);
		ret = fs_write(v, ext, off, b, v->ss);
	}
	free(b);
	return ret;
}

/* ---- 2. the namespace ------------------------------------------------------ */

static void walk_pb(struct ck *c, struct fs_inode *ino, uint64_t a, unsigned lv,
		    const char *what)
{
	struct fs_vol *v = c->v;
	unsigned char *blk;
	struct fs_pb pb;
	int r;

	if (!fs_addr_valid(v, a, FS_R_PB)) {
		say(c, true, "%s: bad pointer block address %llx", what,
		    (unsigned long long)a);
		return;
	}
	if (!mark(c, a)) {
		say(c, true, "%s: pointer block %llx referenced twice", what,
		    (unsigned long long)a);
		return;
	}
	blk = fs_balloc(FS_BLOCK);
	r = blk ? fs_read(v, fs_addr_ext(a), fs_res_off(v, a), blk, FS_BLOCK) : -ENOMEM;
	if (!r)
		r = fs_pb_in(blk, &pb);
	free(blk);
	if (r || pb.owner != ino->addr || pb.owner_gen != ino->fd.gen ||
	    pb.level != lv) {
		say(c, true, "%s: pointer block %llx: %s", what,
		    (unsigned long long)a, r ? fs_strerror(r) : "wrong owner or level");
		c->partial = true;
		return;
	}
	for (unsigned i = 0; i < FS_PB_ADDRS; i++) {
		uint64_t x = pb.addr[i] & ~FS_ADDR_TBZ;

		if (!x)
			continue;
		if (lv > 1) {
			walk_pb(c, ino, x, lv - 1, what);
		} else if (!fs_addr_valid(v, x, FS_R_FB)) {
			say(c, true, "%s: bad block address %llx", what,
			    (unsigned long long)x);
		} else if (!mark(c, x)) {
			say(c, true, "%s: file block %llx referenced twice", what,
			    (unsigned long long)x);
		}
	}
}

static void walk_map(struct ck *c, struct fs_inode *ino, const char *what)
{
	struct fs_vol *v = c->v;
	struct fs_fd *fd = &ino->fd;
	unsigned lv;

	if (fd->map == FS_MAP_INLINE)
		return;
	lv = fd->map - FS_MAP_DIRECT;
	for (unsigned i = 0; i < FS_FD_ADDRS; i++) {
		uint64_t x = fd->addr[i] & ~FS_ADDR_TBZ;
		enum fs_rtype t = fd->unit == FS_UNIT_SB ? FS_R_SB : FS_R_FB;

		if (!x)
			continue;
		if (lv) {
			walk_pb(c, ino, x, lv, what);
		} else if (!fs_addr_valid(v, x, t)) {
			say(c, true, "%s: bad %s address %llx", what, tname(t),
			    (unsigned long long)x);
		} else if (!mark(c, x)) {
			say(c, true, "%s: %s %llx referenced twice", what, tname(t),
			    (unsigned long long)x);
		}
	}
}

struct dctx {
	struct ck *c;
	uint64_t dir;
	uint32_t subdirs;
};

static int entry_cb(void *arg, const struct fs_dirent *de)
{
	struct dctx *d = arg;
	struct ck *c = d->c;
	struct fs_fd fd;
	int r;

	if (!fs_addr_valid(c->v, de->fd, FS_R_FD)) {
		say(c, true, "directory %llx: entry '%s' points nowhere",
		    (unsigned long long)d->dir, de->name);
		return 0;
	}
	r = fs_fd_read(c->v, de->fd, &fd);
	if (r)
		c->partial = true;
	if (r || fd.type == FS_T_FREE || fd.gen != de->gen || fd.type != de->type) {
		say(c, true, "directory %llx: entry '%s' -> %llx: %s",
		    (unsigned long long)d->dir, de->name,
		    (unsigned long long)de->fd,
		    r ? fs_strerror(r) : fd.type == FS_T_FREE ? "a free file descriptor" :
		    "generation or type differs");
		return 0;
	}
	c->links[fd_number(c, de->fd)]++;
	if (fd.type == FS_T_DIR) {
		d->subdirs++;
		if (c->links[fd_number(c, de->fd)] > 1) {
			say(c, true, "directory '%s' (%llx) has more than one name",
			    de->name, (unsigned long long)de->fd);
			return 0;
		}
		if (c->qlen == c->qcap) {
			size_t ncap = c->qcap ? c->qcap * 2 : 256;
			uint64_t *nq = realloc(c->queue, ncap * sizeof(*nq));

			if (!nq)
				return -ENOMEM;
			c->queue = nq;
			c->qcap = ncap;
		}
		c->queue[c->qlen++] = de->fd;
	}
	return 0;
}

/* Visit one FD reached from the namespace (d: its directory context). */
static int visit(struct ck *c, uint64_t a)
{
	struct fs_inode *ino;
	char what[64];
	int r;

	snprintf(what, sizeof(what), "file %llx", (unsigned long long)a);
	if (!mark(c, a))
		return 0;          /* seen already (hard link) */
	r = fs_inode_get(c->v, a, &ino);
	if (r)
		return r;
	r = fs_fd_read(c->v, a, &ino->fd);
	if (r) {
		c->partial = true;
		say(c, true, "%s: %s", what, fs_strerror(r));
		fs_inode_put(ino);
		return 0;
	}
	ino->valid = true;
	walk_map(c, ino, what);
	if (ino->fd.type == FS_T_RDM) {
		/* a mapping owns no blocks; its record must name a LUN (not
		 * repairable: only the LUN's identity could rebuild it) */
		struct fs_rdm rec;

		r = fs_rdm_in(ino->fd.rdm, &rec);
		if (r)
			say(c, true, "%s: raw device mapping record: %s", what,
			    fs_strerror(r));
		else if (ino->fd.alloc_bytes || ino->fd.size != rec.capacity)
			say(c, true, "%s: raw device mapping with %llu bytes "
			    "allocated, size %llu for a LUN of %llu", what,
			    (unsigned long long)ino->fd.alloc_bytes,
			    (unsigned long long)ino->fd.size,
			    (unsigned long long)rec.capacity);
	}
	if (ino->fd.type == FS_T_DIR) {
		struct dctx d = { .c = c, .dir = a };

		r = fs_dir_iterate(ino, entry_cb, &d);
		if (r) {
			c->partial = true;
			say(c, true, "directory %llx: %s", (unsigned long long)a,
			    fs_strerror(r));
		}
		if (!r && ino->fd.nlink != 2 + d.subdirs) {
			say(c, true, "directory %llx: link count %u, should be %u",
			    (unsigned long long)a, ino->fd.nlink, 2 + d.subdirs);
			if (c->repair) {
				struct fs_fd fd = ino->fd;
				unsigned char *blk = fs_balloc(FS_BLOCK);

				fd.nlink = 2 + d.subdirs;
				fs_fd_out(&fd, blk);
				if (fs_write(c->v, fs_addr_ext(a), fs_res_off(c->v, a) +
					     FS_BLOCK, blk, FS_BLOCK) == 0 &&
				    bump_lock(c->v, a) == 0)
					c->fixed++;
				free(blk);
			}
		}
	}
	fs_inode_put(ino);
	return 0;
}

static int check_names(struct ck *c)
{
	int r;

	c->links[fd_number(c, c->v->sb.root)] = 1;
	r = visit(c, c->v->sb.root);
	for (size_t i = 0; !r && i < c->qlen; i++)
		r = visit(c, c->queue[i]);
	/* plain files: visit those linked, then compare link counts */
	for (unsigned e = 0; !r && e < c->v->sb.nextents; e++) {
		for (uint64_t i = 0; i < nres(c->v, e, FS_A_FD); i++) {
			uint64_t a = fs_addr(FS_R_FD, e, i);
			uint32_t links = c->links[fd_number(c, a)];
			struct fs_fd fd;

			if (!links)
				continue;
			if (fs_fd_read(c->v, a, &fd) || fd.type == FS_T_DIR)
				continue;
			r = visit(c, a);
			if (!r && fd.nlink != links)
				say(c, true, "file %llx: link count %u, %u name(s)",
				    (unsigned long long)a, fd.nlink, links);
		}
	}
	return r;
}

/* ---- 3. bitmaps -------------------------------------------------------------- */

/* Give the leaked file blocks of cluster cl of extent e (bits set in
 * mask, already free and durable in its header) back to the LUN, runs of
 * them in one discard, as a live host's free does.  Advisory. */
static void discard_leaked(struct ck *c, unsigned e, uint32_t cl,
			   const uint8_t *mask, unsigned nres)
{
	struct fs_vol *v = c->v;
	uint32_t pc = v->sb.ext[e].area[FS_A_FB].per_cluster;
	int r = 0;

	for (unsigned i = 0; !r && i < nres;) {
		unsigned k = i;

		while (k < nres && (mask[k / 8] & (1u << (k % 8))))
			k++;
		if (k > i) {
			uint64_t a = fs_addr(FS_R_FB, e, (uint64_t)cl * pc + i);

			r = mp_lun_discard(v->ext[e].lun, fs_res_off(v, a),
					   (uint64_t)(k - i) * v->sb.block_size);
		}
		i = k + 1;
	}
	if (r && r != -EOPNOTSUPP && !v->discard_warned) {
		v->discard_warned = true;
		printf("discarding freed blocks on extent %u: %s\n", e,
		       fs_strerror(r));
	}
}

static int check_bitmaps(struct ck *c)
{
	static const char *const area_names[FS_AREAS] = {
		"file descriptor", "pointer block", "sub-block", "file block" };
	struct fs_vol *v = c->v;
	unsigned char *blk = fs_balloc(FS_BLOCK);

	if (!blk)
		return -ENOMEM;
	if (c->repair && c->partial)
		printf("part of the namespace could not be read: blocks it may "
		       "reference are freed but not discarded\n");
	for (unsigned e = 0; e < v->sb.nextents; e++) {
		for (unsigned ar = 0; ar < FS_AREAS; ar++) {
			const struct fs_area *area = &v->sb.ext[e].area[ar];

			for (uint32_t cl = 0; cl < area->clusters; cl++) {
				uint64_t off = fs_cluster_off(v, e, ar, cl) + FS_BLOCK;
				unsigned leaked = 0, unmarked = 0;
				uint8_t freed[FS_RC_MAX_BITS / 8] = { 0 };
				struct fs_rc rc;
				int r = fs_read(v, e, off, blk, FS_BLOCK);

				if (!r)
					r = fs_rc_in(blk, &rc);
				if (r) {
					say(c, true, "%s cluster %u of extent %u: %s",
					    area_names[ar], cl, e, fs_strerror(r));
					continue;
				}
				for (unsigned b = 0; b < rc.nres; b++) {
					uint64_t i = (uint64_t)cl * area->per_cluster + b;
					bool used = rc.bitmap[b / 8] & (1u << (b % 8));
					bool refd = c->ref[e][ar][i / 8] & (1u << (i % 8));

					if (used == refd)
						continue;
					if (used) {
						leaked++;
						freed[b / 8] |= (uint8_t)(1u << (b % 8));
						rc.bitmap[b / 8] &= (uint8_t)~(1u << (b % 8));
						rc.nfree++;
					} else {
						unmarked++;
						rc.bitmap[b / 8] |= (uint8_t)(1u << (b % 8));
						rc.nfree--;
					}
				}
				if (leaked)
					say(c, true, "%u %s(s) in cluster %u of extent %u "
					    "allocated but unused%s", leaked,
					    area_names[ar], cl, e,
					    ar == FS_A_FD ? " (orphan files)" : "");
				if (unmarked)
					say(c, true, "%u %s(s) in cluster %u of extent %u "
					    "in use but marked free", unmarked,
					    area_names[ar], cl, e);
				if ((leaked || unmarked) && c->repair) {
					fs_rc_out(&rc, blk);
					if (fs_write(v, e, off, blk, FS_BLOCK) == 0)
						c->fixed += leaked + unmarked;
					else
						continue;
					/* freed blocks go back to the LUN once
					 * the header saying so is durable; not
					 * when the walk missed part of the tree
					 * (what it hides is not garbage) */
					if (leaked && ar == FS_A_FB && !c->partial &&
					    mp_lun_flush(v->ext[e].lun) == 0)
						discard_leaked(c, e, cl, freed, rc.nres);
				}
			}
		}
	}
	free(blk);
	return 0;
}

/* ---- 4. stale locks --------------------------------------------------------------- */

static void check_lock(struct ck *c, unsigned e, uint64_t off, const char *what)
{
	struct fs_vol *v = c->v;
	unsigned char *b = fs_balloc(v->ss);
	struct lk_lockrec r;
	int ret;

	if (!b)
		return;
	ret = fs_read(v, e, off, b, v->ss);
	if (!ret)
		ret = lk_lockrec_in(b, &r);
	if (ret == -LK_E_BADMAGIC && !strcmp(what, "file"))
		goto out;   /* never allocated yet: written on allocation */
	if (ret) {
		say(c, true, "%s lock at extent %u offset %llu: %s", what, e,
		    (unsigned long long)off, lk_strerror(ret));
		goto out;
	}
	if (r.nholders == 0)
		goto out;
	/* No host is alive (checked first): every hold is stale.  A hold of
	 * a host that was recovered (its slot has moved on) is harmless: the
	 * next host to take the lock drops it.  One of a host that was not is
	 * an error (its slot was reported too). */
	{
		struct lk_slot s;
		unsigned char *sb = fs_balloc(v->ss);
		bool recovered = sb &&
			fs_read(v, 0, v->sb.hb_off + (uint64_t)(r.holders[0].slot + 1) *
				v->ss, sb, v->ss) == 0 &&
			lk_slot_in(sb, &s) == 0 &&
			(s.state == LK_SLOT_FREE || s.gen > r.holders[0].gen + 1 ||
			 (s.state == LK_SLOT_LIVE && s.gen != r.holders[0].gen));

		free(sb);
		if (recovered && !c->repair)
			goto out;
		say(c, !recovered, "%s lock at extent %u offset %llu held by slot "
		    "%u of a host that is gone", what, e, (unsigned long long)off,
		    r.holders[0].slot);
	}
	if (c->repair) {
		r.mode = LK_FREE;
		r.nholders = 0;
		r.version++;
		lk_lockrec_out(&r, b, v->ss);
		if (fs_write(v, e, off, b, v->ss) == 0)
			c->fixed++;
	}
out:
	free(b);
}

static void check_locks(struct ck *c)
{
	struct fs_vol *v = c->v;

	check_lock(c, 0, 4096, "superblock");
	for (unsigned e = 0; e < v->sb.nextents; e++) {
		for (unsigned ar = 0; ar < FS_AREAS; ar++)
			for (uint32_t cl = 0; cl < v->sb.ext[e].area[ar].clusters; cl++)
				check_lock(c, e, fs_cluster_off(v, e, ar, cl),
					   "cluster");
		for (uint64_t i = 0; i < nres(v, e, FS_A_FD); i++)
			if (c->ref[e][FS_A_FD][i / 8] & (1u << (i % 8)))
				check_lock(c, e, fs_res_off(v, fs_addr(FS_R_FD, e, i)),
					   "file");
	}
}

/* ---- entry ----------------------------------------------------------------------- */

int fs_check(const char *const *specs, unsigned n,
	     const struct fs_check_opts *o, struct fs_check_result *res)
{
	struct fs_mount_opts mo = { .host = "fsck", .read_only = !o->repair,
				    .offline = o->repair };
	struct ck c = { .repair = o->repair };
	bool restart = false;
	int ret;

	memset(res, 0, sizeof(*res));
	ret = fs_mount(specs, n, &mo, &c.v);
	if (ret)
		return ret;
	c.v->checking = true;
	c.fd_index_base = calloc(FS_MAX_EXTENTS, sizeof(uint64_t));
	for (unsigned e = 0; e < c.v->sb.nextents; e++) {
		c.fd_index_base[e] = c.nfds;
		c.nfds += nres(c.v, e, FS_A_FD);
		for (unsigned ar = 0; ar < FS_AREAS; ar++) {
			c.ref[e][ar] = calloc(nres(c.v, e, ar) / 8 + 1, 1);
			if (!c.ref[e][ar])
				ret = -ENOMEM;
		}
	}
	c.links = calloc(c.nfds + 1, sizeof(uint32_t));
	if (!c.links || !c.fd_index_base)
		ret = -ENOMEM;
	if (!ret) {
		struct lk_hdr h;
		unsigned char *b = fs_balloc(c.v->ss);

		/* watch the slots for two heartbeat intervals */
		ret = b ? fs_read(c.v, 0, c.v->sb.hb_off, b, c.v->ss) : -ENOMEM;
		if (!ret)
			ret = lk_hdr_in(b, &h);
		free(b);
		if (!ret)
			ret = check_slots(&c, o->watch_ms ? o->watch_ms :
					  2 * h.interval_ms + 100);
	}
	if (!ret && c.repair) {
		/* a replayed journal may have added an extent (a grow or span
		 * that committed before its host died): check the new
		 * geometry from the start */
		struct fs_sb sb;

		restart = fs_read_sb(c.v, &sb) == 0 &&
			  sb.geom_gen != c.v->sb.geom_gen;
		if (restart)
			printf("the volume's geometry changed in the replayed "
			       "journal: checking again\n");
	}
	if (restart)
		goto out;
	if (!ret)
		ret = check_tags(&c);
	if (!ret)
		ret = check_names(&c);
	if (!ret)
		ret = check_bitmaps(&c);
	if (!ret)
		check_locks(&c);
	if (!ret && c.repair)
		ret = fs_flush_all(c.v);
out:
	res->errors = c.errors;
	res->fixed = c.fixed;
	for (unsigned e = 0; e < FS_MAX_EXTENTS; e++)
		for (unsigned ar = 0; ar < FS_AREAS; ar++)
			free(c.ref[e][ar]);
	free(c.links);
	free(c.fd_index_base);
	free(c.queue);
	fs_umount(c.v);
	if (restart && !ret) {
		unsigned errors = res->errors, fixed = res->fixed;

		ret = fs_check(specs, n, o, res);
		/* what the first pass found and fixed (slots, journals) */
		res->errors += errors;
		res->fixed += fixed;
	}
	return ret;
}
