/* blkcache: the shared block cache.
 *
 * Layout.  A block is a small record (struct cache_block, two cache lines,
 * the first holding all a hit touches) plus a data buffer of block-size
 * bytes aligned to 4096.  Each record sits in:
 *
 *  - the index: 64 shards, each a mutex and a chained hash table of its own,
 *    the shard and bucket both taken from a Fibonacci hash of the block
 *    number.  A hit locks one shard only, and copies its bytes under that
 *    lock without pinning, so hits on different blocks rarely contend.
 *    Tables are sized for the capacity (load factor <= 1), so a lookup is
 *    O(1);
 *  - one of the two S3-FIFO queues (small or main), doubly linked, under the
 *    eviction lock; the ghost FIFO is a ring of block numbers with a hash
 *    table of its own (16 bytes a capacity block);
 *  - while dirty, the dirty index: an AVL tree (avl.h) through the records,
 *    keyed by block number, under the dirty lock.  Marking dirty or clean is
 *    O(log d) for d dirty blocks; listing k dirty blocks in order from any
 *    point is O(log d + k), so a flush costs what is dirty;
 *  - while dirty, also the age list: a doubly linked list of the same
 *    blocks in the order they entered the dirty index, each stamped with
 *    that time (its "dirtied at"), under the dirty lock.  Background
 *    writeback finds the block dirty longest at its head in O(1).
 *
 * Metadata is about 152 bytes a block (128 for the record, 8 for its bucket
 * pointer, about 16 for a ghost slot and its bucket) plus malloc's headers:
 * about 0.25% of the data at 64 KiB blocks.
 *
 * Eviction is S3-FIFO (Yang et al., SOSP 2023).  New blocks enter the small
 * FIFO (a tenth of the capacity), or the main FIFO if the ghost remembers
 * them.  A hit raises the block's frequency (0..3) without any global lock.
 * Evicting from small: a tail block hit since it entered moves to main, an
 * unhit one is evicted and remembered by the ghost.  Evicting from main: a
 * tail block with frequency > 0 goes back to the head one lower, one with
 * frequency 0 is evicted.  One pass over many new blocks thus churns only
 * the small FIFO.  The cache's own rule on top: only CLEAN unpinned blocks
 * are evicted; any other block at a tail is moved to the head of its FIFO.
 * Each search is bounded (one lap of small, four of main), so a cache full
 * of dirty or pinned blocks fails an allocation after O(blocks) steps.
 *
 * Lock ordering: eviction lock -> shard lock -> dirty lock; the space lock
 * is a leaf taken with none of them held.  Hits, pins, unpins and state
 * changes take one shard lock (and the dirty lock when the dirty index
 * changes).  Allocation, insertion, dropping and resizing take the eviction
 * lock and, inside it, shard locks one at a time.  Listing dirty runs takes
 * the dirty lock only.  No lock is held across anything that sleeps, except
 * that cache_space_wait sleeps on the space lock's condition.
 *
 * Field protection: block number and data never change while a block is
 * reachable; pins, state, redirtied, freq, hashed and the hash link belong
 * to the shard lock; queue and FIFO links to the eviction lock; the dirty
 * tree links, the age links and dirtied_at to the dirty lock.
 */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "avl.h"
#include "cache.h"

#define SHARD_BITS 6
#define NR_SHARDS (1u << SHARD_BITS)
#define MAX_FREQ 3
#define DATA_ALIGN 4096
#define MIN_BLOCK_SIZE 4096
#define MAX_BLOCK_SIZE (1u << 20)
#define MAX_CAPACITY (UINT32_MAX / 2)
#define GHOST_NONE UINT32_MAX
#define GHOST_DEAD (UINT32_MAX - 1)
#define FIB_HASH 0x9E3779B97F4A7C15ULL

enum queue_id
{
  QUEUE_NONE,
  QUEUE_SMALL,
  QUEUE_MAIN,
};

struct cache_block
{
  /* The first cache line holds what a hit reads (and, at most, freq). */
  _Alignas (64) uint64_t blockno;
  struct cache_block *hash_next; /* shard lock */
  void *data;
  uint64_t dirty_mask;     /* shard lock: granules written since the last
                            * writeback started (bit i: bytes from i * B/64) */
  uint64_t writeback_mask; /* shard lock: the granules its writeback writes */
  uint32_t pins;           /* shard lock */
  uint8_t state;           /* shard lock: enum cache_state */
  uint8_t redirtied;       /* shard lock */
  uint8_t freq;            /* shard lock */
  uint8_t hashed;          /* shard lock: in the index */
  struct cache_block *fifo_prev, *fifo_next; /* eviction lock */
  struct avl_node dirty_node;                /* dirty lock */
  struct cache_block *age_prev, *age_next;   /* dirty lock */
  uint64_t dirtied_at;                       /* dirty lock */
  uint8_t queue;                             /* eviction lock: enum queue_id */
};
_Static_assert (sizeof (struct cache_block) == 128, "two cache lines a block");

struct shard
{
  _Alignas(64) pthread_mutex_t lock;
  struct cache_block **buckets;
  unsigned bits; /* log2 of the number of buckets */
  uint64_t hits;
  uint64_t misses;
};

struct fifo
{
  struct cache_block *head; /* newest */
  struct cache_block *tail; /* oldest */
  uint64_t count;
};

/* The ghost FIFO: the last SIZE block numbers evicted from small.  A ring
 * of slots, the oldest overwritten first, plus a chained hash table over the
 * slots (chains linked by slot index). */
