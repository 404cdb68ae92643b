/*
 * janitor.c - recovers dead hosts that nobody needs a lock from.
 *
 * A host that dies holding no lock anyone asks for would otherwise keep its
 * heartbeat slot, its locks and its unreplayed journal until some host
 * happened to touch one of its files.  Every interval the janitor recovers
 * the hosts already seen dead (journal replay through the lock manager's
 * recovery callback, then their locks and slot freed), without waiting,
 * and frees the orphan files such recoveries left (orphan.c), and it takes
 * in extents other hosts added to the volume (grow.c).
 */
#include <errno.h>
#include <time.h>

#include "fs/fs_int.h"

static void *janitor_main(void *arg)
{
	struct fs_vol *v = arg;
	struct lk_vol_info li;
	unsigned period;

	lk_get_info(v->lk, &li);
	period = li.interval_ms < 500 ? 500 : li.interval_ms;
	pthread_mutex_lock(&v->lock);
	while (!v->jan_stop) {
		struct timespec ts;
		unsigned n = 0;
		int ret;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += period / 1000;
		ts.tv_nsec += (long)(period % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&v->jan_cond, &v->lock, &ts);
		if (v->jan_stop)
			break;
		pthread_mutex_unlock(&v->lock);
		ret = lk_recover_dead_now(v->lk, &n);
		if (n)
			fs_log(v, "janitor: recovered %u dead host%s", n,
			       n == 1 ? "" : "s");
		if (ret && ret != -EAGAIN && ret != -LK_E_FENCED &&
		    ret != -LK_E_LOST)
			fs_log(v, "janitor: recovering dead hosts: %s",
			       fs_strerror(ret));
		fs_orphan_reap(v);
		/* another host may have grown or spanned the volume */
		fs_geom_refresh(v);
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int fs_janitor_start(struct fs_vol *v)
{
	pthread_condattr_t ca;
	int ret;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->jan_cond, &ca);
	pthread_condattr_destroy(&ca);
	v->jan_stop = false;
	ret = -pthread_create(&v->jan, NULL, janitor_main, v);
	if (ret) {
		pthread_cond_destroy(&v->jan_cond);
		return ret;
	}
	v->jan_running = true;
	return 0;
}

void fs_janitor_stop(struct fs_vol *v)
{
	if (!v->jan_running)
		return;
	pthread_mutex_lock(&v->lock);
	v->jan_stop = true;
	pthread_cond_signal(&v->jan_cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->jan, NULL);
	pthread_cond_destroy(&v->jan_cond);
	v->jan_running = false;
}
