/* blkcache: a Promela model of the cache-coherence protocol AS
 * IMPLEMENTED in server/engine.c (as of commit 0ad1a87; 49a81d0 fixed
 * the bug this model found, see -DBUG_INVALIDATE_KEEPS_MASK below), for
 * one cache block.
 *
 * The reference design (design.md, "Reference protocol") was checked with
 * a model of its own.  The engine departs from it (server/README, points
 * 1, 2 and 5): direct writes lock only the sectors they touch, hold that
 * lock across the store I/O and put their bytes into the cached block
 * AFTER the disk write instead of dropping it before; unaligned direct
 * writes read the rest of their sector from the cached block when there
 * is one, even a DIRTY one; writeback writes only the parts of a block
 * written since its previous writeback; cache_alloc never sleeps, and a
 * thread that finds the cache full unlocks, makes room and starts over.
 * This file models the engine as it is, with those departures.
 * tests/test-model.sh checks it; server/model/README has the commands,
 * the results and a finding.
 *
 * What is modelled
 * ----------------
 * One cache block.  With NB == 2 (the default) the block holds two bytes
 * and is ONE store sector, so a write of one byte is an unaligned direct
 * write (write_store's read-modify-write through read_edge) and a partial
 * cached write (cached_write's fill from the store).  With
 * -DSECTOR_BYTES=1 each byte is a store sector of its own instead: a
 * one-byte direct write is aligned, and writeback writes only the dirty
 * byte.  With NB == 1 the block is one value and every write covers all
 * of it.  Each byte is also one "granule" of the block's dirty mask
 * (cache.c's dirty_mask, 1/64th of a block): writeback writes only the
 * sectors that hold granules written since the previous writeback
 * (engine.c write_dirty_parts, since commit d03a1b2).  A byte's value is
 * the id of the write that wrote it: 0 the initial content, 1 and 2 the
 * two direct writes, 3 the cached write; 4 is "older than the initial
 * content", on the disk behind an initially dirty block (-DINIT_DIRTY
 * lets the run start from either an uncached block or that one).
 *
 * Processes (each one an nbdkit thread calling into the engine):
 *   Direct (x2)  engine_write with FUA, or in cache=writethrough:
 *                direct_io() with write_store/read_edge, update_cache and
 *                invalidate_cache (after a failed write: a CLEAN block is
 *                dropped, a DIRTY one is kept with the write's sectors
 *                added to its dirty mask).  D1 writes the whole block (byte 1 only
 *                with -DD1_BYTE1); with NB == 2 D2 writes byte 0 only.
 *                -DD1_ZERO makes D1 an engine_zero (of the whole block,
 *                update_cache drops the block, DIRTY or not, since the
 *                store has all its bytes; of byte 1, it zeroes that byte).
 *   Cached       engine_write in cache=writeback: cached_write().  With
 *                NB == 2 it writes byte 1 only.  -DNO_CACHED leaves it out.
 *   Reader (x NREADERS, NREADS reads each)  engine_read: cached_read()
 *                (a hit: cache_lookup and copy_out with no range lock)
 *                and read_miss().
 *   Writeback (x NWB)  writeback_run() and write_dirty_parts(), which
 *                flush (writeback_all's worker threads), the timer
 *                (engine_writeback_expired/_background), the dirty limit
 *                (balance_dirty) and memory pressure (reserve_block on a
 *                dirty victim) all call: it runs whenever the block is
 *                DIRTY, any number of times.
 *   Flush        (-DFLUSH) engine_flush(): one flush, checked at its
 *                reply (invariant 4).
 *   Evictor      cache_alloc's eviction of a CLEAN, unpinned block
 *                (evictable() in cache.c), and engine_drop_clean: at any
 *                time, any number of times.
 *   Monitor      invariant 2 in every state.
 *   init         starts everyone; once every request has been answered,
 *                checks the contents (the cached block if DIRTY or in
 *                WRITEBACK, else the disk) as a read issued then would:
 *                lost dirty data or a lost update fails here.
 *
 * Abstractions
 * ------------
 * - The extent tree (extent_tree.c), for one block's range: lkm, the mask
 *   of the block's bytes whose sectors are locked, and lko[], the owner of
 *   each.  Read misses, cached writes and writeback lock the whole block
 *   (span_of); direct writes lock only the sectors they touch (direct_io
 *   since commit f7be91e), so with -DSECTOR_BYTES=1 two direct writes of
 *   disjoint bytes run at once (-DD1_BYTE1 makes D1 and D2 disjoint).
 *   extent_trylock/extent_lock wait until all of the range is free and
 *   take it at once.  Their FIFO order among waiters is not modelled: any
 *   waiter may win, which only adds interleavings.
 * - The ordered queue (ordered.c): only a writeback's extent is ever seen
 *   by another thread (a direct write adds and completes its extent while
 *   it holds the range lock), so it is the flag wb_oe plus a bit wb_seq
 *   that flips at each ordered_add; ordered_wait_range waits until that
 *   extent has completed.  Direct writes' extents are the mask dio_m of
 *   the bytes they cover, and lock_range checks that nobody ever sees one
 *   overlapping its range.
 * - The cache (cache.c), for one block number: cached (the block is
 *   hashed), cst (CLEAN/DIRTY/WRITEBACK), redirt, the bytes cv[], the
 *   masks dmask and wbmask (dirty_mask, writeback_mask), and pinned, a
 *   bitmask of the threads pinning the block now hashed.  Only
 *   one block can be hashed; a new one starts with fresh pins.  Dropping
 *   the block (cache_drop_range) unhashes it and clears pinned: those
 *   pins now hold a dropped block that nobody writes into any more (its
 *   memory is not reused while pinned).  A reader whose copy_out finds its
 *   block dropped gives that read up: the dropped block's bytes are
 *   frozen, so copying them just before the drop, which the model also
 *   explores, returns the same bytes.
 * - memcpy into and out of a block (copy_in, copy_out, update_cache) is
 *   byte by byte, so hit readers may see a torn block; the oracle judges
 *   each byte.  Store reads and writes of the sector are one step each:
 *   every store access of the block happens under its range lock or
 *   under a writeback's ordered extent, which lock holders wait for, so
 *   they never overlap one another.
 * - cache_alloc failing (-ENOSPC or -EAGAIN, -DALLOC_FAIL): a read miss or
 *   cached write that needs a new block may find the cache full; it
 *   unlocks, makes room with no lock held (reserve_block, which writes
 *   back a dirty victim -- another block -- or waits; here it just gets a
 *   spare block) and starts over from lock_range.  Another thread may fill
 *   the block meanwhile.
 * - Errors: -DDIO_ERR lets a direct write fail after writing any subset of
 *   its bytes, -DWB_ERR lets a writeback do the same.  A failed write is
 *   never acknowledged, so the oracle allows its bytes forever.  Store
 *   read errors (invariant 7) are not modelled.
 * - FUA group commit (server/README point 3) only delays a direct write's
 *   reply past its unlock; the model replies at the unlock, the strictest
 *   case for the oracle.  Durability and crashes, flush's error report,
 *   block status, trim and multi-block ranges are not modelled; with
 *   -DFLUSH one flush is, its fdatasync left out.
 *
 * Steps.  A request is issued in the same step as its first action (the
 *   lookup of a read, the lock of a write) and replied to in the same step
 *   as its last (the unlock or unpin).  A request really issued earlier or
 *   replied to later only makes the oracle weaker, so this loses no stale
 *   read.  A hit reads byte 0 in the step of its cache_lookup, as if the
 *   reader had been a little slower to start.  Apart from that, every
 *   engine call that touches shared state is a step of its own, except
 *   for a few runs of calls made under the range lock that nothing else
 *   can observe in between (said where they are).
 *
 * The property (design.md, "What stale means"): per byte, a read may return
 * write w only if no other write to that byte was issued after w's reply
 * and replied to before the read was issued.  sup[x] is the set of writes
 * replied to when write x was issued; a read, when issued, forbids for
 * each byte the members of sup[x] for every write x of that byte already
 * replied to, and at its reply asserts that it got none of them.
 *
 * Mutants (spin must find a stale read in each; -DSTALE_ONLY turns the
 * other checks off so that the run stops at the stale read itself):
 *   -DSEED_BUG_SKIP_RECHECK      read_miss fills the cache without the
 *                                range lock (the engine's debug
 *                                cfg.skip_recheck).
 *   -DSEED_BUG_DROP_BEFORE_LOCK  a direct write drops the range's cached
 *                                block (cache_drop_range, overwritten if
 *                                it covers the whole block) before it
 *                                takes the lock, and leaves the cache
 *                                alone after its I/O: the seed bug.
 * and one that must deadlock (spin: "invalid end state"), to show that the
 * check of invariant 9 is not vacuous:
 *   -DSEED_BUG_WAIT_LOCKED       lock_range waits for a writeback's
 *                                ordered extent without unlocking, and
 *                                writeback_run takes its range again
 *                                before ordered_complete (which ordered.h
 *                                allows an extent's owner to do).  The
 *                                engine does neither.
 * and one that must break invariant 2 (a CLEAN block that differs from
 * the disk; other checks on), the engine's behaviour before commit
 * 49a81d0 and the bug this model found (server/model/README, "Finding"):
 *   -DBUG_INVALIDATE_KEEPS_MASK  after a failed direct write,
 *                                invalidate_cache keeps a DIRTY block
 *                                without adding the write's sectors to
 *                                its dirty mask, so its next writeback
 *                                skips the bytes the failed write left on
 *                                the disk and turns it CLEAN.  Needs
 *                                -DSECTOR_BYTES=1 and -DDIO_ERR: with one
 *                                sector per block writeback writes all of
 *                                it anyway.  It is not a stale read: the
 *                                disk holds the failed write's bytes,
 *                                which the oracle allows.
 * and one that must break invariant 4 (a flush that replies before an
 * acknowledged write is on the disk), the engine before commit 0ad1a87:
 *   -DBUG_MARK_BEFORE_ADD        writeback takes the block out of the
 *                                dirty index before its ordered extent
 *                                is in the queue, so a flush that looks
 *                                in between finds neither.  Needs
 *                                -DFLUSH.
 */

