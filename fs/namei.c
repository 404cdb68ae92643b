/*
 * namei.c - namespace operations: lookup, create, unlink, rmdir, rename,
 * setattr, readlink, readdir, and deleting a file whose last link went.
 *
 * Lock order (hosts and threads alike): directories before files; two
 * directories lower address first; resource clusters last (alloc.c).  Each
 * operation commits one transaction for its namespace change (a file's data
 * is freed afterwards in transactions of its own: a crash leaves a
 * shortened orphan for fsck, never a name pointing at freed blocks).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "fs/fs_int.h"

#define OP_LOCK_MS 10000

/* Take a directory for modification: its on-disk lock and its rw lock. */
static int dir_begin(fs_vol *v, uint64_t addr, struct fs_inode **out)
{
	struct fs_inode *d;
	int ret;

	if (v->rdonly)
		return -EROFS;
	ret = fs_inode_get(v, addr, &d);
	if (ret)
		return ret;
	fs_dir_pin(d);
	ret = fs_inode_lock(d, LK_EXCL, OP_LOCK_MS);
	if (ret) {
		fs_inode_put(d);
		return ret;
	}
	pthread_rwlock_wrlock(&d->rw);
	if (d->fd.type != FS_T_DIR) {
		pthread_rwlock_unlock(&d->rw);
		fs_inode_unlock(d);
		fs_inode_put(d);
		return d->fd.type == FS_T_FREE ? -ENOENT : -ENOTDIR;
	}
	*out = d;
	return 0;
}

static void ino_end(struct fs_inode *d)
{
	pthread_rwlock_unlock(&d->rw);
	fs_inode_unlock(d);
	fs_inode_put(d);
}

/* A directory in sub-blocks moves to file blocks (own transaction). */
static int dir_to_fb(struct fs_inode *d)
{
	return fs_file_convert(d, (uint64_t)FS_SB_DIRECT_MAX * d->v->sb.sb_size + 1);
}

/* Directories that must grow move to file blocks first. */
static int dir_prepare(struct fs_inode *d)
{
	if (!fs_dir_needs_fb(NULL, d))
		return 0;
	return dir_to_fb(d);
}

/*
 * An insert that met the end of a directory still in sub-blocks (-EFBIG
 * from the directory: a chain needed an overflow block before the load
 * dir_prepare judges by was reached, as long names do): its transaction
 * aborted, the directory moves to file blocks and the operation is tried
 * again, once.
 */
static bool retry_in_fb(struct fs_inode *d, int *ret, bool *moved)
{
	if (*ret != -EFBIG || *moved || d->fd.type != FS_T_DIR ||
	    d->fd.unit != FS_UNIT_SB)
		return false;
	*moved = true;
	*ret = dir_to_fb(d);
	return *ret == 0;
}

/*
 * An unlocked read of directory dir met another host's change (-EAGAIN):
 * 0 after a pause growing with try (start over), or, once it kept
 * happening FS_DIR_RETRIES times, the directory reported as damaged.
 */
static int again(fs_vol *v, uint64_t dir, unsigned try)
{
	if (try == FS_DIR_RETRIES)
		return fs_bad_meta(v, -FS_E_CORRUPT, "directory (changing under "
				   "every unlocked read)", fs_addr_ext(dir),
				   fs_res_off(v, dir));
	usleep(1000u << (try < 6 ? try : 6));
	return 0;
}

/*
 * A directory this host reads and does not hold: a shared hold taken for
 * the lookup and kept after it (fs/keep.c), so that the next lookups in it
 * and the attributes of it read nothing (the kernel walks every path
 * component again: the ancestors of a working directory are read at every
 * create).  Tried once: held exclusively by another host, or wanted by
 * one, the lookup goes on unlocked and the directory is not tried again
 * for a while.  True if the caller must fs_inode_unlock.
 */
static bool lookup_hold(struct fs_inode *d)
{
	uint64_t now = fs_mono_ns();

	if (d->v->rdonly || !d->v->lk)
		return false;
	if (__atomic_load_n(&d->held, __ATOMIC_ACQUIRE) != LK_FREE) {
		fs_keep_touch(&d->keep, now);    /* kept: used now */
		return false;
	}
	if (!fs_keep_allowed(d->v, &d->keep, now, true))
		return false;
	return fs_inode_lock(d, LK_SHARED, FS_LOCK_TRY) == 0;
}

