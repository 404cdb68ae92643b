#!/bin/bash
# Mapped disks when something dies under a running VM:
#  - vmrun SIGKILLed in the middle of a write stream: the lock is
#    released, what the guest had flushed is intact;
#  - vmfsd stopped (SIGSTOP): vmrun's lease on it runs out, the disk's
#    I/O stops before another host could break the locks;
#  - vmfsd SIGKILLed: the VM stops with a clear error at once; host B
#    recovers A and runs the VM.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
. tests/lib/vm.sh
vm_two_hosts
mkdir "$T/a/vm" "$T/b/vm2" || fail "mkdir"
bin/vmkfstools -c 64m -d zeroedthick "$T/a/vm/z.vmdk" || fail "-c zeroedthick"
bin/vmkfstools -c 256m -d thin "$T/a/vm/t.vmdk" || fail "-c thin"
cp bin/vmtest.elf "$T/"
vmx "$T/a/vm/vm.vmx" "vmtest=fill vmtest.mib=32" t.vmdk
timeout 120 bin/vmrun start "$T/a/vm/vm.vmx" >"$T/fill.out" 2>&1 || fail "fill: $(cat "$T/fill.out")"
grep -q "fill ok 32 MiB" "$T/fill.out" || fail "fill: $(cat "$T/fill.out")"

# 4. vmrun killed in the middle of a write stream over the flushed data
vmx "$T/a/vm/vm.vmx" "vmtest=fill vmtest.mib=200" t.vmdk
bin/vmrun start "$T/a/vm/vm.vmx" >"$T/kill.out" 2>&1 &
pa=$!
at_exit "kill -KILL $pa 2>/dev/null"
started "$T/kill.out"
for i in $(seq 1 100); do [ "$(kib "$T/a/vm/t-flat.vmdk")" -gt 65536 ] && break; sleep 0.05; done
kill -KILL $pa
wait $pa 2>/dev/null
grep -q "fill ok" "$T/kill.out" && fail "the fill ended before the kill"
vmx "$T/b/vm2/vm2.vmx" "vmtest=verify vmtest.mib=32" "$T/b/vm/t.vmdk"
timeout 60 bin/vmrun start "$T/b/vm2/vm2.vmx" >"$T/b4.out" 2>&1 ||
	fail "B after a kill mid-write: $(cat "$T/b4.out")"
grep -q "verify ok 32 MiB" "$T/b4.out" || fail "B verify: $(cat "$T/b4.out")"
echo "vmrun killed mid-write ($(kib "$T/b/vm/t-flat.vmdk") KiB allocated): flushed 32 MiB intact on B"

# 4b. vmfsd stopped (SIGSTOP: alive, silent, its heartbeat frozen): vmrun's
#     lease on it runs out well before other hosts could call A dead
vmx "$T/a/vm/vm.vmx" "vmtest=io vmtest.secs=60" z.vmdk
bin/vmrun start "$T/a/vm/vm.vmx" >"$T/stop.out" 2>&1 &
pa=$!
at_exit "kill -KILL $pa 2>/dev/null"
started "$T/stop.out"
sleep 1
kill -STOP "${VMFSD_PID[A]}"
at_exit "kill -CONT ${VMFSD_PID[A]} 2>/dev/null"
t0=$(now_ns)
# (vmrun's last close of the VMX, a file on the stopped daemon's mount,
# waits for it: the disk's I/O stops at once, the process ends after)
for i in $(seq 1 100); do
	grep -q "stopped answering" "$T/stop.out" && break
	sleep 0.1
done
ms=$((($(now_ns) - t0) / 1000000))
kill -CONT "${VMFSD_PID[A]}"
wait $pa
rc=$?
[ $rc -ne 0 ] || fail "vmrun exited 0 with its vmfsd stopped: $(cat "$T/stop.out")"
grep -q "stopped answering" "$T/stop.out" ||
	fail "no clear error: $(cat "$T/stop.out")"
# lease 3 s (fence 4 s - interval 1 s); B would call A dead after 6 s
[ $ms -lt 4500 ] || fail "the VM's disk went on $ms ms after its vmfsd stopped"
echo "vmfsd on A stopped: the disk stopped after $ms ms (lease 3 s, A dead for B after 6 s)"

# 5. vmfsd killed under a running VM doing I/O (disk 0 scratch, disk 1 the
#    filled one): the VM stops with the reason; B recovers A, runs it
vmx "$T/a/vm/vm.vmx" "vmtest=io vmtest.secs=60" z.vmdk t.vmdk
bin/vmrun start "$T/a/vm/vm.vmx" >"$T/io.out" 2>&1 &
pa=$!
at_exit "kill -KILL $pa 2>/dev/null"
started "$T/io.out"
sleep 1
vmfsd_kill A
t0=$(now_ns)
wait $pa
rc=$?
ms=$((($(now_ns) - t0) / 1000000))
[ $rc -ne 0 ] || fail "vmrun exited 0 after its vmfsd died: $(cat "$T/io.out")"
[ $ms -lt 5000 ] || fail "the VM ran $ms ms after its vmfsd died"
grep -q "vmfsd on this host closed the disk's connection" "$T/io.out" ||
	fail "no clear error: $(cat "$T/io.out")"
vmx "$T/b/vm2/vm5.vmx" "vmtest=verify vmtest.mib=32 vmtest.disk=1" \
	"$T/b/vm/z.vmdk" "$T/b/vm/t.vmdk"
ok=
for i in $(seq 1 12); do
	if timeout 60 bin/vmrun start "$T/b/vm2/vm5.vmx" >"$T/b5.out" 2>&1; then
		ok=1
		break
	fi
	grep -q "in use by" "$T/b5.out" || fail "B after A died: $(cat "$T/b5.out")"
	sleep 1
done
[ -n "$ok" ] || fail "B never took over A's VM: $(cat "$T/b5.out")"
grep -q "verify ok 32 MiB" "$T/b5.out" || fail "B verify: $(cat "$T/b5.out")"
echo "vmfsd on A killed: VM stopped after $ms ms ($(grep -o "disk .*: vmfsd[^;]*" "$T/io.out" | head -n 1)); B recovered and verified"
vmfsd_stop B
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"

