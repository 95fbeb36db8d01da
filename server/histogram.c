/* blkcache: latency histograms.  See histogram.h.
 *
 * Layout: an array of HISTOGRAM_SHARDS shards, each starting on a cache
 * line of its own and holding, for each of the NHIST histograms, its
 * bucket counters and its sum.  A thread takes a shard number from a
 * global counter on its first record and keeps it in a thread-local
 * variable.  Recording is a binary search over the 71 bounds (7
 * steps) and two relaxed atomic adds to the thread's own shard;
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

/* The bounds in nanoseconds, ten a decade (the Renard R10 series: 1,
 * 1.25, 1.6, ... 8), then UINT64_MAX up to a power of two of entries, so
 * that histogram_bucket_of is a binary search of fixed steps. */
#define DECADE(p)                                                            \
  100 * (p), 125 * (p), 160 * (p), 200 * (p), 250 * (p), 315 * (p),          \
      400 * (p), 500 * (p), 630 * (p), 800 * (p)
#define BOUNDS_PADDED 128
static const uint64_t bounds[BOUNDS_PADDED] = {
  DECADE (10ULL),       DECADE (100ULL),        DECADE (1000ULL),
  DECADE (10000ULL),    DECADE (100000ULL),     DECADE (1000000ULL),
  DECADE (10000000ULL), 100 * 100000000ULL, /* 10 s */
  [HISTOGRAM_BOUNDS ... BOUNDS_PADDED - 1] = UINT64_MAX,
};
#undef DECADE

/* 0: not given one yet; else the shard number + 1. */
static _Thread_local unsigned thread_shard;
static atomic_uint next_shard;

uint64_t
histogram_bound_ns (size_t i)
{
  return bounds[i];
}

/* The number of bounds below NS, which is its bucket: 7 steps with no
 * branch to mispredict (each step a conditional move). */
size_t
histogram_bucket_of (uint64_t ns)
{
  size_t i = 0;

  for (size_t step = BOUNDS_PADDED / 2; step > 0; step /= 2)
    if (bounds[i + step - 1] < ns)
      i += step;
  return i;
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
