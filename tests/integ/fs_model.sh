#!/bin/bash
# Model-based test: long random sequences of namespace and data operations
# through vmfsd mounts, each step compared with an in-memory model
# (tests/integ/fs_model.py): first through one host, then through two
# hosts interleaved at random; fsck -n is clean afterwards.
# VMFS_MODEL_SEED replays a run (the seed is printed); VMFS_MODEL_STEPS
# sets the length (default 1200 on one host, 800 on two).
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
seed=${VMFS_MODEL_SEED:-$(( $(date +%s) % 100000 ))}
steps1=${VMFS_MODEL_STEPS:-1200}
steps2=${VMFS_MODEL_STEPS:-800}
truncate -s 2G "$T/lun0.img" "$T/lun1.img"
bin/mkfs.vmfs -L model -H 8 "$T/lun0.img" "$T/lun1.img" >/dev/null || fail "mkfs"

vmfsd_start A "$T/a" "$T/lun0.img" "$T/lun1.img"
mkdir "$T/a/one" "$T/a/two" || fail "mkdir"
python3 tests/integ/fs_model.py "$seed" "$steps1" "$T/a/one" ||
	fail "one host (replay: VMFS_MODEL_SEED=$seed)"
vmfsd_start B "$T/b" "$T/lun1.img" "$T/lun0.img"
python3 tests/integ/fs_model.py "$((seed + 1))" "$steps2" "$T/a/two" "$T/b/two" ||
	fail "two hosts (replay: VMFS_MODEL_SEED=$seed)"
vmfsd_stop A
vmfsd_stop B
bin/fsck.vmfs -n "$T/lun0.img" "$T/lun1.img" >"$T/fsck.out" 2>&1 ||
	fail "fsck after the model runs: $(cat "$T/fsck.out")"
echo "fsck -n clean"
