/* blkcache: the extent range-lock tree.
 *
 * Shards.  The byte space is cut into stripes of EXTENT_TREE_STRIPE bytes,
 * and a multiplicative hash of the stripe number gives each stripe one of
 * NSHARDS shards (hashed, not taken modulo, so regions a power of two
 * apart do not all land on one shard).  A range belongs to every shard one
 * of its stripes hashes to; a range longer than MAX_HASHED_STRIPES stripes
 * belongs to all of them.  Each shard has its own mutex, its own tree of
 * held ranges and its own FIFO queue of waiters, and a range is recorded,
 * whole and unclipped, in every shard it belongs to.  Two ranges that
 * overlap share a byte, so both belong to that byte's shard and each sees
 * the other there: every conflict is found while holding the mutexes of
 * the range's own shards only.  A range within one stripe, the common
 * case, takes one shard's mutex, and lockers in different shards share no
 * lock and no cache line.  Overlap tests compare whole ranges, so a shard
 * never reports a conflict that is not real.
 *
 * Each shard's held ranges are the nodes of an AVL tree (avl.h) keyed by
 * start.  Held ranges never overlap, so ordering them by start also orders
 * them by end, and [start, end] conflicts with a held range exactly when
 * the held range with the greatest start <= end also has end >= start:
 * finding a conflict is one descent, and with n held ranges in a shard
 * every tree operation is O(log n).  Unused nodes are kept on a per-shard
 * freelist (it grows to the shard's high-water mark and is freed with the
 * tree), so once warm, an uncontended lock + unlock pair of a one-stripe
 * range does no malloc: two round trips on one shard mutex and three
 * descents.  A range holds one node in each of its shards, so
 * extent_tree_reserve puts n nodes on every shard's freelist.
 *
 * Waiters.  A locker whose range overlaps a held range, or the range of a
 * queued waiter, in any of its shards queues in each of them (a struct
 * extent_waiter on its stack, with one link per shard) and sleeps on its
 * own condition variable.  The queue rule is the fairness rule: no
 * newcomer, lock or trylock, takes a range that overlaps an earlier
 * request, so a waiter cannot starve under a stream of overlapping
 * lockers.  A locker queues in all its shards while holding all their
 * mutexes, so two overlapping waiters are in the same order in every shard
 * they share: queue order is one arrival order.  A waiter holds nothing
 * while it waits (all-or-nothing), so two lockers never deadlock on each
 * other's halves.  It takes its range itself: an unlock wakes the waiters
 * of its shards that overlap the freed range and that no held range and no
 * earlier waiter of that shard overlaps; a woken waiter takes the mutexes
 * of its shards, and if no held range and no earlier waiter overlaps it in
 * any of them, inserts its nodes (allocated before it queued, so this
 * cannot fail) and leaves the queues; otherwise it sleeps again.  Its
 * range cannot be stolen meanwhile: it stays queued, and newcomers see it.
 * Only an unlock can unblock a waiter (nobody leaves a queue except by
 * taking its range, which still blocks the same bytes), and the unlock of
 * the last range that blocks it runs in a shard they share, so no wake-up
 * is lost.
 *
 * Cost of the queue.  With w waiters queued in a shard, lock and trylock
 * cost O(log n + w) per shard and unlock O(w * (w + log n)) in the worst
 * case.  Waiters exist only under contention, and w is bounded by the
 * number of threads; with empty queues no path looks at them.
 *
 * Lock ordering and sleeping.  A thread takes the mutexes of its shards in
 * ascending shard order and holds them only for the tree and queue
 * operations; a waiter's own mutex is taken inside them and is a leaf.
 * Nothing else is taken, and no I/O is done, under them; the only call out
 * is malloc of a node when a freelist is empty.  extent_lock may sleep, on
 * its own condition variable with every shard mutex released;
 * extent_trylock and extent_unlock never sleep beyond the shard mutexes.
 * Because of the fairness rule, a thread holding a range must not call
 * extent_lock for a second range: a waiter queued for a range that
 * overlaps both would make the second lock wait for a waiter that itself
 * waits for the first range.  extent_trylock is safe there.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "avl.h"
#include "extent_tree.h"

enum
{
  SHARD_BITS = 4,
  NSHARDS = 1 << SHARD_BITS,
  /* A range over more stripes than this belongs to every shard, so that
   * finding the shards of a range costs at most this many hashes. */
  MAX_HASHED_STRIPES = 4 * NSHARDS,
  /* Shards are aligned to this, so that two shards share no cache line
   * (two lines: the adjacent-line prefetcher pairs them). */
  SHARD_ALIGN = 128,
  /* Nodes are aligned to a cache line, so that nodes of two shards, which
   * threads write under different mutexes, never share one. */
  NODE_ALIGN = 64,
};

