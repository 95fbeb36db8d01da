/* blkcache-bench: Zipf-distributed item numbers.
 *
 * Item ranks follow Zipf's law with exponent theta in (0, 1): rank i (from
 * 1) is drawn with a probability proportional to 1 / i^theta, by the
 * closed-form approximation of Gray et al. ("Quickly generating
 * billion-record synthetic databases", SIGMOD 1994), O(n) to set up and
 * O(1) a draw.  Ranks are then spread over the items by a fixed
 * permutation, so the hot items are scattered, not the first ones.
 */
#ifndef BLKCACHE_ZIPF_H
#define BLKCACHE_ZIPF_H

#include <stdint.h>

#include "random.h"

struct zipf
{
  uint64_t n;
  double theta, alpha, zetan, eta, zeta2;
};

/* Set Z up for N items (1 <= N < 2^32) with exponent THETA; returns 0, or
 * -EINVAL when either is out of range. */
int zipf_init (struct zipf *z, uint64_t n, double theta);

/* An item number in [0, N), drawn with R. */
uint64_t zipf_next (const struct zipf *z, struct random *r);

#endif /* BLKCACHE_ZIPF_H */
