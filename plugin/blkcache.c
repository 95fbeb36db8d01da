/* nbdkit-blkcache-plugin: the adapter from nbdkit's callbacks to the
 * engine in server/.  Each callback parses or checks, calls the engine,
 * and maps a negative errno to nbdkit_error + errno.  All connections
 * share the one engine.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>

#include "engine.h"
#include "store.h"

#define MAX_REQUEST (32 * 1024 * 1024)

static char *filename;
static enum store_direct direct_mode = STORE_DIRECT_AUTO;
static struct engine_config config = {
  .mode = ENGINE_CACHE_WRITEBACK,
  .cache_size = 256 * 1024 * 1024,
  .block_size = 64 * 1024,
};
static struct engine *engine;

/* Debug flags, set with -D blkcache.NAME=VALUE. */

/* Sleep this many microseconds inside the two windows of the seed race:
 * between a read miss's disk read and its insert, and between a direct
 * write taking its range and its disk write. */
NBDKIT_DLL_PUBLIC int blkcache_debug_race_window_us = 0;
/* Fill read misses without the range lock and its recheck: reintroduces
 * the seed bug, so that a test can prove the suite catches it. */
NBDKIT_DLL_PUBLIC int blkcache_debug_skip_recheck = 0;

static void
print_stats (void)
{
  struct engine_stats s;

  engine_get_stats (engine, &s);
  nbdkit_debug ("stats: hits %" PRIu64 " misses %" PRIu64
                " evictions %" PRIu64 " insertions %" PRIu64,
                s.cache.hits, s.cache.misses, s.cache.evictions,
                s.cache.insertions);
  nbdkit_debug ("stats: cached writes %" PRIu64 " direct writes %" PRIu64
                " fua writes %" PRIu64 " flushes %" PRIu64,
                s.cached_writes, s.direct_writes, s.fua_writes, s.flushes);
  nbdkit_debug ("stats: writeback blocks %" PRIu64 " writeback errors %"
                PRIu64 " dirty bytes %" PRIu64 " peak dirty bytes %" PRIu64,
                s.writeback_blocks, s.writeback_errors, s.cache.dirty_bytes,
                s.cache.peak_dirty_bytes);
  nbdkit_debug ("stats: ordered extents %" PRIu64 " ordered waits %" PRIu64
                " lock-recheck retries %" PRIu64 " syncs %" PRIu64,
                s.ordered.added, s.ordered.waits, s.recheck_retries,
                s.ordered.syncs);
}

/* Write back what is dirty before the process goes. */
static void
blkcache_unload (void)
{
  if (engine)
    {
      print_stats ();
      if (engine_free (engine) < 0)
        nbdkit_error ("%s: writing back the cache at exit failed; "
                      "the disk may miss recent writes", filename);
    }
  free (filename);
}

static int
parse_direct (const char *value)
{
  if (strcmp (value, "auto") == 0)
    direct_mode = STORE_DIRECT_AUTO;
  else if (strcmp (value, "on") == 0)
    direct_mode = STORE_DIRECT_ON;
  else if (strcmp (value, "off") == 0)
    direct_mode = STORE_DIRECT_OFF;
  else
    {
      nbdkit_error ("direct=%s: expected auto, on or off", value);
      return -1;
    }
  return 0;
}

static int
parse_cache (const char *value)
{
  if (strcmp (value, "writeback") == 0)
    config.mode = ENGINE_CACHE_WRITEBACK;
  else if (strcmp (value, "writethrough") == 0)
    config.mode = ENGINE_CACHE_WRITETHROUGH;
  else if (strcmp (value, "none") == 0)
    config.mode = ENGINE_CACHE_NONE;
  else
    {
      nbdkit_error ("cache=%s: expected writeback, writethrough or none",
                    value);
      return -1;
    }
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
  config.race_window_us = blkcache_debug_race_window_us;
  config.skip_recheck = blkcache_debug_skip_recheck;
  return 0;
}

#define blkcache_config_help \
  "[file=]FILE         The file or block device to serve.\n" \
  "direct=auto|on|off  Use O_DIRECT (default auto: where the filesystem\n" \
  "                    allows it, else buffered I/O).\n" \
  "cache=writeback|writethrough|none\n" \
  "                    Cache mode (default writeback).\n" \
  "cache-size=SIZE     Memory for the shared cache (default 256M).\n" \
  "block-size=SIZE     Cache block size, power of two 4K..1M (default 64K)."

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

/* Every connection shares the engine; the handle only marks the connection. */
static void *
blkcache_open (int readonly)
{
  return engine;
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
  int r = engine_write (engine, buf, count, offset, flags & NBDKIT_FLAG_FUA);
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
