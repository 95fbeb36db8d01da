/* blkcache: the miss-ratio curve, from sampled reuse distances (SHARDS).
 *
 * The reads' block numbers are sampled by a hash of the number (spatial
 * sampling: a block is always or never sampled at a given rate), and the
 * LRU reuse distance of each sampled reference is measured over the
 * sampled blocks only, then scaled by the inverse of the sampling rate.
 * The blocks are split by hash into partitions, each sampled on its own
 * under its own lock, so readers of different blocks rarely queue.
 * The number of sampled blocks tracked is bounded: when it would exceed
 * the bound, the rate is lowered and the blocks no longer sampled are
 * forgotten (fixed-size SHARDS), so memory is fixed at creation.  The
 * curve covers a window of recent references.
 *
 * Every function may be called from many threads at once.
 */
#ifndef BLKCACHE_MRC_H
#define BLKCACHE_MRC_H

#include <stdint.h>

struct mrc_config
{
  uint32_t max_samples; /* sampled blocks tracked at most, >= partitions
                         * (each partition tracks its share, rounded up) */
  unsigned partitions;  /* a power of two from 1 to 64; 1 (with rate 1)
                         * measures exact distances */
  double rate;          /* the sampling rate to start at, in (0, 1] */
  uint64_t window;      /* block references the curve covers: between
                         * WINDOW/2 and WINDOW of the latest, >= 2 */
};

struct mrc_stats
{
  uint64_t samples;      /* sampled blocks tracked now */
  uint64_t rate_ppm;     /* the sampling rate now, in parts per million
                          * (the partitions' mean) */
  uint64_t references;   /* sampled block references so far */
  uint64_t memory_bytes; /* memory held, fixed at creation */
};

/* Create a curve estimator.  Returns NULL with errno set: EINVAL for a
 * config out of range, ENOMEM. */
struct mrc *mrc_new (const struct mrc_config *cfg);

void mrc_free (struct mrc *m);

/* Record a read of the N blocks FIRST..FIRST+N-1, in order.  A block not
 * sampled costs a hash and takes no lock. */
void mrc_access (struct mrc *m, uint64_t first, uint64_t n);

/* The estimated read hit ratio, in [0, 1], of an LRU cache of BLOCKS
 * blocks over the window.  Returns -1 before any sampled reference. */
double mrc_hit_ratio (struct mrc *m, uint64_t blocks);

void mrc_get_stats (struct mrc *m, struct mrc_stats *s);

#endif /* BLKCACHE_MRC_H */