#ifndef NB
#define NB 2                    /* bytes per block (1 or 2) */
#endif
#ifndef NREADERS
#define NREADERS 3              /* 1 to 3 */
#endif
#ifndef NREADS
#define NREADS 1                /* reads per reader */
#endif
#ifndef NWB
#define NWB 1                   /* writeback threads (1 or 2) */
#endif

#ifndef SECTOR_BYTES
#define SECTOR_BYTES NB         /* bytes per store sector: NB or 1 */
#endif

#if NB == 1
#define ALL 1
#define D1COV 1
#define D2COV 1
#define CCOV 1
#else
#define ALL 3
#ifdef D1_BYTE1
#define D1COV 2                 /* direct write 1: byte 1 (disjoint from D2) */
#else
#define D1COV 3                 /* direct write 1: the whole block (aligned) */
#endif
#define D2COV 1                 /* direct write 2: byte 0 (unaligned: RMW) */
#define CCOV 2                  /* cached write: byte 1 (partial: fill) */
#endif

/* The bytes that a write of the bytes in mask M writes to the store:
 * M rounded out to whole sectors. */
#if SECTOR_BYTES == NB
#define ROUND(m) ((m) != 0 -> ALL : 0)
#else
#define ROUND(m) (m)
#endif

#define NW 5                    /* value ids 0..4, see above */
#define COV(w) ((w) == 1 -> D1COV : ((w) == 2 -> D2COV : ((w) == 3 -> CCOV : ALL)))
#define COVERS(w, b) ((COV(w) >> (b)) & 1)

