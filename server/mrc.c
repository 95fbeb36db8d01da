/* blkcache: the miss-ratio curve.  See mrc.h.
 *
 * Sampling (SHARDS, Waldspurger et al., FAST 2015).  Each block number is
 * mixed into 64 bits; its low 24 bits (the sampling hash) decide: the
 * block is sampled iff that hash is below the threshold T, a rate of
 * R = T / 2^24.  The threshold lives in an atomic, only ever lowered, and
 * a reader tests it without the lock: an unsampled block costs a hash.
 * A sampled block takes the one mutex, which every structure below
 * belongs to.
 *
 * Reuse distance.  Each sampled block tracked has the logical time of its
 * last reference; time advances by one per sampled reference.  The
 * distance of a reference is the number of other tracked blocks referenced
 * since that block's last reference, which is the number of tracked last
 * times above the block's own: a Fenwick tree over the times, one bit per
 * time that is some block's last, answers it in O(log n).  Times run in a
 * ring of 2 * max_samples + 1 slots; when it is used up, the live times
 * are renumbered 1..k in order (a walk of the ring, O(max_samples)), which
 * happens at most once per max_samples references.  The blocks are found
 * by a chained hash table on the mix's high bits (the low ones, being
 * below T, are no good as a bucket index).
 *
 * Fixed size.  When a new block would make the tracked set exceed
 * max_samples, T is lowered to the largest sampling hash tracked, and
 * every block with that hash is forgotten (a max-heap on the hash finds
 * them in O(log n)).  The rate only falls, so a reader that tested an old
 * T tests again under the lock.
 *
 * The curve.  A reference's distance d, counted among sampled blocks,
 * stands for d / R blocks; the reference itself stands for 1 / R
 * references, its weight in the histogram.  First references go to a
 * "cold" bin (a miss at every size).  Bins are exact below 64 blocks and
 * then 32 to a power of two (3% wide).  Two histograms alternate: when the
 * current one holds window / 2 references' weight the other is cleared
 * and becomes current, so their sum covers between window / 2 and window
 * of the latest references.  The hit ratio of an LRU cache of S blocks is
 * the weight of distances below S over the total; the bin holding S counts
 * in proportion.
 *
 * Memory: about 54 bytes a sample (24 for its record, 4 for its bucket at
 * load 1/2..1, 4 in the heap, 8 in the Fenwick tree and 8 in the time
 * ring, rounded up for the bucket table's power of two) plus 26 KiB of
 * histograms: see mrc_get_stats.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mrc.h"

#define HASH_BITS 24
#define HASH_SPACE (1u << HASH_BITS)
#define NONE UINT32_MAX
#define EXACT_BINS 64 /* distances 0..63 have a bin each */
#define EXACT_SHIFT 6 /* log2 (EXACT_BINS) */
#define SUB_BITS 5    /* 32 bins to a power of two above */
#define MAX_EXP 56    /* scaled distances stay below 2^56 (2^32 * 2^24) */
#define NR_BINS (EXACT_BINS + (MAX_EXP - EXACT_SHIFT) * (1u << SUB_BITS))
#define COLD NR_BINS  /* the bin of first references */

struct sample
{
  uint64_t blk;
  uint32_t hash;     /* the sampling hash, below the threshold */
  uint32_t time;     /* of its last reference, 1..ring - 1 */
  uint32_t next;     /* in its bucket's chain, or the free list */
  uint32_t heap_pos; /* in the max-heap on hash */
};

struct mrc
{
  pthread_mutex_t lock;
  _Atomic uint32_t threshold; /* sampled iff hash < threshold */
  uint32_t max_samples, nr_samples;
  struct sample *samples; /* max_samples + 1 records */
  uint32_t free_list;
  uint32_t *buckets, bucket_mask;
  uint32_t *heap;  /* sample indices, a max-heap on hash */
  uint32_t *tree;  /* Fenwick tree over times 1..ring - 1 */
  uint32_t *owner; /* owner[time]: the sample whose last time it is */
  uint32_t ring, clock;
  uint64_t window, references;
  double epoch_weight;     /* weight recorded in hist[cur] */
  double *hist[2];         /* NR_BINS + 1 bins each */
  int cur;
  size_t memory;
};

