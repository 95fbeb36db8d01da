#!/bin/bash
# Control clients that hang up while their command runs still count toward
# the limit of 32 connections until the command ends, so a loop that
# connects, sends flush and hangs up neither piles up jobs nor starves
# background writeback.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh
# The Python parts share tests/controlsock.py.
export PYTHONPATH="${top_srcdir:-..}/tests"

make_disk 16M

# 1. Hung-up clients fill the limit while a flush held open by
# race_window_us keeps their flushes waiting.
start_held_flush_server held 4000000
/usr/bin/python3 - "$ctl" <<'PY'
import sys
from controlsock import Client, send_and_hang_up, wait_for
path = sys.argv[1]
st = Client(path)
hold = Client(path)
hold.send("flush")
wait_for("the first flush to start", lambda: st.stats()["flushes"] == 1)

# Each sends help and flush and hangs up before any reply, so the server's
# reply to help finds the connection gone while the flush waits.
for _ in range(40):
    send_and_hang_up(path, "help", "flush")
wait_for("32 connections", lambda: st.stats()["control_clients"] == 32)
late = Client(path)
assert late.line() == "error: too many control connections"
assert late.line() is None
s = st.stats()
assert s["flushes"] == 1, "the held flush ended early: %d" % s["flushes"]
assert s["control_jobs_queued"] == 1, s["control_jobs_queued"]

# When the flushes end, the hung-up clients go.
assert hold.reply() == ([], "ok")
hold.close()
wait_for("the hung-up clients to go",
         lambda: st.stats()["control_clients"] == 1)
PY
stop_server "$PID"

# 2. A thousand connect/flush/hang-up rounds while a writer keeps the cache
# dirty above dirty-background: the queue stays within its bound, and
# background writeback passes still run during the rounds.
rm -f "$ctl"
start_control_server loop -D blkcache.race_window_us=20000 -- "$disk" \
  cache-size=16M dirty-expire=0 dirty-background=1 dirty-limit=100
nbdsh -u "$URI" -c '
import os, time
data = os.urandom(8 * 65536)
deadline = time.monotonic() + 120
while not os.path.exists(os.environ["TESTDIR"] + "/done") and \
        time.monotonic() < deadline:
    h.pwrite(data, 0)
    time.sleep(0.02)
' &
writer=$!
/usr/bin/python3 - "$ctl" <<'PY'
import sys, time
from controlsock import Client, send_and_hang_up, wait_for
path = sys.argv[1]
st = Client(path)

def passes(s):
    return s["writeback_background_passes"] + s["writeback_expired_passes"]

wait_for("the writer", lambda: st.stats()["cached_writes"] > 0)
before = passes(st.stats())
peak_queued = peak_clients = 0
t0 = time.monotonic()
for i in range(1000):
    send_and_hang_up(path, "help", "flush")
    time.sleep(0.005)   # pacing: the rounds span many writeback ticks
    if i % 50 == 0:
        s = st.stats()
        peak_queued = max(peak_queued, s["control_jobs_queued"])
        peak_clients = max(peak_clients, s["control_clients"])
s = st.stats()
during = passes(s) - before
print("rounds: 1000 in %.1f s; flushes %d; peak queued %d; peak clients "
      "%d; writeback passes during the rounds %d"
      % (time.monotonic() - t0, s["flushes"], peak_queued, peak_clients,
         during))
assert peak_queued <= 8, peak_queued
assert peak_clients <= 32, peak_clients
assert during > 0, "no background writeback pass while the rounds ran"
wait_for("the hung-up clients to go",
         lambda: st.stats()["control_clients"] == 1)
PY
touch "$TESTDIR/done"
wait "$writer"
