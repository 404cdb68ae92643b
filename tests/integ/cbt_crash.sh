#!/bin/bash
# Changed-block tracking: complete or reset.  vmfsd is SIGKILLed while a
# writer streams into a tracked disk through FUSE: after the restart a
# query with the change ID from before either fails with "tracking was
# reset: take a full backup" or covers every write that was acknowledged
# (never a miss); tracking goes on from a new checkpoint.  A damaged leaf
# page and a damaged header of DISK-ctk.vmdk give clear errors and a reset,
# never an answer.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 2G "$T/lun0.img"
# a short heartbeat timeout: the killed incarnation's locks are broken soon
bin/mkfs.vmfs -L cbt -H 8 --hb-interval 250 --hb-timeout 2500 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
D=$T/a/d.vmdk
bin/vmkfstools -c 64m -d thin "$D" || fail "-c"
bin/vmfs-cbt enable "$D" >/dev/null || fail "enable"
id0=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint"
# the writer logs each write once it was acknowledged
: >"$T/acked"
python3 - "$T/a/d-flat.vmdk" "$T/acked" <<'PY' &
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDWR)
log = open(sys.argv[2], "w", buffering=1)
r = random.Random(3)
try:
    while True:
        n = r.randint(1, 128 << 10); o = r.randrange(0, (64 << 20) - n)
        os.pwrite(fd, os.urandom(n), o)
        log.write("%d %d\n" % (o, n))
except OSError:
    pass
PY
wp=$!
for i in $(seq 1 100); do [ "$(wc -l <"$T/acked" 2>/dev/null || echo 0)" -ge 200 ] && break; sleep 0.05; done
[ "$(wc -l <"$T/acked")" -ge 200 ] || fail "the writer did not get going"
vmfsd_kill A
wait $wp
echo "vmfsd SIGKILLed after $(wc -l <"$T/acked") acknowledged writes"
vmfsd_start A "$T/a" "$T/lun0.img"
# until the dead incarnation's locks are broken, its files are busy
for i in $(seq 1 40); do
	bin/vmfs-cbt query "$D" --since "$id0" --json >"$T/q.json" 2>"$T/err"
	rc=$?
	grep -q "busy" "$T/err" || break
	sleep 0.5
done
if [ $rc -eq 0 ]; then
	# an answer must cover every acknowledged write
	python3 - "$T/q.json" "$T/acked" <<'PY' || fail "a query after the crash missed a write"
import json, sys
ext = json.load(open(sys.argv[1]))["extents"]
for line in open(sys.argv[2]):
    o, n = map(int, line.split())
    e = o + n
    for x in ext:
        if x["offset"] <= o < x["offset"] + x["length"]:
            o = x["offset"] + x["length"]
    assert o >= e, "write [%d, %d) not covered" % (o, e)
PY
	echo "the query after the crash covers every acknowledged write"
else
	grep -q "tracking was reset.*writer stopped without closing.*take a full backup" "$T/err" ||
		fail "crash: $(cat "$T/err")"
	echo "after the crash: $(cat "$T/err")"
fi
grep -q "change tracking of d.vmdk was reset" "$T/vmfsd-A.log" || fail "no reset logged: $(cat "$T/vmfsd-A.log")"
# tracking goes on
id1=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint after the reset"
dd if=/dev/urandom of="$T/a/d-flat.vmdk" bs=4k count=1 seek=1000 conv=notrunc,fsync status=none
[ "$(bin/vmfs-cbt query "$D" --since "$id1")" = "$((1000 * 4096 / 65536 * 65536)) 65536" ] ||
	fail "after the reset: $(bin/vmfs-cbt query "$D" --since "$id1")"
bin/vmfs-cbt query "$D" --since "$id0" >/dev/null 2>&1 && fail "the old ID answered after the reset"
echo "a new checkpoint tracks again; the old ID stays refused"

# a damaged leaf page: found when the file is loaded (a fresh daemon)
vmfsd_stop A
vmfsd_start A "$T/a" "$T/lun0.img"
python3 - "$T/a/d-ctk.vmdk" 4100 <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x20]))
PY
bin/vmfs-cbt query "$D" --since "$id1" 2>"$T/err" && fail "answered from a damaged page"
grep -q "tracking was reset.*damaged.*take a full backup" "$T/err" || fail "damaged leaf: $(cat "$T/err")"
echo "damaged leaf: $(cat "$T/err")"
id2=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint after the damaged leaf"
# a damaged header: nothing in it can be trusted, a new tracking UUID
python3 - "$T/a/d-ctk.vmdk" 44 <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 1]))
PY
bin/vmfs-cbt query "$D" --since "$id2" 2>"$T/err" && fail "answered from a damaged header"
grep -q "not of this disk's tracking.*take a full backup" "$T/err" || fail "damaged header: $(cat "$T/err")"
grep -q "header of d-ctk.vmdk.*damaged" "$T/vmfsd-A.log" || fail "header damage not logged"
echo "damaged header: $(cat "$T/err")"
bin/vmfs-cbt query "$D" --since '*' >/dev/null || fail "'*' after the resets"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "ok"
