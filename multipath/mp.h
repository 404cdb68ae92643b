/*
 * mp.h - the device layer: everything that talks to a LUN.
 *
 * A LUN is opened from a spec string and used through an opaque handle
 * (mp_lun).  Callers never see backends.  A LUN opened from one plain spec
 * has exactly one path and works as it always did; a LUN opened with
 * "multi:" (or mp_lun_open_paths) is a multipath device: several paths to
 * the same LUN (same identity) behind the one handle, with path selection
 * policies, a path checker, failover, all-paths-down handling (see
 * "Multipath" below).
 *
 * Spec strings:
 *   /path/to/file, file:/path        regular file or block device, O_DIRECT
 *                                    (libaio, or io_uring when libaio cannot
 *                                    be set up and MP_OPEN_NO_URING is clear)
 *   ...?engine=aio|uring&sector=4096 local options (sector emulates a
 *                                    4K-native LUN on a regular file)
 *   iscsi://HOST[:PORT]/TARGET-IQN/LUN
 *   sg:/dev/sgN                      SCSI generic (FC/SAS) through SG_IO;
 *                                    untested on hardware (see be_sg.c)
 *   fault:OPTIONS:INNER-SPEC         fault injection around any other spec,
 *                                    see mp_fault_* below and docs/ARCHITECTURE.md
 *   multi:SPEC1|SPEC2|...            one multipath device over every listed
 *                                    path (any of the specs above); they
 *                                    must lead to the same LUN (identity,
 *                                    capacity, sector size) or the open
 *                                    fails with -MP_E_IDMISMATCH.  One path
 *                                    ("multi:SPEC") is allowed: paths may be
 *                                    added later with mp_lun_path_add().
 *
 * I/O model: the caller owns a struct mp_io, fills it and submits it.  The
 * completion callback runs on one of the LUN's internal threads (never inside
 * mp_io_submit itself) and may submit further I/O.  mp_io_wait() waits for a
 * submitted I/O instead.  Offsets and lengths must be multiples of the
 * logical sector size; buffers may have any alignment (unaligned buffers go
 * through a bounce buffer, aligned ones go straight to the device).
 *
 * All functions return 0 (or a count) on success and a negative error code on
 * failure: -errno, or -MP_E_* for what errno cannot say.  mp_strerror()
 * describes both.
 */
#ifndef MP_H
#define MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Private error range (returned negated). */
enum mp_error {
	MP_E_BASE = 4000,
	MP_E_MISCOMPARE,    /* compare-and-write: on-disk data differed */
	MP_E_RESCONFLICT,   /* SCSI RESERVATION CONFLICT */
	MP_E_BUSY,          /* SCSI BUSY status */
	MP_E_QFULL,         /* SCSI TASK SET FULL (queue full) */
	MP_E_PDL,           /* permanent device loss (sense 05/25/00 or gone) */
	MP_E_MEDIUM,        /* medium error / unrecovered read error */
	MP_E_ILLEGAL,       /* illegal request not covered by another code */
	MP_E_SPEC,          /* malformed spec string */
	MP_E_POWERCUT,      /* fault backend: simulated power cut happened */
	MP_E_CHECK,         /* other SCSI CHECK CONDITION */
	MP_E_TRANSPORT,     /* transport failure (connection lost, no retry left) */
	MP_E_FENCED,        /* I/O refused: this host is fenced from the LUN */
	MP_E_IDMISMATCH,    /* multipath: a path leads to a different LUN */
	MP_E_END
};

/* Describe 0, -errno or -MP_E_*.  Never returns NULL. */
const char *mp_strerror(int err);

typedef struct mp_lun mp_lun;

/* Open flags. */
#define MP_OPEN_RDONLY       0x1u  /* refuse writes */
#define MP_OPEN_NO_URING     0x2u  /* local: libaio only, never io_uring */
#define MP_OPEN_RETRY_RESCONFLICT 0x4u /* retry I/O failing with RESERVATION
					* CONFLICT until resconflict_ms passes */
