/*
 * boot.c - loading the guest: an ELF kernel with a PVH entry note
 * (XEN_ELFNOTE_PHYS32_ENTRY), the optional initrd as PVH module 0, the PVH
 * start_info with the command line and an e820-style memory map; or a Linux
 * bzImage through the 64-bit boot protocol; and an Intel MP table
 * (processors, the IOAPIC, ISA and PCI interrupt routing).
 *
 * Everything read from the kernel file is bounds-checked: segment offsets
 * against the file, load addresses against guest RAM, notes against the
 * note segment.
 */
#include <errno.h>
#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hypervisor/hv_int.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PVH_MAGIC		0x336ec578u
#define E820_RAM		1
#define E820_RESERVED		2
#define MAX_KERNEL		(512u << 20)

struct pvh_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
_Static_assert(sizeof(struct pvh_start_info) == 56, "PVH start_info");

struct pvh_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

struct pvh_module {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

static int read_file(const char *path, uint8_t **buf, size_t *len,
		     size_t max, char *err, size_t errlen)
{
	struct stat st;
	size_t off = 0;
	int fd, ret = 0;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max ||
	    st.st_size == 0) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file of 1 byte to %zu MiB",
			 path, max >> 20);
		goto out;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len);
	if (!*buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (off < *len) {
		ssize_t n = pread(fd, *buf + off, *len - off, (off_t)off);

		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "%s: read failed", path);
			free(*buf);
			*buf = NULL;
			goto out;
		}
		off += (size_t)n;
	}
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Find the PVH entry in a note segment; 0 when absent. */
static uint64_t pvh_note(const uint8_t *p, uint64_t len)
{
	uint64_t off = 0;

	while (len - off >= 12) {
		uint32_t namesz, descsz, type;
		uint64_t name, desc, next;

		memcpy(&namesz, p + off, 4);
		memcpy(&descsz, p + off + 4, 4);
		memcpy(&type, p + off + 8, 4);
		name = off + 12;
		desc = name + (((uint64_t)namesz + 3) & ~3ull);
		next = desc + (((uint64_t)descsz + 3) & ~3ull);
		if (desc > len || next > len || desc + descsz > len)
			return 0;
		if (namesz == 4 && !memcmp(p + name, "Xen", 4) &&
		    type == XEN_ELFNOTE_PHYS32_ENTRY &&
		    (descsz == 4 || descsz == 8)) {
			uint64_t e = 0;

			memcpy(&e, p + desc, descsz);
			return descsz == 4 ? (uint32_t)e : e;
		}
		off = next;
	}
	return 0;
}

static int load_elf(struct hv_vm *vm, const char *path, const uint8_t *f,
		    size_t len, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
	uint64_t entry = 0;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64) {
		snprintf(err, errlen, "%s: neither a bzImage nor an x86-64 "
			 "ELF image", path);
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > len ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff) {
		snprintf(err, errlen, "%s: bad program headers", path);
		return -ENOEXEC;
	}
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		memcpy(&ph, f + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE)
			continue;
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset) {
			snprintf(err, errlen, "%s: segment %u outside the file",
				 path, i);
			return -ENOEXEC;
		}
		if (ph.p_type == PT_NOTE) {
			if (!entry)
				entry = pvh_note(f + ph.p_offset, ph.p_filesz);
			continue;
		}
		dst = hv_gmem_ptr(&vm->mem, ph.p_paddr, ph.p_memsz);
		if (ph.p_filesz > ph.p_memsz || !dst ||
		    ph.p_paddr < HV_HIGH_RAM_GPA) {
			snprintf(err, errlen, "%s: segment %u (0x%llx, %llu "
				 "bytes) does not fit guest RAM above 1 MiB",
				 path, i, (unsigned long long)ph.p_paddr,
				 (unsigned long long)ph.p_memsz);
			return -ENOEXEC;
		}
		memcpy(dst, f + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}
	if (!entry || entry >= (1ull << 32)) {
		snprintf(err, errlen, "%s: no PVH entry note "
			 "(XEN_ELFNOTE_PHYS32_ENTRY)", path);
		return -ENOEXEC;
	}
	vm->entry = entry;
	return 0;
}

