/* blkcache: an intrusive AVL tree.
 *
 * Layout.  Each node carries its parent, its two children and the height of
 * the subtree it roots (a leaf is 1, an empty subtree 0); the owner's key
 * and any augmented data live in the record around the node.  The AVL rule
 * keeps the heights of every node's two subtrees within one of each other,
 * so a tree of n nodes is less than 1.45 log2(n + 2) high: under 47 levels
 * for 2^32 nodes.
 *
 * Complexity.  Insert is one descent (inline in the caller, so the
 * comparison inlines too) and then one climb from the new leaf back up,
 * rotating where a subtree got two higher than its sibling; remove swaps
 * the node with its successor when it has two children, unlinks it, and
 * climbs the same way from where it was.  Both are O(log n) and rotate at
 * most O(log n) times (insert at most twice).  A climb stops as soon as a
 * subtree keeps its height, since nothing above it can change then, except
 * in a tree with an update callback, where it goes to the root so that
 * every ancestor's augmented data is recomputed.  The parent links make
 * avl_next and avl_prev need no stack: a whole in-order walk is O(n).
 */

#include <config.h>

#include "avl.h"

static int
height (const struct avl_node *node)
{
  return node ? node->height : 0;
}

/* Recompute NODE's height and augmented data from its children's. */
static void
refresh (struct avl_tree *tree, struct avl_node *node)
{
  int left = height (node->left), right = height (node->right);

  node->height = 1 + (left > right ? left : right);
  if (tree->update)
    tree->update (node);
}

/* Make NEW take OLD's place below PARENT (or at the root). */
static void
replace_child (struct avl_tree *tree, struct avl_node *parent,
               struct avl_node *old, struct avl_node *new)
{
  if (parent == NULL)
    tree->root = new;
  else if (parent->left == old)
    parent->left = new;
  else
    parent->right = new;
}

/* NODE's right child when RIGHT, else its left child. */
static struct avl_node **
child (struct avl_node *node, bool right)
{
  return right ? &node->right : &node->left;
}

/* Rotate NODE down to the left (LEFT) or to the right under its child on
 * the other side; returns that child, now the root of the subtree. */
static struct avl_node *
rotate (struct avl_tree *tree, struct avl_node *node, bool left)
{
  struct avl_node **up_link = child (node, left);
  struct avl_node *up = *up_link;
  struct avl_node **inner = child (up, !left);

  *up_link = *inner;
  if (*inner)
    (*inner)->parent = node;
  up->parent = node->parent;
  replace_child (tree, node->parent, node, up);
  *inner = node;
  node->parent = up;
  refresh (tree, node);
  refresh (tree, up);
  return up;
}

/* Restore the AVL rule at NODE, whose subtrees obey it and differ in height
 * by at most 2; returns the root of the subtree that NODE rooted. */
static struct avl_node *
rebalance (struct avl_tree *tree, struct avl_node *node)
{
  int balance = height (node->left) - height (node->right);

  if (balance > 1)
    {
      if (height (node->left->left) < height (node->left->right))
        rotate (tree, node->left, true);
      return rotate (tree, node, false);
    }
  if (balance < -1)
    {
      if (height (node->right->right) < height (node->right->left))
        rotate (tree, node->right, false);
      return rotate (tree, node, true);
    }
  refresh (tree, node);
  return node;
}

/* A subtree below NODE has just changed: rebalance from NODE up.  NODE's
 * stored height is still the one from before the change, so a subtree
 * whose height comes out the same shows where the change stops. */
static void
climb (struct avl_tree *tree, struct avl_node *node)
{
  while (node)
    {
      int old_height = node->height;

      node = rebalance (tree, node);
      if (node->height == old_height && tree->update == NULL)
        return;
      node = node->parent;
    }
}

void
avl_init (struct avl_tree *tree, avl_update_fn *update)
{
  tree->root = NULL;
  tree->update = update;
}

void
avl_link (struct avl_tree *tree, struct avl_node *node, struct avl_node *parent,
          bool left)
{
  node->parent = parent;
  node->left = node->right = NULL;
  node->height = 1;
  if (tree->update)
    tree->update (node);
  if (parent == NULL)
    tree->root = node;
  else if (left)
    parent->left = node;
  else
    parent->right = node;
  climb (tree, parent);
}

void
avl_remove (struct avl_tree *tree, struct avl_node *node)
{
  struct avl_node *only, *succ, *from;

  if (node->left == NULL || node->right == NULL)
    {
      only = node->left ? node->left : node->right;
      if (only)
        only->parent = node->parent;
      replace_child (tree, node->parent, node, only);
      climb (tree, node->parent);
      return;
    }

  /* Two children: NODE's successor, which has no left child, takes NODE's
   * place, and the climb starts where the successor was. */
  succ = node->right;
  while (succ->left)
    succ = succ->left;
  if (succ == node->right)
    from = succ;
  else
    {
      from = succ->parent;
      from->left = succ->right;
      if (succ->right)
        succ->right->parent = from;
      succ->right = node->right;
      succ->right->parent = succ;
    }
  succ->left = node->left;
  succ->left->parent = succ;
  succ->parent = node->parent;
  replace_child (tree, node->parent, node, succ);
  succ->height = node->height;
  climb (tree, from);
}

struct avl_node *
avl_first (const struct avl_tree *tree)
{
  struct avl_node *node = tree->root;

  if (node == NULL)
    return NULL;
  while (node->left)
    node = node->left;
  return node;
}

/* The node after NODE in order when FORWARD, else the one before. */
static struct avl_node *
step (struct avl_node *node, bool forward)
{
  struct avl_node *n = *child (node, forward);

  if (n)
    {
      while (*child (n, !forward))
        n = *child (n, !forward);
      return n;
    }
  while (node->parent && node == *child (node->parent, forward))
    node = node->parent;
  return node->parent;
}

struct avl_node *
avl_next (struct avl_node *node)
{
  return step (node, true);
}

struct avl_node *
avl_prev (struct avl_node *node)
{
  return step (node, false);
}
