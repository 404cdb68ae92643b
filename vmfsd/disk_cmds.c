/*
 * disk_cmds.c - vmfsd's control commands for virtual disks (vmkfstools -c,
 * -U, -E, -X and the disk part of -D), on top of thin/disk.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thin/disk.h"
#include "vmfsd/cmds.h"

static void progress(void *arg, const char *what, uint64_t done, uint64_t total)
{
	ctl_progress(arg, what, done, total);
}

static bool cancelled(void *arg)
{
	return ctl_cancelled(arg);
}

static int str_arg(struct ctl_req *r, struct json_object *req, const char *k,
		   const char **out)
{
	struct json_object *o;

	if (!json_object_object_get_ex(req, k, &o) ||
	    !json_object_is_type(o, json_type_string)) {
		ctl_error(r, "\"%s\" is missing", k);
		return -EINVAL;
	}
	*out = json_object_get_string(o);
	return 0;
}

static int size_arg(struct ctl_req *r, struct json_object *req, uint64_t *out)
{
	struct json_object *o;

	if (!json_object_object_get_ex(req, "size", &o) ||
	    !json_object_is_type(o, json_type_int)) {
		ctl_error(r, "\"size\" (bytes) is missing");
		return -EINVAL;
	}
	*out = json_object_get_uint64(o);
	return 0;
}

/* A disk attached to a running VM on this host keeps its block map:
 * vmrun maps guest offsets through its copy (-EBUSY). */
static int not_attached(struct vmfsd_ctx *c, struct ctl_req *r,
			const char *path)
{
	struct fs_stat st;

	if (fs_resolve(c->vol, path, &st) == 0 && vmfsd_disk_attached(st.ino)) {
		ctl_error(r, "%s: attached to a VM running on this host (power "
			  "it off first)", path);
		return -EBUSY;
	}
	return 0;
}

static int done(struct ctl_req *r, int ret, const char *msg)
{
	if (!ret)
		return 0;
	ctl_error(r, "%s", msg);
	return vmfsd_errno(ret);
}

/* {"cmd": "disk_create", "path": P, "size": BYTES, "type": T} */
static int cmd_create(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct thin_cb cb = { progress, cancelled, r };
	const char *path, *type = "zeroedthick";
	struct json_object *o;
	enum thin_kind k;
	uint64_t size;
	char err[512] = "";
	int ret;

	(void)resp;
	if ((ret = str_arg(r, req, "path", &path)) || (ret = size_arg(r, req, &size)))
		return ret;
	if (json_object_object_get_ex(req, "type", &o))
		type = json_object_get_string(o);
	if (thin_kind_parse(type, &k)) {
		ctl_error(r, "disk type '%s' (thin, zeroedthick, eagerzeroedthick)",
			  type);
		return -EINVAL;
	}
	ret = thin_create(c->vol, path, size, k, &cb, err, sizeof(err));
	return done(r, ret, err);
}

static int cmd_delete(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	const char *path;
	char err[512] = "";
	int ret = str_arg(r, req, "path", &path);

	(void)resp;
	if (ret || (ret = not_attached(c, r, path)))
		return ret;
	return done(r, thin_delete(c->vol, path, err, sizeof(err)), err);
}

static int cmd_rename(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	const char *path, *to;
	char err[512] = "";
	int ret;

	(void)resp;
	if ((ret = str_arg(r, req, "path", &path)) || (ret = str_arg(r, req, "to", &to)) ||
	    (ret = not_attached(c, r, path)))
		return ret;
	return done(r, thin_rename(c->vol, path, to, err, sizeof(err)), err);
}

static int cmd_extend(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct thin_cb cb = { progress, cancelled, r };
	const char *path;
	uint64_t size;
	char err[512] = "";
	int ret;

	(void)resp;
	if ((ret = str_arg(r, req, "path", &path)) || (ret = size_arg(r, req, &size)) ||
	    (ret = not_attached(c, r, path)))
		return ret;
	return done(r, thin_extend(c->vol, path, size, &cb, err, sizeof(err)), err);
}

/* {"cmd": "disk_clone", "path": SRC, "to": DST, "type": T} */
static int cmd_clone(void *arg, struct ctl_req *r, struct json_object *req,
		     struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct thin_cb cb = { progress, cancelled, r };
	const char *path, *to, *type = "zeroedthick";
	struct json_object *o;
	enum thin_kind k;
	char err[512] = "";
	int ret;

	(void)resp;
	if ((ret = str_arg(r, req, "path", &path)) || (ret = str_arg(r, req, "to", &to)))
		return ret;
	if (json_object_object_get_ex(req, "type", &o))
		type = json_object_get_string(o);
	if (thin_kind_parse(type, &k)) {
		ctl_error(r, "disk type '%s' (thin, zeroedthick, eagerzeroedthick)",
			  type);
		return -EINVAL;
	}
	return done(r, thin_clone_from(c->vol, c->luns, path, to, k, &cb, err,
				       sizeof(err)), err);
}

