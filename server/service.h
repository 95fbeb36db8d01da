/* blkcache: the service thread.
 *
 * One thread runs a libev loop (its own, from ev_loop_new) that owns the
 * background writeback timer and the control socket (control.h).  Disk I/O
 * that the loop decides on (timer writeback, and the flush, drop-clean and
 * resize the control socket asks for) runs on one worker thread fed by a
 * job queue, never on the loop thread, so the control socket answers while
 * a writeback is busy.  A finished job goes back to the loop thread, which
 * runs its completion.
 *
 * Life cycle, fitted to nbdkit: service_new before nbdkit may fork into the
 * background (it binds the control socket, so a bad path fails start-up),
 * service_start after the fork (threads do not survive fork), service_stop
 * and service_free at unload, before the engine is freed.
 *
 * The service owns the control socket and serves it: service.c includes
 * control.h, never the other way round.  The control socket is the line
 * protocol only; what it needs from its host (the job queue, the stats,
 * the writeback settings) it reaches through the struct control_host the
 * service hands it, so the protocol can be read, and tested, without the
 * threads, and the service's queue rules live in one place.
 *
 * The worker's queue holds at most SERVICE_JOBS_MAX control jobs waiting
 * to run (the running one and the timer's writeback job are not counted);
 * a control job past that is refused with -EBUSY.  A flush asked for while
 * another is still waiting in the queue joins that one: it has not
 * started, so it covers every write the newer request must cover, and all
 * its waiters get its result.  With at most CONTROL_MAX_CLIENTS clients,
 * each with one command at a time, the queue and its waiters are bounded,
 * and the timer's writeback job never waits behind more than
 * SERVICE_JOBS_MAX jobs.
 *
 * Unless a function says otherwise it may only be called from the thread
 * that called service_new while the service is not running, or from the
 * loop thread while it is.
 */
#ifndef BLKCACHE_SERVICE_H
#define BLKCACHE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "prewarm.h"

/* Control jobs that may wait in the worker's queue at once. */
#define SERVICE_JOBS_MAX 8

struct service_config
{
  struct engine *engine;     /* the service does not own it */
  const char *control_path;  /* the control socket, or NULL for none */
  bool writeback;            /* run the background writeback timer */
  unsigned dirty_expire;     /* seconds; 0: no age-based writeback */
  unsigned dirty_background; /* percent of the cache size */
  bool debug_writeback;      /* log every background writeback pass */
  bool debug_control;        /* log control connections and commands */
  unsigned control_idle;     /* seconds; 0: CONTROL_IDLE_SECONDS */
  const char *hotset_path;   /* where save-hotset writes (not copied);
                              * NULL: the command is refused */
  struct prewarm *prewarm;   /* its progress is in the stats; may be NULL */
  /* Where messages go (nbdkit_debug and nbdkit_error in the plugin).  It is
   * called from the service's threads. */
  log_fn log;
};

/* Counters and settings of the service, for the control socket's stats. */
struct service_stats
{
  uint64_t uptime_seconds;
  uint64_t dirty_expire;        /* seconds */
  uint64_t dirty_background;    /* percent */
  uint64_t expired_passes;      /* timer passes that wrote back old blocks */
  uint64_t background_passes;   /* passes started by dirty-background */
  uint64_t control_clients;     /* connected now, or gone with a job left */
  uint64_t control_commands;    /* command lines handled */
  uint64_t control_errors;      /* commands answered with an error */
  uint64_t control_jobs_queued; /* control jobs waiting for the worker */
  uint64_t control_idle;        /* seconds before an idle client is dropped */
  uint64_t prewarm_blocks_done;  /* prewarm.h */
  uint64_t prewarm_blocks_total;
};

struct service;

/* Check CFG and, when it names a control socket, create it (see
 * control_open).  Starts no thread.  On failure returns NULL and writes a
 * message an admin can act on into ERR (ERRLEN bytes). */
struct service *service_new (const struct service_config *cfg, char *err,
                             size_t errlen);

/* Start the loop and worker threads, with every signal blocked in them.
 * Returns 0 or a negative errno. */
int service_start (struct service *s);

/* Stop the threads: the loop ends, the worker finishes the job it is
 * running (jobs still queued are dropped), both are joined.  Does nothing
 * if the service is not running.  Call it from outside the service. */
void service_stop (struct service *s);

/* Stop the service, close the control socket and its connections, remove
 * the socket's path if this process started the service, and free it. */
void service_free (struct service *s);

/* Copy the counters into *STATS. */
void service_get_stats (struct service *s, struct service_stats *stats);

#endif /* BLKCACHE_SERVICE_H */
