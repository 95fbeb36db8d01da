/* blkcache: the miss-ratio curve by miniature simulation.  See minisim.h.
 *
 * Sampling.  Each block number is mixed into 64 bits; the block is sampled
 * iff the low 24 bits are below the threshold T, a rate R = T / 2^24.  R is
 * the configured rate, lowered at creation until the seven miniature caches
 * (a cache of S blocks holds S * R, at least MIN_CAPACITY) and their ghosts
 * fit in max_entries.  The fewer blocks a miniature cache holds, the more
 * its estimate errs (on Zipf reads, test-minisim: within 5 points at 16 to
 * 66 blocks, 3 from 133 up).  A resize builds seven new caches at the rate
 * chosen again for the new capacity, swaps them in under the lock and
 * starts the window afresh (the old caches' contents would not fit the new
 * sizes).
 *
 * A miniature cache.  The same S3-FIFO as cache.c, all its blocks CLEAN and
 * unpinned: a small FIFO of a tenth of the capacity (at least 1), a main
 * FIFO, a ghost that remembers the last (capacity - capacity / 10) blocks
 * evicted from small, frequencies 0..3 raised by hits.  Resident and ghost
 * blocks are nodes of one pool (capacity + ghost size of them), each in one
 * of three doubly linked lists (small, main, ghost) and in one chained hash
 * table by block number.  A block evicted from small keeps its node, which
 * moves to the ghost list stamped with the count of ghost additions; the
 * ghost forgets the blocks added ghost-size additions ago or earlier, like
 * cache.c's ring.  Every operation is O(1) but eviction, which like cache.c
 * passes over at most one lap of small and four of main.
 *
 * The estimate.  Every block read, sampled or not, adds to an atomic count
 * (seen).  A sampled read that misses in a miniature cache stands for 1 / R
 * misses; the miss ratio is the sampled misses over seen * R.  Counting
 * the hits instead would make the curve follow whether a few very hot
 * blocks happen to be sampled; they are hits at every size, so charging
 * what the sample lacks of seen * R to the hits cancels that (SHARDS_adj,
 * Waldspurger et al., FAST 2015).  Counts come in two epochs that
 * alternate: when the current one has seen window / 2 reads, the other is
 * cleared and becomes current.
 *
 * Locking: one mutex over all the miniature caches and counts but seen.
 * A sampled read holds it for seven lookups (and evictions).  T is an
 * atomic that readers test without the lock; a resize may change it, so
 * a sampled read tests it again under the lock.
 *
 * Memory: 32 bytes a node, 4 a hash bucket (1 to 2 per node): see
 * minisim_get_stats.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "minisim.h"

#define HASH_BITS 24
#define HASH_SPACE (1u << HASH_BITS)
#define NONE UINT32_MAX
#define MAX_FREQ 3
#define MIN_CAPACITY 8
#define MAX_NODES (UINT32_MAX / 4)

enum list_id
{
  LIST_SMALL,
  LIST_MAIN,
  LIST_GHOST,
  LIST_FREE,
};

struct node
{
  uint64_t blk;
  uint64_t ghost_seq;  /* in the ghost: its addition's number */
  uint32_t prev, next; /* in its list; next links the free list */
  uint32_t hnext;      /* in its hash chain */
  uint8_t list;        /* enum list_id */
  uint8_t freq;
};

struct list
{
  uint32_t head, tail; /* newest, oldest */
  uint32_t count;
};

struct mini
{
  uint32_t capacity, small_target, ghost_size;
  struct node *nodes; /* capacity + ghost_size */
  uint32_t *buckets, bucket_mask;
  uint32_t free_list;
  struct list lists[3]; /* small, main, ghost */
  uint64_t ghost_adds;
};

struct epoch
{
  uint64_t seen_before; /* seen when this epoch ended; current: unused */
  uint64_t references;
  uint64_t misses[MINISIM_SIZES];
};

struct minisim
{
  _Alignas(64) _Atomic uint64_t seen; /* block reads in the current epoch */
  _Alignas(64) pthread_mutex_t lock;
  _Atomic uint32_t threshold; /* changed only by minisim_resize */
  uint32_t start_threshold;   /* the configured rate's */
  uint32_t max_entries;
  uint64_t capacity, window, references;
  size_t memory;
  struct epoch epochs[2];
  int cur;
  struct mini minis[MINISIM_SIZES];
};

