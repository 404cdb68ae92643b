/*
 * keep.c - directory and cluster locks kept held after their last use,
 * and any inode lock kept until the transactions listing it are in place.
 *
 * A host creating files in one directory takes the directory's lock and a
 * cluster lock for every create, and lets both go after it: four
 * compare-and-writes, and every lookup in between reads the directory's
 * lock record to see whether another host changed it.  Kept held while
 * this host keeps using them, the locks cost nothing per operation, and
 * the directory is known current without any read (nobody else can
 * change it while we hold it).
 *
 * Keeping changes nothing on disk: a kept lock is an ordinary exclusive
 * hold, and every transaction made under it is in place before the lock
 * changes hands (the journal's hand-over, journal.c), as for a hold taken
 * per operation; a host that dies holding it is recovered as one that
 * died mid-operation (journal replay of the transactions after its
 * checkpoint made under the version it holds, then the lock broken).  What keeping costs is the time another host waits for it:
 * that host marks itself in the record, which we only see by reading it
 * (every FS_KEEP_CHECK_MS) or at our release, so a kept lock goes
 * FS_KEEP_IDLE_MS after its last use, a busy one at the end of the first
 * use FS_KEEP_MAX_MS after its hold began (and is then taken per use for
 * FS_KEEP_PAUSE_MS), and a lock that another host used or waited for
 * since our last hold is not kept for FS_KEEP_BACKOFF_MS.  Shared holds
 * (directories this host only reads) have a backoff of their own: only a
 * writer that waited for one stops them that long (fs_int.h).
 *
 * A hold whose last user ends while a transaction of ours not in place
 * lists it (a file just created, written, renamed) would wait for that
 * transaction at its release (the journal's hand-over): it is kept
 * instead, in a list of its own (v->jk_head, oldest first), and released
 * by the keeper once no pending transaction lists it; the committer wakes
 * the keeper at each checkpoint (fs_keep_kick), and fs_sync releases them
 * before it returns (fs_keep_settle).
 *
 * The keeper thread wakes every FS_KEEP_IDLE_MS / 2 while anything is
 * kept and releases what is due (woken by a checkpoint in between: the
 * holds kept for the journal only); it never waits for a lock a user has
 * (directories: lk_m by trying; clusters: those a transaction of ours has
 * are skipped).
 */
#include <errno.h>
#include <time.h>

#include "fs/fs_int.h"

#define MS 1000000ull

uint64_t fs_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* not kept before this: holds of the kind given */
static uint64_t *backoff_of(struct fs_keep *k, bool shared)
{
	return shared ? &k->noshare : &k->nokeep;
}

bool fs_keep_policy(struct fs_vol *v, struct fs_keep *k, uint64_t now,
		    bool shared)
{
	if (!fs_keep_allowed(v, k, now, shared))
		return false;
	if (k->kept && now - k->since >= FS_KEEP_MAX_MS * MS) {
		__atomic_store_n(backoff_of(k, shared), now + FS_KEEP_PAUSE_MS * MS,
				 __ATOMIC_RELAXED);
		return false;
	}
	if (!k->kept)
		k->since = k->checked = now;
	__atomic_store_n(&k->last, now, __ATOMIC_RELAXED);
	return true;
}

bool fs_keep_allowed(struct fs_vol *v, const struct fs_keep *k, uint64_t now,
		     bool shared)
{
	return __atomic_load_n(&v->keep_running, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE) &&
	       now >= __atomic_load_n(shared ? &k->noshare : &k->nokeep,
				      __ATOMIC_RELAXED);
}

void fs_keep_touch(struct fs_keep *k, uint64_t now)
{
	__atomic_store_n(&k->last, now, __ATOMIC_RELAXED);
}

void fs_keep_contended(struct fs_keep *k, uint64_t now, bool shared)
{
	__atomic_store_n(backoff_of(k, shared), now + FS_KEEP_BACKOFF_MS * MS,
			 __ATOMIC_RELAXED);
}

void fs_keep_met_writer(struct fs_keep *k, uint64_t now)
{
	uint64_t until = now + FS_KEEP_PAUSE_MS * MS;

	if (__atomic_load_n(&k->noshare, __ATOMIC_RELAXED) < until)
		__atomic_store_n(&k->noshare, until, __ATOMIC_RELAXED);
}

void fs_keep_acquired(struct fs_keep *k, bool waited, bool valid, uint64_t now,
		      bool shared)
{
	/* a shared acquire that waited met a writer (gone now): shared
	 * holds of it pause a moment, as after a failed try */
	if (shared) {
		if (waited)
			fs_keep_met_writer(k, now);
		return;
	}
	/* another host held it since our release, and not long ago: it
	 * works here too (a release long ago says nothing about now) */
	if (waited || (!valid && k->released &&
		       now - k->released < FS_KEEP_BACKOFF_MS * MS))
		fs_keep_contended(k, now, false);
}

