/*
 * readahead.c - sequential read-ahead for files read through FUSE
 * (readahead.h says what and when).
 *
 * Locks: under a handle's m, queue() takes the threads' queue lock q_m
 * and the attachment registry's lock (vmfsd_disk_attached), never the
 * other way round; a read-ahead thread takes q_m and m one at a time and
 * reads with neither held.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "multipath/mp.h"
#include "vmfsd/cmds.h"
#include "vmfsd/readahead.h"

#define RA_THREADS 8           /* windows read at once, over all handles */

uint64_t ra_hits, ra_waits, ra_windows, ra_stale;

static uint64_t epoch;             /* ra_bump */
static unsigned nmem;              /* handles with windows, atomic */

static pthread_mutex_t q_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_c = PTHREAD_COND_INITIALIZER;
static struct ra_buf *q_head, **q_tail = &q_head;
static bool q_stop;
static pthread_t thr[RA_THREADS];
static unsigned nthr;

void ra_bump(void)
{
	__atomic_add_fetch(&epoch, 1, __ATOMIC_ACQ_REL);
}

static void *ra_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct ra_buf *b;
		struct ra *ra;
		ssize_t n;

		pthread_mutex_lock(&q_m);
		while (!q_head && !q_stop)
			pthread_cond_wait(&q_c, &q_m);
		b = q_head;
		if (b) {
			q_head = b->qnext;
			if (!q_head)
				q_tail = &q_head;
		}
		pthread_mutex_unlock(&q_m);
		if (!b)
			return NULL;
		ra = b->ra;
		/* the handle waits for this (ra_destroy): ra->f stays open */
		n = fs_pread(ra->f, b->p, RA_WINDOW, b->off);
		__atomic_add_fetch(&ra_windows, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&ra->m);
		b->result = n;
		b->state = RA_READY;
		pthread_cond_broadcast(&ra->c);
		pthread_mutex_unlock(&ra->m);
	}
}

int ra_start(void)
{
	q_stop = false;
	for (nthr = 0; nthr < RA_THREADS; nthr++) {
		int ret = pthread_create(&thr[nthr], NULL, ra_thread, NULL);

		if (ret) {
			ra_stop();
			return -ret;
		}
	}
	return 0;
}

void ra_stop(void)
{
	pthread_mutex_lock(&q_m);
	q_stop = true;
	pthread_cond_broadcast(&q_c);
	pthread_mutex_unlock(&q_m);
	for (unsigned i = 0; i < nthr; i++)
		pthread_join(thr[i], NULL);
	nthr = 0;
}

void ra_init(struct ra *ra, fs_file *f, uint64_t ino, bool on)
{
	memset(ra, 0, sizeof(*ra));
	ra->on = on;
	pthread_mutex_init(&ra->m, NULL);
	pthread_cond_init(&ra->c, NULL);
	ra->f = f;
	ra->ino = ino;
	for (unsigned i = 0; i < RA_BUFS; i++)
		ra->b[i].ra = ra;
}

