/* blkcache: the miss-ratio curve.  See mrc.h.
 *
 * Sampling (SHARDS, Waldspurger et al., FAST 2015).  Each block number is
 * mixed into 64 bits.  Bits 24 and up pick one of the partitions (a power
 * of two of them); each partition is a fixed-size SHARDS sample of its own
 * blocks, under its own mutex, which every structure below belongs to.
 * The low 24 bits (the sampling hash) decide: the block is sampled iff
 * that hash is below its partition's threshold T, so with K partitions
 * the partition samples the block numbers at a rate R = T / 2^24 / K.  The
 * threshold lives in an atomic, only ever lowered, and a reader tests it
 * without the lock: an unsampled block costs a hash and the atomic add
 * of its partition's reference count (below).  Partitions let the
 * rate start high (1 in the plugin, where sampling errs least) without
 * making every reader queue on one lock.
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
 * Fixed size.  When a new block would make a partition's tracked set
 * exceed its share of max_samples, its T is lowered to the largest sampling
 * hash tracked, and every block with that hash is forgotten (a max-heap on the
 * hash finds them in O(log n)).  The rate only falls, so a reader that tested
 * an old T tests again under the lock.
 *
 * The curve.  A reference's distance d, counted among the sampled blocks
 * of its partition, stands for d / R blocks; the reference itself stands
 * for 1 / R references, its weight in its partition's histogram.  First
 * references go to a "cold" bin (a miss at every size).  Bins are exact below
 * 64 blocks and then 32 to a power of two (3% wide).  Each partition has two
 * histograms that alternate: when the current one holds window / 2 references'
 * weight the other is cleared and becomes current, so their sum covers between
 * window / 2 and window of the latest references.  The hit ratio of an LRU
 * cache of S blocks is the weight of distances below S over the total, summed
 * over the partitions; the bin holding S counts in proportion.  Each partition
 * also counts every reference to its blocks, sampled or not (one atomic
 * add, on a line of its own), and what its sample's weights miss of that
 * count goes to distance 0 (SHARDS_adj, see part_hits): on skewed reads
 * whether a few very hot blocks happen to be sampled otherwise moves the
 * curve by several points.  With one partition and rate 1 every distance
 * is exact.
 *
 * Memory: about 50 bytes a sample (24 for its record, 4 for its bucket at
 * load 1/2..1, 4 in the heap, 8 in the Fenwick tree and 8 in the time
 * ring) plus 18 KiB of histograms a partition: see mrc_get_stats.
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
#define MAX_EXP                                                                \
  40 /* scaled distances of 2^40 blocks and more share                         \
      * the last bin */
#define NR_BINS (EXACT_BINS + (MAX_EXP - EXACT_SHIFT) * (1u << SUB_BITS))
#define COLD NR_BINS /* the bin of first references */
#define MAX_PARTITIONS 64

struct sample
{
  uint64_t blk;
  uint32_t hash;     /* the sampling hash, below the threshold */
  uint32_t time;     /* of its last reference, 1..ring - 1 */
  uint32_t next;     /* in its bucket's chain, or the free list */
  uint32_t heap_pos; /* in the max-heap on hash */
};

/* One partition: a fixed-size SHARDS sample of the blocks the partition
 * hash gives it, under its own lock. */
struct part
{
  /* Block references of the partition's blocks, sampled or not, since the
   * current epoch began; on a line of its own, since every reader of
   * the partition's blocks adds to it. */
  _Alignas(64) _Atomic uint64_t seen;
  _Alignas(64) pthread_mutex_t lock;
  _Atomic uint32_t threshold; /* sampled iff hash < threshold */
  uint32_t max_samples, nr_samples;
  struct sample *samples; /* max_samples + 1 records */
  uint32_t free_list;
  uint32_t *buckets, bucket_mask;
  uint32_t *heap;  /* sample indices, a max-heap on hash */
  uint32_t *tree;  /* Fenwick tree over times 1..ring - 1 */
  uint32_t *owner; /* owner[time]: the sample whose last time it is */
  uint32_t ring, clock;
  unsigned scale; /* HASH_SPACE * partitions: the sampling rate is
                   * threshold / scale */
  uint64_t window, references;
  double epoch_weight;  /* weight recorded in hist[cur] */
  uint64_t seen_before; /* seen in the epoch before the current one */
  double *hist[2];      /* NR_BINS + 1 bins each */
  int cur;
};

