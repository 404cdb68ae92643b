/*
 * file.c - open files and their data: read, write with allocation on first
 * write, truncate, fsync.
 *
 * Ordering for crash consistency ("ordered" like ext4): a newly allocated
 * unit is written whole (the caller's data, zeros elsewhere) *before* the
 * transaction that maps it commits, so a crash never exposes another file's
 * old data.  A to-be-zeroed (TBZ) unit is written whole before its TBZ flag
 * is cleared.  Inside a file's size, first writes are "write-behind": holes
 * are allocated as TBZ (in runs, ahead of a sequential writer), and TBZ
 * flags of written units are cleared in memory and committed later, at
 * fsync, close or in batches (see "write-behind of the map" below and
 * docs/ARCHITECTURE.md).
 *
 * Size and times of a file open for writing change in memory and reach
 * the disk at fsync, close, or with the next allocation; another host sees
 * them after the writer's fsync (VMFS promises no more).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs_int.h"

#define TX_UNITS 32       /* units allocated or freed per transaction */

/* How long an open waits for another host's conflicting hold. */
#define OPEN_LOCK_MS 3000

struct fs_file {
	struct fs_inode *ino;
	bool rw;
};

/* After a change of the data or size reached the LUN (or failed: part of
 * it may have, or it was refused: a needless count costs a reader's
 * read-ahead window, nothing else), before it is acknowledged. */
static void data_changed(struct fs_inode *ino)
{
	__atomic_add_fetch(&ino->data_seq, 1, __ATOMIC_RELEASE);
}

uint64_t fs_root(fs_vol *v)
{
	return v->sb.root;
}

void fs_stat_from_fd(const struct fs_fd *fd, struct fs_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->ino = fd->self;
	st->gen = fd->gen;
	st->type = fd->type;
	st->mode = fd->mode;
	st->nlink = fd->nlink;
	st->uid = fd->uid;
	st->gid = fd->gid;
	st->size = fd->size;
	st->alloc = fd->alloc_bytes;
	st->atime = fd->atime;
	st->mtime = fd->mtime;
	st->ctime = fd->ctime;
	st->btime = fd->btime;
}

int fs_getattr(fs_vol *v, uint64_t ino, struct fs_stat *st)
{
	/* an inode this host holds has the current FD in memory (including
	 * size and times not yet committed) */
	struct fs_inode *in = fs_inode_find(v, ino);
	struct fs_fd fd;
	int ret;

	if (in) {
		bool have;

		pthread_mutex_lock(&in->m);
		have = in->held != LK_FREE && in->valid;
		if (have)
			fs_stat_from_fd(&in->fd, st);
		pthread_mutex_unlock(&in->m);
		fs_inode_put(in);
		if (have)
			return 0;
	}
	ret = fs_fd_read(v, ino, &fd);
	if (ret)
		return ret;
	if (fd.type == FS_T_FREE)
		return -ENOENT;
	fs_stat_from_fd(&fd, st);
	return 0;
}

/* ---- open / close ---------------------------------------------------------- */

int fs_open(fs_vol *v, uint64_t addr, int flags, fs_file **out)
{
	struct fs_file *f;
	struct fs_inode *ino;
	bool rw = flags == FS_O_RDWR;
	int ret;

	if (rw && v->rdonly)
		return -EROFS;
	ret = fs_inode_get(v, addr, &ino);
	if (ret)
		return ret;
	f = calloc(1, sizeof(*f));
	if (!f) {
		ret = -ENOMEM;
		goto put;
	}
	f->ino = ino;
	f->rw = rw;
	if (v->rdonly) {
		/* no locks at all: a read-only host reads what is on disk */
		pthread_mutex_lock(&ino->m);
		ret = fs_fd_read(v, addr, &ino->fd);
		ino->valid = false;
		pthread_mutex_unlock(&ino->m);
		if (ret)
			goto free_f;
		if (ino->fd.type == FS_T_FREE) {
			ret = -ENOENT;
			goto free_f;
		}
		*out = f;
		return 0;
	}
	/* A host that has the file open keeps it for long: waiting helps
	 * only against another host's short metadata operation on it, so
	 * an open gives up (EBUSY, holder named) sooner than those do. */
	ret = fs_inode_lock(ino, rw ? LK_EXCL : LK_SHARED, OPEN_LOCK_MS);
	if (ret)
		goto free_f;
	pthread_mutex_lock(&ino->m);
	if (ino->fd.type == FS_T_FREE) {
		ret = -ENOENT;
	} else if (ino->fd.type == FS_T_DIR && rw) {
		ret = -EISDIR;
	} else {
		if (rw)
			ino->opens_rw++;
		else
			ino->opens_ro++;
	}
	pthread_mutex_unlock(&ino->m);
	fs_inode_unlock(ino);
	if (ret)
		goto free_f;
	*out = f;
	return 0;

free_f:
	free(f);
put:
	fs_inode_put(ino);
	return ret;
}

/* ---- write-behind of the map ------------------------------------------------ */

/* Put the deferred TBZ clears into tx.  Their units were written whole
 * before they were listed; the transaction flushes data before it commits
 * (fs_tx_mark_data), so no mapping ever points at unwritten data. */
static int pend_put(struct fs_tx *tx, struct fs_inode *ino)
{
	if (!ino->npend)
		return 0;
	fs_tx_mark_data(tx);
	for (unsigned i = 0; i < ino->npend; i++) {
		int ret = fs_bmap_set(tx, ino, ino->pend[i].b, ino->pend[i].a);

		if (ret)
			return ret;
	}
	return 0;
}

/* Give back, inside tx, the units allocated ahead and never written. */
static int ahead_put(struct fs_tx *tx, struct fs_inode *ino)
{
	uint64_t unit = fs_unit(ino->v, &ino->fd);

	for (unsigned i = 0; i < ino->nahead; i++) {
		uint64_t b = ino->ahead[i].b, a = ino->ahead[i].a, cur;
		int ret = fs_bmap_get(ino, b, &cur);

		if (!ret && cur != (a | FS_ADDR_TBZ))
			continue;       /* written since, or freed by a truncate */
		if (!ret)
			ret = fs_bmap_set(tx, ino, b, 0);
		if (!ret)
			ret = fs_free(tx, a);
		if (ret)
			return ret;
		ino->fd.alloc_bytes -= unit;
	}
	return 0;
}

/* Under m (or rw held for writing). */
static int pend_find(const struct fs_inode *ino, uint64_t b)
{
	for (unsigned i = 0; i < ino->npend; i++)
		if (ino->pend[i].b == b)
			return (int)i;
	return -1;
}

/* Under m (or rw held for writing). */
static void ahead_drop(struct fs_inode *ino, uint64_t b)
{
	for (unsigned i = 0; i < ino->nahead; i++)
		if (ino->ahead[i].b == b) {
			ino->ahead[i] = ino->ahead[--ino->nahead];
			return;
		}
}

/* With rw held for writing: wait for fs_aio requests still at the LUN (none
 * can start meanwhile), before blocks may be freed. */
