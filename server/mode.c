/* blkcache: the cache mode.  See mode.h for the protocol and why it is
 * enough.  The mode and the count of cached writers are on separate cache
 * lines: every cached write writes the count, every write reads the mode.
 */
#include <config.h>

#include <stdatomic.h>
#include <time.h>

#include "mode.h"

void
mode_init (struct mode_gate *g, enum engine_cache_mode mode)
{
  atomic_init (&g->mode, mode);
  atomic_init (&g->cached_writers, 0);
}

enum engine_cache_mode
mode_get (struct mode_gate *g)
{
  return atomic_load (&g->mode);
}

bool
mode_write_begin (struct mode_gate *g)
{
  atomic_fetch_add (&g->cached_writers, 1);
  if (atomic_load (&g->mode) == ENGINE_CACHE_WRITEBACK)
    return true;
  atomic_fetch_sub (&g->cached_writers, 1);
  return false;
}

void
mode_write_end (struct mode_gate *g)
{
  atomic_fetch_sub (&g->cached_writers, 1);
}

void
mode_set (struct mode_gate *g, enum engine_cache_mode mode)
{
  const struct timespec poll = { .tv_sec = 0, .tv_nsec = 100000 };

  atomic_store (&g->mode, mode);
  /* EINTR only shortens a poll. */
  while (atomic_load (&g->cached_writers) > 0)
    nanosleep (&poll, NULL);
}

uint64_t
mode_cached_writers (struct mode_gate *g)
{
  return atomic_load (&g->cached_writers);
}
