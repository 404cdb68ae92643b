/*
 * fs_int.h - file system internals shared by the fs/ sources.
 */
#ifndef FS_INT_H
#define FS_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "fs/fs.h"
#include "fs/ondisk.h"
#include "lockmgr/lk.h"

struct fs_extent {
	mp_lun *lun;
	char *spec;
	uint64_t capacity;
	bool shared;                 /* lun is another extent's (lun_of) */
};

struct fs_journal;

/* Orphans (orphan.c): files without a name whose blocks are not freed yet;
 * each host lists its own in its heartbeat slot (addr, gen pairs). */
#define FS_ORPHANS (LK_SLOT_DATA / 16)
struct fs_orphan {
	uint64_t addr, gen;
	unsigned tries;
};

#define FS_DIR_PIN 64         /* directories pinned per volume */
#define FS_DC_MAX 16384       /* directory blocks cached per volume (64 MiB) */
#define FS_DC_BUCKETS 64      /* hash chains per directory */

#define FS_CCACHE 16            /* cluster lock handles kept (alloc.c) */
#define FS_FD_PREFETCH 32       /* FD slots read at once (fs_fd_slot_read) */

/*
 * Directory and cluster locks stay held after their last user (keep.c) for
 * as long as this host keeps using them: released FS_KEEP_IDLE_MS after the
 * last use, or at the first end of a use FS_KEEP_MAX_MS after the hold
 * began (then taken per use for FS_KEEP_PAUSE_MS, so that a host waiting
 * for the lock finds it free between uses as it would without keeping).
 * A lock another host waits for, or that our acquire had to wait for or
 * found held by another host since our release less than
 * FS_KEEP_BACKOFF_MS before, is not kept for FS_KEEP_BACKOFF_MS after.
 * Shared holds (directories a host only reads) back off on their own: a
 * shared hold a writer waited for stops shared keeping for
 * FS_KEEP_BACKOFF_MS, a shared try or acquire that met a writer for
 * FS_KEEP_PAUSE_MS; contention among writers does not (hosts that once
 * made directories side by side in one parent go on reading it held).
 */
#define FS_KEEP_IDLE_MS 50
#define FS_KEEP_MAX_MS 2000
#define FS_KEEP_PAUSE_MS 100
#define FS_KEEP_BACKOFF_MS 2000
/* How often the keeper reads a kept lock's record for a waiting host
 * (lk_lock_wanted); a wanted lock goes at once, to the waiter. */
#define FS_KEEP_CHECK_MS 100
/*
 * Any inode's exclusive hold that a transaction of ours not yet in place
 * lists (a file just created, written or renamed) is not released when
 * its last user ends: it is kept until the checkpoint passes those
 * transactions, then released by the keeper (the committer wakes it), so
 * that no user waits for the batch at its release.  At most
 * FS_KEEP_JOURNAL_MAX at once; past that the release waits as before.
 */
#define FS_KEEP_JOURNAL_MAX 4096

struct fs_keep {
	bool kept;                  /* held on disk with no user */
	bool journal;               /* kept for the journal (v->lock) */
	uint64_t since;             /* monotonic ns: the hold began */
	uint64_t last;              /* the last use ended (atomic) */
	uint64_t nokeep;            /* not kept before this (atomic) */
	uint64_t noshare;           /* no shared hold kept before this */
	uint64_t checked;           /* the record last read for a waiter */
	uint64_t released;          /* our last release (0: none) */
};

struct fs_vol {
	struct fs_extent ext[FS_MAX_EXTENTS];
	unsigned next;
	struct fs_sb sb;
	unsigned ss;                 /* sector size */
	bool rdonly;
	char host[65];
	/* a free FD slot held something that is no FD of this volume (one
	 * log line per mount: after mkfs on a used LUN there are many) */
	bool old_fd_logged;          /* atomic */

	lk_volume *lk;               /* NULL when read-only */
	uint32_t slot;
	struct fs_journal *j;
	/* fs_vol_abandon: a committed transaction could not be written in
	 * place; nothing more is written (atomic) */
	bool abandoned;

