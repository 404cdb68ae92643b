/*
 * be_local.c - regular files and block devices as LUNs.
 *
 * READ and WRITE go through an asynchronous engine with O_DIRECT: libaio,
 * or io_uring when the spec asks for it or when libaio cannot be set up
 * (fs.aio-max-nr used up, seccomp).  Both engines deliver completions on
 * one reaper thread per path.  libaio is the default because of that
 * model: a kernel AIO completion is posted from the interrupt and wakes
 * the reaper, while an io_uring read or write completes through task work
 * of the thread that *submitted* it, so a submitter asleep waiting for its
 * result is woken once to post the CQE and again by the reaper's callback
 * (docs/BENCHMARKS.md, "File system", compares the two).  Everything else
 * runs on one worker thread per path.
 *
 * Compare-and-write is emulated: an OFD write lock on the sector range, read,
 * compare, write, unlock.  OFD locks belong to the open file description, so
 * this is atomic between every handle of every process on THIS machine (each
 * handle has its own open file description; the handle's own CAWs of the
 * same sectors take turns on an in-process mutex stripe).  It is NOT atomic between machines
 * sharing a block device: that needs SCSI COMPARE AND WRITE.  Plain writes
 * do not take the lock; callers that mix plain writes with CAW on the same
 * sector must order them themselves (the lock manager writes its records
 * only by CAW).
 *
 * Spec: PATH[?engine=uring|aio][&sector=512|4096]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "local_int.h"

#define LOCAL_ENTRIES 256
#define LOCAL_MAX_CAW_SECTORS 8

struct local_opts {
	char path[4096];
	const struct local_engine_ops *eng;  /* NULL = automatic */
	unsigned sector;                     /* 0 = the device's own */
};

static int parse_spec(const char *spec, struct local_opts *lo)
{
	const char *q = strchr(spec, '?');
	size_t plen = q ? (size_t)(q - spec) : strlen(spec);
	char opts[256], *save = NULL, *tok;

	memset(lo, 0, sizeof(*lo));
	if (plen == 0 || plen >= sizeof(lo->path))
		return -MP_E_SPEC;
	memcpy(lo->path, spec, plen);
	if (!q)
		return 0;
	if (strlen(q + 1) >= sizeof(opts))
		return -MP_E_SPEC;
	strcpy(opts, q + 1);
	for (tok = strtok_r(opts, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
		if (!strcmp(tok, "engine=uring")) {
			lo->eng = &local_uring_ops;
		} else if (!strcmp(tok, "engine=aio")) {
			lo->eng = &local_aio_ops;
		} else if (!strncmp(tok, "sector=", 7)) {
			char *end;
			unsigned long s = strtoul(tok + 7, &end, 10);

			if (*end || (s != 512 && s != 4096))
				return -MP_E_SPEC;
			lo->sector = (unsigned)s;
		} else {
			mp_log("%s: unknown local option '%s'", spec, tok);
			return -MP_E_SPEC;
		}
	}
	return 0;
}

/* ---- worker: blocking operations ------------------------------------------ */

/* The stripes of caw_m a compare-and-write of io takes: those of the
 * 512-byte units it covers (taken in ascending order). */
static uint64_t caw_stripes(const struct mp_io *io)
{
	uint64_t first = io->offset >> 9, n = (io->length + 511) >> 9;
	uint64_t m = 0;

	if (n >= LOCAL_CAW_STRIPES)
		return ~0ull;
	for (uint64_t i = 0; i < n; i++)
		m |= 1ull << ((first + i) % LOCAL_CAW_STRIPES);
	return m;
}

static int emulated_caw(struct local *l, struct mp_io *io)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = (off_t)io->offset,
		.l_len = (off_t)io->length,
	};
	uint64_t stripes;
	void *cur;
	ssize_t n;
	int ret;

	cur = mp_alloc_aligned(4096, io->length);
	if (!cur)
		return -ENOMEM;
	/* the OFD lock excludes other handles only: this handle's own
	 * compare-and-writes (the worker's, callers' in their threads) of
	 * the same sectors take turns on their stripes of caw_m, those of
	 * other sectors go at once (a host releasing one lock per file it
	 * created has many in flight: one mutex made them a queue) */
	stripes = caw_stripes(io);
	for (unsigned i = 0; i < LOCAL_CAW_STRIPES; i++)
		if (stripes >> i & 1)
			pthread_mutex_lock(&l->caw_m[i]);
	while (fcntl(l->fd, F_OFD_SETLKW, &fl) < 0) {
		if (errno != EINTR) {
			ret = -errno;
			goto free_cur;
		}
	}
	n = pread(l->fd, cur, io->length, (off_t)io->offset);
	if (n != (ssize_t)io->length) {
		ret = n < 0 ? -errno : -EIO;
		goto unlock;
	}
	if (memcmp(cur, io->iov[0].iov_base, io->length)) {
		memcpy(io->iov[0].iov_base, cur, io->length);
		ret = -MP_E_MISCOMPARE;
		goto unlock;
	}
	n = pwrite(l->fd, io->iov[1].iov_base, io->length, (off_t)io->offset);
	ret = n == (ssize_t)io->length ? 0 : (n < 0 ? -errno : -EIO);
