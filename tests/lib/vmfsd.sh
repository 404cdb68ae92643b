# tests/lib/vmfsd.sh - start and stop vmfsd hosts for integration tests
# (source after common.sh).
#
#   vmfsd_start NAME MOUNTDIR DEVICE...   start a host, wait for its mount
#   vmfsd_stop NAME                        SIGTERM, wait, check it unmounted
#   vmfsd_kill NAME                        SIGKILL (a crash), lazy unmount
#   kib FILE                               KiB allocated to FILE (du)
#   free_blocks DIR                        free blocks of the file system at DIR
# Hosts are stopped at exit.  Logs: $T/vmfsd-NAME.log

declare -A VMFSD_PID VMFSD_MNT
# control sockets of the test's daemons stay in the test's directory
export VMFSD_RUN_DIR=$T/run

vmfsd_start() {
	local name=$1 mnt=$2 i
	shift 2
	mkdir -p "$mnt"
	bin/vmfsd --host "$name" --mount "$mnt" "$@" >"$T/vmfsd-$name.log" 2>&1 &
	VMFSD_PID[$name]=$!
	VMFSD_MNT[$name]=$mnt
	at_exit "vmfsd_kill $name"
	for i in $(seq 1 100); do
		# serving: mounted, control socket up
		mountpoint -q "$mnt" && grep -q "serving the volume" \
			"$T/vmfsd-$name.log" && return 0
		kill -0 "${VMFSD_PID[$name]}" 2>/dev/null ||
			fail "vmfsd $name died: $(cat "$T/vmfsd-$name.log")"
		sleep 0.1
	done
	fail "vmfsd $name did not mount $mnt: $(cat "$T/vmfsd-$name.log")"
}

vmfsd_stop() {
	local name=$1 pid=${VMFSD_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	VMFSD_PID[$name]=
	! mountpoint -q "${VMFSD_MNT[$name]}" || fail "vmfsd $name left its mount"
}

vmfsd_kill() {
	local name=$1 pid=${VMFSD_PID[$1]:-}
	if [ -n "$pid" ]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		VMFSD_PID[$name]=
	fi
	# a dead daemon's mount fails every stat (ENOTCONN): look it up in
	# the mount table instead
	if grep -qF " ${VMFSD_MNT[$name]} fuse" /proc/mounts; then
		fusermount3 -uz "${VMFSD_MNT[$name]}" 2>/dev/null
	fi
	return 0
}

kib() { du -k "$1" | cut -f1; }

free_blocks() { python3 -c "import os,sys; print(os.statvfs(sys.argv[1]).f_bfree)" "$1"; }
