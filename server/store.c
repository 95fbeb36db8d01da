/* blkcache: the store.  See store.h for what it owns.
 *
 * Every function here is a thin loop over pread/pwritev2/fallocate/ioctl
 * that retries short transfers and EINTR (for every call, fdatasync,
 * fallocate and ioctl included), so callers see whole requests; a write
 * that makes no progress is EIO, never a loop.
 *
 * Buffered writes (direct=off, the direct=auto fallback, and the tail of
 * a disk whose size is not aligned) are settled before they return: a
 * buffered write that reached only the page cache could still fail in the
 * kernel's own writeback, after which the page cache drops the error's
 * pages and reads return the disk's older bytes, while blkcache would hold
 * the new ones as CLEAN (no CLEAN block may hold bytes the disk may not
 * keep).  So after the write, sync_file_range waits for the kernel's
 * writeback of its pages and reports its error (the file's error sequence,
 * as fdatasync does): the write returns once its bytes are on the device,
 * as an O_DIRECT write does.  It is not a sync (the device's own cache is
 * not flushed: FUA and flush do that), so it costs a device write, not a
 * journal commit: RWF_DSYNC on each write measured 2.6 times slower under
 * a 70/30 mix with a flush every 64 writes (server/README).  A batch
 * settles all its writes with one call.  The kernel reports a writeback
 * error once per open file description, not per range: two threads
 * settling at once on one shared descriptor could split one failure, the
 * writer whose pages failed seeing success.  So every thread writes and
 * settles through a descriptor of its own (thread_fd), opened before its
 * first buffered write: every thread sees every writeback error that
 * follows, its own among them (another thread's is a spurious failure, a
 * missed one is impossible).
 * Reads of unaligned ranges go through an aligned bounce buffer; writes
 * must be aligned by the caller (store.h), and only their buffer may be
 * bounced.  Nothing here takes a lock or sleeps other than in the kernel.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "store.h"

#define DEFAULT_ALIGN 4096
/* Largest bounce buffer, and the largest single written-zeroes chunk. */
#define BOUNCE_MAX (1024 * 1024)

static int
full_pread (int fd, void *buf, size_t count, uint64_t offset)
{
  char *p = buf;

  while (count > 0)
    {
      ssize_t r = pread (fd, p, count, offset);
      if (r == -1)
        {
          if (errno == EINTR)
            continue;
          return -errno;
        }
      if (r == 0)
        {
          /* Past the end of a file that shrank under us: zeroes. */
          memset (p, 0, count);
          return 0;
        }
      p += r;
      count -= r;
      offset += r;
    }
  return 0;
}

/* fdatasync, retried on EINTR (an interrupted sync has proved nothing,
 * and is not a failure either).  Returns 0 or -errno. */
static int
sync_fd (int fd)
{
  while (fdatasync (fd) == -1)
    if (errno != EINTR)
      return -errno;
  return 0;
}

/* fallocate, retried on EINTR.  Returns 0 or -1 with errno set. */
static int
falloc (int fd, int mode, uint64_t offset, uint64_t count)
{
  int r;

  do
    r = fallocate (fd, mode, offset, count);
  while (r == -1 && errno == EINTR);
  return r;
}

/* A range ioctl (BLKZEROOUT, BLKDISCARD), retried on EINTR.  Returns 0 or
 * -1 with errno set. */
static int
ioctl_range (int fd, unsigned long request, uint64_t offset, uint64_t count)
{
  uint64_t range[2] = { offset, count };
  int r;

  do
    r = ioctl (fd, request, range);
  while (r == -1 && errno == EINTR);
  return r;
}

/* pwritev2 with RWF_DSYNC when FUA, falling back to pwrite + fdatasync
 * where the kernel or filesystem does not support the flag.  A write that
 * returns 0 has made no progress and never will: EIO. */
static int
full_pwrite (int fd, const void *buf, size_t count, uint64_t offset, bool fua)
{
  const char *p = buf;
  bool dsync = fua;

  while (count > 0)
    {
      struct iovec iov = { .iov_base = (void *) p, .iov_len = count };
      ssize_t r = pwritev2 (fd, &iov, 1, offset, dsync ? RWF_DSYNC : 0);
      if (r == -1)
        {
          if (errno == EINTR)
            continue;
          if (dsync && (errno == EOPNOTSUPP || errno == ENOSYS))
            {
              dsync = false;
              continue;
            }
          return -errno;
        }
      if (r == 0)
        return -EIO;
      p += r;
      count -= r;
      offset += r;
    }
  if (fua && !dsync)
    return sync_fd (fd);
  return 0;
}

