#!/bin/bash
# make bench: how close the miss-ratio curve (blkcachectl mrc) comes to the
# hit ratios measured on real caches, and what it costs the reads.
#
# For each workload: a server with cache C runs it (warm-up, then a
# measured run whose hit ratio comes from the cache_hits and cache_misses
# deltas) and gives its curve; servers with C/2 and 2C run the same
# workload.  The table gives, at C/2, C and 2C, the curve's estimate from
# the C server and the measured hit ratio, and their difference in points.
# The curve simulates this cache's S3-FIFO on sampled reads; the
# workload mixing a Zipf hot set with a sequential scan tests it where
# recency and frequency part.  Then the cost: 4 KiB random reads of a region that fits the
# cache (every read a hit), IOPS with the curve (default mrc-samples) and
# without (mrc-samples=0), BENCH_ROUNDS rounds each, medians.
#
# Environment: BENCH_SECONDS (measured seconds per run, default 5),
# BENCH_ROUNDS (default 3).
set -e
set -u

: "${top_builddir:=..}"
top_builddir="$(cd "$top_builddir" && pwd)"
seconds="${BENCH_SECONDS:-5}"
rounds="${BENCH_ROUNDS:-3}"
plugin="$top_builddir/plugin/.libs/nbdkit-blkcache-plugin.so"
bench="$top_builddir/client/blkcache-bench"
ctlbin="$top_builddir/client/blkcachectl"
dir="$(mktemp -d "$(pwd)/tmp.bench-mrc.XXXXXX")"
pid=""
cleanup ()
{
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || :; wait "$pid" || :; fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
disk="$dir/disk"
truncate -s 256M "$disk"
uri="nbd+unix:///?socket=$dir/sock"

# start CACHE-SIZE PLUGIN-ARGS...
start ()
{
  rm -f "$dir/sock" "$dir/ctl" "$dir/pid"
  nbdkit -f -P "$dir/pid" -U "$dir/sock" "$plugin" "$disk" cache-size="$1" \
    control="$dir/ctl" "${@:2}" 2>>"$dir/log" &
  pid=$!
  for _ in $(seq 1 100); do
    [ -S "$dir/sock" ] && [ -S "$dir/ctl" ] && return 0
    sleep 0.1
  done
  echo "bench-mrc: nbdkit did not start"; cat "$dir/log"; exit 1
}

stop ()
{
  kill "$pid"; wait "$pid" || :; pid=""
}

stat_of ()
{
  "$ctlbin" -s "$dir/ctl" stats | awk -v n="$1" '$1 == n { print $2 }'
}

# workload SECONDS SEED NAME: run the workload NAME.
workload ()
{
  case "$3" in
    zipf0.9-4K|zipf0.99-4K|zipf0.9-64K)
      theta="${3#zipf}"; theta="${theta%-*}"
      "$bench" randread "$uri" -b 4K --zipf "$theta" -c 2 -q 8 \
        --seconds "$1" --seed "$2" >/dev/null ;;
    zipf0.9+scan-4K)
      "$bench" seqread "$uri" -b 64K -c 1 -q 2 --seconds "$1" >/dev/null &
      "$bench" randread "$uri" -b 4K --zipf 0.9 -c 2 -q 8 \
        --seconds "$1" --seed "$2" >/dev/null
      wait ;;
  esac
}

# measure NAME: warm up, then the measured hit ratio.
measure ()
{
  workload "$seconds" 1 "$1"
  h0=$(stat_of cache_hits); m0=$(stat_of cache_misses)
  workload "$seconds" 2 "$1"
  h1=$(stat_of cache_hits); m1=$(stat_of cache_misses)
  awk -v h="$((h1 - h0))" -v m="$((m1 - m0))" \
    'BEGIN { printf "%.4f\n", h / (h + m) }'
}

printf '%-16s %6s %9s %9s %7s\n' workload cache estimate measured points
for w in zipf0.9-4K zipf0.99-4K zipf0.9-64K zipf0.9+scan-4K; do
  case "$w" in *-64K) bs=64K ;; *) bs=4K ;; esac
  start 16M block-size="$bs"
  at16=$(measure "$w")
  "$ctlbin" -s "$dir/ctl" mrc >"$dir/mrc"
  stop
  for c in 8M 16M 32M; do
    case "$c" in
      8M) est=$(awk '$1 == 8388608 { print $2 }' "$dir/mrc") ;;
      16M) est=$(awk '$1 == 16777216 { print $2 }' "$dir/mrc") ;;
      32M) est=$(awk '$1 == 33554432 { print $2 }' "$dir/mrc") ;;
    esac
    if [ "$c" = 16M ]; then
      got="$at16"
    else
      start "$c" block-size="$bs"
      got=$(measure "$w")
      stop
    fi
    awk -v w="$w" -v c="$c" -v e="$est" -v m="$got" \
      'BEGIN { printf "%-16s %6s %9.4f %9.4f %+7.1f\n", w, c, e, m, 100 * (e - m) }'
  done
done

# The cost on the read path: every read a hit.
iops ()
{
  "$bench" randread "$uri" -b 4K -c 2 -q 8 --size 8M --seconds "$seconds" \
    --warmup 1 | sed -n 's/.*: \([0-9]*\) IOPS.*/\1/p'
}
: >"$dir/on"; : >"$dir/off"
for _ in $(seq 1 "$rounds"); do
  start 64M block-size=4K
  iops >>"$dir/on"
  stop
  start 64M block-size=4K mrc-samples=0
  iops >>"$dir/off"
  stop
done
median ()
{
  sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
echo "4K random read hits, median of $rounds rounds: $(median "$dir/on") IOPS" \
  "with the curve, $(median "$dir/off") IOPS with mrc-samples=0"
