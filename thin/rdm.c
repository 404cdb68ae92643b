/*
 * rdm.c - raw device mappings (rdm.h): the LUNs a host sees, mapping files
 * and I/O through them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "thin/disk.h"
#include "thin/rdm.h"
#include "thin/space.h"

static int fail(char *err, size_t len, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return ret;
}

/* ---- the LUNs a host sees ---------------------------------------------- */

struct thin_lun {
	char *spec;
	mp_lun *lun;
	char id[97];                /* "" when it has no usable identity */
};

struct thin_luns {
	pthread_mutex_t lock;       /* the array (adds while mappings resolve) */
	struct thin_lun *a;
	unsigned n, cap;
};

int thin_luns_create(thin_luns **out)
{
	thin_luns *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	*out = l;
	return 0;
}

void thin_luns_destroy(thin_luns *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < l->n; i++) {
		mp_lun_close(l->a[i].lun);
		free(l->a[i].spec);
	}
	free(l->a);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static bool has_prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

int thin_rdm_identify(mp_lun *lun, struct fs_rdm *r, char *err, size_t errlen)
{
	struct mp_lun_info in;

	mp_lun_get_info(lun, &in);
	memset(r, 0, sizeof(*r));
	/* the identity multipath groups paths by, when it is one every host
	 * computes alike: a SCSI designator, or a file's device and inode
	 * (one machine); else the unit serial; per-connection names (an
	 * iSCSI target name, an sg handle) are no identity */
	if (has_prefix(in.id, "naa.") || has_prefix(in.id, "eui.") ||
	    has_prefix(in.id, "t10.")) {
		r->id_kind = FS_RDM_ID_SCSI;
		snprintf(r->id, sizeof(r->id), "%s", in.id);
	} else if (has_prefix(in.id, "file.") || has_prefix(in.id, "blk.")) {
		r->id_kind = FS_RDM_ID_LOCAL;
		snprintf(r->id, sizeof(r->id), "%s", in.id);
	} else if (in.serial[0]) {
		r->id_kind = FS_RDM_ID_SERIAL;
		snprintf(r->id, sizeof(r->id), "serial.%.88s", in.serial);
	} else {
		return fail(err, errlen, -EINVAL, "%s has no identity other "
			    "hosts can find it by (no VPD 0x83 designator, no "
			    "serial): it cannot be mapped", mp_lun_spec(lun));
	}
	snprintf(r->serial, sizeof(r->serial), "%s", in.serial);
	snprintf(r->vendor, sizeof(r->vendor), "%s", in.vendor);
	snprintf(r->product, sizeof(r->product), "%s", in.product);
	r->capacity = in.capacity;
	r->sector = in.logical_sector;
	return 0;
}

int thin_luns_add(thin_luns *l, const char *spec, char *err, size_t errlen)
{
	struct fs_rdm r;
	char e2[300];
	mp_lun *lun;
	int ret = mp_lun_open(spec, NULL, &lun);

	if (ret)
		return fail(err, errlen, ret, "LUN %s: %s", spec, mp_strerror(ret));
	if (thin_rdm_identify(lun, &r, e2, sizeof(e2)))
		r.id[0] = 0;        /* seen, but never mappable */
	pthread_mutex_lock(&l->lock);
	for (unsigned i = 0; i < l->n; i++) {
		if (r.id[0] && !strcmp(l->a[i].id, r.id)) {
			ret = fail(err, errlen, -EEXIST, "LUN %s is %s again (%s)",
				   spec, l->a[i].spec, r.id);
			goto unlock;
		}
	}
	if (l->n == l->cap) {
		unsigned cap = l->cap ? l->cap * 2 : 8;
		struct thin_lun *a = realloc(l->a, cap * sizeof(*a));

		if (!a) {
			ret = -ENOMEM;
			goto unlock;
		}
		l->a = a;
		l->cap = cap;
	}
	l->a[l->n].spec = strdup(spec);
	if (!l->a[l->n].spec) {
		ret = -ENOMEM;
		goto unlock;
	}
	l->a[l->n].lun = lun;
	snprintf(l->a[l->n].id, sizeof(l->a[l->n].id), "%s", r.id);
	l->n++;
	lun = NULL;
unlock:
	pthread_mutex_unlock(&l->lock);
	if (lun)
		mp_lun_close(lun);
	return ret;
}