/* Thread ids: one bit each, for pins; also the lock owner's value. */
#define R1 1
#define R2 2
#define R3 4
#define TD1 8
#define TD2 16
#define TC 32
#define TWB 64
#define TWB2 128

#ifdef NO_CACHED
#define NWRITERS 2
#else
#define NWRITERS 3
#endif
#ifdef FLUSH
#if NWB >= 2
#error "FLUSH takes the second writeback thread's id: NWB must be 1"
#endif
#define NWORKERS (NREADERS + NWRITERS + 1)
#else
#define NWORKERS (NREADERS + NWRITERS)
#endif

/* The stale-read assertion is always checked.  The other checks use
 * check(); -DSTALE_ONLY turns them off. */
#ifdef STALE_ONLY
#define check(x) skip
#else
#define check(x) assert (x)
#endif

mtype = { CLEAN, DIRTY, WRITEBACK };

/* The disk.  At first it holds the initial content (write 0, replied to
 * at time 0) and the block is not cached; with -DINIT_DIRTY, init may
 * instead start from a DIRTY cached block that holds it, the disk
 * holding 4, older. */
byte disk[NB];
bool cached;                    /* the block is hashed (cache_peek finds it) */
mtype cst = CLEAN;              /* its state */
bool redirt;                    /* written into while in WRITEBACK */
byte cv[NB];                    /* its bytes */
byte dmask;                     /* granules written since the last writeback
                                 * started (cache.c dirty_mask) */
