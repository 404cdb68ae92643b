/*
 * emul.h - the few guest instructions vmrun performs itself when KVM's
 * instruction emulator gives up on them.
 *
 * Only on a software KVM backend (kvm_pvm), whose emulator runs all guest
 * ring-0 code but lacks some instructions a stock Linux kernel executes:
 * INT3 (int3_selftest), FWAIT (x87 set-up), LDMXCSR/STMXCSR
 * (kernel_fpu_begin loads MXCSR_DEFAULT); and the no-op a breakpoint
 * stops on (vm.c steps over it).  The decoder is pure (bytes in,
 * description out) so that it can be tested and fuzzed on byte sequences;
 * the vCPU side (vm.c) fetches the bytes through the guest's page tables,
 * computes the operand's address with hv_insn_ea() and bounds-checks every
 * guest access through hv_gmem_ptr().
 */
#ifndef HV_EMUL_H
#define HV_EMUL_H

#include <stddef.h>
#include <stdint.h>

#define HV_INSN_MAX_LEN	15	/* the architectural limit */

enum hv_insn_op {
	HV_INSN_INT3 = 1,	/* CC */
	HV_INSN_FWAIT,		/* 9B */
	HV_INSN_LDMXCSR,	/* 0F AE /2, memory operand, 32 bits */
	HV_INSN_STMXCSR,	/* 0F AE /3, memory operand, 32 bits */
	HV_INSN_NOP,		/* 90, 66 90, 0F 1F /0, F3 0F 1E FA (ENDBR64) */
};

/* Register numbers as the instruction encoding counts them. */
enum {
	HV_REG_RAX, HV_REG_RCX, HV_REG_RDX, HV_REG_RBX,
	HV_REG_RSP, HV_REG_RBP, HV_REG_RSI, HV_REG_RDI,
	HV_REG_R8, HV_REG_R9, HV_REG_R10, HV_REG_R11,
	HV_REG_R12, HV_REG_R13, HV_REG_R14, HV_REG_R15,
	HV_REG_NONE = -1,
};

enum hv_insn_seg { HV_SEG_DEFAULT, HV_SEG_FS, HV_SEG_GS };

struct hv_insn {
	enum hv_insn_op op;
	unsigned len;		/* bytes, prefixes included */
	/* the memory operand (LDMXCSR, STMXCSR) */
	int base, index;	/* HV_REG_*, HV_REG_NONE when absent */
	unsigned scale;		/* 1, 2, 4 or 8 */
	int64_t disp;
	int rip_rel;		/* disp is relative to the next instruction */
	int addr32;		/* 0x67: the address wraps at 4 GiB */
	enum hv_insn_seg seg;	/* FS or GS override: add its base */
};

/*
 * Decodes the instruction at code[0..avail) in 64-bit mode.  Returns 0 with
 * *in filled when it is one of enum hv_insn_op in a form this module
 * performs; -ENODATA when avail ended inside an instruction that may still
 * be one (fetch more and retry); -ENOTSUP for anything else, including
 * forms the CPU would reject (#UD: LOCK, a register operand) and prefixes
 * that change the opcode's meaning (66, F2, F3).
 */
int hv_insn_decode(const uint8_t *code, size_t avail, struct hv_insn *in);

/*
 * The linear address of in's memory operand.  gpr[] is indexed by HV_REG_*;
 * rip is the instruction's own address (RIP-relative operands count from
 * rip + in->len).
 */
uint64_t hv_insn_ea(const struct hv_insn *in, const uint64_t gpr[16],
		    uint64_t rip, uint64_t fs_base, uint64_t gs_base);

#endif
