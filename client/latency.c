/* blkcache-torture: latency histograms.
 *
 * Values below 2^LATENCY_SUB_BITS have a bucket each; above, bucket
 * (e - LATENCY_SUB_BITS + 1) << LATENCY_SUB_BITS | mantissa, where e is
 * the index of the top bit and the mantissa the LATENCY_SUB_BITS bits
 * under it.
 */
#include <config.h>

#include "latency.h"

static unsigned
bucket_of (uint64_t v)
{
  unsigned e;

  if (v < (1u << LATENCY_SUB_BITS))
    return v;
  e = 63 - __builtin_clzll (v);
  return ((e - LATENCY_SUB_BITS + 1) << LATENCY_SUB_BITS)
         | ((v >> (e - LATENCY_SUB_BITS)) & ((1u << LATENCY_SUB_BITS) - 1));
}

/* The largest value that falls in bucket B. */
static uint64_t
bucket_top (unsigned b)
{
  unsigned e, m;

  if (b < (1u << LATENCY_SUB_BITS))
    return b;
  e = (b >> LATENCY_SUB_BITS) + LATENCY_SUB_BITS - 1;
  m = b & ((1u << LATENCY_SUB_BITS) - 1);
  return ((UINT64_C (1) << e) | ((uint64_t)(m + 1) << (e - LATENCY_SUB_BITS)))
         - 1;
}

void
latency_add (struct latency *l, uint64_t ns)
{
  l->count++;
  if (ns > l->max)
    l->max = ns;
  l->bucket[bucket_of (ns)]++;
}

uint64_t
latency_percentile (const struct latency *l, double p)
{
  uint64_t rank, seen = 0;

  if (l->count == 0)
    return 0;
  rank = (uint64_t)(p * (double)l->count);
  if (rank >= l->count)
    rank = l->count - 1;
  for (unsigned b = 0; b < LATENCY_BUCKETS; b++)
    {
      seen += l->bucket[b];
      if (seen > rank)
        return bucket_top (b) < l->max ? bucket_top (b) : l->max;
    }
  return l->max;
}

void
latency_merge (struct latency *to, const struct latency *from)
{
  to->count += from->count;
  if (from->max > to->max)
    to->max = from->max;
  for (unsigned b = 0; b < LATENCY_BUCKETS; b++)
    to->bucket[b] += from->bucket[b];
}
