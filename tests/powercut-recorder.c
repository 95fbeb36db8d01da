/* The power-cut recorder: an LD_PRELOAD library for nbdkit alone that
 * knows, at every moment, what a power cut would leave on one disk.
 *
 * Environment:
 *   POWERCUT_TARGET=PATH     the disk (file or block device) to watch;
 *                            without it the library only passes calls on
 *   POWERCUT_LOG=PATH        the recording (below); required with TARGET
 *   POWERCUT_IMAGE=PATH      optional: keep the durable image in this file
 *                            (a copy of the disk at start), so that it can
 *                            be served and read back after the run
 *
 * The rule.  A write to the target is durable once a sync of the target
 * (fsync, fdatasync, syncfs, sync, or an AIO fsync) that started after the
 * write completed has returned successfully, or at once when it was
 * written with RWF_DSYNC / RWF_SYNC or through an O_DSYNC / O_SYNC
 * descriptor.  A sync that fails makes the writes it covered lost for
 * good: Linux reports a writeback error once and may have dropped the
 * pages, so a later successful sync proves nothing about them.
 *
 * What counts as a write: pwrite, pwritev, pwritev2 (and their 64
 * names), libaio writes (IO_CMD_PWRITE, IO_CMD_PWRITEV), which complete
 * when io_getevents reaps their event, not when the kernel finished them
 * (the caller cannot know that earlier, so neither may its syncs),
 * fallocate punch-hole and zero-range, and ioctl BLKZEROOUT, BLKDISCARD
 * and BLKSECDISCARD, all taken as writes of zeroes.  These are every way
 * server/store.c and nbdkit's file plugin change a disk.  Descriptors
 * are matched by st_dev/st_ino (st_rdev for a block device) at each call,
 * with one fstat, so no table of descriptors can go stale.
 *
 * State.  Completed writes wait in a FIFO, in completion order, with a
 * copy of their bytes (the caller may reuse its buffer at once).  A sync
 * notes the count of completions when it starts; when it returns, the
 * writes up to that count leave the FIFO and are applied to the durable
 * image in completion order.  A write that is durable at once is applied
 * at once, so it can reach the image before older writes still in the
 * FIFO; each 512-byte sector therefore remembers the completion number
 * of what it holds, and an older write skips the sectors a newer one
 * already made durable (two writes that overlap inside one sector at
 * different times are mis-ordered at worst, which only hides bytes from
 * the image: a checker sees a loss, never a false success).
 *
 * The recording.  Why a log and not only the image: a checker needs what
 * was durable at each moment a client was promised durability, not only
 * at the end.  So every change of the durable image is logged with its
 * CLOCK_MONOTONIC time (taken after the sync returned and before the
 * caller is back, so before any reply the caller sends), and what it
 * changed is described by a tag per 512-byte sector: the sector's first
 * eight bytes, read from the image after the change, as a little-endian
 * hex number.  A client that gives every sector of every write a unique
 * first word can name the write each durable sector came from.  Text,
 * one event a line:
 *
 *   powercut-recording 1
 *   target SIZE
 *   D NS OFFSET LENGTH TAG...   sectors [OFFSET, OFFSET + LENGTH) of the
 *                               durable image now hold these tags (the
 *                               first D line is the whole disk at start)
 *   S NS_START NS_END ERRNO N   a sync of the target returned; it made N
 *                               writes durable (ERRNO 0) or lost them
 *   end NS                      the process exited
 *
 * Cost: one fstat and one fcntl per write call, a copy of every byte
 * written, and the log lines; the log is buffered and written in 1 MiB
 * pieces.  One mutex guards everything; it is never held across a call
 * to the real function, only across the bookkeeping and the log.
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <libaio.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#define SECTOR 512
#define LOG_BUFFER (1024 * 1024)

/* A completed write waiting for a sync; DATA NULL: zeroes. */
struct pending
{
  uint64_t seq;
  uint64_t offset, length;
  unsigned char *data;
  struct pending *next;
};

