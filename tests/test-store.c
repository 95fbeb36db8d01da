/* Unit tests for server/store.c on real files: the build tree's
 * filesystem (O_DIRECT) and /dev/shm (tmpfs) when it exists. */
#include <config.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

/* Create a file of SIZE bytes of a known pattern in DIR; returns its path. */
static char *
make_disk (const char *dir, uint64_t size)
{
  char *path;
  cr_assert (asprintf (&path, "%s/test-store.XXXXXX", dir) > 0);
  int fd = mkstemp (path);
  cr_assert (fd >= 0);
  for (uint64_t i = 0; i < size; i += 4096)
    {
      unsigned char buf[4096];
      size_t n = size - i < 4096 ? size - i : 4096;
      for (size_t j = 0; j < n; j++)
        buf[j] = (i + j) * 7 + 1;
      cr_assert (pwrite (fd, buf, n, i) == (ssize_t) n);
    }
  close (fd);
  return path;
}

static unsigned char
pattern (uint64_t off)
{
  return off * 7 + 1;
}

static struct store *
open_ok (const char *path, enum store_direct mode)
{
  struct store *st;
  char err[256];
  int r = store_open (path, false, mode, &st, err, sizeof err);
  cr_assert_eq (r, 0, "store_open: %s", err);
  return st;
}

static void
check_file (const char *path, uint64_t off, const void *want, size_t n)
{
  char *got = malloc (n);
  int fd = open (path, O_RDONLY);
  cr_assert (pread (fd, got, n, off) == (ssize_t) n);
  cr_assert (memcmp (got, want, n) == 0, "file differs at %lu", off);
  close (fd);
  free (got);
}