uint64_t
store_align_down (const struct store *st, uint64_t offset)
{
  return offset - offset % st->align;
}

uint64_t
store_align_up (const struct store *st, uint64_t offset)
{
  return store_align_down (st, offset + st->align - 1);
}

void *
store_alloc_buffer (const struct store *st, size_t len)
{
  void *p;
  int r = posix_memalign (&p, st->mem_align < 4096 ? 4096 : st->mem_align,
                          len ? len : 1);
  if (r != 0)
    {
      errno = r;
      return NULL;
    }
  return p;
}

/* Drop written pages from the page cache when I/O is buffered, so the data
 * is not cached in the kernel as well as in blkcache. */
static void
drop_page_cache (struct store *st, uint64_t offset, uint64_t count)
{
  if (!st->direct)
    posix_fadvise (st->bfd, offset, count, POSIX_FADV_DONTNEED);
}

/* The buffered descriptor of one thread, and the store's list of them
 * (closed by store_close; a thread's own is closed when it exits). */
struct thread_fd
{
  int fd;
  struct store_threads *owner;
  struct thread_fd *prev, *next;
};

struct store_threads
{
  pthread_key_t key;
  pthread_mutex_t lock; /* the list */
  struct thread_fd *list;
};

static void
unlink_thread_fd (struct thread_fd *t)
{
  struct store_threads *th = t->owner;

  pthread_mutex_lock (&th->lock);
  if (t->prev)
    t->prev->next = t->next;
  else
    th->list = t->next;
  if (t->next)
    t->next->prev = t->prev;
  pthread_mutex_unlock (&th->lock);
  close (t->fd);
  free (t);
}

/* pthread key destructor: the thread exits. */
static void
thread_fd_exit (void *p)
{
  unlink_thread_fd (p);
}

/* This thread's own descriptor of the store's file, opened on first use
 * through /proc/self/fd, which reopens the very file bfd refers to (a
 * rename or unlink of the path since does not matter).  Returns it or a
 * negative errno: EMFILE, ENFILE or ENOMEM when out of descriptors or
 * memory, ENOENT without /proc (store_open checks that up front). */
static int
thread_fd (struct store *st)
{
  struct store_threads *th = st->threads;
  struct thread_fd *t;
  char path[64];
  int err;

  if (th == NULL)
    return -EROFS;
  t = pthread_getspecific (th->key);
  if (t)
    return t->fd;
  t = calloc (1, sizeof *t);
  if (t == NULL)
    return -ENOMEM;
  snprintf (path, sizeof path, "/proc/self/fd/%d", st->bfd);
  do
    t->fd = open (path, O_RDWR | O_CLOEXEC);
  while (t->fd == -1 && errno == EINTR);
  if (t->fd == -1)
    {
      err = errno;
      free (t);
      return -err;
    }
  t->owner = th;
  err = pthread_setspecific (th->key, t);
  if (err != 0)
    {
      close (t->fd);
      free (t);
      return -err;
    }
  pthread_mutex_lock (&th->lock);
  t->next = th->list;
  if (th->list)
    th->list->prev = t;
  th->list = t;
  pthread_mutex_unlock (&th->lock);
  return t->fd;
}

/* Wait until the kernel has written [OFFSET, OFFSET+COUNT) of FD's page
 * cache to the device (see the top of this file).  Returns 0 or -errno:
 * a writeback error of the file since the previous check. */
static int
settle_range (int fd, uint64_t offset, uint64_t count)
{
  while (sync_file_range (fd, offset, count,
                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                              | SYNC_FILE_RANGE_WAIT_AFTER)
         == -1)
    if (errno != EINTR)
      return -errno;
  return 0;
}

/* A buffered write, settled (unless FUA made it durable already), then
 * dropped from the page cache so the disk is not cached twice. */
static int
buffered_write (struct store *st, const void *buf, size_t count,
                uint64_t offset, bool fua)
{
  int fd = thread_fd (st);
  int r = fd < 0 ? fd : full_pwrite (fd, buf, count, offset, fua);

  if (r == 0 && !fua)
    r = settle_range (fd, offset, count);
  if (r == 0)
    drop_page_cache (st, offset, count);
  return r;
}

