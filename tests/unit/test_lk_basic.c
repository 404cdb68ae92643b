/*
 * test_lk_basic.c - the lock manager with several hosts in one process,
 * each with its own LUN handle on one file (the emulated compare-and-write
 * is atomic between handles).  Host failures are made with the fault
 * backend: a host whose every I/O fails is a dead host to the others.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "lockmgr/lk.h"
#include "tests/unit/testutil.h"

#define LUN_SIZE (4u << 20)
/* Long enough that a loaded CI disk does not stall a beat past the fence
 * deadline; short enough for a test. */
#define INTERVAL 250
#define DEAD 2500
#define LOCKS_OFF (256u << 10)

static char lunpath[256];
static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
				  14, 15, 16 };

struct host {
	mp_lun *lun;
	lk_volume *v;
	char name[32];
	int recovered;          /* recovery callbacks run */
	struct lk_dead_host last_dead;
	int events[8];
	uint64_t fenced_ns;
};

#define ATOMIC(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int recover_cb(void *arg, const struct lk_dead_host *h)
{
	struct host *me = arg;

	__atomic_add_fetch(&me->recovered, 1, __ATOMIC_SEQ_CST);
	me->last_dead = *h;
	return 0;
}

static void event_cb(void *arg, enum lk_event ev)
{
	struct host *me = arg;

	if (ev == LK_EV_FENCED)
		__atomic_store_n(&me->fenced_ns, now_ns(), __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&me->events[ev], 1, __ATOMIC_SEQ_CST);
}

static unsigned fence_ms;   /* for the next host_up; 0 = default */
static unsigned hb_interval_ms, hb_dead_ms;   /* the same */

/* Hosts live here, not on a test's stack: a failed assertion leaves the
 * test function early, and the hosts' threads must not write into a dead
 * frame.  The per-test teardown stops whatever is still up. */
static struct host pool[4];

static struct host *host_up(const char *name, const char *fault)
{
	char spec[512];
	struct lk_join_opts o = { 0 };
	struct host *h = NULL;
	int ret;

	for (int i = 0; i < 4 && !h; i++)
		if (!pool[i].v)
			h = &pool[i];
	assert_non_null(h);
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	if (fault)
		snprintf(spec, sizeof(spec), "fault:%s:%s", fault, lunpath);
	else
		snprintf(spec, sizeof(spec), "%s", lunpath);
	assert_int_equal(mp_lun_open(spec, NULL, &h->lun), 0);
	assert_int_equal(lk_open(h->lun, 0, &h->v), 0);
	memset(o.host_uuid, name[0], 16);
	o.host_name = h->name;
	o.journal_off = 1000 + (uint64_t)name[0];
	o.recover = recover_cb;
	o.recover_arg = h;
	o.event = event_cb;
	o.event_arg = h;
	o.fence_ms = fence_ms;
	o.interval_ms = hb_interval_ms;
	o.dead_ms = hb_dead_ms;
	ret = lk_join(h->v, &o);
	if (ret)
		fail_msg("join %s: %s", name, lk_strerror(ret));
	return h;
}

static void host_down(struct host *h)
{
	lk_close(h->v);
	mp_lun_close(h->lun);
	h->v = NULL;
	h->lun = NULL;
}

/* After each test: close what a failed test left open. */
static int test_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 4; i++) {
		if (!pool[i].v)
			continue;
		/* lock handles leak here on failure; their memory is small */
		host_down(&pool[i]);
	}
	fence_ms = 0;
	hb_interval_ms = hb_dead_ms = 0;
	return 0;
}

static uint64_t lock_off(unsigned i)
{
	return LOCKS_OFF + (uint64_t)i * 1024;
}

static int setup(void **state)
{
	struct lk_format_params p = { .slots = 16, .interval_ms = INTERVAL,
				      .dead_ms = DEAD };
	mp_lun *lun;

	(void)state;
	tu_make_file(lunpath, sizeof(lunpath), "lk_basic", LUN_SIZE);
	memcpy(p.uuid, uuid, 16);
	assert_int_equal(mp_lun_open(lunpath, NULL, &lun), 0);
	assert_int_equal(lk_format(lun, 0, &p), 0);
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(lk_lock_format(lun, lock_off(i), uuid), 0);
	mp_lun_close(lun);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(lunpath);
	return 0;
}