#define MP_OPEN_FIXED_QD     0x8u  /* turn adaptive queue depth off: QUEUE
				    * FULL / BUSY complete the I/O with
				    * -MP_E_QFULL / -MP_E_BUSY and the depth
				    * stays at queue_depth */

#define MP_NOP_OFF 0xffffffffu    /* mp_open_opts.nop_interval_ms */

struct mp_open_opts {
	unsigned flags;
	unsigned timeout_ms;       /* iSCSI command timeout; 0 = default 10 s
				    * (4 s on the paths of a multipath
				    * device, so failover stays under 6 s) */
	unsigned resconflict_ms;   /* with MP_OPEN_RETRY_RESCONFLICT; 0 = 10 s */
	unsigned queue_depth;      /* max I/Os in flight on the device; 0 = 64 */
	const char *initiator;     /* iSCSI initiator IQN; NULL = generated
				    * (one name for every path of a
				    * multipath device) */
	/* iSCSI keepalive: a NOP-Out goes out every nop_interval_ms while
	 * the connection is up; one left unanswered for nop_timeout_ms means
	 * the target stopped answering (traffic dropped, no reset): the
	 * connection is dropped and reconnected with a fresh login, and a
	 * multipath device marks the path dead at once.  Detection takes at
	 * most interval + timeout (10 s by default) on an idle path; I/O in
	 * flight times out sooner (timeout_ms).  0 = 5000 each;
	 * MP_NOP_OFF as the interval turns keepalives off. */
	unsigned nop_interval_ms;
	unsigned nop_timeout_ms;
	/* Multipath devices only (multi: / mp_lun_open_paths). */
	unsigned apd_timeout_ms;   /* all paths down: I/O waits this long for a
				    * path, then fails with -EIO; 0 = 140 s */
	unsigned path_check_ms;    /* path checker period; 0 = 5 s */
	const char *policy;        /* initial policy, see mp_lun_set_policy();
				    * NULL = "fixed" (preferred = first path) */
	/* Adaptive queue depth, on unless MP_OPEN_FIXED_QD (VMware's
	 * QFullSampleSize / QFullThreshold, per device): QUEUE FULL / BUSY
	 * completions are requeued, not failed (for up to 30 s); after
	 * qfull_sample of them the depth halves; after qfull_threshold good
	 * ones it grows by one up to queue_depth. */
	unsigned qfull_sample;     /* 0 = 32 */
	unsigned qfull_threshold;  /* 0 = 4 */
};

/*
 * Open a LUN.  opts may be NULL for defaults.  On success *out holds the
 * handle.  Errors: -MP_E_SPEC for a malformed spec, -ENOENT, -EACCES,
 * -ECONNREFUSED, -ETIMEDOUT, ...
 */
int mp_lun_open(const char *spec, const struct mp_open_opts *opts,
		mp_lun **out);

/*
 * Close a LUN.  Waits for every submitted I/O to complete first (their
 * callbacks run).  Does not flush: call mp_lun_flush() for durability.
 */
void mp_lun_close(mp_lun *lun);

/* Capability bits, see struct mp_lun_info. */
#define MP_CAP_FUA            0x001u /* per-write forced unit access */
#define MP_CAP_DISCARD        0x002u /* discard supported (see discard_zeroes) */
#define MP_CAP_DISCARD_ZEROES 0x004u /* discarded ranges read back as zeros */
#define MP_CAP_ATS            0x008u /* native SCSI COMPARE AND WRITE */
#define MP_CAP_ATS_EMULATED   0x010u /* compare-and-write emulated with OFD
				      * locks: atomic only between processes
				      * of ONE machine */
#define MP_CAP_RESERVE6       0x020u /* SCSI-2 RESERVE(6)/RELEASE(6) */
#define MP_CAP_PR             0x040u /* SCSI-3 persistent reservations */
#define MP_CAP_FAULT          0x080u /* a fault-injection layer is present */

