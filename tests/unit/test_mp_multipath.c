/*
 * test_mp_multipath.c - multipath devices over files: grouping by identity,
 * failover (the caller never sees path errors), device errors surfacing,
 * PDL, all paths down (APD) with timeout and with recovery, NOT READY
 * retried elsewhere, disabling paths, policies, management listing.
 *
 * Two paths are two fault: wrappers of the same file (same identity), so
 * each path can be broken on its own with mp_fault_add_path().
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
#include <json-c/json.h>

#include "multipath/mp.h"
#include "tests/unit/testutil.h"

#define LUN_SIZE (4u << 20)
#define BS 4096
static char lunpath[256], otherpath[256];

static int setup(void **state)
{
	(void)state;
	tu_make_file(lunpath, sizeof(lunpath), "mp_multi", LUN_SIZE);
	tu_make_file(otherpath, sizeof(otherpath), "mp_multi_other", LUN_SIZE);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(lunpath);
	unlink(otherpath);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static mp_lun *open2(const char *policy, unsigned apd_ms, unsigned check_ms)
{
	struct mp_open_opts o = { .policy = policy, .apd_timeout_ms = apd_ms,
				  .path_check_ms = check_ms };
	char spec[600];
	mp_lun *lun = NULL;
	int ret;

	snprintf(spec, sizeof(spec), "multi:fault::%s|fault::%s", lunpath,
		 lunpath);
	ret = mp_lun_open(spec, &o, &lun);
	if (ret)
		fail_msg("open %s: %s", spec, mp_strerror(ret));
	return lun;
}

static struct mp_fault_rule rule(enum mp_op op, int err)
{
	struct mp_fault_rule r = { .op = op, .action = MP_FAULT_FAIL,
				   .err = err };
	return r;
}

static void status(mp_lun *lun, struct mp_lun_status *st,
		   struct mp_path_status ps[MP_MAX_PATHS])
{
	assert_true(mp_lun_get_status(lun, st, ps, MP_MAX_PATHS) >= 1);
}

/* Write a block with a pattern of seed and read it back. */
static void write_verify(mp_lun *lun, uint64_t blk, unsigned seed)
{
	unsigned char *w = tu_alloc(BS), *r = tu_alloc(BS);

	memset(w, (int)(seed & 0xff), BS);
	memcpy(w, &blk, sizeof(blk));
	assert_int_equal(mp_lun_pwrite(lun, w, BS, blk * BS, 0), BS);
	assert_int_equal(mp_lun_pread(lun, r, BS, blk * BS), BS);
	assert_memory_equal(w, r, BS);
	free(w);
	free(r);
}

static void test_identity(void **state)
{
	const char *specs[2] = { lunpath, otherpath };
	char spec[600];
	mp_lun *lun = NULL;

	(void)state;
	assert_int_equal(mp_lun_open_paths(specs, 2, NULL, &lun),
			 -MP_E_IDMISMATCH);
	assert_null(lun);
	assert_int_equal(mp_lun_open("multi:", NULL, &lun), -MP_E_SPEC);
	snprintf(spec, sizeof(spec), "fault::multi:%s", lunpath);
	assert_int_equal(mp_lun_open(spec, NULL, &lun), -MP_E_SPEC);

	specs[1] = lunpath;
	assert_int_equal(mp_lun_open_paths(specs, 1, NULL, &lun), 0);
	assert_true(mp_lun_is_multipath(lun));
	assert_int_equal(mp_lun_path_add(lun, otherpath), -MP_E_IDMISMATCH);
	snprintf(spec, sizeof(spec), "file:%s", lunpath);
	assert_int_equal(mp_lun_path_add(lun, spec), 1);
	write_verify(lun, 3, 7);
	mp_lun_close(lun);

	assert_int_equal(mp_lun_open(lunpath, NULL, &lun), 0);
	assert_false(mp_lun_is_multipath(lun));
	assert_int_equal(mp_lun_path_add(lun, lunpath), -EOPNOTSUPP);
	assert_int_equal(mp_lun_set_policy(lun, "rr"), -EOPNOTSUPP);
	mp_lun_close(lun);
}

