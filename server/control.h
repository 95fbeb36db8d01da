/* blkcache: the control socket.
 *
 * A unix stream socket on which an admin (blkcachectl, or socat) sends one
 * command per line and reads the reply: zero or more lines of body, then
 * one status line, "ok" or "error: MESSAGE".  Commands:
 *
 *   help                     the commands, one per line
 *   stats                    every counter and setting, "NAME VALUE"
 *   stats prometheus         the same in Prometheus' text format
 *   flush                    as an NBD flush
 *   drop-clean               drop every clean unpinned block
 *   mrc                      the miss-ratio curve, "SIZE RATIO" lines
 *   set cache-size SIZE      resize the cache (writing back first)
 *   set dirty-expire SECS    and dirty-background PCT, dirty-limit PCT
 *   save-hotset              write the hot set file now (hotset.h)
 *   set writeback-rate SIZE  cap background writeback, bytes a second
 *   set cache-mode MODE      writeback or writethrough (writing back
 *                            every dirty block first)
 *
 * Empty lines are ignored.  Every connection is non-blocking and has its
 * own buffers: a line longer than CONTROL_LINE_MAX is answered with an
 * error and skipped, a connection stops being read while it has a command
 * running on the worker or more than CONTROL_OUTPUT_HIGH bytes of replies
 * unread, and at most CONTROL_MAX_CLIENTS connections are served at once.
 * A connection that hangs up while its command runs still counts until
 * the command ends, so connecting, asking and hanging up in a loop cannot
 * pile up commands.  A connection that sends nothing for CONTROL_IDLE_SECONDS
 * (while no command of its runs) is closed.  A command the host cannot
 * queue is answered "error: busy ...".  So a slow or hostile client costs
 * a bounded amount of memory and never blocks the loop or the other
 * clients.
 *
 * "set cache-size" refuses a size above the memory available: the
 * kernel's MemAvailable plus the memory the cache holds now (which a
 * resize reuses).  MemAvailable is the kernel's estimate of what can be
 * allocated without swapping, which is the most a cache should ask for.
 *
 * Dependencies go one way: control.c uses the engine (for the sizes its
 * replies name) and reaches the service only through struct control_host;
 * it never includes service.h.  The service owns the control socket and
 * includes this header (why this way round: see service.h).
 *
 * Everything here runs on the service's loop thread, except control_open
 * and control_close, which run while the loop is not running.
 */
#ifndef BLKCACHE_CONTROL_H
#define BLKCACHE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ev.h>

#define CONTROL_LINE_MAX 1024
#define CONTROL_OUTPUT_HIGH (64 * 1024)
#define CONTROL_MAX_CLIENTS 32
#define CONTROL_IDLE_SECONDS 60

struct engine;

struct control;

/* The commands that do disk I/O, and so run on the host's worker. */
enum control_job
{
  CONTROL_JOB_FLUSH,          /* engine_flush */
  CONTROL_JOB_DROP_CLEAN,     /* engine_drop_clean; VALUE: blocks dropped */
  CONTROL_JOB_SET_CACHE_SIZE, /* engine_set_cache_size (ARG) */
  CONTROL_JOB_SAVE_HOTSET,    /* hotset_save; VALUE: blocks saved */
  CONTROL_JOB_SET_CACHE_MODE, /* engine_set_cache_mode (ARG) */
};

/* Called on the loop thread when a job has run, with its result (0 or a
 * negative errno) and value. */
typedef void (*control_done_fn) (void *client, int result, uint64_t value);

/* What the control socket needs from the service that runs it.  Every
 * function is called on the loop thread with OPAQUE. */
struct control_host
{
  void *opaque;
  struct engine *engine; /* the host's; for stats and the cache size */
  unsigned idle_seconds; /* drop idle clients after this; 0: the default */
  /* Queue JOB with ARG for the worker; DONE (CLIENT, ...) runs on the loop
   * thread once it has run, unless the service stops first.  Returns 0,
   * -EBUSY when the queue is full, or -ENOMEM. */
  int (*submit) (void *opaque, enum control_job job, uint64_t arg,
                 control_done_fn done, void *client);
  /* Print every counter and setting, as "NAME VALUE" lines or, with
   * PROMETHEUS, in Prometheus' text format. */
  void (*print_stats) (void *opaque, FILE *fp, bool prometheus);
  /* Set KEY, one of dirty-expire, dirty-background and dirty-limit, to VALUE,
   * already within its range.  Returns 0, or -EINVAL with the reason,
   * one line without "error:", in WHY (WHYLEN bytes). */
  int (*set) (void *opaque, const char *key, uint64_t value, char *why,
              size_t whylen);
  /* Log MSG, at error level with ERROR, else as debug output. */
  void (*log) (void *opaque, bool error, const char *msg);
};

/* Create the control socket at PATH, mode 0600, listening.  If PATH
 * exists it must be a stale socket (one that refuses connections), which
 * is replaced; anything else (a live socket, a file) is refused.  Returns
 * NULL on failure with a message in ERR (ERRLEN bytes). */
struct control *control_open (const char *path, char *err, size_t errlen);

/* Start accepting connections on LOOP, running commands through HOST
 * (copied).  DEBUG logs connections and commands. */
void control_start (struct control *ctl, const struct control_host *host,
                    struct ev_loop *loop, bool debug);

/* Close every connection and the socket; with UNLINK, remove the path if
 * it is still the socket this process created.  Frees CTL.  The loop must
 * not be running. */
void control_close (struct control *ctl, bool unlink_path);

/* Connections now (with those that hung up while a command of theirs
 * runs), command lines handled, commands that got an error. */
void control_get_counts (const struct control *ctl, uint64_t *clients,
                         uint64_t *commands, uint64_t *errors);

#endif /* BLKCACHE_CONTROL_H */
