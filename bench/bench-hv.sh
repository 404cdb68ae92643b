#!/bin/sh
# bench-hv.sh - the KVM executor (vmrun) against qemu-system-x86_64 and fio.
#
# One guest image (bin/vmtest.elf), one raw disk file: vmtest=io (4 KiB
# random reads and writes, half each, queue depth 32, over the whole disk)
# in our VMM and in QEMU (KVM, virtio-blk-pci, cache=none, aio=io_uring,
# booted through -kernel with qboot), each through the legacy and the
# virtio 1.x interface of the device, and fio on the host with the same
# pattern on the same file.  Each repetition runs the five back to back,
# order rotating; the table reports medians.  Also measured, on the smp
# task with one vCPU: time from exec to the guest's first console line,
# and the peak RSS of the VMM process (a 64 MiB guest of which vmtest
# touches about 1 MiB, so RSS is VMM memory plus that).
#
# Run through bench/run-bench.sh.  Extra environment:
#   BENCH_HV_SIZE   disk file size (default 1g); reused while unchanged
#   QEMU            qemu binary (default qemu-system-x86_64)
set -eu

: "${BENCH_ROOT:?run through bench/run-bench.sh}"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmfs-bench}
REPS=${BENCH_REPS:-3}
RUNTIME=${BENCH_RUNTIME:-5}
SIZE=${BENCH_HV_SIZE:-1g}
QEMU=${QEMU:-qemu-system-x86_64}
OUT=$BENCH_OUT/hv
RESULTS=$BENCH_OUT/hv-results.md
FILE=$BENCH_DIR/hv-disk.img

die() { echo "bench-hv: $*" >&2; exit 1; }
[ -w /dev/kvm ] || die "/dev/kvm not available"
[ -x "$BENCH_ROOT/bin/vmrun" ] || die "bin/vmrun missing: run make first"
command -v "$QEMU" >/dev/null || die "$QEMU not installed (scripts/install-deps.sh)"
command -v fio >/dev/null || die "fio not installed"

mkdir -p "$BENCH_DIR" "$OUT"
size_bytes=$($BENCH_TOOL size "$SIZE")
# written once in full, so reads hit allocated blocks for every tool
stamp=$FILE.filled-$size_bytes
if [ ! -e "$stamp" ]; then
	rm -f "$FILE" "$FILE".filled-*
	fallocate -l "$size_bytes" "$FILE"
	fio --name=fill --filename="$FILE" --rw=write --bs=1m --size="$size_bytes" \
		--direct=1 --ioengine=libaio --iodepth=8 --output-format=terse >/dev/null
	touch "$stamp"
fi

BENCH_HV_FILE=$FILE BENCH_HV_REPS=$REPS BENCH_HV_RUNTIME=$RUNTIME \
BENCH_HV_QEMU=$QEMU BENCH_HV_OUT=$OUT BENCH_HV_RESULTS=$RESULTS \
BENCH_HV_SIZE=$SIZE python3 - <<'PYEOF'
import json, os, re, resource, statistics, subprocess, sys, time

root = os.environ["BENCH_ROOT"]
disk = os.environ["BENCH_HV_FILE"]
reps = int(os.environ["BENCH_HV_REPS"])
secs = int(os.environ["BENCH_HV_RUNTIME"])
qemu = os.environ["BENCH_HV_QEMU"]
out = os.environ["BENCH_HV_OUT"]
elf = os.path.join(root, "bin/vmtest.elf")
vmrun = os.path.join(root, "bin/vmrun")

def vmx(name, cmdline, with_disk=True):
    p = os.path.join(out, name + ".vmx")
    with open(p, "w") as f:
        f.write('displayName = "%s"\nmemSize = "64"\nnumvcpus = "1"\n' % name)
        f.write('boot.kernel = "%s"\nboot.cmdline = "%s"\n' % (elf, cmdline))
        if with_disk:
            f.write('scsi0:0.present = "TRUE"\nscsi0:0.fileName = "%s"\n' % disk)
    return p