struct ghost
{
  uint64_t *blocknos;
  uint32_t *next;    /* chain link per slot, GHOST_DEAD if not chained */
  uint32_t *buckets; /* first slot per bucket, GHOST_NONE if empty */
  uint32_t size;
  uint32_t mask;
  uint32_t head; /* next slot to write */
  uint32_t live; /* chained slots */
};

struct cache
{
  uint32_t block_size;
  struct shard *shards;

  pthread_mutex_t evict_lock;
  uint64_t capacity;     /* in blocks */
  uint64_t small_target; /* S3-FIFO small queue size */
  uint64_t nr_blocks;    /* allocated blocks */
  struct fifo small;
  struct fifo main;
  struct ghost ghost;
  uint64_t insertions;
  uint64_t evictions;

  pthread_mutex_t dirty_lock;
  struct avl_tree dirty_index; /* keyed by block number */
  struct cache_block *age_oldest, *age_newest;
  _Atomic uint64_t dirty_blocks; /* DIRTY and WRITEBACK; no lock */
  _Atomic uint64_t peak_dirty_blocks;

  pthread_mutex_t space_lock;
  pthread_cond_t space_cond;
  uint64_t space_gen;
  atomic_uint space_waiters;
};

static uint64_t
hash_blockno (uint64_t blockno)
{
  return blockno * FIB_HASH;
}

static struct shard *
shard_of (struct cache *c, uint64_t blockno)
{
  return &c->shards[hash_blockno (blockno) >> (64 - SHARD_BITS)];
}

/* The bucket of BLOCKNO in shard S: the hash bits just below the shard's. */
static struct cache_block **
bucket_of (struct shard *s, uint64_t blockno)
{
  uint64_t h = hash_blockno (blockno) << SHARD_BITS;

  return &s->buckets[s->bits ? h >> (64 - s->bits) : 0];
}

static unsigned
log2_ceil (uint64_t n)
{
  unsigned bits = 0;

  while (bits < 63 && (UINT64_C (1) << bits) < n)
    bits++;
  return bits;
}

/* Bucket bits a shard needs so that CAPACITY blocks spread over all shards
 * keep a load factor of at most one. */
static unsigned
shard_bits_for (uint64_t capacity)
{
  return log2_ceil ((capacity + NR_SHARDS - 1) / NR_SHARDS);
}

/* Index (shard lock held). */

static struct cache_block *
shard_find (struct shard *s, uint64_t blockno)
{
  struct cache_block *b;

  for (b = *bucket_of (s, blockno); b; b = b->hash_next)
    if (b->blockno == blockno)
      return b;
  return NULL;
}

static void
shard_link (struct shard *s, struct cache_block *b)
{
  struct cache_block **head = bucket_of (s, b->blockno);

  b->hash_next = *head;
  *head = b;
  b->hashed = 1;
}

static void
shard_unlink (struct shard *s, struct cache_block *b)
{
  struct cache_block **p = bucket_of (s, b->blockno);

  while (*p != b)
    p = &(*p)->hash_next;
  *p = b->hash_next;
  b->hash_next = NULL;
  b->hashed = 0;
}

/* Grow shard S's table to 2^BITS buckets if it is smaller.  */
static int
shard_grow (struct shard *s, unsigned bits)
{
  struct cache_block **old, **buckets, *b, *next;
  unsigned old_bits;
  uint64_t i;

  buckets = calloc (UINT64_C (1) << bits, sizeof *buckets);
  if (buckets == NULL)
    return -ENOMEM;
  pthread_mutex_lock (&s->lock);
  if (s->bits >= bits && s->buckets)
    {
      pthread_mutex_unlock (&s->lock);
      free (buckets);
      return 0;
    }
  old = s->buckets;
  old_bits = s->bits;
  s->buckets = buckets;
  s->bits = bits;
  for (i = 0; old && i < (UINT64_C (1) << old_bits); i++)
    for (b = old[i]; b; b = next)
      {
        next = b->hash_next;
        shard_link (s, b);
      }
  pthread_mutex_unlock (&s->lock);
  free (old);
  return 0;
}

/* FIFOs (eviction lock held). */

static struct fifo *
fifo_of (struct cache *c, const struct cache_block *b)
{
  return b->queue == QUEUE_SMALL ? &c->small : &c->main;
}

static void
fifo_push (struct cache *c, enum queue_id queue, struct cache_block *b)
{
  struct fifo *f = queue == QUEUE_SMALL ? &c->small : &c->main;

  b->queue = queue;
  b->fifo_prev = NULL;
  b->fifo_next = f->head;
  if (f->head)
    f->head->fifo_prev = b;
  else
    f->tail = b;
  f->head = b;
  f->count++;
}

static void
fifo_remove (struct cache *c, struct cache_block *b)
{
  struct fifo *f = fifo_of (c, b);

  if (b->fifo_prev)
    b->fifo_prev->fifo_next = b->fifo_next;
  else
    f->head = b->fifo_next;
  if (b->fifo_next)
    b->fifo_next->fifo_prev = b->fifo_prev;
  else
    f->tail = b->fifo_prev;
  f->count--;
  b->queue = QUEUE_NONE;
}

/* Move B to the head of QUEUE. */
static void
fifo_move (struct cache *c, enum queue_id queue, struct cache_block *b)
{
  fifo_remove (c, b);
  fifo_push (c, queue, b);
}

/* Ghost (eviction lock held). */

static uint32_t
ghost_bucket (const struct ghost *g, uint64_t blockno)
{
  return (uint32_t)(hash_blockno (blockno) >> 32) & g->mask;
}

