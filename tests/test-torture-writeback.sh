#!/bin/bash
# blkcache-torture with background writeback running (dirty-expire=1, a
# small cache, low dirty-background and dirty-limit) while the control
# socket is asked for stats, flushes, drop-clean and resizes: no stale
# read, no wrong zero claim, and the writeback did run.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdkit

make_disk 64M
start_control_server wb "$disk" cache-size=2M dirty-expire=1 \
  dirty-background=5 dirty-limit=20

torture_start "$TESTDIR/torture.out" --seconds 3
for i in 1 2 3 4 5; do
  sleep 0.5
  echo "--- blkcachectl -s \$ctl stats ($i)"
  "$CTL" -s "$ctl" stats
  case $i in
    1) "$CTL" -s "$ctl" flush ;;
    2) "$CTL" -s "$ctl" drop-clean ;;
    3) "$CTL" -s "$ctl" set cache-size 1M ;;
    4) "$CTL" -s "$ctl" set cache-size 3M ;;
  esac
done
torture_wait 0
torture_clean "$TESTDIR/torture.out"

"$CTL" -s "$ctl" stats > "$TESTDIR/stats"
passes=$(awk '$1 ~ /^writeback_(expired|background)_passes$/ { n += $2 } END { print n }' "$TESTDIR/stats")
test "$passes" -ge 1
grep -q '^writeback_errors 0$' "$TESTDIR/stats"
grep -q '^cache_size_bytes 3145728$' "$TESTDIR/stats"