bool fs_keep_due(struct fs_keep *k, lk_lock *l, uint64_t now, bool force,
		 bool shared)
{
	if (force || now < __atomic_load_n(backoff_of(k, shared), __ATOMIC_RELAXED) ||
	    now - __atomic_load_n(&k->last, __ATOMIC_RELAXED) >= FS_KEEP_IDLE_MS * MS)
		return true;
	if (now - k->checked >= FS_KEEP_CHECK_MS * MS) {
		k->checked = now;
		if (lk_lock_wanted(l) == 1) {
			fs_keep_contended(k, now, shared);
			return true;
		}
	}
	if (now - k->since >= FS_KEEP_MAX_MS * MS) {
		__atomic_store_n(backoff_of(k, shared), now + FS_KEEP_PAUSE_MS * MS,
				 __ATOMIC_RELAXED);
		return true;
	}
	return false;
}

void fs_keep_add(struct fs_inode *ino)
{
	struct fs_vol *v = ino->v;

	pthread_mutex_lock(&v->lock);
	ino->refs++;
	ino->kept_next = v->kept;
	v->kept = ino;
	pthread_cond_signal(&v->keep_cond);
	pthread_mutex_unlock(&v->lock);
}

/* Out of the journal's list (v->lock held, keep.journal set). */
static void jk_unlink(struct fs_vol *v, struct fs_inode *ino)
{
	if (ino->jk_prev)
		ino->jk_prev->kept_next = ino->kept_next;
	else
		v->jk_head = ino->kept_next;
	if (ino->kept_next)
		ino->kept_next->jk_prev = ino->jk_prev;
	else
		v->jk_tail = ino->jk_prev;
	ino->kept_next = ino->jk_prev = NULL;
	ino->keep.journal = false;
	__atomic_sub_fetch(&v->kept_journal, 1, __ATOMIC_RELEASE);
}

void fs_keep_del(struct fs_inode *ino)
{
	struct fs_vol *v = ino->v;

	pthread_mutex_lock(&v->lock);
	if (ino->keep.journal) {
		jk_unlink(v, ino);
	} else {
		for (struct fs_inode **pp = &v->kept; *pp;
		     pp = &(*pp)->kept_next) {
			if (*pp == ino) {
				*pp = ino->kept_next;
				break;
			}
		}
		ino->kept_next = NULL;
	}
	ino->keep.kept = false;
	pthread_mutex_unlock(&v->lock);
}

bool fs_keep_for_journal(struct fs_inode *ino)
{
	struct fs_vol *v = ino->v;
	bool ok = true;

	if (!__atomic_load_n(&v->keep_running, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&v->abandoned, __ATOMIC_ACQUIRE))
		return false;
	pthread_mutex_lock(&v->lock);
	if (ino->keep.kept) {
		/* kept already (for the journal, or a directory by the
		 * policy: that one goes only once in place anyway) */
	} else if (v->kept_journal >= FS_KEEP_JOURNAL_MAX) {
		ok = false;
	} else {
		/* at the tail: the list is in the order of the holds'
		 * last transactions, about.  The keeper is woken by the
		 * next checkpoint; only a list that was empty wakes it now
		 * (it may sleep without a timeout, and this transaction
		 * may be in place already), not one per hold: that was
		 * two context switches and a look at the list per create */
		bool wake = !v->jk_head;

		ino->keep.kept = ino->keep.journal = true;
		ino->refs++;
		ino->kept_next = NULL;
		ino->jk_prev = v->jk_tail;
		if (v->jk_tail)
			v->jk_tail->kept_next = ino;
		else
			v->jk_head = ino;
		v->jk_tail = ino;
		__atomic_add_fetch(&v->kept_journal, 1, __ATOMIC_RELEASE);
		if (wake)
			pthread_cond_signal(&v->keep_cond);
	}
	pthread_mutex_unlock(&v->lock);
	return ok;
}

void fs_keep_by_policy(struct fs_inode *ino)
{
	struct fs_vol *v = ino->v;

	pthread_mutex_lock(&v->lock);
	if (ino->keep.journal) {
		jk_unlink(v, ino);
		ino->kept_next = v->kept;
		v->kept = ino;
	}
	pthread_mutex_unlock(&v->lock);
}

