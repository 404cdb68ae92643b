#!/bin/bash
# A mounted datastore on a multipath iSCSI device: vmfsd serves a volume on
# "multi:URL1|URL2" (one tgtd LUN, two portals, two veth links into a
# namespace) while fio writes with verification through FUSE; the link of
# the path in use goes down for 8 s and comes back.  fio must see no error
# and no mismatch; vmfsd's log shows the path dying and coming back.
# vmfsd and fio run in one "ip netns exec" (which has its own mount
# namespace, so the FUSE mount is visible only there).
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
command -v fio >/dev/null || { echo "SKIP: no fio"; exit 77; }
tgt_require
tgt_start "$T" || fail "tgtd did not start"
at_exit tgt_stop
U=$(tgt_add_lun "$T" ds 1G) || fail "tgt_add_lun"
tgt_paths_setup; r=$?
[ $r -eq 77 ] && exit 77
[ $r -eq 0 ] || fail "could not set up the namespace and portals"
spec="multi:$(tgt_url "$TGT_ADDR1" ds)|$(tgt_url "$TGT_ADDR2" ds)"
bin/mkfs.vmfs -L mpds "$U" >/dev/null || fail "mkfs"

cat >"$T/inside.sh" <<'INNER'
set -u
mkdir -p "$T/a" "$T/run"
export VMFSD_RUN_DIR=$T/run
bin/vmfsd --host A --mount "$T/a" "$spec" >"$T/vmfsd.log" 2>&1 &
vpid=$!
for i in $(seq 1 100); do
	mountpoint -q "$T/a" && grep -q "serving the volume" "$T/vmfsd.log" && break
	sleep 0.1
done
mountpoint -q "$T/a" || { echo "vmfsd did not mount"; kill -KILL $vpid; exit 10; }
touch "$T/started"
timeout 120 fio --name=v --filename="$T/a/fio.dat" --size=64M --rw=randwrite \
	--bs=64k --verify=crc32c --verify_backlog=16 --verify_state_save=0 \
	--direct=1 --ioengine=psync --time_based --runtime=22 \
	--output="$T/fio.out"
rc=$?
bin/vmfs-mpath --mount "$T/a" list >"$T/list" 2>&1
kill -TERM $vpid
wait $vpid
exit $rc
INNER
T=$T spec=$spec ip netns exec "$TGT_NS" bash "$T/inside.sh" &
ipid=$!
at_exit "kill -KILL $ipid 2>/dev/null; pkill -KILL -f 'vmfsd --host A --mount $T/a' 2>/dev/null"
for i in $(seq 1 100); do [ -e "$T/started" ] && break; sleep 0.1; done
[ -e "$T/started" ] || fail "vmfsd did not start: $(cat "$T/vmfsd.log")"
sleep 5
tgt_path_down 1
echo "link 1 down"
sleep 8
tgt_path_up 1
echo "link 1 up"
wait $ipid; rc=$?
grep -E "^mp:|path" "$T/vmfsd.log" | grep -v "COMPARE AND WRITE" | head -20
cat "$T/list"
grep -E "err=|READ:|WRITE:|verify" "$T/fio.out" | head -8
[ $rc -eq 0 ] || fail "fio through the datastore across the failover: exit $rc ($(tail -n 15 "$T/fio.out"))"
grep -q "err= 0" "$T/fio.out" || fail "fio reported errors"
grep -q "path 0 .* dead" "$T/vmfsd.log" || fail "path 0 was never declared dead"
grep -q "path 0 .* is back" "$T/vmfsd.log" || fail "path 0 never came back"
echo PASS
