#!/bin/bash
# The test guest fills the first MiBs of a sparse raw disk through virtio-blk;
# the host checks every byte; a second boot verifies them; a sector the host
# corrupts is found; a monolithicFlat .vmdk naming the same extent works; the
# console can go to serial0.fileName.
set -u
. tests/lib/common.sh
[ -w /dev/kvm ] || { echo "skipped: no /dev/kvm"; exit 77; }
[ -x bin/vmrun ] && [ -f bin/vmtest.elf ] || fail "bin/vmrun or bin/vmtest.elf not built"

mkdir -p "$T/vm"
truncate -s 64M "$T/vm/disk.img"
cp bin/vmtest.elf "$T/vm/"
vmx() { # name cmdline [disk]
	cat >"$T/vm/$1.vmx" <<EOV
displayName = "$1"
memSize = "32"
numvcpus = "1"
boot.kernel = "vmtest.elf"
boot.cmdline = "$2"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "${3:-disk.img}"
EOV
}

vmx fill "vmtest=fill vmtest.mib=8"
out=$(bin/vmrun start "$T/vm/fill.vmx" 2>&1) || fail "vmrun fill: $out"
echo "$out"
echo "$out" | grep -q "^vmtest: fill ok 8 MiB" || fail "no fill ok"

# every sector of the 8 MiB holds its text; the next one was never written
python3 - "$T/vm/disk.img" <<'EOP' || fail "host check of the filled disk"
import sys
with open(sys.argv[1], "rb") as f:
    data = f.read(8 * 2**20 + 512)
for n in range(8 * 2048):
    t = b"vmtest sector %d\n" % n
    want = t + b"." * (512 - len(t))
    if data[n * 512:(n + 1) * 512] != want:
        sys.exit("sector %d differs" % n)
if data[8 * 2**20:] != b"\0" * 512:
    sys.exit("wrote past the range")
print("host: 16384 sectors ok")
EOP
alloc=$(du -k "$T/vm/disk.img" | cut -f1)
[ "$alloc" -ge 8192 ] && [ "$alloc" -lt 16384 ] || fail "sparse disk holds $alloc KiB"

vmx verify "vmtest=verify vmtest.mib=8"
out=$(bin/vmrun start "$T/vm/verify.vmx" 2>&1) || fail "vmrun verify: $out"
echo "$out" | grep -q "^vmtest: verify ok 8 MiB" || fail "verify: $out"

# the same with completions signalled by interrupts (irqfd -> IOAPIC pin
# from the MP table -> LAPIC) instead of polling
vmx verify-irq "vmtest=verify vmtest.mib=8 vmtest.irq=1"
out=$(bin/vmrun start "$T/vm/verify-irq.vmx" 2>&1) || fail "vmrun verify irq: $out"
echo "$out" | grep -q "^vmtest: verify ok 8 MiB" || fail "verify irq: $out"
n=$(echo "$out" | sed -n 's/^vmtest: irqs=//p')
[ "${n:-0}" -ge 64 ] || fail "only ${n:-no} interrupts for 64 requests: $out"

# the same device through its virtio 1.x interface (capabilities, memory
# BAR, MMIO notify), polled and with interrupts
vmx verify-modern "vmtest=verify vmtest.mib=8 vmtest.modern=1"
out=$(bin/vmrun start "$T/vm/verify-modern.vmx" 2>&1) || fail "vmrun verify modern: $out"
echo "$out" | grep -q "^vmtest: verify ok 8 MiB" || fail "verify modern: $out"
vmx verify-modern-irq "vmtest=verify vmtest.mib=8 vmtest.modern=1 vmtest.irq=1"
out=$(bin/vmrun start "$T/vm/verify-modern-irq.vmx" 2>&1) || fail "vmrun verify modern irq: $out"
echo "$out" | grep -q "^vmtest: verify ok 8 MiB" || fail "verify modern irq: $out"
n=$(echo "$out" | sed -n 's/^vmtest: irqs=//p')
[ "${n:-0}" -ge 64 ] || fail "modern: only ${n:-no} interrupts for 64 requests: $out"

# a sector changed behind the guest's back is reported
printf 'X' | dd of="$T/vm/disk.img" bs=1 seek=$((1000 * 512 + 100)) conv=notrunc 2>/dev/null
out=$(bin/vmrun start "$T/vm/verify.vmx" 2>&1)
echo "$out" | grep -q "^vmtest: verify bad sector 1000$" || fail "corruption not found: $out"
printf '.' | dd of="$T/vm/disk.img" bs=1 seek=$((1000 * 512 + 100)) conv=notrunc 2>/dev/null

# VMware monolithicFlat descriptor naming the same extent
cat >"$T/vm/disk.vmdk" <<EOD
# Disk DescriptorFile
version=1
CID=fffffffe
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 131072 FLAT "disk.img" 0

