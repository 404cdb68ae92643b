/*
 * vmtest.c - the test guest's workload (64-bit ring 3, IOPL=3) and the few
 * ring-0 helpers the stub calls (vmtest_r0_*).
 *
 * The workload talks to the hardware only through port I/O and memory: the
 * 8250 UART at 0x3f8, PCI configuration space (0xcf8/0xcfc), a legacy
 * virtio-pci block device (I/O BAR 0), the PIT (to calibrate the TSC) and
 * the local APIC (INIT/SIPI for the smp task).  It polls the used ring with
 * interrupts off (VRING_AVAIL_F_NO_INTERRUPT), so it needs no interrupt
 * handling.  It powers off through port 0xf4 (our VMM; QEMU's
 * isa-debug-exit at iobase 0xf4), then the i8042 reset (0x64 <- 0xfe).
 *
 * Freestanding: no libc, no SSE (-mgeneral-regs-only), no floating point.
 */
#include <stddef.h>
#include <stdint.h>

#define VIRTIO_VENDOR		0x1af4
#define VIRTIO_DEV_BLK_LEGACY	0x1001

/* legacy virtio-pci I/O BAR layout */
#define VP_HOST_FEATURES	0x00
#define VP_GUEST_FEATURES	0x04
#define VP_QUEUE_PFN		0x08
#define VP_QUEUE_NUM		0x0c
#define VP_QUEUE_SEL		0x0e
#define VP_QUEUE_NOTIFY		0x10
#define VP_STATUS		0x12
#define VP_ISR			0x13
#define VP_CONFIG		0x14

#define VIRTIO_BLK_F_FLUSH	9
#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_AVAIL_F_NO_INTERRUPT 1

#define MAX_QSZ		1024
#define LAPIC		0xfee00000ull
#define IRQ_VECTOR	0x40
#define MAX_QD		32
#define CHUNK		(128 * 1024)

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp0;
	uint64_t rsp1;
	uint64_t rsp2;
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iopb;
} __attribute__((packed));

struct trap_frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	uint64_t vec, err, rip, cs, rflags, rsp, ss;
};

/* from vmtest_entry.S */
extern uint64_t vmtest_gdt_tss[2];
extern uint8_t vmtest_idt[256 * 16];
extern uint8_t vmtest_irq_entry[], vmtest_spurious_entry[];
extern struct tss64 vmtest_tss;
extern const uint64_t vmtest_trap_table[32];
extern uint8_t boot_stack_top[];
extern uint64_t vmtest_start_info;
extern volatile uint32_t vmtest_ap_count;
extern const uint8_t vmtest_tramp_start[], vmtest_tramp_end[];

void vmtest_r0_init(void);
void vmtest_r0_trap(struct trap_frame *f);
void vmtest_r0_irq(void);
void vmtest_main(void);

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

#define barrier() __asm__ volatile("" ::: "memory")

/* The compiler may emit calls to these even when freestanding. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

/* ---- console ------------------------------------------------------------ */

static void putc_(char c)
{
	outb(0x3f8, (uint8_t)c);
}

static void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

static void putu(uint64_t v)
{
	char b[24];
	int i = 0;

	do {
		b[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		putc_(b[--i]);
}

static void putx(uint64_t v)
{
	static const char hex[] = "0123456789abcdef";

	puts_("0x");
	for (int i = 60; i >= 0; i -= 4)
		putc_(hex[(v >> i) & 15]);
}

static __attribute__((noreturn)) void power_off(void)
{
	outb(0xf4, 0);		/* our VMM; QEMU isa-debug-exit */
	outb(0x64, 0xfe);	/* i8042 pulse reset line */
	for (;;)
		__asm__ volatile("pause");
}

static __attribute__((noreturn)) void die(const char *msg)
{
	puts_("vmtest: FAIL ");
	puts_(msg);
	putc_('\n');
	power_off();
}

/* ---- ring 0 ------------------------------------------------------------- */

/* kvmclock (pvclock) page, registered by vmtest_r0_init when KVM offers it */
struct pvclock {
	uint32_t version, pad0;
	uint64_t tsc_timestamp, system_time;
	uint32_t mul;
	int8_t shift;
	uint8_t flags, pad[2];
};
static volatile struct pvclock pvclock __attribute__((aligned(64)));
static int have_kvmclock;

static void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(0));
}

