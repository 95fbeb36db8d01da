#!/bin/bash
# Proof that the suite catches the seed bug.  Zeroes keep dropping cached
# blocks so reads keep missing, and the race windows are held open.  With
# the miss path's lock-then-recheck turned off the torture run must report
# stale reads; with it on, the same run must report none.
. "${top_srcdir:-..}/tests/functions.sh"
torture="$CLIENT_DIR/blkcache-torture"
[ -x "$torture" ] || { echo "no blkcache-torture"; exit 77; }

disk="$TESTDIR/disk"
truncate -s 64M "$disk"
run ()
{
  name="$1"; skip="$2"
  start_server "$name" -D blkcache.skip_recheck="$skip" \
    -D blkcache.race_window_us=2000 -- "$disk" cache=writethrough block-size=4K
  status=0
  "$torture" --seconds 4 --no-progress --mix read=60,fua=20,zero=20 \
    --hot-size 1M --max-request 16K "$URI" > "$TESTDIR/$name.out" 2>&1 \
    || status=$?
  grep -E "ops/s|stale reads" "$TESTDIR/$name.out"
  stop_server "$PID"
}

run buggy 1
if [ "$status" -ne 1 ] || ! grep -q "STALE" "$TESTDIR/buggy.out"; then
  echo "$0: the seed bug went unnoticed (exit $status)"
  exit 1
fi
run fixed 0
if [ "$status" -ne 0 ]; then
  cat "$TESTDIR/fixed.out"
  exit 1
fi
