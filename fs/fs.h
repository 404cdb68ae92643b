/*
 * fs.h - the cluster file system library.
 *
 * A volume spans 1..32 LUNs (extents) that several hosts mount at once;
 * hosts coordinate through the lock manager's heartbeats and on-disk locks
 * only.  On-disk format: docs/FORMAT.md.  Layers and locking:
 * docs/ARCHITECTURE.md.
 *
 * Functions return 0 (or a count) or a negative error: -errno, or
 * -FS_E_* / -LK_E_* / -MP_E_* (fs_strerror describes all of them).
 * Metadata that fails its checksum is -EIO to the caller and logged with
 * the object and its location; it is never returned as data.
 */
#ifndef FS_H
#define FS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fs/fs_err.h"
#include "lockmgr/lk.h"
#include "multipath/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_vol fs_vol;

/* ---- making a volume ------------------------------------------------------ */

struct fs_mkfs_opts {
	const char *label;          /* NULL = "" */
	uint32_t block_size;        /* 0 = 1 MiB; 64 KiB .. 8 MiB, power of 2 */
	uint32_t max_hosts;         /* 0 = 64; 1 .. 2048 (heartbeat slots) */
	uint32_t journal_mib;       /* 0 = automatic (1 .. 16 MiB per host) */
	uint32_t hb_interval_ms;    /* 0 = 3000 */
	uint32_t hb_dead_ms;        /* 0 = 16000 */
	uint32_t files;             /* 0 = automatic: file descriptors on the
				     * head extent (others get a quarter) */
	bool force;                 /* overwrite an existing volume */
	const uint8_t *uuid;        /* NULL = random */
	bool single_records;        /* tests: a journal record per transaction
				     * (no FS_INCOMPAT_JGROUPS), as volumes
				     * made before groups */
};

/*
 * Format the LUNs as one volume (specs[0] is the head extent).  Refuses
 * (-EEXIST) a LUN that already holds a volume unless o->force.
 */
int fs_mkfs(const char *const *specs, unsigned n, const struct fs_mkfs_opts *o);

/* ---- mounting ----------------------------------------------------------- */

struct fs_mount_opts {
	const char *host;           /* host name shown to other hosts */
	const uint8_t *host_uuid;   /* NULL = derived from host name + random */
	bool read_only;             /* never write, no heartbeat */
	bool offline;               /* no heartbeat, no locks, but writes (fsck
				     * -y on a volume no host has mounted) */
	unsigned hb_interval_ms;    /* 0 = the volume's; this host's beat */
	unsigned hb_dead_ms;        /* 0 = the volume's; other hosts call this
				     * one dead after it (declared in its
				     * heartbeat slot), it fences itself
				     * before */
	lk_event_fn event;          /* lock manager events (fenced, lost) */
	void *event_arg;
	bool no_janitor;            /* do not recover dead hosts in the
				     * background (only when their locks are
				     * needed) */
	bool no_keep;               /* take directory and cluster locks for
				     * each operation only, never keep them
				     * held after it (fs/keep.c) */
	bool no_discard;            /* never give freed blocks back to the
				     * LUN (no UNMAP, no punched holes): for
				     * arrays where UNMAP is slow, as VMFS's
				     * space reclamation priority "none" */
	/* Devices that may become extents later (vmkfstools -Z on another
	 * host): searched by their extent headers when the volume grows. */
	const char *const *candidates;
	unsigned ncandidates;
};

/*
 * Mount the volume whose extents are among specs (any order, device names
 * may differ between hosts: extents are found by their headers).  Joins the
 * heartbeat region unless read-only.
 */
int fs_mount(const char *const *specs, unsigned n,
	     const struct fs_mount_opts *o, fs_vol **out);

/* Flush, release every lock and the heartbeat slot, close the LUNs. */
void fs_umount(fs_vol *v);

