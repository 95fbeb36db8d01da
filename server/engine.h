/* blkcache: the engine, the NBD operations expressed with the store, the
 * extent range-lock tree, the ordered-extent queue and the block cache.
 *
 * One engine serves every connection of the process; every function here
 * may be called from many threads at once.  Offsets and counts are bytes;
 * the caller has checked that a range lies inside the disk.  Every function
 * returns 0 or a negative errno.
 */
#ifndef BLKCACHE_ENGINE_H
#define BLKCACHE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "histogram.h"
#include "log.h"
#include "minisim.h"
#include "ordered.h"
#include "store.h"

enum engine_cache_mode
{
  ENGINE_CACHE_NONE,         /* no cache: every request goes to the store */
  ENGINE_CACHE_WRITETHROUGH, /* a read cache; every write is direct */
  ENGINE_CACHE_WRITEBACK,    /* non-FUA writes land in the cache as dirty */
};

/* How a FUA write is made durable (server/README, FUA). */
enum engine_fua
{
  ENGINE_FUA_DSYNC, /* its own write carries RWF_DSYNC */
  ENGINE_FUA_GROUP, /* a plain write, then an fdatasync shared by every
                     * FUA write and flush waiting at the time */
  ENGINE_FUA_AUTO,  /* RWF_DSYNC where the write allocates nothing
                     * (store_allocated), else group commit */
};

struct engine_config
{
  enum engine_cache_mode mode;
  enum engine_fua fua;
  uint64_t cache_size;     /* bytes of cache memory */
  uint32_t block_size;     /* cache block size, a power of two */
  unsigned dirty_limit;    /* percent of cache_size above which cached
                            * writes wait for writeback; 100: never */
  unsigned race_window_us; /* debug: hold the race windows open */
  bool skip_recheck;       /* debug: fill misses without the range lock */
  bool flush_skip_sync;    /* debug: a flush replies without its fdatasync
                            * (a negative control for the power-cut
                            * checker) */
  unsigned lock_nodes;      /* range locks allocated up front: requests
                            * lock without allocating while no more are
                            * held or awaited at once (else one that
                            * cannot allocate fails with -ENOMEM) */
  uint64_t seq_cutoff;      /* a read of a sequential stream longer than
                            * this many bytes bypasses the cache
                            * (seqdetect.h); 0: never */
  unsigned exit_flush_s;    /* how long engine_free retries a failing
                            * flush, in seconds */
  uint32_t mrc_samples;     /* blocks the miss-ratio curve's miniature
                            * caches hold at most (minisim.h); 0: no curve */
  uint64_t mrc_window;      /* block references the curve covers */
  uint64_t writeback_rate;  /* background writeback's cap, bytes a second;
                            * 0: unlimited (pacer.h) */
  /* Where errors an administrator must act on are reported (log.h); NULL:
   * nowhere.  Called from request threads. */
  log_fn log;
};

/* Counters; each is a snapshot taken without stopping the engine. */
struct engine_stats
{
  struct cache_stats cache;
  struct ordered_stats ordered;
  struct minisim_stats mrc;     /* zero without a curve */
  uint64_t cache_size;        /* the cache size now, in bytes */
  uint64_t block_size;        /* the cache block size, in bytes */
  uint64_t dirty_limit;       /* the dirty limit now, in percent */
  uint64_t reads;             /* read requests */
  uint64_t cached_writes;     /* writes that landed in the cache */
  uint64_t direct_writes;     /* writes that went to the store */
  uint64_t fua_writes;        /* writes with FUA */
  uint64_t zeroes;            /* zero requests */
  uint64_t trims;             /* trim requests */
  uint64_t flushes;
  uint64_t prefetches;        /* cache (prefetch) requests */
  uint64_t block_status;      /* block status requests */
  uint64_t writeback_blocks;  /* blocks written back */
  uint64_t writeback_errors;  /* failed writebacks */
  uint64_t lock_waits;        /* range locks that had to wait */
  uint64_t recheck_retries;   /* lock, found an ordered extent, waited */
  uint64_t dirty_limit_waits; /* cached writes held above the dirty limit */
  uint64_t uncached_reads;    /* read misses served from the disk because
                               * the cache had no room (failing writeback) */
  uint64_t degraded_writethrough; /* writes sent to the disk, not the cache,
                                   * after repeated writeback failures */
  uint64_t seq_cutoff;         /* the sequential cutoff, in bytes (0: off) */
  uint64_t seq_bypassed_bytes; /* bytes of sequential reads served from the
                                * disk without entering the cache */
  uint64_t cache_mode;        /* enum engine_cache_mode now */
  uint64_t writeback_rate;    /* background writeback's cap, bytes/s */
  uint64_t background_writeback_bytes; /* bytes of the blocks background
                                        * writeback wrote */
  uint64_t writeback_yields;  /* background steps that waited for client
                               * requests */
  uint64_t writeback_throttles; /* background steps that waited for the
                                 * rate */
  uint64_t flush_blocks_left; /* blocks the running flushes have still to
                               * write (flush_progress.h); 0: none runs */
};

