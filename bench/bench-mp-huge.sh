#!/bin/sh
# bench-mp-huge.sh - the device-layer section again with hugetlb I/O buffers
# for both fio and mp_bench.
#
# On a virtual disk each physically contiguous run of a buffer is one
# descriptor; page-memory buffers make 1 MiB sequential results depend on
# how the kernel happened to place pages (see "Device layer: analysis").
# Huge pages take that lottery away from both tools alike.  This script
# reserves 16 hugetlb pages for the run (root only) and puts the setting
# back afterwards; without root, or if the kernel refuses, it says so and
# skips.
set -eu
before=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo "")
restore() { [ -n "$before" ] && echo "$before" >/proc/sys/vm/nr_hugepages 2>/dev/null || true; }
if [ -z "$before" ] || ! echo 16 >/proc/sys/vm/nr_hugepages 2>/dev/null; then
	echo "bench-mp-huge: cannot reserve hugetlb pages (not root?): skipped"
	exit 0
fi
trap restore EXIT
free_huge=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
if [ "${free_huge:-0}" -lt 8 ]; then
	echo "bench-mp-huge: only ${free_huge:-0} hugetlb pages free: skipped"
	exit 0
fi
BENCH_MEM=huge sh "$(dirname "$0")/bench-mp.sh"
