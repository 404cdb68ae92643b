#!/bin/bash
# vmfsd's control socket and flags, and the janitor:
#  - vmkfstools -P / -D find the daemon from a path under its mount and
#    name the holder of a file open read-write on another host;
#  - a host's own --hb-interval / --hb-timeout are honoured (declared in its
#    slot); bad values are refused clearly; --daemon returns once serving;
#  - when a host is SIGKILLed holding a lock nobody asks for, the surviving
#    host's janitor recovers it within its dead timeout (slot and lock
#    freed, journal replayed), and fsck is clean afterwards.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun0.img"
bin/mkfs.vmfs -L ctl -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"

# bad flag values: clear errors, nothing mounted
mkdir -p "$T/x"
bin/vmfsd --host X --mount "$T/x" --hb-interval 1s "$T/lun0.img" 2>"$T/err" &&
	fail "accepted --hb-interval 1s"
grep -q "milliseconds" "$T/err" || fail "bad interval message: $(cat "$T/err")"
bin/vmfsd --host X --mount "$T/x" --hb-interval 1000 --hb-timeout 1500 \
	"$T/lun0.img" 2>"$T/err" && fail "accepted a timeout under 2 intervals"
grep -q "at least twice the interval" "$T/err" || fail "bad timeout message: $(cat "$T/err")"
! mountpoint -q "$T/x" || fail "mounted after an error"

# A: fast heartbeat of its own (the volume's default is 3 s / 16 s)
vmfsd_start A "$T/a" --hb-interval 250 --hb-timeout 2000 "$T/lun0.img"
# B: in the background with --daemon; the command returns once it serves
mkdir -p "$T/b"
bin/vmfsd --host B --mount "$T/b" --hb-interval 250 --hb-timeout 2500 --daemon \
	"$T/lun0.img" 2>>"$T/vmfsd-B.log" || fail "vmfsd --daemon: $(cat "$T/vmfsd-B.log")"
at_exit "pkill -KILL -f 'vmfsd --host B ' ; fusermount3 -uz '$T/b' 2>/dev/null"
mountpoint -q "$T/b" || fail "--daemon returned before mounting"
bin/vmkfstools -P -h "$T/b/" >"$T/p.out" || fail "vmkfstools -P"
grep -q "VMFS volume 'ctl' spanning 1 extent" "$T/p.out" || fail "-P: $(cat "$T/p.out")"
grep -q "by host 'B'" "$T/p.out" || fail "-P host: $(cat "$T/p.out")"
grep -q "every 250 ms, dead after 2500 ms" "$T/p.out" || fail "-P heartbeat: $(cat "$T/p.out")"
echo "vmkfstools -P through B's control socket:"; sed 's/^/  /' "$T/p.out"

mkdir "$T/a/vm" && echo data >"$T/a/vm/disk.bin" || fail "create"
exec 7<>"$T/a/vm/disk.bin"
sync "$T/a/vm/disk.bin"
bin/vmkfstools -D "$T/b/vm/disk.bin" >"$T/d.out" || fail "vmkfstools -D"
grep -q "mode exclusive, 1 holder" "$T/d.out" || fail "-D mode: $(cat "$T/d.out")"
grep -q "owner: host 'A'.*(live)" "$T/d.out" || fail "-D owner: $(cat "$T/d.out")"
echo "vmkfstools -D on B names A:"; sed 's/^/  /' "$T/d.out"
( exec 8<>"$T/b/vm/disk.bin" ) 2>/dev/null && fail "B opened A's file read-write"
bin/vmkfstools -D "$T/b/vm/nothing" 2>"$T/err" && fail "-D of a missing file"
grep -q "nothing: No such file" "$T/err" || fail "-D missing: $(cat "$T/err")"
bin/vmkfstools -D "$T" 2>"$T/err" && fail "-D outside a mount"
grep -q "not under a vmfsd mount" "$T/err" || fail "-D outside: $(cat "$T/err")"
# A's declared timing: B sees A's slot with 250/2000
bin/vmfs-lk slots "$T/lun0.img" --region 1048576 >"$T/slots.out" 2>&1 ||
	fail "vmfs-lk slots: $(cat "$T/slots.out")"

# A dies holding the lock; nobody asks B for it: the janitor recovers A
t0=$(now_ns)
vmfsd_kill A
exec 7>&-
ok=0
for i in $(seq 1 100); do
	if grep -q "janitor: recovered 1 dead host" "$T/vmfsd-B.log"; then ok=1; break; fi
	sleep 0.1
done
t1=$(now_ns)
[ $ok = 1 ] || fail "B's janitor did not recover A: $(tail -n 20 "$T/vmfsd-B.log")"
ms=$(( (t1 - t0) / 1000000 ))
echo "janitor recovered A ${ms} ms after the kill (A's dead timeout 2000 ms)"
# B judged A by A's 2 s, not by the volume's 16 s
[ $ms -lt 8000 ] || fail "recovery took $ms ms"
bin/vmkfstools -D "$T/b/vm/disk.bin" >"$T/d.out" || fail "vmkfstools -D after"
# the lock record may still name A until someone takes it, but as stale:
# A's slot was recovered, its holds count for nothing
! grep -q "(live)\|(dead)\|(recovering)" "$T/d.out" ||
	fail "lock still held: $(cat "$T/d.out")"
exec 8<>"$T/b/vm/disk.bin" || fail "B cannot open the file after recovery"
exec 8>&-
[ "$(cat "$T/b/vm/disk.bin")" = data ] || fail "content after recovery"

pkill -TERM -f "vmfsd --host B " || fail "B is not running"
for i in $(seq 1 100); do mountpoint -q "$T/b" || break; sleep 0.1; done
! mountpoint -q "$T/b" || fail "B did not unmount on SIGTERM"
sleep 0.5
# B removed its socket; only SIGKILLed A's stale one is left (a new vmfsd
# on that mount point replaces it)
[ "$(ls -A "$VMFSD_RUN_DIR" | wc -l)" = 1 ] ||
	fail "control sockets left behind: $(ls "$VMFSD_RUN_DIR")"
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "fsck -n clean"
