/* blkcache: the ordered-extent queue.
 *
 * An ordered extent records one I/O to the store that is in flight: a
 * direct write, a trim, a zero or a writeback of cached blocks, covering the
 * byte range [start, end] (end inclusive).  The engine adds the extent while
 * it holds the range lock of [start, end], may drop the range lock, does the
 * I/O, and completes the extent.  Anyone who must not race with that I/O
 * (a read miss about to fill the cache, another direct write, a writeback of
 * the same blocks) takes the range lock, looks the range up here, and if an
 * extent overlaps it unlocks, waits for the range and retries.
 *
 * Extents may overlap each other; the queue does not care.  Lookup is
 * O(log n) in the number of extents in flight; completion is O(log n).
 *
 * The queue also offers group commit for FUA writes and flushes
 * (ordered_sync): every completion is stamped, and a caller asks for the
 * extents completed up to a stamp to be made durable; concurrent callers
 * share one sync of the store.
 *
 * Failures.  A failed writeback is reported errseq-style: the queue counts
 * them (ordered_error_seq), and a flush samples the count when it begins
 * and fails if it moved by the time it ends, so every flush that overlapped
 * a failed writeback fails, not only the first to ask.  A failed sync is
 * latched: on Linux a writeback error is reported by fdatasync once, so a
 * later sync that succeeds proves nothing about the data the failed one
 * covered.  Every ordered_sync fails until ordered_clear_sync_error.
 *
 * Lock ordering: the queue's mutex is a leaf, taken only inside these
 * functions.  ordered_complete never sleeps and needs no other lock, so a
 * waiter may hold any lock of its own except the range lock of an extent it
 * waits for (design invariant 9).  ordered_wait_range, ordered_wait_all and
 * ordered_sync sleep.
 */
#ifndef BLKCACHE_ORDERED_H
#define BLKCACHE_ORDERED_H

#include <stdbool.h>
#include <stdint.h>

/* What the I/O of an extent does to the store. */
enum ordered_kind
{
  ORDERED_DIRECT_WRITE,
  ORDERED_TRIM,
  ORDERED_ZERO,
  ORDERED_WRITEBACK,
};

/* A copy of an extent's description, as ordered_lookup reports it. */
struct ordered_info
{
  uint64_t start;
  uint64_t end;
  enum ordered_kind kind;
};

/* Counters, for debug output and tests. */
struct ordered_stats
{
  uint64_t added;          /* extents ever added */
  uint64_t in_flight;      /* extents added and not yet completed */
  uint64_t peak_in_flight; /* highest in_flight seen */
  uint64_t waits;          /* waits that had to sleep on an extent */
  uint64_t syncs;          /* calls of the sync function by ordered_sync */
  uint64_t sync_callers;   /* ordered_sync calls that needed a sync */
  uint64_t sync_errors;    /* syncs that failed */
  uint64_t sync_failed;    /* 1 while a failed sync is latched, else 0 */
};

struct ordered_queue;
struct ordered_extent;

/* Allocate an empty queue.  Returns NULL with errno set on failure. */
struct ordered_queue *ordered_queue_new (void);

/* Free a queue.  No extent may be in flight and no caller may be waiting. */
void ordered_queue_free (struct ordered_queue *q);

/* Record an I/O of KIND on [start, end] as in flight and store its handle
 * in *OEP.  The caller must hold the range lock of [start, end] (which
 * ordered_lookup relies on) and should have checked that no extent
 * overlaps it (the queue does not enforce this).
 * Returns 0, -EINVAL when end < start, or -ENOMEM. */
int ordered_add (struct ordered_queue *q, uint64_t start, uint64_t end,
                 enum ordered_kind kind, struct ordered_extent **oep);

/* Mark OE complete with ERR (0 or a negative errno) and wake everyone
 * waiting for it.  A failed ORDERED_WRITEBACK extent advances the error
 * sequence (ordered_error_seq); other kinds report their error to their
 * own caller.  OE is invalid afterwards.  Takes only the queue's mutex and
 * never sleeps.  Returns the completion stamp of OE, to pass to
 * ordered_sync. */
uint64_t ordered_complete (struct ordered_queue *q, struct ordered_extent *oe,
                           int err);

bool ordered_lookup (struct ordered_queue *q, uint64_t start, uint64_t end,
                     struct ordered_info *info);

/* Sleep until every extent that overlaps [start, end] and was in flight
 * when the call began has completed.  Extents added later are not waited
 * for, so a stream of new I/O cannot starve the caller.  The caller must
 * not hold a range lock overlapping [start, end]: the owner of an extent
 * may take its range lock again before completing it (for instance to drop
 * cached blocks after a failed write). */
void ordered_wait_range (struct ordered_queue *q, uint64_t start, uint64_t end);

/* Sleep until every extent in flight when the call began has completed
 * (the second step of a flush).  The caller must hold no range lock. */
void ordered_wait_all (struct ordered_queue *q);

/* The writeback error sequence: how many ORDERED_WRITEBACK extents have
 * completed with an error so far.  A flush samples it before it looks for
 * dirty blocks and passes the sample to ordered_check_error at its end. */
uint64_t ordered_error_seq (struct ordered_queue *q);

/* 0 if no writeback has failed since SEQ (an ordered_error_seq sample),
 * else the negative errno of the latest that did.  Nothing is consumed:
 * every flush that overlapped a failure hears of it. */
int ordered_check_error (struct ordered_queue *q, uint64_t seq);

/* The stamp of the latest completion: passing it to ordered_sync covers
 * every extent completed so far. */
uint64_t ordered_stamp (struct ordered_queue *q);

/* Group commit.  Return once a call of SYNC (e.g. fdatasync of the store)
 * that started after the completion stamped STAMP has finished: at once if
 * the latest sync did; after it if it is running and started late enough;
 * otherwise after the next sync, which the first such caller runs in its
 * own thread, for all of them, once the running one ends.  Syncs never
 * overlap, so one sync serves every caller that arrives while another runs.
 * Returns 0 or a negative errno:
 *  - the errno of a failed sync that started after STAMP (so covered the
 *    caller's extents), however late the caller arrives and whatever later
 *    syncs did: when the first sync after STAMP failed, the caller fails;
 *    when a later one failed, the failure is spurious, which is allowed;
 *  - -EIO while a failed sync is latched (until ordered_clear_sync_error);
 *    no sync is run then.
 * The caller must hold no range lock: SYNC may wait for I/O. */
int ordered_sync (struct ordered_queue *q, uint64_t stamp,
                  int (*sync) (void *opaque), void *opaque);

/* Whether a failed sync is latched. */
bool ordered_sync_failed (struct ordered_queue *q);

/* Clear a latched sync failure (an administrator's decision, after fixing
 * the disk): later ordered_sync calls run syncs again.  Callers whose
 * extents a failed sync covered still fail.  Returns whether one was
 * latched. */
bool ordered_clear_sync_error (struct ordered_queue *q);

/* Copy the counters into *STATS. */
void ordered_get_stats (struct ordered_queue *q, struct ordered_stats *stats);

#endif /* BLKCACHE_ORDERED_H */