static void aio_drain(struct fs_inode *ino)
{
	pthread_mutex_lock(&ino->m);
	while (ino->aio_inflight)
		pthread_cond_wait(&ino->filled, &ino->m);
	pthread_mutex_unlock(&ino->m);
}

/*
 * Commit what changed in memory: size and times, deferred TBZ clears, and
 * with give_back the units allocated ahead and not used.  Called with rw
 * held for writing.
 */
static int commit_fd(struct fs_inode *ino, bool give_back)
{
	struct fs_tx *tx;
	struct fs_fd fd;
	bool need;
	int ret;

	pthread_mutex_lock(&ino->m);
	need = ino->fd_dirty || ino->npend || (give_back && ino->nahead);
	pthread_mutex_unlock(&ino->m);
	if (!need)
		return 0;
	tx = fs_tx_begin(ino->v);
	if (!tx)
		return -ENOMEM;
	ret = fs_inode_tx(tx, ino);
	if (!ret)
		ret = pend_put(tx, ino);
	if (!ret && give_back)
		ret = ahead_put(tx, ino);
	if (!ret) {
		pthread_mutex_lock(&ino->m);
		fd = ino->fd;
		ino->fd_dirty = false;
		pthread_mutex_unlock(&ino->m);
		ret = fs_fd_put(tx, &fd);
	}
	if (ret) {
		fs_tx_abort(tx);
		goto fail;
	}
	ret = fs_tx_commit(tx);
	if (ret)
		goto fail;
	pthread_mutex_lock(&ino->m);
	ino->npend = 0;
	if (give_back)
		ino->nahead = 0;
	pthread_mutex_unlock(&ino->m);
	return 0;
fail:
	/* Still to be committed: size and times stay as written (a reload
	 * alone would shrink the size back to the disk's, and a later
	 * fsync would then succeed without the data past it), the
	 * deferred clears stay listed. */
	pthread_mutex_lock(&ino->m);
	fd = ino->fd;
	pthread_mutex_unlock(&ino->m);
	if (ino->npend || give_back)
		fs_inode_reload(ino);   /* the map changed in memory */
	pthread_mutex_lock(&ino->m);
	ino->fd.size = fd.size;
	ino->fd.mtime = fd.mtime;
	ino->fd.ctime = fd.ctime;
	ino->fd_dirty = true;
	pthread_mutex_unlock(&ino->m);
	return ret;
}

int fs_commit_fd(struct fs_inode *ino)
{
	return commit_fd(ino, false);
}

/* The last close of a file whose last name went while it was open: free
 * it, and drop it from our orphan list. */
static void delete_at_close(struct fs_inode *ino)
{
	int r = fs_inode_lock(ino, LK_EXCL, 0);

	if (!r) {
		pthread_rwlock_wrlock(&ino->rw);
		if (ino->fd.type != FS_T_FREE && !ino->fd.nlink &&
		    !ino->opens_rw && !ino->opens_ro) {
			r = fs_inode_delete(ino);
			if (!r)
				fs_orphan_del(ino->v, ino->addr);
		}
		pthread_rwlock_unlock(&ino->rw);
		fs_inode_unlock(ino);
	}
	if (r)
		fs_log(ino->v, "freeing removed file %llx at its last close: %s "
		       "(left on our orphan list)", (unsigned long long)ino->addr,
		       fs_strerror(r));
}

int fs_close(fs_file *f)
{
	struct fs_inode *ino = f->ino;
	bool gone = false, last_rw;
	int ret = 0;

	if (!ino->v->rdonly) {
		/* the write lock (rw) orders this against writers of ours */
		pthread_rwlock_wrlock(&ino->rw);
		aio_drain(ino);
		pthread_mutex_lock(&ino->m);
		last_rw = f->rw && ino->opens_rw == 1;
		pthread_mutex_unlock(&ino->m);
		if (f->rw && ino->fd.nlink) {
			ret = commit_fd(ino, last_rw);
		} else if (last_rw) {
			/* the file goes with its last close: what is mapped
			 * on disk is what gets freed, written or not */
			pthread_mutex_lock(&ino->m);
			ino->npend = ino->nahead = 0;
			pthread_mutex_unlock(&ino->m);
		}
		pthread_rwlock_unlock(&ino->rw);
		pthread_mutex_lock(&ino->m);
		if (f->rw)
			ino->opens_rw--;
		else
			ino->opens_ro--;
		gone = !ino->opens_rw && !ino->opens_ro && !ino->fd.nlink &&
		       ino->fd.type != FS_T_FREE;
		ino->lock_users++;      /* so that unlock re-evaluates */
		pthread_mutex_unlock(&ino->m);
		fs_inode_unlock(ino);
		if (gone)
			delete_at_close(ino);
	}
	fs_inode_put(ino);
	free(f);
	return ret;
}

int fs_fstat(fs_file *f, struct fs_stat *st)
{
	pthread_mutex_lock(&f->ino->m);
	fs_stat_from_fd(&f->ino->fd, st);
	pthread_mutex_unlock(&f->ino->m);
	return 0;
}

/* ---- read ------------------------------------------------------------------ */

/* Read [off, off+len) of unit address a (0/TBZ = zeros) into buf.  off and
 * len need not be sector aligned. */
static int unit_read(struct fs_vol *v, uint64_t a, uint64_t off, void *buf,
		     size_t len)
{
	uint64_t start, end, base;
	unsigned ss = v->ss;
	unsigned char *bounce;
	ssize_t n;

	if (!a || (a & FS_ADDR_TBZ)) {
		memset(buf, 0, len);
		return 0;
	}
	base = fs_unit_off(v, a);
	if (off % ss == 0 && len % ss == 0) {
		n = mp_lun_pread(v->ext[fs_addr_ext(a)].lun, buf, len, base + off);
		return n < 0 ? (int)n : 0;
	}
	start = off - off % ss;
	end = (off + len + ss - 1) / ss * ss;
	bounce = fs_balloc(end - start);
	if (!bounce)
		return -ENOMEM;
	n = mp_lun_pread(v->ext[fs_addr_ext(a)].lun, bounce, end - start,
			 base + start);
	if (n >= 0)
		memcpy(buf, bounce + (off - start), len);
	free(bounce);
	return n < 0 ? (int)n : 0;
}

static ssize_t read_locked(struct fs_inode *ino, void *buf, size_t len,
			   uint64_t off)
{
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	uint64_t size, unit, done = 0;

	pthread_mutex_lock(&ino->m);
	size = fd->size;
	pthread_mutex_unlock(&ino->m);
	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	if (fd->map == FS_MAP_INLINE) {
		memcpy(buf, fd->inline_data + off, len);
		return (ssize_t)len;
	}
	unit = fs_unit(v, fd);
	while (done < len) {
		uint64_t pos = off + done, b = pos / unit, in = pos % unit, a;
		size_t n = (size_t)(unit - in < len - done ? unit - in : len - done);
		int ret = fs_bmap_get(ino, b, &a);

		if (!ret)
			ret = unit_read(v, a, in, (char *)buf + done, n);
		if (ret)
			return done ? (ssize_t)done : ret;
		done += n;
	}
	return (ssize_t)len;
}

