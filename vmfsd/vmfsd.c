/*
 * vmfsd - one host of a volume: joins it (a heartbeat slot) and serves its
 * namespace through FUSE.
 *
 *   vmfsd --host NAME --mount DIR [--hb-interval MS] [--hb-timeout MS]
 *         [--read-only] [--daemon] DEVICE...
 *
 * It serves a control socket for the tools (ctl.h, commands in cmds.c and
 * beside it), which find it from any path under DIR, and logs space alarms
 * (75% warning, 85% alert; checked every VMFSD_ALARM_SECS, default 10 s).
 *
 * Coherence between hosts: regular files are opened with direct_io (no
 * page cache on any host), and the kernel caches a directory entry or a
 * directory's attributes only while this host holds that directory's lock
 * (KCACHE_TTL at most; fs_cache_hold), which no other host can change
 * meanwhile: before the hold goes, every cached entry is made stale
 * (FUSE_NOTIFY_INC_EPOCH) and the directory's attributes dropped (a
 * change of this host's own outside the FUSE request that made it, the
 * same).  A file's attributes, likewise, from its CREATE reply only.
 * Everything else has timeouts of 0: every other lookup and stat asks the
 * volume.  So what one host wrote and fsync'd (a file, or a
 * directory: every change of this host, fs_sync) is what every other host
 * reads next.  Kernels without FUSE_NOTIFY_INC_EPOCH (protocol
 * 7.44) cache nothing.
 *
 * On SIGTERM or SIGINT: unmount, commit, release every lock and the
 * heartbeat slot.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"
#include "vmfsd/cbt_hook.h"
#include "vmfsd/cmds.h"
#include "vmfsd/rdm_fuse.h"
#include "vmfsd/readahead.h"

static fs_vol *vol;
static uint64_t root_addr;
/* --read-only: no locks held, other hosts write meanwhile (no read-ahead) */
static bool read_only_mount;

/* ---- kernel caching under directory holds (see the header) -------------- */

/* Entries and directory attributes: at most this long (s), also where an
 * invalidation could not be sent, and at most half the time between this
 * host's fencing itself and another host breaking its locks (kc_ttl):
 * what a fenced host's kernel kept is gone before anyone can change it. */
#define KCACHE_TTL 1.0
#define NOTIFY_INC_EPOCH 8      /* enum fuse_notify_code, protocol 7.44 */

static double kc_ttl;           /* s, set at INIT */
static bool kc_fenced;          /* our holds may be broken: cache nothing */

static struct fuse_session *kc_session;   /* ours, from before the loop */
/* set under kc_lock (atomic: kcache_hold reads it without): NULL once
 * unmounting */
static struct fuse_session *kc_se;
static pthread_rwlock_t kc_lock = PTHREAD_RWLOCK_INITIALIZER;
/* the FUSE request this thread serves makes the kernel update its own
 * entries and the directories' attributes (create, unlink, rename...) */
static __thread bool kc_in_ns_op;

/* fs drop hook (fs.h): before a hold goes, or while this host changes a
 * directory or file the kernel may have cached (a file: its attributes;
 * a directory: its names too) */