/* Unaligned reads of every shape return the file's bytes. */
static void
check_reads (struct store *st)
{
  static const uint64_t cases[][2] = {
    { 0, 4096 }, { 1, 1 }, { 511, 2 }, { 4095, 4098 }, { 100000, 70001 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      uint64_t off = cases[i][0], n = cases[i][1];
      unsigned char *buf = malloc (n + 1);
      cr_assert_eq (store_read (st, buf + 1, n, off), 0);
      for (uint64_t j = 0; j < n; j++)
        cr_assert_eq (buf[1 + j], pattern (off + j), "byte %lu", off + j);
      free (buf);
    }
}

Test (store, direct_io_on_build_tree)
{
  char *path = make_disk (".", 1000003);
  struct store *st = open_ok (path, STORE_DIRECT_ON);

  cr_assert (st->direct);
  cr_assert_eq (st->size, 1000003);
  cr_assert (st->align >= 512 && st->align <= 4096);
  cr_assert_eq (st->body % st->align, 0);
  check_reads (st);

  /* The last bytes, past the last whole sector, read and write. */
  unsigned char last[3];
  cr_assert_eq (store_read (st, last, 3, 1000000), 0);
  cr_assert_eq (last[2], pattern (1000002));
  cr_assert_eq (store_write (st, "xyz", 3, st->size - 3, false), -EINVAL,
                "an unaligned write must be refused");
  char *buf = calloc (1, 16384);
  memset (buf, 'q', 16384);
  uint64_t off = st->body - 4096;
  cr_assert_eq (store_write (st, buf + 1, st->size - off, off, true), 0);
  check_file (path, off, buf + 1, st->size - off);

  /* An aligned write from an unaligned buffer. */
  cr_assert_eq (store_write (st, buf + 1, 4096, 8192, false), 0);
  cr_assert_eq (store_sync (st), 0);
  check_file (path, 8192, buf + 1, 4096);

  /* Out of range. */
  cr_assert_eq (store_read (st, buf, 4, st->size - 3), -EINVAL);
  free (buf);
  store_close (st);
  unlink (path);
  free (path);
}

Test (store, buffered_and_tmpfs)
{
  const char *dirs[] = { ".", "/dev/shm" };
  for (size_t d = 0; d < 2; d++)
    {
      struct stat sb;
      if (stat (dirs[d], &sb) == -1 || access (dirs[d], W_OK) == -1)
        continue;
      char *path = make_disk (dirs[d], 200003);
      enum store_direct modes[] = { STORE_DIRECT_OFF, STORE_DIRECT_AUTO };
      for (size_t m = 0; m < 2; m++)
        {
          struct store *st = open_ok (path, modes[m]);
          if (modes[m] == STORE_DIRECT_OFF)
            cr_assert (!st->direct);
          if (!st->direct)
            cr_assert_eq (st->align, 1);
          check_reads (st);
          /* Buffered writes take any alignment. */
          if (!st->direct)
            {
              cr_assert_eq (store_write (st, "abc", 3, 200000, true), 0);
              check_file (path, 200000, "abc", 3);
              cr_assert_eq (store_write (st, "x", 1, 90001, false), 0);
              check_file (path, 90001, "x", 1);
            }
          store_close (st);
        }
      unlink (path);
      free (path);
    }
}

static struct
{
  uint64_t off[8], len[8];
  bool hole[8];
  int n;
} seen;

static int
add (void *opaque, uint64_t o, uint64_t l, bool h)
{
  cr_assert (seen.n < 8);
  seen.off[seen.n] = o;
  seen.len[seen.n] = l;
  seen.hole[seen.n++] = h;
  return 0;
}

Test (store, zero_trim_extents)
{
  char *path = make_disk (".", 4 << 20);
  struct store *st = open_ok (path, STORE_DIRECT_AUTO);
  char *zero = calloc (1, 1 << 20);

  cr_assert_eq (store_zero (st, 1 << 20, 1 << 20, false, false, true), 0);
  check_file (path, 1 << 20, zero, 1 << 20);
  cr_assert_eq (store_zero (st, 1 << 20, 2 << 20, true, true, false), 0);
  check_file (path, 2 << 20, zero, 1 << 20);
  cr_assert_eq (store_trim (st, 1 << 20, 3 << 20, false), 0);

  /* The trimmed and the may-trim zeroed megabytes are holes now. */
  cr_assert_eq (store_extents (st, 0, 4 << 20, add, NULL), 0);
  uint64_t pos = 0;
  bool hole_at_2m = false, hole_at_3m = false;
  for (int i = 0; i < seen.n; i++)
    {
      cr_assert_eq (seen.off[i], pos, "extents must be contiguous");
      if (seen.hole[i] && seen.off[i] <= (2 << 20)
          && seen.off[i] + seen.len[i] > (2 << 20))
        hole_at_2m = true;
      if (seen.hole[i] && seen.off[i] <= (3 << 20)
          && seen.off[i] + seen.len[i] > (3 << 20))
        hole_at_3m = true;
      cr_assert (!seen.hole[i] || seen.off[i] >= (1 << 20));
      pos += seen.len[i];
    }
  cr_assert_eq (pos, 4 << 20);
  cr_assert (hole_at_2m && hole_at_3m);
  free (zero);
  store_close (st);
  unlink (path);
  free (path);
}

/* store_allocated: written bytes are, a punched hole is not, nor a range
 * that reaches into one or past the end. */
Test (store, allocated)
{
  char *path = make_disk (".", 4 << 20);
  struct store *st = open_ok (path, STORE_DIRECT_AUTO);

  cr_assert (store_allocated (st, 0, 4 << 20));
  cr_assert_eq (store_trim (st, 1 << 20, 2 << 20, false), 0);
  cr_assert (store_allocated (st, 0, 2 << 20));
  cr_assert (!store_allocated (st, 2 << 20, 4096));
  cr_assert (!store_allocated (st, (2 << 20) - 4096, 8192));
  cr_assert (store_allocated (st, 3 << 20, 1 << 20));
  cr_assert (!store_allocated (st, 4 << 20, 4096));
  store_close (st);
  unlink (path);
  free (path);
}

Test (store, open_errors)
{
  struct store *st;
  char err[256];

  cr_assert_eq (store_open ("./no-such-disk", false, STORE_DIRECT_AUTO, &st,
                            err, sizeof err), -ENOENT);
  cr_assert (strstr (err, "no-such-disk") != NULL);
  cr_assert_eq (store_open (".", false, STORE_DIRECT_AUTO, &st, err,
                            sizeof err), -ENODEV);
  cr_assert (strstr (err, "not a regular file") != NULL);
}

Test (store, readonly_refuses_writes)
{
  char *path = make_disk (".", 8192);
  struct store *st;
  char err[256];

  cr_assert_eq (store_open (path, true, STORE_DIRECT_AUTO, &st, err,
                            sizeof err), 0);
  cr_assert_eq (store_write (st, "x", 1, 0, false), -EROFS);
  cr_assert_eq (store_zero (st, 4096, 0, false, false, false), -EROFS);
  cr_assert_eq (store_trim (st, 4096, 0, false), -EROFS);
  store_close (st);
  unlink (path);
  free (path);
}

/* A batch of writes in MODE: more than one AIO context holds (64), a few
 * from unaligned buffers, one into the tail past the last whole sector,
 * and one out of range, which alone fails. */
static void
check_batch (const char *dir, enum store_direct mode)
{
  enum { N = 150, LEN = 4096 };
  char *path = make_disk (dir, 2000003);
  struct store *st = open_ok (path, mode);
  struct store_io ios[N + 2];
  char *bufs = store_alloc_buffer (st, (N + 1) * LEN + 1);

  cr_assert_not_null (bufs);
  for (size_t i = 0; i < N; i++)
    {
      char *b = bufs + i * LEN + (i % 50 == 7); /* some unaligned */
      memset (b, 'A' + i % 26, LEN);
      /* Every other 4K, backwards: not sorted, not adjacent. */
      ios[i] = (struct store_io) { .buf = b, .count = LEN,
                                   .offset = (N - i) * 2 * LEN };
    }
  char *tail = bufs + N * LEN;
  memset (tail, 'z', st->size - st->body);
  ios[N] = (struct store_io) { .buf = tail, .count = st->size - st->body,
                               .offset = st->body };
  ios[N + 1] = (struct store_io) { .buf = bufs, .count = LEN,
                                   .offset = st->size };
  cr_assert_eq (store_write_batch (st, ios, N + 2), -EINVAL);
  for (size_t i = 0; i <= N; i++)
    {
      cr_assert_eq (ios[i].result, 0, "write %zu: %d", i, ios[i].result);
      check_file (path, ios[i].offset, ios[i].buf, ios[i].count);
    }
  cr_assert_eq (ios[N + 1].result, -EINVAL);
  /* The bytes between the writes are untouched. */
  unsigned char between;
  int fd = open (path, O_RDONLY);
  cr_assert (pread (fd, &between, 1, 3 * LEN) == 1);
  cr_assert_eq (between, pattern (3 * LEN));
  close (fd);
  free (bufs);
  store_close (st);
  unlink (path);
  free (path);
}

Test (store, write_batch)
{
  check_batch (".", STORE_DIRECT_ON);
  check_batch (".", STORE_DIRECT_OFF);
}

/* Batches from several threads at once, each on its own range: each
 * needs a context of its own, and none may reap another's writes. */
struct batch_thread
{
  struct store *st;
  unsigned id;
};

static void *
batch_thread (void *arg)
{
  struct batch_thread *t = arg;
  enum { ROUNDS = 50, N = 20, LEN = 4096 };
  char *bufs = store_alloc_buffer (t->st, N * LEN);
  struct store_io ios[N];

  for (unsigned round = 0; round < ROUNDS; round++)
    {
      for (size_t i = 0; i < N; i++)
        {
          memset (bufs + i * LEN, (int) (t->id * 64 + round), LEN);
          ios[i] = (struct store_io) {
            .buf = bufs + i * LEN, .count = LEN,
            .offset = ((uint64_t) t->id * N + i) * LEN
          };
        }
      if (store_write_batch (t->st, ios, N) != 0)
        return (void *) 1;
      for (size_t i = 0; i < N; i++)
        {
          unsigned char got[LEN];
          if (store_read (t->st, got, LEN, ios[i].offset) != 0
              || memcmp (got, bufs + i * LEN, LEN) != 0)
            return (void *) 1;
        }
    }
  free (bufs);
  return NULL;
}

Test (store, write_batch_threads)
{
  enum { T = 4 };
  char *path = make_disk (".", 1 << 20);
  struct store *st = open_ok (path, STORE_DIRECT_ON);
  pthread_t th[T];
  struct batch_thread args[T];

  for (unsigned i = 0; i < T; i++)
    {
      args[i] = (struct batch_thread) { .st = st, .id = i };
      cr_assert_eq (pthread_create (&th[i], NULL, batch_thread, &args[i]), 0);
    }
  for (unsigned i = 0; i < T; i++)
    {
      void *ret;
      pthread_join (th[i], &ret);
      cr_assert_null (ret, "thread %u saw a wrong byte", i);
    }
  store_close (st);
  unlink (path);
  free (path);
}
