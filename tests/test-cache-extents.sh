#!/bin/bash
# Block status right after a cached write into a hole (no flush) says data,
# and nbdcopy of the export equals the bytes written.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh nbdcopy

make_disk 32M
start_server cext "$disk" cache=writeback

nbdsh --base-allocation -u "$URI" -c '
import nbd
MiB = 1024 * 1024
h.pwrite(b"\x5a" * 4096, 5 * MiB + 100)
h.pwrite(b"\x33" * MiB, 20 * MiB)
flags = []
def cb(metacontext, offset, entries, err):
    pos = offset
    for i in range(0, len(entries), 2):
        flags.append((pos, entries[i], entries[i + 1]))
        pos += entries[i]
h.block_status(32 * MiB, 0, cb)
def state(off):
    for s, l, f in flags:
        if s <= off < s + l:
            return f
    return None
assert state(0) & nbd.STATE_HOLE, flags
assert state(5 * MiB + 100) == 0, flags
assert state(5 * MiB + 4195) == 0, flags
assert state(20 * MiB + 12345) == 0, flags
'
nbdcopy "$URI" "$TESTDIR/copy"
cmp <(dd if="$TESTDIR/copy" bs=1 skip=$((5 * 1024 * 1024 + 100)) count=4096 status=none) \
    <(printf '\x5a%.0s' $(seq 1 4096))
cmp <(dd if="$TESTDIR/copy" bs=1M skip=20 count=1 status=none) \
    <(head -c 1048576 /dev/zero | tr '\0' '\063')
