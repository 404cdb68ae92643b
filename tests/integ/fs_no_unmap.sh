#!/bin/bash
# vmfsd --no-unmap: blocks freed by a delete stay allocated on the LUN (no
# punched holes); without it the same delete gives them back.  The file's
# data is durable before each delete; fsck is clean after both.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
alloc_mib() { echo $(( $(stat -c '%b * %B' "$1") / 1048576 )); }
lun="$T/lun0.img"
truncate -s 1G "$lun"
bin/mkfs.vmfs -H 4 "$lun" >/dev/null || fail "mkfs"

round() { # label vmfsd-options...
	local label=$1 before mid after
	shift
	vmfsd_start A "$T/a" "$@" "$lun"
	before=$(alloc_mib "$lun")
	dd if=/dev/urandom of="$T/a/f" bs=1M count=48 conv=fsync status=none ||
		fail "$label: write"
	mid=$(alloc_mib "$lun")
	rm "$T/a/f" || fail "$label: rm"
	vmfsd_stop A
	after=$(alloc_mib "$lun")
	echo "$label: LUN file allocation $before -> $mid -> $after MiB"
	[ $((mid - before)) -ge 44 ] || fail "$label: the write did not allocate"
	bin/fsck.vmfs -n "$lun" >"$T/$label.fsck" 2>&1 || fail "$label: fsck: $(cat "$T/$label.fsck")"
	ROUND_FREED=$((mid - after))
}
round unmap
[ "$ROUND_FREED" -ge 44 ] || fail "without --no-unmap only $ROUND_FREED MiB went back"
round no-unmap --no-unmap
[ "$ROUND_FREED" -le 2 ] || fail "--no-unmap gave $ROUND_FREED MiB back to the LUN"
echo "PASS"
