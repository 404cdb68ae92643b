/*
 * test_hv_boot.c - the kernel loaders and boot structures on a VM that has
 * guest RAM but no KVM: a PVH ELF (segments, notes, start_info, memory
 * map), malformed ELF images, a bzImage (boot_params, page tables), and
 * the MP table's checksums and entries.
 */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "hypervisor/hv_int.h"

#define RAM (32ull << 20)

static struct hv_vm *fake_vm(unsigned ncpus)
{
	struct hv_vm *vm = calloc(1, sizeof(*vm));

	vm->ram = calloc(1, RAM);
	vm->ram_size = vm->low_size = RAM;
	vm->mem.nr = 1;
	vm->mem.r[0].size = RAM;
	vm->mem.r[0].hva = vm->ram;
	vm->nvcpus = ncpus;
	hv_pci_init(&vm->pci);
	return vm;
}

static void free_vm(struct hv_vm *vm)
{
	free(vm->ram);
	free(vm);
}

static struct hv_vmx vmx = { .kernel = "kernel", .cmdline = "vmtest=fill" };

/* An ELF64 with one PT_LOAD (16 bytes of code + 4080 of bss at paddr) and
 * a PT_NOTE holding the PVH entry. */
struct image {
	uint8_t b[4096];
	size_t len;
};

static void make_elf(struct image *im, uint64_t paddr, uint32_t entry)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)im->b;
	Elf64_Phdr *ph = (Elf64_Phdr *)(im->b + sizeof(*eh));
	uint8_t *note = im->b + 0x200, *code = im->b + 0x300;
	uint32_t n[3] = { 4, 4, 18 };

	memset(im, 0, sizeof(*im));
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_machine = EM_X86_64;
	eh->e_phoff = sizeof(*eh);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 2;
	ph[0].p_type = PT_LOAD;
	ph[0].p_offset = 0x300;
	ph[0].p_paddr = paddr;
	ph[0].p_filesz = 16;
	ph[0].p_memsz = 4096;
	ph[1].p_type = PT_NOTE;
	ph[1].p_offset = 0x200;
	ph[1].p_filesz = 20;
	memcpy(note, n, 12);
	memcpy(note + 12, "Xen", 4);
	memcpy(note + 16, &entry, 4);
	memset(code, 0x90, 16);
	im->len = 0x310;
}

static void test_pvh_elf(void **state)
{
	struct hv_vm *vm = fake_vm(1);
	struct image im;
	char err[256] = "";
	uint32_t magic, nent;
	uint64_t cmd;

	(void)state;
	make_elf(&im, 0x200000, 0x200004);
	memset(vm->ram + 0x200000 + 16, 0xee, 64);	/* bss must be zeroed */
	assert_int_equal(hv_boot_image(vm, &vmx, im.b, im.len, err, sizeof(err)), 0);
	assert_int_equal(vm->entry, 0x200004);
	assert_false(vm->linux64);
	assert_int_equal(vm->ram[0x200000], 0x90);
	assert_int_equal(vm->ram[0x200000 + 16], 0);
	memcpy(&magic, vm->ram + HV_START_INFO_GPA, 4);
	memcpy(&cmd, vm->ram + HV_START_INFO_GPA + 24, 8);
	memcpy(&nent, vm->ram + HV_START_INFO_GPA + 48, 4);
	assert_int_equal(magic, 0x336ec578);
	assert_string_equal((char *)vm->ram + cmd, "vmtest=fill");
	assert_int_equal(nent, 4);
	free_vm(vm);
}

static void expect_refused(struct image *im, const char *want)
{
	struct hv_vm *vm = fake_vm(1);
	char err[256] = "";
	int ret = hv_boot_image(vm, &vmx, im->b, im->len, err, sizeof(err));

	if (ret == 0 || !strstr(err, want)) {
		print_error("got %d \"%s\", want \"%s\"\n", ret, err, want);
		fail();
	}
	free_vm(vm);
}

