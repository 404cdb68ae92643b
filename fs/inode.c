/*
 * inode.c - file descriptors in memory: the table of inodes this host
 * uses, their on-disk locks, and FD allocation.
 *
 * An FD read without its lock is a snapshot (checksummed, re-read if it was
 * being rewritten).  An inode whose lock this host holds keeps its FD in
 * memory (ino->fd) for as long as it holds it: nobody else can change it.
 * When the lock is taken again later, lk_cache_valid() tells whether another
 * host held it in between; if so the FD is read again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_int.h"
#include "lockmgr/ondisk.h"

#define FD_READ_TRIES 5
#define DEFAULT_LOCK_MS 10000

int fs_fd_read(struct fs_vol *v, uint64_t addr, struct fs_fd *fd)
{
	unsigned char *b;
	uint64_t off;
	int ret = -EIO;

	if (!fs_addr_valid(v, addr, FS_R_FD))
		return -ENOENT;
	b = fs_balloc(FS_BLOCK);
	if (!b)
		return -ENOMEM;
	off = fs_res_off(v, addr) + FS_BLOCK;
	for (int i = 0; i < FD_READ_TRIES; i++) {
		ret = fs_read(v, fs_addr_ext(addr), off, b, FS_BLOCK);
		if (ret)
			break;
		ret = fs_fd_in(b, fd);
		if (ret != -FS_E_CHECKSUM)
			break;
		/* another host may be writing it in place right now */
	}
	if (!ret && fd->self != addr)
		ret = -FS_E_CORRUPT;
	/* blocks on an extent another host added since we last looked
	 * (fsck instead reports such an address and keeps the file's
	 * other blocks: failing the FD would make them look leaked) */
	if (!ret && fd->map != FS_MAP_INLINE && fd->type != FS_T_FREE &&
	    !v->checking)
		ret = fs_geom_see(v, fd->addr, FS_FD_ADDRS);
	if (ret == -FS_E_BADMAGIC) {
		/* never allocated: as good as free */
		memset(fd, 0, sizeof(*fd));
		fd->self = addr;
		ret = 0;
	} else if (ret == -FS_E_CHECKSUM || ret == -FS_E_CORRUPT ||
		   ret == -FS_E_VERSION) {
		ret = fs_bad_meta(v, ret, "file descriptor", fs_addr_ext(addr), off);
	}
	free(b);
	return ret;
}

int fs_fd_put(struct fs_tx *tx, const struct fs_fd *fd)
{
	struct fs_vol *v = fs_tx_vol(tx);
	unsigned char *b = fs_balloc(FS_BLOCK);
	int ret;

	if (!b)
		return -ENOMEM;
	fs_fd_out(fd, b);
	ret = fs_tx_put(tx, fs_addr_ext(fd->self), fs_res_off(v, fd->self) + FS_BLOCK, b);
	free(b);
	return ret;
}

static void hold_goes(struct fs_inode *ino);

static unsigned ihash(uint64_t addr)
{
	/* FD addresses of one cluster differ in their low bits */
	addr ^= addr >> 29;
	addr *= 0x9e3779b97f4a7c15ull;
	return (unsigned)(addr >> 52) % FS_IHASH;
}

int fs_inode_get(struct fs_vol *v, uint64_t addr, struct fs_inode **out)
{
	struct fs_inode *ino;

	if (!fs_addr_valid(v, addr, FS_R_FD))
		return -ENOENT;
	pthread_mutex_lock(&v->lock);
	for (ino = v->inodes[ihash(addr)]; ino; ino = ino->next)
		if (ino->addr == addr)
			break;
	if (ino) {
		ino->refs++;
		pthread_mutex_unlock(&v->lock);
		*out = ino;
		return 0;
	}
	ino = calloc(1, sizeof(*ino));
	if (!ino) {
		pthread_mutex_unlock(&v->lock);
		return -ENOMEM;
	}
	ino->v = v;
	ino->addr = addr;
	ino->ext = fs_addr_ext(addr);
	ino->slot_off = fs_res_off(v, addr);
	ino->refs = 1;
	pthread_rwlock_init(&ino->rw, NULL);
	pthread_mutex_init(&ino->lk_m, NULL);
	pthread_mutex_init(&ino->m, NULL);
	pthread_mutex_init(&ino->pbc_m, NULL);
	pthread_cond_init(&ino->filled, NULL);
	ino->next = v->inodes[ihash(addr)];
	v->inodes[ihash(addr)] = ino;
	pthread_mutex_unlock(&v->lock);
	*out = ino;
	return 0;
}

