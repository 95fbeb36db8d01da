/* blkcache: the metrics, every counter and setting an admin can read.
 *
 * One table names each value of struct engine_stats and struct
 * service_stats, says whether it is a counter (only ever grows) or a gauge,
 * and describes it in a sentence.  The control socket prints it as
 * "NAME VALUE" lines or in Prometheus' text exposition format (names
 * prefixed "blkcache_", counters suffixed "_total"); the plugin logs it at
 * exit.  Pure functions, no locks.
 */
#ifndef BLKCACHE_METRICS_H
#define BLKCACHE_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "service.h"

enum metric_type
{
  METRIC_COUNTER,
  METRIC_GAUGE,
};

struct metric
{
  const char *name; /* lower case, words joined by '_' */
  enum metric_type type;
  const char *help; /* one sentence */
  uint64_t value;
};

/* Room for every metric metrics_collect returns. */
#define METRICS_MAX 64

/* Fill M (METRICS_MAX entries) from ES and, unless it is NULL, SS.
 * Returns how many metrics were filled. */
size_t metrics_collect (const struct engine_stats *es,
                        const struct service_stats *ss, struct metric *m);

/* Print N metrics as "NAME VALUE" lines. */
void metrics_print_text (FILE *fp, const struct metric *m, size_t n);

/* Print N metrics in Prometheus' text exposition format (# HELP, # TYPE
 * and one sample each). */
void metrics_print_prometheus (FILE *fp, const struct metric *m, size_t n);

/* Print each latency path's count and its p50, p99 and p99.9 in
 * nanoseconds as "latency_PATH_count N", "latency_PATH_p50_ns N", ... lines
 * (the quantiles are bucket bounds: histogram_quantile_ns). */
void metrics_print_latency_text (
    FILE *fp, const struct histogram_snapshot snaps[ENGINE_LATENCY_PATHS]);

/* Print the latency paths as one Prometheus histogram,
 * blkcache_latency_seconds, labelled path="...": cumulative buckets at
 * the bounds that are 1, 2 or 5 times a power of ten from 1 us to 10 s,
 * then +Inf, _sum and _count. */
void metrics_print_latency_prometheus (
    FILE *fp, const struct histogram_snapshot snaps[ENGINE_LATENCY_PATHS]);

#endif /* BLKCACHE_METRICS_H */
