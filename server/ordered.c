/* blkcache: the ordered-extent queue.
 *
 * Layout.  Every extent in flight sits in two structures, both under the
 * queue's one mutex:
 *
 *  - an AVL tree (avl.h) keyed by (start, seq) and augmented with the
 *    largest end in each subtree (an interval tree), so the first extent
 *    overlapping a range is found in O(log n) even when extents overlap
 *    each other;
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
 * someone else who does.  Callers sleep on the condition variable of their
 * generation's parity: the end of a sync wakes the callers it served and
 * one caller of the next generation, to run it, and no one else (with one
 * condition variable, every FUA write in flight woke at every sync).
 *
 * Failed syncs.  A failed sync latches (sync_failed) and records the
 * stamp it started at (failed_stamp): a caller whose stamp is at or below
 * it had its extents covered by a failed sync and fails whenever it
 * arrives, even after the latch is cleared; while latched every caller
 * fails without a sync being run.
 *
 * Locking: group commit has its own mutex, sync_lock, so its sleepers and
 * wakers do not contend with the extents' q->lock; sync_lock is taken
 * before q->lock, never after.  Nothing here calls out with a lock held,
 * except that ordered_sync drops sync_lock around the caller's sync
 * function.
 */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "avl.h"
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
  uint64_t seq;                       /* order of addition, unique */
  uint64_t max_end;                   /* largest end in this subtree */
  struct avl_node avl;                /* tree, keyed by (start, seq) */
  struct ordered_extent *prev, *next; /* list, oldest first */
  pthread_cond_t done;
  unsigned refs;    /* the adder's until completion, plus one per waiter */
  unsigned waiters; /* threads sleeping on done */
  enum ordered_kind kind;
  enum ordered_state state;
};

struct ordered_queue
{
  pthread_mutex_t lock;
  struct avl_tree tree;
  struct ordered_extent *oldest, *newest;
  uint64_t next_seq;
  _Atomic uint64_t running; /* extents in flight (the stats' in_flight);
                             * changed under lock, read without */
  uint64_t stamp;  /* completions so far */
  uint64_t error_seq; /* failed writebacks so far */
  int last_error;     /* the errno of the latest of them */

  /* Group commit, under sync_lock. */
  pthread_mutex_t sync_lock;
  pthread_cond_t sync_cond[2]; /* callers of even and odd generations */
  uint64_t syncs, sync_callers; /* the stats' counters */
  bool sync_running;
  uint64_t sync_stamp;  /* stamp the running (or last) sync started at */
  uint64_t started_gen; /* generation of the latest sync started */
  uint64_t done_gen;    /* generation of the latest sync finished */
  uint64_t sync_errors; /* syncs that failed */
  bool sync_failed;     /* a failed sync is latched */
  uint64_t failed_stamp; /* stamp the latest failed sync started at */
  int failed_err;        /* and its errno */

  struct ordered_stats stats;
};

/* Interval tree. */

static struct ordered_extent *
extent_of (const struct avl_node *avl)
{
  return avl_entry (avl, struct ordered_extent, avl);
}

/* The avl_update_fn of the tree: recompute the largest end of a subtree. */
static void
update_max_end (struct avl_node *avl)
{
  struct ordered_extent *oe = extent_of (avl);
  struct ordered_extent *left = extent_of (avl->left);
  struct ordered_extent *right = extent_of (avl->right);

  oe->max_end = oe->end;
  if (left && left->max_end > oe->max_end)
    oe->max_end = left->max_end;
  if (right && right->max_end > oe->max_end)
    oe->max_end = right->max_end;
}

/* Order the extent KEY against a node, by (start, seq). */
static int
cmp_start_seq (const void *key, const struct avl_node *avl)
{
  const struct ordered_extent *a = key, *b = extent_of (avl);

  if (a->start != b->start)
    return avl_cmp_u64 (a->start, b->start);
  return avl_cmp_u64 (a->seq, b->seq);
}

/* The overlapping extent of [start, end] with the lowest key among those
 * with seq < before, in the subtree AVL, or NULL.  Subtrees whose max_end
 * is below start are skipped, and so is everything to the right of a start
 * beyond end. */
static struct ordered_extent *
tree_first_overlap (const struct avl_node *avl, uint64_t start, uint64_t end,
                    uint64_t before)
{
  struct ordered_extent *oe = extent_of (avl), *found;

  if (oe == NULL || oe->max_end < start)
    return NULL;
  found = tree_first_overlap (avl->left, start, end, before);
  if (found)
    return found;
  if (oe->start > end)
    return NULL;
  if (oe->end >= start && oe->seq < before)
    return oe;
  return tree_first_overlap (avl->right, start, end, before);
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
  avl_init (&q->tree, update_max_end);
  pthread_mutex_init (&q->lock, NULL);
  pthread_mutex_init (&q->sync_lock, NULL);
  pthread_cond_init (&q->sync_cond[0], NULL);
  pthread_cond_init (&q->sync_cond[1], NULL);
  return q;
}

void
ordered_queue_free (struct ordered_queue *q)
{
  if (q == NULL)
    return;
  pthread_cond_destroy (&q->sync_cond[0]);
  pthread_cond_destroy (&q->sync_cond[1]);
  pthread_mutex_destroy (&q->sync_lock);
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
  avl_insert (&q->tree, &oe->avl, oe, cmp_start_seq);
  oe->next = NULL;
  oe->prev = q->newest;
  if (q->newest)
    q->newest->next = oe;
  else
    q->oldest = oe;
  q->newest = oe;
  q->stats.added++;
  uint64_t running = atomic_fetch_add (&q->running, 1) + 1;
  if (running > q->stats.peak_in_flight)
    q->stats.peak_in_flight = running;
  pthread_mutex_unlock (&q->lock);

  *oep = oe;
  return 0;
}