static void kcache_drop(void *arg, uint64_t ino, unsigned flags)
{
	static bool warned;
	/* struct fuse_out_header of the kernel's protocol: a notification
	 * is a reply with unique 0 and the code in error */
	struct { uint32_t len; int32_t error; uint64_t unique; } h = {
		.len = sizeof(h), .error = NOTIFY_INC_EPOCH, .unique = 0 };

	(void)arg;
	pthread_rwlock_rdlock(&kc_lock);
	if (!kc_se)
		goto out;
	__atomic_add_fetch(&vmfsd_kcache_drops, 1, __ATOMIC_RELAXED);
	/* a file's hold covers no names; a change the kernel makes to its
	 * own entries (the request it sent) needs no new epoch, only the
	 * attributes of what changed */
	if ((!ino || (flags & FS_DROP_DIR)) &&
	    (!(flags & FS_DROP_CHANGED) || !kc_in_ns_op) &&
	    write(fuse_session_fd(kc_se), &h, sizeof(h)) != (ssize_t)sizeof(h) &&
	    !__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
		fprintf(stderr, "vmfsd: making the kernel's directory entries "
			"stale: %s (entries cached up to %.2f s)\n",
			strerror(errno), kc_ttl);
	/* -ENOENT: the kernel has no inode for it, nothing cached */
	if (ino)
		fuse_lowlevel_notify_inval_inode(kc_se, ino == root_addr ?
						 FUSE_ROOT_ID : (fuse_ino_t)ino,
						 -1, 0);
out:
	pthread_rwlock_unlock(&kc_lock);
}

/* at INIT: the kernel's protocol is known */
static void kcache_start(const struct fuse_conn_info *conn)
{
	struct fs_cache_hooks hk = { .drop = kcache_drop };
	const char *e = getenv("VMFSD_KCACHE");
	struct lk_vol_info li;

	/* VMFSD_KCACHE=0: cache nothing (comparisons) */
	if (conn->proto_major != 7 || conn->proto_minor < 44 ||
	    (e && !strcmp(e, "0")) || !kc_session)
		return;
	lk_get_info(fs_lk(vol), &li);
	kc_ttl = li.dead_ms > li.fence_ms ? (li.dead_ms - li.fence_ms) / 2000.0 : 0;
	if (kc_ttl > KCACHE_TTL)
		kc_ttl = KCACHE_TTL;
	if (kc_ttl < 0.05)
		return;         /* no time between fencing and breaking */
	pthread_rwlock_wrlock(&kc_lock);
	__atomic_store_n(&kc_se, kc_session, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&kc_lock);
	fs_set_cache_hooks(vol, &hk);
	__atomic_store_n(&vmfsd_kcache_on, true, __ATOMIC_RELAXED);
}

/* before the session goes: no notification after it */
static void kcache_stop(void)
{
	pthread_rwlock_wrlock(&kc_lock);
	__atomic_store_n(&kc_se, NULL, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&kc_lock);
	__atomic_store_n(&vmfsd_kcache_on, false, __ATOMIC_RELAXED);
}

/* Whether what is read of directory ino (or, if files, regular file ino)
 * from now on may be cached: *token for kcache_ttl after the reading. */
static bool kcache_hold(uint64_t ino, bool files, uint64_t *token)
{
	return __atomic_load_n(&kc_se, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&kc_fenced, __ATOMIC_ACQUIRE) &&
	       fs_cache_hold(vol, ino, files, token);
}

/* fenced or locks lost: other hosts may soon take our holds; nothing more
 * is cached and every name now is stale (attributes: kc_ttl at most) */
static void kcache_fence(void)
{
	__atomic_store_n(&kc_fenced, true, __ATOMIC_RELEASE);
	kcache_drop(NULL, 0, 0);
}

static double kcache_ttl(bool held, uint64_t ino, uint64_t token)
{
	if (!held || !fs_cache_still(vol, ino, token))
		return 0;
	__atomic_add_fetch(&vmfsd_kcache_replies, 1, __ATOMIC_RELAXED);
	return kc_ttl;
}

static uint64_t to_fs(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? root_addr : (uint64_t)ino;
}

static fuse_ino_t to_fuse(uint64_t a)
{
	return a == root_addr ? FUSE_ROOT_ID : (fuse_ino_t)a;
}

static int err(int ret)
{
	/* FUSE wants a positive errno; private codes map to the nearest */
	if (ret >= 0)
		return 0;
	ret = -ret;
	if (ret > 1000) {
		fprintf(stderr, "vmfsd: %s\n", fs_strerror(-ret));
		if (ret == FS_E_CHECKSUM || ret == FS_E_CORRUPT || ret == FS_E_BADMAGIC)
			return EIO;
		if (ret == LK_E_FENCED || ret == LK_E_LOST || ret == MP_E_FENCED)
			return EIO;
		if (ret == MP_E_RESCONFLICT)
			return EBUSY;
		return EIO;
	}
	return ret;
}

void vmfsd_fill_stat(const struct fs_stat *s, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = to_fuse(s->ino);
	st->st_mode = s->mode;
	st->st_nlink = s->nlink;
	st->st_uid = s->uid;
	st->st_gid = s->gid;
	st->st_size = (off_t)s->size;
	st->st_blocks = (blkcnt_t)((s->alloc + 511) / 512);
	st->st_blksize = 1 << 20;
	st->st_atim.tv_sec = (time_t)(s->atime / 1000000000ull);
	st->st_atim.tv_nsec = (long)(s->atime % 1000000000ull);
	st->st_mtim.tv_sec = (time_t)(s->mtime / 1000000000ull);
	st->st_mtim.tv_nsec = (long)(s->mtime % 1000000000ull);
	st->st_ctim.tv_sec = (time_t)(s->ctime / 1000000000ull);
	st->st_ctim.tv_nsec = (long)(s->ctime % 1000000000ull);
}

/* entry_ttl: how long the kernel may keep the name (attributes: never,
 * they are the entry's own and its hold is not asked for here) */
static void reply_entry(fuse_req_t req, const struct fs_stat *s,
			double entry_ttl)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = to_fuse(s->ino);
	e.generation = s->gen;
	vmfsd_fill_stat(s, &e.attr);
	e.attr_timeout = 0;
	e.entry_timeout = entry_ttl;
	fuse_reply_entry(req, &e);
}