void vmtest_r0_init(void)
{
	uint64_t base = (uint64_t)&vmtest_tss, limit = sizeof(vmtest_tss) - 1;

	vmtest_tss.rsp0 = (uint64_t)boot_stack_top;
	vmtest_tss.iopb = sizeof(vmtest_tss);
	vmtest_gdt_tss[0] = (limit & 0xffff) | (base & 0xffffff) << 16 |
			    0x89ull << 40 | ((limit >> 16) & 0xf) << 48 |
			    ((base >> 24) & 0xff) << 56;
	vmtest_gdt_tss[1] = base >> 32;
	/* "KVMKVMKVM" and KVM_FEATURE_CLOCKSOURCE2: the clock ring 3 reads */
	{
		uint32_t r[4];
		uint64_t pa = (uint64_t)&pvclock | 1;

		cpuid(0x40000000, r);
		if (r[1] == 0x4b4d564b && r[2] == 0x564b4d56 && r[3] == 0x4d) {
			cpuid(0x40000001, r);
			if (r[0] & 1u << 3) {
				__asm__ volatile("wrmsr" : : "c"(0x4b564d01),
						 "a"((uint32_t)pa),
						 "d"((uint32_t)(pa >> 32)));
				have_kvmclock = 1;
			}
		}
	}
	for (int v = 0; v < 256; v++) {
		uint64_t h = v < 32 ? vmtest_trap_table[v] :
			     v == IRQ_VECTOR ? (uint64_t)vmtest_irq_entry :
			     (uint64_t)vmtest_spurious_entry;
		uint64_t *g = (uint64_t *)(vmtest_idt + 16 * v);

		g[0] = (h & 0xffff) | 0x08ull << 16 | 0x8eull << 40 |
		       (h >> 16 & 0xffff) << 48;
		g[1] = h >> 32;
	}
}

/* Perform a faulting IN/OUT (imm8 or DX port, 8/16/32 bits), STI or CLI
 * of ring 3. */
static int emulate_pio(struct trap_frame *f)
{
	const uint8_t *ip = (const uint8_t *)f->rip;
	unsigned n = 0, size = 4, in, len;
	uint16_t port;
	uint32_t v;

	if ((f->cs & 3) != 3)
		return 0;
	if (ip[0] == 0x66) {
		size = 2;
		n = 1;
	}
	if (ip[0] == 0xfb || ip[0] == 0xfa) {
		/* STI / CLI: IOPL=3 is not honoured either */
		if (ip[0] == 0xfb)
			f->rflags |= 0x200;
		else
			f->rflags &= ~0x200ull;
		f->rip += 1;
		return 1;
	}
	switch (ip[n]) {
	case 0xe4: case 0xe5: case 0xe6: case 0xe7:
		port = ip[n + 1];
		len = n + 2;
		break;
	case 0xec: case 0xed: case 0xee: case 0xef:
		port = (uint16_t)f->rdx;
		len = n + 1;
		break;
	default:
		return 0;
	}
	if (!(ip[n] & 1))
		size = 1;
	in = !(ip[n] & 2);
	if (in) {
		if (size == 1)
			v = inb(port), f->rax = (f->rax & ~0xffull) | v;
		else if (size == 2)
			v = inw(port), f->rax = (f->rax & ~0xffffull) | v;
		else
			f->rax = inl(port);
	} else {
		if (size == 1)
			outb(port, (uint8_t)f->rax);
		else if (size == 2)
			outw(port, (uint16_t)f->rax);
		else
			outl(port, (uint32_t)f->rax);
	}
	f->rip += len;
	return 1;
}

void vmtest_r0_trap(struct trap_frame *f)
{
	if (f->vec == 13 && emulate_pio(f))
		return;
	puts_("vmtest: FAIL exception ");
	putu(f->vec);
	puts_(" err ");
	putx(f->err);
	puts_(" rip ");
	putx(f->rip);
	putc_('\n');
	power_off();
}

/* ---- command line --------------------------------------------------------- */

static const char *cmdline = "";

/* Value of "key=" on the command line (up to the next space), or NULL. */
static const char *arg(const char *key, size_t *len)
{
	const char *p = cmdline;

	while (*p) {
		const char *k = key;
		const char *q = p;

		while (*k && *q == *k) {
			q++;
			k++;
		}
		if (!*k && (p == cmdline || p[-1] == ' ')) {
			const char *e = q;

			while (*e && *e != ' ')
				e++;
			*len = (size_t)(e - q);
			return q;
		}
		p++;
	}
	return NULL;
}

static int arg_is(const char *key, const char *val)
{
	size_t len, i;
	const char *v = arg(key, &len);

	if (!v)
		return 0;
	for (i = 0; i < len && val[i] == v[i]; i++)
		;
	return i == len && !val[i];
}

