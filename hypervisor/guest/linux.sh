#!/bin/sh
# hypervisor/guest/linux.sh - a stock Debian Linux guest for vmrun.
#
#   linux.sh build      `make guest`: kernel + initramfs into build/guest/
#   linux.sh check      `make check-linux`: boot it on a thin virtio disk,
#                       then check the disk from the host
#   linux.sh selftest   the host-side checker against an image made here
#
# Nothing is installed on the host: the kernel package is fetched with
# `apt-get download` and unpacked with `dpkg -x` under build/guest/.
# The guest's /init loads the virtio and ext4 modules, makes ext4 on
# /dev/vda, writes files whose content the host can regenerate, records
# their sha256 in SHA256SUMS, syncs and powers off.  The host then runs
# `e2fsck -fn` and reads every file back with debugfs.
#
# kvm_pvm (software KVM: guest ring 0 emulated) needs tens of minutes for
# a stock kernel, so `check` skips there unless CHECK_LINUX_FORCE=1;
# CHECK_LINUX_TIMEOUT (seconds) bounds the run (default 7200: about 50 min
# on this machine's kvm_pvm, more when it is busy).
set -eu

TOP=$(cd "$(dirname "$0")/../.." && pwd)
G=${GUEST_DIR:-$TOP/build/guest}
VMRUN=${VMRUN:-$TOP/bin/vmrun}
DISK_MIB=64
# Load order matters: insmod resolves no dependencies (MISSION.md order).
ROOT_MODS="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
virtio_pci virtio_blk crc32c_generic ext4"
DONE_MARK="check-linux: guest done"

log() { echo "linux.sh: $*"; }
die() { echo "linux.sh: error: $*" >&2; exit 1; }

# The guest's files, made the same way by the guest's busybox and by the
# host's coreutils: name and generator per line.  Shared verbatim with the
# initramfs (written into it as /files.sh).
FILES_SH='
make_files() {	# $1: directory
	echo "hello from a Linux guest on vmrun" > "$1/hello.txt"
	seq 1 200000 > "$1/seq.txt"
	mkdir -p "$1/dir"
	i=0
	while [ $i -lt 64 ]; do echo "line $i of a small file"; i=$((i + 1)); done > "$1/dir/lines.txt"
}
FILE_LIST="hello.txt seq.txt dir/lines.txt"
'
eval "$FILES_SH"

# ---- build ---------------------------------------------------------------

# Module dependencies from each .ko's .modinfo "depends=" (no depmod or
# modinfo on the host, and the package ships no modules.dep): prints the
# closure of ROOT_MODS, every module after the ones it depends on.
mod_file() {	# module name -> path of its .ko(.xz), '-' and '_' alike
	find "$MODDIR/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o \
		-name "$(echo "$1" | tr _ -).ko" -o \
		-name "$(echo "$1" | tr _ -).ko.xz" \) | head -n 1
}
mod_deps() {	# .ko path -> its depends= list, space separated
	mt=$G/modinfo.tmp
	case $1 in
	*.xz) xz -dc "$1" > "$mt.ko" ;;
	*) cp "$1" "$mt.ko" ;;
	esac
	objcopy -O binary --only-section=.modinfo "$mt.ko" "$mt"
	tr '\0' '\n' < "$mt" | sed -n 's/^depends=//p' | tr , ' '
	rm -f "$mt" "$mt.ko"
}
mod_visit() {
	case " $MOD_SEEN " in *" $1 "*) return 0 ;; esac
	MOD_SEEN="$MOD_SEEN $1"
	f=$(mod_file "$1")
	[ -n "$f" ] || die "module $1 not in the package"
	for d in $(mod_deps "$f"); do mod_visit "$d"; done
	MOD_ORDER="$MOD_ORDER $1"
}

# Copies a host program and the shared libraries ldd names into the root.
copy_prog() {	# host path, path in root
	mkdir -p "$R/$(dirname "$2")"
	cp -L "$1" "$R/$2"
	for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
		[ -e "$R$lib" ] && continue
		mkdir -p "$R$(dirname "$lib")"
		cp -L "$lib" "$R$lib"
	done
}

