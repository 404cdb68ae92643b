/*
 * disk_mapped.c - the "mapped" disk backend: a virtual disk on the
 * datastore whose I/O goes straight to the volume's LUNs, never through
 * FUSE (as ESX's VMM does I/O on the blocks of its vmdk).
 *
 * The host's vmfsd attaches the data file for us (disk_attach on its
 * control socket: it opens the file read-write, which takes its on-disk
 * lock for as long as our connection lives) and hands over the file's
 * block map and the volume's LUNs.  We open the same LUNs through the
 * device layer and translate guest offsets unit by unit:
 *
 *   data      -> (extent, LUN offset): read and write in place;
 *   hole, TBZ -> reads return zeros without touching the LUN; a write
 *                waits while this disk's thread asks vmfsd to allocate
 *                (disk_alloc: a hole gets a block, a to-be-zeroed block is
 *                zeroed, whole, on the LUN and the map committed before
 *                the answer), then goes to the LUN.
 *
 * Threads: submissions come from the virtio-blk I/O thread and the device
 * layer's completion threads; one thread per disk talks to vmfsd (batched
 * allocations: every write waiting when a call starts goes into it),
 * completes reads of zeros, and watches the connection.  The map is an
 * array of atomic words, one per unit, written only by that thread and
 * only from not-data to data.
 *
 * Fencing: if the connection drops (vmfsd died, or detached us because
 * its host was fenced or lost its locks), another host may soon own the
 * disk: the disk stops at once (every request from then on fails) and
 * the fence callback tells vmrun, which powers the VM off with the
 * message.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hypervisor/hv_int.h"
#include "multipath/mp.h"
#include "vmfsd/ctl.h"

#define MAX_LUNS 32

/* A map word: LUN offset in 512-byte sectors << 8 | extent index << 2 |
 * state. */
enum { U_HOLE = 0, U_TBZ = 1, U_DATA = 2 };
#define U_STATE(w)	((unsigned)((w) & 3))
#define U_EXT(w)	((unsigned)(((w) >> 2) & 0x3f))
#define U_OFF(w)	(((w) >> 8) << 9)
#define U_WORD(off, ext, st)	(((off) >> 9) << 8 | (uint64_t)(ext) << 2 | (st))

struct mapped {
	struct hv_disk *d;
	ctl_conn *ctl;
	mp_lun *lun[MAX_LUNS];
	unsigned nluns;
	uint64_t base;			/* the extent's offset in the file */
	uint32_t unit, sector;
	uint64_t nunits;
	uint64_t *map;			/* atomic words, by unit */
	bool cbt;			/* vmfsd tracks changes: cbt_mark first */
	char *desc_rel;			/* the descriptor, relative to the mount */
	/* change tracking: which blocks vmfsd holds for us (see "held
	 * blocks" below); words by block in chunks of CH, made by the
	 * disk's thread, read by submitters */
	unsigned cshift;		/* log2 of the tracking block size */
	uint64_t nchunks;
	uint32_t **cst;
	uint64_t *open;			/* held blocks (the disk's thread) */
	size_t nopen, capopen;
	uint64_t scan_ns;		/* last release scan */
	uint64_t scan_period;		/* SCAN_NS, or VMRUN_CBT_SCAN_MS */
	uint64_t holds, releases, cbt_calls;	/* blocks, calls to vmfsd */
	hv_disk_fence_fn fence;
	void *fence_arg;

	pthread_mutex_t lock;		/* the lists and flags below */
	struct hv_disk_req *waiting;	/* writes waiting for vmfsd */
	struct hv_disk_req *zeros;	/* reads of zeros to complete */
	bool fenced, stop;
	int wake;			/* eventfd: the thread's doorbell */
	pthread_t thread;
	bool running;			/* thread started */
	uint64_t lease_ns;		/* 0 = none; else vmfsd must answer */
	uint64_t expiry_ns;		/* atomic: no submission after this */
	uint64_t last_ping_ns;
	uint64_t call_t0;		/* when the last call() was sent */
	uint64_t allocs, alloc_ns;	/* disk_alloc calls, time in them */
	uint64_t seq_end;		/* atomic: where the last write ended */
	uint64_t ahead;			/* atomic: unit + 1 to allocate ahead */
};

/* A request split across units that are not contiguous on the LUN. */
struct split {
	struct hv_disk_req *r;
	int left;			/* atomic: pieces + 1 while submitting */
	int result;			/* atomic: first error */
	unsigned n;
	struct {
		struct mp_io io;
		struct iovec *iov;
	} piece[];
};

static uint64_t map_get(struct mapped *m, uint64_t u)
{
	return __atomic_load_n(&m->map[u], __ATOMIC_ACQUIRE);
}

/* ---- iovecs ------------------------------------------------------------- */

/* The iovecs covering [off, off+len) of iov into out[max]; how many. */
static int iov_slice(const struct iovec *iov, int cnt, uint64_t off,
		     uint64_t len, struct iovec *out, int max)
{
	int n = 0;

	for (int i = 0; i < cnt && len && n < max; i++) {
		uint64_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len)
			l = len;
		out[n].iov_base = (char *)iov[i].iov_base + off;
		out[n++].iov_len = l;
		len -= l;
		off = 0;
	}
	return n;
}

static void iov_zero(const struct iovec *iov, int cnt, uint64_t off,
		     uint64_t len)
{
	struct iovec part[16];
	int n;

	while (len && (n = iov_slice(iov, cnt, off, len, part, 16)) > 0)
		for (int i = 0; i < n; i++) {
			memset(part[i].iov_base, 0, part[i].iov_len);
			off += part[i].iov_len;
			len -= part[i].iov_len;
		}
}

/* ---- fencing -------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fence(struct mapped *m, const char *why)
{
	bool first;

	pthread_mutex_lock(&m->lock);
	first = !m->fenced;
	__atomic_store_n(&m->fenced, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&m->lock);
	if (!first)
		return;
	/* I/O already waiting in the device layer (all paths down, a
	 * failover) fails instead of going out when a path returns */
	for (unsigned i = 0; i < __atomic_load_n(&m->nluns, __ATOMIC_ACQUIRE); i++)
		mp_lun_fence(m->lun[i], true);
	hv_log("disk %s: %s: its I/O is stopped", m->d->name, why);
	if (m->fence)
		m->fence(m->fence_arg, m->d, why);
}

/* The lease ran out (the disk's thread is stuck in a call to a silent
 * vmfsd, or vmfsd's own heartbeat is stalling): fence, true. */
static bool lease_expired(struct mapped *m)
{
	if (!m->lease_ns ||
	    now_ns() <= __atomic_load_n(&m->expiry_ns, __ATOMIC_ACQUIRE))
		return false;
	fence(m, "vmfsd on this host stopped answering (lease expired)");
	return true;
}

