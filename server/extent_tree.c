/* blkcache: the extent range-lock tree.
 *
 * Layout.  The held ranges are the nodes of an AVL tree (avl.h) keyed by
 * start.  Held ranges never overlap, so ordering them by start also orders
 * them by end, and [start, end] conflicts with a held range exactly when the
 * held range with the greatest start <= end also has end >= start: finding a
 * conflict is one descent.  Insert is one descent plus rotations on the way
 * back up, and so is remove (a descent to find the range, a climb to
 * rebalance), so with n held ranges every tree operation is O(log n).
 * Unused nodes are kept on a freelist (it grows to the high-water mark of
 * held plus queued ranges and is freed with the tree), so once warm, an
 * uncontended lock + unlock pair does no malloc: two mutex round trips and
 * three descents.  extent_tree_reserve fills the freelist up front, so a
 * user that knows how many ranges it holds at most never sees -ENOMEM.
 *
 * Waiters.  A locker whose range overlaps a held range, or the range of any
 * queued waiter, queues in a FIFO list of struct extent_waiter that live on
 * the waiting threads' stacks, each with its own condition variable.  The
 * second condition is the fairness rule: no newcomer, lock or trylock, takes
 * a range that overlaps an earlier request, so a waiter cannot starve under
 * a stream of overlapping lockers.  A waiter holds nothing while it waits
 * (all-or-nothing), so two lockers never deadlock on each other's halves.
 * Unlock hands ranges over: it walks the queue in order and, for each waiter
 * that overlaps the freed range and that no held range and no earlier waiter
 * overlaps, inserts the waiter's range into the tree on its behalf (with a
 * node the waiter allocated before queueing, so a grant cannot fail) and
 * signals that waiter alone.  A granted range cannot be stolen between the
 * signal and the waiter waking up.  Only waiters overlapping the freed range
 * can become grantable: nobody leaves the queue except by being granted, and
 * a granted waiter still blocks the later waiters it overlapped, now as a
 * held range whose own unlock will look at them.
 *
 * Cost of the queue.  With w queued waiters, lock and trylock cost
 * O(log n + w) and unlock O(w * (w + log n)) in the worst case.  Waiters are
 * rare (they exist only under contention, and w is bounded by the number of
 * threads), and with an empty queue no path looks at it: lock, trylock and
 * unlock are then O(log n).
 *
 * Lock ordering and sleeping.  tree->lock is a leaf: nothing is taken, and
 * no I/O is done, while it is held; the only call out is malloc of a node
 * when the freelist is empty.  extent_lock may sleep, on its own condition
 * variable with tree->lock released; extent_trylock and extent_unlock never
 * sleep beyond tree->lock itself.  Because of the fairness rule, a thread
 * holding a range must not call extent_lock for a second range: a waiter
 * queued for a range that overlaps both would make the second lock wait for
 * a waiter that itself waits for the first range.  extent_trylock is safe
 * there.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "avl.h"
#include "extent_tree.h"

/* A held range in the tree, or a free node on the freelist. */
struct extent_node
{
  union
  {
    struct avl_node avl;           /* held: keyed by start */
    struct extent_node *free_next; /* free */
  };
  uint64_t start, end;
};

/* A locker queued in extent_lock; lives on that thread's stack. */
struct extent_waiter
{
  struct extent_waiter *prev, *next;
  uint64_t start, end;
  struct extent_node *node; /* inserted into the tree by the granter */
  pthread_cond_t cond;      /* signalled once, when granted is set */
  bool granted;
};

struct extent_tree
{
  pthread_mutex_t lock; /* protects every field below */
  struct avl_tree held; /* the held ranges */
  struct extent_node *free_nodes;
  struct extent_waiter *waiters_head, *waiters_tail; /* FIFO */
};

static bool
ranges_overlap (uint64_t start1, uint64_t end1, uint64_t start2, uint64_t end2)
{
  return start1 <= end2 && start2 <= end1;
}

/* The tree of held ranges. */

/* Order the uint64_t *KEY against a held range's start. */
static int
cmp_start (const void *key, const struct avl_node *node)
{
  return avl_cmp_u64 (*(const uint64_t *) key,
                      avl_entry (node, struct extent_node, avl)->start);
}

static void
tree_insert (struct extent_tree *tree, struct extent_node *node)
{
  avl_insert (&tree->held, &node->avl, &node->start, cmp_start);
}

/* Does any held range overlap [start, end]?  Only the held range with the
 * greatest start <= end can: every other one with start <= end lies wholly
 * before it. */
static bool
tree_overlaps (const struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *pred = avl_entry (
      avl_find_le (&tree->held, &end, cmp_start), struct extent_node, avl);

  return pred && pred->end >= start;
}

/* The held range that is exactly [start, end], or NULL. */
static struct extent_node *
tree_find (const struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *node = avl_entry (
      avl_find_ge (&tree->held, &start, cmp_start), struct extent_node, avl);

  if (node && node->start == start && node->end == end)
    return node;
  return NULL;
}

/* Node freelist. */

static struct extent_node *
node_alloc (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *node = tree->free_nodes;

  if (node)
    tree->free_nodes = node->free_next;
  else
    {
      node = malloc (sizeof *node);
      if (node == NULL)
        return NULL;
    }
  node->start = start;
  node->end = end;
  return node;
}