void fs_inode_put(struct fs_inode *ino)
{
	struct fs_vol *v;

	if (!ino)
		return;
	v = ino->v;
	pthread_mutex_lock(&v->lock);
	if (--ino->refs) {
		pthread_mutex_unlock(&v->lock);
		return;
	}
	for (struct fs_inode **pp = &v->inodes[ihash(ino->addr)]; *pp;
	     pp = &(*pp)->next) {
		if (*pp == ino) {
			*pp = ino->next;
			break;
		}
	}
	pthread_mutex_unlock(&v->lock);
	if (ino->lock) {
		if (ino->held != LK_FREE)
			hold_goes(ino);
		lk_lock_close(ino->lock);   /* releases a hold left over */
	}
	pthread_rwlock_destroy(&ino->rw);
	pthread_mutex_destroy(&ino->lk_m);
	pthread_mutex_destroy(&ino->m);
	pthread_mutex_destroy(&ino->pbc_m);
	pthread_cond_destroy(&ino->filled);
	fs_bmap_release(ino);
	fs_dir_cache_release(ino);
	free(ino->pend);
	free(ino->ahead);
	free(ino);
}

int fs_inode_lock_info(struct fs_vol *v, uint64_t addr, struct lk_lock_info *li)
{
	lk_lock *l;
	int ret;

	if (!v->lk)
		return -EROFS;          /* read-only hosts keep no lock state */
	/* a new file's record comes with the transaction that made it: in
	 * place once that is (moments) */
	if (fs_journal_lock_pending(v, fs_addr_ext(addr), fs_res_off(v, addr)))
		(void)fs_journal_wait(v, true);
	ret = lk_lock_open_on(v->lk, v->ext[fs_addr_ext(addr)].lun,
			      fs_res_off(v, addr), &l);
	if (ret)
		return ret;
	ret = lk_lock_info(l, li);
	lk_lock_close_keep(l);      /* a handle for reading: no hold of ours */
	if (ret == -LK_E_BADMAGIC) {
		/* a sector never written: the slot of a file another host
		 * is making (its record comes with that transaction), or
		 * never used: nobody holds it */
		unsigned char *b = fs_balloc(v->ss);
		bool zero = b != NULL;

		if (b && fs_read(v, fs_addr_ext(addr), fs_res_off(v, addr), b,
				 v->ss) == 0) {
			for (unsigned i = 0; i < v->ss && zero; i++)
				zero = !b[i];
		} else {
			zero = false;
		}
		free(b);
		if (zero) {
			memset(li, 0, sizeof(*li));
			ret = 0;
		}
	}
	return ret;
}

void fs_inode_holder(struct fs_vol *v, uint64_t addr, char *buf, size_t len)
{
	struct lk_lock_info li;

	buf[0] = 0;
	if (fs_inode_lock_info(v, addr, &li) == 0 && li.nholders)
		snprintf(buf, len, "%s (slot %u, %s)",
			 li.holders[0].name[0] ? li.holders[0].name : "?",
			 li.holders[0].slot,
			 lk_host_status_name(li.holders[0].status));
}

/* Set held under m; atomically for unlocked readers. */
static void set_held(struct fs_inode *ino, enum lk_mode mode)
{
	pthread_mutex_lock(&ino->m);
	__atomic_store_n(&ino->held, mode, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ino->m);
}

/* A freshly read FD replaces ours (rw exclusive and m held). */
static void install_fd(struct fs_inode *ino, const struct fs_fd *fd)
{
	ino->fd = *fd;
	ino->valid = true;
	fs_bmap_forget(ino);
	fs_dir_cache_drop(ino);
}

/*
 * rw exclusive for the step from LK_FREE to held, under lk_m.  Only
 * unlocked readers hold rw then (lookups and refreshes: they never wait
 * for another inode's lock while they hold it); new ones wait at
 * fs_dir_cache_enter meanwhile, as for a refresh.  Taken by trying, so
 * that lk_m never waits for an rw in the lock order: an operation ending
 * releases one inode's lock (lk_m) while it still holds another's rw.
 */
