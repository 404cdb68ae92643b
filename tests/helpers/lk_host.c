/*
 * lk_host - one host process for the lock manager's multi-process tests.
 *
 *   lk_host format SPEC SLOTS INTERVAL_MS DEAD_MS NLOCKS
 *   lk_host stress SPEC NAME SECONDS NLOCKS SEED
 *   lk_host hold   SPEC NAME MODE LOCK[,LOCK...]
 *   lk_host grab   SPEC NAME MODE TIMEOUT_MS HOLD_MS LOCK[,LOCK...]
 *
 * Layout on the LUN: the heartbeat region at 0, lock i at lock_off(i) with
 * its witness sector right after it.  Inside a critical section a host
 * writes its identity into the witness, waits, and reads it back: two
 * holders at once would find each other's identity.
 *
 * Every event goes to stdout as "<realtime ns> <name> <EVENT> ...", one
 * line each, flushed at once (the tests compare times across processes of
 * one machine).  Recoveries are also appended to $LK_RECOVERY_LOG.
 * Exit: 0 ok, 1 error, 2 mutual exclusion violated, 3 lock lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lockmgr/lk.h"

#define MAX_LOCKS 64
#define WITNESS_MAGIC 0x5449574b4c4c5654ull  /* "TVLLKWIT" */

static const char *name = "?";
static mp_lun *lun;
static lk_volume *vol;
static unsigned ss;
static volatile sig_atomic_t stop;
static struct lk_vol_info vinfo;

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("%llu %s %s\n", (unsigned long long)wall_ns(), name, buf);
	fflush(stdout);
}

static uint64_t region_bytes(void)
{
	return (uint64_t)(vinfo.slots + 1) * ss;
}

static uint64_t lock_off(unsigned i)
{
	uint64_t base = (region_bytes() + (1u << 20) - 1) & ~((uint64_t)(1u << 20) - 1);

	return base + (uint64_t)i * 2 * ss;
}

static int open_lun(const char *spec)
{
	struct mp_open_opts o = { .flags = MP_OPEN_RETRY_RESCONFLICT,
				  .resconflict_ms = 30000 };
	struct mp_lun_info in;
	int ret = mp_lun_open(spec, &o, &lun);

	if (ret) {
		fprintf(stderr, "lk_host: open %s: %s\n", spec, mp_strerror(ret));
		return ret;
	}
	mp_lun_get_info(lun, &in);
	ss = in.logical_sector;
	return 0;
}

static int recover_cb(void *arg, const struct lk_dead_host *h)
{
	const char *path = getenv("LK_RECOVERY_LOG");

	say("RECOVER %s slot=%u gen=%llu", h->name, h->slot,
	    (unsigned long long)h->gen);
	if (path) {
		char line[256];
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
		int n = snprintf(line, sizeof(line), "%s %u %llu by %s\n",
				 h->name, h->slot, (unsigned long long)h->gen,
				 name);

		if (fd >= 0) {
			if (write(fd, line, (size_t)n) != n)
				perror("recovery log");
			close(fd);
		}
	}
	return 0;
}

static void event_cb(void *arg, enum lk_event ev)
{
	static const char *const names[] = { "FENCED", "UNFENCED", "LOST",
					     "REJOINED" };

	say("%s", names[ev]);
}

static int join(const char *spec)
{
	struct lk_join_opts o = { 0 };
	int ret;

	if (open_lun(spec))
		return 1;
	ret = lk_open(lun, 0, &vol);
	if (ret) {
		fprintf(stderr, "lk_host: lk_open: %s\n", lk_strerror(ret));
		return 1;
	}
	for (size_t i = 0; i < 16; i++)
		o.host_uuid[i] = (uint8_t)(name[i % strlen(name)] + i);
	o.host_name = name;
	o.recover = recover_cb;
	o.event = event_cb;
	o.no_rejoin = true;
	ret = lk_join(vol, &o);
	if (ret) {
		fprintf(stderr, "lk_host: join: %s\n", lk_strerror(ret));
		return 1;
	}
	lk_get_info(vol, &vinfo);
	say("JOINED slot=%u gen=%llu method=%s", vinfo.slot,
	    (unsigned long long)vinfo.gen, lk_method_name(vinfo.method));
	return 0;
}

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static enum lk_mode parse_mode(const char *s)
{
	if (!strcmp(s, "excl"))
		return LK_EXCL;
	if (!strcmp(s, "shared"))
		return LK_SHARED;
	if (!strcmp(s, "mw"))
		return LK_MULTIWRITER;
	fprintf(stderr, "lk_host: mode is excl, shared or mw\n");
	exit(1);
}

static int parse_locks(const char *s, unsigned *ids)
{
	int n = 0;
	char *copy = strdup(s), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t && n < MAX_LOCKS;
	     t = strtok_r(NULL, ",", &save))
		ids[n++] = (unsigned)atoi(t);
	free(copy);
	return n;
}

