#!/bin/bash
# File system crash: a host doing creates (two writes, the second
# extending, then fsync), renames and unlinks is SIGKILLed mid-stream.
# Another host takes the directory's lock, which recovers the dead host by
# journal replay; everything fsync'd is there with its contents, and of
# the renames and unlinks acknowledged after the last fsync a prefix, each
# whole or not at all (fs_worker verify).
#  - at a random moment;
#  - inside a transaction: its in-place writes to file descriptors hang
#    (after the batch is in the journal) until the kill, so replay is what
#    saves it;
# each plain, and with the dead host's unflushed writes lost at the kill
# (volatile write cache).
# FS_CRASH_LUNS=iscsi (fs_crash_iscsi.sh) runs the same on tgtd iSCSI LUNs.
set -u
. tests/lib/common.sh
W="$B/tests/helpers/fs_worker"
if [ "${FS_CRASH_LUNS:-file}" = iscsi ]; then
	. tests/lib/tgt.sh
	tgt_require
	tgt_start "$T"
	at_exit tgt_stop
fi
DEAD_MS=2500
INT_MS=250

crash_once() { # label fault-options(or "") seed hang(0/1)
	local label=$1 opts=$2 seed=$3 hang=$4 t_kill t_done ms rc prefix="" lun
	if [ "${FS_CRASH_LUNS:-file}" = iscsi ]; then
		lun=$(tgt_add_lun "$T" "c${label//-/}" 2G) || fail "tgt_add_lun"
	else
		lun=$T/lun-$label.img
		truncate -s 2G "$lun"
	fi
	bin/mkfs.vmfs -H 8 --hb-interval $INT_MS --hb-timeout $DEAD_MS \
		"$lun" >/dev/null || fail "mkfs"
	if [ "$hang" = 1 ]; then
		read -r fd_off fd_len < <("$W" fdarea "$lun")
		# the FDs' 4 KiB images, which only the journal's in-place
		# step writes (not the 512-byte lock records beside them)
		opts="${opts:+$opts;}write,hang,off=$fd_off,len=$fd_len,minlen=4096,after=$((100 + RANDOM % 200))"
	fi
	[ -n "$opts" ] && prefix="fault:$opts:"
	"$W" run "$prefix$lun" victim vms "$seed" >"$T/$label.log" 2>"$T/$label.err" &
	local pid=$!
	for _ in $(seq 1 100); do grep -q READY "$T/$label.log" && break; sleep 0.1; done
	if [ "$hang" = 1 ]; then
		# wait until it is stuck inside a transaction
		local last=-1 now
		for _ in $(seq 1 300); do
			sleep 0.2
			now=$(wc -l <"$T/$label.log")
			[ "$now" = "$last" ] && break
			last=$now
		done
	else
		sleep "$(( (RANDOM % 3) + 2 )).$(( RANDOM % 10 ))"
	fi
	kill -0 $pid 2>/dev/null || fail "worker died early: $(cat "$T/$label.err")"
	kill -KILL $pid
	wait $pid 2>/dev/null
	t_kill=$(date +%s%N)
	echo "$label: killed after $(grep -c '^OK' "$T/$label.log") acknowledged operations"
	"$W" verify "$lun" survivor vms "$T/$label.log" >"$T/$label.verify" 2>&1
	rc=$?
	t_done=$(date +%s%N)
	cat "$T/$label.verify"
	[ $rc -eq 0 ] || fail "$label: verification failed (exit $rc)"
	ms=$(( (t_done - t_kill) / 1000000 ))
	echo "$label: recovered and verified ${ms} ms after the kill"
	if grep -q "recovering dead host 'victim'" "$T/$label.verify"; then
		grep "journal of slot" "$T/$label.verify" || true
	elif [ "$hang" = 1 ]; then
		fail "$label: the victim was stopped inside a transaction, yet not recovered"
	else
		echo "$label: (the victim held no lock the survivor needed)"
	fi
	[ "$hang" = 0 ] || grep -q "transaction(s) replayed" "$T/$label.verify" ||
		fail "$label: no journal replay"
	if ! bin/fsck.vmfs -n "$lun" >"$T/$label.fsck" 2>&1; then
		# Known open bug (issue 4 note): a crash can leak a file's
		# sub-blocks (space only: every acknowledged byte verified
		# above).  Anything else fsck finds is a failure; the leak must
		# be reclaimed by fsck -y and then the volume be clean.
		if grep -v -e "allocated but unused" -e "problem(s) found" \
			"$T/$label.fsck" | grep -q .; then
			fail "$label: fsck.vmfs -n afterwards: $(cat "$T/$label.fsck")"
		fi
		echo "$label: KNOWN LEAK: $(grep 'allocated but unused' "$T/$label.fsck")"
		bin/fsck.vmfs -y "$lun" >/dev/null 2>&1
		bin/fsck.vmfs -n "$lun" >"$T/$label.fsck2" 2>&1 ||
			fail "$label: still not clean after fsck -y: $(cat "$T/$label.fsck2")"
	fi
	echo "$label: fsck.vmfs -n clean"
}

crash_once plain "" 11 0
crash_once wcache "wcache" 12 0
crash_once plain-in-tx "" 13 1
crash_once wcache-in-tx "wcache" 14 1
exit 0
