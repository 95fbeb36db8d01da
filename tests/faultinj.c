/* faultinj: an LD_PRELOAD library that makes one file refuse chosen I/O,
 * so that tests can watch what the server does when its disk fails.
 *
 * It is loaded into nbdkit only (tests/functions.sh, FAULTINJ=1), after
 * the sanitizer runtime when there is one, and is configured by the
 * environment:
 *
 *   FAULTINJ_TARGET=PATH  only I/O on descriptors that refer to this file
 *       (same st_dev and st_ino; same st_rdev for a block device) is ever
 *       failed; everything else passes through untouched.  The answer is
 *       cached per descriptor and forgotten when the descriptor is closed
 *       or replaced by dup2/dup3 (close, dup2, dup3 are intercepted for
 *       that; a descriptor closed inside libc, as fclose does, keeps its
 *       answer until its number is passed to close or dup2 again).
 *
 *   FAULTINJ_RULES=PATH   the rules, re-read whenever the file's inode,
 *       size or modification time changes (checked on every intercepted
 *       call on the target, so replace it with write-to-temp + mv).  A
 *       missing file means no rules.  One rule a line, '#' starts a
 *       comment:
 *
 *         OP OFFSET LENGTH ERRNO [COUNT]
 *
 *       OP is read (pread, pread64, preadv, preadv64, preadv2, preadv64v2,
 *       Linux AIO reads), write (pwrite, pwrite64, pwritev, pwritev64,
 *       pwritev2, pwritev64v2, AIO writes), settle (sync_file_range, which
 *       waits for the kernel's writeback of a range's pages: the failure of
 *       that writeback after the write itself was taken), sync (fdatasync,
 *       fsync, AIO fsync/fdsync, and the sync inside a pwritev2 with
 *       RWF_DSYNC or RWF_SYNC, once its write rules let it pass; OFFSET
 *       and LENGTH ignored),
 *       fallocate (fallocate, fallocate64, every mode), ioctl (BLKDISCARD,
 *       BLKZEROOUT, BLKSECDISCARD), or nth: the Nth read, write, sync or
 *       fallocate of the target (N = OFFSET, from 1, LENGTH ignored),
 *       counted from when the rules were last loaded.
 *       And wberr models the kernel's writeback errors, which it reports
 *       once per open file description (errseq), not per range: a
 *       synchronous write (not AIO) is taken, returning its whole
 *       length, but its pages never reach the file (they failed in the
 *       kernel's writeback): the target's error sequence advances with
 *       ERRNO, and every target descriptor reports it once, on its next
 *       sync_file_range, fdatasync or fsync, or write with RWF_DSYNC
 *       (its own sync; such a write that wberr loses fails with it).  A
 *       descriptor first seen after an error that no descriptor has
 *       reported yet reports it too, as a file opened then would.
 *       Descriptors are told apart by number (one open file description
 *       each: dup'ed ones are not).
 *       A read, write, fallocate or ioctl rule matches a call whose byte
 *       range overlaps [OFFSET, OFFSET+LENGTH); LENGTH 0 means to the end
 *       of the file.
 *       ERRNO is EIO, ENOSPC, EINTR, EOPNOTSUPP, EINVAL, EDQUOT, SHORT0:
 *       the call returns 0 having done nothing (a write that makes no
 *       progress; a read at end of file; a sync, fallocate or ioctl that
 *       claims success without doing anything), or HOLD: the call waits
 *       (it is logged when it starts to) until the rules file changes,
 *       then the new rules decide what it does, so that a test can keep
 *       an I/O in flight for as long as it looks at the server.
 *       COUNT is how many times the rule fires before it is spent;
 *       without it the rule never is.  Counts restart when the rules are
 *       re-read.  The first matching rule that is not spent fires.
 *       A malformed line is reported on stderr and ignored.
 *
 *   FAULTINJ_LOG=PATH     optional: one line appended per injected
 *       failure, "OP OFFSET LENGTH ERRNO", where OP is the kind of the
 *       call that failed (read, write, sync, fallocate, ioctl), so that a
 *       test can show its fault really happened.
 *
 * A failed call never reaches the disk: the synchronous calls return -1
 * with errno set (or 0 for SHORT0) without calling the real function.
 * A Linux AIO iocb that a rule fails (libaio's io_submit) is not given to
 * the kernel at all; io_submit counts it as submitted and keeps its
 * completion, res = -ERRNO (0 for SHORT0), which the next io_getevents on
 * that context hands out before it asks the kernel for the rest, asking
 * for that many fewer, so a caller waiting for all its iocbs neither
 * hangs nor gets the disk changed.  Not submitting is simpler than
 * turning the iocb into a harmless read and mending it on completion, and
 * it leaves no window in which the disk could see the write.
 * (io_pgetevents does not hand out injected completions; the store does
 * not use it.)  If the kernel takes only part of an io_submit, a rule may
 * have been spent on an iocb after the part it took.
 *
 * Thread-safe: one mutex around the rules and the held AIO completions;
 * the per-descriptor cache is atomic.  The real functions are looked up
 * once: libc's with dlsym (RTLD_NEXT), so that with a sanitizer runtime
 * preloaded before this library its interceptors call these wrappers and
 * these call libc; libaio's in libaio.so.1 itself, on the first AIO call.
 *
 * Deliberately no <config.h>: a large-file or fortify setting there would
 * rename pread and open to the 64-bit or checking variants, and this file
 * must define each symbol under its own name.
 */
