#!/bin/bash
# Changed-block tracking against ground truth: random writes and punched
# holes through FUSE on a thin disk with tracking on, a checkpoint after
# each round; every query since every earlier change ID is a superset of
# what the shadow model says changed (false-positive rate in the log), and
# a full copy plus each round's incremental equals the disk byte for byte
# (sha256), as does a copy of the allocated areas ("*").  With four
# writers and checkpoints at the same time, a write that began after a
# checkpoint returned is always reported since its ID.  A clean restart
# of vmfsd keeps every change ID valid; the other host's queries agree;
# disable removes the tracking file and old IDs are refused.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 2G "$T/lun0.img"
bin/mkfs.vmfs -L cbt -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
mkdir "$T/a/vm" || fail "mkdir"
bin/vmkfstools -c 64m -d thin "$T/a/vm/d.vmdk" || fail "-c"
bin/vmfs-cbt enable "$T/a/vm/d.vmdk" >"$T/en.out" || fail "enable"
grep -q "tracking file d-ctk.vmdk, block size 65536" "$T/en.out" || fail "enable: $(cat "$T/en.out")"
grep -q '^changeTrackPath="d-ctk.vmdk"' "$T/a/vm/d.vmdk" && grep -q '^version=3' "$T/a/vm/d.vmdk" ||
	fail "descriptor: $(cat "$T/a/vm/d.vmdk")"
bin/vmfs-cbt enable "$T/a/vm/d.vmdk" | grep -q "already enabled" || fail "second enable"
command -v qemu-img >/dev/null && { qemu-img info "$T/a/vm/d.vmdk" >/dev/null || fail "qemu-img reads the descriptor"; }

python3 tests/integ/cbt_model.py rounds "$T/model" "$T/a/vm/d.vmdk" 3 || fail "model (rounds 1-3)"
# a clean stop writes everything back: old IDs stay valid
vmfsd_stop A
vmfsd_start A "$T/a" "$T/lun0.img"
grep -q "reset" "$T/vmfsd-A.log" && fail "a clean restart reset tracking: $(cat "$T/vmfsd-A.log")"
python3 tests/integ/cbt_model.py rounds "$T/model" "$T/a/vm/d.vmdk" 2 || fail "model (rounds 4-5, after a restart)"

# the other host answers the same (it loads the tracking file itself)
vmfsd_start B "$T/b" "$T/lun0.img"
id=$(python3 -c 'import pickle,sys; print(pickle.load(open(sys.argv[1],"rb"))["ids"][2])' "$T/model")
bin/vmfs-cbt query "$T/a/vm/d.vmdk" --since "$id" >"$T/qa" || fail "query on A"
bin/vmfs-cbt query "$T/b/vm/d.vmdk" --since "$id" >"$T/qb" || fail "query on B"
[ -s "$T/qa" ] && cmp -s "$T/qa" "$T/qb" || fail "A and B disagree: $(diff "$T/qa" "$T/qb" | head)"
echo "host B's answer since round 2: $(wc -l <"$T/qb") extents, as A's"
# answers come in pages (at most so many extents each): the same joined
VMFS_CBT_PAGE=7 bin/vmfs-cbt query "$T/a/vm/d.vmdk" --since "$id" >"$T/qp" || fail "paged query"
cmp -s "$T/qa" "$T/qp" || fail "pages of 7 differ: $(diff "$T/qa" "$T/qp" | head)"
VMFS_CBT_PAGE=3 bin/vmfs-cbt query "$T/a/vm/d.vmdk" --since "$id" --json >"$T/qp.json" || fail "paged --json"
bin/vmfs-cbt query "$T/a/vm/d.vmdk" --since "$id" --json >"$T/qall.json" || fail "--json"
python3 -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); assert a["extents"]==b["extents"] and a["changed"]==b["changed"] and len(a["extents"])>3, (len(a["extents"]),len(b["extents"]))' \
	"$T/qp.json" "$T/qall.json" || fail "--json in pages of 3 differs"
echo "queries in pages of 7 and 3 extents give the same answers"

# writers and checkpoints at the same time
python3 tests/integ/cbt_model.py concurrent "$T/a/vm/d.vmdk" 2 || fail "concurrent writers and checkpoints"
vmfsd_stop B

# bad IDs: clear errors
bin/vmfs-cbt query "$T/a/vm/d.vmdk" --since "52 00/3" 2>"$T/err" && fail "accepted a bad ID"
grep -q "not a change ID" "$T/err" || fail "bad ID message: $(cat "$T/err")"
bad=$(echo "$id" | sed 's/^52 ../52 ff/; s/^52 ff/52 fe/')
bin/vmfs-cbt query "$T/a/vm/d.vmdk" --since "$bad" 2>"$T/err" && fail "accepted another tracking's ID"
grep -q "take a full backup" "$T/err" || fail "other-UUID message: $(cat "$T/err")"
# disable: the tracking file goes, the descriptor no longer names it
bin/vmfs-cbt disable "$T/a/vm/d.vmdk" || fail "disable"
[ ! -e "$T/a/vm/d-ctk.vmdk" ] || fail "d-ctk.vmdk left"
grep -q changeTrackPath "$T/a/vm/d.vmdk" && fail "descriptor still names it"
grep -q '^version=1' "$T/a/vm/d.vmdk" || fail "version after disable: $(cat "$T/a/vm/d.vmdk")"
bin/vmfs-cbt query "$T/a/vm/d.vmdk" --since "$id" 2>"$T/err" && fail "query with tracking off"
grep -q "not enabled" "$T/err" || fail "disabled message: $(cat "$T/err")"
bin/vmfs-cbt enable "$T/a/vm/d.vmdk" >/dev/null || fail "enable again"
bin/vmfs-cbt query "$T/a/vm/d.vmdk" --since "$id" 2>"$T/err" && fail "an old ID after re-enabling"
grep -q "take a full backup" "$T/err" || fail "re-enabled message: $(cat "$T/err")"
echo "bad, foreign and pre-enable IDs refused: $(head -c 150 "$T/err")"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "ok"
