/* blkcache-torture: the operation stream.
 *
 * A workload draws operations from a seeded generator: the kind by the
 * weights of the mix, then an offset and a length.  Most offsets fall in
 * the hot region [0, hot) so that requests collide; the rest anywhere in
 * the tracked region [0, size).  Lengths run from 1 byte to max_length:
 * a quarter tiny (up to 512 bytes), a quarter 4 KiB-aligned, some
 * 512-aligned, the rest arbitrary.  The stream depends only on the seed,
 * the mix and the sizes, never on timing.
 */
#ifndef BLKCACHE_WORKLOAD_H
#define BLKCACHE_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "oracle.h"
#include "random.h"

enum op_kind
{
  OP_READ,
  OP_WRITE,
  OP_FUA,
  OP_ZERO,
  OP_ZERO_FUA,
  OP_TRIM,
  OP_FLUSH,
  OP_CACHE,
  OP_STATUS,
  OP_NR
};

/* The mix used when --mix is not given. */
#define WORKLOAD_DEFAULT_MIX                                                   \
  "read=40,write=25,fua=10,zero=5,zero-fua=2,trim=3,flush=3,cache=2,status=5"

struct op
{
  enum op_kind kind;
  uint64_t offset;
  uint32_t length; /* 0 for a flush */
};

struct workload
{
  struct random rng;
  unsigned weight[OP_NR];
  uint64_t size;       /* tracked region [0, size) */
  uint64_t hot;        /* hot region [0, hot), hot <= size */
  uint32_t max_length; /* longest request */
  uint32_t align;      /* server's minimum block size (1: none) */
};

/* The name of KIND as --mix and the log spell it ("zero-fua"). */
const char *op_name (enum op_kind kind);

/* The kind called NAME, or -EINVAL. */
int op_from_name (const char *name);

/* Whether KIND writes the disk (write, fua, zero, zero-fua, trim). */
bool op_is_write (enum op_kind kind);

/* What the write kind KIND leaves in the bytes it covers, as the oracle
 * tracks it: data for a write or FUA write, zeroes for a write-zeroes
 * (with or without FUA), anything for a trim. */
enum oracle_kind op_oracle_kind (enum op_kind kind);

/* Parse SPEC ("read=40,write=25,...") into WEIGHT; kinds not named get 0.
 * Returns 0, or -EINVAL for an unknown name, a bad number, or all-zero
 * weights. */
int workload_parse_mix (const char *spec, unsigned weight[OP_NR]);

/* Start W's stream.  SIZE >= HOT > 0, MAX_LENGTH >= ALIGN >= 1, and the
 * weights already set.  Returns 0, or -EINVAL when every weight is 0. */
int workload_init (struct workload *w, uint64_t seed);

/* Draw the next operation. */
void workload_next (struct workload *w, struct op *op);

#endif /* BLKCACHE_WORKLOAD_H */
