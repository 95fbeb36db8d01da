/* blkcache: benchmark of server/extent_tree.c.
 *
 * Usage: bench-extent-tree [ITERATIONS]   (default 10 million)
 *
 * Measures uncontended extent_lock + extent_unlock pairs on one thread,
 * with 64 other ranges held so that the tree is not empty, for sequential
 * and for random ranges; then the same loop on 1 thread and on 2 threads,
 * each thread in its own region of one shared tree, to show how throughput
 * scales when lockers never conflict (they still share the tree's mutex).
 */

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extent_tree.h"

enum
{
  HELD_RANGES = 64,
  SLOT_SIZE = 4096, /* one held range and one free gap per slot */
};

/* Threads of the scaling test work 2^40 bytes apart. */
#define REGION_SIZE (1ULL << 40)

static struct extent_tree *tree;
static long iterations = 10 * 1000 * 1000;

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

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
check (int r, const char *what)
{
  if (r != 0)
    {
      fprintf (stderr, "bench-extent-tree: %s: %s\n", what, strerror (-r));
      exit (EXIT_FAILURE);
    }
}

/* Hold [base + k * SLOT_SIZE, + 511] for k < HELD_RANGES. */
static void
hold_ranges (uint64_t base)
{
  int k;

  for (k = 0; k < HELD_RANGES; k++)
    check (extent_lock (tree, base + k * SLOT_SIZE, base + k * SLOT_SIZE + 511),
           "extent_lock");
}

static void
release_ranges (uint64_t base)
{
  int k;

  for (k = 0; k < HELD_RANGES; k++)
    extent_unlock (tree, base + k * SLOT_SIZE, base + k * SLOT_SIZE + 511);
}

/* Lock and unlock 1024 bytes in the free part of a slot of the region at
 * base, iterations times; the slot is sequential or random. */
static void
lock_unlock_loop (uint64_t base, int random_slots)
{
  uint64_t seed = 0x2545f4914f6cdd1dULL ^ base;
  uint64_t slot, start;
  long i;

  for (i = 0; i < iterations; i++)
    {
      slot = random_slots ? next_random (&seed) % HELD_RANGES
                          : (uint64_t)i % HELD_RANGES;
      start = base + slot * SLOT_SIZE + 1024;
      check (extent_lock (tree, start, start + 1023), "extent_lock");
      extent_unlock (tree, start, start + 1023);
    }
}

static double
bench_one_thread (int random_slots)
{
  double t0, t1;

  t0 = now_s ();
  lock_unlock_loop (0, random_slots);
  t1 = now_s ();
  return iterations / (t1 - t0);
}

static void *
scaling_thread (void *arg)
{
  lock_unlock_loop (*(uint64_t *)arg, 0);
  return NULL;
}

/* Run the loop on nthreads threads, each in its own region; returns the
 * total pairs per second. */
static double
bench_threads (int nthreads)
{
  pthread_t threads[2];
  uint64_t bases[2];
  double t0, t1;
  int i, r;

  t0 = now_s ();
  for (i = 0; i < nthreads; i++)
    {
      bases[i] = (i + 1) * REGION_SIZE;
      r = pthread_create (&threads[i], NULL, scaling_thread, &bases[i]);
      check (-r, "pthread_create");
    }
  for (i = 0; i < nthreads; i++)
    pthread_join (threads[i], NULL);
  t1 = now_s ();
  return nthreads * iterations / (t1 - t0);
}

int
main (int argc, char *argv[])
{
  double seq, rnd, one, two;

  if (argc > 1)
    {
      iterations = atol (argv[1]);
      if (iterations <= 0)
        {
          fprintf (stderr, "usage: bench-extent-tree [ITERATIONS]\n");
          return EXIT_FAILURE;
        }
    }
  tree = extent_tree_new ();
  if (tree == NULL)
    {
      perror ("extent_tree_new");
      return EXIT_FAILURE;
    }
  printf ("extent tree: %d other ranges held per region, %ld iterations\n",
          HELD_RANGES, iterations);

  hold_ranges (0);
  seq = bench_one_thread (0);
  rnd = bench_one_thread (1);
  release_ranges (0);
  printf ("uncontended lock+unlock: %.0f pairs/s (sequential ranges)\n", seq);
  printf ("uncontended lock+unlock: %.0f pairs/s (random ranges)\n", rnd);

  hold_ranges (REGION_SIZE);
  hold_ranges (2 * REGION_SIZE);
  one = bench_threads (1);
  two = bench_threads (2);
  release_ranges (REGION_SIZE);
  release_ranges (2 * REGION_SIZE);
  printf ("disjoint ranges, 1 thread: %.0f pairs/s\n", one);
  printf ("disjoint ranges, 2 threads: %.0f pairs/s total, %.0f per thread "
          "(%.2fx of 1 thread)\n",
          two, two / 2, two / one);

  extent_tree_free (tree);
  return EXIT_SUCCESS;
}
