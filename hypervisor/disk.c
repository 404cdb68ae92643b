/*
 * disk.c - virtual-disk backends behind struct hv_disk_ops.
 *
 * Today: "raw", a LUN or an image file through the device layer (O_DIRECT
 * through io_uring, libaio as fallback), also when named by a VMware
 * descriptor with one FLAT or VMFS extent (parsed by thin/vmdk.c).  Snapshot chains,
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
#include "thin/vmdk.h"

_Static_assert(sizeof(struct mp_io) <= sizeof(((struct hv_disk_req *)0)->be_space),
	       "an mp_io fits in a disk request's backend space");

/* The raw backend: a LUN or file, from byte `base` on (a FLAT extent's
 * offset in its file). */
struct raw {
	mp_lun *lun;
	uint64_t base;
};

static void raw_done(struct mp_io *io)
{
	struct hv_disk_req *r = io->priv;

	r->result = io->result < 0 ? io->result : 0;
	r->cb(r);
}

static int raw_submit(struct hv_disk *d, struct hv_disk_req *r)
{
	struct mp_io *io = (struct mp_io *)r->be_space;
	struct raw *raw = d->priv;

	memset(io, 0, sizeof(*io));
	switch (r->op) {
	case HV_DISK_READ:
		mp_io_prep_read(io, r->iov, r->iovcnt, raw->base + r->offset);
		break;
	case HV_DISK_WRITE:
		mp_io_prep_write(io, r->iov, r->iovcnt, raw->base + r->offset, 0);
		break;
	case HV_DISK_FLUSH:
		io->op = MP_OP_FLUSH;
		break;
	default:
		return -EINVAL;
	}
	io->cb = raw_done;
	io->priv = r;
	return mp_io_submit(raw->lun, io);
}

static void raw_close(struct hv_disk *d)
{
	struct raw *raw = d->priv;

	mp_lun_close(raw->lun);
	free(raw);
}

static const struct hv_disk_ops raw_ops = {
	.name = "raw",
	.submit = raw_submit,
	.close = raw_close,
};

/* The extent a VMware descriptor names, as a raw disk. */
struct extent {
	char path[PATH_MAX];
	uint64_t base, size;	/* bytes */
	bool readonly;
	bool ctk;		/* names a change tracking file */
};

/*
 * A VMware descriptor (.vmdk text, parsed by the virtual-disk layer's
 * thin_desc_parse) with one data extent: FLAT (monolithicFlat, with its
 * offset) or VMFS (what ESX and vmkfstools write: a flat file).  Its file
 * resolves against the descriptor's folder.  Returns 1 with *x filled, 0
 * when the file is not a descriptor, -error with a message otherwise.
 */
