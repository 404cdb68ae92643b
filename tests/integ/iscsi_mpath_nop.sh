#!/bin/bash
# Multipath over real iSCSI when the target stops answering: the links stay
# up but every packet on one of them is dropped (nftables in the test's
# namespace), so no reset ever arrives and an idle connection looks fine
# to TCP.  One verified stream on "multi:URL1|URL2", fixed policy, default
# NOP-Out keepalive (every 5 s, 5 s to answer), path checker period 60 s
# so that nothing but the keepalive can notice an idle path dying:
#  1. link 2 (the idle standby path) drops everything: the path is declared
#     dead within interval + timeout (10 s, plus 1 s of slack), by the
#     NOP-Out timeout; once traffic passes again it reconnects (fresh
#     login) and the checker, run at once on the reconnect, returns it;
#  2. link 1 (the path carrying the I/O) drops everything for 8 s: the I/O
#     fails over within 6 s, path 0 reconnects and is back afterwards
#     (fixed fails back to it).
# Zero I/O errors and every read verified throughout; detection and
# return times are printed.
. tests/lib/mpath.sh
command -v nft >/dev/null 2>&1 || { echo "SKIP: no nft (package nftables)"; exit 77; }

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# Wait up to $2 ms for a line matching $1 in the stream's output.
wait_line() {
	local t0 i
	t0=$(date +%s%N)
	while [ "$(ms_since "$t0")" -lt "$2" ]; do
		grep -q "$1" "$dir/out" && return 0
		kill -0 "$hpid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
mpath_setup nop
spec="multi:$(tgt_url "$TGT_ADDR1" nop)|$(tgt_url "$TGT_ADDR2" nop)"

ip netns exec "$TGT_NS" "$H" "$spec" 38 check=60000 >"$dir/out" 2>&1 &
hpid=$!
sleep 3

echo "--- 1. link 2 (idle standby path) drops every packet"
tgt_path_drop 2 || fail "nft could not drop link 2"
t0=$(date +%s%N)
wait_line "path 1 .* dead" 11000 || fail "idle path 1 not declared dead within 11 s"
detect=$(ms_since "$t0")
echo "idle path detected dead after $detect ms (bound: 5000 + 5000 ms)"
grep -q "$TGT_ADDR2.*no answer to a NOP-Out" "$dir/out" ||
	fail "path 1 was not declared dead by the NOP-Out timeout"
sleep 1
tgt_path_pass 2 || fail "nft could not stop dropping"
t0=$(date +%s%N)
wait_line "path 1 .* is back" 10000 || fail "path 1 did not come back within 10 s"
echo "path 1 back $(ms_since "$t0") ms after traffic passed again"
grep -q "$TGT_ADDR2.*reconnected after" "$dir/out" || fail "path 1 did not log in again"

echo "--- 2. link 1 (the path carrying the I/O) drops every packet for 8 s"
sleep 1
tgt_path_drop 1 || fail "nft could not drop link 1"
t0=$(date +%s%N)
wait_line "path 0 .* dead" 11000 || fail "path 0 not declared dead within 11 s"
echo "active path detected dead after $(ms_since "$t0") ms"
sleep $(( 8 - $(ms_since "$t0") / 1000 ))
tgt_path_pass 1 || fail "nft could not stop dropping"
t0=$(date +%s%N)
wait_line "path 0 .* is back" 10000 || fail "path 0 did not come back within 10 s"
echo "path 0 back $(ms_since "$t0") ms after traffic passed again"

wait "$hpid"; rc=$?
hpid=
cat "$dir/out"
[ $rc -eq 0 ] || fail "stream exit $rc"
[ "$(field errors)" = 0 ] || fail "I/O errors"
[ "$(field mismatches)" = 0 ] || fail "data mismatches"
lat=$(field max_latency_ms)
echo "failover time (longest I/O): ${lat} ms; idle path detection ${detect} ms"
[ "$lat" -le 6000 ] || fail "failover took ${lat} ms (> 6 s)"
grep -q "^result.*paths=active,standby" "$dir/out" || fail "no failback to path 0"
echo "PASS"