struct mp_lun_info {
	uint64_t capacity;        /* bytes */
	uint32_t logical_sector;  /* bytes: I/O granularity */
	uint32_t physical_sector; /* bytes: atomic write unit */
	uint32_t max_caw_sectors; /* largest compare-and-write, in sectors */
	unsigned caps;            /* MP_CAP_* */
	char backend[16];         /* "uring", "aio", "iscsi" (innermost) */
	/* Identity: stable across hosts and device names.  For SCSI LUNs from
	 * VPD page 0x83 (designator) and 0x80 (serial); for files and block
	 * devices without VPD, derived from the device and inode numbers. */
	char id[96];              /* e.g. "naa.60000000...", "file.803-1234" */
	char serial[64];
	char vendor[9];
	char product[17];
};

/* Fill *info; never fails on an open LUN. */
void mp_lun_get_info(mp_lun *lun, struct mp_lun_info *info);

/* The spec string the LUN was opened with. */
const char *mp_lun_spec(mp_lun *lun);

/* Operations. */
enum mp_op {
	MP_OP_READ = 1,
	MP_OP_WRITE,
	MP_OP_FLUSH,    /* make every completed write durable */
	MP_OP_DISCARD,  /* offset, length; -EOPNOTSUPP when not offered */
	MP_OP_CAW,      /* compare-and-write: iov[0] = compare data, iov[1] =
			 * new data, each length bytes; -MP_E_MISCOMPARE and
			 * the current on-disk data copied into iov[0] when
			 * they differ */
	MP_OP_RESERVE,  /* SCSI-2 RESERVE(6) */
	MP_OP_RELEASE,  /* SCSI-2 RELEASE(6) */
	MP_OP_PR_OUT,   /* persistent reservation out, see struct mp_pr */
	MP_OP_PR_IN,    /* persistent reservation in, see struct mp_pr */
	MP_OP_TUR,      /* TEST UNIT READY (path check) */
	MP_OP_END
};

#define MP_IO_FUA 0x1u   /* write reaches stable media before completion */
#define MP_IO_FENCE_BYPASS 0x2u /* allowed while fenced (heartbeat I/O) */

struct mp_io;
typedef void (*mp_io_cb)(struct mp_io *io);

/*
 * One request.  The caller owns the memory until completion.  Fields after
 * "private" are the layer's own; zero the whole struct (or use
 * mp_io_prep_*) before filling it.
 */
struct mp_io {
	enum mp_op op;
	unsigned flags;            /* MP_IO_* */
	uint64_t offset;           /* bytes */
	uint64_t length;           /* bytes; for READ/WRITE the iov total */
	const struct iovec *iov;
	int iovcnt;
	void *arg;                 /* PR_OUT/PR_IN parameters (struct mp_pr) */
	mp_io_cb cb;               /* may be NULL: then use mp_io_wait() */
	void *priv;                /* caller's */
	int result;                /* on completion: bytes or 0, or -error */

	/* private */
	struct mp_io *next_;
	struct mp_lun *lun_;
	void *bounce_;
	int state_;
	unsigned retries_;
	uint64_t start_ns_;
	uint64_t deadline_ns_;
	struct mp_share *share_;   /* opener (disk shares), NULL = default */
	uint64_t tag_;             /* start tag while queued (shares) */
	void *mpath_;              /* multipath: the path it goes to / is on */
	uint64_t path_ns_;         /* multipath: when it went to that path */
	unsigned epoch_;           /* adaptive depth epoch it was issued in */
};

/*
 * Submit an I/O.  Returns 0 when accepted (its callback will run exactly
 * once), or a negative error when refused at once (bad alignment, read-only
 * LUN, unsupported op): then no callback runs and io->result holds it too.
 */
int mp_io_submit(mp_lun *lun, struct mp_io *io);

/* Wait for a submitted I/O that has no callback; returns io->result. */
int mp_io_wait(struct mp_io *io);