byte wbmask;                    /* those its writeback writes (writeback_mask) */
byte pinned;                    /* the threads pinning the hashed block */

/* The extent tree, for the block's range: the owner, 0 when free. */
byte lkm;                       /* the locked bytes (whole sectors) */
byte lko[NB];                   /* the owner of each locked byte */

/* The ordered queue. */
bool wb_oe;                     /* a writeback of the block is in flight */
bit wb_seq;                     /* flips at each ordered_add of a writeback */
byte dio_m;                     /* bytes under a direct write's extent */

/* The oracle. */
byte replied = 17;              /* writes replied to: 0 and 4, at time 0 */
byte sup[NW];                   /* sup[w]: replied when w was issued;
                                 * init sets sup[0] = {4} */
byte ndone;                     /* requests answered */

hidden byte hb, hi;             /* d_step scratch */

/* ---- the oracle ------------------------------------------------------ */

/* forb[b] (the caller's) := the values of byte b that a read issued now
 * must not return.  Plain statements, for use inside a d_step. */
inline forbid ()
{
  hb = 0;
  do
  :: hb < NB ->
     forb[hb] = 0;
     hi = 0;
     do
     :: hi < NW ->
        if
        :: ((replied >> hi) & 1) && COVERS (hi, hb) ->
           /* the writes of byte hb that had replied when hi was issued */
           forb[hb] = forb[hb] | (sup[hi] & (1 | (COVERS (1, hb) << 1)
                                               | (COVERS (2, hb) << 2)
                                               | (COVERS (3, hb) << 3)
                                               | 16))
        :: else
        fi;
        hi++
     :: else -> break
     od;
     hb++
  :: else -> break
  od;
  hb = 0; hi = 0
}

/* The read's reply: no stale byte, unless the copy was given up. */
inline judge ()
{
  assert (gone || !((forb[0] >> v[0]) & 1));
#if NB == 2
  assert (gone || !((forb[1] >> v[1]) & 1));
#endif
  skip
}

/* ---- the extent tree and the ordered queue: engine.c lock_range() ---- */

/* extent_trylock / extent_lock, then ordered_lookup: if a writeback of the
 * block is in flight, extent_unlock, ordered_wait_range, and again. */
/* Take or give back the bytes M for ME (plain statements). */
#if NB == 2
#define LOCKSET(me, m) lkm = lkm | (m); \
  if :: ((m) & 1) -> lko[0] = (me) :: else fi; \
  if :: ((m) & 2) -> lko[1] = (me) :: else fi
#define LOCKCLR(m) lkm = lkm & ~(m); \
  if :: ((m) & 1) -> lko[0] = 0 :: else fi; \
  if :: ((m) & 2) -> lko[1] = 0 :: else fi
#define OWNS(me, m) ((lkm & (m)) == (m) && (!((m) & 1) || lko[0] == (me)) \
                     && (!((m) & 2) || lko[1] == (me)))
#else
#define LOCKSET(me, m) lkm = (m); lko[0] = (me)
#define LOCKCLR(m) lkm = 0; lko[0] = 0
#define OWNS(me, m) (lkm == 1 && lko[0] == (me))
#endif

/* Lock the bytes M (whole sectors) for ME. */
inline lock_range (me, m)
{
  do
  :: atomic {
       (lkm & (m)) == 0 -> LOCKSET (me, m);
       check ((dio_m & (m)) == 0);  /* nobody sees a direct write's extent */
       if
       :: !wb_oe -> break           /* a writeback covers the whole block */
#ifndef SEED_BUG_WAIT_LOCKED
       :: else -> LOCKCLR (m); seq = wb_seq
#else
       :: else -> seq = wb_seq      /* the mutant keeps the range */
#endif
       fi
     };
     (!wb_oe || wb_seq != seq)      /* ordered_wait_range */
#ifdef SEED_BUG_WAIT_LOCKED
     ; d_step { LOCKCLR (m) }
#endif
  od;
  seq = 0
}

/* extent_unlock (plain statements, for use inside a d_step) */
#define UNLOCK(me, m) check (OWNS (me, m)); LOCKCLR (m)

/* ---- the cache: cache.c ---------------------------------------------- */

