/* Unit tests for server/service.c and server/control.c, with the engine's
 * background writeback calls they drive: an engine on a real file in the
 * build tree, a service on a control socket next to it, and a client that
 * speaks the line protocol. */
#include <config.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "control.h"
#include "engine.h"
#include "service.h"

#define BS 65536
#define DISK_SIZE (16 * 1024 * 1024)

static char dir[] = "test-service.XXXXXX";
static char disk_path[64], ctl_path[64];
static struct engine *e;
static struct service *svc;

static void
setup_engine (uint64_t cache_size, unsigned dirty_limit)
{
  struct engine_config cfg = { .mode = ENGINE_CACHE_WRITEBACK,
                               .cache_size = cache_size,
                               .block_size = BS,
                               .dirty_limit = dirty_limit };
  struct store *st;
  char err[256];
  int fd;

  cr_assert_not_null (mkdtemp (dir));
  snprintf (disk_path, sizeof disk_path, "%s/disk", dir);
  snprintf (ctl_path, sizeof ctl_path, "%s/ctl", dir);
  fd = open (disk_path, O_RDWR | O_CREAT, 0600);
  cr_assert (fd >= 0 && ftruncate (fd, DISK_SIZE) == 0);
  close (fd);
  cr_assert_eq (
      store_open (disk_path, false, STORE_DIRECT_AUTO, &st, err, sizeof err), 0,
      "%s", err);
  e = engine_new (st, &cfg);
  cr_assert_not_null (e);
}

static void
teardown (void)
{
  service_free (svc);
  svc = NULL;
  cr_assert_eq (engine_free (e), 0);
  unlink (disk_path);
  unlink (ctl_path);
  rmdir (dir);
}

static void
sleep_ms (long ms)
{
  struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

  nanosleep (&ts, NULL);
}

static void
write_block (uint64_t blk, int byte)
{
  char *buf = malloc (BS);

  memset (buf, byte, BS);
  cr_assert_eq (engine_write (e, buf, BS, blk * BS, false), 0);
  free (buf);
}

/* Whether block BLK of the file holds BYTE everywhere. */
static bool
on_disk (uint64_t blk, int byte)
{
  unsigned char *buf = malloc (BS);
  int fd = open (disk_path, O_RDONLY);
  bool same = pread (fd, buf, BS, blk * BS) == BS;

  for (size_t i = 0; same && i < BS; i++)
    same = buf[i] == byte;
  close (fd);
  free (buf);
  return same;
}

static struct engine_stats
stats (void)
{
  struct engine_stats s;

  engine_get_stats (e, &s);
  return s;
}

/* --- engine: background writeback ------------------------------------ */

TestSuite (writeback, .fini = teardown);

Test (writeback, expired_takes_only_old_blocks)
{
  uint64_t mid;

  setup_engine (4 * 1024 * 1024, 100);
  write_block (3, 0x33);
  write_block (1, 0x11);
  sleep_ms (20);
  mid = cache_clock ();
  sleep_ms (20);
  write_block (8, 0x88); /* not next to an old one: it stays */
  cr_assert (engine_has_expired (e, mid, 0));
  cr_assert_not (engine_has_expired (e, mid, 1000000000));

  cr_assert_eq (engine_writeback_expired (e, mid, 0), 0);
  cr_assert (on_disk (1, 0x11) && on_disk (3, 0x33));
  cr_assert (on_disk (8, 0));
  cr_assert_eq (stats ().cache.dirty_bytes, BS);
  cr_assert_not (engine_has_expired (e, mid, 0));
}

Test (writeback, background_stops_at_the_target)
{
  setup_engine (2 * 1024 * 1024, 100); /* 32 blocks */
  for (int i = 0; i < 24; i++)
    write_block (i * 2, i + 1); /* 24 runs of one block */
  cr_assert (engine_above_dirty (e, 50));
  cr_assert_eq (engine_writeback_background (e, 50), 0);
  cr_assert_leq (stats ().cache.dirty_bytes, 16 * BS);
  cr_assert_not (engine_above_dirty (e, 50));
  /* Oldest first. */
  cr_assert (on_disk (0, 1) && on_disk (2, 2));
  cr_assert (on_disk (46, 0));
}

Test (writeback, dirty_limit_holds_writers)
{
  setup_engine (2 * 1024 * 1024, 25); /* limit 8 blocks */
  for (int i = 0; i < 64; i++)
    {
      write_block (i, i + 1);
      cr_assert_leq (stats ().cache.dirty_bytes, 9 * BS);
    }
  cr_assert_gt (stats ().dirty_limit_waits, 0);
  cr_assert (on_disk (0, 1));
  cr_assert_eq (engine_set_dirty_limit (e, 0), -EINVAL);
  cr_assert_eq (engine_set_dirty_limit (e, 101), -EINVAL);
  cr_assert_eq (engine_set_dirty_limit (e, 100), 0);
}

Test (writeback, shrinking_writes_back_first)
{
  char *buf = malloc (BS);

  setup_engine (4 * 1024 * 1024, 100);
  for (int i = 0; i < 48; i++)
    write_block (i, i + 1);
  cr_assert_eq (engine_set_cache_size (e, 4 * BS), 0);
  cr_assert_leq (stats ().cache.blocks, 4);
  cr_assert_eq (stats ().cache_size, 4 * BS);
  for (int i = 0; i < 48; i++)
    {
      cr_assert (on_disk (i, i + 1), "block %d", i);
      cr_assert_eq (engine_read (e, buf, BS, (uint64_t)i * BS), 0);
      cr_assert_eq ((unsigned char)buf[BS - 1], i + 1);
    }
  cr_assert_eq (engine_set_cache_size (e, 100), -EINVAL);
  cr_assert_eq (engine_drop_clean (e), 4);
  free (buf);
}

