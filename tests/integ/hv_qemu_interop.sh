#!/bin/bash
# The same test guest on the same raw disk in both VMMs: what vmrun's guest
# wrote, QEMU's guest verifies, and the other way round (QEMU with KVM,
# virtio-blk-pci, booted through -kernel with qboot).  Skipped without QEMU.
set -u
. tests/lib/common.sh
[ -w /dev/kvm ] || { echo "skipped: no /dev/kvm"; exit 77; }
command -v qemu-system-x86_64 >/dev/null && [ -f /usr/share/qemu/qboot.rom ] ||
	{ echo "skipped: qemu-system-x86_64 with qboot not installed"; exit 77; }
k="$PWD/bin/vmtest.elf"

qemu() { # cmdline disk
	timeout 120 qemu-system-x86_64 -enable-kvm -M pc -m 64 -smp 1 \
		-bios /usr/share/qemu/qboot.rom -kernel "$k" -append "$1" \
		-display none -serial stdio -monitor none -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		-drive "file=$2,if=none,id=d0,format=raw,cache=none,aio=io_uring" \
		-device virtio-blk-pci,drive=d0 2>&1
}
vmrun() { # cmdline disk
	cat >"$T/v.vmx" <<EOV
memSize = "32"
boot.kernel = "$k"
boot.cmdline = "$1"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "$2"
EOV
	bin/vmrun start "$T/v.vmx" 2>&1
}

truncate -s 32M "$T/a.img" "$T/b.img"
out=$(vmrun "vmtest=fill vmtest.mib=8" "$T/a.img")
echo "$out" | grep -q "fill ok 8 MiB" || fail "vmrun fill: $out"
# QEMU exits 1 through isa-debug-exit after a clean power-off
out=$(qemu "vmtest=verify vmtest.mib=8" "$T/a.img")
echo "$out"
echo "$out" | grep -q "^vmtest: verify ok 8 MiB" || fail "QEMU verify of vmrun's disk: $out"

out=$(qemu "vmtest=fill vmtest.mib=8" "$T/b.img")
echo "$out" | grep -q "fill ok 8 MiB" || fail "QEMU fill: $out"
out=$(vmrun "vmtest=verify vmtest.mib=8" "$T/b.img")
echo "$out"
echo "$out" | grep -q "^vmtest: verify ok 8 MiB" || fail "vmrun verify of QEMU's disk: $out"
cmp "$T/a.img" "$T/b.img" || fail "the two disks differ"
# and through the virtio 1.x interface of QEMU's transitional device
out=$(qemu "vmtest=verify vmtest.mib=8 vmtest.modern=1" "$T/a.img")
echo "$out"
echo "$out" | grep -q "^vmtest: verify ok 8 MiB" || fail "QEMU modern verify: $out"
exit 0
