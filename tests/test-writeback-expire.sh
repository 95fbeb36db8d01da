#!/bin/bash
# dirty-expire: a cached write reaches the disk file within dirty-expire
# + 1 s with no flush from any client; with dirty-expire=0 it stays in the
# cache until the setting changes.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 16M
# dirty-background=100: only age starts writeback.
start_control_server expire "$disk" dirty-expire=1 dirty-background=100 \
  dirty-limit=100

# on_disk OFFSET BYTE: the 64 KiB at OFFSET of the file are all BYTE.
on_disk ()
{
  cmp -s <(dd if="$disk" bs=1 skip="$1" count=65536 status=none) \
         <(head -c 65536 /dev/zero | tr '\0' "\\$2")
}

nbdsh -u "$URI" -c 'h.pwrite(b"\x11" * 65536, 3 * 1048576 + 4096)'
if ! wait_until 2 on_disk $((3 * 1048576 + 4096)) 021; then
  echo "$0: dirty data not on disk within dirty-expire + 1 s"
  "$CTL" -s "$ctl" stats; exit 1
fi
test "$(stat_of writeback_expired_passes)" -ge 1
test "$(stat_of flushes)" = 0

# dirty-expire 0: nothing is written back by age...
"$CTL" -s "$ctl" set dirty-expire 0
nbdsh -u "$URI" -c 'h.pwrite(b"\x22" * 65536, 8 * 1048576)'
if wait_until 2 on_disk $((8 * 1048576)) 042; then
  echo "$0: dirty-expire=0 wrote back"; exit 1
fi
# ... until it is set again.
"$CTL" -s "$ctl" set dirty-expire 1
wait_until 2 on_disk $((8 * 1048576)) 042