/* disk_inflate (-j), disk_eagerzero (-k) */
static int inflate_common(void *arg, struct ctl_req *r, struct json_object *req,
			  bool eager_only)
{
	struct vmfsd_ctx *c = arg;
	struct thin_cb cb = { progress, cancelled, r };
	const char *path;
	char err[512] = "";
	int ret = str_arg(r, req, "path", &path);

	if (ret || (ret = not_attached(c, r, path)))
		return ret;
	return done(r, thin_inflate(c->vol, path, eager_only, &cb, err,
				    sizeof(err)), err);
}

static int cmd_inflate(void *arg, struct ctl_req *r, struct json_object *req,
		       struct json_object *resp)
{
	(void)resp;
	return inflate_common(arg, r, req, false);
}

static int cmd_eagerzero(void *arg, struct ctl_req *r, struct json_object *req,
			 struct json_object *resp)
{
	(void)resp;
	return inflate_common(arg, r, req, true);
}

static int cmd_punchzero(void *arg, struct ctl_req *r, struct json_object *req,
			 struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct thin_cb cb = { progress, cancelled, r };
	const char *path;
	uint64_t freed;
	char err[512] = "";
	int ret = str_arg(r, req, "path", &path);

	if (ret || (ret = not_attached(c, r, path)))
		return ret;
	ret = thin_punch_zeros(c->vol, path, &cb, &freed, err, sizeof(err));
	if (!ret)
		json_object_object_add(resp, "freed", json_object_new_uint64(freed));
	return done(r, ret, err);
}

/* {"cmd": "filemap", "path": P}: where the bytes of a file (of a disk's
 * data file, for a descriptor) live (vmkfstools -t0) */
static int cmd_filemap(void *arg, struct ctl_req *r, struct json_object *req,
		       struct json_object *resp)
{
	static const char *const states[] = { "hole", "tbz", "data", "inline" };
	struct vmfsd_ctx *c = arg;
	struct thin_info in;
	struct fs_map_ext *e;
	struct json_object *a;
	struct fs_stat st;
	char err[512] = "", target[4096];
	const char *path;
	uint64_t off = 0;
	fs_file *f;
	int ret = str_arg(r, req, "path", &path);

	if (ret)
		return ret;
	snprintf(target, sizeof(target), "%s", path);
	if (thin_info(c->vol, path, &in, err, sizeof(err)) == 0 &&
	    in.desc.nextents == 1 && in.desc.ext[0].file[0]) {
		const char *slash = strrchr(path, '/');

		snprintf(target, sizeof(target), "%.*s%s",
			 slash ? (int)(slash - path + 1) : 0, path,
			 in.desc.ext[0].file);
	}
	ret = fs_resolve(c->vol, target, &st);
	if (!ret && st.type != FS_TYPE_FILE)
		ret = -EISDIR;
	if (!ret)
		ret = fs_open(c->vol, st.ino, FS_O_RDONLY, &f);
	if (ret) {
		ctl_error(r, "%s: %s", target, fs_strerror(ret));
		return vmfsd_errno(ret);
	}
	e = calloc(256, sizeof(*e));
	a = json_object_new_array();
	ret = e ? 0 : -ENOMEM;
	while (!ret && off < st.size) {
		unsigned n;
		int r2 = fs_map(f, off, st.size - off, e, 256, &n);

		if (r2 && r2 != -E2BIG) {
			ret = r2;
			break;
		}
		for (unsigned i = 0; i < n; i++) {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "off", json_object_new_uint64(e[i].off));
			json_object_object_add(o, "len", json_object_new_uint64(e[i].len));
			json_object_object_add(o, "state",
					       json_object_new_string(states[e[i].state]));
			if (e[i].state != FS_MAP_EXT_HOLE) {
				json_object_object_add(o, "extent",
						       json_object_new_uint64(e[i].ext));
				json_object_object_add(o, "lun_off",
						       json_object_new_uint64(e[i].lun_off));
			}
			json_object_array_add(a, o);
		}
		if (!n || !r2)
			break;
		off = e[n - 1].off + e[n - 1].len;
	}
	free(e);
	fs_close(f);
	json_object_object_add(resp, "file", json_object_new_string(target));
	json_object_object_add(resp, "size", json_object_new_uint64(st.size));
	json_object_object_add(resp, "map", a);
	if (!ret)
		return 0;
	ctl_error(r, "%s: %s", target, fs_strerror(ret));
	return vmfsd_errno(ret);
}

static int cmd_info(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct thin_info in;
	struct json_object *exts;
	const char *path;
	char err[512] = "";
	int ret = str_arg(r, req, "path", &path);

	if (ret)
		return ret;
	ret = thin_info(c->vol, path, &in, err, sizeof(err));
	if (ret)
		return done(r, ret, err);
	json_object_object_add(resp, "type", json_object_new_string(thin_kind_name(in.kind)));
	json_object_object_add(resp, "create_type",
			       json_object_new_string(in.desc.create_type));
	json_object_object_add(resp, "size", json_object_new_uint64(in.size));
	json_object_object_add(resp, "allocated", json_object_new_uint64(in.allocated));
	exts = json_object_new_array();
	for (unsigned i = 0; i < in.desc.nextents; i++)
		json_object_array_add(exts, json_object_new_string(in.desc.ext[i].file));
	json_object_object_add(resp, "extents", exts);
	return 0;
}

