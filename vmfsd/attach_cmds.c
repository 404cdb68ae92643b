/*
 * attach_cmds.c - disks attached to a running VM on this host (vmrun's
 * mapped disks): disk_attach, disk_alloc, and the registry that keeps
 * FUSE and the disk commands off an attached disk's block map.
 *
 * The split is ESX's: vmfsd holds the data file's on-disk lock and
 * allocates; vmrun maps guest offsets through the block map it was given
 * and does the I/O on the LUNs itself.  The attachment lives exactly as
 * long as the control connection that made it: vmrun exiting or crashing
 * closes it, the connection's end closes the file and the lock goes with
 * it.  When this host is fenced (its heartbeat stalled) or loses its
 * locks, every attached connection is shut down: vmrun takes that as the
 * order to stop its I/O.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "vmfsd/cbt_hook.h"
#include "vmfsd/cmds.h"
#include "vmfsd/readahead.h"

struct attach {
	struct vmfsd_ctx *c;
	fs_file *f;
	uint64_t ino, desc_ino;     /* data file; descriptor (0 = none) */
	uint64_t size;
	uint32_t unit;
	bool rw;
	int fd;                     /* the control connection */
	pthread_mutex_t alloc;      /* one allocation at a time */
	struct attach *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_gone = PTHREAD_COND_INITIALIZER;
static struct attach *attached;

static uint64_t lease_left(struct vmfsd_ctx *c, uint64_t *cap);

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

bool vmfsd_disk_attached(uint64_t ino)
{
	bool found = false;

	pthread_mutex_lock(&reg_lock);
	for (struct attach *a = attached; a && !found; a = a->next)
		found = a->ino == ino || (a->desc_ino && a->desc_ino == ino);
	pthread_mutex_unlock(&reg_lock);
	return found;
}

int vmfsd_disks_fence(const char *why)
{
	int n = 0;

	pthread_mutex_lock(&reg_lock);
	/* the connection's thread removes its attachment under reg_lock
	 * before its descriptor is closed: every fd here is still open */
	for (struct attach *a = attached; a; a = a->next, n++)
		shutdown(a->fd, SHUT_RDWR);
	pthread_mutex_unlock(&reg_lock);
	if (n)
		fprintf(stderr, "vmfsd: %s: detached %d disk%s of running VMs "
			"(their I/O stops)\n", why, n, n == 1 ? "" : "s");
	return n;
}

