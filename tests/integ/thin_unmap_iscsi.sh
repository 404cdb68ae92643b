#!/bin/bash
# Freed blocks go back to the LUN: a volume on a tgtd iSCSI LUN served
# with thin_provisioning=1.  Deleting a disk (-U) and truncating a file
# free their file blocks; the file system sends UNMAP for them once the
# freeing transaction is in place, and the target's backing file shrinks
# by about what they held.  The data left is intact and fsck is clean.
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
tgt_require
tgt_start "$T/tgt"
at_exit tgt_stop
U=$(tgt_add_lun "$T/tgt" vol 1G thin) || fail "tgt_add_lun"
bin/mkfs.vmfs -L unmap -H 4 "$U" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$U"
img="$T/tgt/vol.img"

base=$(kib "$img")
bin/vmkfstools -c 96m -d eagerzeroedthick "$T/a/disk.vmdk" || fail "-c"
head -c 48M /dev/urandom >"$T/data"
cp "$T/data" "$T/a/keep" && sync "$T/a/keep" || fail "keep"
dd if=/dev/urandom of="$T/a/file" bs=1M count=64 conv=fsync status=none || fail "file"
full=$(kib "$img")
echo "target's backing file: $base KiB after mkfs, $full KiB with the disk and files"
[ $((full - base)) -gt $(( (96 + 48 + 64) * 1024 * 9 / 10 )) ] ||
	fail "backing file grew by $((full - base)) KiB only"

bin/vmkfstools -U "$T/a/disk.vmdk" || fail "-U"
after_u=$(kib "$img")
echo "after -U of the 96 MiB eagerzeroedthick disk: $after_u KiB"
[ $((full - after_u)) -gt $((96 * 1024 * 9 / 10)) ] ||
	fail "-U gave back $((full - after_u)) KiB only"

# in place (and so discarded) at once with a sync, else within the
# journal's commit delay
truncate -s 0 "$T/a/file" && sync "$T/a/file" || fail "truncate"
after_t=$(kib "$img")
echo "after truncating the 64 MiB file: $after_t KiB"
[ $((after_u - after_t)) -gt $((64 * 1024 * 9 / 10)) ] ||
	fail "truncate gave back $((after_u - after_t)) KiB only"

cmp "$T/data" "$T/a/keep" || fail "data of another file damaged"
vmfsd_stop A
bin/fsck.vmfs -n "$U" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
echo "UNMAP on free: the backing file shrank by what was freed; other data intact; fsck clean"