static int vmdk_extent(const char *path, struct extent *x, char *err,
		       size_t errlen)
{
	struct thin_desc *desc = NULL;
	const struct thin_extent *e;
	char *text = NULL, dir[PATH_MAX], perr[200];
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;	/* not a file: the device layer will say */
	text = malloc(THIN_DESC_MAX);
	desc = calloc(1, sizeof(*desc));
	if (!text || !desc) {
		ret = -ENOMEM;
		goto out;
	}
	n = read(fd, text, THIN_DESC_MAX);
	if (n < 21 || memcmp(text, "# Disk DescriptorFile", 21))
		goto out;	/* a raw image */
	ret = thin_desc_parse(text, (size_t)n, desc, perr, sizeof(perr));
	if (ret) {
		snprintf(err, errlen, "%s: %s", path, perr);
		goto out;
	}
	ret = -ENOTSUP;
	if (desc->parent_cid != 0xffffffffu) {
		snprintf(err, errlen, "%s: a delta disk (snapshot): not "
			 "supported yet", path);
		goto out;
	}
	if (desc->nextents != 1) {
		snprintf(err, errlen, "%s: %u extents: one data extent is "
			 "supported", path, desc->nextents);
		goto out;
	}
	e = &desc->ext[0];
	if (!strcmp(e->type, "VMFSRDM") || !strcmp(e->type, "VMFSRAW")) {
		snprintf(err, errlen, "%s: raw device mappings need the "
			 "datastore (not supported yet)", path);
		goto out;
	}
	if (strcmp(e->type, "FLAT") && strcmp(e->type, "VMFS")) {
		snprintf(err, errlen, "%s: extent type %s not supported (FLAT "
			 "or VMFS)", path, e->type);
		goto out;
	}
	if (!strcmp(e->access, "NOACCESS")) {
		ret = -EACCES;
		snprintf(err, errlen, "%s: extent is NOACCESS", path);
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if (e->file[0] == '/')
		ret = snprintf(x->path, sizeof(x->path), "%s", e->file);
	else
		ret = snprintf(x->path, sizeof(x->path), "%s/%s", dirname(dir),
			       e->file);
	if (ret < 0 || (size_t)ret >= sizeof(x->path)) {
		ret = -ENAMETOOLONG;
		snprintf(err, errlen, "%s: extent path too long", path);
		goto out;
	}
	x->base = (e->has_offset ? e->offset : 0) << 9;
	x->size = e->sectors << 9;
	x->readonly = !strcmp(e->access, "RDONLY");
	x->ctk = desc->change_track[0] != 0;
	ret = 1;
out:
	close(fd);
	free(text);
	free(desc);
	return ret;
}

int hv_disk_open(const char *name, bool readonly, struct hv_disk **out,
		 char *err, size_t errlen)
{
	struct hv_disk_opts o = { .readonly = readonly };

	return hv_disk_open_opts(name, &o, out, err, errlen);
}

int hv_disk_open_opts(const char *name, const struct hv_disk_opts *o,
		      struct hv_disk **out, char *err, size_t errlen)
{
	struct mp_open_opts opts = { .queue_depth = 128 };
	bool readonly = o->readonly;
	struct mp_lun_info info;
	struct extent x = { .base = 0 };
	struct hv_disk *d = NULL;
	struct raw *raw = NULL;
	const char *spec = name;
	mp_lun *lun = NULL;
	int ret;

	*out = NULL;
	ret = vmdk_extent(name, &x, err, errlen);
	if (ret < 0)
		return ret;
	if (ret == 1) {
		spec = x.path;
		readonly |= x.readonly;
	}
	if (!o->no_mapped) {
		/* on a vmfsd mount: mapped, never through FUSE */
		struct hv_mapped_args ma = {
			.desc = ret == 1 ? name : NULL, .data = spec,
			.base = x.base, .size = x.size, .readonly = readonly,
			.cbt = x.ctk,
			.fence = o->fence, .fence_arg = o->fence_arg,
		};

		ret = hv_disk_open_mapped(&ma, out, err, errlen);
		if (ret != -ENOTSUP)
			return ret;
		err[0] = 0;	/* not on a mount, or too small: raw */
	}
	if (readonly)
		opts.flags |= MP_OPEN_RDONLY;
	ret = mp_lun_open(spec, &opts, &lun);
	if (ret) {
		snprintf(err, errlen, "disk %s: %s", spec, mp_strerror(ret));
		return ret;
	}
	mp_lun_get_info(lun, &info);
	if (!x.size)
		x.size = info.capacity;
	if (x.base > info.capacity || x.size > info.capacity - x.base ||
	    x.base % (info.logical_sector ? info.logical_sector : 512)) {
		snprintf(err, errlen, "%s: the descriptor's extent (%llu bytes "
			 "at %llu) does not fit %s (%llu bytes)", name,
			 (unsigned long long)x.size, (unsigned long long)x.base,
			 spec, (unsigned long long)info.capacity);
		mp_lun_close(lun);
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	raw = calloc(1, sizeof(*raw));
	if (!d || !raw || !(d->name = strdup(name))) {
		free(d);
		free(raw);
		mp_lun_close(lun);
		return -ENOMEM;
	}
	raw->lun = lun;
	raw->base = x.base;
	d->ops = &raw_ops;
	d->size = x.size;
	d->sector = info.logical_sector ? info.logical_sector : 512;
	d->readonly = readonly;
	d->priv = raw;
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
