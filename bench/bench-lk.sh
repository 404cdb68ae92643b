#!/bin/sh
# bench-lk.sh - the lock manager (lockmgr/) against sanlock.
#
# Both sides on the same kind of shared file: a 64 MiB file on the real
# disk (BENCH_DIR), preallocated and written once, opened with O_DIRECT
# (our file backend always; sanlock opens O_DIRECT|O_SYNC).  Every "host" is
# a process of this machine: ours, lk_bench children with their own mp_lun
# and lk_volume (emulated compare-and-write, OFD locks); sanlock's, one
# sanlock daemon per host_id (each with its own SANLOCK_RUN_DIR), started
# here with the watchdog off, and sanlock_bench clients.
#
#   latency   uncontended acquire+release (ours: lk_acquire/lk_release
#             LK_EXCL; sanlock: sanlock_acquire/sanlock_release of one
#             paxos resource lease).  Target: ours <= 0.5x sanlock.
#   contend   2 and 4 hosts looping acquire, release on one lock; total
#             acquisitions per second and how evenly they were served.
#   takeover  the holding host dies (ours: the process, i.e. the whole host,
#             is SIGKILLed; sanlock: its daemon and the holder are
#             SIGKILLed) and another host measures the time until it holds
#             the lock.  Target: ours within dead timeout + one interval.
#             sanlock's comes from its host_id lease expiry, 8 * io_timeout
#             + 60 s (140 s with the default io_timeout 10), so by default
#             it is measured with a lowered io_timeout (1 s: 68 s); the
#             default one is opt-in.  For reference, sanlock also frees the
#             lease of a dead client process whose daemon lives (not a host
#             failure).
#
# Latency and contention alternate the order of the two tools every
# repetition, as bench-mp.sh does.  Run through bench/run-bench.sh (as
# root: the sanlock daemons).  Extra environment:
#   BENCH_LK_ITERS          acquire+release pairs per latency run (500)
#   BENCH_LK_SECONDS        seconds per contention run (BENCH_RUNTIME, 5)
#   BENCH_LK_HOSTS          contending host counts ("2 4")
#   BENCH_LK_SHORT          our short-timeout configuration, INTERVAL/DEAD
#                           ms (1000/8000); the defaults (3000/16000) too
#   BENCH_LK_TAKEOVER_REPS  repetitions of each takeover (BENCH_REPS)
#   BENCH_LK_SL_IO          sanlock io_timeout (s) of the latency and
#                           contention lockspace (10, sanlock's default)
#   BENCH_LK_SL_TK_IO       sanlock io_timeout (s) for its host-failure
#                           takeover (1)
#   BENCH_LK_SL_TK_REPS     repetitions of that takeover (1: ~70 s each)
#   BENCH_LK_SL_DEFAULT_TK=1  also measure sanlock's host-failure takeover
#                           with io_timeout 10 (~140 s each)
#   BENCH_LK_SL_LOG=1       run the daemons in the foreground (-D) with their
#                           debug log in build/bench/lk/ (slows them a bit)
#   LK_BENCH, SANLOCK_BENCH the binaries (default BENCH_BUILD/bench/...)
set -eu

: "${BENCH_ROOT:?run through bench/run-bench.sh}"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmfs-bench}
REPS=${BENCH_REPS:-3}
ITERS=${BENCH_LK_ITERS:-500}
RUNSECS=${BENCH_LK_SECONDS:-${BENCH_RUNTIME:-5}}
HOSTS=${BENCH_LK_HOSTS:-2 4}
SHORT=${BENCH_LK_SHORT:-1000/8000}
TK_REPS=${BENCH_LK_TAKEOVER_REPS:-$REPS}
SL_IO=${BENCH_LK_SL_IO:-10}
SL_TK_IO=${BENCH_LK_SL_TK_IO:-1}
SL_TK_REPS=${BENCH_LK_SL_TK_REPS:-1}
SL_DEFAULT_TK=${BENCH_LK_SL_DEFAULT_TK:-0}
SL_LOG=${BENCH_LK_SL_LOG:-0}
LK_BENCH=${LK_BENCH:-$BENCH_BUILD/bench/lk_bench}
SANLOCK_BENCH=${SANLOCK_BENCH:-$BENCH_BUILD/bench/sanlock_bench}

