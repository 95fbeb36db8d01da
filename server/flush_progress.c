/* blkcache: flush progress.  See flush_progress.h.
 *
 * One atomic counter, the sum of the shares of the running flushes; each
 * flush keeps its own share on its stack, so it can never take off more
 * than it put in, and the counter cannot wrap below zero.
 */
#include <config.h>

#include "flush_progress.h"

void
flush_progress_begin (struct flush_progress *p, struct flush_share *f,
                      uint64_t blocks)
{
  f->left = blocks;
  atomic_fetch_add_explicit (&p->blocks_left, blocks, memory_order_relaxed);
}

void
flush_progress_advance (struct flush_progress *p, struct flush_share *f,
                        uint64_t blocks)
{
  uint64_t done = blocks < f->left ? blocks : f->left;

  f->left -= done;
  atomic_fetch_sub_explicit (&p->blocks_left, done, memory_order_relaxed);
}

void
flush_progress_end (struct flush_progress *p, struct flush_share *f)
{
  flush_progress_advance (p, f, f->left);
}

uint64_t
flush_progress_left (struct flush_progress *p)
{
  return atomic_load_explicit (&p->blocks_left, memory_order_relaxed);
}
