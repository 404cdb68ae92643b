/*
 * testutil.h - small helpers shared by the unit tests (header only).
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Directory for scratch LUN files: must support O_DIRECT (not tmpfs). */
static inline const char *tu_dir(void)
{
	const char *d = getenv("VMFS_TEST_DIR");

	return d && *d ? d : "/var/tmp";
}

/* Create a sparse file of size bytes; its path goes to buf. */
static inline void tu_make_file(char *buf, size_t len, const char *name,
				uint64_t size)
{
	int fd;

	snprintf(buf, len, "%s/%s.%d.img", tu_dir(), name, (int)getpid());
	fd = open(buf, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size)) {
		perror(buf);
		exit(1);
	}
	close(fd);
}

/* Page-aligned buffer, zeroed. */
static inline void *tu_alloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len ? len : 4096))
		abort();
	memset(p, 0, len);
	return p;
}

/* Deterministic pattern depending on seed and position. */
static inline void tu_fill(void *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

#endif