static void vd_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_stat s;
	uint64_t tok = 0;
	bool held = kcache_hold(to_fs(parent), false, &tok);
	int ret = fs_lookup(vol, to_fs(parent), name, &s);

	__atomic_add_fetch(&vmfsd_fuse_lookups, 1, __ATOMIC_RELAXED);

	if (!ret)
		vmfsd_cbt_lookup(to_fs(parent), name, s.ino);
	if (ret)
		fuse_reply_err(req, err(ret));
	else
		reply_entry(req, &s, kcache_ttl(held, to_fs(parent), tok));
}

/* An open regular file's handle (fi->fh). */
struct vd_fh {
	fs_file *f;
	struct ra ra;               /* its read-ahead (readahead.h) */
};

static struct vd_fh *fh_of(const struct fuse_file_info *fi)
{
	return (struct vd_fh *)(uintptr_t)fi->fh;
}

static fs_file *fh_file(const struct fuse_file_info *fi)
{
	return fh_of(fi)->f;
}

static void vd_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_stat s;
	struct stat st;
	uint64_t tok = 0;
	bool held = false;
	int ret;

	__atomic_add_fetch(&vmfsd_fuse_getattrs, 1, __ATOMIC_RELAXED);
	if (fi && fi->fh) {
		ret = fs_fstat(fh_file(fi), &s);
	} else {
		/* a directory we hold: cached.  A file's attributes never
		 * are here (this host may change it outside FUSE meanwhile,
		 * and the getattr can read before that change and reply
		 * after the change's drop) */
		held = kcache_hold(to_fs(ino), false, &tok);
		ret = fs_getattr(vol, to_fs(ino), &s);
	}
	if (ret) {
		fuse_reply_err(req, err(ret));
		return;
	}
	vmfsd_fill_stat(&s, &st);
	fuse_reply_attr(req, &st, kcache_ttl(held, to_fs(ino), tok));
}

static uint64_t ts_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

static void vd_setattr_do(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			  int to_set, struct fuse_file_info *fi);

/* setattr, create, mkdir, mknod, symlink, unlink, rmdir, rename: the
 * kernel updates its own entries and attributes for what it asked */
static void vd_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	kc_in_ns_op = true;
	vd_setattr_do(req, ino, attr, to_set, fi);
	kc_in_ns_op = false;
}

static void vd_setattr_do(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			  int to_set, struct fuse_file_info *fi)
{
	struct fs_setattr sa = { 0 };
	struct fs_stat s;
	struct stat st;
	struct timespec now;
	void *tok = NULL;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &now);
	if (to_set & FUSE_SET_ATTR_SIZE && vmfsd_disk_attached(to_fs(ino))) {
		fuse_reply_err(req, EBUSY);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE && fi && fi->fh) {
		ret = fs_ftruncate(fh_file(fi), (uint64_t)attr->st_size);
		if (!ret)
			ret = vmfsd_cbt_resized(fh_file(fi),
						(uint64_t)attr->st_size);
		to_set &= ~FUSE_SET_ATTR_SIZE;
	}
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.mask |= FS_SET_MODE;
		sa.mode = attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.mask |= FS_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.mask |= FS_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		sa.mask |= FS_SET_SIZE;
		sa.size = (uint64_t)attr->st_size;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		sa.mask |= FS_SET_ATIME;
		sa.atime = to_set & FUSE_SET_ATTR_ATIME_NOW ? ts_ns(&now) :
			   ts_ns(&attr->st_atim);
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		sa.mask |= FS_SET_MTIME;
		sa.mtime = to_set & FUSE_SET_ATTR_MTIME_NOW ? ts_ns(&now) :
			   ts_ns(&attr->st_mtim);
	}
	if (!ret && sa.mask & FS_SET_SIZE)
		ret = vmfsd_cbt_resize_ino(to_fs(ino), sa.size, &tok);
	if (!ret && sa.mask) {
		/* an open file's lock is ours: go through the handle's inode */
		ret = fs_setattr(vol, to_fs(ino), &sa, &s);
	}
	vmfsd_cbt_resize_done(tok);
	if (!ret)
		ret = fi && fi->fh ? fs_fstat(fh_file(fi), &s) :
				     fs_getattr(vol, to_fs(ino), &s);
	if (ret) {
		fuse_reply_err(req, err(ret));
		return;
	}
	vmfsd_fill_stat(&s, &st);
	fuse_reply_attr(req, &st, 0);
}

static void create_common(fuse_req_t req, fuse_ino_t parent, const char *name,
			  uint8_t type, mode_t mode, const char *target)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_create_args a = { .type = type, .mode = mode,
				    .uid = ctx->uid, .gid = ctx->gid,
				    .target = target };
	struct fs_stat s;
	int ret;

	kc_in_ns_op = true;
	ret = fs_create(vol, to_fs(parent), name, &a, &s);
	kc_in_ns_op = false;
	if (ret)
		fuse_reply_err(req, err(ret));
	else
		reply_entry(req, &s, 0);
}

