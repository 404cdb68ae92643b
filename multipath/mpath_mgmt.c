/*
 * mpath_mgmt.c - managing devices: status, policy, enabling paths, adding
 * paths, the registry of the process's open LUNs and its json form.
 *
 * The registry lock (reg_lock) is taken before a LUN's locks and never
 * while holding one; mp_lun_close() leaves the registry before it waits
 * for the LUN to drain, so a listing never sees a LUN being freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "mpath_int.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mp_lun *reg_head;

void mp_registry_add(struct mp_lun *lun)
{
	pthread_mutex_lock(&reg_lock);
	lun->reg_next = reg_head;
	reg_head = lun;
	pthread_mutex_unlock(&reg_lock);
}

void mp_registry_del(struct mp_lun *lun)
{
	struct mp_lun **pp;

	pthread_mutex_lock(&reg_lock);
	for (pp = &reg_head; *pp && *pp != lun; pp = &(*pp)->reg_next)
		;
	if (*pp)
		*pp = lun->reg_next;
	pthread_mutex_unlock(&reg_lock);
}

const char *mp_path_state_name(enum mp_path_state s)
{
	switch (s) {
	case MP_PATH_ACTIVE: return "active";
	case MP_PATH_STANDBY: return "standby";
	case MP_PATH_DEAD: return "dead";
	case MP_PATH_DISABLED: return "disabled";
	}
	return "?";
}

struct mp_path *mpath_path(struct mpath *m, unsigned idx)
{
	struct mp_path *p = NULL;

	pthread_mutex_lock(&m->lock);
	if (idx < m->npaths)
		p = m->paths[idx]->path;
	pthread_mutex_unlock(&m->lock);
	return p;
}

int mpath_status(struct mpath *m, struct mp_lun_status *st,
		 struct mp_path_status *paths, unsigned max)
{
	unsigned cur;
	int n;

	pthread_mutex_lock(&m->lock);
	/* The path the next I/O takes: fixed goes back to its preferred one
	 * as soon as that works. */
	cur = m->cur;
	if (!strcmp(m->pol.ops->name, "fixed") && m->pol.pref < m->npaths &&
	    mpp_usable(m->paths[m->pol.pref]))
		cur = m->pol.pref;
	if (mpp_usable(m->pin))
		cur = m->pin->idx;   /* a reservation holds I/O there */
	mp_policy_format(&m->pol, st->policy, sizeof(st->policy));
	st->npaths = m->npaths;
	st->apd = m->apd_since != 0;
	st->pdl = m->pdl;
	st->failovers = m->failovers;
	st->pr_key = m->pr_key;
	st->pr_holder = m->pr_holder ? (int)m->pr_holder->idx : -1;
	for (unsigned i = 0; i < m->npaths && i < max; i++) {
		const struct mpp *p = m->paths[i];
		struct mp_path_status *ps = &paths[i];

		memset(ps, 0, sizeof(*ps));
		snprintf(ps->spec, sizeof(ps->spec), "%s", p->spec);
		ps->state = p->state;
		/* Working but not taking I/O under a one-path policy. */
		if (p->state == MP_PATH_ACTIVE && m->pol.ops->one_path &&
		    i != cur)
			ps->state = MP_PATH_STANDBY;
		ps->preferred = m->pol.ops->one_path && m->pol.pref == i &&
				!strcmp(m->pol.ops->name, "fixed");
		ps->inflight = p->inflight;
		ps->ios = p->ios;
		ps->bytes = p->bytes;
		ps->errors = p->errors;
		ps->svc_us = p->svc_ns / 1000;
		ps->last_error = p->last_err;
		ps->pr_key = p->pr_key;
	}
	n = (int)m->npaths;
	pthread_mutex_unlock(&m->lock);
	return n;
}

int mp_lun_get_status(mp_lun *lun, struct mp_lun_status *st,
		      struct mp_path_status *paths, unsigned max)
{
	struct mp_lun_info info;
	int n = 1;

