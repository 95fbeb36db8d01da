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
 * Layout: replay.c builds the oracle; readback () reads and checks.
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
#include "replay.h"
#include "report.h"
#include "torture.h"

/* Request size of the read-back. */
#define CHUNK (256 * 1024)

/* Every event of the log is the replay's own: replay.c does it all. */
static int
replay_event (void *arg, const struct oplog_event *e)
{
  struct replay *rp = arg;

  switch (e->type)
    {
    case OPLOG_REGION:
      return replay_region (rp, e);
    case OPLOG_ISSUE:
      return replay_issue (rp, e);
    case OPLOG_REPLY:
      return replay_reply (rp, e);
    case OPLOG_DURABLE:
      return replay_durable (rp, e, NULL);
    case OPLOG_FLUSH_ISSUE:
    case OPLOG_FLUSH_REPLY:
    case OPLOG_CLOCK:
      return 0;
    }
  return -EINVAL;
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

  if (replay_file (&rp, opt->verify_log, replay_event, &rp) == 0)
    status = verify_on (&rp, opt);
  replay_free (&rp);
  return status;
}
