#!/bin/sh
# bench-fs.sh - the file system (fs/ and vmfsd) against the raw backing
# file, side by side in one run.
#
# 1. Data path: a preallocated, fully written 4 GiB file on a volume whose
#    LUN is a file on BENCH_DIR, against a fully written 4 GiB raw file on
#    the same file system:
#      raw     fio --direct=1 --ioengine=libaio --iodepth=D on the raw file
#      library bench/fs_bench io --depth D: D requests in flight through
#              fs_aio_submit, each completion callback submitting the next
#              (fio's libaio, iodepth=D)
#      FUSE    the same fio command on the file through a vmfsd mount
#      uring   the library with the device layer's io_uring engine instead
#              of its default (libaio), for the 4 KiB rows: the comparison
#              behind that default
#    Rows: 4 KiB random read/write at depth 4; 1 MiB sequential read/write at
#    depth 1 and 4.  Targets: library >= 0.9x raw; FUSE >= 0.6x raw for
#    1 MiB sequential.
#    Buffers: fio's and fs_bench's in hugetlb pages (fio --iomem=shmhuge,
#    fs_bench --mem huge; this script reserves 16 for the run as root and
#    puts the setting back), vmfsd's its own (transparent huge pages,
#    mp_alloc_io).  On a virtual disk every physically contiguous run of a
#    buffer is one descriptor: with ordinary pages a 1 MiB result depends
#    on where the kernel happened to put them (library / raw at 1 MiB depth
#    4 per repetition 1.22, 0.63, 0.62 in one run).  Without root, or if
#    the kernel refuses the pages, both use ordinary pages and the report
#    says so.
# 2. File creates per second through FUSE (open O_CREAT|O_EXCL + close):
#    one host in one directory, then two hosts (two vmfsd on the same volume)
#    at once in two directories; target: two hosts >= 1.5x one, judged
#    with a CPU per host as on separate machines (taskset: host A's vmfsd
#    and client on CPU 0, B's on CPU 1; unpinned runs beside).  Beside it,
#    the baseline for "affinity works": two hosts on two separate volumes
#    (one LUN each, nothing shared but the machine): what two hosts can get
#    on this machine at all; shared / separate near 1 says the shared
#    volume's locks cost the second host nothing.  The LUN
#    file is written whole before mkfs, as an array presents a LUN (every
#    block backed).  The same on a sparse LUN file beside it, for
#    information (ext4 allocates backing blocks at the volume's first
#    write to each), and on a LUN file in memory (/dev/shm), where the
#    device costs next to nothing; the CPUs busy during each run.  Beside
#    them, the device's own gain from a second stream: fio at depth 1, one
#    job and two, writes each with fdatasync, writes with as many per
#    fdatasync as a create made, reads.
# 3. `ls -l` of a directory of 10,000 files through FUSE, against the same
#    on the backing file system.
# Every measurement repeats BENCH_REPS times (raw / library / FUSE
# alternating order); the tables show medians.
#
# Extra environment: BENCH_FS_SIZE (default 4g), BENCH_FS_FILES (10000),
# BENCH_FS_ENGINE (uring or aio: the device layer's engine for the library
# rows; default: the device layer's own choice, libaio where it works).
set -eu

: "${BENCH_ROOT:?run through bench/run-bench.sh}"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmfs-bench}
REPS=${BENCH_REPS:-3}
RUNTIME=${BENCH_RUNTIME:-5}
RAMP=${BENCH_RAMP:-1}
SIZE=${BENCH_FS_SIZE:-4g}
NFILES=${BENCH_FS_FILES:-10000}
FS_BENCH=$BENCH_BUILD/bench/fs_bench
BIN=$BENCH_ROOT/bin
OUT=$BENCH_OUT/fs
RAW=$BENCH_OUT/fs-raw.tsv
RESULTS=$BENCH_OUT/fs-results.md
LUN=$BENCH_DIR/fs-lun.img
RAWF=$BENCH_DIR/fs-raw.img
LUN_LIB=$LUN${BENCH_FS_ENGINE:+?engine=$BENCH_FS_ENGINE}
MA=$BENCH_DIR/fs-mnt-a
MB=$BENCH_DIR/fs-mnt-b
LUNS=$BENCH_DIR/fs-lun-sparse.img
LUNM=/dev/shm/vmfs-bench-fs-lun-memory.img
LUNM2=/dev/shm/vmfs-bench-fs-lun-memory-2.img
LUN2=$BENCH_DIR/fs-lun-2.img
MC=$BENCH_DIR/fs-mnt-c
MD=$BENCH_DIR/fs-mnt-d
ME=$BENCH_DIR/fs-mnt-e
export VMFSD_RUN_DIR=$BENCH_DIR/run

