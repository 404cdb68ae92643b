# tests/lib/mpath.sh - the frame of the multipath iSCSI tests (bash):
# tgtd with LUNs behind two portals, reached over two veth links from a
# namespace (tests/lib/tgt.sh), and the verified stream helper.
#
#   mpath_setup LUN...   start tgtd, add each LUN (64M), set up the two
#                        links; exits 77 (skip) without tgtd or netns, 1 on
#                        failure.  Then:
#   H                    tests/helpers/mp_mpath_stream of the build
#   dir                  the test's scratch directory (removed at exit);
#                        the stream's output goes to $dir/out by convention
#   hpid                 set it to a background stream's pid: killed at exit
#   fail MSG             print, show $dir/out, exit 1
#   field NAME           NAME=value from the stream's "result" line
# tgtd and the namespace are stopped at exit.
set -u
. tests/lib/tgt.sh
tgt_require
B=${VMFS_BUILD:-build/default}
H=$B/tests/helpers/mp_mpath_stream
[ -x "$H" ] || { echo "FAIL: $H not built (run make)"; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/iscsi_mpath.XXXXXX") || exit 1
hpid=
_mpath_cleanup() {
	[ -n "$hpid" ] && kill -KILL "$hpid" 2>/dev/null
	tgt_stop
	rm -rf "$dir"
}
trap _mpath_cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$dir/out" ] && cat "$dir/out"; exit 1; }
field() { sed -n "s/^result.* $1=\([^ ]*\).*/\1/p" "$dir/out"; }

mpath_setup() {
	local lun r
	tgt_start "$dir" || fail "tgtd did not start"
	for lun in "$@"; do
		tgt_add_lun "$dir" "$lun" 64M >/dev/null || fail "tgt_add_lun $lun"
	done
	tgt_paths_setup; r=$?
	[ $r -eq 77 ] && exit 77
	[ $r -eq 0 ] || fail "could not set up the namespace and portals"
}
