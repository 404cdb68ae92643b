# tests/lib/vm.sh - VMs on a datastore for integration tests (source after
# common.sh and vmfsd.sh).
#
#   vmx FILE CMDLINE DISK...   write a .vmx booting $T/vmtest.elf (copy it
#                              there first) with those disks; CTK=1 adds
#                              ctkEnabled for the VM and each disk
#   started OUTFILE            wait until the guest printed its first line
#   fuse_written HOST          bytes written through HOST's FUSE mount
#   vm_two_hosts               skip without /dev/fuse or /dev/kvm; a 1 GiB
#                              LUN $T/lun0.img (4 MiB blocks, heartbeat
#                              1 s, dead after 6 s) served by hosts A and B
#                              on $T/a and $T/b

vmx() { # file cmdline disk...
	local f=$1 cmd=$2 n=0 d
	shift 2
	{
		echo 'displayName = "vm"'
		echo 'memSize = "64"'
		echo 'boot.kernel = "'"$T"'/vmtest.elf"'
		echo 'boot.cmdline = "'"$cmd"'"'
		[ -z "${CTK:-}" ] || echo 'ctkEnabled = "TRUE"'
		for d in "$@"; do
			echo "scsi0:$n.present = \"TRUE\""
			echo "scsi0:$n.fileName = \"$d\""
			[ -z "${CTK:-}" ] || echo "scsi0:$n.ctkEnabled = \"TRUE\""
			n=$((n + 1))
		done
	} >"$f"
}

started() { # output file
	for i in $(seq 1 100); do grep -q "vmtest: started" "$1" && return 0; sleep 0.1; done
	fail "the VM did not start: $(cat "$1")"
}

fuse_written() { # host
	python3 - "$VMFSD_RUN_DIR" "$1" <<-'PY'
	import glob, json, socket, sys
	for s in glob.glob(sys.argv[1] + "/ctl-*.sock"):
	    c = socket.socket(socket.AF_UNIX)
	    try:
	        c.connect(s)
	    except OSError:
	        continue
	    c.sendall(b'{"cmd":"info"}\n')
	    d = json.loads(c.makefile().readline())
	    if d.get("host") == sys.argv[2]:
	        print(d["fuse_bytes_written"])
	PY
}

vm_two_hosts() {
	[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
	[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm"; exit 77; }
	truncate -s 1G "$T/lun0.img"
	bin/mkfs.vmfs -L vms -H 8 -b 4m --hb-interval 1000 --hb-timeout 6000 \
		"$T/lun0.img" >/dev/null || fail "mkfs"
	vmfsd_start A "$T/a" "$T/lun0.img"
	vmfsd_start B "$T/b" "$T/lun0.img"
}
