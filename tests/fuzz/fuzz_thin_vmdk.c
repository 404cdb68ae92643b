/*
 * fuzz_thin_vmdk - libFuzzer target: the VMDK descriptor parser on
 * arbitrary text.  What parses must format to text that parses to the same
 * descriptor (and formats to the same text again).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "thin/vmdk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct thin_desc a, b;
static char t1[THIN_DESC_MAX], t2[THIN_DESC_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	int n1, n2;

	if (thin_desc_parse((const char *)data, size, &a, err, sizeof(err)))
		return 0;
	n1 = thin_desc_format(&a, t1, sizeof(t1));
	if (n1 < 0)
		return 0;    /* parsed, but longer than we write: fine */
	if (thin_desc_parse(t1, (size_t)n1, &b, err, sizeof(err)))
		abort();
	n2 = thin_desc_format(&b, t2, sizeof(t2));
	if (n2 != n1 || memcmp(t1, t2, (size_t)n1))
		abort();
	return 0;
}
