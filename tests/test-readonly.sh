#!/bin/bash
# With -r the export is read-only: writes, zeroes and trims are refused and
# the disk file is unchanged; a read-only file is served with -r.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

disk="$TESTDIR/disk"
dd if=/dev/urandom of="$disk" bs=1M count=1 status=none
sum=$(md5sum < "$disk")
chmod 0444 "$disk"
start_server ro -r -- "$disk"

nbdsh -u "$URI" -c '
import nbd
assert h.is_read_only()
assert len(h.pread(4096, 0)) == 4096
for op in (lambda: h.pwrite(b"x", 0), lambda: h.zero(4096, 0),
           lambda: h.trim(4096, 0)):
    try:
        op()
    except nbd.Error as e:
        print("refused:", e)
    else:
        raise Exception("a write-like request succeeded on a read-only export")
'
test "$(md5sum < "$disk")" = "$sum"
