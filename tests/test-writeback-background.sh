#!/bin/bash
# dirty-background: with more than that share of the cache dirty, the
# service writes back (oldest first) until it is below, with no flush and
# no age limit.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

CTL="$CLIENT_DIR/blkcachectl"
disk="$TESTDIR/disk"
ctl="$TESTDIR/ctl"
truncate -s 16M "$disk"
# 8 MiB cache, background at 25% (2 MiB), no age-based writeback.
start_server background "$disk" control="$ctl" cache-size=8M \
  dirty-expire=0 dirty-background=25 dirty-limit=100

stat_of ()
{
  "$CTL" -s "$ctl" stats | awk -v n="$1" '$1 == n { print $2 }'
}

# 6 MiB dirty, oldest first: blocks 0..95 of 64 KiB.
nbdsh -u "$URI" -c '
for i in range(96):
    h.pwrite(bytes([i + 1]) * 65536, i * 65536)
'
for _ in $(seq 1 30); do
  [ "$(stat_of dirty_bytes)" -le $((2 * 1048576)) ] && break
  sleep 0.1
done
dirty=$(stat_of dirty_bytes)
if [ "$dirty" -gt $((2 * 1048576)) ]; then
  echo "$0: $dirty bytes still dirty"; exit 1
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