OUT=$BENCH_OUT/lk
RAW=$BENCH_OUT/lk-raw.tsv
RESULTS=$BENCH_OUT/lk-results.md
LK_FILE=$BENCH_DIR/lk-lun.img
SL_FILE=$BENCH_DIR/sanlock-lun.img
SIZE_MB=64
MIB=1048576
SL_LS=lkbench                      # latency/contention lockspace at 0
SL_RES=$SL_LS:r0:$SL_FILE:$MIB     # its resource lease at 1 MiB
# lk_acquire looks at a busy record again after 2 ms, doubling up to
# min(250, max(10, interval/4)) ms (lockmgr/lock.c, wait_ms and poll_ms);
# latency and contention use the default interval, 3000 ms.
# sanlock_acquire never waits for a live owner, so its clients retry on
# the same schedule (sanlock_bench --retry-ms: the period it settles at).
RETRY_MS=250

die() { echo "bench-lk: $*" >&2; exit 1; }
say() { echo "bench-lk: $*"; }

[ -x "$LK_BENCH" ] || die "$LK_BENCH missing: run make first"
[ -x "$SANLOCK_BENCH" ] || die "$SANLOCK_BENCH missing: run make first"
command -v sanlock >/dev/null || die "sanlock not installed (scripts/install-deps.sh)"
[ "$(id -u)" -eq 0 ] || die "run as root: the benchmark starts sanlock daemons"
case $SHORT in
*/*) SHORT_INT=${SHORT%/*} SHORT_DEAD=${SHORT#*/} ;;
*) die "BENCH_LK_SHORT must be INTERVAL_MS/DEAD_MS" ;;
esac
max_hosts=0
for k in $HOSTS; do [ "$k" -gt "$max_hosts" ] && max_hosts=$k; done

# ---- backing files -----------------------------------------------------------
mkdir -p "$BENCH_DIR" "$OUT"
fstype=$(findmnt -n -o FSTYPE --target "$BENCH_DIR" 2>/dev/null ||
	stat -f -c %T "$BENCH_DIR")
case $fstype in
tmpfs|ramfs) die "$BENCH_DIR is on $fstype: O_DIRECT needs a real disk (set BENCH_DIR)" ;;
esac

# Preallocated and written once in full, so that no I/O of either side
# lands on an unwritten extent (those cost a metadata update on first write).
make_file() { # path
	if [ ! -e "$1.filled-$SIZE_MB" ] || [ "$(stat -c %s "$1")" != $((SIZE_MB * MIB)) ]; then
		rm -f "$1" "$1".filled-*
		fallocate -l $((SIZE_MB * MIB)) "$1"
		dd if=/dev/zero of="$1" bs=1M count=$SIZE_MB oflag=direct conv=notrunc status=none
		touch "$1.filled-$SIZE_MB"
	fi
}
make_file "$LK_FILE"
make_file "$SL_FILE"

