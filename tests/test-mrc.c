/* Unit tests of server/mrc.c, the miss-ratio curve: exact LRU reuse
 * distances at sampling rate 1 against an LRU simulated here, the
 * sampling rate and its fall under the sample bound, the scaling of
 * sampled distances, the window and concurrent readers. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "mrc.h"

static struct mrc *
new_parts (uint32_t max_samples, unsigned partitions, double rate,
           uint64_t window)
{
  struct mrc *m = mrc_new (&(struct mrc_config){ .max_samples = max_samples,
                                                 .partitions = partitions,
                                                 .rate = rate,
                                                 .window = window });

  cr_assert_not_null (m);
  return m;
}

static struct mrc *
new_mrc (uint32_t max_samples, double rate, uint64_t window)
{
  struct mrc *m = new_parts (max_samples, 1, rate, window);

  return m;
}

static void
access1 (struct mrc *m, uint64_t blk)
{
  mrc_access (m, blk, 1);
}

static uint64_t
next_random (uint64_t *state)
{
  uint64_t x = (*state += 0x9E3779B97F4A7C15ULL);

  x = (x ^ (x >> 31)) * 0xD6E8FEB86659FD93ULL;
  return x ^ (x >> 32);
}

Test (mrc, rejects_bad_config)
{
  struct mrc_config bad[] = {
    { .max_samples = 0, .partitions = 1, .rate = 1, .window = 100 },
    { .max_samples = 10, .partitions = 1, .rate = 0, .window = 100 },
    { .max_samples = 10, .partitions = 1, .rate = 1.5, .window = 100 },
    { .max_samples = 10, .partitions = 1, .rate = 1, .window = 1 },
    { .max_samples = 10, .partitions = 0, .rate = 1, .window = 100 },
    { .max_samples = 10, .partitions = 3, .rate = 1, .window = 100 },
    { .max_samples = 10, .partitions = 16, .rate = 1, .window = 100 },
    { .max_samples = 1000, .partitions = 128, .rate = 1, .window = 100 },
  };

  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      errno = 0;
      cr_expect_null (mrc_new (&bad[i]));
      cr_expect_eq (errno, EINVAL);
    }
}

Test (mrc, nothing_sampled_yet)
{
  struct mrc *m = new_mrc (16, 1, 100);

  cr_expect_eq (mrc_hit_ratio (m, 8), -1);
  mrc_free (m);
}

/* A B C A B D A: A, B, C and D are first references (misses at every
 * size); then A at distance 2 (B, C), B at 2 (C, A), A at 2 (B, D). */
Test (mrc, small_trace_distances)
{
  struct mrc *m = new_mrc (16, 1, 1000);
  const uint64_t trace[] = { 10, 11, 12, 10, 11, 13, 10 };

  for (size_t i = 0; i < sizeof trace / sizeof *trace; i++)
    access1 (m, trace[i]);
  cr_expect_float_eq (mrc_hit_ratio (m, 0), 0, 1e-12);
  cr_expect_float_eq (mrc_hit_ratio (m, 2), 0, 1e-12);
  cr_expect_float_eq (mrc_hit_ratio (m, 3), 3.0 / 7, 1e-12);
  cr_expect_float_eq (mrc_hit_ratio (m, 100), 3.0 / 7, 1e-12);
  mrc_free (m);
}

/* A range read is its blocks in order: 0..3 then 2..5 finds 2 at
 * distance 1 (3) and 3 at distance 1 (2). */
Test (mrc, range_is_blocks_in_order)
{
  struct mrc *m = new_mrc (16, 1, 1000);

  mrc_access (m, 0, 4);
  mrc_access (m, 2, 4);
  cr_expect_float_eq (mrc_hit_ratio (m, 1), 0, 1e-12);
  cr_expect_float_eq (mrc_hit_ratio (m, 2), 2.0 / 8, 1e-12);
  mrc_free (m);
}

/* An LRU stack of at most NR blocks, the reference the curve must match. */
struct lru
{
  uint64_t blocks[64];
  int nr;
};

/* Reference BLK; returns its stack distance, or -1 the first time. */
static int
lru_reference (struct lru *l, uint64_t blk)
{
  int d = -1;

  for (int i = 0; i < l->nr; i++)
    if (l->blocks[i] == blk)
      {
        d = i;
        break;
      }
  if (d < 0)
    l->nr++;
  memmove (&l->blocks[1], &l->blocks[0],
           (d < 0 ? l->nr - 1 : d) * sizeof *l->blocks);
  l->blocks[0] = blk;
  return d;
}

