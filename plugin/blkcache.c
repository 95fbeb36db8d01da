/* nbdkit-blkcache-plugin: the adapter from nbdkit's callbacks to the
 * engine in server/.  Each callback parses or checks, calls the engine,
 * and maps a negative errno to nbdkit_error + errno.  All connections
 * share the one engine.
 *
 * The service (background writeback and the control socket) is created in
 * .get_ready, so that a bad control path stops start-up, and its threads
 * are started in .after_fork, since nbdkit may fork into the background
 * after .get_ready.  .unload stops it before it frees the engine.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include "engine.h"
#include "hotset.h"
#include "metrics.h"
#include "prewarm.h"
#include "service.h"
#include "store.h"

#define MAX_REQUEST (32 * 1024 * 1024)

static char *filename;
static enum store_direct direct_mode = STORE_DIRECT_AUTO;
static struct engine_config config = {
  .mode = ENGINE_CACHE_WRITEBACK,
  .cache_size = 256 * 1024 * 1024,
  .block_size = 64 * 1024,
  .dirty_limit = 50,
  .mrc_samples = 16384,
  .mrc_window = 1024 * 1024,
  .seq_cutoff = 4 * 1024 * 1024,
  .fua = ENGINE_FUA_AUTO,
};
/* Range locks allocated at start-up (about 50 bytes each): each request
 * thread holds at most one range, and a flush at most 64 while it takes a
 * batch, so 1024 covers nbdkit's 16 threads on dozens of connections with
 * flushes among them before a lock ever allocates (and could fail with
 * ENOMEM). */
#define LOCK_NODES 1024

static char *control_path;
static bool sched_batch = true;
static unsigned dirty_expire = 5;
static unsigned dirty_background = 10;
static char *hotset_path;
static uint64_t prewarm_rate = 64 * 1024 * 1024;
static struct engine *engine;
static struct service *service;
static struct prewarm *prewarm;

/* Debug flags, set with -D blkcache.NAME=VALUE. */

/* Sleep this many microseconds inside the race windows that the range
 * locks and ordered extents close: between a read miss's disk read and
 * its insert, between a direct write taking its range and its disk
 * write, and between a writeback marking its blocks and unlocking. */
NBDKIT_DLL_PUBLIC int blkcache_debug_race_window_us = 0;
/* Fill read misses without the range lock and its recheck: reintroduces
 * the seed bug, so that a test can prove the suite catches it. */
NBDKIT_DLL_PUBLIC int blkcache_debug_skip_recheck = 0;
/* Reply to a flush once its writeback is done, without the fdatasync that
 * makes it durable: breaks the flush rule, so that a test can prove the
 * power-cut checker catches it. */
NBDKIT_DLL_PUBLIC int blkcache_debug_flush_skip_sync = 0;
/* How long the exit flush retries a failing disk, in seconds (tests
 * shorten it). */
NBDKIT_DLL_PUBLIC int blkcache_debug_exit_flush_s = 30;
/* Log every background writeback pass: why it started, how long it took,
 * what is dirty after it. */
NBDKIT_DLL_PUBLIC int blkcache_debug_writeback = 0;
/* Log control socket connections and every command line. */
NBDKIT_DLL_PUBLIC int blkcache_debug_control = 0;
/* Close control connections idle this many seconds instead of the
 * default 60, so that a test need not wait a minute. */
NBDKIT_DLL_PUBLIC int blkcache_debug_control_idle_s = 0;

/* Where the engine and the service send their messages (log.h). */
static void
log_to_nbdkit (enum log_level level, const char *msg)
{
  if (level == LOG_LEVEL_ERROR)
    nbdkit_error ("%s", msg);
  else
    nbdkit_debug ("%s", msg);
}

/* Log every counter (the control socket's stats) with -v. */
static void
print_stats (void)
{
  struct metric m[METRICS_MAX];
  struct engine_stats es;
  struct service_stats ss;
  size_t n;

  engine_get_stats (engine, &es);
  if (service)
    service_get_stats (service, &ss);
  n = metrics_collect (&es, service ? &ss : NULL, m);
  for (size_t i = 0; i < n; i++)
    nbdkit_debug ("stats: %s %" PRIu64, m[i].name, m[i].value);
}

