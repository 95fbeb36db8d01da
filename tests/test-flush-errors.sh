#!/bin/bash
# Rule 1 (issue 18): a flush succeeds only if every write acknowledged
# before it began is on stable storage, so every flush that overlapped a
# failed writeback of a block it covers fails, not only the first to ask.
# Under the fault injector, with cache=writeback and direct=on (the flush
# writes its two blocks back with Linux AIO) and direct=off (pwritev2):
#
# 1. connection 1 writes blocks X and Y (cached); the disk starts refusing
#    X; connection 2 flushes, its writeback of X held open 300 ms
#    (race_window_us), and 50 ms later connection 1 flushes: both flushes
#    fail.
# 2. the same with a control-socket flush (blkcachectl flush) in place of
#    connection 2: it must not take the error away from connection 1's
#    flush, and fails itself.
# 3. once the disk accepts X again, a flush succeeds and the disk file
#    holds X's and Y's last bytes.
#
# The injector's log shows each time that X's writeback really failed.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 4M
head -c 4M /dev/urandom >"$disk"
faultinj_setup "$disk"

cat >"$TESTDIR/flush-errors.py" <<'EOF'
import errno, sys, threading, time
import nbd
from faultinj import *

uri, disk, ctl = sys.argv[1:]
B = 65536
# Y makes each flush write back two blocks, one batch (AIO with direct=on).
X, Y = 0, 16 * B

class Flush(threading.Thread):
    """A flush in its own thread: when it began and ended, and its errno
    (0 if it succeeded)."""
    def __init__(self, name, h=None):
        super().__init__()
        self.name, self.h = name, h
    def run(self):
        self.began = time.monotonic()
        self.err = 0
        if self.h is None:
            status, out = control(ctl, "flush")
            self.err = errno.EIO if status != 0 else 0
            self.out = out.strip()
        else:
            try:
                self.h.flush()
            except nbd.Error as e:
                self.err = e.errnum
        self.ended = time.monotonic()

def check_flush(f, what):
    check(f.err == errno.EIO, "%s fails with EIO (%s)" %
          (what, "it succeeded" if f.err == 0 else
           errno.errorcode.get(f.err, f.err)))

h1, h2 = nbd.NBD(), nbd.NBD()
h1.connect_uri(uri)
h2.connect_uri(uri)

def race(first, label, data_x, data_y):
    """X and Y written on connection 1, X refused by the disk, FIRST
    flushes and connection 1 flushes 50 ms later; both must fail."""
    set_rules()
    h1.pwrite(data_x, X)
    h1.pwrite(data_y, Y)
    check(stat_of(ctl, "dirty_bytes") == 2 * B, "X and Y are dirty")
    mark = log_mark()
    set_rules("write %d %d EIO" % (X, B))
    second = Flush("connection 1", h1)
    first.start()
    time.sleep(0.05)
    second.start()
    first.join()
    second.join()
    check(fired("^write %d %d EIO$" % (X, B), mark) >= 1,
          "%s: the writeback of X failed (injector log)" % label)
    check(second.began < first.ended,
          "%s: connection 1's flush began while %s's ran" %
          (label, first.name))
    check_flush(first, "%s: %s's flush, whose writeback of X failed," %
                (label, first.name))
    check_flush(second, "%s: connection 1's flush, begun before that "
                "failure," % label)

race(Flush("connection 2", h2), "two NBD flushes", b"\x11" * B, b"\x22" * B)
race(Flush("the control socket"), "a control-socket flush", b"\x33" * B,
     b"\x44" * B)

set_rules()
request_succeeds("a flush once the disk accepts X again", h1.flush)
check(on_disk(disk, X, B) == b"\x33" * B, "the disk file holds X's last write")
check(on_disk(disk, Y, B) == b"\x44" * B, "the disk file holds Y's last write")
check(stat_of(ctl, "dirty_bytes") == 0, "nothing is dirty")
finish()
EOF

status=0
for direct in on off; do
  echo "=== direct=$direct"
  start_control_server "flush-$direct" -D blkcache.race_window_us=300000 -- \
    "$disk" cache=writeback direct=$direct block-size=64K dirty-expire=0
  faultinj_python "$TESTDIR/flush-errors.py" "$URI" "$disk" "$ctl" ||
    status=1
  stop_server "$PID"
done
exit "$status"
