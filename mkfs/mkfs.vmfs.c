/*
 * mkfs.vmfs - format one or more LUNs as one volume.
 *
 *   mkfs.vmfs [-L LABEL] [-b BLOCKSIZE] [-H MAXHOSTS] [-J JOURNAL_MIB]
 *             [-i FILES] [--hb-interval MS] [--hb-timeout MS] [-f] DEVICE...
 *
 * DEVICE: a file, a block device, or iscsi://HOST[:PORT]/IQN/LUN; several
 * devices make one spanned volume, the first being its head extent.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: mkfs.vmfs [-L LABEL] [-b BLOCKSIZE] [-H MAXHOSTS] "
		   "[-J JOURNAL_MIB] [-i FILES]\n"
		   "                 [--hb-interval MS] [--hb-timeout MS] [-f] "
		   "DEVICE...\n"
		   "BLOCKSIZE: 64k .. 8m, a power of two (default 1m)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "label", required_argument, NULL, 'L' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "max-hosts", required_argument, NULL, 'H' },
		{ "journal", required_argument, NULL, 'J' },
		{ "files", required_argument, NULL, 'i' },
		{ "hb-interval", required_argument, NULL, 'I' },
		{ "hb-timeout", required_argument, NULL, 'T' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct fs_mkfs_opts o = { 0 };
	struct fs_vol_info in;
	fs_vol *v;
	uint64_t x;
	int c, ret;

	while ((c = getopt_long(argc, argv, "L:b:H:J:i:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'L': o.label = optarg; break;
		case 'f': o.force = true; break;
		case 'h': usage(stdout); return 0;
		case 'b': case 'H': case 'J': case 'i': case 'I': case 'T':
			if (mp_parse_size(optarg, &x) || x > UINT32_MAX) {
				fprintf(stderr, "mkfs.vmfs: bad number '%s'\n", optarg);
				return 2;
			}
			if (c == 'b') o.block_size = (uint32_t)x;
			if (c == 'H') o.max_hosts = (uint32_t)x;
			if (c == 'J') o.journal_mib = (uint32_t)x;
			if (c == 'i') o.files = (uint32_t)x;
			if (c == 'I') o.hb_interval_ms = (uint32_t)x;
			if (c == 'T') o.hb_dead_ms = (uint32_t)x;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (o.label && strlen(o.label) > 64) {
		fprintf(stderr, "mkfs.vmfs: label longer than 64 bytes\n");
		return 2;
	}
	ret = fs_mkfs((const char *const *)argv + optind,
		      (unsigned)(argc - optind), &o);
	if (ret) {
		fprintf(stderr, "mkfs.vmfs: %s\n", fs_strerror(ret));
		return 1;
	}
	/* report what was made, from the volume itself */
	{
		struct fs_mount_opts mo = { .read_only = true, .host = "mkfs" };

		ret = fs_mount((const char *const *)argv + optind,
			       (unsigned)(argc - optind), &mo, &v);
		if (ret) {
			fprintf(stderr, "mkfs.vmfs: made, but cannot read it back: "
				"%s\n", fs_strerror(ret));
			return 1;
		}
		ret = fs_vol_info(v, &in);
		if (!ret) {
			printf("volume '%s': %u extent(s), %.1f GiB of %u KiB file "
			       "blocks, %llu files, %u hosts, %u-byte sectors\n",
			       in.label, in.nextents,
			       (double)in.capacity / (1 << 30), in.block_size >> 10,
			       (unsigned long long)in.files, in.slots, in.sector);
			printf("uuid ");
			for (int i = 0; i < 16; i++)
				printf("%02x%s", in.uuid[i],
				       i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
			printf("\n");
		}
		fs_umount(v);
	}
	return ret ? 1 : 0;
}