void
store_drop_page_cache (struct store *st, uint64_t offset, uint64_t count)
{
  posix_fadvise (st->bfd, offset, count, POSIX_FADV_DONTNEED);
}

/* Read an aligned range of the O_DIRECT body into an aligned buffer. */
static int
read_direct (struct store *st, void *buf, size_t count, uint64_t offset)
{
  return full_pread (st->fd, buf, count, offset);
}

int
store_read (struct store *st, void *buf, size_t count, uint64_t offset)
{
  char *out = buf;

  if (offset > st->size || count > st->size - offset)
    return -EINVAL;

  /* The tail, and everything when not direct, is read buffered. */
  if (!st->direct)
    return full_pread (st->bfd, buf, count, offset);
  if (offset + count > st->body)
    {
      uint64_t start = offset > st->body ? offset : st->body;
      int r = full_pread (st->bfd, out + (start - offset),
                          offset + count - start, start);
      if (r < 0)
        return r;
      count = start - offset;
    }
  if (count == 0)
    return 0;

  /* Aligned request into an aligned buffer: straight from the disk. */
  if (offset % st->align == 0 && count % st->align == 0
      && (uintptr_t) out % st->mem_align == 0)
    return read_direct (st, out, count, offset);

  /* Otherwise bounce, at most BOUNCE_MAX at a time. */
  size_t blen = BOUNCE_MAX;
  uint64_t span = store_align_up (st, offset + count)
                  - store_align_down (st, offset);
  if (span < blen)
    blen = span;
  char *bounce = store_alloc_buffer (st, blen);
  if (bounce == NULL)
    return -errno;
  int r = 0;
  while (count > 0)
    {
      uint64_t start = store_align_down (st, offset);
      size_t skip = offset - start;
      size_t n = count < blen - skip ? count : blen - skip;
      size_t len = store_align_up (st, skip + n);
      r = read_direct (st, bounce, len, start);
      if (r < 0)
        break;
      memcpy (out, bounce + skip, n);
      out += n;
      offset += n;
      count -= n;
    }
  free (bounce);
  return r;
}

/* 0 if a write of COUNT bytes at OFFSET may be done, else -EROFS or
 * -EINVAL (outside the disk). */
static int
write_allowed (const struct store *st, size_t count, uint64_t offset)
{
  if (st->readonly)
    return -EROFS;
  if (offset > st->size || count > st->size - offset)
    return -EINVAL;
  return 0;
}

int
store_write (struct store *st, const void *buf, size_t count,
             uint64_t offset, bool fua)
{
  const char *in = buf;
  int r = write_allowed (st, count, offset);

  if (r < 0)
    return r;
  if (!st->direct)
    return buffered_write (st, buf, count, offset, fua);
  if (offset % st->align != 0
      || (count % st->align != 0 && offset + count != st->size))
    return -EINVAL;

  if (offset + count > st->body)
    {
      uint64_t start = offset > st->body ? offset : st->body;
      r = buffered_write (st, in + (start - offset), offset + count - start,
                          start, fua);
      if (r < 0)
        return r;
      count = start - offset;
    }
  if (count == 0)
    return 0;

  if ((uintptr_t) in % st->mem_align == 0)
    return full_pwrite (st->fd, in, count, offset, fua);

  size_t blen = count < BOUNCE_MAX ? count : BOUNCE_MAX;
  char *bounce = store_alloc_buffer (st, blen);
  if (bounce == NULL)
    return -errno;
  r = 0;
  while (count > 0)
    {
      size_t n = count < blen ? count : blen;
      memcpy (bounce, in, n);
      r = full_pwrite (st->fd, bounce, n, offset, fua);
      if (r < 0)
        break;
      in += n;
      offset += n;
      count -= n;
    }
  free (bounce);
  return r;
}

int
store_write_unsettled (struct store *st, const void *buf, size_t count,
                       uint64_t offset)
{
  int r = write_allowed (st, count, offset);

  return r < 0 ? r : full_pwrite (st->bfd, buf, count, offset, false);
}

/* Writes in flight per AIO context. */
#define AIO_DEPTH 64
/* Writes per io_submit call.  The kernel submits a call's writes in one go
 * (about 3 us each on ext4 here), and a kernel built without preemption
 * (PREEMPT_NONE, the default of many) lets no other thread have that CPU
 * meanwhile: 40 at once held it for 190 us, long enough for the other CPU
 * to run out of requests while the client waited.  Slices of 8 hold it
 * for about 25 us, at the price of one more device notification each. */
