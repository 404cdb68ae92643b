/*
 * disk.c - virtual disks on a mounted volume (disk.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thin/disk.h"
#include "thin/rdm.h"

#define CHUNK (1u << 20)

static int fail(char *err, size_t len, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(err, len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < len)
		snprintf(err + n, len - (size_t)n, ": %s", fs_strerror(ret));
	return ret;
}

/* "a/b/disk.vmdk" -> dir "a/b", base "disk"; the name must end in .vmdk */
static int split(const char *path, char *dir, size_t dlen, char *base,
		 size_t blen)
{
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	size_t n = strlen(name);

	if (n <= 5 || strcmp(name + n - 5, ".vmdk") || n - 5 >= blen)
		return -EINVAL;
	if (slash && (size_t)(slash - path) >= dlen)
		return -ENAMETOOLONG;
	snprintf(dir, dlen, "%.*s", slash ? (int)(slash - path) : 0, path);
	snprintf(base, blen, "%.*s", (int)(n - 5), name);
	return 0;
}

static int dir_of(fs_vol *v, const char *dir, uint64_t *ino)
{
	struct fs_stat st;
	int ret = fs_resolve(v, dir, &st);

	if (!ret && st.type != FS_TYPE_DIR)
		ret = -ENOTDIR;
	*ino = st.ino;
	return ret;
}

static int new_file(fs_vol *v, uint64_t dir, const char *name, fs_file **f)
{
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0600 };
	struct fs_stat st;
	int ret = fs_create(v, dir, name, &a, &st);

	return ret ? ret : fs_open(v, st.ino, FS_O_RDWR, f);
}

static int open_name(fs_vol *v, uint64_t dir, const char *name, int flags,
		     fs_file **f)
{
	struct fs_stat st;
	int ret = fs_lookup(v, dir, name, &st);

	if (!ret && st.type != FS_TYPE_FILE)
		ret = -EISDIR;
	return ret ? ret : fs_open(v, st.ino, flags, f);
}

static int write_desc(fs_vol *v, uint64_t dir, const char *name,
		      const struct thin_desc *d, bool create)
{
	char *text = malloc(THIN_DESC_MAX);
	fs_file *f;
	int n, ret;

	if (!text)
		return -ENOMEM;
	n = thin_desc_format(d, text, THIN_DESC_MAX);
	if (n < 0) {
		free(text);
		return n;
	}
	ret = create ? new_file(v, dir, name, &f) :
		       open_name(v, dir, name, FS_O_RDWR, &f);
	if (!ret) {
		ssize_t w = fs_pwrite(f, text, (size_t)n, 0);

		ret = w == n ? 0 : w < 0 ? (int)w : -EIO;
		if (!ret)
			ret = fs_ftruncate(f, (uint64_t)n);
		if (!ret)
			ret = fs_fsync(f);
		fs_close(f);
	}
	free(text);
	return ret;
}

static int read_desc(fs_vol *v, uint64_t dir, const char *name,
		     struct thin_desc *d, char *err, size_t errlen)
{
	char *text = malloc(THIN_DESC_MAX + 1);
	fs_file *f;
	ssize_t n;
	int ret;

	if (!text)
		return -ENOMEM;
	ret = open_name(v, dir, name, FS_O_RDONLY, &f);
	if (ret) {
		free(text);
		return fail(err, errlen, ret, "%s", name);
	}
	n = fs_pread(f, text, THIN_DESC_MAX + 1, 0);
	fs_close(f);
	if (n < 0)
		ret = fail(err, errlen, (int)n, "reading %s", name);
	else
		ret = thin_desc_parse(text, (size_t)n, d, err, errlen);
	free(text);
	return ret;
}

/* Write zeros over [from, to) of f (eager zeroing), reporting progress. */
static int zero_range(fs_file *f, uint64_t from, uint64_t to, uint64_t total,
		      uint64_t base, const char *what, const struct thin_cb *cb)
{
	void *z = mp_alloc_aligned(4096, CHUNK);
	int ret = z ? 0 : -ENOMEM;

	if (z)
		memset(z, 0, CHUNK);
	for (uint64_t off = from; !ret && off < to; off += CHUNK) {
		size_t n = to - off < CHUNK ? (size_t)(to - off) : CHUNK;
		ssize_t w;

		if (cb && cb->cancelled && cb->cancelled(cb->arg)) {
			ret = -ECANCELED;
			break;
		}
		w = fs_pwrite(f, z, n, off);
		if (w != (ssize_t)n)
			ret = w < 0 ? (int)w : -EIO;
		if (cb && cb->progress)
			cb->progress(cb->arg, what, base + off + n - from, total);
	}
	free(z);
	return ret;
}

