#!/bin/bash
# make bench: what the sequential cutoff buys.  A hot set of 16M scattered
# blocks is read three times through a 64M cache, then a disjoint region
# of 4 x the cache (256M) is read sequentially twice in 1 MiB requests,
# then the hot set once more.  Run with seq-cutoff=4M (the default) and
# seq-cutoff=0, BENCH_ROUNDS times each in turn (default 3); prints per
# run the hot set's hit ratio before and after the scan, the blocks the
# scan inserted, the bytes it bypassed, and the server's CPU time (user +
# system, from /proc/PID/stat) per MiB scanned and the scan's MiB/s.
set -e
set -u

: "${top_builddir:=..}"
top_builddir="$(cd "$top_builddir" && pwd)"
plugin="$top_builddir/plugin/.libs/nbdkit-blkcache-plugin.so"
ctl="$top_builddir/client/blkcachectl"
rounds="${BENCH_ROUNDS:-3}"
export PATH="/usr/bin:$PATH"
for tool in nbdkit nbdsh; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed"; exit 1; }
done

dir="$(mktemp -d "$top_builddir/tests/tmp.bench-seq-cutoff.XXXXXX")"
pid=""
cleanup ()
{
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || :; fi
  rm -rf "$dir"
}
trap cleanup EXIT
disk="$dir/disk"
head -c $((320 << 20)) /dev/urandom > "$disk"
tick=$(getconf CLK_TCK)

stat_of ()
{
  "$ctl" -s "$dir/ctl" stats | awk -v n="$1" '$1 == n { print $2 }'
}

cpu_ticks ()
{
  awk '{ print $14 + $15 }' "/proc/$pid/stat"
}

read_hot ()
{
  nbdsh -u "nbd+unix:///?socket=$dir/sock" -c '
for b in [(i * 37) % 1024 for i in range(256)]:
    h.pread(65536, b * 65536)
'
}

hit_ratio ()
{
  h0=$(stat_of cache_hits); m0=$(stat_of cache_misses)
  read_hot
  h1=$(stat_of cache_hits); m1=$(stat_of cache_misses)
  echo $(( (h1 - h0) * 100 / (h1 - h0 + m1 - m0) ))
}

run ()
{
  rm -f "$dir/pid" "$dir/sock"
  nbdkit -f -P "$dir/pid" -U "$dir/sock" "$plugin" "$disk" \
    cache=writethrough cache-size=64M block-size=64K control="$dir/ctl" \
    seq-cutoff="$1" 2>"$dir/log" &
  for _ in $(seq 1 100); do
    [ -s "$dir/pid" ] && [ -S "$dir/sock" ] && break
    sleep 0.1
  done
  pid=$(cat "$dir/pid")
  read_hot; read_hot
  before=$(hit_ratio)
  i0=$(stat_of cache_insertions)
  c0=$(cpu_ticks); t0=$(date +%s.%N)
  nbdsh -u "nbd+unix:///?socket=$dir/sock" -c '
for _ in range(2):
    for off in range(64 << 20, 320 << 20, 1 << 20):
        h.pread(1 << 20, off)
'
  c1=$(cpu_ticks); t1=$(date +%s.%N)
  inserted=$(( $(stat_of cache_insertions) - i0 ))
  after=$(hit_ratio)
  bypassed=$(stat_of seq_bypassed_bytes)
  kill "$pid"; wait "$pid" || :; pid=""
  awk -v cut="$1" -v b="$before" -v a="$after" -v ins="$inserted" \
      -v byp="$bypassed" -v c="$((c1 - c0))" -v tick="$tick" \
      -v t0="$t0" -v t1="$t1" 'BEGIN {
    mib = 512
    printf "%-14s %5d%% %5d%% %9d %10.0f %12.3f %8.0f\n", "seq-cutoff=" cut,
      b, a, ins, byp / 1048576, c / tick * 1000 / mib, mib / (t1 - t0)
  }'
}

printf "%-14s %6s %6s %9s %10s %12s %8s\n" run "hot<" "hot>" inserted \
  "bypassMiB" "cpu-ms/MiB" "MiB/s"
for _ in $(seq 1 "$rounds"); do
  run 4M
  run 0
done | tee "$dir/runs"
# The median CPU per MiB and MiB/s of each setting.
for cut in 4M 0; do
  for col in 6 7; do
    awk -v c="seq-cutoff=$cut" -v k="$col" '$1 == c { print $k }' \
      "$dir/runs" | sort -g | awk '{ v[NR] = $1 }
        END { printf "%s ", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
  done | awk -v c="seq-cutoff=$cut" \
    '{ printf "median %-14s cpu-ms/MiB %s, MiB/s %s\n", c, $1, $2 }'
done
