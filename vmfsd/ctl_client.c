/*
 * ctl_client.c - how the tools find and talk to vmfsd (protocol: ctl.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmfsd/ctl.h"

struct ctl_conn {
	int fd;
	char mnt[PATH_MAX], rel[PATH_MAX];
	char *buf;
	size_t have, cap;
};

int ctl_socket_path(const char *mnt_real, char *out, size_t len)
{
	const char *dir = getenv("VMFSD_RUN_DIR");
	uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a */
	int n;

	for (const char *p = mnt_real; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ull;
	}
	n = snprintf(out, len, "%s/ctl-%016llx.sock",
		     dir && *dir ? dir : "/run/vmfsd", (unsigned long long)h);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* /proc/self/mountinfo escapes blanks and backslashes as \ooo. */
static void unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + s[3] - '0');
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = 0;
}

static bool under(const char *path, const char *mnt)
{
	size_t n = strlen(mnt);

	if (!strcmp(mnt, "/"))
		return true;
	return !strncmp(path, mnt, n) && (path[n] == '/' || path[n] == 0);
}

int ctl_find_mount(const char *path, char *mnt, size_t mlen, char *rel,
		   size_t rlen)
{
	char cur[PATH_MAX], real[PATH_MAX], rest[PATH_MAX] = "", best[PATH_MAX] = "";
	char *line = NULL;
	size_t cap = 0;
	bool vmfs = false;
	FILE *f;

	if (!path || !*path)
		return -EINVAL;
	if (snprintf(cur, sizeof(cur), "%s", path) >= (int)sizeof(cur))
		return -ENAMETOOLONG;
	/* the longest prefix that exists; the rest need not (a new file) */
	while (!realpath(cur, real)) {
		char *slash, tmp[PATH_MAX];

		if (errno != ENOENT)
			return -errno;
		while (strlen(cur) > 1 && cur[strlen(cur) - 1] == '/')
			cur[strlen(cur) - 1] = 0;
		slash = strrchr(cur, '/');
		if (snprintf(tmp, sizeof(tmp), "%s%s%s", slash ? slash + 1 : cur,
			     rest[0] ? "/" : "", rest) >= (int)sizeof(tmp))
			return -ENAMETOOLONG;
		memcpy(rest, tmp, sizeof(rest));
		if (!slash)
			snprintf(cur, sizeof(cur), ".");
		else if (slash == cur)
			cur[1] = 0;
		else
			*slash = 0;
	}
	f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mountpoint opts [tags] - type src */
		char *fld[6], *sep, *save = NULL, *type;
		int i;

		sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = 0;
		type = strtok_r(sep + 3, " \n", &save);
		save = NULL;
		for (i = 0; i < 5 && (fld[i] = strtok_r(i ? NULL : line, " ", &save)); i++)
			;
		if (i < 5 || !type)
			continue;
		unescape(fld[4]);
		if (under(real, fld[4]) && strlen(fld[4]) >= strlen(best)) {
			snprintf(best, sizeof(best), "%s", fld[4]);
			vmfs = !strcmp(type, "fuse.vmfs");
		}
	}
	free(line);
	fclose(f);
	if (!vmfs)
		return -EINVAL;
	if (snprintf(mnt, mlen, "%s", best) >= (int)mlen)
		return -ENAMETOOLONG;
	{
		const char *r = real + (strcmp(best, "/") ? strlen(best) : 0);
		int n;

		while (*r == '/')
			r++;
		n = snprintf(rel, rlen, "%s%s%s", r, *r && rest[0] ? "/" : "", rest);
		if (n < 0 || (size_t)n >= rlen)
			return -ENAMETOOLONG;
	}
	return 0;
}