/* cache_peek / cache_lookup: pin the block if one is hashed (plain). */
#define PEEK(me) \
  if :: cached -> pinned = pinned | (me); found = 1 \
     :: else -> found = 0 fi

/* cache_drop_range's drop_block: a DIRTY or WRITEBACK block only when
 * OVERWRITTEN (invariant 3) (plain). */
#define DROP(overwritten) \
  if \
  :: cached && (cst == CLEAN || (overwritten)) -> \
     cached = 0; cst = CLEAN; redirt = 0; pinned = 0; dmask = 0; wbmask = 0 \
  :: else \
  fi

/* Byte B of the cached block gets write W's value if W covers it (plain). */
#define PUT(b, w, covm) if :: (((covm) >> (b)) & 1) -> cv[b] = (w) :: else fi

/* ---- engine.c cached_read() and read_miss() -------------------------- */

/* copy_out of byte B from the block ME pins; gone := 1 if it was dropped. */
#define COPY(me, b) \
  atomic { if :: (pinned & (me)) && !gone -> v[b] = cv[b] \
              :: else -> gone = 1 fi }

proctype Reader (byte me)
{
  byte forb[NB], v[NB], buf[NB];
  bit seq;
  bool found, spare, gone, locked;
  byte n;

  do
  :: n < NREADS ->
     /* The read is issued; cached_read's cache_lookup; on a hit, the
      * first byte of copy_out. */
     d_step {
       n++;
       forbid ();
       PEEK (me);
       if :: found -> v[0] = cv[0] :: else fi
     };
     if
     :: found ->                /* a hit: no range lock */
#if NB == 2
        COPY (me, 1);
#endif
        skip
     :: else ->                 /* read_miss */
again:
#ifndef SEED_BUG_SKIP_RECHECK
        lock_range (me, ALL);
        locked = 1;
#endif
        atomic { PEEK (me) };   /* the recheck: did someone fill it? */
        if
        :: found -> skip
        :: else ->
#ifdef ALLOC_FAIL
           if
           :: !spare ->         /* take_block: -EAGAIN, the cache is full:
                                 * unlock, reserve_block, start over */
              d_step {
                if :: locked -> UNLOCK (me, ALL) :: else fi;
                locked = 0; spare = 1
              };
              goto again
           :: true
           fi;
#endif
           d_step {             /* store_read into the new block */
             buf[0] = disk[0];
#if NB == 2
             buf[1] = disk[1];
#endif
             skip
           };
           /* race_window; insert_block: insert CLEAN, or (only without
            * the lock) pin the block someone else inserted first */
           d_step {
             if
             :: cached -> pinned = pinned | me
             :: else ->         /* a new block: cache_alloc cleared its masks */
                cached = 1; cst = CLEAN; redirt = 0; pinned = me;
                dmask = 0; wbmask = 0;
                cv[0] = buf[0];
#if NB == 2
                cv[1] = buf[1];
#endif
                skip
             fi;
             buf[0] = 0;
#if NB == 2
             buf[1] = 0;
#endif
             skip
           }
        fi;
        COPY (me, 0);
#if NB == 2
        COPY (me, 1);
#endif
        skip
     fi;
     /* cache_unpin, unlock_range (miss), the reply; then forget this
      * read's locals so that finished reads do not multiply states */
     d_step {
       pinned = pinned & ~me;
       if :: locked -> UNLOCK (me, ALL) :: else fi;
       judge ();
       v[0] = 0; forb[0] = 0;
#if NB == 2
       v[1] = 0; forb[1] = 0;
#endif
       found = 0; spare = 0; gone = 0; locked = 0
     }
  :: else -> break
  od;
  ndone++
}

/* ---- engine.c direct_io() -------------------------------------------- */

