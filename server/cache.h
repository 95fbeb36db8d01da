/* blkcache: the shared block cache.
 *
 * Fixed-size blocks of the disk, numbered by offset / block size, each with
 * a data buffer aligned to 4096 bytes so that O_DIRECT reads and writes go
 * straight to and from it.  Every connection shares one cache.
 *
 * A block is either CLEAN (its bytes equal the disk's), DIRTY (newer than the
 * disk, to be written back) or WRITEBACK (a write of it to the disk is in
 * flight; marking it dirty again meanwhile sets a "redirtied" flag, so the
 * end of that writeback leaves it DIRTY).  Only CLEAN blocks that nobody has
 * pinned are ever evicted, by S3-FIFO (a small probation FIFO, a main FIFO
 * and a ghost FIFO of recently evicted block numbers), which a one-pass scan
 * cannot flush out.  The cache never holds more than cache-size / block-size
 * blocks (design invariant 8); when it is full of dirty or pinned blocks an
 * allocation fails and the caller writes back or waits.
 *
 * Every block in the dirty index (DIRTY, or WRITEBACK and redirtied) has a
 * "dirtied at" time: when it last entered the index by going from CLEAN to
 * DIRTY or by being redirtied while in WRITEBACK.  A DIRTY block written
 * into again keeps its time, and so does a block a failed writeback puts
 * back (so a flush that began after it was dirtied still finds it).  The
 * age list holds the dirty blocks in the order they entered the index (a
 * failed block at the back); background writeback takes its head first.
 *
 * Pins: a block returned by cache_peek, cache_alloc or
 * cache_insert is pinned for the caller, who must cache_unpin it.  A pinned
 * block's memory is never freed or reused, even if the block is dropped.
 *
 * What the cache does not do: it does not order itself against disk I/O.
 * The engine's range locks and ordered extents decide when a block may be
 * inserted, marked or dropped; the preconditions below say which lock the
 * design expects the caller to hold.  Every function here is thread-safe.
 * Functions that sleep: only cache_space_wait (and the internal mutexes).
 */
#ifndef BLKCACHE_CACHE_H
#define BLKCACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cache_state
{
  CACHE_CLEAN,
  CACHE_DIRTY,
  CACHE_WRITEBACK,
};

/* A run of contiguous block numbers: start, start + 1, ..., start + count - 1.
 */
struct cache_run
{
  uint64_t start;
  uint64_t count;
};

/* Counters.  Each group is read under its own lock, so a snapshot taken
 * while other threads work is consistent per line, not as a whole. */
struct cache_stats
{
  uint64_t hits;             /* cache_read found the block */
  uint64_t misses;           /* cache_read did not */
  uint64_t insertions;       /* blocks inserted */
  uint64_t evictions;        /* clean blocks evicted to make room */
  uint64_t blocks;           /* blocks allocated: cached, being filled, dropped
                              * but still pinned */
  uint64_t capacity;         /* cache-size / block-size */
  uint64_t small_blocks;     /* in the small (probation) FIFO */
  uint64_t main_blocks;      /* in the main FIFO */
  uint64_t ghost_entries;    /* block numbers remembered as evicted */
  uint64_t dirty_bytes;      /* bytes of DIRTY and WRITEBACK blocks */
  uint64_t peak_dirty_bytes; /* highest dirty_bytes seen */
  uint64_t metadata_bytes;   /* memory of everything but data buffers */
};

struct cache;
struct cache_block;

/* Create a cache of CACHE_SIZE bytes of BLOCK_SIZE blocks.  BLOCK_SIZE must
 * be a power of two from 4096 to 1 MiB and CACHE_SIZE hold at least one
 * block.  Returns NULL with errno EINVAL or ENOMEM. */
struct cache *cache_new (uint64_t cache_size, uint32_t block_size);

/* Free the cache and every block.  No block may be pinned. */
void cache_free (struct cache *c);

/* The block size the cache was created with. */
uint32_t cache_block_size (const struct cache *c);

/* The data buffer of a block: block-size bytes aligned to 4096.  The caller
 * must hold a pin.  Only a block not yet inserted is written through it;
 * an inserted block's bytes change by cache_write and cache_update. */
void *cache_block_data (const struct cache_block *b);

/* The block number of an inserted block. */
uint64_t cache_block_number (const struct cache_block *b);

/* A reader's access: if block BLOCKNO is cached, copy LEN bytes of it from
 * offset FROM to DST (nothing when DST is NULL), raise its eviction
 * frequency, count a hit and return true; else count a miss and return
 * false.  One shard lock, held across the copy, and no pin. */
bool cache_read (struct cache *c, uint64_t blockno, void *dst, uint32_t from,
                 uint32_t len);

/* Find block BLOCKNO and pin it, without counting or touching the eviction
 * policy: for the recheck under a range lock, for writeback and for direct
 * writes.  Returns NULL if it is not cached. */
