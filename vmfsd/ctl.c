/*
 * ctl.c - the control socket server inside vmfsd (protocol: ctl.h).
 *
 * One accepting thread; each connection gets its own detached thread, so a
 * long command (a clone) does not hold up a quick one (vmkfstools -D).
 * ctl_server_stop() shuts every connection down and waits for its thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmfsd/ctl.h"

#define MAX_CMDS 64
#define MAX_LINE (1u << 20)
#define MAX_CONNS 256        /* a running VM holds one per disk */

struct cmd {
	const char *name, *help;
	ctl_fn fn;
	void *arg;
};

struct conn {
	int fd;
	void (*fini)(void *);       /* ctl_conn_state_set: runs at the end */
	void *state;
	struct conn *next;
};

struct ctl_req {
	int fd;
	struct conn *cn;
	char err[512];
	uint64_t last_progress_ns;
};

static struct cmd cmds[MAX_CMDS];
static unsigned ncmds;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gone = PTHREAD_COND_INITIALIZER;
static struct conn *conns;        /* live connections */
static unsigned nconns;
static bool stopping;
static int listen_fd = -1;
static int stop_pipe[2] = { -1, -1 };
static pthread_t accept_thread;
static char sock_path[108];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ctl_register(const char *cmd, const char *help, ctl_fn fn, void *arg)
{
	if (ncmds == MAX_CMDS)
		return -ENOSPC;
	for (unsigned i = 0; i < ncmds; i++)
		if (!strcmp(cmds[i].name, cmd))
			return -EEXIST;
	cmds[ncmds++] = (struct cmd){ cmd, help, fn, arg };
	return 0;
}

void ctl_error(struct ctl_req *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

static int send_obj(int fd, struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s), off = 0;
	char nl = '\n';

	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		off += (size_t)n;
	}
	return send(fd, &nl, 1, MSG_NOSIGNAL) == 1 ? 0 : -EPIPE;
}

void ctl_progress(struct ctl_req *r, const char *what, uint64_t done,
		  uint64_t total)
{
	struct json_object *o, *p;
	uint64_t now = now_ns();

	if (now - r->last_progress_ns < 200000000ull && done != total)
		return;
	r->last_progress_ns = now;
	o = json_object_new_object();
	p = json_object_new_object();
	json_object_object_add(p, "what", json_object_new_string(what));
	json_object_object_add(p, "done", json_object_new_uint64(done));
	json_object_object_add(p, "total", json_object_new_uint64(total));
	json_object_object_add(o, "progress", p);
	send_obj(r->fd, o);
	json_object_put(o);
}

