/* blkcache-torture: checking a run's log against a power-cut recording.
 *
 * A run with --log and --align 512 drove a server that had
 * tests/powercut-recorder.c preloaded.  The recorder's recording says,
 * with CLOCK_MONOTONIC times, which tag (first eight bytes) every
 * 512-byte sector of the disk a power cut would leave held at every
 * moment.  Every data write of the run gives each of its sectors a first
 * word that pattern.c draws from the write's id and the sector's offset,
 * so a tag names the write a durable sector came from (tag 0: zeroes).
 *
 * The check replays both files in time order.  The log's writes enter an
 * oracle (replay.c) as for the crash check: effective only once made
 * durable, so its rule reads "a durable sector may hold write W unless a
 * write that was made durable was issued after W replied".  A write is
 * made durable by its FUA reply or by the reply of a flush issued after
 * it replied (a D line after the R or FR line, as run.c logs them).  At
 * each such reply, the recording's changes up to the reply's time are
 * applied, and the sectors of every write the reply made durable are
 * rebuilt from their durable tags and checked.  The recorder logs a change
 * before the server can send the reply that depends on it, and the client
 * stamps a reply after it arrived, so the check never blames a server for
 * the distance between the two clocks; it only misses a sync that ended
 * in that gap.  At the end the whole region of the final image is
 * checked once more.
 *
 * Layout: tags_* index the tags of every logged write (an open-addressed
 * table from tag to write id); rec_* read the recording and image_* hold
 * the durable tags as replayed; check_range rebuilds and checks a range;
 * check_* handle the log's events around replay.c's steps.
 */
#include <config.h>

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oplog.h"
#include "oracle.h"
#include "pattern.h"
#include "replay.h"
#include "report.h"
#include "torture.h"
#include "workload.h"

#define SECTOR 512

/* What made a write durable. */
enum moment
{
  MOMENT_FILL,  /* the initial fill, before the run: not checked */
  MOMENT_FUA,   /* its own FUA reply */
  MOMENT_FLUSH, /* a flush reply */
};

struct tag_slot
{
  uint64_t tag, id; /* tag 0: empty */
};

/* The recording, read one line ahead. */
struct recording
{
  FILE *fp;
  char *line;
  size_t cap;
  uint64_t size;
  bool have; /* LINE holds the next D line, due at NS */
  uint64_t ns;
  uint64_t changes, syncs, failed_syncs;
};

struct check
{
  const struct options *opt;
  struct replay rp;
  struct tag_slot *tags;
  size_t tag_cap, ntags;
  uint64_t *image; /* durable tag of each sector */
  struct recording rec;
  bool clock_known;
  uint64_t start_ns;
  enum moment moment; /* of the last R or FR line */
  double moment_time;
  unsigned char *buf;
  /* Figures. */
  uint64_t fua_checked, fua_sectors, flushes, flush_writes, flush_sectors;
  uint64_t final_sectors;
  uint64_t fua_bad, flush_bad, final_bad, bad_bytes, unknown_sectors;
  uint64_t reports;
};

/* ------------------------------------------------------------------ */
/* The tags of the logged writes. */

static uint64_t
tag_of (uint64_t id, uint64_t offset)
{
  uint64_t word;

  pattern_fill (id, offset, &word, sizeof word);
  return le64toh (word);
}

static size_t
tag_hash (uint64_t tag, size_t cap)
{
  return (tag * UINT64_C (0x9e3779b97f4a7c15)) >> 20 & (cap - 1);
}

static void
tags_put (struct tag_slot *t, size_t cap, uint64_t tag, uint64_t id)
{
  size_t i = tag_hash (tag, cap);

  while (t[i].tag != 0 && t[i].tag != tag)
    i = (i + 1) & (cap - 1);
  t[i] = (struct tag_slot){ tag, id };
}

static int
tags_grow (struct check *c)
{
  size_t cap = c->tag_cap ? 2 * c->tag_cap : 65536;
  struct tag_slot *t = calloc (cap, sizeof *t);

  if (t == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < c->tag_cap; i++)
    if (c->tags[i].tag != 0)
      tags_put (t, cap, c->tags[i].tag, c->tags[i].id);
  free (c->tags);
  c->tags = t;
  c->tag_cap = cap;
  return 0;
}

