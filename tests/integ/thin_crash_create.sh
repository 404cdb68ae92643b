#!/bin/bash
# A disk being made lives under temporary names: host A's vmfsd is killed
# (SIGKILL) in the middle of an eagerzeroedthick creation; no half-made
# disk appears under the final names (on host B), only the temporary; the
# next creation of that name on host B removes the temporary and succeeds;
# -U of a name with nothing but leftovers removes them; fsck is clean.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 3G "$T/lun0.img"
bin/mkfs.vmfs -L crash -H 4 --hb-interval 500 --hb-timeout 3000 "$T/lun0.img" >/dev/null ||
	fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
vmfsd_start B "$T/b" "$T/lun0.img"
mkdir "$T/a/vm" || fail "mkdir"

# kill A while it zeroes: the temporary data file is there and growing
mkcrash() {
	local name=$1 i pid
	bin/vmkfstools -c 1536m -d eagerzeroedthick "$T/a/vm/$name.vmdk" 2>/dev/null &
	pid=$!
	for i in $(seq 1 200); do
		[ -e "$T/b/vm/.$name-flat.vmdk.partial" ] &&
			[ "$(kib "$T/b/vm/.$name-flat.vmdk.partial")" -gt 0 ] && break
		sleep 0.05
	done
	sleep 0.3
	vmfsd_kill A
	wait "$pid" 2>/dev/null
}
mkcrash big
[ ! -e "$T/b/vm/big.vmdk" ] && [ ! -e "$T/b/vm/big-flat.vmdk" ] ||
	fail "a half-made disk under its final name: $(ls -la "$T/b/vm")"
[ -e "$T/b/vm/.big-flat.vmdk.partial" ] || fail "no temporary: $(ls -la "$T/b/vm")"
echo "killed mid-creation: only $(ls -A "$T/b/vm" | tr '\n' ' ')"

# the next creation on host B: refused while A's hold looks alive (A's
# dead timeout is 3 s), then it removes the temporary
bin/vmkfstools -c 64m -d thin "$T/b/vm/big.vmdk" 2>"$T/err" ||
	grep -q "being made by a host right now" "$T/err" || fail "busy: $(cat "$T/err")"
for i in $(seq 1 40); do
	bin/vmkfstools -c 64m -d thin "$T/b/vm/big.vmdk" 2>"$T/err" && break
	sleep 0.25
done
[ -e "$T/b/vm/big.vmdk" ] || fail "creating big again: $(cat "$T/err")"
[ "$(ls -A "$T/b/vm" | tr '\n' ' ')" = "big-flat.vmdk big.vmdk " ] ||
	fail "after the new creation: $(ls -A "$T/b/vm")"
grep -q "^RW 131072 VMFS" "$T/b/vm/big.vmdk" || fail "descriptor"
grep -q "interrupted creation" "$T/vmfsd-B.log" || fail "removal not logged"
echo "next creation removed the temporary and made the disk"

# leftovers alone: -U cleans them
vmfsd_start A "$T/a" "$T/lun0.img"
mkcrash other
for i in $(seq 1 40); do
	bin/vmkfstools -U "$T/b/vm/other.vmdk" 2>"$T/err" && break
	sleep 0.25
done
[ ! -e "$T/b/vm/.other-flat.vmdk.partial" ] || fail "-U of leftovers: $(cat "$T/err")"
[ "$(ls -A "$T/b/vm" | tr '\n' ' ')" = "big-flat.vmdk big.vmdk " ] ||
	fail "after -U: $(ls -A "$T/b/vm")"
vmfsd_stop B
bin/fsck.vmfs -y "$T/lun0.img" >"$T/fsck" 2>&1
[ $? -le 1 ] || fail "fsck -y: $(cat "$T/fsck")"
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
echo "-U removed the leftovers; fsck clean"
