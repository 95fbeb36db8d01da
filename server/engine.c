/* blkcache: the engine.  See engine.h, and server/README for the
 * protocol and where it departs from the reference design; this comment
 * says how this file keeps it.
 *
 * Ranges.  Every operation that changes the disk or the cache locks its
 * range in the extent tree, rounded out to cache blocks (or to the store's
 * alignment when there is no cache), with lock_range(): lock, and if an
 * ordered extent overlaps, unlock, wait for it, and lock again.  So once
 * lock_range() returns, no I/O of anyone else is in flight on the range and
 * no one else may start any.
 *
 * Read hits copy out of a pinned block with no range lock.  A read miss
 * locks its blocks, looks them up again, reads the still-missing ones from
 * the store and inserts them CLEAN before unlocking: a block's disk read
 * and its insert are both inside one lock, so no direct write can land in
 * between (the seed race).
 *
 * Direct writes, zeroes and trims hold their lock across their store I/O
 * and update the cache afterwards, still under the lock: on success cached
 * blocks of the range get the new bytes (or are dropped when wholly
 * zeroed or trimmed); on failure the CLEAN blocks of the range are dropped,
 * so the cache never keeps bytes the disk may no longer have.  The edge
 * sectors of an unaligned write are read from the cached block when there
 * is one (it may be DIRTY and newer than the disk), else from the store.
 * A FUA write carries RWF_DSYNC (fua=dsync; under fua=auto, the default,
 * where it allocates nothing); otherwise, and for FUA zeroes and trims,
 * the ordered extent's completion stamp serves group commit: the reply
 * waits, with no lock held, for the first fdatasync that starts after its
 * I/O completed, and concurrent ones share one fdatasync.  Under fua=auto
 * a FUA write that allocates goes to the page cache (route_of), not
 * durable until that fdatasync, so it leaves no CLEAN block holding its
 * bytes: CLEAN blocks of its range are dropped, DIRTY ones take the bytes
 * as dirty bytes (update_cache_unsettled).
 *
 * Cached writes copy into blocks under the lock and mark them DIRTY.  A
 * block a cached write creates is filled (the disk's bytes, then the
 * write's) before it is inserted, since read hits take no lock and would
 * otherwise see the bytes of the block its buffer held before.
 * Writeback locks a run of dirty blocks, adds an ordered extent, marks
 * them WRITEBACK, unlocks, writes, and marks them CLEAN (or DIRTY again on
 * error, which fails every flush that overlapped it: engine_flush).
 * Blocks in WRITEBACK are never written into: every writer's lock_range()
 * waits for that extent first.
 *
 * Memory.  cache_alloc() never sleeps.  When it fails, the caller unlocks
 * its range, makes room with no lock held (writing back a dirty victim, or
 * waiting for a pin to go), keeps the block it got as a spare, and starts
 * over.  So no thread ever waits for writeback while holding a range
 * (invariant 9).
 *
 * Background writeback (engine_writeback_expired and _background, called
 * by the service's worker thread) writes back the block dirtied longest
 * ago and the dirty blocks that follow it, with writeback_run, the path a
 * flush takes, so it needs no coherence argument of its own.  The dirty
 * limit: a cached write that finds more dirty bytes than the limit, before
 * it takes its range, writes back the oldest dirty run itself, or when
 * every dirty block is already in writeback waits for a block to come back
 * (cache_space_wait), until the dirty bytes are below the limit.  It holds
 * no range meanwhile (invariant 9), and doing the writeback itself means it
 * never waits for a writeback nobody runs.  A failed writeback ends the
 * wait: the limit is soft, and cache-size, the hard bound, still holds.
 *
 * A flush writes back only the blocks dirtied before it began, in
 * batches of runs: it takes each run as above, in ascending order, then
 * writes the dirty parts of all of them as one store batch (Linux AIO),
 * then completes them.
 *
 * Lock ordering: a thread holds at most one range; the cache's and the
 * ordered queue's mutexes are leaves taken inside their calls.  A thread
 * taking a batch holds the ordered extents of the runs it has taken while
 * it waits for the next run's range; runs are taken in ascending order, so
 * those waits cannot form a cycle (writeback_runs).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "extent_tree.h"
#include "seqdetect.h"
#include "mode.h"
#include "pacer.h"
#include "flush_progress.h"

/* The largest range block status describes at once. */
#define EXTENTS_MAX (1ULL << 30)
/* Dirty runs written back per eviction under memory pressure. */
#define VICTIM_BLOCKS 16
/* The longest run background writeback writes at once. */
#define WRITEBACK_RUN_BLOCKS 256
/* Consecutive failed block writebacks after which cached writes go to the
 * disk instead (degraded writethrough), until a writeback succeeds. */
#define DEGRADE_AFTER_FAILURES 3
/* The runs, and the blocks in all, a flush writes back as one batch. */
#define WRITEBACK_BATCH_RUNS 64
#define WRITEBACK_BATCH_BLOCKS 256
/* The miss-ratio curve samples every block until its miniature caches
 * outgrow mrc_samples, and at the rate that fits them from there
 * (minisim.h). */
#define MRC_START_RATE 1.0
/* The longest a paced background pass may wait in all (engine.h). */
#define BACKGROUND_PASS_NS 1000000000ULL

struct engine
{
  struct store *st;
  struct extent_tree *locks;
  struct ordered_queue *oq;
  struct cache *cache; /* NULL in mode none */
  struct minisim *mrc;   /* NULL without a cache or a curve */
  struct seqdetect *seq; /* NULL without a cache or a sequential cutoff */
  struct engine_config cfg;
  uint64_t gran; /* lock granularity: the block size or the alignment */
  _Atomic uint64_t cache_size;  /* bytes; changed by engine_set_cache_size */
  _Atomic unsigned dirty_limit; /* percent */
  /* The counters, which every request bumps, on lines of their own: what
   * every request reads above stays in each core's cache. */
  _Alignas (64) _Atomic uint64_t reads, cached_writes, direct_writes,
      fua_writes;
  _Atomic uint64_t zeroes, trims, flushes, prefetches, block_status;
  _Atomic uint64_t writeback_blocks, writeback_errors;
  _Atomic uint64_t lock_waits, recheck_retries, dirty_limit_waits;
  _Atomic uint64_t uncached_reads, degraded_writethrough;
  _Atomic uint64_t seq_bypassed_bytes;
  _Atomic uint64_t writeback_failures; /* block writebacks failed in a row
                                        * (count_failures) */
  _Atomic uint64_t background_writeback_bytes;
  struct pacer *pacer;   /* background writeback's rate; requests in flight */
  struct mode_gate mode; /* writeback or writethrough, switchable */
  struct histogram *latency; /* one per enum engine_latency */
  struct flush_progress flush_progress;
};

static void
bump (_Atomic uint64_t *counter)
{
  atomic_fetch_add_explicit (counter, 1, memory_order_relaxed);
}

static uint64_t
min_u64 (uint64_t a, uint64_t b)
{
  return a < b ? a : b;
}

/* Record the time since START (a cache_clock time) on PATH. */
static void
record_latency (struct engine *e, enum engine_latency path, uint64_t start)
{
  histogram_record (e->latency, path, cache_clock () - start);
}

/* The miss-ratio curve CFG asks for. */
static struct minisim *
new_mrc (const struct engine_config *cfg)
{
  struct minisim_config mc = {
    .capacity = cfg->cache_size / cfg->block_size,
    .max_entries = cfg->mrc_samples,
    .rate = MRC_START_RATE,
    .window = cfg->mrc_window,
  };

  return minisim_new (&mc);
}