static void rw_excl(struct fs_inode *ino)
{
	pthread_mutex_lock(&ino->m);
	while (ino->dc_refreshing)
		pthread_cond_wait(&ino->filled, &ino->m);
	__atomic_store_n(&ino->dc_refreshing, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ino->m);
	for (unsigned i = 0; pthread_rwlock_trywrlock(&ino->rw); i++)
		usleep(i < 20 ? 20 : 200);
}

static void rw_excl_done(struct fs_inode *ino)
{
	pthread_rwlock_unlock(&ino->rw);
	pthread_mutex_lock(&ino->m);
	__atomic_store_n(&ino->dc_refreshing, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&ino->filled);
	pthread_mutex_unlock(&ino->m);
}

/* Our hold of ino goes now (lk_m held; or the last reference): what a
 * cache outside the library keeps under it goes first (fs_cache_hold). */
static void hold_goes(struct fs_inode *ino)
{
	uint8_t c;

	ino->holds_lost++;
	c = __atomic_exchange_n(&ino->cached_out, 0, __ATOMIC_ACQ_REL);
	if (c)
		fs_cache_drop(ino->v, ino->addr, c & FS_DROP_DIR);
}

/* A kept hold the lock manager no longer has (lk_m held, no user): gone
 * here too, and the FD and caches with it.  The list's reference stays
 * until the keeper or an unlock finds it not kept (never dropped under
 * lk_m: it may be the last). */
static void drop_kept(struct fs_inode *ino)
{
	hold_goes(ino);
	rw_excl(ino);
	pthread_mutex_lock(&ino->m);
	__atomic_store_n(&ino->held, LK_FREE, __ATOMIC_RELEASE);
	ino->valid = false;
	pthread_mutex_lock(&ino->pbc_m);
	ino->dc_ver = 0;
	pthread_mutex_unlock(&ino->pbc_m);
	pthread_mutex_unlock(&ino->m);
	rw_excl_done(ino);
}

static void release_hold(struct fs_inode *ino);

/* A shared hold to make exclusive that no lookup or open of ours uses. */
static bool upgrade_alone(struct fs_inode *ino, enum lk_mode mode)
{
	bool alone;

	if (mode != LK_EXCL || ino->held != LK_SHARED)
		return false;
	pthread_mutex_lock(&ino->m);
	alone = ino->lock_users == 0 && !ino->opens_ro && !ino->opens_rw;
	pthread_mutex_unlock(&ino->m);
	return alone;
}