/* A libaio request to the target between io_submit and its event. */
struct aio_req
{
  struct iocb *cb;
  bool sync;           /* IO_CMD_FSYNC / IO_CMD_FDSYNC */
  bool dsync;          /* a write that is durable once reaped */
  uint64_t sync_start; /* sync: completions when submitted, and when */
  uint64_t start_ns;
  struct aio_req *next;
};

static struct
{
  pthread_mutex_t lock;
  bool active;
  pid_t owner;
  bool is_block;
  dev_t dev, rdev;
  ino_t ino;
  uint64_t size;
  unsigned char *image;
  uint64_t *sector_seq; /* completion number each durable sector holds */
  uint64_t completed;   /* writes completed so far */
  struct pending *head, *tail;
  struct aio_req *aio;
  int log_fd;
  char *log;
  size_t log_len;
} rec = { .lock = PTHREAD_MUTEX_INITIALIZER, .log_fd = -1 };

/* The functions of the next library (libc, libaio) this one stands in
 * front of. */
static struct
{
  ssize_t (*pwrite) (int, const void *, size_t, off_t);
  ssize_t (*pwrite64) (int, const void *, size_t, off_t);
  ssize_t (*pwritev) (int, const struct iovec *, int, off_t);
  ssize_t (*pwritev64) (int, const struct iovec *, int, off_t);
  ssize_t (*pwritev2) (int, const struct iovec *, int, off_t, int);
  ssize_t (*pwritev64v2) (int, const struct iovec *, int, off_t, int);
  int (*fallocate) (int, int, off_t, off_t);
  int (*fallocate64) (int, int, off_t, off_t);
  int (*ioctl) (int, unsigned long, void *);
  int (*fsync) (int);
  int (*fdatasync) (int);
  int (*syncfs) (int);
  void (*sync) (void);
  int (*io_submit) (io_context_t, long, struct iocb **);
  int (*io_getevents) (io_context_t, long, long, struct io_event *,
                       struct timespec *);
  ssize_t (*write) (int, const void *, size_t);
} next;

static void *
next_symbol (const char *name)
{
  void *p = dlsym (RTLD_NEXT, name);

  if (p == NULL)
    {
      fprintf (stderr, "powercut-recorder: no %s after this library\n", name);
      abort ();
    }
  return p;
}

/* Resolve every function this library forwards to.  libaio versions
 * io_getevents; the current version is the one store.c links with. */
static void
resolve_next (void)
{
  next.pwrite = next_symbol ("pwrite");
  next.pwrite64 = next_symbol ("pwrite64");
  next.pwritev = next_symbol ("pwritev");
  next.pwritev64 = next_symbol ("pwritev64");
  next.pwritev2 = next_symbol ("pwritev2");
  next.pwritev64v2 = next_symbol ("pwritev64v2");
  next.fallocate = next_symbol ("fallocate");
  next.fallocate64 = next_symbol ("fallocate64");
  next.ioctl = next_symbol ("ioctl");
  next.fsync = next_symbol ("fsync");
  next.fdatasync = next_symbol ("fdatasync");
  next.syncfs = next_symbol ("syncfs");
  next.sync = next_symbol ("sync");
  next.write = next_symbol ("write");
  /* libaio is loaded only with the plugin: look it up on first use. */
}

static void
resolve_aio_once (void)
{
  next.io_getevents = dlvsym (RTLD_NEXT, "io_getevents", "LIBAIO_0.4");
  if (next.io_getevents == NULL)
    next.io_getevents = next_symbol ("io_getevents");
  next.io_submit = next_symbol ("io_submit");
}

static void
resolve_aio (void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;

  pthread_once (&once, resolve_aio_once);
}

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* The log.  Callers hold rec.lock. */

static void
log_flush (void)
{
  size_t done = 0;

  while (done < rec.log_len)
    {
      ssize_t r = next.write (rec.log_fd, rec.log + done, rec.log_len - done);

      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        {
          perror ("powercut-recorder: writing the log");
          abort ();
        }
      done += r;
    }
  rec.log_len = 0;
}

static void
log_printf (const char *fmt, ...)
{
  va_list ap;
  int n;

  if (rec.log_len > LOG_BUFFER - 256)
    log_flush ();
  va_start (ap, fmt);
  n = vsnprintf (rec.log + rec.log_len, LOG_BUFFER - rec.log_len, fmt, ap);
  va_end (ap);
  rec.log_len += n;
}