struct engine *
engine_new (struct store *st, const struct engine_config *cfg)
{
  struct engine *e = aligned_alloc (_Alignof (struct engine), sizeof *e);

  if (e == NULL)
    return NULL;
  memset (e, 0, sizeof *e);
  e->st = st;
  e->cfg = *cfg;
  e->gran = st->align;
  atomic_init (&e->cache_size, cfg->cache_size);
  atomic_init (&e->dirty_limit, cfg->dirty_limit);
  mode_init (&e->mode, cfg->mode);
  e->locks = extent_tree_new ();
  e->oq = ordered_queue_new ();
  e->pacer = pacer_new (cfg->writeback_rate);
  e->latency = histogram_new (ENGINE_LATENCY_PATHS);
  if (e->locks == NULL || e->oq == NULL || e->pacer == NULL
      || e->latency == NULL)
    goto fail;
  if (extent_tree_reserve (e->locks, cfg->lock_nodes) < 0)
    {
      errno = ENOMEM;
      goto fail;
    }
  if (cfg->mode != ENGINE_CACHE_NONE)
    {
      if (cfg->block_size < st->align)
        {
          errno = EINVAL;
          goto fail;
        }
      e->cache = cache_new (cfg->cache_size, cfg->block_size);
      if (e->cache == NULL)
        goto fail;
      e->gran = cfg->block_size;
      if (cfg->mrc_samples > 0 && (e->mrc = new_mrc (cfg)) == NULL)
        goto fail;
      if (cfg->seq_cutoff && (e->seq = seqdetect_new (cfg->seq_cutoff)) == NULL)
        goto fail;
    }
  return e;

fail:
  {
    int saved = errno;
    if (e->cache)
      cache_free (e->cache);
    if (e->locks)
      extent_tree_free (e->locks);
    if (e->oq)
      ordered_queue_free (e->oq);
    if (e->cache)
      cache_free (e->cache);
    pacer_free (e->pacer);
    histogram_free (e->latency);
    free (e);
    errno = saved;
    return NULL;
  }
}

/* Log each dirty range of the cache (at exit, when a flush keeps
 * failing): what the disk misses. */
static void
log_dirty_ranges (struct engine *e, int err)
{
  struct cache_run runs[WRITEBACK_BATCH_RUNS];
  uint64_t B = e->cfg.block_size, cursor = 0;
  size_t n;

  while ((n = cache_dirty_runs (e->cache, cursor, UINT64_MAX, UINT64_MAX,
                                runs, WRITEBACK_BATCH_RUNS)) > 0)
    {
      for (size_t i = 0; i < n; i++)
        log_printf (e->cfg.log, LOG_LEVEL_ERROR,
                   "dirty data lost at exit: bytes %" PRIu64 " to %" PRIu64
                   " were never written to the disk (%s)",
                   runs[i].start * B,
                   min_u64 ((runs[i].start + runs[i].count) * B, e->st->size)
                       - 1,
                   strerror (-err));
      cursor = runs[n - 1].start + runs[n - 1].count;
    }
}

/* Flush until it succeeds or EXIT_FLUSH_S seconds have passed, waiting
 * 0.1 s, 0.2 s, ... up to 5 s between tries: a disk that is briefly out
 * (a path failing over, space being freed) gets the chance to take the
 * data. */
static int
exit_flush (struct engine *e)
{
  uint64_t deadline = cache_clock () + e->cfg.exit_flush_s * UINT64_C (1000000000);
  useconds_t delay = 100000;
  int r;

  while ((r = engine_flush (e)) < 0 && cache_clock () < deadline)
    {
      /* A latched sync failure means an earlier sync lost data: only an
       * administrator can decide the disk is whole again. */
      if (ordered_sync_failed (e->oq))
        break;
      usleep (delay);
      if (delay < 5000000)
        delay *= 2;
    }
  return r;
}

int
engine_free (struct engine *e)
{
  int r;

  if (e == NULL)
    return 0;
  r = exit_flush (e);
  if (r < 0 && e->cache)
    log_dirty_ranges (e, r);
  if (e->cache)
    cache_free (e->cache);
  minisim_free (e->mrc);
  seqdetect_free (e->seq);
  ordered_queue_free (e->oq);
  extent_tree_free (e->locks);
  pacer_free (e->pacer);
  histogram_free (e->latency);
  store_close (e->st);
  free (e);
  return r;
}

const struct store *
engine_store (const struct engine *e)
{
  return e->st;
}

static void
race_window (struct engine *e)
{
  if (e->cfg.race_window_us)
    usleep (e->cfg.race_window_us);
}

/* [*start, *end) covering [offset, offset+count) rounded out to the lock
 * granularity and clipped to the disk. */
static void
span_of (const struct engine *e, uint64_t offset, uint64_t count,
         uint64_t *start, uint64_t *end)
{
  *start = offset - offset % e->gran;
  *end = offset + count;
  if (*end % e->gran)
    *end += e->gran - *end % e->gran;
  *end = min_u64 (*end, e->st->size);
}

/* Lock [start, end) with no ordered extent in flight on it (design: lock,
 * check, unlock and wait, retry).  The caller must hold no range.  Returns
 * 0, or -ENOMEM when the tree could not record the range: the request then
 * fails, it never runs without its range. */
static int
lock_range (struct engine *e, uint64_t start, uint64_t end)
{
  for (;;)
    {
      int r = extent_trylock (e->locks, start, end - 1);
      if (r == -EBUSY)
        {
          bump (&e->lock_waits);
          r = extent_lock (e->locks, start, end - 1);
        }
      if (r < 0)
        return r;
      if (!ordered_lookup (e->oq, start, end - 1, NULL))
        return 0;
      extent_unlock (e->locks, start, end - 1);
      bump (&e->recheck_retries);
      ordered_wait_range (e->oq, start, end - 1);
    }
}

static void
unlock_range (struct engine *e, uint64_t start, uint64_t end)
{
  extent_unlock (e->locks, start, end - 1);
}

/* Bytes of block BLK that lie inside the disk. */
static uint64_t
block_len (const struct engine *e, uint64_t blk)
{
  return min_u64 (e->cfg.block_size, e->st->size - blk * e->cfg.block_size);
}

/* The sync of group commit.  It runs only while no failure is latched, so
 * each latched failure is logged once. */
static int
sync_store (void *opaque)
{
  struct engine *e = opaque;
  int r = store_sync (e->st);

  if (r < 0)
    log_printf (e->cfg.log, LOG_LEVEL_ERROR,
               "fdatasync of the disk failed: %s; writes since the previous "
               "sync may be lost.  Every flush and FUA request now fails "
               "with EIO until an administrator runs the control command "
               "clear-errors (blkcachectl -s SOCKET clear-errors) or nbdkit "
               "restarts",
               strerror (-r));
  return r;
}

/* Make everything completed up to STAMP durable, sharing the fdatasync
 * with concurrent callers.  The caller holds no range. */
static int
group_commit (struct engine *e, uint64_t stamp)
{
  return ordered_sync (e->oq, stamp, sync_store, e);
}

/* --- writeback ------------------------------------------------------- */

/* Add to IOS (when not NULL) the writes of the parts of block B, in
 * writeback, written since its previous writeback (MASK, from
 * cache_writeback_mask), each run of dirty 1/64ths rounded out to the
 * store's alignment and merged with the previous one where they meet: a
 * 4K write into a 64K block costs a 4K write back, not 64K.  The rest of
 * the block equals the disk.  Returns the number of writes; it takes no
 * lock, so counting first and filling after cost no more than arithmetic. */
static size_t
dirty_parts (struct engine *e, struct cache_block *b, uint64_t mask,
             struct store_io *ios)
{
  uint64_t B = e->cfg.block_size, g = B / 64;
  uint64_t blk = cache_block_number (b), len = block_len (e, blk);
  const char *data = cache_block_data (b);
  uint64_t prev_to = 0;
  size_t n = 0;

  while (mask != 0)
    {
      /* The lowest run of set bits: [i, j). */
      unsigned i = __builtin_ctzll (mask);
      unsigned j = ~mask >> i ? i + __builtin_ctzll (~mask >> i) : 64;
      uint64_t from = store_align_down (e->st, i * g);
      uint64_t to = min_u64 (store_align_up (e->st, j * g), len);
      if (from >= to) /* past the end of the disk's last block */
        break;
      if (n > 0 && from <= prev_to)
        {
          if (ios)
            ios[n - 1].count = to - (ios[n - 1].offset - blk * B);
        }
      else
        {
          if (ios)
            ios[n] = (struct store_io) { .buf = data + from,
                                         .count = to - from,
                                         .offset = blk * B + from };
          n++;
        }
      prev_to = to;
      mask = j < 64 ? mask & (~UINT64_C (0) << j) : 0;
    }
  return n;
}

/* A block taken for writeback: pinned, in WRITEBACK. */
struct wb_block
{
  struct cache_block *b;
  uint64_t mask; /* its cache_writeback_mask */
  size_t nios;   /* its writes in the batch (dirty_parts) */
};

/* A run of blocks taken for writeback. */
struct wb_run
{
  struct wb_block *blocks;
  uint64_t nr;
  struct ordered_extent *oe;
};

