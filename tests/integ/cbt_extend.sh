#!/bin/bash
# Changed-block tracking across any size (VMware's 128 GB bug): a sparse
# thin disk of 100 GiB with tracking on is extended to 200 GiB; writes
# below, across and above 128 GiB are reported exactly (to the 64 KiB
# block), before and after a restart of vmfsd; the tracking file stays
# small; renaming the disk (vmkfstools -E) moves its tracking file.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
G=$((1 << 30))
truncate -s 2G "$T/lun0.img"
bin/mkfs.vmfs -L cbt -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
D=$T/a/d.vmdk
bin/vmkfstools -c 100g -d thin "$D" || fail "-c"
bin/vmfs-cbt enable "$D" >/dev/null || fail "enable"
id0=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint"
w() { dd if=/dev/urandom of="$T/a/d-flat.vmdk" bs="$2" count=1 seek="$1" oflag=seek_bytes conv=notrunc,fsync status=none || fail "write at $1"; }
w $((99 * G + (1 << 20))) 65536
bin/vmkfstools -X 200g "$D" || fail "-X 200g"
w $((128 * G - 4096)) 8192
w $((199 * G + 5)) 10
expect="$((99 * G + (1 << 20))) 65536
$((128 * G - 65536)) 131072
$((199 * G)) 65536"
got=$(bin/vmfs-cbt query "$D" --since "$id0") || fail "query"
[ "$got" = "$expect" ] || fail "since $id0: got
$got
expected
$expect"
id1=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 2"
[ -z "$(bin/vmfs-cbt query "$D" --since "$id1")" ] || fail "changes since the last checkpoint"
bin/vmfs-cbt query "$D" --since "$id0" --offset $((128 * G)) --length $((G)) >"$T/part" || fail "query part"
[ "$(cat "$T/part")" = "$((128 * G)) 65536" ] || fail "part: $(cat "$T/part")"
echo "writes at 99 GiB, across 128 GiB and at 199 GiB of a disk grown from 100 to 200 GiB: reported exactly"
# "*": the allocated areas (file blocks), the same in pages of one
bin/vmfs-cbt query "$D" --since '*' >"$T/all" || fail "query '*'"
[ "$(wc -l <"$T/all")" -eq 3 ] || fail "'*': $(cat "$T/all")"
VMFS_CBT_PAGE=1 bin/vmfs-cbt query "$D" --since '*' >"$T/all1" || fail "query '*' paged"
cmp -s "$T/all" "$T/all1" || fail "'*' in pages of one: $(cat "$T/all1")"
vmfsd_stop A
vmfsd_start A "$T/a" "$T/lun0.img"
[ "$(bin/vmfs-cbt query "$D" --since "$id0")" = "$expect" ] || fail "after a restart"
k=$(kib "$T/a/d-ctk.vmdk")
echo "tracking file of the 200 GiB disk: $k KiB allocated"
[ "$k" -le 4096 ] || fail "ctk of $k KiB for 3 changed areas"
bin/vmkfstools -E "$D" "$T/a/e.vmdk" || fail "-E"
[ -e "$T/a/e-ctk.vmdk" ] && [ ! -e "$T/a/d-ctk.vmdk" ] || fail "the tracking file did not follow: $(ls "$T/a")"
grep -q '^changeTrackPath="e-ctk.vmdk"' "$T/a/e.vmdk" || fail "descriptor after -E"
[ "$(bin/vmfs-cbt query "$T/a/e.vmdk" --since "$id0")" = "$expect" ] || fail "after -E"
echo "after vmkfstools -E the renamed disk answers the same"
# a data file made again under its name (the kernel opens it through a
# create, with no lookup of the new file): its writes are tracked
id2=$(bin/vmfs-cbt checkpoint "$T/a/e.vmdk") || fail "checkpoint 3"
rm "$T/a/e-flat.vmdk" || fail "rm e-flat.vmdk"
touch "$T/a/other" || fail "touch"   # takes the freed descriptor: a new inode
dd if=/dev/urandom of="$T/a/e-flat.vmdk" bs=65536 count=1 conv=notrunc,fsync status=none || fail "recreate e-flat.vmdk"
got=$(bin/vmfs-cbt query "$T/a/e.vmdk" --since "$id2") || fail "query after recreate"
echo "$got" | grep -qx "0 65536" || fail "a recreated data file's write not reported: '$got'"
echo "a data file made again under the disk's name is written tracked"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "ok"
