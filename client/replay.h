/* blkcache-torture: a durability log replayed into an oracle.
 *
 * The crash check (verify.c) and the power-cut check (powercut.c) both
 * read a --log file back into an oracle in which a write is effective
 * only once it was made durable (a D line), so that the oracle's rule
 * reads "a byte may hold write W unless a write made durable was issued
 * after W replied".  replay_file walks the log and hands every event to
 * the caller, which handles it with the replay_* steps below and adds its
 * own work around them.  Writes not durable yet are indexed by id (ids
 * are dense, from 0, so a growable array).
 */
#ifndef BLKCACHE_REPLAY_H
#define BLKCACHE_REPLAY_H

#include <stdint.h>

#include "oplog.h"
#include "oracle.h"

struct replay
{
  struct oracle *oracle;      /* made by the REGION line */
  uint64_t size;              /* the tracked region */
  struct oracle_write **byid; /* issued writes not durable yet */
  size_t cap;
  uint64_t writes, durable;
};

/* What replay_file calls for every event E of the log, with ARG.  Returns
 * 0, or a negative errno that stops the replay. */
typedef int (*replay_event_fn) (void *arg, const struct oplog_event *e);

/* Replay the log PATH into RP, calling EVENT for each event; prune the
 * oracle as it goes and at the end.  Returns 0, or a negative errno after
 * printing the line it stopped at (-EINVAL: a malformed log). */
int replay_file (struct replay *rp, const char *path, replay_event_fn event,
                 void *arg);

/* The REGION line: make RP's oracle. */
int replay_region (struct replay *rp, const struct oplog_event *e);

/* An I line: write E->id enters the oracle, not effective. */
int replay_issue (struct replay *rp, const struct oplog_event *e);

/* An R line: the reply of a write, still not effective. */
int replay_reply (struct replay *rp, const struct oplog_event *e);

/* A D line: the write is made durable, settled in the oracle and
 * forgotten.  When SETTLED is not NULL it gets a copy of the write. */
int replay_durable (struct replay *rp, const struct oplog_event *e,
                    struct oracle_write *settled);

/* The write ID issued and not durable yet, or NULL. */
struct oracle_write *replay_lookup (const struct replay *rp, uint64_t id);

/* Free what RP holds. */
void replay_free (struct replay *rp);

#endif /* BLKCACHE_REPLAY_H */