/*
 * Submit an I/O without a callback and wait for it: mp_io_submit and
 * mp_io_wait in one, returning io->result (or the refusal).  On a
 * single-path local LUN with a free slot in its device queue, the calling
 * thread does a READ, WRITE, FLUSH or emulated COMPARE AND WRITE itself
 * (preadv, pwritev2, fdatasync) instead of handing it to the engine's
 * reaper or the backend's worker and sleeping until they wake it: every
 * synchronous I/O saves a thread wake-up, the largest part of a small
 * I/O's latency on a virtual machine whose idle CPUs halt.  Everything
 * else (other backends, multipath devices, a full queue) goes the
 * asynchronous way and waits.  From a completion callback's thread it
 * sends nothing and returns -EDEADLK (the thread would wait for itself).
 * The synchronous helpers below use it.
 */
int mp_io_run(mp_lun *lun, struct mp_io *io);

/* Is the calling thread inside a completion callback?  There mp_io_wait()
 * fails with -EDEADLK (the thread would wait for itself), so code that
 * callbacks may call uses it to choose a path that never waits. */
bool mp_in_completion(void);

/* Synchronous helpers (any thread).  Return bytes done or -error. */
ssize_t mp_lun_pread(mp_lun *lun, void *buf, size_t len, uint64_t off);
ssize_t mp_lun_pwrite(mp_lun *lun, const void *buf, size_t len, uint64_t off,
		      unsigned io_flags);
ssize_t mp_lun_preadv(mp_lun *lun, const struct iovec *iov, int iovcnt,
		      uint64_t off);
ssize_t mp_lun_pwritev(mp_lun *lun, const struct iovec *iov, int iovcnt,
		       uint64_t off, unsigned io_flags);
int mp_lun_flush(mp_lun *lun);
int mp_lun_discard(mp_lun *lun, uint64_t off, uint64_t len);

/*
 * Atomic compare-and-write of len bytes (a multiple of the logical sector,
 * at most max_caw_sectors).  Succeeds only if the LUN holds exactly cmp;
 * otherwise returns -MP_E_MISCOMPARE and, if cur is not NULL, copies the
 * current contents into cur.  Native ATS on SCSI targets that offer it;
 * emulated on files and block devices; -EOPNOTSUPP otherwise.
 *
 * A compare-and-write that failed with -ETIMEDOUT or -MP_E_TRANSPORT (the
 * connection dropped with it in flight) may or may not have been applied:
 * the caller must re-read before deciding.
 */
int mp_lun_caw(mp_lun *lun, uint64_t off, const void *cmp, const void *data,
	       size_t len, void *cur);

/* SCSI-2 reservations (-EOPNOTSUPP when absent). */
int mp_lun_reserve(mp_lun *lun);
int mp_lun_release(mp_lun *lun);

/* SCSI-3 persistent reservations.  On a multipath device mp_lun_pr()
 * registers on every path (each is an I_T nexus) and keeps it so for paths
 * that return or are added; see multipath/mpath_pr.c for each action. */
enum mp_pr_action {          /* PERSISTENT RESERVE OUT service actions */
	MP_PR_REGISTER = 0x00,
	MP_PR_RESERVE = 0x01,
	MP_PR_RELEASE = 0x02,
	MP_PR_CLEAR = 0x03,
	MP_PR_PREEMPT = 0x04,
	MP_PR_PREEMPT_ABORT = 0x05,
	MP_PR_REGISTER_IGNORE = 0x06,
	/* PERSISTENT RESERVE IN service actions, offset by 0x100 */
	MP_PR_READ_KEYS = 0x100,
	MP_PR_READ_RESERVATION = 0x101,
};
enum mp_pr_type {
	MP_PR_WRITE_EXCLUSIVE = 1,
	MP_PR_EXCLUSIVE_ACCESS = 3,
	MP_PR_WRITE_EXCLUSIVE_REGS_ONLY = 5,
	MP_PR_EXCLUSIVE_ACCESS_REGS_ONLY = 6,
	MP_PR_WRITE_EXCLUSIVE_ALL_REGS = 7,
	MP_PR_EXCLUSIVE_ACCESS_ALL_REGS = 8,
};
#define MP_PR_MAX_KEYS 32
struct mp_pr {
	enum mp_pr_action action;
	enum mp_pr_type type;
	uint64_t key;               /* our reservation key */
	uint64_t sa_key;            /* service action key (new key, preempted) */
	/* results of READ KEYS / READ RESERVATION */
	uint32_t generation;
	unsigned nkeys;
	uint64_t keys[MP_PR_MAX_KEYS];
	int reserved;               /* READ RESERVATION: a reservation exists */
	uint64_t holder_key;        /* its key */
	enum mp_pr_type holder_type;
};
int mp_lun_pr(mp_lun *lun, struct mp_pr *pr);

