/*
 * be_iscsi_open.c - iSCSI path: URL, login and the probes run at open.
 *
 * Everything here is synchronous and runs on the opener's thread before the
 * reactor starts, so it may use libiscsi's *_sync calls (they run their own
 * poll loop on the context and honour iscsi_set_timeout()).
 *
 * Capabilities are probed, never assumed from what a page claims:
 *   ATS       VPD B0 MAXIMUM COMPARE AND WRITE LENGTH > 0 is only a claim
 *             (stock tgt says 128 yet refuses the command), so we also issue
 *             a COMPARE AND WRITE of the last sector with compare == write
 *             data: harmless, and GOOD or MISCOMPARE proves the command works.
 *   RESERVE6  REPORT SUPPORTED OPERATION CODES when the target answers it
 *             (no side effects on other hosts), else RESERVE(6) + RELEASE(6).
 *   PR        PERSISTENT RESERVE IN / READ KEYS succeeds.
 *   DISCARD   VPD B2 LBPU (UNMAP) or LBPWS (WRITE SAME with UNMAP);
 *             DISCARD_ZEROES from LBPRZ.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "be_iscsi_int.h"

#define SYNC_TRIES 4           /* UNIT ATTENTIONs tolerated per probe */
#define PROBE_CONFLICT_TRIES 20 /* x 100 ms: another host's short reservation */
#define OP_COMPARE_AND_WRITE 0x89
#define OP_RESERVE6 0x16
#define OP_RELEASE6 0x17

static unsigned long open_counter;

/* ---- results -------------------------------------------------------------- */

int isc_task_result(int status, const struct scsi_task *task)
{
	int asc = 0, ascq = 0, key = 0;

	switch (status) {
	case SCSI_STATUS_TIMEOUT:
		return -ETIMEDOUT;
	case SCSI_STATUS_CANCELLED:
	case SCSI_STATUS_ERROR:
		return -MP_E_TRANSPORT;
	case SCSI_STATUS_CHECK_CONDITION:
		if (task) {
			key = task->sense.key;
			asc = (task->sense.ascq >> 8) & 0xff;
			ascq = task->sense.ascq & 0xff;
		}
		break;
	default:
		break;
	}
	return mp_scsi_result(status, key, asc, ascq);
}

bool isc_task_retryable(const struct scsi_task *t)
{
	return mp_scsi_retryable(t->status, t->sense.key,
				 (t->sense.ascq >> 8) & 0xff,
				 t->sense.ascq & 0xff);
}

/* For do { task = ..._sync(); } while (sync_again(&task, &tries)): free and
 * go again on UNIT ATTENTION and friends, a few times. */
static bool sync_again(struct scsi_task **task, int *tries)
{
	if (!*task || ++*tries >= SYNC_TRIES || !isc_task_retryable(*task))
		return false;
	scsi_free_scsi_task(*task);
	*task = NULL;
	return true;
}

static int sync_result(struct scsi_task *task)
{
	return task ? isc_task_result(task->status, task) : -MP_E_TRANSPORT;
}

/* ---- configuration -------------------------------------------------------- */

/* libiscsi's log callback has no context argument, and a login runs on
 * one thread (the opener's, or the reactor's for a reconnect), so the first
 * error logged while it runs is kept per thread: it names the cause (e.g.
 * "Connection refused") that iscsi_get_error() has overwritten by the end. */
static __thread char first_error[256];
static __thread bool capture;

static void log_to_mp(int level, const char *msg)
{
	const char *dbg = getenv("MP_ISCSI_DEBUG");

	if (capture && level <= 1 && !first_error[0]) {
		snprintf(first_error, sizeof(first_error), "%s", msg);
		for (char *p = first_error; *p; p++)
			if (*p == '\n')
				*p = ' ';
	}
	if (dbg && atoi(dbg) >= level)
		mp_log("libiscsi[%d]: %s", level, msg);
}

void isc_errors_begin(void)
{
	first_error[0] = '\0';
	capture = true;
}

const char *isc_errors_end(struct iscsi_context *ctx)
{
	capture = false;
	return first_error[0] ? first_error : ctx ? iscsi_get_error(ctx) : "?";
}