static void test_bad_elf(void **state)
{
	struct image im;
	Elf64_Ehdr *eh = (Elf64_Ehdr *)im.b;
	Elf64_Phdr *ph = (Elf64_Phdr *)(im.b + sizeof(*eh));

	(void)state;
	make_elf(&im, 0x200000, 0x200000);
	im.b[0x200 + 8] = 17;			/* another note type */
	expect_refused(&im, "no PVH entry note");

	make_elf(&im, 0x200000, 0x200000);
	memcpy(im.b + 0x200 + 4, &(uint32_t){ 0xfffffff0 }, 4);  /* descsz */
	expect_refused(&im, "no PVH entry note");

	make_elf(&im, 0x200000, 0x200000);
	ph[0].p_offset = 0x1000;		/* past the end of the file */
	expect_refused(&im, "outside the file");

	make_elf(&im, 0x200000, 0x200000);
	ph[0].p_filesz = UINT64_MAX;		/* offset + size wraps */
	expect_refused(&im, "outside the file");

	make_elf(&im, 0x1000, 0x1000);		/* below 1 MiB */
	expect_refused(&im, "does not fit guest RAM");

	make_elf(&im, RAM - 16, RAM - 16);	/* bss runs past RAM */
	expect_refused(&im, "does not fit guest RAM");

	make_elf(&im, UINT64_MAX - 100, 0x200000);
	expect_refused(&im, "does not fit guest RAM");

	make_elf(&im, 0x200000, 0x200000);
	ph[0].p_memsz = 8;			/* filesz > memsz */
	expect_refused(&im, "does not fit guest RAM");

	make_elf(&im, 0x200000, 0x200000);
	eh->e_phnum = 0xffff;
	expect_refused(&im, "bad program headers");

	make_elf(&im, 0x200000, 0x200000);
	eh->e_machine = EM_386;
	expect_refused(&im, "neither a bzImage nor an x86-64 ELF");

	make_elf(&im, 0x200000, 0x200000);
	im.len = 10;
	expect_refused(&im, "neither a bzImage nor an x86-64 ELF");
}

static void make_bz(struct image *im)
{
	memset(im, 0, sizeof(*im));
	im->b[0x1f1] = 1;
	im->b[0x201] = 0x6a;
	memcpy(im->b + 0x202, "HdrS", 4);
	memcpy(im->b + 0x206, &(uint16_t){ 0x20f }, 2);
	im->b[0x211] = 1;
	memcpy(im->b + 0x22c, &(uint32_t){ 0x37ffffff }, 4);
	memcpy(im->b + 0x236, &(uint16_t){ 1 }, 2);
	memcpy(im->b + 0x238, &(uint32_t){ 255 }, 4);
	memcpy(im->b + 0x260, &(uint32_t){ 0x100000 }, 4);
	memset(im->b + 0x400, 0xcc, 0x400);
	im->len = 0x800;
}

