/* Helpers shared by the Criterion unit tests whose helper threads check
 * invariants (test-cache.c, test-ordered.c). */
#ifndef BLKCACHE_UNIT_HELPERS_H
#define BLKCACHE_UNIT_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Criterion's assertions may only abort the test from its main thread;
 * helper threads report a broken invariant by crashing the test. */
#define CHECK(cond)                                                            \
  do                                                                           \
    {                                                                          \
      if (!(cond))                                                             \
        {                                                                      \
          fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,    \
                   #cond);                                                     \
          abort ();                                                            \
        }                                                                      \
    }                                                                          \
  while (0)

/* Sleep for US microseconds: long enough for another thread to run into
 * what the test set up. */
static inline void
sleep_us (long us)
{
  struct timespec ts
      = { .tv_sec = us / 1000000, .tv_nsec = us % 1000000 * 1000 };

  nanosleep (&ts, NULL);
}

#endif /* BLKCACHE_UNIT_HELPERS_H */
