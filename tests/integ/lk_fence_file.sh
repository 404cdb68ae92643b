#!/bin/bash
# Lock manager: a host whose heartbeat I/O stalls fences itself before any
# other host breaks its lock, and writes nothing after that.
set -u
. tests/lib/common.sh
. tests/lib/lk.sh
LUN="$T/lun.img"
truncate -s 64M "$LUN"
lk_format "$LUN" 2
# After its 4th compare-and-write on the slot area (join, then beats),
# every heartbeat of host "stalled" hangs.
slots_len=$((16 * 512))
"$LKH" hold "fault:caw,hang,off=512,len=$slots_len,after=4:$LUN" stalled excl 0 >"$T/a.log" 2>&1 &
A=$!
at_exit "kill_all $A"
wait_for "$T/a.log" HOLDING 20
"$LKH" grab "$LUN" taker excl 20000 1000 0 >"$T/b.log" 2>&1 || fail "taker: $(tail -n 5 "$T/b.log")"
t_fenced=$(first_time " FENCED" "$T/a.log")
t_recover=$(first_time " RECOVER stalled " "$T/b.log")
t_acq=$(first_time " ACQ 0" "$T/b.log")
[ -n "$t_fenced" ] || fail "stalled host never fenced: $(cat "$T/a.log")"
[ -n "$t_recover" ] || fail "taker did not recover the stalled host: $(cat "$T/b.log")"
echo "fenced $(( (t_recover - t_fenced) / 1000000 )) ms before the taker broke in"
[ "$t_fenced" -lt "$t_recover" ] || fail "fenced after the lock was broken"
[ "$t_fenced" -lt "$t_acq" ] || fail "fenced after the lock was taken"
grep -q "WRITE-REFUSED" "$T/a.log" || fail "stalled host was never refused: $(cat "$T/a.log")"
! grep -q "WRITE-AFTER-REFUSED" "$T/a.log" || fail "stalled host wrote after fencing"
# the taker held the witness for a second without interference
! grep -q VIOLATION "$T/b.log" || fail "$(grep VIOLATION "$T/b.log")"
exit 0