static void test_join_leave(void **state)
{
	struct host *a, *b;
	struct lk_vol_info ia, ib;

	(void)state;
	a = host_up("alpha", NULL);
	b = host_up("bravo", NULL);
	lk_get_info(a->v, &ia);
	lk_get_info(b->v, &ib);
	assert_true(ia.joined && ib.joined);
	assert_int_not_equal(ia.slot, ib.slot);
	assert_int_equal(ia.method, LK_METHOD_EMULATED);
	assert_int_equal(ia.interval_ms, INTERVAL);
	assert_int_equal(ia.fence_ms, DEAD - 2 * INTERVAL);
	usleep(3 * INTERVAL * 1000);
	lk_get_info(a->v, &ia);
	assert_true(ia.beats >= 2);
	assert_int_equal(lk_state(a->v), 0);
	host_down(a);
	host_down(b);
}

static void test_exclusive(void **state)
{
	struct host *a, *b;
	struct lk_lock_info li;
	lk_lock *la, *lb;

	(void)state;
	a = host_up("alpha", NULL);
	b = host_up("bravo", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(0), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(0), &lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_check(la), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);   /* again: fine */
	assert_int_equal(lk_acquire(lb, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_acquire(lb, LK_SHARED, 300), -EBUSY);
	/* the holder is named */
	assert_int_equal(lk_lock_info(lb, &li), 0);
	assert_int_equal(li.mode, LK_EXCL);
	assert_int_equal(li.nholders, 1);
	assert_string_equal(li.holders[0].name, "alpha");
	assert_int_equal(li.holders[0].status, LK_HOST_LIVE);
	assert_int_equal(lk_release(la), 0);
	assert_int_equal(lk_release(la), -LK_E_NOTHELD);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 0), 0);
	assert_false(lk_cache_valid(lb));
	assert_int_equal(lk_release(lb), 0);
	/* b again, nobody in between: its cache is still good */
	assert_int_equal(lk_acquire(lb, LK_EXCL, 0), 0);
	assert_true(lk_cache_valid(lb));
	assert_int_equal(lk_release(lb), 0);
	/* a took it in between: b's cache is not */
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_release(la), 0);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 0), 0);
	assert_false(lk_cache_valid(lb));
	lk_lock_close(lb);   /* releases */
	lk_lock_close(la);
	host_down(a);
	host_down(b);
}

/* The record as our last compare-and-write left it is the compare image
 * of our next acquire or release: no read of the sector first while
 * nobody else touched it; a record another host moved meanwhile is
 * judged afresh (the compare-and-write fails and hands it back). */
static void test_record_image(void **state)
{
	struct host *a, *b;
	struct mp_lun_stats s0, s1;
	struct lk_lock_info li;
	lk_lock *la, *lb;

	(void)state;
	a = host_up("alpha", NULL);
	b = host_up("bravo", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(3), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(3), &lb), 0);
	/* first acquire: no image yet, it reads */
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_release(la), 0);
	mp_lun_get_stats(a->lun, &s0);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
		assert_true(lk_cache_valid(la));
		assert_int_equal(lk_release(la), 0);
	}
	mp_lun_get_stats(a->lun, &s1);
	/* one compare-and-write each, no reads (heartbeats of this host
	 * may add a write, never a read of the lock) */
	assert_int_equal(s1.caws - s0.caws, 20);
	assert_true(s1.reads - s0.reads <= 2);
	/* bravo takes and gives it back: alpha's image is stale */
	assert_int_equal(lk_acquire(lb, LK_EXCL, 0), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_release(lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_false(lk_cache_valid(la));   /* bravo held it between */
	/* bravo cannot have it now; alpha's release reads nothing */
	assert_int_equal(lk_acquire(lb, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_lock_info(la, &li), 0);
	assert_int_equal(li.mode, LK_EXCL);
	assert_int_equal(li.nholders, 1);
	assert_int_equal(lk_release(la), 0);
	/* shared: bravo joins alpha's shared hold behind alpha's image */
	assert_int_equal(lk_acquire(la, LK_SHARED, 0), 0);
	assert_int_equal(lk_acquire(lb, LK_SHARED, 0), 0);
	assert_int_equal(lk_release(la), 0);    /* its image lacks bravo */
	assert_int_equal(lk_lock_info(lb, &li), 0);
	assert_int_equal(li.mode, LK_SHARED);
	assert_int_equal(li.nholders, 1);       /* bravo's hold survived */
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_release(lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_release(la), 0);
	lk_lock_close(la);
	lk_lock_close(lb);
	host_down(a);
	host_down(b);
}

struct spinner {
	lk_lock *l;
	int stop;                   /* atomic */
	unsigned rounds;
	int err;
};

static void *spin_main(void *arg)
{
	struct spinner *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		s->err = lk_acquire(s->l, LK_EXCL, 10000);
		if (s->err)
			break;
		s->rounds++;
		s->err = lk_release(s->l);
		if (s->err)
			break;
	}
	return NULL;
}

struct waiter {
	lk_lock *l;
	unsigned timeout_ms;
	int ret;
};

static void *wait_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = lk_acquire(w->l, LK_EXCL, w->timeout_ms);
	return NULL;
}