/* Write the hot set file for the next start.  A failure costs only a
 * cold start next time, so it is logged, and the exit goes on. */
static void
save_hotset (void)
{
  uint64_t n;
  int r = hotset_save (engine, hotset_path, &n);

  if (r < 0)
    nbdkit_error ("hotset=%s: cannot save the hot set: %s", hotset_path,
                  strerror (-r));
  else
    nbdkit_debug ("hotset=%s: saved %" PRIu64 " blocks", hotset_path, n);
}

/* Stop the service, save the hot set, stop prewarm, then write back what
 * is dirty before the process goes.  If that fails (after the engine's
 * retries, each range logged), nbdkit must not exit 0 as if nothing was
 * lost: nbdkit gives a plugin no way to set its exit status, so the
 * process exits here with status 1, after this error. */
static void
blkcache_unload (void)
{
  bool lost = false;

  if (service)
    service_stop (service);
  if (engine && hotset_path)
    save_hotset ();
  if (engine)
    {
      print_stats ();
      service_free (service);
      /* Only now: the stats read prewarm's progress, and prewarm reads
       * through the engine. */
      prewarm_free (prewarm);
      if (engine_free (engine) < 0)
        {
          nbdkit_error ("%s: writing back the cache at exit failed; "
                        "the disk misses the writes logged above",
                        filename);
          lost = true;
        }
    }
  free (filename);
  free (control_path);
  free (hotset_path);
  if (lost)
    exit (EXIT_FAILURE);
}

/* The index of VALUE among the N NAMES of parameter KEY, or -1 with an
 * error that lists them.  PARSE_CHOICE counts the names of an array. */
static int
parse_choice (const char *key, const char *value, const char *const *names,
              size_t n)
{
  char expected[128] = "";
  size_t len = 0;

  for (size_t i = 0; i < n; i++)
    if (strcmp (value, names[i]) == 0)
      return i;
  for (size_t i = 0; i < n; i++)
    len += snprintf (expected + len, sizeof expected - len, "%s%s",
                     i == 0 ? "" : i + 1 < n ? ", " : " or ", names[i]);
  nbdkit_error ("%s=%s: expected %s", key, value, expected);
  return -1;
}
#define PARSE_CHOICE(key, value, names) \
  parse_choice ((key), (value), (names), sizeof (names) / sizeof *(names))

static int
parse_direct (const char *value)
{
  static const char *const names[] = { "auto", "on", "off" };
  static const enum store_direct modes[] = {
    STORE_DIRECT_AUTO, STORE_DIRECT_ON, STORE_DIRECT_OFF
  };
  int i = PARSE_CHOICE ("direct", value, names);

  if (i < 0)
    return -1;
  direct_mode = modes[i];
  return 0;
}

static int
parse_cache (const char *value)
{
  static const char *const names[] = { "writeback", "writethrough", "none" };
  static const enum engine_cache_mode modes[] = {
    ENGINE_CACHE_WRITEBACK, ENGINE_CACHE_WRITETHROUGH, ENGINE_CACHE_NONE
  };
  int i = PARSE_CHOICE ("cache", value, names);

  if (i < 0)
    return -1;
  config.mode = modes[i];
  return 0;
}

static int
parse_fua (const char *value)
{
  static const char *const names[] = { "auto", "dsync", "group" };
  static const enum engine_fua fuas[] = { ENGINE_FUA_AUTO, ENGINE_FUA_DSYNC,
                                          ENGINE_FUA_GROUP };
  int i = PARSE_CHOICE ("fua", value, names);

  if (i < 0)
    return -1;
  config.fua = fuas[i];
  return 0;
}

static int
parse_sched (const char *value)
{
  static const char *const names[] = { "batch", "normal" };
  int i = PARSE_CHOICE ("sched", value, names);

  if (i < 0)
    return -1;
  sched_batch = i == 0;
  return 0;
}

static int
parse_cache_size (const char *value)
{
  int64_t size = nbdkit_parse_size (value);
  if (size == -1)
    return -1;
  if (size <= 0)
    {
      nbdkit_error ("cache-size=%s: must be more than 0", value);
      return -1;
    }
  config.cache_size = size;
  return 0;
}

