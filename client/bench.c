/* blkcache-bench: NBD benchmark that speaks FUA and flush.
 *
 * Layout.  main parses the options into struct bench_options; the run
 * drives N connections on one libev loop (nbdloop.c), each with Q request
 * slots that refill tops up with the workload's next request; libnbd calls
 * request_done as replies arrive, which records the latency and frees the
 * slot.  A warm-up period (--warmup) runs the same workload unmeasured;
 * then the measured window starts, and only requests issued inside it and
 * completed before it ends are counted.
 *
 * Workloads: randread, seqread, randwrite, fua-randwrite and randrw, all of
 * one block size at aligned offsets of the region; writes carry FUA with
 * the probability --fua-percent, and --flush-every N sends a flush after
 * every N writes (counted over all connections).  --zipf THETA draws the
 * random offsets from a Zipf distribution (zipf.h) instead of a uniform
 * one: a skewed workload with a hot set.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
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
#include "pattern.h"
#include "random.h"
#include "zipf.h"

enum workload
{
  W_RANDREAD,
  W_SEQREAD,
  W_RANDWRITE,
  W_FUA_RANDWRITE,
  W_RANDRW,
  W_NR
};

static const char *const workload_names[W_NR] = {
  "randread", "seqread", "randwrite", "fua-randwrite", "randrw",
};

enum kind
{
  K_READ,
  K_WRITE,
  K_FUA,
  K_FLUSH,
  K_NR
};

static const char *const kind_names[K_NR] = { "read", "write", "fua", "flush" };

struct bench_options
{
  enum workload workload;
  const char *uri;
  uint64_t block_size;
  unsigned queue_depth, connections;
  double seconds, warmup;
  uint64_t size; /* 0: the export */
  unsigned read_percent, fua_percent;
  uint64_t flush_every;
  bool prefill, json;
  uint64_t seed;
  double zipf; /* the exponent of random offsets; 0: uniform */
};

struct slot
{
  bool busy, measured;
  enum kind kind;
  uint64_t issue_ns;
  unsigned char *buf;
  struct bench *b;
  unsigned conn;
};

struct bench
{
  const struct bench_options *opt;
  struct ev_loop *loop;
  struct nbdloop nl;
  struct features feat;
  struct slot **slots; /* [connection][queue_depth] */
  unsigned *in_flight;
  ev_timer warmup, deadline;
  struct random rng;
  struct zipf zipf; /* with --zipf */
  uint64_t size, cursor, writes_since_flush;
  bool measuring, stopping, lost;
  uint64_t start_ns, end_ns;
  uint64_t errors;
  struct latency lat[K_NR];
};

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Requests. */

static int
request_done (void *opaque, int *error)
{
  struct slot *s = opaque;
  struct bench *b = s->b;
  uint64_t ns = now_ns ();

  s->busy = false;
  b->in_flight[s->conn]--;
  if (*error != 0 && b->errors++ < 5)
    fprintf (stderr, "blkcache-bench: %s: %s\n", kind_names[s->kind],
             strerror (*error));
  if (s->measured && b->measuring && *error == 0)
    latency_add (&b->lat[s->kind], ns - s->issue_ns);
  return 1;
}

static uint64_t
random_offset (struct bench *b)
{
  uint64_t n = b->size / b->opt->block_size;

  if (b->opt->zipf > 0)
    return zipf_next (&b->zipf, &b->rng) * b->opt->block_size;
  return random_below (&b->rng, n) * b->opt->block_size;
}

static uint64_t
next_offset (struct bench *b)
{
  uint64_t off;

  if (b->opt->workload != W_SEQREAD)
    return random_offset (b);
  if (b->cursor + b->opt->block_size > b->size)
    b->cursor = 0;
  off = b->cursor;
  b->cursor += b->opt->block_size;
  return off;
}

static enum kind
next_kind (struct bench *b)
{
  const struct bench_options *o = b->opt;
  bool write;

  if (o->flush_every > 0 && b->writes_since_flush >= o->flush_every)
    {
      b->writes_since_flush = 0;
      return K_FLUSH;
    }
  switch (o->workload)
    {
    case W_RANDREAD:
    case W_SEQREAD:
      return K_READ;
    case W_RANDRW:
      write = random_below (&b->rng, 100) >= o->read_percent;
      break;
    default:
      write = true;
      break;
    }
  if (!write)
    return K_READ;
  b->writes_since_flush++;
  return random_below (&b->rng, 100) < o->fua_percent ? K_FUA : K_WRITE;
}