static void test_failover_failback(void **state)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	mp_lun *lun = open2("fixed", 0, 0);
	struct mp_fault_rule r = rule(MP_FAULT_ANY_OP, MP_E_TRANSPORT);
	uint64_t ios0;

	(void)state;
	write_verify(lun, 0, 1);
	status(lun, &st, ps);
	assert_int_equal(ps[0].state, MP_PATH_ACTIVE);
	assert_int_equal(ps[1].state, MP_PATH_STANDBY);
	assert_true(ps[0].preferred);
	assert_true(ps[0].ios >= 2);
	assert_int_equal(ps[1].ios, 0);

	/* Path 0 loses its transport: nobody above notices. */
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	for (unsigned i = 0; i < 64; i++)
		write_verify(lun, i, 100 + i);
	status(lun, &st, ps);
	assert_int_equal(ps[0].state, MP_PATH_DEAD);
	assert_int_equal(ps[1].state, MP_PATH_ACTIVE);
	assert_int_equal(st.failovers, 1);
	assert_true(ps[1].ios >= 128);

	/* It comes back: the checker sees it, fixed fails back to it. */
	assert_int_equal(mp_fault_clear_path(lun, 0), 0);
	assert_int_equal(mp_lun_check_paths(lun), 0);
	status(lun, &st, ps);
	assert_int_equal(ps[0].state, MP_PATH_ACTIVE);
	ios0 = ps[0].ios;
	write_verify(lun, 9, 9);
	status(lun, &st, ps);
	assert_int_equal(ps[0].ios, ios0 + 2);
	assert_int_equal(ps[1].state, MP_PATH_STANDBY);
	mp_lun_close(lun);
}

static void test_mru_no_failback(void **state)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	mp_lun *lun = open2("mru", 0, 0);
	struct mp_fault_rule r = rule(MP_FAULT_ANY_OP, ETIMEDOUT);

	(void)state;
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	write_verify(lun, 1, 1);
	assert_int_equal(mp_fault_clear_path(lun, 0), 0);
	assert_int_equal(mp_lun_check_paths(lun), 0);
	write_verify(lun, 2, 2);
	status(lun, &st, ps);
	assert_int_equal(ps[0].state, MP_PATH_STANDBY);
	assert_int_equal(ps[1].state, MP_PATH_ACTIVE);
	assert_string_equal(st.policy, "mru");
	mp_lun_close(lun);
}

static void test_device_errors_surface(void **state)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	mp_lun *lun = open2(NULL, 0, 0);
	unsigned char *b = tu_alloc(BS);
	struct mp_fault_rule r = rule(MP_OP_READ, MP_E_MEDIUM);

	(void)state;
	r.count = 1;
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	assert_int_equal(mp_lun_pread(lun, b, BS, 0), -MP_E_MEDIUM);
	r = rule(MP_OP_READ, MP_E_ILLEGAL);
	r.count = 1;
	assert_int_equal(mp_fault_clear_path(lun, 0), 0);
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	assert_int_equal(mp_lun_pread(lun, b, BS, 0), -MP_E_ILLEGAL);
	status(lun, &st, ps);
	assert_int_equal(ps[0].state, MP_PATH_ACTIVE);
	assert_int_equal(st.failovers, 0);

	/* NOT READY on path 0: retried on path 1 at once, path 0 lives. */
	r = rule(MP_OP_READ, EAGAIN);
	r.count = 1;
	assert_int_equal(mp_fault_clear_path(lun, 0), 0);
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	assert_int_equal(mp_lun_pread(lun, b, BS, 0), BS);
	status(lun, &st, ps);
	assert_int_equal(ps[0].state, MP_PATH_ACTIVE);
	assert_int_equal(st.failovers, 1);
	assert_int_equal(ps[1].ios, 1);

	/* A compare-and-write that may have been applied is not resent. */
	r = rule(MP_OP_CAW, MP_E_TRANSPORT);
	assert_int_equal(mp_fault_clear_path(lun, 0), 0);
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	memset(b, 0, BS);
	{
		unsigned char *cmp = tu_alloc(512), *nw = tu_alloc(512);

		assert_int_equal(mp_lun_pread(lun, cmp, 512, 8192), 512);
		memset(nw, 0x5a, 512);
		assert_int_equal(mp_lun_caw(lun, 8192, cmp, nw, 512, NULL),
				 -MP_E_TRANSPORT);
		/* path 0 is dead now: the next goes down path 1 */
		assert_int_equal(mp_lun_caw(lun, 8192, cmp, nw, 512, NULL), 0);
		free(cmp);
		free(nw);
	}
	free(b);
	mp_lun_close(lun);
}

