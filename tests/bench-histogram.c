/* blkcache: benchmark of server/histogram.c.
 *
 * Usage: bench-histogram [ITERATIONS]   (default 20 million per thread)
 *
 * Measures the CPU time of histogram_record (what every request pays,
 * besides its two clock reads) on 1 thread and on 2 threads recording
 * into one struct histogram, each thread on its own shard; and, for
 * comparison, 2 threads adding to one shared atomic counter: the cache
 * line ping-pong the shards avoid (seen only when both threads get a CPU
 * at once).  Then histogram_read, what `stats` pays per path.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "histogram.h"

static long iterations = 20 * 1000 * 1000;
static struct histogram *hist;
static _Atomic uint64_t shared_counter;

/* CPU time of the process, in seconds: on a loaded machine the threads
 * get a share of the CPUs, and wall time would measure the share. */
static double
cpu_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Record ITERATIONS values spread over the buckets (up to about 1 s),
 * from a xorshift generator. */
static void *
record_loop (void *arg)
{
  uint64_t x = 88172645463325252ULL + (uintptr_t) arg;

  for (long i = 0; i < iterations; i++)
    {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      histogram_record (hist, 0, x >> 34);
    }
  return NULL;
}

static void *
shared_loop (void *arg)
{
  for (long i = 0; i < iterations; i++)
    atomic_fetch_add_explicit (&shared_counter, 1, memory_order_relaxed);
  return NULL;
}

/* Run FN on N threads; print the CPU time a call. */
static void
run (const char *what, void *(*fn) (void *), int n)
{
  pthread_t t[2];
  double start = cpu_s (), secs;

  for (int i = 0; i < n; i++)
    if (pthread_create (&t[i], NULL, fn, (void *) (uintptr_t) i) != 0)
      {
        perror ("pthread_create");
        exit (EXIT_FAILURE);
      }
  for (int i = 0; i < n; i++)
    pthread_join (t[i], NULL);
  secs = cpu_s () - start;
  printf ("%-40s %d thread%s  %6.1f ns of CPU a call\n", what, n,
          n > 1 ? "s" : " ", secs * 1e9 / (n * iterations));
}

int
main (int argc, char **argv)
{
  struct histogram_snapshot s;
  double start;
  int reads = 10000;

  if (argc > 1)
    iterations = atol (argv[1]);
  hist = histogram_new (8);
  if (hist == NULL || iterations <= 0)
    {
      fprintf (stderr, "bench-histogram: bad arguments or no memory\n");
      return EXIT_FAILURE;
    }
  run ("histogram_record", record_loop, 1);
  run ("histogram_record (a shard each)", record_loop, 2);
  run ("one shared atomic counter (no shards)", shared_loop, 2);
  start = cpu_s ();
  for (int i = 0; i < reads; i++)
    histogram_read (hist, i % 8, &s);
  printf ("%-40s %6.1f us of CPU a path\n", "histogram_read",
          (cpu_s () - start) * 1e6 / reads);
  histogram_free (hist);
  return EXIT_SUCCESS;
}