/* A set of shards, one bit per shard. */
typedef uint32_t shard_set;

/* A held range in a shard's tree, or a free node on a shard's freelist. */
struct extent_node
{
  alignas (NODE_ALIGN) union
  {
    struct avl_node avl;           /* held: keyed by start */
    struct extent_node *free_next; /* free */
  };
  uint64_t start, end;
};

struct extent_waiter;

/* A waiter's place in one shard's queue. */
struct waiter_link
{
  struct waiter_link *prev, *next;
  struct extent_waiter *waiter;
  struct extent_node *node; /* the waiter's node for this shard's tree */
};

/* A locker queued in extent_lock; lives on that thread's stack. */
struct extent_waiter
{
  uint64_t start, end;
  shard_set shards;
  pthread_mutex_t mutex; /* protects woken; a leaf */
  pthread_cond_t cond;   /* signalled when woken is set */
  bool woken;
  struct waiter_link link[NSHARDS]; /* used for the shards in shards */
};

struct shard
{
  alignas (SHARD_ALIGN) pthread_mutex_t lock; /* protects every field below */
  struct avl_tree held;                       /* the held ranges */
  struct extent_node *free_nodes;
  struct waiter_link *waiters_head, *waiters_tail; /* FIFO */
};

struct extent_tree
{
  struct shard shard[NSHARDS];
};

static bool
ranges_overlap (uint64_t start1, uint64_t end1, uint64_t start2, uint64_t end2)
{
  return start1 <= end2 && start2 <= end1;
}

/* Shards. */

static unsigned
shard_of_stripe (uint64_t stripe)
{
  return (stripe * UINT64_C (0x9e3779b97f4a7c15)) >> (64 - SHARD_BITS);
}

/* The shards [start, end] belongs to. */
static shard_set
shards_of (uint64_t start, uint64_t end)
{
  uint64_t first = start / EXTENT_TREE_STRIPE, last = end / EXTENT_TREE_STRIPE;
  shard_set set = 0;

  if (last - first >= MAX_HASHED_STRIPES)
    return (shard_set)-1 >> (32 - NSHARDS);
  for (uint64_t s = first;; s++)
    {
      set |= (shard_set)1 << shard_of_stripe (s);
      if (s == last)
        return set;
    }
}

/* The lowest shard of a non-empty set, and the set without it. */
static unsigned
first_shard (shard_set set)
{
  return __builtin_ctz (set);
}

static shard_set
rest_of (shard_set set)
{
  return set & (set - 1);
}

/* Take the mutexes of set in ascending shard order. */
static void
lock_shards (struct extent_tree *tree, shard_set set)
{
  for (; set; set = rest_of (set))
    pthread_mutex_lock (&tree->shard[first_shard (set)].lock);
}

static void
unlock_shards (struct extent_tree *tree, shard_set set)
{
  for (; set; set = rest_of (set))
    pthread_mutex_unlock (&tree->shard[first_shard (set)].lock);
}

/* A shard's tree of held ranges. */

/* Order the uint64_t *KEY against a held range's start. */
static int
cmp_start (const void *key, const struct avl_node *node)
{
  return avl_cmp_u64 (*(const uint64_t *)key,
                      avl_entry (node, struct extent_node, avl)->start);
}

static void
tree_insert (struct shard *sh, struct extent_node *node)
{
  avl_insert (&sh->held, &node->avl, &node->start, cmp_start);
}