static uint64_t arg_num(const char *key, uint64_t def)
{
	size_t len;
	const char *v = arg(key, &len);
	uint64_t n = 0;

	if (!v || !len)
		return def;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			die("bad number on the command line");
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	return n;
}

/* ---- time ------------------------------------------------------------------- */

static uint64_t tsc_hz;

/*
 * Time: kvmclock when the hypervisor offers it (KVM, in our VMM and in
 * QEMU), else the TSC calibrated against PIT channel 2 (port 0x61 must be
 * emulated then).  TSC frequency against PIT channel 2, 50 ms.
 */
static void tsc_calibrate(void)
{
	uint16_t latch = 1193182 / 20;
	uint64_t t0, t1, spins = 0;

	outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
	outb(0x43, 0xb0);
	outb(0x42, latch & 0xff);
	outb(0x42, latch >> 8);
	t0 = rdtsc();
	while (!(inb(0x61) & 0x20)) {
		if (++spins > 100000000ull)
			die("PIT channel 2 never expired");
	}
	t1 = rdtsc();
	tsc_hz = (t1 - t0) * 20;
	if (tsc_hz < 1000000)
		die("TSC does not advance");
}

static uint64_t kvmclock_ns(void)
{
	uint32_t v, mul;
	uint64_t tsc, ts, st, d;
	int8_t shift;

	do {
		v = pvclock.version;
		barrier();
		tsc = rdtsc();
		ts = pvclock.tsc_timestamp;
		st = pvclock.system_time;
		mul = pvclock.mul;
		shift = pvclock.shift;
		barrier();
	} while ((v & 1) || v != pvclock.version);
	d = tsc - ts;
	if (shift < 0)
		d >>= -shift;
	else
		d <<= shift;
	return st + (uint64_t)(((unsigned __int128)d * mul) >> 32);
}

static uint64_t now_us(void)
{
	if (have_kvmclock)
		return kvmclock_ns() / 1000;
	return rdtsc() / (tsc_hz / 1000000);
}

static void delay_us(uint64_t us)
{
	uint64_t end = now_us() + us;

	while (now_us() < end)
		__asm__ volatile("pause");
}

/* ---- PCI and virtio-blk (legacy) -------------------------------------------- */

static uint32_t pci_read(unsigned dev, unsigned reg)
{
	outl(0xcf8, 0x80000000u | dev << 11 | (reg & 0xfc));
	return inl(0xcfc);
}

static void pci_write(unsigned dev, unsigned reg, uint32_t v)
{
	outl(0xcf8, 0x80000000u | dev << 11 | (reg & 0xfc));
	outl(0xcfc, v);
}

/* The MP configuration table ("PCMP"), found through the floating pointer
 * in the EBDA, the last KiB of base memory or the BIOS area; or NULL. */
static const uint8_t *mp_config_table(void)
{
	uint64_t ranges[3][2] = {
		{ (uint64_t)*(volatile uint16_t *)0x40e << 4, 1024 },
		{ 0x9fc00, 1024 },
		{ 0xf0000, 0x10000 },
	};

	for (int r = 0; r < 3; r++) {
		for (uint64_t a = ranges[r][0];
		     a + 16 <= ranges[r][0] + ranges[r][1]; a += 16) {
			const uint8_t *f = (const uint8_t *)a, *t;
			uint8_t sum = 0;

			if (!a || f[0] != '_' || f[1] != 'M' || f[2] != 'P' ||
			    f[3] != '_')
				continue;
			for (int i = 0; i < 16; i++)
				sum += f[i];
			if (sum)
				continue;
			t = (const uint8_t *)(uint64_t)*(const uint32_t *)(f + 4);
			if (!t || t[0] != 'P' || t[1] != 'C' || t[2] != 'M' ||
			    t[3] != 'P')
				return NULL;
			return t;
		}
	}
	return NULL;
}

static uint8_t vring_mem[65536] __attribute__((aligned(4096)));
static struct blk_hdr hdrs[MAX_QD];
static volatile uint8_t stats[MAX_QD];
static uint8_t iobuf[MAX_QD][4096] __attribute__((aligned(4096)));
static uint8_t chunk[CHUNK] __attribute__((aligned(4096)));

static struct {
	uint16_t io;			/* legacy: I/O BAR 0 */
	int modern;			/* virtio 1.x through a memory BAR */
	volatile uint8_t *common, *isr, *dcfg;
	volatile uint16_t *notify;
	unsigned qsz, qd;
	int flush;
	uint64_t sectors;
	struct vring_desc *desc;
	volatile uint16_t *avail;	/* flags, idx, ring[] */
	volatile uint8_t *used;		/* flags, idx, ring[] of {id, len} */
	uint16_t avail_idx, used_idx;
} blk;

