#!/bin/bash
# A 150 MiB write-zeroes request (unaligned at both ends) reads back as
# zeroes and leaves its neighbours alone, with and without may-trim.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

disk="$TESTDIR/disk"
dd if=/dev/urandom of="$TESTDIR/chunk" bs=1M count=1 status=none
for _ in $(seq 1 160); do cat "$TESTDIR/chunk"; done > "$disk"
start_server zero "$disk"

nbdsh -u "$URI" -c '
import nbd
MiB = 1024 * 1024
n = 150 * MiB
for off, flags in ((3, nbd.CMD_FLAG_NO_HOLE), (5 * MiB + 1, 0)):
    before = h.pread(1, off - 1)
    after = h.pread(1, off + n)
    h.zero(n, off, flags)
    for pos in range(off, off + n, 4 * MiB):
        chunk = h.pread(min(4 * MiB, off + n - pos), pos)
        assert chunk == bytes(len(chunk)), pos
    assert h.pread(1, off - 1) == before
    assert h.pread(1, off + n) == after
    h.pwrite(b"\x01" * (7 * MiB), 0)
'
