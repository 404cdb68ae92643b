#!/bin/bash
# The file system crash test (fs_crash_file.sh) on tgtd iSCSI LUNs: SIGKILL
# mid-stream and inside a transaction, with and without a volatile write
# cache; the survivor recovers by journal replay; fsck clean.
FS_CRASH_LUNS=iscsi exec tests/integ/fs_crash_file.sh
