#!/bin/bash
# blkcachectl: exit statuses, and top: -n frames when stdout is not a
# terminal, rates from counter deltas, and a clean exit on SIGINT and on q.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 16M
start_control_server ctl "$disk"

expect_status ()
{
  want="$1"; shift
  status=0
  "$CTL" "$@" > "$TESTDIR/out" 2>&1 || status=$?
  if [ "$status" -ne "$want" ]; then
    echo "$0: blkcachectl $* exited with $status, expected $want:"
    cat "$TESTDIR/out"; exit 1
  fi
}
expect_status 0 --help
grep -q "Usage: blkcachectl -s PATH COMMAND" "$TESTDIR/out"
expect_status 0 --version
expect_status 2 stats
expect_status 2 -s "$ctl"
expect_status 2 -s "$TESTDIR/missing" stats
grep -q "No such file or directory" "$TESTDIR/out"
expect_status 2 -s "$ctl" top -n 0
expect_status 2 -s "$ctl" top extra
expect_status 1 -s "$ctl" set dirty-expire -1
expect_status 0 -s "$ctl" set dirty-expire 3

# top -n 3, not on a terminal: three frames, no escape sequences, and the
# later frames show the reads issued meanwhile and their p99 latency.
nbdsh -u "$URI" -c '
import time
end = time.monotonic() + 2.5
while time.monotonic() < end:
    h.pread(4096, 0)
' &
reader=$!
"$CTL" -s "$ctl" top -n 3 -d 0.5 > "$TESTDIR/top"
wait "$reader"
cat "$TESTDIR/top"
test "$(grep -c '^blkcache top - ' "$TESTDIR/top")" = 3
test "$(grep -c '^IOPS ' "$TESTDIR/top")" = 3
! grep -q $'\033' "$TESTDIR/top"
grep -q 'expire 3 s' "$TESTDIR/top"
# The read column of the last frame is not zero.
awk '/^IOPS / { getline; v = $1 } END { exit !(v > 0) }' "$TESTDIR/top"
# Its p99 row gives the read hits a latency, with its unit.
test "$(grep -c '^p99 ' "$TESTDIR/top")" = 3
awk '/^p99 / { getline; v = $1 }
     END { exit !(v ~ /^[0-9.]+(ns|us|ms|s)$/ && v + 0 > 0) }' "$TESTDIR/top"

# SIGINT ends top at once, with status 0.
"$CTL" -s "$ctl" top > "$TESTDIR/top2" &
top_pid=$!
sleep 1
kill -INT "$top_pid"
status=0
wait "$top_pid" || status=$?
test "$status" = 0
grep -q '^blkcache top - ' "$TESTDIR/top2"

# On a terminal, q ends it (script(1) gives it one).
if command -v script >/dev/null; then
  (sleep 1; printf q) | timeout 10 script -qec "$CTL -s $ctl top" /dev/null \
    > "$TESTDIR/top3"
  grep -q 'q quits' "$TESTDIR/top3"
fi