/* At rate 1 every distance is exact: a skewed random trace over 60 blocks,
 * long enough to wrap the time ring many times (max_samples 64), gives
 * the hit ratio of a simulated LRU at every size. */
Test (mrc, exact_at_rate_one)
{
  enum
  {
    BLOCKS = 60,
    REFS = 20000
  };
  struct mrc *m = new_mrc (64, 1, 2 * REFS);
  struct lru lru = { .nr = 0 };
  uint64_t hist[BLOCKS + 1] = { 0 }, state = 7;

  for (int i = 0; i < REFS; i++)
    {
      /* The product of two uniforms: small block numbers are hotter. */
      uint64_t blk = next_random (&state) % BLOCKS
                     * (next_random (&state) % BLOCKS) / BLOCKS;
      int d = lru_reference (&lru, blk);
      if (d >= 0)
        hist[d]++;
      access1 (m, blk);
    }
  uint64_t hits = 0;
  for (int size = 0; size <= BLOCKS + 1; size++)
    {
      cr_expect_float_eq (mrc_hit_ratio (m, size), (double)hits / REFS, 1e-9,
                          "size %d", size);
      if (size < BLOCKS + 1)
        hits += hist[size];
    }
  mrc_free (m);
}

/* Sampling is spatial: a block is always or never sampled, at the rate
 * asked for. */
Test (mrc, samples_blocks_at_the_rate)
{
  enum
  {
    BLOCKS = 80000
  };
  struct mrc *m = new_mrc (BLOCKS, 1.0 / 8, 1 << 30);
  struct mrc_stats s;

  mrc_access (m, 0, BLOCKS);
  mrc_get_stats (m, &s);
  cr_expect_eq (s.rate_ppm, 125000);
  cr_expect (fabs ((double)s.samples - BLOCKS / 8) < BLOCKS / 8 * 0.05,
             "%" PRIu64 " samples of %d blocks at 1/8", s.samples, BLOCKS);
  cr_expect_eq (s.references, s.samples);
  mrc_access (m, 0, BLOCKS);
  mrc_get_stats (m, &s);
  cr_expect_eq (s.references, 2 * s.samples);
  /* Each sampled block came back after every other sampled block: at a
   * distance of samples - 1, scaled by 8, about the BLOCKS - 1 blocks read
   * in between.  (The sample's share of the reads, a little off 1/8, is
   * evened out at distance 0: within a point.) */
  cr_expect_float_eq (mrc_hit_ratio (m, BLOCKS * 0.95), 0, 0.01);
  cr_expect_float_eq (mrc_hit_ratio (m, BLOCKS * 1.05), 0.5, 0.01);
  mrc_free (m);
}

/* The bound: more blocks than max_samples lower the rate, and the memory
 * stays what it was at creation. */
Test (mrc, sample_bound_lowers_the_rate)
{
  enum
  {
    BLOCKS = 100000,
    MAX = 1000
  };
  struct mrc *m = new_mrc (MAX, 1, 1 << 30);
  struct mrc_stats before, s;

  mrc_get_stats (m, &before);
  mrc_access (m, 0, BLOCKS);
  mrc_get_stats (m, &s);
  cr_expect_leq (s.samples, MAX);
  cr_expect_gt (s.samples, MAX * 9 / 10);
  /* About MAX of BLOCKS block numbers fall below the final threshold. */
  cr_expect (s.rate_ppm > 1000000.0 * MAX / BLOCKS * 0.85
                 && s.rate_ppm < 1000000.0 * MAX / BLOCKS * 1.15,
             "rate %" PRIu64 " ppm", s.rate_ppm);
  cr_expect_eq (s.memory_bytes, before.memory_bytes);
  mrc_free (m);
}

/* Sampled distances are scaled: on uniform random reads of N blocks an
 * LRU cache of S blocks hits S / N of them; the fixed-size sample (2000
 * of 20000 blocks, in PARTITIONS partitions) estimates it within 3
 * points. */
static void
uniform_reads (unsigned partitions)
{
  enum
  {
    BLOCKS = 20000,
    REFS = 400000
  };
  struct mrc *m = new_parts (2000, partitions, 1, 100000);
  uint64_t state = 11;

  for (int i = 0; i < REFS; i++)
    access1 (m, next_random (&state) % BLOCKS);
  for (int size = BLOCKS / 8; size <= BLOCKS; size *= 2)
    {
      double want = (double)size / BLOCKS, got = mrc_hit_ratio (m, size);
      cr_expect (fabs (got - want) < 0.03, "size %d: %.4f, LRU %.4f", size, got,
                 want);
    }
  mrc_free (m);
}