struct cache_block *cache_peek (struct cache *c, uint64_t blockno);

/* Drop a pin.  The last pin of a block dropped by cache_drop_range frees
 * it. */
void cache_unpin (struct cache *c, struct cache_block *b);

/* Allocate an empty block, pinned, not yet in the cache, and store it in
 * *BP.  If the cache is full, evict a CLEAN unpinned block (S3-FIFO order)
 * to make room.  Fails, evicting nothing, with:
 *   -ENOSPC  no block can be evicted and some are DIRTY: write some back
 *            (cache_pick_victim) and retry;
 *   -EAGAIN  no block can be evicted and none is DIRTY (all are pinned or in
 *            writeback): wait (cache_space_wait) and retry;
 *   -ENOMEM.
 * The new block counts against the capacity until it is inserted and later
 * evicted, or discarded.  O(1) amortised; when nothing can be evicted the
 * search gives up after O(blocks) steps. */
int cache_alloc (struct cache *c, struct cache_block **bp);

/* Insert B, from cache_alloc and filled by the caller, as block BLOCKNO in
 * state CLEAN.  The caller keeps its pin on B.  If BLOCKNO is already cached,
 * B is discarded, the cached block is pinned and stored in *EXISTINGP, and
 * -EEXIST returned.  The caller should hold the range lock of the block and
 * have checked the ordered extents (design: read miss). */
int cache_insert (struct cache *c, struct cache_block *b, uint64_t blockno,
                  struct cache_block **existingp);

/* Free B, from cache_alloc and never inserted (for instance because the
 * store read that was to fill it failed: design invariant 7). */
void cache_discard (struct cache *c, struct cache_block *b);

/* The state of a pinned block. */
enum cache_state cache_block_state (struct cache *c, struct cache_block *b);

/* Mark a pinned, inserted block DIRTY after writing into it: a CLEAN block
 * becomes DIRTY, a WRITEBACK block is flagged redirtied.  Returns 0, or
 * -ESTALE if the block was dropped (which the range locks rule out). */
int cache_mark_dirty (struct cache *c, struct cache_block *b);

/* Like cache_mark_dirty, for bytes [FROM, TO) of the block only (offsets
 * inside it): the block remembers which 1/64ths of it were written, so
 * that writeback writes those and not the whole block.  Returns 0,
 * -EINVAL for an empty or out-of-block range, or -ESTALE. */
int cache_mark_dirty_range (struct cache *c, struct cache_block *b,
                            uint32_t from, uint32_t to);

/* A cached write's access: if block BLOCKNO is cached, copy LEN bytes from
 * SRC into it at offset FROM and mark them dirty (as cache_mark_dirty_range)
 * under one shard lock, and return 1; return 0 if it is not cached, -EINVAL
 * for an empty or out-of-block range.  The caller holds the range lock. */
int cache_write (struct cache *c, uint64_t blockno, const void *src,
                 uint32_t from, uint32_t len);

/* A direct write's access, once the store has the bytes: like cache_write,
 * with zeroes when SRC is NULL, and the block's state left as it is.
 * Every write into an inserted block's data goes through the shard lock,
 * as every cache_read does, so that a read overlapping a write in flight
 * copies either bytes before or bytes after, and never races. */
int cache_update (struct cache *c, uint64_t blockno, const void *src,
                  uint32_t from, uint32_t len);

/* Start writing a pinned DIRTY block back: it becomes WRITEBACK and leaves
 * the dirty index.  The caller holds the block's range lock and next adds the
 * ordered extent.  Returns 0; -EINVAL if the block is CLEAN (someone else
 * wrote it back); -EBUSY if it is already in WRITEBACK (wait for that ordered
 * extent first); -ESTALE if it was dropped. */
int cache_start_writeback (struct cache *c, struct cache_block *b);

/* End the writeback of a pinned WRITEBACK block, ERR being 0 or the
 * negative errno of the write.  On success the block becomes CLEAN unless it
 * was redirtied meanwhile; on error it becomes DIRTY again (design
 * invariant 7: its data is kept, with its dirtied-at time; the ordered
 * queue counts the error for the flushes).  A block dropped meanwhile is left alone.  Needs no range
 * lock.  Returns the block's new state. */
enum cache_state cache_end_writeback (struct cache *c, struct cache_block *b,
                                      int err);

/* The parts of a pinned WRITEBACK block its writeback must write: bit i
 * set means bytes [i * B/64, (i+1) * B/64) were written since the previous
 * writeback started (B the block size).  Taken when the writeback starts;
 * a failed writeback gives them back to the block. */
uint64_t cache_writeback_mask (struct cache *c, struct cache_block *b);