/* Address of memory BAR `bar` (below 4 GiB), assigned here if unset. */
static uint64_t mem_bar(unsigned dev, unsigned bar)
{
	unsigned reg = 0x10 + 4 * bar;
	uint32_t v = pci_read(dev, reg);

	if (v & 1)
		die("virtio capability in an I/O BAR");
	if ((v & 6) == 4 && pci_read(dev, reg + 4))
		die("virtio memory BAR above 4 GiB");
	if (!(v & ~0xfu)) {
		pci_write(dev, reg, 0xe8000000u + dev * 0x10000u);
		if ((v & 6) == 4)
			pci_write(dev, reg + 4, 0);
		v = pci_read(dev, reg);
	}
	return v & ~0xfu;
}

/* virtio 1.x: find the common, notify, ISR and device areas through the
 * vendor capabilities and negotiate (every access is MMIO, which ring 3
 * does without a trap).  Returns the queue size. */
static unsigned modern_init(unsigned dev)
{
	unsigned cap = pci_read(dev, 0x34) & 0xfc, guard = 0, qsz;
	uint32_t mult = 0, lo, hi;
	volatile uint8_t *notify_base = NULL, *c;

	while (cap && guard++ < 48) {
		uint32_t w = pci_read(dev, cap);

		unsigned type = w >> 24, bar = pci_read(dev, cap + 4) & 0xff;

		/* types 1-4 in a memory BAR; QEMU adds a PCI_CFG window
		 * (type 5) and, optionally, a notify area in an I/O BAR */
		if ((w & 0xff) == 0x09 && type >= 1 && type <= 4 && bar < 6 &&
		    !(pci_read(dev, 0x10 + 4 * bar) & 1)) {
			volatile uint8_t *p = (volatile uint8_t *)(mem_bar(dev, bar) +
				pci_read(dev, cap + 8));

			switch (type) {
			case 1: blk.common = p; break;
			case 2:
				notify_base = p;
				mult = pci_read(dev, cap + 16);
				break;
			case 3: blk.isr = p; break;
			case 4: blk.dcfg = p; break;
			}
		}
		cap = (w >> 8) & 0xfc;
	}
	if (!blk.common || !notify_base || !blk.isr || !blk.dcfg)
		die("virtio 1.x capabilities missing");
	c = blk.common;
	c[0x14] = 0;				/* reset */
	c[0x14] = 1 | 2;			/* ACKNOWLEDGE | DRIVER */
	*(volatile uint32_t *)(c + 0x00) = 0;
	lo = *(volatile uint32_t *)(c + 0x04);
	*(volatile uint32_t *)(c + 0x00) = 1;
	hi = *(volatile uint32_t *)(c + 0x04);
	if (!(hi & 1))
		die("device does not offer VIRTIO_F_VERSION_1");
	blk.flush = !!(lo & 1u << VIRTIO_BLK_F_FLUSH);
	*(volatile uint32_t *)(c + 0x08) = 0;
	*(volatile uint32_t *)(c + 0x0c) = lo & 1u << VIRTIO_BLK_F_FLUSH;
	*(volatile uint32_t *)(c + 0x08) = 1;
	*(volatile uint32_t *)(c + 0x0c) = 1;	/* VERSION_1 */
	c[0x14] = 1 | 2 | 8;			/* FEATURES_OK */
	if (!(c[0x14] & 8))
		die("device refused our features");
	*(volatile uint16_t *)(c + 0x16) = 0;	/* queue 0 */
	qsz = *(volatile uint16_t *)(c + 0x18);
	if (qsz > MAX_QSZ) {
		qsz = MAX_QSZ;
		*(volatile uint16_t *)(c + 0x18) = (uint16_t)qsz;
	}
	blk.notify = (volatile uint16_t *)(notify_base +
		*(volatile uint16_t *)(c + 0x1e) * mult);
	blk.sectors = *(volatile uint32_t *)blk.dcfg |
		      (uint64_t)*(volatile uint32_t *)(blk.dcfg + 4) << 32;
	return qsz;
}

