/*
 * test_hv_virtq.c - the virtqueue parser against well-formed and malicious
 * descriptor chains: loops, indices and buffers out of range, address
 * overflow, rings outside guest memory, wrong segment order, indirect
 * descriptors, a runaway avail index; and the virtio-blk request split.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hypervisor/virtq.h"

#define MEM_GPA		0x100000ull	/* guest RAM starts at 1 MiB here */
#define MEM_SIZE	0x10000ull
#define QSZ		8
#define DESC		(MEM_GPA + 0x0000)	/* legacy layout from PFN */
#define AVAIL		(DESC + 16 * QSZ)
#define USED		(MEM_GPA + 0x1000)
#define DATA		(MEM_GPA + 0x2000)

struct env {
	uint8_t *ram;
	struct hv_gmem mem;
	struct hv_virtq q;
	uint16_t avail_idx;
};

static uint8_t *at(struct env *e, uint64_t gpa)
{
	return e->ram + (gpa - MEM_GPA);
}

static void set_desc(struct env *e, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *d = at(e, DESC + 16 * i);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void add_avail(struct env *e, uint16_t head)
{
	memcpy(at(e, AVAIL + 4 + 2 * (e->avail_idx % QSZ)), &head, 2);
	e->avail_idx++;
	memcpy(at(e, AVAIL + 2), &e->avail_idx, 2);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	e->ram = calloc(1, MEM_SIZE);
	e->mem.nr = 1;
	e->mem.r[0].gpa = MEM_GPA;
	e->mem.r[0].size = MEM_SIZE;
	e->mem.r[0].hva = e->ram;
	assert_int_equal(hv_virtq_setup_legacy(&e->q, &e->mem, QSZ,
					       MEM_GPA >> 12), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	free(e->ram);
	free(e);
	return 0;
}

static void test_gmem_bounds(void **state)
{
	struct env *e = *state;

	assert_ptr_equal(hv_gmem_ptr(&e->mem, MEM_GPA, MEM_SIZE), e->ram);
	assert_null(hv_gmem_ptr(&e->mem, MEM_GPA, MEM_SIZE + 1));
	assert_null(hv_gmem_ptr(&e->mem, MEM_GPA - 1, 2));
	assert_null(hv_gmem_ptr(&e->mem, MEM_GPA + MEM_SIZE, 0));
	assert_null(hv_gmem_ptr(&e->mem, UINT64_MAX - 8, 16));
	assert_null(hv_gmem_ptr(&e->mem, MEM_GPA + 16, UINT64_MAX));
	assert_non_null(hv_gmem_ptr(&e->mem, MEM_GPA + MEM_SIZE - 1, 1));
}

static void test_setup_rejects(void **state)
{
	struct env *e = *state;
	struct hv_virtq q;

	memset(&q, 0, sizeof(q));
	assert_int_equal(hv_virtq_setup_legacy(&q, &e->mem, 6, MEM_GPA >> 12),
			 -HV_VQ_E_RING);	/* not a power of two */
	assert_int_equal(hv_virtq_setup_legacy(&q, &e->mem, 0, MEM_GPA >> 12),
			 -HV_VQ_E_RING);
	assert_int_equal(hv_virtq_setup_legacy(&q, &e->mem, 2048, MEM_GPA >> 12),
			 -HV_VQ_E_RING);	/* larger than the maximum */
	/* ring runs past the end of RAM */
	assert_int_equal(hv_virtq_setup_legacy(&q, &e->mem, 256,
					       (MEM_GPA + MEM_SIZE - 0x1000) >> 12),
			 -HV_VQ_E_RING);
	assert_int_equal(hv_virtq_setup_legacy(&q, &e->mem, 8, 0), -HV_VQ_E_RING);
	assert_int_equal(hv_virtq_setup_legacy(&q, &e->mem, 8, UINT64_MAX >> 4),
			 -HV_VQ_E_RING);
	assert_int_equal(hv_virtq_setup(&q, &e->mem, 8, DESC + 8, AVAIL, USED),
			 -HV_VQ_E_RING);	/* misaligned */
	assert_int_equal(q.size, 0);
	/* an unset queue pops nothing */
	{
		static struct hv_virtq_elem el;

		assert_int_equal(hv_virtq_pop(&q, &el), 0);
	}
}

static void test_good_chain_and_blk(void **state)
{
	struct env *e = *state;
	static struct hv_virtq_elem el;
	struct hv_blk_req r;
	uint32_t type = VIRTIO_BLK_T_IN;
	uint64_t sector = 77;

	memcpy(at(e, DATA), &type, 4);
	memcpy(at(e, DATA + 8), &sector, 8);
	set_desc(e, 5, DATA, 16, VRING_DESC_F_NEXT, 2);
	set_desc(e, 2, DATA + 0x100, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 7);
	set_desc(e, 7, DATA + 0x400, 1, VRING_DESC_F_WRITE, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 0);	/* empty */
	add_avail(e, 5);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 1);
	assert_int_equal(el.head, 5);
	assert_int_equal(el.nout, 1);
	assert_int_equal(el.nin, 2);
	assert_int_equal(el.out_len, 16);
	assert_int_equal(el.in_len, 513);
	assert_ptr_equal(el.iov[1].iov_base, at(e, DATA + 0x100));
	assert_int_equal(hv_virtq_pop(&e->q, &el), 0);

	assert_int_equal(hv_blk_req_parse(&el, &r), 0);
	assert_int_equal(r.type, VIRTIO_BLK_T_IN);
	assert_int_equal(r.sector, 77);
	assert_int_equal(r.first, 1);
	assert_int_equal(r.niov, 1);
	assert_int_equal(r.data_len, 512);
	assert_ptr_equal(r.status, at(e, DATA + 0x400));

	hv_virtq_push(&e->q, el.head, 513);
	{
		uint16_t idx;
		uint32_t id, len;

		memcpy(&idx, at(e, USED + 2), 2);
		memcpy(&id, at(e, USED + 4), 4);
		memcpy(&len, at(e, USED + 8), 4);
		assert_int_equal(idx, 1);
		assert_int_equal(id, 5);
		assert_int_equal(len, 513);
	}
}

static void test_header_split_and_out(void **state)
{
	struct env *e = *state;
	static struct hv_virtq_elem el;
	struct hv_blk_req r;
	uint32_t type = VIRTIO_BLK_T_OUT;
	uint64_t sector = 9;

	/* header in two pieces of 8 bytes, two data segments, status */
	memcpy(at(e, DATA), &type, 4);
	memcpy(at(e, DATA + 0x40), &sector, 8);
	set_desc(e, 0, DATA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(e, 1, DATA + 0x40, 8, VRING_DESC_F_NEXT, 2);
	set_desc(e, 2, DATA + 0x200, 512, VRING_DESC_F_NEXT, 3);
	set_desc(e, 3, DATA + 0x400, 1024, VRING_DESC_F_NEXT, 4);
	set_desc(e, 4, DATA + 0x800, 1, VRING_DESC_F_WRITE, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 1);
	assert_int_equal(hv_blk_req_parse(&el, &r), 0);
	assert_int_equal(r.type, VIRTIO_BLK_T_OUT);
	assert_int_equal(r.sector, 9);
	assert_int_equal(r.first, 2);
	assert_int_equal(r.niov, 2);
	assert_int_equal(r.data_len, 1536);

	/* an OUT whose data is writable is not a valid request */
	set_desc(e, 2, DATA + 0x200, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 4);
	set_desc(e, 1, DATA + 0x40, 8, VRING_DESC_F_NEXT, 2);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 1);
	assert_int_equal(hv_blk_req_parse(&el, &r), 0);
	assert_int_equal(r.type, (uint32_t)-1);

	/* no status byte at all: cannot be answered */
	set_desc(e, 0, DATA, 16, 0, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 1);
	assert_int_equal(hv_blk_req_parse(&el, &r), -EINVAL);

	/* header shorter than 16 bytes */
	set_desc(e, 0, DATA, 8, VRING_DESC_F_NEXT, 4);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 1);
	assert_int_equal(hv_blk_req_parse(&el, &r), -EINVAL);
}