static int64_t
send_request (struct bench *b, struct slot *s, struct nbd_handle *h)
{
  nbd_completion_callback done = { .callback = request_done, .user_data = s };
  uint64_t len = b->opt->block_size;

  switch (s->kind)
    {
    case K_READ:
      return nbd_aio_pread (h, s->buf, len, next_offset (b), done, 0);
    case K_WRITE:
      return nbd_aio_pwrite (h, s->buf, len, next_offset (b), done, 0);
    case K_FUA:
      return nbd_aio_pwrite (h, s->buf, len, next_offset (b), done,
                             LIBNBD_CMD_FLAG_FUA);
    case K_FLUSH:
      return nbd_aio_flush (h, done, 0);
    case K_NR:
      break;
    }
  return -1;
}

static void
refill (void *opaque, struct nbdloop_conn *c)
{
  struct bench *b = opaque;

  for (unsigned i = 0; i < b->opt->queue_depth && !b->stopping; i++)
    {
      struct slot *s = &b->slots[c->index][i];

      if (s->busy)
        continue;
      s->kind = next_kind (b);
      s->busy = true;
      s->measured = b->measuring;
      s->issue_ns = now_ns ();
      b->in_flight[c->index]++;
      if (send_request (b, s, c->nbd) == -1)
        {
          fprintf (stderr, "blkcache-bench: %s\n", nbd_get_error ());
          s->busy = false;
          b->in_flight[c->index]--;
          b->stopping = true;
        }
    }
}

static bool
bench_done (void *opaque)
{
  struct bench *b = opaque;

  if (!b->stopping)
    return false;
  for (unsigned i = 0; i < b->opt->connections; i++)
    if (!b->nl.conns[i].dead && b->in_flight[i] > 0)
      return false;
  return true;
}

static void
conn_lost (void *opaque, struct nbdloop_conn *c)
{
  struct bench *b = opaque;

  fprintf (stderr, "blkcache-bench: connection %u lost: %s\n", c->index,
           nbd_get_error ());
  b->lost = true;
  b->stopping = true;
}

static const struct nbdloop_ops loop_ops = {
  .refill = refill,
  .done = bench_done,
  .lost = conn_lost,
};

/* ------------------------------------------------------------------ */
/* Timers. */

static void
start_measuring (struct bench *b)
{
  b->measuring = true;
  b->start_ns = now_ns ();
  memset (b->lat, 0, sizeof b->lat);
}

static void
on_warmup (struct ev_loop *loop, ev_timer *w, int revents)
{
  start_measuring (w->data);
}

static void
on_deadline (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct bench *b = w->data;

  b->end_ns = now_ns ();
  b->measuring = false;
  b->stopping = true;
}

static void
start_timers (struct bench *b)
{
  const struct bench_options *o = b->opt;

  ev_now_update (b->loop);
  ev_timer_init (&b->deadline, on_deadline, o->warmup + o->seconds, 0);
  b->deadline.data = b;
  ev_timer_start (b->loop, &b->deadline);
  if (o->warmup <= 0)
    {
      start_measuring (b);
      return;
    }
  ev_timer_init (&b->warmup, on_warmup, o->warmup, 0);
  b->warmup.data = b;
  ev_timer_start (b->loop, &b->warmup);
}

/* ------------------------------------------------------------------ */
/* Setup and results. */

static int
prefill (struct bench *b)
{
  const uint64_t chunk = 1024 * 1024;
  unsigned char *buf = malloc (chunk);
  int e = 0;

  if (buf == NULL)
    return -ENOMEM;
  for (uint64_t off = 0; off < b->size && e == 0; off += chunk)
    {
      uint64_t len = b->size - off < chunk ? b->size - off : chunk;

      pattern_fill (1, off, buf, len);
      if (nbd_pwrite (b->nl.conns[0].nbd, buf, len, off, 0) == -1)
        e = -EIO;
    }
  free (buf);
  if (e == 0 && b->feat.flush && nbd_flush (b->nl.conns[0].nbd, 0) == -1)
    e = -EIO;
  if (e < 0)
    fprintf (stderr, "blkcache-bench: prefill: %s\n", nbd_get_error ());
  return e;
}

