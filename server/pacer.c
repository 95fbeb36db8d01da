/* blkcache: the pacer of background writeback.  See pacer.h.
 *
 * Layout.  The bucket (RATE, TOKENS, LAST) is under a mutex that only the
 * background writer and the control socket take, a few times per step.
 * TOKENS is signed: a step charges what it wrote after writing it, which
 * may take the bucket below zero, and the next step waits until time has
 * paid the debt back.  It refills at RATE bytes a second up to the burst,
 * RATE / 10.  The in-flight count of client requests is an atomic on a
 * cache line of its own, written by every request and read by the writer
 * while it yields.  O(1) everything.
 */
#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "cache.h"
#include "pacer.h"

#define NS_PER_SECOND 1000000000ULL

struct pacer
{
  _Alignas(64) _Atomic uint64_t in_flight;
  _Alignas(64) pthread_mutex_t lock;
  uint64_t rate;  /* bytes a second; 0: unlimited */
  int64_t tokens; /* bytes that may be written now; < 0: in debt */
  uint64_t last;  /* when TOKENS was last brought up to date */
  _Atomic uint64_t yields, throttles;
};

static uint64_t
burst (uint64_t rate)
{
  uint64_t b = rate / 10;

  return b > 0 ? b : 1;
}

/* Bring the bucket up to date at NOW.  Under the lock.  (128-bit
 * arithmetic: RATE times nanoseconds overflows 64 bits within seconds.) */
static void
refill (struct pacer *p, uint64_t now)
{
  __int128 tokens;

  if (now <= p->last)
    return;
  tokens = p->tokens
           + (__int128)((unsigned __int128)p->rate * (now - p->last)
                        / NS_PER_SECOND);
  p->tokens
      = tokens > burst (p->rate) ? (int64_t)burst (p->rate) : (int64_t)tokens;
  p->last = now;
}

struct pacer *
pacer_new (uint64_t rate)
{
  struct pacer *p = aligned_alloc (_Alignof(struct pacer), sizeof *p);
  int r;

  if (p == NULL)
    return NULL;
  memset (p, 0, sizeof *p);
  r = pthread_mutex_init (&p->lock, NULL);
  if (r != 0)
    {
      free (p);
      errno = r;
      return NULL;
    }
  pacer_set_rate (p, rate);
  return p;
}

void
pacer_free (struct pacer *p)
{
  if (p == NULL)
    return;
  pthread_mutex_destroy (&p->lock);
  free (p);
}

void
pacer_set_rate (struct pacer *p, uint64_t rate)
{
  pthread_mutex_lock (&p->lock);
  p->rate = rate;
  p->tokens = burst (rate);
  p->last = cache_clock ();
  pthread_mutex_unlock (&p->lock);
}

uint64_t
pacer_rate (struct pacer *p)
{
  uint64_t rate;

  pthread_mutex_lock (&p->lock);
  rate = p->rate;
  pthread_mutex_unlock (&p->lock);
  return rate;
}

uint64_t
pacer_step_bytes (struct pacer *p)
{
  uint64_t rate = pacer_rate (p);

  return rate == 0 ? UINT64_MAX : burst (rate);
}

uint64_t
pacer_delay (struct pacer *p, uint64_t now)
{
  uint64_t delay = 0;

  pthread_mutex_lock (&p->lock);
  if (p->rate != 0)
    {
      refill (p, now);
      if (p->tokens < 0)
        delay = (uint64_t)((unsigned __int128)(uint64_t)-p->tokens
                           * NS_PER_SECOND / p->rate)
                + 1;
    }
  pthread_mutex_unlock (&p->lock);
  return delay;
}

void
pacer_charge (struct pacer *p, uint64_t now, uint64_t bytes)
{
  pthread_mutex_lock (&p->lock);
  if (p->rate != 0)
    {
      refill (p, now);
      __int128 tokens = (__int128)p->tokens - bytes;
      p->tokens = tokens < INT64_MIN ? INT64_MIN : (int64_t)tokens;
    }
  pthread_mutex_unlock (&p->lock);
}

void
pacer_request_begin (struct pacer *p)
{
  atomic_fetch_add_explicit (&p->in_flight, 1, memory_order_relaxed);
}

void
pacer_request_end (struct pacer *p)
{
  atomic_fetch_sub_explicit (&p->in_flight, 1, memory_order_relaxed);
}

uint64_t
pacer_requests_in_flight (struct pacer *p)
{
  return atomic_load_explicit (&p->in_flight, memory_order_relaxed);
}

/* Sleep NS nanoseconds, or less if interrupted: the caller looks again. */
static void
nap (uint64_t ns)
{
  struct timespec ts
      = { .tv_sec = ns / NS_PER_SECOND, .tv_nsec = ns % NS_PER_SECOND };

  /* EINTR: the caller's loop checks the clock and sleeps again. */
  nanosleep (&ts, NULL);
}

static uint64_t
min_u64 (uint64_t a, uint64_t b)
{
  return a < b ? a : b;
}

int
pacer_wait (struct pacer *p, bool yield, uint64_t deadline)
{
  uint64_t now = cache_clock ();
  uint64_t yield_until = now + PACER_YIELD_MAX_NS;
  bool yielded = false, throttled = false;
  int r = 0;

  for (;;)
    {
      bool busy
          = yield && now < yield_until && pacer_requests_in_flight (p) > 0;
      uint64_t delay = busy ? 0 : pacer_delay (p, now);
      if (!busy && delay == 0)
        break;
      if (now >= deadline)
        {
          r = -ETIMEDOUT;
          break;
        }
      if (busy)
        {
          yielded = true;
          nap (min_u64 (PACER_POLL_NS, deadline - now));
        }
      else
        {
          /* Look again at least every 10 polls: the rate may change
           * meanwhile (set writeback-rate). */
          throttled = true;
          nap (min_u64 (min_u64 (delay, PACER_POLL_NS * 10), deadline - now));
        }
      now = cache_clock ();
    }
  if (yielded)
    atomic_fetch_add (&p->yields, 1);
  if (throttled)
    atomic_fetch_add (&p->throttles, 1);
  return r;
}

void
pacer_get_stats (struct pacer *p, struct pacer_stats *st)
{
  st->rate = pacer_rate (p);
  st->yields = atomic_load (&p->yields);
  st->throttles = atomic_load (&p->throttles);
}