#define AIO_SUBMIT_SLICE 8

/* An AIO context, used by one store_write_batch at a time. */
struct aio_ctx
{
  io_context_t ctx;
  struct aio_ctx *next;
};

/* The store's idle contexts, made on first need: as many as batches have
 * run at once. */
struct store_aio
{
  pthread_mutex_t lock;
  struct aio_ctx *idle;
  bool unavailable;     /* io_setup is refused here: write one by one */
};

/* An idle context, or a new one; NULL when AIO cannot be used now. */
static struct aio_ctx *
aio_get (struct store *st)
{
  struct store_aio *pool = st->aio;
  struct aio_ctx *a;
  int r;

  pthread_mutex_lock (&pool->lock);
  a = pool->unavailable ? NULL : pool->idle;
  if (a)
    pool->idle = a->next;
  pthread_mutex_unlock (&pool->lock);
  if (a || pool->unavailable)
    return a;

  a = calloc (1, sizeof *a);
  if (a == NULL)
    return NULL;
  r = io_setup (AIO_DEPTH, &a->ctx);
  if (r < 0)
    {
      free (a);
      /* EAGAIN (fs.aio-max-nr reached) may pass; the others will not. */
      if (r != -EAGAIN)
        {
          pthread_mutex_lock (&pool->lock);
          pool->unavailable = true;
          pthread_mutex_unlock (&pool->lock);
        }
      return NULL;
    }
  return a;
}

static void
aio_put (struct store *st, struct aio_ctx *a)
{
  pthread_mutex_lock (&st->aio->lock);
  a->next = st->aio->idle;
  st->aio->idle = a;
  pthread_mutex_unlock (&st->aio->lock);
}

/* Whether IO can go to the O_DIRECT descriptor as it is. */
static bool
aio_eligible (const struct store *st, const struct store_io *io)
{
  return st->direct && io->offset % st->align == 0
         && io->count % st->align == 0 && io->count <= st->body
         && io->offset <= st->body - io->count
         && (uintptr_t) io->buf % st->mem_align == 0;
}

/* Submit the N writes of CBS (all eligible) on A and wait for them all. */
static void
aio_write_chunk (struct store *st, struct aio_ctx *a, struct iocb **cbs,
                 size_t n)
{
  struct io_event events[AIO_DEPTH];
  size_t submitted = 0, done = 0;

  while (submitted < n)
    {
      size_t slice = n - submitted;
      if (slice > AIO_SUBMIT_SLICE)
        slice = AIO_SUBMIT_SLICE;
      int r = io_submit (a->ctx, slice, cbs + submitted);
      if (r == -EINTR)
        continue;
      if (r <= 0)
        break;
      submitted += r;
    }
  /* What the kernel would not take is written here and now. */
  for (size_t i = submitted; i < n; i++)
    {
      struct store_io *io = cbs[i]->data;
      io->result = store_write (st, io->buf, io->count, io->offset, false);
    }
  /* Asking for every outstanding write at once lets the kernel wake this
   * thread once, when the last completes, not once per completion. */
  while (done < submitted)
    {
      int r = io_getevents (a->ctx, submitted - done, submitted - done,
                            events, NULL);
      if (r == -EINTR)
        continue;
      if (r < 0)
        abort (); /* only a bad context or buffer: a bug here */
      for (int i = 0; i < r; i++)
        {
          struct store_io *io = events[i].data;
          long res = (long) events[i].res;
          if (res < 0)
            io->result = res;
          else if ((size_t) res < io->count)
            /* Short: the rest, or its error, the slow way. */
            io->result = full_pwrite (st->fd, (const char *) io->buf + res,
                                      io->count - res, io->offset + res,
                                      false);
          else
            io->result = 0;
        }
      done += r;
    }
}

/* A batch on a buffered store: every write, then one settle_range over
 * their span, whose error fails every write it covers. */
