/* blkcache: the ordered-extent queue.
 *
 * Layout.  Every extent in flight sits in two structures, both under the
 * queue's one mutex:
 *
 *  - an AVL tree keyed by (start, seq) and augmented with the largest end
 *    in each subtree (an interval tree), so the first extent overlapping a
 *    range is found in O(log n) even when extents overlap each other;
 *  - a list in order of addition (seq order), so waiting for everything in
 *    flight at some moment walks from the oldest extent in O(1) per step.
 *
 * Adding and completing are O(log n), n being the extents in flight (which
 * the engine bounds by its queue depths); a lookup is O(log n); a wait for a
 * range costs O((k + 1) log n) per extent it sleeps on, k being the newer
 * overlapping extents it skips.
 *
 * Lifetime.  An extent is reference counted: the adder holds one reference
 * until ordered_complete, and each waiter takes one before it sleeps and
 * drops it after it wakes, so the record and its condition variable outlive
 * every sleeper.  Completion unlinks the extent from the tree and the list
 * at once, so only waiters that already hold a reference ever see it again.
 *
 * Starvation.  Waits are bounded by a sequence number taken when the wait
 * begins: only extents with a lower seq are waited for.
 *
 * Group commit.  Every completion increments a stamp.  A sync that starts
 * records the stamp of that moment; it covers every extent completed at or
 * before it.  Syncs are serialised and numbered (generations); a caller
 * needs the first generation that starts after its stamp, and either finds
 * it running, waits for the current one to end and then runs it, or joins
 * someone else who does.
 *
 * Locking: q->lock is a leaf.  Nothing here calls out with it held, except
 * that ordered_sync drops it around the caller's sync function.
 */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "ordered.h"

enum ordered_state
{
  ORDERED_RUNNING,
  ORDERED_COMPLETE,
};

struct ordered_extent
{
  uint64_t start;
  uint64_t end;
  uint64_t seq;                        /* order of addition, unique */
  uint64_t max_end;                    /* largest end in this subtree */
  struct ordered_extent *left, *right; /* tree */
  struct ordered_extent *prev, *next;  /* list, oldest first */
  pthread_cond_t done;
  unsigned refs;    /* the adder's until completion, plus one per waiter */
  unsigned waiters; /* threads sleeping on done */
  int height;
  enum ordered_kind kind;
  enum ordered_state state;
};

struct ordered_queue
{
  pthread_mutex_t lock;
  struct ordered_extent *root;
  struct ordered_extent *oldest, *newest;
  uint64_t next_seq;
  uint64_t stamp;  /* completions so far */
  int first_error; /* of a writeback, since the last ordered_take_error */

  /* Group commit. */
  pthread_cond_t sync_done;
  bool sync_running;
  uint64_t sync_stamp;  /* stamp the running (or last) sync started at */
  uint64_t started_gen; /* generation of the latest sync started */
  uint64_t done_gen;    /* generation of the latest sync finished */
  uint64_t failed_gen;  /* generation of the latest failed sync, or 0 */
  int failed_err;

  struct ordered_stats stats;
};

/* Interval tree. */

static int
height (const struct ordered_extent *oe)
{
  return oe ? oe->height : 0;
}

static void
update (struct ordered_extent *oe)
{
  int hl = height (oe->left), hr = height (oe->right);

  oe->height = (hl > hr ? hl : hr) + 1;
  oe->max_end = oe->end;
  if (oe->left && oe->left->max_end > oe->max_end)
    oe->max_end = oe->left->max_end;
  if (oe->right && oe->right->max_end > oe->max_end)
    oe->max_end = oe->right->max_end;
}

static struct ordered_extent *
rotate_right (struct ordered_extent *oe)
{
  struct ordered_extent *l = oe->left;

  oe->left = l->right;
  l->right = oe;
  update (oe);
  update (l);
  return l;
}

static struct ordered_extent *
rotate_left (struct ordered_extent *oe)
{
  struct ordered_extent *r = oe->right;

  oe->right = r->left;
  r->left = oe;
  update (oe);
  update (r);
  return r;
}

static struct ordered_extent *
rebalance (struct ordered_extent *oe)
{
  int balance;

  update (oe);
  balance = height (oe->left) - height (oe->right);
  if (balance > 1)
    {
      if (height (oe->left->left) < height (oe->left->right))
        oe->left = rotate_left (oe->left);
      return rotate_right (oe);
    }
  if (balance < -1)
    {
      if (height (oe->right->right) < height (oe->right->left))
        oe->right = rotate_right (oe->right);
      return rotate_left (oe);
    }
  return oe;
}