/* The guest's memory map (e820 types); returns the number of entries. */
static unsigned memmap(const struct hv_vm *vm, struct pvh_memmap_entry *mm)
{
	unsigned n = 0;

	mm[n++] = (struct pvh_memmap_entry){ 0, HV_LOW_RAM_END, E820_RAM, 0 };
	mm[n++] = (struct pvh_memmap_entry){ HV_LOW_RAM_END,
		0xa0000 - HV_LOW_RAM_END, E820_RESERVED, 0 };
	mm[n++] = (struct pvh_memmap_entry){ HV_MPTABLE_GPA,
		HV_HIGH_RAM_GPA - HV_MPTABLE_GPA, E820_RESERVED, 0 };
	mm[n++] = (struct pvh_memmap_entry){ HV_HIGH_RAM_GPA,
		vm->low_size - HV_HIGH_RAM_GPA, E820_RAM, 0 };
	if (vm->ram_size > vm->low_size)
		mm[n++] = (struct pvh_memmap_entry){ 1ull << 32,
			vm->ram_size - vm->low_size, E820_RAM, 0 };
	return n;
}

/* Copy the initrd below `limit`, page aligned, above the kernel's area. */
static int place_initrd(struct hv_vm *vm, const struct hv_vmx *vmx,
			uint64_t limit, uint64_t floor, uint64_t *at,
			uint64_t *size, char *err, size_t errlen)
{
	uint8_t *rd = NULL, *dst;
	size_t rdlen = 0;
	int ret;

	*at = *size = 0;
	if (!vmx->initrd)
		return 0;
	ret = read_file(vmx->initrd, &rd, &rdlen, vm->low_size / 2, err, errlen);
	if (ret)
		return ret;
	if (limit > vm->low_size)
		limit = vm->low_size;
	*at = limit > rdlen ? (limit - rdlen) & ~0xfffull : 0;
	dst = hv_gmem_ptr(&vm->mem, *at, rdlen);
	if (*at < floor || !dst) {
		snprintf(err, errlen, "%s: initrd too large for memSize",
			 vmx->initrd);
		free(rd);
		return -E2BIG;
	}
	memcpy(dst, rd, rdlen);
	*size = rdlen;
	free(rd);
	return 0;
}

static int boot_pvh(struct hv_vm *vm, const struct hv_vmx *vmx,
		    const uint8_t *k, size_t klen, char *err, size_t errlen)
{
	struct pvh_start_info si = { .magic = PVH_MAGIC, .version = 1 };
	struct pvh_memmap_entry mm[6];
	struct pvh_module mod = { 0 };
	size_t clen = strlen(vmx->cmdline);
	unsigned n;
	int ret;

	ret = load_elf(vm, vmx->kernel, k, klen, err, errlen);
	if (ret)
		return ret;
	if (clen >= HV_MAX_CMDLINE) {
		snprintf(err, errlen, "boot.cmdline longer than %d bytes",
			 HV_MAX_CMDLINE - 1);
		return -E2BIG;
	}
	memcpy(hv_gmem_ptr(&vm->mem, HV_CMDLINE_GPA, clen + 1), vmx->cmdline,
	       clen + 1);
	si.cmdline_paddr = HV_CMDLINE_GPA;
	/* the kernel is at 1 MiB or above: keep 16 MiB free for it */
	ret = place_initrd(vm, vmx, vm->low_size, 16 * HV_HIGH_RAM_GPA,
			   &mod.paddr, &mod.size, err, errlen);
	if (ret)
		return ret;
	if (mod.size) {
		memcpy(hv_gmem_ptr(&vm->mem, HV_START_INFO_GPA + 0x800,
				   sizeof(mod)), &mod, sizeof(mod));
		si.nr_modules = 1;
		si.modlist_paddr = HV_START_INFO_GPA + 0x800;
	}
	n = memmap(vm, mm);
	si.memmap_paddr = HV_START_INFO_GPA + sizeof(si);
	si.memmap_entries = n;
	memcpy(hv_gmem_ptr(&vm->mem, HV_START_INFO_GPA, sizeof(si)), &si,
	       sizeof(si));
	memcpy(hv_gmem_ptr(&vm->mem, si.memmap_paddr, n * sizeof(mm[0])), mm,
	       n * sizeof(mm[0]));
	return 0;
}

