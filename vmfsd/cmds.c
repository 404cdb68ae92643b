/*
 * cmds.c - vmfsd's control socket commands about the volume and its files
 * (vmkfstools -P, -D; the socket itself: ctl.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fs/fs.h"
#include "thin/space.h"
#include "vmfsd/cmds.h"
#include "vmfsd/readahead.h"

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
		 u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

uint64_t vmfsd_fuse_written, vmfsd_fuse_read, vmfsd_fuse_copied_in,
	 vmfsd_fuse_reads;
bool vmfsd_kcache_on;
uint64_t vmfsd_fuse_lookups, vmfsd_fuse_getattrs, vmfsd_kcache_replies,
	 vmfsd_kcache_drops;

/* what info reports of the FUSE side, by name */
static const struct { const char *name; uint64_t *v; } fuse_counters[] = {
	{ "fuse_bytes_written", &vmfsd_fuse_written },
	{ "fuse_bytes_read", &vmfsd_fuse_read },
	{ "fuse_bytes_copied_in", &vmfsd_fuse_copied_in },
	{ "fuse_lookups", &vmfsd_fuse_lookups },
	{ "fuse_getattrs", &vmfsd_fuse_getattrs },
	{ "kcache_replies", &vmfsd_kcache_replies },
	{ "kcache_drops", &vmfsd_kcache_drops },
	{ "fuse_reads", &vmfsd_fuse_reads },
	{ "ra_hits", &ra_hits },
	{ "ra_waits", &ra_waits },
	{ "ra_windows", &ra_windows },
	{ "ra_stale", &ra_stale },
};

int vmfsd_errno(int ret)
{
	return ret < 0 && ret > -1000 ? ret : -EIO;
}

static int fail(struct ctl_req *r, int ret, const char *what)
{
	ctl_error(r, "%s: %s", what, fs_strerror(ret));
	return vmfsd_errno(ret);
}

/* I/O the info command did itself (counting free and provisioned space
 * reads cluster headers and descriptors): left out of the counters it
 * reports, so that two queries around a workload show the workload's. */
static pthread_mutex_t own_io_m = PTHREAD_MUTEX_INITIALIZER;
static struct mp_lun_stats own_io[32];

/* a += to - from, counter by counter */
static void io_add_delta(struct mp_lun_stats *a, const struct mp_lun_stats *to,
			 const struct mp_lun_stats *from)
{
	a->reads += to->reads - from->reads;
	a->writes += to->writes - from->writes;
	a->flushes += to->flushes - from->flushes;
	a->caws += to->caws - from->caws;
	a->discards += to->discards - from->discards;
	a->read_bytes += to->read_bytes - from->read_bytes;
	a->write_bytes += to->write_bytes - from->write_bytes;
	a->errors += to->errors - from->errors;
}