/* TEST UNIT READY, or a direct read of sector 0 on local LUNs. */
int mp_lun_test_ready(mp_lun *lun);

/*
 * Fence the LUN handle: while fenced, every new I/O without
 * MP_IO_FENCE_BYPASS fails with -MP_E_FENCED.  The lock manager fences a
 * host whose heartbeat stalled so that it stops writing before other hosts
 * may break its locks.  I/O already sent down a path is not recalled; on a
 * multipath device, I/O still waiting for one (all paths down, a failover,
 * a reservation moving) fails with -MP_E_FENCED instead of going out when
 * a path returns.
 */
void mp_lun_fence(mp_lun *lun, bool fenced);
bool mp_lun_fenced(mp_lun *lun);

/* Counters, for tools and tests. */
struct mp_lun_stats {
	uint64_t reads, writes, flushes, discards, caws;
	uint64_t read_bytes, write_bytes;
	uint64_t errors, retries;
	unsigned inflight, queued, queue_depth;
};
void mp_lun_get_stats(mp_lun *lun, struct mp_lun_stats *st);

/*
 * Fault injection (only on LUNs opened with a "fault:" spec; -EINVAL on
 * others).  A rule matches an op (or any op) that overlaps [off, off+len)
 * (len 0 = everywhere), skips the first `after` matches, then fires on every
 * `every`-th match (0/1 = each) at most `count` times (0 = unlimited), each
 * time with probability `prob` (0 = always).
 */
enum mp_fault_action {
	MP_FAULT_FAIL = 1,   /* complete with -err (default -EIO) */
	MP_FAULT_DELAY,      /* hold the I/O for ms before issuing it */
	MP_FAULT_HANG,       /* hold the I/O until mp_fault_clear() */
	MP_FAULT_BUSY,       /* complete with -MP_E_BUSY */
	MP_FAULT_QFULL,      /* complete with -MP_E_QFULL */
	MP_FAULT_TEAR,       /* write only the first `keep` bytes, fail -EIO */
	MP_FAULT_DROP,       /* report success but write nothing (lost write) */
	MP_FAULT_POWERCUT,   /* cut the power now (see mp_fault_power_cut) */
	MP_FAULT_FAIL_AFTER, /* do the I/O, then report -err anyway (a
			      * command that timed out after it was applied) */
};
#define MP_FAULT_ANY_OP 0
struct mp_fault_rule {
	enum mp_op op;               /* MP_FAULT_ANY_OP = every op */
	enum mp_fault_action action;
	uint64_t off, len;
	unsigned after, every, count;
	double prob;
	int err;                     /* positive errno or MP_E_* for FAIL */
	unsigned ms;                 /* DELAY */
	uint64_t keep;               /* TEAR: bytes written (sector multiple) */
	uint64_t minlen;             /* only I/Os of at least this many bytes */
};
/* Add a rule; returns its id (>= 0) or -error. */
int mp_fault_add(mp_lun *lun, const struct mp_fault_rule *rule);
/* Remove every rule and release every held (hung or delayed) I/O. */
int mp_fault_clear(mp_lun *lun);