# ---- sanlock daemons ----------------------------------------------------------
# One daemon per host, each with its own run directory (socket and pid
# file: SANLOCK_RUN_DIR, honoured by the daemon and by libsanlock).  -w 0:
# no watchdog (wdmd), as the man page's testing example; -l 0: no mlockall;
# SANLOCK_PRIVILEGED=0 skips the rlimit/priority/group setup a container
# refuses (the daemon exits on "cannot set the limits for memlock"); none
# of them touches the lease I/O path.
RUN=$(mktemp -d /tmp/lkbench.XXXXXX)
SL_PIDS=""
# Only daemons started here, by pid, and only while that pid is still a
# sanlock (a daemon shut down earlier may have left its pid to another).
sl_alive() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = sanlock ]; }
cleanup() {
	for p in $SL_PIDS; do sl_alive "$p" && kill -TERM "$p" 2>/dev/null; done
	sleep 0.2
	for p in $SL_PIDS; do sl_alive "$p" && kill -KILL "$p" 2>/dev/null; done
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sl() { # daemon-name sanlock-args...
	d=$1
	shift
	SANLOCK_RUN_DIR=$RUN/$d sanlock "$@"
}

sl_start() { # name
	mkdir -p "$RUN/$1"
	if [ "$SL_LOG" = 1 ]; then
		SANLOCK_PRIVILEGED=0 SANLOCK_RUN_DIR=$RUN/$1 sanlock daemon -D -w 0 \
			-U root -G root -l 0 -L -1 -S -1 >"$OUT/sanlock-$1.log" 2>&1 &
	else
		# daemonizes like the packaged service (Type=forking)
		SANLOCK_PRIVILEGED=0 SANLOCK_RUN_DIR=$RUN/$1 sanlock daemon -w 0 \
			-U root -G root -l 0 -L -1 -S -1 >"$OUT/sanlock-$1.log" 2>&1
	fi
	i=0
	while ! [ -S "$RUN/$1/sanlock.sock" ] || ! [ -s "$RUN/$1/sanlock.pid" ]; do
		i=$((i + 1))
		[ $i -le 100 ] || die "sanlock daemon $1 did not start: $(cat "$OUT/sanlock-$1.log")"
		sleep 0.1
	done
	SL_PIDS="$SL_PIDS $(cat "$RUN/$1/sanlock.pid")"
}

sl_stop() { # name
	sl "$1" client shutdown -f 1 -w 1 >/dev/null 2>&1 || true
}

# Add lockspace LS (at offset OFF) to daemons "name:host_id ..." at once:
# a free host_id lease takes about 2 * io_timeout to acquire.
sl_join() { # ls off io name:id...
	ls=$1 off=$2 io=$3
	shift 3
	jpids=""
	for nh in "$@"; do
		sl "${nh%:*}" client add_lockspace -s "$ls:${nh#*:}:$SL_FILE:$off" \
			-o "$io" >"$OUT/add-$ls-${nh%:*}.log" 2>&1 &
		jpids="$jpids $!"
	done
	for p in $jpids; do
		wait "$p" || die "add_lockspace $ls failed: $(cat "$OUT"/add-"$ls"-*.log)"
	done
}

sl_init() { # ls ls-offset res-name res-offset io
	sanlock direct init -s "$1:0:$SL_FILE:$2" -o "$5" >/dev/null ||
		die "sanlock direct init -s $1 failed"
	sanlock direct init -r "$1:$3:$SL_FILE:$4" >/dev/null ||
		die "sanlock direct init -r $1 failed"
}

# ---- runs ------------------------------------------------------------------------
rm -f "$OUT"/*.json
run() { # json-name command...
	j=$OUT/$1.json
	shift
	"$@" >"$j" 2>>"$OUT/stderr.log" || {
		tail -n 5 "$OUT/stderr.log" >&2
		die "failed: $*"
	}
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("  %-28s %s" % (sys.argv[2], ", ".join("%s=%s" % (k, d[k]) for k in ("mean_us", "p99_us", "acq_per_s", "per_host", "takeover_ms") if k in d)))' "$j" "${j##*/}"
}

t_start=$(date +%s)
say "sanlock: $max_hosts daemons, lockspace $SL_LS io_timeout $SL_IO s"
hlist=""
h=1
while [ $h -le "$max_hosts" ]; do
	sl_start "h$h"
	hlist="$hlist h$h:$h"
	h=$((h + 1))
