/*
 * vol_cmds.c - vmfsd's control commands that change the volume's geometry
 * online: vol_span (vmkfstools -Z) and vol_grow (vmkfstools --growfs).
 */
#include <errno.h>
#include <stdio.h>

#include "vmfsd/cmds.h"

static int geom_cmd(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp, bool span)
{
	struct vmfsd_ctx *c = arg;
	struct json_object *o;
	const char *dev = NULL;
	char err[512] = "";
	struct fs_vol_info in;
	int ret;

	if (json_object_object_get_ex(req, "device", &o) &&
	    json_object_is_type(o, json_type_string))
		dev = json_object_get_string(o);
	if (span && !dev) {
		ctl_error(r, "\"device\" (the new LUN) is missing");
		return -EINVAL;
	}
	if (span) {
		/* a LUN a raw device mapping names is a VM's disk: making it
		 * an extent would write over it */
		char name[256];

		ret = thin_rdm_mapping_of(c->vol, dev, name, sizeof(name));
		if (ret == 1) {
			ctl_error(r, "%s is mapped by %s (a raw device mapping): "
				  "remove the mapping first", dev, name);
			return -EBUSY;
		}
	}
	ret = span ? fs_vol_span(c->vol, dev, err, sizeof(err)) :
		     fs_vol_grow(c->vol, dev, err, sizeof(err));
	if (ret) {
		ctl_error(r, "%s", err[0] ? err : fs_strerror(ret));
		return vmfsd_errno(ret);
	}
	if (fs_vol_info(c->vol, &in) == 0) {
		json_object_object_add(resp, "extents", json_object_new_uint64(in.nextents));
		json_object_object_add(resp, "capacity", json_object_new_uint64(in.capacity));
	}
	return 0;
}

/* {"cmd": "vol_span", "device": SPEC} */
static int cmd_span(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	return geom_cmd(arg, r, req, resp, true);
}

/* {"cmd": "vol_grow", "device": SPEC (an extent's LUN; default the head)} */
static int cmd_grow(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	return geom_cmd(arg, r, req, resp, false);
}

int vmfsd_vol_cmds_register(struct vmfsd_ctx *c)
{
	int ret = ctl_register("vol_span", "span the volume onto a new LUN "
			       "(device)", cmd_span, c);

	return ret ? ret : ctl_register("vol_grow", "add the space an extent's "
					"LUN gained (device)", cmd_grow, c);
}