/* The paths whose latency the engine records (engine_get_latency). */
enum engine_latency
{
  ENGINE_LAT_READ_HIT,     /* reads every block of which was cached */
  ENGINE_LAT_READ_MISS,    /* reads that went to the disk for a block */
  ENGINE_LAT_CACHED_WRITE, /* non-FUA writes that landed in the cache,
                            * dirty-limit wait included */
  ENGINE_LAT_DIRECT_WRITE, /* non-FUA writes that went to the disk */
  ENGINE_LAT_FUA_WRITE,    /* FUA writes, their fdatasync wait included */
  ENGINE_LAT_FLUSH,        /* flushes, from clients and the control socket */
  ENGINE_LAT_WRITEBACK_RUN, /* runs written back by background writeback */
  ENGINE_LAT_DIRTY_WAIT,   /* what cached writes held by the dirty limit
                            * waited */
  ENGINE_LATENCY_PATHS
};

/* Create an engine serving the open store ST (the engine takes it over)
 * with the cache described by CFG.  Returns NULL with errno set: EINVAL
 * when the block size is not a power of two from 4 KiB to 1 MiB, is below
 * the store's alignment, or the cache holds no block. */
struct engine *engine_new (struct store *st, const struct engine_config *cfg);

/* Write back every dirty block, then free the engine and close its store.
 * No request may be in flight.  A failing flush is retried with backoff
 * for up to exit_flush_s seconds; then each dirty range still not written
 * is logged and the flush's error returned: nothing dirty is
 * dropped without a word. */
int engine_free (struct engine *e);

/* The store the engine serves (size, alignment, capabilities). */
const struct store *engine_store (const struct engine *e);

int engine_read (struct engine *e, void *buf, uint32_t count,
                 uint64_t offset);

/* Write.  In writeback mode a non-FUA write lands in the cache as dirty
 * blocks; every other write goes to the store, and with FUA is durable
 * before the reply. */
int engine_write (struct engine *e, const void *buf, uint32_t count,
                  uint64_t offset, bool fua);

/* Write every acknowledged write to stable storage.  Fails (with the
 * writeback's errno) if any writeback failed while it ran, whoever ran
 * it, and with -EIO while a failed sync is latched (see
 * engine_clear_errors). */
int engine_flush (struct engine *e);

/* Discard a range (the store's aligned interior of it). */
int engine_trim (struct engine *e, uint32_t count, uint64_t offset, bool fua);

/* Zero a range of any length; MAY_TRIM allows holes; FAST fails with
 * -ENOTSUP rather than writing zeroes. */
int engine_zero (struct engine *e, uint32_t count, uint64_t offset,
                 bool may_trim, bool fast, bool fua);

/* The miss-ratio curve of the reads (minisim.h), or NULL: no cache, or
 * mrc_samples 0. */
struct minisim *engine_mrc (struct engine *e);

/* Prefetch a range into the cache. */
int engine_cache (struct engine *e, uint32_t count, uint64_t offset);

/* Prefetch the blocks of a range that are not cached, through the read
 * miss path (under their range locks, so a block a client wrote meanwhile
 * is never replaced), without counting hits, misses or requests: for the
 * warm restart (prewarm.h).  -ENOTSUP without a cache. */
int engine_prewarm (struct engine *e, uint64_t count, uint64_t offset);

/* Requests served so far (reads, writes, zeroes, trims, flushes): a
 * background task that sees it move knows clients are busy. */
uint64_t engine_requests (struct engine *e);

/* The cached blocks and their ranks (cache_list_blocks), at most MAX into
 * OUT; returns how many (0 without a cache). */
