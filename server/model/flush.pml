/* blkcache: a Promela model of flush error reporting (issue 18, rule 1):
 * two concurrent flushes, writebacks that the disk may refuse, and the
 * errseq-style report that the engine is moving to.
 *
 * Rule 1: a flush succeeds only if every write acknowledged before it
 * began is on stable storage.  A spurious failure is acceptable; a missed
 * one is not.
 *
 * The protocol modelled (the fix for issue 18's first finding):
 *   - a global writeback error sequence, wb_err_seq, bumped when a
 *     writeback completes with an error: after cache_end_writeback has put
 *     the block back to DIRTY, keeping its first-dirtied time, and before
 *     the writeback's ordered extent completes;
 *   - a flush takes its start time (the dirtied_by of writeback_all) and
 *     samples wb_err_seq, lists the dirty blocks first-dirtied at or
 *     before its start (failed ones that are dirty again included) and
 *     writes them back, waits for every ordered extent in flight
 *     (ordered_wait_all, so it also waits for writebacks of others that
 *     took its blocks), and fails if wb_err_seq changed since its sample
 *     or its own writebacks failed; then it would fdatasync.
 *
 * What is modelled
 * ----------------
 * NBLK blocks (1 or 2, default 1), each always cached (eviction of a
 * CLEAN block changes nothing here: the disk already holds its bytes).
 * A block's value, and a disk block's, is the id of the write that wrote
 * it: 0 the initial content, 1..NWRITES the cached writes.
 *
 * Processes:
 *   Writer       one connection doing NWRITES cached writes (engine.c
 *                cached_write), one after the other, write k to block
 *                (k - 1) % NBLK: lock_range, copy_in, cache_mark_dirty
 *                (a CLEAN block enters the dirty index: dirtied now),
 *                unlock, the reply.
 *   Flush (x2)   engine_flush, NFLUSH times each (default 1).
 *   Background   (-DBACKGROUND) the timer's and the dirty limit's
 *                writeback (writeback_oldest): writes back any DIRTY
 *                block, any number of times.
 *   init         starts everyone; once all is done, a CLEAN block holds
 *                what the disk holds.
 *
 * Writeback of block b (writeback_runs, one block per run; a flush's
 * batch of runs is taken one at a time here, which only adds
 * interleavings; batch.pml checks the batch's lock ordering):
 * lock_range (lock; if a writeback's ordered extent is in flight, unlock,
 * wait for it, start over), ordered_add, cache_start_writeback (the block
 * leaves the dirty index; if it is no longer DIRTY, complete at once),
 * unlock_range (extent first, then mark: server/README point 6), the
 * store write, cache_end_writeback, the wb_err_seq bump on error,
 * ordered_complete.  The store write may succeed, or, at most MAXFAIL
 * times in the run (default 1), fail: having written nothing (the disk
 * refuses it) or having written the block anyway.
 *
 * A cached write never meets a block in WRITEBACK: its lock_range waits
 * for the writeback's ordered extent, which completes only after
 * cache_end_writeback (checked).  So a block in writeback is never
 * redirtied, and its dirtied-at time is the one it had when its
 * writeback started.
 *
 * Time.  Only the order between a block's dirtied-at time and the start
 * times of the flushes matters, so instead of a clock each block has dt,
 * a bit per flush: bit F is set when that block's dirtied-at time is at
 * or before flush F's start.  A flush sets its bit in every block that is
 * DIRTY or in WRITEBACK when it starts; a block that enters the dirty
 * index with a new time gets dt = 0.  A flush's start time and its
 * sample of wb_err_seq are two steps, taken in either order (the engine
 * takes cache_clock () in engine_flush; the sample may come before or
 * after it).
 *
 * The property, at each flush's reply: if the flush succeeds, every
 * block's disk holds the write acknowledged last before the flush was
 * issued, or a newer one (writes to a block are acknowledged in order,
 * so "newer" is a larger id).  The disk only moves forward (a writeback
 * writes the cached block, which is never older than the disk), so it is
 * checked when the verdict is known; the fdatasync after it is not
 * modelled (rule 2, the latched sync error, is another matter).
 *
 * Mutants (spin must find the flush that succeeds over a missing write):
 *   -DBUG_FIRST_FLUSH_TAKES_ERROR  the engine as it is (issue 18): both
 *       of the two below.
 *   -DBUG_TAKE_ERROR       a single recorded first error, set by a failed
 *       writeback's ordered_complete, which the first flush to look takes
 *       and clears (ordered_take_error after ordered_wait_all).
 *   -DBUG_NEW_DIRTY_TIME   a failed block re-enters the dirty index with a
 *       new dirtied-at time (cache_end_writeback's dirty_index_add), so a
 *       flush that began before the failure does not list it.
 *   -DBUG_BUMP_AFTER_COMPLETE  wb_err_seq is bumped after the failed
 *       writeback's ordered extent completes, not before: a flush
 *       waiting for that extent may look at wb_err_seq in between.
 * -DSAMPLE_FIRST makes every flush sample wb_err_seq before it takes its
 * start time; with it, -DBUG_NEW_DIRTY_TIME alone breaks nothing (see
 * server/model/README).
 */

