#!/bin/bash
# Two vmfsd hosts on one spanned volume of three file LUNs, through FUSE:
# what one host writes and fsyncs the other reads; names made on one are
# seen on the other; a file open read-write on one host cannot be removed
# on the other; fio verifies data; both leave their heartbeat slots free.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
. tests/lib/fs_two_hosts.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun0.img" "$T/lun1.img" "$T/lun2.img"
# three extents: a spanned volume through FUSE
two_hosts_scenario "$T/lun0.img" "$T/lun1.img" "$T/lun2.img"