#define _GNU_SOURCE
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The kinds of call a rule can fail. */
enum op
{
  OP_READ,
  OP_WRITE,
  OP_SYNC,
  OP_FALLOCATE,
  OP_IOCTL,
  OP_SETTLE,
  OP_NTH,
  OP_WBERR,
};

static const char *const op_names[] = {
  "read", "write", "sync", "fallocate", "ioctl", "settle", "nth", "wberr",
};

/* A rule's error: an errno, SHORT0 (return 0, do nothing) or HOLD (wait
 * for the rules to change, then go on as they say); and what fault_in
 * returns for a write a wberr rule takes and loses. */
#define SHORT0 (-1)
#define HOLD (-2)
#define LOST (-3)
/* How often a held call looks at the rules file. */
#define HOLD_POLL_NS 10000000

static const struct
{
  const char *name;
  int err;
} err_names[] = {
  { "EIO", EIO },       { "ENOSPC", ENOSPC },         { "EINTR", EINTR },
  { "EOPNOTSUPP", EOPNOTSUPP }, { "EINVAL", EINVAL }, { "EDQUOT", EDQUOT },
  { "SHORT0", SHORT0 }, { "HOLD", HOLD },
};

struct rule
{
  enum op op;
  uint64_t offset, length; /* length 0: to the end of the file */
  int err;                 /* an errno, SHORT0 or HOLD */
  long count;              /* fires left; -1: unlimited */
};

#define MAX_RULES 64

/* The rules file as last loaded, and the state that restarts with it. */
static struct
{
  pthread_mutex_t lock;
  bool present;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtim;
  struct rule rules[MAX_RULES];
  size_t nr;
  uint64_t ios; /* reads, writes, syncs and fallocates seen (for nth) */
  uint64_t loads; /* times the rules were (re)loaded or went away */
  /* The target's writeback errors: how many, the errno of the last, and
   * the most any descriptor has reported (wberr). */
  uint64_t wb_seq, wb_seen;
  int wb_err;
} state = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Per descriptor below FD_CACHE: 0 unknown, 1 the target, 2 not. */
#define FD_CACHE 4096
enum
{
  FD_UNKNOWN,
  FD_TARGET,
  FD_OTHER
};
static unsigned char fd_cache[FD_CACHE];
/* Per target descriptor below FD_CACHE, under state.lock: whether it has
 * sampled the writeback error sequence, and up to where it has reported
 * it. */
