/* blkcache-torture, blkcache-bench: libnbd connections on one libev loop.
 *
 * The watchers are started by nbdloop_run and stopped before it returns,
 * so other watchers of the same loop (the tools' timers) may outlive it.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "connect.h"
#include "nbdloop.h"

int
nbdloop_open (struct nbdloop *l, struct ev_loop *loop, const char *uri,
              unsigned n, const struct nbdloop_ops *ops, void *opaque)
{
  *l = (struct nbdloop){ .loop = loop, .ops = ops, .opaque = opaque };
  l->conns = calloc (n, sizeof *l->conns);
  if (l->conns == NULL)
    return -ENOMEM;
  l->nconns = n;
  for (unsigned i = 0; i < n; i++)
    {
      struct nbdloop_conn *c = &l->conns[i];

      c->loop = l;
      c->index = i;
      c->nbd = torture_connect (uri);
      if (c->nbd == NULL)
        return -EIO;
    }
  return 0;
}

void
nbdloop_close (struct nbdloop *l)
{
  for (unsigned i = 0; l->conns != NULL && i < l->nconns; i++)
    if (l->conns[i].nbd != NULL)
      nbd_close (l->conns[i].nbd);
  free (l->conns);
  l->conns = NULL;
}

static int
events_of (struct nbdloop_conn *c)
{
  switch (nbd_aio_get_direction (c->nbd))
    {
    case LIBNBD_AIO_DIRECTION_READ:
      return EV_READ;
    case LIBNBD_AIO_DIRECTION_WRITE:
      return EV_WRITE;
    case LIBNBD_AIO_DIRECTION_BOTH:
      return EV_READ | EV_WRITE;
    default:
      return 0;
    }
}

static void
update_watcher (struct nbdloop *l, struct nbdloop_conn *c)
{
  int events = c->dead ? 0 : events_of (c);

  if (ev_is_active (&c->io) && events == (c->io.events & (EV_READ | EV_WRITE)))
    return;
  ev_io_stop (l->loop, &c->io);
  if (events == 0)
    return;
  ev_io_set (&c->io, nbd_aio_get_fd (c->nbd), events);
  ev_io_start (l->loop, &c->io);
}

static void
mark_dead (struct nbdloop *l, struct nbdloop_conn *c)
{
  if (c->dead)
    return;
  c->dead = true;
  ev_io_stop (l->loop, &c->io);
  l->ops->lost (l->opaque, c);
}

static void
before_poll (struct ev_loop *loop, ev_prepare *w, int revents)
{
  struct nbdloop *l = w->data;

  for (unsigned i = 0; i < l->nconns; i++)
    {
      struct nbdloop_conn *c = &l->conns[i];

      if (!c->dead)
        l->ops->refill (l->opaque, c);
      if (!c->dead && nbd_aio_is_dead (c->nbd))
        mark_dead (l, c);
    }
  for (unsigned i = 0; i < l->nconns; i++)
    update_watcher (l, &l->conns[i]);
  if (l->ops->done (l->opaque))
    ev_break (loop, EVBREAK_ONE);
}

static void
socket_ready (struct ev_loop *loop, ev_io *w, int revents)
{
  struct nbdloop_conn *c = w->data;
  int e = 0;

  /* Read first: a read can change what the handle wants to write. */
  if (revents & EV_READ)
    e = nbd_aio_notify_read (c->nbd);
  else if (revents & EV_WRITE)
    e = nbd_aio_notify_write (c->nbd);
  if (e == -1 || nbd_aio_is_dead (c->nbd))
    mark_dead (c->loop, c);
}

void
nbdloop_run (struct nbdloop *l)
{
  ev_prepare_init (&l->prepare, before_poll);
  l->prepare.data = l;
  ev_prepare_start (l->loop, &l->prepare);
  for (unsigned i = 0; i < l->nconns; i++)
    {
      ev_io_init (&l->conns[i].io, socket_ready, -1, 0);
      l->conns[i].io.data = &l->conns[i];
    }
  ev_run (l->loop, 0);
  ev_prepare_stop (l->loop, &l->prepare);
  for (unsigned i = 0; i < l->nconns; i++)
    ev_io_stop (l->loop, &l->conns[i].io);
}
