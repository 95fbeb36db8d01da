/* blkcache-torture: the durability log.
 *
 * A text file, one event a line, written as the run goes and read back by
 * --verify-log after the server was killed and restarted:
 *
 *   blkcache-torture-log 1          header
 *   region SIZE                     the tracked region [0, SIZE)
 *   I ID CONN KIND OFFSET LENGTH STAMP TIME
 *                                   write ID issued (KIND: write, fua,
 *                                   zero, zero-fua, trim)
 *   R ID STAMP ERRNO TIME           its reply (ERRNO 0: success)
 *   D ID                            write ID is durable
 *   FI CONN STAMP TIME              a flush issued
 *   FR CONN STAMP ERRNO TIME        its reply
 *   clock NS                        the run started at CLOCK_MONOTONIC NS
 *
 * STAMP is the run's logical clock, TIME seconds since the run started
 * (to the nanosecond, so that a power-cut check can compare it with the
 * recorder's CLOCK_MONOTONIC times; the initial fill, before the start,
 * has TIME 0).  A D line follows the R or FR line of the reply that made
 * the write durable.
 * Write 0 is the initial fill of the whole region.  The writer buffers
 * lines; the torture loop calls oplog_sync once per event-loop iteration
 * and at exit.  The log is complete when the torture process exits on its
 * own, as it does when the server dies; if the torture process itself is
 * killed, its last requests may be missing.
 */
#ifndef BLKCACHE_OPLOG_H
#define BLKCACHE_OPLOG_H

#include <stdint.h>
#include <stdio.h>

#include "workload.h"

enum oplog_type
{
  OPLOG_REGION,
  OPLOG_ISSUE,
  OPLOG_REPLY,
  OPLOG_DURABLE,
  OPLOG_FLUSH_ISSUE,
  OPLOG_FLUSH_REPLY,
  OPLOG_CLOCK,
};

struct oplog_event
{
  enum oplog_type type;
  uint64_t id;             /* ISSUE, REPLY, DURABLE */
  unsigned conn;           /* ISSUE, FLUSH_* */
  enum op_kind kind;       /* ISSUE */
  uint64_t offset, length; /* ISSUE; REGION: length is the size */
  uint64_t stamp;          /* ISSUE, REPLY, FLUSH_* */
  int err;                 /* REPLY, FLUSH_REPLY */
  double time;             /* ISSUE, REPLY, FLUSH_* */
  uint64_t start_ns;       /* CLOCK */
};

struct oplog;

/* Create PATH (truncating it) and write the header.  Returns NULL with
 * errno set on failure. */
struct oplog *oplog_create (const char *path);

/* Append event E. */
void oplog_write (struct oplog *l, const struct oplog_event *e);

/* Hand the buffered lines to the kernel.  Returns 0 or -errno. */
int oplog_sync (struct oplog *l);

/* Sync and close.  Returns 0, or -errno if any write failed. */
int oplog_close (struct oplog *l);

/* Open PATH for reading and check the header.  Returns NULL with errno
 * set (EINVAL: not a log). */
FILE *oplog_open (const char *path);

/* Read the next event from FP into *E.  Returns 1, 0 at the end, or
 * -EINVAL for a malformed line (its number in *LINE). */
int oplog_read (FILE *fp, struct oplog_event *e, unsigned long *line);

#endif /* BLKCACHE_OPLOG_H */
