/* blkcache: the control socket.  See control.h for the protocol.
 *
 * Layout.  struct control owns the listening socket, its accept watcher
 * and a doubly linked list of clients.  Each client has one ev_io watcher
 * whose events follow its state (update_events): READ while it may send
 * more (no command of its on the worker, its input buffer not full, less
 * than CONTROL_OUTPUT_HIGH bytes of replies unsent), WRITE while replies
 * are unsent.  Input is a fixed buffer of CONTROL_LINE_MAX bytes; output a
 * growable one, bounded because no command runs while the output is above
 * the high-water mark and no reply is longer than a few KiB.
 *
 * A command that does disk I/O (flush, drop-clean, set cache-size, set
 * cache-mode) goes to
 * the service's worker; the client is "busy" until the completion comes
 * back to the loop thread, and its later lines wait in its buffer, so the
 * replies keep the order of the commands.  A client that hangs up while
 * busy is marked gone (its socket closed, its watchers stopped) and freed
 * by the completion; until then it still counts toward
 * CONTROL_MAX_CLIENTS, which is what bounds the jobs a client can leave
 * behind by connecting, asking and hanging up in a loop.
 *
 * Idle clients: each client has an ev_timer, restarted (ev_timer_again,
 * O(log n)) whenever bytes arrive or its command ends.  When it fires on
 * a client with no command running, the client is closed; on a busy one
 * it waits for another period, since a flush may outlast it.
 *
 * Everything runs on the loop thread: no locks.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "engine.h"

#define MAX_WORDS 4
#define MAX_DIRTY_EXPIRE 86400
#define ACCEPT_BACKOFF_SECONDS 1.0
#define MEMINFO "/proc/meminfo"

struct client
{
  struct control *ctl;
  ev_io io;
  ev_timer idle;
  int fd;
  int events; /* what IO watches now */
  uint64_t id;
  char in[CONTROL_LINE_MAX + 1]; /* + 1 for the '\0' of a final line */
  size_t in_len;
  bool skipping; /* inside a line that was too long */
  bool eof;      /* the client shut its side down */
  bool busy;     /* a command of ours is on the worker */
  bool gone;     /* hung up while busy */
  char *out;
  size_t out_len, out_sent, out_cap;
  struct client *prev, *next;
};

struct control
{
  int fd;
  char *path;
  dev_t dev;
  ino_t ino;
  struct control_host host;
  struct ev_loop *loop;
  ev_io accept_io;
  ev_timer backoff; /* accept paused after running out of descriptors */
  bool debug;
  double idle_seconds;
  struct client *clients;
  uint64_t nr_clients, next_id, commands, errors;
};

enum cmd_status
{
  CMD_OK,    /* the body is written; "ok" follows */
  CMD_ERROR, /* an "error:" line is written */
  CMD_ASYNC, /* on the worker; the completion replies */
};

