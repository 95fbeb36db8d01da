/* blkcache: how many blocks the flushes running now still have to write.
 *
 * Each flush counts the dirty blocks it will write when it starts, takes
 * them off as its batches are written, and takes off what is left when it
 * ends (blocks someone else wrote back meanwhile, or that failed), so the
 * total is 0 whenever no flush runs.  With flushes running at once it is
 * the sum of their counts: a block both would write counts twice until
 * one of them writes it.  Lock-free; any thread.
 */
#ifndef BLKCACHE_FLUSH_PROGRESS_H
#define BLKCACHE_FLUSH_PROGRESS_H

#include <stdatomic.h>
#include <stdint.h>

/* The total over the flushes running; zero-initialised. */
struct flush_progress
{
  _Atomic uint64_t blocks_left;
};

/* One flush's share of the total. */
struct flush_share
{
  uint64_t left;
};

/* A flush starts that will write about BLOCKS blocks. */
void flush_progress_begin (struct flush_progress *p, struct flush_share *f,
                           uint64_t blocks);

/* The flush F has written (or tried) BLOCKS more blocks; it never takes
 * off more than it added. */
void flush_progress_advance (struct flush_progress *p, struct flush_share *f,
                             uint64_t blocks);

/* The flush F ends: what is left of its share comes off. */
void flush_progress_end (struct flush_progress *p, struct flush_share *f);

/* Blocks the running flushes still have to write. */
uint64_t flush_progress_left (struct flush_progress *p);

#endif /* BLKCACHE_FLUSH_PROGRESS_H */
