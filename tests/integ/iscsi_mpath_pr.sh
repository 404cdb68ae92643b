#!/bin/bash
# Persistent reservations on a multipath device over real iSCSI (tgtd, one
# LUN, two portals, two veth links into a namespace).  The stream helper
# registers a key through mp_lun_pr (which registers it on every path,
# i.e. on both I_T nexuses) and reserves Write Exclusive - Registrants Only,
# then runs a verified write/read stream:
#  1. READ KEYS shows our key twice (one registration per path); a rival
#     initiator (single path, not registered) is refused with RESERVATION
#     CONFLICT; link 1 (the path in use) goes down for 7 s: the stream fails
#     over to path 1 and keeps writing under the reservation with zero
#     errors; path 0 returns (registered again first); release and
#     unregister leave no key, and the rival can write again;
#  2. the same, but link 1 stays down to the end: the release finds the
#     holder path dead, moves the reservation to path 1 with a PREEMPT of
#     our own key, and releases it there; afterwards no key is left and the
#     rival writes;
#  3. Exclusive Access (the holder's nexus alone has access): link 1 (the
#     holder's path) goes down for 7 s; I/O waits while the device moves the
#     reservation to path 1 by itself (PREEMPT of our own key), then goes on
#     there with zero errors; the rival stays refused; release at the end.
. tests/lib/mpath.sh
L=bin/vmfs-lun
[ -x "$L" ] || { echo "FAIL: $L not built (run make)"; exit 1; }

prf() { sed -n "s/^pr $1: .* $2=\([^ ]*\).*/\1/p; s/^pr $1: $2=\([^ ]*\).*/\1/p" "$dir/out"; }
mpath_setup pr
spec="multi:$(tgt_url "$TGT_ADDR1" pr)|$(tgt_url "$TGT_ADDR2" pr)"
rival() { ip netns exec "$TGT_NS" "$L" write "$(tgt_url "$TGT_ADDR2" pr)" 33554432 4096 7; }

# A stream under a reservation of type $1 while link 1 (path 0, the one in
# use and the holder) is down for 7 s; the rival is refused before and
# during; then zero errors, the reservation still held at the end, nothing
# left after release and unregister, and the rival writes again.
reserved_stream_across_cut() {
	ip netns exec "$TGT_NS" "$H" "$spec" 16 pr=0x5ca1ab1e prtype="$1" \
		check=1000 >"$dir/out" 2>&1 &
	hpid=$!
	for i in $(seq 1 300); do grep -q "^pr reserved" "$dir/out" && break; sleep 0.1; done
	[ "$(prf reserved reserved)" = 1 ] || fail "not reserved: $(tail -5 "$dir/out")"
	[ "$(prf reserved type)" = "$1" ] || fail "not reserved with type $1"
	[ "$(prf reserved ours)" = 2 ] || fail "key not registered on both paths"
	rival >"$dir/rival" 2>&1 && fail "an unregistered initiator wrote under the reservation"
	grep -q "reservation conflict" "$dir/rival" || fail "rival: $(cat "$dir/rival")"
	sleep 2
	tgt_path_down 1
	echo "link 1 down"
	sleep 4
	rival >"$dir/rival" 2>&1 && fail "rival wrote while link 1 was down"
	sleep 3
	tgt_path_up 1
	echo "link 1 up"
	wait "$hpid"; rc=$?
	hpid=
	cat "$dir/out"
	[ $rc -eq 0 ] || fail "stream exit $rc"
	[ "$(field errors)" = 0 ] || fail "I/O errors under the reservation"
	[ "$(field mismatches)" = 0 ] || fail "data mismatches"
	[ "$(prf held reserved)" = 1 ] || fail "reservation lost"
	[ "$(prf released keys)" = 0 ] || fail "keys left after unregistering"
	[ "$(prf released reserved)" = 0 ] || fail "reservation left after release"
	rival >"$dir/rival" 2>&1 || fail "rival refused after the release: $(cat "$dir/rival")"
}

echo "--- 1. reservation held across a failover and a failback"
reserved_stream_across_cut 5
grep -q "path 0 .* dead" "$dir/out" || fail "path 0 never failed"
grep -q "path 0 registered with key 0x5ca1ab1e" "$dir/out" ||
	fail "path 0 came back without being registered"
[ "$(prf held ours)" -ge 2 ] || fail "not registered on both paths at the end"

echo "--- 2. release while the holder path is dead"
ip netns exec "$TGT_NS" "$H" "$spec" 10 pr=0x5ca1ab1e check=1000 >"$dir/out" 2>&1 &
hpid=$!
sleep 3
tgt_path_down 1
echo "link 1 down to the end"
wait "$hpid"; rc=$?
hpid=
cat "$dir/out"
tgt_path_up 1
[ $rc -eq 0 ] || fail "stream exit $rc"
[ "$(field errors)" = 0 ] || fail "I/O errors under the reservation"
grep -q "reservation moved from path 0 (dead) to path 1" "$dir/out" ||
	fail "the reservation was not moved off the dead path"
[ "$(prf released keys)" = 0 ] || fail "keys left after unregistering"
[ "$(prf released reserved)" = 0 ] || fail "reservation left after release"
rival >"$dir/rival" 2>&1 || fail "rival refused after the release: $(cat "$dir/rival")"

echo "--- 3. Exclusive Access: the holder path dies, the reservation moves"
reserved_stream_across_cut 3
grep -q "reservation moved to path 1" "$dir/out" || fail "the reservation did not move"
lat=$(field max_latency_ms)
echo "longest I/O across the move: $lat ms"
[ "$lat" -le 6000 ] || fail "I/O waited ${lat} ms for the move"
echo "PASS"
