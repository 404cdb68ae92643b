#!/bin/bash
# The model-based test (tests/lib/fs_model.sh) on a volume of two tgtd
# iSCSI LUNs (fewer steps: every step is a few network round trips more).
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
. tests/lib/vmfsd.sh
. tests/lib/fs_model.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
tgt_require
tgt_start "$T"
at_exit tgt_stop
U0=$(tgt_add_lun "$T" m0 2G) || fail "tgt_add_lun"
U1=$(tgt_add_lun "$T" m1 2G) || fail "tgt_add_lun"
model_scenario "${VMFS_MODEL_STEPS:-500}" "${VMFS_MODEL_STEPS:-400}" "$U0" "$U1"
