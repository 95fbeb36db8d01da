#!/bin/bash
# dirty-expire: a cached write reaches the disk file within dirty-expire
# + 1 s with no flush from any client; with dirty-expire=0 it stays in the
# cache until the setting changes.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

CTL="$CLIENT_DIR/blkcachectl"
disk="$TESTDIR/disk"
ctl="$TESTDIR/ctl"
truncate -s 16M "$disk"
# dirty-background=100: only age starts writeback.
start_server expire "$disk" control="$ctl" dirty-expire=1 dirty-background=100 \
  dirty-limit=100

# on_disk OFFSET BYTE: the 64 KiB at OFFSET of the file are all BYTE.
on_disk ()
{
  cmp -s <(dd if="$disk" bs=1 skip="$1" count=65536 status=none) \
         <(head -c 65536 /dev/zero | tr '\0' "\\$2")
}

# wait_disk SECONDS OFFSET BYTE: poll the file every 0.1 s.
wait_disk ()
{
  for _ in $(seq 1 $(($1 * 10))); do
    on_disk "$2" "$3" && return 0
    sleep 0.1
  done
  return 1
}

nbdsh -u "$URI" -c 'h.pwrite(b"\x11" * 65536, 3 * 1048576 + 4096)'
if ! wait_disk 2 $((3 * 1048576 + 4096)) 021; then
  echo "$0: dirty data not on disk within dirty-expire + 1 s"
  "$CTL" -s "$ctl" stats; exit 1
fi
test "$("$CTL" -s "$ctl" stats | awk '$1 == "writeback_expired_passes" { print $2 }')" -ge 1
test "$("$CTL" -s "$ctl" stats | awk '$1 == "flushes" { print $2 }')" = 0

# dirty-expire 0: nothing is written back by age...
"$CTL" -s "$ctl" set dirty-expire 0
nbdsh -u "$URI" -c 'h.pwrite(b"\x22" * 65536, 8 * 1048576)'
if wait_disk 2 $((8 * 1048576)) 042; then
  echo "$0: dirty-expire=0 wrote back"; exit 1
fi
# ... until it is set again.
"$CTL" -s "$ctl" set dirty-expire 1
wait_disk 2 $((8 * 1048576)) 042
