/*
 * fuzz_hv_boot - libFuzzer target: kernel images (PVH ELF and bzImage) as
 * loaded into guest RAM by hv_boot_image.  The image is the input; guest
 * RAM is 40 MiB with nothing around it, so ASan catches a write outside it.
 * The first input byte picks the memory size and whether an initrd is
 * named (a missing one must fail cleanly).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hypervisor/hv_int.h"

#define RAM (40ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	static struct hv_vm vm;
	struct hv_vmx vmx = { .kernel = "fuzz", .cmdline = "console=ttyS0" };
	char err[256];

	if (!ram) {
		ram = malloc(RAM);
		if (!ram)
			abort();
	}
	if (size < 1)
		return 0;
	memset(&vm, 0, sizeof(vm));
	vm.ram = ram;
	vm.ram_size = vm.low_size = data[0] & 1 ? RAM : RAM / 2;
	vm.mem.nr = 1;
	vm.mem.r[0].size = vm.ram_size;
	vm.mem.r[0].hva = ram;
	vm.nvcpus = 1;
	if (data[0] & 2)
		vmx.initrd = "/nonexistent/vmfs-fuzz-initrd";
	hv_boot_image(&vm, &vmx, data + 1, size - 1, err, sizeof(err));
	return 0;
}