int fs_inode_lock(struct fs_inode *ino, enum lk_mode mode, unsigned timeout_ms)
{
	struct fs_vol *v = ino->v;
	enum lk_mode was;
	struct fs_fd fd;
	bool fresh, try = timeout_ms == FS_LOCK_TRY;
	int ret = 0;

	if (v->rdonly || !v->lk)
		return mode == LK_EXCL ? -EROFS : 0;
	if (try)
		timeout_ms = 0;             /* the lock manager's try */
	else if (!timeout_ms)
		timeout_ms = DEFAULT_LOCK_MS;
	/* Lock-record I/O under lk_m only: m stays free for readers and for
	 * fs_aio completions (the device layer's thread) meanwhile. */
	pthread_mutex_lock(&ino->lk_m);
	if (!ino->lock) {
		ret = lk_lock_open_on(v->lk, v->ext[ino->ext].lun, ino->slot_off,
				      &ino->lock);
		if (ret)
			goto out;
	}
	was = ino->held;            /* changes only under lk_m */
	if (ino->keep.kept && was != LK_FREE && lk_check(ino->lock)) {
		/* kept, and lost since (fenced, or our slot taken over):
		 * nothing cached under it is known to be current */
		drop_kept(ino);
		was = LK_FREE;
	}
	if (was != mode && was != LK_EXCL) {
		if (was == LK_FREE) {
			ret = lk_acquire(ino->lock, mode, timeout_ms);
		} else if (!try && upgrade_alone(ino, mode)) {
			/* An upgrade of a hold nothing of ours uses (a
			 * directory kept shared for lookups): another host
			 * holding it shared may be upgrading too, and two
			 * upgrades would wait for each other until both give
			 * up.  Unless it converts at once, our shared hold
			 * goes and the lock is taken afresh, in line (the
			 * waiter mark and hand-over order the hosts). */
			ret = lk_convert(ino->lock, mode, 0);
			if (ret == -EBUSY) {
				release_hold(ino);
				was = LK_FREE;
				ret = lk_acquire(ino->lock, mode, timeout_ms);
			}
		} else {
			ret = lk_convert(ino->lock, mode, timeout_ms);
		}
		/* another host's hold since ours says it works here too,
		 * unless we only read (shared holds do not exclude each
		 * other) or held it all along (a conversion: only a wait
		 * says someone else is in the way) */
		if (!ret)
			fs_keep_acquired(&ino->keep, lk_waited(ino->lock),
					 mode == LK_SHARED || was != LK_FREE ||
					 lk_cache_valid(ino->lock), fs_mono_ns(),
					 mode == LK_SHARED);
		else if (ret == -EBUSY && mode == LK_SHARED)
			fs_keep_met_writer(&ino->keep, fs_mono_ns());
		else if (ret == -EBUSY)
			fs_keep_contended(&ino->keep, fs_mono_ns(), false);
		if (ret == -EBUSY && !try) {
			char who[128];

			fs_inode_holder(v, ino->addr, who, sizeof(who));
			fs_log(v, "file %llx is locked by %s",
			       (unsigned long long)ino->addr,
			       who[0] ? who : "another host");
		}
		if (ret)
			goto out;
	} else {
		mode = was;
	}
	if (was != LK_FREE) {
		/* held already (maybe converted now): nobody else could
		 * change it; counted as ours before lk_m goes, so that no
		 * release comes between */
		bool reload;

		pthread_mutex_lock(&ino->m);
		__atomic_store_n(&ino->held, mode, __ATOMIC_RELEASE);
		ino->lock_users++;
		reload = !ino->valid;
		pthread_mutex_unlock(&ino->m);
		pthread_mutex_unlock(&ino->lk_m);
		if (reload) {
			/* a reload failed since: read the FD again, outside
			 * lk_m (rw is taken after lk_m only in rw_excl) */
			ret = fs_fd_read(v, ino->addr, &fd);
			if (ret) {
				fs_inode_unlock(ino);
				return ret;
			}
			pthread_rwlock_wrlock(&ino->rw);
			pthread_mutex_lock(&ino->m);
			if (!ino->valid)
				install_fd(ino, &fd);
			pthread_mutex_unlock(&ino->m);
			pthread_rwlock_unlock(&ino->rw);
		}
		return 0;
	}
	/* Taken from LK_FREE: what we cached is current only if nobody else
	 * held the lock since (lk_cache_valid).  Otherwise read the FD now,
	 * before any other thread of ours sees the lock held. */
	pthread_mutex_lock(&ino->m);
	fresh = !ino->valid || !lk_cache_valid(ino->lock);
	pthread_mutex_unlock(&ino->m);
	if (fresh) {
		ret = fs_fd_read(v, ino->addr, &fd);
		if (ret) {
			int r = lk_release(ino->lock);

			if (r && r != -LK_E_NOTHELD)
				fs_log(v, "releasing file %llx: %s",
				       (unsigned long long)ino->addr,
				       fs_strerror(r));
			/* our release makes the next acquire look as if
			 * nobody came between: not current */
			rw_excl(ino);
			pthread_mutex_lock(&ino->m);
			ino->valid = false;
			pthread_mutex_unlock(&ino->m);
			rw_excl_done(ino);
			goto out;
		}
	}
	/* readers with rw shared use fd and the caches, and an unlocked
	 * reader refreshing them checks held under rw exclusive */
	rw_excl(ino);
	pthread_mutex_lock(&ino->m);
	if (fresh)
		install_fd(ino, &fd);
	__atomic_store_n(&ino->held, mode, __ATOMIC_RELEASE);
	ino->lock_users++;
	pthread_mutex_unlock(&ino->m);
	rw_excl_done(ino);
out:
	pthread_mutex_unlock(&ino->lk_m);
	return ret;
}