static void vd_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	create_common(req, parent, name, FS_TYPE_DIR, mode, NULL);
}

static void vd_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)rdev;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	create_common(req, parent, name, FS_TYPE_FILE, mode, NULL);
}

static void vd_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	create_common(req, parent, name, FS_TYPE_SYMLINK, 0777, link);
}

static void vd_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[1100];
	int ret = fs_readlink(vol, to_fs(ino), buf, sizeof(buf));

	if (ret < 0)
		fuse_reply_err(req, err(ret));
	else
		fuse_reply_readlink(req, buf);
}

static void vd_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_stat st;
	int ret;

	if (fs_lookup(vol, to_fs(parent), name, &st) == 0 &&
	    vmfsd_disk_attached(st.ino)) {
		fuse_reply_err(req, EBUSY);   /* a running VM's disk */
		return;
	}
	kc_in_ns_op = true;
	ret = fs_unlink(vol, to_fs(parent), name);
	kc_in_ns_op = false;
	fuse_reply_err(req, err(ret));
}

static void vd_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int ret;

	kc_in_ns_op = true;
	ret = fs_rmdir(vol, to_fs(parent), name);
	kc_in_ns_op = false;
	fuse_reply_err(req, err(ret));
}

static void vd_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned flags)
{
	unsigned f = 0;
	int ret;

	if (flags & ~RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);   /* RENAME_EXCHANGE, WHITEOUT */
		return;
	}
	if (flags & RENAME_NOREPLACE)
		f |= FS_RENAME_NOREPLACE;
	kc_in_ns_op = true;
	ret = fs_rename(vol, to_fs(parent), name, to_fs(newparent), newname, f);
	kc_in_ns_op = false;
	fuse_reply_err(req, err(ret));
}

static int open_flags(const struct fuse_file_info *fi)
{
	return (fi->flags & O_ACCMODE) == O_RDONLY ? FS_O_RDONLY : FS_O_RDWR;
}

/* f: the file fs_create_open opened already, or NULL to open ino */
static int open_common(fuse_ino_t ino, struct fuse_file_info *fi, fs_file *f)
{
	int acc = fi->flags & O_ACCMODE;
	struct vd_fh *h;
	int ret;

	/* a running VM's disk: vmrun writes it on the LUN through its copy
	 * of the map; nothing else on this host may write or change it */
	if (acc != O_RDONLY && vmfsd_disk_attached(to_fs(ino))) {
		if (f)
			fs_close(f);
		return -EBUSY;
	}
	if (!f && (ret = fs_open(vol, to_fs(ino), open_flags(fi), &f)))
		return ret;
	/* a tracked disk's writer: the tracking file dirty before anything
	 * changes (the truncation below included) */
	if (acc != O_RDONLY && (ret = vmfsd_cbt_open(f, to_fs(ino)))) {
		fs_close(f);
		return ret;
	}
	if (fi->flags & O_TRUNC && acc != O_RDONLY) {
		ret = fs_ftruncate(f, 0);
		if (!ret)
			ret = vmfsd_cbt_resized(f, 0);
		if (ret) {
			vmfsd_cbt_release(f);
			fs_close(f);
			return ret;
		}
	}
	h = malloc(sizeof(*h));
	if (!h) {
		vmfsd_cbt_release(f);
		fs_close(f);
		return -ENOMEM;
	}
	h->f = f;
	ra_init(&h->ra, f, to_fs(ino), !read_only_mount);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;    /* no page cache: coherent between hosts */
	fi->keep_cache = 0;
	return 0;
}

static void vd_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int ret = open_common(ino, fi, NULL);

	if (ret)
		fuse_reply_err(req, err(ret));
	else
		fuse_reply_open(req, fi);
}

static void vd_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = mode,
				    .uid = ctx->uid, .gid = ctx->gid };
	struct fuse_entry_param e;
	struct fs_stat s;
	fs_file *f = NULL;
	uint64_t tok = 0;
	bool held = false;
	int ret;

	kc_in_ns_op = true;
	ret = fs_create_open(vol, to_fs(parent), name, &a, open_flags(fi), &s, &f);
	kc_in_ns_op = false;
	/* what we made, and hold since it was made (open, no lock change
	 * between): the kernel keeps the new file's attributes while the
	 * hold lasts (the open's permission check asks for none); our
	 * changes to them outside FUSE, and the hold going, drop them */
	if (!ret)
		held = kcache_hold(s.ino, true, &tok);
	if (ret == -EEXIST && !(fi->flags & O_EXCL))
		ret = fs_lookup(vol, to_fs(parent), name, &s);
	/* the kernel opens through a create without a lookup: a data file
	 * made again under a tracked disk's name is written tracked */
	if (!ret)
		vmfsd_cbt_lookup(to_fs(parent), name, s.ino);
	if (!ret)
		ret = open_common(to_fuse(s.ino), fi, f);
	else if (f)
		fs_close(f);
	if (ret) {
		fuse_reply_err(req, err(ret));
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = to_fuse(s.ino);
	e.generation = s.gen;
	vmfsd_fill_stat(&s, &e.attr);
	e.attr_timeout = kcache_ttl(held, s.ino, tok);
	fuse_reply_create(req, &e, fi);
}

