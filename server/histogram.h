/* blkcache: latency histograms with log-scale buckets, recorded without
 * locks from many threads.
 *
 * A struct histogram holds NHIST histograms (one per path a caller times)
 * that share per-thread shards: a thread always adds into the shard it was
 * given on its first record, so threads (while there are no more than
 * HISTOGRAM_SHARDS of them) never write a cache line another thread
 * writes.  Threads beyond that share shards, still correctly (the adds are
 * atomic).  A reader sums the shards: a snapshot taken while requests run
 * may miss the records in flight, never counts one twice.
 *
 * Buckets: bucket i < HISTOGRAM_BOUNDS holds values above the bound of
 * bucket i - 1 up to its own bound, histogram_bound_ns (i); the bounds
 * run from 1 us to 10 s, ten per decade (1, 1.25, 1.6, 2, 2.5, 3.15, 4,
 * 5, 6.3, 8 times a power of ten), so each is at most 28% above the one
 * before it.  The last bucket holds everything above 10 s.
 */
#ifndef BLKCACHE_HISTOGRAM_H
#define BLKCACHE_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

/* Bucket bounds from 1 us to 10 s, ten per decade over seven decades. */
#define HISTOGRAM_BOUNDS 71
/* The buckets: one per bound, and one above 10 s. */
#define HISTOGRAM_BUCKETS (HISTOGRAM_BOUNDS + 1)
/* Shards a struct histogram has, each used by the threads given it. */
#define HISTOGRAM_SHARDS 32

/* A histogram summed over its shards. */
struct histogram_snapshot
{
  uint64_t count;  /* values recorded (the sum of the buckets) */
  uint64_t sum_ns; /* their sum */
  uint64_t buckets[HISTOGRAM_BUCKETS];
};

/* NHIST empty histograms.  Returns NULL with errno ENOMEM. */
struct histogram *histogram_new (size_t nhist);

void histogram_free (struct histogram *h);

/* Add the value NS (nanoseconds) to histogram WHICH (below NHIST).  No
 * lock, no allocation; any thread. */
void histogram_record (struct histogram *h, size_t which, uint64_t ns);

/* Sum the shards of histogram WHICH into *S.  Any thread, while others
 * record. */
void histogram_read (struct histogram *h, size_t which,
                     struct histogram_snapshot *s);

/* The upper bound of bucket I (below HISTOGRAM_BOUNDS), in nanoseconds. */
uint64_t histogram_bound_ns (size_t i);

/* The bucket that holds the value NS. */
size_t histogram_bucket_of (uint64_t ns);

/* The PPM'th parts-per-million quantile of S (500000 for the median,
 * 999000 for p99.9): the upper bound of the bucket that holds the value
 * of that rank, so the true value is at most that and above the bound
 * before it (at most 28% lower).  Values above 10 s are reported as 10 s.
 * 0 when S is empty. */
uint64_t histogram_quantile_ns (const struct histogram_snapshot *s,
                                uint32_t ppm);

#endif /* BLKCACHE_HISTOGRAM_H */