def qemu_cmd(cmdline, with_disk=True):
    c = [qemu, "-enable-kvm", "-M", "pc", "-m", "64", "-smp", "1",
         "-bios", "/usr/share/qemu/qboot.rom", "-kernel", elf,
         "-append", cmdline, "-display", "none", "-serial", "stdio",
         "-monitor", "none", "-no-reboot",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
    if with_disk:
        c += ["-drive", "file=%s,if=none,id=d0,format=raw,cache=none,aio=io_uring" % disk,
              "-device", "virtio-blk-pci,drive=d0"]
    return c

def run_rss(cmd):
    """Like run, plus the child's peak RSS (wait4)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first = None
    lines = []
    for line in p.stdout:
        if first is None:
            first = time.monotonic() - t0
        lines.append(line.decode(errors="replace"))
    _, _, ru = os.wait4(p.pid, 0)
    return "".join(lines), first, ru.ru_maxrss

io_re = re.compile(r"vmtest: io .* iops=(\d+) MB/s=([\d.]+)")

def guest_io(kind):
    """kind: ours, ours-modern, qemu, qemu-modern (virtio interface)."""
    cmdline = "vmtest=io vmtest.secs=%d" % secs
    if kind.endswith("-modern"):
        cmdline += " vmtest.modern=1"
    cmd = [vmrun, "start", vmx("io", cmdline)] if kind.startswith("ours") \
        else qemu_cmd(cmdline)
    text, _, _ = run_rss(cmd)
    m = io_re.search(text)
    if not m:
        sys.exit("bench-hv: %s gave no io line:\n%s" % (kind, text))
    return int(m.group(1)), float(m.group(2))

def fio_io():
    j = subprocess.run(["fio", "--name=hv-ref", "--filename=" + disk, "--direct=1",
                        "--ioengine=io_uring", "--rw=randrw", "--rwmixread=50",
                        "--bs=4k", "--iodepth=32", "--time_based",
                        "--runtime=%d" % secs, "--output-format=json"],
                       check=True, capture_output=True, text=True).stdout
    job = json.loads(j)["jobs"][0]
    iops = job["read"]["iops"] + job["write"]["iops"]
    return int(iops), iops * 4096 / 1e6

tools = ["ours", "ours-modern", "qemu", "qemu-modern", "fio"]
results = {t: [] for t in tools}
boot = {"ours": [], "qemu": []}
rss = {"ours": [], "qemu": []}
for rep in range(reps):
    order = tools[rep % len(tools):] + tools[:rep % len(tools)]
    for t in order:
        r = fio_io() if t == "fio" else guest_io(t)
        results[t].append(r)
        print("  [%d/%d] %-11s %8d IOPS %8.1f MB/s" % (rep + 1, reps, t, r[0], r[1]))
    for t in ("ours", "qemu"):
        cmd = [vmrun, "start", vmx("boot", "vmtest=smp", False)] if t == "ours" \
            else qemu_cmd("vmtest=smp", False)
        text, first, maxrss = run_rss(cmd)
        if "vcpus=1" not in text:
            sys.exit("bench-hv: %s smp run failed:\n%s" % (t, text))
        boot[t].append(first * 1000)
        rss[t].append(maxrss / 1024)
        print("  [%d/%d] %-5s first line %.1f ms, peak RSS %.1f MiB" %
              (rep + 1, reps, t, first * 1000, maxrss / 1024))

med = lambda xs: statistics.median(xs)
m = {t: med([r[0] for r in results[t]]) for t in tools}
qv = "QEMU " + subprocess.run([qemu, "--version"], capture_output=True,
                              text=True).stdout.split("\n")[0].split()[3]
rows = []
for t, name in (("ours", "vmrun (ours), legacy virtio"),
                ("ours-modern", "vmrun (ours), virtio 1.x"),
                ("qemu", qv + ", legacy virtio"),
                ("qemu-modern", qv + ", virtio 1.x"),
                ("fio", "fio on the host")):
    iops = med([r[0] for r in results[t]])
    mbs = med([r[1] for r in results[t]])
    lo = min(r[0] for r in results[t]); hi = max(r[0] for r in results[t])
    rows.append("| %s | %d | %.1f | %d-%d |" % (name, iops, mbs, lo, hi))
best = max(m["ours"], m["ours-modern"])
verdict = []
verdict.append("ours/QEMU %.2f legacy, %.2f virtio 1.x (target >= 1.0)" %
               (m["ours"] / m["qemu"], m["ours-modern"] / m["qemu-modern"]))
verdict.append("ours (better interface)/host %.2f (target >= 0.8)" % (best / m["fio"]))
with open(os.environ["BENCH_HV_RESULTS"], "w") as w:
    cpu = [l for l in open("/proc/cpuinfo") if l.startswith("model name")][0].split(": ")[1].strip()
    kvm = "kvm_pvm (software: guest ring 0 emulated)" if os.path.exists("/sys/module/kvm_pvm") \
        else "hardware"
    w.write("Measured %s on %s: %d CPUs (%s), Linux %s, KVM backend %s.\n\n" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().nodename,
        os.cpu_count(), cpu, os.uname().release, kvm))
    w.write("Command: `%s` (section `bench/bench-hv.sh`).\n\n" % os.environ.get("BENCH_CMD", "bench/run-bench.sh"))
    w.write("Disk: `%s` (%s, preallocated and written once), the same file for every run.\n" %
            (disk, os.environ["BENCH_HV_SIZE"]))
    w.write("Guest: `bin/vmtest.elf` with `vmtest=io vmtest.secs=%d` (4 KiB random, 50%% writes, "
            "QD 32 over the whole disk, polled used ring; the legacy virtio-pci interface, or the "
            "virtio 1.x one with `vmtest.modern=1`), 64 MiB, 1 vCPU.\n" % secs)
    w.write("Ours: `bin/vmrun start io.vmx`.  QEMU: `%s`.  fio: `fio --direct=1 --ioengine=io_uring "
            "--rw=randrw --rwmixread=50 --bs=4k --iodepth=32 --time_based --runtime=%d`.\n" %
            (" ".join(qemu_cmd("vmtest=io vmtest.secs=%d" % secs)).replace(disk, "DISK"), secs))
    w.write("%d repetitions, the five back to back with the order rotating; medians, "
            "MB/s = 10^6 bytes/s.\n\n" % reps)
    w.write("| tool | IOPS | MB/s | IOPS range |\n|---|--:|--:|---|\n")
    w.write("\n".join(rows) + "\n\n")
    w.write("Result: %s.\n\n" % "; ".join(verdict))
    w.write("Start-up and memory (`vmtest=smp`, 1 vCPU, no disk, 64 MiB guest; medians):\n\n")
    w.write("| VMM | exec to first console line (ms) | peak RSS (MiB) |\n|---|--:|--:|\n")
    w.write("| vmrun (ours) | %.1f | %.1f |\n" % (med(boot["ours"]), med(rss["ours"])))
    w.write("| QEMU (qboot) | %.1f | %.1f |\n" % (med(boot["qemu"]), med(rss["qemu"])))
    w.write("\nPeak RSS includes the guest pages vmtest touches (about 1 MiB of the 64 MiB).\n")
PYEOF

cat "$RESULTS"
$BENCH_TOOL update-doc "$BENCH_DOC" "Executor (hypervisor): vmtest=io vs QEMU vs fio" "$RESULTS"
echo "bench-hv: results in ${RESULTS#"$BENCH_ROOT"/}"
