#!/bin/bash
# set cache-mode: switching to writethrough while a client writes answers
# ok only once nothing is dirty; from then on every write goes to the disk
# (cached_writes stays, direct_writes grows) and the disk file alone holds
# every acknowledged write, with no flush; switching back caches writes
# again.  A mode other than writeback or writethrough is refused.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

stat_at_least () { test "$(stat_of "$1")" -ge "$2"; }

make_disk 32M
# No background writeback: what is dirty stays dirty until the switch.
start_control_server mode "$disk" cache-size=64M dirty-expire=0 \
  dirty-background=100 dirty-limit=100
test "$(stat_of cache_mode)" = 2

# A writer of random sizes and offsets (some unaligned), one request at a
# time, keeping what the disk must hold; it stops when $TESTDIR/stop
# appears and leaves that image in $TESTDIR/model.
cat > "$TESTDIR/writer.py" <<'PY'
import os, random, sys
import nbd
h = nbd.NBD()
h.connect_uri(os.environ["URI"])
size = h.get_size()
model = bytearray(size)
rng = random.Random(20)
stop = os.path.join(os.environ["TESTDIR"], "stop")
n = 0
while not os.path.exists(stop) or n < 200:
    length = rng.choice([512, 4096, 65536, 100000])
    offset = rng.randrange(0, size - length)
    data = rng.randbytes(length)
    h.pwrite(data, offset)
    model[offset:offset + length] = data
    n += 1
with open(os.path.join(os.environ["TESTDIR"], "model"), "wb") as f:
    f.write(model)
print("writer: %d writes" % n)
PY
/usr/bin/python3 "$TESTDIR/writer.py" &
writer=$!
wait_until 10 stat_at_least cached_writes 100
test "$(stat_of dirty_bytes)" -gt 0

"$CTL" -s "$ctl" set cache-mode writethrough
# The writer goes on; nothing it writes from now on is cached.
test "$(stat_of dirty_bytes)" = 0
test "$(stat_of cache_mode)" = 1
cached=$(stat_of cached_writes)
direct=$(stat_of direct_writes)
sleep 1
touch "$TESTDIR/stop"
wait "$writer"
test "$(stat_of cached_writes)" = "$cached"
test "$(stat_of direct_writes)" -gt "$direct"
test "$(stat_of dirty_bytes)" = 0
# No flush since the switch: the file alone has every write.
cmp "$disk" "$TESTDIR/model"
# And reads through the cache see the same bytes.
nbdsh -u "$URI" -c "
import os
with open(os.path.join(os.environ['TESTDIR'], 'model'), 'rb') as f:
    model = f.read()
assert h.pread(len(model), 0) == model
"

# Back to writeback: writes are cached again.
"$CTL" -s "$ctl" set cache-mode writeback
test "$(stat_of cache_mode)" = 2
nbdsh -u "$URI" -c 'h.pwrite(b"\x5a" * 65536, 0)'
test "$(stat_of cached_writes)" = $((cached + 1))
test "$(stat_of dirty_bytes)" = 65536

# Only writeback and writethrough; nothing changes on a refusal.
! "$CTL" -s "$ctl" set cache-mode none
! "$CTL" -s "$ctl" set cache-mode fast
test "$(stat_of cache_mode)" = 2
test "$(stat_of dirty_bytes)" = 65536