/*
 * Data buffers: one buffer per FUSE worker thread, kept for the thread's
 * life, so that a 1 MiB request neither maps fresh memory nor goes through
 * the device layer's bounce buffer (O_DIRECT wants alignment).  2 MiB
 * pages where the kernel gives them (mp_alloc_io): a 1 MiB read from the
 * LUN is then one contiguous piece of memory for the device, not up to 256.
 * The reply copies the data out before the buffer is reused.
 */
struct tbuf {
	void *p;
	size_t len;
};
static __thread struct tbuf tbuf;
static pthread_key_t tbuf_key;     /* frees it when a worker ends */

static void tbuf_free(void *arg)
{
	struct tbuf *t = arg;

	mp_free_io(t->p, t->len);
	t->p = NULL;
	t->len = 0;
}

void *vmfsd_thread_buf(size_t size)
{
	if (size > tbuf.len) {
		size_t len = size < (2u << 20) ? 2u << 20 : size;
		void *p = mp_alloc_io(len, 0);

		if (!p)
			return NULL;
		mp_free_io(tbuf.p, tbuf.len);
		tbuf.p = p;
		tbuf.len = len;
		pthread_setspecific(tbuf_key, &tbuf);
	}
	return tbuf.p;
}

static void vd_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	void *buf = vmfsd_thread_buf(size ? size : 1);
	struct vd_fh *h = fh_of(fi);
	struct ra_ref ref;
	ssize_t n;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	__atomic_add_fetch(&vmfsd_fuse_reads, 1, __ATOMIC_RELAXED);
	n = ra_read(&h->ra, buf, size, (uint64_t)off, &ref);
	if (n > 0)
		__atomic_add_fetch(&vmfsd_fuse_read, (uint64_t)n, __ATOMIC_RELAXED);
	if (n < 0)
		fuse_reply_err(req, err((int)n));
	else
		fuse_reply_buf(req, ref.data, (size_t)n);
	ra_put(&h->ra, &ref);
}

ssize_t vmfsd_buf_in(struct fuse_bufvec *in, void **buf)
{
	size_t size = fuse_buf_size(in);
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);

	/* the kernel put it aligned in the receive buffer (fuse_loop.c):
	 * straight to the device from there */
	if (in->count == 1 && in->off == 0 && in->idx == 0 &&
	    !(in->buf[0].flags & FUSE_BUF_IS_FD) &&
	    (uintptr_t)in->buf[0].mem % 4096 == 0) {
		*buf = in->buf[0].mem;
		return (ssize_t)in->buf[0].size;
	}
	*buf = vmfsd_thread_buf(size ? size : 1);
	if (!*buf)
		return -ENOMEM;
	/* else one copy into an aligned buffer */
	dst.buf[0].mem = *buf;
	__atomic_add_fetch(&vmfsd_fuse_copied_in, (uint64_t)size, __ATOMIC_RELAXED);
	return fuse_buf_copy(&dst, in, 0);
}

static void vd_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
			 off_t off, struct fuse_file_info *fi)
{
	void *buf;
	ssize_t n;

	/* a handle opened before the disk was attached to a running VM:
	 * vmrun writes it on the LUN through its copy of the map */
	if (vmfsd_disk_attached(to_fs(ino))) {
		fuse_reply_err(req, EBUSY);
		return;
	}
	n = vmfsd_buf_in(in, &buf);
	if (n >= 0)
		n = fs_pwrite(fh_file(fi), buf, (size_t)n,
			      (uint64_t)off);
	/* marked after it reached the disk, before it is acknowledged */
	if (n > 0 && vmfsd_cbt_write(fh_file(fi),
				     (uint64_t)off, (uint64_t)n))
		n = -EIO;
	if (n > 0)
		__atomic_add_fetch(&vmfsd_fuse_written, (uint64_t)n, __ATOMIC_RELAXED);
	if (n < 0)
		fuse_reply_err(req, err((int)n));
	else
		fuse_reply_write(req, (size_t)n);
}

static void vd_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	fs_file *f = fh_file(fi);
	int ret;

	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* a punch would free blocks a running VM's vmrun writes in place */
	if (vmfsd_disk_attached(to_fs(ino))) {
		fuse_reply_err(req, EBUSY);
		return;
	}
	if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		ret = fs_punch(f, (uint64_t)off, (uint64_t)len);
	else if (mode == 0 || mode == FALLOC_FL_KEEP_SIZE)
		ret = fs_fallocate(f, (uint64_t)off, (uint64_t)len,
				   mode == FALLOC_FL_KEEP_SIZE);
	else
		ret = -EOPNOTSUPP;
	if (!ret && mode & FALLOC_FL_PUNCH_HOLE)
		ret = vmfsd_cbt_write(f, (uint64_t)off, (uint64_t)len);
	fuse_reply_err(req, err(ret));
}