/* Take the dirty blocks among FIRST .. FIRST+N-1 for writeback: lock the
 * range (waiting for the ordered extents on it), add an ordered extent
 * over it, mark the blocks WRITEBACK and unlock.  From then on their
 * buffers are stable, since every writer waits for that extent.  The
 * extent is in the queue before any block leaves the dirty index, so a
 * flush either finds a block dirty or waits for its writeback.  Returns 0
 * (with W->nr == 0 when none was dirty any more) or a negative errno. */
static int
writeback_begin (struct engine *e, uint64_t first, uint64_t n,
                 struct wb_run *w)
{
  uint64_t B = e->cfg.block_size;
  uint64_t start = first * B, end = min_u64 ((first + n) * B, e->st->size);
  int r;

  w->nr = 0;
  w->blocks = calloc (n, sizeof *w->blocks);
  if (w->blocks == NULL)
    return -ENOMEM;
  r = lock_range (e, start, end);
  if (r < 0)
    {
      free (w->blocks);
      w->blocks = NULL;
      return r;
    }
  r = ordered_add (e->oq, start, end - 1, ORDERED_WRITEBACK, &w->oe);
  if (r == 0)
    {
      for (uint64_t i = 0; i < n; i++)
        {
          struct cache_block *b = cache_peek (e->cache, first + i);
          if (b == NULL)
            continue;
          if (cache_start_writeback (e->cache, b) == 0)
            w->blocks[w->nr++] = (struct wb_block) {
              .b = b, .mask = cache_writeback_mask (e->cache, b)
            };
          else
            cache_unpin (e->cache, b);
        }
      race_window (e);
      if (w->nr == 0)
        ordered_complete (e->oq, w->oe, 0);
    }
  unlock_range (e, start, end);
  if (w->nr == 0)
    {
      free (w->blocks);
      w->blocks = NULL;
    }
  return r;
}

/* Count a batch's block writebacks for degraded writethrough: FAILED add
 * to the failures in a row, else any block WRITTEN ends them.  Once per
 * batch, and a store only when the count changes, so writebacks that keep
 * succeeding do not write the line every cached write reads. */
static void
count_failures (struct engine *e, uint64_t failed, uint64_t written)
{
  if (failed > 0)
    atomic_fetch_add (&e->writeback_failures, failed);
  else if (written > 0 && atomic_load (&e->writeback_failures) != 0)
    atomic_store (&e->writeback_failures, 0);
}

/* Write back the dirty blocks of the NR RUNS, ascending and disjoint: take
 * them all (writeback_begin), then write all their dirty parts as one
 * store batch, so the disk sees them together, then end each block's
 * writeback and complete each run's extent.  The caller holds no range.
 *
 * While it takes a run this thread holds the extents of the runs before
 * it and may wait for someone else's extent.  Everyone who holds several
 * extents took them in ascending order, and waits only for a range above
 * all of its own, so no cycle of waits can form.
 *
 * Returns 0 or the first error (which the ordered extents also report to
 * every flush running: engine_flush). */
static int
writeback_runs (struct engine *e, const struct cache_run *runs, size_t nr)
{
  struct wb_run *w = calloc (nr, sizeof *w);
  struct store_io *ios = NULL;
  size_t taken, nios = 0;
  uint64_t failed = 0, written = 0;
  int err = 0;

  if (w == NULL)
    return -ENOMEM;
  for (taken = 0; taken < nr && err == 0; taken++)
    err = writeback_begin (e, runs[taken].start, runs[taken].count,
                           &w[taken]);
  for (size_t r = 0; r < taken; r++)
    for (uint64_t i = 0; i < w[r].nr; i++)
      {
        struct wb_block *k = &w[r].blocks[i];
        k->nios = dirty_parts (e, k->b, k->mask, NULL);
        nios += k->nios;
      }
  if (nios > 0)
    {
      ios = calloc (nios, sizeof *ios);
      if (ios != NULL)
        {
          nios = 0;
          for (size_t r = 0; r < taken; r++)
            for (uint64_t i = 0; i < w[r].nr; i++)
              nios += dirty_parts (e, w[r].blocks[i].b, w[r].blocks[i].mask,
                                   ios + nios);
          store_write_batch (e->st, ios, nios);
        }
    }

  /* Each block's writes are consecutive in IOS, in the same order. */
  nios = 0;
  for (size_t r = 0; r < taken; r++)
    {
      int run_err = 0;
      for (uint64_t i = 0; i < w[r].nr; i++)
        {
          struct cache_block *b = w[r].blocks[i].b;
          size_t parts = w[r].blocks[i].nios;
          int res = ios == NULL && parts > 0 ? -ENOMEM : 0;
          for (size_t k = 0; ios && k < parts && res == 0; k++)
            res = ios[nios + k].result;
          nios += parts;
          if (res < 0)
            {
              bump (&e->writeback_errors);
              failed++;
              if (run_err == 0)
                run_err = res;
            }
          else
            {
              bump (&e->writeback_blocks);
              written++;
            }
          cache_end_writeback (e->cache, b, res);
          cache_unpin (e->cache, b);
        }
      if (w[r].nr > 0)
        ordered_complete (e->oq, w[r].oe, run_err);
      if (err == 0)
        err = run_err;
      free (w[r].blocks);
    }
  count_failures (e, failed, written);
  free (ios);
  free (w);
  return err;
}

/* Write back the dirty blocks among FIRST .. FIRST+N-1. */
static int
writeback_run (struct engine *e, uint64_t first, uint64_t n)
{
  struct cache_run run = { .start = first, .count = n };

  return writeback_runs (e, &run, 1);
}

/* Write back every block dirtied at or before DIRTIED_BY (UINT64_MAX for
 * every dirty block), in ascending order, a batch of runs at a time.  The
 * caller holds no range. */
static int
writeback_all (struct engine *e, uint64_t dirtied_by)
{
  struct cache_run runs[WRITEBACK_BATCH_RUNS];
  struct flush_share share;
  uint64_t cursor = 0;
  size_t n;
  int err = 0;

  flush_progress_begin (&e->flush_progress, &share,
                        cache_dirty_bytes (e->cache) / e->cfg.block_size);
  while ((n = cache_dirty_runs (e->cache, cursor, WRITEBACK_BATCH_BLOCKS,
                                dirtied_by, runs, WRITEBACK_BATCH_RUNS)) > 0)
    {
      int r = writeback_runs (e, runs, n);
      if (err == 0)
        err = r;
      cursor = runs[n - 1].start + runs[n - 1].count;
      for (size_t i = 0; i < n; i++)
        flush_progress_advance (&e->flush_progress, &share, runs[i].count);
    }
  flush_progress_end (&e->flush_progress, &share);
  return err;
}

/* Write back the dirty run of at most MAX_BLOCKS that starts at the block
 * dirtied longest ago, if that block was dirtied at or before CUTOFF, and
 * add the run's blocks to *WRITTEN.
 * Returns 1 when it wrote (or the block was written back meanwhile), 0
 * when no dirty block qualifies, or a negative errno.  The caller holds no
 * range.  A block that stays dirty (redirtied, or its write failed) goes
 * to the back of the age list, so repeated calls move on to other
 * blocks. */
static int
writeback_oldest (struct engine *e, uint64_t cutoff, uint64_t max_blocks,
                  uint64_t *written)
{
  uint64_t blk, dirtied_at;
  struct cache_run run;
  int r;

  if (cache_oldest_dirty (e->cache, &blk, &dirtied_at) < 0
      || dirtied_at > cutoff)
    return 0;
  if (cache_dirty_runs (e->cache, blk, max_blocks, UINT64_MAX, &run, 1) == 0)
    return 1;
  r = writeback_run (e, run.start, run.count);
  *written += run.count;
  return r < 0 ? r : 1;
}

static uint64_t
percent_of_cache (struct engine *e, unsigned pct)
{
  return atomic_load (&e->cache_size) * pct / 100;
}

/* The dirty limit (see the top of this file).  A held writer writes back
 * what brings the cache under the limit, in runs of at least VICTIM_BLOCKS
 * blocks, oldest first.  The caller holds no range. */
