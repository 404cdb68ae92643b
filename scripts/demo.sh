#!/bin/bash
# make demo: the product on its embedded default, sparse files as LUNs.
# It grows with each capability; today: the device layer, the on-disk lock
# manager, and a spanned datastore of two LUNs served by two hosts.
set -eu
cd "$(dirname "$0")/.."
B=build/default
D=${VMFS_DEMO_DIR:-/var/tmp/vmfs-demo}
rm -rf "$D"
mkdir -p "$D"
PIDS=()
cleanup() {
	set +e
	for m in "$D/esx-a" "$D/esx-b"; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -uz "$m"
	done
	[ -z "${TGT_PID:-}" ] || tgt_stop
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	return 0
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Two sparse files as LUNs"
truncate -s 1G "$D/lun0.img" "$D/lun1.img"
run bin/vmfs-lun info "$D/lun0.img" "$D/lun1.img?sector=4096&engine=aio"

step "A volatile write cache loses what was not flushed (fault injection)"
run bin/vmfs-lun write "fault:wcache:$D/lun0.img" 0 4096 0xaa --flush
run bin/vmfs-lun write "fault:wcache:$D/lun0.img" 0 4096 0xbb
echo "(the process exited without a flush: its cached write is gone)"
run bin/vmfs-lun dump "$D/lun0.img" 0 512 | head -n 2

step "On-disk lock manager: a heartbeat region and lock records"
run bin/vmfs-lk format "$D/lun1.img" --slots 64 --interval 500 --dead 4000 --locks 1M:4
echo
echo "Host esx-a takes lock 0 and keeps writing the data it protects:"
$B/tests/helpers/lk_host hold "$D/lun1.img" esx-a excl 0 >"$D/esx-a.log" 2>&1 &
PIDS+=($!)
A=$!
for _ in $(seq 50); do grep -q HOLDING "$D/esx-a.log" && break; sleep 0.1; done
run bin/vmfs-lk slots "$D/lun1.img" --watch 1200
run bin/vmfs-lk locks "$D/lun1.img" 1M 4K

echo
echo "Host esx-b asks for the same lock while esx-a is alive: refused, holder named."
$B/tests/helpers/lk_host grab "$D/lun1.img" esx-b excl 1000 0 0 2>&1 | grep -E "ACQ|busy" || true

echo
echo "esx-a is killed (SIGKILL).  esx-b waits for its heartbeat to stay still"
echo "for the dead timeout, recovers it, and takes the lock:"
kill -KILL "$A"
wait "$A" 2>/dev/null || true
t0=$(date +%s%N)
$B/tests/helpers/lk_host grab "$D/lun1.img" esx-b excl 20000 100 0 2>&1 |
	grep -E "RECOVER|ACQ|recover" || true
echo "lock taken $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill (dead timeout 4000 ms)"
run bin/vmfs-lk slots "$D/lun1.img"

step "A datastore spanning two LUNs, mounted by two hosts"
truncate -s 2G "$D/ds0.img" "$D/ds1.img"
run bin/mkfs.vmfs -L datastore1 -H 16 --hb-interval 500 --hb-timeout 5000 "$D/ds0.img" "$D/ds1.img"
mkdir -p "$D/esx-a" "$D/esx-b"
bin/vmfsd --host esx-a --mount "$D/esx-a" "$D/ds0.img" "$D/ds1.img" 2>"$D/vmfsd-a.log" &
PIDS+=($!)
VA=$!
# the second host names the devices in another order: extents are found by
# their headers
bin/vmfsd --host esx-b --mount "$D/esx-b" "$D/ds1.img" "$D/ds0.img" 2>"$D/vmfsd-b.log" &
PIDS+=($!)
VB=$!
for _ in $(seq 50); do
	# serving: mounted and the control socket up
	grep -q "serving the volume" "$D/vmfsd-a.log" &&
		grep -q "serving the volume" "$D/vmfsd-b.log" && break
	sleep 0.1
done
echo "esx-a creates an 8 GiB thin virtual disk on the 3.9 GiB datastore and"
echo "writes 64 MiB into it:"
mkdir "$D/esx-a/vm01"
run bin/vmkfstools -c 8g -d thin "$D/esx-a/vm01/vm01.vmdk"
head -c 64M /dev/urandom >"$D/seed.bin"
run dd if="$D/seed.bin" of="$D/esx-a/vm01/vm01-flat.vmdk" bs=1M seek=100 conv=notrunc,fsync status=none
echo "esx-b sees the disk: 8 GiB in size, 64 MiB allocated; qemu-img reads the descriptor:"
run ls -ls "$D/esx-b/vm01"
if command -v qemu-img >/dev/null; then
	run qemu-img info "$D/esx-b/vm01/vm01.vmdk" | head -n 4
fi
echo "  sha256 written on esx-a: $(sha256sum <"$D/seed.bin" | cut -c1-16)..."
echo "  sha256 read on esx-b:    $(dd if="$D/esx-b/vm01/vm01-flat.vmdk" bs=1M skip=100 count=64 status=none | sha256sum | cut -c1-16)..."
run df -h "$D/esx-b"
run bin/vmfs-lk slots "$D/ds0.img" --region 1M --watch 1200
echo "esx-a holds the disk open for writing; esx-b may not remove it:"
exec 7<>"$D/esx-a/vm01/vm01-flat.vmdk"
rm "$D/esx-b/vm01/vm01-flat.vmdk" 2>&1 | sed 's/^/  /' || true
grep "locked by" "$D/vmfsd-b.log" | tail -n 1 | sed 's/^/  esx-b log: /'
echo "vmkfstools on esx-b finds esx-b's daemon from the path and names the owner:"
run bin/vmkfstools -D "$D/esx-b/vm01/vm01-flat.vmdk"
run bin/vmkfstools -P -h "$D/esx-b"
exec 7>&-
echo "Changed-block tracking: a checkpoint on esx-a, 1 MiB written at 250 MiB,"
echo "and the incremental a backup tool on esx-b reads next time:"
run bin/vmfs-cbt enable "$D/esx-a/vm01/vm01.vmdk"
ID=$(bin/vmfs-cbt checkpoint "$D/esx-a/vm01/vm01.vmdk")
echo "\$ bin/vmfs-cbt checkpoint $D/esx-a/vm01/vm01.vmdk"
echo "$ID"
run dd if=/dev/urandom of="$D/esx-a/vm01/vm01-flat.vmdk" bs=64k count=16 seek=4000 conv=notrunc,fsync status=none
echo "\$ bin/vmfs-cbt query $D/esx-b/vm01/vm01.vmdk --since '$ID'"
bin/vmfs-cbt query "$D/esx-b/vm01/vm01.vmdk" --since "$ID"
if [ -e /dev/kvm ] && [ -x bin/vmrun ]; then
	echo "A VM on the datastore: esx-a runs the test guest, which fills its"
	echo "thin disk through virtio-blk; esx-b then boots it to verify the disk:"
	mkdir "$D/esx-a/vm02"
	run bin/vmkfstools -c 256m -d thin "$D/esx-a/vm02/vm02.vmdk"
	cp bin/vmtest.elf "$D/esx-a/vm02/"
	cat >"$D/esx-a/vm02/vm02.vmx" <<-'VMX'
	displayName = "vm02"
	memSize = "64"
	numvcpus = "2"
	boot.kernel = "vmtest.elf"
	boot.cmdline = "vmtest=fill vmtest.mib=32"
	scsi0:0.present = "TRUE"
	scsi0:0.fileName = "vm02.vmdk"
	VMX
	run bin/vmrun start "$D/esx-a/vm02/vm02.vmx"
	sed -i 's/vmtest=fill/vmtest=verify/' "$D/esx-b/vm02/vm02.vmx"
	run bin/vmrun start "$D/esx-b/vm02/vm02.vmx"
	run ls -ls "$D/esx-b/vm02"
	echo "(the guest's disk I/O goes through the vmfsd mount here; direct I/O"
	echo " to the LUN through the block map is the executor's next step)"
fi
kill -TERM "$VA" "$VB"
wait "$VA" "$VB" 2>/dev/null || true
echo "both hosts left the volume (SIGTERM: locks and heartbeat slots released)"

step "An iSCSI LUN served by tgtd on loopback"
if command -v tgtd >/dev/null; then
	. tests/lib/tgt.sh
	tgt_start "$D"
	URL=$(tgt_add_lun "$D" demo 256M thin)
	run bin/vmfs-lun info "$URL"
	echo "(stock tgt has no COMPARE AND WRITE: the lock manager uses SCSI reservations there)"
else
	echo "tgtd not installed: skipped"
fi

step "Done"
echo "Logs and LUN files are in $D"
