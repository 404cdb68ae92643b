#!/bin/sh
# bench-mp.sh - the device layer (multipath/) against fio.
#
# Same backing file, same engine, same pattern, one job each: fio with
# --direct=1 and our mp_bench driving the LUN through the asynchronous
# mp_io API.  Patterns: 4 KiB random read and random write at queue depth
# 32, 1 MiB sequential write and read at BENCH_SEQ_QD; engines io_uring and
# libaio.  Each (engine, pattern) pair runs BENCH_REPS times, fio and ours
# back to back with the order alternating between repetitions, so drift of
# a noisy machine hits both alike; the table reports medians and the ratio
# ours/fio of the median IOPS (target: at least 0.9).
#
# Run through bench/run-bench.sh (sets BENCH_ROOT, BENCH_OUT, ...).  Extra
# environment:
#   BENCH_SIZE      backing file size (default 2g); reused while unchanged
#   BENCH_SEQ_QD    queue depth of the sequential patterns (default 8)
#   BENCH_ENGINES   subset of "io_uring libaio"
#   BENCH_PATTERNS  subset of "randread randwrite write read"
#   BENCH_MEM       I/O buffer memory for both tools: page (default; fio's
#                   --mem=malloc) or huge (hugetlb pages; fio's --mem=shmhuge;
#                   reserve them first: sysctl vm.nr_hugepages=16).  On a
#                   virtual disk 1 MiB throughput depends on how physically
#                   contiguous the buffers are (see mp_bench.c, bufs_alloc);
#                   huge makes the sequential rows repeatable.  Results of
#                   each mode go to their own section of the doc.
#   MP_BENCH        the mp_bench binary (default BENCH_BUILD/bench/mp_bench)
set -eu

: "${BENCH_ROOT:?run through bench/run-bench.sh}"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmfs-bench}
REPS=${BENCH_REPS:-3}
RUNTIME=${BENCH_RUNTIME:-5}
RAMP=${BENCH_RAMP:-1}
SIZE=${BENCH_SIZE:-2g}
SEQ_QD=${BENCH_SEQ_QD:-8}
ENGINES=${BENCH_ENGINES:-io_uring libaio}
MEM=${BENCH_MEM:-page}
PATTERNS=${BENCH_PATTERNS:-randread randwrite write read}

MP_BENCH=${MP_BENCH:-$BENCH_BUILD/bench/mp_bench}
case $MEM in
page)	FIO_MEM=malloc SUFFIX= TITLE="Device layer (multipath)" ;;
huge)	FIO_MEM=shmhuge SUFFIX=-huge
	TITLE="Device layer (multipath), hugetlb buffers" ;;
*)	echo "bench-mp: BENCH_MEM must be page or huge" >&2; exit 1 ;;
esac
OUT=$BENCH_OUT/mp$SUFFIX
RAW=$BENCH_OUT/mp$SUFFIX-raw.tsv
RESULTS=$BENCH_OUT/mp$SUFFIX-results.md
FILE=$BENCH_DIR/mp-lun.img

die() { echo "bench-mp: $*" >&2; exit 1; }

[ -x "$MP_BENCH" ] || die "$MP_BENCH missing: run make first"
command -v fio >/dev/null || die "fio not installed (scripts/install-deps.sh)"

if [ "$MEM" = huge ]; then
	# fio: iodepth * bs rounded up to 2 MiB pages; 8 covers 8 x 1 MiB.
	free_huge=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
	[ "${free_huge:-0}" -ge 8 ] ||
		die "BENCH_MEM=huge needs 8 free 2 MiB hugetlb pages (have ${free_huge:-0}): sysctl vm.nr_hugepages=16"
fi

size_bytes=$($BENCH_TOOL size "$SIZE")

# ---- backing file ----------------------------------------------------------
mkdir -p "$BENCH_DIR" "$OUT"
fstype=$(findmnt -n -o FSTYPE --target "$BENCH_DIR" 2>/dev/null ||
	stat -f -c %T "$BENCH_DIR")
case $fstype in
tmpfs|ramfs) die "$BENCH_DIR is on $fstype: O_DIRECT needs a real disk (set BENCH_DIR)" ;;
esac

# Preallocated, then written once in full: reads of never-written (unwritten)
# extents return zeros without touching the disk and would flatter both
# tools.  A stamp records that the fill completed, so later runs reuse it.
stamp=$FILE.filled-$size_bytes
if [ ! -e "$stamp" ] || [ "$(stat -c %s "$FILE" 2>/dev/null)" != "$size_bytes" ]; then
	rm -f "$FILE" "$FILE".filled-*
	avail=$(df -P -B1 "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
	[ "$avail" -gt $((size_bytes + (1 << 30))) ] ||
		die "not enough space in $BENCH_DIR for $SIZE plus 1 GiB margin"
	echo "bench-mp: creating $FILE ($SIZE) on $fstype"
	fallocate -l "$size_bytes" "$FILE"
	fio --name=fill --filename="$FILE" --rw=write --bs=1m --size="$size_bytes" \
		--direct=1 --ioengine=libaio --iodepth=8 --output-format=terse >/dev/null
	touch "$stamp"
fi

# ---- runs ----------------------------------------------------------------
# pattern -> "bs iodepth"
shape() {
	case $1 in
	randread|randwrite) echo "4096 32" ;;
	read|write) echo "1048576 $SEQ_QD" ;;
	*) die "unknown pattern $1" ;;
	esac
}

