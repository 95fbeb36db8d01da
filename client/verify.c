/* blkcache-torture: checking a disk against a durability log.
 *
 * After a run with --log, the server was killed and restarted on the same
 * disk.  The log is replayed into an oracle where a write is "effective"
 * only once it was made durable (a D line), and the whole region is read
 * back and checked with issue and reply stamps of ORACLE_NEVER: every
 * byte must hold the value of a write that was issued and that no durable
 * write issued after its reply overwrote.  Writes whose reply never came
 * stay candidates forever.
 *
 * Layout: replay () builds the oracle, indexing live writes by id in a
 * growable array (ids are dense, from 0); readback () reads and checks.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#include "connect.h"
#include "oplog.h"
#include "oracle.h"
#include "report.h"
#include "torture.h"
#include "workload.h"

/* Events between two prunes of the oracle during the replay. */
#define PRUNE_EVERY 65536
/* Request size of the read-back. */
#define CHUNK (256 * 1024)

struct replay
{
  struct oracle *oracle;
  uint64_t size;
  struct oracle_write **byid; /* issued writes not durable yet */
  size_t cap;
  uint64_t writes, durable;
};

static int
grow (struct replay *rp, uint64_t id)
{
  size_t cap = rp->cap ? rp->cap : 4096;
  struct oracle_write **v;

  while (cap <= id)
    cap *= 2;
  if (cap == rp->cap)
    return 0;
  v = realloc (rp->byid, cap * sizeof *v);
  if (v == NULL)
    return -ENOMEM;
  memset (v + rp->cap, 0, (cap - rp->cap) * sizeof *v);
  rp->byid = v;
  rp->cap = cap;
  return 0;
}

static int
replay_region (struct replay *rp, const struct oplog_event *e)
{
  if (rp->oracle != NULL || e->length == 0)
    return -EINVAL;
  rp->size = e->length;
  rp->oracle = oracle_new (rp->size);
  return rp->oracle ? 0 : -ENOMEM;
}

static int
replay_issue (struct replay *rp, const struct oplog_event *e)
{
  struct oracle_write *w;

  if (rp->oracle == NULL || grow (rp, e->id) < 0 || rp->byid[e->id] != NULL)
    return rp->oracle == NULL ? -EINVAL : -ENOMEM;
  w = oracle_begin_write (rp->oracle, e->id, op_oracle_kind (e->kind),
                          e->offset, e->length, e->stamp);
  if (w == NULL)
    return -errno;
  w->conn = e->conn;
  w->fua = e->kind == OP_FUA || e->kind == OP_ZERO_FUA;
  w->issue_time = e->time;
  rp->byid[e->id] = w;
  rp->writes++;
  return 0;
}

static struct oracle_write *
lookup (struct replay *rp, uint64_t id)
{
  return id < rp->cap ? rp->byid[id] : NULL;
}

static int
replay_reply (struct replay *rp, const struct oplog_event *e)
{
  struct oracle_write *w = lookup (rp, e->id);

  if (w == NULL)
    return -EINVAL;
  w->reply_time = e->time;
  return oracle_end_write (rp->oracle, w, e->stamp, false, ORACLE_NEVER);
}

/* Write ID is durable: it may now prune what it overwrote, and nothing
 * more will be said about it. */
static int
replay_durable (struct replay *rp, const struct oplog_event *e)
{
  struct oracle_write *w = lookup (rp, e->id);
  int r;

  if (w == NULL || w->reply == ORACLE_NEVER)
    return -EINVAL;
  r = oracle_settle (rp->oracle, w, ORACLE_NEVER);
  oracle_put_write (w);
  rp->byid[e->id] = NULL;
  rp->durable++;
  return r;
}

static int
replay_event (struct replay *rp, const struct oplog_event *e)
{
  switch (e->type)
    {
    case OPLOG_REGION:
      return replay_region (rp, e);
    case OPLOG_ISSUE:
      return replay_issue (rp, e);
    case OPLOG_REPLY:
      return replay_reply (rp, e);
    case OPLOG_DURABLE:
      return replay_durable (rp, e);
    case OPLOG_FLUSH_ISSUE:
    case OPLOG_FLUSH_REPLY:
    case OPLOG_CLOCK:
      return 0;
    }
  return -EINVAL;
}

