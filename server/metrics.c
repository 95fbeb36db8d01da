/* blkcache: the metrics.  See metrics.h.
 *
 * Layout: two static tables, one over struct engine_stats and one over
 * struct service_stats, each entry a name, a type, a help sentence and the
 * offset of its uint64_t in the struct.  Adding a counter is one line
 * here.  The tables are read-only, so every function is thread-safe.
 */
#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

struct metric_def
{
  const char *name;
  enum metric_type type;
  size_t offset;
  const char *help;
};

#define E(field) offsetof (struct engine_stats, field)
#define S(field) offsetof (struct service_stats, field)

static const struct metric_def engine_defs[] = {
  { "cache_size_bytes", METRIC_GAUGE, E (cache_size),
    "Memory the cache may use for block data." },
  { "cache_block_size_bytes", METRIC_GAUGE, E (block_size),
    "Size of one cache block." },
  { "cache_capacity_blocks", METRIC_GAUGE, E (cache.capacity),
    "Blocks the cache may hold." },
  { "cache_blocks", METRIC_GAUGE, E (cache.blocks), "Blocks allocated now." },
  { "cache_small_blocks", METRIC_GAUGE, E (cache.small_blocks),
    "Blocks in the S3-FIFO small (probation) queue." },
  { "cache_main_blocks", METRIC_GAUGE, E (cache.main_blocks),
    "Blocks in the S3-FIFO main queue." },
  { "cache_ghost_entries", METRIC_GAUGE, E (cache.ghost_entries),
    "Recently evicted block numbers remembered by the ghost queue." },
  { "cache_metadata_bytes", METRIC_GAUGE, E (cache.metadata_bytes),
    "Memory of the cache besides block data." },
  { "cache_hits", METRIC_COUNTER, E (cache.hits),
    "Block lookups by readers that found the block cached." },
  { "cache_misses", METRIC_COUNTER, E (cache.misses),
    "Block lookups by readers that did not." },
  { "cache_insertions", METRIC_COUNTER, E (cache.insertions),
    "Blocks inserted into the cache." },
  { "cache_evictions", METRIC_COUNTER, E (cache.evictions),
    "Clean blocks evicted to make room." },
  { "dirty_bytes", METRIC_GAUGE, E (cache.dirty_bytes),
    "Bytes of dirty blocks and blocks in writeback." },
  { "peak_dirty_bytes", METRIC_GAUGE, E (cache.peak_dirty_bytes),
    "Highest dirty_bytes seen." },
  { "dirty_limit_percent", METRIC_GAUGE, E (dirty_limit),
    "Share of the cache size above which cached writes wait." },
  { "mrc_samples", METRIC_GAUGE, E (mrc.entries),
    "Blocks the miss-ratio curve's miniature caches hold now, with their "
    "ghosts." },
  { "mrc_sample_rate_ppm", METRIC_GAUGE, E (mrc.rate_ppm),
    "Share of block numbers the miss-ratio curve samples, per million." },
  { "mrc_references", METRIC_COUNTER, E (mrc.references),
    "Sampled block reads the miss-ratio curve has seen." },
  { "mrc_memory_bytes", METRIC_GAUGE, E (mrc.memory_bytes),
    "Memory of the miss-ratio curve." },
  { "reads", METRIC_COUNTER, E (reads), "Read requests." },
  { "cached_writes", METRIC_COUNTER, E (cached_writes),
    "Write requests that landed in the cache." },
  { "direct_writes", METRIC_COUNTER, E (direct_writes),
    "Write requests that went to the disk." },
  { "fua_writes", METRIC_COUNTER, E (fua_writes), "Write requests with FUA." },
  { "zeroes", METRIC_COUNTER, E (zeroes), "Write-zeroes requests." },
  { "trims", METRIC_COUNTER, E (trims), "Trim requests." },
  { "flushes", METRIC_COUNTER, E (flushes),
    "Flushes, from clients and the control socket." },
  { "prefetches", METRIC_COUNTER, E (prefetches),
    "Cache (prefetch) requests." },
  { "block_status", METRIC_COUNTER, E (block_status),
    "Block status requests." },
  { "writeback_blocks", METRIC_COUNTER, E (writeback_blocks),
    "Blocks written back to the disk." },
  { "writeback_errors", METRIC_COUNTER, E (writeback_errors),
    "Block writebacks that failed." },
  { "lock_waits", METRIC_COUNTER, E (lock_waits),
    "Range locks that had to wait for another request." },
  { "recheck_retries", METRIC_COUNTER, E (recheck_retries),
    "Range locks dropped to wait for a write in flight." },
  { "dirty_limit_waits", METRIC_COUNTER, E (dirty_limit_waits),
    "Cached writes held because dirty data exceeded the dirty limit." },
  { "uncached_reads", METRIC_COUNTER, E (uncached_reads),
    "Read misses served from the disk without the cache, which had no "
    "room (its dirty blocks could not be written back)." },
  { "degraded_writethrough", METRIC_COUNTER, E (degraded_writethrough),
    "Writes sent to the disk instead of the cache after repeated "
    "writeback failures." },
  { "cache_mode", METRIC_GAUGE, E (cache_mode),
    "The cache mode now: 2 writeback, 1 writethrough, 0 none." },
  { "writeback_rate_bytes", METRIC_GAUGE, E (writeback_rate),
    "Background writeback's cap in bytes a second (0: unlimited)." },
  { "background_writeback_bytes", METRIC_COUNTER,
    E (background_writeback_bytes),
    "Bytes of the blocks background writeback wrote back." },
  { "writeback_yields", METRIC_COUNTER, E (writeback_yields),
    "Background writeback steps that waited for client requests." },
  { "writeback_throttles", METRIC_COUNTER, E (writeback_throttles),
    "Background writeback steps that waited for writeback-rate." },
  { "ordered_extents", METRIC_COUNTER, E (ordered.added),
    "Disk writes recorded as ordered extents." },
  { "ordered_in_flight", METRIC_GAUGE, E (ordered.in_flight),
    "Ordered extents in flight now." },
  { "ordered_peak_in_flight", METRIC_GAUGE, E (ordered.peak_in_flight),
    "Highest ordered_in_flight seen." },
  { "ordered_waits", METRIC_COUNTER, E (ordered.waits),
    "Waits that slept on an ordered extent." },
  { "syncs", METRIC_COUNTER, E (ordered.syncs), "fdatasync calls." },
  { "sync_callers", METRIC_COUNTER, E (ordered.sync_callers),
    "FUA writes and flushes that needed an fdatasync (shared ones "
    "count once each)." },
  { "sync_errors", METRIC_COUNTER, E (ordered.sync_errors),
    "fdatasync calls that failed." },
  { "seq_cutoff_bytes", METRIC_GAUGE, E (seq_cutoff),
    "Length of a sequential read stream past which it bypasses the cache "
    "(0: off)." },
  { "seq_bypassed_bytes", METRIC_COUNTER, E (seq_bypassed_bytes),
    "Bytes of sequential reads served from the disk without entering the "
    "cache." },
  { "sync_failed", METRIC_GAUGE, E (ordered.sync_failed),
    "1 while a failed fdatasync is latched: flushes and FUA requests fail "
    "until clear-errors." },
  { "flush_blocks_left", METRIC_GAUGE, E (flush_blocks_left),
    "Dirty blocks the flushes running now have still to write (0 when none "
    "runs)." },
};

