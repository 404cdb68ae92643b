# tests/lib/fs_model.sh - the model-based scenario on any LUNs (source after
# common.sh and vmfsd.sh).
#
#   model_scenario STEPS1 STEPS2 SPEC...
#       format SPEC... as one volume; STEPS1 random operations through host
#       A compared with tests/integ/fs_model.py's model, then STEPS2 through
#       hosts A and B interleaved; fsck -n clean afterwards.
#       VMFS_MODEL_SEED replays a run (the seed is printed).

model_scenario() {
	local steps1=$1 steps2=$2 seed=${VMFS_MODEL_SEED:-$(( $(date +%s) % 100000 ))}
	shift 2
	local specs=("$@") rev=() i
	for ((i = ${#specs[@]} - 1; i >= 0; i--)); do rev+=("${specs[$i]}"); done
	bin/mkfs.vmfs -f -L model -H 8 "${specs[@]}" >/dev/null || fail "mkfs"
	vmfsd_start A "$T/a" "${specs[@]}"
	mkdir "$T/a/one" "$T/a/two" || fail "mkdir"
	local t0=$EPOCHREALTIME t1 t2
	python3 tests/integ/fs_model.py "$seed" "$steps1" "$T/a/one" ||
		fail "one host (replay: VMFS_MODEL_SEED=$seed)"
	t1=$EPOCHREALTIME
	vmfsd_start B "$T/b" "${rev[@]}"
	t2=$EPOCHREALTIME
	python3 tests/integ/fs_model.py "$((seed + 1))" "$steps2" "$T/a/two" "$T/b/two" ||
		fail "two hosts (replay: VMFS_MODEL_SEED=$seed)"
	echo "time: one host $(python3 -c "print('%.1f' % ($t1 - $t0))") s," \
		"two hosts $(python3 -c "print('%.1f' % ($EPOCHREALTIME - $t2))") s"
	# whether the kernels cached names under holds meanwhile (vmfsd)
	bin/vmkfstools -P "$T/a" | grep "Kernel caching" | sed 's/^/host A: /'
	bin/vmkfstools -P "$T/b" | grep "Kernel caching" | sed 's/^/host B: /'
	vmfsd_stop A
	vmfsd_stop B
	bin/fsck.vmfs -n "${specs[@]}" >"$T/fsck.out" 2>&1 ||
		fail "fsck after the model runs: $(cat "$T/fsck.out")"
	echo "fsck -n clean"
}
