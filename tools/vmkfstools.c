/*
 * vmkfstools - volume and file tool, VMware's flags.  PATH arguments are
 * paths under a vmfsd mount; the tool finds that host's daemon from them
 * (vmfsd/ctl.h) and asks it.
 *
 *   vmkfstools -P [-h] PATH      volume information
 *   vmkfstools -D PATH           a file's lock, its owner and its attributes
 *   vmkfstools -c SIZE [-d thin|zeroedthick|eagerzeroedthick] DISK.vmdk
 *   vmkfstools -X SIZE DISK.vmdk extend
 *   vmkfstools -U DISK.vmdk      delete a disk and its extents
 *   vmkfstools -E OLD.vmdk NEW.vmdk   rename a disk and its extents
 *   vmkfstools -i SRC.vmdk DST.vmdk [-d TYPE]  clone
 *   vmkfstools -j DISK.vmdk      inflate thin to eagerzeroedthick
 *   vmkfstools -k DISK.vmdk      eager-zero a zeroedthick disk
 *   vmkfstools -K DISK.vmdk      give back a thin disk's zeroed blocks
 *   vmkfstools -t0 PATH          where the file's (or disk's) bytes live
 *   vmkfstools -r DEVICE RDM.vmdk   map a LUN (virtual compatibility)
 *   vmkfstools -z DEVICE RDM.vmdk   map a LUN (physical compatibility)
 *   vmkfstools -q RDM.vmdk       which LUN a mapping names, and its spec here
 *   vmkfstools -Z NEWDEVICE HEAD   span the volume onto a new LUN (online)
 *   vmkfstools --growfs DEVICE HEAD  add the space DEVICE (an extent's LUN)
 *                                gained (online)
 * HEAD is the volume's head extent as its host's vmfsd names it, or any
 * path under that vmfsd's mount.
 * Long operations show progress on a terminal; ^C stops them and vmfsd
 * removes what was half made.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "multipath/mp.h"
#include "vmfsd/ctl.h"

static bool human;

static void usage(FILE *f)
{
	fprintf(f, "usage: vmkfstools -P [-h] PATH    volume information\n"
		   "       vmkfstools -D PATH         lock and owner of a file\n"
		   "       vmkfstools -c SIZE [-d thin|zeroedthick|eagerzeroedthick] "
		   "DISK.vmdk\n"
		   "       vmkfstools -X SIZE DISK.vmdk   extend a disk\n"
		   "       vmkfstools -U DISK.vmdk        delete a disk\n"
		   "       vmkfstools -E OLD.vmdk NEW.vmdk  rename a disk\n"
		   "       vmkfstools -i SRC.vmdk DST.vmdk [-d TYPE]  clone a disk\n"
		   "       vmkfstools -j|-k|-K DISK.vmdk  inflate, eager-zero, "
		   "punch out zeros\n"
		   "       vmkfstools -t0 PATH        block map of a file or disk\n"
		   "       vmkfstools -r|-z DEVICE RDM.vmdk  map a LUN (virtual / "
		   "physical compatibility)\n"
		   "       vmkfstools -q RDM.vmdk     the LUN a mapping names\n"
		   "       vmkfstools -Z NEWDEVICE HEAD   span a volume onto a new LUN\n"
		   "       vmkfstools --growfs DEVICE HEAD  grow a volume into its "
		   "enlarged LUN\n"
		   "HEAD: the volume's head extent (as vmfsd names it) or a path "
		   "under the mount.\n"
		   "PATH is any path under a vmfsd mount; SIZE takes k, m, g, t.\n");
}

static bool tty;
static int last_pct = -1;

static void show_progress(void *arg, const char *what, uint64_t done,
			  uint64_t total)
{
	int pct = total ? (int)(done * 100 / total) : 0;

	(void)arg;
	if (!tty || pct == last_pct)
		return;
	last_pct = pct;
	fprintf(stderr, "\r%s: %d%% done.", what, pct);
	if (pct == 100)
		fputc('\n', stderr);
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

/* Ask the daemon behind path; prints the error and returns NULL.  extra
 * (consumed) carries further arguments. */
static struct json_object *ask_with(const char *path, const char *cmd,
				    bool with_path, struct json_object *extra)
{
	struct json_object *req = extra ? extra : json_object_new_object(), *resp;
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
	ret = ctl_call(c, req, show_progress, NULL, &resp, msg, sizeof(msg));
	ctl_close(c);
	if (last_pct >= 0 && last_pct < 100)
		fputc('\n', stderr);
	if (ret) {
		if (with_path)
			fprintf(stderr, "vmkfstools: %s: %s\n", path, msg);
		else
			fprintf(stderr, "vmkfstools: %s\n", msg);
		return NULL;
	}
	return resp;
}

