/* Unit and stress tests of server/ordered.c, the ordered-extent queue. */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <criterion/criterion.h>

#include "ordered.h"
#include "unit-helpers.h"

static struct ordered_extent *
add (struct ordered_queue *q, uint64_t start, uint64_t end,
     enum ordered_kind kind)
{
  struct ordered_extent *oe;

  cr_assert_eq (ordered_add (q, start, end, kind, &oe), 0);
  return oe;
}

/* Poll the stats until FIELD reaches N: lets a test know another thread has
 * gone to sleep in the queue. */
#define WAIT_FOR_STAT(q, field, n)                                             \
  do                                                                           \
    {                                                                          \
      struct ordered_stats st_;                                                \
      for (;;)                                                                 \
        {                                                                      \
          ordered_get_stats ((q), &st_);                                       \
          if (st_.field >= (n))                                                \
            break;                                                             \
          sleep_us (1000);                                                     \
        }                                                                      \
    }                                                                          \
  while (0)

Test (ordered, add_lookup_complete)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct ordered_extent *a, *b, *oe;
  struct ordered_info info;
  struct ordered_stats st;

  cr_assert_eq (ordered_add (q, 10, 9, ORDERED_TRIM, &oe), -EINVAL);
  a = add (q, 0, 99, ORDERED_DIRECT_WRITE);
  b = add (q, 200, 299, ORDERED_WRITEBACK);

  cr_assert_not (ordered_lookup (q, 100, 199, &info));
  cr_assert (ordered_lookup (q, 50, 250, &info));
  cr_assert_eq (info.start, 0);
  cr_assert_eq (info.end, 99);
  cr_assert_eq (info.kind, ORDERED_DIRECT_WRITE);
  cr_assert (ordered_lookup (q, 299, UINT64_MAX, NULL));
  cr_assert (ordered_lookup (q, 99, 99, NULL));

  ordered_complete (q, a, 0);
  cr_assert (ordered_lookup (q, 50, 250, &info));
  cr_assert_eq (info.start, 200);
  cr_assert_eq (info.kind, ORDERED_WRITEBACK);
  ordered_complete (q, b, 0);
  cr_assert_not (ordered_lookup (q, 0, UINT64_MAX, NULL));

  ordered_get_stats (q, &st);
  cr_assert_eq (st.added, 2);
  cr_assert_eq (st.in_flight, 0);
  cr_assert_eq (st.peak_in_flight, 2);
  ordered_queue_free (q);
}

/* The interval tree against brute force, with overlapping extents added
 * and completed in random order. */
Test (ordered, lookup_matches_brute_force)
{
  enum
  {
    N = 600,
    QUERIES = 40
  };
  struct ordered_queue *q = ordered_queue_new ();
  struct ordered_extent *oe[N];
  uint64_t start[N], end[N];
  bool live[N];
  unsigned seed = 1, i, j, k, order[N];

  for (i = 0; i < N; i++)
    {
      start[i] = rand_r (&seed) % 100000;
      end[i] = start[i] + rand_r (&seed) % 2000;
      oe[i] = add (q, start[i], end[i], ORDERED_ZERO);
      live[i] = true;
      order[i] = i;
    }
  for (i = N - 1; i > 0; i--)
    {
      j = rand_r (&seed) % (i + 1);
      k = order[i];
      order[i] = order[j];
      order[j] = k;
    }
  for (i = 0; i <= N; i++)
    {
      for (k = 0; k < QUERIES; k++)
        {
          uint64_t qs = rand_r (&seed) % 102000;
          uint64_t qe = qs + rand_r (&seed) % 500;
          uint64_t best = UINT64_MAX;
          struct ordered_info info;
          bool found;

          for (j = 0; j < N; j++)
            if (live[j] && start[j] <= qe && end[j] >= qs && start[j] < best)
              best = start[j];
          found = ordered_lookup (q, qs, qe, &info);
          cr_assert_eq (found, best != UINT64_MAX);
          if (found)
            {
              cr_assert_eq (info.start, best);
              cr_assert (info.end >= qs);
            }
        }
      if (i < N)
        {
          ordered_complete (q, oe[order[i]], 0);
          live[order[i]] = false;
        }
    }
  ordered_queue_free (q);
}

struct waiter
{
  struct ordered_queue *q;
  uint64_t start, end;
  bool all;
  atomic_bool returned;
};

static void *
waiter_thread (void *arg)
{
  struct waiter *w = arg;

  if (w->all)
    ordered_wait_all (w->q);
  else
    ordered_wait_range (w->q, w->start, w->end);
  atomic_store (&w->returned, true);
  return NULL;
}

