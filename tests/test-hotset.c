/* Unit tests for server/hotset.c: the file round trip, its identity
 * check, damaged files, the atomic write, and what hotset_save puts
 * first. */
#include <config.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hotset.h"

enum { BLOCK = 64 * 1024 };

static const struct hotset_identity disk = { .dev = 2049, .ino = 1234,
                                             .size = 64 * BLOCK };
static const uint64_t blocks[] = { 7, 3, 63, 0, 12 };
#define N (sizeof blocks / sizeof *blocks)

static char dir[] = "test-hotset.XXXXXX";
static char path[64];

static void
setup (void)
{
  cr_assert_not_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/hot", dir);
}

static void
teardown (void)
{
  unlink (path);
  rmdir (dir);
}

static int
files_in_dir (void)
{
  DIR *d = opendir (dir);
  int n = 0;

  cr_assert_not_null (d);
  for (struct dirent *de; (de = readdir (d));)
    n += de->d_name[0] != '.';
  closedir (d);
  return n;
}

static int
read_back (const struct hotset_identity *id, uint64_t **list, size_t *n)
{
  uint32_t bs = 0;
  int r = hotset_read (path, id, &bs, list, n);

  if (r == 0)
    cr_assert_eq (bs, BLOCK);
  return r;
}

/* Overwrite the byte at OFFSET with VALUE, or cut the file to OFFSET
 * bytes when VALUE is negative. */
static void
damage (off_t offset, int value)
{
  int fd = open (path, O_WRONLY);
  unsigned char c = value;

  cr_assert (fd >= 0);
  if (value < 0)
    cr_assert_eq (ftruncate (fd, offset), 0);
  else
    cr_assert_eq (pwrite (fd, &c, 1, offset), 1);
  close (fd);
}

TestSuite (hotset, .init = setup, .fini = teardown);

Test (hotset, round_trip_keeps_the_order_and_leaves_no_temp_file)
{
  uint64_t *list;
  size_t n;

  cr_assert_eq (hotset_write (path, &disk, BLOCK, blocks, N), 0);
  cr_assert_eq (files_in_dir (), 1);
  cr_assert_eq (read_back (&disk, &list, &n), 0);
  cr_assert_eq (n, N);
  cr_assert_arr_eq (list, blocks, sizeof blocks);
  free (list);
  /* Writing again replaces it whole. */
  cr_assert_eq (hotset_write (path, &disk, BLOCK, blocks, 2), 0);
  cr_assert_eq (read_back (&disk, &list, &n), 0);
  cr_assert_eq (n, 2);
  free (list);
  cr_assert_eq (files_in_dir (), 1);
}

Test (hotset, another_disk_is_refused)
{
  struct hotset_identity other[4] = { disk, disk, disk, disk };
  uint64_t *list;
  size_t n;

  other[0].dev++;
  other[1].ino++;
  other[2].rdev = 8;
  other[3].size += BLOCK;
  cr_assert_eq (hotset_write (path, &disk, BLOCK, blocks, N), 0);
  for (int i = 0; i < 4; i++)
    cr_assert_eq (read_back (&other[i], &list, &n), -ESTALE, "identity %d",
                  i);
}

Test (hotset, a_damaged_file_is_refused)
{
  /* A byte of the list, of the magic, the version, a truncated list, a
   * truncated header. */
  static const struct
  {
    off_t offset;
    int value;
  } damages[] = { { 64 + 9, 0x77 }, { 0, 'X' }, { 8, 2 }, { 64 + 12, -1 },
                  { 20, -1 } };
  uint64_t *list;
  size_t n;

  for (size_t i = 0; i < sizeof damages / sizeof *damages; i++)
    {
      cr_assert_eq (hotset_write (path, &disk, BLOCK, blocks, N), 0);
      damage (damages[i].offset, damages[i].value);
      cr_assert_eq (read_back (&disk, &list, &n), -EBADMSG, "damage %zu", i);
    }
}

Test (hotset, a_block_outside_the_disk_is_refused)
{
  const uint64_t outside[] = { 1, 64 };
  uint64_t *list;
  size_t n;

  cr_assert_eq (hotset_write (path, &disk, BLOCK, outside, 2), 0);
  cr_assert_eq (read_back (&disk, &list, &n), -EBADMSG);
}

Test (hotset, errors_of_the_file_system_are_returned)
{
  uint64_t *list;
  size_t n;

  cr_assert_eq (read_back (&disk, &list, &n), -ENOENT);
  snprintf (path, sizeof path, "%s/no/such/dir", dir);
  cr_assert_eq (hotset_write (path, &disk, BLOCK, blocks, N), -ENOENT);
  snprintf (path, sizeof path, "%s/hot", dir);
  cr_assert_eq (files_in_dir (), 0);
}

/* hotset_save: a block read again and again is saved before blocks read
 * once, and the identity is the store's. */
Test (hotset, save_puts_the_hottest_block_first)
{
  struct engine_config cfg = { .mode = ENGINE_CACHE_WRITETHROUGH,
                               .cache_size = 16 * BLOCK, .block_size = BLOCK,
                               .dirty_limit = 100 };
  char disk_path[64], err[256], *buf = malloc (BLOCK);
  struct hotset_identity id;
  struct store *st;
  struct engine *e;
  uint64_t *list, saved;
  uint32_t bs;
  size_t n;
  int fd;

  snprintf (disk_path, sizeof disk_path, "%s/disk", dir);
  fd = open (disk_path, O_RDWR | O_CREAT, 0600);
  cr_assert (fd >= 0 && ftruncate (fd, 8 * BLOCK) == 0);
  close (fd);
  cr_assert_eq (store_open (disk_path, false, STORE_DIRECT_AUTO, &st, err,
                            sizeof err),
                0, "%s", err);
  e = engine_new (st, &cfg);
  cr_assert_not_null (e);
  for (int b = 0; b < 4; b++)
    cr_assert_eq (engine_read (e, buf, BLOCK, (uint64_t)b * BLOCK), 0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq (engine_read (e, buf, 100, 2 * BLOCK), 0);
  cr_assert_eq (hotset_save (e, path, &saved), 0);
  cr_assert_eq (saved, 4);
  cr_assert_eq (hotset_identity_of (engine_store (e), &id), 0);
  cr_assert_eq (hotset_read (path, &id, &bs, &list, &n), 0);
  cr_assert_eq (n, 4);
  cr_assert_eq (list[0], 2);
  free (list);
  cr_assert_eq (engine_free (e), 0);
  unlink (disk_path);
  free (buf);
}
