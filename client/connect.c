/* blkcache-torture: connecting to the server and reading its features.
 *
 * Errors are printed here, with libnbd's message, so callers only decide
 * what to do next.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>

#include "connect.h"

struct nbd_handle *
torture_connect (const char *uri)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL)
    {
      fprintf (stderr, "blkcache-torture: %s\n", nbd_get_error ());
      return NULL;
    }
  if (nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1
      || nbd_connect_uri (h, uri) == -1)
    {
      fprintf (stderr, "blkcache-torture: %s: %s\n", uri, nbd_get_error ());
      nbd_close (h);
      return NULL;
    }
  return h;
}

/* A libnbd "can" query as a bool; an error counts as "cannot". */
static bool
can (int r)
{
  return r == 1;
}

int
torture_features (struct nbd_handle *h, struct features *f)
{
  int64_t size = nbd_get_size (h);
  int64_t min = nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM);
  int64_t max = nbd_get_block_size (h, LIBNBD_SIZE_MAXIMUM);

  if (size == -1)
    {
      fprintf (stderr, "blkcache-torture: %s\n", nbd_get_error ());
      return -EIO;
    }
  f->size = size;
  f->min_block = min > 0 ? min : 1;
  f->max_block = max > 0 ? max : 0;
  f->read_only = can (nbd_is_read_only (h));
  f->fua = can (nbd_can_fua (h));
  f->flush = can (nbd_can_flush (h));
  f->trim = can (nbd_can_trim (h));
  f->zero = can (nbd_can_zero (h));
  f->cache = can (nbd_can_cache (h));
  f->multi_conn = can (nbd_can_multi_conn (h));
  f->status = can (nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION));
  return 0;
}
