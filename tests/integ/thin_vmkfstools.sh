#!/bin/bash
# Virtual disks through vmkfstools and vmfsd's control socket:
# -c thin / zeroedthick / eagerzeroedthick (allocation as promised,
# VMware-style descriptors that qemu-img reads and compares), -X, -E, -U,
# clear errors for bad requests, and an interrupted eager-zeroed creation
# leaves nothing behind.  The other host sees every change; fsck is clean.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
command -v qemu-img >/dev/null || { echo "SKIP: qemu-img missing (qemu-utils)"; exit 77; }
truncate -s 12G "$T/lun0.img"   # sparse: room for the interrupted 8 GiB disk
bin/mkfs.vmfs -L disks -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
vmfsd_start B "$T/b" "$T/lun0.img"
mkdir "$T/a/vm1" || fail "mkdir"
base=$(free_blocks "$T/b")

for t in thin zeroedthick eagerzeroedthick; do
	bin/vmkfstools -c 64m -d "$t" "$T/a/vm1/$t.vmdk" || fail "-c $t"
	grep -q 'createType="vmfs"' "$T/b/vm1/$t.vmdk" || fail "$t descriptor: $(cat "$T/b/vm1/$t.vmdk")"
	grep -q "^RW 131072 VMFS \"$t-flat.vmdk\"" "$T/b/vm1/$t.vmdk" || fail "$t extent line"
	qemu-img info --output=json "$T/b/vm1/$t.vmdk" >"$T/info.json" || fail "qemu-img info $t"
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["format"]=="vmdk" and j["virtual-size"]==64<<20, j' \
		"$T/info.json" || fail "qemu-img sees $(cat "$T/info.json")"
	echo "$t: $(kib "$T/b/vm1/$t-flat.vmdk") KiB allocated of 65536"
done
[ "$(kib "$T/b/vm1/thin-flat.vmdk")" -lt 1024 ] || fail "thin allocated at creation"
[ "$(kib "$T/b/vm1/zeroedthick-flat.vmdk")" -ge 65536 ] || fail "zeroedthick not reserved"
[ "$(kib "$T/b/vm1/eagerzeroedthick-flat.vmdk")" -ge 65536 ] || fail "eagerzeroedthick not allocated"
cmp -n $((64 << 20)) "$T/b/vm1/zeroedthick-flat.vmdk" /dev/zero || fail "zeroedthick does not read zeros"
grep -q ddb.thinProvisioned "$T/a/vm1/thin.vmdk" || fail "thin not marked thin"
# -t0: where the bytes live
bin/vmkfstools -t0 "$T/b/vm1/thin.vmdk" | grep -q "NOMP -- hole" || fail "-t0 thin"
bin/vmkfstools -t0 "$T/b/vm1/zeroedthick.vmdk" | grep -q "TBZ  -- extent 0" || fail "-t0 zeroedthick"
[ "$(bin/vmkfstools -t0 "$T/b/vm1/eagerzeroedthick.vmdk" | grep -c "VMFS -- extent")" -ge 1 ] &&
	! bin/vmkfstools -t0 "$T/b/vm1/eagerzeroedthick.vmdk" | grep -q "TBZ\|NOMP" || fail "-t0 eager"
# a thin disk allocates on write; qemu-img compares it with a raw reference
head -c 8M /dev/urandom >"$T/data"
truncate -s 64M "$T/ref.raw"
dd if="$T/data" of="$T/ref.raw" bs=1M seek=3 conv=notrunc status=none
dd if="$T/data" of="$T/a/vm1/thin-flat.vmdk" bs=1M seek=3 conv=notrunc,fsync status=none
qemu-img compare -q "$T/b/vm1/thin.vmdk" "$T/ref.raw" || fail "qemu-img compare thin"
k=$(kib "$T/b/vm1/thin-flat.vmdk")
[ "$k" -ge 8192 ] && [ "$k" -le 12288 ] || fail "thin grew by $k KiB for 8 MiB"
echo "thin disk grew to $k KiB after 8 MiB written; qemu-img compare: identical"

