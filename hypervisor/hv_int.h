/*
 * hv_int.h - private structures of the executor: the VM, port I/O
 * dispatch, the UART, PCI and the virtio-pci transport.
 */
#ifndef HV_INT_H
#define HV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hypervisor/hv.h"
#include "hypervisor/virtq.h"

/* Guest physical layout. */
#define HV_START_INFO_GPA	0x6000ull	/* PVH start_info + memmap */
#define HV_CMDLINE_GPA		0x7000ull
/* Linux boot protocol (bzImage): GDT, page tables, zero page, command line */
#define HV_BZ_GDT_GPA		0x0500ull
#define HV_BZ_PML4_GPA		0x9000ull	/* PDPT 0xa000, PDs 0xb000-0xefff */
#define HV_BZ_ZERO_PAGE_GPA	0x10000ull
#define HV_BZ_CMDLINE_GPA	0x20000ull
#define HV_MPTABLE_GPA		0xf0000ull
#define HV_LOW_RAM_END		0x9fc00ull
#define HV_HIGH_RAM_GPA		0x100000ull
#define HV_MMIO_HOLE_GPA	0xc0000000ull	/* PCI/APIC hole to 4 GiB */
#define HV_IOAPIC_GPA		0xfec00000ull
#define HV_LAPIC_GPA		0xfee00000ull

/* I/O ports. */
#define HV_PORT_UART		0x3f8
#define HV_PORT_POWEROFF	0xf4	/* any write: power off */
#define HV_PORT_I8042_CMD	0x64	/* 0xfe: reset */
#define HV_PORT_RESET_CF9	0xcf9	/* bit 2: reset */
#define HV_PORT_PCI_ADDR	0xcf8
#define HV_PORT_PCI_DATA	0xcfc
#define HV_PCI_IO_BASE		0xc000	/* I/O BARs assigned from here */
#define HV_PCI_MEM_BASE		0xe0000000ull	/* memory BARs from here */

#define HV_PCI_MAX_SLOTS	32
#define HV_PCI_IRQ_BASE		16	/* PCI INTx: IOAPIC pins 16.. */

struct hv_vm;

void hv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- mapped disks (disk_mapped.c) ----------------------------------------- */

struct hv_mapped_args {
	const char *desc;	/* the descriptor, or NULL (a raw file) */
	const char *data;	/* the data file */
	uint64_t base, size;	/* the extent in it (size 0 = the whole file) */
	bool readonly;
	bool cbt;		/* the descriptor names a tracking file: the
				 * blocks of a write are held by vmfsd
				 * (cbt_mark) before it is made */
	hv_disk_fence_fn fence;
	void *fence_arg;
};

/*
 * Open a data file on a vmfsd mount as a mapped disk (attached through the
 * host's vmfsd, I/O straight to the LUNs).  -ENOTSUP (err empty) when the
 * file is not on a vmfsd mount or cannot be mapped (a tiny file): the
 * caller opens it raw.
 */
int hv_disk_open_mapped(const struct hv_mapped_args *a, struct hv_disk **out,
			char *err, size_t errlen);

/* ---- port I/O dispatch ---------------------------------------------------- */

typedef void (*hv_pio_fn)(void *opaque, uint16_t port, uint8_t *data,
			  unsigned size, bool write);

/* ---- UART (8250/16550A, output only) -------------------------------------- */

struct hv_uart {
	pthread_mutex_t lock;
	struct hv_vm *vm;
	int fd;			/* console output */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	bool thri_pending;
	char buf[256];
	size_t len;
};

void hv_uart_init(struct hv_uart *u, struct hv_vm *vm, int fd);
void hv_uart_io(void *opaque, uint16_t port, uint8_t *data, unsigned size,
		bool write);
void hv_uart_flush(struct hv_uart *u);

/* ---- PCI ------------------------------------------------------------------ */

typedef void (*hv_mmio_fn)(void *opaque, uint64_t off, uint8_t *data,
			   unsigned size, bool write);

struct hv_pci_dev {
	uint8_t cfg[256];
	uint32_t bar_size;		/* BAR 0 (I/O) size, power of two */
	uint32_t mem_size;		/* BAR 4 (32-bit memory), 0 = none */
	unsigned slot, gsi;
	uint8_t cap_next;		/* where the next capability goes */
	hv_pio_fn bar_io;		/* offset-relative access to BAR 0 */
	hv_mmio_fn mem_io;		/* offset-relative access to BAR 4 */
	void *opaque;
	/* BAR `bar` (0 or 4) moved or its decoding toggled: the old and new
	 * base, 0 while not decoded.  Called with the PCI lock held. */
	void (*bar_moved)(void *opaque, int bar, uint64_t old_base,
			  uint64_t new_base);
};

