#!/bin/bash
# A read-only host (vmfsd --read-only: no heartbeat, no locks, no writes)
# lists and stats a directory while a read-write host keeps creating,
# renaming and removing files in it (the directory splits its buckets
# meanwhile): every racing read is retried, never reported as corruption or
# returned as an error, and in the end both hosts list the same names.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun0.img"
bin/mkfs.vmfs -L race -H 8 "$T/lun0.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun0.img"
mkdir "$T/a/d" && sync "$T/a/d" || fail "mkdir"
# every read of R held 2 ms: wide windows between its FD snapshot and the
# directory blocks it reads next
vmfsd_start R "$T/r" --read-only "fault:read,delay,ms=2:$T/lun0.img"
cksum0=$(sha256sum "$T/lun0.img" | cut -c1-16)

python3 - "$T/a/d" <<'PY' &
import os, sys
d = sys.argv[1]
for i in range(1500):
    open(os.path.join(d, "f%05d" % i), "w").close()
    if i % 7 == 3:
        os.rename(os.path.join(d, "f%05d" % (i - 1)), os.path.join(d, "r%05d" % i))
    if i % 11 == 5:
        try:
            os.unlink(os.path.join(d, "f%05d" % (i - 2)))
        except FileNotFoundError:
            pass      # renamed just before
PY
writer=$!
errors=0 rounds=0
while kill -0 $writer 2>/dev/null; do
	if ! ls "$T/r/d" >"$T/ls.out" 2>"$T/ls.err"; then
		errors=$((errors + 1)); cat "$T/ls.err"
	fi
	n=$(head -n 50 "$T/ls.out" | tail -n 1)
	if [ -n "$n" ] && ! stat "$T/r/d/$n" >/dev/null 2>"$T/stat.err"; then
		# gone meanwhile (renamed or removed) is fine; anything else not
		grep -q "No such file" "$T/stat.err" || { errors=$((errors + 1)); cat "$T/stat.err"; }
	fi
	rounds=$((rounds + 1))
done
wait $writer || fail "the writer failed"
echo "read-only host: $rounds listings while the writer ran, $errors errors"
[ $errors = 0 ] || fail "errors on the read-only host"
! grep -qi "checksum\|corrupt\|damaged" "$T/vmfsd-R.log" ||
	fail "racing reads reported as corruption: $(grep -i "checksum\|corrupt\|damaged" "$T/vmfsd-R.log" | head)"
# the writer's last changes in place (a write-back journal), then read
sync "$T/a/d" || fail "sync on the writer"
[ "$(ls "$T/a/d")" = "$(ls "$T/r/d")" ] || fail "the hosts list different names"
echo "both hosts list the same $(ls "$T/r/d" | wc -l) names"
vmfsd_stop R
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun0.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
