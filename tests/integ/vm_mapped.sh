#!/bin/bash
# Mapped disks: a VM's disk on the datastore does its I/O on the LUN, not
# through FUSE.  vmrun attaches each disk through the host's vmfsd (which
# holds its lock and allocates) and maps guest offsets to LUN blocks.
#  - a thin disk filled by the guest: FUSE carried (almost) none of it,
#    the disk grew by what was written, host B reads the sectors;
#  - ctkEnabled in the VMX turns change tracking on; writes reported;
#  - a zeroedthick disk over blocks that held another file's data: a
#    partial-block write leaves zeros around it;
#  - while attached: -X, truncate and writes or punches through a FUSE
#    handle opened before the attach refused, the disk from
#    another VM on host B refused naming A; vmrun SIGKILLed: B at once;
#  - requests split where the LUN breaks (64 KiB blocks, fragmented).
# Crashes under a running VM: vm_mapped_crash.sh.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
. tests/lib/vm.sh
vm_two_hosts
# another file's data where the disks will be: freed blocks are reused
mkdir "$T/a/vm" "$T/b/vm2" || fail "mkdir"
python3 -c "import sys; sys.stdout.buffer.write(b'\xaa' * (96 << 20))" >"$T/a/vm/junk" ||
	fail "junk"
rm "$T/a/vm/junk"
bin/vmkfstools -c 64m -d zeroedthick "$T/a/vm/z.vmdk" || fail "-c zeroedthick"
bin/vmkfstools -c 256m -d thin "$T/a/vm/t.vmdk" || fail "-c thin"
cp bin/vmtest.elf "$T/"
# 1. a thin disk filled through the mapped path
w0=$(fuse_written A)
vmx "$T/a/vm/vm.vmx" "vmtest=fill vmtest.mib=32" t.vmdk
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/fill.out" 2>&1 || fail "fill: $(cat "$T/fill.out")"
grep -q "fill ok 32 MiB" "$T/fill.out" || fail "fill: $(cat "$T/fill.out")"
w1=$(fuse_written A)
[ $((w1 - w0)) -lt $((1 << 20)) ] ||
	fail "$((w1 - w0)) bytes went through FUSE for a 32 MiB fill"
grep -q "allocation calls to vmfsd" "$T/fill.out" || fail "not mapped: $(cat "$T/fill.out")"
k=$(kib "$T/b/vm/t-flat.vmdk")
# (a sequential stream has the block after it allocated ahead)
[ "$k" -ge 32768 ] && [ "$k" -le 36864 ] || fail "the thin disk grew by $k KiB for 32 MiB (4 MiB blocks)"
python3 - "$T/b/vm/t-flat.vmdk" <<'PY' || fail "sectors read on host B"
import sys
with open(sys.argv[1], "rb") as f:
    for n in (0, 1, 8191, 8192, 65535):
        f.seek(n * 512)
        s = f.read(512)
        want = ("vmtest sector %d\n" % n).encode()
        assert s == want + b"." * (512 - len(want)), (n, s[:40])
PY
echo "thin: 32 MiB filled, $((w1 - w0)) bytes through FUSE, $k KiB allocated, B reads it"

# the VMX's ctkEnabled turns tracking on (cbt_enable) before the disk is
# attached; the mapped disk then reports its writes (cbt_mark)
CTK=1 vmx "$T/a/vm/vm.vmx" "vmtest=fill vmtest.mib=8" t.vmdk
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/ctk.out" 2>&1 || fail "ctk fill: $(cat "$T/ctk.out")"
grep -q "change tracking turned on" "$T/ctk.out" || fail "ctk: $(cat "$T/ctk.out")"
grep -q '^changeTrackPath="t-ctk.vmdk"' "$T/a/vm/t.vmdk" || fail "no tracking file named"
id=$(bin/vmfs-cbt checkpoint "$T/a/vm/t.vmdk") || fail "checkpoint"
CTK=1 vmx "$T/a/vm/vm.vmx" "vmtest=fill vmtest.mib=1" t.vmdk
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/ctk2.out" 2>&1 || fail "ctk fill 2: $(cat "$T/ctk2.out")"
grep -q "change tracking turned on" "$T/ctk2.out" && fail "turned on twice"
q=$(bin/vmfs-cbt query "$T/a/vm/t.vmdk" --since "$id") || fail "query"
[ "$q" = "0 $((1 << 20))" ] || fail "the guest wrote [0, 1 MiB); tracking says: $q"
echo "ctkEnabled: tracking turned on at start; the next run's writes reported ($q)"