/* Until the record of l shows a waiter for exclusive use (2 s at most). */
static void wait_marked(lk_lock *l, struct lk_lock_info *li)
{
	for (int i = 0; ; i++) {
		assert_int_equal(lk_lock_info(l, li), 0);
		if (li->waiter_mode == LK_EXCL)
			return;
		if (i == 200)
			fail_msg("bravo never marked itself as the waiter");
		usleep(10000);
	}
}

/*
 * A host blocked by a live holder marks itself as the record's waiter
 * (version unchanged); the holder's release hands the lock over to it,
 * which it finds at its next look; a waiter that gives up takes its mark
 * away.  With hand-over, a host gets a lock that another takes and
 * releases in a tight loop (without it, its polls would almost never find
 * the lock free).
 */
static void test_handover(void **state)
{
	struct host *a, *b;
	struct lk_lock_info li;
	struct spinner sp = { 0 };
	struct waiter w = { 0 };
	lk_lock *la, *lb;
	pthread_t t;
	uint64_t v0;

	(void)state;
	a = host_up("alpha", NULL);
	b = host_up("bravo", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(5), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(5), &lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_lock_wanted(la), 0);
	/* giving up takes the mark away */
	assert_int_equal(lk_acquire(lb, LK_EXCL, 300), -EBUSY);
	assert_int_equal(lk_lock_info(la, &li), 0);
	assert_int_equal(li.waiter_mode, LK_FREE);
	assert_int_equal(lk_lock_wanted(la), 0);
	/* marked while it waits; the version stays */
	v0 = li.version;
	w.l = lb;
	w.timeout_ms = 10000;
	assert_int_equal(pthread_create(&t, NULL, wait_main, &w), 0);
	wait_marked(la, &li);
	assert_string_equal(li.waiter.name, "bravo");
	assert_int_equal(li.version, v0);
	assert_int_equal(lk_lock_wanted(la), 1);
	/* released: handed over, and our release knows it was wanted */
	assert_int_equal(lk_release(la), 0);
	assert_true(lk_release_wanted(la));
	assert_int_equal(lk_lock_info(la, &li), 0);
	assert_int_equal(li.mode, LK_EXCL);
	assert_int_equal(li.nholders, 1);
	assert_string_equal(li.holders[0].name, "bravo");
	assert_int_equal(li.waiter_mode, LK_FREE);
	assert_int_equal(li.version, v0 + 1);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, 0);
	assert_int_equal(lk_check(lb), 0);
	assert_true(lk_waited(lb));
	assert_false(lk_cache_valid(lb));
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_release(lb), 0);
	/* nobody waited for bravo's hold (alpha's try does not mark) */
	assert_false(lk_release_wanted(lb));
	/* alpha takes and releases it without a pause; bravo gets it */
	sp.l = la;
	assert_int_equal(pthread_create(&t, NULL, spin_main, &sp), 0);
	usleep(100000);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 10000), 0);
	assert_int_equal(lk_check(lb), 0);
	usleep(50000);
	assert_int_equal(lk_release(lb), 0);   /* to alpha, waiting now */
	usleep(100000);
	__atomic_store_n(&sp.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_int_equal(sp.err, 0);
	assert_true(sp.rounds > 1);
	lk_lock_close(la);
	lk_lock_close(lb);
	host_down(a);
	host_down(b);
}

