#!/bin/bash
# blkcache-torture against nbdkit memory, the reference server: five seconds
# of colliding reads, writes, FUA writes, zeroes, trims, flushes, cache and
# block-status requests on four connections find no stale read.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdkit

out="$TESTDIR/out"

status=0
nbdkit -U - memory 64M \
  --run '"$TORTURE" --seconds 5 --no-progress "$uri"' >"$out" 2>&1 ||
  status=$?
torture_exited 0 "$status" "$out"
torture_clean "$out"
# Every kind of request was exercised.
for op in read write fua zero zero-fua trim flush cache status; do
  grep -q "^$op " "$out" || { echo "$0: no $op requests"; exit 1; }
done