/* Log the durable tags of every sector [OFFSET, OFFSET + LENGTH) touches. */
static void
log_durable (uint64_t ns, uint64_t offset, uint64_t length)
{
  uint64_t first = offset / SECTOR * SECTOR;
  uint64_t end = (offset + length + SECTOR - 1) / SECTOR * SECTOR;

  if (end > rec.size)
    end = rec.size;
  log_printf ("D %" PRIu64 " %" PRIu64 " %" PRIu64, ns, first, end - first);
  for (uint64_t s = first; s < end; s += SECTOR)
    {
      uint64_t tag = 0;

      memcpy (&tag, rec.image + s, end - s < 8 ? end - s : 8);
      log_printf (" %016" PRIx64, le64toh (tag));
    }
  log_printf ("\n");
}

/* ------------------------------------------------------------------ */
/* The durable image.  Callers hold rec.lock. */

/* Apply write P, completed as number P->seq, to the durable image, except
 * the sectors a write completed after it already made durable. */
static void
apply (const struct pending *p, uint64_t ns)
{
  uint64_t end = p->offset + p->length;

  if (end > rec.size)
    end = rec.size;
  for (uint64_t off = p->offset; off < end;)
    {
      uint64_t sector = off / SECTOR;
      uint64_t stop = (sector + 1) * SECTOR < end ? (sector + 1) * SECTOR : end;

      if (rec.sector_seq[sector] < p->seq)
        {
          if (p->data)
            memcpy (rec.image + off, p->data + (off - p->offset), stop - off);
          else
            memset (rec.image + off, 0, stop - off);
          rec.sector_seq[sector] = p->seq;
        }
      off = stop;
    }
  if (p->offset < end)
    log_durable (ns, p->offset, end - p->offset);
}

static void
pending_free (struct pending *p)
{
  free (p->data);
  free (p);
}

/* A sync that started when rec.completed was UPTO ended: apply (ERR 0)
 * or drop the writes it covered, and log it. */
static void
sync_done (uint64_t upto, uint64_t start_ns, int err)
{
  uint64_t ns = now_ns ();
  unsigned long n = 0;

  while (rec.head != NULL && rec.head->seq <= upto)
    {
      struct pending *p = rec.head;

      rec.head = p->next;
      if (rec.head == NULL)
        rec.tail = NULL;
      if (err == 0)
        apply (p, ns);
      pending_free (p);
      n++;
    }
  log_printf ("S %" PRIu64 " %" PRIu64 " %d %lu\n", start_ns, ns, err, n);
}

/* Record a completed write of P's range (P's data already copied); it is
 * durable at once when DURABLE. */
static void
write_completed (struct pending *p, bool durable)
{
  pthread_mutex_lock (&rec.lock);
  p->seq = ++rec.completed;
  if (durable)
    {
      apply (p, now_ns ());
      pending_free (p);
    }
  else
    {
      if (rec.tail)
        rec.tail->next = p;
      else
        rec.head = p;
      rec.tail = p;
    }
  pthread_mutex_unlock (&rec.lock);
}

/* ------------------------------------------------------------------ */
/* Matching descriptors and recording calls. */

static bool
is_target (int fd)
{
  struct stat sb;

  if (!rec.active || fstat (fd, &sb) == -1)
    return false;
  if (rec.is_block)
    return S_ISBLK (sb.st_mode) && sb.st_rdev == rec.rdev;
  return sb.st_dev == rec.dev && sb.st_ino == rec.ino;
}

/* Whether every write through FD is synchronous. */
static bool
fd_dsync (int fd)
{
  int fl = fcntl (fd, F_GETFL);

  return fl != -1 && (fl & O_DSYNC);
}

static bool
flags_dsync (int rwf)
{
  return rwf & (RWF_DSYNC | RWF_SYNC);
}

