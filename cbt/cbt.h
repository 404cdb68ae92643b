/*
 * cbt.h - changed-block tracking of virtual disks.
 *
 * Per disk, a tracking file DISK-ctk.vmdk (docs/FORMAT.md) keeps, for each
 * block of the disk (64 KiB by default), the sequence number of its last
 * change.  A change ID (tracking UUID + sequence, written as VMware writes
 * them) names a point in time; a query since an ID returns the areas
 * changed after it.  The invariant, as VMware states it: false positives
 * are allowed, a missed change never is.
 *
 * Durability is "complete or reset": marks live in memory and are written
 * back at cbt_flush() and cbt_close(); the file says "dirty" (durably)
 * before the first mark of a writing session returns, so a reader that
 * finds it dirty knows marks may be missing and resets tracking: a later
 * query naming an ID from before fails with -CBT_E_RESET ("tracking was
 * reset: take a full backup") instead of answering with a hole in it.
 *
 * A cbt_disk is thread-safe (one mutex); marking is an array update.
 * Functions return 0 or a negative error: -errno or -CBT_E_* (described by
 * cbt_strerror, which also describes what fs_strerror does).
 */
#ifndef CBT_H
#define CBT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/fs.h"

#ifdef __cplusplus
extern "C" {
#endif

enum cbt_error {
	CBT_E_BASE = 7000,
	CBT_E_BADMAGIC,    /* not a change tracking file */
	CBT_E_CHECKSUM,    /* a page of the tracking file is damaged */
	CBT_E_VERSION,     /* written by a newer version */
	CBT_E_CORRUPT,     /* fields out of range */
	CBT_E_RESET,       /* tracking was reset: take a full backup */
	CBT_E_OTHER,       /* change ID of another tracking (UUID) */
	CBT_E_FUTURE,      /* change ID not issued yet */
	CBT_E_BADID,       /* not a change ID */
	CBT_E_END
};
const char *cbt_strerror(int err);

/* ---- change IDs ------------------------------------------------------------ */

struct cbt_id {
	uint8_t uuid[16];
	uint32_t seq;
};
#define CBT_ID_LEN 64     /* enough for any formatted ID and its NUL */

/* "52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/4" */
void cbt_id_format(const struct cbt_id *id, char out[CBT_ID_LEN]);
/* The same, hex digits in either case; 0 or -CBT_E_BADID. */
int cbt_id_parse(const char *s, struct cbt_id *id);

/* ---- the tracking file's storage ------------------------------------------ */

/* Where the tracking file lives: a volume file (cbt_io_fs) or, for tests,
 * anything else with these calls.  Reads past the end give zeros. */
struct cbt_io {
	int (*pread)(void *arg, void *buf, size_t len, uint64_t off);
	int (*pwrite)(void *arg, const void *buf, size_t len, uint64_t off);
	int (*sync)(void *arg);
	int (*truncate)(void *arg, uint64_t size);
	/* SEEK_DATA from off: the offset, or -ENXIO when only holes follow */
	int64_t (*next_data)(void *arg, uint64_t off);
	void *arg;
};

/* An io over an fs file opened read-write (the caller keeps it open). */
void cbt_io_fs(fs_file *f, struct cbt_io *io);

/* ---- tracking --------------------------------------------------------------- */

typedef struct cbt_disk cbt_disk;

/* Make a new tracking file (new random UUID, first sequence 1, clean) of
 * a disk of disk_size bytes; block_size 0 = 64 KiB, else a power of two
 * of 4 KiB .. 16 MiB.  Whatever the file held is cut away first. */
int cbt_create(const struct cbt_io *io, uint64_t disk_size,
	       uint32_t block_size, cbt_disk **out);

/* What cbt_open() found. */
enum cbt_open_event {
	CBT_OPENED = 0,          /* clean: every mark is there */
	CBT_OPENED_RESET_UNCLEAN,/* it was dirty (an unclean stop): reset */
	CBT_OPENED_RESET_DAMAGED,/* a leaf page was damaged: reset */
};

/*
 * Load a tracking file.  A dirty file or a damaged leaf page resets
 * tracking (written back at once) and says so in *ev.  A damaged or
 * foreign header is an error (-CBT_E_CHECKSUM, -CBT_E_BADMAGIC, ...):
 * nothing in the file can be trusted, the caller makes a new one.
 * disk_size is the disk's size now (it may have grown since).
 */
int cbt_open(const struct cbt_io *io, uint64_t disk_size, cbt_disk **out,
	     enum cbt_open_event *ev);

/* Check that the file still holds what d has loaded (its header's
 * generation and UUID): 0, or -ESTALE when someone else changed it. */
int cbt_revalidate(cbt_disk *d);

/*
 * Write every mark back, then the header clean, then free d.  With
 * io == NULL (the file is gone or belongs to another now) only frees.
 */
int cbt_close(cbt_disk *d);
/* Point d at another io (the same file, opened again). */
void cbt_set_io(cbt_disk *d, const struct cbt_io *io);

/* Begin a writing session: the header durable as dirty.  A writer calls
 * it when it opens the disk, before its first write (cbt_mark does it
 * too if it was not done). */
int cbt_begin_writes(cbt_disk *d);

/*
 * Record a change of [off, off + len).  The first mark of a writing
 * session makes the header durable as dirty before it returns (one page
 * write and sync); later ones only update memory.  Call it after the
 * write reached the disk and before it is acknowledged.
 */
int cbt_mark(cbt_disk *d, uint64_t off, uint64_t len);
/*
 * A writer that marks before it writes (the executor: it writes the LUN
 * itself) holds the blocks of [off, off + len) from before it issues a
 * write into them until it has seen the write complete.  A held block is
 * stamped with the next sequence, and every checkpoint (and reset) while
 * it is held stamps it again with the sequence after the new one: however
 * many checkpoints pass before the write lands, a query since any of
 * them reports the block (a missed change never is).  Holds are counted:
 * each is released once.  0, or -ENOMEM / an I/O error as cbt_mark.
 */
int cbt_hold(cbt_disk *d, uint64_t off, uint64_t len);
/*
 * Every write into one hold of [off, off + len) has completed: the hold
 * goes.  A block no longer held goes back from the next sequence to the
 * current one (its writes landed before the next checkpoint), so the
 * next incremental does not report it again.  Blocks not held: nothing.
 */
void cbt_release(cbt_disk *d, uint64_t off, uint64_t len);
/* Every hold released (the holding writer closed: its writes are done). */
void cbt_release_all(cbt_disk *d);
/* Blocks held now. */
uint64_t cbt_held(cbt_disk *d);

/* Make marks durable (leaf pages, then the header; state unchanged). */
int cbt_flush(cbt_disk *d);
/* End the writing session: marks durable, then the header clean. */
int cbt_end_writes(cbt_disk *d);

/* The current change ID, and a new sequence begins (durable first). */
int cbt_checkpoint(cbt_disk *d, struct cbt_id *id);

/* The disk grew (disks only grow): tracking covers the new size. */
int cbt_set_size(cbt_disk *d, uint64_t disk_size);

typedef int (*cbt_extent_fn)(void *arg, uint64_t off, uint64_t len);
/*
 * Areas of [off, off + len) changed since id, merged, in order, clipped
 * to the range and to the disk's size; cb returning nonzero stops (and is
 * returned).  -CBT_E_RESET when id predates a reset, -CBT_E_OTHER when it
 * names another tracking, -CBT_E_FUTURE when it was not issued yet.
 */
int cbt_query(cbt_disk *d, const struct cbt_id *since, uint64_t off,
	      uint64_t len, cbt_extent_fn cb, void *arg);

struct cbt_info {
	struct cbt_id current;     /* the ID the next checkpoint returns */
	uint32_t block_size;
	uint32_t reset_seq, epoch;
	uint32_t reset_reason;     /* enum cbt_reason (ondisk.h) */
	uint64_t reset_ns;
	uint64_t disk_size;
	uint64_t leaves;           /* leaf pages holding marks */
	bool dirty;                /* a writing session is open */
};
void cbt_info(cbt_disk *d, struct cbt_info *in);

#ifdef __cplusplus
}
#endif
#endif /* CBT_H */
