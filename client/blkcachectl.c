/* blkcachectl: talk to the control socket of nbdkit-blkcache-plugin.
 *
 * Layout: a connection (struct conn) with a line reader; request() sends
 * one command line and collects the reply's body up to its status line
 * ("ok" or "error: ..."; see nbdkit-blkcache-plugin(1), CONTROL SOCKET).
 * Plain commands print the body.  "top" asks for "stats" once a period
 * (connecting again if the server closed the connection as idle), keeps
 * the previous sample, and draws rates from the differences; on a
 * terminal it redraws the screen and reads keys, otherwise it prints one
 * frame after another.  "flush" on a terminal waits for its reply with
 * poll() and meanwhile asks for "stats" on a second connection twice a
 * second, to draw a progress line from flush_blocks_left.
 * Single-threaded; SIGINT only sets a flag.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define MAX_SAMPLES 256
#define NAME_MAX_LEN 64

struct conn
{
  int fd;
  char buf[65536];
  size_t len; /* bytes in BUF not yet returned as lines */
};

/* A reply: its body lines, and whether the status line said "ok". */
struct reply
{
  char *body;
  size_t body_len;
  bool ok;
  char *error; /* the status line when it was not "ok" */
};

static const char *program = "blkcachectl";

static void __attribute__ ((noreturn)) usage (int status)
{
  FILE *fp = status ? stderr : stdout;

  fprintf (fp,
           "Usage: %s -s PATH COMMAND\n"
           "       %s -s PATH top [-d SECS] [-n N]\n"
           "Talk to the control socket of nbdkit-blkcache-plugin.\n"
           "\n"
           "Commands:\n"
           "  stats [prometheus]     every counter and setting\n"
           "  flush                  write every dirty block back\n"
           "  drop-clean             drop the clean blocks from the cache\n"
           "  mrc                    estimated hit ratio at 1/8x to 8x the\n"
           "                         cache size, SIZE RATIO lines\n"
           "  save-hotset            write the hot set file for a warm restart\n"
           "  set KEY VALUE          cache-size, dirty-expire,\n"
           "                         dirty-background, dirty-limit,\n"
           "                         writeback-rate or cache-mode\n"
           "  help                   the server's list of commands\n"
           "  top                    a live view, refreshed every second\n"
           "\n"
           "Options:\n"
           "  -s, --socket PATH      the control socket (required)\n"
           "  -h, --help             this help\n"
           "  -V, --version          the version\n"
           "Options of top:\n"
           "  -d, --delay SECS       seconds between frames (default 1)\n"
           "  -n, --iterations N     stop after N frames\n"
           "\n"
           "In top, q quits.  Exit status: 0 ok, 1 the server answered with\n"
           "an error or went away, 2 usage or connection error.\n",
           program, program);
  exit (status);
}

/* --- the connection -------------------------------------------------- */

static int
conn_open (struct conn *c, const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };

  if (strlen (path) >= sizeof sa.sun_path)
    {
      fprintf (stderr, "%s: %s: path too long\n", program, path);
      return -1;
    }
  strcpy (sa.sun_path, path);
  c->len = 0;
  c->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd == -1 || connect (c->fd, (struct sockaddr *)&sa, sizeof sa) == -1)
    {
      fprintf (stderr, "%s: %s: %s\n", program, path, strerror (errno));
      if (c->fd >= 0)
        close (c->fd);
      return -1;
    }
  return 0;
}

