/*
 * be_iscsi_int.h - private to the iSCSI path backend (be_iscsi*.c).
 *
 * be_iscsi_open.c  the synchronous part (URL, login, identity and
 *                  capability probes) on the opener's thread, before the
 *                  reactor exists;
 * be_iscsi.c       the backend ops and the reactor thread that owns the
 *                  iscsi_context afterwards: submissions, connection, loop;
 * be_iscsi_io.c    requests, their parts and SCSI commands, completions.
 */
#ifndef BE_ISCSI_INT_H
#define BE_ISCSI_INT_H

#include <stdint.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include "mp_int.h"

#define ISC_DEFAULT_TIMEOUT_MS 10000u
#define ISC_DEFAULT_NOP_MS 5000u     /* NOP-Out interval and timeout */
#define ISC_MAX_INFLIGHT 128u

/* Everything a (re)connect needs; fixed at open. */
struct isc_conf {
	char url[512];              /* for messages */
	char portal[MAX_STRING_SIZE + 1];
	char target[MAX_STRING_SIZE + 1];
	char initiator[MAX_STRING_SIZE + 1];
	char user[MAX_STRING_SIZE + 1];
	char passwd[MAX_STRING_SIZE + 1];
	int lun;
	/* ISID kept across reconnects: the initiator port name is
	 * "<initiator>,i,0x<ISID>", so a reconnect with the same ISID is the
	 * same I_T nexus and keeps its PR registrations. */
	uint32_t isid;
	unsigned timeout_ms;
	unsigned nop_interval_ms;   /* MP_NOP_OFF = no keepalives */
	unsigned nop_timeout_ms;
	bool failfast;              /* MP_OPEN_PATH_FAILFAST_ */
};

/* What the target told us at open, used to build commands. */
struct isc_limits {
	uint32_t block;             /* logical block size */
	uint32_t max_xfer_blocks;   /* VPD B0 MAXIMUM TRANSFER LENGTH, 0 = none */
	uint32_t max_unmap;         /* VPD B0 MAXIMUM UNMAP LBA COUNT */
	uint32_t max_unmap_desc;    /* VPD B0 MAXIMUM UNMAP BLOCK DESC COUNT */
	uint64_t max_ws;            /* VPD B0 MAXIMUM WRITE SAME LENGTH */
	bool lbpu;                  /* UNMAP */
	bool lbpws;                 /* WRITE SAME(16) with UNMAP */
};

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

enum isc_state { ISC_UP, ISC_DOWN, ISC_CONNECTING };
enum pt_state { PT_IDLE, PT_READY, PT_INFLIGHT };

struct isc_path;
struct isc_req;

/* One SCSI command of a request at a time (see be_iscsi_io.c). */
struct isc_part {
	struct isc_req *req;
	enum pt_state state;
	struct scsi_task *task;     /* while PT_INFLIGHT: libiscsi has it */
	unsigned tries;             /* retryable SCSI errors so far */
	uint64_t not_before;        /* ns: retry backoff */
	uint64_t lba;
	uint32_t nblocks;
	int niov;
	struct scsi_iovec *iov;     /* READ/WRITE slice; CAW: cmp + data */
	int nul;
	struct unmap_list *ul;      /* DISCARD by UNMAP */
};

/* One mp_io on its way through the backend. */
struct isc_req {
	struct isc_req *prev, *next;    /* isc_path.reqs */
	struct isc_path *ip;
	struct mp_io *io;
	uint64_t deadline;          /* ns: give up waiting for a connection */
	int result;                 /* first error */
	int stage;                  /* CAW: 0 compare-and-write, 1 read-back */
	unsigned nslots, nbusy;     /* parts, parts not PT_IDLE */
	/* ranged ops (READ, WRITE, DISCARD): what no part has taken yet */
	uint64_t next_lba, end_lba, per;
	int iov_idx;                /* READ/WRITE: where the next slice */
	size_t iov_off;             /* starts in io->iov */
	uint32_t desc_blocks;       /* UNMAP: blocks per descriptor */
	struct isc_part parts[];
};

/* The backend state of one path (mp_path.priv). */
struct isc_path {
	struct mp_path *p;
	struct isc_conf conf;
	struct isc_limits lim;
	unsigned char *zero;        /* one block of zeros for WRITE SAME */
	uint64_t timeout_ns;

	pthread_t thread;
	int efd;
	pthread_mutex_t lock;       /* subq_head, subq_tail, stop */
	struct mp_io *subq_head, *subq_tail;
	bool stop;

	/* reactor thread only (and close() after the join) */
	struct iscsi_context *ctx;
	enum isc_state state;
	bool lost;                  /* connection failed: tear down at top */
	const char *lost_why;       /* NULL or why, for the log */
	struct isc_part *issuing;   /* in a *_task() call for this part */
	bool issue_failed;          /* ... and its callback ran inside it */
	bool connect_done;
	int connect_status;
	uint64_t down_since, next_attempt, attempt_deadline;
	unsigned failed_attempts;
	struct isc_req *reqs;
	unsigned nready;            /* parts in PT_READY */
	bool self_submitted;        /* submit() ran on the reactor itself */
	/* keepalive: at most one NOP-Out outstanding */
	bool nop_out;               /* sent, no NOP-In yet */
	uint64_t nop_sent, nop_next;
};

/* be_iscsi_io.c: requests and their SCSI commands (reactor thread only). */

/* Turn io into a request with its parts ready to send. */
int isc_req_start(struct isc_path *ip, struct mp_io *io);
/* Send ready parts when connected; fail them when the connection stayed
 * away too long. */
void isc_walk_ready(struct isc_path *ip, uint64_t now);
/* After iscsi_destroy_context(): parts whose command went with it. */
void isc_reqs_disowned(struct isc_path *ip);
/* Nanoseconds until the earliest retry backoff ends (at most limit). */
uint64_t isc_next_retry_ns(struct isc_path *ip, uint64_t now, uint64_t limit);

/* be_iscsi_open.c */

/* Create a context configured from c (initiator, target, ISID, digest,
 * timeouts, no automatic reconnect).  Does not connect. */
int isc_ctx_new(const struct isc_conf *c, struct iscsi_context **out);

/* Parse spec and opts into *c (initiator generated when opts has none). */
int isc_conf_init(struct isc_conf *c, const char *spec,
		  const struct mp_open_opts *o);

/* Log in synchronously and probe identity, limits and capabilities into
 * *info and *lim.  On success *out is a logged-in context. */
int isc_login_probe(const struct isc_conf *c, struct mp_lun_info *info,
		    struct isc_limits *lim, struct iscsi_context **out);

/* Around a login: isc_errors_end() returns the first error libiscsi logged
 * on this thread since isc_errors_begin(), else iscsi_get_error(ctx). */
void isc_errors_begin(void);
const char *isc_errors_end(struct iscsi_context *ctx);

/* Map a finished task to 0 or -errno / -MP_E_*. */
int isc_task_result(int status, const struct scsi_task *task);
/* Whether its status and sense say "try again" (UNIT ATTENTION etc.). */
bool isc_task_retryable(const struct scsi_task *t);

/* A COMPARE AND WRITE task of nblocks (bytes = compare + write data). */
struct scsi_task *isc_caw_task(uint64_t lba, uint32_t nblocks, uint32_t bytes);

/* Best-effort logout with a short timeout, then destroy. */
void isc_ctx_logout_destroy(struct iscsi_context *ctx);

#endif /* BE_ISCSI_INT_H */
