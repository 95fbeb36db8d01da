/* blkcache: tests for server/extent_tree.c.
 *
 * Single-thread tests pin down the range arithmetic (adjacency, one-byte
 * overlaps, 0 and UINT64_MAX, invalid ranges) and check the AVL tree
 * against a brute-force model.  Threaded tests start lockers that block,
 * and find out that a locker has queued by probing with extent_trylock on
 * bytes only that locker wants: the probe fails with -EBUSY exactly when
 * it is queued (or holds its range, which the test rules out separately).
 * The tree is sharded by stripes (EXTENT_TREE_STRIPE): the model and the
 * ordering tests run once in small ranges, all within one stripe, and once
 * in units of a fraction of a stripe, where most ranges span several
 * stripes and shards and the longest span all of them.  The threaded
 * stress tests are in stress-extent-tree.c, which runs under TSan too.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "extent_tree.h"

/* Generous: threads may crawl under sanitizers on a loaded machine. */
#define WAIT_TIMEOUT_NS (20 * 1000000000LL)

static struct extent_tree *tree;

/* Test coordinates: unit u maps [a, b] to the bytes [a * u, (b + 1) * u - 1]
 * (with u = 1, to [a, b] itself). */
static uint64_t unit = 1;

static void
setup (void)
{
  tree = extent_tree_new ();
  cr_assert_not_null (tree);
  unit = 1;
}

static void
teardown (void)
{
  extent_tree_free (tree);
}

TestSuite (extent_tree, .init = setup, .fini = teardown, .timeout = 120);

static int64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t
at (uint64_t a)
{
  return a * unit;
}

static uint64_t
upto (uint64_t b)
{
  return (b + 1) * unit - 1;
}

/* A unit that makes a range of 10 units span 3 or 4 stripes. */
#define CROSS_UNIT (EXTENT_TREE_STRIPE / 4 + 4096)

static int
lock_units (uint64_t a, uint64_t b)
{
  return extent_lock (tree, at (a), upto (b));
}

static int
trylock_units (uint64_t a, uint64_t b)
{
  return extent_trylock (tree, at (a), upto (b));
}

static void
unlock_units (uint64_t a, uint64_t b)
{
  extent_unlock (tree, at (a), upto (b));
}

static void
sleep_ms (int ms)
{
  usleep (ms * 1000);
}

/* xorshift64: small and deterministic per thread. */
static uint64_t
next_random (uint64_t *state)
{
  uint64_t x = *state;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *state = x;
  return x;
}

/* A thread that locks one range, reports when it holds it, and unlocks
 * when told to. */
struct locker
{
  uint64_t start, end;
  pthread_t thread;
  int rc;
  atomic_int acquired; /* 0 until locked, then the order of locking */
  atomic_bool release;
};

static atomic_int lock_order;

static void *
locker_main (void *arg)
{
  struct locker *l = arg;

  l->rc = extent_lock (tree, l->start, l->end);
  atomic_store (&l->acquired, atomic_fetch_add (&lock_order, 1) + 1);
  while (!atomic_load (&l->release))
    usleep (100);
  if (l->rc == 0)
    extent_unlock (tree, l->start, l->end);
  return NULL;
}

/* Start a locker on [start, end] in test units. */
static void
locker_start (struct locker *l, uint64_t start, uint64_t end)
{
  l->start = at (start);
  l->end = upto (end);
  l->rc = -1;
  atomic_init (&l->acquired, 0);
  atomic_init (&l->release, false);
  cr_assert_eq (pthread_create (&l->thread, NULL, locker_main, l), 0);
}

static void
locker_finish (struct locker *l)
{
  atomic_store (&l->release, true);
  cr_assert_eq (pthread_join (l->thread, NULL), 0);
  cr_assert_eq (l->rc, 0);
}

