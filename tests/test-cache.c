/* Unit and stress tests of server/cache.c, the shared block cache. */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "cache.h"
#include "unit-helpers.h"

#define BS 4096

static struct cache *
new_cache (uint64_t blocks)
{
  struct cache *c = cache_new (blocks * BS, BS);

  cr_assert_not_null (c);
  return c;
}

static struct cache_stats
stats (struct cache *c)
{
  struct cache_stats st;

  cache_get_stats (c, &st);
  return st;
}

/* Allocate, tag and insert block BLOCKNO; returns it pinned. */
static struct cache_block *
insert (struct cache *c, uint64_t blockno)
{
  struct cache_block *b, *existing;

  cr_assert_eq (cache_alloc (c, &b), 0);
  *(uint64_t *)cache_block_data (b) = blockno;
  cr_assert_eq (cache_insert (c, b, blockno, &existing), 0);
  cr_assert_eq (cache_block_number (b), blockno);
  return b;
}

/* A reader: read the block's first word, and on a miss fill it. */
static void
read_block (struct cache *c, uint64_t blockno)
{
  uint64_t word;

  if (!cache_read (c, blockno, &word, 0, sizeof word))
    {
      struct cache_block *b = insert (c, blockno);
      word = *(uint64_t *)cache_block_data (b);
      cache_unpin (c, b);
    }
  cr_assert_eq (word, blockno);
}

static struct cache_block *
insert_dirty (struct cache *c, uint64_t blockno)
{
  struct cache_block *b = insert (c, blockno);

  cr_assert_eq (cache_mark_dirty (c, b), 0);
  return b;
}

Test (cache, new_rejects_bad_sizes)
{
  cr_assert_null (cache_new (1 << 20, 2048));
  cr_assert_eq (errno, EINVAL);
  cr_assert_null (cache_new (1 << 20, 3 * 4096));
  cr_assert_null (cache_new (1 << 30, 2 << 20));
  cr_assert_null (cache_new (4095, 4096));
  cache_free (new_cache (1));
}

Test (cache, blocks_are_aligned_and_whole)
{
  struct cache *c = cache_new (4 << 20, 1 << 20);
  struct cache_block *b;

  cr_assert_eq (cache_block_size (c), 1 << 20);
  cr_assert_eq (cache_alloc (c, &b), 0);
  cr_assert_eq ((uintptr_t)cache_block_data (b) % 4096, 0);
  memset (cache_block_data (b), 0xab, 1 << 20);
  cache_discard (c, b);
  cr_assert_eq (stats (c).blocks, 0);
  cache_free (c);
}

Test (cache, read_insert_hit_miss)
{
  struct cache *c = new_cache (8);
  struct cache_block *b, *dup, *existing;
  struct cache_stats st;
  char out[8];

  cr_assert_not (cache_read (c, 5, out, 0, sizeof out));
  b = insert (c, 5);
  memcpy ((char *)cache_block_data (b) + 4000, "abcdefgh", 8);
  cache_unpin (c, b);
  cr_assert (cache_read (c, 5, out, 4000, sizeof out));
  cr_assert_arr_eq (out, "abcdefgh", 8);
  cr_assert_eq (cache_peek (c, 5), b);

  /* A second reader filled the same block meanwhile: the first one wins. */
  cr_assert_eq (cache_alloc (c, &dup), 0);
  cr_assert_eq (cache_insert (c, dup, 5, &existing), -EEXIST);
  cr_assert_eq (existing, b);
  cache_unpin (c, existing);
  cache_unpin (c, b);

  st = stats (c);
  cr_assert_eq (st.hits, 1);
  cr_assert_eq (st.misses, 1);
  cr_assert_eq (st.insertions, 1);
  cr_assert_eq (st.blocks, 1);
  cache_free (c);
}

Test (cache, write_copies_and_dirties)
{
  struct cache *c = new_cache (8);
  struct cache_block *b = insert (c, 3);
  struct cache_run run;

  cr_assert_eq (cache_write (c, 4, "x", 0, 1), 0);
  cr_assert_eq (cache_write (c, 3, "x", 4096, 0), -EINVAL);
  cr_assert_eq (cache_write (c, 3, "xy", 4095, 2), -EINVAL);
  cr_assert_eq (cache_dirty_bytes (c), 0);

  cr_assert_eq (cache_write (c, 3, "wxyz", 2048, 4), 1);
  cr_assert_arr_eq ((char *)cache_block_data (b) + 2048, "wxyz", 4);
  cr_assert_eq (cache_block_state (c, b), CACHE_DIRTY);
  cr_assert_eq (cache_dirty_bytes (c), 4096);
  cr_assert_eq (cache_dirty_runs (c, 0, 8, UINT64_MAX, &run, 1), 1);
  cr_assert_eq (run.start, 3);
  /* Only the written granule is to be written back. */
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (cache_writeback_mask (c, b), UINT64_C (1) << 32);
  cr_assert_eq (cache_end_writeback (c, b, 0), CACHE_CLEAN);
  cache_unpin (c, b);
  cache_free (c);
}

