/* Unit tests of server/minisim.c, the miss-ratio curve by miniature
 * simulation: at sampling rate 1 its seven caches against a full S3-FIFO
 * written here from cache.c's rules, hit for hit; sampled, within a few
 * points of it; resizing, the memory bound, the window and concurrent
 * readers. */

#include <config.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "minisim.h"

/* --- a full S3-FIFO over blocks 0..nblocks-1 --------------------------- */

/* A FIFO of block numbers in a ring: push at the head (newest), pop at
 * the tail (oldest). */
struct ring
{
  uint64_t *blk;
  uint64_t size, tail, count;
};

enum where
{
  NOWHERE,
  IN_SMALL,
  IN_MAIN,
};

struct s3fifo
{
  uint64_t capacity, small_target, ghost_size;
  struct ring small, main;
  uint8_t *where, *freq;
  uint64_t *ghost;     /* ring of ghost_size block numbers */
  int64_t *ghost_slot; /* per block: its ghost slot, or -1 */
  uint64_t ghost_head;
  uint64_t hits;
};

static void
ring_push (struct ring *r, uint64_t blk)
{
  r->blk[(r->tail + r->count++) % r->size] = blk;
}

static uint64_t
ring_pop (struct ring *r)
{
  uint64_t blk = r->blk[r->tail];

  r->tail = (r->tail + 1) % r->size;
  r->count--;
  return blk;
}

static void
s3_init (struct s3fifo *s, uint64_t capacity, uint64_t nblocks)
{
  memset (s, 0, sizeof *s);
  s->capacity = capacity;
  s->small_target = capacity / 10 ? capacity / 10 : 1;
  s->ghost_size = capacity > 1 ? capacity - capacity / 10 : 1;
  s->small.size = s->main.size = capacity + 1;
  s->small.blk = calloc (s->small.size, sizeof (uint64_t));
  s->main.blk = calloc (s->main.size, sizeof (uint64_t));
  s->where = calloc (nblocks, 1);
  s->freq = calloc (nblocks, 1);
  s->ghost = calloc (s->ghost_size, sizeof (uint64_t));
  s->ghost_slot = malloc (nblocks * sizeof (int64_t));
  cr_assert (s->small.blk && s->main.blk && s->where && s->freq && s->ghost
             && s->ghost_slot);
  memset (s->ghost_slot, 0xff, nblocks * sizeof (int64_t));
  for (uint64_t i = 0; i < s->ghost_size; i++)
    s->ghost[i] = UINT64_MAX;
}

static void
s3_free (struct s3fifo *s)
{
  free (s->small.blk);
  free (s->main.blk);
  free (s->where);
  free (s->freq);
  free (s->ghost);
  free (s->ghost_slot);
}

static void
s3_evict (struct s3fifo *s)
{
  if (s->small.count >= s->small_target || s->main.count == 0)
    {
      for (uint64_t lap = s->small.count; lap > 0; lap--)
        {
          uint64_t blk = ring_pop (&s->small);
          if (s->freq[blk] > 0)
            {
              s->where[blk] = IN_MAIN;
              ring_push (&s->main, blk);
              continue;
            }
          s->where[blk] = NOWHERE;
          if (s->ghost[s->ghost_head] != UINT64_MAX)
            s->ghost_slot[s->ghost[s->ghost_head]] = -1;
          s->ghost[s->ghost_head] = blk;
          s->ghost_slot[blk] = s->ghost_head;
          s->ghost_head = (s->ghost_head + 1) % s->ghost_size;
          return;
        }
    }
  for (;;)
    {
      uint64_t blk = ring_pop (&s->main);
      if (s->freq[blk] == 0)
        {
          s->where[blk] = NOWHERE;
          return;
        }
      s->freq[blk]--;
      ring_push (&s->main, blk);
    }
}

static void
s3_access (struct s3fifo *s, uint64_t blk)
{
  if (s->where[blk] != NOWHERE)
    {
      s->hits++;
      if (s->freq[blk] < 3)
        s->freq[blk]++;
      return;
    }
  while (s->small.count + s->main.count >= s->capacity)
    s3_evict (s);
  s->freq[blk] = 0;
  if (s->ghost_slot[blk] >= 0)
    {
      s->ghost[s->ghost_slot[blk]] = UINT64_MAX;
      s->ghost_slot[blk] = -1;
      s->where[blk] = IN_MAIN;
      ring_push (&s->main, blk);
    }
  else
    {
      s->where[blk] = IN_SMALL;
      ring_push (&s->small, blk);
    }
}

/* --- workloads --------------------------------------------------------- */

static uint64_t
next_random (uint64_t *state)
{
  uint64_t x = (*state += 0x9E3779B97F4A7C15ULL);

  x = (x ^ (x >> 31)) * 0xD6E8FEB86659FD93ULL;
  return x ^ (x >> 32);
}