static int
ghost_init (struct ghost *g, uint64_t size)
{
  uint64_t nbuckets = UINT64_C (1) << log2_ceil (size);
  uint64_t *blocknos = malloc (size * sizeof *blocknos);
  uint32_t *next = malloc (size * sizeof *next);
  uint32_t *buckets = malloc (nbuckets * sizeof *buckets);
  uint64_t i;

  if (!blocknos || !next || !buckets)
    {
      free (blocknos);
      free (next);
      free (buckets);
      return -ENOMEM;
    }
  for (i = 0; i < size; i++)
    next[i] = GHOST_DEAD;
  for (i = 0; i < nbuckets; i++)
    buckets[i] = GHOST_NONE;
  g->blocknos = blocknos;
  g->next = next;
  g->buckets = buckets;
  g->size = size;
  g->mask = nbuckets - 1;
  g->head = 0;
  g->live = 0;
  return 0;
}

static void
ghost_destroy (struct ghost *g)
{
  free (g->blocknos);
  free (g->next);
  free (g->buckets);
}

static void
ghost_unchain (struct ghost *g, uint32_t slot)
{
  uint32_t *p = &g->buckets[ghost_bucket (g, g->blocknos[slot])];

  while (*p != slot)
    p = &g->next[*p];
  *p = g->next[slot];
  g->next[slot] = GHOST_DEAD;
  g->live--;
}

static void
ghost_add (struct ghost *g, uint64_t blockno)
{
  uint32_t slot = g->head;
  uint32_t *head;

  if (g->next[slot] != GHOST_DEAD)
    ghost_unchain (g, slot);
  g->blocknos[slot] = blockno;
  head = &g->buckets[ghost_bucket (g, blockno)];
  g->next[slot] = *head;
  *head = slot;
  g->live++;
  g->head = slot + 1 == g->size ? 0 : slot + 1;
}

/* If the ghost remembers BLOCKNO, forget it and return true. */
static bool
ghost_take (struct ghost *g, uint64_t blockno)
{
  uint32_t slot;

  for (slot = g->buckets[ghost_bucket (g, blockno)]; slot != GHOST_NONE;
       slot = g->next[slot])
    if (g->blocknos[slot] == blockno)
      {
        ghost_unchain (g, slot);
        return true;
      }
  return false;
}

/* Dirty index (dirty lock held): an AVL tree through the records. */

static struct cache_block *
dirty_block_of (const struct avl_node *node)
{
  return avl_entry (node, struct cache_block, dirty_node);
}

/* Order the uint64_t *KEY against a dirty block's number. */
static int
cmp_blockno (const void *key, const struct avl_node *node)
{
  return avl_cmp_u64 (*(const uint64_t *) key, dirty_block_of (node)->blockno);
}

/* Whether B is in the dirty index (shard lock held). */
static bool
in_dirty_index (const struct cache_block *b)
{
  return b->state == CACHE_DIRTY || b->redirtied;
}

/* Age list (dirty lock held). */

static void
age_append (struct cache *c, struct cache_block *b, uint64_t now)
{
  b->dirtied_at = now;
  b->age_next = NULL;
  b->age_prev = c->age_newest;
  if (c->age_newest)
    c->age_newest->age_next = b;
  else
    c->age_oldest = b;
  c->age_newest = b;
}

static void
age_remove (struct cache *c, struct cache_block *b)
{
  if (b->age_prev)
    b->age_prev->age_next = b->age_next;
  else
    c->age_oldest = b->age_next;
  if (b->age_next)
    b->age_next->age_prev = b->age_prev;
  else
    c->age_newest = b->age_prev;
  b->age_prev = b->age_next = NULL;
}

/* B enters the dirty index at the back of the age list: it counts as
 * dirtied now, or, with KEEP_TIME, keeps the dirtied-at time it had when
 * its writeback started (a failed writeback: the flushes that began since
 * then must still find it). */
static void
dirty_index_add (struct cache *c, struct cache_block *b, bool keep_time)
{
  uint64_t now = cache_clock ();

  pthread_mutex_lock (&c->dirty_lock);
  avl_insert (&c->dirty_index, &b->dirty_node, &b->blockno, cmp_blockno);
  age_append (c, b, keep_time ? b->dirtied_at : now);
  pthread_mutex_unlock (&c->dirty_lock);
}

static void
dirty_index_remove (struct cache *c, struct cache_block *b)
{
  pthread_mutex_lock (&c->dirty_lock);
  avl_remove (&c->dirty_index, &b->dirty_node);
  age_remove (c, b);
  pthread_mutex_unlock (&c->dirty_lock);
}

/* Count a block leaving CLEAN (+1) or returning to it (-1). */
static void
dirty_count (struct cache *c, int delta)
{
  uint64_t now = atomic_fetch_add (&c->dirty_blocks, (uint64_t) delta)
                 + (uint64_t) delta;
  uint64_t peak = atomic_load (&c->peak_dirty_blocks);

  while (now > peak
         && !atomic_compare_exchange_weak (&c->peak_dirty_blocks, &peak, now))
    ;
}

/* Space waiters.  A waiter registers (space_waiters) before its allocation
 * attempt, and everything that may free space changes the state that
 * attempt reads under a shard or the eviction lock before it reads
 * space_waiters; so either the attempt sees the change or the change sees
 * the waiter and bumps the generation.  With no waiter this costs one
 * atomic load. */
static void
space_event (struct cache *c)
{
  if (atomic_load (&c->space_waiters) == 0)
    return;
  pthread_mutex_lock (&c->space_lock);
  c->space_gen++;
  pthread_cond_broadcast (&c->space_cond);
  pthread_mutex_unlock (&c->space_lock);
}

