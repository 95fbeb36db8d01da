#!/bin/bash
# A block device (a loop device over a file) is served in full: size,
# alignment from BLKSSZGET, round trips, zero (BLKZEROOUT), trim
# (BLKDISCARD), fast zero only by command (never written zeroes), block
# status all data, and data reaches the backing file.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh losetup
[ "$(id -u)" = 0 ] || { echo "needs root for losetup"; exit 77; }

backing="$TESTDIR/backing"
dd if=/dev/urandom of="$backing" bs=1M count=32 status=none
loop=$(losetup -f --show "$backing" 2>/dev/null) || { echo "no loop device"; exit 77; }
trap 'rc=$?; losetup -d "$loop" 2>/dev/null; (exit "$rc"); cleanup' EXIT

run_nbdkit "$PLUGIN" "$loop" --dump-plugin > "$TESTDIR/dump"
grep -q "blkcache_size=33554432" "$TESTDIR/dump"
grep -q "blkcache_alignment=512" "$TESTDIR/dump"

for mode in writeback none; do
  start_server "loop-$mode" "$loop" cache=$mode
  nbdsh --base-allocation -u "$URI" -c '
import errno, os, nbd
MiB = 1024 * 1024
assert h.get_size() == 32 * MiB
for off, n in ((0, 4096), (511, 3), (MiB - 1, 70000), (32 * MiB - 5, 5)):
    data = os.urandom(n)
    h.pwrite(data, off)
    assert h.pread(n, off) == data, (off, n)
h.zero(3 * MiB + 17, 4 * MiB)
assert h.pread(3 * MiB + 17, 4 * MiB) == bytes(3 * MiB + 17)
h.trim(MiB, 16 * MiB)
seen = []
h.block_status(32 * MiB, 0, lambda m, o, e, err: seen.extend(e))
assert seen[1] == 0, seen          # a block device is all data
h.pwrite(b"\xee" * 8192, 20 * MiB)
h.flush()
# A fast zero that may not punch has no fast way on a block device:
# ENOTSUP at once, nothing written (BLKZEROOUT would write zeroes).
h.pwrite(b"\xdd" * 65536, 24 * MiB)
try:
    h.zero(65536, 24 * MiB, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
    assert False, "a fast zero that may not punch succeeded"
except nbd.Error as e:
    assert e.errnum == errno.ENOTSUP, e
assert h.pread(65536, 24 * MiB) == b"\xdd" * 65536
# One that may punch is done by command (write-zeroes of the loop device).
h.zero(65536, 24 * MiB, nbd.CMD_FLAG_FAST_ZERO)
assert h.pread(65536, 24 * MiB) == bytes(65536)
'
  stop_server "$PID"
done
sync
cmp <(dd if="$backing" bs=8192 skip=2560 count=1 status=none) \
    <(head -c 8192 /dev/zero | tr '\0' '\356')
