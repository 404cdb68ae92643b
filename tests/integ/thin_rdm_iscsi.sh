#!/bin/bash
# A raw device mapping of an iSCSI LUN (tgtd): host A reaches the LUN
# through one portal address, host B through another (127.0.0.1 and
# 127.0.0.2, a second portal of the same tgtd), so their device specs
# differ.  The mapping records the LUN's VPD 0x83 designator; written
# through host A's mapping, it reads the same through host B's and equals
# the target's backing file.  A second mapping of the LUN, by either
# address, is refused.
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
tgt_require
tgt_start "$T/tgt"
at_exit tgt_stop
UA=$(tgt_add_lun "$T/tgt" raw 64M) || fail "tgt_add_lun"
tgt_adm --op new --mode portal --param "portal=127.0.0.2:$TGT_PORT" ||
	fail "second portal"
UB=${UA/127.0.0.1/127.0.0.2}
[ "$UA" != "$UB" ] || fail "same spec on both hosts"
truncate -s 1G "$T/lun0.img"
bin/mkfs.vmfs -L ds -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" --lun "$UA" "$T/lun0.img"
vmfsd_start B "$T/b" --lun "$UB" "$T/lun0.img"

bin/vmkfstools -r "$UA" "$T/a/lun.vmdk" || fail "-r"
grep -q '^RW 131072 VMFSRDM "lun-rdm.vmdk"' "$T/b/lun.vmdk" || fail "descriptor: $(cat "$T/b/lun.vmdk")"
bin/vmkfstools -q "$T/b/lun.vmdk" >"$T/q" || fail "-q on B"
cat "$T/q"
grep -q "Maps to: naa\." "$T/q" || fail "not the VPD 0x83 designator: $(cat "$T/q")"
grep -qF "On this host: $UB" "$T/q" || fail "B resolves elsewhere: $(cat "$T/q")"

head -c 3M /dev/urandom >"$T/data"
dd if="$T/data" of="$T/a/lun-rdm.vmdk" bs=1M seek=5 conv=notrunc,fsync status=none ||
	fail "write through A's mapping"
cmp -n $((3 << 20)) -i 0:$((5 << 20)) "$T/data" "$T/b/lun-rdm.vmdk" || fail "B reads other data"
cmp -n $((3 << 20)) -i 0:$((5 << 20)) "$T/data" "$T/tgt/raw.img" || fail "the LUN holds other data"
cmp "$T/tgt/raw.img" "$T/b/lun-rdm.vmdk" || fail "B's view of the whole LUN differs"
echo "written through A ($UA), read through B ($UB) and from the target's file: identical"

bin/vmkfstools -z "$UB" "$T/b/again.vmdk" 2>"$T/err" && fail "mapped the LUN twice"
grep -q "already mapped by lun-rdm.vmdk" "$T/err" || fail "message: $(cat "$T/err")"
vmfsd_stop A
vmfsd_stop B
bin/fsck.vmfs "$T/lun0.img" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