/* {"cmd": "info"}: the volume, its extents, this host. */
static int cmd_info(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct mp_lun_stats io0[32], io1[32];
	struct fs_vol_info in;
	struct json_object *exts;
	char u[37];
	int ret;

	fs_vol_io(c->vol, io0);
	ret = fs_vol_info(c->vol, &in);

	(void)req;
	if (ret)
		return fail(r, ret, "reading the volume's resources");
	uuid_str(in.uuid, u);
	add_str(resp, "label", in.label);
	add_str(resp, "uuid", u);
	add_str(resp, "host", c->host);
	add_str(resp, "mount", c->mnt);
	add_u64(resp, "block_size", in.block_size);
	add_u64(resp, "sub_block_size", in.sb_size);
	add_u64(resp, "sector", in.sector);
	add_u64(resp, "capacity", in.capacity);
	add_u64(resp, "free", in.free);
	add_u64(resp, "files", in.files);
	add_u64(resp, "files_free", in.files_free);
	add_u64(resp, "max_hosts", in.slots);
	for (size_t i = 0; i < sizeof(fuse_counters) / sizeof(fuse_counters[0]); i++)
		add_u64(resp, fuse_counters[i].name,
			__atomic_load_n(fuse_counters[i].v, __ATOMIC_RELAXED));
	json_object_object_add(resp, "kcache", json_object_new_boolean(
		__atomic_load_n(&vmfsd_kcache_on, __ATOMIC_RELAXED)));
	json_object_object_add(resp, "read_only",
			       json_object_new_boolean(in.read_only));
	if (!in.read_only) {
		struct lk_vol_info li;

		lk_get_info(fs_lk(c->vol), &li);
		add_u64(resp, "slot", in.slot);
		add_str(resp, "lock_method", lk_method_name(in.method));
		add_u64(resp, "hb_interval_ms", li.interval_ms);
		add_u64(resp, "hb_timeout_ms", li.dead_ms);
		add_u64(resp, "fence_ms", li.fence_ms);
	}
	{
		struct thin_space sp;

		ret = thin_space(c->vol, &sp);
		if (ret)
			return fail(r, ret, "adding up provisioned space");
		add_u64(resp, "used", sp.used);
		add_u64(resp, "provisioned", sp.provisioned);
		add_str(resp, "space_alarm", thin_level_name(sp.level));
	}
	fs_vol_io(c->vol, io1);
	pthread_mutex_lock(&own_io_m);
	for (unsigned i = 0; i < 32; i++) {
		struct mp_lun_stats mine = own_io[i], zero = { 0 };

		io_add_delta(&own_io[i], &io1[i], &io0[i]);
		io_add_delta(&io0[i], &zero, &mine);    /* reported: less ours */
	}
	pthread_mutex_unlock(&own_io_m);
	exts = json_object_new_array();
	for (unsigned i = 0; i < in.nextents; i++) {
		struct json_object *e = json_object_new_object();
		const struct mp_lun_stats *io = &io0[i];
		struct json_object *o = json_object_new_object();

		add_str(e, "device", in.extent_spec[i]);
		add_u64(e, "size", in.extent_size[i]);
		add_u64(e, "free", in.extent_free[i]);
		/* the LUN's I/O since this host opened it, without what
		 * these info commands did themselves (I/O of other threads
		 * during one is left out with it) */
		add_u64(o, "reads", io->reads);
		add_u64(o, "writes", io->writes);
		add_u64(o, "flushes", io->flushes);
		add_u64(o, "compare_and_writes", io->caws);
		add_u64(o, "discards", io->discards);
		add_u64(o, "read_bytes", io->read_bytes);
		add_u64(o, "write_bytes", io->write_bytes);
		add_u64(o, "errors", io->errors);
		json_object_object_add(e, "io", o);
		json_object_array_add(exts, e);
	}
	json_object_object_add(resp, "extents", exts);
	return 0;
}

static const char *type_name(uint8_t t)
{
	switch (t) {
	case FS_TYPE_FILE: return "file";
	case FS_TYPE_DIR: return "directory";
	case FS_TYPE_SYMLINK: return "symlink";
	case FS_TYPE_RDM: return "rdm";
	default: return "unknown";
	}
}

static int get_path(struct ctl_req *r, struct json_object *req, const char **p)
{
	struct json_object *o;

	if (!json_object_object_get_ex(req, "path", &o) ||
	    !json_object_is_type(o, json_type_string)) {
		ctl_error(r, "\"path\" (relative to the mount) is missing");
		return -EINVAL;
	}
	*p = json_object_get_string(o);
	return 0;
}

static struct json_object *host_json(const struct lk_holder_info *h)
{
	struct json_object *o = json_object_new_object();
	char u[37];

	uuid_str(h->uuid, u);
	add_str(o, "host", h->name);
	add_str(o, "host_uuid", u);
	add_u64(o, "slot", h->slot);
	add_u64(o, "gen", h->gen);
	add_str(o, "status", lk_host_status_name(h->status));
	return o;
}

/* {"cmd": "lockinfo", "path": P}: the file, its lock, its holders and the
 * host waiting for it, if any. */
