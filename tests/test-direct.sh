#!/bin/bash
# direct=on uses O_DIRECT on the build tree's filesystem; direct=off and the
# tmpfs case serve the same bytes through buffered I/O.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

check_round_trip ()
{
  nbdsh -u "$URI" -c '
import os
for off, n in ((0, 65536), (7, 1), (4093, 10), (h.get_size() - 11, 11)):
    data = os.urandom(n)
    h.pwrite(data, off)
    assert h.pread(n, off) == data
h.flush()
'
}

make_disk 4194311
run_nbdkit "$PLUGIN" "$disk" direct=on --dump-plugin > "$TESTDIR/dump"
grep -q "blkcache_direct_io=yes" "$TESTDIR/dump"
start_server on "$disk" direct=on
check_round_trip
stop_server "$PID"

run_nbdkit "$PLUGIN" "$disk" direct=off --dump-plugin > "$TESTDIR/dump"
grep -q "blkcache_direct_io=no" "$TESTDIR/dump"
start_server off "$disk" direct=off
check_round_trip
stop_server "$PID"

# tmpfs: older kernels refuse O_DIRECT there, newer ones accept it; either
# way direct=auto must serve the disk, and say which path it chose.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  shmdisk="$(mktemp /dev/shm/blkcache-test.XXXXXX)"
  trap 'rc=$?; rm -f "$shmdisk"; (exit "$rc"); cleanup' EXIT
  truncate -s 1M "$shmdisk"
  run_nbdkit "$PLUGIN" "$shmdisk" --dump-plugin > "$TESTDIR/dump"
  cat "$TESTDIR/dump"
  if grep -q "blkcache_direct_io=no" "$TESTDIR/dump"; then
    nbdkit_fails "$shmdisk" direct=on
    grep -q "O_DIRECT is refused" "$TESTDIR/fail.log"
  fi
  start_server shm -v -- "$shmdisk"
  check_round_trip
  grep -q "direct I/O" "$TESTDIR/shm.log"
  rm -f "$shmdisk"
fi
