/* blkcache: the pacer of background writeback.
 *
 * Background writeback (dirty-expire, dirty-background) competes with the
 * clients for the disk.  The pacer bounds it two ways:
 *
 * * a token bucket: at most RATE bytes a second (writeback-rate), with a
 *   burst of a tenth of a second's worth.  The writer waits until the
 *   bucket is not in debt, writes a step of at most pacer_step_bytes(),
 *   and then charges what it wrote, so over any interval of T seconds it
 *   writes at most RATE * (T + 0.1) bytes plus one step;
 * * yielding: while client requests are in flight (counted by
 *   pacer_request_begin and _end around each request), the writer waits,
 *   polling every millisecond, for up to PACER_YIELD_MAX_NS before each
 *   step, so that a disk that clients keep busy still sees writeback make
 *   progress.
 *
 * Flushes, the dirty limit's writers and eviction never ask the pacer:
 * only background writeback is paced.
 *
 * Every function is thread-safe.  pacer_request_begin and _end are one
 * relaxed atomic add each, on a cache line of their own.
 */
#ifndef BLKCACHE_PACER_H
#define BLKCACHE_PACER_H

#include <stdbool.h>
#include <stdint.h>

/* The longest a step waits for client requests to end. */
#define PACER_YIELD_MAX_NS 10000000ULL
/* How often a waiting writer looks again. */
#define PACER_POLL_NS 1000000ULL

struct pacer;

/* A pacer allowing RATE bytes a second, 0 for unlimited.  Returns NULL
 * with errno set on failure. */
struct pacer *pacer_new (uint64_t rate);

void pacer_free (struct pacer *p);

/* Change the rate (0: unlimited); the bucket starts full again. */
void pacer_set_rate (struct pacer *p, uint64_t rate);

uint64_t pacer_rate (struct pacer *p);

/* The most a writer should write in one step: the burst, RATE / 10 bytes
 * (UINT64_MAX when unlimited). */
uint64_t pacer_step_bytes (struct pacer *p);

/* The bucket at time NOW (cache_clock() nanoseconds): how many
 * nanoseconds a writer must wait before its next step; 0 when it may go
 * (always, when unlimited). */
uint64_t pacer_delay (struct pacer *p, uint64_t now);

/* Take BYTES, just written at time NOW, out of the bucket (it may go
 * into debt, which pacer_delay makes the next step wait for). */
void pacer_charge (struct pacer *p, uint64_t now, uint64_t bytes);

/* Count a client request in flight, and its end. */
void pacer_request_begin (struct pacer *p);
void pacer_request_end (struct pacer *p);

/* Client requests in flight now. */
uint64_t pacer_requests_in_flight (struct pacer *p);

/* Wait until the writer may take its next step: with YIELD, first while
 * client requests are in flight (at most PACER_YIELD_MAX_NS), then for
 * the bucket.  Gives up at DEADLINE (cache_clock() nanoseconds) if it
 * still has to wait then.  Returns 0 to go on, or -ETIMEDOUT.  Counts in the
 * pacer's statistics whether it yielded and whether it waited for the
 * rate. */
int pacer_wait (struct pacer *p, bool yield, uint64_t deadline);

struct pacer_stats
{
  uint64_t rate;      /* bytes a second, 0: unlimited */
  uint64_t yields;    /* steps that waited for client requests */
  uint64_t throttles; /* steps that waited for the rate */
};

void pacer_get_stats (struct pacer *p, struct pacer_stats *stats);

#endif /* BLKCACHE_PACER_H */