int fs_lookup(fs_vol *v, uint64_t dir, const char *name, struct fs_stat *st)
{
	struct fs_inode *d;
	struct fs_dirent de;
	bool held;
	int ret;

	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;   /* the caller (FUSE) resolves those */
	ret = fs_inode_get(v, dir, &d);
	if (ret)
		return ret;
	fs_dir_pin(d);
	held = lookup_hold(d);
	for (unsigned try = 0; ; try++) {
		struct fs_dc_seen seen = { 0 };

		fs_dir_cache_enter(d);
		pthread_rwlock_rdlock(&d->rw);
		if (__atomic_load_n(&d->held, __ATOMIC_ACQUIRE) == LK_FREE) {
			/* not held here: the cached directory if its lock
			 * record says nobody changed it, else a snapshot */
			ret = fs_dir_cache_check(d, &seen);
			if (ret == 1) {
				pthread_rwlock_unlock(&d->rw);
				ret = fs_dir_cache_refresh(d, &seen);
				pthread_rwlock_rdlock(&d->rw);
			}
		} else if (!d->valid) {
			/* held here, but a reload failed since: taking the
			 * lock reads the FD again (rw is not ours to change
			 * it under); then start over */
			pthread_rwlock_unlock(&d->rw);
			ret = fs_inode_lock(d, LK_SHARED, OP_LOCK_MS);
			if (!ret) {
				fs_inode_unlock(d);
				ret = -EAGAIN;
			}
			pthread_rwlock_rdlock(&d->rw);
		}
		if (!ret && d->fd.type != FS_T_DIR)
			ret = -ENOTDIR;
		if (!ret)
			ret = fs_dir_find(NULL, d, name, &de);
		if (ret == 0 || ret == -ENOENT)
			fs_dir_cache_seal(d, &seen);
		pthread_rwlock_unlock(&d->rw);
		if (ret != -EAGAIN || (ret = again(v, dir, try)))
			break;
	}
	if (held)
		fs_inode_unlock(d);
	fs_inode_put(d);
	if (!ret)
		ret = fs_getattr(v, de.fd, st);
	return ret;
}

/*
 * fs_create; *keep (if not NULL): a reference to the new file's inode,
 * which knows its FD and lock record as written (fs_inode_seed), held by
 * us with no user, for the open that follows.
 *
 * The new FD's lock is written held by us (exclusive) before the
 * transaction and listed in it: nobody can take it before the
 * transaction is in place (the hand-over waits; our release is deferred
 * to then, fs_inode_unlock), so a replay of the transaction never writes
 * the new FD over what another host made of the file since.
 */
static int create(fs_vol *v, uint64_t dir, const char *name,
		  const struct fs_create_args *a, struct fs_stat *st,
		  struct fs_inode **keep)
{
	enum lk_mode hold = v->lk ? LK_EXCL : LK_FREE;
	struct fs_inode *d, *ni = NULL;
	struct fs_dirent de;
	struct fs_tx *tx = NULL;
	struct fs_fd fd;
	unsigned char *lockrec = NULL;
	bool moved = false;
	uint32_t ftype;
	int ret;

