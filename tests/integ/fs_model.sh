#!/bin/bash
# Model-based test: long random sequences of namespace and data operations
# through vmfsd mounts, each step compared with an in-memory model
# (tests/integ/fs_model.py): first through one host, then through two
# hosts interleaved at random; fsck -n is clean afterwards.  A volume of
# two file LUNs.  VMFS_MODEL_SEED replays a run (the seed is printed);
# VMFS_MODEL_STEPS sets the length (default 1200 on one host, 800 on two).
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
. tests/lib/fs_model.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 2G "$T/lun0.img" "$T/lun1.img"
model_scenario "${VMFS_MODEL_STEPS:-1200}" "${VMFS_MODEL_STEPS:-800}" \
	"$T/lun0.img" "$T/lun1.img"
