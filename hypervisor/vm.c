/*
 * vm.c - the KVM virtual machine: memory, vCPUs and their threads, the exit
 * loop and port I/O dispatch.
 *
 * Threads: one per vCPU (KVM_RUN loop; port I/O exits are handled on it),
 * one I/O thread per virtio-blk device (virtio_blk.c), the device layer's
 * completion threads (which complete virtio requests), and the caller of
 * hv_vm_run(), which waits for an exit reason and then stops the vCPUs:
 * it sets immediate_exit in each kvm_run and kicks the thread with SIGUSR1
 * so that a vCPU inside KVM_RUN returns -EINTR, and one about to enter
 * returns at once (no lost wake-up).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hypervisor/emul.h"
#include "hypervisor/hv_int.h"

#define MSR_IA32_MISC_ENABLE	0x1a0
#define KICK_SIGNAL		SIGUSR1

void hv_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("vmrun: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

const char *hv_exit_str(int why)
{
	switch (why) {
	case HV_EXIT_POWEROFF: return "guest powered off";
	case HV_EXIT_RESET: return "guest reset";
	case HV_EXIT_SHUTDOWN: return "guest triple fault (reset)";
	case HV_EXIT_ERROR: return "VMM error";
	case HV_EXIT_SIGNAL: return "stopped";
	default: return "running";
	}
}

void hv_vm_request_exit(struct hv_vm *vm, int why)
{
	int zero = 0;

	if (atomic_compare_exchange_strong(&vm->exit_why, &zero, why)) {
		pthread_mutex_lock(&vm->lock);
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
	}
}

void hv_vm_stop(hv_vm *vm)
{
	/* async-signal-safe: only an atomic; hv_vm_run() polls it */
	int zero = 0;

	atomic_compare_exchange_strong(&vm->exit_why, &zero, HV_EXIT_SIGNAL);
}

