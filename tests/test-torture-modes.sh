#!/bin/bash
# blkcache-torture finds no stale read in any cache mode, with the default
# cache and with a cache of a few blocks (eviction and writeback all the
# time), with and without the race windows held open.
. "${top_srcdir:-..}/tests/functions.sh"
torture="$CLIENT_DIR/blkcache-torture"
[ -x "$torture" ] || { echo "no blkcache-torture"; exit 77; }

disk="$TESTDIR/disk"
truncate -s 64M "$disk"
run ()
{
  name="$1"; shift
  start_server "$name" "$@"
  "$torture" --seconds "${SECONDS_EACH:-3}" --no-progress "$URI" \
    > "$TESTDIR/$name.out" 2>&1 || { cat "$TESTDIR/$name.out"; exit 1; }
  grep -E "ops/s|stale reads" "$TESTDIR/$name.out"
  stop_server "$PID"
}
run wb "$disk" cache=writeback
run wt "$disk" cache=writethrough
run none "$disk" cache=none
run wb-tiny "$disk" cache=writeback cache-size=256K block-size=64K
run wt-tiny "$disk" cache=writethrough cache-size=16K block-size=4K
run wb-window -D blkcache.race_window_us=300 -- "$disk" cache=writeback
