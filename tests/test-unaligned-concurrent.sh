#!/bin/bash
# Eight connections write disjoint unaligned byte ranges of the same 4 KiB,
# many rounds at once; no connection loses another's bytes.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 1M
start_server unaligned "$disk"

export URI
nbdsh -c '
import os, nbd, threading
N = 8
conns = [nbd.NBD() for _ in range(N)]
for c in conns:
    c.connect_uri(os.environ["URI"])
rounds = 200
def writer(i):
    h = conns[i]
    for r in range(rounds):
        base = (r % 16) * 4096
        # connection i owns bytes [i*512+1, i*512+510) of each 4 KiB block,
        # so every write is unaligned at both ends and shares sectors.
        h.pwrite(bytes([(r * N + i) % 251 + 1]) * 509, base + i * 512 + 1)
threads = [threading.Thread(target=writer, args=(i,)) for i in range(N)]
for t in threads: t.start()
for t in threads: t.join()
lost = 0
for blk in range(16):
    last = max(r for r in range(rounds) if r % 16 == blk)
    data = conns[0].pread(4096, blk * 4096)
    for i in range(N):
        want = bytes([(last * N + i) % 251 + 1]) * 509
        if data[i * 512 + 1 : i * 512 + 510] != want:
            lost += 1
            print("block", blk, "connection", i, "lost its bytes")
assert lost == 0, lost
'