static uint64_t
mix64 (uint64_t x)
{
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/* --- lists ------------------------------------------------------------- */

static void
list_unlink (struct mini *c, uint32_t n)
{
  struct node *x = &c->nodes[n];
  struct list *l = &c->lists[x->list];

  if (x->prev != NONE)
    c->nodes[x->prev].next = x->next;
  else
    l->head = x->next;
  if (x->next != NONE)
    c->nodes[x->next].prev = x->prev;
  else
    l->tail = x->prev;
  l->count--;
}

/* Put node N at the head of list ID. */
static void
list_push (struct mini *c, enum list_id id, uint32_t n)
{
  struct node *x = &c->nodes[n];
  struct list *l = &c->lists[id];

  x->list = id;
  x->prev = NONE;
  x->next = l->head;
  if (l->head != NONE)
    c->nodes[l->head].prev = n;
  else
    l->tail = n;
  l->head = n;
  l->count++;
}

static void
list_move (struct mini *c, enum list_id id, uint32_t n)
{
  list_unlink (c, n);
  list_push (c, id, n);
}

/* --- the hash table ---------------------------------------------------- */

static uint32_t *
bucket_of (struct mini *c, uint64_t blk)
{
  return &c->buckets[(mix64 (blk) >> 32) & c->bucket_mask];
}

static uint32_t
lookup (struct mini *c, uint64_t blk)
{
  uint32_t n = *bucket_of (c, blk);

  while (n != NONE && c->nodes[n].blk != blk)
    n = c->nodes[n].hnext;
  return n;
}

/* Forget node N: out of its list and the table, onto the free list. */
static void
drop (struct mini *c, uint32_t n)
{
  uint32_t *link = bucket_of (c, c->nodes[n].blk);

  while (*link != n)
    link = &c->nodes[*link].hnext;
  *link = c->nodes[n].hnext;
  list_unlink (c, n);
  c->nodes[n].list = LIST_FREE;
  c->nodes[n].next = c->free_list;
  c->free_list = n;
}

/* --- S3-FIFO ----------------------------------------------------------- */

static void
ghost_add (struct mini *c, uint32_t n)
{
  struct list *g = &c->lists[LIST_GHOST];

  list_move (c, LIST_GHOST, n);
  c->nodes[n].ghost_seq = ++c->ghost_adds;
  while (c->nodes[g->tail].ghost_seq + c->ghost_size <= c->ghost_adds)
    drop (c, g->tail);
}

/* One lap of small: promote the blocks hit since they entered, evict the
 * first unhit one into the ghost.  False if all were promoted. */
static bool
evict_small (struct mini *c)
{
  for (uint32_t budget = c->lists[LIST_SMALL].count; budget > 0; budget--)
    {
      uint32_t n = c->lists[LIST_SMALL].tail;
      if (c->nodes[n].freq == 0)
        {
          ghost_add (c, n);
          return true;
        }
      list_move (c, LIST_MAIN, n);
    }
  return false;
}

/* CLOCK-like over main: a block hit since its last pass goes back to the
 * head one lower; at most MAX_FREQ + 1 laps find one never hit. */
static void
evict_main (struct mini *c)
{
  for (;;)
    {
      uint32_t n = c->lists[LIST_MAIN].tail;
      if (c->nodes[n].freq == 0)
        {
          drop (c, n);
          return;
        }
      c->nodes[n].freq--;
      list_move (c, LIST_MAIN, n);
    }
}

static void
evict_one (struct mini *c)
{
  if (c->lists[LIST_SMALL].count >= c->small_target
      || c->lists[LIST_MAIN].count == 0)
    {
      if (!evict_small (c))
        evict_main (c);
      return;
    }
  evict_main (c);
}

/* A read of BLK.  True on a hit. */
static bool
mini_access (struct mini *c, uint64_t blk)
{
  uint32_t n = lookup (c, blk), *head;
  enum list_id to = LIST_SMALL;

  if (n != NONE && c->nodes[n].list != LIST_GHOST)
    {
      if (c->nodes[n].freq < MAX_FREQ)
        c->nodes[n].freq++;
      return true;
    }
  /* Evict first, as cache.c does before it asks the ghost: the block
   * evicted into the ghost may push this one out of it. */
  while (c->lists[LIST_SMALL].count + c->lists[LIST_MAIN].count >= c->capacity)
    evict_one (c);
  n = lookup (c, blk);
  if (n != NONE)
    {
      drop (c, n);
      to = LIST_MAIN;
    }
  n = c->free_list;
  c->free_list = c->nodes[n].next;
  c->nodes[n].blk = blk;
  c->nodes[n].freq = 0;
  head = bucket_of (c, blk);
  c->nodes[n].hnext = *head;
  *head = n;
  list_push (c, to, n);
  return false;
}

/* --- construction ------------------------------------------------------ */

static uint64_t
ghost_size_for (uint64_t capacity)
{
  return capacity > 1 ? capacity - capacity / 10 : 1;
}

/* The miniature capacity of a cache of BLOCKS blocks at rate T / 2^24. */
static uint64_t
scaled (uint64_t blocks, uint32_t t)
{
  uint64_t n = (uint64_t)((double)blocks * t / HASH_SPACE + 0.5);

  return n > MIN_CAPACITY ? n : MIN_CAPACITY;
}

static uint64_t
size_blocks (uint64_t capacity, unsigned i)
{
  return i < 3 ? capacity >> (3 - i) : capacity << (i - 3);
}

/* Nodes of the seven caches at rate T / 2^24. */
static uint64_t
nodes_at (uint64_t capacity, uint32_t t)
{
  uint64_t sum = 0;

  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    {
      uint64_t cap = scaled (size_blocks (capacity, i), t);
      sum += cap + ghost_size_for (cap);
    }
  return sum;
}

static size_t
mini_init (struct mini *c, uint64_t capacity)
{
  uint32_t nodes, nbuckets = 1;

  c->capacity = capacity;
  c->small_target = capacity / 10 ? capacity / 10 : 1;
  c->ghost_size = ghost_size_for (capacity);
  nodes = c->capacity + c->ghost_size;
  while (nbuckets < nodes)
    nbuckets *= 2;
  c->nodes = malloc (nodes * sizeof *c->nodes);
  c->buckets = malloc (nbuckets * sizeof *c->buckets);
  if (c->nodes == NULL || c->buckets == NULL)
    return 0;
  memset (c->buckets, 0xff, nbuckets * sizeof *c->buckets);
  c->bucket_mask = nbuckets - 1;
  for (uint32_t n = 0; n < nodes; n++)
    {
      c->nodes[n].list = LIST_FREE;
      c->nodes[n].next = n + 1 < nodes ? n + 1 : NONE;
    }
  c->free_list = 0;
  for (int l = 0; l < 3; l++)
    c->lists[l] = (struct list){ NONE, NONE, 0 };
  return nodes * sizeof *c->nodes + nbuckets * sizeof *c->buckets;
}

/* The highest threshold, at most T, at which the seven caches of a cache of
 * CAPACITY blocks and their ghosts hold at most MAX_ENTRIES blocks; 0 if
 * even the lowest takes more than MAX_NODES. */
static uint32_t
threshold_for (uint64_t capacity, uint32_t max_entries, uint32_t t)
{
  if (nodes_at (capacity, t) > max_entries)
    {
      uint32_t lo = 1, hi = t; /* nodes_at grows with the threshold */
      while (lo + 1 < hi)
        {
          uint32_t mid = lo + (hi - lo) / 2;
          if (nodes_at (capacity, mid) <= max_entries)
            lo = mid;
          else
            hi = mid;
        }
      t = lo;
    }
  return nodes_at (capacity, t) > MAX_NODES ? 0 : t;
}

static void
minis_free (struct mini *minis)
{
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    {
      free (minis[i].nodes);
      free (minis[i].buckets);
    }
}

/* Build the seven caches of a cache of CAPACITY blocks at threshold T.
 * Returns their bytes, or 0 (ENOMEM) with none left allocated. */
static size_t
minis_init (struct mini *minis, uint64_t capacity, uint32_t t)
{
  size_t sum = 0;

  memset (minis, 0, MINISIM_SIZES * sizeof *minis);
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    {
      size_t bytes
          = mini_init (&minis[i], scaled (size_blocks (capacity, i), t));
      if (bytes == 0)
        {
          minis_free (minis);
          return 0;
        }
      sum += bytes;
    }
  return sum;
}

struct minisim *
minisim_new (const struct minisim_config *cfg)
{
  struct minisim *m;
  uint32_t t = 0;
  size_t bytes;

  if (cfg->capacity > 0 && cfg->capacity <= UINT64_MAX / 64
      && cfg->max_entries > 0 && cfg->rate > 0 && cfg->rate <= 1)
    {
      uint32_t start = cfg->rate * HASH_SPACE + 0.5;
      t = threshold_for (cfg->capacity, cfg->max_entries,
                         start > 0 ? start : 1);
    }
  if (t == 0 || cfg->window < 2)
    {
      errno = EINVAL;
      return NULL;
    }
  m = aligned_alloc (_Alignof(struct minisim), (sizeof *m + 63) / 64 * 64);
  if (m == NULL)
    return NULL;
  memset (m, 0, sizeof *m);
  bytes = minis_init (m->minis, cfg->capacity, t);
  if (bytes == 0)
    {
      free (m);
      errno = ENOMEM;
      return NULL;
    }
  pthread_mutex_init (&m->lock, NULL);
  atomic_init (&m->threshold, t);
  m->start_threshold = cfg->rate * HASH_SPACE + 0.5;
  if (m->start_threshold == 0)
    m->start_threshold = 1;
  m->max_entries = cfg->max_entries;
  m->capacity = cfg->capacity;
  m->window = cfg->window;
  m->memory = sizeof *m + bytes;
  return m;
}

void
minisim_free (struct minisim *m)
{
  if (m == NULL)
    return;
  pthread_mutex_destroy (&m->lock);
  minis_free (m->minis);
  free (m);
}

int
minisim_resize (struct minisim *m, uint64_t capacity)
{
  struct mini minis[MINISIM_SIZES];
  uint32_t t = 0;
  size_t bytes;

  if (capacity > 0 && capacity <= UINT64_MAX / 64)
    t = threshold_for (capacity, m->max_entries, m->start_threshold);
  if (t == 0)
    return -EINVAL;
  bytes = minis_init (minis, capacity, t);
  if (bytes == 0)
    return -ENOMEM;
  pthread_mutex_lock (&m->lock);
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    {
      struct mini old = m->minis[i];
      m->minis[i] = minis[i];
      minis[i] = old;
    }
  atomic_store_explicit (&m->threshold, t, memory_order_relaxed);
  m->capacity = capacity;
  m->memory = sizeof *m + bytes;
  memset (m->epochs, 0, sizeof m->epochs);
  atomic_store (&m->seen, 0);
  pthread_mutex_unlock (&m->lock);
  minis_free (minis);
  return 0;
}

/* --- access and the estimate ------------------------------------------- */

/* One read of BLK, which mixes to H, sampled when the caller looked.  The
 * caller holds M's lock. */
static void
reference (struct minisim *m, uint64_t blk, uint64_t h)
{
  struct epoch *e;

  if ((h & (HASH_SPACE - 1))
      >= atomic_load_explicit (&m->threshold, memory_order_relaxed))
    return; /* minisim_resize lowered the rate since */

  if (atomic_load (&m->seen) * 2 >= m->window)
    {
      m->epochs[m->cur].seen_before = atomic_exchange (&m->seen, 0);
      m->cur ^= 1;
      memset (&m->epochs[m->cur], 0, sizeof m->epochs[m->cur]);
    }
  e = &m->epochs[m->cur];
  e->references++;
  m->references++;
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    if (!mini_access (&m->minis[i], blk))
      e->misses[i]++;
}

void
minisim_access (struct minisim *m, uint64_t first, uint64_t n)
{
  for (uint64_t blk = first; blk < first + n; blk++)
    {
      uint64_t h = mix64 (blk);
      atomic_fetch_add_explicit (&m->seen, 1, memory_order_relaxed);
      if ((h & (HASH_SPACE - 1))
          >= atomic_load_explicit (&m->threshold, memory_order_relaxed))
        continue;
      pthread_mutex_lock (&m->lock);
      reference (m, blk, h);
      pthread_mutex_unlock (&m->lock);
    }
}

uint64_t
minisim_size (struct minisim *m, unsigned i)
{
  uint64_t blocks;

  pthread_mutex_lock (&m->lock);
  blocks = size_blocks (m->capacity, i);
  pthread_mutex_unlock (&m->lock);
  return blocks;
}

double
minisim_hit_ratio (struct minisim *m, unsigned i)
{
  const struct epoch *prev, *cur;
  double seen, misses, ratio;
  uint64_t refs;

  pthread_mutex_lock (&m->lock);
  cur = &m->epochs[m->cur];
  prev = &m->epochs[m->cur ^ 1];
  refs = prev->references + cur->references;
  seen = (double)(prev->seen_before + atomic_load (&m->seen))
         * atomic_load_explicit (&m->threshold, memory_order_relaxed)
         / HASH_SPACE;
  misses = (double)(prev->misses[i] + cur->misses[i]);
  pthread_mutex_unlock (&m->lock);
  if (refs == 0)
    return -1;
  ratio = 1 - misses / seen;
  return ratio < 0 ? 0 : ratio;
}

void
minisim_get_stats (struct minisim *m, struct minisim_stats *s)
{
  memset (s, 0, sizeof *s);
  pthread_mutex_lock (&m->lock);
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    for (int l = 0; l < 3; l++)
      s->entries += m->minis[i].lists[l].count;
  s->references = m->references;
  s->rate_ppm
      = (uint64_t)atomic_load_explicit (&m->threshold, memory_order_relaxed)
        * 1000000 / HASH_SPACE;
  s->memory_bytes = m->memory;
  pthread_mutex_unlock (&m->lock);
}
