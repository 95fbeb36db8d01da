/* blkcache: the service thread.  See service.h.
 *
 * Layout.  Two threads.  The loop thread runs ev_run on the service's own
 * loop, with three watchers of its own besides the control socket's: the
 * writeback timer (every 250 ms), an ev_async that stops the loop, and an
 * ev_async the worker sends when a job is done.  The worker thread takes
 * jobs from a FIFO (the "todo" list), runs them (engine calls that may do
 * disk I/O and sleep), and moves each to the "done" list; the loop thread
 * takes the done list and runs the completions.  The loop thread never
 * sleeps on anything but the loop: every engine call it makes itself takes
 * only the cache's short internal locks.
 *
 * Writeback timer: at each tick, unless a writeback job is already queued
 * or running, the loop checks whether a block was dirtied more than
 * dirty-expire seconds ago or dirty bytes exceed dirty-background percent
 * of the cache, and if so queues one writeback job that does both kinds of
 * writeback.  So data dirtied at time t is on its way to the disk by
 * t + dirty-expire + 250 ms, plus the time the jobs queued before it take.
 *
 * Control jobs: the control socket reaches the service only through the
 * struct control_host built here (see service.h for why the dependency
 * goes this way).  A job carries a list of waiters, the clients to answer
 * when it is done: one, or several for a flush others joined while it
 * waited in the queue.  At most SERVICE_JOBS_MAX control jobs wait in the
 * todo list ("queued", counted under the queue mutex).
 *
 * Field ownership: settings, counters and the writeback flag belong to the
 * loop thread (before service_start and after service_stop, to the caller
 * of those); the todo and done lists, the queued count and the stopping
 * flag to the queue mutex, which is a leaf.  Jobs carry the settings they
 * need, so the worker reads nothing the loop thread writes, and the
 * worker never touches a job's waiters.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "control.h"
#include "hotset.h"
#include "metrics.h"
#include "service.h"

#define TICK_SECONDS 0.25
#define NS_PER_SECOND 1000000000ULL

/* A control client waiting for a job. */
struct waiter
{
  control_done_fn done;
  void *client;
  struct waiter *next;
};

/* A job: one of the control socket's kinds, or the timer's writeback. */
struct job
{
  bool writeback; /* the timer's; KIND and WAITERS are unused */
  enum control_job kind;
  uint64_t arg;                /* SET_CACHE_SIZE: the size; SET_CACHE_MODE:
                                * the mode */
  unsigned expire, background; /* writeback: the settings when queued */
  bool expired;                /* writeback: started by dirty-expire */
  struct waiter *waiters;
  int result;
  uint64_t value;
  struct job *next;
};

struct job_list
{
  struct job *head, *tail;
};

struct service
{
  struct service_config cfg;
  char *control_path;
  struct control *control;
  struct engine *e;

  struct ev_loop *loop;
  ev_timer tick;
  ev_async stop_watcher, done_watcher;
  pthread_t loop_thread, worker_thread;
  bool running;
  bool started_here; /* service_start ran in this process */

  /* Loop thread. */
  unsigned dirty_expire, dirty_background;
  bool writeback_queued;
  uint64_t started_at;
  uint64_t expired_passes, background_passes;

  /* Queue mutex. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct job_list todo, done;
  unsigned queued; /* control jobs in TODO */
  bool stopping;
};

static void
list_push (struct job_list *l, struct job *j)
{
  j->next = NULL;
  if (l->tail)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
}

static struct job *
list_take_all (struct job_list *l)
{
  struct job *head = l->head;

  l->head = l->tail = NULL;
  return head;
}

static void
free_waiters (struct waiter *w)
{
  while (w)
    {
      struct waiter *next = w->next;
      free (w);
      w = next;
    }
}

static void
free_jobs (struct job *j)
{
  while (j)
    {
      struct job *next = j->next;
      free_waiters (j->waiters);
      free (j);
      j = next;
    }
}


/* --- the worker ------------------------------------------------------ */

static void
run_writeback (struct service *s, struct job *j)
{
  uint64_t now = cache_clock ();
  int r = 0;

  if (j->expire)
    r = engine_writeback_expired (s->e, now, j->expire * NS_PER_SECOND);
  if (r == 0)
    r = engine_writeback_background (s->e, j->background);
  j->result = r;
  j->value = cache_clock () - now;
}