/* An answer of vmfsd's carrying lease_left_ms, to a request sent at t0:
 * good until t0 plus that (vmfsd held its locks when it answered, and its
 * heartbeat was that far from its fence deadline), never longer than the
 * lease. */
static void lease_extend(struct mapped *m, struct json_object *resp,
			 uint64_t t0)
{
	struct json_object *o;
	uint64_t left, until;

	if (!m->lease_ns || !resp ||
	    !json_object_object_get_ex(resp, "lease_left_ms", &o))
		return;
	left = json_object_get_uint64(o) * 1000000ull;
	until = t0 + (left < m->lease_ns ? left : m->lease_ns);
	if (until > __atomic_load_n(&m->expiry_ns, __ATOMIC_ACQUIRE))
		__atomic_store_n(&m->expiry_ns, until, __ATOMIC_RELEASE);
}

/* ---- held blocks (changed-block tracking) ------------------------------------ */

/*
 * vmfsd's tracking must never miss a write we make on the LUN, however
 * many checkpoints pass while it is in flight: before we issue a write,
 * vmfsd holds its blocks (cbt_mark "hold": stamped above every change ID
 * it issues until released); we release a block once no write into it is
 * in flight and none came for a scan period (docs/ARCHITECTURE.md,
 * "Holds").  A write into blocks all held already goes straight to the
 * LUN, without a call: the cost of tracking is one call per block first
 * written in a while, not one per batch.
 *
 * A block's word: C_OPEN (vmfsd holds it), C_USED (written since the
 * last scan), C_PEND (being asked for, the disk's thread only), and the
 * count of writes in flight.  Submitters only add to the count of an open
 * block (CAS); only the disk's thread opens blocks and closes them, with
 * a CAS from open, idle and unused to 0, before it sends the release on
 * the connection where any later hold of the block goes after it.
 */
#define CH		4096u		/* block words per chunk */
#define C_OPEN		0x80000000u
#define C_USED		0x40000000u
#define C_PEND		0x20000000u
#define C_CNT		0x1fffffffu
/* the release period: a block is released 3 to 6 s after its last write
 * (a longer hold, more false positives at a checkpoint; a shorter one,
 * more calls: at 1 s random writes over 512 MiB ran at 0.92x untracked) */
#define SCAN_NS		3000000000ull

static uint32_t *cword(struct mapped *m, uint64_t b)
{
	uint32_t *c = __atomic_load_n(&m->cst[b / CH], __ATOMIC_ACQUIRE);

	return c ? &c[b % CH] : NULL;
}

static void cbt_blocks(struct mapped *m, const struct hv_disk_req *r,
		       uint64_t *b0, uint64_t *b1)
{
	*b0 = r->offset >> m->cshift;
	*b1 = (r->offset + r->len - 1) >> m->cshift;
}

/* r's writes leave their blocks (completed, or never issued). */
static void cbt_leave(struct mapped *m, const struct hv_disk_req *r)
{
	uint64_t b0, b1;

	cbt_blocks(m, r, &b0, &b1);
	for (uint64_t b = b0; b <= b1; b++)
		__atomic_sub_fetch(cword(m, b), 1, __ATOMIC_RELEASE);
}

/* r enters its blocks when every one is held: true; else nothing. */
static bool cbt_enter(struct mapped *m, const struct hv_disk_req *r)
{
	uint64_t b0, b1, b;

	cbt_blocks(m, r, &b0, &b1);
	for (b = b0; b <= b1; b++) {
		uint32_t *w = cword(m, b), v;

		if (!w)
			goto undo;
		v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
		do {
			if (!(v & C_OPEN) || (v & C_CNT) == C_CNT)
				goto undo;
		} while (!__atomic_compare_exchange_n(w, &v, (v + 1) | C_USED,
						      false, __ATOMIC_ACQ_REL,
						      __ATOMIC_ACQUIRE));
	}
	return true;
undo:
	while (b-- > b0)
		__atomic_sub_fetch(cword(m, b), 1, __ATOMIC_RELEASE);
	return false;
}

/* ---- the I/O path ------------------------------------------------------------ */

static void one_done(struct mp_io *io)
{
	struct hv_disk_req *r = io->priv;

	r->result = io->result < 0 ? io->result : 0;
	/* a write issued: be_priv is its disk (issue) */
	if (r->op == HV_DISK_WRITE && ((struct mapped *)r->be_priv)->cbt)
		cbt_leave(r->be_priv, r);
	r->cb(r);
}

