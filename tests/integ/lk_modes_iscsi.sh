#!/bin/bash
# Lock manager across processes on a tgtd iSCSI LUN (reservation method):
# read-only shared and multi-writer modes.
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
. tests/lib/lk.sh
tgt_require
tgt_start "$T"
at_exit tgt_stop
URL=$(tgt_add_lun "$T" lkmodes 64M) || fail "tgt_add_lun"
lk_modes_scenario "$URL"
