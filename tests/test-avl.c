/* Unit tests of server/avl.c, the intrusive AVL tree: random inserts and
 * removes checked against a sorted array, for order, links, balance and
 * augmented data. */

#include <config.h>

#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "avl.h"

enum
{
  MAX_ITEMS = 600,
};

/* A record in the tree, augmented with its subtree's size and the largest
 * weight in its subtree. */
struct item
{
  struct avl_node node;
  uint64_t key;
  uint64_t weight;
  uint64_t max_weight; /* augmented */
  unsigned size;       /* augmented */
};

static struct item *
item_of (const struct avl_node *node)
{
  return avl_entry (node, struct item, node);
}

static void
update_item (struct avl_node *node)
{
  struct item *it = item_of (node);
  struct item *left = item_of (node->left), *right = item_of (node->right);

  it->size = 1;
  it->max_weight = it->weight;
  if (left)
    {
      it->size += left->size;
      if (left->max_weight > it->max_weight)
        it->max_weight = left->max_weight;
    }
  if (right)
    {
      it->size += right->size;
      if (right->max_weight > it->max_weight)
        it->max_weight = right->max_weight;
    }
}

static int
cmp_key (const void *key, const struct avl_node *node)
{
  return avl_cmp_u64 (*(const uint64_t *) key, item_of (node)->key);
}

/* The oracle: the items in the tree, in order of key and, among equal
 * keys, of insertion. */
struct oracle
{
  struct item *items[MAX_ITEMS];
  size_t n;
};

static void
oracle_insert (struct oracle *o, struct item *it)
{
  size_t i = o->n;

  while (i > 0 && o->items[i - 1]->key > it->key)
    {
      o->items[i] = o->items[i - 1];
      i--;
    }
  o->items[i] = it;
  o->n++;
}

static struct item *
oracle_remove (struct oracle *o, size_t i)
{
  struct item *it = o->items[i];

  for (; i + 1 < o->n; i++)
    o->items[i] = o->items[i + 1];
  o->n--;
  return it;
}

/* A pseudo-random number below N (N <= 2^31), from the nrand48 STATE. */
static uint64_t
random_below (unsigned short state[3], uint64_t n)
{
  return (uint64_t) nrand48 (state) % n;
}

/* Check the subtree at NODE below PARENT: links, heights, the AVL rule and
 * (when AUGMENTED) the augmented data.  Returns its height. */
static int
check_subtree (const struct avl_node *node, const struct avl_node *parent,
               bool augmented)
{
  int left, right;
  struct item *it, *l, *r;
  unsigned size;
  uint64_t max_weight;

  if (node == NULL)
    return 0;
  cr_assert_eq (node->parent, parent);
  left = check_subtree (node->left, node, augmented);
  right = check_subtree (node->right, node, augmented);
  cr_assert_leq (abs (left - right), 1, "unbalanced: %d vs %d", left, right);
  cr_assert_eq (node->height, 1 + (left > right ? left : right));
  if (augmented)
    {
      it = item_of (node);
      l = item_of (node->left);
      r = item_of (node->right);
      size = 1 + (l ? l->size : 0) + (r ? r->size : 0);
      max_weight = it->weight;
      if (l && l->max_weight > max_weight)
        max_weight = l->max_weight;
      if (r && r->max_weight > max_weight)
        max_weight = r->max_weight;
      cr_assert_eq (it->size, size);
      cr_assert_eq (it->max_weight, max_weight);
    }
  return node->height;
}

/* The greatest height an AVL tree of N nodes may have: the sparsest tree
 * of height h has F(h) = F(h - 1) + F(h - 2) + 1 nodes. */
static int
max_height (size_t n)
{
  size_t sparsest = 1, below = 0, next; /* F(h), F(h - 1) */
  int h = 1;

  if (n == 0)
    return 0;
  for (;;)
    {
      next = sparsest + below + 1;
      if (next > n)
        return h;
      below = sparsest;
      sparsest = next;
      h++;
    }
}

/* Check TREE against O: structure, balance, height bound, both walks and
 * the search helpers for a few keys. */