static void vd_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	int64_t r;

	(void)ino;
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	r = fs_seek(fh_file(fi), off < 0 ? 0 : (uint64_t)off,
		    whence == SEEK_DATA);
	if (r < 0)
		fuse_reply_err(req, err((int)r));
	else
		fuse_reply_lseek(req, (off_t)r);
}

static void vd_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vd_fh *h = fh_of(fi);
	int ret;

	(void)ino;
	ra_destroy(&h->ra);
	vmfsd_cbt_release(h->f);
	ret = fs_close(h->f);
	free(h);
	fuse_reply_err(req, err(ret));
}

static void vd_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	fuse_reply_err(req, err(vmfsd_cbt_fsync(fh_file(fi),
				fs_fsync(fh_file(fi)))));
}

/* fsync of a directory (sync DIR, syncfs through it): every change this
 * host made to the volume durable and in place, readable by other hosts. */
static void vd_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, err(fs_sync(vol)));
}

/* Directory listings: a snapshot taken at opendir. */
struct dirbuf {
	char *p;
	size_t len, cap;
	fuse_req_t req;
	int err;
};

static void dir_add(struct dirbuf *b, const char *name, fuse_ino_t ino,
		    mode_t type)
{
	struct stat st = { .st_ino = ino, .st_mode = type };
	size_t need = fuse_add_direntry(b->req, NULL, 0, name, NULL, 0);

	if (b->len + need > b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 65536;
		char *np;

		while (ncap < b->len + need)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np) {
			b->err = ENOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	fuse_add_direntry(b->req, b->p + b->len, need, name, &st,
			  (off_t)(b->len + need));
	b->len += need;
}

static int dir_cb(void *arg, const char *name, uint64_t ino, uint8_t type)
{
	struct dirbuf *b = arg;

	dir_add(b, name, to_fuse(ino), type == FS_TYPE_DIR ? S_IFDIR :
		type == FS_TYPE_SYMLINK ? S_IFLNK : S_IFREG);
	return b->err ? -ENOMEM : 0;
}

static void vd_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirbuf *b = calloc(1, sizeof(*b));
	int ret;

	if (!b) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	b->req = req;
	dir_add(b, ".", ino, S_IFDIR);
	dir_add(b, "..", ino, S_IFDIR);
	ret = fs_readdir(vol, to_fs(ino), dir_cb, b);
	if (ret || b->err) {
		int e = ret ? err(ret) : b->err;

		free(b->p);
		free(b);
		fuse_reply_err(req, e);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)b;
	fuse_reply_open(req, fi);
}

static void vd_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirbuf *b = (struct dirbuf *)(uintptr_t)fi->fh;

	(void)ino;
	if ((size_t)off >= b->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* entries end at their offsets; hand out whole ones */
	{
		size_t end = (size_t)off + size < b->len ? (size_t)off + size : b->len;

		fuse_reply_buf(req, b->p + off, end - (size_t)off);
	}
}

static void vd_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct dirbuf *b = (struct dirbuf *)(uintptr_t)fi->fh;

	(void)ino;
	free(b->p);
	free(b);
	fuse_reply_err(req, 0);
}

static void vd_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_vol_info in;
	struct statvfs sv;
	int ret = fs_vol_info(vol, &in);

	(void)ino;
	if (ret) {
		fuse_reply_err(req, err(ret));
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = in.block_size;
	sv.f_frsize = in.block_size;
	sv.f_blocks = in.capacity / in.block_size;
	sv.f_bfree = in.free / in.block_size;
	sv.f_bavail = sv.f_bfree;
	sv.f_files = in.files;
	sv.f_ffree = in.files_free;
	sv.f_favail = in.files_free;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static void vd_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* whole 1 MiB requests (a file block) */
	conn->max_write = 1u << 20;
	/* write data is read from /dev/fuse into a receive buffer that puts
	 * it on a page boundary (fuse_loop.c), from where it goes to the
	 * device: no splice (a pipe would take a copy out of it again);
	 * reads are replied with a plain copy */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
	/* entries cached under directory holds need the epoch notification */
	kcache_start(conn);
}

