/*
 * test_hv_vblk.c - the virtio-blk device model without KVM: a legacy
 * virtio-pci driver written here drives it through its I/O BAR, over guest
 * RAM in a plain buffer and an in-memory disk backend that completes on its
 * own thread.  Valid requests (read, write, flush, get-id), requests the
 * device must refuse with a status (beyond the disk, misaligned, a write to
 * a read-only disk, unknown type), and a malicious chain that must stop the
 * queue until the driver resets the device.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "hypervisor/hv_int.h"

#define RAM_SIZE	(1u << 20)
#define RING_GPA	0x10000u	/* desc 0x10000, avail 0x11000, used 0x12000 */
#define USED_GPA	0x12000u
#define HDR_GPA		0x20000u
#define DATA_GPA	0x21000u
#define STATUS_GPA	0x30000u
#define QSZ		256
#define DISK_SIZE	(1u << 20)

/* ---- in-memory disk, completing on a thread of its own -------------------- */

struct memdisk {
	struct hv_disk d;
	uint8_t *data;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct hv_disk_req *q[512];
	unsigned head, tail;
	unsigned flushes;
	bool stop;
	pthread_t thread;
};

static void *memdisk_main(void *arg)
{
	struct memdisk *m = arg;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		struct hv_disk_req *r;
		uint64_t off;

		while (m->head == m->tail && !m->stop)
			pthread_cond_wait(&m->cond, &m->lock);
		if (m->head == m->tail)
			break;
		r = m->q[m->head++ % 512];
		if (r->op == HV_DISK_FLUSH)
			m->flushes++;
		pthread_mutex_unlock(&m->lock);
		off = r->offset;
		for (int i = 0; i < r->iovcnt; i++) {
			if (r->op == HV_DISK_READ)
				memcpy(r->iov[i].iov_base, m->data + off, r->iov[i].iov_len);
			else if (r->op == HV_DISK_WRITE)
				memcpy(m->data + off, r->iov[i].iov_base, r->iov[i].iov_len);
			off += r->iov[i].iov_len;
		}
		r->result = 0;
		r->cb(r);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

static int memdisk_submit(struct hv_disk *d, struct hv_disk_req *r)
{
	struct memdisk *m = d->priv;

	/* the device checked the range: a request outside it is a bug */
	if (r->op != HV_DISK_FLUSH && (r->offset > DISK_SIZE ||
				       r->len > DISK_SIZE - r->offset))
		abort();
	pthread_mutex_lock(&m->lock);
	m->q[m->tail++ % 512] = r;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void memdisk_close(struct hv_disk *d)
{
	struct memdisk *m = d->priv;

	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	free(m->data);
	/* hv_disk_close frees d->name and d, which is m */
}

static const struct hv_disk_ops memdisk_ops = {
	.name = "mem", .submit = memdisk_submit, .close = memdisk_close,
};

/* ---- fixture ------------------------------------------------------------ */

struct env {
	struct hv_vm *vm;
	struct memdisk *m;
	struct hv_vblk *b;
	uint16_t io, avail_idx, used_seen;
	unsigned nreq;
};

static uint32_t bar(struct env *e, unsigned off, unsigned size, bool write,
		    uint32_t v)
{
	uint8_t d[4];

	memcpy(d, &v, 4);
	assert_true(hv_pci_bar_io(&e->vm->pci, (uint16_t)(e->io + off), d, size,
				  write));
	v = 0;
	memcpy(&v, d, size);
	return v;
}

static void *gpa(struct env *e, uint64_t a)
{
	return e->vm->ram + a;
}

static void driver_init(struct env *e)
{
	bar(e, 0x12, 1, true, 0);			/* reset */
	bar(e, 0x12, 1, true, 1 | 2);
	bar(e, 0x04, 4, true, bar(e, 0x00, 4, false, 0));
	bar(e, 0x0e, 2, true, 0);
	assert_int_equal(bar(e, 0x0c, 2, false, 0), QSZ);
	memset(gpa(e, RING_GPA), 0, 0x4000);
	bar(e, 0x08, 4, true, RING_GPA >> 12);
	bar(e, 0x12, 1, true, 1 | 2 | 4);
	e->avail_idx = e->used_seen = 0;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	struct memdisk *m = calloc(1, sizeof(*m));

	e->vm = calloc(1, sizeof(*e->vm));
	e->vm->ram = calloc(1, RAM_SIZE);
	e->vm->ram_size = e->vm->low_size = RAM_SIZE;
	e->vm->mem.nr = 1;
	e->vm->mem.r[0].size = RAM_SIZE;
	e->vm->mem.r[0].hva = e->vm->ram;
	e->vm->vm_fd = e->vm->kvm_fd = -1;
	hv_pci_init(&e->vm->pci);
	m->data = calloc(1, DISK_SIZE);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->d.ops = &memdisk_ops;
	m->d.size = DISK_SIZE;
	m->d.sector = 512;
	m->d.name = strdup("memdisk-test");
	m->d.priv = m;
	assert_int_equal(pthread_create(&m->thread, NULL, memdisk_main, m), 0);
	e->m = m;
	assert_int_equal(hv_vblk_create(e->vm, &m->d, &e->b), 0);
	e->io = hv_pci_bar_base(e->vm->pci.dev[1]);
	driver_init(e);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	hv_vblk_destroy(e->b);		/* closes and frees the disk */
	free(e->vm->ram);
	free(e->vm);
	free(e);
	return 0;
}

static void set_desc(struct env *e, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = gpa(e, RING_GPA + 16 * i);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void post(struct env *e, uint16_t head)
{
	uint8_t *avail = gpa(e, RING_GPA + 16 * QSZ);

	memcpy(avail + 4 + 2 * (e->avail_idx % QSZ), &head, 2);
	e->avail_idx++;
	__atomic_store_n((uint16_t *)(avail + 2), e->avail_idx, __ATOMIC_RELEASE);
	bar(e, 0x10, 2, true, 0);			/* notify */
}

/* Wait for the next used entry; returns its length, or -1 on timeout. */
static int64_t wait_used(struct env *e, unsigned ms)
{
	uint8_t *used = gpa(e, USED_GPA);

	for (unsigned t = 0; t < ms; t++) {
		uint16_t idx = __atomic_load_n((uint16_t *)(used + 2),
					       __ATOMIC_ACQUIRE);

		if (idx != e->used_seen) {
			uint32_t len;

			memcpy(&len, used + 4 + 8 * (e->used_seen % QSZ) + 4, 4);
			e->used_seen++;
			return len;
		}
		usleep(1000);
	}
	return -1;
}

static unsigned req_timeout_ms = 5000;

/* One request: header, optional data segment, status byte.  Returns the
 * status byte (or -1 when not completed within req_timeout_ms). */
static int request(struct env *e, uint32_t type, uint64_t sector, uint32_t len,
		   int64_t *used_len)
{
	uint8_t *st = gpa(e, STATUS_GPA);
	uint8_t *hdr = gpa(e, HDR_GPA);
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	int64_t l;

	memset(hdr, 0, 16);
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	*st = 0xee;
	set_desc(e, 0, HDR_GPA, 16, VRING_DESC_F_NEXT, len ? 1 : 2);
	set_desc(e, 1, DATA_GPA, len, VRING_DESC_F_NEXT |
		 (in ? VRING_DESC_F_WRITE : 0), 2);
	set_desc(e, 2, STATUS_GPA, 1, VRING_DESC_F_WRITE, 0);
	post(e, 0);
	l = wait_used(e, req_timeout_ms);
	if (used_len)
		*used_len = l;
	return l < 0 ? -1 : *st;
}

static void test_read_write_flush_id(void **state)
{
	struct env *e = *state;
	int64_t len;

	memset(gpa(e, DATA_GPA), 0x5a, 1024);
	assert_int_equal(request(e, VIRTIO_BLK_T_OUT, 8, 1024, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	assert_int_equal(e->m->data[8 * 512], 0x5a);
	assert_int_equal(e->m->data[8 * 512 + 1023], 0x5a);
	assert_int_equal(e->m->data[8 * 512 + 1024], 0);

	memset(gpa(e, DATA_GPA), 0, 2048);
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, 7, 2048, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 2049);
	assert_int_equal(((uint8_t *)gpa(e, DATA_GPA))[511], 0);
	assert_int_equal(((uint8_t *)gpa(e, DATA_GPA))[512], 0x5a);

	assert_int_equal(request(e, VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(e->m->flushes, 1);

	assert_int_equal(request(e, VIRTIO_BLK_T_GET_ID, 0, 20, &len), VIRTIO_BLK_S_OK);
	assert_memory_equal(gpa(e, DATA_GPA), "memdisk-test", 12);
	/* the ISR says a completion was signalled, once */
	assert_int_equal(bar(e, 0x13, 1, false, 0) & 1, 1);
	assert_int_equal(bar(e, 0x13, 1, false, 0), 0);
}

static void test_refused_requests(void **state)
{
	struct env *e = *state;

	/* last sector is fine, one past it is not */
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, 512, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, DISK_SIZE / 512, 512, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, 1024, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* sector * 512 overflowing 64 bits */
	assert_int_equal(request(e, VIRTIO_BLK_T_OUT, 1ull << 60, 512, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* not a whole sector */
	assert_int_equal(request(e, VIRTIO_BLK_T_OUT, 0, 100, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(e, 99, 0, 512, NULL), VIRTIO_BLK_S_UNSUPP);
	/* read-only disk */
	e->m->d.readonly = true;
	assert_int_equal(request(e, VIRTIO_BLK_T_OUT, 0, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, 0, 512, NULL), VIRTIO_BLK_S_OK);
	e->m->d.readonly = false;
	/* a chain without a status byte completes with length 0 */
	set_desc(e, 0, HDR_GPA, 16, 0, 0);
	post(e, 0);
	assert_int_equal(wait_used(e, 5000), 0);
	/* the device still works */
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, 0, 512, NULL), VIRTIO_BLK_S_OK);
}

static void test_bad_chain_needs_reset(void **state)
{
	struct env *e = *state;

	/* a descriptor loop: the device gives up on the queue */
	set_desc(e, 5, HDR_GPA, 16, VRING_DESC_F_NEXT, 6);
	set_desc(e, 6, DATA_GPA, 512, VRING_DESC_F_NEXT, 5);
	post(e, 5);
	for (int t = 0; t < 5000 && !(bar(e, 0x12, 1, false, 0) & 0x40); t++)
		usleep(1000);
	assert_int_equal(bar(e, 0x12, 1, false, 0) & 0x40, 0x40);
	/* nothing more is processed until a reset (the device's 1 ms poll
	 * timer would have picked it up long before 300 ms) */
	req_timeout_ms = 300;
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, 0, 512, NULL), -1);
	req_timeout_ms = 5000;
	driver_init(e);
	assert_int_equal(bar(e, 0x12, 1, false, 0) & 0x40, 0);
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, 0, 512, NULL), VIRTIO_BLK_S_OK);

	/* a buffer outside guest RAM */
	set_desc(e, 9, RAM_SIZE - 8, 16, 0, 0);
	post(e, 9);
	for (int t = 0; t < 5000 && !(bar(e, 0x12, 1, false, 0) & 0x40); t++)
		usleep(1000);
	assert_int_equal(bar(e, 0x12, 1, false, 0) & 0x40, 0x40);
	driver_init(e);

	/* a ring placed outside guest RAM is refused at once */
	bar(e, 0x08, 4, true, (RAM_SIZE >> 12) - 1);
	assert_int_equal(bar(e, 0x12, 1, false, 0) & 0x40, 0x40);
}

/* ---- the virtio 1.x interface (memory BAR 4) ------------------------------ */

static uint64_t mmio(struct env *e, uint64_t off, unsigned size, bool write,
		     uint64_t v)
{
	uint64_t base = hv_pci_mem_base(e->vm->pci.dev[1]);
	uint8_t d[8];

	memcpy(d, &v, 8);
	assert_true(hv_pci_mmio(&e->vm->pci, base + off, d, size, write));
	v = 0;
	memcpy(&v, d, size);
	return v;
}

/* Walk the capability list: the offset in BAR 4 of cfg_type `type`. */
static uint32_t cap_offset(struct env *e, unsigned type)
{
	const uint8_t *cfg = e->vm->pci.dev[1]->cfg;
	unsigned at = cfg[0x34], n = 0;

	assert_true(cfg[0x06] & 0x10);		/* capability list */
	while (at && n++ < 16) {
		if (cfg[at] == 0x09 && cfg[at + 3] == type) {
			uint32_t off;

			assert_int_equal(cfg[at + 4], 4);	/* BAR 4 */
			memcpy(&off, cfg + at + 8, 4);
			return off;
		}
		at = cfg[at + 1];
	}
	fail_msg("no virtio capability of type %u", type);
	return 0;
}

static void test_modern(void **state)
{
	struct env *e = *state;
	uint32_t common = cap_offset(e, 1), notify = cap_offset(e, 2);
	uint32_t isr = cap_offset(e, 3), dev = cap_offset(e, 4);
	uint8_t *st = gpa(e, STATUS_GPA), *hdr = gpa(e, HDR_GPA);
	uint32_t type = VIRTIO_BLK_T_IN;
	uint64_t sector = 3;
	/* rings wherever the driver likes (modern): not the legacy layout */
	const uint64_t desc = 0x40000, drv = 0x41000, devr = 0x42000;

	assert_int_equal(mmio(e, dev, 4, false, 0), DISK_SIZE / 512);
	mmio(e, common + 0x14, 1, true, 0);			/* reset */
	mmio(e, common + 0x14, 1, true, 1 | 2);
	mmio(e, common + 0x00, 4, true, 1);
	assert_int_equal(mmio(e, common + 0x04, 4, false, 0) & 1, 1); /* VERSION_1 */
	/* without VERSION_1 the device refuses FEATURES_OK */
	mmio(e, common + 0x14, 1, true, 1 | 2 | 8);
	assert_int_equal(mmio(e, common + 0x14, 1, false, 0) & 8, 0);
	mmio(e, common + 0x08, 4, true, 1);
	mmio(e, common + 0x0c, 4, true, 1);
	mmio(e, common + 0x14, 1, true, 1 | 2 | 8);
	assert_int_equal(mmio(e, common + 0x14, 1, false, 0) & 8, 8);
	mmio(e, common + 0x16, 2, true, 0);
	assert_int_equal(mmio(e, common + 0x18, 2, false, 0), QSZ);
	mmio(e, common + 0x18, 2, true, 100);	/* not a power of two: kept */
	assert_int_equal(mmio(e, common + 0x18, 2, false, 0), QSZ);
	mmio(e, common + 0x18, 2, true, 16);
	mmio(e, common + 0x20, 4, true, (uint32_t)desc);
	mmio(e, common + 0x24, 4, true, 0);
	mmio(e, common + 0x28, 8, true, drv);
	mmio(e, common + 0x30, 4, true, (uint32_t)devr);
	mmio(e, common + 0x34, 4, true, 0);
	mmio(e, common + 0x1c, 2, true, 1);
	assert_int_equal(mmio(e, common + 0x1c, 2, false, 0), 1);
	assert_int_equal(mmio(e, common + 0x28, 8, false, 0), drv);
	mmio(e, common + 0x14, 1, true, 1 | 2 | 4 | 8);

	/* one read of sector 3, notified through the notify area */
	e->m->data[3 * 512] = 0x77;
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	*st = 0xee;
	{
		uint8_t *d = gpa(e, desc);
		uint64_t a[3] = { HDR_GPA, DATA_GPA, STATUS_GPA };
		uint32_t l[3] = { 16, 512, 1 };
		uint16_t f[3] = { VRING_DESC_F_NEXT,
				  VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
				  VRING_DESC_F_WRITE };

		for (unsigned i = 0; i < 3; i++) {
			uint16_t next = (uint16_t)(i + 1);

			memcpy(d + 16 * i, &a[i], 8);
			memcpy(d + 16 * i + 8, &l[i], 4);
			memcpy(d + 16 * i + 12, &f[i], 2);
			memcpy(d + 16 * i + 14, &next, 2);
		}
		memset(gpa(e, drv + 4), 0, 2);		/* ring[0] = head 0 */
		__atomic_store_n((uint16_t *)gpa(e, drv + 2), 1, __ATOMIC_RELEASE);
	}
	mmio(e, notify, 2, true, 0);
	for (int t = 0; t < 5000 &&
	     __atomic_load_n((uint16_t *)gpa(e, devr + 2), __ATOMIC_ACQUIRE) != 1; t++)
		usleep(1000);
	assert_int_equal(__atomic_load_n((uint16_t *)gpa(e, devr + 2),
					 __ATOMIC_ACQUIRE), 1);
	assert_int_equal(*st, VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)gpa(e, DATA_GPA))[0], 0x77);
	assert_int_equal(mmio(e, isr, 1, false, 0), 1);
	assert_int_equal(mmio(e, isr, 1, false, 0), 0);

	/* a queue placed outside RAM: NEEDS_RESET at enable */
	mmio(e, common + 0x14, 1, true, 0);
	assert_int_equal(mmio(e, common + 0x1c, 2, false, 0), 0);
	mmio(e, common + 0x20, 8, true, RAM_SIZE - 16);
	mmio(e, common + 0x1c, 2, true, 1);
	assert_int_equal(mmio(e, common + 0x14, 1, false, 0) & 0x40, 0x40);
	/* and the legacy interface still works after a reset */
	driver_init(e);
	assert_int_equal(request(e, VIRTIO_BLK_T_IN, 3, 512, NULL), VIRTIO_BLK_S_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_write_flush_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_chain_needs_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modern, setup, teardown),
	};

	return cmocka_run_group_tests_name("hv_vblk", tests, NULL, NULL);
}
