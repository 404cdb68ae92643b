#!/bin/bash
# Changed-block tracking of raw device mappings: a virtual-mode mapping
# (vmkfstools -r) is tracked as ESX tracks one: vmfs-cbt enable works,
# writes through its mapping file (FUSE) are reported exactly (to the
# 64 KiB block), '*' is the whole LUN, the IDs survive a restart of vmfsd.
# A physical-mode mapping (vmkfstools -z) is refused with a clear error.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun0.img"
truncate -s 64M "$T/raw1.img" "$T/raw2.img"
bin/mkfs.vmfs -L ds -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" --lun "$T/raw1.img" --lun "$T/raw2.img" "$T/lun0.img"
R=$T/a/r1.vmdk
bin/vmkfstools -r "$T/raw1.img" "$R" || fail "-r"
bin/vmfs-cbt enable "$R" >"$T/en" || fail "enable a virtual-mode mapping: $(cat "$T/en")"
grep -q 'changeTrackPath="r1-ctk.vmdk"' "$R" || fail "descriptor: $(cat "$R")"
c0=$(bin/vmfs-cbt checkpoint "$R") || fail "checkpoint"
w() { dd if=/dev/urandom of="$T/a/r1-rdm.vmdk" bs="$2" count=1 seek="$1" oflag=seek_bytes conv=notrunc,fsync status=none || fail "write at $1"; }
w $(((1 << 20) + 5)) 4096
w $(((40 << 20) - 4096)) 8192
expect="1048576 65536
$(((40 << 20) - 65536)) 131072"
got=$(bin/vmfs-cbt query "$R" --since "$c0") || fail "query"
[ "$got" = "$expect" ] || fail "since $c0: got
$got
expected
$expect"
cmp -n 8192 -i $(((40 << 20) - 4096)):$(((40 << 20) - 4096)) "$T/raw1.img" "$T/a/r1-rdm.vmdk" ||
	fail "the LUN does not hold the write"
[ "$(bin/vmfs-cbt query "$R" --since '*')" = "0 $((64 << 20))" ] || fail "'*': $(bin/vmfs-cbt query "$R" --since '*')"
c1=$(bin/vmfs-cbt checkpoint "$R") || fail "checkpoint 2"
[ -z "$(bin/vmfs-cbt query "$R" --since "$c1")" ] || fail "changes since $c1"
echo "writes through a virtual-mode mapping reported: $(echo $got)"
vmfsd_stop A
vmfsd_start A "$T/a" --lun "$T/raw1.img" --lun "$T/raw2.img" "$T/lun0.img"
[ "$(bin/vmfs-cbt query "$R" --since "$c0")" = "$expect" ] || fail "after a restart"
grep -q "reset" "$T/vmfsd-A.log" && fail "tracking reset after a clean stop"
w 0 512
[ "$(bin/vmfs-cbt query "$R" --since "$c1")" = "0 65536" ] || fail "after a restart: $(bin/vmfs-cbt query "$R" --since "$c1")"
# physical mode: refused, clearly
bin/vmkfstools -z "$T/raw2.img" "$T/a/r2.vmdk" || fail "-z"
bin/vmfs-cbt enable "$T/a/r2.vmdk" 2>"$T/err" && fail "enabled on a physical-mode mapping"
grep -q "physical-mode (passthrough) raw device mapping" "$T/err" || fail "message: $(cat "$T/err")"
grep -q changeTrackPath "$T/a/r2.vmdk" && fail "descriptor of r2 changed"
echo "physical mode refused: $(cat "$T/err")"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "ok"
