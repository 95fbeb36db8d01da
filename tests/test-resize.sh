#!/bin/bash
# set cache-size below the dirty amount writes the dirty blocks back
# before it evicts them: nothing is lost, the cache ends within its new
# size, and the data reads back and is in the file.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 32M
# Nothing written back but by the resize.
start_control_server resize "$disk" cache-size=16M dirty-expire=0 \
  dirty-limit=100 dirty-background=100

data="$TESTDIR/data"
head -c $((12 * 1048576)) /dev/urandom > "$data"
nbdsh -u "$URI" -c '
with open("'"$data"'", "rb") as f:
    h.pwrite(f.read(), 1048576 + 512)
'
test "$(stat_of dirty_bytes)" -ge $((12 * 1048576))
test "$(stat_of writeback_blocks)" = 0

"$CTL" -s "$ctl" set cache-size 1M | grep -q '^cache_size_bytes 1048576$'
test "$(stat_of cache_size_bytes)" = 1048576
test "$(stat_of cache_blocks)" -le 16
test "$(stat_of dirty_bytes)" -le 1048576
test "$(stat_of writeback_blocks)" -ge 190
# Written back, before any flush.
cmp <(dd if="$disk" bs=512 skip=2049 count=24576 status=none) "$data"

nbdsh -u "$URI" -c '
with open("'"$data"'", "rb") as f:
    data = f.read()
assert h.pread(len(data), 1048576 + 512) == data
h.flush()
'
cmp <(dd if="$disk" bs=512 skip=2049 count=24576 status=none) "$data"
test "$(stat_of cache_blocks)" -le 16
