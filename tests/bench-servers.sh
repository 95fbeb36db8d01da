#!/bin/bash
# make bench: the same workloads against each NBD server in turn, on one disk
# file, with blkcache-bench and with fio's nbd engine.
#
# Servers: nbdkit memory (the ceiling for nbdkit's own overhead), nbdkit
# file, nbdkit file with the cache filter, qemu-nbd, and blkcache in each
# cache mode (its other parameters at their defaults, sched=batch among
# them), and last nbdkit memory again (memory-rerun): its ratio to
# memory is what two runs of one server differ by within a round, the noise
# floor against which the other ratios are read.  Workloads: 4 KiB random read
# with the data hot, 1 MiB sequential read hot, 4 KiB 70/30 random read/write
# with a flush every 64 writes, and 4 KiB random writes half of them FUA (fio
# cannot send FUA: blkcache-bench only), and 4 KiB writes all FUA at queue
# depth 16 (qemu-img bench with a writethrough cache, which sends every write
# with FUA).  Before the workloads of a server, the region is written once and
# read once, so that the data is hot in every cache; after that and after
# each workload a flush, so that the next one does not start with the dirty
# data of the last (the prefill and the half-FUA workload leave the cache of
# blkcache cache=writeback full of it, and its writeback would run during the
# next workload).
#
# The disk itself is measured first in each round (server "disk", fio
# with io_uring directly on the disk file, O_DIRECT, 4 KiB random writes):
# at queue depth 16 without any sync, with O_DSYNC (every write durable),
# and with one fdatasync per 16 writes, and one O_DSYNC write at a time
# (queue depth 1) for the latency of a single durable write.  The better
# of the two durable figures at depth 16 is the disk's limit for durable
# writes, against which every FUA row gets a ratio ("x disk limit"), and
# the p99 of the FUA rows at depth 1 and 16 is set against the O_DSYNC
# p99 at the same depth ("p99 x disk").  nbdkit null is the clients' own
# ceiling for writes (it discards them; nbdkit memory serialises writes,
# so it is none): it runs the write workloads only.  FUA rows: 4 KiB
# writes all FUA from 4 qemu-img bench clients at once (-t writethrough,
# which sends every write with FUA, 16 in flight each) on the disk as the
# prefill left it, every block written (fua-4x16-prealloc), then with its
# blocks punched out (fua-4x16-sparse, so writes allocate); and
# blkcache-bench FUA writes from one connection at depth 1 and 16, whose
# per-request latencies give the p50 and p99.
#
# The servers take turns, for BENCH_ROUNDS rounds: each figure is the
# median of its rounds, so that a burst of load on the machine during one
# run does not decide a ratio.  Prints a table of those medians and of
# ratios to nbdkit memory and to nbdkit file, each with the median and the
# range of the ratios within single rounds, and writes it as Markdown,
# with the raw results of every round and a gnuplot chart, under
# tests/results/ (git ignores it).  The table also gives the writes per
# flush each tool actually sent: fio's --fsync=N with a queue depth above
# 1 sends a flush for every request it issues while its write count is a
# multiple of N, so at QD16 it flushes far more often than every N writes.
# And it gives, per request, the CPU time of the server's process, the
# time the machine's CPUs spent idle and the context switches the machine
# made during the run.
#
# Environment: BENCH_SECONDS (measured seconds per run, default 5),
# BENCH_ROUNDS (default 3), BENCH_SIZE (disk and region size, default
# 256M), BENCH_SERVERS (a subset of the server names below; a blkcache
# name may add plugin parameters after colons, e.g.
# blkcache-writethrough:fua=group, to set two settings side by side),
# BENCH_WORKLOADS (a subset of the workload names; the disk's rows run
# always).
set -e
set -u

: "${top_builddir:=..}"
top_builddir="$(cd "$top_builddir" && pwd)"
seconds="${BENCH_SECONDS:-5}"
warmup=1
run_seconds="$(awk -v s="$seconds" -v w="$warmup" 'BEGIN { print s + w }')"
rounds="${BENCH_ROUNDS:-3}"
size="${BENCH_SIZE:-256M}"
plugin="$top_builddir/plugin/.libs/nbdkit-blkcache-plugin.so"
bench="$top_builddir/client/blkcache-bench"
servers="${BENCH_SERVERS:-disk null memory file file+cache qemu-nbd blkcache-none blkcache-writethrough blkcache-writeback memory-rerun}"