#ifndef NBLK
#define NBLK 1
#endif
#ifndef NWRITES
#define NWRITES 2
#endif
#ifndef NFLUSH
#define NFLUSH 1
#endif
#ifndef MAXFAIL
#define MAXFAIL 1
#endif

#ifdef BUG_FIRST_FLUSH_TAKES_ERROR
#define BUG_TAKE_ERROR
#define BUG_NEW_DIRTY_TIME
#endif

/* Block states (cache.c). */
#define CLEAN 0
#define DIRTY 1
#define WRITEBACK 2

/* Thread ids: one bit each; the lock owner's value; a flush's bit in dt. */
#define TW 1                    /* the writer */
#define TB 2                    /* background writeback */
#define TF1 4                   /* flush 1 */
#define TF2 8                   /* flush 2 */

#define NWORKERS 3               /* the writer and the flushes; Background
                                 * never ends */

/* FOREACH (S): S for block hb = 0 .. NBLK - 1 (plain, unrolled). */
#if NBLK == 2
#define FOREACH(s) hb = 0; s; hb = 1; s; hb = 0
#elif NBLK == 1
#define FOREACH(s) hb = 0; s
#else
#error "NBLK must be 1 or 2"
#endif

byte disk[NBLK];                /* the write each disk block holds */
byte cv[NBLK];                  /* the write each cached block holds */
byte cst[NBLK];                 /* CLEAN, DIRTY or WRITEBACK */
byte dt[NBLK];                  /* flush bits: dirtied at or before its start */
byte lk[NBLK];                  /* the range lock's owner, 0 when free */
bool oe[NBLK];                  /* a writeback's ordered extent in flight */
byte wt[NBLK];                  /* the threads waiting for that extent */
byte acked[NBLK];               /* the last write acknowledged, per block */
byte wb_err_seq;                /* bumped at each failed writeback */
byte nfail;                     /* store writes failed so far */
#ifdef BUG_TAKE_ERROR
bool first_error;               /* ordered.c first_error */
#endif
byte ndone;                     /* threads finished */

hidden byte hb;                 /* d_step scratch */

/* engine.c lock_range for block B: extent_lock; if a writeback's ordered
 * extent is in flight, extent_unlock, ordered_wait_range, start over. */
inline lock_range (me, b)
{
  do
  :: atomic {
       lk[b] == 0 -> lk[b] = me;
       if
       :: !oe[b] -> break
       :: else -> lk[b] = 0; wt[b] = wt[b] | me
       fi
     };
     (wt[b] & me) == 0
  od;
  skip                          /* (break must not jump into a d_step) */
}

/* Write block B back for ME; the caller declares found and err, and err
 * says afterwards whether the store write failed. */
inline writeback_once (me, b)
{
  lock_range (me, b);
  d_step { assert (!oe[b]); oe[b] = 1 };      /* ordered_add */
  d_step {                      /* cache_start_writeback; unlock_range */
    if
    :: cst[b] == DIRTY -> cst[b] = WRITEBACK; found = 1
    :: else -> found = 0; oe[b] = 0; wt[b] = 0
    fi;
    lk[b] = 0
  };
  if
  :: found ->
     if                         /* the store write */
     :: d_step { disk[b] = cv[b] }
     :: d_step { nfail < MAXFAIL -> nfail++; err = 1 }
     :: d_step { nfail < MAXFAIL -> nfail++; err = 1; disk[b] = cv[b] }
     fi;
     /* cache_end_writeback: CLEAN, or DIRTY again after a failure,
      * keeping the time it was first dirtied */
     d_step {
       if
       :: err -> cst[b] = DIRTY;
#ifdef BUG_NEW_DIRTY_TIME
          dt[b] = 0;
#endif
          skip
       :: else -> cst[b] = CLEAN; dt[b] = 0
       fi
     };
#if !defined(BUG_TAKE_ERROR) && !defined(BUG_BUMP_AFTER_COMPLETE)
     if :: err -> wb_err_seq++ :: else fi;
#endif
     d_step {                   /* ordered_complete */
#ifdef BUG_TAKE_ERROR
       if :: err -> first_error = 1 :: else fi;
#endif
       oe[b] = 0; wt[b] = 0; found = 0
     }
#ifdef BUG_BUMP_AFTER_COMPLETE
     ; if :: err -> wb_err_seq++ :: else fi
#endif
  :: else
  fi
}

