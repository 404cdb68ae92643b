/*
 * vmfs-lk - look at a LUN's heartbeat region and lock records, for people
 * debugging a cluster.  Read-only except for `format`.
 *
 *   vmfs-lk slots SPEC [--region OFF] [--watch MS]
 *       the region header and every slot; with --watch, read twice MS
 *       apart and say which live slots beat in between
 *   vmfs-lk locks SPEC OFF LEN
 *       every lock record found in [OFF, OFF+LEN) with its holders
 *   vmfs-lk format SPEC [--region OFF] [--slots N] [--interval MS]
 *                       [--dead MS] [--locks OFF:COUNT]
 *       write an empty heartbeat region (and free lock records)
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lockmgr/lk.h"
#include "lockmgr/ondisk.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmfs-lk slots SPEC [--region OFF] [--watch MS]\n"
		"       vmfs-lk locks SPEC OFF LEN\n"
		"       vmfs-lk format SPEC [--region OFF] [--slots N] "
		"[--interval MS] [--dead MS] [--locks OFF:COUNT]\n");
}

static int open_lun(const char *spec, unsigned flags, mp_lun **lun,
		    unsigned *ss)
{
	struct mp_open_opts o = { .flags = flags };
	struct mp_lun_info in;
	int ret = mp_lun_open(spec, &o, lun);

	if (ret) {
		fprintf(stderr, "vmfs-lk: %s: %s\n", spec, mp_strerror(ret));
		return ret;
	}
	mp_lun_get_info(*lun, &in);
	*ss = in.logical_sector;
	return 0;
}

static void print_uuid(const uint8_t *u)
{
	for (int i = 0; i < 16; i++)
		printf("%02x%s", u[i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
}

static const char *state_name(uint32_t s)
{
	return s == LK_SLOT_FREE ? "free" : s == LK_SLOT_LIVE ? "live" :
	       s == LK_SLOT_RECOVERING ? "recovering" : "?";
}

static void print_time(uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000ull);
	struct tm tm;
	char buf[64];

	if (!ns) {
		printf("-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%s.%03lluZ", buf, (unsigned long long)(ns / 1000000 % 1000));
}

static int cmd_slots(int argc, char **argv)
{
	uint64_t region = 0, watch = 0;
	unsigned char *buf = NULL, *again = NULL;
	struct lk_hdr h;
	mp_lun *lun;
	unsigned ss;
	size_t len;
	int ret, rc = 1, c;
	static const struct option opts[] = {
		{ "region", required_argument, NULL, 'r' },
		{ "watch", required_argument, NULL, 'w' },
		{ 0 }
	};

	while ((c = getopt_long(argc, argv, "r:w:", opts, NULL)) != -1) {
		if ((c == 'r' && mp_parse_size(optarg, &region)) ||
		    (c == 'w' && mp_parse_size(optarg, &watch)) || c == '?') {
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (open_lun(argv[optind], MP_OPEN_RDONLY, &lun, &ss))
		return 1;
	buf = mp_alloc_aligned(4096, ss);
	if (!buf || mp_lun_pread(lun, buf, ss, region) != (ssize_t)ss)
		goto out;
	ret = lk_hdr_in(buf, &h);
	if (ret) {
		fprintf(stderr, "vmfs-lk: no heartbeat region at %llu: %s\n",
			(unsigned long long)region, lk_strerror(ret));
		goto out;
	}
	printf("heartbeat region at %llu: %u slots of %u bytes, interval %u ms, "
	       "dead timeout %u ms\n  uuid ", (unsigned long long)region,
	       h.slots, h.slot_size, h.interval_ms, h.dead_ms);
	print_uuid(h.uuid);
	printf("\n");
	len = (size_t)h.slots * ss;
	free(buf);
	buf = mp_alloc_aligned(4096, len);
	again = mp_alloc_aligned(4096, len);
	if (!buf || !again)
		goto out;
	if (mp_lun_pread(lun, buf, len, region + ss) != (ssize_t)len)
		goto out;
	if (watch) {
		usleep((useconds_t)watch * 1000);
		if (mp_lun_pread(lun, again, len, region + ss) != (ssize_t)len)
			goto out;
	}
	printf("%5s %-10s %8s %10s  %-24s %-36s %s\n", "slot", "state", "gen",
	       "beats", "host", "uuid", "last write (host clock)");
	for (uint32_t i = 0; i < h.slots; i++) {
		const unsigned char *raw = (watch ? again : buf) + (size_t)i * ss;
		struct lk_slot s;

		ret = lk_slot_in(raw, &s);
		if (ret) {
			printf("%5u %s\n", i, lk_strerror(ret));
			continue;
		}
		if (s.state == LK_SLOT_FREE && s.gen == 0)
			continue;   /* never used */
		printf("%5u %-10s %8llu %10llu  %-24.24s ", i, state_name(s.state),
		       (unsigned long long)s.gen, (unsigned long long)s.counter,
		       s.host_name[0] ? s.host_name : "-");
		print_uuid(s.host_uuid);
		printf(" ");
		print_time(s.wall_ns);
		if (watch && s.state == LK_SLOT_LIVE)
			printf("  %s", memcmp(raw, buf + (size_t)i * ss, ss) ?
					"beating" : "NOT BEATING");
		printf("\n");
		if (s.journal_len)
			printf("      journal %llu+%llu\n",
			       (unsigned long long)s.journal_off,
			       (unsigned long long)s.journal_len);
		if (s.state == LK_SLOT_RECOVERING)
			printf("      being recovered by slot %u generation %llu\n",
			       s.rec_slot, (unsigned long long)s.rec_gen);
	}
	rc = 0;