static int
parse_block_size (const char *value)
{
  int64_t size = nbdkit_parse_size (value);
  if (size == -1)
    return -1;
  if (size < 4096 || size > 1024 * 1024 || (size & (size - 1)) != 0)
    {
      nbdkit_error ("block-size=%s: must be a power of two from 4K to 1M",
                    value);
      return -1;
    }
  config.block_size = size;
  return 0;
}

static int
parse_writeback_rate (const char *value)
{
  int64_t rate = nbdkit_parse_size (value);

  if (rate == -1)
    {
      nbdkit_error ("writeback-rate=%s: expected bytes a second such as 20M "
                    "(0: unlimited)", value);
      return -1;
    }
  config.writeback_rate = rate;
  return 0;
}

/* An integer parameter from MIN to MAX. */
static int
parse_bounded (const char *key, const char *value, unsigned min, unsigned max,
               unsigned *out)
{
  if (nbdkit_parse_unsigned (key, value, out) == -1)
    return -1;
  if (*out < min || *out > max)
    {
      nbdkit_error ("%s=%s: must be from %u to %u", key, value, min, max);
      return -1;
    }
  return 0;
}

/* A size parameter where 0 means off. */
static int
parse_size_or_zero (const char *key, const char *value, uint64_t *out)
{
  int64_t size = nbdkit_parse_size (value);

  if (size == -1)
    return -1;
  *out = size;
  return 0;
}

static int
parse_mrc_window (const char *value)
{
  if (nbdkit_parse_uint64_t ("mrc-window", value, &config.mrc_window) == -1)
    return -1;
  if (config.mrc_window < 1024)
    {
      nbdkit_error ("mrc-window=%s: must be at least 1024", value);
      return -1;
    }
  return 0;
}

static int
blkcache_config (const char *key, const char *value)
{
  if (strcmp (key, "file") == 0)
    {
      free (filename);
      filename = nbdkit_realpath (value);
      return filename ? 0 : -1;
    }
  if (strcmp (key, "direct") == 0)
    return parse_direct (value);
  if (strcmp (key, "cache") == 0)
    return parse_cache (value);
  if (strcmp (key, "cache-size") == 0)
    return parse_cache_size (value);
  if (strcmp (key, "block-size") == 0)
    return parse_block_size (value);
  if (strcmp (key, "dirty-expire") == 0)
    return parse_bounded (key, value, 0, 86400, &dirty_expire);
  if (strcmp (key, "dirty-background") == 0)
    return parse_bounded (key, value, 0, 100, &dirty_background);
  if (strcmp (key, "dirty-limit") == 0)
    return parse_bounded (key, value, 1, 100, &config.dirty_limit);
  if (strcmp (key, "writeback-rate") == 0)
    return parse_writeback_rate (value);
  if (strcmp (key, "fua") == 0)
    return parse_fua (value);
  if (strcmp (key, "sched") == 0)
    return parse_sched (value);
  if (strcmp (key, "mrc-samples") == 0)
    return parse_bounded (key, value, 0, 1024 * 1024, &config.mrc_samples);
  if (strcmp (key, "mrc-window") == 0)
    return parse_mrc_window (value);
  if (strcmp (key, "seq-cutoff") == 0)
    return parse_size_or_zero (key, value, &config.seq_cutoff);
  if (strcmp (key, "prewarm-rate") == 0)
    return parse_size_or_zero (key, value, &prewarm_rate);
  if (strcmp (key, "hotset") == 0)
    {
      free (hotset_path);
      hotset_path = nbdkit_absolute_path (value);
      return hotset_path ? 0 : -1;
    }
  if (strcmp (key, "control") == 0)
    {
      free (control_path);
      control_path = nbdkit_absolute_path (value);
      return control_path ? 0 : -1;
    }
  nbdkit_error ("unknown parameter '%s' (see nbdkit blkcache --help)", key);
  return -1;
}

