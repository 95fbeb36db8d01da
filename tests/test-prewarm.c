/* Unit tests for server/prewarm.c: a hot set is prefetched and counted,
 * a block a client wrote is left as it is, another disk's hot set is
 * ignored with a warning, and a rate-limited prewarm stops when told. */
#include <config.h>

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hotset.h"
#include "prewarm.h"
#include "unit-helpers.h"

enum { BLOCK = 64 * 1024, DISK = 8 * BLOCK };

static char dir[] = "test-prewarm.XXXXXX";
static char disk_path[64], hot_path[64];
static struct engine *e;
static atomic_int warnings;

static void
count_warnings (enum log_level level, const char *msg)
{
  if (level == LOG_LEVEL_ERROR && strstr (msg, "warning: hotset:"))
    warnings++;
}

/* An engine in MODE over a disk of 0x5a bytes. */
static void
setup_engine (enum engine_cache_mode mode)
{
  struct engine_config cfg = { .mode = mode, .cache_size = 4 * BLOCK,
                               .block_size = BLOCK, .dirty_limit = 100 };
  char err[256], *buf = malloc (DISK);
  struct store *st;
  int fd;

  cr_assert_not_null (mkdtemp (dir));
  snprintf (disk_path, sizeof disk_path, "%s/disk", dir);
  snprintf (hot_path, sizeof hot_path, "%s/hot", dir);
  fd = open (disk_path, O_RDWR | O_CREAT, 0600);
  memset (buf, 0x5a, DISK);
  cr_assert (fd >= 0 && pwrite (fd, buf, DISK, 0) == DISK);
  close (fd);
  free (buf);
  cr_assert_eq (store_open (disk_path, false, STORE_DIRECT_AUTO, &st, err,
                            sizeof err),
                0, "%s", err);
  e = engine_new (st, &cfg);
  cr_assert_not_null (e);
}

static void
teardown (void)
{
  cr_assert_eq (engine_free (e), 0);
  unlink (hot_path);
  unlink (disk_path);
  rmdir (dir);
}

static void
write_hotset (const uint64_t *blocks, size_t n, bool other_disk)
{
  struct hotset_identity id;

  cr_assert_eq (hotset_identity_of (engine_store (e), &id), 0);
  id.ino += other_disk;
  cr_assert_eq (hotset_write (hot_path, &id, BLOCK, blocks, n), 0);
}

static struct prewarm *
start (uint64_t rate)
{
  struct prewarm_config cfg = { .engine = e, .path = hot_path, .rate = rate,
                                .log = count_warnings };
  struct prewarm *p = prewarm_new (&cfg);

  cr_assert_not_null (p);
  cr_assert_eq (prewarm_start (p), 0);
  return p;
}

/* Wait (up to 10 s) for P to report TOTAL blocks done. */
static void
wait_done (struct prewarm *p, uint64_t total)
{
  uint64_t done = 0, t = 0;

  for (int i = 0; i < 10000 && !(t == total && done == total); i++)
    {
      prewarm_progress (p, &done, &t);
      sleep_us (1000);
    }
  cr_assert_eq (t, total);
  cr_assert_eq (done, total);
}

static uint64_t
cached_blocks (void)
{
  struct engine_stats st;

  engine_get_stats (e, &st);
  return st.cache.blocks;
}

Test (prewarm, the_hot_set_is_prefetched_and_then_hits)
{
  const uint64_t blocks[] = { 5, 1, 7 };
  struct engine_stats st;
  char buf[16];

  setup_engine (ENGINE_CACHE_WRITETHROUGH);
  write_hotset (blocks, 3, false);
  struct prewarm *p = start (0);
  wait_done (p, 3);
  prewarm_free (p);
  cr_assert_eq (cached_blocks (), 3);
  engine_get_stats (e, &st);
  cr_assert_eq (st.cache.hits + st.cache.misses, 0, "prewarm counts none");
  for (int i = 0; i < 3; i++)
    cr_assert_eq (engine_read (e, buf, sizeof buf, blocks[i] * BLOCK), 0);
  engine_get_stats (e, &st);
  cr_assert_eq (st.cache.hits, 3);
  cr_assert_eq (buf[0], 0x5a);
  teardown ();
}

/* No more blocks than the cache holds (4 here). */
Test (prewarm, a_hot_set_larger_than_the_cache_is_cut)
{
  const uint64_t blocks[] = { 0, 1, 2, 3, 4, 5, 6, 7 };

  setup_engine (ENGINE_CACHE_WRITETHROUGH);
  write_hotset (blocks, 8, false);
  struct prewarm *p = start (0);
  wait_done (p, 4);
  prewarm_free (p);
  cr_assert_eq (cached_blocks (), 4);
  teardown ();
}

Test (prewarm, a_block_a_client_wrote_is_kept)
{
  const uint64_t blocks[] = { 2 };
  char data[BLOCK], back[BLOCK];

  setup_engine (ENGINE_CACHE_WRITEBACK);
  memset (data, 0x42, sizeof data);
  cr_assert_eq (engine_write (e, data, BLOCK, 2 * BLOCK, false), 0);
  write_hotset (blocks, 1, false);
  struct prewarm *p = start (0);
  wait_done (p, 1);
  prewarm_free (p);
  cr_assert_eq (engine_read (e, back, BLOCK, 2 * BLOCK), 0);
  cr_assert_arr_eq (back, data, BLOCK);
  teardown ();
}

Test (prewarm, another_disks_hot_set_is_ignored_with_a_warning)
{
  const uint64_t blocks[] = { 1, 2 };
  uint64_t done, total;

  setup_engine (ENGINE_CACHE_WRITETHROUGH);
  warnings = 0;
  write_hotset (blocks, 2, true);
  struct prewarm *p = start (0);
  for (int i = 0; i < 10000 && warnings == 0; i++)
    sleep_us (1000);
  cr_assert_eq (warnings, 1);
  prewarm_progress (p, &done, &total);
  prewarm_free (p);
  cr_assert_eq (total, 0);
  cr_assert_eq (cached_blocks (), 0);
  teardown ();
}

/* At one byte a second the second block would wait for days: freeing the
 * prewarm must wake it. */
Test (prewarm, a_slow_prewarm_stops_when_freed)
{
  const uint64_t blocks[] = { 1, 2, 3 };
  uint64_t done = 0, total = 0;

  setup_engine (ENGINE_CACHE_WRITETHROUGH);
  write_hotset (blocks, 3, false);
  struct prewarm *p = start (1);
  for (int i = 0; i < 10000 && done == 0; i++)
    {
      prewarm_progress (p, &done, &total);
      sleep_us (1000);
    }
  prewarm_free (p);
  cr_assert_eq (total, 3);
  cr_assert_eq (cached_blocks (), 1);
  teardown ();
}
