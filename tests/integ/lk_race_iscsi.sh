#!/bin/bash
# Lock manager on a real iSCSI LUN (tgtd, reservations): hosts race to break
# a dead host's locks; it is recovered exactly once.
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
. tests/lib/lk.sh
tgt_require
tgt_start "$T"
at_exit tgt_stop
URL=$(tgt_add_lun "$T" lkr 64M) || fail "tgt_add_lun"
lk_race_scenario "$URL"