	pthread_mutex_t lock;        /* below */
	/* the inodes in memory, by address (chains of fs_inode.next): many
	 * hundreds while creates stream (new files' holds are kept until
	 * their batch is in place) */
#define FS_IHASH 4096u
	struct fs_inode *inodes[FS_IHASH];
	/* Directories kept in the inode table with a reference of their own
	 * (the most recently used FS_DIR_PIN), so that their lock handle
	 * (its released version) and their block cache outlive an operation
	 * (dir.c). */
	struct fs_inode *dpin[FS_DIR_PIN];
	unsigned dpin_next;
	uint64_t dc_blocks;          /* directory blocks cached (atomic) */
	unsigned alloc_cursor[FS_R_TYPES]; /* affinity: next cluster to try */
	uint64_t enospc_logged[FS_R_TYPES]; /* last "out of" log, ns (lock) */
	pthread_mutex_t orphan_lock; /* orphans, pending (orphan.c) */
	struct { uint64_t addr, gen; } orphans[FS_ORPHANS]; /* in our slot */
	struct fs_orphan *pending;   /* recovered from dead hosts */
	unsigned npending;
	/* geometry changes (grow.c): v->sb.ext[i] and v->ext[i] are
	 * written once, before v->next / v->sb.nextents grow past i, so
	 * readers bounded by those need no lock */
	pthread_mutex_t geom_lock;   /* refresh, grow, span, the fields below */
	unsigned open_flags;         /* how the extents' LUNs were opened */
	char **cand;                 /* devices that may become extents */
	unsigned ncand;
	mp_lun *retired[64];         /* replaced by a reopen, closed at umount */
	unsigned nretired;
	unsigned geom_missing;       /* extent last reported not found + 1 */
	bool discard_warned;         /* a discard failed (logged once) */
	bool no_discard;             /* fs_mount_opts.no_discard */
	bool checking;               /* fsck's mount: FDs are read as they are,
				      * their addresses judged one by one */
	/* Cluster locks held by this host's transactions (alloc.c, under
	 * `lock`): the on-disk record names only the host, so a second
	 * transaction of ours would take it as already held and change the
	 * same bitmap; it waits here instead. */
	pthread_cond_t clus_cond;
	struct fs_clus { unsigned ext; uint64_t off; } *clus;
	unsigned nclus, capclus;
	/* Handles of the cluster locks this host used last, kept open across
	 * transactions (alloc.c, under `lock`), with the header as our last
	 * transaction under the lock left it: an uncontended allocation from
	 * the affine cluster reads neither the lock record nor the header. */
	struct fs_ccache {
		lk_lock *l;              /* NULL: a free entry */
		unsigned ext;
		uint64_t off;            /* the cluster slot (lock record) */
		uint64_t used;           /* for eviction, least recent first */
		bool hdr_ok;             /* hdr: as our last transaction left it */
		bool fresh;              /* hdr_ok and nobody else held the lock
					  * since (judged at our acquire) */
		struct fs_keep keep;     /* the lock kept held (keep.c) */
		unsigned char hdr[FS_BLOCK];
		/* FD clusters: slots pf_first.. of the cluster as read in
		 * one I/O under the lock (FS_FD_PREFETCH), each bit of
		 * pf_bits one still to hand out (free then, its record
		 * free; fs_fd_slot_read); all clear once another host may
		 * have held the lock (or ours was lost) */
		unsigned char *pf;
		uint32_t pf_first;
		uint64_t pf_bits;
	} ccache[FS_CCACHE];
	uint64_t ccache_tick;
	/* Locks kept held after their last use (keep.c): the directories
	 * (their inodes, each with a reference) and, in ccache, clusters */
	struct fs_inode *kept;
	/* Inode locks kept for the journal (FS_KEEP_JOURNAL_MAX), oldest
	 * first, each with a reference; how many (v->lock, read atomically) */
	struct fs_inode *jk_head, *jk_tail;
	unsigned kept_journal;
	/* fs_set_cache_hooks (cache_arg first, then cache_drop, atomic) */
	void (*cache_drop)(void *arg, uint64_t ino, unsigned flags);
	void *cache_arg;
	bool keep_stop;              /* the keeper thread */
	bool keep_kicked;            /* fs_keep_kick since its last round */
	bool keep_running;
	pthread_cond_t keep_cond;
	pthread_t keeper;
	bool jan_stop;               /* the janitor (janitor.c) */
	bool jan_running;
	pthread_cond_t jan_cond;
	pthread_t jan;
};

/* Before the transaction removing the last name of a file that will not be
 * freed in it: list it in our slot (durable on return). */
int fs_orphan_add(struct fs_vol *v, uint64_t addr, uint64_t gen);
/* After it was freed (or kept its name after all). */
void fs_orphan_del(struct fs_vol *v, uint64_t addr);
/* A dead host's list (its slot data): queue for the janitor. */
void fs_orphan_recovered(struct fs_vol *v, const unsigned char *data);
/* Free what the dead hosts left (janitor). */
void fs_orphan_reap(struct fs_vol *v);
/* Free a file without names (locked exclusive, rw held). */
int fs_inode_delete(struct fs_inode *ino);

/* ---- geometry (volume.c, grow.c) ---------------------------------------- */

/* Lay out the areas of a further extent in [start, size) as mkfs does;
 * *nfb = its file blocks.  -ENOSPC when not one cluster fits. */
int fs_layout_further(struct fs_extent_geom *g, uint64_t start, uint64_t size,
		      uint32_t bs, uint64_t *nfb);
/* Write the cluster slots of every area of g (extent index ext); with root,
 * the root directory's FD and sub-block are marked in use. */
int fs_write_areas(mp_lun *lun, const struct fs_extent_geom *g, unsigned ext,
		   const uint8_t uuid[16], unsigned ss, uint64_t nfb, bool root);
int fs_read_sb(struct fs_vol *v, struct fs_sb *sb);
/* Remember a device that may become an extent later (geom_lock held or
 * not yet shared). */
int fs_candidate_add(struct fs_vol *v, const char *spec);
/* Open extent e's LUN again (it grew): every entry on it moves to the new
 * handle, the old one is retired. */
int fs_extent_reopen(struct fs_vol *v, unsigned e);
/* Read the superblock; when its geometry generation moved on, take the
 * new extents in (opening new LUNs among the candidates).  Returns 1 when
 * something changed, 0 when not, or an error. */
