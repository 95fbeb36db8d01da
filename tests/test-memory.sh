#!/bin/bash
# Cache memory never exceeds cache-size: after reading and writing four
# times the cache's size, nbdkit's resident memory stays within
# cache-size + 32 MiB.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh
# Sanitizers add their own shadow memory and quarantine.
[ -z "$SANITIZER" ] || { echo "not meaningful under $SANITIZER"; exit 77; }

make_disk 256M
start_server mem "$disk" cache=writeback cache-size=64M

nbdsh -u "$URI" -c '
MiB = 1024 * 1024
buf = b"\x77" * MiB
for i in range(0, 128):
    h.pwrite(buf, i * MiB)
for i in range(128, 256):
    h.pread(MiB, i * MiB)
h.flush()
for i in range(0, 256, 3):
    h.pread(MiB, i * MiB)
'
rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
echo "peak resident memory: ${rss} KiB (limit $((96 * 1024)) KiB)"
test "$rss" -le $((96 * 1024))