	memset(st, 0, sizeof(*st));
	mp_lun_get_info(lun, &info);
	snprintf(st->id, sizeof(st->id), "%s", info.id);
	pthread_mutex_lock(&lun->lock);
	st->queue_depth = lun->qdepth;
	st->max_queue_depth = lun->max_qdepth;
	st->adaptive = lun->adaptive;
	st->inflight = lun->inflight;
	st->queued = lun->queued;
	st->qfull = lun->qfull_total;
	pthread_mutex_unlock(&lun->lock);
	if (lun->mp)
		return mpath_status(lun->mp, st, paths, max);
	snprintf(st->policy, sizeof(st->policy), "single");
	st->pr_holder = -1;
	st->npaths = 1;
	if (max) {
		memset(paths, 0, sizeof(*paths));
		snprintf(paths->spec, sizeof(paths->spec), "%s", lun->spec);
		paths->state = MP_PATH_ACTIVE;
		paths->inflight = st->inflight;
	}
	return n;
}

int mp_lun_set_policy(mp_lun *lun, const char *policy)
{
	struct mp_policy_conf c;
	struct mpath *m = lun->mp;
	int ret;

	if (!m)
		return -EOPNOTSUPP;
	ret = mp_policy_parse(policy, &c);
	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	if (c.pref >= m->npaths) {
		ret = -EINVAL;
	} else {
		m->pol = c;
		m->rr_count = m->rr_bytes = 0;
	}
	pthread_mutex_unlock(&m->lock);
	if (!ret)
		mp_log("%s: path policy %s", lun->spec, policy);
	return ret;
}