int fs_geom_refresh(struct fs_vol *v);
/* Addresses just read from disk (an FD's, a pointer block's): one on an
 * extent this host does not know yet makes it refresh first; -EIO (logged)
 * when it still does not know it (the new LUN is not among its
 * candidates), so that nothing reaches an extent it has no LUN for. */
int fs_geom_see(struct fs_vol *v, const uint64_t *addr, unsigned n);

/* Start / stop the thread recovering dead hosts (read-write mounts). */
int fs_janitor_start(struct fs_vol *v);
void fs_janitor_stop(struct fs_vol *v);

/* ---- locks kept after use (keep.c) -------------------------------------- */

uint64_t fs_mono_ns(void);
/* A use of the lock ended and nothing else of ours holds it: true if it is
 * to stay held (k's times updated; the caller sets k->kept). */
bool fs_keep_policy(struct fs_vol *v, struct fs_keep *k, uint64_t now,
		    bool shared);
/* Whether a hold taken now may be kept (fs_keep_policy without its
 * bookkeeping): keeper running, volume not given up, no backoff (of
 * shared holds if shared). */
bool fs_keep_allowed(struct fs_vol *v, const struct fs_keep *k, uint64_t now,
		     bool shared);
/* A use of a kept hold that took no use of the lock (a lookup in a
 * directory already held): it stays another FS_KEEP_IDLE_MS. */
void fs_keep_touch(struct fs_keep *k, uint64_t now);
/* Another host wants the lock: stop keeping it (shared: shared holds of
 * it) for a while. */
void fs_keep_contended(struct fs_keep *k, uint64_t now, bool shared);
/* A shared try or acquire met another host's exclusive hold (a writer
 * in the directory): no shared hold kept for FS_KEEP_PAUSE_MS.  Only a
 * shared hold that made a writer wait stops them for longer. */
void fs_keep_met_writer(struct fs_keep *k, uint64_t now);
/* Right after our acquire: waited (lk_waited), valid (lk_cache_valid),
 * shared (the hold taken). */
void fs_keep_acquired(struct fs_keep *k, bool waited, bool valid, uint64_t now,
		      bool shared);
/* A kept lock (held shared if shared) is due for release (always when
 * force); l's record is read for a waiting host every FS_KEEP_CHECK_MS. */
bool fs_keep_due(struct fs_keep *k, lk_lock *l, uint64_t now, bool force,
		 bool shared);
/* The list of kept directories (v->kept), with a reference each (under
 * the inode's lk_m); del clears keep.kept and leaves the reference to the
 * caller's fs_inode_put. */
void fs_keep_add(struct fs_inode *ino);
void fs_keep_del(struct fs_inode *ino);
/* Under the inode's lk_m, its hold exclusive with no user left and listed
 * by a transaction not in place: kept for the journal (added to the list
 * if not there, keep.journal set).  False (nothing done) if the keeper is
 * not running or FS_KEEP_JOURNAL_MAX are kept so already. */
bool fs_keep_for_journal(struct fs_inode *ino);
/* Kept by fs_keep_policy (a directory): no longer for the journal. */
void fs_keep_by_policy(struct fs_inode *ino);
/* The committer moved the checkpoint: wake the keeper if anything is kept
 * for the journal. */
void fs_keep_kick(struct fs_vol *v);
/* fs_sync, after every transaction is in place: release every hold kept
 * for the journal that no user has now (waiting for their lk_m). */
void fs_keep_settle(struct fs_vol *v);
enum fs_expire {
	FS_EXPIRE_DUE,              /* the keeper: what is due, lk_m tried */
	FS_EXPIRE_SETTLE,           /* fs_keep_settle: those for the journal */
	FS_EXPIRE_ALL,              /* everything (the keeper stops) */
};
enum fs_kept {
	FS_KEPT_GONE,               /* released or left to an open: unkept */
	FS_KEPT_STAYS,              /* not due */
	FS_KEPT_BUSY,               /* in use (lk_m tried, or a user) */
};
/* inode.c: release a kept inode lock if due (a hold kept for the journal:
 * once no pending transaction lists it; a directory's: fs_keep_due); its
 * list reference is dropped when it is unkept. */
enum fs_kept fs_inode_keep_expire(struct fs_inode *ino, uint64_t now,
				  enum fs_expire how);
/* alloc.c: release the kept cluster locks that are due (all if force). */
void fs_cluster_keep_expire(struct fs_vol *v, uint64_t now, bool force);
/* alloc.c, under v->lock: whether any cluster lock is kept. */
bool fs_cluster_keep_any(struct fs_vol *v);
/* The keeper thread (not on read-only or offline volumes); stop releases
 * every kept lock. */
int fs_keeper_start(struct fs_vol *v);
void fs_keeper_stop(struct fs_vol *v);

/* ---- geometry ---------------------------------------------------------- */

static inline unsigned fs_area_of(enum fs_rtype t)
{
	switch (t) {
	case FS_R_FD: return FS_A_FD;
	case FS_R_PB: return FS_A_PB;
	case FS_R_SB: return FS_A_SB;
	default: return FS_A_FB;
	}
}

/* Size of one resource of type t. */
static inline uint64_t fs_res_size(const struct fs_vol *v, enum fs_rtype t)
{
	switch (t) {
	case FS_R_FD: return FS_SLOT;
	case FS_R_PB: return FS_BLOCK;
	case FS_R_SB: return v->sb.sb_size;
	default: return v->sb.block_size;
	}
}