export PATH="/usr/bin:$PATH"
for tool in nbdkit fio python3 nbdsh fallocate; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed"; exit 1; }
done

stamp="$(date +%Y%m%d-%H%M%S)"
results="$top_builddir/tests/results/bench-$stamp"
mkdir -p "$results"
work="$(mktemp -d "$top_builddir/tests/tmp.bench.XXXXXX")"
server_pid=""
cleanup ()
{
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || :; fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

disk="$work/disk"
sock="$work/sock"
uri="nbd+unix:///?socket=$sock"
truncate -s "$size" "$disk"
raw="$results/raw.tsv"
printf 'round\tserver\ttool\tworkload\tiops\tmib_s\tp50_us\tp99_us\twrites_per_flush\tserver_cpu_us\tidle_us\tswitches\n' >"$raw"

# The workloads: name, blkcache-bench arguments, fio arguments ("-": none).
workloads=(
  "4k-randread|randread -b 4K|--rw=randread --bs=4k --numjobs=2 --iodepth=32"
  "1m-seqread|seqread -b 1M -q 4|--rw=read --bs=1m --iodepth=4"
  "4k-randrw-flush64|randrw -b 4K --read-percent 70 --flush-every 64|--rw=randrw --rwmixread=70 --bs=4k --fsync=64"
  "4k-write-half-fua|randwrite -b 4K --fua-percent 50|-"
  "4k-fua-qd1|fua-randwrite -b 4K -c 1 -q 1|-"
  "4k-fua-qd16|fua-randwrite -b 4K -c 1 -q 16|-"
)

# The disk's own workloads: name, fio arguments.
disk_workloads=(
  "4k-write-qd16|--iodepth=16"
  "4k-write-dsync-qd16|--iodepth=16 --sync=dsync"
  "4k-write-fdatasync16-qd16|--iodepth=16 --fdatasync=16"
  "4k-write-dsync-qd1|--iodepth=1 --sync=dsync"
)

# Whether workload NAME is among those to run.
wanted ()
{
  case " ${BENCH_WORKLOADS:-$1} " in *" $1 "*) return 0 ;; esac
  return 1
}

start_server ()
{
  rm -f "$sock"
  case "$1" in
    memory|memory-rerun) nbdkit -f -U "$sock" memory "$size" & ;;
    file) nbdkit -f -U "$sock" file "$disk" & ;;
    file+cache) nbdkit -f -U "$sock" --filter=cache file "$disk" & ;;
    qemu-nbd)
      if ! command -v qemu-nbd >/dev/null; then return 1; fi
      qemu-nbd -f raw -t --shared=8 -k "$sock" "$disk" & ;;
    null) nbdkit -f -U "$sock" null "$size" & ;;
    blkcache-*)
      IFS=: read -r -a params <<<"${1#blkcache-}"
      nbdkit -f -U "$sock" "$plugin" "$disk" "cache=${params[0]}" \
        "${params[@]:1}" & ;;
  esac
  server_pid=$!
  for _ in $(seq 1 100); do
    [ -S "$sock" ] && return 0
    sleep 0.1
  done
  echo "$0: $1 did not start"
  return 1
}

stop_server ()
{
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || :
  server_pid=""
}

# A flush, so that the next workload starts with nothing dirty.
settle ()
{
  nbdsh -u "$uri" -c 'h.flush()'
}

# The CPU seconds the server has used so far, the seconds all CPUs of the
# machine have spent idle, and the context switches of the machine.
cpu_mark ()
{
  awk -v hz="$(getconf CLK_TCK)" '
    NR == FNR { sub(/.*\) /, ""); split($0, f, " ")
                server = (f[12] + f[13]) / hz; next }
    $1 == "cpu" { idle = ($5 + $6) / hz }
    $1 == "ctxt" { switches = $2 }
    END { printf "%.2f %.2f %.0f\n", server, idle, switches }' \
    "/proc/$server_pid/stat" /proc/stat
}