/* Blocks. */

static struct cache_block *
block_new (struct cache *c)
{
  struct cache_block *b = aligned_alloc (_Alignof (struct cache_block),
                                        sizeof *b);

  if (b == NULL)
    return NULL;
  if (posix_memalign (&b->data, DATA_ALIGN, c->block_size) != 0)
    {
      free (b);
      return NULL;
    }
  return b;
}

static void
block_free (struct cache_block *b)
{
  free (b->data);
  free (b);
}

/* Free a block that is in no structure, and give its place back. */
static void
block_release (struct cache *c, struct cache_block *b)
{
  pthread_mutex_lock (&c->evict_lock);
  c->nr_blocks--;
  pthread_mutex_unlock (&c->evict_lock);
  block_free (b);
  space_event (c);
}

/* Eviction (eviction lock held). */

static bool
evictable (const struct cache_block *b)
{
  return b->pins == 0 && b->state == CACHE_CLEAN;
}

/* Take B, whose shard S is locked and which is evictable, out of the index
 * and its FIFO.  Unlocks S. */
static void
evict_block (struct cache *c, struct shard *s, struct cache_block *b)
{
  shard_unlink (s, b);
  pthread_mutex_unlock (&s->lock);
  fifo_remove (c, b);
  c->evictions++;
}

/* One lap of the small FIFO: promote blocks hit since they entered, evict
 * the first unhit evictable one into the ghost.  *SAW_DIRTY is set if a
 * DIRTY block was passed over. */
static struct cache_block *
evict_small (struct cache *c, bool *saw_dirty)
{
  uint64_t budget = c->small.count;
  struct cache_block *b;
  struct shard *s;

  while (budget-- > 0)
    {
      b = c->small.tail;
      s = shard_of (c, b->blockno);
      pthread_mutex_lock (&s->lock);
      if (b->freq > 0)
        {
          pthread_mutex_unlock (&s->lock);
          fifo_move (c, QUEUE_MAIN, b);
          continue;
        }
      if (evictable (b))
        {
          evict_block (c, s, b);
          ghost_add (&c->ghost, b->blockno);
          return b;
        }
      *saw_dirty |= b->state == CACHE_DIRTY;
      pthread_mutex_unlock (&s->lock);
      fifo_move (c, QUEUE_SMALL, b);
    }
  return NULL;
}

/* Up to MAX_FREQ + 1 laps of the main FIFO, CLOCK-like. */
static struct cache_block *
evict_main (struct cache *c, bool *saw_dirty)
{
  uint64_t budget = (MAX_FREQ + 1) * c->main.count;
  struct cache_block *b;
  struct shard *s;

  while (budget-- > 0)
    {
      b = c->main.tail;
      s = shard_of (c, b->blockno);
      pthread_mutex_lock (&s->lock);
      if (b->freq == 0 && evictable (b))
        {
          evict_block (c, s, b);
          return b;
        }
      if (b->freq > 0)
        b->freq--;
      *saw_dirty |= b->state == CACHE_DIRTY;
      pthread_mutex_unlock (&s->lock);
      fifo_move (c, QUEUE_MAIN, b);
    }
  return NULL;
}

/* Evict one block, from small while it is over its target share, else
 * from main; if that queue has nothing evictable, from the other one. */
static struct cache_block *
evict_one (struct cache *c, bool *saw_dirty)
{
  struct cache_block *b;

  if (c->small.count >= c->small_target || c->main.count == 0)
    {
      b = evict_small (c, saw_dirty);
      return b ? b : evict_main (c, saw_dirty);
    }
  b = evict_main (c, saw_dirty);
  return b ? b : evict_small (c, saw_dirty);
}

static void
set_capacity (struct cache *c, uint64_t capacity)
{
  c->capacity = capacity;
  c->small_target = capacity / 10 ? capacity / 10 : 1;
}

/* The ghost remembers as many blocks as main holds. */
static uint64_t
ghost_size_for (uint64_t capacity)
{
  return capacity > 1 ? capacity - capacity / 10 : 1;
}

/* Public functions. */

