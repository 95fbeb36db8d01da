#!/bin/bash
# blkcache-torture against the blkcache plugin on a real file, in each cache
# mode and with a cache smaller than the hot region (eviction and writeback
# under pressure): no stale read, no wrong zero claim.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdkit

TORTURE="$CLIENT_DIR/blkcache-torture"
disk="$TESTDIR/disk"
truncate -s 64M "$disk"

torture ()
{
  name="$1"; shift
  out="$TESTDIR/$name.out"
  start_server "$name" "$disk" "$@"
  status=0
  "$TORTURE" --seconds 3 --no-progress "$URI" >"$out" 2>&1 || status=$?
  echo "--- $name: $*"
  cat "$out"
  stop_server "$PID"
  if [ "$status" -ne 0 ]; then
    echo "$0: blkcache-torture exited with $status ($*)"
    exit 1
  fi
  grep -q '^stale reads: 0 ' "$out"
  grep -q '^block status replies claiming zeroes wrongly: 0$' "$out"
}

torture none cache=none
torture writethrough cache=writethrough
torture writeback cache=writeback
torture small cache=writeback cache-size=2M