static int
buffered_write_batch (struct store *st, struct store_io *ios, size_t n)
{
  uint64_t from = UINT64_MAX, to = 0;
  int err = 0, r = 0, fd = thread_fd (st);

  for (size_t i = 0; i < n; i++)
    {
      struct store_io *io = &ios[i];
      io->result = write_allowed (st, io->count, io->offset);
      if (io->result == 0)
        io->result = fd < 0 ? fd
                            : full_pwrite (fd, io->buf, io->count, io->offset,
                                           false);
      if (io->result < 0)
        continue;
      if (io->offset < from)
        from = io->offset;
      if (io->offset + io->count > to)
        to = io->offset + io->count;
    }
  if (from < to)
    r = settle_range (fd, from, to - from);
  for (size_t i = 0; i < n; i++)
    {
      struct store_io *io = &ios[i];
      if (io->result == 0 && r < 0)
        io->result = r;
      else if (io->result == 0)
        drop_page_cache (st, io->offset, io->count);
      if (err == 0)
        err = io->result;
    }
  return err;
}

int
store_write_batch (struct store *st, struct store_io *ios, size_t n)
{
  struct aio_ctx *a = NULL;
  struct iocb cb[AIO_DEPTH], *cbs[AIO_DEPTH];
  size_t k = 0;
  int err = 0;

  if (!st->direct)
    return buffered_write_batch (st, ios, n);
  if (!st->readonly && n > 1)
    a = aio_get (st);
  for (size_t i = 0; i < n; i++)
    {
      struct store_io *io = &ios[i];
      if (a == NULL || !aio_eligible (st, io))
        {
          io->result = store_write (st, io->buf, io->count, io->offset,
                                    false);
          continue;
        }
      io_prep_pwrite (&cb[k], st->fd, (void *) io->buf, io->count,
                      io->offset);
      cb[k].data = io;
      cbs[k] = &cb[k];
      if (++k == AIO_DEPTH)
        {
          aio_write_chunk (st, a, cbs, k);
          k = 0;
        }
    }
  if (k > 0)
    aio_write_chunk (st, a, cbs, k);
  if (a)
    aio_put (st, a);
  for (size_t i = 0; i < n && err == 0; i++)
    err = ios[i].result;
  return err;
}

int
store_sync (struct store *st)
{
  if (st->readonly)
    return 0;
  return sync_fd (st->fd);
}

/* Write zeroes, the last resort for zeroing. */
static int
write_zeroes (struct store *st, size_t count, uint64_t offset, bool fua)
{
  size_t blen = count < BOUNCE_MAX ? count : BOUNCE_MAX;
  char *zeroes = store_alloc_buffer (st, blen);
  int r = 0;

  if (zeroes == NULL)
    return -errno;
  memset (zeroes, 0, blen);
  while (count > 0 && r == 0)
    {
      size_t n = count < blen ? count : blen;
      r = store_write (st, zeroes, n, offset, fua);
      offset += n;
      count -= n;
    }
  free (zeroes);
  return r;
}

static bool
unsupported (int err)
{
  return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL
         || err == ENOTTY;
}

bool
store_allocated (struct store *st, uint64_t offset, uint64_t count)
{
  off_t hole;

  if (st->is_block)
    return true;
  /* Any error (EINVAL: no SEEK_HOLE here; ENXIO: past the end) is "it
   * cannot say". */
  hole = lseek (st->bfd, offset, SEEK_HOLE);
  return hole != -1 && (uint64_t) hole >= offset + count;
}

/* Try the fast ways to zero; -ENOTSUP when none works here.  On a block
 * device with FAST only a punch (fallocate's PUNCH_HOLE, which the kernel
 * turns into a write-zeroes or discard command and never into written
 * zeroes) qualifies: BLKZEROOUT silently writes zeroes where the device
 * cannot, so it serves only a zero that may be slow. */
static int
zero_fast (struct store *st, size_t count, uint64_t offset, bool may_trim,
           bool fast)
{
  if (st->is_block)
    {
      if (fast)
        {
          if (may_trim
              && falloc (st->bfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                         offset, count) == 0)
            return 0;
          return !may_trim || unsupported (errno) ? -ENOTSUP : -errno;
        }
      if (ioctl_range (st->bfd, BLKZEROOUT, offset, count) == 0)
        return 0;
      return unsupported (errno) ? -ENOTSUP : -errno;
    }
  if (may_trim && st->can_punch
      && falloc (st->bfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                 count) == 0)
    return 0;
  if (falloc (st->bfd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset,
              count) == 0)
    return 0;
  if (!unsupported (errno))
    return -errno;
  /* Punch then allocate: zeroes that stay allocated. */
  if (st->can_punch
      && falloc (st->bfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                 count) == 0)
    {
      if (may_trim || falloc (st->bfd, FALLOC_FL_KEEP_SIZE, offset, count) == 0
          || unsupported (errno))
        return 0;
      return -errno;
    }
  if (!unsupported (errno))
    return -errno;
  return -ENOTSUP;
}