die() { echo "bench-fs: $*" >&2; exit 1; }
[ -x "$FS_BENCH" ] || die "$FS_BENCH missing: run make first"
[ -e /dev/fuse ] || die "no /dev/fuse"
command -v fio >/dev/null || die "fio not installed (scripts/install-deps.sh)"

size_bytes=$($BENCH_TOOL size "$SIZE")
mkdir -p "$BENCH_DIR" "$OUT" "$MA" "$MB"
fstype=$(findmnt -n -o FSTYPE --target "$BENCH_DIR" 2>/dev/null ||
	stat -f -c %T "$BENCH_DIR")

stop_hosts() {
	pkill -TERM -f "vmfsd --host bench-[abcde] " 2>/dev/null || true
	for i in $(seq 1 100); do
		pgrep -f "vmfsd --host bench-[abcde] " >/dev/null || break
		sleep 0.1
	done
	for m in "$MA" "$MB" "$MC" "$MD" "$ME"; do
		grep -qF " $m fuse" /proc/mounts && fusermount3 -uz "$m"
	done
	return 0
}
huge_before=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo "")
cleanup() {
	stop_hosts
	rm -f "$LUNM" "$LUNM2"
	[ -z "$huge_before" ] ||
		echo "$huge_before" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
}
trap cleanup EXIT
stop_hosts

# I/O buffers of fio and fs_bench (see the header): hugetlb if 16 can be
# reserved (fio's at depth 4 take 3 pages, fs_bench's 2), else pages
MEM=page
if [ -n "$huge_before" ] && [ "$huge_before" -lt 16 ]; then
	echo 16 >/proc/sys/vm/nr_hugepages 2>/dev/null || true
fi
if [ "$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)" -ge 8 ] 2>/dev/null; then
	MEM=huge
else
	echo "bench-fs: no hugetlb pages (not root?): ordinary pages for the buffers"
fi
FIO_MEM=malloc
[ "$MEM" = huge ] && FIO_MEM=shmhuge

start_host() { # name mount [lun]
	"$BIN/vmfsd" --host "$1" --mount "$2" --daemon "${3:-$LUN}" \
		2>>"$OUT/vmfsd-$1.log" || die "vmfsd $1: $(tail -n 5 "$OUT/vmfsd-$1.log")"
}

# ---- volume and raw file ---------------------------------------------------
# File descriptors: the creates phase and the big directory together need
# more than mkfs's default for this size (one per 512 KiB), so ask for
# plenty; the stamp names both, so a volume made otherwise is made again.
FILES=$((NFILES * 4 + 32768))
# (jgroups: made by a mkfs that sets the journal's groups feature)
stamp=$LUN.ready-$size_bytes-$FILES-provisioned-jgroups
if [ ! -e "$stamp" ]; then
	rm -f "$LUN" "$LUN".ready-* "$RAWF"
	avail=$(df -P -B1 "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
	[ "$avail" -gt $((2 * size_bytes + (6 << 30))) ] ||
		die "not enough space in $BENCH_DIR for two $SIZE files"
	echo "bench-fs: writing $LUN whole, formatting it and writing a $SIZE file in it"
	# data, descriptors (8 KiB each), journals; every block written, as
	# an array's LUN
	fio --name=provision --filename="$LUN" --rw=write --bs=1m \
		--size=$((size_bytes + (2 << 30))) --direct=1 --ioengine=libaio \
		--iodepth=8 --output-format=terse >/dev/null
	"$BIN/mkfs.vmfs" -f -L bench -H 8 -i "$FILES" "$LUN" >/dev/null
	"$FS_BENCH" prep --host bench-prep --file big.img --size "$size_bytes" \
		"$LUN" 2>>"$OUT/prep.log" || die "prep: $(tail -n 5 "$OUT/prep.log")"
	echo "bench-fs: writing the raw file $RAWF"
	fallocate -l "$size_bytes" "$RAWF"
	fio --name=fill --filename="$RAWF" --rw=write --bs=1m --size="$size_bytes" \
		--direct=1 --ioengine=libaio --iodepth=8 --output-format=terse >/dev/null
	touch "$stamp"
fi

# ---- 1. data path ------------------------------------------------------------
run_fio() { # file pattern bs depth json
	fio --name=fs --filename="$1" --direct=1 --ioengine=libaio --rw="$2" \
		--bs="$3" --iodepth="$4" --size="$size_bytes" --time_based \
		--runtime="$RUNTIME" --ramp_time="$RAMP" --iomem="$FIO_MEM" \
		--output-format=json --output="$5" || die "fio $1 $2"
}

run_tool() { # tool pattern bs depth json
	case $1 in
	fio) run_fio "$RAWF" "$2" "$3" "$4" "$5" ;;
	fuse)
		start_host bench-a "$MA"
		run_fio "$MA/big.img" "$2" "$3" "$4" "$5"
		stop_hosts ;;
	lib|uring)
		spec=$LUN_LIB
		[ "$1" = uring ] && spec="$LUN?engine=uring"
		"$FS_BENCH" io --host bench-lib --file big.img --rw "$2" --bs "$3" \
			--depth "$4" --runtime "$RUNTIME" --ramp "$RAMP" --mem "$MEM" \
			--json "$spec" \
			>"$5" 2>>"$OUT/lib.log" || die "fs_bench $2: $(cat "$5")" ;;
	esac
}

