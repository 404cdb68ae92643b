/*
 * virtq.c - split virtqueues and virtio-blk request parsing (see virtq.h).
 *
 * Ring fields live in guest memory and can change between two reads, so
 * each is read once into a local and validated there; desc/avail/used
 * pointers are validated once at setup (the ring areas cannot move without
 * a new setup), buffer addresses on every pop.
 */
#include <errno.h>
#include <string.h>

#include "hypervisor/virtq.h"

/*
 * Ordering against the guest, which runs on other CPUs and which no
 * sanitizer sees: on x86 (TSO) loads are not reordered with loads nor
 * stores with stores, so acquire/release need only stop the compiler; a
 * store followed by a load of another location needs MFENCE.  Inline asm
 * rather than __atomic_thread_fence, which TSan refuses.  The ring indices
 * and flags (2-byte aligned: setup checks the ring alignment) are accessed
 * with __atomic builtins, plain moves on x86, so that TSan sees the
 * ordering when a test plays the guest on another thread.
 */
#define guest_acquire()	__asm__ volatile("" ::: "memory")
#define guest_release()	__asm__ volatile("" ::: "memory")
#define guest_full()	__asm__ volatile("mfence" ::: "memory")

void *hv_gmem_ptr(const struct hv_gmem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nr && i < HV_GMEM_MAX_REGIONS; i++) {
		uint64_t off;

		if (gpa < m->r[i].gpa)
			continue;
		off = gpa - m->r[i].gpa;
		if (off >= m->r[i].size || len > m->r[i].size - off)
			continue;
		return m->r[i].hva + off;
	}
	return NULL;
}

const char *hv_virtq_strerror(int err)
{
	static const char *const msg[] = {
		[HV_VQ_E_RING - HV_VQ_E_BASE] = "ring outside guest memory",
		[HV_VQ_E_AVAIL - HV_VQ_E_BASE] = "avail index too far ahead",
		[HV_VQ_E_INDEX - HV_VQ_E_BASE] = "descriptor index out of range",
		[HV_VQ_E_ADDR - HV_VQ_E_BASE] = "buffer outside guest memory",
		[HV_VQ_E_LOOP - HV_VQ_E_BASE] = "descriptor chain loops",
		[HV_VQ_E_ORDER - HV_VQ_E_BASE] = "readable after writable descriptor",
		[HV_VQ_E_INDIRECT - HV_VQ_E_BASE] = "indirect descriptor not negotiated",
		[HV_VQ_E_SEGS - HV_VQ_E_BASE] = "too many segments",
	};
	int e = err < 0 ? -err : err;

	if (e > HV_VQ_E_BASE && e < HV_VQ_E_END)
		return msg[e - HV_VQ_E_BASE];
	return e ? strerror(e) : "success";
}

static uint16_t rd16(volatile const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, (const void *)p, sizeof(v));
	return v;
}

void hv_virtq_reset(struct hv_virtq *q)
{
	const struct hv_gmem *m = q->mem;

	memset(q, 0, sizeof(*q));
	q->mem = m;
}

int hv_virtq_setup(struct hv_virtq *q, const struct hv_gmem *m, uint16_t size,
		   uint64_t desc, uint64_t avail, uint64_t used)
{
	hv_virtq_reset(q);
	q->mem = m;
	if (!size || size > HV_VIRTQ_MAX_SIZE || (size & (size - 1)))
		return -HV_VQ_E_RING;
	/* alignment as the spec requires: 16, 2 and 4 bytes */
	if ((desc & 15) || (avail & 1) || (used & 3))
		return -HV_VQ_E_RING;
	q->desc = hv_gmem_ptr(m, desc, 16ull * size);
	q->avail = hv_gmem_ptr(m, avail, 6 + 2ull * size);
	q->used = hv_gmem_ptr(m, used, 6 + 8ull * size);
	if (!q->desc || !q->avail || !q->used) {
		hv_virtq_reset(q);
		return -HV_VQ_E_RING;
	}
	q->size = size;
	q->desc_gpa = desc;
	q->avail_gpa = avail;
	q->used_gpa = used;
	return 0;
}

int hv_virtq_setup_legacy(struct hv_virtq *q, const struct hv_gmem *m,
			  uint16_t size, uint64_t pfn)
{
	uint64_t desc = pfn << 12, avail = desc + 16ull * size;
	uint64_t used = (avail + 6 + 2ull * size + 4095) & ~4095ull;

	if (pfn >> 52)
		return -HV_VQ_E_RING;
	return hv_virtq_setup(q, m, size, desc, avail, used);
}

void hv_virtq_set_notify(struct hv_virtq *q, bool on)
{
	uint16_t f = on ? 0 : VRING_USED_F_NO_NOTIFY;

	if (!q->size)
		return;
	__atomic_store_n((uint16_t *)q->used, f, __ATOMIC_RELAXED);
	/* the flag store before the next read of the avail index */
	guest_full();
}

bool hv_virtq_no_interrupt(const struct hv_virtq *q)
{
	return q->size && (__atomic_load_n((const uint16_t *)q->avail,
					   __ATOMIC_RELAXED) &
			   VRING_AVAIL_F_NO_INTERRUPT);
}