static int cmd_lockinfo(void *arg, struct ctl_req *r, struct json_object *req,
			struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct fs_lock_report lr;
	struct fs_stat st;
	struct json_object *hs;
	const char *path;
	int ret = get_path(r, req, &path);

	if (ret)
		return ret;
	ret = fs_resolve(c->vol, path, &st);
	if (ret) {
		ctl_error(r, "%s", fs_strerror(ret));
		return vmfsd_errno(ret);
	}
	add_u64(resp, "addr", st.ino);
	add_u64(resp, "gen", st.gen);
	add_str(resp, "type", type_name(st.type));
	add_u64(resp, "links", st.nlink);
	add_u64(resp, "mode", st.mode);
	add_u64(resp, "uid", st.uid);
	add_u64(resp, "gid", st.gid);
	add_u64(resp, "size", st.size);
	add_u64(resp, "allocated", st.alloc);
	ret = fs_lock_report(c->vol, st.ino, &lr);
	if (ret == -EROFS) {
		add_str(resp, "lock", "unknown: this host mounted read-only");
		return 0;
	}
	if (ret)
		return fail(r, ret, "reading the file's lock");
	add_u64(resp, "lock_extent", lr.ext);
	add_u64(resp, "lock_offset", lr.lock_off);
	add_u64(resp, "hb_offset", lr.hb_off);
	add_str(resp, "lock_mode", lk_mode_name(lr.info.mode));
	add_u64(resp, "lock_version", lr.info.version);
	add_u64(resp, "local_opens_rw", lr.opens_rw);
	add_u64(resp, "local_opens_ro", lr.opens_ro);
	hs = json_object_new_array();
	for (unsigned i = 0; i < lr.info.nholders; i++)
		json_object_array_add(hs, host_json(&lr.info.holders[i]));
	json_object_object_add(resp, "holders", hs);
	/* a host waiting for it: the holder's release hands it over */
	if (lr.info.waiter_mode != LK_FREE) {
		struct json_object *w = host_json(&lr.info.waiter);

		add_str(w, "mode", lk_mode_name(lr.info.waiter_mode));
		json_object_object_add(resp, "waiter", w);
	}
	return 0;
}

/* ---- space alarms ------------------------------------------------------- */

static pthread_t alarm_thread;
static pthread_mutex_t alarm_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t alarm_cond = PTHREAD_COND_INITIALIZER;
static bool alarm_stop, alarm_running;

/* Logs each change of the usage level (75% warning, 85% alert). */
static void *alarm_main(void *arg)
{
	struct vmfsd_ctx *c = arg;
	enum thin_level last = THIN_SPACE_OK;

	pthread_mutex_lock(&alarm_lock);
	while (!alarm_stop) {
		struct fs_vol_info in;
		struct timespec ts;

		pthread_mutex_unlock(&alarm_lock);
		if (fs_vol_info(c->vol, &in) == 0) {
			uint64_t used = in.capacity - in.free;
			enum thin_level l = thin_space_level(used, in.capacity);

			if (l != last)
				fprintf(stderr, "vmfsd: space %s: %llu%% of the "
					"volume used (%llu of %llu bytes; warning "
					"at %u%%, alert at %u%%)\n",
					l == THIN_SPACE_OK ? "back to normal" :
					thin_level_name(l),
					(unsigned long long)(in.capacity ?
					used * 100 / in.capacity : 0),
					(unsigned long long)used,
					(unsigned long long)in.capacity,
					THIN_WARN_PCT, THIN_ALERT_PCT);
			last = l;
		}
		pthread_mutex_lock(&alarm_lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += c->alarm_secs;
		/* a stop that came while the lock was not held is seen here,
		 * not after a whole period */
		while (!alarm_stop &&
		       pthread_cond_timedwait(&alarm_cond, &alarm_lock, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&alarm_lock);
	return NULL;
}

int vmfsd_alarm_start(struct vmfsd_ctx *c)
{
	int ret;

	if (!c->alarm_secs)
		c->alarm_secs = 10;
	ret = -pthread_create(&alarm_thread, NULL, alarm_main, c);
	alarm_running = !ret;
	return ret;
}

void vmfsd_alarm_stop(void)
{
	if (!alarm_running)
		return;
	pthread_mutex_lock(&alarm_lock);
	alarm_stop = true;
	pthread_cond_signal(&alarm_cond);
	pthread_mutex_unlock(&alarm_lock);
	pthread_join(alarm_thread, NULL);
	alarm_running = false;
}

int vmfsd_cmds_register(struct vmfsd_ctx *c)
{
	int ret = ctl_register("info", "the volume, its extents and this host",
			       cmd_info, c);

	if (!ret)
		ret = ctl_register("lockinfo", "a file's lock and its holders "
				   "(path relative to the mount)", cmd_lockinfo, c);
	if (!ret)
		ret = vmfsd_disk_cmds_register(c);
	if (!ret)
		ret = vmfsd_attach_cmds_register(c);
	return ret;
}
