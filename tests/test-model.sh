#!/bin/bash
# The Promela models of the engine (server/model/README): spin must find
# no error in the model of the engine's coherence protocol as it is
# (blkcache.pml), a stale read in each of the two seeded mutants, a
# deadlock in the third, a CLEAN block that differs from the disk in
# the bug that commit 49a81d0 fixed, and a flush that misses a write in
# the bug that commit 0ad1a87 fixed; no deadlock in the model of
# batched writeback's lock ordering (batch.pml), but one when a flush
# takes its runs in descending order; and, in the model of flush error
# reporting (flush.pml), no flush that succeeds while a write
# acknowledged before it is not on the disk, but one when the first
# flush to look takes the error (issue 18) and in each part of that
# bug.  Bounded so
# that it takes well under a minute on two cores; BLKCACHE_MODEL_FULL=1
# adds larger configurations (server/model/README has the figures).
. "${top_srcdir:-..}/tests/functions.sh"
requires spin gcc

models="$(cd "${top_srcdir:-..}/server/model" && pwd)"
model="$models/blkcache.pml"
[ -r "$model" ] || { echo "$0: $model not found"; exit 1; }

# A pan that stops rather than swap; COLLAPSE takes about 40% less memory.
# -O1 runs as fast as -O2 and compiles faster; the mutants,
# found in a few seconds, get -O0.
PAN_CFLAGS="-DSAFETY -DCOLLAPSE -DMEMLIM=${BLKCACHE_MODEL_MEMLIM:-3072} -w"

# verify NAME EXPECT FLAGS...: spin -a with FLAGS on $model, build pan,
# run it.
# EXPECT is "none" (a complete search with no error), "stale" (a stale
# read found), "deadlock" (an invalid end state found), "unflushed" (a
# flush that replied before an acknowledged write was on the disk) or
# "incoherent" (invariant 2 broken: a CLEAN block that differs from the
# disk) or "errmissed" (flush.pml: a flush that succeeded although a
# write acknowledged before it began is not on the disk).
verify ()
{
  name="$1"; expect="$2"; shift 2
  dir="$TESTDIR/$name"
  mkdir "$dir"
  (
    cd "$dir" || exit 1
    pml=$(basename "$model")
    cp "$model" "$pml"
    spin -a "$@" "$pml" >spin.log 2>&1 || { cat spin.log; exit 1; }
    opt=-O1
    [ "$expect" = none ] || opt=-O0
    # shellcheck disable=SC2086
    gcc $opt $PAN_CFLAGS -o pan pan.c >cc.log 2>&1 || { cat cc.log; exit 1; }
    start=$(date +%s)
    ./pan -m1000000 >pan.log 2>&1 || :
    end=$(date +%s)
    summary=$(grep -E 'errors:|states, stored|total actual memory' pan.log |
              tr -s ' \t\n' ' ')
    echo "$name ($*): $summary$((end - start)) s"
    if grep -qE 'out of memory|MEMLIM bound|too small' pan.log; then
      echo "$0: $name: search incomplete"; tail -n 30 pan.log; exit 1
    fi
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log)
    case "$expect" in
      none)
        if [ "$errors" != 0 ]; then
          echo "$0: $name: spin found an error in the model of the engine"
          cat pan.log
          spin -t -p "$@" "$pml" | tail -n 200
          exit 1
        fi
        ;;
      stale)
        if [ -z "$errors" ] || [ "$errors" -eq 0 ] ||
             ! grep -q 'assertion violated (gone||' pan.log; then
          echo "$0: $name: spin found no stale read in the mutant"
          cat pan.log
          exit 1
        fi
        grep 'assertion violated' pan.log
        ;;
      deadlock)
        if ! grep -q 'invalid end state (' pan.log; then
          echo "$0: $name: spin found no deadlock in the mutant"
          cat pan.log
          exit 1
        fi
        grep 'invalid end state (' pan.log
        ;;
      unflushed)
        if ! grep -q 'assertion violated .*(forb\[[01]\]>>disk\[[01]\])' pan.log; then
          echo "$0: $name: spin found no flush that missed a write"
          cat pan.log
          exit 1
        fi
        grep 'assertion violated' pan.log
        ;;
      incoherent)
        if ! grep -q 'assertion violated .*(cv\[0\]==disk\[0\])' pan.log; then
          echo "$0: $name: spin found no CLEAN block unlike the disk"
          cat pan.log
          exit 1
        fi
        grep 'assertion violated' pan.log
        ;;
      errmissed)
        if ! grep -q 'assertion violated (failed||(disk\[0\]>=need\[0\])' pan.log; then
          echo "$0: $name: spin found no flush that succeeded over a lost write"
          cat pan.log
          exit 1
        fi
        grep 'assertion violated' pan.log
        ;;
    esac
  )
}