static const struct metric_def service_defs[] = {
  { "uptime_seconds", METRIC_GAUGE, S (uptime_seconds),
    "Seconds since the service started." },
  { "dirty_expire_seconds", METRIC_GAUGE, S (dirty_expire),
    "Age after which dirty data is written back (0: never)." },
  { "dirty_background_percent", METRIC_GAUGE, S (dirty_background),
    "Share of the cache size above which background writeback runs." },
  { "writeback_expired_passes", METRIC_COUNTER, S (expired_passes),
    "Background writeback passes started by dirty-expire." },
  { "writeback_background_passes", METRIC_COUNTER, S (background_passes),
    "Background writeback passes started by dirty-background." },
  { "control_clients", METRIC_GAUGE, S (control_clients),
    "Control connections now, with those that hung up while a command "
    "of theirs runs." },
  { "control_commands", METRIC_COUNTER, S (control_commands),
    "Commands received on the control socket." },
  { "control_errors", METRIC_COUNTER, S (control_errors),
    "Control commands answered with an error." },
  { "control_jobs_queued", METRIC_GAUGE, S (control_jobs_queued),
    "Control commands waiting for the worker (at most 8)." },
  { "control_idle_seconds", METRIC_GAUGE, S (control_idle),
    "Seconds after which an idle control connection is closed." },
  { "prewarm_blocks_done", METRIC_COUNTER, S (prewarm_blocks_done),
    "Blocks of the hot set prefetched so far at start-up." },
  { "prewarm_blocks_total", METRIC_COUNTER, S (prewarm_blocks_total),
    "Blocks of the hot set to prefetch at start-up (0: a cold start)." },
};

#undef E
#undef S

/* The latency paths' names, in the order of enum engine_latency. */
static const char *const latency_names[ENGINE_LATENCY_PATHS] = {
  "read_hit",     "read_miss", "cached_write",  "direct_write",
  "fua_write",    "flush",     "writeback_run", "dirty_limit_wait",
};

