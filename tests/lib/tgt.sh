# tests/lib/tgt.sh - a private tgtd (Linux SCSI target daemon) for tests.
#
# Source it from bash, then:
#   tgt_require                 exit 77 (skip) unless tgtd and tgtadm exist
#   tgt_start DIR               start tgtd on 127.0.0.1 (free control port
#                               1..99 and a free TCP port), log in DIR/tgtd.log;
#                               sets TGT_CTL, TGT_PORT, TGT_PID, TGT_DIR
#   tgt_add_lun DIR NAME SIZE [thin]
#                               sparse backing file DIR/NAME.img of SIZE
#                               (truncate syntax, e.g. 64M), a target
#                               iqn.2026-11.org.vmfs.test:NAME with it as LUN 1,
#                               every initiator allowed; "thin" turns on
#                               thin_provisioning (UNMAP).  Prints the URL.
#   tgt_restart                 kill tgtd and start it again on the same ports
#                               with the same targets (for reconnect tests)
#   tgt_stop                    stop it (idempotent); tgt_start registers it
#                               with "trap ... EXIT", so a failing test still
#                               stops its tgtd - unless the test has an EXIT
#                               trap already: then that must call tgt_stop.
#
# tgtd ignores SIGTERM while it has targets, so tgt_stop goes straight from
# a short TERM grace to SIGKILL; nothing of value lives in tgtd (the data is
# in the backing files).  tgtd keeps running when it cannot bind its portal,
# so tgt_start checks the listening socket, not just the control port.
# tgtd's warnings about RDMA, oom_score_adj and nr_open are harmless.

TGT_CTL=
TGT_PORT=
TGT_PID=
TGT_DIR=
# The LUNs are listed in $TGT_DIR/luns ("tid name file thin ident" lines)
# for tgt_revive: a file, because tgt_add_lun runs in $(...) subshells.

tgt_require() {
	if ! command -v tgtd >/dev/null 2>&1 || ! command -v tgtadm >/dev/null 2>&1; then
		echo "SKIP: tgtd/tgtadm not installed (Debian package tgt)"
		exit 77
	fi
}

tgt_adm() {
	tgtadm -C "$TGT_CTL" --lld iscsi "$@"
}

