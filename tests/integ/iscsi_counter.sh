#!/bin/bash
# Two processes with four threads each increment a counter in sector 0 of
# an iSCSI LUN, each increment under a SCSI-2 reservation (RESERVE, read,
# +1, write, RELEASE): the final count must be exact.
set -u
. tests/lib/tgt.sh
tgt_require
B=${VMFS_BUILD:-build/default}
C=$B/tests/helpers/mp_counter
[ -x "$C" ] || { echo "FAIL: $C not built (run make)"; exit 1; }
N=${ISCSI_COUNTER_ITERS:-250}
P=2 T=4

dir=$(mktemp -d "${TMPDIR:-/tmp}/iscsi_counter.XXXXXX") || exit 1
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	tgt_stop
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

tgt_start "$dir" || fail "tgtd did not start"
url=$(tgt_add_lun "$dir" counter 16M thin) || fail "tgt_add_lun"
"$C" "$url" init || fail "init"
for i in $(seq 1 $P); do
	"$C" "$url" reserve $T "$N" &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p" || fail "a counter process failed"
done
pids=()
got=$("$C" "$url" get) || fail "get"
want=$((P * T * N))
echo "counter: $got, expected $want"
[ "$got" = "$want" ] || fail "lost increments: $got != $want"
echo "PASS"
