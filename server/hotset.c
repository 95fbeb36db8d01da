/* blkcache: the hot set file.  See hotset.h.
 *
 * The checksum is FNV-1a over 64 bits: it is there to catch a torn or
 * damaged file, not an adversary (the file is the administrator's).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hotset.h"

#define MAGIC "BLKCHOT\n"
#define HEADER_SIZE 64
#define CHECKSUM_AT 56
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
/* Ranks of cache_block_rank: 0 .. 2 * (MAX_FREQ + 1) - 1. */
#define RANKS 8

static void
put_le (unsigned char *p, uint64_t v, unsigned bytes)
{
  for (unsigned i = 0; i < bytes; i++)
    p[i] = v >> (8 * i);
}

static uint64_t
get_le (const unsigned char *p, unsigned bytes)
{
  uint64_t v = 0;

  for (unsigned i = 0; i < bytes; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static uint64_t
fnv1a (uint64_t h, const unsigned char *p, size_t len)
{
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * FNV_PRIME;
  return h;
}

int
hotset_identity_of (const struct store *st, struct hotset_identity *id)
{
  struct stat sb;

  if (fstat (st->bfd, &sb) == -1)
    return -errno;
  memset (id, 0, sizeof *id);
  if (S_ISBLK (sb.st_mode))
    id->rdev = sb.st_rdev;
  else
    {
      id->dev = sb.st_dev;
      id->ino = sb.st_ino;
    }
  id->size = st->size;
  return 0;
}

static void
encode_header (unsigned char *h, const struct hotset_identity *id,
               uint32_t block_size, uint64_t n)
{
  memcpy (h, MAGIC, 8);
  put_le (h + 8, HOTSET_VERSION, 4);
  put_le (h + 12, block_size, 4);
  put_le (h + 16, id->dev, 8);
  put_le (h + 24, id->ino, 8);
  put_le (h + 32, id->rdev, 8);
  put_le (h + 40, id->size, 8);
  put_le (h + 48, n, 8);
}

static int
write_all (int fd, const unsigned char *p, size_t len)
{
  while (len > 0)
    {
      ssize_t w = write (fd, p, len);
      if (w == -1 && errno == EINTR)
        continue;
      if (w == -1)
        return -errno;
      p += w;
      len -= w;
    }
  return 0;
}

/* Read exactly LEN bytes; -EBADMSG if the file ends first. */
static int
read_all (int fd, unsigned char *p, size_t len)
{
  while (len > 0)
    {
      ssize_t r = read (fd, p, len);
      if (r == -1 && errno == EINTR)
        continue;
      if (r == -1)
        return -errno;
      if (r == 0)
        return -EBADMSG;
      p += r;
      len -= r;
    }
  return 0;
}

/* fsync the directory holding PATH, so that the rename is durable. */
static int
sync_dir (const char *path)
{
  char *copy = strdup (path);
  int fd, r = 0;

  if (copy == NULL)
    return -ENOMEM;
  fd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free (copy);
  if (fd == -1)
    return -errno;
  if (fsync (fd) == -1)
    r = -errno;
  close (fd);
  return r;
}

/* The header and the list, encoded into one buffer of *LENP bytes. */
static unsigned char *
encode (const struct hotset_identity *id, uint32_t block_size,
        const uint64_t *blocks, size_t n, size_t *lenp)
{
  size_t len = HEADER_SIZE + 8 * n;
  unsigned char *buf = malloc (len);

  if (buf == NULL)
    return NULL;
  encode_header (buf, id, block_size, n);
  for (size_t i = 0; i < n; i++)
    put_le (buf + HEADER_SIZE + 8 * i, blocks[i], 8);
  put_le (buf + CHECKSUM_AT,
          fnv1a (fnv1a (FNV_OFFSET, buf, CHECKSUM_AT), buf + HEADER_SIZE,
                 8 * n),
          8);
  *lenp = len;
  return buf;
}

int
hotset_write (const char *path, const struct hotset_identity *id,
              uint32_t block_size, const uint64_t *blocks, size_t n)
{
  size_t len;
  unsigned char *buf = encode (id, block_size, blocks, n, &len);
  char *tmp = NULL;
  int fd = -1, r;

  if (buf == NULL || asprintf (&tmp, "%s.XXXXXX", path) == -1)
    {
      free (buf);
      return -ENOMEM;
    }
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd == -1)
    {
      r = -errno;
      goto out;
    }
  r = write_all (fd, buf, len);
  if (r == 0 && fsync (fd) == -1)
    r = -errno;
  if (close (fd) == -1 && r == 0)
    r = -errno;
  if (r == 0 && rename (tmp, path) == -1)
    r = -errno;
  if (r < 0)
    unlink (tmp);
  else
    r = sync_dir (path);
out:
  free (tmp);
  free (buf);
  return r;
}

/* Check the header H against disk ID; store the block size and count. */
static int
check_header (const unsigned char *h, const struct hotset_identity *id,
              uint32_t *block_sizep, uint64_t *np)
{
  uint64_t bs = get_le (h + 12, 4);

  if (memcmp (h, MAGIC, 8) != 0 || get_le (h + 8, 4) != HOTSET_VERSION
      || bs == 0 || (bs & (bs - 1)) != 0)
    return -EBADMSG;
  if (get_le (h + 16, 8) != id->dev || get_le (h + 24, 8) != id->ino
      || get_le (h + 32, 8) != id->rdev || get_le (h + 40, 8) != id->size)
    return -ESTALE;
  *block_sizep = bs;
  *np = get_le (h + 48, 8);
  return 0;
}

int
hotset_read (const char *path, const struct hotset_identity *id,
             uint32_t *block_sizep, uint64_t **blocksp, size_t *np)
{
  unsigned char h[HEADER_SIZE], *list = NULL;
  uint64_t n = 0, *blocks = NULL;
  struct stat sb;
  int fd, r;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return -errno;
  r = read_all (fd, h, HEADER_SIZE);
  if (r == 0)
    r = check_header (h, id, block_sizep, &n);
  if (r == 0 && fstat (fd, &sb) == -1)
    r = -errno;
  /* The size must be the header's promise, before trusting N for malloc. */
  if (r == 0
      && (sb.st_size < HEADER_SIZE
          || ((uint64_t)sb.st_size - HEADER_SIZE) % 8 != 0
          || ((uint64_t)sb.st_size - HEADER_SIZE) / 8 != n))
    r = -EBADMSG;
  if (r == 0 && ((list = malloc (8 * n + 1)) == NULL
                 || (blocks = malloc (8 * n + 1)) == NULL))
    r = -ENOMEM;
  if (r == 0)
    r = read_all (fd, list, 8 * n);
  if (r == 0
      && fnv1a (fnv1a (FNV_OFFSET, h, CHECKSUM_AT), list, 8 * n)
             != get_le (h + CHECKSUM_AT, 8))
    r = -EBADMSG;
  for (uint64_t i = 0; r == 0 && i < n; i++)
    {
      blocks[i] = get_le (list + 8 * i, 8);
      if (blocks[i] >= (id->size + *block_sizep - 1) / *block_sizep)
        r = -EBADMSG;
    }
  close (fd);
  free (list);
  if (r < 0)
    {
      free (blocks);
      return r;
    }
  *blocksp = blocks;
  *np = n;
  return 0;
}

/* Order the N blocks of LIST by rank, highest first, keeping the cache's
 * order within a rank (a counting sort), into OUT. */
static void
hottest_first (const struct cache_block_rank *list, size_t n, uint64_t *out)
{
  size_t start[RANKS + 1] = { 0 };

  for (size_t i = 0; i < n; i++)
    start[RANKS - 1 - list[i].rank + 1]++;
  for (unsigned k = 1; k <= RANKS; k++)
    start[k] += start[k - 1];
  for (size_t i = 0; i < n; i++)
    out[start[RANKS - 1 - list[i].rank]++] = list[i].blockno;
}

int
hotset_save (struct engine *e, const char *path, uint64_t *np)
{
  struct engine_stats es;
  struct hotset_identity id;
  struct cache_block_rank *list;
  uint64_t *blocks;
  size_t n;
  int r;

  engine_get_stats (e, &es);
  if (es.block_size == 0)
    return -ENOTSUP;
  r = hotset_identity_of (engine_store (e), &id);
  if (r < 0)
    return r;
  list = malloc ((es.cache.blocks + 1) * sizeof *list);
  blocks = malloc ((es.cache.blocks + 1) * sizeof *blocks);
  if (list == NULL || blocks == NULL)
    {
      free (list);
      free (blocks);
      return -ENOMEM;
    }
  n = engine_hot_blocks (e, list, es.cache.blocks);
  hottest_first (list, n, blocks);
  r = hotset_write (path, &id, es.block_size, blocks, n);
  free (list);
  free (blocks);
  *np = n;
  return r;
}
