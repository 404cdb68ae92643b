#!/bin/bash
# iSCSI path backend against a private tgtd: identity and capabilities as
# tgt offers them (thin_provisioning=1: UNMAP; no COMPARE AND WRITE),
# scatter-gather I/O with many requests in flight, FUA, flush, discard,
# SCSI-2 and persistent reservations between two I_T nexuses; the same
# again with commands split at a small transfer limit and with discard by
# WRITE SAME; a thick LUN without discard; distinct LUN ids; login errors.
set -u
. tests/lib/tgt.sh
tgt_require
B=${VMFS_BUILD:-build/default}
H=$B/tests/helpers/mp_iscsi_check
[ -x "$H" ] || { echo "FAIL: $H not built (run make)"; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/iscsi_basic.XXXXXX") || exit 1
cleanup() { tgt_stop; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

tgt_start "$dir" || fail "tgtd did not start"
url=$(tgt_add_lun "$dir" thin 64M thin) || fail "tgt_add_lun thin"
thick=$(tgt_add_lun "$dir" thick 16M) || fail "tgt_add_lun thick"
echo "tgtd pid $TGT_PID, control port $TGT_CTL; $url"

echo "--- basic"
"$H" "$url" basic $((64 << 20)) || fail "basic checks"

echo "--- basic, every command limited to 16 blocks (split requests)"
MP_ISCSI_TEST_LIMIT=16 "$H" "$url" basic $((64 << 20)) ||
	fail "basic checks with split commands"

echo "--- basic, discard by WRITE SAME(16) with UNMAP instead of UNMAP"
MP_ISCSI_TEST_WRITE_SAME=1 "$H" "$url" basic $((64 << 20)) ||
	fail "basic checks with WRITE SAME discard"

echo "--- thick LUN"
out=$("$H" "$thick" info) || fail "info on the thick LUN: $out"
echo "$out"
grep -q "capacity=$((16 << 20)) " <<<"$out" || fail "thick LUN capacity"
grep -q " discard" <<<"$out" && fail "thick LUN offers discard"
grep -q " reserve6" <<<"$out" || fail "thick LUN lacks reserve6"
grep -q " ats" <<<"$out" && fail "ATS on tgt"
id1=$("$H" "$url" info | sed -n 's/^id=\([^ ]*\).*/\1/p')
id2=$(sed -n 's/^id=\([^ ]*\).*/\1/p' <<<"$out")
[ -n "$id1" ] && [ "$id1" != "$id2" ] || fail "LUN ids not distinct: '$id1' '$id2'"

echo "--- login errors"
bad="iscsi://127.0.0.1:$TGT_PORT/iqn.2026-11.org.vmfs.test:nosuch/1"
out=$("$H" "$bad" info 2>&1); rc=$?
echo "$out" | tail -n 1
[ $rc -eq 4 ] && grep -q "No such file" <<<"$out" || fail "unknown target: rc $rc"
out=$("$H" "iscsi://127.0.0.1:1/iqn.2026-11.org.vmfs.test:thin/1" info 2>&1); rc=$?
echo "$out" | tail -n 1
[ $rc -eq 4 ] && grep -q "refused" <<<"$out" || fail "closed port: rc $rc"
out=$("$H" "iscsi://127.0.0.1:$TGT_PORT" info 2>&1); rc=$?
echo "$out" | tail -n 1
[ $rc -eq 4 ] && grep -qi "spec" <<<"$out" || fail "URL without target: rc $rc"

echo "PASS"
