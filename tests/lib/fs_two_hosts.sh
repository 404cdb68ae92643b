# tests/lib/fs_two_hosts.sh - the two-host FUSE scenario, on any LUNs
# (source after common.sh and vmfsd.sh).
#
#   two_hosts_scenario SPEC...   format SPEC... as one spanned volume, mount
#                                it on hosts A and B (B gets the devices in
#                                reverse order), and check: data written and
#                                fsync'd on A reads the same on B; names,
#                                renames; a file open read-write on A cannot
#                                be removed on B (holder named); fio verify
#                                through FUSE; fallocate / SEEK_DATA / punch;
#                                both hosts leave their slots free.

two_hosts_scenario() {
	local specs=("$@") rev=() i slots
	for ((i = ${#specs[@]} - 1; i >= 0; i--)); do rev+=("${specs[$i]}"); done
	bin/mkfs.vmfs -f -L twohosts -H 8 --hb-interval 250 --hb-timeout 2500 \
		"${specs[@]}" >/dev/null || fail "mkfs"
	vmfsd_start A "$T/a" "${specs[@]}"
	vmfsd_start B "$T/b" "${rev[@]}"
	bin/vmkfstools -P "$T/a" | grep -q "spanning ${#specs[@]} extent" ||
		fail "not ${#specs[@]} extents: $(bin/vmkfstools -P "$T/a")"

	head -c 30M /dev/urandom >"$T/src.bin"
	mkdir "$T/a/vm1" || fail "mkdir"
	cp "$T/src.bin" "$T/a/vm1/disk.bin" && sync "$T/a/vm1/disk.bin" || fail "copy"
	[ "$(sha256sum <"$T/b/vm1/disk.bin")" = "$(sha256sum <"$T/src.bin")" ] ||
		fail "host B reads different data"
	echo "data written on A read back on B"

	for i in $(seq 1 300); do echo "$i" >"$T/b/vm1/f$i"; done
	[ "$(ls "$T/a/vm1" | wc -l)" -eq 301 ] || fail "A sees $(ls "$T/a/vm1" | wc -l) names"
	# a rename is in place for other hosts once synced (or its lock
	# handed over): a write-back journal
	mv "$T/a/vm1/f1" "$T/a/vm1/renamed" && sync "$T/a/vm1" || fail "mv"
	[ "$(cat "$T/b/vm1/renamed")" = 1 ] || fail "rename not seen on B"
	[ ! -e "$T/b/vm1/f1" ] || fail "old name still on B"

	# a file held open read-write on A: B cannot remove it or open it for writing
	exec 7<>"$T/a/vm1/disk.bin"
	rm "$T/b/vm1/disk.bin" 2>"$T/rm.err" && fail "removed a file open on A"
	grep -q "busy" "$T/rm.err" || fail "rm error: $(cat "$T/rm.err")"
	grep -q "locked by A" "$T/vmfsd-B.log" || fail "holder not named in B's log"
	exec 7>&-
	rm "$T/b/vm1/disk.bin" || fail "rm after close"

	timeout 120 fio --name=v --filename="$T/b/fio.dat" --size=32M --rw=randwrite \
		--bs=4k --verify=crc32c --verify_state_save=0 --direct=1 --ioengine=psync \
		--output="$T/fio.out" ||
		fail "fio verify: $(tail -n 20 "$T/fio.out")"
	echo "fio verify=crc32c passed through FUSE"
	# every write went to the device from where the kernel put it (the
	# receive buffers of vmfsd's FUSE loop align the data)
	bin/vmkfstools -P "$T/b" | grep -Eq "FUSE since mount: [1-9][0-9]* written \(0 of it copied" ||
		fail "FUSE write data copied: $(bin/vmkfstools -P "$T/b" | grep FUSE)"

	# reserved space (fallocate) reads zeros, is a hole for SEEK_DATA, and
	# punching gives it back; seen from the other host
	fallocate -l 8M "$T/a/thick.bin" || fail "fallocate"
	[ "$(stat -c %s "$T/b/thick.bin")" = 8388608 ] || fail "fallocate size"
	[ "$(du -k "$T/b/thick.bin" | cut -f1)" -ge 8192 ] || fail "fallocate did not reserve"
	cmp -n 8388608 "$T/b/thick.bin" /dev/zero || fail "reserved space does not read zeros"
	printf 'data' | dd of="$T/a/thick.bin" bs=1 seek=3145728 conv=notrunc status=none
	python3 - "$T/b/thick.bin" <<-'PY' || fail "SEEK_DATA/SEEK_HOLE"
	import os, sys
	fd = os.open(sys.argv[1], os.O_RDONLY)
	assert os.lseek(fd, 0, os.SEEK_DATA) == 3 << 20, os.lseek(fd, 0, os.SEEK_DATA)
	assert os.lseek(fd, 3 << 20, os.SEEK_HOLE) == 4 << 20
	PY
	fallocate -p -o 0 -l 3M "$T/a/thick.bin" || fail "punch hole"
	[ "$(du -k "$T/b/thick.bin" | cut -f1)" -lt 8192 ] || fail "punch gave nothing back"
	echo "fallocate, SEEK_DATA/SEEK_HOLE and punch hole through FUSE"

	vmfsd_stop A
	vmfsd_stop B
	slots=$(bin/vmfs-lk slots "${specs[0]}" --region 1M)
	echo "$slots" | grep -q " live " && fail "a slot stayed live: $slots"
	return 0
}
