#!/bin/sh
# bench-hvmap.sh - a VM's disk on the datastore, through the mapped path
# (vmrun attaches it through vmfsd and does its I/O on the LUN itself).
#
# 1. vmtest=io (4 KiB random, 50% writes, QD 32, virtio 1.x) on an
#    eagerzeroedthick disk of a vmfsd datastore through vmrun's mapped
#    path, against vmrun's raw backend on the very same LUN blocks (a
#    monolithicFlat descriptor off the mount naming the LUN file at the
#    disk's offset: the cost of mapping), QEMU (KVM, virtio-blk,
#    cache=none, aio=io_uring) on those blocks (a raw drive with offset=
#    and size= on the LUN file; the disk is one contiguous extent), and
#    fio on the host on them.  Each repetition runs the four back to back,
#    order rotating; medians.
# 2. First-write throughput: vmtest=fill (writes N MiB sequentially at
#    QD 32, flushes, reads back) on a new thin disk (every block allocated
#    by vmfsd on the guest's first write) against the same fill over the
#    blocks now allocated, and on an eagerzeroedthick disk.
#
# Run through bench/run-bench.sh.  Extra environment:
#   BENCH_HVMAP_SIZE   the io disk's size (default 1g)
#   BENCH_HVMAP_FILL   MiB the fill writes (default 512)
#   QEMU               qemu binary (default qemu-system-x86_64)
set -eu

: "${BENCH_ROOT:?run through bench/run-bench.sh}"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmfs-bench}
REPS=${BENCH_REPS:-3}
RUNTIME=${BENCH_RUNTIME:-5}
SIZE=${BENCH_HVMAP_SIZE:-1g}
FILL=${BENCH_HVMAP_FILL:-512}
QEMU=${QEMU:-qemu-system-x86_64}
OUT=$BENCH_OUT/hvmap
RESULTS=$BENCH_OUT/hvmap-results.md
LUN=$BENCH_DIR/hvmap-lun.img
MNT=$BENCH_DIR/hvmap-mnt

die() { echo "bench-hvmap: $*" >&2; exit 1; }
[ -w /dev/kvm ] || die "/dev/kvm not available"
[ -e /dev/fuse ] || die "/dev/fuse not available"
[ -x "$BENCH_ROOT/bin/vmrun" ] || die "bin/vmrun missing: run make first"
command -v "$QEMU" >/dev/null || die "$QEMU not installed (scripts/install-deps.sh)"
command -v fio >/dev/null || die "fio not installed"

mkdir -p "$BENCH_DIR" "$OUT" "$MNT"
export VMFSD_RUN_DIR=$OUT/run
size_bytes=$($BENCH_TOOL size "$SIZE")
rm -f "$LUN"
truncate -s $((size_bytes * 2 + (FILL * 3 << 20) + (512 << 20))) "$LUN"
"$BENCH_ROOT/bin/mkfs.vmfs" -L bench "$LUN" >/dev/null
"$BENCH_ROOT/bin/vmfsd" --host bench --mount "$MNT" "$LUN" >"$OUT/vmfsd.log" 2>&1 &
vmfsd=$!
trap 'kill $vmfsd 2>/dev/null; wait $vmfsd 2>/dev/null || true' EXIT
i=0
until grep -q "serving the volume" "$OUT/vmfsd.log"; do
	i=$((i + 1))
	[ $i -lt 100 ] || die "vmfsd did not start: $(cat "$OUT/vmfsd.log")"
	sleep 0.1
done
"$BENCH_ROOT/bin/vmkfstools" -c "$SIZE" -d eagerzeroedthick "$MNT/io.vmdk" >/dev/null
"$BENCH_ROOT/bin/vmkfstools" -c "${FILL}m" -d thin "$MNT/thin.vmdk" >/dev/null
"$BENCH_ROOT/bin/vmkfstools" -c "${FILL}m" -d eagerzeroedthick "$MNT/ezt.vmdk" >/dev/null
"$BENCH_ROOT/bin/vmkfstools" -t0 "$MNT/io-flat.vmdk" >"$OUT/io.map"