Test (cache, update_copies_and_keeps_state)
{
  struct cache *c = new_cache (8);
  struct cache_block *b = insert (c, 6);
  char *data = cache_block_data (b);

  memset (data, 0x55, BS);
  cr_assert_eq (cache_update (c, 7, "x", 0, 1), 0);
  cr_assert_eq (cache_update (c, 6, "x", BS, 1), -EINVAL);
  cr_assert_eq (cache_update (c, 6, "abc", 100, 3), 1);
  cr_assert_arr_eq (data + 100, "abc", 3);
  cr_assert_eq (cache_update (c, 6, NULL, 101, 2), 1);
  cr_assert_eq (data[100], 'a');
  cr_assert_eq (data[101], 0);
  cr_assert_eq (data[102], 0);
  cr_assert_eq (data[103], 0x55);
  cr_assert_eq (cache_block_state (c, b), CACHE_CLEAN);
  cr_assert_eq (cache_dirty_bytes (c), 0);
  cache_unpin (c, b);
  cache_free (c);
}

Test (cache, capacity_is_never_exceeded)
{
  struct cache *c = new_cache (16);
  struct cache_stats st;
  uint64_t i;

  for (i = 0; i < 100; i++)
    {
      read_block (c, i);
      cr_assert_leq (stats (c).blocks, 16);
    }
  st = stats (c);
  cr_assert_eq (st.blocks, 16);
  cr_assert_eq (st.evictions, 84);
  cr_assert_eq (st.small_blocks + st.main_blocks, 16);
  cache_free (c);
}

/* Design goal: a hot set of half the cache, read a few times, survives a
 * one-pass read of four times the cache: >= 80% of it still hits. */
Test (cache, scan_resistance)
{
  enum
  {
    CAP = 1024,
    HOT = CAP / 2,
    SCAN = 4 * CAP
  };
  struct cache *c = new_cache (CAP);
  uint64_t i, hits;
  int pass;

  for (pass = 0; pass < 3; pass++)
    for (i = 0; i < HOT; i++)
      read_block (c, i);
  for (i = 0; i < SCAN; i++)
    read_block (c, 1000000 + i);
  hits = stats (c).hits;
  for (i = 0; i < HOT; i++)
    read_block (c, i);
  hits = stats (c).hits - hits;
  cr_log_info ("hot set survival after a 4x scan: %.1f%%", 100.0 * hits / HOT);
  cr_assert_geq (hits * 100, HOT * 80);
  cache_free (c);
}

/* A block evicted from the small FIFO is remembered by the ghost, and goes
 * straight to main when it comes back. */
Test (cache, ghost_readmits_to_main)
{
  struct cache *c = new_cache (20);
  struct cache_stats st;
  uint64_t i;

  for (i = 0; i < 21; i++)
    read_block (c, i);
  st = stats (c);
  cr_assert_eq (st.ghost_entries, 1);
  cr_assert_null (cache_peek (c, 0));
  read_block (c, 0);
  st = stats (c);
  cr_assert_eq (st.ghost_entries, 1);
  cr_assert_eq (st.main_blocks, 1);
  cache_free (c);
}

Test (cache, pinned_blocks_are_never_evicted)
{
  struct cache *c = new_cache (4);
  struct cache_block *b[4], *extra;
  uint64_t i;

  for (i = 0; i < 4; i++)
    b[i] = insert (c, i);
  cr_assert_eq (cache_alloc (c, &extra), -EAGAIN);
  cache_unpin (c, b[2]);
  cr_assert_eq (cache_alloc (c, &extra), 0);
  cr_assert_null (cache_peek (c, 2));
  cache_discard (c, extra);
  for (i = 0; i < 4; i++)
    if (i != 2)
      {
        cr_assert_eq (cache_peek (c, i), b[i]);
        cache_unpin (c, b[i]);
        cache_unpin (c, b[i]);
      }
  cr_assert_eq (stats (c).blocks, 3);
  cache_free (c);
}

Test (cache, dirty_blocks_are_never_evicted)
{
  struct cache *c = new_cache (8);
  struct cache_block *b[8], *extra;
  uint64_t i, victim;

  cr_assert_eq (cache_pick_victim (c, &victim), -ENOENT);
  for (i = 0; i < 8; i++)
    cache_unpin (c, insert_dirty (c, 10 + i));
  cr_assert_eq (stats (c).dirty_bytes, 8 * BS);
  cr_assert_eq (cache_alloc (c, &extra), -ENOSPC);
  cr_assert_eq (cache_pick_victim (c, &victim), 0);
  cr_assert_eq (victim, 10); /* the oldest */

  /* All in writeback: writing back more would not help, waiting would. */
  for (i = 0; i < 8; i++)
    {
      b[i] = cache_peek (c, 10 + i);
      cr_assert_not_null (b[i]);
      cr_assert_eq (cache_start_writeback (c, b[i]), 0);
    }
  cr_assert_eq (cache_alloc (c, &extra), -EAGAIN);
  cr_assert_eq (cache_pick_victim (c, &victim), -ENOENT);

  cr_assert_eq (cache_end_writeback (c, b[3], 0), CACHE_CLEAN);
  cache_unpin (c, b[3]);
  cr_assert_eq (cache_alloc (c, &extra), 0);
  cr_assert_null (cache_peek (c, 13));
  cache_discard (c, extra);
  cr_assert_eq (stats (c).dirty_bytes, 7 * BS);
  cr_assert_eq (stats (c).peak_dirty_bytes, 8 * BS);
  for (i = 0; i < 8; i++)
    if (i != 3)
      {
        cr_assert_eq (cache_end_writeback (c, b[i], 0), CACHE_CLEAN);
        cache_unpin (c, b[i]);
      }
  cr_assert_eq (stats (c).dirty_bytes, 0);
  cache_free (c);
}

