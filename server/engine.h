/* blkcache: the engine, the NBD operations expressed with the store, the
 * extent range-lock tree, the ordered-extent queue and the block cache.
 *
 * One engine serves every connection of the process; every function here
 * may be called from many threads at once.  Offsets and counts are bytes;
 * the caller has checked that a range lies inside the disk.  Every function
 * returns 0 or a negative errno.
 */
#ifndef BLKCACHE_ENGINE_H
#define BLKCACHE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct engine;

/* Create an engine serving the open store ST (the engine takes it over).
 * Returns NULL with errno set on failure. */
struct engine *engine_new (struct store *st);

/* Free the engine and close its store.  No request may be in flight. */
void engine_free (struct engine *e);

/* The store the engine serves (size, alignment, capabilities). */
const struct store *engine_store (const struct engine *e);

int engine_read (struct engine *e, void *buf, uint32_t count,
                 uint64_t offset);

/* Write; FUA makes these bytes durable before the reply.  Unaligned edges
 * are read, merged and written under the range lock. */
int engine_write (struct engine *e, const void *buf, uint32_t count,
                  uint64_t offset, bool fua);

/* Write every acknowledged write to stable storage. */
int engine_flush (struct engine *e);

/* Discard a range (its aligned interior; edges are left as they are). */
int engine_trim (struct engine *e, uint32_t count, uint64_t offset, bool fua);

/* Zero a range of any length; MAY_TRIM allows holes; FAST fails with
 * -ENOTSUP rather than writing zeroes. */
int engine_zero (struct engine *e, uint32_t count, uint64_t offset,
                 bool may_trim, bool fast, bool fua);

/* Prefetch a range. */
int engine_cache (struct engine *e, uint32_t count, uint64_t offset);

/* Describe a range as data and holes, calling ADD for each run in order. */
int engine_extents (struct engine *e, uint32_t count, uint64_t offset,
                    store_extent_fn add, void *opaque);

#endif /* BLKCACHE_ENGINE_H */