BENCH_HVMAP_LUN=$LUN BENCH_HVMAP_MNT=$MNT BENCH_HVMAP_REPS=$REPS \
BENCH_HVMAP_RUNTIME=$RUNTIME BENCH_HVMAP_QEMU=$QEMU BENCH_HVMAP_OUT=$OUT \
BENCH_HVMAP_RESULTS=$RESULTS BENCH_HVMAP_FILL=$FILL BENCH_HVMAP_BYTES=$size_bytes \
python3 - <<'PYEOF'
import json, os, re, statistics, subprocess, sys, time

root = os.environ["BENCH_ROOT"]
lun = os.environ["BENCH_HVMAP_LUN"]
mnt = os.environ["BENCH_HVMAP_MNT"]
reps = int(os.environ["BENCH_HVMAP_REPS"])
secs = int(os.environ["BENCH_HVMAP_RUNTIME"])
qemu = os.environ["BENCH_HVMAP_QEMU"]
out = os.environ["BENCH_HVMAP_OUT"]
fill = int(os.environ["BENCH_HVMAP_FILL"])
size = int(os.environ["BENCH_HVMAP_BYTES"])
elf = os.path.join(root, "bin/vmtest.elf")
vmrun = os.path.join(root, "bin/vmrun")

# the io disk must be one extent on the LUN: QEMU and fio get its blocks
ext = re.findall(r"\[\s*(\d+):\s*(\d+)\] --> \[VMFS -- extent 0: (\d+) --> (\d+)\)?\]",
                 open(os.path.join(out, "io.map")).read())
if len(ext) != 1 or int(ext[0][0]) != 0 or int(ext[0][1]) != size:
    sys.exit("bench-hvmap: io-flat.vmdk is not one extent:\n" +
             open(os.path.join(out, "io.map")).read())
lun_off = int(ext[0][2])

def info():
    import glob, socket
    for s in glob.glob(os.environ["VMFSD_RUN_DIR"] + "/ctl-*.sock"):
        c = socket.socket(socket.AF_UNIX)
        c.connect(s)
        c.sendall(b'{"cmd":"info"}\n')
        return json.loads(c.makefile().readline())

def vmx(name, cmdline, disk):
    p = os.path.join(mnt, name + ".vmx")
    with open(p, "w") as f:
        f.write('displayName = "%s"\nmemSize = "64"\nnumvcpus = "1"\n' % name)
        f.write('boot.kernel = "%s"\nboot.cmdline = "%s"\n' % (elf, cmdline))
        f.write('scsi0:0.present = "TRUE"\nscsi0:0.fileName = "%s"\n' % disk)
    return p

def qemu_cmd(cmdline):
    return [qemu, "-enable-kvm", "-M", "pc", "-m", "64", "-smp", "1",
            "-bios", "/usr/share/qemu/qboot.rom", "-kernel", elf,
            "-append", cmdline, "-display", "none", "-serial", "stdio",
            "-monitor", "none", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-drive", "driver=raw,offset=%d,size=%d,file.driver=file,"
            "file.filename=%s,file.aio=io_uring,file.cache.direct=on,if=none,id=d0"
            % (lun_off, size, lun),
            "-device", "virtio-blk-pci,drive=d0"]

io_re = re.compile(r"vmtest: io .* iops=(\d+) MB/s=([\d.]+)")

# (a descriptor names files in its own folder: the LUN's)
raw_desc = os.path.join(os.path.dirname(lun), "hvmap-raw.vmdk")
with open(raw_desc, "w") as f:
    f.write('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
            'createType="monolithicFlat"\nRW %d FLAT "%s" %d\n' %
            (size >> 9, os.path.basename(lun), lun_off >> 9))

