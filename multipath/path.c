/*
 * path.c - pick the backend for a spec string and open a path with it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mp_int.h"

int mp_path_open(const char *spec, const struct mp_open_opts *o,
		 mp_done_fn done, void *arg, struct mp_path **out)
{
	const struct mp_backend_ops *ops;
	struct mp_path *p;
	int ret;

	if (!spec || !*spec)
		return -MP_E_SPEC;
	if (!strncmp(spec, "multi:", 6)) {
		mp_log("'%s': multi: must be the whole spec (a path cannot be "
		       "a multipath device)", spec);
		return -MP_E_SPEC;
	} else if (!strncmp(spec, "fault:", 6)) {
		ops = &mp_fault_ops;
	} else if (!strncmp(spec, "sg:", 3)) {
		ops = &mp_sg_ops;
	} else if (!strncmp(spec, "iscsi://", 8)) {
		ops = &mp_iscsi_ops;
	} else if (!strncmp(spec, "file:", 5)) {
		ops = &mp_local_ops;
		spec += 5;
	} else if (strstr(spec, "://")) {
		mp_log("unknown LUN spec scheme in '%s' (expected a path, "
		       "file:PATH, iscsi://HOST[:PORT]/IQN/LUN or fault:OPTS:SPEC)",
		       spec);
		return -MP_E_SPEC;
	} else {
		ops = &mp_local_ops;
	}

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ops = ops;
	p->done = done;
	p->done_arg = arg;
	ret = ops->open(p, spec, o);
	if (ret) {
		free(p);
		return ret;
	}
	if (!p->info.logical_sector || p->info.logical_sector & 511 ||
	    !p->info.physical_sector) {
		/* A backend bug, not the user's: refuse rather than divide. */
		mp_log("%s: backend %s reported sector size %u", spec, ops->name,
		       p->info.logical_sector);
		ops->close(p);
		free(p);
		return -EIO;
	}
	*out = p;
	return 0;
}

void mp_path_close(struct mp_path *p)
{
	if (!p)
		return;
	p->ops->close(p);
	free(p);
}
