/* Unit tests of server/pacer.c, background writeback's token bucket and
 * its yielding to client requests. */

#include <config.h>

#include <errno.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "cache.h"
#include "pacer.h"

#define NS 1000000000ULL

Test (pacer, unlimited_never_waits)
{
  struct pacer *p = pacer_new (0);
  uint64_t now = cache_clock ();

  cr_assert_not_null (p);
  cr_assert_eq (pacer_step_bytes (p), UINT64_MAX);
  pacer_charge (p, now, UINT64_C (1) << 40);
  cr_assert_eq (pacer_delay (p, now), 0);
  cr_assert_eq (pacer_wait (p, false, now), 0);
  pacer_free (p);
}

/* The bucket starts full (a tenth of a second's worth), goes into debt by
 * what is charged beyond it, and time pays the debt back at the rate. */
Test (pacer, debt_is_paid_back_at_the_rate)
{
  struct pacer *p = pacer_new (1000000);
  uint64_t now = cache_clock ();

  cr_assert_eq (pacer_step_bytes (p), 100000);
  cr_assert_eq (pacer_delay (p, now), 0);
  pacer_charge (p, now, 100000);
  cr_assert_eq (pacer_delay (p, now), 0);
  pacer_charge (p, now, 50000); /* 50 ms of debt */
  uint64_t d = pacer_delay (p, now);
  cr_assert (d > 49000000 && d <= 50000001, "delay %lu", (unsigned long)d);
  cr_assert_eq (pacer_delay (p, now + 50000001), 0);
  /* A long idle time refills no more than the burst. */
  now += 100 * NS;
  cr_assert_eq (pacer_delay (p, now), 0);
  pacer_charge (p, now, 100000);
  cr_assert_eq (pacer_delay (p, now), 0);
  pacer_charge (p, now, 1);
  cr_assert (pacer_delay (p, now) > 0);
  pacer_free (p);
}

/* A writer that waits as told and writes a step each time writes, over
 * any span of simulated time, at most rate * span + burst + one step, and
 * not much less than rate * span. */
Test (pacer, rate_bound_over_time)
{
  const uint64_t rate = 4 << 20, step = 64 << 10;
  struct pacer *p = pacer_new (rate);
  uint64_t start = cache_clock (), now = start, written = 0;

  while (now - start < 10 * NS)
    {
      now += pacer_delay (p, now);
      pacer_charge (p, now, step);
      written += step;
      uint64_t span = now - start;
      cr_assert (written <= rate * span / NS + rate / 10 + step,
                 "%lu bytes in %lu ns", (unsigned long)written,
                 (unsigned long)span);
    }
  cr_assert (written >= rate * 10 - step);
  pacer_free (p);
}

Test (pacer, set_rate_starts_a_full_bucket)
{
  struct pacer *p = pacer_new (1000);
  uint64_t now = cache_clock ();
  struct pacer_stats st;

  pacer_charge (p, now, 1000000);
  cr_assert (pacer_delay (p, now) > 0);
  pacer_set_rate (p, 2000000);
  now = cache_clock ();
  cr_assert_eq (pacer_delay (p, now), 0);
  cr_assert_eq (pacer_rate (p), 2000000);
  pacer_get_stats (p, &st);
  cr_assert_eq (st.rate, 2000000);
  pacer_set_rate (p, 0);
  cr_assert_eq (pacer_delay (p, now), 0);
  pacer_free (p);
}

Test (pacer, requests_in_flight)
{
  struct pacer *p = pacer_new (0);

  pacer_request_begin (p);
  pacer_request_begin (p);
  cr_assert_eq (pacer_requests_in_flight (p), 2);
  pacer_request_end (p);
  pacer_request_end (p);
  cr_assert_eq (pacer_requests_in_flight (p), 0);
  pacer_free (p);
}

/* With a request in flight a yielding writer waits PACER_YIELD_MAX_NS,
 * then goes on anyway; one that may not yield (the dirty limit) or finds
 * no request goes at once. */
Test (pacer, yields_to_requests_for_a_bounded_time)
{
  struct pacer *p = pacer_new (0);
  struct pacer_stats st;
  uint64_t t0;

  t0 = cache_clock ();
  cr_assert_eq (pacer_wait (p, true, UINT64_MAX), 0);
  pacer_get_stats (p, &st);
  cr_assert_eq (st.yields, 0);

  pacer_request_begin (p);
  cr_assert_eq (pacer_wait (p, false, UINT64_MAX), 0);
  pacer_get_stats (p, &st);
  cr_assert_eq (st.yields, 0);

  t0 = cache_clock ();
  cr_assert_eq (pacer_wait (p, true, UINT64_MAX), 0);
  cr_assert (cache_clock () - t0 >= PACER_YIELD_MAX_NS);
  pacer_get_stats (p, &st);
  cr_assert_eq (st.yields, 1);
  pacer_request_end (p);
  pacer_free (p);
}

/* A writer in debt waits for the rate, and gives up at its deadline. */
Test (pacer, wait_for_the_rate_until_the_deadline)
{
  struct pacer *p = pacer_new (1000);
  struct pacer_stats st;
  uint64_t now = cache_clock ();

  pacer_charge (p, now, 100 + 10000); /* 10 s of debt */
  cr_assert_eq (pacer_wait (p, true, now + 20000000), -ETIMEDOUT);
  pacer_get_stats (p, &st);
  cr_assert_eq (st.throttles, 1);
  cr_assert_eq (st.yields, 0);

  pacer_set_rate (p, 100000);
  pacer_charge (p, cache_clock (), 10000 + 1000); /* 10 ms of debt */
  now = cache_clock ();
  cr_assert_eq (pacer_wait (p, false, UINT64_MAX), 0);
  cr_assert (cache_clock () - now >= 9000000);
  pacer_get_stats (p, &st);
  cr_assert_eq (st.throttles, 2);
  pacer_free (p);
}