uint64_t
ordered_complete (struct ordered_queue *q, struct ordered_extent *oe, int err)
{
  uint64_t stamp;

  pthread_mutex_lock (&q->lock);
  avl_remove (&q->tree, &oe->avl);
  if (oe->prev)
    oe->prev->next = oe->next;
  else
    q->oldest = oe->next;
  if (oe->next)
    oe->next->prev = oe->prev;
  else
    q->newest = oe->prev;
  atomic_fetch_sub (&q->running, 1);

  if (err && oe->kind == ORDERED_WRITEBACK)
    {
      q->error_seq++;
      q->last_error = err;
    }
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

  /* Every extent is added by a holder of its range's lock.  One that
   * overlaps a range the caller holds was added before the caller took
   * it, so its addition to the count is visible here: with none in
   * flight, none overlaps, and the queue's lock is not needed. */
  if (atomic_load_explicit (&q->running, memory_order_relaxed) == 0)
    return false;
  pthread_mutex_lock (&q->lock);
  oe = tree_first_overlap (q->tree.root, start, end, UINT64_MAX);
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
  while ((oe = tree_first_overlap (q->tree.root, start, end, before)) != NULL)
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

uint64_t
ordered_error_seq (struct ordered_queue *q)
{
  uint64_t seq;

  pthread_mutex_lock (&q->lock);
  seq = q->error_seq;
  pthread_mutex_unlock (&q->lock);
  return seq;
}

int
ordered_check_error (struct ordered_queue *q, uint64_t seq)
{
  int err;

  pthread_mutex_lock (&q->lock);
  err = q->error_seq != seq ? q->last_error : 0;
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

/* The result of ordered_sync for a caller with STAMP, once the sync it
 * needed has ended (see ordered.h).  Called with sync_lock held. */
static int
sync_result (struct ordered_queue *q, uint64_t stamp)
{
  if (q->sync_errors > 0 && q->failed_stamp >= stamp)
    return q->failed_err;
  return q->sync_failed ? -EIO : 0;
}

int
ordered_sync (struct ordered_queue *q, uint64_t stamp,
              int (*sync) (void *opaque), void *opaque)
{
  uint64_t gen;
  int err;

  pthread_mutex_lock (&q->sync_lock);
  q->sync_callers++;
  /* The sync this caller needs: the running or last one if it started at or
   * after STAMP, else the next one to start (which starts after STAMP,
   * since the completion stamped STAMP has already happened). */
  if (q->started_gen > 0 && q->sync_stamp >= stamp)
    gen = q->started_gen;
  else
    gen = q->started_gen + 1;

  while (q->done_gen < gen && !q->sync_failed)
    {
      if (q->sync_running)
        {
          pthread_cond_wait (&q->sync_cond[gen & 1], &q->sync_lock);
          continue;
        }
      /* No sync is running, so started_gen == done_gen < gen, and the next
       * generation is exactly the one this caller needs. */
      q->sync_running = true;
      q->sync_stamp = ordered_stamp (q);
      q->started_gen++;
      q->syncs++;
      pthread_mutex_unlock (&q->sync_lock);
      err = sync (opaque);
      pthread_mutex_lock (&q->sync_lock);
      q->sync_running = false;
      q->done_gen = q->started_gen;
      if (err)
        {
          q->sync_errors++;
          q->sync_failed = true;
          q->failed_stamp = q->sync_stamp;
          q->failed_err = err;
          /* Everyone waiting fails now, the next generation's too. */
          pthread_cond_broadcast (&q->sync_cond[(q->done_gen + 1) & 1]);
        }
      /* The callers served; one of the next generation's, if any, runs
       * it.  Nobody waits for a later one yet. */
      pthread_cond_broadcast (&q->sync_cond[q->done_gen & 1]);
      pthread_cond_signal (&q->sync_cond[(q->done_gen + 1) & 1]);
    }
  err = sync_result (q, stamp);
  pthread_mutex_unlock (&q->sync_lock);
  return err;
}

bool
ordered_sync_failed (struct ordered_queue *q)
{
  bool failed;

  pthread_mutex_lock (&q->sync_lock);
  failed = q->sync_failed;
  pthread_mutex_unlock (&q->sync_lock);
  return failed;
}

bool
ordered_clear_sync_error (struct ordered_queue *q)
{
  bool failed;

  pthread_mutex_lock (&q->sync_lock);
  failed = q->sync_failed;
  q->sync_failed = false;
  pthread_mutex_unlock (&q->sync_lock);
  return failed;
}

void
ordered_get_stats (struct ordered_queue *q, struct ordered_stats *stats)
{
  pthread_mutex_lock (&q->lock);
  *stats = q->stats;
  stats->in_flight = atomic_load (&q->running);
  pthread_mutex_unlock (&q->lock);
  pthread_mutex_lock (&q->sync_lock);
  stats->syncs = q->syncs;
  stats->sync_callers = q->sync_callers;
  stats->sync_errors = q->sync_errors;
  stats->sync_failed = q->sync_failed;
  pthread_mutex_unlock (&q->sync_lock);
}
