/* blkcache-torture: the operation stream.
 *
 * workload_next consumes the same number of random draws for a given
 * sequence of outcomes, so one seed gives one stream.  Lengths and offsets
 * are rounded to the server's minimum block size when it has one, and a
 * request never crosses the end of the tracked region.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

static const char *const names[OP_NR] = {
  [OP_READ] = "read",   [OP_WRITE] = "write",       [OP_FUA] = "fua",
  [OP_ZERO] = "zero",   [OP_ZERO_FUA] = "zero-fua", [OP_TRIM] = "trim",
  [OP_FLUSH] = "flush", [OP_CACHE] = "cache",       [OP_STATUS] = "status",
};

/* Percent of requests that start in the hot region. */
#define HOT_PERCENT 90

const char *
op_name (enum op_kind kind)
{
  return kind < OP_NR ? names[kind] : "?";
}

int
op_from_name (const char *name)
{
  for (int i = 0; i < OP_NR; i++)
    if (strcmp (names[i], name) == 0)
      return i;
  return -EINVAL;
}

bool
op_is_write (enum op_kind kind)
{
  return kind == OP_WRITE || kind == OP_FUA || kind == OP_ZERO
         || kind == OP_ZERO_FUA || kind == OP_TRIM;
}

enum oracle_kind
op_oracle_kind (enum op_kind kind)
{
  if (kind == OP_TRIM)
    return ORACLE_TRIM;
  if (kind == OP_ZERO || kind == OP_ZERO_FUA)
    return ORACLE_ZERO;
  return ORACLE_DATA;
}

/* Parse one "name=weight" item of length LEN. */
static int
parse_item (const char *item, size_t len, unsigned weight[OP_NR])
{
  char name[16], *end;
  const char *eq = memchr (item, '=', len);
  unsigned long value;
  int kind;

  if (eq == NULL || (size_t)(eq - item) >= sizeof name)
    return -EINVAL;
  memcpy (name, item, eq - item);
  name[eq - item] = '\0';
  kind = op_from_name (name);
  if (kind < 0 || eq + 1 == item + len)
    return -EINVAL;
  errno = 0;
  value = strtoul (eq + 1, &end, 10);
  if (errno != 0 || end != item + len || value > 1000000)
    return -EINVAL;
  weight[kind] = value;
  return 0;
}

int
workload_parse_mix (const char *spec, unsigned weight[OP_NR])
{
  unsigned total = 0;

  memset (weight, 0, OP_NR * sizeof *weight);
  while (*spec != '\0')
    {
      size_t len = strcspn (spec, ",");

      if (parse_item (spec, len, weight) < 0)
        return -EINVAL;
      spec += len;
      if (*spec == ',')
        spec++;
    }
  for (int i = 0; i < OP_NR; i++)
    total += weight[i];
  return total > 0 ? 0 : -EINVAL;
}

int
workload_init (struct workload *w, uint64_t seed)
{
  unsigned total = 0;

  for (int i = 0; i < OP_NR; i++)
    total += w->weight[i];
  if (total == 0)
    return -EINVAL;
  random_seed (&w->rng, seed);
  return 0;
}

static enum op_kind
draw_kind (struct workload *w)
{
  unsigned total = 0, pick;

  for (int i = 0; i < OP_NR; i++)
    total += w->weight[i];
  pick = random_below (&w->rng, total);
  for (int i = 0; i < OP_NR; i++)
    {
      if (pick < w->weight[i])
        return i;
      pick -= w->weight[i];
    }
  return OP_READ;
}

/* A length and the alignment its offset should have. */
static uint64_t
draw_length (struct workload *w, uint64_t *offset_align)
{
  unsigned shape = random_below (&w->rng, 100);
  uint64_t max = w->max_length;

  *offset_align = 1;
  if (shape < 25)
    return random_range (&w->rng, 1, max < 512 ? max : 512);
  if (shape < 50 && max >= 4096)
    {
      *offset_align = 4096;
      return 4096
             * random_range (&w->rng, 1, max / 4096 < 16 ? max / 4096 : 16);
    }
  if (shape < 65 && max >= 512)
    {
      *offset_align = 512;
      return 512 * random_range (&w->rng, 1, max / 512 < 128 ? max / 512 : 128);
    }
  if (shape < 90)
    return random_range (&w->rng, 1, max < 65536 ? max : 65536);
  return random_range (&w->rng, 1, max);
}

static uint64_t
round_up (uint64_t x, uint64_t a)
{
  return (x + a - 1) / a * a;
}

void
workload_next (struct workload *w, struct op *op)
{
  uint64_t align, length, area, offset;

  memset (op, 0, sizeof *op);
  op->kind = draw_kind (w);
  if (op->kind == OP_FLUSH)
    return;
  length = draw_length (w, &align);
  area = random_below (&w->rng, 100) < HOT_PERCENT ? w->hot : w->size;
  if (align < w->align)
    align = w->align;
  length = round_up (length, w->align);
  if (length > area)
    length = area / w->align * w->align;
  offset = random_below (&w->rng, area - length + 1);
  offset = offset / align * align;
  op->offset = offset;
  op->length = length;
}