/* Does any held range of the shard overlap [start, end]?  Only the held
 * range with the greatest start <= end can: every other one with
 * start <= end lies wholly before it. */
static bool
tree_overlaps (const struct shard *sh, uint64_t start, uint64_t end)
{
  struct extent_node *pred = avl_entry (
      avl_find_le (&sh->held, &end, cmp_start), struct extent_node, avl);

  return pred && pred->end >= start;
}

/* The held range of the shard that is exactly [start, end], or NULL. */
static struct extent_node *
tree_find (const struct shard *sh, uint64_t start, uint64_t end)
{
  struct extent_node *node = avl_entry (
      avl_find_ge (&sh->held, &start, cmp_start), struct extent_node, avl);

  if (node && node->start == start && node->end == end)
    return node;
  return NULL;
}

/* Node freelists. */

static struct extent_node *
node_alloc (struct shard *sh, uint64_t start, uint64_t end)
{
  struct extent_node *node = sh->free_nodes;

  if (node)
    sh->free_nodes = node->free_next;
  else
    {
      node = aligned_alloc (NODE_ALIGN, sizeof *node);
      if (node == NULL)
        return NULL;
    }
  node->start = start;
  node->end = end;
  return node;
}

static void
node_release (struct shard *sh, struct extent_node *node)
{
  node->free_next = sh->free_nodes;
  sh->free_nodes = node;
}

/* Take a node for [start, end] from each shard of set into nodes[shard];
 * the caller holds their mutexes.  Returns 0, or -ENOMEM having taken
 * none. */
static int
nodes_alloc (struct extent_tree *tree, shard_set set, uint64_t start,
             uint64_t end, struct extent_node **nodes)
{
  for (shard_set s = set; s; s = rest_of (s))
    {
      unsigned i = first_shard (s);
      nodes[i] = node_alloc (&tree->shard[i], start, end);
      if (nodes[i] == NULL)
        {
          for (shard_set t = set; t != s; t = rest_of (t))
            node_release (&tree->shard[first_shard (t)],
                          nodes[first_shard (t)]);
          return -ENOMEM;
        }
    }
  return 0;
}

static void
free_subtree (struct avl_node *avl)
{
  if (avl == NULL)
    return;
  free_subtree (avl->left);
  free_subtree (avl->right);
  free (avl_entry (avl, struct extent_node, avl));
}

/* Waiter queues. */

/* Does a waiter queued in the shard before stop (or anywhere, if stop is
 * NULL) overlap [start, end]? */
static bool
waiter_overlaps (const struct shard *sh, uint64_t start, uint64_t end,
                 const struct waiter_link *stop)
{
  const struct waiter_link *l;

  for (l = sh->waiters_head; l != stop; l = l->next)
    if (ranges_overlap (l->waiter->start, l->waiter->end, start, end))
      return true;
  return false;
}

static void
link_append (struct shard *sh, struct waiter_link *l)
{
  l->next = NULL;
  l->prev = sh->waiters_tail;
  if (sh->waiters_tail)
    sh->waiters_tail->next = l;
  else
    sh->waiters_head = l;
  sh->waiters_tail = l;
}

static void
link_unlink (struct shard *sh, struct waiter_link *l)
{
  if (l->prev)
    l->prev->next = l->next;
  else
    sh->waiters_head = l->next;
  if (l->next)
    l->next->prev = l->prev;
  else
    sh->waiters_tail = l->prev;
}

/* May a newcomer take [start, end] now?  Not if a held range of one of its
 * shards overlaps it, nor if a queued waiter does (it came first).  The
 * caller holds the mutexes of set, the range's shards. */
static bool
range_busy (const struct extent_tree *tree, shard_set set, uint64_t start,
            uint64_t end)
{
  for (; set; set = rest_of (set))
    {
      const struct shard *sh = &tree->shard[first_shard (set)];
      if (tree_overlaps (sh, start, end)
          || (sh->waiters_head && waiter_overlaps (sh, start, end, NULL)))
        return true;
    }
  return false;
}

/* May the queued waiter w take its range now?  Only if no held range and
 * no earlier waiter overlaps it in any of its shards, whose mutexes the
 * caller holds. */
