# tests/lib/common.sh - shared by the integration tests (source from bash).
#
#   B                  build directory of the programs under test
#   T                  a scratch directory on a filesystem with O_DIRECT,
#                      removed at exit
#   fail MSG           print and exit 1
#   now_ns             CLOCK_REALTIME in ns (what the helpers log)
#   at_exit CMD        run CMD at exit (before T is removed), last first
#   kill_all PID...    SIGKILL and reap

B=${VMFS_BUILD:-build/default}
T=$(mktemp -d "${VMFS_TEST_DIR:-/var/tmp}/vmfs-test.XXXXXX")
_exit_cmds=()

at_exit() { _exit_cmds=("$*" "${_exit_cmds[@]}"); }

_common_exit() {
	local c
	for c in "${_exit_cmds[@]}"; do eval "$c"; done
	rm -rf "$T"
}
trap _common_exit EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

now_ns() { date +%s%N; }

kill_all() {
	local p
	for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
	for p in "$@"; do wait "$p" 2>/dev/null; done
	return 0
}