	if (strlen(name) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
		return -EINVAL;
	switch (a->type) {
	case FS_TYPE_FILE: ftype = S_IFREG; break;
	case FS_TYPE_DIR: ftype = S_IFDIR; break;
	case FS_TYPE_SYMLINK:
		ftype = S_IFLNK;
		if (!a->target || strlen(a->target) > FS_INLINE_MAX)
			return -ENAMETOOLONG;
		break;
	case FS_TYPE_RDM:
		ftype = S_IFREG;
		if (!a->rdm || !a->rdm->capacity)
			return -EINVAL;
		break;
	default: return -EINVAL;
	}
	if (!(lockrec = fs_balloc(v->ss)))
		return -ENOMEM;
	ret = dir_begin(v, dir, &d);
	if (ret) {
		free(lockrec);
		return ret;
	}
	if (fs_dir_find(NULL, d, name, &de) == 0) {
		ret = -EEXIST;
		goto end;
	}
	ret = dir_prepare(d);
	if (ret)
		goto end;
again:
	tx = fs_tx_begin(v);
	if (!tx) {
		ret = -ENOMEM;
		goto end;
	}
	ret = fs_inode_tx(tx, d);
	if (!ret)
		ret = fs_inode_alloc(tx, a->type, ftype | (a->mode & 07777),
				     a->uid, a->gid, dir, &fd, lockrec, hold);
	/* before the commit: nothing can fail after it that would leave
	 * the new lock held with nobody to release it */
	if (!ret)
		ret = fs_inode_get(v, fd.self, &ni);
	if (ret)
		goto abort;
	if (a->type == FS_TYPE_SYMLINK) {
		fd.size = strlen(a->target);
		memcpy(fd.inline_data, a->target, fd.size);
		ret = fs_fd_put(tx, &fd);
	} else if (a->type == FS_TYPE_RDM) {
		/* a direct map of holes that stays so: the data is the LUN's */
		fd.map = FS_MAP_DIRECT;
		fd.unit = FS_UNIT_FB;
		fd.size = a->rdm->capacity;
		fs_rdm_out(a->rdm, fd.rdm);
		ret = fs_fd_put(tx, &fd);
	} else if (a->type == FS_TYPE_DIR) {
		/* new: nobody else can know it yet */
		ni->fd = fd;
		ret = fs_dir_init(tx, ni);
		if (!ret)
			ret = fs_fd_put(tx, &ni->fd);
		fd = ni->fd;
		fs_bmap_forget(ni);
		d->fd.nlink++;
	}
	if (!ret)
		ret = fs_dir_maybe_split(tx, d);
	if (!ret)
		ret = fs_dir_add(tx, d, name, fd.self, fd.gen, a->type);
	if (ret)
		goto abort;
	d->fd.mtime = d->fd.ctime = fs_now_ns();
	ret = fs_fd_put(tx, &d->fd);
	if (ret)
		goto abort;
	ret = fs_tx_commit(tx);
	tx = NULL;
	if (ret)
		fs_inode_reload(d);
	goto end;
abort:
	fs_tx_abort(tx);
	fs_inode_reload(d);
	if (ni) {
		fs_dir_cache_drop(ni);      /* its blocks were never made */
		fs_inode_put(ni);
		ni = NULL;
	}
	if (retry_in_fb(d, &ret, &moved))
		goto again;
end:
	ino_end(d);
	/* what this create committed: no need to read it back */
	if (!ret && st)
		fs_stat_from_fd(&fd, st);
	if (!ret) {
		fs_inode_seed(ni, &fd, lockrec);
		if (keep) {
			*keep = ni;         /* the open that follows uses the hold */
			ni = NULL;
		} else {
			/* no user: released once the transaction is in place */
			fs_inode_unlock(ni);
		}
	}
	if (ni)
		fs_inode_put(ni);
	free(lockrec);
	return ret;
}

int fs_create(fs_vol *v, uint64_t dir, const char *name,
	      const struct fs_create_args *a, struct fs_stat *st)
{
	return create(v, dir, name, a, st, NULL);
}

int fs_create_open(fs_vol *v, uint64_t dir, const char *name,
		   const struct fs_create_args *a, int flags, struct fs_stat *st,
		   fs_file **out)
{
	struct fs_inode *ni = NULL;
	struct fs_stat s;
	int ret;

	if (a->type != FS_TYPE_FILE)
		return -EINVAL;
	ret = create(v, dir, name, a, &s, &ni);
	if (ret)
		return ret;
	/* the inode stays referenced until the open has it */
	ret = fs_open(v, s.ino, flags, out);
	fs_inode_put(ni);
	if (!ret && st)
		*st = s;
	return ret;
}

/*
 * The last link of ino is gone (ino locked exclusive, rw held): free its
 * data and map blocks, then the FD itself.
 */
int fs_inode_delete(struct fs_inode *ino)
{
	struct fs_vol *v = ino->v;
	struct fs_tx *tx;
	uint64_t pbs[64];
	unsigned npb = 0;
	int ret;

	if (ino->fd.type != FS_T_SYMLINK && ino->fd.map != FS_MAP_INLINE) {
		/* a directory maps blocks past its size (overflow blocks):
		 * make the truncate look at everything the map can hold */
		if (ino->fd.type == FS_T_DIR)
			ino->fd.size = fs_bmap_capacity(&ino->fd) *
				       fs_unit(v, &ino->fd);
		ret = fs_truncate_ino(ino, 0);
		if (ret)
			return ret;
		/* the map blocks left (empty now) */
		if (ino->fd.map > FS_MAP_DIRECT) {
			for (unsigned i = 0; i < FS_FD_ADDRS && npb < 64; i++)
				if (ino->fd.addr[i])
					pbs[npb++] = ino->fd.addr[i];
		}
	}
	tx = fs_tx_begin(v);
	if (!tx)
		return -ENOMEM;
	ret = fs_inode_tx(tx, ino);
	/* pointer blocks below the top level: walk them (rare: huge files) */
	for (unsigned i = 0; !ret && i < npb; i++) {
		ret = fs_bmap_free_tree(tx, ino, pbs[i],
					(unsigned)(ino->fd.map - FS_MAP_DIRECT));
	}
	if (ino->fd.unit == FS_UNIT_SB && ino->fd.map == FS_MAP_DIRECT) {
		for (unsigned i = 0; !ret && i < FS_SB_DIRECT_MAX; i++)
			if (ino->fd.addr[i])
				ret = fs_free(tx, ino->fd.addr[i] & ~FS_ADDR_TBZ);
	}
	if (!ret) {
		struct fs_fd fd = ino->fd;

		fd.type = FS_T_FREE;
		fd.nlink = 0;
		fd.size = 0;
		fd.map = FS_MAP_INLINE;
		memset(fd.addr, 0, sizeof(fd.addr));
		ret = fs_fd_put(tx, &fd);
		if (!ret)
			ret = fs_free(tx, ino->addr);
		if (!ret)
			ino->fd = fd;
	}
	if (ret) {
		fs_tx_abort(tx);
		fs_inode_reload(ino);
		return ret;
	}
	return fs_tx_commit(tx);
}

/* The last name of ino went in a committed transaction (and ino is on our
 * orphan list): free it now unless it is open on this host, then at the
 * last close (fs_close). */
static void delete_unused(struct fs_inode *ino)
{
	int r;

	if (ino->opens_rw || ino->opens_ro)
		return;
	r = fs_inode_delete(ino);
	if (r)
		fs_log(ino->v, "freeing removed file %llx: %s (left on our "
		       "orphan list)", (unsigned long long)ino->addr,
		       fs_strerror(r));
	else
		fs_orphan_del(ino->v, ino->addr);
}

/*
 * A file whose map is direct (at most 32 units): free its units and the FD
 * inside tx and return true.  Bigger files are freed after the name goes,
 * in transactions of their own (delete_inode).
 */
static int free_small(struct fs_tx *tx, struct fs_inode *ino)
{
	struct fs_fd fd = ino->fd;
	unsigned n = 0;
	int ret = 0;

	if (fd.map > FS_MAP_DIRECT)
		return 0;
	if (fd.map == FS_MAP_DIRECT)
		for (unsigned i = 0; i < FS_FD_ADDRS; i++)
			if (fd.addr[i])
				n++;
	if (n > 32)
		return 0;
	for (unsigned i = 0; !ret && fd.map == FS_MAP_DIRECT && i < FS_FD_ADDRS; i++)
		if (fd.addr[i])
			ret = fs_free(tx, fd.addr[i] & ~FS_ADDR_TBZ);
	if (ret)
		return ret;   /* the caller aborts the whole transaction */
	fd.type = FS_T_FREE;
	fd.nlink = 0;
	fd.size = 0;
	fd.map = FS_MAP_INLINE;
	fd.alloc_bytes = 0;
	memset(fd.addr, 0, sizeof(fd.addr));
	ret = fs_fd_put(tx, &fd);
	if (!ret)
		ret = fs_free(tx, ino->addr);
	if (ret)
		return ret;
	ino->fd = fd;
	return 1;
}

/* Remove name from d (d begun); rmdir when want_dir. */
static int remove_name(fs_vol *v, struct fs_inode *d, const char *name,
		       bool want_dir)
{
	struct fs_inode *ino = NULL;
	struct fs_dirent de;
	struct fs_tx *tx = NULL;
	bool last = false;
	int ret;

	ret = fs_dir_find(NULL, d, name, &de);
	if (ret)
		return ret;
	ret = fs_inode_get(v, de.fd, &ino);
	if (ret)
		return ret;
	/* the file's lock: another host with it open keeps it (EBUSY) */
	ret = fs_inode_lock(ino, LK_EXCL, 0);
	if (ret)
		goto put;
	pthread_rwlock_wrlock(&ino->rw);
	if (ino->fd.gen != de.gen || ino->fd.type == FS_T_FREE) {
		ret = fs_bad_meta(v, -FS_E_CORRUPT, "directory entry to a reused "
				  "file descriptor", d->ext, d->slot_off);
		goto unlock;
	}
	if (want_dir != (ino->fd.type == FS_T_DIR)) {
		ret = want_dir ? -ENOTDIR : -EISDIR;
		goto unlock;
	}
	if (want_dir) {
		uint64_t n;

		ret = fs_dir_count(NULL, ino, &n);
		if (!ret && n)
			ret = -ENOTEMPTY;
		if (ret)
			goto unlock;
	}
	tx = fs_tx_begin(v);
	if (!tx) {
		ret = -ENOMEM;
		goto unlock;
	}
	ret = fs_inode_tx(tx, d);
	if (!ret)
		ret = fs_inode_tx(tx, ino);
	if (!ret)
		ret = fs_dir_remove(tx, d, name, &de);
	if (ret)
		goto abort;
	if (want_dir) {
		d->fd.nlink--;
		ino->fd.nlink = 0;
	} else {
		ino->fd.nlink--;
	}
	ino->fd.ctime = d->fd.mtime = d->fd.ctime = fs_now_ns();
	last = ino->fd.nlink == 0;
	if (last && !ino->opens_rw && !ino->opens_ro)
		ret = free_small(tx, ino);
	if (ret < 0)
		goto abort;
	if (ret == 1) {
		/* freed with the name, in one transaction: no orphan even if
		 * we crash right after */
		last = false;
		ret = 0;
	} else {
		ret = fs_fd_put(tx, &ino->fd);
	}
	if (!ret)
		ret = fs_fd_put(tx, &d->fd);
	/* listed before the name goes: a crash leaves nothing unaccounted */
	if (!ret && last)
		ret = fs_orphan_add(v, ino->addr, ino->fd.gen);
	if (ret)
		goto abort;
	ret = fs_tx_commit(tx);
	tx = NULL;
	if (ret) {
		if (last)
			fs_orphan_del(v, ino->addr);
		fs_inode_reload(d);
		fs_inode_reload(ino);
		goto unlock;
	}
	if (last)
		delete_unused(ino);
	goto unlock;
abort:
	fs_tx_abort(tx);
	fs_inode_reload(d);
	fs_inode_reload(ino);
unlock:
	pthread_rwlock_unlock(&ino->rw);
	fs_inode_unlock(ino);
put:
	fs_inode_put(ino);
	return ret;
}

int fs_unlink(fs_vol *v, uint64_t dir, const char *name)
{
	struct fs_inode *d;
	int ret = dir_begin(v, dir, &d);

	if (ret)
		return ret;
	ret = remove_name(v, d, name, false);
	ino_end(d);
	return ret;
}

int fs_rmdir(fs_vol *v, uint64_t dir, const char *name)
{
	struct fs_inode *d;
	int ret;

	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	ret = dir_begin(v, dir, &d);
	if (ret)
		return ret;
	ret = remove_name(v, d, name, true);
	ino_end(d);
	return ret;
}

/* Whether directory `anc` is `dir` or one of its ancestors. */
static int is_ancestor(fs_vol *v, uint64_t anc, uint64_t dir)
{
	for (unsigned depth = 0; depth < 4096; depth++) {
		struct fs_fd fd;
		int ret;

		if (dir == anc)
			return 1;
		if (dir == v->sb.root)
			return 0;
		ret = fs_fd_read(v, dir, &fd);
		if (ret)
			return ret;
		dir = fd.parent;
	}
	return -ELOOP;
}

int fs_rename(fs_vol *v, uint64_t odir, const char *oname, uint64_t ndir,
	      const char *nname, unsigned flags)
{
	struct fs_inode *od = NULL, *nd = NULL, *src = NULL, *dst = NULL;
	struct fs_dirent sde, dde;
	struct fs_tx *tx = NULL;
	bool have_dst, dst_last = false, moved = false;
	int ret;

	if (strlen(nname) > FS_NAME_MAX)
		return -ENAMETOOLONG;
	if (!*nname || !strcmp(nname, ".") || !strcmp(nname, "..") ||
	    !strcmp(oname, ".") || !strcmp(oname, ".."))
		return -EINVAL;
	/* directories in address order */
	if (odir == ndir) {
		ret = dir_begin(v, odir, &od);
		nd = od;
	} else if (odir < ndir) {
		ret = dir_begin(v, odir, &od);
		if (!ret)
			ret = dir_begin(v, ndir, &nd);
	} else {
		ret = dir_begin(v, ndir, &nd);
		if (!ret)
			ret = dir_begin(v, odir, &od);
	}
	if (ret)
		goto end;
	ret = fs_dir_find(NULL, od, oname, &sde);
	if (ret)
		goto end;
	have_dst = fs_dir_find(NULL, nd, nname, &dde) == 0;
	if (have_dst && dde.fd == sde.fd)
		goto end;   /* same file: nothing to do */
	if (have_dst && (flags & FS_RENAME_NOREPLACE)) {
		ret = -EEXIST;
		goto end;
	}
	if (sde.type == FS_T_DIR && odir != ndir) {
		ret = is_ancestor(v, sde.fd, ndir);
		if (ret) {
			ret = ret > 0 ? -EINVAL : ret;
			goto end;
		}
	}
	/* files: source, then target, lower address first */
	{
		uint64_t first = sde.fd, second = have_dst ? dde.fd : 0;
		struct fs_inode **pf = &src, **ps = &dst;

		if (second && second < first) {
			uint64_t t = first;

			first = second;
			second = t;
			pf = &dst;
			ps = &src;
		}
		ret = fs_inode_get(v, first, pf);
		if (!ret)
			ret = fs_inode_lock(*pf, LK_EXCL, OP_LOCK_MS);
		if (ret) {
			fs_inode_put(*pf);
			*pf = NULL;
			goto end;
		}
		pthread_rwlock_wrlock(&(*pf)->rw);
		if (second) {
			ret = fs_inode_get(v, second, ps);
			if (!ret)
				ret = fs_inode_lock(*ps, LK_EXCL, 0);
			if (ret) {
				fs_inode_put(*ps);
				*ps = NULL;
				goto end;
			}
			pthread_rwlock_wrlock(&(*ps)->rw);
		}
	}
	if (dst) {
		if (dst->fd.type == FS_T_DIR) {
			uint64_t n;

			if (src->fd.type != FS_T_DIR) {
				ret = -EISDIR;
				goto end;
			}
			ret = fs_dir_count(NULL, dst, &n);
			if (!ret && n)
				ret = -ENOTEMPTY;
			if (ret)
				goto end;
		} else if (src->fd.type == FS_T_DIR) {
			ret = -ENOTDIR;
			goto end;
		}
	}
	ret = dir_prepare(nd);
	if (ret)
		goto end;
again:
	tx = fs_tx_begin(v);
	if (!tx) {
		ret = -ENOMEM;
		goto end;
	}
	ret = fs_inode_tx(tx, od);
	if (!ret && nd != od)
		ret = fs_inode_tx(tx, nd);
	if (!ret)
		ret = fs_inode_tx(tx, src);
	if (!ret && dst)
		ret = fs_inode_tx(tx, dst);
	if (!ret && dst) {
		ret = fs_dir_remove(tx, nd, nname, &dde);
		if (!ret) {
			if (dst->fd.type == FS_T_DIR) {
				dst->fd.nlink = 0;
				nd->fd.nlink--;
			} else {
				dst->fd.nlink--;
			}
			dst->fd.ctime = fs_now_ns();
			dst_last = dst->fd.nlink == 0;
			ret = fs_fd_put(tx, &dst->fd);
		}
	}
	if (!ret)
		ret = fs_dir_remove(tx, od, oname, &sde);
	if (!ret)
		ret = fs_dir_maybe_split(tx, nd);
	if (!ret)
		ret = fs_dir_add(tx, nd, nname, sde.fd, sde.gen, sde.type);
	if (ret)
		goto abort;
	if (src->fd.type == FS_T_DIR && od != nd) {
		src->fd.parent = ndir;
		od->fd.nlink--;
		nd->fd.nlink++;
	}
	src->fd.ctime = od->fd.mtime = od->fd.ctime = fs_now_ns();
	nd->fd.mtime = nd->fd.ctime = od->fd.mtime;
	ret = fs_fd_put(tx, &src->fd);
	if (!ret)
		ret = fs_fd_put(tx, &od->fd);
	if (!ret && nd != od)
		ret = fs_fd_put(tx, &nd->fd);
	if (!ret && dst_last)
		ret = fs_orphan_add(v, dst->addr, dst->fd.gen);
	if (ret)
		goto abort;
	ret = fs_tx_commit(tx);
	tx = NULL;
	if (ret) {
		if (dst_last)
			fs_orphan_del(v, dst->addr);
		fs_inode_reload(od);
		fs_inode_reload(nd);
		fs_inode_reload(src);
		if (dst)
			fs_inode_reload(dst);
		goto end;
	}
	if (dst_last)
		delete_unused(dst);
	goto end;
abort:
	fs_tx_abort(tx);
	fs_inode_reload(od);
	if (nd != od)
		fs_inode_reload(nd);
	fs_inode_reload(src);
	if (dst)
		fs_inode_reload(dst);
	dst_last = false;
	if (retry_in_fb(nd, &ret, &moved))
		goto again;
end:
	if (dst)
		ino_end(dst);
	if (src)
		ino_end(src);
	if (nd && nd != od)
		ino_end(nd);
	if (od)
		ino_end(od);
	return ret;
}

int fs_readlink(fs_vol *v, uint64_t ino, char *buf, size_t len)
{
	struct fs_fd fd;
	int ret = fs_fd_read(v, ino, &fd);

	if (ret)
		return ret;
	if (fd.type != FS_T_SYMLINK)
		return -EINVAL;
	if (len == 0)
		return -ERANGE;
	if (fd.size >= len)
		fd.size = len - 1;
	memcpy(buf, fd.inline_data, fd.size);
	buf[fd.size] = 0;
	return (int)fd.size;
}

int fs_setattr(fs_vol *v, uint64_t addr, const struct fs_setattr *sa,
	       struct fs_stat *st)
{
	struct fs_inode *ino;
	struct fs_tx *tx;
	int ret;

