#!/bin/bash
# dirty-limit: cached writes that find more than that share of the cache
# dirty are held until writeback brings it down (dirty_limit_waits counts
# them), so dirty data stays near the limit instead of filling the cache;
# every write completes and nothing is lost.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 32M
# 16 MiB cache; no background writeback, no age limit, and at first no
# dirty limit either.
start_control_server limit "$disk" cache-size=16M \
  dirty-expire=0 dirty-background=0 dirty-limit=100
"$CTL" -s "$ctl" set dirty-background 100

# write FIRST_MIB COUNT_MIB SEED: cached writes of 256 KiB.
write ()
{
  nbdsh -u "$URI" -c '
import random
first, n, seed = '"$1, $2, $3"'
for i in range(first * 4, (first + n) * 4):
    h.pwrite(random.Random(seed * 1000 + i).randbytes(262144), i * 262144)
'
}

# With no limit, 12 MiB of writes stay dirty and no writer waits.
write 0 12 1
test "$(stat_of dirty_limit_waits)" = 0
test "$(stat_of dirty_bytes)" = $((12 * 1048576))
"$CTL" -s "$ctl" flush

# A limit of 10% (1.6 MiB): writers are held, and released as they write
# back the oldest dirty data; dirty data never gets far past the limit.
"$CTL" -s "$ctl" set dirty-background 5
"$CTL" -s "$ctl" set dirty-limit 10
peak_before=$(stat_of peak_dirty_bytes)
write 12 16 2
waits=$(stat_of dirty_limit_waits)
dirty=$(stat_of dirty_bytes)
echo "dirty_limit_waits $waits dirty_bytes $dirty"
test "$waits" -ge 5
# The limit plus one request in flight.
test "$dirty" -le $((16 * 1048576 / 10 + 262144))
test "$(stat_of writeback_blocks)" -ge $((12 * 16 + 200))
test "$peak_before" = "$(stat_of peak_dirty_bytes)"

# Everything reads back, and after a flush the file holds it.
nbdsh -u "$URI" -c '
import random
def expect(i):
    seed = 1 if i < 48 else 2
    return random.Random(seed * 1000 + i).randbytes(262144)
for i in range(28 * 4):
    assert h.pread(262144, i * 262144) == expect(i), i
h.flush()
with open("'"$disk"'", "rb") as f:
    for i in range(28 * 4):
        assert f.read(262144) == expect(i), i
'