int isc_ctx_new(const struct isc_conf *c, struct iscsi_context **out)
{
	struct iscsi_context *ctx;
	const char *dbg = getenv("MP_ISCSI_DEBUG");
	int secs = (int)((c->timeout_ms + 999) / 1000);

	ctx = iscsi_create_context(c->initiator);
	if (!ctx)
		return -ENOMEM;
	if (iscsi_set_targetname(ctx, c->target) ||
	    iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL) ||
	    iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C) ||
	    iscsi_set_isid_random(ctx, c->isid, 0) ||
	    (c->user[0] &&
	     iscsi_set_initiator_username_pwd(ctx, c->user, c->passwd))) {
		mp_log("%s: cannot configure iSCSI context: %s", c->url,
		       iscsi_get_error(ctx));
		iscsi_destroy_context(ctx);
		return -EINVAL;
	}
	/* Every PDU times out after this (checked in iscsi_service()). */
	iscsi_set_timeout(ctx, secs < 1 ? 1 : secs);
	/* The reactor reconnects itself: libiscsi's automatic reconnect parks
	 * PDUs in a shadow context where its timeouts never fire and where
	 * they cannot be cancelled, so an I/O could outlive its deadline
	 * (and its caller's buffers) forever. */
	iscsi_set_noautoreconnect(ctx, 1);
	/* A peer that stops ACKing for this long is dead: drop the socket and
	 * go through the reconnect path instead of waiting for TCP's ~15 min. */
	iscsi_set_tcp_user_timeout(ctx, (int)c->timeout_ms);
	iscsi_set_tcp_syncnt(ctx, 3);
	/* Level 1 (errors) at least: they name the cause of a failed login
	 * that iscsi_get_error() has overwritten by then. */
	iscsi_set_log_level(ctx, dbg && atoi(dbg) > 1 ? atoi(dbg) : 1);
	iscsi_set_log_fn(ctx, log_to_mp);
	*out = ctx;
	return 0;
}

static void gen_initiator(char *buf, size_t len)
{
	char host[64] = "localhost";
	unsigned long n = __atomic_add_fetch(&open_counter, 1, __ATOMIC_RELAXED);

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	/* IQNs allow lower-case letters, digits, '-', '.' (and ':'). */
	for (char *s = host; *s; s++) {
		*s = (char)tolower((unsigned char)*s);
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.')
			*s = '-';
	}
	snprintf(buf, len, "iqn.2026-11.org.vmfs:%s-%ld-%lu", host,
		 (long)getpid(), n);
}

int isc_conf_init(struct isc_conf *c, const char *spec,
		  const struct mp_open_opts *o)
{
	struct iscsi_context *tmp;
	struct iscsi_url *url;
	uint32_t rnd;
	int ret = 0;

	memset(c, 0, sizeof(*c));
	snprintf(c->url, sizeof(c->url), "%s", spec);
	if (o && o->initiator && *o->initiator)
		snprintf(c->initiator, sizeof(c->initiator), "%s", o->initiator);
	else
		gen_initiator(c->initiator, sizeof(c->initiator));
	c->timeout_ms = o && o->timeout_ms ? o->timeout_ms : ISC_DEFAULT_TIMEOUT_MS;
	c->failfast = o && (o->flags & MP_OPEN_PATH_FAILFAST_);
	c->nop_interval_ms = o && o->nop_interval_ms ? o->nop_interval_ms :
						       ISC_DEFAULT_NOP_MS;
	c->nop_timeout_ms = o && o->nop_timeout_ms ? o->nop_timeout_ms :
						     ISC_DEFAULT_NOP_MS;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
	c->isid = rnd & 0xffffff;

	/* iscsi_parse_full_url() reports errors through a context. */
	tmp = iscsi_create_context(c->initiator);
	if (!tmp)
		return -ENOMEM;
	url = iscsi_parse_full_url(tmp, spec);
	if (!url) {
		mp_log("%s: bad iSCSI URL (%s); expected %s", spec,
		       iscsi_get_error(tmp), ISCSI_URL_SYNTAX);
		ret = -MP_E_SPEC;
		goto destroy_tmp;
	}
	snprintf(c->portal, sizeof(c->portal), "%s", url->portal);
	snprintf(c->target, sizeof(c->target), "%s", url->target);
	snprintf(c->user, sizeof(c->user), "%s", url->user);
	snprintf(c->passwd, sizeof(c->passwd), "%s", url->passwd);
	c->lun = url->lun;
	iscsi_destroy_url(url);
destroy_tmp:
	iscsi_destroy_context(tmp);
	return ret;
}