static void
wait_acquired (struct locker *l)
{
  int64_t deadline = now_ns () + WAIT_TIMEOUT_NS;

  while (!atomic_load (&l->acquired))
    {
      cr_assert_lt (now_ns (), deadline,
                    "locker [%lu, %lu] never got its range",
                    (unsigned long)l->start, (unsigned long)l->end);
      usleep (200);
    }
}

/* Wait until [start, end] in test units, free of held ranges, is blocked
 * by a queued waiter. */
static void
wait_queued (uint64_t a, uint64_t b)
{
  int64_t deadline = now_ns () + WAIT_TIMEOUT_NS;
  uint64_t start = at (a), end = upto (b);
  int r;

  while ((r = extent_trylock (tree, start, end)) == 0)
    {
      extent_unlock (tree, start, end);
      cr_assert_lt (now_ns (), deadline, "no waiter queued on [%lu, %lu]",
                    (unsigned long)start, (unsigned long)end);
      usleep (200);
    }
  cr_assert_eq (r, -EBUSY);
}

Test (extent_tree, invalid_ranges)
{
  cr_assert_eq (extent_lock (tree, 1, 0), -EINVAL);
  cr_assert_eq (extent_trylock (tree, 1, 0), -EINVAL);
  cr_assert_eq (extent_lock (tree, UINT64_MAX, 0), -EINVAL);
  cr_assert_eq (extent_trylock (tree, UINT64_MAX, UINT64_MAX - 1), -EINVAL);
  /* Nothing was taken. */
  cr_assert_eq (extent_trylock (tree, 0, UINT64_MAX), 0);
  extent_unlock (tree, 0, UINT64_MAX);
}

Test (extent_tree, adjacent_ranges_do_not_conflict)
{
  cr_assert_eq (extent_lock (tree, 100, 199), 0);
  cr_assert_eq (extent_trylock (tree, 200, 299), 0);
  cr_assert_eq (extent_trylock (tree, 0, 99), 0);
  cr_assert_eq (extent_trylock (tree, 300, 300), 0);
  extent_unlock (tree, 200, 299);
  extent_unlock (tree, 0, 99);
  extent_unlock (tree, 300, 300);
  extent_unlock (tree, 100, 199);
}

Test (extent_tree, one_byte_overlaps_conflict)
{
  cr_assert_eq (extent_lock (tree, 100, 199), 0);
  cr_assert_eq (extent_trylock (tree, 199, 300), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 0, 100), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 150, 150), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 100, 100), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 199, 199), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 0, UINT64_MAX), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 50, 250), -EBUSY);
  /* Overlapping the second of two held ranges by one byte. */
  cr_assert_eq (extent_trylock (tree, 300, 399), 0);
  cr_assert_eq (extent_trylock (tree, 200, 300), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 200, 299), 0);
  extent_unlock (tree, 200, 299);
  extent_unlock (tree, 300, 399);
  extent_unlock (tree, 100, 199);
}

Test (extent_tree, ranges_at_zero_and_uint64_max)
{
  cr_assert_eq (extent_lock (tree, 0, 0), 0);
  cr_assert_eq (extent_lock (tree, UINT64_MAX, UINT64_MAX), 0);
  cr_assert_eq (extent_trylock (tree, 1, UINT64_MAX - 1), 0);
  cr_assert_eq (extent_trylock (tree, UINT64_MAX - 1, UINT64_MAX), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 0, 1), -EBUSY);
  extent_unlock (tree, 1, UINT64_MAX - 1);
  cr_assert_eq (extent_trylock (tree, 0, UINT64_MAX), -EBUSY);
  extent_unlock (tree, 0, 0);
  cr_assert_eq (extent_trylock (tree, 0, UINT64_MAX), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 0, UINT64_MAX - 1), 0);
  extent_unlock (tree, 0, UINT64_MAX - 1);
  extent_unlock (tree, UINT64_MAX, UINT64_MAX);

  cr_assert_eq (extent_lock (tree, 0, UINT64_MAX), 0);
  cr_assert_eq (extent_trylock (tree, 0, 0), -EBUSY);
  cr_assert_eq (extent_trylock (tree, UINT64_MAX, UINT64_MAX), -EBUSY);
  cr_assert_eq (extent_trylock (tree, 1ULL << 63, 1ULL << 63), -EBUSY);
  extent_unlock (tree, 0, UINT64_MAX);
  cr_assert_eq (extent_trylock (tree, UINT64_MAX, UINT64_MAX), 0);
  extent_unlock (tree, UINT64_MAX, UINT64_MAX);
}

