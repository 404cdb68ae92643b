#!/bin/bash
# Kernel caching of the directories a host holds (vmfsd.c): host A's
# kernel keeps names and directory attributes while A holds the directory
# (fewer lookups and getattrs reach vmfsd), and still shows, right after
# host B changed them, B's names and attributes: B's change waits for A's
# hold, and A's kernel forgets before it goes.  A's own changes outside
# FUSE (the control socket: vmkfstools) show at once too.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun.img"
bin/mkfs.vmfs -f -L kcache -H 8 --hb-interval 250 --hb-timeout 2500 \
	"$T/lun.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun.img"
vmfsd_start B "$T/b" "$T/lun.img"
A=$T/a B=$T/b
bin/vmkfstools -P "$A" | grep -q "Kernel caching of directories held: on" || {
	bin/vmkfstools -P "$A" | grep "Kernel caching"
	echo "SKIP: this kernel cannot be told to forget names (FUSE_NOTIFY_INC_EPOCH, 7.44)"
	exit 77
}
# counter NAME DIR: a figure of the "Kernel caching" line of vmkfstools -P
counter() {
	bin/vmkfstools -P "$2" | sed -n "s/.*; \([0-9]*\) lookups, \([0-9]*\) getattrs, \([0-9]*\) replies cacheable, \([0-9]*\) invalidations/\1 \2 \3 \4/p" |
		awk -v f="$1" '{ print f == "lookups" ? $1 : f == "getattrs" ? $2 : f == "replies" ? $3 : $4 }'
}

mkdir -p "$A/d/x" || fail "mkdir"

# 1. never stale: A caches d/x and d's attributes, B replaces x and adds a
# directory and syncs (B's changes are in place for other hosts once
# synced: a write-back journal), and A shows B's view at once, each round
# (every fifth after a pause: a directory another host wrote in is not
# kept held, so not cached, for 2 s after; fs/keep.c)
for round in $(seq 1 25); do
	[ $((round % 5)) = 1 ] && sleep 2.2
	ia=$(stat -c %i "$A/d/x") && na=$(stat -c %h "$A/d") || fail "stat on A"
	stat "$A/d/x" "$A/d" >/dev/null
	mv "$B/d/x" "$B/d/old$round" && mkdir "$B/d/x" && sync "$B/d" ||
		fail "B's change ($round)"
	ib=$(stat -c %i "$B/d/x") nb=$(stat -c %h "$B/d")
	ia2=$(stat -c %i "$A/d/x") na2=$(stat -c %h "$A/d")
	[ "$ia2" = "$ib" ] || fail "round $round: A shows d/x as inode $ia2 (B made $ib, was $ia)"
	[ "$na2" = "$nb" ] || fail "round $round: A shows d with $na2 links, B $nb (was $na)"
	[ -d "$A/d/old$round" ] || fail "round $round: A does not see d/old$round"
	# and back: B removes what A just looked at
	rmdir "$B/d/old$round" && sync "$B/d" || fail "rmdir on B ($round)"
	[ ! -e "$A/d/old$round" ] || fail "round $round: A still sees d/old$round"
done
echo "25 rounds: A saw each of B's renames, new directories and removals at once"

# 2. a path through directories A holds, renamed on B
mkdir -p "$A/p/q/r" && stat "$A/p/q/r" >/dev/null || fail "mkdir p/q/r"
mv "$B/p/q" "$B/p/q2" && sync "$B/p" || fail "rename on B"
[ ! -e "$A/p/q/r" ] || fail "A still walks p/q/r after B renamed q"
[ -d "$A/p/q2/r" ] || fail "A does not see p/q2/r"

# 3. A's own changes outside FUSE (a disk renamed through the control
# socket) show on A at once, also while A holds the directory exclusively
# for creates of its own through FUSE (the rename then needs no new hold)
bin/vmkfstools -c 1M "$A/d/disk0.vmdk" >/dev/null || fail "vmkfstools -c"
python3 - "$A/d" <<'PY' &
import os, sys, time
d = sys.argv[1]
end = time.time() + 60
i = 0
while time.time() < end and not os.path.exists(os.path.join(d, "stop")):
    p = os.path.join(d, "c%d" % (i % 50))
    open(p, "w").close()
    os.unlink(p)
    i += 1
PY
creator=$!
for r in $(seq 1 6); do
	stat "$A/d/disk$((r - 1)).vmdk" >/dev/null || fail "stat disk$((r - 1))"
	bin/vmkfstools -E "$A/d/disk$((r - 1)).vmdk" "$A/d/disk$r.vmdk" >/dev/null ||
		fail "vmkfstools -E ($r)"
	[ ! -e "$A/d/disk$((r - 1)).vmdk" ] || fail "A still sees disk$((r - 1)).vmdk after its own rename"
	[ -e "$A/d/disk$r.vmdk" ] || fail "A does not see disk$r.vmdk"
done
touch "$A/d/stop"
wait $creator || fail "creates on A"
[ "$(counter drops "$A")" -gt 0 ] || fail "no invalidation was sent"
echo "6 renames of A's own through vmkfstools, beside A's creates, showed on A at once"