/* Size and provisioning of a data file, from..to. */
static int provision(fs_file *f, enum thin_kind kind, uint64_t from,
		     uint64_t to, const char *what, const struct thin_cb *cb)
{
	int ret;

	if (kind == THIN_THIN)
		return fs_ftruncate(f, to);
	/* reserve every block; zeroedthick reads zeros until written */
	ret = fs_fallocate(f, from, to - from, false);
	if (!ret && kind == THIN_EAGERZEROEDTHICK)
		ret = zero_range(f, from, to, to - from, 0, what, cb);
	if (!ret)
		ret = fs_fsync(f);
	return ret;
}

/*
 * A disk being made lives under temporary names until it is whole:
 * ".NAME-flat.vmdk.partial" (the data, held open read-write while it is
 * filled) and ".NAME.vmdk.partial" (the descriptor, written when the data
 * is complete), then both are renamed into place, data first.  A crash
 * (or a vmfsd killed) at any point leaves either the finished disk, or
 * temporaries only, or - between the two renames - NAME-flat.vmdk beside
 * .NAME.vmdk.partial: never a disk under its final name that was not
 * finished.  The next creation of NAME (or -U NAME.vmdk) removes what such
 * a crash left, unless a host is still making it (its data file open).
 */
struct making {
	uint64_t dino;
	char dname[300], fname[300];     /* final names */
	char tdname[320], tfname[320];   /* temporaries */
	fs_file *f;                      /* the data, open while it is made */
};

/* Whether name in dir is open read-write on some host (being made). */
static bool in_use(fs_vol *v, uint64_t dir, const char *name)
{
	struct fs_lock_report r;
	struct fs_stat st;

	if (fs_lookup(v, dir, name, &st))
		return false;
	if (fs_lock_report(v, st.ino, &r))
		return false;
	if (r.opens_rw > 0)
		return true;
	/* another host holds it and lives: it is making the disk now (a
	 * dead or recovered holder's hold is broken by the unlink) */
	for (uint32_t i = 0; r.held != LK_EXCL && i < r.info.nholders; i++)
		if (r.info.mode == LK_EXCL &&
		    r.info.holders[i].status == LK_HOST_LIVE)
			return true;
	return false;
}

/* Remove what an interrupted making of m's disk left behind. */
static int making_clean(fs_vol *v, const struct making *m, char *err,
			size_t errlen)
{
	struct fs_stat st;
	bool half = fs_lookup(v, m->dino, m->tdname, &st) == 0 &&
		    fs_lookup(v, m->dino, m->dname, &st) != 0;

	if (in_use(v, m->dino, m->tfname) || (half && in_use(v, m->dino, m->fname)))
		return fail(err, errlen, -EBUSY, "%s is being made by a host "
			    "right now", m->dname);
	/* between the renames: the data under its final name has no
	 * descriptor yet; the disk was never made */
	if (half && fs_unlink(v, m->dino, m->fname) == 0)
		fprintf(stderr, "thin: removed %s, left by an interrupted "
			"creation\n", m->fname);
	if (fs_unlink(v, m->dino, m->tfname) == 0)
		fprintf(stderr, "thin: removed %s, left by an interrupted "
			"creation\n", m->tfname);
	fs_unlink(v, m->dino, m->tdname);
	return 0;
}

static void making_names(struct making *m, uint64_t dino, const char *base)
{
	m->dino = dino;
	m->f = NULL;
	snprintf(m->dname, sizeof(m->dname), "%s.vmdk", base);
	snprintf(m->fname, sizeof(m->fname), "%s-flat.vmdk", base);
	snprintf(m->tdname, sizeof(m->tdname), ".%s.partial", m->dname);
	snprintf(m->tfname, sizeof(m->tfname), ".%s.partial", m->fname);
}

/* Clean up, check that the disk does not exist, create the data file
 * under its temporary name (m->f, open read-write). */
static int making_begin(fs_vol *v, struct making *m, const char *path,
			char *err, size_t errlen)
{
	struct fs_stat st;
	int ret = making_clean(v, m, err, errlen);

	if (ret)
		return ret;
	if (fs_lookup(v, m->dino, m->dname, &st) == 0 ||
	    fs_lookup(v, m->dino, m->fname, &st) == 0)
		return fail(err, errlen, -EEXIST, "%s", path);
	ret = new_file(v, m->dino, m->tfname, &m->f);
	return ret ? fail(err, errlen, ret, "creating %s", m->tfname) : 0;
}