static void
balance_dirty (struct engine *e)
{
  unsigned pct = atomic_load_explicit (&e->dirty_limit, memory_order_relaxed);
  uint64_t limit = percent_of_cache (e, pct);
  uint64_t dirty;

  if (pct >= 100 || cache_dirty_bytes (e->cache) <= limit)
    return;
  bump (&e->dirty_limit_waits);
  uint64_t start = cache_clock ();
  for (;;)
    {
      uint64_t ticket = cache_space_watch (e->cache);
      uint64_t written = 0;
      int r = 0;
      dirty = cache_dirty_bytes (e->cache);
      if (dirty > limit)
        {
          uint64_t over = (dirty - limit) / e->cfg.block_size + 1;
          r = writeback_oldest (e, UINT64_MAX,
                                over > VICTIM_BLOCKS ? over : VICTIM_BLOCKS,
                                &written);
          if (r == 0) /* every dirty block is in writeback: wait for one */
            cache_space_wait (e->cache, &ticket);
        }
      cache_space_unwatch (e->cache);
      if (r < 0 || cache_dirty_bytes (e->cache) <= limit)
        break;
    }
  record_latency (e, ENGINE_LAT_DIRTY_WAIT, start);
}

/* Get an empty block for the cache, making room if it is full.  The caller
 * holds no range: this may write back dirty blocks or sleep. */
static int
reserve_block (struct engine *e, struct cache_block **bp)
{
  for (;;)
    {
      int r = cache_alloc (e->cache, bp);
      if (r == -ENOSPC)
        {
          uint64_t victim;
          struct cache_run run;
          if (cache_pick_victim (e->cache, &victim) == 0
              && cache_dirty_runs (e->cache, victim, VICTIM_BLOCKS, UINT64_MAX,
                                   &run, 1))
            {
              r = writeback_run (e, run.start, run.count);
              if (r < 0)
                return r;
              continue;
            }
          r = -EAGAIN; /* the dirty ones are in writeback: wait */
        }
      if (r != -EAGAIN)
        return r;
      uint64_t ticket = cache_space_watch (e->cache);
      r = cache_alloc (e->cache, bp);
      if (r == -EAGAIN)
        cache_space_wait (e->cache, &ticket);
      cache_space_unwatch (e->cache);
      if (r == 0)
        return 0;
    }
}

/* Take a block for block BLK: the spare if the caller has one, else a new
 * one if the cache has room.  -EAGAIN means: unlock, reserve_block(), and
 * start over with the spare. */
static int
take_block (struct engine *e, struct cache_block **spare,
            struct cache_block **bp)
{
  if (*spare)
    {
      *bp = *spare;
      *spare = NULL;
      return 0;
    }
  int r = cache_alloc (e->cache, bp);
  return r == -ENOSPC ? -EAGAIN : r;
}

/* The cache had no room for block BLK while the caller held [*START, END)
 * (if LOCKED): unlock, make room holding no range (the block obtained goes
 * to *SPARE), and move the caller's loop on to start at BLK.  Returns 0 to
 * lock again and go on, or a negative errno. */
static int
make_room (struct engine *e, struct cache_block **spare, bool locked,
           uint64_t blk, uint64_t *first, uint64_t *start, uint64_t end)
{
  if (locked)
    unlock_range (e, *start, end);
  *first = blk;
  *start = blk * e->cfg.block_size;
  return reserve_block (e, spare);
}

/* Insert B, just filled from the store, as block BLK; returns the pinned
 * block now cached for BLK (B, or one someone else inserted first). */
static struct cache_block *
insert_block (struct engine *e, struct cache_block *b, uint64_t blk)
{
  struct cache_block *existing;

  if (cache_insert (e->cache, b, blk, &existing) == -EEXIST)
    return existing;
  return b;
}

/* --- read ------------------------------------------------------------ */

/* Copy [offset, offset+count) of pinned block B's data out to OUT (if
 * any).  Without the shard lock: the caller holds B's range, which keeps
 * out every writer of an inserted block (cache_write, cache_update). */
static void
copy_out (struct engine *e, struct cache_block *b, char *out, uint64_t offset,
          uint64_t count)
{
  if (out)
    memcpy (out, (char *) cache_block_data (b)
                     + offset % e->cfg.block_size, count);
}

/* Read the part of [offset, offset+count) in blocks FIRST..LAST to OUT
 * without filling the cache: under the blocks' range, each cached block
 * (maybe DIRTY, newer than the disk) is copied out and the others are read
 * from the store. */
static int
read_around (struct engine *e, char *out, uint64_t offset, uint64_t count,
             uint64_t first, uint64_t last)
{
  uint64_t B = e->cfg.block_size;
  uint64_t start = first * B, end = min_u64 ((last + 1) * B, e->st->size);
  int r;

  r = lock_range (e, start, end);
  if (r < 0)
    return r;
  for (uint64_t blk = first; blk <= last && r == 0; blk++)
    {
      uint64_t bstart = blk * B;
      uint64_t from = offset > bstart ? offset : bstart;
      uint64_t to = min_u64 (offset + count, bstart + B);
      struct cache_block *b = cache_peek (e->cache, blk);
      if (b)
        {
          copy_out (e, b, out + (from - offset), from, to - from);
          cache_unpin (e->cache, b);
        }
      else
        r = store_read (e->st, out + (from - offset), to - from, from);
    }
  unlock_range (e, start, end);
  return r;
}

/* read_around, when the cache has no room to give (its blocks are dirty
 * and their writeback fails), so a read never fails because writeback
 * does.  OUT NULL (a prefetch) reads nothing. */
static int
read_uncached (struct engine *e, char *out, uint64_t offset, uint64_t count,
               uint64_t first, uint64_t last)
{
  bump (&e->uncached_reads);
  if (out == NULL)
    return 0;
  return read_around (e, out, offset, count, first, last);
}

/* read_around for a read past the sequential cutoff (seqdetect.h): the
 * stream is not kept, so it does not push the hot blocks out. */
static int
read_bypass (struct engine *e, char *out, uint64_t offset, uint64_t count,
             uint64_t first, uint64_t last)
{
  uint64_t B = e->cfg.block_size;
  uint64_t from = offset > first * B ? offset : first * B;
  uint64_t to = min_u64 (offset + count, (last + 1) * B);

  atomic_fetch_add_explicit (&e->seq_bypassed_bytes, to - from,
                             memory_order_relaxed);
  return read_around (e, out, offset, count, first, last);
}

/* Fill the missing blocks FIRST..LAST from the store and copy the part of
 * [offset, offset+count) they hold to OUT.  Design: read miss. */
static int
read_miss (struct engine *e, char *out, uint64_t offset, uint64_t count,
           uint64_t first, uint64_t last)
{
  uint64_t B = e->cfg.block_size;
  uint64_t start = first * B, end = min_u64 ((last + 1) * B, e->st->size);
  struct cache_block *spare = NULL;
  int r = 0;

again:
  if (!e->cfg.skip_recheck && (r = lock_range (e, start, end)) < 0)
    goto out;
  for (uint64_t blk = first; blk <= last; blk++)
    {
      uint64_t bstart = blk * B;
      uint64_t from = offset > bstart ? offset : bstart;
      uint64_t to = min_u64 (offset + count, bstart + B);
      struct cache_block *b = cache_peek (e->cache, blk);
      if (b == NULL)
        {
          r = take_block (e, &spare, &b);
          if (r == -EAGAIN)
            {
              r = make_room (e, &spare, !e->cfg.skip_recheck, blk, &first,
                             &start, end);
              if (r < 0)
                return read_uncached (e, out, offset, count, blk, last);
              goto again;
            }
          if (r < 0)
            break;
          r = store_read (e->st, cache_block_data (b), block_len (e, blk),
                          bstart);
          if (r < 0)
            {
              cache_discard (e->cache, b); /* invariant 7 */
              break;
            }
          race_window (e);
          b = insert_block (e, b, blk);
        }
      copy_out (e, b, out ? out + (from - offset) : NULL, from, to - from);
      cache_unpin (e->cache, b);
    }
  if (!e->cfg.skip_recheck)
    unlock_range (e, start, end);
out:
  if (spare)
    cache_discard (e->cache, spare);
  return r;
}

/* Copy the part of [offset, offset+count) in block BLK to OUT (if any)
 * if the block is cached; false on a miss. */
static bool
read_hit (struct engine *e, char *out, uint64_t offset, uint64_t count,
          uint64_t blk)
{
  uint64_t B = e->cfg.block_size;
  uint64_t bstart = blk * B;
  uint64_t from = offset > bstart ? offset : bstart;
  uint64_t to = min_u64 (offset + count, bstart + B);

  return cache_read (e->cache, blk, out ? out + (from - offset) : NULL,
                     from - bstart, to - from);
}