/*
 * An acquire that fails after marking its host as the waiter (here: its
 * reads of the record fail) leaves the mark; the holder's release then
 * hands the lock to that host, which does not know it holds it.  Closing
 * the handle settles it: the hold is released (without that, alpha could
 * never have the lock again while bravo lives).
 */
static void test_mark_left(void **state)
{
	struct mp_fault_rule fr = { .op = MP_OP_READ, .action = MP_FAULT_FAIL,
				    .off = lock_off(6), .len = 512 };
	struct host *a, *b;
	struct lk_lock_info li;
	struct waiter w = { 0 };
	lk_lock *la, *lb;
	pthread_t t;

	(void)state;
	a = host_up("alpha", NULL);
	b = host_up("bravo", "");
	assert_int_equal(lk_lock_open(a->v, lock_off(6), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(6), &lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	w.l = lb;
	w.timeout_ms = 10000;
	assert_int_equal(pthread_create(&t, NULL, wait_main, &w), 0);
	wait_marked(la, &li);
	assert_true(mp_fault_add(b->lun, &fr) >= 0);
	pthread_join(t, NULL);
	assert_int_not_equal(w.ret, 0);
	assert_int_equal(mp_fault_clear(b->lun), 0);
	/* the mark stayed; the release hands the lock to bravo */
	assert_int_equal(lk_lock_info(la, &li), 0);
	assert_int_equal(li.waiter_mode, LK_EXCL);
	assert_int_equal(lk_release(la), 0);
	assert_int_equal(lk_lock_info(la, &li), 0);
	assert_int_equal(li.nholders, 1);
	assert_string_equal(li.holders[0].name, "bravo");
	/* bravo's handle closes: the hold it never knew of goes */
	lk_lock_close(lb);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_release(la), 0);
	lk_lock_close(la);
	host_down(a);
	host_down(b);
}

/*
 * A try for a shared hold (timeout 0) does not join shared holders that
 * another live host is marked waiting behind (fs/namei.c keeps directories
 * it reads held shared by such tries; a stream of them would keep the
 * waiter out); a blocking shared acquire joins as before.  Without a
 * waiter, a try joins.
 */
static void test_try_shared_waiter(void **state)
{
	struct host *a, *b, *c;
	struct lk_lock_info li;
	struct waiter w = { 0 };
	lk_lock *la, *lb, *lc;
	pthread_t t;

	(void)state;
	a = host_up("alpha", NULL);
	b = host_up("bravo", NULL);
	c = host_up("charlie", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(7), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(7), &lb), 0);
	assert_int_equal(lk_lock_open(c->v, lock_off(7), &lc), 0);
	assert_int_equal(lk_acquire(la, LK_SHARED, 0), 0);
	assert_int_equal(lk_acquire(lc, LK_SHARED, 0), 0);   /* no waiter */
	assert_int_equal(lk_release(lc), 0);
	w.l = lb;
	w.timeout_ms = 10000;
	assert_int_equal(pthread_create(&t, NULL, wait_main, &w), 0);
	wait_marked(la, &li);
	assert_int_equal(lk_acquire(lc, LK_SHARED, 0), -EBUSY);
	assert_int_equal(lk_lock_info(la, &li), 0);
	assert_int_equal(li.nholders, 1);
	assert_int_equal(li.waiter_mode, LK_EXCL);
	assert_int_equal(lk_acquire(lc, LK_SHARED, 1000), 0);  /* joins */
	assert_int_equal(lk_release(la), 0);
	assert_int_equal(lk_release(lc), 0);                     /* hands over */
	pthread_join(t, NULL);
	assert_int_equal(w.ret, 0);
	assert_int_equal(lk_check(lb), 0);
	assert_int_equal(lk_release(lb), 0);
	lk_lock_close(la);
	lk_lock_close(lb);
	lk_lock_close(lc);
	host_down(a);
	host_down(b);
	host_down(c);
}

