/*
 * mp_int.h - private interfaces of the device layer.
 *
 * Layering inside multipath/:
 *
 *   mp_lun (lun.c)        the device callers see: validation, bounce buffers,
 *                         queue-depth limit and software queue, retries,
 *                         statistics, completion delivery.
 *   mp_path               one way to reach the LUN, driven by a backend
 *                         (struct mp_backend_ops): local (io_uring / libaio),
 *                         iscsi, or fault (which wraps an inner path).
 *
 * A backend receives I/O through ops->submit() and reports each completion
 * exactly once with mp_path_done(), from any thread except the submitter's
 * own call stack (completing inline would let callbacks recurse into
 * submit).  The result is bytes (READ/WRITE), 0, or -errno / -MP_E_*.
 * A backend may also offer ops->run(): the I/O done in the caller's thread
 * for a caller that waits for it anyway (mp_io_run; no callback).
 */
#ifndef MP_INT_H
#define MP_INT_H

#include <pthread.h>
#include <stdbool.h>
#include "mp.h"

/*
 * An mp_io handed to the kernel (io_uring SQ, libaio) comes back on another
 * thread through memory ThreadSanitizer cannot see; these mark that
 * hand-over as the synchronisation it is.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define MP_TSAN_RELEASE(p) __tsan_release(p)
#define MP_TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define MP_TSAN_RELEASE(p) ((void)(p))
#define MP_TSAN_ACQUIRE(p) ((void)(p))
#endif

struct mp_path;

/* Private open flag: the path belongs to a multipath device.  Backends fail
 * I/O fast while their connection is down (instead of waiting for it up to
 * the command timeout) so that the device fails over to another path. */
#define MP_OPEN_PATH_FAILFAST_ 0x80000000u

struct mp_backend_ops {
	const char *name;
	/* Open the path described by spec (the backend's own part of the
	 * spec, prefix already removed for fault:).  Fill p->info (capacity,
	 * sectors, caps, identity, backend name) and p->mem_align. */
	int (*open)(struct mp_path *p, const char *spec,
		    const struct mp_open_opts *o);
	/* Stop threads and free everything.  Called with no I/O in flight. */
	void (*close)(struct mp_path *p);
	/* Start an I/O.  Alignment, bounds and read-only checks are done by
	 * the caller.  Must not invoke mp_path_done() from this call stack.
	 * From here until mp_path_done() the backend owns io->next_ (for its
	 * own queues); lun.c uses it only for I/O not yet handed to a path. */
	void (*submit)(struct mp_path *p, struct mp_io *io);
	/* NULL, or do io now in the calling thread, whose caller waits for
	 * it (mp_io_run): true and *result set (bytes, 0, -errno / -MP_E_*)
	 * when done, false when io must go through submit instead.  The
	 * caller then reports *result itself; the backend does not call
	 * mp_path_done for it. */
	bool (*run)(struct mp_path *p, struct mp_io *io, int *result);
	/* Fault injection control (fault backend only; NULL elsewhere). */
	int (*fault_add)(struct mp_path *p, const struct mp_fault_rule *r);
	int (*fault_clear)(struct mp_path *p);
	int (*power_cut)(struct mp_path *p, enum mp_powercut_mode m);
	int (*fault_stats)(struct mp_path *p, struct mp_fault_stats *st);
};

typedef void (*mp_done_fn)(void *arg, struct mp_io *io, int result);

/* Connection events of a backend that has a connection (iSCSI). */
enum mp_path_event {
	MP_PATH_EV_DOWN = 1,        /* lost (err says why); reconnecting */
	MP_PATH_EV_UP,              /* logged in again */
};
typedef void (*mp_event_fn)(void *arg, enum mp_path_event ev, int err);

struct mp_path {
	const struct mp_backend_ops *ops;
	void *priv;                 /* backend state */
	mp_done_fn done;            /* where completions go */
	void *done_arg;
	struct mp_lun_info info;
	unsigned mem_align;         /* buffer alignment the backend needs (0/1
				     * = none); unaligned I/O is bounced */
	unsigned max_inflight;      /* the backend's own limit */
	/* NULL or where connection events go (with done_arg).  Set by the
	 * owner after open (atomically: the backend's thread reads it);
	 * events before that are not reported, and a path checker finds
	 * such a loss anyway. */
	mp_event_fn event;
	/* NULL or the owning handle's fence flag (atomic; set like event):
	 * a backend that holds requests to send later (across a
	 * reconnect) fails those of a fenced handle instead. */
	const bool *fenced;
};

/* The path's owner is fenced and io does not bypass it: never send it. */
static inline bool mp_path_fenced(const struct mp_path *p, const struct mp_io *io)
{
	const bool *f = __atomic_load_n(&p->fenced, __ATOMIC_ACQUIRE);

	return f && __atomic_load_n(f, __ATOMIC_ACQUIRE) &&
	       !(io->flags & MP_IO_FENCE_BYPASS);
}

/* Report a connection event to the path's owner, if it listens. */
static inline void mp_path_event(struct mp_path *p, enum mp_path_event ev,
				 int err)
{
	mp_event_fn fn = __atomic_load_n(&p->event, __ATOMIC_ACQUIRE);

	if (fn)
		fn(p->done_arg, ev, err);
}

/* Report completion of io with result. */
static inline void mp_path_done(struct mp_path *p, struct mp_io *io,
				int result)
{
	p->done(p->done_arg, io, result);
}

/*
 * Create and open a path from a full spec string (dispatches on the prefix:
 * "iscsi://", "fault:", "file:" or a plain path).  On success *out is a
 * path whose completions go to done(arg, ...).
 */
int mp_path_open(const char *spec, const struct mp_open_opts *o,
		 mp_done_fn done, void *arg, struct mp_path **out);
void mp_path_close(struct mp_path *p);

extern const struct mp_backend_ops mp_local_ops;
extern const struct mp_backend_ops mp_iscsi_ops;
extern const struct mp_backend_ops mp_fault_ops;
extern const struct mp_backend_ops mp_sg_ops;

/* SG_IO completion (host_status, driver_status, SCSI status, sense) to 0
 * or -errno / -MP_E_*; transport failures map to path errors
 * (-MP_E_TRANSPORT, -ETIMEDOUT) so multipath fails over (be_sg.c). */
int mp_sg_result(int host_status, int driver_status, int status,
		 const unsigned char *sense, int sense_len);

/* SCSI status + sense to -errno / -MP_E_* (scsi.c), shared by the iSCSI and
 * SG backends.  status is the SCSI status byte; key/asc/ascq from sense. */
int mp_scsi_result(int status, int key, int asc, int ascq);
/* Whether a result is worth retrying on the same path (UNIT ATTENTION etc.)*/
bool mp_scsi_retryable(int status, int key, int asc, int ascq);

/* Monotonic clock in nanoseconds. */
uint64_t mp_now_ns(void);

/* Total length of an iovec array. */
uint64_t mp_iov_len(const struct iovec *iov, int iovcnt);

/* Copy between a flat buffer and an iovec array; return bytes copied. */
size_t mp_iov_to_buf(void *buf, const struct iovec *iov, int iovcnt,
		     size_t skip, size_t len);
size_t mp_buf_to_iov(const struct iovec *iov, int iovcnt, size_t skip,
		     const void *buf, size_t len);


/* Log a device-layer message to stderr with a "mp:" prefix. */
void mp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* MP_INT_H */