static void
assert_runs (struct cache *c, uint64_t from, uint64_t max_blocks,
             size_t max_runs, const struct cache_run *want, size_t nr_want)
{
  struct cache_run runs[16];
  size_t n, i;

  n = cache_dirty_runs (c, from, max_blocks, UINT64_MAX, runs, max_runs);
  cr_assert_eq (n, nr_want, "from %lu: %zu runs, want %zu", (unsigned long)from,
                n, nr_want);
  for (i = 0; i < n; i++)
    {
      cr_assert_eq (runs[i].start, want[i].start);
      cr_assert_eq (runs[i].count, want[i].count);
    }
}

Test (cache, dirty_runs_are_ordered)
{
  static const uint64_t dirty[] = { 20, 4, 9, 3, 10, 5, 7 };
  struct cache *c = new_cache (64);
  struct cache_block *b7 = NULL, *b;
  size_t i;

  for (i = 0; i < sizeof dirty / sizeof dirty[0]; i++)
    {
      b = insert_dirty (c, dirty[i]);
      if (dirty[i] == 7)
        b7 = b;
      else
        cache_unpin (c, b);
    }
  cache_unpin (c, insert (c, 8)); /* clean, between two dirty runs */
  /* Block 7 in writeback is not dirty any more. */
  cr_assert_eq (cache_start_writeback (c, b7), 0);

  assert_runs (c, 0, 100, 16,
               (struct cache_run[]){ { 3, 3 }, { 9, 2 }, { 20, 1 } }, 3);
  assert_runs (c, 4, 100, 16,
               (struct cache_run[]){ { 4, 2 }, { 9, 2 }, { 20, 1 } }, 3);
  assert_runs (c, 6, 100, 16, (struct cache_run[]){ { 9, 2 }, { 20, 1 } }, 2);
  assert_runs (c, 0, 4, 16, (struct cache_run[]){ { 3, 3 }, { 9, 1 } }, 2);
  assert_runs (c, 0, 100, 1, (struct cache_run[]){ { 3, 3 } }, 1);
  assert_runs (c, 21, 100, 16, NULL, 0);

  cr_assert_eq (cache_end_writeback (c, b7, 0), CACHE_CLEAN);
  cache_unpin (c, b7);
  cache_free (c);
}

/* The dirty index against a bitmap, with many random blocks. */
Test (cache, dirty_runs_match_brute_force)
{
  enum
  {
    N = 2048
  };
  struct cache *c = new_cache (N);
  struct cache_block *b[N];
  struct cache_run runs[N];
  bool dirty[N] = { false };
  unsigned seed = 7;
  size_t n, r;
  uint64_t i, from, expect;
  int round;

  for (i = 0; i < N; i++)
    b[i] = insert (c, i);
  for (round = 0; round < 4; round++)
    {
      for (i = 0; i < N / 2; i++)
        {
          uint64_t k = rand_r (&seed) % N;

          if (dirty[k])
            {
              cr_assert_eq (cache_start_writeback (c, b[k]), 0);
              cr_assert_eq (cache_end_writeback (c, b[k], 0), CACHE_CLEAN);
            }
          else
            cr_assert_eq (cache_mark_dirty (c, b[k]), 0);
          dirty[k] = !dirty[k];
        }
      from = rand_r (&seed) % N;
      n = cache_dirty_runs (c, from, N, UINT64_MAX, runs, N);
      expect = from;
      for (r = 0; r < n; r++)
        {
          while (!dirty[expect])
            expect++;
          cr_assert_eq (runs[r].start, expect);
          cr_assert (r == 0
                     || runs[r].start > runs[r - 1].start + runs[r - 1].count);
          for (i = 0; i < runs[r].count; i++)
            cr_assert (dirty[expect++]);
          cr_assert (expect == N || !dirty[expect]);
        }
      while (expect < N)
        cr_assert_not (dirty[expect++]);
    }
  for (i = 0; i < N; i++)
    {
      if (dirty[i])
        {
          cache_start_writeback (c, b[i]);
          cache_end_writeback (c, b[i], 0);
        }
      cache_unpin (c, b[i]);
    }
  cr_assert_eq (stats (c).dirty_bytes, 0);
  cache_free (c);
}

/* Let the monotonic clock move on. */
static void
tick (void)
{
  uint64_t t = cache_clock ();

  while (cache_clock () == t)
    ;
}

/* A flush asks only for the blocks dirtied before it began: blocks
 * dirtied later are left out and split the runs around them; a DIRTY block
 * written again keeps its time, a redirtied one in WRITEBACK gets a new
 * one. */
Test (cache, dirty_runs_dirtied_by)
{
  struct cache *c = new_cache (8);
  struct cache_block *b[6];
  struct cache_run runs[4];
  uint64_t before;

  for (unsigned i = 0; i < 6; i++)
    b[i] = insert (c, i);
  cr_assert_eq (cache_mark_dirty (c, b[0]), 0);
  cr_assert_eq (cache_mark_dirty (c, b[1]), 0);
  cr_assert_eq (cache_mark_dirty (c, b[3]), 0);
  cr_assert_eq (cache_start_writeback (c, b[3]), 0);
  cr_assert_eq (cache_mark_dirty (c, b[4]), 0);
  before = cache_clock ();
  tick ();
  cr_assert_eq (cache_mark_dirty (c, b[2]), 0);  /* after: left out */
  cr_assert_eq (cache_mark_dirty (c, b[0]), 0);  /* again: keeps its time */
  cr_assert_eq (cache_mark_dirty (c, b[3]), 0);  /* redirtied: after */
  cr_assert_eq (cache_mark_dirty (c, b[5]), 0);  /* after */

  cr_assert_eq (cache_dirty_runs (c, 0, 10, before, runs, 4), 2);
  cr_assert_eq (runs[0].start, 0);
  cr_assert_eq (runs[0].count, 2);
  cr_assert_eq (runs[1].start, 4);
  cr_assert_eq (runs[1].count, 1);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, UINT64_MAX, runs, 4), 1);
  cr_assert_eq (runs[0].count, 6);
  /* Written back and dirtied again later, block 1 is left out too. */
  cr_assert_eq (cache_start_writeback (c, b[1]), 0);
  cr_assert_eq (cache_end_writeback (c, b[1], 0), CACHE_CLEAN);
  cr_assert_eq (cache_mark_dirty (c, b[1]), 0);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, before, runs, 4), 2);
  cr_assert_eq (runs[0].start, 0);
  cr_assert_eq (runs[0].count, 1);
  cr_assert_eq (cache_end_writeback (c, b[3], 0), CACHE_DIRTY);
  for (unsigned i = 0; i < 6; i++)
    cache_unpin (c, b[i]);
  cache_free (c);
}

