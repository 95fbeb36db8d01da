#!/bin/bash
# Sequential cutoff: a sequential scan of 4 x the cache is served from the
# disk once it is longer than seq-cutoff, without entering the cache: the
# hot set's hit ratio stays where it was, seq_bypassed_bytes grows, and
# the scan inserts about seq-cutoff's worth of blocks.  With seq-cutoff=0
# the scan goes through the cache.  A dirty block inside a bypassed scan
# is still read from the cache, not from the stale disk, and reads that
# all bypass the cache stay coherent under blkcache-torture.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 64M
# 64 blocks of 64K; the hot set is 32 scattered blocks, the scan 16M.
read_hot ()
{
  nbdsh -u "$URI" -c '
for b in [(i * 7) % 512 for i in range(32)]:
    h.pread(65536, b * 65536)
'
}

hit_ratio ()
{
  h0=$(stat_of cache_hits); m0=$(stat_of cache_misses)
  read_hot
  h1=$(stat_of cache_hits); m1=$(stat_of cache_misses)
  echo $(( (h1 - h0) * 100 / (h1 - h0 + m1 - m0) ))
}

scan ()
{
  nbdsh -u "$URI" -c '
for off in range(48 << 20, 64 << 20, 256 << 10):
    h.pread(256 << 10, off)
'
}

# run CUTOFF: the hot set's hit ratio before and after the scan, the
# bytes bypassed and the blocks the scan inserted.
run ()
{
  start_control_server "cutoff-$1" "$disk" cache=writethrough cache-size=4M \
    block-size=64K seq-cutoff="$1"
  read_hot
  before=$(hit_ratio)
  i0=$(stat_of cache_insertions)
  scan
  inserted=$(( $(stat_of cache_insertions) - i0 ))
  after=$(hit_ratio)
  bypassed=$(stat_of seq_bypassed_bytes)
  test "$(stat_of seq_cutoff_bytes)" = "$1"
  echo "seq-cutoff=$1: hot set hits $before% before the scan, $after%" \
    "after; the scan inserted $inserted blocks, bypassed $bypassed bytes"
  stop_server "$PID"
}

run 4194304
test "$before" = 100
test "$after" -ge "$before"
test "$bypassed" -ge $((12 << 20))
test "$inserted" -le 72

run 0
test "$bypassed" = 0
test "$inserted" -ge 256

# Coherence: block 960 is dirty in the cache (no writeback runs), the scan
# passes it long after the cutoff, and reads the dirty bytes.
start_control_server dirty "$disk" cache-size=4M block-size=64K \
  dirty-expire=0 dirty-background=100 dirty-limit=100
nbdsh -u "$URI" -c '
h.pwrite(b"\x42" * 65536, 960 * 65536)
for off in range(48 << 20, 64 << 20, 256 << 10):
    buf = h.pread(256 << 10, off)
    if off <= 960 * 65536 < off + (256 << 10):
        at = 960 * 65536 - off
        assert buf[at:at + 65536] == b"\x42" * 65536, "stale bytes"
'
test "$(stat_of seq_bypassed_bytes)" -ge $((8 << 20))
test "$(stat_of writeback_blocks)" = 0
stop_server "$PID"

# With seq-cutoff=1 every read of 2 bytes or more is past the cutoff and
# read around the cache, while blkcache-torture's writes, FUA writes,
# zeroes, trims and flushes collide with it: no read is stale.
start_control_server bypass-all "$disk" seq-cutoff=1
run_torture 0 "$TESTDIR/bypass-all.out" --seconds "${TORTURE_SECONDS:-3}"
torture_clean "$TESTDIR/bypass-all.out"
test "$(stat_of seq_bypassed_bytes)" -gt 0
stop_server "$PID"