Test (ordered, wait_range_returns_after_completion)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct ordered_extent *a, *other;
  struct waiter w = { .q = q, .start = 50, .end = 60 };
  pthread_t t;

  /* Nothing overlapping: no sleep. */
  other = add (q, 1000, 2000, ORDERED_DIRECT_WRITE);
  ordered_wait_range (q, 0, 999);

  a = add (q, 0, 99, ORDERED_DIRECT_WRITE);
  pthread_create (&t, NULL, waiter_thread, &w);
  WAIT_FOR_STAT (q, waits, 1);
  sleep_us (10000);
  cr_assert_not (atomic_load (&w.returned));
  ordered_complete (q, a, 0);
  pthread_join (t, NULL);
  cr_assert (atomic_load (&w.returned));

  ordered_complete (q, other, 0);
  ordered_queue_free (q);
}

/* A wait covers the extents in flight when it began, not later ones, so a
 * stream of new I/O cannot starve it. */
Test (ordered, wait_ignores_later_extents)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct ordered_extent *a, *later;
  struct waiter w = { .q = q, .start = 0, .end = 99 };
  pthread_t t;

  a = add (q, 0, 99, ORDERED_WRITEBACK);
  pthread_create (&t, NULL, waiter_thread, &w);
  WAIT_FOR_STAT (q, waits, 1);
  later = add (q, 10, 20, ORDERED_DIRECT_WRITE);
  ordered_complete (q, a, 0);
  pthread_join (t, NULL);
  cr_assert (ordered_lookup (q, 0, 99, NULL));
  ordered_complete (q, later, 0);
  ordered_queue_free (q);
}

Test (ordered, wait_all)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct ordered_extent *oe[3];
  struct waiter w = { .q = q, .all = true };
  pthread_t t;
  int i;

  ordered_wait_all (q);
  for (i = 0; i < 3; i++)
    oe[i] = add (q, i * 100, i * 100 + 99, ORDERED_WRITEBACK);
  pthread_create (&t, NULL, waiter_thread, &w);
  WAIT_FOR_STAT (q, waits, 1);
  ordered_complete (q, oe[1], 0);
  ordered_complete (q, oe[0], 0);
  sleep_us (10000);
  cr_assert_not (atomic_load (&w.returned));
  ordered_complete (q, oe[2], 0);
  pthread_join (t, NULL);
  ordered_queue_free (q);
}

/* Two flushes overlap one failed writeback: both hear of it, neither
 * takes it from the other; a flush that began after it does not. */
Test (ordered, writeback_error_reaches_every_flush_that_overlapped_it)
{
  struct ordered_queue *q = ordered_queue_new ();
  uint64_t flush1, flush2, flush3;

  flush1 = ordered_error_seq (q);
  ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), -EIO);
  cr_assert_eq (ordered_check_error (q, flush1), 0);
  flush2 = ordered_error_seq (q);
  ordered_complete (q, add (q, 0, 9, ORDERED_WRITEBACK), -ENOSPC);
  ordered_complete (q, add (q, 0, 9, ORDERED_WRITEBACK), 0);
  cr_assert_eq (ordered_check_error (q, flush1), -ENOSPC);
  cr_assert_eq (ordered_check_error (q, flush2), -ENOSPC);
  cr_assert_eq (ordered_check_error (q, flush2), -ENOSPC);
  flush3 = ordered_error_seq (q);
  cr_assert_eq (ordered_check_error (q, flush3), 0);
  ordered_complete (q, add (q, 0, 9, ORDERED_WRITEBACK), -EIO);
  cr_assert_eq (ordered_check_error (q, flush1), -EIO);
  cr_assert_eq (ordered_check_error (q, flush3), -EIO);
  ordered_queue_free (q);
}

/* A fake store sync: counts calls, can be held at a gate, can fail. */
struct fake_sync
{
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool gate_closed;
  int calls;
  int running;
  int err;
};

static int
fake_sync (void *opaque)
{
  struct fake_sync *fs = opaque;
  int err;

  pthread_mutex_lock (&fs->lock);
  CHECK (fs->running == 0);
  fs->running++;
  fs->calls++;
  pthread_cond_broadcast (&fs->cond);
  while (fs->gate_closed)
    pthread_cond_wait (&fs->cond, &fs->lock);
  fs->running--;
  err = fs->err;
  pthread_mutex_unlock (&fs->lock);
  return err;
}

