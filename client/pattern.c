/* blkcache-torture: the bytes a write carries.
 *
 * A disk offset o falls in the 8-byte word o / 8; the word's value is
 * mix (seed (id) ^ o / 8) with every zero byte replaced by a fixed non-zero
 * value, and byte o % 8 of it (little-endian order) is the pattern byte.
 * pattern_fill stores whole words, so filling a buffer costs one mix per
 * eight bytes.
 */
#include <config.h>

#include <endian.h>
#include <string.h>

#include "pattern.h"

/* The value a zero byte of the mix is replaced with. */
#define PATTERN_NONZERO 0xa5

/* A 64-bit finaliser: every input bit affects every output bit. */
static uint64_t
mix64 (uint64_t x)
{
  x ^= x >> 30;
  x *= UINT64_C (0xbf58476d1ce4e5b9);
  x ^= x >> 27;
  x *= UINT64_C (0x94d049bb133111eb);
  x ^= x >> 31;
  return x;
}

static uint64_t
id_seed (uint64_t id)
{
  return mix64 (id + UINT64_C (0x9e3779b97f4a7c15));
}

/* X with every zero byte replaced by PATTERN_NONZERO: T has 0x80 exactly
 * in the bytes of X that are zero. */
static uint64_t
nonzero_bytes (uint64_t x)
{
  const uint64_t low7 = UINT64_C (0x7f7f7f7f7f7f7f7f);
  uint64_t t = ~(((x & low7) + low7) | x | low7);

  return x | ((t >> 7) * PATTERN_NONZERO);
}

/* The pattern word holding disk bytes [8 * INDEX, 8 * INDEX + 8). */
static uint64_t
word_at (uint64_t seed, uint64_t index)
{
  return nonzero_bytes (mix64 (seed ^ index));
}

uint8_t
pattern_byte (uint64_t id, uint64_t offset)
{
  return word_at (id_seed (id), offset >> 3) >> (8 * (offset & 7));
}

void
pattern_fill (uint64_t id, uint64_t offset, void *buf, size_t len)
{
  uint8_t *p = buf;
  uint64_t seed = id_seed (id);

  for (; len > 0 && (offset & 7) != 0; len--, offset++)
    *p++ = word_at (seed, offset >> 3) >> (8 * (offset & 7));
  for (; len >= 8; len -= 8, offset += 8, p += 8)
    {
      uint64_t word = htole64 (word_at (seed, offset >> 3));

      memcpy (p, &word, 8);
    }
  for (; len > 0; len--, offset++)
    *p++ = word_at (seed, offset >> 3) >> (8 * (offset & 7));
}
