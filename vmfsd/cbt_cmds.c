/*
 * cbt_cmds.c - changed-block tracking in vmfsd (cbt_hook.h): the FUSE
 * hooks that mark every change of a tracked disk's data file, and the
 * control commands the tools (vmfs-cbt) and the executor use.
 *
 *   {"cmd": "cbt_enable", "path": DISK.vmdk [, "block_size": BYTES]}
 *   {"cmd": "cbt_disable", "path": DISK.vmdk}
 *   {"cmd": "cbt_checkpoint", "path": DISK.vmdk} -> "change_id"
 *   {"cmd": "cbt_query", "path": DISK.vmdk, "since": ID | "*"
 *    [, "offset": N, "length": N]} -> "extents": [{"offset", "length"}...]
 *   {"cmd": "cbt_mark", "path": DISK.vmdk, "ranges": [[OFF, LEN]...]
 *    [, "flush": true] [, "close": true]}
 *
 * State: one struct trk per tracked disk this host has touched, keyed by
 * its tracking file (inode and generation).  Its cbt_disk stays loaded
 * while vmfsd runs (a query needs no reading); the tracking file is held
 * open (its on-disk lock: no other host writes it meanwhile) only while a
 * writer or a command uses it, and before the cached state is used again
 * its header is compared with the file (another host may have written it
 * in between, cbt_revalidate).
 *
 * Locks: `use` (outer) serialises everything that does I/O on tracking
 * files: loading, enabling, commands, opens and last closes of writers.
 * `reg` (inner, short) guards the lists the write path reads: the FUSE
 * handles and the data file names.  The write path takes only `reg`, then
 * the cbt_disk's own lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbt/cbt.h"
#include "cbt/ondisk.h"
#include "thin/disk.h"
#include "vmfsd/cbt_hook.h"
#include "vmfsd/cmds.h"
#include "vmfsd/ctl.h"

static fs_vol *vol;

struct trk {
	uint64_t dir;                 /* the disk's folder */
	uint64_t ctk_ino, ctk_gen;    /* identity of the tracking file */
	uint64_t data_ino;
	char base[256];               /* BASE.vmdk is the descriptor */
	char ctk_name[256];
	cbt_disk *d;                  /* loaded state, kept */
	fs_file *ctk;                 /* open while users > 0 */
	unsigned users;               /* writers + the command running */
	unsigned writers;             /* FUSE handles, a cbt_mark session */
	bool session;                 /* cbt_mark's writer is open */
	struct trk *next;
};

struct hnd {                          /* a FUSE handle open read-write */
	fs_file *f;
	uint64_t ino;
	struct trk *t;                /* NULL: not tracked */
	struct hnd *next;
};

struct dname {                        /* a data file name seen by lookup */
	uint64_t ino, dir;
	char name[256];
};

#define NHND 1024u
#define NNAME 4096u
static struct hnd *hnds[NHND];
static struct dname names[NNAME];
static unsigned tracked;              /* handles with a trk (atomic) */
static struct trk *trks;
static pthread_mutex_t use = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t reg = PTHREAD_MUTEX_INITIALIZER;

static const char flat_sfx[] = "-flat.vmdk";

void vmfsd_cbt_init(fs_vol *v)
{
	vol = v;
}

static unsigned hslot(const fs_file *f)
{
	uintptr_t p = (uintptr_t)f;

	return (unsigned)((p >> 4) ^ (p >> 14)) % NHND;
}

/* ---- descriptors and tracking files ----------------------------------------- */

static int read_desc(uint64_t dir, const char *base, struct thin_desc *d,
		     char *err, size_t errlen)
{
	char name[300], *text = NULL;
	struct fs_stat st;
	fs_file *f = NULL;
	ssize_t n;
	int ret;

	snprintf(name, sizeof(name), "%s.vmdk", base);
	ret = fs_lookup(vol, dir, name, &st);
	if (!ret)
		ret = fs_open(vol, st.ino, FS_O_RDONLY, &f);
	if (ret) {
		snprintf(err, errlen, "%s: %s", name, fs_strerror(ret));
		return ret;
	}
	text = malloc(THIN_DESC_MAX + 1);
	n = text ? fs_pread(f, text, THIN_DESC_MAX + 1, 0) : -ENOMEM;
	fs_close(f);
	if (n < 0) {
		snprintf(err, errlen, "reading %s: %s", name, fs_strerror((int)n));
		ret = (int)n;
	} else {
		ret = thin_desc_parse(text, (size_t)n, d, err, errlen);
	}
	free(text);
	return ret;
}

/*
 * The trk of the disk BASE.vmdk in dir (made when new).  -ENODATA when
 * its descriptor names no tracking file.
 */
