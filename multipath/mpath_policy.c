/*
 * mpath_policy.c - path selection policies of multipath devices.
 *
 * Each policy is an ops table; select() runs with mpath.lock held for
 * every I/O of the device, so it is O(paths) at most and allocates nothing.
 * Syntax (also in mp.h): fixed[,pref=N], mru, rr[,iops=N|,bytes=SIZE], lqd,
 * st.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpath_int.h"

#define RR_DEFAULT_IOPS 1000

/* The first usable path at or after start (wrapping), other than ex. */
static struct mpp *next_usable(struct mpath *m, unsigned start,
			       const struct mpp *ex)
{
	for (unsigned k = 0; k < m->npaths; k++) {
		struct mpp *p = m->paths[(start + k) % m->npaths];

		if (mpp_usable(p) && p != ex)
			return p;
	}
	return NULL;
}

static struct mpp *fixed_select(struct mpath *m, const struct mp_io *io,
				const struct mpp *ex)
{
	struct mpp *p = m->pol.pref < m->npaths ? m->paths[m->pol.pref] : NULL;

	/* The preferred path whenever it works: that is the failback. */
	if (mpp_usable(p) && p != ex) {
		m->cur = p->idx;
		return p;
	}
	p = m->paths[m->cur];
	if (mpp_usable(p) && p != ex)
		return p;
	p = next_usable(m, m->cur + 1, ex);
	if (p && !ex)
		m->cur = p->idx;
	return p;
}

static struct mpp *mru_select(struct mpath *m, const struct mp_io *io,
			      const struct mpp *ex)
{
	struct mpp *p = m->paths[m->cur];

	if (mpp_usable(p) && p != ex)
		return p;
	p = next_usable(m, m->cur + 1, ex);
	if (p)
		m->cur = p->idx;
	return p;
}

static struct mpp *rr_select(struct mpath *m, const struct mp_io *io,
			     const struct mpp *ex)
{
	struct mpp *p = m->paths[m->cur];
	bool used_up = m->pol.bytes ? m->rr_bytes >= m->pol.bytes :
				      m->rr_count >= m->pol.iops;

	if (!mpp_usable(p) || p == ex || used_up) {
		p = next_usable(m, m->cur + 1, ex);
		if (!p)
			return NULL;
		m->cur = p->idx;
		m->rr_count = 0;
		m->rr_bytes = 0;
	}
	m->rr_count++;
	m->rr_bytes += io->length;
	return p;
}

static struct mpp *lqd_select(struct mpath *m, const struct mp_io *io,
			      const struct mpp *ex)
{
	struct mpp *best = NULL;
	unsigned start = m->rot++;

	/* Ties rotate, so equally idle paths share the load. */
	for (unsigned k = 0; k < m->npaths; k++) {
		struct mpp *p = m->paths[(start + k) % m->npaths];

		if (mpp_usable(p) && p != ex &&
		    (!best || p->inflight < best->inflight))
			best = p;
	}
	return best;
}

static struct mpp *st_select(struct mpath *m, const struct mp_io *io,
			     const struct mpp *ex)
{
	struct mpp *best = NULL;
	uint64_t best_cost = 0;
	unsigned start = m->rot++;

	for (unsigned k = 0; k < m->npaths; k++) {
		struct mpp *p = m->paths[(start + k) % m->npaths];
		uint64_t cost = (p->inflight + 1ull) * (p->svc_ns + 1);

		if (mpp_usable(p) && p != ex && (!best || cost < best_cost)) {
			best = p;
			best_cost = cost;
		}
	}
	return best;
}

/* ---- parameters -------------------------------------------------------------- */

static int kv_next(char **args, char **key, uint64_t *val)
{
	char *item = strsep(args, ","), *eq;

	if (!item)
		return 0;
	eq = strchr(item, '=');
	if (!eq)
		return -EINVAL;
	*eq = '\0';
	*key = item;
	return mp_parse_size(eq + 1, val) ? -EINVAL : 1;
}

static int no_params(struct mp_policy_conf *c, char *args)
{
	return args && *args ? -EINVAL : 0;
}

static int fixed_parse(struct mp_policy_conf *c, char *args)
{
	char *key;
	uint64_t v;
	int r;

	while (args && (r = kv_next(&args, &key, &v)) != 0) {
		if (r < 0 || strcmp(key, "pref") || v >= MP_MAX_PATHS)
			return -EINVAL;
		c->pref = (unsigned)v;
	}
	return 0;
}

static int rr_parse(struct mp_policy_conf *c, char *args)
{
	char *key;
	uint64_t v;
	int r;

	c->iops = RR_DEFAULT_IOPS;
	while (args && (r = kv_next(&args, &key, &v)) != 0) {
		if (r < 0 || v == 0)
			return -EINVAL;
		if (!strcmp(key, "iops")) {
			c->iops = v;
			c->bytes = 0;
		} else if (!strcmp(key, "bytes")) {
			c->bytes = v;
		} else {
			return -EINVAL;
		}
	}
	return 0;
}

static const struct mp_policy_ops fixed_ops = {
	.name = "fixed", .parse = fixed_parse, .select = fixed_select,
	.one_path = true,
};
static const struct mp_policy_ops mru_ops = {
	.name = "mru", .parse = no_params, .select = mru_select,
	.one_path = true,
};
static const struct mp_policy_ops rr_ops = {
	.name = "rr", .parse = rr_parse, .select = rr_select,
};
static const struct mp_policy_ops lqd_ops = {
	.name = "lqd", .parse = no_params, .select = lqd_select,
};
static const struct mp_policy_ops st_ops = {
	.name = "st", .parse = no_params, .select = st_select,
};
static const struct mp_policy_ops *const policies[] = {
	&fixed_ops, &mru_ops, &rr_ops, &lqd_ops, &st_ops,
};

int mp_policy_parse(const char *s, struct mp_policy_conf *c)
{
	char *buf, *args;
	int ret = -EINVAL;

	if (!s)
		return -EINVAL;
	buf = strdup(s);
	if (!buf)
		return -ENOMEM;
	args = strchr(buf, ',');
	if (args)
		*args++ = '\0';
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
		if (strcmp(buf, policies[i]->name))
			continue;
		c->ops = policies[i];
		ret = c->ops->parse(c, args);
		break;
	}
	free(buf);
	return ret;
}

void mp_policy_format(const struct mp_policy_conf *c, char *buf, size_t len)
{
	if (c->ops == &fixed_ops)
		snprintf(buf, len, "fixed,pref=%u", c->pref);
	else if (c->ops == &rr_ops && c->bytes)
		snprintf(buf, len, "rr,bytes=%llu", (unsigned long long)c->bytes);
	else if (c->ops == &rr_ops)
		snprintf(buf, len, "rr,iops=%llu", (unsigned long long)c->iops);
	else
		snprintf(buf, len, "%s", c->ops->name);
}
