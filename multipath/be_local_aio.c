/*
 * be_local_aio.c - libaio engine of the local backend, its default (see
 * be_local.c for why).
 *
 * io_submit() is thread safe, so submitters call it directly; one reaper
 * thread waits in io_getevents().  The reaper is woken for shutdown and for
 * submissions the kernel refused (which must not complete on the caller's
 * stack) by an IOCB_CMD_POLL on an eventfd kept armed in the same context.
 */
#include <errno.h>
#include <libaio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "local_int.h"

#define BATCH 64

struct aio_req {
	struct iocb cb;
	struct mp_io *io;
	int err;                 /* refused at submit: deliver this */
	struct aio_req *next;
};

struct aio_eng {
	io_context_t ctx;
	pthread_t reaper;
	pthread_mutex_t lock;    /* free list and refused list */
	struct aio_req *reqs, *free, *refused;
	unsigned nreqs;
	int efd;
	struct iocb poll_cb;
	bool stop;
};

static void arm_poll(struct aio_eng *a)
{
	struct iocb *cbs[1] = { &a->poll_cb };
	int ret;

	io_prep_poll(&a->poll_cb, a->efd, POLLIN);
	a->poll_cb.data = NULL;
	do {
		ret = io_submit(a->ctx, 1, cbs);
	} while (ret == -EAGAIN || ret == -EINTR);
	if (ret != 1)
		mp_log("libaio: cannot arm wake-up poll: %s", mp_strerror(ret));
}

static void kick(struct aio_eng *a)
{
	uint64_t one = 1;

	if (write(a->efd, &one, sizeof(one)) < 0)
		mp_log("libaio: eventfd write: %s", mp_strerror(-errno));
}

static void aio_submit_rw(struct local *l, struct mp_io *io)
{
	struct aio_eng *a = l->eng_priv;
	/* read before the hand-over below: once the kernel has the request,
	 * its completion may let the owner close the path and free a */
	io_context_t ctx = a->ctx;
	struct aio_req *r;
	struct iocb *cbs[1];
	int ret;

	pthread_mutex_lock(&a->lock);
	r = a->free;
	if (r)
		a->free = r->next;
	pthread_mutex_unlock(&a->lock);
	if (!r) {
		/* cannot happen: the device queue depth is at most entries */
		r = calloc(1, sizeof(*r));
		if (!r)
			abort();
	}
	r->io = io;
	r->err = 0;
	if (io->op == MP_OP_READ) {
		io_prep_preadv(&r->cb, l->fd, io->iov, io->iovcnt,
			       (long long)io->offset);
	} else {
		io_prep_pwritev(&r->cb, l->fd, io->iov, io->iovcnt,
				(long long)io->offset);
		if (io->flags & MP_IO_FUA)
			r->cb.aio_rw_flags = RWF_DSYNC;
	}
	r->cb.data = r;
	cbs[0] = &r->cb;
	MP_TSAN_RELEASE(r);
	do {
		ret = io_submit(ctx, 1, cbs);
	} while (ret == -EINTR || ret == -EAGAIN);
	if (ret != 1) {
		r->err = ret < 0 ? ret : -EIO;
		pthread_mutex_lock(&a->lock);
		r->next = a->refused;
		a->refused = r;
		pthread_mutex_unlock(&a->lock);
		kick(a);
	}
}

static void put_req(struct aio_eng *a, struct aio_req *r)
{
	if (r < a->reqs || r >= a->reqs + a->nreqs) {
		free(r);
		return;
	}
	pthread_mutex_lock(&a->lock);
	r->next = a->free;
	a->free = r;
	pthread_mutex_unlock(&a->lock);
}

static void *reaper_main(void *arg)
{
	struct local *l = arg;
	struct aio_eng *a = l->eng_priv;
	struct io_event ev[BATCH];

	for (;;) {
		int n = io_getevents(a->ctx, 1, BATCH, ev, NULL);
		bool woke = false;

		if (n == -EINTR)
			continue;
		if (n < 0) {
			mp_log("io_getevents: %s", mp_strerror(n));
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct aio_req *r = ev[i].data;
			struct mp_io *io;
			long res = (long)ev[i].res;

			if (!r) {
				woke = true;
				continue;
			}
			MP_TSAN_ACQUIRE(r);
			io = r->io;
			put_req(a, r);
			local_rw_done(l, io, res);
		}
		if (woke) {
			struct aio_req *ref;
			uint64_t v;

			if (read(a->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				mp_log("libaio: eventfd read: %s",
				       mp_strerror(-errno));
			pthread_mutex_lock(&a->lock);
			ref = a->refused;
			a->refused = NULL;
			pthread_mutex_unlock(&a->lock);
			while (ref) {
				struct aio_req *r = ref;
				struct mp_io *io = r->io;
				int err = r->err;

				ref = r->next;
				put_req(a, r);
				mp_path_done(l->path, io, err);
			}
			if (__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE))
				break;
			arm_poll(a);
		}
	}
	return NULL;
}

static int aio_init(struct local *l, unsigned entries)
{
	struct aio_eng *a = calloc(1, sizeof(*a));
	int ret;

	if (!a)
		return -ENOMEM;
	a->efd = -1;
	a->nreqs = entries;
	/* +1 for the wake-up poll */
	ret = io_setup((int)entries + 1, &a->ctx);
	if (ret)
		goto free_a;
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0) {
		ret = -errno;
		goto destroy_ctx;
	}
	a->reqs = calloc(entries, sizeof(*a->reqs));
	if (!a->reqs) {
		ret = -ENOMEM;
		goto destroy_ctx;
	}
	for (unsigned i = 0; i < entries; i++) {
		a->reqs[i].next = a->free;
		a->free = &a->reqs[i];
	}
	pthread_mutex_init(&a->lock, NULL);
	l->eng_priv = a;
	arm_poll(a);
	ret = -pthread_create(&a->reaper, NULL, reaper_main, l);
	if (ret)
		goto destroy_lock;
	return 0;

destroy_lock:
	pthread_mutex_destroy(&a->lock);
	l->eng_priv = NULL;
destroy_ctx:
	if (a->efd >= 0)
		close(a->efd);
	free(a->reqs);
	io_destroy(a->ctx);
free_a:
	free(a);
	return ret;
}

static void aio_fini(struct local *l)
{
	struct aio_eng *a = l->eng_priv;

	__atomic_store_n(&a->stop, true, __ATOMIC_RELEASE);
	kick(a);
	pthread_join(a->reaper, NULL);
	io_destroy(a->ctx);
	close(a->efd);
	pthread_mutex_destroy(&a->lock);
	free(a->reqs);
	free(a);
}

const struct local_engine_ops local_aio_ops = {
	.name = "aio",
	.init = aio_init,
	.fini = aio_fini,
	.submit_rw = aio_submit_rw,
};
