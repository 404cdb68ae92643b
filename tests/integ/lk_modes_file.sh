#!/bin/bash
# Lock manager across processes: read-only shared and multi-writer modes.
set -u
. tests/lib/common.sh
. tests/lib/lk.sh
LUN="$T/lun.img"
truncate -s 64M "$LUN"
lk_format "$LUN" 4
"$LKH" hold "$LUN" r1 shared 0 >"$T/r1.log" 2>&1 & R1=$!
"$LKH" hold "$LUN" r2 shared 0 >"$T/r2.log" 2>&1 & R2=$!
"$LKH" hold "$LUN" w1 mw 1 >"$T/w1.log" 2>&1 & W1=$!
at_exit "kill_all $R1 $R2 $W1"
wait_for "$T/r1.log" HOLDING 20
wait_for "$T/r2.log" HOLDING 20
wait_for "$T/w1.log" HOLDING 20
# readers share; a writer is refused while they read
"$LKH" grab "$LUN" x excl 300 0 0 >"$T/x1.log" 2>&1; rc=$?
[ $rc -eq 4 ] || fail "exclusive over two readers: exit $rc $(cat "$T/x1.log")"
"$LKH" grab "$LUN" x mw 300 0 0 >"$T/x2.log" 2>&1; rc=$?
[ $rc -eq 4 ] || fail "multi-writer over readers: exit $rc"
"$LKH" grab "$LUN" r3 shared 300 50 0 >"$T/x3.log" 2>&1 || fail "third reader refused"
# multi-writer: another writer joins; readers and exclusive are refused
"$LKH" grab "$LUN" w2 mw 300 50 1 >"$T/x4.log" 2>&1 || fail "second multi-writer refused"
"$LKH" grab "$LUN" x shared 300 0 1 >"$T/x5.log" 2>&1; rc=$?
[ $rc -eq 4 ] || fail "reader over multi-writer: exit $rc"
# readers leave (SIGTERM: release and leave): now exclusive works
kill -TERM $R1 $R2
wait $R1 $R2
"$LKH" grab "$LUN" x excl 2000 50 0 >"$T/x6.log" 2>&1 || fail "exclusive after readers left: $(cat "$T/x6.log")"
grep -q "REL 0 success" "$T/r1.log" || fail "reader did not release"
exit 0