static int
replay (struct replay *rp, const char *path)
{
  struct oplog_event e;
  unsigned long line = 1;
  FILE *fp = oplog_open (path);
  int r = 0, got = 0;

  if (fp == NULL)
    {
      fprintf (stderr, "blkcache-torture: %s: %s\n", path,
               errno == EINVAL ? "not a blkcache-torture log"
                               : strerror (errno));
      return -EINVAL;
    }
  while (r == 0 && (got = oplog_read (fp, &e, &line)) > 0)
    {
      r = replay_event (rp, &e);
      if (r == 0 && line % PRUNE_EVERY == 0)
        r = oracle_prune (rp->oracle, ORACLE_NEVER);
    }
  fclose (fp);
  if (r == 0 && got < 0)
    r = got;
  if (r == 0 && rp->oracle == NULL)
    r = -EINVAL;
  if (r == 0)
    r = oracle_prune (rp->oracle, ORACLE_NEVER);
  if (r < 0)
    fprintf (stderr, "blkcache-torture: %s:%lu: %s\n", path, line,
             r == -EINVAL ? "malformed log" : strerror (-r));
  return r;
}

/* Read the region back on H and check it.  Returns the number of chunks
 * with bad bytes, or -1 when a read failed. */
static int64_t
readback (struct replay *rp, struct nbd_handle *h, unsigned max_reports,
          uint64_t *bad_bytes)
{
  unsigned char *buf = malloc (CHUNK);
  int64_t failures = 0;

  if (buf == NULL)
    return -1;
  for (uint64_t off = 0; off < rp->size; off += CHUNK)
    {
      uint64_t len = rp->size - off < CHUNK ? rp->size - off : CHUNK;
      struct checked c = { .what = "verify-log read-back",
                           .conn = -1,
                           .offset = off,
                           .length = len,
                           .issue_time = -1 };
      struct oracle_failure f;
      int64_t bad;

      if (nbd_pread (h, buf, len, off, 0) == -1)
        {
          fprintf (stderr, "blkcache-torture: %s\n", nbd_get_error ());
          free (buf);
          return -1;
        }
      bad = oracle_check_read (rp->oracle, off, buf, len, ORACLE_NEVER,
                               ORACLE_NEVER, &f);
      if (bad <= 0)
        continue;
      *bad_bytes += bad;
      if (failures++ < max_reports)
        report_failure (&c, &f, NULL);
    }
  free (buf);
  return failures;
}

static void
replay_free (struct replay *rp)
{
  for (size_t i = 0; i < rp->cap; i++)
    oracle_put_write (rp->byid[i]);
  free (rp->byid);
  oracle_free (rp->oracle);
}

static int
verify_on (struct replay *rp, const struct options *opt)
{
  struct nbd_handle *h = torture_connect (opt->uri);
  struct features feat;
  uint64_t bad_bytes = 0;
  int64_t failures;

  if (h == NULL)
    return EXIT_SETUP;
  if (torture_features (h, &feat) < 0 || feat.size < rp->size)
    {
      fprintf (stderr, "blkcache-torture: the export is smaller than the"
                       " logged region\n");
      nbd_close (h);
      return EXIT_SETUP;
    }
  failures = readback (rp, h, opt->max_reports, &bad_bytes);
  nbd_close (h);
  if (failures < 0)
    return EXIT_SETUP;
  printf ("blkcache-torture: verified %" PRIu64 " bytes against %" PRIu64
          " logged writes (%" PRIu64 " made durable): %" PRIu64
          " bad bytes in %" PRId64 " chunks\n",
          rp->size, rp->writes, rp->durable, bad_bytes, failures);
  return failures > 0 ? EXIT_STALE : EXIT_OK;
}

int
torture_verify (const struct options *opt)
{
  struct replay rp = { 0 };
  int status = EXIT_SETUP;

  if (replay (&rp, opt->verify_log) == 0)
    status = verify_on (&rp, opt);
  replay_free (&rp);
  return status;
}