def guest_io(kind):
    cmdline = "vmtest=io vmtest.secs=%d vmtest.modern=1" % secs
    if kind == "mapped":
        cmd = [vmrun, "start", vmx("io", cmdline, "io.vmdk")]
    elif kind == "raw":
        cmd = [vmrun, "start", vmx("ioraw", cmdline, raw_desc)]
    else:
        cmd = qemu_cmd(cmdline)
    w0 = info()["fuse_bytes_written"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    m = io_re.search(p.stdout)
    if not m:
        sys.exit("bench-hvmap: %s gave no io line:\n%s%s" % (kind, p.stdout, p.stderr))
    if kind == "mapped" and info()["fuse_bytes_written"] - w0 > 1 << 20:
        sys.exit("bench-hvmap: the mapped run wrote through FUSE")
    return int(m.group(1)), float(m.group(2))

def fio_io():
    j = subprocess.run(["fio", "--name=hvmap-ref", "--filename=" + lun, "--direct=1",
                        "--ioengine=io_uring", "--rw=randrw", "--rwmixread=50",
                        "--bs=4k", "--iodepth=32", "--offset=%d" % lun_off,
                        "--size=%d" % size, "--time_based",
                        "--runtime=%d" % secs, "--output-format=json"],
                       check=True, capture_output=True, text=True).stdout
    job = json.loads(j)["jobs"][0]
    iops = job["read"]["iops"] + job["write"]["iops"]
    return int(iops), iops * 4096 / 1e6

tools = ["mapped", "raw", "qemu", "fio"]
res = {t: [] for t in tools}
for rep in range(reps):
    order = tools[rep % len(tools):] + tools[:rep % len(tools)]
    for t in order:
        r = fio_io() if t == "fio" else guest_io(t)
        res[t].append(r)
        print("  [%d/%d] %-7s %8d IOPS %8.1f MB/s" % (rep + 1, reps, t, r[0], r[1]))

def fill_run(disk):
    t0 = time.monotonic()
    p = subprocess.run([vmrun, "start", vmx("fill", "vmtest=fill vmtest.mib=%d" % fill,
                                          disk)], capture_output=True, text=True)
    t = time.monotonic() - t0
    if "fill ok %d MiB" % fill not in p.stdout:
        sys.exit("bench-hvmap: fill on %s failed:\n%s%s" % (disk, p.stdout, p.stderr))
    calls = re.search(r"(\d+) allocation calls to vmfsd, ([\d.]+) ms each", p.stderr)
    return t, (int(calls.group(1)), float(calls.group(2))) if calls else (0, 0.0)

fills = {"thin": [], "rewrite": [], "ezt": []}
allocs = []
for rep in range(reps):
    subprocess.run([os.path.join(root, "bin/vmkfstools"), "-U",
                    os.path.join(mnt, "thin.vmdk")], check=True)
    subprocess.run([os.path.join(root, "bin/vmkfstools"), "-c", "%dm" % fill, "-d",
                    "thin", os.path.join(mnt, "thin.vmdk")], check=True,
                   stdout=subprocess.DEVNULL)
    t, a = fill_run("thin.vmdk")
    fills["thin"].append(t)
    allocs.append(a)
    fills["rewrite"].append(fill_run("thin.vmdk")[0])
    fills["ezt"].append(fill_run("ezt.vmdk")[0])
    print("  [%d/%d] fill %d MiB: thin first write %.2f s (%d disk_alloc calls, %.1f ms "
          "each), rewrite %.2f s, eagerzeroedthick %.2f s" %
          (rep + 1, reps, fill, t, a[0], a[1], fills["rewrite"][-1], fills["ezt"][-1]))

med = statistics.median
m = {t: med([r[0] for r in res[t]]) for t in tools}
qv = "QEMU " + subprocess.run([qemu, "--version"], capture_output=True,
                              text=True).stdout.split("\n")[0].split()[3]
with open(os.environ["BENCH_HVMAP_RESULTS"], "w") as w:
    cpu = [l for l in open("/proc/cpuinfo") if l.startswith("model name")][0].split(": ")[1].strip()
    kvm = "kvm_pvm (software: guest ring 0 emulated)" if os.path.exists("/sys/module/kvm_pvm") \
        else "hardware"
    w.write("Measured %s on %s: %d CPUs (%s), Linux %s, KVM backend %s.\n\n" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().nodename,
        os.cpu_count(), cpu, os.uname().release, kvm))
    w.write("Command: `%s` (section `bench/bench-hvmap.sh`).\n\n" %
            os.environ.get("BENCH_CMD", "bench/run-bench.sh"))
    w.write("Datastore: one vmfsd host on a %d MiB LUN file (`mkfs.vmfs`, 1 MiB blocks); "
            "the io disk `io.vmdk` (%d MiB, eagerzeroedthick) lies at LUN offset %d in one "
            "extent.  vmrun opens it mapped (vmfsd attaches it, vmrun does the I/O on the "
            "LUN; FUSE carried none of it, checked with vmfsd's `fuse_bytes_written`).  QEMU "
            "gets the same blocks: `-drive driver=raw,offset=%d,size=%d,file.filename=LUN,"
            "file.aio=io_uring,file.cache.direct=on` and `-device virtio-blk-pci`.  fio: "
            "`fio --filename=LUN --offset=%d --size=%d --direct=1 --ioengine=io_uring "
            "--rw=randrw --rwmixread=50 --bs=4k --iodepth=32 --runtime=%d`.  vmrun raw: a "
            "monolithicFlat descriptor off the mount naming the LUN file at that offset "
            "(the raw backend: no map, no vmfsd).\n" %
            (os.path.getsize(lun) >> 20, size >> 20, lun_off, lun_off, size, lun_off,
             size, secs))
    w.write("Guest: `bin/vmtest.elf`, `vmtest=io vmtest.secs=%d vmtest.modern=1` (4 KiB random, "
            "50%% writes, QD 32, virtio 1.x), 64 MiB, 1 vCPU.  %d repetitions, the four back to "
            "back, order rotating; medians.\n\n" % (secs, reps))
    w.write("| tool | IOPS | MB/s | IOPS range |\n|---|--:|--:|---|\n")
    for t, name in (("mapped", "vmrun, mapped disk on the datastore"),
                    ("raw", "vmrun, raw backend on the same LUN blocks"),
                    ("qemu", qv + ", the same LUN blocks"), ("fio", "fio on the host")):
        w.write("| %s | %d | %.1f | %d-%d |\n" % (
            name, m[t], med([r[1] for r in res[t]]),
            min(r[0] for r in res[t]), max(r[0] for r in res[t])))
    w.write("\nResult: mapped/QEMU %.2f (target >= 1.0); mapped/host %.2f (target >= 0.8); "
            "mapped/raw %.2f (the cost of mapping).\n\n" %
            (m["mapped"] / m["qemu"], m["mapped"] / m["fio"], m["mapped"] / m["raw"]))
    w.write("First write (`vmtest=fill vmtest.mib=%d`: sequential writes at QD 32, a flush, "
            "read back and verified; wall time of `vmrun start`, boot included, medians of %d):\n\n"
            % (fill, reps))
    w.write("| disk | seconds | MiB/s (write + read back) |\n|---|--:|--:|\n")
    for k, name in (("thin", "new thin disk (every block allocated by vmfsd on first write)"),
                    ("rewrite", "the same thin disk again (blocks allocated)"),
                    ("ezt", "eagerzeroedthick")):
        w.write("| %s | %.2f | %.0f |\n" % (name, med(fills[k]), fill / med(fills[k])))
    w.write("\nThin first write: %d `disk_alloc` calls per fill (median), %.1f ms each: the "
            "writes waiting while a call runs go into the next one.\n" %
            (med([a[0] for a in allocs]), med([a[1] for a in allocs])))
PYEOF

cat "$RESULTS"
$BENCH_TOOL update-doc "$BENCH_DOC" "Executor: a mapped disk on the datastore vs QEMU vs fio, first write" "$RESULTS"
echo "bench-hvmap: results in ${RESULTS#"$BENCH_ROOT"/}"
