/*
 * io.c - sector I/O and the compare-and-write methods of the lock manager.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lockmgr/lk_int.h"

#define UNCERTAIN_RETRIES 5
#define RESERVE_TRIES_MS 10000

uint64_t lk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t lk_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lk_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void lk_log(lk_volume *v, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "lk[%s]: %s\n", v->host_name[0] ? v->host_name : "-",
		buf);
}

void *lk_buf(lk_volume *v)
{
	return lk_buf_n(v->ss);
}

void *lk_buf_n(unsigned ss)
{
	void *p = mp_alloc_aligned(4096, ss);

	if (p)
		memset(p, 0, ss);
	return p;
}

static int rw(mp_lun *lun, enum mp_op op, uint64_t off, void *buf,
	      size_t len, unsigned flags)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct mp_io io;
	int ret;

	memset(&io, 0, sizeof(io));
	io.op = op;
	io.flags = flags;
	io.offset = off;
	io.iov = &iov;
	io.iovcnt = 1;
	ret = mp_io_run(lun, &io);
	if (ret >= 0)
		ret = ret == (int)len ? 0 : -EIO;
	return ret;
}

int lk_read_on(mp_lun *lun, uint64_t off, void *buf, size_t len,
	       unsigned flags)
{
	return rw(lun, MP_OP_READ, off, buf, len, flags);
}

int lk_read(lk_volume *v, uint64_t off, void *buf, size_t len, unsigned flags)
{
	return rw(v->lun, MP_OP_READ, off, buf, len, flags);
}

int lk_write(lk_volume *v, uint64_t off, const void *buf, size_t len,
	     unsigned flags)
{
	return rw(v->lun, MP_OP_WRITE, off, (void *)buf, len, flags);
}

static int simple(mp_lun *lun, enum mp_op op, unsigned flags)
{
	struct mp_io io;

	memset(&io, 0, sizeof(io));
	io.op = op;
	io.flags = flags;
	return mp_io_run(lun, &io);
}

/* One device compare-and-write (ATS or emulated). */
static int caw_native(mp_lun *lun, unsigned ss, uint64_t off, const void *cmp,
		      const void *nw, void *cur, unsigned flags)
{
	struct iovec iov[2];
	struct mp_io io;

	memcpy(cur, cmp, ss);     /* the layer returns current data here */
	iov[0].iov_base = cur;
	iov[0].iov_len = ss;
	iov[1].iov_base = (void *)nw;
	iov[1].iov_len = ss;
	memset(&io, 0, sizeof(io));
	io.op = MP_OP_CAW;
	io.flags = flags;
	io.offset = off;
	io.length = ss;
	io.iov = iov;
	io.iovcnt = 2;
	return mp_io_run(lun, &io);
}

/* Reserve, read, compare, write, release. */
static int caw_reserve(lk_volume *v, mp_lun *lun, unsigned ss, uint64_t off,
		       const void *cmp, const void *nw, void *cur,
		       unsigned flags)
{
	uint64_t until = lk_now_ns() + RESERVE_TRIES_MS * 1000000ull;
	unsigned backoff = 1;
	int ret, rel;

	pthread_mutex_lock(&v->resv_lock);
	for (;;) {
		ret = simple(lun, MP_OP_RESERVE, flags);
		if (ret != -MP_E_RESCONFLICT || lk_now_ns() >= until)
			break;
		/* another host's read-modify-write: a few ms at most */
		lk_sleep_ms(backoff);
		if (backoff < 32)
			backoff *= 2;
	}
	if (ret)
		goto unlock;
	ret = rw(lun, MP_OP_READ, off, cur, ss, flags);
	if (ret)
		goto release;
	if (memcmp(cur, cmp, ss)) {
		ret = -MP_E_MISCOMPARE;
		goto release;
	}
	ret = rw(lun, MP_OP_WRITE, off, (void *)nw, ss, flags | MP_IO_FUA);
release:
	rel = simple(lun, MP_OP_RELEASE, flags);
	if (rel && !ret)
		ret = rel;
unlock:
	pthread_mutex_unlock(&v->resv_lock);
	return ret;
}

static bool uncertain(int ret)
{
	return ret == -ETIMEDOUT || ret == -MP_E_TRANSPORT || ret == -EIO;
}

int lk_caw_on(lk_volume *v, mp_lun *lun, enum lk_method method, unsigned ss,
	      uint64_t off, const void *cmp, const void *nw, void *cur,
	      unsigned flags)
{
	int ret = -EIO;

	for (int i = 0; i < UNCERTAIN_RETRIES; i++) {
		int r;

		if (method == LK_METHOD_RESERVE)
			ret = caw_reserve(v, lun, ss, off, cmp, nw, cur, flags);
		else
			ret = caw_native(lun, ss, off, cmp, nw, cur, flags);
		if (!uncertain(ret))
			return ret;
		/* Did it land?  Only the sector can tell. */
		r = rw(lun, MP_OP_READ, off, cur, ss, flags);
		if (r)
			continue;
		if (!memcmp(cur, nw, ss))
			return 0;
		if (memcmp(cur, cmp, ss))
			return -MP_E_MISCOMPARE;
		/* still the old contents: it did not happen; try again */
	}
	return ret;
}

int lk_caw(lk_volume *v, uint64_t off, const void *cmp, const void *nw,
	   void *cur, unsigned flags)
{
	return lk_caw_on(v, v->lun, v->method, v->ss, off, cmp, nw, cur, flags);
}