unlock:
	fl.l_type = F_UNLCK;
	fcntl(l->fd, F_OFD_SETLK, &fl);
free_cur:
	for (unsigned i = LOCAL_CAW_STRIPES; i-- > 0;)
		if (stripes >> i & 1)
			pthread_mutex_unlock(&l->caw_m[i]);
	free(cur);
	return ret;
}

static int test_ready(struct local *l)
{
	unsigned ls = l->path->info.logical_sector;
	void *buf = mp_alloc_aligned(4096, ls);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = pread(l->fd, buf, ls, 0);
	free(buf);
	return n == (ssize_t)ls ? 0 : (n < 0 ? -errno : -EIO);
}

static int run_blocking(struct local *l, struct mp_io *io)
{
	switch (io->op) {
	case MP_OP_FLUSH:
		return fdatasync(l->fd) ? -errno : 0;
	case MP_OP_DISCARD:
		/* Punch hole on a file; on a block device the kernel zeroes
		 * by unmapping and refuses (EOPNOTSUPP) when it cannot do so
		 * without writing zeros: that is reported, never faked. */
		if (fallocate(l->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)io->offset, (off_t)io->length))
			return -errno;
		return 0;
	case MP_OP_CAW:
		return emulated_caw(l, io);
	case MP_OP_TUR:
		return test_ready(l);
	default:
		return -EOPNOTSUPP;
	}
}

static void *worker_main(void *arg)
{
	struct local *l = arg;

	pthread_mutex_lock(&l->wlock);
	for (;;) {
		struct mp_io *io = l->whead;
		int res;

		if (!io) {
			if (l->wstop)
				break;
			pthread_cond_wait(&l->wcond, &l->wlock);
			continue;
		}
		l->whead = io->next_;
		if (!l->whead)
			l->wtail = NULL;
		pthread_mutex_unlock(&l->wlock);
		res = run_blocking(l, io);
		mp_path_done(l->path, io, res);
		pthread_mutex_lock(&l->wlock);
	}
	pthread_mutex_unlock(&l->wlock);
	return NULL;
}

static void worker_queue(struct local *l, struct mp_io *io)
{
	pthread_mutex_lock(&l->wlock);
	io->next_ = NULL;
	if (l->wtail)
		l->wtail->next_ = io;
	else
		l->whead = io;
	l->wtail = io;
	pthread_cond_signal(&l->wcond);
	pthread_mutex_unlock(&l->wlock);
}

static long rw_result(struct local *l, struct mp_io *io, long res)
{
	if (res >= 0 && (uint64_t)res != io->length) {
		/* O_DIRECT transfers inside the device are all or nothing;
		 * a short one means the file shrank under us. */
		mp_log("%s: short %s at %llu: %ld of %llu bytes",
		       l->path->info.id, io->op == MP_OP_READ ? "read" : "write",
		       (unsigned long long)io->offset, res,
		       (unsigned long long)io->length);
		res = -EIO;
	}
	return res;
}

void local_rw_done(struct local *l, struct mp_io *io, long res)
{
	mp_path_done(l->path, io, (int)rw_result(l, io, res));
}

/* ---- identity and geometry ------------------------------------------------ */

