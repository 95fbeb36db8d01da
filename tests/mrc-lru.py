# Reads a seeded Zipf trace of 4 KiB blocks through NBD, one at a time, and
# prints the exact hit ratio of an LRU cache of each size given, computed
# here from the same trace: "SIZE RATIO" lines, SIZE in bytes.
# Usage: mrc-lru.py URI BLOCKS READS SIZE...
import bisect
import collections
import random
import sys

import nbd

uri, blocks, reads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sizes = [int(s) for s in sys.argv[4:]]
rng = random.Random(1)
cdf, total = [], 0.0
for rank in range(1, blocks + 1):
    total += rank ** -0.9
    cdf.append(total)
perm = list(range(blocks))
rng.shuffle(perm)

h = nbd.NBD()
h.connect_uri(uri)
lrus = [collections.OrderedDict() for _ in sizes]
hits = [0] * len(sizes)
for _ in range(reads):
    blk = perm[bisect.bisect_left(cdf, rng.random() * total)]
    h.pread(4096, blk * 4096)
    for i, size in enumerate(sizes):
        lru = lrus[i]
        if blk in lru:
            hits[i] += 1
            lru.move_to_end(blk)
        else:
            lru[blk] = True
            if len(lru) > size // 4096:
                lru.popitem(last=False)
h.shutdown()
for size, hit in zip(sizes, hits):
    print(size, "%.4f" % (hit / reads))