/* Let our hold go on disk (lk_m held, no user left). */
static void release_hold(struct fs_inode *ino)
{
	bool shared = ino->held == LK_SHARED;
	int r;

	hold_goes(ino);
	ino->rec_new = false;
	r = lk_release(ino->lock);

	ino->keep.released = fs_mono_ns();
	/* another host waited for our hold: it works here too */
	if (!r && lk_release_wanted(ino->lock))
		fs_keep_contended(&ino->keep, ino->keep.released, shared);
	/* given up: every hold stays for the host that replays us */
	if (r && r != -LK_E_NOTHELD &&
	    !__atomic_load_n(&ino->v->abandoned, __ATOMIC_ACQUIRE))
		fs_log(ino->v, "releasing file %llx: %s",
		       (unsigned long long)ino->addr, fs_strerror(r));
	pthread_mutex_lock(&ino->m);
	__atomic_store_n(&ino->held, LK_FREE, __ATOMIC_RELEASE);
	/* a directory's cached blocks are what we leave: current while the
	 * record stays at this version (unless a reload failed: then
	 * nothing here is known to be current) */
	pthread_mutex_lock(&ino->pbc_m);
	ino->dc_ver = r || !ino->valid ? 0 : lk_released_version(ino->lock);
	pthread_mutex_unlock(&ino->pbc_m);
	pthread_mutex_unlock(&ino->m);
}

void fs_inode_unlock(struct fs_inode *ino)
{
	enum { KEEP, TO_SHARED, RELEASE } what = KEEP;
	bool dir = false, unkept = false, shared = false, live = false;

	pthread_mutex_lock(&ino->lk_m);
	pthread_mutex_lock(&ino->m);
	if (ino->lock_users)
		ino->lock_users--;
	if (ino->lock_users == 0 && ino->held != LK_FREE) {
		if (ino->opens_rw)
			what = KEEP;        /* a read-write open keeps it exclusive */
		else if (ino->opens_ro)
			what = ino->held == LK_EXCL ? TO_SHARED : KEEP;
		else
			what = RELEASE;
		/* exclusive (changed it) or shared (read it: lookups) */
		dir = ino->valid && ino->fd.type == FS_T_DIR;
		shared = ino->held == LK_SHARED;
		live = ino->valid && ino->fd.nlink &&
		       ino->fd.type != FS_T_FREE;
	}
	pthread_mutex_unlock(&ino->m);
	/* a directory's hold may stay for our next operation in it */
	if (what == RELEASE && dir &&
	    fs_keep_policy(ino->v, &ino->keep, fs_mono_ns(), shared)) {
		what = KEEP;
		if (!ino->keep.kept) {
			ino->keep.kept = true;
			fs_keep_add(ino);
		}
		fs_keep_by_policy(ino);
	}
	/* A hold our transactions not yet in place list stays until they
	 * are (keep.c): released now, it would wait for them here.  Not a
	 * file's whose FD is freed: its address may come back as a new file
	 * before the keeper is done with the old hold.  Nor a directory's:
	 * one that gets here is wanted by another host or was kept too long
	 * (else the policy above kept it), and our next operation in it
	 * would take the kept hold and list it in a newer transaction, again
	 * and again: the release waits for the batch (the hand-over), and
	 * the other host gets the directory. */
	if (what == RELEASE && !dir && !shared && live &&
	    fs_journal_lock_pending(ino->v, ino->ext, ino->slot_off) &&
	    fs_keep_for_journal(ino))
		what = KEEP;
	/* users counted meanwhile (under m alone: fs_close) lock again,
	 * after us, through lk_m */
	if (what == TO_SHARED) {
		if (lk_convert(ino->lock, LK_SHARED, 0) == 0)
			set_held(ino, LK_SHARED);
	} else if (what == RELEASE) {
		release_hold(ino);
	}
	if (what != KEEP && ino->keep.kept) {
		fs_keep_del(ino);
		unkept = true;
	}
	pthread_mutex_unlock(&ino->lk_m);
	if (unkept)
		fs_inode_put(ino);          /* the list's; the caller has one */
}

enum fs_kept fs_inode_keep_expire(struct fs_inode *ino, uint64_t now,
				  enum fs_expire how)
{
	enum fs_kept r = FS_KEPT_STAYS;
	bool idle, opened, due, journal;
	enum lk_mode held;