/* A seeded Zipf (theta 0.9) trace of N reads over NBLOCKS blocks, the
 * ranks shuffled over the block numbers. */
static uint64_t *
zipf_trace (uint64_t nblocks, uint64_t n, uint64_t seed)
{
  double *cdf = malloc (nblocks * sizeof *cdf), total = 0;
  uint64_t *perm = malloc (nblocks * sizeof *perm);
  uint64_t *trace = malloc (n * sizeof *trace);

  cr_assert (cdf && perm && trace);
  for (uint64_t r = 0; r < nblocks; r++)
    {
      total += pow (r + 1, -0.9);
      cdf[r] = total;
      perm[r] = r;
    }
  for (uint64_t r = nblocks - 1; r > 0; r--)
    {
      uint64_t j = next_random (&seed) % (r + 1), t = perm[r];
      perm[r] = perm[j];
      perm[j] = t;
    }
  for (uint64_t i = 0; i < n; i++)
    {
      double u = (next_random (&seed) >> 11) * 0x1p-53 * total;
      uint64_t lo = 0, hi = nblocks - 1;
      while (lo < hi)
        {
          uint64_t mid = (lo + hi) / 2;
          if (cdf[mid] < u)
            lo = mid + 1;
          else
            hi = mid;
        }
      trace[i] = perm[lo];
    }
  free (cdf);
  free (perm);
  return trace;
}

static struct minisim *
new_sim (uint64_t capacity, uint32_t max_entries, double rate, uint64_t window)
{
  struct minisim *m
      = minisim_new (&(struct minisim_config){ .capacity = capacity,
                                               .max_entries = max_entries,
                                               .rate = rate,
                                               .window = window });

  cr_assert_not_null (m);
  return m;
}

/* The hit ratio of a full S3-FIFO of BLOCKS blocks over TRACE. */
static double
full_hit_ratio (const uint64_t *trace, uint64_t n, uint64_t nblocks,
                uint64_t blocks)
{
  struct s3fifo s;
  double ratio;

  s3_init (&s, blocks, nblocks);
  for (uint64_t i = 0; i < n; i++)
    s3_access (&s, trace[i]);
  ratio = (double)s.hits / n;
  s3_free (&s);
  return ratio;
}

/* --- tests ------------------------------------------------------------- */

Test (minisim, rejects_bad_config)
{
  struct minisim_config bad[] = {
    { .capacity = 0, .max_entries = 100, .rate = 1, .window = 100 },
    { .capacity = 64, .max_entries = 0, .rate = 1, .window = 100 },
    { .capacity = 64, .max_entries = 100, .rate = 0, .window = 100 },
    { .capacity = 64, .max_entries = 100, .rate = 1.5, .window = 100 },
    { .capacity = 64, .max_entries = 100, .rate = 1, .window = 1 },
    { .capacity = UINT64_MAX / 16,
      .max_entries = 100,
      .rate = 1,
      .window = 100 },
  };

  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      errno = 0;
      cr_expect_null (minisim_new (&bad[i]));
      cr_expect_eq (errno, EINVAL);
    }
}

Test (minisim, nothing_read_yet)
{
  struct minisim *m = new_sim (64, 100000, 1, 100);

  cr_expect_eq (minisim_hit_ratio (m, 3), -1);
  cr_expect_eq (minisim_size (m, 0), 8);
  cr_expect_eq (minisim_size (m, 3), 64);
  cr_expect_eq (minisim_size (m, 6), 512);
  minisim_free (m);
}

/* At rate 1 each miniature cache is the full cache: the same hits. */
Test (minisim, exact_at_rate_1)
{
  const uint64_t nblocks = 4096, n = 100000;
  uint64_t *trace = zipf_trace (nblocks, n, 1);
  struct minisim *m = new_sim (64, 100000, 1, 2 * n);
  struct minisim_stats st;

  for (uint64_t i = 0; i < n; i++)
    minisim_access (m, trace[i], 1);
  minisim_get_stats (m, &st);
  cr_expect_eq (st.rate_ppm, 1000000);
  cr_expect_eq (st.references, n);
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    {
      double full = full_hit_ratio (trace, n, nblocks, minisim_size (m, i));
      cr_expect (fabs (minisim_hit_ratio (m, i) - full) < 1e-9,
                 "size %u: %f, full %f", i, minisim_hit_ratio (m, i), full);
    }
  minisim_free (m);
  free (trace);
}

/* A resize starts afresh at the new sizes, exact again at rate 1; a bad
 * one leaves the curve as it was. */
