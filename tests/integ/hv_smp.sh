#!/bin/bash
# The test guest starts every vCPU (INIT/SIPI through the in-kernel LAPIC,
# counted against the MP table) and prints vcpus=K.
set -u
. tests/lib/common.sh
[ -w /dev/kvm ] || { echo "skipped: no /dev/kvm"; exit 77; }
for n in 2 1 4; do
	cat >"$T/smp$n.vmx" <<EOV
memSize = "16"
numvcpus = "$n"
boot.kernel = "$PWD/bin/vmtest.elf"
boot.cmdline = "vmtest=smp"
EOV
	out=$(bin/vmrun start "$T/smp$n.vmx" 2>&1) || fail "vmrun numvcpus=$n: $out"
	echo "$out"
	echo "$out" | grep -q "^vmtest: vcpus=$n$" || fail "numvcpus=$n: $out"
done
exit 0