static struct json_object *ask(const char *path, const char *cmd, bool with_path)
{
	return ask_with(path, cmd, with_path, NULL);
}

static int parse_disk_size(const char *s, uint64_t *v)
{
	if (mp_parse_size(s, v) || !*v || *v % 512) {
		fprintf(stderr, "vmkfstools: size '%s': a positive multiple of "
			"512 bytes (suffixes k, m, g, t)\n", s);
		return -1;
	}
	return 0;
}

static int disk_op(const char *cmd, const char *path, const char *to,
		   const char *size, const char *type)
{
	struct json_object *req = json_object_new_object(), *r;
	char rel[4096];

	if (size) {
		uint64_t v;

		if (parse_disk_size(size, &v)) {
			json_object_put(req);
			return 1;
		}
		json_object_object_add(req, "size", json_object_new_uint64(v));
	}
	if (type)
		json_object_object_add(req, "type", json_object_new_string(type));
	if (to) {
		char mnt_a[4096], mnt_b[4096], rel_b[4096];

		if (ctl_find_mount(path, mnt_a, sizeof(mnt_a), rel, sizeof(rel)) ||
		    ctl_find_mount(to, mnt_b, sizeof(mnt_b), rel_b, sizeof(rel_b)) ||
		    strcmp(mnt_a, mnt_b)) {
			fprintf(stderr, "vmkfstools: %s and %s are not on the same "
				"vmfsd mount\n", path, to);
			json_object_put(req);
			return 1;
		}
		json_object_object_add(req, "to", json_object_new_string(rel_b));
	}
	r = ask_with(path, cmd, true, req);
	if (!r)
		return 1;
	json_object_put(r);
	return 0;
}

static int file_map(const char *path)
{
	struct json_object *r = ask(path, "filemap", true), *m;
	size_t n;

	if (!r)
		return 1;
	json_object_object_get_ex(r, "map", &m);
	n = m ? json_object_array_length(m) : 0;
	printf("Mapping for file %s (%llu bytes in size):\n", str(r, "file"),
	       (unsigned long long)u64(r, "size"));
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(m, i);
		const char *st = str(e, "state");
		uint64_t off = u64(e, "off"), len = u64(e, "len");

		if (!strcmp(st, "hole"))
			printf("[%14llu: %14llu] --> [NOMP -- hole]\n",
			       (unsigned long long)off, (unsigned long long)len);
		else
			printf("[%14llu: %14llu] --> [%s -- extent %llu: %llu --> %llu)]\n",
			       (unsigned long long)off, (unsigned long long)len,
			       !strcmp(st, "tbz") ? "TBZ " : !strcmp(st, "inline") ?
			       "FD  " : "VMFS", (unsigned long long)u64(e, "extent"),
			       (unsigned long long)u64(e, "lun_off"),
			       (unsigned long long)(u64(e, "lun_off") + len));
	}
	json_object_put(r);
	return 0;
}

/* -r / -z: DEVICE is a spec (or identity) among the host's --lun LUNs */
static int rdm_create(const char *device, const char *path, bool physical)
{
	struct json_object *req = json_object_new_object(), *r;

	json_object_object_add(req, "device", json_object_new_string(device));
	json_object_object_add(req, "physical", json_object_new_boolean(physical));
	r = ask_with(path, "rdm_create", true, req);
	if (!r)
		return 1;
	json_object_put(r);
	return 0;
}

static int rdm_query(const char *path)
{
	struct json_object *r = ask(path, "rdm_resolve", true);

	if (!r)
		return 1;
	printf("Disk %s is a %s Raw Device Mapping\n", path,
	       strcmp(str(r, "mode"), "physical") ? "Non-passthrough" :
	       "Passthrough");
	printf("Maps to: %s (", str(r, "id"));
	if (str(r, "vendor")[0] || str(r, "product")[0])
		printf("%s %s, ", str(r, "vendor"), str(r, "product"));
	if (str(r, "serial")[0])
		printf("serial %s, ", str(r, "serial"));
	printf("%llu bytes of %llu-byte sectors)\n",
	       (unsigned long long)u64(r, "capacity"),
	       (unsigned long long)u64(r, "sector"));
	printf("On this host: %s\n", str(r, "spec"));
	printf("Mapping file: %s (made by host '%s' from %s)\n", str(r, "file"),
	       str(r, "mapped_by"), str(r, "mapped_spec"));
	json_object_put(r);
	return 0;
}

/* The mount whose vmfsd serves the volume with head extent head (a spec),
 * or the mount head lies under. */