static bool
key_less (const struct ordered_extent *a, const struct ordered_extent *b)
{
  return a->start < b->start || (a->start == b->start && a->seq < b->seq);
}

static struct ordered_extent *
tree_insert (struct ordered_extent *root, struct ordered_extent *oe)
{
  if (root == NULL)
    {
      oe->left = oe->right = NULL;
      update (oe);
      return oe;
    }
  if (key_less (oe, root))
    root->left = tree_insert (root->left, oe);
  else
    root->right = tree_insert (root->right, oe);
  return rebalance (root);
}

static struct ordered_extent *
tree_remove_min (struct ordered_extent *root, struct ordered_extent **min)
{
  if (root->left == NULL)
    {
      *min = root;
      return root->right;
    }
  root->left = tree_remove_min (root->left, min);
  return rebalance (root);
}

/* Remove OE, which is in the tree ROOT. */
static struct ordered_extent *
tree_remove (struct ordered_extent *root, struct ordered_extent *oe)
{
  struct ordered_extent *l, *r, *min;

  if (root != oe)
    {
      if (key_less (oe, root))
        root->left = tree_remove (root->left, oe);
      else
        root->right = tree_remove (root->right, oe);
      return rebalance (root);
    }
  l = root->left;
  r = root->right;
  if (r == NULL)
    return l;
  r = tree_remove_min (r, &min);
  min->left = l;
  min->right = r;
  return rebalance (min);
}

/* The overlapping extent of [start, end] with the lowest key among those
 * with seq < before, or NULL.  Subtrees whose max_end is below start are
 * skipped, and so is everything to the right of a start beyond end. */
static struct ordered_extent *
tree_first_overlap (struct ordered_extent *oe, uint64_t start, uint64_t end,
                    uint64_t before)
{
  struct ordered_extent *found;

  if (oe == NULL || oe->max_end < start)
    return NULL;
  found = tree_first_overlap (oe->left, start, end, before);
  if (found)
    return found;
  if (oe->start > end)
    return NULL;
  if (oe->end >= start && oe->seq < before)
    return oe;
  return tree_first_overlap (oe->right, start, end, before);
}

/* Extents. */

static void
put_extent (struct ordered_extent *oe)
{
  if (--oe->refs > 0)
    return;
  pthread_cond_destroy (&oe->done);
  free (oe);
}

/* Sleep until OE completes.  Called with q->lock held. */
static void
wait_extent (struct ordered_queue *q, struct ordered_extent *oe)
{
  oe->refs++;
  oe->waiters++;
  q->stats.waits++;
  while (oe->state != ORDERED_COMPLETE)
    pthread_cond_wait (&oe->done, &q->lock);
  oe->waiters--;
  put_extent (oe);
}

struct ordered_queue *
ordered_queue_new (void)
{
  struct ordered_queue *q = calloc (1, sizeof *q);

  if (q == NULL)
    return NULL;
  pthread_mutex_init (&q->lock, NULL);
  pthread_cond_init (&q->sync_done, NULL);
  return q;
}

void
ordered_queue_free (struct ordered_queue *q)
{
  if (q == NULL)
    return;
  pthread_cond_destroy (&q->sync_done);
  pthread_mutex_destroy (&q->lock);
  free (q);
}

int
ordered_add (struct ordered_queue *q, uint64_t start, uint64_t end,
             enum ordered_kind kind, struct ordered_extent **oep)
{
  struct ordered_extent *oe;

  if (end < start)
    return -EINVAL;
  oe = malloc (sizeof *oe);
  if (oe == NULL)
    return -ENOMEM;
  oe->start = start;
  oe->end = end;
  oe->kind = kind;
  oe->state = ORDERED_RUNNING;
  oe->refs = 1;
  oe->waiters = 0;
  pthread_cond_init (&oe->done, NULL);

  pthread_mutex_lock (&q->lock);
  oe->seq = q->next_seq++;
  q->root = tree_insert (q->root, oe);
  oe->next = NULL;
  oe->prev = q->newest;
  if (q->newest)
    q->newest->next = oe;
  else
    q->oldest = oe;
  q->newest = oe;
  q->stats.added++;
  if (++q->stats.in_flight > q->stats.peak_in_flight)
    q->stats.peak_in_flight = q->stats.in_flight;
  pthread_mutex_unlock (&q->lock);