/* Unlocking what is not held would let two lockers share bytes. */
Test (extent_tree, unlock_of_unheld_range_aborts, .signal = SIGABRT)
{
  cr_assert_eq (extent_lock (tree, 0, 9), 0);
  extent_unlock (tree, 0, 10);
}

/* Random trylock/lock/unlock on one thread against a list of held ranges:
 * every answer must match the model, which exercises the AVL rotations on
 * insert and on remove of nodes with zero, one and two children. */
static void
check_model (void)
{
  enum
  {
    MAX_HELD = 200,
    OPS = 50000,
    SPACE = 1000
  };
  uint64_t held_start[MAX_HELD], held_end[MAX_HELD];
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  int nheld = 0, op, i;

  for (op = 0; op < OPS; op++)
    {
      uint64_t start, end, r = next_random (&seed);
      bool busy = false;

      if (nheld > 0 && (r % 3 == 0 || nheld == MAX_HELD))
        {
          i = (r >> 8) % nheld;
          extent_unlock (tree, held_start[i], held_end[i]);
          nheld--;
          held_start[i] = held_start[nheld];
          held_end[i] = held_end[nheld];
          continue;
        }
      start = (r >> 8) % SPACE;
      end = start + (r >> 32) % 16;
      /* In units, start and end inside a unit, not only on its edges. */
      start = at (start) + (r >> 40) % unit / 2;
      end = upto (end) - (r >> 48) % unit / 2;
      /* Now and then, reach the ends of the 64-bit space. */
      if (r % 61 == 0)
        end = UINT64_MAX - (r >> 40) % 4;
      for (i = 0; i < nheld; i++)
        if (start <= held_end[i] && held_start[i] <= end)
          busy = true;
      if (busy)
        {
          cr_assert_eq (extent_trylock (tree, start, end), -EBUSY,
                        "op %d: [%lu, %lu] should be busy", op,
                        (unsigned long)start, (unsigned long)end);
          continue;
        }
      /* Free: both lock and trylock must take it without waiting. */
      if (r & 0x10)
        cr_assert_eq (extent_lock (tree, start, end), 0);
      else
        cr_assert_eq (extent_trylock (tree, start, end), 0,
                      "op %d: [%lu, %lu] should be free", op,
                      (unsigned long)start, (unsigned long)end);
      held_start[nheld] = start;
      held_end[nheld] = end;
      nheld++;
    }
  for (i = 0; i < nheld; i++)
    extent_unlock (tree, held_start[i], held_end[i]);
  cr_assert_eq (extent_trylock (tree, 0, UINT64_MAX), 0);
  extent_unlock (tree, 0, UINT64_MAX);
}

Test (extent_tree, matches_model) { check_model (); }

Test (extent_tree, matches_model_across_stripes)
{
  unit = CROSS_UNIT;
  check_model ();
}

static void
lock_waits_for_overlapping_range (void)
{
  struct locker a;

  cr_assert_eq (lock_units (10, 19), 0);
  locker_start (&a, 19, 30);
  wait_queued (25, 30);
  sleep_ms (20);
  cr_assert_eq (atomic_load (&a.acquired), 0);
  unlock_units (10, 19);
  wait_acquired (&a);
  cr_assert_eq (trylock_units (19, 19), -EBUSY);
  locker_finish (&a);
  cr_assert_eq (trylock_units (10, 30), 0);
  unlock_units (10, 30);
}

