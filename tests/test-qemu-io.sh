#!/bin/bash
# qemu-io with a writeback cache and FUA writes (write -f): the pattern
# reads back, and each FUA write is in the disk file at once.
. "${top_srcdir:-..}/tests/functions.sh"
requires qemu-io

make_disk 8M
start_server qemuio "$disk"

qemu-io -f raw -t writeback \
  -c 'write -P 0x5a 0 64k' \
  -c 'write -f -P 0xa5 1000 3000' \
  -c 'write -P 0x11 1m 1m' \
  -c 'flush' \
  -c 'read -P 0x5a 0 1000' \
  -c 'read -P 0xa5 1000 3000' \
  -c 'read -P 0x5a 4000 61536' \
  -c 'read -P 0x11 1m 1m' \
  "$URI" | tee "$TESTDIR/out"
if grep -q "Pattern verification failed" "$TESTDIR/out"; then exit 1; fi
test "$(grep -c '^read ' "$TESTDIR/out")" = 4

qemu-io -f raw -t writeback -c 'write -f -P 0x77 2m 4k' "$URI"
cmp <(dd if="$disk" bs=4k skip=512 count=1 status=none) \
    <(printf '\x77%.0s' $(seq 1 4096))