	if (how != FS_EXPIRE_DUE)
		pthread_mutex_lock(&ino->lk_m);
	else if (pthread_mutex_trylock(&ino->lk_m))
		return FS_KEPT_BUSY;
	pthread_mutex_lock(&ino->m);
	idle = ino->lock_users == 0;
	opened = ino->opens_rw || ino->opens_ro;
	held = ino->held;
	pthread_mutex_unlock(&ino->m);
	pthread_mutex_lock(&ino->v->lock);
	journal = ino->keep.journal;
	pthread_mutex_unlock(&ino->v->lock);
	if (!ino->keep.kept) {
		due = false;
	} else if (opened) {
		/* an open took the hold over (it has no lock user): its
		 * last close decides again */
		fs_keep_del(ino);
		r = FS_KEPT_GONE;
		due = false;
	} else if (how == FS_EXPIRE_SETTLE && !journal) {
		due = false;
	} else if (held == LK_FREE || how == FS_EXPIRE_ALL) {
		due = true;
	} else if (journal) {
		due = !fs_journal_lock_pending(ino->v, ino->ext, ino->slot_off);
	} else if (ino->rec_new &&
		   fs_journal_lock_pending(ino->v, ino->ext, ino->slot_off)) {
		/* new, its record not in place: nobody else can reach it
		 * yet, nor want it */
		due = false;
	} else {
		/* judged even in use: one that is due (wanted, too old) is
		 * then released by the unlock that ends the use (the
		 * release waits for its transactions to be in place) */
		ino->rec_new = false;
		due = fs_keep_due(&ino->keep, ino->lock, now, false,
				  held == LK_SHARED);
	}
	if (due && !idle)
		r = FS_KEPT_BUSY;
	if (due && idle) {
		if (held != LK_FREE)
			release_hold(ino);
		fs_keep_del(ino);
		r = FS_KEPT_GONE;
	}
	pthread_mutex_unlock(&ino->lk_m);
	if (r == FS_KEPT_GONE)
		fs_inode_put(ino);          /* the list's; the caller has one */
	return r;
}

int fs_inode_tx(struct fs_tx *tx, struct fs_inode *ino)
{
	uint8_t c;

	if (!ino->lock || __atomic_load_n(&ino->held, __ATOMIC_ACQUIRE) != LK_EXCL)
		return -LK_E_NOTHELD;
	/* a cache outside relies on our hold: we change what it has (a
	 * directory: rw exclusive, no reader of ours can fill it again
	 * meanwhile, and it stays marked; a file: what was cached of it is
	 * gone after the hook, and nothing more until marked again, fs.h) */
	c = __atomic_load_n(&ino->cached_out, __ATOMIC_ACQUIRE);
	if (c && !(c & FS_DROP_DIR))
		c = __atomic_exchange_n(&ino->cached_out, 0, __ATOMIC_ACQ_REL);
	if (c)
		fs_cache_drop(ino->v, ino->addr,
			      (c & FS_DROP_DIR) | FS_DROP_CHANGED);
	return fs_tx_lock(tx, ino->ext, ino->lock);
}

/*
 * (Re)write the lock record of a newly allocated FD: free, or held by us
 * in hold, and with a version above whatever an earlier incarnation left
 * (cur: the slot as read), so that another host's cached view of the old
 * file can never pass for current.  Nobody else can use the lock before
 * the transaction that makes the file is in place (the FD is free until
 * then, and under our cluster lock).  Held: the record's block goes into
 * tx, written in place before anything that makes the file reachable
 * (write_in_place, docs/FORMAT.md); free: written now (nothing would
 * order a free record before the directory entry another host may act
 * on without asking us).
 */
static int reset_fd_lock(struct fs_tx *tx, uint64_t addr,
			 const unsigned char *cur, void *written,
			 enum lk_mode hold, uint64_t *version)
{
	struct fs_vol *v = fs_tx_vol(tx);
	unsigned ss = v->ss, ext = fs_addr_ext(addr);
	uint64_t off = fs_res_off(v, addr);
	unsigned char *b = fs_balloc(FS_BLOCK);
	struct lk_lockrec r;
	uint64_t ver = 1;
	int ret;