static uint64_t
mix64 (uint64_t x)
{
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/* --- histogram bins --------------------------------------------------- */

static unsigned
bin_of (uint64_t x)
{
  unsigned e;

  if (x < EXACT_BINS)
    return x;
  e = 63 - __builtin_clzll (x);
  if (e >= MAX_EXP)
    return NR_BINS - 1;
  return EXACT_BINS + (e - EXACT_SHIFT) * (1u << SUB_BITS)
         + ((x >> (e - SUB_BITS)) & ((1u << SUB_BITS) - 1));
}

/* The distances bin B holds: [*LOW, *LOW + *WIDTH). */
static void
bin_range (unsigned b, uint64_t *low, uint64_t *width)
{
  unsigned e, sub;

  if (b < EXACT_BINS)
    {
      *low = b;
      *width = 1;
      return;
    }
  e = EXACT_SHIFT + (b - EXACT_BINS) / (1u << SUB_BITS);
  sub = (b - EXACT_BINS) % (1u << SUB_BITS);
  *low = (uint64_t)((1u << SUB_BITS) + sub) << (e - SUB_BITS);
  *width = (uint64_t)1 << (e - SUB_BITS);
}

static void
record (struct mrc *m, unsigned bin, double weight)
{
  m->hist[m->cur][bin] += weight;
  m->epoch_weight += weight;
  m->references++;
  if (m->epoch_weight * 2 >= (double)m->window)
    {
      m->cur ^= 1;
      memset (m->hist[m->cur], 0, (NR_BINS + 1) * sizeof (double));
      m->epoch_weight = 0;
    }
}

/* --- the Fenwick tree over last times ---------------------------------- */

static void
tree_add (struct mrc *m, uint32_t t, uint32_t delta)
{
  for (; t < m->ring; t += t & -t)
    m->tree[t] += delta; /* delta UINT32_MAX subtracts one */
}

/* Tracked blocks whose last time is at most T. */
static uint32_t
tree_prefix (const struct mrc *m, uint32_t t)
{
  uint32_t sum = 0;

  for (; t > 0; t -= t & -t)
    sum += m->tree[t];
  return sum;
}

/* Renumber the live times 1..k in order and rebuild the tree. */
static void
compact (struct mrc *m)
{
  uint32_t k = 0;

  for (uint32_t t = 1; t <= m->clock; t++)
    {
      uint32_t s = m->owner[t];
      if (s == NONE)
        continue;
      m->owner[t] = NONE;
      m->owner[++k] = s;
      m->samples[s].time = k;
    }
  for (uint32_t t = 1; t < m->ring; t++)
    m->tree[t] = t <= k;
  for (uint32_t t = 1; t < m->ring; t++)
    {
      uint32_t up = t + (t & -t);
      if (up < m->ring)
        m->tree[up] += m->tree[t];
    }
  m->clock = k;
}

/* Make S's last time now. */
static void
touch (struct mrc *m, uint32_t s)
{
  if (m->clock + 1 == m->ring)
    compact (m);
  m->clock++;
  m->samples[s].time = m->clock;
  m->owner[m->clock] = s;
  tree_add (m, m->clock, 1);
}

static void
untouch (struct mrc *m, uint32_t s)
{
  uint32_t t = m->samples[s].time;

  m->owner[t] = NONE;
  tree_add (m, t, UINT32_MAX);
}

/* --- the max-heap on the sampling hash --------------------------------- */

static void
heap_set (struct mrc *m, uint32_t pos, uint32_t s)
{
  m->heap[pos] = s;
  m->samples[s].heap_pos = pos;
}

static void
heap_push (struct mrc *m, uint32_t s)
{
  uint32_t pos = m->nr_samples; /* the caller counts S after this */
  uint32_t hash = m->samples[s].hash;

  while (pos > 0)
    {
      uint32_t parent = (pos - 1) / 2;
      if (m->samples[m->heap[parent]].hash >= hash)
        break;
      heap_set (m, pos, m->heap[parent]);
      pos = parent;
    }
  heap_set (m, pos, s);
}

/* Remove the top of a heap of N entries. */
static void
heap_pop (struct mrc *m, uint32_t n)
{
  uint32_t last = m->heap[n - 1], pos = 0, hash = m->samples[last].hash;

  n--;
  for (;;)
    {
      uint32_t child = 2 * pos + 1;
      if (child >= n)
        break;
      if (child + 1 < n
          && m->samples[m->heap[child + 1]].hash
                 > m->samples[m->heap[child]].hash)
        child++;
      if (m->samples[m->heap[child]].hash <= hash)
        break;
      heap_set (m, pos, m->heap[child]);
      pos = child;
    }
  if (n > 0)
    heap_set (m, pos, last);
}

/* --- the tracked set --------------------------------------------------- */

static uint32_t *
bucket_of (struct mrc *m, uint64_t h)
{
  return &m->buckets[(h >> 32) & m->bucket_mask];
}

static uint32_t
lookup (struct mrc *m, uint64_t blk, uint64_t h)
{
  uint32_t s = *bucket_of (m, h);

  while (s != NONE && m->samples[s].blk != blk)
    s = m->samples[s].next;
  return s;
}

static uint32_t
insert (struct mrc *m, uint64_t blk, uint64_t h)
{
  uint32_t s = m->free_list, *head = bucket_of (m, h);

  m->free_list = m->samples[s].next;
  m->samples[s].blk = blk;
  m->samples[s].hash = h & (HASH_SPACE - 1);
  m->samples[s].next = *head;
  *head = s;
  heap_push (m, s);
  m->nr_samples++;
  touch (m, s);
  return s;
}

/* Forget the block at the top of the heap. */
static void
forget_top (struct mrc *m)
{
  uint32_t s = m->heap[0];
  uint32_t *link = bucket_of (m, mix64 (m->samples[s].blk));

  while (*link != s)
    link = &m->samples[*link].next;
  *link = m->samples[s].next;
  untouch (m, s);
  heap_pop (m, m->nr_samples);
  m->nr_samples--;
  m->samples[s].next = m->free_list;
  m->free_list = s;
}

/* Lower the rate until the tracked set fits. */
static void
shrink (struct mrc *m)
{
  uint32_t t = m->samples[m->heap[0]].hash;

  while (m->nr_samples > 0 && m->samples[m->heap[0]].hash >= t)
    forget_top (m);
  atomic_store_explicit (&m->threshold, t, memory_order_relaxed);
}

/* One sampled reference.  The caller holds the lock. */
static void
reference (struct mrc *m, uint64_t blk, uint64_t h)
{
  uint32_t t = atomic_load_explicit (&m->threshold, memory_order_relaxed);
  double weight = (double)HASH_SPACE / t;
  uint32_t s;

  if ((h & (HASH_SPACE - 1)) >= t)
    return; /* the rate fell since the caller looked */
  s = lookup (m, blk, h);
  if (s == NONE)
    {
      record (m, COLD, weight);
      insert (m, blk, h);
      if (m->nr_samples > m->max_samples)
        shrink (m);
      return;
    }
  /* Tracked blocks referenced since S was: those with a later time. */
  uint64_t d = m->nr_samples - tree_prefix (m, m->samples[s].time);
  record (m, bin_of (d * HASH_SPACE / t), weight);
  untouch (m, s);
  touch (m, s);
}

/* --- the interface ----------------------------------------------------- */

struct mrc *
mrc_new (const struct mrc_config *cfg)
{
  struct mrc *m;
  uint32_t nbuckets = 1, threshold;

  if (cfg->max_samples == 0 || cfg->max_samples > (UINT32_MAX - 3) / 2
      || !(cfg->rate > 0 && cfg->rate <= 1) || cfg->window < 2)
    {
      errno = EINVAL;
      return NULL;
    }
  m = calloc (1, sizeof *m);
  if (m == NULL)
    return NULL;
  while (nbuckets < cfg->max_samples)
    nbuckets *= 2;
  m->max_samples = cfg->max_samples;
  m->window = cfg->window;
  m->ring = 2 * cfg->max_samples + 2;
  m->bucket_mask = nbuckets - 1;
  m->samples = calloc (cfg->max_samples + 1, sizeof *m->samples);
  m->buckets = malloc (nbuckets * sizeof *m->buckets);
  m->heap = calloc (cfg->max_samples + 1, sizeof *m->heap);
  m->tree = calloc (m->ring, sizeof *m->tree);
  m->owner = malloc (m->ring * sizeof *m->owner);
  m->hist[0] = calloc (NR_BINS + 1, sizeof (double));
  m->hist[1] = calloc (NR_BINS + 1, sizeof (double));
  if (m->samples == NULL || m->buckets == NULL || m->heap == NULL
      || m->tree == NULL || m->owner == NULL || m->hist[0] == NULL
      || m->hist[1] == NULL)
    {
      mrc_free (m);
      errno = ENOMEM;
      return NULL;
    }
  memset (m->buckets, 0xff, nbuckets * sizeof *m->buckets);
  memset (m->owner, 0xff, m->ring * sizeof *m->owner);
  for (uint32_t s = 0; s <= cfg->max_samples; s++)
    m->samples[s].next = s < cfg->max_samples ? s + 1 : NONE;
  threshold = cfg->rate * HASH_SPACE + 0.5;
  atomic_init (&m->threshold, threshold > 0 ? threshold : 1);
  m->memory = sizeof *m
              + (cfg->max_samples + 1)
                    * (sizeof *m->samples + sizeof *m->heap)
              + nbuckets * sizeof *m->buckets
              + m->ring * (sizeof *m->tree + sizeof *m->owner)
              + 2 * (NR_BINS + 1) * sizeof (double);
  pthread_mutex_init (&m->lock, NULL);
  return m;
}

void
mrc_free (struct mrc *m)
{
  if (m == NULL)
    return;
  pthread_mutex_destroy (&m->lock);
  free (m->samples);
  free (m->buckets);
  free (m->heap);
  free (m->tree);
  free (m->owner);
  free (m->hist[0]);
  free (m->hist[1]);
  free (m);
}

void
mrc_access (struct mrc *m, uint64_t first, uint64_t n)
{
  for (uint64_t blk = first; blk < first + n; blk++)
    {
      uint64_t h = mix64 (blk);
      if ((h & (HASH_SPACE - 1))
          >= atomic_load_explicit (&m->threshold, memory_order_relaxed))
        continue;
      pthread_mutex_lock (&m->lock);
      reference (m, blk, h);
      pthread_mutex_unlock (&m->lock);
    }
}

double
mrc_hit_ratio (struct mrc *m, uint64_t blocks)
{
  double total = 0, hits = 0;

  pthread_mutex_lock (&m->lock);
  for (unsigned b = 0; b <= NR_BINS; b++)
    {
      double w = m->hist[0][b] + m->hist[1][b];
      uint64_t low, width;

      total += w;
      if (b == COLD)
        continue;
      bin_range (b, &low, &width);
      if (low + width <= blocks)
        hits += w;
      else if (low < blocks)
        hits += w * (double)(blocks - low) / (double)width;
    }
  pthread_mutex_unlock (&m->lock);
  return total > 0 ? hits / total : -1;
}

void
mrc_get_stats (struct mrc *m, struct mrc_stats *s)
{
  uint32_t t;

  pthread_mutex_lock (&m->lock);
  t = atomic_load_explicit (&m->threshold, memory_order_relaxed);
  s->samples = m->nr_samples;
  s->rate_ppm = (uint64_t)t * 1000000 / HASH_SPACE;
  s->references = m->references;
  s->memory_bytes = m->memory;
  pthread_mutex_unlock (&m->lock);
}
