#!/bin/bash
# Lock manager, real processes on a shared file LUN: mutual exclusion under
# random SIGKILLs, and dead-host locks broken within dead + interval.
set -u
. tests/lib/common.sh
. tests/lib/lk.sh
truncate -s 64M "$T/lun.img"
lk_mutex_scenario "$T/lun.img"