static void test_pdl(void **state)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	mp_lun *lun = open2(NULL, 60000, 0);
	unsigned char *b = tu_alloc(BS);
	struct mp_fault_rule r = rule(MP_FAULT_ANY_OP, MP_E_PDL);
	uint64_t t0;

	(void)state;
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	assert_true(mp_fault_add_path(lun, 1, &r) >= 0);
	t0 = now_ms();
	assert_int_equal(mp_lun_pread(lun, b, BS, 0), -MP_E_PDL);
	/* PDL does not wait for anything */
	assert_true(now_ms() - t0 < 1000);
	assert_int_equal(mp_lun_check_paths(lun), 0);
	status(lun, &st, ps);
	assert_true(st.pdl);
	assert_int_equal(ps[0].state, MP_PATH_DEAD);
	assert_int_equal(ps[1].state, MP_PATH_DEAD);
	t0 = now_ms();
	assert_int_equal(mp_lun_pread(lun, b, BS, 0), -MP_E_PDL);
	assert_true(now_ms() - t0 < 1000);
	free(b);
	mp_lun_close(lun);
}

static void test_apd_timeout(void **state)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	mp_lun *lun = open2(NULL, 1500, 200);
	unsigned char *b = tu_alloc(BS);
	struct mp_fault_rule r = rule(MP_FAULT_ANY_OP, MP_E_TRANSPORT);
	uint64_t t0, dt;

	(void)state;
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	assert_true(mp_fault_add_path(lun, 1, &r) >= 0);
	t0 = now_ms();
	assert_int_equal(mp_lun_pread(lun, b, BS, 0), -EIO);
	dt = now_ms() - t0;
	assert_true(dt >= 1400 && dt < 4000);
	status(lun, &st, ps);
	assert_true(st.apd);
	assert_false(st.pdl);
	/* After the APD timeout new I/O fails fast. */
	t0 = now_ms();
	assert_int_equal(mp_lun_pread(lun, b, BS, 0), -EIO);
	assert_true(now_ms() - t0 < 500);
	free(b);
	mp_lun_close(lun);
}

struct waiter {
	mp_lun *lun;
	void *buf;
	int ret;
};

static void *bg_write(void *arg)
{
	struct waiter *w = arg;

	w->ret = (int)mp_lun_pwrite(w->lun, w->buf, BS, 5 * BS, 0);
	return NULL;
}

