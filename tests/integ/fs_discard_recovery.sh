#!/bin/bash
# Blocks freed on behalf of a crashed host go back to a file LUN (punch
# hole), as the blocks a live host frees do.  A host writes 32 MiB into a
# file, fsyncs, and is SIGKILLed after leaving those blocks to be freed:
#  - replay: its truncate to 0 committed to the journal but its in-place
#    writes of cluster headers hang; another host recovers it (journal
#    replay frees the blocks);
#  - orphan: it unlinked the file while open; another host recovers it and
#    frees the orphan;
#  - fsck: the same orphan, no host recovers it: fsck -y frees the leaked
#    FD and blocks.
# The LUN file's allocated bytes drop by at least 28 of the 32 MiB (one
# truncate transaction frees 32 blocks of 1 MiB); fsck -n
# is clean afterwards.
set -u
. tests/lib/common.sh
W="$B/tests/helpers/fs_worker"
live=()     # the victim while it runs (killed if the test fails)
at_exit 'for p in "${live[@]}"; do kill -KILL "$p" 2>/dev/null; done'

alloc_mib() { echo $(( $(stat -c '%b * %B' "$1") / 1048576 )); }

one() { # label mode(truncate|orphan) how(recover|fsck)
	local label=$1 mode=$2 how=$3 lun="$T/$1.img" spec pid before after
	truncate -s 1G "$lun"
	bin/mkfs.vmfs -H 4 --hb-interval 250 --hb-timeout 2500 "$lun" >/dev/null ||
		fail "mkfs"
	spec=$lun
	[ "$mode" = truncate ] && spec="fault::$lun"
	"$W" free "$spec" victim big 32 "$mode" >"$T/$label.log" 2>"$T/$label.err" &
	pid=$!
	live=($pid)
	for _ in $(seq 1 200); do grep -q READY "$T/$label.log" && break; sleep 0.1; done
	grep -q READY "$T/$label.log" || fail "$label: $(cat "$T/$label.err")"
	sleep 1    # into the hung in-place write
	kill -0 $pid 2>/dev/null || fail "$label: the victim died early: $(cat "$T/$label.err")"
	kill -KILL $pid
	wait $pid 2>/dev/null
	live=()
	before=$(alloc_mib "$lun")
	if [ "$how" = recover ]; then
		"$W" recover "$lun" survivor >"$T/$label.rec" 2>&1 ||
			fail "$label: recovery: $(cat "$T/$label.rec")"
		[ "$mode" = orphan ] || grep -Eq "slot [0-9]+: [1-9][0-9]* transaction\(s\) replayed" \
			"$T/$label.rec" || fail "$label: nothing replayed: $(cat "$T/$label.rec")"
	else
		bin/fsck.vmfs -y "$lun" >"$T/$label.fsck" 2>&1
		[ $? -le 1 ] || fail "$label: fsck -y: $(cat "$T/$label.fsck")"
		grep -q "allocated but unused" "$T/$label.fsck" ||
			fail "$label: fsck -y found no leaked blocks: $(cat "$T/$label.fsck")"
	fi
	after=$(alloc_mib "$lun")
	echo "$label: LUN file allocation $before MiB -> $after MiB"
	[ $(( before - after )) -ge 28 ] || fail "$label: the freed blocks were not discarded"
	bin/fsck.vmfs -n "$lun" >"$T/$label.fsck2" 2>&1 ||
		fail "$label: fsck -n: $(cat "$T/$label.fsck2")"
	rm -f "$lun"
}

one replay truncate recover
one orphan orphan recover
one fsck orphan fsck
exit 0