rm -f "$OUT"/*.json
: >"$RAW"
# Warm-up, not recorded: after a quiet spell this machine's disk serves
# both files markedly slower for a while (fio as much as the library);
# every ratio below is also taken per repetition.
run_tool fio randread 4096 4 "$OUT/warm-fio.json"
run_tool lib randread 4096 4 "$OUT/warm-lib.json"
rep=1
while [ "$rep" -le "$REPS" ]; do
	for shape in "randread 4096 4" "randwrite 4096 4" "read 1048576 1" \
		     "write 1048576 1" "read 1048576 4" "write 1048576 4"; do
		set -- $shape
		pattern=$1 bs=$2 depth=$3
		case $((rep % 3)) in
		1) order="fio lib fuse uring" ;;
		2) order="lib uring fuse fio" ;;
		0) order="fuse fio uring lib" ;;
		esac
		[ "$bs" = 4096 ] || order=$(echo "$order" | sed 's/ *uring//')
		for tool in $order; do
			json=$OUT/$pattern-$bs-$depth-$rep-$tool.json
			prefix=$(printf 'libaio\t%s\t%s\t%s\t%s\t%s' "$pattern" "$bs" \
				"$depth" "$rep" "$tool")
			run_tool "$tool" "$pattern" "$bs" "$depth" "$json"
			case $tool in lib|uring) kind=mp ;; *) kind=fio ;; esac
			line=$($BENCH_TOOL "$kind" "$prefix" "$json")
			echo "$line" >>"$RAW"
			echo "$line" | awk -F'\t' -v n="$REPS" '{ printf "  [%s/%s] %-9s bs %-7s depth %s %-5s %8.0f IOPS %8.1f MiB/s\n", $5, n, $2, $3, $4, $6, $7, $8 }'
		done
	done
	rep=$((rep + 1))
done

# ---- 2. creates, one host and two ------------------------------------------
# the device layer's counters of the LUNs of the host at $1 (vmkfstools -P):
# reads writes flushes compare-and-writes, summed over the extents
io_counts() {
	"$BIN/vmkfstools" -P "$1" | awk '/I\/O since mount:/ {
		for (i = 1; i <= NF; i++) {
			if ($(i + 1) ~ /^reads/) r += $i
			if ($(i + 1) ~ /^writes/) w += $i
			if ($(i + 1) ~ /^flushes/) f += $i
			if ($(i + 1) ~ /^compare-and-writes/) c += $i
		}
	} END { print r + 0, w + 0, f + 0, c + 0 }'
}
# the machine's CPU time so far: busy and idle (iowait included) ticks
cpu_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat
}
# cpu_busy TICKS0 TICKS1: CPUs busy in between (of $(nproc))
cpu_busy() {
	echo "$1 $2" | awk -v n="$(nproc)" '{ b = $3 - $1; i = $4 - $2;
		printf "%.2f", (b + i > 0 ? n * b / (b + i) : 0) }'
}
# Pinned runs: each host (every thread of its vmfsd, and its client) on a
# CPU of its own, as hosts on separate machines have: A on CPU 0, B on
# CPU 1.  Unpinned, the two hosts share this machine's CPUs, which one
# host's stream alone keeps mostly busy.
PIN=0
[ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null && PIN=1
pin_host() { # mount cpus
	local pid
	pid=$(pgrep -f -- "vmfsd --host [^ ]* --mount $1 " | head -n 1)
	[ -n "$pid" ] || die "no vmfsd serving $1"
	taskset -a -p -c "$2" "$pid" >/dev/null || die "taskset $pid"
}
# rate JSON...: the creates per second of fs_bench runs, summed
rate() {
	python3 -c 'import json, sys
print(sum(json.load(open(f))["per_s"] for f in sys.argv[1:]))' "$@"
}
# creates MOUNT DIR OUT [CPU]: fs_bench creates, on CPU if given
creates() {
	if [ -n "${4:-}" ]; then
		taskset -c "$4" "$FS_BENCH" creates --dir "$1/creates/$2" \
			--seconds "$RUNTIME" --json >"$3"
	else
		"$FS_BENCH" creates --dir "$1/creates/$2" --seconds "$RUNTIME" \
			--json >"$3"
	fi
}
# creates_run MOUNT_A MOUNT_B LABEL [MOUNT_E]: one host, then two, REPS
# times; sets c1 (one host, median), c2 (two hosts), cratio (median of the
# pairs' ratios), cpu1 and cpu2 (CPUs busy during each, medians) and
# perio_med (I/O per create of the one host: the repetition with the
# median number of reads).  With MOUNT_E (a host on a volume of its own):
# also A and E at once, c3 (median), sepratio (two separate / one) and
# shareff (two shared / two separate, medians of the repetitions' ratios).
# Pinned (PIN=1): also one host and two pinned, c1p, c2p, cratiop.  The
# files of each run go right after it (outside the timed runs): the
# volume's descriptors then last for any number of runs at any rate.
creates_run() {
	one="" two="" pair="" perio="" busy1="" busy2="" sep="" sepp="" eff=""
	onep="" twop="" pairp=""
	rep=1
	while [ "$rep" -le "$REPS" ]; do
		io0=$(io_counts "$1")
		t0=$(cpu_ticks)
		creates "$1" "one-$rep" "$OUT/c1.json" ||
			die "creates on one host ($3)"
		t1=$(cpu_ticks)
		busy1="$busy1 $(cpu_busy "$t0" "$t1")"
		io1=$(io_counts "$1")
		r1=$(rate "$OUT/c1.json")
		# I/O per create (the mkdir of the directory included: one
		# among thousands; vmfsd leaves the counting commands' own
		# I/O out)
		perio="$perio $(python3 - "$OUT/c1.json" $io0 $io1 <<'PY'
import json, sys
n = json.load(open(sys.argv[1]))["creates"]
a, b = sys.argv[2:6], sys.argv[6:10]
print(",".join("%.2f" % ((int(y) - int(x)) / n) for x, y in zip(a, b)))
PY
)"
		rm -rf "$1/creates/one-$rep" || die "removing the creates ($3)"
		t0=$(cpu_ticks)
		creates "$1" "a-$rep" "$OUT/ca.json" &
		pa=$!
		creates "$2" "b-$rep" "$OUT/cb.json" &
		pb=$!
		wait $pa || die "creates on host a ($3)"
		wait $pb || die "creates on host b ($3)"
		t1=$(cpu_ticks)
		busy2="$busy2 $(cpu_busy "$t0" "$t1")"
		r2=$(rate "$OUT/ca.json" "$OUT/cb.json")
		echo "  [$rep/$REPS] $3: creates/s: one host $r1, two hosts $r2"
		rm -rf "$1/creates/a-$rep" "$2/creates/b-$rep" ||
			die "removing the creates ($3)"
		if [ -n "${4:-}" ]; then
			creates "$1" "s-$rep" "$OUT/ca.json" &
			pa=$!
			creates "$4" "e-$rep" "$OUT/ce.json" &
			pb=$!
			wait $pa || die "creates on host a, separate volumes ($3)"
			wait $pb || die "creates on host e ($3)"
			r3=$(rate "$OUT/ca.json" "$OUT/ce.json")
			echo "  [$rep/$REPS] $3: two hosts on separate volumes $r3"
			rm -rf "$1/creates/s-$rep" "$4/creates/e-$rep" ||
				die "removing the separate creates of repetition $rep ($3)"
			sep="$sep $r3"
			sepp="$sepp $(python3 -c "print($r3 / $r1)")"
			eff="$eff $(python3 -c "print($r2 / $r3)")"
		fi
		if [ "$PIN" = 1 ]; then
			pin_host "$1" 0
			pin_host "$2" 1
			creates "$1" "p1-$rep" "$OUT/c1.json" 0 ||
				die "pinned creates on one host ($3)"
			rm -rf "$1/creates/p1-$rep" || die "removing the creates ($3)"
			creates "$1" "pa-$rep" "$OUT/ca.json" 0 &
			pa=$!
			creates "$2" "pb-$rep" "$OUT/cb.json" 1 &
			pb=$!
			wait $pa || die "pinned creates on host a ($3)"
			wait $pb || die "pinned creates on host b ($3)"
			rm -rf "$1/creates/pa-$rep" "$2/creates/pb-$rep" ||
				die "removing the creates ($3)"
			pin_host "$1" "0-$(($(nproc) - 1))"
			pin_host "$2" "0-$(($(nproc) - 1))"
			p1=$(rate "$OUT/c1.json")
			p2=$(rate "$OUT/ca.json" "$OUT/cb.json")
			echo "  [$rep/$REPS] $3: pinned, a CPU per host: one host $p1, two hosts $p2"
			onep="$onep $p1"
			twop="$twop $p2"
			pairp="$pairp $(python3 -c "print($p2 / $p1)")"
		fi
		one="$one $r1"
		two="$two $r2"
		pair="$pair $(python3 -c "print($r2 / $r1)")"
		rep=$((rep + 1))
	done
	c1=$($BENCH_TOOL median $one)
	perio_med=$(python3 - $perio <<'PY'
import sys
rows = sorted((list(map(float, a.split(","))) for a in sys.argv[1:]), key=lambda r: r[0])
r = rows[len(rows) // 2]
print("| %.2f | %.2f | %.2f | %.2f |" % tuple(r))
PY
)
	c2=$($BENCH_TOOL median $two)
	cratio=$(python3 -c "print('%.2f' % $($BENCH_TOOL median $pair))")
	cpu1=$($BENCH_TOOL median $busy1)
	cpu2=$($BENCH_TOOL median $busy2)
	c1p="" c2p="" cratiop=""
	if [ -n "$onep" ]; then
		c1p=$($BENCH_TOOL median $onep)
		c2p=$($BENCH_TOOL median $twop)
		cratiop=$(python3 -c "print('%.2f' % $($BENCH_TOOL median $pairp))")
	fi
	c3="" sepratio="" shareff=""
	if [ -n "$sep" ]; then
		c3=$($BENCH_TOOL median $sep)
		sepratio=$(python3 -c "print('%.2f' % $($BENCH_TOOL median $sepp))")
		shareff=$(python3 -c "print('%.2f' % $($BENCH_TOOL median $eff))")
	fi
}

# the sparse LUN: made anew each run (mkfs only: creates need no data)
stop_hosts
rm -f "$LUNS"
truncate -s 3G "$LUNS"
"$BIN/mkfs.vmfs" -f -L sparse -H 8 -i 98304 "$LUNS" >/dev/null
mkdir -p "$MC" "$MD"
start_host bench-c "$MC" "$LUNS"
start_host bench-d "$MD" "$LUNS"
mkdir -p "$MC/creates" "$MD/creates"
creates_run "$MC" "$MD" "sparse LUN"
s1=$c1 s2=$c2 sratio=$cratio sperio=$perio_med scpu1=$cpu1 scpu2=$cpu2
sp1=$c1p sp2=$c2p spratio=$cratiop
stop_hosts
rm -f "$LUNS"

# The same on a LUN file in memory (tmpfs), where the device costs next
# to nothing: what the file system and FUSE make of two hosts on this
# machine's CPUs alone
m1="" m2="" mratio="" mperio=""
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
	# descriptors for two runs of the fastest rate here (tmpfs keeps
	# only what is written)
	truncate -s 8G "$LUNM" "$LUNM2"
	"$BIN/mkfs.vmfs" -f -L memory -H 8 -i 262144 "$LUNM" >/dev/null
	"$BIN/mkfs.vmfs" -f -L memory2 -H 8 -i 262144 "$LUNM2" >/dev/null
	mkdir -p "$ME"
	start_host bench-c "$MC" "$LUNM"
	start_host bench-d "$MD" "$LUNM"
	start_host bench-e "$ME" "$LUNM2"
	mkdir -p "$MC/creates" "$MD/creates" "$ME/creates"
	creates_run "$MC" "$MD" "LUN in memory" "$ME"
	m1=$c1 m2=$c2 mratio=$cratio mperio=$perio_med mcpu1=$cpu1 mcpu2=$cpu2
	mp1=$c1p mp2=$c2p mpratio=$cratiop
	m3=$c3 msep=$sepratio meff=$shareff
	stop_hosts
	rm -f "$LUNM" "$LUNM2"
fi

# the separate volume of the baseline: provisioned as the main LUN (3 GiB,
# written whole once and kept), formatted anew each run
if [ ! -e "$LUN2.ready" ]; then
	rm -f "$LUN2"
	fio --name=prov --filename="$LUN2" --rw=write --bs=1m --size=3g \
		--direct=1 --ioengine=libaio --iodepth=8 --output-format=terse \
		>/dev/null || die "writing $LUN2"
	touch "$LUN2.ready"
fi
"$BIN/mkfs.vmfs" -f -L separate -H 8 -i 98304 "$LUN2" >/dev/null
mkdir -p "$ME"
start_host bench-a "$MA"
start_host bench-b "$MB"
start_host bench-e "$ME" "$LUN2"
# what an interrupted earlier run left (its big directory holds NFILES
# descriptors) must not run the creates out of descriptors
rm -rf "$MA/creates" "$MA/big"
mkdir -p "$MA/creates" "$ME/creates"
creates_run "$MA" "$MB" "provisioned LUN" "$ME"
c3p=$c3 sepp_ratio=$sepratio effp=$shareff
rm -rf "$MA/creates"

# The device's own gain from a second stream, beside the creates: fio at
# depth 1 on the raw file, one job and two (a create is a chain of such
# commands, each waiting for the last): 4 KiB random writes each followed
# by fdatasync; the same with as many writes per fdatasync as the
# provisioned LUN's creates made (writes / flushes per create, rounded);
# and 4 KiB random reads
mixn=$(echo "$perio_med" | awk -F'|' '{ w = $3 + 0; f = $4 + 0;
	n = f > 0 ? int(w / f + 0.5) : 1; print n < 1 ? 1 : n }')
fio_iops() { # rw numjobs extra...
	rw=$1 nj=$2
	shift 2
	fio --name=dev --filename="$RAWF" --rw="$rw" --bs=4k --direct=1 \
		--ioengine=psync --size="$size_bytes" --numjobs="$nj" \
		--group_reporting --time_based --runtime="$RUNTIME" "$@" \
		--output-format=json | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
print("%.0f" % (j["read"]["iops"] + j["write"]["iops"]))'
}
dsync="" dmix="" dread=""
rep=1
while [ "$rep" -le "$REPS" ]; do
	w1=$(fio_iops randwrite 1 --fdatasync=1)
	w2=$(fio_iops randwrite 2 --fdatasync=1)
	x1=$(fio_iops randwrite 1 --fdatasync="$mixn")
	x2=$(fio_iops randwrite 2 --fdatasync="$mixn")
	r1=$(fio_iops randread 1)
	r2=$(fio_iops randread 2)
	echo "  [$rep/$REPS] fio depth 1: write+fdatasync $w1 / $w2 IOPS, $mixn writes+fdatasync $x1 / $x2, read $r1 / $r2 IOPS (one job / two)"
	dsync="$dsync $(python3 -c "print($w2 / $w1)")"
	dmix="$dmix $(python3 -c "print($x2 / $x1)")"
	dread="$dread $(python3 -c "print($r2 / $r1)")"
	rep=$((rep + 1))
done
dsync=$(python3 -c "print('%.2f' % $($BENCH_TOOL median $dsync))")
dmix=$(python3 -c "print('%.2f' % $($BENCH_TOOL median $dmix))")
dread=$(python3 -c "print('%.2f' % $($BENCH_TOOL median $dread))")


# ---- 3. ls -l of a big directory --------------------------------------------
rm -rf "$MA/big" "$BENCH_DIR/fs-native-dir"
"$FS_BENCH" creates --dir "$MA/big" --count "$NFILES" >/dev/null
"$FS_BENCH" creates --dir "$BENCH_DIR/fs-native-dir" --count "$NFILES" >/dev/null
[ "$(ls "$MB/big" | wc -l)" = "$NFILES" ] || die "host b sees $(ls "$MB/big" | wc -l) names"
time_ls() { # dir -> seconds
	python3 - "$1" <<'PY'
import subprocess, sys, time
t = time.monotonic()
subprocess.run(["ls", "-l", sys.argv[1]], stdout=subprocess.DEVNULL, check=True)
print("%.3f" % (time.monotonic() - t))
PY
}
la="" lb="" ln=""
rep=1
while [ "$rep" -le "$REPS" ]; do
	la="$la $(time_ls "$MA/big")"
	lb="$lb $(time_ls "$MB/big")"
	ln="$ln $(time_ls "$BENCH_DIR/fs-native-dir")"
	rep=$((rep + 1))
done
ls_a=$($BENCH_TOOL median $la)
ls_b=$($BENCH_TOOL median $lb)
ls_n=$($BENCH_TOOL median $ln)
echo "  ls -l of $NFILES entries: host a ${ls_a}s, host b ${ls_b}s, $fstype ${ls_n}s"
rm -rf "$MA/big" "$BENCH_DIR/fs-native-dir"
stop_hosts

# ---- report ----------------------------------------------------------------
table=$($BENCH_TOOL fs-summary "$RAW")
verdict=$($BENCH_TOOL fs-check "$RAW") && ok=1 || ok=0
# the target on the pinned runs (a CPU per host, as separate machines
# have) where there are any; unpinned, two hosts share the CPUs one
# host's stream mostly keeps busy
jratio=${cratiop:-$cratio}
if python3 -c "import sys; sys.exit(0 if $jratio >= 1.5 else 1)"; then
	cverdict="two hosts at or above 1.5x one host"
else
	cverdict="**two hosts below 1.5x one host**"
	ok=0
fi
if [ -n "$cratiop" ]; then
	cverdict="$cverdict with a CPU per host (${cratiop}x; sharing the machine's"
	cverdict="$cverdict $(nproc) CPUs ${cratio}x, one host's stream keeping $(printf %.2f "$cpu1") of them busy;"
else
	cverdict="$cverdict (${cratio}x;"
fi
cverdict="$cverdict two hosts on separate volumes ${sepp_ratio}x one,"
cverdict="$cverdict the shared volume ${effp} of that)"
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
{
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n): $(nproc) CPUs ($cpu),"
	echo "Linux $(uname -r), $(fio --version); LUN and raw file on $fstype in $BENCH_DIR."
	echo
	echo "Command: \`$BENCH_CMD\` (section \`bench/bench-fs.sh\`)."
	echo
	echo "### Data path: a preallocated, written $SIZE file"
	echo
	echo "$REPS repetitions of ${RUNTIME} s after a ${RAMP} s ramp, the three in rotating order;"
	echo "medians; each ratio is the median of the per-repetition ratios (the tool and"
	echo "fio side by side in the same repetition), after an unrecorded 4 KiB warm-up."
	echo "raw: \`fio --direct=1 --ioengine=libaio --iodepth=DEPTH --rw=PATTERN"
	echo "--bs=BS --size=$SIZE --time_based\` on a written $SIZE file beside the LUN.  library:"
	echo "\`fs_bench io --rw PATTERN --bs BS --depth DEPTH\` (DEPTH requests in flight"
	echo "with \`fs_aio_submit\` on the volume's file, each completion callback submitting"
	echo "the next).  FUSE: the raw fio command on"
	echo "the file through a vmfsd mount (direct_io).  library (io_uring): the library"
	echo "rows' command on \`LUN?engine=uring\` (the device layer's other engine; its"
	echo "default is libaio), 4 KiB rows only.  Targets: library >= 0.9x raw,"
	echo "FUSE >= 0.6x raw for 1 MiB sequential.  Raw runs: \`${RAW#"$BENCH_ROOT"/}\`."
	echo
	if [ "$MEM" = huge ]; then
		echo "Buffers: fio's and fs_bench's in hugetlb pages (\`--iomem=shmhuge\`,"
		echo "\`--mem huge\`; the script reserves 16 and puts the setting back);"
		echo "vmfsd's are its own (transparent huge pages).  With ordinary pages a"
		echo "1 MiB result depends on where the kernel put them (one descriptor per"
		echo "contiguous run on this virtual disk)."
	else
		echo "Buffers: **ordinary pages** (no hugetlb pages could be reserved): the"
		echo "1 MiB rows depend on where the kernel put them."
	fi
	echo
	echo "$table"
	echo
	echo "Result: $verdict."
	echo
	echo "### Creates through FUSE"
	echo
	echo "\`fs_bench creates --seconds $RUNTIME\` (open O_CREAT|O_EXCL, close) in a new"
	echo "directory; two hosts = two vmfsd on the same volume, each in its own directory,"
	echo "at the same time (sum).  Medians of $REPS; two / one is the median of the"
	echo "per-repetition ratios (one host, then two, back to back)."
	echo
	echo "The volume's LUN file was written whole before mkfs (provisioned, as"
	echo "an array presents a LUN); the sparse row is the same on a 3 GiB sparse"
	echo "LUN file formatted for it (ext4 allocates backing blocks at the"
	echo "volume's first write to each); the memory row on a sparse 8 GiB LUN file in"
	echo "/dev/shm (tmpfs: the device costs next to nothing, what is left is the"
	echo "file system, FUSE and the CPUs).  The target applies to the provisioned"
	echo "LUN (pinned, below, where the machine has two CPUs).  CPUs busy: of the machine's $(nproc), from /proc/stat over each run"
	echo "(medians)."
	echo
	echo "| LUN | one host creates/s | two hosts creates/s | two / one | CPUs busy, one host | CPUs busy, two hosts |"
	echo "|---|--:|--:|--:|--:|--:|"
	echo "| provisioned | $c1 | $c2 | $cratio | $(printf %.2f "$cpu1") | $(printf %.2f "$cpu2") |"
	echo "| sparse | $s1 | $s2 | $sratio | $(printf %.2f "$scpu1") | $(printf %.2f "$scpu2") |"
	if [ -n "$m1" ]; then
		echo "| memory (tmpfs) | $m1 | $m2 | $mratio | $(printf %.2f "$mcpu1") | $(printf %.2f "$mcpu2") |"
	fi
	echo
	if [ -n "$c1p" ]; then
		echo "A CPU per host, as hosts on separate machines have: every thread of"
		echo "host A's vmfsd and its client on CPU 0 (the one-host run too), host"
		echo "B's on CPU 1 (\`taskset\`), right after the unpinned runs of each"
		echo "repetition.  The target applies here: unpinned, the second host"
		echo "gets only what the first leaves of this machine's CPUs."
		echo
		echo "| LUN | one host, one CPU, creates/s | two hosts, a CPU each, creates/s | two / one |"
		echo "|---|--:|--:|--:|"
		echo "| provisioned | $c1p | $c2p | $cratiop |"
		echo "| sparse | $sp1 | $sp2 | $spratio |"
		[ -z "$m1" ] || echo "| memory (tmpfs) | $mp1 | $mp2 | $mpratio |"
		echo
	fi
	echo "Baseline: two hosts on two separate volumes (one LUN each, made the"
	echo "same way, nothing shared but the machine), run right after the shared"
	echo "pair in each repetition: what two hosts get on this machine at all."
	echo "Shared / separate is the median of the repetitions' ratios."
	echo
	echo "| LUN | two hosts, separate volumes creates/s | separate / one | shared / separate |"
	echo "|---|--:|--:|--:|"
	echo "| provisioned | $c3p | $sepp_ratio | $effp |"
	[ -z "$m1" ] || echo "| memory (tmpfs) | $m3 | $msep | $meff |"
	echo
	echo "The device's own gain from a second stream in the same run (fio"
	echo "\`--ioengine=psync --bs=4k --direct=1\` on the raw file, two jobs / one,"
	echo "median of the per-repetition ratios): 4 KiB random writes each followed"
	echo "by fdatasync ${dsync}x; with $mixn writes per fdatasync (\`--fdatasync=$mixn\`,"
	echo "the provisioned creates' writes per flush) ${dmix}x; 4 KiB random reads"
	echo "${dread}x."
	echo
	echo "I/O per create of the one host on its LUN (the device layer's counters"
	echo "from \`vmkfstools -P\` before and after; the repetition with the median"
	echo "number of reads):"
	echo
	echo "| LUN | reads | writes | flushes | compare-and-writes |"
	echo "|---|--:|--:|--:|--:|"
	echo "| provisioned $perio_med"
	echo "| sparse $sperio"
	[ -z "$m1" ] || echo "| memory (tmpfs) $mperio"
	echo
	echo "Result: $cverdict."
	echo
	echo "### ls -l of $NFILES entries"
	echo
	echo "Wall time of \`ls -l\` (readdir plus a stat of every entry), medians of $REPS:"
	echo "through the host that created the files, through the other host, and on"
	echo "the backing $fstype."
	echo
	echo "| vmfsd, creating host | vmfsd, other host | $fstype |"
	echo "|--:|--:|--:|"
	echo "| ${ls_a} s | ${ls_b} s | ${ls_n} s |"
} >"$RESULTS"

echo
cat "$RESULTS"
$BENCH_TOOL update-doc "$BENCH_DOC" "File system (fs/, vmfsd)" "$RESULTS"
echo "bench-fs: results in ${RESULTS#"$BENCH_ROOT"/}, section updated in ${BENCH_DOC#"$BENCH_ROOT"/}"
if [ "$ok" -eq 0 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then
	exit 1
fi
exit 0