/*
 * Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry:
 * the protected-mode kernel at its pref_address when it is relocatable
 * (as GRUB does; a stock kernel decompresses in place there, and would
 * move itself up to LOAD_PHYSICAL_ADDR from anywhere lower, over what
 * follows a kernel loaded at 1 MiB), else at 1 MiB; boot_params ("zero
 * page") with the setup header copied from the image, e820 table, command
 * line and initrd (above load address + init_size), and long mode on an
 * identity map of 4 GiB built here.
 */
#define BZ_SETUP_SECTS	0x1f1
#define BZ_HDR_MAGIC	0x202
#define BZ_VERSION	0x206
#define BZ_LOADER_TYPE	0x210
#define BZ_LOADFLAGS	0x211
#define BZ_RAMDISK	0x218
#define BZ_RAMDISK_SIZE	0x21c
#define BZ_HEAP_END	0x224
#define BZ_CMDLINE_PTR	0x228
#define BZ_INITRD_MAX	0x22c
#define BZ_CMDLINE_SIZE	0x238
#define BZ_XLOADFLAGS	0x236
#define BZ_RELOCATABLE	0x234
#define BZ_PREF_ADDRESS	0x258
#define BZ_INIT_SIZE	0x260
#define BZ_E820_COUNT	0x1e8
#define BZ_E820_TABLE	0x2d0
#define BZ_LOAD_ADDR	0x100000ull

