/* blkcache: the miss-ratio curve, by miniature simulation.
 *
 * The reads' block numbers are sampled by a hash of the number (spatial
 * sampling: a block is always or never sampled), and the sampled blocks
 * alone feed seven miniature caches with the block cache's own eviction
 * policy (S3-FIFO, cache.c), of 1/8, 1/4, 1/2, 1, 2, 4 and 8 times the
 * cache's capacity, each scaled down by the sampling rate.  The hit ratio
 * of a miniature cache over the window estimates that of a real cache of
 * its size (Waldspurger et al., USENIX ATC 2017).  The rate is chosen at
 * creation (and on a resize) so the seven caches and their ghosts hold at
 * most max_entries blocks: memory is fixed then.
 *
 * Every function may be called from many threads at once.
 */
#ifndef BLKCACHE_MINISIM_H
#define BLKCACHE_MINISIM_H

#include <stdint.h>

/* The curve's sizes: capacity << (i - 3) blocks for i in 0..6. */
#define MINISIM_SIZES 7

struct minisim_config
{
  uint64_t capacity;    /* the block cache's capacity, in blocks, >= 1 */
  uint32_t max_entries; /* blocks the seven caches and their ghosts hold
                         * at most (each holds 8 and its ghost 8 at
                         * least), >= 1; lowers the rate below */
  double rate;          /* the highest sampling rate, in (0, 1] */
  uint64_t window;      /* block reads the curve covers: between WINDOW/2
                         * and WINDOW of the latest, >= 2 */
};

struct minisim_stats
{
  uint64_t entries;      /* blocks held now, resident and ghost */
  uint64_t rate_ppm;     /* the sampling rate, in parts per million */
  uint64_t references;   /* sampled block reads so far */
  uint64_t memory_bytes; /* memory held, fixed at creation */
};

/* Create a curve estimator.  Returns NULL with errno set: EINVAL for a
 * config out of range, ENOMEM. */
struct minisim *minisim_new (const struct minisim_config *cfg);

void minisim_free (struct minisim *m);

/* Record a read of the N blocks FIRST..FIRST+N-1, in order.  A block not
 * sampled costs a hash and an atomic add, and takes no lock. */
void minisim_access (struct minisim *m, uint64_t first, uint64_t n);

/* The capacity, in blocks, of a real cache whose hit ratio size I
 * (0..MINISIM_SIZES - 1) estimates. */
uint64_t minisim_size (struct minisim *m, unsigned i);

/* Model a cache of CAPACITY blocks from now on: new caches at a rate
 * chosen again for max_entries, and the window starts afresh.  Returns 0,
 * or -EINVAL (CAPACITY 0 or too large) or -ENOMEM, the curve unchanged. */
int minisim_resize (struct minisim *m, uint64_t capacity);

/* The estimated read hit ratio, in [0, 1], of a cache of
 * minisim_size (M, I) blocks over the window.  Returns -1 before any
 * sampled read. */
double minisim_hit_ratio (struct minisim *m, unsigned i);

void minisim_get_stats (struct minisim *m, struct minisim_stats *s);

#endif /* BLKCACHE_MINISIM_H */