static void piece_done(struct mp_io *io)
{
	struct split *s = io->priv;
	int zero = 0;

	if (io->result < 0)
		__atomic_compare_exchange_n(&s->result, &zero, io->result, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	if (__atomic_sub_fetch(&s->left, 1, __ATOMIC_ACQ_REL) == 0) {
		struct hv_disk_req *r = s->r;

		r->result = __atomic_load_n(&s->result, __ATOMIC_ACQUIRE);
		for (unsigned i = 0; i < s->n; i++)
			free(s->piece[i].iov);
		free(s);
		if (r->op == HV_DISK_WRITE && ((struct mapped *)r->be_priv)->cbt)
			cbt_leave(r->be_priv, r);
		r->cb(r);
	}
}

/* Complete r on the disk's thread (never inside submit). */
static void complete_later(struct mapped *m, struct hv_disk_req *r)
{
	uint64_t one = 1;

	pthread_mutex_lock(&m->lock);
	r->be_priv = m->zeros;
	m->zeros = r;
	pthread_mutex_unlock(&m->lock);
	if (write(m->wake, &one, sizeof(one)) != sizeof(one))
		hv_log("disk %s: waking its thread: %s", m->d->name,
		       strerror(errno));
}

/* True when every unit of a write's range is mapped data. */
static bool all_data(struct mapped *m, uint64_t off, uint64_t len)
{
	for (uint64_t u = off / m->unit; u <= (off + len - 1) / m->unit; u++)
		if (U_STATE(map_get(m, u)) != U_DATA)
			return false;
	return true;
}

/* The end of the run starting at pos (before end): units in the same
 * state and, for data, consecutive on the same LUN.  *w = its first word. */
static uint64_t run_end(struct mapped *m, uint64_t pos, uint64_t end,
			uint64_t *w)
{
	uint64_t u = pos / m->unit, next = (u + 1) * m->unit;

	*w = map_get(m, u);
	for (; next < end; next += m->unit) {
		uint64_t w2 = map_get(m, next / m->unit);

		if (U_STATE(w2) != U_STATE(*w) ||
		    (U_STATE(*w) == U_DATA &&
		     (U_EXT(w2) != U_EXT(*w) ||
		      U_OFF(w2) != U_OFF(*w) + (next / m->unit - u) * m->unit)))
			break;
	}
	return next < end ? next : end;
}

/*
 * Issue a read or write whose units are known: runs of units contiguous
 * on one LUN become one I/O each, holes and TBZ of a read are zeroed in
 * place.  Returns 0 (cb will run) or -error (no cb).
 */
static int issue(struct mapped *m, struct hv_disk_req *r)
{
	uint64_t off = m->base + r->offset, end = off + r->len, pos;
	unsigned runs = 0, io_runs = 0;
	struct split *s;
	int ret = 0;

	if (r->op == HV_DISK_WRITE)
		r->be_priv = m;		/* for its completion */
	/* count the runs: a new one where the state, the LUN or the LUN
	 * offset breaks */
	for (pos = off; pos < end;) {
		uint64_t w, next = run_end(m, pos, end, &w);
		runs++;
		if (U_STATE(w) == U_DATA)
			io_runs++;
		else if (r->op == HV_DISK_WRITE)
			return -EAGAIN;		/* allocate first */
		pos = next;
	}
	if (runs == 1 && io_runs == 1) {
		/* the common case: one I/O, in the request's own space */
		struct mp_io *io = (struct mp_io *)r->be_space;
		uint64_t w = map_get(m, off / m->unit);
		uint64_t lo = U_OFF(w) + off % m->unit;

		memset(io, 0, sizeof(*io));
		if (r->op == HV_DISK_READ)
			mp_io_prep_read(io, r->iov, r->iovcnt, lo);
		else
			mp_io_prep_write(io, r->iov, r->iovcnt, lo, 0);
		io->cb = one_done;
		io->priv = r;
		return mp_io_submit(m->lun[U_EXT(w)], io);
	}
	/* room for a piece per unit: a hole of the first pass may have been
	 * allocated by now (the second pass then finds more data runs) */
	s = calloc(1, sizeof(*s) + ((end - 1) / m->unit - off / m->unit + 1) *
		   sizeof(s->piece[0]));
	if (!s)
		return -ENOMEM;
	s->r = r;
	s->left = 1;
	for (pos = off; pos < end;) {
		uint64_t w, next = run_end(m, pos, end, &w);
		struct mp_io *io;

		if (U_STATE(w) != U_DATA) {
			/* a read of a hole or a to-be-zeroed block */
			iov_zero(r->iov, r->iovcnt, pos - off, next - pos);
			pos = next;
			continue;
		}
		s->piece[s->n].iov = malloc(sizeof(struct iovec) * (size_t)r->iovcnt);
		if (!s->piece[s->n].iov) {
			ret = -ENOMEM;
			break;
		}
		io = &s->piece[s->n].io;
		memset(io, 0, sizeof(*io));
		{
			int cnt = iov_slice(r->iov, r->iovcnt, pos - off,
					    next - pos, s->piece[s->n].iov,
					    r->iovcnt);
			uint64_t lo = U_OFF(w) + pos % m->unit;

			if (r->op == HV_DISK_READ)
				mp_io_prep_read(io, s->piece[s->n].iov, cnt, lo);
			else
				mp_io_prep_write(io, s->piece[s->n].iov, cnt, lo, 0);
		}
		io->cb = piece_done;
		io->priv = s;
		s->n++;
		__atomic_add_fetch(&s->left, 1, __ATOMIC_ACQ_REL);
		ret = mp_io_submit(m->lun[U_EXT(w)], io);
		if (ret) {
			/* no callback for this one: count it off */
			__atomic_sub_fetch(&s->left, 1, __ATOMIC_ACQ_REL);
			break;
		}
		pos = next;
	}
	if (ret && __atomic_load_n(&s->left, __ATOMIC_ACQUIRE) == 1 && s->n <= 1) {
		/* nothing in flight: refuse the request as a whole */
		for (unsigned i = 0; i < s->n; i++)
			free(s->piece[i].iov);
		free(s);
		return ret;
	}
	if (ret) {
		int zero = 0;

		__atomic_compare_exchange_n(&s->result, &zero, ret, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	}
	if (!s->n) {
		/* zeros only: complete on the thread */
		free(s);
		r->result = 0;
		complete_later(m, r);
		return 0;
	}
	/* drop the submission's own count; the last piece completes r */
	if (__atomic_sub_fetch(&s->left, 1, __ATOMIC_ACQ_REL) == 0) {
		r->result = __atomic_load_n(&s->result, __ATOMIC_ACQUIRE);
		for (unsigned i = 0; i < s->n; i++)
			free(s->piece[i].iov);
		free(s);
		complete_later(m, r);
	}
	return 0;
}

static int flush_all(struct mapped *m, struct hv_disk_req *r)
{
	unsigned nluns = __atomic_load_n(&m->nluns, __ATOMIC_ACQUIRE);
	struct split *s;
	int ret = 0;

	if (nluns == 1) {
		struct mp_io *io = (struct mp_io *)r->be_space;

		memset(io, 0, sizeof(*io));
		io->op = MP_OP_FLUSH;
		io->cb = one_done;
		io->priv = r;
		return mp_io_submit(m->lun[0], io);
	}
	s = calloc(1, sizeof(*s) + nluns * sizeof(s->piece[0]));
	if (!s)
		return -ENOMEM;
	s->r = r;
	s->left = 1;
	for (unsigned i = 0; i < nluns; i++) {
		struct mp_io *io = &s->piece[i].io;

		io->op = MP_OP_FLUSH;
		io->cb = piece_done;
		io->priv = s;
		__atomic_add_fetch(&s->left, 1, __ATOMIC_ACQ_REL);
		ret = mp_io_submit(m->lun[i], io);
		if (ret) {
			int zero = 0;

			__atomic_sub_fetch(&s->left, 1, __ATOMIC_ACQ_REL);
			__atomic_compare_exchange_n(&s->result, &zero, ret, false,
						    __ATOMIC_ACQ_REL,
						    __ATOMIC_ACQUIRE);
		}
	}
	if (__atomic_sub_fetch(&s->left, 1, __ATOMIC_ACQ_REL) == 0) {
		r->result = __atomic_load_n(&s->result, __ATOMIC_ACQUIRE);
		free(s);
		complete_later(m, r);
	}
	return 0;
}

/*
 * A write continuing the previous one into the second half of its unit,
 * with the next unit not allocated: a sequential first-write stream.  The
 * disk's thread allocates that next unit now, while the guest still
 * writes this one, so that the stream does not stop at every block for a
 * round trip to vmfsd.  At most one unit past what the stream wrote.
 */
static void ahead_check(struct mapped *m, uint64_t off, uint64_t end)
{
	uint64_t prev = __atomic_exchange_n(&m->seq_end, end, __ATOMIC_RELAXED);
	uint64_t u = (end - 1) / m->unit, none = 0, one = 1;

	if (prev != off || end - u * m->unit < m->unit / 2 || u + 1 >= m->nunits ||
	    U_STATE(map_get(m, u + 1)) == U_DATA)
		return;
	if (__atomic_compare_exchange_n(&m->ahead, &none, u + 2, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
	    write(m->wake, &one, sizeof(one)) != sizeof(one))
		hv_log("disk %s: waking its thread: %s", m->d->name,
		       strerror(errno));
}

static int mapped_submit(struct hv_disk *d, struct hv_disk_req *r)
{
	struct mapped *m = d->priv;
	uint64_t one = 1;
	int ret;

	if (__atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE) || lease_expired(m))
		return -EIO;
	switch (r->op) {
	case HV_DISK_FLUSH:
		/* allocations are durable before disk_alloc answers: the
		 * LUNs' caches are all a flush has to empty */
		return flush_all(m, r);
	case HV_DISK_READ:
		return issue(m, r);
	case HV_DISK_WRITE:
		if (!r->len)
			return -EINVAL;
		ahead_check(m, m->base + r->offset, m->base + r->offset + r->len);
		if (all_data(m, m->base + r->offset, r->len) &&
		    (!m->cbt || cbt_enter(m, r))) {
			ret = issue(m, r);
			if (ret && m->cbt)
				cbt_leave(m, r);
			if (ret != -EAGAIN)
				return ret;
		}
		/* the disk's thread allocates (and has blocks held) first */
		pthread_mutex_lock(&m->lock);
		r->be_priv = m->waiting;
		m->waiting = r;
		pthread_mutex_unlock(&m->lock);
		if (write(m->wake, &one, sizeof(one)) != sizeof(one))
			hv_log("disk %s: waking its thread: %s", d->name,
			       strerror(errno));
		return 0;
	default:
		return -EINVAL;
	}
}

/* ---- talking to vmfsd ------------------------------------------------------ */

/*
 * One command on the disk's connection.  An answer carrying lease_left_ms
 * (disk_lease, disk_alloc) renews the lease, counted from when we asked:
 * vmfsd's check was no earlier.  Silence past the socket's receive timeout
 * (half the lease), a closed connection or garbage is the end of vmfsd
 * for this disk: -EPIPE.
 */
static int call(struct mapped *m, struct json_object *req,
		struct json_object **resp, char *msg, size_t len)
{
	uint64_t t0 = now_ns();
	int ret = ctl_call(m->ctl, req, NULL, NULL, resp, msg, len);

	if (ret == -EAGAIN || ret == -ECONNRESET || ret == -EPIPE ||
	    ret == -EPROTO || ret == -ENOMEM)
		return -EPIPE;
	m->call_t0 = t0;
	if (!ret)
		lease_extend(m, *resp, t0);
	return ret;
}

static int map_word(struct mapped *m, struct json_object *e, uint64_t *u0,
		    uint64_t *nu, uint64_t *w)
{
	struct json_object *o;
	const char *state;
	uint64_t off, len, ext, lo;

	if (!json_object_object_get_ex(e, "off", &o))
		return -EPROTO;
	off = json_object_get_uint64(o);
	if (!json_object_object_get_ex(e, "len", &o))
		return -EPROTO;
	len = json_object_get_uint64(o);
	if (!json_object_object_get_ex(e, "state", &o))
		return -EPROTO;
	state = json_object_get_string(o);
	ext = json_object_object_get_ex(e, "ext", &o) ? json_object_get_uint64(o) : 0;
	lo = json_object_object_get_ex(e, "lun_off", &o) ? json_object_get_uint64(o) : 0;
	if (off % m->unit || len % m->unit || !len ||
	    off / m->unit >= m->nunits || len / m->unit > m->nunits - off / m->unit)
		return -EPROTO;
	*u0 = off / m->unit;
	*nu = len / m->unit;
	if (!strcmp(state, "hole")) {
		*w = U_HOLE;
	} else if (!strcmp(state, "tbz") || !strcmp(state, "data")) {
		if (ext >= MAX_LUNS || lo % m->sector || lo >> 55)
			return -EPROTO;
		*w = U_WORD(lo, ext, state[0] == 'd' ? U_DATA : U_TBZ);
	} else {
		return -EPROTO;		/* inline: never for a mapped file */
	}
	return 0;
}

/* Open the LUNs of extents from m->nluns to the end of the list exts
 * (the disk's thread, or open): each is stored before nluns counts it,
 * and nluns before any map word names it. */
static int luns_open(struct mapped *m, struct json_object *exts, char *err,
		     size_t errlen)
{
	unsigned n = (unsigned)json_object_array_length(exts);

	if (!n || n > MAX_LUNS) {
		snprintf(err, errlen, "vmfsd listed %u extents", n);
		return -EPROTO;
	}
	for (unsigned i = m->nluns; i < n; i++) {
		struct mp_open_opts opts = { .queue_depth = 128 };
		const char *spec = json_object_get_string(
			json_object_array_get_idx(exts, i));
		int ret;

		if (m->d->readonly)
			opts.flags |= MP_OPEN_RDONLY;
		ret = mp_lun_open(spec, &opts, &m->lun[i]);
		if (ret) {
			snprintf(err, errlen, "the volume's extent %u (%s): %s", i,
				 spec ? spec : "?", mp_strerror(ret));
			return ret;
		}
		__atomic_store_n(&m->nluns, i + 1, __ATOMIC_RELEASE);
	}
	return 0;
}

/* The volume grew (vmkfstools -Z) while the disk is attached: a block on
 * an extent we have not opened.  Ask vmfsd for the list again. */
static int luns_refresh(struct mapped *m)
{
	struct json_object *req = json_object_new_object(), *resp, *exts;
	char msg[512];
	int ret;

	json_object_object_add(req, "cmd", json_object_new_string("disk_extents"));
	ret = call(m, req, &resp, msg, sizeof(msg));
	if (ret) {
		hv_log("disk %s: the volume's extents: %s", m->d->name, msg);
		return ret;
	}
	ret = json_object_object_get_ex(resp, "extents", &exts) ?
	      luns_open(m, exts, msg, sizeof(msg)) : -EPROTO;
	if (ret)
		hv_log("disk %s: opening a new extent: %s", m->d->name, msg);
	json_object_put(resp);
	return ret;
}

/* Apply a JSON map (array of extents) to the unit words. */
static int map_apply(struct mapped *m, struct json_object *arr)
{
	size_t n = json_object_array_length(arr);

	for (size_t i = 0; i < n; i++) {
		uint64_t u0, nu, w;
		int ret = map_word(m, json_object_array_get_idx(arr, i), &u0,
				   &nu, &w);

		if (!ret && U_STATE(w) != U_HOLE && U_EXT(w) >= m->nluns &&
		    (ret = luns_refresh(m)) == 0 && U_EXT(w) >= m->nluns)
			ret = -EPROTO;
		if (ret)
			return ret;
		for (uint64_t k = 0; k < nu; k++) {
			uint64_t wk = U_STATE(w) == U_HOLE ? w :
				U_WORD(U_OFF(w) + k * m->unit, U_EXT(w), U_STATE(w));

			__atomic_store_n(&m->map[u0 + k], wk, __ATOMIC_RELEASE);
		}
	}
	return 0;
}

/* Append [a, b) (file offsets, whole units) to a JSON ranges array,
 * merging with the last range when they touch. */
static void range_add(struct json_object *ranges, uint64_t *last_end,
		      uint64_t a, uint64_t b)
{
	size_t n = json_object_array_length(ranges);

	if (n && *last_end == a) {
		struct json_object *p = json_object_array_get_idx(ranges, n - 1);
		uint64_t s = json_object_get_uint64(json_object_array_get_idx(p, 0));

		json_object_array_put_idx(p, 1, json_object_new_uint64(b - s));
	} else {
		struct json_object *p = json_object_new_array();

		json_object_array_add(p, json_object_new_uint64(a));
		json_object_array_add(p, json_object_new_uint64(b - a));
		json_object_array_add(ranges, p);
	}
	*last_end = b;
}

static int by_offset(const void *x, const void *y)
{
	const struct hv_disk_req *a = *(struct hv_disk_req *const *)x;
	const struct hv_disk_req *b = *(struct hv_disk_req *const *)y;

	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

/* Disk offsets of block b, clipped to the disk. */
static void cbt_range(struct mapped *m, uint64_t b, uint64_t *a, uint64_t *e)
{
	*a = b << m->cshift;
	*e = (b + 1) << m->cshift;
	if (*e > m->d->size)
		*e = m->d->size;
}

/*
 * The release scan (the disk's thread, at most every scan period): a held
 * block with no write in flight and none since the last scan is closed
 * here and added to rel (vmfsd releases it with the next call); a used
 * one loses its mark.  Closed before the release is sent, so a write
 * into it from now on waits for a hold that goes after the release.
 */
static void cbt_scan(struct mapped *m, struct json_object *rel)
{
	uint64_t last_end = 0;
	size_t k = 0;

	m->scan_ns = now_ns();
	qsort(m->open, m->nopen, sizeof(*m->open), cmp_u64);
	for (size_t i = 0; i < m->nopen; i++) {
		uint64_t b = m->open[i], a, e;
		uint32_t *w = cword(m, b);
		uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);

		for (;;) {
			if (v & C_CNT || v & C_USED) {
				if (__atomic_compare_exchange_n(w, &v, v & ~C_USED,
						false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
					break;
			} else if (__atomic_compare_exchange_n(w, &v, 0, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
				break;
			}
		}
		if (v & C_CNT || v & C_USED) {
			m->open[k++] = b;
			continue;
		}
		cbt_range(m, b, &a, &e);
		range_add(rel, &last_end, a, e);
		m->releases++;
	}
	m->nopen = k;
}

/* One cbt_mark with hold and release lists; a failure fences the disk. */
static int cbt_call(struct mapped *m, struct json_object *hold,
		    struct json_object *rel)
{
	struct json_object *req = json_object_new_object(), *resp;
	char msg[512];
	int ret;

	json_object_object_add(req, "cmd", json_object_new_string("cbt_mark"));
	json_object_object_add(req, "path", json_object_new_string(m->desc_rel));
	json_object_object_add(req, "release", rel);
	json_object_object_add(req, "hold", hold);
	m->cbt_calls++;
	ret = call(m, req, &resp, msg, sizeof(msg));
	if (ret) {
		hv_log("disk %s: recording changed blocks: %s", m->d->name,
		       ret == -EPIPE ? "vmfsd went away or stopped answering" :
		       msg);
		fence(m, "changed-block tracking failed");
		return -EIO;
	}
	json_object_put(resp);
	return 0;
}

/*
 * Every block the writes v[0..n) touch held by vmfsd, then the writes
 * entered into them (so that the release scan keeps them held until they
 * complete).  Blocks held already need no call; the others are asked for
 * in one call, which also carries the releases when a scan is due.
 */
static int cbt_hold_for(struct mapped *m, struct hv_disk_req **v, size_t n)
{
	struct json_object *hold = json_object_new_array();
	struct json_object *rel = json_object_new_array();
	uint64_t last_end = 0, *fresh = NULL;
	size_t nfresh = 0, cap = 0;
	int ret = 0;

	if (now_ns() - m->scan_ns >= m->scan_period)
		cbt_scan(m, rel);
	for (size_t i = 0; i < n && !ret; i++) {
		uint64_t b0, b1;

		cbt_blocks(m, v[i], &b0, &b1);
		for (uint64_t b = b0; b <= b1 && !ret; b++) {
			uint32_t *w = cword(m, b), a0;
			uint64_t a, e;

			if (!w) {
				uint32_t *c = calloc(CH, sizeof(*c));

				if (!c) {
					ret = -ENOMEM;
					break;
				}
				__atomic_store_n(&m->cst[b / CH], c, __ATOMIC_RELEASE);
				w = cword(m, b);
			}
			a0 = __atomic_load_n(w, __ATOMIC_ACQUIRE);
			if (a0 & (C_OPEN | C_PEND))
				continue;
			if (nfresh == cap) {
				void *p = realloc(fresh, (cap = cap ? 2 * cap : 64) *
						  sizeof(*fresh));

				if (!p) {
					ret = -ENOMEM;
					break;
				}
				fresh = p;
			}
			/* closed blocks change only here: a plain store */
			__atomic_store_n(w, C_PEND, __ATOMIC_RELEASE);
			fresh[nfresh++] = b;
			cbt_range(m, b, &a, &e);
			range_add(hold, &last_end, a, e);
		}
	}
	if (!ret && (json_object_array_length(hold) ||
		     json_object_array_length(rel))) {
		ret = cbt_call(m, hold, rel);
	} else {
		json_object_put(hold);
		json_object_put(rel);
	}
	/* held (or, on failure, left closed: the disk is fenced) */
	for (size_t i = 0; i < nfresh; i++)
		__atomic_store_n(cword(m, fresh[i]), ret ? 0 : C_OPEN,
				 __ATOMIC_RELEASE);
	if (!ret && m->nopen + nfresh > m->capopen) {
		size_t c = m->capopen ? m->capopen : 256;
		void *p;

		while (c < m->nopen + nfresh)
			c *= 2;
		p = realloc(m->open, c * sizeof(*m->open));
		if (p) {
			m->open = p;
			m->capopen = c;
		} else {
			/* not listed, never released: held until close */
			nfresh = m->capopen - m->nopen;
		}
	}
	if (!ret) {
		memcpy(m->open + m->nopen, fresh, nfresh * sizeof(*fresh));
		m->nopen += nfresh;
		m->holds += nfresh;
	}
	free(fresh);
	for (size_t i = 0; i < n && !ret; i++)
		if (!cbt_enter(m, v[i])) {
			/* 2^29 writes in flight on a block: the caller
			 * fails them all, none left entered */
			while (i-- > 0)
				cbt_leave(m, v[i]);
			ret = -EIO;
			break;
		}
	if (ret == -ENOMEM) {
		hv_log("disk %s: out of memory for changed-block tracking",
		       m->d->name);
		ret = -EIO;
	}
	return ret;
}

/* Releases due and no write to carry them (the disk's thread, idle). */
static void cbt_idle(struct mapped *m)
{
	struct json_object *rel;

	if (!m->cbt || !m->nopen || now_ns() - m->scan_ns < m->scan_period ||
	    __atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE))
		return;
	rel = json_object_new_array();
	cbt_scan(m, rel);
	if (json_object_array_length(rel))
		cbt_call(m, json_object_new_array(), rel);
	else
		json_object_put(rel);
}

/*
 * One round for the writes that were waiting: one disk_alloc for every
 * unit they touch that is not data yet, one cbt_mark for their ranges
 * when changes are tracked, then submit them.  A transport error fences
 * the disk; an allocation that fails (ENOSPC) fails those writes only.
 */
static void serve_writes(struct mapped *m, struct hv_disk_req *list,
			 uint64_t ahead)
{
	struct hv_disk_req **v, *r;
	struct json_object *req, *ranges, *resp, *map;
	uint64_t last_end = 0, t0;
	size_t n = 0, i;
	char msg[512];
	int ret = 0;

	for (r = list; r; r = r->be_priv)
		n++;
	v = malloc((n ? n : 1) * sizeof(*v));
	if (!v) {
		ret = -ENOMEM;
		goto fail;
	}
	for (i = 0, r = list; r; r = r->be_priv)
		v[i++] = r;
	qsort(v, n, sizeof(*v), by_offset);
	ranges = json_object_new_array();
	for (i = 0; i < n; i++) {
		uint64_t off = m->base + v[i]->offset, end = off + v[i]->len;

		for (uint64_t u = off / m->unit; u <= (end - 1) / m->unit; u++)
			if (U_STATE(map_get(m, u)) != U_DATA &&
			    (u + 1) * m->unit > last_end)
				range_add(ranges, &last_end, u * m->unit,
					  (u + 1) * m->unit);
	}
	if (ahead < m->nunits && U_STATE(map_get(m, ahead)) != U_DATA &&
	    (ahead + 1) * m->unit > last_end)
		range_add(ranges, &last_end, ahead * m->unit,
			  (ahead + 1) * m->unit);
	if (json_object_array_length(ranges)) {
		/* the last unit may pass a size that is not a multiple of
		 * it: vmfsd rounds to units and never grows the file */
		req = json_object_new_object();
		json_object_object_add(req, "cmd", json_object_new_string("disk_alloc"));
		json_object_object_add(req, "ranges", ranges);
		t0 = now_ns();
		ret = call(m, req, &resp, msg, sizeof(msg));
		m->allocs++;
		m->alloc_ns += now_ns() - t0;
		if (ret == -EPIPE) {
			fence(m, "vmfsd on this host went away or stopped "
			      "answering (allocating)");
			ret = -EIO;
			goto fail_v;
		}
		if (ret) {
			hv_log("disk %s: allocating: %s", m->d->name, msg);
			goto fail_v;
		}
		ret = json_object_object_get_ex(resp, "map", &map) ?
		      map_apply(m, map) : -EPROTO;
		json_object_put(resp);
		if (ret) {
			fence(m, "vmfsd sent a bad map");
			ret = -EIO;
			goto fail_v;
		}
	} else {
		json_object_put(ranges);
	}
	if (m->cbt && n) {
		/* the blocks held before the data is written: a change may
		 * be recorded that never happened, never the reverse */
		ret = cbt_hold_for(m, v, n);
		if (ret)
			goto fail_v;
	}
	for (i = 0; i < n; i++) {
		/* the calls above may have outlived the lease */
		ret = __atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE) ||
		      lease_expired(m) ? -EIO : issue(m, v[i]);
		if (ret == -EAGAIN)
			ret = -EIO;	/* vmfsd did not map it */
		if (ret) {
			if (m->cbt)
				cbt_leave(m, v[i]);
			v[i]->result = ret;
			v[i]->cb(v[i]);
		}
	}
	free(v);
	return;
fail_v:
	for (i = 0; i < n; i++) {
		v[i]->result = ret;
		v[i]->cb(v[i]);
	}
	free(v);
	return;
fail:
	while (list) {
		r = list;
		list = r->be_priv;
		r->result = ret;
		r->cb(r);
	}
}

/* The lease: ask vmfsd whether its host still holds its locks, a few
 * times per lease; no answer in time, or a no, stops the disk. */
static void lease_renew(struct mapped *m)
{
	struct json_object *req, *resp;
	uint64_t now = now_ns();
	char msg[512];
	int ret;

	if (!m->lease_ns || __atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE) ||
	    (now - m->last_ping_ns < m->lease_ns / 4 &&
	     __atomic_load_n(&m->expiry_ns, __ATOMIC_ACQUIRE) >
	     now + m->lease_ns / 4 * 3))
		return;
	m->last_ping_ns = now;
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("disk_lease"));
	ret = call(m, req, &resp, msg, sizeof(msg));
	if (ret == -EPIPE)
		fence(m, "vmfsd on this host stopped answering (lease expired)");
	else if (ret)
		fence(m, msg);
	else
		json_object_put(resp);
}

static void *disk_thread(void *arg)
{
	struct mapped *m = arg;
	struct pollfd p[2] = {
		{ .fd = m->wake, .events = POLLIN },
		{ .fd = ctl_conn_fd(m->ctl), .events = POLLIN | POLLRDHUP },
	};
	int period = m->lease_ns ? (int)(m->lease_ns / 4000000) : -1;

	/* held blocks are released within two scan periods */
	if (m->cbt && (period < 0 || period > (int)(m->scan_period / 1000000)))
		period = (int)(m->scan_period / 1000000);

	for (;;) {
		struct hv_disk_req *w, *z;
		uint64_t v, ahead;
		bool stop;

		if (poll(p, 2, period) < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN && read(m->wake, &v, sizeof(v)) < 0 &&
		    errno != EAGAIN)
			break;
		/* vmfsd says nothing unasked: anything readable is its end */
		if (p[1].revents && !__atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE)) {
			fence(m, "vmfsd on this host closed the disk's "
			      "connection (it died, or its host was fenced)");
			p[1].fd = -1;
		}
		pthread_mutex_lock(&m->lock);
		w = m->waiting;
		z = m->zeros;
		m->waiting = m->zeros = NULL;
		stop = m->stop;
		pthread_mutex_unlock(&m->lock);
		while (z) {
			struct hv_disk_req *r = z;

			z = r->be_priv;
			r->cb(r);
		}
		ahead = __atomic_exchange_n(&m->ahead, 0, __ATOMIC_ACQ_REL);
		if (w || ahead) {
			if (__atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE)) {
				while (w) {
					struct hv_disk_req *r = w;

					w = r->be_priv;
					r->result = -EIO;
					r->cb(r);
				}
			} else {
				serve_writes(m, w, ahead ? ahead - 1 : UINT64_MAX);
			}
		}
		if (stop)
			break;
		lease_renew(m);
		cbt_idle(m);
	}
	return NULL;
}

