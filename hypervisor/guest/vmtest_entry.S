/*
 * vmtest_entry.S - the ring-0 stub of the test guest.
 *
 * Entered through PVH (XEN_ELFNOTE_PHYS32_ENTRY): 32-bit protected mode,
 * paging off, %ebx = physical address of struct hvm_start_info.  The stub
 * does the least ring-0 work it can, because on a software KVM backend
 * (kvm_pvm) every ring-0 instruction is emulated: the page tables are
 * static data (2 MiB pages identity-mapping 4 GiB, user-accessible), the
 * IDT and TSS descriptor are filled in C (vmtest_r0_init), and then it irets
 * to 64-bit ring 3 with IOPL=3 so that the workload drives the devices with
 * port I/O directly.  Where the VMM cannot give ring 3 the I/O privilege
 * (kvm_pvm), the #GP handler performs the port access for it.  Application processors start in the 16-bit trampoline
 * (copied to 0x8000 by the bootstrap processor), enter long mode on the
 * same page tables, count themselves in vmtest_ap_count and halt.
 */
#define SEL_CODE64	0x08
#define SEL_DATA	0x10
#define SEL_CODE32	0x18
#define SEL_UDATA	0x23
#define SEL_UCODE64	0x2b
#define SEL_TSS		0x30

#define PTE_P		0x001
#define PTE_W		0x002
#define PTE_U		0x004
#define PTE_PS		0x080

	/* PVH entry note: name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY) */
	.section .note.Xen, "a"
	.balign 4
	.long 4, 4, 18
	.asciz "Xen"
	.long pvh_start

	.section .text.boot, "ax"
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	movl %ebx, vmtest_start_info
	lgdt gdt_ptr
	ljmp $SEL_CODE32, $1f
1:	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $boot_stack_top, %esp

/* PAE, CR3, EFER.LME, then paging on: the far jump lands in 64-bit code. */
.macro ENTER_LONG_MODE target
	movl %cr4, %eax
	orl $0x20, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax
	movl %eax, %cr0
	ljmp $SEL_CODE64, $\target
.endm
	ENTER_LONG_MODE lm64_bsp

	.code64
lm64_bsp:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	movq $boot_stack_top, %rsp
	call vmtest_r0_init
	lgdt gdt_ptr
	movw $SEL_TSS, %ax
	ltr %ax
	lidt idt_ptr
	/* to ring 3: IOPL=3, interrupts off (the workload polls) */
	pushq $SEL_UDATA
	pushq $user_stack_top
	pushq $0x3002
	pushq $SEL_UCODE64
	pushq $vmtest_main
	iretq

/* Exception entry: a uniform frame (vector, error code) for vmtest_r0_trap. */
.macro TRAP vec
	.globl vmtest_trap\vec
vmtest_trap\vec:
	.if (\vec != 8) && (\vec < 10 || \vec > 14) && (\vec != 17)
	pushq $0
	.endif
	pushq $\vec
	jmp trap_common
.endm
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	TRAP \v
	.endr

/*
 * Save the caller-saved registers (struct trap_frame in vmtest.c) and let
 * vmtest_r0_trap decide: a port I/O instruction from ring 3 that faulted
 * (kvm_pvm runs guest ring 3 on the host's IOPL, so IOPL=3 does not reach
 * the hardware) is emulated and resumed; anything else powers off.  From
 * ring 3 the frame is 16-byte aligned here (48 bytes pushed by the CPU and
 * the entry stub, 72 here, after the CPU's own alignment).
 */
trap_common:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	movq %rsp, %rdi
	call vmtest_r0_trap
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	addq $16, %rsp
	iretq

/*
 * Device interrupt (vector 0x40, the virtio-blk INTx through the IOAPIC,
 * used with vmtest.irq=1): vmtest_r0_irq reads the ISR and EOIs.  Other
 * vectors (spurious) return at once.  Same frame alignment as trap_common.
 */
	.globl vmtest_irq_entry, vmtest_spurious_entry
vmtest_irq_entry:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	cld
	call vmtest_r0_irq
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	iretq
vmtest_spurious_entry:
	iretq

	/* table of the 32 exception entry points, for vmtest_r0_init */
	.section .rodata
	.balign 8
	.globl vmtest_trap_table
vmtest_trap_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad vmtest_trap\v
	.endr

/*
 * AP trampoline, copied to 0x8000 (SIPI vector 0x08): real mode with
 * CS = 0x800, IP = 0.  Only trampoline-relative addresses are used until
 * the jump to the 32-bit code in the image.
 */
	.section .text
	.code16
	.globl vmtest_tramp_start, vmtest_tramp_end
vmtest_tramp_start:
	cli
	movw %cs, %ax
	movw %ax, %ds
	lgdtl (tramp_gdt_ptr - vmtest_tramp_start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $ap_pm32
	.balign 4
tramp_gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
vmtest_tramp_end:

	.code32
ap_pm32:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	ENTER_LONG_MODE lm64_ap

	.code64
lm64_ap:
	lock incl vmtest_ap_count
1:	cli
	hlt
	jmp 1b

	.section .data
	.balign 16
	.globl vmtest_gdt_tss
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08 ring-0 code, 64-bit */
	.quad 0x00cf92000000ffff	/* 0x10 ring-0 data */
	.quad 0x00cf9a000000ffff	/* 0x18 ring-0 code, 32-bit */
	.quad 0x00cff2000000ffff	/* 0x20 ring-3 data */
	.quad 0x00affa000000ffff	/* 0x28 ring-3 code, 64-bit */
vmtest_gdt_tss:
	.quad 0, 0			/* 0x30 TSS, filled by vmtest_r0_init */
gdt_end:
	.balign 8
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt
	.balign 8
	.globl vmtest_idt
idt_ptr:
	.word 256 * 16 - 1
	.quad vmtest_idt

	/* Identity map of 4 GiB with 2 MiB pages, user-accessible. */
	.balign 4096
pml4:
	.quad pdpt + (PTE_P | PTE_W | PTE_U)
	.fill 511, 8, 0
pdpt:
	.quad pd + (PTE_P | PTE_W | PTE_U)
	.quad pd + 0x1000 + (PTE_P | PTE_W | PTE_U)
	.quad pd + 0x2000 + (PTE_P | PTE_W | PTE_U)
	.quad pd + 0x3000 + (PTE_P | PTE_W | PTE_U)
	.fill 508, 8, 0
pd:
	.set i, 0
	.rept 2048
	.quad (i << 21) | (PTE_P | PTE_W | PTE_U | PTE_PS)
	.set i, i + 1
	.endr

	.section .bss
	.balign 16
	.globl vmtest_idt, vmtest_tss, vmtest_ap_count, vmtest_start_info
vmtest_idt:
	.skip 256 * 16
vmtest_tss:
	.skip 104
	.balign 8
vmtest_start_info:
	.skip 8
vmtest_ap_count:
	.skip 4
	.balign 16
boot_stack:
	.skip 16384
boot_stack_top:
	.globl boot_stack_top
	.balign 16
user_stack:
	.skip 65536
user_stack_top:
