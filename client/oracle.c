/* blkcache-torture: the oracle that decides whether a read is stale.
 *
 * Layout.  The region is cut into fixed cells of ORACLE_CELL bytes.  Each
 * cell holds an unsorted vector of entries (start, end, write): "write is a
 * candidate for every byte of [start, end)", with the range inside the
 * cell.  Every byte of the region is covered by at least one entry, and
 * two entries of one write never overlap.  A write of L bytes adds one
 * entry to each of the L / ORACLE_CELL + 2 cells it touches.
 *
 * Pruning.  Entry E (write W) loses the bytes it shares with entry E2
 * (write W2) when W2 definitely overwrote W for every read still to be
 * checked: W2 is effective, was issued after W replied, and replied before
 * the low watermark.  E is shrunk, split in two, or removed; E2 stays, so
 * every byte keeps a candidate.  This is O(k^2) in the k entries of a
 * cell, and k stays small: the writes in flight over the cell plus the
 * fragments that no later write covered whole.
 *
 * Checking.  A read's range inside one cell is cut at every entry edge
 * into elementary intervals, where every entry covers all or none of the
 * interval; the allowed candidates are computed once per interval.  The
 * bytes are compared with the most recently issued candidate's expected
 * bytes (built a word at a time by pattern_fill) with one memcmp, and
 * only when that fails byte by byte with every candidate's.
 *
 * Costs: begin_write O(L / cell); end_write and checks O(L / cell * k^2)
 * plus O(L * allowed candidates) byte compares.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "oracle.h"
#include "pattern.h"

#define ORACLE_CELL_SHIFT 12
#define ORACLE_CELL (UINT64_C (1) << ORACLE_CELL_SHIFT)

struct entry
{
  uint64_t start, end;
  struct oracle_write *w;
};

struct cell
{
  struct entry *v;
  size_t n, cap;
};

/* A growable array of bytes or pointers used by the checks. */
struct scratch
{
  void *p;
  size_t cap;
};

struct oracle
{
  uint64_t size;
  size_t ncells;
  struct cell *cells;
  size_t nentries;
  struct scratch points;   /* interval edges of one cell */
  struct scratch cover;    /* entries covering one interval */
  struct scratch allowed;  /* allowed writes of one interval */
  struct scratch expected; /* their expected bytes, ORACLE_CELL each */
};

static int
scratch_reserve (struct scratch *s, size_t bytes)
{
  void *p;

  if (bytes <= s->cap)
    return 0;
  p = realloc (s->p, bytes);
  if (p == NULL)
    return -ENOMEM;
  s->p = p;
  s->cap = bytes;
  return 0;
}

struct oracle *
oracle_new (uint64_t size)
{
  struct oracle *o = calloc (1, sizeof *o);

  if (o == NULL)
    return NULL;
  o->size = size;
  o->ncells = (size + ORACLE_CELL - 1) >> ORACLE_CELL_SHIFT;
  o->cells = calloc (o->ncells ? o->ncells : 1, sizeof *o->cells);
  if (o->cells == NULL)
    {
      free (o);
      errno = ENOMEM;
      return NULL;
    }
  return o;
}

void
oracle_put_write (struct oracle_write *w)
{
  if (w != NULL && --w->refs == 0)
    free (w);
}

void
oracle_free (struct oracle *o)
{
  if (o == NULL)
    return;
  for (size_t i = 0; i < o->ncells; i++)
    {
      for (size_t j = 0; j < o->cells[i].n; j++)
        oracle_put_write (o->cells[i].v[j].w);
      free (o->cells[i].v);
    }
  free (o->cells);
  free (o->points.p);
  free (o->cover.p);
  free (o->allowed.p);
  free (o->expected.p);
  free (o);
}

size_t
oracle_entries (const struct oracle *o)
{
  return o->nentries;
}

static int
cell_append (struct oracle *o, struct cell *c, uint64_t start, uint64_t end,
             struct oracle_write *w)
{
  if (c->n == c->cap)
    {
      size_t cap = c->cap ? c->cap * 2 : 4;
      struct entry *v = realloc (c->v, cap * sizeof *v);

      if (v == NULL)
        return -ENOMEM;
      c->v = v;
      c->cap = cap;
    }
  c->v[c->n++] = (struct entry){ start, end, w };
  w->refs++;
  o->nentries++;
  return 0;
}

static void
cell_remove (struct oracle *o, struct cell *c, size_t i)
{
  oracle_put_write (c->v[i].w);
  c->v[i] = c->v[--c->n];
  o->nentries--;
}

static uint64_t
min_u64 (uint64_t a, uint64_t b)
{
  return a < b ? a : b;
}

static uint64_t
max_u64 (uint64_t a, uint64_t b)
{
  return a > b ? a : b;
}

