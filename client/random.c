/* blkcache-torture: a small seeded pseudo-random generator (splitmix64).
 *
 * random_below maps 64 random bits to [0, n) with a 128-bit multiply,
 * which has a bias below n / 2^64: irrelevant for test workloads.
 */
#include <config.h>

#include "random.h"

void
random_seed (struct random *r, uint64_t seed)
{
  r->state = seed;
}

uint64_t
random_next (struct random *r)
{
  uint64_t x = (r->state += UINT64_C (0x9e3779b97f4a7c15));

  x = (x ^ (x >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * UINT64_C (0x94d049bb133111eb);
  return x ^ (x >> 31);
}

uint64_t
random_below (struct random *r, uint64_t n)
{
  return (uint64_t)(((unsigned __int128)random_next (r) * n) >> 64);
}

uint64_t
random_range (struct random *r, uint64_t lo, uint64_t hi)
{
  return lo + random_below (r, hi - lo + 1);
}
