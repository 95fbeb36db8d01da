/* blkcache: latency histograms.  See histogram.h.
 *
 * Layout: an array of HISTOGRAM_SHARDS shards, each starting on a cache
 * line of its own and holding, for each of the NHIST histograms, its
 * bucket counters and its sum.  A thread takes a shard number from a
 * global counter on its first record and keeps it in a thread-local
 * variable.  Recording is a binary search over the 71 bounds (7
 * comparisons) and two relaxed atomic adds to the thread's own shard;
 * reading is O(shards x buckets).  Memory: 32 x NHIST x 584 bytes.
 */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "histogram.h"

#define CACHE_LINE 64

struct counts
{
  _Atomic uint64_t buckets[HISTOGRAM_BUCKETS];
  _Atomic uint64_t sum_ns;
};

struct histogram
{
  size_t nhist;
  size_t shard_size;   /* bytes per shard, a multiple of CACHE_LINE */
  unsigned char *shards; /* HISTOGRAM_SHARDS x shard_size */
};

/* The bounds of one decade, in hundredths of its power of ten (the
 * Renard R10 series). */
static const uint64_t mantissa[10] = { 100, 125, 160, 200, 250,
                                       315, 400, 500, 630, 800 };

/* 0: not given one yet; else the shard number + 1. */
static _Thread_local unsigned thread_shard;
static atomic_uint next_shard;

uint64_t
histogram_bound_ns (size_t i)
{
  uint64_t scale = 10; /* mantissa 100 x 10 = 1000 ns = 1 us */

  for (size_t d = 0; d < i / 10; d++)
    scale *= 10;
  return mantissa[i % 10] * scale;
}

size_t
histogram_bucket_of (uint64_t ns)
{
  size_t lo = 0, hi = HISTOGRAM_BOUNDS; /* the answer is in [lo, hi] */

  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      if (ns <= histogram_bound_ns (mid))
        hi = mid;
      else
        lo = mid + 1;
    }
  return lo;
}

struct histogram *
histogram_new (size_t nhist)
{
  struct histogram *h = calloc (1, sizeof *h);
  size_t size = nhist * sizeof (struct counts);

  if (h == NULL)
    return NULL;
  h->nhist = nhist;
  h->shard_size = (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
  h->shards = aligned_alloc (CACHE_LINE, HISTOGRAM_SHARDS * h->shard_size);
  if (h->shards == NULL)
    {
      free (h);
      errno = ENOMEM;
      return NULL;
    }
  memset (h->shards, 0, HISTOGRAM_SHARDS * h->shard_size);
  return h;
}

void
histogram_free (struct histogram *h)
{
  if (h == NULL)
    return;
  free (h->shards);
  free (h);
}

static struct counts *
counts_of (struct histogram *h, unsigned shard, size_t which)
{
  return (struct counts *) (h->shards + shard * h->shard_size) + which;
}

void
histogram_record (struct histogram *h, size_t which, uint64_t ns)
{
  if (thread_shard == 0)
    thread_shard = atomic_fetch_add_explicit (&next_shard, 1,
                                              memory_order_relaxed)
                       % HISTOGRAM_SHARDS
                   + 1;
  struct counts *c = counts_of (h, thread_shard - 1, which);
  atomic_fetch_add_explicit (&c->buckets[histogram_bucket_of (ns)], 1,
                             memory_order_relaxed);
  atomic_fetch_add_explicit (&c->sum_ns, ns, memory_order_relaxed);
}

void
histogram_read (struct histogram *h, size_t which,
                struct histogram_snapshot *s)
{
  memset (s, 0, sizeof *s);
  for (unsigned shard = 0; shard < HISTOGRAM_SHARDS; shard++)
    {
      struct counts *c = counts_of (h, shard, which);
      for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
        s->buckets[i] += atomic_load_explicit (&c->buckets[i],
                                               memory_order_relaxed);
      s->sum_ns += atomic_load_explicit (&c->sum_ns, memory_order_relaxed);
    }
  for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
    s->count += s->buckets[i];
}

uint64_t
histogram_quantile_ns (const struct histogram_snapshot *s, uint32_t ppm)
{
  uint64_t rank, seen = 0;

  if (s->count == 0)
    return 0;
  /* The smallest rank with at least PPM of the values at or below it. */
  rank = ((unsigned __int128) s->count * ppm + 999999) / 1000000;
  if (rank == 0)
    rank = 1;
  for (size_t i = 0; i < HISTOGRAM_BOUNDS; i++)
    {
      seen += s->buckets[i];
      if (seen >= rank)
        return histogram_bound_ns (i);
    }
  return histogram_bound_ns (HISTOGRAM_BOUNDS - 1);
}