static void
fake_sync_init (struct fake_sync *fs)
{
  pthread_mutex_init (&fs->lock, NULL);
  pthread_cond_init (&fs->cond, NULL);
  fs->gate_closed = false;
  fs->calls = fs->running = fs->err = 0;
}

static void
fake_sync_gate (struct fake_sync *fs, bool closed)
{
  pthread_mutex_lock (&fs->lock);
  fs->gate_closed = closed;
  pthread_cond_broadcast (&fs->cond);
  pthread_mutex_unlock (&fs->lock);
}

static void
fake_sync_wait_calls (struct fake_sync *fs, int calls)
{
  pthread_mutex_lock (&fs->lock);
  while (fs->calls < calls)
    pthread_cond_wait (&fs->cond, &fs->lock);
  pthread_mutex_unlock (&fs->lock);
}

Test (ordered, sync_is_skipped_when_already_covered)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct fake_sync fs;
  uint64_t stamp;

  fake_sync_init (&fs);
  stamp = ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), 0);
  cr_assert_eq (stamp, 1);
  cr_assert_eq (ordered_stamp (q), 1);
  cr_assert_eq (ordered_sync (q, stamp, fake_sync, &fs), 0);
  cr_assert_eq (fs.calls, 1);
  /* A later caller whose write completed before that sync started. */
  cr_assert_eq (ordered_sync (q, stamp, fake_sync, &fs), 0);
  cr_assert_eq (fs.calls, 1);
  stamp = ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), 0);
  cr_assert_eq (ordered_sync (q, stamp, fake_sync, &fs), 0);
  cr_assert_eq (fs.calls, 2);
  ordered_queue_free (q);
}

struct syncer
{
  struct ordered_queue *q;
  struct fake_sync *fs;
  uint64_t stamp;
  int ret;
};

static void *
syncer_thread (void *arg)
{
  struct syncer *s = arg;

  s->ret = ordered_sync (s->q, s->stamp, fake_sync, s->fs);
  return NULL;
}

/* While sync 1 runs, a caller it covers joins it and two callers whose
 * writes completed after it started share sync 2. */
Test (ordered, group_commit_shares_syncs)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct fake_sync fs;
  struct syncer s[4];
  pthread_t t[4];
  struct ordered_stats st;
  uint64_t stamp1, stamp2;
  int i;

  fake_sync_init (&fs);
  fake_sync_gate (&fs, true);
  stamp1 = ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), 0);
  s[0] = (struct syncer){ q, &fs, stamp1, 1 };
  pthread_create (&t[0], NULL, syncer_thread, &s[0]);
  fake_sync_wait_calls (&fs, 1);

  s[1] = (struct syncer){ q, &fs, stamp1, 1 };
  pthread_create (&t[1], NULL, syncer_thread, &s[1]);
  stamp2 = ordered_complete (q, add (q, 10, 19, ORDERED_DIRECT_WRITE), 0);
  for (i = 2; i < 4; i++)
    {
      s[i] = (struct syncer){ q, &fs, stamp2, 1 };
      pthread_create (&t[i], NULL, syncer_thread, &s[i]);
    }
  WAIT_FOR_STAT (q, sync_callers, 4);
  sleep_us (10000);
  cr_assert_eq (fs.calls, 1);

  fake_sync_gate (&fs, false);
  for (i = 0; i < 4; i++)
    {
      pthread_join (t[i], NULL);
      cr_assert_eq (s[i].ret, 0);
    }
  cr_assert_eq (fs.calls, 2);
  ordered_get_stats (q, &st);
  cr_assert_eq (st.syncs, 2);
  ordered_queue_free (q);
}

Test (ordered, sync_error_reaches_every_caller_it_covers)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct fake_sync fs;
  struct syncer s[2];
  pthread_t t[2];
  uint64_t stamp;
  int i;

  fake_sync_init (&fs);
  fake_sync_gate (&fs, true);
  fs.err = -EIO;
  stamp = ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), 0);
  for (i = 0; i < 2; i++)
    {
      s[i] = (struct syncer){ q, &fs, stamp, 0 };
      pthread_create (&t[i], NULL, syncer_thread, &s[i]);
    }
  WAIT_FOR_STAT (q, sync_callers, 2);
  fake_sync_wait_calls (&fs, 1);
  fake_sync_gate (&fs, false);
  for (i = 0; i < 2; i++)
    {
      pthread_join (t[i], NULL);
      cr_assert_eq (s[i].ret, -EIO);
    }
  cr_assert_eq (fs.calls, 1);
  ordered_queue_free (q);
}

/* After a failed sync every caller fails with EIO, and no sync runs, until
 * the failure is cleared; then syncs run again. */
