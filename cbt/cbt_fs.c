/*
 * cbt_fs.c - a tracking file that is a file of the volume.
 */
#include <errno.h>
#include <string.h>

#include "cbt/cbt.h"

static int f_pread(void *arg, void *buf, size_t len, uint64_t off)
{
	ssize_t n = fs_pread(arg, buf, len, off);

	if (n < 0)
		return (int)n;
	/* past the end: zeros, as a hole */
	memset((char *)buf + n, 0, len - (size_t)n);
	return 0;
}

static int f_pwrite(void *arg, const void *buf, size_t len, uint64_t off)
{
	ssize_t n = fs_pwrite(arg, buf, len, off);

	return n == (ssize_t)len ? 0 : n < 0 ? (int)n : -EIO;
}

static int f_sync(void *arg)
{
	return fs_fsync(arg);
}

static int f_truncate(void *arg, uint64_t size)
{
	return fs_ftruncate(arg, size);
}

static int64_t f_next_data(void *arg, uint64_t off)
{
	return fs_seek(arg, off, true);
}

void cbt_io_fs(fs_file *f, struct cbt_io *io)
{
	*io = (struct cbt_io){ .pread = f_pread, .pwrite = f_pwrite,
			       .sync = f_sync, .truncate = f_truncate,
			       .next_data = f_next_data, .arg = f };
}
