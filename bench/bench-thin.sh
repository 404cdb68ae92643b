#!/bin/sh
# bench-thin.sh - virtual disks (thin/, vmkfstools) side by side.
#
# 1. First-write throughput, 1 MiB sequential, queue depth 4 (fio libaio,
#    --direct=1) over a whole new disk through a vmfsd mount: a thin disk
#    (allocates on first write), an eagerzeroedthick disk (allocated and
#    zeroed beforehand), and a raw file of the same size on the backing
#    file system.  Target: thin >= 0.7x eagerzeroedthick.
# 2. Clone of a thin disk of BENCH_THIN_CLONE_GB GiB holding 1 GiB of data:
#    `vmkfstools -i SRC DST -d thin` against `qemu-img convert -n` of the
#    same source into a new thin disk of the same datastore (both read and
#    write through the same volume).  Target: vmkfstools faster.
# Each measurement BENCH_REPS times on fresh disks; medians.
#
# Extra environment: BENCH_THIN_SIZE (first-write disk size, default 2g),
# BENCH_THIN_CLONE_GB (default 10).
set -eu

: "${BENCH_ROOT:?run through bench/run-bench.sh}"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmfs-bench}
REPS=${BENCH_REPS:-3}
SIZE=${BENCH_THIN_SIZE:-2g}
CLONE_GB=${BENCH_THIN_CLONE_GB:-10}
BIN=$BENCH_ROOT/bin
OUT=$BENCH_OUT/thin
RESULTS=$BENCH_OUT/thin-results.md
LUN=$BENCH_DIR/thin-lun.img
MNT=$BENCH_DIR/thin-mnt
export VMFSD_RUN_DIR=$BENCH_DIR/run

die() { echo "bench-thin: $*" >&2; exit 1; }
[ -e /dev/fuse ] || die "no /dev/fuse"
command -v fio >/dev/null || die "fio not installed (scripts/install-deps.sh)"
command -v qemu-img >/dev/null || die "qemu-img not installed (qemu-utils)"
mkdir -p "$BENCH_DIR" "$OUT" "$MNT"
fstype=$(findmnt -n -o FSTYPE --target "$BENCH_DIR" 2>/dev/null ||
	stat -f -c %T "$BENCH_DIR")

stop_host() {
	pkill -TERM -f "vmfsd --host bench-thin " 2>/dev/null || true
	for i in $(seq 1 100); do
		pgrep -f "vmfsd --host bench-thin " >/dev/null || break
		sleep 0.1
	done
	grep -qF " $MNT fuse" /proc/mounts && fusermount3 -uz "$MNT"
	return 0
}
trap stop_host EXIT
stop_host