static void read_sysfs(unsigned maj, unsigned min, const char *attr, char *buf,
		       size_t len)
{
	char path[256];
	FILE *f;

	buf[0] = 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", maj, min, attr);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

static int blockdev_geometry(struct local *l, const struct stat *st,
			     struct mp_lun_info *in)
{
	unsigned maj = major(st->st_rdev), min = minor(st->st_rdev);
	uint64_t size;
	int lss, pss;
	char buf[128];

	if (ioctl(l->fd, BLKGETSIZE64, &size) || ioctl(l->fd, BLKSSZGET, &lss) ||
	    ioctl(l->fd, BLKPBSZGET, &pss))
		return -errno;
	in->capacity = size;
	in->logical_sector = (uint32_t)lss;
	in->physical_sector = (uint32_t)pss;
	read_sysfs(maj, min, "wwid", buf, sizeof(buf));
	if (!buf[0])
		read_sysfs(maj, min, "device/wwid", buf, sizeof(buf));
	if (buf[0]) {
		snprintf(in->id, sizeof(in->id), "%.95s", buf);
	} else {
		struct stat bst;

		/* A loop device is its backing file: give it the file's
		 * identity so both name one LUN. */
		read_sysfs(maj, min, "loop/backing_file", buf, sizeof(buf));
		if (buf[0] && stat(buf, &bst) == 0)
			snprintf(in->id, sizeof(in->id), "file.%llx-%llu",
				 (unsigned long long)bst.st_dev,
				 (unsigned long long)bst.st_ino);
		else
			snprintf(in->id, sizeof(in->id), "blk.%u:%u", maj, min);
	}
	read_sysfs(maj, min, "device/serial", in->serial, sizeof(in->serial));
	read_sysfs(maj, min, "device/vendor", in->vendor, sizeof(in->vendor));
	read_sysfs(maj, min, "device/model", in->product, sizeof(in->product));
	read_sysfs(maj, min, "queue/write_zeroes_max_bytes", buf, sizeof(buf));
	if (strtoull(buf, NULL, 10) > 0)
		in->caps |= MP_CAP_DISCARD | MP_CAP_DISCARD_ZEROES;
	return 0;
}

static unsigned dio_mem_align(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_mem_align)
		return stx.stx_dio_mem_align > 512 ? stx.stx_dio_mem_align : 512;
	return 512;
}

/* ---- ops ----------------------------------------------------------------- */