/* ---- witness ----------------------------------------------------------------- */

static void witness_fill(unsigned char *b, uint64_t nonce)
{
	uint64_t m = WITNESS_MAGIC;

	memset(b, 0, ss);
	memcpy(b, &m, 8);
	memcpy(b + 8, &nonce, 8);
	snprintf((char *)b + 16, 64, "%s", name);
}

/* Claim the witness of lock i; returns 0, or 2 if someone else is in. */
static int witness_enter(unsigned i, uint64_t nonce, unsigned hold_ms)
{
	unsigned char *mine = mp_alloc_aligned(4096, ss);
	unsigned char *rd = mp_alloc_aligned(4096, ss);
	ssize_t n;
	int ret = 0;

	witness_fill(mine, nonce);
	n = mp_lun_pwrite(lun, mine, ss, lock_off(i) + ss, 0);
	if (n < 0) {
		say("WITNESS-WRITE %u %s", i, mp_strerror((int)n));
		ret = n == -MP_E_FENCED ? 0 : 1;
		goto out;
	}
	usleep(hold_ms * 1000);
	n = mp_lun_pread(lun, rd, ss, lock_off(i) + ss);
	if (n < 0) {
		say("WITNESS-READ %u %s", i, mp_strerror((int)n));
		ret = n == -MP_E_FENCED ? 0 : 1;
		goto out;
	}
	if (memcmp(rd, mine, ss)) {
		say("VIOLATION lock=%u witness holds '%.64s'", i, (char *)rd + 16);
		ret = 2;
		goto out;
	}
	memset(mine, 0, ss);
	n = mp_lun_pwrite(lun, mine, ss, lock_off(i) + ss, 0);
	if (n < 0)
		say("WITNESS-CLEAR %u %s", i, mp_strerror((int)n));
out:
	free(mine);
	free(rd);
	return ret;
}

/* ---- commands ------------------------------------------------------------------ */

static int cmd_format(char **a)
{
	struct lk_format_params p = { 0 };
	unsigned nlocks = (unsigned)atoi(a[4]);
	int ret;

	if (open_lun(a[0]))
		return 1;
	p.slots = (uint32_t)atoi(a[1]);
	p.interval_ms = (uint32_t)atoi(a[2]);
	p.dead_ms = (uint32_t)atoi(a[3]);
	memset(p.uuid, 0x5a, 16);
	ret = lk_format(lun, 0, &p);
	if (ret) {
		fprintf(stderr, "lk_host: format: %s\n", lk_strerror(ret));
		return 1;
	}
	vinfo.slots = p.slots;
	for (unsigned i = 0; i < nlocks; i++) {
		unsigned char *z = mp_alloc_aligned(4096, ss);

		ret = lk_lock_format(lun, lock_off(i), p.uuid);
		memset(z, 0, ss);
		if (!ret && mp_lun_pwrite(lun, z, ss, lock_off(i) + ss, 0) < 0)
			ret = -EIO;
		free(z);
		if (ret) {
			fprintf(stderr, "lk_host: lock format: %s\n",
				lk_strerror(ret));
			return 1;
		}
	}
	mp_lun_flush(lun);
	printf("formatted %u slots, %u locks at %llu\n", p.slots, nlocks,
	       (unsigned long long)lock_off(0));
	mp_lun_close(lun);
	return 0;
}

static int cmd_stress(char **a)
{
	unsigned seconds = (unsigned)atoi(a[2]), nlocks = (unsigned)atoi(a[3]);
	unsigned seed = (unsigned)atoi(a[4]);
	lk_lock *locks[MAX_LOCKS];
	uint64_t end;
	int rc = 0;

	if (nlocks == 0 || nlocks > MAX_LOCKS || join(a[0]))
		return 1;
	srand(seed);
	for (unsigned i = 0; i < nlocks; i++)
		lk_lock_open(vol, lock_off(i), &locks[i]);
	end = mono_ms() + seconds * 1000ull;
	while (!stop && mono_ms() < end && rc == 0) {
		unsigned i = (unsigned)rand() % nlocks;
		int ret = lk_acquire(locks[i], LK_EXCL, vinfo.dead_ms * 3);

		if (ret == -EBUSY || ret == -ETIMEDOUT)
			continue;
		if (ret == -LK_E_FENCED || ret == -LK_E_LOST) {
			say("ACQ-FAIL %u %s", i, lk_strerror(ret));
			rc = 3;
			break;
		}
		if (ret) {
			say("ACQ-ERROR %u %s", i, lk_strerror(ret));
			rc = 1;
			break;
		}
		say("ACQ %u", i);
		rc = witness_enter(i, ((uint64_t)rand() << 32) | (unsigned)rand(),
				   1 + (unsigned)rand() % 30);
		ret = lk_release(locks[i]);
		say("REL %u %s", i, lk_strerror(ret));
		if (ret && !rc)
			rc = 3;
		usleep((unsigned)(rand() % 20) * 1000);
	}
	for (unsigned i = 0; i < nlocks; i++)
		lk_lock_close(locks[i]);
	lk_close(vol);
	mp_lun_close(lun);
	say("EXIT %d", rc);
	return rc;
}

