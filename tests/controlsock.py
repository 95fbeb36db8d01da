# A raw client of the control socket, for the script tests' Python: one
# connection per object, a line protocol reader, and a wait with a
# deadline.  Imported by tests/test-control-*.sh.
import socket
import time


class Client:
    """One connection; counts the command lines it sent."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX)
        # A blocking connect waits while the server's backlog is full,
        # where one with a timeout fails with EAGAIN.
        self.sock.connect(path)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.sent = 0

    def send(self, *lines):
        self.sock.sendall(b"".join(l.encode() + b"\n" for l in lines))
        self.sent += len(lines)

    def line(self):
        """The next line without its newline, or None at the end."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        l, self.buf = self.buf.split(b"\n", 1)
        return l.decode()

    def reply(self):
        """The body lines and the status line of the next reply."""
        body = []
        while True:
            l = self.line()
            assert l is not None, "connection closed; got %r" % body
            if l == "ok" or l.startswith("error:"):
                return body, l
            body.append(l)

    def ask(self, line):
        self.send(line)
        return self.reply()

    def stats(self):
        body, status = self.ask("stats")
        assert status == "ok", status
        return {k: int(v) for k, v in (l.split() for l in body)}

    def close(self):
        self.sock.close()


def wait_for(what, cond, seconds=30):
    """Poll COND every 20 ms until it is true; fail after SECONDS."""
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


def send_and_hang_up(path, *lines):
    """Connect, send LINES and close before any reply.  A connection past
    the server's limit may be closed before the lines go: that is fine."""
    c = Client(path)
    try:
        c.send(*lines)
    except (BrokenPipeError, ConnectionResetError):
        pass
    c.close()