do_build() {
	ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' ||
		die "no static /bin/busybox (busybox-static: make deps)"
	mkdir -p "$G"
	cd "$G"
	# linux-image-amd64 is a metapackage naming the current kernel.
	rm -f linux-image-*.deb
	# (a fresh machine may have no package lists yet: update once)
	apt-get download linux-image-amd64 > download.log 2>&1 ||
		{ apt-get update -qq && apt-get download linux-image-amd64; } \
		> download.log 2>&1 ||
		{ cat download.log; die "apt-get download linux-image-amd64"; }
	meta=$(ls linux-image-amd64_*.deb)
	kpkg=$(dpkg-deb -f "$meta" Depends | sed 's/[ (].*//')
	[ -n "$kpkg" ] || die "$meta names no kernel package"
	apt-get download "$kpkg" >> download.log 2>&1 ||
		{ cat download.log; die "apt-get download $kpkg"; }
	rm -rf pkg && mkdir pkg
	dpkg -x "${kpkg}"_*.deb pkg
	kver=${kpkg#linux-image-}
	MODDIR=$G/pkg/lib/modules/$kver
	cp "pkg/boot/vmlinuz-$kver" bzImage
	log "kernel $kpkg ($(dpkg-deb -f "${kpkg}"_*.deb Version))"

	# The uncompressed vmlinux, booted through its PVH note: no in-guest
	# decompression, which is minutes of emulated ring 0 on kvm_pvm.
	rm -f vmlinux
	off=$(LC_ALL=C grep -aboP '\xfd7zXZ\x00' bzImage | head -n 1 | cut -d: -f1)
	if [ -n "$off" ]; then
		tail -c +$((off + 1)) bzImage | xz -dc --single-stream > vmlinux 2>/dev/null || true
	fi
	if [ -s vmlinux ] && readelf -n vmlinux 2>/dev/null | grep -q 'Xen .*(0x00000012)'; then
		KERNEL=vmlinux
	else
		rm -f vmlinux
		KERNEL=bzImage
	fi
	log "boot image: $KERNEL"

	# ---- initramfs root
	R=$G/root
	rm -rf "$R"
	mkdir -p "$R/bin" "$R/sbin" "$R/dev" "$R/proc" "$R/sys" "$R/mnt" \
		"$R/etc" "$R/lib/modules" "$R/tmp"
	cp /bin/busybox "$R/bin/busybox"
	for a in sh mount umount insmod mkdir cat echo seq sha256sum sync \
		reboot sleep ls dmesg tr head uname; do
		ln -s busybox "$R/bin/$a"
	done
	MOD_SEEN="" MOD_ORDER=""
	for m in $ROOT_MODS; do mod_visit "$m"; done
	for m in $MOD_ORDER; do
		f=$(mod_file "$m")
		case $f in
		*.xz) xz -dc "$f" > "$R/lib/modules/$m.ko" ;;
		*) cp "$f" "$R/lib/modules/$m.ko" ;;
		esac
	done
	echo $MOD_ORDER > "$R/lib/modules/order"
	log "modules:$MOD_ORDER"
	copy_prog "$(command -v mkfs.ext4)" /sbin/mkfs.ext4
	[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$R/etc/"
	ln -s /proc/mounts "$R/etc/mtab"
	printf '%s\n' "$FILES_SH" > "$R/files.sh"
	write_init > "$R/init"
	chmod 755 "$R/init"

	# Uncompressed cpio: gunzip would be emulated ring 0 too.
	(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > initramfs.cpio
	echo "$KERNEL" > kernel.name
	log "done: $G/$KERNEL, $G/initramfs.cpio ($(du -k initramfs.cpio | cut -f1) KiB)"
}

write_init() {
	cat <<EOF
#!/bin/sh
# /init of the check-linux guest (made by hypervisor/guest/linux.sh)
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# The guest ends with reboot -f: with no ACPI in vmrun, poweroff only halts
# the CPU (and vmrun waits for the timeout); a reboot falls back to the
# i8042 reset line, after which vmrun exits.
fail() { echo "check-linux: guest FAILED: \$*"; sync; reboot -f; }
for m in \$(cat /lib/modules/order); do
	insmod /lib/modules/\$m.ko || fail "insmod \$m"
done
n=0
while [ ! -b /dev/vda ]; do
	n=\$((n + 1)); [ \$n -gt 300 ] && fail "no /dev/vda"; sleep 1
done
mkfs.ext4 -F -q -L vmrun-linux /dev/vda || fail "mkfs.ext4"
mount -t ext4 /dev/vda /mnt || fail "mount"
. /files.sh
make_files /mnt || fail "writing files"
(cd /mnt && sha256sum \$FILE_LIST > SHA256SUMS) || fail "sha256sum"
cat /mnt/SHA256SUMS
sync
umount /mnt || fail "umount"
sync
echo "$DONE_MARK"
reboot -f
EOF
}

# ---- checking a disk from the host ---------------------------------------

# Checks an ext4 image the guest wrote: e2fsck -fn clean, SHA256SUMS present,
# every file read back with debugfs matches both the guest's sum and the
# sum of the same file regenerated on the host.  Returns non-zero on any
# difference, printing what differed.
check_disk() {	# image
	img=$1 bad=0
	ct=$(mktemp -d)
	if ! e2fsck -fn "$img" > "$ct/fsck" 2>&1; then
		cat "$ct/fsck"; log "FAIL: e2fsck -fn $img"; bad=1
	fi
	debugfs -R "cat SHA256SUMS" "$img" > "$ct/sums" 2>/dev/null || true
	[ -s "$ct/sums" ] || { log "FAIL: no SHA256SUMS on the disk"; bad=1; }
	mkdir "$ct/want"
	make_files "$ct/want"
	for f in $FILE_LIST; do
		got=$(debugfs -R "cat $f" "$img" 2>/dev/null | sha256sum | cut -d' ' -f1)
		want=$(sha256sum < "$ct/want/$f" | cut -d' ' -f1)
		rec=$(awk -v f="$f" '$2 == f { print $1 }' "$ct/sums")
		if [ "$got" = "$want" ] && [ "$got" = "$rec" ]; then
			log "ok $f $got"
		else
			log "FAIL $f: read $got, expected $want, guest recorded ${rec:-nothing}"
			bad=1
		fi
	done
	rm -rf "$ct"
	return $bad
}

# The checker on an image made here: mkfs.ext4 + debugfs writes stand in
# for the guest; then one file is changed behind its sum and the checker
# must fail.  With a built initramfs, its busybox must make the same files
# as the host (chroot) and its own mkfs.ext4 must run with the libraries
# copied in (which proves the ldd closure).
do_selftest() {
	t=$(mktemp -d)
	trap 'rm -rf "$t"' EXIT
	mkdir "$t/src"
	make_files "$t/src"
	(cd "$t/src" && sha256sum $FILE_LIST > SHA256SUMS)
	truncate -s ${DISK_MIB}M "$t/disk.img"
	mkfs.ext4 -F -q "$t/disk.img"
	{
		echo "mkdir dir"
		for f in $FILE_LIST SHA256SUMS; do echo "write $t/src/$f $f"; done
	} > "$t/cmds"
	debugfs -w -f "$t/cmds" "$t/disk.img" > /dev/null 2>&1
	check_disk "$t/disk.img" || die "selftest: a good disk failed the check"
	echo "changed" > "$t/other"
	printf 'rm hello.txt\nwrite %s hello.txt\n' "$t/other" > "$t/cmds"
	debugfs -w -f "$t/cmds" "$t/disk.img" > /dev/null 2>&1
	if check_disk "$t/disk.img"; then
		die "selftest: a changed file passed the check"
	fi
	log "selftest: a changed file is caught"
	if [ -x "$G/root/bin/busybox" ] && [ "$(id -u)" = 0 ]; then
		R=$G/root
		rm -rf "$R/tmp/st" && mkdir -p "$R/tmp/st"
		chroot "$R" /bin/sh -c '. /files.sh; make_files /tmp/st'
		for f in $FILE_LIST; do
			cmp "$R/tmp/st/$f" "$t/src/$f" ||
				die "selftest: guest busybox makes $f differently"
		done
		truncate -s ${DISK_MIB}M "$R/tmp/st/disk.img"
		EXT2FS_NO_MTAB_OK=1 chroot "$R" /sbin/mkfs.ext4 -F -q /tmp/st/disk.img ||
			die "selftest: the initramfs's mkfs.ext4 does not run"
		e2fsck -fn "$R/tmp/st/disk.img" > /dev/null 2>&1 ||
			die "selftest: the initramfs's mkfs.ext4 made a bad fs"
		rm -rf "$R/tmp/st"
		log "selftest: initramfs busybox files and mkfs.ext4 ok"
	fi
	log "selftest passed"
}

# ---- check ---------------------------------------------------------------

do_check() {
	sw=0
	[ -e /sys/module/kvm_pvm ] && sw=1
	if [ $sw = 1 ] && [ "${CHECK_LINUX_FORCE:-0}" != 1 ]; then
		echo "check-linux: skipped: no hardware virtualization" \
			"(kvm_pvm; CHECK_LINUX_FORCE=1 runs it anyway, tens of minutes)"
		exit 0
	fi
	[ -e /dev/kvm ] || die "no /dev/kvm"
	timeout_s=${CHECK_LINUX_TIMEOUT:-7200}
	if [ ! -s "$G/initramfs.cpio" ] || [ ! -s "$G/kernel.name" ]; then
		do_build
	fi
	${MAKE:-make} -C "$TOP" --no-print-directory bin/vmrun > /dev/null ||
		die "building bin/vmrun"
	KERNEL=$(cat "$G/kernel.name")
	run=$G/run
	rm -rf "$run" && mkdir -p "$run"
	truncate -s ${DISK_MIB}M "$run/disk.img"	# sparse: a thin disk
	# Short boot: no KASLR, no EDD probing, no self-tests or mitigations,
	# one UART, no soft-lockup reports (a long emulated loop is none), no
	# zeroing of every allocation (Debian turns init_on_alloc on).
	# On kvm_pvm the emulator lacks XRSTOR, POPCNT, CLAC and SIMD
	# instructions in ring 0 (see hypervisor/README.md), hence noxsave
	# (which also drops AVX and AVX-512) and clearcpuid: without SSSE3
	# and the rest the kernel's SIMD code (blake2s for the random pool,
	# crc32c, AES, SHA) takes its generic C paths; without ERMS/FSRM
	# memcpy, memset and clear_page use rep movsq/stosq, an eighth of the
	# emulated iterations of rep movsb/stosb.
	cmd="console=ttyS0 earlyprintk=ttyS0 edd=off nokaslr panic=-1"
	cmd="$cmd rdinit=/init tsc=reliable no_timer_check mitigations=off"
	cmd="$cmd cryptomgr.notests 8250.nr_uarts=1 random.trust_cpu=on nosoftlockup init_on_alloc=0 rodata=off"
	[ $sw = 1 ] && cmd="$cmd noxsave clearcpuid=popcnt,smap,ssse3,sse4_1,sse4_2,pclmulqdq,aes,sha_ni,erms,fsrm"
	cat > "$run/linux.vmx" <<EOF
displayName = "check-linux"
memSize = "512"
numvcpus = "1"
boot.kernel = "$G/$KERNEL"
boot.initrd = "$G/initramfs.cpio"
boot.cmdline = "$cmd"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "disk.img"
EOF
	log "booting $KERNEL (timeout ${timeout_s}s), console in $run/console.log"
	start=$(date +%s)
	# the console goes to the terminal and the log; vmrun's status to rc
	{ rc=0; timeout -k 10 "$timeout_s" "$VMRUN" start "$run/linux.vmx" ||
		rc=$?; echo $rc > "$run/rc"; } 2>&1 | tee "$run/console.log"
	rc=$(cat "$run/rc")
	took=$(( $(date +%s) - start ))
	if ! grep -q "$DONE_MARK" "$run/console.log"; then
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			echo "check-linux: FAIL: timed out after ${took}s" \
				"(CHECK_LINUX_TIMEOUT=$timeout_s); the guest's last lines:"
		else
			echo "check-linux: FAIL: vmrun exited $rc after ${took}s" \
				"without the guest's done line; the guest's last lines:"
		fi
		grep -v '^vmrun:' "$run/console.log" | tail -n 3
		exit 1
	fi
	log "guest powered off after ${took}s (rc $rc); checking the disk"
	if check_disk "$run/disk.img"; then
		echo "check-linux: PASS (${took}s)"
	else
		echo "check-linux: FAIL: disk check"
		exit 1
	fi
}

case ${1:-} in
build) do_build ;;
check) do_check ;;
selftest) do_selftest ;;
*) echo "usage: $0 build|check|selftest" >&2; exit 2 ;;
esac
