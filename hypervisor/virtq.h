/*
 * virtq.h - split virtqueues read from guest memory, and the virtio-blk
 * request layout on top of them.  Pure code (no KVM, no threads): the
 * device models call it and the fuzz target drives it directly.
 *
 * Trust model: everything in guest memory may change under us at any time
 * and may be malicious.  Every guest address and length is checked against
 * the guest memory map before it is used, each ring field is read exactly
 * once, a descriptor chain is at most `size` descriptors long (so a loop
 * ends), and a chain that breaks a rule makes hv_virtq_pop() fail: the
 * device then sets NEEDS_RESET (or fails the request) instead of touching
 * memory outside the guest.
 */
#ifndef HV_VIRTQ_H
#define HV_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Guest physical memory: up to a few contiguous regions. */
#define HV_GMEM_MAX_REGIONS 4
struct hv_gmem {
	unsigned nr;
	struct {
		uint64_t gpa, size;
		uint8_t *hva;
	} r[HV_GMEM_MAX_REGIONS];
};

/* Host pointer to [gpa, gpa+len) if it lies inside one region, else NULL. */
void *hv_gmem_ptr(const struct hv_gmem *m, uint64_t gpa, uint64_t len);

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	1

#define HV_VIRTQ_MAX_SIZE	1024
#define HV_VIRTQ_MAX_SEG	256

struct hv_virtq {
	const struct hv_gmem *mem;
	uint16_t size;			/* power of two, 0 = not set up */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* host views, valid once hv_virtq_setup() succeeded */
	volatile uint8_t *desc, *avail, *used;
	uint16_t last_avail;		/* next avail entry to take */
	uint16_t used_idx;		/* next used entry to fill */
};

/* One popped chain: readable segments first, then writable ones. */
struct hv_virtq_elem {
	uint16_t head;
	unsigned nout, nin;		/* iov[0..nout) readable, then nin */
	uint64_t out_len, in_len;
	struct iovec iov[HV_VIRTQ_MAX_SEG];
};

enum hv_virtq_err {
	HV_VQ_E_BASE = 5000,
	HV_VQ_E_RING,		/* ring outside guest memory / bad size */
	HV_VQ_E_AVAIL,		/* avail index ran more than size ahead */
	HV_VQ_E_INDEX,		/* descriptor index out of range */
	HV_VQ_E_ADDR,		/* buffer outside guest memory */
	HV_VQ_E_LOOP,		/* chain longer than the queue */
	HV_VQ_E_ORDER,		/* readable descriptor after a writable one */
	HV_VQ_E_INDIRECT,	/* indirect descriptor (not negotiated) */
	HV_VQ_E_SEGS,		/* more than HV_VIRTQ_MAX_SEG segments */
	HV_VQ_E_END
};
const char *hv_virtq_strerror(int err);

/*
 * Set the queue up from the legacy layout (one page frame number: the
 * descriptor table, the avail ring, then the used ring at the next 4 KiB
 * boundary) or from three addresses (modern).  0 or -HV_VQ_E_RING.
 */
int hv_virtq_setup_legacy(struct hv_virtq *q, const struct hv_gmem *m,
			  uint16_t size, uint64_t pfn);
int hv_virtq_setup(struct hv_virtq *q, const struct hv_gmem *m, uint16_t size,
		   uint64_t desc, uint64_t avail, uint64_t used);
void hv_virtq_reset(struct hv_virtq *q);

/*
 * Take the next available chain.  Returns 1 with *e filled, 0 when the ring
 * is empty (*e untouched), or -HV_VQ_E_* when the guest broke the rules (the entry is
 * consumed; e->head holds it when the head index itself was valid, else
 * 0xffff).
 */
int hv_virtq_pop(struct hv_virtq *q, struct hv_virtq_elem *e);

/* Put a chain on the used ring with the bytes written to it. */
void hv_virtq_push(struct hv_virtq *q, uint16_t head, uint32_t len);

/*
 * Tell the guest whether to notify (VRING_USED_F_NO_NOTIFY clear) or not.
 * After turning notifications back on, the caller must pop again: the
 * guest may have added a chain before it saw the flag change.
 */
void hv_virtq_set_notify(struct hv_virtq *q, bool on);

/* Whether the guest asked not to be interrupted (VRING_AVAIL_F_NO_INTERRUPT). */
bool hv_virtq_no_interrupt(const struct hv_virtq *q);

/* ---- virtio-blk requests -------------------------------------------------- */

#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4
#define VIRTIO_BLK_T_GET_ID	8
#define VIRTIO_BLK_S_OK		0
#define VIRTIO_BLK_S_IOERR	1
#define VIRTIO_BLK_S_UNSUPP	2

struct hv_blk_req {
	uint32_t type;
	uint64_t sector;
	/* data segments: iov[first .. first+niov) of the element */
	unsigned first, niov;
	uint64_t data_len;
	uint8_t *status;		/* last byte of the last writable segment */
};

/*
 * Split a popped chain into header (16 readable bytes, may span segments),
 * data and status.  The data segments of IN requests (and GET_ID) must be
 * writable, those of OUT readable.  -EINVAL when the chain cannot be a
 * request at all (no header or no status byte): the device cannot even
 * report an error then, and the chain is returned with length 0.
 */
int hv_blk_req_parse(const struct hv_virtq_elem *e, struct hv_blk_req *r);

#endif /* HV_VIRTQ_H */
