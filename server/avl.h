/* blkcache: an intrusive AVL tree.
 *
 * The owner embeds a struct avl_node in its own record and gets the record
 * back with avl_entry; the tree allocates nothing and never fails.  The
 * owner orders the nodes with a comparison function and may keep augmented
 * data in its record (say, the largest end in each subtree of an interval
 * tree), which the tree keeps current through the tree's update callback.
 *
 * The tree does no locking: the owner serialises every call on one tree,
 * and nothing here sleeps or calls out except to the owner's comparison
 * and update functions.
 */
#ifndef BLKCACHE_AVL_H
#define BLKCACHE_AVL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The links of one record in one tree.  The owner may read left, right
 * and parent (to descend in its own searches) but must not change them. */
struct avl_node
{
  struct avl_node *parent, *left, *right;
  int height; /* of the subtree rooted here: 1 for a leaf */
};

/* Recompute the owner's augmented data of NODE from NODE's own record and
 * from its children (either may be NULL), whose data is already current. */
typedef void avl_update_fn (struct avl_node *node);

/* Order a key (of the owner's choice: a number, or a whole record) against
 * a node: negative, zero or positive as KEY sorts before, with or after
 * NODE. */
typedef int avl_key_cmp_fn (const void *key, const struct avl_node *node);

struct avl_tree
{
  struct avl_node *root;
  avl_update_fn *update; /* NULL when the owner keeps no augmented data */
};

/* The record that holds NODE at OFFSET, or NULL when NODE is NULL. */
static inline void *
avl_record (const struct avl_node *node, size_t offset)
{
  return node ? (char *) node - offset : NULL;
}

/* The record of type TYPE whose member MEMBER is NODE, or NULL when NODE
 * is NULL. */
#define avl_entry(node, type, member)                                          \
  ((type *) avl_record ((node), offsetof (type, member)))

/* Three-way comparison of two numbers, for avl_key_cmp_fn functions. */
static inline int
avl_cmp_u64 (uint64_t a, uint64_t b)
{
  return (a > b) - (a < b);
}

/* Make TREE empty.  UPDATE, when not NULL, is called on every node whose
 * subtree changed, children before parents, after each insert, remove and
 * rotation. */
void avl_init (struct avl_tree *tree, avl_update_fn *update);

/* Link NODE into TREE as the LEFT (or right) child of PARENT, which has
 * none there, or as the root when PARENT is NULL, then rebalance.  This is
 * the second half of avl_insert, for callers who found the place
 * themselves. */
void avl_link (struct avl_tree *tree, struct avl_node *node,
               struct avl_node *parent, bool left);

/* Insert NODE, not in any tree, into TREE at the place of its record's
 * KEY as CMP orders it, after any nodes whose keys compare equal.
 * O(log n). */
static inline void
avl_insert (struct avl_tree *tree, struct avl_node *node, const void *key,
            avl_key_cmp_fn *cmp)
{
  struct avl_node *parent = NULL, *n = tree->root;
  bool left = false;

  while (n)
    {
      parent = n;
      left = cmp (key, n) < 0;
      n = left ? n->left : n->right;
    }
  avl_link (tree, node, parent, left);
}

/* Unlink NODE, which is in TREE, and rebalance.  O(log n). */
void avl_remove (struct avl_tree *tree, struct avl_node *node);

/* The first (leftmost) node of TREE, or NULL when it is empty. */
struct avl_node *avl_first (const struct avl_tree *tree);

/* The node after (before) NODE in order, or NULL.  O(1) amortised over a
 * whole walk, O(log n) at worst. */
struct avl_node *avl_next (struct avl_node *node);
struct avl_node *avl_prev (struct avl_node *node);

/* The first node that does not sort before KEY, or NULL.  O(log n). */
static inline struct avl_node *
avl_find_ge (const struct avl_tree *tree, const void *key, avl_key_cmp_fn *cmp)
{
  struct avl_node *n = tree->root, *found = NULL;

  while (n)
    {
      if (cmp (key, n) <= 0)
        {
          found = n;
          n = n->left;
        }
      else
        n = n->right;
    }
  return found;
}

/* The last node that does not sort after KEY, or NULL.  O(log n). */
static inline struct avl_node *
avl_find_le (const struct avl_tree *tree, const void *key, avl_key_cmp_fn *cmp)
{
  struct avl_node *n = tree->root, *found = NULL;

  while (n)
    {
      if (cmp (key, n) >= 0)
        {
          found = n;
          n = n->right;
        }
      else
        n = n->left;
    }
  return found;
}

#endif /* BLKCACHE_AVL_H */
