#!/bin/bash
# Runs every test and ends with one line: "N passed, N failed, N skipped".
#   unit tests:        build/<variant>/tests/unit/test_*   (cmocka)
#   integration tests: tests/integ/*.sh (default variant only)
# Options: --unit-only, --variant V (only that variant), --filter REGEX.
# Exit status 77 from a test means skipped.  Logs: build/test-logs/.
set -u
cd "$(dirname "$0")/.."
unit_only=0
variants="default asan tsan"
filter=""
while [ $# -gt 0 ]; do
	case "$1" in
	--unit-only) unit_only=1 ;;
	--variant) variants="$2"; shift ;;
	--filter) filter="$2"; shift ;;
	*) echo "usage: $0 [--unit-only] [--variant V] [--filter REGEX]" >&2; exit 2 ;;
	esac
	shift
done

logs=build/test-logs
mkdir -p "$logs"
pass=0 fail=0 skip=0
failed=()

selected() { [ -z "$filter" ] || [[ "$1" =~ $filter ]]; }

logof() { local n="$1"; echo "$logs/${n//\//_}.log"; }

# run NAME TIMEOUT CMD...: exit status into LOG.rc, milliseconds into LOG.ms
run() {
	local name="$1" to="$2"; shift 2
	local log start end rc
	log=$(logof "$name")
	start=$(date +%s%N)
	timeout -k 10 "$to" "$@" >"$log" 2>&1 </dev/null
	rc=$?
	end=$(date +%s%N)
	echo "$rc" >"$log.rc"
	echo $(( (end - start) / 1000000 )) >"$log.ms"
}

# The first failure (cmocka, sanitizer, assertion) with what led to it,
# then the end of the log: a long log's tail alone hides which test failed.
excerpt() { # log
	local log="$1" first
	first=$(grep -n -m 1 -E '^\[  (FAILED|ERROR) +\]|ERROR: (Address|Undefined)Sanitizer|WARNING: ThreadSanitizer|runtime error:|Assertion .* failed|^FAIL:' "$log" | cut -d: -f1)
	if [ -n "$first" ] && [ "$first" -lt "$(( $(wc -l <"$log") - 25 ))" ]; then
		sed -n "$(( first > 15 ? first - 15 : 1 )),$(( first + 10 ))p" "$log" | sed 's/^/      | /'
		echo "      | [...]"
	fi
	tail -n 25 "$log" | sed 's/^/      | /'
}

report() { # name
	local name="$1" log rc ms dur
	log=$(logof "$name")
	rc=$(cat "$log.rc")
	ms=$(cat "$log.ms")
	rm -f "$log.rc" "$log.ms"
	dur="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
	case $rc in
	0) pass=$((pass + 1)); printf 'PASS  %-48s %6ss\n' "$name" "$dur" ;;
	77) skip=$((skip + 1)); printf 'SKIP  %-48s %s\n' "$name" "$(tail -n 1 "$log")" ;;
	*) fail=$((fail + 1)); failed+=("$name")
	   [ "$rc" -eq 124 ] && echo "timed out" >>"$log"
	   printf 'FAIL  %-48s (exit %d, log %s)\n' "$name" "$rc" "$log"
	   excerpt "$log" ;;
	esac
}

run_one() { # name timeout cmd...
	selected "$1" || return 0
	run "$@"
	report "$1"
}

for v in $variants; do
	dir="build/$v/tests/unit"
	[ -d "$dir" ] || continue
	env_prefix=()
	case $v in
	asan) env_prefix=(env VMFS_TEST_SMALL=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1) ;;
	# TSan needs a memory layout that high ASLR entropy breaks: run
	# without address randomisation.
	tsan) env_prefix=(env VMFS_TEST_SMALL=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 setarch "$(uname -m)" -R) ;;
	esac
	for t in "$dir"/test_*; do
		[ -x "$t" ] || continue
		case "$t" in *.o|*.d) continue ;; esac
		run_one "$v/$(basename "$t")" 300 "${env_prefix[@]}" "$t"
	done
done

# libFuzzer targets: a short run each (FUZZ_SECONDS), corpus kept in
# build/fuzz-corpus between runs, crashes saved next to the logs.
# Two at a time: each is one CPU-bound process with nothing to share.
if [ $unit_only -eq 0 ] && [ -d build/fuzz/tests/fuzz ]; then
	names=()
	for f in build/fuzz/tests/fuzz/fuzz_*; do
		[ -x "$f" ] || continue
		case "$f" in *.o|*.d) continue ;; esac
		n=$(basename "$f")
		selected "fuzz/$n" || continue
		mkdir -p "build/fuzz-corpus/$n"
		while [ "$(jobs -pr | wc -l)" -ge 2 ]; do
			wait -n || true
		done
		# -error_exitcode: libFuzzer's default (77) is the skip status
		run "fuzz/$n" 300 "$f" -max_total_time="${FUZZ_SECONDS:-15}" \
			-error_exitcode=1 \
			-artifact_prefix="$logs/$n-" "build/fuzz-corpus/$n" &
		names+=("fuzz/$n")
	done
	wait
	for n in "${names[@]}"; do
		report "$n"
	done
fi

if [ $unit_only -eq 0 ]; then
	export VMFS_BUILD=build/default
	for t in tests/integ/*.sh; do
		[ -x "$t" ] || continue
		run_one "integ/$(basename "$t" .sh)" 900 "$t"
	done
fi

if [ ${#failed[@]} -gt 0 ]; then
	echo "failed: ${failed[*]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
