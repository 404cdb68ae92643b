/*
 * cbt_int.h - vmfsd's changed-block tracking, shared by cbt_track.c (the
 * tracked disks, the FUSE hooks) and cbt_cmds.c (the control commands).
 */
#ifndef VMFSD_CBT_INT_H
#define VMFSD_CBT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cbt/cbt.h"
#include "fs/fs.h"
#include "thin/vmdk.h"

/* A tracked disk this host has touched. */
struct trk {
	uint64_t dir;                 /* the disk's folder */
	uint64_t ctk_ino, ctk_gen;    /* identity of the tracking file */
	uint64_t data_ino;
	char base[256];               /* BASE.vmdk is the descriptor */
	char ctk_name[256];
	cbt_disk *d;                  /* loaded state, kept */
	fs_file *ctk;                 /* open while users > 0 */
	unsigned users;               /* writers + the command running */
	unsigned writers;             /* FUSE handles, a cbt_mark session */
	bool session;                 /* cbt_mark's writer is open */
	char *spath;                  /* its path, as the writer names it */
	uint64_t ssize;               /* the disk's size when it began */
	/* a cbt_mark writer died holding blocks (its writes in flight may
	 * still land): they stay held until CBT_DEAD_GRACE_NS after its
	 * death, and no session is open (vd_cbt_dead_holds) */
	bool dead_holds;
	uint64_t dead_ns;             /* CLOCK_MONOTONIC of the last death */
	struct trk *next;
};


extern fs_vol *vd_cbt_vol;
/* Held around everything that does I/O on tracking files (outer lock). */
extern pthread_mutex_t vd_cbt_lock;

/* The descriptor BASE.vmdk in dir; a message in err on failure. */
int vd_cbt_read_desc(uint64_t dir, const char *base, struct thin_desc *d,
		     char *err, size_t errlen);
/* The trk of BASE.vmdk in dir (made when new) and the disk's size;
 * -ENODATA when its descriptor names no tracking file. */
int vd_cbt_find(uint64_t dir, const char *base, struct trk **out,
		uint64_t *size, char *err, size_t errlen);
/* In and out of use (under vd_cbt_lock): the first user opens and loads
 * the tracking file, the last writes it back clean and closes it. */
int vd_cbt_use(struct trk *t, uint64_t size, char *err, size_t errlen);
void vd_cbt_unuse(struct trk *t);
/* A writer (FUSE handle, cbt_mark session) begins and ends. */
int vd_cbt_write_begin(struct trk *t, uint64_t size, char *err,
		       size_t errlen);
void vd_cbt_write_end(struct trk *t);
/*
 * How long a dead writer's writes may still land after its connection
 * ended: its process is gone, so only I/O already in the kernel (or sent
 * to an iSCSI target) remains, which completes or fails within the device
 * layer's command timeout (10 s).  Three times that (the environment's
 * VMFSD_CBT_GRACE_MS overrides it, for tests).
 */
#define CBT_DEAD_GRACE_NS (30ull * 1000000000ull)
/* A dead writer's holds go once its grace has passed and no session is
 * open (t in use, under vd_cbt_lock). */
void vd_cbt_dead_holds(struct trk *t);

/* The trk of the open cbt_mark session of path (as its writer names the
 * disk), or NULL (under vd_cbt_lock): the writer's calls need not read
 * the descriptor again while the session is open (the disk is attached:
 * it is neither renamed, resized nor untracked meanwhile). */
struct trk *vd_cbt_session(const char *path);
/* The session of t ends (under vd_cbt_lock): writer ends. */
void vd_cbt_session_end(struct trk *t);

/* FUSE handles already writing t's data file are tracked from now. */
void vd_cbt_attach_handles(struct trk *t);
/* Tracking disabled (no writer): t and its state go. */
void vd_cbt_forget(struct trk *t);

#endif /* VMFSD_CBT_INT_H */