static void
node_release (struct extent_tree *tree, struct extent_node *node)
{
  node->free_next = tree->free_nodes;
  tree->free_nodes = node;
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

/* Waiter queue. */

/* Does a waiter queued before stop (or anywhere, if stop is NULL) overlap
 * [start, end]? */
static bool
waiter_overlaps (const struct extent_tree *tree, uint64_t start, uint64_t end,
                 const struct extent_waiter *stop)
{
  const struct extent_waiter *w;

  for (w = tree->waiters_head; w != stop; w = w->next)
    if (ranges_overlap (w->start, w->end, start, end))
      return true;
  return false;
}

static void
waiter_append (struct extent_tree *tree, struct extent_waiter *w)
{
  w->next = NULL;
  w->prev = tree->waiters_tail;
  if (tree->waiters_tail)
    tree->waiters_tail->next = w;
  else
    tree->waiters_head = w;
  tree->waiters_tail = w;
}

static void
waiter_unlink (struct extent_tree *tree, struct extent_waiter *w)
{
  if (w->prev)
    w->prev->next = w->next;
  else
    tree->waiters_head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    tree->waiters_tail = w->prev;
}

/* May a newcomer take [start, end] now?  Not if a held range overlaps it,
 * nor if a queued waiter does (it came first). */
static bool
range_busy (const struct extent_tree *tree, uint64_t start, uint64_t end)
{
  if (tree_overlaps (tree, start, end))
    return true;
  return tree->waiters_head && waiter_overlaps (tree, start, end, NULL);
}

/* [start, end] was just unlocked: grant, in queue order, every waiter that
 * overlaps it and that no held range and no earlier waiter now blocks.  A
 * waiter granted here becomes a held range, which the tree check then sees
 * for the later waiters. */
static void
grant_waiters (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_waiter *w, *next;

  for (w = tree->waiters_head; w; w = next)
    {
      next = w->next;
      if (!ranges_overlap (w->start, w->end, start, end)
          || tree_overlaps (tree, w->start, w->end)
          || waiter_overlaps (tree, w->start, w->end, w))
        continue;
      waiter_unlink (tree, w);
      tree_insert (tree, w->node);
      w->granted = true;
      /* Signal under tree->lock: once granted is set the waiter may return
       * and destroy its condition variable as soon as it gets the lock. */
      pthread_cond_signal (&w->cond);
    }
}

/* Public API. */

struct extent_tree *
extent_tree_new (void)
{
  struct extent_tree *tree = calloc (1, sizeof *tree);
  int err;

  if (tree == NULL)
    return NULL;
  avl_init (&tree->held, NULL);
  err = pthread_mutex_init (&tree->lock, NULL);
  if (err)
    {
      free (tree);
      errno = err;
      return NULL;
    }
  return tree;
}

int
extent_tree_reserve (struct extent_tree *tree, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      struct extent_node *node = malloc (sizeof *node);
      if (node == NULL)
        return -ENOMEM;
      pthread_mutex_lock (&tree->lock);
      node_release (tree, node);
      pthread_mutex_unlock (&tree->lock);
    }
  return 0;
}

void
extent_tree_free (struct extent_tree *tree)
{
  struct extent_node *node;

  if (tree == NULL)
    return;
  free_subtree (tree->held.root);
  while ((node = tree->free_nodes) != NULL)
    {
      tree->free_nodes = node->free_next;
      free (node);
    }
  pthread_mutex_destroy (&tree->lock);
  free (tree);
}

int
extent_lock (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_waiter w;
  struct extent_node *node;
  int err;

  if (end < start)
    return -EINVAL;

  pthread_mutex_lock (&tree->lock);
  node = node_alloc (tree, start, end);
  if (node == NULL)
    {
      pthread_mutex_unlock (&tree->lock);
      return -ENOMEM;
    }
  if (!range_busy (tree, start, end))
    {
      tree_insert (tree, node);
      pthread_mutex_unlock (&tree->lock);
      return 0;
    }

  /* Queue holding no part of the range; the unlock that frees the last
   * conflict inserts our node and sets granted. */
  err = pthread_cond_init (&w.cond, NULL);
  if (err)
    {
      node_release (tree, node);
      pthread_mutex_unlock (&tree->lock);
      return -err;
    }
  w.start = start;
  w.end = end;
  w.node = node;
  w.granted = false;
  waiter_append (tree, &w);
  while (!w.granted)
    pthread_cond_wait (&w.cond, &tree->lock);
  pthread_mutex_unlock (&tree->lock);
  pthread_cond_destroy (&w.cond);
  return 0;
}

int
extent_trylock (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *node;
  int r = 0;

  if (end < start)
    return -EINVAL;

  pthread_mutex_lock (&tree->lock);
  if (range_busy (tree, start, end))
    r = -EBUSY;
  else
    {
      node = node_alloc (tree, start, end);
      if (node == NULL)
        r = -ENOMEM;
      else
        tree_insert (tree, node);
    }
  pthread_mutex_unlock (&tree->lock);
  return r;
}

void
extent_unlock (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *node;

  pthread_mutex_lock (&tree->lock);
  node = tree_find (tree, start, end);
  if (node == NULL)
    {
      /* Unlocking a range nobody holds would let two lockers share bytes;
       * stop here rather than corrupt the caller's data. */
      fprintf (stderr,
               "blkcache: extent_unlock: [%" PRIu64 ", %" PRIu64
               "] is not a held range\n",
               start, end);
      abort ();
    }
  avl_remove (&tree->held, &node->avl);
  node_release (tree, node);
  if (tree->waiters_head)
    grant_waiters (tree, start, end);
  pthread_mutex_unlock (&tree->lock);
}