/* ---- open, close ------------------------------------------------------------ */

/* A command whose answer says nothing but "done"; failures are logged. */
static void tell(struct mapped *m, struct json_object *req, const char *what)
{
	struct json_object *resp;
	char msg[256];

	if (call(m, req, &resp, msg, sizeof(msg)))
		hv_log("disk %s: %s: %s", m->d->name, what, msg);
	else
		json_object_put(resp);
}

static void mapped_close(struct hv_disk *d)
{
	struct mapped *m = d->priv;
	uint64_t one = 1;

	if (m->running) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_mutex_unlock(&m->lock);
		if (write(m->wake, &one, sizeof(one)) != sizeof(one))
			hv_log("disk %s: stopping its thread: %s", d->name,
			       strerror(errno));
		pthread_join(m->thread, NULL);
	}
	/* every I/O done before the connection (and with it the lock) goes */
	for (unsigned i = 0; i < m->nluns; i++)
		mp_lun_close(m->lun[i]);
	if (m->cbt && m->ctl && !__atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE)) {
		/* the tracking file is complete again (clean) */
		struct json_object *req = json_object_new_object();

		json_object_object_add(req, "cmd", json_object_new_string("cbt_mark"));
		json_object_object_add(req, "path", json_object_new_string(m->desc_rel));
		json_object_object_add(req, "close", json_object_new_boolean(1));
		tell(m, req, "closing change tracking");
	}
	if (m->ctl && m->running && !__atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE)) {
		/* every I/O is done: vmfsd closes the file (and its lock)
		 * before vmrun goes on, not when it sees the socket close */
		struct json_object *req = json_object_new_object();

		json_object_object_add(req, "cmd", json_object_new_string("disk_detach"));
		tell(m, req, "detaching");
	}
	if (m->allocs)
		hv_log("disk %s: %llu allocation calls to vmfsd, %.1f ms each",
		       d->name, (unsigned long long)m->allocs,
		       (double)m->alloc_ns / 1e6 / (double)m->allocs);
	if (m->cbt_calls)
		hv_log("disk %s: change tracking: %llu calls to vmfsd, %llu "
		       "blocks held, %llu released before the end", d->name,
		       (unsigned long long)m->cbt_calls,
		       (unsigned long long)m->holds,
		       (unsigned long long)m->releases);
	ctl_close(m->ctl);
	if (m->wake >= 0)
		close(m->wake);
	pthread_mutex_destroy(&m->lock);
	free(m->desc_rel);
	free(m->map);
	for (uint64_t i = 0; m->cst && i < m->nchunks; i++)
		free(m->cst[i]);
	free(m->cst);
	free(m->open);
	free(m);
}

