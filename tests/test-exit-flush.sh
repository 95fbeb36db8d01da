#!/bin/bash
# Nothing is dropped silently at exit (issue 18, rule 6).  Dirty data the
# disk refuses: the exit flush retries for exit_flush_s seconds, then logs
# each range it could not write, at error level, and nbdkit exits with
# status 1.  A disk that comes back during the retries gets the data, and
# nbdkit exits 0.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 8M
faultinj_setup "$disk"

# stop_and_wait: stop the server started last (SIGTERM); its exit status
# goes to $rc.  Under a sanitizer nbdkit may hang in libc's exit handlers
# (a locale lock, in libp11-kit's destructor), after the plugin is done:
# then it is killed, and $rc is "hung", which only a sanitized run accepts
# in place of the status.
stop_and_wait ()
{
  kill "$PID"
  rc=0
  if ! wait_until 60 gone "$PID"; then
    [ -n "$SANITIZER" ] || { echo "nbdkit did not exit"; exit 1; }
    kill -9 "$PID"
    wait "$PID" || :
    rc=hung
    return
  fi
  wait "$PID" || rc=$?
}

# The disk refuses writes of 64K-128K and 1M-1M+4K for good.
faultinj_rules "write 65536 65536 EIO" "write 1048576 4096 EIO"
start_server lost -D blkcache.exit_flush_s=2 -- "$disk" cache=writeback \
  block-size=64K dirty-expire=0
nbdsh -u "$URI" -c '
h.pwrite(b"\x11" * 65536, 0)
h.pwrite(b"\x22" * 65536, 65536)
h.pwrite(b"\x33" * 4096, 1048576)
'
t0=$(date +%s)
stop_and_wait
t1=$(date +%s)
log="$TESTDIR/lost.log"
cat "$log"
[ "$rc" = 1 ] || [ "$rc" = hung ] \
  || { echo "nbdkit exited $rc, not 1, after losing data"; exit 1; }
[ $((t1 - t0)) -ge 2 ] || { echo "the exit flush did not retry for 2 s"; exit 1; }
[ "$(faultinj_fired '^write')" -ge 3 ] || { echo "the exit flush was not retried"; exit 1; }
grep -q "dirty data lost at exit: bytes 65536 to 131071" "$log"
grep -q "dirty data lost at exit: bytes 1048576 to 1114111" "$log"
# Block 0 was written, and is not reported lost.
! grep -q "bytes 0 to 65535" "$log"
cmp <(head -c 65536 "$disk") <(head -c 65536 /dev/zero | tr '\0' '\021')

# A disk that refuses writes for a while only: the retries get the data
# there, and the exit status is 0.
faultinj_rules "write 65536 65536 EIO 3"
start_server back -D blkcache.exit_flush_s=30 -- "$disk" cache=writeback \
  block-size=64K dirty-expire=0
nbdsh -u "$URI" -c 'h.pwrite(b"\x44" * 65536, 65536)'
stop_and_wait
[ "$rc" = 0 ] || [ "$rc" = hung ] \
  || { echo "nbdkit exited $rc after the retries wrote the data"; cat "$TESTDIR/back.log"; exit 1; }
cmp <(dd if="$disk" bs=65536 skip=1 count=1 status=none) \
    <(head -c 65536 /dev/zero | tr '\0' '\104')
