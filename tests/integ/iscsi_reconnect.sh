#!/bin/bash
# I/O across a target restart: writes and verifying reads keep flowing while
# tgtd is killed and started again on the same port with the same LUN; the
# path reconnects and every I/O completes without error, with the right
# data.  Then the target dies for good: I/O fails with a transport error
# (or a timeout) shortly after the I/O timeout instead of hanging, and the
# LUN still closes.
set -u
. tests/lib/tgt.sh
tgt_require
B=${VMFS_BUILD:-build/default}
H=$B/tests/helpers/mp_iscsi_check
[ -x "$H" ] || { echo "FAIL: $H not built (run make)"; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/iscsi_reconnect.XXXXXX") || exit 1
hpid=
cleanup() {
	[ -n "$hpid" ] && kill -KILL "$hpid" 2>/dev/null
	tgt_stop
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$dir/out" ] && cat "$dir/out"; exit 1; }

tgt_start "$dir" || fail "tgtd did not start"
url=$(tgt_add_lun "$dir" rc 64M thin) || fail "tgt_add_lun"

echo "--- restart under I/O"
"$H" "$url" stream 10 10000 >"$dir/out" 2>&1 &
hpid=$!
sleep 3
tgt_kill
echo "tgtd killed"
sleep 1
tgt_revive || fail "tgtd did not come back"
echo "tgtd restarted"
wait "$hpid"; rc=$?
hpid=
cat "$dir/out"
[ $rc -eq 0 ] || fail "stream across the restart: exit $rc"
grep -q "connection lost" "$dir/out" || fail "the connection was never lost?"
grep -q "reconnected" "$dir/out" || fail "no reconnect reported"

echo "--- target gone for good (2 s I/O timeout)"
start=$(date +%s)
timeout -k 5 60 "$H" "$url" stream 8 2000 >"$dir/out" 2>&1 &
hpid=$!
sleep 2
tgt_kill
echo "tgtd killed"
wait "$hpid"; rc=$?
hpid=
cat "$dir/out"
elapsed=$(( $(date +%s) - start ))
[ $rc -eq 3 ] || fail "expected I/O errors (exit 3), got exit $rc"
grep "^error" "$dir/out" | grep -qv "transport failure\|timed out" &&
	fail "unexpected error kinds"
# 8 s of stream + 2 s timeout + slack; a hang would hit the 60 s limit.
[ "$elapsed" -le 20 ] || fail "took ${elapsed}s"
echo "PASS"
