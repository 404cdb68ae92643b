#!/bin/sh
# run-bench.sh - every benchmark section, in order: bench/bench-*.sh.
#
# Called by `make bench` from the repository root after the build.  Each
# section script measures one layer side by side with its reference tool,
# writes its results under build/bench/ and rewrites its own "## ..." section
# of docs/BENCHMARKS.md (bench/benchtool.py update-doc).  Later layers (lock
# manager, filesystem) add bench/bench-<layer>.sh; nothing here changes.
#
# Environment (every section honours the common ones):
#   BENCH_ONLY      space-separated section names to run (e.g. "mp"); default all
#   BENCH_DIR       directory for backing files, on a real disk (not tmpfs);
#                   default /var/tmp/vmfs-bench
#   BENCH_REPS      repetitions of each measurement pair (default 3)
#   BENCH_RUNTIME   seconds measured per run (default 5)
#   BENCH_RAMP      seconds run before measuring, same for both tools (default 1)
#   BENCH_STRICT=1  exit non-zero when a result misses its target
# Section-specific variables are documented at the top of each script.
set -eu

cd "$(dirname "$0")/.."
BENCH_ROOT=$(pwd)
BENCH_BUILD=${BENCH_BUILD:-build/default}
BENCH_OUT=${BENCH_OUT:-build/bench}
BENCH_DOC=${BENCH_DOC:-docs/BENCHMARKS.md}
BENCH_TOOL="python3 $BENCH_ROOT/bench/benchtool.py"

# The command line that reproduces this run, for the results: how we were
# started plus every BENCH_* variable set in the environment.
if [ -n "${MAKELEVEL:-}" ]; then
	invoked="make bench"
else
	invoked="bench/run-bench.sh"
fi
envs=$(env | grep '^BENCH_[A-Z_]*=' | grep -v '^BENCH_\(ROOT\|TOOL\|CMD\)=' |
	sort | sed "s/=\(.*\)/='\1'/" | tr '\n' ' ')
BENCH_CMD="$envs$invoked"
# Sections cd nowhere, but take absolute paths anyway: a relative BENCH_DOC
# or BENCH_OUT given on the command line means relative to the repository.
case $BENCH_OUT in /*) ;; *) BENCH_OUT=$BENCH_ROOT/$BENCH_OUT ;; esac
case $BENCH_DOC in /*) ;; *) BENCH_DOC=$BENCH_ROOT/$BENCH_DOC ;; esac
case $BENCH_BUILD in /*) ;; *) BENCH_BUILD=$BENCH_ROOT/$BENCH_BUILD ;; esac
export BENCH_ROOT BENCH_BUILD BENCH_OUT BENCH_DOC BENCH_TOOL BENCH_CMD

command -v python3 >/dev/null || { echo "run-bench: python3 is required" >&2; exit 1; }
mkdir -p "$BENCH_OUT" "$(dirname "$BENCH_DOC")"

status=0
ran=0
for script in bench/bench-*.sh; do
	[ -e "$script" ] || continue
	name=${script#bench/bench-}
	name=${name%.sh}
	if [ -n "${BENCH_ONLY:-}" ]; then
		case " $BENCH_ONLY " in
		*" $name "*) ;;
		*) continue ;;
		esac
	fi
	echo "==== bench: $name ($script)"
	ran=$((ran + 1))
	if ! sh "$script"; then
		echo "==== bench: $name FAILED" >&2
		status=1
	fi
done
[ "$ran" -gt 0 ] || { echo "run-bench: no section selected" >&2; exit 1; }
exit $status