static int trk_find(uint64_t dir, const char *base, struct trk **out,
		    uint64_t *size, char *err, size_t errlen)
{
	struct thin_desc *d = malloc(sizeof(*d));
	struct fs_stat cs, ds;
	struct trk *t;
	int ret = d ? read_desc(dir, base, d, err, errlen) : -ENOMEM;

	if (ret)
		goto free_d;
	if (!d->change_track[0]) {
		snprintf(err, errlen, "change tracking is not enabled on %s.vmdk "
			 "(vmfs-cbt enable)", base);
		ret = -ENODATA;
		goto free_d;
	}
	*size = thin_desc_size(d);
	ret = fs_lookup(vol, dir, d->change_track, &cs);
	if (ret) {
		snprintf(err, errlen, "tracking file %s of %s.vmdk: %s (disable "
			 "and enable tracking again, then take a full backup)",
			 d->change_track, base, fs_strerror(ret));
		goto free_d;
	}
	if (d->nextents != 1 || !d->ext[0].file[0] ||
	    (ret = fs_lookup(vol, dir, d->ext[0].file, &ds))) {
		snprintf(err, errlen, "%s.vmdk: change tracking needs a disk of "
			 "one data file", base);
		ret = ret ? ret : -EOPNOTSUPP;
		goto free_d;
	}
	for (t = trks; t; t = t->next)
		if (t->ctk_ino == cs.ino && t->ctk_gen == cs.gen)
			break;
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t) {
			ret = -ENOMEM;
			goto free_d;
		}
		t->ctk_ino = cs.ino;
		t->ctk_gen = cs.gen;
		pthread_mutex_lock(&reg);
		t->next = trks;
		trks = t;
		pthread_mutex_unlock(&reg);
	}
	/* names may have changed (a rename): the latest */
	t->dir = dir;
	t->data_ino = ds.ino;
	snprintf(t->base, sizeof(t->base), "%s", base);
	snprintf(t->ctk_name, sizeof(t->ctk_name), "%s", d->change_track);
	*out = t;
free_d:
	free(d);
	return ret;
}

static bool header_damage(int ret)
{
	return ret == -CBT_E_BADMAGIC || ret == -CBT_E_CHECKSUM ||
	       ret == -CBT_E_VERSION || ret == -CBT_E_CORRUPT;
}

/* Take t into use (under `use`): the tracking file open, its state
 * loaded and current. */
static int trk_use(struct trk *t, uint64_t size, char *err, size_t errlen)
{
	enum cbt_open_event ev = CBT_OPENED;
	struct cbt_io io;
	int ret = 0;

	if (t->users++)
		return cbt_set_size(t->d, size);
	ret = fs_open(vol, t->ctk_ino, FS_O_RDWR, &t->ctk);
	if (ret) {
		t->users--;
		t->ctk = NULL;
		snprintf(err, errlen, "tracking file %s: %s", t->ctk_name,
			 fs_strerror(ret));
		return ret;
	}
	cbt_io_fs(t->ctk, &io);
	if (t->d) {
		cbt_set_io(t->d, &io);
		if (cbt_revalidate(t->d)) {
			/* written by another host since: load it again */
			cbt_set_io(t->d, NULL);
			cbt_close(t->d);
			t->d = NULL;
		}
	}
	if (!t->d) {
		ret = cbt_open(&io, size, &t->d, &ev);
		if (header_damage(ret)) {
			fprintf(stderr, "vmfsd: change tracking of %s.vmdk: header "
				"of %s: %s: tracking reset with a new UUID, old "
				"change IDs refused\n", t->base, t->ctk_name,
				cbt_strerror(ret));
			ret = cbt_create(&io, size, 0, &t->d);
		}
	}
	if (ret) {
		snprintf(err, errlen, "tracking file %s: %s", t->ctk_name,
			 cbt_strerror(ret));
		fs_close(t->ctk);
		t->ctk = NULL;
		t->users--;
		return ret;
	}
	if (ev != CBT_OPENED)
		fprintf(stderr, "vmfsd: change tracking of %s.vmdk was reset: %s; "
			"earlier change IDs are refused (take a full backup)\n",
			t->base, ev == CBT_OPENED_RESET_UNCLEAN ?
			"its last writer stopped without closing it" :
			"a page of its tracking file is damaged");
	return cbt_set_size(t->d, size);
}

/* Put t out of use (under `use`): the last user writes it back clean. */
static void trk_unuse(struct trk *t)
{
	int ret;

	if (--t->users)
		return;
	ret = cbt_end_writes(t->d);
	if (ret)
		fprintf(stderr, "vmfsd: change tracking of %s.vmdk: writing back "
			"%s: %s (the next user resets tracking)\n", t->base,
			t->ctk_name, cbt_strerror(ret));
	cbt_set_io(t->d, NULL);
	fs_close(t->ctk);
	t->ctk = NULL;
}