	if (!b)
		return -ENOMEM;
	if (lk_lockrec_in(cur, &r) == 0)
		ver = r.version + 1;
	if (hold != LK_FREE) {
		/* the block as it is, the record in its first sector */
		memcpy(b, cur, FS_BLOCK);
		ret = lk_lockrec_make_held(v->lk, off, hold, ver, b, ss);
		if (!ret)
			ret = fs_tx_put(tx, ext, off, b);
	} else {
		memset(&r, 0, sizeof(r));
		r.mode = LK_FREE;
		r.version = ver;
		r.self_off = off;
		memcpy(r.uuid, v->sb.uuid, 16);
		lk_lockrec_out(&r, b, ss);
		ret = fs_write(v, ext, off, b, ss);
	}
	if (!ret && written)
		memcpy(written, b, ss);
	*version = ver;
	free(b);
	return ret;
}

void fs_inode_seed(struct fs_inode *ino, const struct fs_fd *fd,
		   const void *lockrec)
{
	struct fs_vol *v = ino->v;
	struct lk_lockrec r;

	if (v->rdonly || !v->lk || lk_lockrec_in(lockrec, &r))
		return;
	pthread_mutex_lock(&ino->lk_m);
	if (!ino->lock && lk_lock_open_on(v->lk, v->ext[ino->ext].lun,
					  ino->slot_off, &ino->lock))
		goto out;
	/* (not seeded: the first acquire finds the hold ours on disk) */
	if (ino->held != LK_FREE ||
	    (r.mode == LK_FREE ? lk_lock_seed(ino->lock, lockrec)
			       : lk_lock_seed_held(ino->lock, lockrec)))
		goto out;
	rw_excl(ino);
	pthread_mutex_lock(&ino->m);
	install_fd(ino, fd);
	/* held with no user yet: the open that follows counts itself */
	__atomic_store_n(&ino->held, (enum lk_mode)r.mode, __ATOMIC_RELEASE);
	ino->rec_new = r.mode != LK_FREE;
	pthread_mutex_unlock(&ino->m);
	rw_excl_done(ino);
out:
	pthread_mutex_unlock(&ino->lk_m);
}

int fs_inode_alloc(struct fs_tx *tx, uint8_t type, uint32_t mode, uint32_t uid,
		   uint32_t gid, uint64_t parent, struct fs_fd *out,
		   void *lockrec, enum lk_mode hold)
{
	struct fs_vol *v = fs_tx_vol(tx);
	unsigned char *slot;
	struct fs_fd old;
	uint64_t a, ver = 0, now = fs_now_ns();
	int ret;

	ret = fs_alloc(tx, FS_R_FD, 1, &a);
	if (ret)
		return ret;
	/* the slot: lock sector, FD body at +4 KiB (free, and under our
	 * cluster lock: nobody writes it meanwhile) */
	slot = fs_balloc(2 * FS_BLOCK);
	if (!slot)
		return -ENOMEM;
	ret = fs_fd_slot_read(tx, a, slot);
	if (ret)
		goto out;
	ret = fs_fd_in(slot + FS_BLOCK, &old);
	if (!ret && old.self != a)
		ret = -FS_E_CORRUPT;
	/* Not this volume's FD: never used since mkfs (whatever the LUN held
	 * before, which mkfs does not clear), or damaged.  Nothing of ours
	 * is lost either way: the FD is made anew (generation 1). */
	if (ret && ret != -FS_E_BADMAGIC &&
	    !__atomic_exchange_n(&v->old_fd_logged, true, __ATOMIC_RELAXED))
		fs_bad_meta(v, ret, "free file descriptor (made anew; the "
			    "LUN's earlier contents, or damaged; further ones "
			    "not logged)", fs_addr_ext(a),
			    fs_res_off(v, a) + FS_BLOCK);
	if (ret)
		memset(&old, 0, sizeof(old));   /* never used, or damaged */
	/* Nobody can hold the lock of a free FD legitimately: any hold left
	 * there is from before it was freed (or from another volume). */
	ret = reset_fd_lock(tx, a, slot, lockrec, hold, &ver);
	/* held: listed, so that its hand-over waits for this transaction
	 * and a replay of it checks that nobody took the lock since */
	if (!ret && hold != LK_FREE)
		ret = fs_tx_lock_at(tx, fs_addr_ext(a), fs_res_off(v, a), ver);
	if (ret)
		goto out;
	memset(out, 0, sizeof(*out));
	out->self = a;
	out->gen = old.gen + 1;
	out->type = type;
	out->map = FS_MAP_INLINE;
	out->unit = FS_UNIT_SB;
	out->mode = mode;
	out->nlink = type == FS_T_DIR ? 2 : 1;
	out->uid = uid;
	out->gid = gid;
	out->atime = out->mtime = out->ctime = out->btime = now;
	out->parent = parent;
	ret = fs_fd_put(tx, out);
out:
	free(slot);
	return ret;
}