int mp_lun_path_enable(mp_lun *lun, unsigned idx, bool enable)
{
	struct mpath *m = lun->mp;
	struct mp_io *run = NULL;
	int ret = 0;

	if (!m)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&m->lock);
	if (idx >= m->npaths) {
		ret = -ENOENT;
	} else if (!enable && m->paths[idx]->state != MP_PATH_DISABLED) {
		m->paths[idx]->state = MP_PATH_DISABLED;
		if (m->pin == m->paths[idx])
			m->pin = NULL;
		mpath_paths_changed(m, &run);
	} else if (enable && m->paths[idx]->state == MP_PATH_DISABLED) {
		/* Dead until the checker says otherwise: checked at once. */
		m->paths[idx]->state = MP_PATH_DEAD;
		m->check_now = true;
		pthread_cond_broadcast(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	mpath_run(m, run);
	if (!ret)
		mp_log("%s: path %u %s", lun->spec, idx,
		       enable ? "enabled" : "disabled");
	return ret;
}

int mp_lun_path_add(mp_lun *lun, const char *spec)
{
	struct mpath *m = lun->mp;
	struct mp_io *run = NULL;
	struct mpp *p;
	int ret;

	if (!m)
		return -EOPNOTSUPP;
	if (!spec || !*spec || strchr(spec, '|'))
		return -MP_E_SPEC;
	pthread_mutex_lock(&m->lock);
	ret = m->npaths >= MP_MAX_PATHS ? -ENOSPC : 0;
	pthread_mutex_unlock(&m->lock);
	if (ret)
		return ret;
	/* Path 0 never goes away, so the identity check needs no lock. */
	ret = mpath_path_open(m, spec, &p);
	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	if (m->npaths >= MP_MAX_PATHS) {
		pthread_mutex_unlock(&m->lock);
		mp_path_close(p->path);
		free(p->spec);
		free(p);
		return -ENOSPC;
	}
	p->idx = m->npaths;
	m->paths[m->npaths++] = p;
	if (m->pr_key) {
		/* Registered with our key before it takes I/O: that happens
		 * when its first check passes, which is now. */
		p->state = MP_PATH_DEAD;
		m->check_now = true;
		pthread_cond_broadcast(&m->cond);
	}
	mpath_paths_changed(m, &run);
	ret = (int)p->idx;
	pthread_mutex_unlock(&m->lock);
	mpath_run(m, run);
	mp_log("%s: path %d added: %s", lun->spec, ret, spec);
	return ret;
}

int mp_lun_check_paths(mp_lun *lun)
{
	struct mpath *m = lun->mp;
	uint64_t target;

	if (!m)
		return mp_lun_test_ready(lun);
	pthread_mutex_lock(&m->lock);
	/* A round that starts after this one ends: wait for two ends when
	 * one is in progress now. */
	target = m->check_rounds + (m->checks_out ? 2 : 1);
	m->check_now = true;
	pthread_cond_broadcast(&m->cond);
	while (m->check_rounds < target && !m->stop)
		pthread_cond_wait(&m->cond, &m->lock);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* ---- registry listing ------------------------------------------------------------ */

static struct json_object *lun_json(struct mp_lun *lun)
{
	struct mp_path_status ps[MP_MAX_PATHS];
	struct mp_lun_status st;
	struct json_object *o = json_object_new_object(), *arr;
	int n = mp_lun_get_status(lun, &st, ps, MP_MAX_PATHS);

	if (!o)
		return NULL;
	json_object_object_add(o, "device", json_object_new_string(st.id));
	json_object_object_add(o, "spec", json_object_new_string(lun->spec));
	json_object_object_add(o, "policy", json_object_new_string(st.policy));
	json_object_object_add(o, "queue_depth",
			       json_object_new_int((int)st.queue_depth));
	json_object_object_add(o, "max_queue_depth",
			       json_object_new_int((int)st.max_queue_depth));
	json_object_object_add(o, "adaptive", json_object_new_boolean(st.adaptive));
	json_object_object_add(o, "apd", json_object_new_boolean(st.apd));
	json_object_object_add(o, "pdl", json_object_new_boolean(st.pdl));
	json_object_object_add(o, "failovers",
			       json_object_new_int64((int64_t)st.failovers));
	json_object_object_add(o, "pr_key",
			       json_object_new_int64((int64_t)st.pr_key));
	json_object_object_add(o, "pr_holder", json_object_new_int(st.pr_holder));
	arr = json_object_new_array();
	for (int i = 0; arr && i < n && i < MP_MAX_PATHS; i++) {
		struct json_object *p = json_object_new_object();

		if (!p)
			break;
		json_object_object_add(p, "index", json_object_new_int(i));
		json_object_object_add(p, "spec", json_object_new_string(ps[i].spec));
		json_object_object_add(p, "state", json_object_new_string(
			mp_path_state_name(ps[i].state)));
		json_object_object_add(p, "preferred",
				       json_object_new_boolean(ps[i].preferred));
		json_object_object_add(p, "inflight",
				       json_object_new_int((int)ps[i].inflight));
		json_object_object_add(p, "ios",
				       json_object_new_int64((int64_t)ps[i].ios));
		json_object_object_add(p, "bytes",
				       json_object_new_int64((int64_t)ps[i].bytes));
		json_object_object_add(p, "errors",
				       json_object_new_int64((int64_t)ps[i].errors));
		json_object_object_add(p, "svc_us",
				       json_object_new_int64((int64_t)ps[i].svc_us));
		json_object_object_add(p, "pr_key",
				       json_object_new_int64((int64_t)ps[i].pr_key));
		json_object_array_add(arr, p);
	}
	json_object_object_add(o, "paths", arr);
	return o;
}

struct json_object *mp_devices_json(void)
{
	struct json_object *arr = json_object_new_array();

	if (!arr)
		return NULL;
	pthread_mutex_lock(&reg_lock);
	for (struct mp_lun *l = reg_head; l; l = l->reg_next) {
		struct json_object *o = lun_json(l);

		if (o)
			json_object_array_add(arr, o);
	}
	pthread_mutex_unlock(&reg_lock);
	return arr;
}

mp_lun *mp_lun_find(const char *id_or_spec)
{
	struct mp_lun *found = NULL;

	pthread_mutex_lock(&reg_lock);
	for (struct mp_lun *l = reg_head; l && !found; l = l->reg_next) {
		if (!strcmp(l->spec, id_or_spec) ||
		    !strcmp(l->path->info.id, id_or_spec))
			found = l;
	}
	pthread_mutex_unlock(&reg_lock);
	return found;
}