static int
blkcache_config_complete (void)
{
  if (filename == NULL)
    {
      nbdkit_error ("you must give the disk to serve: nbdkit blkcache FILE");
      return -1;
    }
  if (config.mode != ENGINE_CACHE_NONE
      && config.cache_size < config.block_size)
    {
      nbdkit_error ("cache-size=%" PRIu64 " holds no block of block-size=%"
                    PRIu32, config.cache_size, config.block_size);
      return -1;
    }
  if (hotset_path && config.mode == ENGINE_CACHE_NONE)
    {
      nbdkit_error ("hotset=%s needs a cache (not cache=none)", hotset_path);
      return -1;
    }
  if (dirty_background > config.dirty_limit)
    {
      nbdkit_error ("dirty-background=%u is above dirty-limit=%u",
                    dirty_background, config.dirty_limit);
      return -1;
    }
  config.race_window_us = blkcache_debug_race_window_us;
  config.skip_recheck = blkcache_debug_skip_recheck;
  config.flush_skip_sync = blkcache_debug_flush_skip_sync;
  config.lock_nodes = LOCK_NODES;
  config.exit_flush_s = blkcache_debug_exit_flush_s < 0
                            ? 0 : blkcache_debug_exit_flush_s;
  config.log = log_to_nbdkit;
  return 0;
}

#define blkcache_config_help \
  "[file=]FILE         The file or block device to serve.\n" \
  "direct=auto|on|off  Use O_DIRECT (default auto: where the filesystem\n" \
  "                    allows it, else buffered I/O).\n" \
  "cache=writeback|writethrough|none\n" \
  "                    Cache mode (default writeback).\n" \
  "cache-size=SIZE     Memory for the shared cache (default 256M).\n" \
  "block-size=SIZE     Cache block size, power of two 4K..1M (default 64K).\n" \
  "dirty-expire=SECS   Write back data dirty this long (default 5; 0 never).\n" \
  "dirty-background=PCT Write back when more than PCT% of the cache is\n" \
  "                    dirty (default 10).\n" \
  "dirty-limit=PCT     Hold writers while more than PCT% of the cache is\n" \
  "                    dirty (default 50).\n" \
  "writeback-rate=SIZE Cap background writeback at SIZE a second\n" \
  "                    (default 0: unlimited).\n" \
  "fua=auto|dsync|group How FUA writes are made durable (default auto:\n" \
  "                    RWF_DSYNC where the write allocates nothing, else\n" \
  "                    a shared fdatasync; dsync, group: always that).\n" \
  "sched=batch|normal  Scheduling policy of the request threads (default\n" \
  "                    batch: SCHED_BATCH, no preemption on wakeup).\n" \
  "control=PATH        Create a control socket at PATH (blkcachectl).\n" \
  "mrc-samples=N       Blocks the miss-ratio curve's miniature caches hold\n" \
  "                    at most (default 16384, 40 bytes each; 0: no curve).\n" \
  "mrc-window=N        Block reads the miss-ratio curve covers (default\n" \
  "                    1048576).\n" \
  "hotset=PATH         Save the cached blocks' numbers to PATH at exit and\n" \
  "                    prefetch them at start (warm restart).\n" \
  "prewarm-rate=SIZE   Prefetch the hot set at most SIZE a second\n" \
  "                    (default 64M; 0 no limit).\n" \
  "seq-cutoff=SIZE     Reads of a sequential stream past SIZE bypass the\n" \
  "                    cache (default 4M; 0 off)."

/* Whether nbdkit runs with -r.  nbdkit 1.32 gives plugins no call for
 * this before the first connection (nbdkit_read_only came later), yet the
 * disk must be opened at start-up so that an unwritable disk is refused
 * with a non-zero exit.  So read nbdkit's own options from its command
 * line, stopping at the plugin name, as nbdkit's getopt does. */