/* Byte offset on its extent of resource `a` (for FD: the slot, whose lock
 * sector comes first and whose 4 KiB FD body is at +4096). */
static inline uint64_t fs_res_off(const struct fs_vol *v, uint64_t a)
{
	const struct fs_area *ar =
		&v->sb.ext[fs_addr_ext(a)].area[fs_area_of(fs_addr_type(a))];

	return ar->res_off + fs_addr_index(a) * fs_res_size(v, fs_addr_type(a));
}

/* Whether address a names an existing resource of type t. */
/* An address beyond the extents this host knows makes it read the
 * superblock first (another host may have grown the volume). */
bool fs_addr_valid(struct fs_vol *v, uint64_t a, enum fs_rtype t);

/* Cluster slot offset (lock record; header at +4096) of the cluster of a. */
static inline uint64_t fs_cluster_off(const struct fs_vol *v, unsigned ext,
				      unsigned area, uint32_t cluster)
{
	return v->sb.ext[ext].area[area].meta_off + (uint64_t)cluster * FS_SLOT;
}

/* Read and verify the extent header of a LUN. */
int fs_read_ext_header(mp_lun *lun, struct fs_ext *e);

/* ---- block I/O (io.c) ---------------------------------------------------- */
/* Read / write whole 4 KiB metadata blocks (or anything sector aligned). */
int fs_read(struct fs_vol *v, unsigned ext, uint64_t off, void *buf, size_t len);
int fs_write(struct fs_vol *v, unsigned ext, uint64_t off, const void *buf,
	     size_t len);
int fs_flush_all(struct fs_vol *v);
/* The same for the extents in mask (bit i = extent i). */
int fs_flush_mask(struct fs_vol *v, uint32_t mask);
void *fs_balloc(size_t len);     /* aligned, zeroed */
/*
 * A transaction is in the journal but not (wholly) in place, and the
 * host cannot tell what is: give the volume up (lk_abandon) with every
 * lock kept, so that no lock version moves before another host has
 * replayed the journal.  Every later commit fails with -EIO.
 */
