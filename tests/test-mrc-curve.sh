#!/bin/bash
# The miss-ratio curve (control command mrc, blkcachectl mrc) on a skewed
# read workload from blkcache-bench --zipf: its estimate at the cache size
# matches the hit ratio the stats counters measure, and its estimate at
# twice the size matches a real run with twice the cache, each within 5
# points.  Also: its format, and its errors without a curve.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

BENCH="$CLIENT_DIR/blkcache-bench"
make_disk 256M

# zipf_reads SECONDS SEED: Zipf (theta 0.9) 4K random reads over the disk.
zipf_reads ()
{
  "$BENCH" randread "$URI" -b 4K --zipf 0.9 -c 2 -q 8 --seconds "$1" \
    --seed "$2" >/dev/null
}

# measured_hit_ratio: warm the cache up, then the hit ratio of a second run
# from the counters' deltas.
measured_hit_ratio ()
{
  zipf_reads 3 1
  h0=$(stat_of cache_hits); m0=$(stat_of cache_misses)
  zipf_reads 4 2
  h1=$(stat_of cache_hits); m1=$(stat_of cache_misses)
  awk -v h="$((h1 - h0))" -v m="$((m1 - m0))" 'BEGIN { print h / (h + m) }'
}

# within_5_points WHAT A B
within_5_points ()
{
  echo "$1: estimated $2, measured $3"
  awk -v a="$2" -v b="$3" 'BEGIN { d = a - b; exit !(d < 0.05 && d > -0.05) }' \
    || { echo "$0: $1: more than 5 points apart"; exit 1; }
}

# 16M of 4K blocks: 4096 blocks over a 65536-block disk.
start_control_server one "$disk" cache-size=16M block-size=4K
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
within_5_points "16M cache" "$estimate" "$measured"
test "$(stat_of mrc_sample_rate_ppm)" -gt 0
test "$(stat_of mrc_memory_bytes)" -gt 0
stop_server "$PID"

start_control_server two "$disk" cache-size=32M block-size=4K
within_5_points "32M cache" "$estimate_2x" "$(measured_hit_ratio)"
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