/* Tell a modern device where the rings are, enable the queue, go. */
static void modern_start(void)
{
	volatile uint8_t *c = blk.common;
	uint64_t d = (uint64_t)blk.desc, av = (uint64_t)blk.avail;
	uint64_t u = (uint64_t)blk.used;

	*(volatile uint32_t *)(c + 0x20) = (uint32_t)d;
	*(volatile uint32_t *)(c + 0x24) = (uint32_t)(d >> 32);
	*(volatile uint32_t *)(c + 0x28) = (uint32_t)av;
	*(volatile uint32_t *)(c + 0x2c) = (uint32_t)(av >> 32);
	*(volatile uint32_t *)(c + 0x30) = (uint32_t)u;
	*(volatile uint32_t *)(c + 0x34) = (uint32_t)(u >> 32);
	*(volatile uint16_t *)(c + 0x1c) = 1;	/* queue_enable */
	c[0x14] = 1 | 2 | 4 | 8;		/* DRIVER_OK */
	if (c[0x14] & 0x40)
		die("device needs reset after queue set-up");
}

/* Disk vmtest.disk=N (default 0): the N-th virtio-blk device by slot,
 * through the legacy interface or, with vmtest.modern=1, virtio 1.x. */
/* Interrupt mode (vmtest.irq=1): completions are looked for only after
 * an interrupt arrived, so a lost interrupt shows as a hang (and a
 * timeout), not as a pass. */
static int irq_mode;
static volatile uint64_t irq_count;
static uint64_t irq_seen;

void vmtest_r0_irq(void)
{
	/* read-to-clear: deasserts */
	if (blk.modern)
		(void)*blk.isr;
	else
		(void)inb(blk.io + VP_ISR);
	irq_count++;
	*(volatile uint32_t *)(LAPIC + 0xb0) = 0;	/* EOI */
}

/* IOAPIC pin of PCI device `dev` INTA# from the MP table, else the
 * interrupt line register. */
static unsigned pci_irq_pin(unsigned dev)
{
	const uint8_t *t = mp_config_table();

	if (t) {
		const uint8_t *e = t + *(const uint16_t *)(t + 4);

		for (const uint8_t *p = t + 44; p < e; p += p[0] ? 8 : 20)
			if (p[0] == 3 && p[4] == 0 && p[5] == dev << 2)
				return p[7];
	}
	return pci_read(dev, 0x3c) & 0xff;
}

static void irq_setup(unsigned dev)
{
	volatile uint32_t *sel = (volatile uint32_t *)0xfec00000;
	volatile uint32_t *win = (volatile uint32_t *)0xfec00010;
	unsigned pin = pci_irq_pin(dev);

	/* local APIC on, spurious vector 0xff */
	*(volatile uint32_t *)(LAPIC + 0xf0) = 0x1ff;
	/* IOAPIC: pin -> vector, level, active high, fixed, to APIC 0 */
	*sel = 0x11 + 2 * pin;
	*win = 0;
	*sel = 0x10 + 2 * pin;
	*win = IRQ_VECTOR | 1u << 15;
	__asm__ volatile("sti");
}

static void blk_init(void)
{
	unsigned dev, qsz, want = (unsigned)arg_num("vmtest.disk=", 0);
	uint32_t id, bar, feat;
	size_t avail_off, used_off;

	for (dev = 0; dev < 32; dev++) {
		id = pci_read(dev, 0);
		if ((id & 0xffff) == VIRTIO_VENDOR &&
		    (id >> 16) == VIRTIO_DEV_BLK_LEGACY && !want--)
			break;
	}
	if (dev == 32)
		die("no such virtio-blk device on PCI bus 0");
	bar = pci_read(dev, 0x10);
	if (!(bar & 1))
		die("virtio-blk BAR 0 is not an I/O BAR");
	if (!(bar & ~3u)) {
		/* firmware that assigns no I/O BARs (qboot): do it here */
		pci_write(dev, 0x10, 0xc000u + dev * 0x100u);
		bar = pci_read(dev, 0x10);
	}
	blk.io = (uint16_t)(bar & ~3u);
	pci_write(dev, 4, (pci_read(dev, 4) & 0xffff0000u) | 0x7);

	blk.modern = (int)arg_num("vmtest.modern=", 0);
	if (blk.modern) {
		qsz = modern_init(dev);
		goto rings;
	}
	outb(blk.io + VP_STATUS, 0);
	outb(blk.io + VP_STATUS, 1 | 2);	/* ACKNOWLEDGE | DRIVER */
	feat = inl(blk.io + VP_HOST_FEATURES);
	blk.flush = !!(feat & 1u << VIRTIO_BLK_F_FLUSH);
	outl(blk.io + VP_GUEST_FEATURES, feat & 1u << VIRTIO_BLK_F_FLUSH);
	blk.sectors = inl(blk.io + VP_CONFIG) |
		      (uint64_t)inl(blk.io + VP_CONFIG + 4) << 32;

	outw(blk.io + VP_QUEUE_SEL, 0);
	qsz = inw(blk.io + VP_QUEUE_NUM);
rings:
	if (qsz < 3 || qsz > MAX_QSZ || (qsz & (qsz - 1)))
		die("virtio-blk queue size unusable");
	blk.qsz = qsz;
	blk.qd = qsz / 3 < MAX_QD ? qsz / 3 : MAX_QD;
	avail_off = 16 * qsz;
	used_off = (avail_off + 6 + 2 * qsz + 4095) & ~(size_t)4095;
	blk.desc = (struct vring_desc *)vring_mem;
	blk.avail = (volatile uint16_t *)(vring_mem + avail_off);
	blk.used = vring_mem + used_off;
	irq_mode = (int)arg_num("vmtest.irq=", 0);
	blk.avail[0] = irq_mode ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
	if (irq_mode)
		irq_setup(dev);
	if (blk.modern) {
		modern_start();
		return;
	}
	outl(blk.io + VP_QUEUE_PFN, (uint32_t)((uint64_t)vring_mem >> 12));
	outb(blk.io + VP_STATUS, 1 | 2 | 4);	/* DRIVER_OK */
}

