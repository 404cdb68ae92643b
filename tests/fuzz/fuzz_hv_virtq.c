/*
 * fuzz_hv_virtq - libFuzzer target: the virtqueue parser and the virtio-blk
 * request split on guest memory the fuzzer controls entirely.
 *
 * Input: 4 bytes of queue parameters (size exponent, ring page, second
 * region on/off), then the contents of guest RAM (two regions with a gap,
 * as a VM with memory above the PCI hole has).  Every iov the parser hands
 * out must lie inside guest RAM; ASan catches any access outside it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hypervisor/virtq.h"

#define R0_GPA	0x0ull
#define R0_SIZE	0x8000ull
#define R1_GPA	0x100000ull
#define R1_SIZE	0x2000ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const struct hv_gmem *m, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (unsigned i = 0; i < m->nr; i++)
		if (b >= m->r[i].hva && len <= m->r[i].size &&
		    (size_t)(b - m->r[i].hva) <= m->r[i].size - len)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hv_virtq_elem e;
	struct hv_gmem m = { 0 };
	struct hv_virtq q;
	uint8_t *r0, *r1;
	uint16_t qsz;
	size_t n;

	if (size < 4)
		return 0;
	/* separate allocations: ASan redzones around each region */
	r0 = calloc(1, R0_SIZE);
	r1 = calloc(1, R1_SIZE);
	n = size - 4 < R0_SIZE ? size - 4 : R0_SIZE;
	memcpy(r0, data + 4, n);
	if (size - 4 > R0_SIZE) {
		size_t k = size - 4 - R0_SIZE;

		memcpy(r1, data + 4 + R0_SIZE, k < R1_SIZE ? k : R1_SIZE);
	}
	m.r[0].gpa = R0_GPA;
	m.r[0].size = R0_SIZE;
	m.r[0].hva = r0;
	m.nr = 1;
	if (data[2] & 1) {
		m.r[1].gpa = R1_GPA;
		m.r[1].size = R1_SIZE;
		m.r[1].hva = r1;
		m.nr = 2;
	}
	qsz = (uint16_t)(1u << (data[0] % 12));
	memset(&q, 0, sizeof(q));
	if (hv_virtq_setup_legacy(&q, &m, qsz, data[1] | (data[2] & 2 ? 0x100 : 0)))
		goto out;
	q.last_avail = (uint16_t)(data[3] * 257);
	for (int i = 0; i < 64; i++) {
		struct hv_blk_req r;
		int ret = hv_virtq_pop(&q, &e);

		if (ret == 0)
			break;
		if (ret < 0)
			continue;
		if (e.nout + e.nin > HV_VIRTQ_MAX_SEG || e.nout + e.nin > qsz)
			abort();
		for (unsigned k = 0; k < e.nout + e.nin; k++)
			if (e.iov[k].iov_len && !inside(&m, e.iov[k].iov_base,
							e.iov[k].iov_len))
				abort();
		if (hv_blk_req_parse(&e, &r) == 0) {
			if (!inside(&m, r.status, 1))
				abort();
			*r.status = 0;
			for (unsigned k = r.first; k < r.first + r.niov; k++)
				memset(e.iov[k].iov_base, 0xa5, e.iov[k].iov_len > 64 ?
				       64 : e.iov[k].iov_len);
		}
		hv_virtq_push(&q, e.head, 1);
	}
out:
	free(r0);
	free(r1);
	return 0;
}
