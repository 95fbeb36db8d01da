#!/bin/bash
# qemu-img convert into the export, then qemu-img compare says identical.
. "${top_srcdir:-..}/tests/functions.sh"
requires qemu-img

src="$TESTDIR/src"
disk="$TESTDIR/disk"
# A source with data, zeroes and holes, of an odd size.
truncate -s 33555968 "$src"
dd if=/dev/urandom of="$src" bs=64K count=40 seek=3 conv=notrunc status=none
dd if=/dev/urandom of="$src" bs=1 count=1000 seek=33554000 conv=notrunc status=none
truncate -s 33555968 "$disk"
dd if=/dev/urandom of="$disk" bs=1M count=4 seek=20 conv=notrunc status=none
start_server qemu "$disk"

qemu-img convert -n -f raw -O raw "$src" "$URI"
qemu-img compare -f raw -F raw "$src" "$URI"
cmp "$src" "$disk"
