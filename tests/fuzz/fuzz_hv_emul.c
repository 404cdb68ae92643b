/*
 * fuzz_hv_emul - libFuzzer target: the decoder of the instructions vmrun
 * performs for kvm_pvm (hv_insn_decode) on arbitrary guest bytes, and the
 * effective address of what it accepts.  The input is copied into a
 * buffer of its own length, so ASan catches a read past what the decoder
 * was given; a decoded instruction must fit in it and in 15 bytes, and a
 * truncated input must never decode to something longer than it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hypervisor/emul.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t gpr[16];
	struct hv_insn in;
	uint8_t *code;
	int ret;

	code = malloc(size ? size : 1);
	if (!code)
		abort();
	memcpy(code, data, size);
	for (unsigned i = 0; i < 16; i++)
		gpr[i] = 0x0101010101010101ull * i;
	ret = hv_insn_decode(code, size, &in);
	if (ret == 0) {
		if (in.len == 0 || in.len > size || in.len > HV_INSN_MAX_LEN)
			abort();
		if (in.base >= 16 || in.index >= 16 || in.base < -1 ||
		    in.index < -1 || (in.scale != 1 && in.scale != 2 &&
				      in.scale != 4 && in.scale != 8))
			abort();
		(void)hv_insn_ea(&in, gpr, 0xffffffff81000000ull, 1, 2);
		/* the same bytes cut short must not decode */
		if (in.len > 1 && hv_insn_decode(code, in.len - 1, &in) == 0)
			abort();
	}
	free(code);
	return 0;
}
