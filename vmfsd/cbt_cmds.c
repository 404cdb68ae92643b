/*
 * cbt_cmds.c - vmfsd's control commands for changed-block tracking (the
 * tools' vmfs-cbt, the executor's cbt_mark); the tracked disks and the FUSE
 * hooks: cbt_track.c.
 *
 *   {"cmd": "cbt_enable", "path": DISK.vmdk [, "block_size": BYTES]}
 *   {"cmd": "cbt_disable", "path": DISK.vmdk}
 *   {"cmd": "cbt_checkpoint", "path": DISK.vmdk} -> "change_id"
 *   {"cmd": "cbt_query", "path": DISK.vmdk, "since": ID | "*"
 *    [, "offset": N, "length": N]} -> "extents": [{"offset", "length"}...]
 *   {"cmd": "cbt_mark", "path": DISK.vmdk [, "hold": [[OFF, LEN]...]]
 *    [, "release": [[OFF, LEN]...]] [, "flush": true] [, "close": true]}
 *    -> "block_size" (while the session is open)
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbt/cbt.h"
#include "thin/disk.h"
#include "vmfsd/cbt_int.h"
#include "vmfsd/cmds.h"
#include "vmfsd/ctl.h"

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
	ret = fs_resolve(vd_cbt_vol, dpath, &st);
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
	int ret = d ? vd_cbt_read_desc(dir, base, d, err, sizeof(err)) : -ENOMEM;

	if (ret)
		goto out;
	if (!strcmp(d->create_type, "vmfsPassthroughRawDeviceMap") ||
	    (d->nextents == 1 && !strcmp(d->ext[0].type, "VMFSRAW"))) {
		/* as ESX: the guest's SCSI commands reach the LUN, which may
		 * change it in ways no write shows */
		ret = -EOPNOTSUPP;
		snprintf(err, sizeof(err), "%s is a physical-mode (passthrough) "
			 "raw device mapping: its changes cannot be tracked; map "
			 "the LUN in virtual mode (vmkfstools -r) to track them",
			 path);
		goto out;
	}
	if (!strcmp(d->create_type, "vmfsRawDeviceMap")) {
		snprintf(ctk, sizeof(ctk), "%s-rdm.vmdk", base);
		if (d->nextents != 1 || strcmp(d->ext[0].file, ctk) ||
		    strcmp(d->ext[0].type, "VMFSRDM")) {
			/* FUSE writers are recognised by that name */
			ret = -EOPNOTSUPP;
			snprintf(err, sizeof(err), "%s: change tracking of a raw "
				 "device mapping needs one VMFSRDM extent named "
				 "%s", path, ctk);
			goto out;
		}
	} else {
		snprintf(ctk, sizeof(ctk), "%s-flat.vmdk", base);
		if (d->nextents != 1 || strcmp(d->ext[0].file, ctk) ||
		    (strcmp(d->ext[0].type, "VMFS") &&
		     strcmp(d->ext[0].type, "FLAT"))) {
			/* FUSE writers are recognised by that name */
			ret = -EOPNOTSUPP;
			snprintf(err, sizeof(err), "%s: change tracking needs a "
				 "disk of one VMFS or FLAT data file named %s",
				 path, ctk);
			goto out;
		}
	}
	/* the data file held open: no other host starts writing meanwhile
	 * (and one that writes it now makes this fail) */
	ret = fs_lookup(vd_cbt_vol, dir, d->ext[0].file, &st);
	if (!ret && vmfsd_disk_attached(st.ino)) {
		/* vmrun decided at attach time not to report its writes */
		ret = -EBUSY;
		snprintf(err, sizeof(err), "%s is attached to a running VM: "
			 "enable tracking while it is powered off", path);
		goto out;
	}
	if (!ret)
		ret = fs_open(vd_cbt_vol, st.ino, FS_O_RDWR, &data);
	if (ret) {
		snprintf(err, sizeof(err), "%s: %s%s", d->ext[0].file,
			 fs_strerror(ret), ret == -EBUSY ? " (another host "
			 "writes it: enable tracking there)" : "");
		goto out;
	}
	snprintf(ctk, sizeof(ctk), "%s-ctk.vmdk", base);
	ret = fs_create(vd_cbt_vol, dir, ctk, &a, &st);
	if (ret == -EEXIST)     /* left by a crash or an old tracking */
		ret = fs_lookup(vd_cbt_vol, dir, ctk, &st);
	if (!ret)
		ret = fs_open(vd_cbt_vol, st.ino, FS_O_RDWR, &f);
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
		ret = thin_set_change_track(vd_cbt_vol, path, ctk, err, sizeof(err));
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
	pthread_mutex_lock(&vd_cbt_lock);
	ret = vd_cbt_find(dir, base, &t, &size, err, sizeof(err));
	if (ret == -ENODATA) {
		was = false;
		ret = enable(r, path, dir, base, bs);
		if (ret)
			goto unlock;
		ret = vd_cbt_find(dir, base, &t, &size, err, sizeof(err));
	}
	if (!ret)
		ret = vd_cbt_use(t, size, err, sizeof(err));
	if (ret) {
		ret = fail(r, ret, err);
		goto unlock;
	}
	if (!was) {
		vd_cbt_attach_handles(t);
		fprintf(stderr, "vmfsd: change tracking of %s enabled\n", path);
	}
	json_object_object_add(resp, "already", json_object_new_boolean(was));
	add_info(resp, t);
	vd_cbt_unuse(t);