# Whether something listens on 127.0.0.1:$1 (as far as ss can tell).
_tgt_port_busy() {
	ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# Whether process $1 listens on 127.0.0.1:$2.
_tgt_pid_listens() {
	ss -Hltnp "sport = :$2" 2>/dev/null | grep -q "pid=$1,"
}

# Start tgtd with control port $1 and TCP port $2; 0 when it serves both.
_tgt_try() {
	local ctl=$1 port=$2 log="$TGT_DIR/tgtd.log" i start
	echo "=== tgtd -C $ctl portal 127.0.0.1:$port ($(date +%T))" >>"$log"
	start=$(wc -l <"$log")
	tgtd -f -C "$ctl" --iscsi "portal=127.0.0.1:$port" >>"$log" 2>&1 &
	TGT_PID=$!
	for i in $(seq 1 100); do
		if ! kill -0 "$TGT_PID" 2>/dev/null; then
			wait "$TGT_PID" 2>/dev/null
			TGT_PID=
			return 1           # e.g. control port locked by another tgtd
		fi
		if tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 &&
		   _tgt_pid_listens "$TGT_PID" "$port"; then
			return 0
		fi
		if tail -n +"$((start + 1))" "$log" |
		   grep -q "failed to create/bind to portal"; then
			break              # portal taken: it would serve nothing
		fi
		sleep 0.1
	done
	kill -KILL "$TGT_PID" 2>/dev/null
	wait "$TGT_PID" 2>/dev/null
	TGT_PID=
	return 1
}

tgt_start() {
	local dir=$1 try ctl port
	TGT_DIR=$dir
	mkdir -p "$dir"
	[ -n "$(trap -p EXIT)" ] || trap tgt_stop EXIT
	for try in $(seq 1 30); do
		ctl=$(( (RANDOM % 99) + 1 ))
		port=$(( 20000 + RANDOM % 20000 ))
		[ -e "/var/run/tgtd/socket.$ctl" ] &&
			tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 && continue
		_tgt_port_busy "$port" && continue
		TGT_CTL=$ctl TGT_PORT=$port
		if _tgt_try "$ctl" "$port"; then
			return 0
		fi
	done
	echo "tgt_start: could not start tgtd (log: $dir/tgtd.log)" >&2
	TGT_CTL= TGT_PORT=
	return 1
}

# Create target $1 (tid) named $2 with backing file $3, thin when $4 = 1,
# identity $5 (hex digits).
_tgt_define() {
	local tid=$1 name=$2 file=$3 thin=$4 ident=$5
	tgt_adm --op new --mode target --tid "$tid" \
		-T "iqn.2026-11.org.vmfs.test:$name" || return 1
	tgt_adm --op new --mode logicalunit --tid "$tid" --lun 1 -b "$file" || return 1
	# Our own identity: tgt builds the NAA designator of VPD 0x83 from the
	# hex digits of scsi_id and VPD 0x80 from scsi_sn, and its defaults
	# ("IET" + tid + lun, "beaf" + tid + lun) are the same in every tgtd,
	# which would make the LUNs of concurrent tests look like one device.
	tgt_adm --op update --mode logicalunit --tid "$tid" --lun 1 \
		--params "scsi_id=$ident,scsi_sn=$ident" || return 1
	if [ "$thin" = 1 ]; then
		tgt_adm --op update --mode logicalunit --tid "$tid" --lun 1 \
			--params thin_provisioning=1 || return 1
	fi
	tgt_adm --op bind --mode target --tid "$tid" -I ALL || return 1
}

tgt_add_lun() {
	local dir=$1 name=$2 size=$3 thin=0 file tid ident
	[ "${4:-}" = thin ] && thin=1
	file="$dir/$name.img"
	tid=$(( $(cat "$dir/luns" 2>/dev/null | wc -l) + 1 ))
	ident=$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')
	truncate -s "$size" "$file" || return 1
	_tgt_define "$tid" "$name" "$file" "$thin" "$ident" || {
		echo "tgt_add_lun: tgtadm failed for $name" >&2
		return 1
	}
	echo "$tid $name $file $thin $ident" >>"$dir/luns"
	echo "iscsi://127.0.0.1:$TGT_PORT/iqn.2026-11.org.vmfs.test:$name/1"
}

# Kill tgtd (like a crash) without forgetting its configuration.
tgt_kill() {
	if [ -n "$TGT_PID" ]; then
		kill -KILL "$TGT_PID" 2>/dev/null
		wait "$TGT_PID" 2>/dev/null
		TGT_PID=
	fi
	rm -f "/var/run/tgtd/socket.$TGT_CTL" "/var/run/tgtd/socket.$TGT_CTL.lock"
}

# Start tgtd again on the same ports and recreate the targets.
tgt_revive() {
	local tid name file thin ident i
	for i in $(seq 1 50); do
		# The old listening socket may linger for a moment.
		_tgt_try "$TGT_CTL" "$TGT_PORT" && break
		sleep 0.2
	done
	[ -n "$TGT_PID" ] || { echo "tgt_revive: tgtd did not come back" >&2; return 1; }
	while read -r tid name file thin ident; do
		_tgt_define "$tid" "$name" "$file" "$thin" "$ident" || return 1
	done <"$TGT_DIR/luns"
}

tgt_restart() {
	tgt_kill
	tgt_revive
}

tgt_stop() {
	local i
	tgt_paths_teardown
	if [ -n "$TGT_PID" ]; then
		kill -TERM "$TGT_PID" 2>/dev/null
		for i in 1 2 3 4 5; do
			kill -0 "$TGT_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$TGT_PID" 2>/dev/null
		wait "$TGT_PID" 2>/dev/null
		TGT_PID=
	fi
	if [ -n "$TGT_CTL" ]; then
		rm -f "/var/run/tgtd/socket.$TGT_CTL" "/var/run/tgtd/socket.$TGT_CTL.lock"
		TGT_CTL=
	fi
}

# ---- two paths into a network namespace (multipath tests) ----------------
#
#   tgt_paths_setup             after tgt_start: a network namespace $TGT_NS
#                               with two veth links to this one (host ends
#                               $TGT_IF1 $TGT_IF2, addresses $TGT_ADDR1
#                               $TGT_ADDR2) and a tgtd portal on each.  The
#                               initiator runs in the namespace:
#                               ip netns exec "$TGT_NS" PROGRAM ...
#   tgt_url ADDR NAME           the URL of LUN NAME through portal ADDR
#   tgt_path_down N | tgt_path_up N
#                               take link N (1 or 2) down / up: traffic on
#                               it is dropped without a reset, as when a
#                               cable or switch port dies
#   tgt_path_drop N | tgt_path_pass N
#                               drop every packet on link N in the
#                               namespace (nftables) while the link stays up
#                               / stop dropping: a target or fabric that
#                               stops answering; returns 77 without nft
#   tgt_paths_teardown          remove the namespace and links (idempotent;
#                               tgt_stop calls it)
TGT_NS=
TGT_IF1= TGT_IF2= TGT_ADDR1= TGT_ADDR2=

tgt_paths_setup() {
	local try a b ns
	ip netns list >/dev/null 2>&1 || { echo "SKIP: no ip netns"; return 77; }
	for try in $(seq 1 20); do
		a=$(( 200 + RANDOM % 50 ))
		b=$(( (RANDOM % 120) * 2 ))
		ip -4 addr show | grep -q "inet 10\.$a\.$b\.\|inet 10\.$a\.$((b + 1))\." && continue
		ns=vmfsmp$$_$try
		ip netns add "$ns" 2>/dev/null || continue
		TGT_NS=$ns
		TGT_IF1=vmp$$a$try TGT_IF2=vmp$$b$try
		TGT_ADDR1=10.$a.$b.1 TGT_ADDR2=10.$a.$((b + 1)).1
		ip link add "$TGT_IF1" type veth peer name "${TGT_IF1}p" netns "$ns" &&
		ip link add "$TGT_IF2" type veth peer name "${TGT_IF2}p" netns "$ns" &&
		ip addr add "$TGT_ADDR1/24" dev "$TGT_IF1" &&
		ip addr add "$TGT_ADDR2/24" dev "$TGT_IF2" &&
		ip link set "$TGT_IF1" up && ip link set "$TGT_IF2" up &&
		ip -n "$ns" addr add "10.$a.$b.2/24" dev "${TGT_IF1}p" &&
		ip -n "$ns" addr add "10.$a.$((b + 1)).2/24" dev "${TGT_IF2}p" &&
		ip -n "$ns" link set "${TGT_IF1}p" up &&
		ip -n "$ns" link set "${TGT_IF2}p" up &&
		ip -n "$ns" link set lo up || { tgt_paths_teardown; continue; }
		tgt_adm --op new --mode portal --param "portal=$TGT_ADDR1:$TGT_PORT" &&
		tgt_adm --op new --mode portal --param "portal=$TGT_ADDR2:$TGT_PORT" ||
			{ tgt_paths_teardown; return 1; }
		return 0
	done
	return 1
}

tgt_url() {
	echo "iscsi://$1:$TGT_PORT/iqn.2026-11.org.vmfs.test:$2/1"
}

tgt_path_down() {
	local ifc
	[ "$1" = 1 ] && ifc=$TGT_IF1 || ifc=$TGT_IF2
	ip link set "$ifc" down
}

tgt_path_up() {
	local ifc
	[ "$1" = 1 ] && ifc=$TGT_IF1 || ifc=$TGT_IF2
	ip link set "$ifc" up
}

tgt_path_drop() {
	local ifc
	command -v nft >/dev/null 2>&1 || { echo "SKIP: no nft (package nftables)"; return 77; }
	[ "$1" = 1 ] && ifc=${TGT_IF1}p || ifc=${TGT_IF2}p
	ip netns exec "$TGT_NS" nft -f - <<EOF
table inet vmfsdrop$1 {
	chain in { type filter hook input priority 0; policy accept; iifname "$ifc" drop; }
	chain out { type filter hook output priority 0; policy accept; oifname "$ifc" drop; }
}
EOF
}

tgt_path_pass() {
	ip netns exec "$TGT_NS" nft delete table inet "vmfsdrop$1"
}

tgt_paths_teardown() {
	[ -n "$TGT_IF1" ] && ip link del "$TGT_IF1" 2>/dev/null
	[ -n "$TGT_IF2" ] && ip link del "$TGT_IF2" 2>/dev/null
	[ -n "$TGT_NS" ] && ip netns del "$TGT_NS" 2>/dev/null
	TGT_NS= TGT_IF1= TGT_IF2=
	return 0
}