static void test_apd_recovers(void **state)
{
	mp_lun *lun = open2(NULL, 20000, 200);
	unsigned char *b = tu_alloc(BS), *r2 = tu_alloc(BS);
	struct mp_fault_rule r = rule(MP_FAULT_ANY_OP, MP_E_TRANSPORT);
	struct waiter w = { .lun = lun, .buf = b, .ret = 1 };
	pthread_t t;
	uint64_t t0;

	(void)state;
	memset(b, 0x77, BS);
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	assert_true(mp_fault_add_path(lun, 1, &r) >= 0);
	t0 = now_ms();
	assert_int_equal(pthread_create(&t, NULL, bg_write, &w), 0);
	usleep(700 * 1000);
	/* still waiting for a path, not failed */
	assert_int_equal(__atomic_load_n(&w.ret, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(mp_fault_clear_path(lun, 1), 0);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, BS);
	assert_true(now_ms() - t0 < 5000);
	assert_int_equal(mp_lun_pread(lun, r2, BS, 5 * BS), BS);
	assert_memory_equal(b, r2, BS);
	free(b);
	free(r2);
	mp_lun_close(lun);
}

/* A write waiting for a path when the handle is fenced (its host's
 * heartbeat stalled, or vmrun lost its vmfsd) fails when a path returns:
 * it never reaches the LUN after other hosts may have broken the locks. */
static void test_apd_fenced(void **state)
{
	mp_lun *lun = open2(NULL, 20000, 200);
	unsigned char *b = tu_alloc(BS), *r2 = tu_alloc(BS), *z = tu_alloc(BS);
	struct mp_fault_rule r = rule(MP_FAULT_ANY_OP, MP_E_TRANSPORT);
	struct waiter w = { .lun = lun, .buf = b, .ret = 1 };
	pthread_t t;

	(void)state;
	memset(z, 0, BS);
	assert_int_equal(mp_lun_pwrite(lun, z, BS, 5 * BS, 0), BS);
	memset(b, 0x5a, BS);
	assert_true(mp_fault_add_path(lun, 0, &r) >= 0);
	assert_true(mp_fault_add_path(lun, 1, &r) >= 0);
	assert_int_equal(pthread_create(&t, NULL, bg_write, &w), 0);
	usleep(500 * 1000);
	assert_int_equal(__atomic_load_n(&w.ret, __ATOMIC_ACQUIRE), 1);
	mp_lun_fence(lun, true);
	assert_int_equal(mp_fault_clear_path(lun, 1), 0);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, -MP_E_FENCED);
	mp_lun_fence(lun, false);
	assert_int_equal(mp_lun_pread(lun, r2, BS, 5 * BS), BS);
	assert_memory_equal(z, r2, BS);
	free(b);
	free(r2);
	free(z);
	mp_lun_close(lun);
}

static void test_disable(void **state)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	mp_lun *lun = open2("fixed,pref=1", 20000, 200);
	unsigned char *b = tu_alloc(BS);
	struct waiter w = { .lun = lun, .buf = b, .ret = 1 };
	pthread_t t;

	(void)state;
	memset(b, 0x31, BS);
	write_verify(lun, 1, 1);
	status(lun, &st, ps);
	assert_int_equal(ps[0].ios, 0);
	assert_int_equal(ps[1].ios, 2);
	assert_int_equal(mp_lun_path_enable(lun, 1, false), 0);
	assert_int_equal(mp_lun_path_enable(lun, 7, false), -ENOENT);
	write_verify(lun, 1, 2);
	status(lun, &st, ps);
	assert_int_equal(ps[1].state, MP_PATH_DISABLED);
	assert_int_equal(ps[0].ios, 2);
	/* both disabled: I/O waits; enabling one lets it through */
	assert_int_equal(mp_lun_path_enable(lun, 0, false), 0);
	assert_int_equal(pthread_create(&t, NULL, bg_write, &w), 0);
	usleep(300 * 1000);
	assert_int_equal(__atomic_load_n(&w.ret, __ATOMIC_ACQUIRE), 1);
	assert_int_equal(mp_lun_path_enable(lun, 1, true), 0);
	pthread_join(t, NULL);
	assert_int_equal(w.ret, BS);
	status(lun, &st, ps);
	assert_int_equal(ps[1].state, MP_PATH_ACTIVE);
	assert_int_equal(ps[0].state, MP_PATH_DISABLED);
	free(b);
	mp_lun_close(lun);
}