/* The data is complete: descriptor, then both names into place. */
static int making_commit(fs_vol *v, struct making *m, const struct thin_desc *d)
{
	int ret = fs_fsync(m->f);

	if (!ret)
		ret = write_desc(v, m->dino, m->tdname, d, true);
	if (!ret)
		ret = fs_rename(v, m->dino, m->tfname, m->dino, m->fname,
				FS_RENAME_NOREPLACE);
	if (!ret) {
		ret = fs_rename(v, m->dino, m->tdname, m->dino, m->dname,
				FS_RENAME_NOREPLACE);
		if (ret)   /* nothing half-made under the final names */
			fs_rename(v, m->dino, m->fname, m->dino, m->tfname,
				  FS_RENAME_NOREPLACE);
	}
	/* the disk there, for good and for every host, when we return */
	if (!ret)
		ret = fs_sync(v);
	fs_close(m->f);
	m->f = NULL;
	return ret;
}

static void making_abort(fs_vol *v, struct making *m)
{
	if (m->f)
		fs_close(m->f);
	m->f = NULL;
	fs_unlink(v, m->dino, m->tdname);
	fs_unlink(v, m->dino, m->tfname);
}

int thin_create(fs_vol *v, const char *path, uint64_t size,
		enum thin_kind kind, const struct thin_cb *cb, char *err,
		size_t errlen)
{
	char dir[4096], base[256];
	struct making m;
	struct thin_desc d;
	uint64_t dino;
	int ret;

	if (split(path, dir, sizeof(dir), base, sizeof(base)))
		return fail(err, errlen, -EINVAL, "%s: a disk's name ends in "
			    ".vmdk", path);
	if (kind < THIN_THIN || kind > THIN_EAGERZEROEDTHICK)
		return fail(err, errlen, -EINVAL, "disk type");
	if (!size || size % 512)
		return fail(err, errlen, -EINVAL, "size %llu: a positive "
			    "multiple of 512 bytes", (unsigned long long)size);
	ret = dir_of(v, dir, &dino);
	if (ret)
		return fail(err, errlen, ret, "folder '%s'", dir[0] ? dir : "/");
	making_names(&m, dino, base);
	ret = thin_desc_new(&d, kind, size, m.fname);
	if (ret)
		return fail(err, errlen, ret, "descriptor for %s", path);
	ret = making_begin(v, &m, path, err, errlen);
	if (ret)
		return ret;
	ret = provision(m.f, kind, 0, size, "Creating disk", cb);
	if (ret) {
		fail(err, errlen, ret, "%s %s of %llu bytes",
		     ret == -ECANCELED ? "stopped creating" : "provisioning",
		     m.fname, (unsigned long long)size);
		making_abort(v, &m);   /* nothing half-made stays */
		return ret;
	}
	/* the descriptor last: a disk exists once it does */
	ret = making_commit(v, &m, &d);
	if (ret) {
		fail(err, errlen, ret, "writing %s", m.dname);
		making_abort(v, &m);
	}
	return ret;
}

int thin_delete(fs_vol *v, const char *path, char *err, size_t errlen)
{
	char dir[4096], base[256], dname[300];
	struct thin_desc d;
	uint64_t dino;
	int ret;

	if (split(path, dir, sizeof(dir), base, sizeof(base)))
		return fail(err, errlen, -EINVAL, "%s: not a .vmdk", path);
	snprintf(dname, sizeof(dname), "%s.vmdk", base);
	ret = dir_of(v, dir, &dino);
	if (ret)
		return fail(err, errlen, ret, "folder '%s'", dir[0] ? dir : "/");
	ret = read_desc(v, dino, dname, &d, err, errlen);
	if (ret == -ENOENT) {
		/* no disk: perhaps what an interrupted creation left */
		struct making m;
		struct fs_stat st;
		bool any;

		making_names(&m, dino, base);
		any = fs_lookup(v, dino, m.tfname, &st) == 0 ||
		      fs_lookup(v, dino, m.tdname, &st) == 0;
		if (any) {
			ret = making_clean(v, &m, err, errlen);
			return ret ? ret : fs_sync(v);
		}
	}
	if (ret)
		return ret;
	/* extents first: an open (locked) one stops us before anything goes */
	for (unsigned i = 0; i < d.nextents; i++) {
		if (!d.ext[i].file[0] || strchr(d.ext[i].file, '/'))
			continue;
		ret = fs_unlink(v, dino, d.ext[i].file);
		if (ret && ret != -ENOENT)
			return fail(err, errlen, ret, "removing %s", d.ext[i].file);
	}
	if (d.change_track[0] && !strchr(d.change_track, '/'))
		fs_unlink(v, dino, d.change_track);
	ret = fs_unlink(v, dino, dname);
	if (!ret)
		ret = fs_sync(v);   /* gone for good, for every host */
	return ret ? fail(err, errlen, ret, "removing %s", dname) : 0;
}

