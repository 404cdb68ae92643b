#!/bin/bash
# bench/ab-creates.sh OLD NEW [REPS]: file creates per second through FUSE
# with the vmfsd of two builds side by side, one host and two hosts (each
# in a directory of its own), on the fs benchmark's provisioned LUN
# ($BENCH_DIR/fs-lun.img: run `BENCH_ONLY=fs bench/run-bench.sh` once
# first).  OLD and NEW are checkouts (or build trees) with bin/vmfsd; the
# client is this tree's fs_bench.  The builds take turns in each
# repetition (the first alternates), so a machine that changes speed
# during the run weighs on both; prints each repetition and the medians
# (of the rates and of the per-repetition ratios new / old).
# AB_LUN=FILE: a volume of its own instead, made anew by each run (FILE
# written whole first, 3 GiB, as an array's LUN; mkfs.vmfs -H 8 -i 98304,
# with -J AB_JOURNAL_MIB if set: the journal a larger datastore gets).
# AB_PIN=1: a CPU per host, as on separate machines (host a's vmfsd and
# client on CPU 0, the one-host run too; host b's on CPU 1).
set -eu
cd "$(dirname "$0")/.."
OLD=$1 NEW=$2 REPS=${3:-5}
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmfs-bench}
RUNTIME=${BENCH_RUNTIME:-5}
LUN=$BENCH_DIR/fs-lun.img
FS_BENCH=build/default/bench/fs_bench
MA=$BENCH_DIR/fs-mnt-a MB=$BENCH_DIR/fs-mnt-b
OUT=$(mktemp -d)
trap 'fusermount3 -u "$MA" 2>/dev/null; fusermount3 -u "$MB" 2>/dev/null; rm -rf "$OUT"' EXIT

die() { echo "ab-creates: $*" >&2; exit 1; }
[ -x "$OLD/bin/vmfsd" ] || die "no $OLD/bin/vmfsd"
[ -x "$NEW/bin/vmfsd" ] || die "no $NEW/bin/vmfsd"
[ -x "$FS_BENCH" ] || die "no $FS_BENCH (make all)"
mkdir -p "$MA" "$MB"
if [ -n "${AB_LUN:-}" ]; then
	LUN=$AB_LUN
	[ -s "$LUN" ] || fio --name=provision --filename="$LUN" --rw=write \
		--bs=1m --size=3g --direct=1 --ioengine=libaio --iodepth=8 \
		--output-format=terse >/dev/null || die "writing $LUN"
else
	ls "$LUN".ready-*-provisioned >/dev/null 2>&1 ||
		die "no provisioned $LUN: run BENCH_ONLY=fs bench/run-bench.sh first"
fi

wait_gone() { # mount
	local i
	for i in $(seq 100); do mountpoint -q "$1" || return 0; sleep 0.1; done
	die "$1 still mounted"
}
on() { # cpu command...: on that CPU with AB_PIN=1
	local c=$1
	shift
	if [ "${AB_PIN:-0}" = 1 ]; then taskset -c "$c" "$@"; else "$@"; fi
}
start() { # build host mount cpu
	on "$4" "$1/bin/vmfsd" --host "$2" --mount "$3" --daemon "$LUN" \
		2>>"$OUT/vmfsd.log" || die "vmfsd $2: $(tail -n 3 "$OUT/vmfsd.log")"
}
stop() {
	fusermount3 -u "$MA" 2>/dev/null || true
	fusermount3 -u "$MB" 2>/dev/null || true
	wait_gone "$MA"
	wait_gone "$MB"
	sleep 1         # the daemons let their slots go
}
rate() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["per_s"])' "$1"; }

run() { # build rep -> "one two"
	local r1 r2 ra rb
	# each build's own format (a newer one may set features an older
	# binary refuses), anew for every run
	if [ -n "${AB_LUN:-}" ]; then
		"$1/bin/mkfs.vmfs" -f -L ab -H 8 -i 98304 \
			${AB_JOURNAL_MIB:+-J "$AB_JOURNAL_MIB"} "$LUN" >/dev/null ||
			die "mkfs.vmfs $LUN"
	fi
	start "$1" ab-a "$MA" 0
	start "$1" ab-b "$MB" 1
	mkdir -p "$MA/ab" "$MB/ab"
	on 0 "$FS_BENCH" creates --dir "$MA/ab/one-$2" --seconds "$RUNTIME" --json \
		>"$OUT/1.json" || die "creates, one host"
	# (the volume's descriptors last for any rate)
	rm -rf "$MA/ab/one-$2" || die "removing the files"
	on 0 "$FS_BENCH" creates --dir "$MA/ab/a-$2" --seconds "$RUNTIME" --json \
		>"$OUT/a.json" &
	local pa=$!
	on 1 "$FS_BENCH" creates --dir "$MB/ab/b-$2" --seconds "$RUNTIME" --json \
		>"$OUT/b.json" || die "creates, host b"
	wait $pa || die "creates, host a"
	r1=$(rate "$OUT/1.json")
	ra=$(rate "$OUT/a.json")
	rb=$(rate "$OUT/b.json")
	r2=$(python3 -c "print($ra + $rb)")
	rm -rf "$MA/ab" || die "removing the files"
	stop
	echo "$r1 $r2"
}

: >"$OUT/res"
for rep in $(seq "$REPS"); do
	if [ $((rep % 2)) = 1 ]; then order="old new"; else order="new old"; fi
	for b in $order; do
		[ "$b" = old ] && dir=$OLD || dir=$NEW
		set -- $(run "$dir" "$rep-$b")
		echo "$rep $b $1 $2" >>"$OUT/res"
		printf '  [%s/%s] %-3s one host %8.1f/s  two hosts %8.1f/s  two/one %.2f\n' \
			"$rep" "$REPS" "$b" "$1" "$2" "$(python3 -c "print($2 / $1)")"
	done
done
python3 - "$OUT/res" <<'EOF'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
d = {}
for rep, b, one, two in rows:
    d.setdefault(rep, {})[b] = (float(one), float(two))
med = lambda xs: st.median(xs)
for b in ("old", "new"):
    ones = [v[b][0] for v in d.values()]
    twos = [v[b][1] for v in d.values()]
    print(f"{b}: one host {med(ones):.0f}/s, two hosts {med(twos):.0f}/s, "
          f"two/one {med([v[b][1] / v[b][0] for v in d.values()]):.2f}")
print("new/old: one host %.2f, two hosts %.2f (medians of the repetitions' ratios)" % (
    med([v["new"][0] / v["old"][0] for v in d.values()]),
    med([v["new"][1] / v["old"][1] for v in d.values()])))
EOF
