/*
 * mpath_cmd.c - the management commands as JSON in, JSON out, for a
 * control socket (vmfsd registers it as "mpath"; vmfs-mpath is the client).
 *
 * Request {"op": "list"}                       -> {"devices": [...]} (the
 *                                                 form of mp_devices_json)
 *         {"op": "set-policy", "device": D, "policy": P}
 *         {"op": "path", "action": "enable"|"disable", "path": PATH}
 * A device is named by its identity (mp_lun_info.id) or its spec; a path
 * by its spec (when no other device has a path with the same spec) or as
 * DEVICE#N (path N of DEVICE).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "mpath_int.h"

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) :
						     NULL;
}

/* The path called name: *lun and *idx.  -ENOENT, or -EEXIST when a bare
 * spec names paths of several devices. */
static int path_lookup(const char *name, mp_lun **lun, unsigned *idx)
{
	const char *hash = strrchr(name, '#');
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	struct json_object *all;
	int found = 0;

	if (hash && hash[1] && strspn(hash + 1, "0123456789") == strlen(hash + 1)) {
		char dev[512];

		snprintf(dev, sizeof(dev), "%.*s", (int)(hash - name), name);
		*lun = mp_lun_find(dev);
		*idx = (unsigned)atoi(hash + 1);
		return *lun ? 0 : -ENOENT;
	}
	/* Bare spec: look through every device's paths. */
	all = mp_devices_json();
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		const char *spec = jstr(json_object_array_get_idx(all, i), "spec");
		mp_lun *l = spec ? mp_lun_find(spec) : NULL;
		int n;

		if (!l || !mp_lun_is_multipath(l))
			continue;
		n = mp_lun_get_status(l, &st, ps, MP_MAX_PATHS);
		for (int k = 0; k < n; k++) {
			if (strcmp(ps[k].spec, name))
				continue;
			found++;
			*lun = l;
			*idx = (unsigned)k;
		}
	}
	json_object_put(all);
	return found == 1 ? 0 : found ? -EEXIST : -ENOENT;
}

int mp_mgmt_call(struct json_object *req, struct json_object *resp,
		 char *err, size_t elen)
{
	const char *op = jstr(req, "op");
	int ret;

	err[0] = '\0';
	if (!op || !strcmp(op, "list")) {
		struct json_object *d = mp_devices_json();

		if (!d)
			return -ENOMEM;
		json_object_object_add(resp, "devices", d);
		return 0;
	}
	if (!strcmp(op, "set-policy")) {
		const char *dev = jstr(req, "device"), *pol = jstr(req, "policy");
		mp_lun *lun = dev ? mp_lun_find(dev) : NULL;

		if (!lun) {
			snprintf(err, elen, "no device '%s'", dev ? dev : "");
			return -ENOENT;
		}
		ret = pol ? mp_lun_set_policy(lun, pol) : -EINVAL;
		if (ret == -EINVAL)
			snprintf(err, elen, "bad policy '%s' (fixed[,pref=N], mru, "
				 "rr[,iops=N|,bytes=SIZE], lqd, st)", pol ? pol : "");
		else if (ret == -EOPNOTSUPP)
			snprintf(err, elen, "'%s' has a single path (open it as "
				 "multi:SPEC|SPEC...)", dev);
		return ret;
	}
	if (!strcmp(op, "path")) {
		const char *act = jstr(req, "action"), *name = jstr(req, "path");
		bool enable;
		unsigned idx = 0;
		mp_lun *lun = NULL;

		if (!act || !name ||
		    (strcmp(act, "enable") && strcmp(act, "disable"))) {
			snprintf(err, elen, "path needs action enable|disable and "
				 "a path");
			return -EINVAL;
		}
		enable = !strcmp(act, "enable");
		ret = path_lookup(name, &lun, &idx);
		if (ret == -EEXIST)
			snprintf(err, elen, "'%s' names paths of several devices: "
				 "use DEVICE#N", name);
		else if (ret)
			snprintf(err, elen, "no path '%s' (a path spec, or "
				 "DEVICE#N)", name);
		if (ret)
			return ret;
		ret = mp_lun_path_enable(lun, idx, enable);
		if (ret)
			snprintf(err, elen, "%s: %s", name, mp_strerror(ret));
		return ret;
	}
	snprintf(err, elen, "unknown op '%s' (list, set-policy, path)", op);
	return -EINVAL;
}