Test (cache, redirty_during_writeback_stays_dirty)
{
  struct cache *c = new_cache (8);
  struct cache_block *b = insert (c, 1);
  struct cache_run run;

  cr_assert_eq (cache_start_writeback (c, b), -EINVAL);
  cr_assert_eq (cache_mark_dirty (c, b), 0);
  cr_assert_eq (cache_block_state (c, b), CACHE_DIRTY);
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (cache_block_state (c, b), CACHE_WRITEBACK);
  cr_assert_eq (cache_start_writeback (c, b), -EBUSY);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, UINT64_MAX, &run, 1), 0);

  /* A write lands while the writeback is in flight. */
  cr_assert_eq (cache_mark_dirty (c, b), 0);
  cr_assert_eq (cache_block_state (c, b), CACHE_WRITEBACK);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, UINT64_MAX, &run, 1), 1);
  cr_assert_eq (cache_end_writeback (c, b, 0), CACHE_DIRTY);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, UINT64_MAX, &run, 1), 1);

  /* A failed writeback keeps the data dirty. */
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (cache_end_writeback (c, b, -EIO), CACHE_DIRTY);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, UINT64_MAX, &run, 1), 1);
  cr_assert_eq (stats (c).dirty_bytes, BS);

  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (cache_end_writeback (c, b, 0), CACHE_CLEAN);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, UINT64_MAX, &run, 1), 0);
  cr_assert_eq (stats (c).dirty_bytes, 0);
  cr_assert_eq (stats (c).peak_dirty_bytes, BS);
  cache_unpin (c, b);
  cache_free (c);
}

/* Writeback writes only the 1/64ths of a block written since the previous
 * writeback; a failed writeback gives them back, a redirty adds new ones. */
Test (cache, writeback_mask_tracks_written_parts)
{
  struct cache *c = new_cache (4);
  struct cache_block *b = insert (c, 9);
  const uint32_t g = BS / 64;

  cr_assert_eq (cache_mark_dirty_range (c, b, 0, 0), -EINVAL);
  cr_assert_eq (cache_mark_dirty_range (c, b, 0, BS + 1), -EINVAL);
  cr_assert_eq (cache_mark_dirty_range (c, b, g + 1, 3 * g), 0);
  cr_assert_eq (cache_mark_dirty_range (c, b, BS - 1, BS), 0);
  cr_assert_eq (cache_block_state (c, b), CACHE_DIRTY);

  cr_assert_eq (cache_start_writeback (c, b), 0);
  uint64_t want = (UINT64_C (1) << 1) | (UINT64_C (1) << 2)
                  | (UINT64_C (1) << 63);
  cr_assert_eq (cache_writeback_mask (c, b), want);

  /* A failed writeback: DIRTY again, with the same parts to write. */
  cr_assert_eq (cache_end_writeback (c, b, -EIO), CACHE_DIRTY);
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (cache_writeback_mask (c, b), want);

  /* Written during writeback: the next writeback has only the new part. */
  cr_assert_eq (cache_mark_dirty_range (c, b, 0, 1), 0);
  cr_assert_eq (cache_end_writeback (c, b, 0), CACHE_DIRTY);
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (cache_writeback_mask (c, b), UINT64_C (1));
  cr_assert_eq (cache_end_writeback (c, b, 0), CACHE_CLEAN);

  /* cache_mark_dirty is the whole block. */
  cr_assert_eq (cache_mark_dirty (c, b), 0);
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (cache_writeback_mask (c, b), UINT64_MAX);
  cr_assert_eq (cache_end_writeback (c, b, 0), CACHE_CLEAN);
  cache_unpin (c, b);
  cache_free (c);
}

Test (cache, drop_range_keeps_dirty_unless_overwritten)
{
  struct cache *c = new_cache (64);
  struct cache_block *b;
  struct cache_run run;
  uint64_t i;

  for (i = 0; i < 10; i++)
    cache_unpin (c, i == 3 || i == 4 ? insert_dirty (c, i) : insert (c, i));
  cr_assert_eq (cache_drop_range (c, 0, 9, false), 2);
  cr_assert_eq (stats (c).blocks, 2);
  b = cache_peek (c, 3);
  cr_assert_not_null (b);
  cache_unpin (c, b);

  cr_assert_eq (cache_drop_range (c, 4, 4, true), 0);
  cr_assert_null (cache_peek (c, 4));
  cr_assert_eq (stats (c).dirty_bytes, BS);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, UINT64_MAX, &run, 1), 1);
  cr_assert_eq (run.start, 3);

  /* A range wider than the cache walks the FIFOs instead. */
  for (i = 10; i < 20; i++)
    cache_unpin (c, insert (c, i));
  cr_assert_eq (cache_drop_range (c, 15, UINT64_MAX, true), 0);
  cr_assert_eq (stats (c).blocks, 6);
  cr_assert_eq (cache_drop_range (c, 0, UINT64_MAX, true), 0);
  cr_assert_eq (stats (c).blocks, 0);
  cr_assert_eq (stats (c).dirty_bytes, 0);
  cr_assert_eq (cache_dirty_runs (c, 0, 10, UINT64_MAX, &run, 1), 0);
  cr_assert_eq (cache_drop_range (c, 5, 4, true), 0);
  cache_free (c);
}

