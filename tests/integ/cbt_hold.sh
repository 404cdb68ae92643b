#!/bin/bash
# Changed-block tracking of a writer that marks before it writes (the
# executor's protocol, cbt_mark "hold" / "release" on vmfsd's control
# socket).  A block held while two checkpoints are taken (its write still
# in flight) is reported by the query since the second; once released it
# is reported since the checkpoint before its release and not after the
# next one.  A writer that dies holding blocks (its disk's connection
# ends without "close") leaves them held: reported after every checkpoint
# until its grace has passed (VMFSD_CBT_GRACE_MS, 3 s here), then not.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
export VMFSD_CBT_GRACE_MS=3000
truncate -s 1G "$T/lun0.img"
bin/mkfs.vmfs -L cbt -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
D=$T/a/d.vmdk
B=$((1 << 16))
bin/vmkfstools -c 64m -d thin "$D" || fail "-c"
bin/vmfs-cbt enable "$D" >/dev/null || fail "enable"
# the holding writer: reads one command per line from a fifo, sends it on
# its connection, says "ok" in $T/w.out; "attach" makes the connection a
# disk's (as vmrun's), "die" ends the process without "close"
mkfifo "$T/w.in"
python3 - "$VMFSD_RUN_DIR" "$T/w.in" "$T/w.out" <<'PY' &
import glob, json, os, socket, sys
run, fin, fout = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX)
s.connect(glob.glob(run + "/ctl-*.sock")[0])
f = s.makefile("rw")
out = open(fout, "w", buffering=1)
def call(req):
    f.write(json.dumps(req) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "progress" not in r:
            return r
for line in open(fin):
    req = json.loads(line)
    if req.get("cmd") == "die":
        os._exit(0)
    r = call(req)
    out.write(("ok %s" % json.dumps(r) if r.get("ok") else "error %s" % json.dumps(r)) + "\n")
PY
wp=$!
at_exit "kill_all $wp"
exec 3>"$T/w.in"
n=0
send() { # JSON; waits for its answer, which must be ok
	n=$((n + 1))
	echo "$1" >&3
	for i in $(seq 1 100); do [ "$(wc -l <"$T/w.out" 2>/dev/null || echo 0)" -ge $n ] && break; sleep 0.05; done
	tail -n 1 "$T/w.out" | grep -q '^ok' || fail "$1: $(tail -n 1 "$T/w.out")"
}
reported() { # ID BLOCK -> 0 when BLOCK is listed since ID
	bin/vmfs-cbt query "$D" --since "$1" >"$T/q" || fail "query since $1"
	python3 - "$T/q" "$2" "$B" <<'PY'
import sys
b, bs = int(sys.argv[2]), int(sys.argv[3])
for l in open(sys.argv[1]):
    o, n = map(int, l.split())
    if o <= b * bs < o + n:
        sys.exit(0)
sys.exit(1)
PY
}
send '{"cmd": "disk_attach", "path": "d-flat.vmdk", "desc": "d.vmdk", "rw": true}'
send '{"cmd": "cbt_mark", "path": "d.vmdk", "hold": [['$((5 * B + 512))', 4096], ['$((9 * B))', '$((2 * B))']]}'
grep -q '"block_size": 65536' "$T/w.out" || fail "cbt_mark does not say the block size: $(cat "$T/w.out")"
c1=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 1"
c2=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 2"
# the write lands only now: the backup taken at c2 did not see it
reported "$c2" 5 || fail "a block held across two checkpoints is missed since the second ($c2)"
reported "$c2" 10 || fail "block 10 held across two checkpoints is missed since $c2"
reported "$c1" 9 || fail "block 9 missed since $c1"
reported "$c2" 7 && fail "block 7 (never held) reported since $c2"
c3=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 3"
reported "$c3" 5 || fail "block 5, still held, missed since $c3"
echo "held blocks reported since each of three checkpoints"
# block 5's write completes: released; block 9 and 10 stay held
send '{"cmd": "cbt_mark", "path": "d.vmdk", "release": [['$((5 * B + 512))', 4096]]}'
reported "$c3" 5 || fail "block 5, released after $c3, missed since $c3"
c4=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 4"
reported "$c4" 5 && fail "block 5, released before $c4, reported since $c4"
reported "$c4" 9 || fail "block 9, still held, missed since $c4"
echo "a released block is reported once more, then not"
# the writer dies holding blocks 9 and 10
echo '{"cmd": "die"}' >&3
exec 3>&-
wait $wp
c5=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 5"
c6=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 6"
reported "$c6" 9 || fail "a dead writer's held block is missed since $c6 (within its grace)"
reported "$c6" 10 || fail "a dead writer's held block 10 is missed since $c6"
sleep 3.2
c7=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 7"
reported "$c6" 9 || fail "block 9 missed since $c6 after the grace"
c8=$(bin/vmfs-cbt checkpoint "$D") || fail "checkpoint 8"
reported "$c7" 9 && fail "a dead writer's hold outlived its grace ($c7): $(cat "$T/vmfsd-A.log")"
echo "a dead writer's holds are reported until its grace has passed, then released"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "ok"
