/* blkcache: prewarm, the background half of a warm restart.
 *
 * At start-up a thread of its own reads the hot set file (hotset.h) and
 * prefetches its blocks, hottest first, through engine_prewarm: the read
 * miss path, under range locks, so a block a client has written or read
 * meanwhile is left as it is.  It yields to clients: before each block it
 * waits, 10 ms at a time and up to 100 ms, while engine_requests shows
 * requests arriving; and it keeps to a rate of so many bytes a second.  It
 * prefetches no more blocks than the cache holds.  A hot set of another
 * disk, a corrupt one, or a disk read that fails is logged and the cache
 * stays cold: prewarm never stops the disk from being served.
 *
 * prewarm_new before nbdkit forks, prewarm_start after (threads do not
 * survive fork), prewarm_free at unload, before the engine goes.
 */
#ifndef BLKCACHE_PREWARM_H
#define BLKCACHE_PREWARM_H

#include <stdint.h>

#include "engine.h"
#include "log.h"

struct prewarm_config
{
  struct engine *engine; /* not owned; must have a cache */
  const char *path;      /* the hot set file (copied) */
  uint64_t rate;         /* bytes a second; 0: no limit */
  log_fn log;            /* called from the prewarm thread */
};

struct prewarm;

/* Create the prewarm of CFG; starts nothing.  NULL with errno ENOMEM. */
struct prewarm *prewarm_new (const struct prewarm_config *cfg);

/* Start the thread.  Returns 0 or a negative errno. */
int prewarm_start (struct prewarm *p);

/* Stop the thread (it finishes the block it is reading) and free P. */
void prewarm_free (struct prewarm *p);

/* Progress: blocks of the hot set prefetched (or found cached) so far, and
 * how many it is to prefetch (0 until the file is read, and for a cold
 * start).  Thread-safe. */
void prewarm_progress (struct prewarm *p, uint64_t *done, uint64_t *total);

#endif /* BLKCACHE_PREWARM_H */
