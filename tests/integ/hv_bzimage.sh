#!/bin/bash
# Linux boot protocol: a minimal bzImage (setup header + 64-bit code at
# startup_64, built here with as) is started in long mode with rsi =
# boot_params; it prints the command line from cmd_line_ptr and the number
# of e820 entries, then powers off.
set -u
. tests/lib/common.sh
[ -w /dev/kvm ] || { echo "skipped: no /dev/kvm"; exit 77; }
command -v as >/dev/null && command -v objcopy >/dev/null || { echo "skipped: no binutils"; exit 77; }

cat >"$T/k.S" <<'EOA'
	.code64
	.org 0x200			/* startup_64 */
	movl $0x3f8, %edx
	movl 0x228(%rsi), %ebx		/* boot_params.hdr.cmd_line_ptr */
1:	movb (%rbx), %al
	testb %al, %al
	jz 2f
	outb %al, %dx
	incq %rbx
	jmp 1b
2:	movb $' ', %al
	outb %al, %dx
	movb 0x1e8(%rsi), %al		/* e820_entries */
	addb $'0', %al
	outb %al, %dx
	movb $'\n', %al
	outb %al, %dx
	movl $0xf4, %edx
	outb %al, %dx
	hlt
EOA
as -o "$T/k.o" "$T/k.S" && objcopy -O binary -j .text "$T/k.o" "$T/k.bin" || fail "as"
python3 - "$T/k.bin" "$T/bzImage" <<'EOP' || fail "building the bzImage"
import struct, sys
pm = open(sys.argv[1], "rb").read()
setup = bytearray(2 * 512)            # boot sector + 1 setup sector
setup[0x1f1] = 1                      # setup_sects
setup[0x1fe:0x200] = b"\x55\xaa"
setup[0x201] = 0x6a                   # header ends at 0x26c
setup[0x202:0x206] = b"HdrS"
struct.pack_into("<H", setup, 0x206, 0x20f)        # protocol 2.15
setup[0x211] = 0x01                                 # LOADED_HIGH
struct.pack_into("<I", setup, 0x22c, 0x37ffffff)   # initrd_addr_max
struct.pack_into("<H", setup, 0x236, 0x1)          # XLF_KERNEL_64
struct.pack_into("<I", setup, 0x238, 255)          # cmdline_size
struct.pack_into("<I", setup, 0x260, 0x100000)     # init_size
open(sys.argv[2], "wb").write(bytes(setup) + pm)
EOP
cat >"$T/bz.vmx" <<EOV
memSize = "32"
boot.kernel = "bzImage"
boot.cmdline = "console=ttyS0 hello-from-bzimage"
EOV
out=$(timeout 60 bin/vmrun start "$T/bz.vmx" 2>&1) || fail "vmrun: $out"
echo "$out"
# 4 e820 entries below 4 GiB for 32 MiB
echo "$out" | grep -q "^console=ttyS0 hello-from-bzimage 4$" || fail "unexpected output"

# a header claiming no 64-bit entry is refused
python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[0x236] = 0
open(sys.argv[1], "wb").write(b)' "$T/bzImage"
out=$(bin/vmrun start "$T/bz.vmx" 2>&1) && fail "accepted a bzImage without XLF_KERNEL_64"
echo "$out" | grep -q "without a 64-bit entry" || fail "message: $out"
exit 0
