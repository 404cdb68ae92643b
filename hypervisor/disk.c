/*
 * disk.c - virtual-disk backends behind struct hv_disk_ops.
 *
 * Today: "raw", a LUN or an image file through the device layer (O_DIRECT
 * through io_uring, libaio as fallback), and the VMware monolithicFlat
 * descriptor, which is only a way to name a raw extent.  Snapshot chains,
 * fs-mapped virtual disks and a Storage VMotion mirror plug in as further
 * ops tables: the virtio-blk device only ever calls hv_disk_submit().
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hypervisor/hv_int.h"
#include "multipath/mp.h"

_Static_assert(sizeof(struct mp_io) <= sizeof(((struct hv_disk_req *)0)->be_space),
	       "an mp_io fits in a disk request's backend space");

static void raw_done(struct mp_io *io)
{
	struct hv_disk_req *r = io->priv;

	r->result = io->result < 0 ? io->result : 0;
	r->cb(r);
}

static int raw_submit(struct hv_disk *d, struct hv_disk_req *r)
{
	struct mp_io *io = (struct mp_io *)r->be_space;
	mp_lun *lun = d->priv;

	memset(io, 0, sizeof(*io));
	switch (r->op) {
	case HV_DISK_READ:
		mp_io_prep_read(io, r->iov, r->iovcnt, r->offset);
		break;
	case HV_DISK_WRITE:
		mp_io_prep_write(io, r->iov, r->iovcnt, r->offset, 0);
		break;
	case HV_DISK_FLUSH:
		io->op = MP_OP_FLUSH;
		break;
	default:
		return -EINVAL;
	}
	io->cb = raw_done;
	io->priv = r;
	return mp_io_submit(lun, io);
}

static void raw_close(struct hv_disk *d)
{
	mp_lun_close(d->priv);
}

static const struct hv_disk_ops raw_ops = {
	.name = "raw",
	.submit = raw_submit,
	.close = raw_close,
};

/*
 * A monolithicFlat descriptor: a small text file beginning with
 * "# Disk DescriptorFile" whose extent lines read
 *   RW <sectors> FLAT "<file>" <offset>
 * One FLAT extent at offset 0 is supported; its file is resolved against
 * the descriptor's folder.  Returns 1 with the path in out, 0 when the file
 * is not a descriptor, -error with a message otherwise.
 */
static int vmdk_flat(const char *path, char *out, size_t outlen,
		     uint64_t *sectors, char *err, size_t errlen)
{
	char buf[4096], *line, *save = NULL, dir[PATH_MAX], *dn = NULL;
	unsigned extents = 0;
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;	/* not a file: the device layer will say */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 21 || memcmp(buf, "# Disk DescriptorFile", 21))
		return 0;
	buf[n] = 0;
	snprintf(dir, sizeof(dir), "%s", path);
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char access[8], type[16], file[PATH_MAX];
		unsigned long long secs, off;

		while (*line == ' ' || *line == '\t')
			line++;
		if (strncmp(line, "RW ", 3) && strncmp(line, "RDONLY ", 7) &&
		    strncmp(line, "NOACCESS ", 9))
			continue;
		extents++;
		if (sscanf(line, "%7s %llu %15s \"%4095[^\"]\" %llu", access,
			   &secs, type, file, &off) != 5 ||
		    strcmp(type, "FLAT") || off != 0 || strcmp(access, "RW")) {
			snprintf(err, errlen, "%s: only one RW FLAT extent at "
				 "offset 0 is supported (monolithicFlat); other "
				 "VMDK types come with the virtual-disk layer",
				 path);
			return -ENOTSUP;
		}
		if (!dn)
			dn = dirname(dir);
		if (file[0] != '/' && strlen(dn) + strlen(file) + 2 > outlen) {
			snprintf(err, errlen, "%s: extent path too long", path);
			return -ENAMETOOLONG;
		}
		if (file[0] == '/')
			memcpy(out, file, strlen(file) + 1 < outlen ?
			       strlen(file) + 1 : outlen);
		else
			strcat(strcat(strcpy(out, dn), "/"), file);
		out[outlen - 1] = 0;
		*sectors = secs;
		ret = 1;
	}
	if (extents != 1) {
		snprintf(err, errlen, "%s: descriptor with %u extents (one "
			 "FLAT extent supported)", path, extents);
		return -ENOTSUP;
	}
	return ret;
}

int hv_disk_open(const char *name, bool readonly, struct hv_disk **out,
		 char *err, size_t errlen)
{
	struct mp_open_opts opts = {
		.flags = readonly ? MP_OPEN_RDONLY : 0,
		.queue_depth = 128,
	};
	struct mp_lun_info info;
	struct hv_disk *d;
	char flat[PATH_MAX];
	const char *spec = name;
	uint64_t sectors = 0;
	mp_lun *lun = NULL;
	int ret;

	*out = NULL;
	ret = vmdk_flat(name, flat, sizeof(flat), &sectors, err, errlen);
	if (ret < 0)
		return ret;
	if (ret == 1)
		spec = flat;
	ret = mp_lun_open(spec, &opts, &lun);
	if (ret) {
		snprintf(err, errlen, "disk %s: %s", spec, mp_strerror(ret));
		return ret;
	}
	mp_lun_get_info(lun, &info);
	if (sectors && sectors << 9 > info.capacity) {
		snprintf(err, errlen, "%s: descriptor says %llu sectors, extent "
			 "%s has %llu", name, (unsigned long long)sectors, spec,
			 (unsigned long long)(info.capacity >> 9));
		mp_lun_close(lun);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d || !(d->name = strdup(name))) {
		free(d);
		mp_lun_close(lun);
		return -ENOMEM;
	}
	d->ops = &raw_ops;
	d->size = sectors ? sectors << 9 : info.capacity;
	d->sector = info.logical_sector ? info.logical_sector : 512;
	d->readonly = readonly;
	d->priv = lun;
	*out = d;
	return 0;
}

void hv_disk_close(struct hv_disk *d)
{
	if (!d)
		return;
	d->ops->close(d);
	free(d->name);
	free(d);
}