void ra_destroy(struct ra *ra)
{
	pthread_mutex_lock(&ra->m);
	for (unsigned i = 0; i < RA_BUFS; i++)
		while (ra->b[i].state == RA_FILLING)
			pthread_cond_wait(&ra->c, &ra->m);
	/* A reader's reply reaches the kernel before its ra_put: the
	 * release can come (another FUSE thread) in between. */
	while (ra->inflight)
		pthread_cond_wait(&ra->c, &ra->m);
	pthread_mutex_unlock(&ra->m);
	if (ra->mem) {
		mp_free_io(ra->mem, (size_t)RA_BUFS * RA_WINDOW);
		__atomic_sub_fetch(&nmem, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_destroy(&ra->m);
	pthread_cond_destroy(&ra->c);
}

/* The window holding off (filled, being filled or stale), under m. */
static struct ra_buf *find(struct ra *ra, uint64_t off)
{
	for (unsigned i = 0; i < RA_BUFS; i++) {
		struct ra_buf *b = &ra->b[i];

		if (b->state != RA_EMPTY && b->off <= off && off - b->off < RA_WINDOW)
			return b;
	}
	return NULL;
}

/* Whether nothing changed the file (or the epoch) since b's read began. */
static bool fresh(struct ra *ra, const struct ra_buf *b)
{
	return b->seq == fs_file_data_seq(ra->f) &&
	       b->epoch == __atomic_load_n(&epoch, __ATOMIC_ACQUIRE);
}

/* Whether a filled window may answer [off, off+len): read whole (or up
 * to the end of the file) since the last change of the file's data. */
static bool current(struct ra *ra, struct ra_buf *b, uint64_t off, size_t len)
{
	if (b->state != RA_READY || b->result < 0 || !fresh(ra, b))
		return false;
	/* it holds the request, or the file ends inside it */
	return off + len <= b->off + (uint64_t)b->result ||
	       (size_t)b->result < RA_WINDOW;
}

/* Start reading [pos, pos+RA_WINDOW) under m, unless a window holds pos
 * already, into a window that no reply uses and that holds nothing the
 * reader (at cur) may still want: empty, stale, or outside the windows'
 * reach from cur (behind it, or far ahead after a seek back). */
static void queue(struct ra *ra, uint64_t pos, uint64_t cur)
{
	struct ra_buf *b = find(ra, pos);
	uint64_t e;

	if (b && (b->state == RA_FILLING || current(ra, b, pos, 1)))
		return;
	b = NULL;
	for (unsigned i = 0; i < RA_BUFS && !b; i++) {
		struct ra_buf *c = &ra->b[i];

		if (c->state == RA_EMPTY ||
		    (c->state == RA_READY && !c->users &&
		     (c->off + RA_WINDOW <= cur ||
		      c->off >= ra->next + (uint64_t)RA_BUFS * RA_WINDOW ||
		      !current(ra, c, c->off, 1))))
			b = c;
	}
	if (!b)
		return;
	if (!ra->mem) {
		/* the windows side by side: 2 MiB pages (mp_alloc_io), so a
		 * window is one piece of memory for the device */
		if (__atomic_add_fetch(&nmem, 1, __ATOMIC_RELAXED) > RA_MAX_HANDLES) {
			__atomic_sub_fetch(&nmem, 1, __ATOMIC_RELAXED);
			return;
		}
		ra->mem = mp_alloc_io((size_t)RA_BUFS * RA_WINDOW, 0);
		if (!ra->mem) {
			__atomic_sub_fetch(&nmem, 1, __ATOMIC_RELAXED);
			return;
		}
		for (unsigned i = 0; i < RA_BUFS; i++)
			ra->b[i].p = (char *)ra->mem + (size_t)i * RA_WINDOW;
	}
	/* the epoch before the attachment check, the data sequence before
	 * the read: a change after either makes the window stale */
	e = __atomic_load_n(&epoch, __ATOMIC_ACQUIRE);
	if (vmfsd_disk_attached(ra->ino))
		return;
	b->epoch = e;
	b->seq = fs_file_data_seq(ra->f);
	b->off = pos;
	b->result = 0;
	b->state = RA_FILLING;
	b->qnext = NULL;
	pthread_mutex_lock(&q_m);
	*q_tail = b;
	q_tail = &b->qnext;
	pthread_cond_signal(&q_c);
	pthread_mutex_unlock(&q_m);
}

/* The windows after pos, as many as the handle has besides the one
 * being copied out (under m; cur: where the reader is). */
static void queue_after(struct ra *ra, uint64_t pos, uint64_t cur)
{
	for (unsigned k = 0; k + 1 < RA_BUFS; k++)
		queue(ra, pos + (uint64_t)k * RA_WINDOW, cur);
}

/* Whether to read ahead of the request ra_read has (under m): the
 * reader has read a window's worth in sequence, one request at a time,
 * and did not write the file under its windows lately (and the host
 * holds the file's lock: not a read-only host). */
static bool ahead(const struct ra *ra)
{
	return ra->on && ra->run >= RA_WINDOW && !ra->deep;
}

ssize_t ra_read(struct ra *ra, void *buf, size_t len, uint64_t off,
		struct ra_ref *ref)
{
	struct ra_buf *b;
	bool follows;
	ssize_t n;

	ref->buf = NULL;
	ref->data = buf;
	pthread_mutex_lock(&ra->m);
	follows = off == ra->next;
	ra->next = off + len;
	ra->run = follows ? ra->run + len : len;
	/* a reader with more than one request in flight keeps the device
	 * busy itself: windows read ahead would only compete with its
	 * requests (and stay off for a while: a depth-1 reader's next
	 * request may come in just before the previous one's ra_put) */
	if (ra->inflight++)
		ra->deep = RA_DEEP_HOLD;
	else if (ra->deep)
		ra->deep--;
	/* a window being filled with this request's data: wait for it */
	b = find(ra, off);
	if (b && b->state == RA_FILLING) {
		__atomic_add_fetch(&ra_waits, 1, __ATOMIC_RELAXED);
		while ((b = find(ra, off)) && b->state == RA_FILLING)
			pthread_cond_wait(&ra->c, &ra->m);
	}
	if (b && current(ra, b, off, len)) {
		uint64_t end = b->off + (uint64_t)b->result;

		b->users++;
		ref->buf = b;
		ref->data = (char *)b->p + (off - b->off);
		n = off >= end ? 0 : (ssize_t)(end - off < len ? end - off : len);
		__atomic_add_fetch(&ra_hits, 1, __ATOMIC_RELAXED);
		/* the window after this one, while this one is copied out
		 * (not past the end of the file) */
		if (ahead(ra) && (size_t)b->result == RA_WINDOW)
			queue_after(ra, b->off + RA_WINDOW, off);
		pthread_mutex_unlock(&ra->m);
		return n;
	}
	if (b && b->state == RA_READY && b->result >= 0 && !fresh(ra, b)) {
		ra->deep = RA_DEEP_HOLD;   /* written meanwhile: back off */
		__atomic_add_fetch(&ra_stale, 1, __ATOMIC_RELAXED);
	}
	if (b && !b->users)
		b->state = RA_EMPTY;       /* stale: read again below */
	pthread_mutex_unlock(&ra->m);

	n = fs_pread(ra->f, buf, len, off);

	pthread_mutex_lock(&ra->m);
	/* a sequential reader, one request at a time, that got all it
	 * asked for: read what follows while this is copied out */
	if (ahead(ra) && n == (ssize_t)len && len <= RA_WINDOW)
		queue_after(ra, off + len, off + len);
	pthread_mutex_unlock(&ra->m);
	return n;
}

void ra_put(struct ra *ra, struct ra_ref *ref)
{
	pthread_mutex_lock(&ra->m);
	if (ref->buf)
		ref->buf->users--;
	if (!--ra->inflight)
		pthread_cond_broadcast(&ra->c);   /* ra_destroy may wait */
	pthread_mutex_unlock(&ra->m);
	ref->buf = NULL;
}
