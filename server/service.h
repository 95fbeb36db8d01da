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
 * Unless a function says otherwise it may only be called from the thread
 * that called service_new while the service is not running, or from the
 * loop thread (that is, from the control socket's handlers) while it is.
 */
#ifndef BLKCACHE_SERVICE_H
#define BLKCACHE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

enum service_log_level
{
  SERVICE_LOG_DEBUG,
  SERVICE_LOG_ERROR,
};

struct service_config
{
  struct engine *engine;     /* the service does not own it */
  const char *control_path;  /* the control socket, or NULL for none */
  bool writeback;            /* run the background writeback timer */
  unsigned dirty_expire;     /* seconds; 0: no age-based writeback */
  unsigned dirty_background; /* percent of the cache size */
  bool debug_writeback;      /* log every background writeback pass */
  bool debug_control;        /* log control connections and commands */
  /* Where messages go (nbdkit_debug and nbdkit_error in the plugin).  It is
   * called from the service's threads. */
  void (*log) (enum service_log_level level, const char *msg);
};

/* Counters and settings of the service, for the control socket's stats. */
struct service_stats
{
  uint64_t uptime_seconds;
  uint64_t dirty_expire;      /* seconds */
  uint64_t dirty_background;  /* percent */
  uint64_t expired_passes;    /* timer passes that wrote back old blocks */
  uint64_t background_passes; /* passes started by dirty-background */
  uint64_t control_clients;   /* connected now */
  uint64_t control_commands;  /* command lines handled */
  uint64_t control_errors;    /* commands answered with an error */
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

/* The engine the service drives. */
struct engine *service_engine (struct service *s);

/* Change the background writeback settings (see service_config).  Return 0
 * or -EINVAL (dirty-background above the engine's dirty limit, or above
 * 100). */
int service_set_dirty_expire (struct service *s, unsigned seconds);
int service_set_dirty_background (struct service *s, unsigned pct);

/* Jobs the control socket hands to the worker. */
enum service_job_kind
{
  SERVICE_JOB_FLUSH,          /* engine_flush */
  SERVICE_JOB_DROP_CLEAN,     /* engine_drop_clean; VALUE: blocks dropped */
  SERVICE_JOB_SET_CACHE_SIZE, /* engine_set_cache_size (ARG) */
};

/* Called on the loop thread when a job has run, with its result (0 or a
 * negative errno) and value. */
typedef void (*service_done_fn) (void *opaque, int result, uint64_t value);

/* Queue a job for the worker; DONE (OPAQUE, ...) runs on the loop thread
 * once it has run, unless the service stops first.  Loop thread only.
 * Returns 0 or -ENOMEM. */
int service_submit (struct service *s, enum service_job_kind kind, uint64_t arg,
                    service_done_fn done, void *opaque);

/* Log a message through the configured function.  Any thread. */
void service_log (struct service *s, enum service_log_level level,
                  const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

#endif /* BLKCACHE_SERVICE_H */
