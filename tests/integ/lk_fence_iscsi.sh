#!/bin/bash
# Lock manager on a tgtd iSCSI LUN (reservation method): a host whose
# heartbeat I/O stalls fences itself before another host breaks its lock,
# and writes nothing after that.
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
. tests/lib/lk.sh
tgt_require
tgt_start "$T"
at_exit tgt_stop
URL=$(tgt_add_lun "$T" lkf 64M) || fail "tgt_add_lun"
lk_format "$URL" 2
# With reservations every compare-and-write starts with RESERVE(6): after
# its first 30 (join, lock, some beats) the stalled host's hang before
# reaching the target, so it holds no reservation while stuck.
"$LKH" hold "fault:reserve,hang,after=30:$URL" stalled excl 0 >"$T/a.log" 2>&1 &
A=$!
at_exit "kill_all $A"
wait_for "$T/a.log" HOLDING 20
"$LKH" grab "$URL" taker excl 20000 1000 0 >"$T/b.log" 2>&1 || fail "taker: $(tail -n 5 "$T/b.log")"
t_fenced=$(first_time " FENCED" "$T/a.log")
t_recover=$(first_time " RECOVER stalled " "$T/b.log")
[ -n "$t_fenced" ] || fail "stalled host never fenced: $(cat "$T/a.log")"
[ -n "$t_recover" ] || fail "taker did not recover the stalled host: $(cat "$T/b.log")"
echo "fenced $(( (t_recover - t_fenced) / 1000000 )) ms before the taker broke in"
[ "$t_fenced" -lt "$t_recover" ] || fail "fenced after the lock was broken"
grep -q "method=reservation" "$T/a.log" || fail "expected the reservation method"
! grep -q "WRITE-AFTER-REFUSED" "$T/a.log" || fail "stalled host wrote after fencing"
! grep -q VIOLATION "$T/b.log" || fail "$(grep VIOLATION "$T/b.log")"
exit 0