unlock:
	pthread_mutex_unlock(&vd_cbt_lock);
	return ret;
}

static int cmd_disable(void *arg, struct ctl_req *r, struct json_object *req,
		       struct json_object *resp)
{
	const char *path;
	char base[256], err[600] = "";
	uint64_t dir, size;
	struct trk *t = NULL;
	int ret = disk_arg(r, req, &path, &dir, base, sizeof(base));

	(void)arg;
	if (ret)
		return ret;
	pthread_mutex_lock(&vd_cbt_lock);
	ret = vd_cbt_find(dir, base, &t, &size, err, sizeof(err));
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
	ret = thin_set_change_track(vd_cbt_vol, path, NULL, err, sizeof(err));
	if (ret) {
		ret = fail(r, ret, err);
		goto unlock;
	}
	if (t) {
		fs_unlink(vd_cbt_vol, t->dir, t->ctk_name);
		vd_cbt_forget(t);
	} else {
		/* the descriptor named a file that was not there */
		char ctk[300];

		snprintf(ctk, sizeof(ctk), "%s-ctk.vmdk", base);
		fs_unlink(vd_cbt_vol, dir, ctk);
	}
	fprintf(stderr, "vmfsd: change tracking of %s disabled\n", path);
	json_object_object_add(resp, "already", json_object_new_boolean(0));
unlock:
	pthread_mutex_unlock(&vd_cbt_lock);
	return ret;
}

/* Find and use the disk's tracking for a command (under vd_cbt_lock). */
static int cmd_trk(struct ctl_req *r, uint64_t dir, const char *base,
		   struct trk **t)
{
	char err[600] = "";
	uint64_t size;
	int ret = vd_cbt_find(dir, base, t, &size, err, sizeof(err));

	if (!ret)
		ret = vd_cbt_use(*t, size, err, sizeof(err));
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
	pthread_mutex_lock(&vd_cbt_lock);
	ret = cmd_trk(r, dir, base, &t);
	if (ret)
		goto unlock;
	/* a dead writer's holds past their grace are not restamped */
	vd_cbt_dead_holds(t);
	ret = cbt_checkpoint(t->d, &cid);
	if (ret) {
		ctl_error(r, "%s: checkpoint: %s", path, cbt_strerror(ret));
		ret = ret > -1000 ? ret : -EIO;
	} else {
		cbt_id_format(&cid, id);
		json_object_object_add(resp, "change_id", json_object_new_string(id));
		add_info(resp, t);
	}
	vd_cbt_unuse(t);
unlock:
	pthread_mutex_unlock(&vd_cbt_lock);
	return ret;
}

/*
 * A query's answer is one line of JSON, which clients read whole (ctl.h):
 * at most max_extents extents per answer (default 65536, about 3 MB);
 * when more follow, "next_offset" says where to ask again.
 */
#define QUERY_MAX_EXTENTS 65536u

