/* blkcache-torture: a small seeded pseudo-random generator.
 *
 * splitmix64: the state advances by a fixed odd constant and each output
 * is a 64-bit mix of the state.  It is fast, passes the usual statistical
 * batteries and, above all, gives the same stream for the same seed on
 * every platform, which makes a torture run's operation stream
 * reproducible.
 */
#ifndef BLKCACHE_RANDOM_H
#define BLKCACHE_RANDOM_H

#include <stdint.h>

struct random
{
  uint64_t state;
};

/* Start the stream of SEED. */
void random_seed (struct random *r, uint64_t seed);

/* The next 64 random bits. */
uint64_t random_next (struct random *r);

/* A number uniform in [0, N); N must not be 0. */
uint64_t random_below (struct random *r, uint64_t n);

/* A number uniform in [LO, HI]. */
uint64_t random_range (struct random *r, uint64_t lo, uint64_t hi);

#endif /* BLKCACHE_RANDOM_H */
