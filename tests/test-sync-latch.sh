#!/bin/bash
# Rule 2 (issue 18): a failed fdatasync is latched.  On Linux a writeback
# error is reported by fdatasync once; a later fdatasync that returns 0
# proves nothing about the data the failed one covered.  So after it every
# flush, FUA write, FUA zero and FUA trim fails with EIO until
# `blkcachectl clear-errors` (control command clear-errors, reply "ok"),
# while reads and writes without FUA go on working; the counters
# sync_errors (a count) and sync_failed (0/1) show it, and nbdkit logs one
# error line that names clear-errors.  An EINTR from fdatasync is retried
# and latches nothing.  A FUA write whose own sync fails fails, whether
# that sync is the one inside its RWF_DSYNC write (fua=dsync, and fua=auto
# where the write allocates nothing; its error is that write's) or the
# shared fdatasync of group commit (fua=group, fua=auto into a hole),
# which latches.  Under the fault injector, in every cache mode,
# with direct=on and direct=off, and with each fua= under writethrough.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh
requires fallocate

make_disk 4M
# The first half written, so FUA writes there allocate nothing; the second
# half is punched out again before each server starts.
dd if=/dev/urandom of="$disk" bs=64K count=32 conv=notrunc status=none
faultinj_setup "$disk"

cat >"$TESTDIR/sync-latch.py" <<'EOF'
import errno, socket, sys
import nbd
from faultinj import *

uri, ctl, server_log, disk, fua = sys.argv[1:]
B = 65536
h = nbd.NBD()
h.connect_uri(uri)

def counters(what, errors, failed):
    e, f = stat_of(ctl, "sync_errors"), stat_of(ctl, "sync_failed")
    check(e == errors, "%s: sync_errors is %d (it is %s)" % (what, errors, e))
    check(f == failed, "%s: sync_failed is %d (it is %s)" % (what, failed, f))

def control_reply(command):
    """The reply to COMMAND on the control socket, up to "ok" or an
    "error:" line."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(ctl)
    s.sendall(command.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"ok\n") and b"error:" not in reply:
        data = s.recv(4096)
        if not data:
            break
        reply += data
    s.close()
    return reply.decode().strip()

# EINTR is retried, never latched.
h.pwrite(b"\x01" * B, 0)
mark = log_mark()
set_rules("sync 0 0 EINTR 3")
request_succeeds("a flush whose fdatasync is interrupted 3 times", h.flush)
check(fired("^sync 0 0 EINTR$", mark) >= 1, "fdatasync was interrupted")
set_rules()
request_succeeds("a FUA write after the interrupted fdatasync", h.pwrite,
                 b"\x02" * B, B, nbd.CMD_FLAG_FUA)
counters("after EINTR", 0, 0)

# EIO is latched.
h.pwrite(b"\x03" * B, 0)
mark = log_mark()
set_rules("sync 0 0 EIO 1")
request_fails(errno.EIO, "a flush whose fdatasync fails", h.flush)
check(fired("^sync 0 0 EIO$", mark) == 1, "fdatasync failed once")
set_rules()
request_fails(errno.EIO, "a FUA write after the failed fdatasync",
              h.pwrite, b"\x04" * B, B, nbd.CMD_FLAG_FUA)
request_fails(errno.EIO, "a flush after it", h.flush)
request_fails(errno.EIO, "a FUA zero after it", h.zero, B, 2 * B,
              nbd.CMD_FLAG_FUA)
request_fails(errno.EIO, "a FUA trim after it", h.trim, B, 3 * B,
              nbd.CMD_FLAG_FUA)
request_succeeds("a read after it", h.pread, B, 0)
request_succeeds("a write without FUA after it", h.pwrite, b"\x05" * B,
                 4 * B)
counters("latched", 1, 1)
with open(server_log) as f:
    told = [line.strip() for line in f
            if "error" in line and "clear-errors" in line]
check(len(told) == 1, "nbdkit logged one error naming clear-errors (%d: %s)"
      % (len(told), told))

reply = control_reply("clear-errors")
check(reply == "ok", "clear-errors answers ok (it answered %r)" % reply)
counters("after clear-errors", 1, 0)
request_succeeds("a FUA write after clear-errors", h.pwrite, b"\x06" * B,
                 B, nbd.CMD_FLAG_FUA)
request_succeeds("a flush after clear-errors", h.flush)

# A FUA write whose own sync fails fails.  Where the write allocates
# nothing (the disk's first half was written before the server started),
# that sync is the one inside its RWF_DSYNC write (fua=auto, fua=dsync),
# whose error is that write's alone: the injector fails the write, and the
# flush after it runs its own fdatasync and succeeds.  With fua=group, and
# with fua=auto where the write allocates (the disk's second half is a
# hole), it is the shared fdatasync of group commit, which latches.
def fua_sync_fails(off):
    mark = log_mark()
    set_rules("sync 0 0 EIO 1")
    request_fails(errno.EIO, "a FUA write at %d whose sync fails" % off,
                  h.pwrite, b"\x07" * B, off, nbd.CMD_FLAG_FUA)
    check(fired("^sync 0 0 EIO$", mark) == 1, "its sync failed once")
    set_rules()

def latched_then_cleared(what):
    request_fails(errno.EIO, "a flush after " + what, h.flush)
    counters("latched by " + what, 2, 1)
    reply = control_reply("clear-errors")
    check(reply == "ok", "clear-errors answers ok (it answered %r)" % reply)

fua_sync_fails(8 * B)
if fua == "group":
    latched_then_cleared("a failed group commit")
else:
    request_succeeds("a flush after a failed RWF_DSYNC write", h.flush)
    counters("after a failed RWF_DSYNC write", 1, 0)
if fua == "auto":
    fua_sync_fails(40 * B)
    latched_then_cleared("a failed FUA write into a hole")
for off in (8 * B, 40 * B):
    request_succeeds("the FUA write at %d again" % off, h.pwrite,
                     b"\x07" * B, off, nbd.CMD_FLAG_FUA)
    check(on_disk(disk, off, B) == b"\x07" * B, "the disk holds it")
status, out = control(ctl, "clear-errors")
check(status == 0, "blkcachectl clear-errors succeeds with nothing latched "
      "(exit %d: %s)" % (status, out.strip()))
finish()
EOF

status=0
run ()
{
  name="$1" fua="$2"
  shift 2
  echo "=== $*"
  fallocate --punch-hole --offset 2M --length 2M "$disk"
  start_control_server "$name" "$disk" block-size=64K "$@"
  faultinj_python "$TESTDIR/sync-latch.py" "$URI" "$ctl" \
    "$TESTDIR/$name.log" "$disk" "$fua" || status=1
  stop_server "$PID"
}
for cache in writeback writethrough none; do
  for direct in on off; do
    run "latch-$cache-$direct" auto cache=$cache direct=$direct
  done
done
for fua in dsync group; do
  run "latch-fua-$fua" "$fua" cache=writethrough direct=on fua=$fua
done
exit "$status"
