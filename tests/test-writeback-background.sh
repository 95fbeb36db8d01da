#!/bin/bash
# dirty-background: with more than that share of the cache dirty, the
# service writes back (oldest first) until it is below, with no flush and
# no age limit.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 16M
# 8 MiB cache, background at 25% (2 MiB), no age-based writeback.
start_control_server background "$disk" cache-size=8M \
  dirty-expire=0 dirty-background=25 dirty-limit=100

# 6 MiB dirty, oldest first: blocks 0..95 of 64 KiB.
nbdsh -u "$URI" -c '
for i in range(96):
    h.pwrite(bytes([i + 1]) * 65536, i * 65536)
'
below_background ()
{
  [ "$(stat_of dirty_bytes)" -le $((2 * 1048576)) ]
}
if ! wait_until 3 below_background; then
  echo "$0: $(stat_of dirty_bytes) bytes still dirty"; exit 1
fi
test "$(stat_of writeback_background_passes)" -ge 1
test "$(stat_of flushes)" = 0
# The oldest block went first; everything reads back.
cmp <(dd if="$disk" bs=64K count=1 status=none) \
    <(head -c 65536 /dev/zero | tr '\0' '\001')
nbdsh -u "$URI" -c '
for i in range(96):
    assert h.pread(65536, i * 65536) == bytes([i + 1]) * 65536, i
'
