/* blkcache-torture: the bytes a write carries.
 *
 * Every data write of the torture tool fills its buffer with a pattern that
 * is a pure function of the write's id and of each byte's offset on the
 * disk, so a byte read back says which writes it may have come from.  The
 * pattern is generated eight bytes at a time from a 64-bit mix of
 * (id, offset / 8) and never contains the value 0, which write-zeroes owns.
 * Two different writes give the same byte with probability about 1/255, so
 * a stale range of more than a few bytes is always told apart.
 */
#ifndef BLKCACHE_PATTERN_H
#define BLKCACHE_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* The byte that write ID carries at disk offset OFFSET (never 0). */
uint8_t pattern_byte (uint64_t id, uint64_t offset);

/* Fill BUF with the LEN bytes that write ID carries at disk offsets
 * [OFFSET, OFFSET + LEN). */
void pattern_fill (uint64_t id, uint64_t offset, void *buf, size_t len);

#endif /* BLKCACHE_PATTERN_H */
