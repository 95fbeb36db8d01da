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
 *   set cache-size SIZE      resize the cache (writing back first)
 *   set dirty-expire SECS    and dirty-background PCT, dirty-limit PCT
 *
 * Empty lines are ignored.  Every connection is non-blocking and has its
 * own buffers: a line longer than CONTROL_LINE_MAX is answered with an
 * error and skipped, a connection stops being read while it has a command
 * running on the worker or more than CONTROL_OUTPUT_HIGH bytes of replies
 * unread, and at most CONTROL_MAX_CLIENTS connections are served at once.
 * So a slow or hostile client costs a bounded amount of memory and never
 * blocks the loop or the other clients.
 *
 * Everything here runs on the service's loop thread, except control_open
 * and control_close, which run while the loop is not running.
 */
#ifndef BLKCACHE_CONTROL_H
#define BLKCACHE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define CONTROL_LINE_MAX 1024
#define CONTROL_OUTPUT_HIGH (64 * 1024)
#define CONTROL_MAX_CLIENTS 32

struct service;
struct control;

/* Create the control socket at PATH, mode 0600, listening.  If PATH
 * exists it must be a stale socket (one that refuses connections), which
 * is replaced; anything else (a live socket, a file) is refused.  Returns
 * NULL on failure with a message in ERR (ERRLEN bytes). */
struct control *control_open (const char *path, char *err, size_t errlen);

/* Start accepting connections on LOOP, handing commands to S.  DEBUG logs
 * connections and commands. */
void control_start (struct control *ctl, struct service *s,
                    struct ev_loop *loop, bool debug);

/* Close every connection and the socket; with UNLINK, remove the path if
 * it is still the socket this process created.  Frees CTL.  The loop must
 * not be running. */
void control_close (struct control *ctl, bool unlink_path);

/* Connections now, command lines handled, commands that got an error. */
void control_get_counts (const struct control *ctl, uint64_t *clients,
                         uint64_t *commands, uint64_t *errors);

#endif /* BLKCACHE_CONTROL_H */