static int find_volume(const char *head, char *mnt, size_t len)
{
	char rel[4096], *line = NULL;
	size_t cap = 0;
	FILE *f;
	int found = 0;

	if (ctl_find_mount(head, mnt, len, rel, sizeof(rel)) == 0)
		return 0;
	f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return -1;
	while (!found && getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *save = NULL, *fld[5];
		struct json_object *r = NULL, *exts, *e0;
		int i;

		if (!sep || strncmp(sep + 3, "fuse.vmfs ", 10))
			continue;
		*sep = 0;
		for (i = 0; i < 5 && (fld[i] = strtok_r(i ? NULL : line, " ", &save)); i++)
			;
		if (i < 5)
			continue;
		{
			struct json_object *req;
			ctl_conn *c;
			char msg[256];

			if (ctl_connect(fld[4], &c))
				continue;
			req = json_object_new_object();
			json_object_object_add(req, "cmd", json_object_new_string("info"));
			if (ctl_call(c, req, NULL, NULL, &r, msg, sizeof(msg)))
				r = NULL;
			ctl_close(c);
		}
		if (r && json_object_object_get_ex(r, "extents", &exts) &&
		    (e0 = json_object_array_get_idx(exts, 0)) &&
		    !strcmp(str(e0, "device"), head)) {
			snprintf(mnt, len, "%s", fld[4]);
			found = 1;
		}
		if (r)
			json_object_put(r);
	}
	free(line);
	fclose(f);
	return found ? 0 : -1;
}

/* -Z / --growfs */
static int geometry(const char *cmd, const char *device, const char *head)
{
	struct json_object *req = json_object_new_object(), *r;
	char mnt[4096], a[32];

	if (find_volume(head, mnt, sizeof(mnt))) {
		fprintf(stderr, "vmkfstools: no vmfsd here serves a volume whose "
			"head extent is %s\n", head);
		json_object_put(req);
		return 1;
	}
	json_object_object_add(req, "device", json_object_new_string(device));
	r = ask_with(mnt, cmd, false, req);
	if (!r)
		return 1;
	printf("Volume at %s: %llu extents, capacity %s\n", mnt,
	       (unsigned long long)u64(r, "extents"),
	       size_str(u64(r, "capacity"), a, sizeof(a)));
	json_object_put(r);
	return 0;
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
	printf("Used %s, provisioned %s (%.0f%% of capacity%s); space alarm: %s\n",
	       size_str(u64(r, "used"), a, sizeof(a)),
	       size_str(u64(r, "provisioned"), b, sizeof(b)),
	       u64(r, "capacity") ? 100.0 * (double)u64(r, "provisioned") /
	       (double)u64(r, "capacity") : 0.0,
	       u64(r, "provisioned") > u64(r, "capacity") ? ": thin overcommit" : "",
	       str(r, "space_alarm"));
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
	printf("Through FUSE since mount: %s written (%s of it copied before "
	       "the device), %s read\n",
	       size_str(u64(r, "fuse_bytes_written"), a, sizeof(a)),
	       size_str(u64(r, "fuse_bytes_copied_in"), b, sizeof(b)),
	       size_str(u64(r, "fuse_bytes_read"), (char[32]){ 0 }, 32));
	{
		struct json_object *kc = NULL;
		bool on = json_object_object_get_ex(r, "kcache", &kc) &&
			  json_object_get_boolean(kc);

		printf("Kernel caching of directories held: %s; %llu lookups, "
		       "%llu getattrs, %llu replies cacheable, %llu "
		       "invalidations\n", on ? "on" : "off",
		       (unsigned long long)u64(r, "fuse_lookups"),
		       (unsigned long long)u64(r, "fuse_getattrs"),
		       (unsigned long long)u64(r, "kcache_replies"),
		       (unsigned long long)u64(r, "kcache_drops"));
	}
	printf("Read-ahead: %llu reads, %llu answered from windows read ahead "
	       "(%llu of them waited for it), %llu windows read, %llu found "
	       "stale\n",
	       (unsigned long long)u64(r, "fuse_reads"),
	       (unsigned long long)u64(r, "ra_hits"),
	       (unsigned long long)u64(r, "ra_waits"),
	       (unsigned long long)u64(r, "ra_windows"),
	       (unsigned long long)u64(r, "ra_stale"));
	printf("Extents spanned:\n");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(exts, i);
		struct json_object *io = NULL;

		printf("  %zu: %s  size %s, free %s\n", i, str(e, "device"),
		       size_str(u64(e, "size"), a, sizeof(a)),
		       size_str(u64(e, "free"), b, sizeof(b)));
		json_object_object_get_ex(e, "io", &io);
		if (io)
			printf("     I/O since mount: %llu reads (%s), %llu writes "
			       "(%s), %llu flushes, %llu compare-and-writes, "
			       "%llu discards, %llu errors\n",
			       (unsigned long long)u64(io, "reads"),
			       size_str(u64(io, "read_bytes"), a, sizeof(a)),
			       (unsigned long long)u64(io, "writes"),
			       size_str(u64(io, "write_bytes"), b, sizeof(b)),
			       (unsigned long long)u64(io, "flushes"),
			       (unsigned long long)u64(io, "compare_and_writes"),
			       (unsigned long long)u64(io, "discards"),
			       (unsigned long long)u64(io, "errors"));
	}
	json_object_put(r);
	return 0;
}