done
sl_init "$SL_LS" 0 r0 $MIB "$SL_IO"
# shellcheck disable=SC2086
sl_join "$SL_LS" 0 "$SL_IO" $hlist

rundirs() { # k -> $RUN/h1,...,$RUN/hk
	i=1 s=""
	while [ $i -le "$1" ]; do s="$s${s:+,}$RUN/h$i"; i=$((i + 1)); done
	echo "$s"
}

rep=1
while [ $rep -le "$REPS" ]; do
	if [ $((rep % 2)) -eq 1 ]; then order="ours sanlock"; else order="sanlock ours"; fi
	for tool in $order; do
		if [ "$tool" = ours ]; then
			run "latency-default-ours-$rep" "$LK_BENCH" latency \
				--spec "$LK_FILE" --iters "$ITERS"
		else
			run "latency-default-sanlock-$rep" env SANLOCK_RUN_DIR="$RUN/h1" \
				"$SANLOCK_BENCH" latency --res "$SL_RES" --iters "$ITERS"
		fi
	done
	for k in $HOSTS; do
		for tool in $order; do
			if [ "$tool" = ours ]; then
				run "contend-k$k-ours-$rep" "$LK_BENCH" contend \
					--spec "$LK_FILE" --hosts "$k" --seconds "$RUNSECS"
			else
				run "contend-k$k-sanlock-$rep" "$SANLOCK_BENCH" contend \
					--res "$SL_RES" --rundirs "$(rundirs "$k")" \
					--seconds "$RUNSECS" --retry-ms $RETRY_MS
			fi
		done
	done
	# a client process dies, its daemon (host) lives: released at once
	run "takeover-client-sanlock-$rep" "$SANLOCK_BENCH" takeover --kill client \
		--res "$SL_RES" --rundir "$RUN/h1" --settle-ms 200 --jitter-ms 200
	rep=$((rep + 1))
done
h=1
while [ $h -le "$max_hosts" ]; do sl_stop "h$h"; h=$((h + 1)); done

# ---- takeover after a host's death ------------------------------------------------
rep=1
while [ $rep -le "$TK_REPS" ]; do
	run "takeover-short-ours-$rep" "$LK_BENCH" takeover --spec "$LK_FILE" \
		--interval "$SHORT_INT" --dead "$SHORT_DEAD"
	run "takeover-default-ours-$rep" "$LK_BENCH" takeover --spec "$LK_FILE"
	rep=$((rep + 1))
done

# sanlock: fresh daemons, lockspace and resource per run (the dead host's
# host_id lease stays held), placed past the first lockspace.
sl_takeover() { # io rep
	io=$1 r=$2 ls=tk$1x$2
	off=$(( (2 + 2 * r) * MIB ))
	sl_start "a$ls"
	sl_start "b$ls"
	sl_init "$ls" $off r $((off + MIB)) "$io"
	sl_join "$ls" $off "$io" "a$ls:1" "b$ls:2"
	# the kill lands at a random point of the renewal cycle (2 * io_timeout)
	run "takeover-io$io-sanlock-$r" "$SANLOCK_BENCH" takeover --kill daemon \
		--res "$ls:r:$SL_FILE:$((off + MIB))" --holder-rundir "$RUN/a$ls" \
		--rundir "$RUN/b$ls" --settle-ms $((2000 * io)) \
		--jitter-ms $((2000 * io)) --max-s $((20 * io + 300))
	sl_stop "b$ls"
}
tk_ios=$SL_TK_IO
[ "$SL_DEFAULT_TK" = 1 ] && [ "$SL_TK_IO" != 10 ] && tk_ios="$tk_ios 10"
for io in $tk_ios; do
	n=$SL_TK_REPS
	[ "$io" = 10 ] && [ "$SL_TK_IO" != 10 ] && n=1
	rep=1
	while [ $rep -le "$n" ]; do
		say "sanlock host-failure takeover, io_timeout $io s (expect ~$((8 * io + 60)) s)"
		sl_takeover "$io" $rep
		rep=$((rep + 1))
	done
