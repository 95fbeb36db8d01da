/* blkcache: the engine.  See engine.h.
 *
 * Every write-like operation (write, zero, trim) locks its range, rounded
 * out to the store's alignment, in the extent tree for the whole of its
 * I/O.  That lock is what makes the read-modify-write of an unaligned edge
 * safe: two writers of disjoint bytes of one sector are serialised on the
 * sector, so the second one reads the first one's bytes before merging its
 * own, and neither is lost.
 *
 * Reads take no lock: a read that overlaps a write in flight may see the
 * old or the new bytes of each sector, which NBD allows.
 *
 * Lock ordering: a thread holds at most one range of the extent tree at a
 * time and never waits, while holding it, for anything but store I/O.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "extent_tree.h"

struct engine
{
  struct store *st;
  struct extent_tree *locks;
};

struct engine *
engine_new (struct store *st)
{
  struct engine *e = calloc (1, sizeof *e);

  if (e == NULL)
    return NULL;
  e->locks = extent_tree_new ();
  if (e->locks == NULL)
    {
      free (e);
      return NULL;
    }
  e->st = st;
  return e;
}

void
engine_free (struct engine *e)
{
  if (e == NULL)
    return;
  extent_tree_free (e->locks);
  store_close (e->st);
  free (e);
}

const struct store *
engine_store (const struct engine *e)
{
  return e->st;
}

/* The aligned span [*start, *end) covering [offset, offset+count), clipped
 * to the disk (whose size need not be aligned). */
static void
aligned_span (const struct store *st, uint64_t offset, uint64_t count,
              uint64_t *start, uint64_t *end)
{
  *start = store_align_down (st, offset);
  *end = store_align_up (st, offset + count);
  if (*end > st->size)
    *end = st->size;
}

int
engine_read (struct engine *e, void *buf, uint32_t count, uint64_t offset)
{
  return store_read (e->st, buf, count, offset);
}

/* Write [offset, offset+count) from BUF where the range may be unaligned:
 * the caller holds the range lock on the aligned span.  The aligned middle
 * goes straight from BUF; each unaligned edge sector is read, merged and
 * written back. */
static int
write_locked (struct engine *e, const char *buf, uint64_t count,
              uint64_t offset, bool fua)
{
  struct store *st = e->st;
  uint64_t start, end;
  int r;

  aligned_span (st, offset, count, &start, &end);
  if (start == offset && end == offset + count)
    return store_write (st, buf, count, offset, fua);

  /* Small or unaligned: build the whole span in one bounce buffer when it
   * is short, so the request is one write. */
  if (end - start <= 1024 * 1024)
    {
      char *bounce = store_alloc_buffer (st, end - start);
      if (bounce == NULL)
        return -errno;
      /* Head and tail sectors (perhaps the same one, read twice). */
      r = 0;
      if (offset != start)
        r = store_read (st, bounce,
                        end - start < st->align ? end - start : st->align,
                        start);
      uint64_t tail = store_align_down (st, offset + count);
      if (r == 0 && offset + count != end)
        r = store_read (st, bounce + (tail - start), end - tail, tail);
      if (r == 0)
        {
          memcpy (bounce + (offset - start), buf, count);
          r = store_write (st, bounce, end - start, start, fua);
        }
      free (bounce);
      return r;
    }

  /* Large: head sector, aligned middle, tail sector. */
  uint64_t head_end = store_align_up (st, offset);
  if (head_end != offset)
    {
      r = write_locked (e, buf, head_end - offset, offset, fua);
      if (r < 0)
        return r;
      buf += head_end - offset;
      count -= head_end - offset;
      offset = head_end;
    }
  uint64_t mid = store_align_down (st, offset + count) - offset;
  if (offset + count == st->size)
    mid = count;
  if (mid > 0)
    {
      r = store_write (st, buf, mid, offset, fua);
      if (r < 0)
        return r;
    }
  if (mid < count)
    return write_locked (e, buf + mid, count - mid, offset + mid, fua);
  return 0;
}

int
engine_write (struct engine *e, const void *buf, uint32_t count,
              uint64_t offset, bool fua)
{
  uint64_t start, end;
  int r;

  if (count == 0)
    return 0;
  aligned_span (e->st, offset, count, &start, &end);
  r = extent_lock (e->locks, start, end - 1);
  if (r < 0)
    return r;
  r = write_locked (e, buf, count, offset, fua);
  extent_unlock (e->locks, start, end - 1);
  return r;
}

int
engine_flush (struct engine *e)
{
  return store_sync (e->st);
}

int
engine_trim (struct engine *e, uint32_t count, uint64_t offset, bool fua)
{
  struct store *st = e->st;
  uint64_t start = store_align_up (st, offset);
  uint64_t end = store_align_down (st, offset + count);
  int r;

  if (offset + count == st->size)
    end = st->size;
  if (start >= end)
    return 0;
  r = extent_lock (e->locks, start, end - 1);
  if (r < 0)
    return r;
  r = store_trim (st, end - start, start, fua);
  extent_unlock (e->locks, start, end - 1);
  return r;
}

/* Zero the unaligned edge [offset, offset+count) inside one sector. */
static int
zero_edge (struct engine *e, uint64_t count, uint64_t offset, bool fua)
{
  char *zeroes = calloc (1, count);
  int r;

  if (zeroes == NULL)
    return -errno;
  r = write_locked (e, zeroes, count, offset, fua);
  free (zeroes);
  return r;
}

int
engine_zero (struct engine *e, uint32_t count, uint64_t offset,
             bool may_trim, bool fast, bool fua)
{
  struct store *st = e->st;
  uint64_t start, end;
  int r;

  if (count == 0)
    return 0;
  aligned_span (st, offset, count, &start, &end);
  uint64_t mid_start = store_align_up (st, offset);
  uint64_t mid_end = store_align_down (st, offset + count);
  if (offset + count == st->size)
    mid_end = st->size;
  /* A fast zero must not fall back to writing edges; refuse it when the
   * request is not a whole aligned range. */
  if (fast && (mid_start != offset || mid_end != offset + count))
    return -ENOTSUP;

  r = extent_lock (e->locks, start, end - 1);
  if (r < 0)
    return r;
  if (mid_start >= mid_end)
    r = zero_edge (e, count, offset, fua);
  else
    {
      r = 0;
      if (mid_start > offset)
        r = zero_edge (e, mid_start - offset, offset, fua);
      if (r == 0)
        r = store_zero (st, mid_end - mid_start, mid_start, may_trim, fast,
                        fua);
      if (r == 0 && mid_end < offset + count)
        r = zero_edge (e, offset + count - mid_end, mid_end, fua);
    }
  extent_unlock (e->locks, start, end - 1);
  return r;
}

int
engine_cache (struct engine *e, uint32_t count, uint64_t offset)
{
  return store_prefetch (e->st, offset, count);
}

int
engine_extents (struct engine *e, uint32_t count, uint64_t offset,
                store_extent_fn add, void *opaque)
{
  return store_extents (e->st, offset, count, add, opaque);
}