void fs_inode_reload(struct fs_inode *ino)
{
	fs_bmap_forget(ino);
	fs_dir_cache_drop(ino);
	if (fs_fd_read(ino->v, ino->addr, &ino->fd))
		ino->valid = false;
}

/* ---- caches outside the library (fs.h) ---------------------------------- */

void fs_set_cache_hooks(fs_vol *v, const struct fs_cache_hooks *h)
{
	v->cache_arg = h->arg;
	__atomic_store_n(&v->cache_drop, h->drop, __ATOMIC_RELEASE);
}

void fs_cache_drop(struct fs_vol *v, uint64_t addr, unsigned flags)
{
	void (*drop)(void *, uint64_t, unsigned) =
		__atomic_load_n(&v->cache_drop, __ATOMIC_ACQUIRE);

	if (drop)
		drop(v->cache_arg, addr, flags);
}

struct fs_inode *fs_inode_find(struct fs_vol *v, uint64_t addr)
{
	struct fs_inode *in = NULL;

	pthread_mutex_lock(&v->lock);
	for (struct fs_inode *i = v->inodes[ihash(addr)]; i; i = i->next)
		if (i->addr == addr) {
			in = i;
			break;
		}
	if (in)
		in->refs++;
	pthread_mutex_unlock(&v->lock);
	return in;
}

/*
 * Directory (or, if files, regular file) addr held by this host, the hold
 * known to the lock manager as ours (not fenced, not lost), looked at
 * without waiting (lk_m tried).  mark (fs_cache_hold): the hold is marked
 * cached and *token set; else (fs_cache_still): true only if it is still
 * the hold of *token, marked.
 */
static bool cache_look(struct fs_vol *v, uint64_t addr, bool files,
		       uint64_t *token, bool mark)
{
	struct fs_inode *ino;
	uint8_t flags = 0;
	bool ok = false;

	if (__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE) ||
	    !(ino = fs_inode_find(v, addr)))
		return false;
	if (pthread_mutex_trylock(&ino->lk_m) == 0) {
		if (__atomic_load_n(&ino->held, __ATOMIC_ACQUIRE) != LK_FREE &&
		    ino->lock && !lk_check(ino->lock)) {
			pthread_mutex_lock(&ino->m);
			ok = ino->valid && ino->fd.nlink &&
			     (ino->fd.type == FS_T_DIR ||
			      (files && ino->fd.type == FS_T_FILE));
			flags = ino->fd.type == FS_T_DIR ? FS_DROP_DIR : 0;
			pthread_mutex_unlock(&ino->m);
		}
		if (ok && mark) {
			__atomic_store_n(&ino->cached_out, FS_CACHED_OUT | flags,
					 __ATOMIC_RELEASE);
			*token = ino->holds_lost;
		} else if (ok) {
			ok = ino->holds_lost == *token &&
			     __atomic_load_n(&ino->cached_out, __ATOMIC_ACQUIRE);
		}
		pthread_mutex_unlock(&ino->lk_m);
	}
	fs_inode_put(ino);
	return ok;
}

bool fs_cache_hold(fs_vol *v, uint64_t addr, bool files, uint64_t *token)
{
	return __atomic_load_n(&v->cache_drop, __ATOMIC_ACQUIRE) &&
	       cache_look(v, addr, files, token, true);
}

bool fs_cache_still(fs_vol *v, uint64_t addr, uint64_t token)
{
	/* marked already: of a type fs_cache_hold was asked for */
	return cache_look(v, addr, true, &token, false);
}
