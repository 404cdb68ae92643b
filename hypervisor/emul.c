/*
 * emul.c - decoding the instructions vmrun performs for a software KVM
 * backend (see emul.h).  64-bit mode only: kvm_pvm's guests are 64-bit
 * kernels, and the early 32-bit PVH entry code uses none of these.
 */
#include <errno.h>
#include <string.h>

#include "hypervisor/emul.h"

static int is_legacy_prefix(uint8_t b)
{
	switch (b) {
	case 0x26: case 0x2e: case 0x36: case 0x3e:	/* ES CS SS DS */
	case 0x64: case 0x65:				/* FS GS */
	case 0x66: case 0x67: case 0xf0: case 0xf2: case 0xf3:
		return 1;
	default:
		return 0;
	}
}

/* ModRM (and SIB, displacement) of a memory operand at code[*pos]. */
static int decode_modrm_mem(const uint8_t *code, size_t avail, size_t *pos,
			    unsigned rex, struct hv_insn *in, unsigned *reg)
{
	size_t p = *pos;
	unsigned modrm, mod, rm;

	if (p >= avail)
		return -ENODATA;
	modrm = code[p++];
	mod = modrm >> 6;
	*reg = (modrm >> 3) & 7;
	rm = modrm & 7;
	if (mod == 3)
		return -ENOTSUP;	/* register operand: #UD for these */
	in->base = HV_REG_NONE;
	in->index = HV_REG_NONE;
	in->scale = 1;
	in->disp = 0;
	in->rip_rel = 0;
	if (rm == 4) {
		unsigned sib, idx, base;

		if (p >= avail)
			return -ENODATA;
		sib = code[p++];
		in->scale = 1u << (sib >> 6);
		idx = ((sib >> 3) & 7) | (rex & 2 ? 8 : 0);
		if (idx != 4)		/* 4 without REX.X: no index */
			in->index = (int)idx;
		base = sib & 7;
		if (base == 5 && mod == 0)
			mod = 2;	/* no base, a disp32 (also with REX.B) */
		else
			in->base = (int)(base | (rex & 1 ? 8 : 0));
	} else if (rm == 5 && mod == 0) {
		in->rip_rel = 1;
		mod = 2;		/* disp32 */
	} else {
		in->base = (int)(rm | (rex & 1 ? 8 : 0));
	}
	if (mod == 1) {
		if (p >= avail)
			return -ENODATA;
		in->disp = (int8_t)code[p++];
	} else if (mod == 2) {
		int32_t d;

		if (avail - p < 4)
			return -ENODATA;
		memcpy(&d, code + p, 4);	/* little-endian host */
		in->disp = d;
		p += 4;
	}
	*pos = p;
	return 0;
}

static int decode(const uint8_t *code, size_t avail, struct hv_insn *in)
{
	unsigned rex = 0, reg;
	int opsize = 0, rep = 0, lock = 0, nseg = 0, ret;
	size_t p = 0;

	for (;; p++) {
		if (p >= avail)
			return -ENODATA;
		if (is_legacy_prefix(code[p])) {
			rex = 0;	/* a REX before a legacy prefix is void */
			switch (code[p]) {
			case 0x64: in->seg = HV_SEG_FS; nseg++; break;
			case 0x65: in->seg = HV_SEG_GS; nseg++; break;
			/* ES, CS, SS, DS overrides: ignored in 64-bit mode */
			case 0x26: case 0x2e: case 0x36: case 0x3e:
				nseg++;
				break;
			case 0x66: opsize = 1; break;
			case 0x67: in->addr32 = 1; break;
			case 0xf0: lock = 1; break;
			default: rep = 1; break;	/* F2, F3 */
			}
		} else if ((code[p] & 0xf0) == 0x40) {
			rex = code[p];
		} else {
			break;
		}
	}
	switch (code[p++]) {
	case 0xcc:
		if (p != 1)
			return -ENOTSUP;	/* keep it to the bare opcode */
		in->op = HV_INSN_INT3;
		break;
	case 0x9b:
		if (p != 1)
			return -ENOTSUP;
		in->op = HV_INSN_FWAIT;
		break;
	case 0x90:
		if (rep || lock || rex)
			return -ENOTSUP;	/* F3 90 is PAUSE, 41 90 XCHG */
		in->op = HV_INSN_NOP;
		break;
	case 0x0f:
		if (p >= avail)
			return -ENODATA;
		switch (code[p++]) {
		case 0x1f:		/* NOP r/m: any ModRM operand */
			if (rep || lock)
				return -ENOTSUP;
			if (p >= avail)
				return -ENODATA;
			if (((code[p] >> 3) & 7) != 0)
				return -ENOTSUP;
			if ((code[p] >> 6) == 3)
				p++;
			else if ((ret = decode_modrm_mem(code, avail, &p, rex,
							 in, &reg)))
				return ret;
			in->op = HV_INSN_NOP;
			goto done;
		case 0x1e:		/* F3 0F 1E FA: ENDBR64 */
			if (!rep || opsize || lock || nseg)
				return -ENOTSUP;
			if (p >= avail)
				return -ENODATA;
			if (code[p++] != 0xfa)
				return -ENOTSUP;
			in->op = HV_INSN_NOP;
			goto done;
		case 0xae:
			break;
		default:
			return -ENOTSUP;
		}
		/* 66/F2/F3 select other instructions in this group */
		if (opsize || rep || lock)
			return -ENOTSUP;
		/* which of several segment prefixes counts is not
		 * architectural: no compiler emits that, refuse it */
		if (nseg > 1)
			return -ENOTSUP;
		ret = decode_modrm_mem(code, avail, &p, rex, in, &reg);
		if (ret)
			return ret;
		if (reg == 2)
			in->op = HV_INSN_LDMXCSR;
		else if (reg == 3)
			in->op = HV_INSN_STMXCSR;
		else
			return -ENOTSUP;
		break;
	default:
		return -ENOTSUP;
	}
done:
	in->len = (unsigned)p;
	return 0;
}

int hv_insn_decode(const uint8_t *code, size_t avail, struct hv_insn *in)
{
	int ret;

	memset(in, 0, sizeof(*in));
	in->seg = HV_SEG_DEFAULT;
	in->base = in->index = HV_REG_NONE;
	in->scale = 1;
	/* no instruction is longer: what does not end within 15 bytes is
	 * #GP on the CPU, not a reason to fetch more */
	if (avail >= HV_INSN_MAX_LEN) {
		ret = decode(code, HV_INSN_MAX_LEN, in);
		return ret == -ENODATA ? -ENOTSUP : ret;
	}
	return decode(code, avail, in);
}

uint64_t hv_insn_ea(const struct hv_insn *in, const uint64_t gpr[16],
		    uint64_t rip, uint64_t fs_base, uint64_t gs_base)
{
	uint64_t ea = (uint64_t)in->disp;

	if (in->rip_rel)
		ea += rip + in->len;
	if (in->base != HV_REG_NONE)
		ea += gpr[in->base & 15];
	if (in->index != HV_REG_NONE)
		ea += gpr[in->index & 15] * in->scale;
	if (in->addr32)
		ea &= 0xffffffffu;
	/* the segment base is added after the address-size wrap */
	if (in->seg == HV_SEG_FS)
		ea += fs_base;
	else if (in->seg == HV_SEG_GS)
		ea += gs_base;
	return ea;
}
