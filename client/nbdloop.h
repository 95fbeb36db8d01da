/* blkcache-torture, blkcache-bench: libnbd connections on one libev loop.
 *
 * Each connection is a libnbd handle in asynchronous mode with one ev_io
 * watcher on its socket.  Before every poll, libev calls the prepare
 * watcher, which lets the tool issue requests on every live connection
 * (ops->refill), asks it whether the run is over (ops->done), and sets
 * each watcher's events from nbd_aio_get_direction.  When a socket is
 * ready, nbd_aio_notify_read or _write lets libnbd move on, and libnbd
 * calls the completion callbacks of the replies it read.  Requests are
 * only ever issued from refill, never from a libnbd callback, which runs
 * with the handle locked.
 */
#ifndef BLKCACHE_NBDLOOP_H
#define BLKCACHE_NBDLOOP_H

#include <stdbool.h>

#include <ev.h>
#include <libnbd.h>

struct nbdloop;

struct nbdloop_conn
{
  ev_io io;
  struct nbdloop *loop;
  struct nbd_handle *nbd;
  unsigned index;
  bool dead;
};

struct nbdloop_ops
{
  /* Issue requests on the live connection C. */
  void (*refill) (void *opaque, struct nbdloop_conn *c);
  /* Whether the run is over; nbdloop_run then returns.  Called before
   * every poll, after refill. */
  bool (*done) (void *opaque);
  /* Connection C failed and is dead from now on; the completion callbacks
   * of its requests in flight may or may not have been called. */
  void (*lost) (void *opaque, struct nbdloop_conn *c);
};

struct nbdloop
{
  struct ev_loop *loop;
  ev_prepare prepare;
  struct nbdloop_conn *conns;
  unsigned nconns;
  const struct nbdloop_ops *ops;
  void *opaque;
};

/* Open N connections to URI on LOOP.  Returns 0, or -EIO after printing
 * why (L then needs nbdloop_close all the same). */
int nbdloop_open (struct nbdloop *l, struct ev_loop *loop, const char *uri,
                  unsigned n, const struct nbdloop_ops *ops, void *opaque);

/* Run LOOP until ops->done says the run is over. */
void nbdloop_run (struct nbdloop *l);

/* Close every connection. */
void nbdloop_close (struct nbdloop *l);

#endif /* BLKCACHE_NBDLOOP_H */
