#!/bin/bash
# The local backend uses libaio by default; when libaio cannot be set up
# (fs.aio-max-nr used up, seccomp) it falls back to io_uring by itself and
# works.  An engine the spec names explicitly is never swapped.
set -u
. tests/lib/common.sh
truncate -s 16M "$T/lun.img"
bin/vmfs-lun info "$T/lun.img" | grep -q "backend: *aio" || fail "libaio not used by default"
out=$("$B/tests/helpers/no_engine" aio bin/vmfs-lun info "$T/lun.img" 2>&1) || fail "$out"
echo "$out"
echo "$out" | grep -q "backend: *uring" || fail "did not fall back to io_uring"
echo "$out" | grep -q "libaio unavailable" || fail "fallback not reported"
# io_uring switched off changes nothing by default
out=$("$B/tests/helpers/no_engine" uring bin/vmfs-lun info "$T/lun.img" 2>&1) || fail "$out"
echo "$out" | grep -q "backend: *aio" || fail "io_uring off: $out"
# data goes through the fallback engine
"$B/tests/helpers/no_engine" aio bin/vmfs-lun write "$T/lun.img" 8192 4096 0x5c >/dev/null ||
	fail "write via io_uring"
bin/vmfs-lun dump "$T/lun.img" 8192 512 | head -n 1 | grep -q "5c 5c 5c" || fail "data not written"
"$B/tests/helpers/no_engine" uring bin/vmfs-lun write "$T/lun.img" 16384 4096 0x3a >/dev/null ||
	fail "write via libaio"
bin/vmfs-lun dump "$T/lun.img" 16384 512 | head -n 1 | grep -q "3a 3a 3a" || fail "data not written"
# an explicit engine that cannot work is an error, not a silent switch
"$B/tests/helpers/no_engine" uring bin/vmfs-lun info "$T/lun.img?engine=uring" >/dev/null 2>&1 &&
	fail "engine=uring without io_uring should fail"
"$B/tests/helpers/no_engine" aio bin/vmfs-lun info "$T/lun.img?engine=aio" >/dev/null 2>&1 &&
	fail "engine=aio without libaio should fail"
exit 0