need=$((CLONE_GB + 12))
avail=$(df -P -B1G "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
[ "$avail" -gt "$need" ] || die "needs $need GiB free in $BENCH_DIR"
rm -f "$LUN"
truncate -s "$((CLONE_GB + 8))G" "$LUN"
"$BIN/mkfs.vmfs" -f -L bench-thin -H 8 "$LUN" >/dev/null
"$BIN/vmfsd" --host bench-thin --mount "$MNT" --daemon "$LUN" 2>>"$OUT/vmfsd.log" ||
	die "vmfsd: $(tail -n 5 "$OUT/vmfsd.log")"

first_write() { # file -> MiB/s
	fio --name=fw --filename="$1" --rw=write --bs=1m --iodepth=4 \
		--ioengine=libaio --direct=1 --size="$SIZE" --output-format=json \
		--output="$OUT/fw.json" >/dev/null || die "fio $1"
	python3 -c 'import json,sys; print("%.1f" % (json.load(open(sys.argv[1]))["jobs"][0]["write"]["bw_bytes"] / 1048576))' "$OUT/fw.json"
}

thin="" eager="" raw=""
rep=1
while [ "$rep" -le "$REPS" ]; do
	"$BIN/vmkfstools" -c "$SIZE" -d thin "$MNT/t.vmdk"
	"$BIN/vmkfstools" -c "$SIZE" -d eagerzeroedthick "$MNT/e.vmdk"
	rm -f "$BENCH_DIR/thin-raw.img"
	truncate -s "$SIZE" "$BENCH_DIR/thin-raw.img"
	t=$(first_write "$MNT/t-flat.vmdk")
	e=$(first_write "$MNT/e-flat.vmdk")
	r=$(first_write "$BENCH_DIR/thin-raw.img")
	echo "  [$rep/$REPS] first write 1 MiB seq: thin $t MiB/s, eagerzeroedthick $e MiB/s, raw file $r MiB/s"
	thin="$thin $t" eager="$eager $e" raw="$raw $r"
	"$BIN/vmkfstools" -U "$MNT/t.vmdk"
	"$BIN/vmkfstools" -U "$MNT/e.vmdk"
	rm -f "$BENCH_DIR/thin-raw.img"
	rep=$((rep + 1))
done
mt=$($BENCH_TOOL median $thin)
me=$($BENCH_TOOL median $eager)
mr=$($BENCH_TOOL median $raw)
fw_ratio=$(python3 -c "print('%.2f' % ($mt / $me))")

# ---- clone --------------------------------------------------------------------
"$BIN/vmkfstools" -c "${CLONE_GB}g" -d thin "$MNT/src.vmdk"
# 1 GiB of data in 64 MiB pieces spread over the disk
i=0
while [ $i -lt 16 ]; do
	fio --name=fill --filename="$MNT/src-flat.vmdk" --rw=write --bs=1m \
		--direct=1 --ioengine=libaio --iodepth=4 --size=64m \
		--offset=$((i * CLONE_GB * 1024 / 16))m --output-format=terse >/dev/null
	i=$((i + 1))
done
now() { python3 -c 'import time; print("%.3f" % time.monotonic())'; }
ours="" qemu=""
rep=1
while [ "$rep" -le "$REPS" ]; do
	t0=$(now)
	"$BIN/vmkfstools" -i "$MNT/src.vmdk" "$MNT/c1.vmdk" -d thin 2>/dev/null
	t1=$(now)
	"$BIN/vmkfstools" -c "${CLONE_GB}g" -d thin "$MNT/c2.vmdk"
	t2=$(now)
	qemu-img convert -n -f vmdk -O vmdk "$MNT/src.vmdk" "$MNT/c2.vmdk"
	t3=$(now)
	qemu-img compare -q "$MNT/c1.vmdk" "$MNT/c2.vmdk" || die "clones differ"
	o=$(python3 -c "print('%.2f' % ($t1 - $t0))")
	q=$(python3 -c "print('%.2f' % ($t3 - $t2))")
	echo "  [$rep/$REPS] clone ${CLONE_GB} GiB thin (1 GiB data): vmkfstools -i $o s, qemu-img convert $q s"
	ours="$ours $o" qemu="$qemu $q"
	"$BIN/vmkfstools" -U "$MNT/c1.vmdk"
	"$BIN/vmkfstools" -U "$MNT/c2.vmdk"
	rep=$((rep + 1))
done
mo=$($BENCH_TOOL median $ours)
mq=$($BENCH_TOOL median $qemu)
stop_host
rm -f "$LUN"

# ---- first write on a fully provisioned LUN -----------------------------------
# The LUN above is a sparse file, and a deleted disk's blocks are punched
# back out of it (UNMAP): a thin disk's first write there also waits for
# the backing file system to allocate, which an eagerzeroedthick disk
# (zeroed, so allocated, at creation) never does - "thin on thin".  An
# array LUN as hosts usually see it is provisioned: here a LUN file
# written whole before mkfs, and vmfsd --no-unmap so that deleting the
# disks of one repetition leaves it so.
TLUN=$BENCH_DIR/thin-thick-lun.img
size_mib=$(( $($BENCH_TOOL size "$SIZE") >> 20 ))
rm -f "$TLUN"
fio --name=prov --filename="$TLUN" --rw=write --bs=4m --iodepth=4 --ioengine=libaio \
	--direct=1 --size=$((2 * size_mib + 1024))m --output-format=terse >/dev/null ||
	die "writing $TLUN"
"$BIN/mkfs.vmfs" -f -L bench-thick -H 8 "$TLUN" >/dev/null
"$BIN/vmfsd" --host bench-thin --mount "$MNT" --daemon --no-unmap "$TLUN" \
	2>>"$OUT/vmfsd.log" || die "vmfsd: $(tail -n 5 "$OUT/vmfsd.log")"
pthin="" peager=""
rep=1
while [ "$rep" -le "$REPS" ]; do
	"$BIN/vmkfstools" -c "$SIZE" -d thin "$MNT/t.vmdk"
	"$BIN/vmkfstools" -c "$SIZE" -d eagerzeroedthick "$MNT/e.vmdk"
	if [ $((rep % 2)) -eq 1 ]; then
		t=$(first_write "$MNT/t-flat.vmdk")
		e=$(first_write "$MNT/e-flat.vmdk")
	else
		e=$(first_write "$MNT/e-flat.vmdk")
		t=$(first_write "$MNT/t-flat.vmdk")
	fi
	echo "  [$rep/$REPS] first write 1 MiB seq, provisioned LUN: thin $t MiB/s, eagerzeroedthick $e MiB/s"
	pthin="$pthin $t" peager="$peager $e"
	"$BIN/vmkfstools" -U "$MNT/t.vmdk"
	"$BIN/vmkfstools" -U "$MNT/e.vmdk"
	rep=$((rep + 1))
done
pmt=$($BENCH_TOOL median $pthin)
pme=$($BENCH_TOOL median $peager)
pfw_ratio=$(python3 -c "print('%.2f' % ($pmt / $pme))")
stop_host
rm -f "$TLUN"

ok=1
python3 -c "import sys; sys.exit(0 if $pmt >= 0.7 * $pme else 1)" && v1="on a provisioned LUN, thin at or above 0.7x eagerzeroedthick" ||
	{ v1="**on a provisioned LUN, thin below 0.7x eagerzeroedthick**"; ok=0; }
python3 -c "import sys; sys.exit(0 if $mt >= 0.7 * $me else 1)" && v1s="on a sparse LUN file (thin on thin), thin at or above 0.7x eagerzeroedthick" ||
	v1s="on a sparse LUN file (thin on thin), thin below 0.7x eagerzeroedthick"
python3 -c "import sys; sys.exit(0 if $mo < $mq else 1)" && v2="vmkfstools -i faster than qemu-img convert" ||
	{ v2="**vmkfstools -i not faster than qemu-img convert**"; ok=0; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
{
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n): $(nproc) CPUs ($cpu),"
	echo "Linux $(uname -r), $(fio --version), $(qemu-img --version | head -n 1); LUN file on $fstype."
	echo
	echo "Command: \`$BENCH_CMD\` (section \`bench/bench-thin.sh\`)."
	echo
	echo "### First write, 1 MiB sequential, depth 4, $SIZE"
	echo
	echo "fio \`--rw=write --bs=1m --iodepth=4 --ioengine=libaio --direct=1 --size=$SIZE\`"
	echo "once over a new disk's data file through the vmfsd mount, and over a new raw"
	echo "file beside the LUN; medians of $REPS, fresh disks each time.  Two LUNs:"
	echo "a provisioned one (a LUN file written whole before mkfs, vmfsd \`--no-unmap\`,"
	echo "as an array LUN is to its hosts), and a sparse LUN file whose freed blocks"
	echo "are punched back out (thin on thin: a thin disk's first write there also"
	echo "waits for $fstype to allocate the backing file's blocks, which the"
	echo "eagerzeroedthick disk's zeroing did at its creation)."
	echo
	echo "| LUN | thin MiB/s | eagerzeroedthick MiB/s | raw file MiB/s | thin / eager |"
	echo "|---|--:|--:|--:|--:|"
	echo "| provisioned | $pmt | $pme | | $pfw_ratio |"
	echo "| sparse file | $mt | $me | $mr | $fw_ratio |"
	echo
	echo "Result: $v1; $v1s."
	echo
	echo "### Clone of a ${CLONE_GB} GiB thin disk holding 1 GiB"
	echo
	echo "\`vmkfstools -i src.vmdk c1.vmdk -d thin\` against \`qemu-img convert -n -f vmdk"
	echo "-O vmdk src.vmdk c2.vmdk\` into a new thin disk, both on the same volume"
	echo "(clones compared equal).  Medians of $REPS."
	echo
	echo "| vmkfstools -i s | qemu-img convert s |"
	echo "|--:|--:|"
	echo "| $mo | $mq |"
	echo
	echo "Result: $v2."
} >"$RESULTS"
echo
cat "$RESULTS"
$BENCH_TOOL update-doc "$BENCH_DOC" "Virtual disks (thin/, vmkfstools)" "$RESULTS"
if [ "$ok" -eq 0 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then
	exit 1
fi
exit 0
