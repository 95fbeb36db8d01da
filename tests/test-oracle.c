/* blkcache: tests for client/oracle.c and client/pattern.c.
 *
 * Each test plays a small history of writes, zeroes and trims on a fresh
 * oracle over a 64 KiB region (16 cells), stamping events by hand with a
 * counter, and checks reads built from the patterns of chosen writes:
 * what the regular-register rule allows must pass, what it forbids must be
 * counted byte for byte and described.  Write 0 is the initial content,
 * issued at stamp 1 and replied at stamp 2, as the torture tool does.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "oracle.h"
#include "pattern.h"

#define REGION (64 * 1024)

static struct oracle *o;
static uint64_t clk;
static uint8_t buf[REGION];

/* Writes the test still holds a reference to, released at the end. */
static struct oracle_write *held[64];
static size_t nheld;

static struct oracle_write *
issue (uint64_t id, enum oracle_kind kind, uint64_t offset, uint64_t len)
{
  struct oracle_write *w = oracle_begin_write (o, id, kind, offset, len, ++clk);

  cr_assert_not_null (w);
  cr_assert_lt (nheld, 64);
  held[nheld++] = w;
  return w;
}

/* Reply to W (successfully when OK) while the oldest read in flight was
 * issued at LOW. */
static void
reply_low (struct oracle_write *w, bool ok, uint64_t low)
{
  cr_assert_eq (oracle_end_write (o, w, ++clk, ok, low), 0);
}

static void
reply (struct oracle_write *w, bool ok)
{
  reply_low (w, ok, ORACLE_NEVER);
}

static void
setup (void)
{
  o = oracle_new (REGION);
  cr_assert_not_null (o);
  clk = 0;
  nheld = 0;
  reply (issue (0, ORACLE_DATA, 0, REGION), true);
}

static void
teardown (void)
{
  for (size_t i = 0; i < nheld; i++)
    oracle_put_write (held[i]);
  oracle_free (o);
}

TestSuite (oracle, .init = setup, .fini = teardown, .timeout = 60);

/* Put write ID's bytes into buf over [OFFSET, OFFSET + LEN). */
static void
as_write (uint64_t id, uint64_t offset, uint64_t len)
{
  pattern_fill (id, offset, buf + offset, len);
}

/* Bytes of buf in [OFFSET, OFFSET + LEN) unlike the patterns of both
 * write A and write B (pass A twice for one write): what a check allowing
 * only those writes must count, as two patterns agree on about one byte
 * in 255. */
static int64_t
unlike (uint64_t a, uint64_t b, uint64_t offset, uint64_t len)
{
  int64_t n = 0;

  for (uint64_t off = offset; off < offset + len; off++)
    n += buf[off] != pattern_byte (a, off) && buf[off] != pattern_byte (b, off);
  return n;
}

/* Bad bytes of a read of [OFFSET, OFFSET + LEN) holding buf, issued at
 * ISSUE and replied at REPLY. */
static int64_t
check (uint64_t offset, uint64_t len, uint64_t issue_stamp,
       uint64_t reply_stamp, struct oracle_failure *f)
{
  return oracle_check_read (o, offset, buf + offset, len, issue_stamp,
                            reply_stamp, f);
}

/* Bad bytes of a read issued and replied now. */
static int64_t
check_now (uint64_t offset, uint64_t len)
{
  uint64_t i = ++clk;

  return check (offset, len, i, ++clk, NULL);
}

Test (oracle, pattern_is_nonzero_and_consistent)
{
  static uint8_t p[4099];

  for (uint64_t id = 0; id < 50; id++)
    {
      pattern_fill (id, 12345 + id, p, sizeof p);
      for (size_t i = 0; i < sizeof p; i++)
        {
          cr_assert_neq (p[i], 0);
          cr_assert_eq (p[i], pattern_byte (id, 12345 + id + i));
        }
    }
  pattern_fill (48, 12345 + 49, buf, sizeof p);
  cr_assert_neq (memcmp (p, buf, sizeof p), 0);
}

Test (oracle, initial_content)
{
  as_write (0, 0, REGION);
  cr_assert_eq (check_now (0, REGION), 0);
  as_write (1, 100, 50);
  cr_assert_geq (check_now (0, REGION), 45);
}

Test (oracle, definitely_overwritten_value_rejected)
{
  struct oracle_failure f;
  uint64_t read_issue;
  struct oracle_write *w1 = issue (1, ORACLE_DATA, 1000, 3000);

  reply (w1, true);
  read_issue = ++clk;
  as_write (0, 0, REGION);
  cr_assert_eq (check (0, REGION, read_issue, ++clk, &f),
                unlike (1, 1, 1000, 3000));
  cr_assert_geq (f.first_bad, 1000);
  cr_assert_leq (f.last_bad, 3999);
  cr_assert_eq (f.value, pattern_byte (0, f.first_bad));
  as_write (1, 1000, 3000);
  cr_assert_eq (check_now (0, REGION), 0);
}

