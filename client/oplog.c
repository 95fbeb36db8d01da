/* blkcache-torture: the durability log.
 *
 * Writing goes through a stdio stream with a large buffer; reading parses
 * one line at a time with sscanf, keyed by the line's first word.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "oplog.h"

#define OPLOG_MAGIC "blkcache-torture-log 1"

struct oplog
{
  FILE *fp;
};

struct oplog *
oplog_create (const char *path)
{
  struct oplog *l = calloc (1, sizeof *l);

  if (l == NULL)
    return NULL;
  l->fp = fopen (path, "w");
  if (l->fp == NULL)
    {
      free (l);
      return NULL;
    }
  fprintf (l->fp, "%s\n", OPLOG_MAGIC);
  return l;
}

void
oplog_write (struct oplog *l, const struct oplog_event *e)
{
  switch (e->type)
    {
    case OPLOG_REGION:
      fprintf (l->fp, "region %" PRIu64 "\n", e->length);
      break;
    case OPLOG_ISSUE:
      fprintf (l->fp,
               "I %" PRIu64 " %u %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %.9f\n",
               e->id, e->conn, op_name (e->kind), e->offset, e->length,
               e->stamp, e->time);
      break;
    case OPLOG_REPLY:
      fprintf (l->fp, "R %" PRIu64 " %" PRIu64 " %d %.9f\n", e->id, e->stamp,
               e->err, e->time);
      break;
    case OPLOG_DURABLE:
      fprintf (l->fp, "D %" PRIu64 "\n", e->id);
      break;
    case OPLOG_FLUSH_ISSUE:
      fprintf (l->fp, "FI %u %" PRIu64 " %.9f\n", e->conn, e->stamp, e->time);
      break;
    case OPLOG_FLUSH_REPLY:
      fprintf (l->fp, "FR %u %" PRIu64 " %d %.9f\n", e->conn, e->stamp, e->err,
               e->time);
      break;
    case OPLOG_CLOCK:
      fprintf (l->fp, "clock %" PRIu64 "\n", e->start_ns);
      break;
    }
}

int
oplog_sync (struct oplog *l)
{
  return fflush (l->fp) == 0 ? 0 : -errno;
}

int
oplog_close (struct oplog *l)
{
  int r = oplog_sync (l);

  if (ferror (l->fp) && r == 0)
    r = -EIO;
  if (fclose (l->fp) != 0 && r == 0)
    r = -errno;
  free (l);
  return r;
}

FILE *
oplog_open (const char *path)
{
  char line[64];
  FILE *fp = fopen (path, "r");

  if (fp == NULL)
    return NULL;
  if (fgets (line, sizeof line, fp) == NULL
      || strcmp (line, OPLOG_MAGIC "\n") != 0)
    {
      fclose (fp);
      errno = EINVAL;
      return NULL;
    }
  return fp;
}

static int
parse_issue (const char *line, struct oplog_event *e)
{
  char kind[16];
  int k;

  if (sscanf (
          line, "I %" SCNu64 " %u %15s %" SCNu64 " %" SCNu64 " %" SCNu64 " %lf",
          &e->id, &e->conn, kind, &e->offset, &e->length, &e->stamp, &e->time)
      != 7)
    return -EINVAL;
  k = op_from_name (kind);
  if (k < 0 || !op_is_write (k))
    return -EINVAL;
  e->kind = k;
  e->type = OPLOG_ISSUE;
  return 0;
}

static int
parse_line (const char *line, struct oplog_event *e)
{
  memset (e, 0, sizeof *e);
  if (strncmp (line, "I ", 2) == 0)
    return parse_issue (line, e);
  e->type = OPLOG_REPLY;
  if (sscanf (line, "R %" SCNu64 " %" SCNu64 " %d %lf", &e->id, &e->stamp,
              &e->err, &e->time)
      == 4)
    return 0;
  e->type = OPLOG_DURABLE;
  if (sscanf (line, "D %" SCNu64, &e->id) == 1)
    return 0;
  e->type = OPLOG_FLUSH_ISSUE;
  if (sscanf (line, "FI %u %" SCNu64 " %lf", &e->conn, &e->stamp, &e->time)
      == 3)
    return 0;
  e->type = OPLOG_FLUSH_REPLY;
  if (sscanf (line, "FR %u %" SCNu64 " %d %lf", &e->conn, &e->stamp, &e->err,
              &e->time)
      == 4)
    return 0;
  e->type = OPLOG_CLOCK;
  if (sscanf (line, "clock %" SCNu64, &e->start_ns) == 1)
    return 0;
  e->type = OPLOG_REGION;
  if (sscanf (line, "region %" SCNu64, &e->length) == 1)
    return 0;
  return -EINVAL;
}

int
oplog_read (FILE *fp, struct oplog_event *e, unsigned long *line)
{
  char buf[256];

  if (fgets (buf, sizeof buf, fp) == NULL)
    return 0;
  ++*line;
  if (strchr (buf, '\n') == NULL || parse_line (buf, e) < 0)
    return -EINVAL;
  return 1;
}