/* Index the tag of every sector of data write ID, [OFFSET, +LENGTH). */
static int
tags_add_write (struct check *c, uint64_t id, uint64_t offset, uint64_t length)
{
  for (uint64_t s = offset; s < offset + length; s += SECTOR)
    {
      if (2 * (c->ntags + 1) > c->tag_cap && tags_grow (c) < 0)
        return -ENOMEM;
      tags_put (c->tags, c->tag_cap, tag_of (id, s), id);
      c->ntags++;
    }
  return 0;
}

/* The write whose sector holds TAG: 1 and *ID, or 0 if none does. */
static int
tags_find (const struct check *c, uint64_t tag, uint64_t *id)
{
  if (c->tag_cap == 0)
    return 0;
  for (size_t i = tag_hash (tag, c->tag_cap); c->tags[i].tag != 0;
       i = (i + 1) & (c->tag_cap - 1))
    if (c->tags[i].tag == tag)
      {
        *id = c->tags[i].id;
        return 1;
      }
  return 0;
}

/* ------------------------------------------------------------------ */
/* The recording. */

/* Read the next line of the recording into REC->line; 0 at the end. */
static int
rec_getline (struct recording *rec)
{
  ssize_t n = getline (&rec->line, &rec->cap, rec->fp);

  if (n <= 0)
    return 0;
  if (rec->line[n - 1] == '\n')
    rec->line[n - 1] = '\0';
  return 1;
}

/* Move to the next D line, counting the S lines on the way. */
static int
rec_advance (struct recording *rec)
{
  rec->have = false;
  while (rec_getline (rec))
    {
      uint64_t a, b;
      int err;

      if (sscanf (rec->line, "D %" SCNu64, &rec->ns) == 1)
        {
          rec->have = true;
          return 0;
        }
      if (sscanf (rec->line, "S %" SCNu64 " %" SCNu64 " %d", &a, &b, &err) == 3)
        {
          rec->syncs++;
          rec->failed_syncs += err != 0;
          continue;
        }
      if (strncmp (rec->line, "end ", 4) != 0)
        return -EINVAL;
    }
  return 0;
}

static int
rec_open (struct recording *rec, const char *path)
{
  rec->fp = fopen (path, "r");
  if (rec->fp == NULL)
    return -errno;
  if (!rec_getline (rec) || strcmp (rec->line, "powercut-recording 1") != 0
      || !rec_getline (rec)
      || sscanf (rec->line, "target %" SCNu64, &rec->size) != 1)
    return -EINVAL;
  return rec_advance (rec);
}

/* Apply the D line in C->rec.line to the durable tags. */
static int
image_apply (struct check *c)
{
  char *p = c->rec.line, *end;
  uint64_t ns, offset, length;
  int used;

  if (sscanf (p, "D %" SCNu64 " %" SCNu64 " %" SCNu64 "%n", &ns, &offset,
              &length, &used)
          != 3
      || offset % SECTOR || offset + length > c->rec.size)
    return -EINVAL;
  p += used;
  for (uint64_t s = offset / SECTOR; s * SECTOR < offset + length; s++)
    {
      c->image[s] = strtoull (p, &end, 16);
      if (end == p)
        return -EINVAL;
      p = end;
    }
  c->rec.changes++;
  return 0;
}