void fs_keep_kick(struct fs_vol *v)
{
	if (!__atomic_load_n(&v->kept_journal, __ATOMIC_ACQUIRE) ||
	    !__atomic_load_n(&v->keep_running, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&v->lock);
	v->keep_kicked = true;
	pthread_cond_signal(&v->keep_cond);
	pthread_mutex_unlock(&v->lock);
}

/*
 * Release what is due (how) in one list (journal: v->jk_head's, else
 * v->kept's), a few at a time with a reference each taken under v->lock.
 * The journal's list is in about the order the holds' transactions go in
 * place: the keeper stops at the first whose transactions are not (the
 * next checkpoint wakes it).
 */
static void expire_list(struct fs_vol *v, bool journal, enum fs_expire how)
{
	uint64_t now = fs_mono_ns();
	struct fs_inode *batch[16];
	unsigned skip = 0;

	for (;;) {
		unsigned i = 0, n = 0, released = 0;
		bool stop = false;

		pthread_mutex_lock(&v->lock);
		for (struct fs_inode *p = journal ? v->jk_head : v->kept;
		     p && n < 16; p = p->kept_next) {
			if (i++ < skip)
				continue;
			p->refs++;
			batch[n++] = p;
		}
		pthread_mutex_unlock(&v->lock);
		if (!n)
			break;
		for (unsigned k = 0; k < n; k++) {
			enum fs_kept r = stop ? FS_KEPT_STAYS :
				fs_inode_keep_expire(batch[k], now, how);

			if (r == FS_KEPT_GONE)
				released++;
			else if (r == FS_KEPT_STAYS && journal &&
				 how == FS_EXPIRE_DUE)
				stop = true;
			fs_inode_put(batch[k]);
		}
		/* the ones left stay in the list before those not seen
		 * (one added meanwhile, at the head, waits a tick) */
		skip += n - released;
		if (n < 16 || stop)
			break;
		/* a round of the keeper at most: the directories are
		 * judged at every tick (the list goes on at the next) */
		if (journal && how == FS_EXPIRE_DUE &&
		    fs_mono_ns() - now >= FS_KEEP_IDLE_MS / 2 * MS) {
			pthread_mutex_lock(&v->lock);
			v->keep_kicked = true;
			pthread_mutex_unlock(&v->lock);
			break;
		}
	}
}

/* all: the directories and clusters too (not on a wake-up for the
 * journal's list alone), first: the journal's list of a host streaming
 * creates grows as fast as the keeper releases it (a compare-and-write
 * per file), and a directory another host waits for must not wait for
 * that list to run dry */
static void expire(struct fs_vol *v, enum fs_expire how, bool all)
{
	if (how != FS_EXPIRE_SETTLE && all) {
		expire_list(v, false, how);
		fs_cluster_keep_expire(v, fs_mono_ns(), how == FS_EXPIRE_ALL);
	}
	expire_list(v, true, how);
}

void fs_keep_settle(struct fs_vol *v)
{
	if (__atomic_load_n(&v->kept_journal, __ATOMIC_ACQUIRE))
		expire(v, FS_EXPIRE_SETTLE, false);
}

static void *keeper_main(void *arg)
{
	struct fs_vol *v = arg;
	uint64_t tick = 0;           /* the next round over everything */

	pthread_mutex_lock(&v->lock);
	while (!v->keep_stop) {
		if (v->keep_kicked) {
			/* the checkpoint moved: at once */
		} else if (!v->kept && !v->jk_head && !fs_cluster_keep_any(v)) {
			pthread_cond_wait(&v->keep_cond, &v->lock);
		} else {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += (long)(FS_KEEP_IDLE_MS / 2 * MS);
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&v->keep_cond, &v->lock, &ts);
		}
		if (v->keep_stop)
			break;
		v->keep_kicked = false;
		pthread_mutex_unlock(&v->lock);
		{
			/* a checkpoint's wake-up between two ticks releases
			 * only what was kept for the journal: the kept
			 * directories are looked at (their lk_m tried) no
			 * more often than before */
			uint64_t now = fs_mono_ns();
			bool all = now >= tick;

			if (all)
				tick = now + FS_KEEP_IDLE_MS / 2 * MS;
			expire(v, FS_EXPIRE_DUE, all);
		}
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int fs_keeper_start(struct fs_vol *v)
{
	pthread_condattr_t ca;
	int ret;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->keep_cond, &ca);
	pthread_condattr_destroy(&ca);
	v->keep_stop = false;
	ret = -pthread_create(&v->keeper, NULL, keeper_main, v);
	if (ret) {
		pthread_cond_destroy(&v->keep_cond);
		return ret;
	}
	__atomic_store_n(&v->keep_running, true, __ATOMIC_RELEASE);
	return 0;
}

void fs_keeper_stop(struct fs_vol *v)
{
	if (!__atomic_load_n(&v->keep_running, __ATOMIC_ACQUIRE))
		return;
	/* nothing is kept from here on; then what is kept goes */
	__atomic_store_n(&v->keep_running, false, __ATOMIC_RELEASE);
	pthread_mutex_lock(&v->lock);
	v->keep_stop = true;
	pthread_cond_signal(&v->keep_cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->keeper, NULL);
	pthread_cond_destroy(&v->keep_cond);
	expire(v, FS_EXPIRE_ALL, true);
}
