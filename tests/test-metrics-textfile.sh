#!/bin/bash
# blkcache-metrics@.service's command line, run as the unit runs it
# against a real nbdkit with the unit's control socket, writes the
# counters in the Prometheus text format into node_exporter's textfile
# directory: a complete .prom file (promtool check metrics passes where
# promtool is installed), replaced by a rename, with no temporary file
# left behind, and left untouched when the control socket does not answer.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 16M
ctl="$TESTDIR/vm1.ctl"
start_server vm1 "$disk" control="$ctl"
mkdir "$TESTDIR/textfile"
prom="$TESTDIR/textfile/blkcache-vm1.prom"
run="$(unit_command blkcache-metrics@.service ExecStart)"
stop_post="$(unit_command blkcache-metrics@.service ExecStopPost)"
echo "ExecStart: $run"

# run_unit: ExecStart, then ExecStopPost whatever ExecStart returned, as
# systemd runs a oneshot service; returns ExecStart's status.
run_unit ()
{
  status=0
  eval "$run" || status=$?
  eval "$stop_post"
  return "$status"
}

nbdsh -u "$URI" -c 'h.pread(65536, 0); h.pread(65536, 0)'
run_unit
ls -l "$TESTDIR/textfile"
test "$(ls "$TESTDIR/textfile")" = blkcache-vm1.prom
grep -qx 'blkcache_cache_hits_total [1-9][0-9]*' "$prom"
grep -qx '# TYPE blkcache_cache_hits_total counter' "$prom"
grep -qx 'blkcache_cache_size_bytes 268435456' "$prom"
! grep -qE '^(ok|error:)' "$prom"
# Every sample line has its TYPE line (a histogram's _bucket, _sum and
# _count lines that of the histogram), and the file ends with a newline.
awk '/^# TYPE / { t[$3] = $4 }
     /^[a-z]/ { n = $1; sub(/\{.*/, "", n)
                if (!(n in t)) { h = n; sub(/_(bucket|sum|count)$/, "", h)
                                 if (t[h] != "histogram") bad = 1 } }
     END { exit bad }' "$prom"
test "$(tail -c 1 "$prom" | od -An -c | tr -d ' ')" = '\n'
if command -v promtool >/dev/null; then
  promtool check metrics < "$prom"
fi

# A new run replaces the file by a rename (a new inode), with new values.
inode="$(stat -c %i "$prom")"
nbdsh -u "$URI" -c 'h.pread(65536, 0)'
run_unit
test "$(stat -c %i "$prom")" != "$inode"
grep -qx 'blkcache_reads_total 3' "$prom"

# With nbdkit gone, the run fails and the last complete file stays.
cp "$prom" "$TESTDIR/before"
stop_server "$PID"
if run_unit; then
  echo "$0: the metrics unit succeeded without nbdkit"; exit 1
fi
cmp "$prom" "$TESTDIR/before"
test "$(ls "$TESTDIR/textfile")" = blkcache-vm1.prom
