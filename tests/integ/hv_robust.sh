#!/bin/bash
# The executor under failure and control: a disk write that fails reaches
# the guest as a virtio IOERR status (the VMM logs it and keeps running);
# vmtest=hold holds for the time asked; SIGTERM stops a running VM promptly
# with a non-zero status.
set -u
. tests/lib/common.sh
[ -w /dev/kvm ] || { echo "skipped: no /dev/kvm"; exit 77; }
k="$PWD/bin/vmtest.elf"
truncate -s 16M "$T/d.img"

# a write failing with EIO at sector 2048 (the chunk 2048..2303 of the fill)
cat >"$T/fail.vmx" <<EOV
memSize = "16"
boot.kernel = "$k"
boot.cmdline = "vmtest=fill vmtest.mib=4"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "fault:write,fail,err=EIO,off=1048576,len=512:$T/d.img"
EOV
out=$(timeout 60 bin/vmrun start "$T/fail.vmx" 2>&1) || fail "vmrun: $out"
echo "$out"
echo "$out" | grep -q "^vmtest: FAIL request status 1 sector 2048$" || fail "guest did not see IOERR"
echo "$out" | grep -q "virtio-blk .*write at 1048576: Input/output error" || fail "VMM did not log the error"
echo "$out" | grep -q "fill ok" && fail "fill passed over a failed write"

# hold: at least the time asked, and not much more
cat >"$T/hold.vmx" <<EOV
memSize = "16"
boot.kernel = "$k"
boot.cmdline = "vmtest=hold vmtest.secs=2"
EOV
t0=$(now_ns)
out=$(timeout 60 bin/vmrun start "$T/hold.vmx" 2>&1) || fail "hold: $out"
ms=$(( ($(now_ns) - t0) / 1000000 ))
echo "hold 2 s took $ms ms"
echo "$out" | grep -q "^vmtest: hold done$" || fail "hold: $out"
[ "$ms" -ge 2000 ] && [ "$ms" -lt 15000 ] || fail "hold 2 s took $ms ms"

# SIGTERM while the guest holds for a minute
sed -i 's/secs=2/secs=60/' "$T/hold.vmx"
bin/vmrun start "$T/hold.vmx" >"$T/sig.out" 2>&1 &
pid=$!
at_exit "kill_all $pid"
for _ in $(seq 100); do
	grep -q "holding 60 s" "$T/sig.out" && break
	sleep 0.1
done
grep -q "holding 60 s" "$T/sig.out" || fail "guest did not start: $(cat "$T/sig.out")"
t0=$(now_ns)
kill -TERM $pid
wait $pid
rc=$?
ms=$(( ($(now_ns) - t0) / 1000000 ))
cat "$T/sig.out"
[ $rc -eq 1 ] || fail "exit status $rc after SIGTERM"
[ "$ms" -lt 5000 ] || fail "took $ms ms to stop"
grep -q "vmrun: .*: stopped" "$T/sig.out" || fail "no stop message"
exit 0