ddb.adapterType = "lsilogic"
EOD
vmx vmdk "vmtest=verify vmtest.mib=8" disk.vmdk
echo 'serial0.fileName = "console.log"' >>"$T/vm/vmdk.vmx"
out=$(bin/vmrun start "$T/vm/vmdk.vmx" 2>&1) || fail "vmrun vmdk: $out"
grep -q "^vmtest: verify ok 8 MiB" "$T/vm/console.log" || fail "vmdk/serial file: $(cat "$T/vm/console.log")"
echo "$out" | grep -q "verify ok" && fail "console went to stdout despite serial0.fileName"

# a descriptor as ESX and vmkfstools write it (one VMFS extent)
sed 's/^RW 131072 FLAT "disk.img" 0$/RW 131072 VMFS "disk.img"/; s/monolithicFlat/vmfs/' \
	"$T/vm/disk.vmdk" >"$T/vm/esx.vmdk"
vmx esx "vmtest=verify vmtest.mib=8" esx.vmdk
out=$(bin/vmrun start "$T/vm/esx.vmx" 2>&1) || fail "vmrun esx vmdk: $out"
echo "$out" | grep -q "^vmtest: verify ok 8 MiB" || fail "VMFS extent: $out"

# a FLAT extent 1 MiB into its file: the guest's sector 0 is there
truncate -s 8M "$T/vm/off.img"
printf '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 8192 FLAT "off.img" 2048\n' >"$T/vm/off.vmdk"
vmx off "vmtest=fill vmtest.mib=4" off.vmdk
out=$(bin/vmrun start "$T/vm/off.vmx" 2>&1) || fail "vmrun offset extent: $out"
echo "$out" | grep -q "^vmtest: fill ok 4 MiB" || fail "offset extent: $out"
[ "$(dd if="$T/vm/off.img" bs=512 skip=2048 count=1 2>/dev/null | head -n 1)" = "vmtest sector 0" ] ||
	fail "sector 0 not at the extent's offset"
[ "$(dd if="$T/vm/off.img" bs=1M count=1 2>/dev/null | tr -d '\0' | wc -c)" -eq 0 ] ||
	fail "wrote before the extent"
# the guest cannot go past the extent (4 MiB in a file of 8)
vmx off5 "vmtest=verify vmtest.mib=5" off.vmdk
out=$(bin/vmrun start "$T/vm/off5.vmx" 2>&1)
echo "$out" | grep -q "vmtest.mib is 0 or larger than the disk" || fail "extent size: $out"

# a read-only extent: reads work, writes fail in the guest
sed 's/^RW /RDONLY /' "$T/vm/off.vmdk" >"$T/vm/ro.vmdk"
vmx ro "vmtest=verify vmtest.mib=4" ro.vmdk
out=$(bin/vmrun start "$T/vm/ro.vmx" 2>&1) || fail "vmrun ro: $out"
echo "$out" | grep -q "^vmtest: verify ok 4 MiB" || fail "ro verify: $out"
vmx ro-fill "vmtest=fill vmtest.mib=4" ro.vmdk
out=$(bin/vmrun start "$T/vm/ro-fill.vmx" 2>&1)
echo "$out" | grep -q "^vmtest: FAIL request status 1 sector 0$" || fail "write to RDONLY: $out"

# what the raw backend cannot be: a delta disk
sed 's/^parentCID=ffffffff$/parentCID=12345678/' "$T/vm/off.vmdk" >"$T/vm/delta.vmdk"
vmx delta "vmtest=verify vmtest.mib=4" delta.vmdk
out=$(bin/vmrun start "$T/vm/delta.vmx" 2>&1) && fail "delta disk accepted"
echo "$out" | grep -q "delta disk (snapshot): not supported yet" || fail "delta: $out"

# two disks: the second one (scsi0:2, virtio-blk device 1) is filled through
# its modern interface, the first is left alone
truncate -s 32M "$T/vm/disk2.img"
sum0=$(md5sum <"$T/vm/disk.img")
vmx two "vmtest=fill vmtest.mib=4 vmtest.disk=1 vmtest.modern=1"
printf 'scsi0:2.present = "TRUE"\nscsi0:2.fileName = "disk2.img"\n' >>"$T/vm/two.vmx"
out=$(bin/vmrun start "$T/vm/two.vmx" 2>&1) || fail "vmrun two disks: $out"
echo "$out" | grep -q "^vmtest: fill ok 4 MiB" || fail "two disks: $out"
[ "$(md5sum <"$T/vm/disk.img")" = "$sum0" ] || fail "disk 0 changed"
[ "$(dd if="$T/vm/disk2.img" bs=512 skip=8191 count=1 2>/dev/null | head -n 1)" = "vmtest sector 8191" ] ||
	fail "disk 1 not filled"
exit 0