int
store_zero (struct store *st, size_t count, uint64_t offset, bool may_trim,
            bool fast, bool fua)
{
  int r;

  if (st->readonly)
    return -EROFS;
  if (offset > st->size || count > st->size - offset)
    return -EINVAL;
  if (count == 0)
    return 0;
  r = zero_fast (st, count, offset, may_trim, fast);
  if (r == 0)
    {
      /* fallocate and BLKZEROOUT change the disk outside the page cache's
       * view only for O_DIRECT readers; buffered readers need the drop. */
      drop_page_cache (st, offset, count);
      return fua ? sync_fd (st->bfd) : 0;
    }
  if (r != -ENOTSUP || fast)
    return r;
  return write_zeroes (st, count, offset, fua);
}

int
store_trim (struct store *st, size_t count, uint64_t offset, bool fua)
{
  int r;

  if (st->readonly)
    return -EROFS;
  if (offset > st->size || count > st->size - offset)
    return -EINVAL;
  if (count == 0)
    return 0;
  if (st->is_block)
    r = ioctl_range (st->bfd, BLKDISCARD, offset, count);
  else if (st->can_punch)
    r = falloc (st->bfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                count);
  else
    return -EOPNOTSUPP;
  if (r == -1)
    return unsupported (errno) ? -EOPNOTSUPP : -errno;
  drop_page_cache (st, offset, count);
  return fua ? sync_fd (st->bfd) : 0;
}

int
store_extents (struct store *st, uint64_t offset, uint64_t count,
               store_extent_fn add, void *opaque)
{
  uint64_t end = offset + count;

  if (offset > st->size || count > st->size - offset)
    return -EINVAL;
  if (st->is_block)
    return add (opaque, offset, count, false);

  while (offset < end)
    {
      off_t data = lseek (st->bfd, offset, SEEK_DATA);
      if (data == -1 && errno == ENXIO)
        data = end; /* hole to the end of the file */
      else if (data == -1)
        return add (opaque, offset, end - offset, false);
      if ((uint64_t) data > offset)
        {
          uint64_t n = ((uint64_t) data < end ? (uint64_t) data : end) - offset;
          int r = add (opaque, offset, n, true);
          if (r)
            return r;
          offset += n;
          continue;
        }
      off_t hole = lseek (st->bfd, offset, SEEK_HOLE);
      if (hole == -1)
        hole = end;
      uint64_t n = ((uint64_t) hole < end ? (uint64_t) hole : end) - offset;
      int r = add (opaque, offset, n, false);
      if (r)
        return r;
      offset += n;
    }
  return 0;
}

int
store_prefetch (struct store *st, uint64_t offset, uint64_t count)
{
  if (!st->direct)
    posix_fadvise (st->bfd, offset, count, POSIX_FADV_WILLNEED);
  return 0;
}