/* Hold locks and keep writing the witnesses until SIGTERM. */
static int cmd_hold(char **a)
{
	enum lk_mode mode = parse_mode(a[2]);
	unsigned ids[MAX_LOCKS];
	int n = parse_locks(a[3], ids), rc = 0;
	lk_lock *locks[MAX_LOCKS];
	unsigned char *w;
	uint64_t writes_ok = 0, writes_refused = 0;

	if (join(a[0]))
		return 1;
	for (int i = 0; i < n; i++) {
		int ret;

		lk_lock_open(vol, lock_off(ids[i]), &locks[i]);
		ret = lk_acquire(locks[i], mode, vinfo.dead_ms * 3);
		if (ret) {
			say("ACQ-ERROR %u %s", ids[i], lk_strerror(ret));
			return 1;
		}
		say("ACQ %u", ids[i]);
	}
	say("HOLDING");
	w = mp_alloc_aligned(4096, ss);
	witness_fill(w, 0);
	while (!stop) {
		for (int i = 0; i < n; i++) {
			ssize_t r;

			/* only exclusive holds own the witness */
			if (mode != LK_EXCL)
				continue;
			r = mp_lun_pwrite(lun, w, ss, lock_off(ids[i]) + ss, 0);
			if (r < 0) {
				if (writes_refused++ == 0)
					say("WRITE-REFUSED %u %s", ids[i],
					    mp_strerror((int)r));
			} else {
				writes_ok++;
				if (writes_refused)
					say("WRITE-AFTER-REFUSED %u", ids[i]);
			}
		}
		usleep(20000);
	}
	say("WRITES ok=%llu refused=%llu", (unsigned long long)writes_ok,
	    (unsigned long long)writes_refused);
	for (int i = 0; i < n; i++) {
		int ret = lk_release(locks[i]);

		say("REL %u %s", ids[i], lk_strerror(ret));
		lk_lock_close(locks[i]);
	}
	free(w);
	lk_close(vol);
	mp_lun_close(lun);
	return rc;
}

/* For each lock in turn: acquire (waiting up to TIMEOUT_MS), own the
 * witness for HOLD_MS, release.  One at a time, so racers taking the locks
 * in different orders cannot deadlock each other. */
static int cmd_grab(char **a)
{
	enum lk_mode mode = parse_mode(a[2]);
	unsigned timeout = (unsigned)atoi(a[3]), hold = (unsigned)atoi(a[4]);
	unsigned ids[MAX_LOCKS];
	int n = parse_locks(a[5], ids), rc = 0;

	if (join(a[0]))
		return 1;
	for (int i = 0; i < n && rc == 0; i++) {
		lk_lock *l;
		int ret;

		lk_lock_open(vol, lock_off(ids[i]), &l);
		ret = lk_acquire(l, mode, timeout);
		if (ret) {
			say("ACQ-FAIL %u %s", ids[i], lk_strerror(ret));
			rc = ret == -EBUSY ? 4 : 1;
		} else {
			say("ACQ %u", ids[i]);
			if (mode == LK_EXCL)
				rc = witness_enter(ids[i], (uint64_t)getpid(), hold);
			else
				usleep(hold * 1000);
			ret = lk_release(l);
			say("REL %u %s", ids[i], lk_strerror(ret));
			if (ret && !rc)
				rc = 3;
		}
		lk_lock_close(l);
	}
	lk_close(vol);
	mp_lun_close(lun);
	say("EXIT %d", rc);
	return rc;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 7 && !strcmp(argv[1], "format"))
		return cmd_format(argv + 2);
	if (argc >= 3) {
		name = argv[3];
		/* the region header tells the geometry the layout needs */
	}
	if (argc == 7 && !strcmp(argv[1], "stress"))
		return cmd_stress(argv + 2);
	if (argc == 6 && !strcmp(argv[1], "hold"))
		return cmd_hold(argv + 2);
	if (argc == 8 && !strcmp(argv[1], "grab"))
		return cmd_grab(argv + 2);
	fprintf(stderr,
		"usage: lk_host format SPEC SLOTS INTERVAL_MS DEAD_MS NLOCKS\n"
		"       lk_host stress SPEC NAME SECONDS NLOCKS SEED\n"
		"       lk_host hold SPEC NAME excl|shared|mw LOCK[,LOCK...]\n"
		"       lk_host grab SPEC NAME excl|shared|mw TIMEOUT_MS HOLD_MS "
		"LOCK[,LOCK...]\n");
	return 1;
}