/* Queue request `slot` (descriptors 3*slot..3*slot+2); no notify. */
static void blk_queue(unsigned slot, uint32_t type, uint64_t sector,
		      void *buf, uint32_t len)
{
	struct vring_desc *d = &blk.desc[3 * slot];

	hdrs[slot].type = type;
	hdrs[slot].reserved = 0;
	hdrs[slot].sector = sector;
	stats[slot] = 0xff;
	d[0].addr = (uint64_t)&hdrs[slot];
	d[0].len = sizeof(hdrs[slot]);
	d[0].flags = VRING_DESC_F_NEXT;
	d[0].next = (uint16_t)(3 * slot + 1);
	if (len) {
		d[1].addr = (uint64_t)buf;
		d[1].len = len;
		d[1].flags = VRING_DESC_F_NEXT |
			     (type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0);
		d[1].next = (uint16_t)(3 * slot + 2);
	} else {
		d[0].next = (uint16_t)(3 * slot + 2);
	}
	d[2].addr = (uint64_t)&stats[slot];
	d[2].len = 1;
	d[2].flags = VRING_DESC_F_WRITE;
	d[2].next = 0;
	blk.avail[2 + blk.avail_idx % blk.qsz] = (uint16_t)(3 * slot);
	barrier();
	blk.avail_idx++;
	blk.avail[1] = blk.avail_idx;
}

/*
 * Notify the device unless it said it is polling (VRING_USED_F_NO_NOTIFY):
 * a port write costs a trap into emulated ring 0 on kvm_pvm.  The fence
 * orders the avail index store before the flags load (the device clears
 * the flag, then re-reads the index: one of us sees the other).
 */
static void blk_kick(void)
{
	__asm__ volatile("mfence" ::: "memory");
	if (*(volatile uint16_t *)blk.used & 1)
		return;
	if (blk.modern)
		*blk.notify = 0;	/* MMIO: no trap into ring 0 */
	else
		outw(blk.io + VP_QUEUE_NOTIFY, 0);
}

/* A completed slot, or -1 when none is there yet. */
static int blk_poll(void)
{
	volatile uint16_t *uidx = (volatile uint16_t *)(blk.used + 2);
	uint32_t id;
	int slot;

	/* the count before the index: an interrupt that lands in between
	 * leaves irq_seen behind, so the next poll looks again */
	uint64_t count = irq_count;

	barrier();
	if (*uidx == blk.used_idx) {
		if (irq_mode)
			irq_seen = count;	/* drained: wait for the next */
		return -1;
	}
	if (irq_mode && irq_seen == irq_count)
		return -1;
	barrier();
	id = *(volatile uint32_t *)(blk.used + 4 + 8 * (blk.used_idx % blk.qsz));
	blk.used_idx++;
	slot = (int)(id / 3);
	if (id % 3 || slot >= (int)blk.qd)
		die("device returned a bad used id");
	if (stats[slot] != 0) {
		puts_("vmtest: FAIL request status ");
		putu(stats[slot]);
		puts_(" sector ");
		putu(hdrs[slot].sector);
		putc_('\n');
		power_off();
	}
	return slot;
}

static void blk_sync(uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	uint64_t end;

	blk_queue(0, type, sector, buf, len);
	blk_kick();
	end = now_us() + 10000000;
	while (blk_poll() < 0) {
		if (now_us() > end)
			die(irq_mode ? "request not completed (no interrupt?)" :
			    "request not completed");
		__asm__ volatile("pause");
	}
}

