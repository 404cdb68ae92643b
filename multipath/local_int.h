/*
 * local_int.h - the local backend (regular files and block devices) and its
 * two asynchronous engines, io_uring and libaio.
 */
#ifndef LOCAL_INT_H
#define LOCAL_INT_H

#include "mp_int.h"

struct local;

/* An engine moves READ and WRITE between memory and the fd asynchronously.
 * Everything else (flush, discard, emulated compare-and-write, test ready)
 * runs on the backend's worker thread with plain system calls. */
struct local_engine_ops {
	const char *name;
	int (*init)(struct local *l, unsigned entries);
	void (*fini)(struct local *l);
	void (*submit_rw)(struct local *l, struct mp_io *io);
};

extern const struct local_engine_ops local_uring_ops;
extern const struct local_engine_ops local_aio_ops;

struct local {
	struct mp_path *path;
	int fd;
	bool direct;                 /* O_DIRECT in effect */
	bool blockdev;
	const struct local_engine_ops *eng;
	void *eng_priv;

	/* worker thread for blocking operations */
	pthread_t worker;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	struct mp_io *whead, *wtail;
	bool wstop;
	/* this handle's emulated CAWs: one at a time per 512-byte unit they
	 * cover, by stripe (the OFD lock excludes other handles only) */
#define LOCAL_CAW_STRIPES 64
	pthread_mutex_t caw_m[LOCAL_CAW_STRIPES];
};

/* Complete a read or write from an engine: checks the transfer length. */
void local_rw_done(struct local *l, struct mp_io *io, long res);

#endif
