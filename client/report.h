/* blkcache-torture: describing a failed check.
 *
 * A stale or corrupt read, or a false zero claim of block status, is
 * printed on stderr as a few lines: what was checked, the bad bytes, and
 * the candidate writes of the first bad byte with their connection, their
 * issue and reply times, the value each allows and why it was or was not
 * allowed.  Times are seconds since the start of the run.
 */
#ifndef BLKCACHE_REPORT_H
#define BLKCACHE_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "oracle.h"

/* What was checked. */
struct checked
{
  const char *what; /* "read", "block status", "final read-back" */
  bool zero_claim;  /* a block-status zero claim, not a read */
  int conn;         /* connection, -1 for none */
  uint64_t offset, length;
  double issue_time, reply_time; /* negative: not timed */
};

/* Print the failure F of check C.  MATCH, when not NULL, is an earlier
 * write whose pattern equals the value read at the first bad byte. */
void report_failure (const struct checked *c, const struct oracle_failure *f,
                     const struct oracle_write *match);

/* A short name of W's kind: "write", "fua write", "zero", "fua zero",
 * "trim". */
const char *report_kind (const struct oracle_write *w);

#endif /* BLKCACHE_REPORT_H */