/* Call FN on every cell that [OFFSET, OFFSET + LEN) touches, with the part
 * [start, end) of the range inside it; stop at the first negative return
 * and return it. */
typedef int (*cell_fn) (struct oracle *o, struct cell *c, uint64_t start,
                        uint64_t end, void *arg);

static int
for_each_cell (struct oracle *o, uint64_t offset, uint64_t len, cell_fn fn,
               void *arg)
{
  uint64_t first = offset >> ORACLE_CELL_SHIFT;
  uint64_t last = (offset + len - 1) >> ORACLE_CELL_SHIFT;

  for (uint64_t i = first; len > 0 && i <= last; i++)
    {
      uint64_t start = max_u64 (offset, i << ORACLE_CELL_SHIFT);
      uint64_t end = min_u64 (offset + len, (i + 1) << ORACLE_CELL_SHIFT);
      int r = fn (o, &o->cells[i], start, end, arg);

      if (r < 0)
        return r;
    }
  return 0;
}

static int
add_entry (struct oracle *o, struct cell *c, uint64_t start, uint64_t end,
           void *w)
{
  return cell_append (o, c, start, end, w);
}

struct oracle_write *
oracle_begin_write (struct oracle *o, uint64_t id, enum oracle_kind kind,
                    uint64_t offset, uint64_t length, uint64_t issue)
{
  struct oracle_write *w;

  if (length == 0 || offset > o->size || length > o->size - offset)
    {
      errno = EINVAL;
      return NULL;
    }
  w = calloc (1, sizeof *w);
  if (w == NULL)
    return NULL;
  *w = (struct oracle_write){ .id = id,
                              .kind = kind,
                              .offset = offset,
                              .length = length,
                              .issue = issue,
                              .reply = ORACLE_NEVER,
                              .refs = 1 };
  if (for_each_cell (o, offset, length, add_entry, w) < 0)
    {
      oracle_put_write (w);
      errno = ENOMEM;
      return NULL;
    }
  return w;
}

/* Whether W2 definitely overwrote W for a read issued at stamp BEFORE. */
static bool
overwrites (const struct oracle_write *w2, const struct oracle_write *w,
            uint64_t before)
{
  return w2 != w && w2->effective && w->reply != ORACLE_NEVER
         && w2->issue > w->reply && w2->reply < before;
}

/* Remove from entry I the bytes that entry J covers.  Returns 1 when the
 * cell changed, 0 when they do not overlap, or -ENOMEM. */
static int
cell_subtract (struct oracle *o, struct cell *c, size_t i, size_t j)
{
  struct entry e = c->v[i], e2 = c->v[j];

  if (e2.end <= e.start || e.end <= e2.start)
    return 0;
  if (e2.start <= e.start && e2.end >= e.end)
    cell_remove (o, c, i);
  else if (e2.start <= e.start)
    c->v[i].start = e2.end;
  else if (e2.end >= e.end)
    c->v[i].end = e2.start;
  else
    {
      c->v[i].end = e2.start;
      if (cell_append (o, c, e2.end, e.end, e.w) < 0)
        return -ENOMEM;
    }
  return 1;
}

/* Remove from the entries of C every byte that an entry of a write that
 * definitely overwrote them covers.  One pass suffices: an entry found
 * unprunable stays so, as later steps only shrink other entries.  Returns
 * 0 or -ENOMEM. */
static int
cell_prune (struct oracle *o, struct cell *c, uint64_t low_watermark)
{
  size_t i = 0;

  while (i < c->n)
    {
      int r = 0;

      for (size_t j = 0; j < c->n && r == 0; j++)
        if (overwrites (c->v[j].w, c->v[i].w, low_watermark))
          r = cell_subtract (o, c, i, j);
      if (r < 0)
        return r;
      if (r == 0)
        i++;
    }
  return 0;
}

static int
prune_cell (struct oracle *o, struct cell *c, uint64_t start, uint64_t end,
            void *low_watermark)
{
  return cell_prune (o, c, *(uint64_t *)low_watermark);
}

static int
prune_range (struct oracle *o, uint64_t offset, uint64_t length,
             uint64_t low_watermark)
{
  return for_each_cell (o, offset, length, prune_cell, &low_watermark);
}

int
oracle_settle (struct oracle *o, struct oracle_write *w, uint64_t low_watermark)
{
  w->effective = true;
  return prune_range (o, w->offset, w->length, low_watermark);
}

int
oracle_end_write (struct oracle *o, struct oracle_write *w, uint64_t reply,
                  bool effective, uint64_t low_watermark)
{
  w->reply = reply;
  if (!effective)
    return 0;
  return oracle_settle (o, w, low_watermark);
}