/* Read through the cache; OUT NULL only prefetches.  With BYPASS, misses
 * are read around the cache (read_bypass) when SEQ, a client's read, is
 * past the sequential cutoff.  The detector is asked at the first miss
 * only: a read the cache serves whole takes no lock of its own (and does
 * not count in a stream).  *MISSED (false on entry) is set when some block
 * was not cached. */
static int
cached_read (struct engine *e, char *out, uint64_t count, uint64_t offset,
             bool seq, bool *missed)
{
  uint64_t B = e->cfg.block_size;
  uint64_t last = (offset + count - 1) / B;
  bool bypass = false;

  for (uint64_t blk = offset / B; blk <= last;)
    {
      if (read_hit (e, out, offset, count, blk))
        {
          blk++;
          continue;
        }
      /* A run of misses, filled under one lock; the hit that ends it (if
       * any) is copied already. */
      uint64_t run_last = blk;
      bool hit_after = false;
      while (run_last < last
             && !(hit_after = read_hit (e, out, offset, count, run_last + 1)))
        run_last++;
      if (!*missed)
        bypass = seq && e->seq && seqdetect_read (e->seq, offset, count);
      *missed = true;
      int r = bypass ? read_bypass (e, out, offset, count, blk, run_last)
                     : read_miss (e, out, offset, count, blk, run_last);
      if (r < 0)
        return r;
      blk = run_last + 1 + hit_after;
    }
  return 0;
}

int
engine_read (struct engine *e, void *buf, uint32_t count, uint64_t offset)
{
  uint64_t start = cache_clock ();
  bool missed = true; /* without a cache, every read goes to the disk */
  int r;

  if (count == 0)
    return 0;
  bump (&e->reads);
  pacer_request_begin (e->pacer);
  if (e->cache == NULL)
    r = store_read (e->st, buf, count, offset);
  else
    {
      uint64_t B = e->cfg.block_size;
      missed = false;
      if (e->mrc)
        minisim_access (e->mrc, offset / B,
                        (offset + count - 1) / B - offset / B + 1);
      r = cached_read (e, buf, count, offset, true, &missed);
    }
  pacer_request_end (e->pacer);
  record_latency (e, missed ? ENGINE_LAT_READ_MISS : ENGINE_LAT_READ_HIT,
                  start);
  return r;
}

int
engine_cache (struct engine *e, uint32_t count, uint64_t offset)
{
  bool missed = false;

  if (count == 0)
    return 0;
  bump (&e->prefetches);
  if (e->cache == NULL)
    return store_prefetch (e->st, offset, count);
  return cached_read (e, NULL, count, offset, false, &missed);
}

int
engine_prewarm (struct engine *e, uint64_t count, uint64_t offset)
{
  uint64_t B = e->cfg.block_size;

  if (e->cache == NULL)
    return -ENOTSUP;
  if (offset >= e->st->size)
    return 0;
  count = min_u64 (count, e->st->size - offset);
  for (uint64_t blk = offset / B; blk <= (offset + count - 1) / B; blk++)
    {
      struct cache_block *b = cache_peek (e->cache, blk);
      if (b)
        {
          cache_unpin (e->cache, b);
          continue;
        }
      int r = read_miss (e, NULL, blk * B, block_len (e, blk), blk, blk);
      if (r < 0)
        return r;
    }
  return 0;
}

uint64_t
engine_requests (struct engine *e)
{
  return atomic_load_explicit (&e->reads, memory_order_relaxed)
         + atomic_load_explicit (&e->cached_writes, memory_order_relaxed)
         + atomic_load_explicit (&e->direct_writes, memory_order_relaxed)
         + atomic_load_explicit (&e->zeroes, memory_order_relaxed)
         + atomic_load_explicit (&e->trims, memory_order_relaxed)
         + atomic_load_explicit (&e->flushes, memory_order_relaxed);
}

size_t
engine_hot_blocks (struct engine *e, struct cache_block_rank *out, size_t max)
{
  return e->cache ? cache_list_blocks (e->cache, out, max) : 0;
}

/* --- direct writes --------------------------------------------------- */

/* Read the store-aligned sector range [start, end) that an unaligned write
 * merges into: from the cached block when there is one (it holds the
 * newest bytes, maybe dirty ones), else from the store.  The caller holds
 * the range. */
static int
read_edge (struct engine *e, char *buf, uint64_t end, uint64_t start)
{
  if (e->cache)
    {
      uint64_t B = e->cfg.block_size;
      struct cache_block *b = cache_peek (e->cache, start / B);
      if (b)
        {
          /* Sectors never straddle blocks: B is a multiple of the
           * alignment. */
          memcpy (buf, (char *) cache_block_data (b) + start % B,
                  end - start);
          cache_unpin (e->cache, b);
          return 0;
        }
    }
  return store_read (e->st, buf, end - start, start);
}

/* Write [offset, offset+count) to the store where the range may be
 * unaligned; the caller holds the range.  The aligned middle goes straight
 * from BUF; the unaligned edge sectors are read, merged and written. */
static int
write_store (struct engine *e, const char *buf, uint64_t count,
             uint64_t offset, bool fua)
{
  struct store *st = e->st;
  uint64_t start = store_align_down (st, offset);
  uint64_t end = min_u64 (store_align_up (st, offset + count), st->size);
  int r;

  if (start == offset && end == offset + count)
    return store_write (st, buf, count, offset, fua);

  /* Short: build the whole span in one bounce buffer, one write. */
  if (end - start <= 1024 * 1024)
    {
      char *bounce = store_alloc_buffer (st, end - start);
      if (bounce == NULL)
        return -errno;
      uint64_t head_end = min_u64 (start + st->align, end);
      uint64_t tail = store_align_down (st, offset + count);
      r = 0;
      if (offset != start)
        r = read_edge (e, bounce, head_end, start);
      if (r == 0 && offset + count != end)
        r = read_edge (e, bounce + (tail - start), end, tail);
      if (r == 0)
        {
          memcpy (bounce + (offset - start), buf, count);
          r = store_write (st, bounce, end - start, start, fua);
        }
      free (bounce);
      return r;
    }

  /* Long: head sector, aligned middle, tail sector. */
  uint64_t head_end = store_align_up (st, offset);
  if (head_end != offset)
    {
      r = write_store (e, buf, head_end - offset, offset, fua);
      if (r < 0)
        return r;
      buf += head_end - offset;
      count -= head_end - offset;
      offset = head_end;
    }
  uint64_t mid = offset + count == st->size
                     ? count
                     : store_align_down (st, offset + count) - offset;
  if (mid > 0)
    {
      r = store_write (st, buf, mid, offset, fua);
      if (r < 0)
        return r;
    }
  if (mid < count)
    return write_store (e, buf + mid, count - mid, offset + mid, fua);
  return 0;
}

/* After a successful direct I/O on [offset, offset+count) (the caller holds
 * the range): cached blocks get the new bytes, DATA, or zeroes when DATA is
 * NULL; wholly zeroed blocks are dropped instead, dirty or not, as the
 * store now has their bytes. */
static void
update_cache (struct engine *e, const char *data, uint64_t count,
              uint64_t offset)
{
  uint64_t B = e->cfg.block_size;
  uint64_t last = (offset + count - 1) / B;

  for (uint64_t blk = offset / B; blk <= last; blk++)
    {
      uint64_t bstart = blk * B;
      uint64_t from = offset > bstart ? offset : bstart;
      uint64_t to = min_u64 (offset + count, bstart + B);
      if (data == NULL && from == bstart && to == bstart + block_len (e, blk))
        {
          cache_drop_range (e->cache, blk, blk, true);
          continue;
        }
      cache_update (e->cache, blk, data ? data + (from - offset) : NULL,
                    from - bstart, to - from);
    }
}

/* After a failed direct I/O on [offset, offset+count), store-aligned (the
 * caller holds the range): drop the CLEAN blocks of the range, whose bytes
 * the disk may no longer match.  DIRTY ones are kept (invariant 3), with
 * the range added to their dirty parts: the failed write may have changed
 * those bytes on the disk, so the next writeback must put them back. */
