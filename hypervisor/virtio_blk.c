/*
 * virtio_blk.c - a virtio block device on virtio-pci, transitional: the
 * legacy interface in I/O BAR 0 and the modern one (virtio 1.x capabilities
 * for the common, notify, ISR and device areas) in memory BAR 4, one
 * request queue of up to 256 entries.  The driver picks one by the way it
 * initialises the device; both lead to the same queue and request code.
 *
 * Data flow: the guest writes the queue-notify register; KVM turns that
 * into an ioeventfd signal (or the vCPU thread signals the same eventfd
 * itself when ioeventfd is unavailable); the device's I/O thread pops
 * chains from the avail ring (virtq.c checks every guest address), turns
 * each into an hv_disk request on the guest's own buffers (no copy) and
 * submits it to the disk backend.  The backend completes it on its own
 * thread: the status byte is written, the chain goes on the used ring under
 * the device lock, ISR bit 0 is set and the irqfd fires, unless the guest
 * set VRING_AVAIL_F_NO_INTERRUPT.  INTx is level-triggered: the irqfd has a
 * resample eventfd; when the guest EOIs with ISR still set (a completion
 * raced the ISR read) the I/O thread raises the line again.
 *
 * A chain that breaks the rules sets the device NEEDS_RESET (status bit
 * 0x40) and the queue stops until the guest resets the device; the VMM
 * carries on.  A device reset waits for the requests in flight, since they
 * write into guest memory when they complete.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hypervisor/hv_int.h"

#define VP_HOST_FEATURES	0x00
#define VP_GUEST_FEATURES	0x04
#define VP_QUEUE_PFN		0x08
#define VP_QUEUE_NUM		0x0c
#define VP_QUEUE_SEL		0x0e
#define VP_QUEUE_NOTIFY		0x10
#define VP_STATUS		0x12
#define VP_ISR			0x13
#define VP_CONFIG		0x14
#define VBLK_BAR_SIZE		0x40

/* modern layout of memory BAR 4 */
#define VBLK_MEM_SIZE		0x4000
#define MOD_COMMON		0x0000
#define MOD_COMMON_LEN		0x40
#define MOD_ISR			0x1000
#define MOD_DEVICE		0x2000
#define MOD_NOTIFY		0x3000
#define VIRTIO_F_VERSION_1	32
#define STATUS_FEATURES_OK	8

#define VIRTIO_BLK_F_SEG_MAX	2
#define VIRTIO_BLK_F_RO		5
#define VIRTIO_BLK_F_BLK_SIZE	6
#define VIRTIO_BLK_F_FLUSH	9
#define STATUS_DRIVER_OK	4
#define STATUS_NEEDS_RESET	0x40

#define VBLK_QSZ		256
#define VBLK_SEG_MAX		(HV_VIRTQ_MAX_SEG - 2)

struct vblk_req {
	struct hv_disk_req dr;
	struct hv_vblk *b;
	struct vblk_req *next;
	uint16_t head;
	uint8_t *status;
	uint32_t in_len;
	struct iovec iov[VBLK_SEG_MAX];
};

struct hv_vblk {
	struct hv_vm *vm;
	struct hv_disk *disk;
	struct hv_pci_dev pci;

	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t idle;		/* inflight dropped to 0 */
	uint64_t host_features, guest_features;	/* legacy sees the low half */
	/* modern common configuration */
	uint32_t dfselect, gfselect;
	uint16_t q_size, q_enable;
	uint64_t q_desc, q_driver, q_device;
	uint8_t status;
	uint16_t qsel;
	uint32_t pfn;
	struct hv_virtq vq;
	struct hv_virtq_elem elem;	/* the I/O thread's, the only popper */
	bool broken;
	bool notify_off;		/* VRING_USED_F_NO_NOTIFY is set */
	bool stopping;			/* hv_vblk_destroy: submit nothing new */
	unsigned inflight;
	struct vblk_req *free;
	struct vblk_req *reqs;
	uint8_t config[0x18];

	atomic_uint isr;
	int kick_fd, irq_fd, resample_fd, stop_fd;
	bool irqfd, ioeventfd;
	uint16_t ioev_port;		/* legacy notify ioeventfd, or 0 */
	uint64_t ioev_mmio;		/* modern notify ioeventfd, or 0 */
	pthread_t thread;
	bool thread_started;
};

