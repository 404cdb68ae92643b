#!/bin/bash
# Bad configurations, missing files and unbootable kernels: a clear message
# on stderr and a non-zero exit, never a crash or a started VM.
set -u
. tests/lib/common.sh
k="$PWD/bin/vmtest.elf"
truncate -s 1M "$T/d.img"
echo "not a kernel" >"$T/text.bin"

check() { # want-regex vmx-text
	local want="$1" out rc
	printf '%s\n' "$2" >"$T/bad.vmx"
	out=$(bin/vmrun start "$T/bad.vmx" 2>&1)
	rc=$?
	echo "[$rc] $out"
	[ $rc -ne 0 ] || fail "exit 0 for: $2"
	[ $rc -lt 128 ] || fail "crashed ($rc) for: $2"
	echo "$out" | grep -Eq "$want" || fail "message '$out' lacks /$want/"
}

check "line 2: unknown key 'floppy0.present'" "boot.kernel = \"$k\"
floppy0.present = \"TRUE\""
check "boot.kernel is missing" 'memSize = "64"'
check "boot.kernel .*/nope.elf: No such file" 'boot.kernel = "nope.elf"'
check "memSize \"999999999\" out of range" "boot.kernel = \"$k\"
memSize = \"999999999\""
check "numvcpus \"64\" out of range" "boot.kernel = \"$k\"
numvcpus = \"64\""
check "scsi0:0.fileName .*/missing.img: No such file" "boot.kernel = \"$k\"
scsi0:0.present = \"TRUE\"
scsi0:0.fileName = \"missing.img\""
check "line 1: unterminated quoted value" "boot.kernel = \"$k"
check "text.bin: neither a bzImage nor an x86-64 ELF image" "boot.kernel = \"text.bin\""
check "'memSize' given twice" "boot.kernel = \"$k\"
memSize = \"64\"
memSize = \"128\""
check "scsi0:0.fileName .*: is a directory" "boot.kernel = \"$k\"
scsi0:0.present = \"TRUE\"
scsi0:0.fileName = \"$T\""
# a disk the device layer refuses (a malformed fault-injection spec)
check "scsi0:0: disk fault:nonsense=1:.*d.img" "boot.kernel = \"$k\"
scsi0:0.present = \"TRUE\"
scsi0:0.fileName = \"fault:nonsense=1:$T/d.img\""
# usage
out=$(bin/vmrun 2>&1); [ $? -eq 2 ] || fail "usage exit"
echo "$out" | grep -q "usage: vmrun start VMX" || fail "usage text"
out=$(bin/vmrun start "$T/none.vmx" 2>&1) && fail "missing vmx accepted"
echo "$out" | grep -q "none.vmx: No such file" || fail "missing vmx: $out"
exit 0
