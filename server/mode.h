/* blkcache: the cache mode, which an administrator may switch at run time
 * (set cache-mode).
 *
 * Switching from writeback to writethrough must not leave a cached write
 * behind: one that read the old mode and is still copying into the cache
 * when the switch's writeback lists the dirty blocks would stay dirty
 * after the switch reported that nothing is.  So each cached write is
 * bracketed by mode_write_begin and mode_write_end, and mode_set waits for
 * the cached writes that began before it.  The writer announces itself
 * (an atomic add) before it reads the mode, and mode_set stores the mode
 * before it reads the count, both sequentially consistent: either the
 * writer sees the new mode, or mode_set sees the writer and waits for it.
 * Writers that begin after the store see the new mode and leave at once,
 * so the wait ends.
 *
 * Every function is thread-safe.
 */
#ifndef BLKCACHE_MODE_H
#define BLKCACHE_MODE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

struct mode_gate
{
  _Atomic int mode; /* enum engine_cache_mode */
  _Alignas(64) _Atomic uint64_t cached_writers;
};

void mode_init (struct mode_gate *g, enum engine_cache_mode mode);

enum engine_cache_mode mode_get (struct mode_gate *g);

/* Before a non-FUA write: returns true when the mode is writeback, and the
 * caller must then call mode_write_end once its cached write is done;
 * false when the write must go to the disk. */
bool mode_write_begin (struct mode_gate *g);

void mode_write_end (struct mode_gate *g);

/* Set the mode, then wait until every cached write that began under the
 * old one has ended (polling every 100 us).  From the return on, no write
 * lands in the cache unless MODE is writeback.  The caller must not be
 * inside mode_write_begin / _end itself. */
void mode_set (struct mode_gate *g, enum engine_cache_mode mode);

/* Cached writes between mode_write_begin and _end now. */
uint64_t mode_cached_writers (struct mode_gate *g);

#endif /* BLKCACHE_MODE_H */
