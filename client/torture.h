/* blkcache-torture: options and the three modes of the program.
 *
 * torture.c parses the command line into struct options and calls
 * torture_run (drive the server and check every read, run.c),
 * torture_verify (check the disk against a log after a crash, verify.c)
 * or torture_check_recording (check a log against what a power-cut
 * recorder saw become durable, powercut.c).  Each returns the process's
 * exit status.
 */
#ifndef BLKCACHE_TORTURE_H
#define BLKCACHE_TORTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "workload.h"

/* Exit statuses. */
#define EXIT_OK 0
#define EXIT_STALE 1 /* a check failed (or an error with --fail-on-error) */
#define EXIT_SETUP 2 /* bad usage, cannot connect, internal failure */
#define EXIT_LOST 3  /* the server dropped a connection during the run */

struct options
{
  const char *uri;
  unsigned connections;
  unsigned queue_depth;
  uint64_t hot_size;
  uint64_t size;       /* tracked region; 0: the default */
  uint32_t max_length; /* longest request */
  uint32_t align;      /* offsets and lengths are multiples (1: any) */
  unsigned weight[OP_NR];
  uint64_t seed;
  double seconds; /* 0: no time limit */
  uint64_t ops;   /* 0: no operation limit */
  const char *log_path;
  const char *verify_log;
  const char *recording; /* with verify_log: the power-cut check */
  bool fail_on_error;
  unsigned max_reports; /* failures described in full */
  bool progress;        /* progress line on stderr */
};

/* Drive the server at OPT->uri and check every read. */
int torture_run (const struct options *opt);

/* Check the disk at OPT->uri against the log OPT->verify_log. */
int torture_verify (const struct options *opt);

/* Check the log OPT->verify_log against the power-cut recording
 * OPT->recording (tests/powercut-recorder.c): at every FUA reply and every
 * flush reply, the writes the reply made durable must be on the disk a
 * power cut at that moment would leave. */
int torture_check_recording (const struct options *opt);

#endif /* BLKCACHE_TORTURE_H */
