/*
 * io.c - metadata block I/O, logging and error strings for the fs library.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/fs_int.h"

static const char *const fs_errs[FS_E_END - FS_E_BASE] = {
	[FS_E_BADMAGIC - FS_E_BASE] = "not a file system structure (bad magic)",
	[FS_E_CHECKSUM - FS_E_BASE] = "metadata checksum mismatch",
	[FS_E_VERSION - FS_E_BASE] = "unsupported on-disk format version or feature",
	[FS_E_CORRUPT - FS_E_BASE] = "corrupt metadata",
	[FS_E_NOVOLUME - FS_E_BASE] = "no volume found on the given devices",
	[FS_E_EXTENTS - FS_E_BASE] = "extents of the volume missing or duplicated",
	[FS_E_JOURNAL - FS_E_BASE] = "journal full or damaged",
};

const char *fs_strerror(int err)
{
	int e = err < 0 ? -err : err;

	if (e > FS_E_BASE && e < FS_E_END && fs_errs[e - FS_E_BASE])
		return fs_errs[e - FS_E_BASE];
	return lk_strerror(err);
}

uint64_t fs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *fs_balloc(size_t len)
{
	void *p = mp_alloc_aligned(4096, len ? len : 4096);

	if (p)
		memset(p, 0, len);
	return p;
}

void fs_vol_abandon(struct fs_vol *v, const char *why)
{
	if (__atomic_exchange_n(&v->abandoned, true, __ATOMIC_ACQ_REL))
		return;
	fs_log(v, "%s: giving the volume up; every lock stays held until "
	       "another host replays this host's journal; unmount, and mount "
	       "again once the LUN works", why);
	if (v->lk)
		lk_abandon(v->lk, why);
	/* every hold stays on disk, but nothing here is current any more */
	fs_cache_drop(v, 0, 0);
}

void fs_log(struct fs_vol *v, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fs[%s]: %s\n", v && v->host[0] ? v->host : "-", buf);
}

int fs_bad_meta(struct fs_vol *v, int err, const char *what, unsigned ext,
		uint64_t off)
{
	fs_log(v, "%s at extent %u offset %llu: %s", what, ext,
	       (unsigned long long)off, fs_strerror(err));
	/* the caller sees an I/O error; the log says what and where */
	return err == -FS_E_CHECKSUM || err == -FS_E_BADMAGIC ||
	       err == -FS_E_CORRUPT ? -EIO : err;
}

static int dev_read(struct fs_vol *v, unsigned ext, uint64_t off, void *buf,
		    size_t len)
{
	ssize_t n;

	if (ext >= v->next)
		return -EINVAL;
	n = mp_lun_pread(v->ext[ext].lun, buf, len, off);
	if (n < 0)
		return (int)n;
	return n == (ssize_t)len ? 0 : -EIO;
}

int fs_read(struct fs_vol *v, unsigned ext, uint64_t off, void *buf, size_t len)
{
	if (ext >= v->next)
		return -EINVAL;
	/* this host's committed changes not yet in place (journal.c) */
	return fs_journal_read(v, ext, off, buf, len, dev_read);
}

int fs_write(struct fs_vol *v, unsigned ext, uint64_t off, const void *buf,
	     size_t len)
{
	ssize_t n;

	if (ext >= v->next)
		return -EINVAL;
	if (v->rdonly)
		return -EROFS;
	n = mp_lun_pwrite(v->ext[ext].lun, buf, len, off, 0);
	if (n < 0)
		return (int)n;
	return n == (ssize_t)len ? 0 : -EIO;
}

int fs_flush_mask(struct fs_vol *v, uint32_t mask)
{
	int ret = 0;

	for (unsigned i = 0; i < v->next; i++) {
		int r;

		if (!(mask & (1u << i)))
			continue;
		r = mp_lun_flush(v->ext[i].lun);
		if (r && !ret)
			ret = r;
	}
	return ret;
}

int fs_flush_all(struct fs_vol *v)
{
	return fs_flush_mask(v, UINT32_MAX);
}

static bool addr_known(const struct fs_vol *v, uint64_t a, enum fs_rtype t)
{
	const struct fs_area *ar;
	unsigned ext = fs_addr_ext(a);

	if (ext >= __atomic_load_n(&v->next, __ATOMIC_ACQUIRE))
		return false;
	ar = &v->sb.ext[ext].area[fs_area_of(t)];
	return fs_addr_index(a) < (uint64_t)ar->clusters * ar->per_cluster;
}

bool fs_addr_valid(struct fs_vol *v, uint64_t a, enum fs_rtype t)
{
	if (fs_addr_type(a) != t)
		return false;
	if (addr_known(v, a, t))
		return true;
	/* an extent another host added since we last looked */
	return fs_addr_ext(a) >= v->next && fs_geom_refresh(v) > 0 &&
	       addr_known(v, a, t);
}