/*
 * Simulated power cut.  With the volatile write cache on (option "wcache"),
 * writes complete before they reach the inner LUN and only a flush or a FUA
 * write makes them durable; a power cut then loses them: all of them
 * (MP_POWERCUT_LOSE_ALL) or a random subset of their sectors
 * (MP_POWERCUT_RANDOM), which models reordering and torn multi-sector
 * writes.  Afterwards every I/O on the handle fails with -MP_E_POWERCUT;
 * reopen the LUN to "power it back on".
 */
enum mp_powercut_mode { MP_POWERCUT_LOSE_ALL = 0, MP_POWERCUT_RANDOM = 1 };
int mp_fault_power_cut(mp_lun *lun, enum mp_powercut_mode mode);

struct mp_fault_stats {
	uint64_t fired;              /* rules fired */
	uint64_t cached_sectors;     /* unflushed sectors in the write cache */
	uint64_t lost_sectors;       /* lost at the last power cut */
	unsigned held;               /* hung or delayed I/Os */
};
int mp_fault_get_stats(mp_lun *lun, struct mp_fault_stats *st);

/*
 * Multipath.
 *
 * A multipath device reaches one LUN through several paths.  Each path is
 * active (takes I/O under the policy), standby (works, not used by the
 * policy now: the non-current paths of fixed and mru), dead (its last I/O
 * or check failed for a path reason) or disabled (by the administrator).
 * A checker sends TEST UNIT READY (a direct read of sector 0 on files)
 * down every path that is not disabled every path_check_ms (every second
 * while all paths are down); a dead path that passes becomes usable again.
 *
 * Failover: an I/O that fails on a path for a path reason (transport error,
 * connection lost, timeout) marks the path dead and is issued again on
 * another path; NOT READY / UNIT ATTENTION retry on another path without
 * killing this one.  The caller does not see these errors, except for
 * COMPARE AND WRITE, RESERVE and PERSISTENT RESERVE OUT, which may have been
 * applied before the path failed and therefore surface (see mp_lun_caw).
 * Medium, illegal-request and other device errors surface at once.  PDL
 * (05/25/00 and the other MP_E_PDL senses) fails the I/O at once; once every
 * path reported it, every I/O fails at once with -MP_E_PDL.  With all paths
 * dead (APD) I/O waits for a path up to apd_timeout_ms after the last path
 * died, then fails with -EIO, and so does new I/O until a path returns.
 * A SCSI-2 RESERVE pins the device to the path that took it until RELEASE
 * (the reservation belongs to that I_T nexus).
 *
 * Policies (mp_lun_set_policy, changeable while I/O runs):
 *   fixed[,pref=N]     path N (default 0) while it works; fails back to it
 *                      when it returns
 *   mru                the path in use until it fails, no failback
 *   rr[,iops=N|,bytes=SIZE]  round robin over the working paths, switching
 *                      after N I/Os (default 1000; iops=1 allowed) or SIZE
 *                      bytes
 *   lqd                least queue depth: fewest I/Os outstanding
 *   st                 service time: least (outstanding + 1) x average
 *                      service time of the path
 */
#define MP_MAX_PATHS 16

enum mp_path_state {
	MP_PATH_ACTIVE = 0,
	MP_PATH_STANDBY,
	MP_PATH_DEAD,
	MP_PATH_DISABLED,
};
const char *mp_path_state_name(enum mp_path_state s);

/*
 * Open a multipath device over n path specs (the same as
 * "multi:SPEC1|...|SPECn").  -MP_E_IDMISMATCH when a path leads to another
 * LUN, and the error of the first path that failed to open.
 */
int mp_lun_open_paths(const char *const specs[], unsigned n,
		      const struct mp_open_opts *opts, mp_lun **out);

/* Whether lun is a multipath device (opened with multi: or _open_paths). */
bool mp_lun_is_multipath(mp_lun *lun);

/*
 * Add a path to an open multipath device while I/O runs.  Returns its
 * index, -MP_E_IDMISMATCH (and logs both identities) when spec leads to a
 * different LUN, -EOPNOTSUPP on a single-path LUN, -ENOSPC beyond
 * MP_MAX_PATHS.
 */
