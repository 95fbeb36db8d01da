/* blkcache-torture: the run, N connections on one libev loop.
 *
 * Layout.  nbdloop.c drives the connections; before every poll it calls
 * refill, which tops each connection's queue of Q request slots up with
 * the next operations of the workload.  libnbd calls request_done (and
 * status_extents for block status) as replies arrive; they stamp the
 * reply, check the data, record it and free the slot.
 *
 * Time.  Every issue and every reply takes the next value of a logical
 * clock (a "stamp").  A request's issue stamp is taken just before the
 * libnbd call that queues it, and its reply stamp when libnbd hands the
 * reply over, so the issue stamp is never later and the reply stamp never
 * earlier than the server's view: the oracle's rule only gets more
 * permissive, never raises a false alarm.
 *
 * Checks.  Every successful read is checked by the oracle as its reply
 * arrives; block-status replies are checked for zero claims; writes,
 * zeroes and trims enter the oracle when issued and record their reply.
 * After the run the whole region is read back and checked once more.
 *
 * Durability.  With --log, writes are logged as they are issued and
 * replied to; a FUA reply makes a write durable at once, and a flush's
 * successful reply makes durable every write that replied before the flush
 * was issued (on any connection when the server advertises multi-conn, on
 * the flush's own connection otherwise).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <libnbd.h>

#include "connect.h"
#include "latency.h"
#include "nbdloop.h"
#include "oplog.h"
#include "oracle.h"
#include "pattern.h"
#include "report.h"
#include "torture.h"
#include "workload.h"

/* Replied writes remembered to name the source of a stale value. */
#define HISTORY 16384
/* Completions between two full prunes of the oracle. */
#define SWEEP_EVERY 4096
/* Request size of the initial fill. */
#define CHUNK (1024 * 1024)
/* Server errors printed in full. */
#define ERRORS_SHOWN 5

struct run;
struct conn;

struct request
{
  struct conn *conn;
  bool busy;
  struct op op;
  uint64_t id;            /* write id, for write kinds */
  uint64_t issue;         /* stamp */
  uint64_t issue_ns;      /* monotonic clock */
  struct oracle_write *w; /* write kinds, until replied */
  unsigned char *buf;     /* max_length bytes */
};

struct conn
{
  struct run *run;
  struct nbd_handle *nbd;
  unsigned index;
  struct request *req; /* queue_depth slots */
  unsigned in_flight;
  bool dead;
};

struct kind_stats
{
  uint64_t errors;
  struct latency lat;
};

/* A write that replied but is not durable yet (--log only). */
struct undurable
{
  uint64_t id, reply;
  unsigned conn;
};

struct run
{
  const struct options *opt;
  struct ev_loop *loop;
  struct nbdloop nl;
  ev_timer deadline, progress;
  ev_signal sigint;
  struct conn *conns;
  struct features feat;
  struct oracle *oracle;
  struct workload wl;
  struct oplog *log;
  uint64_t clock, next_id;
  uint64_t issued, completed;
  uint64_t start_ns, end_ns;
  bool stopping, lost, interrupted, fatal;
  struct kind_stats stats[OP_NR];
  uint64_t errors, failures, bad_bytes, failed_final, bad_status;
  struct undurable *undurable;
  size_t nundurable, undurable_cap;
  struct oracle_write history[HISTORY];
  uint64_t nhistory;
  struct oracle_write fill;
};

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
run_time (const struct run *r, uint64_t ns)
{
  return (double)(ns - r->start_ns) / 1e9;
}

static void
die_internal (struct run *r, const char *what, int err)
{
  fprintf (stderr, "blkcache-torture: %s: %s\n", what, strerror (err));
  r->fatal = true;
  r->stopping = true;
}

/* The issue stamp of the oldest read or block status in flight, which
 * bounds what the oracle may prune. */