struct mrc
{
  unsigned nr_parts;
  size_t memory;
  struct part parts[]; /* nr_parts */
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
record (struct part *p, unsigned bin, double weight)
{
  p->hist[p->cur][bin] += weight;
  p->epoch_weight += weight;
  p->references++;
  if (p->epoch_weight * 2 >= (double)p->window)
    {
      p->seen_before = atomic_exchange (&p->seen, 0);
      p->cur ^= 1;
      memset (p->hist[p->cur], 0, (NR_BINS + 1) * sizeof (double));
      p->epoch_weight = 0;
    }
}

/* --- the Fenwick tree over last times ---------------------------------- */

static void
tree_add (struct part *p, uint32_t t, uint32_t delta)
{
  for (; t < p->ring; t += t & -t)
    p->tree[t] += delta; /* delta UINT32_MAX subtracts one */
}

/* Tracked blocks whose last time is at most T. */
static uint32_t
tree_prefix (const struct part *p, uint32_t t)
{
  uint32_t sum = 0;

  for (; t > 0; t -= t & -t)
    sum += p->tree[t];
  return sum;
}

/* Renumber the live times 1..k in order and rebuild the tree. */
static void
compact (struct part *p)
{
  uint32_t k = 0;

  for (uint32_t t = 1; t <= p->clock; t++)
    {
      uint32_t s = p->owner[t];
      if (s == NONE)
        continue;
      p->owner[t] = NONE;
      p->owner[++k] = s;
      p->samples[s].time = k;
    }
  for (uint32_t t = 1; t < p->ring; t++)
    p->tree[t] = t <= k;
  for (uint32_t t = 1; t < p->ring; t++)
    {
      uint32_t up = t + (t & -t);
      if (up < p->ring)
        p->tree[up] += p->tree[t];
    }
  p->clock = k;
}

/* Make S's last time now. */
static void
touch (struct part *p, uint32_t s)
{
  if (p->clock + 1 == p->ring)
    compact (p);
  p->clock++;
  p->samples[s].time = p->clock;
  p->owner[p->clock] = s;
  tree_add (p, p->clock, 1);
}

static void
untouch (struct part *p, uint32_t s)
{
  uint32_t t = p->samples[s].time;

  p->owner[t] = NONE;
  tree_add (p, t, UINT32_MAX);
}

/* --- the max-heap on the sampling hash --------------------------------- */

static void
heap_set (struct part *p, uint32_t pos, uint32_t s)
{
  p->heap[pos] = s;
  p->samples[s].heap_pos = pos;
}

static void
heap_push (struct part *p, uint32_t s)
{
  uint32_t pos = p->nr_samples; /* the caller counts S after this */
  uint32_t hash = p->samples[s].hash;

  while (pos > 0)
    {
      uint32_t parent = (pos - 1) / 2;
      if (p->samples[p->heap[parent]].hash >= hash)
        break;
      heap_set (p, pos, p->heap[parent]);
      pos = parent;
    }
  heap_set (p, pos, s);
}

/* Remove the top of a heap of N entries. */
static void
heap_pop (struct part *p, uint32_t n)
{
  uint32_t last = p->heap[n - 1], pos = 0, hash = p->samples[last].hash;

  n--;
  for (;;)
    {
      uint32_t child = 2 * pos + 1;
      if (child >= n)
        break;
      if (child + 1 < n
          && p->samples[p->heap[child + 1]].hash
                 > p->samples[p->heap[child]].hash)
        child++;
      if (p->samples[p->heap[child]].hash <= hash)
        break;
      heap_set (p, pos, p->heap[child]);
      pos = child;
    }
  if (n > 0)
    heap_set (p, pos, last);
}

/* --- the tracked set --------------------------------------------------- */

static uint32_t *
bucket_of (struct part *p, uint64_t h)
{
  return &p->buckets[(h >> 32) & p->bucket_mask];
}

static uint32_t
lookup (struct part *p, uint64_t blk, uint64_t h)
{
  uint32_t s = *bucket_of (p, h);

  while (s != NONE && p->samples[s].blk != blk)
    s = p->samples[s].next;
  return s;
}

static uint32_t
insert (struct part *p, uint64_t blk, uint64_t h)
{
  uint32_t s = p->free_list, *head = bucket_of (p, h);

  p->free_list = p->samples[s].next;
  p->samples[s].blk = blk;
  p->samples[s].hash = h & (HASH_SPACE - 1);
  p->samples[s].next = *head;
  *head = s;
  heap_push (p, s);
  p->nr_samples++;
  touch (p, s);
  return s;
}

/* Forget the block at the top of the heap. */
static void
forget_top (struct part *p)
{
  uint32_t s = p->heap[0];
  uint32_t *link = bucket_of (p, mix64 (p->samples[s].blk));

  while (*link != s)
    link = &p->samples[*link].next;
  *link = p->samples[s].next;
  untouch (p, s);
  heap_pop (p, p->nr_samples);
  p->nr_samples--;
  p->samples[s].next = p->free_list;
  p->free_list = s;
}

/* Lower the rate until the tracked set fits. */
static void
shrink (struct part *p)
{
  uint32_t t = p->samples[p->heap[0]].hash;

  while (p->nr_samples > 0 && p->samples[p->heap[0]].hash >= t)
    forget_top (p);
  atomic_store_explicit (&p->threshold, t, memory_order_relaxed);
}

/* One sampled reference.  The caller holds P's lock. */
static void
reference (struct part *p, uint64_t blk, uint64_t h)
{
  uint32_t t = atomic_load_explicit (&p->threshold, memory_order_relaxed);
  double weight = (double)p->scale / t;
  uint32_t s;

  if ((h & (HASH_SPACE - 1)) >= t)
    return; /* the rate fell since the caller looked */
  s = lookup (p, blk, h);
  if (s == NONE)
    {
      record (p, COLD, weight);
      insert (p, blk, h);
      if (p->nr_samples > p->max_samples)
        shrink (p);
      return;
    }
  /* Tracked blocks referenced since S was: those with a later time. */
  uint64_t d = p->nr_samples - tree_prefix (p, p->samples[s].time);
  record (p, bin_of (d * p->scale / t), weight);
  untouch (p, s);
  touch (p, s);
}

/* --- the interface ----------------------------------------------------- */

static size_t
part_init (struct part *p, uint32_t max_samples, double rate,
           unsigned partitions, uint64_t window)
{
  uint32_t nbuckets = 1, threshold;

  pthread_mutex_init (&p->lock, NULL);
  p->scale = HASH_SPACE * partitions;
  while (nbuckets < max_samples)
    nbuckets *= 2;
  p->max_samples = max_samples;
  p->window = window;
  p->ring = 2 * max_samples + 2;
  p->bucket_mask = nbuckets - 1;
  p->samples = calloc (max_samples + 1, sizeof *p->samples);
  p->buckets = malloc (nbuckets * sizeof *p->buckets);
  p->heap = calloc (max_samples + 1, sizeof *p->heap);
  p->tree = calloc (p->ring, sizeof *p->tree);
  p->owner = malloc (p->ring * sizeof *p->owner);
  p->hist[0] = calloc (NR_BINS + 1, sizeof (double));
  p->hist[1] = calloc (NR_BINS + 1, sizeof (double));
  if (p->samples == NULL || p->buckets == NULL || p->heap == NULL
      || p->tree == NULL || p->owner == NULL || p->hist[0] == NULL
      || p->hist[1] == NULL)
    return 0;
  memset (p->buckets, 0xff, nbuckets * sizeof *p->buckets);
  memset (p->owner, 0xff, p->ring * sizeof *p->owner);
  for (uint32_t s = 0; s <= max_samples; s++)
    p->samples[s].next = s < max_samples ? s + 1 : NONE;
  threshold = rate * HASH_SPACE + 0.5;
  atomic_init (&p->threshold, threshold > 0 ? threshold : 1);
  return (max_samples + 1) * (sizeof *p->samples + sizeof *p->heap)
         + nbuckets * sizeof *p->buckets
         + p->ring * (sizeof *p->tree + sizeof *p->owner)
         + 2 * (NR_BINS + 1) * sizeof (double);
}

static void
part_free (struct part *p)
{
  if (p->scale == 0)
    return; /* mrc_new failed before it */
  pthread_mutex_destroy (&p->lock);
  free (p->samples);
  free (p->buckets);
  free (p->heap);
  free (p->tree);
  free (p->owner);
  free (p->hist[0]);
  free (p->hist[1]);
}

struct mrc *
mrc_new (const struct mrc_config *cfg)
{
  unsigned n = cfg->partitions;
  struct mrc *m;

  if (n == 0 || n > MAX_PARTITIONS || (n & (n - 1)) != 0 || cfg->max_samples < n
      || cfg->max_samples > (UINT32_MAX - 3) / 2
      || !(cfg->rate > 0 && cfg->rate <= 1) || cfg->window < 2)
    {
      errno = EINVAL;
      return NULL;
    }
  size_t size = sizeof *m + n * sizeof *m->parts;
  m = aligned_alloc (_Alignof(struct mrc), (size + 63) / 64 * 64);
  if (m == NULL)
    return NULL;
  memset (m, 0, size);
  m->nr_parts = n;
  m->memory = sizeof *m + n * sizeof *m->parts;
  for (unsigned i = 0; i < n; i++)
    {
      size_t bytes = part_init (&m->parts[i], (cfg->max_samples + n - 1) / n,
                                cfg->rate, n, cfg->window);
      if (bytes == 0)
        {
          mrc_free (m);
          errno = ENOMEM;
          return NULL;
        }
      m->memory += bytes;
    }
  return m;
}

void
mrc_free (struct mrc *m)
{
  if (m == NULL)
    return;
  for (unsigned i = 0; i < m->nr_parts; i++)
    part_free (&m->parts[i]);
  free (m);
}

void
mrc_access (struct mrc *m, uint64_t first, uint64_t n)
{
  for (uint64_t blk = first; blk < first + n; blk++)
    {
      uint64_t h = mix64 (blk);
      struct part *p = &m->parts[(h >> HASH_BITS) & (m->nr_parts - 1)];
      atomic_fetch_add_explicit (&p->seen, 1, memory_order_relaxed);
      if ((h & (HASH_SPACE - 1))
          >= atomic_load_explicit (&p->threshold, memory_order_relaxed))
        continue;
      pthread_mutex_lock (&p->lock);
      reference (p, blk, h);
      pthread_mutex_unlock (&p->lock);
    }
}

/* Partition P's share of the hit ratio of a cache of BLOCKS blocks: its
 * weights of hits and of all references in the window.  The weights
 * should add up to the partition's references (seen) times the number of
 * partitions, as each stands for 1 / R references; when a few very hot
 * blocks make a sample's share run over or under that, the difference
 * goes to distance 0 (SHARDS_adj: hot blocks are what is over- or
 * under-sampled, and they are reused at short distances). */
static void
part_hits (struct part *p, unsigned nr_parts, uint64_t blocks, double *hits,
           double *total)
{
  double w_total = 0, w_hits = 0, adjust;

  pthread_mutex_lock (&p->lock);
  for (unsigned b = 0; b <= NR_BINS; b++)
    {
      double w = p->hist[0][b] + p->hist[1][b];
      uint64_t low, width;

      w_total += w;
      if (b == COLD)
        continue;
      bin_range (b, &low, &width);
      if (low + width <= blocks)
        w_hits += w;
      else if (low < blocks)
        w_hits += w * (double)(blocks - low) / (double)width;
    }
  adjust
      = (double)(p->seen_before + atomic_load (&p->seen)) * nr_parts - w_total;
  pthread_mutex_unlock (&p->lock);
  *total += w_total + adjust;
  *hits += w_hits + (blocks > 0 ? adjust : 0);
}

double
mrc_hit_ratio (struct mrc *m, uint64_t blocks)
{
  double total = 0, hits = 0;

  for (unsigned i = 0; i < m->nr_parts; i++)
    part_hits (&m->parts[i], m->nr_parts, blocks, &hits, &total);
  if (total <= 0)
    return -1;
  return hits <= 0 ? 0 : hits >= total ? 1 : hits / total;
}

void
mrc_get_stats (struct mrc *m, struct mrc_stats *s)
{
  uint64_t thresholds = 0;

  memset (s, 0, sizeof *s);
  for (unsigned i = 0; i < m->nr_parts; i++)
    {
      struct part *p = &m->parts[i];
      pthread_mutex_lock (&p->lock);
      thresholds += atomic_load_explicit (&p->threshold, memory_order_relaxed);
      s->samples += p->nr_samples;
      s->references += p->references;
      pthread_mutex_unlock (&p->lock);
    }
  s->rate_ppm = thresholds * 1000000 / ((uint64_t)HASH_SPACE * m->nr_parts);
  s->memory_bytes = m->memory;
}
