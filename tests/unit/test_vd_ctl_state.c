/*
 * test_vd_ctl_state.c - per-connection state on vmfsd's control socket
 * (what a disk attached by vmrun hangs on): the finaliser runs once when
 * the client goes away, not at all when the state was taken back, and for
 * every live connection when the server stops; one state per connection.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmfsd/ctl.h"

static int finished, taken;
static char sock[108];

static void fini(void *state)
{
	free(state);
	__atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST);
}

static int cmd_attach(void *arg, struct ctl_req *r, struct json_object *req,
		      struct json_object *resp)
{
	int *state = malloc(sizeof(*state)), ret;

	(void)arg;
	(void)req;
	(void)resp;
	ret = ctl_conn_state_set(r, state, fini);
	if (ret)
		free(state);
	return ret;
}

static int cmd_take(void *arg, struct ctl_req *r, struct json_object *req,
		    struct json_object *resp)
{
	void *state = ctl_conn_state_take(r);

	(void)arg;
	(void)req;
	(void)resp;
	if (!state)
		return -EBADF;
	free(state);
	__atomic_add_fetch(&taken, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int client(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Send a command, return the "errno" of the answer (0 = ok). */
static int ask(int fd, const char *cmd)
{
	char line[256], buf[512];
	size_t have = 0;
	int n = snprintf(line, sizeof(line), "{\"cmd\": \"%s\"}\n", cmd);

	assert_int_equal(send(fd, line, (size_t)n, MSG_NOSIGNAL), n);
	while (!memchr(buf, '\n', have)) {
		ssize_t got = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);

		assert_true(got > 0);
		have += (size_t)got;
	}
	buf[have] = 0;
	if (strstr(buf, "\"ok\":true"))
		return 0;
	{
		const char *e = strstr(buf, "\"errno\":");

		assert_non_null(e);
		return atoi(e + 8);
	}
}

static void wait_finished(int want)
{
	for (int i = 0; i < 200 && __atomic_load_n(&finished, __ATOMIC_SEQ_CST) < want; i++) {
		struct timespec ts = { 0, 10000000 };

		nanosleep(&ts, NULL);
	}
	assert_int_equal(__atomic_load_n(&finished, __ATOMIC_SEQ_CST), want);
}

static void test_state(void **st)
{
	char tmpl[] = "/tmp/vd_ctl_state.XXXXXX", run[64];
	int a, b, c;

	(void)st;
	assert_non_null(mkdtemp(tmpl));
	snprintf(run, sizeof(run), "%s/run", tmpl);
	setenv("VMFSD_RUN_DIR", run, 1);
	assert_int_equal(ctl_register("attach", "test", cmd_attach, NULL), 0);
	assert_int_equal(ctl_register("take", "test", cmd_take, NULL), 0);
	assert_int_equal(ctl_server_start(tmpl, sock, sizeof(sock)), 0);

	/* the client goes away: the finaliser runs once */
	a = client();
	assert_int_equal(ask(a, "attach"), 0);
	assert_int_equal(ask(a, "attach"), EBUSY);   /* one per connection */
	assert_int_equal(__atomic_load_n(&finished, __ATOMIC_SEQ_CST), 0);
	close(a);
	wait_finished(1);

	/* taken back: the finaliser does not run, the connection lives on */
	b = client();
	assert_int_equal(ask(b, "attach"), 0);
	assert_int_equal(ask(b, "take"), 0);
	assert_int_equal(ask(b, "take"), EBADF);
	assert_int_equal(ask(b, "attach"), 0);       /* set again */
	assert_int_equal(ask(b, "take"), 0);
	close(b);

	/* the server stops under a live connection: its finaliser runs
	 * before ctl_server_stop returns */
	c = client();
	assert_int_equal(ask(c, "attach"), 0);
	ctl_server_stop();
	assert_int_equal(__atomic_load_n(&finished, __ATOMIC_SEQ_CST), 2);
	assert_int_equal(__atomic_load_n(&taken, __ATOMIC_SEQ_CST), 2);
	close(c);
	rmdir(run);
	rmdir(tmpl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