static void unregister(struct attach *a)
{
	struct attach **pp;

	pthread_mutex_lock(&reg_lock);
	for (pp = &attached; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	ra_bump();                  /* what vmrun wrote is on the LUN */
	pthread_cond_broadcast(&reg_gone);
	pthread_mutex_unlock(&reg_lock);
}

/*
 * This daemon is stopping (not fenced: closing an attached file releases
 * its lock on disk, and another host may take the disk at once).  Tell
 * every vmrun first, by ending our half of its connection: it fences its
 * disk, stops the VM, waits for its I/O and closes its end, and only then
 * does the connection's end close the file.  A vmrun that does not close
 * within a lease is cut off anyway: its lease has run out by then (no
 * disk_lease answer can renew it: it stopped asking when it fenced, and
 * a stopped vmrun asks nothing).
 */
void vmfsd_disks_stop(struct vmfsd_ctx *c)
{
	uint64_t cap;
	struct timespec until;
	int n = 0;

	(void)lease_left(c, &cap);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(cap / 1000 + 1);
	pthread_mutex_lock(&reg_lock);
	for (struct attach *a = attached; a; a = a->next, n++)
		shutdown(a->fd, SHUT_WR);
	if (n)
		fprintf(stderr, "vmfsd: stopping: waiting for %d running VM "
			"disk%s to stop their I/O\n", n, n == 1 ? "" : "s");
	while (attached &&
	       pthread_cond_timedwait(&reg_gone, &reg_lock, &until) != ETIMEDOUT)
		;
	if (attached)
		fprintf(stderr, "vmfsd: stopping: a vmrun did not let its disk "
			"go within its lease; closing it\n");
	pthread_mutex_unlock(&reg_lock);
}

/* The connection ended: detach, close (the lock goes with the last open). */
static void detach(void *arg)
{
	struct attach *a = arg;
	int ret;

	unregister(a);
	/* a vmrun that died reported no end of its writes */
	vmfsd_cbt_writer_gone(a->ino);
	ret = fs_close(a->f);
	if (ret)
		fprintf(stderr, "vmfsd: closing a detached disk: %s\n",
			fs_strerror(ret));
	pthread_mutex_destroy(&a->alloc);
	free(a);
}

/*
 * vmrun's lease on this daemon, in ms.  *cap: the full lease, fence_ms
 * less one heartbeat interval.  Returned: how long from a request vmrun
 * sent before now it may go on writing should we stop answering: never
 * past our own fence deadline, fence_ms after our last good beat was
 * submitted (other hosts wait dead_ms > fence_ms from then before they
 * break in).  A stalling heartbeat shortens it; 0 once the deadline is
 * passed.
 */
static uint64_t lease_left(struct vmfsd_ctx *c, uint64_t *cap)
{
	lk_volume *lk = fs_lk(c->vol);
	struct lk_vol_info li;
	uint64_t left, full;

	if (!lk) {
		*cap = 0;
		return 0;
	}
	lk_get_info(lk, &li);
	full = li.fence_ms > li.interval_ms + 1000 ?
	       li.fence_ms - li.interval_ms : 1000;
	left = li.beat_age_ms < li.fence_ms ? li.fence_ms - li.beat_age_ms : 0;
	*cap = full;
	return left < full ? left : full;
}

/* The volume's extents by index, as the device specs this vmfsd opened. */
static struct json_object *extents_json(const struct fs_vol_info *in)
{
	struct json_object *exts = json_object_new_array();

	for (unsigned i = 0; i < in->nextents; i++)
		json_object_array_add(exts, json_object_new_string(in->extent_spec[i]));
	return exts;
}

/* The map of [off, off+len) as a JSON array of {off, len, state, ext,
 * lun_off}. */
static int map_json(struct attach *a, uint64_t off, uint64_t len,
		    struct json_object **out)
{
	static const char *const states[] = { "hole", "tbz", "data", "inline" };
	struct fs_map_ext e[64];
	struct json_object *arr = json_object_new_array();
	uint64_t end = off + len;
	unsigned n;
	int ret;

	while (off < end) {
		ret = fs_map(a->f, off, end - off, e, 64, &n);
		if (ret && ret != -E2BIG) {
			json_object_put(arr);
			return ret;
		}
		for (unsigned i = 0; i < n; i++) {
			struct json_object *o = json_object_new_object();

			add_u64(o, "off", e[i].off);
			add_u64(o, "len", e[i].len);
			json_object_object_add(o, "state", json_object_new_string(
				states[e[i].state & 3]));
			add_u64(o, "ext", e[i].ext);
			add_u64(o, "lun_off", e[i].lun_off);
			json_object_array_add(arr, o);
		}
		if (!n)
			break;
		off = e[n - 1].off + e[n - 1].len;
	}
	*out = arr;
	return 0;
}

static int get_str(struct ctl_req *r, struct json_object *req, const char *k,
		   const char **out, bool required)
{
	struct json_object *o;

	*out = NULL;
	if (!json_object_object_get_ex(req, k, &o)) {
		if (!required)
			return 0;
		ctl_error(r, "\"%s\" is missing", k);
		return -EINVAL;
	}
	if (!json_object_is_type(o, json_type_string)) {
		ctl_error(r, "\"%s\" is not a string", k);
		return -EINVAL;
	}
	*out = json_object_get_string(o);
	return 0;
}

/*
 * {"cmd": "disk_attach", "path": DATA, "desc": DESCRIPTOR, "rw": true}:
 * open the data file for this connection's life (read-write takes its
 * on-disk lock) and describe it: size, unit (the block size its map is
 * kept in), the volume's extents by index as the device specs this vmfsd
 * opened, its whole map, whether changed-block tracking is on.
 */
static int cmd_attach(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct fs_vol_info *in = NULL;
	struct json_object *o, *map;
	const char *path, *desc;
	struct attach *a = NULL;
	struct fs_stat st, dst;
	bool rw = true;
	int ret;

	if ((ret = get_str(r, req, "path", &path, true)) ||
	    (ret = get_str(r, req, "desc", &desc, false)))
		return ret;
	if (json_object_object_get_ex(req, "rw", &o))
		rw = json_object_get_boolean(o);
	if (ctl_conn_state(r)) {
		ctl_error(r, "this connection has a disk attached already");
		return -EBUSY;
	}
	ret = fs_resolve(c->vol, path, &st);
	if (!ret && st.type != FS_TYPE_FILE)
		ret = -EINVAL;
	if (!ret && desc && (ret = fs_resolve(c->vol, desc, &dst)) == 0 &&
	    dst.type != FS_TYPE_FILE)
		ret = -EINVAL;
	if (ret) {
		ctl_error(r, "%s: %s", ret == -EINVAL ? path : "resolving",
			  ret == -EINVAL ? "not a regular file" : fs_strerror(ret));
		return vmfsd_errno(ret);
	}
	a = calloc(1, sizeof(*a));
	in = calloc(1, sizeof(*in));
	if (!a || !in) {
		ret = -ENOMEM;
		goto out;
	}
	a->c = c;
	a->ino = st.ino;
	a->desc_ino = desc ? dst.ino : 0;
	a->rw = rw;
	a->fd = ctl_req_fd(r);
	pthread_mutex_init(&a->alloc, NULL);
	ret = fs_open(c->vol, st.ino, rw ? FS_O_RDWR : FS_O_RDONLY, &a->f);
	if (ret) {
		/* -EBUSY: another host has it; vmrun names it (lockinfo) */
		ctl_error(r, "%s: %s", path, ret == -EBUSY ?
			  "in use by another host" : fs_strerror(ret));
		pthread_mutex_destroy(&a->alloc);
		free(a);
		a = NULL;
		ret = vmfsd_errno(ret);
		goto out;
	}
	ret = fs_fstat(a->f, &st);
	if (!ret)
		ret = fs_vol_info(c->vol, in);
	if (ret) {
		ctl_error(r, "%s: %s", path, fs_strerror(ret));
		ret = vmfsd_errno(ret);
		goto close;
	}
	a->unit = fs_file_unit(a->f);
	if (a->unit != in->block_size) {
		/* inline or in sub-blocks: its map moves when it grows */
		ctl_error(r, "%s: a small file (%llu bytes) not mapped in "
			  "blocks: use it through the mount", path,
			  (unsigned long long)st.size);
		ret = -ENOTSUP;
		goto close;
	}
	/* registered before the map is read: from here FUSE writes, punches
	 * and size changes of the file are refused, so the map handed over
	 * stays vmrun's alone */
	pthread_mutex_lock(&reg_lock);
	for (struct attach *b = attached; b; b = b->next)
		if (b->ino == a->ino && (rw || b->rw))
			ret = -EBUSY;
	if (!ret)
		ret = ctl_conn_state_set(r, a, detach);
	if (!ret) {
		a->next = attached;
		attached = a;
		ra_bump();          /* vmrun writes it from now on */
	}
	pthread_mutex_unlock(&reg_lock);
	if (ret) {
		ctl_error(r, "%s: attached to a running VM on this host", path);
		goto close;
	}
	/* A FUSE handle opened for writing before us may have written
	 * first writes whose TBZ clears are still in memory only (the map
	 * reports them as data): commit them now, or a guest's flushed
	 * write there would read as zeros after a crash.  The file's write
	 * lock also waits out FUSE operations still in progress. */
	ret = rw ? fs_fsync(a->f) : 0;
	if (!ret)
		ret = fs_fstat(a->f, &st);
	if (!ret) {
		a->size = st.size;
		ret = map_json(a, 0, a->size, &map);
	}
	if (ret) {
		ctl_error(r, "%s: reading its map: %s", path, fs_strerror(ret));
		ret = vmfsd_errno(ret);
		unregister(a);
		ctl_conn_state_take(r);
		goto close;
	}
	add_u64(resp, "size", a->size);
	add_u64(resp, "unit", a->unit);
	add_u64(resp, "sector", in->sector);
	json_object_object_add(resp, "extents", extents_json(in));
	json_object_object_add(resp, "map", map);
	json_object_object_add(resp, "host", json_object_new_string(c->host));
	if (!in->read_only && fs_lk(c->vol)) {
		/* vmrun's lease on this daemon: an answer (disk_lease,
		 * disk_alloc) at least this often, or it stops the disk's
		 * I/O; each answer is good for lease_ms from when vmrun
		 * asked, shortened by our heartbeat's age (lease_left) */
		uint64_t cap, left = lease_left(c, &cap);

		add_u64(resp, "lease_ms", cap);
		add_u64(resp, "lease_left_ms", left);
	}
	a = NULL;
	goto out;
close:
	fs_close(a->f);
	pthread_mutex_destroy(&a->alloc);
	free(a);
out:
	free(in);
	return ret;
}

/*
 * {"cmd": "disk_alloc", "ranges": [[OFF, LEN], ...]}: make every unit the
 * ranges touch writable in place.  A hole gets a block, a to-be-zeroed
 * block is zeroed and its flag cleared: both by writing the whole unit
 * with zeros through the library, whose transaction flushes that data
 * before it commits the map pointing at it.  So when the answer (the new
 * map of the ranges) arrives, the rest of each unit reads as zeros on
 * every host and the mapping is durable; vmrun writes the guest's data
 * after it.  Units already mapped are left alone (vmrun may be writing
 * them).
 */
static int cmd_alloc(void *arg, struct ctl_req *r, struct json_object *req,
		     struct json_object *resp)
{
	struct attach *a = ctl_conn_state(r);
	struct json_object *ranges, *out;
	unsigned char *zeros = NULL;
	size_t nr;
	int ret = 0;

	(void)arg;
	if (!a) {
		ctl_error(r, "no disk attached on this connection");
		return -EBADF;
	}
	if (!a->rw) {
		ctl_error(r, "the disk is attached read-only");
		return -EROFS;
	}
	if (!json_object_object_get_ex(req, "ranges", &ranges) ||
	    !json_object_is_type(ranges, json_type_array)) {
		ctl_error(r, "\"ranges\" ([[offset, length], ...]) is missing");
		return -EINVAL;
	}
	nr = json_object_array_length(ranges);
	zeros = calloc(1, a->unit);
	out = json_object_new_array();
	if (!zeros) {
		json_object_put(out);
		return -ENOMEM;
	}
	pthread_mutex_lock(&a->alloc);
	for (size_t i = 0; !ret && i < nr; i++) {
		struct json_object *p = json_object_array_get_idx(ranges, i), *m;
		uint64_t off, len, u;

		if (!json_object_is_type(p, json_type_array) ||
		    json_object_array_length(p) != 2) {
			ctl_error(r, "a range is [offset, length]");
			ret = -EINVAL;
			break;
		}
		off = json_object_get_uint64(json_object_array_get_idx(p, 0));
		len = json_object_get_uint64(json_object_array_get_idx(p, 1));
		if (len > a->size - off && off < a->size)
			len = a->size - off;    /* the last unit, partial */
		if (!len || off >= a->size) {
			ctl_error(r, "range %llu+%llu is not inside the disk "
				  "(%llu bytes)", (unsigned long long)off,
				  (unsigned long long)len,
				  (unsigned long long)a->size);
			ret = -EINVAL;
			break;
		}
		/* whole units; the last one may pass the size only if the
		 * size is not a multiple of the unit (then not past it) */
		len = (off + len + a->unit - 1) / a->unit * a->unit;
		off = off / a->unit * a->unit;
		len -= off;
		for (u = off; !ret && u < off + len; u += a->unit) {
			struct fs_map_ext e;

			/* a line now and then: vmrun's lease counts silence */
			ctl_progress(r, "Allocating", u - off, len);
			unsigned n;
			uint64_t wlen = a->unit;
			ssize_t w;

			ret = fs_map(a->f, u, a->unit, &e, 1, &n);
			if (ret == -E2BIG)
				ret = 0;
			if (ret || !n || e.state == FS_MAP_EXT_DATA)
				continue;
			if (u + wlen > a->size)
				wlen = a->size - u;   /* never grow the file */
			w = fs_pwrite(a->f, zeros, wlen, u);
			if (w >= 0 && (uint64_t)w != wlen)
				w = -EIO;
			if (w < 0)
				ret = (int)w;
		}
		if (ret) {
			ctl_error(r, "allocating %llu+%llu: %s",
				  (unsigned long long)off,
				  (unsigned long long)len, fs_strerror(ret));
			ret = vmfsd_errno(ret);
			break;
		}
		ret = map_json(a, off, len, &m);
		if (ret) {
			ctl_error(r, "reading the map: %s", fs_strerror(ret));
			ret = vmfsd_errno(ret);
			break;
		}
		for (size_t k = 0; k < json_object_array_length(m); k++)
			json_object_array_add(out, json_object_get(
				json_object_array_get_idx(m, k)));
		json_object_put(m);
	}
	/* the library may keep a to-be-zeroed block's clear in memory until
	 * the next commit: the guest's flush must find the map durable */
	if (!ret && (ret = fs_fsync(a->f))) {
		ctl_error(r, "committing the map: %s", fs_strerror(ret));
		ret = vmfsd_errno(ret);
	}
	pthread_mutex_unlock(&a->alloc);
	free(zeros);
	if (ret) {
		json_object_put(out);
		return ret;
	}
	json_object_object_add(resp, "map", out);
	{
		/* the answer renews vmrun's lease, as disk_lease's does */
		lk_volume *lk = fs_lk(a->c->vol);
		uint64_t cap;

		add_u64(resp, "lease_left_ms", lk && !lk_state(lk) ?
			lease_left(a->c, &cap) : 0);
	}
	return 0;
}

/* {"cmd": "disk_detach"}: vmrun is done with the disk (its I/O has
 * completed): close it now, so that the lock is free when vmrun exits
 * rather than whenever this end notices the connection closing. */
static int cmd_detach(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp)
{
	struct attach *a = ctl_conn_state_take(r);

	(void)arg;
	(void)req;
	(void)resp;
	if (!a) {
		ctl_error(r, "no disk attached on this connection");
		return -EBADF;
	}
	detach(a);
	return 0;
}

/* {"cmd": "disk_sync"}: make the attached file's pending metadata (size,
 * times) durable; the data is vmrun's to flush on the LUNs. */
static int cmd_sync(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	struct attach *a = ctl_conn_state(r);
	int ret;

	(void)arg;
	(void)req;
	(void)resp;
	if (!a) {
		ctl_error(r, "no disk attached on this connection");
		return -EBADF;
	}
	ret = a->rw ? fs_fsync(a->f) : 0;
	if (ret) {
		ctl_error(r, "%s", fs_strerror(ret));
		return vmfsd_errno(ret);
	}
	return 0;
}

/* {"cmd": "disk_extents"}: the volume's extents again (it grew while the
 * disk was attached: a new block may lie on a new extent). */
static int cmd_extents(void *arg, struct ctl_req *r, struct json_object *req,
		       struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct fs_vol_info *in = calloc(1, sizeof(*in));
	int ret;

	(void)req;
	if (!in)
		return -ENOMEM;
	ret = fs_vol_info(c->vol, in);
	if (ret) {
		ctl_error(r, "%s", fs_strerror(ret));
		ret = vmfsd_errno(ret);
	} else {
		json_object_object_add(resp, "extents", extents_json(in));
	}
	free(in);
	return ret;
}

/* {"cmd": "disk_lease"}: this host still holds its locks (not fenced,
 * not lost): vmrun may go on with its I/O. */
static int cmd_lease(void *arg, struct ctl_req *r, struct json_object *req,
		     struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	lk_volume *lk = fs_lk(c->vol);
	int ret = lk ? lk_state(lk) : -EROFS;
	uint64_t cap;

	(void)req;
	if (ret) {
		ctl_error(r, "this host's heartbeat: %s", fs_strerror(ret));
		return -ENOLCK;
	}
	add_u64(resp, "lease_left_ms", lease_left(c, &cap));
	return 0;
}

static const struct {
	const char *name, *help;
	ctl_fn fn;
} cmds[] = {
	{ "disk_attach", "attach a disk's data file to a VM for this "
	  "connection's life (path, desc, rw): size, extents, block map",
	  cmd_attach },
	{ "disk_alloc", "allocate / zero the units of the attached disk's "
	  "ranges ([[off, len]...]): their new map", cmd_alloc },
	{ "disk_extents", "the volume's extents as device specs, by index",
	  cmd_extents },
	{ "disk_detach", "close the attached disk (its lock goes with it)",
	  cmd_detach },
	{ "disk_lease", "this host still holds its locks (vmrun's lease)",
	  cmd_lease },
	{ "disk_sync", "make the attached disk's metadata durable", cmd_sync },
};

int vmfsd_attach_cmds_register(struct vmfsd_ctx *c)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		int ret = ctl_register(cmds[i].name, cmds[i].help, cmds[i].fn, c);

		if (ret)
			return ret;
	}
	return 0;
}
