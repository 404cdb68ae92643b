#!/bin/bash
# Multipath over real iSCSI, the bad cases: all paths down (APD) and
# permanent device loss (PDL).
#  1. both links go down for 10 s (longer than the 4 s command timeout, so
#     both paths die) with a 20 s APD timeout: I/O waits for a path and
#     completes once the links return - no errors, data verified;
#  2. both links go down for good with a 3 s APD timeout: I/O fails with
#     EIO (only EIO) about 3 s after the last path died, and the stream
#     ends instead of hanging;
#  3. the LUN is deleted on the target, which then answers LOGICAL UNIT
#     NOT SUPPORTED (05/25/00), with a 60 s APD timeout: I/O fails at once
#     with permanent device loss, without waiting for the APD timeout.
#     (tgt refuses to delete a LUN with commands queued, so that phase
#     streams at queue depth 2 and the delete is retried until it lands
#     between two commands.)
. tests/lib/mpath.sh
mpath_setup apd
spec="multi:$(tgt_url "$TGT_ADDR1" apd)|$(tgt_url "$TGT_ADDR2" apd)"
run() { ip netns exec "$TGT_NS" "$H" "$spec" "$@"; }

echo "--- 1. all paths down for 10 s, APD timeout 20 s: I/O waits, no errors"
run 20 apd=20000 check=1000 >"$dir/out" 2>&1 &
hpid=$!
sleep 3
tgt_path_down 1; tgt_path_down 2
sleep 10
tgt_path_up 1; tgt_path_up 2
wait "$hpid"; rc=$?
hpid=
cat "$dir/out"
[ $rc -eq 0 ] || fail "I/O across a short APD: exit $rc"
grep -q "all paths down" "$dir/out" || fail "APD was never declared"
[ "$(field mismatches)" = 0 ] || fail "data mismatches"

echo "--- 2. all paths down for good, APD timeout 3 s: EIO, no hang"
start=$(date +%s)
timeout -k 5 60 ip netns exec "$TGT_NS" "$H" "$spec" 10 apd=3000 check=500 \
	>"$dir/out" 2>&1 &
hpid=$!
sleep 3
tgt_path_down 1; tgt_path_down 2
wait "$hpid"; rc=$?
hpid=
elapsed=$(( $(date +%s) - start ))
cat "$dir/out"
tgt_path_up 1; tgt_path_up 2
[ $rc -eq 3 ] || fail "expected I/O errors (exit 3), got $rc"
grep "^error" "$dir/out" | grep -qv "Input/output error" &&
	fail "errors other than EIO"
[ "$(field mismatches)" = 0 ] || fail "data mismatches"
# 10 s of stream, then the drain: the stuck I/O needs the 4 s command
# timeout + 3 s APD at most
[ "$elapsed" -le 25 ] || fail "took ${elapsed}s"

echo "--- 3. the LUN is deleted (PDL), APD timeout 60 s: fails at once"
start=$(date +%s)
timeout -k 5 60 ip netns exec "$TGT_NS" "$H" "$spec" 6 apd=60000 qd=2 \
	>"$dir/out" 2>&1 &
hpid=$!
sleep 2
deleted=
for i in $(seq 1 500); do
	if tgt_adm --op delete --mode logicalunit --tid 1 --lun 1 2>/dev/null; then
		deleted=$i
		break
	fi
done
[ -n "$deleted" ] || fail "tgtadm could not delete the LUN"
echo "LUN deleted (attempt $deleted)"
wait "$hpid"; rc=$?
hpid=
elapsed=$(( $(date +%s) - start ))
cat "$dir/out"
[ $rc -eq 3 ] || fail "expected I/O errors (exit 3), got $rc"
grep "^error" "$dir/out" | grep -qv "permanent device loss" &&
	fail "errors other than PDL"
grep -q "permanent device loss on every path" "$dir/out" ||
	fail "the device was not declared lost"
[ "$elapsed" -le 15 ] || fail "took ${elapsed}s: PDL waited"
echo "PASS"