int mp_lun_path_add(mp_lun *lun, const char *spec);

/* Set the policy (syntax above); -EINVAL for an unknown one or a bad
 * parameter, -EOPNOTSUPP on a single-path LUN. */
int mp_lun_set_policy(mp_lun *lun, const char *policy);

/* Disable (no new I/O; what is in flight completes) or re-enable path idx.
 * Disabling the last usable path is allowed: I/O then waits as in APD. */
int mp_lun_path_enable(mp_lun *lun, unsigned idx, bool enable);

/* Run the path checker on every path now and wait for it; 0 or -error. */
int mp_lun_check_paths(mp_lun *lun);

struct mp_path_status {
	char spec[256];
	enum mp_path_state state;
	bool preferred;            /* fixed policy's preferred path */
	unsigned inflight;         /* I/Os outstanding on the path */
	uint64_t ios, bytes, errors;
	uint64_t svc_us;           /* average service time (EWMA), us */
	int last_error;            /* of the last failed I/O or check */
	uint64_t pr_key;           /* PR key registered on its I_T nexus
				    * through mp_lun_pr (0 = none) */
};

struct mp_lun_status {
	char id[96];
	char policy[48];           /* as mp_lun_set_policy takes it */
	unsigned npaths;
	unsigned queue_depth;      /* current (adaptive) */
	unsigned max_queue_depth;  /* configured */
	bool adaptive;             /* adaptive depth (not MP_OPEN_FIXED_QD) */
	bool apd, pdl;             /* all paths down / permanent loss */
	unsigned inflight, queued;
	uint64_t failovers;        /* I/Os moved to another path */
	uint64_t qfull;            /* QUEUE FULL / BUSY completions */
	uint64_t pr_key;           /* PR key registered on every path
				    * through mp_lun_pr (0 = none) */
	int pr_holder;             /* path that holds our persistent
				    * reservation, -1 = none */
};

/*
 * Status of the device and up to max of its paths (single-path LUNs report
 * one path, "active", policy "single").  Returns the number of paths.
 */
int mp_lun_get_status(mp_lun *lun, struct mp_lun_status *st,
		      struct mp_path_status *paths, unsigned max);

/*
 * Every open LUN of the process, as a json-c array of objects
 * {"device", "spec", "policy", "queue_depth", "max_queue_depth",
 *  "adaptive", "apd", "pdl", "failovers", "pr_key", "pr_holder",
 *  "paths": [{"index", "spec", "state", "preferred", "inflight", "ios",
 *  "bytes", "errors", "svc_us", "pr_key"}]}.
 * Returns a new reference or NULL (no memory).  For management front ends
 * (vmfsd's control socket).
 */
struct json_object;
struct json_object *mp_devices_json(void);

/*
 * The management commands as JSON, for a control socket: req {"op":
 * "list"} fills resp with {"devices": [...]}; {"op": "set-policy",
 * "device": ID-OR-SPEC, "policy": P}; {"op": "path", "action":
 * "enable"|"disable", "path": SPEC-or-DEVICE#N}.  Returns 0 or -errno with
 * a message in err.
 */
int mp_mgmt_call(struct json_object *req, struct json_object *resp,
		 char *err, size_t elen);

/* Find an open LUN by its identity (mp_lun_info.id) or spec; NULL when
 * none.  The handle stays valid only while its opener keeps it open. */
mp_lun *mp_lun_find(const char *id_or_spec);

/*
 * Group LUN specs into devices by identity: each spec is opened once as a
 * bare path (opts as for mp_lun_open; NULL = defaults) to read its
 * identity, then closed; specs leading to the same LUN (identity, capacity
 * and sector size equal) make one device, whose spec is "multi:" over them
 * in the order given (also for a lone path: mp_lun_path_add can extend
 * it).  A LUN without identity stands alone.  *out (free with
 * mp_groups_free) holds *nout devices in order of first appearance.
 * Errors: the first spec that fails to open (logged), -ENOMEM.
 */