proctype Direct (byte me; byte w; byte covm; bool zero)
{
  byte buf[NB];
  bit seq;
  bool found, ok = 1;

#ifdef SEED_BUG_DROP_BEFORE_LOCK
  /* The seed: drop the cached block first, then lock and write. */
  d_step { sup[w] = replied; DROP (covm == ALL) };
  lock_range (me, ROUND (covm));
#else
  /* issued; lock the sectors it touches */
  atomic { sup[w] = replied; lock_range (me, ROUND (covm)) };
#endif

  /* ordered_add; race_window; write_store: an unaligned write takes the
   * rest of its sector from the cached block if there is one, which may
   * be DIRTY (read_edge: cache_peek, memcpy, cache_unpin), else from the
   * store.  (Under the lock: nobody can see these apart.) */
  d_step {
    dio_m = dio_m | ROUND (covm);
    hb = 0;
    do
    :: hb < NB ->
       buf[hb] = (((covm >> hb) & 1) -> w : (cached -> cv[hb] : disk[hb]));
       hb++
    :: else -> break
    od;
    hb = 0
  };
  /* store_write of the sectors the write touches (without RWF_DSYNC:
   * FUA is group commit) */
  if
  :: d_step {
       if :: (ROUND (covm) & 1) -> disk[0] = buf[0] :: else fi;
#if NB == 2
       if :: (ROUND (covm) & 2) -> disk[1] = buf[1] :: else fi;
       buf[1] = 0;
#endif
       buf[0] = 0
     }
#ifdef DIO_ERR
  :: atomic {                   /* fails, having written any of the bytes */
       ok = 0;
       if :: (ROUND (covm) & 1) -> disk[0] = buf[0] :: skip fi;
#if NB == 2
       if :: (ROUND (covm) & 2) -> disk[1] = buf[1] :: skip fi;
       buf[1] = 0;
#endif
       buf[0] = 0
     }
#endif
  fi;

#ifndef SEED_BUG_DROP_BEFORE_LOCK
  /* Still under the lock: update_cache on success, invalidate_cache on
   * failure. */
  if
  :: ok && zero && covm == ALL ->
     d_step { DROP (1) }        /* wholly zeroed: dropped, even DIRTY */
  :: ok && !(zero && covm == ALL) ->
     /* cache_peek; the new bytes, memcpy'd byte by byte while hit readers
      * may be copying out; cache_unpin */
     d_step {
       PEEK (me);
       if :: found -> check (cst != WRITEBACK); PUT (0, w, covm) :: else fi
     };
#if NB == 2
     /* (if a direct write of the other sector failed meanwhile and dropped
      * the block, this memcpy goes to the dropped block) */
     d_step { if :: found && (pinned & me) -> PUT (1, w, covm) :: else fi };
#endif
     skip
  :: !ok ->
     /* invalidate_cache: cache_drop_range, CLEAN dropped, DIRTY kept
      * (invariant 3); then cache_peek, cache_mark_dirty_range of the
      * sectors the write touched, cache_unpin: the failed write may have
      * changed them on the disk, so the next writeback must put the
      * block's bytes back.  One step: writeback, the only reader of the
      * mask, needs the whole block's range, and no block can be hashed
      * anew while this write holds part of it. */
     d_step {
       DROP (0);
#ifndef BUG_INVALIDATE_KEEPS_MASK
       if
       :: cached -> check (cst == DIRTY); dmask = dmask | ROUND (covm)
       :: else
       fi;
#endif
       skip
     }
  fi;
#endif
  /* cache_unpin; ordered_complete; unlock_range; the reply (a FUA reply
   * waits for group_commit with no lock held) */
  d_step {
    pinned = pinned & ~me;
    dio_m = dio_m & ~ROUND (covm);
    UNLOCK (me, ROUND (covm));
    if :: ok -> replied = replied | (1 << w) :: else fi;
    found = 0; ok = 0;
    ndone++
  }
}

/* ---- engine.c cached_write() ----------------------------------------- */