/* A block dropped while a reader copies from it stays valid until the
 * reader unpins it; run under ASan this proves it is not freed early. */
Test (cache, dropped_pinned_block_lives_until_unpinned)
{
  struct cache *c = new_cache (4);
  struct cache_block *b = insert_dirty (c, 2);
  struct cache_block *again;

  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (cache_drop_range (c, 2, 2, true), 0);
  cr_assert_null (cache_peek (c, 2));
  memset (cache_block_data (b), 1, BS);
  cr_assert_eq (cache_mark_dirty (c, b), -ESTALE);
  cr_assert_eq (cache_start_writeback (c, b), -ESTALE);
  cr_assert_eq (cache_end_writeback (c, b, 0), CACHE_CLEAN);
  cr_assert_eq (stats (c).blocks, 1);
  cr_assert_eq (stats (c).dirty_bytes, 0);

  /* The number may be cached again meanwhile. */
  again = insert (c, 2);
  cr_assert_neq (again, b);
  cache_unpin (c, b);
  cr_assert_eq (stats (c).blocks, 1);
  cache_unpin (c, again);
  cache_free (c);
}

Test (cache, drop_clean_keeps_dirty_and_pinned)
{
  struct cache *c = new_cache (16);
  struct cache_block *pinned;
  uint64_t i;

  for (i = 0; i < 8; i++)
    cache_unpin (c, i < 2 ? insert_dirty (c, i) : insert (c, i));
  pinned = cache_peek (c, 7);
  cr_assert_eq (cache_drop_clean (c), 5);
  cr_assert_eq (stats (c).blocks, 3);
  cache_unpin (c, pinned);
  cr_assert_eq (cache_drop_clean (c), 1);
  cache_free (c);
}

Test (cache, resize)
{
  struct cache *c = new_cache (8);
  struct cache_block *b[3], *extra;
  uint64_t i;

  for (i = 0; i < 8; i++)
    {
      if (i < 3)
        b[i] = insert_dirty (c, i);
      else
        cache_unpin (c, insert (c, i));
    }
  cr_assert_eq (cache_resize (c, 0), -EINVAL);
  cr_assert_eq (cache_resize (c, 4 * BS), 0);
  cr_assert_eq (stats (c).blocks, 4);
  cr_assert_eq (stats (c).capacity, 4);

  /* Three dirty blocks do not fit in two: one too many until written. */
  cr_assert_eq (cache_resize (c, 2 * BS), 1);
  cr_assert_eq (stats (c).blocks, 3);
  cr_assert_eq (cache_alloc (c, &extra), -ENOSPC);
  for (i = 0; i < 2; i++)
    {
      cr_assert_eq (cache_start_writeback (c, b[i]), 0);
      cr_assert_eq (cache_end_writeback (c, b[i], 0), CACHE_CLEAN);
    }
  for (i = 0; i < 3; i++)
    cache_unpin (c, b[i]);
  cr_assert_eq (cache_alloc (c, &extra), 0);
  cr_assert_eq (stats (c).blocks, 2);
  cache_discard (c, extra);

  cr_assert_eq (cache_resize (c, 1000 * BS), 0);
  for (i = 100; i < 1100; i++)
    read_block (c, i);
  cr_assert_eq (stats (c).blocks, 1000);
  extra = cache_peek (c, 2); /* the dirty one */
  cr_assert_eq (extra, b[2]);
  cache_unpin (c, extra);
  cache_free (c);
}

/* Design goal: metadata at most 2% of cache-size at 64 KiB blocks. */
Test (cache, metadata_is_small)
{
  enum
  {
    CAP = 512
  };
  struct cache *c = cache_new ((uint64_t)CAP << 16, 1 << 16);
  struct cache_stats st;
  uint64_t i;

  for (i = 0; i < CAP; i++)
    read_block (c, i);
  st = stats (c);
  cr_assert_eq (st.blocks, CAP);
  cr_log_info ("metadata: %lu bytes for %d blocks of 64 KiB (%.1f a block, "
               "%.3f%% of cache-size)",
               (unsigned long)st.metadata_bytes, CAP,
               (double)st.metadata_bytes / CAP,
               100.0 * st.metadata_bytes / ((uint64_t)CAP << 16));
  cr_assert_lt (st.metadata_bytes, ((uint64_t)CAP << 16) / 50);
  cache_free (c);

  /* The per-block part, on a bigger cache of small blocks. */
  c = new_cache (8192);
  for (i = 0; i < 8192; i++)
    read_block (c, i);
  st = stats (c);
  cr_log_info ("metadata: %.1f bytes a block at 8192 blocks",
               (double)st.metadata_bytes / 8192);
  cr_assert_lt (st.metadata_bytes / 8192, 1300);
  cache_free (c);
}