ssize_t fs_pread(fs_file *f, void *buf, size_t len, uint64_t off)
{
	struct fs_inode *ino = f->ino;
	ssize_t ret;

	pthread_rwlock_rdlock(&ino->rw);
	ret = read_locked(ino, buf, len, off);
	pthread_rwlock_unlock(&ino->rw);
	return ret;
}

/* ---- write ------------------------------------------------------------------- */

/* Write buf to [off, off+len) of mapped, non-TBZ unit a; unaligned edges
 * by read-modify-write of their sectors. */
static int unit_write(struct fs_vol *v, uint64_t a, uint64_t off,
		      const void *buf, size_t len)
{
	uint64_t start, end, base = fs_unit_off(v, a);
	mp_lun *lun = v->ext[fs_addr_ext(a)].lun;
	unsigned ss = v->ss;
	unsigned char *bounce;
	ssize_t n;

	if (off % ss == 0 && len % ss == 0) {
		n = mp_lun_pwrite(lun, buf, len, base + off, 0);
		return n < 0 ? (int)n : 0;
	}
	start = off - off % ss;
	end = (off + len + ss - 1) / ss * ss;
	bounce = fs_balloc(end - start);
	if (!bounce)
		return -ENOMEM;
	/* only the first and last sector can be partial */
	n = mp_lun_pread(lun, bounce, ss, base + start);
	if (n >= 0 && end - start > ss)
		n = mp_lun_pread(lun, bounce + (end - start - ss), ss, base + end - ss);
	if (n >= 0) {
		memcpy(bounce + (off - start), buf, len);
		n = mp_lun_pwrite(lun, bounce, end - start, base + start, 0);
	}
	free(bounce);
	return n < 0 ? (int)n : 0;
}

/* Write a whole new unit: old contents (copied from `from`, 0 = zeros) with
 * [in, in+len) replaced by buf. */
static int unit_fill(struct fs_vol *v, uint64_t a, uint64_t unit, uint64_t from,
		     uint64_t in, const void *buf, size_t len)
{
	unsigned char *b;
	ssize_t n;
	int ret = 0;

	if (!from && in == 0 && len == unit && buf) {
		/* the caller's data is the whole unit */
		n = mp_lun_pwrite(v->ext[fs_addr_ext(a)].lun, buf, unit,
				  fs_unit_off(v, a), 0);
		return n < 0 ? (int)n : 0;
	}
	b = fs_balloc(unit);
	if (!b)
		return -ENOMEM;
	if (from)
		ret = unit_read(v, from, 0, b, unit);
	if (!ret) {
		if (buf)
			memcpy(b + in, buf, len);
		n = mp_lun_pwrite(v->ext[fs_addr_ext(a)].lun, b, unit,
				  fs_unit_off(v, a), 0);
		ret = n < 0 ? (int)n : 0;
	}
	free(b);
	return ret;
}

static int convert(struct fs_inode *ino, bool to_fb);

/*
 * Move a file out of inline data, or out of sub-blocks once it outgrows
 * them (new_size), into units able to hold new_size.  Data first, then the
 * transaction that switches the map and frees what it replaces.
 */
int fs_file_convert(struct fs_inode *ino, uint64_t new_size)
{
	return convert(ino, new_size > (uint64_t)FS_SB_DIRECT_MAX * ino->v->sb.sb_size);
}

/* fs_file_convert, into file blocks if to_fb (and if the volume has no
 * sub-block left: a small file then takes a file block, as a big one) */
static int convert(struct fs_inode *ino, bool to_fb)
{
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	enum fs_rtype t;
	uint64_t unit, nunits, old[FS_SB_DIRECT_MAX];
	uint64_t newa[FS_SB_DIRECT_MAX];
	unsigned char *data = NULL;
	struct fs_tx *tx;
	unsigned nold;
	int ret;

	if (fd->map == FS_MAP_DIRECT && fd->unit == FS_UNIT_SB && !to_fb)
		return 0;   /* sub-blocks still do */
	if ((fd->size + v->sb.sb_size - 1) / v->sb.sb_size > FS_SB_DIRECT_MAX)
		return -EINVAL;
	data = fs_balloc(fd->size ? fd->size : 1);
	if (!data)
		return -ENOMEM;
	if (read_locked(ino, data, fd->size, 0) != (ssize_t)fd->size) {
		ret = -EIO;
		goto out;
	}
again:
	t = to_fb ? FS_R_FB : FS_R_SB;
	unit = to_fb ? v->sb.block_size : v->sb.sb_size;
	nunits = (fd->size + unit - 1) / unit;
	nold = 0;
	memset(newa, 0, sizeof(newa));
	tx = fs_tx_begin(v);
	if (!tx) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fs_inode_tx(tx, ino);
	if (!ret && nunits)
		ret = fs_alloc(tx, t, (unsigned)nunits, newa);
	if (ret == -ENOSPC && !to_fb) {
		/* no sub-block left anywhere: file blocks then (nothing of
		 * fd changed yet: what is not committed of it stays) */
		fs_tx_abort(tx);
		to_fb = true;
		goto again;
	}
	for (uint64_t i = 0; !ret && i < nunits; i++) {
		uint64_t n = fd->size - i * unit < unit ? fd->size - i * unit : unit;

		ret = unit_fill(v, newa[i], unit, 0, 0, data + i * unit, n);
		fs_tx_mark_data(tx);
	}
	if (!ret && fd->map != FS_MAP_INLINE) {
		for (unsigned i = 0; i < FS_SB_DIRECT_MAX; i++)
			if (fd->addr[i])
				old[nold++] = fd->addr[i] & ~FS_ADDR_TBZ;
		for (unsigned i = 0; !ret && i < nold; i++)
			ret = fs_free(tx, old[i]);
	}
	if (ret) {
		fs_tx_abort(tx);
		/* out of space: fd is as it was (its size and times not
		 * committed yet included); otherwise read it again */
		if (ret != -ENOSPC)
			fs_inode_reload(ino);
		goto out;
	}
	memset(fd->addr, 0, sizeof(fd->addr));
	fd->map = FS_MAP_DIRECT;
	fd->unit = to_fb ? FS_UNIT_FB : FS_UNIT_SB;
	for (uint64_t i = 0; i < nunits; i++)
		fd->addr[i] = newa[i];
	fd->alloc_bytes = nunits * unit;
	fs_bmap_forget(ino);
	ret = fs_fd_put(tx, fd);
	if (ret) {
		fs_tx_abort(tx);
		goto out;
	}
	ret = fs_tx_commit(tx);
out:
	free(data);
	return ret;
}

/* Size and times after writing up to `end`, in memory (fd_dirty). */
static void wrote(struct fs_inode *ino, uint64_t end)
{
	pthread_mutex_lock(&ino->m);
	if (end > ino->fd.size)
		ino->fd.size = end;
	ino->fd.mtime = ino->fd.ctime = fs_now_ns();
	ino->fd_dirty = true;
	pthread_mutex_unlock(&ino->m);
}

