/* blkcache: prewarm.  See prewarm.h.
 *
 * The thread sleeps on a condition variable (CLOCK_MONOTONIC), so that
 * prewarm_free wakes it at once from a yield or a rate-limit wait.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hotset.h"
#include "prewarm.h"

#define NS_PER_SECOND 1000000000ULL
/* While clients send requests, wait this long before a block ... */
#define YIELD_NS (10 * 1000000ULL)
/* ... at most this many times in a row. */
#define YIELD_MAX 10

struct prewarm
{
  struct prewarm_config cfg;
  char *path;
  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stopping; /* lock */
  _Atomic uint64_t done, total;
};

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * NS_PER_SECOND + ts.tv_nsec;
}

/* Sleep until monotonic time UNTIL (ns) or until stopped; returns whether
 * stopped. */
static bool
sleep_until (struct prewarm *p, uint64_t until)
{
  struct timespec ts = { .tv_sec = until / NS_PER_SECOND,
                         .tv_nsec = until % NS_PER_SECOND };
  bool stopping;

  pthread_mutex_lock (&p->lock);
  while (!p->stopping && now_ns () < until)
    pthread_cond_timedwait (&p->cond, &p->lock, &ts);
  stopping = p->stopping;
  pthread_mutex_unlock (&p->lock);
  return stopping;
}

/* Wait for the turn of the next block: while clients keep sending
 * requests (up to YIELD_MAX waits), then until the rate allows BYTES
 * bytes since START.  Returns whether stopped. */
static bool
wait_turn (struct prewarm *p, uint64_t *requests, uint64_t start,
           uint64_t bytes)
{
  for (int i = 0; i < YIELD_MAX; i++)
    {
      uint64_t seen = engine_requests (p->cfg.engine);
      if (seen == *requests)
        break;
      *requests = seen;
      if (sleep_until (p, now_ns () + YIELD_NS))
        return true;
    }
  if (p->cfg.rate == 0)
    return sleep_until (p, 0);
  return sleep_until (p, start
                             + (uint64_t)((double)bytes * NS_PER_SECOND
                                          / p->cfg.rate));
}

/* Read the hot set; NULL (and a message) for a cold start. */
static uint64_t *
load (struct prewarm *p, uint32_t *block_size, size_t *n)
{
  struct hotset_identity id;
  uint64_t *blocks;
  int r = hotset_identity_of (engine_store (p->cfg.engine), &id);

  if (r == 0)
    r = hotset_read (p->path, &id, block_size, &blocks, n);
  if (r == 0)
    return blocks;
  if (r == -ENOENT)
    log_printf (p->cfg.log, LOG_LEVEL_DEBUG,
                "hotset: %s does not exist yet; starting cold", p->path);
  else
    log_printf (p->cfg.log, LOG_LEVEL_ERROR,
                "warning: hotset: %s %s; ignoring it, starting cold",
                p->path,
                r == -ESTALE    ? "was saved for another disk or disk size"
                : r == -EBADMSG ? "is not a valid hot set file"
                                : strerror (-r));
  return NULL;
}

static void *
prewarm_main (void *arg)
{
  struct prewarm *p = arg;
  struct engine_stats es;
  uint32_t bs;
  size_t n, total;
  uint64_t *blocks = load (p, &bs, &n);
  uint64_t start = now_ns (), requests = engine_requests (p->cfg.engine);

  if (blocks == NULL)
    return NULL;
  engine_get_stats (p->cfg.engine, &es);
  total = n < es.cache_size / bs ? n : es.cache_size / bs;
  atomic_store (&p->total, total);
  for (size_t i = 0; i < total; i++)
    {
      if (wait_turn (p, &requests, start, (uint64_t)i * bs))
        break;
      int r = engine_prewarm (p->cfg.engine, bs, blocks[i] * bs);
      if (r < 0)
        {
          log_printf (p->cfg.log, LOG_LEVEL_ERROR,
                      "warning: hotset: prewarm stops at block %" PRIu64
                      ": %s", blocks[i], strerror (-r));
          break;
        }
      atomic_fetch_add (&p->done, 1);
    }
  log_printf (p->cfg.log, LOG_LEVEL_DEBUG,
              "hotset: prewarmed %" PRIu64 " of %zu blocks in %" PRIu64
              " ms", atomic_load (&p->done), total,
              (now_ns () - start) / 1000000);
  free (blocks);
  return NULL;
}

struct prewarm *
prewarm_new (const struct prewarm_config *cfg)
{
  struct prewarm *p = calloc (1, sizeof *p);
  pthread_condattr_t attr;

  if (p == NULL || (p->path = strdup (cfg->path)) == NULL)
    {
      free (p);
      errno = ENOMEM;
      return NULL;
    }
  p->cfg = *cfg;
  p->cfg.path = p->path;
  pthread_mutex_init (&p->lock, NULL);
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&p->cond, &attr);
  pthread_condattr_destroy (&attr);
  return p;
}

/* The thread runs with every signal blocked: they are nbdkit's. */
int
prewarm_start (struct prewarm *p)
{
  sigset_t all, old;
  int r;

  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  r = pthread_create (&p->thread, NULL, prewarm_main, p);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (r != 0)
    return -r;
  p->started = true;
  return 0;
}

void
prewarm_free (struct prewarm *p)
{
  if (p == NULL)
    return;
  if (p->started)
    {
      pthread_mutex_lock (&p->lock);
      p->stopping = true;
      pthread_cond_signal (&p->cond);
      pthread_mutex_unlock (&p->lock);
      pthread_join (p->thread, NULL);
    }
  pthread_cond_destroy (&p->cond);
  pthread_mutex_destroy (&p->lock);
  free (p->path);
  free (p);
}

void
prewarm_progress (struct prewarm *p, uint64_t *done, uint64_t *total)
{
  *done = atomic_load (&p->done);
  *total = atomic_load (&p->total);
}