static void test_malicious(void **state)
{
	struct env *e = *state;
	static struct hv_virtq_elem el;

	/* a loop: 0 -> 1 -> 0 */
	set_desc(e, 0, DATA, 16, VRING_DESC_F_NEXT, 1);
	set_desc(e, 1, DATA, 16, VRING_DESC_F_NEXT, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_LOOP);
	/* a self loop */
	set_desc(e, 3, DATA, 16, VRING_DESC_F_NEXT, 3);
	add_avail(e, 3);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_LOOP);
	/* next out of range */
	set_desc(e, 0, DATA, 16, VRING_DESC_F_NEXT, QSZ);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_INDEX);
	/* head out of range */
	add_avail(e, 0xffff);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_INDEX);
	assert_int_equal(el.head, 0xffff);
	/* buffer outside guest memory, below, above, and wrapping */
	set_desc(e, 0, MEM_GPA - 16, 16, 0, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_ADDR);
	set_desc(e, 0, MEM_GPA + MEM_SIZE - 8, 16, 0, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_ADDR);
	set_desc(e, 0, UINT64_MAX - 0xff, 0x200, 0, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_ADDR);
	set_desc(e, 0, DATA, UINT32_MAX, 0, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_ADDR);
	/* readable after writable */
	set_desc(e, 0, DATA, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(e, 1, DATA, 16, 0, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_ORDER);
	/* indirect descriptors were never offered */
	set_desc(e, 0, DATA, 64, VRING_DESC_F_INDIRECT, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_INDIRECT);
	/* a zero-length buffer anywhere is harmless */
	set_desc(e, 0, UINT64_MAX, 0, 0, 0);
	add_avail(e, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 1);
	/* avail index far ahead: everything in the ring is suspect */
	e->avail_idx += QSZ + 1;
	memcpy(at(e, AVAIL + 2), &e->avail_idx, 2);
	assert_int_equal(hv_virtq_pop(&e->q, &el), -HV_VQ_E_AVAIL);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 0);
	assert_string_equal(hv_virtq_strerror(-HV_VQ_E_LOOP), "descriptor chain loops");
}

static void test_avail_wraps(void **state)
{
	struct env *e = *state;
	static struct hv_virtq_elem el;

	/* the 16-bit indices wrap: 65535 -> 0 is one entry, not 65536 */
	e->avail_idx = 65534;
	e->q.last_avail = 65534;
	set_desc(e, 1, DATA, 16, 0, 0);
	add_avail(e, 1);
	add_avail(e, 1);
	assert_int_equal(e->avail_idx, 0);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 1);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 1);
	assert_int_equal(hv_virtq_pop(&e->q, &el), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gmem_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_good_chain_and_blk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_split_and_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malicious, setup, teardown),
		cmocka_unit_test_setup_teardown(test_avail_wraps, setup, teardown),
	};

	return cmocka_run_group_tests_name("hv_virtq", tests, NULL, NULL);
}
