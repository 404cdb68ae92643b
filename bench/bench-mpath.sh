#!/bin/sh
# bench-mpath.sh - multipath: failover time, round robin over two portals
# against one, and throughput under a QUEUE FULL storm with adaptive queue
# depth against a fixed depth.
#
#  failover   tgtd serves one LUN on two portals, reached over two veth links
#             into a network namespace made here; a verified stream
#             (tests/helpers/mp_mpath_stream, 16 x 64 KiB) runs on
#             "multi:URL1|URL2" with every default (fixed policy, 4 s path
#             command timeout, 5 s checker); the link of the path in use
#             goes down at 3 s (packets dropped, no reset).  Failover time =
#             the longest any I/O took (the I/O stuck on the dead link).
#             Target: at most 6 s.  Then the same with the link left up
#             but every packet on it dropped (nftables in the namespace):
#             the target just stops answering.
#  rr         64 KiB reads at queue depth 32 for BENCH_RUNTIME s: one portal
#             (plain URL) against "multi:" over both with rr,iops=1 and with
#             the default rr (iops=1000).  Both links end in the same tgtd
#             on the same two cores, so this shows the policy's overhead
#             and whether a second TCP connection helps, not a second HBA.
#             Then again with each link limited to 800 Mbit/s by a tc tbf
#             qdisc on its host end (and lqd too): there a second path
#             should double throughput.
#  qfull      a fault-injection device (fault:bw=400m;qslots=8;qfull_us=C
#             over a file): 8 queue slots, 400 MB/s, and each command it
#             turns away with TASK SET FULL costs it C us (50, and 0: a
#             target whose rejects are free).  64 x 64 KiB reads in flight;
#             adaptive depth (the default: sample 32, threshold 4) against a
#             fixed depth of 64 that requeues QUEUE FULL and never adapts
#             (qfull_sample = 10^9).  Target: adaptive >= 2x.  The cost of a
#             reject is a model (the fault backend's), stated as such.
#
# Each measurement runs BENCH_REPS times; the tables report medians.
# Run through bench/run-bench.sh (BENCH_ONLY=mpath for this section alone).
set -eu

: "${BENCH_ROOT:?run through bench/run-bench.sh}"
REPS=${BENCH_REPS:-3}
RUNTIME=${BENCH_RUNTIME:-5}
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmfs-bench}
H=$BENCH_BUILD/tests/helpers/mp_mpath_stream
OUT=$BENCH_OUT/mpath
RESULTS=$BENCH_OUT/mpath-results.md

die() { echo "bench-mpath: $*" >&2; exit 1; }
[ -x "$H" ] || die "$H missing: run make first"
command -v tgtd >/dev/null || die "tgtd not installed (scripts/install-deps.sh)"
command -v nft >/dev/null || die "nft not installed (scripts/install-deps.sh)"
mkdir -p "$OUT" "$BENCH_DIR"
median() { printf "%.0f" "$($BENCH_TOOL median "$@")"; }
median1() { printf "%.1f" "$($BENCH_TOOL median "$@")"; }
field() { sed -n "s/^result.* $1=\([^ ]*\).*/\1/p" "$2"; }

# tgt.sh is bash; this script is sh, so the iSCSI part runs in bash.
bash -c '
set -eu
cd "$BENCH_ROOT"
. tests/lib/tgt.sh
OUT=$1 H=$2 REPS=$3 RUNTIME=$4
dir=$(mktemp -d /tmp/bench-mpath.XXXXXX)
trap "rc=\$?; set +e; tgt_stop; rm -rf $dir; exit \$rc" EXIT
tgt_start "$dir" >/dev/null
tgt_add_lun "$dir" bench 256M >/dev/null
tgt_paths_setup
u1=$(tgt_url "$TGT_ADDR1" bench)
u2=$(tgt_url "$TGT_ADDR2" bench)
run() { ip netns exec "$TGT_NS" "$H" "$@"; }
for rep in $(seq 1 "$REPS"); do
	run "multi:$u1|$u2" 12 >"$OUT/failover-$rep.out" 2>&1 &
	pid=$!
	sleep 3
	tgt_path_down 1
	wait $pid || true
	tgt_path_up 1
	sleep 1
	run "multi:$u1|$u2" 12 >"$OUT/dropfo-$rep.out" 2>&1 &
	pid=$!
	sleep 3
	tgt_path_drop 1
	wait $pid || true
	tgt_path_pass 1
	sleep 1
	run "$u1" "$RUNTIME" mode=read qd=32 >"$OUT/rr-one-$rep.out" 2>&1
	run "multi:$u1|$u2" "$RUNTIME" mode=read qd=32 policy=rr,iops=1 \
		>"$OUT/rr-two1-$rep.out" 2>&1
	run "multi:$u1|$u2" "$RUNTIME" mode=read qd=32 policy=rr \
		>"$OUT/rr-two1000-$rep.out" 2>&1
	# the same with each link limited to 800 Mbit/s (target to initiator)
	for ifc in $TGT_IF1 $TGT_IF2; do
		tc qdisc add dev $ifc root tbf rate 800mbit burst 1mb latency 100ms
	done
	run "$u1" "$RUNTIME" mode=read qd=32 >"$OUT/tbf-one-$rep.out" 2>&1
	run "multi:$u1|$u2" "$RUNTIME" mode=read qd=32 policy=rr,iops=1 \
		>"$OUT/tbf-two1-$rep.out" 2>&1
	run "multi:$u1|$u2" "$RUNTIME" mode=read qd=32 policy=rr \
		>"$OUT/tbf-two1000-$rep.out" 2>&1
	run "multi:$u1|$u2" "$RUNTIME" mode=read qd=32 policy=lqd \
		>"$OUT/tbf-lqd-$rep.out" 2>&1
	for ifc in $TGT_IF1 $TGT_IF2; do tc qdisc del dev $ifc root; done