# The engine as it is: two bytes (one store sector) per block, so that
# unaligned direct writes and partial cached writes are in; two readers;
# cache_alloc failures; then either a block that starts dirty (so that
# writers meet a writeback in flight), or failing direct writes and a
# zero of the whole block.
#
# Then each byte a store sector of its own, so that the two direct writes
# (D1_BYTE1) lock disjoint sectors of the block and run at once, and
# writeback writes only the dirty byte (write_dirty_parts); with failing
# direct writes, invalidate_cache marks the failed write's sectors dirty
# in the DIRTY block it keeps (server/model/README, "Finding").
#
# Two lanes, one per core; pan itself is single-threaded.
(
  verify engine-dirty none -DNB=2 -DNREADERS=2 -DALLOC_FAIL -DINIT_DIRTY
  verify engine-sectors-dio-err none -DNB=2 -DSECTOR_BYTES=1 -DD1_BYTE1 \
    -DNREADERS=2 -DALLOC_FAIL -DDIO_ERR -DD1_ZERO
  # Batched writeback: two flushes, a direct write and a cached write
  # over four blocks; runs taken in ascending order never deadlock.
  model="$models/batch.pml" verify batch none
  # Flush error reporting: two flushes, background writeback, writebacks
  # that may fail, over two blocks.
  model="$models/flush.pml" verify flush-2blocks none -DBACKGROUND -DNBLK=2
) >"$TESTDIR/lane1.log" 2>&1 &
lane1=$!
(
  verify engine-errors none -DNB=2 -DNREADERS=2 -DALLOC_FAIL -DDIO_ERR \
    -DD1_ZERO
  verify engine-sectors none -DNB=2 -DSECTOR_BYTES=1 -DD1_BYTE1 \
    -DNREADERS=2 -DALLOC_FAIL -DINIT_DIRTY
  verify engine-flush none -DNB=2 -DNREADERS=1 -DINIT_DIRTY -DFLUSH
  # Flush error reporting over one block: two flushes each, and two
  # failures.
  model="$models/flush.pml" verify flush-2flushes none -DBACKGROUND \
    -DNFLUSH=2
  model="$models/flush.pml" verify flush-2fails none -DBACKGROUND \
    -DMAXFAIL=2
) >"$TESTDIR/lane2.log" 2>&1 &
lane2=$!
status=0
wait "$lane1" || status=1
wait "$lane2" || status=1
cat "$TESTDIR/lane1.log" "$TESTDIR/lane2.log"
[ "$status" -eq 0 ] || exit 1

# The mutants: a miss filling the cache without the range lock, and the
# seed bug (drop the cache before the lock, no update after the I/O).
verify skip-recheck stale -DNB=2 -DNREADERS=2 -DSTALE_ONLY \
  -DSEED_BUG_SKIP_RECHECK
verify drop-before-lock stale -DNB=2 -DNREADERS=2 -DSTALE_ONLY \
  -DSEED_BUG_DROP_BEFORE_LOCK