static void
check_tree (const struct avl_tree *tree, const struct oracle *o, bool augmented,
            unsigned short rnd[3], uint64_t key_range)
{
  struct avl_node *node, *last = NULL;
  int height = check_subtree (tree->root, NULL, augmented);
  size_t i, j;
  uint64_t key;
  struct item *ge, *le;

  cr_assert_leq (height, max_height (o->n), "height %d for %zu nodes", height,
                 o->n);
  if (augmented && o->n > 0)
    cr_assert_eq (item_of (tree->root)->size, o->n);

  for (i = 0, node = avl_first (tree); node; node = avl_next (node), i++)
    {
      cr_assert_lt (i, o->n);
      cr_assert_eq (item_of (node), o->items[i], "wrong item at %zu", i);
      last = node;
    }
  cr_assert_eq (i, o->n);
  for (node = last; node; node = avl_prev (node))
    cr_assert_eq (item_of (node), o->items[--i]);
  cr_assert_eq (i, 0);

  for (j = 0; j < 4; j++)
    {
      key = random_below (rnd, key_range + 2);
      ge = item_of (avl_find_ge (tree, &key, cmp_key));
      le = item_of (avl_find_le (tree, &key, cmp_key));
      for (i = 0; i < o->n && o->items[i]->key < key; i++)
        ;
      cr_assert_eq (ge, i < o->n ? o->items[i] : NULL, "find_ge %lu",
                    (unsigned long)key);
      for (i = o->n; i > 0 && o->items[i - 1]->key > key; i--)
        ;
      cr_assert_eq (le, i > 0 ? o->items[i - 1] : NULL, "find_le %lu",
                    (unsigned long)key);
    }
}

/* Random inserts and removes, keys in [0, KEY_RANGE] (so some repeat),
 * with the tree growing to about MAX_ITEMS and shrinking back to empty. */
static void
random_ops (bool augmented, uint64_t key_range, unsigned short seed)
{
  static struct item items[MAX_ITEMS];
  struct item *free_items[MAX_ITEMS], *it;
  size_t nr_free = 0, i, step;
  struct avl_tree tree;
  struct oracle o = { .n = 0 };
  unsigned short rnd[3] = { seed, 0x330e, 0x1234 };
  bool growing;

  for (i = 0; i < MAX_ITEMS; i++)
    free_items[nr_free++] = &items[i];
  avl_init (&tree, augmented ? update_item : NULL);
  check_tree (&tree, &o, augmented, rnd, key_range);

  for (step = 0; step < 6 * MAX_ITEMS; step++)
    {
      /* Mostly insert for the first half, mostly remove for the second. */
      growing = step < 3 * MAX_ITEMS;
      if (o.n == 0
          || (nr_free > 0 && random_below (rnd, 4) < (growing ? 3u : 1u)))
        {
          it = free_items[--nr_free];
          it->key = random_below (rnd, key_range + 1);
          it->weight = random_below (rnd, 1000000);
          avl_insert (&tree, &it->node, &it->key, cmp_key);
          oracle_insert (&o, it);
        }
      else
        {
          it = oracle_remove (&o, random_below (rnd, o.n));
          avl_remove (&tree, &it->node);
          free_items[nr_free++] = it;
        }
      check_tree (&tree, &o, augmented, rnd, key_range);
    }
  while (o.n > 0)
    {
      it = oracle_remove (&o, random_below (rnd, o.n));
      avl_remove (&tree, &it->node);
      check_tree (&tree, &o, augmented, rnd, key_range);
    }
  cr_assert_null (tree.root);
}

Test (avl, empty)
{
  struct avl_tree tree;
  uint64_t key = 0;

  avl_init (&tree, NULL);
  cr_assert_null (avl_first (&tree));
  cr_assert_null (avl_find_ge (&tree, &key, cmp_key));
  cr_assert_null (avl_find_le (&tree, &key, cmp_key));
}

Test (avl, random_augmented) { random_ops (true, INT32_MAX, 1); }

Test (avl, random_plain) { random_ops (false, INT32_MAX, 2); }

Test (avl, random_duplicate_keys)
{
  random_ops (true, 40, 3);
  random_ops (false, 40, 4);
}

/* An ascending run rotates at almost every insert. */
Test (avl, sequential)
{
  static struct item items[MAX_ITEMS];
  struct avl_tree tree;
  struct oracle o = { .n = 0 };
  unsigned short rnd[3] = { 5, 0x330e, 0x1234 };
  size_t i;

  avl_init (&tree, update_item);
  for (i = 0; i < MAX_ITEMS; i++)
    {
      items[i].key = i;
      items[i].weight = MAX_ITEMS - i;
      avl_insert (&tree, &items[i].node, &items[i].key, cmp_key);
      oracle_insert (&o, &items[i]);
      check_tree (&tree, &o, true, rnd, MAX_ITEMS);
    }
  for (i = 0; i < MAX_ITEMS; i++)
    {
      avl_remove (&tree, &items[i].node);
      oracle_remove (&o, 0);
      check_tree (&tree, &o, true, rnd, MAX_ITEMS);
    }
  cr_assert_null (tree.root);
}