int thin_rename(fs_vol *v, const char *path, const char *newpath, char *err,
		size_t errlen)
{
	char dir[4096], base[256], ndir[4096], nbase[256];
	char dname[300], ndname[300], nfile[300];
	struct thin_desc d, nd;
	struct fs_stat st;
	uint64_t dino, ndino;
	int ret;

	if (split(path, dir, sizeof(dir), base, sizeof(base)) ||
	    split(newpath, ndir, sizeof(ndir), nbase, sizeof(nbase)))
		return fail(err, errlen, -EINVAL, "both names end in .vmdk");
	snprintf(dname, sizeof(dname), "%s.vmdk", base);
	snprintf(ndname, sizeof(ndname), "%s.vmdk", nbase);
	ret = dir_of(v, dir, &dino);
	if (!ret)
		ret = dir_of(v, ndir, &ndino);
	if (ret)
		return fail(err, errlen, ret, "folder");
	if (fs_lookup(v, ndino, ndname, &st) == 0)
		return fail(err, errlen, -EEXIST, "%s", newpath);
	ret = read_desc(v, dino, dname, &d, err, errlen);
	if (ret)
		return ret;
	nd = d;
	/* extents named after the disk follow the new name; others keep
	 * theirs (they move with the descriptor's folder) */
	for (unsigned i = 0; i < d.nextents; i++) {
		const char *f = d.ext[i].file;
		size_t bl = strlen(base);
		int n;

		if (!f[0])
			continue;
		if (!strncmp(f, base, bl) && f[bl] == '-')
			n = snprintf(nfile, sizeof(nfile), "%s%s", nbase, f + bl);
		else
			n = snprintf(nfile, sizeof(nfile), "%s", f);
		if (n < 0 || (size_t)n >= sizeof(nd.ext[i].file))
			return fail(err, errlen, -ENAMETOOLONG, "%s", newpath);
		if (fs_lookup(v, ndino, nfile, &st) == 0 &&
		    !(ndino == dino && !strcmp(nfile, f)))
			return fail(err, errlen, -EEXIST, "%s", nfile);
		memcpy(nd.ext[i].file, nfile, (size_t)n + 1);
	}
	/* the tracking file follows the name too (VMware's DISK-ctk.vmdk) */
	if (d.change_track[0]) {
		size_t bl = strlen(base);
		const char *f = d.change_track;
		int n;

		if (!strncmp(f, base, bl) && f[bl] == '-')
			n = snprintf(nfile, sizeof(nfile), "%s%s", nbase, f + bl);
		else
			n = snprintf(nfile, sizeof(nfile), "%s", f);
		if (n < 0 || (size_t)n >= sizeof(nd.change_track))
			return fail(err, errlen, -ENAMETOOLONG, "%s", newpath);
		if (fs_lookup(v, ndino, nfile, &st) == 0 &&
		    !(ndino == dino && !strcmp(nfile, f)))
			return fail(err, errlen, -EEXIST, "%s", nfile);
		memcpy(nd.change_track, nfile, (size_t)n + 1);
	}
	/* the new descriptor first (pointing at the new extent names), then
	 * the extents, then the old descriptor goes: a crash in between
	 * leaves the old or the new descriptor naming files that exist, or
	 * both, never neither */
	ret = write_desc(v, ndino, ndname, &nd, true);
	if (ret)
		return fail(err, errlen, ret, "writing %s", ndname);
	for (unsigned i = 0; i < d.nextents; i++) {
		if (!d.ext[i].file[0] ||
		    (ndino == dino && !strcmp(d.ext[i].file, nd.ext[i].file)))
			continue;
		ret = fs_rename(v, dino, d.ext[i].file, ndino, nd.ext[i].file,
				FS_RENAME_NOREPLACE);
		if (ret) {
			/* put back what moved */
			for (int j = (int)i - 1; j >= 0; j--)
				fs_rename(v, ndino, nd.ext[j].file, dino,
					  d.ext[j].file, FS_RENAME_NOREPLACE);
			fs_unlink(v, ndino, ndname);
			return fail(err, errlen, ret, "renaming %s", d.ext[i].file);
		}
	}
	/* the tracking file last: a crash before leaves the new descriptor
	 * naming a tracking file that is not there, which the next user of
	 * tracking reports (and a re-enable makes anew) */
	if (d.change_track[0] &&
	    !(ndino == dino && !strcmp(d.change_track, nd.change_track))) {
		ret = fs_rename(v, dino, d.change_track, ndino, nd.change_track,
				FS_RENAME_NOREPLACE);
		if (ret && ret != -ENOENT)
			return fail(err, errlen, ret, "renaming %s", d.change_track);
	}
	ret = fs_unlink(v, dino, dname);
	if (!ret)
		ret = fs_sync(v);   /* renamed for good, for every host */
	return ret ? fail(err, errlen, ret, "removing the old %s", dname) : 0;
}

