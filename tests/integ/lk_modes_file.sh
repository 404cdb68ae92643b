#!/bin/bash
# Lock manager across processes on a file LUN: read-only shared and
# multi-writer modes.
set -u
. tests/lib/common.sh
. tests/lib/lk.sh
truncate -s 64M "$T/lun.img"
lk_modes_scenario "$T/lun.img"