static void raise_irq(struct hv_vblk *b)
{
	uint64_t one = 1;

	atomic_fetch_or(&b->isr, 1);
	if (b->irqfd) {
		if (write(b->irq_fd, &one, sizeof(one)) < 0)
			hv_log("virtio-blk: irqfd write: %s", strerror(errno));
	} else {
		hv_vm_irq_line(b->vm, b->pci.gsi, 1);
	}
}

static void set_broken(struct hv_vblk *b, int err)
{
	if (!b->broken)
		hv_log("virtio-blk %s: bad descriptor chain (%s): device "
		       "needs reset", b->disk->name, hv_virtq_strerror(err));
	b->broken = true;
	b->status |= STATUS_NEEDS_RESET;
}

/* Complete on the used ring (lock held by caller). */
static void complete_locked(struct hv_vblk *b, uint16_t head, uint32_t len)
{
	hv_virtq_push(&b->vq, head, len);
}

static void process_queue(struct hv_vblk *b);

static void req_done(struct hv_disk_req *dr)
{
	struct vblk_req *r = dr->priv;
	struct hv_vblk *b = r->b;
	bool irq;

	*r->status = dr->result ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	if (dr->result)
		hv_log("virtio-blk %s: %s at %llu: %s", b->disk->name,
		       dr->op == HV_DISK_READ ? "read" :
		       dr->op == HV_DISK_WRITE ? "write" : "flush",
		       (unsigned long long)dr->offset, strerror(-dr->result));
	pthread_mutex_lock(&b->lock);
	complete_locked(b, r->head, r->in_len);
	irq = !hv_virtq_no_interrupt(&b->vq);
	r->next = b->free;
	b->free = r;
	if (--b->inflight == 0)
		pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->lock);
	if (irq)
		raise_irq(b);
	process_queue(b);
}

/*
 * Turn one parsed chain into a disk request.  Returns the request to submit
 * or NULL when it was completed at once (errors, GET_ID, unsupported).
 */
