/*
 * fuse_loop.c - vmfsd's FUSE request loop: worker threads, each reading
 * requests from /dev/fuse into a receive buffer of its own.
 *
 * libfuse's multithreaded loop reads every request into a malloc'd buffer
 * (or splices it into a pipe), so the data of a WRITE lands 80 bytes past
 * wherever that buffer starts: never sector aligned, and the LUN is opened
 * O_DIRECT, so every write was copied once more before it could go to the
 * device.  Here each worker's buffer is placed so that the data of a WRITE
 * (after struct fuse_in_header and struct fuse_write_in) begins on a 4 KiB
 * boundary of 2 MiB-page memory (mp_alloc_io): fs_pwrite sends it to the
 * device from where the kernel put it (vmfsd_buf_in), one copy fewer per
 * write.
 *
 * Threads as libfuse's loop: one waits in read() while the others work;
 * when no worker is left waiting, the one that just took a request starts
 * another, up to VMFSD_MAX_WORKERS (requests can wait long for a lock held
 * by another host, and must not hold up the rest).  Workers stay until the
 * session ends.  The session ends on unmount (ENODEV) or a signal
 * (fuse_set_signal_handlers: SIGTERM, SIGINT, SIGHUP call
 * fuse_session_exit); the signals are blocked in the workers so they reach
 * the main thread's wait; it then cancels the workers that wait in read()
 * (a worker processing a request has cancellation disabled) and joins them.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "multipath/mp.h"
#include "vmfsd/rdm_fuse.h"

#define VMFSD_MAX_WORKERS 16
/* where a WRITE's data starts in the request as read from /dev/fuse */
#define WRITE_DATA_OFF (sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))
/* the receive buffer: a 4 KiB page ahead of the data, then max_write
 * (1 MiB) and room to spare within the 2 MiB page; the kernel writes no
 * more than the request it hands over, whatever size read() is given */
#define RECV_LEN (2u << 20)

struct worker {
	pthread_t t;
	unsigned char *mem;          /* mp_alloc_io(RECV_LEN) */
	struct loop *l;
};

struct loop {
	struct fuse_session *se;
	pthread_mutex_t m;
	unsigned nworkers, idle;
	struct worker w[VMFSD_MAX_WORKERS];
	sem_t finish;                /* a worker saw the session end or fail */
	int error;                   /* the first error a worker met */
};

static int start_worker(struct loop *l);

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct loop *l = w->l;
	struct fuse_buf fbuf = {
		.mem = w->mem + 4096 - WRITE_DATA_OFF,
		.size = RECV_LEN - 4096,
	};
	sigset_t sigs;
	int ret = 0;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	while (!fuse_session_exited(l->se)) {
		bool more;

		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		ret = fuse_session_receive_buf(l->se, &fbuf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret <= 0)
			break;             /* 0: unmounted or exited */
		pthread_mutex_lock(&l->m);
		l->idle--;
		more = l->idle == 0 && l->nworkers < VMFSD_MAX_WORKERS;
		pthread_mutex_unlock(&l->m);
		if (more && start_worker(l))
			fprintf(stderr, "vmfsd: cannot start another FUSE worker "
				"(%u running)\n", l->nworkers);
		fuse_session_process_buf(l->se, &fbuf);
		pthread_mutex_lock(&l->m);
		l->idle++;
		pthread_mutex_unlock(&l->m);
	}
	pthread_mutex_lock(&l->m);
	if (ret < 0 && !l->error)
		l->error = ret;
	pthread_mutex_unlock(&l->m);
	fuse_session_exit(l->se);
	sem_post(&l->finish);
	return NULL;
}

/* A new worker (l->m not held); it counts as idle from the start. */
static int start_worker(struct loop *l)
{
	struct worker *w;
	int ret;

	pthread_mutex_lock(&l->m);
	if (l->nworkers == VMFSD_MAX_WORKERS || fuse_session_exited(l->se)) {
		pthread_mutex_unlock(&l->m);
		return 0;
	}
	w = &l->w[l->nworkers];
	w->l = l;
	w->mem = mp_alloc_io(RECV_LEN, 0);
	if (!w->mem) {
		pthread_mutex_unlock(&l->m);
		return -ENOMEM;
	}
	ret = -pthread_create(&w->t, NULL, worker_main, w);
	if (ret) {
		mp_free_io(w->mem, RECV_LEN);
		w->mem = NULL;
	} else {
		l->nworkers++;
		l->idle++;
	}
	pthread_mutex_unlock(&l->m);
	return ret;
}

int vmfsd_fuse_loop(struct fuse_session *se)
{
	static struct loop l;       /* the workers' buffers hang off it */
	unsigned n;
	int ret;

	memset(&l, 0, sizeof(l));
	l.se = se;
	pthread_mutex_init(&l.m, NULL);
	sem_init(&l.finish, 0, 0);
	ret = start_worker(&l);
	if (ret) {
		fprintf(stderr, "vmfsd: cannot start the FUSE workers: %s\n",
			strerror(-ret));
		return ret;
	}
	while (!fuse_session_exited(se))
		sem_wait(&l.finish);     /* EINTR: a signal; look again */
	pthread_mutex_lock(&l.m);
	n = l.nworkers;
	pthread_mutex_unlock(&l.m);
	/* no new worker starts once the session has exited: the loop's
	 * condition stops them before they take another request */
	for (unsigned i = 0; i < n; i++)
		pthread_cancel(l.w[i].t);
	for (unsigned i = 0; i < n; i++) {
		pthread_join(l.w[i].t, NULL);
		mp_free_io(l.w[i].mem, RECV_LEN);
	}
	ret = l.error;
	sem_destroy(&l.finish);
	pthread_mutex_destroy(&l.m);
	fuse_session_reset(se);
	return ret;
}