uint64_t
cache_clock (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct cache *
cache_new (uint64_t cache_size, uint32_t block_size)
{
  struct cache *c;
  uint64_t capacity;
  unsigned i;
  int r;

  if (block_size < MIN_BLOCK_SIZE || block_size > MAX_BLOCK_SIZE
      || (block_size & (block_size - 1)) != 0)
    {
      errno = EINVAL;
      return NULL;
    }
  capacity = cache_size / block_size;
  if (capacity == 0 || capacity > MAX_CAPACITY)
    {
      errno = EINVAL;
      return NULL;
    }

  c = calloc (1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->block_size = block_size;
  set_capacity (c, capacity);
  c->shards = aligned_alloc (64, NR_SHARDS * sizeof *c->shards);
  if (c->shards == NULL)
    {
      free (c);
      return NULL;
    }
  for (i = 0; i < NR_SHARDS; i++)
    {
      pthread_mutex_init (&c->shards[i].lock, NULL);
      c->shards[i].buckets = NULL;
      c->shards[i].bits = 0;
      c->shards[i].hits = 0;
      c->shards[i].misses = 0;
    }
  pthread_mutex_init (&c->evict_lock, NULL);
  pthread_mutex_init (&c->dirty_lock, NULL);
  avl_init (&c->dirty_index, NULL);
  pthread_mutex_init (&c->space_lock, NULL);
  pthread_cond_init (&c->space_cond, NULL);
  atomic_init (&c->space_waiters, 0);

  r = ghost_init (&c->ghost, ghost_size_for (capacity));
  for (i = 0; r == 0 && i < NR_SHARDS; i++)
    r = shard_grow (&c->shards[i], shard_bits_for (capacity));
  if (r < 0)
    {
      cache_free (c);
      errno = -r;
      return NULL;
    }
  return c;
}

static void
free_fifo (struct fifo *f)
{
  struct cache_block *b, *next;

  for (b = f->head; b; b = next)
    {
      next = b->fifo_next;
      block_free (b);
    }
}

void
cache_free (struct cache *c)
{
  unsigned i;

  if (c == NULL)
    return;
  free_fifo (&c->small);
  free_fifo (&c->main);
  ghost_destroy (&c->ghost);
  for (i = 0; i < NR_SHARDS; i++)
    {
      free (c->shards[i].buckets);
      pthread_mutex_destroy (&c->shards[i].lock);
    }
  free (c->shards);
  pthread_cond_destroy (&c->space_cond);
  pthread_mutex_destroy (&c->space_lock);
  pthread_mutex_destroy (&c->dirty_lock);
  pthread_mutex_destroy (&c->evict_lock);
  free (c);
}

uint32_t
cache_block_size (const struct cache *c)
{
  return c->block_size;
}

void *
cache_block_data (const struct cache_block *b)
{
  return b->data;
}

uint64_t
cache_block_number (const struct cache_block *b)
{
  return b->blockno;
}

bool
cache_read (struct cache *c, uint64_t blockno, void *dst, uint32_t from,
            uint32_t len)
{
  struct shard *s = shard_of (c, blockno);
  struct cache_block *b;

  pthread_mutex_lock (&s->lock);
  b = shard_find (s, blockno);
  if (b)
    {
      if (b->freq < MAX_FREQ)
        b->freq++;
      if (dst)
        memcpy (dst, (char *) b->data + from, len);
      s->hits++;
    }
  else
    s->misses++;
  pthread_mutex_unlock (&s->lock);
  return b != NULL;
}

struct cache_block *
cache_peek (struct cache *c, uint64_t blockno)
{
  struct shard *s = shard_of (c, blockno);
  struct cache_block *b;

  pthread_mutex_lock (&s->lock);
  b = shard_find (s, blockno);
  if (b)
    b->pins++;
  pthread_mutex_unlock (&s->lock);
  return b;
}

void
cache_unpin (struct cache *c, struct cache_block *b)
{
  struct shard *s = shard_of (c, b->blockno);
  bool last, dropped;

  pthread_mutex_lock (&s->lock);
  last = --b->pins == 0;
  dropped = last && !b->hashed;
  pthread_mutex_unlock (&s->lock);
  if (dropped)
    block_release (c, b);
  else if (last)
    space_event (c);
}

int
cache_alloc (struct cache *c, struct cache_block **bp)
{
  struct cache_block *b = NULL, *victim;
  bool saw_dirty = false;

  pthread_mutex_lock (&c->evict_lock);
  while (c->nr_blocks >= c->capacity)
    {
      victim = evict_one (c, &saw_dirty);
      if (victim == NULL)
        {
          pthread_mutex_unlock (&c->evict_lock);
          return saw_dirty ? -ENOSPC : -EAGAIN;
        }
      if (c->nr_blocks == c->capacity)
        {
          /* Reuse the victim's record and buffer: its place is ours. */
          b = victim;
          break;
        }
      c->nr_blocks--; /* still above a shrunk capacity */
      block_free (victim);
    }
  if (b == NULL)
    c->nr_blocks++;
  pthread_mutex_unlock (&c->evict_lock);

  if (b == NULL)
    {
      b = block_new (c);
      if (b == NULL)
        {
          pthread_mutex_lock (&c->evict_lock);
          c->nr_blocks--;
          pthread_mutex_unlock (&c->evict_lock);
          space_event (c);
          return -ENOMEM;
        }
    }
  b->blockno = 0;
  b->hash_next = NULL;
  b->fifo_prev = b->fifo_next = NULL;
  b->dirty_node = (struct avl_node){ 0 };
  b->age_prev = b->age_next = NULL;
  b->dirtied_at = 0;
  b->pins = 1;
  b->state = CACHE_CLEAN;
  b->redirtied = 0;
  b->dirty_mask = 0;
  b->writeback_mask = 0;
  b->freq = 0;
  b->hashed = 0;
  b->queue = QUEUE_NONE;
  *bp = b;
  return 0;
}

int
cache_insert (struct cache *c, struct cache_block *b, uint64_t blockno,
              struct cache_block **existingp)
{
  struct shard *s = shard_of (c, blockno);
  struct cache_block *existing;

  pthread_mutex_lock (&c->evict_lock);
  pthread_mutex_lock (&s->lock);
  existing = shard_find (s, blockno);
  if (existing)
    {
      existing->pins++;
      pthread_mutex_unlock (&s->lock);
      c->nr_blocks--;
      pthread_mutex_unlock (&c->evict_lock);
      block_free (b);
      space_event (c);
      *existingp = existing;
      return -EEXIST;
    }
  b->blockno = blockno;
  shard_link (s, b);
  pthread_mutex_unlock (&s->lock);
  fifo_push (c, ghost_take (&c->ghost, blockno) ? QUEUE_MAIN : QUEUE_SMALL, b);
  c->insertions++;
  pthread_mutex_unlock (&c->evict_lock);
  return 0;
}

void
cache_discard (struct cache *c, struct cache_block *b)
{
  block_release (c, b);
}

enum cache_state
cache_block_state (struct cache *c, struct cache_block *b)
{
  struct shard *s = shard_of (c, b->blockno);
  enum cache_state state;

  pthread_mutex_lock (&s->lock);
  state = b->state;
  pthread_mutex_unlock (&s->lock);
  return state;
}

/* The granules (block size / 64 bytes each) that [FROM, TO) touches. */
static uint64_t
granule_mask (const struct cache *c, uint32_t from, uint32_t to)
{
  uint32_t g = c->block_size / 64;
  unsigned first = from / g, last = (to - 1) / g;
  uint64_t upto = last == 63 ? UINT64_MAX : (UINT64_C (1) << (last + 1)) - 1;

  return upto & ~((UINT64_C (1) << first) - 1);
}

/* Mark bytes [FROM, TO) of B dirty (shard lock held, B hashed). */
static void
mark_dirty_locked (struct cache *c, struct cache_block *b, uint32_t from,
                   uint32_t to)
{
  if (b->state == CACHE_CLEAN)
    {
      b->state = CACHE_DIRTY;
      dirty_index_add (c, b, false);
      dirty_count (c, 1);
    }
  else if (b->state == CACHE_WRITEBACK && !b->redirtied)
    {
      b->redirtied = 1;
      dirty_index_add (c, b, false);
    }
  b->dirty_mask |= granule_mask (c, from, to);
}

int
cache_mark_dirty_range (struct cache *c, struct cache_block *b, uint32_t from,
                        uint32_t to)
{
  struct shard *s = shard_of (c, b->blockno);
  int r = 0;

  if (from >= to || to > c->block_size)
    return -EINVAL;
  pthread_mutex_lock (&s->lock);
  if (!b->hashed)
    r = -ESTALE;
  else
    mark_dirty_locked (c, b, from, to);
  pthread_mutex_unlock (&s->lock);
  return r;
}

/* Copy LEN bytes from SRC (zeroes if SRC is NULL) into cached block
 * BLOCKNO at FROM under its shard lock, marking them dirty if DIRTY;
 * 1 if the block is cached, else 0. */
static int
write_bytes (struct cache *c, uint64_t blockno, const void *src,
             uint32_t from, uint32_t len, bool dirty)
{
  struct shard *s = shard_of (c, blockno);
  struct cache_block *b;

  if (len == 0 || from + (uint64_t) len > c->block_size)
    return -EINVAL;
  pthread_mutex_lock (&s->lock);
  b = shard_find (s, blockno);
  if (b)
    {
      if (src)
        memcpy ((char *) b->data + from, src, len);
      else
        memset ((char *) b->data + from, 0, len);
      if (dirty)
        mark_dirty_locked (c, b, from, from + len);
    }
  pthread_mutex_unlock (&s->lock);
  return b != NULL;
}

int
cache_write (struct cache *c, uint64_t blockno, const void *src, uint32_t from,
             uint32_t len)
{
  return write_bytes (c, blockno, src, from, len, true);
}

int
cache_update (struct cache *c, uint64_t blockno, const void *src,
              uint32_t from, uint32_t len)
{
  return write_bytes (c, blockno, src, from, len, false);
}

int
cache_mark_dirty (struct cache *c, struct cache_block *b)
{
  return cache_mark_dirty_range (c, b, 0, c->block_size);
}

int
cache_start_writeback (struct cache *c, struct cache_block *b)
{
  struct shard *s = shard_of (c, b->blockno);
  int r = 0;

  pthread_mutex_lock (&s->lock);
  if (!b->hashed)
    r = -ESTALE;
  else if (b->state == CACHE_CLEAN)
    r = -EINVAL;
  else if (b->state == CACHE_WRITEBACK)
    r = -EBUSY;
  else
    {
      dirty_index_remove (c, b);
      b->state = CACHE_WRITEBACK;
      b->redirtied = 0;
      b->writeback_mask = b->dirty_mask;
      b->dirty_mask = 0;
    }
  pthread_mutex_unlock (&s->lock);
  return r;
}

enum cache_state
cache_end_writeback (struct cache *c, struct cache_block *b, int err)
{
  struct shard *s = shard_of (c, b->blockno);
  enum cache_state state;
  bool cleaned = false;

  pthread_mutex_lock (&s->lock);
  if (b->hashed && b->state == CACHE_WRITEBACK)
    {
      if (err)
        b->dirty_mask |= b->writeback_mask; /* write them again next time */
      b->writeback_mask = 0;
      /* A failed block keeps its dirtied-at time, so a flush that began
       * after it was dirtied and has not passed it yet writes it again;
       * at the back of the age list, background writeback tries the
       * other blocks before it comes back to this one.  (A redirtied one
       * is in the index already, dirtied later than that.) */
      if (err && !b->redirtied)
        dirty_index_add (c, b, true);
      if (err || b->redirtied)
        b->state = CACHE_DIRTY;
      else
        {
          b->state = CACHE_CLEAN;
          dirty_count (c, -1);
          cleaned = true;
        }
      b->redirtied = 0;
    }
  state = b->state;
  pthread_mutex_unlock (&s->lock);
  if (cleaned)
    space_event (c);
  return state;
}

uint64_t
cache_writeback_mask (struct cache *c, struct cache_block *b)
{
  struct shard *s = shard_of (c, b->blockno);
  uint64_t mask;

  pthread_mutex_lock (&s->lock);
  mask = b->writeback_mask;
  pthread_mutex_unlock (&s->lock);
  return mask;
}

/* Append BLOCKNO to RUNS; returns false if that needs a run beyond
 * MAX_RUNS. */
static bool
add_to_runs (struct cache_run *runs, size_t *nr_runs, size_t max_runs,
             uint64_t blockno)
{
  struct cache_run *last = *nr_runs ? &runs[*nr_runs - 1] : NULL;

  if (last && last->start + last->count == blockno)
    {
      last->count++;
      return true;
    }
  if (*nr_runs == max_runs)
    return false;
  runs[*nr_runs].start = blockno;
  runs[*nr_runs].count = 1;
  (*nr_runs)++;
  return true;
}

size_t
cache_dirty_runs (struct cache *c, uint64_t from, uint64_t max_blocks,
                  uint64_t dirtied_by, struct cache_run *runs,
                  size_t max_runs)
{
  struct cache_block *b;
  size_t nr_runs = 0;
  uint64_t nr_blocks = 0;

  pthread_mutex_lock (&c->dirty_lock);
  b = dirty_block_of (avl_find_ge (&c->dirty_index, &from, cmp_blockno));
  for (; b && nr_blocks < max_blocks;
       b = dirty_block_of (avl_next (&b->dirty_node)))
    {
      if (b->dirtied_at > dirtied_by)
        continue;
      if (!add_to_runs (runs, &nr_runs, max_runs, b->blockno))
        break;
      nr_blocks++;
    }
  pthread_mutex_unlock (&c->dirty_lock);
  return nr_runs;
}

/* The oldest DIRTY block of F, or NULL (eviction lock held). */
static struct cache_block *
oldest_dirty (struct cache *c, struct fifo *f)
{
  struct cache_block *b;
  struct shard *s;
  bool dirty;

  for (b = f->tail; b; b = b->fifo_prev)
    {
      s = shard_of (c, b->blockno);
      pthread_mutex_lock (&s->lock);
      dirty = b->state == CACHE_DIRTY;
      pthread_mutex_unlock (&s->lock);
      if (dirty)
        return b;
    }
  return NULL;
}

int
cache_pick_victim (struct cache *c, uint64_t *blocknop)
{
  struct cache_block *b;

  pthread_mutex_lock (&c->evict_lock);
  b = oldest_dirty (c, &c->small);
  if (b == NULL)
    b = oldest_dirty (c, &c->main);
  if (b)
    *blocknop = b->blockno;
  pthread_mutex_unlock (&c->evict_lock);
  return b ? 0 : -ENOENT;
}

int
cache_oldest_dirty (struct cache *c, uint64_t *blocknop,
                    uint64_t *dirtied_atp)
{
  int r = -ENOENT;

  pthread_mutex_lock (&c->dirty_lock);
  if (c->age_oldest)
    {
      *blocknop = c->age_oldest->blockno;
      *dirtied_atp = c->age_oldest->dirtied_at;
      r = 0;
    }
  pthread_mutex_unlock (&c->dirty_lock);
  return r;
}

uint64_t
cache_dirty_bytes (struct cache *c)
{
  return atomic_load (&c->dirty_blocks) * c->block_size;
}

/* What dropping one block does (eviction lock held). */
struct drop
{
  bool overwritten;         /* dirty blocks may go */
  bool clean_unpinned_only; /* for cache_drop_clean */
  uint64_t kept_dirty;
  uint64_t dropped;
  struct cache_block *freed; /* blocks to free, linked by hash_next */
};

/* Drop B, whose shard S is locked, if D allows it.  Unlocks S. */
static void
drop_block (struct cache *c, struct shard *s, struct cache_block *b,
            struct drop *d)
{
  bool pinned;

  if (d->clean_unpinned_only && !evictable (b))
    {
      pthread_mutex_unlock (&s->lock);
      return;
    }
  if (b->state != CACHE_CLEAN && !d->overwritten)
    {
      d->kept_dirty++;
      pthread_mutex_unlock (&s->lock);
      return;
    }
  shard_unlink (s, b);
  if (b->state != CACHE_CLEAN)
    {
      if (in_dirty_index (b))
        dirty_index_remove (c, b);
      dirty_count (c, -1);
      b->state = CACHE_CLEAN;
      b->redirtied = 0;
    }
  pinned = b->pins > 0;
  pthread_mutex_unlock (&s->lock);
  fifo_remove (c, b);
  d->dropped++;
  if (pinned)
    return; /* the last cache_unpin frees it */
  c->nr_blocks--;
  b->hash_next = d->freed;
  d->freed = b;
}

/* Offer every block of F in [first, last] to drop_block. */
static void
drop_fifo (struct cache *c, struct fifo *f, uint64_t first, uint64_t last,
           struct drop *d)
{
  struct cache_block *b, *next;
  struct shard *s;

  for (b = f->head; b; b = next)
    {
      next = b->fifo_next;
      if (b->blockno < first || b->blockno > last)
        continue;
      s = shard_of (c, b->blockno);
      pthread_mutex_lock (&s->lock);
      drop_block (c, s, b, d);
    }
}

/* Drop what D allows in [first, last], by block number or by walking the
 * FIFOs, whichever visits fewer blocks; then free the dropped blocks. */
static void
drop_blocks (struct cache *c, uint64_t first, uint64_t last, struct drop *d)
{
  struct cache_block *b;
  struct shard *s;
  uint64_t blockno;

  pthread_mutex_lock (&c->evict_lock);
  if (last - first < c->nr_blocks)
    {
      blockno = first;
      do
        {
          s = shard_of (c, blockno);
          pthread_mutex_lock (&s->lock);
          b = shard_find (s, blockno);
          if (b)
            drop_block (c, s, b, d);
          else
            pthread_mutex_unlock (&s->lock);
        }
      while (blockno++ != last);
    }
  else
    {
      drop_fifo (c, &c->small, first, last, d);
      drop_fifo (c, &c->main, first, last, d);
    }
  pthread_mutex_unlock (&c->evict_lock);

  if (d->freed == NULL)
    return;
  while ((b = d->freed) != NULL)
    {
      d->freed = b->hash_next;
      block_free (b);
    }
  space_event (c);
}

uint64_t
cache_drop_range (struct cache *c, uint64_t first, uint64_t last,
                  bool overwritten)
{
  struct drop d = { .overwritten = overwritten };

  if (last < first)
    return 0;
  drop_blocks (c, first, last, &d);
  return d.kept_dirty;
}

uint64_t
cache_drop_clean (struct cache *c)
{
  struct drop d = { .clean_unpinned_only = true };

  drop_blocks (c, 0, UINT64_MAX, &d);
  return d.dropped;
}

int64_t
cache_resize (struct cache *c, uint64_t cache_size)
{
  uint64_t capacity = cache_size / c->block_size;
  struct ghost ghost, old;
  struct cache_block *victim;
  bool saw_dirty = false;
  int64_t excess;
  unsigned i;
  int r;

  if (capacity == 0 || capacity > MAX_CAPACITY)
    return -EINVAL;
  for (i = 0; i < NR_SHARDS; i++)
    {
      r = shard_grow (&c->shards[i], shard_bits_for (capacity));
      if (r < 0)
        return r;
    }
  r = ghost_init (&ghost, ghost_size_for (capacity));
  if (r < 0)
    return r;

  pthread_mutex_lock (&c->evict_lock);
  old = c->ghost;
  c->ghost = ghost;
  set_capacity (c, capacity);
  while (c->nr_blocks > c->capacity
         && (victim = evict_one (c, &saw_dirty)) != NULL)
    {
      c->nr_blocks--;
      block_free (victim);
    }
  excess = c->nr_blocks > c->capacity ? c->nr_blocks - c->capacity : 0;
  pthread_mutex_unlock (&c->evict_lock);
  ghost_destroy (&old);
  space_event (c);
  return excess;
}

uint64_t
cache_space_watch (struct cache *c)
{
  uint64_t ticket;

  atomic_fetch_add (&c->space_waiters, 1);
  pthread_mutex_lock (&c->space_lock);
  ticket = c->space_gen;
  pthread_mutex_unlock (&c->space_lock);
  return ticket;
}

void
cache_space_wait (struct cache *c, uint64_t *ticket)
{
  pthread_mutex_lock (&c->space_lock);
  while (c->space_gen == *ticket)
    pthread_cond_wait (&c->space_cond, &c->space_lock);
  *ticket = c->space_gen;
  pthread_mutex_unlock (&c->space_lock);
}

void
cache_space_unwatch (struct cache *c)
{
  atomic_fetch_sub (&c->space_waiters, 1);
}

static size_t
list_fifo (struct cache *c, const struct fifo *f, unsigned base,
           struct cache_block_rank *out, size_t max)
{
  size_t n = 0;

  for (struct cache_block *b = f->head; b && n < max; b = b->fifo_next)
    {
      struct shard *s = shard_of (c, b->blockno);
      pthread_mutex_lock (&s->lock);
      out[n++] = (struct cache_block_rank){ b->blockno, base + b->freq };
      pthread_mutex_unlock (&s->lock);
    }
  return n;
}

size_t
cache_list_blocks (struct cache *c, struct cache_block_rank *out, size_t max)
{
  size_t n;

  pthread_mutex_lock (&c->evict_lock);
  n = list_fifo (c, &c->main, MAX_FREQ + 1, out, max);
  n += list_fifo (c, &c->small, 0, out + n, max - n);
  pthread_mutex_unlock (&c->evict_lock);
  return n;
}

void
cache_get_stats (struct cache *c, struct cache_stats *stats)
{
  uint64_t buckets = 0;
  unsigned i;

  stats->hits = stats->misses = 0;
  for (i = 0; i < NR_SHARDS; i++)
    {
      pthread_mutex_lock (&c->shards[i].lock);
      stats->hits += c->shards[i].hits;
      stats->misses += c->shards[i].misses;
      buckets += UINT64_C (1) << c->shards[i].bits;
      pthread_mutex_unlock (&c->shards[i].lock);
    }

  pthread_mutex_lock (&c->evict_lock);
  stats->insertions = c->insertions;
  stats->evictions = c->evictions;
  stats->blocks = c->nr_blocks;
  stats->capacity = c->capacity;
  stats->small_blocks = c->small.count;
  stats->main_blocks = c->main.count;
  stats->ghost_entries = c->ghost.live;
  stats->metadata_bytes
      = sizeof *c + NR_SHARDS * sizeof *c->shards
        + buckets * sizeof (struct cache_block *)
        + (uint64_t)c->ghost.size
              * (sizeof *c->ghost.blocknos + sizeof *c->ghost.next)
        + ((uint64_t)c->ghost.mask + 1) * sizeof *c->ghost.buckets
        + c->nr_blocks * sizeof (struct cache_block);
  pthread_mutex_unlock (&c->evict_lock);

  stats->dirty_bytes = cache_dirty_bytes (c);
  stats->peak_dirty_bytes = atomic_load (&c->peak_dirty_blocks) * c->block_size;
}