int hv_virtq_pop(struct hv_virtq *q, struct hv_virtq_elem *e)
{
	uint16_t avail_idx, idx, flags = 0;
	unsigned n = 0;
	int ret = 1;

	if (!q->size)
		return 0;
	avail_idx = __atomic_load_n((const uint16_t *)(q->avail + 2),
				    __ATOMIC_ACQUIRE);
	if (avail_idx == q->last_avail)
		return 0;	/* *e untouched */
	e->head = 0xffff;
	e->nout = e->nin = 0;
	e->out_len = e->in_len = 0;
	/* acquire: the ring entry and descriptors were written before idx */
	guest_acquire();
	if ((uint16_t)(avail_idx - q->last_avail) > q->size) {
		/* the guest's index is nonsense: nothing in the ring is valid */
		q->last_avail = avail_idx;
		return -HV_VQ_E_AVAIL;
	}
	idx = rd16(q->avail + 4 + 2 * (q->last_avail % q->size));
	q->last_avail++;
	if (idx >= q->size)
		return -HV_VQ_E_INDEX;
	e->head = idx;
	do {
		volatile const uint8_t *d;
		uint64_t addr;
		uint32_t len;
		void *hva;

		if (n >= q->size)
			return -HV_VQ_E_LOOP;
		if (n >= HV_VIRTQ_MAX_SEG)
			return -HV_VQ_E_SEGS;
		if (idx >= q->size)
			return -HV_VQ_E_INDEX;
		d = q->desc + 16u * idx;
		memcpy(&addr, (const void *)d, 8);
		memcpy(&len, (const void *)(d + 8), 4);
		flags = rd16(d + 12);
		idx = rd16(d + 14);
		if (flags & VRING_DESC_F_INDIRECT)
			return -HV_VQ_E_INDIRECT;
		hva = hv_gmem_ptr(q->mem, addr, len);
		if (!hva && len)
			return -HV_VQ_E_ADDR;
		if (flags & VRING_DESC_F_WRITE) {
			e->nin++;
			e->in_len += len;
		} else {
			if (e->nin)
				return -HV_VQ_E_ORDER;
			e->nout++;
			e->out_len += len;
		}
		e->iov[n].iov_base = hva;
		e->iov[n].iov_len = len;
		n++;
	} while (flags & VRING_DESC_F_NEXT);
	return ret;
}

void hv_virtq_push(struct hv_virtq *q, uint16_t head, uint32_t len)
{
	volatile uint8_t *ent;
	uint32_t id = head;
	uint16_t idx;

	if (!q->size)
		return;
	ent = q->used + 4 + 8 * (q->used_idx % q->size);
	memcpy((void *)ent, &id, 4);
	memcpy((void *)(ent + 4), &len, 4);
	idx = ++q->used_idx;
	/* release: the entry (and the data) before the index */
	guest_release();
	__atomic_store_n((uint16_t *)(q->used + 2), idx, __ATOMIC_RELEASE);
	/* the index store before our next read of the avail flags */
	guest_full();
}

/* Copy n bytes starting at byte `off` of the readable segments. */
static int copy_out(const struct hv_virtq_elem *e, uint64_t off, void *buf,
		    size_t n)
{
	uint8_t *b = buf;

	for (unsigned i = 0; i < e->nout && n; i++) {
		size_t l = e->iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > n)
			l = n;
		memcpy(b, (const uint8_t *)e->iov[i].iov_base + off, l);
		b += l;
		n -= l;
		off = 0;
	}
	return n ? -EINVAL : 0;
}

int hv_blk_req_parse(const struct hv_virtq_elem *e, struct hv_blk_req *r)
{
	uint8_t hdr[16];
	unsigned last, i;
	uint64_t skip = sizeof(hdr);

	memset(r, 0, sizeof(*r));
	if (e->nin == 0 || copy_out(e, 0, hdr, sizeof(hdr)))
		return -EINVAL;
	last = e->nout + e->nin - 1;
	if (e->iov[last].iov_len == 0)
		return -EINVAL;
	r->status = (uint8_t *)e->iov[last].iov_base + e->iov[last].iov_len - 1;
	memcpy(&r->type, hdr, 4);
	memcpy(&r->sector, hdr + 8, 8);

	/* The header must end on a segment boundary for the data to be whole
	 * segments; Linux and vmtest always put it in a segment of its own. */
	for (i = 0; i < e->nout && skip >= e->iov[i].iov_len; i++)
		skip -= e->iov[i].iov_len;
	if (skip) {
		r->type = (uint32_t)-1;	/* reported as unsupported */
		return 0;
	}
	r->first = i;
	if (r->type == VIRTIO_BLK_T_OUT) {
		/* data: the rest of the readable segments; the status byte is a
		 * writable segment of its own */
		r->niov = e->nout - i;
		if (e->iov[last].iov_len != 1 || e->nin != 1)
			r->type = (uint32_t)-1;
	} else {
		/* data: readable none; writable segments minus the status byte,
		 * which must be the last segment's only byte */
		if (i != e->nout || e->iov[last].iov_len != 1)
			r->type = (uint32_t)-1;
		r->niov = e->nin - 1;
	}
	for (unsigned k = r->first; k < r->first + r->niov; k++)
		r->data_len += e->iov[k].iov_len;
	return 0;
}