static void
run_job (struct service *s, struct job *j)
{
  if (j->writeback)
    {
      run_writeback (s, j);
      return;
    }
  switch (j->kind)
    {
    case CONTROL_JOB_FLUSH:
      j->result = engine_flush (s->e);
      break;
    case CONTROL_JOB_DROP_CLEAN:
      j->value = engine_drop_clean (s->e);
      break;
    case CONTROL_JOB_SET_CACHE_SIZE:
      j->result = engine_set_cache_size (s->e, j->arg);
      break;
    case CONTROL_JOB_SAVE_HOTSET:
      j->result = s->cfg.hotset_path
                      ? hotset_save (s->e, s->cfg.hotset_path, &j->value)
                      : -ENOTSUP;
      break;
    case CONTROL_JOB_SET_CACHE_MODE:
      j->result = engine_set_cache_mode (s->e, j->arg);
      break;
    }
}

static void *
worker_main (void *arg)
{
  struct service *s = arg;

  pthread_mutex_lock (&s->lock);
  for (;;)
    {
      while (!s->stopping && s->todo.head == NULL)
        pthread_cond_wait (&s->cond, &s->lock);
      if (s->stopping)
        break;
      struct job *j = s->todo.head;
      s->todo.head = j->next;
      if (s->todo.head == NULL)
        s->todo.tail = NULL;
      if (!j->writeback)
        s->queued--;
      pthread_mutex_unlock (&s->lock);

      run_job (s, j);

      pthread_mutex_lock (&s->lock);
      list_push (&s->done, j);
      ev_async_send (s->loop, &s->done_watcher);
    }
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

static void
queue_job (struct service *s, struct job *j)
{
  pthread_mutex_lock (&s->lock);
  list_push (&s->todo, j);
  pthread_cond_signal (&s->cond);
  pthread_mutex_unlock (&s->lock);
}

/* --- the loop thread ------------------------------------------------- */

static void
writeback_done (struct service *s, struct job *j)
{
  s->writeback_queued = false;
  if (j->expired)
    s->expired_passes++;
  else
    s->background_passes++;
  if (j->result < 0)
    log_printf (s->cfg.log, LOG_LEVEL_ERROR,
                 "background writeback failed: %s (the data stays dirty; "
                 "flushes fail until it can be written)",
                 strerror (-j->result));
  if (s->cfg.debug_writeback)
    {
      struct engine_stats st;
      engine_get_stats (s->e, &st);
      log_printf (s->cfg.log, LOG_LEVEL_DEBUG,
                   "writeback: %s pass took %.3f ms; dirty now %" PRIu64
                   " bytes, %" PRIu64 " blocks written back so far",
                   j->expired ? "expired" : "background", j->value / 1e6,
                   st.cache.dirty_bytes, st.writeback_blocks);
    }
}

static void
on_done (struct ev_loop *loop, ev_async *w, int revents)
{
  struct service *s = w->data;
  struct job *j;

  pthread_mutex_lock (&s->lock);
  j = list_take_all (&s->done);
  pthread_mutex_unlock (&s->lock);
  while (j)
    {
      struct job *next = j->next;
      if (j->writeback)
        writeback_done (s, j);
      for (struct waiter *wt = j->waiters; wt; wt = wt->next)
        wt->done (wt->client, j->result, j->value);
      free_waiters (j->waiters);
      free (j);
      j = next;
    }
}

static void
on_tick (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct service *s = w->data;
  bool expired, above;
  struct job *j;

  if (s->writeback_queued)
    return;
  expired = s->dirty_expire
            && engine_has_expired (s->e, cache_clock (),
                                   s->dirty_expire * NS_PER_SECOND);
  above = engine_above_dirty (s->e, s->dirty_background);
  if (!expired && !above)
    return;
  j = calloc (1, sizeof *j);
  if (j == NULL)
    return; /* try again at the next tick */
  j->writeback = true;
  j->expire = s->dirty_expire;
  j->background = s->dirty_background;
  j->expired = expired;
  if (s->cfg.debug_writeback)
    log_printf (s->cfg.log, LOG_LEVEL_DEBUG, "writeback: starting a pass (%s)",
                 expired ? "dirty data older than dirty-expire"
                         : "dirty data above dirty-background");
  s->writeback_queued = true;
  queue_job (s, j);
}

static void
on_stop (struct ev_loop *loop, ev_async *w, int revents)
{
  ev_break (loop, EVBREAK_ALL);
}

static void *
loop_main (void *arg)
{
  struct service *s = arg;

  ev_run (s->loop, 0);
  return NULL;
}

/* --- the control socket's host ------------------------------------ */

/* The flush waiting in the queue, not started, or NULL.  Queue mutex. */
static struct job *
queued_flush (struct service *s)
{
  for (struct job *q = s->todo.head; q; q = q->next)
    if (!q->writeback && q->kind == CONTROL_JOB_FLUSH)
      return q;
  return NULL;
}

/* Queue a control job, or join a flush still waiting in the queue. */
static int
host_submit (void *opaque, enum control_job kind, uint64_t arg,
             control_done_fn done, void *client)
{
  struct service *s = opaque;
  struct waiter *w = malloc (sizeof *w);
  struct job *j = calloc (1, sizeof *j), *q = NULL;
  int r = 0;

  if (w == NULL || j == NULL)
    {
      free (w);
      free (j);
      return -ENOMEM;
    }
  *w = (struct waiter){ .done = done, .client = client };
  pthread_mutex_lock (&s->lock);
  /* Only a flush that has not started may be joined: one that is running
   * may have passed writes the new request must cover. */
  if (kind == CONTROL_JOB_FLUSH)
    q = queued_flush (s);
  if (q)
    {
      w->next = q->waiters;
      q->waiters = w;
    }
  else if (s->queued >= SERVICE_JOBS_MAX)
    r = -EBUSY;
  else
    {
      *j = (struct job){ .kind = kind, .arg = arg, .waiters = w };
      list_push (&s->todo, j);
      s->queued++;
      pthread_cond_signal (&s->cond);
      j = NULL;
    }
  pthread_mutex_unlock (&s->lock);
  if (r < 0)
    free (w);
  free (j);
  return r;
}

static void
host_print_stats (void *opaque, FILE *fp, bool prometheus)
{
  struct service *s = opaque;
  struct metric m[METRICS_MAX];
  struct engine_stats es;
  struct service_stats ss;
  struct histogram_snapshot lat[ENGINE_LATENCY_PATHS];
  size_t n;

  engine_get_stats (s->e, &es);
  service_get_stats (s, &ss);
  engine_get_latency (s->e, lat);
  n = metrics_collect (&es, &ss, m);
  if (prometheus)
    {
      metrics_print_prometheus (fp, m, n);
      metrics_print_latency_prometheus (fp, lat);
    }
  else
    {
      metrics_print_text (fp, m, n);
      metrics_print_latency_text (fp, lat);
    }
}

/* Whether PCT may be dirty-background: not above the dirty limit. */
static int
check_background (struct service *s, unsigned pct)
{
  struct engine_stats st;

  engine_get_stats (s->e, &st);
  return pct > st.dirty_limit ? -EINVAL : 0;
}

/* The writeback settings the control socket may change: dirty-expire,
 * dirty-background or dirty-limit.  dirty-limit is the engine's, but its
 * bound is dirty-background, which is ours. */
static int
host_set (void *opaque, const char *key, uint64_t value, char *why,
          size_t whylen)
{
  struct service *s = opaque;

  if (strcmp (key, "dirty-expire") == 0)
    s->dirty_expire = value;
  else if (strcmp (key, "dirty-background") == 0)
    {
      if (check_background (s, value) < 0)
        {
          snprintf (why, whylen,
                    "dirty-background %" PRIu64 " would be above dirty-limit",
                    value);
          return -EINVAL;
        }
      s->dirty_background = value;
    }
  else if (value == 0 || value < s->dirty_background)
    {
      snprintf (why, whylen,
                "dirty-limit %" PRIu64 " must be at least 1 and "
                "dirty-background (%u)",
                value, s->dirty_background);
      return -EINVAL;
    }
  else
    engine_set_dirty_limit (s->e, value);
  return 0;
}

static void
host_log (void *opaque, bool error, const char *msg)
{
  struct service *s = opaque;

  log_printf (s->cfg.log, error ? LOG_LEVEL_ERROR : LOG_LEVEL_DEBUG, "%s",
              msg);
}

/* --- public ---------------------------------------------------------- */

struct service *
service_new (const struct service_config *cfg, char *err, size_t errlen)
{
  struct service *s = calloc (1, sizeof *s);

  if (s == NULL)
    {
      snprintf (err, errlen, "cannot allocate the service: %s",
                strerror (errno));
      return NULL;
    }
  s->cfg = *cfg;
  s->e = cfg->engine;
  s->dirty_expire = cfg->dirty_expire;
  s->dirty_background = cfg->dirty_background;
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  if (check_background (s, cfg->dirty_background) < 0)
    {
      snprintf (err, errlen, "dirty-background=%u is above dirty-limit",
                cfg->dirty_background);
      service_free (s);
      return NULL;
    }
  if (cfg->control_path)
    {
      s->control_path = strdup (cfg->control_path);
      s->control = control_open (cfg->control_path, err, errlen);
      if (s->control == NULL || s->control_path == NULL)
        {
          service_free (s);
          return NULL;
        }
    }
  s->cfg.control_path = s->control_path;
  return s;
}

/* Create both threads with every signal blocked, so that nbdkit's threads
 * keep handling them. */
static int
start_threads (struct service *s)
{
  sigset_t all, old;
  int r;

  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  r = pthread_create (&s->worker_thread, NULL, worker_main, s);
  if (r == 0)
    {
      r = pthread_create (&s->loop_thread, NULL, loop_main, s);
      if (r != 0)
        {
          pthread_mutex_lock (&s->lock);
          s->stopping = true;
          pthread_cond_signal (&s->cond);
          pthread_mutex_unlock (&s->lock);
          pthread_join (s->worker_thread, NULL);
        }
    }
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  return -r;
}

int
service_start (struct service *s)
{
  int r;

  s->loop = ev_loop_new (EVFLAG_AUTO);
  if (s->loop == NULL)
    return -ENOMEM;
  ev_async_init (&s->stop_watcher, on_stop);
  ev_async_init (&s->done_watcher, on_done);
  s->done_watcher.data = s;
  ev_async_start (s->loop, &s->stop_watcher);
  ev_async_start (s->loop, &s->done_watcher);
  if (s->cfg.writeback)
    {
      ev_timer_init (&s->tick, on_tick, TICK_SECONDS, TICK_SECONDS);
      s->tick.data = s;
      ev_timer_start (s->loop, &s->tick);
    }
  if (s->control)
    {
      struct control_host host = {
        .opaque = s,
        .engine = s->e,
        .idle_seconds = s->cfg.control_idle,
        .submit = host_submit,
        .print_stats = host_print_stats,
        .set = host_set,
        .log = host_log,
      };
      control_start (s->control, &host, s->loop, s->cfg.debug_control);
    }
  s->started_at = cache_clock ();
  s->started_here = true;
  r = start_threads (s);
  if (r < 0)
    return r;
  s->running = true;
  return 0;
}

void
service_stop (struct service *s)
{
  if (!s->running)
    return;
  ev_async_send (s->loop, &s->stop_watcher);
  pthread_join (s->loop_thread, NULL);
  pthread_mutex_lock (&s->lock);
  s->stopping = true;
  pthread_cond_signal (&s->cond);
  pthread_mutex_unlock (&s->lock);
  pthread_join (s->worker_thread, NULL);
  s->running = false;
}

void
service_free (struct service *s)
{
  if (s == NULL)
    return;
  service_stop (s);
  if (s->control)
    control_close (s->control, s->started_here);
  free_jobs (list_take_all (&s->todo));
  free_jobs (list_take_all (&s->done));
  if (s->loop)
    ev_loop_destroy (s->loop);
  pthread_cond_destroy (&s->cond);
  pthread_mutex_destroy (&s->lock);
  free (s->control_path);
  free (s);
}

void
service_get_stats (struct service *s, struct service_stats *st)
{
  memset (st, 0, sizeof *st);
  if (s->started_at)
    st->uptime_seconds = (cache_clock () - s->started_at) / NS_PER_SECOND;
  st->dirty_expire = s->dirty_expire;
  st->dirty_background = s->dirty_background;
  st->expired_passes = s->expired_passes;
  st->background_passes = s->background_passes;
  if (s->control)
    {
      control_get_counts (s->control, &st->control_clients,
                          &st->control_commands, &st->control_errors);
      st->control_idle
          = s->cfg.control_idle ? s->cfg.control_idle : CONTROL_IDLE_SECONDS;
    }
  if (s->cfg.prewarm)
    prewarm_progress (s->cfg.prewarm, &st->prewarm_blocks_done,
                      &st->prewarm_blocks_total);
  pthread_mutex_lock (&s->lock);
  st->control_jobs_queued = s->queued;
  pthread_mutex_unlock (&s->lock);
}