	if (v->rdonly)
		return -EROFS;
	ret = fs_inode_get(v, addr, &ino);
	if (ret)
		return ret;
	ret = fs_inode_lock(ino, LK_EXCL, OP_LOCK_MS);
	if (ret)
		goto put;
	pthread_rwlock_wrlock(&ino->rw);
	if (ino->fd.type == FS_T_FREE) {
		ret = -ENOENT;
		goto unlock;
	}
	if (sa->mask & FS_SET_SIZE) {
		if (ino->fd.type != FS_T_FILE) {
			ret = ino->fd.type == FS_T_DIR ? -EISDIR : -EINVAL;
			goto unlock;
		}
		ret = fs_truncate_ino(ino, sa->size);
		if (ret)
			goto unlock;
	}
	tx = fs_tx_begin(v);
	if (!tx) {
		ret = -ENOMEM;
		goto unlock;
	}
	if (sa->mask & FS_SET_MODE)
		ino->fd.mode = (ino->fd.mode & ~07777u) | (sa->mode & 07777u);
	if (sa->mask & FS_SET_UID)
		ino->fd.uid = sa->uid;
	if (sa->mask & FS_SET_GID)
		ino->fd.gid = sa->gid;
	if (sa->mask & FS_SET_ATIME)
		ino->fd.atime = sa->atime;
	if (sa->mask & FS_SET_MTIME)
		ino->fd.mtime = sa->mtime;
	ino->fd.ctime = fs_now_ns();
	pthread_mutex_lock(&ino->m);
	ino->fd_dirty = false;
	pthread_mutex_unlock(&ino->m);
	ret = fs_inode_tx(tx, ino);
	if (!ret)
		ret = fs_fd_put(tx, &ino->fd);
	if (ret) {
		fs_tx_abort(tx);
		fs_inode_reload(ino);
	} else {
		ret = fs_tx_commit(tx);
	}
unlock:
	pthread_rwlock_unlock(&ino->rw);
	fs_inode_unlock(ino);
put:
	fs_inode_put(ino);
	if (!ret && st)
		ret = fs_getattr(v, addr, st);
	return ret;
}

struct rd_ctx {
	fs_readdir_cb cb;
	void *arg;
};

static int rd_one(void *arg, const struct fs_dirent *de)
{
	struct rd_ctx *c = arg;

	return c->cb(c->arg, de->name, de->fd, de->type);
}

struct rd_vec {
	struct fs_dirent *e;
	size_t n, cap;
};

static int rd_collect(void *arg, const struct fs_dirent *de)
{
	struct rd_vec *r = arg;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct fs_dirent *e = realloc(r->e, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		r->e = e;
		r->cap = cap;
	}
	r->e[r->n++] = *de;
	return 0;
}

static int rd_unlocked(fs_vol *v, struct fs_inode *d, struct rd_ctx *c)
{
	struct rd_vec r = { 0 };
	int ret;

	for (unsigned try = 0; ; try++) {
		struct fs_dc_seen seen = { 0 };

		fs_dir_cache_enter(d);
		pthread_rwlock_rdlock(&d->rw);
		ret = fs_dir_cache_check(d, &seen);
		if (ret == 1) {
			pthread_rwlock_unlock(&d->rw);
			ret = fs_dir_cache_refresh(d, &seen);
			pthread_rwlock_rdlock(&d->rw);
		}
		if (!ret && d->fd.type != FS_T_DIR)
			ret = -ENOTDIR;
		r.n = 0;
		if (!ret)
			ret = fs_dir_iterate(d, rd_collect, &r);
		if (!ret)
			fs_dir_cache_seal(d, &seen);
		pthread_rwlock_unlock(&d->rw);
		if (ret != -EAGAIN || (ret = again(v, d->addr, try)))
			break;
	}
	for (size_t i = 0; !ret && i < r.n; i++)
		ret = rd_one(c, &r.e[i]);
	free(r.e);
	return ret > 0 ? 0 : ret;
}

int fs_readdir(fs_vol *v, uint64_t dir, fs_readdir_cb cb, void *arg)
{
	struct rd_ctx c = { .cb = cb, .arg = arg };
	struct fs_inode *d;
	bool locked = false;
	int ret;

	ret = fs_inode_get(v, dir, &d);
	if (ret)
		return ret;
	fs_dir_pin(d);
	/* a consistent snapshot: shared lock, so no host splits a bucket
	 * under us (read-only hosts read what is there) */
	if (!v->rdonly) {
		ret = fs_inode_lock(d, LK_SHARED, OP_LOCK_MS);
		if (ret)
			goto put;
		locked = true;
	}
	if (v->rdonly) {
		/* no lock: collect, and start over when a writer changed the
		 * directory under us; deliver only a complete pass */
		ret = rd_unlocked(v, d, &c);
		goto unlock;
	}
	pthread_rwlock_rdlock(&d->rw);
	if (!ret && d->fd.type != FS_T_DIR)
		ret = -ENOTDIR;
	if (!ret)
		ret = fs_dir_iterate(d, rd_one, &c);
	pthread_rwlock_unlock(&d->rw);
unlock:
	if (locked)
		fs_inode_unlock(d);
put:
	fs_inode_put(d);
	return ret;
}