# 2. zeroedthick: 1 MiB of a 4 MiB block written, the rest reads zeros
bin/vmkfstools -t0 "$T/a/vm/z-flat.vmdk" | grep -q TBZ || fail "z is not TBZ"
vmx "$T/a/vm/vm.vmx" "vmtest=fill vmtest.mib=1" z.vmdk
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/z.out" 2>&1 || fail "z fill: $(cat "$T/z.out")"
python3 - "$T/b/vm/z-flat.vmdk" <<'PY' || fail "zeroedthick read on B"
import sys
with open(sys.argv[1], "rb") as f:
    d = f.read()
assert len(d) == 64 << 20, len(d)
for n in (0, 2047):
    want = ("vmtest sector %d\n" % n).encode()
    assert d[n * 512:n * 512 + len(want)] == want, n
rest = d[1 << 20:]
assert rest.count(0) == len(rest), "non-zero bytes after the guest's MiB"
PY
bin/vmkfstools -t0 "$T/b/vm/z-flat.vmdk" >"$T/z.map"
grep -q "^\[ *0: *4194304\] --> \[VMFS" "$T/z.map" || fail "first block not data: $(cat "$T/z.map")"
grep -q TBZ "$T/z.map" || fail "the rest not TBZ: $(cat "$T/z.map")"
echo "zeroedthick: 1 MiB written, the other 63 MiB (3 MiB of them in the same block) read zeros on B"
# the guest reads zeros too: 1-4 MiB zeroed by vmfsd in the first block,
# 4-16 MiB to-be-zeroed blocks, which are never read from the LUN: stale
# bytes are put there first (what a freed block of another file holds)
off=$(sed -n 's/^\[ *4194304: *[0-9]*\] --> \[TBZ *-- extent 0: \([0-9]*\) .*/\1/p' "$T/z.map")
[ -n "$off" ] || fail "no TBZ run at 4 MiB: $(cat "$T/z.map")"
python3 -c "import sys; sys.stdout.buffer.write(b'\xaa' * (12 << 20))" |
	dd of="$T/lun0.img" bs=1M seek="$off" oflag=seek_bytes conv=notrunc status=none ||
	fail "stale bytes"
vmx "$T/a/vm/vm.vmx" "vmtest=zeros vmtest.from=1 vmtest.mib=15" z.vmdk
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/zeros.out" 2>&1 || fail "zeros: $(cat "$T/zeros.out")"
grep -q "zeros ok 15 MiB from 1 MiB" "$T/zeros.out" || fail "zeros: $(cat "$T/zeros.out")"
echo "the guest reads zeros from 1 to 16 MiB (12 MiB of them TBZ over 0xaa on the LUN)"


# 3. while attached: map changes refused on A, the disk refused on B
vmx "$T/a/vm/vm.vmx" "vmtest=hold vmtest.secs=60" t.vmdk
# a FUSE handle opened for writing before the attach: its writes and
# punches must be refused too (a punch would free blocks vmrun writes)
exec 7<>"$T/a/vm/t-flat.vmdk"
bin/vmrun start "$T/a/vm/vm.vmx" >"$T/hold.out" 2>&1 &
pa=$!
at_exit "kill -KILL $pa 2>/dev/null"
started "$T/hold.out"
python3 - <<'PY' || { exec 7>&-; fail "the handle opened before the attach"; }
import ctypes, errno, os
try:
    os.pwrite(7, b"x" * 4096, 0)
    raise SystemExit("a write through it went through")
except OSError as e:
    assert e.errno == errno.EBUSY, e
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
# FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
if libc.fallocate(7, 3, 0, 4 << 20) == 0:
    raise SystemExit("a punch through it went through")
