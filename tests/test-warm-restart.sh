#!/bin/bash
# Warm restart: a hot set read through the cache is saved at exit, and
# after a restart with the same hotset= it is prefetched in the
# background; once prewarm_blocks_done reaches prewarm_blocks_total the
# same reads hit at least 90% of the time, against about 0% after a
# restart without it.  save-hotset writes the file on command.  A hot set
# of another disk and a corrupt one are ignored with a warning, and the
# disk is served cold.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 64M
hot="$TESTDIR/hot"
# 16M of cache, 256 blocks of 64K; the hot set is 128 blocks scattered
# over the disk (no sequential stream, so seq-cutoff plays no part).
args=("$disk" cache-size=16M block-size=64K)
read_hot ()
{
  nbdsh -u "$URI" -c '
for b in [(i * 37) % 1024 for i in range(128)]:
    h.pread(65536, b * 65536)
'
}

# hits_of_reading: the share of the hot set's block lookups that hit, in
# percent.
hits_of_reading ()
{
  h0=$(stat_of cache_hits); m0=$(stat_of cache_misses)
  read_hot
  h1=$(stat_of cache_hits); m1=$(stat_of cache_misses)
  echo $(( (h1 - h0) * 100 / (h1 - h0 + m1 - m0) ))
}

prewarm_done ()
{
  total=$(stat_of prewarm_blocks_total)
  test "$total" -gt 0 && test "$(stat_of prewarm_blocks_done)" = "$total"
}

# 1. Read the hot set twice; the exit saves it.
start_control_server first -v -- "${args[@]}" hotset="$hot"
read_hot
read_hot
test "$(stat_of prewarm_blocks_total)" = 0 # no file yet: a cold start
"$CTL" -s "$ctl" save-hotset | tee "$TESTDIR/save"
grep -qx 'hotset_blocks 128' "$TESTDIR/save"
stop_server "$PID"
grep -q 'hotset=.*: saved 128 blocks' "$TESTDIR/first.log"
test "$(stat -c %s "$hot")" = $((64 + 128 * 8))

# 2. Restart with the hot set: prewarm, then the reads hit.
start_control_server warm "${args[@]}" hotset="$hot"
wait_until 60 prewarm_done
warm=$(hits_of_reading)
echo "hit ratio after a warm restart: $warm%"
test "$warm" -ge 90
stop_server "$PID"

# 3. Without it, the same reads miss.
start_control_server cold "${args[@]}"
cold=$(hits_of_reading)
echo "hit ratio after a cold restart: $cold%"
test "$cold" -le 10
test "$(stat_of prewarm_blocks_total)" = 0
stop_server "$PID"

# 4. The same file given for another disk (same size, another inode):
# a warning, a cold start, and the disk is served.
cp --sparse=always "$disk" "$TESTDIR/other"
cp "$hot" "$TESTDIR/hot.saved"
start_control_server other "$TESTDIR/other" cache-size=16M block-size=64K \
  hotset="$hot"
cold=$(hits_of_reading)
test "$cold" -le 10
test "$(stat_of prewarm_blocks_total)" = 0
grep -q 'warning: hotset: .* was saved for another disk' "$TESTDIR/other.log"
stop_server "$PID"

# 5. A corrupt hot set (one block number changed, the checksum no longer
# matches; then a truncated one): a warning and a cold start.
for damage in flip truncate; do
  cp "$TESTDIR/hot.saved" "$hot"
  if [ $damage = flip ]; then
    printf '\001' | dd of="$hot" bs=1 seek=100 conv=notrunc status=none
  else
    truncate -s 70 "$hot"
  fi
  start_control_server "corrupt-$damage" "${args[@]}" hotset="$hot"
  nbdsh -u "$URI" -c 'h.pread(65536, 0)'
  test "$(stat_of prewarm_blocks_total)" = 0
  grep -q 'warning: hotset: .* is not a valid hot set file' \
    "$TESTDIR/corrupt-$damage.log"
  stop_server "$PID"
done
