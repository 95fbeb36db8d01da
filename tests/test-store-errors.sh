#!/bin/bash
# The store passes the disk's errors on and hides none (issue 18, rule 7),
# in every cache mode: EINTR from fdatasync and fallocate is retried; a
# write that makes no progress is EIO, not a hang; a trim the disk cannot
# do changes nothing, the cache neither (a dirty block keeps its bytes); a
# trim that is done reads back as zeroes, its partial end sectors too.
# Without direct I/O (rule 3), a write whose pages the kernel then fails
# to write back (sync_file_range's error) fails: a direct write's writer
# hears of it, a writeback keeps its block dirty and fails the flush, and
# a writer hears of its own pages' failure when another thread settles
# at the same time.
. "${top_srcdir:-..}/tests/functions.sh"
requires /usr/bin/python3

make_disk 8M
faultinj_setup "$disk"
for mode in writeback writethrough none; do
  faultinj_rules
  start_control_server "store-$mode" -- "$disk" cache=$mode dirty-expire=0
  timeout 60 /usr/bin/env FAULTINJ_RULES="$FAULTINJ_RULES" \
    FAULTINJ_LOG="$FAULTINJ_LOG" BLKCACHECTL="$CTL" \
    PYTHONPATH="$(cd "$top_srcdir" && pwd)/tests" \
    /usr/bin/python3 - "$URI" "$ctl" "$disk" "$mode" <<'PY'
import sys
import nbd
from faultinj import *

uri, sock, disk, mode = sys.argv[1:5]
K = 1024
h = nbd.NBD()
h.connect_uri(uri)

mark = log_mark()
set_rules("sync 0 0 EINTR 3")
h.pwrite(b"\x01" * 4096, 0)
request_succeeds("a flush whose fdatasync is interrupted 3 times", h.flush)
check(fired("^sync .* EINTR", mark) == 3, "the sync was interrupted 3 times")
check(stat_of(sock, "sync_errors") == 0, "nothing is counted as failed")
check(stat_of(sock, "sync_failed") == 0, "nothing is latched")

mark = log_mark()
set_rules("fallocate 0 0 EINTR 2")
request_succeeds("a trim whose fallocate is interrupted twice", h.trim,
                 64 * K, 128 * K)
check(fired("^fallocate .* EINTR", mark) == 2, "fallocate was interrupted")
check(h.pread(64 * K, 128 * K) == bytes(64 * K), "the range reads zeroes")

mark = log_mark()
set_rules("write 0 0 SHORT0 1")
request_fails(errno.EIO, "a write the disk takes no byte of", h.pwrite,
              b"\x02" * 4096, 256 * K, nbd.CMD_FLAG_FUA)
check(fired("^write .* SHORT0", mark) == 1, "the write made no progress")

# A trim the disk cannot do: nothing changes.
set_rules()
h.pwrite(b"\x03" * (64 * K), 512 * K)
h.flush()
h.pwrite(b"\x04" * (64 * K), 512 * K)  # dirty in writeback mode
mark = log_mark()
set_rules("fallocate 0 0 EOPNOTSUPP")
request_succeeds("a trim the disk cannot do", h.trim, 64 * K, 512 * K)
check(fired("^fallocate .* EOPNOTSUPP", mark) >= 1, "the disk refused it")
check(h.pread(64 * K, 512 * K) == b"\x04" * (64 * K),
      "the range keeps its newest bytes (the cache is left alone)")
set_rules()
request_succeeds("a flush", h.flush)
check(on_disk(disk, 512 * K, 64 * K) == b"\x04" * (64 * K),
      "the disk has them after the flush")

# A trim that is done: its partial sectors read back as zeroes too.
h.pwrite(b"\x05" * (16 * K), 1024 * K)
h.trim(3000, 1024 * K + 100)
got = h.pread(16 * K, 1024 * K)
check(got[:100] == b"\x05" * 100, "the bytes before the trim are kept")
check(got[100:3100] == bytes(3000), "the trimmed bytes read back as zeroes")
check(got[3100:] == b"\x05" * (16 * K - 3100),
      "the bytes after the trim are kept")
h.flush()
check(on_disk(disk, 1024 * K + 100, 3000) == bytes(3000),
      "the disk has zeroes there too")
finish()
PY
  stop_server "$PID"
done

for mode in writethrough writeback; do
  faultinj_rules
  start_control_server "settle-$mode" -- "$disk" cache=$mode direct=off \
    dirty-expire=0
  faultinj_python - "$URI" "$ctl" "$disk" "$mode" <<'PY'
import sys
import nbd
from faultinj import *

uri, sock, disk, mode = sys.argv[1:5]
K = 1024
h = nbd.NBD()
h.connect_uri(uri)
off = 2048 * K
mark = log_mark()
set_rules("settle 0 0 EIO 1")
if mode == "writethrough":
    request_fails(errno.EIO, "a write whose page-cache writeback fails",
                  h.pwrite, b"\x06" * 4096, off)
else:
    h.pwrite(b"\x06" * 4096, off)
    request_fails(errno.EIO, "a flush whose writeback's pages fail",
                  h.flush)
    check(stat_of(sock, "dirty_bytes") > 0, "the block stays dirty")
check(fired("^settle .* EIO", mark) == 1, "the settle failed once")
h.pwrite(b"\x07" * 4096, off)
request_succeeds("a flush once the disk takes writes", h.flush)
check(on_disk(disk, off, 4096) == b"\x07" * 4096, "the disk has the bytes")
finish()
PY
  stop_server "$PID"
done

# Two writers at once, each settling its pages, one of whose pages the
# kernel fails to write back: the kernel reports that once per open file
# description, so the writer whose pages were lost must hear of it even
# when the other thread settles first (the writer's own descriptor).
for mode in writethrough none; do
  faultinj_rules
  start_control_server "split-$mode" -- "$disk" cache=$mode direct=off
  faultinj_python - "$URI" "$disk" <<'PY'
import sys
import threading
import time
import nbd
from faultinj import *

uri, disk = sys.argv[1:3]
K = 1024
lost_at, other_at = 4096 * K, 4160 * K
a, b = nbd.NBD(), nbd.NBD()
a.connect_uri(uri)
b.connect_uri(uri)
before = on_disk(disk, lost_at, 4096)
mark = log_mark()
set_rules("wberr %d 4096 EIO 1" % lost_at, "settle %d 4096 HOLD" % lost_at)
outcome = []


def lost_write():
    try:
        a.pwrite(b"\x08" * 4096, lost_at)
        outcome.append(None)
    except nbd.Error as e:
        outcome.append(e.errnum)


t = threading.Thread(target=lost_write)
t.start()
deadline = time.monotonic() + 30
while fired("^settle %d .* HOLD" % lost_at, mark) == 0 and time.monotonic() < deadline:
    time.sleep(0.01)
check(fired("^wberr %d .* EIO" % lost_at, mark) == 1,
      "the first write's pages are lost in writeback")
check(fired("^settle %d .* HOLD" % lost_at, mark) == 1,
      "its settle waits while the other writer goes first")
try:
    b.pwrite(b"\x09" * 4096, other_at)  # may fail too: spurious is allowed
except nbd.Error:
    pass
set_rules()
t.join(60)
check(outcome == [errno.EIO],
      "the writer whose pages were lost fails with EIO (got %s)" % outcome)
check(a.pread(4096, lost_at) == before == on_disk(disk, lost_at, 4096),
      "no cached block holds the lost bytes: a read returns the disk's")
finish()
PY
  stop_server "$PID"
done
