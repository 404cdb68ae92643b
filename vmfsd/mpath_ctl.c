/*
 * mpath_ctl.c - vmfsd's "mpath" control command: the device layer's
 * multipath management (list, set-policy, path enable/disable) through the
 * control socket; the client is tools/vmfs-mpath.
 *
 * Registered from a constructor so that it needs no line in vmfsd.c or
 * cmds.c (it was written by the multipath work while vmfsd's files were
 * being edited by someone else); ctl_register() only fills a static table,
 * so running before main() is safe.  Moving the call into
 * vmfsd_cmds_register() later changes nothing else.
 */
#include <errno.h>

#include "multipath/mp.h"
#include "vmfsd/ctl.h"

static int cmd_mpath(void *arg, struct ctl_req *r, struct json_object *req,
		     struct json_object *resp)
{
	char err[512];
	int ret = mp_mgmt_call(req, resp, err, sizeof(err));

	if (ret && err[0])
		ctl_error(r, "%s", err);
	return ret;
}

__attribute__((constructor)) static void mpath_ctl_register(void)
{
	ctl_register("mpath", "multipath devices: op list | set-policy "
		     "(device, policy) | path (action enable|disable, path)",
		     cmd_mpath, NULL);
}