/* Apply every change the recording made before monotonic time NS. */
static int
image_until (struct check *c, uint64_t ns)
{
  while (c->rec.have && c->rec.ns < ns)
    {
      int r = image_apply (c);

      if (r == 0)
        r = rec_advance (&c->rec);
      if (r < 0)
        return r;
    }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Checking. */

/* Rebuild [OFFSET, OFFSET + LENGTH) of the durable disk from its tags into
 * C->buf.  Returns the number of sectors whose tag names no logged write
 * (their bytes are left unlike any write's). */
static uint64_t
image_bytes (struct check *c, uint64_t offset, uint64_t length)
{
  uint64_t unknown = 0;

  for (uint64_t s = offset; s < offset + length; s += SECTOR)
    {
      unsigned char *b = c->buf + (s - offset);
      uint64_t tag = c->image[s / SECTOR], id;

      if (tag == 0)
        memset (b, 0, SECTOR);
      else if (tags_find (c, tag, &id))
        pattern_fill (id, s, b, SECTOR);
      else
        {
          /* Pattern bytes are never 0: a zero byte then a copy of the
           * tag matches no write. */
          memset (b, 0, SECTOR);
          memcpy (b + 8, &tag, sizeof tag);
          unknown++;
        }
    }
  return unknown;
}

static const char *
moment_name (enum moment m)
{
  return m == MOMENT_FUA     ? "power cut after a FUA reply"
         : m == MOMENT_FLUSH ? "power cut after a flush reply"
                             : "power cut at the end";
}

/* Check [OFFSET, OFFSET + LENGTH) of the durable image at moment M.
 * Returns 1 when it failed, 0, or -errno. */
static int
check_range (struct check *c, enum moment m, uint64_t offset, uint64_t length)
{
  struct oracle_failure f;
  int64_t bad;
  uint64_t unknown;

  if (offset % SECTOR || length % SECTOR || offset + length > c->rp.size)
    return -EINVAL;
  c->buf = realloc (c->buf, length);
  if (c->buf == NULL)
    return -ENOMEM;
  unknown = image_bytes (c, offset, length);
  bad = oracle_check_read (c->rp.oracle, offset, c->buf, length, ORACLE_NEVER,
                           ORACLE_NEVER, &f);
  if (bad < 0)
    return (int)bad;
  c->unknown_sectors += unknown;
  if (bad == 0)
    return 0;
  c->bad_bytes += bad;
  if (c->reports++ < c->opt->max_reports)
    {
      struct checked ck = { .what = moment_name (m),
                            .conn = -1,
                            .offset = offset,
                            .length = length,
                            .issue_time = -1 };

      if (m == MOMENT_FILL)
        fprintf (stderr, "blkcache-torture: LOST at the end: a power cut"
                         " would leave bytes that durable writes replaced\n");
      else
        fprintf (stderr,
                 "blkcache-torture: LOST at %.6f s: a power cut then"
                 " would leave bytes that durable writes replaced\n",
                 c->moment_time);
      report_failure (&ck, &f, NULL);
    }
  return 1;
}

/* ------------------------------------------------------------------ */
/* The log. */

static int
check_region (struct check *c, const struct oplog_event *e)
{
  if (e->length > c->rec.size || e->length % SECTOR)
    return -EINVAL;
  return replay_region (&c->rp, e);
}

static int
check_issue (struct check *c, const struct oplog_event *e)
{
  int r;

  if (e->offset % SECTOR || e->length % SECTOR)
    {
      fprintf (stderr, "blkcache-torture: the log's writes are not in whole"
                       " sectors (run with --align 512)\n");
      return -EINVAL;
    }
  r = replay_issue (&c->rp, e);
  if (r == 0 && (e->kind == OP_WRITE || e->kind == OP_FUA))
    r = tags_add_write (c, e->id, e->offset, e->length);
  return r;
}

/* A reply at TIME seconds of the run, which later D lines refer to. */
static int
replay_moment (struct check *c, enum moment m, double time)
{
  c->moment = c->clock_known ? m : MOMENT_FILL;
  c->moment_time = time;
  if (!c->clock_known)
    return 0;
  return image_until (c, c->start_ns + (uint64_t)(time * 1e9));
}

static int
check_reply (struct check *c, const struct oplog_event *e)
{
  const struct oracle_write *w = replay_lookup (&c->rp, e->id);

  if (w != NULL && e->err == 0 && w->fua)
    {
      int r = replay_moment (c, MOMENT_FUA, e->time);

      if (r < 0)
        return r;
    }
  return replay_reply (&c->rp, e);
}

static int
check_flush_reply (struct check *c, const struct oplog_event *e)
{
  if (e->err != 0)
    return 0;
  if (c->clock_known)
    c->flushes++;
  return replay_moment (c, MOMENT_FLUSH, e->time);
}

/* Write ID was made durable at the current moment: settle it, then
 * check its range. */
static int
check_durable (struct check *c, const struct oplog_event *e)
{
  struct oracle_write w;
  uint64_t sectors;
  int r = replay_durable (&c->rp, e, &w);

  if (r < 0 || c->moment == MOMENT_FILL)
    return r;
  r = check_range (c, c->moment, w.offset, w.length);
  if (r < 0)
    return r;
  sectors = w.length / SECTOR;
  if (c->moment == MOMENT_FUA)
    {
      c->fua_checked++;
      c->fua_sectors += sectors;
      c->fua_bad += r;
    }
  else
    {
      c->flush_writes++;
      c->flush_sectors += sectors;
      c->flush_bad += r;
    }
  return 0;
}

static int
check_event (void *arg, const struct oplog_event *e)
{
  struct check *c = arg;

  switch (e->type)
    {
    case OPLOG_REGION:
      return check_region (c, e);
    case OPLOG_ISSUE:
      return check_issue (c, e);
    case OPLOG_REPLY:
      return check_reply (c, e);
    case OPLOG_DURABLE:
      return check_durable (c, e);
    case OPLOG_FLUSH_ISSUE:
      return 0;
    case OPLOG_FLUSH_REPLY:
      return check_flush_reply (c, e);
    case OPLOG_CLOCK:
      c->clock_known = true;
      c->start_ns = e->start_ns;
      return 0;
    }
  return -EINVAL;
}

/* The image a power cut after everything would leave, checked whole, a
 * chunk at a time. */
static int
check_final (struct check *c)
{
  const uint64_t chunk = 1024 * 1024;
  int r = image_until (c, UINT64_MAX);

  for (uint64_t off = 0; r >= 0 && off < c->rp.size; off += chunk)
    {
      uint64_t len = c->rp.size - off < chunk ? c->rp.size - off : chunk;

      r = check_range (c, MOMENT_FILL, off, len);
      if (r > 0)
        c->final_bad++;
      c->final_sectors += len / SECTOR;
    }
  return r < 0 ? r : 0;
}

static void
print_figures (const struct check *c)
{
  printf ("blkcache-torture: power-cut check: %" PRIu64
          " changes of the durable image, %" PRIu64 " syncs (%" PRIu64
          " failed)\n",
          c->rec.changes, c->rec.syncs, c->rec.failed_syncs);
  printf ("FUA writes checked: %" PRIu64 " (%" PRIu64 " sectors), %" PRIu64
          " lost\n",
          c->fua_checked, c->fua_sectors, c->fua_bad);
  printf ("flushes checked: %" PRIu64 ", covering %" PRIu64 " writes (%" PRIu64
          " sectors), %" PRIu64 " writes lost\n",
          c->flushes, c->flush_writes, c->flush_sectors, c->flush_bad);
  printf ("final image: %" PRIu64 " sectors, %" PRIu64 " chunks lost\n",
          c->final_sectors, c->final_bad);
  printf ("violations: %" PRIu64 " (%" PRIu64 " bad bytes, %" PRIu64
          " checked sectors holding no logged write)\n",
          c->fua_bad + c->flush_bad + c->final_bad, c->bad_bytes,
          c->unknown_sectors);
}

static void
check_free (struct check *c)
{
  replay_free (&c->rp);
  free (c->tags);
  free (c->image);
  free (c->buf);
  free (c->rec.line);
  if (c->rec.fp != NULL)
    fclose (c->rec.fp);
}

int
torture_check_recording (const struct options *opt)
{
  struct check c = { .opt = opt };
  int r = rec_open (&c.rec, opt->recording), status = EXIT_SETUP;

  if (r < 0)
    fprintf (stderr, "blkcache-torture: %s: %s\n", opt->recording,
             r == -EINVAL ? "not a power-cut recording" : strerror (-r));
  if (r == 0)
    {
      c.image = calloc (c.rec.size / SECTOR + 1, sizeof *c.image);
      r = c.image ? replay_file (&c.rp, opt->verify_log, check_event, &c)
                  : -ENOMEM;
    }
  if (r == 0 && !c.clock_known)
    {
      fprintf (stderr, "blkcache-torture: %s: no clock line\n",
               opt->verify_log);
      r = -EINVAL;
    }
  if (r == 0)
    r = check_final (&c);
  if (r == 0)
    {
      print_figures (&c);
      status = c.fua_bad + c.flush_bad + c.final_bad > 0 ? EXIT_STALE : EXIT_OK;
    }
  else if (r != -EINVAL)
    fprintf (stderr, "blkcache-torture: power-cut check: %s\n", strerror (-r));
  check_free (&c);
  return status;
}