static uint64_t
low_watermark (const struct run *r)
{
  uint64_t low = ORACLE_NEVER;

  for (unsigned i = 0; i < r->opt->connections; i++)
    for (unsigned j = 0; j < r->opt->queue_depth; j++)
      {
        const struct request *q = &r->conns[i].req[j];

        if (q->busy && (q->op.kind == OP_READ || q->op.kind == OP_STATUS)
            && q->issue < low)
          low = q->issue;
      }
  return low;
}

/* ------------------------------------------------------------------ */
/* Failure reports. */

static void
history_add (struct run *r, const struct oracle_write *w)
{
  r->history[r->nhistory++ % HISTORY] = *w;
}

/* The most recent remembered write that gives VALUE at OFFSET. */
static const struct oracle_write *
history_match (const struct run *r, uint64_t offset, uint8_t value)
{
  uint64_t n = r->nhistory < HISTORY ? r->nhistory : HISTORY;

  for (uint64_t i = 1; i <= n; i++)
    {
      const struct oracle_write *w = &r->history[(r->nhistory - i) % HISTORY];

      if (offset < w->offset || offset >= w->offset + w->length)
        continue;
      if (w->kind == ORACLE_DATA && pattern_byte (w->id, offset) == value)
        return w;
      if (w->kind == ORACLE_ZERO && value == 0)
        return w;
    }
  if (pattern_byte (0, offset) == value)
    return &r->fill;
  return NULL;
}

/* Count the outcome BAD (from an oracle check) of C and report it. */
static void
note_check (struct run *r, const struct checked *c, int64_t bad,
            const struct oracle_failure *f)
{
  const struct oracle_write *match = NULL;

  if (bad < 0)
    {
      die_internal (r, "oracle", (int)-bad);
      return;
    }
  if (bad == 0)
    return;
  r->failures++;
  if (c->zero_claim)
    r->bad_status++;
  else
    r->bad_bytes += bad;
  if (r->failures > r->opt->max_reports)
    return;
  if (!c->zero_claim)
    match = history_match (r, f->first_bad, f->value);
  if (r->opt->progress)
    fprintf (stderr, "\n");
  report_failure (c, f, match);
  if (r->failures == r->opt->max_reports)
    fprintf (stderr, "blkcache-torture: further failures are counted, not"
                     " described\n");
}

static void
checked_of (const struct run *r, const struct request *q, uint64_t reply_ns,
            struct checked *c)
{
  *c = (struct checked){ .what = "read",
                         .conn = q->conn->index,
                         .offset = q->op.offset,
                         .length = q->op.length,
                         .issue_time = run_time (r, q->issue_ns),
                         .reply_time = run_time (r, reply_ns) };
}

/* ------------------------------------------------------------------ */
/* The durability log. */

static void
log_event (struct run *r, const struct oplog_event *e)
{
  if (r->log != NULL)
    oplog_write (r->log, e);
}

static void
log_durable (struct run *r, uint64_t id)
{
  log_event (r, &(struct oplog_event){ .type = OPLOG_DURABLE, .id = id });
}

static void
undurable_add (struct run *r, uint64_t id, uint64_t reply, unsigned conn)
{
  if (r->nundurable == r->undurable_cap)
    {
      size_t cap = r->undurable_cap ? 2 * r->undurable_cap : 1024;
      struct undurable *v = realloc (r->undurable, cap * sizeof *v);

      if (v == NULL)
        {
          die_internal (r, "log", ENOMEM);
          return;
        }
      r->undurable = v;
      r->undurable_cap = cap;
    }
  r->undurable[r->nundurable++] = (struct undurable){ id, reply, conn };
}

/* A flush issued at stamp ISSUE on connection CONN succeeded. */
static void
flush_made_durable (struct run *r, uint64_t issue, unsigned conn)
{
  size_t k = 0;

  for (size_t i = 0; i < r->nundurable; i++)
    {
      struct undurable *u = &r->undurable[i];

      if (u->reply < issue && (r->feat.multi_conn || u->conn == conn))
        log_durable (r, u->id);
      else
        r->undurable[k++] = *u;
    }
  r->nundurable = k;
}

/* ------------------------------------------------------------------ */
/* Completions. */