struct space_waiter
{
  struct cache *c;
  atomic_bool done;
};

static void *
space_waiter_thread (void *arg)
{
  struct space_waiter *w = arg;
  struct cache_block *b;
  uint64_t ticket = cache_space_watch (w->c);
  int r;

  while ((r = cache_alloc (w->c, &b)) == -EAGAIN)
    cache_space_wait (w->c, &ticket);
  cache_space_unwatch (w->c);
  CHECK (r == 0);
  cache_discard (w->c, b);
  atomic_store (&w->done, true);
  return NULL;
}

/* Start a thread that allocates, waiting for space; check it is stuck. */
static pthread_t
start_space_waiter (struct space_waiter *w)
{
  pthread_t t;

  atomic_store (&w->done, false);
  pthread_create (&t, NULL, space_waiter_thread, w);
  sleep_us (20000);
  cr_assert_not (atomic_load (&w->done));
  return t;
}

Test (cache, space_wait_wakes_when_space_frees)
{
  struct cache *c = new_cache (2);
  struct cache_block *b0 = insert (c, 0), *b1 = insert_dirty (c, 1);
  struct space_waiter w = { .c = c };
  pthread_t t;

  /* Pinned and in writeback: the waiter sleeps until the unpin. */
  cr_assert_eq (cache_start_writeback (c, b1), 0);
  t = start_space_waiter (&w);
  cache_unpin (c, b0);
  pthread_join (t, NULL);
  cr_assert (atomic_load (&w.done));

  /* In writeback: the waiter sleeps until it ends. */
  b0 = insert (c, 0);
  cache_unpin (c, b1);
  t = start_space_waiter (&w);
  cr_assert_eq (cache_end_writeback (c, b1, 0), CACHE_CLEAN);
  pthread_join (t, NULL);
  cr_assert (atomic_load (&w.done));
  cr_assert_null (cache_peek (c, 1));
  cache_unpin (c, b0);
  cache_free (c);
}

/* Stress: worker threads play the engine on a small cache under constant
 * eviction pressure.  A per-block mutex stands in for the range lock; a
 * "disk" array holds each block's version on disk and "latest" its newest
 * version.  A block's data holds its number and version.  Workers read,
 * write (cached), write directly (dropping the cached block) and write back
 * dirty runs, and check: a cached block holds its number and the latest
 * version; an uncached block's latest version is on disk (no dirty data was
 * dropped); the cache never holds more than its capacity.  Pinned blocks
 * are read while other threads evict and drop (ASan checks the lifetime). */

enum
{
  ST_THREADS = 4,
  ST_BLOCKS = 256,
  ST_CAPACITY = 32,
  ST_OPS = 40000, /* per thread */
};

struct stress
{
  struct cache *c;
  pthread_mutex_t lock[ST_BLOCKS];
  atomic_uint_fast64_t disk[ST_BLOCKS];
  uint64_t latest[ST_BLOCKS]; /* under lock[] */
  atomic_uint_fast64_t alloc_failures;
};

static uint64_t *
words (struct cache_block *b)
{
  return cache_block_data (b);
}

/* The version stored in a block; read and written atomically because a
 * writeback reads it while a cached write may redirty the block. */
static uint64_t
version_of (struct cache_block *b)
{
  return __atomic_load_n (&words (b)[1], __ATOMIC_RELAXED);
}

/* Find block BN, or fill it from the disk; NULL if the cache is full. */
static struct cache_block *
st_get (struct stress *s, uint64_t bn)
{
  struct cache_block *b, *existing;

  b = cache_peek (s->c, bn);
  if (b)
    {
      CHECK (words (b)[0] == bn);
      CHECK (version_of (b) == s->latest[bn]);
      return b;
    }
  /* Not cached: its newest bytes must be on disk. */
  CHECK (atomic_load (&s->disk[bn]) == s->latest[bn]);
  if (cache_alloc (s->c, &b) < 0)
    {
      atomic_fetch_add (&s->alloc_failures, 1);
      return NULL;
    }
  words (b)[0] = bn;
  __atomic_store_n (&words (b)[1], atomic_load (&s->disk[bn]),
                    __ATOMIC_RELAXED);
  CHECK (cache_insert (s->c, b, bn, &existing) == 0);
  return b;
}

/* A reader: a hit copies the newest bytes; a miss fills the block. */
static void
st_read (struct stress *s, uint64_t bn)
{
  uint64_t w[2];
  struct cache_block *b;

  if (cache_read (s->c, bn, w, 0, sizeof w))
    {
      CHECK (w[0] == bn);
      CHECK (w[1] == s->latest[bn]);
    }
  else if ((b = st_get (s, bn)) != NULL)
    cache_unpin (s->c, b);
}

/* A cached write: into the cached block in one call, or into a filled
 * one that is then marked dirty. */
static void
st_write_cached (struct stress *s, uint64_t bn)
{
  uint64_t v = s->latest[bn] + 1;
  struct cache_block *b;
  int hit = cache_write (s->c, bn, &v, sizeof (uint64_t), sizeof v);

  CHECK (hit >= 0);
  if (!hit)
    {
      b = st_get (s, bn);
      if (b == NULL)
        return;
      __atomic_store_n (&words (b)[1], v, __ATOMIC_RELAXED);
      CHECK (cache_mark_dirty (s->c, b) == 0);
      cache_unpin (s->c, b);
    }
  s->latest[bn] = v;
}

/* A direct write replaces the whole block on disk and drops the cached
 * copy.  The engine would first wait for a writeback in flight (its ordered
 * extent); here the write is skipped instead. */