static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t le16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static int boot_bzimage(struct hv_vm *vm, const struct hv_vmx *vmx,
			const uint8_t *k, size_t klen, char *err, size_t errlen)
{
	struct pvh_memmap_entry mm[6];
	uint64_t pm_off, pm_len, init_size, rd_at, rd_size, load = BZ_LOAD_ADDR;
	uint64_t gdt[4] = { 0, 0, 0x00af9a000000ffffull, 0x00cf92000000ffffull };
	size_t clen = strlen(vmx->cmdline), hdr_end;
	unsigned setup_sects = k[BZ_SETUP_SECTS] ? k[BZ_SETUP_SECTS] : 4, n;
	uint8_t *zp, *dst;
	uint64_t *pt;
	int ret;

	if (le16(k + BZ_VERSION) < 0x20c || !(le16(k + BZ_XLOADFLAGS) & 1) ||
	    !(k[BZ_LOADFLAGS] & 1)) {
		snprintf(err, errlen, "%s: bzImage without a 64-bit entry "
			 "(boot protocol 2.12+, XLF_KERNEL_64)", vmx->kernel);
		return -ENOEXEC;
	}
	pm_off = (uint64_t)(setup_sects + 1) * 512;
	hdr_end = 0x202 + k[0x201];
	if (pm_off >= klen || hdr_end > 0x300) {
		snprintf(err, errlen, "%s: truncated bzImage", vmx->kernel);
		return -ENOEXEC;
	}
	pm_len = klen - pm_off;
	init_size = le32(k + BZ_INIT_SIZE);
	if (init_size < pm_len)
		init_size = pm_len;
	if (k[BZ_RELOCATABLE]) {
		uint64_t pref;

		memcpy(&pref, k + BZ_PREF_ADDRESS, 8);
		if (pref > BZ_LOAD_ADDR && !(pref & 0xfff) &&
		    hv_gmem_ptr(&vm->mem, pref, init_size))
			load = pref;
	}
	dst = hv_gmem_ptr(&vm->mem, load, init_size);
	if (!dst) {
		snprintf(err, errlen, "%s: needs %llu MiB above 1 MiB; raise "
			 "memSize", vmx->kernel,
			 (unsigned long long)(init_size >> 20) + 1);
		return -E2BIG;
	}
	memcpy(dst, k + pm_off, pm_len);

	zp = hv_gmem_ptr(&vm->mem, HV_BZ_ZERO_PAGE_GPA, 4096);
	memset(zp, 0, 4096);
	memcpy(zp + BZ_SETUP_SECTS, k + BZ_SETUP_SECTS, hdr_end - BZ_SETUP_SECTS);
	zp[BZ_LOADER_TYPE] = 0xff;
	zp[BZ_LOADFLAGS] |= 0x80;			/* CAN_USE_HEAP */
	memcpy(zp + BZ_HEAP_END, &(uint16_t){ 0xfe00 }, 2);
	if (clen >= HV_MAX_CMDLINE ||
	    (le32(k + BZ_CMDLINE_SIZE) && clen > le32(k + BZ_CMDLINE_SIZE))) {
		snprintf(err, errlen, "boot.cmdline too long for this kernel");
		return -E2BIG;
	}
	memcpy(hv_gmem_ptr(&vm->mem, HV_BZ_CMDLINE_GPA, clen + 1), vmx->cmdline,
	       clen + 1);
	memcpy(zp + BZ_CMDLINE_PTR, &(uint32_t){ (uint32_t)HV_BZ_CMDLINE_GPA }, 4);

	ret = place_initrd(vm, vmx, (uint64_t)le32(k + BZ_INITRD_MAX) + 1,
			   load + init_size, &rd_at, &rd_size, err, errlen);
	if (ret)
		return ret;
	memcpy(zp + BZ_RAMDISK, &(uint32_t){ (uint32_t)rd_at }, 4);
	memcpy(zp + BZ_RAMDISK_SIZE, &(uint32_t){ (uint32_t)rd_size }, 4);

	n = memmap(vm, mm);
	zp[BZ_E820_COUNT] = (uint8_t)n;
	for (unsigned i = 0; i < n; i++) {	/* packed: 8 + 8 + 4 bytes */
		memcpy(zp + BZ_E820_TABLE + 20 * i, &mm[i].addr, 8);
		memcpy(zp + BZ_E820_TABLE + 20 * i + 8, &mm[i].size, 8);
		memcpy(zp + BZ_E820_TABLE + 20 * i + 16, &mm[i].type, 4);
	}

	memcpy(hv_gmem_ptr(&vm->mem, HV_BZ_GDT_GPA, sizeof(gdt)), gdt,
	       sizeof(gdt));
	pt = hv_gmem_ptr(&vm->mem, HV_BZ_PML4_GPA, 6 * 4096);
	memset(pt, 0, 6 * 4096);
	pt[0] = (HV_BZ_PML4_GPA + 0x1000) | 3;		/* PML4[0] -> PDPT */
	for (unsigned i = 0; i < 4; i++)		/* PDPT -> 4 PDs */
		pt[512 + i] = (HV_BZ_PML4_GPA + 0x2000 + 0x1000 * i) | 3;
	for (uint64_t i = 0; i < 2048; i++)		/* 2 MiB pages */
		pt[1024 + i] = i << 21 | 0x83;
	vm->entry = load + 0x200;			/* startup_64 */
	vm->linux64 = true;
	vm->boot_arg = HV_BZ_ZERO_PAGE_GPA;
	return 0;
}

int hv_boot_load(struct hv_vm *vm, const struct hv_vmx *vmx, char *err,
		 size_t errlen)
{
	uint8_t *k = NULL;
	size_t klen = 0;
	int ret;

	if (vm->low_size < 2 * HV_HIGH_RAM_GPA) {
		snprintf(err, errlen, "memSize too small to boot");
		return -EINVAL;
	}
	ret = read_file(vmx->kernel, &k, &klen, MAX_KERNEL, err, errlen);
	if (ret)
		return ret;
	ret = hv_boot_image(vm, vmx, k, klen, err, errlen);
	free(k);
	return ret;
}

int hv_boot_image(struct hv_vm *vm, const struct hv_vmx *vmx,
		  const uint8_t *k, size_t klen, char *err, size_t errlen)
{
	if (vm->low_size < 2 * HV_HIGH_RAM_GPA) {
		snprintf(err, errlen, "memSize too small to boot");
		return -EINVAL;
	}
	if (klen > 0x300 && !memcmp(k + BZ_HDR_MAGIC, "HdrS", 4))
		return boot_bzimage(vm, vmx, k, klen, err, errlen);
	return boot_pvh(vm, vmx, k, klen, err, errlen);
}

