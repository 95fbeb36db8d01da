/* blkcache-torture: a durability log replayed into an oracle.
 *
 * The oracle is pruned every PRUNE_EVERY lines with no read in flight
 * (ORACLE_NEVER): the checks that follow all look at the end of time.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "workload.h"

/* Events between two prunes of the oracle. */
#define PRUNE_EVERY 65536

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

int
replay_region (struct replay *rp, const struct oplog_event *e)
{
  if (rp->oracle != NULL || e->length == 0)
    return -EINVAL;
  rp->size = e->length;
  rp->oracle = oracle_new (rp->size);
  return rp->oracle ? 0 : -ENOMEM;
}

int
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

struct oracle_write *
replay_lookup (const struct replay *rp, uint64_t id)
{
  return id < rp->cap ? rp->byid[id] : NULL;
}

int
replay_reply (struct replay *rp, const struct oplog_event *e)
{
  struct oracle_write *w = replay_lookup (rp, e->id);

  if (w == NULL)
    return -EINVAL;
  w->reply_time = e->time;
  return oracle_end_write (rp->oracle, w, e->stamp, false, ORACLE_NEVER);
}

/* It may now prune what it overwrote, and nothing more will be said
 * about it. */
int
replay_durable (struct replay *rp, const struct oplog_event *e,
                struct oracle_write *settled)
{
  struct oracle_write *w = replay_lookup (rp, e->id);
  int r;

  if (w == NULL || w->reply == ORACLE_NEVER)
    return -EINVAL;
  r = oracle_settle (rp->oracle, w, ORACLE_NEVER);
  if (settled != NULL)
    *settled = *w;
  oracle_put_write (w);
  rp->byid[e->id] = NULL;
  rp->durable++;
  return r;
}

int
replay_file (struct replay *rp, const char *path, replay_event_fn event,
             void *arg)
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
      r = event (arg, &e);
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

void
replay_free (struct replay *rp)
{
  for (size_t i = 0; i < rp->cap; i++)
    oracle_put_write (rp->byid[i]);
  free (rp->byid);
  oracle_free (rp->oracle);
}
