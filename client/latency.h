/* blkcache-torture: latency histograms.
 *
 * A histogram of nanosecond values in log-linear buckets: the bucket of v
 * is its power of two plus the next LATENCY_SUB_BITS bits below the top
 * one, so any value is reported within 1 / 2^LATENCY_SUB_BITS (6%) of the
 * truth, in a fixed array and O(1) per sample.
 */
#ifndef BLKCACHE_LATENCY_H
#define BLKCACHE_LATENCY_H

#include <stdint.h>

#define LATENCY_SUB_BITS 4
#define LATENCY_BUCKETS (64 << LATENCY_SUB_BITS)

struct latency
{
  uint64_t count;
  uint64_t max;
  uint64_t bucket[LATENCY_BUCKETS];
};

/* Add one sample of NS nanoseconds. */
void latency_add (struct latency *l, uint64_t ns);

/* The value below which a fraction P (0..1) of the samples fall: the upper
 * edge of its bucket, never above the maximum.  0 when empty. */
uint64_t latency_percentile (const struct latency *l, double p);

/* Add every sample of FROM to TO. */
void latency_merge (struct latency *to, const struct latency *from);

#endif /* BLKCACHE_LATENCY_H */