static const struct fuse_lowlevel_ops ops = {
	.init = vd_init,
	.lookup = vd_lookup,
	.getattr = vd_getattr,
	.setattr = vd_setattr,
	.readlink = vd_readlink,
	.mknod = vd_mknod,
	.mkdir = vd_mkdir,
	.unlink = vd_unlink,
	.rmdir = vd_rmdir,
	.symlink = vd_symlink,
	.rename = vd_rename,
	.open = vd_open,
	.read = vd_read,
	.write_buf = vd_write_buf,
	/* no flush: nothing is buffered here (direct_io; release commits),
	 * and the ENOSYS libfuse answers the first FLUSH with makes the
	 * kernel send none again: a request less per close */
	.release = vd_release,
	.fsync = vd_fsync,
	.opendir = vd_opendir,
	.readdir = vd_readdir,
	.releasedir = vd_releasedir,
	.fsyncdir = vd_fsyncdir,
	.statfs = vd_statfs,
	.create = vd_create,
	.fallocate = vd_fallocate,
	.lseek = vd_lseek,
};

/* The lock manager's word on this host's heartbeat (its thread: no
 * volume I/O here).  Fenced or lost, another host may soon take the
 * locks of the disks that VMs here write straight to the LUN: they are
 * detached at once, and vmrun stops their I/O. */
static void on_lk_event(void *arg, enum lk_event ev)
{
	(void)arg;
	/* windows read ahead are no longer known to be current */
	ra_bump();
	if (ev == LK_EV_FENCED || ev == LK_EV_LOST)
		kcache_fence();
	if (ev == LK_EV_FENCED)
		vmfsd_disks_fence("heartbeat stalled, host fenced");
	else if (ev == LK_EV_LOST)
		vmfsd_disks_fence("locks lost to another host");
	else if (ev == LK_EV_ABANDONED)
		vmfsd_disks_fence("host gave the volume up (metadata not "
				  "written in place), fenced until restarted");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vmfsd --host NAME --mount DIR [--hb-interval MS] "
		   "[--hb-timeout MS]\n"
		   "             [--read-only] [--daemon] [--no-unmap] [--lun SPEC]...\n"
		   "             [--candidate SPEC]... DEVICE...\n"
		   "  --no-unmap  never give freed blocks back to the LUN (no UNMAP, "
		   "no punched\n"
		   "              holes): for arrays where UNMAP is slow\n"
		   "  --lun SPEC  a LUN this host sees, for raw device mappings "
		   "(repeat it)\n"
		   "  --candidate SPEC  a device that may become an extent of "
		   "the volume later\n"
		   "              (vmkfstools -Z on another host; repeat it)\n");
}

static int parse_ms(const char *opt, const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v == 0 || v > 3600000) {
		fprintf(stderr, "vmfsd: %s wants milliseconds (1 .. 3600000), "
			"not '%s'\n", opt, s);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/*
 * --daemon: fork before anything starts a thread (the lock manager's
 * heartbeat would not survive a later fork).  The parent waits until the
 * child is serving, or has failed, and exits with the child's verdict.
 */
static int ready_fd = -1;

static int daemonize(void)
{
	int p[2];
	pid_t pid;
	char st = 1;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &st, 1) != 1)
			st = 1;    /* the child died before saying */
		_exit(st);
	}
	close(p[0]);
	ready_fd = p[1];
	setsid();
	return 0;
}

