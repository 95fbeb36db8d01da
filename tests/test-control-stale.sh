#!/bin/bash
# control=PATH: a stale socket left by a killed server is replaced, a live
# one and a path that is not a socket are refused; the socket works when
# nbdkit forks into the background, and goes away when nbdkit exits.
. "${top_srcdir:-..}/tests/functions.sh"

make_disk 16M

# A stale socket: bound, then its owner killed with SIGKILL.
start_control_server first "$disk"
"$CTL" -s "$ctl" stats > /dev/null
kill_server "$PID"
test -S "$ctl"
if "$CTL" -s "$ctl" stats 2>/dev/null; then
  echo "$0: a killed server still answers"; exit 1
fi
start_control_server second "$disk"
"$CTL" -s "$ctl" stats | grep -q '^uptime_seconds '

# A live socket is refused, and left alone.
nbdkit_fails "$disk" control="$ctl"
grep -q "another server is listening on this socket" "$TESTDIR/fail.log"
"$CTL" -s "$ctl" stats | grep -q '^uptime_seconds '
stop_server "$PID"
test ! -e "$ctl"

# Not a socket: refused, and the file is untouched.
echo precious > "$TESTDIR/file"
nbdkit_fails "$disk" control="$TESTDIR/file"
grep -q "exists and is not a socket" "$TESTDIR/fail.log"
test "$(cat "$TESTDIR/file")" = precious
nbdkit_fails "$disk" control="$TESTDIR/no/such/dir/ctl"
grep -q "control=.*No such file or directory" "$TESTDIR/fail.log"

# nbdkit forks into the background (no -f): the service thread starts in
# the child, and a relative path still names the same socket.
pidfile="$TESTDIR/bg.pid"
(cd "$TESTDIR" &&
  env LD_PRELOAD="$(sanitizer_preload)" ASAN_OPTIONS="detect_leaks=0" \
    nbdkit -P "$pidfile" -U "$TESTDIR/bg.sock" "$PLUGIN" "$disk" \
    control=bg.ctl 2>>"$TESTDIR/bg.log")
SERVER_LOGS="$SERVER_LOGS $TESTDIR/bg.log"
bg_started ()
{
  [ -s "$pidfile" ] && [ -S "$TESTDIR/bg.ctl" ]
}
wait_until 10 bg_started || {
  echo "$0: nbdkit did not start in the background"; exit 1; }
bgpid="$(cat "$pidfile")"
SERVER_PIDS="$SERVER_PIDS $bgpid"
"$CTL" -s "$TESTDIR/bg.ctl" stats | grep -q '^uptime_seconds '
stop_server "$bgpid"
test ! -e "$TESTDIR/bg.ctl"