# 4. attributes of a directory reached without a lookup (the working
# directory): B adds a directory in d, A's "." shows the new link count
python3 - "$A/d" "$B/d" <<'PY' || fail "working directory: see above"
import os, sys, time
a, b = sys.argv[1:]
os.chdir(a)
for i in range(4):
    time.sleep(2.2)         # no hold is kept for 2 s after a writer's wait
    try:
        os.stat("none")     # a lookup in d: A holds it (and may cache)
    except FileNotFoundError:
        pass
    before = os.stat(".").st_nlink
    os.stat(".")
    os.mkdir(os.path.join(b, "wd%d" % i))
    fd = os.open(b, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    want = os.stat(b).st_nlink
    got = os.stat(".").st_nlink
    if got != want:
        sys.exit("round %d: A's \".\" has %d links, B's d %d (was %d)" % (i, got, want, before))
    os.rmdir(os.path.join(b, "wd%d" % i))
print("4 rounds: A's working directory showed B's new link counts at once")
PY

# (a directory another host wrote in is not kept held for 2 s: fs/keep.c)
sleep 3
# 5. cached: 200 stats of one path in quick succession ask vmfsd far
# fewer than 200 times for its names and attributes
stat "$A/d/x" >/dev/null
l0=$(counter lookups "$A") g0=$(counter getattrs "$A")
python3 - "$A/d/x" <<'PY' || fail "stat loop"
import os, sys
for _ in range(200):
    os.stat(sys.argv[1])
PY
l1=$(counter lookups "$A") g1=$(counter getattrs "$A")
echo "200 stats of d/x on A: $((l1 - l0)) lookups, $((g1 - g0)) getattrs reached vmfsd"
[ $((l1 - l0)) -lt 20 ] || fail "names not cached: $((l1 - l0)) lookups for 200 stats"
[ "$(counter replies "$A")" -gt 0 ] || fail "no cacheable reply"
# a directory A holds (it keeps looking names up in it: a name that is not
# there is never cached): its attributes too
g0=$(counter getattrs "$A")
python3 - "$A/d" <<'PY' || fail "stat loop"
import os, sys
for i in range(200):
    os.stat(sys.argv[1])
    try:
        os.stat(os.path.join(sys.argv[1], "none%d" % i))
    except FileNotFoundError:
        pass
PY
g1=$(counter getattrs "$A")
echo "200 stats of d on A, each with a lookup in it: $((g1 - g0)) getattrs reached vmfsd"
[ $((g1 - g0)) -lt 50 ] || fail "attributes of d not cached: $((g1 - g0)) getattrs"

# 6. a file A made (create through FUSE): its attributes cached while A
# holds it (the open after the create asks for none), shown right after
# B, once A's hold went, wrote past its end and changed its mode
mkdir "$A/f" || fail "mkdir f"
g0=$(counter getattrs "$A")
python3 - "$A/f" <<'PY' || fail "creates in f"
import os, sys
for i in range(100):
    os.close(os.open(os.path.join(sys.argv[1], "n%d" % i),
                     os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
PY
g1=$(counter getattrs "$A")
echo "100 creates on A: $((g1 - g0)) getattrs reached vmfsd"
# the directory's attributes once per create (the kernel drops them for
# its own create); none for the new files
[ $((g1 - g0)) -lt 150 ] || fail "new files' attributes not cached: $((g1 - g0)) getattrs"
python3 - "$A/f" "$B/f" <<'PY' || fail "file attributes: see above"
import os, sys, time
a, b = sys.argv[1:]
for i in range(10):
    pa, pb = os.path.join(a, "c%d" % i), os.path.join(b, "c%d" % i)
    # (no write on A: a write makes the kernel ask for the attributes
    # again by itself)
    fd = os.open(pa, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    os.fsync(fd)            # B sees what A synced (a write-back journal)
    os.close(fd)
    st = os.stat(pa)
    if st.st_size != 0:
        sys.exit("round %d: A shows its new file at %d bytes" % (i, st.st_size))
    # B can open it once A's hold went (A's batch in place: at most the
    # open timeout)
    for t in range(50):
        try:
            fb = os.open(pb, os.O_RDWR)
            break
        except OSError as e:
            if e.errno != 16:
                raise
            time.sleep(0.1)
    else:
        sys.exit("round %d: B cannot open A's file" % i)
    os.pwrite(fb, b"x" * 4096, 8192)
    os.fchmod(fb, 0o600)
    os.fsync(fb)
    os.close(fb)
    st = os.stat(pa)
    if st.st_size != 12288 or st.st_mode & 0o777 != 0o600:
        sys.exit("round %d: A shows %d bytes, mode %o; B made 12288, 600"
                 % (i, st.st_size, st.st_mode & 0o777))
print("10 rounds: A showed B's size and mode of A's new file at once")
PY

vmfsd_stop A
vmfsd_stop B
bin/fsck.vmfs -n "$T/lun.img" >"$T/fsck.out" 2>&1 || fail "fsck: $(cat "$T/fsck.out")"
echo "PASS"
