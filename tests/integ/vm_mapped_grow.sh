#!/bin/bash
# A mapped disk while its volume grows onto a new LUN (vmkfstools -Z):
# the guest fills more than the first LUN holds, vmfsd allocates on the
# new extent, vmrun opens that LUN when the map first names it, and the
# data reads back through the mount.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }
bin/vmkfstools 2>&1 | grep -q -- "-Z NEWDEVICE" || { echo "SKIP: no vmkfstools -Z"; exit 77; }
truncate -s 300M "$T/lun0.img"
truncate -s 512M "$T/lun1.img"
bin/mkfs.vmfs "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
bin/vmkfstools -c 600m -d thin "$T/a/t.vmdk" || fail "-c"
cp bin/vmtest.elf "$T/"
cat >"$T/a/vm.vmx" <<VMX
displayName = "grow"
memSize = "64"
boot.kernel = "$T/vmtest.elf"
boot.cmdline = "vmtest=fill vmtest.mib=400"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "t.vmdk"
VMX
bin/vmrun start "$T/a/vm.vmx" >"$T/vm.out" 2>&1 &
pv=$!
at_exit "kill -KILL $pv 2>/dev/null"
for i in $(seq 1 100); do grep -q "vmtest: started" "$T/vm.out" && break; sleep 0.1; done
bin/vmkfstools -Z "$T/lun1.img" "$T/lun0.img" >"$T/z.out" 2>&1 || fail "-Z: $(cat "$T/z.out")"
grep -q "fill ok" "$T/vm.out" && fail "the fill ended before the volume grew: test nothing"
wait $pv || fail "the VM: $(cat "$T/vm.out")"
grep -q "fill ok 400 MiB" "$T/vm.out" || fail "fill: $(cat "$T/vm.out")"
bin/vmkfstools -t0 "$T/a/t-flat.vmdk" >"$T/map"
grep -q "extent 1:" "$T/map" || fail "nothing on the new extent: $(cat "$T/map")"
python3 - "$T/a/t-flat.vmdk" <<'PY' || fail "read back through the mount"
import sys
with open(sys.argv[1], "rb") as f:
    for n in (0, 300000, 700000, 819199):
        f.seek(n * 512)
        want = ("vmtest sector %d\n" % n).encode()
        assert f.read(512) == want + b"." * (512 - len(want)), n
PY
echo "volume grown under a running VM: the fill went on onto extent 1 ($(grep -c "extent 1:" "$T/map") run there)"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" "$T/lun1.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