static bool fd_wb_sampled[FD_CACHE];
static uint64_t fd_wb_sample[FD_CACHE];

static const char *target_path, *rules_path;
static int log_fd = -1;

/* The real functions, found once. */
static struct
{
  ssize_t (*pread) (int, void *, size_t, off_t);
  ssize_t (*pread64) (int, void *, size_t, off64_t);
  ssize_t (*preadv) (int, const struct iovec *, int, off_t);
  ssize_t (*preadv64) (int, const struct iovec *, int, off64_t);
  ssize_t (*preadv2) (int, const struct iovec *, int, off_t, int);
  ssize_t (*preadv64v2) (int, const struct iovec *, int, off64_t, int);
  ssize_t (*pwrite) (int, const void *, size_t, off_t);
  ssize_t (*pwrite64) (int, const void *, size_t, off64_t);
  ssize_t (*pwritev) (int, const struct iovec *, int, off_t);
  ssize_t (*pwritev64) (int, const struct iovec *, int, off64_t);
  ssize_t (*pwritev2) (int, const struct iovec *, int, off_t, int);
  ssize_t (*pwritev64v2) (int, const struct iovec *, int, off64_t, int);
  int (*fdatasync) (int);
  int (*fsync) (int);
  int (*sync_file_range) (int, off64_t, off64_t, unsigned int);
  int (*fallocate) (int, int, off_t, off_t);
  int (*fallocate64) (int, int, off64_t, off64_t);
  int (*ioctl) (int, unsigned long, ...);
  int (*close) (int);
  int (*dup2) (int, int);
  int (*dup3) (int, int, int);
  int (*io_submit) (io_context_t, long, struct iocb **);
  int (*io_getevents) (io_context_t, long, long, struct io_event *,
                       struct timespec *);
  int (*io_destroy) (io_context_t);
} real;

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static void *
next_symbol (const char *name)
{
  void *f = dlsym (RTLD_NEXT, name);
  if (f == NULL)
    {
      fprintf (stderr, "faultinj: cannot find %s: %s\n", name, dlerror ());
      abort ();
    }
  return f;
}