static int
check_features (struct bench *b)
{
  const struct bench_options *o = b->opt;
  bool writes = o->workload >= W_RANDWRITE;

  b->size = o->size ? o->size : b->feat.size;
  if (b->size > b->feat.size || b->size < o->block_size)
    {
      fprintf (stderr, "blkcache-bench: region does not fit the export\n");
      return -EINVAL;
    }
  if (o->zipf > 0 && zipf_init (&b->zipf, b->size / o->block_size, o->zipf) < 0)
    {
      fprintf (stderr, "blkcache-bench: --zipf: the region has 2^32 "
                       "requests' worth of blocks or more\n");
      return -EINVAL;
    }
  if ((writes || o->prefill) && b->feat.read_only)
    {
      fprintf (stderr, "blkcache-bench: the export is read-only\n");
      return -EINVAL;
    }
  if ((o->fua_percent > 0 || o->workload == W_FUA_RANDWRITE) && !b->feat.fua)
    {
      fprintf (stderr, "blkcache-bench: the server does not advertise FUA\n");
      return -EINVAL;
    }
  if (o->flush_every > 0 && !b->feat.flush)
    {
      fprintf (stderr, "blkcache-bench: the server cannot flush\n");
      return -EINVAL;
    }
  return 0;
}

static int
setup (struct bench *b)
{
  const struct bench_options *o = b->opt;

  if (nbdloop_open (&b->nl, b->loop, o->uri, o->connections, &loop_ops, b) < 0)
    return -EIO;
  if (torture_features (b->nl.conns[0].nbd, &b->feat) < 0
      || check_features (b) < 0)
    return -EINVAL;
  b->slots = calloc (o->connections, sizeof *b->slots);
  b->in_flight = calloc (o->connections, sizeof *b->in_flight);
  if (b->slots == NULL || b->in_flight == NULL)
    return -ENOMEM;
  for (unsigned i = 0; i < o->connections; i++)
    {
      b->slots[i] = calloc (o->queue_depth, sizeof **b->slots);
      if (b->slots[i] == NULL)
        return -ENOMEM;
      for (unsigned j = 0; j < o->queue_depth; j++)
        {
          struct slot *s = &b->slots[i][j];

          *s = (struct slot){ .b = b, .conn = i };
          s->buf = malloc (o->block_size);
          if (s->buf == NULL)
            return -ENOMEM;
          pattern_fill (i * o->queue_depth + j + 2, 0, s->buf, o->block_size);
        }
    }
  random_seed (&b->rng, o->seed);
  return o->prefill ? prefill (b) : 0;
}

static void
teardown (struct bench *b)
{
  for (unsigned i = 0; b->slots != NULL && i < b->opt->connections; i++)
    {
      for (unsigned j = 0; b->slots[i] != NULL && j < b->opt->queue_depth; j++)
        free (b->slots[i][j].buf);
      free (b->slots[i]);
    }
  free (b->slots);
  free (b->in_flight);
  nbdloop_close (&b->nl);
}

/* Samples of the data requests (reads and writes, not flushes). */
static void
data_latency (const struct bench *b, struct latency *all)
{
  memset (all, 0, sizeof *all);
  for (int k = 0; k < K_NR; k++)
    if (k != K_FLUSH)
      latency_merge (all, &b->lat[k]);
}

static void
print_text (const struct bench *b, double t, const struct latency *all)
{
  const struct bench_options *o = b->opt;

  printf ("%s bs=%" PRIu64 " qd=%u connections=%u %.2f s: %.0f IOPS, %.2f"
          " MiB/s\n",
          workload_names[o->workload], o->block_size, o->queue_depth,
          o->connections, t, all->count / t,
          all->count * (double)o->block_size / t / (1024 * 1024));
  for (int k = 0; k < K_NR; k++)
    if (b->lat[k].count > 0)
      printf ("  %-6s %10" PRIu64 " ops  p50 %9.1f us  p99 %9.1f us  max"
              " %9.1f us\n",
              kind_names[k], b->lat[k].count,
              latency_percentile (&b->lat[k], 0.5) / 1e3,
              latency_percentile (&b->lat[k], 0.99) / 1e3, b->lat[k].max / 1e3);
  if (b->errors > 0)
    printf ("  errors %" PRIu64 "\n", b->errors);
}

static void
print_json_latency (const char *name, const struct latency *l, bool comma)
{
  printf ("\"%s\": {\"ops\": %" PRIu64 ", \"p50_us\": %.1f, \"p99_us\":"
          " %.1f, \"max_us\": %.1f}%s",
          name, l->count, latency_percentile (l, 0.5) / 1e3,
          latency_percentile (l, 0.99) / 1e3, l->max / 1e3, comma ? ", " : "");
}

