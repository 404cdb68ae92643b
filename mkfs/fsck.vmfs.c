/*
 * fsck.vmfs - check, and with -y repair, a volume no host has mounted.
 *
 *   fsck.vmfs [-n|-y] DEVICE...
 *
 * Exit codes as e2fsck: 0 clean, 1 errors fixed, 4 errors left,
 * 8 operational error (device, a host still mounted, ...).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs.h"

int main(int argc, char **argv)
{
	struct fs_check_opts o = { 0 };
	struct fs_check_result r;
	int c, ret;

	while ((c = getopt(argc, argv, "nyh")) != -1) {
		switch (c) {
		case 'n': o.repair = false; break;
		case 'y': o.repair = true; break;
		case 'h':
			printf("usage: fsck.vmfs [-n|-y] DEVICE...\n");
			return 0;
		default:
			fprintf(stderr, "usage: fsck.vmfs [-n|-y] DEVICE...\n");
			return 8;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: fsck.vmfs [-n|-y] DEVICE...\n");
		return 8;
	}
	ret = fs_check((const char *const *)argv + optind,
		       (unsigned)(argc - optind), &o, &r);
	if (ret) {
		fprintf(stderr, "fsck.vmfs: %s\n", fs_strerror(ret));
		return 8;
	}
	if (!r.errors) {
		printf("clean\n");
		return 0;
	}
	printf("%u problem(s) found, %u fixed\n", r.errors, r.fixed);
	return r.fixed >= r.errors ? 1 : 4;
}