size_t engine_hot_blocks (struct engine *e, struct cache_block_rank *out,
                          size_t max);

/* Describe a range as data and holes, calling ADD for each run in order;
 * dirty and in-flight blocks are data.  May describe less than COUNT bytes
 * (at least one run). */
int engine_extents (struct engine *e, uint32_t count, uint64_t offset,
                    store_extent_fn add, void *opaque);

/* Copy the counters into *STATS. */
void engine_get_stats (struct engine *e, struct engine_stats *stats);

/* Copy the latency histogram of each path (enum engine_latency) into
 * SNAPS[path]. */
void engine_get_latency (struct engine *e,
                         struct histogram_snapshot snaps[ENGINE_LATENCY_PATHS]);

/* --- background writeback and administration -------------------------
 *
 * These are for the service thread and the control socket; each may be
 * called while requests are in flight, from any thread that holds no
 * range.  Times are cache_clock() nanoseconds.  Without a cache nothing
 * is ever dirty and the writeback calls return 0 at once.
 *
 * Background writeback (engine_writeback_expired and _background) is
 * paced (pacer.h): at most writeback-rate bytes a second, in steps of at
 * most a tenth of a second's worth, and before each step it waits (up to
 * 10 ms) while client requests are in flight, unless dirty bytes are above
 * the dirty limit.  A pass that would wait more than a second in all
 * returns 0 early, so the caller's other work is not held up; its next
 * pass goes on. */

/* Whether some block was dirtied at or before NOW - MAX_AGE. */
bool engine_has_expired (struct engine *e, uint64_t now, uint64_t max_age);

/* Whether dirty bytes exceed PCT percent of the cache size. */
bool engine_above_dirty (struct engine *e, unsigned pct);

/* Write back, oldest first, every block dirtied at or before NOW - MAX_AGE,
 * through the same ordered extents as a flush (with the dirty blocks that
 * follow each one, up to a run of 256 blocks).  Blocks dirtied later are
 * left alone.  Returns 0 or the first writeback error (the failed blocks
 * stay dirty, and a later flush writes them again); stops at the first
 * error. */
int engine_writeback_expired (struct engine *e, uint64_t now,
                              uint64_t max_age);

/* Write back the oldest dirty runs until dirty bytes are at most PCT
 * percent of the cache size, or as many blocks as were dirty at the call
 * have been written.  Returns 0 or the first writeback error. */
int engine_writeback_background (struct engine *e, unsigned pct);

/* Change the dirty limit (see engine_config) to PCT, 1 to 100.  Returns 0
 * or -EINVAL. */
int engine_set_dirty_limit (struct engine *e, unsigned pct);

/* Change background writeback's cap to RATE bytes a second (0:
 * unlimited). */
void engine_set_writeback_rate (struct engine *e, uint64_t rate);

/* Switch the cache mode between writeback and writethrough (mode.h).
 * Switching to writethrough sends every later write to the disk, waits
 * for the cached writes that began before, then flushes (engine_flush):
 * on success nothing is dirty and every write acknowledged before the
 * return is on stable storage.  On failure the mode is writethrough all
 * the same, and the blocks that could not be written stay dirty for later
 * flushes.  Returns 0; -ENOTSUP without a cache or to MODE none; or the
 * flush's error. */
int engine_set_cache_mode (struct engine *e, enum engine_cache_mode mode);

/* Resize the cache to CACHE_SIZE bytes.  Shrinking below what is dirty
 * writes the dirty blocks back before they are evicted: no data is lost.
 * Returns 0; -EINVAL when CACHE_SIZE holds no block; -ENOTSUP without a
 * cache; -ENOMEM; or a writeback error (the cache then has its new size
 * but may stay above it until the dirty blocks can be written back). */
int engine_set_cache_size (struct engine *e, uint64_t cache_size);

/* Clear a latched sync failure: after a failed fdatasync every flush and
 * every FUA write, zero and trim fail with -EIO until this is called (an
 * administrator's decision, once the disk is fixed).  Returns whether one
 * was latched. */
bool engine_clear_errors (struct engine *e);

/* Drop every CLEAN unpinned block; returns how many (0 without a cache). */
uint64_t engine_drop_clean (struct engine *e);

#endif /* BLKCACHE_ENGINE_H */
