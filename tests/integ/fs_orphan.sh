#!/bin/bash
# Files unlinked while open (orphans):
#  - on a live host the blocks come back at the last close;
#  - when the host is SIGKILLed with such a file open, the host that
#    recovers it frees the file from the orphan list kept in the dead
#    host's heartbeat slot; fsck -n finds nothing leaked.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun0.img"
bin/mkfs.vmfs -L orphans -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" --hb-interval 250 --hb-timeout 2000 "$T/lun0.img"
vmfsd_start B "$T/b" --hb-interval 250 --hb-timeout 2500 "$T/lun0.img"
base=$(free_blocks "$T/b")

# 1. live host: unlink while open, write, read, close: blocks come back
python3 - "$T/a/live.bin" <<'PY' || fail "unlink while open"
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
os.pwrite(fd, b"x" * (40 << 20), 0)
os.fsync(fd)
os.unlink(sys.argv[1])
assert not os.path.exists(sys.argv[1])
os.pwrite(fd, b"y" * 4096, 1 << 20)
assert os.pread(fd, 4096, 1 << 20) == b"y" * 4096
assert os.pread(fd, 10, (40 << 20) - 10) == b"x" * 10
os.close(fd)
PY
sleep 0.3
[ "$(free_blocks "$T/b")" = "$base" ] ||
	fail "blocks not back after the last close: $(free_blocks "$T/b") free, $base before"
echo "unlinked while open: $((40)) MiB back at the last close"

# 2. A dies with two unlinked files open (one small, one big)
python3 - "$T/a" "$T/ready" <<'PY' &
import os, sys, time
fds = []
for name, size in (("small.bin", 70000), ("big.bin", 60 << 20)):
    p = os.path.join(sys.argv[1], name)
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"z" * size, 0)
    os.fsync(fd)
    os.unlink(p)
    fds.append(fd)
# the unlinks durable (a write-back journal): the host dies with them orphans
dfd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
os.fsync(dfd)
os.close(dfd)
open(sys.argv[2], "w").close()
time.sleep(60)
PY
holder=$!
for i in $(seq 1 100); do [ -e "$T/ready" ] && break; sleep 0.1; done
[ -e "$T/ready" ] || fail "the files were not set up"
[ "$(free_blocks "$T/b")" -lt "$base" ] || fail "unlinked open files already freed"
vmfsd_kill A
kill -KILL $holder 2>/dev/null
wait $holder 2>/dev/null
for i in $(seq 1 150); do
	grep -q "freed orphan file" "$T/vmfsd-B.log" &&
		[ "$(grep -c "freed orphan file" "$T/vmfsd-B.log")" -ge 2 ] && break
	sleep 0.1
done
grep "janitor\|orphan" "$T/vmfsd-B.log"
[ "$(grep -c "freed orphan file" "$T/vmfsd-B.log")" -ge 2 ] ||
	fail "B did not free A's orphans: $(tail -n 20 "$T/vmfsd-B.log")"
[ "$(free_blocks "$T/b")" = "$base" ] ||
	fail "blocks not back after recovery: $(free_blocks "$T/b") free, $base before"
vmfsd_stop B
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "A's orphans freed by B; fsck -n clean"
