#!/bin/bash
# Changed-block tracking of a running guest against ground truth, as a
# backup tool uses it: while the test guest fills a tracked disk (vmrun
# writes the LUN straight, holding its blocks through cbt_mark), take two
# checkpoints back to back, then copy the disk (O_DIRECT through FUSE),
# several times.  After the guest ended, every 64 KiB block in which the
# final disk differs from a copy must be reported by the query since the
# second checkpoint before that copy (the copy began after it: anything
# differing was written after it).  False positives are counted.  The
# disk is eager-zeroed, so writes into blocks already held go to the LUN
# without a call to vmfsd.  Blocks are released 0.3 to 0.6 s after their
# last write here (VMRUN_CBT_SCAN_MS; 3 to 6 s by default), so the guest
# writes into blocks released and held again.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }
truncate -s 1G "$T/lun0.img"
bin/mkfs.vmfs -L vms -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
mkdir "$T/a/vm" || fail "mkdir"
# big enough that the fill outlasts two rounds of checkpoints and a copy on
# a fast, idle machine (120 MiB once ended after one round)
MIB=320
bin/vmkfstools -c ${MIB}m -d eagerzeroedthick "$T/a/vm/vm.vmdk" || fail "-c"
cp bin/vmtest.elf "$T/a/vm/"
cat >"$T/a/vm/vm.vmx" <<VMX
displayName = "vm"
memSize = "64"
numvcpus = "1"
boot.kernel = "vmtest.elf"
boot.cmdline = "vmtest=fill vmtest.mib=$MIB"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "vm.vmdk"
VMX
D=$T/a/vm/vm.vmdk
bin/vmfs-cbt enable "$D" >/dev/null || fail "enable"
c0=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint"
VMRUN_CBT_SCAN_MS=300 timeout 300 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/fill.out" 2>&1 &
pv=$!
at_exit "kill_all $pv"
for i in $(seq 1 200); do grep -q "vmtest: started" "$T/fill.out" && break; sleep 0.05; done
k=0
while kill -0 $pv 2>/dev/null && [ $k -lt 6 ]; do
	bin/vmfs-cbt checkpoint "$D" >/dev/null || fail "checkpoint $k"
	id=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint $k'"
	dd if="$T/a/vm/vm-flat.vmdk" of="$T/copy$k" bs=1M iflag=direct status=none ||
		fail "copy $k"
	echo "$id" >"$T/id$k"
	k=$((k + 1))
	sleep 0.2
done
wait $pv || fail "vmrun: $(cat "$T/fill.out")"
grep -q "fill ok $MIB MiB" "$T/fill.out" || fail "fill: $(cat "$T/fill.out")"
[ $k -ge 2 ] || fail "the guest finished before two copies were taken ($k)"
for ((i = 0; i < k; i++)); do
	bin/vmfs-cbt query "$D" --since "$(cat "$T/id$i")" >"$T/q$i" || fail "query $i"
done
python3 - "$T" $k "$T/a/vm/vm-flat.vmdk" <<'PY' || fail "a change after a checkpoint is not reported"
import sys
t, k, final = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
B = 1 << 16
fp = tot = 0
for i in range(k):
    copy = open("%s/copy%d" % (t, i), "rb").read()
    rep = set()
    for l in open("%s/q%d" % (t, i)):
        o, n = map(int, l.split())
        rep.update(range(o // B, (o + n + B - 1) // B))
    diff = {b for b in range(len(final) // B) if final[b * B:(b + 1) * B] != copy[b * B:(b + 1) * B]}
    missed = diff - rep
    if missed:
        sys.exit("copy %d: blocks changed after its checkpoint not reported: %s" % (i, sorted(missed)[:10]))
    fp += len(rep - diff); tot += len(rep)
    print("copy %d: %d blocks changed after its checkpoint, %d reported" % (i, len(diff), len(rep)))
print("every change reported; false positives %d of %d reported blocks" % (fp, tot))
PY
grep -h "change tracking:\|fill ok" "$T/fill.out"
grep -q "change tracking: .* [1-9][0-9]* released before the end" "$T/fill.out" ||
	fail "no block was released while the guest wrote: $(grep "change tracking" "$T/fill.out")"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "ok"