static bool
waiter_blocked (const struct extent_tree *tree, const struct extent_waiter *w)
{
  for (shard_set s = w->shards; s; s = rest_of (s))
    {
      unsigned i = first_shard (s);
      const struct shard *sh = &tree->shard[i];
      if (tree_overlaps (sh, w->start, w->end)
          || waiter_overlaps (sh, w->start, w->end, &w->link[i]))
        return true;
    }
  return false;
}

static void
waiter_wake (struct extent_waiter *w)
{
  pthread_mutex_lock (&w->mutex);
  w->woken = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->mutex);
}

/* [start, end] was just unlocked from sh: wake the waiters of sh that
 * overlap it and that no held range and no earlier waiter of sh blocks.
 * They may still be blocked in another of their shards; they look. */
static void
wake_waiters (struct shard *sh, uint64_t start, uint64_t end)
{
  for (struct waiter_link *l = sh->waiters_head; l; l = l->next)
    {
      struct extent_waiter *w = l->waiter;
      if (ranges_overlap (w->start, w->end, start, end)
          && !tree_overlaps (sh, w->start, w->end)
          && !waiter_overlaps (sh, w->start, w->end, l))
        /* Under sh->lock: the waiter cannot leave the queue, and free
         * itself, before we let go of it. */
        waiter_wake (w);
    }
}

/* Queue w in each of its shards, with the nodes it will insert; the caller
 * holds their mutexes. */
static void
waiter_enqueue (struct extent_tree *tree, struct extent_waiter *w,
                struct extent_node **nodes)
{
  for (shard_set s = w->shards; s; s = rest_of (s))
    {
      unsigned i = first_shard (s);
      w->link[i].waiter = w;
      w->link[i].node = nodes[i];
      link_append (&tree->shard[i], &w->link[i]);
    }
}

/* w takes its range: out of the queues, into the trees. */
static void
waiter_take (struct extent_tree *tree, struct extent_waiter *w)
{
  for (shard_set s = w->shards; s; s = rest_of (s))
    {
      unsigned i = first_shard (s);
      link_unlink (&tree->shard[i], &w->link[i]);
      tree_insert (&tree->shard[i], w->link[i].node);
    }
}

/* Sleep until an unlock wakes w.  The caller holds w's shard mutexes and
 * has found w blocked; it holds them again on return.  woken is cleared
 * before the shard mutexes are released: every waker holds one of them,
 * so a wake-up that comes after the check is never lost. */
static void
waiter_sleep (struct extent_tree *tree, struct extent_waiter *w)
{
  pthread_mutex_lock (&w->mutex);
  w->woken = false;
  pthread_mutex_unlock (&w->mutex);
  unlock_shards (tree, w->shards);
  pthread_mutex_lock (&w->mutex);
  while (!w->woken)
    pthread_cond_wait (&w->cond, &w->mutex);
  pthread_mutex_unlock (&w->mutex);
  lock_shards (tree, w->shards);
}

/* Queue for [start, end] with the nodes already taken, sleep until no
 * earlier request and no held range overlaps it, and take it.  The caller
 * holds the mutexes of the range's shards set; they are released on
 * return.  Returns 0 or a negative errno of pthread_*_init, having
 * released the nodes. */
static int
lock_slow (struct extent_tree *tree, shard_set set, uint64_t start,
           uint64_t end, struct extent_node **nodes)
{
  struct extent_waiter w;
  int err;

  err = pthread_mutex_init (&w.mutex, NULL);
  if (err == 0)
    {
      err = pthread_cond_init (&w.cond, NULL);
      if (err)
        pthread_mutex_destroy (&w.mutex);
    }
  if (err)
    {
      for (shard_set s = set; s; s = rest_of (s))
        node_release (&tree->shard[first_shard (s)], nodes[first_shard (s)]);
      unlock_shards (tree, set);
      return -err;
    }
  w.start = start;
  w.end = end;
  w.shards = set;
  waiter_enqueue (tree, &w, nodes);
  do
    waiter_sleep (tree, &w);
  while (waiter_blocked (tree, &w));
  waiter_take (tree, &w);
  unlock_shards (tree, set);
  pthread_cond_destroy (&w.cond);
  pthread_mutex_destroy (&w.mutex);
  return 0;
}

