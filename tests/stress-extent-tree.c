/* blkcache: threaded stress test of server/extent_tree.c.
 *
 * Usage: stress-extent-tree   (exits 0 when every check held)
 *
 * A plain program rather than a Criterion test, so that it also runs in
 * the ThreadSanitizer build, where Criterion cannot start (configure.ac):
 * test-extent-tree-stress.sh runs it in every build.
 *
 * Exclusion: threads lock random ranges of a small space and check, in a
 * shadow array (one entry per unit of the space), that no other thread
 * owns any of their bytes.  The shadow array is deliberately not atomic,
 * so TSan also reports any overlap as a data race.  The space is walked in
 * units of one byte (every range in one stripe, so one shard) and in units
 * of a quarter stripe (ranges over up to 9 stripes, in several shards),
 * at a low offset and at the top of the 64-bit space.
 *
 * Deadlock: threads lock big ranges that cross each other, ranges over a
 * few stripes and small ones inside them, in every order.  Since a waiter
 * holds no part of its range, this always finishes; with partial locking
 * it would hang.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extent_tree.h"

static struct extent_tree *tree;
static pthread_barrier_t start_barrier;

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

static void
check_pthread (int err, const char *what)
{
  if (err)
    {
      fprintf (stderr, "stress-extent-tree: %s: %s\n", what, strerror (err));
      exit (EXIT_FAILURE);
    }
}

/* Start n threads running fn on args[i * size]; wait for them all. */
static void
run_threads (int n, void *(*fn) (void *), void *args, size_t size)
{
  pthread_t threads[16];
  int i;

  check_pthread (pthread_barrier_init (&start_barrier, NULL, n),
                 "pthread_barrier_init");
  for (i = 0; i < n; i++)
    check_pthread (
        pthread_create (&threads[i], NULL, fn, (char *)args + i * size),
        "pthread_create");
  for (i = 0; i < n; i++)
    check_pthread (pthread_join (threads[i], NULL), "pthread_join");
  pthread_barrier_destroy (&start_barrier);
}

/* Exclusion. */

enum
{
  STRESS_THREADS = 6,
  STRESS_SPACE = 256,
  STRESS_MAX_LEN = 32,
  STRESS_ITERATIONS = 50000,
};

/* A unit that makes a range of 32 units span up to 9 stripes. */
#define CROSS_UNIT (EXTENT_TREE_STRIPE / 4 + 4096)

static volatile unsigned char owner[STRESS_SPACE];

struct stresser
{
  unsigned char id;
  uint64_t base; /* offset of unit 0 of the shadow array */
  uint64_t unit; /* bytes per entry of the shadow array */
  uint64_t seed;
  long errors, busy;
};

static void *
stresser_main (void *arg)
{
  struct stresser *s = arg;
  int i;

  pthread_barrier_wait (&start_barrier);
  for (i = 0; i < STRESS_ITERATIONS; i++)
    {
      uint64_t r = next_random (&s->seed);
      uint64_t first = r % STRESS_SPACE;
      uint64_t last = first + (r >> 16) % STRESS_MAX_LEN;
      uint64_t start, end, b;
      int rc;

      if (last >= STRESS_SPACE)
        last = STRESS_SPACE - 1;
      start = s->base + first * s->unit;
      end = s->base + (last + 1) * s->unit - 1;
      if ((r >> 32) % 4 == 0)
        {
          rc = extent_trylock (tree, start, end);
          if (rc == -EBUSY)
            {
              s->busy++;
              continue;
            }
        }
      else
        rc = extent_lock (tree, start, end);
      if (rc != 0)
        {
          s->errors++;
          continue;
        }
      for (b = first; b <= last; b++)
        {
          if (owner[b] != 0)
            s->errors++;
          owner[b] = s->id;
        }
      if ((r >> 40) % 8 == 0)
        sched_yield ();
      for (b = first; b <= last; b++)
        {
          if (owner[b] != s->id)
            s->errors++;
          owner[b] = 0;
        }
      extent_unlock (tree, start, end);
    }
  return NULL;
}

/* Returns the number of failed checks. */
static long
stress_exclusion (uint64_t base, uint64_t unit)
{
  struct stresser s[STRESS_THREADS];
  long errors = 0, busy = 0;
  int i;

  for (i = 0; i < STRESS_THREADS; i++)
    {
      s[i].id = i + 1;
      s[i].base = base;
      s[i].unit = unit;
      s[i].seed = 0x1234567ULL * (i + 1);
      s[i].errors = s[i].busy = 0;
    }
  run_threads (STRESS_THREADS, stresser_main, s, sizeof s[0]);
  for (i = 0; i < STRESS_THREADS; i++)
    {
      if (s[i].errors)
        fprintf (stderr, "thread %d saw %ld overlaps\n", i + 1, s[i].errors);
      errors += s[i].errors;
      busy += s[i].busy;
    }
  printf ("exclusion at %#" PRIx64 " in units of %" PRIu64
          ": %ld trylocks found the range busy\n",
          base, unit, busy);
  return errors;
}