struct mp_group {
	char *spec;                /* "multi:SPEC1|SPEC2..." */
	unsigned npaths;
	struct mp_lun_info info;   /* of its first path */
};
int mp_specs_group(const char *const specs[], unsigned n,
		   const struct mp_open_opts *opts, struct mp_group **out,
		   unsigned *nout);
void mp_groups_free(struct mp_group *g, unsigned n);

/*
 * Disk shares.  Each opener of a device (a VM's disk) may submit through a
 * share handle; I/O without one belongs to a default opener with normal
 * shares.  While the device is saturated (every queue slot taken), queued
 * I/O is dispatched by start-time fair queuing, so bandwidth divides in
 * proportion to shares; while it is not, I/O goes straight to the device
 * and nobody is held back.
 */
#define MP_SHARES_LOW    500
#define MP_SHARES_NORMAL 1000
#define MP_SHARES_HIGH   2000
#define MP_SHARES_MIN    200
#define MP_SHARES_MAX    4000
typedef struct mp_share mp_share;
/* -EINVAL unless MP_SHARES_MIN <= shares <= MP_SHARES_MAX. */
int mp_share_create(mp_lun *lun, unsigned shares, mp_share **out);
int mp_share_set(mp_share *s, unsigned shares);
/* Free a share handle; -EBUSY while its I/O is queued or in flight.
 * Every handle must be destroyed before mp_lun_close(). */
int mp_share_destroy(mp_share *s);
/* mp_io_submit on behalf of opener s. */
int mp_io_submit_share(mp_share *s, struct mp_io *io);

/* Fault injection on path idx of a multipath device (mp_fault_add and
 * mp_fault_clear act on path 0). */
int mp_fault_add_path(mp_lun *lun, unsigned idx, const struct mp_fault_rule *r);
int mp_fault_clear_path(mp_lun *lun, unsigned idx);

/*
 * CRC-32C (Castagnoli) of buf, continuing from crc (0 to start).  The
 * checksum of every on-disk record of the project.
 */
uint32_t mp_crc32c(uint32_t crc, const void *buf, size_t len);

/* A number with an optional k/m/g/t suffix (powers of 1024), for command
 * lines and spec strings: 0, or -EINVAL (junk, negative, or too big). */
int mp_parse_size(const char *s, uint64_t *v);

/* Aligned allocation (buffers for any LUN); free with free(). */
void *mp_alloc_aligned(size_t align, size_t len);

/*
 * Memory for large I/O buffers kept for a while (a worker's buffer, a
 * benchmark's queue): len rounded up to 2 MiB, 2 MiB aligned, populated,
 * and backed by transparent huge pages where the kernel gives them
 * (madvise: also where THP is in "madvise" mode), else ordinary pages.
 * Why: a device takes a transfer as one descriptor per physically
 * contiguous run of the buffer, and a virtual disk's host handles them
 * one by one; a 1 MiB read into scattered 4 KiB pages is up to 256 runs
 * and may even be split into two requests (a segment limit of 254), one
 * into a 2 MiB page is one.  Measured here: 1 MiB reads at depth 4 three
 * times faster (docs/BENCHMARKS.md, file system section).
 * MP_MEM_HUGETLB: reserved hugetlb pages (vm.nr_hugepages) or nothing
 * (NULL, errno ENOMEM when too few are free): deterministic, for
 * benchmarks that compare like with like (fio --iomem=shmhuge); without
 * it the reserved pool is never touched (it is usually the guests').
 * NULL with errno set on failure.  Free with mp_free_io(p, len), the same
 * len.
 */
#define MP_MEM_HUGETLB 0x1u
void *mp_alloc_io(size_t len, unsigned flags);
void mp_free_io(void *p, size_t len);

/* Prepare helpers (zero the struct and fill the common fields). */
void mp_io_prep_read(struct mp_io *io, const struct iovec *iov, int iovcnt,
		     uint64_t off);
void mp_io_prep_write(struct mp_io *io, const struct iovec *iov, int iovcnt,
		      uint64_t off, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* MP_H */
