#!/bin/bash
# writeback-rate: background writeback stays within its cap over a
# measured interval; it yields to client requests in flight, except while
# dirty data is above dirty-limit; a flush is not paced (it writes what
# the paced writeback has not reached); and set writeback-rate changes the
# cap at run time (0: unlimited, which drains the cache).
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

stat_above () { test "$(stat_of "$1")" -gt "$2"; }
stat_is () { test "$(stat_of "$1")" = "$2"; }

RATE=$((1024 * 1024))
BLOCK=65536
make_disk 64M
# dirty-background=100 while the cache is dirtied, so background writeback
# begins only when the test lowers it.
start_control_server rate "$disk" cache-size=64M block-size=64K \
  writeback-rate=1M dirty-expire=0 dirty-background=100 dirty-limit=100
test "$(stat_of writeback_rate_bytes)" = "$RATE"

# 40 MiB dirty: 40 s of writeback at the cap.
nbdsh -u "$URI" -c '
for i in range(40):
    h.pwrite(bytes([i + 1]) * 1048576, i * 1048576)
'
test "$(stat_of dirty_bytes)" = $((40 * 1048576))
"$CTL" -s "$ctl" set dirty-background 0
wait_until 10 stat_above background_writeback_bytes 0

# The interval measured here contains the one between the two stats.
t0=$(date +%s.%N)
b0=$(stat_of background_writeback_bytes)
sleep 3
b1=$(stat_of background_writeback_bytes)
t1=$(date +%s.%N)
echo "background writeback: $((b1 - b0)) bytes in $t0 .. $t1"
# The bucket's bound is RATE * T plus a burst (RATE / 10) and a step in
# progress (one block here); allow a quarter more and two blocks.
/usr/bin/python3 -c "
import sys
b, t = $b1 - $b0, $t1 - $t0
cap = 1.25 * $RATE * t + $RATE / 10 + 2 * $BLOCK
print('%d bytes in %.3f s, cap %d' % (b, t, cap))
sys.exit(0 if 0 < b <= cap else 1)
"
test "$(stat_of writeback_throttles)" -gt 0

# Reads keep requests in flight (4 at a time): writeback yields to them.
reads ()
{
  "$CLIENT_DIR/blkcache-bench" randread -q 4 -c 1 --seconds "$1" "$URI" \
    > "$TESTDIR/reads.out"
}
y0=$(stat_of writeback_yields)
reads 3 &
reader=$!
wait_until 3 stat_above writeback_yields "$y0"
wait "$reader"
# Above dirty-limit (10% of 64M < the dirty data) writeback does not
# yield.  A pass already waiting ends within its second.
"$CTL" -s "$ctl" set dirty-limit 10
test "$(stat_of dirty_bytes)" -gt $((16 * 1048576))
sleep 1.5
y0=$(stat_of writeback_yields)
reads 2
test "$(stat_of writeback_yields)" = "$y0"
test "$(stat_of dirty_bytes)" -gt $((12 * 1048576))
"$CTL" -s "$ctl" set dirty-limit 100

# A flush is not paced: it writes what background writeback has not
# reached, far more than the background writes meanwhile.
dirty=$(stat_of dirty_bytes)
test "$dirty" -gt $((8 * 1048576))
bg0=$(stat_of background_writeback_bytes)
nbdsh -u "$URI" -c 'h.flush()'
bg1=$(stat_of background_writeback_bytes)
test "$(stat_of dirty_bytes)" = 0
echo "flush: $dirty bytes were dirty, background wrote $((bg1 - bg0)) meanwhile"
test $(((bg1 - bg0) * 2)) -lt "$dirty"
for i in 0 17 39; do
  cmp <(dd if="$disk" bs=1M skip=$i count=1 status=none) \
      <(head -c 1048576 /dev/zero | tr '\0' "\\$(printf '%03o' $((i + 1)))")
done

# At run time: a new cap, a refused value, and 0 (unlimited) drains a
# newly dirtied cache in the background.
"$CTL" -s "$ctl" set writeback-rate 2M
test "$(stat_of writeback_rate_bytes)" = $((2 * RATE))
! "$CTL" -s "$ctl" set writeback-rate fast
test "$(stat_of writeback_rate_bytes)" = $((2 * RATE))
"$CTL" -s "$ctl" set dirty-background 100
nbdsh -u "$URI" -c 'h.pwrite(b"\x77" * (16 * 1048576), 32 * 1048576)'
"$CTL" -s "$ctl" set writeback-rate 0
"$CTL" -s "$ctl" set dirty-background 0
wait_until 10 stat_is dirty_bytes 0
cmp <(dd if="$disk" bs=1M skip=32 count=16 status=none) \
    <(head -c $((16 * 1048576)) /dev/zero | tr '\0' '\167')