Test (extent_tree, lock_waits_for_overlapping_range)
{
  lock_waits_for_overlapping_range ();
}

Test (extent_tree, lock_waits_for_overlapping_range_across_stripes)
{
  unit = CROSS_UNIT;
  lock_waits_for_overlapping_range ();
}

/* Unlock wakes the waiter whose range it frees, and not another one. */
static void
unlock_wakes_the_right_waiter (void)
{
  struct locker a, b;

  cr_assert_eq (lock_units (10, 19), 0);
  cr_assert_eq (lock_units (110, 119), 0);
  locker_start (&a, 5, 15);
  locker_start (&b, 105, 115);
  wait_queued (5, 8);
  wait_queued (105, 108);

  unlock_units (110, 119);
  wait_acquired (&b);
  sleep_ms (20);
  cr_assert_eq (atomic_load (&a.acquired), 0);

  unlock_units (10, 19);
  wait_acquired (&a);
  locker_finish (&a);
  locker_finish (&b);
}

Test (extent_tree, unlock_wakes_the_right_waiter)
{
  unlock_wakes_the_right_waiter ();
}

Test (extent_tree, unlock_wakes_the_right_waiter_across_stripes)
{
  unit = CROSS_UNIT;
  unlock_wakes_the_right_waiter ();
}

/* One unlock grants every waiter it unblocks, if they do not overlap. */
static void
unlock_grants_disjoint_waiters_together (void)
{
  struct locker a, b;

  cr_assert_eq (lock_units (10, 29), 0);
  locker_start (&a, 5, 12);
  locker_start (&b, 27, 35);
  wait_queued (5, 8);
  wait_queued (32, 35);
  unlock_units (10, 29);
  wait_acquired (&a);
  wait_acquired (&b);
  locker_finish (&a);
  locker_finish (&b);
}

Test (extent_tree, unlock_grants_disjoint_waiters_together)
{
  unlock_grants_disjoint_waiters_together ();
}

Test (extent_tree, unlock_grants_disjoint_waiters_together_across_stripes)
{
  unit = CROSS_UNIT;
  unlock_grants_disjoint_waiters_together ();
}

/* A waiter queued behind an earlier overlapping waiter gets its range only
 * after that one has had it. */
static void
overlapping_waiters_are_served_in_order (void)
{
  struct locker a, b;

  cr_assert_eq (lock_units (10, 19), 0);
  locker_start (&a, 0, 15);
  wait_queued (0, 5);
  locker_start (&b, 15, 30);
  wait_queued (25, 30);

  unlock_units (10, 19);
  wait_acquired (&a);
  sleep_ms (20);
  cr_assert_eq (atomic_load (&b.acquired), 0);
  locker_finish (&a);
  wait_acquired (&b);
  cr_assert_lt (atomic_load (&a.acquired), atomic_load (&b.acquired));
  locker_finish (&b);
}

Test (extent_tree, overlapping_waiters_are_served_in_order)
{
  overlapping_waiters_are_served_in_order ();
}

Test (extent_tree, overlapping_waiters_are_served_in_order_across_stripes)
{
  unit = CROSS_UNIT;
  overlapping_waiters_are_served_in_order ();
}

/* An unlock that frees a later waiter's last held conflict does not grant
 * it while an earlier waiter that overlaps it is still blocked elsewhere. */
static void
waiter_does_not_overtake_a_blocked_earlier_waiter (void)
{
  struct locker a, b;

  cr_assert_eq (lock_units (0, 9), 0);
  cr_assert_eq (lock_units (20, 29), 0);
  locker_start (&a, 5, 25);
  wait_queued (10, 14);
  locker_start (&b, 15, 35);
  wait_queued (30, 35);

  /* b no longer overlaps a held range, but a (blocked by [0, 9]) came
   * first and overlaps it. */
  unlock_units (20, 29);
  sleep_ms (50);
  cr_assert_eq (atomic_load (&b.acquired), 0, "waiter overtook a waiter");
  cr_assert_eq (atomic_load (&a.acquired), 0);

  unlock_units (0, 9);
  wait_acquired (&a);
  sleep_ms (20);
  cr_assert_eq (atomic_load (&b.acquired), 0);
  locker_finish (&a);
  wait_acquired (&b);
  locker_finish (&b);
}

