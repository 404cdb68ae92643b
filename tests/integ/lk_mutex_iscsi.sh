#!/bin/bash
# Lock manager on a real iSCSI LUN (tgtd, no ATS: SCSI-2 reservations):
# mutual exclusion under random SIGKILLs, dead-host locks broken in time.
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
. tests/lib/lk.sh
tgt_require
tgt_start "$T"
at_exit tgt_stop
URL=$(tgt_add_lun "$T" lkm 64M) || fail "tgt_add_lun"
lk_mutex_scenario "$URL"
grep -q "method=reservation" "$T"/h1.log || fail "expected the reservation method: $(head -n 2 "$T/h1.log")"