static struct vblk_req *prepare(struct hv_vblk *b,
				const struct hv_virtq_elem *e, bool *irq)
{
	struct hv_blk_req br;
	struct vblk_req *r;
	uint64_t off;
	uint8_t st = VIRTIO_BLK_S_OK;
	uint32_t in_len = 1;

	if (hv_blk_req_parse(e, &br)) {
		/* no header or no status byte: nothing to report into */
		complete_locked(b, e->head, 0);
		*irq = true;
		return NULL;
	}
	switch (br.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		off = br.sector << 9;
		if (br.sector >> 54 || br.data_len % b->disk->sector ||
		    off % b->disk->sector || off > b->disk->size ||
		    br.data_len > b->disk->size - off || br.niov > VBLK_SEG_MAX ||
		    (br.type == VIRTIO_BLK_T_OUT && b->disk->readonly)) {
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (!br.data_len)
			break;
		goto submit;
	case VIRTIO_BLK_T_FLUSH:
		off = 0;
		goto submit;
	case VIRTIO_BLK_T_GET_ID: {
		char id[20] = { 0 };
		size_t left = sizeof(id);

		snprintf(id, sizeof(id), "%s", b->disk->name);
		for (unsigned k = br.first; k < br.first + br.niov && left; k++) {
			size_t n = e->iov[k].iov_len < left ? e->iov[k].iov_len : left;

			memcpy(e->iov[k].iov_base, id + sizeof(id) - left, n);
			left -= n;
			in_len += (uint32_t)n;
		}
		break;
	}
	default:
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	*br.status = st;
	complete_locked(b, e->head, in_len);
	*irq = true;
	return NULL;

submit:
	r = b->free;
	b->free = r->next;
	b->inflight++;
	memset(&r->dr, 0, sizeof(r->dr));
	r->head = e->head;
	r->status = br.status;
	r->in_len = 1 + (br.type == VIRTIO_BLK_T_IN ? (uint32_t)br.data_len : 0);
	for (unsigned k = 0; k < br.niov; k++)
		r->iov[k] = e->iov[br.first + k];
	r->dr.op = br.type == VIRTIO_BLK_T_IN ? HV_DISK_READ :
		   br.type == VIRTIO_BLK_T_OUT ? HV_DISK_WRITE : HV_DISK_FLUSH;
	r->dr.offset = off;
	r->dr.len = br.type == VIRTIO_BLK_T_FLUSH ? 0 : br.data_len;
	r->dr.iov = r->iov;
	r->dr.iovcnt = (int)br.niov;
	r->dr.cb = req_done;
	r->dr.priv = r;
	return r;
}

/*
 * Pop and submit everything available.  Runs on the I/O thread (after a
 * notify, or on a timer while requests are in flight) and at the end of
 * every completion, on the backend's thread, where the device layer
 * batches the new submissions into one io_uring_enter.  While requests are
 * in flight the guest is told not to notify (VRING_USED_F_NO_NOTIFY): the
 * next completion, or the timer, picks its chains up, which spares it a
 * port write (a trap into emulated ring 0 on kvm_pvm) per batch.
 */
static void process_queue(struct hv_vblk *b)
{
	struct hv_virtq_elem *e = &b->elem;
	struct vblk_req *batch[32];
	bool irq = false, more;

	do {
		unsigned n = 0;

		more = false;
		pthread_mutex_lock(&b->lock);
		for (;;) {
			struct vblk_req *r;
			int ret;

			if (n == 32 || b->broken || !b->free || b->stopping ||
			    !(b->status & STATUS_DRIVER_OK)) {
				more = n == 32;
				break;
			}
			ret = hv_virtq_pop(&b->vq, e);
			if (ret == 0) {
				/* quiet: notifications back on, then look once
				 * more for a chain added before the guest saw
				 * the flag */
				if (b->inflight + n || !b->notify_off)
					break;
				b->notify_off = false;
				hv_virtq_set_notify(&b->vq, true);
				continue;
			}
			if (ret < 0) {
				set_broken(b, ret);
				break;
			}
			r = prepare(b, e, &irq);
			if (r)
				batch[n++] = r;
		}
		if ((b->inflight || n) && !b->notify_off &&
		    (b->status & STATUS_DRIVER_OK)) {
			b->notify_off = true;
			hv_virtq_set_notify(&b->vq, false);
		}
		if (irq && hv_virtq_no_interrupt(&b->vq))
			irq = false;
		pthread_mutex_unlock(&b->lock);
		if (irq)
			raise_irq(b);
		irq = false;
		for (unsigned i = 0; i < n; i++) {
			int ret = hv_disk_submit(b->disk, &batch[i]->dr);

			if (ret) {
				batch[i]->dr.result = ret;
				req_done(&batch[i]->dr);
			}
		}
	} while (more);
}

static void *io_thread(void *arg)
{
	struct hv_vblk *b = arg;
	struct pollfd p[3] = {
		{ .fd = b->kick_fd, .events = POLLIN },
		{ .fd = b->stop_fd, .events = POLLIN },
		{ .fd = b->resample_fd, .events = POLLIN },
	};
	uint64_t v;

	for (;;) {
		int timeout, n;

		pthread_mutex_lock(&b->lock);
		/* notifications are off while requests are in flight: look at
		 * the ring every millisecond in case none completes soon */
		timeout = b->notify_off ? 1 : -1;
		pthread_mutex_unlock(&b->lock);
		n = poll(p, b->irqfd ? 3 : 2, timeout);
		if (n == 0) {
			process_queue(b);
			continue;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			hv_log("virtio-blk: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (p[2].revents && read(b->resample_fd, &v, sizeof(v)) > 0 &&
		    atomic_load(&b->isr))
			raise_irq(b);	/* still pending after the EOI */
		if (p[0].revents && read(b->kick_fd, &v, sizeof(v)) > 0)
			process_queue(b);
	}
	return NULL;
}

static int ioeventfd_set(struct hv_vblk *b, uint64_t addr, bool pio, bool on)
{
	struct kvm_ioeventfd io = {
		.addr = addr,
		.len = 2,
		.fd = b->kick_fd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (on ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(b->vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

/* A BAR moved: the notify ioeventfd follows it. */
static void bar_moved(void *opaque, int bar, uint64_t old_base,
		      uint64_t new_base)
{
	struct hv_vblk *b = opaque;

	(void)old_base;
	if (!b->ioeventfd)
		return;
	if (bar == 0) {
		if (b->ioev_port)
			ioeventfd_set(b, b->ioev_port + VP_QUEUE_NOTIFY, true, false);
		b->ioev_port = 0;
		if (new_base && !ioeventfd_set(b, new_base + VP_QUEUE_NOTIFY,
					       true, true))
			b->ioev_port = (uint16_t)new_base;
	} else {
		if (b->ioev_mmio)
			ioeventfd_set(b, b->ioev_mmio + MOD_NOTIFY, false, false);
		b->ioev_mmio = 0;
		if (new_base && !ioeventfd_set(b, new_base + MOD_NOTIFY, false,
					       true))
			b->ioev_mmio = new_base;
	}
}

static void reset_locked(struct hv_vblk *b)
{
	while (b->inflight)
		pthread_cond_wait(&b->idle, &b->lock);
	hv_virtq_reset(&b->vq);
	b->guest_features = 0;
	b->dfselect = b->gfselect = 0;
	b->q_size = VBLK_QSZ;
	b->q_enable = 0;
	b->q_desc = b->q_driver = b->q_device = 0;
	b->status = 0;
	b->pfn = 0;
	b->qsel = 0;
	b->broken = false;
	b->notify_off = false;
	atomic_store(&b->isr, 0);
	if (!b->irqfd)
		hv_vm_irq_line(b->vm, b->pci.gsi, 0);
}

static void bar_io(void *opaque, uint16_t off, uint8_t *data, unsigned size,
		   bool is_write)
{
	struct hv_vblk *b = opaque;
	uint32_t v = 0;
	uint64_t one = 1;

	if (is_write)
		memcpy(&v, data, size < 4 ? size : 4);
	if (off == VP_QUEUE_NOTIFY && is_write) {
		/* the path without ioeventfd: same eventfd, same thread */
		if (write(b->kick_fd, &one, sizeof(one)) < 0)
			hv_log("virtio-blk: kick: %s", strerror(errno));
		return;
	}
	if (off == VP_ISR && !is_write) {
		*data = (uint8_t)atomic_exchange(&b->isr, 0);
		if (!b->irqfd)
			hv_vm_irq_line(b->vm, b->pci.gsi, 0);
		return;
	}
	pthread_mutex_lock(&b->lock);
	if (off >= VP_CONFIG) {
		unsigned c = off - VP_CONFIG;

		if (!is_write) {
			memset(data, 0xff, size);
			if (c < sizeof(b->config) && size <= sizeof(b->config) - c)
				memcpy(data, b->config + c, size);
		}
		goto out;
	}
	switch (off) {
	case VP_HOST_FEATURES:
		if (!is_write)
			memcpy(data, &(uint32_t){ (uint32_t)b->host_features },
			       size < 4 ? size : 4);
		break;
	case VP_GUEST_FEATURES:
		if (is_write)
			b->guest_features = v & (uint32_t)b->host_features;
		else
			memcpy(data, &(uint32_t){ (uint32_t)b->guest_features },
			       size < 4 ? size : 4);
		break;
	case VP_QUEUE_PFN:
		if (!is_write) {
			uint32_t pfn = b->qsel ? 0 : b->pfn;

			memcpy(data, &pfn, size < 4 ? size : 4);
		} else if (b->qsel == 0) {
			b->pfn = v;
			if (!v) {
				hv_virtq_reset(&b->vq);
			} else {
				int ret = hv_virtq_setup_legacy(&b->vq, &b->vm->mem,
								VBLK_QSZ, v);

				if (ret)
					set_broken(b, ret);
			}
		}
		break;
	case VP_QUEUE_NUM:
		if (!is_write) {
			uint16_t n = b->qsel ? 0 : VBLK_QSZ;

			memcpy(data, &n, size < 2 ? size : 2);
		}
		break;
	case VP_QUEUE_SEL:
		if (is_write)
			b->qsel = (uint16_t)v;
		else
			memcpy(data, &b->qsel, size < 2 ? size : 2);
		break;
	case VP_STATUS:
		if (!is_write) {
			*data = b->status;
		} else if ((v & 0xff) == 0) {
			reset_locked(b);
		} else {
			b->status = (uint8_t)v | (b->broken ? STATUS_NEEDS_RESET : 0);
		}
		break;
	default:
		if (!is_write)
			memset(data, 0xff, size);
		break;
	}
out:
	pthread_mutex_unlock(&b->lock);
}

/* Modern common configuration: a read of the register file. */
static void common_read(struct hv_vblk *b, unsigned off, uint8_t *data,
			unsigned size)
{
	uint8_t c[MOD_COMMON_LEN] = { 0 };
	uint32_t df = b->dfselect == 0 ? (uint32_t)b->host_features :
		      b->dfselect == 1 ? (uint32_t)(b->host_features >> 32) : 0;
	uint32_t gf = b->gfselect == 0 ? (uint32_t)b->guest_features :
		      b->gfselect == 1 ? (uint32_t)(b->guest_features >> 32) : 0;
	bool q0 = b->qsel == 0;

	memcpy(c + 0x00, &b->dfselect, 4);
	memcpy(c + 0x04, &df, 4);
	memcpy(c + 0x08, &b->gfselect, 4);
	memcpy(c + 0x0c, &gf, 4);
	memcpy(c + 0x10, &(uint16_t){ 0xffff }, 2);	/* no MSI-X */
	memcpy(c + 0x12, &(uint16_t){ 1 }, 2);		/* num_queues */
	c[0x14] = b->status;
	c[0x15] = 0;					/* config generation */
	memcpy(c + 0x16, &b->qsel, 2);
	memcpy(c + 0x18, &(uint16_t){ q0 ? b->q_size : 0 }, 2);
	memcpy(c + 0x1a, &(uint16_t){ 0xffff }, 2);	/* no MSI-X */
	memcpy(c + 0x1c, &(uint16_t){ q0 ? b->q_enable : 0 }, 2);
	memcpy(c + 0x1e, &(uint16_t){ 0 }, 2);		/* notify offset */
	memcpy(c + 0x20, &b->q_desc, 8);
	memcpy(c + 0x28, &b->q_driver, 8);
	memcpy(c + 0x30, &b->q_device, 8);
	memset(data, 0, size);
	if (off < sizeof(c))
		memcpy(data, c + off, size < sizeof(c) - off ? size : sizeof(c) - off);
}

/* Set 4 or 8 bytes of a 64-bit queue address (drivers write halves). */
static void set_addr(uint64_t *a, unsigned byte, uint64_t v, unsigned size)
{
	if (size == 8 && byte == 0)
		*a = v;
	else if (size == 4 && byte == 0)
		*a = (*a & ~0xffffffffull) | (uint32_t)v;
	else if (size == 4 && byte == 4)
		*a = (*a & 0xffffffffull) | v << 32;
}

static void common_write(struct hv_vblk *b, unsigned off, uint64_t v,
			 unsigned size)
{
	bool q0 = b->qsel == 0;

	switch (off) {
	case 0x00: b->dfselect = (uint32_t)v; break;
	case 0x08: b->gfselect = (uint32_t)v; break;
	case 0x0c:
		if (b->status & STATUS_FEATURES_OK)
			break;		/* frozen once accepted */
		if (b->gfselect == 0)
			b->guest_features = (b->guest_features & ~0xffffffffull) |
					    ((uint32_t)v & b->host_features);
		else if (b->gfselect == 1)
			b->guest_features = (uint32_t)b->guest_features |
					    ((v << 32) & b->host_features);
		break;
	case 0x14:
		if ((v & 0xff) == 0) {
			reset_locked(b);
			break;
		}
		/* a modern driver must take VERSION_1 to get FEATURES_OK */
		if ((v & STATUS_FEATURES_OK) &&
		    !(b->guest_features >> VIRTIO_F_VERSION_1 & 1))
			v &= ~(uint64_t)STATUS_FEATURES_OK;
		b->status = (uint8_t)v | (b->broken ? STATUS_NEEDS_RESET : 0);
		break;
	case 0x16: b->qsel = (uint16_t)v; break;
	case 0x18:
		if (q0 && !b->q_enable && v && v <= VBLK_QSZ && !(v & (v - 1)))
			b->q_size = (uint16_t)v;
		break;
	case 0x1c:
		if (q0 && (v & 1) && !b->q_enable) {
			int ret = hv_virtq_setup(&b->vq, &b->vm->mem, b->q_size,
						 b->q_desc, b->q_driver,
						 b->q_device);

			if (ret)
				set_broken(b, ret);
			else
				b->q_enable = 1;
		}
		break;
	case 0x20: case 0x24:
		if (q0 && !b->q_enable)
			set_addr(&b->q_desc, off - 0x20, v, size);
		break;
	case 0x28: case 0x2c:
		if (q0 && !b->q_enable)
			set_addr(&b->q_driver, off - 0x28, v, size);
		break;
	case 0x30: case 0x34:
		if (q0 && !b->q_enable)
			set_addr(&b->q_device, off - 0x30, v, size);
		break;
	default:
		break;		/* read-only or MSI-X vectors: ignored */
	}
}

static void mem_io(void *opaque, uint64_t off, uint8_t *data, unsigned size,
		   bool is_write)
{
	struct hv_vblk *b = opaque;
	uint64_t v = 0, one = 1;

	if (size > 8) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	if (is_write)
		memcpy(&v, data, size);
	if (off >= MOD_NOTIFY && off < MOD_NOTIFY + 4) {
		/* without an MMIO ioeventfd: same eventfd, same thread */
		if (is_write && write(b->kick_fd, &one, sizeof(one)) < 0)
			hv_log("virtio-blk: kick: %s", strerror(errno));
		if (!is_write)
			memset(data, 0, size);
		return;
	}
	if (off == MOD_ISR) {
		if (is_write)
			return;
		memset(data, 0, size);
		*data = (uint8_t)atomic_exchange(&b->isr, 0);
		if (!b->irqfd)
			hv_vm_irq_line(b->vm, b->pci.gsi, 0);
		return;
	}
	pthread_mutex_lock(&b->lock);
	if (off >= MOD_DEVICE && off < MOD_DEVICE + 0x1000) {
		unsigned c = (unsigned)(off - MOD_DEVICE);

		if (!is_write) {
			memset(data, 0, size);
			if (c < sizeof(b->config) && size <= sizeof(b->config) - c)
				memcpy(data, b->config + c, size);
		}
	} else if (off < MOD_COMMON_LEN) {
		if (is_write)
			common_write(b, (unsigned)off, v, size);
		else
			common_read(b, (unsigned)off, data, size);
	} else if (!is_write) {
		memset(data, 0, size);
	}
	pthread_mutex_unlock(&b->lock);
}

/* The four virtio 1.x vendor capabilities, all in BAR 4. */
static int add_caps(struct hv_pci_dev *d)
{
	static const struct { uint8_t type; uint32_t off, len; } caps[] = {
		{ 1, MOD_COMMON, MOD_COMMON_LEN },
		{ 3, MOD_ISR, 1 },
		{ 4, MOD_DEVICE, 0x18 },
		{ 2, MOD_NOTIFY, 4 },		/* last: 20 bytes */
	};

	for (unsigned i = 0; i < 4; i++) {
		uint8_t c[20] = { 0x09, 0, caps[i].type == 2 ? 20 : 16,
				  caps[i].type, 4 };
		int ret;

		memcpy(c + 8, &caps[i].off, 4);
		memcpy(c + 12, &caps[i].len, 4);
		/* notify_off_multiplier 0: every queue notifies at MOD_NOTIFY */
		ret = hv_pci_add_cap(d, c, c[2]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int hv_vblk_create(struct hv_vm *vm, struct hv_disk *disk, struct hv_vblk **out)
{
	struct hv_vblk *b = calloc(1, sizeof(*b));
	uint64_t cap;
	uint32_t u32;
	int ret;

	if (!b)
		return -ENOMEM;
	b->vm = vm;
	b->disk = disk;
	b->kick_fd = b->irq_fd = b->resample_fd = b->stop_fd = -1;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->idle, NULL);
	b->reqs = calloc(VBLK_QSZ, sizeof(*b->reqs));
	if (!b->reqs) {
		ret = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < VBLK_QSZ; i++) {
		b->reqs[i].b = b;
		b->reqs[i].next = b->free;
		b->free = &b->reqs[i];
	}
	hv_virtq_reset(&b->vq);
	b->vq.mem = &vm->mem;
	b->host_features = 1ull << VIRTIO_F_VERSION_1 |
			   1u << VIRTIO_BLK_F_SEG_MAX |
			   1u << VIRTIO_BLK_F_BLK_SIZE |
			   1u << VIRTIO_BLK_F_FLUSH |
			   (disk->readonly ? 1u << VIRTIO_BLK_F_RO : 0);
	b->q_size = VBLK_QSZ;
	cap = disk->size >> 9;
	memcpy(b->config + 0x00, &cap, 8);		/* capacity */
	u32 = 1u << 20;
	memcpy(b->config + 0x08, &u32, 4);		/* size_max */
	u32 = VBLK_SEG_MAX;
	memcpy(b->config + 0x0c, &u32, 4);		/* seg_max */
	memcpy(b->config + 0x14, &disk->sector, 4);	/* blk_size */

	b->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	b->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	b->resample_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->kick_fd < 0 || b->stop_fd < 0 || b->irq_fd < 0 ||
	    b->resample_fd < 0) {
		ret = -errno;
		goto fail;
	}
	b->pci.bar_io = bar_io;
	b->pci.mem_io = mem_io;
	b->pci.bar_moved = bar_moved;
	b->pci.opaque = b;
	ret = hv_pci_add(&vm->pci, &b->pci, 0x1af4, 0x1001, 0x01000000, 2,
			 VBLK_BAR_SIZE);
	if (ret)
		goto fail;
	hv_pci_add_mem_bar(&b->pci, VBLK_MEM_SIZE);
	ret = add_caps(&b->pci);
	if (ret)
		goto fail;
	if (vm->have_irqfd) {
		struct kvm_irqfd irqfd = {
			.fd = (uint32_t)b->irq_fd, .gsi = b->pci.gsi,
			.flags = KVM_IRQFD_FLAG_RESAMPLE,
			.resamplefd = (uint32_t)b->resample_fd,
		};

		b->irqfd = ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) == 0;
	}
	if (vm->have_ioeventfd) {
		b->ioeventfd = true;
		bar_moved(b, 0, 0, hv_pci_bar_base(&b->pci));
		bar_moved(b, 4, 0, hv_pci_mem_base(&b->pci));
		if (!b->ioev_port || !b->ioev_mmio) {
			/* all or nothing, so that a moved BAR cannot leave a
			 * stale registration behind */
			bar_moved(b, 0, 0, 0);
			bar_moved(b, 4, 0, 0);
			b->ioeventfd = false;
			hv_log("virtio-blk: no ioeventfd, notifies go through "
			       "the vCPU thread");
		}
	}
	if (pthread_create(&b->thread, NULL, io_thread, b)) {
		ret = -EAGAIN;
		goto fail;
	}
	b->thread_started = true;
	*out = b;
	return 0;
fail:
	b->disk = NULL;		/* still the caller's */
	hv_vblk_destroy(b);
	return ret;
}

void hv_vblk_destroy(struct hv_vblk *b)
{
	uint64_t one = 1;

	if (!b)
		return;
	if (b->thread_started) {
		if (write(b->stop_fd, &one, sizeof(one)) < 0)
			hv_log("virtio-blk: stop: %s", strerror(errno));
		pthread_join(b->thread, NULL);
	}
	/* No new submissions, then wait for the requests in flight; closing
	 * the disk waits until their callbacks (which touch b) returned. */
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	while (b->inflight)
		pthread_cond_wait(&b->idle, &b->lock);
	pthread_mutex_unlock(&b->lock);
	if (b->disk)
		hv_disk_close(b->disk);
	if (b->irqfd) {
		struct kvm_irqfd irqfd = {
			.fd = (uint32_t)b->irq_fd, .gsi = b->pci.gsi,
			.flags = KVM_IRQFD_FLAG_DEASSIGN,
		};

		ioctl(b->vm->vm_fd, KVM_IRQFD, &irqfd);
	}
	if (b->ioev_port)
		ioeventfd_set(b, b->ioev_port + VP_QUEUE_NOTIFY, true, false);
	if (b->ioev_mmio)
		ioeventfd_set(b, b->ioev_mmio + MOD_NOTIFY, false, false);
	if (b->kick_fd >= 0)
		close(b->kick_fd);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	if (b->irq_fd >= 0)
		close(b->irq_fd);
	if (b->resample_fd >= 0)
		close(b->resample_fd);
	free(b->reqs);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->idle);
	free(b);
}