/* ---- tasks ----------------------------------------------------------------- */

static void sector_pattern(uint8_t *p, uint64_t n)
{
	static const char txt[] = "vmtest sector ";
	char num[24];
	size_t i = 0, k = 0;

	while (txt[i]) {
		p[i] = (uint8_t)txt[i];
		i++;
	}
	do {
		num[k++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	while (k)
		p[i++] = (uint8_t)num[--k];
	p[i++] = '\n';
	while (i < 512)
		p[i++] = '.';
}

static uint64_t task_mib(void)
{
	uint64_t mib = arg_num("vmtest.mib=", 16);

	if (!mib || mib * 2048 > blk.sectors)
		die("vmtest.mib is 0 or larger than the disk");
	return mib;
}

static void verify_range(uint64_t mib, const char *what)
{
	uint8_t want[512];

	for (uint64_t s = 0; s < mib * 2048; s += CHUNK / 512) {
		blk_sync(VIRTIO_BLK_T_IN, s, chunk, CHUNK);
		for (unsigned i = 0; i < CHUNK / 512; i++) {
			const uint8_t *got = chunk + 512 * i;

			sector_pattern(want, s + i);
			for (unsigned b = 0; b < 512; b++) {
				if (got[b] != want[b]) {
					puts_("vmtest: ");
					puts_(what);
					puts_(" bad sector ");
					putu(s + i);
					putc_('\n');
					power_off();
				}
			}
		}
	}
}

static void task_fill(void)
{
	uint64_t mib = task_mib();

	for (uint64_t s = 0; s < mib * 2048; s += CHUNK / 512) {
		for (unsigned i = 0; i < CHUNK / 512; i++)
			sector_pattern(chunk + 512 * i, s + i);
		blk_sync(VIRTIO_BLK_T_OUT, s, chunk, CHUNK);
	}
	if (blk.flush)
		blk_sync(VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	verify_range(mib, "fill");
	puts_("vmtest: fill ok ");
	putu(mib);
	puts_(" MiB\n");
}

static void task_verify(void)
{
	uint64_t mib = task_mib();

	verify_range(mib, "verify");
	puts_("vmtest: verify ok ");
	putu(mib);
	puts_(" MiB\n");
}

/* vmtest=zeros vmtest.from=F vmtest.mib=N: MiB [F, F+N) read as zeros
 * (holes and to-be-zeroed blocks of a datastore disk). */
static void task_zeros(void)
{
	uint64_t mib = arg_num("vmtest.mib=", 16), from = arg_num("vmtest.from=", 0);

	if (!mib || (from + mib) * 2048 > blk.sectors)
		die("vmtest.from + vmtest.mib is 0 or larger than the disk");
	for (uint64_t s = from * 2048; s < (from + mib) * 2048; s += CHUNK / 512) {
		blk_sync(VIRTIO_BLK_T_IN, s, chunk, CHUNK);
		for (unsigned b = 0; b < CHUNK; b++)
			if (chunk[b]) {
				puts_("vmtest: zeros bad sector ");
				putu(s + b / 512);
				putc_('\n');
				power_off();
			}
	}
	puts_("vmtest: zeros ok ");
	putu(mib);
	puts_(" MiB from ");
	putu(from);
	puts_(" MiB\n");
}

static uint64_t rnd_state = 88172645463325252ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void io_submit_one(unsigned slot, uint64_t blocks, uint64_t *rd,
			  uint64_t *wr)
{
	uint64_t r = rnd();
	int write = (r >> 62) & 1;

	blk_queue(slot, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
		  (r % blocks) * 8, iobuf[slot], 4096);
	if (write)
		(*wr)++;
	else
		(*rd)++;
}

static void task_io(void)
{
	uint64_t secs = arg_num("vmtest.secs=", 5), blocks = blk.sectors / 8;
	uint64_t rd = 0, wr = 0, done = 0, t0, t1, end, iops, kbs;
	unsigned inflight = 0;

	if (!blocks)
		die("disk smaller than 4 KiB");
	for (unsigned s = 0; s < blk.qd; s++)
		for (unsigned b = 0; b < 4096; b++)
			iobuf[s][b] = (uint8_t)(s + b);
	t0 = now_us();
	end = t0 + secs * 1000000;
	for (unsigned s = 0; s < blk.qd; s++, inflight++)
		io_submit_one(s, blocks, &rd, &wr);
	blk_kick();
	while (inflight) {
		int slot, n = 0;
		int stop = now_us() >= end;

		while ((slot = blk_poll()) >= 0) {
			done++;
			if (stop) {
				inflight--;
				continue;
			}
			io_submit_one((unsigned)slot, blocks, &rd, &wr);
			n++;
		}
		if (n)
			blk_kick();
	}
	t1 = now_us();
	iops = done * 1000000 / (t1 - t0 ? t1 - t0 : 1);
	kbs = iops * 4;
	puts_("vmtest: io qd=");
	putu(blk.qd);
	puts_(" secs=");
	putu(secs);
	puts_(" ops=");
	putu(done);
	puts_(" reads=");
	putu(rd);
	puts_(" writes=");
	putu(wr);
	puts_(" iops=");
	putu(iops);
	puts_(" MB/s=");
	putu(kbs / 1000);
	putc_('.');
	putu(kbs % 1000 / 100);
	putu(kbs % 100 / 10);
	putc_('\n');
}

/* Enabled processors in the MP table (0 when there is none). */
static unsigned mp_cpus(void)
{
	const uint8_t *t = mp_config_table(), *e;
	unsigned n = 0;

	if (!t)
		return 0;
	e = t + *(const uint16_t *)(t + 4);
	for (const uint8_t *p = t + 44; p < e; p += p[0] ? 8 : 20)
		if (p[0] == 0)
			n += p[3] & 1;
	return n;
}

static void task_smp(void)
{
	volatile uint32_t *icr = (volatile uint32_t *)0xfee00300;
	unsigned want = mp_cpus();
	uint64_t end;
	size_t len = (size_t)(vmtest_tramp_end - vmtest_tramp_start);

	memcpy((void *)0x8000, vmtest_tramp_start, len);
	barrier();
	*icr = 0x000c4500;		/* INIT, all excluding self */
	delay_us(10000);
	*icr = 0x000c4608;		/* STARTUP, vector 0x08 -> 0x8000 */
	delay_us(200);
	*icr = 0x000c4608;
	end = now_us() + (want ? 5000000 : 1000000);
	while (now_us() < end && (!want || vmtest_ap_count + 1 < want))
		__asm__ volatile("pause");
	puts_("vmtest: vcpus=");
	putu(vmtest_ap_count + 1);
	putc_('\n');
}

static void task_hold(void)
{
	uint64_t secs = arg_num("vmtest.secs=", 5);

	puts_("vmtest: holding ");
	putu(secs);
	puts_(" s\n");
	delay_us(secs * 1000000);
	puts_("vmtest: hold done\n");
}

void vmtest_main(void)
{
	const uint32_t *si = (const uint32_t *)vmtest_start_info;

	if (si && si[0] == 0x336ec578)
		cmdline = (const char *)*(const uint64_t *)(si + 6);
	if (!cmdline)
		cmdline = "";
	puts_("vmtest: started, cmdline \"");
	puts_(cmdline);
	puts_("\"\n");
	if (si && si[0] == 0x336ec578 && si[1] >= 1) {
		/* the PVH memory map: usable RAM the VMM described */
		const uint8_t *mm = (const uint8_t *)*(const uint64_t *)(si + 10);
		uint64_t kib = 0;
		uint32_t n = si[12];

		for (uint32_t i = 0; mm && i < n && i < 128; i++)
			if (*(const uint32_t *)(mm + 24 * i + 16) == 1)
				kib += *(const uint64_t *)(mm + 24 * i + 8) >> 10;
		puts_("vmtest: ram ");
		putu(kib);
		puts_(" KiB in the memory map\n");
	}
	if (!have_kvmclock) {
		tsc_calibrate();
		puts_("vmtest: no kvmclock, TSC ");
		putu(tsc_hz / 1000000);
		puts_(" MHz by the PIT\n");
	}
	if (arg_is("vmtest=", "smp")) {
		task_smp();
	} else if (arg_is("vmtest=", "hold")) {
		task_hold();
	} else if (arg_is("vmtest=", "fill") || arg_is("vmtest=", "verify") ||
		   arg_is("vmtest=", "io") || arg_is("vmtest=", "zeros")) {
		blk_init();
		if (arg_is("vmtest=", "fill"))
			task_fill();
		else if (arg_is("vmtest=", "verify"))
			task_verify();
		else if (arg_is("vmtest=", "zeros"))
			task_zeros();
		else
			task_io();
		if (irq_mode) {
			puts_("vmtest: irqs=");
			putu(irq_count);
			putc_('\n');
		}
	} else {
		die("no task (vmtest=fill|verify|zeros|smp|io|hold)");
	}
	power_off();
}
