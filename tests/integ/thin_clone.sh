#!/bin/bash
# Virtual disk data operations through vmkfstools, checked against a raw
# reference with qemu-img: -i clone (sparse-aware: holes and zero chunks of
# a thin source stay unallocated in a thin target), -K punch out zeros,
# -j inflate, -k eager-zero; an interrupted clone leaves nothing; qemu-img
# convert from qcow2 into our disk and back; mkfs.ext4 + e2fsck -f on a
# thin disk through FUSE.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
command -v qemu-img >/dev/null || { echo "SKIP: qemu-img missing (qemu-utils)"; exit 77; }
truncate -s 4G "$T/lun0.img"
bin/mkfs.vmfs -L clones -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
vmfsd_start B "$T/b" "$T/lun0.img"
mkdir "$T/a/vm" || fail "mkdir"
V=$T/a/vm W=$T/b/vm
holes() { python3 - "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
print(0 if os.lseek(fd, 0, os.SEEK_HOLE) >= size else 1)
PY
}

# source: thin, 8 MiB of data at 3 MiB, 1 MiB of written zeros at 20 MiB
bin/vmkfstools -c 64m -d thin "$V/src.vmdk" || fail "-c"
head -c 8M /dev/urandom >"$T/data"
truncate -s 64M "$T/ref.raw"
dd if="$T/data" of="$T/ref.raw" bs=1M seek=3 conv=notrunc status=none
dd if="$T/data" of="$V/src-flat.vmdk" bs=1M seek=3 conv=notrunc status=none
dd if=/dev/zero of="$V/src-flat.vmdk" bs=1M seek=20 count=1 conv=notrunc,fsync status=none
[ "$(kib "$W/src-flat.vmdk")" -ge 9216 ] || fail "source allocation $(kib "$W/src-flat.vmdk")"

for t in thin zeroedthick eagerzeroedthick; do
	bin/vmkfstools -i "$V/src.vmdk" "$V/c-$t.vmdk" -d "$t" || fail "-i -d $t"
	qemu-img compare -q "$W/c-$t.vmdk" "$T/ref.raw" || fail "clone $t differs"
	echo "clone $t: $(kib "$W/c-$t-flat.vmdk") KiB allocated, content identical"
done
k=$(kib "$W/c-thin-flat.vmdk")
[ "$k" -ge 8192 ] && [ "$k" -le 8192 ] || fail "thin clone allocated $k KiB (8192 of data)"
[ "$(kib "$W/c-eagerzeroedthick-flat.vmdk")" -ge 65536 ] || fail "eager clone not allocated"
[ "$(holes "$W/c-eagerzeroedthick-flat.vmdk")" = 0 ] || fail "eager clone has unwritten blocks"
[ "$(holes "$W/c-zeroedthick-flat.vmdk")" = 1 ] || fail "zeroedthick clone has no unwritten blocks"

# -K gives the written zeros back; -j and -k fill every hole
before=$(kib "$W/src-flat.vmdk")
bin/vmkfstools -K "$V/src.vmdk" || fail "-K"
after=$(kib "$W/src-flat.vmdk")
[ $((before - after)) -ge 1024 ] || fail "-K gave back $((before - after)) KiB"
qemu-img compare -q "$W/src.vmdk" "$T/ref.raw" || fail "content after -K"
echo "-K: $((before - after)) KiB of zeros given back"
bin/vmkfstools -j "$V/c-thin.vmdk" || fail "-j"
[ "$(kib "$W/c-thin-flat.vmdk")" -ge 65536 ] || fail "-j did not inflate"
! grep -q thinProvisioned "$W/c-thin.vmdk" || fail "-j left the thin flag"
qemu-img compare -q "$W/c-thin.vmdk" "$T/ref.raw" || fail "content after -j"
bin/vmkfstools -k "$V/c-zeroedthick.vmdk" || fail "-k"
[ "$(holes "$W/c-zeroedthick-flat.vmdk")" = 0 ] || fail "-k left unwritten blocks"
qemu-img compare -q "$W/c-zeroedthick.vmdk" "$T/ref.raw" || fail "content after -k"
bin/vmkfstools -j "$V/c-eagerzeroedthick.vmdk" 2>"$T/err" && fail "-j of a thick disk"
grep -q "not thin" "$T/err" || fail "-j message: $(cat "$T/err")"
bin/vmkfstools -K "$V/c-zeroedthick.vmdk" 2>"$T/err" && fail "-K of a thick disk"
echo "-j, -k: every block allocated and zeroed, content identical"

# an interrupted clone leaves nothing behind
bin/vmkfstools -c 1g -d eagerzeroedthick "$V/big.vmdk" || fail "-c big"
timeout -s INT 0.5 bin/vmkfstools -i "$V/big.vmdk" "$V/big2.vmdk" -d eagerzeroedthick 2>/dev/null
[ $? = 124 ] || fail "the clone was not interrupted"
for i in $(seq 1 100); do [ ! -e "$W/big2-flat.vmdk" ] && break; sleep 0.1; done
[ ! -e "$W/big2-flat.vmdk" ] && [ ! -e "$W/big2.vmdk" ] || fail "interrupted clone left files"
bin/vmkfstools -U "$V/big.vmdk" || fail "-U big"
echo "interrupted clone: nothing left"

# qemu-img convert from qcow2 into our disk and back
qemu-img create -q -f qcow2 "$T/src.qcow2" 64M
qemu-img convert -q -n -f raw -O qcow2 "$T/ref.raw" "$T/src.qcow2" || fail "ref -> qcow2"
bin/vmkfstools -c 64m -d thin "$V/q.vmdk" || fail "-c q"
qemu-img convert -q -n -f qcow2 -O vmdk "$T/src.qcow2" "$V/q.vmdk" || fail "qcow2 -> our vmdk"
qemu-img convert -q -f vmdk -O qcow2 "$W/q.vmdk" "$T/back.qcow2" || fail "our vmdk -> qcow2"
qemu-img compare -q "$T/src.qcow2" "$T/back.qcow2" || fail "qcow2 round trip differs"
# qemu rewrote the descriptor (a new CID, NUL padding): still ours to manage
bin/vmkfstools -t0 "$V/q.vmdk" >/dev/null || fail "-t0 after qemu rewrote the descriptor"
bin/vmkfstools -U "$V/q.vmdk" || fail "-U after qemu rewrote the descriptor"
echo "qemu-img convert qcow2 -> our disk -> qcow2: identical"

# a file system on a thin disk, through FUSE
bin/vmkfstools -c 256m -d thin "$V/ext.vmdk" || fail "-c ext"
mkfs.ext4 -q -F "$V/ext-flat.vmdk" || fail "mkfs.ext4"
e2fsck -fn "$W/ext-flat.vmdk" >"$T/e2fsck.out" 2>&1 || fail "e2fsck: $(cat "$T/e2fsck.out")"
echo "mkfs.ext4 on a thin disk, e2fsck -f clean from the other host ($(kib "$W/ext-flat.vmdk") KiB allocated)"

vmfsd_stop A
vmfsd_stop B
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "fsck -n clean"