Test (minisim, resize)
{
  const uint64_t nblocks = 4096, n = 50000;
  uint64_t *trace = zipf_trace (nblocks, n, 4);
  struct minisim *m = new_sim (64, 100000, 1, 2 * n);

  minisim_access (m, 0, 1000);
  cr_expect_eq (minisim_resize (m, 0), -EINVAL);
  cr_expect_eq (minisim_size (m, 3), 64);
  cr_expect (minisim_hit_ratio (m, 3) >= 0);
  cr_expect_eq (minisim_resize (m, 128), 0);
  cr_expect_eq (minisim_size (m, 3), 128);
  cr_expect_eq (minisim_hit_ratio (m, 3), -1);
  for (uint64_t i = 0; i < n; i++)
    minisim_access (m, trace[i], 1);
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    {
      double full = full_hit_ratio (trace, n, nblocks, minisim_size (m, i));
      cr_expect (fabs (minisim_hit_ratio (m, i) - full) < 1e-9,
                 "size %u: %f, full %f", i, minisim_hit_ratio (m, i), full);
    }
  minisim_free (m);
  free (trace);
}

/* Sampled at about 1/8 under the entry bound: within 3 points of the full
 * caches from the cache size up, 5 below (their miniatures hold 16 to 66
 * blocks). */
Test (minisim, sampled_close_to_full)
{
  const uint64_t nblocks = 65536, n = 400000;
  uint64_t *trace = zipf_trace (nblocks, n, 2);
  struct minisim *m = new_sim (1024, 4000, 1, 2 * n);
  struct minisim_stats st;

  for (uint64_t i = 0; i < n; i++)
    minisim_access (m, trace[i], 1);
  minisim_get_stats (m, &st);
  cr_expect (st.rate_ppm > 100000 && st.rate_ppm < 150000, "rate %lu ppm",
             (unsigned long)st.rate_ppm);
  cr_expect (st.entries <= 4000);
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    {
      double full = full_hit_ratio (trace, n, nblocks, minisim_size (m, i));
      double est = minisim_hit_ratio (m, i);
      cr_expect (fabs (est - full) < (i >= 3 ? 0.03 : 0.05),
                 "size %u: %f, full %f", i, est, full);
    }
  minisim_free (m);
  free (trace);
}

/* The memory is fixed at creation, the blocks held stay under the bound,
 * and a small cache is sampled at rate 1. */
Test (minisim, memory_bound)
{
  struct minisim *big = new_sim (1 << 20, 16384, 1, 1 << 20);
  struct minisim *small = new_sim (64, 16384, 1, 1 << 20);
  struct minisim_stats before, after;
  uint64_t seed = 3;

  minisim_get_stats (big, &before);
  for (int i = 0; i < 200000; i++)
    minisim_access (big, next_random (&seed) % (1 << 24), 1);
  minisim_get_stats (big, &after);
  cr_expect_eq (before.memory_bytes, after.memory_bytes);
  cr_expect (after.entries > 0 && after.entries <= 16384);
  cr_expect (after.rate_ppm < 1000);
  cr_expect (after.memory_bytes < 16384 * 40 + 4096);
  minisim_get_stats (small, &after);
  cr_expect_eq (after.rate_ppm, 1000000);
  minisim_free (big);
  minisim_free (small);
}

/* The curve forgets reads older than the window: distinct blocks (all
 * misses), then one block over and over (all hits). */
Test (minisim, window)
{
  struct minisim *m = new_sim (64, 100000, 1, 1000);

  minisim_access (m, 0, 10000);
  cr_expect (minisim_hit_ratio (m, 6) < 0.01);
  for (int i = 0; i < 2000; i++)
    minisim_access (m, 5, 1);
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    cr_expect (minisim_hit_ratio (m, i) > 0.99, "size %u: %f", i,
               minisim_hit_ratio (m, i));
  minisim_free (m);
}

static struct minisim *shared;

static void *
reader (void *arg)
{
  uint64_t seed = (uintptr_t)arg;

  for (int i = 0; i < 50000; i++)
    minisim_access (shared, next_random (&seed) % 4096, 1 + i % 3);
  return NULL;
}

/* Concurrent readers: every block read counted, every sampled one
 * simulated. */
Test (minisim, concurrent_readers)
{
  pthread_t t[4];
  struct minisim_stats st;

  shared = new_sim (256, 100000, 1, 1 << 30);
  for (uintptr_t i = 0; i < 4; i++)
    cr_assert_eq (pthread_create (&t[i], NULL, reader, (void *)(i + 1)), 0);
  for (int i = 0; i < 4; i++)
    pthread_join (t[i], NULL);
  minisim_get_stats (shared, &st);
  cr_expect_eq (st.references, 4 * 99999); /* 1 + i % 3 blocks a read */
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    {
      double r = minisim_hit_ratio (shared, i);
      cr_expect (r >= 0 && r <= 1);
    }
  minisim_free (shared);
}
