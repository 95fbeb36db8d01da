/* Unit tests for server/engine.c: the failure rules that no client can
 * provoke from outside.  The binary is linked with --wrap=malloc, so a test
 * can make the next malloc fail: on a fresh engine the first malloc of a
 * request is the extent tree's node for its range (the tree keeps freed
 * nodes, so only the first lock of a range allocates).  Against the
 * engine before lock_range returned the tree's error, the three lock
 * tests crash: the request ran without its range and extent_unlock
 * aborted. */
#include <config.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

void *__real_malloc (size_t size);
void *__wrap_malloc (size_t size);
void *__real_aligned_alloc (size_t align, size_t size);
void *__wrap_aligned_alloc (size_t align, size_t size);

static bool fail_next_malloc;
static int mallocs_failed;

/* Whether the next allocation fails (and then no more). */
static bool
fail_now (void)
{
  if (!fail_next_malloc)
    return false;
  fail_next_malloc = false;
  mallocs_failed++;
  errno = ENOMEM;
  return true;
}

void *
__wrap_malloc (size_t size)
{
  return fail_now () ? NULL : __real_malloc (size);
}

/* The extent tree allocates its nodes aligned to a cache line. */
void *
__wrap_aligned_alloc (size_t align, size_t size)
{
  return fail_now () ? NULL : __real_aligned_alloc (align, size);
}

enum { DISK = 1024 * 1024, BLOCK = 64 * 1024 };

static char path[] = "test-engine.XXXXXX";

/* A fresh engine in MODE over a 1 MiB file of 0x5a bytes, with LOCK_NODES
 * range locks allocated up front (with 0, its extent tree has never
 * allocated a node). */
static struct engine *
new_engine_with (enum engine_cache_mode mode, unsigned lock_nodes)
{
  struct engine_config cfg = { .mode = mode, .cache_size = 4 * BLOCK,
                               .block_size = BLOCK, .dirty_limit = 100,
                               .lock_nodes = lock_nodes };
  struct store *st;
  char err[256], *buf = malloc (DISK);
  int fd = mkstemp (path);

  cr_assert (fd >= 0 && buf);
  memset (buf, 0x5a, DISK);
  cr_assert (pwrite (fd, buf, DISK, 0) == DISK);
  close (fd);
  free (buf);
  cr_assert_eq (store_open (path, false, STORE_DIRECT_AUTO, &st, err,
                            sizeof err),
                0, "%s", err);
  struct engine *e = engine_new (st, &cfg);
  cr_assert_not_null (e);
  return e;
}

static struct engine *
new_engine (enum engine_cache_mode mode)
{
  return new_engine_with (mode, 0);
}

static void
free_engine (struct engine *e)
{
  cr_assert_eq (engine_free (e), 0);
  unlink (path);
}

/* The next malloc fails: it must be the range's, and the request fails
 * with ENOMEM (not run without its range, which then aborted at unlock). */
static void
arm (void)
{
  mallocs_failed = 0;
  fail_next_malloc = true;
}

static void
fired (void)
{
  cr_assert_eq (mallocs_failed, 1);
  cr_assert_not (fail_next_malloc);
}

static int
count_extents (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  (void) offset, (void) length, (void) hole;
  ++*(int *) opaque;
  return 0;
}

Test (engine, lock_tree_enomem_fails_a_read)
{
  struct engine *e = new_engine (ENGINE_CACHE_WRITEBACK);
  char buf[4096];

  arm ();
  cr_assert_eq (engine_read (e, buf, sizeof buf, 0), -ENOMEM);
  fired ();
  cr_assert_eq (engine_read (e, buf, sizeof buf, 0), 0);
  cr_assert_eq (buf[0], 0x5a);
  free_engine (e);
}

Test (engine, lock_tree_enomem_fails_a_cached_write)
{
  struct engine *e = new_engine (ENGINE_CACHE_WRITEBACK);
  char buf[4096];

  memset (buf, 0x11, sizeof buf);
  arm ();
  cr_assert_eq (engine_write (e, buf, sizeof buf, 8192, false), -ENOMEM);
  fired ();
  memset (buf, 0, sizeof buf);
  cr_assert_eq (engine_read (e, buf, sizeof buf, 8192), 0);
  cr_assert_eq (buf[0], 0x5a, "the failed write changed nothing");
  free_engine (e);
}

Test (engine, lock_tree_enomem_fails_a_direct_write_and_extents)
{
  struct engine *e = new_engine (ENGINE_CACHE_NONE);
  char buf[4096];
  int runs = 0;

  memset (buf, 0x22, sizeof buf);
  arm ();
  cr_assert_eq (engine_write (e, buf, sizeof buf, 0, true), -ENOMEM);
  fired ();
  arm ();
  cr_assert_eq (engine_extents (e, DISK, 0, count_extents, &runs), -ENOMEM);
  fired ();
  cr_assert_eq (runs, 0);
  cr_assert_eq (engine_write (e, buf, sizeof buf, 0, true), 0);
  cr_assert_eq (engine_extents (e, DISK, 0, count_extents, &runs), 0);
  cr_assert_gt (runs, 0);
  free_engine (e);
}

/* A flush whose writeback cannot get memory fails, and the dirty block
 * stays dirty for the next flush, which writes it.  (The range's node is
 * the one the write freed, so the malloc that fails here is the ordered
 * extent's.) */
Test (engine, enomem_in_writeback_fails_a_flush_and_keeps_the_data)
{
  struct engine *e = new_engine (ENGINE_CACHE_WRITEBACK);
  struct engine_stats s;
  char buf[4096], disk[4096];
  int fd;

  memset (buf, 0x33, sizeof buf);
  cr_assert_eq (engine_write (e, buf, sizeof buf, 3 * BLOCK, false), 0);
  arm ();
  cr_assert_eq (engine_flush (e), -ENOMEM);
  fired ();
  engine_get_stats (e, &s);
  cr_assert_eq (s.cache.dirty_bytes, BLOCK);
  cr_assert_eq (engine_flush (e), 0);
  fd = open (path, O_RDONLY);
  cr_assert (pread (fd, disk, sizeof disk, 3 * BLOCK) == sizeof disk);
  close (fd);
  cr_assert_eq (memcmp (disk, buf, sizeof buf), 0);
  free_engine (e);
}

/* With range locks allocated up front, locking needs no memory: the same
 * failing malloc that fails block status on a fresh tree is not hit. */
Test (engine, reserved_locks_need_no_malloc)
{
  struct engine *e = new_engine_with (ENGINE_CACHE_WRITEBACK, 4);
  int runs = 0;

  arm ();
  cr_assert_eq (engine_extents (e, DISK, 0, count_extents, &runs), 0);
  cr_assert_eq (mallocs_failed, 0);
  cr_assert_gt (runs, 0);
  fail_next_malloc = false;
  free_engine (e);
}