int thin_set_change_track(fs_vol *v, const char *path, const char *ctk,
			  char *err, size_t errlen)
{
	char dir[4096], base[256], dname[300];
	struct thin_desc d;
	uint64_t dino;
	int ret;

	if (split(path, dir, sizeof(dir), base, sizeof(base)))
		return fail(err, errlen, -EINVAL, "%s: not a .vmdk", path);
	if (ctk && (!*ctk || strchr(ctk, '/') || strlen(ctk) >= sizeof(d.change_track)))
		return fail(err, errlen, -EINVAL, "tracking file name '%s'", ctk);
	snprintf(dname, sizeof(dname), "%s.vmdk", base);
	ret = dir_of(v, dir, &dino);
	if (ret)
		return fail(err, errlen, ret, "folder '%s'", dir[0] ? dir : "/");
	ret = read_desc(v, dino, dname, &d, err, errlen);
	if (ret)
		return ret;
	snprintf(d.change_track, sizeof(d.change_track), "%s", ctk ? ctk : "");
	/* ESX writes version 3 while tracking is on, and 1 again after */
	if (ctk)
		d.version = 3;
	else if (d.version == 3)
		d.version = 1;
	ret = write_desc(v, dino, dname, &d, false);
	return ret ? fail(err, errlen, ret, "updating %s", dname) : 0;
}

int thin_info(fs_vol *v, const char *path, struct thin_info *in, char *err,
	      size_t errlen)
{
	char dir[4096], base[256], dname[300];
	uint64_t dino;
	int ret;

	memset(in, 0, sizeof(*in));
	if (split(path, dir, sizeof(dir), base, sizeof(base)))
		return fail(err, errlen, -EINVAL, "%s: not a .vmdk", path);
	snprintf(dname, sizeof(dname), "%s.vmdk", base);
	ret = dir_of(v, dir, &dino);
	if (ret)
		return fail(err, errlen, ret, "folder '%s'", dir[0] ? dir : "/");
	ret = read_desc(v, dino, dname, &in->desc, err, errlen);
	if (ret)
		return ret;
	in->size = thin_desc_size(&in->desc);
	if (!strcmp(in->desc.create_type, "vmfsRawDeviceMap")) {
		in->kind = THIN_RDM;
		return 0;
	}
	if (!strcmp(in->desc.create_type, "vmfsPassthroughRawDeviceMap")) {
		in->kind = THIN_RDMP;
		return 0;
	}
	in->kind = THIN_EAGERZEROEDTHICK;
	for (unsigned i = 0; i < in->desc.nextents; i++) {
		struct fs_stat st;
		fs_file *f;

		if (!in->desc.ext[i].file[0])
			continue;
		ret = open_name(v, dino, in->desc.ext[i].file, FS_O_RDONLY, &f);
		if (ret)
			return fail(err, errlen, ret, "extent %s",
				    in->desc.ext[i].file);
		fs_fstat(f, &st);
		in->allocated += st.alloc;
		/* never-written reserved blocks count as holes */
		if (st.alloc + CHUNK <= st.size && in->kind != THIN_ZEROEDTHICK)
			in->kind = THIN_THIN;
		else if (fs_seek(f, 0, false) < (int64_t)st.size)
			in->kind = THIN_ZEROEDTHICK;
		fs_close(f);
	}
	if (!strcmp(thin_ddb_get(&in->desc, "ddb.thinProvisioned"), "1"))
		in->kind = THIN_THIN;
	return 0;
}

int thin_extend(fs_vol *v, const char *path, uint64_t size,
		const struct thin_cb *cb, char *err, size_t errlen)
{
	char dir[4096], base[256], dname[300];
	struct thin_info in;
	struct thin_extent *x;
	uint64_t dino, old;
	fs_file *f;
	int ret;

	ret = thin_info(v, path, &in, err, errlen);
	if (ret)
		return ret;
	if (in.kind == THIN_RDM || in.kind == THIN_RDMP)
		return fail(err, errlen, -EINVAL, "%s maps a raw device: grow "
			    "the LUN instead", path);
	if (size <= in.size || size % 512)
		return fail(err, errlen, -EINVAL, "new size %llu: larger than "
			    "%llu and a multiple of 512", (unsigned long long)size,
			    (unsigned long long)in.size);
	split(path, dir, sizeof(dir), base, sizeof(base));
	snprintf(dname, sizeof(dname), "%s.vmdk", base);
	dir_of(v, dir, &dino);
	x = &in.desc.ext[in.desc.nextents - 1];
	if (!x->file[0] || (strcmp(x->type, "VMFS") && strcmp(x->type, "FLAT")))
		return fail(err, errlen, -EOPNOTSUPP, "extending a %s extent",
			    x->type);
	ret = open_name(v, dino, x->file, FS_O_RDWR, &f);
	if (ret)
		return fail(err, errlen, ret, "%s", x->file);
	old = (x->has_offset ? x->offset * 512 : 0) + x->sectors * 512;
	/* data first, then the descriptor: a crash leaves the old size
	 * described over a file that is only longer */
	ret = provision(f, in.kind, old, old + (size - in.size),
			"Extending disk", cb);
	if (ret) {
		fs_ftruncate(f, old);
		fs_close(f);
		return fail(err, errlen, ret, "extending %s", x->file);
	}
	fs_close(f);
	ret = thin_desc_resize(&in.desc, size);
	if (!ret)
		ret = write_desc(v, dino, dname, &in.desc, false);
	return ret ? fail(err, errlen, ret, "updating %s", dname) : 0;
}