static bool
nbdkit_is_read_only (void)
{
  /* nbdkit's short options that take an argument. */
  static const char short_with_arg[] = "DeGiPptUu";
  /* Long options that take a separate argument when no '=' is given. */
  static const char *const long_with_arg[] = {
    "--debug", "--export", "--export-name", "--exportname", "--filter",
    "--group", "--ipaddr", "--log", "--mask-handshake", "--pidfile",
    "--port", "--run", "--selinux-label", "--swap", "--threads", "--tls",
    "--tls-certificates", "--tls-psk", "--unix", "--user", "--vsock",
    NULL,
  };
  char args[8192];
  FILE *fp = fopen ("/proc/self/cmdline", "r");
  size_t len;
  bool ro = false;

  if (fp == NULL)
    return false;
  len = fread (args, 1, sizeof args - 1, fp);
  fclose (fp);
  args[len] = '\0';

  const char *arg = args + strlen (args) + 1; /* skip argv[0] */
  while (arg < args + len)
    {
      size_t n = strlen (arg);
      bool skip_next = false;
      if (arg[0] != '-' || strcmp (arg, "--") == 0)
        break; /* the plugin name: nbdkit's options end here */
      if (strcmp (arg, "--readonly") == 0 || strcmp (arg, "--read-only") == 0)
        ro = true;
      else if (arg[1] == '-')
        {
          for (size_t i = 0; long_with_arg[i]; i++)
            if (strcmp (arg, long_with_arg[i]) == 0)
              skip_next = true;
        }
      else
        for (const char *c = arg + 1; *c; c++)
          {
            if (*c == 'r')
              ro = true;
            if (strchr (short_with_arg, *c))
              {
                skip_next = c[1] == '\0';
                break;
              }
          }
      arg += n + 1;
      if (skip_next && arg < args + len)
        arg += strlen (arg) + 1;
    }
  return ro;
}


/* Create the service if there is something for it to do: background
 * writeback, or a control socket. */
static int
start_service (void)
{
  struct service_config cfg = {
    .engine = engine,
    .control_path = control_path,
    /* Writethrough too: set cache-mode may switch to writeback. */
    .writeback = config.mode != ENGINE_CACHE_NONE,
    .dirty_expire = dirty_expire,
    .dirty_background = dirty_background,
    .debug_writeback = blkcache_debug_writeback,
    .debug_control = blkcache_debug_control,
    .control_idle = blkcache_debug_control_idle_s > 0
                        ? blkcache_debug_control_idle_s : 0,
    .hotset_path = hotset_path,
    .prewarm = prewarm,
    .log = log_to_nbdkit,
  };
  char err[512];

  if (!cfg.writeback && control_path == NULL)
    return 0;
  service = service_new (&cfg, err, sizeof err);
  if (service == NULL)
    {
      nbdkit_error ("%s", err);
      return -1;
    }
  return 0;
}

/* Open the store once nbdkit knows whether it is read-only. */
static int
blkcache_get_ready (void)
{
  char err[512];
  struct store *st;
  int r;

  r = store_open (filename, nbdkit_is_read_only (), direct_mode, &st, err,
                  sizeof err);
  if (r < 0)
    {
      nbdkit_error ("%s", err);
      return -1;
    }
  nbdkit_debug ("%s: %" PRIu64 " bytes, %s, direct I/O %s, alignment %u",
                filename, st->size, st->is_block ? "block device" : "file",
                st->direct ? "on" : "off (buffered with fadvise)", st->align);
  nbdkit_debug ("cache=%s cache-size=%" PRIu64 " block-size=%" PRIu32,
                config.mode == ENGINE_CACHE_WRITEBACK ? "writeback"
                : config.mode == ENGINE_CACHE_WRITETHROUGH ? "writethrough"
                : "none", config.cache_size, config.block_size);
  if (direct_mode == STORE_DIRECT_AUTO && !st->direct)
    nbdkit_debug ("%s: the filesystem refuses O_DIRECT; using buffered I/O",
                  filename);
  if (config.mode == ENGINE_CACHE_WRITEBACK)
    nbdkit_debug ("writeback: dirty-expire=%us dirty-background=%u%% "
                  "(%" PRIu64 " bytes) dirty-limit=%u%% (%" PRIu64 " bytes)",
                  dirty_expire, dirty_background,
                  config.cache_size * dirty_background / 100,
                  config.dirty_limit,
                  config.cache_size * config.dirty_limit / 100);
  nbdkit_debug ("control socket: %s", control_path ? control_path : "none");
  engine = engine_new (st, &config);
  if (engine == NULL)
    {
      if (errno == EINVAL)
        nbdkit_error ("block-size=%" PRIu32 " is below the disk's direct-I/O "
                      "alignment %" PRIu32 "; use a larger block-size",
                      config.block_size, st->align);
      else
        nbdkit_error ("cannot create the engine: %m");
      store_close (st);
      return -1;
    }
  if (hotset_path)
    {
      struct prewarm_config pcfg = { .engine = engine, .path = hotset_path,
                                     .rate = prewarm_rate,
                                     .log = log_to_nbdkit };
      prewarm = prewarm_new (&pcfg);
      if (prewarm == NULL)
        {
          nbdkit_error ("hotset=%s: %m", hotset_path);
          return -1;
        }
    }
  return start_service ();
}

