#!/bin/bash
# Negative control: nbdkit's cache filter drops dirty blocks when its cache
# grows over cache-max-size, so writes of more than 1 MiB without a flush
# are lost.  blkcache-torture must notice, exit 1 and name the lost bytes;
# if it did not, the oracle could not fail and the other torture tests
# would prove nothing.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdkit
nbdkit --filter=cache null --run true 2>/dev/null || {
  echo "$0: nbdkit has no cache filter, skipping"
  exit 77
}

out="$TESTDIR/out"

# No flushes: every write stays dirty in the filter's cache until the
# filter drops it.  The 8 MiB hot region is eight times cache-max-size.
status=0
nbdkit -U - --filter=cache memory 16M cache-max-size=1M \
  --run '"$TORTURE" --seconds 2 --hot-size 8M --no-progress --max-reports 3 \
           --mix read=45,write=45,zero=10 "$uri"' \
  >"$out" 2>&1 || status=$?
torture_exited 1 "$status" "$out"
grep -Eq '^stale reads: [1-9]' "$out"
# The report names the lost bytes and the writes they should hold.
grep -Eq 'STALE: (read|final read-back) of \[[0-9]+, \+[0-9]+\)' "$out"
grep -Eq '[0-9]+ bad bytes in \[[0-9]+, [0-9]+\]; first at offset [0-9]+' "$out"
grep -Eq 'gives 0x[0-9a-f]{2}, allowed' "$out"
