#!/bin/bash
# After a flush reply, and after each FUA reply, nbdkit is killed with
# SIGKILL: the disk file holds those bytes.
. "${top_srcdir:-..}/tests/functions.sh"
requires nbdsh

make_disk 16M

# Flushed cached writes survive.
start_server dur1 "$disk" cache=writeback
nbdsh -u "$URI" -c '
h.pwrite(b"\x11" * 300000, 12345)
h.pwrite(b"\x22" * 65536, 8 * 1024 * 1024)
h.flush()
'
kill_server "$PID"
cmp <(dd if="$disk" bs=1 skip=12345 count=300000 status=none) \
    <(head -c 300000 /dev/zero | tr '\0' '\021')
cmp <(dd if="$disk" bs=64K skip=128 count=1 status=none) \
    <(head -c 65536 /dev/zero | tr '\0' '\042')

# Each FUA write survives, with unflushed cached writes around it.
start_server dur2 "$disk" cache=writeback
nbdsh -u "$URI" -c '
import nbd
h.pwrite(b"\x44" * 4096, 0)
h.pwrite(b"\x33" * 5000, 1000, nbd.CMD_FLAG_FUA)
h.pwrite(b"\x55" * 4096, 2 * 1024 * 1024, nbd.CMD_FLAG_FUA)
'
kill_server "$PID"
cmp <(dd if="$disk" bs=1 skip=1000 count=5000 status=none) \
    <(head -c 5000 /dev/zero | tr '\0' '\063')
cmp <(dd if="$disk" bs=4096 skip=512 count=1 status=none) \
    <(head -c 4096 /dev/zero | tr '\0' '\125')
