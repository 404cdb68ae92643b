#!/bin/bash
# Raw device mappings on file LUNs (vmkfstools -r / -z / -q): two hosts
# whose device specs for the same LUN differ (host B reaches it through a
# symlinked directory).  A mapping written on host A reads the same on host
# B and equals the LUN read directly; unaligned I/O works; the mapping's
# size is the LUN's and cannot be changed; -i copies the LUN into a disk;
# a datastore's LUN, a LUN
# already mapped and a LUN the host does not see are refused with clear
# errors, as is spanning the datastore onto a mapped LUN; -U removes the mapping and leaves the LUN's data; fsck is clean.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun0.img"
truncate -s 64M "$T/raw1.img" "$T/raw2.img"
truncate -s 256M "$T/other.img"
bin/mkfs.vmfs -L ds -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
bin/mkfs.vmfs -L otherds -H 8 "$T/other.img" >/dev/null || fail "mkfs other"
mkdir "$T/luns" && ln -s "$T" "$T/luns/via"
vmfsd_start A "$T/a" --lun "$T/raw1.img" --lun "$T/raw2.img" \
	--lun "$T/other.img" "$T/lun0.img"
vmfsd_start B "$T/b" --lun "$T/luns/via/raw1.img" \
	--lun "$T/luns/via/raw2.img" "$T/lun0.img"
mkdir "$T/a/vm" || fail "mkdir"

# -r: descriptor as ESX writes it, mapping file sized as the LUN
bin/vmkfstools -r "$T/raw1.img" "$T/a/vm/r1.vmdk" || fail "-r"
grep -q 'createType="vmfsRawDeviceMap"' "$T/b/vm/r1.vmdk" || fail "descriptor: $(cat "$T/b/vm/r1.vmdk")"
grep -q '^RW 131072 VMFSRDM "r1-rdm.vmdk"' "$T/b/vm/r1.vmdk" || fail "extent line"
[ "$(stat -c %s "$T/b/vm/r1-rdm.vmdk")" = $((64 << 20)) ] || fail "mapping size $(stat -c %s "$T/b/vm/r1-rdm.vmdk")"
[ "$(kib "$T/b/vm/r1-rdm.vmdk")" = 0 ] || fail "a mapping uses volume space"
bin/vmkfstools -q "$T/b/vm/r1.vmdk" >"$T/q" || fail "-q"
grep -q "Non-passthrough" "$T/q" && grep -q "On this host: $T/luns/via/raw1.img" "$T/q" ||
	fail "-q on B: $(cat "$T/q")"
grep -q "Maps to: file\." "$T/q" || fail "identity: $(cat "$T/q")"
cat "$T/q"

# write through A's mapping, read through B's, and the LUN itself
head -c 4M /dev/urandom >"$T/data"
dd if="$T/data" of="$T/a/vm/r1-rdm.vmdk" bs=1M seek=3 conv=notrunc,fsync status=none ||
	fail "write through A's mapping"
cmp -n $((4 << 20)) -i 0:$((3 << 20)) "$T/data" "$T/b/vm/r1-rdm.vmdk" || fail "B reads other data"
cmp -n $((4 << 20)) -i 0:$((3 << 20)) "$T/data" "$T/raw1.img" || fail "the LUN holds other data"
# unaligned: 100 bytes at 1000 (read-modify-write of one sector)
printf 'unaligned-%.0s' $(seq 10) | head -c 100 >"$T/small"
dd if="$T/small" of="$T/a/vm/r1-rdm.vmdk" bs=1 seek=1000 conv=notrunc,fsync status=none ||
	fail "unaligned write"
cmp -n 100 -i 0:1000 "$T/small" "$T/b/vm/r1-rdm.vmdk" || fail "unaligned read on B"
cmp -n 100 -i 0:1000 "$T/small" "$T/raw1.img" || fail "unaligned write on the LUN"
cmp -n 1000 "$T/raw1.img" /dev/zero || fail "bytes before the unaligned write changed"
cmp -n 2048 -i 1100:1100 "$T/raw1.img" /dev/zero || fail "bytes after the unaligned write changed"
cmp -n $((64 << 20)) "$T/raw1.img" "$T/b/vm/r1-rdm.vmdk" || fail "whole LUN differs from B's view"
echo "written on A, read on B and on the LUN: identical (aligned and unaligned)"
# the size is the LUN's
truncate -s 1M "$T/a/vm/r1-rdm.vmdk" 2>/dev/null && fail "a mapping was truncated"
[ "$(stat -c %s "$T/b/vm/r1-rdm.vmdk")" = $((64 << 20)) ] || fail "mapping size changed"
dd if=/dev/zero of="$T/a/vm/r1-rdm.vmdk" bs=1M seek=64 count=1 conv=notrunc status=none 2>/dev/null &&
	fail "wrote past the LUN's end"