/* ---- MP table (Intel MultiProcessor Specification 1.4) -------------------- */

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return (uint8_t)-s;
}

int hv_boot_mptable(struct hv_vm *vm)
{
	uint8_t *base = hv_gmem_ptr(&vm->mem, HV_MPTABLE_GPA, 0x1000);
	uint8_t *t, *p;
	uint16_t count = 0, len;
	uint32_t u32;
	unsigned ioapic_id = vm->nvcpus;

	if (!base)
		return -ENOMEM;
	memset(base, 0, 0x1000);
	/* floating pointer structure at the start, table right after */
	t = base + 16;
	p = t + 44;
	for (unsigned i = 0; i < vm->nvcpus; i++, count++) {
		p[0] = 0;			/* processor */
		p[1] = (uint8_t)i;		/* local APIC id */
		p[2] = 0x14;			/* local APIC version */
		p[3] = 1 | (i == 0 ? 2 : 0);	/* enabled, BSP */
		u32 = 0x600;
		memcpy(p + 4, &u32, 4);		/* family 6 */
		u32 = 0x201;
		memcpy(p + 8, &u32, 4);		/* FPU, APIC */
		p += 20;
	}
	p[0] = 1; p[1] = 0; memcpy(p + 2, "PCI   ", 6); p += 8; count++;
	p[0] = 1; p[1] = 1; memcpy(p + 2, "ISA   ", 6); p += 8; count++;
	p[0] = 2;				/* IOAPIC */
	p[1] = (uint8_t)ioapic_id;
	p[2] = 0x11;
	p[3] = 1;
	u32 = (uint32_t)HV_IOAPIC_GPA;
	memcpy(p + 4, &u32, 4);
	p += 8;
	count++;
	/* ISA IRQs 0-15 -> IOAPIC pins 0-15 (KVM's default GSI routing);
	 * edge, active high, as ISA conforms */
	for (unsigned irq = 0; irq < 16; irq++, count++) {
		p[0] = 3; p[1] = 0; p[2] = 0; p[3] = 0;
		p[4] = 1;			/* ISA bus */
		p[5] = (uint8_t)irq;
		p[6] = (uint8_t)ioapic_id;
		p[7] = (uint8_t)irq;
		p += 8;
	}
	/* PCI INTA# of every device -> its GSI, level, active high (the
	 * irqfd asserts the line while the device's ISR is set) */
	for (unsigned s = 1; s < HV_PCI_MAX_SLOTS; s++) {
		struct hv_pci_dev *d = vm->pci.dev[s];

		if (!d)
			continue;
		p[0] = 3; p[1] = 0;
		p[2] = 0x0d; p[3] = 0;		/* level, active high */
		p[4] = 0;			/* PCI bus */
		p[5] = (uint8_t)(s << 2);	/* device, INTA# */
		p[6] = (uint8_t)ioapic_id;
		p[7] = (uint8_t)d->gsi;
		p += 8;
		count++;
	}
	/* local interrupts: ExtINT on LINT0, NMI on LINT1, every APIC */
	for (unsigned l = 0; l < 2; l++, count++) {
		p[0] = 4; p[1] = l ? 1 : 3; p[2] = 0; p[3] = 0;
		p[4] = 1; p[5] = 0; p[6] = 0xff; p[7] = (uint8_t)l;
		p += 8;
	}
	len = (uint16_t)(p - t);
	memcpy(t, "PCMP", 4);
	memcpy(t + 4, &len, 2);
	t[6] = 4;
	memcpy(t + 8, "VMFSHV  ", 8);
	memcpy(t + 16, "VMRUN       ", 12);
	memcpy(t + 34, &count, 2);
	u32 = (uint32_t)HV_LAPIC_GPA;
	memcpy(t + 36, &u32, 4);
	t[7] = checksum(t, len);

	memcpy(base, "_MP_", 4);
	u32 = (uint32_t)(HV_MPTABLE_GPA + 16);
	memcpy(base + 4, &u32, 4);
	base[8] = 1;
	base[9] = 4;
	base[10] = checksum(base, 16);
	return 0;
}