/* Look the real functions up and read the environment. */
static void
resolve_real (void)
{
#define FIND(f) real.f = next_symbol (#f)
  FIND (pread);
  FIND (pread64);
  FIND (preadv);
  FIND (preadv64);
  FIND (preadv2);
  FIND (preadv64v2);
  FIND (pwrite);
  FIND (pwrite64);
  FIND (pwritev);
  FIND (pwritev64);
  FIND (pwritev2);
  FIND (pwritev64v2);
  FIND (fdatasync);
  FIND (fsync);
  FIND (sync_file_range);
  FIND (fallocate);
  FIND (fallocate64);
  FIND (ioctl);
  FIND (close);
  FIND (dup2);
  FIND (dup3);
#undef FIND
  target_path = getenv ("FAULTINJ_TARGET");
  rules_path = getenv ("FAULTINJ_RULES");
  const char *log = getenv ("FAULTINJ_LOG");
  if (log && *log)
    log_fd = open (log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static void
resolve (void)
{
  pthread_once (&resolve_once, resolve_real);
}

static pthread_once_t resolve_aio_once = PTHREAD_ONCE_INIT;

/* Look libaio's functions up in libaio itself.  Not at start-up with the
 * others: nbdkit loads libaio with the plugin, after its first calls, and
 * clients that never use AIO need not have it. */
static void
resolve_aio_real (void)
{
  void *aio = dlopen ("libaio.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (aio == NULL)
    {
      fprintf (stderr, "faultinj: %s\n", dlerror ());
      abort ();
    }
  real.io_submit = dlsym (aio, "io_submit");
  real.io_getevents = dlsym (aio, "io_getevents");
  real.io_destroy = dlsym (aio, "io_destroy");
  if (!real.io_submit || !real.io_getevents || !real.io_destroy)
    {
      fprintf (stderr, "faultinj: libaio.so.1 lacks io_submit, io_getevents "
                       "or io_destroy\n");
      abort ();
    }
}

static void
resolve_aio (void)
{
  resolve ();
  pthread_once (&resolve_aio_once, resolve_aio_real);
}

/* Whether FD refers to the target file. */
static bool
is_target (int fd)
{
  struct stat fs, ts;
  bool yes;

  if (fd < 0 || target_path == NULL || *target_path == '\0')
    return false;
  if (fd < FD_CACHE)
    {
      unsigned char c = __atomic_load_n (&fd_cache[fd], __ATOMIC_ACQUIRE);
      if (c != FD_UNKNOWN)
        return c == FD_TARGET;
    }
  /* Stat the target each time: it may not have existed at the last
   * miss. */
  if (fstat (fd, &fs) == -1 || stat (target_path, &ts) == -1)
    return false;
  if (S_ISBLK (ts.st_mode))
    yes = S_ISBLK (fs.st_mode) && fs.st_rdev == ts.st_rdev;
  else
    yes = fs.st_dev == ts.st_dev && fs.st_ino == ts.st_ino;
  if (fd < FD_CACHE)
    __atomic_store_n (&fd_cache[fd], yes ? FD_TARGET : FD_OTHER,
                      __ATOMIC_RELEASE);
  return yes;
}

static void
forget_fd (int fd)
{
  if (fd >= 0 && fd < FD_CACHE)
    {
      __atomic_store_n (&fd_cache[fd], FD_UNKNOWN, __ATOMIC_RELEASE);
      pthread_mutex_lock (&state.lock);
      fd_wb_sampled[fd] = false;
      pthread_mutex_unlock (&state.lock);
    }
}

/* FD's view of the error sequence, sampled when first seen.  The caller
 * holds state.lock. */
static uint64_t *
wb_sample (int fd)
{
  if (fd < 0 || fd >= FD_CACHE)
    return NULL;
  if (!fd_wb_sampled[fd])
    {
      fd_wb_sampled[fd] = true;
      fd_wb_sample[fd] = state.wb_seen;
    }
  return &fd_wb_sample[fd];
}

/* Parse one line of the rules file into R; false if it is malformed. */
static bool
parse_rule (char *line, struct rule *r)
{
  char op[16], err[16];
  unsigned long long offset, length;
  long count = -1;
  size_t i;

  int n = sscanf (line, "%15s %llu %llu %15s %ld", op, &offset, &length,
                  err, &count);
  if (n < 4 || (n == 5 && count < 0))
    return false;
  for (i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
    if (strcmp (op, op_names[i]) == 0)
      break;
  if (i == sizeof op_names / sizeof op_names[0])
    return false;
  r->op = (enum op) i;
  for (i = 0; i < sizeof err_names / sizeof err_names[0]; i++)
    if (strcmp (err, err_names[i].name) == 0)
      break;
  if (i == sizeof err_names / sizeof err_names[0])
    return false;
  r->err = err_names[i].err;
  r->offset = offset;
  r->length = length;
  r->count = count;
  return true;
}

/* Load the rules file again if it changed since it was last loaded.  The
 * caller holds state.lock. */
static void
reload_rules (void)
{
  struct stat sb;
  char line[256];
  int lineno = 0;

  if (rules_path == NULL || stat (rules_path, &sb) == -1)
    {
      if (state.present)
        {
          state.present = false;
          state.nr = 0;
          state.ios = 0;
          state.loads++;
        }
      return;
    }
  if (state.present && sb.st_dev == state.dev && sb.st_ino == state.ino
      && sb.st_size == state.size && sb.st_mtim.tv_sec == state.mtim.tv_sec
      && sb.st_mtim.tv_nsec == state.mtim.tv_nsec)
    return;
  state.present = true;
  state.dev = sb.st_dev;
  state.ino = sb.st_ino;
  state.size = sb.st_size;
  state.mtim = sb.st_mtim;
  state.nr = 0;
  state.ios = 0;
  state.loads++;
  FILE *f = fopen (rules_path, "re");
  if (f == NULL)
    return;
  while (fgets (line, sizeof line, f))
    {
      char *hash = strchr (line, '#');
      struct rule r;

      lineno++;
      if (hash)
        *hash = '\0';
      if (strspn (line, " \t\r\n") == strlen (line))
        continue;
      if (!parse_rule (line, &r))
        fprintf (stderr, "faultinj: %s:%d: not a rule, ignored\n",
                 rules_path, lineno);
      else if (state.nr == MAX_RULES)
        fprintf (stderr, "faultinj: %s:%d: more than %d rules, ignored\n",
                 rules_path, lineno, MAX_RULES);
      else
        state.rules[state.nr++] = r;
    }
  fclose (f);
}

/* Whether rule R matches a call of kind OP on [OFFSET, OFFSET+LENGTH),
 * the SEQ'th counted I/O, through the page cache if CACHED.  The caller
 * holds state.lock. */
static bool
rule_matches (const struct rule *r, enum op op, uint64_t offset,
              uint64_t length, uint64_t seq, bool cached)
{
  if (r->count == 0)
    return false;
  if (r->op == OP_NTH)
    return op != OP_IOCTL && op != OP_SETTLE && seq == r->offset;
  if (r->op == OP_WBERR && op == OP_WRITE && cached)
    op = OP_WBERR;
  if (r->op != op)
    return false;
  if (op == OP_SYNC)
    return true;
  return length > 0 && (r->length == 0 || offset < r->offset + r->length)
         && r->offset < offset + length;
}

static const char *
err_name (int err)
{
  for (size_t i = 0; i < sizeof err_names / sizeof err_names[0]; i++)
    if (err_names[i].err == err)
      return err_names[i].name;
  return "?";
}

/* Log a fired rule: "OP OFFSET LENGTH ERRNO". */
static void
log_fired (enum op op, uint64_t offset, uint64_t length, int err)
{
  char line[128];
  int n;

  if (log_fd < 0)
    return;
  n = snprintf (line, sizeof line, "%s %llu %llu %s\n", op_names[op],
                (unsigned long long) offset, (unsigned long long) length,
                err_name (err));
  /* One write with O_APPEND: lines from threads never interleave. */
  if (write (log_fd, line, n) != n)
    fprintf (stderr, "faultinj: cannot write the log\n");
}

/* Sleep, holding no lock, until the rules file changes.  The caller holds
 * state.lock, and holds it again on return, with the new rules loaded. */
static void
hold_until_reload (void)
{
  uint64_t loads = state.loads;
  struct timespec poll = { .tv_nsec = HOLD_POLL_NS };

  while (state.loads == loads)
    {
      pthread_mutex_unlock (&state.lock);
      nanosleep (&poll, NULL);
      pthread_mutex_lock (&state.lock);
      reload_rules ();
    }
}

/* Whether a call of kind OP on FD over [OFFSET, OFFSET+LENGTH), through
 * the page cache if CACHED, must fail: 0 if not, else the errno or SHORT0
 * to fail it with, or LOST for a write to take and lose (wberr).  A call
 * a HOLD rule matches waits here until the rules change, then is judged
 * by the new ones (as the same SEQ'th call).  A sync, and a DSYNC write
 * (RWF_DSYNC, a sync of its own), that no rule fails reports the
 * writeback error FD has not reported yet.  errno is kept. */
static int
fault_in (int fd, enum op op, uint64_t offset, uint64_t length, bool cached,
          bool dsync)
{
  int saved = errno, err;

  resolve ();
  if (!is_target (fd))
    {
      errno = saved;
      return 0;
    }
  pthread_mutex_lock (&state.lock);
  reload_rules ();
  uint64_t *sample = wb_sample (fd);
  uint64_t seq = op == OP_IOCTL || op == OP_SETTLE ? 0 : ++state.ios;
  do
    {
      err = 0;
      for (size_t i = 0; i < state.nr; i++)
        {
          struct rule *r = &state.rules[i];
          if (rule_matches (r, op, offset, length, seq, cached))
            {
              if (r->count > 0)
                r->count--;
              err = r->err;
              if (r->op == OP_WBERR)
                {
                  state.wb_seq++;
                  state.wb_err = err;
                  log_fired (OP_WBERR, offset, length, err);
                  err = LOST;
                }
              break;
            }
        }
      if (err != 0 && err != LOST)
        log_fired (op, offset, length, err);
      if (err == HOLD)
        hold_until_reload ();
    }
  while (err == HOLD);
  if ((err == 0 || err == LOST)
      && (op == OP_SYNC || op == OP_SETTLE || dsync) && sample
      && *sample < state.wb_seq)
    {
      err = state.wb_err;
      *sample = state.wb_seen = state.wb_seq;
      log_fired (op, offset, length, err);
    }
  pthread_mutex_unlock (&state.lock);
  errno = saved;
  return err;
}

static int
fault_for (int fd, enum op op, uint64_t offset, uint64_t length)
{
  return fault_in (fd, op, offset, length, false, false);
}

/* What an intercepted call of COUNT bytes returns when it fails with
 * ERR. */
static ssize_t
fail_rw (int err, size_t count)
{
  if (err == LOST)
    return count;
  if (err == SHORT0)
    return 0;
  errno = err;
  return -1;
}

/* What an intercepted call returns when it fails with ERR. */
static int
fail_with (int err)
{
  if (err == SHORT0)
    return 0;
  errno = err;
  return -1;
}

static uint64_t
iov_length (const struct iovec *iov, int n)
{
  uint64_t len = 0;
  for (int i = 0; i < n; i++)
    len += iov[i].iov_len;
  return len;
}

/* The reads and writes.  One wrapper a symbol, all alike: fail the call
 * if a rule says so, else pass it on. */

#define INTERCEPT_RW(fn, op, buf_t, off_t_)                                  \
  ssize_t fn (int fd, buf_t buf, size_t n, off_t_ offset)                    \
  {                                                                          \
    int err = fault_in (fd, op, offset, n, true, false);                     \
    return err ? fail_rw (err, n) : real.fn (fd, buf, n, offset);            \
  }

#define INTERCEPT_RWV(fn, op, off_t_)                                        \
  ssize_t fn (int fd, const struct iovec *iov, int cnt, off_t_ offset)       \
  {                                                                          \
    uint64_t n = iov_length (iov, cnt);                                      \
    int err = fault_in (fd, op, offset, n, true, false);                     \
    return err ? fail_rw (err, n) : real.fn (fd, iov, cnt, offset);          \
  }

/* A write with RWF_DSYNC or RWF_SYNC is a write and a sync of the file in
 * one call: a sync rule fails it too (the sync's error, with the write's
 * bytes not written), and a sync rule's SHORT0 makes it a plain write, a
 * sync that claims success having done nothing. */
static int
sync_flag_fault (int fd, int *flags)
{
  int err;

  if (!(*flags & (RWF_DSYNC | RWF_SYNC)))
    return 0;
  err = fault_for (fd, OP_SYNC, 0, 0);
  if (err == SHORT0)
    {
      *flags &= ~(RWF_DSYNC | RWF_SYNC);
      return 0;
    }
  return err;
}

#define INTERCEPT_RWV2(fn, op, off_t_)                                       \
  ssize_t fn (int fd, const struct iovec *iov, int cnt, off_t_ offset,       \
              int flags)                                                     \
  {                                                                          \
    uint64_t n = iov_length (iov, cnt);                                      \
    int err = fault_in (fd, op, offset, n, true,                             \
                        (flags & (RWF_DSYNC | RWF_SYNC)) != 0);              \
    if (err == 0 && op == OP_WRITE)                                          \
      err = sync_flag_fault (fd, &flags);                                    \
    return err ? fail_rw (err, n) : real.fn (fd, iov, cnt, offset, flags);   \
  }

INTERCEPT_RW (pread, OP_READ, void *, off_t)
INTERCEPT_RW (pread64, OP_READ, void *, off64_t)
INTERCEPT_RWV (preadv, OP_READ, off_t)
INTERCEPT_RWV (preadv64, OP_READ, off64_t)
INTERCEPT_RWV2 (preadv2, OP_READ, off_t)
INTERCEPT_RWV2 (preadv64v2, OP_READ, off64_t)
INTERCEPT_RW (pwrite, OP_WRITE, const void *, off_t)
INTERCEPT_RW (pwrite64, OP_WRITE, const void *, off64_t)
INTERCEPT_RWV (pwritev, OP_WRITE, off_t)
INTERCEPT_RWV (pwritev64, OP_WRITE, off64_t)
INTERCEPT_RWV2 (pwritev2, OP_WRITE, off_t)
INTERCEPT_RWV2 (pwritev64v2, OP_WRITE, off64_t)

/* The syncs. */

int
fdatasync (int fd)
{
  int err = fault_for (fd, OP_SYNC, 0, 0);
  return err ? fail_with (err) : real.fdatasync (fd);
}

int
fsync (int fd)
{
  int err = fault_for (fd, OP_SYNC, 0, 0);
  return err ? fail_with (err) : real.fsync (fd);
}

int
sync_file_range (int fd, off64_t offset, off64_t n, unsigned int flags)
{
  int err = fault_for (fd, OP_SETTLE, offset, n);
  return err ? fail_with (err) : real.sync_file_range (fd, offset, n, flags);
}

/* Allocation, zeroing and trim. */

int
fallocate (int fd, int mode, off_t offset, off_t n)
{
  int err = fault_for (fd, OP_FALLOCATE, offset, n);
  return err ? fail_with (err) : real.fallocate (fd, mode, offset, n);
}

int
fallocate64 (int fd, int mode, off64_t offset, off64_t n)
{
  int err = fault_for (fd, OP_FALLOCATE, offset, n);
  return err ? fail_with (err) : real.fallocate64 (fd, mode, offset, n);
}

int
ioctl (int fd, unsigned long request, ...)
{
  va_list ap;
  va_start (ap, request);
  void *arg = va_arg (ap, void *);
  va_end (ap);

  resolve ();
  if (request == BLKDISCARD || request == BLKZEROOUT
      || request == BLKSECDISCARD)
    {
      const uint64_t *range = arg;
      int err = fault_for (fd, OP_IOCTL, range[0], range[1]);
      if (err)
        return fail_with (err);
    }
  return real.ioctl (fd, request, arg);
}

/* The calls that change what a descriptor number refers to. */

int
close (int fd)
{
  resolve ();
  forget_fd (fd);
  return real.close (fd);
}

int
dup2 (int oldfd, int newfd)
{
  resolve ();
  int r = real.dup2 (oldfd, newfd);
  if (r >= 0)
    forget_fd (r);
  return r;
}

int
dup3 (int oldfd, int newfd, int flags)
{
  resolve ();
  int r = real.dup3 (oldfd, newfd, flags);
  if (r >= 0)
    forget_fd (r);
  return r;
}

/* Linux AIO: completions of iocbs that were failed instead of submitted,
 * waiting for io_getevents on their context.  Under state.lock. */
struct held_event
{
  io_context_t ctx;
  struct io_event ev;
  struct held_event *next;
};
static struct held_event *held_head, **held_tail = &held_head;

/* Whether the iocb CB must fail: 0 or the errno / SHORT0. */
static int
iocb_fault (struct iocb *cb)
{
  switch (cb->aio_lio_opcode)
    {
    case IO_CMD_PREAD:
      return fault_for (cb->aio_fildes, OP_READ, cb->u.c.offset,
                        cb->u.c.nbytes);
    case IO_CMD_PWRITE:
      return fault_for (cb->aio_fildes, OP_WRITE, cb->u.c.offset,
                        cb->u.c.nbytes);
    case IO_CMD_PREADV:
      return fault_for (cb->aio_fildes, OP_READ, cb->u.v.offset,
                        iov_length (cb->u.v.vec, cb->u.v.nr));
    case IO_CMD_PWRITEV:
      return fault_for (cb->aio_fildes, OP_WRITE, cb->u.v.offset,
                        iov_length (cb->u.v.vec, cb->u.v.nr));
    case IO_CMD_FSYNC:
    case IO_CMD_FDSYNC:
      return fault_for (cb->aio_fildes, OP_SYNC, 0, 0);
    default:
      return 0;
    }
}

/* Keep the completion of CB, failed with ERR, for io_getevents on CTX. */
static int
hold_completion (io_context_t ctx, struct iocb *cb, int err)
{
  struct held_event *h = calloc (1, sizeof *h);
  if (h == NULL)
    return -ENOMEM;
  h->ctx = ctx;
  h->ev.data = cb->data;
  h->ev.obj = cb;
  h->ev.res = err == SHORT0 ? 0 : (unsigned long) -(long) err;
  pthread_mutex_lock (&state.lock);
  *held_tail = h;
  held_tail = &h->next;
  pthread_mutex_unlock (&state.lock);
  return 0;
}

/* Move up to MAX held completions of CTX to EVENTS; returns how many. */
static long
take_held (io_context_t ctx, struct io_event *events, long max)
{
  long n = 0;

  pthread_mutex_lock (&state.lock);
  for (struct held_event **p = &held_head; *p && n < max;)
    {
      struct held_event *h = *p;
      if (h->ctx != ctx)
        {
          p = &h->next;
          continue;
        }
      events[n++] = h->ev;
      *p = h->next;
      if (held_tail == &h->next)
        held_tail = p;
      free (h);
    }
  pthread_mutex_unlock (&state.lock);
  return n;
}

/* Submit the NR iocbs of IOS in order, each run of good ones in one real
 * io_submit.  Returns how many were taken (held ones included), or the
 * kernel's error if none was. */
int
io_submit (io_context_t ctx, long nr, struct iocb **ios)
{
  long taken = 0, run = 0;

  resolve_aio ();
  while (taken + run < nr)
    {
      int err = iocb_fault (ios[taken + run]);
      if (err == 0)
        {
          run++;
          continue;
        }
      if (run > 0)
        {
          int r = real.io_submit (ctx, run, ios + taken);
          if (r < 0)
            return taken > 0 ? taken : r;
          taken += r;
          if (r < run)
            return taken;
          run = 0;
        }
      int r = hold_completion (ctx, ios[taken], err);
      if (r < 0)
        return taken > 0 ? taken : r;
      taken++;
    }
  if (run > 0)
    {
      int r = real.io_submit (ctx, run, ios + taken);
      if (r < 0)
        return taken > 0 ? taken : r;
      taken += r;
    }
  return taken;
}

/* Held completions first, then the kernel's, asking it for as many fewer
 * as were held, so that MIN_NR counts both and nobody waits for an iocb
 * the kernel never saw. */
int
io_getevents (io_context_t ctx, long min_nr, long nr, struct io_event *events,
              struct timespec *timeout)
{
  resolve_aio ();
  long held = take_held (ctx, events, nr);
  if (held == 0)
    return real.io_getevents (ctx, min_nr, nr, events, timeout);
  if (held >= nr)
    return held;
  if (held >= min_nr)
    {
      struct timespec now = { 0, 0 };
      int r = real.io_getevents (ctx, 0, nr - held, events + held, &now);
      return held + (r > 0 ? r : 0);
    }
  int r = real.io_getevents (ctx, min_nr - held, nr - held, events + held,
                             timeout);
  return held + (r > 0 ? r : 0);
}

int
io_destroy (io_context_t ctx)
{
  struct io_event ev[16];

  resolve_aio ();
  while (take_held (ctx, ev, 16) > 0)
    ;
  return real.io_destroy (ctx);
}
