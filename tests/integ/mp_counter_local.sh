#!/bin/bash
# Two processes with four threads each increment a counter in sector 0 of a
# file LUN and of a loop block device over another file, with the device
# layer's compare-and-write (emulated with OFD locks): the count is exact.
set -u
. tests/lib/common.sh
C=$B/tests/helpers/mp_counter
N=${MP_COUNTER_ITERS:-150}
P=2 TH=4

count() { # spec
	local spec=$1 pids=() p got
	"$C" "$spec" init || fail "init $spec"
	for p in $(seq 1 $P); do
		"$C" "$spec" caw $TH "$N" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || fail "a counter process failed on $spec"; done
	got=$("$C" "$spec" get) || fail "get"
	echo "$spec: counter $got, expected $((P * TH * N))"
	[ "$got" = "$((P * TH * N))" ] || fail "lost increments on $spec"
}

truncate -s 16M "$T/file.img" "$T/loop.img"
count "$T/file.img"
count "$T/file.img?engine=aio"
if LOOP=$(losetup -f --show "$T/loop.img" 2>/dev/null); then
	at_exit "losetup -d $LOOP"
	count "$LOOP"
else
	echo "no loop device here: block device part not run"
fi
