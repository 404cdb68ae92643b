/*
 * vmfs-lun - look at a LUN through the device layer.
 *
 *   vmfs-lun info SPEC...          identity, geometry, capabilities
 *   vmfs-lun ready SPEC            TEST UNIT READY (a direct read on files)
 *   vmfs-lun dump SPEC OFFSET [LEN] hex dump (LEN default 512)
 *   vmfs-lun write SPEC OFFSET LEN BYTE [--fua] [--flush]
 *                                  fill a range with one byte value
 *
 * SPEC is anything mp_lun_open() takes: a file, a block device,
 * iscsi://HOST[:PORT]/IQN/LUN, or fault:OPTIONS:SPEC.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipath/mp.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: vmfs-lun info SPEC...\n"
		   "       vmfs-lun ready SPEC\n"
		   "       vmfs-lun dump SPEC OFFSET [LENGTH]\n"
		   "       vmfs-lun write SPEC OFFSET LENGTH BYTE [--fua] [--flush]\n"
		   "SPEC: PATH | file:PATH | iscsi://HOST[:PORT]/IQN/LUN | "
		   "fault:OPTIONS:SPEC\n");
}

static int open_lun(const char *spec, unsigned flags, mp_lun **lun)
{
	struct mp_open_opts o = { .flags = flags };
	int ret = mp_lun_open(spec, &o, lun);

	if (ret)
		fprintf(stderr, "vmfs-lun: %s: %s\n", spec, mp_strerror(ret));
	return ret;
}

static void print_caps(unsigned caps)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ MP_CAP_FUA, "fua" },
		{ MP_CAP_DISCARD, "discard" },
		{ MP_CAP_DISCARD_ZEROES, "discard-zeroes" },
		{ MP_CAP_ATS, "ats" },
		{ MP_CAP_ATS_EMULATED, "ats-emulated(this-machine-only)" },
		{ MP_CAP_RESERVE6, "reserve6" },
		{ MP_CAP_PR, "persistent-reservations" },
		{ MP_CAP_FAULT, "fault-injection" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (caps & names[i].bit)
			printf(" %s", names[i].name);
	printf("\n");
}

static int cmd_info(int argc, char **argv)
{
	int rc = 0;

	for (int i = 0; i < argc; i++) {
		struct mp_lun_info in;
		mp_lun *lun;

		if (open_lun(argv[i], MP_OPEN_RDONLY, &lun)) {
			rc = 1;
			continue;
		}
		mp_lun_get_info(lun, &in);
		printf("%s\n", argv[i]);
		printf("  id:           %s\n", in.id);
		if (in.serial[0])
			printf("  serial:       %s\n", in.serial);
		if (in.vendor[0] || in.product[0])
			printf("  vendor:       %s %s\n", in.vendor, in.product);
		printf("  backend:      %s\n", in.backend);
		printf("  capacity:     %llu bytes (%.2f GiB)\n",
		       (unsigned long long)in.capacity,
		       (double)in.capacity / (1 << 30));
		printf("  sectors:      logical %u, physical %u\n",
		       in.logical_sector, in.physical_sector);
		printf("  max CAW:      %u sectors\n", in.max_caw_sectors);
		printf("  capabilities:");
		print_caps(in.caps);
		mp_lun_close(lun);
	}
	return rc;
}

static int cmd_ready(const char *spec)
{
	mp_lun *lun;
	int ret;

	if (open_lun(spec, MP_OPEN_RDONLY, &lun))
		return 1;
	ret = mp_lun_test_ready(lun);
	printf("%s: %s\n", spec, ret ? mp_strerror(ret) : "ready");
	mp_lun_close(lun);
	return ret ? 1 : 0;
}

static int cmd_dump(const char *spec, const char *soff, const char *slen)
{
	uint64_t off, len = 512;
	struct mp_lun_info in;
	unsigned char *buf = NULL;
	mp_lun *lun;
	ssize_t n;
	int rc = 1;

	if (mp_parse_size(soff, &off) || (slen && mp_parse_size(slen, &len)) ||
	    len == 0 || len > (64ull << 20)) {
		fprintf(stderr, "vmfs-lun: bad offset or length\n");
		return 2;
	}
	if (open_lun(spec, MP_OPEN_RDONLY, &lun))
		return 1;
	mp_lun_get_info(lun, &in);
	if (off % in.logical_sector || len % in.logical_sector) {
		fprintf(stderr, "vmfs-lun: offset and length must be multiples "
			"of the %u-byte sector\n", in.logical_sector);
		goto close_lun;
	}
	buf = malloc(len);
	if (!buf)
		goto close_lun;
	n = mp_lun_pread(lun, buf, len, off);
	if (n < 0) {
		fprintf(stderr, "vmfs-lun: read: %s\n", mp_strerror((int)n));
		goto close_lun;
	}
	for (uint64_t i = 0; i < len; i += 16) {
		printf("%012llx ", (unsigned long long)(off + i));
		for (int j = 0; j < 16; j++)
			printf("%s%02x", j == 8 ? "  " : " ", buf[i + j]);
		printf("  |");
		for (int j = 0; j < 16; j++)
			putchar(isprint(buf[i + j]) ? buf[i + j] : '.');
		printf("|\n");
	}
	rc = 0;
close_lun:
	free(buf);
	mp_lun_close(lun);
	return rc;
}

static int cmd_write(int argc, char **argv)
{
	uint64_t off, len, byte;
	unsigned flags = 0;
	bool flush = false;
	unsigned char *buf = NULL;
	mp_lun *lun;
	ssize_t n;
	int rc = 1;

	if (argc < 4 || mp_parse_size(argv[1], &off) || mp_parse_size(argv[2], &len) ||
	    mp_parse_size(argv[3], &byte) || byte > 255 || len == 0 ||
	    len > (64ull << 20)) {
		usage(stderr);
		return 2;
	}
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--fua")) {
			flags |= MP_IO_FUA;
		} else if (!strcmp(argv[i], "--flush")) {
			flush = true;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (open_lun(argv[0], 0, &lun))
		return 1;
	buf = malloc(len);
	if (!buf)
		goto close_lun;
	memset(buf, (int)byte, len);
	n = mp_lun_pwrite(lun, buf, len, off, flags);
	if (n < 0) {
		fprintf(stderr, "vmfs-lun: write: %s\n", mp_strerror((int)n));
		goto close_lun;
	}
	if (flush) {
		int ret = mp_lun_flush(lun);

		if (ret) {
			fprintf(stderr, "vmfs-lun: flush: %s\n", mp_strerror(ret));
			goto close_lun;
		}
	}
	printf("wrote %llu bytes of 0x%02x at %llu%s%s\n",
	       (unsigned long long)len, (unsigned)byte, (unsigned long long)off,
	       flags & MP_IO_FUA ? " (FUA)" : "", flush ? ", flushed" : "");
	rc = 0;
close_lun:
	free(buf);
	mp_lun_close(lun);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "info") && argc >= 3)
		return cmd_info(argc - 2, argv + 2);
	if (!strcmp(argv[1], "ready") && argc == 3)
		return cmd_ready(argv[2]);
	if (!strcmp(argv[1], "dump") && (argc == 4 || argc == 5))
		return cmd_dump(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	if (!strcmp(argv[1], "write") && argc >= 6)
		return cmd_write(argc - 2, argv + 2);
	usage(stderr);
	return 2;
}