struct fs_vol_info {
	uint8_t uuid[16];
	char label[65];
	uint32_t block_size, sb_size, sector, slots, nextents;
	uint64_t capacity;          /* bytes of file blocks */
	uint64_t free;              /* bytes of free file blocks */
	uint64_t files, files_free; /* file descriptors */
	uint32_t slot;              /* ours */
	bool read_only;
	enum lk_method method;
	uint64_t extent_size[32];
	uint64_t extent_free[32];   /* bytes of free file blocks per extent */
	char extent_spec[32][256];
};
int fs_vol_info(fs_vol *v, struct fs_vol_info *info);
/* The device layer's counters of each extent's LUN since this host opened
 * it (zeros for space grown onto another extent's LUN); no I/O. */
void fs_vol_io(fs_vol *v, struct mp_lun_stats io[32]);

/*
 * Span the mounted volume onto the LUN spec (vmkfstools -Z), or use the
 * space a LUN of the volume gained (vmkfstools --growfs; spec = that
 * extent's spec on this host, NULL = the head) - online, while other hosts
 * have it mounted: they take the new extent in within a heartbeat
 * interval (read-write hosts) or when they meet an address on it.
 * Crash-safe: the volume is the old one until one journal transaction
 * adds the new extent to the superblock (docs/FORMAT.md).  0 or an error
 * with a message in err.
 */
int fs_vol_span(fs_vol *v, const char *spec, char *err, size_t len);
/* The volume lock (the lock record before the superblock), exclusive
 * across hosts: geometry changes take it, and so do callers that must
 * check and create something volume-wide as one step (a raw device
 * mapping: no LUN mapped twice).  -EROFS on a read-only host. */
int fs_vol_lock(fs_vol *v, unsigned timeout_ms, lk_lock **out);
void fs_vol_unlock(lk_lock *l);
int fs_vol_grow(fs_vol *v, const char *spec, char *err, size_t len);

/* ---- checking ------------------------------------------------------------ */

struct fs_check_opts {
	bool repair;                /* fix what can be fixed (fsck -y) */
	unsigned watch_ms;          /* how long to watch for live hosts;
				     * 0 = two heartbeat intervals */
};
struct fs_check_result {
	unsigned errors;            /* problems found */
	unsigned fixed;             /* of which repaired */
};
/*
 * Check a volume no host has mounted (-EBUSY if a heartbeat still beats):
 * journals of hosts that did not leave cleanly, the namespace, every
 * checksum on the way, blocks referenced twice, link counts, cluster
 * bitmaps against references, stale locks.  Findings go to stdout.
 */
int fs_check(const char *const *specs, unsigned n,
	     const struct fs_check_opts *o, struct fs_check_result *res);

/* The lock manager volume (for tools and tests). */
lk_volume *fs_lk(fs_vol *v);

/* ---- files --------------------------------------------------------------- */

/* File types (fs_stat.type). */
enum { FS_TYPE_FILE = 1, FS_TYPE_DIR = 2, FS_TYPE_SYMLINK = 3, FS_TYPE_RDM = 4 };

struct fs_stat {
	uint64_t ino;               /* the FD address */
	uint64_t gen;
	uint8_t type;
	uint32_t mode, nlink, uid, gid;
	uint64_t size;
	uint64_t alloc;             /* bytes allocated (data and map) */
	uint64_t atime, mtime, ctime, btime;   /* ns since the epoch */
};

/* Address of the root directory. */
uint64_t fs_root(fs_vol *v);

/* Attributes of a file (read without locks). */
int fs_getattr(fs_vol *v, uint64_t ino, struct fs_stat *st);

/*
 * Caches outside the library (vmfsd: the kernel's directory entries and
 * attributes) that stay current only while this host holds a file's or a
 * directory's lock: nobody else can change it then.
 *
 * fs_cache_hold: whether this host holds the lock of ino (a directory; a
 * regular file too if files) now (any mode, in use, open or kept); if so,
 * *token is the
 * hold's, and before that hold goes (released, or found lost) the drop
 * hook is called for ino.  Never waits (false when the lock is being
 * changed).  Ask before reading what is to be cached, and fs_cache_still
 * after: true when the same hold was there throughout, so that what was
 * read in between was read under it.
 *
 * The drop hook, in the thread that lets the hold go and before it goes
 * (its lock taken: it must not call into the library), with FS_DROP_DIR
 * in flags when ino is a directory (what is cached under it: its names
 * too):
 *   drop(arg, ino, 0)               the hold on ino goes;
 *   drop(arg, ino, FS_DROP_CHANGED) this host is changing ino (a
 *                                   transaction of the calling thread;
 *                                   a file is then no longer marked:
 *                                   its token fails, and its hold goes
 *                                   untold unless fs_cache_hold again);
 *   drop(arg, 0, 0)                 the volume was given up: nothing held
 *                                   is known to be current.
 */
