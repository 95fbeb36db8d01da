#!/bin/bash
# Trim of an aligned range punches a hole in the disk file; the bytes
# around it are kept.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

disk="$TESTDIR/disk"
dd if=/dev/urandom of="$disk" bs=1M count=8 status=none
start_server trim "$disk"

before=$(du -k "$disk" | cut -f1)
nbdsh -u "$URI" -c '
MiB = 1024 * 1024
assert h.can_trim()
edge = h.pread(100, MiB - 100) + h.pread(100, 7 * MiB)
h.trim(6 * MiB, MiB)
h.flush()
assert h.pread(100, MiB - 100) + h.pread(100, 7 * MiB) == edge
# an unaligned trim is accepted and keeps bytes outside its range
h.trim(10000, 3)
'
after=$(du -k "$disk" | cut -f1)
echo "disk usage before trim ${before}K, after ${after}K"
test "$after" -le $((before - 6000))
