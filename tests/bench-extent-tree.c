/* blkcache: benchmark of server/extent_tree.c.
 *
 * Usage: bench-extent-tree [ITERATIONS]   (default 10 million)
 *
 * Measures uncontended extent_lock + extent_unlock pairs on one thread,
 * with 64 other ranges held so that the tree is not empty, for sequential
 * and for random ranges; then the same loop on 1 thread and on 2 threads,
 * each thread in its own region of one shared tree, to show how throughput
 * scales when lockers never conflict; then 2 threads locking the same
 * ranges, so that nearly every lock waits for the other thread.
 *
 * Each row also gives the CPU time per pair (CLOCK_THREAD_CPUTIME_ID,
 * averaged over the threads).  On a machine shared with other work the
 * wall-clock ratio of 2 threads to 1 measures the scheduler as much as the
 * tree; the CPU time per pair does not depend on how many cores the
 * threads got, and grows when they contend (cache lines moving between
 * cores, futex calls).  To see the two threads really run at once on a
 * busy machine, run it under a real-time policy: chrt -f 5
 * ./bench-extent-tree 3000000.
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
thread_cpu_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
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

struct scaling_thread
{
  pthread_t thread;
  uint64_t base;
  double cpu_s; /* the thread's CPU time in the loop */
};

static void *
scaling_thread (void *arg)
{
  struct scaling_thread *t = arg;
  double c0 = thread_cpu_s ();

  lock_unlock_loop (t->base, 0);
  t->cpu_s = thread_cpu_s () - c0;
  return NULL;
}

struct scaling
{
  double pairs_s; /* all threads' pairs per second of wall-clock time */
  double cpu_ns;  /* CPU time per pair, averaged over the threads */
};

/* Run the loop on nthreads threads, each in its own region, or all in the
 * same one when shared. */
static struct scaling
bench_threads (int nthreads, int shared)
{
  struct scaling_thread threads[2];
  struct scaling result = { 0, 0 };
  double t0, t1;
  int i, r;

  t0 = now_s ();
  for (i = 0; i < nthreads; i++)
    {
      threads[i].base = (shared ? 1 : i + 1) * REGION_SIZE;
      r = pthread_create (&threads[i].thread, NULL, scaling_thread,
                          &threads[i]);
      check (-r, "pthread_create");
    }
  for (i = 0; i < nthreads; i++)
    {
      pthread_join (threads[i].thread, NULL);
      result.cpu_ns += threads[i].cpu_s * 1e9 / iterations / nthreads;
    }
  t1 = now_s ();
  result.pairs_s = nthreads * iterations / (t1 - t0);
  return result;
}

int
main (int argc, char *argv[])
{
  struct scaling one, two, same;
  double seq, rnd;

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
  one = bench_threads (1, 0);
  two = bench_threads (2, 0);
  same = bench_threads (2, 1);
  release_ranges (REGION_SIZE);
  release_ranges (2 * REGION_SIZE);
  printf ("disjoint ranges, 1 thread: %.0f pairs/s, %.1f ns CPU per pair\n",
          one.pairs_s, one.cpu_ns);
  printf ("disjoint ranges, 2 threads: %.0f pairs/s total, %.0f per thread "
          "(%.2fx of 1 thread), %.1f ns CPU per pair (%.2fx)\n",
          two.pairs_s, two.pairs_s / 2, two.pairs_s / one.pairs_s, two.cpu_ns,
          two.cpu_ns / one.cpu_ns);
  printf ("same ranges, 2 threads: %.0f pairs/s total (%.2fx of 1 thread), "
          "%.1f ns CPU per pair\n",
          same.pairs_s, same.pairs_s / one.pairs_s, same.cpu_ns);

  extent_tree_free (tree);
  return EXIT_SUCCESS;
}
