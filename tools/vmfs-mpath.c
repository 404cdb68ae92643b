/*
 * vmfs-mpath - multipath devices of a running vmfsd, through its control
 * socket.
 *
 *   vmfs-mpath --mount DIR list
 *   vmfs-mpath --mount DIR set-policy DEVICE POLICY
 *   vmfs-mpath --mount DIR path {enable|disable} PATH
 *   vmfs-mpath group SPEC...
 *
 * DEVICE is a device's identity (naa..., file...) or its spec; POLICY is
 * fixed[,pref=N], mru, rr[,iops=N|,bytes=SIZE], lqd or st; PATH is a path's
 * spec or DEVICE#N.  --json prints the daemon's answer as it came.
 * group needs no daemon: it opens each SPEC (file, iscsi://, ...) once,
 * reads its LUN identity, and prints one line per LUN: its identity, the
 * number of paths, and the multi: spec that opens it over all of them.
 * Exit status: 0 done, 1 the daemon refused or cannot be reached, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "multipath/mp.h"
#include "vmfsd/ctl.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: vmfs-mpath --mount DIR [--json] list\n"
		"       vmfs-mpath --mount DIR set-policy DEVICE POLICY\n"
		"       vmfs-mpath --mount DIR path {enable|disable} PATH\n"
		"       vmfs-mpath group SPEC...\n"
		"POLICY: fixed[,pref=N] | mru | rr[,iops=N|,bytes=SIZE] | lqd | st\n");
	exit(2);
}

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static long long num(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static void print_list(struct json_object *resp)
{
	struct json_object *devs, *paths;

	if (!json_object_object_get_ex(resp, "devices", &devs))
		return;
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);

		printf("%s\n  spec: %s\n  policy: %s  queue depth: %lld/%lld%s%s%s"
		       "  failovers: %lld\n", str(d, "device"), str(d, "spec"),
		       str(d, "policy"), num(d, "queue_depth"),
		       num(d, "max_queue_depth"),
		       num(d, "adaptive") ? " (adaptive)" : "",
		       num(d, "apd") ? "  ALL PATHS DOWN" : "",
		       num(d, "pdl") ? "  PERMANENT DEVICE LOSS" : "",
		       num(d, "failovers"));
		if (num(d, "pr_key"))
			printf("  PR key 0x%llx on every path, reservation %s"
			       "\n", (unsigned long long)num(d, "pr_key"),
			       num(d, "pr_holder") >= 0 ? "held" : "none");
		if (!json_object_object_get_ex(d, "paths", &paths))
			continue;
		for (size_t k = 0; k < json_object_array_length(paths); k++) {
			struct json_object *p = json_object_array_get_idx(paths, k);

			printf("  path %lld %-8s%s %s  ios %lld errors %lld "
			       "inflight %lld svc %lld us\n", num(p, "index"),
			       str(p, "state"), num(p, "preferred") ? "*" : " ",
			       str(p, "spec"), num(p, "ios"), num(p, "errors"),
			       num(p, "inflight"), num(p, "svc_us"));
		}
	}
}

/* vmfs-mpath group SPEC...: which specs lead to the same LUN. */
static int cmd_group(int n, char **specs)
{
	struct mp_group *g;
	unsigned ng;
	int ret = mp_specs_group((const char *const *)specs, (unsigned)n, NULL,
				 &g, &ng);

	if (ret) {
		fprintf(stderr, "vmfs-mpath: group: %s\n", mp_strerror(ret));
		return 1;
	}
	for (unsigned i = 0; i < ng; i++)
		printf("%s %u path%s %s\n", g[i].info.id[0] ? g[i].info.id : "-",
		       g[i].npaths, g[i].npaths == 1 ? "" : "s", g[i].spec);
	mp_groups_free(g, ng);
	return 0;
}

int main(int argc, char **argv)
{
	struct json_object *req = json_object_new_object(), *resp = NULL;
	const char *mnt = NULL;
	bool json = false;
	char msg[600];
	ctl_conn *c;
	int i = 1, ret;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--mount") && i + 1 < argc)
			mnt = argv[++i];
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else
			usage();
	}
	if (!mnt && i + 1 < argc && !strcmp(argv[i], "group")) {
		json_object_put(req);
		return cmd_group(argc - i - 1, argv + i + 1);
	}
	if (!mnt || i >= argc || !req)
		usage();
	if (!strcmp(argv[i], "list") && argc == i + 1) {
		json_object_object_add(req, "op", json_object_new_string("list"));
	} else if (!strcmp(argv[i], "set-policy") && argc == i + 3) {
		json_object_object_add(req, "op", json_object_new_string("set-policy"));
		json_object_object_add(req, "device", json_object_new_string(argv[i + 1]));
		json_object_object_add(req, "policy", json_object_new_string(argv[i + 2]));
	} else if (!strcmp(argv[i], "path") && argc == i + 3) {
		json_object_object_add(req, "op", json_object_new_string("path"));
		json_object_object_add(req, "action", json_object_new_string(argv[i + 1]));
		json_object_object_add(req, "path", json_object_new_string(argv[i + 2]));
	} else {
		usage();
	}
	json_object_object_add(req, "cmd", json_object_new_string("mpath"));
	ret = ctl_connect(mnt, &c);
	if (ret) {
		json_object_put(req);
		fprintf(stderr, "vmfs-mpath: %s: %s\n", mnt,
			ret == -EINVAL ? "not under a vmfsd mount" :
			ret == -ECONNREFUSED ? "no vmfsd answers for that mount" :
			strerror(-ret));
		return 1;
	}
	ret = ctl_call(c, req, NULL, NULL, &resp, msg, sizeof(msg));
	ctl_close(c);
	if (ret) {
		fprintf(stderr, "vmfs-mpath: %s\n", msg);
		return 1;
	}
	if (json)
		printf("%s\n", json_object_to_json_string_ext(resp,
				JSON_C_TO_STRING_PRETTY));
	else if (!strcmp(argv[i], "list"))
		print_list(resp);
	else
		printf("ok\n");
	json_object_put(resp);
	return 0;
}