/* ---- engine.c cached_write() ----------------------------------------- */

proctype Writer ()
{
  byte w = 1, b;

  do
  :: w <= NWRITES ->
     b = (w - 1) % NBLK;
     lock_range (TW, b);        /* issued; lock */
     /* copy_in, cache_mark_dirty_range, unlock_range, the reply */
     d_step {
       assert (cst[b] != WRITEBACK);
       cv[b] = w;
       if :: cst[b] == CLEAN -> cst[b] = DIRTY; dt[b] = 0 :: else fi;
       lk[b] = 0;
       acked[b] = w;
       w++
     }
  :: else -> break
  od;
  b = 0;
  ndone++
}

/* ---- engine.c engine_flush() ----------------------------------------- */

/* The flush's start: its bit in every block dirtied by now (plain). */
#define STAMP(me) FOREACH (if :: cst[hb] != CLEAN -> dt[hb] = dt[hb] | (me) \
                                 :: else fi)
/* need := the writes acknowledged by now (plain). */
#define NEED FOREACH (need[hb] = acked[hb])
/* listed := the blocks that cache_dirty_runs reports (plain). */
#define LIST(me) FOREACH (if :: cst[hb] == DIRTY && (dt[hb] & (me)) -> \
                                   listed = listed | (1 << hb) :: else fi)
/* ordered_wait_all: wait for the extents in flight now (plain). */
#define WAIT_ALL(me) FOREACH (if :: oe[hb] -> wt[hb] = wt[hb] | (me) \
                                  :: else fi)
#if NBLK == 2
#define WAITED(me) ((wt[0] & (me)) == 0 && (wt[1] & (me)) == 0)
#define DURABLE (disk[0] >= need[0] && disk[1] >= need[1])
#else
#define WAITED(me) ((wt[0] & (me)) == 0)
#define DURABLE (disk[0] >= need[0])
#endif

proctype Flush (byte me)
{
  byte need[NBLK];
  byte sample, listed, b, n;
  bool found, err, failed;

  do
  :: n < NFLUSH ->
     /* issued; the start time and the sample of wb_err_seq, in either
      * order */
     if
#ifndef SAMPLE_FIRST
     :: d_step { n++; NEED; STAMP (me) };
        sample = wb_err_seq
#endif
     :: d_step { n++; NEED; sample = wb_err_seq };
        d_step { STAMP (me) }
     fi;
     d_step { LIST (me) };      /* cache_dirty_runs, dirtied_by = start */
     /* writeback_all: each listed block, in ascending order */
     b = 0;
     do
     :: b < NBLK ->
        if
        :: (listed >> b) & 1 ->
           writeback_once (me, b);
           d_step { failed = failed || err; err = 0 }
        :: else
        fi;
        b++
     :: else -> break
     od;
     atomic { WAIT_ALL (me) };  /* (a d_step cannot follow break) */
     WAITED (me);
     /* the verdict and the reply */
     d_step {
#ifdef BUG_TAKE_ERROR
       failed = failed || first_error;
       first_error = 0;
#else
       failed = failed || wb_err_seq != sample;
#endif
       assert (failed || DURABLE);
       FOREACH (dt[hb] = dt[hb] & ~(me); need[hb] = 0);
       sample = 0; listed = 0; b = 0; failed = 0
     }
  :: else -> break
  od;
  ndone++
}

#ifdef BACKGROUND
/* ---- engine.c writeback_oldest(), from the timer or balance_dirty ---- */

proctype Background ()
{
  byte b;
  bool found, err;

end:
  do
  :: atomic { cst[0] == DIRTY -> b = 0 };
     writeback_once (TB, b);
     err = 0; b = 0
#if NBLK == 2
  :: atomic { cst[1] == DIRTY -> b = 1 };
     writeback_once (TB, b);
     err = 0; b = 0
#endif
  od
}
#endif

init
{
  atomic {
    run Writer ();
    run Flush (TF1);
    run Flush (TF2);
#ifdef BACKGROUND
    run Background ();
#endif
  }
  /* Everyone done: a CLEAN block holds what the disk holds, and nothing
   * acknowledged is lost (the cache or the disk holds the last write). */
  ndone == NWORKERS;
  d_step {
    FOREACH (assert (cst[hb] != CLEAN || disk[hb] == cv[hb]);
             assert (cv[hb] == acked[hb]))
  }
}
