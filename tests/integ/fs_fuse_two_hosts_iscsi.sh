#!/bin/bash
# The two-host FUSE scenario (tests/lib/fs_two_hosts.sh) on a volume
# spanning three iSCSI LUNs served by tgtd: device layer over libiscsi,
# locks by SCSI reservations (tgtd has no COMPARE AND WRITE).
set -u
. tests/lib/common.sh
. tests/lib/tgt.sh
. tests/lib/vmfsd.sh
. tests/lib/fs_two_hosts.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
tgt_require
tgt_start "$T"
at_exit tgt_stop
U0=$(tgt_add_lun "$T" fs0 1G) || fail "tgt_add_lun"
U1=$(tgt_add_lun "$T" fs1 1G) || fail "tgt_add_lun"
U2=$(tgt_add_lun "$T" fs2 1G thin) || fail "tgt_add_lun"
two_hosts_scenario "$U0" "$U1" "$U2"
grep -q "method reservation" "$T/vmfsd-A.log" ||
	fail "expected the reservation method: $(grep joined "$T/vmfsd-A.log")"