static void control_log (struct control *ctl, bool error, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
control_log (struct control *ctl, bool error, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  ctl->host.log (ctl->host.opaque, error, msg);
}

/* --- the listening socket -------------------------------------------- */

static int
path_error (char *err, size_t errlen, const char *path, const char *what)
{
  snprintf (err, errlen, "control=%s: %s", path, what);
  return -1;
}

/* If PATH exists, it must be a socket nobody listens on; remove it. */
static int
clear_stale (const char *path, const struct sockaddr_un *sa, char *err,
             size_t errlen)
{
  struct stat st;
  int fd, r, saved;

  if (lstat (path, &st) == -1)
    {
      if (errno == ENOENT)
        return 0;
      return path_error (err, errlen, path, strerror (errno));
    }
  if (!S_ISSOCK (st.st_mode))
    return path_error (err, errlen, path,
                       "exists and is not a socket; remove it or choose "
                       "another path");
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return path_error (err, errlen, path, strerror (errno));
  r = connect (fd, (const struct sockaddr *)sa, sizeof *sa);
  saved = errno;
  close (fd);
  if (r == 0 || saved == EAGAIN || saved == EINPROGRESS)
    return path_error (err, errlen, path,
                       "another server is listening on this socket");
  if (saved != ECONNREFUSED)
    {
      snprintf (err, errlen,
                "control=%s: cannot tell whether the socket is in use: %s",
                path, strerror (saved));
      return -1;
    }
  if (unlink (path) == -1 && errno != ENOENT)
    return path_error (err, errlen, path, strerror (errno));
  return 0;
}

/* Bind FD to SA with mode 0600.  On Linux a unix socket's file takes the
 * mode of the socket's inode (less the umask), so the fchmod before bind
 * leaves no moment at which anyone else could connect. */
static int
bind_private (int fd, const struct sockaddr_un *sa, struct stat *st)
{
  if (fchmod (fd, 0600) == -1
      || bind (fd, (const struct sockaddr *)sa, sizeof *sa) == -1
      || chmod (sa->sun_path, 0600) == -1 || listen (fd, 16) == -1
      || lstat (sa->sun_path, st) == -1)
    return -1;
  return 0;
}

struct control *
control_open (const char *path, char *err, size_t errlen)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct control *ctl;
  struct stat st;

  if (strlen (path) >= sizeof sa.sun_path)
    {
      snprintf (err, errlen, "control=%s: a socket path has at most %zu bytes",
                path, sizeof sa.sun_path - 1);
      return NULL;
    }
  strcpy (sa.sun_path, path);
  if (clear_stale (path, &sa, err, errlen) < 0)
    return NULL;
  ctl = calloc (1, sizeof *ctl);
  if (ctl == NULL || (ctl->path = strdup (path)) == NULL)
    {
      free (ctl);
      snprintf (err, errlen, "control=%s: %s", path, strerror (ENOMEM));
      return NULL;
    }
  ctl->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ctl->fd == -1 || bind_private (ctl->fd, &sa, &st) == -1)
    {
      snprintf (err, errlen, "control=%s: %s", path, strerror (errno));
      if (ctl->fd >= 0)
        close (ctl->fd);
      free (ctl->path);
      free (ctl);
      return NULL;
    }
  ctl->dev = st.st_dev;
  ctl->ino = st.st_ino;
  return ctl;
}

/* --- client buffers -------------------------------------------------- */

static size_t
unsent (const struct client *c)
{
  return c->out_len - c->out_sent;
}

static int
append (struct client *c, const char *data, size_t len)
{
  if (len == 0)
    return 0;
  if (c->out_sent > 0)
    {
      memmove (c->out, c->out + c->out_sent, unsent (c));
      c->out_len -= c->out_sent;
      c->out_sent = 0;
    }
  if (c->out_len + len > c->out_cap)
    {
      size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
      while (cap < c->out_len + len)
        cap *= 2;
      char *out = realloc (c->out, cap);
      if (out == NULL)
        return -1;
      c->out = out;
      c->out_cap = cap;
    }
  memcpy (c->out + c->out_len, data, len);
  c->out_len += len;
  return 0;
}

