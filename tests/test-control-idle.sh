#!/bin/bash
# The control socket closes a connection that has sent nothing for the
# idle period (60 s; here 2 s with -D blkcache.control_idle_s=2), and
# leaves alone one that keeps sending, one whose command is still running,
# and blkcachectl top with frames further apart than the period.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh
# The Python parts share tests/controlsock.py.
export PYTHONPATH="${top_srcdir:-..}/tests"

make_disk 16M

start_control_server default "$disk"
test "$(stat_of control_idle_seconds)" = 60
stop_server "$PID"
rm -f "$ctl"

start_control_server idle -D blkcache.control_idle_s=2 \
  -D blkcache.race_window_us=5000000 -- "$disk" \
  dirty-expire=0 dirty-background=100 dirty-limit=100
test "$(stat_of control_idle_seconds)" = 2
nbdsh -u "$URI" -c 'h.pwrite(b"\x42" * 65536, 0)'

/usr/bin/python3 - "$ctl" <<'PY'
import sys, time
from controlsock import Client
path = sys.argv[1]
idle = Client(path)
half = Client(path)
half.sock.sendall(b"sta")               # half a line, then nothing
active = Client(path)
busy = Client(path)
t0 = time.monotonic()
busy.send("flush")                      # held 5 s by the race window

# The active client asks every half second for 4 s: more than the period.
while time.monotonic() - t0 < 4:
    body, status = active.ask("help")
    assert status == "ok", status
    time.sleep(0.5)

# By now the idle clients are closed (recv sees the end at once) ...
assert idle.line() is None
assert half.line() is None
# ... the active one is served, and the busy one gets its reply.
s = active.stats()
assert s["control_clients"] == 2, s["control_clients"]
assert s["flushes"] == 1
assert busy.reply() == ([], "ok")
assert time.monotonic() - t0 > 4.5, "the flush ended too soon to tell"
PY

# top asks once a frame; a frame 3 s after the last outlasts the period,
# so the second frame needs a new connection.
"$CTL" -s "$ctl" top -d 3 -n 2 > "$TESTDIR/top"
test "$(grep -c "^blkcache top " "$TESTDIR/top")" = 2