done
t_end=$(date +%s)

# ---- report ------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
sl_version="sanlock $(sanlock version 2>/dev/null | head -n 1)"
python3 - "$OUT" "$RAW" "$RESULTS.table" >"$RESULTS.verdict" <<'EOF' && ok=1 || ok=0
import glob, json, os, statistics, sys

out, raw_path, table_path = sys.argv[1:4]
runs = {}   # (kind, cfg, tool) -> [json by rep]
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    kind, cfg, tool, rep = os.path.basename(path)[:-5].rsplit("-", 3)
    with open(path) as f:
        runs.setdefault((kind, cfg, tool), []).append((int(rep), json.load(f)))

with open(raw_path, "w") as f:
    f.write("# kind\tconfig\ttool\trep\tmetric\tvalue\n")
    for (kind, cfg, tool), lst in sorted(runs.items()):
        for rep, d in sorted(lst, key=lambda x: x[0]):
            for k, v in d.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    f.write("%s\t%s\t%s\t%d\t%s\t%s\n" % (kind, cfg, tool, rep, k, v))

def vals(kind, cfg, tool, field):
    return [d[field] for _, d in runs.get((kind, cfg, tool), [])]

def med(kind, cfg, tool, field):
    v = vals(kind, cfg, tool, field)
    return statistics.median(v) if v else None

def rng(kind, cfg, tool, field, fmt):
    v = vals(kind, cfg, tool, field)
    if not v:
        return "-"
    m = fmt % statistics.median(v)
    return m if len(v) == 1 else "%s (%s-%s)" % (m, fmt % min(v), fmt % max(v))

lines, problems = [], []
lines.append("Uncontended acquire+release (one host), microseconds: median over the"
             " runs (range):")
lines.append("")
lines.append("| statistic | ours | sanlock | ours/sanlock | target |")
lines.append("|---|--:|--:|--:|---|")
lat_ok = None
for field, label in (("mean_us", "mean"), ("median_us", "median"),
                     ("p99_us", "p99")):
    o, s = med("latency", "default", "ours", field), med("latency", "default", "sanlock", field)
    ratio = o / s if o is not None and s else None
    target = ""
    if field == "mean_us" and ratio is not None:
        lat_ok = ratio <= 0.5
        target = "<= 0.5: " + ("met" if lat_ok else "**missed**")
        if not lat_ok:
            problems.append("latency %.2fx sanlock" % ratio)
    lines.append("| %s | %s | %s | %s | %s |" % (
        label, rng("latency", "default", "ours", field, "%.0f"),
        rng("latency", "default", "sanlock", field, "%.0f"),
        "%.3f" % ratio if ratio is not None else "-", target))
o = med("latency", "default", "ours", "acquire_mean_us")
s = med("latency", "default", "sanlock", "acquire_mean_us")
o2 = med("latency", "default", "ours", "release_mean_us")
s2 = med("latency", "default", "sanlock", "release_mean_us")
if None not in (o, s, o2, s2):
    lines.append("| acquire / release (means) | %.0f / %.0f | %.0f / %.0f | | |" % (o, o2, s, s2))
io = [med("latency", "default", "ours", f) for f in ("reads_per_op", "writes_per_op", "caws_per_op")]
if None not in io:
    lines.append("")
    lines.append("Ours per acquire+release: %.2f reads, %.2f writes, %.2f compare-and-writes"
                 " of one sector (device-layer counters)." % tuple(io))

lines.append("")
lines.append("Contention: every host loops acquire, release on one lock; total"
             " acquisitions per second (range), and the share of the least- and"
             " most-served host (median):")