static void
invalidate_cache (struct engine *e, uint64_t count, uint64_t offset)
{
  uint64_t B = e->cfg.block_size;
  uint64_t first = offset / B, last = (offset + count - 1) / B;

  if (cache_drop_range (e->cache, first, last, false) == 0)
    return;
  for (uint64_t blk = first; blk <= last; blk++)
    {
      struct cache_block *b = cache_peek (e->cache, blk);
      if (b == NULL)
        continue;
      uint64_t bstart = blk * B;
      uint64_t from = offset > bstart ? offset - bstart : 0;
      uint64_t to = min_u64 (offset + count - bstart, block_len (e, blk));
      cache_mark_dirty_range (e->cache, b, from, to);
      cache_unpin (e->cache, b);
    }
}

/* The common shell of every direct operation: lock, record an ordered
 * extent, do the I/O under the lock, update or invalidate the cache,
 * unlock, and for FUA wait for a shared fdatasync. */
enum direct_op
{
  DIRECT_WRITE,
  DIRECT_ZERO,
  DIRECT_TRIM,
};

struct direct_req
{
  enum direct_op op;
  const char *data;  /* DIRECT_WRITE */
  uint64_t count, offset;
  bool may_trim, fast, fua;
};

/* Write zeroes over [from, to), part of a request's range, which the
 * caller holds. */
static int
write_zeroes (struct engine *e, uint64_t from, uint64_t to)
{
  char *zeroes;
  int r;

  if (from >= to)
    return 0;
  zeroes = calloc (1, to - from);
  if (zeroes == NULL)
    return -ENOMEM;
  r = write_store (e, zeroes, to - from, from, false);
  free (zeroes);
  return r;
}

/* The store-aligned interior [*MID_START, *MID_END) of a request's range,
 * which the disk's end closes even when unaligned; empty (both at the
 * request's end) when the range lies within one sector. */
static void
aligned_interior (const struct engine *e, const struct direct_req *q,
                  uint64_t *mid_start, uint64_t *mid_end)
{
  uint64_t end = q->offset + q->count;

  *mid_start = store_align_up (e->st, q->offset);
  *mid_end = end == e->st->size ? end : store_align_down (e->st, end);
  if (*mid_start >= *mid_end)
    *mid_start = *mid_end = end;
}

/* Zero [offset, offset+count) on the store: edges by read-modify-write,
 * the aligned middle by store_zero.  The caller holds the range. */
static int
zero_store (struct engine *e, const struct direct_req *q)
{
  uint64_t mid_start, mid_end;
  int r;

  aligned_interior (e, q, &mid_start, &mid_end);
  r = write_zeroes (e, q->offset, mid_start);
  if (r == 0 && mid_end > mid_start)
    r = store_zero (e->st, mid_end - mid_start, mid_start, q->may_trim,
                    q->fast, false);
  if (r == 0)
    r = write_zeroes (e, mid_end, q->offset + q->count);
  return r;
}

/* Trim the request: discard its store-aligned interior, and write zeroes
 * over the partial sectors at either end, so the whole range reads back as
 * zeroes, as a punched hole does.  When the disk ignores discards
 * (-EOPNOTSUPP from the store) nothing is changed, the ends neither: the
 * range keeps its old bytes, which a trim allows, and *FROM == *TO tells
 * the caller to leave the cache alone too.  Otherwise [*FROM, *TO) is the
 * range now zero.  The caller holds the range. */
static int
trim_store (struct engine *e, const struct direct_req *q, uint64_t *from,
            uint64_t *to)
{
  struct store *st = e->st;
  uint64_t end = q->offset + q->count;
  uint64_t mid_start, mid_end;
  int r = 0;

  *from = *to = q->offset;
  aligned_interior (e, q, &mid_start, &mid_end);
  if (mid_start < mid_end)
    r = store_trim (st, mid_end - mid_start, mid_start, false);
  else if (!st->is_block && !st->can_punch)
    r = -EOPNOTSUPP;
  if (r == -EOPNOTSUPP)
    return 0;
  if (r == 0)
    r = write_zeroes (e, q->offset, mid_start);
  if (r == 0)
    r = write_zeroes (e, mid_end, end);
  if (r == 0)
    *to = end;
  return r;
}

/* How a direct write reaches the disk. */
enum route
{
  ROUTE_PLAIN,      /* store_write; a FUA one is made durable by group
                     * commit */
  ROUTE_DSYNC,      /* store_write with RWF_DSYNC: durable on return */
  ROUTE_PAGE_CACHE, /* store_write_unsettled, made durable by group
                     * commit */
};

/* The route of the direct I/O Q.  Only a FUA write leaves ROUTE_PLAIN, and
 * never while a sync failure is latched: group commit then fails it, as
 * rule 2 wants.  Under fua=auto a write that allocates nothing carries
 * RWF_DSYNC.  One that allocates needs a journal commit, which the
 * filesystem runs inside an RWF_DSYNC write, and an O_DIRECT write that
 * allocates takes the file's lock alone, one write at a time; through the
 * page cache, writes that allocate take it only for a copy, and group
 * commit shares one fdatasync (and its journal commit) among all the
 * writes waiting (server/README, FUA).  The caller holds the range, so no
 * trim can punch a hole in it after the look. */
static enum route
route_of (struct engine *e, const struct direct_req *q)
{
  if (!q->fua || q->op != DIRECT_WRITE || e->cfg.fua == ENGINE_FUA_GROUP
      || ordered_sync_failed (e->oq))
    return ROUTE_PLAIN;
  if (e->cfg.fua == ENGINE_FUA_DSYNC
      || store_allocated (e->st, q->offset, q->count))
    return ROUTE_DSYNC;
  return e->st->direct ? ROUTE_PAGE_CACHE : ROUTE_PLAIN;
}

/* After a write of [offset, offset+count) to the page cache, not durable
 * yet (ROUTE_PAGE_CACHE; the caller holds the range): the CLEAN blocks of
 * the range are dropped, since a failed writeback of the page cache would
 * leave the disk older than they are; DIRTY ones take the bytes as dirty
 * bytes, so that their own writeback puts them on the disk whatever
 * becomes of the page cache. */
static void
update_cache_unsettled (struct engine *e, const char *data, uint64_t count,
                        uint64_t offset)
{
  uint64_t B = e->cfg.block_size;
  uint64_t last = (offset + count - 1) / B;

  if (cache_drop_range (e->cache, offset / B, last, false) == 0)
    return;
  for (uint64_t blk = offset / B; blk <= last; blk++)
    {
      uint64_t bstart = blk * B;
      uint64_t from = offset > bstart ? offset : bstart;
      uint64_t to = min_u64 (offset + count, bstart + B);
      cache_write (e->cache, blk, data + (from - offset), from - bstart,
                   to - from);
    }
}

static int
direct_io (struct engine *e, const struct direct_req *q)
{
  struct ordered_extent *oe;
  uint64_t start, end, stamp;
  uint64_t from = q->offset, to = q->offset + q->count;
  enum route route;
  enum ordered_kind kind = q->op == DIRECT_WRITE ? ORDERED_DIRECT_WRITE
                           : q->op == DIRECT_ZERO ? ORDERED_ZERO
                                                  : ORDERED_TRIM;
  int r;

  /* Only the sectors the I/O touches: a read miss or a cached write locks
   * the whole block, so it still excludes this I/O, while direct I/Os on
   * disjoint sectors of one block run at once (each updates its own bytes
   * of a cached block). */
  start = store_align_down (e->st, q->offset);
  end = min_u64 (store_align_up (e->st, q->offset + q->count), e->st->size);
  r = lock_range (e, start, end);
  if (r < 0)
    return r;
  r = ordered_add (e->oq, start, end - 1, kind, &oe);
  if (r < 0)
    {
      unlock_range (e, start, end);
      return r;
    }
  race_window (e);
  route = route_of (e, q);
  switch (q->op)
    {
    case DIRECT_WRITE:
      r = route == ROUTE_PAGE_CACHE
              ? store_write_unsettled (e->st, q->data, q->count, q->offset)
              : write_store (e, q->data, q->count, q->offset,
                             route == ROUTE_DSYNC);
      break;
    case DIRECT_ZERO:
      r = zero_store (e, q);
      break;
    case DIRECT_TRIM:
      r = trim_store (e, q, &from, &to);
      break;
    }
  if (e->cache && r == 0 && route == ROUTE_PAGE_CACHE)
    update_cache_unsettled (e, q->data, q->count, q->offset);
  else if (e->cache && r == 0 && from < to)
    update_cache (e, q->op == DIRECT_WRITE ? q->data : NULL, to - from, from);
  else if (e->cache && r < 0)
    invalidate_cache (e, end - start, start);
  stamp = ordered_complete (e->oq, oe, r);
  unlock_range (e, start, end);
  if (r == 0 && q->fua && route != ROUTE_DSYNC)
    r = group_commit (e, stamp);
  if (r == 0 && route == ROUTE_PAGE_CACHE)
    store_drop_page_cache (e->st, q->offset, q->count);
  return r;
}