# Append ROW (its last field the number of requests the run sent) to the
# raw results, that field replaced by the server's CPU time, the machine's
# idle time and its context switches per request between the marks M0 and
# M1.  A tool's run sends at its measured rate for run_seconds: the
# unmeasured warm-up counts too.
record ()
{
  row="$1" m0="$2" m1="$3"
  printf '%s\t%s\n' "${row%$'\t'*}" "$(awk -v n="${row##*$'\t'}" \
    -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " ")
      printf "%.2f\t%.2f\t%.2f", (y[1] - x[1]) * 1e6 / n,
             (y[2] - x[2]) * 1e6 / n, (y[3] - x[3]) / n }')" \
    >>"$raw"
}

run_bench ()
{
  server="$1" name="$2" args="$3"
  m0="$(cpu_mark)"
  # shellcheck disable=SC2086
  "$bench" --json --seconds "$seconds" --warmup "$warmup" $args "$uri" \
    >"$results/$server.$name.bench.json"
  m1="$(cpu_mark)"
  record "$(python3 - "$results/$server.$name.bench.json" "$round" "$server" \
              "$name" "$run_seconds" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency"]
wpf = ("%.1f" % (d["write"]["ops"] / d["flush"]["ops"])
       if d["flush"]["ops"] else "-")
print("\t".join([sys.argv[2], sys.argv[3], "blkcache-bench", sys.argv[4],
                 "%.0f" % d["iops"], "%.1f" % d["mib_per_s"],
                 "%.1f" % l["p50_us"], "%.1f" % l["p99_us"], wpf,
                 "%.0f" % (d["iops"] * float(sys.argv[5]))]))
EOF
)" "$m0" "$m1"
}

# 4 qemu-img bench clients at once, each COUNT 4 KiB writes with a
# writethrough cache (every write FUA), 16 in flight, at a stride of 4 KiB
# from SKIP bytes into its own quarter of the disk.  Prints the seconds from the start to
# the last one's end.
qemu_img_x4 ()
{
  count="$1" skip="$2" pids=""
  quarter=$(($(stat -c %s "$disk") / 4))
  t0=$(date +%s.%N)
  for i in 0 1 2 3; do
    qemu-img bench -f raw -w -t writethrough -c "$count" -d 16 -s 4k \
      -S 4k -o $((i * quarter + skip)) "$uri" >/dev/null &
    pids="$pids $!"
  done
  # shellcheck disable=SC2086
  wait $pids
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}

# FUA writes from 4 qemu-img clients (qemu_img_x4).  qemu-img bench runs
# a count of writes, not a time: a first run of 256 writes each, which is
# the warm-up, gives the rate, and the measured one sends what that rate
# takes BENCH_SECONDS to (at most the rest of a quarter of the disk
# each), after the warm-up's writes, so that on a sparse disk every
# measured write allocates; a slow server does not stretch the run.  The rate is all their writes over the
# time from the start to the last one's end.
run_qemu_img_bench ()
{
  server="$1" name="$2"
  command -v qemu-img >/dev/null && wanted "$name" || return 0
  t=$(qemu_img_x4 256 0)
  count=$(awk -v t="$t" -v s="$seconds" \
            -v max=$(($(stat -c %s "$disk") / 16384 - 256)) \
            'BEGIN { c = int(256 * s / t)
                     print (c < 256 ? 256 : (c > max ? max : c)) }')
  m0="$(cpu_mark)"
  t=$(qemu_img_x4 "$count" $((256 * 4096)))
  m1="$(cpu_mark)"
  record "$(awk -v r="$round" -v s="$server" -v n="$name" -v c="$count" \
              -v t="$t" 'BEGIN { c *= 4
    printf "%s\t%s\tqemu-img-x4\t%s\t%.0f\t%.1f\t-\t-\t-\t%d\n",
      r, s, n, c / t, c * 4 / 1024 / t, c }')" "$m0" "$m1"
  awk -F'\t' -v r="$round" -v s="$server" -v n="$name" '
    $1 == r && $2 == s && $4 == n {
      printf "   %-26s %-15s %10s IOPS\n", $4, $3, $5 }' "$raw"
}