  *oep = oe;
  return 0;
}

uint64_t
ordered_complete (struct ordered_queue *q, struct ordered_extent *oe, int err)
{
  uint64_t stamp;

  pthread_mutex_lock (&q->lock);
  q->root = tree_remove (q->root, oe);
  if (oe->prev)
    oe->prev->next = oe->next;
  else
    q->oldest = oe->next;
  if (oe->next)
    oe->next->prev = oe->prev;
  else
    q->newest = oe->prev;
  q->stats.in_flight--;

  if (err && oe->kind == ORDERED_WRITEBACK && q->first_error == 0)
    q->first_error = err;
  stamp = ++q->stamp;
  oe->state = ORDERED_COMPLETE;
  if (oe->waiters)
    pthread_cond_broadcast (&oe->done);
  put_extent (oe);
  pthread_mutex_unlock (&q->lock);
  return stamp;
}

bool
ordered_lookup (struct ordered_queue *q, uint64_t start, uint64_t end,
                struct ordered_info *info)
{
  struct ordered_extent *oe;

  pthread_mutex_lock (&q->lock);
  oe = tree_first_overlap (q->root, start, end, UINT64_MAX);
  if (oe && info)
    {
      info->start = oe->start;
      info->end = oe->end;
      info->kind = oe->kind;
    }
  pthread_mutex_unlock (&q->lock);
  return oe != NULL;
}

void
ordered_wait_range (struct ordered_queue *q, uint64_t start, uint64_t end)
{
  struct ordered_extent *oe;
  uint64_t before;

  pthread_mutex_lock (&q->lock);
  before = q->next_seq;
  while ((oe = tree_first_overlap (q->root, start, end, before)) != NULL)
    wait_extent (q, oe);
  pthread_mutex_unlock (&q->lock);
}

void
ordered_wait_all (struct ordered_queue *q)
{
  uint64_t before;

  pthread_mutex_lock (&q->lock);
  before = q->next_seq;
  while (q->oldest && q->oldest->seq < before)
    wait_extent (q, q->oldest);
  pthread_mutex_unlock (&q->lock);
}

int
ordered_take_error (struct ordered_queue *q)
{
  int err;

  pthread_mutex_lock (&q->lock);
  err = q->first_error;
  q->first_error = 0;
  pthread_mutex_unlock (&q->lock);
  return err;
}

uint64_t
ordered_stamp (struct ordered_queue *q)
{
  uint64_t stamp;

  pthread_mutex_lock (&q->lock);
  stamp = q->stamp;
  pthread_mutex_unlock (&q->lock);
  return stamp;
}

int
ordered_sync (struct ordered_queue *q, uint64_t stamp,
              int (*sync) (void *opaque), void *opaque)
{
  uint64_t gen;
  int err;

  pthread_mutex_lock (&q->lock);
  q->stats.sync_callers++;
  /* The sync this caller needs: the running or last one if it started at or
   * after STAMP, else the next one to start (which starts after STAMP,
   * since the completion stamped STAMP has already happened). */
  if (q->started_gen > 0 && q->sync_stamp >= stamp)
    gen = q->started_gen;
  else
    gen = q->started_gen + 1;

  while (q->done_gen < gen)
    {
      if (q->sync_running)
        {
          pthread_cond_wait (&q->sync_done, &q->lock);
          continue;
        }
      /* No sync is running, so started_gen == done_gen < gen, and the next
       * generation is exactly the one this caller needs. */
      q->sync_running = true;
      q->sync_stamp = q->stamp;
      q->started_gen++;
      q->stats.syncs++;
      pthread_mutex_unlock (&q->lock);
      err = sync (opaque);
      pthread_mutex_lock (&q->lock);
      q->sync_running = false;
      q->done_gen = q->started_gen;
      if (err)
        {
          q->failed_gen = q->done_gen;
          q->failed_err = err;
        }
      pthread_cond_broadcast (&q->sync_done);
    }
  err = q->failed_gen >= gen ? q->failed_err : 0;
  pthread_mutex_unlock (&q->lock);
  return err;
}

void
ordered_get_stats (struct ordered_queue *q, struct ordered_stats *stats)
{
  pthread_mutex_lock (&q->lock);
  *stats = q->stats;
  pthread_mutex_unlock (&q->lock);
}