/* Deadlock. */

enum
{
  CROSS_THREADS = 4,
  CROSS_ITERATIONS = 10000,
};

#define STRIPE EXTENT_TREE_STRIPE

static const uint64_t cross_ranges[][2] = {
  { 0, UINT64_MAX },
  { 0, 1ULL << 63 },
  { 1ULL << 62, UINT64_MAX },
  { (1ULL << 63) - 1, 1ULL << 63 },
  { 1ULL << 61, (1ULL << 62) + (1ULL << 61) },
  { 0, 0 },
  { UINT64_MAX, UINT64_MAX },
  { 1ULL << 62, 1ULL << 62 },
  { 3 * STRIPE - 1, 6 * STRIPE },
  { 5 * STRIPE, 9 * STRIPE - 1 },
  { 4 * STRIPE + 100, 4 * STRIPE + 200 },
  { 8 * STRIPE - 1, 8 * STRIPE },
};

enum
{
  NRANGES = sizeof cross_ranges / sizeof cross_ranges[0]
};

/* Threads holding each range of cross_ranges. */
static atomic_long holders[NRANGES];

struct crosser
{
  uint64_t seed;
  long errors, waits;
};

static void *
crosser_main (void *arg)
{
  struct crosser *c = arg;
  uint64_t r;
  int i, j, k;

  pthread_barrier_wait (&start_barrier);
  for (i = 0; i < CROSS_ITERATIONS; i++)
    {
      r = next_random (&c->seed);
      k = r % NRANGES;
      if (extent_trylock (tree, cross_ranges[k][0], cross_ranges[k][1]) != 0)
        {
          c->waits++;
          if (extent_lock (tree, cross_ranges[k][0], cross_ranges[k][1]) != 0)
            {
              c->errors++;
              continue;
            }
        }
      atomic_fetch_add (&holders[k], 1);
      for (j = 0; j < NRANGES; j++)
        if (j != k && atomic_load (&holders[j]) > 0
            && cross_ranges[j][0] <= cross_ranges[k][1]
            && cross_ranges[k][0] <= cross_ranges[j][1])
          c->errors++;
      if (atomic_load (&holders[k]) != 1)
        c->errors++;
      if ((r >> 32) % 4 == 0)
        sched_yield ();
      atomic_fetch_sub (&holders[k], 1);
      extent_unlock (tree, cross_ranges[k][0], cross_ranges[k][1]);
    }
  return NULL;
}

static long
stress_crossing (void)
{
  struct crosser c[CROSS_THREADS];
  long errors = 0, waits = 0;
  int i;

  for (i = 0; i < CROSS_THREADS; i++)
    {
      c[i].seed = 0xabcdefULL + i;
      c[i].errors = c[i].waits = 0;
    }
  run_threads (CROSS_THREADS, crosser_main, c, sizeof c[0]);
  for (i = 0; i < CROSS_THREADS; i++)
    {
      errors += c[i].errors;
      waits += c[i].waits;
    }
  printf ("crossing ranges: %ld of %d locks had to wait, %ld errors\n", waits,
          CROSS_THREADS * CROSS_ITERATIONS, errors);
  return errors;
}

int
main (void)
{
  long errors = 0;

  tree = extent_tree_new ();
  if (tree == NULL)
    {
      perror ("extent_tree_new");
      return EXIT_FAILURE;
    }
  errors += stress_exclusion (4096, 1);
  errors += stress_exclusion (UINT64_MAX - STRESS_SPACE + 1, 1);
  errors += stress_exclusion (7 * STRIPE - 12345, CROSS_UNIT);
  errors += stress_exclusion (UINT64_MAX - STRESS_SPACE * CROSS_UNIT + 1,
                              CROSS_UNIT);
  errors += stress_crossing ();
  /* Everything was unlocked: the whole space is free. */
  if (extent_trylock (tree, 0, UINT64_MAX) != 0)
    {
      fprintf (stderr, "stress-extent-tree: a range is still held\n");
      errors++;
    }
  else
    extent_unlock (tree, 0, UINT64_MAX);
  extent_tree_free (tree);
  return errors ? EXIT_FAILURE : EXIT_SUCCESS;
}
