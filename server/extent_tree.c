/* blkcache: the extent range-lock tree.
 *
 * Layout.  The held ranges are the nodes of an AVL tree keyed by start.
 * Held ranges never overlap, so ordering them by start also orders them by
 * end, and [start, end] conflicts with a held range exactly when the held
 * range with the greatest start <= end also has end >= start: finding a
 * conflict is one descent.  Insert and remove are one descent each plus
 * rotations on the way back up, so with n held ranges every tree operation
 * is O(log n).  Unused nodes are kept on a freelist (it grows to the
 * high-water mark of held plus queued ranges and is freed with the tree),
 * so once warm, an uncontended lock + unlock pair does no malloc: two mutex
 * round trips and three descents.
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

#include "extent_tree.h"

/* A held range, or a free node (then only left is used, as the link). */
struct extent_node
{
  struct extent_node *left, *right;
  uint64_t start, end;
  int height;
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
  struct extent_node *root;
  struct extent_node *free_nodes;
  struct extent_waiter *waiters_head, *waiters_tail; /* FIFO */
};

static bool
ranges_overlap (uint64_t start1, uint64_t end1, uint64_t start2, uint64_t end2)
{
  return start1 <= end2 && start2 <= end1;
}

/* AVL tree of held ranges. */

static int
node_height (const struct extent_node *node)
{
  return node ? node->height : 0;
}

static void
node_update_height (struct extent_node *node)
{
  int left = node_height (node->left);
  int right = node_height (node->right);

  node->height = 1 + (left > right ? left : right);
}

static struct extent_node *
rotate_right (struct extent_node *node)
{
  struct extent_node *left = node->left;

  node->left = left->right;
  left->right = node;
  node_update_height (node);
  node_update_height (left);
  return left;
}

static struct extent_node *
rotate_left (struct extent_node *node)
{
  struct extent_node *right = node->right;

  node->right = right->left;
  right->left = node;
  node_update_height (node);
  node_update_height (right);
  return right;
}

/* Restore the AVL balance of a subtree whose children are balanced and
 * differ in height by at most 2; returns the new subtree root. */
static struct extent_node *
rebalance (struct extent_node *node)
{
  int balance = node_height (node->left) - node_height (node->right);

  if (balance > 1)
    {
      if (node_height (node->left->left) < node_height (node->left->right))
        node->left = rotate_left (node->left);
      return rotate_right (node);
    }
  if (balance < -1)
    {
      if (node_height (node->right->right) < node_height (node->right->left))
        node->right = rotate_right (node->right);
      return rotate_left (node);
    }
  node_update_height (node);
  return node;
}

/* One child subtree of root, of height old_height before, has just been
 * updated: rebalance root, unless that subtree kept its height, in which
 * case nothing changes at root or above it. */
static struct extent_node *
rebalance_after (struct extent_node *root, const struct extent_node *child,
                 int old_height)
{
  if (node_height (child) == old_height)
    return root;
  return rebalance (root);
}

static struct extent_node *
avl_insert (struct extent_node *root, struct extent_node *node)
{
  int old_height;

  if (root == NULL)
    {
      node->left = node->right = NULL;
      node->height = 1;
      return node;
    }
  if (node->start < root->start)
    {
      old_height = node_height (root->left);
      root->left = avl_insert (root->left, node);
      return rebalance_after (root, root->left, old_height);
    }
  old_height = node_height (root->right);
  root->right = avl_insert (root->right, node);
  return rebalance_after (root, root->right, old_height);
}

/* Unlink the leftmost node of a non-empty subtree into *min. */
static struct extent_node *
avl_remove_min (struct extent_node *root, struct extent_node **min)
{
  int old_height;

  if (root->left == NULL)
    {
      *min = root;
      return root->right;
    }
  old_height = node_height (root->left);
  root->left = avl_remove_min (root->left, min);
  return rebalance_after (root, root->left, old_height);
}

/* Unlink the node holding exactly [start, end] into *removed; leaves
 * *removed untouched (and the tree unchanged) if there is none. */
static struct extent_node *
avl_remove (struct extent_node *root, uint64_t start, uint64_t end,
            struct extent_node **removed)
{
  struct extent_node *min, *right;
  int old_height;

  if (root == NULL)
    return NULL;
  if (start < root->start)
    {
      old_height = node_height (root->left);
      root->left = avl_remove (root->left, start, end, removed);
      return rebalance_after (root, root->left, old_height);
    }
  if (start > root->start)
    {
      old_height = node_height (root->right);
      root->right = avl_remove (root->right, start, end, removed);
      return rebalance_after (root, root->right, old_height);
    }
  if (root->end != end)
    return root;

  *removed = root;
  if (root->left == NULL)
    return root->right;
  if (root->right == NULL)
    return root->left;
  /* Put the successor in root's place. */
  right = avl_remove_min (root->right, &min);
  min->left = root->left;
  min->right = right;
  return rebalance (min);
}

/* Does any held range overlap [start, end]?  Only the held range with the
 * greatest start <= end can: every other one with start <= end lies wholly
 * before it. */
static bool
tree_overlaps (const struct extent_node *node, uint64_t start, uint64_t end)
{
  const struct extent_node *pred = NULL;

  while (node)
    {
      if (node->start <= end)
        {
          pred = node;
          node = node->right;
        }
      else
        node = node->left;
    }
  return pred && pred->end >= start;
}

/* Node freelist. */

static struct extent_node *
node_alloc (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *node = tree->free_nodes;

  if (node)
    tree->free_nodes = node->left;
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
  node->left = tree->free_nodes;
  tree->free_nodes = node;
}

static void
free_subtree (struct extent_node *node)
{
  if (node == NULL)
    return;
  free_subtree (node->left);
  free_subtree (node->right);
  free (node);
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
  if (tree_overlaps (tree->root, start, end))
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
          || tree_overlaps (tree->root, w->start, w->end)
          || waiter_overlaps (tree, w->start, w->end, w))
        continue;
      waiter_unlink (tree, w);
      tree->root = avl_insert (tree->root, w->node);
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
  err = pthread_mutex_init (&tree->lock, NULL);
  if (err)
    {
      free (tree);
      errno = err;
      return NULL;
    }
  return tree;
}

void
extent_tree_free (struct extent_tree *tree)
{
  struct extent_node *node;

  if (tree == NULL)
    return;
  free_subtree (tree->root);
  while ((node = tree->free_nodes) != NULL)
    {
      tree->free_nodes = node->left;
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
      tree->root = avl_insert (tree->root, node);
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
        tree->root = avl_insert (tree->root, node);
    }
  pthread_mutex_unlock (&tree->lock);
  return r;
}

void
extent_unlock (struct extent_tree *tree, uint64_t start, uint64_t end)
{
  struct extent_node *node = NULL;

  pthread_mutex_lock (&tree->lock);
  tree->root = avl_remove (tree->root, start, end, &node);
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
  node_release (tree, node);
  if (tree->waiters_head)
    grant_waiters (tree, start, end);
  pthread_mutex_unlock (&tree->lock);
}