/* The quantiles "stats" prints for each path, in parts per million. */
static const struct
{
  const char *suffix;
  uint32_t ppm;
} quantiles[] = {
  { "p50", 500000 },
  { "p99", 990000 },
  { "p999", 999000 },
};

static size_t
collect (const struct metric_def *defs, size_t ndefs, const void *stats,
         struct metric *m)
{
  for (size_t i = 0; i < ndefs; i++)
    {
      m[i].name = defs[i].name;
      m[i].type = defs[i].type;
      m[i].help = defs[i].help;
      m[i].value = *(const uint64_t *)((const char *)stats + defs[i].offset);
    }
  return ndefs;
}

size_t
metrics_collect (const struct engine_stats *es, const struct service_stats *ss,
                 struct metric *m)
{
  size_t n
      = collect (engine_defs, sizeof engine_defs / sizeof *engine_defs, es, m);

  _Static_assert(sizeof engine_defs / sizeof *engine_defs
                         + sizeof service_defs / sizeof *service_defs
                     <= METRICS_MAX,
                 "METRICS_MAX is too small");
  if (ss)
    n += collect (service_defs, sizeof service_defs / sizeof *service_defs, ss,
                  m + n);
  return n;
}

void
metrics_print_text (FILE *fp, const struct metric *m, size_t n)
{
  for (size_t i = 0; i < n; i++)
    fprintf (fp, "%s %" PRIu64 "\n", m[i].name, m[i].value);
}

void
metrics_print_prometheus (FILE *fp, const struct metric *m, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      const char *suffix = m[i].type == METRIC_COUNTER ? "_total" : "";
      const char *type = m[i].type == METRIC_COUNTER ? "counter" : "gauge";
      fprintf (fp, "# HELP blkcache_%s%s %s\n", m[i].name, suffix, m[i].help);
      fprintf (fp, "# TYPE blkcache_%s%s %s\n", m[i].name, suffix, type);
      fprintf (fp, "blkcache_%s%s %" PRIu64 "\n", m[i].name, suffix,
               m[i].value);
    }
}

void
metrics_print_latency_text (
    FILE *fp, const struct histogram_snapshot snaps[ENGINE_LATENCY_PATHS])
{
  for (size_t p = 0; p < ENGINE_LATENCY_PATHS; p++)
    {
      fprintf (fp, "latency_%s_count %" PRIu64 "\n", latency_names[p],
               snaps[p].count);
      for (size_t q = 0; q < sizeof quantiles / sizeof *quantiles; q++)
        fprintf (fp, "latency_%s_%s_ns %" PRIu64 "\n", latency_names[p],
                 quantiles[q].suffix,
                 histogram_quantile_ns (&snaps[p], quantiles[q].ppm));
    }
}

/* Whether bucket I's bound is 1, 2 or 5 times a power of ten: the bounds
 * Prometheus is given (the cumulative count at each is exact). */
static bool
exposed_bound (size_t i)
{
  uint64_t ns = histogram_bound_ns (i);

  while (ns % 10 == 0)
    ns /= 10;
  return ns == 1 || ns == 2 || ns == 5;
}

void
metrics_print_latency_prometheus (
    FILE *fp, const struct histogram_snapshot snaps[ENGINE_LATENCY_PATHS])
{
  fprintf (fp, "# HELP blkcache_latency_seconds Time requests and "
               "writeback took, by path.\n");
  fprintf (fp, "# TYPE blkcache_latency_seconds histogram\n");
  for (size_t p = 0; p < ENGINE_LATENCY_PATHS; p++)
    {
      const struct histogram_snapshot *s = &snaps[p];
      uint64_t below = 0;
      for (size_t i = 0; i < HISTOGRAM_BOUNDS; i++)
        {
          below += s->buckets[i];
          if (exposed_bound (i))
            fprintf (fp,
                     "blkcache_latency_seconds_bucket{path=\"%s\",le=\"%g\"}"
                     " %" PRIu64 "\n",
                     latency_names[p], histogram_bound_ns (i) / 1e9, below);
        }
      fprintf (fp,
               "blkcache_latency_seconds_bucket{path=\"%s\",le=\"+Inf\"} "
               "%" PRIu64 "\n",
               latency_names[p], s->count);
      fprintf (fp, "blkcache_latency_seconds_sum{path=\"%s\"} %.9f\n",
               latency_names[p], s->sum_ns / 1e9);
      fprintf (fp, "blkcache_latency_seconds_count{path=\"%s\"} %" PRIu64
               "\n", latency_names[p], s->count);
    }
}
