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
/* FUSE handles already writing t's data file are tracked from now. */
void vd_cbt_attach_handles(struct trk *t);
/* Tracking disabled (no writer): t and its state go. */
void vd_cbt_forget(struct trk *t);

#endif /* VMFSD_CBT_INT_H */