Test (mrc, sampled_curve_of_uniform_reads) { uniform_reads (1); }

Test (mrc, partitioned_curve_of_uniform_reads) { uniform_reads (8); }

/* Partitions at rate 1 split the blocks between them: each block is
 * tracked by one, so the samples are the blocks read. */
Test (mrc, partitions_split_the_blocks)
{
  struct mrc *m = new_parts (4096, 8, 1, 1 << 30);
  struct mrc_stats s;

  mrc_access (m, 0, 3000);
  mrc_access (m, 0, 3000);
  mrc_get_stats (m, &s);
  cr_expect_eq (s.samples, 3000);
  cr_expect_eq (s.references, 6000);
  cr_expect_eq (s.rate_ppm, 1000000);
  /* Every block came back after the 2999 others, counted in its partition
   * (about 375 blocks each) times 8. */
  cr_expect_float_eq (mrc_hit_ratio (m, 2400), 0, 1e-12);
  cr_expect_float_eq (mrc_hit_ratio (m, 3600), 0.5, 1e-12);
  mrc_free (m);
}

/* The curve covers the window: after a loop over 10 blocks, twice the
 * window of first references leaves none of the loop's hits in it. */
Test (mrc, window_forgets_old_references)
{
  enum
  {
    WINDOW = 10000
  };
  struct mrc *m = new_mrc (4 * WINDOW, 1, WINDOW);

  for (int i = 0; i < WINDOW; i++)
    access1 (m, i % 10);
  cr_expect_gt (mrc_hit_ratio (m, 10), 0.99);
  mrc_access (m, 1000, 2 * WINDOW);
  cr_expect_float_eq (mrc_hit_ratio (m, 10), 0, 1e-12);
  mrc_free (m);
}

struct reader
{
  struct mrc *m;
  uint64_t first;
};

static void *
read_loop (void *arg)
{
  struct reader *r = arg;

  for (int pass = 0; pass < 50; pass++)
    mrc_access (r->m, r->first, 1000);
  return NULL;
}

/* Readers on many threads, in 4 partitions: the tracked set stays within
 * its bound and the curve sees the 4000 blocks' loops. */
Test (mrc, concurrent_readers)
{
  enum
  {
    THREADS = 4
  };
  struct mrc *m = new_parts (1500, 4, 1, 1 << 30);
  struct reader r[THREADS];
  pthread_t t[THREADS];
  struct mrc_stats s;

  for (int i = 0; i < THREADS; i++)
    {
      r[i] = (struct reader){ .m = m, .first = i * 1000 };
      cr_assert_eq (pthread_create (&t[i], NULL, read_loop, &r[i]), 0);
    }
  for (int i = 0; i < THREADS; i++)
    pthread_join (t[i], NULL);
  mrc_get_stats (m, &s);
  cr_expect_leq (s.samples, 1500);
  cr_expect_lt (s.rate_ppm, 1000000);
  cr_expect_gt (s.references, 0);
  cr_expect_gt (mrc_hit_ratio (m, 4000), 0.9);
  mrc_free (m);
}

/* The first block number at or after FROM not sampled at rate 1/8. */
static uint64_t
unsampled_block (uint64_t from)
{
  for (uint64_t blk = from;; blk++)
    {
      struct mrc *probe = new_mrc (16, 1.0 / 8, 1000);
      struct mrc_stats s;

      access1 (probe, blk);
      mrc_get_stats (probe, &s);
      mrc_free (probe);
      if (s.references == 0)
        return blk;
    }
}

/* A hot block the sample misses: half the reads are of it, between reads
 * of blocks never read again.  An LRU cache of 2 blocks or more hits it
 * every time but the first; the sample sees only cold reads, fewer than
 * the partition's reads times 1/R, and puts the missing weight at
 * distance 0 (SHARDS_adj), where the hot block's reads are. */
Test (mrc, adjusts_for_an_unsampled_hot_block)
{
  enum
  {
    READS = 8000
  };
  uint64_t hot = unsampled_block (1u << 20);
  struct mrc *m = new_mrc (READS, 1.0 / 8, 1 << 30);

  for (uint64_t i = 0; i < READS; i++)
    {
      access1 (m, hot);
      access1 (m, i);
    }
  cr_expect_float_eq (mrc_hit_ratio (m, 2), 0.5, 0.05);
  cr_expect_float_eq (mrc_hit_ratio (m, 0), 0, 1e-12);
  mrc_free (m);
}
