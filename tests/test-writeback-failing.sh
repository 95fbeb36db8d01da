#!/bin/bash
# Reads never fail because writeback fails (issue 18, rule 4).  A cache of
# 4 blocks full of dirty blocks whose writeback the disk refuses: a read
# miss is served from the disk uncached and is right; dirty blocks still
# read back their new bytes; after repeated writeback failures writes go
# to the disk (degraded writethrough) and their writers get the disk's
# answer; once writeback succeeds again, writes are cached again.
. "${top_srcdir:-..}/tests/functions.sh"
requires /usr/bin/python3

make_disk 8M
# The disk's own bytes, to tell a right uncached read from zeroes.
head -c 8M /dev/urandom > "$disk"
faultinj_setup "$disk"
faultinj_rules
# No background writeback and no dirty limit: only the requests below
# write back, so the counts are exact.
start_control_server failing -- "$disk" cache=writeback cache-size=256K \
  block-size=64K dirty-expire=0 dirty-background=100 dirty-limit=100

faultinj_python - "$URI" "$ctl" "$disk" <<'PY'
import sys
import nbd
from faultinj import *

uri, sock, disk = sys.argv[1:4]
K = 1024
B = 64 * K
h = nbd.NBD()
h.connect_uri(uri)

set_rules("write 0 0 EIO")
new = [bytes([0x10 + i]) * B for i in range(4)]
for i in range(4):
    request_succeeds("cached write of block %d" % i, h.pwrite, new[i], i * B)
check(stat_of(sock, "dirty_bytes") == 4 * B, "the cache is full of dirty blocks")

mark = log_mark()
got = request_succeeds("read miss of block 10 with the cache full of "
                       "failing dirty blocks", h.pread, B, 10 * B)
check(got == on_disk(disk, 10 * B, B), "it returns the disk's bytes")
check(fired("^write", mark) > 0, "the writeback it tried was refused")
check(stat_of(sock, "uncached_reads") >= 1, "uncached_reads counts it")
for i in range(4):
    check(h.pread(B, i * B) == new[i], "dirty block %d reads its new bytes" % i)
check(stat_of(sock, "writeback_errors") >= 3, "writebacks failed 3 times")

request_fails(errno.EIO, "a write after repeated writeback failures "
              "(degraded: the disk refuses it)", h.pwrite, b"\x77" * 4096,
              20 * B)
check(stat_of(sock, "degraded_writethrough") >= 1,
      "degraded_writethrough counts it")
request_fails(errno.EIO, "a flush while the disk refuses writes", h.flush)

set_rules()
request_succeeds("a degraded write once the disk takes writes", h.pwrite,
                 b"\x78" * 4096, 20 * B)
check(on_disk(disk, 20 * B, 4096) == b"\x78" * 4096,
      "it is on the disk at once (written through)")
request_succeeds("a flush once the disk takes writes", h.flush)
for i in range(4):
    check(on_disk(disk, i * B, B) == new[i], "block %d is on the disk" % i)
cached = stat_of(sock, "cached_writes")
request_succeeds("a write after a writeback succeeded", h.pwrite,
                 b"\x79" * 4096, 30 * B)
check(stat_of(sock, "cached_writes") == cached + 1, "it is cached again")
finish()
PY
