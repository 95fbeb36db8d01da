#!/bin/bash
# The miss-ratio curve (control command mrc, blkcachectl mrc) against the
# cache it models, on blkcache-bench --zipf reads: the estimate at the
# cache size within 5 points of the hit ratio the counters measure on
# that server, and the estimate at twice the size within 5 points of the
# hit ratio measured on a real cache twice as large.
# Also: its format, and its errors without a curve.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh /usr/bin/python3

BENCH="$CLIENT_DIR/blkcache-bench"
make_disk 256M

# zipf_reads SEED: one second of Zipf (theta 0.9) 4K random reads over
# the disk.
zipf_reads ()
{
  "$BENCH" randread "$URI" -b 4K --zipf 0.9 -c 2 -q 8 --seconds 1 \
    --seed "$1" >/dev/null
}

lookups ()
{
  echo $(($(stat_of cache_hits) + $(stat_of cache_misses)))
}

# measured_hit_ratio: Zipf reads until the cache has evicted twice
# its capacity (past the cold start), then the hit ratio the counters
# give over at least 32768 more block reads: counts, not times, so a slow
# build measures the same thing.
measured_hit_ratio ()
{
  seed=1
  capacity=$(stat_of cache_capacity_blocks)
  while [ "$(stat_of cache_evictions)" -lt $((2 * capacity)) ]; do
    zipf_reads $((seed += 1))
  done
  h0=$(stat_of cache_hits); m0=$(stat_of cache_misses)
  while [ $(($(lookups) - h0 - m0)) -lt 32768 ]; do
    zipf_reads $((seed += 1))
  done
  h1=$(stat_of cache_hits); m1=$(stat_of cache_misses)
  awk -v h="$((h1 - h0))" -v m="$((m1 - m0))" 'BEGIN { print h / (h + m) }'
}

# within WHAT ESTIMATE EXPECTED: ESTIMATE is within 5 points of EXPECTED.
within ()
{
  echo "$1: estimated $2, measured $3"
  awk -v e="$2" -v x="$3" 'BEGIN { d = 100 * (e - x); exit !(d > -5 && d < 5) }' \
    || { echo "$0: $1: not within 5 points"; exit 1; }
}

# 16M of 4K blocks: 4096 blocks over a 65536-block disk.
# The curve covers the last 16384 to 32768 block reads: the measured ones.
start_control_server one "$disk" cache-size=16M block-size=4K mrc-window=32768
# Nothing read yet: no curve.
status=0
"$CTL" -s "$ctl" mrc >"$TESTDIR/out" 2>&1 || status=$?
test "$status" = 1
grep -q "no block read sampled yet" "$TESTDIR/out"

measured=$(measured_hit_ratio)
"$CTL" -s "$ctl" mrc >"$TESTDIR/mrc"
cat "$TESTDIR/mrc"
# Seven lines, 2M to 128M, ratios in [0, 1] rising with the size.
awk 'BEGIN { size = 2097152; prev = 0 }
     { if ($1 != size || $2 < prev || $2 > 1) exit 1; size *= 2; prev = $2 }
     END { exit NR != 7 }' "$TESTDIR/mrc"
estimate=$(awk '$1 == 16777216 { print $2 }' "$TESTDIR/mrc")
estimate_2x=$(awk '$1 == 33554432 { print $2 }' "$TESTDIR/mrc")
within "16M cache" "$estimate" "$measured"
test "$(stat_of mrc_sample_rate_ppm)" -gt 0
test "$(stat_of mrc_memory_bytes)" -gt 0
# The curve follows a resize, starting afresh: 1M to 64M around 8M.
"$CTL" -s "$ctl" set cache-size 8M
status=0
"$CTL" -s "$ctl" mrc >"$TESTDIR/out" 2>&1 || status=$?
test "$status" = 1
grep -q "no block read sampled yet" "$TESTDIR/out"
zipf_reads 1
"$CTL" -s "$ctl" mrc >"$TESTDIR/mrc"
test "$(head -1 "$TESTDIR/mrc" | cut -d' ' -f1)" = 1048576
test "$(tail -1 "$TESTDIR/mrc" | cut -d' ' -f1)" = 67108864
stop_server "$PID"

start_control_server two "$disk" cache-size=32M block-size=4K
within "32M cache" "$estimate_2x" "$(measured_hit_ratio)"
stop_server "$PID"

# No curve: mrc-samples=0, or no cache at all.
for args in mrc-samples=0 cache=none; do
  start_control_server "off-$args" "$disk" "$args"
  nbdsh -u "$URI" -c 'h.pread(4096, 0)'
  status=0
  "$CTL" -s "$ctl" mrc >"$TESTDIR/out" 2>&1 || status=$?
  test "$status" = 1
  grep -q "no curve" "$TESTDIR/out"
  test "$(stat_of mrc_samples)" = 0
  stop_server "$PID"
done
