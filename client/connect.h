/* blkcache-torture: connecting to the server and reading its features.
 *
 * Every connection asks for the base:allocation meta context so that block
 * status can be checked; the features are read from the first connection
 * and assumed the same on the others.
 */
#ifndef BLKCACHE_CONNECT_H
#define BLKCACHE_CONNECT_H

#include <stdbool.h>
#include <stdint.h>

#include <libnbd.h>

struct features
{
  uint64_t size;      /* export size */
  uint32_t min_block; /* minimum block size, 1 when not advertised */
  uint32_t max_block; /* maximum request size, 0 when not advertised */
  bool read_only;
  bool fua, flush, trim, zero, cache, status, multi_conn;
};

/* Connect to URI.  Returns the handle, or NULL after printing why. */
struct nbd_handle *torture_connect (const char *uri);

/* Read H's features into *F.  Returns 0, or -EIO after printing why. */
int torture_features (struct nbd_handle *h, struct features *f);

#endif /* BLKCACHE_CONNECT_H */