int
oracle_prune (struct oracle *o, uint64_t low_watermark)
{
  for (size_t i = 0; i < o->ncells; i++)
    if (cell_prune (o, &o->cells[i], low_watermark) < 0)
      return -ENOMEM;
  return 0;
}

/* The check of one read or zero claim, threaded through the helpers. */
struct check
{
  uint64_t offset;    /* of the read */
  const uint8_t *buf; /* NULL for a zero claim */
  uint64_t issue, reply;
  struct oracle_failure *f;
  uint64_t bad;
};

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

  return x < y ? -1 : x > y;
}

/* Sorted, distinct interval edges of [START, END) in cell C.  Returns the
 * number of edges or -ENOMEM. */
static ssize_t
cell_edges (struct oracle *o, const struct cell *c, uint64_t start,
            uint64_t end)
{
  uint64_t *p;
  size_t n = 0, k = 0;

  if (scratch_reserve (&o->points, (2 * c->n + 2) * sizeof *p) < 0)
    return -ENOMEM;
  p = o->points.p;
  p[n++] = start;
  p[n++] = end;
  for (size_t i = 0; i < c->n; i++)
    {
      if (c->v[i].start > start && c->v[i].start < end)
        p[n++] = c->v[i].start;
      if (c->v[i].end > start && c->v[i].end < end)
        p[n++] = c->v[i].end;
    }
  qsort (p, n, sizeof *p, cmp_u64);
  for (size_t i = 0; i < n; i++)
    if (k == 0 || p[k - 1] != p[i])
      p[k++] = p[i];
  return (ssize_t)k;
}

/* Entries of C covering [P, Q), into o->cover.  Returns their number. */
static ssize_t
cell_cover (struct oracle *o, const struct cell *c, uint64_t p, uint64_t q)
{
  const struct entry **v;
  size_t n = 0;

  if (scratch_reserve (&o->cover, c->n * sizeof *v + 1) < 0)
    return -ENOMEM;
  v = o->cover.p;
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].start <= p && c->v[i].end >= q)
      v[n++] = &c->v[i];
  return (ssize_t)n;
}

/* Whether W may be read by the read of K, given the N covering entries. */
static bool
allowed (const struct oracle_write *w, const struct entry **cover, size_t n,
         const struct check *k, const struct oracle_write **by)
{
  *by = NULL;
  if (w->issue >= k->reply)
    return false;
  for (size_t i = 0; i < n; i++)
    if (overwrites (cover[i]->w, w, k->issue))
      {
        *by = cover[i]->w;
        return false;
      }
  return true;
}

static uint8_t
expected_byte (const struct oracle_write *w, uint64_t offset)
{
  return w->kind == ORACLE_DATA ? pattern_byte (w->id, offset) : 0;
}

/* Describe the candidates of the first bad byte at OFFSET in K's report. */
static void
describe (struct check *k, const struct entry **cover, size_t n,
          uint64_t offset, uint8_t value)
{
  struct oracle_failure *f = k->f;

  f->first_bad = offset;
  f->value = value;
  f->ncandidates = 0;
  for (size_t i = 0; i < n && f->ncandidates < ORACLE_REPORT_MAX; i++)
    {
      struct oracle_candidate *cand = &f->candidates[f->ncandidates++];
      const struct oracle_write *w = cover[i]->w, *by;

      memset (cand, 0, sizeof *cand);
      cand->write = *w;
      cand->expected = expected_byte (w, offset);
      cand->allowed = allowed (w, cover, n, k, &by);
      cand->issued_late = w->issue >= k->reply;
      cand->overwritten = by != NULL;
      cand->overwritten_by = by ? by->id : 0;
    }
}

static void
record_bad (struct check *k, const struct entry **cover, size_t n,
            uint64_t offset, uint8_t value)
{
  if (k->f != NULL)
    {
      if (k->bad == 0)
        describe (k, cover, n, offset, value);
      k->f->last_bad = offset;
    }
  k->bad++;
}

/* Whether BYTE at OFFSET matches one of the N allowed writes, whose
 * expected bytes for the interval starting at P are in EXP. */
static bool
byte_ok (size_t n, const uint8_t *exp, uint64_t p, uint64_t offset,
         uint8_t byte)
{
  for (size_t i = 0; i < n; i++)
    if (exp[i * ORACLE_CELL + (offset - p)] == byte)
      return true;
  return false;
}

/* Whether one of the N allowed writes is a KIND. */
static bool
any_of_kind (const struct oracle_write **ok, size_t n, enum oracle_kind kind)
{
  for (size_t i = 0; i < n; i++)
    if (ok[i]->kind == kind)
      return true;
  return false;
}

/* Allowed writes of interval [P, Q) into o->allowed, the most recently
 * issued first, as it is the likeliest to match.  Returns their number
 * or -ENOMEM. */