/* A writer begins (under `use`). */
static int trk_write_begin(struct trk *t, uint64_t size, char *err,
			   size_t errlen)
{
	int ret = trk_use(t, size, err, errlen);

	if (ret)
		return ret;
	t->writers++;
	ret = cbt_begin_writes(t->d);
	if (ret) {
		snprintf(err, errlen, "tracking file %s: %s", t->ctk_name,
			 cbt_strerror(ret));
		t->writers--;
		trk_unuse(t);
	}
	return ret;
}

static void trk_write_end(struct trk *t)
{
	t->writers--;
	trk_unuse(t);
}

/* ---- FUSE hooks ------------------------------------------------------------- */

void vmfsd_cbt_lookup(uint64_t dir, const char *name, uint64_t ino)
{
	size_t n = strlen(name), s = sizeof(flat_sfx) - 1;
	struct dname *e = &names[ino % NNAME];

	if (n <= s || n >= sizeof(e->name) || strcmp(name + n - s, flat_sfx))
		return;
	pthread_mutex_lock(&reg);
	e->ino = ino;
	e->dir = dir;
	memcpy(e->name, name, n + 1);
	pthread_mutex_unlock(&reg);
}

/* The trk of data file ino when its disk is tracked (under `use`). */
static struct trk *tracked_disk(uint64_t ino, uint64_t *size)
{
	struct dname e;
	struct trk *t = NULL;
	char base[256], err[512];
	int ret;

	pthread_mutex_lock(&reg);
	e = names[ino % NNAME];
	pthread_mutex_unlock(&reg);
	if (e.ino != ino)
		return NULL;
	snprintf(base, sizeof(base), "%.*s",
		 (int)(strlen(e.name) - (sizeof(flat_sfx) - 1)), e.name);
	ret = trk_find(e.dir, base, &t, size, err, sizeof(err));
	if (ret) {
		if (ret != -ENODATA && ret != -ENOENT && ret != -EINVAL)
			fprintf(stderr, "vmfsd: %s: writes to %s are not tracked\n",
				err, e.name);
		return NULL;
	}
	return t->data_ino == ino ? t : NULL;
}

int vmfsd_cbt_open(fs_file *f, uint64_t ino)
{
	struct hnd *h = calloc(1, sizeof(*h));
	struct trk *t;
	uint64_t size = 0;
	char err[512];
	int ret = 0;

	if (!h)
		return -ENOMEM;
	h->f = f;
	h->ino = ino;
	pthread_mutex_lock(&use);
	t = tracked_disk(ino, &size);
	if (t) {
		ret = trk_write_begin(t, size, err, sizeof(err));
		if (ret)
			fprintf(stderr, "vmfsd: %s: refusing to write %s.vmdk "
				"untracked\n", err, t->base);
	}
	if (!ret) {
		h->t = t;
		pthread_mutex_lock(&reg);
		h->next = hnds[hslot(f)];
		hnds[hslot(f)] = h;
		if (t)
			__atomic_add_fetch(&tracked, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&reg);
	}
	pthread_mutex_unlock(&use);
	if (ret)
		free(h);
	return ret;
}

static struct trk *handle_trk(fs_file *f)
{
	struct trk *t = NULL;

	if (!__atomic_load_n(&tracked, __ATOMIC_ACQUIRE))
		return NULL;
	pthread_mutex_lock(&reg);
	for (struct hnd *h = hnds[hslot(f)]; h; h = h->next)
		if (h->f == f) {
			t = h->t;
			break;
		}
	pthread_mutex_unlock(&reg);
	return t;
}

int vmfsd_cbt_write(fs_file *f, uint64_t off, uint64_t len)
{
	struct trk *t = handle_trk(f);
	int ret;

	/* the handle holds a writer of t: t and its state stay */
	if (!t)
		return 0;
	ret = cbt_mark(t->d, off, len);
	if (ret) {
		fprintf(stderr, "vmfsd: change tracking of %s.vmdk: a change "
			"could not be recorded (%s): tracking will be reset\n",
			t->base, cbt_strerror(ret));
		return -EIO;
	}
	return 0;
}

int vmfsd_cbt_resized(fs_file *f, uint64_t size)
{
	struct trk *t = handle_trk(f);
	struct cbt_info in;

	if (!t)
		return 0;
	cbt_info(t->d, &in);
	return size < in.disk_size ?
	       vmfsd_cbt_write(f, size, in.disk_size - size) : 0;
}

int vmfsd_cbt_resize_ino(uint64_t ino, uint64_t size)
{
	struct trk *t;
	uint64_t dsize = 0;
	char err[512];
	int ret = 0;

	pthread_mutex_lock(&use);
	t = tracked_disk(ino, &dsize);
	if (t && size < dsize) {
		ret = trk_write_begin(t, dsize, err, sizeof(err));
		/* before the change: stamped with the next sequence */
		if (!ret) {
			ret = cbt_premark(t->d, size, dsize - size);
			trk_write_end(t);
		} else {
			fprintf(stderr, "vmfsd: %s\n", err);
		}
	}
	pthread_mutex_unlock(&use);
	return ret ? -EIO : 0;
}

