/* Unit tests of server/flush_progress.c: the blocks left over the running
 * flushes, with flushes that overlap, overshoot their count or end
 * early, and from many threads at once. */

#include <config.h>

#include <pthread.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "flush_progress.h"

Test (flush_progress, one_flush_counts_down_to_zero)
{
  struct flush_progress p = { 0 };
  struct flush_share f;

  cr_assert_eq (flush_progress_left (&p), 0);
  flush_progress_begin (&p, &f, 600);
  cr_assert_eq (flush_progress_left (&p), 600);
  flush_progress_advance (&p, &f, 256);
  cr_assert_eq (flush_progress_left (&p), 344);
  flush_progress_advance (&p, &f, 256);
  cr_assert_eq (flush_progress_left (&p), 88);
  flush_progress_end (&p, &f);
  cr_assert_eq (flush_progress_left (&p), 0);
}

Test (flush_progress, a_flush_never_takes_off_more_than_it_added)
{
  struct flush_progress p = { 0 };
  struct flush_share a, b;

  flush_progress_begin (&p, &a, 10);
  flush_progress_begin (&p, &b, 5);
  cr_assert_eq (flush_progress_left (&p), 15);
  /* B writes blocks dirtied after it counted: more than its share. */
  flush_progress_advance (&p, &b, 8);
  cr_assert_eq (flush_progress_left (&p), 10, "B's share only");
  flush_progress_end (&p, &b);
  cr_assert_eq (flush_progress_left (&p), 10);
  /* A ends early: its blocks were written by B. */
  flush_progress_advance (&p, &a, 3);
  cr_assert_eq (flush_progress_left (&p), 7);
  flush_progress_end (&p, &a);
  cr_assert_eq (flush_progress_left (&p), 0);
}

enum
{
  THREADS = 8,
  ROUNDS = 5000,
};

static struct flush_progress shared;

static void *
flush_thread (void *arg)
{
  for (int i = 0; i < ROUNDS; i++)
    {
      struct flush_share f;
      flush_progress_begin (&shared, &f, 7);
      flush_progress_advance (&shared, &f, 3);
      flush_progress_advance (&shared, &f, 3);
      flush_progress_end (&shared, &f);
    }
  return NULL;
}

Test (flush_progress, zero_once_flushes_from_many_threads_end)
{
  pthread_t t[THREADS];

  for (int i = 0; i < THREADS; i++)
    cr_assert_eq (pthread_create (&t[i], NULL, flush_thread, NULL), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join (t[i], NULL);
  cr_assert_eq (flush_progress_left (&shared), 0);
}