/* ---- whole-disk data operations ----------------------------------------- */

/* The one data file of a single-extent disk we provision (VMFS or FLAT). */
static int data_file(fs_vol *v, const char *path, int flags, struct thin_info *in,
		     uint64_t *dino, fs_file **f, char *err, size_t errlen)
{
	char dir[4096], base[256];
	const struct thin_extent *x;
	int ret = thin_info(v, path, in, err, errlen);

	if (ret)
		return ret;
	if (in->kind == THIN_RDM || in->kind == THIN_RDMP)
		return fail(err, errlen, -EINVAL, "%s maps a raw device", path);
	x = &in->desc.ext[0];
	if (in->desc.nextents != 1 || (strcmp(x->type, "VMFS") && strcmp(x->type, "FLAT")) ||
	    (x->has_offset && x->offset))
		return fail(err, errlen, -EOPNOTSUPP, "%s: only disks of one "
			    "VMFS or FLAT extent", path);
	split(path, dir, sizeof(dir), base, sizeof(base));
	ret = dir_of(v, dir, dino);
	if (!ret)
		ret = open_name(v, *dino, x->file, flags, f);
	return ret ? fail(err, errlen, ret, "%s", x->file) : 0;
}

static bool stop(const struct thin_cb *cb)
{
	return cb && cb->cancelled && cb->cancelled(cb->arg);
}

static void report(const struct thin_cb *cb, const char *what, uint64_t done,
		   uint64_t total)
{
	if (cb && cb->progress)
		cb->progress(cb->arg, what, done, total);
}

/* What a copy reads: a data file, or the LUN behind a raw device
 * mapping (all data: a LUN has no holes to skip). */
struct source {
	fs_file *f;
	thin_rdm *r;
	uint64_t size;
};

static int64_t src_seek(const struct source *s, uint64_t off, bool data)
{
	if (!s->r)
		return fs_seek(s->f, off, data);
	return off >= s->size ? -ENXIO : data ? (int64_t)off : (int64_t)s->size;
}

/* Read n bytes at off, unless asked to stop (-ECANCELED). */
static int read_chunk(const struct source *s, void *b, size_t n, uint64_t off,
		      const struct thin_cb *cb)
{
	ssize_t r;

	if (stop(cb))
		return -ECANCELED;
	r = s->r ? thin_rdm_pread(s->r, b, n, off) : fs_pread(s->f, b, n, off);
	return r == (ssize_t)n ? 0 : r < 0 ? (int)r : -EIO;
}

static bool all_zero(const unsigned char *b, size_t n)
{
	return !b[0] && !memcmp(b, b + 1, n - 1);
}

/*
 * Copy src's data into dst (same size), range by range of what src has
 * written (reserved, never-written blocks are holes too); with skip_zero,
 * chunks of zeros are not written (a thin target stays thin).
 */
static int copy_data(const struct source *src, fs_file *dst, uint64_t size,
		     bool skip_zero, const char *what, const struct thin_cb *cb)
{
	unsigned char *b = mp_alloc_aligned(4096, CHUNK);
	int64_t d = 0, h;
	int ret = b ? 0 : -ENOMEM;

	while (!ret && (uint64_t)d < size) {
		d = src_seek(src, (uint64_t)d, true);
		if (d == -ENXIO || (d >= 0 && (uint64_t)d >= size))
			break;
		if (d < 0) {
			ret = (int)d;
			break;
		}
		h = src_seek(src, (uint64_t)d, false);
		if (h < 0) {
			ret = (int)h;
			break;
		}
		for (uint64_t off = (uint64_t)d; !ret && off < (uint64_t)h; off += CHUNK) {
			size_t n = (uint64_t)h - off < CHUNK ? (size_t)((uint64_t)h - off) : CHUNK;
			ssize_t r;

			ret = read_chunk(src, b, n, off, cb);
			if (ret)
				break;
			if (!(skip_zero && all_zero(b, n))) {
				r = fs_pwrite(dst, b, n, off);
				if (r != (ssize_t)n)
					ret = r < 0 ? (int)r : -EIO;
			}
			report(cb, what, off + n, size);
		}
		d = h;
	}
	free(b);
	if (!ret)
		report(cb, what, size, size);
	return ret;
}

