/* blkcache-torture: command line.
 *
 * Parses the options into struct options (torture.h), checks them, and
 * runs the torture run (run.c), the crash check (verify.c) or the
 * power-cut check (powercut.c).
 * Sizes accept the suffixes K, M, G, T (powers of 1024).
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "torture.h"
#include "workload.h"

#define MAX_REQUEST (256 * 1024)

enum
{
  OPT_HOT_SIZE = 256,
  OPT_SIZE,
  OPT_MAX_REQUEST,
  OPT_ALIGN,
  OPT_MIX,
  OPT_SEED,
  OPT_SECONDS,
  OPT_OPS,
  OPT_LOG,
  OPT_VERIFY_LOG,
  OPT_RECORDING,
  OPT_FAIL_ON_ERROR,
  OPT_MAX_REPORTS,
  OPT_NO_PROGRESS,
  OPT_HELP,
  OPT_VERSION,
};

static const struct option long_options[] = {
  { "connections", required_argument, NULL, 'c' },
  { "queue-depth", required_argument, NULL, 'q' },
  { "hot-size", required_argument, NULL, OPT_HOT_SIZE },
  { "size", required_argument, NULL, OPT_SIZE },
  { "max-request", required_argument, NULL, OPT_MAX_REQUEST },
  { "align", required_argument, NULL, OPT_ALIGN },
  { "mix", required_argument, NULL, OPT_MIX },
  { "seed", required_argument, NULL, OPT_SEED },
  { "seconds", required_argument, NULL, OPT_SECONDS },
  { "ops", required_argument, NULL, OPT_OPS },
  { "log", required_argument, NULL, OPT_LOG },
  { "verify-log", required_argument, NULL, OPT_VERIFY_LOG },
  { "recording", required_argument, NULL, OPT_RECORDING },
  { "fail-on-error", no_argument, NULL, OPT_FAIL_ON_ERROR },
  { "max-reports", required_argument, NULL, OPT_MAX_REPORTS },
  { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 },
};

static void
usage (FILE *fp)
{
  fprintf (fp, "Usage: blkcache-torture [OPTIONS] URI\n"
               "       blkcache-torture --verify-log FILE URI\n"
               "       blkcache-torture --verify-log FILE --recording FILE\n"
               "Drive an NBD server with colliding reads, writes, FUA writes,\n"
               "zeroes, trims, flushes, cache and block-status requests on\n"
               "several connections, and check that no read is stale.\n"
               "\n"
               "  -c, --connections N     connections (default 4)\n"
               "  -q, --queue-depth N     requests in flight per connection"
               " (default 16)\n"
               "      --hot-size SIZE     region most requests fall in"
               " (default 8M)\n"
               "      --size SIZE         tracked region (default: the export,"
               " at most\n"
               "                          8 x hot size)\n"
               "      --max-request SIZE  longest request (default 256K)\n"
               "      --align SIZE        offsets and lengths are multiples"
               " of SIZE\n"
               "                          (default: the server's minimum"
               " block size)\n"
               "      --mix SPEC          weights (default\n"
               "                          " WORKLOAD_DEFAULT_MIX ")\n"
               "      --seed N            seed of the operation stream"
               " (default: random)\n"
               "      --seconds S         run for S seconds (default 10)\n"
               "      --ops N             run N requests\n"
               "      --log FILE          log writes and durability for"
               " --verify-log\n"
               "      --verify-log FILE   check the disk against FILE after a"
               " crash\n"
               "      --recording FILE    check --verify-log's FILE against"
               " a power-cut\n"
               "                          recording instead of a disk\n"
               "      --fail-on-error     exit 1 on any server error\n"
               "      --max-reports N     failures described in full"
               " (default 10)\n"
               "      --no-progress       no progress line on stderr\n"
               "\n"
               "Exit status: 0 no stale read, 1 stale read or failed check,\n"
               "2 usage or setup error, 3 the server dropped a connection.\n");
}

static int
parse_uint (const char *s, uint64_t max, uint64_t *out)
{
  char *end;
  unsigned long long v;

  errno = 0;
  v = strtoull (s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

/* The power of two that size suffix C (K, M, G, T) stands for, or -1. */
static int
suffix_shift (char c)
{
  static const char units[] = "KMGT";
  const char *p = c != '\0' ? strchr (units, toupper ((unsigned char)c)) : NULL;

  return p != NULL ? 10 * (int)(p - units + 1) : -1;
}

static int
parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  int shift = 0;

  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno != 0 || end == s || s[0] == '-')
    return -EINVAL;
  if (*end != '\0')
    {
      shift = suffix_shift (*end);
      if (shift < 0 || end[1] != '\0')
        return -EINVAL;
    }
  if (v > (UINT64_MAX >> shift))
    return -EINVAL;
  *out = (uint64_t)v << shift;
  return 0;
}

static int
bad_value (const char *name, const char *value)
{
  fprintf (stderr, "blkcache-torture: bad value for --%s: '%s'\n", name, value);
  return -EINVAL;
}