/* --- cached writes --------------------------------------------------- */

/* Copy COUNT bytes from SRC into block B, not inserted yet, at disk offset
 * FROM (inside the block); an inserted block is written by cache_write. */
static void
copy_in (struct engine *e, struct cache_block *b, const char *src,
         uint64_t from, uint64_t count)
{
  memcpy ((char *) cache_block_data (b) + from % e->cfg.block_size, src,
          count);
}

/* Copy [offset, offset+count) from BUF into the cache as dirty blocks.
 * Design: cached write. */
static int
cached_write (struct engine *e, const char *buf, uint64_t count,
              uint64_t offset)
{
  uint64_t B = e->cfg.block_size;
  uint64_t first = offset / B, last = (offset + count - 1) / B;
  uint64_t start, end;
  struct cache_block *spare = NULL;
  int r = 0;

  span_of (e, offset, count, &start, &end);
  balance_dirty (e);
again:
  r = lock_range (e, start, end);
  if (r < 0)
    goto out;
  for (uint64_t blk = first; blk <= last; blk++)
    {
      uint64_t bstart = blk * B;
      uint64_t from = offset > bstart ? offset : bstart;
      uint64_t to = min_u64 (offset + count, bstart + B);
      const char *src = buf + (from - offset);
      r = cache_write (e->cache, blk, src, from - bstart, to - from);
      if (r < 0)
        break;
      if (r == 1)
        {
          r = 0;
          continue;
        }
      struct cache_block *b;
      r = take_block (e, &spare, &b);
      if (r == -EAGAIN)
        {
          /* Blocks before BLK hold the new bytes already, as a write
           * in flight may show; go on from BLK once there is room
           * (starting over could need more blocks than the cache has). */
          r = make_room (e, &spare, true, blk, &first, &start, end);
          if (r < 0)
            return r;
          goto again;
        }
      if (r < 0)
        break;
      /* Read hits take no range lock, so a block must hold all its
       * bytes before it is inserted: the disk's where this write does
       * not cover it, then the write's.  (A new block's buffer holds
       * whatever block used it last.) */
      if (to - from != block_len (e, blk))
        {
          r = store_read (e->st, cache_block_data (b), block_len (e, blk),
                          bstart);
          if (r < 0)
            {
              cache_discard (e->cache, b);
              break;
            }
        }
      copy_in (e, b, src, from, to - from);
      struct cache_block *inserted = insert_block (e, b, blk);
      if (inserted == b)
        r = cache_mark_dirty_range (e->cache, b, from - bstart, to - bstart);
      else if (cache_write (e->cache, blk, src, from - bstart, to - from) < 0)
        r = -EINVAL; /* (only without the recheck, a debug mode) */
      cache_unpin (e->cache, inserted);
      if (r < 0)
        break;
    }
  unlock_range (e, start, end);
out:
  if (spare)
    cache_discard (e->cache, spare);
  return r;
}

static int
write_request (struct engine *e, const void *buf, uint32_t count,
               uint64_t offset, bool fua)
{
  uint64_t start = cache_clock ();
  int r;

  if (fua)
    bump (&e->fua_writes);
  if (!fua && mode_write_begin (&e->mode))
    {
      /* After repeated writeback failures a cached write would only add
       * dirty data that cannot be written: it goes to the disk, and its
       * writer gets the disk's answer. */
      if (atomic_load_explicit (&e->writeback_failures, memory_order_relaxed)
          < DEGRADE_AFTER_FAILURES)
        {
          bump (&e->cached_writes);
          r = cached_write (e, buf, count, offset);
          mode_write_end (&e->mode);
          record_latency (e, ENGINE_LAT_CACHED_WRITE, start);
          return r;
        }
      mode_write_end (&e->mode);
      bump (&e->degraded_writethrough);
    }
  bump (&e->direct_writes);
  struct direct_req q = { .op = DIRECT_WRITE, .data = buf, .count = count,
                          .offset = offset, .fua = fua };
  r = direct_io (e, &q);
  record_latency (e, fua ? ENGINE_LAT_FUA_WRITE : ENGINE_LAT_DIRECT_WRITE,
                  start);
  return r;
}

int
engine_write (struct engine *e, const void *buf, uint32_t count,
              uint64_t offset, bool fua)
{
  int r;

  if (count == 0)
    return 0;
  pacer_request_begin (e->pacer);
  r = write_request (e, buf, count, offset, fua);
  pacer_request_end (e->pacer);
  return r;
}

int
engine_zero (struct engine *e, uint32_t count, uint64_t offset,
             bool may_trim, bool fast, bool fua)
{
  struct store *st = e->st;
  uint64_t end = offset + count;

  if (count == 0)
    return 0;
  bump (&e->zeroes);
  /* A fast zero must not write edges: refuse unaligned ones up front. */
  if (fast
      && (offset % st->align
          || (end % st->align && end != st->size)))
    return -ENOTSUP;
  struct direct_req q = { .op = DIRECT_ZERO, .count = count, .offset = offset,
                          .may_trim = may_trim, .fast = fast, .fua = fua };
  pacer_request_begin (e->pacer);
  int r = direct_io (e, &q);
  pacer_request_end (e->pacer);
  return r;
}

int
engine_trim (struct engine *e, uint32_t count, uint64_t offset, bool fua)
{
  if (count == 0)
    return 0;
  bump (&e->trims);
  struct direct_req q = { .op = DIRECT_TRIM, .count = count, .offset = offset,
                          .fua = fua };
  pacer_request_begin (e->pacer);
  int r = direct_io (e, &q);
  pacer_request_end (e->pacer);
  return r;
}

/* Rule: a flush succeeds only if every write acknowledged before it began
 * is on stable storage.  It samples the writeback error sequence before it
 * lists the dirty blocks.  A writeback that fails puts its blocks back in
 * the dirty index (keeping their dirtied-at time) before it completes its
 * ordered extent, which advances the sequence.  So a failure either came
 * before the sample, and this flush lists the block and writes it again,
 * or after it, and this flush fails: whoever ran the failed writeback
 * (another flush, background writeback, the control socket), every flush
 * that overlapped it hears of it. */
int
engine_flush (struct engine *e)
{
  uint64_t start = cache_clock ();
  uint64_t seq = ordered_error_seq (e->oq);
  int wb = 0, r, r2;

  bump (&e->flushes);
  /* Its own writeback's error too: one that stopped a batch before its
   * extents were added (ENOMEM) is not in the queue. */
  if (e->cache)
    wb = writeback_all (e, cache_clock ());
  ordered_wait_all (e->oq);
  r = ordered_check_error (e->oq, seq);
  r2 = e->cfg.flush_skip_sync ? 0 : group_commit (e, ordered_stamp (e->oq));
  record_latency (e, ENGINE_LAT_FLUSH, start);
  return wb < 0 ? wb : r < 0 ? r : r2;
}

/* --- block status ---------------------------------------------------- */

struct extents_ctx
{
  struct engine *e;
  store_extent_fn add;
  void *opaque;
};

/* Report a store extent, turning dirty blocks inside a hole into data. */
static int
overlay_dirty (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct extents_ctx *x = opaque;
  struct engine *e = x->e;
  uint64_t B = e->cfg.block_size;
  uint64_t end = offset + length;

  if (!hole || e->cache == NULL)
    return x->add (x->opaque, offset, length, hole);
  while (offset < end)
    {
      struct cache_run run;
      uint64_t first = offset / B;
      if (cache_dirty_runs (e->cache, first, UINT64_MAX, UINT64_MAX, &run, 1) == 0
          || run.start * B >= end)
        return x->add (x->opaque, offset, end - offset, true);
      uint64_t dstart = run.start * B > offset ? run.start * B : offset;
      uint64_t dend = min_u64 ((run.start + run.count) * B, end);
      int r = 0;
      if (dstart > offset)
        r = x->add (x->opaque, offset, dstart - offset, true);
      if (r == 0)
        r = x->add (x->opaque, dstart, dend - dstart, false);
      if (r)
        return r;
      offset = dend;
    }
  return 0;
}

/* Computed under the range lock, after the ordered extents of the range
 * have completed: the store then has every write not still dirty in the
 * cache, and dirty blocks cannot change until we unlock (invariant 6). */
