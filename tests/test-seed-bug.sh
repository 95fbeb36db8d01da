#!/bin/bash
# Proof that the suite catches the seed bug.  Zeroes keep dropping cached
# blocks so reads keep missing, and the race windows are held open.  With
# the miss path's lock-then-recheck turned off the torture run must report
# stale reads; with it on, the same run must report none.
. "${top_srcdir:-..}/tests/functions.sh"
requires "$TORTURE"

make_disk 64M
# run NAME SKIP WANT: a torture run with skip_recheck=SKIP must exit WANT.
# The buggy run races on purpose: under ThreadSanitizer it alone takes the
# suppressions of that race.
run ()
{
  name="$1"; skip="$2"; want="$3"
  tsan="${TSAN_OPTIONS:-}"
  if [ "$skip" = 1 ]; then
    tsan="suppressions=$top_srcdir/tests/tsan-skip-recheck.supp"
  fi
  TSAN_OPTIONS="$tsan" \
  start_server "$name" -D blkcache.skip_recheck="$skip" \
    -D blkcache.race_window_us=2000 -- "$disk" cache=writethrough block-size=4K
  run_torture "$want" "$TESTDIR/$name.out" --seconds 4 \
    --mix read=60,fua=20,zero=20 --hot-size 1M --max-request 16K
  stop_server "$PID"
}

run buggy 1 1
grep -q "STALE" "$TESTDIR/buggy.out"
run fixed 0 0