Test (extent_tree, waiter_does_not_overtake_a_blocked_earlier_waiter)
{
  waiter_does_not_overtake_a_blocked_earlier_waiter ();
}

Test (extent_tree,
      waiter_does_not_overtake_a_blocked_earlier_waiter_across_stripes)
{
  unit = CROSS_UNIT;
  waiter_does_not_overtake_a_blocked_earlier_waiter ();
}

/* Fairness: neither trylock nor lock may take bytes an earlier waiter
 * wants, even though no held range overlaps them. */
static void
newcomers_do_not_overtake_a_waiter (void)
{
  struct locker t, u;

  cr_assert_eq (lock_units (0, 9), 0);
  locker_start (&t, 5, 20);
  wait_queued (15, 20);

  cr_assert_eq (trylock_units (20, 30), -EBUSY);
  cr_assert_eq (trylock_units (12, 12), -EBUSY);
  cr_assert_eq (trylock_units (21, 30), 0);
  unlock_units (21, 30);

  /* u's range is free of held ranges; only the waiter t blocks it. */
  locker_start (&u, 15, 40);
  wait_queued (35, 40);
  sleep_ms (50);
  cr_assert_eq (atomic_load (&u.acquired), 0, "lock overtook a waiter");

  unlock_units (0, 9);
  wait_acquired (&t);
  sleep_ms (20);
  cr_assert_eq (atomic_load (&u.acquired), 0);
  locker_finish (&t);
  wait_acquired (&u);
  cr_assert_lt (atomic_load (&t.acquired), atomic_load (&u.acquired));
  locker_finish (&u);
}

Test (extent_tree, newcomers_do_not_overtake_a_waiter)
{
  newcomers_do_not_overtake_a_waiter ();
}

Test (extent_tree, newcomers_do_not_overtake_a_waiter_across_stripes)
{
  unit = CROSS_UNIT;
  newcomers_do_not_overtake_a_waiter ();
}

/* A waiter on a big range gets it while a stream of small overlapping
 * lockers keeps part of that range held at almost every instant. */
struct streamer
{
  pthread_t thread;
  uint64_t seed;
  atomic_bool *stop;
  int errors;
};

static void *
streamer_main (void *arg)
{
  struct streamer *s = arg;

  while (!atomic_load (s->stop))
    {
      uint64_t start = next_random (&s->seed) % 100;

      if (extent_lock (tree, start, start + 2) != 0)
        s->errors++;
      else
        extent_unlock (tree, start, start + 2);
    }
  return NULL;
}

Test (extent_tree, waiter_does_not_starve)
{
  enum
  {
    STREAMERS = 3
  };
  struct streamer s[STREAMERS];
  atomic_bool stop;
  int i;

  atomic_init (&stop, false);
  for (i = 0; i < STREAMERS; i++)
    {
      s[i].seed = 1000 + i;
      s[i].stop = &stop;
      s[i].errors = 0;
      cr_assert_eq (pthread_create (&s[i].thread, NULL, streamer_main, &s[i]),
                    0);
    }
  sleep_ms (20);
  for (i = 0; i < 20; i++)
    {
      cr_assert_eq (extent_lock (tree, 0, 102), 0);
      extent_unlock (tree, 0, 102);
    }
  atomic_store (&stop, true);
  for (i = 0; i < STREAMERS; i++)
    {
      cr_assert_eq (pthread_join (s[i].thread, NULL), 0);
      cr_assert_eq (s[i].errors, 0);
    }
}