struct qout {
	struct json_object *a;
	uint64_t bytes, n, max;
	uint64_t pend_off, pend_len;
	uint64_t (*v)[2];             /* extents of an ID query, then JSON */
	size_t nv, cap;
	bool more;                    /* stopped at max: more from next */
	uint64_t next;
};

/* An ID query's extents into an array (the disk's lock is held: no JSON
 * made there). */
static int q_collect(void *arg, uint64_t off, uint64_t len)
{
	struct qout *q = arg;

	if (q->nv == q->max) {
		q->more = true;
		q->next = off;
		return 1;
	}
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
	struct json_object *o;

	if (q->n == q->max) {
		q->more = true;
		q->next = off;
		return 1;
	}
	o = json_object_new_object();
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
	int ret = d && e ? vd_cbt_read_desc(dir, base, d, err, sizeof(err)) : -ENOMEM;

	if (!ret && (d->nextents != 1 || !d->ext[0].file[0])) {
		ret = -EOPNOTSUPP;
		snprintf(err, sizeof(err), "%s.vmdk: only disks of one data file",
			 base);
	}
	if (!ret) {
		ret = fs_lookup(vd_cbt_vol, dir, d->ext[0].file, &st);
		if (!ret)
			ret = fs_open(vd_cbt_vol, st.ino, FS_O_RDONLY, &f);
		if (ret)
			snprintf(err, sizeof(err), "%s: %s", d->ext[0].file,
				 fs_strerror(ret));
	}
	if (ret)
		goto out;
	size = thin_desc_size(d);
	add_u64(resp, "size", size);
	end = off + len < off || off + len > size ? size : off + len;
	if (!strcmp(d->ext[0].type, "VMFSRDM")) {
		/* a mapped LUN is all data */
		if (off < end)
			q_add(q, off, end - off);
		goto out;
	}
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
			if (q->pend_len && q_add(q, q->pend_off, q->pend_len))
				break;
			q->pend_off = s;
			q->pend_len = t - s;
		}
		if (!n || !r2 || q->more)
			break;
		pos = e[n - 1].off + e[n - 1].len;
	}
	if (q->pend_len && !q->more)
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
	q.max = QUERY_MAX_EXTENTS;
	if (json_object_object_get_ex(req, "max_extents", &o) &&
	    json_object_get_uint64(o))
		q.max = json_object_get_uint64(o);
	if (strcmp(since, "*") && cbt_id_parse(since, &id)) {
		ctl_error(r, "'%s': %s", since, cbt_strerror(-CBT_E_BADID));
		return -EINVAL;
	}
	q.a = json_object_new_array();
	pthread_mutex_lock(&vd_cbt_lock);
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
		if (ret == 1)     /* full: the rest from next_offset */
			ret = 0;
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
	vd_cbt_unuse(t);
unlock:
	pthread_mutex_unlock(&vd_cbt_lock);
	json_object_object_add(resp, "since", json_object_new_string(since));
	add_u64(resp, "changed", q.bytes);
	json_object_object_add(resp, "extents", q.a);
	if (!ret && q.more)
		add_u64(resp, "next_offset", q.next);
	return ret;
}

/* The [offset, length] pairs of a "hold" or "release" array, checked
 * against the disk's size, held or released; *n counts them. */
static int mark_ranges(struct ctl_req *r, struct json_object *ranges,
		       const char *key, uint64_t size, struct trk *t,
		       bool hold, uint64_t *n)
{
	size_t nr = ranges ? json_object_array_length(ranges) : 0;

	for (size_t i = 0; i < nr; i++) {
		struct json_object *x = json_object_array_get_idx(ranges, i);
		uint64_t ro, rl;

		if (!json_object_is_type(x, json_type_array) ||
		    json_object_array_length(x) != 2) {
			ctl_error(r, "%s %zu: [offset, length]", key, i);
			return -EINVAL;
		}
		ro = json_object_get_uint64(json_object_array_get_idx(x, 0));
		rl = json_object_get_uint64(json_object_array_get_idx(x, 1));
		if (ro > size || rl > size - ro) {
			ctl_error(r, "%s %zu [%llu, %llu) is beyond the disk's "
				  "%llu bytes", key, i, (unsigned long long)ro,
				  (unsigned long long)(ro + rl),
				  (unsigned long long)size);
			return -EINVAL;
		}
		if (!hold) {
			cbt_release(t->d, ro, rl);
		} else if (cbt_hold(t->d, ro, rl)) {
			return fail(r, -EIO, "a change could not be recorded: "
				    "tracking will be reset");
		}
		(*n)++;
	}
	return 0;
}