int vmfsd_cbt_fsync(fs_file *f, int ret)
{
	struct trk *t;

	if (ret)
		return ret;
	t = handle_trk(f);
	if (!t)
		return 0;
	ret = cbt_flush(t->d);
	if (ret)
		fprintf(stderr, "vmfsd: change tracking of %s.vmdk: %s\n",
			t->base, cbt_strerror(ret));
	return ret ? -EIO : 0;
}

void vmfsd_cbt_release(fs_file *f)
{
	struct hnd *h = NULL, **pp;

	pthread_mutex_lock(&use);
	pthread_mutex_lock(&reg);
	for (pp = &hnds[hslot(f)]; *pp; pp = &(*pp)->next)
		if ((*pp)->f == f) {
			h = *pp;
			*pp = h->next;
			break;
		}
	if (h && h->t)
		__atomic_sub_fetch(&tracked, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&reg);
	if (h && h->t)
		trk_write_end(h->t);
	pthread_mutex_unlock(&use);
	free(h);
}

void vmfsd_cbt_stop(void)
{
	pthread_mutex_lock(&use);
	pthread_mutex_lock(&reg);
	for (unsigned i = 0; i < NHND; i++)
		while (hnds[i]) {
			struct hnd *h = hnds[i];

			hnds[i] = h->next;
			free(h);
		}
	__atomic_store_n(&tracked, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&reg);
	/* no FUSE request runs any more: every mark is in memory */
	while (trks) {
		struct trk *t = trks;

		trks = t->next;
		if (t->users) {
			t->users = 1;
			trk_unuse(t);
		}
		if (t->d)
			cbt_close(t->d);
		free(t);
	}
	pthread_mutex_unlock(&use);
}

/* ---- control commands ---------------------------------------------------------- */

/* "dir/BASE.vmdk" -> the folder's inode and BASE */
static int disk_arg(struct ctl_req *r, struct json_object *req,
		    const char **path, uint64_t *dir, char *base, size_t blen)
{
	struct json_object *o;
	const char *p, *slash, *name;
	char dpath[4096];
	struct fs_stat st;
	size_t n;
	int ret;

	if (!json_object_object_get_ex(req, "path", &o) ||
	    !json_object_is_type(o, json_type_string)) {
		ctl_error(r, "\"path\" is missing");
		return -EINVAL;
	}
	*path = p = json_object_get_string(o);
	slash = strrchr(p, '/');
	name = slash ? slash + 1 : p;
	n = strlen(name);
	if (n <= 5 || strcmp(name + n - 5, ".vmdk") || n - 5 >= blen ||
	    (slash && (size_t)(slash - p) >= sizeof(dpath))) {
		ctl_error(r, "%s: a disk's descriptor (DISK.vmdk)", p);
		return -EINVAL;
	}
	snprintf(base, blen, "%.*s", (int)(n - 5), name);
	snprintf(dpath, sizeof(dpath), "%.*s", slash ? (int)(slash - p) : 0, p);
	ret = fs_resolve(vol, dpath, &st);
	if (!ret && st.type != FS_TYPE_DIR)
		ret = -ENOTDIR;
	if (ret) {
		ctl_error(r, "folder of %s: %s", p, fs_strerror(ret));
		return ret < 0 && ret > -1000 ? ret : -EIO;
	}
	*dir = st.ino;
	return 0;
}