# fio's JSON in FILE as a row of the raw results, for ROUND, SERVER, TOOL
# and workload NAME, its last field the requests of RUN_SECONDS.
fio_row ()
{
  python3 - "$@" <<'EOF'
import json, sys
out, rnd, server, tool, name, run_seconds = sys.argv[1:]
j = json.load(open(out))["jobs"][0]
syncs = j["sync"]["total_ios"] if "sync" in j else 0
iops = j["read"]["iops"] + j["write"]["iops"]
bw = (j["read"]["bw"] + j["write"]["bw"]) / 1024
def pct(p):
    vals = [j[d]["clat_ns"]["percentile"][p] for d in ("read", "write")
            if j[d]["total_ios"] > 0]
    return max(vals) / 1000 if vals else 0
wpf = "%.1f" % (j["write"]["total_ios"] / syncs) if syncs else "-"
print("\t".join([rnd, server, tool, name, "%.0f" % iops, "%.1f" % bw,
                 "%.1f" % pct("50.000000"), "%.1f" % pct("99.000000"), wpf,
                 "%.0f" % (iops * float(run_seconds))]))
EOF
}

# The disk itself: fio straight on the disk file, every block written
# first, so that no write allocates.  No server runs: cpu_mark reads this
# shell's own process, whose CPU is not fio's.
run_disk ()
{
  fio --name=prefill --filename="$disk" --size="$size" --rw=write --bs=1M \
    --direct=1 --ioengine=io_uring --end_fsync=1 >/dev/null
  for w in "${disk_workloads[@]}"; do
    IFS='|' read -r name fargs <<<"$w"
    out="$results/disk.$name.fio.json"
    m0="$(cpu_mark)"
    # shellcheck disable=SC2086
    fio --name="$name" --filename="$disk" --size="$size" --direct=1 \
      --ioengine=io_uring --rw=randwrite --bs=4k --time_based \
      --ramp_time="$warmup" --runtime="$seconds" --output-format=json \
      --output="$out" $fargs >/dev/null
    m1="$(cpu_mark)"
    record "$(fio_row "$out" "$round" disk fio-disk "$name" "$run_seconds")" \
      "$m0" "$m1"
    awk -F'\t' -v r="$round" -v n="$name" '
      $1 == r && $2 == "disk" && $4 == n {
        printf "   %-26s %-15s %10s IOPS  p99 %s us\n", $4, $3, $5, $8 }' \
      "$raw"
  done
}

run_fio ()
{
  server="$1" name="$2" args="$3"
  out="$results/$server.$name.fio.json"
  m0="$(cpu_mark)"
  # shellcheck disable=SC2086
  fio --name="$name" --ioengine=nbd --uri="$uri" --iodepth=16 --numjobs=4 \
    --time_based --ramp_time="$warmup" --runtime="$seconds" --group_reporting \
    --output-format=json --output="$out" $args >/dev/null
  m1="$(cpu_mark)"
  record "$(fio_row "$out" "$round" "$server" fio "$name" "$run_seconds")" \
    "$m0" "$m1"
}

for round in $(seq 1 "$rounds"); do
  for server in $servers; do
    echo "== round $round/$rounds: $server"
    if [ "$server" = disk ]; then
      server_pid=$$
      run_disk
      server_pid=""
      continue
    fi
    if ! start_server "$server"; then
      echo "   skipped"
      continue
    fi
    "$bench" --prefill --seconds 1 seqread -b 1M "$uri" >/dev/null
    settle
    for w in "${workloads[@]}"; do
      IFS='|' read -r name bargs fargs <<<"$w"
      case "$server:$name" in null:*read | null:*read-*) continue ;; esac
      wanted "$name" || continue
      run_bench "$server" "$name" "$bargs"
      settle
      if [ "$fargs" != "-" ]; then run_fio "$server" "$name" "$fargs"; settle; fi
      awk -F'\t' -v r="$round" -v s="$server" -v n="$name" '
        $1 == r && $2 == s && $4 == n {
          printf "   %-18s %-15s %10s IOPS %9s MiB/s\n", $4, $3, $5, $6 }' \
        "$raw"
    done
    run_qemu_img_bench "$server" 4k-fua-4x16-prealloc
    settle
    fallocate --punch-hole --offset 0 --length "$(stat -c %s "$disk")" "$disk"
    run_qemu_img_bench "$server" 4k-fua-4x16-sparse
    stop_server
  done
done