static void
print_json (const struct bench *b, double t, const struct latency *all)
{
  const struct bench_options *o = b->opt;

  printf ("{\"workload\": \"%s\", \"block_size\": %" PRIu64
          ", \"queue_depth\": %u, \"connections\": %u, \"seconds\": %.3f, "
          "\"read_percent\": %u, \"fua_percent\": %u, \"flush_every\": %" PRIu64
          ", \"ops\": %" PRIu64 ", \"iops\": %.1f, \"mib_per_s\": %.3f, "
          "\"errors\": %" PRIu64 ", ",
          workload_names[o->workload], o->block_size, o->queue_depth,
          o->connections, t, o->read_percent, o->fua_percent, o->flush_every,
          all->count, all->count / t,
          all->count * (double)o->block_size / t / (1024 * 1024), b->errors);
  print_json_latency ("latency", all, true);
  for (int k = 0; k < K_NR; k++)
    print_json_latency (kind_names[k], &b->lat[k], k + 1 < K_NR);
  printf ("}\n");
}

static int
bench_run (const struct bench_options *o)
{
  struct bench b = { .opt = o, .loop = EV_DEFAULT };
  struct latency all;
  double t;
  int status = 2;

  if (setup (&b) == 0)
    {
      start_timers (&b);
      nbdloop_run (&b.nl);
      ev_timer_stop (b.loop, &b.warmup);
      ev_timer_stop (b.loop, &b.deadline);
      if (b.end_ns == 0)
        b.end_ns = now_ns ();
      t = (double)(b.end_ns - b.start_ns) / 1e9;
      data_latency (&b, &all);
      if (o->json)
        print_json (&b, t, &all);
      else
        print_text (&b, t, &all);
      status = b.lost || b.errors > 0 ? 1 : 0;
    }
  teardown (&b);
  return status;
}

/* ------------------------------------------------------------------ */
/* Command line. */

enum
{
  OPT_SECONDS = 256,
  OPT_WARMUP,
  OPT_SIZE,
  OPT_READ_PERCENT,
  OPT_FUA_PERCENT,
  OPT_FLUSH_EVERY,
  OPT_PREFILL,
  OPT_SEED,
  OPT_JSON,
  OPT_ZIPF,
  OPT_HELP,
  OPT_VERSION,
};

static const struct option long_options[] = {
  { "block-size", required_argument, NULL, 'b' },
  { "queue-depth", required_argument, NULL, 'q' },
  { "connections", required_argument, NULL, 'c' },
  { "seconds", required_argument, NULL, OPT_SECONDS },
  { "warmup", required_argument, NULL, OPT_WARMUP },
  { "size", required_argument, NULL, OPT_SIZE },
  { "read-percent", required_argument, NULL, OPT_READ_PERCENT },
  { "fua-percent", required_argument, NULL, OPT_FUA_PERCENT },
  { "flush-every", required_argument, NULL, OPT_FLUSH_EVERY },
  { "prefill", no_argument, NULL, OPT_PREFILL },
  { "seed", required_argument, NULL, OPT_SEED },
  { "json", no_argument, NULL, OPT_JSON },
  { "zipf", required_argument, NULL, OPT_ZIPF },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 },
};

static void
usage (FILE *fp)
{
  fprintf (fp, "Usage: blkcache-bench [OPTIONS] WORKLOAD URI\n"
               "WORKLOAD: randread, seqread, randwrite, fua-randwrite, randrw\n"
               "\n"
               "  -b, --block-size SIZE   request size (default 4K)\n"
               "  -q, --queue-depth N     requests in flight per connection"
               " (default 16)\n"
               "  -c, --connections N     connections (default 4)\n"
               "      --seconds S         measured time (default 10)\n"
               "      --warmup S          unmeasured time first (default 0)\n"
               "      --size SIZE         region used (default: the export)\n"
               "      --read-percent N    reads among randrw requests"
               " (default 70)\n"
               "      --fua-percent N     writes sent with FUA (default 0,"
               " fua-randwrite 100)\n"
               "      --flush-every N     a flush after every N writes"
               " (default: never)\n"
               "      --prefill           write the region before starting\n"
               "      --seed N            seed of the offsets (default 1)\n"
               "      --zipf THETA        Zipf-distributed random offsets,"
               " THETA in (0, 1)\n"
               "      --json              print the results as one JSON"
               " object\n");
}