/* Open what a clone of path reads (s), its info in in. */
static int open_source(fs_vol *v, thin_luns *luns, const char *path,
		       struct thin_info *in, struct source *s, char *err,
		       size_t errlen)
{
	struct thin_rdm_info *ri;
	uint64_t dino;
	int ret = thin_info(v, path, in, err, errlen);

	memset(s, 0, sizeof(*s));
	s->size = in->size;
	if (ret || (in->kind != THIN_RDM && in->kind != THIN_RDMP))
		return ret ? ret : data_file(v, path, FS_O_RDONLY, in, &dino,
					     &s->f, err, errlen);
	/* a mapping: the LUN's contents, through this host's LUN */
	if (!luns)
		return fail(err, errlen, -EINVAL, "%s maps a raw device", path);
	ri = malloc(sizeof(*ri));
	if (!ri)
		return -ENOMEM;
	ret = thin_rdm_resolve(v, luns, path, ri, err, errlen);
	if (!ret)
		ret = thin_rdm_open(v, luns, ri->ino, false, &s->r, err, errlen);
	if (!ret)
		s->size = ri->rec.capacity;
	in->size = s->size;
	free(ri);
	return ret;
}

static void close_source(struct source *s)
{
	if (s->f)
		fs_close(s->f);
	if (s->r)
		thin_rdm_close(s->r);
	memset(s, 0, sizeof(*s));
}

int thin_clone(fs_vol *v, const char *path, const char *newpath,
	       enum thin_kind kind, const struct thin_cb *cb, char *err,
	       size_t errlen)
{
	return thin_clone_from(v, NULL, path, newpath, kind, cb, err, errlen);
}

int thin_clone_from(fs_vol *v, thin_luns *luns, const char *path,
		    const char *newpath, enum thin_kind kind,
		    const struct thin_cb *cb, char *err, size_t errlen)
{
	char ndir[4096], nbase[256];
	struct thin_info in;
	struct thin_desc nd;
	struct making m;
	struct source src;
	uint64_t ndino;
	fs_file *dst;
	int ret;

	if (split(newpath, ndir, sizeof(ndir), nbase, sizeof(nbase)))
		return fail(err, errlen, -EINVAL, "%s: a disk's name ends in "
			    ".vmdk", newpath);
	if (kind < THIN_THIN || kind > THIN_EAGERZEROEDTHICK)
		return fail(err, errlen, -EINVAL, "disk type");
	ret = open_source(v, luns, path, &in, &src, err, errlen);
	if (ret) {
		close_source(&src);
		return ret;
	}
	ret = dir_of(v, ndir, &ndino);
	if (ret) {
		close_source(&src);
		return fail(err, errlen, ret, "folder '%s'", ndir[0] ? ndir : "/");
	}
	making_names(&m, ndino, nbase);
	/* the clone keeps the source's identity data but is a disk of its
	 * own: new CID and uuid, the adapter and geometry of the source */
	ret = thin_desc_new(&nd, kind, in.size, m.fname);
	if (ret) {
		close_source(&src);
		return fail(err, errlen, ret, "descriptor for %s", newpath);
	}
	thin_ddb_set(&nd, "ddb.adapterType",
		     thin_ddb_get(&in.desc, "ddb.adapterType")[0] ?
		     thin_ddb_get(&in.desc, "ddb.adapterType") : "lsilogic");
	ret = making_begin(v, &m, newpath, err, errlen);
	if (ret) {
		close_source(&src);
		return ret;
	}
	dst = m.f;
	ret = kind == THIN_THIN ? fs_ftruncate(dst, in.size) :
	      fs_fallocate(dst, 0, in.size, false);
	if (!ret)
		ret = copy_data(&src, dst, in.size, kind == THIN_THIN, "Clone", cb);
	if (!ret && kind == THIN_EAGERZEROEDTHICK)
		ret = thin_fill_holes(dst, in.size, "Clone: zeroing", cb);
	close_source(&src);
	if (!ret)
		ret = making_commit(v, &m, &nd);
	if (ret) {
		fail(err, errlen, ret, "%s %s", ret == -ECANCELED ?
		     "stopped cloning into" : "cloning into", newpath);
		making_abort(v, &m);
	}
	return ret;
}