bool ctl_cancelled(struct ctl_req *r)
{
	struct pollfd p = { .fd = r->fd, .events = POLLRDHUP };

	if (__atomic_load_n(&stopping, __ATOMIC_ACQUIRE))
		return true;
	return poll(&p, 1, 0) > 0 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int ctl_conn_state_set(struct ctl_req *r, void *state, void (*fini)(void *))
{
	if (r->cn->fini)
		return -EBUSY;
	r->cn->state = state;
	r->cn->fini = fini;
	return 0;
}

void *ctl_conn_state(struct ctl_req *r)
{
	return r->cn->state;
}

void *ctl_conn_state_take(struct ctl_req *r)
{
	void *state = r->cn->state;

	r->cn->state = NULL;
	r->cn->fini = NULL;
	return state;
}

int ctl_req_fd(struct ctl_req *r)
{
	return r->fd;
}

static int help_cmd(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	struct json_object *a = json_object_new_object();

	(void)arg;
	(void)r;
	(void)req;
	for (unsigned i = 0; i < ncmds; i++)
		json_object_object_add(a, cmds[i].name,
				       json_object_new_string(cmds[i].help));
	json_object_object_add(resp, "commands", a);
	return 0;
}

static void dispatch(struct conn *cn, struct json_object *req)
{
	int fd = cn->fd;
	struct ctl_req r = { .fd = fd, .cn = cn };
	struct json_object *resp = json_object_new_object(), *c;
	const char *name = NULL;
	int ret = -EINVAL;

	if (json_object_is_type(req, json_type_object) &&
	    json_object_object_get_ex(req, "cmd", &c) &&
	    json_object_is_type(c, json_type_string))
		name = json_object_get_string(c);
	if (!name) {
		ctl_error(&r, "a request is a JSON object with a \"cmd\" string");
	} else {
		unsigned i;

		for (i = 0; i < ncmds; i++)
			if (!strcmp(cmds[i].name, name))
				break;
		if (i == ncmds) {
			ret = -EOPNOTSUPP;
			ctl_error(&r, "unknown command '%s' (try \"help\")", name);
		} else {
			ret = cmds[i].fn(cmds[i].arg, &r, req, resp);
		}
	}
	if (ret) {
		json_object_put(resp);
		resp = json_object_new_object();
		json_object_object_add(resp, "ok", json_object_new_boolean(0));
		json_object_object_add(resp, "error", json_object_new_string(
			r.err[0] ? r.err : strerror(-ret)));
		json_object_object_add(resp, "errno", json_object_new_int(-ret));
	} else {
		json_object_object_add(resp, "ok", json_object_new_boolean(1));
	}
	send_obj(fd, resp);
	json_object_put(resp);
}

static void *conn_main(void *arg)
{
	struct conn *cn = arg, **pp;
	char *buf = malloc(MAX_LINE + 1);
	size_t have = 0;

	while (buf) {
		char *nl;
		ssize_t n;

		while ((nl = memchr(buf, '\n', have))) {
			struct json_tokener *tok = json_tokener_new();
			struct json_object *req;
			size_t len = (size_t)(nl - buf);

			*nl = 0;
			req = tok ? json_tokener_parse_ex(tok, buf, (int)len) : NULL;
			if (tok && json_tokener_get_error(tok) != json_tokener_success) {
				json_object_put(req);
				req = NULL;
			}
			json_tokener_free(tok);
			dispatch(cn, req);
			json_object_put(req);
			memmove(buf, nl + 1, have - len - 1);
			have -= len + 1;
		}
		if (have == MAX_LINE)
			break;              /* a line too long: drop the client */
		n = recv(cn->fd, buf + have, MAX_LINE - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	free(buf);
	/* before the descriptor closes: whoever holds it (a fence shutting
	 * attached disks' connections down) is told under its own lock */
	if (cn->fini)
		cn->fini(cn->state);
	pthread_mutex_lock(&lock);
	for (pp = &conns; *pp; pp = &(*pp)->next)
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
	close(cn->fd);
	free(cn);
	nconns--;
	pthread_cond_broadcast(&gone);
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void *accept_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = { { .fd = listen_fd, .events = POLLIN },
				       { .fd = stop_pipe[0], .events = POLLIN } };
		struct conn *cn;
		pthread_attr_t at;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&lock);
		if (stopping || nconns >= MAX_CONNS || !(cn = calloc(1, sizeof(*cn)))) {
			pthread_mutex_unlock(&lock);
			close(fd);
			continue;
		}
		cn->fd = fd;
		cn->next = conns;
		conns = cn;
		nconns++;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, conn_main, cn)) {
			conns = cn->next;
			nconns--;
			close(fd);
			free(cn);
		}
		pthread_attr_destroy(&at);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int ctl_server_start(const char *mnt, char *path, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char real[4096];
	const char *dir = getenv("VMFSD_RUN_DIR");
	int fd, ret;

	if (!realpath(mnt, real))
		return -errno;
	ret = ctl_socket_path(real, sa.sun_path, sizeof(sa.sun_path));
	if (ret)
		return ret;
	mkdir(dir && *dir ? dir : "/run/vmfsd", 0755);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return -EADDRINUSE;   /* a live daemon answers there */
	}
	close(fd);
	unlink(sa.sun_path);          /* stale, from a daemon that died */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16) ||
	    chmod(sa.sun_path, 0600) || pipe2(stop_pipe, O_CLOEXEC)) {
		ret = -errno;
		close(fd);
		unlink(sa.sun_path);
		return ret;
	}
	/* with a full table, help is the one to go without */
	(void)ctl_register("help", "list the commands", help_cmd, NULL);
	listen_fd = fd;
	snprintf(sock_path, sizeof(sock_path), "%s", sa.sun_path);
	ret = -pthread_create(&accept_thread, NULL, accept_main, NULL);
	if (ret) {
		close(fd);
		unlink(sock_path);
		listen_fd = -1;
		return ret;
	}
	if (path)
		snprintf(path, len, "%s", sock_path);
	return 0;
}

void ctl_server_stop(void)
{
	char c = 1;

	if (listen_fd < 0)
		return;
	pthread_mutex_lock(&lock);
	__atomic_store_n(&stopping, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&lock);
	if (write(stop_pipe[1], &c, 1) != 1) {
		/* a full pipe is as good as a written one */
	}
	pthread_join(accept_thread, NULL);
	close(listen_fd);
	listen_fd = -1;
	unlink(sock_path);
	pthread_mutex_lock(&lock);
	for (struct conn *cn = conns; cn; cn = cn->next)
		shutdown(cn->fd, SHUT_RDWR);
	while (nconns)
		pthread_cond_wait(&gone, &lock);
	pthread_mutex_unlock(&lock);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
}
