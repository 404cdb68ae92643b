/*
 * vmkfstools - volume and file tool, VMware's flags.  PATH arguments are
 * paths under a vmfsd mount; the tool finds that host's daemon from them
 * (vmfsd/ctl.h) and asks it.
 *
 *   vmkfstools -P [-h] PATH      volume information
 *   vmkfstools -D PATH           a file's lock, its owner and its attributes
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmfsd/ctl.h"

static bool human;

static void usage(FILE *f)
{
	fprintf(f, "usage: vmkfstools -P [-h] PATH    volume information\n"
		   "       vmkfstools -D PATH         lock and owner of a file\n"
		   "PATH is any path under a vmfsd mount.\n");
}

static const char *size_str(uint64_t b, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)b;
	unsigned u = 0;

	if (!human) {
		snprintf(buf, len, "%llu", (unsigned long long)b);
		return buf;
	}
	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", d, unit[u]);
	return buf;
}

static uint64_t u64(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_uint64(v) : 0;
}

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

/* Ask the daemon behind path; prints the error and returns NULL. */
static struct json_object *ask(const char *path, const char *cmd, bool with_path)
{
	struct json_object *req = json_object_new_object(), *resp;
	char msg[600];
	ctl_conn *c;
	int ret = ctl_connect(path, &c);

	if (ret) {
		json_object_put(req);
		if (ret == -EINVAL)
			fprintf(stderr, "vmkfstools: %s is not under a vmfsd mount\n",
				path);
		else if (ret == -ECONNREFUSED)
			fprintf(stderr, "vmkfstools: %s: no vmfsd answers for that "
				"mount (is it still running?)\n", path);
		else
			fprintf(stderr, "vmkfstools: %s: %s\n", path, strerror(-ret));
		return NULL;
	}
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (with_path)
		json_object_object_add(req, "path",
				       json_object_new_string(ctl_conn_rel(c)));
	ret = ctl_call(c, req, NULL, NULL, &resp, msg, sizeof(msg));
	ctl_close(c);
	if (ret) {
		if (with_path)
			fprintf(stderr, "vmkfstools: %s: %s\n", path, msg);
		else
			fprintf(stderr, "vmkfstools: %s\n", msg);
		return NULL;
	}
	return resp;
}

static int volume_info(const char *path)
{
	struct json_object *r = ask(path, "info", false), *exts;
	char a[32], b[32];
	uint64_t bs;
	size_t n;

	if (!r)
		return 1;
	bs = u64(r, "block_size");
	json_object_object_get_ex(r, "extents", &exts);
	n = exts ? json_object_array_length(exts) : 0;
	printf("VMFS volume '%s' spanning %zu extent%s.\n", str(r, "label"), n,
	       n == 1 ? "" : "s");
	printf("UUID: %s\n", str(r, "uuid"));
	printf("Mounted at %s by host '%s'", str(r, "mount"), str(r, "host"));
	if (json_object_get_boolean(json_object_object_get(r, "read_only")))
		printf(", read-only\n");
	else
		printf(", read-write (heartbeat slot %llu, locks by %s)\n",
		       (unsigned long long)u64(r, "slot"), str(r, "lock_method"));
	printf("Capacity %s (%llu file blocks * %llu), %s avail, file block size %s\n",
	       size_str(u64(r, "capacity"), a, sizeof(a)),
	       (unsigned long long)(bs ? u64(r, "capacity") / bs : 0),
	       (unsigned long long)bs, size_str(u64(r, "free"), b, sizeof(b)),
	       size_str(bs, (char[32]){ 0 }, 32));
	printf("File descriptors: %llu, %llu free; sub-block %llu bytes, "
	       "sector %llu bytes; up to %llu hosts\n",
	       (unsigned long long)u64(r, "files"),
	       (unsigned long long)u64(r, "files_free"),
	       (unsigned long long)u64(r, "sub_block_size"),
	       (unsigned long long)u64(r, "sector"),
	       (unsigned long long)u64(r, "max_hosts"));
	if (u64(r, "hb_interval_ms"))
		printf("Heartbeat: every %llu ms, dead after %llu ms, fences "
		       "itself after %llu ms\n",
		       (unsigned long long)u64(r, "hb_interval_ms"),
		       (unsigned long long)u64(r, "hb_timeout_ms"),
		       (unsigned long long)u64(r, "fence_ms"));
	printf("Extents spanned:\n");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(exts, i);

		printf("  %zu: %s  size %s, free %s\n", i, str(e, "device"),
		       size_str(u64(e, "size"), a, sizeof(a)),
		       size_str(u64(e, "free"), b, sizeof(b)));
	}
	json_object_put(r);
	return 0;
}

static int lock_info(const char *path)
{
	struct json_object *r = ask(path, "lockinfo", true), *hs;
	size_t n;

	if (!r)
		return 1;
	if (json_object_object_get_ex(r, "holders", &hs)) {
		n = json_object_array_length(hs);
		printf("Lock [extent %llu offset %llu v %llu, hb offset %llu, "
		       "mode %s, %zu holder%s]\n",
		       (unsigned long long)u64(r, "lock_extent"),
		       (unsigned long long)u64(r, "lock_offset"),
		       (unsigned long long)u64(r, "lock_version"),
		       (unsigned long long)u64(r, "hb_offset"),
		       str(r, "lock_mode"), n, n == 1 ? "" : "s");
		for (size_t i = 0; i < n; i++) {
			struct json_object *h = json_object_array_get_idx(hs, i);

			printf("  owner: host '%s' uuid %s slot %llu gen %llu (%s)\n",
			       str(h, "host"), str(h, "host_uuid"),
			       (unsigned long long)u64(h, "slot"),
			       (unsigned long long)u64(h, "gen"),
			       str(h, "status"));
		}
		printf("  this host: %llu read-write open%s, %llu read-only\n",
		       (unsigned long long)u64(r, "local_opens_rw"),
		       u64(r, "local_opens_rw") == 1 ? "" : "s",
		       (unsigned long long)u64(r, "local_opens_ro"));
	} else {
		printf("Lock: %s\n", str(r, "lock"));
	}
	printf("Addr 0x%llx, gen %llu, links %llu, type %s, uid %llu, gid %llu, "
	       "mode %llo\n", (unsigned long long)u64(r, "addr"),
	       (unsigned long long)u64(r, "gen"),
	       (unsigned long long)u64(r, "links"), str(r, "type"),
	       (unsigned long long)u64(r, "uid"), (unsigned long long)u64(r, "gid"),
	       (unsigned long long)u64(r, "mode"));
	printf("len %llu, allocated %llu\n", (unsigned long long)u64(r, "size"),
	       (unsigned long long)u64(r, "allocated"));
	json_object_put(r);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "queryfs", no_argument, NULL, 'P' },
		{ "lock", no_argument, NULL, 'D' },
		{ "humanreadable", no_argument, NULL, 'h' },
		{ "help", no_argument, NULL, 'H' },
		{ 0 }
	};
	int c, what = 0;

	while ((c = getopt_long(argc, argv, "PDh", opts, NULL)) != -1) {
		switch (c) {
		case 'P':
		case 'D':
			if (what && what != c) {
				fprintf(stderr, "vmkfstools: one of -P, -D at a time\n");
				return 2;
			}
			what = c;
			break;
		case 'h': human = true; break;
		case 'H': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!what || optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	return what == 'P' ? volume_info(argv[optind]) : lock_info(argv[optind]);
}
