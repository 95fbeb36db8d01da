#!/bin/bash
# The control socket's job queue: flushes sent while another flush waits
# in the queue join it (N clients, fewer than N engine flushes, every one
# answered "ok"); at most 8 jobs wait, and the next one is answered
# "error: busy" while the connection goes on.  A flush held open by
# race_window_us keeps the worker busy while the queue fills.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh
# The Python parts share tests/controlsock.py.
export PYTHONPATH="${top_srcdir:-..}/tests"

make_disk 16M
start_held_flush_server busy 3000000

/usr/bin/python3 - "$ctl" <<'PY'
import sys
from controlsock import Client, wait_for
path = sys.argv[1]
st = Client(path)
clients = [st]

def connect():
    c = Client(path)
    clients.append(c)
    return c

def settled():
    """Every command line sent so far has been handled."""
    s = st.stats()
    return s["control_commands"] == sum(c.sent for c in clients)

# The holder's flush writes back the dirty block and sleeps in the race
# window with it: the worker is busy for 3 s.
hold = connect()
hold.send("flush")
wait_for("the first flush to start", lambda: st.stats()["flushes"] == 1)

# Ten flushes while it runs: one queued job.
flushers = [connect() for _ in range(10)]
for f in flushers:
    f.send("flush")
wait_for("the flushes to be handled", settled)
s = st.stats()
assert s["control_jobs_queued"] == 1, s["control_jobs_queued"]

# Seven drop-cleans fill the queue to 8; the next is refused, and its
# connection still works; a flush still joins the queued one.
droppers = [connect() for _ in range(7)]
for d in droppers:
    d.send("drop-clean")
wait_for("the drop-cleans to be handled", settled)
assert st.stats()["control_jobs_queued"] == 8
late = connect()
body, status = late.ask("drop-clean")
assert status.startswith("error: busy: drop-clean: "), status
body, status = late.ask("help")
assert status == "ok", status
extra = connect()
extra.send("flush")
flushers.append(extra)
wait_for("the last flush to be handled", settled)
s = st.stats()
assert s["control_jobs_queued"] == 8, s["control_jobs_queued"]
# Still inside the first flush: nothing above depended on timing.
assert s["flushes"] == 1, "the held flush ended early: %d" % s["flushes"]

assert hold.reply() == ([], "ok")
for f in flushers:
    assert f.reply() == ([], "ok")
for d in droppers:
    body, status = d.reply()
    assert status == "ok" and body[0].startswith("dropped_blocks "), body
s = st.stats()
# The held flush and the one all eleven joined.
assert s["flushes"] == 2, s["flushes"]
assert s["control_jobs_queued"] == 0
print("11 flush clients, %d engine flushes" % s["flushes"])
PY

# Nothing of the flush was lost on the way.
cmp <(dd if="$disk" bs=64K count=1 status=none) \
    <(head -c 65536 /dev/zero | tr '\0' '\102')
