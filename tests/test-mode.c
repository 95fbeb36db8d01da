/* Unit and stress tests of server/mode.c, the cache mode and its switch
 * at run time. */

#include <config.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <criterion/criterion.h>

#include "mode.h"
#include "unit-helpers.h"

Test (mode, writes_follow_the_mode)
{
  struct mode_gate g;

  mode_init (&g, ENGINE_CACHE_WRITETHROUGH);
  cr_assert_eq (mode_get (&g), ENGINE_CACHE_WRITETHROUGH);
  cr_assert_not (mode_write_begin (&g));
  cr_assert_eq (mode_cached_writers (&g), 0);
  mode_set (&g, ENGINE_CACHE_WRITEBACK);
  cr_assert (mode_write_begin (&g));
  cr_assert_eq (mode_cached_writers (&g), 1);
  mode_write_end (&g);
  cr_assert_eq (mode_cached_writers (&g), 0);
}

struct slow_writer
{
  struct mode_gate *g;
  atomic_bool began, ended;
};

static void *
slow_write (void *arg)
{
  struct slow_writer *w = arg;

  CHECK (mode_write_begin (w->g));
  atomic_store (&w->began, true);
  sleep_us (50000);
  atomic_store (&w->ended, true);
  mode_write_end (w->g);
  return NULL;
}

/* The switch returns only once the cached write that began before it has
 * ended. */
Test (mode, switch_waits_for_cached_writes)
{
  struct mode_gate g;
  struct slow_writer w = { .g = &g };
  pthread_t t;

  mode_init (&g, ENGINE_CACHE_WRITEBACK);
  cr_assert_eq (pthread_create (&t, NULL, slow_write, &w), 0);
  while (!atomic_load (&w.began))
    sleep_us (100);
  mode_set (&g, ENGINE_CACHE_WRITETHROUGH);
  cr_assert (atomic_load (&w.ended));
  cr_assert_not (mode_write_begin (&g));
  pthread_join (t, NULL);
}

#define WRITERS 4

struct racer
{
  struct mode_gate *g;
  atomic_bool *switched, *stop;
  uint64_t cached;
};

static void *
race (void *arg)
{
  struct racer *r = arg;

  while (!atomic_load (r->stop))
    if (mode_write_begin (r->g))
      {
        /* Inside a cached write the switch cannot have returned. */
        CHECK (!atomic_load (r->switched));
        r->cached++;
        mode_write_end (r->g);
      }
  return NULL;
}

/* Writers racing the switch: none is ever inside a cached write once
 * mode_set has returned. */
Test (mode, no_cached_write_after_the_switch)
{
  for (int round = 0; round < 50; round++)
    {
      struct mode_gate g;
      atomic_bool switched = false, stop = false;
      struct racer r[WRITERS];
      pthread_t t[WRITERS];

      mode_init (&g, ENGINE_CACHE_WRITEBACK);
      for (int i = 0; i < WRITERS; i++)
        {
          r[i]
              = (struct racer){ .g = &g, .switched = &switched, .stop = &stop };
          cr_assert_eq (pthread_create (&t[i], NULL, race, &r[i]), 0);
        }
      sleep_us (1000);
      mode_set (&g, ENGINE_CACHE_WRITETHROUGH);
      atomic_store (&switched, true);
      sleep_us (1000);
      atomic_store (&stop, true);
      for (int i = 0; i < WRITERS; i++)
        pthread_join (t[i], NULL);
      cr_assert_eq (mode_cached_writers (&g), 0);
    }
}