proctype Cached (byte me; byte w; byte covm)
{
  byte buf[NB];
  bit seq;
  bool found, spare, failed;

  /* balance_dirty comes first and writes back with no lock held, as the
   * Writeback process does. */
  atomic { sup[w] = replied; lock_range (me, ALL) }; /* issued; lock */
again:
  atomic { PEEK (me) };
  if
  :: found ->                   /* copy_in, byte by byte (never into a
                                 * block in WRITEBACK: lock_range waited) */
     d_step { check (cst != WRITEBACK); PUT (0, w, covm) };
#if NB == 2
     d_step { PUT (1, w, covm) };
#endif
     skip
  :: else ->
#ifdef ALLOC_FAIL
     if
     :: !spare ->               /* take_block -EAGAIN: unlock,
                                 * reserve_block, start over */
        d_step { UNLOCK (me, ALL); spare = 1 };
        lock_range (me, ALL);
        goto again
     :: true
     fi;
#endif
     /* a new block: store_read if the write does not cover all of it;
      * copy_in */
     d_step {
       hb = 0;
       do
       :: hb < NB ->
          buf[hb] = (((covm >> hb) & 1) -> w : disk[hb]);
          hb++
       :: else -> break
       od;
       hb = 0
     };
     /* insert_block: CLEAN, holding all its bytes; if one was inserted
      * first (only without the recheck), copy_in into that one */
     d_step {
       if
       :: cached ->
          pinned = pinned | me;
          PUT (0, w, covm);
#if NB == 2
          PUT (1, w, covm);
#endif
          skip
       :: else ->
          cached = 1; cst = CLEAN; redirt = 0; pinned = me;
          dmask = 0; wbmask = 0;
          cv[0] = buf[0];
#if NB == 2
          cv[1] = buf[1];
#endif
          skip
       fi;
       buf[0] = 0;
#if NB == 2
       buf[1] = 0;
#endif
       skip
     }
  fi;
  /* cache_mark_dirty_range: the block is DIRTY and remembers the
   * granules written (-ESTALE, and the write fails, if the block was
   * dropped meanwhile, which the lock rules out); cache_unpin;
   * unlock_range; the reply */
  d_step {
    check (pinned & me);
    if
    :: !(pinned & me) -> failed = 1
    :: (pinned & me) && cst == CLEAN -> cst = DIRTY
    :: (pinned & me) && cst == WRITEBACK -> redirt = 1
    :: else
    fi;
    if :: (pinned & me) -> dmask = dmask | covm :: else fi;
    pinned = pinned & ~me;
    UNLOCK (me, ALL);
    if :: !failed -> replied = replied | (1 << w) :: else fi;
    found = 0; spare = 0; failed = 0;
    ndone++
  }
}

/* ---- engine.c writeback_run() ---------------------------------------- */

/* ordered_add of the block's writeback (plain). */
#define WB_ORDERED_ADD check (!wb_oe); wb_oe = 1; wb_seq = 1 - wb_seq

/* cache_peek, cache_start_writeback: the block leaves the dirty index,
 * pinned by ME; found := whether it was still DIRTY (plain). */
#define WB_START(me) \
  if \
  :: cached && cst == DIRTY -> \
     pinned = pinned | (me); cst = WRITEBACK; redirt = 0; found = 1; \
     wbmask = dmask; dmask = 0 \
  :: else -> found = 0 \
  fi

/* Take the block for writeback, write it and complete (the body of
 * writeback_run): the caller has found it DIRTY, with no lock, and
 * declares seq, found and err. */
inline writeback_once (me)
{
  lock_range (me, ALL);
#ifndef BUG_MARK_BEFORE_ADD
  /* ordered_add, then cache_start_writeback and unlock_range; with
   * nothing to take, ordered_complete at once.  Under the lock, but two
   * steps: a flush lists the dirty index with no lock (server/README,
   * point 6). */
  d_step { WB_ORDERED_ADD };
  d_step {
    WB_START (me);
    if :: !found -> wb_oe = 0 :: else fi;
    UNLOCK (me, ALL)
  };
#else
  /* the engine before commit 0ad1a87: the block leaves the dirty index
   * before the extent is in the queue */
  d_step { WB_START (me) };
  d_step {
    if :: found -> WB_ORDERED_ADD :: else fi;
    UNLOCK (me, ALL)
  };
#endif
  if
  :: found ->
     /* write_dirty_parts: store_write, from the block's buffer (stable
      * now), of the sectors that hold granules of the writeback mask */
     if
     :: d_step {
          if :: (ROUND (wbmask) & 1) -> disk[0] = cv[0] :: else fi;
#if NB == 2
          if :: (ROUND (wbmask) & 2) -> disk[1] = cv[1] :: else fi;
#endif
          skip
        }
#ifdef WB_ERR
     :: atomic {                /* fails, having written any of the bytes */
          err = 1;
          if :: (ROUND (wbmask) & 1) -> disk[0] = cv[0] :: skip fi;
#if NB == 2
          if :: (ROUND (wbmask) & 2) -> disk[1] = cv[1] :: skip fi;
#endif
          skip
        }
#endif
     fi;
     /* cache_end_writeback (CLEAN, or DIRTY again if redirtied or
      * failed, a failed one giving its mask back; a dropped block is
      * left alone); cache_unpin */
     d_step {
       if
       :: (pinned & me) && cst == WRITEBACK ->
          if :: err -> dmask = dmask | wbmask :: else fi;
          wbmask = 0;
          cst = ((err || redirt) -> DIRTY : CLEAN); redirt = 0
       :: else
       fi;
       pinned = pinned & ~me;
       err = 0
     };
#ifndef SEED_BUG_WAIT_LOCKED
     d_step { wb_oe = 0; found = 0 }      /* ordered_complete */
#else
     /* the mutant's writeback takes its range again to complete */
     atomic { lkm == 0 -> LOCKSET (me, ALL); wb_oe = 0; found = 0;
              LOCKCLR (ALL) }
#endif
  :: else
  fi
}