out:
	free(buf);
	free(again);
	mp_lun_close(lun);
	return rc;
}

static int cmd_locks(int argc, char **argv)
{
	uint64_t off, len;
	unsigned char *buf = NULL;
	unsigned found = 0;
	mp_lun *lun;
	unsigned ss;
	int rc = 1;

	if (argc != 3 || mp_parse_size(argv[1], &off) || mp_parse_size(argv[2], &len) ||
	    len > (256ull << 20)) {
		usage(stderr);
		return 2;
	}
	if (open_lun(argv[0], MP_OPEN_RDONLY, &lun, &ss))
		return 1;
	if (off % ss || len % ss) {
		fprintf(stderr, "vmfs-lk: OFF and LEN must be multiples of %u\n", ss);
		goto out;
	}
	buf = mp_alloc_aligned(4096, len);
	if (!buf || mp_lun_pread(lun, buf, len, off) != (ssize_t)len) {
		fprintf(stderr, "vmfs-lk: read failed\n");
		goto out;
	}
	for (uint64_t p = 0; p < len; p += ss) {
		struct lk_lockrec r;
		int ret = lk_lockrec_in(buf + p, &r);

		if (ret == -LK_E_BADMAGIC)
			continue;
		found++;
		if (ret) {
			printf("lock at %llu: %s\n", (unsigned long long)(off + p),
			       lk_strerror(ret));
			continue;
		}
		printf("lock at %llu: %s, version %llu, changed ",
		       (unsigned long long)(off + p), lk_mode_name(r.mode),
		       (unsigned long long)r.version);
		print_time(r.wall_ns);
		printf("%s\n", r.self_off != off + p ? " (MISPLACED)" : "");
		for (uint32_t i = 0; i < r.nholders; i++)
			printf("    holder: slot %u generation %llu\n",
			       r.holders[i].slot,
			       (unsigned long long)r.holders[i].gen);
		if (r.waiter_mode != LK_FREE)
			printf("    waiter: slot %u generation %llu, for %s\n",
			       r.waiter.slot, (unsigned long long)r.waiter.gen,
			       lk_mode_name(r.waiter_mode));
	}
	printf("%u lock record(s)\n", found);
	rc = 0;
out:
	free(buf);
	mp_lun_close(lun);
	return rc;
}

static int cmd_format(int argc, char **argv)
{
	struct lk_format_params p = { 0 };
	uint64_t region = 0, v, loff = 0, lcount = 0;
	mp_lun *lun;
	unsigned ss;
	int c, ret, rc = 1;
	static const struct option opts[] = {
		{ "region", required_argument, NULL, 'r' },
		{ "slots", required_argument, NULL, 's' },
		{ "interval", required_argument, NULL, 'i' },
		{ "dead", required_argument, NULL, 'd' },
		{ "locks", required_argument, NULL, 'l' },
		{ 0 }
	};

	while ((c = getopt_long(argc, argv, "r:s:i:d:l:", opts, NULL)) != -1) {
		char *colon;

		switch (c) {
		case 'r': if (mp_parse_size(optarg, &region)) goto bad; break;
		case 's': if (mp_parse_size(optarg, &v)) goto bad; p.slots = (uint32_t)v; break;
		case 'i': if (mp_parse_size(optarg, &v)) goto bad; p.interval_ms = (uint32_t)v; break;
		case 'd': if (mp_parse_size(optarg, &v)) goto bad; p.dead_ms = (uint32_t)v; break;
		case 'l':
			colon = strchr(optarg, ':');
			if (!colon) goto bad;
			*colon = 0;
			if (mp_parse_size(optarg, &loff) || mp_parse_size(colon + 1, &lcount))
				goto bad;
			break;
		default: goto bad;
		}
	}
	if (optind != argc - 1)
		goto bad;
	if (open_lun(argv[optind], 0, &lun, &ss))
		return 1;
	if (getrandom(p.uuid, sizeof(p.uuid), 0) != sizeof(p.uuid)) {
		perror("vmfs-lk: getrandom");
		goto out;
	}
	ret = lk_format(lun, region, &p);
	if (ret) {
		fprintf(stderr, "vmfs-lk: format: %s\n", lk_strerror(ret));
		goto out;
	}
	for (uint64_t i = 0; i < lcount; i++) {
		ret = lk_lock_format(lun, loff + i * ss, p.uuid);
		if (ret) {
			fprintf(stderr, "vmfs-lk: lock format: %s\n", lk_strerror(ret));
			goto out;
		}
	}
	ret = mp_lun_flush(lun);
	if (ret)
		goto out;
	printf("heartbeat region written at %llu (%llu bytes)%s\n",
	       (unsigned long long)region,
	       (unsigned long long)lk_region_size(lun, p.slots),
	       lcount ? ", lock records too" : "");
	rc = 0;
out:
	mp_lun_close(lun);
	return rc;
bad:
	usage(stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		usage(argc < 2 ? stderr : stdout);
		return 2;
	}
	if (!strcmp(argv[1], "slots"))
		return cmd_slots(argc - 1, argv + 1);
	if (!strcmp(argv[1], "locks"))
		return cmd_locks(argc - 2, argv + 2);
	if (!strcmp(argv[1], "format"))
		return cmd_format(argc - 1, argv + 1);
	usage(stderr);
	return 2;
}
