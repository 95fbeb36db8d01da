/* Unit tests of server/histogram.c: the bucket bounds and which bucket a
 * value lands in, the quantiles, the sums, and records from many threads
 * at once (each thread on its shard) adding up exactly. */

#include <config.h>

#include <pthread.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "histogram.h"

#define US 1000ULL
#define MS 1000000ULL
#define S 1000000000ULL

Test (histogram, bounds_run_from_1us_to_10s_ten_per_decade)
{
  cr_assert_eq (histogram_bound_ns (0), 1 * US);
  cr_assert_eq (histogram_bound_ns (1), 1250);
  cr_assert_eq (histogram_bound_ns (5), 3150);
  cr_assert_eq (histogram_bound_ns (10), 10 * US);
  cr_assert_eq (histogram_bound_ns (30), 1 * MS);
  cr_assert_eq (histogram_bound_ns (67), 5 * S);
  cr_assert_eq (histogram_bound_ns (HISTOGRAM_BOUNDS - 1), 10 * S);
  for (size_t i = 1; i < HISTOGRAM_BOUNDS; i++)
    {
      uint64_t lo = histogram_bound_ns (i - 1), hi = histogram_bound_ns (i);
      cr_assert_gt (hi, lo, "bound %zu", i);
      /* At most 28% apart: a quantile is off by at most that. */
      cr_assert_leq (hi * 100, lo * 128, "bound %zu: %lu after %lu", i,
                     (unsigned long) hi, (unsigned long) lo);
    }
}

Test (histogram, a_value_lands_in_the_first_bucket_whose_bound_holds_it)
{
  cr_assert_eq (histogram_bucket_of (0), 0);
  cr_assert_eq (histogram_bucket_of (1 * US), 0);
  cr_assert_eq (histogram_bucket_of (1 * US + 1), 1);
  cr_assert_eq (histogram_bucket_of (1250), 1);
  cr_assert_eq (histogram_bucket_of (1251), 2);
  cr_assert_eq (histogram_bucket_of (10 * S), HISTOGRAM_BOUNDS - 1);
  cr_assert_eq (histogram_bucket_of (10 * S + 1), HISTOGRAM_BOUNDS);
  cr_assert_eq (histogram_bucket_of (UINT64_MAX), HISTOGRAM_BOUNDS);
  for (size_t i = 0; i < HISTOGRAM_BOUNDS; i++)
    {
      uint64_t b = histogram_bound_ns (i);
      cr_assert_eq (histogram_bucket_of (b), i);
      cr_assert_eq (histogram_bucket_of (b + 1), i + 1);
    }
}

Test (histogram, counts_sums_and_separate_histograms)
{
  struct histogram *h = histogram_new (3);
  struct histogram_snapshot s;

  cr_assert_not_null (h);
  histogram_record (h, 1, 500);
  histogram_record (h, 1, 2 * MS);
  histogram_record (h, 1, 20 * S);
  histogram_read (h, 1, &s);
  cr_assert_eq (s.count, 3);
  cr_assert_eq (s.sum_ns, 500 + 2 * MS + 20 * S);
  cr_assert_eq (s.buckets[0], 1);
  cr_assert_eq (s.buckets[histogram_bucket_of (2 * MS)], 1);
  cr_assert_eq (s.buckets[HISTOGRAM_BOUNDS], 1);
  histogram_read (h, 0, &s);
  cr_assert_eq (s.count, 0);
  cr_assert_eq (s.sum_ns, 0);
  histogram_read (h, 2, &s);
  cr_assert_eq (s.count, 0);
  histogram_free (h);
}