assert ctypes.get_errno() == errno.EBUSY, os.strerror(ctypes.get_errno())
PY
exec 7>&-
bin/vmkfstools -X 512m "$T/a/vm/t.vmdk" >"$T/x.out" 2>&1 && fail "-X on an attached disk"
grep -q "attached to a VM running on this host" "$T/x.out" || fail "-X: $(cat "$T/x.out")"
truncate -s 1m "$T/a/vm/t-flat.vmdk" 2>"$T/tr.out" && fail "truncate of an attached disk"
grep -q "busy" "$T/tr.out" || fail "truncate: $(cat "$T/tr.out")"
vmx "$T/b/vm2/vm2.vmx" "vmtest=verify vmtest.mib=32" "$T/b/vm/t.vmdk"
timeout 60 bin/vmrun start "$T/b/vm2/vm2.vmx" >"$T/b2.out" 2>&1 && fail "the disk started on B"
grep -q "disk .*t-flat.vmdk is in use by host 'A'" "$T/b2.out" || fail "B: $(cat "$T/b2.out")"
echo "attached: -X, truncate refused on A; on B: $(grep -o "disk .*'A'" "$T/b2.out")"
kill -KILL $pa
wait $pa 2>/dev/null
timeout 60 bin/vmrun start "$T/b/vm2/vm2.vmx" >"$T/b3.out" 2>&1 ||
	fail "B after A's vmrun was killed: $(cat "$T/b3.out")"
grep -q "verify ok 32 MiB" "$T/b3.out" || fail "B verify: $(cat "$T/b3.out")"
echo "vmrun on A killed: B attached the disk at once and verified it"

# 4. vmfsd stopped under a running VM: it waits for vmrun to stop the
#    disk's I/O and let it go before the file (and its lock) is closed
vmx "$T/a/vm/vm.vmx" "vmtest=hold vmtest.secs=60" t.vmdk
bin/vmrun start "$T/a/vm/vm.vmx" >"$T/stop.out" 2>&1 &
pa=$!
started "$T/stop.out"
vmfsd_stop A
wait $pa && fail "vmrun went on after its vmfsd stopped: $(cat "$T/stop.out")"
grep -q "waiting for 1 running VM disk to stop" "$T/vmfsd-A.log" ||
	fail "vmfsd A did not wait for the VM: $(cat "$T/vmfsd-A.log")"
grep -q "did not let its disk go" "$T/vmfsd-A.log" &&
	fail "vmrun kept the disk past its lease: $(cat "$T/stop.out")"
grep -q "closed the disk's connection" "$T/stop.out" ||
	fail "vmrun: $(cat "$T/stop.out")"
echo "vmfsd stopped under a running VM: vmrun fenced the disk and let it go first"

vmfsd_stop B

# 6. requests split where the LUN breaks: 64 KiB blocks, free space in
#    runs of 3 blocks, so the guest's 128 KiB requests straddle runs that
#    are not contiguous on the LUN
truncate -s 256M "$T/lun1.img"
bin/mkfs.vmfs -b 64k "$T/lun1.img" >/dev/null || fail "mkfs 64k"
vmfsd_start C "$T/c" "$T/lun1.img"
for i in $(seq 1 40); do head -c 196608 /dev/urandom >"$T/c/g$i"; done
for i in $(seq 1 2 40); do rm "$T/c/g$i"; done
bin/vmkfstools -c 4m -d thin "$T/c/t.vmdk" || fail "-c on C"
vmx "$T/c/vm.vmx" "vmtest=fill vmtest.mib=4" t.vmdk
timeout 120 bin/vmrun start "$T/c/vm.vmx" >"$T/split.out" 2>&1 || fail "split fill: $(cat "$T/split.out")"
grep -q "fill ok 4 MiB" "$T/split.out" || fail "split fill: $(cat "$T/split.out")"
n=$(bin/vmkfstools -t0 "$T/c/t-flat.vmdk" | grep -c "VMFS -- extent")
[ "$n" -gt 8 ] || fail "the disk is in $n runs: nothing was split"
python3 - "$T/c/t-flat.vmdk" <<'PY' || fail "the split writes read back through FUSE"
import sys
d = open(sys.argv[1], "rb").read()
for n in range(8192):
    want = ("vmtest sector %d\n" % n).encode()
    assert d[n * 512:n * 512 + 512] == want + b"." * (512 - len(want)), n
PY
vmx "$T/c/vm.vmx" "vmtest=verify vmtest.mib=4" t.vmdk
timeout 120 bin/vmrun start "$T/c/vm.vmx" >"$T/split2.out" 2>&1 || fail "split verify: $(cat "$T/split2.out")"
grep -q "verify ok 4 MiB" "$T/split2.out" || fail "split verify: $(cat "$T/split2.out")"
echo "64 KiB blocks in $n runs on the LUN: 128 KiB requests split, written and read back right"
vmfsd_stop C