void fs_vol_abandon(struct fs_vol *v, const char *why);
void fs_log(struct fs_vol *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Report a damaged metadata block: logged with what and where. */
int fs_bad_meta(struct fs_vol *v, int err, const char *what, unsigned ext,
		uint64_t off);
uint64_t fs_now_ns(void);

/* ---- journal and transactions (journal.c) ------------------------------ */

struct fs_tx;

/* Open the journal of our slot (after join, before any lock is taken):
 * new sequence numbers, the committer thread, the lock hand-over hook. */
int fs_journal_open(struct fs_vol *v);
/* Stop the committer (after fs_journal_wait) and free the journal. */
void fs_journal_close(struct fs_vol *v);
void fs_journal_stop(struct fs_vol *v);
/* Wait until every transaction committed so far is durable in the log
 * (in_place false: what fsync needs) or also in place with the checkpoint
 * past it.  -EIO if the committer failed (the volume is given up). */
int fs_journal_wait(struct fs_vol *v, bool in_place);
/* How long a batch gathers: delay_ms after its first transaction, idle_ms
 * after its last (defaults 100 and 2); for tests that need transactions
 * in one batch whatever the machine's speed. */
void fs_journal_gather(struct fs_vol *v, unsigned delay_ms, unsigned idle_ms);
/* Transactions committed and batches written since the journal opened. */
void fs_journal_stats(struct fs_vol *v, uint64_t *commits, uint64_t *batches);
/* fs_read through the overlay: the newest committed image of each block
 * not yet in place, the device (dev) for the rest. */
int fs_journal_read(struct fs_vol *v, unsigned ext, uint64_t off, void *buf,
		    size_t len, int (*dev)(struct fs_vol *, unsigned, uint64_t,
					   void *, size_t));
/* Whether a file block or sub-block is freed by a transaction the
 * checkpoint has not passed yet (not to be allocated again before). */
bool fs_quarantined(struct fs_vol *v, uint64_t addr);
bool fs_quarantine_any(struct fs_vol *v);
/* Replay the journal of `slot` (a dead host's, or any for fsck); with dry,
 * only count what would be replayed. */
int fs_journal_replay(struct fs_vol *v, uint32_t slot, unsigned *applied,
		      bool dry);

/* Whether a transaction not yet in place lists the lock whose record is
 * at (ext, off): its hand-over would wait for the checkpoint. */
bool fs_journal_lock_pending(struct fs_vol *v, unsigned ext, uint64_t off);

struct fs_tx *fs_tx_begin(struct fs_vol *v);
/* Record a lock (its record on extent ext) the transaction depends on. */
int fs_tx_lock(struct fs_tx *tx, unsigned ext, lk_lock *l);
/* The same by the record's offset and the version we hold it at (a lock
 * whose handle does not exist yet: a new file's, fs_inode_alloc). */
int fs_tx_lock_at(struct fs_tx *tx, unsigned ext, uint64_t off, uint64_t ver);
/* Add / replace the image of the 4 KiB block at (ext, off). */
int fs_tx_put(struct fs_tx *tx, unsigned ext, uint64_t off, const void *blk);
/* Read a block as the transaction would leave it. */
int fs_tx_get(struct fs_tx *tx, unsigned ext, uint64_t off, void *blk);
/* A lock to release once the transaction is in place (cluster locks); with
 * close, the handle is closed too.  Also recorded as with fs_tx_lock. */
int fs_tx_defer_release(struct fs_tx *tx, unsigned ext, lk_lock *l,
			bool close);
/* As fs_tx_defer_release for a cluster lock taken with fs_cluster_take:
 * released for the host's other transactions too, and its cached header
 * brought up to date (fs_cluster_done). */
int fs_tx_defer_cluster(struct fs_tx *tx, unsigned ext, lk_lock *l, bool close);
/* The image of the block at (ext, off) if the transaction has one. */
bool fs_tx_peek(struct fs_tx *tx, unsigned ext, uint64_t off, void *blk);
/* After the transaction released cluster lock l (alloc.c): hdr is the
 * header it wrote (NULL: it wrote none), ok whether it is in place and the
 * release succeeded.  The cache keeps or forgets its copy accordingly. */
void fs_cluster_done(struct fs_vol *v, lk_lock *l, const void *hdr, bool ok);
/* A cluster lock whose hold must stay on disk (the volume given up): out
 * of the cache; the caller closes the handle keeping the hold. */
void fs_cluster_forget(struct fs_vol *v, lk_lock *l);
/* At the end of a transaction under cached cluster lock l: true if the
 * lock stays held for our next one (keep.c), false if it is to be
 * released now; unkeep: it is released (not kept). */
bool fs_cluster_keep(struct fs_vol *v, lk_lock *l);
void fs_cluster_unkeep(struct fs_vol *v, lk_lock *l);
/* Close the cached cluster lock handles (unmount; none held). */
void fs_ccache_clear(struct fs_vol *v);
/* Take / give back the host-local hold of the cluster lock at (ext, off)
 * (alloc.c): waits up to timeout_ms while another transaction of this host
 * holds it, -EBUSY at once with 0, -ETIMEDOUT after. */
int fs_cluster_take(struct fs_vol *v, unsigned ext, uint64_t off,
		    unsigned timeout_ms);
void fs_cluster_drop(struct fs_vol *v, unsigned ext, uint64_t off);
/* Whether the transaction holds a cluster lock (fs_tx_defer_cluster). */
bool fs_tx_holds_clusters(const struct fs_tx *tx);
/* A resource the transaction unmapped, to be freed once it committed and
 * its cluster locks went (fs_free of a cluster another transaction of
 * this host holds, while this one holds others: waiting could close a
 * cycle).  -ENOSPC when the list is full.  A crash in between leaks it
 * (fsck reclaims), it is never freed while mapped. */
int fs_tx_defer_free(struct fs_tx *tx, uint64_t a);
/* Free deferred resources, one transaction per cluster (alloc.c). */
void fs_free_deferred(struct fs_vol *v, uint64_t *a, unsigned n);
/* Whether the transaction already depends on the lock at (ext, off). */
bool fs_tx_has_lock(struct fs_tx *tx, unsigned ext, uint64_t off);
/* A file block the transaction frees: discarded on its LUN (punch hole,
 * UNMAP) once the transaction is in place, before its cluster locks can
 * go or the block leaves the quarantine (nobody allocates it before). */
#define FS_TX_DISCARDS 256
void fs_tx_discard(struct fs_tx *tx, uint64_t a);
/* A file block or sub-block the transaction frees: quarantined once it
 * commits (fs_quarantined), and not allocated again by the transaction
 * itself (fs_tx_freed). */
int fs_tx_note_free(struct fs_tx *tx, uint64_t a);
bool fs_tx_freed(const struct fs_tx *tx, uint64_t a);
/* Commit (queued for the log and in place: write-back, see journal.c) and
 * free; releases deferred locks either way (their hand-over waits until
 * the transaction is in place). */
int fs_tx_commit(struct fs_tx *tx);
/* Commit durable and in place before it returns, as one batch of its own
 * after everything queued before (growing the volume: other hosts read
 * the superblock without a lock).  A failure before it is durable leaves
 * nothing of it anywhere; after, the volume is given up. */
int fs_tx_commit_sync(struct fs_tx *tx);
/* The transaction maps file data written before it (flushed before the
 * journal commit). */
void fs_tx_mark_data(struct fs_tx *tx);
void fs_tx_abort(struct fs_tx *tx);
unsigned fs_tx_blocks(const struct fs_tx *tx);
struct fs_vol *fs_tx_vol(struct fs_tx *tx);

/* ---- inodes (inode.c) ------------------------------------------------------ */

/* Pointer blocks cached per file: 64 sets of 4 (LRU within a set), each
 * block allocated when first used, so 1 MiB at most for a file with 256
 * or more pointer blocks (256 x 503 units: 125 GiB in 1 MiB blocks). */
#define FS_PBC_SETS 64
#define FS_PBC_WAYS 4
#define FS_PEND_MAX 2048   /* deferred TBZ clears per file */
#define FS_AHEAD_MAX 255   /* units allocated ahead per transaction */

/* One file descriptor as this host knows it.  Table entries are shared by
 * every user on the host and reference counted. */
struct fs_inode {
	struct fs_vol *v;
	uint64_t addr;
	unsigned ext;
	uint64_t slot_off;          /* lock sector; FD body at +4096 */
	unsigned refs;              /* under v->lock */
	struct fs_inode *next;      /* v->inodes */

	/* Operations on this inode in this host: writers (metadata changes,
	 * allocation) exclusive, data I/O on mapped blocks shared.  Taken in
	 * the on-disk lock order: directories before files, lower address
	 * first. */
	pthread_rwlock_t rw;

	/* Changes of the on-disk lock (fs_inode_lock/unlock): one at a
	 * time, held across the lock-record I/O and the FD read; taken
	 * before rw and m, never while holding either (m is taken by the
	 * device layer's completion thread for fs_aio, which a lock-record
	 * I/O on the same LUN may wait behind). */
	pthread_mutex_t lk_m;
	lk_lock *lock;              /* opened under lk_m, then fixed */
	/* Under lk_m: a cache outside the library relies on our hold
	 * (fs_cache_hold; the drop hook runs before it goes): 0, or
	 * FS_CACHED_OUT with the hook's FS_DROP_DIR for a directory; and
	 * the number of holds lost so far (fs_cache_still's token). */
#define FS_CACHED_OUT 0x80u
	uint8_t cached_out;
	uint64_t holds_lost;
	/* Under lk_m: our hold came with the create, whose transaction
	 * carries the record (fs_inode_seed): until that is in place the
	 * record on disk is the slot's old one, not worth reading */
	bool rec_new;

	pthread_mutex_t m;          /* the fields below */
	/* held changes under lk_m, m and (from LK_FREE) rw exclusive, so
	 * that a reader with rw shared that finds it LK_FREE can trust
	 * its refreshed fd until it lets rw go; read atomically without m */
	enum lk_mode held;          /* on disk, for this host */
	unsigned lock_users;        /* operations in progress using it */
	unsigned opens_rw, opens_ro;
	/* fd and valid change with rw exclusive (and m), or under m by
	 * the thread that holds the file's lock exclusively and rw
	 * exclusive */
	bool valid;                 /* fd is current (read under the lock) */
	struct fs_fd fd;
	bool fd_dirty;              /* size / times changed, not committed */
	/* The file's pointer blocks as read or last put into a transaction
	 * (bmap.c).  pbc_m is a leaf lock (taken under m, never held across
	 * I/O): readers with rw shared fill it at once, so entries are only
	 * ever copied out under it, never pointed to. */
	pthread_mutex_t pbc_m;      /* also dc below */
	struct fs_pbc_ent {
		uint64_t addr;      /* 0: empty */
		uint64_t used;      /* pbc_tick at the last hit */
		struct fs_pb *pb;   /* allocated at first use, kept */
	} pbc[FS_PBC_SETS][FS_PBC_WAYS];
	uint64_t pbc_tick;
	/* Bumped (under pbc_m) whenever the pointer block or directory
	 * cache is forgotten.  A block read from disk goes into a cache only
	 * if no forget came between the read and the fill: a reader with rw
	 * shared that read a block just before another thread found it stale
	 * (record moved, lock acquired) must not put it back after. */
	uint64_t cache_epoch;
	/* Directory blocks (dir.c) by offset in the directory, as the
	 * directory was when its lock record showed version dc_ver (0: not
	 * known to be current).  Every change of ours goes into it as it is
	 * put into a transaction; it is emptied whenever another host may
	 * have changed the directory (the record moved on, an acquire that
	 * found it so, an aborted transaction, a new FD generation). */
	struct fs_dcent {
		struct fs_dcent *next;
		uint64_t foff;
		unsigned char img[4096];
	} **dc;
	uint64_t dc_ver, dc_gen;
	unsigned dc_n;
	bool pinned;                /* in v->dpin (under v->lock) */
	/* fs_dir_cache_refresh waiting for or holding rw exclusive (under m,
	 * read atomically): unlocked readers wait before they take rw shared,
	 * so a stream of them cannot starve it (glibc prefers readers) */
	int dc_refreshing;

	/* Write-behind of the map (file.c).  pend: units mapped "to be
	 * zeroed" on disk that this host has written whole since, their
	 * flag cleared in memory only (fs_bmap_get returns them as data);
	 * committed with the FD by the next fsync, close, or when the list
	 * is full.  An entry is `busy` while its first write is in flight
	 * (its writer holds rw for reading; others wait on `filled`), and
	 * reads as "to be zeroed" until then.  ahead: units allocated
	 * (mapped TBZ on disk) ahead of a sequential writer and not written
	 * yet; given back at the last read-write close.  Both lists change
	 * under m, or with rw held for writing. */
	struct fs_unit_ref { uint64_t b, a; bool busy; } *pend, *ahead;
	unsigned npend, nahead;
	pthread_cond_t filled;      /* a busy entry done, aio_inflight 0 */
	unsigned aio_inflight;      /* fs_aio requests at the LUN, under m */
	/* Counts changes of the file's data or size made on this host,
	 * each counted once it is on the LUN and before it is acknowledged
	 * (atomic; fs_file_data_seq) */
	uint64_t data_seq;
	unsigned ahead_run;         /* units to allocate ahead next time */
	uint64_t seq_next;          /* unit after the last write (a hint) */
	/* A directory's lock kept held after its last user (keep.c), under
	 * lk_m; kept also means a reference of its own and a place in
	 * v->kept (under v->lock) */
	struct fs_keep keep;
	/* next in v->kept or (keep.journal) in v->jk_head's list; prev
	 * there (v->lock) */
	struct fs_inode *kept_next, *jk_prev;
};

/* Decode the FD at addr without any lock; re-read on checksum mismatch a
 * few times (another host may be writing it in place). */
int fs_fd_read(struct fs_vol *v, uint64_t addr, struct fs_fd *fd);
/* Put an FD image into a transaction. */
int fs_fd_put(struct fs_tx *tx, const struct fs_fd *fd);

int fs_inode_get(struct fs_vol *v, uint64_t addr, struct fs_inode **out);
void fs_inode_put(struct fs_inode *ino);
/*
 * Hold the inode's on-disk lock at least in mode for an operation (0, or
 * -EBUSY naming the holder in the log).  Refreshes ino->fd from disk when
 * another host may have changed it.
 */
/* timeout_ms: 0 = the default (10 s); FS_LOCK_TRY = once, without
 * waiting and quietly (-EBUSY) */
#define FS_LOCK_TRY UINT_MAX
int fs_inode_lock(struct fs_inode *ino, enum lk_mode mode, unsigned timeout_ms);
void fs_inode_unlock(struct fs_inode *ino);
/* After a failed transaction the FD and map in memory may be ahead of the
 * disk: drop cached pointer blocks and read the FD again. */
void fs_inode_reload(struct fs_inode *ino);
/* Add the inode's lock to a transaction (it must be held). */
int fs_inode_tx(struct fs_tx *tx, struct fs_inode *ino);
/* The inode of addr if this host has it in memory (a reference for the
 * caller), or NULL: nothing is read or allocated. */
struct fs_inode *fs_inode_find(struct fs_vol *v, uint64_t addr);
/* Call the drop hook of fs_set_cache_hooks, if any (fs.h). */
void fs_cache_drop(struct fs_vol *v, uint64_t addr, unsigned flags);
/* Allocate and initialise a new FD of type in tx; returns its address.
 * The FD's lock record is (re)written free, or held by this host in hold
 * (an open that comes with the create), version above any old one. */
/* lockrec (v->ss bytes, or NULL): the lock record as written. */
int fs_inode_alloc(struct fs_tx *tx, uint8_t type, uint32_t mode, uint32_t uid,
		   uint32_t gid, uint64_t parent, struct fs_fd *out,
		   void *lockrec, enum lk_mode hold);
/* A new file this host just committed (fd as written, lockrec its lock
 * record as written, free or held by us): the inode in memory knows both,
 * so that opening it next reads neither while nobody else touched it (and
 * a hold written with the file is ours without a compare-and-write). */
void fs_inode_seed(struct fs_inode *ino, const struct fs_fd *fd,
		   const void *lockrec);
/* stat of an FD. */
void fs_stat_from_fd(const struct fs_fd *fd, struct fs_stat *st);
/* Who holds the lock of FD addr, for messages ("" if nobody). */
void fs_inode_holder(struct fs_vol *v, uint64_t addr, char *buf, size_t len);
/* The lock record of FD addr as it is on disk (-EROFS on read-only hosts). */
int fs_inode_lock_info(struct fs_vol *v, uint64_t addr, struct lk_lock_info *li);

/* ---- block mapping (bmap.c) ------------------------------------------------- */

/* Unit size of a file (sub-block or file block). */
static inline uint64_t fs_unit(const struct fs_vol *v, const struct fs_fd *fd)
{
	return fd->unit == FS_UNIT_SB ? v->sb.sb_size : v->sb.block_size;
}

/* Address mapped at unit index b (0 = hole), reading pointer blocks
 * through the inode's cache. */
int fs_bmap_get(struct fs_inode *ino, uint64_t b, uint64_t *addr);
/* The same without I/O: -EWOULDBLOCK when a pointer block it needs is not
 * cached (for completion callbacks, which must not wait for I/O). */
int fs_bmap_peek(struct fs_inode *ino, uint64_t b, uint64_t *addr);
/* Map unit b to addr inside tx (allocating pointer blocks, deepening the
 * map as needed); ino->fd is updated (and put into tx by the caller). */
int fs_bmap_set(struct fs_tx *tx, struct fs_inode *ino, uint64_t b,
		uint64_t addr);
/* Units the current map can address. */
uint64_t fs_bmap_capacity(const struct fs_fd *fd);
/* Byte offset on its extent where unit address a starts. */
static inline uint64_t fs_unit_off(const struct fs_vol *v, uint64_t a)
{
	return fs_res_off(v, a & ~FS_ADDR_TBZ);
}
/* Free the pointer block tree under PB a (level lv), itself included. */
int fs_bmap_free_tree(struct fs_tx *tx, struct fs_inode *ino, uint64_t a,
		      unsigned lv);
/* Drop cached pointer blocks (after the map changed or the lock moved). */
void fs_bmap_forget(struct fs_inode *ino);
/* Free the cache's memory (the inode goes away). */
void fs_bmap_release(struct fs_inode *ino);

/* ---- directories (dir.c) ----------------------------------------------------- */

/* Empty dir's block cache (someone else may have changed it). */
void fs_dir_cache_drop(struct fs_inode *dir);
/* Free the cache's memory (the inode goes away). */
void fs_dir_cache_release(struct fs_inode *dir);
/* Keep dir in the inode table between operations (one of the last
 * FS_DIR_PIN used); fs_dir_unpin_all at unmount. */
void fs_dir_pin(struct fs_inode *dir);
void fs_dir_unpin_all(struct fs_vol *v);
/*
 * Before an operation that reads dir without holding its lock: read its
 * lock record; when it still shows the version the cache was current at
 * (and nobody holds it exclusively), keep the cached FD and blocks (0),
 * else 1: the caller lets go of dir->rw and calls fs_dir_cache_refresh,
 * which reads a fresh FD and, with dir->rw exclusive (readers use the FD
 * and caches with it shared), sets it and empties the cache; then takes
 * dir->rw shared again.  seen->ver is the version seen (0 if it may not
 * be cached); fs_dir_cache_seal(dir, seen) after the operation read what
 * it needed marks what was read current if the record still shows that
 * version and nothing emptied the cache (or set the FD) since the
 * refresh.  Callers hold dir->rw shared (refresh: not) and not the lock.
 */
struct fs_dc_seen {
	uint64_t ver;               /* record version seen (0: do not seal) */
	uint64_t epoch;             /* dir->cache_epoch after the check */
};
int fs_dir_cache_check(struct fs_inode *dir, struct fs_dc_seen *seen);
int fs_dir_cache_refresh(struct fs_inode *dir, struct fs_dc_seen *seen);
/* An unlocked reader of dir, before it takes dir->rw shared: wait while a
 * refresh is under way. */
void fs_dir_cache_enter(struct fs_inode *dir);
void fs_dir_cache_seal(struct fs_inode *dir, const struct fs_dc_seen *seen);

/* Make dir (a fresh FD, map/unit set here) an empty directory in tx. */
int fs_dir_init(struct fs_tx *tx, struct fs_inode *dir);
/* Find name (tx may be NULL for a lock-free lookup). */
/* Unlocked directory reads that meet a concurrent change (-EAGAIN) start
 * over this many times before the directory is reported damaged. */
#define FS_DIR_RETRIES 8
int fs_dir_find(struct fs_tx *tx, struct fs_inode *dir, const char *name,
		struct fs_dirent *de);
int fs_dir_add(struct fs_tx *tx, struct fs_inode *dir, const char *name,
	       uint64_t fd, uint64_t gen, uint8_t type);
int fs_dir_remove(struct fs_tx *tx, struct fs_inode *dir, const char *name,
		  struct fs_dirent *removed);
/* Split a bucket first if the next insert would overload the table. */
int fs_dir_maybe_split(struct fs_tx *tx, struct fs_inode *dir);
/* Whether the directory should move to file blocks before growing. */
bool fs_dir_needs_fb(struct fs_tx *tx, struct fs_inode *dir);
int fs_dir_count(struct fs_tx *tx, struct fs_inode *dir, uint64_t *n);
/* Every entry (cb returns nonzero to stop; negative is an error). */
int fs_dir_iterate(struct fs_inode *dir,
		   int (*cb)(void *arg, const struct fs_dirent *de), void *arg);

/* file.c: move a file (or directory) to larger units before it grows to
 * new_size.  ino->rw held for writing and its lock exclusive. */
int fs_file_convert(struct fs_inode *ino, uint64_t new_size);
/* Truncate (ino->rw held for writing, lock exclusive). */
int fs_truncate_ino(struct fs_inode *ino, uint64_t size);
/* Commit size / times changed in memory. */
int fs_commit_fd(struct fs_inode *ino);

/* ---- allocation (alloc.c) ---------------------------------------------- */

/* Allocate n resources of type t inside tx (n <= 64).  The cluster locks are
 * held until the transaction is done. */
int fs_alloc(struct fs_tx *tx, enum fs_rtype t, unsigned n, uint64_t *out);
/* Up to n from the cluster at the cursor, if free of other hosts now, and
 * at most half of its free ones, without waiting: *got (maybe 0).  For
 * allocating ahead of a writer: never a nearly full volume's last blocks. */
int fs_alloc_upto(struct fs_tx *tx, enum fs_rtype t, unsigned n,
		  uint64_t *out, unsigned *got);
/* Free one resource inside tx. */
int fs_free(struct fs_tx *tx, uint64_t a);
/* The 8 KiB slot (lock sector, FD at +4 KiB) of FD a, just allocated in
 * tx: from what an earlier call read of its cluster under the lock held
 * since (one read for FS_FD_PREFETCH slots), else read. */
int fs_fd_slot_read(struct fs_tx *tx, uint64_t a, void *slot);
/* Free and total counts of every type (statfs), by reading the headers. */
int fs_count(struct fs_vol *v, uint64_t free[FS_R_TYPES],
	     uint64_t total[FS_R_TYPES]);
/* The same, adding each extent's free file blocks into ext_free_fb[e]. */
int fs_count_ext(struct fs_vol *v, uint64_t freec[FS_R_TYPES],
		 uint64_t totalc[FS_R_TYPES], uint64_t *ext_free_fb);

#endif