static const struct hv_disk_ops mapped_ops = {
	.name = "mapped",
	.submit = mapped_submit,
	.close = mapped_close,
};

/* Tracking begins: vmfsd's session opened (the tracking file dirty
 * before any write), its block size learnt. */
static int cbt_open(struct mapped *m, char *err, size_t errlen)
{
	struct json_object *req = json_object_new_object(), *resp, *o;
	const char *e;
	uint64_t bs = 0;
	char msg[512];
	int ret;

	json_object_object_add(req, "cmd", json_object_new_string("cbt_mark"));
	json_object_object_add(req, "path", json_object_new_string(m->desc_rel));
	ret = call(m, req, &resp, msg, sizeof(msg));
	if (ret) {
		snprintf(err, errlen, "disk %s: change tracking: %s", m->d->name,
			 ret == -EPIPE ? "vmfsd did not answer" : msg);
		return ret;
	}
	if (json_object_object_get_ex(resp, "block_size", &o))
		bs = json_object_get_uint64(o);
	json_object_put(resp);
	if (bs < 512 || bs > (1u << 30) || (bs & (bs - 1))) {
		snprintf(err, errlen, "disk %s: change tracking: vmfsd gave no "
			 "block size", m->d->name);
		return -EPROTO;
	}
	m->cshift = (unsigned)__builtin_ctzll(bs);
	/* tests shorten it, to see blocks released and held again */
	e = getenv("VMRUN_CBT_SCAN_MS");
	m->scan_period = e && strtoull(e, NULL, 10) ? strtoull(e, NULL, 10) *
			 1000000ull : SCAN_NS;
	m->nchunks = ((m->d->size + bs - 1) / bs + CH - 1) / CH;
	m->cst = calloc(m->nchunks ? m->nchunks : 1, sizeof(*m->cst));
	if (!m->cst) {
		snprintf(err, errlen, "disk %s: %s", m->d->name, strerror(ENOMEM));
		return -ENOMEM;
	}
	return 0;
}