static int
send_all (int fd, const char *data, size_t len)
{
  while (len > 0)
    {
      ssize_t n = send (fd, data, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      data += n;
      len -= n;
    }
  return 0;
}

/* Read one line (without its '\n') into LINE (SIZE bytes).  Returns 0, or
 * -1 on error or when the server closed the connection. */
static int
read_line (struct conn *c, char *line, size_t size)
{
  for (;;)
    {
      char *nl = memchr (c->buf, '\n', c->len);
      if (nl)
        {
          size_t n = nl - c->buf;
          size_t copy = n < size - 1 ? n : size - 1;
          memcpy (line, c->buf, copy);
          line[copy] = '\0';
          c->len -= n + 1;
          memmove (c->buf, nl + 1, c->len);
          return 0;
        }
      if (c->len == sizeof c->buf)
        c->len = 0; /* a line longer than any reply line: drop it */
      ssize_t r = recv (c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
      if (r < 0 && errno == EINTR)
        return -1; /* interrupted: let the caller look at its flags */
      if (r <= 0)
        return -1;
      c->len += r;
    }
}

static void
reply_free (struct reply *r)
{
  free (r->body);
  free (r->error);
}

static int
send_command (struct conn *c, const char *command)
{
  if (send_all (c->fd, command, strlen (command)) < 0
      || send_all (c->fd, "\n", 1) < 0)
    return -1;
  return 0;
}

/* Read a reply.  Returns 0 with *R filled, or -1 if the connection
 * failed. */
static int
read_reply (struct conn *c, struct reply *r)
{
  char line[4096];
  FILE *fp;

  memset (r, 0, sizeof *r);
  fp = open_memstream (&r->body, &r->body_len);
  if (fp == NULL)
    return -1;
  for (;;)
    {
      if (read_line (c, line, sizeof line) < 0)
        {
          fclose (fp);
          reply_free (r);
          return -1;
        }
      if (strcmp (line, "ok") == 0)
        {
          r->ok = true;
          break;
        }
      if (strncmp (line, "error:", 6) == 0)
        {
          r->error = strdup (line);
          break;
        }
      fprintf (fp, "%s\n", line);
    }
  fclose (fp);
  return 0;
}

/* Send COMMAND and read the reply, as read_reply. */
static int
request (struct conn *c, const char *command, struct reply *r)
{
  if (send_command (c, command) < 0)
    return -1;
  return read_reply (c, r);
}

/* --- plain commands -------------------------------------------------- */

/* Print the body of R, and its error to stderr; free it.  Returns the exit
 * status: 0 when R said "ok", else 1. */
static int
print_reply (struct reply *r)
{
  int status = r->ok ? 0 : 1;

  fwrite (r->body, 1, r->body_len, stdout);
  if (!r->ok)
    fprintf (stderr, "%s: %s\n", program, r->error ? r->error : "error");
  reply_free (r);
  return status;
}

static int
run_command (struct conn *c, int argc, char **argv)
{
  char command[1024] = "";
  struct reply r;

  for (int i = 0; i < argc; i++)
    {
      if (strlen (command) + strlen (argv[i]) + 2 > sizeof command)
        {
          fprintf (stderr, "%s: command too long\n", program);
          return EXIT_USAGE;
        }
      if (i)
        strcat (command, " ");
      strcat (command, argv[i]);
    }
  if (request (c, command, &r) < 0)
    {
      fprintf (stderr, "%s: the server closed the connection\n", program);
      return 1;
    }
  return print_reply (&r);
}

/* --- top ------------------------------------------------------------- */

struct sample
{
  size_t n;
  char names[MAX_SAMPLES][NAME_MAX_LEN];
  uint64_t values[MAX_SAMPLES];
  double at; /* seconds, CLOCK_MONOTONIC */
};

struct top
{
  struct conn *c;
  const char *path;
  double delay;
  long iterations; /* 0: until q or SIGINT */
  bool tty;        /* stdout is a terminal: redraw in place */
  bool keys;       /* stdin is a terminal in raw mode: read q */
  struct termios saved;
  struct sample prev, cur;
  bool have_prev;
};

static volatile sig_atomic_t interrupted;

static void
on_sigint (int sig)
{
  interrupted = 1;
}

static double
now_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parse a stats body into S. */
static void
parse_sample (const char *body, struct sample *s)
{
  const char *p = body;

  s->n = 0;
  while (*p && s->n < MAX_SAMPLES)
    {
      const char *eol = strchr (p, '\n');
      size_t len = eol ? (size_t)(eol - p) : strlen (p);
      const char *sp = memchr (p, ' ', len);
      if (sp && (size_t)(sp - p) < NAME_MAX_LEN)
        {
          memcpy (s->names[s->n], p, sp - p);
          s->names[s->n][sp - p] = '\0';
          s->values[s->n] = strtoull (sp + 1, NULL, 10);
          s->n++;
        }
      p = eol ? eol + 1 : p + len;
    }
}

static uint64_t
get (const struct sample *s, const char *name)
{
  for (size_t i = 0; i < s->n; i++)
    if (strcmp (s->names[i], name) == 0)
      return s->values[i];
  return 0;
}

/* The rate of counter NAME per second since the previous sample; 0 on the
 * first frame. */
static double
rate (const struct top *t, const char *name)
{
  double dt = t->cur.at - t->prev.at;
  uint64_t a, b;

  if (!t->have_prev || dt <= 0)
    return 0;
  a = get (&t->prev, name);
  b = get (&t->cur, name);
  return b >= a ? (b - a) / dt : 0;
}

static const char *
human (uint64_t bytes, char *buf, size_t size)
{
  static const char units[][4] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
  double v = bytes;
  size_t u = 0;

  while (v >= 1024 && u + 1 < sizeof units / sizeof *units)
    {
      v /= 1024;
      u++;
    }
  snprintf (buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

/* Hit ratio over the last period, or since start on the first frame. */
static double
hit_ratio (const struct top *t)
{
  double hits = get (&t->cur, "cache_hits");
  double misses = get (&t->cur, "cache_misses");

  if (t->have_prev)
    {
      hits -= get (&t->prev, "cache_hits");
      misses -= get (&t->prev, "cache_misses");
    }
  return hits + misses > 0 ? 100.0 * hits / (hits + misses) : 0;
}

static void
draw_summary (const struct top *t)
{
  const struct sample *s = &t->cur;
  uint64_t up = get (s, "uptime_seconds");
  uint64_t size = get (s, "cache_size_bytes");
  uint64_t dirty = get (s, "dirty_bytes");
  char b1[32], b2[32], b3[32];

  printf ("blkcache top - %s - up %" PRIu64 ":%02" PRIu64 ":%02" PRIu64
          " - every %.1f s%s\n",
          t->path, up / 3600, up / 60 % 60, up % 60, t->delay,
          t->keys ? " - q quits" : "");
  printf ("cache:  %s in %s blocks, %" PRIu64 " of %" PRIu64
          " used, hit ratio %.1f%%\n",
          human (size, b1, sizeof b1),
          human (get (s, "cache_block_size_bytes"), b2, sizeof b2),
          get (s, "cache_blocks"), get (s, "cache_capacity_blocks"),
          hit_ratio (t));
  printf ("dirty:  %s (%.1f%%), peak %s; background %" PRIu64
          "%%, limit %" PRIu64 "%%, expire %" PRIu64 " s\n",
          human (dirty, b1, sizeof b1), size ? 100.0 * dirty / size : 0.0,
          human (get (s, "peak_dirty_bytes"), b3, sizeof b3),
          get (s, "dirty_background_percent"), get (s, "dirty_limit_percent"),
          get (s, "dirty_expire_seconds"));
  printf ("writeback: %.0f blocks/s, %" PRIu64 " errors; dirty-limit "
          "waits %.0f/s\n",
          rate (t, "writeback_blocks"), get (s, "writeback_errors"),
          rate (t, "dirty_limit_waits"));
  printf ("ordered extents: %" PRIu64 " in flight (peak %" PRIu64
          "); lock waits %.0f/s, recheck retries %.0f/s, syncs %.0f/s\n",
          get (s, "ordered_in_flight"), get (s, "ordered_peak_in_flight"),
          rate (t, "lock_waits"), rate (t, "recheck_retries"),
          rate (t, "syncs"));
}

static void
draw_iops (const struct top *t)
{
  static const struct
  {
    const char *title, *name;
  } kinds[] = {
    { "read", "reads" },
    { "c-write", "cached_writes" },
    { "d-write", "direct_writes" },
    { "fua", "fua_writes" },
    { "zero", "zeroes" },
    { "trim", "trims" },
    { "flush", "flushes" },
    { "cache", "prefetches" },
    { "status", "block_status" },
  };
  size_t n = sizeof kinds / sizeof *kinds;

  printf ("\n%-6s", "IOPS");
  for (size_t i = 0; i < n; i++)
    printf (" %7s", kinds[i].title);
  printf ("\n%-6s", "");
  for (size_t i = 0; i < n; i++)
    printf (" %7.0f", rate (t, kinds[i].name));
  printf ("\n");
}

/* A duration in nanoseconds, in the unit that suits it; "-" for 0 (a
 * path with no request yet). */
static const char *
human_ns (uint64_t ns, char *buf, size_t size)
{
  if (ns == 0)
    snprintf (buf, size, "-");
  else if (ns < 1000)
    snprintf (buf, size, "%" PRIu64 "ns", ns);
  else if (ns < 1000000)
    snprintf (buf, size, "%.3gus", ns / 1e3);
  else if (ns < 1000000000)
    snprintf (buf, size, "%.3gms", ns / 1e6);
  else
    snprintf (buf, size, "%.3gs", ns / 1e9);
  return buf;
}

/* The p99 latency of each path since the server started (a bound of its
 * histogram's bucket: nbdkit-blkcache-plugin(1), LATENCY). */
static void
draw_latency (const struct top *t)
{
  static const struct
  {
    const char *title, *name;
  } paths[] = {
    { "rd-hit", "latency_read_hit_p99_ns" },
    { "rd-miss", "latency_read_miss_p99_ns" },
    { "c-write", "latency_cached_write_p99_ns" },
    { "d-write", "latency_direct_write_p99_ns" },
    { "fua", "latency_fua_write_p99_ns" },
    { "flush", "latency_flush_p99_ns" },
    { "wb-run", "latency_writeback_run_p99_ns" },
    { "dl-wait", "latency_dirty_limit_wait_p99_ns" },
  };
  size_t n = sizeof paths / sizeof *paths;
  char buf[16];

  printf ("\n%-6s", "p99");
  for (size_t i = 0; i < n; i++)
    printf (" %7s", paths[i].title);
  printf ("\n%-6s", "");
  for (size_t i = 0; i < n; i++)
    printf (" %7s", human_ns (get (&t->cur, paths[i].name), buf, sizeof buf));
  printf ("\n");
}

static void
draw (const struct top *t)
{
  if (t->tty)
    printf ("\033[H\033[2J");
  draw_summary (t);
  draw_iops (t);
  draw_latency (t);
  if (!t->tty)
    printf ("\n");
  fflush (stdout);
}

static void
keys_on (struct top *t)
{
  struct termios raw;

  t->keys = isatty (STDIN_FILENO) && tcgetattr (STDIN_FILENO, &t->saved) == 0;
  if (!t->keys)
    return;
  raw = t->saved;
  raw.c_lflag &= ~(ICANON | ECHO);
  raw.c_cc[VMIN] = 0;
  raw.c_cc[VTIME] = 0;
  tcsetattr (STDIN_FILENO, TCSANOW, &raw);
}

static void
keys_off (struct top *t)
{
  if (t->keys)
    tcsetattr (STDIN_FILENO, TCSANOW, &t->saved);
}

/* Wait one period.  Returns true when the user asked to quit. */
static bool
wait_period (struct top *t)
{
  double until = now_seconds () + t->delay;

  for (;;)
    {
      double left = until - now_seconds ();
      struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
      char key;

      if (interrupted)
        return true;
      if (left <= 0)
        return false;
      if (poll (&pfd, t->keys ? 1 : 0, (int)(left * 1000) + 1) > 0
          && read (STDIN_FILENO, &key, 1) == 1 && (key == 'q' || key == 'Q'))
        return true;
    }
}

/* Ask for "stats".  The server closes a connection idle for a minute (or
 * less, under -D blkcache.control_idle_s), which a long -d outlasts: after
 * a closed connection, connect again once.  Returns as request does. */
static int
top_request (struct top *t, struct reply *r)
{
  if (request (t->c, "stats", r) == 0)
    return 0;
  if (interrupted)
    return -1;
  close (t->c->fd);
  if (conn_open (t->c, t->path) < 0)
    {
      t->c->fd = -1;
      return -1;
    }
  return request (t->c, "stats", r);
}

static int
run_top (struct top *t)
{
  struct sigaction sa = { .sa_handler = on_sigint };
  struct reply r;
  int status = 0;

  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL); /* no SA_RESTART: wake poll and recv */
  sigaction (SIGTERM, &sa, NULL);
  t->tty = isatty (STDOUT_FILENO);
  keys_on (t);
  for (long i = 0; !interrupted && (t->iterations == 0 || i < t->iterations);
       i++)
    {
      if (i > 0 && wait_period (t))
        break;
      if (top_request (t, &r) < 0)
        {
          if (interrupted)
            break;
          fprintf (stderr, "%s: the server closed the connection\n", program);
          status = 1;
          break;
        }
      if (!r.ok)
        {
          fprintf (stderr, "%s: %s\n", program, r.error ? r.error : "error");
          reply_free (&r);
          status = 1;
          break;
        }
      t->cur.at = now_seconds ();
      parse_sample (r.body, &t->cur);
      reply_free (&r);
      draw (t);
      t->prev = t->cur;
      t->have_prev = true;
    }
  keys_off (t);
  return status;
}

/* --- flush with progress -------------------------------------------- */

/* How often a flush on a terminal asks for its progress. */
#define PROGRESS_PERIOD_MS 500

/* Print the progress line of a flush: LEFT blocks left of FIRST when it
 * was first asked, ELAPSED seconds since then, blocks of BLOCK_SIZE
 * bytes. */
static void
draw_progress (uint64_t first, uint64_t left, double elapsed,
               uint64_t block_size)
{
  double done = first > left ? first - left : 0;
  double blocks_per_s = elapsed > 0 ? done / elapsed : 0;
  char eta[32] = "--:--:--";

  if (blocks_per_s > 0)
    {
      uint64_t secs = left / blocks_per_s + 0.5;
      snprintf (eta, sizeof eta, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64,
                secs / 3600, secs / 60 % 60, secs % 60);
    }
  printf ("\rflush: %" PRIu64 " blocks left, %.1f MiB/s, ETA %s\033[K", left,
          blocks_per_s * block_size / (1024 * 1024), eta);
  fflush (stdout);
}

/* Wait for the reply to the flush sent on C, asking for "stats" on a
 * second connection to PATH once a period meanwhile and drawing the
 * progress line from its flush_blocks_left.  The progress is a view
 * only: if the second connection fails, the wait goes on without it. */
static void
wait_flush (struct conn *c, const char *path)
{
  static struct sample s;
  struct conn st = { .fd = -1 };
  uint64_t first = 0, block_size;
  double since = 0;
  bool drawn = false;

  for (;;)
    {
      struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
      struct reply r;
      int n = poll (&pfd, 1, PROGRESS_PERIOD_MS);
      if (n < 0 && errno == EINTR)
        continue;
      if (n != 0)
        break; /* the reply (or an error, which read_reply sees) */
      if (st.fd < 0 && conn_open (&st, path) < 0)
        break;
      if (request (&st, "stats", &r) < 0)
        {
          close (st.fd); /* closed as idle, maybe: again next period */
          st.fd = -1;
          continue;
        }
      parse_sample (r.body, &s);
      reply_free (&r);
      uint64_t left = get (&s, "flush_blocks_left");
      block_size = get (&s, "cache_block_size_bytes");
      if (!drawn)
        {
          first = left;
          since = now_seconds ();
        }
      draw_progress (first, left, now_seconds () - since, block_size);
      drawn = true;
    }
  if (st.fd >= 0)
    close (st.fd);
  if (drawn)
    printf ("\r\033[K");
}

/* "flush" on a terminal: the flush, with a progress line while it runs. */
static int
run_flush (struct conn *c, const char *path)
{
  struct reply r;

  if (send_command (c, "flush") < 0)
    {
      fprintf (stderr, "%s: the server closed the connection\n", program);
      return 1;
    }
  wait_flush (c, path);
  if (read_reply (c, &r) < 0)
    {
      fprintf (stderr, "%s: the server closed the connection\n", program);
      return 1;
    }
  return print_reply (&r);
}

/* --- main ------------------------------------------------------------ */

/* Parse top's options, ARGV[0] being "top". */
static void
parse_top_options (struct top *t, int argc, char **argv)
{
  static const struct option long_options[] = {
    { "delay", required_argument, NULL, 'd' },
    { "iterations", required_argument, NULL, 'n' },
    { NULL, 0, NULL, 0 },
  };
  char *end;
  int opt;

  optind = 0; /* start over, on the new ARGV */
  while ((opt = getopt_long (argc, argv, "+d:n:", long_options, NULL)) != -1)
    switch (opt)
      {
      case 'd':
        t->delay = strtod (optarg, &end);
        if (*end || t->delay < 0.1 || t->delay > 3600)
          {
            fprintf (stderr, "%s: -d %s: expected seconds from 0.1 to 3600\n",
                     program, optarg);
            exit (EXIT_USAGE);
          }
        break;
      case 'n':
        t->iterations = strtol (optarg, &end, 10);
        if (*end || t->iterations < 1)
          {
            fprintf (stderr, "%s: -n %s: expected a positive number\n", program,
                     optarg);
            exit (EXIT_USAGE);
          }
        break;
      default:
        usage (EXIT_USAGE);
      }
  if (optind != argc)
    usage (EXIT_USAGE);
}

int
main (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "socket", required_argument, NULL, 's' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  static struct top t = { .delay = 1.0 };
  const char *path = NULL;
  struct conn c;
  int opt, status;

  /* '+': options end at the command, whose arguments may start with '-'. */
  while ((opt = getopt_long (argc, argv, "+s:hV", long_options, NULL)) != -1)
    switch (opt)
      {
      case 's':
        path = optarg;
        break;
      case 'h':
        usage (EXIT_SUCCESS);
      case 'V':
        printf ("%s %s\n", program, PACKAGE_VERSION);
        exit (EXIT_SUCCESS);
      default:
        usage (EXIT_USAGE);
      }
  if (path == NULL)
    {
      fprintf (stderr, "%s: the control socket is required: -s PATH\n",
               program);
      usage (EXIT_USAGE);
    }
  if (optind == argc)
    usage (EXIT_USAGE);
  bool top = strcmp (argv[optind], "top") == 0;
  if (top)
    parse_top_options (&t, argc - optind, argv + optind);
  if (conn_open (&c, path) < 0)
    exit (EXIT_USAGE);
  if (top)
    {
      t.c = &c;
      t.path = path;
      status = run_top (&t);
    }
  else if (argc - optind == 1 && strcmp (argv[optind], "flush") == 0
           && isatty (STDOUT_FILENO))
    status = run_flush (&c, path);
  else
    status = run_command (&c, argc - optind, argv + optind);
  if (c.fd >= 0)
    close (c.fd);
  return status;
}