Test (ordered, failed_sync_is_latched_until_cleared)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct fake_sync fs;
  struct ordered_stats st;
  uint64_t stamp;

  fake_sync_init (&fs);
  fs.err = -ENOSPC;
  stamp = ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), 0);
  cr_assert_eq (ordered_sync (q, stamp, fake_sync, &fs), -ENOSPC);
  cr_assert (ordered_sync_failed (q));

  fs.err = 0;
  stamp = ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), 0);
  cr_assert_eq (ordered_sync (q, stamp, fake_sync, &fs), -EIO);
  cr_assert_eq (ordered_sync (q, stamp, fake_sync, &fs), -EIO);
  cr_assert_eq (fs.calls, 1);
  ordered_get_stats (q, &st);
  cr_assert_eq (st.sync_errors, 1);
  cr_assert_eq (st.sync_failed, 1);

  cr_assert (ordered_clear_sync_error (q));
  cr_assert_not (ordered_clear_sync_error (q));
  cr_assert_eq (ordered_sync (q, stamp, fake_sync, &fs), 0);
  cr_assert_eq (fs.calls, 2);
  ordered_get_stats (q, &st);
  cr_assert_eq (st.sync_errors, 1);
  cr_assert_eq (st.sync_failed, 0);
  ordered_queue_free (q);
}

/* A caller that reaches group commit late, after the sync that covered its
 * write failed and a later one succeeded (the failure cleared between
 * them), still gets the failure: Linux reports a writeback error to one
 * fdatasync only, so the later sync's success proves nothing about it. */
Test (ordered, late_caller_gets_the_failed_sync_that_covered_it)
{
  struct ordered_queue *q = ordered_queue_new ();
  struct fake_sync fs;
  uint64_t early, later;

  fake_sync_init (&fs);
  early = ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), 0);
  fs.err = -EIO;
  cr_assert_eq (ordered_sync (q, early, fake_sync, &fs), -EIO);
  ordered_clear_sync_error (q);
  fs.err = 0;
  later = ordered_complete (q, add (q, 0, 9, ORDERED_DIRECT_WRITE), 0);
  cr_assert_eq (ordered_sync (q, later, fake_sync, &fs), 0);
  cr_assert_eq (fs.calls, 2);

  cr_assert_eq (ordered_sync (q, early, fake_sync, &fs), -EIO);
  cr_assert_eq (ordered_sync (q, later, fake_sync, &fs), 0);
  cr_assert_eq (fs.calls, 2);
  ordered_queue_free (q);
}

/* Stress: adders add extents on random ranges, hold them briefly and
 * complete them, sometimes asking for group commit; waiters wait for random
 * ranges or for everything.  Each extent has a done flag set just before it
 * completes; a waiter records which extents were in flight before it began
 * and checks, when it returns, that all of them are done. */

enum
{
  STRESS_ADDERS = 3,
  STRESS_WAITERS = 2,
  STRESS_OPS = 20000, /* per adder */
  STRESS_SPACE = 1 << 16,
  SLOTS = 8, /* extents in flight per adder */
};

struct stress
{
  struct ordered_queue *q;
  pthread_mutex_t lock; /* slot table; taken before the queue's */
  struct
  {
    uint64_t start, end;
    int id; /* -1 when free */
  } slot[STRESS_ADDERS][SLOTS];
  atomic_bool done[STRESS_ADDERS * STRESS_OPS];
  atomic_int adders_running;
  atomic_uint_fast64_t sync_starts, sync_ends;
  atomic_int sync_running;
};

static int
stress_sync (void *opaque)
{
  struct stress *s = opaque;
  uint64_t n = atomic_fetch_add (&s->sync_starts, 1) + 1;

  CHECK (atomic_fetch_add (&s->sync_running, 1) == 0);
  sleep_us (20);
  atomic_fetch_sub (&s->sync_running, 1);
  atomic_store (&s->sync_ends, n);
  return 0;
}

struct stress_arg
{
  struct stress *s;
  int index;
};

static void
complete_slot (struct stress *s, int a, int k, struct ordered_extent *oe,
               unsigned *seed)
{
  uint64_t before, stamp;
  int id = s->slot[a][k].id;

  before = atomic_load (&s->sync_starts);
  atomic_store (&s->done[id], true);
  stamp = ordered_complete (s->q, oe, 0);
  pthread_mutex_lock (&s->lock);
  s->slot[a][k].id = -1;
  pthread_mutex_unlock (&s->lock);
  if (rand_r (seed) % 8 == 0)
    {
      CHECK (ordered_sync (s->q, stamp, stress_sync, s) == 0);
      /* A sync that started after this completion has ended. */
      CHECK (atomic_load (&s->sync_ends) > before);
    }
}