/* {"cmd": "rdm_create", "path": P, "device": SPEC, "physical": bool}
 * (vmkfstools -r / -z) */
static int cmd_rdm_create(void *arg, struct ctl_req *r, struct json_object *req,
			  struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	const char *path, *dev;
	struct json_object *o;
	bool phys = false;
	char err[512] = "";
	int ret;

	(void)resp;
	if ((ret = str_arg(r, req, "path", &path)) ||
	    (ret = str_arg(r, req, "device", &dev)))
		return ret;
	if (json_object_object_get_ex(req, "physical", &o))
		phys = json_object_get_boolean(o);
	ret = thin_rdm_create(c->vol, c->luns, path, dev, phys ? FS_RDM_PHYSICAL :
			      FS_RDM_VIRTUAL, c->host, err, sizeof(err));
	if (!ret)
		return 0;
	ctl_error(r, "%s", err);
	return vmfsd_errno(ret);
}

/* {"cmd": "rdm_resolve", "path": P}: the LUN a mapping (its descriptor or
 * mapping file) names, as this host reaches it: how a program that does
 * its own I/O (the executor) opens an RDM disk */
static int cmd_rdm_resolve(void *arg, struct ctl_req *r, struct json_object *req,
			   struct json_object *resp)
{
	struct vmfsd_ctx *c = arg;
	struct thin_rdm_info *in = malloc(sizeof(*in));
	const char *path;
	char err[512] = "";
	int ret = str_arg(r, req, "path", &path);

	if (!ret && !in)
		ret = -ENOMEM;
	if (!ret)
		ret = thin_rdm_resolve(c->vol, c->luns, path, in, err, sizeof(err));
	if (ret == 0 || ret == -ENODEV) {
		/* what the mapping says, even when this host cannot reach it */
		json_object_object_add(resp, "file", json_object_new_string(in->file));
		json_object_object_add(resp, "mode", json_object_new_string(
			in->rec.mode == FS_RDM_PHYSICAL ? "physical" : "virtual"));
		json_object_object_add(resp, "id", json_object_new_string(in->rec.id));
		json_object_object_add(resp, "serial",
				       json_object_new_string(in->rec.serial));
		json_object_object_add(resp, "vendor",
				       json_object_new_string(in->rec.vendor));
		json_object_object_add(resp, "product",
				       json_object_new_string(in->rec.product));
		json_object_object_add(resp, "capacity",
				       json_object_new_uint64(in->rec.capacity));
		json_object_object_add(resp, "sector",
				       json_object_new_uint64(in->rec.sector));
		json_object_object_add(resp, "mapped_by",
				       json_object_new_string(in->rec.host));
		json_object_object_add(resp, "mapped_spec",
				       json_object_new_string(in->rec.spec));
	}
	if (!ret)
		json_object_object_add(resp, "spec", json_object_new_string(in->spec));
	free(in);
	if (!ret)
		return 0;
	if (err[0])
		ctl_error(r, "%s", err);
	return vmfsd_errno(ret);
}

static const struct {
	const char *name, *help;
	ctl_fn fn;
} cmds[] = {
	{ "disk_create", "create DISK.vmdk and its data (path, size, type)",
	  cmd_create },
	{ "disk_delete", "remove a disk and its extents (path)", cmd_delete },
	{ "disk_rename", "rename a disk and its extents (path, to)", cmd_rename },
	{ "disk_extend", "grow a disk (path, size)", cmd_extend },
	{ "disk_info", "type, size and allocation of a disk (path)", cmd_info },
	{ "filemap", "where a file's (or a disk's) bytes live (path)",
	  cmd_filemap },
	{ "disk_clone", "copy a disk (path, to, type)", cmd_clone },
	{ "disk_inflate", "thin to eagerzeroedthick (path)", cmd_inflate },
	{ "disk_eagerzero", "zero a zeroedthick disk's unwritten blocks now "
	  "(path)", cmd_eagerzero },
	{ "disk_punchzero", "give back a thin disk's zero blocks (path)",
	  cmd_punchzero },
	{ "rdm_create", "map a LUN as a raw device mapping (path, device, "
	  "physical)", cmd_rdm_create },
	{ "rdm_resolve", "the LUN spec on this host of a mapping (path)",
	  cmd_rdm_resolve },
};

int vmfsd_disk_cmds_register(struct vmfsd_ctx *c)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		int ret = ctl_register(cmds[i].name, cmds[i].help, cmds[i].fn, c);

		if (ret)
			return ret;
	}
	return vmfsd_vol_cmds_register(c);
}
