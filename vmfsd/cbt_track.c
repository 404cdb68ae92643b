/*
 * cbt_track.c - changed-block tracking in vmfsd (cbt_hook.h): the tracked
 * disks this host has touched, and the FUSE hooks that mark every change
 * of a tracked disk's data file.  The control commands: cbt_cmds.c.
 *
 * State: one struct trk per tracked disk this host has touched, keyed by
 * its tracking file (inode and generation).  Its cbt_disk stays loaded
 * while vmfsd runs (a query needs no reading); the tracking file is held
 * open (its on-disk lock: no other host writes it meanwhile) only while a
 * writer or a command uses it, and before the cached state is used again
 * its header is compared with the file (another host may have written it
 * in between, cbt_revalidate).
 *
 * Locks: vd_cbt_lock (outer) serialises everything that does I/O on
 * tracking files: loading, enabling, commands, opens and last closes of
 * writers.  `reg` (inner, short) guards the lists the write path reads:
 * the FUSE handles and the data file names.  The write path takes only
 * `reg`, then the cbt_disk's own lock.
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
#include "vmfsd/cbt_int.h"
#include "vmfsd/cmds.h"
#include "vmfsd/ctl.h"

fs_vol *vd_cbt_vol;

struct hnd {                          /* a FUSE handle open read-write */
	const void *f;                /* its fs_file or thin_rdm: a key */
	uint64_t ino;
	struct trk *t;                /* NULL: not tracked */
	struct hnd *next;
};

/*
 * A data file name seen by lookup.  Kept (never evicted: one per disk
 * data file this host has looked up; a stale one is harmless, the open
 * checks the descriptor): an open that found no name would write the
 * disk untracked.
 */
struct dname {
	uint64_t ino, dir;
	char name[256];
	struct dname *next;
};

#define NHND 1024u
#define NNAME 4096u
static struct hnd *hnds[NHND];
static struct dname *names[NNAME];
static bool names_lost;               /* a name could not be kept */
static unsigned tracked;              /* handles with a trk (atomic) */
static struct trk *trks;
pthread_mutex_t vd_cbt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t reg = PTHREAD_MUTEX_INITIALIZER;

/* a disk's data file, or a virtual-mode raw device mapping's mapping
 * file (physical mode, -rdmp.vmdk, is not tracked: as ESX) */
static const char flat_sfx[] = "-flat.vmdk";
static const char rdm_sfx[] = "-rdm.vmdk";

/* The length of name's data file suffix, or 0 when it has none. */
static size_t data_sfx(const char *name)
{
	size_t n = strlen(name), f = sizeof(flat_sfx) - 1, r = sizeof(rdm_sfx) - 1;

	if (n > f && !strcmp(name + n - f, flat_sfx))
		return f;
	if (n > r && !strcmp(name + n - r, rdm_sfx))
		return r;
	return 0;
}

void vmfsd_cbt_init(fs_vol *v)
{
	vd_cbt_vol = v;
}

static unsigned hslot(const void *f)
{
	uintptr_t p = (uintptr_t)f;

	return (unsigned)((p >> 4) ^ (p >> 14)) % NHND;
}

/* ---- descriptors and tracking files ----------------------------------------- */

