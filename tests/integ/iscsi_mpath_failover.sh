#!/bin/bash
# Multipath over real iSCSI: one tgtd LUN behind two portals, reached over
# two veth links into a network namespace the test makes.  A verified
# write/read stream runs on "multi:URL1|URL2" with default settings while
# the link of the path in use goes down (packets dropped, no reset) and
# comes back: zero I/O errors, every read matches, the longest I/O (the
# failover time) is at most 6 s, and the path is active again afterwards.
# Then round robin over both links with one of them cut.  Last, a device
# opened with one path gets its second path added while I/O runs (and a
# path to another LUN refused by identity), then loses the first path.
# First, vmfs-mpath group sorts the four URLs (two LUNs x two portals)
# into two devices by identity.
. tests/lib/mpath.sh
[ -x bin/vmfs-mpath ] || { echo "FAIL: bin/vmfs-mpath not built (run make)"; exit 1; }
mpath_setup mp other
u1=$(tgt_url "$TGT_ADDR1" mp)
u2=$(tgt_url "$TGT_ADDR2" mp)
spec="multi:$u1|$u2"
run() { ip netns exec "$TGT_NS" "$H" "$spec" "$@"; }

echo "--- vmfs-mpath group over both portals of both LUNs"
o1=$(tgt_url "$TGT_ADDR1" other)
o2=$(tgt_url "$TGT_ADDR2" other)
ip netns exec "$TGT_NS" bin/vmfs-mpath group "$u1" "$o1" "$u2" "$o2" \
	>"$dir/out" 2>/dev/null || fail "vmfs-mpath group"
cat "$dir/out"
[ "$(wc -l <"$dir/out")" = 2 ] || fail "group: expected 2 devices"
grep -qF " 2 paths multi:$u1|$u2" "$dir/out" || fail "group: LUN mp"
grep -qF " 2 paths multi:$o1|$o2" "$dir/out" || fail "group: LUN other"
grep -q "^naa\." "$dir/out" || fail "group: no NAA identity"

echo "--- fixed policy, defaults: path 1 goes down for 8 s and comes back"
run 22 >"$dir/out" 2>&1 &
hpid=$!
sleep 4
tgt_path_down 1
echo "link 1 down at $(date +%T.%N)"
sleep 8
tgt_path_up 1
echo "link 1 up at $(date +%T.%N)"
wait "$hpid"; rc=$?
hpid=
cat "$dir/out"
[ $rc -eq 0 ] || fail "stream across the failover: exit $rc"
[ "$(field errors)" = 0 ] || fail "I/O errors"
[ "$(field mismatches)" = 0 ] || fail "data mismatches"
lat=$(field max_latency_ms)
echo "failover time (longest I/O): ${lat} ms"
[ "$lat" -le 6000 ] || fail "failover took ${lat} ms (> 6 s)"
grep -q "path 0 .* dead" "$dir/out" || fail "path 0 was never declared dead"
grep -q "path 0 .* is back" "$dir/out" || fail "path 0 never came back"
# fixed fails back: path 0 active, path 1 standby at the end
grep -q "^result.*paths=active,standby" "$dir/out" || fail "no failback"

echo "--- round robin (iops=1), link 2 cut for 6 s"
run 14 policy=rr,iops=1 check=1000 >"$dir/out" 2>&1 &
hpid=$!
sleep 3
tgt_path_down 2
sleep 6
tgt_path_up 2
wait "$hpid"; rc=$?
hpid=
cat "$dir/out"
[ $rc -eq 0 ] || fail "round robin across a cut: exit $rc"
[ "$(field mismatches)" = 0 ] || fail "data mismatches"
grep -q "^result.*paths=active,active" "$dir/out" || fail "link 2 not back"

echo "--- one path, the second added while I/O runs, then path 1 cut"
run0() { ip netns exec "$TGT_NS" "$H" "$@"; }
run0 "multi:$u1" 16 add="$(tgt_url "$TGT_ADDR2" other)" add="$u2" \
	>"$dir/out" 2>&1 &
hpid=$!
sleep 4
tgt_path_down 1
sleep 6
tgt_path_up 1
wait "$hpid"; rc=$?
hpid=
cat "$dir/out"
[ $rc -eq 0 ] || fail "stream with an added path: exit $rc"
grep -q "path add failed: path leads to a different LUN" "$dir/out" ||
	fail "a path to another LUN was not refused"
grep -q "^path add: 1$" "$dir/out" || fail "the second path was not added"
[ "$(field errors)" = 0 ] || fail "I/O errors"
echo "PASS"
