#!/bin/sh
# Installs every Debian package the build, tests, benchmarks and demo need.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -e
PKGS="build-essential pkg-config liburing-dev libaio-dev libiscsi-dev libiscsi-bin
libcmocka-dev libfuse3-dev fuse3 libjson-c-dev libssl-dev sg3-utils libsgutils2-dev
tgt fio python3 qemu-utils e2fsprogs iproute2 nftables util-linux procps psmisc clang libclang-rt-14-dev sanlock libsanlock-dev
qemu-system-x86
busybox-static cpio xz-utils"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
