/*
 * readahead.h - sequential read-ahead for files read through FUSE.
 *
 * Files are opened direct_io (no page cache, for coherence between
 * hosts), so a reader at depth 1 would wait for each device read and
 * then for the reply's copy, one after the other.  A handle read
 * sequentially, one request at a time, gets the next window read by a
 * read-ahead thread while the current request is copied out; the next
 * request is answered from that buffer (no second copy).
 *
 * A window is served only while it is current: the file's data sequence
 * (fs_file_data_seq: every change of the file's data or size made on this
 * host, counted before it is acknowledged) and vmfsd's epoch (ra_bump: a
 * disk attached to or detached from a running VM, whose writes bypass the
 * library; this host fenced or its locks lost) are what they were when
 * its read started.  No other host changes a file this host has open
 * (a read-only host, which holds no locks, reads no windows).
 */
#ifndef VMFSD_READAHEAD_H
#define VMFSD_READAHEAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fs/fs.h"

#define RA_WINDOW (1u << 20)    /* bytes read ahead at a time */
#define RA_BUFS 4               /* windows per handle: one being copied
				 * out, the next ones being read */
#define RA_MAX_HANDLES 32       /* handles with windows at once (128 MiB) */
#define RA_DEEP_HOLD 4          /* requests without read-ahead after one
				 * that came in beside another, or that found
				 * its window written meanwhile */

struct ra_buf {
	void *p;                    /* RA_WINDOW bytes, or NULL */
	uint64_t off;               /* [off, off + RA_WINDOW) read into it */
	ssize_t result;             /* bytes read, or -error */
	uint64_t seq, epoch;        /* when its read started */
	enum { RA_EMPTY, RA_FILLING, RA_READY } state;
	unsigned users;             /* replies being copied out of it */
	struct ra *ra;
	struct ra_buf *qnext;       /* the read-ahead threads' queue */
};

/* One open handle's state (the fields under m). */
struct ra {
	pthread_mutex_t m;
	pthread_cond_t c;           /* a window filled */
	fs_file *f;
	uint64_t ino;
	void *mem;                  /* the windows' memory, at first use */
	bool on;                    /* ra_init's */
	uint64_t next;              /* where the last request ended */
	uint64_t run;               /* bytes read in sequence up to next */
	unsigned inflight;          /* requests from ra_read to ra_put */
	unsigned deep;              /* requests to go without reading ahead */
	struct ra_buf b[RA_BUFS];
};

/* A request's data: in a window (buf set) or in the caller's buffer;
 * ra_put after the reply either way. */
struct ra_ref {
	struct ra_buf *buf;
	const void *data;
};

/* The read-ahead threads (0 or -errno); ra_stop after the last handle. */
int ra_start(void);
void ra_stop(void);
/* on: false for a handle that must never read ahead (a read-only
 * host's: it holds no lock, other hosts may write the file meanwhile). */
void ra_init(struct ra *ra, fs_file *f, uint64_t ino, bool on);
/* Wait for its window reads and for requests between ra_read and ra_put
 * (their replies may reach the kernel, and the release come, first); free
 * its windows. */
void ra_destroy(struct ra *ra);
/*
 * Read [off, off+len): from a window when one holds it, else with
 * fs_pread into buf (len bytes, for the O_DIRECT device).  Returns bytes
 * or -error; ref->data points at them; ra_put(ref) once they are copied
 * out (an error too).
 */
ssize_t ra_read(struct ra *ra, void *buf, size_t len, uint64_t off,
		struct ra_ref *ref);
void ra_put(struct ra *ra, struct ra_ref *ref);
/* Every window read before this call is stale (see above). */
void ra_bump(void);

/* Counters for info: requests answered from a window (ra_waits of them
 * waited for it to fill), windows read, windows a request found stale. */
extern uint64_t ra_hits, ra_waits, ra_windows, ra_stale;

#endif
