/*
 * util.c - small helpers shared by the device layer: clock, iovec copies,
 * aligned allocation, logging, error strings.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "mp_int.h"

uint64_t mp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mp_iov_len(const struct iovec *iov, int iovcnt)
{
	uint64_t n = 0;

	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

size_t mp_iov_to_buf(void *buf, const struct iovec *iov, int iovcnt,
		     size_t skip, size_t len)
{
	size_t done = 0;

	for (int i = 0; i < iovcnt && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((char *)buf + done, (char *)iov[i].iov_base + skip, l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t mp_buf_to_iov(const struct iovec *iov, int iovcnt, size_t skip,
		     const void *buf, size_t len)
{
	size_t done = 0;

	for (int i = 0; i < iovcnt && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((char *)iov[i].iov_base + skip, (const char *)buf + done, l);
		done += l;
		skip = 0;
	}
	return done;
}

void *mp_alloc_aligned(size_t align, size_t len)
{
	void *p = NULL;

	if (align < sizeof(void *))
		align = sizeof(void *);
	if (posix_memalign(&p, align, len ? len : align))
		return NULL;
	return p;
}

#define IO_PAGE (2u << 20)
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23     /* Linux 5.14 */
#endif

/* len rounded up to whole 2 MiB pages; 0 when that overflows */
static size_t io_len(size_t len)
{
	if (len > SIZE_MAX - IO_PAGE)
		return 0;
	return (len ? len + IO_PAGE - 1 : IO_PAGE) / IO_PAGE * IO_PAGE;
}

void *mp_alloc_io(size_t len, unsigned flags)
{
	size_t n = io_len(len);
	uintptr_t a;
	char *raw;
	void *p;

	if (!n || n > SIZE_MAX - IO_PAGE) {
		errno = ENOMEM;
		return NULL;
	}
	/* hugetlb: reserved at mmap (ENOMEM when too few are free), so the
	 * population cannot fail later; 2 MiB pages whatever the default
	 * huge page size.  Only when asked: the reserved pool is the
	 * administrator's, usually for guests. */
	if (flags & MP_MEM_HUGETLB) {
		p = mmap(NULL, n, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			 MAP_POPULATE | (21 << MAP_HUGE_SHIFT), -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	/* transparent huge pages: a 2 MiB aligned range, advised, populated
	 * now (where the huge pages are allocated if the kernel can) */
	raw = mmap(NULL, n + IO_PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)raw + IO_PAGE - 1) & ~(uintptr_t)(IO_PAGE - 1);
	if (a > (uintptr_t)raw)
		munmap(raw, a - (uintptr_t)raw);
	if ((uintptr_t)raw + IO_PAGE > a)
		munmap((char *)a + n, (uintptr_t)raw + IO_PAGE - a);
	p = (void *)a;
	(void)madvise(p, n, MADV_HUGEPAGE);        /* EINVAL without THP */
	if (madvise(p, n, MADV_POPULATE_WRITE))
		memset(p, 0, n);                    /* older kernels */
	return p;
}

void mp_free_io(void *p, size_t len)
{
	if (p)
		munmap(p, io_len(len));
}

void mp_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One write per line so lines of concurrent threads do not mix. */
	fprintf(stderr, "mp: %s\n", buf);
}

int mp_parse_size(const char *s, uint64_t *v)
{
	unsigned shift = 0;
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end || (shift && *v > (UINT64_MAX >> shift)))
		return -EINVAL;        /* trailing junk, or too big */
	*v <<= shift;
	return 0;
}

static const char *const mp_errs[MP_E_END - MP_E_BASE] = {
	[MP_E_MISCOMPARE - MP_E_BASE] = "compare-and-write miscompare",
	[MP_E_RESCONFLICT - MP_E_BASE] = "reservation conflict",
	[MP_E_BUSY - MP_E_BASE] = "device busy",
	[MP_E_QFULL - MP_E_BASE] = "device queue full",
	[MP_E_PDL - MP_E_BASE] = "permanent device loss",
	[MP_E_MEDIUM - MP_E_BASE] = "medium error",
	[MP_E_ILLEGAL - MP_E_BASE] = "illegal request",
	[MP_E_SPEC - MP_E_BASE] = "malformed LUN spec",
	[MP_E_POWERCUT - MP_E_BASE] = "device lost power (fault injection)",
	[MP_E_CHECK - MP_E_BASE] = "SCSI check condition",
	[MP_E_TRANSPORT - MP_E_BASE] = "transport failure",
	[MP_E_FENCED - MP_E_BASE] = "I/O fenced: this host lost access to the LUN",
	[MP_E_IDMISMATCH - MP_E_BASE] = "path leads to a different LUN (identity mismatch)",
};

const char *mp_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err > MP_E_BASE && err < MP_E_END && mp_errs[err - MP_E_BASE])
		return mp_errs[err - MP_E_BASE];
	if (err == 0)
		return "success";
	return strerror(err);
}
