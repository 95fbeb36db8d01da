/* blkcache: the sequential cutoff's stream detector.
 *
 * A table of the SEQDETECT_STREAMS most recently used read streams of the
 * whole process (all connections share it: a stream is a byte range read
 * contiguously, whoever reads it).  Each entry is a range [lo, hi) and the
 * bytes read into it.  A read that starts where a stream ends (or ends
 * where one starts: nbdkit's request threads may run two neighbouring
 * requests of a client's queue out of order) extends that stream, and two
 * streams that come to touch are merged.  A read that continues no stream
 * replaces the least recently used entry.  A read whose stream, with it,
 * holds more than the cutoff is sequential: the engine serves it from the
 * disk without filling the cache (bcache's sequential_cutoff, over a table
 * of recent streams rather than per task).
 *
 * Only exact continuations count, so random reads almost never join a
 * stream, whatever the size of the disk.  The engine asks only about
 * reads that miss the cache (a read served whole from the cache is not
 * counted), so cache hits never take the detector's lock.  One mutex,
 * held for a scan of the table: O(SEQDETECT_STREAMS) a read that misses.
 * Thread-safe.
 */
#ifndef BLKCACHE_SEQDETECT_H
#define BLKCACHE_SEQDETECT_H

#include <stdbool.h>
#include <stdint.h>

/* Streams remembered at once. */
#define SEQDETECT_STREAMS 32

struct seqdetect;

/* A detector with cutoff CUTOFF bytes (more than 0).  Returns NULL with
 * errno ENOMEM. */
struct seqdetect *seqdetect_new (uint64_t cutoff);

void seqdetect_free (struct seqdetect *sd);

/* Record a read of COUNT bytes (more than 0) at OFFSET and say whether it
 * belongs to a stream longer than the cutoff. */
bool seqdetect_read (struct seqdetect *sd, uint64_t offset, uint64_t count);

#endif /* BLKCACHE_SEQDETECT_H */