/* The host holding path's lock, asked on the same connection. */
static void holder(ctl_conn *c, const char *rel, char *who, size_t len)
{
	struct json_object *req = json_object_new_object(), *resp, *hs, *h, *nm;
	char msg[256];

	who[0] = 0;
	json_object_object_add(req, "cmd", json_object_new_string("lockinfo"));
	json_object_object_add(req, "path", json_object_new_string(rel));
	if (ctl_call(c, req, NULL, NULL, &resp, msg, sizeof(msg)))
		return;
	if (json_object_object_get_ex(resp, "holders", &hs) &&
	    json_object_array_length(hs) > 0 &&
	    (h = json_object_array_get_idx(hs, 0)) &&
	    json_object_object_get_ex(h, "host", &nm))
		snprintf(who, len, "%s", json_object_get_string(nm));
	json_object_put(resp);
}

int hv_disk_open_mapped(const struct hv_mapped_args *a, struct hv_disk **out,
			char *err, size_t errlen)
{
	char mnt[4096], rel[4096], drel[4096], dmnt[4096], msg[512];
	struct json_object *req, *resp = NULL, *o, *exts, *map;
	struct hv_disk *d = NULL;
	struct mapped *m = NULL;
	struct stat st;
	uint64_t fsize;
	int ret;

	*out = NULL;
	err[0] = 0;
	if (stat(a->data, &st) || !S_ISREG(st.st_mode) ||
	    ctl_find_mount(a->data, mnt, sizeof(mnt), rel, sizeof(rel)))
		return -ENOTSUP;
	d = calloc(1, sizeof(*d));
	m = calloc(1, sizeof(*m));
	if (!d || !m || !(d->name = strdup(a->desc ? a->desc : a->data))) {
		free(d);
		free(m);
		return -ENOMEM;
	}
	m->d = d;
	m->wake = -1;
	m->fence = a->fence;
	m->fence_arg = a->fence_arg;
	m->base = a->base;
	pthread_mutex_init(&m->lock, NULL);
	d->ops = &mapped_ops;
	d->priv = m;
	d->readonly = a->readonly;
	ret = ctl_connect(a->data, &m->ctl);
	if (ret) {
		snprintf(err, errlen, "%s: the vmfsd serving %s: %s", a->data,
			 mnt, strerror(-ret));
		goto fail;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("disk_attach"));
	json_object_object_add(req, "path", json_object_new_string(rel));
	if (a->desc && !ctl_find_mount(a->desc, dmnt, sizeof(dmnt), drel,
				       sizeof(drel)) && !strcmp(dmnt, mnt)) {
		json_object_object_add(req, "desc", json_object_new_string(drel));
		if (a->cbt && !(m->desc_rel = strdup(drel))) {
			json_object_put(req);
			ret = -ENOMEM;
			goto fail;
		}
		m->cbt = a->cbt;
	}
	json_object_object_add(req, "rw", json_object_new_boolean(!a->readonly));
	ret = call(m, req, &resp, msg, sizeof(msg));
	if (ret == -ENOTSUP) {
		/* too small to be mapped in blocks: the caller goes raw */
		hv_log("disk %s: %s", d->name, msg);
		goto fail;
	}
	if (ret == -EBUSY) {
		char who[128];

		holder(m->ctl, rel, who, sizeof(who));
		if (who[0])
			snprintf(err, errlen, "disk %s is in use by host '%s' "
				 "(the VM runs there; vmkfstools -D %s)", a->data,
				 who, a->data);
		else
			snprintf(err, errlen, "disk %s: %s", a->data, msg);
		goto fail;
	}
	if (ret) {
		snprintf(err, errlen, "attaching %s: %s", a->data, msg);
		goto fail;
	}
	ret = -EPROTO;
	if (!json_object_object_get_ex(resp, "size", &o) ||
	    !(fsize = json_object_get_uint64(o)) ||
	    !json_object_object_get_ex(resp, "unit", &o) ||
	    !(m->unit = (uint32_t)json_object_get_uint64(o)) ||
	    (m->unit & (m->unit - 1)) || m->unit < 65536 ||
	    !json_object_object_get_ex(resp, "sector", &o) ||
	    !(m->sector = (uint32_t)json_object_get_uint64(o)) ||
	    !json_object_object_get_ex(resp, "extents", &exts) ||
	    !json_object_object_get_ex(resp, "map", &map)) {
		snprintf(err, errlen, "attaching %s: vmfsd's answer lacks the "
			 "size, unit, sector, extents or map", a->data);
		goto fail;
	}
	if (json_object_object_get_ex(resp, "lease_ms", &o) &&
	    json_object_get_uint64(o) >= 1000) {
		/* a call waits at most half the lease for an answer */
		uint64_t ms = json_object_get_uint64(o);
		struct timeval tv = { .tv_sec = (time_t)(ms / 2000),
				      .tv_usec = (suseconds_t)(ms / 2 % 1000 * 1000) };

		m->lease_ns = ms * 1000000ull;
		/* good from when we asked, for what vmfsd's heartbeat left */
		m->expiry_ns = m->call_t0;
		lease_extend(m, resp, m->call_t0);
		if (setsockopt(ctl_conn_fd(m->ctl), SOL_SOCKET, SO_RCVTIMEO, &tv,
			       sizeof(tv))) {
			ret = -errno;
			snprintf(err, errlen, "attaching %s: %s", a->data,
				 strerror(errno));
			goto fail;
		}
	}
	d->size = a->size ? a->size : fsize - (a->base < fsize ? a->base : fsize);
	if (a->base > fsize || d->size > fsize - a->base || a->base % m->sector ||
	    d->size < m->sector) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s: the descriptor's extent (%llu bytes at "
			 "%llu) does not fit its data file (%llu bytes)", d->name,
			 (unsigned long long)d->size, (unsigned long long)a->base,
			 (unsigned long long)fsize);
		goto fail;
	}
	d->size -= d->size % m->sector;
	d->sector = m->sector;
	m->nunits = (fsize + m->unit - 1) / m->unit;
	m->map = calloc(m->nunits, sizeof(*m->map));
	if (!m->map) {
		ret = -ENOMEM;
		snprintf(err, errlen, "attaching %s: %s", a->data, strerror(ENOMEM));
		goto fail;
	}
	ret = luns_open(m, exts, msg, sizeof(msg));
	if (ret) {
		snprintf(err, errlen, "disk %s: %s", d->name, msg);
		goto fail;
	}
	ret = map_apply(m, map);
	if (ret) {
		snprintf(err, errlen, "attaching %s: vmfsd sent a bad map",
			 a->data);
		goto fail;
	}
	json_object_put(resp);
	resp = NULL;
	if (m->cbt) {
		ret = cbt_open(m, err, errlen);
		if (ret)
			goto fail;
	}
	m->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->wake < 0) {
		ret = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	ret = -pthread_create(&m->thread, NULL, disk_thread, m);
	m->running = !ret;
	if (ret) {
		snprintf(err, errlen, "starting the disk's thread: %s",
			 strerror(-ret));
		goto fail;
	}
	*out = d;
	return 0;
fail:
	json_object_put(resp);
	hv_disk_close(d);
	return ret;
}