static void test_policies(void **state)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	mp_lun *lun = open2("rr,iops=1", 0, 0);
	unsigned char *b = tu_alloc(BS);

	(void)state;
	for (int i = 0; i < 100; i++)
		assert_int_equal(mp_lun_pread(lun, b, BS, 0), BS);
	status(lun, &st, ps);
	assert_int_equal(ps[0].ios, 50);
	assert_int_equal(ps[1].ios, 50);
	assert_int_equal(ps[0].state, MP_PATH_ACTIVE);
	assert_int_equal(ps[1].state, MP_PATH_ACTIVE);
	assert_string_equal(st.policy, "rr,iops=1");

	/* switch every 10 I/Os, online */
	assert_int_equal(mp_lun_set_policy(lun, "rr,iops=10"), 0);
	for (int i = 0; i < 30; i++)
		assert_int_equal(mp_lun_pread(lun, b, BS, 0), BS);
	status(lun, &st, ps);
	assert_true(ps[0].ios + ps[1].ios == 130);
	assert_true(ps[0].ios == 60 || ps[0].ios == 70);

	assert_int_equal(mp_lun_set_policy(lun, "rr,bytes=8k"), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(mp_lun_pread(lun, b, BS, 0), BS);
	status(lun, &st, ps);
	assert_int_equal(ps[0].ios + ps[1].ios, 138);
	assert_true(ps[0].ios == 64 || ps[0].ios == 74);

	assert_int_equal(mp_lun_set_policy(lun, "lqd"), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(mp_lun_pread(lun, b, BS, 0), BS);
	assert_int_equal(mp_lun_set_policy(lun, "st"), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(mp_lun_pread(lun, b, BS, 0), BS);
	status(lun, &st, ps);
	assert_int_equal(ps[0].ios + ps[1].ios, 178);
	assert_string_equal(st.policy, "st");

	assert_int_equal(mp_lun_set_policy(lun, "bogus"), -EINVAL);
	assert_int_equal(mp_lun_set_policy(lun, "rr,iops=0"), -EINVAL);
	assert_int_equal(mp_lun_set_policy(lun, "rr,color=3"), -EINVAL);
	assert_int_equal(mp_lun_set_policy(lun, "fixed,pref=5"), -EINVAL);
	assert_int_equal(mp_lun_set_policy(lun, "mru,x=1"), -EINVAL);
	free(b);
	mp_lun_close(lun);
}

static void test_json(void **state)
{
	mp_lun *lun = open2("rr", 0, 0);
	struct json_object *arr = mp_devices_json(), *dev = NULL, *paths, *v;
	struct mp_lun_info info;

	(void)state;
	mp_lun_get_info(lun, &info);
	assert_non_null(arr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *o = json_object_array_get_idx(arr, i);

		if (json_object_object_get_ex(o, "spec", &v) &&
		    !strncmp(json_object_get_string(v), "multi:", 6))
			dev = o;
	}
	assert_non_null(dev);
	assert_true(json_object_object_get_ex(dev, "device", &v));
	assert_string_equal(json_object_get_string(v), info.id);
	assert_true(json_object_object_get_ex(dev, "policy", &v));
	assert_string_equal(json_object_get_string(v), "rr,iops=1000");
	assert_true(json_object_object_get_ex(dev, "paths", &paths));
	assert_int_equal(json_object_array_length(paths), 2);
	assert_true(json_object_object_get_ex(
		json_object_array_get_idx(paths, 1), "state", &v));
	assert_string_equal(json_object_get_string(v), "active");
	assert_ptr_equal(mp_lun_find(info.id), lun);
	json_object_put(arr);
	mp_lun_close(lun);
	assert_null(mp_lun_find(info.id));
}

/* A closed loop of write-then-verify slots, each on its own block. */
struct vslot {
	struct mp_io io;
	struct iovec iov;
	unsigned char *buf, *want;
	uint64_t blk;
	unsigned seq;
	bool reading;
};

static struct {
	pthread_mutex_t m;
	pthread_cond_t c;
	mp_lun *lun;
	bool stop;
	unsigned live;
	unsigned long ios, errors, mismatches;
} vs = { .m = PTHREAD_MUTEX_INITIALIZER, .c = PTHREAD_COND_INITIALIZER };

static void vslot_start(struct vslot *v);

static void vslot_done(struct mp_io *io)
{
	struct vslot *v = io->priv;
	bool stop;

	pthread_mutex_lock(&vs.m);
	vs.ios++;
	if (io->result != BS)
		vs.errors++;
	else if (v->reading && memcmp(v->buf, v->want, BS))
		vs.mismatches++;
	stop = vs.stop;
	if (stop && --vs.live == 0)
		pthread_cond_broadcast(&vs.c);
	pthread_mutex_unlock(&vs.m);
	if (stop)
		return;
	if (v->reading)
		v->seq++;
	v->reading = !v->reading;
	vslot_start(v);
}

static void vslot_start(struct vslot *v)
{
	if (v->reading) {
		v->iov = (struct iovec){ v->buf, BS };
		mp_io_prep_read(&v->io, &v->iov, 1, v->blk * BS);
	} else {
		memset(v->want, (int)(v->seq * 7 + v->blk) & 0xff, BS);
		memcpy(v->want, &v->seq, sizeof(v->seq));
		v->iov = (struct iovec){ v->want, BS };
		mp_io_prep_write(&v->io, &v->iov, 1, v->blk * BS, 0);
	}
	v->io.cb = vslot_done;
	v->io.priv = v;
	assert_int_equal(mp_io_submit(vs.lun, &v->io), 0);
}

/* Policies switched, paths disabled and enabled and a path added while
 * verified I/O runs: no error reaches the caller, no data goes wrong. */
static void test_online_changes(void **state)
{
	static const char *const pols[] = { "fixed", "mru", "rr,iops=1", "lqd",
					     "st", "rr,bytes=16k", "fixed,pref=1" };
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	struct vslot slots[16];
	char spec[300];
	unsigned k;

	(void)state;
	vs.lun = open2(NULL, 0, 0);
	vs.stop = false;
	vs.live = 16;
	vs.ios = vs.errors = vs.mismatches = 0;
	for (unsigned i = 0; i < 16; i++) {
		memset(&slots[i], 0, sizeof(slots[i]));
		slots[i].buf = tu_alloc(BS);
		slots[i].want = tu_alloc(BS);
		slots[i].blk = 100 + i;
		vslot_start(&slots[i]);
	}
	for (k = 0; k < 14; k++) {
		unsigned p = k % 2;

		assert_int_equal(mp_lun_set_policy(vs.lun, pols[k % 7]), 0);
		assert_int_equal(mp_lun_path_enable(vs.lun, p, false), 0);
		usleep(5000);
		assert_int_equal(mp_lun_path_enable(vs.lun, p, true), 0);
		assert_int_equal(mp_lun_check_paths(vs.lun), 0);
		if (k == 5) {
			snprintf(spec, sizeof(spec), "file:%s", lunpath);
			assert_int_equal(mp_lun_path_add(vs.lun, spec), 2);
		}
	}
	/* let I/O run over the final configuration too */
	for (int i = 0; i < 10000; i++) {
		unsigned long n;

		pthread_mutex_lock(&vs.m);
		n = vs.ios;
		pthread_mutex_unlock(&vs.m);
		if (n >= 2000)
			break;
		usleep(1000);
	}
	pthread_mutex_lock(&vs.m);
	vs.stop = true;
	while (vs.live)
		pthread_cond_wait(&vs.c, &vs.m);
	pthread_mutex_unlock(&vs.m);
	assert_int_equal(mp_lun_get_status(vs.lun, &st, ps, MP_MAX_PATHS), 3);
	print_message("%u rounds of changes, %lu I/Os, %llu failovers\n", k,
		      vs.ios, (unsigned long long)st.failovers);
	assert_true(vs.ios >= 2000);
	assert_int_equal(vs.errors, 0);
	assert_int_equal(vs.mismatches, 0);
	for (unsigned i = 0; i < 3; i++)
		assert_true(ps[i].ios > 0);
	for (unsigned i = 0; i < 16; i++) {
		free(slots[i].buf);
		free(slots[i].want);
	}
	mp_lun_close(vs.lun);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_failover_failback),
		cmocka_unit_test(test_mru_no_failback),
		cmocka_unit_test(test_device_errors_surface),
		cmocka_unit_test(test_pdl),
		cmocka_unit_test(test_apd_timeout),
		cmocka_unit_test(test_apd_recovers),
		cmocka_unit_test(test_apd_fenced),
		cmocka_unit_test(test_disable),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_online_changes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