/* Send what the socket takes now.  Returns -1 if the client is gone. */
static int
send_output (struct client *c)
{
  while (unsent (c) > 0)
    {
      ssize_t n = send (c->fd, c->out + c->out_sent, unsent (c), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
      c->out_sent += n;
    }
  c->out_len = c->out_sent = 0;
  return 0;
}

/* Read what the socket has.  Returns -1 if the client is gone. */
static int
receive_input (struct client *c)
{
  ssize_t n;

  if (c->in_len == CONTROL_LINE_MAX)
    return 0;
  n = recv (c->fd, c->in + c->in_len, CONTROL_LINE_MAX - c->in_len, 0);
  if (n > 0)
    {
      c->in_len += n;
      ev_timer_again (c->ctl->loop, &c->idle);
    }
  else if (n == 0)
    c->eof = true;
  else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    return -1;
  return 0;
}

/* --- commands -------------------------------------------------------- */

static enum cmd_status fail (struct client *c, FILE *fp, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static enum cmd_status
fail (struct client *c, FILE *fp, const char *fmt, ...)
{
  va_list ap;

  fputs ("error: ", fp);
  va_start (ap, fmt);
  vfprintf (fp, fmt, ap);
  va_end (ap);
  fputc ('\n', fp);
  c->ctl->errors++;
  return CMD_ERROR;
}

/* A copy of WORD fit to echo in a reply: at most SIZE - 1 bytes, anything
 * but printable ASCII replaced by '?'. */
static const char *
printable (const char *word, char *buf, size_t size)
{
  size_t i;

  for (i = 0; word[i] && i < size - 1; i++)
    buf[i] = isprint ((unsigned char)word[i]) ? word[i] : '?';
  buf[i] = '\0';
  return buf;
}

/* A decimal number no larger than MAX. */
static int
parse_uint (const char *s, uint64_t max, uint64_t *out)
{
  char *end;

  if (!isdigit ((unsigned char)*s))
    return -1;
  errno = 0;
  *out = strtoull (s, &end, 10);
  return errno || *end || *out > max ? -1 : 0;
}

/* A size: a decimal number of bytes, or with a suffix K, M, G, T, P or E
 * (either case) for KiB, MiB, ... EiB. */
static int
parse_size (const char *s, uint64_t *out)
{
  static const char suffixes[] = "kmgtpe";
  const char *p;
  unsigned shift = 0;
  char *end;

  if (!isdigit ((unsigned char)*s))
    return -1;
  errno = 0;
  *out = strtoull (s, &end, 10);
  if (errno)
    return -1;
  if (*end)
    {
      p = strchr (suffixes, tolower ((unsigned char)*end));
      if (p == NULL || end[1])
        return -1;
      shift = 10 * (p - suffixes + 1);
    }
  if (*out > UINT64_MAX >> shift)
    return -1;
  *out <<= shift;
  return 0;
}

static void client_run (struct client *c);
static void client_free (struct client *c);

/* The end of a command the worker ran: reply BODY and "ok", or on error
 * "error: WHAT: " and WHY (strerror when WHY is NULL), and go on with the
 * client's next lines. */
static void
finish (struct client *c, int result, const char *what, const char *body,
        const char *why)
{
  char buf[256];

  c->busy = false;
  if (c->gone)
    {
      client_free (c);
      return;
    }
  ev_timer_again (c->ctl->loop, &c->idle); /* idle from now, not before */
  if (result < 0)
    {
      snprintf (buf, sizeof buf, "error: %s: %s\n", what,
                why ? why : strerror (-result));
      c->ctl->errors++;
    }
  else
    snprintf (buf, sizeof buf, "%sok\n", body);
  if (append (c, buf, strlen (buf)) < 0)
    c->eof = true; /* out of memory: stop talking to this one */
  client_run (c);
}

static void
flush_done (void *opaque, int result, uint64_t value)
{
  finish (opaque, result, "flush", "", NULL);
}

static void
drop_clean_done (void *opaque, int result, uint64_t value)
{
  char body[64];

  snprintf (body, sizeof body, "dropped_blocks %" PRIu64 "\n", value);
  finish (opaque, result, "drop-clean", body, NULL);
}

static void
resize_done (void *opaque, int result, uint64_t value)
{
  struct client *c = opaque;
  struct engine_stats st;
  char body[64], why[96];

  engine_get_stats (c->ctl->host.engine, &st);
  snprintf (body, sizeof body, "cache_size_bytes %" PRIu64 "\n", st.cache_size);
  snprintf (why, sizeof why,
            "the size must hold at least one block of %" PRIu64 " bytes",
            st.block_size);
  if (result == -ENOTSUP)
    snprintf (why, sizeof why, "there is no cache (cache=none)");
  finish (c, result, "set cache-size", body,
          result == -EINVAL || result == -ENOTSUP ? why : NULL);
}

static void
mode_done (void *opaque, int result, uint64_t value)
{
  finish (opaque, result, "set cache-mode", "", NULL);
}

static enum cmd_status
submit (struct client *c, FILE *fp, const char *what, enum control_job job,
        uint64_t arg, control_done_fn done)
{
  struct control_host *host = &c->ctl->host;
  int r = host->submit (host->opaque, job, arg, done, c);

  if (r == -EBUSY)
    return fail (c, fp,
                 "busy: %s: the worker's queue is full; try again when the "
                 "commands before it have run",
                 what);
  if (r < 0)
    return fail (c, fp, "%s: %s", what, strerror (-r));
  c->busy = true;
  return CMD_ASYNC;
}

static enum cmd_status cmd_help (struct client *c, int argc, char **argv,
                                 FILE *fp);

static enum cmd_status
cmd_stats (struct client *c, int argc, char **argv, FILE *fp)
{
  struct control_host *host = &c->ctl->host;
  char word[64];

  if (argc == 2 && strcmp (argv[1], "prometheus") != 0)
    return fail (c, fp, "stats: unknown format '%s' (try: stats prometheus)",
                 printable (argv[1], word, sizeof word));
  host->print_stats (host->opaque, fp, argc == 2);
  return CMD_OK;
}

static enum cmd_status
cmd_flush (struct client *c, int argc, char **argv, FILE *fp)
{
  return submit (c, fp, "flush", CONTROL_JOB_FLUSH, 0, flush_done);
}

/* Clear a latched sync failure (nbdkit-blkcache-plugin(1), ERRORS AND
 * DURABILITY): flushes and FUA requests run syncs again.  No disk I/O, so
 * it runs here on the loop thread. */
static enum cmd_status
cmd_clear_errors (struct client *c, int argc, char **argv, FILE *fp)
{
  struct control_host *host = &c->ctl->host;

  if (engine_clear_errors (host->engine))
    host->log (host->opaque, true,
               "clear-errors: the failed fdatasync is cleared; flushes and "
               "FUA requests sync again");
  return CMD_OK;
}

/* The miss-ratio curve: one "SIZE RATIO" line per cache size from 1/8 to
 * 8 times the cache's capacity (the curve follows a resize), the estimated
 * read hit ratio of a cache of SIZE bytes (minisim.h).  No disk I/O, so it
 * runs here on the loop thread. */
static enum cmd_status
cmd_mrc (struct client *c, int argc, char **argv, FILE *fp)
{
  struct engine *e = c->ctl->host.engine;
  struct minisim *m = engine_mrc (e);
  struct engine_stats st;

  if (m == NULL)
    return fail (c, fp, "mrc: no curve (cache=none or mrc-samples=0)");
  if (minisim_hit_ratio (m, 0) < 0)
    return fail (c, fp, "mrc: no block read sampled yet");
  engine_get_stats (e, &st);
  for (unsigned i = 0; i < MINISIM_SIZES; i++)
    fprintf (fp, "%" PRIu64 " %.4f\n", minisim_size (m, i) * st.block_size,
             minisim_hit_ratio (m, i));
  return CMD_OK;
}

static void
save_hotset_done (void *opaque, int result, uint64_t value)
{
  char body[64];

  snprintf (body, sizeof body, "hotset_blocks %" PRIu64 "\n", value);
  finish (opaque, result, "save-hotset", body,
          result == -ENOTSUP ? "no hot set file (start with hotset=PATH)"
                             : NULL);
}

static enum cmd_status
cmd_save_hotset (struct client *c, int argc, char **argv, FILE *fp)
{
  return submit (c, fp, "save-hotset", CONTROL_JOB_SAVE_HOTSET, 0,
                 save_hotset_done);
}

static enum cmd_status
cmd_drop_clean (struct client *c, int argc, char **argv, FILE *fp)
{
  return submit (c, fp, "drop-clean", CONTROL_JOB_DROP_CLEAN, 0,
                 drop_clean_done);
}

/* MemAvailable from /proc/meminfo, in bytes.  Returns -1 if the kernel
 * does not say. */
static int
mem_available (uint64_t *bytes)
{
  char line[256];
  uint64_t kib;
  FILE *fp = fopen (MEMINFO, "re");
  int r = -1;

  if (fp == NULL)
    return -1;
  while (fgets (line, sizeof line, fp))
    if (sscanf (line, "MemAvailable: %" SCNu64 " kB", &kib) == 1)
      {
        *bytes = kib * 1024;
        r = 0;
        break;
      }
  fclose (fp);
  return r;
}

/* Refuse a cache of SIZE bytes that the machine could not give: more than
 * MemAvailable plus the block memory the cache holds now.  Where the
 * kernel does not report MemAvailable, nothing is refused. */
static enum cmd_status
check_cache_size (struct client *c, FILE *fp, const char *value, uint64_t size)
{
  struct engine_stats st;
  uint64_t avail, held;
  char word[64];

  if (mem_available (&avail) < 0)
    return CMD_OK;
  engine_get_stats (c->ctl->host.engine, &st);
  held = st.cache.blocks * st.block_size;
  if (size <= avail + held)
    return CMD_OK;
  return fail (c, fp,
               "set cache-size: %s (%" PRIu64 " bytes) is more than the "
               "memory available, %" PRIu64 " bytes (MemAvailable %" PRIu64
               " plus the %" PRIu64 " bytes the cache holds)",
               printable (value, word, sizeof word), size, avail + held, avail,
               held);
}

/* Hand a setting of the host's to it, and its refusal to the client. */
static enum cmd_status
set_on_host (struct client *c, FILE *fp, const char *key, uint64_t value)
{
  struct control_host *host = &c->ctl->host;
  char why[160];

  if (host->set (host->opaque, key, value, why, sizeof why) < 0)
    return fail (c, fp, "%s", why);
  return CMD_OK;
}

static enum cmd_status
cmd_set (struct client *c, int argc, char **argv, FILE *fp)
{
  const char *key = argv[1], *value = argv[2];
  char word[64];
  uint64_t n;

  if (strcmp (key, "cache-size") == 0)
    {
      if (parse_size (value, &n) < 0)
        return fail (c, fp,
                     "cache-size: expected a size such as 512M, "
                     "got '%s'",
                     printable (value, word, sizeof word));
      if (check_cache_size (c, fp, value, n) == CMD_ERROR)
        return CMD_ERROR;
      return submit (c, fp, "set cache-size", CONTROL_JOB_SET_CACHE_SIZE, n,
                     resize_done);
    }
  if (strcmp (key, "dirty-expire") == 0)
    {
      if (parse_uint (value, MAX_DIRTY_EXPIRE, &n) < 0)
        return fail (c, fp,
                     "dirty-expire: expected seconds from 0 to %d, "
                     "got '%s'",
                     MAX_DIRTY_EXPIRE, printable (value, word, sizeof word));
      return set_on_host (c, fp, key, n);
    }
  if (strcmp (key, "dirty-background") == 0 || strcmp (key, "dirty-limit") == 0)
    {
      if (parse_uint (value, 100, &n) < 0)
        return fail (c, fp, "%s: expected a percentage from 0 to 100, got '%s'",
                     key, printable (value, word, sizeof word));
      return set_on_host (c, fp, key, n);
    }
  if (strcmp (key, "writeback-rate") == 0)
    {
      if (parse_size (value, &n) < 0)
        return fail (c, fp,
                     "writeback-rate: expected bytes a second such as 20M "
                     "(0: unlimited), got '%s'",
                     printable (value, word, sizeof word));
      engine_set_writeback_rate (c->ctl->host.engine, n);
      return CMD_OK;
    }
  if (strcmp (key, "cache-mode") == 0)
    {
      if (strcmp (value, "writeback") == 0)
        n = ENGINE_CACHE_WRITEBACK;
      else if (strcmp (value, "writethrough") == 0)
        n = ENGINE_CACHE_WRITETHROUGH;
      else
        return fail (c, fp,
                     "cache-mode: expected writeback or writethrough, got "
                     "'%s'",
                     printable (value, word, sizeof word));
      return submit (c, fp, "set cache-mode", CONTROL_JOB_SET_CACHE_MODE, n,
                     mode_done);
    }
  return fail (c, fp,
               "set: unknown setting '%s' (cache-size, dirty-expire, "
               "dirty-background, dirty-limit, writeback-rate, cache-mode)",
               printable (key, word, sizeof word));
}

struct command
{
  const char *name;
  int min_args, max_args;
  enum cmd_status (*run) (struct client *c, int argc, char **argv, FILE *fp);
  const char *usage;
};

static const struct command command_table[] = {
  { "help", 0, 0, cmd_help, "help                      list the commands" },
  { "stats", 0, 1, cmd_stats,
    "stats [prometheus]        every counter and setting" },
  { "flush", 0, 0, cmd_flush,
    "flush                     write every dirty block back, fdatasync" },
  { "drop-clean", 0, 0, cmd_drop_clean,
    "drop-clean                drop every clean unpinned block" },
  { "mrc", 0, 0, cmd_mrc,
    "mrc                       estimated hit ratio at 1/8x to 8x the cache "
    "size" },
  { "clear-errors", 0, 0, cmd_clear_errors,
    "clear-errors              let flushes and FUA run again after a "
    "failed fdatasync" },
  { "save-hotset", 0, 0, cmd_save_hotset,
    "save-hotset               write the hot set file for a warm restart" },
  { "set", 2, 2, cmd_set,
    "set cache-size SIZE       resize the cache, writing back first\n"
    "set dirty-expire SECS     write back data dirty this long (0: never)\n"
    "set dirty-background PCT  write back above PCT% of the cache dirty\n"
    "set dirty-limit PCT       hold writers above PCT% of the cache dirty\n"
    "set writeback-rate SIZE   cap background writeback at SIZE a second\n"
    "set cache-mode MODE       writeback, or writethrough (writes back "
    "first)" },
};

#define NR_COMMANDS (sizeof command_table / sizeof *command_table)

static enum cmd_status
cmd_help (struct client *c, int argc, char **argv, FILE *fp)
{
  for (size_t i = 0; i < NR_COMMANDS; i++)
    fprintf (fp, "%s\n", command_table[i].usage);
  return CMD_OK;
}

/* Split LINE into at most MAX_WORDS words in place; returns how many, or
 * MAX_WORDS + 1 if there are more. */
static int
split (char *line, char **argv)
{
  int argc = 0;
  char *save = NULL;

  for (char *w = strtok_r (line, " \t\r", &save); w;
       w = strtok_r (NULL, " \t\r", &save))
    {
      if (argc == MAX_WORDS)
        return MAX_WORDS + 1;
      argv[argc++] = w;
    }
  return argc;
}

static enum cmd_status
dispatch (struct client *c, int argc, char **argv, FILE *fp)
{
  char word[64];

  if (argc > MAX_WORDS)
    return fail (c, fp, "too many words");
  for (size_t i = 0; i < NR_COMMANDS; i++)
    {
      const struct command *cmd = &command_table[i];
      if (strcmp (argv[0], cmd->name) != 0)
        continue;
      if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args)
        return fail (c, fp, "%s: wrong number of arguments (see help)",
                     cmd->name);
      return cmd->run (c, argc, argv, fp);
    }
  return fail (c, fp, "unknown command '%s' (see help)",
               printable (argv[0], word, sizeof word));
}

static void
execute (struct client *c, char *line)
{
  struct control *ctl = c->ctl;
  char *argv[MAX_WORDS], *buf = NULL;
  size_t len = 0;
  int argc;
  FILE *fp;

  if (ctl->debug)
    control_log (ctl, false, "control: client %" PRIu64 ": %.80s", c->id, line);
  argc = split (line, argv);
  if (argc == 0)
    return;
  ctl->commands++;
  fp = open_memstream (&buf, &len);
  if (fp == NULL)
    {
      c->eof = true;
      return;
    }
  if (dispatch (c, argc, argv, fp) == CMD_OK)
    fputs ("ok\n", fp);
  fclose (fp);
  if (append (c, buf, len) < 0)
    c->eof = true;
  free (buf);
}

/* Run the complete lines in the input while the client may go on. */
static void
run_lines (struct client *c)
{
  while (!c->busy && unsent (c) < CONTROL_OUTPUT_HIGH)
    {
      char *nl = memchr (c->in, '\n', c->in_len);
      size_t len, used;

      if (nl)
        {
          len = nl - c->in;
          used = len + 1;
        }
      else if (c->eof && c->in_len > 0)
        len = used = c->in_len;
      else if (c->in_len == CONTROL_LINE_MAX)
        {
          if (!c->skipping)
            {
              char msg[64];
              snprintf (msg, sizeof msg, "error: line longer than %d bytes\n",
                        CONTROL_LINE_MAX);
              c->ctl->errors++;
              if (append (c, msg, strlen (msg)) < 0)
                c->eof = true;
            }
          c->skipping = true;
          c->in_len = 0;
          continue;
        }
      else
        return;
      c->in[len] = '\0';
      if (c->skipping)
        c->skipping = false;
      else
        execute (c, c->in);
      c->in_len -= used;
      memmove (c->in, c->in + used, c->in_len);
    }
}

/* --- connections ----------------------------------------------------- */

static void
update_events (struct client *c)
{
  int events = 0;

  if (!c->eof && !c->busy && c->in_len < CONTROL_LINE_MAX
      && unsent (c) < CONTROL_OUTPUT_HIGH)
    events |= EV_READ;
  if (unsent (c) > 0)
    events |= EV_WRITE;
  if (events == c->events)
    return;
  ev_io_stop (c->ctl->loop, &c->io);
  ev_io_set (&c->io, c->fd, events);
  if (events)
    ev_io_start (c->ctl->loop, &c->io);
  c->events = events;
}

static void
client_free (struct client *c)
{
  struct control *ctl = c->ctl;

  if (c->prev)
    c->prev->next = c->next;
  else
    ctl->clients = c->next;
  if (c->next)
    c->next->prev = c->prev;
  if (!c->gone)
    {
      ev_io_stop (ctl->loop, &c->io);
      ev_timer_stop (ctl->loop, &c->idle);
      close (c->fd);
    }
  ctl->nr_clients--;
  free (c->out);
  free (c);
}

/* The client hung up, broke the protocol or stayed idle: close it, or if
 * its command is still on the worker, close its socket and leave the rest
 * to the completion, the client still counting toward the limit. */
static void
client_drop (struct client *c)
{
  struct control *ctl = c->ctl;

  if (ctl->debug)
    control_log (ctl, false, "control: client %" PRIu64 " closed", c->id);
  if (!c->busy)
    {
      client_free (c);
      return;
    }
  ev_io_stop (ctl->loop, &c->io);
  ev_timer_stop (ctl->loop, &c->idle);
  close (c->fd);
  c->gone = true;
}

/* Do what the client's state allows, then watch for what it waits on. */
static void
client_run (struct client *c)
{
  run_lines (c);
  if (send_output (c) < 0)
    {
      client_drop (c);
      return;
    }
  if (c->eof && !c->busy && c->in_len == 0 && unsent (c) == 0)
    {
      client_drop (c);
      return;
    }
  update_events (c);
}

static void
on_client (struct ev_loop *loop, ev_io *w, int revents)
{
  struct client *c = w->data;

  if ((revents & EV_READ) && receive_input (c) < 0)
    {
      client_drop (c);
      return;
    }
  client_run (c);
}

/* No bytes for an idle period: drop the client, unless its command is
 * still running (a long flush is not the client's idleness). */
static void
on_idle (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct client *c = w->data;

  if (c->busy)
    {
      ev_timer_again (loop, w);
      return;
    }
  if (c->ctl->debug)
    control_log (c->ctl, false, "control: client %" PRIu64 " idle for %.0f s",
                 c->id, w->repeat);
  client_drop (c);
}

static void
client_new (struct control *ctl, int fd)
{
  struct client *c = calloc (1, sizeof *c);

  if (c == NULL)
    {
      close (fd);
      return;
    }
  c->ctl = ctl;
  c->fd = fd;
  c->id = ++ctl->next_id;
  ev_io_init (&c->io, on_client, fd, 0);
  c->io.data = c;
  ev_init (&c->idle, on_idle);
  c->idle.repeat = ctl->idle_seconds;
  c->idle.data = c;
  ev_timer_again (ctl->loop, &c->idle);
  c->next = ctl->clients;
  if (ctl->clients)
    ctl->clients->prev = c;
  ctl->clients = c;
  ctl->nr_clients++;
  if (ctl->debug)
    control_log (ctl, false, "control: client %" PRIu64 " connected", c->id);
  update_events (c);
}

static void
refuse (struct control *ctl, int fd)
{
  static const char msg[] = "error: too many control connections\n";

  if (send (fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT) == -1
      && ctl->debug)
    control_log (ctl, false, "control: refusing: %s", strerror (errno));
  close (fd);
  ctl->errors++;
}

static void
on_backoff (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct control *ctl = w->data;

  ev_io_start (loop, &ctl->accept_io);
}

static void
on_accept (struct ev_loop *loop, ev_io *w, int revents)
{
  struct control *ctl = w->data;

  for (;;)
    {
      int fd = accept4 (ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0)
        {
          if (ctl->nr_clients >= CONTROL_MAX_CLIENTS)
            refuse (ctl, fd);
          else
            client_new (ctl, fd);
          continue;
        }
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      /* Out of descriptors or memory: the socket stays readable, so pause
       * rather than spin. */
      control_log (ctl, true, "control: accept: %s; pausing for a second",
                   strerror (errno));
      ev_io_stop (loop, &ctl->accept_io);
      ev_timer_start (loop, &ctl->backoff);
      return;
    }
}

void
control_start (struct control *ctl, const struct control_host *host,
               struct ev_loop *loop, bool debug)
{
  ctl->host = *host;
  ctl->idle_seconds
      = host->idle_seconds ? host->idle_seconds : CONTROL_IDLE_SECONDS;
  ctl->loop = loop;
  ctl->debug = debug;
  ev_io_init (&ctl->accept_io, on_accept, ctl->fd, EV_READ);
  ctl->accept_io.data = ctl;
  ev_timer_init (&ctl->backoff, on_backoff, ACCEPT_BACKOFF_SECONDS, 0);
  ctl->backoff.data = ctl;
  ev_io_start (loop, &ctl->accept_io);
}

/* Remove the socket's path if it is still the socket we bound. */
static void
unlink_ours (const struct control *ctl)
{
  struct stat st;

  if (lstat (ctl->path, &st) == 0 && S_ISSOCK (st.st_mode)
      && st.st_dev == ctl->dev && st.st_ino == ctl->ino)
    unlink (ctl->path);
}

void
control_close (struct control *ctl, bool unlink_path)
{
  while (ctl->clients)
    {
      struct client *c = ctl->clients;
      c->busy = false;
      client_free (c);
    }
  if (ctl->loop)
    {
      ev_io_stop (ctl->loop, &ctl->accept_io);
      ev_timer_stop (ctl->loop, &ctl->backoff);
    }
  close (ctl->fd);
  if (unlink_path)
    unlink_ours (ctl);
  free (ctl->path);
  free (ctl);
}

void
control_get_counts (const struct control *ctl, uint64_t *clients,
                    uint64_t *commands, uint64_t *errors)
{
  *clients = ctl->nr_clients;
  *commands = ctl->commands;
  *errors = ctl->errors;
}