/* A write of the first DONE bytes of IOV at OFFSET completed. */
static void
record_iov (int fd, const struct iovec *iov, int iovcnt, uint64_t offset,
            size_t done, bool dsync)
{
  struct pending *p = calloc (1, sizeof *p);
  size_t copied = 0;

  if (p == NULL || (p->data = malloc (done ? done : 1)) == NULL)
    abort ();
  for (int i = 0; i < iovcnt && copied < done; i++)
    {
      size_t n
          = iov[i].iov_len < done - copied ? iov[i].iov_len : done - copied;

      memcpy (p->data + copied, iov[i].iov_base, n);
      copied += n;
    }
  p->offset = offset;
  p->length = done;
  write_completed (p, dsync || fd_dsync (fd));
}

static void
record_zeroes (uint64_t offset, uint64_t length)
{
  struct pending *p = calloc (1, sizeof *p);

  if (p == NULL)
    abort ();
  p->offset = offset;
  p->length = length;
  write_completed (p, false);
}

/* Run SYNC_FN (FD) (FD -1: sync ()), recording it when it covers the
 * target. */
static int
record_sync (int (*sync_fn) (int), int fd, bool covers)
{
  uint64_t upto, start_ns;
  int r, err;

  if (!covers)
    return sync_fn (fd);
  pthread_mutex_lock (&rec.lock);
  upto = rec.completed;
  pthread_mutex_unlock (&rec.lock);
  start_ns = now_ns ();
  r = sync_fn (fd);
  err = r == 0 ? 0 : errno;
  pthread_mutex_lock (&rec.lock);
  sync_done (upto, start_ns, err);
  pthread_mutex_unlock (&rec.lock);
  errno = err;
  return r;
}

/* ------------------------------------------------------------------ */
/* The interposed functions. */

static ssize_t
do_pwritev2 (ssize_t (*fn) (int, const struct iovec *, int, off_t, int), int fd,
             const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
  ssize_t r = fn (fd, iov, iovcnt, offset, flags);

  if (r > 0 && offset >= 0 && is_target (fd))
    record_iov (fd, iov, iovcnt, offset, r, flags_dsync (flags));
  return r;
}

ssize_t
pwritev2 (int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
  return do_pwritev2 (next.pwritev2, fd, iov, iovcnt, offset, flags);
}

ssize_t
pwritev64v2 (int fd, const struct iovec *iov, int iovcnt, off_t offset,
             int flags)
{
  return do_pwritev2 (next.pwritev64v2, fd, iov, iovcnt, offset, flags);
}

/* pwritev and pwrite are pwritev2 with no flags. */
static ssize_t
do_pwritev (ssize_t (*fn) (int, const struct iovec *, int, off_t), int fd,
            const struct iovec *iov, int iovcnt, off_t offset)
{
  ssize_t r = fn (fd, iov, iovcnt, offset);

  if (r > 0 && offset >= 0 && is_target (fd))
    record_iov (fd, iov, iovcnt, offset, r, false);
  return r;
}

ssize_t
pwritev (int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
  return do_pwritev (next.pwritev, fd, iov, iovcnt, offset);
}

ssize_t
pwritev64 (int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
  return do_pwritev (next.pwritev64, fd, iov, iovcnt, offset);
}

static ssize_t
do_pwrite (ssize_t (*fn) (int, const void *, size_t, off_t), int fd,
           const void *buf, size_t count, off_t offset)
{
  ssize_t r = fn (fd, buf, count, offset);
  struct iovec iov = { .iov_base = (void *)buf, .iov_len = count };

  if (r > 0 && offset >= 0 && is_target (fd))
    record_iov (fd, &iov, 1, offset, r, false);
  return r;
}

ssize_t
pwrite (int fd, const void *buf, size_t count, off_t offset)
{
  return do_pwrite (next.pwrite, fd, buf, count, offset);
}

ssize_t
pwrite64 (int fd, const void *buf, size_t count, off_t offset)
{
  return do_pwrite (next.pwrite64, fd, buf, count, offset);
}

/* Punching a hole and zeroing a range change the bytes; plain
 * allocation does not. */
static int
do_fallocate (int (*fn) (int, int, off_t, off_t), int fd, int mode,
              off_t offset, off_t len)
{
  int r = fn (fd, mode, offset, len);

  if (r == 0 && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
      && is_target (fd))
    record_zeroes (offset, len);
  return r;
}

