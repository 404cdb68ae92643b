#!/bin/bash
# Lock manager: several hosts race to break a dead host's locks on a file
# LUN; the dead host is recovered exactly once.
set -u
. tests/lib/common.sh
. tests/lib/lk.sh
truncate -s 64M "$T/lun.img"
lk_race_scenario "$T/lun.img"
