#!/bin/bash
# The control socket serves several clients at once: one that connects
# and sends nothing, one that sends half a line, and one that floods
# commands without reading its replies do not delay another's stats; past
# the connection limit a client gets an error line.
. "${top_srcdir:-..}/tests/functions.sh"

make_disk 16M
start_control_server clients "$disk"

/usr/bin/python3 - "$ctl" <<'PY'
import socket, sys, time
path = sys.argv[1]

def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(5)
    return s

def ask(s, cmd):
    s.sendall(cmd.encode() + b"\n")
    buf = b""
    while not (buf.endswith(b"\nok\n") or b"error:" in buf):
        chunk = s.recv(65536)
        assert chunk, "connection closed"
        buf += chunk
    return buf.decode()

idle = connect()                        # sends nothing
half = connect()
half.sendall(b"sta")                    # half a line, never finished
flood = connect()
flood.setblocking(False)
sent = 0
try:
    while sent < 4 * 1024 * 1024:       # far past the server's buffers
        sent += flood.send(b"stats\n" * 1000)
except BlockingIOError:
    pass
assert sent > 64 * 1024, sent

a, b = connect(), connect()
for i in range(20):
    t = time.monotonic()
    ra = ask(a, "stats")
    rb = ask(b, "help")
    assert time.monotonic() - t < 1, "slow reply"
    assert ra.endswith("\nok\n") and "cache_hits " in ra
    assert rb.endswith("\nok\n")
clients = int(ask(a, "stats").split("control_clients ")[1].split()[0])
assert clients == 5, clients

# The flooder still gets its replies, in order, once it reads.
flood.setblocking(True)
flood.settimeout(5)
got = flood.recv(65536).decode()
assert got.startswith("cache_size_bytes "), got[:80]
for s in (idle, half, flood):
    s.close()
time.sleep(0.3)
assert "control_clients 2\n" in ask(a, "stats")

# Past the limit of 32 connections: an error line, then the close.
held = [connect() for _ in range(31)]   # with A and B: 33
extra = held[-1]
msg = extra.recv(100)
assert msg == b"error: too many control connections\n", msg
assert extra.recv(100) == b""
for s in held:
    s.close()
time.sleep(0.3)
assert "control_clients 2\n" in ask(a, "stats")
PY