/* A number with an optional K, M, G suffix (powers of 1024) when SIZE. */
static int
parse_number (const char *s, bool size, uint64_t *out)
{
  static const char units[] = "KMG";
  char *end;
  const char *unit;
  unsigned long long v;
  int shift = 0;

  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno != 0 || end == s || s[0] == '-')
    return -EINVAL;
  if (size && *end != '\0'
      && (unit = strchr (units, toupper ((unsigned char)*end))) != NULL)
    {
      shift = 10 * (int)(unit - units + 1);
      end++;
    }
  if (*end != '\0' || v > (UINT64_MAX >> shift))
    return -EINVAL;
  *out = (uint64_t)v << shift;
  return 0;
}

static int
parse_seconds (const char *s, double *out)
{
  char *end;
  double d = strtod (s, &end);

  if (end == s || *end != '\0' || !(d >= 0))
    return -EINVAL;
  *out = d;
  return 0;
}

static int
apply_option (struct bench_options *o, int c, const char *arg)
{
  uint64_t v;

  switch (c)
    {
    case 'b':
      if (parse_number (arg, true, &o->block_size) < 0 || o->block_size == 0
          || o->block_size > 32 * 1024 * 1024)
        return -EINVAL;
      return 0;
    case 'q':
    case 'c':
      if (parse_number (arg, false, &v) < 0 || v == 0 || v > 4096)
        return -EINVAL;
      *(c == 'q' ? &o->queue_depth : &o->connections) = v;
      return 0;
    case OPT_SECONDS:
      return parse_seconds (arg, &o->seconds) < 0 || o->seconds <= 0 ? -EINVAL
                                                                     : 0;
    case OPT_WARMUP:
      return parse_seconds (arg, &o->warmup);
    case OPT_SIZE:
      return parse_number (arg, true, &o->size);
    case OPT_READ_PERCENT:
    case OPT_FUA_PERCENT:
      if (parse_number (arg, false, &v) < 0 || v > 100)
        return -EINVAL;
      *(c == OPT_READ_PERCENT ? &o->read_percent : &o->fua_percent) = v;
      return 0;
    case OPT_FLUSH_EVERY:
      return parse_number (arg, false, &o->flush_every);
    case OPT_PREFILL:
      o->prefill = true;
      return 0;
    case OPT_SEED:
      return parse_number (arg, false, &o->seed);
    case OPT_JSON:
      o->json = true;
      return 0;
    case OPT_ZIPF:
      return parse_seconds (arg, &o->zipf) < 0 || !(o->zipf > 0 && o->zipf < 1)
                 ? -EINVAL
                 : 0;
    }
  return -EINVAL;
}

static int
parse_workload (const char *name)
{
  for (int i = 0; i < W_NR; i++)
    if (strcmp (workload_names[i], name) == 0)
      return i;
  return -EINVAL;
}

/* Parse ARGV into O.  Returns 0, 1 after --help or --version, or -EINVAL
 * after printing why. */
static int
parse_args (int argc, char *argv[], struct bench_options *o)
{
  bool fua_given = false;
  int c, w;

  *o = (struct bench_options){ .block_size = 4096,
                               .queue_depth = 16,
                               .connections = 4,
                               .seconds = 10,
                               .read_percent = 70,
                               .seed = 1 };
  while ((c = getopt_long (argc, argv, "b:q:c:", long_options, NULL)) != -1)
    {
      if (c == OPT_HELP)
        return usage (stdout), 1;
      if (c == OPT_VERSION)
        return printf ("blkcache-bench %s\n", PACKAGE_VERSION), 1;
      if (c == '?' || apply_option (o, c, optarg) < 0)
        {
          if (c != '?')
            fprintf (stderr, "blkcache-bench: bad value '%s'\n", optarg);
          return -EINVAL;
        }
      fua_given |= c == OPT_FUA_PERCENT;
    }
  if (optind != argc - 2 || (w = parse_workload (argv[optind])) < 0)
    {
      usage (stderr);
      return -EINVAL;
    }
  o->workload = w;
  o->uri = argv[optind + 1];
  if (o->workload == W_FUA_RANDWRITE && !fua_given)
    o->fua_percent = 100;
  return 0;
}

int
main (int argc, char *argv[])
{
  struct bench_options o;
  int r = parse_args (argc, argv, &o);

  if (r != 0)
    return r < 0 ? 2 : 0;
  return bench_run (&o);
}