#define FS_DROP_CHANGED 1u
#define FS_DROP_DIR 2u
struct fs_cache_hooks {
	void (*drop)(void *arg, uint64_t ino, unsigned flags);
	void *arg;
};
void fs_set_cache_hooks(fs_vol *v, const struct fs_cache_hooks *h);
bool fs_cache_hold(fs_vol *v, uint64_t ino, bool files, uint64_t *token);
bool fs_cache_still(fs_vol *v, uint64_t ino, uint64_t token);

typedef struct fs_file fs_file;

#define FS_O_RDONLY 0
#define FS_O_RDWR 1

/*
 * Open a file.  Read-write takes the file's on-disk lock exclusively for
 * as long as it is open on this host (-EBUSY when another host has it open,
 * its name in the log, after waiting up to 3 s for that host to let it
 * go); read-only shares it with other readers.
 */
int fs_open(fs_vol *v, uint64_t ino, int flags, fs_file **out);
/* Commit what is pending (size, times), release the lock with the last
 * open on this host: at once, or if a change of this host under the lock
 * is not in place yet (the write-back journal), as soon as it is (a
 * background release, typically milliseconds later; fs_sync releases
 * before it returns).  Another host's open meanwhile waits for it. */
int fs_close(fs_file *f);

ssize_t fs_pread(fs_file *f, void *buf, size_t len, uint64_t off);

/* ---- namespace --------------------------------------------------------------- */

/* Look name up in directory dir. */
int fs_lookup(fs_vol *v, uint64_t dir, const char *name, struct fs_stat *st);

/* A raw device mapping (docs/FORMAT.md): what names the LUN. */
enum fs_rdm_mode { FS_RDM_VIRTUAL = 1, FS_RDM_PHYSICAL = 2 };
enum fs_rdm_idkind {
	FS_RDM_ID_SCSI = 1,         /* VPD 0x83 designator (naa., eui., t10.) */
	FS_RDM_ID_SERIAL = 2,       /* VPD 0x80 unit serial ("serial.SN") */
	FS_RDM_ID_LOCAL = 3,        /* file / block device: device and inode
				     * (valid on one machine) */
};
struct fs_rdm {
	uint32_t mode;              /* enum fs_rdm_mode */
	uint32_t id_kind;           /* enum fs_rdm_idkind */
	uint64_t capacity;          /* bytes: the mapping file's size */
	uint32_t sector;
	uint64_t mtime_ns;
	char id[97];                /* resolved among the host's LUNs by this */
	char serial[65], vendor[9], product[17];
	char host[65], spec[257];   /* where it was made (for people) */
};

struct fs_create_args {
	uint8_t type;               /* FS_TYPE_FILE, _DIR, _SYMLINK, _RDM */
	uint32_t mode;              /* permission bits */
	uint32_t uid, gid;
	const char *target;         /* symlink target (at most 1 KiB) */
	const struct fs_rdm *rdm;   /* FS_TYPE_RDM: the mapping; the file's
				     * size is rdm->capacity, it owns no
				     * block of the volume */
};
/* Create name in dir: -EEXIST if it exists.  The new file's lock is held
 * by this host until the create is in place (as fs_close's release). */
int fs_create(fs_vol *v, uint64_t dir, const char *name,
	      const struct fs_create_args *a, struct fs_stat *st);
/*
 * Create a file (FS_TYPE_FILE) and open it (flags as fs_open): the open
 * needs neither the new FD nor its lock record read back while no other
 * host touched them.  On an open error the file stays created.
 */
int fs_create_open(fs_vol *v, uint64_t dir, const char *name,
		   const struct fs_create_args *a, int flags, struct fs_stat *st,
		   fs_file **out);