static void
note_error (struct run *r, const struct request *q, int err)
{
  r->stats[q->op.kind].errors++;
  if (r->errors++ < ERRORS_SHOWN)
    fprintf (stderr,
             "blkcache-torture: %s of [%" PRIu64 ", +%" PRIu32
             ") on connection %u: %s\n",
             op_name (q->op.kind), q->op.offset, q->op.length, q->conn->index,
             strerror (err));
  if (r->opt->fail_on_error)
    r->stopping = true;
}

static void
check_read (struct run *r, struct request *q, uint64_t stamp, uint64_t ns)
{
  struct oracle_failure f;
  struct checked c;
  int64_t bad = oracle_check_read (r->oracle, q->op.offset, q->buf,
                                   q->op.length, q->issue, stamp, &f);

  checked_of (r, q, ns, &c);
  note_check (r, &c, bad, &f);
}

static void
finish_write (struct run *r, struct request *q, uint64_t stamp, uint64_t ns,
              int err)
{
  struct oracle_write *w = q->w;
  bool fua = q->op.kind == OP_FUA || q->op.kind == OP_ZERO_FUA;
  int e;

  w->reply_time = run_time (r, ns);
  e = oracle_end_write (r->oracle, w, stamp, err == 0, low_watermark (r));
  if (e < 0)
    die_internal (r, "oracle", -e);
  history_add (r, w);
  oracle_put_write (w);
  q->w = NULL;
  log_event (r, &(struct oplog_event){ .type = OPLOG_REPLY,
                                       .id = q->id,
                                       .stamp = stamp,
                                       .err = err,
                                       .time = w->reply_time });
  if (r->log == NULL || err != 0)
    return;
  if (fua)
    log_durable (r, q->id);
  else
    undurable_add (r, q->id, stamp, q->conn->index);
}

static void
finish_flush (struct run *r, struct request *q, uint64_t stamp, uint64_t ns,
              int err)
{
  log_event (r, &(struct oplog_event){ .type = OPLOG_FLUSH_REPLY,
                                       .conn = q->conn->index,
                                       .stamp = stamp,
                                       .err = err,
                                       .time = run_time (r, ns) });
  if (r->log != NULL && err == 0)
    flush_made_durable (r, q->issue, q->conn->index);
}

static void
release (struct run *r, struct request *q)
{
  q->busy = false;
  q->conn->in_flight--;
  if (++r->completed % SWEEP_EVERY == 0)
    {
      int e = oracle_prune (r->oracle, low_watermark (r));

      if (e < 0)
        die_internal (r, "oracle", -e);
    }
}

static int
request_done (void *opaque, int *error)
{
  struct request *q = opaque;
  struct run *r = q->conn->run;
  uint64_t stamp = ++r->clock, ns = now_ns ();
  int err = *error;

  latency_add (&r->stats[q->op.kind].lat, ns - q->issue_ns);
  if (err != 0)
    note_error (r, q, err);
  if (op_is_write (q->op.kind))
    finish_write (r, q, stamp, ns, err);
  else if (q->op.kind == OP_READ && err == 0)
    check_read (r, q, stamp, ns);
  else if (q->op.kind == OP_FLUSH)
    finish_flush (r, q, stamp, ns, err);
  release (r, q);
  return 1;
}