int hv_vm_irq_line(struct hv_vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level l = { .irq = gsi, .level = (uint32_t)level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

/* ---- port I/O ------------------------------------------------------------- */

static void pio(struct hv_vm *vm, uint16_t port, uint8_t *data, unsigned size,
		bool write)
{
	if (port >= HV_PORT_UART && port < HV_PORT_UART + 8) {
		hv_uart_io(&vm->uart, port, data, size, write);
	} else if (port == HV_PORT_RESET_CF9 && size == 1) {
		/* reset control register: bit 2 starts the reset */
		if (write && (*data & 0x04))
			hv_vm_request_exit(vm, HV_EXIT_RESET);
		else if (!write)
			*data = 0;
	} else if (port >= HV_PORT_PCI_ADDR && port < HV_PORT_PCI_ADDR + 8) {
		hv_pci_cfg_io(&vm->pci, port, data, size, write);
	} else if (port == HV_PORT_POWEROFF) {
		if (write)
			hv_vm_request_exit(vm, HV_EXIT_POWEROFF);
		else
			memset(data, 0xff, size);
	} else if (port == HV_PORT_I8042_CMD || port == 0x60) {
		/* i8042 with nothing behind it: status 0, pulse-reset command */
		if (write && port == HV_PORT_I8042_CMD && *data == 0xfe)
			hv_vm_request_exit(vm, HV_EXIT_RESET);
		else if (!write)
			memset(data, 0, size);
	} else if (!hv_pci_bar_io(&vm->pci, port, data, size, write)) {
		if (!write)
			memset(data, 0xff, size);
	}
}

/* ---- vCPUs ---------------------------------------------------------------- */

static void kick_handler(int sig)
{
	(void)sig;
}

/* ---- instructions kvm_pvm's emulator lacks -------------------------------- */

/*
 * Copies len bytes at guest linear address la to or from buf through the
 * vCPU's page tables, page by page, each page's frame bounds-checked
 * against guest memory.  Returns the number of bytes copied before the
 * first page that is not mapped (or, writing, not writable; from CPL 3,
 * not a user page) or not guest RAM.
 */
static size_t guest_copy(struct hv_vcpu *c, uint64_t la, void *buf, size_t len,
			 bool write, bool user)
{
	size_t done = 0;

	while (done < len) {
		struct kvm_translation tr = { .linear_address = la + done };
		size_t n = 4096 - ((la + done) & 4095);
		uint8_t *p;

		if (n > len - done)
			n = len - done;
		if (ioctl(c->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid ||
		    (write && !tr.writeable) || (user && !tr.usermode))
			break;
		p = hv_gmem_ptr(&c->vm->mem, tr.physical_address, n);
		if (!p)
			break;
		if (write)
			memcpy(p, (uint8_t *)buf + done, n);
		else
			memcpy((uint8_t *)buf + done, p, n);
		done += n;
	}
	return done;
}

static bool inject_exception(struct hv_vcpu *c, unsigned nr, bool has_error,
			     uint32_t error)
{
	struct kvm_vcpu_events ev;

	if (ioctl(c->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return false;
	ev.exception.injected = 1;
	ev.exception.nr = (uint8_t)nr;
	ev.exception.has_error_code = has_error;
	ev.exception.error_code = error;
	ev.flags = 0;
	return ioctl(c->fd, KVM_SET_VCPU_EVENTS, &ev) == 0;
}

/* MXCSR bits this CPU implements (FXSAVE's MXCSR_MASK, 0 meaning the
 * original 0xffbf); LDMXCSR of any other bit is #GP(0) */
static uint32_t host_mxcsr_mask(void)
{
	uint8_t fx[512] __attribute__((aligned(16)));
	uint32_t mask;

	memset(fx, 0, sizeof(fx));
	__asm__ volatile("fxsave64 %0" : "=m"(fx));
	memcpy(&mask, fx + 28, 4);
	return mask ? mask : 0xffbf;
}

/* LDMXCSR / STMXCSR m32: the guest's MXCSR through KVM_GET/SET_FPU.  Faults
 * as the CPU raises them: #UD without CR4.OSFXSR or with CR0.EM, #NM with
 * CR0.TS, #GP(0) for reserved bits.  An operand outside mapped guest RAM
 * is not handled (false): the VM stops with the instruction in the log. */
static bool do_mxcsr(struct hv_vcpu *c, const struct hv_insn *in,
		     struct kvm_regs *r, const struct kvm_sregs *s)
{
	uint64_t gpr[16] = {
		r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
		r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
	};
	bool user = (s->cs.selector & 3) == 3;
	struct kvm_fpu fpu;
	uint64_t la;
	uint32_t v;

	if (!(s->cr4 & (1u << 9)) || (s->cr0 & (1u << 2)))	/* OSFXSR, EM */
		return inject_exception(c, 6, false, 0);	/* #UD */
	if (s->cr0 & (1u << 3))					/* TS */
		return inject_exception(c, 7, false, 0);	/* #NM */
	la = hv_insn_ea(in, gpr, r->rip, s->fs.base, s->gs.base);
	if (ioctl(c->fd, KVM_GET_FPU, &fpu) < 0)
		return false;
	if (in->op == HV_INSN_LDMXCSR) {
		if (guest_copy(c, la, &v, 4, false, user) != 4)
			return false;
		if (v & ~host_mxcsr_mask())
			return inject_exception(c, 13, true, 0);	/* #GP */
		fpu.mxcsr = v;
		if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
			return false;
	} else {
		v = fpu.mxcsr;
		if (guest_copy(c, la, &v, 4, true, user) != 4)
			return false;
	}
	r->rip += in->len;
	return ioctl(c->fd, KVM_SET_REGS, r) == 0;
}

#define MSR_STAR	0xc0000081
#define MSR_LSTAR	0xc0000082
#define MSR_SFMASK	0xc0000084
#define RFLAGS_IF	(1ull << 9)
#define RFLAGS_RF	(1ull << 16)

static int get_msrs(struct hv_vcpu *c, const uint32_t *idx, uint64_t *val,
		    unsigned n)
{
	uint64_t buf[(sizeof(struct kvm_msrs) +
		      4 * sizeof(struct kvm_msr_entry)) / 8 + 1];
	struct kvm_msrs *m = (struct kvm_msrs *)buf;

	if (n > 4)
		return -EINVAL;
	memset(buf, 0, sizeof(buf));
	m->nmsrs = n;
	for (unsigned i = 0; i < n; i++)
		m->entries[i].index = idx[i];
	if (ioctl(c->fd, KVM_GET_MSRS, m) != (int)n)
		return -EIO;
	for (unsigned i = 0; i < n; i++)
		val[i] = m->entries[i].data;
	return 0;
}

/* 64-bit flat code and data segments of privilege dpl (SYSCALL) */
static void flat_segments(struct kvm_sregs *s, uint16_t cs_sel,
			  uint16_t ss_sel, unsigned dpl)
{
	s->cs = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = cs_sel, .type = 11,
		.present = 1, .dpl = (uint8_t)dpl, .db = 0, .s = 1, .l = 1,
		.g = 1,
	};
	s->ss = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = ss_sel, .type = 3,
		.present = 1, .dpl = (uint8_t)dpl, .db = 1, .s = 1, .l = 0,
		.g = 1,
	};
}

/*
 * SYSCALL from guest ring 3.  kvm_pvm runs ring 3 natively and, on SYSCALL,
 * sets RCX, R11, RFLAGS (SFMASK applied) and RIP = LSTAR as the CPU does,
 * but leaves the vCPU in ring 3: the fetch at LSTAR faults (#PF, error
 * 15) and the guest kills the process (the first system call of Linux's
 * /init).  kvm_pvm does not exit on that fault, so vmrun puts a hardware
 * execute breakpoint (KVM_SET_GUEST_DEBUG DR0) on the guest's #PF entry,
 * which the emulated ring 0 reports as KVM_EXIT_DEBUG, and completes the
 * SYSCALL there: ring 0 at LSTAR with CS/SS from STAR[47:32], RSP and
 * RFLAGS as they were.  Only a fault that no ring-3 code can cause itself
 * counts: from CPL 3 at RIP == LSTAR with IF clear (ring 3 cannot clear
 * IF; SFMASK did) and R11 a ring-3 RFLAGS (IF set, IOPL, NT and VM
 * clear).  Any other #PF continues past the entry's first instruction,
 * which must be a no-op (ENDBR64 or a NOP), so that the breakpoint does
 * not fire again.
 */
static void syscall_watch_arm(struct hv_vcpu *c)
{
	struct kvm_guest_debug dbg = {
		.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP,
	};
	uint32_t idx = MSR_LSTAR;
	uint8_t gate[16], code[HV_INSN_MAX_LEN];
	struct kvm_sregs s;
	struct hv_insn in;
	uint64_t lstar, entry;

	/* the guest sets LSTAR in cpu_init(), after its final IDT */
	if (get_msrs(c, &idx, &lstar, 1) || !lstar ||
	    ioctl(c->fd, KVM_GET_SREGS, &s) < 0 || !(s.efer & 1) ||
	    s.idt.limit < 14 * 16 + 15 ||
	    guest_copy(c, s.idt.base + 14 * 16, gate, 16, false, false) != 16)
		return;
	if (!(gate[5] & 0x80) || (gate[5] & 0x0f) != 0x0e)
		return;				/* not a present interrupt gate */
	entry = (uint64_t)gate[0] | (uint64_t)gate[1] << 8 |
		(uint64_t)gate[6] << 16 | (uint64_t)gate[7] << 24 |
		(uint64_t)gate[8] << 32 | (uint64_t)gate[9] << 40 |
		(uint64_t)gate[10] << 48 | (uint64_t)gate[11] << 56;
	if (hv_insn_decode(code, guest_copy(c, entry, code, sizeof(code),
					    false, false), &in) < 0 ||
	    in.op != HV_INSN_NOP) {
		hv_log("vcpu %u: #PF entry 0x%llx starts with no no-op: "
		       "SYSCALL from ring 3 is not completed", c->id,
		       (unsigned long long)entry);
		c->pf_entry = ~0ull;		/* do not try again */
		return;
	}
	dbg.arch.debugreg[0] = entry;
	dbg.arch.debugreg[7] = 0x401;		/* L0, execute, 1 byte */
	if (ioctl(c->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0) {
		hv_log("vcpu %u: KVM_SET_GUEST_DEBUG: %s", c->id,
		       strerror(errno));
		c->pf_entry = ~0ull;
		return;
	}
	c->pf_entry = entry;
}

static bool syscall_watch_hit(struct hv_vcpu *c)
{
	uint32_t idx[3] = { MSR_LSTAR, MSR_STAR, MSR_SFMASK };
	uint8_t code[HV_INSN_MAX_LEN];
	uint64_t msr[3], frame[6];	/* error, rip, cs, rflags, rsp, ss */
	struct kvm_sregs s;
	struct kvm_regs r;
	struct hv_insn in;
	uint16_t kcs;

	if (ioctl(c->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(c->fd, KVM_GET_SREGS, &s) < 0 || r.rip != c->pf_entry ||
	    (s.cs.selector & 3) != 0 || get_msrs(c, idx, msr, 3) ||
	    guest_copy(c, r.rsp, frame, sizeof(frame), false, false) !=
	    sizeof(frame))
		return false;
	if ((frame[2] & 3) == 3 && frame[1] == msr[0] &&
	    !(frame[3] & RFLAGS_IF) && (r.r11 & RFLAGS_IF) &&
	    !(r.r11 & 0x23000) &&		/* IOPL, NT, VM */
	    (frame[3] & ~RFLAGS_RF) == (r.r11 & ~msr[2] & ~RFLAGS_RF)) {
		atomic_fetch_add(&c->vm->fixups[0], 1);
		kcs = (uint16_t)(msr[1] >> 32) & 0xfffc;
		flat_segments(&s, kcs, (uint16_t)(kcs + 8), 0);
		r.rip = msr[0];
		r.rsp = frame[4];
		r.rflags = frame[3] & ~RFLAGS_RF;
		return ioctl(c->fd, KVM_SET_SREGS, &s) == 0 &&
		       ioctl(c->fd, KVM_SET_REGS, &r) == 0;
	}
	/* an ordinary #PF: step over the entry's no-op */
	if (hv_insn_decode(code, guest_copy(c, r.rip, code, sizeof(code),
					    false, false), &in) < 0 ||
	    in.op != HV_INSN_NOP)
		return false;
	r.rip += in.len;
	return ioctl(c->fd, KVM_SET_REGS, &r) == 0;
}

/*
 * Instructions kvm_pvm's ring-0 emulator gives up on, done here instead
 * (decoded by emul.c):
 * - INT3 (KVM's emulator does software interrupts only in real mode; Linux
 *   executes one at boot on purpose, int3_selftest) is a trap, so #BP is
 *   delivered with rip after it, as the CPU would;
 * - FWAIT (x87 task set-up) with no x87 exception pending, which the
 *   kernel never leaves, is a no-op;
 * - LDMXCSR and STMXCSR (kernel_fpu_begin loads MXCSR_DEFAULT) through
 *   the vCPU's FPU state.
 * Only in 64-bit mode.  Returns true when the instruction was handled.
 */
static bool fixup_emulation(struct hv_vcpu *c)
{
	uint8_t code[HV_INSN_MAX_LEN];
	struct kvm_sregs s;
	struct kvm_regs r;
	struct hv_insn in;
	size_t n;

	if (ioctl(c->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(c->fd, KVM_GET_SREGS, &s) < 0 || !s.cs.l)
		return false;
	n = guest_copy(c, r.rip, code, sizeof(code), false,
		       (s.cs.selector & 3) == 3);
	if (hv_insn_decode(code, n, &in) < 0)
		return false;
	atomic_fetch_add(&c->vm->fixups[in.op & 7], 1);
	switch (in.op) {
	case HV_INSN_FWAIT:
		r.rip += in.len;
		return ioctl(c->fd, KVM_SET_REGS, &r) == 0;
	case HV_INSN_INT3:
		r.rip += in.len;
		return ioctl(c->fd, KVM_SET_REGS, &r) == 0 &&
		       inject_exception(c, 3, false, 0);
	case HV_INSN_LDMXCSR:
	case HV_INSN_STMXCSR:
		return do_mxcsr(c, &in, &r, &s);
	case HV_INSN_NOP:
		break;
	}
	return false;
}

/* What the guest was doing when KVM gave up: for the log. */
static void dump_vcpu(struct hv_vcpu *c)
{
	struct kvm_run *run = c->run;
	struct kvm_translation tr = { 0 };
	struct kvm_regs r;
	struct kvm_sregs s;
	char bytes[64] = "";

	for (unsigned i = 0; i < run->internal.ndata && i < 4; i++)
		hv_log("  internal data[%u] = 0x%llx", i,
		       (unsigned long long)run->internal.data[i]);
	if (ioctl(c->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(c->fd, KVM_GET_SREGS, &s) < 0)
		return;
	tr.linear_address = r.rip;
	if (ioctl(c->fd, KVM_TRANSLATE, &tr) == 0 && tr.valid) {
		const uint8_t *p = hv_gmem_ptr(&c->vm->mem, tr.physical_address, 15);

		for (unsigned i = 0; p && i < 15; i++)
			snprintf(bytes + 3 * i, sizeof(bytes) - 3 * i, " %02x", p[i]);
	}
	hv_log("  rip 0x%llx cs 0x%x cr0 0x%llx cr4 0x%llx efer 0x%llx code%s",
	       (unsigned long long)r.rip, s.cs.selector,
	       (unsigned long long)s.cr0, (unsigned long long)s.cr4,
	       (unsigned long long)s.efer, bytes);
}

/*
 * Guest RIP sampling (VMRUN_PROFILE=file): where an emulated guest spends
 * its time.  A thread kicks vCPU 0 every 10 ms; the vCPU thread, back from
 * KVM_RUN with EINTR, records its RIP; the counts are written every 30 s
 * and at the end, "count rip" per line.  Off unless asked for.
 */
#define PROF_SLOTS	65536
static struct {
	const char *path;
	atomic_int want;
	uint64_t rip[PROF_SLOTS];
	uint32_t count[PROF_SLOTS];
	pthread_t thread;
	bool started;
} prof;

static void prof_record(struct hv_vcpu *c)
{
	struct kvm_regs r;
	uint64_t h;

	if (!atomic_exchange(&prof.want, 0) || ioctl(c->fd, KVM_GET_REGS, &r) < 0)
		return;
	h = (r.rip * 0x9e3779b97f4a7c15ull) >> 48;
	for (unsigned i = 0; i < PROF_SLOTS; i++, h = (h + 1) % PROF_SLOTS) {
		if (prof.count[h] == 0 || prof.rip[h] == r.rip) {
			prof.rip[h] = r.rip;
			prof.count[h]++;
			return;
		}
	}
}

static void prof_write(void);

static void *prof_thread(void *arg)
{
	struct hv_vm *vm = arg;

	for (unsigned n = 1; !atomic_load(&vm->exit_why); n++) {
		usleep(10000);
		atomic_store(&prof.want, 1);
		pthread_kill(vm->vcpu[0].thread, KICK_SIGNAL);
		if (n % 3000 == 0)
			prof_write();	/* every 30 s: a long boot can be read
					 * while it runs (counts racy, fine) */
	}
	return NULL;
}

static void prof_write(void)
{
	FILE *f = fopen(prof.path, "w");

	if (!f)
		return;
	for (unsigned i = 0; i < PROF_SLOTS; i++)
		if (prof.count[i])
			fprintf(f, "%u %llx\n", prof.count[i],
				(unsigned long long)prof.rip[i]);
	fclose(f);
}

static void *vcpu_thread(void *arg)
{
	struct hv_vcpu *c = arg;
	struct hv_vm *vm = c->vm;
	struct kvm_run *run = c->run;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	while (!atomic_load(&vm->exit_why)) {
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				if (prof.path && c->id == 0)
					prof_record(c);
				continue;
			}
			hv_log("vcpu %u: KVM_RUN: %s", c->id, strerror(errno));
			hv_vm_request_exit(vm, HV_EXIT_ERROR);
			break;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO: {
			uint8_t *d = (uint8_t *)run + run->io.data_offset;

			for (uint32_t i = 0; i < run->io.count; i++)
				pio(vm, run->io.port, d + i * run->io.size,
				    run->io.size,
				    run->io.direction == KVM_EXIT_IO_OUT);
			/* port I/O is frequent while a kernel boots: look
			 * for its LSTAR now and then until it is set */
			if (vm->sw_backend && !c->pf_entry &&
			    ++c->arm_tries % 64 == 0)
				syscall_watch_arm(c);
			break;
		}
		case KVM_EXIT_MMIO:
			/* PCI memory BARs; elsewhere nothing: reads float high */
			if (run->mmio.len > sizeof(run->mmio.data) ||
			    !hv_pci_mmio(&vm->pci, run->mmio.phys_addr,
					 run->mmio.data, run->mmio.len,
					 run->mmio.is_write)) {
				if (!run->mmio.is_write)
					memset(run->mmio.data, 0xff,
					       sizeof(run->mmio.data));
			}
			break;
		case KVM_EXIT_HLT:
			/* only without an in-kernel LAPIC: nothing will wake us */
			hv_vm_request_exit(vm, HV_EXIT_POWEROFF);
			break;
		case KVM_EXIT_SHUTDOWN:
			hv_vm_request_exit(vm, HV_EXIT_SHUTDOWN);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			hv_vm_request_exit(vm,
				run->system_event.type == KVM_SYSTEM_EVENT_RESET ?
				HV_EXIT_RESET : HV_EXIT_POWEROFF);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_DEBUG:
			if (vm->sw_backend && c->pf_entry &&
			    syscall_watch_hit(c))
				break;
			hv_log("vcpu %u: unexpected debug exit", c->id);
			dump_vcpu(c);
			hv_vm_request_exit(vm, HV_EXIT_ERROR);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			hv_log("vcpu %u: entry failed, reason 0x%llx", c->id,
			       (unsigned long long)
			       run->fail_entry.hardware_entry_failure_reason);
			hv_vm_request_exit(vm, HV_EXIT_ERROR);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			if (vm->sw_backend && fixup_emulation(c))
				break;
			hv_log("vcpu %u: KVM internal error, suberror %u",
			       c->id, run->internal.suberror);
			dump_vcpu(c);
			hv_vm_request_exit(vm, HV_EXIT_ERROR);
			break;
		default:
			hv_log("vcpu %u: unhandled exit %u", c->id,
			       run->exit_reason);
			hv_vm_request_exit(vm, HV_EXIT_ERROR);
			break;
		}
	}
	return NULL;
}

static int vcpu_cpuid(struct hv_vm *vm, struct hv_vcpu *c,
		      const struct kvm_cpuid2 *sup)
{
	size_t sz = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
	struct kvm_cpuid2 *cp = malloc(sz);
	int ret = 0;

	if (!cp)
		return -ENOMEM;
	memcpy(cp, sup, sz);
	for (unsigned i = 0; i < cp->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cp->entries[i];

		switch (e->function) {
		case 1:
			/* initial APIC ID; logical processor count */
			e->ebx = (e->ebx & 0x0000ffffu) | c->id << 24 |
				 (vm->nvcpus & 0xff) << 16;
			e->ecx |= 1u << 31;	/* running under a hypervisor */
			/* kvm_pvm emulates guest ring 0 and its emulator
			 * cannot do CMPXCHG16B, which Linux's SLUB uses when
			 * CX16 is set: hide it there.  (Nor XRSTOR or POPCNT,
			 * but kvm_pvm passes those host bits through whatever
			 * we say: a Linux guest needs "noxsave
			 * clearcpuid=popcnt" on its command line there.) */
			if (vm->sw_backend)
				e->ecx &= ~(1u << 13);
			if (vm->nvcpus > 1)
				e->edx |= 1u << 28;	/* HTT: count valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = c->id;		/* x2APIC ID */
			break;
		}
	}
	if (ioctl(c->fd, KVM_SET_CPUID2, cp) < 0)
		ret = -errno;
	free(cp);
	return ret;
}

static int vcpu_msrs(struct hv_vcpu *c)
{
	/* struct kvm_msrs ends in a flexible array: build it in a buffer */
	uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) / 8 + 1];
	struct kvm_msrs *m = (struct kvm_msrs *)buf;

	memset(buf, 0, sizeof(buf));
	m->nmsrs = 1;
	m->entries[0].index = MSR_IA32_MISC_ENABLE;
	m->entries[0].data = 1;		/* fast strings */
	return ioctl(c->fd, KVM_SET_MSRS, m) == 1 ? 0 : -EIO;
}

/*
 * Entry state.  PVH: 32-bit flat protected mode, paging off, ebx =
 * start_info.  bzImage: 64-bit mode on an identity map, rsi = boot_params.
 */
static int vcpu_boot_regs(struct hv_vm *vm, struct hv_vcpu *c)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 11,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	struct kvm_segment data = code;

	if (ioctl(c->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	data.selector = 0x10;
	data.type = 3;
	if (vm->linux64) {
		/* 64-bit boot protocol: __BOOT_CS 0x10, __BOOT_DS 0x18, paging
		 * on the identity map boot.c built */
		code.selector = 0x10;
		code.l = 1;
		code.db = 0;
		data.selector = 0x18;
		s.gdt.base = HV_BZ_GDT_GPA;
		s.gdt.limit = 4 * 8 - 1;
		s.cr3 = HV_BZ_PML4_GPA;
		s.cr4 = 0x20;			/* PAE */
		s.cr0 = 0x80010033;		/* PG WP NE ET MP PE */
		s.efer = 0x500;			/* LMA | LME */
	} else {
		s.cr0 = 0x11;			/* PE | ET */
		s.cr4 = 0;
		s.efer = 0;
	}
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr.type = 11;
	s.tr.present = 1;
	s.tr.limit = 0x67;
	if (ioctl(c->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	memset(&r, 0, sizeof(r));
	r.rip = vm->entry;
	r.rbx = HV_START_INFO_GPA;
	r.rsi = vm->boot_arg;
	r.rflags = 2;
	if (ioctl(c->fd, KVM_SET_REGS, &r) < 0)
		return -errno;
	return 0;
}

static struct kvm_cpuid2 *supported_cpuid(int kvm_fd)
{
	for (unsigned n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) +
					      n * sizeof(c->entries[0]));

		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return NULL;
}

/* ---- create / run / destroy ----------------------------------------------- */

static int setup_memory(struct hv_vm *vm, uint64_t size)
{
	struct kvm_userspace_memory_region reg;
	uint64_t low = size < HV_MMIO_HOLE_GPA ? size : HV_MMIO_HOLE_GPA;

	vm->ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		return -errno;
	}
	vm->ram_size = size;
	vm->low_size = low;
	madvise(vm->ram, size, MADV_MERGEABLE);
	vm->mem.nr = 0;
	vm->mem.r[vm->mem.nr].gpa = 0;
	vm->mem.r[vm->mem.nr].size = low;
	vm->mem.r[vm->mem.nr].hva = vm->ram;
	vm->mem.nr++;
	if (size > low) {
		vm->mem.r[vm->mem.nr].gpa = 1ull << 32;
		vm->mem.r[vm->mem.nr].size = size - low;
		vm->mem.r[vm->mem.nr].hva = vm->ram + low;
		vm->mem.nr++;
	}
	for (unsigned i = 0; i < vm->mem.nr; i++) {
		reg = (struct kvm_userspace_memory_region){
			.slot = i,
			.guest_phys_addr = vm->mem.r[i].gpa,
			.memory_size = vm->mem.r[i].size,
			.userspace_addr = (uintptr_t)vm->mem.r[i].hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0)
			return -errno;
	}
	return 0;
}

int hv_vm_create(const struct hv_vmx *vmx, struct hv_disk **disks,
		 unsigned ndisks, hv_vm **out, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = 0 };
	struct kvm_cpuid2 *cpuid = NULL;
	struct hv_vm *vm;
	int ret, fd = -1;
	unsigned i;

	*out = NULL;
	if (vmx->vcpus < 1 || vmx->vcpus > HV_MAX_VCPUS || ndisks > HV_MAX_DISKS) {
		snprintf(err, errlen, "bad vCPU or disk count");
		return -EINVAL;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = -1;
	for (i = 0; i < HV_MAX_VCPUS; i++)
		vm->vcpu[i].fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->nvcpus = vmx->vcpus;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "/dev/kvm: %s", strerror(errno));
		goto fail;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		ret = -ENOTSUP;
		snprintf(err, errlen, "/dev/kvm: unexpected API version");
		goto fail;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	vm->run_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->sw_backend = access("/sys/module/kvm_pvm", F_OK) == 0;
	vm->have_irqfd = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD_RESAMPLE) > 0;
	vm->have_ioeventfd = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0;
	/* Intel needs these three pages below 4 GiB outside RAM; others
	 * ignore them */
	ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		goto fail;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_PIT2: %s", strerror(errno));
		goto fail;
	}
	ret = setup_memory(vm, vmx->mem_mib << 20);
	if (ret) {
		snprintf(err, errlen, "guest memory (%llu MiB): %s",
			 (unsigned long long)vmx->mem_mib, strerror(-ret));
		goto fail;
	}

	cpuid = supported_cpuid(vm->kvm_fd);
	if (!cpuid) {
		ret = -EIO;
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID failed");
		goto fail;
	}
	for (i = 0; i < vm->nvcpus; i++) {
		struct hv_vcpu *c = &vm->vcpu[i];

		c->vm = vm;
		c->id = i;
		c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (c->fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", i,
				 strerror(errno));
			goto fail;
		}
		c->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE,
			      MAP_SHARED, c->fd, 0);
		if (c->run == MAP_FAILED) {
			c->run = NULL;
			ret = -errno;
			snprintf(err, errlen, "mmap kvm_run: %s", strerror(errno));
			goto fail;
		}
		ret = vcpu_cpuid(vm, c, cpuid);
		if (ret) {
			snprintf(err, errlen, "KVM_SET_CPUID2: %s", strerror(-ret));
			goto fail;
		}
		if (vcpu_msrs(c))
			hv_log("vcpu %u: could not set MSRs (ignored)", i);
	}

	fd = STDOUT_FILENO;
	if (vmx->serial_file) {
		fd = open(vmx->serial_file, O_WRONLY | O_CREAT | O_TRUNC |
			  O_CLOEXEC, 0644);
		if (fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "serial0.fileName %s: %s",
				 vmx->serial_file, strerror(errno));
			goto fail;
		}
	}
	hv_uart_init(&vm->uart, vm, fd);
	hv_pci_init(&vm->pci);

	ret = hv_boot_load(vm, vmx, err, errlen);
	if (ret)
		goto fail;
	for (i = 0; i < ndisks; i++) {
		ret = hv_vblk_create(vm, disks[i], &vm->vblk[i]);
		if (ret) {
			snprintf(err, errlen, "virtio-blk for %s: %s",
				 disks[i]->name, strerror(-ret));
			goto fail;
		}
		disks[i] = NULL;	/* the device owns it now */
		vm->nvblk++;
	}
	ret = hv_boot_mptable(vm);
	if (ret) {
		snprintf(err, errlen, "MP table: %s", strerror(-ret));
		goto fail;
	}
	ret = vcpu_boot_regs(vm, &vm->vcpu[0]);
	if (ret) {
		snprintf(err, errlen, "boot registers: %s", strerror(-ret));
		goto fail;
	}
	free(cpuid);
	*out = vm;
	return 0;