lines.append("")
lines.append("| hosts | ours acq/s | sanlock acq/s | ours/sanlock | ours min-max share | sanlock min-max share |")
lines.append("|--:|--:|--:|--:|---|---|")
cfgs = sorted({c for (k, c, _) in runs if k == "contend"}, key=lambda c: int(c[1:]))
for cfg in cfgs:
    o, s = med("contend", cfg, "ours", "acq_per_s"), med("contend", cfg, "sanlock", "acq_per_s")
    def share(tool):
        a, b = med("contend", cfg, tool, "min_share"), med("contend", cfg, tool, "max_share")
        return "-" if a is None else "%.2f-%.2f" % (a, b)
    lines.append("| %s | %s | %s | %s | %s | %s |" % (
        cfg[1:], rng("contend", cfg, "ours", "acq_per_s", "%.0f"),
        rng("contend", cfg, "sanlock", "acq_per_s", "%.0f"),
        "%.1f" % (o / s) if o is not None and s else "-", share("ours"), share("sanlock")))

lines.append("")
lines.append("Takeover: time from the holder's death to another host holding the lock,"
             " seconds (every run):")
lines.append("")
lines.append("| side | configuration | runs | median | bound (ours) / lease expiry (sanlock) | result |")
lines.append("|---|---|--:|--:|--:|---|")
tk_ok = True
for cfg in ("short", "default"):
    lst = [d for _, d in sorted(runs.get(("takeover", cfg, "ours"), []), key=lambda x: x[0])]
    if not lst:
        continue
    d0 = lst[0]
    bound = d0["bound_ms"] / 1000.0
    t = [d["takeover_ms"] / 1000.0 for d in lst]
    ok = all(d["within"] and d["recovered"] for d in lst)
    tk_ok = tk_ok and ok
    if not ok:
        problems.append("takeover %s beyond %.1f s" % (cfg, bound))
    lines.append("| ours, host process SIGKILLed | interval %d ms, dead %d ms%s | %s | %.2f | %.1f (dead + interval) | %s |" % (
        d0["interval_ms"], d0["dead_ms"], " (defaults)" if cfg == "default" else "",
        ", ".join("%.2f" % x for x in t), statistics.median(t), bound,
        "within" if ok else "**beyond**"))
for cfg in sorted({c for (k, c, tool) in runs if k == "takeover" and tool == "sanlock" and c.startswith("io")},
                  key=lambda c: int(c[2:])):
    io_s = int(cfg[2:])
    t = [d["takeover_ms"] / 1000.0 for _, d in sorted(runs[("takeover", cfg, "sanlock")], key=lambda x: x[0])]
    lines.append("| sanlock, daemon + holder SIGKILLed | io_timeout %d s%s | %s | %.1f | %d (host_dead = 8 x io_timeout + 60) | reference |" % (
        io_s, " (default)" if io_s == 10 else "", ", ".join("%.1f" % x for x in t),
        statistics.median(t), 8 * io_s + 60))
t = [d["takeover_ms"] / 1000.0 for _, d in sorted(runs.get(("takeover", "client", "sanlock"), []), key=lambda x: x[0])]
if t:
    lines.append("| sanlock, holder process SIGKILLed, its daemon lives | (not a host failure) | %s | %.3f | - | reference |" % (
        ", ".join("%.3f" % x for x in t), statistics.median(t)))

with open(table_path, "w") as f:
    f.write("\n".join(lines) + "\n")
if problems:
    print("missed: " + "; ".join(problems))
    sys.exit(1)