Test (histogram, quantiles_are_the_bound_of_the_bucket_of_that_rank)
{
  struct histogram *h = histogram_new (1);
  struct histogram_snapshot s;

  histogram_read (h, 0, &s);
  cr_assert_eq (histogram_quantile_ns (&s, 500000), 0, "empty: 0");
  /* 1000 values: 900 of 3 us, 95 of 700 us, 4 of 40 ms, 1 of 30 s. */
  for (int i = 0; i < 900; i++)
    histogram_record (h, 0, 3 * US);
  for (int i = 0; i < 95; i++)
    histogram_record (h, 0, 700 * US);
  for (int i = 0; i < 4; i++)
    histogram_record (h, 0, 40 * MS);
  histogram_record (h, 0, 30 * S);
  histogram_read (h, 0, &s);
  cr_assert_eq (s.count, 1000);
  cr_assert_eq (histogram_quantile_ns (&s, 500000), 3150);
  cr_assert_eq (histogram_quantile_ns (&s, 900000), 3150, "rank 900");
  cr_assert_eq (histogram_quantile_ns (&s, 901000), 800 * US, "rank 901");
  cr_assert_eq (histogram_quantile_ns (&s, 990000), 800 * US);
  cr_assert_eq (histogram_quantile_ns (&s, 995000), 800 * US, "rank 995");
  cr_assert_eq (histogram_quantile_ns (&s, 996000), 40 * MS, "rank 996");
  cr_assert_eq (histogram_quantile_ns (&s, 999000), 40 * MS);
  /* The last value is above 10 s: reported as 10 s. */
  cr_assert_eq (histogram_quantile_ns (&s, 1000000), 10 * S);
  cr_assert_eq (histogram_quantile_ns (&s, 0), 3150, "rank 0 is rank 1");
  histogram_free (h);
}

Test (histogram, one_value_is_every_quantile)
{
  struct histogram *h = histogram_new (1);
  struct histogram_snapshot s;

  histogram_record (h, 0, 7 * MS);
  histogram_read (h, 0, &s);
  cr_assert_eq (histogram_quantile_ns (&s, 500000), 8 * MS);
  cr_assert_eq (histogram_quantile_ns (&s, 999000), 8 * MS);
  histogram_free (h);
}

enum
{
  THREADS = HISTOGRAM_SHARDS + 8, /* more than the shards: some share */
  RECORDS = 20000,
};

struct worker
{
  struct histogram *h;
  unsigned id;
};

/* Thread ID records RECORDS values i + ID (i from 0) in histogram 0 and
 * one value ID in histogram 1. */
static void *
record_thread (void *arg)
{
  struct worker *w = arg;

  for (uint64_t i = 0; i < RECORDS; i++)
    histogram_record (w->h, 0, i * 1000 + w->id);
  histogram_record (w->h, 1, w->id);
  return NULL;
}

Test (histogram, records_from_many_threads_add_up)
{
  struct histogram *h = histogram_new (2);
  struct worker w[THREADS];
  pthread_t t[THREADS];
  struct histogram_snapshot s;
  uint64_t want_sum = 0, want_buckets[HISTOGRAM_BUCKETS] = { 0 };

  for (unsigned i = 0; i < THREADS; i++)
    {
      w[i] = (struct worker){ .h = h, .id = i };
      cr_assert_eq (pthread_create (&t[i], NULL, record_thread, &w[i]), 0);
    }
  for (unsigned i = 0; i < THREADS; i++)
    pthread_join (t[i], NULL);
  for (unsigned id = 0; id < THREADS; id++)
    for (uint64_t i = 0; i < RECORDS; i++)
      {
        want_sum += i * 1000 + id;
        want_buckets[histogram_bucket_of (i * 1000 + id)]++;
      }
  histogram_read (h, 0, &s);
  cr_assert_eq (s.count, (uint64_t) THREADS * RECORDS);
  cr_assert_eq (s.sum_ns, want_sum);
  for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
    cr_assert_eq (s.buckets[i], want_buckets[i], "bucket %zu", i);
  histogram_read (h, 1, &s);
  cr_assert_eq (s.count, THREADS);
  cr_assert_eq (s.sum_ns, (uint64_t) THREADS * (THREADS - 1) / 2);
  histogram_free (h);
}