struct hv_pci {
	pthread_mutex_t lock;
	uint32_t addr;			/* 0xcf8 latch */
	struct hv_pci_dev host;		/* slot 0: host bridge */
	struct hv_pci_dev *dev[HV_PCI_MAX_SLOTS];
};

void hv_pci_init(struct hv_pci *pci);
/* Add a device at the next free slot with BAR 0 of bar_size I/O ports. */
int hv_pci_add(struct hv_pci *pci, struct hv_pci_dev *d, uint16_t vendor,
	       uint16_t device, uint32_t class_rev, uint16_t subsys,
	       uint32_t bar_size);
/* Give the device a 32-bit memory BAR 4 of mem_size bytes (power of two,
 * at least 4 KiB), placed by the VMM in the PCI hole. */
void hv_pci_add_mem_bar(struct hv_pci_dev *d, uint32_t mem_size);
/* Append a capability (len bytes, the first two are filled in: ID is
 * cap[0], the next pointer is set here); returns its offset or -ENOSPC. */
int hv_pci_add_cap(struct hv_pci_dev *d, const uint8_t *cap, unsigned len);
void hv_pci_cfg_io(void *opaque, uint16_t port, uint8_t *data, unsigned size,
		   bool write);
/* Route a guest-physical access to a memory BAR; false when none decodes it. */
bool hv_pci_mmio(struct hv_pci *pci, uint64_t addr, uint8_t *data,
		 unsigned size, bool write);
uint64_t hv_pci_mem_base(const struct hv_pci_dev *d);
/* Route a port access to a device BAR; false when no BAR decodes it. */
bool hv_pci_bar_io(struct hv_pci *pci, uint16_t port, uint8_t *data,
		   unsigned size, bool write);
uint16_t hv_pci_bar_base(const struct hv_pci_dev *d);

/* ---- virtio-blk over legacy virtio-pci ------------------------------------ */

struct hv_vblk;
int hv_vblk_create(struct hv_vm *vm, struct hv_disk *disk, struct hv_vblk **out);
void hv_vblk_destroy(struct hv_vblk *b);

/* ---- the VM --------------------------------------------------------------- */

struct hv_vcpu {
	struct hv_vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	/* kvm_pvm: the breakpoint on the guest's #PF entry that completes
	 * SYSCALLs from ring 3 (vm.c); 0 until armed */
	uint64_t pf_entry;
	unsigned arm_tries;
};

struct hv_vm {
	int kvm_fd, vm_fd;
	size_t run_size;
	struct hv_gmem mem;
	uint8_t *ram;
	uint64_t ram_size, low_size;
	unsigned nvcpus;
	struct hv_vcpu vcpu[HV_MAX_VCPUS];
	bool have_irqfd, have_ioeventfd;
	bool sw_backend;	/* kvm_pvm: guest ring 0 is emulated */
	atomic_uint fixups[8];	/* instructions vmrun performed, by hv_insn_op */

	struct hv_uart uart;
	struct hv_pci pci;
	unsigned nvblk;
	struct hv_vblk *vblk[HV_MAX_DISKS];

	uint64_t entry;		/* first instruction */
	bool linux64;		/* bzImage: 64-bit entry, rsi = boot_params */
	uint64_t boot_arg;	/* rsi (bzImage) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_int exit_why;	/* 0 while running */
};

/* Stop the VM with a reason (first reason wins). */
void hv_vm_request_exit(struct hv_vm *vm, int why);
/* Raise (level) / lower a GSI of the in-kernel irqchip. */
int hv_vm_irq_line(struct hv_vm *vm, unsigned gsi, int level);

/*
 * boot.c: load vmx->kernel (PVH ELF or bzImage), the initrd and the boot
 * information into guest RAM and set vm->entry.  vmx->cmdline must not be
 * NULL.  Everything read from the image is bounds-checked.
 */
int hv_boot_load(struct hv_vm *vm, const struct hv_vmx *vmx, char *err,
		 size_t errlen);
/* The same from a kernel image in memory (tests and the fuzz target). */
int hv_boot_image(struct hv_vm *vm, const struct hv_vmx *vmx,
		  const uint8_t *k, size_t klen, char *err, size_t errlen);
int hv_boot_mptable(struct hv_vm *vm);

#endif /* HV_INT_H */
