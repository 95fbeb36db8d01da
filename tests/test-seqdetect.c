/* Unit tests for server/seqdetect.c: which reads count as a sequential
 * stream past the cutoff. */
#include <config.h>

#include <criterion/criterion.h>
#include <stdint.h>

#include "seqdetect.h"

enum { K64 = 64 * 1024, CUTOFF = 1024 * 1024 };

static struct seqdetect *
new_detector (void)
{
  struct seqdetect *sd = seqdetect_new (CUTOFF);
  cr_assert_not_null (sd);
  return sd;
}

Test (seqdetect, a_stream_passes_the_cutoff_after_cutoff_bytes)
{
  struct seqdetect *sd = new_detector ();

  for (int i = 0; i < CUTOFF / K64; i++)
    cr_assert_not (seqdetect_read (sd, 1000000 + (uint64_t)i * K64, K64),
                   "read %d is within the cutoff", i);
  cr_assert (seqdetect_read (sd, 1000000 + CUTOFF, K64));
  cr_assert (seqdetect_read (sd, 1000000 + CUTOFF + K64, 512));
  seqdetect_free (sd);
}

Test (seqdetect, scattered_and_repeated_reads_are_no_stream)
{
  struct seqdetect *sd = new_detector ();

  for (int i = 0; i < 1000; i++)
    cr_assert_not (seqdetect_read (sd, (uint64_t)((i * 37) % 1024) * 2 * K64,
                                   K64));
  for (int i = 0; i < 100; i++)
    cr_assert_not (seqdetect_read (sd, 0, K64), "the same block again");
  seqdetect_free (sd);
}

/* nbdkit's threads may run a client's neighbouring requests out of
 * order: the later one first still extends the stream. */
Test (seqdetect, neighbours_out_of_order_are_one_stream)
{
  struct seqdetect *sd = new_detector ();
  int n = CUTOFF / K64;

  for (int i = 0; i < n; i += 2)
    {
      cr_assert_not (seqdetect_read (sd, (uint64_t)(i + 1) * K64, K64));
      cr_assert_not (seqdetect_read (sd, (uint64_t)i * K64, K64));
    }
  cr_assert (seqdetect_read (sd, (uint64_t)n * K64, K64));
  seqdetect_free (sd);
}

Test (seqdetect, interleaved_streams_are_told_apart)
{
  struct seqdetect *sd = new_detector ();
  uint64_t a = 0, b = 1ULL << 30;
  bool past_a = false, past_b = false;

  for (int i = 0; i <= CUTOFF / K64; i++)
    {
      past_a = seqdetect_read (sd, a + (uint64_t)i * K64, K64);
      past_b = seqdetect_read (sd, b + (uint64_t)i * K64, K64);
    }
  cr_assert (past_a && past_b);
  seqdetect_free (sd);
}

/* A stream not touched while SEQDETECT_STREAMS others were read is
 * forgotten: it starts again from zero. */
Test (seqdetect, the_least_recent_stream_is_forgotten)
{
  struct seqdetect *sd = new_detector ();
  int n = CUTOFF / K64;

  for (int i = 0; i < n; i++)
    seqdetect_read (sd, (uint64_t)i * K64, K64);
  for (int s = 1; s <= SEQDETECT_STREAMS; s++)
    seqdetect_read (sd, (uint64_t)s << 32, K64);
  cr_assert_not (seqdetect_read (sd, (uint64_t)n * K64, K64));
  seqdetect_free (sd);
}
