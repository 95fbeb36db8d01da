#!/bin/bash
# blkcache-torture against the blkcache plugin on a real file, in each cache
# mode and with a cache smaller than the hot region (eviction and writeback
# under pressure): no stale read, no wrong zero claim.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdkit

make_disk 64M

torture_server none "$disk" cache=none
torture_server writethrough "$disk" cache=writethrough
torture_server writeback "$disk" cache=writeback
torture_server small "$disk" cache=writeback cache-size=2M