int
engine_extents (struct engine *e, uint32_t count, uint64_t offset,
                store_extent_fn add, void *opaque)
{
  struct extents_ctx x = { .e = e, .add = add, .opaque = opaque };
  uint64_t len = min_u64 (count, EXTENTS_MAX);
  uint64_t start, end;
  int r;

  if (count == 0)
    return 0;
  bump (&e->block_status);
  span_of (e, offset, len, &start, &end);
  r = lock_range (e, start, end);
  if (r < 0)
    return r;
  r = store_extents (e->st, offset, len, overlay_dirty, &x);
  unlock_range (e, start, end);
  return r;
}

void
engine_get_stats (struct engine *e, struct engine_stats *s)
{
  memset (s, 0, sizeof *s);
  if (e->cache)
    cache_get_stats (e->cache, &s->cache);
  if (e->mrc)
    minisim_get_stats (e->mrc, &s->mrc);
  ordered_get_stats (e->oq, &s->ordered);
  s->cache_size = atomic_load (&e->cache_size);
  s->block_size = e->cache ? e->cfg.block_size : 0;
  s->dirty_limit = atomic_load (&e->dirty_limit);
  s->reads = atomic_load (&e->reads);
  s->cached_writes = atomic_load (&e->cached_writes);
  s->direct_writes = atomic_load (&e->direct_writes);
  s->fua_writes = atomic_load (&e->fua_writes);
  s->zeroes = atomic_load (&e->zeroes);
  s->trims = atomic_load (&e->trims);
  s->flushes = atomic_load (&e->flushes);
  s->prefetches = atomic_load (&e->prefetches);
  s->block_status = atomic_load (&e->block_status);
  s->writeback_blocks = atomic_load (&e->writeback_blocks);
  s->writeback_errors = atomic_load (&e->writeback_errors);
  s->lock_waits = atomic_load (&e->lock_waits);
  s->recheck_retries = atomic_load (&e->recheck_retries);
  s->dirty_limit_waits = atomic_load (&e->dirty_limit_waits);
  s->uncached_reads = atomic_load (&e->uncached_reads);
  s->degraded_writethrough = atomic_load (&e->degraded_writethrough);
  s->seq_cutoff = e->seq ? e->cfg.seq_cutoff : 0;
  s->seq_bypassed_bytes = atomic_load (&e->seq_bypassed_bytes);
  s->cache_mode = mode_get (&e->mode);
  s->background_writeback_bytes
      = atomic_load (&e->background_writeback_bytes);
  struct pacer_stats ps;
  pacer_get_stats (e->pacer, &ps);
  s->writeback_rate = ps.rate;
  s->writeback_yields = ps.yields;
  s->writeback_throttles = ps.throttles;
  s->flush_blocks_left = flush_progress_left (&e->flush_progress);
}

void
engine_get_latency (struct engine *e,
                    struct histogram_snapshot snaps[ENGINE_LATENCY_PATHS])
{
  for (size_t path = 0; path < ENGINE_LATENCY_PATHS; path++)
    histogram_read (e->latency, path, &snaps[path]);
}

/* --- background writeback and administration ------------------------- */

bool
engine_has_expired (struct engine *e, uint64_t now, uint64_t max_age)
{
  uint64_t blk, dirtied_at;

  return e->cache && cache_oldest_dirty (e->cache, &blk, &dirtied_at) == 0
         && dirtied_at <= now - min_u64 (max_age, now);
}

bool
engine_above_dirty (struct engine *e, unsigned pct)
{
  return e->cache && cache_dirty_bytes (e->cache) > percent_of_cache (e, pct);
}

/* One step of background writeback: wait for the pacer (yielding to
 * client requests unless dirty bytes are above the dirty limit), then
 * write back the oldest dirty run dirtied at or before CUTOFF, at most a
 * pacer step long, timed when it wrote, and charge it.  Returns as
 * writeback_oldest, or 0 when the pass has waited until DEADLINE. */
static int
background_step (struct engine *e, uint64_t cutoff, uint64_t deadline)
{
  uint64_t B = e->cfg.block_size;
  uint64_t step = pacer_step_bytes (e->pacer) / B;
  unsigned pct = atomic_load_explicit (&e->dirty_limit, memory_order_relaxed);
  bool forced = cache_dirty_bytes (e->cache) > percent_of_cache (e, pct);
  uint64_t written = 0;
  int r;

  if (pacer_wait (e->pacer, !forced, deadline) < 0)
    return 0;
  step = step == 0 ? 1 : min_u64 (step, WRITEBACK_RUN_BLOCKS);
  uint64_t start = cache_clock ();
  r = writeback_oldest (e, cutoff, step, &written);
  if (r != 0)
    record_latency (e, ENGINE_LAT_WRITEBACK_RUN, start);
  pacer_charge (e->pacer, cache_clock (), written * B);
  atomic_fetch_add (&e->background_writeback_bytes, written * B);
  return r;
}

int
engine_writeback_expired (struct engine *e, uint64_t now, uint64_t max_age)
{
  uint64_t cutoff = now - min_u64 (max_age, now);
  uint64_t deadline = cache_clock () + BACKGROUND_PASS_NS;
  int r;

  if (e->cache == NULL)
    return 0;
  while ((r = background_step (e, cutoff, deadline)) > 0)
    ;
  return r;
}

int
engine_writeback_background (struct engine *e, unsigned pct)
{
  uint64_t target = percent_of_cache (e, pct);
  uint64_t deadline = cache_clock () + BACKGROUND_PASS_NS;
  uint64_t budget, written;
  int r = 0;

  if (e->cache == NULL)
    return 0;
  /* Bound the work by what is dirty now, so that writers who keep
   * dirtying blocks cannot hold this call forever. */
  budget = cache_dirty_bytes (e->cache) / e->cfg.block_size;
  written = atomic_load (&e->writeback_blocks);
  while (cache_dirty_bytes (e->cache) > target
         && atomic_load (&e->writeback_blocks) - written < budget)
    {
      r = background_step (e, UINT64_MAX, deadline);
      if (r <= 0)
        break;
    }
  return r < 0 ? r : 0;
}

int
engine_set_dirty_limit (struct engine *e, unsigned pct)
{
  if (pct < 1 || pct > 100)
    return -EINVAL;
  atomic_store (&e->dirty_limit, pct);
  return 0;
}

void
engine_set_writeback_rate (struct engine *e, uint64_t rate)
{
  pacer_set_rate (e->pacer, rate);
}

int
engine_set_cache_mode (struct engine *e, enum engine_cache_mode mode)
{
  if (e->cache == NULL || mode == ENGINE_CACHE_NONE)
    return -ENOTSUP;
  mode_set (&e->mode, mode);
  /* Every cached write that saw writeback has ended (mode_set), so every
   * dirty block was dirtied before the flush begins, and it writes them
   * all. */
  return mode == ENGINE_CACHE_WRITETHROUGH ? engine_flush (e) : 0;
}

int
engine_set_cache_size (struct engine *e, uint64_t cache_size)
{
  int64_t excess;
  int r;

  if (e->cache == NULL)
    return -ENOTSUP;
  excess = cache_resize (e->cache, cache_size);
  if (excess < 0)
    return excess;
  atomic_store (&e->cache_size, cache_size);
  /* The curve follows; if it cannot, it keeps its old sizes (and says
   * so in its output), which is no reason to fail the resize. */
  r = e->mrc ? minisim_resize (e->mrc, cache_size / e->cfg.block_size) : 0;
  if (r < 0)
    log_printf (e->cfg.log, LOG_LEVEL_ERROR,
                "mrc: the curve stays at the old cache size: %s",
                strerror (-r));
  /* Dirty (or pinned) blocks beyond the new size: write them back and
   * evict again; nothing dirty is ever dropped. */
  for (int tries = 0; excess > 0 && tries < 3; tries++)
    {
      r = writeback_all (e, UINT64_MAX);
      if (r < 0)
        return r;
      excess = cache_resize (e->cache, cache_size);
      if (excess < 0)
        return excess;
    }
  return 0;
}

struct minisim *
engine_mrc (struct engine *e)
{
  return e->mrc;
}

bool
engine_clear_errors (struct engine *e)
{
  return ordered_clear_sync_error (e->oq);
}

uint64_t
engine_drop_clean (struct engine *e)
{
  return e->cache ? cache_drop_clean (e->cache) : 0;
}