/* Public API. */

struct extent_tree *
extent_tree_new (void)
{
  struct extent_tree *tree;
  int err;

  tree = aligned_alloc (SHARD_ALIGN, sizeof *tree);
  if (tree == NULL)
    return NULL;
  for (unsigned i = 0; i < NSHARDS; i++)
    {
      struct shard *sh = &tree->shard[i];
      avl_init (&sh->held, NULL);
      sh->free_nodes = NULL;
      sh->waiters_head = sh->waiters_tail = NULL;
      err = pthread_mutex_init (&sh->lock, NULL);
      if (err)
        {
          while (i-- > 0)
            pthread_mutex_destroy (&tree->shard[i].lock);
          free (tree);
          errno = err;
          return NULL;
        }
    }
  return tree;
}

int
extent_tree_reserve (struct extent_tree *tree, size_t n)
{
  for (unsigned i = 0; i < NSHARDS; i++)
    for (size_t k = 0; k < n; k++)
      {
        struct extent_node *node = aligned_alloc (NODE_ALIGN, sizeof *node);
        if (node == NULL)
          return -ENOMEM;
        pthread_mutex_lock (&tree->shard[i].lock);
        node_release (&tree->shard[i], node);
        pthread_mutex_unlock (&tree->shard[i].lock);
      }
  return 0;
}

void
extent_tree_free (struct extent_tree *tree)
{
  struct extent_node *node;

  if (tree == NULL)
    return;
  for (unsigned i = 0; i < NSHARDS; i++)
    {
      struct shard *sh = &tree->shard[i];
      free_subtree (sh->held.root);
      while ((node = sh->free_nodes) != NULL)
        {
          sh->free_nodes = node->free_next;
          free (node);
        }
      pthread_mutex_destroy (&sh->lock);
    }
  free (tree);
}

int
extent_lock (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *nodes[NSHARDS];
  shard_set set;

  if (end < start)
    return -EINVAL;

  set = shards_of (start, end);
  lock_shards (tree, set);
  if (nodes_alloc (tree, set, start, end, nodes) < 0)
    {
      unlock_shards (tree, set);
      return -ENOMEM;
    }
  if (range_busy (tree, set, start, end))
    return lock_slow (tree, set, start, end, nodes);
  for (shard_set s = set; s; s = rest_of (s))
    tree_insert (&tree->shard[first_shard (s)], nodes[first_shard (s)]);
  unlock_shards (tree, set);
  return 0;
}

int
extent_trylock (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *nodes[NSHARDS];
  shard_set set;
  int r = -EBUSY;

  if (end < start)
    return -EINVAL;

  set = shards_of (start, end);
  lock_shards (tree, set);
  if (!range_busy (tree, set, start, end))
    {
      r = nodes_alloc (tree, set, start, end, nodes);
      if (r == 0)
        for (shard_set s = set; s; s = rest_of (s))
          tree_insert (&tree->shard[first_shard (s)], nodes[first_shard (s)]);
    }
  unlock_shards (tree, set);
  return r;
}

void
extent_unlock (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  shard_set set = end < start ? 0 : shards_of (start, end);
  struct extent_node *node = NULL;

  lock_shards (tree, set);
  for (shard_set s = set; s; s = rest_of (s))
    {
      struct shard *sh = &tree->shard[first_shard (s)];
      node = tree_find (sh, start, end);
      if (node == NULL)
        break;
      avl_remove (&sh->held, &node->avl);
      node_release (sh, node);
      if (sh->waiters_head)
        wake_waiters (sh, start, end);
    }
  if (set == 0 || node == NULL)
    {
      /* Unlocking a range nobody holds would let two lockers share bytes;
       * stop here rather than corrupt the caller's data. */
      fprintf (stderr,
               "blkcache: extent_unlock: [%" PRIu64 ", %" PRIu64
               "] is not a held range\n",
               start, end);
      abort ();
    }
  unlock_shards (tree, set);
}
