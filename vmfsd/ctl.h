/*
 * ctl.h - vmfsd's control socket, and the client side the tools use.
 *
 * Each vmfsd serves a Unix stream socket named after its mount point:
 * VMFSD_RUN_DIR (default /run/vmfsd) / "ctl-" + 16 hex digits of a hash of
 * the mount point's real path + ".sock".  A tool given any path under the
 * mount walks up to the mount's root (where the device number changes),
 * derives the same name and connects; it never needs to be told the daemon.
 *
 * Protocol: the client sends one JSON object on one line, {"cmd": NAME,
 * ...arguments}.  The server answers with zero or more progress lines
 * {"progress": {"done": N, "total": N, "what": "Clone"}} and then one
 * final line {"ok": true, ...results} or {"ok": false, "error": TEXT,
 * "errno": N}.  A client that goes away cancels a long command (handlers
 * poll ctl_cancelled()).  One connection may carry several commands.
 */
#ifndef VMFSD_CTL_H
#define VMFSD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- server (inside vmfsd) ------------------------------------------------ */

struct ctl_req;

/*
 * A command handler.  req is the request object, resp the object to fill
 * with results.  Returns 0, or a negative errno (ctl_error() may set the
 * message first; otherwise strerror is used).  Runs on the connection's
 * own thread: handlers of different connections run concurrently.
 */
typedef int (*ctl_fn)(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp);

/* Register cmd before ctl_server_start().  help is one line for "help". */
int ctl_register(const char *cmd, const char *help, ctl_fn fn, void *arg);

/* Set the error message of a failing command (printf format). */
void ctl_error(struct ctl_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Report progress (sent at most every 200 ms; total 0 = unknown). */
void ctl_progress(struct ctl_req *r, const char *what, uint64_t done,
		  uint64_t total);

/* True once the client has gone away (a long command should stop and
 * undo what it half made). */
bool ctl_cancelled(struct ctl_req *r);

/*
 * State a command group keeps for the rest of the connection (a disk
 * attached by vmrun): fini(state) runs once, on the connection's thread,
 * when the connection ends however it ends (client exit or crash, server
 * stop), before its descriptor is closed.  One per connection: -EBUSY if
 * set already.
 */
int ctl_conn_state_set(struct ctl_req *r, void *state, void (*fini)(void *));
void *ctl_conn_state(struct ctl_req *r);
/* Take the state back before the connection ends (an orderly detach):
 * its finaliser will not run, the caller finishes it.  NULL if none. */
void *ctl_conn_state_take(struct ctl_req *r);
/* The connection's socket (to shut it down from another thread while the
 * connection's state is alive, e.g. when the host is fenced). */
int ctl_req_fd(struct ctl_req *r);

/*
 * Bind the socket for mount point mnt and start accepting.  Refuses
 * (-EADDRINUSE) when a live daemon already answers on it; removes a stale
 * socket.  path receives the socket's name.
 */
int ctl_server_start(const char *mnt, char *path, size_t len);
/* Stop accepting, wait for running commands, remove the socket. */
void ctl_server_stop(void);

/* ---- client (tools) ------------------------------------------------------- */

/* The socket name for a mount point (its real path). */
int ctl_socket_path(const char *mnt_real, char *out, size_t len);

/*
 * Find the vmfs mount that path lies under (path need not exist yet; its
 * longest existing prefix is used).  mnt receives the mount's root, rel the
 * path relative to it ("" for the root itself, no leading slash).
 * -ENOTDIR... errors: -ENOENT (nothing of the path exists), -EINVAL (not
 * under a vmfsd mount).
 */
int ctl_find_mount(const char *path, char *mnt, size_t mlen, char *rel,
		   size_t rlen);

typedef struct ctl_conn ctl_conn;

/* Connect to the daemon serving the mount that path lies under. */
int ctl_connect(const char *path, ctl_conn **out);
void ctl_close(ctl_conn *c);
/* The mount root and the relative path ctl_connect() found. */
const char *ctl_conn_mount(ctl_conn *c);
const char *ctl_conn_rel(ctl_conn *c);
/* The socket (to poll it for the daemon going away). */
int ctl_conn_fd(ctl_conn *c);

/* Called for each progress line of a command. */
typedef void (*ctl_progress_fn)(void *arg, const char *what, uint64_t done,
				uint64_t total);

/*
 * Send req (consumed) and wait for the final answer.  On success *resp is
 * the answer (json_object_put it) and the return value is 0; a command
 * that failed returns its negative errno with the daemon's message in
 * msg.  Transport errors return a negative errno with a message too.
 */
int ctl_call(ctl_conn *c, struct json_object *req, ctl_progress_fn fn,
	     void *arg, struct json_object **resp, char *msg, size_t mlen);

#ifdef __cplusplus
}
#endif
#endif /* VMFSD_CTL_H */
