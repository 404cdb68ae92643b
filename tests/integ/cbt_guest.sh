#!/bin/bash
# Changed-block tracking of a running guest: vmrun's writes go to the LUN
# straight (mapped disk) and are reported to vmfsd (cbt_mark) before they
# are made.  The test guest fills the first 8 MiB of a tracked thin disk:
# a query since the change ID from before covers exactly them (to the
# 64 KiB block, false positives counted); a guest that only reads changes
# nothing; after vmrun ended the tracking file is clean (a restart of
# vmfsd keeps the IDs).  While the VM runs, tracking cannot be turned on.
# A vmrun SIGKILLed mid-write: every sector it wrote is reported, and its
# session ends with its connection (another host can query).
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }
truncate -s 2G "$T/lun0.img"
bin/mkfs.vmfs -L vms -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
mkdir "$T/a/vm" || fail "mkdir"
bin/vmkfstools -c 64m -d thin "$T/a/vm/vm.vmdk" || fail "-c"
bin/vmkfstools -c 16m -d thin "$T/a/vm/other.vmdk" || fail "-c other"
cp bin/vmtest.elf "$T/a/vm/"
vmx() { # cmdline
	cat >"$T/a/vm/vm.vmx" <<-VMX
	displayName = "vm"
	memSize = "64"
	numvcpus = "1"
	boot.kernel = "vmtest.elf"
	boot.cmdline = "$1"
	scsi0:0.present = "TRUE"
	scsi0:0.fileName = "vm.vmdk"
	VMX
}
D=$T/a/vm/vm.vmdk
bin/vmfs-cbt enable "$D" >/dev/null || fail "enable"
id0=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint"
vmx "vmtest=fill vmtest.mib=8"
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/fill.out" 2>&1 || fail "fill: $(cat "$T/fill.out")"
grep -q "fill ok 8 MiB" "$T/fill.out" || fail "fill: $(cat "$T/fill.out")"
q=$(bin/vmfs-cbt query "$D" --since "$id0") || fail "query"
[ "$q" = "0 $((8 << 20))" ] || fail "the guest wrote [0, 8 MiB); tracking says: $q"
echo "guest filled [0, 8 MiB): tracking reports '$q' (no false positive)"
id1=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 2"
vmx "vmtest=verify vmtest.mib=8"
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/verify.out" 2>&1 || fail "verify: $(cat "$T/verify.out")"
grep -q "verify ok 8 MiB" "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"
[ -z "$(bin/vmfs-cbt query "$D" --since "$id1")" ] || fail "a reading guest changed blocks"
echo "a guest that only reads: nothing changed"

# while the VM runs tracking cannot change under it
vmx "vmtest=hold vmtest.secs=8"
sed -i 's/vm.vmdk/other.vmdk/' "$T/a/vm/vm.vmx"
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/hold.out" 2>&1 &
pa=$!
for i in $(seq 1 100); do grep -q "vmtest: started" "$T/hold.out" && break; sleep 0.1; done
grep -q "vmtest: started" "$T/hold.out" || fail "the VM did not start: $(cat "$T/hold.out")"
bin/vmfs-cbt enable "$T/a/vm/other.vmdk" 2>"$T/err" && fail "enabled under a running VM"
grep -q "attached to a running VM" "$T/err" || fail "enable message: $(cat "$T/err")"
wait $pa || fail "hold: $(cat "$T/hold.out")"
echo "enable under a running VM refused: $(cat "$T/err")"

vmfsd_stop A
vmfsd_start A "$T/a" "$T/lun0.img"
[ "$(bin/vmfs-cbt query "$D" --since "$id0")" = "0 $((8 << 20))" ] || fail "after a restart"
grep -q "reset" "$T/vmfsd-A.log" && fail "tracking reset after vmrun ended cleanly"

# vmrun SIGKILLed mid-write: its session ends with its connection; what it
# wrote is reported, and the other host can query (A let the file go)
vmfsd_start B "$T/b" "$T/lun0.img"
K=$T/a/vm/k.vmdk
bin/vmkfstools -c 512m -d thin "$K" || fail "-c k"
bin/vmfs-cbt enable "$K" >/dev/null || fail "enable k"
id2=$(bin/vmfs-cbt checkpoint "$K") || fail "checkpoint k"
vmx "vmtest=fill vmtest.mib=500"
sed -i 's/"vm.vmdk"/"k.vmdk"/' "$T/a/vm/vm.vmx"
bin/vmrun start "$T/a/vm/vm.vmx" >"$T/kill.out" 2>&1 &
pk=$!
at_exit "kill_all $pk"
for i in $(seq 1 200); do grep -q "vmtest: started" "$T/kill.out" && break; sleep 0.02; done
# kill it once it is writing, however slow the machine is: at least 8 MiB
# of the disk hold data (each block zeroed for it by a disk_alloc, which
# the guest's writes into earlier blocks, and their cbt_mark, came before)
data_mib() {
	bin/vmkfstools -t0 "$T/a/vm/k.vmdk" 2>/dev/null |
		awk '/VMFS -- extent/ { gsub(/[\[\]:]/, " "); n += $2 - $1 } END { print int(n / 1048576) }'
}
for i in $(seq 1 300); do
	[ "$(data_mib)" -ge 8 ] && break
	sleep 0.05
done
kill -KILL $pk
wait $pk 2>/dev/null
grep -q "fill ok" "$T/kill.out" && fail "the guest finished before it was killed"
for i in $(seq 1 50); do grep -q "writer went away" "$T/vmfsd-A.log" && break; sleep 0.1; done
grep -q "k.vmdk: its writer went away without closing" "$T/vmfsd-A.log" ||
	fail "session not ended: $(tail -5 "$T/vmfsd-A.log"; cat "$T/kill.out")"
bin/vmfs-cbt query "$T/b/vm/k.vmdk" --since "$id2" >"$T/qk" || fail "query on B after vmrun died"
python3 - "$T/b/vm/k-flat.vmdk" "$T/qk" <<'PY' || fail "a write of the killed guest is not reported"
import sys
ext = [tuple(map(int, l.split())) for l in open(sys.argv[2])]
n = 0
with open(sys.argv[1], "rb") as f:
    for c in range(500):
        b = f.read(1 << 20)
        for i in range(0, len(b), 512):
            if b[i:i + 14] == b"vmtest sector ":
                n += 1
                o = (c << 20) + i
                assert any(x <= o < x + l for x, l in ext), o
assert n > 0, "nothing written"
print("the killed guest had written %d sectors: all reported" % n)
PY
vmfsd_stop B
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "ok"