/* Threads do not survive nbdkit's fork into the background: start the
 * service's here. */
static int
blkcache_after_fork (void)
{
  int r;

  if (prewarm && (r = prewarm_start (prewarm)) < 0)
    {
      nbdkit_error ("cannot start the prewarm thread: %s", strerror (-r));
      return -1;
    }
  if (service == NULL)
    return 0;
  r = service_start (service);
  if (r < 0)
    {
      nbdkit_error ("cannot start the service thread: %s", strerror (-r));
      return -1;
    }
  return 0;
}

/* With a disk named (nbdkit blkcache FILE --dump-plugin), also show what
 * the store finds on it. */
static void
blkcache_dump_plugin (void)
{
  char err[512];
  struct store *st;

  printf ("blkcache_version=%s\n", PACKAGE_VERSION);
  if (filename == NULL)
    return;
  if (store_open (filename, true, direct_mode, &st, err, sizeof err) < 0)
    {
      printf ("blkcache_error=%s\n", err);
      return;
    }
  printf ("blkcache_size=%" PRIu64 "\n", st->size);
  printf ("blkcache_alignment=%u\n", st->align);
  printf ("blkcache_direct_io=%s\n", st->direct ? "yes" : "no");
  store_close (st);
}

/* Every connection shares the engine; the handle only marks the connection.
 *
 * nbdkit calls .open on the connection's own thread before it starts the
 * connection's request threads, and they inherit its scheduling policy.
 * Under SCHED_BATCH a request thread woken by a new request does not
 * preempt the thread running on that CPU (often the client's, or another
 * request thread in the middle of its request): it runs when that one
 * sleeps or its slice ends, and finds several requests waiting instead
 * of one, so the threads switch fewer times per request. */
static void *
blkcache_open (int readonly)
{
  if (sched_batch)
    {
      struct sched_param param = { .sched_priority = 0 };
      if (sched_setscheduler (0, SCHED_BATCH, &param) == -1)
        nbdkit_debug ("sched=batch: cannot set SCHED_BATCH (%m); this "
                      "connection keeps the default policy");
    }
  return engine;
}

/* Set the calling thread's policy to POLICY (SCHED_BATCH or SCHED_OTHER).
 * A thread that cannot keep the policy it asked for only runs as before,
 * so a refusal is logged under -v and otherwise ignored. */
static void
set_policy (int policy)
{
  struct sched_param param = { .sched_priority = 0 };

  if (sched_setscheduler (0, policy, &param) == -1)
    nbdkit_debug ("sched: cannot set policy %d: %m", policy);
}

static int
fail (int r, const char *what, uint64_t offset, uint32_t count)
{
  nbdkit_error ("%s at offset %" PRIu64 " length %" PRIu32 ": %s", what,
                offset, count, strerror (-r));
  nbdkit_set_error (-r);
  errno = -r;
  return -1;
}

static int64_t
blkcache_get_size (void *handle)
{
  return engine_store (engine)->size;
}

static int
blkcache_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum)
{
  uint32_t align = engine_store (engine)->align;

  *minimum = 1;
  *preferred = align > 4096 ? align : 4096;
  *maximum = MAX_REQUEST;
  return 0;
}

static int
blkcache_can_write (void *handle)
{
  return !engine_store (engine)->readonly;
}