int
fallocate (int fd, int mode, off_t offset, off_t len)
{
  return do_fallocate (next.fallocate, fd, mode, offset, len);
}

int
fallocate64 (int fd, int mode, off_t offset, off_t len)
{
  return do_fallocate (next.fallocate64, fd, mode, offset, len);
}

int
ioctl (int fd, unsigned long request, ...)
{
  va_list ap;
  void *arg;
  int r;

  va_start (ap, request);
  arg = va_arg (ap, void *);
  va_end (ap);
  r = next.ioctl (fd, request, arg);
  if (r == 0
      && (request == BLKZEROOUT || request == BLKDISCARD
          || request == BLKSECDISCARD)
      && is_target (fd))
    {
      const uint64_t *range = arg;

      record_zeroes (range[0], range[1]);
    }
  return r;
}

int
fsync (int fd)
{
  return record_sync (next.fsync, fd, is_target (fd));
}

int
fdatasync (int fd)
{
  return record_sync (next.fdatasync, fd, is_target (fd));
}

/* syncfs of any descriptor on the target's filesystem covers it. */
int
syncfs (int fd)
{
  struct stat sb;
  bool covers = rec.active && fstat (fd, &sb) == 0
                && (rec.is_block ? false : sb.st_dev == rec.dev);

  return record_sync (next.syncfs, fd, covers || is_target (fd));
}

static int
call_sync (int fd)
{
  next.sync ();
  return 0;
}

void
sync (void)
{
  record_sync (call_sync, -1, rec.active);
}

/* Register the target's writes and syncs of CBS before they are
 * submitted: another thread may reap them before io_submit returns. */
static void
aio_register (long nr, struct iocb **cbs)
{
  for (long i = 0; i < nr; i++)
    {
      struct iocb *cb = cbs[i];
      short op = cb->aio_lio_opcode;
      struct aio_req *a;

      if ((op != IO_CMD_PWRITE && op != IO_CMD_PWRITEV && op != IO_CMD_FSYNC
           && op != IO_CMD_FDSYNC)
          || !is_target (cb->aio_fildes))
        continue;
      a = calloc (1, sizeof *a);
      if (a == NULL)
        abort ();
      a->cb = cb;
      a->sync = op == IO_CMD_FSYNC || op == IO_CMD_FDSYNC;
      a->dsync = flags_dsync (cb->aio_rw_flags) || fd_dsync (cb->aio_fildes);
      a->start_ns = now_ns ();
      pthread_mutex_lock (&rec.lock);
      a->sync_start = rec.completed;
      a->next = rec.aio;
      rec.aio = a;
      pthread_mutex_unlock (&rec.lock);
    }
}

/* Take CB's registration out of the list; NULL if it had none. */
static struct aio_req *
aio_take (struct iocb *cb)
{
  struct aio_req **pp, *a = NULL;

  pthread_mutex_lock (&rec.lock);
  for (pp = &rec.aio; *pp != NULL; pp = &(*pp)->next)
    if ((*pp)->cb == cb)
      {
        a = *pp;
        *pp = a->next;
        break;
      }
  pthread_mutex_unlock (&rec.lock);
  return a;
}

int
io_submit (io_context_t ctx, long nr, struct iocb **cbs)
{
  int r;

  resolve_aio ();
  if (rec.active)
    aio_register (nr, cbs);
  r = next.io_submit (ctx, nr, cbs);
  if (rec.active)
    for (long i = r < 0 ? 0 : r; i < nr; i++)
      free (aio_take (cbs[i]));
  return r;
}

/* The event E of a registered request A was reaped. */
static void
aio_reaped (struct aio_req *a, const struct io_event *e)
{
  struct iocb *cb = a->cb;
  long res = (long)e->res;

  if (a->sync)
    {
      pthread_mutex_lock (&rec.lock);
      sync_done (a->sync_start, a->start_ns, res < 0 ? (int)-res : 0);
      pthread_mutex_unlock (&rec.lock);
    }
  else if (res > 0 && cb->aio_lio_opcode == IO_CMD_PWRITE)
    {
      struct iovec iov = { .iov_base = cb->u.c.buf, .iov_len = res };

      record_iov (cb->aio_fildes, &iov, 1, cb->u.c.offset, res, a->dsync);
    }
  else if (res > 0)
    record_iov (cb->aio_fildes, cb->u.v.vec, cb->u.v.nr, cb->u.v.offset, res,
                a->dsync);
}

