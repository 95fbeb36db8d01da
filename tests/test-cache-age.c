/* Unit tests of the dirtied-at times of server/cache.c (the age list that
 * background writeback reads): which transitions give a block a new time
 * and which keep it. */
#include <config.h>

#include <errno.h>
#include <time.h>

#include <criterion/criterion.h>

#include "cache.h"

#define BS 4096

static struct cache *
new_cache (void)
{
  struct cache *c = cache_new (16 * BS, BS);

  cr_assert_not_null (c);
  return c;
}

static struct cache_block *
insert (struct cache *c, uint64_t blockno)
{
  struct cache_block *b, *existing;

  cr_assert_eq (cache_alloc (c, &b), 0);
  cr_assert_eq (cache_insert (c, b, blockno, &existing), 0);
  return b;
}

/* The block dirtied longest ago, and its time in *AT. */
static uint64_t
oldest (struct cache *c, uint64_t *at)
{
  uint64_t blk;

  cr_assert_eq (cache_oldest_dirty (c, &blk, at), 0);
  return blk;
}

/* Let the monotonic clock move on. */
static void
tick (void)
{
  uint64_t t = cache_clock ();

  while (cache_clock () == t)
    ;
}

Test (cache_age, empty)
{
  struct cache *c = new_cache ();
  uint64_t blk, at;

  cr_assert_eq (cache_oldest_dirty (c, &blk, &at), -ENOENT);
  cr_assert_eq (cache_dirty_bytes (c), 0);
  cache_free (c);
}

Test (cache_age, order_of_first_dirtying)
{
  struct cache *c = new_cache ();
  struct cache_block *a = insert (c, 7), *b = insert (c, 3);
  uint64_t t0 = cache_clock (), at, at2;

  cache_mark_dirty (c, a);
  tick ();
  cache_mark_dirty (c, b);
  cr_assert_eq (oldest (c, &at), 7);
  cr_assert_geq (at, t0);
  cr_assert_leq (at, cache_clock ());
  /* Dirty again while DIRTY: keeps its time. */
  tick ();
  cache_mark_dirty (c, a);
  cr_assert_eq (oldest (c, &at2), 7);
  cr_assert_eq (at2, at);
  cr_assert_eq (cache_dirty_bytes (c), 2 * BS);
  cache_unpin (c, a);
  cache_unpin (c, b);
  cache_free (c);
}

Test (cache_age, redirty_in_writeback_is_new)
{
  struct cache *c = new_cache ();
  struct cache_block *a = insert (c, 1), *b = insert (c, 2);
  uint64_t at_b, at_a;

  cache_mark_dirty (c, a);
  tick ();
  cache_mark_dirty (c, b);
  cr_assert_eq (cache_start_writeback (c, a), 0);
  cr_assert_eq (oldest (c, &at_b), 2); /* A left the index */
  tick ();
  cache_mark_dirty (c, a); /* redirtied while in writeback */
  cr_assert_eq (oldest (c, &at_b), 2);
  cr_assert_eq (cache_end_writeback (c, a, 0), CACHE_DIRTY);
  /* Still after B, with its redirty time. */
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (oldest (c, &at_a), 1);
  cr_assert_gt (at_a, at_b);
  cr_assert_eq (cache_dirty_bytes (c), 2 * BS);
  cr_assert_eq (cache_end_writeback (c, b, 0), CACHE_CLEAN);
  cr_assert_eq (cache_dirty_bytes (c), BS);
  cache_unpin (c, a);
  cache_unpin (c, b);
  cache_free (c);
}

Test (cache_age, failed_writeback_is_new)
{
  struct cache *c = new_cache ();
  struct cache_block *a = insert (c, 1), *b = insert (c, 2);
  uint64_t at_b, at_a;

  cache_mark_dirty (c, a);
  tick ();
  cache_mark_dirty (c, b);
  oldest (c, &at_b);
  cr_assert_eq (cache_start_writeback (c, a), 0);
  tick ();
  cr_assert_eq (cache_end_writeback (c, a, -EIO), CACHE_DIRTY);
  /* A is back, behind B: the timer retries it later. */
  cr_assert_eq (oldest (c, &at_b), 2);
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (oldest (c, &at_a), 1);
  cr_assert_gt (at_a, at_b);
  cache_end_writeback (c, b, 0);
  cache_unpin (c, a);
  cache_unpin (c, b);
  cache_free (c);
}

Test (cache_age, dropped_blocks_leave_the_list)
{
  struct cache *c = new_cache ();
  struct cache_block *a = insert (c, 1), *b = insert (c, 2);
  uint64_t at;

  cache_mark_dirty (c, a);
  cache_mark_dirty (c, b);
  cr_assert_eq (cache_drop_range (c, 1, 1, true), 0);
  cr_assert_eq (oldest (c, &at), 2);
  cr_assert_eq (cache_drop_range (c, 2, 2, true), 0);
  cr_assert_eq (cache_oldest_dirty (c, &at, &at), -ENOENT);
  cr_assert_eq (cache_dirty_bytes (c), 0);
  cache_unpin (c, a);
  cache_unpin (c, b);
  cache_free (c);
}
