#!/bin/bash
# Online geometry changes with two hosts mounted: host A spans the volume
# onto a new LUN (vmkfstools -Z) and later grows it into its enlarged head
# LUN (vmkfstools --growfs).  Host B, which names the new LUN differently
# (a symlinked directory, given as --candidate), sees the new capacity in
# statfs and vmkfstools -P within a few heartbeat intervals, without
# remounting, and allocates in the new space; a read-only host C sees it
# in statfs at once and reads what B wrote there.  fsck is clean after each.
# A SIGKILL of host A in the middle of a span leaves the old volume valid,
# and the span can be done again.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 128M "$T/lun0.img" "$T/new.img" "$T/new2.img"
bin/mkfs.vmfs -L grow -H 4 --hb-interval 500 --hb-timeout 4000 "$T/lun0.img" >/dev/null || fail "mkfs"
mkdir "$T/via" && ln -s "$T/new.img" "$T/via/n.img" && ln -s "$T/new2.img" "$T/via/n2.img"
vmfsd_start A "$T/a" "$T/lun0.img"
vmfsd_start B "$T/b" \
	--candidate "$T/via/n.img" --candidate "$T/via/n2.img" "$T/lun0.img"
vmfsd_start C "$T/c" --read-only --candidate "$T/via/n.img" "$T/lun0.img"

cap() { python3 -c "import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_blocks*s.f_frsize)" "$1"; }
free_bytes() { python3 -c "import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_bfree*s.f_frsize)" "$1"; }
# wait until host B's capacity exceeds $1 (at most 5 s); prints the ms
wait_cap() {
	local t0 i
	t0=$(date +%s%N)
	for i in $(seq 1 100); do
		[ "$(cap "$T/b")" -gt "$1" ] && { echo $(( ($(date +%s%N) - t0) / 1000000 )); return 0; }
		sleep 0.05
	done
	return 1
}
# fill: write $2 MiB into file $1 (through B), fsync'd
fill() { dd if=/dev/urandom of="$1" bs=1M count="$2" conv=fsync status=none; }

c0=$(cap "$T/b")
f0=$(free_bytes "$T/b")
bin/vmkfstools -Z "$T/new.img" "$T/lun0.img" || fail "-Z"
ms=$(wait_cap "$c0") || fail "B does not see the span: $(cap "$T/b") <= $c0; $(tail -3 "$T/vmfsd-B.log")"
c1=$(cap "$T/b")
echo "span: capacity $c0 -> $c1 bytes, seen by host B after $ms ms"
[ "$(cap "$T/a")" = "$c1" ] || fail "A and B disagree: $(cap "$T/a") vs $c1"
[ "$(cap "$T/c")" = "$c1" ] || fail "read-only host C: $(cap "$T/c") vs $c1"
bin/vmkfstools -P "$T/b" >"$T/p" || fail "-P on B"
grep -q "spanning 2 extents" "$T/p" && grep -q "1: $T/via/n.img" "$T/p" || fail "-P: $(cat "$T/p")"
# more than the old volume had free: only fits with the new extent
need=$(( f0 / 1048576 + 32 ))
fill "$T/b/big1" "$need" || fail "B could not allocate $need MiB in the spanned volume"
bin/vmkfstools -t0 "$T/b/big1" | grep -q -- "-- extent 1:" || fail "nothing of big1 on extent 1"
echo "host B wrote $need MiB (old free space $((f0 >> 20)) MiB), partly on the new extent"

# --growfs: the head LUN is enlarged, then the volume takes the space in
truncate -s 256M "$T/lun0.img"
bin/vmkfstools --growfs "$T/lun0.img" "$T/lun0.img" || fail "--growfs"
ms=$(wait_cap "$c1") || fail "B does not see the grow"
c2=$(cap "$T/b")
bin/vmkfstools -P "$T/b" | grep -q "2: $T/lun0.img (grown, from byte" || fail "-P after the grow: $(bin/vmkfstools -P "$T/b")"
echo "grow: capacity $c1 -> $c2 bytes, seen by host B after $ms ms"
[ $(( c2 - c1 )) -gt $(( 100 << 20 )) ] || fail "grew by $(( c2 - c1 )) only"
f2=$(free_bytes "$T/b")
fill "$T/b/big2" $(( f2 / 1048576 - 8 )) || fail "B could not allocate in the grown space"
bin/vmkfstools -t0 "$T/b/big2" | grep -q -- "-- extent 2:" || fail "nothing of big2 on extent 2"
cmp "$T/a/big1" "$T/b/big1" || fail "A reads other data"
sum1=$(md5sum <"$T/b/big1")
bin/vmkfstools --growfs "$T/lun0.img" "$T/lun0.img" 2>"$T/err" && fail "grew without new space"
grep -q "has not grown enough" "$T/err" || fail "message: $(cat "$T/err")"
bin/vmkfstools -Z "$T/new.img" "$T/lun0.img" 2>"$T/err" && fail "spanned onto an extent"
grep -q "extent 1" "$T/err" || fail "message: $(cat "$T/err")"
rm "$T/b/big2"
cmp "$T/c/big1" "$T/b/big1" || fail "read-only host C reads other data"
vmfsd_stop C
vmfsd_stop A
vmfsd_stop B
bin/fsck.vmfs -n "$T/lun0.img" "$T/new.img" >"$T/fsck" 2>&1 || fail "fsck: $(cat "$T/fsck")"
echo "fsck clean on the spanned and grown volume"

# SIGKILL in the middle of a span (writes to the new LUN are slowed
# down): the old volume stays valid and the span can be repeated
vmfsd_start A "$T/a" "$T/lun0.img" "$T/new.img"
bin/vmkfstools -Z "fault:write,delay,ms=150:$T/new2.img" "$T/lun0.img" 2>/dev/null &
zpid=$!
sleep 0.6
vmfsd_kill A
wait "$zpid" 2>/dev/null
# -y replays A's journal and clears its holds: exit 1 = problems fixed
bin/fsck.vmfs -y "$T/lun0.img" "$T/new.img" >"$T/fsck" 2>&1
[ $? -le 1 ] || fail "fsck -y after the kill: $(cat "$T/fsck")"
bin/fsck.vmfs -n "$T/lun0.img" "$T/new.img" >"$T/fsck" 2>&1 || fail "fsck after the kill: $(cat "$T/fsck")"
vmfsd_start A "$T/a" "$T/lun0.img" "$T/new.img"
[ "$(cap "$T/a")" = "$c2" ] || fail "capacity after the interrupted span: $(cap "$T/a") vs $c2"
[ "$(md5sum <"$T/a/big1")" = "$sum1" ] || fail "big1 changed"
bin/vmkfstools -Z "$T/new2.img" "$T/lun0.img" || fail "-Z again after the interrupted one"
[ "$(cap "$T/a")" -gt "$c2" ] || fail "no capacity from the repeated span"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" "$T/new.img" "$T/new2.img" >"$T/fsck" 2>&1 || fail "final fsck: $(cat "$T/fsck")"
echo "killed mid-span: old volume valid (fsck clean), span repeated: fsck clean"