fail:
	free(cpuid);
	hv_vm_destroy(vm);
	return ret;
}

int hv_vm_run(hv_vm *vm)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigset_t set, old;
	int why;

	sigaction(KICK_SIGNAL, &sa, NULL);
	/* vCPU threads inherit a blocked KICK_SIGNAL and unblock it
	 * themselves, so no other thread ever takes it */
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (pthread_create(&vm->vcpu[i].thread, NULL, vcpu_thread,
				   &vm->vcpu[i])) {
			hv_log("cannot start vcpu thread %u", i);
			hv_vm_request_exit(vm, HV_EXIT_ERROR);
			break;
		}
		vm->vcpu[i].started = true;
	}
	prof.path = getenv("VMRUN_PROFILE");
	if (prof.path && vm->vcpu[0].started)
		prof.started = pthread_create(&prof.thread, NULL, prof_thread,
					      vm) == 0;
	pthread_mutex_lock(&vm->lock);
	while (!atomic_load(&vm->exit_why)) {
		struct timespec ts;

		/* timed: hv_vm_stop() from a signal handler cannot signal */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	}
	pthread_mutex_unlock(&vm->lock);
	why = atomic_load(&vm->exit_why);
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (!vm->vcpu[i].started)
			continue;
		vm->vcpu[i].run->immediate_exit = 1;
		pthread_kill(vm->vcpu[i].thread, KICK_SIGNAL);
	}
	for (unsigned i = 0; i < vm->nvcpus; i++) {
		if (vm->vcpu[i].started)
			pthread_join(vm->vcpu[i].thread, NULL);
		vm->vcpu[i].started = false;
	}
	if (prof.started) {
		pthread_join(prof.thread, NULL);
		prof_write();
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	hv_uart_flush(&vm->uart);
	if (vm->sw_backend) {
		static const char *const name[8] = {
			[HV_INSN_INT3] = "INT3", [HV_INSN_FWAIT] = "FWAIT",
			[HV_INSN_LDMXCSR] = "LDMXCSR",
			[HV_INSN_STMXCSR] = "STMXCSR",
			[0] = "SYSCALL from ring 3",
		};

		for (unsigned i = 0; i < 8; i++)
			if (atomic_load(&vm->fixups[i]) && name[i])
				hv_log("performed for kvm_pvm: %s x%u", name[i],
				       atomic_load(&vm->fixups[i]));
	}
	return why;
}

void hv_vm_destroy(hv_vm *vm)
{
	if (!vm)
		return;
	for (unsigned i = 0; i < vm->nvblk; i++)
		hv_vblk_destroy(vm->vblk[i]);
	hv_uart_flush(&vm->uart);
	if (vm->uart.fd > STDERR_FILENO)
		close(vm->uart.fd);
	for (unsigned i = 0; i < HV_MAX_VCPUS; i++) {
		if (vm->vcpu[i].run)
			munmap(vm->vcpu[i].run, vm->run_size);
		if (vm->vcpu[i].fd >= 0)
			close(vm->vcpu[i].fd);
	}
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}