Test (oracle, overwritten_candidate_is_described)
{
  struct oracle_failure f;
  uint64_t old_read = ++clk; /* a read in flight keeps write 0 */
  struct oracle_write *w1 = issue (1, ORACLE_DATA, 0, 4096);
  uint64_t read_issue;
  bool saw0 = false, saw1 = false;

  reply_low (w1, true, old_read);
  read_issue = ++clk;
  as_write (0, 0, 4096);
  cr_assert_eq (check (0, 4096, read_issue, ++clk, &f), unlike (1, 1, 0, 4096));
  for (size_t i = 0; i < f.ncandidates; i++)
    {
      const struct oracle_candidate *c = &f.candidates[i];

      if (c->write.id == 0)
        {
          saw0 = true;
          cr_assert (!c->allowed);
          cr_assert (c->overwritten);
          cr_assert_eq (c->overwritten_by, 1);
          cr_assert_eq (c->expected, pattern_byte (0, f.first_bad));
        }
      if (c->write.id == 1)
        {
          saw1 = true;
          cr_assert (c->allowed);
          cr_assert_eq (c->expected, pattern_byte (1, f.first_bad));
        }
    }
  cr_assert (saw0 && saw1);
  /* The read that was in flight may still return write 0. */
  cr_assert_eq (check (0, 4096, old_read, ++clk, NULL), 0);
}

Test (oracle, concurrent_writes_land_in_either_order)
{
  struct oracle_write *w1 = issue (1, ORACLE_DATA, 0, 8192);
  struct oracle_write *w2 = issue (2, ORACLE_DATA, 4096, 8192);

  reply (w1, true);
  reply (w2, true);
  as_write (1, 0, 8192);
  as_write (2, 4096, 8192);
  cr_assert_eq (check_now (0, 12288), 0);
  as_write (1, 0, 8192);
  cr_assert_eq (check_now (0, 12288), 0);
  /* Byte by byte mixed, too: the rule is per byte. */
  for (uint64_t off = 4096; off < 8192; off += 2)
    buf[off] = pattern_byte (2, off);
  cr_assert_eq (check_now (0, 12288), 0);
  /* But not write 0 any more. */
  as_write (0, 5000, 10);
  cr_assert_eq (check_now (0, 12288), unlike (1, 2, 5000, 10));
}

Test (oracle, in_flight_write_allows_old_and_new)
{
  struct oracle_write *w1 = issue (1, ORACLE_DATA, 100, 200);

  as_write (0, 0, REGION);
  cr_assert_eq (check_now (0, REGION), 0);
  as_write (1, 100, 200);
  cr_assert_eq (check_now (0, REGION), 0);
  reply (w1, true);
  cr_assert_eq (check_now (0, REGION), 0);
  as_write (0, 150, 1);
  cr_assert_eq (check_now (0, REGION), 1);
}

Test (oracle, write_replied_after_read_issue_allows_old)
{
  uint64_t read_issue = ++clk;
  struct oracle_write *w1 = issue (1, ORACLE_DATA, 0, 512);

  reply_low (w1, true, read_issue);
  as_write (0, 0, 512);
  cr_assert_eq (check (0, 512, read_issue, ++clk, NULL), 0);
  as_write (1, 0, 512);
  cr_assert_eq (check (0, 512, read_issue, ++clk, NULL), 0);
}

Test (oracle, write_issued_after_read_reply_rejected)
{
  uint64_t read_issue = ++clk, read_reply = ++clk;
  struct oracle_failure f;

  issue (1, ORACLE_DATA, 0, 512);
  as_write (1, 0, 512);
  cr_assert_eq (check (0, 512, read_issue, read_reply, &f),
                unlike (0, 0, 0, 512));
  cr_assert_eq (f.ncandidates, 2);
  for (size_t i = 0; i < f.ncandidates; i++)
    if (f.candidates[i].write.id == 1)
      cr_assert (f.candidates[i].issued_late);
}

Test (oracle, failed_write_overwrites_nothing)
{
  struct oracle_write *w1 = issue (1, ORACLE_DATA, 0, 1024);

  reply (w1, false);
  as_write (0, 0, 1024);
  cr_assert_eq (check_now (0, 1024), 0);
  as_write (1, 0, 1024);
  cr_assert_eq (check_now (0, 1024), 0);
}

Test (oracle, trim_allows_any_value_until_overwritten)
{
  struct oracle_write *t = issue (1, ORACLE_TRIM, 2000, 5000);
  struct oracle_write *w;

  reply (t, true);
  /* Garbage that matches neither write 0 nor write 2 below. */
  for (uint64_t off = 2000; off < 7000; off++)
    buf[off] = pattern_byte (2, off) ^ 0xff;
  as_write (0, 0, 2000);
  as_write (0, 7000, REGION - 7000);
  cr_assert_eq (check_now (0, REGION), 0);
  w = issue (2, ORACLE_DATA, 3000, 1000);
  reply (w, true);
  cr_assert_eq (check_now (0, REGION), 1000);
  as_write (2, 3000, 1000);
  cr_assert_eq (check_now (0, REGION), 0);
}

