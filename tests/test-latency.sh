#!/bin/bash
# Latency histograms per path (nbdkit-blkcache-plugin(1), LATENCY): known
# I/O through a real nbdkit, then each path's count in `stats` is what was
# done and agrees with the request counters, its p50 <= p99 <= p99.9, and
# `stats prometheus` is a well-formed histogram per path: cumulative
# buckets that never decrease, le ascending, +Inf equal to _count, _count
# equal to the text count.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

N_HITS=20 N_FUA=5 N_CACHED=4 N_DIRECT=3
make_disk 16M

# check_latency: the checks every path shares, on the stats of $ctl.
check_latency ()
{
  "$CTL" -s "$ctl" stats >"$TESTDIR/stats"
  "$CTL" -s "$ctl" stats prometheus >"$TESTDIR/prom"
  /usr/bin/python3 - "$TESTDIR/stats" "$TESTDIR/prom" <<'EOF'
import re, sys
text = dict(l.split() for l in open(sys.argv[1]))
paths = ["read_hit", "read_miss", "cached_write", "direct_write",
         "fua_write", "flush", "writeback_run", "dirty_limit_wait"]
bad = []
buckets, sums, counts = {}, {}, {}
for line in open(sys.argv[2]):
    m = re.match(r'blkcache_latency_seconds_(bucket|sum|count)'
                 r'\{path="(\w+)"(?:,le="([^"]+)")?\} (\S+)$', line)
    if not m:
        continue
    kind, path, le, value = m.groups()
    if kind == "bucket":
        buckets.setdefault(path, []).append((le, int(value)))
    elif kind == "sum":
        sums[path] = float(value)
    else:
        counts[path] = int(value)
for p in paths:
    n = int(text["latency_%s_count" % p])
    q = [int(text["latency_%s_%s_ns" % (p, s)]) for s in ("p50", "p99", "p999")]
    if not q[0] <= q[1] <= q[2]:
        bad.append("%s: p50 %d, p99 %d, p99.9 %d out of order" % ((p,) + tuple(q)))
    if (n > 0) != (q[0] > 0):
        bad.append("%s: count %d but p50 %d" % (p, n, q[0]))
    b = buckets.get(p, [])
    if not b or b[-1][0] != "+Inf":
        bad.append("%s: no +Inf bucket" % p)
        continue
    les = [float(le) for le, _ in b[:-1]]
    if les != sorted(les) or les[0] != 1e-06 or les[-1] != 10:
        bad.append("%s: le not ascending from 1e-06 to 10: %s" % (p, les))
    vals = [v for _, v in b]
    if any(x > y for x, y in zip(vals, vals[1:])):
        bad.append("%s: cumulative buckets decrease: %s" % (p, vals))
    if vals[-1] != counts.get(p) or counts.get(p) != n:
        bad.append("%s: +Inf %d, _count %s, stats count %d" %
                   (p, vals[-1], counts.get(p), n))
    if (n > 0) != (sums.get(p, 0) > 0):
        bad.append("%s: count %d but _sum %s" % (p, n, sums.get(p)))
if re.search(r'^# TYPE blkcache_latency_seconds histogram$',
             open(sys.argv[2]).read(), re.M) is None:
    bad.append("no '# TYPE blkcache_latency_seconds histogram'")
for b in bad:
    print("FAILED " + b)
sys.exit(1 if bad else 0)
EOF
}

# want NAME VALUE: the stat NAME is VALUE.
want ()
{
  got="$(stat_of "$1")"
  if [ "$got" != "$2" ]; then
    echo "$0: $1 is $got, expected $2"; exit 1
  fi
}

# Writeback: 1 miss, then hits of that block, FUA writes, cached writes,
# one NBD and one control flush; no background writeback, no dirty limit.
start_control_server writeback "$disk" cache-size=4M dirty-expire=0 \
  dirty-background=100 dirty-limit=100
nbdsh -u "$URI" -c "
h.pread(4096, 0)
for i in range($N_HITS):
    h.pread(4096, 0)
for i in range($N_FUA):
    h.pwrite(b'f' * 4096, 1048576 + i * 65536, nbd.CMD_FLAG_FUA)
for i in range($N_CACHED):
    h.pwrite(b'c' * 65536, 2097152 + i * 65536)
h.flush()
"
"$CTL" -s "$ctl" flush >/dev/null
want latency_read_miss_count 1
want latency_read_hit_count "$N_HITS"
want reads $((N_HITS + 1))
want latency_fua_write_count "$N_FUA"
want latency_cached_write_count "$N_CACHED"
want latency_direct_write_count 0
want latency_flush_count 2
want latency_writeback_run_count 0
want latency_dirty_limit_wait_count 0
check_latency

# Background writeback: the runs it writes are timed.
nbdsh -u "$URI" -c "h.pwrite(b'w' * 65536, 4194304)"
"$CTL" -s "$ctl" set dirty-background 0
nothing_dirty () { [ "$(stat_of dirty_bytes)" = 0 ]; }
wait_until 30 nothing_dirty
test "$(stat_of latency_writeback_run_count)" -ge 1

# A dirty limit below one block: a cached write that finds a block dirty
# waits (unless background writeback cleaned it first, hence the loop);
# each wait is timed once.
"$CTL" -s "$ctl" set dirty-limit 1
for round in $(seq 1 20); do
  nbdsh -u "$URI" -c "
for i in range(8):
    h.pwrite(b'l' * 65536, 8388608 + i * 65536)
"
  [ "$(stat_of dirty_limit_waits)" -ge 1 ] && break
done
test "$(stat_of dirty_limit_waits)" -ge 1
want latency_dirty_limit_wait_count "$(stat_of dirty_limit_waits)"
# Background writeback off, and a flush, which runs on the worker after
# any background pass: no run is timed while the two formats are read.
"$CTL" -s "$ctl" set dirty-limit 100
"$CTL" -s "$ctl" set dirty-background 100
"$CTL" -s "$ctl" flush
check_latency
stop_server "$PID"

# Writethrough: writes without FUA go to the disk.
start_control_server writethrough "$disk" cache=writethrough
nbdsh -u "$URI" -c "
for i in range($N_DIRECT):
    h.pwrite(b'd' * 4096, i * 4096)
"
want latency_direct_write_count "$N_DIRECT"
want latency_cached_write_count 0
check_latency
