/* blkcache-torture: describing a failed check.
 *
 * One function per part of the report; all output goes to stderr with the
 * program's name in front of every line so that it stays greppable in test
 * logs.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>

#include "report.h"

#define PFX "blkcache-torture: "

const char *
report_kind (const struct oracle_write *w)
{
  switch (w->kind)
    {
    case ORACLE_DATA:
      return w->fua ? "fua write" : "write";
    case ORACLE_ZERO:
      return w->fua ? "fua zero" : "zero";
    case ORACLE_TRIM:
      return "trim";
    }
  return "?";
}

/* " issued at T s, replied at T s" / "not replied" / "failed at T s". */
static void
print_times (const struct oracle_write *w)
{
  fprintf (stderr, "issued at %.6f s, ", w->issue_time);
  if (w->reply == ORACLE_NEVER)
    fprintf (stderr, "not replied");
  else if (!w->effective)
    fprintf (stderr, "replied at %.6f s (failed or not durable)",
             w->reply_time);
  else
    fprintf (stderr, "replied at %.6f s", w->reply_time);
}

static void
print_write (const struct oracle_write *w)
{
  fprintf (stderr, "%s #%" PRIu64, report_kind (w), w->id);
  if (w->id == 0)
    fprintf (stderr, " (initial fill)");
  else
    fprintf (stderr, " on connection %u, [%" PRIu64 ", +%" PRIu64 ")", w->conn,
             w->offset, w->length);
  fprintf (stderr, ", ");
  print_times (w);
}

static void
print_candidate (const struct oracle_candidate *c)
{
  fprintf (stderr, PFX "    ");
  print_write (&c->write);
  if (c->write.kind == ORACLE_TRIM)
    fprintf (stderr, ": allows any value");
  else
    fprintf (stderr, ": gives 0x%02x", c->expected);
  if (c->allowed)
    fprintf (stderr, ", allowed\n");
  else if (c->issued_late)
    fprintf (stderr, ", but issued after the reply\n");
  else if (c->overwritten)
    fprintf (stderr,
             ", but write #%" PRIu64 " definitely overwrote it"
             " before the issue\n",
             c->overwritten_by);
  else
    fprintf (stderr, ", not allowed\n");
}

static void
print_checked (const struct checked *c)
{
  fprintf (stderr, PFX "%s: %s of [%" PRIu64 ", +%" PRIu64 ")",
           c->zero_claim ? "WRONG ZERO" : "STALE", c->what, c->offset,
           c->length);
  if (c->conn >= 0)
    fprintf (stderr, " on connection %d", c->conn);
  if (c->issue_time >= 0)
    fprintf (stderr, ", issued at %.6f s, replied at %.6f s", c->issue_time,
             c->reply_time);
  fprintf (stderr, "\n");
}

void
report_failure (const struct checked *c, const struct oracle_failure *f,
                const struct oracle_write *match)
{
  print_checked (c);
  fprintf (stderr,
           PFX "  %" PRIu64 " bad bytes in [%" PRIu64 ", %" PRIu64 "]; first"
               " at offset %" PRIu64 " (0x%" PRIx64 "): ",
           f->bad_bytes, f->first_bad, f->last_bad, f->first_bad, f->first_bad);
  if (c->zero_claim)
    fprintf (stderr, "reported as zero\n");
  else
    fprintf (stderr, "read 0x%02x\n", f->value);
  fprintf (stderr, PFX "  candidates for that byte:\n");
  for (size_t i = 0; i < f->ncandidates; i++)
    print_candidate (&f->candidates[i]);
  if (match == NULL)
    return;
  fprintf (stderr, PFX "  the value read matches ");
  print_write (match);
  fprintf (stderr, "\n");
}