/* Remove a file or symlink (-EBUSY if another host has it open). */
int fs_unlink(fs_vol *v, uint64_t dir, const char *name);
/* Remove an empty directory. */
int fs_rmdir(fs_vol *v, uint64_t dir, const char *name);

#define FS_RENAME_NOREPLACE 1u
/* Atomic within the volume: replaces an existing target (a file by a file,
 * an empty directory by a directory) unless FS_RENAME_NOREPLACE. */
int fs_rename(fs_vol *v, uint64_t odir, const char *oname, uint64_t ndir,
	      const char *nname, unsigned flags);

int fs_readlink(fs_vol *v, uint64_t ino, char *buf, size_t len);

/* The mapping of an RDM file (read without locks; -EINVAL when ino is no
 * mapping file, -EIO for a damaged record, logged with its place).
 * Data of a mapping file lives on its LUN: open it with fs_open (for its
 * lock) but do the I/O on the LUN (thin/rdm.h), never fs_pread/fs_pwrite. */
int fs_rdm_get(fs_vol *v, uint64_t ino, struct fs_rdm *r);
/* Whether a LUN holds an extent of some volume (its header, checksum
 * included): 0 with the volume's label and the extent's index, -ENOENT
 * when it holds none, another error when it cannot be read. */
int fs_lun_extent(mp_lun *lun, char *label, size_t len, uint32_t *index);

#define FS_SET_MODE 0x01u
#define FS_SET_UID 0x02u
#define FS_SET_GID 0x04u
#define FS_SET_SIZE 0x08u
#define FS_SET_ATIME 0x10u
#define FS_SET_MTIME 0x20u
struct fs_setattr {
	unsigned mask;
	uint32_t mode, uid, gid;
	uint64_t size, atime, mtime;
};
int fs_setattr(fs_vol *v, uint64_t ino, const struct fs_setattr *sa,
	       struct fs_stat *st);

/* Every entry of a directory (a snapshot; cb returns nonzero to stop). */
typedef int (*fs_readdir_cb)(void *arg, const char *name, uint64_t ino,
			     uint8_t type);
int fs_readdir(fs_vol *v, uint64_t dir, fs_readdir_cb cb, void *arg);
/* Allocates on first write (thin), zeroes a to-be-zeroed block on its
 * first write; -ENOSPC when the volume is full, nothing written lost. */
ssize_t fs_pwrite(fs_file *f, const void *buf, size_t len, uint64_t off);

/*
 * Asynchronous read and write, for callers that keep several requests in
 * flight from one thread (a backup reader, a benchmark).  A request inside
 * one written file block, sector aligned, goes to the LUN as it is and
 * completes on the device layer's completion thread; anything else
 * (crossing blocks, unaligned, allocating, a first write to a reserved
 * block, inline data, past the end) is served by fs_pread/fs_pwrite in the
 * caller before fs_aio_submit returns.  Either way cb runs exactly once,
 * with result = bytes or -error, when fs_aio_submit returned 0.  cb must
 * not block or call into the file system, with one exception: it may
 * submit further requests with fs_aio_submit, which from a callback never
 * waits and refuses with -EWOULDBLOCK (no callback then) a request that
 * would have to (the file busy with a metadata change, its pointer block
 * not cached, a request for the synchronous path): submit that one from
 * another thread (a request may thus still be submitted after the last
 * callback the caller counted: do not close the file while a callback
 * can run).  The request and its buffer belong to the library until cb.
 * Truncate, punch and the last close of the file wait for requests in
 * flight.
 */
struct fs_aio {
	bool write;
	void *buf;
	size_t len;
	uint64_t off;
	void (*cb)(struct fs_aio *a);
	void *priv;                 /* the caller's */
	ssize_t result;

	/* private */
	fs_file *f_;
	struct iovec iov_;
	struct mp_io io_;
};
/* 0: submitted, cb will run; <0: refused (-EBADF, -EWOULDBLOCK from a
 * callback...), cb will not run. */