int vd_cbt_read_desc(uint64_t dir, const char *base, struct thin_desc *d,
		     char *err, size_t errlen)
{
	char name[300], *text = NULL;
	struct fs_stat st;
	fs_file *f = NULL;
	ssize_t n;
	int ret;

	snprintf(name, sizeof(name), "%s.vmdk", base);
	ret = fs_lookup(vd_cbt_vol, dir, name, &st);
	if (!ret)
		ret = fs_open(vd_cbt_vol, st.ino, FS_O_RDONLY, &f);
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
int vd_cbt_find(uint64_t dir, const char *base, struct trk **out,
		    uint64_t *size, char *err, size_t errlen)
{
	struct thin_desc *d = malloc(sizeof(*d));
	struct fs_stat cs, ds;
	struct trk *t;
	int ret = d ? vd_cbt_read_desc(dir, base, d, err, errlen) : -ENOMEM;

	if (ret)
		goto free_d;
	if (!d->change_track[0]) {
		snprintf(err, errlen, "change tracking is not enabled on %s.vmdk "
			 "(vmfs-cbt enable)", base);
		ret = -ENODATA;
		goto free_d;
	}
	*size = thin_desc_size(d);
	ret = fs_lookup(vd_cbt_vol, dir, d->change_track, &cs);
	if (ret) {
		snprintf(err, errlen, "tracking file %s of %s.vmdk: %s (disable "
			 "and enable tracking again, then take a full backup)",
			 d->change_track, base, fs_strerror(ret));
		goto free_d;
	}
	if (d->nextents != 1 || !d->ext[0].file[0] ||
	    (ret = fs_lookup(vd_cbt_vol, dir, d->ext[0].file, &ds))) {
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

/* Take t into use (under vd_cbt_lock): the tracking file open, its state
 * loaded and current. */
int vd_cbt_use(struct trk *t, uint64_t size, char *err, size_t errlen)
{
	enum cbt_open_event ev = CBT_OPENED;
	struct cbt_io io;
	int ret = 0;

	if (t->users++)
		return cbt_set_size(t->d, size);
	ret = fs_open(vd_cbt_vol, t->ctk_ino, FS_O_RDWR, &t->ctk);
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

/* Put t out of use (under vd_cbt_lock): the last user writes it back clean. */
void vd_cbt_unuse(struct trk *t)
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

/* A writer begins (under vd_cbt_lock). */
int vd_cbt_write_begin(struct trk *t, uint64_t size, char *err,
			   size_t errlen)
{
	int ret = vd_cbt_use(t, size, err, errlen);

	if (ret)
		return ret;
	t->writers++;
	ret = cbt_begin_writes(t->d);
	if (ret) {
		snprintf(err, errlen, "tracking file %s: %s", t->ctk_name,
			 cbt_strerror(ret));
		t->writers--;
		vd_cbt_unuse(t);
	}
	return ret;
}

void vd_cbt_write_end(struct trk *t)
{
	t->writers--;
	vd_cbt_unuse(t);
}

/* inode numbers are FD addresses (aligned): mix before taking a slot */
static unsigned nslot(uint64_t ino)
{
	return (unsigned)((ino * 0x9e3779b97f4a7c15ull) >> 52) % NNAME;
}

/* under reg */
static struct dname *find_name(uint64_t ino)
{
	struct dname *e;

	for (e = names[nslot(ino)]; e && e->ino != ino; e = e->next)
		;
	return e;
}

/* ---- FUSE hooks ------------------------------------------------------------- */

void vmfsd_cbt_lookup(uint64_t dir, const char *name, uint64_t ino)
{
	size_t n = strlen(name);
	struct dname *e;

	if (!data_sfx(name) || n >= sizeof(e->name))
		return;
	pthread_mutex_lock(&reg);
	e = find_name(ino);
	if (!e && (e = calloc(1, sizeof(*e)))) {
		e->ino = ino;
		e->next = names[nslot(ino)];
		names[nslot(ino)] = e;
	}
	if (e) {
		e->dir = dir;
		memcpy(e->name, name, n + 1);
	} else {
		names_lost = true;  /* read-write opens fail from now on */
	}
	pthread_mutex_unlock(&reg);
}

/* The trk of data file ino when its disk is tracked (under vd_cbt_lock). */
static struct trk *tracked_disk(uint64_t ino, uint64_t *size)
{
	struct dname e = { 0 }, *p;
	struct trk *t = NULL;
	char base[256], err[512];
	int ret;

	pthread_mutex_lock(&reg);
	p = find_name(ino);
	if (p)
		e = *p;
	pthread_mutex_unlock(&reg);
	if (!p)
		return NULL;
	snprintf(base, sizeof(base), "%.*s",
		 (int)(strlen(e.name) - data_sfx(e.name)), e.name);
	ret = vd_cbt_find(e.dir, base, &t, size, err, sizeof(err));
	if (ret) {
		if (ret != -ENODATA && ret != -ENOENT && ret != -EINVAL)
			fprintf(stderr, "vmfsd: %s: writes to %s are not tracked\n",
				err, e.name);
		return NULL;
	}
	return t->data_ino == ino ? t : NULL;
}

int vmfsd_cbt_open(const void *f, uint64_t ino)
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
	pthread_mutex_lock(&reg);
	if (names_lost) {
		/* we may not know that this is a tracked disk's data file */
		pthread_mutex_unlock(&reg);
		free(h);
		fprintf(stderr, "vmfsd: change tracking: out of memory for data "
			"file names: read-write opens refused\n");
		return -ENOMEM;
	}
	if (!find_name(ino)) {
		/* not a disk's data file (those are looked up by their
		 * -flat.vmdk name first): nothing to track, no waiting */
		h->next = hnds[hslot(f)];
		hnds[hslot(f)] = h;
		pthread_mutex_unlock(&reg);
		return 0;
	}
	pthread_mutex_unlock(&reg);
	pthread_mutex_lock(&vd_cbt_lock);
	t = tracked_disk(ino, &size);
	if (t) {
		ret = vd_cbt_write_begin(t, size, err, sizeof(err));
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
	pthread_mutex_unlock(&vd_cbt_lock);
	if (ret)
		free(h);
	return ret;
}

static struct trk *handle_trk(const void *f)
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

int vmfsd_cbt_write(const void *f, uint64_t off, uint64_t len)
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

int vmfsd_cbt_resized(const void *f, uint64_t size)
{
	struct trk *t = handle_trk(f);
	struct cbt_info in;

	if (!t)
		return 0;
	cbt_info(t->d, &in);
	return size < in.disk_size ?
	       vmfsd_cbt_write(f, size, in.disk_size - size) : 0;
}

struct resize_tok {
	struct trk *t;
	uint64_t off, len;
};

int vmfsd_cbt_resize_ino(uint64_t ino, uint64_t size, void **tok)
{
	struct resize_tok *k = NULL;
	struct trk *t;
	uint64_t dsize = 0;
	char err[512];
	int ret = 0;

	*tok = NULL;
	pthread_mutex_lock(&vd_cbt_lock);
	t = tracked_disk(ino, &dsize);
	if (t && size < dsize) {
		k = malloc(sizeof(*k));
		ret = k ? vd_cbt_write_begin(t, dsize, err, sizeof(err)) : -ENOMEM;
		if (ret == -ENOMEM)
			snprintf(err, sizeof(err), "%s", strerror(ENOMEM));
		/* held while the cut is made: however many checkpoints
		 * pass before it lands, it is reported after each */
		if (!ret && cbt_hold(t->d, size, dsize - size)) {
			vd_cbt_write_end(t);
			ret = -EIO;
			snprintf(err, sizeof(err), "%s.vmdk: a change could not "
				 "be recorded", t->base);
		}
		if (ret) {
			fprintf(stderr, "vmfsd: %s\n", err);
			free(k);
		} else {
			*k = (struct resize_tok){ t, size, dsize - size };
			*tok = k;
		}
	}
	pthread_mutex_unlock(&vd_cbt_lock);
	return ret ? -EIO : 0;
}

void vmfsd_cbt_resize_done(void *tok)
{
	struct resize_tok *k = tok;

	if (!k)
		return;
	pthread_mutex_lock(&vd_cbt_lock);
	/* the cut landed (or failed): the blocks carry this sequence */
	cbt_release(k->t->d, k->off, k->len);
	vd_cbt_write_end(k->t);
	pthread_mutex_unlock(&vd_cbt_lock);
	free(k);
}

int vmfsd_cbt_fsync(const void *f, int ret)
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

void vmfsd_cbt_release(const void *f)
{
	struct hnd *h = NULL, **pp;
	struct trk *t = NULL;

	pthread_mutex_lock(&reg);
	for (pp = &hnds[hslot(f)]; *pp; pp = &(*pp)->next)
		if ((*pp)->f == f) {
			h = *pp;
			*pp = h->next;
			break;
		}
	/* h->t is set under reg (here or by an enable): read it once */
	if (h && (t = h->t))
		__atomic_sub_fetch(&tracked, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&reg);
	if (t) {
		/* the handle's writer keeps t alive until here */
		pthread_mutex_lock(&vd_cbt_lock);
		vd_cbt_write_end(t);
		pthread_mutex_unlock(&vd_cbt_lock);
	}
	free(h);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CBT_DEAD_GRACE_NS, or VMFSD_CBT_GRACE_MS (tests) */
static uint64_t dead_grace_ns(void)
{
	const char *e = getenv("VMFSD_CBT_GRACE_MS");

	return e && *e ? strtoull(e, NULL, 10) * 1000000ull : CBT_DEAD_GRACE_NS;
}

void vd_cbt_dead_holds(struct trk *t)
{
	if (t->dead_holds && !t->session &&
	    mono_ns() - t->dead_ns >= dead_grace_ns()) {
		cbt_release_all(t->d);
		t->dead_holds = false;
	}
}

struct trk *vd_cbt_session(const char *path)
{
	for (struct trk *t = trks; t; t = t->next)
		if (t->session && t->spath && !strcmp(t->spath, path))
			return t;
	return NULL;
}

void vd_cbt_session_end(struct trk *t)
{
	t->session = false;
	free(t->spath);
	t->spath = NULL;
	vd_cbt_write_end(t);
}

void vmfsd_cbt_writer_gone(uint64_t ino)
{
	pthread_mutex_lock(&vd_cbt_lock);
	for (struct trk *t = trks; t; t = t->next)
		if (t->data_ino == ino && t->session) {
			/* nothing says its writes are done: what it held
			 * stays held (restamped at every checkpoint) until
			 * its grace has passed */
			if (cbt_held(t->d)) {
				t->dead_holds = true;
				t->dead_ns = mono_ns();
			}
			vd_cbt_session_end(t);
			fprintf(stderr, "vmfsd: change tracking of %s.vmdk: its "
				"writer went away without closing; tracking goes "
				"on\n", t->base);
		}
	pthread_mutex_unlock(&vd_cbt_lock);
}

void vmfsd_cbt_stop(void)
{
	pthread_mutex_lock(&vd_cbt_lock);
	pthread_mutex_lock(&reg);
	for (unsigned i = 0; i < NHND; i++)
		while (hnds[i]) {
			struct hnd *h = hnds[i];

			hnds[i] = h->next;
			free(h);
		}
	for (unsigned i = 0; i < NNAME; i++)
		while (names[i]) {
			struct dname *e = names[i];

			names[i] = e->next;
			free(e);
		}
	__atomic_store_n(&tracked, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&reg);
	/* no FUSE request runs any more: every mark is in memory */
	while (trks) {
		struct trk *t = trks;

		trks = t->next;
		if (t->users) {
			t->users = 1;
			vd_cbt_unuse(t);
		}
		if (t->d)
			cbt_close(t->d);
		free(t->spath);
		free(t);
	}
	pthread_mutex_unlock(&vd_cbt_lock);
}

/* Handles of this host already writing the data file: tracked from now. */
void vd_cbt_attach_handles(struct trk *t)
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

/* Drop t (tracking disabled; no writer): its state goes, unwritten. */
void vd_cbt_forget(struct trk *t)
{
	struct trk **pp;

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
	free(t->spath);
	free(t);
}
