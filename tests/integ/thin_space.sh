#!/bin/bash
# Space on a thin-provisioned datastore: provisioned space above capacity
# (overcommit) is allowed and reported by vmkfstools -P; vmfsd logs the
# 75% warning and 85% alert as usage crosses them and when it falls back;
# a thin disk's write that cannot be allocated fails with ENOSPC and
# nothing written before is lost or damaged; fsck is clean.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun0.img"
bin/mkfs.vmfs -L small -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
VMFSD_ALARM_SECS=1 vmfsd_start A "$T/a" "$T/lun0.img"
mkdir "$T/a/vm" || fail "mkdir"
bin/vmkfstools -c 3g -d thin "$T/a/vm/big.vmdk" || fail "thin 3 GiB on a 1 GiB volume"
bin/vmkfstools -P -h "$T/a" >"$T/p.out" || fail "-P"
grep -q "thin overcommit" "$T/p.out" || fail "-P: $(cat "$T/p.out")"
grep "provisioned" "$T/p.out"
cap=$(python3 -c "import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_blocks * s.f_frsize >> 20)" "$T/a")
echo "capacity $cap MiB"
wait_log() { # pattern
	for i in $(seq 1 50); do grep -q "$1" "$T/vmfsd-A.log" && return 0; sleep 0.1; done
	fail "no '$1' in the log: $(tail -n 5 "$T/vmfsd-A.log")"
}
# fill to 78%: warning
n=$((cap * 78 / 100))
head -c "${n}M" /dev/urandom >"$T/data"
dd if="$T/data" of="$T/a/vm/big-flat.vmdk" bs=1M conv=notrunc,fsync status=none || fail "writing ${n} MiB"
wait_log "space warning"
bin/vmkfstools -P "$T/a" | grep -q "space alarm: warning" || fail "-P does not show the warning"
# to 88%: alert
m=$((cap * 88 / 100 - n))
head -c "${m}M" /dev/urandom >"$T/data2"
dd if="$T/data2" of="$T/a/vm/big-flat.vmdk" bs=1M seek="$n" conv=notrunc,fsync status=none || fail "writing more"
wait_log "space alert"
grep "vmfsd: space" "$T/vmfsd-A.log"
# past the end of the free space: ENOSPC, and what was written stays
dd if=/dev/urandom of="$T/a/vm/big-flat.vmdk" bs=1M seek=$((n + m)) count=$((cap)) \
	conv=notrunc,fsync status=none 2>"$T/dd.err" && fail "wrote past a full volume"
grep -q "No space left" "$T/dd.err" || fail "not ENOSPC: $(cat "$T/dd.err")"
cmp -n "$((n << 20))" "$T/data" "$T/a/vm/big-flat.vmdk" || fail "data before ENOSPC damaged"
cmp -n "$((m << 20))" "$T/data2" "$T/a/vm/big-flat.vmdk" --ignore-initial="0:$((n << 20))" ||
	fail "later data damaged"
echo "ENOSPC on the thin disk; every byte written before intact"
bin/vmkfstools -U "$T/a/vm/big.vmdk" || fail "-U"
wait_log "space back to normal"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "fsck -n clean"
