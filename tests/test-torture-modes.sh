#!/bin/bash
# blkcache-torture finds no stale read in any cache mode, with the default
# cache and with a cache of a few blocks (eviction and writeback all the
# time), with and without the race windows held open.
. "${top_srcdir:-..}/tests/functions.sh"
requires "$TORTURE"

make_disk 64M
torture_server wb "$disk" cache=writeback
torture_server wt "$disk" cache=writethrough
torture_server none "$disk" cache=none
torture_server wb-tiny "$disk" cache=writeback cache-size=256K block-size=64K
torture_server wt-tiny "$disk" cache=writethrough cache-size=16K block-size=4K
torture_server wb-window -D blkcache.race_window_us=300 -- "$disk" cache=writeback