static int lock_info(const char *path)
{
	struct json_object *r = ask(path, "lockinfo", true), *hs, *w;
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
		if (json_object_object_get_ex(r, "waiter", &w))
			printf("  waiting: host '%s' uuid %s slot %llu gen %llu "
			       "(%s), for mode %s\n", str(w, "host"),
			       str(w, "host_uuid"),
			       (unsigned long long)u64(w, "slot"),
			       (unsigned long long)u64(w, "gen"),
			       str(w, "status"), str(w, "mode"));
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
		{ "createvirtualdisk", required_argument, NULL, 'c' },
		{ "diskformat", required_argument, NULL, 'd' },
		{ "extendvirtualdisk", required_argument, NULL, 'X' },
		{ "deletevirtualdisk", no_argument, NULL, 'U' },
		{ "renamevirtualdisk", no_argument, NULL, 'E' },
		{ "clonevirtualdisk", no_argument, NULL, 'i' },
		{ "inflatedisk", no_argument, NULL, 'j' },
		{ "eagerzero", no_argument, NULL, 'k' },
		{ "punchzero", no_argument, NULL, 'K' },
		{ "queryblockmap", required_argument, NULL, 't' },
		{ "createrdm", required_argument, NULL, 'r' },
		{ "createrdmpassthru", required_argument, NULL, 'z' },
		{ "queryrdm", no_argument, NULL, 'q' },
		{ "spanfs", required_argument, NULL, 'Z' },
		{ "growfs", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'H' },
		{ 0 }
	};
	const char *size = NULL, *type = NULL, *device = NULL;
	int c, what = 0;

	tty = isatty(2);
	while ((c = getopt_long(argc, argv, "PDhc:d:X:UEijkKt:r:z:qZ:", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (strcmp(optarg, "0")) {
				fprintf(stderr, "vmkfstools: only -t0 is supported\n");
				return 2;
			}
			/* fall through */
		case 'P': case 'D': case 'c': case 'X': case 'U': case 'E':
		case 'i': case 'j': case 'k': case 'K': case 'r': case 'z': case 'q':
		case 'Z': case 'G':
			if (what && what != c) {
				fprintf(stderr, "vmkfstools: one of -P, -D, -c, -X, "
					"-U, -E, -i, -j, -k, -K, -r, -z, -q, -Z, "
					"--growfs at a time\n");
				return 2;
			}
			what = c;
			if (c == 'c' || c == 'X')
				size = optarg;
			if (c == 'r' || c == 'z' || c == 'Z' || c == 'G')
				device = optarg;
			break;
		case 'd': type = optarg; break;
		case 'h': human = true; break;
		case 'H': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!what || optind != argc - (what == 'E' || what == 'i' ? 2 : 1) ||
	    (type && what != 'c' && what != 'i')) {
		usage(stderr);
		return 2;
	}
	switch (what) {
	case 'P': return volume_info(argv[optind]);
	case 'D': return lock_info(argv[optind]);
	case 'c': return disk_op("disk_create", argv[optind], NULL, size,
				 type ? type : "zeroedthick");
	case 'X': return disk_op("disk_extend", argv[optind], NULL, size, NULL);
	case 'U': return disk_op("disk_delete", argv[optind], NULL, NULL, NULL);
	case 'i': return disk_op("disk_clone", argv[optind], argv[optind + 1],
				 NULL, type ? type : "zeroedthick");
	case 'j': return disk_op("disk_inflate", argv[optind], NULL, NULL, NULL);
	case 'k': return disk_op("disk_eagerzero", argv[optind], NULL, NULL, NULL);
	case 'K': return disk_op("disk_punchzero", argv[optind], NULL, NULL, NULL);
	case 't': return file_map(argv[optind]);
	case 'r': case 'z': return rdm_create(device, argv[optind], what == 'z');
	case 'q': return rdm_query(argv[optind]);
	case 'Z': return geometry("vol_span", device, argv[optind]);
	case 'G': return geometry("vol_grow", device, argv[optind]);
	default: return disk_op("disk_rename", argv[optind], argv[optind + 1],
				NULL, NULL);
	}
}
