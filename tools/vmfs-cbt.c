/*
 * vmfs-cbt - changed-block tracking of a virtual disk, through the vmfsd
 * serving the mount the disk lies under (found from the path, as
 * vmkfstools does).
 *
 *   vmfs-cbt enable [--block-size SIZE] DISK.vmdk
 *   vmfs-cbt disable DISK.vmdk
 *   vmfs-cbt checkpoint DISK.vmdk     prints the change ID to use next time
 *   vmfs-cbt query DISK.vmdk --since ID|'*' [--offset N] [--length N]
 *
 * query prints "OFFSET LENGTH" (bytes) per changed area; --json prints the
 * daemon's answer (its pages joined: vmfsd answers at most 65536 extents
 * at a time, VMFS_CBT_PAGE=N asks for pages of N, for tests).  A query naming a change ID from before a
 * reset of tracking fails (exit 1) with "tracking was reset: take a full
 * backup".  Exit status: 0 done, 1 refused or unreachable, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "multipath/mp.h"
#include "vmfsd/ctl.h"

static void usage(FILE *f, int code)
{
	fprintf(f, "usage: vmfs-cbt enable [--block-size SIZE] DISK.vmdk\n"
		   "       vmfs-cbt disable DISK.vmdk\n"
		   "       vmfs-cbt checkpoint DISK.vmdk\n"
		   "       vmfs-cbt query DISK.vmdk --since ID|'*' [--offset N] "
		   "[--length N]\n"
		   "options: --json (the daemon's answer as JSON)\n"
		   "ID is a change ID as checkpoint prints it, e.g.\n"
		   "  \"52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/4\"; '*' "
		   "= every allocated area\n");
	exit(code);
}

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static unsigned long long num(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_uint64(v) : 0;
}

static int size_opt(const char *opt, const char *s, uint64_t *v)
{
	if (mp_parse_size(s, v)) {
		fprintf(stderr, "vmfs-cbt: %s '%s': a number of bytes (k, m, g, "
			"t suffixes)\n", opt, s);
		exit(2);
	}
	return 0;
}

/*
 * A query, page by page (vmfsd answers at most so many extents at once
 * and says where to go on: next_offset).  Text: "OFFSET LENGTH" lines as
 * pages come; JSON: the first answer with every page's extents.
 */
static int query(ctl_conn *c, const char *since, uint64_t off, uint64_t len,
		 bool json, char *msg, size_t mlen)
{
	struct json_object *all = NULL, *resp, *ext, *o;
	uint64_t end = off + len < off ? UINT64_MAX : off + len, changed = 0;
	/* the page size, for tests (vmfsd's default otherwise) */
	const char *page = getenv("VMFS_CBT_PAGE");
	int ret = 0;

	for (;;) {
		struct json_object *req = json_object_new_object();

		json_object_object_add(req, "cmd", json_object_new_string("cbt_query"));
		json_object_object_add(req, "path",
				       json_object_new_string(ctl_conn_rel(c)));
		json_object_object_add(req, "since", json_object_new_string(since));
		json_object_object_add(req, "offset", json_object_new_uint64(off));
		json_object_object_add(req, "length",
				       json_object_new_uint64(end - off));
		if (page)
			json_object_object_add(req, "max_extents",
					       json_object_new_uint64(strtoull(page, NULL, 10)));
		ret = ctl_call(c, req, NULL, NULL, &resp, msg, mlen);
		if (ret)
			break;
		changed += num(resp, "changed");
		if (json_object_object_get_ex(resp, "extents", &ext)) {
			for (size_t i = 0; i < json_object_array_length(ext); i++) {
				struct json_object *e = json_object_array_get_idx(ext, i);

				if (!json)
					printf("%llu %llu\n", num(e, "offset"),
					       num(e, "length"));
				else if (all && json_object_object_get_ex(all, "extents", &o))
					json_object_array_add(o, json_object_get(e));
			}
		}
		if (json_object_object_get_ex(resp, "next_offset", &o) &&
		    json_object_get_uint64(o) > off) {
			off = json_object_get_uint64(o);
		} else {
			off = end;
		}
		if (!all) {
			all = resp;
			json_object_object_del(all, "next_offset");
		} else {
			json_object_put(resp);
		}
		if (off >= end)
			break;
	}
	if (!ret && json) {
		json_object_object_add(all, "changed", json_object_new_uint64(changed));
		printf("%s\n", json_object_to_json_string_ext(all,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	if (all)
		json_object_put(all);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct json_object *req, *resp;
	const char *since = NULL, *verb, *disk, *cmd;
	uint64_t off = 0, len = 0, bs = 0;
	bool json = false, have_len = false;
	char msg[1024];
	ctl_conn *c;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': since = optarg; break;
		case 'o': size_opt("--offset", optarg, &off); break;
		case 'l': size_opt("--length", optarg, &len); have_len = true; break;
		case 'b': size_opt("--block-size", optarg, &bs); break;
		case 'j': json = true; break;
		case 'h': usage(stdout, 0); break;
		default: usage(stderr, 2);
		}
	}
	if (argc - optind != 2)
		usage(stderr, 2);
	verb = argv[optind];
	disk = argv[optind + 1];
	if (!strcmp(verb, "enable"))
		cmd = "cbt_enable";
	else if (!strcmp(verb, "disable"))
		cmd = "cbt_disable";
	else if (!strcmp(verb, "checkpoint"))
		cmd = "cbt_checkpoint";
	else if (!strcmp(verb, "query"))
		cmd = "cbt_query";
	else
		usage(stderr, 2);
	if (!strcmp(verb, "query") && !since) {
		fprintf(stderr, "vmfs-cbt: query needs --since ID|'*'\n");
		return 2;
	}
	ret = ctl_connect(disk, &c);
	if (ret) {
		if (ret == -EINVAL)
			fprintf(stderr, "vmfs-cbt: %s is not under a vmfsd mount\n",
				disk);
		else if (ret == -ECONNREFUSED)
			fprintf(stderr, "vmfs-cbt: %s: no vmfsd answers for that "
				"mount (is it still running?)\n", disk);
		else
			fprintf(stderr, "vmfs-cbt: %s: %s\n", disk, strerror(-ret));
		return 1;
	}
	if (!strcmp(verb, "query")) {
		ret = query(c, since, off, have_len ? len : UINT64_MAX - off, json,
			    msg, sizeof(msg));
		ctl_close(c);
		if (ret)
			fprintf(stderr, "vmfs-cbt: %s\n", msg);
		return ret ? 1 : 0;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	json_object_object_add(req, "path", json_object_new_string(ctl_conn_rel(c)));
	if (bs)
		json_object_object_add(req, "block_size", json_object_new_uint64(bs));
	ret = ctl_call(c, req, NULL, NULL, &resp, msg, sizeof(msg));
	ctl_close(c);
	if (ret) {
		fprintf(stderr, "vmfs-cbt: %s\n", msg);
		return 1;
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(resp,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (!strcmp(verb, "checkpoint")) {
		printf("%s\n", str(resp, "change_id"));
	} else if (!strcmp(verb, "enable")) {
		printf("tracking file %s, block size %llu, disk size %llu, next "
		       "change ID %s%s\n", str(resp, "tracking_file"),
		       num(resp, "block_size"), num(resp, "size"),
		       str(resp, "current"),
		       num(resp, "already") ? " (already enabled)" : "");
	}
	json_object_put(resp);
	return 0;
}