int
io_getevents (io_context_t ctx, long min_nr, long nr, struct io_event *events,
              struct timespec *timeout)
{
  int r;

  resolve_aio ();
  r = next.io_getevents (ctx, min_nr, nr, events, timeout);
  for (int i = 0; rec.active && i < r; i++)
    {
      struct aio_req *a = aio_take (events[i].obj);

      if (a != NULL)
        aio_reaped (a, &events[i]);
      free (a);
    }
  return r;
}

/* ------------------------------------------------------------------ */
/* Start and end. */

static void
fail_setup (const char *what, const char *path)
{
  fprintf (stderr, "powercut-recorder: %s %s: %s\n", what, path,
           strerror (errno));
  abort ();
}

/* Map the durable image: POWERCUT_IMAGE, or anonymous memory. */
static unsigned char *
map_image (const char *path)
{
  int fd = -1;
  void *p;

  if (path != NULL)
    {
      fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd == -1 || ftruncate (fd, rec.size) == -1)
        fail_setup ("cannot create", path);
    }
  p = mmap (NULL, rec.size ? rec.size : 1, PROT_READ | PROT_WRITE,
            fd == -1 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    fail_setup ("cannot map", path ? path : "the image");
  if (fd != -1)
    close (fd);
  return p;
}

/* Copy the target into the image: what a power cut now would leave. */
static void
read_target (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat sb;

  if (fd == -1 || fstat (fd, &sb) == -1)
    fail_setup ("cannot open", path);
  rec.is_block = S_ISBLK (sb.st_mode);
  rec.dev = sb.st_dev;
  rec.ino = sb.st_ino;
  rec.rdev = sb.st_rdev;
  rec.size = sb.st_size;
  if (rec.is_block && next.ioctl (fd, BLKGETSIZE64, &rec.size) == -1)
    fail_setup ("cannot size", path);
  rec.image = map_image (getenv ("POWERCUT_IMAGE"));
  for (uint64_t off = 0; off < rec.size;)
    {
      ssize_t r = pread (fd, rec.image + off, rec.size - off, off);

      if (r <= 0)
        fail_setup ("cannot read", path);
      off += r;
    }
  close (fd);
}

/* A child of the recorded process neither records nor writes the log. */
static void
forked_child (void)
{
  rec.active = false;
}

__attribute__ ((constructor)) static void
recorder_start (void)
{
  const char *target = getenv ("POWERCUT_TARGET");
  const char *log = getenv ("POWERCUT_LOG");

  resolve_next ();
  if (target == NULL)
    return;
  if (log == NULL)
    {
      fprintf (stderr, "powercut-recorder: POWERCUT_TARGET needs"
                       " POWERCUT_LOG\n");
      abort ();
    }
  rec.log_fd = open (log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  rec.log = malloc (LOG_BUFFER);
  if (rec.log_fd == -1 || rec.log == NULL)
    fail_setup ("cannot create", log);
  read_target (target);
  rec.sector_seq = calloc (rec.size / SECTOR + 1, sizeof *rec.sector_seq);
  if (rec.sector_seq == NULL)
    fail_setup ("cannot allocate for", target);
  log_printf ("powercut-recording 1\ntarget %" PRIu64 "\n", rec.size);
  log_durable (now_ns (), 0, rec.size);
  rec.owner = getpid ();
  pthread_atfork (NULL, NULL, forked_child);
  rec.active = true;
}

__attribute__ ((destructor)) static void
recorder_end (void)
{
  if (!rec.active || getpid () != rec.owner)
    return;
  pthread_mutex_lock (&rec.lock);
  log_printf ("end %" PRIu64 "\n", now_ns ());
  log_flush ();
  pthread_mutex_unlock (&rec.lock);
}
