#!/bin/bash
# Round trips on aligned and odd ranges, up to the last byte of a disk whose
# size is not a multiple of the sector size.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 1000003
start_server basic "$disk"

nbdsh -u "$URI" -c '
import os
size = h.get_size()
assert size == 1000003, size
cases = [(0, 4096), (1, 1), (511, 3), (4095, 2), (4000, 9000), (12345, 65537),
         (size - 1, 1), (size - 3, 3), (size - 5000, 5000), (999424, 579),
         (0, size)]
for off, n in cases:
    data = os.urandom(n)
    h.pwrite(data, off)
    got = h.pread(n, off)
    assert got == data, (off, n)
# Neighbours of a small write are untouched.
h.pwrite(b"\xaa" * 8192, 8192)
h.pwrite(b"\x55", 8192 + 100)
got = h.pread(8192, 8192)
assert got == b"\xaa" * 100 + b"\x55" + b"\xaa" * 8091
h.flush()
'
# After a flush the file itself holds the last write.
nbdsh -u "$URI" -c 'h.pwrite(b"END", h.get_size() - 3); h.flush()'
test "$(tail -c 3 "$disk")" = END