proctype Writeback (byte me)
{
  bit seq;
  bool found, err;

end:
  do
  :: cached && cst == DIRTY ->  /* cache_dirty_runs, with no lock */
     writeback_once (me)
  od
}

#ifdef FLUSH
/* ---- engine.c engine_flush() ----------------------------------------- */

/* One flush, beside the Writeback process: it lists the dirty index with
 * no lock, writes the block back if it found it DIRTY, waits for the
 * writeback in flight then (ordered_wait_all) and replies.  The disk must
 * then hold, in each byte, no write that an acknowledged write had
 * replaced before the flush was issued (invariant 4; the fdatasync is
 * not modelled). */
proctype Flush (byte me)
{
  byte forb[NB];
  bit seq;
  bool found, err, pending;

  d_step { forbid () };         /* issued */
  if
  :: cached && cst == DIRTY ->  /* cache_dirty_runs */
     writeback_once (me)
  :: else
  fi;
  d_step { pending = wb_oe; seq = wb_seq };  /* ordered_wait_all */
  (!pending || !wb_oe || wb_seq != seq);
  d_step {                      /* the reply */
    assert (!((forb[0] >> disk[0]) & 1));
#if NB == 2
    assert (!((forb[1] >> disk[1]) & 1));
#endif
    ndone++
  }
}
#endif

/* ---- cache.c: eviction ----------------------------------------------- */

active proctype Evictor ()
{
end:
  do
  :: d_step {
       cached && pinned == 0 && cst == CLEAN ->
       check (dmask == 0 && wbmask == 0);
       cached = 0
     }
  od
}

/* ---- invariant 2: when no range is locked, a CLEAN block holds the
 * disk's bytes (the only windows where it does not are under the lock:
 * a cached write's insert before its mark_dirty, a direct write between
 * its store_write and update_cache or invalidate_cache). ---------------- */

/* The cached block's bytes are the disk's. */
#if NB == 2
#define AS_ON_DISK (cv[0] == disk[0] && cv[1] == disk[1])
#else
#define AS_ON_DISK (cv[0] == disk[0])
#endif

active proctype Monitor ()
{
end:
  atomic {
    (lkm == 0 && cached && cst == CLEAN && !AS_ON_DISK) -> check (AS_ON_DISK)
  }
}

init
{
  byte forb[NB];

  sup[0] = 16;
#ifdef INIT_DIRTY
  if
  :: skip
  :: d_step {
       cached = 1; cst = DIRTY; dmask = ALL;
       disk[0] = 4;
#if NB == 2
       disk[1] = 4;
#endif
       skip
     }
  fi;
#endif
  atomic {
    run Writeback (TWB);
#if NWB >= 2
    run Writeback (TWB2);
#endif
#ifdef FLUSH
    run Flush (TWB2);
#endif
#ifdef D1_ZERO
    run Direct (TD1, 1, D1COV, 1);
#else
    run Direct (TD1, 1, D1COV, 0);
#endif
    run Direct (TD2, 2, D2COV, 0);
#ifndef NO_CACHED
    run Cached (TC, 3, CCOV);
#endif
    run Reader (R1);
#if NREADERS >= 2
    run Reader (R2);
#endif
#if NREADERS >= 3
    run Reader (R3);
#endif
  }
  /* Every request answered: what a read issued now may return is the
   * cached block if it is DIRTY or in WRITEBACK, else the disk; a CLEAN
   * block equals the disk.  Dirty data dropped, or a writeback landing
   * over a newer direct write, fails here. */
  ndone == NWORKERS;
  d_step {
    forbid ();
    check (!((forb[0] >> ((cached && cst != CLEAN) -> cv[0] : disk[0])) & 1));
#if NB == 2
    check (!((forb[1] >> ((cached && cst != CLEAN) -> cv[1] : disk[1])) & 1));
#endif
    check (!(cached && cst == CLEAN && lkm == 0) || AS_ON_DISK)
  }
}
