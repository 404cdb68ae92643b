#!/bin/bash
# The test guest starts every vCPU (INIT/SIPI through the in-kernel LAPIC,
# counted against the MP table) and prints vcpus=K; it also sums the usable
# RAM of the PVH memory map, which must be memSize less the 1 MiB below the
# kernel plus the 639 KiB of base memory, with memory above 4 GiB counted.
set -u
. tests/lib/common.sh
[ -w /dev/kvm ] || { echo "skipped: no /dev/kvm"; exit 77; }
for cfg in "2 16" "1 16" "4 64" "8 4608"; do
	set -- $cfg
	n=$1 mem=$2
	cat >"$T/smp$n.vmx" <<EOV
memSize = "$mem"
numvcpus = "$n"
boot.kernel = "$PWD/bin/vmtest.elf"
boot.cmdline = "vmtest=smp"
EOV
	out=$(timeout 60 bin/vmrun start "$T/smp$n.vmx" 2>&1) || fail "vmrun numvcpus=$n: $out"
	echo "$out"
	echo "$out" | grep -q "^vmtest: vcpus=$n$" || fail "numvcpus=$n: $out"
	kib=$(( (mem - 1) * 1024 + 639 ))
	echo "$out" | grep -q "^vmtest: ram $kib KiB in the memory map$" ||
		fail "memSize=$mem: expected $kib KiB: $out"
done
exit 0