static int local_open(struct mp_path *p, const char *spec,
		      const struct mp_open_opts *o)
{
	struct mp_lun_info *in = &p->info;
	struct local_opts lo;
	struct local *l;
	struct stat st;
	int flags, ret;

	ret = parse_spec(spec, &lo);
	if (ret) {
		if (ret == -MP_E_SPEC)
			mp_log("bad local LUN spec '%s'", spec);
		return ret;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->path = p;
	flags = (o->flags & MP_OPEN_RDONLY) ? O_RDONLY : O_RDWR;
	l->fd = open(lo.path, flags | O_DIRECT | O_CLOEXEC);
	l->direct = true;
	if (l->fd < 0 && errno == EINVAL) {
		/* tmpfs and a few others have no O_DIRECT: still usable, and
		 * coherent between processes through the page cache. */
		l->fd = open(lo.path, flags | O_CLOEXEC);
		l->direct = false;
	}
	if (l->fd < 0) {
		ret = -errno;
		goto free_l;
	}
	if (fstat(l->fd, &st)) {
		ret = -errno;
		goto close_fd;
	}
	in->caps = MP_CAP_FUA | MP_CAP_ATS_EMULATED;
	if (S_ISBLK(st.st_mode)) {
		l->blockdev = true;
		ret = blockdev_geometry(l, &st, in);
		if (ret)
			goto close_fd;
	} else if (S_ISREG(st.st_mode)) {
		in->logical_sector = in->physical_sector = 512;
		in->capacity = (uint64_t)st.st_size;
		in->caps |= MP_CAP_DISCARD | MP_CAP_DISCARD_ZEROES;
		snprintf(in->id, sizeof(in->id), "file.%llx-%llu",
			 (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
	} else {
		mp_log("%s: not a regular file or block device", lo.path);
		ret = -ENOTBLK;
		goto close_fd;
	}
	if (lo.sector) {
		if (lo.sector < in->logical_sector) {
			mp_log("%s: sector=%u below the device's %u", lo.path,
			       lo.sector, in->logical_sector);
			ret = -MP_E_SPEC;
			goto close_fd;
		}
		in->logical_sector = in->physical_sector = lo.sector;
	}
	in->capacity -= in->capacity % in->logical_sector;
	if (in->capacity == 0) {
		mp_log("%s: empty device", lo.path);
		ret = -ENOSPC;
		goto close_fd;
	}
	in->max_caw_sectors = LOCAL_MAX_CAW_SECTORS;
	if (in->max_caw_sectors * in->logical_sector > 32768)
		in->max_caw_sectors = 32768 / in->logical_sector;
	p->mem_align = l->direct ? dio_mem_align(l->fd) : 0;
	p->max_inflight = LOCAL_ENTRIES;

	pthread_mutex_init(&l->wlock, NULL);
	for (unsigned i = 0; i < LOCAL_CAW_STRIPES; i++)
		pthread_mutex_init(&l->caw_m[i], NULL);
	pthread_cond_init(&l->wcond, NULL);
	ret = -pthread_create(&l->worker, NULL, worker_main, l);
	if (ret)
		goto destroy_sync;

	p->priv = l;
	l->eng = lo.eng ? lo.eng : &local_aio_ops;
	ret = l->eng->init(l, LOCAL_ENTRIES);
	if (ret && !lo.eng && !(o->flags & MP_OPEN_NO_URING)) {
		mp_log("%s: libaio unavailable (%s), using io_uring", lo.path,
		       mp_strerror(ret));
		l->eng = &local_uring_ops;
		ret = l->eng->init(l, LOCAL_ENTRIES);
	}
	if (ret)
		goto stop_worker;
	snprintf(in->backend, sizeof(in->backend), "%s", l->eng->name);
	return 0;

stop_worker:
	pthread_mutex_lock(&l->wlock);
	l->wstop = true;
	pthread_cond_signal(&l->wcond);
	pthread_mutex_unlock(&l->wlock);
	pthread_join(l->worker, NULL);
destroy_sync:
	pthread_cond_destroy(&l->wcond);
	pthread_mutex_destroy(&l->wlock);
	for (unsigned i = 0; i < LOCAL_CAW_STRIPES; i++)
		pthread_mutex_destroy(&l->caw_m[i]);
close_fd:
	close(l->fd);
free_l:
	free(l);
	p->priv = NULL;
	return ret;
}

static void local_close(struct mp_path *p)
{
	struct local *l = p->priv;

	l->eng->fini(l);
	pthread_mutex_lock(&l->wlock);
	l->wstop = true;
	pthread_cond_signal(&l->wcond);
	pthread_mutex_unlock(&l->wlock);
	pthread_join(l->worker, NULL);
	pthread_cond_destroy(&l->wcond);
	pthread_mutex_destroy(&l->wlock);
	for (unsigned i = 0; i < LOCAL_CAW_STRIPES; i++)
		pthread_mutex_destroy(&l->caw_m[i]);
	close(l->fd);
	free(l);
}

/*
 * mp_io_run: the caller's thread does the system call the engine or the
 * worker would have done (a blocking preadv/pwritev2 on the O_DIRECT fd
 * completes when the device does) and is woken once, by the device's
 * interrupt, instead of a second time by the thread that reaped it.
 */
static bool local_run(struct mp_path *p, struct mp_io *io, int *result)
{
	struct local *l = p->priv;
	ssize_t n;

	switch (io->op) {
	case MP_OP_READ:
		do {
			n = preadv(l->fd, io->iov, io->iovcnt, (off_t)io->offset);
		} while (n < 0 && errno == EINTR);
		break;
	case MP_OP_WRITE:
		do {
			n = pwritev2(l->fd, io->iov, io->iovcnt, (off_t)io->offset,
				     io->flags & MP_IO_FUA ? RWF_DSYNC : 0);
		} while (n < 0 && errno == EINTR);
		break;
	case MP_OP_FLUSH:
	case MP_OP_CAW:
		*result = run_blocking(l, io);
		return true;
	default:
		return false;   /* discard, test unit ready: the worker's */
	}
	*result = (int)rw_result(l, io, n < 0 ? -errno : n);
	return true;
}

static void local_submit(struct mp_path *p, struct mp_io *io)
{
	struct local *l = p->priv;

	if (io->op == MP_OP_READ || io->op == MP_OP_WRITE) {
		l->eng->submit_rw(l, io);
		return;
	}
	/* RESERVE/RELEASE/PR never reach here: no MP_CAP_RESERVE6/PR. */
	worker_queue(l, io);
}

const struct mp_backend_ops mp_local_ops = {
	.name = "local",
	.open = local_open,
	.close = local_close,
	.submit = local_submit,
	.run = local_run,
};
