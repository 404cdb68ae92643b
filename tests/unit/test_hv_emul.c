/*
 * test_hv_emul.c - the decoder of the instructions vmrun performs for
 * kvm_pvm (INT3, FWAIT, LDMXCSR, STMXCSR, the no-ops a breakpoint steps
 * over) on byte sequences: every ModRM
 * and SIB addressing form, REX, segment and address-size prefixes, the
 * effective address computed from registers, truncated input, and forms
 * it must refuse (other opcodes, register operands, LOCK, 66/F2/F3, more
 * than 15 bytes).  Encodings checked against GNU as.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hypervisor/emul.h"

#define DECODE(in, ...) ({ \
	static const uint8_t b_[] = { __VA_ARGS__ }; \
	hv_insn_decode(b_, sizeof(b_), (in)); })

/* registers: rax=0x1000, rcx=0x2000, ... r15=0x10000 (reg n = (n+1)<<12) */
static void regs(uint64_t gpr[16])
{
	for (unsigned i = 0; i < 16; i++)
		gpr[i] = (uint64_t)(i + 1) << 12;
}

static void test_int3_fwait(void **state)
{
	struct hv_insn in;

	(void)state;
	assert_int_equal(DECODE(&in, 0xcc), 0);
	assert_int_equal(in.op, HV_INSN_INT3);
	assert_int_equal(in.len, 1);
	assert_int_equal(DECODE(&in, 0x9b, 0x90), 0);
	assert_int_equal(in.op, HV_INSN_FWAIT);
	assert_int_equal(in.len, 1);
	/* prefixed forms are not what Linux executes: refused */
	assert_int_equal(DECODE(&in, 0x66, 0xcc), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x48, 0x9b), -ENOTSUP);
	/* INT n, INTO, HLT: not ours */
	assert_int_equal(DECODE(&in, 0xcd, 0x03), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0xce), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0xf4), -ENOTSUP);
}

static void test_ldmxcsr_forms(void **state)
{
	uint64_t gpr[16];
	struct hv_insn in;

	(void)state;
	regs(gpr);
	/* ldmxcsr (%rax) */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x10), 0);
	assert_int_equal(in.op, HV_INSN_LDMXCSR);
	assert_int_equal(in.len, 3);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0x1000);
	/* ldmxcsr -0x14(%rbp): disp8, sign-extended */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x55, 0xec), 0);
	assert_int_equal(in.len, 4);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0x6000 - 0x14);
	/* ldmxcsr 0x4(%rsp): SIB, no index */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x54, 0x24, 0x04), 0);
	assert_int_equal(in.len, 5);
	assert_int_equal(in.index, HV_REG_NONE);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0x5000 + 4);
	/* ldmxcsr 0x12345678(%rcx,%rdx,4): SIB, disp32 */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x94, 0x91,
				0x78, 0x56, 0x34, 0x12), 0);
	assert_int_equal(in.len, 8);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0),
			 0x2000 + 0x3000 * 4 + 0x12345678);
	/* ldmxcsr 0x10(%rip): RIP-relative from the next instruction */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x15, 0x10, 0, 0, 0), 0);
	assert_int_equal(in.len, 7);
	assert_true(in.rip_rel);
	assert_int_equal(hv_insn_ea(&in, gpr, 0xffffffff81000000ull, 0, 0),
			 0xffffffff81000000ull + 7 + 0x10);
	/* ldmxcsr 0x1000 (absolute: SIB base 5, mod 0, no index) */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x14, 0x25, 0, 0x10, 0, 0), 0);
	assert_int_equal(in.base, HV_REG_NONE);
	assert_int_equal(in.index, HV_REG_NONE);
	assert_int_equal(hv_insn_ea(&in, gpr, 0x5555, 0, 0), 0x1000);
	/* ldmxcsr 0x8(%r13): REX.B, mod 1 (r13 has no mod-0 form) */
	assert_int_equal(DECODE(&in, 0x41, 0x0f, 0xae, 0x55, 0x08), 0);
	assert_int_equal(in.base, HV_REG_R13);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0xe000 + 8);
	/* ldmxcsr (%r12): REX.B with SIB */
	assert_int_equal(DECODE(&in, 0x41, 0x0f, 0xae, 0x14, 0x24), 0);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0xd000);
	/* ldmxcsr 0x40(,%r14,8) with REX.X, disp32, no base
	 * (REX.B does not turn base 5 in mod 0 into r13) */
	assert_int_equal(DECODE(&in, 0x43, 0x0f, 0xae, 0x14, 0xf5,
				0x40, 0, 0, 0), 0);
	assert_int_equal(in.base, HV_REG_NONE);
	assert_int_equal(in.index, HV_REG_R14);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0xf000 * 8 + 0x40);
	/* SIB index 4 with REX.X is r12, not "no index" */
	assert_int_equal(DECODE(&in, 0x42, 0x0f, 0xae, 0x14, 0x20), 0);
	assert_int_equal(in.index, HV_REG_R12);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0x1000 + 0xd000);
}