/* --- the service and its control socket ------------------------------ */

static void
start_service (bool writeback, unsigned expire)
{
  struct service_config cfg = { .engine = e,
                                .control_path = ctl_path,
                                .writeback = writeback,
                                .dirty_expire = expire,
                                .dirty_background = 10 };
  char err[256];

  svc = service_new (&cfg, err, sizeof err);
  cr_assert_not_null (svc, "%s", err);
  cr_assert_eq (service_start (svc), 0);
}

static int
client (void)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);

  strcpy (sa.sun_path, ctl_path);
  cr_assert_eq (connect (fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

/* Status lines ("ok" or "error: ...") among the complete lines of BUF. */
static int
replies (const char *buf)
{
  int n = 0;

  for (const char *p = buf; *p;)
    {
      const char *nl = strchr (p, '\n');
      if (nl == NULL)
        break;
      if (strncmp (p, "ok\n", 3) == 0 || strncmp (p, "error:", 6) == 0)
        n++;
      p = nl + 1;
    }
  return n;
}

/* Send LINES, N commands, and return the N replies (malloc'd). */
static char *
ask_n (int fd, const char *lines, int n)
{
  size_t size = 65536, len = 0;
  char *buf = malloc (size);

  cr_assert (write (fd, lines, strlen (lines)) == (ssize_t)strlen (lines));
  buf[0] = '\0';
  while (replies (buf) < n)
    {
      ssize_t r = read (fd, buf + len, size - len - 1);
      cr_assert_gt (r, 0);
      len += r;
      buf[len] = '\0';
    }
  return buf;
}

static char *
ask (int fd, const char *line)
{
  return ask_n (fd, line, 1);
}

TestSuite (service, .fini = teardown);

Test (service, commands)
{
  struct stat st;
  char *r;
  int fd;

  setup_engine (4 * 1024 * 1024, 50);
  start_service (true, 0);
  cr_assert_eq (stat (ctl_path, &st), 0);
  cr_assert_eq (st.st_mode & 0777, 0600);
  fd = client ();

  write_block (5, 0x55);
  r = ask (fd, "flush\n");
  cr_assert_str_eq (r, "ok\n");
  free (r);
  cr_assert (on_disk (5, 0x55));

  r = ask (fd, "stats\n");
  cr_assert_not_null (strstr (r, "\nflushes 1\n"), "%s", r);
  cr_assert_not_null (strstr (r, "\ncontrol_clients 1\n"));
  free (r);

  r = ask_n (fd, "set dirty-expire 9\nset cache-size 1M\nstats\n", 3);
  cr_assert (strncmp (r, "ok\ncache_size_bytes 1048576\nok\n", 30) == 0, "%s",
             r);
  cr_assert_not_null (strstr (r, "dirty_expire_seconds 9\n"), "%s", r);
  free (r);
  r = ask (fd, "drop-clean\n");
  cr_assert_str_eq (r, "dropped_blocks 1\nok\n");
  free (r);
  r = ask (fd, "set dirty-limit 0\n");
  cr_assert_str_eq (r, "error: dirty-limit 0 must be at least 1 and "
                       "dirty-background (10)\n");
  free (r);
  close (fd);
}

Test (service, expired_data_reaches_the_disk)
{
  setup_engine (4 * 1024 * 1024, 50);
  start_service (true, 1);
  write_block (7, 0x77);
  for (int i = 0; i < 20 && !on_disk (7, 0x77); i++)
    sleep_ms (100);
  cr_assert (on_disk (7, 0x77));
  cr_assert_eq (stats ().cache.dirty_bytes, 0);
}

Test (service, hang_up_while_busy)
{
  char *r;
  int fd, fd2;

  setup_engine (4 * 1024 * 1024, 100);
  start_service (false, 0);
  for (int i = 0; i < 48; i++)
    write_block (i, i + 1);
  /* Commands queued on the worker for a client that is gone. */
  fd = client ();
  for (int i = 0; i < 20; i++)
    cr_assert (write (fd, "flush\n", 6) == 6);
  close (fd);
  fd2 = client ();
  r = ask (fd2, "set cache-size 128K\n");
  cr_assert_str_eq (r, "cache_size_bytes 131072\nok\n");
  free (r);
  close (fd2);
}

Test (service, stop_with_clients_connected)
{
  int fd, fd2;

  setup_engine (1024 * 1024, 50);
  start_service (true, 5);
  fd = client ();
  fd2 = client ();
  cr_assert (write (fd2, "sta", 3) == 3);
  service_free (svc);
  svc = NULL;
  cr_assert_eq (access (ctl_path, F_OK), -1);
  close (fd);
  close (fd2);
}

Test (service, refusals)
{
  struct service_config cfg
      = { .control_path = ctl_path, .dirty_background = 10 };
  char err[256], longpath[200];
  int fd;

  setup_engine (1024 * 1024, 50);
  cfg.engine = e;
  fd = open (ctl_path, O_CREAT | O_WRONLY, 0600);
  close (fd);
  cr_assert_null (service_new (&cfg, err, sizeof err));
  cr_assert_not_null (strstr (err, "exists and is not a socket"), "%s", err);
  unlink (ctl_path);

  memset (longpath, 'a', sizeof longpath - 1);
  longpath[sizeof longpath - 1] = '\0';
  cfg.control_path = longpath;
  cr_assert_null (service_new (&cfg, err, sizeof err));
  cr_assert_not_null (strstr (err, "at most"), "%s", err);

  cfg.control_path = NULL;
  cfg.dirty_background = 60;
  cr_assert_null (service_new (&cfg, err, sizeof err));
  cr_assert_not_null (strstr (err, "above dirty-limit"), "%s", err);
}