static int ranges_arg(struct ctl_req *r, struct json_object *req,
		      const char *key, struct json_object **out)
{
	*out = NULL;
	if (!json_object_object_get_ex(req, key, out))
		return 0;
	if (!json_object_is_type(*out, json_type_array)) {
		ctl_error(r, "\"%s\" is an array of [offset, length]", key);
		return -EINVAL;
	}
	return 0;
}

/*
 * The executor's protocol (docs/ARCHITECTURE.md, "Who marks"): it holds
 * the blocks of a write before it issues it and releases them once every
 * write it issued into them has completed; "release" is applied before
 * "hold" (a block released and held again in one call stays held).
 * "ranges" is the old name of "hold".
 */
static int cmd_mark(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	struct json_object *o, *hold = NULL, *rel = NULL;
	const char *path = NULL;
	char base[256], err[600] = "";
	bool flush = false, close_it = false;
	uint64_t dir, size, n = 0, nrel = 0;
	struct trk *t;
	int ret = 0;

	(void)arg;
	if (json_object_object_get_ex(req, "path", &o) &&
	    json_object_is_type(o, json_type_string))
		path = json_object_get_string(o);
	if (!ret)
		ret = ranges_arg(r, req, "hold", &hold);
	if (!ret && !hold)
		ret = ranges_arg(r, req, "ranges", &hold);
	if (!ret)
		ret = ranges_arg(r, req, "release", &rel);
	if (ret)
		return ret;
	if (json_object_object_get_ex(req, "flush", &o))
		flush = json_object_get_boolean(o);
	if (json_object_object_get_ex(req, "close", &o))
		close_it = json_object_get_boolean(o);
	pthread_mutex_lock(&vd_cbt_lock);
	/* the writer's calls while its session is open: no descriptor read
	 * (a round trip of the executor's write path) */
	t = path ? vd_cbt_session(path) : NULL;
	if (t) {
		size = t->ssize;
	} else {
		ret = disk_arg(r, req, &path, &dir, base, sizeof(base));
		if (ret)
			goto unlock;
		ret = vd_cbt_find(dir, base, &t, &size, err, sizeof(err));
	}
	if (!ret && !t->session) {
		/* a writer session of its own, until "close" (or vmfsd
		 * stops): marks before writes keep the file dirty */
		ret = vd_cbt_write_begin(t, size, err, sizeof(err));
		if (!ret) {
			t->session = true;
			t->ssize = size;
			free(t->spath);
			t->spath = strdup(path);  /* NULL: found the slow way */
		}
	}
	if (ret) {
		ret = fail(r, ret, err);
		goto unlock;
	}
	ret = mark_ranges(r, rel, "release", size, t, false, &nrel);
	if (!ret)
		ret = mark_ranges(r, hold, "hold", size, t, true, &n);
	if (!ret && flush && (ret = cbt_flush(t->d)))
		ret = fail(r, -EIO, cbt_strerror(ret));
	if (close_it && t->session) {
		/* the writer is gone: every write it issued is done (a dead
		 * writer's holds, if any, wait for their grace) */
		if (!t->dead_holds)
			cbt_release_all(t->d);
		t->session = false;
		vd_cbt_dead_holds(t);
		vd_cbt_session_end(t);
	} else if (t->session) {
		struct cbt_info in;

		cbt_info(t->d, &in);
		add_u64(resp, "block_size", in.block_size);
	}
	add_u64(resp, "marked", n);
	add_u64(resp, "released", nrel);
unlock:
	pthread_mutex_unlock(&vd_cbt_lock);
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
	{ "cbt_mark", "hold blocks about to be written, release those written, "
	  "by a writer that bypasses FUSE (path [, hold, release: [[off, "
	  "len]...], flush, close])",
	  cmd_mark },
};

/* From a constructor, as mpath_ctl.c: no line in cmds.c needed. */
__attribute__((constructor)) static void cbt_ctl_register(void)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		ctl_register(cmds[i].name, cmds[i].help, cmds[i].fn, NULL);
}