/* Put the FD into tx as of now: a copy taken under m, since fs_aio
 * completions update size and times under m alone. */
static int put_fd(struct fs_tx *tx, struct fs_inode *ino)
{
	struct fs_fd *c = malloc(sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	pthread_mutex_lock(&ino->m);
	*c = ino->fd;
	pthread_mutex_unlock(&ino->m);
	ret = fs_fd_put(tx, c);
	free(c);
	return ret;
}

/* Is a write at unit b part of a sequential stream?  Writes of a stream
 * arrive out of order from several threads (FUSE workers, a guest's
 * queue): near the furthest unit written so far. */
static bool sequential(struct fs_inode *ino, uint64_t b)
{
	uint64_t next = __atomic_load_n(&ino->seq_next, __ATOMIC_RELAXED);

	return next && b + 32 >= next && b <= next + 32;
}

/* A write ended before unit `next`: remember the furthest. */
static void wrote_upto(struct fs_inode *ino, uint64_t next)
{
	uint64_t cur = __atomic_load_n(&ino->seq_next, __ATOMIC_RELAXED);

	/* a jump back (a new stream, a random writer) restarts it */
	if (next + 32 < cur) {
		__atomic_store_n(&ino->seq_next, next, __ATOMIC_RELAXED);
		return;
	}
	while (next > cur &&
	       !__atomic_compare_exchange_n(&ino->seq_next, &cur, next, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/*
 * Write into a "to be zeroed" unit at real address a: the unit is written
 * whole (zeros around the data), and its flag is cleared in memory only,
 * on the pending list that fsync, close or a full list commits.  A crash
 * before that loses the write (it was not fsync'd) and the unit reads as
 * zeros again; it never exposes old data.
 *
 * Called with rw held for reading (several first writes of a file in
 * flight at once): the unit is claimed (busy) on the list first; a second
 * writer of the same unit waits for the first, then writes in place.
 * Returns 0 (written), 1 (the unit is data now: write it in place), or
 * -EAGAIN (the list is full: the caller commits it, holding rw for
 * writing, and tries again).
 */
static int write_tbz(struct fs_inode *ino, uint64_t b, uint64_t a,
		     uint64_t in, const void *buf, size_t n)
{
	struct fs_vol *v = ino->v;
	int i, ret;

	pthread_mutex_lock(&ino->m);
	while ((i = pend_find(ino, b)) >= 0 && ino->pend[i].busy)
		pthread_cond_wait(&ino->filled, &ino->m);
	if (i >= 0) {
		pthread_mutex_unlock(&ino->m);
		return 1;
	}
	if (!ino->pend)
		ino->pend = malloc(FS_PEND_MAX * sizeof(*ino->pend));
	if (!ino->pend || ino->npend == FS_PEND_MAX) {
		pthread_mutex_unlock(&ino->m);
		return ino->pend ? -EAGAIN : -ENOMEM;
	}
	ino->pend[ino->npend++] = (struct fs_unit_ref){ .b = b, .a = a,
							.busy = true };
	ahead_drop(ino, b);
	pthread_mutex_unlock(&ino->m);

	ret = unit_fill(v, a, fs_unit(v, &ino->fd), 0, in, buf, n);

	pthread_mutex_lock(&ino->m);
	i = pend_find(ino, b);
	if (ret)
		ino->pend[i] = ino->pend[--ino->npend];   /* still TBZ */
	else
		ino->pend[i].busy = false;
	pthread_cond_broadcast(&ino->filled);
	pthread_mutex_unlock(&ino->m);
	return ret;
}

/*
 * Allocate, inside tx, up to ino->ahead_run units after unit b for a
 * sequential writer: holes inside the file's size, mapped "to be zeroed"
 * (so they read as zeros), taken only from clusters free right now.  The
 * next writes of the stream find them and need no transaction.
 */
static int alloc_ahead(struct fs_tx *tx, struct fs_inode *ino, uint64_t b)
{
	struct fs_fd *fd = &ino->fd;
	uint64_t unit = fs_unit(ino->v, fd), addrs[FS_AHEAD_MAX];
	unsigned want = 0, got;
	int ret;

	if (fd->unit != FS_UNIT_FB)
		return 0;
	if (!ino->ahead) {
		ino->ahead = malloc(FS_AHEAD_MAX * sizeof(*ino->ahead));
		if (!ino->ahead)
			return 0;   /* only an optimisation */
	}
	while (want < ino->ahead_run && ino->nahead + want < FS_AHEAD_MAX &&
	       (b + 1 + want) * unit < fd->size) {
		uint64_t a;

		ret = fs_bmap_get(ino, b + 1 + want, &a);
		if (ret)
			return ret;
		if (a)
			break;
		want++;
	}
	if (!want)
		return 0;
	/* in pieces of at most 64 (what one allocation call takes), each
	 * from the cluster at the cursor and leaving half of its free */
	got = 0;
	ret = 0;
	while (!ret && got < want) {
		unsigned g = 0;

		ret = fs_alloc_upto(tx, FS_R_FB, want - got > 64 ? 64 : want - got,
				    addrs + got, &g);
		if (!g)
			break;
		got += g;
	}
	for (unsigned i = 0; !ret && i < got; i++) {
		ret = fs_bmap_set(tx, ino, b + 1 + i, addrs[i] | FS_ADDR_TBZ);
		if (!ret) {
			fd->alloc_bytes += unit;
			ino->ahead[ino->nahead++] =
				(struct fs_unit_ref){ .b = b + 1 + i, .a = addrs[i] };
		}
	}
	return ret;
}

/*
 * One transaction for the write [off+*done, off+len) from a hole on.
 * Inside the file's size in file blocks (a thin disk), it allocates the
 * holes of the write (up to TX_UNITS) and, for a sequential writer, more
 * ahead, all mapped "to be zeroed": no data waits on the commit, and the
 * caller then writes them as such (write_tbz).  Elsewhere (appends, small
 * files in sub-blocks) it allocates and writes them, data first, and
 * commits the new size with them, advancing *donep.
 */
static int write_holes(struct fs_inode *ino, const unsigned char *buf,
		       size_t len, uint64_t off, uint64_t *donep)
{
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	uint64_t unit = fs_unit(v, fd), done = *donep, last = 0;
	bool fb = fd->unit == FS_UNIT_FB;
	bool reserve = fb && (off + done) / unit * unit < fd->size;
	struct fs_tx *tx = fs_tx_begin(v);
	unsigned nnew = 0, nahead = ino->nahead;
	bool seq = sequential(ino, (off + done) / unit);
	/* the map as it was (put back if the volume runs out of space) */
	uint64_t map_addr[FS_FD_ADDRS], map_alloc = fd->alloc_bytes;
	uint8_t map = fd->map, map_unit = fd->unit;
	int ret;

	if (!tx)
		return -ENOMEM;
	memcpy(map_addr, fd->addr, sizeof(map_addr));
	ret = fs_inode_tx(tx, ino);
	while (!ret && done < len && nnew < TX_UNITS) {
		uint64_t pos = off + done, b = pos / unit, in = pos % unit, a;
		size_t n = (size_t)(unit - in < len - done ? unit - in : len - done);

		ret = fs_bmap_get(ino, b, &a);
		if (ret || (reserve && (a || b * unit >= fd->size)))
			break;
		if (a && !(a & FS_ADDR_TBZ)) {
			ret = unit_write(v, a, in, buf + done, n);
		} else if (a) {
			ret = unit_fill(v, a & ~FS_ADDR_TBZ, unit, 0, in, buf + done, n);
			fs_tx_mark_data(tx);
			if (!ret)
				ret = fs_bmap_set(tx, ino, b, a & ~FS_ADDR_TBZ);
		} else {
			ret = fs_alloc(tx, fb ? FS_R_FB : FS_R_SB, 1, &a);
			if (!ret) {
				fd->alloc_bytes += unit;
				nnew++;
			}
			if (!ret && !reserve) {
				ret = unit_fill(v, a, unit, 0, in, buf + done, n);
				fs_tx_mark_data(tx);
			}
			if (!ret)
				ret = fs_bmap_set(tx, ino, b, reserve ? a | FS_ADDR_TBZ : a);
		}
		if (!ret) {
			last = b;
			done += n;
		}
	}
	/* a stream allocates ahead 4 units, then 8, ... up to FS_AHEAD_MAX */
	if (!ret && reserve && seq) {
		ino->ahead_run = ino->ahead_run ? 2 * ino->ahead_run : 4;
		if (ino->ahead_run > FS_AHEAD_MAX)
			ino->ahead_run = FS_AHEAD_MAX;
		ret = alloc_ahead(tx, ino, last);
	} else if (!ret) {
		ino->ahead_run = 0;
	}
	if (!ret) {
		pthread_mutex_lock(&ino->m);
		if (!reserve && off + done > fd->size)
			fd->size = off + done;
		fd->mtime = fd->ctime = fs_now_ns();
		ino->fd_dirty = false;
		pthread_mutex_unlock(&ino->m);
		ret = put_fd(tx, ino);
	}
	if (ret == -ENOSPC) {
		/* the map as before this transaction (what fs_bmap_set
		 * changes: addresses, depth, bytes allocated); size and
		 * times stay as they are, not yet committed from earlier
		 * writes (or an aio completion meanwhile) included: the
		 * writer may go on (another kind of unit, a smaller write) */
		fs_tx_abort(tx);
		ino->nahead = nahead;
		pthread_mutex_lock(&ino->m);
		fd->map = map;
		fd->unit = map_unit;
		memcpy(fd->addr, map_addr, sizeof(map_addr));
		fd->alloc_bytes = map_alloc;
		pthread_mutex_unlock(&ino->m);
		fs_bmap_forget(ino);
		return ret;
	}
	if (ret) {
		fs_tx_abort(tx);
		ino->nahead = nahead;
		fs_inode_reload(ino);
		return ret;
	}
	ret = fs_tx_commit(tx);
	if (ret) {
		/* the map in memory has what did not commit: read it again,
		 * as after an abort, so no later transaction of this file
		 * commits blocks the volume does not have as allocated */
		ino->nahead = nahead;
		fs_inode_reload(ino);
		return ret;
	}
	if (!reserve)
		*donep = done;
	return 0;
}

/*
 * Slow path of a write: some unit of [off, off+len) is a hole or "to be
 * zeroed".  Called with ino->rw held for writing.
 */
static ssize_t write_alloc(struct fs_inode *ino, const unsigned char *buf,
			   size_t len, uint64_t off)
{
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	uint64_t end = off + len, unit, done = 0;
	int ret = 0;

	/* inline while it fits */
	if (fd->map == FS_MAP_INLINE && end <= FS_INLINE_MAX &&
	    fd->type == FS_T_FILE) {
		struct fs_tx *tx = fs_tx_begin(v);

		if (!tx)
			return -ENOMEM;
		memcpy(fd->inline_data + off, buf, len);
		if (end > fd->size)
			fd->size = end;
		fd->mtime = fd->ctime = fs_now_ns();
		ret = fs_inode_tx(tx, ino);
		if (!ret)
			ret = fs_fd_put(tx, fd);
		if (ret) {
			fs_tx_abort(tx);
			return ret;
		}
		ret = fs_tx_commit(tx);
		pthread_mutex_lock(&ino->m);
		ino->fd_dirty = false;
		pthread_mutex_unlock(&ino->m);
		return ret ? ret : (ssize_t)len;
	}
	if (fd->map == FS_MAP_INLINE ||
	    (fd->unit == FS_UNIT_SB &&
	     end > (uint64_t)FS_SB_DIRECT_MAX * v->sb.sb_size)) {
		ret = fs_file_convert(ino, end > fd->size ? end : fd->size);
		if (ret)
			return ret;
	}
	unit = fs_unit(v, fd);
	while (done < len) {
		uint64_t pos = off + done, b = pos / unit, in = pos % unit, a;
		size_t n = (size_t)(unit - in < len - done ? unit - in : len - done);

		ret = fs_bmap_get(ino, b, &a);
		if (ret)
			break;
		if (!a) {
			ret = write_holes(ino, buf, len, off, &done);
			if (ret == -ENOSPC && fd->unit == FS_UNIT_SB) {
				/* no sub-block left: the file goes to file
				 * blocks (allocated, or ENOSPC for good) */
				ret = convert(ino, true);
				unit = fs_unit(v, fd);
			}
			if (ret)
				break;
			continue;
		}
		if (a & FS_ADDR_TBZ) {
			ret = write_tbz(ino, b, a & ~FS_ADDR_TBZ, in, buf + done, n);
			if (ret == -EAGAIN) {
				ret = commit_fd(ino, false);   /* the list is full */
				if (!ret)
					continue;
			} else if (ret == 1) {
				ret = unit_write(v, a & ~FS_ADDR_TBZ, in, buf + done, n);
			}
		} else {
			ret = unit_write(v, a, in, buf + done, n);
		}
		if (ret)
			break;
		done += n;
		wrote(ino, off + done);
	}
	if (done)
		wrote_upto(ino, (off + done - 1) / unit + 1);
	return done ? (ssize_t)done : ret;
}

static ssize_t pwrite_file(fs_file *f, const void *buf, size_t len, uint64_t off)
{
	struct fs_inode *ino = f->ino;
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	uint64_t unit, done = 0;
	bool slow = false;
	ssize_t ret = 0;

	if (!f->rw)
		return -EBADF;
	if (len == 0)
		return 0;
	if (off + len < off || off + len > (1ull << 62))
		return -EFBIG;
	/* fast path: every unit is mapped, write in place, "to be zeroed"
	 * ones whole (several writers at once) */
	pthread_rwlock_rdlock(&ino->rw);
	if (fd->map == FS_MAP_INLINE) {
		slow = true;
	} else {
		unit = fs_unit(v, fd);
		if (fd->unit == FS_UNIT_SB &&
		    off + len > (uint64_t)FS_SB_DIRECT_MAX * unit)
			slow = true;
		for (uint64_t b = off / unit; !slow && b <= (off + len - 1) / unit; b++) {
			uint64_t a;

			ret = fs_bmap_get(ino, b, &a);
			if (ret)
				break;
			if (!a)
				slow = true;
		}
		while (!slow && !ret && done < len) {
			uint64_t pos = off + done, b = pos / unit, in = pos % unit, a;
			size_t n = (size_t)(unit - in < len - done ? unit - in : len - done);
			const char *p = (const char *)buf + done;

			ret = fs_bmap_get(ino, b, &a);
			if (!ret && (a & FS_ADDR_TBZ)) {
				ret = write_tbz(ino, b, a & ~FS_ADDR_TBZ, in, p, n);
				if (ret == -EAGAIN) {
					slow = true;     /* the list is full */
					ret = 0;
					break;
				}
				if (ret == 1)
					ret = unit_write(v, a & ~FS_ADDR_TBZ, in, p, n);
			} else if (!ret) {
				ret = unit_write(v, a, in, p, n);
			}
			if (!ret)
				done += n;
		}
		if (done)
			wrote(ino, off + done);
		if (!slow && !ret)
			wrote_upto(ino, (off + len - 1) / unit + 1);
	}
	pthread_rwlock_unlock(&ino->rw);
	if (ret < 0)
		return done ? (ssize_t)done : ret;
	if (!slow)
		return (ssize_t)len;
	pthread_rwlock_wrlock(&ino->rw);
	ret = write_alloc(ino, (const unsigned char *)buf + done, len - done, off + done);
	pthread_rwlock_unlock(&ino->rw);
	if (ret < 0)
		return done ? (ssize_t)done : ret;
	return (ssize_t)done + ret;
}

ssize_t fs_pwrite(fs_file *f, const void *buf, size_t len, uint64_t off)
{
	ssize_t ret = pwrite_file(f, buf, len, off);

	data_changed(f->ino);
	return ret;
}

/* ---- asynchronous I/O ---------------------------------------------------------- */

/* A request left the LUN (or never reached it): aio_drain may go on. */
static void aio_put(struct fs_inode *ino)
{
	pthread_mutex_lock(&ino->m);
	if (--ino->aio_inflight == 0)
		pthread_cond_broadcast(&ino->filled);
	pthread_mutex_unlock(&ino->m);
}

static void aio_done(struct mp_io *io)
{
	struct fs_aio *a = io->priv;
	struct fs_inode *ino = a->f_->ino;

	a->result = io->result < 0 ? io->result : (ssize_t)a->len;
	if (a->write && a->result > 0)
		wrote(ino, a->off + a->len);
	if (a->write)
		data_changed(ino);
	aio_put(ino);
	a->cb(a);
}

int fs_aio_submit(fs_file *f, struct fs_aio *a)
{
	struct fs_inode *ino = f->ino;
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	uint64_t unit, addr = 0;
	bool direct, in_cb;
	int ret = 0;

	if (a->write && !f->rw)
		return -EBADF;
	if (!a->cb || !a->len)
		return -EINVAL;
	a->f_ = f;
	/* from a completion callback nothing may wait: a file busy with a
	 * metadata change (which may itself wait for this thread's
	 * completions), a pointer block not cached, or a request that is not
	 * a plain mapped I/O is handed back */
	in_cb = mp_in_completion();
	if (!in_cb)
		pthread_rwlock_rdlock(&ino->rw);
	else if (pthread_rwlock_tryrdlock(&ino->rw))
		return -EWOULDBLOCK;
	unit = fs_unit(v, fd);
	pthread_mutex_lock(&ino->m);
	direct = fd->map != FS_MAP_INLINE && fd->unit == FS_UNIT_FB &&
		 a->off % v->ss == 0 && a->len % v->ss == 0 &&
		 a->off / unit == (a->off + a->len - 1) / unit &&
		 (a->write || a->off + a->len <= fd->size);
	pthread_mutex_unlock(&ino->m);
	if (direct) {
		ret = in_cb ? fs_bmap_peek(ino, a->off / unit, &addr) :
			      fs_bmap_get(ino, a->off / unit, &addr);
		direct = !ret && addr && !(addr & FS_ADDR_TBZ);
		if (ret == -EWOULDBLOCK)
			ret = 0;
	}
	if (!direct && !ret && in_cb)
		ret = -EWOULDBLOCK;
	if (direct) {
		mp_lun *lun = v->ext[fs_addr_ext(addr)].lun;
		uint64_t at = fs_unit_off(v, addr) + a->off % unit;

		a->iov_ = (struct iovec){ .iov_base = a->buf, .iov_len = a->len };
		memset(&a->io_, 0, sizeof(a->io_));
		if (a->write)
			mp_io_prep_write(&a->io_, &a->iov_, 1, at, 0);
		else
			mp_io_prep_read(&a->io_, &a->iov_, 1, at);
		a->io_.cb = aio_done;
		a->io_.priv = a;
		pthread_mutex_lock(&ino->m);
		ino->aio_inflight++;
		pthread_mutex_unlock(&ino->m);
		ret = mp_io_submit(lun, &a->io_);
		if (ret)
			aio_put(ino);
	}
	pthread_rwlock_unlock(&ino->rw);
	if (direct || ret)
		return ret;
	/* everything else: the synchronous path, here */
	a->result = a->write ? fs_pwrite(f, a->buf, a->len, a->off) :
			       fs_pread(f, a->buf, a->len, a->off);
	a->cb(a);
	return 0;
}

/* ---- truncate, fsync --------------------------------------------------------- */

int fs_ftruncate(fs_file *f, uint64_t size)
{
	int ret;

	if (!f->rw)
		return -EBADF;
	pthread_rwlock_wrlock(&f->ino->rw);
	ret = fs_truncate_ino(f->ino, size);
	pthread_rwlock_unlock(&f->ino->rw);
	return ret;
}

/* A new size (and times) without a change of the map, committed. */
static int set_size(struct fs_inode *ino, uint64_t size)
{
	pthread_mutex_lock(&ino->m);
	ino->fd.size = size;
	ino->fd.mtime = ino->fd.ctime = fs_now_ns();
	ino->fd_dirty = true;
	pthread_mutex_unlock(&ino->m);
	return fs_commit_fd(ino);
}

static int truncate_ino(struct fs_inode *ino, uint64_t size);

int fs_truncate_ino(struct fs_inode *ino, uint64_t size)
{
	int ret = truncate_ino(ino, size);

	data_changed(ino);
	return ret;
}

static int truncate_ino(struct fs_inode *ino, uint64_t size)
{
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	uint64_t unit, first, last;
	int ret = 0;

	aio_drain(ino);
	/* the map on disk first: what follows frees by it */
	if (ino->npend || ino->nahead) {
		ret = commit_fd(ino, true);
		if (ret)
			return ret;
	}

	if (size >= fd->size || fd->map == FS_MAP_INLINE) {
		if (fd->map == FS_MAP_INLINE && size > FS_INLINE_MAX) {
			ret = fs_file_convert(ino, size);
			if (ret)
				goto out;
		} else if (fd->map == FS_MAP_INLINE && size < fd->size) {
			memset(fd->inline_data + size, 0, fd->size - size);
		}
		if (fd->unit == FS_UNIT_SB && fd->map != FS_MAP_INLINE &&
		    size > (uint64_t)FS_SB_DIRECT_MAX * v->sb.sb_size) {
			ret = fs_file_convert(ino, size);
			if (ret)
				goto out;
		}
		ret = set_size(ino, size);
		goto out;
	}
	unit = fs_unit(v, fd);
	/* zero the tail of the last unit kept, so that growing again later
	 * reads zeros there */
	if (size % unit) {
		uint64_t a, in = size % unit;

		ret = fs_bmap_get(ino, size / unit, &a);
		if (!ret && a && !(a & FS_ADDR_TBZ)) {
			unsigned char *z = fs_balloc(unit - in);

			ret = z ? unit_write(v, a, in, z, unit - in) : -ENOMEM;
			free(z);
		}
		if (ret)
			goto out;
	}
	first = (size + unit - 1) / unit;
	last = (fd->size + unit - 1) / unit;
	/* free from the end, a chunk per transaction: a crash leaves a
	 * consistent, partly shortened file */
	while (last > first && !ret) {
		struct fs_tx *tx = fs_tx_begin(v);
		unsigned nfree = 0;

		if (!tx) {
			ret = -ENOMEM;
			break;
		}
		ret = fs_inode_tx(tx, ino);
		while (!ret && last > first && nfree < TX_UNITS) {
			uint64_t a;

			last--;
			ret = fs_bmap_get(ino, last, &a);
			if (ret || !a)
				continue;
			ret = fs_bmap_set(tx, ino, last, 0);
			if (!ret)
				ret = fs_free(tx, a & ~FS_ADDR_TBZ);
			if (!ret) {
				fd->alloc_bytes -= unit;
				nfree++;
			}
		}
		if (!ret) {
			pthread_mutex_lock(&ino->m);
			fd->size = last > first ? last * unit : size;
			fd->mtime = fd->ctime = fs_now_ns();
			ino->fd_dirty = false;
			pthread_mutex_unlock(&ino->m);
			ret = put_fd(tx, ino);
		}
		if (ret) {
			fs_tx_abort(tx);
			fs_inode_reload(ino);
			break;
		}
		ret = fs_tx_commit(tx);
	}
	/* nothing (more) to free: the cut is inside the last unit kept, or
	 * only holes lay past it; only the size changes */
	if (!ret && fd->size != size)
		ret = set_size(ino, size);
out:
	return ret;
}

int fs_fsync(fs_file *f)
{
	struct fs_inode *ino = f->ino;
	int ret = 0;

	if (f->rw) {
		pthread_rwlock_wrlock(&ino->rw);
		ret = fs_commit_fd(ino);
		pthread_rwlock_unlock(&ino->rw);
	}
	if (!ret && !ino->v->rdonly)
		ret = fs_flush_all(ino->v);
	/* and every metadata change of this host so far (its creates and
	 * renames too) durable and in place: other hosts read it */
	if (!ret && !ino->v->rdonly)
		ret = fs_journal_wait(ino->v, true);
	return ret;
}

int fs_sync(fs_vol *v)
{
	int ret;

	if (v->rdonly)
		return 0;
	ret = fs_flush_all(v);
	if (!ret)
		ret = fs_journal_wait(v, true);
	/* and the holds kept for the journal go: another host may open
	 * what we changed at once */
	if (!ret)
		fs_keep_settle(v);
	return ret;
}

/* ---- fallocate, punch, seek ------------------------------------------------- */

/*
 * Reserve the units of [off, off+len) without writing them: each new unit
 * is mapped "to be zeroed" (reads as zeros until its first write, which
 * zeroes the rest of it first).  Unless keep_size, the size grows to cover
 * the range.  A chunk of units per transaction; ENOSPC keeps what was
 * reserved before it.
 */
static int fallocate_file(fs_file *f, uint64_t off, uint64_t len, bool keep_size)
{
	struct fs_inode *ino = f->ino;
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	uint64_t unit, b, end;
	int ret = 0;

	if (!f->rw)
		return -EBADF;
	if (len == 0 || off + len < off)
		return -EINVAL;
	pthread_rwlock_wrlock(&ino->rw);
	/* reservations are in file blocks: leave inline data and sub-blocks */
	if (fd->map == FS_MAP_INLINE || fd->unit == FS_UNIT_SB) {
		ret = fs_file_convert(ino, (uint64_t)FS_SB_DIRECT_MAX *
				      v->sb.sb_size + 1);
		if (ret)
			goto out;
	}
	unit = fs_unit(v, fd);
	b = off / unit;
	end = (off + len + unit - 1) / unit;
	while (b < end && !ret) {
		struct fs_tx *tx = fs_tx_begin(v);
		unsigned n = 0;

		if (!tx) {
			ret = -ENOMEM;
			break;
		}
		ret = fs_inode_tx(tx, ino);
		while (!ret && b < end && n < TX_UNITS) {
			uint64_t a;

			ret = fs_bmap_get(ino, b, &a);
			if (!ret && !a) {
				ret = fs_alloc(tx, FS_R_FB, 1, &a);
				if (!ret)
					ret = fs_bmap_set(tx, ino, b, a | FS_ADDR_TBZ);
				if (!ret) {
					fd->alloc_bytes += unit;
					n++;
				}
			}
			if (!ret)
				b++;
		}
		if (!ret) {
			pthread_mutex_lock(&ino->m);
			if (!keep_size && b * unit > fd->size)
				fd->size = b * unit < off + len ? b * unit : off + len;
			fd->ctime = fs_now_ns();
			ino->fd_dirty = false;
			pthread_mutex_unlock(&ino->m);
			ret = put_fd(tx, ino);
		}
		if (ret) {
			fs_tx_abort(tx);
			fs_inode_reload(ino);
			break;
		}
		ret = fs_tx_commit(tx);
	}
out:
	pthread_rwlock_unlock(&ino->rw);
	return ret;
}

int fs_fallocate(fs_file *f, uint64_t off, uint64_t len, bool keep_size)
{
	int ret = fallocate_file(f, off, len, keep_size);

	data_changed(f->ino);
	return ret;
}

/*
 * Punch a hole: units wholly inside [off, off+len) are freed (and given
 * back to the LUN with discard where it has one), the partial edges are
 * zeroed in place.  The size does not change.
 */
/* Write zeros over [s, t) inside one unit, if it holds data. */
static int zero_range(struct fs_vol *v, struct fs_inode *ino, uint64_t s,
		      uint64_t t)
{
	uint64_t unit = fs_unit(v, &ino->fd), a;
	unsigned char *z;
	int ret = fs_bmap_get(ino, s / unit, &a);

	if (ret || !a || (a & FS_ADDR_TBZ))
		return ret;
	z = fs_balloc(t - s);
	if (!z)
		return -ENOMEM;
	ret = unit_write(v, a, s % unit, z, t - s);
	free(z);
	return ret;
}

static int punch_file(fs_file *f, uint64_t off, uint64_t len)
{
	struct fs_inode *ino = f->ino;
	struct fs_vol *v = ino->v;
	struct fs_fd *fd = &ino->fd;
	uint64_t unit, first, last, end = off + len;
	int ret = 0;

	if (!f->rw)
		return -EBADF;
	if (len == 0 || end < off)
		return -EINVAL;
	pthread_rwlock_wrlock(&ino->rw);
	aio_drain(ino);
	if (ino->npend || ino->nahead) {
		ret = commit_fd(ino, true);
		if (ret)
			goto out;
	}
	if (fd->map == FS_MAP_INLINE) {
		if (off < fd->size) {
			uint64_t e = end < fd->size ? end : fd->size;

			memset(fd->inline_data + off, 0, e - off);
			pthread_mutex_lock(&ino->m);
			ino->fd_dirty = true;
			pthread_mutex_unlock(&ino->m);
			ret = fs_commit_fd(ino);
		}
		goto out;
	}
	unit = fs_unit(v, fd);
	first = (off + unit - 1) / unit;
	last = end / unit;
	/* partial edges: zeros written in place */
	if (off % unit) {
		uint64_t head_end = (off / unit + 1) * unit < end ?
				    (off / unit + 1) * unit : end;

		ret = zero_range(v, ino, off, head_end);
	}
	if (!ret && end % unit && end / unit * unit > off)
		ret = zero_range(v, ino, end / unit * unit, end);
	while (first < last && !ret) {
		struct fs_tx *tx = fs_tx_begin(v);
		unsigned n = 0;

		if (!tx) {
			ret = -ENOMEM;
			break;
		}
		ret = fs_inode_tx(tx, ino);
		while (!ret && first < last && n < TX_UNITS) {
			uint64_t a;

			ret = fs_bmap_get(ino, first, &a);
			if (!ret && a) {
				ret = fs_bmap_set(tx, ino, first, 0);
				if (!ret)
					ret = fs_free(tx, a & ~FS_ADDR_TBZ);
				if (!ret) {
					fd->alloc_bytes -= unit;
					n++;
				}
			}
			if (!ret)
				first++;
		}
		if (!ret)
			ret = put_fd(tx, ino);
		if (ret) {
			fs_tx_abort(tx);
			fs_inode_reload(ino);
			break;
		}
		/* the commit gives the freed blocks back to the LUN */
		ret = fs_tx_commit(tx);
	}
out:
	pthread_rwlock_unlock(&ino->rw);
	return ret;
}

int fs_punch(fs_file *f, uint64_t off, uint64_t len)
{
	int ret = punch_file(f, off, len);

	data_changed(f->ino);
	return ret;
}

int64_t fs_seek(fs_file *f, uint64_t off, bool data)
{
	struct fs_inode *ino = f->ino;
	struct fs_fd *fd = &ino->fd;
	uint64_t unit, b, size;
	int64_t ret;

	pthread_rwlock_rdlock(&ino->rw);
	size = fd->size;
	if (off >= size) {
		ret = -ENXIO;
		goto out;
	}
	if (fd->map == FS_MAP_INLINE) {
		ret = data ? (int64_t)off : (int64_t)size;
		goto out;
	}
	unit = fs_unit(ino->v, fd);
	for (b = off / unit; b * unit < size; b++) {
		uint64_t a;
		int r = fs_bmap_get(ino, b, &a);
		bool is_data = a && !(a & FS_ADDR_TBZ);

		if (r) {
			ret = r;
			goto out;
		}
		if (is_data == data) {
			uint64_t pos = b * unit > off ? b * unit : off;

			ret = (int64_t)(pos < size ? pos : size);
			goto out;
		}
	}
	ret = data ? -ENXIO : (int64_t)size;   /* the end is a hole */
out:
	pthread_rwlock_unlock(&ino->rw);
	return ret;
}

/* ---- block map report ------------------------------------------------------ */

uint64_t fs_file_data_seq(fs_file *f)
{
	return __atomic_load_n(&f->ino->data_seq, __ATOMIC_ACQUIRE);
}

uint32_t fs_file_unit(fs_file *f)
{
	struct fs_inode *ino = f->ino;
	uint32_t unit;

	pthread_rwlock_rdlock(&ino->rw);
	unit = ino->fd.map == FS_MAP_INLINE ? 0 :
	       (uint32_t)fs_unit(ino->v, &ino->fd);
	pthread_rwlock_unlock(&ino->rw);
	return unit;
}

int fs_map(fs_file *f, uint64_t off, uint64_t len, struct fs_map_ext *out,
	   unsigned max, unsigned *n)
{
	struct fs_inode *ino = f->ino;
	struct fs_vol *v = ino->v;
	uint64_t unit, end;
	int ret = 0;

	*n = 0;
	pthread_rwlock_rdlock(&ino->rw);
	if (ino->fd.map == FS_MAP_INLINE) {
		/* the data lives in the FD: one extent, "inline" */
		if (off < ino->fd.size && max) {
			out[0] = (struct fs_map_ext){
				.off = 0, .len = ino->fd.size,
				.state = FS_MAP_EXT_INLINE,
				.ext = fs_addr_ext(ino->addr),
				.lun_off = fs_res_off(v, ino->addr) + FS_BLOCK };
			*n = 1;
		}
		goto out;
	}
	unit = fs_unit(v, &ino->fd);
	end = off + len < off ? UINT64_MAX : off + len;
	for (uint64_t b = off / unit; b * unit < end && *n <= max; b++) {
		struct fs_map_ext e = { .off = b * unit, .len = unit };
		uint64_t a;

		ret = fs_bmap_get(ino, b, &a);
		if (ret)
			break;
		if (!a) {
			e.state = FS_MAP_EXT_HOLE;
		} else {
			e.state = a & FS_ADDR_TBZ ? FS_MAP_EXT_TBZ : FS_MAP_EXT_DATA;
			e.ext = fs_addr_ext(a);
			e.lun_off = fs_unit_off(v, a);
		}
		if (*n) {
			struct fs_map_ext *p = &out[*n - 1];

			/* contiguous on the LUN and in the same state: merge */
			if (p->state == e.state && p->off + p->len == e.off &&
			    (e.state == FS_MAP_EXT_HOLE ||
			     (p->ext == e.ext && p->lun_off + p->len == e.lun_off))) {
				p->len += e.len;
				continue;
			}
		}
		if (*n == max) {
			ret = -E2BIG;    /* more extents than room: call again
					  * from the last one's end */
			break;
		}
		out[(*n)++] = e;
	}
out:
	pthread_rwlock_unlock(&ino->rw);
	return ret;
}