static void *
adder_thread (void *arg)
{
  struct stress_arg *sa = arg;
  struct stress *s = sa->s;
  struct ordered_extent *oe[SLOTS] = { NULL };
  unsigned seed = sa->index + 1;
  int a = sa->index, i, k;

  for (i = 0; i < STRESS_OPS; i++)
    {
      k = rand_r (&seed) % SLOTS;
      if (oe[k])
        {
          complete_slot (s, a, k, oe[k], &seed);
          oe[k] = NULL;
        }
      pthread_mutex_lock (&s->lock);
      s->slot[a][k].start = rand_r (&seed) % STRESS_SPACE;
      s->slot[a][k].end = s->slot[a][k].start + rand_r (&seed) % 4096;
      CHECK (ordered_add (s->q, s->slot[a][k].start, s->slot[a][k].end,
                          rand_r (&seed) % 4, &oe[k])
             == 0);
      s->slot[a][k].id = a * STRESS_OPS + i;
      pthread_mutex_unlock (&s->lock);
      if (rand_r (&seed) % 4 == 0)
        sched_yield ();
    }
  for (k = 0; k < SLOTS; k++)
    if (oe[k])
      complete_slot (s, a, k, oe[k], &seed);
  atomic_fetch_sub (&s->adders_running, 1);
  return NULL;
}

static void *
stress_waiter_thread (void *arg)
{
  struct stress_arg *sa = arg;
  struct stress *s = sa->s;
  int ids[STRESS_ADDERS * SLOTS];
  unsigned seed = 1000 + sa->index;
  int n, a, k, i;

  while (atomic_load (&s->adders_running) > 0)
    {
      bool all = rand_r (&seed) % 16 == 0;
      uint64_t start = rand_r (&seed) % STRESS_SPACE;
      uint64_t end = start + rand_r (&seed) % 8192;

      n = 0;
      pthread_mutex_lock (&s->lock);
      for (a = 0; a < STRESS_ADDERS; a++)
        for (k = 0; k < SLOTS; k++)
          if (s->slot[a][k].id >= 0
              && (all
                  || (s->slot[a][k].start <= end
                      && s->slot[a][k].end >= start)))
            ids[n++] = s->slot[a][k].id;
      pthread_mutex_unlock (&s->lock);

      if (all)
        ordered_wait_all (s->q);
      else
        ordered_wait_range (s->q, start, end);
      /* Every extent in flight before the wait began has completed. */
      for (i = 0; i < n; i++)
        CHECK (atomic_load (&s->done[ids[i]]));
    }
  return NULL;
}

Test (ordered, stress, .timeout = 60)
{
  static struct stress s;
  struct stress_arg aa[STRESS_ADDERS], wa[STRESS_WAITERS];
  pthread_t adders[STRESS_ADDERS], waiters[STRESS_WAITERS];
  struct ordered_stats st;
  int a, k;

  s.q = ordered_queue_new ();
  pthread_mutex_init (&s.lock, NULL);
  for (a = 0; a < STRESS_ADDERS; a++)
    for (k = 0; k < SLOTS; k++)
      s.slot[a][k].id = -1;
  atomic_store (&s.adders_running, STRESS_ADDERS);

  for (a = 0; a < STRESS_ADDERS; a++)
    {
      aa[a] = (struct stress_arg){ &s, a };
      pthread_create (&adders[a], NULL, adder_thread, &aa[a]);
    }
  for (a = 0; a < STRESS_WAITERS; a++)
    {
      wa[a] = (struct stress_arg){ &s, a };
      pthread_create (&waiters[a], NULL, stress_waiter_thread, &wa[a]);
    }
  for (a = 0; a < STRESS_ADDERS; a++)
    pthread_join (adders[a], NULL);
  for (a = 0; a < STRESS_WAITERS; a++)
    pthread_join (waiters[a], NULL);

  ordered_get_stats (s.q, &st);
  cr_assert_eq (st.added, STRESS_ADDERS * STRESS_OPS);
  cr_assert_eq (st.in_flight, 0);
  cr_assert_leq (st.peak_in_flight, STRESS_ADDERS * SLOTS);
  cr_assert_leq (st.syncs, st.sync_callers);
  cr_log_info ("ordered stress: %lu waits slept, %lu syncs for %lu callers",
               (unsigned long)st.waits, (unsigned long)st.syncs,
               (unsigned long)st.sync_callers);
  ordered_queue_free (s.q);
}
