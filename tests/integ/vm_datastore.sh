#!/bin/bash
# A VM on the datastore: vmrun boots the test guest from a thin disk on a
# vmfsd mount; the disk grew by about what the guest wrote, and the host
# reads the guest's sectors through the other host's mount.  While the VM
# runs on host A (vmtest=hold), starting it on host B fails with a clear
# error naming A (vmrun holds the VMX open: its on-disk lock is the VM's);
# after it ended, B starts it.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }
truncate -s 2G "$T/lun0.img"
bin/mkfs.vmfs -L vms -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
vmfsd_start B "$T/b" "$T/lun0.img"
mkdir "$T/a/vm" || fail "mkdir"
bin/vmkfstools -c 256m -d thin "$T/a/vm/vm.vmdk" || fail "-c"
cp bin/vmtest.elf "$T/a/vm/"
vmx() { # cmdline
	cat >"$T/a/vm/vm.vmx" <<-VMX
	displayName = "vm"
	memSize = "64"
	numvcpus = "2"
	boot.kernel = "vmtest.elf"
	boot.cmdline = "$1"
	scsi0:0.present = "TRUE"
	scsi0:0.fileName = "vm.vmdk"
	VMX
}
vmx "vmtest=fill vmtest.mib=32"
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/fill.out" 2>&1 || fail "fill: $(cat "$T/fill.out")"
grep -q "fill ok 32 MiB" "$T/fill.out" || fail "fill: $(cat "$T/fill.out")"
k=$(du -k "$T/b/vm/vm-flat.vmdk" | cut -f1)
[ "$k" -ge 32768 ] && [ "$k" -le 36864 ] || fail "the thin disk grew by $k KiB for 32 MiB"
python3 - "$T/b/vm/vm-flat.vmdk" <<'PY' || fail "sectors read on host B"
import sys
with open(sys.argv[1], "rb") as f:
    for n in (0, 1, 4097, 65535):
        f.seek(n * 512)
        s = f.read(512)
        want = ("vmtest sector %d\n" % n).encode()
        assert s == want + b"." * (512 - len(want)), (n, s[:40])
PY
echo "guest filled 32 MiB of its thin disk ($k KiB allocated); host B reads its sectors"

vmx "vmtest=hold vmtest.secs=10"
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/hold.out" 2>&1 &
pa=$!
for i in $(seq 1 100); do grep -q "vmtest: started" "$T/hold.out" && break; sleep 0.1; done
grep -q "vmtest: started" "$T/hold.out" || fail "the VM on A did not start: $(cat "$T/hold.out")"
# (an open waits up to 3 s for another host's hold before it gives up)
timeout 60 bin/vmrun start "$T/b/vm/vm.vmx" >"$T/b.out" 2>&1 && fail "started on B while it runs on A"
kill -0 $pa 2>/dev/null || fail "A's VM ended before B's attempt was judged"
grep -q "VM .*vm.vmx is in use by host 'A'" "$T/b.out" || fail "B's error: $(cat "$T/b.out")"
grep -q "locked by A" "$T/vmfsd-B.log" || fail "holder not named in B's log"
echo "B refused while A runs it: $(head -n 1 "$T/b.out")"
wait $pa || fail "the VM on A: $(cat "$T/hold.out")"
vmx "vmtest=verify vmtest.mib=32"
timeout 120 bin/vmrun start "$T/b/vm/vm.vmx" >"$T/verify.out" 2>&1 || fail "verify on B: $(cat "$T/verify.out")"
grep -q "verify ok 32 MiB" "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
echo "after A's VM ended, B started it and verified the disk"
vmfsd_stop A
vmfsd_stop B
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