int ctl_connect(const char *path, ctl_conn **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ctl_conn *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	c->fd = -1;
	ret = ctl_find_mount(path, c->mnt, sizeof(c->mnt), c->rel, sizeof(c->rel));
	if (!ret)
		ret = ctl_socket_path(c->mnt, sa.sun_path, sizeof(sa.sun_path));
	if (!ret) {
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 ||
		    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)))
			ret = errno == ENOENT ? -ECONNREFUSED : -errno;
	}
	if (ret) {
		ctl_close(c);
		return ret;
	}
	*out = c;
	return 0;
}

void ctl_close(ctl_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

const char *ctl_conn_mount(ctl_conn *c)
{
	return c->mnt;
}

const char *ctl_conn_rel(ctl_conn *c)
{
	return c->rel;
}

int ctl_conn_fd(ctl_conn *c)
{
	return c->fd;
}

/* The next line from the daemon, parsed (NULL on EOF or garbage). */
static struct json_object *read_obj(ctl_conn *c, int *err)
{
	for (;;) {
		char *nl = c->buf ? memchr(c->buf, '\n', c->have) : NULL;
		ssize_t n;

		if (nl) {
			struct json_object *o;
			size_t len = (size_t)(nl - c->buf);

			*nl = 0;
			o = json_tokener_parse(c->buf);
			memmove(c->buf, nl + 1, c->have - len - 1);
			c->have -= len + 1;
			if (!o)
				*err = -EPROTO;
			return o;
		}
		if (c->have == c->cap) {
			char *nb;

			if (c->cap >= (16u << 20)) {
				*err = -EPROTO;
				return NULL;
			}
			nb = realloc(c->buf, c->cap ? c->cap * 2 : 65536);
			if (!nb) {
				*err = -ENOMEM;
				return NULL;
			}
			c->buf = nb;
			c->cap = c->cap ? c->cap * 2 : 65536;
		}
		n = recv(c->fd, c->buf + c->have, c->cap - c->have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*err = n < 0 ? -errno : -ECONNRESET;
			return NULL;
		}
		c->have += (size_t)n;
	}
}

int ctl_call(ctl_conn *c, struct json_object *req, ctl_progress_fn fn,
	     void *arg, struct json_object **resp, char *msg, size_t mlen)
{
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s), off = 0;
	int ret = 0;

	*resp = NULL;
	msg[0] = 0;
	while (off <= len) {
		/* the line, then its newline */
		ssize_t n = off < len ? send(c->fd, s + off, len - off, MSG_NOSIGNAL)
				      : send(c->fd, "\n", 1, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = -errno;
			snprintf(msg, mlen, "sending to vmfsd: %s", strerror(errno));
			json_object_put(req);
			return ret;
		}
		off += (size_t)n;
	}
	json_object_put(req);
	for (;;) {
		struct json_object *o = read_obj(c, &ret), *v, *p;

		if (!o) {
			snprintf(msg, mlen, "vmfsd closed the connection (%s)",
				 strerror(-ret));
			return ret ? ret : -ECONNRESET;
		}
		if (json_object_object_get_ex(o, "progress", &p)) {
			struct json_object *w, *d, *t;

			if (fn && json_object_object_get_ex(p, "what", &w) &&
			    json_object_object_get_ex(p, "done", &d) &&
			    json_object_object_get_ex(p, "total", &t))
				fn(arg, json_object_get_string(w),
				   json_object_get_uint64(d),
				   json_object_get_uint64(t));
			json_object_put(o);
			continue;
		}
		if (!json_object_object_get_ex(o, "ok", &v)) {
			json_object_put(o);
			snprintf(msg, mlen, "vmfsd sent an answer without \"ok\"");
			return -EPROTO;
		}
		if (json_object_get_boolean(v)) {
			*resp = o;
			return 0;
		}
		ret = -EIO;
		if (json_object_object_get_ex(o, "errno", &v) && json_object_get_int(v) > 0)
			ret = -json_object_get_int(v);
		snprintf(msg, mlen, "%s", json_object_object_get_ex(o, "error", &v) ?
			 json_object_get_string(v) : strerror(-ret));
		json_object_put(o);
		return ret;
	}
}