static void test_stmxcsr_prefixes(void **state)
{
	uint64_t gpr[16];
	struct hv_insn in;

	(void)state;
	regs(gpr);
	/* stmxcsr -0x4(%rsp) */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x5c, 0x24, 0xfc), 0);
	assert_int_equal(in.op, HV_INSN_STMXCSR);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0x5000 - 4);
	/* stmxcsr %gs:0x20 (per-CPU data) */
	assert_int_equal(DECODE(&in, 0x65, 0x0f, 0xae, 0x1c, 0x25,
				0x20, 0, 0, 0), 0);
	assert_int_equal(in.seg, HV_SEG_GS);
	assert_int_equal(in.len, 9);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0x7000, 0xffff888000000000ull),
			 0xffff888000000020ull);
	/* %fs: with the FS base; DS (ignored in 64-bit mode) without */
	assert_int_equal(DECODE(&in, 0x64, 0x0f, 0xae, 0x18), 0);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0x7000, 0), 0x1000 + 0x7000);
	assert_int_equal(DECODE(&in, 0x3e, 0x0f, 0xae, 0x18), 0);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0x7000, 0x9000), 0x1000);
	/* two segment prefixes: which one counts is not architectural */
	assert_int_equal(DECODE(&in, 0x64, 0x3e, 0x0f, 0xae, 0x18), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x64, 0x65, 0x0f, 0xae, 0x18), -ENOTSUP);
	/* 0x67: the address wraps at 4 GiB, before the segment base */
	gpr[HV_REG_RAX] = 0x1fffffff0ull;
	assert_int_equal(DECODE(&in, 0x67, 0x0f, 0xae, 0x58, 0x20), 0);
	assert_true(in.addr32);
	assert_int_equal(hv_insn_ea(&in, gpr, 0, 0, 0), 0x10);
	/* a REX before a legacy prefix is void: 41 67 ... has no REX.B */
	assert_int_equal(DECODE(&in, 0x41, 0x67, 0x0f, 0xae, 0x10), 0);
	assert_int_equal(in.base, HV_REG_RAX);
	/* REX.W is allowed and changes nothing */
	assert_int_equal(DECODE(&in, 0x48, 0x0f, 0xae, 0x18), 0);
	assert_int_equal(in.op, HV_INSN_STMXCSR);
}

static void test_refused(void **state)
{
	struct hv_insn in;

	(void)state;
	/* register operands are #UD for LDMXCSR/STMXCSR */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0xd0), -ENOTSUP);
	/* other members of group 15: fxsave, fxrstor, xsave, clflush,
	 * lfence/mfence/sfence */
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x00), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x08), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x20), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0x38), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0xe8), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x0f, 0xae, 0xf0), -ENOTSUP);
	/* mandatory prefixes select other instructions; LOCK is #UD */
	assert_int_equal(DECODE(&in, 0x66, 0x0f, 0xae, 0x10), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0xf3, 0x0f, 0xae, 0x10), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0xf2, 0x0f, 0xae, 0x10), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0xf0, 0x0f, 0xae, 0x10), -ENOTSUP);
	/* other two-byte opcodes, VEX vldmxcsr */
	assert_int_equal(DECODE(&in, 0x0f, 0x01, 0xca), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0xc5, 0xf8, 0xae, 0x10), -ENOTSUP);
	/* 15 prefixes and no opcode: longer than any instruction */
	assert_int_equal(DECODE(&in, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
				0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
				0x67, 0x67, 0x0f, 0xae, 0x10), -ENOTSUP);
	/* 11 prefixes + SIB + disp32 = 19 bytes */
	assert_int_equal(DECODE(&in, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
				0x67, 0x67, 0x67, 0x67, 0x67, 0x0f, 0xae,
				0x94, 0x91, 0x78, 0x56, 0x34, 0x12), -ENOTSUP);
	/* 12 prefixes + 0f ae 10: exactly 15 bytes */
	assert_int_equal(DECODE(&in, 0x67, 0x67, 0x67, 0x67, 0x67, 0x67,
				0x67, 0x67, 0x67, 0x67, 0x67, 0x67, 0x0f,
				0xae, 0x10), 0);
	assert_int_equal(in.len, 15);
}