/* Fill RUNS with up to MAX_RUNS runs of dirty block numbers (blocks that are
 * DIRTY, or in WRITEBACK and redirtied), in ascending order, starting from
 * the first dirty block at or after FROM and covering at most MAX_BLOCKS
 * blocks in all.  Only blocks dirtied at or before DIRTIED_BY (see "dirtied
 * at" above; UINT64_MAX for all) are reported: a flush needs only what was
 * written before it.  Returns the number of runs.  A block reported here
 * may change state before the caller pins it: recheck under the range
 * lock.  O(log d + s) for d dirty blocks, s looked at; takes only the
 * dirty lock. */
size_t cache_dirty_runs (struct cache *c, uint64_t from, uint64_t max_blocks,
                         uint64_t dirtied_by, struct cache_run *runs,
                         size_t max_runs);

/* The clock of the dirtied-at times: CLOCK_MONOTONIC, in nanoseconds. */
uint64_t cache_clock (void);

/* The block at the head of the age list (see "dirtied at" above): store its number
 * in *BLOCKNOP and its dirtied-at time in *DIRTIED_ATP and return 0, or
 * return -ENOENT when the dirty index is empty.  As with cache_dirty_runs,
 * the block may change state before the caller locks its range.  O(1);
 * takes only the dirty lock. */
int cache_oldest_dirty (struct cache *c, uint64_t *blocknop,
                        uint64_t *dirtied_atp);

/* Bytes of DIRTY and WRITEBACK blocks (what cache_stats calls dirty_bytes),
 * without the cost of cache_get_stats.  Takes only the dirty lock. */
uint64_t cache_dirty_bytes (struct cache *c);

/* Under memory pressure, choose which dirty block to write back: the DIRTY
 * block nearest to eviction (oldest in the small FIFO, then in the main
 * FIFO).  Stores its number in *BLOCKNOP and returns 0, or -ENOENT if no
 * block is DIRTY.  O(blocks) at worst. */
int cache_pick_victim (struct cache *c, uint64_t *blocknop);

/* Drop the blocks FIRST..LAST (inclusive) from the cache, for a direct
 * write, trim or zero of their bytes; the caller holds the range lock.
 * CLEAN blocks are dropped.  DIRTY and WRITEBACK blocks are dropped only if
 * OVERWRITTEN says the caller's I/O replaces every byte of them (design
 * invariant 3), and are otherwise kept and counted.  A dropped block that is
 * pinned leaves the index at once and is freed by its last unpin.  Returns
 * the number of dirty blocks kept.  O(min (LAST - FIRST, blocks)). */
uint64_t cache_drop_range (struct cache *c, uint64_t first, uint64_t last,
                           bool overwritten);

/* Drop every CLEAN unpinned block.  Returns how many were dropped. */
uint64_t cache_drop_clean (struct cache *c);

/* Change the cache size to CACHE_SIZE bytes (same block size).  Shrinking
 * evicts CLEAN unpinned blocks; if dirty or pinned blocks still exceed the
 * new capacity, returns how many blocks too many there are: until they are
 * written back (or unpinned), the cache stays above its new size, and each
 * allocation evicts down to it first.  Resizing forgets the ghost FIFO.
 * Returns that count (0 when the new size holds), or -EINVAL, -ENOMEM. */
int64_t cache_resize (struct cache *c, uint64_t cache_size);

/* Waiting for space.  cache_alloc fails rather than sleep, because a caller
 * holding a range lock must not sleep on writeback that may need it.  A
 * caller that can wait announces itself before the attempt that may fail,
 * so that no release of space between its attempt and its sleep is missed:
 *
 *   ticket = cache_space_watch (c);
 *   while ((r = cache_alloc (c, &b)) == -EAGAIN)
 *     cache_space_wait (c, &ticket);
 *   cache_space_unwatch (c);
 *
 * Space "may be available" when a block is unpinned, becomes CLEAN, or is
 * freed.  Wait on -ENOSPC only if some writeback is in flight. */

/* Register the caller as a waiter and return a ticket for
 * cache_space_wait. */
uint64_t cache_space_watch (struct cache *c);

/* Sleep until space may have become available since *TICKET was taken, and
 * update *TICKET.  The caller must be registered (cache_space_watch). */
void cache_space_wait (struct cache *c, uint64_t *ticket);

/* Unregister a waiter. */
void cache_space_unwatch (struct cache *c);

/* A cached block and how hot the cache holds it: 4 + its frequency (0..3)
 * in the main FIFO, its frequency in the small one; higher is hotter. */
struct cache_block_rank
{
  uint64_t blockno;
  unsigned rank;
};

/* Fill OUT with up to MAX inserted blocks and their ranks, the main FIFO
 * then the small one, each newest first; returns how many.  For saving a
 * hot set.  O(blocks) under the eviction lock (one shard lock at a time
 * inside it). */
size_t cache_list_blocks (struct cache *c, struct cache_block_rank *out,
                          size_t max);

/* Copy the counters into *STATS. */
void cache_get_stats (struct cache *c, struct cache_stats *stats);

#endif /* BLKCACHE_CACHE_H */
