/*
 * space.h - a volume's capacity, use and provisioning (thin overcommit),
 * and the usage alarms (warning at 75%, alert at 85%, as vCenter's
 * datastore alarms).
 */
#ifndef THIN_SPACE_H
#define THIN_SPACE_H

#include "fs/fs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define THIN_WARN_PCT 75
#define THIN_ALERT_PCT 85

enum thin_level { THIN_SPACE_OK, THIN_SPACE_WARNING, THIN_SPACE_ALERT };

struct thin_space {
	uint64_t capacity, used, free;  /* bytes of file blocks */
	uint64_t provisioned;           /* sum over files of max(size, allocated):
					 * what they may use; above capacity
					 * when thin disks overcommit */
	uint64_t files;
	enum thin_level level;
};

/*
 * Call fn for every entry of the namespace that is not a directory (files,
 * symlinks, mappings), directories depth first.  fn returns 0 to go on,
 * a positive value to stop (thin_walk returns 0), or an error (returned).
 * Directories removed meanwhile are skipped.
 */
typedef int (*thin_walk_fn)(void *arg, const char *name, uint64_t ino,
			    uint8_t type);
int thin_walk(fs_vol *v, thin_walk_fn fn, void *arg);

/* Walks the namespace (every directory, every file's FD). */
int thin_space(fs_vol *v, struct thin_space *s);
enum thin_level thin_space_level(uint64_t used, uint64_t capacity);
const char *thin_level_name(enum thin_level l);

#ifdef __cplusplus
}
#endif
#endif /* THIN_SPACE_H */
