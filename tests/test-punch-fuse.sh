#!/bin/bash
# A hole punched through nbdfuse (which turns it into an NBD trim, as a
# filesystem exerciser's punch-hole does) reads back as zeroes, the partial
# sectors at its ends too, in every cache mode, and the bytes around it
# are kept.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdfuse fusermount3 fallocate
[ -c /dev/fuse ] || { echo "no /dev/fuse"; exit 77; }

mnt="$TESTDIR/mnt"
mkdir "$mnt"
unmount ()
{
  rc=$?
  fusermount3 -u "$mnt" 2>/dev/null || :
  (exit "$rc")
  cleanup
}
trap unmount EXIT

disk="$TESTDIR/disk"
for mode in writeback writethrough none; do
  head -c 8M /dev/urandom > "$disk"
  start_server "punch-$mode" "$disk" cache=$mode
  nbdfuse "$mnt/nbd" --unix "$SOCK" &
  fuse=$!
  wait_until 10 test -f "$mnt/nbd"
  cp "$mnt/nbd" "$TESTDIR/before"
  # Unaligned at both ends, and one inside a single sector.
  fallocate -p -o 100 -l 3000 "$mnt/nbd"
  fallocate -p -o 70000 -l 10 "$mnt/nbd"
  cmp <(dd if="$mnt/nbd" bs=100 skip=1 count=30 status=none) \
      <(head -c 3000 /dev/zero)
  cmp <(dd if="$mnt/nbd" bs=10 skip=7000 count=1 status=none) \
      <(head -c 10 /dev/zero)
  # Everything else is as it was.
  cmp -n 100 "$mnt/nbd" "$TESTDIR/before"
  cmp -i 3100 -n 66900 "$mnt/nbd" "$TESTDIR/before"
  cmp -i 70010 "$mnt/nbd" "$TESTDIR/before"
  fusermount3 -u "$mnt"
  wait "$fuse"
  stop_server "$PID"
done