static int fail(struct ctl_req *r, int ret, const char *msg)
{
	ctl_error(r, "%s", msg);
	return ret < 0 && ret > -1000 ? ret : -EIO;
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void add_info(struct json_object *resp, struct trk *t)
{
	struct cbt_info in;
	char id[CBT_ID_LEN];

	cbt_info(t->d, &in);
	cbt_id_format(&in.current, id);
	json_object_object_add(resp, "tracking_file",
			       json_object_new_string(t->ctk_name));
	json_object_object_add(resp, "current", json_object_new_string(id));
	add_u64(resp, "block_size", in.block_size);
	add_u64(resp, "size", in.disk_size);
	add_u64(resp, "epoch", in.epoch);
}

/* Create DISK-ctk.vmdk anew and name it in the descriptor. */
static int enable(struct ctl_req *r, const char *path, uint64_t dir,
		  const char *base, uint32_t bs)
{
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0600 };
	struct thin_desc *d = malloc(sizeof(*d));
	char ctk[300], err[600] = "";
	struct fs_stat st;
	fs_file *data = NULL, *f = NULL;
	struct cbt_io io;
	cbt_disk *cd;
	int ret = d ? read_desc(dir, base, d, err, sizeof(err)) : -ENOMEM;

	if (ret)
		goto out;
	if (d->nextents != 1 || !d->ext[0].file[0] ||
	    (strcmp(d->ext[0].type, "VMFS") && strcmp(d->ext[0].type, "FLAT"))) {
		ret = -EOPNOTSUPP;
		snprintf(err, sizeof(err), "%s: change tracking needs a disk of "
			 "one VMFS or FLAT data file", path);
		goto out;
	}
	/* the data file held open: no other host starts writing meanwhile
	 * (and one that writes it now makes this fail) */
	ret = fs_lookup(vol, dir, d->ext[0].file, &st);
	if (!ret && vmfsd_disk_attached(st.ino)) {
		/* vmrun decided at attach time not to report its writes */
		ret = -EBUSY;
		snprintf(err, sizeof(err), "%s is attached to a running VM: "
			 "enable tracking while it is powered off", path);
		goto out;
	}
	if (!ret)
		ret = fs_open(vol, st.ino, FS_O_RDWR, &data);
	if (ret) {
		snprintf(err, sizeof(err), "%s: %s%s", d->ext[0].file,
			 fs_strerror(ret), ret == -EBUSY ? " (another host "
			 "writes it: enable tracking there)" : "");
		goto out;
	}
	snprintf(ctk, sizeof(ctk), "%s-ctk.vmdk", base);
	ret = fs_create(vol, dir, ctk, &a, &st);
	if (ret == -EEXIST)     /* left by a crash or an old tracking */
		ret = fs_lookup(vol, dir, ctk, &st);
	if (!ret)
		ret = fs_open(vol, st.ino, FS_O_RDWR, &f);
	if (ret) {
		snprintf(err, sizeof(err), "%s: %s", ctk, fs_strerror(ret));
		goto out;
	}
	cbt_io_fs(f, &io);
	ret = cbt_create(&io, thin_desc_size(d), bs, &cd);
	if (ret) {
		snprintf(err, sizeof(err), "%s: %s", ctk, cbt_strerror(ret));
		goto out;
	}
	ret = cbt_close(cd);
	fs_close(f);
	f = NULL;
	/* the descriptor last: tracking is on once it names the file */
	if (!ret)
		ret = thin_set_change_track(vol, path, ctk, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s: %s", ctk, cbt_strerror(ret));
out:
	if (f)
		fs_close(f);
	if (data)
		fs_close(data);
	free(d);
	return ret ? fail(r, ret, err) : 0;
}

/* Handles of this host already writing the data file: tracked from now. */
static void attach_open_handles(struct trk *t)
{
	unsigned n = 0;

	pthread_mutex_lock(&reg);
	for (unsigned i = 0; i < NHND; i++)
		for (struct hnd *h = hnds[i]; h; h = h->next)
			if (h->ino == t->data_ino && !h->t) {
				h->t = t;
				n++;
			}
	__atomic_add_fetch(&tracked, n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&reg);
	t->users += n;
	t->writers += n;
	if (n)
		cbt_begin_writes(t->d);
}

static int cmd_enable(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp)
{
	struct json_object *o;
	const char *path;
	char base[256], err[600] = "";
	uint64_t dir, size;
	uint32_t bs = 0;
	struct trk *t;
	bool was = true;
	int ret = disk_arg(r, req, &path, &dir, base, sizeof(base));

	(void)arg;
	if (ret)
		return ret;
	if (json_object_object_get_ex(req, "block_size", &o))
		bs = (uint32_t)json_object_get_uint64(o);
	pthread_mutex_lock(&use);
	ret = trk_find(dir, base, &t, &size, err, sizeof(err));
	if (ret == -ENODATA) {
		was = false;
		ret = enable(r, path, dir, base, bs);
		if (ret)
			goto unlock;
		ret = trk_find(dir, base, &t, &size, err, sizeof(err));
	}
	if (!ret)
		ret = trk_use(t, size, err, sizeof(err));
	if (ret) {
		ret = fail(r, ret, err);
		goto unlock;
	}
	if (!was) {
		attach_open_handles(t);
		fprintf(stderr, "vmfsd: change tracking of %s enabled\n", path);
	}
	json_object_object_add(resp, "already", json_object_new_boolean(was));
	add_info(resp, t);
	trk_unuse(t);
unlock:
	pthread_mutex_unlock(&use);
	return ret;
}

static int cmd_disable(void *arg, struct ctl_req *r, struct json_object *req,
		       struct json_object *resp)
{
	const char *path;
	char base[256], err[600] = "";
	uint64_t dir, size;
	struct trk *t = NULL, **pp;
	int ret = disk_arg(r, req, &path, &dir, base, sizeof(base));

	(void)arg;
	if (ret)
		return ret;
	pthread_mutex_lock(&use);
	ret = trk_find(dir, base, &t, &size, err, sizeof(err));
	if (ret == -ENODATA) {
		json_object_object_add(resp, "already", json_object_new_boolean(1));
		ret = 0;
		goto unlock;
	}
	if (ret && ret != -ENOENT) {
		ret = fail(r, ret, err);
		goto unlock;
	}
	if (t && vmfsd_disk_attached(t->data_ino)) {
		snprintf(err, sizeof(err), "%s is attached to a running VM, which "
			 "reports its writes: disable tracking while it is powered "
			 "off", path);
		ret = fail(r, -EBUSY, err);
		goto unlock;
	}
	if (t && t->writers) {
		snprintf(err, sizeof(err), "%s is being written on this host (a "
			 "VM or a program has it open): stop the writer first",
			 path);
		ret = fail(r, -EBUSY, err);
		goto unlock;
	}
	ret = thin_set_change_track(vol, path, NULL, err, sizeof(err));
	if (ret) {
		ret = fail(r, ret, err);
		goto unlock;
	}
	if (t) {
		fs_unlink(vol, t->dir, t->ctk_name);
		pthread_mutex_lock(&reg);
		for (pp = &trks; *pp; pp = &(*pp)->next)
			if (*pp == t) {
				*pp = t->next;
				break;
			}
		pthread_mutex_unlock(&reg);
		if (t->d) {
			cbt_set_io(t->d, NULL);
			cbt_close(t->d);
		}
		free(t);
	} else {
		/* the descriptor named a file that was not there */
		char ctk[300];

		snprintf(ctk, sizeof(ctk), "%s-ctk.vmdk", base);
		fs_unlink(vol, dir, ctk);
	}
	fprintf(stderr, "vmfsd: change tracking of %s disabled\n", path);
	json_object_object_add(resp, "already", json_object_new_boolean(0));
unlock:
	pthread_mutex_unlock(&use);
	return ret;
}

/* Find and use the disk's tracking for a command (under `use`). */
static int cmd_trk(struct ctl_req *r, uint64_t dir, const char *base,
		   struct trk **t)
{
	char err[600] = "";
	uint64_t size;
	int ret = trk_find(dir, base, t, &size, err, sizeof(err));

	if (!ret)
		ret = trk_use(*t, size, err, sizeof(err));
	return ret ? fail(r, ret, err) : 0;
}

static int cmd_checkpoint(void *arg, struct ctl_req *r, struct json_object *req,
			  struct json_object *resp)
{
	const char *path;
	char base[256], id[CBT_ID_LEN];
	struct cbt_id cid;
	uint64_t dir;
	struct trk *t;
	int ret = disk_arg(r, req, &path, &dir, base, sizeof(base));

	(void)arg;
	if (ret)
		return ret;
	pthread_mutex_lock(&use);
	ret = cmd_trk(r, dir, base, &t);
	if (ret)
		goto unlock;
	ret = cbt_checkpoint(t->d, &cid);
	if (ret) {
		ctl_error(r, "%s: checkpoint: %s", path, cbt_strerror(ret));
		ret = ret > -1000 ? ret : -EIO;
	} else {
		cbt_id_format(&cid, id);
		json_object_object_add(resp, "change_id", json_object_new_string(id));
		add_info(resp, t);
	}
	trk_unuse(t);
unlock:
	pthread_mutex_unlock(&use);
	return ret;
}

struct qout {
	struct json_object *a;
	uint64_t bytes, n;
	uint64_t pend_off, pend_len;
	uint64_t (*v)[2];             /* extents of an ID query, then JSON */
	size_t nv, cap;
};

/* An ID query's extents into an array (the disk's lock is held: no JSON
 * made there). */
static int q_collect(void *arg, uint64_t off, uint64_t len)
{
	struct qout *q = arg;

	if (q->nv == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 1024;
		void *p = realloc(q->v, cap * sizeof(*q->v));

		if (!p)
			return -ENOMEM;
		q->v = p;
		q->cap = cap;
	}
	q->v[q->nv][0] = off;
	q->v[q->nv][1] = len;
	q->nv++;
	return 0;
}

static int q_add(void *arg, uint64_t off, uint64_t len)
{
	struct qout *q = arg;
	struct json_object *o = json_object_new_object();

	add_u64(o, "offset", off);
	add_u64(o, "length", len);
	json_object_array_add(q->a, o);
	q->bytes += len;
	q->n++;
	return 0;
}

/* "*": what the data file holds (allocated and written), merged */
static int query_all(struct ctl_req *r, uint64_t dir, const char *base,
		     uint64_t off, uint64_t len, struct qout *q,
		     struct json_object *resp)
{
	struct thin_desc *d = malloc(sizeof(*d));
	struct fs_map_ext *e = calloc(256, sizeof(*e));
	char err[600] = "";
	struct fs_stat st;
	uint64_t size, end, pos;
	fs_file *f = NULL;
	int ret = d && e ? read_desc(dir, base, d, err, sizeof(err)) : -ENOMEM;

	if (!ret && (d->nextents != 1 || !d->ext[0].file[0])) {
		ret = -EOPNOTSUPP;
		snprintf(err, sizeof(err), "%s.vmdk: only disks of one data file",
			 base);
	}
	if (!ret) {
		ret = fs_lookup(vol, dir, d->ext[0].file, &st);
		if (!ret)
			ret = fs_open(vol, st.ino, FS_O_RDONLY, &f);
		if (ret)
			snprintf(err, sizeof(err), "%s: %s", d->ext[0].file,
				 fs_strerror(ret));
	}
	if (ret)
		goto out;
	size = thin_desc_size(d);
	add_u64(resp, "size", size);
	end = off + len < off || off + len > size ? size : off + len;
	for (pos = off; pos < end;) {
		unsigned n;
		int r2 = fs_map(f, pos, end - pos, e, 256, &n);

		if (r2 && r2 != -E2BIG) {
			ret = r2;
			snprintf(err, sizeof(err), "block map of %s: %s",
				 d->ext[0].file, fs_strerror(ret));
			break;
		}
		for (unsigned i = 0; i < n; i++) {
			uint64_t s = e[i].off < pos ? pos : e[i].off;
			uint64_t t = e[i].off + e[i].len > end ? end :
				     e[i].off + e[i].len;

			if (e[i].state != FS_MAP_EXT_DATA &&
			    e[i].state != FS_MAP_EXT_INLINE)
				continue;
			if (s >= t)
				continue;
			if (q->pend_len && q->pend_off + q->pend_len == s) {
				q->pend_len += t - s;
				continue;
			}
			if (q->pend_len)
				q_add(q, q->pend_off, q->pend_len);
			q->pend_off = s;
			q->pend_len = t - s;
		}
		if (!n || !r2)
			break;
		pos = e[n - 1].off + e[n - 1].len;
	}
	if (q->pend_len)
		q_add(q, q->pend_off, q->pend_len);
out:
	if (f)
		fs_close(f);
	free(d);
	free(e);
	return ret ? fail(r, ret, err) : 0;
}

static int reset_error(struct ctl_req *r, struct trk *t, const char *path,
		       const char *since, int ret)
{
	struct cbt_info in;
	char when[64] = "?", cur[CBT_ID_LEN];
	time_t s;
	struct tm tm;

	cbt_info(t->d, &in);
	cbt_id_format(&in.current, cur);
	s = (time_t)(in.reset_ns / 1000000000ull);
	if (gmtime_r(&s, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (ret == -CBT_E_RESET && in.epoch)
		ctl_error(r, "%s: tracking was reset at %s (%s): take a full "
			  "backup (change ID %s predates it)", path, when,
			  in.reset_reason == 1 ? "its writer stopped without "
			  "closing the disk" : "a page of its tracking file "
			  "was damaged", since);
	else if (ret == -CBT_E_RESET)
		ctl_error(r, "%s: change ID %s predates tracking: take a full "
			  "backup", path, since);
	else if (ret == -CBT_E_OTHER)
		ctl_error(r, "%s: change ID %s is not of this disk's tracking "
			  "(now %s): tracking was disabled and enabled again or "
			  "reset, or it is another disk's: take a full backup",
			  path, since, cur);
	else
		ctl_error(r, "%s: change ID %s: %s (the next checkpoint is %s)",
			  path, since, cbt_strerror(ret), cur);
	return ret > -1000 ? ret : -ESTALE;
}

static int cmd_query(void *arg, struct ctl_req *r, struct json_object *req,
		     struct json_object *resp)
{
	struct json_object *o;
	const char *path, *since;
	char base[256];
	struct qout q = { 0 };
	struct cbt_id id;
	uint64_t dir, off = 0, len = UINT64_MAX;
	struct trk *t;
	int ret = disk_arg(r, req, &path, &dir, base, sizeof(base));

	(void)arg;
	if (ret)
		return ret;
	if (!json_object_object_get_ex(req, "since", &o) ||
	    !json_object_is_type(o, json_type_string)) {
		ctl_error(r, "\"since\" (a change ID or \"*\") is missing");
		return -EINVAL;
	}
	since = json_object_get_string(o);
	if (json_object_object_get_ex(req, "offset", &o))
		off = json_object_get_uint64(o);
	if (json_object_object_get_ex(req, "length", &o))
		len = json_object_get_uint64(o);
	if (strcmp(since, "*") && cbt_id_parse(since, &id)) {
		ctl_error(r, "'%s': %s", since, cbt_strerror(-CBT_E_BADID));
		return -EINVAL;
	}
	q.a = json_object_new_array();
	pthread_mutex_lock(&use);
	if (!strcmp(since, "*")) {
		ret = query_all(r, dir, base, off, len, &q, resp);
		goto unlock;
	}
	ret = cmd_trk(r, dir, base, &t);
	if (ret)
		goto unlock;
	{
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		ret = cbt_query(t->d, &id, off, len, q_collect, &q);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		for (size_t i = 0; !ret && i < q.nv; i++)
			q_add(&q, q.v[i][0], q.v[i][1]);
		free(q.v);
		/* the tracking's own time, for benchmarks */
		add_u64(resp, "query_us", (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
						     (t1.tv_nsec - t0.tv_nsec) / 1000));
	}
	if (ret == -ENOMEM)
		ret = fail(r, ret, "out of memory for the extents");
	else if (ret)
		ret = reset_error(r, t, path, since, ret);
	else
		add_info(resp, t);
	trk_unuse(t);
unlock:
	pthread_mutex_unlock(&use);
	json_object_object_add(resp, "since", json_object_new_string(since));
	add_u64(resp, "changed", q.bytes);
	json_object_object_add(resp, "extents", q.a);
	return ret;
}

static int cmd_mark(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	struct json_object *o, *ranges = NULL;
	const char *path;
	char base[256], err[600] = "";
	bool flush = false, close_it = false;
	uint64_t dir, size, n = 0;
	struct trk *t;
	size_t nr = 0;
	int ret = disk_arg(r, req, &path, &dir, base, sizeof(base));

	(void)arg;
	if (ret)
		return ret;
	if (json_object_object_get_ex(req, "ranges", &ranges)) {
		if (!json_object_is_type(ranges, json_type_array)) {
			ctl_error(r, "\"ranges\" is an array of [offset, length]");
			return -EINVAL;
		}
		nr = json_object_array_length(ranges);
	}
	if (json_object_object_get_ex(req, "flush", &o))
		flush = json_object_get_boolean(o);
	if (json_object_object_get_ex(req, "close", &o))
		close_it = json_object_get_boolean(o);
	pthread_mutex_lock(&use);
	ret = trk_find(dir, base, &t, &size, err, sizeof(err));
	if (!ret && !t->session) {
		/* a writer session of its own, until "close" (or vmfsd
		 * stops): marks before writes keep the file dirty */
		ret = trk_write_begin(t, size, err, sizeof(err));
		if (!ret)
			t->session = true;
	}
	if (ret) {
		ret = fail(r, ret, err);
		goto unlock;
	}
	for (size_t i = 0; i < nr && !ret; i++) {
		struct json_object *x = json_object_array_get_idx(ranges, i);
		uint64_t ro, rl;

		if (!json_object_is_type(x, json_type_array) ||
		    json_object_array_length(x) != 2) {
			ctl_error(r, "range %zu: [offset, length]", i);
			ret = -EINVAL;
			break;
		}
		ro = json_object_get_uint64(json_object_array_get_idx(x, 0));
		rl = json_object_get_uint64(json_object_array_get_idx(x, 1));
		if (ro > size || rl > size - ro) {
			ctl_error(r, "range %zu [%llu, %llu) is beyond the disk's "
				  "%llu bytes", i, (unsigned long long)ro,
				  (unsigned long long)(ro + rl),
				  (unsigned long long)size);
			ret = -EINVAL;
			break;
		}
		ret = cbt_premark(t->d, ro, rl);
		if (ret)
			ret = fail(r, -EIO, "a change could not be recorded: "
				   "tracking will be reset");
		n++;
	}
	if (!ret && flush && (ret = cbt_flush(t->d)))
		ret = fail(r, -EIO, cbt_strerror(ret));
	if (close_it && t->session) {
		/* the writer is gone: every write it premarked is done */
		cbt_settle(t->d);
		t->session = false;
		trk_write_end(t);
	}
	add_u64(resp, "marked", n);
unlock:
	pthread_mutex_unlock(&use);
	return ret;
}

static const struct {
	const char *name, *help;
	ctl_fn fn;
} cmds[] = {
	{ "cbt_enable", "turn change tracking on (path [, block_size])",
	  cmd_enable },
	{ "cbt_disable", "turn change tracking off, remove DISK-ctk.vmdk (path)",
	  cmd_disable },
	{ "cbt_checkpoint", "the current change ID; a new sequence begins "
	  "(path)", cmd_checkpoint },
	{ "cbt_query", "areas changed since a change ID or allocated (\"*\") "
	  "(path, since [, offset, length])", cmd_query },
	{ "cbt_mark", "record changes about to be written by a writer that "
	  "bypasses FUSE (path, ranges [[off, len]...] [, flush, close])",
	  cmd_mark },
};

/* From a constructor, as mpath_ctl.c: no line in cmds.c needed. */
__attribute__((constructor)) static void cbt_ctl_register(void)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		ctl_register(cmds[i].name, cmds[i].help, cmds[i].fn, NULL);
}