run_fio() { # engine pattern bs qd json
	fio --name=mp-ref --filename="$FILE" --direct=1 --ioengine="$1" \
		--rw="$2" --bs="$3" --iodepth="$4" --size="$size_bytes" \
		--runtime="$RUNTIME" --ramp_time="$RAMP" --time_based \
		--mem="$FIO_MEM" --output-format=json --output="$5"
}

run_mp() { # engine pattern bs qd json
	case $1 in
	io_uring) e=uring ;;
	libaio) e=aio ;;
	*) die "unknown engine $1" ;;
	esac
	"$MP_BENCH" --spec "$FILE" --engine "$e" --rw "$2" --bs "$3" \
		--iodepth "$4" --size "$size_bytes" --runtime "$RUNTIME" \
		--ramp "$RAMP" --mem "$MEM" --json >"$5" || {
		cat "$5" >&2
		die "mp_bench failed ($1 $2)"
	}
}

rm -f "$OUT"/*.json
: >"$RAW"
rep=1
while [ "$rep" -le "$REPS" ]; do
	for engine in $ENGINES; do
		for pattern in $PATTERNS; do
			set -- $(shape "$pattern")
			bs=$1 qd=$2
			# Alternate who goes first: a machine that slows down or
			# speeds up over a pair then favours neither.
			if [ $((rep % 2)) -eq 1 ]; then order="fio mp"; else order="mp fio"; fi
			for tool in $order; do
				json=$OUT/$engine-$pattern-$rep-$tool.json
				prefix=$(printf '%s\t%s\t%s\t%s\t%s\t%s' "$engine" \
					"$pattern" "$bs" "$qd" "$rep" "$tool")
				"run_$tool" "$engine" "$pattern" "$bs" "$qd" "$json"
				line=$($BENCH_TOOL "$tool" "$prefix" "$json")
				echo "$line" >>"$RAW"
				echo "$line" | awk -F'\t' -v n="$REPS" '{ printf "  [%s/%s] %-8s %-9s %-3s %8.0f IOPS %8.1f MiB/s %7.0f us\n", $5, n, $1, $2, $6, $7, $8, $9 }'
			done
		done
	done
	rep=$((rep + 1))
done

# ---- report ----------------------------------------------------------------
table=$($BENCH_TOOL mp-summary "$RAW")
verdict=$($BENCH_TOOL mp-check "$RAW") && ok=1 || ok=0
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
fio_version=$(fio --version)
{
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n): $(nproc) CPUs ($cpu),"
	echo "Linux $(uname -r), $fio_version, backing file $FILE ($SIZE, $fstype,"
	echo "preallocated and written once)."
	echo
	echo "Command: \`$BENCH_CMD\` (section \`bench/bench-mp.sh\`)."
	if [ "$MEM" = huge ]; then
		echo "Needs free hugetlb pages first: \`sysctl vm.nr_hugepages=16\`."
	fi
	echo
	echo "Each row: $REPS repetitions of a ${RUNTIME} s run after a ${RAMP} s ramp,"
	echo "fio and \`mp_bench\` alternating (order swapped every repetition); medians."
	echo "fio: one job, \`--direct=1 --ioengine=ENGINE --rw=PATTERN --bs=BS"
	echo "--iodepth=QD --size=$SIZE --time_based --runtime=$RUNTIME --ramp_time=$RAMP"
	echo "--mem=$FIO_MEM\`."
	echo "Ours: \`build/default/bench/mp_bench --spec FILE --engine uring|aio"
	echo "--rw PATTERN --bs BS --iodepth QD --size $size_bytes --runtime $RUNTIME --ramp $RAMP"
	echo "--mem $MEM\`,"
	echo "which keeps QD \`mp_io\`s in flight, each completion callback submitting"
	echo "the next.  MiB/s = 2^20 bytes/s; latency = mean submit-to-completion;"
	echo "CPU % = user+system of the whole process (100 = one core);"
	echo "ours/fio = ratio of median IOPS (target >= 0.9); per-rep ratios ="
	echo "range over the back-to-back pairs.  Raw runs: \`${RAW#"$BENCH_ROOT"/}\`."
	echo
	echo "$table"
	echo
	echo "Result: $verdict."
} >"$RESULTS"

echo
cat "$RESULTS"
$BENCH_TOOL update-doc "$BENCH_DOC" "$TITLE" "$RESULTS"
echo "bench-mp: results in ${RESULTS#"$BENCH_ROOT"/}, section updated in ${BENCH_DOC#"$BENCH_ROOT"/}"
if [ "$ok" -eq 0 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then
	exit 1
fi
exit 0
