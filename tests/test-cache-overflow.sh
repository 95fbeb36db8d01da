#!/bin/bash
# 64 MiB of cached writes through a 1 MiB cache read back intact, and after
# a flush the disk file holds them: dirty blocks are written back, never
# dropped, when the cache is full.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 64M
start_server overflow "$disk" cache=writeback cache-size=1M block-size=64K

nbdsh -u "$URI" -c '
import hashlib
MiB = 1024 * 1024
def block(i):
    return hashlib.sha256(b"%d" % i).digest() * (MiB // 32)
for i in range(64):
    h.pwrite(block(i), i * MiB)
for i in range(64):
    assert h.pread(MiB, i * MiB) == block(i), i
h.flush()
with open("'"$disk"'", "rb") as f:
    for i in range(64):
        assert f.read(MiB) == block(i), i
'
