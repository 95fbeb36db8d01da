/* blkcache: the store, the backing file or block device.
 *
 * The store owns the file descriptors and knows the direct-I/O alignment.
 * With direct I/O in use every read and write of the aligned body goes
 * through an O_DIRECT descriptor; the part of a disk past its last whole
 * alignment unit (the "tail", present only when the size is not a multiple
 * of the alignment) goes through a buffered descriptor.  Without direct I/O
 * (direct=off, or direct=auto on a filesystem that refuses O_DIRECT) all I/O
 * is buffered and written ranges are dropped from the page cache with
 * posix_fadvise, so the disk is not cached twice.
 *
 * The store does no locking of its own: it is safe to call from many threads
 * at once, and callers order conflicting I/O (the engine's range locks).
 */
#ifndef BLKCACHE_STORE_H
#define BLKCACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_direct
{
  STORE_DIRECT_AUTO, /* O_DIRECT where the filesystem allows it */
  STORE_DIRECT_ON,   /* O_DIRECT or fail */
  STORE_DIRECT_OFF,  /* buffered I/O */
};

struct store
{
  int fd;              /* O_DIRECT descriptor, or bfd when not direct */
  int bfd;             /* buffered descriptor (syncs, zeroes, trims, reads;
                          buffered writes use one per thread) */
  uint64_t size;       /* bytes served */
  uint64_t body;       /* size rounded down to align: the O_DIRECT part */
  uint32_t align;      /* offset and length alignment of direct I/O */
  uint32_t mem_align;  /* buffer alignment of direct I/O */
  bool direct;         /* O_DIRECT in use */
  bool readonly;
  bool is_block;       /* a block device, not a regular file */
  bool is_rotational;
  bool can_punch;      /* holes can be punched (trim, fast zero) */
  struct store_aio *aio; /* AIO contexts for store_write_batch */
  struct store_threads *threads; /* per-thread buffered descriptors */
};

/* Open PATH, a regular file or a block device, read-only if READONLY.
 * On failure returns a negative errno and writes a message an admin can act
 * on into ERR (ERRLEN bytes). */
int store_open (const char *path, bool readonly, enum store_direct mode,
                struct store **out, char *err, size_t errlen);

/* Close the descriptors and free the store. */
void store_close (struct store *st);

/* Allocate a buffer aligned for direct I/O to and from this store.
 * Returns NULL with errno set; free it with free(). */
void *store_alloc_buffer (const struct store *st, size_t len);

/* Round OFFSET down / up to the store's alignment. */
uint64_t store_align_down (const struct store *st, uint64_t offset);
uint64_t store_align_up (const struct store *st, uint64_t offset);

/* Read COUNT bytes at OFFSET (any alignment, any buffer) into BUF.  The
 * range must lie inside the disk.  Returns 0 or a negative errno. */
int store_read (struct store *st, void *buf, size_t count, uint64_t offset);

/* Write COUNT bytes from BUF at OFFSET.  OFFSET must be aligned, and COUNT
 * aligned unless the write ends at the end of the disk (callers do the
 * read-modify-write of unaligned edges under their range lock).  BUF may
 * have any alignment.  With FUA the bytes are durable on return, for this
 * range alone (RWF_DSYNC; fdatasync only where the kernel lacks it).
 * A buffered write returns once its bytes are on the device, not only in
 * the page cache (see store.c).
 * Returns 0 or a negative errno. */
int store_write (struct store *st, const void *buf, size_t count,
                 uint64_t offset, bool fua);

/* Write COUNT bytes from BUF at OFFSET (any alignment) through the page
 * cache and leave them there: not settled, not durable.  For a caller
 * that makes them durable with store_sync and takes that sync's failure
 * as this write's, and that keeps no CLEAN cached copy of them meanwhile
 * (a failed writeback of the page cache loses them).  Returns 0 or a
 * negative errno. */
int store_write_unsettled (struct store *st, const void *buf, size_t count,
                           uint64_t offset);

/* Drop [OFFSET, OFFSET+COUNT) from the page cache where it is clean (after
 * store_write_unsettled and a successful store_sync). */
void store_drop_page_cache (struct store *st, uint64_t offset,
                            uint64_t count);

/* One write of a batch: BUF, COUNT and OFFSET as for store_write;
 * store_write_batch sets RESULT to 0 or a negative errno. */
struct store_io
{
  const void *buf;
  size_t count;
  uint64_t offset;
  int result;
};

/* Do the N writes of IOS, which must not overlap, as store_write would
 * without FUA, in any order.  On an O_DIRECT store the aligned ones are
 * submitted together (Linux AIO, up to 64 in flight): one system call
 * queues them all and the disk sees them at once.  The rest, and all of
 * them where AIO is not available, are written one after another.
 * Returns 0, or the first negative errno among the RESULTs. */
int store_write_batch (struct store *st, struct store_io *ios, size_t n);

/* Make every completed write durable (fdatasync).  Returns 0 or -errno. */
int store_sync (struct store *st);

/* Zero COUNT bytes at OFFSET (both aligned, or ending at the end of the
 * disk).  MAY_TRIM allows punching a hole.  With FAST, fail at once with
 * -ENOTSUP, having written nothing, when the device has no fast way to
 * zero (on a block device: when MAY_TRIM is not given, or the device
 * cannot zero by command).  FUA makes the zeroes durable on return.
 * Returns 0 or a negative errno. */
int store_zero (struct store *st, size_t count, uint64_t offset,
                bool may_trim, bool fast, bool fua);

/* Discard COUNT bytes at OFFSET (aligned); afterwards they read as zeroes
 * (a file's punched hole) or, on some devices, as their old contents.
 * Returns 0; -EOPNOTSUPP when the disk cannot discard, which then left
 * every byte as it was; or another negative errno. */
int store_trim (struct store *st, size_t count, uint64_t offset, bool fua);

/* Describe [OFFSET, OFFSET+COUNT) as data and holes (SEEK_DATA/SEEK_HOLE;
 * a block device is all data), calling ADD for each run in order until the
 * range is covered or ADD returns non-zero.  Returns 0 or a negative errno
 * (ADD's own return value when it fails). */
typedef int (*store_extent_fn) (void *opaque, uint64_t offset,
                                uint64_t length, bool hole);
int store_extents (struct store *st, uint64_t offset, uint64_t count,
                   store_extent_fn add, void *opaque);

/* Hint that [OFFSET, OFFSET+COUNT) will be read soon.  Returns 0. */
/* Whether every byte of [OFFSET, OFFSET+COUNT) is allocated data, so
 * that a write there allocates nothing: always on a block device; on a
 * file, when SEEK_HOLE finds no hole (nor unwritten extent, which
 * filesystems report as one) before its end.  false when the file cannot
 * say. */
bool store_allocated (struct store *st, uint64_t offset, uint64_t count);

int store_prefetch (struct store *st, uint64_t offset, uint64_t count);

#endif /* BLKCACHE_STORE_H */