static void
st_write_direct (struct stress *s, uint64_t bn)
{
  struct cache_block *b = cache_peek (s->c, bn);
  bool busy = b && cache_block_state (s->c, b) == CACHE_WRITEBACK;

  if (b)
    cache_unpin (s->c, b);
  if (busy)
    return;
  atomic_store (&s->disk[bn], ++s->latest[bn]);
  CHECK (cache_drop_range (s->c, bn, bn, true) == 0);
}

/* Write back up to a few dirty runs from a random point. */
static void
st_writeback (struct stress *s, unsigned *seed)
{
  struct cache_run runs[2];
  struct cache_block *b;
  size_t n, r;
  uint64_t bn, v;
  int err;

  n = cache_dirty_runs (s->c, rand_r (seed) % ST_BLOCKS, 8, UINT64_MAX, runs, 2);
  for (r = 0; r < n; r++)
    for (bn = runs[r].start; bn < runs[r].start + runs[r].count; bn++)
      {
        pthread_mutex_lock (&s->lock[bn]);
        b = cache_peek (s->c, bn);
        if (b && cache_start_writeback (s->c, b) != 0)
          {
            cache_unpin (s->c, b);
            b = NULL;
          }
        if (b == NULL)
          {
            pthread_mutex_unlock (&s->lock[bn]);
            continue;
          }
        v = version_of (b);
        pthread_mutex_unlock (&s->lock[bn]);

        /* The I/O, outside the range lock; sometimes it fails. */
        err = rand_r (seed) % 16 == 0 ? -EIO : 0;
        if (!err)
          atomic_store (&s->disk[bn], v);
        if (rand_r (seed) % 4 == 0)
          sched_yield ();
        cache_end_writeback (s->c, b, err);
        cache_unpin (s->c, b);
      }
}

struct st_arg
{
  struct stress *s;
  unsigned seed;
};

static void *
st_worker (void *arg)
{
  struct st_arg *a = arg;
  struct stress *s = a->s;
  struct cache_stats st;
  uint64_t bn;
  int i, op;

  for (i = 0; i < ST_OPS; i++)
    {
      op = rand_r (&a->seed) % 16;
      /* Hot blocks: a quarter of the numbers get half of the traffic. */
      bn = rand_r (&a->seed)
           % (rand_r (&a->seed) % 2 ? ST_BLOCKS / 4 : ST_BLOCKS);
      if (op < 3)
        {
          st_writeback (s, &a->seed);
          continue;
        }
      pthread_mutex_lock (&s->lock[bn]);
      if (op < 9)
        {
          st_read (s, bn);
        }
      else if (op < 14)
        st_write_cached (s, bn);
      else
        st_write_direct (s, bn);
      pthread_mutex_unlock (&s->lock[bn]);
      if (i % 64 == 0)
        {
          cache_get_stats (s->c, &st);
          CHECK (st.blocks <= ST_CAPACITY);
        }
      if (i % 4096 == 0)
        cache_drop_clean (s->c);
    }
  return NULL;
}

Test (cache, stress_coherence, .timeout = 60)
{
  static struct stress s;
  struct st_arg args[ST_THREADS];
  pthread_t t[ST_THREADS];
  struct cache_block *b;
  struct cache_run runs[ST_BLOCKS];
  struct cache_stats st;
  size_t n, r;
  uint64_t bn, nr_dirty = 0, dirty_in_runs = 0;
  int i;

  s.c = new_cache (ST_CAPACITY);
  for (bn = 0; bn < ST_BLOCKS; bn++)
    pthread_mutex_init (&s.lock[bn], NULL);
  for (i = 0; i < ST_THREADS; i++)
    {
      args[i] = (struct st_arg){ &s, i + 1 };
      pthread_create (&t[i], NULL, st_worker, &args[i]);
    }
  for (i = 0; i < ST_THREADS; i++)
    pthread_join (t[i], NULL);

  /* Final state: every block holds its latest version, in the cache or on
   * disk, and the dirty index lists exactly the dirty blocks. */
  for (bn = 0; bn < ST_BLOCKS; bn++)
    {
      b = cache_peek (s.c, bn);
      if (b == NULL)
        {
          cr_assert_eq (atomic_load (&s.disk[bn]), s.latest[bn]);
          continue;
        }
      cr_assert_eq (version_of (b), s.latest[bn]);
      cr_assert_neq (cache_block_state (s.c, b), CACHE_WRITEBACK);
      if (cache_block_state (s.c, b) == CACHE_DIRTY)
        nr_dirty++;
      else
        cr_assert_eq (atomic_load (&s.disk[bn]), s.latest[bn]);
      cache_unpin (s.c, b);
    }
  n = cache_dirty_runs (s.c, 0, ST_BLOCKS, UINT64_MAX, runs, ST_BLOCKS);
  for (r = 0; r < n; r++)
    dirty_in_runs += runs[r].count;
  cr_assert_eq (dirty_in_runs, nr_dirty);
  st = stats (s.c);
  cr_assert_eq (st.dirty_bytes, nr_dirty * BS);
  cr_assert_leq (st.blocks, ST_CAPACITY);
  cr_log_info ("cache stress: %lu hits, %lu misses, %lu evictions, "
               "%lu failed allocations, peak dirty %lu blocks",
               (unsigned long)st.hits, (unsigned long)st.misses,
               (unsigned long)st.evictions,
               (unsigned long)atomic_load (&s.alloc_failures),
               (unsigned long)(st.peak_dirty_bytes / BS));
  cache_free (s.c);
}

