#!/bin/bash
# A direct write that fails after part of it reached the disk (a short
# write, then ENOSPC, on a full filesystem) leaves no cached block that
# disagrees with the disk: a DIRTY block it overlaps keeps its bytes, and
# its next writeback puts them back over the part that landed.  Reads
# before and after the cache is dropped return the same bytes, which are
# the disk's.  A flush reports the failure of that writeback, and the next
# one, once there is room, succeeds.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh
[ "$(id -u)" = 0 ] || { echo "needs root to mount a small tmpfs"; exit 77; }

mnt="$TESTDIR/mnt"
mkdir "$mnt"
mount -t tmpfs -o size=1M tmpfs "$mnt" 2>/dev/null || { echo "cannot mount a tmpfs"; exit 77; }
# The server must be gone before the filesystem can be unmounted.
unmount ()
{
  rc=$?
  [ -z "${PID:-}" ] || stop_server "$PID" 2>/dev/null || :
  umount "$mnt" || rc=1
  (exit "$rc")
  cleanup
}
trap unmount EXIT

disk="$mnt/disk"
truncate -s 4M "$disk"
# 8K of data at the start of block 0 (64K); the rest of it is a hole.
head -c 8192 /dev/urandom | dd of="$disk" conv=notrunc status=none

start_control_server failed "$disk" cache=writeback block-size=64K

# Block 0 cached, then made DIRTY by a cached write of its first 4K.
nbdsh -u "$URI" -c '
h.pread(65536, 0)
h.pwrite(b"\x11" * 4096, 0)
'
# Fill the filesystem, then free one page: a write of 8K into the hole
# lands its first 4K and fails on the rest.
dd if=/dev/zero of="$mnt/fill" bs=4096 status=none 2>/dev/null || :
truncate -s -4096 "$mnt/fill"

nbdsh -u "$URI" -c '
import nbd
try:
    h.pwrite(b"\xab" * 8192, 16384, nbd.CMD_FLAG_FUA)
    raise AssertionError("the write into a full filesystem succeeded")
except nbd.Error as e:
    print("failed as expected:", e)
open("'"$TESTDIR"'/before", "wb").write(h.pread(8192, 16384))
'
# The first page of the failed write reached the disk.
cmp <(dd if="$disk" bs=4096 skip=4 count=1 status=none) \
    <(head -c 4096 /dev/zero | tr '\0' '\253')

# The writeback must now put back 16K..24K, where the disk is still full:
# the flush fails, and the block stays dirty.
nbdsh -u "$URI" -c '
import nbd
try:
    h.flush()
    raise AssertionError("a flush whose writeback failed succeeded")
except nbd.Error as e:
    print("flush failed as expected:", e)
'
[ "$(stat_of writeback_errors)" -ge 1 ]
[ "$(stat_of dirty_bytes)" -gt 0 ]

rm "$mnt/fill"
nbdsh -u "$URI" -c 'h.flush()'
[ "$(stat_of dirty_bytes)" = 0 ]
"$CTL" -s "$ctl" drop-clean
nbdsh -u "$URI" -c '
open("'"$TESTDIR"'/after", "wb").write(h.pread(8192, 16384))
assert h.pread(4096, 0) == b"\x11" * 4096
'
cmp "$TESTDIR/before" "$TESTDIR/after"
cmp "$TESTDIR/after" <(dd if="$disk" bs=4096 skip=4 count=2 status=none)
