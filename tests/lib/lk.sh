# tests/lib/lk.sh - lock manager scenarios run by several integration tests
# on different kinds of LUN (source after common.sh).  Each host is a
# separate lk_host process; times in the logs are CLOCK_REALTIME ns.

LKH="$B/tests/helpers/lk_host"
LK_INT=${LK_INT:-200}
LK_DEAD=${LK_DEAD:-2000}
# what "broken within the dead timeout plus one interval" is allowed on top
# for process scheduling and logging on a loaded machine
LK_SLACK_MS=${LK_SLACK_MS:-300}

# first time (ns) an event line matches in the given logs
first_time() { # pattern files...
	local pat=$1; shift
	grep -h -- "$pat" "$@" 2>/dev/null | awk '{print $1}' | sort -n | head -n 1
}

wait_for() { # file pattern seconds
	local i
	for i in $(seq 1 $(($3 * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "timed out waiting for '$2' in $1: $(tail -n 3 "$1")"
}

lk_format() { # spec nlocks
	"$LKH" format "$1" 16 "$LK_INT" "$LK_DEAD" "$2" >/dev/null ||
		fail "format $1"
}

# K hosts hammer NLOCKS locks for DUR seconds; every few seconds one is
# SIGKILLed and replaced.  The witness must never show two holders, and a
# killed holder's lock must be broken within dead + interval.
lk_mutex_scenario() { # spec
	local spec=$1 k=4 nlocks=2 dur=${LK_MUTEX_SECS:-20} i n=0
	local -A pid start
	local killed=() t0 held violations
	lk_format "$spec" $nlocks
	t0=$(date +%s)
	for i in 1 2 3 4; do
		n=$((n + 1))
		"$LKH" stress "$spec" "h$n" "$dur" $nlocks $((RANDOM + n)) >"$T/h$n.log" 2>"$T/h$n.err" &
		pid[h$n]=$!
	done
	# kills at 3, 6, 9, 12 s; the last one leaves time to be noticed
	for i in 1 2 3 4; do
		sleep 3
		local live=() h
		for h in "${!pid[@]}"; do
			kill -0 "${pid[$h]}" 2>/dev/null && live+=("$h")
		done
		[ ${#live[@]} -gt 0 ] || fail "all hosts died: $(cat "$T"/h*.err)"
		# prefer a host inside its critical section: that is the case
		# that needs breaking
		h=
		local try x
		for try in $(seq 1 40); do
			for x in "${live[@]}"; do
				case "$(grep -E ' (ACQ|REL) ' "$T/$x.log" | tail -n 1)" in
				*" ACQ "*) h=$x; break ;;
				esac
			done
			[ -n "$h" ] && break
			sleep 0.02
		done
		[ -n "$h" ] || h=${live[$((RANDOM % ${#live[@]}))]}
		echo "$(now_ns) KILL $h" >>"$T/kills"
		kill -KILL "${pid[$h]}"
		wait "${pid[$h]}" 2>/dev/null
		unset "pid[$h]"
		killed+=("$h")
		n=$((n + 1))
		local left=$((dur - ($(date +%s) - t0)))
		[ $left -gt 4 ] || left=4
		"$LKH" stress "$spec" "h$n" "$left" $nlocks $((RANDOM + n)) >"$T/h$n.log" 2>"$T/h$n.err" &
		pid[h$n]=$!
	done
	for h in "${!pid[@]}"; do
		wait "${pid[$h]}"
		local rc=$?
		[ $rc -eq 0 ] || fail "host $h exited $rc: $(tail -n 5 "$T/$h.log" "$T/$h.err")"
	done
	violations=$(grep -h VIOLATION "$T"/h*.log)
	[ -z "$violations" ] || fail "mutual exclusion violated: $violations"
	echo "critical sections: $(grep -h ' ACQ ' "$T"/h*.log | wc -l)"
	# breaking time for every killed host that died holding a lock
	local broken=0
	for h in "${killed[@]}"; do
		local last kill_t rec_t ms
		last=$(grep -E " (ACQ|REL) " "$T/$h.log" | tail -n 1)
		case "$last" in *" ACQ "*) ;; *) echo "$h held no lock when killed"; continue ;; esac
		kill_t=$(grep " KILL $h\$" "$T/kills" | awk '{print $1}')
		rec_t=$(first_time " RECOVER $h " "$T"/h*.log)
		if [ -z "$rec_t" ]; then
			# The log can lag: a host may die between releasing and
			# saying so.  Then others took the lock without any
			# recovery; if nobody took it after the kill, it was
			# never broken: that is a failure.
			local lock=${last##* ACQ } later
			later=$(grep -h " ACQ $lock\$" "$T"/h*.log | awk -v k="$kill_t" '$1 > k' | head -n 1)
			[ -n "$later" ] || fail "nobody recovered $h (died holding: $last)"
			echo "$h released lock $lock just before the kill (log lag)"
			continue
		fi
		ms=$(( (rec_t - kill_t) / 1000000 ))
		echo "$h: lock broken ${ms} ms after SIGKILL (dead timeout $LK_DEAD, interval $LK_INT)"
		[ $ms -le $((LK_DEAD + LK_INT + LK_SLACK_MS)) ] ||
			fail "$h broken after $ms ms > dead + interval"
		[ $ms -ge $((LK_DEAD - LK_INT)) ] ||
			fail "$h broken after only $ms ms: before it could be dead"
		[ "$(grep -c " RECOVER $h " "$T"/h*.log | awk -F: '{s+=$2} END {print s}')" -eq 1 ] ||
			fail "$h recovered more than once"
		broken=$((broken + 1))
	done
	[ $broken -gt 0 ] || fail "no host was killed inside its critical section"
}

# A host holding six locks dies; four hosts race for all of them: the dead
# host is recovered exactly once, and every racer gets every lock.
lk_race_scenario() { # spec
	local spec=$1 p kill_t rec_t ms i
	local pids=()
	lk_format "$spec" 8
	"$LKH" hold "$spec" dead excl 0,1,2,3,4,5 >"$T/dead.log" 2>&1 &
	p=$!
	wait_for "$T/dead.log" HOLDING 20
	kill -KILL $p
	wait $p 2>/dev/null
	kill_t=$(now_ns)
	for i in 1 2 3 4; do
		local order
		order=$(printf '%s\n' 0 1 2 3 4 5 | shuf | paste -sd,)
		LK_RECOVERY_LOG="$T/recovered" "$LKH" grab "$spec" "r$i" excl 30000 20 "$order" >"$T/r$i.log" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || fail "racer exited $?: $(tail -n 5 "$T"/r*.log)"
	done
	[ "$(grep -c '^dead ' "$T/recovered")" -eq 1 ] ||
		fail "dead host recovered $(grep -c '^dead ' "$T/recovered") times: $(cat "$T/recovered")"
	for i in 1 2 3 4; do
		[ "$(grep -c ' ACQ ' "$T/r$i.log")" -eq 6 ] || fail "r$i did not get all six locks"
	done
	rec_t=$(first_time " RECOVER dead " "$T"/r*.log)
	ms=$(( (rec_t - kill_t) / 1000000 ))
	echo "recovered once, by $(awk '{print $NF}' "$T/recovered"), ${ms} ms after SIGKILL"
	[ $ms -le $((LK_DEAD + LK_INT + LK_SLACK_MS)) ] || fail "recovery after $ms ms"
}

# Read-only shared and multi-writer modes between host processes.
lk_modes_scenario() { # spec
	local LUN=$1 rc R1 R2 W1
	lk_format "$LUN" 4
	"$LKH" hold "$LUN" r1 shared 0 >"$T/r1.log" 2>&1 & R1=$!
	"$LKH" hold "$LUN" r2 shared 0 >"$T/r2.log" 2>&1 & R2=$!
	"$LKH" hold "$LUN" w1 mw 1 >"$T/w1.log" 2>&1 & W1=$!
	at_exit "kill_all $R1 $R2 $W1"
	wait_for "$T/r1.log" HOLDING 20
	wait_for "$T/r2.log" HOLDING 20
	wait_for "$T/w1.log" HOLDING 20
	# readers share; a writer is refused while they read
	"$LKH" grab "$LUN" x excl 300 0 0 >"$T/x1.log" 2>&1; rc=$?
	[ $rc -eq 4 ] || fail "exclusive over two readers: exit $rc $(cat "$T/x1.log")"
	"$LKH" grab "$LUN" x mw 300 0 0 >"$T/x2.log" 2>&1; rc=$?
	[ $rc -eq 4 ] || fail "multi-writer over readers: exit $rc"
	"$LKH" grab "$LUN" r3 shared 300 50 0 >"$T/x3.log" 2>&1 || fail "third reader refused"
	# multi-writer: another writer joins; readers and exclusive are refused
	"$LKH" grab "$LUN" w2 mw 300 50 1 >"$T/x4.log" 2>&1 || fail "second multi-writer refused"
	"$LKH" grab "$LUN" x shared 300 0 1 >"$T/x5.log" 2>&1; rc=$?
	[ $rc -eq 4 ] || fail "reader over multi-writer: exit $rc"
	# readers leave (SIGTERM: release and leave): now exclusive works
	kill -TERM $R1 $R2
	wait $R1 $R2
	"$LKH" grab "$LUN" x excl 2000 50 0 >"$T/x6.log" 2>&1 || fail "exclusive after readers left: $(cat "$T/x6.log")"
	grep -q "REL 0 success" "$T/r1.log" || fail "reader did not release"
}