static void test_nop(void **state)
{
	struct hv_insn in;

	(void)state;
	/* the no-ops an exception entry may start with */
	assert_int_equal(DECODE(&in, 0x90), 0);
	assert_int_equal(in.op, HV_INSN_NOP);
	assert_int_equal(in.len, 1);
	assert_int_equal(DECODE(&in, 0x66, 0x90), 0);
	assert_int_equal(in.len, 2);
	assert_int_equal(DECODE(&in, 0x0f, 0x1f, 0x00), 0);
	assert_int_equal(in.len, 3);
	assert_int_equal(DECODE(&in, 0x0f, 0x1f, 0x40, 0x00), 0);
	assert_int_equal(in.len, 4);
	assert_int_equal(DECODE(&in, 0x0f, 0x1f, 0x44, 0x00, 0x00), 0);
	assert_int_equal(in.len, 5);
	assert_int_equal(DECODE(&in, 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00), 0);
	assert_int_equal(in.len, 6);
	assert_int_equal(DECODE(&in, 0x0f, 0x1f, 0x80, 0, 0, 0, 0), 0);
	assert_int_equal(in.len, 7);
	assert_int_equal(DECODE(&in, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0,
				0, 0), 0);
	assert_int_equal(in.len, 10);
	assert_int_equal(DECODE(&in, 0xf3, 0x0f, 0x1e, 0xfa), 0);
	assert_int_equal(in.op, HV_INSN_NOP);
	assert_int_equal(in.len, 4);
	/* not no-ops: PAUSE, XCHG r8, 0F 1F /1, ENDBR32, RDSSPQ-like */
	assert_int_equal(DECODE(&in, 0xf3, 0x90), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x41, 0x90), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x0f, 0x1f, 0x08), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0xf3, 0x0f, 0x1e, 0xfb), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x0f, 0x1e, 0xfa), -ENOTSUP);
	/* SYSRET and SYSCALL are the emulator's */
	assert_int_equal(DECODE(&in, 0x48, 0x0f, 0x07), -ENOTSUP);
	assert_int_equal(DECODE(&in, 0x0f, 0x05), -ENOTSUP);
}

static void test_truncated(void **state)
{
	static const uint8_t full[] = { 0x65, 0x41, 0x0f, 0xae, 0x94, 0x91,
					0x78, 0x56, 0x34, 0x12 };
	struct hv_insn in;

	(void)state;
	/* every proper prefix asks for more bytes; the whole decodes */
	for (size_t n = 0; n < sizeof(full); n++)
		assert_int_equal(hv_insn_decode(full, n, &in), -ENODATA);
	assert_int_equal(hv_insn_decode(full, sizeof(full), &in), 0);
	assert_int_equal(in.len, sizeof(full));
	assert_int_equal(in.base, HV_REG_R9);
	assert_int_equal(in.index, HV_REG_RDX);
	assert_int_equal(in.scale, 4);
	assert_int_equal(in.disp, 0x12345678);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_int3_fwait),
		cmocka_unit_test(test_ldmxcsr_forms),
		cmocka_unit_test(test_stmxcsr_prefixes),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_nop),
		cmocka_unit_test(test_truncated),
	};

	return cmocka_run_group_tests_name("hv_emul", tests, NULL, NULL);
}