/* libiscsi reports login failures only as text. */
static int login_errno(const char *msg)
{
	if (strstr(msg, "refused"))
		return -ECONNREFUSED;
	if (strstr(msg, "not found") || strstr(msg, "Not Found") ||
	    strstr(msg, "not exist"))
		return -ENOENT;
	if (strstr(msg, "uthori") || strstr(msg, "uthenticat"))
		return -EACCES;
	if (strstr(msg, "timed out") || strstr(msg, "timeout"))
		return -ETIMEDOUT;
	if (strstr(msg, "unreachable") || strstr(msg, "No route"))
		return -EHOSTUNREACH;
	return -EIO;
}

/* ---- identity ------------------------------------------------------------- */

/* Copy with leading and trailing blanks removed (INQUIRY pads with spaces). */
static void copy_trimmed(char *dst, size_t len, const char *src)
{
	size_t n;

	while (*src == ' ')
		src++;
	n = strlen(src);
	while (n && (src[n - 1] == ' ' || src[n - 1] == '\0'))
		n--;
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void hex_id(char *dst, size_t len, const char *prefix,
		   const struct scsi_inquiry_device_designator *d)
{
	size_t o = (size_t)snprintf(dst, len, "%s", prefix);

	for (int i = 0; i < d->designator_length && o + 3 <= len; i++)
		o += (size_t)snprintf(dst + o, len - o, "%02x",
				      (unsigned char)d->designator[i]);
}

static void t10_id(char *dst, size_t len,
		   const struct scsi_inquiry_device_designator *d)
{
	size_t o = (size_t)snprintf(dst, len, "t10.");
	bool blank = false;

	for (int i = 0; i < d->designator_length && o + 2 <= len; i++) {
		unsigned char ch = (unsigned char)d->designator[i];

		if (ch == ' ' || !isgraph(ch)) {
			blank = true;
			continue;
		}
		if (blank && o > 4)
			dst[o++] = '_';
		blank = false;
		dst[o++] = (char)ch;
	}
	dst[o] = '\0';
}

/* VPD 0x83: prefer NAA (the longest), then EUI-64, then T10 vendor id, all
 * of the logical unit (not of a port). */
static bool pick_designator(const struct scsi_inquiry_device_identification *di,
			    char *id, size_t len)
{
	const struct scsi_inquiry_device_designator *d, *naa = NULL, *eui = NULL,
						    *t10 = NULL;

	for (d = di->designators; d; d = d->next) {
		if (d->association != SCSI_ASSOCIATION_LOGICAL_UNIT ||
		    d->designator_length <= 0)
			continue;
		switch (d->designator_type) {
		case SCSI_DESIGNATOR_TYPE_NAA:
			if (!naa || d->designator_length > naa->designator_length)
				naa = d;
			break;
		case SCSI_DESIGNATOR_TYPE_EUI_64:
			if (!eui)
				eui = d;
			break;
		case SCSI_DESIGNATOR_TYPE_T10_VENDORT_ID:
			if (!t10)
				t10 = d;
			break;
		default:
			break;
		}
	}
	if (naa)
		hex_id(id, len, "naa.", naa);
	else if (eui)
		hex_id(id, len, "eui.", eui);
	else if (t10)
		t10_id(id, len, t10);
	return naa || eui || t10;
}

static void probe_identity(struct iscsi_context *ctx, const struct isc_conf *c,
			   struct mp_lun_info *info)
{
	struct scsi_task *task;
	int tries = 0;

	do
		task = iscsi_inquiry_sync(ctx, c->lun, 1,
					  SCSI_INQUIRY_PAGECODE_UNIT_SERIAL_NUMBER,
					  255);
	while (sync_again(&task, &tries));
	if (sync_result(task) == 0) {
		struct scsi_inquiry_unit_serial_number *sn =
			scsi_datain_unmarshall(task);

		if (sn && sn->usn)
			copy_trimmed(info->serial, sizeof(info->serial), sn->usn);
	}
	if (task)
		scsi_free_scsi_task(task);

	tries = 0;
	do
		task = iscsi_inquiry_sync(ctx, c->lun, 1,
					  SCSI_INQUIRY_PAGECODE_DEVICE_IDENTIFICATION,
					  1024);
	while (sync_again(&task, &tries));
	if (sync_result(task) == 0) {
		struct scsi_inquiry_device_identification *di =
			scsi_datain_unmarshall(task);

		if (di)
			pick_designator(di, info->id, sizeof(info->id));
	}
	if (task)
		scsi_free_scsi_task(task);
	if (!info->id[0])
		snprintf(info->id, sizeof(info->id), "iscsi.%.80s.%d", c->target,
			 c->lun);
}

/* ---- geometry and limits -------------------------------------------------- */

static int probe_capacity(struct iscsi_context *ctx, const struct isc_conf *c,
			  struct mp_lun_info *info)
{
	struct scsi_task *task;
	int tries = 0, ret;

	do
		task = iscsi_readcapacity16_sync(ctx, c->lun);
	while (sync_again(&task, &tries));
	ret = sync_result(task);
	if (ret == 0) {
		struct scsi_readcapacity16 *rc = scsi_datain_unmarshall(task);

		if (!rc) {
			ret = -EIO;
			goto free_task;
		}
		info->logical_sector = rc->block_length;
		info->physical_sector = rc->block_length << (rc->lbppbe & 15);
		info->capacity = (rc->returned_lba + 1) * rc->block_length;
	} else if (ret == -EOPNOTSUPP) {
		/* A target without READ CAPACITY(16): small and 512n. */
		scsi_free_scsi_task(task);
		task = iscsi_readcapacity10_sync(ctx, c->lun, 0, 0);
		ret = sync_result(task);
		if (ret == 0) {
			struct scsi_readcapacity10 *rc = scsi_datain_unmarshall(task);

			if (!rc) {
				ret = -EIO;
				goto free_task;
			}
			info->logical_sector = rc->block_size;
			info->physical_sector = rc->block_size;
			info->capacity = ((uint64_t)rc->lba + 1) * rc->block_size;
		}
	}
	if (ret)
		mp_log("%s: READ CAPACITY failed: %s", c->url, mp_strerror(ret));
free_task:
	if (task)
		scsi_free_scsi_task(task);
	return ret;
}

/*
 * Knobs for tests, so that code paths tgt would not reach still run:
 *   MP_ISCSI_TEST_LIMIT=N       pretend the target takes at most N blocks
 *                               per READ/WRITE/UNMAP/WRITE SAME command
 *                               (tgt has no limits: requests never split);
 *   MP_ISCSI_TEST_WRITE_SAME=1  discard with WRITE SAME(16) + UNMAP even if
 *                               the target has UNMAP.
 */
static void test_overrides(struct isc_limits *lim)
{
	const char *s = getenv("MP_ISCSI_TEST_LIMIT");
	unsigned long n = s ? strtoul(s, NULL, 0) : 0;

	if (n && n <= UINT32_MAX) {
		lim->max_xfer_blocks = (uint32_t)n;
		lim->max_unmap = (uint32_t)n;
		lim->max_unmap_desc = 2;
		lim->max_ws = n;
	}
	s = getenv("MP_ISCSI_TEST_WRITE_SAME");
	if (s && *s == '1' && lim->lbpws)
		lim->lbpu = false;
}

static void probe_vpd_limits(struct iscsi_context *ctx, const struct isc_conf *c,
			     struct isc_limits *lim, unsigned *max_cmp,
			     bool *lbprz)
{
	struct scsi_task *task;
	int tries = 0;

	do
		task = iscsi_inquiry_sync(ctx, c->lun, 1,
					  SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255);
	while (sync_again(&task, &tries));
	if (sync_result(task) == 0) {
		struct scsi_inquiry_block_limits *bl = scsi_datain_unmarshall(task);

		if (bl) {
			*max_cmp = bl->max_cmp;
			lim->max_xfer_blocks = bl->max_xfer_len;
			lim->max_unmap = bl->max_unmap;
			lim->max_unmap_desc = bl->max_unmap_bdc;
			lim->max_ws = bl->max_ws_len;
		}
	}
	if (task)
		scsi_free_scsi_task(task);

	tries = 0;
	do
		task = iscsi_inquiry_sync(ctx, c->lun, 1,
					  SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING,
					  255);
	while (sync_again(&task, &tries));
	if (sync_result(task) == 0) {
		struct scsi_inquiry_logical_block_provisioning *lbp =
			scsi_datain_unmarshall(task);

		if (lbp) {
			lim->lbpu = lbp->lbpu;
			lim->lbpws = lbp->lbpws;
			*lbprz = lbp->lbprz;
		}
	}
	if (task)
		scsi_free_scsi_task(task);
	test_overrides(lim);
}

/* ---- capability probes ---------------------------------------------------- */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* COMPARE AND WRITE built by hand: libiscsi versions disagree on whether
 * the NUMBER OF LOGICAL BLOCKS they put in the CDB counts the data-out
 * buffer (compare + write) or one half of it. */
struct scsi_task *isc_caw_task(uint64_t lba, uint32_t nblocks, uint32_t bytes)
{
	unsigned char cdb[16] = { OP_COMPARE_AND_WRITE };

	for (int i = 0; i < 8; i++)
		cdb[2 + i] = (unsigned char)(lba >> (56 - 8 * i));
	cdb[13] = (unsigned char)nblocks;
	return scsi_create_task(16, cdb, SCSI_XFER_WRITE, (int)bytes);
}

/* 1: ATS works, 0: refused, -1: could not tell (reservation conflict). */
static int probe_ats(struct iscsi_context *ctx, const struct isc_conf *c,
		     const struct mp_lun_info *info)
{
	uint32_t bs = info->logical_sector;
	uint64_t lba = info->capacity / bs - 1;
	struct scsi_task *rd = NULL, *caw = NULL;
	unsigned char *buf = NULL;
	int ret = -1;

	buf = malloc(2 * (size_t)bs);
	if (!buf)
		goto out;
	for (int i = 0; i < PROBE_CONFLICT_TRIES; i++) {
		struct iscsi_data d = { .size = 2 * (size_t)bs, .data = buf };
		int r, tries = 0;

		do
			rd = iscsi_read16_sync(ctx, c->lun, lba, bs, (int)bs,
					       0, 0, 0, 0, 0);
		while (sync_again(&rd, &tries));
		r = sync_result(rd);
		if (r == 0 && rd->datain.size >= (int)bs) {
			memcpy(buf, rd->datain.data, bs);
			memcpy(buf + bs, rd->datain.data, bs);
			caw = isc_caw_task(lba, 1, 2 * bs);
			if (!caw)
				goto out;
			caw = iscsi_scsi_command_sync(ctx, c->lun, caw, &d);
			r = sync_result(caw);
			if (r == 0 || r == -MP_E_MISCOMPARE) {
				ret = 1;
				goto out;
			}
		}
		if (r != -MP_E_RESCONFLICT) {
			const struct scsi_task *t = caw ? caw : rd;

			mp_log("%s: COMPARE AND WRITE probe: %s (status 0x%x, "
			       "sense %x/%02x/%02x); not using ATS", c->url,
			       mp_strerror(r), t ? t->status : -1,
			       t ? t->sense.key : 0,
			       t ? (t->sense.ascq >> 8) & 0xff : 0,
			       t ? t->sense.ascq & 0xff : 0);
			ret = 0;
			goto out;
		}
		/* Someone holds a reservation: wait for its release. */
		if (rd)
			scsi_free_scsi_task(rd);
		if (caw)
			scsi_free_scsi_task(caw);
		rd = caw = NULL;
		sleep_ms(100);
	}
	mp_log("%s: COMPARE AND WRITE probe kept meeting a reservation; "
	       "not using ATS", c->url);
out:
	if (rd)
		scsi_free_scsi_task(rd);
	if (caw)
		scsi_free_scsi_task(caw);
	free(buf);
	return ret > 0;
}

/* REPORT SUPPORTED OPERATION CODES for one opcode: 1 yes, 0 no, -1 unknown */
static int rsoc_supported(struct iscsi_context *ctx, int lun, int opcode)
{
	struct scsi_task *task;
	int tries = 0, ret = -1;

	do
		task = iscsi_report_supported_opcodes_sync(
			ctx, lun, 0, SCSI_REPORT_SUPPORTING_OPCODE, opcode, 0, 64);
	while (sync_again(&task, &tries));
	if (sync_result(task) == 0) {
		struct scsi_report_supported_op_codes_one_command *oc =
			scsi_datain_unmarshall(task);

		/* SPC-4 SUPPORT: 1 not supported, 3 supported (standard),
		 * 5 supported (vendor specific), 0 data not available. */
		if (oc && (oc->support == 3 || oc->support == 5))
			ret = 1;
		else if (oc && oc->support == 1)
			ret = 0;
	}
	if (task)
		scsi_free_scsi_task(task);
	return ret;
}

static bool probe_reserve6(struct iscsi_context *ctx, const struct isc_conf *c)
{
	struct scsi_task *task;
	int rs = rsoc_supported(ctx, c->lun, OP_RESERVE6);
	int rl = rsoc_supported(ctx, c->lun, OP_RELEASE6);
	int tries = 0, ret;

	if (rs >= 0 && rl >= 0)
		return rs && rl;
	/* No answer: try it.  Other hosts may see RESERVATION CONFLICT for
	 * the few hundred microseconds we hold it; they retry. */
	do
		task = iscsi_reserve6_sync(ctx, c->lun);
	while (sync_again(&task, &tries));
	ret = sync_result(task);
	if (task)
		scsi_free_scsi_task(task);
	if (ret == -MP_E_RESCONFLICT)
		return true;   /* someone else holds one: the command exists */
	if (ret)
		return false;
	tries = 0;
	do
		task = iscsi_release6_sync(ctx, c->lun);
	while (sync_again(&task, &tries));
	ret = sync_result(task);
	if (task)
		scsi_free_scsi_task(task);
	if (ret)
		mp_log("%s: RELEASE(6) after the probe failed: %s", c->url,
		       mp_strerror(ret));
	return ret == 0;
}

static bool probe_pr(struct iscsi_context *ctx, const struct isc_conf *c)
{
	struct scsi_task *task;
	int tries = 0, ret;

	do
		task = iscsi_persistent_reserve_in_sync(
			ctx, c->lun, SCSI_PERSISTENT_RESERVE_READ_KEYS, 1024);
	while (sync_again(&task, &tries));
	ret = sync_result(task);
	if (task)
		scsi_free_scsi_task(task);
	return ret == 0;
}

static void probe_inquiry(struct iscsi_context *ctx, const struct isc_conf *c,
			  struct mp_lun_info *info)
{
	struct scsi_task *task;
	int tries = 0;

	do
		task = iscsi_inquiry_sync(ctx, c->lun, 0, 0, 255);
	while (sync_again(&task, &tries));
	if (sync_result(task) == 0) {
		struct scsi_inquiry_standard *inq = scsi_datain_unmarshall(task);

		if (inq) {
			copy_trimmed(info->vendor, sizeof(info->vendor),
				     inq->vendor_identification);
			copy_trimmed(info->product, sizeof(info->product),
				     inq->product_identification);
		}
	}
	if (task)
		scsi_free_scsi_task(task);
}

int isc_login_probe(const struct isc_conf *c, struct mp_lun_info *info,
		    struct isc_limits *lim, struct iscsi_context **out)
{
	struct iscsi_context *ctx;
	unsigned max_cmp = 0;
	bool lbprz = false;
	int ret;

	ret = isc_ctx_new(c, &ctx);
	if (ret)
		return ret;
	isc_errors_begin();
	ret = iscsi_full_connect_sync(ctx, c->portal, c->lun);
	if (ret != 0) {
		const char *msg = isc_errors_end(ctx);

		ret = login_errno(msg);
		mp_log("%s: login as %s failed: %s", c->url, c->initiator, msg);
		goto destroy_ctx;
	}
	isc_errors_end(ctx);
	ret = probe_capacity(ctx, c, info);
	if (ret)
		goto logout;
	if (!info->logical_sector || info->logical_sector % 512 ||
	    info->capacity < info->logical_sector) {
		mp_log("%s: unusable geometry: %u-byte blocks, %llu bytes",
		       c->url, info->logical_sector,
		       (unsigned long long)info->capacity);
		ret = -EIO;
		goto logout;
	}
	lim->block = info->logical_sector;
	probe_inquiry(ctx, c, info);
	probe_identity(ctx, c, info);
	probe_vpd_limits(ctx, c, lim, &max_cmp, &lbprz);

	info->caps = MP_CAP_FUA;
	if (lim->lbpu || lim->lbpws)
		info->caps |= MP_CAP_DISCARD | (lbprz ? MP_CAP_DISCARD_ZEROES : 0);
	if (max_cmp > 0 && probe_ats(ctx, c, info)) {
		info->caps |= MP_CAP_ATS;
		info->max_caw_sectors = max_cmp;
	}
	if (probe_reserve6(ctx, c))
		info->caps |= MP_CAP_RESERVE6;
	if (probe_pr(ctx, c))
		info->caps |= MP_CAP_PR;
	snprintf(info->backend, sizeof(info->backend), "iscsi");
	*out = ctx;
	return 0;

logout:
	isc_ctx_logout_destroy(ctx);
	return ret;
destroy_ctx:
	iscsi_destroy_context(ctx);
	return ret;
}

void isc_ctx_logout_destroy(struct iscsi_context *ctx)
{
	if (!ctx)
		return;
	if (iscsi_is_logged_in(ctx)) {
		/* New PDUs take the new timeout: a dead target costs ~1 s. */
		iscsi_set_timeout(ctx, 1);
		iscsi_logout_sync(ctx);
	}
	iscsi_destroy_context(ctx);
}
