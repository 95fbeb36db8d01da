/* blkcache: the hot set file, for a warm restart.
 *
 * A hot set is the list of cached block numbers, hottest first, saved at
 * exit (and on the control command save-hotset) and prefetched at the
 * next start (prewarm.h).  The file says which disk it was taken from, so
 * that it is never applied to another one:
 *
 *   offset  size  field (all integers little endian)
 *        0     8  magic "BLKCHOT\n"
 *        8     4  format version, HOTSET_VERSION
 *       12     4  cache block size of the block numbers
 *       16     8  st_dev of the disk (a regular file; 0 for a device)
 *       24     8  st_ino of the disk (a regular file; 0 for a device)
 *       32     8  st_rdev of the disk (a block device; 0 for a file)
 *       40     8  size of the disk in bytes
 *       48     8  number of blocks N
 *       56     8  FNV-1a 64 checksum of bytes 0..55 and of the list
 *       64   8*N  block numbers, hottest first
 *
 * It is written to a temporary file in the same directory, fsynced, and
 * renamed over PATH, and the directory is fsynced: a crash leaves the old
 * file or the new one, never a mix.
 */
#ifndef BLKCACHE_HOTSET_H
#define BLKCACHE_HOTSET_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "store.h"

#define HOTSET_VERSION 1

/* Which disk a hot set belongs to. */
struct hotset_identity
{
  uint64_t dev, ino; /* a regular file's; 0 for a block device */
  uint64_t rdev;     /* a block device's; 0 for a regular file */
  uint64_t size;     /* bytes */
};

/* The identity of the disk ST serves.  Returns 0 or the negative errno of
 * fstat. */
int hotset_identity_of (const struct store *st, struct hotset_identity *id);

/* Write N block numbers BLOCKS (of BLOCK_SIZE bytes) of disk ID to PATH,
 * atomically (see above).  Returns 0 or a negative errno (of open, write,
 * fsync, rename); on failure PATH is left as it was. */
int hotset_write (const char *path, const struct hotset_identity *id,
                  uint32_t block_size, const uint64_t *blocks, size_t n);

/* Read the hot set at PATH for disk ID: on success, *BLOCKSP (to free) gets
 * *NP block numbers of *BLOCK_SIZEP bytes, every one inside the disk.
 * Returns 0; -ENOENT if there is no file; -ESTALE if it was saved for
 * another disk (or another size of it); -EBADMSG if it is not a hot set
 * of this version, is truncated or fails its checksum; -ENOMEM; or the
 * negative errno of open or read. */
int hotset_read (const char *path, const struct hotset_identity *id,
                 uint32_t *block_sizep, uint64_t **blocksp, size_t *np);

/* Save engine E's cached blocks to PATH, hottest first (by rank, and
 * within a rank in the cache's order: engine_hot_blocks), and store how
 * many in *NP.  Returns 0 or a negative errno of hotset_write, or
 * -ENOMEM, or -ENOTSUP without a cache. */
int hotset_save (struct engine *e, const char *path, uint64_t *np);

#endif /* BLKCACHE_HOTSET_H */
