#!/bin/bash
# File system crash under a virtual disk's write pattern: a host writes a
# 64 MiB file whose first half is a hole (thin) and second half reserved
# "to be zeroed" (zeroedthick) - sequential 1 MiB runs, scattered 4 KiB
# writes, fsync now and then - and is SIGKILLed mid-stream.  First writes
# there take the write-behind paths of fs/file.c (allocation ahead of a
# sequential writer, "to be zeroed" flags cleared in memory and committed
# later).  Another host opens the file (recovering the dead one) and checks
# every sector: what the last fsync covered is there, later writes may or
# may not be, nothing older, no zeros where data was acknowledged, no
# foreign data.  Plain, and with the dead host's unflushed writes lost at
# the kill (volatile write cache); fsck.vmfs -n clean afterwards.
set -u
. tests/lib/common.sh
W="$B/tests/helpers/fs_worker"

crash_disk() { # label fault-options(or "") seed
	local label=$1 opts=$2 seed=$3 lun=$T/lun-$1.img prefix="" pid rc
	truncate -s 1G "$lun"
	bin/mkfs.vmfs -H 8 --hb-interval 250 --hb-timeout 2500 "$lun" >/dev/null ||
		fail "mkfs"
	[ -n "$opts" ] && prefix="fault:$opts:"
	"$W" disk "$prefix$lun" victim disk.img "$seed" >"$T/$label.log" 2>"$T/$label.err" &
	pid=$!
	for _ in $(seq 1 100); do grep -q READY "$T/$label.log" && break; sleep 0.1; done
	sleep "$(( (RANDOM % 3) + 2 )).$(( RANDOM % 10 ))"
	kill -0 $pid 2>/dev/null || fail "$label: worker died early: $(cat "$T/$label.err")"
	kill -KILL $pid
	wait $pid 2>/dev/null
	echo "$label: killed after $(grep -c '^DO W' "$T/$label.log") writes, $(grep -c '^OK SYNC' "$T/$label.log") fsyncs"
	"$W" diskverify "$lun" survivor disk.img "$T/$label.log" >"$T/$label.verify" 2>&1
	rc=$?
	cat "$T/$label.verify"
	[ $rc -eq 0 ] || fail "$label: verification failed (exit $rc)"
	grep -q "0 bad" "$T/$label.verify" || fail "$label: no verdict"
	bin/fsck.vmfs -n "$lun" >"$T/$label.fsck" 2>&1 ||
		fail "$label: fsck.vmfs -n afterwards: $(cat "$T/$label.fsck")"
	echo "$label: fsck.vmfs -n clean"
}

crash_disk plain "" 21
crash_disk wcache "wcache" 22
crash_disk plain2 "" 23
crash_disk wcache2 "wcache" 24
exit 0
