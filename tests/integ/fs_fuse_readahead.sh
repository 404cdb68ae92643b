#!/bin/bash
# vmfsd's read-ahead (vmfsd/readahead.c) through FUSE: a reader going
# through a file in sequence is answered from windows read ahead, and
# what it reads is, byte for byte, what the file holds at that moment
# while another descriptor on the same host writes, truncates, extends
# and punches the file just ahead of it (inside its windows).  The
# reference is a model of the file kept by the test.
set -u
. tests/lib/common.sh
. tests/lib/vmfsd.sh
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
truncate -s 1G "$T/lun.img"
bin/mkfs.vmfs -f -L readahead -H 8 --hb-interval 250 --hb-timeout 2500 \
	"$T/lun.img" >/dev/null || fail "mkfs"
vmfsd_start A "$T/a" "$T/lun.img"
A=$T/a

# ra FIELD: a figure of the "Read-ahead" line of vmkfstools -P
ra() {
	bin/vmkfstools -P "$A" | sed -n "s/^Read-ahead: \([0-9]*\) reads, \([0-9]*\) answered.*(\([0-9]*\) of them waited for it), \([0-9]*\) windows read, \([0-9]*\) found stale/\1 \2 \3 \4 \5/p" |
		awk -v f="$1" '{ print f == "reads" ? $1 : f == "hits" ? $2 : f == "windows" ? $4 : $5 }'
}
[ -n "$(ra hits)" ] || fail "no Read-ahead line in vmkfstools -P"

python3 - "$A/disk" <<'PY' || fail "the reader saw something the file did not hold"
import ctypes, os, random, struct, sys

MB = 1 << 20
path = sys.argv[1]
rnd = random.Random(4)
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]

def block(b, v):
    # each 4 KiB: (block, version, chunk) and a filler
    return b"".join(struct.pack("<III", b, v, c) + bytes([(b * 31 + v * 17 + c) & 0xff]) * 4084
                    for c in range(256))

size = 48 * MB
model = bytearray()
wfd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
for b in range(48):
    data = block(b, 1)
    os.pwrite(wfd, data, b * MB)
    model += data
rfd = os.open(path, os.O_RDONLY)

ver = 1
pos = 0
reads = changes = 0
for step in range(2500):
    op = rnd.random()
    if op < 0.75:
        n = rnd.choice([MB, MB, MB, 256 * 1024, 64 * 1024])
        got = os.pread(rfd, n, pos)
        want = bytes(model[pos:pos + n])
        if got != want:
            first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                         min(len(got), len(want)))
            print(f"step {step}: read {n} at {pos}: got {len(got)} bytes, want "
                  f"{len(want)}; first difference at {pos + first}", file=sys.stderr)
            sys.exit(1)
        reads += 1
        pos += n
        if pos >= len(model) or rnd.random() < 0.02:
            pos = rnd.randrange(0, max(1, len(model)), 4096)
        continue
    changes += 1
    # a change just ahead of the reader: inside its windows
    at = pos + rnd.randrange(0, 4 * MB, 4096)
    if op < 0.87:
        ver += 1
        n = rnd.choice([MB, 4096, 12288])
        data = block(at // MB, ver)[:n]
        os.pwrite(wfd, data, at)
        if at > len(model):
            model += bytes(at - len(model))
        model[at:at + n] = data
    elif op < 0.93:
        # shorter, then (next time round) longer again
        new = at + rnd.randrange(0, 4096)
        if rnd.random() < 0.5 or new >= len(model):
            new = min(64 * MB, len(model) + rnd.randrange(1, 3 * MB))
        os.ftruncate(wfd, new)
        if new < len(model):
            del model[new:]
        else:
            model += bytes(new - len(model))
    else:
        # punch a hole (keep the size)
        n = rnd.choice([MB, 8192])
        if libc.fallocate(wfd, 3, at, n) != 0:
            print("fallocate punch:", os.strerror(ctypes.get_errno()), file=sys.stderr)
            sys.exit(1)
        end = min(at + n, len(model))
        if at < end:
            model[at:end] = bytes(end - at)
print(f"{reads} reads, {changes} changes ahead of them: every read as the model")
PY
echo "read-ahead: $(ra reads) reads, $(ra hits) answered from windows, $(ra windows) windows read, $(ra stale) found stale"
[ "$(ra hits)" -gt 500 ] || fail "few reads were answered from windows ($(ra hits))"
[ "$(ra stale)" -gt 20 ] || fail "few windows were found stale ($(ra stale)): the changes did not land in them"
vmfsd_stop A
bin/fsck.vmfs -n "$T/lun.img" >/dev/null || fail "fsck after the run"
echo "PASS"
