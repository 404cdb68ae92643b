/*
 * mpath_group.c - group LUN specs into devices by identity.
 *
 * Given any number of specs (say every portal's URL of every LUN a target
 * offers), each is opened once as a bare path to read its identity and
 * closed again; specs that lead to the same LUN (mp_lun_info.id, capacity
 * and logical sector size all equal) become one device with a "multi:"
 * spec, in the order given.  A spec whose LUN reports no identity stands
 * alone (nothing proves it is the same LUN as another).  This is the whole
 * of path discovery: the specs come from the administrator.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp_int.h"

/* A bare path never gets I/O here. */
static void no_done(void *arg, struct mp_io *io, int result)
{
	(void)arg;
	(void)io;
	(void)result;
}

static bool same_lun(const struct mp_lun_info *a, const struct mp_lun_info *b)
{
	return a->id[0] && !strcmp(a->id, b->id) && a->capacity == b->capacity &&
	       a->logical_sector == b->logical_sector;
}

/* Append "|spec" (or "multi:spec" for the first path) to g->spec. */
static int group_add(struct mp_group *g, const char *spec)
{
	size_t old = g->spec ? strlen(g->spec) : 0;
	size_t len = old + strlen(spec) + 8;
	char *s = realloc(g->spec, len);

	if (!s)
		return -ENOMEM;
	if (old)
		snprintf(s + old, len - old, "|%s", spec);
	else
		snprintf(s, len, "multi:%s", spec);
	g->spec = s;
	g->npaths++;
	return 0;
}

int mp_specs_group(const char *const specs[], unsigned n,
		   const struct mp_open_opts *o, struct mp_group **out,
		   unsigned *nout)
{
	struct mp_open_opts dflt = { 0 };
	struct mp_lun_info *info = calloc(n ? n : 1, sizeof(*info));
	struct mp_group *g = calloc(n ? n : 1, sizeof(*g));
	unsigned ng = 0;
	int ret = 0;

	if (!info || !g) {
		ret = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < n; i++) {
		struct mp_path *p;
		unsigned k;

		ret = mp_path_open(specs[i], o ? o : &dflt, no_done, NULL, &p);
		if (ret) {
			mp_log("%s: cannot open to read its identity: %s",
			       specs[i], mp_strerror(ret));
			goto fail;
		}
		info[i] = p->info;
		mp_path_close(p);
		for (k = 0; k < ng; k++)
			if (same_lun(&g[k].info, &info[i]))
				break;
		if (k == ng) {
			g[ng].info = info[i];
			ng++;
		}
		ret = group_add(&g[k], specs[i]);
		if (ret)
			goto fail;
	}
	free(info);
	*out = g;
	*nout = ng;
	return 0;

fail:
	free(info);
	mp_groups_free(g, ng);
	return ret;
}

void mp_groups_free(struct mp_group *g, unsigned n)
{
	if (!g)
		return;
	for (unsigned i = 0; i < n; i++)
		free(g[i].spec);
	free(g);
}