static ssize_t
interval_allowed (struct oracle *o, struct check *k, const struct entry **cover,
                  size_t n)
{
  const struct oracle_write **ok, *by;
  size_t m = 0;

  if (scratch_reserve (&o->allowed, n * sizeof *ok + 1) < 0)
    return -ENOMEM;
  ok = o->allowed.p;
  for (size_t i = 0; i < n; i++)
    {
      const struct oracle_write *w = cover[i]->w;

      if (!allowed (w, cover, n, k, &by))
        continue;
      ok[m++] = w;
      if (ok[m - 1]->issue > ok[0]->issue)
        {
          ok[m - 1] = ok[0];
          ok[0] = w;
        }
    }
  return (ssize_t)m;
}

/* The expected bytes of allowed writes [FIRST, N) over [P, Q) into
 * o->expected, ORACLE_CELL bytes apart.  Returns 0 or -ENOMEM. */
static int
fill_expected (struct oracle *o, const struct oracle_write **ok, size_t first,
               size_t n, uint64_t p, uint64_t q)
{
  if (scratch_reserve (&o->expected, n * ORACLE_CELL + 1) < 0)
    return -ENOMEM;
  for (size_t i = first; i < n; i++)
    {
      uint8_t *exp = (uint8_t *)o->expected.p + i * ORACLE_CELL;

      if (ok[i]->kind == ORACLE_DATA)
        pattern_fill (ok[i]->id, p, exp, q - p);
      else
        memset (exp, 0, q - p);
    }
  return 0;
}

/* Compare the bytes read over [P, Q) with the M allowed writes: the first
 * one at once, the others only when that one does not match. */
static int
compare_bytes (struct oracle *o, struct check *k, const struct entry **cover,
               size_t n, size_t m, uint64_t p, uint64_t q)
{
  const struct oracle_write **ok = o->allowed.p;
  const uint8_t *read = k->buf + (p - k->offset);

  if (m > 0)
    {
      if (fill_expected (o, ok, 0, 1, p, q) < 0)
        return -ENOMEM;
      if (memcmp (o->expected.p, read, q - p) == 0)
        return 0;
      if (fill_expected (o, ok, 1, m, p, q) < 0)
        return -ENOMEM;
    }
  for (uint64_t off = p; off < q; off++)
    if (!byte_ok (m, o->expected.p, p, off, read[off - p]))
      record_bad (k, cover, n, off, read[off - p]);
  return 0;
}

static int
check_interval (struct oracle *o, struct check *k, const struct cell *c,
                uint64_t p, uint64_t q)
{
  ssize_t n = cell_cover (o, c, p, q), m;
  const struct entry **cover = o->cover.p;
  const struct oracle_write **ok;

  if (n < 0)
    return -ENOMEM;
  m = interval_allowed (o, k, cover, n);
  if (m < 0)
    return -ENOMEM;
  ok = o->allowed.p;
  if (any_of_kind (ok, m, ORACLE_TRIM))
    return 0;
  if (k->buf != NULL)
    return compare_bytes (o, k, cover, n, m, p, q);
  if (!any_of_kind (ok, m, ORACLE_ZERO))
    for (uint64_t off = p; off < q; off++)
      record_bad (k, cover, n, off, 0);
  return 0;
}

static int
check_cell (struct oracle *o, struct cell *c, uint64_t start, uint64_t end,
            void *check)
{
  ssize_t n = cell_edges (o, c, start, end);

  if (n < 0)
    return -ENOMEM;
  for (ssize_t i = 0; i + 1 < n; i++)
    {
      const uint64_t *edge = o->points.p;

      if (check_interval (o, check, c, edge[i], edge[i + 1]) < 0)
        return -ENOMEM;
    }
  return 0;
}

static int64_t
check_range (struct oracle *o, struct check *k, uint64_t len)
{
  int r;

  if (k->offset > o->size || len > o->size - k->offset)
    return -EINVAL;
  if (k->f != NULL)
    memset (k->f, 0, sizeof *k->f);
  r = for_each_cell (o, k->offset, len, check_cell, k);
  if (r < 0)
    return r;
  if (k->f != NULL)
    k->f->bad_bytes = k->bad;
  return (int64_t)k->bad;
}

int64_t
oracle_check_read (struct oracle *o, uint64_t offset, const void *buf,
                   size_t len, uint64_t issue, uint64_t reply,
                   struct oracle_failure *f)
{
  struct check k = {
    .offset = offset, .buf = buf, .issue = issue, .reply = reply, .f = f
  };

  return check_range (o, &k, len);
}

int64_t
oracle_check_zero (struct oracle *o, uint64_t offset, uint64_t len,
                   uint64_t issue, uint64_t reply, struct oracle_failure *f)
{
  struct check k = { .offset = offset, .issue = issue, .reply = reply, .f = f };

  return check_range (o, &k, len);
}