# The seed race proper: with no cached writer, the drop of a dirty block
# cannot be the stale read found.
verify drop-before-lock-race stale -DNB=1 -DNREADERS=2 -DSTALE_ONLY \
  -DNO_CACHED -DSEED_BUG_DROP_BEFORE_LOCK

# The engine before commit 0ad1a87: a writeback took its block out of the
# dirty index before its ordered extent was in the queue, so a flush
# could find neither and reply before the block was on the disk.
verify mark-before-add unflushed -DNB=2 -DNREADERS=1 -DINIT_DIRTY -DFLUSH \
  -DBUG_MARK_BEFORE_ADD

# Invariant 9's check is not vacuous: waiting for a writeback while
# holding the range it needs deadlocks.
verify wait-locked deadlock -DNB=2 -DNREADERS=2 -DINIT_DIRTY \
  -DSEED_BUG_WAIT_LOCKED

# A flush taking its runs in descending order while another takes them
# in ascending order deadlocks: the batch model's check is not vacuous.
model="$models/batch.pml" verify batch-descending deadlock -DDESCENDING

# The engine before commit 49a81d0: a failed direct write leaves a DIRTY
# block's dirty mask alone, and its writeback turns it CLEAN while the
# disk holds the failed write's byte.  The oracle allows that byte (the
# write never replied), so this is invariant 2, not a stale read.
verify invalidate-keeps-mask incoherent -DNB=2 -DSECTOR_BYTES=1 \
  -DD1_BYTE1 -DNREADERS=2 -DALLOC_FAIL -DDIO_ERR -DD1_ZERO \
  -DBUG_INVALIDATE_KEEPS_MASK

# Issue 18: the first flush to look takes the recorded writeback error
# and the failed block gets a new dirtied-at time; the other flush
# succeeds while the write is not on the disk.  Then each half of that
# bug alone (the new time shows only because a flush may take its start
# time before it samples wb_err_seq), and wb_err_seq bumped after the
# failed writeback's ordered extent completes instead of before.
model="$models/flush.pml" verify first-flush-takes-error errmissed \
  -DBUG_FIRST_FLUSH_TAKES_ERROR
model="$models/flush.pml" verify first-flush-takes-error-bg errmissed \
  -DBACKGROUND -DNFLUSH=2 -DBUG_FIRST_FLUSH_TAKES_ERROR
model="$models/flush.pml" verify take-error errmissed -DBUG_TAKE_ERROR
model="$models/flush.pml" verify new-dirty-time errmissed \
  -DBUG_NEW_DIRTY_TIME
model="$models/flush.pml" verify bump-after-complete errmissed \
  -DBUG_BUMP_AFTER_COMPLETE

# Larger configurations (tens of millions of states each, several
# minutes in all): failing writebacks, two writeback threads, three
# readers, and one sector per byte with every kind of failure.
if [ -n "${BLKCACHE_MODEL_FULL:-}" ]; then
  PAN_CFLAGS="-DSAFETY -DCOLLAPSE -DMEMLIM=${BLKCACHE_MODEL_MEMLIM:-8192} -w"
  verify engine-wb-errors none -DNB=2 -DNREADERS=2 -DALLOC_FAIL \
    -DDIO_ERR -DWB_ERR -DINIT_DIRTY -DD1_ZERO
  verify engine-2wb none -DNB=2 -DNREADERS=2 -DINIT_DIRTY -DNWB=2
  verify engine-3r none -DNB=2 -DNREADERS=3
  verify engine-sectors-errors none -DNB=2 -DSECTOR_BYTES=1 -DD1_BYTE1 \
    -DNREADERS=2 -DALLOC_FAIL -DDIO_ERR -DWB_ERR -DINIT_DIRTY
  model="$models/flush.pml" verify flush-2flushes-2fails none \
    -DBACKGROUND -DNFLUSH=2 -DMAXFAIL=2
  model="$models/flush.pml" verify flush-2blocks-2fails none \
    -DBACKGROUND -DNBLK=2 -DMAXFAIL=2
fi
