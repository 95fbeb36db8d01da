#!/bin/bash
# A hot set of half the cache, read a few times, survives a one-pass
# sequential read of 4 x the cache: at least 80% of it still hits after
# the scan (plain LRU would keep none).  Read through the hit counter the
# plugin prints at exit.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 64M
# 64 blocks of 64K; the hot set is 32 blocks, the scan 256.
start_server scan -v -- "$disk" cache=writethrough cache-size=4M block-size=64K

nbdsh -u "$URI" -c '
K64 = 65536
hot = [(i * 7) % 512 for i in range(32)]       # scattered over 32M
for _ in range(3):
    for b in hot:
        h.pread(K64, b * K64)
for b in range(768, 1024):                     # 16M scan, disjoint
    h.pread(K64, b * K64)
for b in hot:
    h.pread(K64, b * K64)
'
stop_server "$PID"
hits=$(sed -n 's/.*stats: cache_hits \([0-9]*\)$/\1/p' "$TESTDIR/scan.log")
echo "cache hits: $hits"
# Reads 2 and 3 of the hot set hit (64); the rest of the hits are the last
# pass, out of 32 blocks.
final=$((hits - 64))
echo "hot blocks still cached after the scan: $final of 32"
test "$final" -ge 26
