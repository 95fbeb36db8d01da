/* blkcache-torture: the oracle that decides whether a read is stale.
 *
 * The oracle keeps, for every byte of the tracked region [0, size), the
 * writes whose value that byte may still legally hold, and checks reads
 * and block-status replies against them with the regular-register rule:
 *
 *   a read R may return the value of a write W to a byte only if W was
 *   issued before R's reply, and no other write W2 to that byte was issued
 *   after W's reply and replied to (successfully) before R was issued.
 *
 * Writes that overlap in time may land in either order.  A data write
 * gives every byte the value pattern_byte (id, offset); a write-zeroes
 * gives 0; a trim allows any value while it is a candidate.  A write that
 * failed, or has not replied yet, is a candidate but overwrites nothing.
 *
 * Time is a logical clock of "stamps" chosen by the caller: every issue and
 * every reply takes the next stamp, so stamps order all events.
 *
 * For the crash check, the caller passes "made durable" as a write's
 * effectiveness and checks with issue and reply stamps of ORACLE_NEVER;
 * the same rule then reads "no durable write was issued after W's reply".
 *
 * Candidates that an effective write overwrote are pruned once no read
 * that could still return them is in flight: callers pass the issue stamp
 * of their oldest in-flight read (the low watermark; ORACLE_NEVER when
 * none), and the oracle never prunes what a read issued at or after it
 * could see.  Memory is therefore proportional to the writes that are
 * still candidates, not to the writes ever made.
 *
 * Single-threaded: callers serialise every call.
 */
#ifndef BLKCACHE_ORACLE_H
#define BLKCACHE_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A stamp later than every real one: "not replied yet" or "forever". */
#define ORACLE_NEVER UINT64_MAX

/* How many candidates a failure report describes at most. */
#define ORACLE_REPORT_MAX 8

enum oracle_kind
{
  ORACLE_DATA, /* bytes are pattern_byte (id, offset) */
  ORACLE_ZERO, /* bytes are 0 */
  ORACLE_TRIM, /* bytes are unspecified */
};

/* One write, write-zeroes or trim.  The oracle owns it; the caller holds
 * the reference oracle_begin_write returns and may fill in the fields
 * marked (caller) for reports. */
struct oracle_write
{
  uint64_t id;
  enum oracle_kind kind;
  uint64_t offset, length;
  uint64_t issue; /* stamp when issued */
  uint64_t reply; /* stamp when replied, ORACLE_NEVER until then */
  bool effective; /* replied with success (crash check: made durable) */
  unsigned conn;  /* (caller) connection that issued it */
  bool fua;       /* (caller) sent with FUA */
  double issue_time, reply_time; /* (caller) seconds, for reports */
  unsigned refs;
};

/* One candidate of a failed byte, as the report shows it. */
struct oracle_candidate
{
  struct oracle_write write; /* a copy */
  uint8_t expected;          /* the value it gives (ORACLE_DATA, _ZERO) */
  bool allowed;              /* the rule allowed it for this read */
  bool issued_late;          /* issued after the read replied */
  uint64_t overwritten_by;   /* id of a write that definitely overwrote it
                                before the read was issued */
  bool overwritten;
};

/* What a check found: the number of bad bytes and the first one. */
struct oracle_failure
{
  uint64_t bad_bytes;
  uint64_t first_bad, last_bad; /* offsets of the first and last bad byte */
  uint8_t value;                /* the value read at first_bad */
  size_t ncandidates;
  struct oracle_candidate candidates[ORACLE_REPORT_MAX];
};

struct oracle;

/* Allocate an oracle for [0, SIZE) with no candidates at all: the caller
 * starts by recording the write that gives the initial content.  Returns
 * NULL with errno set on failure. */
struct oracle *oracle_new (uint64_t size);

/* Free the oracle and every write only it still references. */
void oracle_free (struct oracle *o);

/* Record that write ID of KIND was issued at stamp ISSUE for
 * [OFFSET, OFFSET + LENGTH), inside the region.  Returns a reference the
 * caller releases with oracle_put_write, or NULL with errno set. */
struct oracle_write *oracle_begin_write (struct oracle *o, uint64_t id,
                                         enum oracle_kind kind, uint64_t offset,
                                         uint64_t length, uint64_t issue);

/* Record W's reply at stamp REPLY (it succeeded when EFFECTIVE), then
 * prune the candidates of its range with LOW_WATERMARK.  Returns 0 or
 * -ENOMEM. */
int oracle_end_write (struct oracle *o, struct oracle_write *w, uint64_t reply,
                      bool effective, uint64_t low_watermark);

/* Mark W, which has replied, effective (the crash check calls this when
 * W is made durable) and prune its range.  Returns 0 or -ENOMEM. */
int oracle_settle (struct oracle *o, struct oracle_write *w,
                   uint64_t low_watermark);

/* Release a reference from oracle_begin_write. */
void oracle_put_write (struct oracle_write *w);

/* Check that BUF, read from [OFFSET, OFFSET + LEN) by a read issued at
 * stamp ISSUE and replied at REPLY, holds an allowed value at every byte.
 * Returns the number of bad bytes (0: the read is fine) and describes them
 * in *F when F is not NULL, or -ENOMEM. */
int64_t oracle_check_read (struct oracle *o, uint64_t offset, const void *buf,
                           size_t len, uint64_t issue, uint64_t reply,
                           struct oracle_failure *f);

/* Check a block-status claim that [OFFSET, OFFSET + LEN) reads as zeroes:
 * every byte needs an allowed candidate that is a write-zeroes or a trim.
 * Same returns as oracle_check_read; F's value is 0. */
int64_t oracle_check_zero (struct oracle *o, uint64_t offset, uint64_t len,
                           uint64_t issue, uint64_t reply,
                           struct oracle_failure *f);

/* Prune every cell with LOW_WATERMARK.  Returns 0 or -ENOMEM. */
int oracle_prune (struct oracle *o, uint64_t low_watermark);

/* The number of (write, byte range) entries held: a measure of memory. */
size_t oracle_entries (const struct oracle *o);

#endif /* BLKCACHE_ORACLE_H */