# -z: passthrough, its own file name
bin/vmkfstools -z "$T/raw2.img" "$T/a/vm/r2.vmdk" || fail "-z"
grep -q 'createType="vmfsPassthroughRawDeviceMap"' "$T/b/vm/r2.vmdk" &&
	grep -q '^RW 131072 VMFSRDM "r2-rdmp.vmdk"' "$T/b/vm/r2.vmdk" || fail "-z descriptor: $(cat "$T/b/vm/r2.vmdk")"
bin/vmkfstools -q "$T/a/vm/r2.vmdk" | grep -q "is a Passthrough" || fail "-q -z"
# -i from a mapping: the LUN's contents into a thin disk (zeros stay holes)
dd if="$T/data" of="$T/a/vm/r2-rdmp.vmdk" bs=1M seek=10 conv=notrunc,fsync status=none ||
	fail "write through r2"
bin/vmkfstools -i "$T/b/vm/r2.vmdk" -d thin "$T/b/vm/copy.vmdk" || fail "-i from an RDM"
cmp "$T/raw2.img" "$T/a/vm/copy-flat.vmdk" || fail "the clone differs from the LUN"
k=$(kib "$T/a/vm/copy-flat.vmdk")
[ "$k" -ge 4096 ] && [ "$k" -le 8192 ] || fail "thin clone of the LUN allocated $k KiB for 4 MiB of data"
echo "-i of an RDM: the LUN's contents, $k KiB allocated"
bin/vmkfstools -U "$T/a/vm/copy.vmdk" || fail "-U copy"

# refusals
bin/vmkfstools -r "$T/luns/via/raw1.img" "$T/b/vm/again.vmdk" 2>"$T/err" && fail "mapped a LUN twice"
grep -q "already mapped by r1-rdm.vmdk" "$T/err" || fail "twice message: $(cat "$T/err")"
bin/vmkfstools -r "$T/other.img" "$T/a/vm/ds.vmdk" 2>"$T/err" && fail "mapped a datastore's LUN"
grep -q "holds extent 0 of the volume 'otherds'" "$T/err" || fail "datastore message: $(cat "$T/err")"
bin/vmkfstools -r "$T/lun0.img" "$T/a/vm/self.vmdk" 2>"$T/err" && fail "mapped our own LUN"
grep -q "not one of this host's LUNs\|holds extent" "$T/err" || fail "own LUN message: $(cat "$T/err")"
bin/vmkfstools -z "$T/raw2.img" "$T/b/vm/r3.vmdk" 2>"$T/err" && fail "B mapped raw2 again"
grep -q "already mapped" "$T/err" || fail "B twice: $(cat "$T/err")"
[ ! -e "$T/b/vm/again.vmdk" ] && [ ! -e "$T/b/vm/ds.vmdk" ] && [ ! -e "$T/b/vm/ds-rdm.vmdk" ] ||
	fail "refused mappings left files: $(ls "$T/b/vm")"
# a mapped LUN is a VM's disk: spanning the datastore onto it is refused
cp "$T/raw2.img" "$T/raw2.before"
bin/vmkfstools -Z "$T/raw2.img" "$T/lun0.img" 2>"$T/err" && fail "spanned onto a mapped LUN"
grep -q "mapped by r2-rdmp.vmdk" "$T/err" || fail "span message: $(cat "$T/err")"
cmp -s "$T/raw2.img" "$T/raw2.before" || fail "the refused span wrote on the mapped LUN"
rm -f "$T/raw2.before"
# one host's read-write open holds the mapping: the other's fails
exec 7<>"$T/a/vm/r1-rdm.vmdk" || fail "open on A"
dd if=/dev/zero of="$T/b/vm/r1-rdm.vmdk" bs=512 count=1 conv=notrunc status=none 2>/dev/null &&
	fail "B wrote a mapping that A holds open"
exec 7<&-
dd if=/dev/zero of="$T/b/vm/r1-rdm.vmdk" bs=512 count=1 seek=1 conv=notrunc status=none ||
	fail "B cannot write the mapping after A closed it"

# -U removes the mapping, never the LUN's data
bin/vmkfstools -U "$T/a/vm/r1.vmdk" || fail "-U"
[ ! -e "$T/b/vm/r1.vmdk" ] && [ ! -e "$T/b/vm/r1-rdm.vmdk" ] || fail "-U left files"
cmp -n $((4 << 20)) -i 0:$((3 << 20)) "$T/data" "$T/raw1.img" || fail "-U touched the LUN"
bin/vmkfstools -r "$T/raw1.img" "$T/a/vm/r1again.vmdk" || fail "map again after -U"
echo "refusals clear; -U keeps the LUN's data; a LUN is mappable again after -U"

vmfsd_stop A
vmfsd_stop B
bin/fsck.vmfs "$T/lun0.img" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
echo "fsck clean"