done
' bench-mpath "$OUT" "$H" "$REPS" "$RUNTIME" || die "iSCSI part failed (see $OUT)"

FILE=$BENCH_DIR/mpath-qfull.img
[ -e "$FILE" ] || { truncate -s 256M "$FILE"; dd if=/dev/urandom of="$FILE" bs=1M count=256 conv=notrunc status=none; }
for cost in 50 0; do
	FSPEC="fault:bw=400m;qslots=8;qfull_us=$cost:$FILE"
	for rep in $(seq 1 "$REPS"); do
		"$H" "$FSPEC" "$RUNTIME" mode=read qd=64 depth=64 \
			>"$OUT/qfull$cost-adaptive-$rep.out" 2>&1
		"$H" "$FSPEC" "$RUNTIME" mode=read qd=64 depth=64 \
			qsample=1000000000 >"$OUT/qfull$cost-fixed-$rep.out" 2>&1
	done
done

col() { # kind field
	for rep in $(seq 1 "$REPS"); do field "$2" "$OUT/$1-$rep.out"; done
}
fo=$(median $(col failover max_latency_ms))
fo_err=$(col failover errors | sort -u | tr '\n' ' ')
dfo=$(median $(col dropfo max_latency_ms))
dfo_err=$(col dropfo errors | sort -u | tr '\n' ' ')
one=$(median1 $(col rr-one mbps))
two1=$(median1 $(col rr-two1 mbps))
two1000=$(median1 $(col rr-two1000 mbps))
tone=$(median1 $(col tbf-one mbps))
ttwo1=$(median1 $(col tbf-two1 mbps))
ttwo1000=$(median1 $(col tbf-two1000 mbps))
tlqd=$(median1 $(col tbf-lqd mbps))
ad=$(median1 $(col qfull50-adaptive mbps))
fx=$(median1 $(col qfull50-fixed mbps))
ratio=$(python3 -c "print('%.2f' % ($ad / $fx))")
adl=$(median $(col qfull50-adaptive max_latency_ms))
fxl=$(median $(col qfull50-fixed max_latency_ms))
ad0=$(median1 $(col qfull0-adaptive mbps))
fx0=$(median1 $(col qfull0-fixed mbps))
ratio0=$(python3 -c "print('%.2f' % ($ad0 / $fx0))")
adl0=$(median $(col qfull0-adaptive max_latency_ms))
fxl0=$(median $(col qfull0-fixed max_latency_ms))

{
	echo "Command: \`$BENCH_CMD\` ($(date -u +%Y-%m-%d), $(nproc) cores; medians of $REPS)."
	echo
	echo "| measurement | result | target |"
	echo "|---|---|---|"
	echo "| failover time, defaults (longest I/O across a link cut) | ${fo} ms (errors: ${fo_err}) | <= 6000 ms, 0 errors |"
	echo "| failover time, traffic dropped (link up, nftables drop) | ${dfo} ms (errors: ${dfo_err}) | <= 6000 ms, 0 errors |"
	echo "| 64 KiB reads QD32, one portal | ${one} MB/s | |"
	echo "| same, two portals rr,iops=1 | ${two1} MB/s | |"
	echo "| same, two portals rr (iops=1000) | ${two1000} MB/s | |"
	echo "| links limited to 800 Mbit/s each (tc tbf): one portal | ${tone} MB/s | |"
	echo "| same, two portals rr,iops=1 | ${ttwo1} MB/s | ~2x one portal |"
	echo "| same, two portals rr (iops=1000) | ${ttwo1000} MB/s | |"
	echo "| same, two portals lqd | ${tlqd} MB/s | |"
	echo "| QUEUE FULL storm (rejects cost 50 us), adaptive depth | ${ad} MB/s, longest I/O ${adl} ms | |"
	echo "| same, fixed depth 64 | ${fx} MB/s, longest I/O ${fxl} ms | |"
	echo "| adaptive / fixed | ${ratio}x | >= 2x |"
	echo "| QUEUE FULL storm (rejects free), adaptive depth | ${ad0} MB/s, longest I/O ${adl0} ms | |"
	echo "| same, fixed depth 64 | ${fx0} MB/s, longest I/O ${fxl0} ms | |"
	echo "| adaptive / fixed | ${ratio0}x | |"
	echo
	echo "Per-run outputs: \`build/bench/mpath/\`.  Failover runs (ms): $(col failover max_latency_ms | tr '\n' ' ')."
} >"$RESULTS"
cat "$RESULTS"
$BENCH_TOOL update-doc "$BENCH_DOC" "Multipath" "$RESULTS"