/* Size, alignment and rotation of a block device. */
static int
probe_block_device (struct store *st, int fd)
{
  int ssz = 0;

  if (ioctl (fd, BLKGETSIZE64, &st->size) == -1)
    return -errno;
  if (ioctl (fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
    st->align = st->mem_align = ssz;
#ifdef BLKROTATIONAL
  unsigned short rot = 0;
  if (ioctl (fd, BLKROTATIONAL, &rot) == 0)
    st->is_rotational = rot != 0;
#endif
  return 0;
}

/* Direct-I/O alignment of a regular file: statx STATX_DIOALIGN where the
 * kernel reports it, else the safe default. */
static void
probe_file_alignment (struct store *st, int fd)
{
#ifdef STATX_DIOALIGN
  struct statx sx;
  if (statx (fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0
      && (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align > 0)
    {
      st->align = sx.stx_dio_offset_align;
      st->mem_align = sx.stx_dio_mem_align ? sx.stx_dio_mem_align : 1;
      return;
    }
#endif
  st->align = st->mem_align = DEFAULT_ALIGN;
}

/* Open the O_DIRECT descriptor and prove it works with one aligned read;
 * some filesystems accept the flag at open and refuse the I/O. */
static int
open_direct (struct store *st, const char *path)
{
  int fd = open (path, (st->readonly ? O_RDONLY : O_RDWR) | O_DIRECT
                         | O_CLOEXEC);
  if (fd == -1)
    return -errno;
  if (st->body > 0)
    {
      void *buf = store_alloc_buffer (st, st->align);
      if (buf == NULL)
        {
          close (fd);
          return -ENOMEM;
        }
      int r = full_pread (fd, buf, st->align, 0);
      free (buf);
      if (r < 0)
        {
          close (fd);
          return r;
        }
    }
  st->fd = fd;
  st->direct = true;
  return 0;
}

/* Set up the per-thread descriptors, and open the calling thread's to
 * check that the file can be reopened.  Returns 0 or -errno. */
static int
open_threads (struct store *st)
{
  struct store_threads *th = calloc (1, sizeof *th);
  int r;

  if (th == NULL)
    return -ENOMEM;
  r = pthread_key_create (&th->key, thread_fd_exit);
  if (r != 0)
    {
      free (th);
      return -r;
    }
  pthread_mutex_init (&th->lock, NULL);
  st->threads = th;
  r = thread_fd (st);
  return r < 0 ? r : 0;
}

int
store_open (const char *path, bool readonly, enum store_direct mode,
            struct store **out, char *err, size_t errlen)
{
  struct store *st = calloc (1, sizeof *st);
  struct stat sb;
  int r;

  if (st == NULL)
    {
      snprintf (err, errlen, "out of memory");
      return -ENOMEM;
    }
  st->fd = st->bfd = -1;
  st->readonly = readonly;
  st->aio = calloc (1, sizeof *st->aio);
  if (st->aio == NULL)
    {
      free (st);
      snprintf (err, errlen, "out of memory");
      return -ENOMEM;
    }
  pthread_mutex_init (&st->aio->lock, NULL);
  if (stat (path, &sb) == -1)
    {
      r = -errno;
      snprintf (err, errlen, "%s: %s", path, strerror (errno));
      goto fail;
    }
  if (!S_ISBLK (sb.st_mode) && !S_ISREG (sb.st_mode))
    {
      r = -ENODEV;
      snprintf (err, errlen,
                "%s: not a regular file or a block device", path);
      goto fail;
    }
  st->bfd = open (path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (st->bfd == -1)
    {
      r = -errno;
      snprintf (err, errlen, "%s: cannot open%s: %s", path,
                readonly ? "" : " for writing (use -r to serve it read-only)",
                strerror (errno));
      goto fail;
    }
  if (S_ISBLK (sb.st_mode))
    {
      st->is_block = true;
      st->align = st->mem_align = 512;
      r = probe_block_device (st, st->bfd);
      if (r < 0)
        {
          snprintf (err, errlen, "%s: cannot read the device size: %s", path,
                    strerror (-r));
          goto fail;
        }
    }
  else
    {
      st->size = sb.st_size;
      st->can_punch = true;
      probe_file_alignment (st, st->bfd);
    }
  st->body = st->size - st->size % st->align;

  if (mode != STORE_DIRECT_OFF)
    {
      r = open_direct (st, path);
      if (r < 0 && mode == STORE_DIRECT_ON)
        {
          snprintf (err, errlen,
                    "%s: direct=on but O_DIRECT is refused here: %s "
                    "(use direct=auto or direct=off)", path, strerror (-r));
          goto fail;
        }
    }
  if (!st->direct)
    {
      st->fd = st->bfd;
      st->align = st->mem_align = 1;
      st->body = st->size;
    }
  if (!readonly)
    {
      r = open_threads (st);
      if (r < 0)
        {
          snprintf (err, errlen,
                    "%s: cannot reopen it through /proc/self/fd (is /proc "
                    "mounted?): %s", path, strerror (-r));
          goto fail;
        }
    }
  *out = st;
  return 0;

fail:
  store_close (st);
  return r;
}

void
store_close (struct store *st)
{
  if (st == NULL)
    return;
  if (st->threads)
    {
      pthread_key_delete (st->threads->key);
      while (st->threads->list)
        unlink_thread_fd (st->threads->list);
      pthread_mutex_destroy (&st->threads->lock);
      free (st->threads);
    }
  if (st->fd >= 0 && st->fd != st->bfd)
    close (st->fd);
  if (st->bfd >= 0)
    close (st->bfd);
  while (st->aio->idle)
    {
      struct aio_ctx *a = st->aio->idle;
      st->aio->idle = a->next;
      io_destroy (a->ctx);
      free (a);
    }
  pthread_mutex_destroy (&st->aio->lock);
  free (st->aio);
  free (st);
}