/* Check the zero claims of one block-status reply. */
static int
status_extents (void *opaque, const char *context, uint64_t offset,
                uint32_t *entries, size_t n, int *error)
{
  struct request *q = opaque;
  struct run *r = q->conn->run;
  uint64_t stamp = ++r->clock, ns = now_ns ();
  uint64_t end = q->op.offset + q->op.length;

  if (*error != 0 || strcmp (context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (size_t i = 0; i + 1 < n && offset < end; i += 2)
    {
      uint64_t len = entries[i];
      uint64_t stop = offset + len < end ? offset + len : end;

      if ((entries[i + 1] & LIBNBD_STATE_ZERO) && offset < stop)
        {
          struct oracle_failure f;
          struct checked c;
          int64_t bad = oracle_check_zero (r->oracle, offset, stop - offset,
                                           q->issue, stamp, &f);

          checked_of (r, q, ns, &c);
          c.what = "block status";
          c.zero_claim = true;
          note_check (r, &c, bad, &f);
        }
      offset += len;
    }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Issuing requests. */

/* Record a write kind in the oracle and the log before it is sent. */
static int
begin_write (struct run *r, struct request *q)
{
  struct oracle_write *w;

  q->id = r->next_id++;
  w = oracle_begin_write (r->oracle, q->id, op_oracle_kind (q->op.kind),
                          q->op.offset, q->op.length, q->issue);
  if (w == NULL)
    return -errno;
  w->conn = q->conn->index;
  w->fua = q->op.kind == OP_FUA || q->op.kind == OP_ZERO_FUA;
  w->issue_time = run_time (r, q->issue_ns);
  q->w = w;
  if (q->op.kind == OP_WRITE || q->op.kind == OP_FUA)
    pattern_fill (q->id, q->op.offset, q->buf, q->op.length);
  log_event (r, &(struct oplog_event){ .type = OPLOG_ISSUE,
                                       .id = q->id,
                                       .conn = w->conn,
                                       .kind = q->op.kind,
                                       .offset = q->op.offset,
                                       .length = q->op.length,
                                       .stamp = q->issue,
                                       .time = w->issue_time });
  return 0;
}

static int64_t
send_request (struct run *r, struct request *q)
{
  struct nbd_handle *h = q->conn->nbd;
  nbd_completion_callback done = { .callback = request_done, .user_data = q };
  nbd_extent_callback extents = { .callback = status_extents, .user_data = q };
  const struct op *op = &q->op;

  switch (op->kind)
    {
    case OP_READ:
      return nbd_aio_pread (h, q->buf, op->length, op->offset, done, 0);
    case OP_WRITE:
      return nbd_aio_pwrite (h, q->buf, op->length, op->offset, done, 0);
    case OP_FUA:
      return nbd_aio_pwrite (h, q->buf, op->length, op->offset, done,
                             LIBNBD_CMD_FLAG_FUA);
    case OP_ZERO:
      return nbd_aio_zero (h, op->length, op->offset, done, 0);
    case OP_ZERO_FUA:
      return nbd_aio_zero (h, op->length, op->offset, done,
                           LIBNBD_CMD_FLAG_FUA);
    case OP_TRIM:
      return nbd_aio_trim (h, op->length, op->offset, done, 0);
    case OP_FLUSH:
      log_event (r, &(struct oplog_event){ .type = OPLOG_FLUSH_ISSUE,
                                           .conn = q->conn->index,
                                           .stamp = q->issue,
                                           .time = run_time (r, q->issue_ns) });
      return nbd_aio_flush (h, done, 0);
    case OP_CACHE:
      return nbd_aio_cache (h, op->length, op->offset, done, 0);
    case OP_STATUS:
      return nbd_aio_block_status (h, op->length, op->offset, extents, done, 0);
    case OP_NR:
      break;
    }
  errno = EINVAL;
  return -1;
}

/* libnbd refused to queue Q: finish it here, as a failed request. */
static void
send_failed (struct run *r, struct request *q)
{
  int err = nbd_get_errno () ? nbd_get_errno () : EIO;

  fprintf (stderr, "blkcache-torture: connection %u: %s\n", q->conn->index,
           nbd_get_error ());
  request_done (q, &err);
}

/* Issue the next operation in slot Q of C.  Returns false when it could
 * not be sent. */
static bool
start_request (struct run *r, struct conn *c, struct request *q)
{
  int e;

  workload_next (&r->wl, &q->op);
  q->busy = true;
  c->in_flight++;
  r->issued++;
  q->issue = ++r->clock;
  q->issue_ns = now_ns ();
  if (op_is_write (q->op.kind) && (e = begin_write (r, q)) < 0)
    {
      die_internal (r, "oracle", -e);
      q->busy = false;
      c->in_flight--;
      return false;
    }
  if (send_request (r, q) == -1)
    {
      send_failed (r, q);
      return false;
    }
  return true;
}

static struct request *
free_slot (struct run *r, struct conn *c)
{
  for (unsigned i = 0; i < r->opt->queue_depth; i++)
    if (!c->req[i].busy)
      return &c->req[i];
  return NULL;
}

static void
fill_queue (struct run *r, struct conn *c)
{
  while (!r->stopping && !c->dead && c->in_flight < r->opt->queue_depth)
    {
      if (r->opt->ops > 0 && r->issued >= r->opt->ops)
        {
          r->stopping = true;
          return;
        }
      if (!start_request (r, c, free_slot (r, c)))
        return;
    }
}

/* ------------------------------------------------------------------ */
/* The event loop. */

static void
refill (void *opaque, struct nbdloop_conn *lc)
{
  struct run *r = opaque;

  fill_queue (r, &r->conns[lc->index]);
}

static unsigned
in_flight (const struct run *r)
{
  unsigned n = 0;

  for (unsigned i = 0; i < r->opt->connections; i++)
    if (!r->conns[i].dead)
      n += r->conns[i].in_flight;
  return n;
}

static bool
run_done (void *opaque)
{
  struct run *r = opaque;

  if (r->log != NULL)
    oplog_sync (r->log);
  return r->stopping && in_flight (r) == 0;
}

static void
conn_lost (void *opaque, struct nbdloop_conn *lc)
{
  struct run *r = opaque;

  fprintf (stderr, "blkcache-torture: connection %u lost: %s\n", lc->index,
           nbd_get_error ());
  r->conns[lc->index].dead = true;
  r->lost = true;
  r->stopping = true;
}

static const struct nbdloop_ops loop_ops = {
  .refill = refill,
  .done = run_done,
  .lost = conn_lost,
};

static void
print_progress (struct run *r, uint64_t ns)
{
  double t = (double)(ns - r->start_ns) / 1e9;

  fprintf (stderr,
           "\r%7.1f s %12" PRIu64 " ops %9.0f ops/s %6" PRIu64
           " failed checks %6" PRIu64 " errors ",
           t, r->completed, t > 0 ? r->completed / t : 0.0, r->failures,
           r->errors);
}

static void
on_progress (struct ev_loop *loop, ev_timer *w, int revents)
{
  print_progress (w->data, now_ns ());
}

static void
on_deadline (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct run *r = w->data;

  r->stopping = true;
}

static void
on_sigint (struct ev_loop *loop, ev_signal *w, int revents)
{
  struct run *r = w->data;

  r->interrupted = true;
  r->stopping = true;
}

static void
start_watchers (struct run *r)
{
  if (r->opt->seconds > 0)
    {
      ev_timer_init (&r->deadline, on_deadline, r->opt->seconds, 0);
      r->deadline.data = r;
      ev_timer_start (r->loop, &r->deadline);
    }
  if (r->opt->progress)
    {
      ev_timer_init (&r->progress, on_progress, 1, 1);
      r->progress.data = r;
      ev_timer_start (r->loop, &r->progress);
    }
  ev_signal_init (&r->sigint, on_sigint, SIGINT);
  r->sigint.data = r;
  ev_signal_start (r->loop, &r->sigint);
}

static void
stop_watchers (struct run *r)
{
  ev_timer_stop (r->loop, &r->deadline);
  ev_timer_stop (r->loop, &r->progress);
  ev_signal_stop (r->loop, &r->sigint);
}

/* ------------------------------------------------------------------ */
/* Before and after the run. */

/* Tries of each request of the initial fill: a server that fails some
 * requests on purpose (nbdkit's error filter) can still be tortured. */
#define FILL_TRIES 10

/* Write [OFF, OFF + LEN) from BUF on H and, when FLUSH, flush, retrying
 * each request up to FILL_TRIES times.  Returns 0 or -EIO. */
static int
fill_request (struct nbd_handle *h, const void *buf, uint64_t len, uint64_t off,
              bool flush)
{
  for (int try = 0; try < FILL_TRIES; try++)
    if ((flush ? nbd_flush (h, 0) : nbd_pwrite (h, buf, len, off, 0)) == 0)
      return 0;
  return -EIO;
}

/* Write the initial content, write 0, over the whole region on
 * connection 0 and flush it. */
static int
fill_disk (struct run *r)
{
  struct conn *c = &r->conns[0];
  uint64_t chunk = CHUNK, size = r->wl.size;
  unsigned char *buf;
  int e = 0;

  if (r->feat.max_block && r->feat.max_block < chunk)
    chunk = r->feat.max_block / r->feat.min_block * r->feat.min_block;
  buf = malloc (chunk);
  if (buf == NULL)
    return -ENOMEM;
  for (uint64_t off = 0; off < size && e == 0; off += chunk)
    {
      uint64_t len = size - off < chunk ? size - off : chunk;

      pattern_fill (0, off, buf, len);
      e = fill_request (c->nbd, buf, len, off, false);
    }
  free (buf);
  if (e == 0 && r->feat.flush)
    e = fill_request (c->nbd, NULL, 0, 0, true);
  if (e < 0)
    fprintf (stderr, "blkcache-torture: initial fill: %s\n", nbd_get_error ());
  return e;
}

/* Fill the disk and record the fill as write 0, issued at stamp 1 and
 * replied at stamp 2, durable when the server can flush. */
static int
fill_region (struct run *r)
{
  uint64_t size = r->wl.size;
  struct oracle_write *w;
  int e = fill_disk (r);

  if (e < 0)
    return e;
  w = oracle_begin_write (r->oracle, 0, ORACLE_DATA, 0, size, 1);
  if (w == NULL)
    return -errno;
  e = oracle_end_write (r->oracle, w, 2, true, ORACLE_NEVER);
  r->fill = *w;
  oracle_put_write (w);
  r->clock = 2;
  r->next_id = 1;
  log_event (r, &(struct oplog_event){ .type = OPLOG_REGION, .length = size });
  log_event (r, &(struct oplog_event){ .type = OPLOG_ISSUE,
                                       .kind = OP_WRITE,
                                       .length = size,
                                       .stamp = 1 });
  log_event (r, &(struct oplog_event){ .type = OPLOG_REPLY, .stamp = 2 });
  if (r->feat.flush)
    log_durable (r, 0);
  return e;
}

/* Read the whole region back on connection 0 and check it. */
static void
final_readback (struct run *r)
{
  struct conn *c = &r->conns[0];
  unsigned char *buf = c->req[0].buf;
  uint64_t size = r->wl.size, chunk = r->wl.max_length;

  for (uint64_t off = 0; off < size && !r->fatal; off += chunk)
    {
      uint64_t len = size - off < chunk ? size - off : chunk;
      uint64_t issue = ++r->clock, failures = r->failures;
      struct oracle_failure f;
      struct checked ck = { .what = "final read-back",
                            .conn = 0,
                            .offset = off,
                            .length = len,
                            .issue_time = -1 };

      if (nbd_pread (c->nbd, buf, len, off, 0) == -1)
        {
          fprintf (stderr, "blkcache-torture: final read-back: %s\n",
                   nbd_get_error ());
          r->lost = true;
          return;
        }
      note_check (
          r, &ck,
          oracle_check_read (r->oracle, off, buf, len, issue, ++r->clock, &f),
          &f);
      r->failed_final += r->failures - failures;
    }
}

static void
print_summary (const struct run *r)
{
  const struct options *o = r->opt;
  double t = (double)(r->end_ns - r->start_ns) / 1e9;
  struct latency all = { 0 };

  printf ("blkcache-torture: seed %" PRIu64
          ", %u connections x %u, region %" PRIu64 " bytes, hot %" PRIu64
          " bytes\n",
          o->seed, o->connections, o->queue_depth, r->wl.size, r->wl.hot);
  printf ("%-9s %10s %8s %10s %10s %10s\n", "op", "ops", "errors", "p50 us",
          "p99 us", "max us");
  for (int k = 0; k < OP_NR; k++)
    {
      const struct kind_stats *s = &r->stats[k];

      latency_merge (&all, &s->lat);
      if (s->lat.count == 0)
        continue;
      printf ("%-9s %10" PRIu64 " %8" PRIu64 " %10.1f %10.1f %10.1f\n",
              op_name (k), s->lat.count, s->errors,
              latency_percentile (&s->lat, 0.5) / 1e3,
              latency_percentile (&s->lat, 0.99) / 1e3, s->lat.max / 1e3);
    }
  printf ("%-9s %10" PRIu64 " %8" PRIu64 " %10.1f %10.1f %10.1f\n", "all",
          all.count, r->errors, latency_percentile (&all, 0.5) / 1e3,
          latency_percentile (&all, 0.99) / 1e3, all.max / 1e3);
  printf ("%" PRIu64 " ops in %.2f s: %.0f ops/s\n", r->completed, t,
          t > 0 ? r->completed / t : 0.0);
  printf ("stale reads: %" PRIu64 " (%" PRIu64 " bad bytes), %" PRIu64
          " of them in the final read-back\n",
          r->failures - r->bad_status, r->bad_bytes, r->failed_final);
  printf ("block status replies claiming zeroes wrongly: %" PRIu64 "\n",
          r->bad_status);
}

/* Zero the weight of every kind the server cannot do, with a note. */
static void
skip_unsupported (struct run *r)
{
  const struct features *f = &r->feat;
  bool ok[OP_NR] = { [OP_READ] = true, [OP_WRITE] = true };

  ok[OP_FUA] = f->fua;
  ok[OP_ZERO] = f->zero;
  ok[OP_ZERO_FUA] = f->zero && f->fua;
  ok[OP_TRIM] = f->trim;
  ok[OP_FLUSH] = f->flush;
  ok[OP_CACHE] = f->cache;
  ok[OP_STATUS] = f->status;
  for (int k = 0; k < OP_NR; k++)
    if (!ok[k] && r->wl.weight[k] > 0)
      {
        fprintf (stderr,
                 "blkcache-torture: the server does not advertise"
                 " %s: %s requests skipped\n",
                 k == OP_STATUS ? "base:allocation" : op_name (k), op_name (k));
        r->wl.weight[k] = 0;
      }
}

static int
setup_workload (struct run *r)
{
  const struct options *o = r->opt;
  uint64_t size = o->size ? o->size : r->feat.size;
  /* Both are powers of two: the larger is a multiple of the other. */
  uint32_t align = o->align > r->feat.min_block ? o->align : r->feat.min_block;

  if (!o->size && size > 8 * o->hot_size)
    size = 8 * o->hot_size;
  if (!o->size)
    size = size / align * align;
  memcpy (r->wl.weight, o->weight, sizeof r->wl.weight);
  r->wl.size = size;
  r->wl.hot = o->hot_size < size ? o->hot_size : size;
  r->wl.max_length = o->max_length;
  r->wl.align = align;
  if (r->feat.max_block && r->wl.max_length > r->feat.max_block)
    r->wl.max_length = r->feat.max_block;
  if (size > r->feat.size || size % r->wl.align || r->wl.hot % r->wl.align
      || r->wl.max_length < r->wl.align)
    {
      fprintf (stderr,
               "blkcache-torture: region of %" PRIu64 " bytes does"
               " not fit the export (%" PRIu64 " bytes, block size %" PRIu32
               ")\n",
               size, r->feat.size, r->wl.align);
      return -EINVAL;
    }
  skip_unsupported (r);
  if (workload_init (&r->wl, o->seed) < 0)
    {
      fprintf (stderr, "blkcache-torture: no operation left to run\n");
      return -EINVAL;
    }
  return 0;
}

static int
open_conn (struct run *r, unsigned i)
{
  struct conn *c = &r->conns[i];

  c->run = r;
  c->index = i;
  c->nbd = r->nl.conns[i].nbd;
  c->req = calloc (r->opt->queue_depth, sizeof *c->req);
  if (c->req == NULL)
    return -ENOMEM;
  for (unsigned j = 0; j < r->opt->queue_depth; j++)
    {
      c->req[j].conn = c;
      c->req[j].buf = malloc (r->opt->max_length);
      if (c->req[j].buf == NULL)
        return -ENOMEM;
    }
  return 0;
}

static int
setup (struct run *r)
{
  if (nbdloop_open (&r->nl, r->loop, r->opt->uri, r->opt->connections,
                    &loop_ops, r)
      < 0)
    return -EIO;
  r->conns = calloc (r->opt->connections, sizeof *r->conns);
  if (r->conns == NULL)
    return -ENOMEM;
  for (unsigned i = 0; i < r->opt->connections; i++)
    if (open_conn (r, i) < 0)
      return -ENOMEM;
  if (torture_features (r->conns[0].nbd, &r->feat) < 0)
    return -EIO;
  if (r->feat.read_only)
    {
      fprintf (stderr, "blkcache-torture: the export is read-only\n");
      return -EINVAL;
    }
  if (r->opt->connections > 1 && !r->feat.multi_conn)
    fprintf (stderr, "blkcache-torture: the server does not advertise"
                     " multi-conn; connections are expected to be consistent"
                     " anyway\n");
  if (setup_workload (r) < 0)
    return -EINVAL;
  r->oracle = oracle_new (r->wl.size);
  if (r->oracle == NULL)
    return -ENOMEM;
  if (r->opt->log_path != NULL)
    {
      r->log = oplog_create (r->opt->log_path);
      if (r->log == NULL)
        {
          fprintf (stderr, "blkcache-torture: %s: %s\n", r->opt->log_path,
                   strerror (errno));
          return -errno;
        }
    }
  return fill_region (r);
}

static void
teardown (struct run *r)
{
  for (unsigned i = 0; r->conns != NULL && i < r->opt->connections; i++)
    {
      struct conn *c = &r->conns[i];

      for (unsigned j = 0; c->req != NULL && j < r->opt->queue_depth; j++)
        {
          oracle_put_write (c->req[j].w);
          free (c->req[j].buf);
        }
      free (c->req);
    }
  free (r->conns);
  nbdloop_close (&r->nl);
  oracle_free (r->oracle);
  free (r->undurable);
}

static int
exit_status (const struct run *r)
{
  if (r->fatal)
    return EXIT_SETUP;
  if (r->failures > 0 || (r->opt->fail_on_error && r->errors > 0))
    return EXIT_STALE;
  if (r->lost)
    return EXIT_LOST;
  return EXIT_OK;
}

static int
close_log (struct run *r)
{
  int e;

  if (r->log == NULL)
    return 0;
  e = oplog_close (r->log);
  r->log = NULL;
  if (e < 0)
    fprintf (stderr, "blkcache-torture: %s: %s\n", r->opt->log_path,
             strerror (-e));
  return e;
}

int
torture_run (const struct options *opt)
{
  struct run *r = calloc (1, sizeof *r);
  int status;

  if (r == NULL)
    return EXIT_SETUP;
  r->opt = opt;
  r->loop = EV_DEFAULT;
  if (setup (r) < 0)
    {
      close_log (r);
      teardown (r);
      free (r);
      return EXIT_SETUP;
    }
  ev_now_update (r->loop);
  r->start_ns = now_ns ();
  log_event (
      r, &(struct oplog_event){ .type = OPLOG_CLOCK, .start_ns = r->start_ns });
  start_watchers (r);
  nbdloop_run (&r->nl);
  stop_watchers (r);
  r->end_ns = now_ns ();
  if (opt->progress)
    {
      print_progress (r, r->end_ns);
      fprintf (stderr, "\n");
    }
  if (!r->lost && !r->fatal && !r->interrupted)
    final_readback (r);
  if (close_log (r) < 0)
    r->fatal = true;
  print_summary (r);
  status = exit_status (r);
  teardown (r);
  free (r);
  return status;
}
