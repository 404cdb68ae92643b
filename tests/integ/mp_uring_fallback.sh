#!/bin/bash
# With io_uring switched off (seccomp, as a sysctl or container profile
# would), the local backend falls back to libaio by itself and works.
set -u
. tests/lib/common.sh
truncate -s 16M "$T/lun.img"
out=$("$B/tests/helpers/no_uring" bin/vmfs-lun info "$T/lun.img" 2>&1) || fail "$out"
echo "$out"
echo "$out" | grep -q "backend: *aio" || fail "did not fall back to libaio"
echo "$out" | grep -q "io_uring unavailable" || fail "fallback not reported"
# and with io_uring available, it is used
bin/vmfs-lun info "$T/lun.img" | grep -q "backend: *uring" || fail "io_uring not used by default"
# data goes through the fallback engine
"$B/tests/helpers/no_uring" bin/vmfs-lun write "$T/lun.img" 8192 4096 0x5c >/dev/null || fail "write via libaio"
bin/vmfs-lun dump "$T/lun.img" 8192 512 | head -n 1 | grep -q "5c 5c 5c" || fail "data not written"
# an explicit engine=uring that cannot work is an error, not a silent switch
"$B/tests/helpers/no_uring" bin/vmfs-lun info "$T/lun.img?engine=uring" >/dev/null 2>&1 &&
	fail "engine=uring without io_uring should fail"
exit 0