static int
blkcache_can_trim (void *handle)
{
  const struct store *st = engine_store (engine);
  return !st->readonly && (st->can_punch || st->is_block);
}

static int
blkcache_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
blkcache_can_zero (void *handle)
{
  return 1;
}

static int
blkcache_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

static int
blkcache_one (void *handle)
{
  return 1;
}

static int
blkcache_is_rotational (void *handle)
{
  return engine_store (engine)->is_rotational;
}

static int
blkcache_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  int r = engine_read (engine, buf, count, offset);
  return r < 0 ? fail (r, "read", offset, count) : 0;
}

static int
blkcache_pwrite (void *handle, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags)
{
  bool fua = flags & NBDKIT_FLAG_FUA;
  int r;

  /* A FUA write sleeps until the disk has its bytes: under SCHED_BATCH
   * the wake-up at the end would wait for whatever runs on the CPU to
   * sleep or use up its slice, which adds that wait to every FUA write
   * (server/README, FUA). */
  if (fua && sched_batch)
    set_policy (SCHED_OTHER);
  r = engine_write (engine, buf, count, offset, fua);
  if (fua && sched_batch)
    set_policy (SCHED_BATCH);
  return r < 0 ? fail (r, "write", offset, count) : 0;
}

static int
blkcache_flush (void *handle, uint32_t flags)
{
  int r = engine_flush (engine);
  return r < 0 ? fail (r, "flush", 0, 0) : 0;
}

static int
blkcache_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  int r = engine_trim (engine, count, offset, flags & NBDKIT_FLAG_FUA);
  return r < 0 ? fail (r, "trim", offset, count) : 0;
}

static int
blkcache_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  bool fast = flags & NBDKIT_FLAG_FAST_ZERO;
  int r = engine_zero (engine, count, offset, flags & NBDKIT_FLAG_MAY_TRIM,
                       fast, flags & NBDKIT_FLAG_FUA);
  if (r == -ENOTSUP && fast)
    {
      /* The client asked to fail rather than be slow: not an error here. */
      nbdkit_set_error (ENOTSUP);
      return -1;
    }
  return r < 0 ? fail (r, "zero", offset, count) : 0;
}

static int
blkcache_cache (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  int r = engine_cache (engine, count, offset);
  return r < 0 ? fail (r, "cache", offset, count) : 0;
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  uint32_t type = hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
  return nbdkit_add_extent (opaque, offset, length, type) == -1 ? -EIO : 0;
}

static int
blkcache_extents (void *handle, uint32_t count, uint64_t offset,
                  uint32_t flags, struct nbdkit_extents *extents)
{
  int r = engine_extents (engine, count, offset, add_extent, extents);
  return r < 0 ? fail (r, "block status", offset, count) : 0;
}

static struct nbdkit_plugin plugin = {
  .name = "blkcache",
  .longname = "nbdkit block device plugin with a shared block cache",
  .version = PACKAGE_VERSION,
  .description = "Serve a file or block device through a shared block "
                 "cache with direct I/O.",
  .unload = blkcache_unload,
  .config = blkcache_config,
  .config_complete = blkcache_config_complete,
  .config_help = blkcache_config_help,
  .magic_config_key = "file",
  .get_ready = blkcache_get_ready,
  .after_fork = blkcache_after_fork,
  .dump_plugin = blkcache_dump_plugin,
  .open = blkcache_open,
  .get_size = blkcache_get_size,
  .block_size = blkcache_block_size,
  .can_write = blkcache_can_write,
  .can_flush = blkcache_one,
  .can_trim = blkcache_can_trim,
  .can_zero = blkcache_can_zero,
  .can_fast_zero = blkcache_one,
  .can_fua = blkcache_can_fua,
  .can_multi_conn = blkcache_one,
  .can_extents = blkcache_one,
  .can_cache = blkcache_can_cache,
  .is_rotational = blkcache_is_rotational,
  .pread = blkcache_pread,
  .pwrite = blkcache_pwrite,
  .flush = blkcache_flush,
  .trim = blkcache_trim,
  .zero = blkcache_zero,
  .cache = blkcache_cache,
  .extents = blkcache_extents,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