/* Stress of pins and space waits: more threads than the cache can pin at
 * once allocate, insert, hold and release blocks, sleeping in
 * cache_space_wait when everything is pinned.  A lost wake-up hangs the
 * test (and the timeout fails it). */

enum
{
  SW_THREADS = 6,
  SW_CAPACITY = 8,
  SW_OPS = 20000,
};

struct sw_arg
{
  struct cache *c;
  unsigned seed;
  atomic_uint_fast64_t *waits;
};

static void *
sw_worker (void *arg)
{
  struct sw_arg *a = arg;
  struct cache_block *b, *existing, *other;
  struct cache_stats st;
  uint64_t ticket, bn;
  int i, r;

  for (i = 0; i < SW_OPS; i++)
    {
      bn = rand_r (&a->seed) % 64;
      ticket = cache_space_watch (a->c);
      while ((r = cache_alloc (a->c, &b)) == -EAGAIN)
        {
          atomic_fetch_add (a->waits, 1);
          cache_space_wait (a->c, &ticket);
        }
      cache_space_unwatch (a->c);
      CHECK (r == 0);
      words (b)[0] = bn;
      if (cache_insert (a->c, b, bn, &existing) == -EEXIST)
        b = existing;
      CHECK (words (b)[0] == bn);
      other = cache_peek (a->c, rand_r (&a->seed) % 64);
      if (rand_r (&a->seed) % 2)
        sched_yield ();
      if (other)
        {
          CHECK (words (other)[0] == cache_block_number (other));
          cache_unpin (a->c, other);
        }
      cache_unpin (a->c, b);
      if (i % 64 == 0)
        {
          cache_get_stats (a->c, &st);
          CHECK (st.blocks <= SW_CAPACITY);
        }
    }
  return NULL;
}

Test (cache, stress_space_waits, .timeout = 60)
{
  struct cache *c = new_cache (SW_CAPACITY);
  struct sw_arg args[SW_THREADS];
  pthread_t t[SW_THREADS];
  atomic_uint_fast64_t waits = 0;
  int i;

  for (i = 0; i < SW_THREADS; i++)
    {
      args[i] = (struct sw_arg){ c, i + 1, &waits };
      pthread_create (&t[i], NULL, sw_worker, &args[i]);
    }
  for (i = 0; i < SW_THREADS; i++)
    pthread_join (t[i], NULL);
  cr_assert_leq (stats (c).blocks, SW_CAPACITY);
  cr_log_info ("space stress: %lu waits", (unsigned long)atomic_load (&waits));
  cache_free (c);
}

/* The dirtied-at times (the age list that background writeback reads):
 * which transitions give a block a new time and which keep it. */

/* The block dirtied longest ago, and its time in *AT. */
static uint64_t
oldest (struct cache *c, uint64_t *at)
{
  uint64_t blk;

  cr_assert_eq (cache_oldest_dirty (c, &blk, at), 0);
  return blk;
}

Test (cache_age, empty)
{
  struct cache *c = new_cache (16);
  uint64_t blk, at;

  cr_assert_eq (cache_oldest_dirty (c, &blk, &at), -ENOENT);
  cr_assert_eq (cache_dirty_bytes (c), 0);
  cache_free (c);
}

Test (cache_age, order_of_first_dirtying)
{
  struct cache *c = new_cache (16);
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

/* Blocks 1 (A) and 2 (B), pinned, dirtied in that order a tick apart. */
static struct cache *
dirty_a_then_b (struct cache_block **a, struct cache_block **b)
{
  struct cache *c = new_cache (16);

  *a = insert (c, 1);
  *b = insert (c, 2);
  cache_mark_dirty (c, *a);
  tick ();
  cache_mark_dirty (c, *b);
  return c;
}

static void
free_a_and_b (struct cache *c, struct cache_block *a, struct cache_block *b)
{
  cache_unpin (c, a);
  cache_unpin (c, b);
  cache_free (c);
}

Test (cache_age, redirty_in_writeback_is_new)
{
  struct cache_block *a, *b;
  struct cache *c = dirty_a_then_b (&a, &b);
  uint64_t at_b, at_a;

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
  free_a_and_b (c, a, b);
}

Test (cache_age, failed_writeback_keeps_its_time_behind_the_others)
{
  struct cache_block *a, *b;
  struct cache *c = dirty_a_then_b (&a, &b);
  uint64_t at_a0, at_b, at_a, flush_began;
  struct cache_run run;

  cr_assert_eq (oldest (c, &at_a0), 1);
  tick ();
  flush_began = cache_clock ();
  cr_assert_eq (cache_start_writeback (c, a), 0);
  tick ();
  cr_assert_eq (cache_end_writeback (c, a, -EIO), CACHE_DIRTY);
  /* A is back, behind B: background writeback tries B first. */
  cr_assert_eq (oldest (c, &at_b), 2);
  /* A flush that began before the failure still finds A. */
  cr_assert_eq (cache_dirty_runs (c, 0, 16, flush_began, &run, 1), 1);
  cr_assert_eq (run.start, 1);
  cr_assert_eq (run.count, 2);
  cr_assert_eq (cache_start_writeback (c, b), 0);
  cr_assert_eq (oldest (c, &at_a), 1);
  cr_assert_eq (at_a, at_a0);
  cache_end_writeback (c, b, 0);
  free_a_and_b (c, a, b);
}

Test (cache_age, dropped_blocks_leave_the_list)
{
  struct cache *c = new_cache (16);
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