print("latency and takeover targets met")
EOF
verdict=$(cat "$RESULTS.verdict")
[ -n "$verdict" ] || die "report failed"
{
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n): $(nproc) CPUs ($cpu),"
	echo "Linux $(uname -r), $sl_version; backing files $LK_FILE and"
	echo "$SL_FILE (${SIZE_MB} MiB each, $fstype, preallocated and written once);"
	echo "section took $((t_end - t_start)) s."
	echo
	echo "Command: \`$BENCH_CMD\` (section \`bench/bench-lk.sh\`)."
	echo
	echo "Every host is a process on this machine sharing one file.  Ours:"
	echo "\`build/default/bench/lk_bench\`, each host its own \`mp_lun\` (O_DIRECT"
	echo "file backend, emulated compare-and-write) and \`lk_volume\`; heartbeat"
	echo "region at 0 (16 slots), the lock record at 1 MiB; \`lk_acquire(LK_EXCL)\`"
	echo "then \`lk_release\`.  sanlock: one \`sanlock daemon -w 0 -U root -G root -l 0\`"
	echo "per host (watchdog off, own SANLOCK_RUN_DIR, SANLOCK_PRIVILEGED=0), lockspace"
	echo "and resource written by \`sanlock direct init\` (512-byte sectors, 1 MiB"
	echo "align, 2000 hosts: sanlock's defaults for files), host_ids added with"
	echo "\`sanlock client add_lockspace -o IO_TIMEOUT\`; \`build/default/bench/sanlock_bench\`"
	echo "calls \`sanlock_acquire\`/\`sanlock_release\` (libsanlock) on a registered"
	echo "connection."
	echo
	echo "- Latency: $REPS runs of $ITERS acquire+release pairs each (after 50 unmeasured),"
	echo "  one host; the two tools alternate.  sanlock lockspace io_timeout $SL_IO s."
	echo "- Contention: $REPS runs of ${RUNSECS} s per host count, all hosts"
	echo "  starting at one instant; a host holds for 0 us and loops at once.  A busy"
	echo "  lock is looked at again after 2 ms, doubling up to $RETRY_MS ms, on both"
	echo "  sides (\`lk_acquire\` does it itself; sanlock clients retry"
	echo "  \`SANLK_ACQUIRE_OWNER_NOWAIT\`)."
	echo "- Takeover: ours $TK_REPS runs per configuration; the taker has watched the"
	echo "  holder beat for one interval plus a random part of one, then the holder"
	echo "  process is SIGKILLed and the taker calls \`lk_acquire\` (dead-host detection,"
	echo "  recovery callback, breaking the hold).  Ours can come in under the dead"
	echo "  timeout: it runs from the last change of the holder's slot the taker saw,"
	echo "  i.e. the holder's last beat (up to one interval before the kill) plus the"
	echo "  monitor's lag (up to half an interval); the holder fences itself before"
	echo "  that (fence deadline < dead timeout).  sanlock: a client of daemon A holds"
	echo "  the lease, daemon A and that client are SIGKILLed after a random point of"
	echo "  the renewal cycle, a client of daemon B acquires (retrying while B still"
	echo "  reports the owner alive).  sanlock's takeover is bounded by its host_id"
	echo "  lease expiry, 8 x io_timeout + 60 s (140 s at its default io_timeout 10),"
	echo "  hence measured with io_timeout $SL_TK_IO s;"
	if [ "$SL_DEFAULT_TK" = 1 ]; then
		echo "  the default io_timeout 10 was measured too (BENCH_LK_SL_DEFAULT_TK=1)."
	else
		echo "  the default io_timeout 10 is opt-in (BENCH_LK_SL_DEFAULT_TK=1; a manual"
		echo "  run is recorded under \"Lock manager: analysis\")."
	fi
	echo
	echo "Raw runs: \`${RAW#"$BENCH_ROOT"/}\`, JSON per run in \`${OUT#"$BENCH_ROOT"/}/\`."
	echo
	cat "$RESULTS.table"
	echo
	echo "Result: $verdict."
} >"$RESULTS"
rm -f "$RESULTS.table" "$RESULTS.verdict"

echo
cat "$RESULTS"
$BENCH_TOOL update-doc "$BENCH_DOC" "Lock manager" "$RESULTS"
echo "bench-lk: results in ${RESULTS#"$BENCH_ROOT"/}, section updated in ${BENCH_DOC#"$BENCH_ROOT"/}"
if [ "$ok" -eq 0 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then
	exit 1
fi
exit 0
