#!/bin/bash
# A FUA write into a hole of the disk goes through the page cache and is
# made durable by group commit (fua=auto, server/README "FUA").  Its pages
# are not on the disk until that fdatasync, so the cache must not hold
# them in a CLEAN block meanwhile: when the kernel fails to write them
# back (faultinj's wberr: the pages are lost, the next fdatasync fails),
# the FUA write fails with EIO, a read returns the disk's bytes and not
# the lost ones, and a DIRTY block of the range keeps the new bytes as
# dirty ones, which the next flush puts on the disk.  In every cache mode.
. "${top_srcdir:-..}/tests/functions.sh"
requires /usr/bin/python3

make_disk 8M
faultinj_setup "$disk"
for mode in writeback writethrough none; do
  rm -f "$disk"
  make_disk 8M
  faultinj_rules
  start_control_server "hole-$mode" -- "$disk" cache=$mode dirty-expire=0
  faultinj_python - "$URI" "$ctl" "$disk" "$mode" <<'PY'
import errno
import sys
import nbd
from faultinj import *

uri, sock, disk, mode = sys.argv[1:5]
K = 1024
h = nbd.NBD()
h.connect_uri(uri)

# A CLEAN block over a hole: the read caches it.
clean_at = 1024 * K
check(h.pread(64 * K, clean_at) == bytes(64 * K), "a hole reads as zeroes")
mark = log_mark()
set_rules("wberr %d 4096 EIO 1" % clean_at)
request_fails(errno.EIO, "a FUA write into the hole whose pages are lost",
              h.pwrite, b"\x11" * 4096, clean_at, nbd.CMD_FLAG_FUA)
check(fired("^wberr %d .* EIO" % clean_at, mark) == 1,
      "its pages were lost in writeback")
set_rules()
check(h.pread(4096, clean_at) == on_disk(disk, clean_at, 4096)
      == bytes(4096),
      "a read returns the disk's bytes, not the lost ones")
check(stat_of(sock, "sync_failed") == 1, "the failed sync is latched")
status, out = control(sock, "clear-errors")
check(status == 0, "clear-errors: %s" % out.strip())

# A DIRTY block over a hole (cache=writeback: a plain write stays cached).
if mode == "writeback":
    dirty_at = 2048 * K
    h.pwrite(b"\x22" * 4096, dirty_at)
    fua_at = dirty_at + 8 * K
    mark = log_mark()
    set_rules("wberr %d 4096 EIO 1" % fua_at)
    request_fails(errno.EIO,
                  "a FUA write into the hole under a dirty block, lost",
                  h.pwrite, b"\x33" * 4096, fua_at, nbd.CMD_FLAG_FUA)
    check(fired("^wberr %d .* EIO" % fua_at, mark) == 1,
          "its pages were lost in writeback")
    set_rules()
    status, out = control(sock, "clear-errors")
    check(status == 0, "clear-errors: %s" % out.strip())
    request_succeeds("a flush", h.flush)
    check(on_disk(disk, dirty_at, 4096) == b"\x22" * 4096,
          "the flush wrote the dirty block's own bytes")
    check(on_disk(disk, fua_at, 4096) == b"\x33" * 4096,
          "and the FUA write's bytes, which the block kept as dirty")
    check(h.pread(4096, fua_at) == b"\x33" * 4096, "a read returns them")

# With no failure, a FUA write into a hole is on the disk at its reply.
ok_at = 4096 * K
request_succeeds("a FUA write into a hole", h.pwrite, b"\x44" * 8192,
                 ok_at + 512, nbd.CMD_FLAG_FUA)
check(on_disk(disk, ok_at + 512, 8192) == b"\x44" * 8192,
      "its bytes are in the file")
check(h.pread(8192, ok_at + 512) == b"\x44" * 8192, "a read returns them")
check(stat_of(sock, "sync_failed") == 0, "nothing is latched")
finish()
PY
  stop_server "$PID"
done
