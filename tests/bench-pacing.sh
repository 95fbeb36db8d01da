#!/bin/bash
# make bench: random-read p99 while background writeback drains a
# half-dirty cache, against the p99 of the same reads with nothing dirty,
# for each writeback-rate in BENCH_PACING_RATES (default "0 16M"; 0 is
# unlimited).
#
# For each rate: blkcache with cache-size=256M on a 128M disk, no
# background writeback until the test starts it (dirty-background=100,
# dirty-expire=0).  The disk is read once (every block cached, clean),
# then blkcache-bench randread (4 KiB, 4 in flight on one connection)
# measures the clean p99.  The whole disk is written (128M dirty: half the
# cache), dirty-background is set to 0, and the same reads run at once,
# while background writeback drains the cache.  Every read is a cache hit
# in both runs, so the difference is what writeback costs the readers.
# Prints, per rate, both p99s and their ratio, the bytes background
# writeback wrote during the measured run and how long the drain took.
#
# Environment: BENCH_SECONDS (measured seconds per run, default 5),
# BENCH_PACING_RATES.
set -e
set -u

: "${top_builddir:=..}"
top_builddir="$(cd "$top_builddir" && pwd)"
seconds="${BENCH_SECONDS:-5}"
rates="${BENCH_PACING_RATES:-0 16M}"
plugin="$top_builddir/plugin/.libs/nbdkit-blkcache-plugin.so"
bench="$top_builddir/client/blkcache-bench"
ctl_bin="$top_builddir/client/blkcachectl"

export PATH="/usr/bin:$PATH"
for tool in nbdkit nbdcopy python3; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed"; exit 1; }
done

work="$(mktemp -d "$top_builddir/tests/tmp.bench-pacing.XXXXXX")"
server_pid=""
cleanup ()
{
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || :; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

disk="$work/disk"
sock="$work/sock"
ctl="$work/ctl"
uri="nbd+unix:///?socket=$sock"
truncate -s 128M "$disk"

stat_of ()
{
  "$ctl_bin" -s "$ctl" stats | awk -v n="$1" '$1 == n { print $2 }'
}

p99 ()
{
  "$bench" randread -b 4K -q 4 -c 1 --seconds "$seconds" --json "$uri" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["read"]["p99_us"])'
}

printf '%-14s %12s %12s %7s %16s %10s\n' writeback-rate clean_p99_us \
  drain_p99_us ratio wb_bytes_in_run drain_s
for rate in $rates; do
  rm -f "$sock" "$ctl" "$work/pid"
  nbdkit -P "$work/pid" -U "$sock" "$plugin" "$disk" cache-size=256M \
    dirty-expire=0 dirty-background=100 dirty-limit=100 \
    writeback-rate="$rate" control="$ctl" 2>"$work/log"
  for _ in $(seq 1 100); do [ -S "$ctl" ] && [ -s "$work/pid" ] && break; sleep 0.1; done
  server_pid="$(cat "$work/pid")"

  nbdcopy "$uri" null:
  clean="$(p99)"

  python3 - "$uri" <<'PY'
import sys
import nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
chunk = bytes(range(256)) * 4096
for off in range(0, h.get_size(), len(chunk)):
    h.pwrite(chunk, off)
PY
  test "$(stat_of dirty_bytes)" = $((128 * 1048576))
  b0="$(stat_of background_writeback_bytes)"
  t0="$(date +%s.%N)"
  "$ctl_bin" -s "$ctl" set dirty-background 0
  drain="$(p99)"
  b1="$(stat_of background_writeback_bytes)"
  while [ "$(stat_of dirty_bytes)" != 0 ]; do sleep 0.05; done
  t1="$(date +%s.%N)"

  printf '%-14s %12s %12s %7s %16s %10s\n' "$rate" "$clean" "$drain" \
    "$(awk -v a="$drain" -v b="$clean" 'BEGIN { printf "%.2f", a / b }')" \
    "$((b1 - b0))" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  kill "$server_pid"
  while kill -0 "$server_pid" 2>/dev/null; do sleep 0.1; done
  server_pid=""
done