int thin_fill_holes(fs_file *f, uint64_t size, const char *what,
		    const struct thin_cb *cb)
{
	int64_t h = 0, d;
	int ret = 0;

	while (!ret && (uint64_t)h < size) {
		h = fs_seek(f, (uint64_t)h, false);
		if (h < 0 || (uint64_t)h >= size)
			break;
		d = fs_seek(f, (uint64_t)h, true);
		if (d == -ENXIO || (d >= 0 && (uint64_t)d > size))
			d = (int64_t)size;
		if (d < 0)
			return (int)d;
		ret = fs_fallocate(f, (uint64_t)h, (uint64_t)(d - h), true);
		if (!ret)
			ret = zero_range(f, (uint64_t)h, (uint64_t)d, size,
					 (uint64_t)h, what, cb);
		h = d;
	}
	if (!ret)
		report(cb, what, size, size);
	return ret;
}

int thin_inflate(fs_vol *v, const char *path, bool eager_only,
		 const struct thin_cb *cb, char *err, size_t errlen)
{
	char dir[4096], base[256], dname[300];
	struct thin_info in;
	uint64_t dino;
	fs_file *f;
	int ret = data_file(v, path, FS_O_RDWR, &in, &dino, &f, err, errlen);

	if (ret)
		return ret;
	if (eager_only && in.kind != THIN_ZEROEDTHICK) {
		fs_close(f);
		return fail(err, errlen, -EINVAL, "%s is %s, not zeroedthick",
			    path, thin_kind_name(in.kind));
	}
	if (!eager_only && in.kind != THIN_THIN) {
		fs_close(f);
		return fail(err, errlen, -EINVAL, "%s is %s, not thin", path,
			    thin_kind_name(in.kind));
	}
	ret = thin_fill_holes(f, in.size, eager_only ? "Eagerly zeroing" :
			      "Inflate", cb);
	if (!ret)
		ret = fs_fsync(f);
	fs_close(f);
	if (ret)   /* what is zeroed stays: the disk is whole either way */
		return fail(err, errlen, ret, "%s %s", ret == -ECANCELED ?
			    "stopped" : "failed", path);
	if (!eager_only) {
		/* no longer thin: drop the flag */
		for (unsigned i = 0; i < in.desc.nddb; i++)
			if (!strcmp(in.desc.ddb[i].key, "ddb.thinProvisioned"))
				in.desc.ddb[i] = in.desc.ddb[--in.desc.nddb];
		split(path, dir, sizeof(dir), base, sizeof(base));
		snprintf(dname, sizeof(dname), "%s.vmdk", base);
		ret = write_desc(v, dino, dname, &in.desc, false);
		if (ret)
			return fail(err, errlen, ret, "updating %s", dname);
	}
	return 0;
}

int thin_punch_zeros(fs_vol *v, const char *path, const struct thin_cb *cb,
		     uint64_t *freed, char *err, size_t errlen)
{
	struct fs_vol_info vi;
	struct thin_info in;
	unsigned char *b;
	uint64_t dino, bs;
	int64_t d = 0, h;
	fs_file *f;
	int ret = data_file(v, path, FS_O_RDWR, &in, &dino, &f, err, errlen);

	*freed = 0;
	if (ret)
		return ret;
	if (in.kind != THIN_THIN) {
		fs_close(f);
		return fail(err, errlen, -EINVAL, "%s is %s: only thin disks "
			    "give zeroed blocks back", path, thin_kind_name(in.kind));
	}
	fs_vol_info(v, &vi);
	bs = vi.block_size;
	b = mp_alloc_aligned(4096, bs);
	ret = b ? 0 : -ENOMEM;
	while (!ret && (uint64_t)d < in.size) {
		d = fs_seek(f, (uint64_t)d, true);
		if (d < 0 || (uint64_t)d >= in.size)
			break;
		h = fs_seek(f, (uint64_t)d, false);
		if (h < 0) {
			ret = (int)h;
			break;
		}
		/* whole file blocks only */
		for (uint64_t off = (uint64_t)d / bs * bs; !ret && off < (uint64_t)h; off += bs) {
			size_t n = in.size - off < bs ? (size_t)(in.size - off) : (size_t)bs;

			ret = read_chunk(&(struct source){ .f = f }, b, n, off, cb);
			if (ret)
				break;
			if (n == bs && all_zero(b, n)) {
				ret = fs_punch(f, off, n);
				if (!ret)
					*freed += n;
			}
			report(cb, "Punch zeros", off + n, in.size);
		}
		d = h;
	}
	free(b);
	if (!ret)
		ret = fs_fsync(f);
	fs_close(f);
	return ret ? fail(err, errlen, ret, "punching zeros out of %s", path) : 0;
}
