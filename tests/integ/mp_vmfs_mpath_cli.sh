#!/bin/bash
# vmfs-mpath through vmfsd's control socket: a datastore on a multipath
# device (two paths to one LUN file), list, set-policy online, disable and
# enable a path while files are written through FUSE, refusals with a
# clear message.  First, without a daemon, vmfs-mpath group sorts specs
# into devices by LUN identity.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
[ -x bin/vmfs-mpath ] || fail "bin/vmfs-mpath not built"
truncate -s 512M "$T/lun.img"
bin/mkfs.vmfs -L mp "$T/lun.img" >/dev/null || fail "mkfs"
spec="multi:$T/lun.img|file:$T/lun.img"

truncate -s 64M "$T/other.img"
bin/vmfs-mpath group "$T/lun.img" "$T/other.img" "file:$T/lun.img" >"$T/group" ||
	fail "group: $(cat "$T/group")"
cat "$T/group"
[ "$(wc -l <"$T/group")" = 2 ] || fail "group: expected 2 devices"
grep -qE "^file\.[^ ]+ 2 paths $spec\$" "$T/group" || fail "group: lun.img not one device of 2 paths"
grep -qE "^file\.[^ ]+ 1 path multi:$T/other.img\$" "$T/group" || fail "group: other.img"
bin/vmfs-mpath group "$T/nosuch.img" 2>"$T/err" && fail "group of a missing file"
grep -q "No such file" "$T/err" || fail "group message: $(cat "$T/err")"
vmfsd_start A "$T/a" "$spec"
M="bin/vmfs-mpath --mount $T/a"

$M list >"$T/list" || fail "list: $(cat "$T/list")"
cat "$T/list"
dev=$(head -1 "$T/list")
case $dev in file.*) ;; *) fail "device identity '$dev'" ;; esac
grep -q "policy: fixed,pref=0" "$T/list" || fail "default policy"
grep -qE "path 0 active +\\* $T/lun.img" "$T/list" || fail "path 0"
grep -qE "path 1 standby +file:$T/lun.img" "$T/list" || fail "path 1"

$M set-policy "$dev" rr,iops=1 || fail "set-policy"
dd if=/dev/urandom of="$T/a/f1" bs=64k count=64 status=none || fail "write f1"
sync "$T/a/f1"
$M list >"$T/list"
grep -q "policy: rr,iops=1" "$T/list" || fail "policy not changed"
grep -q "path 1 active" "$T/list" || fail "rr: path 1 not active"
grep "path 1 active" "$T/list" | grep -q "ios 0 " && fail "rr never used path 1"

$M path disable "$dev#0" || fail "path disable"
$M list >"$T/list"
grep -q "path 0 disabled" "$T/list" || fail "path 0 not disabled"
before=$(sed -n 's/.*path 0 disabled.* ios \([0-9]*\) .*/\1/p' "$T/list")
dd if=/dev/urandom of="$T/a/f2" bs=64k count=64 status=none || fail "write f2"
sync "$T/a/f2"
cmp "$T/a/f2" "$T/a/f2" || fail "read f2"
$M list >"$T/list"
after=$(sed -n 's/.*path 0 disabled.* ios \([0-9]*\) .*/\1/p' "$T/list")
[ "$before" = "$after" ] || fail "a disabled path took I/O ($before -> $after)"
$M path enable "$T/lun.img" || fail "path enable by spec"
sleep 0.5
$M list >"$T/list"
cat "$T/list"
grep -q "path 0 active" "$T/list" || fail "path 0 not back"

$M set-policy "$dev" warp 2>"$T/err" && fail "bad policy accepted"
grep -q "bad policy 'warp'" "$T/err" || fail "message: $(cat "$T/err")"
$M path disable "$dev#7" 2>"$T/err" && fail "path 7 accepted"
grep -q "No such file\|no path" "$T/err" || fail "message: $(cat "$T/err")"
$M set-policy nosuchdev mru 2>"$T/err" && fail "unknown device accepted"
grep -q "no device 'nosuchdev'" "$T/err" || fail "message: $(cat "$T/err")"
$M --json list | grep -qE '"policy": ?"rr,iops=1"' || fail "--json"
vmfsd_stop A
echo PASS
