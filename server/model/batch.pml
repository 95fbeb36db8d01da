/* blkcache: a Promela model of the lock ordering of batched writeback
 * (server/engine.c writeback_runs, server/README point 6), over a few
 * blocks: no thread ever waits for good.
 *
 * A flush takes runs of dirty blocks one after another, each under the
 * range lock (lock_range: lock; if an ordered extent overlaps, unlock,
 * wait for the extents in flight then, and start over), marks them and
 * adds an ordered extent before it unlocks.  It keeps the extents of the
 * runs it has taken while it takes the next, and completes them all only
 * after the batch's I/O.  So it may wait for another thread's extent while
 * holding extents of its own, which the reference design never does.  The
 * engine's claim: since each flush takes its runs in ascending order, no
 * cycle of waits can form.
 *
 * Processes:
 *   Flush (x NFLUSH)  writeback_all: runs chosen freely (any ascending,
 *                     disjoint runs over the blocks, as cache_dirty_runs
 *                     may report them from its own snapshot), taken one
 *                     by one, then completed together.  -DDESCENDING makes
 *                     the second flush take its runs in descending order
 *                     instead (a mutant: spin must find a deadlock).
 *   Direct            direct_io: lock_range over one block, add an
 *                     extent, I/O, complete it, unlock.
 *   Writer            cached_write: lock_range over two blocks, unlock.
 *
 * The range lock of block b is lk[b] (its owner, 0 when free); the
 * ordered extent on b is oe[b] (its owner), and oeg[b] counts the extents
 * added on b, so a waiter waits only for the extents in flight when it
 * began (ordered_wait_range), not for later ones.  pan checks for invalid
 * end states: every process must be able to finish.
 */

#define NBLK 4                  /* blocks 0..3 */

byte lkm;                       /* the blocks whose range lock is held */
byte lko[NBLK];                 /* the owner of each */
byte oem;                       /* the blocks under an ordered extent */
byte oe[NBLK];                  /* the owner of each */
byte oeg[NBLK];                 /* extents added on each, mod 256 */

/* The mask of blocks LO..HI. */
#define MASK(lo, hi) ((1 << ((hi) + 1)) - (1 << (lo)))
#define IN(m, b) (((m) >> (b)) & 1)

/* Whether the extent on block B that a waiter saw (generation W[B], when
 * B is in its mask WM) has completed. */
#define DONE(wm, w, b) (!IN (wm, b) || !IN (oem, b) || oeg[b] != w[b])

/* lock_range (ME, M): lock the blocks of mask M; if an extent is in
 * flight on one of them, unlock, wait for the extents in flight then, and
 * start over.  The caller declares the scratch WM and W[NBLK]. */
inline lock_range (me, m)
{
  do
  :: atomic {
       (lkm & (m)) == 0;
       if
       :: (oem & (m)) == 0 ->
          lkm = lkm | (m);
          if :: IN (m, 0) -> lko[0] = me :: else fi;
          if :: IN (m, 1) -> lko[1] = me :: else fi;
          if :: IN (m, 2) -> lko[2] = me :: else fi;
          if :: IN (m, 3) -> lko[3] = me :: else fi;
          break
       :: else ->
          wm = oem & (m);
          w[0] = oeg[0]; w[1] = oeg[1]; w[2] = oeg[2]; w[3] = oeg[3]
       fi
     };
     (DONE (wm, w, 0) && DONE (wm, w, 1) && DONE (wm, w, 2)
      && DONE (wm, w, 3));        /* ordered_wait_range */
     wm = 0
  od
}

inline unlock_range (me, m)
{
  d_step {
    assert (!IN (m, 0) || lko[0] == me);
    assert (!IN (m, 1) || lko[1] == me);
    assert (!IN (m, 2) || lko[2] == me);
    assert (!IN (m, 3) || lko[3] == me);
    lkm = lkm & ~(m)
  }
}

/* Add an extent of ME over the blocks of M (locked by ME). */
inline add_extent (me, m)
{
  d_step {
    assert ((oem & (m)) == 0);
    oem = oem | (m);
    if :: IN (m, 0) -> oe[0] = me; oeg[0]++ :: else fi;
    if :: IN (m, 1) -> oe[1] = me; oeg[1]++ :: else fi;
    if :: IN (m, 2) -> oe[2] = me; oeg[2]++ :: else fi;
    if :: IN (m, 3) -> oe[3] = me; oeg[3]++ :: else fi
  }
}

/* ordered_complete of ME's extents over M. */
inline complete (me, m)
{
  d_step {
    assert (!IN (m, 0) || oe[0] == me);
    assert (!IN (m, 1) || oe[1] == me);
    assert (!IN (m, 2) || oe[2] == me);
    assert (!IN (m, 3) || oe[3] == me);
    oem = oem & ~(m)
  }
}

proctype Flush (byte me; bool descending)
{
  byte wm, w[NBLK];
  byte lo, hi, next, taken;

  next = (descending -> NBLK : 0);
  do
  :: !descending && next < NBLK ->
     /* the next run, LO..HI, anywhere from NEXT on */
     lo = next;
     do
     :: lo < NBLK - 1 -> lo++
     :: true -> break
     od;
     hi = lo;
     do
     :: hi < NBLK - 1 -> hi++
     :: true -> break
     od;
     lock_range (me, MASK (lo, hi));
     add_extent (me, MASK (lo, hi));
     unlock_range (me, MASK (lo, hi));
     taken = taken | MASK (lo, hi);
     next = hi + 1
  :: descending && next > 0 ->  /* the mutant: from the top down */
     hi = next - 1;
     do
     :: hi > 0 -> hi--
     :: true -> break
     od;
     lock_range (me, MASK (hi, hi));
     add_extent (me, MASK (hi, hi));
     unlock_range (me, MASK (hi, hi));
     taken = taken | MASK (hi, hi);
     next = hi
  :: true -> break              /* the snapshot has no more runs */
  od;
  complete (me, taken)          /* after the batch's I/O */
}

proctype Direct (byte me; byte b)
{
  byte wm, w[NBLK];

  lock_range (me, MASK (b, b));
  add_extent (me, MASK (b, b));
  complete (me, MASK (b, b));   /* the I/O, under the lock */
  unlock_range (me, MASK (b, b))
}

proctype Writer (byte me; byte lo)
{
  byte wm, w[NBLK];

  lock_range (me, MASK (lo, lo + 1));
  unlock_range (me, MASK (lo, lo + 1))
}

init
{
  atomic {
    run Flush (1, false);
#ifdef DESCENDING
    run Flush (2, true);
#else
    run Flush (2, false);
#endif
#ifdef THREE_FLUSHES
    run Flush (3, false);
#endif
    run Direct (4, 1);
    run Writer (5, 2)
  }
}
