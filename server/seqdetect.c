/* blkcache: the sequential cutoff's stream detector.  See seqdetect.h.
 *
 * Layout: a fixed array of SEQDETECT_STREAMS entries; an entry with no
 * bytes is free.  Recency is a counter stamped on an entry each time a
 * read touches it; the entry with the lowest stamp is replaced.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "seqdetect.h"

struct stream
{
  uint64_t lo, hi; /* bytes [lo, hi) were read contiguously */
  uint64_t bytes;  /* bytes read into the stream (0: a free entry) */
  uint64_t used;   /* the detector's clock when last touched */
};

struct seqdetect
{
  pthread_mutex_t lock;
  uint64_t cutoff;
  uint64_t clock;
  struct stream streams[SEQDETECT_STREAMS];
};

struct seqdetect *
seqdetect_new (uint64_t cutoff)
{
  struct seqdetect *sd = calloc (1, sizeof *sd);

  if (sd == NULL)
    return NULL;
  pthread_mutex_init (&sd->lock, NULL);
  sd->cutoff = cutoff;
  return sd;
}

void
seqdetect_free (struct seqdetect *sd)
{
  if (sd == NULL)
    return;
  pthread_mutex_destroy (&sd->lock);
  free (sd);
}

/* The stream that [offset, end) continues, forwards or backwards, or
 * NULL. */
static struct stream *
find_neighbour (struct seqdetect *sd, uint64_t offset, uint64_t end)
{
  for (size_t i = 0; i < SEQDETECT_STREAMS; i++)
    {
      struct stream *s = &sd->streams[i];
      if (s->bytes && (s->hi == offset || s->lo == end))
        return s;
    }
  return NULL;
}

/* Merge into S every other stream that touches it. */
static void
merge_touching (struct seqdetect *sd, struct stream *s)
{
  for (size_t i = 0; i < SEQDETECT_STREAMS; i++)
    {
      struct stream *t = &sd->streams[i];
      if (t == s || t->bytes == 0 || (t->lo != s->hi && t->hi != s->lo))
        continue;
      if (t->lo == s->hi)
        s->hi = t->hi;
      else
        s->lo = t->lo;
      s->bytes += t->bytes;
      *t = (struct stream){ 0 };
    }
}

static struct stream *
least_recent (struct seqdetect *sd)
{
  struct stream *victim = &sd->streams[0];

  for (size_t i = 1; i < SEQDETECT_STREAMS; i++)
    if (sd->streams[i].used < victim->used)
      victim = &sd->streams[i];
  return victim;
}

bool
seqdetect_read (struct seqdetect *sd, uint64_t offset, uint64_t count)
{
  uint64_t end = offset + count;
  struct stream *s;
  bool sequential;

  pthread_mutex_lock (&sd->lock);
  s = find_neighbour (sd, offset, end);
  if (s)
    {
      if (s->hi == offset)
        s->hi = end;
      else
        s->lo = offset;
      s->bytes += count;
      merge_touching (sd, s);
    }
  else
    {
      s = least_recent (sd);
      *s = (struct stream){ .lo = offset, .hi = end, .bytes = count };
    }
  s->used = ++sd->clock;
  sequential = s->bytes > sd->cutoff;
  pthread_mutex_unlock (&sd->lock);
  return sequential;
}