# -X extend keeps the data, -E renames everything, -U removes everything
bin/vmkfstools -X 128m "$T/a/vm1/thin.vmdk" || fail "-X"
truncate -s 128M "$T/ref.raw"
qemu-img compare -q "$T/b/vm1/thin.vmdk" "$T/ref.raw" || fail "content after -X"
grep -q "^RW 262144 VMFS" "$T/b/vm1/thin.vmdk" || fail "descriptor after -X"
bin/vmkfstools -E "$T/a/vm1/thin.vmdk" "$T/a/vm1/moved.vmdk" || fail "-E"
[ ! -e "$T/b/vm1/thin.vmdk" ] && [ ! -e "$T/b/vm1/thin-flat.vmdk" ] || fail "old names left"
grep -q '"moved-flat.vmdk"' "$T/b/vm1/moved.vmdk" || fail "descriptor after -E"
qemu-img compare -q "$T/b/vm1/moved.vmdk" "$T/ref.raw" || fail "content after -E"
bin/vmkfstools -X 2m "$T/a/vm1/moved.vmdk" 2>"$T/err" && fail "-X shrank a disk"
grep -q "larger than" "$T/err" || fail "-X shrink message: $(cat "$T/err")"
for d in moved zeroedthick eagerzeroedthick; do
	bin/vmkfstools -U "$T/a/vm1/$d.vmdk" || fail "-U $d"
done
[ -z "$(ls "$T/b/vm1")" ] || fail "left after -U: $(ls "$T/b/vm1")"
sleep 0.2
[ "$(free_blocks "$T/b")" = "$base" ] || fail "space not back: $(free_blocks "$T/b") vs $base"
echo "-X, -E, -U: content kept, names follow, space back"

# bad requests: clear errors, nothing made
bin/vmkfstools -c 1m "$T/a/vm1/x.img" 2>"$T/err" && fail "accepted a name without .vmdk"
grep -q "ends in .vmdk" "$T/err" || fail "name message: $(cat "$T/err")"
bin/vmkfstools -c 1000 "$T/a/vm1/x.vmdk" 2>"$T/err" && fail "accepted 1000 bytes"
grep -q "multiple of 512" "$T/err" || fail "size message: $(cat "$T/err")"
bin/vmkfstools -c 1m -d sparse "$T/a/vm1/x.vmdk" 2>"$T/err" && fail "accepted -d sparse"
grep -q "disk type 'sparse'" "$T/err" || fail "type message: $(cat "$T/err")"
bin/vmkfstools -c 1m "$T/a/vm1/y.vmdk" || fail "-c y"
bin/vmkfstools -c 1m "$T/a/vm1/y.vmdk" 2>"$T/err" && fail "created y twice"
grep -q "exists" "$T/err" || fail "exists message: $(cat "$T/err")"
bin/vmkfstools -c 100t -d thin "$T/a/vm1/huge.vmdk" || fail "thin overcommit refused"
bin/vmkfstools -c 100t "$T/a/vm1/thick.vmdk" 2>"$T/err" && fail "100 TiB thick disk on 4 GiB"
grep -qi "no space" "$T/err" || fail "ENOSPC message: $(cat "$T/err")"
[ ! -e "$T/b/vm1/thick-flat.vmdk" ] || fail "half-made thick disk left"
bin/vmkfstools -U "$T/a/vm1/nothere.vmdk" 2>"$T/err" && fail "-U of a missing disk"
grep -q "No such file" "$T/err" || fail "-U missing message: $(cat "$T/err")"
bin/vmkfstools -U "$T/a/vm1/huge.vmdk" && bin/vmkfstools -U "$T/a/vm1/y.vmdk" || fail "-U"
echo "bad requests refused with clear errors"

# an eager-zeroed creation interrupted with ^C leaves nothing behind (8 GiB
# of zeros take seconds even where the disk writes them at GB/s; 2 GiB once
# finished within the second)
timeout -s INT 0.5 bin/vmkfstools -c 8g -d eagerzeroedthick "$T/a/vm1/big.vmdk" 2>"$T/err"
rc=$?
[ $rc = 124 ] || fail "creation was not interrupted (exit $rc): $(cat "$T/err")"
for i in $(seq 1 100); do
	[ ! -e "$T/b/vm1/big-flat.vmdk" ] && [ ! -e "$T/b/vm1/big.vmdk" ] && break
	sleep 0.1
done
[ -z "$(ls "$T/b/vm1")" ] || fail "interrupted creation left $(ls "$T/b/vm1")"
grep -q "stopped creating" "$T/vmfsd-A.log" || true
# the blocks allocated up front go back in transactions of their own
for i in $(seq 1 100); do
	[ "$(free_blocks "$T/b")" = "$base" ] && break
	sleep 0.1
done
[ "$(free_blocks "$T/b")" = "$base" ] ||
	fail "space after the interruption: $(free_blocks "$T/b") free, $base before"
echo "interrupted eagerzeroedthick creation: nothing left"

vmfsd_stop A
vmfsd_stop B
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "fsck -n clean"
