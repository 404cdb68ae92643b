/*
 * orphan.c - files whose last name is gone but whose blocks are not freed
 * yet: open on this host (freed at the last close), or big enough to be
 * freed in transactions of their own after the name went.
 *
 * Each host keeps its list in its heartbeat slot (lk_set_slot_data): an
 * entry is written, durably, before the transaction that removes the last
 * name commits, and dropped after the file is freed.  When the host dies,
 * whoever recovers it gets the list with the slot and hands it to its
 * janitor, which frees every entry that is still what the list says (same
 * generation, no name left, a lock nobody live holds).  Format:
 * docs/FORMAT.md "Orphan list".
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"

/* Write the table to our slot (v->orphan_lock held). */
static int orphan_sync(struct fs_vol *v)
{
	unsigned char d[LK_SLOT_DATA] = { 0 };

	for (unsigned i = 0; i < FS_ORPHANS; i++) {
		uint64_t a = htole64(v->orphans[i].addr);
		uint64_t g = htole64(v->orphans[i].gen);

		memcpy(d + i * 16, &a, 8);
		memcpy(d + i * 16 + 8, &g, 8);
	}
	return lk_set_slot_data(v->lk, d, sizeof(d));
}

int fs_orphan_add(struct fs_vol *v, uint64_t addr, uint64_t gen)
{
	int ret, free_i = -1;

	if (!v->lk)
		return 0;
	pthread_mutex_lock(&v->orphan_lock);
	for (unsigned i = 0; i < FS_ORPHANS; i++) {
		if (v->orphans[i].addr == addr) {
			pthread_mutex_unlock(&v->orphan_lock);
			return 0;
		}
		if (!v->orphans[i].addr && free_i < 0)
			free_i = (int)i;
	}
	if (free_i < 0) {
		pthread_mutex_unlock(&v->orphan_lock);
		fs_log(v, "orphan list full: if this host crashes before file "
		       "%llx is freed, fsck reclaims it", (unsigned long long)addr);
		return 0;
	}
	v->orphans[free_i].addr = addr;
	v->orphans[free_i].gen = gen;
	ret = orphan_sync(v);
	if (ret) {
		v->orphans[free_i].addr = 0;
		fs_log(v, "recording orphan %llx in our slot: %s",
		       (unsigned long long)addr, fs_strerror(ret));
	}
	pthread_mutex_unlock(&v->orphan_lock);
	return ret;
}

void fs_orphan_del(struct fs_vol *v, uint64_t addr)
{
	if (!v->lk)
		return;
	/* the transactions that freed it durable first: a crash before
	 * must find the entry (docs/FORMAT.md "Orphan list") */
	if (fs_journal_wait(v, false))
		return;
	pthread_mutex_lock(&v->orphan_lock);
	for (unsigned i = 0; i < FS_ORPHANS; i++) {
		if (v->orphans[i].addr != addr)
			continue;
		v->orphans[i].addr = 0;
		v->orphans[i].gen = 0;
		/* a stale entry is harmless (its generation no longer
		 * matches once freed): a failed write only costs a check */
		if (orphan_sync(v))
			fs_log(v, "dropping orphan %llx from our slot failed",
			       (unsigned long long)addr);
		break;
	}
	pthread_mutex_unlock(&v->orphan_lock);
}

void fs_orphan_recovered(struct fs_vol *v, const unsigned char *data)
{
	pthread_mutex_lock(&v->orphan_lock);
	for (unsigned i = 0; i < FS_ORPHANS; i++) {
		uint64_t a, g;
		struct fs_orphan *p;

		memcpy(&a, data + i * 16, 8);
		memcpy(&g, data + i * 16 + 8, 8);
		a = le64toh(a);
		g = le64toh(g);
		if (!a || !fs_addr_valid(v, a, FS_R_FD))
			continue;
		p = realloc(v->pending, (v->npending + 1) * sizeof(*p));
		if (!p)
			break;     /* fsck reclaims what we drop */
		v->pending = p;
		v->pending[v->npending++] = (struct fs_orphan){ a, g, 0 };
	}
	pthread_mutex_unlock(&v->orphan_lock);
}

/* Free one recovered orphan: 1 done (or nothing to do), 0 try later. */
static int reap_one(struct fs_vol *v, const struct fs_orphan *o)
{
	struct fs_inode *ino;
	struct fs_fd fd;
	int ret;

	/* without a lock first: most entries are long gone or reused */
	if (fs_fd_read(v, o->addr, &fd))
		return 0;
	if (fd.type == FS_T_FREE || fd.gen != o->gen || fd.nlink)
		return 1;
	if (fs_inode_get(v, o->addr, &ino))
		return 0;
	ret = fs_inode_lock(ino, LK_EXCL, 1000);
	if (ret) {
		/* a live host has it open: it is that host's orphan now */
		fs_inode_put(ino);
		return ret == -EBUSY || ret == -ETIMEDOUT ? 0 : 1;
	}
	pthread_rwlock_wrlock(&ino->rw);
	ret = 1;
	if (ino->fd.type != FS_T_FREE && ino->fd.gen == o->gen &&
	    !ino->fd.nlink && !ino->opens_rw && !ino->opens_ro) {
		int r = fs_inode_delete(ino);

		if (r) {
			fs_log(v, "freeing orphan %llx of a dead host: %s",
			       (unsigned long long)o->addr, fs_strerror(r));
			ret = 0;
		} else {
			fs_log(v, "freed orphan file %llx of a dead host",
			       (unsigned long long)o->addr);
		}
	}
	pthread_rwlock_unlock(&ino->rw);
	fs_inode_unlock(ino);
	fs_inode_put(ino);
	return ret;
}

void fs_orphan_reap(struct fs_vol *v)
{
	for (;;) {
		struct fs_orphan o;
		unsigned i;
		int done;

		pthread_mutex_lock(&v->orphan_lock);
		for (i = 0; i < v->npending; i++)
			if (v->pending[i].tries < 200)
				break;
		if (i == v->npending) {
			if (v->npending)
				fs_log(v, "giving up on %u orphan(s) of dead hosts "
				       "(fsck reclaims them)", v->npending);
			free(v->pending);
			v->pending = NULL;
			v->npending = 0;
			pthread_mutex_unlock(&v->orphan_lock);
			return;
		}
		o = v->pending[i];
		pthread_mutex_unlock(&v->orphan_lock);
		done = reap_one(v, &o);
		pthread_mutex_lock(&v->orphan_lock);
		/* the array may have grown meanwhile, never shrunk */
		if (done) {
			v->pending[i] = v->pending[--v->npending];
		} else {
			v->pending[i].tries++;
			pthread_mutex_unlock(&v->orphan_lock);
			return;    /* try again next round */
		}
		pthread_mutex_unlock(&v->orphan_lock);
	}
}
