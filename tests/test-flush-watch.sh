#!/bin/bash
# Flush progress (nbdkit-blkcache-plugin(1), flush_blocks_left;
# blkcachectl(8), flush): while a flush runs, `stats` on another
# connection shows the dirty blocks it has still to write, and
# `blkcachectl flush` on a terminal draws a progress line from it; 0 once
# no flush runs.
#
# The flush is held at known points, not timed: under the fault injector,
# a HOLD rule keeps the disk write of one block waiting until the rules
# change.  600 dirty blocks are flushed in batches of 256: held in the
# second batch, 344 blocks are left; moved to the third, 88.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh script

B=65536
make_disk 64M
faultinj_setup "$disk"
start_control_server progress "$disk" cache-size=64M block-size=64K \
  dirty-expire=0 dirty-background=100 dirty-limit=100
nbdsh -u "$URI" -c "
for i in range(600):
    h.pwrite(bytes([i % 251 + 1]) * $B, i * $B)
"
test "$(stat_of dirty_bytes)" = $((600 * B))
test "$(stat_of flush_blocks_left)" = 0

# held BLOCK: the injector has held the write of block BLOCK.
held () { [ "$(faultinj_fired "^write $(($1 * B)) .* HOLD$")" -ge 1 ]; }
# drawn TEXT: blkcachectl's terminal shows TEXT.
drawn () { grep -aq -- "$1" "$TESTDIR/tty"; }

faultinj_rules "write $((300 * B)) $B HOLD"
script -qec "$CTL -s $ctl flush" /dev/null </dev/null >"$TESTDIR/tty" &
flush_pid=$!
wait_until 60 held 300
test "$(stat_of flush_blocks_left)" = 344
wait_until 60 drawn "flush: 344 blocks left" || {
  echo "$0: no progress line:"; cat -A "$TESTDIR/tty"; exit 1
}

# On to the third batch: 256 blocks written since the first line, so a
# rate and an ETA.
faultinj_rules "write $((550 * B)) $B HOLD"
wait_until 60 held 550
test "$(stat_of flush_blocks_left)" = 88
wait_until 60 drawn "flush: 88 blocks left" || {
  echo "$0: no second progress line:"; cat -A "$TESTDIR/tty"; exit 1
}
line="$(tr '\r' '\n' <"$TESTDIR/tty" | grep -a "flush: 88 blocks left" |
        tail -n 1)"
echo "$line" | grep -Eq '88 blocks left, [0-9]+\.[0-9] MiB/s, ETA [0-9]+:[0-9]{2}:[0-9]{2}' || {
  echo "$0: bad progress line: $line"; exit 1
}
echo "$line" | grep -q ', 0\.0 MiB/s' && {
  echo "$0: no rate after 256 blocks: $line"; exit 1
}

faultinj_rules
wait "$flush_pid"
test "$(stat_of flush_blocks_left)" = 0
test "$(stat_of dirty_bytes)" = 0
# The progress line is cleared once the flush is done.
tail -c 200 "$TESTDIR/tty" | tr '\r' '\n' | tail -n 1 | grep -qv "blocks left"
cmp <(dd if="$disk" bs=$B skip=599 count=1 status=none) \
    <(head -c $B /dev/zero | tr '\0' "\\$(printf '%03o' $((599 % 251 + 1)))")

# Not on a terminal: no progress line, only the reply.
nbdsh -u "$URI" -c "h.pwrite(b'x' * $B, 0)"
out="$("$CTL" -s "$ctl" flush)"
test -z "$out"
