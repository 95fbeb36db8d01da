#!/bin/bash
# The miss-ratio curve (control command mrc, blkcachectl mrc).
# 1. It estimates an LRU cache: a seeded Zipf trace read one block at a
#    time (tests/mrc-lru.py, which computes the exact LRU hit ratios of
#    the trace itself), sampled at about 1/4: all seven sizes within 5
#    points of the exact ones.
# 2. Against this cache (S3-FIFO, which beats LRU on skewed reads) on
#    blkcache-bench --zipf: the estimate at the cache size and at twice it
#    (from one server) and the hit ratios the counters measure on a cache
#    of that size and on one twice as large: the estimate is no more than
#    2 points above, and no more than 12 below (LRU trails S3-FIFO by 6 to
#    9 points on these reads; see nbdkit-blkcache-plugin(1), MISS-RATIO
#    CURVE).
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

# within WHAT ESTIMATE EXPECTED BELOW ABOVE: ESTIMATE is at most BELOW points
# under EXPECTED and ABOVE points over it.
within ()
{
  echo "$1: estimated $2, expected $3"
  awk -v e="$2" -v x="$3" -v lo="$4" -v hi="$5" \
    'BEGIN { d = 100 * (e - x); exit !(d > -lo && d < hi) }' \
    || { echo "$0: $1: not within -$4..+$5 points"; exit 1; }
}

# 1. A 32M disk of 8192 4K blocks, a 4M cache; 2048 samples of the 8192.
truncate -s 32M "$TESTDIR/small"
start_control_server lru "$TESTDIR/small" cache-size=4M block-size=4K \
  mrc-samples=2048
/usr/bin/python3 "$top_srcdir/tests/mrc-lru.py" "$URI" 8192 50000 \
  524288 1048576 2097152 4194304 8388608 16777216 33554432 >"$TESTDIR/lru"
"$CTL" -s "$ctl" mrc >"$TESTDIR/mrc"
paste "$TESTDIR/lru" "$TESTDIR/mrc" | while read -r size x size2 e; do
  test "$size" = "$size2"
  within "LRU at $size" "$e" "$x" 5 5
done
stop_server "$PID"

# 2. 16M of 4K blocks: 4096 blocks over a 65536-block disk.
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
within "16M cache" "$estimate" "$measured" 12 2
test "$(stat_of mrc_sample_rate_ppm)" -gt 0
test "$(stat_of mrc_memory_bytes)" -gt 0
stop_server "$PID"

start_control_server two "$disk" cache-size=32M block-size=4K
within "32M cache" "$estimate_2x" "$(measured_hit_ratio)" 12 2
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