/* The entry of identity or spec s (*spec its spec), or NULL. */
static mp_lun *find(thin_luns *l, const char *s, const char **spec)
{
	mp_lun *lun = NULL;

	pthread_mutex_lock(&l->lock);
	for (unsigned i = 0; i < l->n && !lun; i++) {
		if ((l->a[i].id[0] && !strcmp(l->a[i].id, s)) ||
		    !strcmp(l->a[i].spec, s)) {
			lun = l->a[i].lun;
			if (spec)
				*spec = l->a[i].spec;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return lun;
}

mp_lun *thin_luns_find(thin_luns *l, const char *id)
{
	return find(l, id, NULL);
}

/* ---- mappings ------------------------------------------------------------ */

/* "a/b/x.vmdk" -> dir "a/b", base "x"; the name must end in .vmdk */
static int split(const char *path, char *dir, size_t dlen, char *base,
		 size_t blen)
{
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	size_t n = strlen(name);

	if (n <= 5 || strcmp(name + n - 5, ".vmdk") || n - 5 >= blen ||
	    (slash && (size_t)(slash - path) >= dlen))
		return -EINVAL;
	snprintf(dir, dlen, "%.*s", slash ? (int)(slash - path) : 0, path);
	snprintf(base, blen, "%.*s", (int)(n - 5), name);
	return 0;
}

struct mapped {
	fs_vol *v;
	const char *id;
	char name[256];             /* the mapping file that has it */
};

static int find_mapping(void *arg, const char *name, uint64_t ino, uint8_t type)
{
	struct mapped *m = arg;
	struct fs_rdm r;

	if (type != FS_TYPE_RDM || fs_rdm_get(m->v, ino, &r) || strcmp(r.id, m->id))
		return 0;
	snprintf(m->name, sizeof(m->name), "%s", name);
	return 1;
}

int thin_rdm_mapping_of(fs_vol *v, const char *device, char *name,
			size_t len)
{
	struct mapped m = { .v = v };
	struct fs_rdm r;
	char e[300];
	mp_lun *lun;
	int ret = mp_lun_open(device, NULL, &lun);

	if (ret)
		return ret;
	ret = thin_rdm_identify(lun, &r, e, sizeof(e));
	mp_lun_close(lun);
	if (ret)
		return 0;           /* no identity: never mappable */
	m.id = r.id;
	ret = thin_walk(v, find_mapping, &m);
	if (ret)
		return ret;
	if (!m.name[0])
		return 0;
	snprintf(name, len, "%s", m.name);
	return 1;
}

static int write_text(fs_vol *v, uint64_t dir, const char *name,
		      const struct thin_desc *d)
{
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0600 };
	char *text = malloc(THIN_DESC_MAX);
	struct fs_stat st;
	fs_file *f = NULL;
	int n, ret;

	if (!text)
		return -ENOMEM;
	n = thin_desc_format(d, text, THIN_DESC_MAX);
	ret = n < 0 ? n : fs_create(v, dir, name, &a, &st);
	if (!ret)
		ret = fs_open(v, st.ino, FS_O_RDWR, &f);
	if (!ret) {
		ssize_t w = fs_pwrite(f, text, (size_t)n, 0);

		ret = w == n ? 0 : w < 0 ? (int)w : -EIO;
		if (!ret)
			ret = fs_fsync(f);
	}
	if (f)
		fs_close(f);
	free(text);
	return ret;
}

/* thin_rdm_create under the volume lock, from the look for mappings on */
static int rdm_create_locked(fs_vol *v, const char *path, const char *device,
			     const char *spec, struct fs_rdm *rp,
			     enum fs_rdm_mode mode, const char *host, char *err,
			     size_t errlen)
{
	char dir[4096], base[256], dname[300], mname[300];
	struct fs_create_args a = { .type = FS_TYPE_RDM, .mode = 0600 };
	struct mapped m = { .v = v };
	struct fs_rdm r = *rp;
	struct thin_desc d;
	struct fs_stat st;
	uint64_t dino;
	int ret;

	split(path, dir, sizeof(dir), base, sizeof(base));
	m.id = r.id;
	ret = thin_walk(v, find_mapping, &m);
	if (ret)
		return fail(err, errlen, ret, "looking for mappings of %s: %s",
			    device, fs_strerror(ret));
	if (m.name[0])
		return fail(err, errlen, -EBUSY, "%s (%s) is already mapped by "
			    "%s", device, r.id, m.name);
	r.mode = mode;
	r.mtime_ns = (uint64_t)time(NULL) * 1000000000ull;
	snprintf(r.host, sizeof(r.host), "%s", host ? host : "");
	snprintf(r.spec, sizeof(r.spec), "%s", spec);
	a.rdm = &r;
	snprintf(dname, sizeof(dname), "%s.vmdk", base);
	snprintf(mname, sizeof(mname), "%s-%s.vmdk", base,
		 mode == FS_RDM_PHYSICAL ? "rdmp" : "rdm");
	ret = fs_resolve(v, dir, &st);
	if (!ret && st.type != FS_TYPE_DIR)
		ret = -ENOTDIR;
	if (ret)
		return fail(err, errlen, ret, "folder '%s': %s", dir[0] ? dir : "/",
			    fs_strerror(ret));
	dino = st.ino;
	if (fs_lookup(v, dino, dname, &st) == 0 || fs_lookup(v, dino, mname, &st) == 0)
		return fail(err, errlen, -EEXIST, "%s exists", path);
	ret = thin_desc_new(&d, mode == FS_RDM_PHYSICAL ? THIN_RDMP : THIN_RDM,
			    r.capacity, mname);
	if (ret)
		return fail(err, errlen, ret, "descriptor for %s", path);
	/* the mapping first, the descriptor last: the disk exists once its
	 * descriptor does */
	ret = fs_create(v, dino, mname, &a, &st);
	if (ret)
		return fail(err, errlen, ret, "creating %s: %s", mname,
			    fs_strerror(ret));
	ret = write_text(v, dino, dname, &d);
	if (ret) {
		fs_unlink(v, dino, dname);
		fs_unlink(v, dino, mname);
		return fail(err, errlen, ret, "writing %s: %s", dname,
			    fs_strerror(ret));
	}
	return 0;
}

int thin_rdm_create(fs_vol *v, thin_luns *l, const char *path,
		    const char *device, enum fs_rdm_mode mode, const char *host,
		    char *err, size_t errlen)
{
	char dir[4096], base[256], label[80];
	struct fs_rdm r;
	const char *spec = NULL;
	uint32_t index;
	lk_lock *vl;
	mp_lun *lun;
	int ret;

	if (split(path, dir, sizeof(dir), base, sizeof(base)))
		return fail(err, errlen, -EINVAL, "%s: a disk's name ends in .vmdk",
			    path);
	lun = find(l, device, &spec);
	if (!lun) {
		/* another name of one of our LUNs (a symlink, another
		 * portal): look it up by identity */
		mp_lun *tmp;

		if (mp_lun_open(device, NULL, &tmp) == 0) {
			if (thin_rdm_identify(tmp, &r, err, errlen) == 0)
				lun = find(l, r.id, &spec);
			mp_lun_close(tmp);
		}
		if (!lun)
			return fail(err, errlen, -ENODEV, "%s is not one of this "
				    "host's LUNs (vmfsd --lun)", device);
	}
	ret = thin_rdm_identify(lun, &r, err, errlen);
	if (ret)
		return ret;
	ret = fs_lun_extent(lun, label, sizeof(label), &index);
	if (ret == 0)
		return fail(err, errlen, -EBUSY, "%s holds extent %u of the "
			    "volume '%s': a datastore's LUN cannot be mapped",
			    device, index, label);
	if (ret != -ENOENT)
		return fail(err, errlen, ret, "reading %s: %s", device,
			    fs_strerror(ret));
	/* no other host may map it between our look and our mapping */
	ret = fs_vol_lock(v, 15000, &vl);
	if (ret)
		return fail(err, errlen, ret, "the volume lock: %s", fs_strerror(ret));
	/* again under the lock, which a span (vmkfstools -Z) holds while it
	 * writes the new extent's header */
	ret = fs_lun_extent(lun, label, sizeof(label), &index);
	if (ret == 0)
		ret = fail(err, errlen, -EBUSY, "%s holds extent %u of the "
			   "volume '%s': a datastore's LUN cannot be mapped",
			   device, index, label);
	else if (ret == -ENOENT)
		ret = rdm_create_locked(v, path, device, spec, &r, mode, host,
					err, errlen);
	else
		ret = fail(err, errlen, ret, "reading %s: %s", device,
			   fs_strerror(ret));
	fs_vol_unlock(vl);
	return ret;
}

int thin_rdm_resolve(fs_vol *v, thin_luns *l, const char *path,
		     struct thin_rdm_info *in, char *err, size_t errlen)
{
	struct fs_stat st;
	int ret;

	memset(in, 0, sizeof(*in));
	snprintf(in->file, sizeof(in->file), "%s", path);
	ret = fs_resolve(v, path, &st);
	if (!ret && st.type == FS_TYPE_FILE) {
		/* a descriptor: its one VMFSRDM extent is the mapping */
		struct thin_info ti;
		const char *slash = strrchr(path, '/');

		ret = thin_info(v, path, &ti, err, errlen);
		if (ret)
			return ret;
		if ((ti.kind != THIN_RDM && ti.kind != THIN_RDMP) ||
		    ti.desc.nextents != 1)
			return fail(err, errlen, -EINVAL, "%s maps no raw device "
				    "(a %s disk)", path, thin_kind_name(ti.kind));
		snprintf(in->file, sizeof(in->file), "%.*s%s",
			 slash ? (int)(slash - path + 1) : 0, path,
			 ti.desc.ext[0].file);
		ret = fs_resolve(v, in->file, &st);
	}
	if (ret)
		return fail(err, errlen, ret, "%s: %s", in->file, fs_strerror(ret));
	if (st.type != FS_TYPE_RDM)
		return fail(err, errlen, -EINVAL, "%s is no mapping file", in->file);
	in->ino = st.ino;
	ret = fs_rdm_get(v, st.ino, &in->rec);
	if (ret)
		return fail(err, errlen, ret, "%s: %s", in->file, fs_strerror(ret));
	in->lun = find(l, in->rec.id, &in->spec);
	if (!in->lun)
		return fail(err, errlen, -ENODEV, "%s maps LUN %s, which this "
			    "host does not see (vmfsd --lun)", in->file, in->rec.id);
	return 0;
}

/* ---- I/O ---------------------------------------------------------------------- */

struct thin_rdm {
	fs_file *f;                 /* holds the mapping file's lock */
	mp_lun *lun;
	uint64_t size;
	unsigned ss;
	bool rw;
};

int thin_rdm_open(fs_vol *v, thin_luns *l, uint64_t ino, bool rw,
		  thin_rdm **out, char *err, size_t errlen)
{
	struct mp_lun_info li;
	struct fs_rdm rec;
	thin_rdm *r;
	int ret = fs_rdm_get(v, ino, &rec);

	if (ret)
		return fail(err, errlen, ret, "mapping record: %s", fs_strerror(ret));
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->lun = find(l, rec.id, NULL);
	if (!r->lun) {
		free(r);
		return fail(err, errlen, -ENODEV, "LUN %s is not seen by this "
			    "host (vmfsd --lun)", rec.id);
	}
	mp_lun_get_info(r->lun, &li);
	if (li.capacity < rec.capacity || li.logical_sector != rec.sector) {
		free(r);
		return fail(err, errlen, -EIO, "LUN %s has %llu bytes of %u-byte "
			    "sectors now, mapped with %llu of %u", rec.id,
			    (unsigned long long)li.capacity, li.logical_sector,
			    (unsigned long long)rec.capacity, rec.sector);
	}
	ret = fs_open(v, ino, rw ? FS_O_RDWR : FS_O_RDONLY, &r->f);
	if (ret) {
		free(r);
		return fail(err, errlen, ret, "mapping file: %s", fs_strerror(ret));
	}
	r->size = rec.capacity;
	r->ss = rec.sector;
	r->rw = rw;
	*out = r;
	return 0;
}

/* One read-modify-write of edge sectors at a time on this host, whatever
 * the handle: two opens of one mapping writing bytes of the same sector
 * must not both write back what they read before the other wrote (the
 * mapping file's lock keeps other hosts out). */
static pthread_mutex_t rmw = PTHREAD_MUTEX_INITIALIZER;

/* Sector-aligned [a0, a1) around [off, off+len) through a bounce buffer:
 * reads copy out; writes read the edges, copy in and write back. */
static ssize_t bounce(thin_rdm *r, void *rbuf, const void *wbuf, size_t len,
		      uint64_t off)
{
	uint64_t a0 = off / r->ss * r->ss;
	uint64_t a1 = (off + len + r->ss - 1) / r->ss * r->ss;
	unsigned char *b = mp_alloc_aligned(4096, (size_t)(a1 - a0));
	ssize_t n;

	if (!b)
		return -ENOMEM;
	if (wbuf)
		pthread_mutex_lock(&rmw);
	n = mp_lun_pread(r->lun, b, (size_t)(a1 - a0), a0);
	if (n >= 0 && wbuf) {
		memcpy(b + (off - a0), wbuf, len);
		n = mp_lun_pwrite(r->lun, b, (size_t)(a1 - a0), a0, 0);
	}
	if (wbuf)
		pthread_mutex_unlock(&rmw);
	if (n >= 0 && rbuf)
		memcpy(rbuf, b + (off - a0), len);
	free(b);
	return n < 0 ? n : (ssize_t)len;
}

ssize_t thin_rdm_pread(thin_rdm *r, void *buf, size_t len, uint64_t off)
{
	if (off >= r->size)
		return 0;
	if (len > r->size - off)
		len = (size_t)(r->size - off);
	if (!len)
		return 0;
	if (off % r->ss || len % r->ss)
		return bounce(r, buf, NULL, len, off);
	return mp_lun_pread(r->lun, buf, len, off);
}

ssize_t thin_rdm_pwrite(thin_rdm *r, const void *buf, size_t len, uint64_t off)
{
	if (!r->rw)
		return -EBADF;
	if (off >= r->size || len > r->size - off)
		return len ? -ENOSPC : 0;
	if (!len)
		return 0;
	if (off % r->ss || len % r->ss)
		return bounce(r, NULL, buf, len, off);
	return mp_lun_pwrite(r->lun, buf, len, off, 0);
}

int thin_rdm_flush(thin_rdm *r)
{
	return r->rw ? mp_lun_flush(r->lun) : 0;
}

int thin_rdm_fstat(thin_rdm *r, struct fs_stat *st)
{
	return fs_fstat(r->f, st);
}

int thin_rdm_close(thin_rdm *r)
{
	int ret = thin_rdm_flush(r), r2 = fs_close(r->f);

	free(r);
	return ret ? ret : r2;
}