Test (oracle, overlapping_in_flight_trim_and_write)
{
  struct oracle_write *t = issue (1, ORACLE_TRIM, 0, 6000);
  struct oracle_write *w = issue (2, ORACLE_DATA, 4000, 4000);

  memset (buf, 0x11, 6000);
  as_write (2, 6000, 2000);
  cr_assert_eq (check_now (0, 8000), 0);
  as_write (0, 6000, 2000);
  cr_assert_eq (check_now (0, 8000), 0);
  reply (w, true);
  reply (t, true);
  /* Write 2 and the trim overlapped: garbage still allowed in [0, 6000),
   * but [6000, 8000) now holds write 2 only. */
  cr_assert_eq (check_now (0, 8000), unlike (2, 2, 6000, 2000));
  as_write (2, 6000, 2000);
  cr_assert_eq (check_now (0, 8000), 0);
}

Test (oracle, zero_reads_as_zero_and_block_status)
{
  struct oracle_write *z = issue (1, ORACLE_ZERO, 8192, 8192);
  struct oracle_write *t = issue (2, ORACLE_TRIM, 20000, 1000);
  uint64_t i;

  reply (z, true);
  reply (t, true);
  memset (buf + 8192, 0, 8192);
  cr_assert_eq (check_now (8192, 8192), 0);
  as_write (0, 8192, 8192);
  cr_assert_eq (check_now (8192, 8192), 8192); /* patterns are never 0 */
  i = ++clk;
  cr_assert_eq (oracle_check_zero (o, 8192, 8192, i, ++clk, NULL), 0);
  cr_assert_eq (oracle_check_zero (o, 20000, 1000, i, ++clk, NULL), 0);
  cr_assert_eq (oracle_check_zero (o, 0, 8192, i, ++clk, NULL), 8192);
  cr_assert_eq (oracle_check_zero (o, 8000, 8392, i, ++clk, NULL), 192 + 8);
}

Test (oracle, zero_claim_allowed_while_zero_in_flight)
{
  struct oracle_write *z = issue (1, ORACLE_ZERO, 0, 4096);
  uint64_t i = ++clk;

  cr_assert_eq (oracle_check_zero (o, 0, 4096, i, ++clk, NULL), 0);
  reply (z, true);
  issue (2, ORACLE_DATA, 0, 4096);
  i = ++clk;
  cr_assert_eq (oracle_check_zero (o, 0, 4096, i, ++clk, NULL), 0);
}

Test (oracle, unaligned_write_across_cells)
{
  struct oracle_write *w = issue (1, ORACLE_DATA, 4000, 300);

  reply (w, true);
  as_write (0, 3990, 320);
  as_write (1, 4000, 300);
  cr_assert_eq (check_now (3990, 320), 0);
  as_write (0, 3990, 320);
  cr_assert_eq (check_now (3990, 320), unlike (1, 1, 4000, 300));
}

Test (oracle, pruning_bounds_entries)
{
  size_t before = oracle_entries (o);

  for (uint64_t id = 1; id <= 40; id++)
    {
      struct oracle_write *w
          = issue (id, ORACLE_DATA, (id * 777) % 4096, REGION - 4096);

      reply (w, true);
    }
  cr_assert_eq (oracle_prune (o, ORACLE_NEVER), 0);
  /* At most a few fragments per cell survive. */
  cr_assert_leq (oracle_entries (o), before * 3);
}

Test (oracle, durability_rule)
{
  /* Crash check: effective means durable; checks use ORACLE_NEVER. */
  struct oracle_write *w1 = issue (1, ORACLE_DATA, 0, 1024);
  struct oracle_write *w2, *w3;

  memset (buf, 0, sizeof buf);
  reply (w1, false); /* replied, never made durable */
  w2 = issue (2, ORACLE_DATA, 512, 1024);
  reply (w2, false);
  cr_assert_eq (oracle_settle (o, w2, ORACLE_NEVER), 0); /* a flush */
  w3 = issue (3, ORACLE_DATA, 0, 2048);
  (void)w3; /* issued, never replied */
  as_write (1, 0, 512);
  as_write (2, 512, 1024);
  cr_assert_eq (check (0, 2048, ORACLE_NEVER, ORACLE_NEVER, NULL), 512);
  as_write (1, 0, 512);
  as_write (2, 512, 1024);
  as_write (0, 1536, 512);
  cr_assert_eq (check (0, 2048, ORACLE_NEVER, ORACLE_NEVER, NULL), 0);
  /* Write 1 lost to durable write 2 over [512, 1024). */
  as_write (1, 512, 512);
  cr_assert_eq (check (0, 2048, ORACLE_NEVER, ORACLE_NEVER, NULL),
                unlike (2, 3, 512, 512));
  /* Write 3 may or may not have landed, anywhere. */
  as_write (3, 0, 2048);
  cr_assert_eq (check (0, 2048, ORACLE_NEVER, ORACLE_NEVER, NULL), 0);
}