python3 - "$raw" "$results" "$seconds" "$size" "$rounds" <<'EOF'
import statistics, sys
raw, results, seconds, size, rounds = sys.argv[1:6]
rows = [l.rstrip("\n").split("\t") for l in open(raw)][1:]
servers = list(dict.fromkeys(r[1] for r in rows))
keys = list(dict.fromkeys((r[2], r[3]) for r in rows))

# One row per (server, tool, workload): the median of each column over
# the rounds ("-" where there is no figure).
def median(vals):
    nums = [float(v) for v in vals if v != "-"]
    return statistics.median(nums) if nums else None
data = {}
for s in servers:
    for tool, work in keys:
        runs = [r for r in rows if r[1:4] == [s, tool, work]]
        if runs:
            data[(s, tool, work)] = [s, tool, work] + [
                median(r[i] for r in runs) for i in range(4, 12)]
def fmt(v, digits):
    return "-" if v is None else "%.*f" % (digits, v)

def ratio(tool, work, server, base):
    b = data.get((base, tool, work))
    v = data.get((server, tool, work))
    if not b or not v or not b[3]:
        return "-"
    return "%.2f" % (v[3] / b[3])

# The ratios to BASE within single rounds, where both ran: their median,
# lowest and highest.
def round_span(tool, work, server, base):
    iops = {}
    for r in rows:
        if r[2:4] == [tool, work] and r[1] in (server, base) and r[4] != "-":
            iops[(r[1], r[0])] = float(r[4])
    ratios = [iops[(server, rd)] / iops[(base, rd)]
              for (srv, rd) in iops
              if srv == server and iops.get((base, rd))]
    if not ratios:
        return "-"
    return "%.2f [%.2f-%.2f]" % (statistics.median(ratios), min(ratios),
                                 max(ratios))

# The disk's limit for durable writes in round RD: the better of its
# O_DSYNC and fdatasync-per-16 rates at depth 16.
def disk_limit(rd):
    v = [float(r[4]) for r in rows
         if r[0] == rd and r[1] == "disk" and r[3] in
         ("4k-write-dsync-qd16", "4k-write-fdatasync16-qd16")]
    return max(v) if v else None

# Rows of FUA workloads against the disk's limit of their round: the
# median, lowest and highest of those ratios.
def disk_span(tool, work, server):
    if "fua" not in work:
        return "-"
    ratios = []
    for r in rows:
        if r[1:4] == [server, tool, work] and r[4] != "-":
            lim = disk_limit(r[0])
            if lim:
                ratios.append(float(r[4]) / lim)
    if not ratios:
        return "-"
    return "%.2f [%.2f-%.2f]" % (statistics.median(ratios), min(ratios),
                                 max(ratios))

# The p99 of a FUA row at depth 1 or 16 over the p99 of one O_DSYNC write
# of the disk at that depth, medians of the rounds.
p99_ref = {"4k-fua-qd1": "4k-write-dsync-qd1",
           "4k-fua-qd16": "4k-write-dsync-qd16"}
def p99_ratio(tool, work, server):
    ref = data.get(("disk", "fio-disk", p99_ref.get(work, "")))
    v = data.get((server, tool, work))
    if not ref or not v or not ref[6] or v[6] is None:
        return "-"
    return "%.2f" % (v[6] / ref[6])

# The medians of each column; the three costs per request are the server's
# CPU time (every thread of its process), the time the machine's CPUs
# spent idle and the context switches of the machine, over the run,
# divided by the requests of the run.
head = ["workload", "tool", "server", "IOPS", "MiB/s", "p50 us", "p99 us",
        "writes/flush", "server CPU us/req", "idle us/req", "switches/req",
        "x memory", "x memory by round", "x file", "x file by round",
        "x null by round", "x disk limit by round", "p99 x disk"]
table = []
for tool, work in keys:
    for s in servers:
        r = data.get((s, tool, work))
        if r:
            table.append([work, tool, s, fmt(r[3], 0), fmt(r[4], 1),
                          fmt(r[5], 1), fmt(r[6], 1), fmt(r[7], 1),
                          fmt(r[8], 2), fmt(r[9], 2), fmt(r[10], 2),
                          ratio(tool, work, s, "memory"),
                          round_span(tool, work, s, "memory"),
                          ratio(tool, work, s, "file"),
                          round_span(tool, work, s, "file"),
                          round_span(tool, work, s, "null"),
                          disk_span(tool, work, s),
                          p99_ratio(tool, work, s)])

widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
def line(cells):
    return "  ".join(str(c).rjust(w) if i >= 3 else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths)))
print()
print(line(head))
for t in table:
    print(line(t))

with open(results + "/results.md", "w") as f:
    f.write("# blkcache benchmark\n\n%s s per run, %s disk, 4 connections "
            "x 16 requests unless stated; each figure is the median of %s "
            "rounds (raw.tsv has every round).  \"by round\" gives the "
            "median, the lowest and the highest of the ratios within "
            "single rounds (a server against the reference of its own "
            "round): a slow drift of the machine's load moves that median "
            "less than the ratio of the medians, and the range shows how "
            "far the load moved a ratio.  \"server CPU us/req\" is the "
            "CPU time of the server's process, all threads, per request, "
            "\"idle us/req\" the time the machine's CPUs spent idle "
            "per request and \"switches/req\" the context switches of the "
            "machine per request, all three over the whole run, its "
            "warm-up second counted at the measured rate.  The clients run "
            "on the same CPUs: the CPU a server leaves idle while it waits "
            "is not given to them, and a thread that sleeps and wakes for "
            "every request costs them CPU time.  The disk rows are fio "
            "on the disk file itself; \"x disk limit\" sets each FUA "
            "row against the better of the disk's O_DSYNC and "
            "fdatasync-per-16 rates at depth 16 in the same round, "
            "\"x null\" against nbdkit null (the clients' ceiling), "
            "\"p99 x disk\" the p99 of FUA writes at depth 1 and 16 "
            "against one O_DSYNC write of the disk at that depth.\n\n"
            % (seconds, size, rounds))
    f.write("| " + " | ".join(head) + " |\n")
    f.write("|" + "|".join("---" if i < 3 else "---:"
                           for i in range(len(head))) + "|\n")
    for t in table:
        f.write("| " + " | ".join(t) + " |\n")

# Chart: blkcache-bench IOPS relative to nbdkit memory, one group per
# workload, one bar per server.
works = [w for t, w in keys if t == "blkcache-bench"]
with open(results + "/chart.dat", "w") as f:
    f.write("workload " + " ".join('"%s"' % s for s in servers) + "\n")
    for w in works:
        f.write(w + " " + " ".join(ratio("blkcache-bench", w, s, "memory")
                                   for s in servers) + "\n")
def limit_ratio(tool, work, s):
    span = disk_span(tool, work, s)
    return span.split()[0] if span != "-" else "-"
fua_keys = [(t, w) for t, w in keys if "fua" in w]
fua_servers = [s for s in servers if s != "disk"]
with open(results + "/chart-fua.dat", "w") as f:
    f.write("workload " + " ".join('"%s"' % s for s in fua_servers) + "\n")
    for t, w in fua_keys:
        f.write(w + " " + " ".join(limit_ratio(t, w, s)
                                   for s in fua_servers) + "\n")
with open(results + "/chart.gp", "w") as f:
    f.write("""set terminal pngcairo size 1200,600
set output '%s/chart.png'
set title 'blkcache-bench IOPS relative to nbdkit memory'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key outside right
set ylabel 'x nbdkit memory'
set datafile missing '-'
set grid ytics
plot for [i=2:%d] '%s/chart.dat' using i:xtic(1) title columnheader(i)
set output '%s/chart-fua.png'
set title 'FUA IOPS relative to the disk limit (fio O_DSYNC or fdatasync/16, QD16)'
set ylabel 'x disk limit'
plot for [i=2:%d] '%s/chart-fua.dat' using i:xtic(1) title columnheader(i)
""" % (results, len(servers) + 1, results, results, len(fua_servers) + 1,
       results))
EOF
if command -v gnuplot >/dev/null; then
  gnuplot "$results/chart.gp" || echo "$0: gnuplot failed, no chart"
fi
ln -sfn "bench-$stamp" "$top_builddir/tests/results/latest"
echo
echo "Results in $results (results.md, raw.tsv, chart.png, chart-fua.png)"