static void test_shared_modes(void **state)
{
	struct host *a, *b, *c;
	struct lk_lock_info li;
	lk_lock *la, *lb, *lc;

	(void)state;
	a = host_up("alpha", NULL);
	b = host_up("bravo", NULL);
	c = host_up("charlie", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(1), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(1), &lb), 0);
	assert_int_equal(lk_lock_open(c->v, lock_off(1), &lc), 0);
	/* read-only shared: many readers, no writer */
	assert_int_equal(lk_acquire(la, LK_SHARED, 0), 0);
	assert_int_equal(lk_acquire(lb, LK_SHARED, 0), 0);
	assert_int_equal(lk_acquire(lc, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_acquire(lc, LK_MULTIWRITER, 0), -EBUSY);
	assert_int_equal(lk_lock_info(lc, &li), 0);
	assert_int_equal(li.mode, LK_SHARED);
	assert_int_equal(li.nholders, 2);
	/* upgrade waits for the other reader */
	assert_int_equal(lk_convert(la, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_release(lb), 0);
	assert_int_equal(lk_convert(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_held_mode(la), LK_EXCL);
	assert_int_equal(lk_acquire(lb, LK_SHARED, 0), -EBUSY);
	/* downgrade lets readers in again */
	assert_int_equal(lk_convert(la, LK_SHARED, 0), 0);
	assert_int_equal(lk_acquire(lb, LK_SHARED, 0), 0);
	assert_int_equal(lk_release(la), 0);
	assert_int_equal(lk_release(lb), 0);
	/* multi-writer: several writers, excludes the others */
	assert_int_equal(lk_acquire(la, LK_MULTIWRITER, 0), 0);
	assert_int_equal(lk_acquire(lb, LK_MULTIWRITER, 0), 0);
	assert_int_equal(lk_acquire(lc, LK_SHARED, 0), -EBUSY);
	assert_int_equal(lk_acquire(lc, LK_MULTIWRITER, 0), 0);
	assert_int_equal(lk_lock_info(lc, &li), 0);
	assert_int_equal(li.nholders, 3);
	assert_int_equal(lk_release(la), 0);
	assert_int_equal(lk_release(lb), 0);
	assert_int_equal(lk_release(lc), 0);
	assert_int_equal(lk_lock_info(lc, &li), 0);
	assert_int_equal(li.mode, LK_FREE);
	lk_lock_close(la);
	lk_lock_close(lb);
	lk_lock_close(lc);
	host_down(a);
	host_down(b);
	host_down(c);
}

/* A host all of whose I/O fails is dead to the others: it fences itself
 * first; the lock is broken once, after recovery, within dead + interval. */
static void test_break_dead_host(void **state)
{
	struct host *a, *b, *c;
	struct lk_lock_info li;
	lk_lock *la, *lb, *lc;
	uint64_t t_dead, t_got;
	int ret;

	(void)state;
	a = host_up("alpha", "");
	b = host_up("bravo", NULL);
	c = host_up("charlie", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(2), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(2), &lb), 0);
	assert_int_equal(lk_lock_open(c->v, lock_off(2), &lc), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	/* alpha's LUN dies */
	{
		struct mp_fault_rule r = { .op = MP_FAULT_ANY_OP,
					   .action = MP_FAULT_FAIL };

		assert_true(mp_fault_add(a->lun, &r) >= 0);
	}
	t_dead = now_ns();
	assert_int_equal(lk_acquire(lb, LK_EXCL, 100), -EBUSY);
	ret = lk_acquire(lb, LK_EXCL, 3 * DEAD);
	assert_int_equal(ret, 0);
	t_got = now_ns();
	/* bravo recovered alpha exactly once, with alpha's journal */
	assert_int_equal(ATOMIC(b->recovered), 1);
	assert_int_equal(ATOMIC(c->recovered), 0);
	assert_string_equal(b->last_dead.name, "alpha");
	assert_true(b->last_dead.journal_off == 1000 + 'a');
	/* alpha fenced itself before bravo broke in */
	assert_int_equal(ATOMIC(a->events[LK_EV_FENCED]), 1);
	assert_true(ATOMIC(a->fenced_ns) != 0 && ATOMIC(a->fenced_ns) < t_got);
	assert_int_equal(lk_state(a->v), -LK_E_FENCED);
	assert_int_equal(lk_check(la), -LK_E_FENCED);
	/* broken within dead timeout + interval (+ poll slack) of the death */
	assert_true(t_got - t_dead <= (uint64_t)(DEAD + 2 * INTERVAL + 300) * 1000000);
	assert_true(t_got - t_dead >= (uint64_t)(DEAD - 2 * INTERVAL) * 1000000);
	assert_int_equal(lk_lock_info(lc, &li), 0);
	assert_string_equal(li.holders[0].name, "bravo");
	/* charlie sees the lock held by a live bravo, and alpha's slot free */
	assert_int_equal(lk_acquire(lc, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_release(lb), 0);
	lk_lock_close(lb);
	lk_lock_close(lc);
	/* alpha cannot release (fenced); it stays out */
	assert_int_equal(lk_release(la), -LK_E_FENCED);
	lk_lock_close(la);
	host_down(a);
	host_down(b);
	host_down(c);
}

/* A host declares its own heartbeat timing in its slot; the others judge it
 * by that, not by the region's default (nor by their own). */
#define OWN_INTERVAL 200
#define OWN_DEAD 1200
static void test_per_host_timing(void **state)
{
	struct lk_join_opts o = { 0 };
	struct lk_vol_info ia;
	struct host *a, *b;
	lk_lock *la, *lb;
	uint64_t t_dead, t_got;
	mp_lun *lun;
	lk_volume *v;

	(void)state;
	/* a timeout shorter than two intervals is refused */
	assert_int_equal(mp_lun_open(lunpath, NULL, &lun), 0);
	assert_int_equal(lk_open(lun, 0, &v), 0);
	o.host_name = "bad";
	o.interval_ms = 500;
	o.dead_ms = 900;
	assert_int_equal(lk_join(v, &o), -EINVAL);
	lk_close(v);
	mp_lun_close(lun);

	hb_interval_ms = OWN_INTERVAL;
	hb_dead_ms = OWN_DEAD;
	a = host_up("alpha", "");
	hb_interval_ms = hb_dead_ms = 0;
	b = host_up("bravo", NULL);
	lk_get_info(a->v, &ia);
	assert_int_equal(ia.interval_ms, OWN_INTERVAL);
	assert_int_equal(ia.dead_ms, OWN_DEAD);
	assert_true(ia.fence_ms < OWN_DEAD);
	assert_int_equal(lk_lock_open(a->v, lock_off(5), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(5), &lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	{
		struct mp_fault_rule r = { .op = MP_FAULT_ANY_OP,
					   .action = MP_FAULT_FAIL };

		assert_true(mp_fault_add(a->lun, &r) >= 0);
	}
	t_dead = now_ns();
	assert_int_equal(lk_acquire(lb, LK_EXCL, 3 * DEAD), 0);
	t_got = now_ns();
	assert_int_equal(ATOMIC(b->recovered), 1);
	/* broken by alpha's 1.2 s, well before the region's 2.5 s */
	assert_true(t_got - t_dead >= (uint64_t)(OWN_DEAD - 2 * OWN_INTERVAL) * 1000000);
	assert_true(t_got - t_dead < (uint64_t)DEAD * 1000000);
	assert_int_equal(ATOMIC(a->events[LK_EV_FENCED]), 1);
	assert_true(ATOMIC(a->fenced_ns) != 0 && ATOMIC(a->fenced_ns) < t_got);
	assert_int_equal(lk_release(lb), 0);
	lk_lock_close(lb);
	lk_lock_close(la);
	host_down(a);
	host_down(b);
}

/* A stall shorter than the dead timeout but longer than the fence deadline:
 * alpha fences, then resumes with its lock still valid; bravo never gets it. */
static void test_stall_resume(void **state)
{
	char fault[128];
	struct host *a, *b;
	lk_lock *la, *lb;

	(void)state;
	/* Fence at DEAD/2.  One beat, submitted an interval after the last
	 * good one, is held long enough to pass the fence deadline but lands
	 * well before anyone may call alpha dead: delay in (fence - interval,
	 * dead - interval), here the middle. */
	fence_ms = DEAD / 2;
	snprintf(fault, sizeof(fault), "caw,delay,ms=%u,off=512,len=%u,after=3,count=1",
		 (DEAD / 2 - INTERVAL + DEAD - INTERVAL) / 2, 16 * 512);
	a = host_up("alpha", fault);
	fence_ms = 0;
	b = host_up("bravo", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(3), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(3), &lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 2 * DEAD), -EBUSY);
	assert_int_equal(ATOMIC(a->events[LK_EV_FENCED]), 1);
	assert_int_equal(ATOMIC(a->events[LK_EV_UNFENCED]), 1);
	assert_int_equal(ATOMIC(a->events[LK_EV_LOST]), 0);
	assert_int_equal(lk_check(la), 0);
	assert_int_equal(ATOMIC(b->recovered), 0);
	assert_int_equal(lk_release(la), 0);
	lk_lock_close(la);
	lk_lock_close(lb);
	host_down(a);
	host_down(b);
}

/* A stall longer than the dead timeout: bravo recovers alpha; alpha's late
 * beat finds its slot recovered, drops its locks, joins again under a new
 * generation, and its old hold stays lost. */
static void test_stall_lost(void **state)
{
	char fault[128];
	struct host *a, *b;
	struct lk_vol_info before, after;
	lk_lock *la, *lb;

	(void)state;
	snprintf(fault, sizeof(fault), "caw,delay,ms=%u,off=512,len=%u,after=3,count=1",
		 DEAD + 1000, 16 * 512);
	a = host_up("alpha", fault);
	b = host_up("bravo", NULL);
	lk_get_info(a->v, &before);
	assert_int_equal(lk_lock_open(a->v, lock_off(4), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(4), &lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 3 * DEAD), 0);
	assert_int_equal(ATOMIC(b->recovered), 1);
	assert_true(ATOMIC(a->fenced_ns) != 0);
	/* wait for alpha's delayed beat to land and find the slot gone */
	for (int i = 0; i < 100 && !ATOMIC(a->events[LK_EV_REJOINED]); i++)
		usleep(50000);
	assert_int_equal(ATOMIC(a->events[LK_EV_LOST]), 1);
	assert_int_equal(ATOMIC(a->events[LK_EV_REJOINED]), 1);
	lk_get_info(a->v, &after);
	assert_true(after.gen != before.gen || after.slot != before.slot);
	assert_int_equal(lk_state(a->v), 0);
	/* the old hold is gone for good */
	assert_int_equal(lk_held_mode(la), LK_FREE);
	assert_int_equal(lk_check(la), -LK_E_NOTHELD);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_release(lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_release(la), 0);
	lk_lock_close(la);
	lk_lock_close(lb);
	host_down(a);
	host_down(b);
}

/* A timed-out compare-and-write that was applied must not be taken for a
 * failure: the lock is ours after all. */
static void test_caw_timeout_applied(void **state)
{
	char fault[128];
	struct host *a, *b;
	lk_lock *la, *lb;

	(void)state;
	snprintf(fault, sizeof(fault), "caw,failafter,off=%u,len=512,count=1",
		 (unsigned)lock_off(5));
	a = host_up("alpha", fault);
	b = host_up("bravo", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(5), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(5), &lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	assert_int_equal(lk_check(la), 0);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 0), -EBUSY);
	assert_int_equal(lk_release(la), 0);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 0), 0);
	lk_lock_close(la);
	lk_lock_close(lb);
	host_down(a);
	host_down(b);
}

static void test_bad_region(void **state)
{
	mp_lun *lun;
	lk_volume *v;
	char p2[256];

	(void)state;
	assert_int_equal(mp_lun_open(lunpath, NULL, &lun), 0);
	/* not a region */
	assert_int_equal(lk_open(lun, 512 * 100, &v), -LK_E_BADMAGIC);
	assert_int_equal(lk_open(lun, 100, &v), -EINVAL);
	mp_lun_close(lun);
	/* a corrupted header is refused with a checksum error */
	tu_make_file(p2, sizeof(p2), "lk_bad", 1 << 20);
	assert_int_equal(mp_lun_open(p2, NULL, &lun), 0);
	{
		struct lk_format_params p = { .slots = 4, .interval_ms = 100,
					      .dead_ms = 1000 };
		unsigned char *b = tu_alloc(512);

		assert_int_equal(lk_format(lun, 0, &p), 0);
		assert_int_equal(mp_lun_pread(lun, b, 512, 0), 512);
		b[0x10] ^= 1;
		assert_int_equal(mp_lun_pwrite(lun, b, 512, 0, 0), 512);
		assert_int_equal(lk_open(lun, 0, &v), -LK_E_CHECKSUM);
		free(b);
		p.dead_ms = 150;   /* less than 2 intervals */
		assert_int_equal(lk_format(lun, 0, &p), -EINVAL);
	}
	mp_lun_close(lun);
	unlink(p2);
}

/*
 * lk_abandon: alpha gives the volume up while it holds a lock, its LUN
 * still working.  Nothing of alpha's moves any more: no beat, no release,
 * and lk_leave frees neither the slot nor the hold, so bravo must recover
 * alpha (its callback runs: the file system replays there) before it gets
 * the lock.  A freed slot would have let bravo drop the hold unrecovered.
 */
static void test_abandon(void **state)
{
	struct host *a, *b;
	struct lk_vol_info ia, ib;
	lk_lock *la, *lb;

	(void)state;
	a = host_up("alpha", NULL);
	b = host_up("bravo", NULL);
	assert_int_equal(lk_lock_open(a->v, lock_off(3), &la), 0);
	assert_int_equal(lk_lock_open(b->v, lock_off(3), &lb), 0);
	assert_int_equal(lk_acquire(la, LK_EXCL, 0), 0);
	lk_abandon(a->v, "test");
	lk_abandon(a->v, "test again");
	assert_int_equal(ATOMIC(a->events[LK_EV_ABANDONED]), 1);
	assert_int_equal(lk_state(a->v), -LK_E_FENCED);
	lk_get_info(a->v, &ia);
	assert_true(ia.abandoned && ia.fenced);
	usleep(4 * INTERVAL * 1000);
	lk_get_info(a->v, &ib);
	assert_true(ib.beats <= ia.beats + 1);     /* one may have been in flight */
	assert_true(ib.fenced);
	assert_int_equal(lk_release(la), -LK_E_FENCED);
	assert_int_equal(lk_leave(a->v), -LK_E_FENCED);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 100), -EBUSY);
	assert_int_equal(lk_acquire(lb, LK_EXCL, 3 * DEAD), 0);
	assert_int_equal(ATOMIC(b->recovered), 1);
	assert_string_equal(b->last_dead.name, "alpha");
	assert_int_equal(lk_release(lb), 0);
	lk_lock_close(lb);
	lk_lock_close(la);
	host_down(a);
	host_down(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_join_leave, test_teardown),
		cmocka_unit_test_teardown(test_exclusive, test_teardown),
		cmocka_unit_test_teardown(test_record_image, test_teardown),
		cmocka_unit_test_teardown(test_handover, test_teardown),
		cmocka_unit_test_teardown(test_try_shared_waiter, test_teardown),
		cmocka_unit_test_teardown(test_mark_left, test_teardown),
		cmocka_unit_test_teardown(test_shared_modes, test_teardown),
		cmocka_unit_test_teardown(test_break_dead_host, test_teardown),
		cmocka_unit_test_teardown(test_per_host_timing, test_teardown),
		cmocka_unit_test_teardown(test_stall_resume, test_teardown),
		cmocka_unit_test_teardown(test_stall_lost, test_teardown),
		cmocka_unit_test_teardown(test_caw_timeout_applied, test_teardown),
		cmocka_unit_test_teardown(test_bad_region, test_teardown),
		cmocka_unit_test_teardown(test_abandon, test_teardown),
	};

	return cmocka_run_group_tests_name("lk_basic", tests, setup, teardown);
}