int fs_aio_submit(fs_file *f, struct fs_aio *a);
/*
 * Make data and metadata durable and visible to every host: the file's
 * data, and every metadata change this host made so far (its creates,
 * renames and unlinks too), written in place.  Metadata changes are
 * acknowledged before they are durable (a write-back journal): a crash
 * keeps every one made before an fsync or fs_sync returned, and of later
 * ones a prefix in the order they were made.  Other hosts see a change
 * once it is in place: after fsync / fs_sync, once they take a lock it
 * was made under, or within the journal's commit delay (about 100 ms at
 * most, milliseconds when the host is not busy).
 */
int fs_fsync(fs_file *f);
/* fs_fsync for the whole volume (syncfs): every extent flushed, every
 * metadata change of this host durable and in place. */
int fs_sync(fs_vol *v);
int fs_ftruncate(fs_file *f, uint64_t size);
/* Reserve [off, off+len) in file blocks that read as zeros until written
 * ("to be zeroed"); the size grows unless keep_size. */
int fs_fallocate(fs_file *f, uint64_t off, uint64_t len, bool keep_size);
/* Free the file blocks inside [off, off+len) (discarded on the LUN),
 * zero the partial edges; the size stays. */
int fs_punch(fs_file *f, uint64_t off, uint64_t len);
/* SEEK_DATA (data) or SEEK_HOLE from off: the offset, or -ENXIO past the
 * end.  Reserved, never written blocks count as holes. */
int64_t fs_seek(fs_file *f, uint64_t off, bool data);
int fs_fstat(fs_file *f, struct fs_stat *st);

/* Where a file's bytes live (vmkfstools -t0; the executor maps guest
 * offsets through it to do its own I/O on the LUN). */
enum { FS_MAP_EXT_HOLE, FS_MAP_EXT_TBZ, FS_MAP_EXT_DATA, FS_MAP_EXT_INLINE };
struct fs_map_ext {
	uint64_t off, len;          /* file range, whole units */
	uint8_t state;              /* FS_MAP_EXT_*: TBZ = reserved, reads
				     * as zeros until written */
	uint32_t ext;               /* extent (LUN) index, unless a hole */
	uint64_t lun_off;           /* byte offset on that extent */
};
/*
 * The extents of [off, off+len), merged while contiguous on the LUN, into
 * out[max]; *n of them.  -E2BIG when there were more: call again from
 * the end of the last one.  Stable while the caller keeps the file open
 * read-write (no other host can change its map).
 */
int fs_map(fs_file *f, uint64_t off, uint64_t len, struct fs_map_ext *out,
	   unsigned max, unsigned *n);
/*
 * The unit a file's data is mapped in: the volume's block size, or its
 * sub-block size for a small file (which moves to blocks when it grows
 * past them), or 0 while the data is inline in the descriptor.  Only a
 * file mapped in blocks keeps its map when written (the executor maps
 * only such files).
 */
uint32_t fs_file_unit(fs_file *f);

/*
 * A number that changes once a change of the file's data or size made on
 * this host (write, asynchronous write, truncate, fallocate, punch) is on
 * the LUN, before the change is acknowledged.  A copy of the data read
 * after taking the number is current while the number is the same
 * (vmfsd's read-ahead): no other host changes a file this host has open.
 * Writes that bypass the library (a running VM's on its mapped disk) do
 * not count.
 */
uint64_t fs_file_data_seq(fs_file *f);

/* ---- reports (tools) ------------------------------------------------------ */

/* Resolve a path relative to the root ("" or "/" = the root); no "..",
 * symlinks are not followed. */
int fs_resolve(fs_vol *v, const char *path, struct fs_stat *st);

/* A file's lock and who holds it (vmkfstools -D). */
struct fs_lock_report {
	uint32_t ext;               /* extent holding the lock record */
	uint64_t lock_off;          /* its byte offset on that extent */
	uint64_t hb_off;            /* heartbeat region (head extent) */
	unsigned opens_rw, opens_ro;/* opens on this host */
	enum lk_mode held;          /* this host's hold */
	struct lk_lock_info info;   /* the record: mode, version, holders */
};
/* -EROFS on a read-only mount (it keeps no lock state). */
int fs_lock_report(fs_vol *v, uint64_t ino, struct fs_lock_report *r);

#ifdef __cplusplus
}
#endif
#endif /* FS_H */