/* Apply option C with argument ARG to O. */
static int
apply_option (struct options *o, int c, const char *arg, const char *name)
{
  uint64_t v = 0;
  double d;
  char *end;

  switch (c)
    {
    case 'c':
      if (parse_uint (arg, 1024, &v) < 0 || v == 0)
        return bad_value (name, arg);
      o->connections = v;
      return 0;
    case 'q':
      if (parse_uint (arg, 4096, &v) < 0 || v == 0)
        return bad_value (name, arg);
      o->queue_depth = v;
      return 0;
    case OPT_HOT_SIZE:
      if (parse_size (arg, &o->hot_size) < 0 || o->hot_size == 0)
        return bad_value (name, arg);
      return 0;
    case OPT_SIZE:
      if (parse_size (arg, &o->size) < 0 || o->size == 0)
        return bad_value (name, arg);
      return 0;
    case OPT_MAX_REQUEST:
      if (parse_size (arg, &v) < 0 || v == 0 || v > 64 * 1024 * 1024)
        return bad_value (name, arg);
      o->max_length = v;
      return 0;
    case OPT_ALIGN:
      if (parse_size (arg, &v) < 0 || v == 0 || (v & (v - 1)) != 0
          || v > 1024 * 1024)
        return bad_value (name, arg);
      o->align = v;
      return 0;
    case OPT_MIX:
      if (workload_parse_mix (arg, o->weight) < 0)
        return bad_value (name, arg);
      return 0;
    case OPT_SEED:
      return parse_uint (arg, UINT64_MAX, &o->seed) < 0 ? bad_value (name, arg)
                                                        : 0;
    case OPT_SECONDS:
      d = strtod (arg, &end);
      if (*end != '\0' || end == arg || !(d > 0))
        return bad_value (name, arg);
      o->seconds = d;
      return 0;
    case OPT_OPS:
      if (parse_uint (arg, UINT64_MAX, &o->ops) < 0 || o->ops == 0)
        return bad_value (name, arg);
      return 0;
    case OPT_LOG:
      o->log_path = arg;
      return 0;
    case OPT_VERIFY_LOG:
      o->verify_log = arg;
      return 0;
    case OPT_RECORDING:
      o->recording = arg;
      return 0;
    case OPT_FAIL_ON_ERROR:
      o->fail_on_error = true;
      return 0;
    case OPT_MAX_REPORTS:
      if (parse_uint (arg, 1000000, &v) < 0)
        return bad_value (name, arg);
      o->max_reports = v;
      return 0;
    case OPT_NO_PROGRESS:
      o->progress = false;
      return 0;
    }
  return -EINVAL;
}

static uint64_t
random_seed_value (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec) ^ getpid ();
}

static void
default_options (struct options *o)
{
  memset (o, 0, sizeof *o);
  o->connections = 4;
  o->queue_depth = 16;
  o->hot_size = 8 * 1024 * 1024;
  o->max_length = MAX_REQUEST;
  o->align = 1;
  workload_parse_mix (WORKLOAD_DEFAULT_MIX, o->weight);
  o->seed = random_seed_value ();
  o->max_reports = 10;
  o->progress = isatty (STDERR_FILENO);
}

/* The long name of the option whose value is C. */
static const char *
option_name (int c)
{
  for (const struct option *l = long_options; l->name != NULL; l++)
    if (l->val == c)
      return l->name;
  return "?";
}

/* Parse ARGV into O.  Returns 0, 1 when --help or --version was handled,
 * or -EINVAL after printing why. */
static int
parse_args (int argc, char *argv[], struct options *o)
{
  int c;

  default_options (o);
  while ((c = getopt_long (argc, argv, "c:q:", long_options, NULL)) != -1)
    {
      if (c == '?')
        return -EINVAL;
      if (c == OPT_HELP)
        return usage (stdout), 1;
      if (c == OPT_VERSION)
        return printf ("blkcache-torture %s\n", PACKAGE_VERSION), 1;
      if (apply_option (o, c, optarg, option_name (c)) < 0)
        return -EINVAL;
    }
  /* The power-cut check reads two files and talks to no server. */
  if (o->recording != NULL && (o->verify_log == NULL || optind != argc))
    {
      usage (stderr);
      return -EINVAL;
    }
  if (o->recording == NULL && optind != argc - 1)
    {
      usage (stderr);
      return -EINVAL;
    }
  o->uri = argv[optind];
  if (o->seconds == 0 && o->ops == 0)
    o->seconds = 10;
  return 0;
}

int
main (int argc, char *argv[])
{
  struct options o;
  int r = parse_args (argc, argv, &o);

  if (r < 0)
    return EXIT_SETUP;
  if (r > 0)
    return EXIT_OK;
  if (o.recording != NULL)
    return torture_check_recording (&o);
  if (o.verify_log != NULL)
    return torture_verify (&o);
  return torture_run (&o);
}
