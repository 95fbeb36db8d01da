#!/bin/bash
# Block status reports the holes and data of a sparse disk file.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 64M
dd if=/dev/urandom of="$disk" bs=1M count=2 seek=8 conv=notrunc status=none
start_server extents "$disk"

nbdsh --base-allocation -u "$URI" -c '
import nbd
MiB = 1024 * 1024
runs = []
def cb(metacontext, offset, entries, err):
    pos = offset
    for i in range(0, len(entries), 2):
        runs.append((pos, entries[i], entries[i + 1]))
        pos += entries[i]
pos = 0
while pos < h.get_size():
    before = len(runs)
    h.block_status(h.get_size() - pos, pos, cb)
    pos = runs[-1][0] + runs[-1][1]
def state(off):
    for start, length, flags in runs:
        if start <= off < start + length:
            return flags
    raise Exception("no extent for %d" % off)
hole = nbd.STATE_HOLE | nbd.STATE_ZERO
assert state(0) == hole, runs
assert state(8 * MiB) == 0, runs
assert state(10 * MiB - 1) == 0, runs
assert state(40 * MiB) == hole, runs
# a write into a hole turns it into data
h.pwrite(b"x" * 4096, 32 * MiB)
runs.clear()
h.block_status(4096, 32 * MiB, cb)
assert runs[0][2] == 0, runs
'