static void tell_parent(int ok)
{
	char st = ok ? 0 : 1;
	int fd;

	if (ready_fd < 0)
		return;
	if (write(ready_fd, &st, 1) != 1) {
		/* the parent is gone: nobody to tell */
	}
	close(ready_fd);
	ready_fd = -1;
	if (!ok)
		return;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);   /* stderr stays: the log */
		if (fd > 1)
			close(fd);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'n' },
		{ "mount", required_argument, NULL, 'm' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "hb-interval", required_argument, NULL, 'i' },
		{ "hb-timeout", required_argument, NULL, 't' },
		{ "debug", no_argument, NULL, 'D' },
		{ "lun", required_argument, NULL, 'l' },
		{ "candidate", required_argument, NULL, 'C' },
		{ "no-unmap", no_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct fs_mount_opts mo = { 0 };
	static struct vmfsd_ctx ctx;
	char sock[108];
	const char *mnt = NULL;
	bool want_daemon = false, debug = false;
	char *fargv[8];
	int fargc = 0, c, ret = 1;
	struct fuse_args fa;
	struct fuse_session *se;
	static struct fuse_lowlevel_ops fops;
	const char *lun_specs[64], *cand[64];
	unsigned nlun = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': mo.host = optarg; break;
		case 'm': mnt = optarg; break;
		case 'r': mo.read_only = read_only_mount = true; break;
		case 'd': want_daemon = true; break;
		case 'i':
			if (parse_ms("--hb-interval", optarg, &mo.hb_interval_ms))
				return 2;
			break;
		case 't':
			if (parse_ms("--hb-timeout", optarg, &mo.hb_dead_ms))
				return 2;
			break;
		case 'D': debug = true; break;
		case 'l':
			if (nlun == sizeof(lun_specs) / sizeof(lun_specs[0])) {
				fprintf(stderr, "vmfsd: at most %zu --lun\n",
					sizeof(lun_specs) / sizeof(lun_specs[0]));
				return 2;
			}
			lun_specs[nlun++] = optarg;
			break;
		case 'C':
			if (mo.ncandidates == sizeof(cand) / sizeof(cand[0])) {
				fprintf(stderr, "vmfsd: at most %zu --candidate\n",
					sizeof(cand) / sizeof(cand[0]));
				return 2;
			}
			cand[mo.ncandidates++] = optarg;
			mo.candidates = cand;
			break;
		case 'U': mo.no_discard = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!mo.host || !mnt || optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (!realpath(mnt, ctx.mnt)) {
		fprintf(stderr, "vmfsd: mount point %s: %s\n", mnt, strerror(errno));
		return 1;
	}
	if (want_daemon && daemonize()) {
		fprintf(stderr, "vmfsd: cannot become a daemon: %s\n", strerror(errno));
		return 1;
	}
	mo.event = on_lk_event;
	ret = fs_mount((const char *const *)argv + optind,
		       (unsigned)(argc - optind), &mo, &vol);
	if (ret) {
		fprintf(stderr, "vmfsd: mounting the volume: %s\n", fs_strerror(ret));
		tell_parent(0);
		return 1;
	}
	ret = 1;
	/* the LUNs mappings resolve among (after the mount: an extent of
	 * this volume listed here is refused by its header when mapped) */
	if (thin_luns_create(&ctx.luns))
		goto umount_vol;
	for (unsigned i = 0; i < nlun; i++) {
		char msg[512];

		if (thin_luns_add(ctx.luns, lun_specs[i], msg, sizeof(msg))) {
			fprintf(stderr, "vmfsd: --lun: %s\n", msg);
			goto umount_vol;
		}
	}
	pthread_key_create(&tbuf_key, tbuf_free);
	ctx.vol = vol;
	ctx.host = mo.host;
	root_addr = fs_root(vol);
	vmfsd_cbt_init(vol);
	if ((c = ra_start())) {
		fprintf(stderr, "vmfsd: cannot start the read-ahead threads: %s\n",
			strerror(-c));
		goto umount_vol;
	}
	fargv[fargc++] = argv[0];
	fargv[fargc++] = "-o";
	fargv[fargc++] = mo.read_only ?
		"fsname=vmfs,subtype=vmfs,default_permissions,allow_other,ro" :
		"fsname=vmfs,subtype=vmfs,default_permissions,allow_other";
	if (debug)
		fargv[fargc++] = "-d";
	fa = (struct fuse_args)FUSE_ARGS_INIT(fargc, fargv);
	vmfsd_rdm_fuse_ops(&ctx, &ops, &fops);
	se = fuse_session_new(&fa, &fops, sizeof(fops), NULL);
	if (!se) {
		fprintf(stderr, "vmfsd: cannot create the FUSE session\n");
		goto umount_vol;
	}
	if (fuse_set_signal_handlers(se)) {
		fprintf(stderr, "vmfsd: cannot set signal handlers\n");
		goto destroy;
	}
	if (fuse_session_mount(se, mnt)) {
		fprintf(stderr, "vmfsd: cannot mount on %s\n", mnt);
		goto remove_handlers;
	}
	if (vmfsd_cmds_register(&ctx) ||
	    (c = ctl_server_start(ctx.mnt, sock, sizeof(sock)))) {
		fprintf(stderr, "vmfsd: control socket for %s: %s\n", ctx.mnt,
			c == -EADDRINUSE ? "another vmfsd serves this mount point" :
			strerror(c < 0 ? -c : EINVAL));
		goto unmount;
	}
	fprintf(stderr, "vmfsd: host '%s' serving the volume on %s (control "
		"socket %s)\n", mo.host, mnt, sock);
	tell_parent(1);
	if (!mo.read_only) {
		const char *e = getenv("VMFSD_ALARM_SECS");   /* tests */

		ctx.alarm_secs = e ? (unsigned)atoi(e) : 0;
		vmfsd_alarm_start(&ctx);
	}
	if (!mo.read_only)
		kc_session = se;    /* read-only hosts hold nothing */
	ret = vmfsd_fuse_loop(se) ? 1 : 0;
	vmfsd_alarm_stop();
	vmfsd_disks_stop(&ctx);
	ctl_server_stop();
	vmfsd_cbt_stop();
unmount:
	kcache_stop();
	fuse_session_unmount(se);
remove_handlers:
	fuse_remove_signal_handlers(se);
destroy:
	fuse_session_destroy(se);
umount_vol:
	tell_parent(0);
	ra_stop();          /* its reads use files that fs_umount closes */
	fs_umount(vol);
	thin_luns_destroy(ctx.luns);
	fprintf(stderr, "vmfsd: host '%s' left the volume\n", mo.host);
	return ret;
}
