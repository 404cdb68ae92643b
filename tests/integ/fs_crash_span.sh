#!/bin/bash
# Crash of a host whose journal changes an extent the survivor has not
# seen yet.  Host B mounts the one-extent volume first, without a janitor
# (so it does not read the superblock again by itself: the window between
# a span and the survivor's next refresh, made deterministic).  Host A
# fills extent 0, spans the volume onto a new LUN (vmkfstools -Z's
# library call), then creates (fsync'd), renames and unlinks files whose
# blocks land on the new extent, and is SIGKILLed mid-workload: at a
# random moment, or inside a batch whose in-place writes to the new
# extent hang after it is in the journal (only replay can complete it).
#  1. B has the new LUN as a candidate: recovering A reads the geometry
#     again before the replay (when A's journal has anything after its
#     checkpoint: always when stopped inside a batch), finds the LUN, and
#     every fsync'd file is there with its contents; fsck -n is clean.
#  2. B does not have it: the recovery fails loudly (the extent named),
#     never skips A's transactions; fsck -y with both LUNs recovers A and
#     the volume is clean.
set -u
. tests/lib/common.sh
W="$B/tests/helpers/fs_worker"
live=()     # helpers still running (killed if the test fails)
at_exit 'for p in "${live[@]}"; do kill -KILL "$p" 2>/dev/null; done'

run_once() { # label candidate(yes/no) seed hang(0/1)
	local label=$1 cand=$2 seed=$3 hang=$4 head="$T/$1-head.img" new="$T/$1-new.img"
	local apid bpid rc c=- aspec last now
	truncate -s 192M "$head"
	truncate -s 512M "$new"
	bin/mkfs.vmfs -H 4 -J 8 --hb-interval 250 --hb-timeout 2500 "$head" \
		>/dev/null || fail "mkfs"
	[ "$cand" = yes ] && c=$new
	"$W" spanverify "$head" "$c" survivor vms "$T/$label.log" "$T/$label.go" \
		>"$T/$label.verify" 2>&1 &
	bpid=$!
	live=($bpid)
	for _ in $(seq 1 100); do grep -q READY "$T/$label.verify" && break; sleep 0.1; done
	grep -q "READY (1 extent)" "$T/$label.verify" || fail "$label: B: $(cat "$T/$label.verify")"
	aspec=$new
	[ "$hang" = 1 ] && aspec="fault::$new"
	"$W" spanrun "$head" "$aspec" victim vms "$seed" "$hang" \
		>"$T/$label.log" 2>"$T/$label.err" &
	apid=$!
	live+=($apid)
	for _ in $(seq 1 200); do grep -q READY "$T/$label.log" && break; sleep 0.1; done
	grep -q READY "$T/$label.log" || fail "$label: A: $(cat "$T/$label.err")"
	if [ "$hang" = 1 ]; then
		# wait until it is stuck inside a transaction
		last=-1
		for _ in $(seq 1 300); do
			sleep 0.2
			now=$(wc -l <"$T/$label.log")
			[ "$now" = "$last" ] && break
			last=$now
		done
	else
		sleep "$(( (RANDOM % 2) + 2 )).$(( RANDOM % 10 ))"
	fi
	kill -0 $apid 2>/dev/null || fail "$label: A died early: $(cat "$T/$label.err")"
	kill -KILL $apid
	wait $apid 2>/dev/null
	live=($bpid)
	echo "$label: A killed after $(grep -c '^OK' "$T/$label.log") acknowledged operations"
	touch "$T/$label.go"
	wait $bpid
	rc=$?
	live=()
	if [ "$cand" = yes ]; then
		cat "$T/$label.verify"
		[ $rc -eq 0 ] || fail "$label: verification failed (exit $rc)"
		grep -q "1 dead host(s) recovered before anything was read" "$T/$label.verify" ||
			fail "$label: A not recovered first"
		# A's journal holds what is not in place yet (write-back): at a
		# random kill that may be nothing; stopped inside a batch, never
		if [ "$hang" = 1 ] || grep -q "transaction(s) replayed" "$T/$label.verify"; then
			grep -q "changes extent 1: the volume.s geometry read again first" \
				"$T/$label.verify" || fail "$label: the replay did not meet the new extent"
		else
			echo "$label: nothing of A's journal after its checkpoint (no replay)"
		fi
		grep -Eq "checked, [1-9][0-9]* with blocks beyond extent 0" "$T/$label.verify" ||
			fail "$label: no acknowledged file on the new extent"
		[ "$hang" = 0 ] || grep -Eq "slot 1: [1-9][0-9]* transaction\(s\) replayed" \
			"$T/$label.verify" || fail "$label: stopped inside a transaction, none replayed"
		bin/fsck.vmfs -n "$head" "$new" >"$T/$label.fsck" 2>&1 ||
			fail "$label: fsck -n: $(cat "$T/$label.fsck")"
		echo "$label: recovered across the span, all verified, fsck -n clean"
	else
		[ $rc -eq 3 ] || fail "$label: B without the LUN: exit $rc: $(cat "$T/$label.verify")"
		grep -q "changes extent 1, which this host does not see" "$T/$label.verify" ||
			fail "$label: no clear message: $(cat "$T/$label.verify")"
		grep "which this host does not see" "$T/$label.verify" | head -1
		bin/fsck.vmfs -y "$head" "$new" >"$T/$label.fsck" 2>&1
		rc=$?
		[ $rc -le 1 ] || fail "$label: fsck -y: $(cat "$T/$label.fsck")"
		bin/fsck.vmfs -n "$head" "$new" >"$T/$label.fsck" 2>&1 ||
			fail "$label: fsck -n after -y: $(cat "$T/$label.fsck")"
		echo "$label: recovery refused without the LUN; fsck -y with it: clean"
	fi
}

run_once found yes 21 0
run_once found-in-tx yes 22 1
run_once missing-in-tx no 23 1
exit 0