static void test_bzimage(void **state)
{
	struct hv_vm *vm = fake_vm(1);
	char rd_path[] = "/tmp/test_hv_boot_rd.XXXXXX";
	struct hv_vmx vmx_rd = vmx;
	struct image im;
	int fd;
	char err[256] = "";
	uint32_t cmd;
	uint64_t pde;

	(void)state;
	make_bz(&im);
	assert_int_equal(hv_boot_image(vm, &vmx, im.b, im.len, err, sizeof(err)), 0);
	assert_true(vm->linux64);
	assert_int_equal(vm->entry, 0x100200);
	assert_int_equal(vm->boot_arg, HV_BZ_ZERO_PAGE_GPA);
	assert_int_equal(vm->ram[0x100000], 0xcc);
	assert_int_equal(vm->ram[HV_BZ_ZERO_PAGE_GPA + 0x210], 0xff);
	assert_int_equal(vm->ram[HV_BZ_ZERO_PAGE_GPA + 0x1e8], 4);
	memcpy(&cmd, vm->ram + HV_BZ_ZERO_PAGE_GPA + 0x228, 4);
	assert_string_equal((char *)vm->ram + cmd, "vmtest=fill");
	/* identity map: the PD entry for 2 MiB .. 4 MiB */
	memcpy(&pde, vm->ram + HV_BZ_PML4_GPA + 0x2000 + 8, 8);
	assert_int_equal(pde, (1ull << 21) | 0x83);
	free_vm(vm);

	/* relocatable with pref_address 16 MiB (a stock kernel): loaded
	 * there, the initrd above 16 MiB + init_size */
	vm = fake_vm(1);
	make_bz(&im);
	im.b[0x234] = 1;
	memcpy(im.b + 0x258, &(uint64_t){ 0x1000000 }, 8);
	memcpy(im.b + 0x260, &(uint32_t){ 0xe80000 }, 4);	/* 14.5 MiB */
	fd = mkstemp(rd_path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);	/* a 1 MiB initrd */
	close(fd);
	vmx_rd.initrd = rd_path;
	assert_int_equal(hv_boot_image(vm, &vmx_rd, im.b, im.len, err,
				       sizeof(err)), 0);
	assert_int_equal(vm->entry, 0x1000200);
	assert_int_equal(vm->ram[0x1000000], 0xcc);
	assert_int_equal(vm->ram[0x100000], 0);
	memcpy(&cmd, vm->ram + HV_BZ_ZERO_PAGE_GPA + 0x218, 4);	/* ramdisk */
	assert_true(cmd >= 0x1000000 + 0xe80000);
	free_vm(vm);
	/* 31 MiB of RAM cannot hold 16 MiB + 14.5 MiB + the initrd (at 1 MiB
	 * the kernel would move itself up over it) */
	vm = fake_vm(1);
	vm->low_size = vm->ram_size = vm->mem.r[0].size = 31ull << 20;
	assert_int_equal(hv_boot_image(vm, &vmx_rd, im.b, im.len, err,
				       sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "initrd too large"));
	free_vm(vm);
	unlink(rd_path);
	/* a pref_address beyond RAM: at 1 MiB, as before */
	vm = fake_vm(1);
	memcpy(im.b + 0x258, &(uint64_t){ 0x40000000 }, 8);
	assert_int_equal(hv_boot_image(vm, &vmx, im.b, im.len, err,
				       sizeof(err)), 0);
	assert_int_equal(vm->entry, 0x100200);
	free_vm(vm);

	make_bz(&im);
	memcpy(im.b + 0x236, &(uint16_t){ 0 }, 2);
	expect_refused(&im, "without a 64-bit entry");
	make_bz(&im);
	im.b[0x1f1] = 200;			/* setup larger than the file */
	expect_refused(&im, "truncated bzImage");
	make_bz(&im);
	memcpy(im.b + 0x260, &(uint32_t){ 0xf0000000 }, 4);
	expect_refused(&im, "raise memSize");
	make_bz(&im);
	memcpy(im.b + 0x238, &(uint32_t){ 4 }, 4);	/* cmdline_size */
	expect_refused(&im, "too long for this kernel");
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static void test_mptable(void **state)
{
	struct hv_vm *vm = fake_vm(3);
	struct hv_pci_dev dev = { 0 };
	const uint8_t *fp, *t;
	uint16_t len, count;
	uint32_t at;
	unsigned cpus = 0, pci_irqs = 0;

	(void)state;
	assert_int_equal(hv_pci_add(&vm->pci, &dev, 0x1af4, 0x1001, 0x01000000,
				    2, 0x40), 0);
	assert_int_equal(hv_boot_mptable(vm), 0);
	fp = vm->ram + HV_MPTABLE_GPA;
	assert_memory_equal(fp, "_MP_", 4);
	assert_int_equal(sum(fp, 16), 0);
	memcpy(&at, fp + 4, 4);
	t = vm->ram + at;
	assert_memory_equal(t, "PCMP", 4);
	memcpy(&len, t + 4, 2);
	memcpy(&count, t + 34, 2);
	assert_int_equal(sum(t, len), 0);
	for (const uint8_t *p = t + 44; p < t + len; p += p[0] ? 8 : 20) {
		cpus += p[0] == 0;
		if (p[0] == 3 && p[4] == 0) {	/* PCI bus interrupt */
			assert_int_equal(p[5], dev.slot << 2);
			assert_int_equal(p[7], dev.gsi);
			pci_irqs++;
		}
	}
	assert_int_equal(cpus, 3);
	assert_int_equal(pci_irqs, 1);
	/* 3 cpus, 2 buses, 1 IOAPIC, 16 ISA, 1 PCI, 2 local */
	assert_int_equal(count, 25);
	free_vm(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pvh_elf),
		cmocka_unit_test(test_bad_elf),
		cmocka_unit_test(test_bzimage),
		cmocka_unit_test(test_mptable),
	};

	return cmocka_run_group_tests_name("hv_boot", tests, NULL, NULL);
}
